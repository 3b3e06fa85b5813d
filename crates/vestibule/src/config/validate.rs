//! Turns a [`FileConfig`] into [`Settings`], collecting every problem.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use vestibule_core::credential::{Carriers, credential_header_name, is_credential_query_name};
use vestibule_core::decode::Decoding;
use vestibule_core::dialect::{CustomDialect, Dialect, Preset, ValueLimits};
use vestibule_core::headers::IdentityHeaders;
use vestibule_core::net::{TrustedNetworks, is_docker_bridge_range, parse_trusted_network};
use vestibule_core::policy::{AuthMode, Provisioning, RoutePolicy};
use vestibule_core::profile::{CustomProfile, HeaderProfile, OutEncoding, OutField, ProfileKind};
use vestibule_core::route::RouteTable;

use vestibule_core::jwt::{Algorithm, ClaimMapping, Jwks};
use vestibule_core::redirect::{Origin, RedirectPolicy};

use super::{FileConfig, HeaderSourceConfig, JwtSourceConfig, RouteConfig, UnixListenerConfig};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works, but probably not as meant.
    Warning,
    /// Refused: `serve` will not start.
    Error,
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The offending key, e.g. `source.headers.trusted_proxies[1]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}: {}: {}\n  fix: {}",
            self.key, self.message, self.fix
        )
    }
}

/// The identity source, checked: trusted headers or signed assertions.
#[derive(Debug, Clone)]
pub struct IdentitySource {
    /// What carries the identity.
    pub kind: SourceKind,
    /// Peers allowed to send identity headers or assertions.
    pub trusted: TrustedNetworks,
    /// Bounds on values.
    pub limits: ValueLimits,
    /// First-sighting policy (with accounts).
    pub provisioning: Provisioning,
    /// Key accounts on the username instead of the stable subject.
    pub key_by_username: bool,
}

impl IdentitySource {
    /// The source name accounts are keyed under: the dialect's name, or the
    /// assertions' issuer (OIDC Core §5.7: `iss` and `sub` together are
    /// the stable identifier).
    pub fn name(&self) -> &str {
        match &self.kind {
            SourceKind::Headers(d) => d.name(),
            SourceKind::Jwt(j) => &j.issuer,
        }
    }
}

/// How a trusted peer tells vestibule who the user is.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Plain identity headers in a dialect.
    Headers(Dialect),
    /// A signed JWT in one header, checked against a JWK Set.
    Jwt(JwtSettings),
}

/// `[source.jwt]`, checked.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The preset's name, for logs.
    pub preset: String,
    /// Header carrying the assertion.
    pub header: http::HeaderName,
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (never empty).
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub jwks: JwksLocation,
    /// Extra CA certificates for an HTTPS `jwks_url`.
    pub jwks_ca: Option<PathBuf>,
    /// Periodic refetch.
    pub refresh: Duration,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Allowed clock skew, in seconds.
    pub leeway_secs: i64,
    /// Claim names.
    pub mapping: ClaimMapping,
}

/// Where a JWK Set is read from.
#[derive(Debug, Clone)]
pub enum JwksLocation {
    /// Fetched over HTTPS (or HTTP to loopback).
    Url(Uri),
    /// Read from a file.
    File(PathBuf),
}

/// Accounts, checked.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// Role → groups that grant it.
    pub roles: Vec<(String, Vec<String>)>,
    /// Longest use of a cached account.
    pub cache_ttl: Duration,
    /// The store.
    pub store: vestibule_store::StoreConfig,
    /// Directory to create before opening an embedded SQLite store.
    pub sqlite_dir: Option<PathBuf>,
    /// Groups allowed on the admin page.
    pub admin_groups: Vec<String>,
}

/// Device credentials and pairing, checked.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    /// How long a pairing code lives.
    pub pairing_ttl: Duration,
    /// Failures per minute per client address and per Basic user name.
    pub failures_per_minute: u32,
}

/// Session timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute timeout.
    pub absolute: Duration,
}

/// TLS listener settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Addresses.
    pub listen: Vec<SocketAddr>,
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// One route, checked.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// Name for logs and metrics.
    pub name: String,
    /// Upstream scheme and authority.
    pub upstream_authority: http::uri::Authority,
    /// Upstream base path (no trailing `/`; empty for none).
    pub upstream_base_path: String,
    /// Access rule.
    pub policy: RoutePolicy,
    /// Header profile.
    pub profile: HeaderProfile,
    /// Login redirect template for browsers.
    pub login_url: Option<String>,
    /// Send the client's `Host` upstream.
    pub preserve_host: bool,
    /// Request body cap.
    pub max_body_bytes: Option<u64>,
    /// Where device credentials are accepted (none by default).
    pub carriers: Carriers,
    /// Owner must have been seen through SSO within this (route, else global).
    pub max_sso_age: Option<Duration>,
}

/// Which forwarding header gives the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeaderKind {
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

/// The checked configuration the server runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain listeners.
    pub listen: Vec<SocketAddr>,
    /// Unix socket listeners.
    pub unix: Vec<UnixListenerConfig>,
    /// TLS listeners.
    pub tls: Option<TlsSettings>,
    /// Admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Slowloris guard.
    pub header_read_timeout: Duration,
    /// Connection cap over all listeners.
    pub max_connections: usize,
    /// Header line cap per request.
    pub max_request_headers: usize,
    /// Request head size cap.
    pub max_header_bytes: usize,
    /// Log format is JSON.
    pub log_json: bool,
    /// Log filter.
    pub log_level: String,
    /// The identity source (`[source.headers]` or `[source.jwt]`).
    pub identity_source: Option<IdentitySource>,
    /// Hops believed when finding the client address.
    pub client_ip_hops: TrustedNetworks,
    /// Which header gives the client address.
    pub client_ip_header: ForwardedHeaderKind,
    /// Every identity header spelling, stripped before forwarding.
    pub identity_headers: IdentityHeaders,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Upstream time to response headers.
    pub response_timeout: Duration,
    /// Upstream pool idle timeout.
    pub pool_idle_timeout: Duration,
    /// Path of the forward-auth endpoint.
    pub verify_path: String,
    /// `auth.login_url`: where browsers without an identity are sent from
    /// vestibule's own pages.
    pub login_url: Option<String>,
    /// `auth.logout_url`: the SSO front's sign-out, after vestibule's.
    pub logout_url: Option<String>,
    /// Where `rd` and `return_to` may send a browser.
    pub redirects: RedirectPolicy,
    /// Accounts (and the store), when `[accounts]` is present.
    pub accounts: Option<AccountSettings>,
    /// Browser sessions.
    pub sessions: SessionSettings,
    /// Device credentials.
    pub devices: DeviceSettings,
    /// Routes, in file order.
    pub routes: Vec<RouteSettings>,
    /// Matcher over `routes`.
    pub route_table: RouteTable,
}

struct Collector {
    diags: Vec<Diagnostic>,
}

impl Collector {
    fn error(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, key, message, fix);
    }
    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Warning, key, message, fix);
    }
    fn push(
        &mut self,
        severity: Severity,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

fn parse_addr(c: &mut Collector, key: &str, s: &str) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.error(
                key,
                format!("`{s}` is not an address with a port"),
                "write it as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            );
            None
        }
    }
}

/// Validates `file`. Returns the settings when there is no error, and every
/// diagnostic (errors and warnings) either way.
pub fn validate(file: &FileConfig) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut c = Collector { diags: Vec::new() };

    let listen: Vec<SocketAddr> = file
        .server
        .listen
        .iter()
        .enumerate()
        .filter_map(|(i, s)| parse_addr(&mut c, &format!("server.listen[{i}]"), s))
        .collect();
    if file.server.listen.is_empty() && file.server.unix.is_empty() && file.server.tls.is_none() {
        c.error(
            "server.listen",
            "no listener is configured",
            "add an address such as \"127.0.0.1:8080\"",
        );
    }
    let tls = file.server.tls.as_ref().map(|t| {
        for (key, path) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
            if !path.is_file() {
                c.error(
                    key,
                    format!("{} does not exist or is not a file", path.display()),
                    "point it at a PEM file readable by vestibule",
                );
            }
        }
        if t.listen.is_empty() {
            c.error(
                "server.tls.listen",
                "TLS is configured without a listener",
                "add an address such as \"0.0.0.0:8443\"",
            );
        }
        TlsSettings {
            listen: t
                .listen
                .iter()
                .enumerate()
                .filter_map(|(i, s)| parse_addr(&mut c, &format!("server.tls.listen[{i}]"), s))
                .collect(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        }
    });
    for (i, u) in file.server.unix.iter().enumerate() {
        if u.path.as_os_str().is_empty() {
            c.error(
                format!("server.unix[{i}].path"),
                "empty socket path",
                "set a path such as \"/run/vestibule/http.sock\"",
            );
        }
    }
    let admin_listen = if file.server.admin_listen.is_empty() {
        None
    } else {
        let a = parse_addr(&mut c, "server.admin_listen", &file.server.admin_listen);
        if let Some(a) = a
            && !a.ip().is_loopback()
        {
            c.warn(
                "server.admin_listen",
                format!("metrics are served on {a}, which is not loopback"),
                "keep the admin listener on 127.0.0.1 unless a firewall guards it",
            );
        }
        a
    };
    if tracing_subscriber::EnvFilter::try_new(&file.log.level).is_err() {
        c.error(
            "log.level",
            format!("`{}` is not a log filter", file.log.level),
            "use a level such as \"info\" or a filter such as \"warn,vestibule=info\"",
        );
    }
    for (key, d) in [
        (
            "server.header_read_timeout",
            file.server.header_read_timeout.0,
        ),
        ("upstream.connect_timeout", file.upstream.connect_timeout.0),
        (
            "upstream.response_timeout",
            file.upstream.response_timeout.0,
        ),
        (
            "upstream.pool_idle_timeout",
            file.upstream.pool_idle_timeout.0,
        ),
    ] {
        if d.is_zero() {
            c.error(
                key,
                "a zero timeout would refuse every request",
                "use a duration such as \"10s\"",
            );
        }
    }
    for (key, v, lo, hi) in [
        (
            "server.max_connections",
            file.server.max_connections,
            1,
            1_000_000,
        ),
        (
            "server.max_request_headers",
            file.server.max_request_headers,
            8,
            1000,
        ),
        (
            "server.max_header_bytes",
            file.server.max_header_bytes,
            8192,
            1 << 20,
        ),
    ] {
        if !(lo..=hi).contains(&v) {
            c.error(
                key,
                format!("{v} is outside {lo}..={hi}"),
                "keep the default unless a client needs more",
            );
        }
    }
    let log_json = match file.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            c.error(
                "log.format",
                format!("unknown log format `{other}`"),
                "use \"text\" or \"json\"",
            );
            false
        }
    };

    let headers_on = file.source.headers.as_ref().filter(|h| h.enabled);
    let jwt_on = file.source.jwt.as_ref().filter(|j| j.enabled);
    if headers_on.is_some() && jwt_on.is_some() {
        c.error(
            "source",
            "both [source.headers] and [source.jwt] are on; which one names the user would be ambiguous",
            "keep one of them, or set enabled = false on the other",
        );
    }
    let identity_source = match (headers_on, jwt_on) {
        (Some(h), _) => header_source(&mut c, h),
        (None, Some(j)) => jwt_source(&mut c, j),
        (None, None) => None,
    };

    // Client address: believe the same proxies as the header source unless told otherwise.
    let client_ip_hops = match &file.client_ip.trusted_hops {
        Some(list) => trusted_list(&mut c, "client_ip.trusted_hops", list),
        None => identity_source
            .as_ref()
            .map(|h| h.trusted.clone())
            .unwrap_or_default(),
    };
    if !client_ip_hops.any_address_entries().is_empty() {
        c.warn(
            "client_ip.trusted_hops",
            "every peer's X-Forwarded-For is believed, so clients can pick the address that is logged and rate-limited",
            "list only your proxies' addresses",
        );
    }
    let client_ip_header = match file.client_ip.header.as_deref() {
        None | Some("x-forwarded-for") => ForwardedHeaderKind::XForwardedFor,
        Some("forwarded") => ForwardedHeaderKind::Forwarded,
        Some(other) => {
            c.error(
                "client_ip.header",
                format!("unknown header `{other}`"),
                "use \"x-forwarded-for\" or \"forwarded\"",
            );
            ForwardedHeaderKind::XForwardedFor
        }
    };

    if let Some(url) = &file.auth.login_url {
        check_login_url(&mut c, "auth.login_url", url);
    }
    if let Some(url) = &file.auth.logout_url {
        check_login_url(&mut c, "auth.logout_url", url);
    }
    let redirects = redirect_policy(&mut c, file);
    let verify_path = &file.forward_auth.path;
    if !verify_path.starts_with('/')
        || verify_path.contains(['?', '#', '{', '}', '*'])
        || verify_path == "/"
    {
        c.error(
            "forward_auth.path",
            format!("`{verify_path}` is not a plain absolute path"),
            "use the default \"/.vestibule/verify\" or another path under /.vestibule/",
        );
    } else if !verify_path.starts_with("/.vestibule/") {
        c.warn(
            "forward_auth.path",
            format!("`{verify_path}` is outside /.vestibule/, so it hides that path of every app"),
            "move it under /.vestibule/",
        );
    }

    let mut identity_headers = IdentityHeaders::builtin();
    match identity_source.as_ref().map(|s| &s.kind) {
        Some(SourceKind::Headers(d)) => {
            identity_headers = identity_headers.with_names(d.header_names());
        }
        Some(SourceKind::Jwt(j)) => {
            identity_headers = identity_headers.with_names([j.header.as_str()]);
        }
        None => {}
    }

    let accounts = file
        .accounts
        .as_ref()
        .and_then(|a| accounts(&mut c, file, a));
    let sessions = SessionSettings {
        idle: file.sessions.idle_timeout.0,
        absolute: file.sessions.absolute_timeout.0,
    };
    if sessions.idle.is_zero() || sessions.absolute.is_zero() || sessions.idle > sessions.absolute {
        c.error(
            "sessions.idle_timeout",
            "session timeouts must be above zero, and idle no longer than absolute",
            "use e.g. idle_timeout = \"30m\", absolute_timeout = \"12h\"",
        );
    }
    if file.accounts.is_some() && file.server.tls.is_none() {
        c.warn(
            "sessions",
            "without a TLS listener, session cookies are `vestibule` (not `__Host-vestibule`, not Secure) unless a trusted front sends X-Forwarded-Proto: https",
            "terminate TLS at a front that sends X-Forwarded-Proto: https, or configure [server.tls]",
        );
    }
    let devices = DeviceSettings {
        pairing_ttl: file.devices.pairing_ttl.0,
        failures_per_minute: file.devices.failures_per_minute,
    };
    if devices.pairing_ttl.is_zero() || devices.pairing_ttl > Duration::from_secs(3600) {
        c.error(
            "devices.pairing_ttl",
            "a pairing code must live more than zero and at most an hour",
            "keep the default, \"5m\"",
        );
    }
    if devices.failures_per_minute == 0 {
        c.error(
            "devices.failures_per_minute",
            "0 would refuse every device credential",
            "keep the default, 10",
        );
    }
    if file.devices.max_sso_age.is_some_and(|a| a.0.is_zero()) {
        c.error(
            "devices.max_sso_age",
            "a zero age would refuse every device credential",
            "use e.g. \"30d\", or remove it to turn the check off",
        );
    }
    let known_roles: Vec<&str> = file
        .accounts
        .iter()
        .flat_map(|a| a.roles.keys())
        .map(String::as_str)
        .collect();
    for (i, r) in file.routes.iter().enumerate() {
        for role in &r.allow_roles {
            if !known_roles.contains(&role.as_str()) {
                c.error(
                    format!("route[{i}].allow_roles"),
                    format!("role `{role}` is not defined in [accounts.roles]"),
                    "define it, e.g. [accounts.roles] admin = [\"admins\"]",
                );
            }
        }
    }

    if file.routes.is_empty() {
        c.warn(
            "route",
            "no [[route]] is configured: every request will get 404",
            "add a [[route]] with an upstream",
        );
    }
    let mut routes = Vec::new();
    for (i, r) in file.routes.iter().enumerate() {
        if let Some(rs) = route(&mut c, i, r, file, identity_source.is_some()) {
            identity_headers =
                identity_headers.with_names(rs.profile.header_names().map(|n| n.as_str()));
            routes.push(rs);
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        if !names.insert(r.name.clone()) {
            c.error(
                format!("route[{i}].name"),
                format!("two routes are named `{}`", r.name),
                "give each route its own name",
            );
        }
    }
    let route_table = match RouteTable::new(
        file.routes
            .iter()
            .map(|r| (r.host.as_deref(), r.path_prefix.as_str())),
    ) {
        Ok(t) => Some(t),
        Err(e) => {
            c.error(
                "route",
                e.to_string(),
                "fix the host or path_prefix, or merge the two routes",
            );
            None
        }
    };

    let has_error = c.diags.iter().any(|d| d.severity == Severity::Error);
    // Two prefixes that differ only in letter case are one prefix to a
    // case-insensitive app; when neither route's policy is stricter, every
    // request under them is refused (400), which is worth saying up front.
    for (i, a) in routes.iter().enumerate() {
        for (j, b) in routes.iter().enumerate().skip(i + 1) {
            let (ra, rb) = (&file.routes[i], &file.routes[j]);
            let same_host = ra.host.as_deref().map(str::to_ascii_lowercase)
                == rb.host.as_deref().map(str::to_ascii_lowercase);
            if same_host
                && ra.path_prefix != rb.path_prefix
                && ra.path_prefix.to_lowercase() == rb.path_prefix.to_lowercase()
                && !a.policy.at_least_as_strict_as(&b.policy)
                && !b.policy.at_least_as_strict_as(&a.policy)
            {
                c.warn(
                    format!("route[{j}].path_prefix"),
                    format!(
                        "`{}` and `{}` differ only in letter case and neither route's policy is stricter: every request under them will be refused (400)",
                        ra.path_prefix, rb.path_prefix
                    ),
                    "merge the two routes, or give one a policy at least as strict as the other's",
                );
            }
        }
    }
    // Each route's policy goes into the table, so that a path whose
    // case-folded reading reaches another route is handled under the
    // strictest of them (a case-insensitive app serves `/ADMINS` as
    // `/admins`).
    let route_table = route_table
        .filter(|_| routes.len() == file.routes.len())
        .and_then(|t| t.with_policies(routes.iter().map(|r| r.policy.clone()).collect()));
    let settings = match route_table {
        Some(route_table) if !has_error && routes.len() == file.routes.len() => Some(Settings {
            listen,
            unix: file.server.unix.clone(),
            tls,
            admin_listen,
            header_read_timeout: file.server.header_read_timeout.0,
            max_connections: file.server.max_connections,
            max_request_headers: file.server.max_request_headers,
            max_header_bytes: file.server.max_header_bytes,
            log_json,
            log_level: file.log.level.clone(),
            identity_source,
            client_ip_hops,
            client_ip_header,
            identity_headers,
            connect_timeout: file.upstream.connect_timeout.0,
            response_timeout: file.upstream.response_timeout.0,
            pool_idle_timeout: file.upstream.pool_idle_timeout.0,
            verify_path: verify_path.clone(),
            login_url: file.auth.login_url.clone(),
            logout_url: file.auth.logout_url.clone(),
            redirects,
            accounts,
            sessions,
            devices,
            routes,
            route_table,
        }),
        _ => None,
    };
    (settings, c.diags)
}

fn accounts(
    c: &mut Collector,
    file: &FileConfig,
    a: &super::AccountsConfig,
) -> Option<AccountSettings> {
    if a.cache_ttl.0.is_zero() {
        c.error(
            "accounts.cache_ttl",
            "a zero cache would query the database on every request",
            "use e.g. \"30s\"",
        );
    }
    if file.source.headers.as_ref().is_none_or(|h| !h.enabled)
        && file.source.jwt.as_ref().is_none_or(|j| !j.enabled)
    {
        c.warn(
            "accounts",
            "accounts are on but no identity source is configured, so no account is ever used",
            "configure [source.headers] or [source.jwt], or remove [accounts]",
        );
    }
    let db = &file.database;
    let (url, sqlite_dir) = match &db.url {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            (u.clone(), None)
        }
        Some(u) if u.starts_with("sqlite://") => (u.clone(), None),
        Some(_) => {
            c.error(
                "database.url",
                "only postgres:// and sqlite:// URLs are supported",
                "write postgres://user:password@host/db, or remove it to use the embedded SQLite file",
            );
            return None;
        }
        None => {
            let dir = if db.data_dir.is_absolute() {
                db.data_dir.clone()
            } else {
                std::env::current_dir()
                    .unwrap_or_default()
                    .join(&db.data_dir)
            };
            (
                format!("sqlite://{}", dir.join("vestibule.db").display()),
                Some(dir),
            )
        }
    };
    if db.max_connections == 0 || db.max_connections > 1000 {
        c.error(
            "database.max_connections",
            format!("{} is outside 1..=1000", db.max_connections),
            "keep the default, 8",
        );
    }
    Some(AccountSettings {
        roles: a
            .roles
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cache_ttl: a.cache_ttl.0,
        store: vestibule_store::StoreConfig {
            url,
            max_connections: db.max_connections,
        },
        sqlite_dir,
        admin_groups: a.admin_groups.clone(),
    })
}

fn trusted_list(c: &mut Collector, key: &str, list: &[String]) -> TrustedNetworks {
    let mut nets = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match parse_trusted_network(entry) {
            Ok(n) => nets.push(n),
            Err(e) => c.error(
                format!("{key}[{i}]"),
                e.to_string(),
                "write an IP (\"10.0.0.5\") or a network (\"10.0.0.0/24\")",
            ),
        }
    }
    TrustedNetworks::from_networks(nets)
}

fn header_source(c: &mut Collector, h: &HeaderSourceConfig) -> Option<IdentitySource> {
    let key = "source.headers";
    let dialect = match (h.dialect.as_str(), &h.custom) {
        ("custom", None) => {
            c.error(
                format!("{key}.custom"),
                "dialect = \"custom\" needs a [source.headers.custom] table",
                "add [source.headers.custom] with at least `subject = \"X-User-Id\"`",
            );
            None
        }
        ("custom", Some(cd)) => {
            let sep = match cd.groups_separator.chars().collect::<Vec<_>>()[..] {
                [ch] => ch,
                _ => {
                    c.error(
                        format!("{key}.custom.groups_separator"),
                        format!("`{}` is not a single character", cd.groups_separator),
                        "use one of \",\", \";\", \"|\" or \" \"",
                    );
                    ','
                }
            };
            match Dialect::custom(&CustomDialect {
                subject: cd.subject.clone(),
                username: cd.username.clone(),
                email: cd.email.clone(),
                display_name: cd.display_name.clone(),
                groups: cd.groups.clone(),
                groups_separator: sep,
                org: cd.org.clone(),
                decoding: Decoding {
                    base64_prefix: cd.decode_base64_prefix,
                    rfc2047: cd.decode_rfc2047,
                },
            }) {
                Ok(d) => Some(d),
                Err(e) => {
                    c.error(
                        format!("{key}.custom"),
                        e.to_string(),
                        "use header names made of letters, digits and `-`, and one of , ; | or space as separator",
                    );
                    None
                }
            }
        }
        (name, custom) => {
            if custom.is_some() {
                c.warn(
                    format!("{key}.custom"),
                    format!("[source.headers.custom] is ignored with dialect `{name}`"),
                    "remove it, or set dialect = \"custom\"",
                );
            }
            match Preset::from_name(name) {
                Some(p) => Some(Dialect::preset(p)),
                None => {
                    c.error(
                        format!("{key}.dialect"),
                        format!("unknown dialect `{name}`"),
                        "use authelia, authentik, oauth2-proxy, georchestra, tailscale or custom",
                    );
                    None
                }
            }
        }
    };

    let common = SourceCommon {
        trusted_proxies: &h.trusted_proxies,
        dangerously_trust_any_peer: h.dangerously_trust_any_peer,
        max_value_bytes: h.max_value_bytes,
        max_groups_bytes: h.max_groups_bytes,
        provisioning: &h.provisioning,
        provision_groups: &h.provision_groups,
        account_key: &h.account_key,
    };
    common_source(c, key, &common, dialect.map(SourceKind::Headers))
}

