//! Configuration: the TOML file, the `VESTIBULE_…` environment overlay, and
//! validation into [`Settings`], the checked form the server runs on.
//!
//! Every field has a documented default (the `DEFAULT_*` constants and the
//! `Default` impls below, mirrored in README.md). Validation never stops at
//! the first problem: it collects every [`Diagnostic`] so `vestibule check`
//! can show them all, each with the offending key and a fix.

mod duration;
mod env;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use duration::HumanDuration;
pub use env::{ENV_PREFIX, apply_env_overlay};
pub use validate::{
    AccountSettings, Diagnostic, ForwardedHeaderKind, IdentitySource, JwksLocation, JwtSettings,
    RouteSettings, SessionSettings, Settings, Severity, SourceKind, TlsSettings, validate,
};

/// Default plain-HTTP listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin (metrics) listener: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Default time a client has to send its request headers (slowloris guard).
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// Default upstream connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "5s";
/// Default time an upstream has to start its response.
pub const DEFAULT_RESPONSE_TIMEOUT: &str = "60s";
/// Default idle time before a pooled upstream connection is closed.
pub const DEFAULT_POOL_IDLE_TIMEOUT: &str = "90s";
/// Default bound on one identity value, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024;
/// Default bound on a groups value, in bytes.
pub const DEFAULT_MAX_GROUPS_BYTES: usize = 8192;

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
    /// `[[route]]`: the apps.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-HTTP listeners. Default `["127.0.0.1:8080"]`. Port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Unix socket listeners. Default none.
    #[serde(default)]
    pub unix: Vec<UnixListenerConfig>,
    /// TLS listener. Default none.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Admin listener for `/metrics`. Default `"127.0.0.1:9090"`; `""` turns it off.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Time a client has to send its request headers. Default `"10s"`.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// Most connections served at once, over all listeners; further clients
    /// wait in the kernel's accept queue. Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most header lines in one request (431 beyond). Default 100.
    #[serde(default = "default_max_request_headers")]
    pub max_request_headers: usize,
    /// Largest request head (request line plus headers), in bytes (431
    /// beyond). Default 65536.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            unix: Vec::new(),
            tls: None,
            admin_listen: default_admin_listen(),
            header_read_timeout: default_header_read_timeout(),
            max_connections: default_max_connections(),
            max_request_headers: default_max_request_headers(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

/// Default `server.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10000;
/// Default `server.max_request_headers`.
pub const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;
/// Default `server.max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 65536;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_request_headers() -> usize {
    DEFAULT_MAX_REQUEST_HEADERS
}
fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}

fn default_listen() -> Vec<String> {
    vec![DEFAULT_LISTEN.to_owned()]
}
fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.to_owned()
}
fn default_header_read_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_HEADER_READ_TIMEOUT).unwrap_or_default()
}

/// `[[server.unix]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixListenerConfig {
    /// Socket path (required). A stale socket file is replaced.
    pub path: PathBuf,
    /// Whether peers on this socket are trusted like `trusted_proxies`.
    /// Default `false`. Only the front proxy should be able to connect.
    #[serde(default)]
    pub trusted: bool,
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// TLS listeners (required, e.g. `["0.0.0.0:8443"]`).
    pub listen: Vec<String>,
    /// PEM certificate chain (required).
    pub cert: PathBuf,
    /// PEM private key (required).
    pub key: PathBuf,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default) or `"json"`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter. Default `"info"`. `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}
fn default_log_format() -> String {
    "text".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// `[source]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `[source.headers]`: trusted headers from an SSO front. Default off.
    pub headers: Option<HeaderSourceConfig>,
    /// `[source.jwt]`: signed identity assertions (Pomerium, Cloudflare
    /// Access, authentik, any OIDC issuer). Default off. At most one of
    /// `[source.headers]` and `[source.jwt]` may be on.
    pub jwt: Option<JwtSourceConfig>,
}

