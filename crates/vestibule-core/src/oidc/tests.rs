//! ID-token and logout-token checks, end to end through real signatures
//! (vestibule-jose's test signers) and a JWK Set.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::jwt::testing::TestSigner;
use crate::jwt::{Algorithm, Jwks};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.example.com";
const CLIENT: &str = "vestibule";
const NONCE: &str = "n-0S6_WzA2Mj";

struct Fixture {
    provider: TestSigner,
    other: TestSigner,
    jwks: Jwks,
}

/// The provider's key in its JWKS, and a key of someone else's.
fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let provider = TestSigner::es256_from_seed("idp-1", &[0x31; 32]);
        let other = TestSigner::es256_from_seed("idp-1", &[0x32; 32]);
        let jwks = Jwks::parse(TestSigner::jwks_json(&[&provider]).as_bytes()).unwrap();
        Fixture {
            provider,
            other,
            jwks,
        }
    })
}

fn id_expect(access_token: Option<&str>) -> IdTokenExpectations<'_> {
    IdTokenExpectations {
        issuer: ISS,
        client_id: CLIENT,
        trusted_audiences: &[],
        algorithms: &Algorithm::ALL,
        nonce: NONCE,
        access_token,
        now: NOW,
        leeway: 60,
        max_age: 600,
        max_token_bytes: 16 * 1024,
    }
}

fn id_claims() -> Value {
    json!({"iss": ISS, "aud": CLIENT, "sub": "u-1", "exp": NOW + 300, "iat": NOW - 5,
           "nonce": NONCE, "sid": "s-1", "email": "a@example.com"})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn id(claims: &Value) -> Result<IdToken, OidcTokenError> {
    verify_id_token(&fx().provider.sign(claims), &fx().jwks, &id_expect(None))
}

#[test]
fn id_token_good_one_passes_with_its_session_id() {
    let t = id(&id_claims()).unwrap();
    assert_eq!(t.claims.subject, "u-1");
    assert_eq!(t.claims.issuer, ISS);
    assert_eq!(t.session_id.as_deref(), Some("s-1"));
    assert_eq!(t.issued_at, NOW - 5);
    let t = id(&without(id_claims(), "sid")).unwrap();
    assert_eq!(t.session_id, None);
}

#[test]
fn id_token_refusals_name_the_check() {
    use OidcTokenError as E;
    let c = id_claims();
    for (claims, want) in [
        (with(c.clone(), "nonce", json!("other")), E::WrongNonce),
        (without(c.clone(), "nonce"), E::WrongNonce),
        (with(c.clone(), "nonce", json!(7)), E::WrongNonce),
        (
            with(c.clone(), "iss", json!("https://idp.example.com/")),
            E::Jwt(JwtError::WrongIssuer),
        ),
        (
            with(c.clone(), "aud", json!("someone-else")),
            E::Jwt(JwtError::WrongAudience),
        ),
        (
            with(c.clone(), "aud", json!([CLIENT, "someone-else"])),
            E::UntrustedAudience,
        ),
        (
            with(c.clone(), "azp", json!("someone-else")),
            E::WrongAuthorizedParty,
        ),
        (
            with(c.clone(), "exp", json!(NOW - 61)),
            E::Jwt(JwtError::Expired),
        ),
        (without(c.clone(), "exp"), E::Jwt(JwtError::MissingExpiry)),
        (without(c.clone(), "iat"), E::MissingIssuedAt),
        (with(c.clone(), "iat", json!(NOW - 700)), E::StaleIssuedAt),
        (
            with(c.clone(), "iat", json!(NOW + 120)),
            E::Jwt(JwtError::IssuedInFuture),
        ),
        (
            with(c.clone(), "sub", json!("x".repeat(256))),
            E::SubjectTooLong,
        ),
        (
            with(c.clone(), "sid", json!(1)),
            E::BadClaim {
                claim: "sid",
                reason: "is not a non-empty string",
            },
        ),
        (
            with(c.clone(), "at_hash", json!("AAAA")),
            E::WrongAccessTokenHash,
        ),
    ] {
        assert_eq!(id(&claims), Err(want), "{claims}");
    }
    // azp equal to us, and a trusted second audience, pass.
    assert!(id(&with(c.clone(), "azp", json!(CLIENT))).is_ok());
    let trusted = vec!["api".to_owned()];
    let token = fx().provider.sign(&with(c, "aud", json!([CLIENT, "api"])));
    let expect = IdTokenExpectations {
        trusted_audiences: &trusted,
        ..id_expect(None)
    };
    assert!(verify_id_token(&token, &fx().jwks, &expect).is_ok());
}

#[test]
fn id_token_from_another_key_alg_none_or_a_logout_type_is_refused() {
    let c = id_claims();
    let forged = fx().other.sign(&c);
    assert_eq!(
        verify_id_token(&forged, &fx().jwks, &id_expect(None)),
        Err(OidcTokenError::Jwt(JwtError::BadSignature))
    );
    let body = fx().provider.sign(&c);
    let mut parts = body.split('.');
    let none_header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"none"}"#,
    );
    let unsigned = format!("{none_header}.{}.", parts.nth(1).unwrap());
    assert!(matches!(
        verify_id_token(&unsigned, &fx().jwks, &id_expect(None)),
        Err(OidcTokenError::Jwt(
            JwtError::UnsupportedAlgorithm(_) | JwtError::Malformed(_)
        ))
    ));
    let header = json!({"alg": "ES256", "kid": "idp-1", "typ": "logout+jwt"});
    let typed = fx().provider.sign_with_header(&header, &c);
    assert_eq!(
        verify_id_token(&typed, &fx().jwks, &id_expect(None)),
        Err(OidcTokenError::Jwt(JwtError::WrongType))
    );
    // An unknown kid comes back as such, for the one JWKS refetch.
    let rotated = fx().other.with_kid("idp-2").sign(&c);
    assert!(matches!(
        verify_id_token(&rotated, &fx().jwks, &id_expect(None)),
        Err(OidcTokenError::Jwt(JwtError::UnknownKey { .. }))
    ));
    // Only the allow-listed algorithms.
    let rs_only = IdTokenExpectations {
        algorithms: &[Algorithm::RS256],
        ..id_expect(None)
    };
    assert_eq!(
        verify_id_token(&body, &fx().jwks, &rs_only),
        Err(OidcTokenError::Jwt(JwtError::AlgorithmNotAllowed))
    );
}

