//! Verification against a pinned JWK Set: what passes, and the rejection
//! matrix every verifier of vestibule assertions must refuse (shared with
//! the Node and Python checks through `vestibule_jose::testing`).

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{AUDIENCE, ISSUER, alice, now};
use serde_json::json;
use vestibule_jose::Algorithm as JoseAlgorithm;
use vestibule_jose::testing::{TestSigner, assertion, forged_assertions};
use vestibule_verify::{Algorithm, AuthMethod, Error, Jwks, Policy, Verifier};

fn keys(signers: &[&TestSigner]) -> Jwks {
    Jwks::parse(TestSigner::jwks_json(signers).as_bytes()).unwrap()
}

fn policy() -> Policy {
    Policy::new(ISSUER, AUDIENCE)
}

#[test]
fn a_valid_assertion_gives_the_identity_for_every_algorithm() {
    let t = now();
    for signer in [
        TestSigner::es256("es"),
        TestSigner::ed25519("ed"),
        TestSigner::rs256("rs"),
    ] {
        let id = policy()
            .verify_at(&assertion(&signer, &alice(t)), &keys(&[&signer]), t)
            .unwrap_or_else(|e| panic!("{}: {e}", signer.kid()));
        assert_eq!(id.subject, "a-1");
        assert_eq!(id.username, "alice");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.name.as_deref(), Some("Alice A"));
        assert_eq!(id.groups, ["admins", "users"]);
        assert_eq!(id.auth_method, AuthMethod::Header);
        assert_eq!(id.device_id, None);
        assert_eq!(id.issued_at, UNIX_EPOCH + Duration::from_secs(t as u64));
        assert_eq!(
            id.expires_at,
            UNIX_EPOCH + Duration::from_secs(t as u64 + 60)
        );
    }
}

#[test]
fn null_email_and_name_a_device_and_an_audience_list_verify() {
    let t = now();
    let signer = TestSigner::es256("k1");
    let mut claims = alice(t);
    claims["email"] = json!(null);
    claims["name"] = json!(null);
    claims["auth_method"] = json!("device");
    claims["device_id"] = json!(42);
    claims["aud"] = json!(["other.test", AUDIENCE]);
    let id = policy()
        .verify_at(&assertion(&signer, &claims), &keys(&[&signer]), t)
        .unwrap();
    assert_eq!((id.email, id.name), (None, None));
    assert_eq!(id.auth_method, AuthMethod::Device);
    assert_eq!(id.device_id, Some(42));
}

