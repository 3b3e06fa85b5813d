//! The fuzz entry point, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/verify_assertion.rs`) and the corpus replay
//! (`tests/fuzz_corpus.rs`, stable Rust), which both include this file.

use vestibule_verify::{Jwks, Policy};

/// Two P-256 keys, `k1` and `k2` (vestibule-jose's `TestSigner`
/// `es256_from_seed` with seeds `[7; 32]` and `[9; 32]`): the corpus's
/// `valid` token verifies under `k1` at [`NOW`].
const JWKS: &str = r#"{"keys":[{"alg":"ES256","crv":"P-256","kid":"k1","kty":"EC","use":"sig","x":"HhhTL9R1TALzBB2cdc6zO4P_2BrHzk_ogsyxyYvFiW4","y":"pGwxHE4v9A3ZajZT5uRURdMt_khuztdcepDGoYiBwKM"},{"alg":"ES256","crv":"P-256","kid":"k2","kty":"EC","use":"sig","x":"cTX6T9k6Cdzpi79oG0v89Q58DWNU5ir7C_8qNClheGU","y":"7UwfAt25Aj7lalV-UV1qncZsEfIglg3llDNN9Yh3ZyQ"}]}"#;

/// The corpus tokens' `iat`.
const NOW: i64 = 1_800_000_000;

/// `data` as a token (verified against [`JWKS`] at [`NOW`]) and as a JWK
/// Set; neither may panic, and nothing but the genuine seed verifies.
pub(crate) fn verify_assertion(data: &[u8]) {
    let keys = match Jwks::parse(JWKS.as_bytes()) {
        Ok(keys) => keys,
        Err(e) => panic!("the harness's own key set: {e}"),
    };
    if let Ok(token) = std::str::from_utf8(data) {
        let policy = Policy::new("https://sso.example.test", "app.test");
        if let Ok(identity) = policy.verify_at(token, &keys, NOW) {
            // Only the corpus's `valid` seed carries a signature of `k1`:
            // a mutation that verified would be a forgery.
            assert_eq!(identity.username, "alice");
            assert_eq!(identity.subject, "a-1");
        }
    }
    if let Ok(set) = Jwks::parse(data) {
        assert!(set.len() <= data.len());
    }
}
