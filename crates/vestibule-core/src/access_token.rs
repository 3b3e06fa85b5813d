//! vestibule's own OAuth access tokens at the gate (issue 14): a route
//! that says `access_tokens = { clients = [...] }` accepts the access
//! tokens the provider issued to those clients, as `Authorization:
//! Bearer` (RFC 6750 §2.1) or in the route's custom credential header, for
//! API and CLI clients.
//!
//! This module reads and judges; the binary looks the token up (cache,
//! store) and verifies a JWT's signature with its own keys.
//!
//! - **What is ours** ([`find_access_token`]): an opaque token with the
//!   `vat_` prefix, well-formed; or a JWT whose protected header says
//!   `typ: at+jwt` (RFC 9068 §2.1, §4) and whose payload's `iss` is this
//!   gateway's issuer. Anything else in `Authorization` is the
//!   application's own and reaches it untouched, as with device
//!   credentials ([`crate::credential`]). The custom header is ours by
//!   configuration: something there that is neither a device credential
//!   nor a token of ours is malformed (401).
//! - **One credential per request** ([`one_credential`]): a device
//!   credential and an access token together are
//!   [`CarrierError::Ambiguous`] (400), the same rule as two device
//!   carriers: vestibule would authenticate one while the application
//!   might read the other.
//! - **What a known token is worth** ([`judge_access`]): unexpired, issued
//!   to a client the route lists, with every scope the route requires,
//!   with an account in good standing, or, for a `client_credentials`
//!   token (no account), only on routes that allow service clients.
//!   Everything else fails closed.
//! - A JWT's claims, once its signature is verified, are checked by
//!   [`check_jwt_claims`]: `iss`, `aud` naming the issuer (the provider
//!   is the resource server of its own tokens), `exp`, `client_id`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};

use crate::credential::{Carrier, CarrierError, OwnerStanding, Presented};
use crate::decode::trim_ows;
use crate::secret::{Secret, is_prefixed_token};

/// Prefix of the provider's opaque access tokens (secret scanners spot
/// it; it tells ours from the application's).
pub const ACCESS_TOKEN_PREFIX: &str = "vat_";

/// The JWS `typ` of a JWT access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The largest JWT read: the front's header limits are usually 8 KiB.
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// Where a route reads access tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessCarriers {
    /// `Authorization: Bearer` (RFC 6750 §2.1).
    pub bearer: bool,
    /// The route's custom credential header, whose whole value is the
    /// token.
    pub header: Option<HeaderName>,
}

/// The form of a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenForm {
    /// `vat_` + 256 random bits: looked up by its SHA-256.
    Opaque,
    /// An RFC 9068 JWT: verified with the gateway's keys, then looked up
    /// by its SHA-256 like an opaque one (so revocation is honoured).
    Jwt,
}

/// An access token found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedAccess {
    /// [`Carrier::Bearer`] or [`Carrier::Header`].
    pub carrier: Carrier,
    /// Its form.
    pub form: TokenForm,
    /// The token.
    pub token: Secret,
}

const NOT_OURS_IN_HEADER: &str = "neither a vat_ token nor an at+jwt of this issuer";

