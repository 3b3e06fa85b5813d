//! Token introspection (RFC 7662) at `POST /.vestibule/oidc/introspect`.
//!
//! - **The caller must authenticate** (§2.1: "the endpoint MUST also
//!   require some form of authorization to access this endpoint"), with a
//!   client secret: `client_secret_basic` or `client_secret_post`. A
//!   public client, or no credentials at all, is refused with 401
//!   `invalid_client` (§2.3 leaves the error to RFC 6749 §5.2); the
//!   metadata lists only the two secret methods.
//! - **A token is active only for the client it was issued to.** §4 lets
//!   the server decide what a caller may learn ("the authorization server
//!   MAY respond differently to different protected resources making the
//!   same request"); vestibule tells a client about its own tokens and
//!   nothing about anyone else's, so one app cannot probe or read another
//!   app's tokens. (A resource server that must check tokens of several
//!   clients is the gate's job: a route accepting vestibule's tokens.)
//! - **Anything not active is only `{"active":false}`** (§2.2: "If the
//!   introspection call is properly authorized but the token is not
//!   active, does not exist on this server, or the protected resource is
//!   not allowed to introspect this particular token, then the
//!   authorization server MUST return an introspection response with the
//!   'active' field set to 'false'", and §4: it "SHOULD NOT include any
//!   additional information about an inactive token"): unknown, expired,
//!   revoked, rotated, another client's, or a token whose account is now
//!   disabled or no longer in the client's groups, or whose client is gone.
//! - An active token carries `active`, `scope`, `client_id`, `username`
//!   (the account's), `token_type` (`Bearer`, access tokens only: §2.2
//!   takes it from RFC 6749 §7.1, which types access tokens), `exp`,
//!   `iat`, `nbf`, `sub` (as in the ID token, or the client's id for a
//!   `client_credentials` token, as its JWT form says), `aud` (the issuer,
//!   as in the JWT form), `iss`, and
//!   `jti` when the token is a JWT (RFC 9068) that has one.
//! - `token_type_hint` only orders the lookups, as in [`super::revoke`];
//!   whether a token is active is [`introspection_active`]'s decision.
//!
//! Answers are `Cache-Control: no-store` (§4: "the authorization server
//! ... SHOULD ... not be cached").

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use vestibule_core::oidc_token::{TokenAccount, TokenFacts, TokenKind, introspection_active};
use vestibule_store::AccountStatus;

use super::client_auth::{AuthError, Method};
use super::id_token::subject;
use super::{Provider, no_store_json, oauth_error, secs, sha256, token_request};
use crate::accounts::now_ms;
use crate::state::AppState;

/// What an active token says, before it becomes JSON.
#[derive(Debug, Default)]
struct Found {
    client_id: String,
    retired: bool,
    scope: String,
    account_id: Option<i64>,
    token_type: Option<&'static str>,
    iat_ms: i64,
    exp_ms: i64,
    jti: Option<String>,
}

fn inactive() -> Response {
    no_store_json(StatusCode::OK, &json!({ "active": false }))
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "introspection: the store failed");
    oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the token could not be looked up now; try again",
    )
}

/// The `jti` of a JWT this provider issued (the token was found by its
/// digest in the store, so its payload is ours; nothing here is trusted
/// that the store did not vouch for first). `None` for opaque tokens.
fn jwt_id(token: &str) -> Option<String> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("jti")?.as_str().map(str::to_owned)
}

