//! `[oidc_provider]` and `[[oidc_provider.client]]`: vestibule as an
//! OpenID Connect provider for apps (issue 14). Clients declared here are
//! GitOps clients; `vestibule clients` manages others in the store.

use std::time::Duration;

use serde::Deserialize;

use super::diagnostic::{Collector, Severity};
use super::{HumanDuration, SigningAlgorithm};

/// Default `oidc_provider.code_lifetime`.
pub const DEFAULT_CODE_LIFETIME: &str = "60s";
/// Default `oidc_provider.access_token_lifetime`.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: &str = "10m";
/// Default `oidc_provider.id_token_lifetime`.
pub const DEFAULT_ID_TOKEN_LIFETIME: &str = "10m";
/// Default `oidc_provider.refresh_token_idle`.
pub const DEFAULT_REFRESH_TOKEN_IDLE: &str = "14d";
/// Default `oidc_provider.refresh_token_absolute`.
pub const DEFAULT_REFRESH_TOKEN_ABSOLUTE: &str = "90d";
/// Default `oidc_provider.refresh_grace`.
pub const DEFAULT_REFRESH_GRACE: &str = "10s";
/// Default `oidc_provider.device_code_lifetime`.
pub const DEFAULT_DEVICE_CODE_LIFETIME: &str = "10m";
/// Default `oidc_provider.device_poll_interval` (RFC 8628 §3.2: "If no
/// value is provided, clients MUST use 5 as the default").
pub const DEFAULT_DEVICE_POLL_INTERVAL: &str = "5s";
/// Default `oidc_provider.client.scopes`.
pub const DEFAULT_CLIENT_SCOPES: &[&str] =
    &["openid", "profile", "email", "groups", "offline_access"];

/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes
/// is RECOMMENDED."
const MAX_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Longer than this, a grace retry stops being a retry (RFC 9700 §4.14.2
/// wants the window of a stolen rotated token short).
const MAX_REFRESH_GRACE: Duration = Duration::from_secs(60);
/// A device code lives at most this long: the user code is 8 letters of
/// 20, and the longer codes live the more of them a guesser can hit
/// (RFC 8628 §5.1, §5.2).
const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The slowest polling interval announced: slower than this and a user
/// waits on the device long after approving.
const MAX_DEVICE_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// `[oidc_provider]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer identifier (OIDC Discovery §3, RFC 8414 §2): an https URL
    /// without query or fragment (http only on a loopback host), compared
    /// byte for byte, never taken from `Host` or forwarded headers.
    /// Required.
    pub issuer: String,
    /// How long an authorization code may be redeemed. Default `"60s"`, at
    /// most `"10m"`.
    #[serde(default = "default_code_lifetime")]
    pub code_lifetime: HumanDuration,
    /// Access token lifetime unless a client sets its own. Default `"10m"`.
    #[serde(default = "default_access_token_lifetime")]
    pub access_token_lifetime: HumanDuration,
    /// ID token lifetime. Default `"10m"`.
    #[serde(default = "default_id_token_lifetime")]
    pub id_token_lifetime: HumanDuration,
    /// A refresh token expires when unused this long (sliding), unless a
    /// client sets its own. Default `"14d"`.
    #[serde(default = "default_refresh_token_idle")]
    pub refresh_token_idle: HumanDuration,
    /// No refresh token of a grant lives longer than this after the login
    /// (absolute cap), unless a client sets its own. Default `"90d"`.
    #[serde(default = "default_refresh_token_absolute")]
    pub refresh_token_absolute: HumanDuration,
    /// After a rotation, a retry with the rotated token gets the same
    /// successor tokens for this long; later it revokes the family.
    /// Default `"10s"`, at most `"60s"`.
    #[serde(default = "default_refresh_grace")]
    pub refresh_grace: HumanDuration,
    /// How long a device code (RFC 8628 §3.2 `expires_in`) may be
    /// approved and redeemed. Default `"10m"`, at most `"30m"`.
    #[serde(default = "default_device_code_lifetime")]
    pub device_code_lifetime: HumanDuration,
    /// The polling interval announced with a device code (RFC 8628 §3.2
    /// `interval`), whole seconds. Default `"5s"`, from `"1s"` to `"60s"`.
    #[serde(default = "default_device_poll_interval")]
    pub device_poll_interval: HumanDuration,
    /// SSO freshness for refresh tokens: a refresh is refused
    /// (`invalid_grant`) when the account has not been seen through the
    /// SSO front (or signed in) for longer than this, as device
    /// credentials are. Default: `devices.max_sso_age` (none when that is
    /// unset: then only the refresh lifetimes bound a grant).
    #[serde(default)]
    pub max_sso_age: Option<HumanDuration>,
    /// Clients declared in the file. Default none.
    #[serde(default, rename = "client")]
    pub clients: Vec<OidcClientConfig>,
}

