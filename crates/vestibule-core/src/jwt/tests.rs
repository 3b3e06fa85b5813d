//! The assertion checks, end to end through vestibule-jose.

#[test]
fn assertion_header_once_under_any_spelling() {
    use super::{AssertionHeaderError, assertion_in};
    let map = |lines: &[(&'static str, &'static [u8])]| {
        let mut h = http::HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, http::HeaderValue::from_bytes(v).unwrap());
        }
        h
    };
    let name = "x-assertion";
    assert_eq!(assertion_in(&map(&[]), name), Ok(None));
    assert_eq!(assertion_in(&map(&[("x-assertion", b" ")]), name), Ok(None));
    assert_eq!(
        assertion_in(&map(&[("x-assertion", b" a.b.c ")]), name),
        Ok(Some("a.b.c"))
    );
    assert_eq!(
        assertion_in(&map(&[("x_assertion", b"a.b.c")]), name),
        Ok(Some("a.b.c"))
    );
    assert_eq!(
        assertion_in(&map(&[("x-assertion", b"a"), ("x_assertion", b"a")]), name),
        Err(AssertionHeaderError::Ambiguous)
    );
    assert_eq!(
        assertion_in(&map(&[("x-assertion", b"a"), ("x-assertion", b"a")]), name),
        Err(AssertionHeaderError::Ambiguous)
    );
    assert_eq!(
        assertion_in(&map(&[("x-assertion", b"\xff")]), name),
        Err(AssertionHeaderError::NotAscii)
    );
}

proptest::proptest! {
    #[test]
    fn assertion_header_is_ambiguous_exactly_when_sent_twice(
        lines in proptest::collection::vec(
            (proptest::sample::select(vec!["x-assertion", "x_assertion", "X_ASSERTION", "x-other"]),
             "[ -~]{0,12}"),
            0..4,
        ),
    ) {
        let mut h = http::HeaderMap::new();
        for (n, v) in &lines {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let ours: Vec<&String> = lines.iter().filter(|(n, _)| *n != "x-other").map(|(_, v)| v).collect();
        let got = super::assertion_in(&h, "x-assertion");
        match ours.len() {
            0 => proptest::prop_assert_eq!(got, Ok(None)),
            1 => {
                let want = ours[0].trim();
                proptest::prop_assert_eq!(got, Ok((!want.is_empty()).then_some(want)));
            }
            _ => proptest::prop_assert_eq!(got, Err(super::AssertionHeaderError::Ambiguous)),
        }
    }
}

use super::testing::TestSigner;
use super::*;
use crate::decode::ValueError;
use crate::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The three segments of a compact JWS.
fn split(token: &str) -> Option<[&str; 3]> {
    <[&str; 3]>::try_from(token.split('.').collect::<Vec<_>>()).ok()
}

const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://sso.example.com";

fn audiences() -> &'static [String] {
    static AUD: OnceLock<Vec<String>> = OnceLock::new();
    AUD.get_or_init(|| vec!["app".to_owned()])
}

fn expect() -> Expectations<'static> {
    Expectations {
        issuer: ISS,
        audiences: audiences(),
        algorithms: &Algorithm::ALL,
        now: NOW,
        leeway: 30,
        max_token_bytes: 8192,
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": "app",
        "sub": "u-123",
        "exp": NOW + 300,
        "iat": NOW,
        "email": "alice@example.com",
        "preferred_username": "alice",
        "name": "Alice Liddell",
        "groups": ["admins", "users"],
    })
}

/// One key of each kind, made once: RSA generation is slow-ish.
struct Keys {
    rsa: TestSigner,
    es256: TestSigner,
    es384: TestSigner,
    ed: TestSigner,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestSigner::rs256("rsa"),
        es256: TestSigner::es256("es256"),
        es384: TestSigner::new(Algorithm::ES384, "es384"),
        ed: TestSigner::ed25519("ed"),
    })
}

fn jwks_of(signers: &[&TestSigner]) -> Jwks {
    Jwks::parse(TestSigner::jwks_json(signers).as_bytes()).unwrap()
}

