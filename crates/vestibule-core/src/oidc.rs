//! OpenID Connect relying-party checks: the ID token of a login (OIDC Core
//! 1.0 §3.1.3.7) and the logout token of a back-channel logout (OIDC
//! Back-Channel Logout 1.0 §2.4, §2.6).
//!
//! Both are JWS-signed JWTs verified through [`vestibule_jose`] exactly
//! like identity assertions ([`crate::jwt`]): the signature with an
//! allow-listed algorithm (never `none` or HMAC) and a key of the
//! provider's JWK Set, before a byte of the claims is read. An unknown
//! `kid` comes back as [`JwtError::UnknownKey`] so the caller refetches the
//! provider's JWKS once and verifies again. Encrypted tokens (JWE, five
//! segments) are refused as malformed: vestibule never registers an
//! encryption key with the provider.
//!
//! What stays with the caller, because it needs state: the `state` and
//! PKCE verifier of the authorization request (RFC 9700 §2.1.1, RFC 7636
//! §4), the nonce it stored (passed in [`IdTokenExpectations::nonce`]), and
//! the `jti` replay store for logout tokens ([`LogoutToken::replay_until`]
//! says how long to remember one).

mod client_assertion;
mod discovery;
mod id_token;
mod logout_token;
#[cfg(test)]
mod tests;

use std::fmt;

pub use client_assertion::{
    ClientAssertion, ClientAssertionExpectations, JWT_BEARER_ASSERTION,
    unverified_assertion_client, verify_client_assertion,
};
pub use discovery::{
    CallbackError, DiscoveryError, MAX_DISCOVERY_BYTES, MAX_TOKEN_RESPONSE_BYTES,
    MAX_USERINFO_BYTES, ProviderMetadata, RefreshResponse, TokenResponse, TokenResponseError,
    UserinfoError, check_callback, check_userinfo, is_secure_url, parse_discovery,
    parse_refresh_response, parse_token_response, pkce_challenge,
};
pub use id_token::{
    ClaimsRefused, IdToken, IdTokenExpectations, OriginalLogin, allowed_identity, token_hash,
    verify_id_token, verify_refreshed_id_token,
};
pub use logout_token::{
    BACKCHANNEL_LOGOUT_EVENT, LogoutToken, LogoutTokenExpectations, verify_logout_token,
};

use crate::jwt::JwtError;

/// Why an ID token or a logout token was refused. Each means "not
/// authenticated": a login fails, a back-channel logout gets 400 and ends
/// nothing. Display strings never contain the token or a claim value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OidcTokenError {
    /// The JWS or a standard claim (`iss`, `aud`, `exp`, `nbf`, `iat`,
    /// `sub`) was refused.
    Jwt(JwtError),
    /// `iat` is missing: OIDC Core §2 and Back-Channel Logout §2.4 make it
    /// REQUIRED.
    MissingIssuedAt,
    /// `iat` is older than the caller accepts (OIDC Core §3.1.3.7 point 10
    /// lets a client bound it; for a logout token without `exp` it is the
    /// only bound).
    StaleIssuedAt,
    /// `aud` names a party the client does not trust besides itself (OIDC
    /// Core §3.1.3.7 point 3).
    UntrustedAudience,
    /// `azp` is present and is not our client id (OIDC Core §3.1.3.7
    /// point 5, as corrected by errata set 2).
    WrongAuthorizedParty,
    /// The ID token's `nonce` is missing or differs from the one sent in
    /// the authentication request (OIDC Core §3.1.3.7 point 11).
    WrongNonce,
    /// `at_hash` does not match the access token (OIDC Core §3.2.2.9, used
    /// for the code flow as §3.1.3.8 allows).
    WrongAccessTokenHash,
    /// The subject is longer than 255 ASCII characters (OIDC Core §2).
    SubjectTooLong,
    /// A logout token has no `events` object with the back-channel logout
    /// member, or that member is not a JSON object (Back-Channel Logout
    /// §2.4, §2.6 point 5).
    MissingLogoutEvent,
    /// A logout token has neither `sid` nor `sub` (§2.4, §2.6 point 4).
    MissingSessionAndSubject,
    /// A logout token carries `nonce` (§2.4, §2.6 point 6): it could be an
    /// ID token replayed as a logout token.
    LogoutTokenWithNonce,
    /// A logout token has no `jti` (§2.4 makes it REQUIRED; without it a
    /// replay cannot be recognised).
    MissingTokenId,
    /// A refreshed ID token names another subject than the login's (OIDC
    /// Core §12.2).
    SubjectChanged,
    /// A refreshed ID token's `auth_time` is not the login's (OIDC Core
    /// §12.2).
    AuthTimeChanged,
    /// A claim has the wrong JSON type.
    BadClaim {
        /// The claim name.
        claim: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}

