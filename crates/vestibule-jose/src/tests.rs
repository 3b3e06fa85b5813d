//! Tests of the crate as a whole: signing and verifying, JWK Sets,
//! thumbprints, rotation.

use std::sync::OnceLock;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::B64URL;
use crate::testing::TestSigner;
use crate::{
    Algorithm, Compact, Jwks, JwksError, JwsError, KeyError, KeySet, Policy, SigningKey, thumbprint,
};

/// Accepts every algorithm, `typ` absent or JWT.
const POLICY: Policy<'static> = Policy {
    algorithms: &Algorithm::ALL,
    types: &["JWT"],
    type_required: false,
};

fn claims() -> Value {
    json!({"iss": "https://sso.example.com", "sub": "u-123", "exp": 1_700_000_300})
}

/// Parses and verifies `token` under `jwks` with [`POLICY`].
fn verify(token: &str, jwks: &Jwks) -> Result<crate::Verified, JwsError> {
    Compact::parse(token)?.verify(jwks, &POLICY)
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v.as_object_mut().unwrap().insert(k.to_owned(), x);
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

/// Test signers of each kind, made once: RSA generation is slow-ish.
struct Keys {
    rsa: TestSigner,
    es256: TestSigner,
    ed: TestSigner,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestSigner::rs256("rsa"),
        es256: TestSigner::es256("es256"),
        ed: TestSigner::ed25519("ed"),
    })
}

/// One production signing key per algorithm we sign with, made once.
fn signing_keys() -> &'static [SigningKey; 3] {
    static KEYS: OnceLock<[SigningKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| SigningKey::ALGORITHMS.map(|a| SigningKey::generate(a).unwrap()))
}