/// Public or confidential (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// Holds a secret (a server-side app).
    Confidential,
    /// Cannot keep a secret (native, mobile, single-page apps).
    Public,
}

/// A grant type a client may use (RFC 6749 §4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4: confidential clients only.
    ClientCredentials,
    /// RFC 8628 (the device authorization grant): TVs, CLIs and other
    /// devices without a browser; public or confidential.
    DeviceCode,
}

/// Whether the consent page is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentMode {
    /// Ask the user, remember the answer per user, client and scopes.
    #[default]
    Explicit,
    /// First-party apps: never ask.
    Implicit,
}

/// How access tokens are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// A random string, looked up in the store (revocable at once).
    #[default]
    Opaque,
    /// A signed JWT (RFC 9068).
    Jwt,
}

/// `[[oidc_provider.client]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcClientConfig {
    /// The `client_id`: letters, digits, `.`, `_` and `-`, at most 64.
    /// Required.
    pub client_id: String,
    /// Shown on the consent page. Default: the client id.
    pub name: Option<String>,
    /// `"confidential"` or `"public"`. Required.
    pub kind: ClientKind,
    /// SHA-256 of the client secret, 64 hex digits (`printf %s "$secret" |
    /// sha256sum`). A confidential client needs it or `jwks_uri`; refused
    /// for a public one.
    pub secret_sha256: Option<String>,
    /// The URL of the client's JWK Set (RFC 7591 §2 `jwks_uri`): the client
    /// authenticates with `private_key_jwt` (OIDC Core §9, RFC 7523 §2.2),
    /// a JWT signed with one of those keys, instead of a secret. For a
    /// confidential client, instead of `secret_sha256`. Default none.
    pub jwks_uri: Option<String>,
    /// Redirect URIs, matched exactly (RFC 9700 §4.1.3); a loopback
    /// `http://127.0.0.1/…` or `http://[::1]/…` one matches any port
    /// (RFC 8252 §7.3). At least one.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, matched exactly. Default
    /// none.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types. Default `["authorization_code", "refresh_token"]`.
    #[serde(default = "default_grants")]
    pub grants: Vec<GrantType>,
    /// Scopes the client may ask for. Default `["openid", "profile",
    /// "email", "groups", "offline_access"]`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// `"explicit"` (default) or `"implicit"` (no consent page).
    #[serde(default)]
    pub consent: ConsentMode,
    /// The ID token's signature algorithm: `"RS256"` (default: what every
    /// relying party accepts), `"ES256"` or `"EdDSA"`.
    #[serde(default = "default_id_token_alg")]
    pub id_token_alg: SigningAlgorithm,
    /// `"opaque"` (default) or `"jwt"` (RFC 9068).
    #[serde(default)]
    pub access_token_format: AccessTokenFormat,
    /// This client's access token lifetime. Default: the provider's.
    pub access_token_lifetime: Option<HumanDuration>,
    /// This client's sliding refresh lifetime. Default: the provider's.
    pub refresh_token_idle: Option<HumanDuration>,
    /// This client's absolute refresh cap. Default: the provider's.
    pub refresh_token_absolute: Option<HumanDuration>,
    /// OIDC Back-Channel Logout 1.0 endpoint. Default none.
    pub backchannel_logout_uri: Option<String>,
    /// Only members of one of these groups may use the client. Default
    /// none (every account).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Whether PKCE (RFC 7636, S256) is required. Default `true`; `false`
    /// only for confidential clients that send none (Gitea, Portainer,
    /// MinIO). A request that sends a challenge always needs its verifier.
    #[serde(default = "default_true")]
    pub require_pkce: bool,
}