#[test]
fn the_rejection_matrix_is_refused_each_for_its_reason() {
    let t = now();
    let signer = TestSigner::es256("current");
    let other = TestSigner::es256("next");
    let set = keys(&[&signer, &other]);
    // The matrix's premise: its valid token verifies.
    assert!(
        policy()
            .verify_at(&assertion(&signer, &alice(t)), &set, t)
            .is_ok()
    );
    let forged = forged_assertions(&signer, &other, &alice(t));
    let expected = [
        ("tampered_payload", Error::BadSignature),
        ("tampered_signature", Error::BadSignature),
        ("alg_none", Error::AlgorithmNotAllowed),
        ("kid_swapped", Error::BadSignature),
        ("hs256_with_public_jwk", Error::AlgorithmNotAllowed),
        ("hs256_with_public_key_bytes", Error::AlgorithmNotAllowed),
        ("expired", Error::Expired),
        ("not_yet_valid", Error::NotYetValid),
        ("wrong_aud", Error::WrongAudience),
        ("wrong_typ", Error::WrongType),
        ("wrong_iss", Error::WrongIssuer),
    ];
    assert_eq!(
        forged.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        expected.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    for ((name, token), (_, why)) in forged.iter().zip(expected) {
        let got = policy().verify_at(token, &set, t);
        assert_eq!(got, Err(why), "{name}");
        // The message never carries the token or any part of it.
        let message = got.unwrap_err().to_string();
        for part in token.split('.').filter(|p| p.len() > 3) {
            assert!(!message.contains(part), "{name}: {message}");
        }
    }
    // The same with the RS256 and EdDSA keys the gateway can be set to.
    for (a, b) in [
        (TestSigner::ed25519("e1"), TestSigner::ed25519("e2")),
        (TestSigner::rs256("r1"), TestSigner::rs256("r2")),
    ] {
        let set = keys(&[&a, &b]);
        for (name, token) in forged_assertions(&a, &b, &alice(t)) {
            assert!(
                policy().verify_at(&token, &set, t).is_err(),
                "{} {name}",
                a.kid()
            );
        }
    }
}

#[test]
fn leeway_tolerates_a_drifting_clock_and_no_more() {
    let t = now();
    let signer = TestSigner::es256("k1");
    let set = keys(&[&signer]);
    let token = assertion(&signer, &alice(t));
    // 60 s lifetime + 30 s leeway.
    assert!(policy().verify_at(&token, &set, t + 89).is_ok());
    assert_eq!(
        policy().verify_at(&token, &set, t + 90),
        Err(Error::Expired)
    );
    assert!(policy().verify_at(&token, &set, t - 30).is_ok());
    assert_eq!(
        policy().verify_at(&token, &set, t - 31),
        Err(Error::NotYetValid)
    );
    let strict = policy().with_leeway(Duration::ZERO);
    assert_eq!(strict.verify_at(&token, &set, t + 60), Err(Error::Expired));
    assert_eq!(
        strict.verify_at(&token, &set, t - 1),
        Err(Error::NotYetValid)
    );
}

#[test]
fn the_algorithm_must_be_allowed_and_fit_the_key() {
    let t = now();
    let es = TestSigner::es256("es");
    let ed = TestSigner::ed25519("ed");
    let set = keys(&[&es, &ed]);
    let only_es = policy().with_algorithms(&[Algorithm::ES256]);
    assert_eq!(
        only_es.verify_at(&assertion(&ed, &alice(t)), &set, t),
        Err(Error::AlgorithmNotAllowed)
    );
    // An ES256 token naming the Ed25519 key.
    let header = json!({"alg": "ES256", "kid": "ed", "typ": "vestibule-id+jwt"});
    let token = es.sign_with_header(&header, &alice(t));
    assert_eq!(policy().verify_at(&token, &set, t), Err(Error::KeyMismatch));
    // An RSA key published as RS256 does not verify PS256 (not supported),
    // and a JWK whose `alg` says RS384 is skipped.
    let rs = TestSigner::rs256("rs");
    let ps = rs.with_algorithm(JoseAlgorithm::PS256);
    let set = keys(&[&rs]);
    assert_eq!(
        policy().verify_at(&assertion(&ps, &alice(t)), &set, t),
        Err(Error::AlgorithmNotAllowed)
    );
    let rs384 = rs.with_algorithm(JoseAlgorithm::RS384).with_kid("rs384");
    assert!(keys(&[&rs384]).is_empty());
}

#[test]
fn header_rules_crit_kid_and_typ_spellings() {
    let t = now();
    let signer = TestSigner::es256("k1");
    let set = keys(&[&signer]);
    let with_header =
        |h: serde_json::Value| policy().verify_at(&signer.sign_with_header(&h, &alice(t)), &set, t);
    assert_eq!(
        with_header(
            json!({"alg": "ES256", "kid": "k1", "typ": "vestibule-id+jwt", "crit": ["exp"]})
        ),
        Err(Error::CriticalHeader)
    );
    assert_eq!(
        with_header(json!({"alg": "ES256", "typ": "vestibule-id+jwt"})),
        Err(Error::MissingKeyId)
    );
    assert_eq!(
        with_header(json!({"alg": "ES256", "kid": "k1"})),
        Err(Error::WrongType)
    );
    assert_eq!(
        with_header(json!({"alg": "ES256", "kid": "nope", "typ": "vestibule-id+jwt"})),
        Err(Error::UnknownKey)
    );
    // RFC 7515 §4.1.9: case-insensitive, `application/` optional.
    assert!(
        with_header(json!({"alg": "ES256", "kid": "k1", "typ": "Application/Vestibule-ID+JWT"}))
            .is_ok()
    );
    // Keys named in the header are ignored (RFC 8725 §3.10): a token
    // signed by a stranger who ships its key in `jwk` still fails.
    let stranger = TestSigner::es256("k1");
    let token = stranger.sign_with_header(
        &json!({"alg": "ES256", "kid": "k1", "typ": "vestibule-id+jwt", "jwk": stranger.jwk()}),
        &alice(t),
    );
    assert_eq!(
        policy().verify_at(&token, &set, t),
        Err(Error::BadSignature)
    );
}

#[test]
fn duplicate_members_and_wrong_types_are_malformed() {
    let t = now();
    let signer = TestSigner::es256("k1");
    let set = keys(&[&signer]);
    let header = br#"{"alg":"ES256","kid":"k1","typ":"vestibule-id+jwt"}"#;
    let claims = alice(t).to_string();
    // A second `sub`, which a last-wins parser would read differently.
    let twice = claims.replacen('{', r#"{"sub":"root","#, 1);
    assert_eq!(
        policy().verify_at(&signer.sign_bytes(header, twice.as_bytes()), &set, t),
        Err(Error::MalformedClaims)
    );
    let dup_header = br#"{"alg":"ES256","alg":"ES256","kid":"k1","typ":"vestibule-id+jwt"}"#;
    assert_eq!(
        policy().verify_at(&signer.sign_bytes(dup_header, claims.as_bytes()), &set, t),
        Err(Error::Malformed)
    );
    let mut c = alice(t);
    c["exp"] = json!(format!("{}", t + 60));
    assert_eq!(
        policy().verify_at(&assertion(&signer, &c), &set, t),
        Err(Error::MalformedClaims)
    );
    // A device id without a device, and a device without its id.
    let mut c = alice(t);
    c["device_id"] = json!(7);
    assert_eq!(
        policy().verify_at(&assertion(&signer, &c), &set, t),
        Err(Error::MalformedClaims)
    );
    let mut c = alice(t);
    c["auth_method"] = json!("device");
    assert_eq!(
        policy().verify_at(&assertion(&signer, &c), &set, t),
        Err(Error::MalformedClaims)
    );
    for junk in ["", "a.b", "a.b.c.d", "...", "e30.e30.", &"a".repeat(20_000)] {
        assert_eq!(
            policy().verify_at(junk, &set, t),
            Err(Error::Malformed),
            "{junk:.20}"
        );
    }
}

#[test]
fn a_key_set_with_a_private_key_or_a_shared_kid_is_refused() {
    let signer = TestSigner::es256("k1");
    let mut jwk = signer.jwk();
    jwk["d"] = json!("AAAA");
    let with_private = json!({"keys": [jwk]}).to_string();
    assert!(matches!(
        Jwks::parse(with_private.as_bytes()),
        Err(Error::InvalidKeySet(_))
    ));
    let twice = TestSigner::jwks_json(&[&signer, &TestSigner::es256("k1")]);
    assert!(matches!(
        Jwks::parse(twice.as_bytes()),
        Err(Error::InvalidKeySet(_))
    ));
    assert!(Jwks::parse(b"{}").is_err());
    assert!(Jwks::parse(b"[]").is_err());
    // Keys for encryption or without a kid are skipped, not refused.
    let mut enc = TestSigner::es256("enc").jwk();
    enc["use"] = json!("enc");
    let mut no_kid = TestSigner::es256("x").jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let set = Jwks::parse(
        json!({"keys": [enc, no_kid, signer.jwk()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.contains("k1"));
}

#[tokio::test]
async fn a_pinned_verifier_uses_the_clock_and_reads_files() {
    let signer = TestSigner::es256("k1");
    let dir = std::env::temp_dir().join(format!("vestibule-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, TestSigner::jwks_json(&[&signer])).unwrap();
    let verifier = Verifier::pinned_file(&path, policy()).unwrap();
    let id = verifier
        .verify(&assertion(&signer, &alice(now())))
        .await
        .unwrap();
    assert_eq!(id.username, "alice");
    let old = assertion(&signer, &alice(now() - 3600));
    assert_eq!(verifier.verify(&old).await, Err(Error::Expired));
    assert_eq!(
        Verifier::pinned_file(dir.join("missing.json"), policy()).unwrap_err(),
        Error::KeysUnavailable
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
