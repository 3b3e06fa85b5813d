//! The one decision pipeline: client identity, then authentication, then
//! authorization. In-path proxying calls it with the request itself;
//! forward-auth calls it with the original request described by the front.
//! There is no second code path for the decision.

use std::net::IpAddr;

use http::{HeaderMap, StatusCode};
use vestibule_core::identity::Identity;
use vestibule_core::policy::Decision;

use vestibule_core::credential::{Carrier, CarrierError, Presented, find_credential};

use crate::accounts::Resolution;
use crate::authenticate::{SourceError, authenticate};
use crate::authorize::{authorize, find_route};
use crate::client_identity::{self, ClientContext, ConnInfo};
use crate::devices::Verdict;
use crate::state::AppState;

/// The request being decided, as the app would see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `Host` (or `:authority`).
    pub host: Option<&'a str>,
    /// Raw path, without the query.
    pub path: &'a str,
    /// Path and query, for redirects back.
    pub path_and_query: &'a str,
    /// The headers carrying identity.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    /// A request as vestibule itself received it (its own pages), with
    /// `Host` from the headers.
    pub fn of(headers: &'a HeaderMap, uri: &'a http::Uri) -> Self {
        Self {
            host: headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
            path: uri.path(),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
            headers,
        }
    }
}

/// A request that may pass.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Index into `settings.routes`.
    pub route: usize,
    /// The identity to inject (`None` for anonymous or public).
    pub identity: Option<Identity>,
    /// Trust facts.
    pub ctx: ClientContext,
    /// Where the request carried a device credential, which must not reach
    /// the app.
    pub credential: Option<Carrier>,
}

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
        /// Index into `settings.routes`.
        route: usize,
        /// Logged.
        detail: String,
    },
    /// Identity needed: 401, or 302 to the login URL for browsers.
    Unauthenticated {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// Identity not allowed: 403.
    Forbidden {
        /// Index into `settings.routes`.
        route: usize,
        /// Who was refused.
        username: String,
    },
    /// The account exists but waits for approval: 403 and an explanation.
    AccountPending {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// The account is disabled: 403.
    AccountDisabled {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// No account, and provisioning creates none: 403.
    NoAccount {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// A device credential that is unknown, revoked, expired or malformed:
    /// 401 with a challenge.
    BadCredential {
        /// Index into `settings.routes`.
        route: usize,
        /// Shown to the client.
        public: &'static str,
        /// Logged.
        detail: String,
    },
    /// A valid device credential that does not cover this route: 403.
    CredentialNotForRoute {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// The credential's owner has not been seen through SSO recently: 403.
    SsoStale {
        /// Index into `settings.routes`.
        route: usize,
    },
    /// Too many failed credential attempts: 429.
    TooManyFailures {
        /// Index into `settings.routes`.
        route: usize,
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// The database is needed and unreachable: 503 (fail closed).
    Unavailable {
        /// Index into `settings.routes`.
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
            Self::Unauthenticated { .. }
            | Self::BadCredential { .. }
            | Self::BadAssertion { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. }
            | Self::AccountPending { .. }
            | Self::AccountDisabled { .. }
            | Self::NoAccount { .. }
            | Self::CredentialNotForRoute { .. }
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
            Self::AccountDisabled { .. } => "account_disabled",
            Self::NoAccount { .. } => "no_account",
            Self::BadCredential { .. } => "bad_credential",
            Self::CredentialNotForRoute { .. } => "credential_not_for_route",
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
            | Self::AccountDisabled { route }
            | Self::NoAccount { route }
            | Self::BadCredential { route, .. }
            | Self::CredentialNotForRoute { route }
            | Self::SsoStale { route }
            | Self::TooManyFailures { route, .. }
            | Self::Unavailable { route, .. } => Some(*route),
            _ => None,
        }
    }
}

/// Decides whether a request may pass, and as whom.
pub async fn decide(
    state: &AppState,
    conn: ConnInfo,
    req: RequestView<'_>,
) -> Result<Pass, (Refusal, ClientContext)> {
    let ctx = client_identity::resolve(&state.settings, conn, req.headers);
    let refuse = |r: Refusal| (r, ctx);

    let route = match find_route(state, req.host, req.path) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(refuse(Refusal::NoRoute)),
        Err(e) => {
            return Err(refuse(Refusal::BadRequest {
                public: "The request path is malformed or ambiguous.".into(),
                detail: e.to_string(),
            }));
        }
    };
    // A protocol switch other than WebSocket (h2c above all) would turn the
    // connection into a tunnel no later request of which is decided here.
    // 400, as for any framing vestibule cannot vouch for; in forward-auth
    // mode the front passes it on (nginx turns it into a 500).
    if let Err(e) = vestibule_core::upgrade::check_upgrade(req.headers) {
        return Err(refuse(Refusal::BadRequest {
            public: "This protocol upgrade is not allowed; only WebSocket is.".into(),
            detail: e.to_string(),
        }));
    }

    let identity = match authenticate(state, &ctx, req.headers).await {
        Ok(id) => id,
        Err(SourceError::Headers(e)) => {
            return Err(refuse(Refusal::BadRequest {
                public: format!("The identity sent by the SSO proxy was refused: {e}."),
                detail: e.to_string(),
            }));
        }
        Err(SourceError::Assertion(e)) => {
            return Err(refuse(Refusal::BadAssertion {
                route,
                detail: e.to_string(),
            }));
        }
        Err(SourceError::KeysUnavailable) => {
            return Err(refuse(Refusal::Unavailable {
                route,
                detail: "assertion signing keys not loaded".into(),
            }));
        }
    };

    // Public routes forward nobody, so they need no account either.
    let public =
        state.settings.routes[route].policy.auth == vestibule_core::policy::AuthMode::Public;
    let identity = match (identity, &state.accounts, &state.settings.identity_source) {
        (Some(id), Some(accounts), Some(source)) if !public => {
            match accounts
                .resolve(
                    id,
                    &source.provisioning,
                    source.key_by_username,
                    ctx.client_ip.map(|ip| ip.to_string()),
                )
                .await
            {
                Ok(Resolution::Active { identity, .. }) => Some(*identity),
                Ok(Resolution::Pending) => return Err(refuse(Refusal::AccountPending { route })),
                Ok(Resolution::Disabled) => return Err(refuse(Refusal::AccountDisabled { route })),
                Ok(Resolution::NoAccount) => return Err(refuse(Refusal::NoAccount { route })),
                Err(e) => {
                    return Err(refuse(Refusal::Unavailable {
                        route,
                        detail: e.to_string(),
                    }));
                }
            }
        }
        (id, _, _) => id,
    };

    // A device credential, on routes that accept one. The SSO front's
    // identity wins when both are present; the credential is stripped
    // either way, so the secret never reaches the app.
    let (identity, credential) = if public {
        (identity, None)
    } else {
        match presented_credential(state, route, &req) {
            Ok(None) => (identity, None),
            // A malformed value in a carrier that is ours is still ours to
            // strip when the front's identity carries the request.
            Err((carrier, _)) if identity.is_some() && carrier.is_some() => (identity, carrier),
            Err((_, r)) => return Err(refuse(r)),
            Ok(Some(p)) if identity.is_some() => (identity, Some(p.carrier)),
            Ok(Some(p)) => match verify_credential(state, route, &ctx, &p).await {
                Ok(id) => (Some(id), Some(p.carrier)),
                Err(r) => return Err(refuse(r)),
            },
        }
    };

    match authorize(state, route, identity.as_ref()) {
        Decision::Allow { forward_identity } => Ok(Pass {
            route,
            identity: if forward_identity { identity } else { None },
            ctx,
            credential,
        }),
        Decision::Unauthenticated => Err(refuse(Refusal::Unauthenticated { route })),
        Decision::Forbidden => Err(refuse(Refusal::Forbidden {
            route,
            username: identity.map(|i| i.username).unwrap_or_default(),
        })),
    }
}

/// The device credential a request carries, on routes that accept one.
/// An error names the carrier when it is known (a malformed value).
fn presented_credential(
    state: &AppState,
    route: usize,
    req: &RequestView<'_>,
) -> Result<Option<Presented>, (Option<Carrier>, Refusal)> {
    let rs = &state.settings.routes[route];
    if !rs.carriers.any() {
        return Ok(None);
    }
    let query = vestibule_core::path::target_query(req.path_and_query);
    match find_credential(req.headers, query, &rs.carriers) {
        Ok(p) => Ok(p),
        Err(CarrierError::Ambiguous) => Err((
            None,
            Refusal::BadRequest {
                public: "The request carries more than one device credential.".into(),
                detail: "ambiguous device credential".into(),
            },
        )),
        Err(e @ CarrierError::Malformed { carrier, .. }) => Err((
            Some(carrier),
            Refusal::BadCredential {
                route,
                public: "The device credential is malformed.",
                detail: e.to_string(),
            },
        )),
    }
}

/// The owner a device credential stands for.
async fn verify_credential(
    state: &AppState,
    route: usize,
    ctx: &ClientContext,
    presented: &Presented,
) -> Result<Identity, Refusal> {
    let rs = &state.settings.routes[route];
    let Some(devices) = &state.devices else {
        return Err(Refusal::BadCredential {
            route,
            public: "Device credentials are not enabled on this gateway.",
            detail: "device credential sent, but accounts are off".into(),
        });
    };
    let verdict = devices
        .verify(presented, &rs.name, rs.max_sso_age, ctx.client_ip)
        .await
        .map_err(|e| Refusal::Unavailable {
            route,
            detail: e.to_string(),
        })?;
    let counters = &state.device_auth;
    match &verdict {
        Verdict::Allowed { .. } => counters.authenticated.inc(),
        Verdict::Unknown | Verdict::Expired | Verdict::WrongUser => counters.rejected.inc(),
        Verdict::RateLimited { .. } => counters.rate_limited.inc(),
        _ => counters.refused.inc(),
    };
    let carrier = presented.carrier;
    let bad = |public: &'static str, detail: &str| Refusal::BadCredential {
        route,
        public,
        detail: format!("{detail} (sent as {})", carrier.as_str()),
    };
    match verdict {
        Verdict::Allowed { identity } => Ok(*identity),
        Verdict::Unknown => Err(bad(
            "This device credential is not recognised: it was revoked, or mistyped.",
            "unknown device credential",
        )),
        Verdict::Expired => Err(bad(
            "This device credential has expired. Create a new one on your devices page.",
            "expired device credential",
        )),
        Verdict::WrongUser => Err(bad(
            "The user name does not match this app password.",
            "Basic user name does not match the credential's owner",
        )),
        Verdict::WrongRoute => Err(Refusal::CredentialNotForRoute { route }),
        Verdict::Pending => Err(Refusal::AccountPending { route }),
        Verdict::Disabled => Err(Refusal::AccountDisabled { route }),
        Verdict::SsoStale => Err(Refusal::SsoStale { route }),
        Verdict::RateLimited { retry_after } => Err(Refusal::TooManyFailures {
            route,
            retry_after: retry_after.as_secs_f64().ceil() as u64,
        }),
    }
}

/// The client address to log, as text.
pub fn ip_for_log(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
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
        Refusal::AccountDisabled { .. } => "account disabled".into(),
        Refusal::NoAccount { .. } => "no account, and provisioning creates none".into(),
        Refusal::BadCredential { detail, .. } => detail.clone(),
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

/// Characters kept as-is when a URL is put inside a query parameter: only
/// RFC 3986 §2.3 unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL the client asked for, as best vestibule can tell.
pub fn original_url(ctx: &ClientContext, req: &RequestView<'_>) -> String {
    let forwarded = |name: &str| {
        ctx.trusted_for_forwarding
            .then(|| req.headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let scheme = forwarded("x-forwarded-proto")
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| if ctx.tls { "https" } else { "http" }.to_owned());
    let host = forwarded("x-forwarded-host")
        .or_else(|| req.host.map(str::to_owned))
        .unwrap_or_default();
    format!("{scheme}://{host}{}", req.path_and_query)
}

/// Whether the client is a browser asking for a page.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// The login redirect for a route, if one is configured.
pub fn login_location(
    state: &AppState,
    route: usize,
    ctx: &ClientContext,
    req: &RequestView<'_>,
) -> Option<String> {
    let template = state.settings.routes[route].login_url.as_ref()?;
    Some(fill_login_url(template, ctx, req))
}

/// A login URL template with `{url}` replaced by the percent-encoded
/// original URL.
pub fn fill_login_url(template: &str, ctx: &ClientContext, req: &RequestView<'_>) -> String {
    fill_url_template(template, &original_url(ctx, req))
}

/// A `login_url`/`logout_url` template with `{url}` replaced by `url`,
/// percent-encoded for a query value.
pub fn fill_url_template(template: &str, url: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(url, QUERY_VALUE).to_string();
    template.replace("{url}", &encoded)
}

/// Adds the `WWW-Authenticate` challenge a 401 must carry (RFC 9110
/// §11.6.1) on routes that take device credentials. WebDAV and Subsonic
/// clients send Basic credentials only after a Basic challenge.
fn with_challenge(
    state: &AppState,
    route: usize,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    let c = &state.settings.routes[route].carriers;
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

/// The response for a refusal.
pub fn refusal_response(
    state: &AppState,
    refusal: &Refusal,
    ctx: &ClientContext,
    req: &RequestView<'_>,
) -> axum::response::Response {
    use crate::responses::{plain, redirect};
    match refusal {
        Refusal::BadRequest { public, .. } => plain(StatusCode::BAD_REQUEST, public),
        Refusal::NoRoute => plain(
            StatusCode::NOT_FOUND,
            "No app is configured at this address.",
        ),
        Refusal::Unauthenticated { route } => {
            match login_location(state, *route, ctx, req).filter(|_| wants_html(req.headers)) {
                Some(loc) => redirect(&loc),
                None => with_challenge(
                    state,
                    *route,
                    plain(
                        StatusCode::UNAUTHORIZED,
                        "Sign in through your SSO portal to use this app.",
                    ),
                ),
            }
        }
        Refusal::BadCredential { route, public, .. } => {
            with_challenge(state, *route, plain(StatusCode::UNAUTHORIZED, public))
        }
        Refusal::BadAssertion { .. } => crate::responses::page(
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
        Refusal::SsoStale { .. } => crate::responses::page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Sign in again",
            "This device has not been confirmed by a browser sign-in for too long.",
            "Sign in once in a browser through your SSO portal; this device will work again right away.",
        ),
        Refusal::TooManyFailures { retry_after, .. } => {
            let mut r = plain(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts. Wait a moment, then check the credential.",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(*retry_after),
            );
            r
        }
        Refusal::Forbidden { .. } => plain(
            StatusCode::FORBIDDEN,
            "Your account is not allowed to use this app.",
        ),
        Refusal::AccountPending { .. } => crate::responses::page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Waiting for approval",
            "Your account has been created and is waiting for an administrator's approval.",
            "You will be able to use this app once it is approved. There is nothing else to do now.",
        ),
        Refusal::AccountDisabled { .. } => crate::responses::page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "Account disabled",
            "Your account is disabled.",
            "If you think this is a mistake, contact an administrator.",
        ),
        Refusal::NoAccount { .. } => crate::responses::page(
            StatusCode::FORBIDDEN,
            wants_html(req.headers),
            "No account",
            "You signed in, but there is no account for you here.",
            "Ask an administrator to create or link one.",
        ),
        Refusal::Unavailable { .. } => {
            let mut r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "vestibule cannot check this request right now; try again in a moment.",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
            r
        }
    }
}