/// A JWK Set of our keys' public halves, parsed as an issuer's would be.
fn jwks_of_keys(keys: &[&SigningKey]) -> Jwks {
    let keys: Vec<Value> = keys.iter().map(|k| k.public_jwk().to_json()).collect();
    Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

const PRIVATE: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

#[test]
fn sign_then_verify_for_each_algorithm() {
    for key in signing_keys() {
        let token = key.sign(Some("JWT"), b"{\"sub\":\"u-1\"}").unwrap();
        let verified = verify(&token, &jwks_of_keys(&[key]))
            .unwrap_or_else(|e| panic!("{}: {e}", key.algorithm()));
        assert_eq!(verified.algorithm(), key.algorithm());
        assert_eq!(verified.kid(), Some(key.kid()));
        assert_eq!(verified.header()["typ"], "JWT");
        assert_eq!(verified.payload(), b"{\"sub\":\"u-1\"}");
        assert_eq!(verified.claims_object().unwrap()["sub"], "u-1");
        // Without typ: no typ member at all.
        let token = key.sign(None, b"x").unwrap();
        let verified = verify(&token, &jwks_of_keys(&[key])).unwrap();
        assert!(!verified.header().contains_key("typ"));
        assert!(matches!(
            verified.claims_object(),
            Err(JwsError::Malformed("the claims are not a JSON object"))
        ));
    }
    assert_eq!(
        SigningKey::generate(Algorithm::PS256).unwrap_err(),
        KeyError::UnsupportedAlgorithm(Algorithm::PS256)
    );
}

#[test]
fn key_a_does_not_verify_under_key_b_with_the_same_kid() {
    let [rsa, es, ed] = signing_keys();
    for (a, fresh) in [
        (rsa, SigningKey::generate(Algorithm::RS256).unwrap()),
        (es, SigningKey::generate(Algorithm::ES256).unwrap()),
        (ed, SigningKey::generate(Algorithm::EdDSA).unwrap()),
    ] {
        assert_ne!(a.kid(), fresh.kid(), "thumbprints differ per key");
        // B's public key published under A's kid.
        let b = with(fresh.public_jwk().to_json(), "kid", a.kid().into());
        let jwks = Jwks::parse(json!({ "keys": [b] }).to_string().as_bytes()).unwrap();
        let token = a.sign(None, b"{}").unwrap();
        assert_eq!(verify(&token, &jwks), Err(JwsError::BadSignature));
    }
}

#[test]
fn alg_must_fit_the_key_and_the_policy() {
    let [rsa, _, ed] = signing_keys();
    let jwks = jwks_of_keys(&[rsa, ed]);
    // A header claiming ES256 under the Ed25519 key's kid (signed by a P-256
    // test key, so the signature would even be valid for some P-256 key).
    let forged = keys()
        .es256
        .sign_with_header(&json!({"alg": "ES256", "kid": ed.kid()}), &claims());
    assert_eq!(verify(&forged, &jwks), Err(JwsError::KeyMismatch));
    // Our RSA key is RS256 only: a PS256 token under its kid is refused.
    let ps = keys()
        .rsa
        .with_algorithm(Algorithm::PS256)
        .sign_with_header(&json!({"alg": "PS256", "kid": rsa.kid()}), &claims());
    assert_eq!(verify(&ps, &jwks), Err(JwsError::KeyMismatch));
    // An algorithm outside the caller's allow-list.
    let token = ed.sign(None, b"{}").unwrap();
    let only_rs = Policy {
        algorithms: &[Algorithm::RS256],
        ..POLICY
    };
    assert_eq!(
        Compact::parse(&token).unwrap().verify(&jwks, &only_rs),
        Err(JwsError::AlgorithmNotAllowed)
    );
    // `none` and HMAC cannot be named.
    for alg in ["none", "HS256"] {
        let t = keys()
            .ed
            .sign_with_header(&json!({"alg": alg, "kid": ed.kid()}), &claims());
        assert_eq!(
            verify(&t, &jwks),
            Err(JwsError::UnsupportedAlgorithm(alg.to_owned()))
        );
    }
}

#[test]
fn unsupported_alg_is_shown_cut_and_printable() {
    let s = &keys().ed;
    let jwks = Jwks::parse(TestSigner::jwks_json(&[s]).as_bytes()).unwrap();
    let t = s.sign_with_header(&json!({"alg": "HS256\n\u{1b}[31m", "kid": "ed"}), &claims());
    let e = verify(&t, &jwks).unwrap_err();
    assert_eq!(e, JwsError::UnsupportedAlgorithm("HS256??[31m".to_owned()));
    assert_eq!(
        e.to_string(),
        r#"the JWS algorithm "HS256??[31m" is not supported"#
    );
    let t = s.sign_with_header(&json!({"alg": "x".repeat(100), "kid": "ed"}), &claims());
    assert_eq!(
        verify(&t, &jwks),
        Err(JwsError::UnsupportedAlgorithm("x".repeat(32)))
    );
}

#[test]
fn typ_policy() {
    let s = &keys().ed;
    let jwks = Jwks::parse(TestSigner::jwks_json(&[s]).as_bytes()).unwrap();
    let at = Policy {
        types: &["at+jwt"],
        type_required: true,
        ..POLICY
    };
    let run = |typ: Option<&str>, policy: &Policy<'_>| {
        let mut h = json!({"alg": "EdDSA", "kid": "ed"});
        if let Some(t) = typ {
            h = with(h, "typ", t.into());
        }
        Compact::parse(&s.sign_with_header(&h, &claims()))
            .unwrap()
            .verify(&jwks, policy)
            .map(|_| ())
    };
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        assert_eq!(run(Some(typ), &at), Ok(()), "{typ}");
    }
    assert_eq!(run(None, &at), Err(JwsError::WrongType));
    assert_eq!(run(Some("JWT"), &at), Err(JwsError::WrongType));
    assert_eq!(run(None, &POLICY), Ok(()));
    assert_eq!(run(Some("at+jwt"), &POLICY), Err(JwsError::WrongType));
    let none = Policy {
        types: &[],
        ..POLICY
    };
    assert_eq!(run(None, &none), Ok(()));
    assert_eq!(run(Some("JWT"), &none), Err(JwsError::WrongType));
}

