//! Responses vestibule itself writes (refusals and errors).
//!
//! The body is a short, user-facing sentence; the detail that helps an
//! operator goes to the log, never to the client (vaultwarden's split).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// A plain-text response with the headers every vestibule answer carries.
pub fn plain(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(format!("{message}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // Refusals depend on who asked: never cache them.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// 302 to `location`.
pub fn redirect(location: &str) -> Response {
    let mut resp = plain(StatusCode::FOUND, "Sign in to continue.");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[derive(askama::Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    title: &'a str,
    message: &'a str,
    hint: &'a str,
}

/// A refusal a person should understand: an HTML page for browsers, the
/// same sentence as text for everything else.
pub fn page(status: StatusCode, html: bool, title: &str, message: &str, hint: &str) -> Response {
    use askama::Template;
    if html
        && let Ok(body) = (StatusPage {
            title,
            message,
            hint,
        })
        .render()
    {
        let mut resp = plain(status, "");
        *resp.body_mut() = Body::from(body);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
        return resp;
    }
    plain(status, message)
}

/// Whether the client is a browser asking for a page.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}
