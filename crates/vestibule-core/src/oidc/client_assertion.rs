//! `private_key_jwt` client authentication, as the provider checks it
//! (OIDC Core 1.0 §9, RFC 7523 §2.2 and §3, RFC 7521 §4.2): a JWT the
//! client signs with a key of its registered JWK Set, sent as
//! `client_assertion` with `client_assertion_type` =
//! [`JWT_BEARER_ASSERTION`].
//!
//! The signature is verified through [`vestibule_jose`] (allow-listed
//! asymmetric algorithms, never `none` or HMAC) before a claim is read.
//! Then, per RFC 7523 §3 and OIDC Core §9:
//!
//! - `iss` and `sub` are both the client id (items 1, 2);
//! - `aud` names this provider: its issuer identifier or its token
//!   endpoint URL (item 3; OIDC Core §9 says the token endpoint, the
//!   OpenID Foundation's 2025 audience-injection advisory the issuer), and
//!   nothing else: an assertion that also names another party could have
//!   been made for it, so it is refused;
//! - `exp` is required and not past (item 4), and at most
//!   [`ClientAssertionExpectations::max_lifetime`] (plus the leeway) ahead, which bounds how
//!   long a `jti` must be remembered;
//! - `nbf` and `iat`, when present, are not in the future (items 5, 6);
//! - `jti` is required (OIDC Core §9); the caller refuses one it has seen
//!   before, until [`ClientAssertion::replay_until`] (item 7).

use serde_json::{Map, Value};
use vestibule_jose::{Algorithm, Jwks, Policy};

use super::{OidcTokenError, optional_str, verified_claims};
use crate::jwt::{Expectations, JwtError, check_claims};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `typ` values a client assertion may carry (or none): `JWT`, and
/// the explicit type of draft-ietf-oauth-rfc7523bis. An ID token's or a
/// logout token's type is not one.
const ASSERTION_TYPES: &[&str] = &["JWT", "client-authentication+jwt"];

/// What the provider expects of a client assertion.
#[derive(Clone, Copy, Debug)]
pub struct ClientAssertionExpectations<'a> {
    /// The client the request is for (the `client_id` parameter, or the
    /// assertion's own `sub` when the parameter is absent, RFC 7521 §4.2).
    pub client_id: &'a str,
    /// The values `aud` may hold: the issuer and the token endpoint URL.
    pub audiences: &'a [String],
    /// Accepted algorithms. Never `none` or HMAC.
    pub algorithms: &'a [Algorithm],
    /// The current time, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// The longest an assertion may live from now (`exp - now`), seconds.
    pub max_lifetime: i64,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// A verified client assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAssertion {
    /// `jti`: refused if seen again before [`Self::replay_until`].
    pub token_id: String,
    /// Until when the `jti` must be remembered (Unix seconds): `exp` plus
    /// the leeway, after which the assertion is refused anyway.
    pub replay_until: i64,
}

/// Verifies a client assertion (see the module documentation).
pub fn verify_client_assertion(
    token: &str,
    jwks: &Jwks,
    expect: &ClientAssertionExpectations<'_>,
) -> Result<ClientAssertion, OidcTokenError> {
    if expect.client_id.is_empty() || expect.audiences.is_empty() {
        return Err(JwtError::WrongAudience.into());
    }
    let policy = Policy {
        algorithms: expect.algorithms,
        types: ASSERTION_TYPES,
        type_required: false,
    };
    let (_, raw) = verified_claims(token, jwks, &policy, expect.max_token_bytes)?;
    // Items 1 (iss), 3 (aud contains us), 4 (exp), 5 (nbf), 6 (iat).
    let claims = check_claims(
        raw,
        &Expectations {
            issuer: expect.client_id,
            audiences: expect.audiences,
            algorithms: expect.algorithms,
            now: expect.now,
            leeway: expect.leeway,
            max_token_bytes: expect.max_token_bytes,
        },
    )?;
    // Item 3, strictly: every audience is this provider.
    if claims.audiences.is_empty()
        || claims
            .audiences
            .iter()
            .any(|a| !expect.audiences.contains(a))
    {
        return Err(OidcTokenError::UntrustedAudience);
    }
    // Item 2: the subject is the client itself.
    if claims.subject != expect.client_id {
        return Err(OidcTokenError::BadClaim {
            claim: "sub",
            reason: "is not the client id",
        });
    }
    // A far `exp` would make the replay cache remember the `jti` for as
    // long; a client assertion is for one request.
    let latest = expect
        .now
        .saturating_add(expect.max_lifetime.max(0))
        .saturating_add(expect.leeway.max(0));
    if claims.expires_at > latest {
        return Err(OidcTokenError::BadClaim {
            claim: "exp",
            reason: "is too far ahead for a client assertion",
        });
    }
    let token_id = optional_str(claims.raw(), "jti")?.ok_or(OidcTokenError::MissingTokenId)?;
    if token_id.len() > 256 {
        return Err(OidcTokenError::BadClaim {
            claim: "jti",
            reason: "is longer than 256 characters",
        });
    }
    Ok(ClientAssertion {
        token_id,
        replay_until: claims.expires_at.saturating_add(expect.leeway.max(0)),
    })
}

/// The client a client assertion says it is from, read *without*
/// verifying it: only to find which client's keys verify it, when the
/// request has no `client_id` (RFC 7521 §4.2 makes it optional). `sub`,
/// which must equal `iss` (checked again after verification).
pub fn unverified_assertion_client(token: &str, max_token_bytes: usize) -> Option<String> {
    use base64::Engine as _;
    if token.len() > max_token_bytes {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = vestibule_jose::unique_json_object(&bytes)?;
    let sub = claims.get("sub")?.as_str()?;
    let iss = claims.get("iss")?.as_str()?;
    (!sub.is_empty() && sub == iss).then(|| sub.to_owned())
}