#[test]
fn at_hash_matches_the_access_token() {
    // OIDC Core §A.3's example: access token and at_hash for RS256.
    assert_eq!(
        token_hash(
            Algorithm::RS256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        ),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
    let at = "an-access-token";
    let token = fx().provider.sign(&with(
        id_claims(),
        "at_hash",
        json!(token_hash(Algorithm::ES256, at)),
    ));
    assert!(verify_id_token(&token, &fx().jwks, &id_expect(Some(at))).is_ok());
    assert_eq!(
        verify_id_token(&token, &fx().jwks, &id_expect(Some("another"))),
        Err(OidcTokenError::WrongAccessTokenHash)
    );
    assert_eq!(
        verify_id_token(&token, &fx().jwks, &id_expect(None)),
        Err(OidcTokenError::WrongAccessTokenHash)
    );
}

fn logout_expect() -> LogoutTokenExpectations<'static> {
    LogoutTokenExpectations {
        issuer: ISS,
        client_id: CLIENT,
        algorithms: &Algorithm::ALL,
        now: NOW,
        leeway: 60,
        max_age: 300,
        require_expiry: false,
        max_token_bytes: 16 * 1024,
    }
}

fn logout_claims() -> Value {
    json!({"iss": ISS, "aud": [CLIENT], "sub": "u-1", "sid": "s-1", "iat": NOW - 2,
           "exp": NOW + 120, "jti": "j-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}})
}

fn logout(claims: &Value) -> Result<LogoutToken, OidcTokenError> {
    let header = json!({"alg": "ES256", "kid": "idp-1", "typ": "logout+jwt"});
    let token = fx().provider.sign_with_header(&header, claims);
    verify_logout_token(&token, &fx().jwks, &logout_expect())
}

#[test]
fn logout_token_good_one_passes() {
    let t = logout(&logout_claims()).unwrap();
    assert_eq!(t.session_id.as_deref(), Some("s-1"));
    assert_eq!(t.subject.as_deref(), Some("u-1"));
    assert_eq!(t.token_id, "j-1");
    assert_eq!(t.replay_until, NOW + 180);
    // sub only, or sid only.
    assert_eq!(
        logout(&without(logout_claims(), "sid")).unwrap().session_id,
        None
    );
    assert_eq!(
        logout(&without(logout_claims(), "sub")).unwrap().subject,
        None
    );
}

#[test]
fn logout_token_typ_may_be_absent_jwt_or_logout_jwt_only() {
    let c = logout_claims();
    for (typ, ok) in [
        (None, true),
        (Some("JWT"), true),
        (Some("logout+jwt"), true),
        (Some("application/logout+jwt"), true),
        (Some("at+jwt"), false),
        (Some("secevent+jwt"), false),
    ] {
        let mut header = json!({"alg": "ES256", "kid": "idp-1"});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        let token = fx().provider.sign_with_header(&header, &c);
        let got = verify_logout_token(&token, &fx().jwks, &logout_expect());
        assert_eq!(got.is_ok(), ok, "{typ:?}: {got:?}");
    }
}

#[test]
fn logout_token_refusals_name_the_check() {
    use OidcTokenError as E;
    let c = logout_claims();
    for (claims, want) in [
        (
            with(c.clone(), "aud", json!("someone-else")),
            E::Jwt(JwtError::WrongAudience),
        ),
        (
            with(c.clone(), "iss", json!("https://evil.example.com")),
            E::Jwt(JwtError::WrongIssuer),
        ),
        (
            with(c.clone(), "nonce", json!("n")),
            E::LogoutTokenWithNonce,
        ),
        (without(c.clone(), "events"), E::MissingLogoutEvent),
        (with(c.clone(), "events", json!({})), E::MissingLogoutEvent),
        (
            with(
                c.clone(),
                "events",
                json!({BACKCHANNEL_LOGOUT_EVENT: "yes"}),
            ),
            E::MissingLogoutEvent,
        ),
        (
            with(c.clone(), "events", json!([BACKCHANNEL_LOGOUT_EVENT])),
            E::MissingLogoutEvent,
        ),
        (
            without(without(c.clone(), "sub"), "sid"),
            E::MissingSessionAndSubject,
        ),
        (without(c.clone(), "jti"), E::MissingTokenId),
        (without(c.clone(), "iat"), E::MissingIssuedAt),
        (with(c.clone(), "iat", json!(NOW - 400)), E::StaleIssuedAt),
        (
            with(c.clone(), "iat", json!(NOW + 120)),
            E::Jwt(JwtError::IssuedInFuture),
        ),
        (
            with(c.clone(), "exp", json!(NOW - 60)),
            E::Jwt(JwtError::Expired),
        ),
        (
            with(c.clone(), "sid", json!("")),
            E::BadClaim {
                claim: "sid",
                reason: "is not a non-empty string",
            },
        ),
    ] {
        assert_eq!(logout(&claims), Err(want), "{claims}");
    }
    let forged = fx().other.sign(&c);
    assert_eq!(
        verify_logout_token(&forged, &fx().jwks, &logout_expect()),
        Err(E::Jwt(JwtError::BadSignature))
    );
}

#[test]
fn logout_token_without_exp_passes_only_when_recent_and_not_strict() {
    let c = without(logout_claims(), "exp");
    let t = logout(&c).unwrap();
    assert_eq!(t.expires_at, None);
    assert_eq!(t.replay_until, NOW - 2 + 300 + 60);
    let header = json!({"alg": "ES256", "kid": "idp-1"});
    let token = fx().provider.sign_with_header(&header, &c);
    let strict = LogoutTokenExpectations {
        require_expiry: true,
        ..logout_expect()
    };
    assert_eq!(
        verify_logout_token(&token, &fx().jwks, &strict),
        Err(OidcTokenError::Jwt(JwtError::MissingExpiry))
    );
    assert_eq!(
        logout(&with(c, "iat", json!(NOW - 361))),
        Err(OidcTokenError::StaleIssuedAt)
    );
}

#[test]
fn an_id_token_is_never_a_logout_token_and_back() {
    let id_token = fx().provider.sign(&id_claims());
    assert!(verify_logout_token(&id_token, &fx().jwks, &logout_expect()).is_err());
    let logout_token = fx().provider.sign(&logout_claims());
    assert!(verify_id_token(&logout_token, &fx().jwks, &id_expect(None)).is_err());
}

const TOKEN_ENDPOINT: &str = "https://idp.example.com/token";

fn assertion_audiences() -> &'static [String] {
    static A: OnceLock<Vec<String>> = OnceLock::new();
    A.get_or_init(|| vec![ISS.to_owned(), TOKEN_ENDPOINT.to_owned()])
}

fn assertion_expect() -> ClientAssertionExpectations<'static> {
    ClientAssertionExpectations {
        client_id: CLIENT,
        audiences: assertion_audiences(),
        algorithms: &Algorithm::ALL,
        now: NOW,
        leeway: 30,
        max_lifetime: 300,
        max_token_bytes: 8192,
    }
}

