//! ID tokens (OIDC Core §2, §3.1.3.6) and the JWT access tokens of
//! RFC 9068, signed by the key family of the client's `id_token_alg`.
//!
//! ## `sub`
//!
//! The account's id in the store, in decimal. It is stable for the life
//! of the account, never reused (the store never reuses ids), never an
//! email or a login name (both can change hands), and the same at every
//! instance on one database. It is not pairwise: every client sees the
//! same `sub` for one person (OIDC Core §8.1 `public`).
//!
//! ## `sid`
//!
//! Derived from the vestibule session the code came from ([`sid`]): a
//! SHA-256 of the session reference under a label of its own, so the
//! session reference itself (which may open the session) never reaches an
//! app. Back-channel logout names the same value.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};
use vestibule_core::oidc_token::{TokenHash, UserClaims, at_hash, scoped_claims};
use vestibule_jose::Algorithm;
use vestibule_store::Account;

use crate::config::OidcProviderSettings;
use crate::keys::KeyRing;

/// The JWS `typ` of an ID token (OIDC Core does not require one; `JWT` is
/// what RFC 7519 §5.1 recommends and what every RP accepts).
pub const ID_TOKEN_TYP: &str = "JWT";
/// The JWS `typ` of a JWT access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The algorithms the provider signs with: RS256 whenever it is on (many
/// relying parties accept nothing else), and each client's `id_token_alg`.
/// The key ring makes a family for each.
pub fn algorithms(settings: Option<&OidcProviderSettings>) -> Vec<Algorithm> {
    let Some(p) = settings else {
        return Vec::new();
    };
    let mut out = vec![Algorithm::RS256];
    for c in &p.clients {
        let alg = c.id_token_alg.jose();
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    out
}

/// The `sub` of an account (see the module documentation).
pub fn subject(account_id: i64) -> String {
    account_id.to_string()
}

/// The `sid` of a vestibule session reference (see the module
/// documentation): 128 bits of SHA-256 over a label and the reference,
/// base64url.
pub fn sid(session_ref: &str) -> String {
    use base64::Engine;
    let mut input = b"vestibule oidc sid\0".to_vec();
    input.extend_from_slice(session_ref.as_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// The hash `at_hash` uses with `alg` (OIDC Core §3.1.3.6: the hash of the
/// JWS algorithm; SHA-512 for EdDSA over Ed25519).
pub fn token_hash_of(alg: Algorithm) -> TokenHash {
    match alg.as_str() {
        "RS384" | "ES384" | "PS384" => TokenHash::Sha384,
        "RS512" | "ES512" | "PS512" | "EdDSA" => TokenHash::Sha512,
        _ => TokenHash::Sha256,
    }
}

/// What is known about an account, for claims. `email_verified` is
/// `false`: no identity source vestibule reads today says whether it
/// checked the address (OIDC Core §5.1: `true` only when the provider
/// "took affirmative steps"), so none is claimed.
pub fn user_claims(account: &Account) -> UserClaims<'_> {
    UserClaims {
        name: account.display_name.as_deref(),
        preferred_username: &account.username,
        email: account.email.as_deref(),
        email_verified: false,
        groups: &account.groups,
    }
}

/// Everything an ID token says.
pub struct IdToken<'a> {
    /// `iss`, exactly as configured.
    pub issuer: &'a str,
    /// `aud`.
    pub client_id: &'a str,
    /// Signs it.
    pub alg: Algorithm,
    /// The user.
    pub account: &'a Account,
    /// The granted scopes (claims follow them).
    pub scopes: &'a BTreeSet<String>,
    /// `nonce`, echoed when the request had one (and only then).
    pub nonce: Option<&'a str>,
    /// `auth_time`, unix ms.
    pub auth_time_ms: i64,
    /// The vestibule session, for `sid`.
    pub session_ref: Option<&'a str>,
    /// `amr`.
    pub amr: &'a [String],
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
    /// `iat`, unix seconds.
    pub now: i64,
    /// `exp - iat`.
    pub lifetime: Duration,
}

/// Signs an ID token with the current key of the family of `t.alg`.
pub fn mint(keys: &KeyRing, t: &IdToken<'_>) -> Result<String, String> {
    let mut claims = Map::new();
    claims.insert("iss".into(), t.issuer.into());
    claims.insert("sub".into(), subject(t.account.id).into());
    claims.insert("aud".into(), t.client_id.into());
    // OIDC Core §2: `azp` when the ID token has a single audience equal to
    // the authorized party is optional; it is sent because some RPs
    // (openid-client with several audiences) look for it.
    claims.insert("azp".into(), t.client_id.into());
    claims.insert("iat".into(), t.now.into());
    claims.insert(
        "exp".into(),
        (t.now + i64::try_from(t.lifetime.as_secs()).unwrap_or(600)).into(),
    );
    claims.insert("auth_time".into(), super::secs(t.auth_time_ms).into());
    if let Some(nonce) = t.nonce {
        claims.insert("nonce".into(), nonce.into());
    }
    claims.insert(
        "at_hash".into(),
        at_hash(token_hash_of(t.alg), t.access_token).into(),
    );
    if let Some(r) = t.session_ref {
        claims.insert("sid".into(), sid(r).into());
    }
    if !t.amr.is_empty() {
        claims.insert("amr".into(), json!(t.amr));
    }
    claims.extend(scoped_claims(t.scopes, &user_claims(t.account)));
    sign(keys, t.alg, ID_TOKEN_TYP, &Value::Object(claims))
}

/// A JWT access token (RFC 9068 §2.2): `iss`, `sub` (the user, or the
/// client for `client_credentials`), `aud` (the issuer: vestibule itself
/// is the resource server, at userinfo and at the gate, as no `resource`
/// parameter names another, RFC 9068 §3), `client_id`, `iat`, `exp`, a
/// random `jti`, `scope`, and `auth_time` when a user signed in.
#[allow(clippy::too_many_arguments)]
pub fn mint_access_token(
    keys: &KeyRing,
    alg: Algorithm,
    issuer: &str,
    subject: &str,
    client_id: &str,
    scope: &str,
    auth_time_ms: Option<i64>,
    now: i64,
    lifetime: Duration,
) -> Result<String, String> {
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("sub".into(), subject.into());
    claims.insert("aud".into(), issuer.into());
    claims.insert("client_id".into(), client_id.into());
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        (now + i64::try_from(lifetime.as_secs()).unwrap_or(600)).into(),
    );
    claims.insert("jti".into(), super::random_token("").into());
    claims.insert("scope".into(), scope.into());
    if let Some(t) = auth_time_ms {
        claims.insert("auth_time".into(), super::secs(t).into());
    }
    sign(keys, alg, ACCESS_TOKEN_TYP, &Value::Object(claims))
}

