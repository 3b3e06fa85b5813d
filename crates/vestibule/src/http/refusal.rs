//! A refused request: what it is ([`Refusal`]), what the client is told
//! ([`refusal_response`]) and what the log and metrics say
//! ([`log_refusal`], the one place a refusal is logged, for in-path and
//! forward-auth alike).

use std::net::IpAddr;
use std::time::Instant;

use http::StatusCode;

use crate::http::responses::{page, plain, redirect, wants_html};
use crate::identity::client_identity::ClientContext;
use crate::state::{AppState, Routes};
use crate::urls::{RequestView, fill_login_url};

/// A request that may not pass, with what to tell the client and the log.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Malformed or ambiguous input: 400.
    BadRequest {
        /// Shown to the client.
        public: String,
        /// Logged.
        detail: String,
    },
    /// No route matches: 404.
    NoRoute,
    /// A signed identity assertion that does not verify (bad signature,
    /// wrong issuer or audience, expired): 401, never a login redirect,
    /// which could loop between vestibule and the front.
    BadAssertion {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Logged.
        detail: String,
    },
    /// Identity needed: 401, or 302 to the login URL for browsers.
    Unauthenticated {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// Identity not allowed: 403.
    Forbidden {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Who was refused.
        username: String,
    },
    /// The account exists but waits for approval: 403 and an explanation.
    AccountPending {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// The account's directory entry needs an admin (its uid or mail
    /// belongs to another entry): 403.
    DirectoryConflict {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Why (logged, not shown).
        detail: String,
    },
    /// The account is disabled: 403.
    AccountDisabled {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// No account, and provisioning creates none: 403.
    NoAccount {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// A device credential that is unknown, revoked, expired or malformed:
    /// 401 with a challenge.
    BadCredential {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Shown to the client.
        public: &'static str,
        /// Logged.
        detail: String,
    },
    /// One of vestibule's access tokens that does not pass on this route
    /// (RFC 6750 §3.1): `invalid_token` 401 (unknown, revoked, expired,
    /// another client's, its account disabled), or `insufficient_scope`
    /// 403 with the scopes the route requires.
    BadAccessToken {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// `Some(scopes)`: the route's required scopes are missing (403).
        insufficient_scope: Option<String>,
        /// Logged (and sent as `error_description`: it never holds the
        /// token).
        detail: &'static str,
    },
    /// A client certificate that names no live certificate device
    /// (unknown, revoked, expired): a readable 403, not a TLS alert.
    CertificateRefused {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Shown to the client.
        public: &'static str,
        /// Logged.
        detail: String,
    },
    /// A valid device credential that does not cover this route: 403.
    CredentialNotForRoute {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// The credential's owner has not been seen through SSO recently: 403.
    SsoStale {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
    },
    /// Too many failed credential attempts: 429.
    TooManyFailures {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// The database is needed and unreachable: 503 (fail closed).
    Unavailable {
        /// Index into the routes snapshot the decision was made on.
        route: usize,
        /// Logged.
        detail: String,
    },
}

impl Refusal {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadAccessToken {
                insufficient_scope: Some(_),
                ..
            } => StatusCode::FORBIDDEN,
            Self::Unauthenticated { .. }
            | Self::BadAccessToken { .. }
            | Self::BadCredential { .. }
            | Self::BadAssertion { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. }
            | Self::AccountPending { .. }
            | Self::DirectoryConflict { .. }
            | Self::AccountDisabled { .. }
            | Self::NoAccount { .. }
            | Self::CredentialNotForRoute { .. }
            | Self::CertificateRefused { .. }
            | Self::SsoStale { .. } => StatusCode::FORBIDDEN,
            Self::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The metric outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::NoRoute => "no_route",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::BadAssertion { .. } => "bad_assertion",
            Self::Forbidden { .. } => "forbidden",
            Self::AccountPending { .. } => "account_pending",
            Self::DirectoryConflict { .. } => "directory_conflict",
            Self::AccountDisabled { .. } => "account_disabled",
            Self::NoAccount { .. } => "no_account",
            Self::BadCredential { .. } => "bad_credential",
            Self::BadAccessToken { .. } => "bad_access_token",
            Self::CredentialNotForRoute { .. } => "credential_not_for_route",
            Self::CertificateRefused { .. } => "certificate_refused",
            Self::SsoStale { .. } => "sso_stale",
            Self::TooManyFailures { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// The logged detail of refusals worth an operator's attention (a
    /// trusted front sending malformed identity or an assertion that does
    /// not verify, a path crafted to confuse routing); `None` for routine
    /// ones.
    pub fn needs_attention(&self) -> Option<&str> {
        match self {
            Self::BadRequest { detail, .. } | Self::BadAssertion { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The route, when one was matched.
    pub fn route(&self) -> Option<usize> {
        match self {
            Self::Unauthenticated { route }
            | Self::BadAssertion { route, .. }
            | Self::Forbidden { route, .. }
            | Self::AccountPending { route }
            | Self::DirectoryConflict { route, .. }
            | Self::AccountDisabled { route }
            | Self::NoAccount { route }
            | Self::BadCredential { route, .. }
            | Self::BadAccessToken { route, .. }
            | Self::CertificateRefused { route, .. }
            | Self::CredentialNotForRoute { route }
            | Self::SsoStale { route }
            | Self::TooManyFailures { route, .. }
            | Self::Unavailable { route, .. } => Some(*route),
            _ => None,
        }
    }
}

/// The client address to log, as text.
pub fn ip_for_log(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

/// Which endpoint refused, for the access log.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// In-path: the request itself was refused.
    Proxy {
        /// The request's method.
        method: &'a http::Method,
        /// When the request arrived.
        started: Instant,
    },
    /// Forward-auth: the request a front described was refused.
    Verify,
}

/// Counts and logs a refusal: the metric, a warning for the refusals an
/// operator should look at, and the access-log line. The only place a
/// [`Refusal`] is logged.
pub fn log_refusal(
    state: &AppState,
    routes: &Routes,
    refusal: &Refusal,
    ctx: &ClientContext,
    path: &str,
    via: Via<'_>,
) {
    let route_name = refusal
        .route()
        .map_or("none", |r| routes.list[r].name.as_str());
    state.metrics.request(route_name, refusal.outcome());
    if let Some(detail) = refusal.needs_attention() {
        // A trusted front sending bad identity, or a path crafted to
        // confuse routing: worth an operator's attention.
        tracing::warn!(
            peer = %ctx.peer,
            client_ip = %ip_for_log(ctx.client_ip),
            path = %path,
            "request refused: {detail}"
        );
    }
    match via {
        Via::Proxy { method, started } => tracing::info!(
            target: "vestibule::access",
            route = %route_name,
            method = %method,
            path = %path,
            status = refusal.status().as_u16(),
            refused = %refusal_detail(refusal),
            client_ip = %ip_for_log(ctx.client_ip),
            ms = started.elapsed().as_millis() as u64,
        ),
        Via::Verify => tracing::info!(
            target: "vestibule::access",
            route = %route_name,
            verify = true,
            path = %path,
            status = refusal.status().as_u16(),
            refused = %refusal_detail(refusal),
            client_ip = %ip_for_log(ctx.client_ip),
        ),
    }
}

/// Counts and logs a forward-auth request refused before or beside the
/// decision: a caller that is not a trusted proxy, a malformed description
/// of the original request, a credential the front would forward. These
/// are always worth a warning: a front is misconfigured or probed.
pub fn log_verify_refusal(
    state: &AppState,
    peer: &vestibule_core::net::Peer,
    path: &str,
    outcome: &'static str,
    detail: &str,
) {
    state.metrics.request("verify", outcome);
    tracing::warn!(peer = %peer, path = %path, "forward-auth request refused: {detail}");
}

/// What the log says about a refusal (never sent to the client).
pub fn refusal_detail(r: &Refusal) -> String {
    match r {
        Refusal::BadRequest { detail, .. } => detail.clone(),
        Refusal::NoRoute => "no route matches".into(),
        Refusal::Unauthenticated { .. } => "no identity".into(),
        Refusal::BadAssertion { detail, .. } => format!("identity assertion refused: {detail}"),
        Refusal::Forbidden { username, .. } => {
            format!("{username} is not allowed by the route policy")
        }
        Refusal::AccountPending { .. } => "account pending approval".into(),
        Refusal::DirectoryConflict { detail, .. } => detail.clone(),
        Refusal::AccountDisabled { .. } => "account disabled".into(),
        Refusal::NoAccount { .. } => "no account, and provisioning creates none".into(),
        Refusal::BadCredential { detail, .. } | Refusal::CertificateRefused { detail, .. } => {
            detail.clone()
        }
        Refusal::BadAccessToken { detail, .. } => format!("access token refused: {detail}"),
        Refusal::CredentialNotForRoute { .. } => {
            "device credential not valid for this route".into()
        }
        Refusal::SsoStale { .. } => "device owner not seen through SSO within max_sso_age".into(),
        Refusal::TooManyFailures { retry_after, .. } => {
            format!("too many failed credential attempts; retry after {retry_after} s")
        }
        Refusal::Unavailable { detail, .. } => format!("unavailable: {detail}"),
    }
}

/// The login redirect for a route, if one is configured.
pub fn login_location(
    routes: &Routes,
    route: usize,
    ctx: &ClientContext,
    req: &RequestView<'_>,
) -> Option<String> {
    let template = routes.list[route].login_url.as_ref()?;
    Some(fill_login_url(template, ctx, req))
}

/// Adds the `WWW-Authenticate` challenge a 401 must carry (RFC 9110
/// §11.6.1) on routes that take device credentials. WebDAV and Subsonic
/// clients send Basic credentials only after a Basic challenge.
fn with_challenge(
    routes: &Routes,
    route: usize,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    let c = &routes.list[route].carriers;
    let h = resp.headers_mut();
    if c.basic {
        h.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"vestibule\", charset=\"UTF-8\""),
        );
    }
    if c.bearer {
        h.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"vestibule\""),
        );
    }
    resp
}

/// RFC 6750 §3: the `Bearer` challenge with `error` and
/// `error_description` (§3.1), and `scope` for `insufficient_scope`; a
/// JSON body with the same two members.
fn access_token_challenge(
    insufficient_scope: Option<&str>,
    detail: &str,
) -> axum::response::Response {
    let (status, error) = match insufficient_scope {
        Some(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
        None => (StatusCode::UNAUTHORIZED, "invalid_token"),
    };
    // The details are fixed ASCII without quotes or backslashes; scopes
    // are the configuration's scope tokens (RFC 6749 §3.3 excludes `"`
    // and `\`).
    let mut challenge =
        format!("Bearer realm=\"vestibule\", error=\"{error}\", error_description=\"{detail}\"");
    if let Some(scope) = insufficient_scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    let body = serde_json::json!({ "error": error, "error_description": detail }).to_string();
    let mut resp = axum::response::IntoResponse::into_response((status, body));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&challenge) {
        h.insert(http::header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The response for a refusal.
pub fn refusal_response(
    routes: &Routes,
    refusal: &Refusal,
    ctx: &ClientContext,
    req: &RequestView<'_>,
) -> axum::response::Response {
    match refusal {
        Refusal::BadRequest { public, .. } => page(
            StatusCode::BAD_REQUEST,
            wants_html(req.headers),
            "Request refused",
            public,
            "",
        ),
        Refusal::NoRoute => page(
            StatusCode::NOT_FOUND,
            wants_html(req.headers),
            "Nothing here",
            "No app is configured at this address.",
            "Check the address, or start from the start page.",
        ),
        Refusal::Unauthenticated { route } => {
            match login_location(routes, *route, ctx, req).filter(|_| wants_html(req.headers)) {
                Some(loc) => redirect(&loc),
                None => with_challenge(
                    routes,
                    *route,
                    page(
                        StatusCode::UNAUTHORIZED,
                        wants_html(req.headers),
                        "Sign in",
                        "Sign in through your SSO portal to use this app.",
                        "",
                    ),
                ),
            }
        }
        Refusal::BadCredential { route, public, .. } => {
            with_challenge(routes, *route, plain(StatusCode::UNAUTHORIZED, public))
        }
        Refusal::BadAccessToken {
            insufficient_scope,
            detail,
            ..
        } => access_token_challenge(insufficient_scope.as_deref(), detail),
        Refusal::CertificateRefused { public, .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Certificate not accepted",
            public,
            "Your devices page lists the certificates that are valid.",
        ),
        Refusal::BadAssertion { .. } => page(
            StatusCode::UNAUTHORIZED,
            wants_html(req.headers),
            "Sign-in not accepted",
            "The sign-in your SSO portal sent with this request could not be verified (it may have expired).",
            "Reload the page; if that does not help, sign out of the SSO portal and in again.",
        ),
        Refusal::CredentialNotForRoute { .. } => plain(
            StatusCode::FORBIDDEN,
            "This device credential is not allowed on this app. Create one that includes it.",
        ),
        Refusal::SsoStale { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Sign in again",
            "This device has not been confirmed by a browser sign-in for too long.",
            "Sign in once in a browser through your SSO portal; this device will work again right away.",
        ),
        // Alike the `Unavailable` arm: a page plus `Retry-After`, each with
        // its own status, text and delay.
        Refusal::TooManyFailures { retry_after, .. } => {
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                wants_html(req.headers),
                "Too many attempts",
                "Too many failed attempts. Wait a moment, then check the credential.",
                "",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(*retry_after),
            );
            r
        }
        Refusal::Forbidden { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Not allowed",
            "Your account is not allowed to use this app.",
            "If you need it, ask an administrator to give your account access.",
        ),
        Refusal::AccountPending { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Waiting for approval",
            "Your account has been created and is waiting for an administrator's approval.",
            "You will be able to use this app once it is approved. There is nothing else to do now.",
        ),
        Refusal::DirectoryConflict { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Waiting for an administrator",
            "Your account could not be set up in the directory: your user name or email address is already used by another account.",
            "An administrator has been told; you will be able to use this app once they have sorted it out.",
        ),
        Refusal::AccountDisabled { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Account disabled",
            "Your account is disabled.",
            "If you think this is a mistake, contact an administrator.",
        ),
        Refusal::NoAccount { .. } => page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "No account",
            "You signed in, but there is no account for you here.",
            "Ask an administrator to create or link one.",
        ),
        Refusal::Unavailable { .. } => {
            let mut r = page(
                StatusCode::SERVICE_UNAVAILABLE,
                wants_html(req.headers),
                "Try again shortly",
                "vestibule cannot check this request right now; try again in a moment.",
                "",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
            r
        }
    }
}