fn default_code_lifetime() -> HumanDuration {
    HumanDuration::parse(DEFAULT_CODE_LIFETIME).unwrap_or_default()
}
fn default_access_token_lifetime() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ACCESS_TOKEN_LIFETIME).unwrap_or_default()
}
fn default_id_token_lifetime() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ID_TOKEN_LIFETIME).unwrap_or_default()
}
fn default_refresh_token_idle() -> HumanDuration {
    HumanDuration::parse(DEFAULT_REFRESH_TOKEN_IDLE).unwrap_or_default()
}
fn default_refresh_token_absolute() -> HumanDuration {
    HumanDuration::parse(DEFAULT_REFRESH_TOKEN_ABSOLUTE).unwrap_or_default()
}
fn default_refresh_grace() -> HumanDuration {
    HumanDuration::parse(DEFAULT_REFRESH_GRACE).unwrap_or_default()
}
fn default_device_code_lifetime() -> HumanDuration {
    HumanDuration::parse(DEFAULT_DEVICE_CODE_LIFETIME).unwrap_or_default()
}
fn default_device_poll_interval() -> HumanDuration {
    HumanDuration::parse(DEFAULT_DEVICE_POLL_INTERVAL).unwrap_or_default()
}
fn default_grants() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
}
fn default_scopes() -> Vec<String> {
    DEFAULT_CLIENT_SCOPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
fn default_id_token_alg() -> SigningAlgorithm {
    SigningAlgorithm::Rs256
}
fn default_true() -> bool {
    true
}

/// `[oidc_provider]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProviderSettings {
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// Code lifetime.
    pub code_lifetime: Duration,
    /// ID token lifetime.
    pub id_token_lifetime: Duration,
    /// Grace window for a retried refresh.
    pub refresh_grace: Duration,
    /// Device code lifetime (RFC 8628 §3.2 `expires_in`).
    pub device_code_lifetime: Duration,
    /// Device polling interval (RFC 8628 §3.2 `interval`), whole seconds.
    pub device_poll_interval: Duration,
    /// SSO freshness a refresh requires (`None`: not checked).
    pub max_sso_age: Option<Duration>,
    /// The lifetimes a client gets unless it sets its own (stored clients
    /// are checked against them when read).
    pub client_defaults: ClientDefaults,
    /// The file's clients.
    pub clients: Vec<OidcClientSettings>,
}

/// The provider's lifetimes, which a client may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDefaults {
    /// `oidc_provider.access_token_lifetime`.
    pub access_token_lifetime: Duration,
    /// `oidc_provider.refresh_token_idle`.
    pub refresh_token_idle: Duration,
    /// `oidc_provider.refresh_token_absolute`.
    pub refresh_token_absolute: Duration,
}

/// One client, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClientSettings {
    /// `client_id`.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Public or confidential.
    pub kind: ClientKind,
    /// SHA-256 of the secret (confidential clients without `jwks_uri`).
    pub secret_hash: Option<[u8; 32]>,
    /// The client's JWK Set URL (`private_key_jwt` clients).
    pub jwks_uri: Option<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grants: Vec<GrantType>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Consent mode.
    pub consent: ConsentMode,
    /// ID token algorithm.
    pub id_token_alg: SigningAlgorithm,
    /// Access token format.
    pub access_token_format: AccessTokenFormat,
    /// Access token lifetime.
    pub access_token_lifetime: Duration,
    /// Sliding refresh lifetime.
    pub refresh_token_idle: Duration,
    /// Absolute refresh cap.
    pub refresh_token_absolute: Duration,
    /// Back-channel logout endpoint.
    pub backchannel_logout_uri: Option<String>,
    /// Groups allowed to use the client (empty: all).
    pub allowed_groups: Vec<String>,
    /// PKCE required.
    pub require_pkce: bool,
}