fn assertion_claims() -> Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "jti": "j-1", "iat": NOW, "exp": NOW + 60})
}

#[test]
fn client_assertion_good_one_passes() {
    let token = fx().provider.sign(&assertion_claims());
    let got = verify_client_assertion(&token, &fx().jwks, &assertion_expect()).unwrap();
    assert_eq!(got.token_id, "j-1");
    assert_eq!(got.replay_until, NOW + 60 + 30);
    // The issuer as audience, or both in an array, pass too.
    for aud in [json!(ISS), json!([ISS, TOKEN_ENDPOINT])] {
        let token = fx().provider.sign(&with(assertion_claims(), "aud", aud));
        assert!(verify_client_assertion(&token, &fx().jwks, &assertion_expect()).is_ok());
    }
    assert_eq!(
        unverified_assertion_client(&token, 8192).as_deref(),
        Some(CLIENT)
    );
}

#[test]
fn client_assertion_refusals_name_the_check() {
    let refused = |claims: Value| {
        let token = fx().provider.sign(&claims);
        verify_client_assertion(&token, &fx().jwks, &assertion_expect()).unwrap_err()
    };
    let c = assertion_claims;
    assert_eq!(
        refused(with(c(), "iss", json!("other"))),
        OidcTokenError::Jwt(JwtError::WrongIssuer)
    );
    assert!(matches!(
        refused(with(c(), "sub", json!("other"))),
        OidcTokenError::BadClaim { claim: "sub", .. }
    ));
    assert_eq!(
        refused(with(c(), "aud", json!("https://evil.example.com/token"))),
        OidcTokenError::Jwt(JwtError::WrongAudience)
    );
    // Another party named beside us: the assertion may have been made for it.
    assert_eq!(
        refused(with(
            c(),
            "aud",
            json!([TOKEN_ENDPOINT, "https://evil.example.com"])
        )),
        OidcTokenError::UntrustedAudience
    );
    assert_eq!(
        refused(without(c(), "aud")),
        OidcTokenError::Jwt(JwtError::WrongAudience)
    );
    assert_eq!(refused(without(c(), "jti")), OidcTokenError::MissingTokenId);
    assert_eq!(
        refused(without(c(), "exp")),
        OidcTokenError::Jwt(JwtError::MissingExpiry)
    );
    assert_eq!(
        refused(with(c(), "exp", json!(NOW - 31))),
        OidcTokenError::Jwt(JwtError::Expired)
    );
    assert!(matches!(
        refused(with(c(), "exp", json!(NOW + 3600))),
        OidcTokenError::BadClaim { claim: "exp", .. }
    ));
    assert_eq!(
        refused(with(c(), "iat", json!(NOW + 120))),
        OidcTokenError::Jwt(JwtError::IssuedInFuture)
    );
    // Signed by a key that is not the client's.
    let foreign = fx().other.sign(&c());
    assert!(verify_client_assertion(&foreign, &fx().jwks, &assertion_expect()).is_err());
    // An ID token or logout token type is not a client assertion.
    let mut header = fx().provider.header();
    header["typ"] = json!("logout+jwt");
    let typed = fx()
        .provider
        .sign_bytes(header.to_string().as_bytes(), c().to_string().as_bytes());
    assert!(verify_client_assertion(&typed, &fx().jwks, &assertion_expect()).is_err());
    // The unverified peek wants iss = sub.
    let odd = fx().provider.sign(&with(c(), "iss", json!("other")));
    assert_eq!(unverified_assertion_client(&odd, 8192), None);
    assert_eq!(unverified_assertion_client("a.b", 8192), None);
}

