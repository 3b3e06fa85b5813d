//! `[source]`: where identities come from, either trusted headers from an
//! SSO front (`[source.headers]`) or signed assertions (`[source.jwt]`).

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Deserializer};
use vestibule_core::decode::Decoding;
use vestibule_core::dialect::{CustomDialect, Dialect, Preset, ValueLimits};
use vestibule_core::jwt::{Algorithm, ClaimMapping, Jwks};
use vestibule_core::net::{TrustedNetworks, is_docker_bridge_range};
use vestibule_core::policy::Provisioning;

use super::HumanDuration;
use super::diagnostic::{Collector, trusted_list};

/// Default bound on one identity value, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024;
/// Default bound on a groups value, in bytes.
pub const DEFAULT_MAX_GROUPS_BYTES: usize = 8192;
/// Default `source.jwt.jwks_refresh`.
pub const DEFAULT_JWKS_REFRESH: &str = "1h";
/// Default `source.jwt.leeway`.
pub const DEFAULT_JWT_LEEWAY: &str = "60s";

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
    /// `[source.oidc]`: vestibule signs people in against an OpenID
    /// provider itself. Default off. Alone, or beside one of the other
    /// two as a second way in whose identities people link to their
    /// account (issue 15).
    pub oidc: Option<super::oidc::OidcSourceConfig>,
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
    pub dialect: DialectName,
    /// `[source.headers.custom]`: required when `dialect = "custom"`.
    pub custom: Option<CustomDialectConfig>,
    /// The keys `[source.jwt]` has too.
    #[serde(flatten)]
    pub common: SourceCommonConfig,
}

/// `source.headers.dialect`: the SSO front's header names and encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialectName {
    /// Authelia's `Remote-*` headers.
    Authelia,
    /// authentik's `X-authentik-*` headers.
    Authentik,
    /// oauth2-proxy's `X-Forwarded-*` / `X-Auth-Request-*` headers.
    #[serde(rename = "oauth2-proxy")]
    OAuth2Proxy,
    /// geOrchestra's `sec-*` headers.
    Georchestra,
    /// Tailscale Serve's `Tailscale-User-*` headers.
    Tailscale,
    /// Names from `[source.headers.custom]`.
    Custom,
}

impl DialectName {
    /// The built-in dialect, or `None` for `custom`.
    fn preset(self) -> Option<Preset> {
        match self {
            Self::Authelia => Some(Preset::Authelia),
            Self::Authentik => Some(Preset::Authentik),
            Self::OAuth2Proxy => Some(Preset::OAuth2Proxy),
            Self::Georchestra => Some(Preset::Georchestra),
            Self::Tailscale => Some(Preset::Tailscale),
            Self::Custom => None,
        }
    }
}

/// The keys `[source.headers]` and `[source.jwt]` share.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceCommonConfig {
    /// Peers allowed to send identity headers or assertions: IPs or CIDRs
    /// (required, no default). A bare IP means that one host. For
    /// assertions the signature proves who signed; the peer check keeps a
    /// leaked assertion from being replayed by anyone who can reach
    /// vestibule.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Allows `0.0.0.0/0` or `::/0` in `trusted_proxies`. Default `false`.
    /// With it, **anyone who can reach vestibule can be anyone**.
    #[serde(default)]
    pub dangerously_trust_any_peer: bool,
    /// Bound on one identity value, in bytes. Default 1024.
    #[serde(default = "default_max_value")]
    pub max_value_bytes: usize,
    /// Bound on the groups (all group names together), in bytes. Default 8192.
    #[serde(default = "default_max_groups")]
    pub max_groups_bytes: usize,
    /// With `[accounts]`: what happens the first time an identity is seen.
    /// `"existing-only"`, `"auto"`, `"auto-if-group"` or `"approval"`
    /// (default: a pending account an admin must approve).
    #[serde(default)]
    pub provisioning: ProvisioningPolicy,
    /// Groups that may be auto-provisioned with `provisioning = "auto-if-group"`.
    /// Default none.
    #[serde(default)]
    pub provision_groups: Vec<String>,
    /// What keys an account: `"subject"` (default: the dialect's stable id,
    /// or the `sub` claim) or `"username"` (only if the IdP never reuses or
    /// renames usernames).
    #[serde(default)]
    pub account_key: AccountKey,
}