#[test]
fn rotation() {
    let first = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let second = SigningKey::generate(Algorithm::ES256).unwrap();
    let (first_kid, second_kid) = (first.kid().to_owned(), second.kid().to_owned());
    let mut set = KeySet::new(first).unwrap();
    assert_eq!(set.rotate(10), Err(KeyError::NoNextKey));
    let old = set.sign(Some("JWT"), b"{}").unwrap();
    let check = |set: &KeySet, token: &str, now: i64| {
        set.verify(&Compact::parse(token).unwrap(), &POLICY, now)
            .map(|v| v.kid().map(str::to_owned))
    };
    let kids = |set: &KeySet, now: i64| -> Vec<String> {
        set.published(now)
            .keys()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect()
    };
    assert_eq!(check(&set, &old, 0), Ok(Some(first_kid.clone())));

    // The next key is published before it signs, and does not verify yet.
    set.add_next(second).unwrap();
    assert_eq!(kids(&set, 0), [first_kid.clone(), second_kid.clone()]);
    assert_eq!(set.current().kid(), first_kid);
    let dup = SigningKey::from_pkcs8_der(Algorithm::EdDSA, &set.current().to_pkcs8_der().unwrap())
        .unwrap();
    assert_eq!(set.add_next(dup), Err(KeyError::DuplicateKid));

    // Rotate: the next key signs; the old one verifies until 1000.
    set.rotate(1000).unwrap();
    assert_eq!(set.current().kid(), second_kid);
    let new = set.sign(Some("JWT"), b"{}").unwrap();
    assert_eq!(check(&set, &new, 999), Ok(Some(second_kid.clone())));
    assert_eq!(check(&set, &old, 999), Ok(Some(first_kid.clone())));
    assert_eq!(kids(&set, 999), [second_kid.clone(), first_kid.clone()]);
    let retired: Vec<i64> = set.retired_keys().map(|(_, until)| until).collect();
    assert_eq!(retired, [1000]);

    // From 1000 on the retired key neither verifies nor is published.
    assert_eq!(
        check(&set, &old, 1000),
        Err(JwsError::UnknownKey {
            kid: Some(first_kid.clone())
        })
    );
    assert_eq!(kids(&set, 1000), std::slice::from_ref(&second_kid));
    assert_eq!(check(&set, &new, 5000), Ok(Some(second_kid.clone())));
    set.prune(999);
    assert_eq!(set.retired_keys().count(), 1);
    set.prune(1000);
    assert_eq!(set.retired_keys().count(), 0);

    // A retired key restored from storage verifies again until its time.
    let restored = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let restored_token = restored.sign(None, b"{}").unwrap();
    set.add_retired(restored.public_jwk().clone(), 2000)
        .unwrap();
    assert!(check(&set, &restored_token, 1999).is_ok());
    assert!(check(&set, &restored_token, 2000).is_err());
    // Tokens from keys the set never held do not verify.
    let stranger = signing_keys()[2].sign(None, b"{}").unwrap();
    assert!(matches!(
        check(&set, &stranger, 0),
        Err(JwsError::UnknownKey { .. })
    ));
}

#[test]
fn thumbprint_matches_rfc_7638_example() {
    // RFC 7638 §3.1: the example RSA key and its thumbprint.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        thumbprint(&jwk).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    // Members outside the required ones do not count; missing ones fail.
    assert_eq!(
        thumbprint(&without(without(jwk.clone(), "alg"), "kid")),
        thumbprint(&jwk)
    );
    assert_eq!(thumbprint(&without(jwk.clone(), "e")), None);
    assert_eq!(thumbprint(&json!({"kty": "oct", "k": "AA"})), None);
    // Our keys' kids are their thumbprints.
    for key in signing_keys() {
        assert_eq!(
            thumbprint(&key.public_jwk().to_json()).as_deref(),
            Some(key.kid())
        );
    }
}

#[test]
fn published_jwks_has_no_private_members() {
    let mut set = KeySet::new(SigningKey::generate(Algorithm::ES256).unwrap()).unwrap();
    set.add_next(SigningKey::generate(Algorithm::RS256).unwrap())
        .unwrap();
    set.add_next(SigningKey::generate(Algorithm::EdDSA).unwrap())
        .unwrap();
    set.rotate(100).unwrap();
    let doc = set.published(0).to_json();
    let value: Value = serde_json::from_str(&doc).unwrap();
    let keys = value["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    for key in keys {
        let key = key.as_object().unwrap();
        for m in PRIVATE {
            assert!(!key.contains_key(m), "{m} published");
        }
        assert_eq!(key["use"], "sig");
        assert!(["RS256", "ES256", "EdDSA"].contains(&key["alg"].as_str().unwrap()));
    }
    // And it is a set an issuer's parser accepts in full.
    let jwks = Jwks::parse(doc.as_bytes()).unwrap();
    assert_eq!(jwks.len(), 3);
    assert!(jwks.skipped().is_empty());
}