proptest! {
    /// Whatever claims a correctly signed client assertion carries, it
    /// verifies exactly when RFC 7523 §3's rules hold.
    #[test]
    fn client_assertion_verifies_exactly_when_the_rules_hold(
        iss in prop::sample::select(vec![CLIENT, "other", ""]),
        sub in prop::sample::select(vec![json!(CLIENT), json!("other"), json!(""), json!(1)]),
        aud in prop::sample::select(vec![json!(TOKEN_ENDPOINT), json!(ISS), json!([ISS, "x"]), json!("x"), json!([]), json!(1)]),
        jti in prop::option::of(prop::sample::select(vec![json!("j"), json!(""), json!(2)])),
        iat in prop::option::of(NOW - 500..NOW + 200),
        exp in prop::option::of(NOW - 200..NOW + 800),
    ) {
        let mut c = json!({"iss": iss, "sub": sub, "aud": aud});
        for (k, v) in [("jti", jti), ("iat", iat.map(Value::from)), ("exp", exp.map(Value::from))] {
            if let Some(v) = v { c[k] = v; }
        }
        let token = fx().provider.sign(&c);
        let got = verify_client_assertion(&token, &fx().jwks, &assertion_expect());
        let aud_ok = match &c["aud"] {
            Value::String(a) => a == ISS || a == TOKEN_ENDPOINT,
            Value::Array(a) => !a.is_empty() && a.iter().all(|v| v == ISS || v == TOKEN_ENDPOINT),
            _ => false,
        };
        let should = iss == CLIENT && c["sub"] == CLIENT && aud_ok
            && exp.is_some_and(|e| NOW < e + 30 && e <= NOW + 330)
            && iat.is_none_or(|t| t <= NOW + 30)
            && c.get("jti").and_then(Value::as_str).is_some_and(|j| !j.is_empty());
        prop_assert_eq!(got.is_ok(), should, "{} -> {:?}", c, got);
    }
}