/// Default `source.jwt.jwks_refresh`.
pub const DEFAULT_JWKS_REFRESH: &str = "1h";
/// Default `source.jwt.leeway`.
pub const DEFAULT_JWT_LEEWAY: &str = "60s";

/// `[source.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSourceConfig {
    /// Whether the source is on. Default `true` once the section exists.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `pomerium`, `cloudflare`, `authentik` or `oidc` (required): picks
    /// the header and the claim names.
    pub preset: String,
    /// Header carrying the assertion. Default from the preset:
    /// `X-Pomerium-Jwt-Assertion`, `Cf-Access-Jwt-Assertion`,
    /// `X-authentik-jwt`; `oidc` has none, so it must be set.
    pub header: Option<String>,
    /// The exact `iss` every assertion must carry (required).
    pub issuer: String,
    /// Accepted `aud` values; an assertion must name at least one
    /// (required, no default).
    #[serde(default)]
    pub audience: Vec<String>,
    /// Where the signing keys are published (JWK Set, RFC 7517). HTTPS, or
    /// plain HTTP to a loopback address only. One of `jwks_url` and
    /// `jwks_file` is required.
    pub jwks_url: Option<String>,
    /// A JWK Set file, read at start-up and on every refresh.
    pub jwks_file: Option<PathBuf>,
    /// PEM file of CA certificates for `jwks_url`. Default: the Mozilla
    /// root store built into vestibule.
    pub jwks_ca: Option<PathBuf>,
    /// How often the keys are fetched again. An assertion signed with an
    /// unknown key also triggers a fetch (at most one every 10 s).
    /// Default `"1h"`.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Accepted signature algorithms. Default: every one vestibule
    /// supports (RS256/384/512, PS256/384/512, ES256/384, EdDSA); never
    /// `none` or HMAC.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default `"60s"`.
    #[serde(default = "default_jwt_leeway")]
    pub leeway: HumanDuration,
    /// `[source.jwt.claims]`: claim names overriding the preset's.
    #[serde(default)]
    pub claims: JwtClaimsConfig,
    /// Peers allowed to present assertions: IPs or CIDRs (required, no
    /// default). The signature proves who signed; the peer check keeps a
    /// leaked assertion from being replayed by anyone who can reach
    /// vestibule.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Allows `0.0.0.0/0` or `::/0` in `trusted_proxies`. Default `false`.
    #[serde(default)]
    pub dangerously_trust_any_peer: bool,
    /// Bound on one identity value, in bytes. Default 1024.
    #[serde(default = "default_max_value")]
    pub max_value_bytes: usize,
    /// Bound on all group names together, in bytes. Default 8192.
    #[serde(default = "default_max_groups")]
    pub max_groups_bytes: usize,
    /// As in `[source.headers]`. Default `"approval"`.
    #[serde(default = "default_provisioning")]
    pub provisioning: String,
    /// As in `[source.headers]`. Default none.
    #[serde(default)]
    pub provision_groups: Vec<String>,
    /// As in `[source.headers]`: `"subject"` (default: the `sub` claim) or
    /// `"username"`.
    #[serde(default = "default_account_key")]
    pub account_key: String,
}

/// `[source.jwt.claims]`: every field defaults to the preset's claim name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtClaimsConfig {
    /// The stable subject. Preset default `sub`.
    pub subject: Option<String>,
    /// The login name. Preset default e.g. `preferred_username` (falls back
    /// to the email, then the subject).
    pub username: Option<String>,
    /// The email address. Preset default `email`.
    pub email: Option<String>,
    /// The display name. Preset default `name`.
    pub display_name: Option<String>,
    /// Group names (a string or an array of strings). Preset default
    /// `groups` (none for `cloudflare`).
    pub groups: Option<String>,
}

fn default_jwks_refresh() -> HumanDuration {
    HumanDuration::parse(DEFAULT_JWKS_REFRESH).unwrap_or_default()
}
fn default_jwt_leeway() -> HumanDuration {
    HumanDuration::parse(DEFAULT_JWT_LEEWAY).unwrap_or_default()
}

