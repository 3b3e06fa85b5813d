//! `[[route]]` (the apps, their access rules and header profiles) and
//! `[upstream]` (timeouts towards them).

use std::collections::BTreeMap;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use vestibule_core::credential::{Carriers, credential_header_name, is_credential_query_name};
use vestibule_core::policy::{AuthMode, RoutePolicy};
use vestibule_core::profile::{CustomProfile, HeaderProfile, OutEncoding, OutField, ProfileKind};
use vestibule_core::route::RouteTable;

use super::HumanDuration;
use super::diagnostic::{Collector, check_login_url};
use super::listen::zero_timeout;
use super::sources::default_sep;

/// Default upstream connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "5s";
/// Default time an upstream has to start its response.
pub const DEFAULT_RESPONSE_TIMEOUT: &str = "60s";
/// Default idle time before a pooled upstream connection is closed.
pub const DEFAULT_POOL_IDLE_TIMEOUT: &str = "90s";
/// Default `route.credential_header`.
pub const DEFAULT_CREDENTIAL_HEADER: &str = "X-Vestibule-Token";
/// Default `route.credential_query`.
pub const DEFAULT_CREDENTIAL_QUERY: &str = "vestibule_token";

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

/// `[upstream]`, checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct UpstreamSettings {
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) pool_idle_timeout: Duration,
}

impl UpstreamConfig {
    /// Checks `[upstream]`.
    pub(super) fn validate(&self, c: &mut Collector) -> UpstreamSettings {
        for (key, d) in [
            ("upstream.connect_timeout", self.connect_timeout),
            ("upstream.response_timeout", self.response_timeout),
            ("upstream.pool_idle_timeout", self.pool_idle_timeout),
        ] {
            if d.0.is_zero() {
                zero_timeout(c, key);
            }
        }
        UpstreamSettings {
            connect_timeout: self.connect_timeout.0,
            response_timeout: self.response_timeout.0,
            pool_idle_timeout: self.pool_idle_timeout.0,
        }
    }
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
    #[serde(default)]
    pub auth: RouteAuth,
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
    #[serde(default)]
    pub profile: ProfileName,
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
    pub credentials: Vec<CredentialCarrier>,
    /// The header read by the `"header"` carrier. Default `"X-Vestibule-Token"`.
    #[serde(default = "default_credential_header")]
    pub credential_header: String,
    /// The query parameter read by the `"query"` carrier. Default `"vestibule_token"`.
    #[serde(default = "default_credential_query")]
    pub credential_query: String,
    /// Overrides `devices.max_sso_age` for this route. Default: `devices.max_sso_age`.
    pub max_sso_age: Option<HumanDuration>,
    /// Send the app a signed identity assertion (`[assertions]`). Default
    /// `false`.
    #[serde(default)]
    pub assertion: bool,
    /// The assertion's `aud`. Default: the route's `host` (required when
    /// the route has no exact host).
    pub assertion_audience: Option<String>,
    /// `[route.access_tokens]`: accept vestibule's own OAuth access tokens
    /// (`[oidc_provider]`). Default: none accepted.
    pub access_tokens: Option<AccessTokensConfig>,
}

/// `[route.access_tokens]`: which of the provider's access tokens the
/// route accepts, as `Authorization: Bearer` (and, with `header = true`,
/// in `credential_header`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessTokensConfig {
    /// The clients whose tokens are accepted (required, non-empty; no
    /// wildcard: a token is good only where its client is named).
    pub clients: Vec<String>,
    /// Scopes every token must carry. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Accept `client_credentials` tokens, which have no user: the
    /// identity is then the client. Default `false`.
    #[serde(default)]
    pub service_clients: bool,
    /// Also read the token from the route's `credential_header`. Default
    /// `false`.
    #[serde(default)]
    pub header: bool,
}

/// `[route.access_tokens]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRoute {
    /// Which tokens pass.
    pub rule: vestibule_core::access_token::AccessRule,
    /// Where they are read.
    pub carriers: vestibule_core::access_token::AccessCarriers,
}

/// `route.auth`: who may pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteAuth {
    /// An identity is required.
    #[default]
    Required,
    /// An identity is forwarded when present.
    Optional,
    /// Nobody's identity is forwarded.
    Public,
}

impl From<RouteAuth> for AuthMode {
    fn from(a: RouteAuth) -> Self {
        match a {
            RouteAuth::Required => Self::Required,
            RouteAuth::Optional => Self::Optional,
            RouteAuth::Public => Self::Public,
        }
    }
}

