//! Configuration: the TOML file, the `VESTIBULE_…` environment overlay, and
//! validation into [`Settings`], the checked form the server runs on.
//!
//! One module per section owns its file struct (serde, with its documented
//! defaults), its closed choices (serde enums: a bad value is refused at
//! load time with the valid ones listed) and its validation into checked
//! settings. [`validate`] calls every section and then the rules that span
//! sections. It never stops at the first problem: it collects every
//! [`Diagnostic`] so `vestibule check` can show them all, each with the
//! offending key and a fix.

mod accounts;
mod assertions;
mod auth;
mod client_certs;
mod devices;
mod diagnostic;
mod duration;
mod env;
mod keys;
mod ldap;
mod listen;
mod log;
mod oidc;
mod oidc_provider;
mod routes;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vestibule_core::headers::IdentityHeaders;
use vestibule_core::net::TrustedNetworks;
use vestibule_core::redirect::RedirectPolicy;
use vestibule_core::route::RouteTable;

pub use accounts::{
    AccountSettings, AccountsConfig, DEFAULT_ACCOUNT_CACHE_TTL, DEFAULT_DATA_DIR,
    DEFAULT_DB_MAX_CONNECTIONS, DEFAULT_SESSION_ABSOLUTE, DEFAULT_SESSION_IDLE, DatabaseConfig,
    SessionSettings, SessionsConfig,
};
pub use assertions::{
    AssertionSettings, AssertionsConfig, DEFAULT_ASSERTION_HEADER, DEFAULT_ASSERTION_LIFETIME,
};
pub use auth::{AuthConfig, DEFAULT_VERIFY_PATH, ForwardAuthConfig};
pub use client_certs::{ClientCertSettings, ClientCertsConfig, DEFAULT_CERT_VALIDITY};
pub use devices::{
    DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE, DEFAULT_PAIRING_TTL, DeviceSettings, DevicesConfig,
};
pub use diagnostic::{Diagnostic, Severity};
pub use duration::HumanDuration;
pub use env::{ENV_PREFIX, apply_env_overlay};
pub use keys::{
    DEFAULT_PUBLISH_AHEAD, DEFAULT_RELOAD_EVERY, DEFAULT_ROTATE_EVERY, KekSource, KeySettings,
    KeysConfig, SigningAlgorithm, TEST_SHORT_KEY_SCHEDULE_ENV,
};
pub use ldap::{
    DEFAULT_LDAP_POOL_SIZE, DEFAULT_LDAP_TIMEOUT, DisabledEntries, LayoutPreset, LdapConfig,
    LdapSettings, client_tls,
};
pub use listen::{
    ClientIpConfig, DEFAULT_ADMIN_LISTEN, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_HEADERS,
    ForwardedHeaderKind, ServerConfig, TlsConfig, TlsSettings, UnixListenerConfig,
};
pub use log::{LogConfig, LogFormat};
pub use oidc::{
    ClientAuthMethod, ClientSecret, DEFAULT_LOGOUT_TOKEN_MAX_AGE, DEFAULT_OIDC_LEEWAY,
    DEFAULT_RECHECK_EVERY, DEFAULT_RECHECK_GRACE, OIDC_BACKCHANNEL_LOGOUT_PATH, OIDC_CALLBACK_PATH,
    OIDC_LOGIN_PATH, OidcLogin, OidcPreset, OidcSourceConfig,
};
pub use oidc_provider::{
    AccessTokenFormat, ClientDefaults, ClientKind, ConsentMode, DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_CLIENT_SCOPES, DEFAULT_CODE_LIFETIME, DEFAULT_DEVICE_CODE_LIFETIME,
    DEFAULT_DEVICE_POLL_INTERVAL, DEFAULT_ID_TOKEN_LIFETIME, DEFAULT_REFRESH_GRACE,
    DEFAULT_REFRESH_TOKEN_ABSOLUTE, DEFAULT_REFRESH_TOKEN_IDLE, GrantType, OidcClientConfig,
    OidcClientSettings, OidcProviderConfig, OidcProviderSettings, issuer_path,
};
pub use routes::{
    CredentialCarrier, CustomProfileConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_CREDENTIAL_HEADER,
    DEFAULT_CREDENTIAL_QUERY, DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, ProfileEncoding,
    ProfileField, ProfileName, RouteAuth, RouteConfig, RouteSettings, UpstreamConfig,
};
pub use sources::{
    AccountKey, AlgorithmName, CustomDialectConfig, DEFAULT_JWKS_REFRESH, DEFAULT_JWT_LEEWAY,
    DEFAULT_MAX_GROUPS_BYTES, DEFAULT_MAX_VALUE_BYTES, DialectName, HeaderSourceConfig,
    IdentitySource, JwksLocation, JwtClaimsConfig, JwtPreset, JwtSettings, JwtSourceConfig,
    ProvisioningPolicy, SourceCommonConfig, SourceConfig, SourceKind,
};