#[test]
fn pkcs8_round_trip() {
    for key in signing_keys() {
        let der = key.to_pkcs8_der().unwrap();
        let back = SigningKey::from_pkcs8_der(key.algorithm(), &der).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.public_jwk(), key.public_jwk());
        let token = back.sign(None, b"{}").unwrap();
        assert!(verify(&token, &jwks_of_keys(&[key])).is_ok());
        // The wrong algorithm for the document, or garbage: refused.
        let other = if key.algorithm() == Algorithm::ES256 {
            Algorithm::EdDSA
        } else {
            Algorithm::ES256
        };
        assert!(matches!(
            SigningKey::from_pkcs8_der(other, &der),
            Err(KeyError::Rejected(_))
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_der(key.algorithm(), &der[1..]),
            Err(KeyError::Rejected(_))
        ));
    }
    // Debug never shows key material.
    let debug = format!("{:?}", signing_keys()[1]);
    assert!(debug.contains("kid") && !debug.contains("pair"));
}

#[test]
fn header_is_read_before_and_payload_after_the_signature() {
    let s = &keys().ed;
    let jwks = Jwks::parse(TestSigner::jwks_json(&[s]).as_bytes()).unwrap();
    // A payload that is not even base64url: the signature fails first.
    let t = s.sign(&claims());
    let [h, _, sig] = <[&str; 3]>::try_from(t.split('.').collect::<Vec<_>>()).unwrap();
    assert_eq!(
        verify(&format!("{h}.!!.{sig}"), &jwks),
        Err(JwsError::BadSignature)
    );
    // A header that is not JSON: refused by parse.
    assert!(matches!(
        Compact::parse(&format!("{}.e30.{sig}", B64URL.encode("nope"))),
        Err(JwsError::Malformed("the header is not a JSON object"))
    ));
    assert!(matches!(Compact::parse("a.b"), Err(JwsError::Malformed(_))));
    let c = Compact::parse(&t).unwrap();
    assert_eq!(c.header()["kid"], "ed");
}

#[test]
fn algorithm_names_round_trip() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::parse(a.as_str()), Some(a));
        assert_eq!(a.to_string(), a.as_str());
    }
    for bad in ["none", "None", "HS256", "rs256", "ES512", "", "RS256 "] {
        assert_eq!(Algorithm::parse(bad), None, "{bad}");
    }
}

