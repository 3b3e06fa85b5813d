//! OpenID Connect Back-Channel Logout 1.0, the provider's side: the logout
//! token (§2.4).
//!
//! Only the token is here so far. Sending it (a durable outbox in the
//! store, retries with backoff, the grant's refresh families revoked in
//! the same transaction, hooked where sessions end) is not built yet; see
//! docs/oidc-provider.md.

use std::time::Duration;

use serde_json::{Map, Value, json};
use vestibule_core::oidc::BACKCHANNEL_LOGOUT_EVENT;
use vestibule_jose::Algorithm;

use crate::keys::KeyRing;

/// The JWS `typ` of a logout token (§2.4: explicit typing, RFC 8725
/// §3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// How long a logout token is valid: §2.4 recommends at most two minutes.
pub const LOGOUT_TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// A logout token for `client_id` about the account `subject` and the
/// vestibule session whose `sid` is `sid` (both always, so an RP keyed by
/// either finds its session), signed with the client's ID-token
/// algorithm. Minted afresh for each delivery attempt (a new `jti`,
/// `iat` now), never with a `nonce` (§2.4: it would make it pass for an
/// ID token).
pub fn mint_logout_token(
    keys: &KeyRing,
    alg: Algorithm,
    issuer: &str,
    client_id: &str,
    subject: &str,
    sid: &str,
    now: i64,
) -> Result<String, String> {
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("aud".into(), client_id.into());
    claims.insert("iat".into(), now.into());
    let lifetime = i64::try_from(LOGOUT_TOKEN_LIFETIME.as_secs()).unwrap_or(120);
    claims.insert("exp".into(), (now + lifetime).into());
    claims.insert("jti".into(), super::random_token("").into());
    claims.insert("sub".into(), subject.into());
    claims.insert("sid".into(), sid.into());
    claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    super::id_token::sign(keys, alg, LOGOUT_TOKEN_TYP, &Value::Object(claims))
}