/// `route.profile`: the headers the app is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// `Remote-User`, `Remote-Groups`, `Remote-Email`, `Remote-Name`.
    #[default]
    Remote,
    /// `X-Forwarded-User`, `X-Forwarded-Groups`, `X-Forwarded-Email`.
    XForwarded,
    /// Grafana's `X-WEBAUTH-*`.
    Grafana,
    /// geOrchestra's `sec-*`.
    Georchestra,
    /// Names from `[route.custom_profile]`.
    Custom,
}

/// One entry of `route.credentials`: where a device credential is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialCarrier {
    /// `Authorization: Basic`.
    Basic,
    /// `Authorization: Bearer`.
    Bearer,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// The `credential_header` header.
    Header,
    /// The `credential_query` parameter.
    Query,
}

/// `[route.custom_profile]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomProfileConfig {
    /// Header name to field: `subject`, `username`, `email`, `name`,
    /// `given_name`, `family_name`, `groups`, `org` (required, non-empty).
    pub headers: BTreeMap<String, ProfileField>,
    /// Separator for groups. Default `","`.
    #[serde(default = "default_sep")]
    pub groups_separator: String,
    /// `"utf8"` (default), `"rfc2047"` or `"base64"` (`{base64}` prefix).
    #[serde(default)]
    pub encoding: ProfileEncoding,
}

/// A value of `route.custom_profile.headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    /// The stable subject.
    Subject,
    /// The login name.
    Username,
    /// The email address.
    Email,
    /// The display name.
    #[serde(rename = "name")]
    DisplayName,
    /// The given name.
    GivenName,
    /// The family name.
    FamilyName,
    /// The groups, joined by `groups_separator`.
    Groups,
    /// The organisation.
    Org,
}

impl From<ProfileField> for OutField {
    fn from(f: ProfileField) -> Self {
        match f {
            ProfileField::Subject => Self::Subject,
            ProfileField::Username => Self::Username,
            ProfileField::Email => Self::Email,
            ProfileField::DisplayName => Self::DisplayName,
            ProfileField::GivenName => Self::GivenName,
            ProfileField::FamilyName => Self::FamilyName,
            ProfileField::Groups => Self::Groups,
            ProfileField::Org => Self::Org,
        }
    }
}

/// `route.custom_profile.encoding`: how values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileEncoding {
    /// Plain UTF-8.
    #[default]
    Utf8,
    /// RFC 2047 encoded-words when needed.
    Rfc2047,
    /// `{base64}` followed by the base64 of the value.
    #[serde(rename = "base64")]
    Base64Prefix,
}

