//! The one stylesheet every vestibule page uses, served from the binary at
//! `/.vestibule/static/vestibule-<hash>.css`.
//!
//! The name carries a hash of the content, so the file can be cached for a
//! year (`immutable`, RFC 8246) and a new build is fetched at once. The
//! pages' CSP allows styles from `'self'` only: no inline style, no script.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use vestibule_core::secret::hash_token;

/// The stylesheet's text.
const STYLESHEET: &str = include_str!("../../assets/vestibule.css");

/// The file name, `vestibule-<16 hex digits of SHA-256>.css`.
static FILE_NAME: LazyLock<String> = LazyLock::new(|| {
    let digest = hash_token(STYLESHEET);
    format!("vestibule-{}.css", vestibule_store::hex(&digest[..8]))
});

/// The address pages link the stylesheet from.
static HREF: LazyLock<String> =
    LazyLock::new(|| format!("/.vestibule/static/{}", FILE_NAME.as_str()));

/// Where pages link the stylesheet from.
pub fn stylesheet_href() -> &'static str {
    HREF.as_str()
}

/// `GET /.vestibule/static/{file}`: the stylesheet under its current name;
/// any other name is 404 (an old name must not be cached as the new file).
pub async fn static_file(Path(file): Path<String>) -> Response {
    if file != *FILE_NAME {
        return crate::http::responses::plain(StatusCode::NOT_FOUND, "No such file.");
    }
    let mut r = STYLESHEET.into_response();
    let h = r.headers_mut();
    // Alike web/security_headers.rs: one insert a header; these are the stylesheet's own.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    // The name changes with the content (RFC 8246 `immutable`).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_follows_the_content() {
        assert!(stylesheet_href().starts_with("/.vestibule/static/vestibule-"));
        assert!(stylesheet_href().ends_with(".css"));
        assert_eq!(FILE_NAME.len(), "vestibule-.css".len() + 16);
    }
}