use diagnostic::Collector;
use routes::RouteContext;

/// The configuration file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[source]`: where identities come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// `[client_ip]`: how the client address is found for logs.
    #[serde(default)]
    pub client_ip: ClientIpConfig,
    /// `[upstream]`: timeouts towards apps.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// `[auth]`: behaviour for unauthenticated requests.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[forward_auth]`: the verify endpoint for nginx, Caddy, Traefik, HAProxy.
    #[serde(default)]
    pub forward_auth: ForwardAuthConfig,
    /// `[database]`: where accounts, sessions and the audit log live.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// `[accounts]`: keep accounts. Default off; the section turns it on.
    pub accounts: Option<AccountsConfig>,
    /// `[sessions]`: browser sessions for vestibule's own pages.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// `[devices]`: per-device credentials and pairing (with accounts).
    #[serde(default)]
    pub devices: DevicesConfig,
    /// `[keys]`: the keys identity assertions are signed with (with accounts).
    #[serde(default)]
    pub keys: KeysConfig,
    /// `[client_certs]`.
    #[serde(default)]
    pub client_certs: ClientCertsConfig,
    /// `[assertions]`: signed identities sent to apps.
    #[serde(default)]
    pub assertions: AssertionsConfig,
    /// `[oidc_provider]`: vestibule as an OpenID Connect provider; absent
    /// (default): off.
    pub oidc_provider: Option<OidcProviderConfig>,
    /// `[[route]]`: the apps.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
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
    /// Proxy worker threads (`server.workers`), each serving every main
    /// listener through its own SO_REUSEPORT socket.
    pub workers: usize,
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
    /// Signing keys (kept in the store, so only used with accounts).
    pub keys: KeySettings,
    /// `[client_certs]`; `None` when off.
    pub client_certs: Option<ClientCertSettings>,
    /// Signed identities for apps, when a route asks for them.
    pub assertions: Option<AssertionSettings>,
    /// The OpenID Connect provider, when configured.
    pub oidc_provider: Option<OidcProviderSettings>,
    /// Routes, in file order. The request path reads them (and
    /// `route_table`, `identity_headers`, `redirects`) from
    /// `AppState::routes`, which a reload can replace, never from here.
    pub routes: Vec<RouteSettings>,
    /// Matcher over `routes`.
    pub route_table: RouteTable,
}

