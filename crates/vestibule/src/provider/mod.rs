//! vestibule as an OpenID Connect provider for apps (issue 14).
//!
//! This file holds the back half only: the token endpoint ([`token`]),
//! userinfo ([`userinfo`]), ID tokens ([`id_token`]) and client
//! authentication ([`client_auth`]), with the little they share. The front
//! half (the client registry, discovery, authorize, consent) is another
//! change's; [`find_client`] is the placeholder that its registry
//! replaces.

pub mod client_auth;
pub mod id_token;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use vestibule_store::{Account, AccountStatus, Store};

use crate::config::{OidcClientSettings, OidcProviderSettings};
use crate::keys::KeyRing;
use crate::state::AppState;

/// The token endpoint (RFC 6749 §3.2).
pub const TOKEN_PATH: &str = "/.vestibule/oidc/token";
/// The UserInfo endpoint (OIDC Core §5.3).
pub const USERINFO_PATH: &str = "/.vestibule/oidc/userinfo";

/// The routes of the back half: token and userinfo.
pub fn back_router() -> Router<Arc<AppState>> {
    Router::new().route(TOKEN_PATH, post(token::token)).route(
        USERINFO_PATH,
        get(userinfo::userinfo).post(userinfo::userinfo),
    )
}

/// The client `client_id` declared in the file.
///
/// Placeholder until the client registry (clients in the file and in the
/// store, `vestibule clients`) is in: this is the one lookup the back half
/// makes, so the registry replaces this function alone.
pub fn find_client<'a>(
    settings: &'a OidcProviderSettings,
    client_id: &str,
) -> Option<&'a OidcClientSettings> {
    settings.clients.iter().find(|c| c.client_id == client_id)
}

/// What the back half needs: present only when `[oidc_provider]` is on
/// and the store and keys are open.
pub(crate) struct Provider<'a> {
    pub settings: &'a OidcProviderSettings,
    pub store: &'a Arc<dyn Store>,
    pub keys: &'a KeyRing,
}

/// The provider of `state`, if on.
pub(crate) fn provider(state: &AppState) -> Option<Provider<'_>> {
    Some(Provider {
        settings: state.settings.oidc_provider.as_ref()?,
        store: state.accounts()?.store(),
        keys: state.signing_keys.as_deref()?,
    })
}

/// 404 when the provider is not configured: the endpoints do not exist.
pub(crate) fn not_configured() -> Response {
    crate::http::responses::plain(StatusCode::NOT_FOUND, "no OpenID Connect provider here")
}

/// Whether `account` may get tokens for `client` now: active (not pending,
/// not disabled), and in one of the client's `allowed_groups` when it has
/// some. Checked at every code exchange, refresh and userinfo call: a
/// refresh that does not look keeps deleted users alive (oauth2-proxy
/// #1354).
pub(crate) fn account_allowed(account: &Account, client: &OidcClientSettings) -> bool {
    account.status == AccountStatus::Active
        && (client.allowed_groups.is_empty()
            || account
                .groups
                .iter()
                .any(|g| client.allowed_groups.contains(g)))
}

/// 32 random bytes, base64url: the body of every token issued here.
pub(crate) fn random_token(prefix: &str) -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of a token or code: how the store keys them.
pub(crate) fn sha256(value: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A JSON response that no cache may keep (RFC 6749 §5.1: tokens;
/// §5.2: errors too).
pub(crate) fn no_store_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An RFC 6749 §5.2 error: `error` and a human `error_description`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store_json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// Unix ms to unix seconds.
pub(crate) fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}
