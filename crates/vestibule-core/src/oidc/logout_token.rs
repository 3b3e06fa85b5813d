//! The logout token of OIDC Back-Channel Logout 1.0, checked per §2.6.

use serde_json::Value;
use vestibule_jose::{Algorithm, Jwks, Policy};

use super::{OidcTokenError, issued_at_within, optional_str, verified_claims};
use crate::jwt::{JwtError, audiences_of, issuer_is, numeric_date};

/// The member of `events` that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What the relying party expects of a logout token.
#[derive(Clone, Copy, Debug)]
pub struct LogoutTokenExpectations<'a> {
    /// The provider's issuer identifier, compared exactly.
    pub issuer: &'a str,
    /// Our `client_id`: `aud` must contain it.
    pub client_id: &'a str,
    /// Accepted algorithms (the ID token's; §2.6 point 3). Never `none`.
    pub algorithms: &'a [Algorithm],
    /// The current time, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp` and `iat`, in seconds.
    pub leeway: i64,
    /// The oldest `iat` accepted, in seconds before `now`. With `exp`
    /// absent it is the token's only lifetime.
    pub max_age: i64,
    /// Refuse a token without `exp`. §2.4 makes `exp` REQUIRED, but
    /// Keycloak before 23.0.4 and authentik before 2025.8.2 omit it; off,
    /// such a token passes when its `iat` is within `max_age`.
    pub require_expiry: bool,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// A verified logout token: what to end, and the `jti` to remember.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutToken {
    /// `iss`: sessions are matched under this issuer only.
    pub issuer: String,
    /// `sub`, when present: without `sid`, every session of this subject
    /// from this issuer ends.
    pub subject: Option<String>,
    /// `sid`, when present: the sessions recorded with this provider
    /// session end.
    pub session_id: Option<String>,
    /// `jti`: the caller refuses a token whose `jti` it has seen (§2.6
    /// point 7) and remembers this one until [`Self::replay_until`].
    pub token_id: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds, when present.
    pub expires_at: Option<i64>,
    /// Until when (Unix seconds) this token would still verify: `jti`
    /// must be remembered at least that long.
    pub replay_until: i64,
}

/// `typ` of a logout token when present (§2.4 recommends explicit typing
/// with `logout+jwt`; RFC 8725 §3.11). Compared as media types, so
/// `application/logout+jwt` is the same. An ID token (`JWT`) is still
/// told apart by its `nonce` and missing `events`.
const LOGOUT_TOKEN_TYPES: &[&str] = &["JWT", "logout+jwt"];

/// Verifies a logout token (Back-Channel Logout 1.0 §2.6): point 1 (no
/// JWE), 2 and 3 (signature with an allowed algorithm through the
/// provider's keys; `iss`, `aud`, `iat`, `exp` as for ID tokens), 4 (`sid`
/// and/or `sub`), 5 (`events` with the back-channel member, an object), 6
/// (no `nonce`). Point 7 (`jti` replay) is the caller's, with
/// [`LogoutToken::token_id`].
pub fn verify_logout_token(
    token: &str,
    jwks: &Jwks,
    expect: &LogoutTokenExpectations<'_>,
) -> Result<LogoutToken, OidcTokenError> {
    let policy = Policy {
        algorithms: expect.algorithms,
        types: LOGOUT_TOKEN_TYPES,
        type_required: false,
    };
    let (_, raw) = verified_claims(token, jwks, &policy, expect.max_token_bytes)?;

    let issuer = issuer_is(&raw, expect.issuer)?;
    if expect.client_id.is_empty() || !audiences_of(&raw)?.iter().any(|a| a == expect.client_id) {
        return Err(JwtError::WrongAudience.into());
    }
    let leeway = expect.leeway.max(0);
    let issued_at = issued_at_within(&raw, expect.now, leeway, expect.max_age)?;
    // RFC 7519 §4.1.4: not accepted on or after `exp`.
    let expires_at = numeric_date(&raw, "exp", false)?;
    match expires_at {
        Some(exp) if expect.now >= exp.saturating_add(leeway) => {
            return Err(JwtError::Expired.into());
        }
        None if expect.require_expiry => return Err(JwtError::MissingExpiry.into()),
        _ => {}
    }
    // §2.6 point 6; checked before the rest so an ID token sent here is
    // named for what it is.
    if raw.contains_key("nonce") {
        return Err(OidcTokenError::LogoutTokenWithNonce);
    }
    // Point 5: `events` is an object whose back-channel member is an object.
    let event_ok = matches!(
        raw.get("events"),
        Some(Value::Object(events)) if matches!(events.get(BACKCHANNEL_LOGOUT_EVENT), Some(Value::Object(_)))
    );
    if !event_ok {
        return Err(OidcTokenError::MissingLogoutEvent);
    }
    let subject = optional_str(&raw, "sub")?;
    let session_id = optional_str(&raw, "sid")?;
    if subject.is_none() && session_id.is_none() {
        return Err(OidcTokenError::MissingSessionAndSubject);
    }
    if subject.as_ref().is_some_and(|s| s.len() > 255) {
        return Err(OidcTokenError::SubjectTooLong);
    }
    let token_id = optional_str(&raw, "jti")?.ok_or(OidcTokenError::MissingTokenId)?;
    let by_age = issued_at
        .saturating_add(expect.max_age.max(0))
        .saturating_add(leeway);
    let replay_until = expires_at.map_or(by_age, |exp| exp.saturating_add(leeway).min(by_age));
    Ok(LogoutToken {
        issuer,
        subject,
        session_id,
        token_id,
        issued_at,
        expires_at,
        replay_until,
    })
}
