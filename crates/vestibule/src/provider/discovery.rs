//! The provider's metadata: OpenID Connect Discovery 1.0 (§3, served as
//! §4 says at `<issuer path>/.well-known/openid-configuration`) and OAuth
//! 2.0 Authorization Server Metadata (RFC 8414, at
//! `/.well-known/oauth-authorization-server<issuer path>`, §3.1).
//!
//! Both are answered only on the issuer's own authority (the host and
//! port of the configured issuer, compared with `Host`): the same paths on
//! any other host go to the apps as before, since an app may serve its own
//! metadata there. The documents are built once from the configuration;
//! no request header ever reaches them, so the `issuer` in them is the
//! configured string byte for byte (OIDC Discovery §4.3, RFC 8414 §3.3:
//! it must be identical to the issuer the client used).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use serde_json::json;

use super::{
    AUTHORIZE_PATH, DEVICE_AUTHORIZATION_PATH, END_SESSION_PATH, INTROSPECT_PATH, ProviderState,
    REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::app::JWKS_PATH;
use crate::state::AppState;

/// Metadata changes only with the configuration (a restart); an hour of
/// caching spares relying parties that fetch it on every login.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// Scopes the provider knows (a client may be limited to fewer).
pub const SCOPES_SUPPORTED: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// The two documents, with the paths they are served at.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// `<issuer path>/.well-known/openid-configuration`.
    pub openid_path: String,
    /// `/.well-known/oauth-authorization-server<issuer path>`.
    pub oauth_path: String,
    /// The OpenID Provider Metadata (JSON).
    pub openid: Bytes,
    /// The Authorization Server Metadata (JSON).
    pub oauth: Bytes,
}

impl Documents {
    /// The documents of `p`.
    pub fn new(p: &ProviderState) -> Self {
        // OIDC Discovery §4.1 and RFC 8414 §3.1 remove a terminating `/`
        // of the issuer's path before building the address.
        let path = crate::config::issuer_path(&p.issuer);
        let metadata = metadata(p);
        // RFC 8414 §2 defines the same members, and OIDC's own
        // (`userinfo_endpoint`, `subject_types_supported`…) are allowed
        // there; one body for both keeps them from drifting apart.
        let body = Bytes::from(serde_json::to_vec(&metadata).unwrap_or_default());
        Self {
            openid_path: format!("{path}/.well-known/openid-configuration"),
            oauth_path: format!("/.well-known/oauth-authorization-server{path}"),
            openid: body.clone(),
            oauth: body,
        }
    }
}

/// The provider's metadata (OIDC Discovery §3, RFC 8414 §2).
fn metadata(p: &ProviderState) -> serde_json::Value {
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    // RFC 7523 §2.2 assertions, verified by vestibule-jose: asymmetric
    // algorithms only (never `none` or HMAC).
    let assertion_algs: Vec<&str> = vestibule_jose::Algorithm::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    json!({
        "issuer": p.issuer,
        "authorization_endpoint": p.endpoint(AUTHORIZE_PATH),
        "token_endpoint": p.endpoint(TOKEN_PATH),
        "userinfo_endpoint": p.endpoint(USERINFO_PATH),
        "jwks_uri": p.endpoint(JWKS_PATH),
        "revocation_endpoint": p.endpoint(REVOKE_PATH),
        "introspection_endpoint": p.endpoint(INTROSPECT_PATH),
        "device_authorization_endpoint": p.endpoint(DEVICE_AUTHORIZATION_PATH),
        "end_session_endpoint": p.endpoint(END_SESSION_PATH),
        "scopes_supported": SCOPES_SUPPORTED,
        // RFC 9700 §2.1.1: the code flow only.
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "client_credentials",
        ],
        "subject_types_supported": ["public"],
        // RS256 first: the one every relying party accepts (immich,
        // Audiobookshelf and Home Assistant default to it, the latter
        // pinned exactly); the others per client.
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        // RFC 7662 §2.1: introspection needs an authenticated caller.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        // immich, user_oidc and hass-oidc-auth send PKCE only when S256 is
        // listed here; `plain` is never offered (RFC 9700 §2.1.1).
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
            "name", "given_name", "family_name", "preferred_username", "email",
            "email_verified", "groups",
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        // RFC 9207 §3: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        // OIDC Back-Channel Logout 1.0 §2.1: logout tokens are sent
        // (backchannel.rs), and they always carry `sid` as well as `sub`
        // (the ID token's `sid` names the same session).
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}

/// The main router's fallback when the provider is on: a metadata
/// document on the issuer's authority, anything else to the apps.
pub async fn or_proxy(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(p) = &state.provider
        && let Some(body) = document(p, &req)
    {
        let mut resp = body.into_response();
        let h = resp.headers_mut();
        // Alike web/assets.rs and web/security_headers.rs: one insert a header; these are the metadata's own.
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        // Public metadata, fetched by single-page apps too.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return resp;
    }
    crate::http::forward::proxy(State(state), req).await
}

/// The document `req` asks for, if it asks the issuer's authority for one.
fn document(p: &ProviderState, req: &Request) -> Option<Bytes> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = req.uri().path();
    let body = if path == p.discovery.openid_path {
        &p.discovery.openid
    } else if path == p.discovery.oauth_path {
        &p.discovery.oauth
    } else {
        return None;
    };
    // `Host` (or the request target's authority): the connection's own
    // authority, never `X-Forwarded-Host`.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(http::uri::Authority::as_str))?;
    vestibule_core::oidc_provider::is_issuer_authority(&p.issuer, host).then(|| body.clone())
}
