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
    chrome: crate::web::chrome::Chrome,
    code: u16,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
    links: Vec<(&'static str, &'static str)>,
}

/// Where a person can go from a page with `status`: the first link is the
/// way on, the others the ways out.
fn ways_on(status: StatusCode) -> Vec<(&'static str, &'static str)> {
    const START: (&str, &str) = ("/", "Go to the start page");
    const SIGN_IN: (&str, &str) = ("/.vestibule/login", "Sign in");
    const SWITCH: (&str, &str) = ("/.vestibule/logout", "Sign out to switch user");
    const ACCOUNT: (&str, &str) = ("/.vestibule/account", "Your account");
    match status.as_u16() {
        401 => vec![SIGN_IN, START],
        403 => vec![START, SWITCH],
        400 | 404 | 409 | 410 => vec![START, ACCOUNT],
        200..=299 => vec![START, SIGN_IN],
        // 429, 5xx: the same address again, a moment later.
        _ => vec![START],
    }
}

/// A page a person should understand (a refusal, or "signed out"): an
/// HTML page in vestibule's one design for browsers, the same sentence as
/// text for everything else. It never names configuration keys: what an
/// operator needs goes to the log.
pub fn page(status: StatusCode, html: bool, title: &str, message: &str, hint: &str) -> Response {
    use askama::Template;
    if html
        && let Ok(body) = (StatusPage {
            chrome: crate::web::chrome::Chrome::bare(),
            code: status.as_u16(),
            title,
            message,
            hint,
            links: ways_on(status),
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
            HeaderValue::from_static(crate::web::security_headers::PAGE_CSP),
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
