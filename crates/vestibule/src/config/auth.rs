//! `[auth]` (sign-in and sign-out redirects) and `[forward_auth]` (the
//! verify endpoint for fronts that ask before proxying).

use serde::Deserialize;
use vestibule_core::redirect::{Origin, RedirectPolicy};

use super::diagnostic::{Collector, check_login_url};

/// Default path of the forward-auth endpoint.
pub const DEFAULT_VERIFY_PATH: &str = "/.vestibule/verify";

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where browsers (`Accept: text/html`) without an identity are sent on
    /// `auth = "required"` routes. `{url}` is replaced by the percent-encoded
    /// original URL. Default none: a plain 401.
    pub login_url: Option<String>,
    /// The SSO front's sign-out URL, where `/.vestibule/logout` sends the
    /// browser after ending vestibule's own session. `{url}` is replaced by
    /// the percent-encoded return address. Default none: the browser goes
    /// straight to the return address (or sees a "signed out" page).
    pub logout_url: Option<String>,
    /// Origins (`https://host[:port]`) that `rd` and `return_to` on
    /// `/.vestibule/login` and `/.vestibule/logout` may point at, besides
    /// vestibule's own origin and the `http(s)://` origins of routes with an
    /// exact `host`. Default none.
    #[serde(default)]
    pub redirect_origins: Vec<String>,
}

/// `[forward_auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Path of the verify endpoint on the main listeners. Default
    /// `"/.vestibule/verify"`. It answers only peers in `client_ip.trusted_hops`.
    #[serde(default = "default_verify_path")]
    pub path: String,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        Self {
            path: default_verify_path(),
        }
    }
}

fn default_verify_path() -> String {
    DEFAULT_VERIFY_PATH.to_owned()
}

impl AuthConfig {
    /// Checks `[auth]`. `route_hosts`: the routes' `host`s, whose exact
    /// names are redirect targets too.
    pub(super) fn validate<'a>(
        &self,
        c: &mut Collector,
        route_hosts: impl Iterator<Item = Option<&'a str>>,
    ) -> RedirectPolicy {
        if let Some(url) = &self.login_url {
            check_login_url(c, "auth.login_url", url);
        }
        if let Some(url) = &self.logout_url {
            check_login_url(c, "auth.logout_url", url);
        }
        self.redirect_policy(c, route_hosts)
    }

    /// The origins return addresses may point at: the configured ones, plus
    /// both schemes of every route's exact host (wildcard hosts are not
    /// expanded: `*.example.com` would let any subdomain, perhaps a user's own
    /// site, receive the redirect).
    fn redirect_policy<'a>(
        &self,
        c: &mut Collector,
        route_hosts: impl Iterator<Item = Option<&'a str>>,
    ) -> RedirectPolicy {
        let mut origins = Vec::new();
        for (i, o) in self.redirect_origins.iter().enumerate() {
            match Origin::parse(o) {
                Ok(origin) => origins.push(origin),
                Err(e) => c.error(
                    format!("auth.redirect_origins[{i}]"),
                    format!("`{o}` is not an origin: {e}"),
                    "write it like \"https://app.example.com\" (scheme, host, optional port; no path)",
                ),
            }
        }
        for host in route_hosts.flatten().filter(|h| !h.contains('*')) {
            for scheme in ["https", "http"] {
                if let Ok(origin) = Origin::parse(&format!("{scheme}://{host}")) {
                    origins.push(origin);
                }
            }
        }
        RedirectPolicy::new(origins)
    }
}

impl ForwardAuthConfig {
    /// Checks `[forward_auth]`: the verify path must not shadow an app.
    pub(super) fn validate(&self, c: &mut Collector) -> String {
        let path = &self.path;
        if !path.starts_with('/') || path.contains(['?', '#', '{', '}', '*']) || path == "/" {
            c.error(
                "forward_auth.path",
                format!("`{path}` is not a plain absolute path"),
                "use the default \"/.vestibule/verify\" or another path under /.vestibule/",
            );
        } else if !path.starts_with("/.vestibule/") {
            c.warn(
                "forward_auth.path",
                format!("`{path}` is outside /.vestibule/, so it hides that path of every app"),
                "move it under /.vestibule/",
            );
        }
        path.clone()
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    #[test]
    fn defaults_apply() {
        let f = parse("", &[]).unwrap();
        let mut c = Collector::default();
        assert_eq!(f.forward_auth.validate(&mut c), DEFAULT_VERIFY_PATH);
        f.auth.validate(&mut c, std::iter::empty());
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert!(f.auth.login_url.is_none() && f.auth.redirect_origins.is_empty());
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            "",
            &[
                ("VESTIBULE_FORWARD_AUTH__PATH", "/.vestibule/check"),
                (
                    "VESTIBULE_AUTH__LOGIN_URL",
                    "https://sso.example.com/?rd={url}",
                ),
            ],
        )
        .unwrap();
        let mut c = Collector::default();
        assert_eq!(f.forward_auth.validate(&mut c), "/.vestibule/check");
        f.auth.validate(&mut c, std::iter::empty());
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(
            f.auth.login_url.as_deref(),
            Some("https://sso.example.com/?rd={url}")
        );
    }
}
