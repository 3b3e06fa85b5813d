//! The ID token of an authorization-code login, checked per OIDC Core 1.0
//! §3.1.3.7 (the token endpoint's response, RFC 9700 §2.1.1 for the rest).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use subtle::ConstantTimeEq as _;
use vestibule_jose::{Algorithm, Jwks, Policy};

use super::{OidcTokenError, issued_at_within, optional_str, verified_claims};
use crate::jwt::{Claims, Expectations, JwtError, check_claims};

/// What the relying party expects of an ID token.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenExpectations<'a> {
    /// The provider's issuer identifier, exactly as discovery gave it
    /// (§3.1.3.7 point 2; OIDC Discovery §4.3 makes it equal the issuer
    /// the configuration was fetched for).
    pub issuer: &'a str,
    /// Our `client_id`: `aud` must contain it (point 3) and `azp`, when
    /// present, must equal it (point 5).
    pub client_id: &'a str,
    /// Other audiences the client trusts beside itself. Usually empty: a
    /// token that also names an unknown party is refused (point 3).
    pub trusted_audiences: &'a [String],
    /// Accepted algorithms: the registered `id_token_signed_response_alg`,
    /// RS256 by default (point 7). Never `none` or HMAC.
    pub algorithms: &'a [Algorithm],
    /// The nonce sent in the authentication request (point 11).
    pub nonce: &'a str,
    /// The access token from the same token response, to check `at_hash`
    /// when the token has one.
    pub access_token: Option<&'a str>,
    /// The current time, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// The oldest `iat` accepted, in seconds before `now` (point 10).
    pub max_age: i64,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// A verified ID token.
#[derive(Clone, Debug, PartialEq)]
pub struct IdToken {
    /// The standard claims, for [`crate::jwt::identity_from_claims`].
    pub claims: Claims,
    /// `sid`, the provider's session id, when it sends one (Back-Channel
    /// Logout §2.1): recorded so a logout token naming it ends the session.
    pub session_id: Option<String>,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `auth_time`, Unix seconds, when present: a refreshed ID token must
    /// carry the same (OIDC Core §12.2).
    pub auth_time: Option<i64>,
}

/// What a refreshed ID token must share with the session's first one
/// (OIDC Core §12.2).
#[derive(Clone, Copy, Debug)]
pub struct OriginalLogin<'a> {
    /// The `sub` of the login: "its sub Claim Value MUST be the same".
    pub subject: &'a str,
    /// The `auth_time` of the login, when it had one: "its value MUST
    /// represent the time of the original authentication".
    pub auth_time: Option<i64>,
}

/// How the `nonce` claim is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NonceRule {
    /// A login's ID token: present and equal (§3.1.3.7 point 11).
    Required,
    /// A refreshed one: absent, or equal to the login's (§12.2 keeps the
    /// other rules of the original authentication; providers differ on
    /// repeating it).
    IfPresent,
}

/// The `typ` an ID token may have when it has one (RFC 8725 §3.11): a
/// logout token (`logout+jwt`) or an access token (`at+jwt`) is not one.
const ID_TOKEN_TYPES: &[&str] = &["JWT"];

/// Verifies an ID token from the token endpoint (OIDC Core §3.1.3.7):
/// points 1 (no JWE), 2 (`iss`), 3 (`aud`), 4 and 5 (`azp`), 6 to 8 (the
/// signature, with an allowed algorithm, through the provider's JWKS), 9
/// (`exp`), 10 (`iat`), 11 (`nonce`), and `at_hash` when present
/// (§3.2.2.9). `acr` and `auth_time` (points 12, 13) are not requested.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expect: &IdTokenExpectations<'_>,
) -> Result<IdToken, OidcTokenError> {
    verify(token, jwks, expect, NonceRule::Required)
}

/// Why the claims of a verified ID token give no identity allowed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimsRefused {
    /// The claims do not map to an identity (no subject or username
    /// claim, a value too long).
    Claims(JwtError),
    /// The person is in none of the allowed groups.
    NotInAllowedGroup,
}

impl std::fmt::Display for ClaimsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Claims(e) => write!(f, "claims: {e}"),
            Self::NotInAllowedGroup => f.write_str("in none of source.oidc.allowed_groups"),
        }
    }
}

/// The identity a verified ID token states, through `mapping` (the
/// identity's source is `issuer`), when `allowed_groups` lets it in
/// (empty: anyone): the one rule for a login's callback and for a
/// re-check's refreshed ID token (OIDC Core §12.2: the claims as the
/// provider holds them now).
pub fn allowed_identity(
    token: &IdToken,
    mapping: &crate::jwt::ClaimMapping,
    issuer: &str,
    allowed_groups: &[String],
) -> Result<crate::identity::Identity, ClaimsRefused> {
    let limits = crate::dialect::ValueLimits::default();
    let identity = crate::jwt::identity_from_claims(
        &token.claims,
        mapping,
        issuer,
        limits.max_value_len,
        limits.max_groups_len,
    )
    .map_err(ClaimsRefused::Claims)?;
    if !allowed_groups.is_empty() && !allowed_groups.iter().any(|g| identity.in_group(g)) {
        return Err(ClaimsRefused::NotInAllowedGroup);
    }
    Ok(identity)
}

