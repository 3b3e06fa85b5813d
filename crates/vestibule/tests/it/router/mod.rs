//! The routers in-process: `vestibule::app::app` and `admin_app` driven with
//! `tower::ServiceExt::oneshot`, no socket, no child process. Every page
//! and endpoint: its status, its headers (security headers, cookies, CSRF)
//! and its refusals.
//!
//! The listener's part is not here: it inserts the connection facts
//! ([`ConnInfo`]), which these tests insert themselves, and checks `Host`
//! framing, header limits and TLS, which the real-socket suites cover.

mod access_tokens;
mod devices;
mod login;
mod own;
mod pages;
mod provider;
mod provider_apps;
mod provider_backchannel;
mod provider_device;
mod provider_logout;
mod provider_revoke;
mod provider_support;
mod provider_tokens;
mod proxy;
mod reload;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vestibule::identity::client_identity::ConnInfo;
use vestibule::state::AppState;
use vestibule_core::net::Peer;
use vestibule_store::{IdentityKey, Store};

/// The front's address: every config here trusts it.
pub const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// A peer no config here trusts.
pub const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// An upstream nothing listens on: refusals never reach it.
pub const NO_UPSTREAM: &str = "127.0.0.1:9";

/// `Content-Security-Policy` of the pages under `/.vestibule/`
/// (`web/security_headers.rs`).
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where configs put the data directory; replaced by a fresh one.
const DATA_DIR: &str = "@DATA@";

/// A gateway's routers and state, without listeners.
pub struct Gw {
    pub state: Arc<AppState>,
    pub app: Router,
    pub admin: Router,
    _dir: tempfile::TempDir,
}

impl Gw {
    /// Builds the gateway of `config` (TOML; `@DATA@` is a fresh directory).
    pub async fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config.replace(DATA_DIR, &dir.path().join("data").display().to_string());
        let state = state(&text).await;
        Self {
            app: vestibule::app::app(state.clone()),
            admin: vestibule::app::admin_app(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// The account store (configs with `[accounts]`).
    pub fn store(&self) -> &Arc<dyn Store> {
        self.state.accounts().expect("accounts on").store()
    }

    /// The id of the account of an authelia user, once it exists.
    pub async fn account_id(&self, user: &str) -> i64 {
        self.store()
            .account_by_identity(&IdentityKey::new("authelia", user))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no account for {user}"))
            .id
    }
}

/// The state `serve` would build for `config`, with its store opened in the
/// configured data directory. The one place `AppState` is constructed.
pub async fn state(config: &str) -> Arc<AppState> {
    let file = vestibule::config::parse_with_env(config, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    let (settings, diags) = vestibule::config::validate(&file);
    let settings = settings.unwrap_or_else(|| panic!("{diags:?}\n{config}"));
    let store = match &settings.accounts {
        Some(a) => Some(vestibule::app::open_store(a).await.unwrap()),
        None => None,
    };
    Arc::new(AppState::new(settings, store).unwrap())
}

/// A config: authelia headers from [`TRUSTED`], then `sections` (TOML
/// tables) and `routes`.
pub fn config(source_extra: &str, sections: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
         [source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n{source_extra}\n\n\
         {sections}\n\n{routes}"
    )
}

/// [`config`] with accounts in a fresh data directory, `accounts.admin_groups
/// = ["admins"]`, and `provisioning`.
pub fn accounts_config(provisioning: &str, sections: &str, routes: &str) -> String {
    config(
        &format!("provisioning = \"{provisioning}\""),
        &format!(
            "[database]\ndata_dir = \"{DATA_DIR}\"\n\n[accounts]\nadmin_groups = [\"admins\"]\n\n{sections}"
        ),
        routes,
    )
}

/// A `[[route]]` table.
pub fn route(name: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"http://{upstream}\"\n{extra}\n\n"
    )
}

/// One request, built up, then sent through a router.
pub struct Call {
    method: Method,
    path: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    conn: ConnInfo,
}

impl Call {
    /// `method path`, from [`TRUSTED`] over plain HTTP, `Host: app.test`.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_owned(),
            host: Some("app.test".into()),
            headers: Vec::new(),
            body: Vec::new(),
            conn: ConnInfo::plain(Peer::tcp(TRUSTED)),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header line (repeats allowed, names verbatim).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers<N: AsRef<str>, V: AsRef<str>>(mut self, h: &[(N, V)]) -> Self {
        for (n, v) in h {
            self = self.header(n.as_ref(), v.as_ref());
        }
        self
    }

    /// A browser: `Accept: text/html`.
    pub fn html(self) -> Self {
        self.header("Accept", "text/html,application/xhtml+xml")
    }

    /// From another socket peer.
    pub fn from(mut self, ip: IpAddr) -> Self {
        self.conn.peer = Peer::tcp(ip);
        self
    }

    /// Over a TLS listener.
    pub fn tls(mut self) -> Self {
        self.conn.tls = true;
        self
    }

    pub fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(str::to_owned);
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    /// A JSON body.
    pub fn json(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self.header("Content-Type", "application/json")
    }

    /// Sends it through `router`, as the listener would hand it over.
    pub async fn send(self, router: &Router) -> Resp {
        let mut b = Request::builder().method(self.method).uri(&self.path);
        if let Some(h) = &self.host {
            b = b.header(http::header::HOST, h);
        }
        for (n, v) in &self.headers {
            b = b.header(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut req = b.body(Body::from(self.body)).unwrap();
        req.extensions_mut().insert(self.conn);
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let r = Resp {
            status,
            headers: parts.headers,
            body,
        };
        // One Set-Cookie per cookie name: two would leave the browser's
        // choice to the order it applies them in.
        let mut names: Vec<&str> = r
            .set_cookies()
            .iter()
            .map(|c| c.split('=').next().unwrap())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "{:?}", r.set_cookies());
        r
    }
}

/// A response, body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    /// The `Set-Cookie` that starts a session, if any.
    pub fn new_session(&self) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| !c.contains("Max-Age=0"))
    }

