//! Headers on every page vestibule renders itself (`/.vestibule/…`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};

/// The pages' Content Security Policy: no script at all, styles only from
/// vestibule's own stylesheet (no inline style), QR codes inline, forms
/// only to ourselves, never framed (RFC 9700 §4.16: prevent clickjacking
/// of approval buttons).
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`PAGE_CSP`] without `form-action`, for the OpenID provider's pages:
/// browsers apply `form-action` to the redirects that follow a form's
/// submission too, and the consent form's answer is a redirect to the
/// client's registered URI (another origin, or a private-use scheme).
pub const PROVIDER_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to a page response.
pub async fn layer(req: Request, next: Next) -> Response {
    with_csp(next.run(req).await, PAGE_CSP)
}

/// [`layer`] with [`PROVIDER_CSP`].
pub async fn provider_layer(req: Request, next: Next) -> Response {
    with_csp(next.run(req).await, PROVIDER_CSP)
}

fn with_csp(mut resp: Response, csp: &'static str) -> Response {
    let h = resp.headers_mut();
    // Pages depend on who asks: never store them (OWASP session management).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
