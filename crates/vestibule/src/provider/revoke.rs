//! Token revocation (RFC 7009) at `POST /.vestibule/oidc/revoke`.
//!
//! - The client authenticates as at the token endpoint (RFC 7009 §2.1:
//!   "the client also includes its authentication credentials as described
//!   in Section 2.3 of [RFC6749]"): `client_secret_basic`,
//!   `client_secret_post`, or `none` for a public client, which proves
//!   nothing more than holding the token, and that is enough to give it
//!   up. A failed authentication is the token endpoint's 401.
//! - `token_type_hint` is only a hint (§2.1): the hinted kind is looked up
//!   first, then the other; an unknown hint value is ignored, since "if the
//!   server is unable to locate the token using the given hint, it MUST
//!   extend its search across all of its supported token types".
//! - A refresh token takes its whole family with it, and every access
//!   token issued from that family (§2.1: "If the particular token is a
//!   refresh token and the authorization server supports the revocation of
//!   access tokens, then the authorization server SHOULD also invalidate
//!   all access tokens based on the same authorization grant"). An access
//!   token goes alone; the refresh token that issued it stays.
//! - The answer is 200 with an empty body whether or not anything was
//!   revoked: for an unknown, expired or already revoked token (§2.2: "The
//!   authorization server responds with HTTP status code 200 if the token
//!   has been revoked successfully or if the client submitted an invalid
//!   token"), and for another client's token, which is left alone (§2.1:
//!   "The authorization server first validates the client credentials ...
//!   and then verifies whether the token was issued to the client making
//!   the revocation request. If this validation fails, the request is
//!   refused"; the client is told nothing it could probe with).
//!
//! A JWT access token is revoked in the store like an opaque one: userinfo,
//! introspection and the gate see it gone; a relying party that verifies it
//! locally trusts it until its (short) `exp`, as RFC 9068 §1 notes.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use vestibule_core::oidc_token::TokenKind;

use super::{oauth_error, sha256, token_request};
use crate::accounts::now_ms;
use crate::state::AppState;

/// The RFC 7009 §2.2 success: 200, an empty body, never cached.
fn revoked_ok() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// `POST /.vestibule/oidc/revoke`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match token_request(&state, &headers, &body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (p, client) = (&req.provider, &req.client);
    let hash = sha256(&req.token);
    let now = now_ms();
    for kind in req.order {
        // Both store calls match the token *and* the client: another
        // client's token is found by neither and stays as it is.
        let done = match kind {
            TokenKind::Refresh => {
                p.store
                    .revoke_refresh_family(&hash, &client.client_id, now)
                    .await
            }
            TokenKind::Access => p.store.revoke_access_token(&hash, &client.client_id).await,
        };
        match done {
            Ok(true) => {
                tracing::info!(client_id = %client.client_id, kind = ?kind, "token revoked");
                return revoked_ok();
            }
            Ok(false) => {}
            // §2.2.1: "503 Service Unavailable" is the answer when the
            // token could not be revoked now; the client should retry.
            Err(e) => {
                tracing::error!(error = %e, "revocation: the store failed");
                let mut resp = oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the token could not be revoked now; try again",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
        }
    }
    revoked_ok()
}
