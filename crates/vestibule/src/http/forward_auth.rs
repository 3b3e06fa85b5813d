//! Forward-auth: `GET|HEAD /.vestibule/verify`, for nginx `auth_request`,
//! Caddy `forward_auth`, Traefik `ForwardAuth` and HAProxy.
//!
//! The proxy describes the original request; vestibule runs the **same
//! pipeline** as for in-path requests on that description and answers:
//!
//! - **200** with every header of the route's profile, empty when there is
//!   no identity, so that Caddy `copy_headers` and nginx `auth_request_set`
//!   never leave a client's value in place (Caddy #6610, GHSA-7r4p-vjf4-gxv4),
//!   and `X-Vestibule-Authorization`: the `Authorization` to forward, empty
//!   when it held a device credential;
//! - **401** without identity, with the login URL in `X-Vestibule-Login-Url`
//!   for nginx's `error_page 401`; or, with `?redirect=1` (Caddy, Traefik),
//!   a **302** to the login URL for browsers;
//! - **403** when the route's policy refuses the identity, or the caller is
//!   not a trusted proxy.
//!
//! The original request's details (`X-Original-*`, `X-Forwarded-*`) are
//! read only from trusted proxies, and the route is matched on the original
//! host and path, never on this endpoint's own path (oauth2-proxy
//! GHSA-7x63-xv5r-3p2x). The path is cut at `?`; a `#` left in it is refused
//! with a 400 (nginx forwards `/public#/../app` raw, and a file server reads
//! `/app`), and every reading of it must agree on the route
//! (GHSA-7rh7-c77v-6434, GHSA-pxq7-h93f-9jrg), its case-folded readings
//! taking the strictest route. An `Upgrade` other than WebSocket, or
//! `HTTP2-Settings`, among the headers the front passes on is refused with a
//! 400: a 200 would let the front open an h2c tunnel to the app.
//!
//! A described request that carries the assertion header (`[assertions]
//! header`, any spelling: any case, `_` for `-`) is refused with a 400 and
//! logged and audited as a spoof attempt. In forward-auth the front, not
//! vestibule, builds the request to the app, so vestibule cannot strip a
//! client's copy; nginx `auth_request`, Caddy `forward_auth` and the HAProxy
//! script all pass the client's headers to this endpoint, so refusing here
//! keeps any spelling the front would let through from reaching the app.
//! The documented front configs also overwrite the exact spelling with
//! vestibule's answer.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use vestibule_core::path::target_path;

use crate::http::decide::{Refused, decide};
use crate::http::refusal::{
    Refusal, Via, ip_for_log, log_refusal, log_verify_refusal, login_location, refusal_response,
};
use crate::http::responses::{plain, redirect, wants_html};
use crate::identity::client_identity::ConnInfo;
use crate::state::AppState;
use crate::urls::RequestView;

/// Header carrying the login URL on a 401, for nginx `error_page`.
pub const LOGIN_URL_HEADER: &str = "x-vestibule-login-url";

/// Header carrying the `Authorization` the proxy should send the app: the
/// client's own, or empty when it held a device credential vestibule
/// consumed (the proxy, not vestibule, forwards the request, so only it can
/// keep the secret from the app).
pub const AUTHORIZATION_HEADER: &str = "x-vestibule-authorization";

/// Query of the verify endpoint.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    /// `1` or `true`: answer browsers with a 302 to the login URL instead of
    /// a 401 (Caddy and Traefik pass 3xx through; nginx does not).
    #[serde(default)]
    redirect: Option<String>,
}

/// Exactly one value of `name`, or an error naming it.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("`{name}` was sent more than once"));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| format!("`{name}` is not visible ASCII")),
    }
}

/// The original request, as the proxy described it.
struct Original {
    host: Option<String>,
    uri: String,
}