/// The token whose digest is `hash`, as the kind `kind`, whatever its
/// state: [`introspection_active`] decides.
async fn lookup(
    p: &Provider<'_>,
    kind: TokenKind,
    token: &str,
    hash: &[u8; 32],
    now: i64,
) -> Result<Option<Found>, Response> {
    Ok(match kind {
        TokenKind::Access => p
            .store
            .access_token(hash)
            .await
            .map_err(unavailable)?
            .map(|r| Found {
                client_id: r.client_id,
                retired: false,
                scope: r.scopes,
                account_id: r.account_id,
                token_type: Some("Bearer"),
                iat_ms: r.created_at,
                exp_ms: r.expires_at,
                jti: jwt_id(token),
            }),
        TokenKind::Refresh => p
            .store
            .refresh_token(hash)
            .await
            .map_err(unavailable)?
            .map(|r| Found {
                // Rotated, expired, or of a revoked family: retired.
                retired: !r.is_active(now),
                client_id: r.grant.client_id,
                scope: r.grant.scopes,
                account_id: Some(r.grant.account_id),
                token_type: None,
                iat_ms: r.created_at,
                exp_ms: r.expires_at.min(r.family_expires_at),
                jti: None,
            }),
    })
}

/// `POST /.vestibule/oidc/introspect`.
pub async fn introspect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match token_request(&state, &headers, &body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (p, client) = (&req.provider, &req.client);
    // A public client proves nothing about itself: not enough to be told
    // about tokens (§2.1).
    if req.method == Method::None {
        return AuthError::InvalidClient { basic_tried: false }.response();
    }
    let hash = sha256(&req.token);
    let now = now_ms();
    let mut found = None;
    for kind in req.order {
        match lookup(p, kind, &req.token, &hash, now).await {
            Ok(Some(f)) => {
                found = Some(f);
                break;
            }
            Ok(None) => {}
            Err(resp) => return resp,
        }
    }
    let Some(found) = found else {
        return inactive();
    };
    // The account is read now, as at every refresh and userinfo call: a
    // disabled account's tokens are not active.
    let account = match found.account_id {
        None => None,
        Some(id) => match p.store.account(id).await {
            Ok(a) => Some(a),
            Err(e) => return unavailable(e),
        },
    };
    let facts = TokenFacts {
        issued_to: &found.client_id,
        expires_at: found.exp_ms,
        retired: found.retired,
        account: match &account {
            None => TokenAccount::ClientItself,
            Some(None) => TokenAccount::Gone,
            Some(Some(a)) => TokenAccount::Present {
                active: a.status == AccountStatus::Active,
                groups: &a.groups,
            },
        },
    };
    if !introspection_active(&facts, &client.client_id, &client.allowed_groups, now) {
        return inactive();
    }
    let (sub, username) = match account.flatten() {
        None => (client.client_id.clone(), None),
        Some(a) => (subject(a.id), Some(a.username)),
    };
    let active = found;
    let mut body = Map::new();
    body.insert("active".into(), true.into());
    body.insert("scope".into(), active.scope.into());
    body.insert("client_id".into(), client.client_id.clone().into());
    if let Some(u) = username {
        body.insert("username".into(), u.into());
    }
    if let Some(t) = active.token_type {
        body.insert("token_type".into(), t.into());
    }
    body.insert("exp".into(), secs(active.exp_ms).into());
    body.insert("iat".into(), secs(active.iat_ms).into());
    body.insert("nbf".into(), secs(active.iat_ms).into());
    body.insert("sub".into(), sub.into());
    // The JWT form's `aud` (see `id_token::mint_access_token`): vestibule
    // is the resource server of its own access tokens, and the only party
    // that redeems a refresh token.
    body.insert("aud".into(), p.settings.issuer.clone().into());
    body.insert("iss".into(), p.settings.issuer.clone().into());
    if let Some(j) = active.jti {
        body.insert("jti".into(), j.into());
    }
    no_store_json(StatusCode::OK, &Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_of_a_jwt_only() {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!("{}.{}.sig", enc("{}"), enc(r#"{"jti":"abc"}"#));
        assert_eq!(jwt_id(&jwt).as_deref(), Some("abc"));
        assert_eq!(jwt_id("vat_opaque"), None);
        assert_eq!(jwt_id(&format!("{jwt}.extra")), None);
        assert_eq!(jwt_id(&format!("{}.{}.s", enc("{}"), enc("{}"))), None);
    }
}
