//! Property tests of token parsing and verification: nothing panics,
//! what the gateway signs reads back exactly, and no single-character
//! change to a valid token verifies.

mod common;

use common::{AUDIENCE, ISSUER, alice};
use proptest::prelude::*;
use serde_json::json;
use vestibule_jose::testing::{TestSigner, assertion};
use vestibule_verify::{Jwks, Policy};

/// The same key on every run (property tests shrink better with it).
fn signer() -> TestSigner {
    TestSigner::es256_from_seed("k1", &[7; 32])
}

fn keys() -> Jwks {
    Jwks::parse(TestSigner::jwks_json(&[&signer()]).as_bytes()).unwrap()
}

const NOW: i64 = 1_800_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_is_refused_without_panicking(token in "\\PC{0,300}") {
        prop_assert!(Policy::new(ISSUER, AUDIENCE).verify_at(&token, &keys(), NOW).is_err());
    }

    #[test]
    fn dotted_base64_junk_is_refused(
        parts in proptest::collection::vec("[A-Za-z0-9_-]{0,60}", 0..6),
    ) {
        let token = parts.join(".");
        prop_assert!(Policy::new(ISSUER, AUDIENCE).verify_at(&token, &keys(), NOW).is_err());
    }

    #[test]
    fn any_signed_header_and_payload_bytes_never_panic(
        header in proptest::collection::vec(any::<u8>(), 0..200),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let token = signer().sign_bytes(&header, &payload);
        // Neither bytes a JSON header with the right typ nor claims: refused.
        prop_assert!(Policy::new(ISSUER, AUDIENCE).verify_at(&token, &keys(), NOW).is_err());
    }

    #[test]
    fn what_the_gateway_signs_reads_back_exactly(
        sub in "\\PC{1,40}",
        username in "\\PC{1,40}",
        email in proptest::option::of("[a-z]{1,10}@[a-z]{1,10}\\.test"),
        name in proptest::option::of("\\PC{0,40}"),
        groups in proptest::collection::vec("\\PC{0,20}", 0..8),
        device in proptest::option::of(any::<i64>()),
        age in 0i64..60,
    ) {
        let mut claims = alice(NOW - age);
        claims["sub"] = json!(sub);
        claims["preferred_username"] = json!(username);
        claims["email"] = json!(email);
        claims["name"] = json!(name);
        claims["groups"] = json!(groups);
        if let Some(id) = device {
            claims["auth_method"] = json!("device");
            claims["device_id"] = json!(id);
        }
        let token = assertion(&signer(), &claims);
        let id = Policy::new(ISSUER, AUDIENCE).verify_at(&token, &keys(), NOW).unwrap();
        prop_assert_eq!(id.subject, sub);
        prop_assert_eq!(id.username, username);
        prop_assert_eq!(id.email, email);
        prop_assert_eq!(id.name, name);
        prop_assert_eq!(id.groups, groups);
        prop_assert_eq!(id.device_id, device);
    }

    #[test]
    fn no_single_character_change_verifies(index in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=-]") {
        let token = assertion(&signer(), &alice(NOW));
        let at = index.index(token.len());
        let mut changed = token.clone();
        changed.replace_range(at..=at, &with);
        prop_assume!(changed != token);
        prop_assert!(Policy::new(ISSUER, AUDIENCE).verify_at(&changed, &keys(), NOW).is_err());
    }
}
