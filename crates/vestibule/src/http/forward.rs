//! Step 5: forward an allowed request to its app, as an in-path reverse proxy.
//!
//! - Every identity header, under every spelling, is removed; then the
//!   route's profile is injected. The app sees only what vestibule vouches for.
//! - Hop-by-hop headers are removed (RFC 9110 §7.6.1), including any named
//!   in `Connection`.
//! - `X-Forwarded-For/-Proto/-Host` and `X-Real-IP` are rebuilt: a trusted
//!   hop's values are extended, an untrusted client's are replaced.
//! - Bodies stream both ways; nothing is buffered.
//! - A WebSocket `Upgrade` is passed through and the two upgraded
//!   connections are spliced together. Any other upgrade (`h2c` above all)
//!   was refused by the pipeline, and an app switching to anything but
//!   WebSocket gets a 502, never a tunnel.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use vestibule_core::credential::{Carrier, remove_query_param, strip_credential_headers};
use vestibule_core::upgrade::{Upgrade, check_upgrade};

use crate::http::decide::{Pass, Refused, decide};
use crate::http::refusal::{Via, ip_for_log, log_refusal, refusal_response};
use crate::http::responses;
use crate::identity::client_identity::{ClientContext, ConnInfo};
use crate::state::AppState;
use crate::urls::RequestView;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `Proxy-Connection`
/// and `Keep-Alive`). `Proxy-Authorization` is meant for the proxy, so it
/// stops here too.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The fallback handler: every request that is not one of vestibule's own
/// endpoints goes through the pipeline and, if allowed, upstream.
pub async fn proxy(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo::UNKNOWN);
    let host = request_host(&req).map(str::to_owned);
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let view = RequestView {
        host: host.as_deref(),
        path: req.uri().path(),
        path_and_query: &path_and_query,
        headers: req.headers(),
    };
    match decide(&state, conn, view).await {
        Ok(pass) => {
            let routes = pass.routes.clone();
            // Build the access-log fields only when the line will be written.
            let log =
                tracing::enabled!(target: "vestibule::access", tracing::Level::INFO).then(|| {
                    (
                        pass.route,
                        pass.identity.as_ref().map(|i| i.username.clone()),
                        pass.ctx.client_ip,
                        req.method().clone(),
                        req.uri().path().to_owned(),
                    )
                });
            let resp = forward(&state, pass, req).await;
            if let Some((route, user, client_ip, method, path)) = log {
                tracing::info!(
                    target: "vestibule::access",
                    route = %routes.list[route].name,
                    method = %method,
                    path = %path,
                    status = resp.status().as_u16(),
                    user = user.as_deref().unwrap_or("-"),
                    client_ip = %ip_for_log(client_ip),
                    ms = started.elapsed().as_millis() as u64,
                );
            }
            resp
        }
        Err(Refused {
            refusal,
            ctx,
            routes,
        }) => {
            log_refusal(
                &state,
                &routes,
                &refusal,
                &ctx,
                req.uri().path(),
                Via::Proxy {
                    method: req.method(),
                    started,
                },
            );
            refusal_response(
                &routes,
                &refusal,
                &ctx,
                &view_for_response(&req, host.as_deref()),
            )
        }
    }
}

fn view_for_response<'a>(req: &'a Request, host: Option<&'a str>) -> RequestView<'a> {
    RequestView {
        host,
        path: req.uri().path(),
        path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        headers: req.headers(),
    }
}

