//! The addresses vestibule builds from a request: the URL the client asked
//! for, and login/logout URLs filled from a template. Shared by the
//! decision's refusals ([`crate::http::refusal`]) and the pages
//! ([`crate::web`]), so neither reaches into the other.

use http::HeaderMap;

use crate::identity::client_identity::ClientContext;

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