    /// The `Set-Cookie` that removes the session cookie, if any.
    pub fn cleared(&self) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.contains("Max-Age=0"))
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        between(&self.text(), "name=\"csrf\" value=\"", "\"").to_owned()
    }

    /// Exactly the headers `web/security_headers.rs` puts on every page.
    #[track_caller]
    pub fn assert_page_headers(&self) {
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        assert_eq!(self.header("content-security-policy"), Some(PAGE_CSP));
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }

    /// What `http::responses::plain` puts on every answer of vestibule's own.
    #[track_caller]
    pub fn assert_plain(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }
}

/// The `name=value` of the flash cookie a 303 set.
#[track_caller]
pub fn flash_cookie(r: &Resp) -> String {
    let c = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vestibule_flash="))
        .expect("no flash cookie");
    assert!(
        c.contains("Path=/.vestibule/; HttpOnly; SameSite=Lax; Max-Age=60"),
        "{c}"
    );
    c.split(';').next().unwrap().to_owned()
}

/// The text between `start` and the next `end`.
#[track_caller]
pub fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {s}"))
        + start.len();
    s[i..].split(end).next().unwrap()
}

/// Checks a session `Set-Cookie` (`web/cookies.rs`): over HTTPS the
/// `__Host-` name with `Secure`; never a `Domain`; always `Path=/`,
/// `HttpOnly`, `SameSite=Lax`. Returns the `name=value` pair.
#[track_caller]
pub fn session_pair(set_cookie: &str, https: bool) -> String {
    let (prefix, secure) = if https {
        ("__Host-vestibule=vss_", true)
    } else {
        ("vestibule=vss_", false)
    };
    assert!(set_cookie.starts_with(prefix), "{set_cookie}");
    let attrs: Vec<&str> = set_cookie.split("; ").skip(1).collect();
    for a in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(attrs.contains(&a), "{a} missing: {set_cookie}");
    }
    assert_eq!(attrs.contains(&"Secure"), secure, "{set_cookie}");
    assert!(
        attrs
            .iter()
            .any(|a| a.starts_with("Max-Age=") && a != &"Max-Age=0"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The cookie that clears the session (`cookies::clear`), exactly.
pub fn clear_cookie(https: bool) -> &'static str {
    if https {
        "__Host-vestibule=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
    } else {
        "vestibule=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    }
}

/// A signed-in browser: its identity headers plus session cookie, and the
/// CSRF token of its forms.
pub struct Browser {
    pub headers: Vec<(String, String)>,
    pub cookie: String,
    pub csrf: String,
}

impl Browser {
    /// Opens `page` with `identity` from the front; the page must start a
    /// session.
    pub async fn open(app: &Router, page: &str, identity: &[(&str, &str)]) -> Self {
        let r = Call::get(page).headers(identity).send(app).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let cookie = session_pair(r.new_session().expect("no session started"), false);
        let mut headers: Vec<(String, String)> = identity
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        headers.push(("Cookie".into(), cookie.clone()));
        Self {
            headers,
            cookie,
            csrf: r.csrf(),
        }
    }

    /// A request carrying this browser's identity and cookie.
    pub fn call(&self, method: &str, path: &str) -> Call {
        Call::new(method, path).headers(&self.headers)
    }

    /// The session's token, as the cookie holds it.
    pub fn token(&self) -> &str {
        self.cookie.split_once('=').unwrap().1
    }
}

/// `url` as a query value the way login URL templates are filled: only
/// RFC 3986 §2.3 unreserved characters kept.
pub fn query_value(url: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(url, UNRESERVED).to_string()
}

/// Makes a stored status change visible now: the cache followers that
/// would do it are background tasks, not part of the router.
pub async fn set_status(gw: &Gw, user: &str, status: vestibule_store::AccountStatus) {
    let id = gw.account_id(user).await;
    assert!(gw.store().set_status(id, status, 0).await.unwrap());
    gw.state.accounts().unwrap().forget_all();
}

/// Each `(method, path, allow)` is a 405 that lists `allow` (RFC 9110
/// §15.5.6), answered by the router before any handler runs: even with an
/// identity from the front, no session starts for it.
pub async fn assert_405s(app: &Router, cases: &[(&str, &str, &str)]) {
    for (method, path, allow) in cases {
        let r = Call::new(method, path)
            .header("Remote-User", "alice")
            .send(app)
            .await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(*allow), "{method} {path}");
        assert!(r.set_cookies().is_empty(), "{method} {path}");
    }
}