/// The settings both source kinds share.
struct SourceCommon<'a> {
    trusted_proxies: &'a [String],
    dangerously_trust_any_peer: bool,
    max_value_bytes: usize,
    max_groups_bytes: usize,
    provisioning: &'a str,
    provision_groups: &'a [String],
    account_key: &'a str,
}

fn common_source(
    c: &mut Collector,
    key: &str,
    h: &SourceCommon<'_>,
    kind: Option<SourceKind>,
) -> Option<IdentitySource> {
    let trusted = trusted_list(c, &format!("{key}.trusted_proxies"), h.trusted_proxies);
    if h.trusted_proxies.is_empty() {
        c.error(
            format!("{key}.trusted_proxies"),
            "an identity source is on but no proxy is trusted to send identities",
            "set trusted_proxies to your SSO front's address, e.g. [\"10.0.0.5\"] (a bare IP trusts that one host)",
        );
    }
    let any = trusted.any_address_entries();
    if !any.is_empty() {
        let list = any
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if h.dangerously_trust_any_peer {
            c.warn(
                format!("{key}.dangerously_trust_any_peer"),
                format!(
                    "{list} is trusted: ANY client that reaches vestibule can claim to be ANY user"
                ),
                "only keep this if a firewall makes the SSO front the sole peer that can connect",
            );
        } else {
            c.error(
                format!("{key}.trusted_proxies"),
                format!("{list} trusts (nearly) every address: any client could send `Remote-User: admin`"),
                "list your SSO front's address instead; if you really must, set dangerously_trust_any_peer = true",
            );
        }
    }
    for (i, net) in trusted.networks().iter().enumerate() {
        if net.prefix_len() != 0 && is_docker_bridge_range(net) {
            c.warn(
                format!("{key}.trusted_proxies[{i}]"),
                format!("{net} looks like a Docker bridge network: every container on it could impersonate users"),
                "give the proxy container a static IP and trust only that address",
            );
        }
    }
    for (k, v) in [
        ("max_value_bytes", h.max_value_bytes),
        ("max_groups_bytes", h.max_groups_bytes),
    ] {
        if v == 0 || v > 65_536 {
            c.error(
                format!("{key}.{k}"),
                format!("{v} is outside 1..=65536"),
                "use a bound such as 1024 (values) or 8192 (groups)",
            );
        }
    }
    let provisioning = match h.provisioning {
        "existing-only" => Provisioning::ExistingOnly,
        "auto" => Provisioning::Auto,
        "approval" => Provisioning::Approval,
        "auto-if-group" => {
            if h.provision_groups.is_empty() {
                c.error(
                    format!("{key}.provision_groups"),
                    "provisioning = \"auto-if-group\" without any group would create nobody",
                    "list the groups, e.g. provision_groups = [\"family\"]",
                );
            }
            Provisioning::AutoIfGroup(h.provision_groups.to_vec())
        }
        other => {
            c.error(
                format!("{key}.provisioning"),
                format!("unknown provisioning policy `{other}`"),
                "use existing-only, auto, auto-if-group or approval",
            );
            Provisioning::Approval
        }
    };
    let key_by_username = match h.account_key {
        "subject" => false,
        "username" => true,
        other => {
            c.error(
                format!("{key}.account_key"),
                format!("unknown account key `{other}`"),
                "use \"subject\" (recommended) or \"username\"",
            );
            false
        }
    };
    Some(IdentitySource {
        kind: kind?,
        trusted,
        limits: ValueLimits {
            max_value_len: h.max_value_bytes,
            max_groups_len: h.max_groups_bytes,
            ..ValueLimits::default()
        },
        provisioning,
        key_by_username,
    })
}