#[test]
fn jwks_with_a_private_key_is_refused() {
    let s = &keys().ed;
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let mut private = s.jwk();
        private
            .as_object_mut()
            .unwrap()
            .insert(member.to_owned(), "AAAA".into());
        let doc = json!({"keys": [keys().es256.jwk(), private]}).to_string();
        assert_eq!(
            Jwks::parse(doc.as_bytes()).unwrap_err(),
            JwksError::PrivateKey {
                kid: Some("ed".into())
            },
            "{member}"
        );
    }
    // Even for a key type we do not know.
    let doc = json!({"keys": [keys().ed.jwk(), {"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
    assert_eq!(
        Jwks::parse(doc.as_bytes()).unwrap_err(),
        JwksError::PrivateKey { kid: None }
    );
    assert!(
        JwksError::PrivateKey { kid: None }
            .to_string()
            .contains("private key")
    );
}

#[test]
fn jwks_skips_keys_it_cannot_use() {
    let k = keys();
    let ed = k.ed.jwk();
    let skipped = [
        json!({"kty": "foo", "kid": "a"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "b"}),
        json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
        with(k.es256.jwk(), "use", "enc".into()),
        with(k.es256.jwk(), "key_ops", json!(["encrypt"])),
        with(k.es256.jwk(), "alg", "ES512".into()),
        with(k.es256.jwk(), "alg", "HS256".into()),
        with(k.es256.jwk(), "alg", "none".into()),
        with(k.es256.jwk(), "alg", "RS256".into()),
        with(k.es256.jwk(), "kid", 5.into()),
        with(k.es256.jwk(), "x", "!!!".into()),
        with(k.es256.jwk(), "x", B64URL.encode([1u8; 31]).into()),
        // A point off the curve.
        with(k.es256.jwk(), "y", B64URL.encode([7u8; 32]).into()),
        with(ed.clone(), "x", B64URL.encode([1u8; 33]).into()),
        // A 1024-bit RSA modulus.
        with(k.rsa.jwk(), "n", B64URL.encode([0xc3u8; 128]).into()),
        // An all-zero modulus (found by fuzzing: it underflowed).
        with(k.rsa.jwk(), "n", "AAA".into()),
        with(k.rsa.jwk(), "n", "".into()),
        without(k.rsa.jwk(), "e"),
        json!("not an object"),
    ];
    let mut all = vec![ed];
    all.extend(skipped.iter().cloned());
    let jwks = Jwks::parse(json!({ "keys": all }).to_string().as_bytes()).unwrap();
    assert_eq!(jwks.len(), 1);
    assert_eq!(jwks.skipped().len(), skipped.len());
    assert!(jwks.skipped().iter().all(|s| !s.reason.is_empty()));
    assert!(verify(&k.ed.sign(&claims()), &jwks).is_ok());
    // key_ops with verify, padded members, leading zero octets: fine.
    let mut rsa = k.rsa.jwk();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(rsa["n"].as_str().unwrap())
        .unwrap();
    let mut n0 = vec![0u8];
    n0.extend(n);
    rsa["n"] = base64::engine::general_purpose::URL_SAFE.encode(n0).into();
    rsa["key_ops"] = json!(["verify"]);
    let jwks = Jwks::parse(json!({ "keys": [rsa] }).to_string().as_bytes()).unwrap();
    assert!(verify(&k.rsa.sign(&claims()), &jwks).is_ok());
}

#[test]
fn jwks_malformed_and_empty() {
    for doc in [
        &b""[..],
        b"[]",
        b"{}",
        b"{\"keys\": {}}",
        b"not json",
        b"{\"keys\": []} x",
    ] {
        assert!(
            matches!(Jwks::parse(doc), Err(JwksError::Malformed(_))),
            "{doc:?}"
        );
    }
    assert_eq!(
        Jwks::parse(b"{\"keys\": []}").unwrap_err(),
        JwksError::Empty
    );
    assert_eq!(
        Jwks::parse(br#"{"keys": [{"kty": "oct-ish"}]}"#).unwrap_err(),
        JwksError::Empty
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn jws_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let jwks = Jwks::parse(TestSigner::jwks_json(&[&keys().ed, &keys().es256]).as_bytes()).unwrap();
        let s = String::from_utf8_lossy(&b);
        if let Ok(c) = Compact::parse(&s) {
            prop_assert!(c.verify(&jwks, &POLICY).is_err());
        }
    }

    #[test]
    fn jws_parser_never_panics_on_token_shaped_input(
        h in "[A-Za-z0-9_=-]{0,60}", p in "[A-Za-z0-9_=-]{0,60}", sig in "[A-Za-z0-9_=-]{0,90}",
    ) {
        let jwks = Jwks::parse(TestSigner::jwks_json(&[&keys().ed]).as_bytes()).unwrap();
        let t = format!("{h}.{p}.{sig}");
        if let Ok(c) = Compact::parse(&t) {
            prop_assert!(c.verify(&jwks, &POLICY).is_err());
        }
    }

    #[test]
    fn jwks_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(jwks) = Jwks::parse(&b) {
            prop_assert!(!jwks.is_empty());
        }
    }

    #[test]
    fn sign_verify_round_trips_any_payload(
        payload in proptest::collection::vec(any::<u8>(), 0..512), which in 0usize..3,
    ) {
        let key = &signing_keys()[which];
        let token = key.sign(Some("JWT"), &payload).unwrap();
        let verified = verify(&token, &jwks_of_keys(&[key])).unwrap();
        prop_assert_eq!(verified.payload(), &payload[..]);
        prop_assert_eq!(verified.algorithm(), key.algorithm());
    }
}