/// `[source.headers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSourceConfig {
    /// Whether the source is on. Default `true` once the section exists.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `authelia`, `authentik`, `oauth2-proxy`, `georchestra`, `tailscale` or
    /// `custom` (required).
    pub dialect: String,
    /// Peers allowed to send identity headers: IPs or CIDRs (required, no
    /// default). A bare IP means that one host.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Allows `0.0.0.0/0` or `::/0` in `trusted_proxies`. Default `false`.
    /// With it, **anyone who can reach vestibule can be anyone**.
    #[serde(default)]
    pub dangerously_trust_any_peer: bool,
    /// Bound on one identity value, in bytes. Default 1024.
    #[serde(default = "default_max_value")]
    pub max_value_bytes: usize,
    /// Bound on the groups value, in bytes. Default 8192.
    #[serde(default = "default_max_groups")]
    pub max_groups_bytes: usize,
    /// `[source.headers.custom]`: required when `dialect = "custom"`.
    pub custom: Option<CustomDialectConfig>,
    /// With `[accounts]`: what happens the first time an identity is seen.
    /// `"existing-only"`, `"auto"`, `"auto-if-group"` or `"approval"`
    /// (default: a pending account an admin must approve).
    #[serde(default = "default_provisioning")]
    pub provisioning: String,
    /// Groups that may be auto-provisioned with `provisioning = "auto-if-group"`.
    #[serde(default)]
    pub provision_groups: Vec<String>,
    /// What keys an account: `"subject"` (default: the dialect's stable id)
    /// or `"username"` (only if the IdP never reuses or renames usernames).
    #[serde(default = "default_account_key")]
    pub account_key: String,
}

fn default_provisioning() -> String {
    "approval".to_owned()
}
fn default_account_key() -> String {
    "subject".to_owned()
}

/// Default directory for the embedded SQLite database.
pub const DEFAULT_DATA_DIR: &str = "vestibule-data";
/// Default pool size.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 8;

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host/db` to share one store between
    /// instances. Default: embedded SQLite at `<data_dir>/vestibule.db`.
    pub url: Option<String>,
    /// Directory of the SQLite file (created if missing). Default `"vestibule-data"`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Connection pool size. Default 8.
    #[serde(default = "default_db_max_connections")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: default_data_dir(),
            max_connections: default_db_max_connections(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_db_max_connections() -> u32 {
    DEFAULT_DB_MAX_CONNECTIONS
}

/// Default `accounts.cache_ttl`.
pub const DEFAULT_ACCOUNT_CACHE_TTL: &str = "30s";

/// `[accounts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// Role name to the groups that grant it, e.g. `admin = ["admins"]`.
    /// Routes can then `allow_roles = ["admin"]`. Default none.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Longest time a cached account may be used without the database
    /// confirming it. Changes are pushed to every instance within a second;
    /// this bounds how long a decision outlives a database outage. Default `"30s"`.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// Groups whose members may approve, disable and enable accounts on
    /// `/.vestibule/admin`. Default none (use the `vestibule users` CLI).
    #[serde(default)]
    pub admin_groups: Vec<String>,
}

fn default_cache_ttl() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ACCOUNT_CACHE_TTL).unwrap_or_default()
}

/// Default session idle timeout.
pub const DEFAULT_SESSION_IDLE: &str = "30m";
/// Default session absolute timeout.
pub const DEFAULT_SESSION_ABSOLUTE: &str = "12h";

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session unused for this long ends. Default `"30m"`.
    #[serde(default = "default_session_idle")]
    pub idle_timeout: HumanDuration,
    /// A session ends this long after it began, used or not. Default `"12h"`.
    #[serde(default = "default_session_absolute")]
    pub absolute_timeout: HumanDuration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_timeout: default_session_idle(),
            absolute_timeout: default_session_absolute(),
        }
    }
}

fn default_session_idle() -> HumanDuration {
    HumanDuration::parse(DEFAULT_SESSION_IDLE).unwrap_or_default()
}
fn default_session_absolute() -> HumanDuration {
    HumanDuration::parse(DEFAULT_SESSION_ABSOLUTE).unwrap_or_default()
}