/// `provisioning`: the first-sighting policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisioningPolicy {
    /// Only identities that already have an account pass.
    ExistingOnly,
    /// An active account is created.
    Auto,
    /// An active account is created for members of `provision_groups`.
    AutoIfGroup,
    /// A pending account is created for an admin to approve.
    #[default]
    Approval,
}

impl ProvisioningPolicy {
    /// The policy, with `provision_groups`; `None` (an error at
    /// `groups_key`) for `auto-if-group` without groups, which would
    /// create nobody.
    pub(super) fn checked(
        self,
        c: &mut Collector,
        groups_key: &str,
        groups: &[String],
    ) -> Option<Provisioning> {
        Some(match self {
            Self::ExistingOnly => Provisioning::ExistingOnly,
            Self::Auto => Provisioning::Auto,
            Self::Approval => Provisioning::Approval,
            Self::AutoIfGroup => {
                if groups.is_empty() {
                    c.error(
                        groups_key,
                        "provisioning = \"auto-if-group\" without any group would create nobody",
                        "list the groups, e.g. provision_groups = [\"family\"]",
                    );
                    return None;
                }
                Provisioning::AutoIfGroup(groups.to_vec())
            }
        })
    }
}

/// `account_key`: what identifies an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountKey {
    /// The source's stable subject.
    #[default]
    Subject,
    /// The username.
    Username,
}

/// `[source.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSourceConfig {
    /// Whether the source is on. Default `true` once the section exists.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `pomerium`, `cloudflare`, `authentik` or `oidc` (required): picks
    /// the header and the claim names.
    pub preset: JwtPreset,
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
    /// A JWK Set file, read at start-up and on every refresh. Default none.
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
    pub algorithms: Vec<AlgorithmName>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default `"60s"`.
    #[serde(default = "default_jwt_leeway")]
    pub leeway: HumanDuration,
    /// `[source.jwt.claims]`: claim names overriding the preset's.
    #[serde(default)]
    pub claims: JwtClaimsConfig,
    /// The keys `[source.headers]` has too.
    #[serde(flatten)]
    pub common: SourceCommonConfig,
}

/// `source.jwt.preset`: who mints the assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JwtPreset {
    /// Pomerium's `X-Pomerium-Jwt-Assertion`.
    Pomerium,
    /// Cloudflare Access's `Cf-Access-Jwt-Assertion`.
    Cloudflare,
    /// authentik's `X-authentik-jwt`.
    Authentik,
    /// Any OIDC issuer's ID token, in a header that must be named.
    Oidc,
}

impl JwtPreset {
    /// The name as written in the file, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pomerium => "pomerium",
            Self::Cloudflare => "cloudflare",
            Self::Authentik => "authentik",
            Self::Oidc => "oidc",
        }
    }

    fn default_header(self) -> Option<&'static str> {
        match self {
            Self::Pomerium => Some("X-Pomerium-Jwt-Assertion"),
            Self::Cloudflare => Some("Cf-Access-Jwt-Assertion"),
            Self::Authentik => Some("X-authentik-jwt"),
            Self::Oidc => None,
        }
    }

    fn mapping(self) -> ClaimMapping {
        match self {
            Self::Pomerium => ClaimMapping::pomerium(),
            Self::Cloudflare => ClaimMapping::cloudflare(),
            Self::Authentik => ClaimMapping::authentik(),
            Self::Oidc => ClaimMapping::oidc(),
        }
    }
}

/// One entry of `source.jwt.algorithms`: a JWS `alg` vestibule verifies.
/// Names are exact and case-sensitive (RFC 7515 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmName(pub Algorithm);

