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
//!
//! The issuer is the configured string, byte for byte; every absolute URL
//! the provider writes starts with the issuer's origin, never with a `Host`
//! or forwarded header.

pub mod authorize;
pub mod clients;
pub mod consent;
pub mod discovery;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use vestibule_store::Store;

use crate::config::OidcProviderSettings;
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
fn issuer_origin(issuer: &str) -> &str {
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
        .layer(axum::middleware::from_fn(extract::layer))
        .layer(axum::middleware::from_fn(security_headers::provider_layer))
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