/// Default `devices.pairing_ttl`.
pub const DEFAULT_PAIRING_TTL: &str = "5m";
/// Default `devices.failures_per_minute`.
pub const DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE: u32 = 10;
/// Default `route.credential_header`.
pub const DEFAULT_CREDENTIAL_HEADER: &str = "X-Vestibule-Token";
/// Default `route.credential_query`.
pub const DEFAULT_CREDENTIAL_QUERY: &str = "vestibule_token";

/// `[devices]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// A device credential stops working when its owner has not been seen
    /// through the SSO front for this long; one browser sign-in revives it.
    /// Routes can override it. Default none (off).
    pub max_sso_age: Option<HumanDuration>,
    /// How long a pairing code may be redeemed and confirmed. Default `"5m"`.
    #[serde(default = "default_pairing_ttl")]
    pub pairing_ttl: HumanDuration,
    /// Failed credential attempts allowed per client address, and per
    /// Basic user name, each minute; more get 429 with `Retry-After`.
    /// Default 10.
    #[serde(default = "default_failures_per_minute")]
    pub failures_per_minute: u32,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            max_sso_age: None,
            pairing_ttl: default_pairing_ttl(),
            failures_per_minute: default_failures_per_minute(),
        }
    }
}

fn default_pairing_ttl() -> HumanDuration {
    HumanDuration::parse(DEFAULT_PAIRING_TTL).unwrap_or_default()
}
fn default_failures_per_minute() -> u32 {
    DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE
}
fn default_credential_header() -> String {
    DEFAULT_CREDENTIAL_HEADER.to_owned()
}
fn default_credential_query() -> String {
    DEFAULT_CREDENTIAL_QUERY.to_owned()
}

fn yes() -> bool {
    true
}
fn default_max_value() -> usize {
    DEFAULT_MAX_VALUE_BYTES
}
fn default_max_groups() -> usize {
    DEFAULT_MAX_GROUPS_BYTES
}

/// `[source.headers.custom]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDialectConfig {
    /// Header with the stable subject (required).
    pub subject: String,
    /// Header with the username. Default: the subject header.
    pub username: Option<String>,
    /// Header with the email. Default none.
    pub email: Option<String>,
    /// Header with the display name. Default none.
    pub display_name: Option<String>,
    /// Header with the groups. Default none.
    pub groups: Option<String>,
    /// Groups separator: `","` (default), `";"`, `"|"` or `" "`.
    #[serde(default = "default_sep")]
    pub groups_separator: String,
    /// Header with the organisation. Default none.
    pub org: Option<String>,
    /// Decode `{base64}`-prefixed values. Default `false`.
    #[serde(default)]
    pub decode_base64_prefix: bool,
    /// Decode RFC 2047 encoded-words. Default `false`.
    #[serde(default)]
    pub decode_rfc2047: bool,
}

fn default_sep() -> String {
    ",".to_owned()
}

/// `[client_ip]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    /// Proxies whose `X-Forwarded-For`/`Forwarded` entries are believed when
    /// finding the client address (for logs and rate limits, never for
    /// trust). Default: `source.headers.trusted_proxies`.
    pub trusted_hops: Option<Vec<String>>,
    /// `"x-forwarded-for"` (default) or `"forwarded"` (RFC 7239).
    pub header: Option<String>,
}

/// `[upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Connect timeout. Default `"5s"`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time to the first byte of the response headers. Default `"60s"`.
    #[serde(default = "default_response_timeout")]
    pub response_timeout: HumanDuration,
    /// Idle pooled connections are closed after this. Default `"90s"`.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: HumanDuration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
            pool_idle_timeout: default_pool_idle_timeout(),
        }
    }
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_CONNECT_TIMEOUT).unwrap_or_default()
}
fn default_response_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_RESPONSE_TIMEOUT).unwrap_or_default()
}
fn default_pool_idle_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_POOL_IDLE_TIMEOUT).unwrap_or_default()
}

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