fn jwt_source(c: &mut Collector, j: &JwtSourceConfig) -> Option<IdentitySource> {
    let key = "source.jwt";
    let mut ok = true;
    let mut mapping = ClaimMapping::preset(&j.preset);
    if mapping.is_none() {
        c.error(
            format!("{key}.preset"),
            format!("unknown preset `{}`", j.preset),
            "use pomerium, cloudflare, authentik or oidc",
        );
    }
    let default_header = match j.preset.as_str() {
        "pomerium" => Some("X-Pomerium-Jwt-Assertion"),
        "cloudflare" => Some("Cf-Access-Jwt-Assertion"),
        "authentik" => Some("X-authentik-jwt"),
        _ => None,
    };
    let header = match j.header.as_deref().or(default_header) {
        Some(h) => match http::HeaderName::from_bytes(
            vestibule_core::headers::normalize_name(h).as_bytes(),
        ) {
            Ok(name) => Some(name),
            Err(_) => {
                c.error(
                    format!("{key}.header"),
                    format!("`{h}` is not a header name"),
                    "use letters, digits and `-`, e.g. \"X-Assertion\"",
                );
                None
            }
        },
        None => {
            c.error(
                format!("{key}.header"),
                "the oidc preset has no default header",
                "name the header the front puts the token in, e.g. header = \"X-Id-Token\"",
            );
            None
        }
    };
    if j.issuer.trim().is_empty() {
        ok = false;
        c.error(
            format!("{key}.issuer"),
            "no issuer: any key holder's tokens would be accepted",
            "set the exact `iss` of the assertions, e.g. \"https://team.cloudflareaccess.com\"",
        );
    }
    if j.audience.iter().all(|a| a.trim().is_empty()) {
        ok = false;
        c.error(
            format!("{key}.audience"),
            "no audience: an assertion minted for another app would be accepted here (RFC 8725 §3.9)",
            "set the `aud` your front puts in assertions for vestibule (Cloudflare: the application's AUD tag)",
        );
    }
    let jwks = match (&j.jwks_url, &j.jwks_file) {
        (Some(_), Some(_)) => {
            c.error(
                format!("{key}.jwks_url"),
                "both jwks_url and jwks_file are set",
                "keep one",
            );
            None
        }
        (None, None) => {
            c.error(
                format!("{key}.jwks_url"),
                "no signing keys: set jwks_url or jwks_file",
                "e.g. jwks_url = \"https://team.cloudflareaccess.com/cdn-cgi/access/certs\"",
            );
            None
        }
        (None, Some(path)) => {
            // Read now, so `check` catches a wrong path or a bad set instead
            // of `serve` answering 503 to every assertion.
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| Jwks::parse(&b).map_err(|e| e.to_string()))
            {
                Ok(_) => Some(JwksLocation::File(path.clone())),
                Err(e) => {
                    c.error(
                        format!("{key}.jwks_file"),
                        format!("{}: {e}", path.display()),
                        "point it at the issuer's JWK Set (a JSON object with \"keys\")",
                    );
                    None
                }
            }
        }
        (Some(url), None) => match url.parse::<Uri>() {
            Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {
                Some(JwksLocation::Url(u))
            }
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some_and(is_loopback_host) => {
                Some(JwksLocation::Url(u))
            }
            Ok(u) if u.scheme_str() == Some("http") => {
                c.error(
                    format!("{key}.jwks_url"),
                    format!("`{url}` is plain HTTP: whoever sits on the path could swap the keys and sign as anyone"),
                    "use https://, or jwks_file with a copy of the keys",
                );
                None
            }
            _ => {
                c.error(
                    format!("{key}.jwks_url"),
                    format!("`{url}` is not an absolute https URL"),
                    "write it like \"https://sso.example.com/.well-known/jwks.json\"",
                );
                None
            }
        },
    };
    if let Some(ca) = &j.jwks_ca {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| e.to_string())
            .and_then(|it| it.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string()));
        match certs {
            Ok(certs) if !certs.is_empty() => {}
            Ok(_) => c.error(
                format!("{key}.jwks_ca"),
                format!("{} holds no certificate", ca.display()),
                "use a PEM file with the CA certificate(s) of the key server",
            ),
            Err(e) => c.error(
                format!("{key}.jwks_ca"),
                format!("{}: {e}", ca.display()),
                "use a PEM file with the CA certificate(s) of the key server",
            ),
        }
    }
    if j.jwks_ca.is_some() && j.jwks_file.is_some() {
        c.warn(
            format!("{key}.jwks_ca"),
            "jwks_ca is only used with jwks_url",
            "remove it",
        );
    }
    if j.jwks_refresh.0 < Duration::from_secs(10) {
        c.error(
            format!("{key}.jwks_refresh"),
            "refreshing more often than every 10 s would hammer the key server",
            "use e.g. \"1h\" (unknown keys are fetched at once anyway)",
        );
    }
    let mut algorithms = Vec::new();
    for (i, a) in j.algorithms.iter().enumerate() {
        match Algorithm::parse(a) {
            Some(alg) => algorithms.push(alg),
            None => {
                c.error(
                    format!("{key}.algorithms[{i}]"),
                    format!("`{a}` is not an algorithm vestibule accepts"),
                    "use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (never none or HS256)",
                );
            }
        }
    }
    if j.algorithms.is_empty() {
        // Every algorithm vestibule verifies; never `none` or HMAC (RFC
        // 8725 §3.1, §3.2: a shared secret would let any verifier sign).
        algorithms = Algorithm::ALL.to_vec();
    }
    if j.leeway.0 > Duration::from_secs(300) {
        c.error(
            format!("{key}.leeway"),
            "more than 5 minutes of clock skew keeps expired assertions alive",
            "fix the clocks (NTP) and use the default \"60s\"",
        );
    }
    if let Some(m) = &mut mapping {
        let claims = &j.claims;
        if let Some(v) = &claims.subject {
            m.subject = v.clone();
        }
        if let Some(v) = &claims.username {
            m.username = vec![v.clone()];
        }
        if let Some(v) = &claims.email {
            m.email = Some(v.clone());
        }
        if let Some(v) = &claims.display_name {
            m.display_name = Some(v.clone());
        }
        if let Some(v) = &claims.groups {
            m.groups = Some(v.clone());
        }
    }
    let common = SourceCommon {
        trusted_proxies: &j.trusted_proxies,
        dangerously_trust_any_peer: j.dangerously_trust_any_peer,
        max_value_bytes: j.max_value_bytes,
        max_groups_bytes: j.max_groups_bytes,
        provisioning: &j.provisioning,
        provision_groups: &j.provision_groups,
        account_key: &j.account_key,
    };
    let kind = match (ok, mapping, header, jwks) {
        (true, Some(mapping), Some(header), Some(jwks)) => Some(SourceKind::Jwt(JwtSettings {
            preset: j.preset.clone(),
            header,
            issuer: j.issuer.clone(),
            audiences: j
                .audience
                .iter()
                .filter(|a| !a.trim().is_empty())
                .cloned()
                .collect(),
            jwks,
            jwks_ca: j.jwks_ca.clone(),
            refresh: j.jwks_refresh.0,
            algorithms,
            leeway_secs: i64::try_from(j.leeway.0.as_secs()).unwrap_or(0),
            mapping,
        })),
        _ => None,
    };
    common_source(c, key, &common, kind)
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The origins return addresses may point at: the configured ones, plus
/// both schemes of every route's exact host (wildcard hosts are not
/// expanded: `*.example.com` would let any subdomain, perhaps a user's own
/// site, receive the redirect).
fn redirect_policy(c: &mut Collector, file: &FileConfig) -> RedirectPolicy {
    let mut origins = Vec::new();
    for (i, o) in file.auth.redirect_origins.iter().enumerate() {
        match Origin::parse(o) {
            Ok(origin) => origins.push(origin),
            Err(e) => c.error(
                format!("auth.redirect_origins[{i}]"),
                format!("`{o}` is not an origin: {e}"),
                "write it like \"https://app.example.com\" (scheme, host, optional port; no path)",
            ),
        }
    }
    for r in &file.routes {
        if let Some(host) = r.host.as_deref().filter(|h| !h.contains('*')) {
            for scheme in ["https", "http"] {
                if let Ok(origin) = Origin::parse(&format!("{scheme}://{host}")) {
                    origins.push(origin);
                }
            }
        }
    }
    RedirectPolicy::new(origins)
}