impl From<JwtError> for OidcTokenError {
    fn from(e: JwtError) -> Self {
        Self::Jwt(e)
    }
}

impl fmt::Display for OidcTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwt(e) => e.fmt(f),
            Self::MissingIssuedAt => f.write_str("the token has no issue time (iat)"),
            Self::StaleIssuedAt => f.write_str("the token was issued too long ago (iat)"),
            Self::UntrustedAudience => f.write_str("the token names an untrusted audience"),
            Self::WrongAuthorizedParty => f.write_str("the token's azp is not this client"),
            Self::WrongNonce => f.write_str("the ID token's nonce is not the one sent"),
            Self::WrongAccessTokenHash => f.write_str("at_hash does not match the access token"),
            Self::SubjectTooLong => f.write_str("the subject is longer than 255 characters"),
            Self::MissingLogoutEvent => {
                f.write_str("the logout token has no back-channel logout event")
            }
            Self::MissingSessionAndSubject => {
                f.write_str("the logout token has neither sid nor sub")
            }
            Self::LogoutTokenWithNonce => f.write_str("the logout token carries a nonce"),
            Self::MissingTokenId => f.write_str("the token has no jti"),
            Self::SubjectChanged => f.write_str("the refreshed ID token names another subject"),
            Self::AuthTimeChanged => {
                f.write_str("the refreshed ID token's auth_time is not the login's")
            }
            Self::BadClaim { claim, reason } => write!(f, "claim `{claim}` {reason}"),
        }
    }
}

impl std::error::Error for OidcTokenError {}

/// An optional string claim: absent or `null` is `None`, an empty string
/// or another type is refused.
fn optional_str(
    raw: &serde_json::Map<String, serde_json::Value>,
    claim: &'static str,
) -> Result<Option<String>, OidcTokenError> {
    match raw.get(claim) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(OidcTokenError::BadClaim {
            claim,
            reason: "is not a non-empty string",
        }),
    }
}

/// `iat`, required, not in the future and not older than `max_age`
/// seconds (each with the leeway).
fn issued_at_within(
    raw: &serde_json::Map<String, serde_json::Value>,
    now: i64,
    leeway: i64,
    max_age: i64,
) -> Result<i64, OidcTokenError> {
    let iat = crate::jwt::numeric_date(raw, "iat", true)?.ok_or(OidcTokenError::MissingIssuedAt)?;
    let leeway = leeway.max(0);
    if iat > now.saturating_add(leeway) {
        return Err(JwtError::IssuedInFuture.into());
    }
    if now > iat.saturating_add(max_age.max(0)).saturating_add(leeway) {
        return Err(OidcTokenError::StaleIssuedAt);
    }
    Ok(iat)
}

/// The JWS checks both tokens share: the length bound, then signature,
/// algorithm, key and `typ` through vestibule-jose (no JWE: five segments
/// are malformed), before the claims object is parsed (RFC 8725 §3.4).
fn verified_claims(
    token: &str,
    jwks: &vestibule_jose::Jwks,
    policy: &vestibule_jose::Policy<'_>,
    max_token_bytes: usize,
) -> Result<
    (
        vestibule_jose::Algorithm,
        serde_json::Map<String, serde_json::Value>,
    ),
    OidcTokenError,
> {
    if token.len() > max_token_bytes {
        return Err(JwtError::TooLong.into());
    }
    let verified = vestibule_jose::Compact::parse(token)
        .and_then(|c| c.verify(jwks, policy))
        .map_err(JwtError::from)?;
    let claims = verified.claims_object().map_err(JwtError::from)?;
    Ok((verified.algorithm(), claims))
}