/// Default path of the forward-auth endpoint.
pub const DEFAULT_VERIFY_PATH: &str = "/.vestibule/verify";

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

/// `[[route]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in logs and metrics. Default `route-N` (N from 0).
    pub name: Option<String>,
    /// Host (`app.example.com` or `*.example.com`). Default: any host.
    pub host: Option<String>,
    /// Path prefix, segment-wise. Default `"/"`.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Upstream base URL, `http://host:port` (required).
    pub upstream: String,
    /// `"required"` (default), `"optional"` or `"public"`.
    #[serde(default = "default_auth")]
    pub auth: String,
    /// Usernames or subjects allowed. Default: everyone authenticated.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Groups allowed. Default: everyone authenticated.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Roles allowed (from `[accounts.roles]`). Default: everyone authenticated.
    #[serde(default)]
    pub allow_roles: Vec<String>,
    /// Header profile: `remote` (default), `x-forwarded`, `grafana`,
    /// `georchestra` or `custom`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// `grafana` profile: also send `X-WEBAUTH-EMAIL`. Default `false`.
    #[serde(default)]
    pub grafana_email: bool,
    /// `grafana` profile: also send `X-WEBAUTH-NAME`. Default `false`.
    #[serde(default)]
    pub grafana_name: bool,
    /// `[route.custom_profile]`: required when `profile = "custom"`.
    pub custom_profile: Option<CustomProfileConfig>,
    /// Overrides `auth.login_url` for this route. Default: `auth.login_url`.
    pub login_url: Option<String>,
    /// Send the client's `Host` to the upstream (else the upstream's own).
    /// Default `true`.
    #[serde(default = "yes")]
    pub preserve_host: bool,
    /// Largest request body, in bytes; larger ones get 413. Default: no
    /// limit (photo and video uploads can be large).
    pub max_body_bytes: Option<u64>,
    /// Where device credentials are accepted on this route: any of
    /// `"basic"`, `"bearer"`, `"proxy-authorization"`, `"header"`,
    /// `"query"`. Default none: only the SSO front's identity.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// The header read by the `"header"` carrier. Default `"X-Vestibule-Token"`.
    #[serde(default = "default_credential_header")]
    pub credential_header: String,
    /// The query parameter read by the `"query"` carrier. Default `"vestibule_token"`.
    #[serde(default = "default_credential_query")]
    pub credential_query: String,
    /// Overrides `devices.max_sso_age` for this route. Default: `devices.max_sso_age`.
    pub max_sso_age: Option<HumanDuration>,
}

fn default_prefix() -> String {
    "/".to_owned()
}
fn default_auth() -> String {
    "required".to_owned()
}
fn default_profile() -> String {
    "remote".to_owned()
}

/// `[route.custom_profile]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomProfileConfig {
    /// Header name to field: `subject`, `username`, `email`, `name`,
    /// `given_name`, `family_name`, `groups`, `org` (required, non-empty).
    pub headers: BTreeMap<String, String>,
    /// Separator for groups. Default `","`.
    #[serde(default = "default_sep")]
    pub groups_separator: String,
    /// `"utf8"` (default), `"rfc2047"` or `"base64"` (`{base64}` prefix).
    #[serde(default = "default_encoding")]
    pub encoding: String,
}

fn default_encoding() -> String {
    "utf8".to_owned()
}

/// Why the configuration could not even be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// TOML syntax, an unknown key or a wrong type.
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
pub fn parse_with_env<I>(text: &str, env: I) -> Result<FileConfig, LoadError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut value: toml::Table =
        toml::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
    apply_env_overlay(&mut value, env).map_err(LoadError::Parse)?;
    FileConfig::deserialize(toml::Value::Table(value)).map_err(|e| LoadError::Parse(e.to_string()))
}

/// Reads `path` and applies the process environment.
pub fn load(path: &std::path::Path) -> Result<FileConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io(path.to_owned(), e))?;
    parse_with_env(&text, std::env::vars())
}
