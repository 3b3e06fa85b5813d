//! vestibule as an OpenID Connect provider for apps (issue 14): the
//! endpoints an app's sign-in goes through, over the rules of
//! `vestibule_core::oidc_provider` and the store's `ProviderStore`.
//!
//! - [`ProviderState`]: the checked `[oidc_provider]`, the client registry
//!   ([`clients`]), the store and the issuer; built with the gateway's
//!   state when `[oidc_provider]` is configured.
//! - [`routes`]: the endpoints under `/.vestibule/oidc/`, one `.route` line
//!   each, with the page layers (session cookie, security headers).
//! - [`discovery`]: the two metadata documents, answered on the issuer's
//!   own authority only (they live outside `/.vestibule/`, so they sit in
//!   front of the proxy, not in [`routes`]).
//! - [`authorize`] and [`consent`]: the authorization endpoint and the
//!   consent page.
//! - [`logout`]: RP-initiated logout (`end_session`).
//! - [`token`] (code exchange, refresh rotation, `client_credentials`),
//!   [`userinfo`], [`id_token`] (ID tokens and RFC 9068 access tokens)
//!   and [`client_auth`] (`client_secret_basic`, `client_secret_post`,
//!   `private_key_jwt` with [`client_keys`], `none`), with the little they
//!   share below.
//! - [`revoke`] (RFC 7009) and [`introspect`] (RFC 7662): what a client
//!   may do with a token it holds.
//! - [`grants`]: apps with access, as people see them, and the one way a
//!   person (the user, an admin, the CLI) revokes a grant.
//!
//! The issuer is the configured string, byte for byte; every absolute URL
//! the provider writes starts with the issuer's origin, never with a `Host`
//! or forwarded header.

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod consent;
pub mod device;
pub mod discovery;
pub mod gate;
pub mod grants;
pub mod id_token;
pub mod introspect;
pub mod logout;
pub mod revoke;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use vestibule_store::{Account, AccountStatus, Store, StoreError};

use crate::config::{OidcClientSettings, OidcProviderSettings};
use crate::keys::KeyRing;
use crate::state::AppState;
use crate::web::{extract, security_headers};

/// The authorization endpoint (OIDC Core §3.1.2).
pub const AUTHORIZE_PATH: &str = "/.vestibule/oidc/authorize";
/// The token endpoint (OIDC Core §3.1.3).
pub const TOKEN_PATH: &str = "/.vestibule/oidc/token";
/// The userinfo endpoint (OIDC Core §5.3).
pub const USERINFO_PATH: &str = "/.vestibule/oidc/userinfo";
/// Token revocation (RFC 7009).
pub const REVOKE_PATH: &str = "/.vestibule/oidc/revoke";
/// Token introspection (RFC 7662).
pub const INTROSPECT_PATH: &str = "/.vestibule/oidc/introspect";
/// The device authorization endpoint (RFC 8628 §3.1).
pub const DEVICE_AUTHORIZATION_PATH: &str = "/.vestibule/oidc/device_authorization";
/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
pub const END_SESSION_PATH: &str = "/.vestibule/oidc/end_session";
/// Where the consent page's form is answered.
pub const CONSENT_PATH: &str = "/.vestibule/oidc/consent";

/// The provider, when `[oidc_provider]` is configured.
pub struct ProviderState {
    /// `[oidc_provider]`, checked.
    pub settings: OidcProviderSettings,
    /// Clients of the file and of the store.
    pub clients: clients::ClientRegistry,
    /// Codes, consents, grants and tokens.
    pub store: Arc<dyn Store>,
    /// The issuer identifier, exactly as configured (OIDC Discovery §3,
    /// RFC 9207 §2: the `iss` of every response).
    pub issuer: String,
    /// `scheme://authority` of the issuer: every endpoint URL starts with
    /// it.
    pub origin: String,
    /// The discovery documents, built once.
    pub discovery: discovery::Documents,
    /// Wrong user codes typed on the device page, per account and address
    /// (RFC 8628 §5.1).
    pub device_entry: crate::devices::FailureLimiter,
    /// The access tokens routes accept (`[route.access_tokens]`), cached;
    /// [`gate::AccessTokens::follow_changes`] keeps the cache honest.
    pub gate: Arc<gate::AccessTokens>,
}

