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

use super::client_auth::authenticate;
use super::{form_params, oauth_error, provider, sha256};
use crate::accounts::now_ms;
use crate::state::AppState;

/// Which kind of token the client says it sends (RFC 7009 §2.1,
/// RFC 7662 §2.1: the "OAuth Token Type Hints" registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// `access_token`.
    Access,
    /// `refresh_token`.
    Refresh,
}

impl Hint {
    /// The hint of a request; absent or unknown values give `None` (a
    /// hint only orders the lookups).
    pub fn of(value: Option<&str>) -> Option<Self> {
        match value {
            Some("access_token") => Some(Self::Access),
            Some("refresh_token") => Some(Self::Refresh),
            _ => None,
        }
    }

    /// The kinds to try, in order: the hinted one first. Without a hint,
    /// refresh tokens first: they carry the most, and the refresh
    /// lookup is as cheap as the other.
    pub fn order(hint: Option<Self>) -> [Self; 2] {
        match hint {
            Some(Self::Access) => [Self::Access, Self::Refresh],
            _ => [Self::Refresh, Self::Access],
        }
    }
}

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
    let Some(p) = provider(&state) else {
        return super::not_configured();
    };
    let params = match form_params(&headers, &body) {
        Ok(p) => p,
        Err(why) => return super::bad_form(&why),
    };
    let client = match authenticate(&p, &headers, &params).await {
        Ok((client, _)) => client,
        Err(e) => return e.response(),
    };
    // §2.1: `token` is REQUIRED.
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let hash = sha256(token);
    let now = now_ms();
    for kind in Hint::order(Hint::of(params.get("token_type_hint"))) {
        // Both store calls match the token *and* the client: another
        // client's token is found by neither and stays as it is.
        let done = match kind {
            Hint::Refresh => {
                p.store
                    .revoke_refresh_family(&hash, &client.client_id, now)
                    .await
            }
            Hint::Access => p.store.revoke_access_token(&hash, &client.client_id).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_only_orders_the_lookups() {
        assert_eq!(
            Hint::order(Hint::of(Some("access_token"))),
            [Hint::Access, Hint::Refresh]
        );
        assert_eq!(
            Hint::order(Hint::of(Some("refresh_token"))),
            [Hint::Refresh, Hint::Access]
        );
        for unknown in [None, Some(""), Some("id_token"), Some("ACCESS_TOKEN")] {
            assert_eq!(Hint::of(unknown), None);
            assert_eq!(Hint::order(Hint::of(unknown)).len(), 2);
        }
    }
}