fn ok(signer: &TestSigner, claims: &Value) -> Result<Claims, JwtError> {
    verify(&signer.sign(claims), &jwks_of(&[signer]), &expect())
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v.as_object_mut().unwrap().insert(k.to_owned(), x);
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

fn b64(s: &str) -> String {
    B64URL.encode(s)
}

#[test]
fn every_algorithm_verifies() {
    let k = keys();
    let mut signers: Vec<TestSigner> = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ]
    .into_iter()
    .map(|a| k.rsa.with_algorithm(a).with_kid(a.as_str()))
    .collect();
    signers.extend([k.es256.clone(), k.es384.clone(), k.ed.clone()]);
    let all: Vec<&TestSigner> = signers.iter().collect();
    let jwks = jwks_of(&all);
    assert_eq!(jwks.len(), 9);
    for s in &signers {
        let c = verify(&s.sign(&claims()), &jwks, &expect())
            .unwrap_or_else(|e| panic!("{}: {e}", s.algorithm()));
        assert_eq!(c.subject, "u-123");
        assert_eq!(c.issuer, ISS);
        assert_eq!(c.audiences, ["app"]);
        assert_eq!(c.expires_at, NOW + 300);
        assert_eq!(c.issued_at, Some(NOW));
        assert_eq!(c.not_before, None);
        assert_eq!(c.get_str("email"), Some("alice@example.com"));
        assert_eq!(c.get_str_list("groups"), Some(vec!["admins", "users"]));
        assert_eq!(c.get_str_list("email"), Some(vec!["alice@example.com"]));
        assert_eq!(c.get_str_list("exp"), None);
    }
}

#[test]
fn a_key_without_jwk_alg_verifies_every_algorithm_of_its_kind() {
    let rsa = keys().rsa.without_jwk_alg();
    let jwks = jwks_of(&[&rsa]);
    for a in [Algorithm::RS256, Algorithm::PS512] {
        let t = rsa.with_algorithm(a).sign(&claims());
        assert!(verify(&t, &jwks, &expect()).is_ok(), "{a}");
    }
}