/// The form of `value` if it is one of our access tokens: a well-formed
/// `vat_` token, or a JWT of `issuer` typed `at+jwt`. `Err` for a value
/// with our prefix that is not well-formed. Nothing is verified here: the
/// JWT's header and payload are only read to tell ours from others'.
pub fn classify(value: &str, issuer: &str) -> Option<Result<TokenForm, &'static str>> {
    if value.starts_with(ACCESS_TOKEN_PREFIX) {
        return Some(if is_prefixed_token(value, ACCESS_TOKEN_PREFIX) {
            Ok(TokenForm::Opaque)
        } else {
            Err("not a well-formed vat_ token")
        });
    }
    if value.len() > MAX_JWT_BYTES {
        return None;
    }
    let mut parts = value.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let header = json_object(header)?;
    // RFC 9068 §4: "application/at+jwt" is the same type; media types
    // compare case-insensitively (RFC 7515 §4.1.9).
    let typ = header.get("typ")?.as_str()?;
    let typ = typ
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..]);
    if !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) {
        return None;
    }
    let payload = json_object(payload)?;
    (payload.get("iss")?.as_str()? == issuer).then_some(Ok(TokenForm::Jwt))
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Finds the one access token of ours in a request, in the carriers
/// enabled. `device_header` says whether the custom header also carries
/// device credentials (then a `vst_` value there is the device's, not a
/// malformed token).
pub fn find_access_token(
    headers: &HeaderMap,
    carriers: &AccessCarriers,
    issuer: &str,
    device_header: bool,
) -> Result<Option<PresentedAccess>, CarrierError> {
    let mut found: Option<Result<PresentedAccess, CarrierError>> = None;
    if carriers.bearer {
        let mut lines = 0usize;
        let mut ours = None;
        for value in headers.get_all(AUTHORIZATION) {
            lines += 1;
            if let Some(read) = bearer_value(value.as_bytes())
                && let Some(form) = classify(read, issuer)
            {
                ours = Some(presented(Carrier::Bearer, form, read));
            }
        }
        if ours.is_some() && lines > 1 {
            // RFC 9110 §11.6.2: not a list; two lines, one of them ours.
            return Err(CarrierError::Ambiguous);
        }
        found = ours;
    }
    if let Some(name) = &carriers.header {
        let mut values = headers.get_all(name).iter();
        if let Some(value) = values.next() {
            let read = std::str::from_utf8(trim_ows(value.as_bytes())).ok();
            let outcome = match read.map(|r| (r, classify(r, issuer))) {
                Some((r, Some(form))) => Some(presented(Carrier::Header, form, r)),
                // The device credential's, judged there.
                Some((r, None))
                    if device_header && r.starts_with(crate::credential::DEVICE_PREFIX) =>
                {
                    None
                }
                _ if device_header => None,
                _ => Some(Err(CarrierError::Malformed {
                    carrier: Carrier::Header,
                    reason: NOT_OURS_IN_HEADER,
                })),
            };
            if values.next().is_some() && (outcome.is_some() || !device_header) {
                return Err(CarrierError::Ambiguous);
            }
            if let Some(o) = outcome
                && found.replace(o).is_some()
            {
                return Err(CarrierError::Ambiguous);
            }
        }
    }
    found.transpose()
}

fn presented(
    carrier: Carrier,
    form: Result<TokenForm, &'static str>,
    value: &str,
) -> Result<PresentedAccess, CarrierError> {
    match form {
        Ok(form) => Ok(PresentedAccess {
            carrier,
            form,
            token: Secret::from_exposed(value.to_owned()),
        }),
        Err(reason) => Err(CarrierError::Malformed { carrier, reason }),
    }
}

/// The token of a Bearer value (RFC 6750 §2.1: the scheme compared
/// case-insensitively, RFC 9110 §11.1), or `None` for another scheme.
fn bearer_value(value: &[u8]) -> Option<&str> {
    let value = trim_ows(value);
    let split = value.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    std::str::from_utf8(trim_ows(rest)).ok()
}

/// The one credential of a request, device or access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneCredential {
    /// A device credential.
    Device(Presented),
    /// An access token.
    Access(PresentedAccess),
}

/// Combines the two readings of a request: both present (or one present
/// and the other malformed) is [`CarrierError::Ambiguous`], since two
/// credentials could name two people. A device reading that called the
/// custom header malformed because it held an access token is no
/// reading at all.
pub fn one_credential(
    device: Result<Option<Presented>, CarrierError>,
    access: Result<Option<PresentedAccess>, CarrierError>,
) -> Result<Option<OneCredential>, CarrierError> {
    let device = match (device, &access) {
        (
            Err(CarrierError::Malformed {
                carrier: Carrier::Header,
                ..
            }),
            Ok(Some(PresentedAccess {
                carrier: Carrier::Header,
                ..
            })),
        ) => Ok(None),
        (d, _) => d,
    };
    match (device, access) {
        (Err(CarrierError::Ambiguous), _) | (_, Err(CarrierError::Ambiguous)) => {
            Err(CarrierError::Ambiguous)
        }
        (Ok(None), Ok(None)) => Ok(None),
        (Ok(Some(d)), Ok(None)) => Ok(Some(OneCredential::Device(d))),
        (Ok(None), Ok(Some(a))) => Ok(Some(OneCredential::Access(a))),
        (Err(e), Ok(None)) | (Ok(None), Err(e)) => Err(e),
        _ => Err(CarrierError::Ambiguous),
    }
}

/// What a route accepts (`route.access_tokens`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// The clients whose tokens are accepted; never a wildcard.
    pub clients: Vec<String>,
    /// Scopes every token must carry.
    pub scopes: Vec<String>,
    /// Whether `client_credentials` tokens (no account) are accepted.
    pub service_clients: bool,
}