/// Whether `host` (as written in a URL authority) is a loopback literal or
/// `localhost`.
fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// The problem with `uri` as a redirect URI, if any: absolute, no
/// fragment (RFC 6749 §3.1.2); `https`, `http` on a loopback host
/// (RFC 8252 §7.3, §8.3), or a private-use scheme with a period in it
/// (RFC 8252 §7.1: reverse domain name, e.g. `app.immich:/cb`).
pub(crate) fn redirect_uri_problem(uri: &str) -> Option<&'static str> {
    if uri.contains('#') {
        return Some("a redirect URI must not have a fragment (RFC 6749 §3.1.2)");
    }
    if uri
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Some("a redirect URI has no spaces or control characters");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Some("a redirect URI must be absolute (RFC 6749 §3.1.2)");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Some("a redirect URI must start with a scheme");
    }
    match scheme {
        "https" | "http" => {
            let Some(after) = rest.strip_prefix("//") else {
                return Some("an http(s) redirect URI must have a host");
            };
            let authority = after.split(['/', '?']).next().unwrap_or("");
            if authority.is_empty() || authority.contains('@') {
                return Some("an http(s) redirect URI must have a host and no user info");
            }
            let host = match authority.rsplit_once(':') {
                Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        h
                    } else {
                        authority
                    }
                }
                _ => authority,
            };
            if scheme == "http" && !is_loopback_host(&host.to_ascii_lowercase()) {
                return Some(
                    "plain http is allowed only on a loopback host (RFC 8252 §8.3); use https",
                );
            }
            None
        }
        _ if !scheme.contains('.') => Some(
            "a private-use scheme must be a reverse domain name with a period, e.g. `app.example` (RFC 8252 §7.1)",
        ),
        _ => None,
    }
}

/// The problem with `issuer`, if any (OIDC Discovery §3; RFC 8414 §2).
fn issuer_problem(issuer: &str) -> Option<&'static str> {
    if issuer.contains(['?', '#']) {
        return Some("the issuer has no query or fragment");
    }
    match redirect_uri_problem(issuer) {
        Some(_) => Some("the issuer must be an https URL (http only on a loopback host)"),
        None if issuer.starts_with("https://") || issuer.starts_with("http://") => None,
        None => Some("the issuer must be an https URL (http only on a loopback host)"),
    }
}