#[test]
fn wrong_key_does_not_verify() {
    let k = keys();
    let other = TestSigner::es256("es256");
    let jwks = jwks_of(&[&other]);
    assert_eq!(
        verify(&k.es256.sign(&claims()), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
    let other = TestSigner::ed25519("ed");
    assert_eq!(
        verify(&k.ed.sign(&claims()), &jwks_of(&[&other]), &expect()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn tampering_is_detected() {
    let s = &keys().es256;
    let jwks = jwks_of(&[s]);
    let token = s.sign(&claims());
    let [h, p, sig] = split(&token).unwrap();
    // Another payload under the original signature.
    let forged = b64(&with(claims(), "sub", "admin".into()).to_string());
    assert_eq!(
        verify(&format!("{h}.{forged}.{sig}"), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
    // Another header (still ES256, same kid) under the original signature.
    let h2 = b64(r#"{"alg":"ES256","kid":"es256"}"#);
    assert_eq!(
        verify(&format!("{h2}.{p}.{sig}"), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
    // A flipped signature bit.
    let mut raw = B64URL.decode(sig).unwrap();
    raw[5] ^= 1;
    let sig2 = B64URL.encode(&raw);
    assert_eq!(
        verify(&format!("{h}.{p}.{sig2}"), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
    // No signature at all.
    assert_eq!(
        verify(&format!("{h}.{p}."), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn alg_none_is_refused() {
    let s = &keys().es256;
    let jwks = jwks_of(&[s]);
    let p = b64(&claims().to_string());
    for alg in ["none", "None", "NONE"] {
        let h = b64(&format!(r#"{{"alg":"{alg}","kid":"es256"}}"#));
        for token in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
            assert_eq!(
                verify(&token, &jwks, &expect()),
                Err(JwtError::UnsupportedAlgorithm(alg.to_owned()))
            );
        }
    }
}

#[test]
fn hs256_with_the_rsa_public_key_as_secret_is_refused() {
    use aws_lc_rs::hmac;
    let rsa = &keys().rsa;
    let jwks_json = TestSigner::jwks_json(&[rsa]);
    let jwks = Jwks::parse(jwks_json.as_bytes()).unwrap();
    // Every form of the public key an attacker might use as the secret.
    let secrets = [
        rsa.public_key_bytes(),
        jwks_json.clone().into_bytes(),
        rsa.jwk().to_string().into_bytes(),
    ];
    for secret in secrets {
        let h = b64(r#"{"alg":"HS256","kid":"rsa","typ":"JWT"}"#);
        let p = b64(&claims().to_string());
        let input = format!("{h}.{p}");
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", B64URL.encode(tag.as_ref()));
        assert_eq!(
            verify(&token, &jwks, &expect()),
            Err(JwtError::UnsupportedAlgorithm("HS256".to_owned()))
        );
    }
}

#[test]
fn algorithm_must_be_allowed() {
    let k = keys();
    let jwks = jwks_of(&[&k.es256, &k.ed]);
    let only_ed = Expectations {
        algorithms: &[Algorithm::EdDSA],
        ..expect()
    };
    assert_eq!(
        verify(&k.es256.sign(&claims()), &jwks, &only_ed),
        Err(JwtError::AlgorithmNotAllowed)
    );
    assert!(verify(&k.ed.sign(&claims()), &jwks, &only_ed).is_ok());
    let none = Expectations {
        algorithms: &[],
        ..expect()
    };
    assert_eq!(
        verify(&k.ed.sign(&claims()), &jwks, &none),
        Err(JwtError::AlgorithmNotAllowed)
    );
}

#[test]
fn key_must_fit_the_algorithm() {
    let k = keys();
    // The JWK says RS256; a PS256 token with that kid is refused even
    // though the key could verify PSS.
    let jwks = jwks_of(&[&k.rsa]);
    let ps = k.rsa.with_algorithm(Algorithm::PS256);
    assert_eq!(
        verify(&ps.sign(&claims()), &jwks, &expect()),
        Err(JwtError::KeyMismatch)
    );
    // A header claiming ES256 with the kid of an RSA key.
    let header = json!({"alg": "ES256", "kid": "rsa"});
    let t = k.es256.sign_with_header(&header, &claims());
    assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::KeyMismatch));
    // ES384 header with a P-256 key's kid.
    let jwks = jwks_of(&[&k.es256]);
    let t = k
        .es256
        .sign_with_header(&json!({"alg": "ES384", "kid": "es256"}), &claims());
    assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::KeyMismatch));
}

#[test]
fn key_selection() {
    let k = keys();
    let jwks = jwks_of(&[&k.es256, &k.ed]);
    // Unknown kid: the caller may refetch.
    let t = k.ed.with_kid("rotated").sign(&claims());
    assert_eq!(
        verify(&t, &jwks, &expect()),
        Err(JwtError::UnknownKey {
            kid: Some("rotated".into())
        })
    );
    // No kid: the only key fitting the algorithm.
    let t = k.ed.sign_with_header(&json!({"alg": "EdDSA"}), &claims());
    assert!(verify(&t, &jwks, &expect()).is_ok());
    // No kid and two keys fitting: ambiguous.
    let ed2 = TestSigner::ed25519("ed2");
    let jwks2 = jwks_of(&[&k.ed, &ed2]);
    assert_eq!(
        verify(&t, &jwks2, &expect()),
        Err(JwtError::AmbiguousKey { kid: None })
    );
    // No kid and no key fitting.
    let jwks3 = jwks_of(&[&k.es256]);
    assert_eq!(
        verify(&t, &jwks3, &expect()),
        Err(JwtError::UnknownKey { kid: None })
    );
    // Two keys under one kid.
    let twin = TestSigner::ed25519("ed");
    let jwks4 = jwks_of(&[&k.ed, &twin]);
    assert_eq!(
        verify(&k.ed.sign(&claims()), &jwks4, &expect()),
        Err(JwtError::AmbiguousKey {
            kid: Some("ed".into())
        })
    );
    // A kid never falls back to a key without one.
    let anon = Jwks::parse(
        json!({"keys": [without(k.ed.jwk(), "kid")]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify(&k.ed.sign(&claims()), &anon, &expect()),
        Err(JwtError::UnknownKey {
            kid: Some("ed".into())
        })
    );
    assert!(verify(&t, &anon, &expect()).is_ok());
}

#[test]
fn expiry_and_leeway() {
    let s = &keys().ed;
    // Past beyond leeway.
    let c = with(claims(), "exp", (NOW - 31).into());
    assert_eq!(ok(s, &c), Err(JwtError::Expired));
    // exp == now - leeway: "on or after" is expired.
    let c = with(claims(), "exp", (NOW - 30).into());
    assert_eq!(ok(s, &c), Err(JwtError::Expired));
    // Within leeway.
    let c = with(claims(), "exp", (NOW - 29).into());
    assert!(ok(s, &c).is_ok());
    // Missing.
    assert_eq!(
        ok(s, &without(claims(), "exp")),
        Err(JwtError::MissingExpiry)
    );
    let c = with(claims(), "exp", Value::Null);
    assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { claim, .. }) if claim == "exp"));
    let c = with(claims(), "exp", "2030-01-01".into());
    assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { claim, .. }) if claim == "exp"));
    // Fractional: rounded down.
    let c = with(claims(), "exp", json!((NOW - 29) as f64 + 0.9));
    assert_eq!(ok(s, &c).unwrap().expires_at, NOW - 29);
    let c = with(claims(), "exp", json!(1e300));
    assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { .. })));
    // Huge integer exp does not overflow.
    let c = with(claims(), "exp", i64::MAX.into());
    assert!(ok(s, &c).is_ok());
    // Negative leeway is no leeway.
    let strict = Expectations {
        leeway: -1000,
        ..expect()
    };
    let c = with(claims(), "exp", (NOW + 1).into());
    assert!(verify(&s.sign(&c), &jwks_of(&[s]), &strict).is_ok());
    let c = with(claims(), "exp", NOW.into());
    assert_eq!(
        verify(&s.sign(&c), &jwks_of(&[s]), &strict),
        Err(JwtError::Expired)
    );
}

#[test]
fn not_before_and_issued_at() {
    let s = &keys().ed;
    let c = with(claims(), "nbf", (NOW + 31).into());
    assert_eq!(ok(s, &c), Err(JwtError::NotYetValid));
    let c = with(claims(), "nbf", (NOW + 30).into());
    assert_eq!(ok(s, &c).unwrap().not_before, Some(NOW + 30));
    let c = with(claims(), "iat", (NOW + 31).into());
    assert_eq!(ok(s, &c), Err(JwtError::IssuedInFuture));
    let c = with(claims(), "iat", (NOW + 30).into());
    assert!(ok(s, &c).is_ok());
    // Fractional iat is rounded up, towards refusal.
    let c = with(claims(), "iat", json!((NOW + 30) as f64 + 0.1));
    assert_eq!(ok(s, &c), Err(JwtError::IssuedInFuture));
    assert!(ok(s, &without(claims(), "iat")).is_ok());
}

#[test]
fn issuer_must_match_exactly() {
    let s = &keys().ed;
    for iss in [
        json!("https://sso.example.com/"),
        json!("https://SSO.example.com"),
        json!("https://evil.example.com"),
        json!(["https://sso.example.com"]),
        json!(""),
        Value::Null,
    ] {
        assert_eq!(
            ok(s, &with(claims(), "iss", iss.clone())),
            Err(JwtError::WrongIssuer),
            "{iss}"
        );
    }
    assert_eq!(ok(s, &without(claims(), "iss")), Err(JwtError::WrongIssuer));
    let empty = Expectations {
        issuer: "",
        ..expect()
    };
    let c = with(claims(), "iss", "".into());
    assert_eq!(
        verify(&s.sign(&c), &jwks_of(&[s]), &empty),
        Err(JwtError::WrongIssuer)
    );
}

#[test]
fn audience_string_or_array() {
    let s = &keys().ed;
    assert_eq!(
        ok(s, &with(claims(), "aud", json!("app")))
            .unwrap()
            .audiences,
        ["app"]
    );
    let c = ok(s, &with(claims(), "aud", json!(["other", "app"]))).unwrap();
    assert_eq!(c.audiences, ["other", "app"]);
    for aud in [json!("other"), json!(["other"]), json!([]), json!("APP")] {
        assert_eq!(
            ok(s, &with(claims(), "aud", aud.clone())),
            Err(JwtError::WrongAudience),
            "{aud}"
        );
    }
    assert_eq!(
        ok(s, &without(claims(), "aud")),
        Err(JwtError::WrongAudience)
    );
    for aud in [json!(["app", 1]), json!(7), json!({"app": true})] {
        assert!(
            matches!(ok(s, &with(claims(), "aud", aud.clone())), Err(JwtError::BadClaim { claim, .. }) if claim == "aud"),
            "{aud}"
        );
    }
    // Empty expected audiences: not checked.
    let any = Expectations {
        audiences: &[],
        ..expect()
    };
    let c = without(claims(), "aud");
    assert!(verify(&s.sign(&c), &jwks_of(&[s]), &any).is_ok());
}

#[test]
fn subject_is_required() {
    let s = &keys().ed;
    assert_eq!(
        ok(s, &without(claims(), "sub")),
        Err(JwtError::MissingSubject)
    );
    assert_eq!(
        ok(s, &with(claims(), "sub", "".into())),
        Err(JwtError::MissingSubject)
    );
    assert!(matches!(
        ok(s, &with(claims(), "sub", 42.into())),
        Err(JwtError::BadClaim { claim, .. }) if claim == "sub"
    ));
}

#[test]
fn header_checks() {
    let s = &keys().ed;
    let jwks = jwks_of(&[s]);
    let sign = |h: Value| verify(&s.sign_with_header(&h, &claims()), &jwks, &expect());
    assert_eq!(
        sign(json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"], "exp": 1})),
        Err(JwtError::CriticalHeader)
    );
    assert_eq!(
        sign(json!({"alg": "EdDSA", "kid": "ed", "crit": []})),
        Err(JwtError::CriticalHeader)
    );
    // b64: false only means something under crit (RFC 7797 §6).
    assert_eq!(
        sign(json!({"alg": "EdDSA", "kid": "ed", "b64": false, "crit": ["b64"]})),
        Err(JwtError::CriticalHeader)
    );
    for typ in ["JWT", "jwt", "application/jwt", "Application/JWT"] {
        assert!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "typ": typ})).is_ok(),
            "{typ}"
        );
    }
    for typ in ["at+jwt", "application/at+jwt", "logout+jwt", "JOSE", ""] {
        assert_eq!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "typ": typ})),
            Err(JwtError::WrongType),
            "{typ}"
        );
    }
    assert!(matches!(
        sign(json!({"alg": "EdDSA", "kid": "ed", "typ": 1})),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(
        sign(json!({"alg": "EdDSA", "kid": "ed", "cty": "JWT"})),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(
        sign(json!({"kid": "ed"})),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(
        sign(json!({"alg": ["EdDSA"], "kid": "ed"})),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(
        sign(json!({"alg": "EdDSA", "kid": 7})),
        Err(JwtError::Malformed(_))
    ));
    // Duplicate header parameters: refused, whichever would win.
    let t = s.sign_bytes(
        br#"{"alg":"EdDSA","kid":"ed","alg":"EdDSA"}"#,
        claims().to_string().as_bytes(),
    );
    assert!(matches!(
        verify(&t, &jwks, &expect()),
        Err(JwtError::Malformed(_))
    ));
}

#[test]
fn embedded_keys_and_key_urls_are_ignored() {
    let k = keys();
    let jwks = jwks_of(&[&k.ed]);
    // An attacker's own key, offered every way a header can.
    let attacker = TestSigner::ed25519("ed");
    let header = json!({
        "alg": "EdDSA",
        "kid": "ed",
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil.example/cert.pem",
        "jwk": attacker.jwk(),
        "x5c": ["MIIB"],
    });
    assert_eq!(
        verify(
            &attacker.sign_with_header(&header, &claims()),
            &jwks,
            &expect()
        ),
        Err(JwtError::BadSignature)
    );
    // The same header on a token our key signed: still verifies.
    assert!(verify(&k.ed.sign_with_header(&header, &claims()), &jwks, &expect()).is_ok());
}

#[test]
fn shape_is_strict() {
    let s = &keys().ed;
    let jwks = jwks_of(&[s]);
    let token = s.sign(&claims());
    assert!(verify(&token, &jwks, &expect()).is_ok());
    let [h, p, sig] = split(&token).unwrap();
    // '=' padding in the header or signature segment. (In the payload
    // it breaks the signature first: the signing input is the text.)
    for t in [format!("{h}=.{p}.{sig}"), format!("{h}.{p}.{sig}==")] {
        assert!(
            matches!(verify(&t, &jwks, &expect()), Err(JwtError::Malformed(_))),
            "{t}"
        );
    }
    assert_eq!(
        verify(&format!("{h}.{p}=.{sig}"), &jwks, &expect()),
        Err(JwtError::BadSignature)
    );
    // Correctly padded segments, validly signed: still refused.
    let padded = base64::engine::general_purpose::URL_SAFE;
    let mut payload = claims().to_string();
    while payload.len().is_multiple_of(3) {
        payload.push(' ');
    }
    let padded_h = padded.encode(r#"{"alg":"EdDSA","kid":"ed"}"#);
    assert!(padded_h.ends_with('='));
    for input in [
        format!("{h}.{}", padded.encode(&payload)),
        format!("{padded_h}.{p}"),
    ] {
        assert!(input.ends_with('=') || input.contains("=."));
        let t = format!("{input}.{}", B64URL.encode(s.signature(input.as_bytes())));
        assert!(
            matches!(verify(&t, &jwks, &expect()), Err(JwtError::Malformed(_))),
            "{t}"
        );
    }
    let padded_sig = padded.encode(s.signature(format!("{h}.{p}").as_bytes()));
    assert!(padded_sig.ends_with('='));
    assert!(matches!(
        verify(&format!("{h}.{p}.{padded_sig}"), &jwks, &expect()),
        Err(JwtError::Malformed(_))
    ));
    // The standard alphabet ('+', '/'), validly signed: refused.
    let std_h = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(r#"{"alg":"EdDSA","kid":"ed","x":"???>>>"}"#);
    assert!(std_h.contains('+') && std_h.contains('/'));
    let input = format!("{std_h}.{p}");
    let t = format!("{input}.{}", B64URL.encode(s.signature(input.as_bytes())));
    assert!(matches!(
        verify(&t, &jwks, &expect()),
        Err(JwtError::Malformed(_))
    ));
    // Whitespace, extra or missing dots, JWE.
    for t in [
        format!("{h}.{p}.{sig}."),
        format!("{h}.{p}"),
        format!("{h}..{p}.{sig}"),
        format!(".{h}.{p}.{sig}"),
        format!("{h}.{p}.{sig}.x.y"),
        format!(" {token}"),
        format!("{token}\n"),
        String::new(),
        "...".to_owned(),
    ] {
        let r = verify(&t, &jwks, &expect());
        assert!(matches!(r, Err(JwtError::Malformed(_))), "{t:?}: {r:?}");
    }
    // Payloads that verify but are not JSON objects.
    for payload in [&b"[]"[..], b"null", b"\"x\"", b"{", b"{} {}", b"\xff"] {
        let t = s.sign_bytes(s.header().to_string().as_bytes(), payload);
        assert!(matches!(
            verify(&t, &jwks, &expect()),
            Err(JwtError::Malformed(_))
        ));
    }
    // Duplicate claims.
    let t = s.sign_bytes(
        s.header().to_string().as_bytes(),
        format!(
            r#"{{"iss":"{ISS}","aud":"app","exp":{},"sub":"alice","sub":"admin"}}"#,
            NOW + 60
        )
        .as_bytes(),
    );
    assert_eq!(
        verify(&t, &jwks, &expect()),
        Err(JwtError::Malformed("the claims repeat a name"))
    );
}

#[test]
fn oversize_is_refused_before_parsing() {
    let s = &keys().ed;
    let jwks = jwks_of(&[s]);
    let big = with(claims(), "pad", "x".repeat(10_000).into());
    let t = s.sign(&big);
    assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::TooLong));
    let roomy = Expectations {
        max_token_bytes: 20_000,
        ..expect()
    };
    assert!(verify(&t, &jwks, &roomy).is_ok());
    let exact = Expectations {
        max_token_bytes: t.len(),
        ..expect()
    };
    assert!(verify(&t, &jwks, &exact).is_ok());
}

#[test]
fn errors_read_as_short_sentences_without_the_token() {
    let s = &keys().ed;
    let jwks = jwks_of(&[s]);
    let token = s.with_kid("secret-kid").sign(&claims());
    let e = verify(&token, &jwks, &expect()).unwrap_err();
    assert!(!e.to_string().contains("secret-kid"));
    assert_eq!(
        e.to_string(),
        "no key in the JWK Set matches the assertion's key id"
    );
    // An untrusted alg is shown cut to 32 characters, printable ASCII only.
    let hostile = s.sign_with_header(&json!({"alg": "HS256\n\u{1b}[31m", "kid": "ed"}), &claims());
    assert_eq!(
        verify(&hostile, &jwks, &expect()).unwrap_err().to_string(),
        r#"the assertion's algorithm "HS256??[31m" is not supported"#
    );
    let long = s.sign_with_header(&json!({"alg": "x".repeat(100), "kid": "ed"}), &claims());
    assert_eq!(
        verify(&long, &jwks, &expect()),
        Err(JwtError::UnsupportedAlgorithm("x".repeat(32)))
    );
    let b: Box<dyn std::error::Error> = Box::new(JwtError::Expired);
    assert_eq!(b.to_string(), "the assertion has expired");
    let b: Box<dyn std::error::Error> = Box::new(JwksError::Empty);
    assert_eq!(b.to_string(), "the JWK Set has no usable signing key");
}

fn identity(c: Value, mapping: &ClaimMapping) -> Result<Identity, JwtError> {
    let claims = ok(&keys().ed, &c).unwrap();
    identity_from_claims(&claims, mapping, "jwt", 64, 128)
}

#[test]
fn presets_map_their_claims() {
    let id = identity(claims(), &ClaimMapping::oidc()).unwrap();
    assert_eq!(id.source, "jwt");
    assert_eq!(id.subject, "u-123");
    assert_eq!(id.username, "alice");
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(id.groups, ["admins", "users"]);

    // Pomerium: sub and user are the id, no login name.
    let pomerium = json!({
        "iss": ISS, "aud": "app", "exp": NOW + 300, "iat": NOW,
        "jti": "5f0b", "sid": "s1",
        "sub": "google-oauth2|1234", "user": "google-oauth2|1234",
        "email": "bob@example.com", "name": "Bob, Jr.",
        "groups": ["00gid1", "engineering"],
    });
    let id = identity(pomerium.clone(), &ClaimMapping::pomerium()).unwrap();
    assert_eq!(id.subject, "google-oauth2|1234");
    assert_eq!(id.username, "bob@example.com");
    assert_eq!(id.display_name.as_deref(), Some("Bob, Jr."));
    assert_eq!(id.groups, ["00gid1", "engineering"]);
    // Pomerium used to send `groups: null`.
    let id = identity(
        with(pomerium, "groups", Value::Null),
        &ClaimMapping::pomerium(),
    )
    .unwrap();
    assert!(id.groups.is_empty());

    // Cloudflare Access.
    let cf = json!({
        "iss": ISS, "aud": ["app"], "exp": NOW + 300, "iat": NOW, "nbf": NOW,
        "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
        "email": "carol@example.com", "type": "app",
        "identity_nonce": "6ei69kawdKzMIAPF", "country": "US",
    });
    let id = identity(cf, &ClaimMapping::cloudflare()).unwrap();
    assert_eq!(id.username, "carol@example.com");
    assert_eq!(id.email.as_deref(), Some("carol@example.com"));
    assert!(id.groups.is_empty());

    // authentik.
    let ak = json!({
        "iss": ISS, "aud": "app", "exp": NOW + 300, "iat": NOW,
        "sub": "900347b8a29876b45ca6f757", "email": "dave@example.com",
        "name": "Dave Example", "given_name": "Dave Example",
        "preferred_username": "dave", "nickname": "dave",
        "groups": ["authentik Admins"],
    });
    let id = identity(ak, &ClaimMapping::authentik()).unwrap();
    assert_eq!(id.username, "dave");
    assert_eq!(id.given_name, None);
    assert_eq!(id.groups, ["authentik Admins"]);

    for name in ClaimMapping::PRESETS {
        assert!(ClaimMapping::preset(name).is_some(), "{name}");
    }
    assert_eq!(
        ClaimMapping::preset("authentik"),
        Some(ClaimMapping::authentik())
    );
    assert_eq!(ClaimMapping::preset("nope"), None);
}

#[test]
fn username_falls_back_to_email_then_subject() {
    let m = ClaimMapping::oidc();
    let c = without(claims(), "preferred_username");
    assert_eq!(
        identity(c.clone(), &m).unwrap().username,
        "alice@example.com"
    );
    let c = without(c, "email");
    assert_eq!(identity(c, &m).unwrap().username, "u-123");
    // Empty or null counts as absent; the first present candidate wins.
    let c = with(claims(), "preferred_username", "".into());
    assert_eq!(identity(c, &m).unwrap().username, "alice@example.com");
    let m2 = ClaimMapping {
        username: vec!["login".into(), "preferred_username".into()],
        ..ClaimMapping::oidc()
    };
    assert_eq!(identity(claims(), &m2).unwrap().username, "alice");
    let c = with(claims(), "login", "al".into());
    assert_eq!(identity(c, &m2).unwrap().username, "al");
    let c = with(claims(), "login", Value::Null);
    assert_eq!(identity(c, &m2).unwrap().username, "alice");
}

#[test]
fn identity_values_follow_the_header_rules() {
    let m = ClaimMapping::oidc();
    for (claim, bad) in [
        ("preferred_username", "ali\nce"),
        ("preferred_username", "alice\u{0}"),
        ("email", "a\u{85}@example.com"),
        ("name", "Alice\r\nX-Admin: 1"),
        ("given_name", "\u{7f}"),
    ] {
        assert!(
            matches!(
                identity(with(claims(), claim, bad.into()), &m),
                Err(JwtError::BadValue { claim: c, reason: ValueError::ControlCharacter }) if c == claim
            ),
            "{claim}: {bad:?}"
        );
    }
    // Too long (64 here).
    let long = "a".repeat(65);
    assert!(matches!(
        identity(with(claims(), "preferred_username", long.into()), &m),
        Err(JwtError::BadValue {
            reason: ValueError::TooLong { max: 64 },
            ..
        })
    ));
    // Not strings.
    assert!(matches!(
        identity(with(claims(), "email", json!(["a@b"])), &m),
        Err(JwtError::BadClaim { claim, .. }) if claim == "email"
    ));
    // Keys refuse surrounding whitespace; names are trimmed.
    for claim in ["preferred_username", "email"] {
        assert!(matches!(
            identity(with(claims(), claim, " admin".into()), &m),
            Err(JwtError::BadClaim { .. })
        ));
    }
    let id = identity(with(claims(), "name", "  Alice  ".into()), &m).unwrap();
    assert_eq!(id.display_name.as_deref(), Some("Alice"));
    // Encoded-looking values stay literal.
    let id = identity(
        with(claims(), "preferred_username", "=?utf-8?q?admin?=".into()),
        &m,
    )
    .unwrap();
    assert_eq!(id.username, "=?utf-8?q?admin?=");
    // A subject claim that is absent under a custom mapping.
    let custom = ClaimMapping {
        subject: "uid".into(),
        ..ClaimMapping::oidc()
    };
    assert_eq!(identity(claims(), &custom), Err(JwtError::MissingSubject));
    let id = identity(with(claims(), "uid", "42".into()), &custom).unwrap();
    assert_eq!(id.subject, "42");
}

#[test]
fn groups_are_validated() {
    let m = ClaimMapping::oidc();
    for g in [json!(["users,admins"]), json!(["a;b"]), json!("x|y")] {
        assert!(
            matches!(
                identity(with(claims(), "groups", g.clone()), &m),
                Err(JwtError::BadGroups { .. })
            ),
            "{g}"
        );
    }
    assert!(matches!(
        identity(with(claims(), "groups", json!([" admins"])), &m),
        Err(JwtError::BadGroups { .. })
    ));
    assert!(matches!(
        identity(with(claims(), "groups", json!(["ad\u{0}mins"])), &m),
        Err(JwtError::BadValue { .. })
    ));
    assert!(matches!(
        identity(with(claims(), "groups", json!(["a", 1])), &m),
        Err(JwtError::BadClaim { .. })
    ));
    assert!(matches!(
        identity(with(claims(), "groups", json!({"a": 1})), &m),
        Err(JwtError::BadClaim { .. })
    ));
    // A single string is one group; empty names skipped; duplicates merged.
    let id = identity(with(claims(), "groups", json!("solo")), &m).unwrap();
    assert_eq!(id.groups, ["solo"]);
    let id = identity(with(claims(), "groups", json!(["a", "", "b", "a"])), &m).unwrap();
    assert_eq!(id.groups, ["a", "b"]);
    // The bound (128 here) is on the joined list.
    let fits: Vec<String> = (0..32).map(|i| format!("g{i:02}")).collect();
    assert_eq!(fits.join(",").len(), 127);
    assert!(identity(with(claims(), "groups", json!(fits)), &m).is_ok());
    let too_many: Vec<String> = (0..33).map(|i| format!("g{i:02}")).collect();
    assert!(matches!(
        identity(with(claims(), "groups", json!(too_many)), &m),
        Err(JwtError::BadGroups { .. })
    ));
}

#[test]
fn testing_signers_are_deterministic_when_seeded() {
    let a = TestSigner::ed25519_from_seed("a", &[7; 32]);
    let b = TestSigner::ed25519_from_seed("a", &[7; 32]);
    assert_eq!(a.jwk(), b.jwk());
    let a = TestSigner::es256_from_seed("e", &[9; 32]);
    let b = TestSigner::es256_from_seed("e", &[9; 32]);
    assert_eq!(a.jwk(), b.jwk());
    let jwks = jwks_of(&[&a]);
    assert!(verify(&b.sign(&claims()), &jwks, &expect()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_never_panics(s in "\\PC{0,300}") {
        let jwks = jwks_of(&[&keys().ed, &keys().es256]);
        prop_assert!(verify(&s, &jwks, &expect()).is_err());
    }

    #[test]
    fn verify_never_panics_on_token_shaped_input(
        h in "[A-Za-z0-9_=-]{0,60}", p in "[A-Za-z0-9_=-]{0,60}", sig in "[A-Za-z0-9_=-]{0,90}",
    ) {
        let jwks = jwks_of(&[&keys().ed]);
        let t = format!("{h}.{p}.{sig}");
        prop_assert!(verify(&t, &jwks, &expect()).is_err());
    }

    #[test]
    fn jwks_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Jwks::parse(&b);
    }

    #[test]
    fn any_single_byte_change_breaks_a_valid_token(
        pos in any::<prop::sample::Index>(), byte in any::<u8>(), which in 0usize..2,
    ) {
        let s = if which == 0 { &keys().ed } else { &keys().es256 };
        let jwks = jwks_of(&[s]);
        let token = s.sign(&claims());
        prop_assert!(verify(&token, &jwks, &expect()).is_ok());
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(verify(&changed, &jwks, &expect()).is_err(), "{changed}");
        }
    }

    #[test]
    fn identities_are_clean_and_bounded(
        // Printable text and control characters (C0, DEL, NEL), which
        // must never come out.
        username in "[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,80}",
        name in "[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,80}",
        groups in proptest::collection::vec("[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,20}", 0..10),
    ) {
        let c = with(with(with(claims(), "preferred_username", username.into()), "name", name.into()), "groups", json!(groups));
        let claims = ok(&keys().ed, &c).unwrap();
        for name in ClaimMapping::PRESETS {
            let m = ClaimMapping::preset(name).unwrap();
            if let Ok(id) = identity_from_claims(&claims, &m, "jwt", 64, 128) {
                for v in [&id.subject, &id.username].into_iter().chain(id.email.iter()).chain(id.display_name.iter()) {
                    prop_assert!(!v.chars().any(char::is_control));
                    prop_assert!(!v.is_empty() && v.len() <= 64);
                }
                let joined = id.groups.join(",");
                prop_assert!(joined.len() <= 128);
                for g in &id.groups {
                    prop_assert!(!g.is_empty() && !g.contains([',', ';', '|']));
                    prop_assert!(!g.chars().any(char::is_control));
                }
            }
        }
    }
}