/// What the store and cache know of a presented token: plain data.
#[derive(Debug, Clone, Copy)]
pub struct AccessFacts<'a> {
    /// The client it was issued to.
    pub client_id: &'a str,
    /// Its scopes, space-separated (RFC 6749 §3.3).
    pub scopes: &'a str,
    /// Unix ms.
    pub expires_at: i64,
    /// The account's standing, with whether the client still lets that
    /// account in (its `allowed_groups`); `None` for a
    /// `client_credentials` token.
    pub account: Option<(OwnerStanding, bool)>,
}

/// What a known token is worth on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessJudgement {
    /// Pass, as the account (or the service client).
    Allowed,
    /// Past its expiry.
    Expired,
    /// Issued to a client this route does not list.
    WrongClient,
    /// A scope the route requires is missing (RFC 6750 §3.1
    /// `insufficient_scope`).
    InsufficientScope,
    /// A `client_credentials` token on a route that takes users only.
    ServiceClient,
    /// The account waits for approval.
    Pending,
    /// The account is disabled.
    Disabled,
    /// The account is no longer in the client's groups.
    AccountNotAllowed,
}

/// Decides what a known token is worth on a route; in this order, so the
/// answer says the most useful thing first.
pub fn judge_access(facts: &AccessFacts<'_>, rule: &AccessRule, now_ms: i64) -> AccessJudgement {
    if now_ms >= facts.expires_at {
        return AccessJudgement::Expired;
    }
    if !rule.clients.iter().any(|c| c == facts.client_id) {
        return AccessJudgement::WrongClient;
    }
    if !scopes_cover(facts.scopes, &rule.scopes) {
        return AccessJudgement::InsufficientScope;
    }
    match facts.account {
        None if rule.service_clients => AccessJudgement::Allowed,
        None => AccessJudgement::ServiceClient,
        Some((OwnerStanding::Pending, _)) => AccessJudgement::Pending,
        Some((OwnerStanding::Disabled, _)) => AccessJudgement::Disabled,
        Some((OwnerStanding::Active, false)) => AccessJudgement::AccountNotAllowed,
        Some((OwnerStanding::Active, true)) => AccessJudgement::Allowed,
    }
}

/// Whether a space-separated scope string holds every scope of
/// `required` (exact, case-sensitive tokens: RFC 6749 §3.3).
pub fn scopes_cover(granted: &str, required: &[String]) -> bool {
    required.iter().all(|r| granted.split(' ').any(|g| g == r))
}

/// What a verified JWT access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAccess {
    /// `client_id` (RFC 9068 §2.2).
    pub client_id: String,
    /// `exp`, unix seconds.
    pub expires_at: i64,
}