/// Verifies a JWS this provider signed, at `now` (unix ms): with the key
/// family of its `alg` (an algorithm we do not sign with is refused),
/// current or retired-but-published key, `typ` one of `types` (required
/// when `type_required`). Returns its claims; the caller checks them.
pub(crate) fn verify_own(
    keys: &KeyRing,
    token: &str,
    types: &[&str],
    type_required: bool,
    now: i64,
) -> Result<Map<String, Value>, &'static str> {
    let jws = vestibule_jose::Compact::parse(token).map_err(|_| "not a JWS")?;
    let alg = jws
        .header()
        .get("alg")
        .and_then(|v| v.as_str())
        .and_then(Algorithm::parse)
        .ok_or("no usable alg")?;
    let set = keys
        .for_algorithm(alg)
        .ok_or("signed with an algorithm vestibule does not sign with")?;
    let verified = set
        .verify(
            &jws,
            &vestibule_jose::Policy {
                algorithms: &[alg],
                types,
                type_required,
            },
            now,
        )
        .map_err(|_| "signature refused")?;
    verified.claims_object().map_err(|_| "claims unreadable")
}

/// Signs `claims` as a compact JWS with the ring's current `alg` key and
/// the JWS `typ` given (tests sign logout tokens with it).
pub fn sign(keys: &KeyRing, alg: Algorithm, typ: &str, claims: &Value) -> Result<String, String> {
    let set = keys
        .for_algorithm(alg)
        .ok_or_else(|| format!("no {alg} signing key (the key ring was opened without it)"))?;
    set.sign(Some(typ), claims.to_string().as_bytes())
        .map_err(|e| format!("cannot sign: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_is_stable_opaque_and_per_session() {
        assert_eq!(sid("a"), sid("a"));
        assert_ne!(sid("a"), sid("b"));
        assert_eq!(sid("a").len(), 22);
        assert!(!sid("session-ref").contains("session"));
    }

    #[test]
    fn at_hash_follows_the_algorithm() {
        assert_eq!(token_hash_of(Algorithm::RS256), TokenHash::Sha256);
        assert_eq!(token_hash_of(Algorithm::ES256), TokenHash::Sha256);
        assert_eq!(token_hash_of(Algorithm::EdDSA), TokenHash::Sha512);
    }
}