impl From<ProfileEncoding> for OutEncoding {
    fn from(e: ProfileEncoding) -> Self {
        match e {
            ProfileEncoding::Utf8 => Self::Utf8,
            ProfileEncoding::Rfc2047 => Self::Rfc2047,
            ProfileEncoding::Base64Prefix => Self::Base64Prefix,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_prefix() -> String {
    "/".to_owned()
}
fn default_credential_header() -> String {
    DEFAULT_CREDENTIAL_HEADER.to_owned()
}
fn default_credential_query() -> String {
    DEFAULT_CREDENTIAL_QUERY.to_owned()
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
    /// The `aud` of the assertion sent to the app; `None`: no assertion.
    pub assertion_audience: Option<String>,
    /// The provider's access tokens this route accepts; `None`: none.
    pub access_tokens: Option<AccessTokenRoute>,
}

/// What a route takes from other sections.
pub(super) struct RouteContext<'a> {
    /// `auth.login_url`.
    pub(super) login_url: Option<&'a str>,
    /// `devices.max_sso_age`.
    pub(super) max_sso_age: Option<HumanDuration>,
    /// Whether `[accounts]` is present.
    pub(super) accounts: bool,
    /// Whether an identity source is on.
    pub(super) has_source: bool,
    /// Whether `[oidc_provider]` is present.
    pub(super) provider: bool,
}

impl RouteConfig {
    /// Checks the route at index `i`.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        i: usize,
        cx: &RouteContext<'_>,
    ) -> Option<RouteSettings> {
        let name = self.name.clone().unwrap_or_else(|| format!("route-{i}"));
        let key = format!("route[{i}]");

        if let Some(h) = &self.host
            && let Err(e) = vestibule_core::route::HostPattern::parse(h)
        {
            c.error(
                format!("{key}.host"),
                e.to_string(),
                "write a hostname such as \"app.example.com\" or \"*.example.com\"",
            );
        }
        if let Err(e) = RouteTable::new([(None, self.path_prefix.as_str())]) {
            c.error(
                format!("{key}.path_prefix"),
                e.to_string(),
                "write a plain path such as \"/api\"",
            );
        } else if let Some(rest) = self.path_prefix.strip_prefix(crate::app::OWN_PREFIX)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            // Everything under /.vestibule/ is vestibule's, unknown paths
            // included (they answer 404): such a route could never be reached.
            c.error(
                format!("{key}.path_prefix"),
                format!(
                    "`{}` is under /.vestibule/, which is vestibule's own",
                    self.path_prefix
                ),
                "pick a prefix outside /.vestibule/",
            );
        }
        let (authority, base) = self.upstream(c, &key);
        let auth = AuthMode::from(self.auth);
        if auth == AuthMode::Public
            && !(self.allow_users.is_empty() && self.allow_groups.is_empty())
        {
            c.warn(
                format!("{key}.allow_users"),
                "allow_users and allow_groups are ignored on a public route",
                "remove them, or set auth = \"required\"",
            );
        }
        if auth != AuthMode::Public && !cx.has_source {
            c.warn(
                format!("{key}.auth"),
                "no identity source is configured, so nobody can ever be authenticated on this route",
                "configure [source.headers] or [source.jwt], or set auth = \"public\"",
            );
        }
        if (self.grafana_email || self.grafana_name) && self.profile != ProfileName::Grafana {
            c.warn(
                format!("{key}.grafana_email"),
                "grafana_email and grafana_name only apply to profile = \"grafana\"",
                "remove them, or set profile = \"grafana\"",
            );
        }
        let kind = match (self.profile, &self.custom_profile) {
            (ProfileName::Remote, _) => Some(ProfileKind::Remote),
            (ProfileName::XForwarded, _) => Some(ProfileKind::XForwarded),
            (ProfileName::Grafana, _) => Some(ProfileKind::Grafana {
                email: self.grafana_email,
                name: self.grafana_name,
            }),
            (ProfileName::Georchestra, _) => Some(ProfileKind::Georchestra),
            (ProfileName::Custom, None) => {
                c.error(
                    format!("{key}.custom_profile"),
                    "profile = \"custom\" needs a [route.custom_profile] table",
                    "add [route.custom_profile] with headers = { \"X-App-User\" = \"username\" }",
                );
                None
            }
            (ProfileName::Custom, Some(cp)) => cp.validate(c, &key),
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
        if let Some(url) = &self.login_url {
            check_login_url(c, &format!("{key}.login_url"), url);
        }
        let carriers = self.carriers(c, &key, cx, auth);
        if self.max_sso_age.is_some_and(|a| a.0.is_zero()) {
            c.error(
                format!("{key}.max_sso_age"),
                "a zero age would refuse every device credential",
                "use e.g. \"30d\", or remove it to use devices.max_sso_age",
            );
        }
        let assertion_audience = self.assertion_audience(c, &key);
        let access_tokens = self.access_tokens(c, &key, cx);
        Some(RouteSettings {
            name,
            upstream_authority: authority?,
            upstream_base_path: base,
            policy: RoutePolicy {
                auth,
                allow_users: self.allow_users.clone(),
                allow_groups: self.allow_groups.clone(),
                allow_roles: self.allow_roles.clone(),
            },
            profile: profile?,
            login_url: self
                .login_url
                .clone()
                .or_else(|| cx.login_url.map(str::to_owned)),
            preserve_host: self.preserve_host,
            max_body_bytes: self.max_body_bytes,
            carriers: carriers?,
            max_sso_age: self.max_sso_age.or(cx.max_sso_age).map(|d| d.0),
            assertion_audience: assertion_audience?,
            access_tokens: access_tokens?,
        })
    }

    /// `[route.access_tokens]`: `Some(None)` without it, `None` on an error.
    fn access_tokens(
        &self,
        c: &mut Collector,
        key: &str,
        cx: &RouteContext<'_>,
    ) -> Option<Option<AccessTokenRoute>> {
        let Some(at) = &self.access_tokens else {
            return Some(None);
        };
        let akey = format!("{key}.access_tokens");
        let mut ok = true;
        if !cx.provider {
            c.error(
                &akey,
                "access tokens are the OpenID provider's, and [oidc_provider] is not configured",
                "add an [oidc_provider] section, or remove access_tokens",
            );
            ok = false;
        }
        if at.clients.is_empty() || at.clients.iter().any(|c| c.trim().is_empty() || c == "*") {
            // Fail closed: no "any client" spelling.
            c.error(
                format!("{akey}.clients"),
                "name the clients whose tokens this route accepts (no empty list, no wildcard)",
                "e.g. clients = [\"my-cli\"]",
            );
            ok = false;
        }
        if self.auth == RouteAuth::Public {
            c.warn(
                &akey,
                "access tokens are ignored on a public route: nobody is identified there",
                "remove access_tokens, or set auth = \"required\"",
            );
        }
        let header = if at.header {
            let h = credential_header_name(&self.credential_header);
            if h.is_none() {
                c.error(
                    format!("{key}.credential_header"),
                    format!("`{}` cannot carry a credential", self.credential_header),
                    "use a header of its own, such as \"X-Vestibule-Token\"",
                );
                ok = false;
            }
            h
        } else {
            None
        };
        // Device credentials share Bearer and the header with tokens; they
        // are told apart by prefix (`vst_`, `vat_`, an at+jwt), and two at
        // once are a 400 (`core::access_token::one_credential`).
        ok.then(|| {
            Some(AccessTokenRoute {
                rule: vestibule_core::access_token::AccessRule {
                    clients: at.clients.clone(),
                    scopes: at.scopes.clone(),
                    service_clients: at.service_clients,
                },
                carriers: vestibule_core::access_token::AccessCarriers {
                    bearer: true,
                    header,
                },
            })
        })
    }

    /// The assertion's audience: `Some(None)` without an assertion,
    /// `None` on an error.
    fn assertion_audience(&self, c: &mut Collector, key: &str) -> Option<Option<String>> {
        if !self.assertion {
            return Some(None);
        }
        let exact_host = self
            .host
            .as_deref()
            .filter(|h| !h.starts_with("*."))
            .map(str::to_ascii_lowercase);
        match self.assertion_audience.clone().or(exact_host) {
            Some(aud) if !aud.trim().is_empty() => Some(Some(aud)),
            _ => {
                c.error(
                    format!("{key}.assertion_audience"),
                    "the route has no exact `host` to use as the assertion's audience",
                    "set `assertion_audience`, e.g. to the app's URL",
                );
                None
            }
        }
    }

    /// The upstream's authority and base path (no trailing `/`).
    fn upstream(&self, c: &mut Collector, key: &str) -> (Option<http::uri::Authority>, String) {
        match &self.upstream.parse::<Uri>().ok() {
            Some(u)
                if u.scheme_str() == Some("http")
                    && u.authority().is_some()
                    && u.query().is_none() =>
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
                    format!("`{}` is not an http URL", self.upstream),
                    "write it like \"http://127.0.0.1:3000\"",
                );
                (None, String::new())
            }
        }
    }

    fn carriers(
        &self,
        c: &mut Collector,
        key: &str,
        cx: &RouteContext<'_>,
        auth: AuthMode,
    ) -> Option<Carriers> {
        let mut carriers = Carriers::default();
        if self.credentials.is_empty() {
            return Some(carriers);
        }
        let ckey = format!("{key}.credentials");
        if !cx.accounts {
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
        for carrier in &self.credentials {
            match carrier {
                CredentialCarrier::Basic => carriers.basic = true,
                CredentialCarrier::Bearer => carriers.bearer = true,
                CredentialCarrier::ProxyAuthorization => carriers.proxy_authorization = true,
                CredentialCarrier::Header => {
                    match credential_header_name(&self.credential_header) {
                        Some(h) => carriers.header = Some(h),
                        None => {
                            ok = false;
                            c.error(
                            format!("{key}.credential_header"),
                            format!(
                                "`{}` cannot carry a device credential (not a header name, or one with another meaning)",
                                self.credential_header
                            ),
                            "keep the default, \"X-Vestibule-Token\"",
                        );
                        }
                    }
                }
                CredentialCarrier::Query => {
                    if !is_credential_query_name(&self.credential_query) {
                        ok = false;
                        c.error(
                            format!("{key}.credential_query"),
                            format!("`{}` is not a plain parameter name", self.credential_query),
                            "keep the default, \"vestibule_token\"",
                        );
                    } else {
                        carriers.query = Some(self.credential_query.clone());
                        c.warn(
                            &ckey,
                            "a credential in the URL ends up in access logs and browser history",
                            "use it only for media URLs that clients cannot send headers with, and prefer short-lived devices",
                        );
                    }
                }
            }
        }
        ok.then_some(carriers)
    }
}