/// Checks the claims of a JWT access token whose signature the caller
/// verified with its own keys (RFC 9068 §4): `iss` exactly the issuer,
/// `aud` naming it (string or array), `exp` in the future (no leeway:
/// the same clock issued it), `client_id` present.
pub fn check_jwt_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    now_secs: i64,
) -> Result<JwtAccess, &'static str> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("iss is not this issuer");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(issuer)),
        _ => false,
    };
    if !aud_ok {
        return Err("aud does not name this issuer");
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("no numeric exp")?;
    if now_secs >= exp {
        return Err("expired");
    }
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or("no client_id")?;
    Ok(JwtAccess {
        client_id: client_id.to_owned(),
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    const ISS: &str = "https://sso.example.test";

    fn opaque() -> String {
        crate::secret::prefixed_token(ACCESS_TOKEN_PREFIX, [7; 32])
            .expose()
            .to_owned()
    }

    fn jwt(typ: &str, iss: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"{typ}"}}"#));
        let p = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{iss}"}}"#));
        format!("{h}.{p}.c2ln")
    }

    fn req(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn carriers(header: bool) -> AccessCarriers {
        AccessCarriers {
            bearer: true,
            header: header.then(|| HeaderName::from_static("x-vestibule-token")),
        }
    }

    #[test]
    fn ours_and_not_ours() {
        assert_eq!(classify(&opaque(), ISS), Some(Ok(TokenForm::Opaque)));
        assert!(matches!(classify("vat_short", ISS), Some(Err(_))));
        assert_eq!(classify(&jwt("at+jwt", ISS), ISS), Some(Ok(TokenForm::Jwt)));
        assert_eq!(
            classify(&jwt("application/AT+JWT", ISS), ISS),
            Some(Ok(TokenForm::Jwt))
        );
        // An ID token, another issuer's token, the app's own: not ours.
        assert_eq!(classify(&jwt("JWT", ISS), ISS), None);
        assert_eq!(classify(&jwt("at+jwt", "https://other"), ISS), None);
        assert_eq!(classify("app-token", ISS), None);
        assert_eq!(classify("vst_x", ISS), None);
    }

    #[test]
    fn bearer_header_and_ambiguity() {
        let t = opaque();
        let bearer = format!("Bearer {t}");
        let found = find_access_token(
            &req(&[("authorization", &bearer)]),
            &carriers(false),
            ISS,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (found.carrier, found.form),
            (Carrier::Bearer, TokenForm::Opaque)
        );
        // The app's own bearer token is left alone.
        assert_eq!(
            find_access_token(
                &req(&[("authorization", "Bearer eyJapp")]),
                &carriers(false),
                ISS,
                false
            ),
            Ok(None)
        );
        // Two Authorization lines, one ours: ambiguous.
        assert_eq!(
            find_access_token(
                &req(&[("authorization", &bearer), ("authorization", "Basic eA==")]),
                &carriers(false),
                ISS,
                false
            ),
            Err(CarrierError::Ambiguous)
        );
        // Bearer and custom header both holding tokens: ambiguous.
        assert_eq!(
            find_access_token(
                &req(&[("authorization", &bearer), ("x-vestibule-token", &t)]),
                &carriers(true),
                ISS,
                false
            ),
            Err(CarrierError::Ambiguous)
        );
        // The custom header is ours by configuration.
        assert!(matches!(
            find_access_token(
                &req(&[("x-vestibule-token", "junk")]),
                &carriers(true),
                ISS,
                false
            ),
            Err(CarrierError::Malformed { .. })
        ));
        // ...unless device credentials share it.
        assert_eq!(
            find_access_token(
                &req(&[("x-vestibule-token", "vst_x")]),
                &carriers(true),
                ISS,
                true
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_device_credential_and_a_token_are_ambiguous() {
        let access = PresentedAccess {
            carrier: Carrier::Bearer,
            form: TokenForm::Opaque,
            token: Secret::from_exposed(opaque()),
        };
        let device = Presented {
            carrier: Carrier::Header,
            token: crate::credential::device_token([1; 32]),
            basic_user: None,
        };
        assert_eq!(
            one_credential(Ok(Some(device.clone())), Ok(Some(access.clone()))),
            Err(CarrierError::Ambiguous)
        );
        let malformed = CarrierError::Malformed {
            carrier: Carrier::Basic,
            reason: "x",
        };
        assert_eq!(
            one_credential(Err(malformed.clone()), Ok(Some(access.clone()))),
            Err(CarrierError::Ambiguous)
        );
        assert_eq!(
            one_credential(Ok(None), Ok(Some(access.clone()))),
            Ok(Some(OneCredential::Access(access)))
        );
        assert_eq!(
            one_credential(Ok(Some(device.clone())), Ok(None)),
            Ok(Some(OneCredential::Device(device)))
        );
        assert_eq!(
            one_credential(Err(malformed.clone()), Ok(None)),
            Err(malformed)
        );
    }

    #[test]
    fn judgement_order() {
        let rule = AccessRule {
            clients: vec!["cli".into()],
            scopes: vec!["api".into()],
            service_clients: false,
        };
        let ok = AccessFacts {
            client_id: "cli",
            scopes: "openid api",
            expires_at: 100,
            account: Some((OwnerStanding::Active, true)),
        };
        let j = |f: AccessFacts<'_>| judge_access(&f, &rule, 50);
        assert_eq!(j(ok), AccessJudgement::Allowed);
        assert_eq!(judge_access(&ok, &rule, 100), AccessJudgement::Expired);
        assert_eq!(
            j(AccessFacts {
                client_id: "other",
                ..ok
            }),
            AccessJudgement::WrongClient
        );
        assert_eq!(
            j(AccessFacts {
                scopes: "openid apix",
                ..ok
            }),
            AccessJudgement::InsufficientScope
        );
        assert_eq!(
            j(AccessFacts {
                account: None,
                ..ok
            }),
            AccessJudgement::ServiceClient
        );
        assert_eq!(
            j(AccessFacts {
                account: Some((OwnerStanding::Disabled, true)),
                ..ok
            }),
            AccessJudgement::Disabled
        );
        assert_eq!(
            j(AccessFacts {
                account: Some((OwnerStanding::Active, false)),
                ..ok
            }),
            AccessJudgement::AccountNotAllowed
        );
        let svc = AccessRule {
            service_clients: true,
            ..rule
        };
        assert_eq!(
            judge_access(
                &AccessFacts {
                    account: None,
                    ..ok
                },
                &svc,
                50
            ),
            AccessJudgement::Allowed
        );
    }

    #[test]
    fn jwt_claims() {
        let c = |v: Value| v.as_object().unwrap().clone();
        let good = c(serde_json::json!({"iss": ISS, "aud": ISS, "exp": 100, "client_id": "cli"}));
        assert_eq!(
            check_jwt_claims(&good, ISS, 99),
            Ok(JwtAccess {
                client_id: "cli".into(),
                expires_at: 100
            })
        );
        assert!(check_jwt_claims(&good, ISS, 100).is_err());
        assert!(check_jwt_claims(&good, "https://other", 1).is_err());
        let arr =
            c(serde_json::json!({"iss": ISS, "aud": ["x", ISS], "exp": 100, "client_id": "c"}));
        assert!(check_jwt_claims(&arr, ISS, 1).is_ok());
        let wrong_aud =
            c(serde_json::json!({"iss": ISS, "aud": "app", "exp": 100, "client_id": "c"}));
        assert!(check_jwt_claims(&wrong_aud, ISS, 1).is_err());
        let no_client = c(serde_json::json!({"iss": ISS, "aud": ISS, "exp": 100}));
        assert!(check_jwt_claims(&no_client, ISS, 1).is_err());
    }

    fn standing() -> impl Strategy<Value = Option<(OwnerStanding, bool)>> {
        prop_oneof![
            Just(None),
            any::<bool>().prop_map(|b| Some((OwnerStanding::Active, b))),
            Just(Some((OwnerStanding::Pending, true))),
            Just(Some((OwnerStanding::Disabled, true))),
        ]
    }

    proptest! {
        /// Allowed implies every condition of the rule holds: unexpired, a
        /// listed client, every required scope, a good account or an
        /// allowed service client.
        #[test]
        fn allowed_means_every_rule_holds(
            client in "[a-c]",
            listed in proptest::collection::vec("[a-c]", 0..3),
            granted in proptest::collection::vec("[x-z]{1,2}", 0..4),
            required in proptest::collection::vec("[x-z]{1,2}", 0..3),
            service in any::<bool>(),
            account in standing(),
            exp in 0i64..10,
            now in 0i64..10,
        ) {
            let scopes = granted.join(" ");
            let rule = AccessRule { clients: listed.clone(), scopes: required.clone(), service_clients: service };
            let facts = AccessFacts { client_id: &client, scopes: &scopes, expires_at: exp, account };
            if judge_access(&facts, &rule, now) == AccessJudgement::Allowed {
                prop_assert!(now < exp);
                prop_assert!(listed.contains(&client));
                prop_assert!(required.iter().all(|r| granted.contains(r)));
                match account {
                    None => prop_assert!(service),
                    Some((s, allowed)) => prop_assert!(s == OwnerStanding::Active && allowed),
                }
            }
        }

        /// Reading never panics, and whatever is found is ours: a
        /// well-formed vat_ token or an at+jwt of this issuer.
        #[test]
        fn reading_arbitrary_headers(
            auth in proptest::collection::vec("[ -~]{0,80}", 0..3),
            custom in proptest::option::of("[ -~]{0,80}"),
            device_header in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            for a in &auth {
                if let Ok(v) = HeaderValue::from_str(a) { h.append(AUTHORIZATION, v); }
            }
            if let Some(c) = &custom && let Ok(v) = HeaderValue::from_str(c) {
                h.append(HeaderName::from_static("x-vestibule-token"), v);
            }
            if let Ok(Some(p)) = find_access_token(&h, &carriers(true), ISS, device_header) {
                prop_assert!(classify(p.token.expose(), ISS).is_some_and(|f| f == Ok(p.form)));
            }
        }

        /// A bearer opaque token is always found, whatever its bytes.
        #[test]
        fn every_opaque_token_is_found(bytes in any::<[u8; 32]>()) {
            let t = crate::secret::prefixed_token(ACCESS_TOKEN_PREFIX, bytes);
            let h = req(&[("authorization", &format!("bearer {}", t.expose()))]);
            let p = find_access_token(&h, &carriers(false), ISS, false).unwrap().unwrap();
            prop_assert_eq!(p.token.expose(), t.expose());
        }
    }
}