fn check_login_url(c: &mut Collector, key: &str, url: &str) {
    match url.replace("{url}", "x").parse::<Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
        _ => c.error(
            key,
            format!("`{url}` is not an absolute http(s) URL"),
            "write it like \"https://auth.example.com/?rd={url}\"",
        ),
    }
}

fn route(
    c: &mut Collector,
    i: usize,
    r: &RouteConfig,
    file: &FileConfig,
    has_source: bool,
) -> Option<RouteSettings> {
    let name = r.name.clone().unwrap_or_else(|| format!("route-{i}"));
    let key = format!("route[{i}]");
    let mut ok = true;

    if let Some(h) = &r.host
        && let Err(e) = vestibule_core::route::HostPattern::parse(h)
    {
        c.error(
            format!("{key}.host"),
            e.to_string(),
            "write a hostname such as \"app.example.com\" or \"*.example.com\"",
        );
    }
    if let Err(e) = RouteTable::new([(None, r.path_prefix.as_str())]) {
        c.error(
            format!("{key}.path_prefix"),
            e.to_string(),
            "write a plain path such as \"/api\"",
        );
    }
    let upstream = r.upstream.parse::<Uri>().ok();
    let (authority, base) = match &upstream {
        Some(u)
            if u.scheme_str() == Some("http") && u.authority().is_some() && u.query().is_none() =>
        {
            let base = u.path().trim_end_matches('/').to_owned();
            (u.authority().cloned(), base)
        }
        Some(u) if u.scheme_str() == Some("https") => {
            c.error(
                format!("{key}.upstream"),
                "https upstreams are not supported yet",
                "reach the app over http on a private network or loopback, or put a TLS-terminating sidecar in front of it",
            );
            (None, String::new())
        }
        _ => {
            c.error(
                format!("{key}.upstream"),
                format!("`{}` is not an http URL", r.upstream),
                "write it like \"http://127.0.0.1:3000\"",
            );
            (None, String::new())
        }
    };
    let auth = match r.auth.as_str() {
        "required" => AuthMode::Required,
        "optional" => AuthMode::Optional,
        "public" => AuthMode::Public,
        other => {
            ok = false;
            c.error(
                format!("{key}.auth"),
                format!("unknown auth mode `{other}`"),
                "use \"required\", \"optional\" or \"public\"",
            );
            AuthMode::Required
        }
    };
    if auth == AuthMode::Public && !(r.allow_users.is_empty() && r.allow_groups.is_empty()) {
        c.warn(
            format!("{key}.allow_users"),
            "allow_users and allow_groups are ignored on a public route",
            "remove them, or set auth = \"required\"",
        );
    }
    if auth != AuthMode::Public && !has_source {
        c.warn(
            format!("{key}.auth"),
            "no identity source is configured, so nobody can ever be authenticated on this route",
            "configure [source.headers] or [source.jwt], or set auth = \"public\"",
        );
    }
    if (r.grafana_email || r.grafana_name) && r.profile != "grafana" {
        c.warn(
            format!("{key}.grafana_email"),
            "grafana_email and grafana_name only apply to profile = \"grafana\"",
            "remove them, or set profile = \"grafana\"",
        );
    }
    let kind = match (r.profile.as_str(), &r.custom_profile) {
        ("remote", _) => Some(ProfileKind::Remote),
        ("x-forwarded", _) => Some(ProfileKind::XForwarded),
        ("grafana", _) => Some(ProfileKind::Grafana {
            email: r.grafana_email,
            name: r.grafana_name,
        }),
        ("georchestra", _) => Some(ProfileKind::Georchestra),
        ("custom", None) => {
            c.error(
                format!("{key}.custom_profile"),
                "profile = \"custom\" needs a [route.custom_profile] table",
                "add [route.custom_profile] with headers = { \"X-App-User\" = \"username\" }",
            );
            None
        }
        ("custom", Some(cp)) => custom_profile(c, &key, cp),
        (other, _) => {
            c.error(
                format!("{key}.profile"),
                format!("unknown profile `{other}`"),
                "use remote, x-forwarded, grafana, georchestra or custom",
            );
            None
        }
    };
    let profile = kind.and_then(|k| match HeaderProfile::new(&k) {
        Ok(p) => Some(p),
        Err(e) => {
            c.error(
                format!("{key}.custom_profile"),
                e.to_string(),
                "use valid header names and at least one header",
            );
            None
        }
    });
    if let Some(url) = &r.login_url {
        check_login_url(c, &format!("{key}.login_url"), url);
    }
    let carriers = carriers(c, &key, r, file, auth);
    if r.max_sso_age.is_some_and(|a| a.0.is_zero()) {
        c.error(
            format!("{key}.max_sso_age"),
            "a zero age would refuse every device credential",
            "use e.g. \"30d\", or remove it to use devices.max_sso_age",
        );
    }
    if !ok {
        return None;
    }
    Some(RouteSettings {
        name,
        upstream_authority: authority?,
        upstream_base_path: base,
        policy: RoutePolicy {
            auth,
            allow_users: r.allow_users.clone(),
            allow_groups: r.allow_groups.clone(),
            allow_roles: r.allow_roles.clone(),
        },
        profile: profile?,
        login_url: r.login_url.clone().or_else(|| file.auth.login_url.clone()),
        preserve_host: r.preserve_host,
        max_body_bytes: r.max_body_bytes,
        carriers: carriers?,
        max_sso_age: r.max_sso_age.or(file.devices.max_sso_age).map(|d| d.0),
    })
}

