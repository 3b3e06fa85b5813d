//! Replays the checked-in fuzz corpus (`fuzz/corpus/verify_assertion/`)
//! through the same function the cargo-fuzz target calls, so CI exercises
//! every saved input on stable Rust, without nightly or libFuzzer.

#[path = "support/fuzz_harness.rs"]
mod fuzz_harness;

use std::path::PathBuf;

#[test]
fn verify_assertion_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/verify_assertion");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    for path in &entries {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| fuzz_harness::verify_assertion(&data));
        assert!(
            outcome.is_ok(),
            "verify_assertion failed on {}",
            path.display()
        );
    }
    // The seed the corpus grows from still verifies (else the fuzzer
    // would never reach the claim checks).
    let valid = std::fs::read_to_string(dir.join("valid")).unwrap();
    let keys = vestibule_verify::Jwks::parse(&std::fs::read(dir.join("jwks")).unwrap()).unwrap();
    let id = vestibule_verify::Policy::new("https://sso.example.test", "app.test")
        .verify_at(&valid, &keys, 1_800_000_000)
        .unwrap();
    assert_eq!(id.username, "alice");
}