/// The path of an issuer URL (empty for none), without a trailing `/`.
pub fn issuer_path(issuer: &str) -> &str {
    let rest = issuer.split_once("://").map_or("", |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.trim_end_matches('/')
}

/// `s` as 32 bytes from 64 hex digits.
fn sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

impl OidcProviderConfig {
    /// Checks `[oidc_provider]`. `accounts`: the store exists (codes,
    /// grants and tokens live there).
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        accounts: bool,
        devices_max_sso_age: Option<HumanDuration>,
    ) -> Option<OidcProviderSettings> {
        if !accounts {
            c.error(
                "oidc_provider",
                "the provider keeps codes, grants and tokens in the store, and [accounts] is not configured",
                "configure [accounts] and [database]",
            );
        }
        if let Some(problem) = issuer_problem(&self.issuer) {
            c.error(
                "oidc_provider.issuer",
                problem,
                "e.g. issuer = \"https://sso.example.com\"",
            );
        }
        if self.code_lifetime.0.is_zero() || self.code_lifetime.0 > MAX_CODE_LIFETIME {
            c.error(
                "oidc_provider.code_lifetime",
                "a code must live more than 0 s and at most 10 minutes (RFC 6749 §4.1.2)",
                "keep the default, \"60s\"",
            );
        }
        if self.refresh_grace.0 > MAX_REFRESH_GRACE {
            c.error(
                "oidc_provider.refresh_grace",
                "a grace window over a minute leaves a stolen rotated token usable too long (RFC 9700 §4.14.2)",
                "keep the default, \"10s\"",
            );
        }
        if self.max_sso_age.is_some_and(|a| a.0.is_zero()) {
            c.error(
                "oidc_provider.max_sso_age",
                "a freshness of 0 s would refuse every refresh",
                "use e.g. \"30d\", or remove it to use devices.max_sso_age",
            );
        }
        if self.device_code_lifetime.0.is_zero()
            || self.device_code_lifetime.0 > MAX_DEVICE_CODE_LIFETIME
        {
            c.error(
                "oidc_provider.device_code_lifetime",
                "a device code must live more than 0 s and at most 30 minutes (RFC 8628 §5.2: the longer it lives, the more user codes a guesser can hit)",
                "keep the default, \"10m\"",
            );
        }
        let interval = self.device_poll_interval.0;
        if interval < Duration::from_secs(1)
            || interval > MAX_DEVICE_POLL_INTERVAL
            || interval.subsec_nanos() != 0
        {
            c.error(
                "oidc_provider.device_poll_interval",
                "the polling interval is announced in whole seconds (RFC 8628 §3.2) and must be from 1 s to 60 s",
                "keep the default, \"5s\"",
            );
        }
        let lifetimes = [
            (
                "oidc_provider.access_token_lifetime",
                self.access_token_lifetime.0,
            ),
            ("oidc_provider.id_token_lifetime", self.id_token_lifetime.0),
            (
                "oidc_provider.refresh_token_idle",
                self.refresh_token_idle.0,
            ),
        ];
        for (field, d) in lifetimes {
            if d.is_zero() {
                c.error(field, "must be more than 0 s", "keep the default");
            }
        }
        if self.refresh_token_absolute.0 < self.refresh_token_idle.0 {
            c.error(
                "oidc_provider.refresh_token_absolute",
                "the absolute cap is shorter than the sliding lifetime",
                "make refresh_token_absolute at least refresh_token_idle",
            );
        }
        // vestibule's own endpoints live under /.vestibule/, where the
        // discovery document of an issuer with such a path would never be
        // reached (OIDC Discovery §4.1 puts it under the issuer's path).
        if issuer_path(&self.issuer).starts_with(crate::app::OWN_PREFIX) {
            c.error(
                "oidc_provider.issuer",
                "the issuer's path is under /.vestibule/, where its discovery document cannot be served",
                "use an issuer without a path, e.g. \"https://sso.example.com\"",
            );
        }
        let defaults = ClientDefaults {
            access_token_lifetime: self.access_token_lifetime.0,
            refresh_token_idle: self.refresh_token_idle.0,
            refresh_token_absolute: self.refresh_token_absolute.0,
        };
        let mut clients = Vec::new();
        for (i, client) in self.clients.iter().enumerate() {
            if self.clients[..i]
                .iter()
                .any(|o| o.client_id == client.client_id)
            {
                c.error(
                    format!("oidc_provider.client[{i}].client_id"),
                    format!("two clients have the id `{}`", client.client_id),
                    "give each client its own id",
                );
            }
            let prefix = format!("oidc_provider.client[{i}]");
            if let Some(s) = client.validate(c, &prefix, defaults) {
                clients.push(s);
            }
        }
        Some(OidcProviderSettings {
            issuer: self.issuer.clone(),
            code_lifetime: self.code_lifetime.0,
            id_token_lifetime: self.id_token_lifetime.0,
            refresh_grace: self.refresh_grace.0,
            device_code_lifetime: self.device_code_lifetime.0,
            device_poll_interval: self.device_poll_interval.0,
            max_sso_age: self.max_sso_age.or(devices_max_sso_age).map(|d| d.0),
            client_defaults: defaults,
            clients,
        })
    }
}