fn carriers(
    c: &mut Collector,
    key: &str,
    r: &RouteConfig,
    file: &FileConfig,
    auth: AuthMode,
) -> Option<Carriers> {
    let mut carriers = Carriers::default();
    if r.credentials.is_empty() {
        return Some(carriers);
    }
    let ckey = format!("{key}.credentials");
    if file.accounts.is_none() {
        c.error(
            &ckey,
            "device credentials belong to accounts, and [accounts] is not configured",
            "add an [accounts] section, or remove credentials",
        );
    }
    if auth == AuthMode::Public {
        c.warn(
            &ckey,
            "credentials are ignored on a public route: nobody is identified there",
            "remove them, or set auth = \"required\"",
        );
    }
    let mut ok = true;
    for name in &r.credentials {
        match name.as_str() {
            "basic" => carriers.basic = true,
            "bearer" => carriers.bearer = true,
            "proxy-authorization" => carriers.proxy_authorization = true,
            "header" => match credential_header_name(&r.credential_header) {
                Some(h) => carriers.header = Some(h),
                None => {
                    ok = false;
                    c.error(
                        format!("{key}.credential_header"),
                        format!(
                            "`{}` cannot carry a device credential (not a header name, or one with another meaning)",
                            r.credential_header
                        ),
                        "keep the default, \"X-Vestibule-Token\"",
                    );
                }
            },
            "query" => {
                if !is_credential_query_name(&r.credential_query) {
                    ok = false;
                    c.error(
                        format!("{key}.credential_query"),
                        format!("`{}` is not a plain parameter name", r.credential_query),
                        "keep the default, \"vestibule_token\"",
                    );
                } else {
                    carriers.query = Some(r.credential_query.clone());
                    c.warn(
                        &ckey,
                        "a credential in the URL ends up in access logs and browser history",
                        "use it only for media URLs that clients cannot send headers with, and prefer short-lived devices",
                    );
                }
            }
            other => {
                ok = false;
                c.error(
                    &ckey,
                    format!("unknown credential carrier `{other}`"),
                    "use \"basic\", \"bearer\", \"proxy-authorization\", \"header\" or \"query\"",
                );
            }
        }
    }
    ok.then_some(carriers)
}