fn original(headers: &HeaderMap) -> Result<Original, String> {
    let uri = match (
        single(headers, "x-original-uri")?,
        single(headers, "x-forwarded-uri")?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err("`X-Original-URI` and `X-Forwarded-Uri` disagree".into());
        }
        (Some(u), _) | (None, Some(u)) => u.to_owned(),
        (None, None) => {
            return Err("the proxy sent neither `X-Original-URI` nor `X-Forwarded-Uri`".into());
        }
    };
    let host = match single(headers, "x-forwarded-host")? {
        Some(h) => Some(h.to_owned()),
        None => single(headers, "host")?.map(str::to_owned),
    };
    Ok(Original { host, uri })
}

/// The spelling of the assertion header (`[assertions] header`) that the
/// described request carries, if any: every spelling counts, as CGI, PHP and
/// WSGI apps read `X_Vestibule_Assertion` as `X-Vestibule-Assertion`. `None`
/// when no route sends assertions, or when the identity source is a signed
/// assertion read from that same header (then it is the SSO front's, and the
/// pipeline verifies it).
fn client_assertion<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let ours = state.assertions.as_ref()?.header().as_str();
    if let Some(crate::state::IdentityReader::Jwt { keys, .. }) = &state.identity_reader
        && vestibule_core::headers::same_name(keys.settings().header.as_str(), ours)
    {
        return None;
    }
    headers
        .keys()
        .map(http::HeaderName::as_str)
        .find(|n| vestibule_core::headers::same_name(n, ours))
}

/// Logs, counts and audits (rate-limited, like every spoof attempt) a
/// described request that carried its own assertion header.
fn refuse_client_assertion(
    state: &AppState,
    conn: ConnInfo,
    headers: &HeaderMap,
    uri: &str,
    name: &str,
) {
    let ctx = crate::identity::client_identity::resolve(&state.settings, conn, headers);
    log_verify_refusal(
        state,
        &conn.peer,
        target_path(uri),
        "bad_request",
        &format!("the request carries its own `{name}`, the assertion header only vestibule sends"),
    );
    state.metrics.spoofed_headers_stripped.inc();
    if let Some(suppressed) = state.spoof_log.check() {
        tracing::warn!(
            peer = %conn.peer,
            client_ip = %ip_for_log(ctx.client_ip),
            headers = %name,
            suppressed_since_last = suppressed,
            "a forward-auth request carried a client's own assertion header; refused"
        );
        crate::identity::authenticate::audit_spoof_attempt(
            state,
            &conn.peer,
            ctx.client_ip,
            name,
            "refused",
            suppressed,
        );
    }
}