proptest! {
    /// Whatever claims a correctly signed logout token carries, a verified
    /// one meets every §2.6 rule; and a token that meets them verifies.
    #[test]
    fn logout_token_verifies_exactly_when_the_rules_hold(
        iss in prop::sample::select(vec![ISS, "https://other.example.com", ""]),
        aud in prop::sample::select(vec![json!(CLIENT), json!([CLIENT, "x"]), json!("x"), json!([]), json!(1)]),
        sub in prop::option::of(prop::sample::select(vec![json!("u-1"), json!(""), json!(3)])),
        sid in prop::option::of(prop::sample::select(vec![json!("s-1"), json!(""), json!(null)])),
        jti in prop::option::of(prop::sample::select(vec![json!("j"), json!("")])),
        iat in prop::option::of(NOW - 500..NOW + 200),
        exp in prop::option::of(NOW - 200..NOW + 500),
        nonce in any::<bool>(),
        events in prop::sample::select(vec![json!({BACKCHANNEL_LOGOUT_EVENT: {}}), json!({BACKCHANNEL_LOGOUT_EVENT: {"a": 1}}), json!({}), json!(null), json!("e")]),
        strict in any::<bool>(),
    ) {
        let mut c = json!({"iss": iss, "aud": aud, "events": events});
        for (k, v) in [("sub", sub), ("sid", sid), ("jti", jti), ("iat", iat.map(Value::from)), ("exp", exp.map(Value::from))] {
            if let Some(v) = v { c[k] = v; }
        }
        if nonce { c["nonce"] = json!("n"); }
        let expect = LogoutTokenExpectations { require_expiry: strict, ..logout_expect() };
        let token = fx().provider.sign(&c);
        let got = verify_logout_token(&token, &fx().jwks, &expect);
        let s = |k: &str| c.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let aud_ok = match &c["aud"] { Value::String(a) => a == CLIENT, Value::Array(a) => a.iter().any(|v| v == CLIENT), _ => false };
        let should = iss == ISS && aud_ok
            && iat.is_some_and(|t| t <= NOW + 60 && NOW <= t + 360)
            && exp.map_or(!strict, |e| NOW < e + 60)
            && !nonce
            && c["events"].get(BACKCHANNEL_LOGOUT_EVENT).is_some_and(Value::is_object)
            && (s("sub").is_some() || s("sid").is_some())
            && c.get("sub").is_none_or(|_| s("sub").is_some())
            && c.get("sid").is_none_or(|v| v.is_null() || s("sid").is_some())
            && s("jti").is_some();
        prop_assert_eq!(got.is_ok(), should, "{} -> {:?}", c, got);
        if let Ok(t) = got {
            prop_assert!(t.replay_until >= NOW);
            prop_assert_eq!(t.issuer, ISS);
        }
    }

    /// Any bytes as a logout token or an ID token: refused without panic
    /// unless validly signed (never, from random bytes).
    #[test]
    fn random_tokens_are_refused(s in "[A-Za-z0-9._-]{0,200}") {
        prop_assert!(verify_logout_token(&s, &fx().jwks, &logout_expect()).is_err());
        prop_assert!(verify_id_token(&s, &fx().jwks, &id_expect(None)).is_err());
    }
}

fn discovery(extra: &[(&str, Value)]) -> Vec<u8> {
    let mut d = json!({
        "issuer": ISS,
        "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token",
        "jwks_uri": "https://idp.example.com/jwks",
        "response_types_supported": ["code", "id_token"],
        "end_session_endpoint": "https://idp.example.com/logout",
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    });
    for (k, v) in extra {
        d[*k] = v.clone();
    }
    d.to_string().into_bytes()
}

#[test]
fn discovery_is_read_and_checked() {
    let m = parse_discovery(&discovery(&[]), ISS).unwrap();
    assert_eq!(m.token_endpoint, "https://idp.example.com/token");
    assert_eq!(
        m.end_session_endpoint.as_deref(),
        Some("https://idp.example.com/logout")
    );
    assert!(m.sends_iss_in_response && m.backchannel_logout_supported);
    assert_eq!(m.id_token_algorithms, ["RS256", "ES256"]);
    use DiscoveryError as E;
    for (doc, issuer, want) in [
        (
            discovery(&[]),
            "https://idp.example.com/",
            E::IssuerMismatch,
        ),
        (
            discovery(&[("issuer", json!("https://evil.example.com"))]),
            ISS,
            E::IssuerMismatch,
        ),
        (
            discovery(&[("token_endpoint", json!("http://idp.example.com/token"))]),
            ISS,
            E::BadEndpoint("token_endpoint"),
        ),
        (
            discovery(&[("jwks_uri", json!(null))]),
            ISS,
            E::BadEndpoint("jwks_uri"),
        ),
        (
            discovery(&[("end_session_endpoint", json!("javascript:x"))]),
            ISS,
            E::BadEndpoint("end_session_endpoint"),
        ),
        (
            discovery(&[(
                "authorization_endpoint",
                json!("https://u@idp.example.com/auth"),
            )]),
            ISS,
            E::BadEndpoint("authorization_endpoint"),
        ),
        (
            discovery(&[("response_types_supported", json!(["id_token"]))]),
            ISS,
            E::Unsupported("response_types_supported"),
        ),
        (
            discovery(&[("code_challenge_methods_supported", json!(["plain"]))]),
            ISS,
            E::Unsupported("code_challenge_methods_supported"),
        ),
        (
            discovery(&[("backchannel_logout_supported", json!("yes"))]),
            ISS,
            E::Malformed,
        ),
        (
            br#"{"issuer":"a","issuer":"a"}"#.to_vec(),
            "a",
            E::Malformed,
        ),
        (b"[]".to_vec(), ISS, E::Malformed),
    ] {
        assert_eq!(parse_discovery(&doc, issuer), Err(want));
    }
    // Loopback http is a test provider; any other http is not.
    assert!(is_secure_url("http://127.0.0.1:9000/token"));
    assert!(is_secure_url("http://[::1]/x") && is_secure_url("http://localhost/x"));
    assert!(!is_secure_url("http://10.0.0.1/x") && !is_secure_url("https://idp.example.com/#x"));
}