/// Validates `file`. Returns the settings when there is no error, and every
/// diagnostic (errors and warnings) either way.
pub fn validate(file: &FileConfig) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut c = Collector::default();

    let server = file.server.validate(&mut c);
    let log = file.log.validate(&mut c);
    let upstream = file.upstream.validate(&mut c);
    let identity_source = file.source.validate(&mut c);
    let client_ip_hops = file
        .client_ip
        .validate(&mut c, identity_source.as_ref().map(|s| &s.trusted));
    // With [source.oidc], vestibule's own public origin (the redirect
    // URL's) is a return address too: the OIDC login sends people back
    // to the app they came from through it.
    let own_host = identity_source
        .as_ref()
        .and_then(IdentitySource::oidc)
        .and_then(|o| o.redirect_url.authority().map(|a| a.as_str().to_owned()));
    let redirects = file.auth.validate(
        &mut c,
        file.routes
            .iter()
            .map(|r| r.host.as_deref())
            .chain(std::iter::once(own_host.as_deref())),
    );
    let verify_path = file.forward_auth.validate(&mut c);
    let accounts = file
        .accounts
        .as_ref()
        .and_then(|a| a.validate(&mut c, &file.database, file.source.any_enabled()));
    let sessions = file
        .sessions
        .validate(&mut c, file.accounts.is_some() && file.server.tls.is_none());
    let devices = file.devices.validate(&mut c);
    let keys_in_postgres = file.accounts.is_some()
        && file.database.url.as_deref().is_some_and(|u| {
            vestibule_store::Backend::of_url(u) == Ok(vestibule_store::Backend::Postgres)
        });
    let keys = file.keys.validate(&mut c, keys_in_postgres);
    let client_certs = file.client_certs.validate(
        &mut c,
        file.accounts.is_some(),
        file.server.tls.is_some(),
        identity_source.is_some(),
        &client_certs::browser_hosts(file),
    );
    let assertions = file.assertions.validate(
        &mut c,
        file.routes.iter().any(|r| r.assertion),
        file.accounts.is_some(),
    );
    let oidc_provider = file
        .oidc_provider
        .as_ref()
        .and_then(|p| p.validate(&mut c, file.accounts.is_some(), file.devices.max_sso_age));
    check_roles(&mut c, file);

    if file.routes.is_empty() {
        c.warn(
            "route",
            "no [[route]] is configured: every request will get 404",
            "add a [[route]] with an upstream",
        );
    }
    // With [source.oidc], browsers without a session go to vestibule's own
    // OIDC login unless auth.login_url says otherwise.
    let login_url = file.auth.login_url.clone().or_else(|| {
        identity_source.as_ref().and_then(|s| match &s.kind {
            SourceKind::Oidc(o) => Some(o.login_url_template()),
            _ => None,
        })
    });
    if identity_source
        .as_ref()
        .and_then(IdentitySource::oidc)
        .is_some()
        && file.accounts.is_none()
    {
        c.error(
            "source.oidc",
            "the OIDC login keeps its sessions in the store, which needs [accounts]",
            "add an [accounts] section (and [database])",
        );
    }
    let cx = RouteContext {
        login_url: login_url.as_deref(),
        max_sso_age: file.devices.max_sso_age,
        accounts: file.accounts.is_some(),
        has_source: identity_source.is_some(),
        provider: file.oidc_provider.is_some(),
    };
    let routes: Vec<RouteSettings> = file
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.validate(&mut c, i, &cx))
        .collect();
    check_route_names(&mut c, &routes);
    check_case_twins(&mut c, file, &routes);
    // Each route's policy goes into the table, so that a path whose
    // case-folded reading reaches another route is handled under the
    // strictest of them (a case-insensitive app serves `/ADMINS` as
    // `/admins`).
    let route_table = route_table(&mut c, file)
        .filter(|_| routes.len() == file.routes.len())
        .and_then(|t| t.with_policies(routes.iter().map(|r| r.policy.clone()).collect()));
    let identity_headers = identity_headers(
        client_certs.as_ref(),
        identity_source.as_ref(),
        &routes,
        &file.assertions,
    );

    let settings = match route_table {
        Some(route_table) if !c.has_error() && routes.len() == file.routes.len() => {
            Some(Settings {
                listen: server.listen,
                unix: server.unix,
                tls: server.tls,
                admin_listen: server.admin_listen,
                header_read_timeout: server.header_read_timeout,
                max_connections: server.max_connections,
                workers: server.workers,
                max_request_headers: server.max_request_headers,
                max_header_bytes: server.max_header_bytes,
                log_json: log.json,
                log_level: log.level,
                identity_source,
                client_ip_hops,
                client_ip_header: file.client_ip.header,
                identity_headers,
                connect_timeout: upstream.connect_timeout,
                response_timeout: upstream.response_timeout,
                pool_idle_timeout: upstream.pool_idle_timeout,
                verify_path,
                login_url,
                logout_url: file.auth.logout_url.clone(),
                redirects,
                accounts,
                sessions,
                devices,
                keys,
                client_certs,
                assertions,
                oidc_provider,
                routes,
                route_table,
            })
        }
        _ => None,
    };
    (settings, c.diags)
}