impl ProviderState {
    /// The provider of checked `settings` over `store`.
    pub fn new(settings: OidcProviderSettings, store: Arc<dyn Store>) -> Self {
        let issuer = settings.issuer.clone();
        let origin = issuer_origin(&issuer).to_owned();
        let clients = clients::ClientRegistry::new(&settings);
        let mut p = Self {
            settings,
            clients,
            store,
            issuer,
            origin,
            discovery: discovery::Documents::default(),
            device_entry: crate::devices::FailureLimiter::new(device::WRONG_CODES_PER_MINUTE),
            gate: Arc::default(),
        };
        p.discovery = discovery::Documents::new(&p);
        p
    }

    /// The absolute URL of an endpoint at `path`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

/// `scheme://authority` of an issuer URL (checked by the configuration:
/// `http(s)://` and an authority).
pub(crate) fn issuer_origin(issuer: &str) -> &str {
    let after = issuer.find("://").map_or(0, |i| i + 3);
    let end = issuer[after..]
        .find('/')
        .map_or(issuer.len(), |i| after + i);
    &issuer[..end]
}

/// The provider's endpoints under `/.vestibule/oidc/`, with the page
/// layers: the session cookie and page errors ([`extract::layer`]), then
/// the security headers (`Cache-Control: no-store`, no framing,
/// `Referrer-Policy: no-referrer` on responses that carry a code: RFC 9700
/// §4.2.4), without `form-action` (see
/// [`security_headers::PROVIDER_CSP`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            AUTHORIZE_PATH,
            get(authorize::authorize).post(authorize::authorize),
        )
        .route(CONSENT_PATH, post(consent::answer))
        .route(
            END_SESSION_PATH,
            get(logout::end_session).post(logout::end_session),
        )
        .route(logout::CONFIRM_PATH, post(logout::confirm))
        .route(
            device::DEVICE_PAGE_PATH,
            get(device::page).post(device::answer),
        )
        .layer(axum::middleware::from_fn(extract::layer))
        .layer(axum::middleware::from_fn(security_headers::provider_layer))
        // The JSON endpoints apps call: no page session, no page headers;
        // each answers `Cache-Control: no-store` itself (RFC 6749 §5.1).
        .route(TOKEN_PATH, post(token::token))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(INTROSPECT_PATH, post(introspect::introspect))
        .route(DEVICE_AUTHORIZATION_PATH, post(device::authorization))
        .route(device::DEVICE_QR_PATH, get(device::qr))
        .route(
            USERINFO_PATH,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
}

/// The client `client_id`, from the file or the store (see
/// [`clients::ClientRegistry::find`]).
pub(crate) async fn find_client(
    p: &Provider<'_>,
    client_id: &str,
) -> Result<Option<Arc<OidcClientSettings>>, StoreError> {
    p.clients.find(p.store.as_ref(), client_id).await
}

/// What the back half needs: present only when `[oidc_provider]` is on
/// and the store and keys are open.
pub(crate) struct Provider<'a> {
    pub settings: &'a OidcProviderSettings,
    pub store: &'a Arc<dyn Store>,
    pub keys: &'a KeyRing,
    pub clients: &'a clients::ClientRegistry,
}

/// The provider of `state`, if on.
pub(crate) fn provider(state: &AppState) -> Option<Provider<'_>> {
    let p = state.provider.as_deref()?;
    Some(Provider {
        settings: &p.settings,
        store: &p.store,
        keys: state.signing_keys.as_deref()?,
        clients: &p.clients,
    })
}