#[test]
fn token_endpoint_auth_methods_listed_must_name_the_method() {
    // Not listed: the token endpoint decides.
    let m = parse_discovery(&discovery(&[]), ISS).unwrap();
    assert_eq!(m.token_endpoint_auth_methods, None);
    assert!(m.accepts_client_auth("private_key_jwt") && m.accepts_client_assertion_alg("EdDSA"));
    let m = parse_discovery(
        &discovery(&[
            (
                "token_endpoint_auth_methods_supported",
                json!(["client_secret_basic", "private_key_jwt"]),
            ),
            (
                "token_endpoint_auth_signing_alg_values_supported",
                json!(["RS256", "ES256"]),
            ),
        ]),
        ISS,
    )
    .unwrap();
    assert!(
        m.accepts_client_auth("client_secret_basic") && m.accepts_client_auth("private_key_jwt")
    );
    assert!(!m.accepts_client_auth("client_secret_post"));
    assert!(m.accepts_client_assertion_alg("ES256") && !m.accepts_client_assertion_alg("EdDSA"));
    assert_eq!(
        parse_discovery(
            &discovery(&[(
                "token_endpoint_auth_methods_supported",
                json!("private_key_jwt")
            )]),
            ISS
        ),
        Err(DiscoveryError::Malformed)
    );
}

#[test]
fn callback_checks_iss_then_state_then_code() {
    use CallbackError as E;
    let iss = "iss=https%3A%2F%2Fidp.example.com";
    assert_eq!(
        check_callback(&format!("code=abc&state=s1&{iss}"), "s1", ISS, true),
        Ok("abc".to_owned())
    );
    assert_eq!(
        check_callback("code=a+b%2F&state=s1", "s1", ISS, false),
        Ok("a b/".to_owned())
    );
    for (q, sends, want) in [
        ("code=abc&state=s1".to_owned(), true, E::WrongIssuer),
        (
            "code=abc&state=s1&iss=https%3A%2F%2Fevil.example.com".to_owned(),
            false,
            E::WrongIssuer,
        ),
        (format!("code=abc&state=s2&{iss}"), true, E::WrongState),
        (format!("code=abc&{iss}"), true, E::WrongState),
        (
            format!("code=abc&state=s1&state=s1&{iss}"),
            true,
            E::Malformed,
        ),
        (format!("code=abc&state=%FF&{iss}"), true, E::Malformed),
        (
            format!("error=access_denied&state=s1&{iss}"),
            true,
            E::Provider("access_denied".to_owned()),
        ),
        (
            format!("error=access_denied&state=s2&{iss}"),
            true,
            E::WrongState,
        ),
        (format!("state=s1&{iss}"), true, E::MissingCode),
        (format!("code=&state=s1&{iss}"), true, E::MissingCode),
    ] {
        assert_eq!(check_callback(&q, "s1", ISS, sends), Err(want), "{q}");
    }
    assert_eq!(
        check_callback("code=abc&state=", "", ISS, false),
        Err(E::WrongState)
    );
}