impl CustomProfileConfig {
    fn validate(&self, c: &mut Collector, key: &str) -> Option<ProfileKind> {
        if self.groups_separator.is_empty() || self.groups_separator.chars().any(char::is_control) {
            c.error(
                format!("{key}.custom_profile.groups_separator"),
                "the separator is empty or has control characters, so group names would run together",
                "use \",\" or another visible separator",
            );
            return None;
        }
        Some(ProfileKind::Custom(CustomProfile {
            headers: self
                .headers
                .iter()
                .map(|(name, field)| (name.clone(), OutField::from(*field)))
                .collect(),
            groups_separator: self.groups_separator.clone(),
            encoding: self.encoding.into(),
        }))
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    const ROUTE: &str = "[[route]]\nupstream = \"http://127.0.0.1:3000\"\n";

    fn cx() -> RouteContext<'static> {
        RouteContext {
            login_url: None,
            max_sso_age: None,
            accounts: true,
            has_source: true,
            provider: false,
        }
    }

    #[test]
    fn unknown_choices_list_the_valid_ones() {
        for (line, key, valid) in [
            ("auth = \"maybe\"", "route[0].auth", "`optional`"),
            ("profile = \"nginx\"", "route[0].profile", "`x-forwarded`"),
            (
                "credentials = [\"cookie\"]",
                "route[0].credentials[0]",
                "`proxy-authorization`",
            ),
            (
                "profile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"password\" }",
                "route[0].custom_profile.headers.X-A",
                "`given_name`",
            ),
            (
                "profile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"email\" }\nencoding = \"latin1\"",
                "route[0].custom_profile.encoding",
                "`base64`",
            ),
        ] {
            let e = parse(&format!("{ROUTE}{line}"), &[]).unwrap_err();
            assert!(e.starts_with(&format!("{key}: ")), "{key}: {e}");
            assert!(e.contains("expected") && e.contains(valid), "{e}");
        }
    }