/// 404 when the provider is not configured: the endpoints do not exist.
pub(crate) fn not_configured() -> Response {
    crate::http::responses::plain(StatusCode::NOT_FOUND, "no OpenID Connect provider here")
}

/// Whether `account` may get tokens for `client` now: the one rule,
/// [`vestibule_core::oidc_token::account_may_use_client`], over the
/// account as the store has it (status and groups), never a session's
/// copy.
pub(crate) fn account_allowed(account: &Account, client: &OidcClientSettings) -> bool {
    vestibule_core::oidc_token::account_may_use_client(
        account.status == AccountStatus::Active,
        &account.groups,
        &client.allowed_groups,
    )
}

/// A revocation or introspection request, read: the authenticated client
/// (and how it authenticated), the `token` (§2.1 of RFC 7009 and RFC 7662:
/// REQUIRED) and the order to look it up in (`token_type_hint`).
pub(crate) struct TokenRequest<'a> {
    pub provider: Provider<'a>,
    pub client: Arc<OidcClientSettings>,
    pub method: client_auth::Method,
    pub token: String,
    pub order: [vestibule_core::oidc_token::TokenKind; 2],
}

/// A form POST from a client to one of the provider's JSON endpoints
/// (token, device authorization, revocation, introspection), read and
/// its client authenticated.
pub(crate) struct ClientRequest<'a> {
    pub provider: Provider<'a>,
    pub params: vestibule_core::oidc_token::Params,
    pub client: Arc<OidcClientSettings>,
    pub method: client_auth::Method,
}

/// Reads a client's form POST: the provider, the form (RFC 6749 §3.2:
/// `application/x-www-form-urlencoded`) and the client's authentication
/// (§2.3; a public client sends its `client_id`); or the response that
/// refuses it.
pub(crate) async fn client_request<'a>(
    state: &'a AppState,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<ClientRequest<'a>, Response> {
    let Some(p) = provider(state) else {
        return Err(not_configured());
    };
    let params = form_params(headers, body).map_err(|why| bad_form(&why))?;
    let (client, method) = client_auth::authenticate(&p, headers, &params)
        .await
        .map_err(|e| e.response())?;
    Ok(ClientRequest {
        provider: p,
        params,
        client,
        method,
    })
}

/// Reads a revocation or introspection request: the provider, the form,
/// the client's authentication (as at the token endpoint), `token` and
/// `token_type_hint`; or the response that refuses it.
pub(crate) async fn token_request<'a>(
    state: &'a AppState,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<TokenRequest<'a>, Response> {
    use vestibule_core::oidc_token::TokenKind;
    let ClientRequest {
        provider: p,
        params,
        client,
        method,
    } = client_request(state, headers, body).await?;
    let Some(token) = params.get("token") else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    Ok(TokenRequest {
        order: TokenKind::lookup_order(TokenKind::from_hint(params.get("token_type_hint"))),
        token: token.to_owned(),
        client,
        method,
        provider: p,
    })
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

/// The form of a `POST` to the token, revocation or introspection
/// endpoint: `application/x-www-form-urlencoded` only (RFC 6749 §3.2,
/// RFC 7009 §2.1, RFC 7662 §2.1), parsed strictly (each parameter once).
/// Anything else is a 400 `invalid_request`: [`bad_form`] of the reason.
pub(crate) fn form_params(
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<vestibule_core::oidc_token::Params, String> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err("the body must be application/x-www-form-urlencoded".into());
    }
    vestibule_core::oidc_token::parse_form(body).map_err(|e| format!("malformed form: {e:?}"))
}

/// The 400 `invalid_request` of a [`form_params`] refusal.
pub(crate) fn bad_form(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

/// Unix ms to unix seconds.
pub(crate) fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            issuer_origin("https://sso.example.com"),
            "https://sso.example.com"
        );
        assert_eq!(
            issuer_origin("https://sso.example.com/realm/x"),
            "https://sso.example.com"
        );
        assert_eq!(
            issuer_origin("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }
}