impl OidcClientConfig {
    /// A client kept in the store (`vestibule clients`): its registration
    /// (`settings_json`, the fields of `[[oidc_provider.client]]` as a JSON
    /// object, without `client_id` and `secret_sha256`, which are columns
    /// of their own) checked by the same rules as a client of the file.
    /// `Err` holds the problems, for the log.
    pub fn from_stored(
        client_id: &str,
        secret_hash: Option<&[u8; 32]>,
        settings_json: &str,
        defaults: ClientDefaults,
    ) -> Result<OidcClientSettings, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(settings_json).map_err(|e| format!("not JSON: {e}"))?;
        let Some(object) = value.as_object_mut() else {
            return Err("not a JSON object".into());
        };
        for column in ["client_id", "secret_sha256"] {
            if object.contains_key(column) {
                return Err(format!("`{column}` is a column, not a setting"));
            }
        }
        object.insert("client_id".into(), client_id.into());
        if let Some(hash) = secret_hash {
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            object.insert("secret_sha256".into(), hex.into());
        }
        let config: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let mut c = Collector::default();
        match config.validate(&mut c, &format!("client `{client_id}`"), defaults) {
            Some(s) if !c.diags.iter().any(|d| d.severity == Severity::Error) => Ok(s),
            _ => Err(c
                .diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| format!("{}: {}", d.key, d.message))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    fn validate(
        &self,
        c: &mut Collector,
        prefix: &str,
        provider: ClientDefaults,
    ) -> Option<OidcClientSettings> {
        let key = |field: &str| format!("{prefix}.{field}");
        let errors = |c: &Collector| {
            c.diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count()
        };
        let errors_before = errors(c);
        let id_ok = !self.client_id.is_empty()
            && self.client_id.len() <= 64
            && self
                .client_id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !id_ok {
            c.error(
                key("client_id"),
                format!("`{}` is not a client id", self.client_id),
                "use letters, digits, `.`, `_` and `-`, at most 64, e.g. \"grafana\"",
            );
        }
        let secret_hash = match (self.kind, &self.secret_sha256) {
            (ClientKind::Confidential, None) if self.jwks_uri.is_some() => None,
            (ClientKind::Confidential, None) => {
                c.error(
                    key("secret_sha256"),
                    "a confidential client needs the SHA-256 of its secret, or a jwks_uri",
                    "secret_sha256 = the output of `printf %s \"$SECRET\" | sha256sum`, jwks_uri = its JWK Set URL, or kind = \"public\"",
                );
                None
            }
            (ClientKind::Public, Some(_)) => {
                c.error(
                    key("secret_sha256"),
                    "a public client has no secret (RFC 6749 §2.1)",
                    "remove secret_sha256, or kind = \"confidential\"",
                );
                None
            }
            (ClientKind::Public, None) => None,
            (ClientKind::Confidential, Some(hex)) => {
                let parsed = sha256_hex(hex);
                if parsed.is_none() {
                    c.error(
                        key("secret_sha256"),
                        "not 64 hex digits",
                        "printf %s \"$SECRET\" | sha256sum",
                    );
                }
                parsed
            }
        };
        if let Some(uri) = &self.jwks_uri {
            if self.kind == ClientKind::Public {
                c.error(
                    key("jwks_uri"),
                    "a public client does not authenticate (RFC 6749 §2.1); a key set makes it confidential",
                    "kind = \"confidential\", or remove jwks_uri",
                );
            } else if self.secret_sha256.is_some() {
                // Two ways to authenticate one client: which one a request
                // must use would be ambiguous, and the secret a second
                // thing to leak.
                c.error(
                    key("jwks_uri"),
                    "both secret_sha256 and jwks_uri: a client authenticates one way",
                    "keep jwks_uri (private_key_jwt) and remove secret_sha256, or the reverse",
                );
            }
            if !vestibule_core::oidc::is_secure_url(uri) {
                c.error(
                    key("jwks_uri"),
                    format!("`{uri}` is not an https URL (http only to loopback)"),
                    "e.g. \"https://gate.example.com/.vestibule/jwks.json\"",
                );
            }
        }
        if self.grants.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            c.error(
                key("redirect_uris"),
                "a client with the authorization_code grant needs at least one redirect URI",
                "e.g. redirect_uris = [\"https://grafana.example.com/login/generic_oauth\"]",
            );
        }
        for (j, uri) in self.redirect_uris.iter().enumerate() {
            if let Some(problem) = redirect_uri_problem(uri) {
                c.error(
                    format!("{}[{j}]", key("redirect_uris")),
                    problem,
                    "give the exact URI the app sends",
                );
            }
        }
        for (j, uri) in self.post_logout_redirect_uris.iter().enumerate() {
            if let Some(problem) = redirect_uri_problem(uri) {
                c.error(
                    format!("{}[{j}]", key("post_logout_redirect_uris")),
                    problem,
                    "give the exact URI the app sends",
                );
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri
            && (redirect_uri_problem(uri).is_some()
                || !(uri.starts_with("https://") || uri.starts_with("http://")))
        {
            c.error(
                key("backchannel_logout_uri"),
                "the back-channel logout URI must be an https URL (http only on loopback)",
                "e.g. \"https://app.example.com/backchannel-logout\"",
            );
        }
        if self.grants.is_empty() {
            c.error(key("grants"), "no grant type", "keep the default");
        }
        if self.kind == ClientKind::Public && self.grants.contains(&GrantType::ClientCredentials) {
            c.error(
                key("grants"),
                "client_credentials is for confidential clients only (RFC 6749 §4.4)",
                "remove it, or make the client confidential",
            );
        }
        if self.kind == ClientKind::Public && !self.require_pkce {
            c.error(
                key("require_pkce"),
                "a public client must use PKCE (RFC 9700 §2.1.1)",
                "remove require_pkce = false",
            );
        }
        for (j, scope) in self.scopes.iter().enumerate() {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let ok = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !ok {
                c.error(
                    format!("{}[{j}]", key("scopes")),
                    format!("`{scope}` is not a scope token (RFC 6749 §3.3)"),
                    "printable ASCII without spaces, `\"` or `\\`",
                );
            }
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            c.warn(
                key("scopes"),
                "without `openid` the client gets plain OAuth, no ID token",
                "add \"openid\" unless this is a service client",
            );
        }
        if errors(c) > errors_before {
            return None;
        }
        let idle = self
            .refresh_token_idle
            .map_or(provider.refresh_token_idle, |d| d.0);
        let absolute = self
            .refresh_token_absolute
            .map_or(provider.refresh_token_absolute, |d| d.0);
        if absolute < idle {
            c.error(
                key("refresh_token_absolute"),
                "the absolute cap is shorter than the sliding lifetime",
                "make refresh_token_absolute at least refresh_token_idle",
            );
        }
        Some(OidcClientSettings {
            client_id: self.client_id.clone(),
            name: self.name.clone().unwrap_or_else(|| self.client_id.clone()),
            kind: self.kind,
            secret_hash,
            jwks_uri: self.jwks_uri.clone(),
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            grants: self.grants.clone(),
            scopes: self.scopes.clone(),
            consent: self.consent,
            id_token_alg: self.id_token_alg,
            access_token_format: self.access_token_format,
            access_token_lifetime: self
                .access_token_lifetime
                .map_or(provider.access_token_lifetime, |d| d.0),
            refresh_token_idle: idle,
            refresh_token_absolute: absolute,
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            allowed_groups: self.allowed_groups.clone(),
            require_pkce: self.require_pkce,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_per_rfc_8252_and_6749() {
        for ok in [
            "https://grafana.example.com/login/generic_oauth",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
            "app.immich:///oauth-callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(redirect_uri_problem(ok), None, "{ok}");
        }
        for bad in [
            "/relative",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://user@127.0.0.1/cb",
            "myapp:/cb",
            "https:///nohost",
            "https://a.example/c b",
            "1http://x/",
        ] {
            assert!(redirect_uri_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn issuers_per_discovery_section_3() {
        assert_eq!(issuer_problem("https://sso.example.com"), None);
        assert_eq!(issuer_problem("https://sso.example.com/realm"), None);
        assert_eq!(issuer_problem("http://127.0.0.1:8080"), None);
        for bad in [
            "https://sso.example.com?x=1",
            "https://sso.example.com#f",
            "http://sso.example.com",
            "app.example:/x",
            "sso.example.com",
        ] {
            assert!(issuer_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn secret_digests_are_64_hex_digits() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(sha256_hex(hex).unwrap()[0], 0x9f);
        assert_eq!(sha256_hex(&hex.to_uppercase()).unwrap()[31], 0x08);
        assert_eq!(sha256_hex(&hex[1..]), None);
        assert_eq!(sha256_hex(&format!("{}zz", &hex[2..])), None);
        assert_eq!(sha256_hex("ü".repeat(32).as_str()), None);
    }

    #[test]
    fn a_jwks_uri_replaces_the_secret_of_a_confidential_client() {
        let d = ClientDefaults {
            access_token_lifetime: Duration::from_secs(600),
            refresh_token_idle: Duration::from_secs(60),
            refresh_token_absolute: Duration::from_secs(120),
        };
        let keyed = OidcClientConfig::from_stored(
            "gate",
            None,
            r#"{"kind":"confidential","jwks_uri":"https://gate.example/.vestibule/jwks.json","redirect_uris":["https://gate.example/cb"]}"#,
            d,
        )
        .unwrap();
        assert_eq!(keyed.secret_hash, None);
        assert_eq!(
            keyed.jwks_uri.as_deref(),
            Some("https://gate.example/.vestibule/jwks.json")
        );
        // Both a secret and keys: ambiguous. A public client with keys, a
        // key set over plain http to another host: refused.
        let secret = [7u8; 32];
        let both = OidcClientConfig::from_stored(
            "gate",
            Some(&secret),
            r#"{"kind":"confidential","jwks_uri":"https://gate.example/jwks","redirect_uris":["https://gate.example/cb"]}"#,
            d,
        )
        .unwrap_err();
        assert!(both.contains("jwks_uri"), "{both}");
        for bad in [
            r#"{"kind":"public","jwks_uri":"https://gate.example/jwks","redirect_uris":["https://gate.example/cb"]}"#,
            r#"{"kind":"confidential","jwks_uri":"http://gate.example/jwks","redirect_uris":["https://gate.example/cb"]}"#,
            r#"{"kind":"confidential","redirect_uris":["https://gate.example/cb"]}"#,
        ] {
            assert!(
                OidcClientConfig::from_stored("gate", None, bad, d).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_clients_are_checked_like_the_files() {
        let d = ClientDefaults {
            access_token_lifetime: Duration::from_secs(600),
            refresh_token_idle: Duration::from_secs(60),
            refresh_token_absolute: Duration::from_secs(120),
        };
        let ok = OidcClientConfig::from_stored(
            "cli",
            None,
            r#"{"kind":"public","redirect_uris":["http://127.0.0.1/cb"],"consent":"implicit"}"#,
            d,
        )
        .unwrap();
        assert_eq!(ok.client_id, "cli");
        assert_eq!(ok.access_token_lifetime, Duration::from_secs(600));
        assert!(ok.require_pkce);
        let secret = [7u8; 32];
        let conf = OidcClientConfig::from_stored(
            "app",
            Some(&secret),
            r#"{"kind":"confidential","redirect_uris":["https://a.example/cb"]}"#,
            d,
        )
        .unwrap();
        assert_eq!(conf.secret_hash, Some(secret));
        for bad in [
            "not json",
            "[]",
            r#"{"kind":"public"}"#,
            r#"{"kind":"public","redirect_uris":["http://a.example/cb"]}"#,
            r#"{"kind":"public","redirect_uris":["http://127.0.0.1/cb"],"client_id":"x"}"#,
            r#"{"kind":"public","redirect_uris":["http://127.0.0.1/cb"],"unknown":1}"#,
            r#"{"kind":"confidential","redirect_uris":["http://127.0.0.1/cb"]}"#,
        ] {
            assert!(
                OidcClientConfig::from_stored("c", None, bad, d).is_err(),
                "{bad}"
            );
        }
        assert_eq!(issuer_path("https://a.example"), "");
        assert_eq!(issuer_path("https://a.example/"), "");
        assert_eq!(issuer_path("https://a.example/realm/"), "/realm");
    }
}