    #[test]
    fn defaults_apply() {
        let f = parse(ROUTE, &[]).unwrap();
        let r = &f.routes[0];
        assert_eq!(r.auth, RouteAuth::Required);
        assert_eq!(r.profile, ProfileName::Remote);
        assert_eq!(r.path_prefix, "/");
        assert_eq!(r.credential_header, DEFAULT_CREDENTIAL_HEADER);
        assert_eq!(r.credential_query, DEFAULT_CREDENTIAL_QUERY);
        let mut c = Collector::default();
        let s = r.validate(&mut c, 0, &cx()).unwrap();
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(s.name, "route-0");
        assert_eq!(s.policy.auth, AuthMode::Required);
        assert!(s.preserve_host);
        assert_eq!(s.carriers, Carriers::default());
        let u = f.upstream.validate(&mut c);
        assert_eq!(
            (u.connect_timeout, u.response_timeout, u.pool_idle_timeout),
            (
                Duration::from_secs(5),
                Duration::from_secs(60),
                Duration::from_secs(90)
            )
        );
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            ROUTE,
            &[
                ("VESTIBULE_ROUTE__0__AUTH", "public"),
                ("VESTIBULE_ROUTE__0__CREDENTIALS", "[\"bearer\", \"basic\"]"),
                ("VESTIBULE_UPSTREAM__CONNECT_TIMEOUT", "2s"),
            ],
        )
        .unwrap();
        assert_eq!(f.routes[0].auth, RouteAuth::Public);
        assert_eq!(
            f.routes[0].credentials,
            [CredentialCarrier::Bearer, CredentialCarrier::Basic]
        );
        let u = f.upstream.validate(&mut Collector::default());
        assert_eq!(u.connect_timeout, Duration::from_secs(2));
        let e = parse(ROUTE, &[("VESTIBULE_ROUTE__0__AUTH", "sometimes")]).unwrap_err();
        assert!(
            e.starts_with("route[0].auth: ") && e.ends_with("(set by VESTIBULE_ROUTE__0__AUTH)"),
            "{e}"
        );
    }
}