/// Verifies an ID token returned by a refresh (OIDC Core §12.2): every
/// check of [`verify_id_token`] (`iss`, `aud`, `azp`, signature, `exp`,
/// a fresh `iat`, `at_hash`), except that `nonce` may be absent (when
/// present it must be the login's, `expect.nonce`), and then the same
/// `sub` as the login's and, when both have one, the same `auth_time`.
pub fn verify_refreshed_id_token(
    token: &str,
    jwks: &Jwks,
    expect: &IdTokenExpectations<'_>,
    original: &OriginalLogin<'_>,
) -> Result<IdToken, OidcTokenError> {
    let t = verify(token, jwks, expect, NonceRule::IfPresent)?;
    if original.subject.is_empty() || t.claims.subject != original.subject {
        return Err(OidcTokenError::SubjectChanged);
    }
    if let (Some(was), Some(now)) = (original.auth_time, t.auth_time)
        && was != now
    {
        return Err(OidcTokenError::AuthTimeChanged);
    }
    Ok(t)
}

fn verify(
    token: &str,
    jwks: &Jwks,
    expect: &IdTokenExpectations<'_>,
    nonce_rule: NonceRule,
) -> Result<IdToken, OidcTokenError> {
    let policy = Policy {
        algorithms: expect.algorithms,
        types: ID_TOKEN_TYPES,
        type_required: false,
    };
    let (algorithm, raw) = verified_claims(token, jwks, &policy, expect.max_token_bytes)?;
    let audiences = [expect.client_id.to_owned()];
    let claims = check_claims(
        raw,
        &Expectations {
            issuer: expect.issuer,
            audiences: &audiences,
            algorithms: expect.algorithms,
            now: expect.now,
            leeway: expect.leeway,
            max_token_bytes: expect.max_token_bytes,
        },
    )?;
    // An empty client id matches nothing (check_claims skips an empty list,
    // never an empty name, but be explicit).
    if expect.client_id.is_empty() {
        return Err(JwtError::WrongAudience.into());
    }
    // Point 3: every audience must be us or a party we trust.
    if claims
        .audiences
        .iter()
        .any(|a| a != expect.client_id && !expect.trusted_audiences.contains(a))
    {
        return Err(OidcTokenError::UntrustedAudience);
    }
    let raw = claims.raw();
    // Points 4 and 5 (errata set 2): when `azp` is present it must be us.
    if optional_str(raw, "azp")?.is_some_and(|azp| azp != expect.client_id) {
        return Err(OidcTokenError::WrongAuthorizedParty);
    }
    // §2: `sub` is at most 255 ASCII characters.
    if claims.subject.len() > 255 {
        return Err(OidcTokenError::SubjectTooLong);
    }
    let issued_at = issued_at_within(raw, expect.now, expect.leeway, expect.max_age)?;
    // Point 11: the nonce must be the one we sent; compared in constant
    // time since it is a secret of this login.
    let nonce_ok = match optional_str(raw, "nonce") {
        Ok(Some(n)) => {
            !expect.nonce.is_empty() && bool::from(n.as_bytes().ct_eq(expect.nonce.as_bytes()))
        }
        Ok(None) => nonce_rule == NonceRule::IfPresent,
        Err(_) => false,
    };
    if !nonce_ok {
        return Err(OidcTokenError::WrongNonce);
    }
    if let Some(at_hash) = optional_str(raw, "at_hash")? {
        let ok = expect.access_token.is_some_and(|at| {
            token_hash(algorithm, at)
                .as_bytes()
                .ct_eq(at_hash.as_bytes())
                .into()
        });
        if !ok {
            return Err(OidcTokenError::WrongAccessTokenHash);
        }
    }
    let session_id = optional_str(raw, "sid")?;
    let auth_time = crate::jwt::numeric_date(raw, "auth_time", true)?;
    Ok(IdToken {
        claims,
        session_id,
        issued_at,
        auth_time,
    })
}

/// `at_hash` (OIDC Core §3.2.2.9): the base64url of the left-most half of
/// the hash of the ASCII access token, with the hash of the JWS `alg`.
/// EdDSA with Ed25519 hashes with SHA-512 (the OpenID Foundation's errata
/// and every certified provider, `oidc-provider` included).
pub fn token_hash(alg: Algorithm, token: &str) -> String {
    let hash = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => &digest::SHA256,
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => &digest::SHA384,
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => &digest::SHA512,
    };
    let d = digest::digest(hash, token.as_bytes());
    let bytes = d.as_ref();
    B64URL.encode(&bytes[..bytes.len() / 2])
}