/// Every role a route allows must be defined in `[accounts.roles]`.
fn check_roles(c: &mut Collector, file: &FileConfig) {
    let known: Vec<&str> = file
        .accounts
        .iter()
        .flat_map(|a| a.roles.keys())
        .map(String::as_str)
        .collect();
    for (i, r) in file.routes.iter().enumerate() {
        for role in &r.allow_roles {
            if !known.contains(&role.as_str()) {
                c.error(
                    format!("route[{i}].allow_roles"),
                    format!("role `{role}` is not defined in [accounts.roles]"),
                    "define it, e.g. [accounts.roles] admin = [\"admins\"]",
                );
            }
        }
    }
}

/// Route names label logs and metrics, so they must be unique.
fn check_route_names(c: &mut Collector, routes: &[RouteSettings]) {
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
}

/// Two prefixes that differ only in letter case are one prefix to a
/// case-insensitive app; when neither route's policy is stricter, every
/// request under them is refused (400), which is worth saying up front.
fn check_case_twins(c: &mut Collector, file: &FileConfig, routes: &[RouteSettings]) {
    if routes.len() != file.routes.len() {
        return;
    }
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
}

/// The matcher over every route; two routes with the same host and prefix
/// would make the choice ambiguous.
fn route_table(c: &mut Collector, file: &FileConfig) -> Option<RouteTable> {
    match RouteTable::new(
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
    }
}

/// Every header that could carry an identity: the built-in spellings, the
/// source's own and every route's profile. All are stripped from requests
/// before forwarding, so a client cannot send one past vestibule.
fn identity_headers(
    client_certs: Option<&ClientCertSettings>,
    source: Option<&IdentitySource>,
    routes: &[RouteSettings],
    assertions: &AssertionsConfig,
) -> IdentityHeaders {
    // The assertion header is ours, on every route, whether or not any
    // route sends one: a client's copy never reaches an app.
    let mut headers = IdentityHeaders::builtin().with_names([assertions.header.as_str()]);
    // The configured client-certificate headers, under every spelling.
    if let Some(src) = &client_certs.and_then(|c| c.forwarded.as_ref()) {
        headers = headers.with_names([src.header.as_str()]);
        headers = headers.with_names(src.verify_header.iter().map(String::as_str));
    }
    match source.map(|s| &s.kind) {
        Some(SourceKind::Headers(d)) => headers = headers.with_names(d.header_names()),
        Some(SourceKind::Jwt(j)) => headers = headers.with_names([j.header.as_str()]),
        Some(SourceKind::Oidc(_)) | None => {}
    }
    for r in routes {
        headers = headers.with_names(r.profile.header_names().map(|n| n.as_str()));
    }
    headers
}

/// Why the configuration could not even be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// TOML syntax, an unknown key, a wrong type or an unknown choice.
    Parse(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Self::Parse(e) => write!(f, "{e}"),
        }
    }
}

/// Parses TOML text with the environment overlay applied.
///
/// A wrong type, an unknown key or an unknown choice is reported with the
/// key's full path (`route[0].auth`), and with the variable that set it
/// when it came from the environment.
pub fn parse_with_env<I>(text: &str, env: I) -> Result<FileConfig, LoadError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut value: toml::Table =
        toml::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
    let from_env = apply_env_overlay(&mut value, env, env::struct_fields::<FileConfig>())
        .map_err(LoadError::Parse)?;
    serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().trim_end();
        LoadError::Parse(if path == "." {
            message.to_owned()
        } else {
            // `key: message`, as `vestibule check` prints a diagnostic.
            match from_env.iter().find(|(key, _)| *key == path) {
                Some((_, var)) => format!("{path}: {message} (set by {var})"),
                None => format!("{path}: {message}"),
            }
        })
    })
}

/// Reads `path` and applies the process environment.
pub fn load(path: &std::path::Path) -> Result<FileConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io(path.to_owned(), e))?;
    parse_with_env(&text, std::env::vars())
}

#[cfg(test)]
mod tests;

/// `text` with the environment `env`, loaded; the error as text.
#[cfg(test)]
fn parse_for_test(text: &str, env: &[(&str, &str)]) -> Result<FileConfig, String> {
    parse_with_env(
        text,
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .map_err(|e| e.to_string())
}