/// `Host`, or the `:authority` of an HTTP/2 request.
fn request_host(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Whether the request asks to switch protocols, and to what: only ever
/// WebSocket ([`check_upgrade`]; the pipeline refused anything else).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    if check_upgrade(headers) != Ok(Some(Upgrade::WebSocket)) {
        return None;
    }
    let connection_has_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if connection_has_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Removes hop-by-hop headers, including those `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Rebuilds `X-Forwarded-*`, `X-Real-IP` and `Forwarded` for the upstream.
fn set_forwarding_headers(
    headers: &mut HeaderMap,
    ctx: &ClientContext,
    original_host: Option<&str>,
) {
    vestibule_core::headers::remove_path_overrides_and_odd_forwarding_spellings(headers);
    let peer_ip = ctx.peer.ip();
    let xff_name = HeaderName::from_static("x-forwarded-for");
    let existing: Vec<String> = if ctx.trusted_for_forwarding {
        headers
            .get_all(&xff_name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    } else {
        Vec::new()
    };
    headers.remove(&xff_name);
    let mut chain = existing.join(", ");
    if let Some(ip) = peer_ip {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&ip.to_string());
    }
    if let Ok(v) = HeaderValue::from_str(&chain)
        && !chain.is_empty()
    {
        headers.insert(xff_name, v);
    }

    if !ctx.trusted_for_forwarding {
        headers.remove("x-forwarded-proto");
        headers.remove("x-forwarded-host");
        headers.remove("x-forwarded-port");
        headers.remove("x-forwarded-prefix");
        headers.remove(header::FORWARDED);
        headers.remove("x-real-ip");
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
        );
    }
    if !headers.contains_key("x-forwarded-host")
        && let Some(h) = original_host.and_then(|h| HeaderValue::from_str(h).ok())
    {
        headers.insert("x-forwarded-host", h);
    }
    headers.remove("x-real-ip");
    if let Some(ip) = ctx
        .client_ip
        .and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok())
    {
        headers.insert("x-real-ip", ip);
    }
}

async fn forward(state: &AppState, pass: Pass, req: Request) -> Response {
    let routes = pass.routes.clone();
    let route = &routes.list[pass.route];
    let (mut parts, body) = req.into_parts();
    // The upstream errors below are pages for a browser.
    let html = responses::wants_html(&parts.headers);
    // A chunked body found malformed while streaming fails the upstream
    // request; the client is told 400, not 502.
    let (body, client_body_failed) = crate::http::framing::watch_body(body);
    // Body cap: refuse up front when the length is announced, and cut a
    // streamed body that runs past it.
    let body = match route.max_body_bytes {
        None => body,
        Some(max) => {
            let announced = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > max) {
                state.metrics.request(&route.name, "too_large");
                return responses::plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large for this app.",
                );
            }
            Body::new(http_body_util::Limited::new(
                body,
                usize::try_from(max).unwrap_or(usize::MAX),
            ))
        }
    };
    let original_host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let upgrade = upgrade_protocol(&parts.headers);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());

    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    routes.identity_headers.strip(headers);
    // A device credential is vestibule's secret, never the app's.
    if let Some(carrier) = pass.credential {
        strip_credential_headers(headers, carrier, &route.carriers);
    }
    if let Some(h) = &route.carriers.header {
        // This route's credential header is ours, whatever it holds, and
        // under every spelling.
        vestibule_core::headers::remove_every_spelling(headers, h.as_str());
    }
    if let Some(h) = route
        .access_tokens
        .as_ref()
        .and_then(|a| a.carriers.header.as_ref())
    {
        vestibule_core::headers::remove_every_spelling(headers, h.as_str());
    }
    // vestibule's own cookies (the session) are vestibule's secrets too.
    vestibule_core::headers::strip_cookies(headers, crate::web::cookies::OWN_NAMES);
    set_forwarding_headers(headers, &pass.ctx, original_host.as_deref());
    pass.render_each(|name, value| {
        if !value.is_empty() {
            headers.insert(name.clone(), value);
        }
    });
    match crate::http::decide::assertion(state, &pass) {
        Ok(Some(value)) => {
            if let Some(a) = &state.assertions {
                headers.insert(a.header().clone(), value);
            }
        }
        Ok(None) => {}
        // Alike the URI error below: each failure logs its own cause, counts
        // its own outcome and answers its own status.
        Err(e) => {
            tracing::error!(route = %route.name, error = %e, "no assertion could be signed; refusing");
            state.metrics.request(&route.name, "unavailable");
            return responses::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "vestibule cannot vouch for this request right now; try again shortly.",
            );
        }
    }
    if let Some(proto) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    let host_value = if route.preserve_host {
        original_host.as_deref()
    } else {
        Some(route.upstream_authority.as_str())
    };
    // HTTP/1.1 requires `Host` (RFC 9112 §3.2): without a usable original,
    // the upstream's own authority.
    let host = host_value
        .and_then(|h| HeaderValue::from_str(h).ok())
        .or_else(|| HeaderValue::from_str(route.upstream_authority.as_str()).ok());
    match host {
        Some(h) => {
            headers.insert(header::HOST, h);
        }
        None => {
            headers.remove(header::HOST);
        }
    }

    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let pq = match (&pass.credential, &route.carriers.query) {
        (Some(Carrier::Query), Some(name)) => std::borrow::Cow::Owned(remove_query_param(pq, name)),
        _ => std::borrow::Cow::Borrowed(pq),
    };
    // Origin form (RFC 9112 §3.2.1): the connection already names the
    // upstream, and `Host` was set above.
    let target = if route.upstream_base_path.is_empty() {
        Uri::try_from(pq.as_ref())
    } else {
        Uri::try_from(format!("{}{pq}", route.upstream_base_path))
    };
    let uri = match target {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "could not build the upstream URI");
            state.metrics.request(&route.name, "bad_request");
            return responses::plain(
                StatusCode::BAD_REQUEST,
                "The request URI cannot be forwarded.",
            );
        }
    };
    parts.uri = uri;
    // Upstreams are spoken to in HTTP/1.1 whatever the client used.
    parts.version = Version::HTTP_11;
    let upstream_req = http::Request::from_parts(parts, body);

    let sent = Instant::now();
    let result = tokio::time::timeout(
        state.settings.response_timeout,
        state.upstream.send(&route.upstream_authority, upstream_req),
    )
    .await;
    let hot = &routes.metrics[pass.route];
    hot.upstream.observe(sent.elapsed().as_secs_f64());
    let mut resp = match result {
        Err(_) => {
            tracing::warn!(route = %route.name, timeout = ?state.settings.response_timeout, "upstream did not answer in time");
            state.metrics.request(&route.name, "upstream_timeout");
            return responses::page(
                StatusCode::GATEWAY_TIMEOUT,
                html,
                "The app is not answering",
                "The app did not answer in time.",
                "Try again in a moment; if it keeps happening, tell an administrator.",
            );
        }
        Ok(Err(e)) if is_body_limit(&e) => {
            state.metrics.request(&route.name, "too_large");
            return responses::plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large for this app.",
            );
        }
        Ok(Err(e)) if client_body_failed.get() => {
            tracing::debug!(route = %route.name, error = %e, "the client's request body was malformed");
            state.metrics.request(&route.name, "bad_request");
            return crate::http::framing::bad_body();
        }
        Ok(Err(e)) => {
            let source =
                std::error::Error::source(&e).map_or_else(|| "-".to_owned(), ToString::to_string);
            tracing::warn!(route = %route.name, error = %e, source = %source, "upstream request failed");
            state.metrics.request(&route.name, "upstream_error");
            return responses::page(
                StatusCode::BAD_GATEWAY,
                html,
                "The app is not reachable",
                "The app could not be reached.",
                "Try again in a moment; if it keeps happening, tell an administrator.",
            );
        }
        Ok(Ok(resp)) => resp,
    };
    hot.forwarded.inc();

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The app may only switch to what the client asked: WebSocket.
        let to_websocket = resp
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let Some(client_upgrade) = client_upgrade.filter(|_| to_websocket) else {
            return responses::plain(
                StatusCode::BAD_GATEWAY,
                "The app switched protocols unasked.",
            );
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let route_name = route.name.clone();
        let (mut parts, upstream_body) = resp.into_parts();
        tokio::spawn(async move {
            // The upstream connection's sender lives in its body: kept
            // until the splice ends.
            let _upstream_connection = upstream_body;
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(route = %route_name, error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(route = %route_name, error = %e, "upgrade failed"),
            }
        });
        let proto = parts.headers.get(header::UPGRADE).cloned();
        remove_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(p) = proto {
            parts.headers.insert(header::UPGRADE, p);
        }
        return Response::from_parts(parts, Body::empty());
    }

    let (mut parts, body) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// Whether an upstream error was caused by the body cap.
fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(upgrade_protocol(&h).is_none());
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_protocol(&h).unwrap(), "websocket");
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(upgrade_protocol(&h).is_none());
    }
}