impl<'de> Deserialize<'de> for AlgorithmName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Algorithm::parse(&name).map(Self).ok_or_else(|| {
            let valid = Algorithm::ALL
                .iter()
                .map(|a| format!("`{}`", a.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            serde::de::Error::custom(format!(
                "unknown variant `{name}`, expected one of {valid} (never none or HMAC)"
            ))
        })
    }
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

fn yes() -> bool {
    true
}
fn default_max_value() -> usize {
    DEFAULT_MAX_VALUE_BYTES
}
fn default_max_groups() -> usize {
    DEFAULT_MAX_GROUPS_BYTES
}
fn default_jwks_refresh() -> HumanDuration {
    HumanDuration::parse(DEFAULT_JWKS_REFRESH).unwrap_or_default()
}
fn default_jwt_leeway() -> HumanDuration {
    HumanDuration::parse(DEFAULT_JWT_LEEWAY).unwrap_or_default()
}
pub(super) fn default_sep() -> String {
    ",".to_owned()
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
    /// `[source.oidc]` on beside `[source.headers]` or `[source.jwt]`
    /// (issue 15): a second way in, vestibule's own OIDC login, whose
    /// identities a signed-in person links to their account. Its own
    /// provisioning applies to its first sightings; its sessions are read
    /// only when the front vouches for nobody.
    pub also_oidc: Option<Box<super::oidc::OidcLogin>>,
}

impl IdentitySource {
    /// The OIDC login, whether it is the only source or the second one.
    pub fn oidc(&self) -> Option<&super::oidc::OidcLogin> {
        match &self.kind {
            SourceKind::Oidc(o) => Some(o),
            _ => self.also_oidc.as_deref(),
        }
    }

    /// The first-sighting policy and username keying for an identity from
    /// the source named `source`: the OIDC login's when it is that login's
    /// issuer (always keyed by `sub`), this source's otherwise.
    pub fn policy_for(&self, source: &str) -> (&Provisioning, bool) {
        match self.also_oidc.as_deref() {
            Some(o) if o.issuer == source => (&o.provisioning, false),
            _ => (&self.provisioning, self.key_by_username),
        }
    }

    /// The source name accounts are keyed under: the dialect's name, or the
    /// assertions' issuer (OIDC Core §5.7: `iss` and `sub` together are
    /// the stable identifier).
    pub fn name(&self) -> &str {
        match &self.kind {
            SourceKind::Headers(d) => d.name(),
            SourceKind::Jwt(j) => &j.issuer,
            SourceKind::Oidc(o) => &o.issuer,
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
    /// vestibule's own login against an OpenID provider (`[source.oidc]`):
    /// the identity is the session cookie that login opened.
    Oidc(Box<super::oidc::OidcLogin>),
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

impl SourceConfig {
    /// The sources that are on.
    fn enabled(&self) -> (Option<&HeaderSourceConfig>, Option<&JwtSourceConfig>) {
        (
            self.headers.as_ref().filter(|h| h.enabled),
            self.jwt.as_ref().filter(|j| j.enabled),
        )
    }

    /// `[source.oidc]` when it is on.
    fn oidc_enabled(&self) -> Option<&super::oidc::OidcSourceConfig> {
        self.oidc.as_ref().filter(|o| o.enabled)
    }

    /// Whether an identity source is on.
    pub(super) fn any_enabled(&self) -> bool {
        let (h, j) = self.enabled();
        h.is_some() || j.is_some() || self.oidc_enabled().is_some()
    }

    /// Checks `[source]`: at most one of `[source.headers]` and
    /// `[source.jwt]`; `[source.oidc]` alone, or beside one of them as a
    /// second way in (issue 15, linking).
    pub(super) fn validate(&self, c: &mut Collector) -> Option<IdentitySource> {
        let (headers_on, jwt_on) = self.enabled();
        let oidc_on = self.oidc_enabled();
        if headers_on.is_some() && jwt_on.is_some() {
            c.error(
                "source",
                "both [source.headers] and [source.jwt] are on; which one names the user would be ambiguous",
                "keep one of them, or set enabled = false on the other",
            );
        }
        // The login, the callback, sessions on app routes, back-channel
        // logout and RP-initiated logout are served (docs/oidc-login.md
        // says what is not yet).
        let login = oidc_on.map(|o| o.validate(c));
        let front = match (headers_on, jwt_on) {
            (Some(h), _) => h.validate(c),
            (None, Some(j)) => j.validate(c),
            (None, None) => None,
        };
        match (login, front) {
            (None, front) => front,
            (Some(login), None) if headers_on.is_none() && jwt_on.is_none() => {
                let login = login?;
                Some(IdentitySource {
                    provisioning: login.provisioning.clone(),
                    kind: SourceKind::Oidc(Box::new(login)),
                    // Nobody sends identity headers for this source: the
                    // browser's session cookie is the identity.
                    trusted: TrustedNetworks::none(),
                    limits: ValueLimits::default(),
                    // OIDC Core §5.7: `iss` and `sub` are the stable key.
                    key_by_username: false,
                    also_oidc: None,
                })
            }
            // The front's source had errors: already reported.
            (Some(_), None) => None,
            (Some(login), Some(mut front)) => {
                let login = login?;
                // Accounts are keyed by (source name, subject): one name
                // for two sources would make one source's subjects the
                // other's. Fail closed.
                if front.name() == login.issuer {
                    c.error(
                        "source.oidc.issuer",
                        format!(
                            "`{}` is also the name of the other identity source; their accounts would mix",
                            login.issuer
                        ),
                        "use [source.oidc] alone, or the other source alone",
                    );
                    return None;
                }
                front.also_oidc = Some(Box::new(login));
                Some(front)
            }
        }
    }
}

impl HeaderSourceConfig {
    fn validate(&self, c: &mut Collector) -> Option<IdentitySource> {
        let key = "source.headers";
        let dialect = match (self.dialect.preset(), &self.custom) {
            (None, None) => {
                c.error(
                    format!("{key}.custom"),
                    "dialect = \"custom\" needs a [source.headers.custom] table",
                    "add [source.headers.custom] with at least `subject = \"X-User-Id\"`",
                );
                None
            }
            (None, Some(cd)) => cd.validate(c, key),
            (Some(preset), custom) => {
                if custom.is_some() {
                    c.warn(
                        format!("{key}.custom"),
                        format!(
                            "[source.headers.custom] is ignored with dialect `{}`",
                            preset.name()
                        ),
                        "remove it, or set dialect = \"custom\"",
                    );
                }
                Some(Dialect::preset(preset))
            }
        };
        self.common
            .validate(c, key, dialect.map(SourceKind::Headers))
    }
}

impl CustomDialectConfig {
    fn validate(&self, c: &mut Collector, key: &str) -> Option<Dialect> {
        let sep = match self.groups_separator.chars().collect::<Vec<_>>()[..] {
            [ch] => ch,
            _ => {
                c.error(
                    format!("{key}.custom.groups_separator"),
                    format!("`{}` is not a single character", self.groups_separator),
                    "use one of \",\", \";\", \"|\" or \" \"",
                );
                ','
            }
        };
        match Dialect::custom(&CustomDialect {
            subject: self.subject.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            groups: self.groups.clone(),
            groups_separator: sep,
            org: self.org.clone(),
            decoding: Decoding {
                base64_prefix: self.decode_base64_prefix,
                rfc2047: self.decode_rfc2047,
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
}

impl SourceCommonConfig {
    /// Checks the shared keys of the source at `key`, and completes it with
    /// `kind` (`None` when the kind-specific keys had errors).
    fn validate(
        &self,
        c: &mut Collector,
        key: &str,
        kind: Option<SourceKind>,
    ) -> Option<IdentitySource> {
        let trusted = trusted_list(c, &format!("{key}.trusted_proxies"), &self.trusted_proxies);
        if self.trusted_proxies.is_empty() {
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
            if self.dangerously_trust_any_peer {
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
            ("max_value_bytes", self.max_value_bytes),
            ("max_groups_bytes", self.max_groups_bytes),
        ] {
            if v == 0 || v > 65_536 {
                c.error(
                    format!("{key}.{k}"),
                    format!("{v} is outside 1..=65536"),
                    "use a bound such as 1024 (values) or 8192 (groups)",
                );
            }
        }
        let provisioning = self
            .provisioning
            .checked(
                c,
                &format!("{key}.provision_groups"),
                &self.provision_groups,
            )
            .unwrap_or(Provisioning::Approval);
        Some(IdentitySource {
            kind: kind?,
            trusted,
            limits: ValueLimits {
                max_value_len: self.max_value_bytes,
                max_groups_len: self.max_groups_bytes,
                ..ValueLimits::default()
            },
            provisioning,
            key_by_username: self.account_key == AccountKey::Username,
            also_oidc: None,
        })
    }
}

impl JwtSourceConfig {
    fn validate(&self, c: &mut Collector) -> Option<IdentitySource> {
        let key = "source.jwt";
        let mut ok = true;
        let header = match self.header.as_deref().or(self.preset.default_header()) {
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
        if self.issuer.trim().is_empty() {
            ok = false;
            c.error(
                format!("{key}.issuer"),
                "no issuer: any key holder's tokens would be accepted",
                "set the exact `iss` of the assertions, e.g. \"https://team.cloudflareaccess.com\"",
            );
        }
        if self.audience.iter().all(|a| a.trim().is_empty()) {
            ok = false;
            c.error(
                format!("{key}.audience"),
                "no audience: an assertion minted for another app would be accepted here (RFC 8725 §3.9)",
                "set the `aud` your front puts in assertions for vestibule (Cloudflare: the application's AUD tag)",
            );
        }
        let jwks = self.jwks(c, key);
        self.check_jwks_ca(c, key);
        if self.jwks_refresh.0 < Duration::from_secs(10) {
            c.error(
                format!("{key}.jwks_refresh"),
                "refreshing more often than every 10 s would hammer the key server",
                "use e.g. \"1h\" (unknown keys are fetched at once anyway)",
            );
        }
        let algorithms = if self.algorithms.is_empty() {
            // Every algorithm vestibule verifies; never `none` or HMAC (RFC
            // 8725 §3.1, §3.2: a shared secret would let any verifier sign).
            Algorithm::ALL.to_vec()
        } else {
            self.algorithms.iter().map(|a| a.0).collect()
        };
        if self.leeway.0 > Duration::from_secs(300) {
            c.error(
                format!("{key}.leeway"),
                "more than 5 minutes of clock skew keeps expired assertions alive",
                "fix the clocks (NTP) and use the default \"60s\"",
            );
        }
        let mapping = self.claims.apply(self.preset.mapping());
        let kind = match (ok, header, jwks) {
            (true, Some(header), Some(jwks)) => Some(SourceKind::Jwt(JwtSettings {
                preset: self.preset.name().to_owned(),
                header,
                issuer: self.issuer.clone(),
                audiences: self
                    .audience
                    .iter()
                    .filter(|a| !a.trim().is_empty())
                    .cloned()
                    .collect(),
                jwks,
                jwks_ca: self.jwks_ca.clone(),
                refresh: self.jwks_refresh.0,
                algorithms,
                leeway_secs: i64::try_from(self.leeway.0.as_secs()).unwrap_or(0),
                mapping,
            })),
            _ => None,
        };
        self.common.validate(c, key, kind)
    }

    fn jwks(&self, c: &mut Collector, key: &str) -> Option<JwksLocation> {
        match (&self.jwks_url, &self.jwks_file) {
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
                Ok(u)
                    if u.scheme_str() == Some("http") && u.host().is_some_and(is_loopback_host) =>
                {
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
        }
    }

    fn check_jwks_ca(&self, c: &mut Collector, key: &str) {
        if let Some(ca) = &self.jwks_ca {
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
        if self.jwks_ca.is_some() && self.jwks_file.is_some() {
            c.warn(
                format!("{key}.jwks_ca"),
                "jwks_ca is only used with jwks_url",
                "remove it",
            );
        }
    }
}

impl JwtClaimsConfig {
    /// The preset's claim names with these overrides.
    pub(super) fn apply(&self, mut m: ClaimMapping) -> ClaimMapping {
        if let Some(v) = &self.subject {
            m.subject = v.clone();
        }
        if let Some(v) = &self.username {
            m.username = vec![v.clone()];
        }
        if let Some(v) = &self.email {
            m.email = Some(v.clone());
        }
        if let Some(v) = &self.display_name {
            m.display_name = Some(v.clone());
        }
        if let Some(v) = &self.groups {
            m.groups = Some(v.clone());
        }
        m
    }
}

pub(super) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    const HEADERS: &str =
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]\n";

    #[test]
    fn unknown_choices_list_the_valid_ones() {
        for (text, key, valid) in [
            (
                "[source.headers]\ndialect = \"keycloak\"".to_owned(),
                "source.headers.dialect",
                "`oauth2-proxy`",
            ),
            (
                "[source.jwt]\npreset = \"okta\"\nissuer = \"x\"".to_owned(),
                "source.jwt.preset",
                "`oidc`",
            ),
            (
                "[source.jwt]\npreset = \"oidc\"\nissuer = \"x\"\nalgorithms = [\"HS256\"]"
                    .to_owned(),
                "source.jwt.algorithms[0]",
                "`EdDSA`",
            ),
            // Flattened keys are reported at their section.
            (
                format!("{HEADERS}provisioning = \"always\""),
                "source.headers",
                "`auto-if-group`",
            ),
            (
                format!("{HEADERS}account_key = \"email\""),
                "source.headers",
                "`username`",
            ),
        ] {
            let e = parse(&text, &[]).unwrap_err();
            assert!(e.starts_with(&format!("{key}: ")), "{key}: {e}");
            assert!(e.contains("expected") && e.contains(valid), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_beside_flattened_ones() {
        let e = parse(&format!("{HEADERS}trusted_proxy = [\"10.0.0.6\"]"), &[]).unwrap_err();
        assert!(e.contains("unknown field `trusted_proxy`"), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let f = parse(HEADERS, &[]).unwrap();
        let s = f.source.validate(&mut Collector::default()).unwrap();
        assert_eq!(s.provisioning, Provisioning::Approval);
        assert!(!s.key_by_username);
        assert_eq!(s.limits.max_value_len, DEFAULT_MAX_VALUE_BYTES);
        assert_eq!(s.limits.max_groups_len, DEFAULT_MAX_GROUPS_BYTES);
        assert_eq!(s.name(), "authelia");
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            HEADERS,
            &[
                ("VESTIBULE_SOURCE__HEADERS__PROVISIONING", "auto-if-group"),
                (
                    "VESTIBULE_SOURCE__HEADERS__PROVISION_GROUPS",
                    "[\"family\"]",
                ),
                ("VESTIBULE_SOURCE__HEADERS__ACCOUNT_KEY", "username"),
                ("VESTIBULE_SOURCE__HEADERS__DIALECT", "tailscale"),
            ],
        )
        .unwrap();
        let mut c = Collector::default();
        let s = f.source.validate(&mut c).unwrap();
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(
            s.provisioning,
            Provisioning::AutoIfGroup(vec!["family".to_owned()])
        );
        assert!(s.key_by_username);
        assert_eq!(s.name(), "tailscale");
    }

    #[test]
    fn jwt_presets_name_their_header_and_claims() {
        for (preset, header) in [
            ("pomerium", Some("x-pomerium-jwt-assertion")),
            ("cloudflare", Some("cf-access-jwt-assertion")),
            ("authentik", Some("x-authentik-jwt")),
            ("oidc", None),
        ] {
            let text = format!(
                "[source.jwt]\npreset = \"{preset}\"\nissuer = \"https://i\"\naudience = [\"a\"]\njwks_url = \"https://i/k\"\ntrusted_proxies = [\"10.0.0.5\"]\n"
            );
            let f = parse(&text, &[]).unwrap();
            let mut c = Collector::default();
            let s = f.source.validate(&mut c);
            match (header, s.map(|s| s.kind)) {
                (Some(h), Some(SourceKind::Jwt(j))) => {
                    assert_eq!(j.header.as_str(), h);
                    assert_eq!(j.preset, preset);
                    assert_eq!(j.algorithms, Algorithm::ALL);
                    assert_eq!(j.refresh, Duration::from_secs(3600));
                    assert_eq!(j.leeway_secs, 60);
                }
                (None, None) => assert!(
                    c.diags.iter().any(|d| d.key == "source.jwt.header"),
                    "{:?}",
                    c.diags
                ),
                (h, k) => panic!("{preset}: header {h:?}, got {k:?}"),
            }
        }
    }
}