#[test]
fn pkce_s256_is_base64url_of_sha256() {
    // FIPS 180-2's "abc" vector (ba7816bf…f20015ad), base64url without
    // padding (RFC 7636 §4.2, RFC 4648 §5).
    assert_eq!(
        pkce_challenge("abc"),
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    );
    let c = pkce_challenge("dBjftJeZ4CVP-mJ92TStwZ-pn1Pc3nAEDf8NQDpYhRo");
    assert_eq!(c.len(), 43);
    assert!(
        c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

proptest! {
    /// Any query: a code comes back only with exactly one matching state,
    /// an issuer that is right (or absent when allowed) and no error.
    #[test]
    fn callback_accepts_only_a_matching_state(q in "[a-z=&%+0-9sAF]{0,60}", state in "[a-z0-9]{1,4}", sends in any::<bool>()) {
        if let Ok(code) = check_callback(&q, &state, ISS, sends) {
            prop_assert!(!code.is_empty());
            prop_assert!(q.split('&').filter(|p| p.starts_with("state=")).count() == 1);
            prop_assert!(!sends);
            prop_assert!(!q.split('&').any(|p| p.starts_with("error=") || p == "error"));
        }
    }

    /// Any bytes as a discovery document: refused or checked.
    #[test]
    fn discovery_never_accepts_insecure_endpoints(doc in "\\PC{0,120}") {
        if let Ok(m) = parse_discovery(doc.as_bytes(), ISS) {
            prop_assert!(is_secure_url(&m.token_endpoint) && is_secure_url(&m.jwks_uri));
        }
    }

    /// Any bytes as a token response: refused, or both tokens present and
    /// non-empty, and never when an `error` member is there.
    #[test]
    fn token_response_needs_both_tokens(doc in "\\PC{0,120}") {
        if let Ok(t) = parse_token_response(doc.as_bytes()) {
            prop_assert!(!t.access_token.is_empty() && !t.id_token.is_empty());
            prop_assert!(!doc.contains("\"error\""));
        }
    }
}

/// The token endpoint's answer (RFC 6749 §5.1, §5.2; OIDC Core §3.1.3.3).
#[test]
fn token_response_rules() {
    let ok =
        br#"{"access_token":"at","token_type":"bearer","id_token":"a.b.c","refresh_token":"rt"}"#;
    let t = parse_token_response(ok).unwrap();
    assert_eq!(
        (t.access_token.as_str(), t.id_token.as_str()),
        ("at", "a.b.c")
    );
    assert_eq!(t.refresh_token.as_deref(), Some("rt"));
    let cases: [(&[u8], TokenResponseError); 5] = [
        (
            br#"{"error":"invalid_grant","access_token":"at"}"#,
            TokenResponseError::Provider("invalid_grant".into()),
        ),
        (
            br#"{"access_token":"at","token_type":"mac","id_token":"x"}"#,
            TokenResponseError::NotBearer,
        ),
        (
            br#"{"access_token":"at","token_type":"Bearer"}"#,
            TokenResponseError::Missing("id_token"),
        ),
        (
            br#"{"access_token":"at","token_type":"Bearer","id_token":"x","id_token":"y"}"#,
            TokenResponseError::Malformed,
        ),
        (
            br#"{"access_token":7,"token_type":"Bearer","id_token":"x"}"#,
            TokenResponseError::Missing("access_token"),
        ),
    ];
    for (doc, want) in cases {
        assert_eq!(parse_token_response(doc).err(), Some(want));
    }
}

fn refreshed(claims: &Value, original: &OriginalLogin<'_>) -> Result<IdToken, OidcTokenError> {
    verify_refreshed_id_token(
        &fx().provider.sign(claims),
        &fx().jwks,
        &id_expect(None),
        original,
    )
}

const LOGIN: OriginalLogin<'static> = OriginalLogin {
    subject: "u-1",
    auth_time: Some(NOW - 3_000),
};

/// OIDC Core §12.2: a refreshed ID token keeps `iss`, `sub`, `aud` and
/// `auth_time`; its `nonce` may be gone but never different.
#[test]
fn refreshed_id_token_keeps_the_subject_and_auth_time() {
    let base = with(id_claims(), "auth_time", json!(NOW - 3_000));
    assert!(refreshed(&base, &LOGIN).is_ok());
    assert_eq!(
        refreshed(&base, &LOGIN).unwrap().auth_time,
        Some(NOW - 3_000)
    );
    assert!(refreshed(&without(base.clone(), "nonce"), &LOGIN).is_ok());
    assert!(refreshed(&without(base.clone(), "auth_time"), &LOGIN).is_ok());
    let cases = [
        (
            with(base.clone(), "sub", json!("u-2")),
            OidcTokenError::SubjectChanged,
        ),
        (
            with(base.clone(), "auth_time", json!(NOW - 10)),
            OidcTokenError::AuthTimeChanged,
        ),
        (
            with(base.clone(), "nonce", json!("another")),
            OidcTokenError::WrongNonce,
        ),
        (
            with(base.clone(), "iss", json!("https://evil.example.com")),
            OidcTokenError::Jwt(JwtError::WrongIssuer),
        ),
        (
            with(base.clone(), "iat", json!(NOW - 4_000)),
            OidcTokenError::StaleIssuedAt,
        ),
    ];
    for (claims, want) in cases {
        assert_eq!(refreshed(&claims, &LOGIN).err(), Some(want), "{claims}");
    }
    // An empty original subject matches nothing.
    let nobody = OriginalLogin {
        subject: "",
        auth_time: None,
    };
    assert_eq!(
        refreshed(&base, &nobody).err(),
        Some(OidcTokenError::SubjectChanged)
    );
    // A login's ID token still needs its nonce.
    assert_eq!(
        id(&without(base, "nonce")).err(),
        Some(OidcTokenError::WrongNonce)
    );
}

/// RFC 6749 §6 / OIDC Core §12.2: a refresh answer may lack `id_token`
/// and `refresh_token`, never `access_token`; `error` wins.
#[test]
fn refresh_response_rules() {
    let r =
        parse_refresh_response(br#"{"access_token":"at","token_type":"Bearer","expires_in":300}"#)
            .unwrap();
    assert_eq!(
        (
            r.access_token.as_str(),
            r.id_token,
            r.refresh_token,
            r.expires_in
        ),
        ("at", None, None, Some(300))
    );
    let r = parse_refresh_response(
        br#"{"access_token":"at","token_type":"bearer","id_token":"a.b.c","refresh_token":"rt2"}"#,
    )
    .unwrap();
    assert_eq!(r.id_token.as_deref(), Some("a.b.c"));
    assert_eq!(r.refresh_token.as_deref(), Some("rt2"));
    let cases: [(&[u8], TokenResponseError); 4] = [
        (
            br#"{"error":"invalid_grant","error_description":"gone"}"#,
            TokenResponseError::Provider("invalid_grant".into()),
        ),
        (
            br#"{"token_type":"Bearer","refresh_token":"rt"}"#,
            TokenResponseError::Missing("access_token"),
        ),
        (
            br#"{"access_token":"at","token_type":"Bearer","expires_in":-1}"#,
            TokenResponseError::Missing("expires_in"),
        ),
        (
            br#"{"access_token":"at","token_type":"Bearer","expires_in":"60"}"#,
            TokenResponseError::Missing("expires_in"),
        ),
    ];
    for (doc, want) in cases {
        assert_eq!(parse_refresh_response(doc).err(), Some(want));
    }
}

/// RFC 6749 §5.2: a refused refresh ends the session only for errors
/// about the grant; errors about our client or the provider's health do
/// not (they fall under the grace).
#[test]
fn only_grant_errors_end_the_grant() {
    let ends = |doc: &[u8]| {
        parse_refresh_response(doc)
            .err()
            .is_some_and(|e| e.ends_the_grant())
    };
    assert!(ends(br#"{"error":"invalid_grant"}"#));
    assert!(ends(br#"{"error":"invalid_scope"}"#));
    assert!(ends(br#"{"error":"access_denied"}"#));
    for code in [
        "invalid_client",
        "unauthorized_client",
        "unsupported_grant_type",
        "server_error",
        "temporarily_unavailable",
    ] {
        let doc = format!(r#"{{"error":"{code}"}}"#);
        assert!(!ends(doc.as_bytes()), "{code}");
    }
    assert!(!TokenResponseError::Malformed.ends_the_grant());
    assert!(!TokenResponseError::Missing("access_token").ends_the_grant());
}

/// OIDC Core §5.3.4: userinfo vouches only with the session's `sub`.
#[test]
fn userinfo_must_name_the_same_subject() {
    assert_eq!(
        check_userinfo(br#"{"sub":"u-1","email":"a@x"}"#, "u-1"),
        Ok(())
    );
    for doc in [
        &br#"{"sub":"u-2"}"#[..],
        br#"{"email":"a@x"}"#,
        br#"{"sub":1}"#,
        br#"{"sub":"U-1"}"#,
    ] {
        assert_eq!(check_userinfo(doc, "u-1"), Err(UserinfoError::WrongSubject));
    }
    assert_eq!(
        check_userinfo(br#"{"sub":""}"#, ""),
        Err(UserinfoError::WrongSubject)
    );
    for doc in [&b"eyJ.a.b"[..], br#"{"sub":"u-1","sub":"u-2"}"#, b"[]"] {
        assert_eq!(check_userinfo(doc, "u-1"), Err(UserinfoError::Malformed));
    }
}

proptest! {
    /// A refreshed ID token passes exactly when its `sub` is the login's
    /// and its `nonce` is absent or the login's.
    #[test]
    fn refreshed_id_token_passes_only_for_the_same_subject(
        sub in "[a-z0-9-]{1,12}",
        nonce in prop::option::of(prop_oneof![Just(NONCE.to_owned()), "[a-z]{1,8}"]),
    ) {
        let mut c = with(id_claims(), "sub", json!(sub));
        c = match &nonce {
            Some(n) => with(c, "nonce", json!(n)),
            None => without(c, "nonce"),
        };
        let ok = refreshed(&c, &OriginalLogin { subject: "u-1", auth_time: None }).is_ok();
        prop_assert_eq!(ok, sub == "u-1" && nonce.as_deref().is_none_or(|n| n == NONCE));
    }

    /// Any bytes as a refresh answer: refused, or an access token present,
    /// and never when an `error` member is there.
    #[test]
    fn refresh_response_needs_an_access_token(doc in "\\PC{0,120}") {
        if let Ok(r) = parse_refresh_response(doc.as_bytes()) {
            prop_assert!(!r.access_token.is_empty());
            prop_assert!(!doc.contains("\"error\""));
        }
    }

    /// Any bytes as userinfo: accepted only when it contains the subject.
    #[test]
    fn userinfo_accepts_only_its_subject(doc in "\\PC{0,80}", sub in "[a-z]{1,4}") {
        if check_userinfo(doc.as_bytes(), &sub).is_ok() {
            prop_assert!(doc.contains(&sub));
        }
    }
}

#[test]
fn allowed_identity_maps_the_claims_and_applies_allowed_groups() {
    let mapping = crate::jwt::ClaimMapping::oidc();
    let token = id(&with(id_claims(), "groups", json!(["staff", "users"]))).unwrap();
    let id = allowed_identity(&token, &mapping, ISS, &[]).unwrap();
    assert_eq!(id.subject, "u-1");
    assert!(id.in_group("staff"));
    // In one of the allowed groups: let in.
    assert!(allowed_identity(&token, &mapping, ISS, &["admins".into(), "users".into()]).is_ok());
    // In none: refused, whatever else the claims say.
    assert_eq!(
        allowed_identity(&token, &mapping, ISS, &["admins".into()]),
        Err(ClaimsRefused::NotInAllowedGroup)
    );
    // Claims that do not map are refused before groups are looked at.
    let mut mapping = mapping;
    mapping.subject = "missing".into();
    assert!(matches!(
        allowed_identity(&token, &mapping, ISS, &[]),
        Err(ClaimsRefused::Claims(_))
    ));
}