fn custom_profile(
    c: &mut Collector,
    key: &str,
    cp: &super::CustomProfileConfig,
) -> Option<ProfileKind> {
    let mut headers = Vec::new();
    for (name, field) in &cp.headers {
        let f = match field.as_str() {
            "subject" => OutField::Subject,
            "username" => OutField::Username,
            "email" => OutField::Email,
            "name" => OutField::DisplayName,
            "given_name" => OutField::GivenName,
            "family_name" => OutField::FamilyName,
            "groups" => OutField::Groups,
            "org" => OutField::Org,
            other => {
                c.error(
                    format!("{key}.custom_profile.headers.{name}"),
                    format!("unknown field `{other}`"),
                    "use subject, username, email, name, given_name, family_name, groups or org",
                );
                return None;
            }
        };
        headers.push((name.clone(), f));
    }
    if cp.groups_separator.is_empty() || cp.groups_separator.chars().any(char::is_control) {
        c.error(
            format!("{key}.custom_profile.groups_separator"),
            "the separator is empty or has control characters, so group names would run together",
            "use \",\" or another visible separator",
        );
        return None;
    }
    let encoding = match cp.encoding.as_str() {
        "utf8" => OutEncoding::Utf8,
        "rfc2047" => OutEncoding::Rfc2047,
        "base64" => OutEncoding::Base64Prefix,
        other => {
            c.error(
                format!("{key}.custom_profile.encoding"),
                format!("unknown encoding `{other}`"),
                "use utf8, rfc2047 or base64",
            );
            return None;
        }
    };
    Some(ProfileKind::Custom(CustomProfile {
        headers,
        groups_separator: cp.groups_separator.clone(),
        encoding,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_env;

    const BASE: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[source.headers]
dialect = "authelia"
trusted_proxies = ["10.0.0.5"]

[[route]]
upstream = "http://127.0.0.1:3000"
name = "app"
"#;

    const SRC: &str = "dialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]";

    fn diags(text: &str) -> Vec<Diagnostic> {
        let file =
            parse_with_env(text, std::iter::empty()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        validate(&file).1
    }

    fn has(text: &str, severity: Severity, key: &str) {
        let d = diags(text);
        assert!(
            d.iter()
                .any(|d| d.severity == severity && d.key.starts_with(key) && !d.fix.is_empty()),
            "expected {severity:?} at {key}, got {d:#?}\n{text}"
        );
    }

    #[test]
    fn prefixes_differing_only_in_case_with_incomparable_policies_warn() {
        let two = |a: &str, b: &str| {
            format!(
                "{BASE}\n[[route]]\nname = \"a\"\npath_prefix = \"/team\"\nupstream = \"http://127.0.0.1:3000\"\n{a}\n\n[[route]]\nname = \"b\"\npath_prefix = \"/TEAM\"\nupstream = \"http://127.0.0.1:3000\"\n{b}\n"
            )
        };
        has(
            &two("allow_groups = [\"a\"]", "allow_groups = [\"b\"]"),
            Severity::Warning,
            "route[2].path_prefix",
        );
        // Comparable policies: the stricter one applies, nothing to say.
        let d = diags(&two("allow_groups = [\"a\"]", ""));
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn base_is_clean_and_yields_settings() {
        let file = parse_with_env(BASE, std::iter::empty()).unwrap();
        let (s, d) = validate(&file);
        assert!(d.is_empty(), "{d:#?}");
        let s = s.unwrap();
        assert_eq!(s.routes.len(), 1);
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
        // Client IP hops default to the trusted proxies.
        assert!(s.client_ip_hops.contains("10.0.0.5".parse().unwrap()));
    }

    #[test]
    fn every_error() {
        use Severity::Error;
        let cases: &[(&str, &str, &str)] = &[
            (
                "listen = [\"127.0.0.1:8080\"]",
                "listen = [\"localhost\"]",
                "server.listen[0]",
            ),
            (
                "listen = [\"127.0.0.1:8080\"]",
                "listen = []",
                "server.listen",
            ),
            (
                "[server]",
                "[server]\nadmin_listen = \"nope\"",
                "server.admin_listen",
            ),
            (
                "[server]",
                "[server]\nunix = [{ path = \"\" }]",
                "server.unix[0].path",
            ),
            (
                "[server]",
                "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
                "server.tls.cert",
            ),
            (
                "[server]",
                "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
                "server.tls.key",
            ),
            (
                "[server]",
                "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
                "server.tls.listen",
            ),
            (
                "[server]",
                "[log]\nformat = \"xml\"\n[server]",
                "log.format",
            ),
            (
                "dialect = \"authelia\"",
                "dialect = \"keycloak\"",
                "source.headers.dialect",
            ),
            (
                "dialect = \"authelia\"",
                "dialect = \"custom\"",
                "source.headers.custom",
            ),
            (
                SRC,
                "dialect = \"custom\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"bad header\"",
                "source.headers.custom",
            ),
            (
                SRC,
                "dialect = \"custom\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"X-Id\"\ngroups_separator = \"::\"",
                "source.headers.custom",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"10.0.0.5/33\"]",
                "source.headers.trusted_proxies[0]",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"10.0.0.5/8\"]",
                "source.headers.trusted_proxies[0]",
            ),
            (
                "trusted_proxies = [\"10.0.0.5\"]",
                "",
                "source.headers.trusted_proxies",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"0.0.0.0/0\"]",
                "source.headers.trusted_proxies",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"::/0\"]",
                "source.headers.trusted_proxies",
            ),
            (
                "trusted_proxies = [\"10.0.0.5\"]",
                "trusted_proxies = [\"10.0.0.5\"]\nmax_value_bytes = 0",
                "source.headers.max_value_bytes",
            ),
            (
                "trusted_proxies = [\"10.0.0.5\"]",
                "trusted_proxies = [\"10.0.0.5\"]\nmax_groups_bytes = 100000",
                "source.headers.max_groups_bytes",
            ),
            (
                "[server]",
                "[client_ip]\ntrusted_hops = [\"x\"]\n[server]",
                "client_ip.trusted_hops[0]",
            ),
            (
                "[server]",
                "[client_ip]\nheader = \"x-real-ip\"\n[server]",
                "client_ip.header",
            ),
            (
                "[server]",
                "[auth]\nlogin_url = \"/login\"\n[server]",
                "auth.login_url",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nlogin_url = \"ftp://x/\"",
                "route[0].login_url",
            ),
            (
                "http://127.0.0.1:3000",
                "https://127.0.0.1:3000",
                "route[0].upstream",
            ),
            (
                "http://127.0.0.1:3000",
                "127.0.0.1:3000",
                "route[0].upstream",
            ),
            (
                "http://127.0.0.1:3000",
                "http://127.0.0.1:3000/?q=1",
                "route[0].upstream",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nauth = \"maybe\"",
                "route[0].auth",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"nginx\"",
                "route[0].profile",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"custom\"",
                "route[0].custom_profile",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = {}",
                "route[0].custom_profile",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"bad name\" = \"username\" }",
                "route[0].custom_profile",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"password\" }",
                "route[0].custom_profile.headers.X-A",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"email\" }\nencoding = \"latin1\"",
                "route[0].custom_profile.encoding",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nhost = \"bad host\"",
                "route[0].host",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"bearer\"]",
                "route[0].credentials",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"cookie\"]",
                "route[0].credentials",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"header\"]\ncredential_header = \"Authorization\"",
                "route[0].credential_header",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"header\"]\ncredential_header = \"X-authentik-uid\"",
                "route[0].credential_header",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"query\"]\ncredential_query = \"a b\"",
                "route[0].credential_query",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nmax_sso_age = \"0s\"",
                "route[0].max_sso_age",
            ),
            (
                "[server]",
                "[devices]\npairing_ttl = \"2h\"\n[server]",
                "devices.pairing_ttl",
            ),
            (
                "[server]",
                "[devices]\nfailures_per_minute = 0\n[server]",
                "devices.failures_per_minute",
            ),
            (
                "[server]",
                "[devices]\nmax_sso_age = \"0s\"\n[server]",
                "devices.max_sso_age",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\npath_prefix = \"api\"",
                "route[0].path_prefix",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\n[[route]]\nname = \"app\"\npath_prefix = \"/x\"\nupstream = \"http://127.0.0.1:1\"",
                "route[1].name",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\n[[route]]\nname = \"b\"\nupstream = \"http://127.0.0.1:1\"",
                "route",
            ),
        ];
        for (from, to, key) in cases {
            assert!(BASE.contains(from), "{from}");
            let text = BASE.replacen(from, to, 1);
            has(&text, Error, key);
            let file = parse_with_env(&text, std::iter::empty()).unwrap();
            assert!(
                validate(&file).0.is_none(),
                "settings despite an error at {key}"
            );
        }
    }

    #[test]
    fn every_warning() {
        use Severity::Warning;
        let cases: &[(&str, &str, &str)] = &[
            (
                "[server]",
                "[server]\nadmin_listen = \"0.0.0.0:9090\"",
                "server.admin_listen",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ncredentials = [\"query\"]\n[accounts]",
                "route[0].credentials",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nauth = \"public\"\ncredentials = [\"bearer\"]\n[accounts]",
                "route[0].credentials",
            ),
            (
                "[server]",
                "[client_ip]\ntrusted_hops = [\"0.0.0.0/0\"]\n[server]",
                "client_ip.trusted_hops",
            ),
            (
                SRC,
                "dialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"X\"",
                "source.headers.custom",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"0.0.0.0/0\"]\ndangerously_trust_any_peer = true",
                "source.headers.dangerously_trust_any_peer",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"172.17.0.0/16\"]",
                "source.headers.trusted_proxies[0]",
            ),
            (
                "[\"10.0.0.5\"]",
                "[\"192.168.0.0/20\"]",
                "source.headers.trusted_proxies[0]",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\nauth = \"public\"\nallow_groups = [\"a\"]",
                "route[0].allow_users",
            ),
            (
                "name = \"app\"",
                "name = \"app\"\ngrafana_email = true",
                "route[0].grafana_email",
            ),
        ];
        for (from, to, key) in cases {
            assert!(BASE.contains(from), "{from}");
            let text = BASE.replacen(from, to, 1);
            has(&text, Warning, key);
            let file = parse_with_env(&text, std::iter::empty()).unwrap();
            let (settings, d) = validate(&file);
            assert!(
                settings.is_some(),
                "a warning alone must not stop the server: {d:#?}"
            );
        }
        // No routes, and routes with no identity source.
        let no_routes = BASE.split("[[route]]").next().unwrap();
        has(no_routes, Warning, "route");
        let no_source = BASE.replace(
            "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]",
            "",
        );
        has(&no_source, Warning, "route[0].auth");
    }

    #[test]
    fn dangerous_override_is_accepted_only_when_named() {
        let text = BASE.replace(
            "[\"10.0.0.5\"]",
            "[\"0.0.0.0/0\"]\ndangerously_trust_any_peer = true",
        );
        let file = parse_with_env(&text, std::iter::empty()).unwrap();
        let (s, d) = validate(&file);
        assert!(s.is_some());
        assert!(d.iter().all(|d| d.severity == Severity::Warning));
        assert!(d[0].message.contains("ANY"));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::config::parse_with_env;

    #[test]
    fn server_limits_are_bounded() {
        for (line, key) in [
            ("max_connections = 0", "server.max_connections"),
            ("max_request_headers = 2", "server.max_request_headers"),
            ("max_header_bytes = 100", "server.max_header_bytes"),
        ] {
            let text = format!(
                "[server]\n{line}\n[[route]]\nupstream = \"http://127.0.0.1:1\"\nauth = \"public\"\n"
            );
            let (s, d) = validate(&parse_with_env(&text, std::iter::empty()).unwrap());
            assert!(s.is_none());
            assert!(
                d.iter()
                    .any(|d| d.key == key && d.severity == Severity::Error),
                "{d:#?}"
            );
        }
    }
}