/// The verify handler.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Query(q): Query<VerifyQuery>,
    req: Request,
) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo::UNKNOWN);
    let headers = req.headers();
    // Only a trusted proxy may describe someone else's request.
    if !conn.peer.is_trusted(&state.settings.client_ip_hops) {
        log_verify_refusal(
            &state,
            &conn.peer,
            "-",
            "forbidden",
            "the caller is not a trusted proxy",
        );
        return plain(
            StatusCode::FORBIDDEN,
            "Forward-auth requests are answered only for trusted proxies.",
        );
    }
    let orig = match original(headers) {
        Ok(o) => o,
        Err(detail) => {
            log_verify_refusal(&state, &conn.peer, "-", "bad_request", &detail);
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("Bad forward-auth request: {detail}."),
            );
        }
    };
    if let Some(name) = client_assertion(&state, headers) {
        refuse_client_assertion(&state, conn, headers, &orig.uri, name);
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad forward-auth request: it carries its own identity assertion header; only vestibule sends that header.",
        );
    }
    let view = RequestView {
        host: orig.host.as_deref(),
        path: target_path(&orig.uri),
        path_and_query: &orig.uri,
        headers,
    };
    match decide(&state, conn, view).await {
        // The proxy forwards the original URI, so a credential in the query
        // would reach the app (and its logs); only in-path mode can remove it.
        Ok(pass) if pass.credential == Some(vestibule_core::credential::Carrier::Query) => {
            log_verify_refusal(
                &state,
                &conn.peer,
                view.path,
                "bad_request",
                "a device credential in the query string would reach the app",
            );
            plain(
                StatusCode::BAD_REQUEST,
                "A device credential in the query string is only accepted when vestibule forwards the request itself; send it in a header instead.",
            )
        }
        Ok(pass) => {
            let routes = pass.routes.clone();
            let route = &routes.list[pass.route];
            routes.metrics[pass.route].verified.inc();
            tracing::info!(
                target: "vestibule::access",
                route = %route.name,
                verify = true,
                path = %view.path,
                status = 200,
                user = pass.identity.as_ref().map_or("-", |i| i.username.as_str()),
                client_ip = %ip_for_log(pass.ctx.client_ip),
            );
            let assertion = match crate::http::decide::assertion(&state, &pass) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(route = %route.name, error = %e, "no assertion could be signed; refusing");
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "vestibule cannot vouch for this request right now; try again shortly.",
                    );
                }
            };
            let mut resp = plain(StatusCode::OK, "ok");
            let h = resp.headers_mut();
            pass.render_each(|name, value| {
                h.insert(name.clone(), value);
            });
            if let Some(a) = &state.assertions {
                // Always sent on routes with assertions (empty without an
                // identity), so the front overwrites a client's copy.
                if route.assertion_audience.is_some() {
                    h.insert(
                        a.header().clone(),
                        assertion.unwrap_or_else(|| http::HeaderValue::from_static("")),
                    );
                }
            }
            h.insert(
                AUTHORIZATION_HEADER,
                // Always sent, empty when nothing should be forwarded, so that
                // nginx `proxy_set_header Authorization` drops a consumed
                // credential and keeps an app's own token.
                vestibule_core::credential::authorization_to_forward(headers, pass.credential),
            );
            resp
        }
        Err(Refused {
            refusal,
            ctx,
            routes,
        }) => {
            log_refusal(&state, &routes, &refusal, &ctx, view.path, Via::Verify);
            match &refusal {
                Refusal::Unauthenticated { route } => {
                    let login = login_location(&routes, *route, &ctx, &view);
                    let want_redirect = matches!(q.redirect.as_deref(), Some("1" | "true"));
                    match login {
                        Some(loc) if want_redirect && wants_html(headers) => redirect(&loc),
                        Some(loc) => {
                            let mut resp = plain(
                                StatusCode::UNAUTHORIZED,
                                "Sign in through your SSO portal to use this app.",
                            );
                            if let Ok(v) = HeaderValue::from_str(&loc) {
                                resp.headers_mut().insert(LOGIN_URL_HEADER, v);
                            }
                            resp
                        }
                        None => plain(
                            StatusCode::UNAUTHORIZED,
                            "Sign in through your SSO portal to use this app.",
                        ),
                    }
                }
                // An unknown app is refused, not "not found": nginx would
                // turn a 404 into a 500, and a gate must fail closed.
                Refusal::NoRoute => plain(
                    StatusCode::FORBIDDEN,
                    "No app is configured at this address.",
                ),
                _ => {
                    let mut resp = refusal_response(&routes, &refusal, &ctx, &view);
                    resp.headers_mut().remove(header::LOCATION);
                    resp
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn original_request_from_either_convention() {
        let o = original(&h(&[("x-original-uri", "/a?b"), ("host", "app")])).unwrap();
        assert_eq!((o.uri.as_str(), o.host.as_deref()), ("/a?b", Some("app")));
        let o = original(&h(&[
            ("x-forwarded-uri", "/c"),
            ("x-forwarded-host", "x"),
            ("host", "v"),
        ]))
        .unwrap();
        assert_eq!((o.uri.as_str(), o.host.as_deref()), ("/c", Some("x")));
    }

    #[test]
    fn missing_duplicate_or_conflicting_originals_are_refused() {
        assert!(original(&h(&[("host", "a")])).is_err());
        assert!(original(&h(&[("x-original-uri", "/a"), ("x-original-uri", "/b")])).is_err());
        assert!(original(&h(&[("x-original-uri", "/a"), ("x-forwarded-uri", "/b")])).is_err());
        assert!(
            original(&h(&[
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-host", "a"),
                ("x-forwarded-host", "b")
            ]))
            .is_err()
        );
    }
}
