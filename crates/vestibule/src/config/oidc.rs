//! `[source.oidc]`: vestibule signs people in itself against an upstream
//! OpenID provider (authorization code with PKCE, OIDC Core §3.1), instead
//! of trusting a front's headers or assertions.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use vestibule_core::jwt::{Algorithm, ClaimMapping};
use vestibule_core::policy::Provisioning;

use super::HumanDuration;
use super::diagnostic::Collector;
use super::sources::{AlgorithmName, JwtClaimsConfig, ProvisioningPolicy, is_loopback_host};

/// Where a browser starts an OIDC login (`?return_to=` the page to go
/// back to).
pub const OIDC_LOGIN_PATH: &str = "/.vestibule/oidc/login";
/// The path of the redirect URI vestibule serves (registered at the
/// provider as `redirect_url`).
pub const OIDC_CALLBACK_PATH: &str = "/.vestibule/oidc/callback";
/// The path the provider posts logout tokens to (Back-Channel Logout 1.0
/// §2.2, registered as the client's `backchannel_logout_uri`).
pub const OIDC_BACKCHANNEL_LOGOUT_PATH: &str = "/.vestibule/oidc/backchannel-logout";
/// Default `source.oidc.leeway`.
pub const DEFAULT_OIDC_LEEWAY: &str = "60s";
/// Default `source.oidc.logout_token_max_age`: Back-Channel Logout §2.4
/// encourages logout tokens to live at most two minutes.
pub const DEFAULT_LOGOUT_TOKEN_MAX_AGE: &str = "2m";
/// Default `source.oidc.recheck_every`: how often each session's tokens
/// are refreshed at the provider.
pub const DEFAULT_RECHECK_EVERY: &str = "5m";
/// Default `source.oidc.recheck_grace`: how long a session outlives a
/// provider that cannot be reached.
pub const DEFAULT_RECHECK_GRACE: &str = "15m";

/// `[source.oidc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSourceConfig {
    /// Whether the source is on. Default `true` once the section exists.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The provider: `authelia`, `authentik`, `keycloak`, `kanidm`,
    /// `zitadel`, `google` or `generic` (required): picks the default
    /// scopes and claim names.
    pub preset: OidcPreset,
    /// The provider's issuer identifier (required): its discovery document
    /// is `<issuer>/.well-known/openid-configuration` (OIDC Discovery §4),
    /// and its `issuer` must equal this exactly (§4.3).
    pub issuer: String,
    /// Our client id at the provider (required).
    pub client_id: String,
    /// How vestibule authenticates at the provider's token endpoint (OIDC
    /// Core §9): `client_secret_basic`, `client_secret_post` or
    /// `private_key_jwt`. Default `"client_secret_basic"`.
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// File holding the client secret (the two `client_secret_*` methods).
    /// Exactly one of `client_secret_file` and `client_secret_env`; none
    /// with `private_key_jwt`.
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Requested scopes. Default: the preset's; `openid` is required.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The redirect URI registered at the provider (required): vestibule's
    /// own origin with the path `/.vestibule/oidc/callback`. Compared
    /// exactly by the provider (RFC 9700 §2.1).
    pub redirect_url: String,
    /// Where the provider sends the browser after an RP-initiated logout
    /// (OIDC RP-Initiated Logout §3, `post_logout_redirect_uri`; must be
    /// registered). Default none: the provider shows its own page.
    pub post_logout_redirect_url: Option<String>,
    /// Groups allowed to sign in. Default `[]`: anyone the provider signs in.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Accepted ID-token and logout-token algorithms. Default: every one
    /// vestibule verifies; never `none` or HMAC.
    #[serde(default)]
    pub algorithms: Vec<AlgorithmName>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default `"60s"`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// The oldest `iat` a logout token may have. Default `"2m"`.
    #[serde(default = "default_logout_token_max_age")]
    pub logout_token_max_age: HumanDuration,
    /// Refuse logout tokens without `exp` (Back-Channel Logout §2.4 makes
    /// it required; Keycloak before 23.0.4 and authentik before 2025.8.2
    /// omit it). Default `false`: accepted when `iat` is recent.
    #[serde(default)]
    pub strict_logout_tokens: bool,
    /// How often each session is re-checked at the provider (its refresh
    /// token, or userinfo with its access token). Default `"5m"`.
    #[serde(default = "default_recheck_every")]
    pub recheck_every: HumanDuration,
    /// How long a session is kept, since the provider last vouched for it,
    /// while the provider cannot be reached. Default `"15m"`.
    #[serde(default = "default_recheck_grace")]
    pub recheck_grace: HumanDuration,
    /// PEM CA certificates for the provider's HTTPS endpoints. Default: the
    /// Mozilla roots built into vestibule.
    pub ca: Option<PathBuf>,
    /// `[source.oidc.claims]`: claim names overriding the preset's.
    #[serde(default)]
    pub claims: JwtClaimsConfig,
    /// With `[accounts]`: the first-sighting policy. Default `"approval"`.
    #[serde(default)]
    pub provisioning: ProvisioningPolicy,
    /// Groups auto-provisioned with `provisioning = "auto-if-group"`.
    /// Default none.
    #[serde(default)]
    pub provision_groups: Vec<String>,
}

/// `source.oidc.client_auth`: how vestibule proves it is the client at the
/// token endpoint (OIDC Core §9, RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// The id and secret in `Authorization: Basic` (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// The id and secret in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with vestibule's own signing keys (RFC 7523 §2.2,
    /// OIDC Core §9); the provider verifies it with the keys vestibule
    /// publishes at `/.vestibule/jwks.json`. No shared secret.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The name as written in the file and in discovery documents
    /// (`token_endpoint_auth_methods_supported`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    fn uses_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt)
    }
}

/// `source.oidc.preset`: who the provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OidcPreset {
    /// Authelia (4.38+).
    Authelia,
    /// authentik.
    Authentik,
    /// Keycloak (a realm's issuer, `…/realms/<name>`).
    Keycloak,
    /// kanidm.
    Kanidm,
    /// Zitadel.
    Zitadel,
    /// Google accounts.
    Google,
    /// Any OpenID provider with standard claims.
    Generic,
}

impl OidcPreset {
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authelia => "authelia",
            Self::Authentik => "authentik",
            Self::Keycloak => "keycloak",
            Self::Kanidm => "kanidm",
            Self::Zitadel => "zitadel",
            Self::Google => "google",
            Self::Generic => "generic",
        }
    }

    /// The scopes asked for by default. `groups` is a scope of its own at
    /// Authelia and kanidm; authentik and Keycloak put groups in `profile`
    /// (Keycloak only with a "Group Membership" mapper named `groups`).
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::Authelia | Self::Kanidm => &["openid", "profile", "email", "groups"],
            Self::Authentik | Self::Keycloak | Self::Zitadel | Self::Google | Self::Generic => {
                &["openid", "profile", "email"]
            }
        }
    }

    /// The claim names. Standard claims (OIDC Core §5.1) plus `groups`,
    /// except: Google has no `preferred_username` nor groups (the email is
    /// the username); Zitadel's roles are an object, not a list, so groups
    /// are not read unless `claims.groups` names a list claim.
    fn mapping(self) -> ClaimMapping {
        let mut m = ClaimMapping::oidc();
        match self {
            Self::Google => {
                m.username = vec!["email".to_owned()];
                m.groups = None;
            }
            Self::Zitadel => m.groups = None,
            Self::Authelia | Self::Authentik | Self::Keycloak | Self::Kanidm | Self::Generic => {}
        }
        m
    }
}

/// `[source.oidc]`, checked.
#[derive(Debug, Clone)]
pub struct OidcLogin {
    /// The preset's name, for logs.
    pub preset: &'static str,
    /// The issuer identifier, exactly as configured.
    pub issuer: String,
    /// The discovery document's URL (OIDC Discovery §4.1).
    pub discovery_url: Uri,
    /// Our client id.
    pub client_id: String,
    /// How vestibule authenticates at the token endpoint.
    pub client_auth: ClientAuthMethod,
    /// The client secret, read at start-up; never logged. `None` with
    /// `private_key_jwt`.
    pub client_secret: Option<ClientSecret>,
    /// Requested scopes, `openid` first.
    pub scopes: Vec<String>,
    /// Our registered redirect URI.
    pub redirect_url: Uri,
    /// The registered `post_logout_redirect_uri`, if any.
    pub post_logout_redirect_url: Option<Uri>,
    /// Groups allowed to sign in (empty: anyone).
    pub allowed_groups: Vec<String>,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew, in seconds.
    pub leeway_secs: i64,
    /// Oldest logout token, in seconds.
    pub logout_token_max_age_secs: i64,
    /// Refuse logout tokens without `exp`.
    pub strict_logout_tokens: bool,
    /// How often a session is re-checked at the provider.
    pub recheck_every: Duration,
    /// How long a session outlives an unreachable provider.
    pub recheck_grace: Duration,
    /// Extra CA certificates for the provider.
    pub ca: Option<PathBuf>,
    /// Claim names.
    pub mapping: ClaimMapping,
    /// First-sighting policy.
    pub provisioning: Provisioning,
}

impl OidcLogin {
    /// The `login_url` template sending a browser to vestibule's own OIDC
    /// login, on the origin of the registered redirect URI (vestibule's
    /// public origin), so a forward-auth front's redirect reaches it too.
    pub fn login_url_template(&self) -> String {
        let scheme = self.redirect_url.scheme_str().unwrap_or("https");
        let authority = self.redirect_url.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}{OIDC_LOGIN_PATH}?return_to={{url}}")
    }
}

/// A client secret: kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The secret, for the token request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(…)")
    }
}

fn yes() -> bool {
    true
}
fn default_leeway() -> HumanDuration {
    HumanDuration::parse(DEFAULT_OIDC_LEEWAY).unwrap_or_default()
}
fn default_logout_token_max_age() -> HumanDuration {
    HumanDuration::parse(DEFAULT_LOGOUT_TOKEN_MAX_AGE).unwrap_or_default()
}
fn default_recheck_every() -> HumanDuration {
    HumanDuration::parse(DEFAULT_RECHECK_EVERY).unwrap_or_default()
}
fn default_recheck_grace() -> HumanDuration {
    HumanDuration::parse(DEFAULT_RECHECK_GRACE).unwrap_or_default()
}

/// An absolute `https` URL with a host, or `http` to a loopback host (a
/// provider in a test, or on the same machine). `None` otherwise.
fn secure_url(s: &str) -> Option<Uri> {
    let u = s.parse::<Uri>().ok()?;
    let host = u.host().filter(|h| !h.is_empty())?;
    match u.scheme_str() {
        Some("https") => Some(u),
        Some("http") if is_loopback_host(host) => Some(u),
        _ => None,
    }
}

impl OidcSourceConfig {
    /// Checks `[source.oidc]`.
    pub(super) fn validate(&self, c: &mut Collector) -> Option<OidcLogin> {
        let mut ok = true;
        let issuer_url = secure_url(&self.issuer);
        // OIDC Discovery §3 (issuer): https, with no query or fragment.
        let discovery_url = match issuer_url {
            Some(u) if u.query().is_none() && !self.issuer.contains('#') => {
                let base = self.issuer.trim_end_matches('/');
                format!("{base}/.well-known/openid-configuration")
                    .parse::<Uri>()
                    .ok()
            }
            _ => None,
        };
        if discovery_url.is_none() {
            ok = false;
            c.error(
                "source.oidc.issuer",
                format!("`{}` is not an https URL without query or fragment (plain http only to loopback)", self.issuer),
                "write the provider's issuer exactly, e.g. \"https://sso.example.com/realms/home\"",
            );
        }
        if self.client_id.trim().is_empty() {
            ok = false;
            c.error(
                "source.oidc.client_id",
                "no client id",
                "register vestibule as a confidential client at the provider and copy its client id",
            );
        }
        let client_secret = if self.client_auth.uses_secret() {
            self.client_secret(c).map(Some)
        } else if self.client_secret_file.is_some() || self.client_secret_env.is_some() {
            // A secret beside a key-based method is a leftover, and an
            // ambiguity about which one the provider checks: refused.
            c.error(
                "source.oidc.client_auth",
                "private_key_jwt needs no client secret, yet client_secret_file or client_secret_env is set",
                "remove the client secret (and delete it at the provider), or pick a client_secret_* method",
            );
            None
        } else {
            Some(None)
        };
        let scopes = self.scopes(c);
        let redirect_url = match secure_url(&self.redirect_url) {
            Some(u) if u.path() == OIDC_CALLBACK_PATH && u.query().is_none() => Some(u),
            _ => {
                c.error(
                    "source.oidc.redirect_url",
                    format!("`{}` is not vestibule's callback: an https URL whose path is {OIDC_CALLBACK_PATH}", self.redirect_url),
                    "write e.g. \"https://gate.example.com/.vestibule/oidc/callback\" and register exactly that at the provider",
                );
                None
            }
        };
        let post_logout_redirect_url = match self.post_logout_redirect_url.as_deref() {
            None => Some(None),
            Some(s) => match secure_url(s) {
                Some(u) => Some(Some(u)),
                None => {
                    c.error(
                        "source.oidc.post_logout_redirect_url",
                        format!("`{s}` is not an absolute https URL"),
                        "write e.g. \"https://gate.example.com/\" and register it at the provider",
                    );
                    None
                }
            },
        };
        if self.allowed_groups.iter().any(|g| g.trim().is_empty()) {
            ok = false;
            c.error(
                "source.oidc.allowed_groups",
                "an empty group name",
                "list group names, e.g. [\"family\"]",
            );
        }
        let algorithms = if self.algorithms.is_empty() {
            // RFC 8725 §3.1, §3.2: never `none`, never a shared secret.
            Algorithm::ALL.to_vec()
        } else {
            self.algorithms.iter().map(|a| a.0).collect()
        };
        if self.leeway.0 > Duration::from_secs(300) {
            ok = false;
            c.error(
                "source.oidc.leeway",
                "more than 5 minutes of clock skew keeps expired tokens alive",
                "fix the clocks (NTP) and use the default \"60s\"",
            );
        }
        let max_age = self.logout_token_max_age.0;
        if max_age < Duration::from_secs(10) || max_age > Duration::from_secs(600) {
            ok = false;
            c.error(
                "source.oidc.logout_token_max_age",
                "outside 10s..=10m: too short refuses logouts from a slow provider, too long lets a captured token be replayed",
                "use the default \"2m\"",
            );
        }
        let every = self.recheck_every.0;
        if every < Duration::from_secs(1) || every > Duration::from_secs(24 * 3600) {
            ok = false;
            c.error(
                "source.oidc.recheck_every",
                "outside 1s..=24h: a user disabled at the provider keeps their session until the next re-check",
                "use the default \"5m\"",
            );
        }
        if self.recheck_grace.0 > Duration::from_secs(7 * 24 * 3600) {
            ok = false;
            c.error(
                "source.oidc.recheck_grace",
                "more than 7 days: sessions would outlive a provider gone for good",
                "use the default \"15m\"",
            );
        }
        let provisioning =
            self.provisioning
                .checked(c, "source.oidc.provision_groups", &self.provision_groups);
        ok &= provisioning.is_some();
        let mapping = self.claims.apply(self.preset.mapping());
        if !ok {
            return None;
        }
        Some(OidcLogin {
            preset: self.preset.name(),
            issuer: self.issuer.clone(),
            discovery_url: discovery_url?,
            client_id: self.client_id.clone(),
            client_auth: self.client_auth,
            client_secret: client_secret?,
            scopes: scopes?,
            redirect_url: redirect_url?,
            post_logout_redirect_url: post_logout_redirect_url?,
            allowed_groups: self.allowed_groups.clone(),
            algorithms,
            leeway_secs: i64::try_from(self.leeway.0.as_secs()).unwrap_or(0),
            logout_token_max_age_secs: i64::try_from(max_age.as_secs()).unwrap_or(0),
            strict_logout_tokens: self.strict_logout_tokens,
            recheck_every: every,
            recheck_grace: self.recheck_grace.0,
            ca: self.ca.clone(),
            mapping,
            provisioning: provisioning?,
        })
    }

    fn client_secret(&self, c: &mut Collector) -> Option<ClientSecret> {
        let secret = super::diagnostic::secret_from_file_or_env(
            c,
            (
                "source.oidc.client_secret_file",
                self.client_secret_file.as_deref(),
            ),
            (
                "source.oidc.client_secret_env",
                self.client_secret_env.as_deref(),
            ),
            "client secret",
        )?;
        if secret.is_empty() {
            c.error(
                "source.oidc.client_secret_file",
                "the client secret is empty",
                "copy the secret the provider generated for the client",
            );
            return None;
        }
        Some(ClientSecret(secret))
    }

    fn scopes(&self, c: &mut Collector) -> Option<Vec<String>> {
        let mut scopes: Vec<String> = if self.scopes.is_empty() {
            self.preset
                .scopes()
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            self.scopes.clone()
        };
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
        let bad = scopes.iter().find(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        });
        if let Some(bad) = bad {
            c.error(
                "source.oidc.scopes",
                format!("`{bad}` is not a scope token (RFC 6749 §3.3)"),
                "list scopes one per string, e.g. [\"openid\", \"profile\", \"email\"]",
            );
            return None;
        }
        // OIDC Core §3.1.2.1: without `openid` it is plain OAuth, and no ID
        // token comes back.
        let Some(i) = scopes.iter().position(|s| s == "openid") else {
            c.error(
                "source.oidc.scopes",
                "`openid` is missing: the provider would not send an ID token",
                "add \"openid\" to scopes",
            );
            return None;
        };
        let mut ordered = vec![scopes.remove(i)];
        for s in scopes {
            if !ordered.contains(&s) {
                ordered.push(s);
            }
        }
        Some(ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    /// A client secret file, one per test (tests run in parallel).
    fn secret_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vestibule-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn oidc(secret: &std::path::Path, extra: &str) -> String {
        format!(
            "[source.oidc]\npreset = \"keycloak\"\nissuer = \"https://sso.example.com/realms/home\"\nclient_id = \"vestibule\"\nclient_secret_file = \"{}\"\nredirect_url = \"https://gate.example.com/.vestibule/oidc/callback\"\n{extra}",
            secret.display()
        )
    }

    fn check(text: &str) -> (Option<OidcLogin>, Vec<String>) {
        let f = parse(text, &[]).unwrap();
        let mut c = Collector::default();
        let got = f.source.oidc.as_ref().unwrap().validate(&mut c);
        (got, c.diags.iter().map(|d| d.key.clone()).collect())
    }

    #[test]
    fn defaults_apply() {
        let secret = secret_file("defaults", "s3cret\n");
        let (got, diags) = check(&oidc(&secret, ""));
        assert!(diags.is_empty(), "{diags:?}");
        let o = got.unwrap();
        assert_eq!(o.client_auth, ClientAuthMethod::ClientSecretBasic);
        assert_eq!(o.client_secret.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{o:?}").contains("s3cret"));
        assert_eq!(
            o.discovery_url.to_string(),
            "https://sso.example.com/realms/home/.well-known/openid-configuration"
        );
        assert_eq!(o.scopes, ["openid", "profile", "email"]);
        assert_eq!(o.algorithms, Algorithm::ALL);
        assert_eq!(o.leeway_secs, 60);
        assert_eq!(o.logout_token_max_age_secs, 120);
        assert!(!o.strict_logout_tokens);
        assert_eq!(o.recheck_every, Duration::from_secs(300));
        assert_eq!(o.recheck_grace, Duration::from_secs(900));
        assert_eq!(o.provisioning, Provisioning::Approval);
        assert_eq!(o.post_logout_redirect_url, None);
        assert_eq!(o.mapping.groups.as_deref(), Some("groups"));
    }

    #[test]
    fn presets_pick_scopes_and_claims() {
        let secret = secret_file("presets", "s");
        for (preset, scopes, username, groups) in [
            (
                "authelia",
                "openid profile email groups",
                "preferred_username",
                Some("groups"),
            ),
            (
                "kanidm",
                "openid profile email groups",
                "preferred_username",
                Some("groups"),
            ),
            (
                "authentik",
                "openid profile email",
                "preferred_username",
                Some("groups"),
            ),
            (
                "zitadel",
                "openid profile email",
                "preferred_username",
                None,
            ),
            ("google", "openid profile email", "email", None),
            (
                "generic",
                "openid profile email",
                "preferred_username",
                Some("groups"),
            ),
        ] {
            let text = oidc(&secret, "").replace("\"keycloak\"", &format!("\"{preset}\""));
            let o = check(&text).0.unwrap();
            assert_eq!(o.scopes.join(" "), scopes, "{preset}");
            assert_eq!(o.mapping.username, [username], "{preset}");
            assert_eq!(o.mapping.groups.as_deref(), groups, "{preset}");
            assert_eq!(o.preset, preset);
        }
    }

    /// The preset's defaults, read through the whole `[source.oidc]` check:
    /// subject, username candidates, display name, email, groups claim and
    /// the default scopes.
    fn assert_preset(preset: &str, username: &[&str], groups: Option<&str>, scopes: &[&str]) {
        let secret = secret_file(&format!("preset-{preset}"), "s");
        let text = oidc(&secret, "").replace("\"keycloak\"", &format!("\"{preset}\""));
        let o = check(&text).0.unwrap();
        assert_eq!(o.preset, preset);
        assert_eq!(o.mapping.subject, "sub", "{preset}");
        assert_eq!(o.mapping.username, username, "{preset}");
        assert_eq!(o.mapping.display_name.as_deref(), Some("name"), "{preset}");
        assert_eq!(o.mapping.email.as_deref(), Some("email"), "{preset}");
        assert_eq!(o.mapping.groups.as_deref(), groups, "{preset}");
        assert_eq!(o.scopes, scopes, "{preset}");
    }

    /// Authelia: `groups` is a scope of its own; claims named as in OIDC
    /// Core §5.1 plus `groups` (Authelia's claims reference).
    #[test]
    fn preset_authelia() {
        assert_preset(
            "authelia",
            &["preferred_username"],
            Some("groups"),
            &["openid", "profile", "email", "groups"],
        );
    }

    /// authentik: its default `profile` scope mapping returns `groups`
    /// (group names) beside `preferred_username` (the username).
    #[test]
    fn preset_authentik() {
        assert_preset(
            "authentik",
            &["preferred_username"],
            Some("groups"),
            &["openid", "profile", "email"],
        );
    }

    /// Keycloak: `preferred_username` is the username; `groups` appears
    /// once a "Group Membership" mapper named `groups` is added.
    #[test]
    fn preset_keycloak() {
        assert_preset(
            "keycloak",
            &["preferred_username"],
            Some("groups"),
            &["openid", "profile", "email"],
        );
    }

    /// kanidm: the `groups` scope adds `groups`; `preferred_username` is
    /// the SPN (`name@domain`) unless the client prefers short names.
    #[test]
    fn preset_kanidm() {
        assert_preset(
            "kanidm",
            &["preferred_username"],
            Some("groups"),
            &["openid", "profile", "email", "groups"],
        );
    }

    /// Zitadel: roles are an object under
    /// `urn:zitadel:iam:org:project:roles`, not a list: no groups claim.
    #[test]
    fn preset_zitadel() {
        assert_preset(
            "zitadel",
            &["preferred_username"],
            None,
            &["openid", "profile", "email"],
        );
    }

    /// Google: no `preferred_username` and no groups; the email is the
    /// username.
    #[test]
    fn preset_google() {
        assert_preset("google", &["email"], None, &["openid", "profile", "email"]);
    }

    #[test]
    fn client_auth_methods_and_their_secrets() {
        let secret = secret_file("client-auth", "s3cret");
        let (got, diags) = check(&oidc(&secret, "client_auth = \"client_secret_post\""));
        assert!(diags.is_empty(), "{diags:?}");
        let o = got.unwrap();
        assert_eq!(o.client_auth, ClientAuthMethod::ClientSecretPost);
        assert_eq!(o.client_secret.unwrap().expose(), "s3cret");
        // private_key_jwt: no secret wanted, and one given is refused.
        let keyed = oidc(&secret, "client_auth = \"private_key_jwt\"");
        let (got, diags) = check(&keyed);
        assert_eq!(diags, ["source.oidc.client_auth"]);
        assert!(got.is_none());
        let without = keyed.replace(
            &format!("client_secret_file = \"{}\"\n", secret.display()),
            "",
        );
        let (got, diags) = check(&without);
        assert!(diags.is_empty(), "{diags:?}");
        let o = got.unwrap();
        assert_eq!(o.client_auth, ClientAuthMethod::PrivateKeyJwt);
        assert!(o.client_secret.is_none());
        // A secret method without a secret is refused.
        let no_secret = oidc(&secret, "client_auth = \"client_secret_post\"").replace(
            &format!("client_secret_file = \"{}\"\n", secret.display()),
            "",
        );
        assert_eq!(check(&no_secret).1, ["source.oidc.client_secret_file"]);
        assert!(parse(&oidc(&secret, "client_auth = \"client_secret_jwt\""), &[]).is_err());
    }

    #[test]
    fn refusals_name_their_key() {
        let secret = secret_file("refusals", "s");
        let empty = secret_file("empty", "\n");
        let base = oidc(&secret, "");
        for (text, want) in [
            (
                base.replace(
                    "https://sso.example.com/realms/home",
                    "http://sso.example.com",
                ),
                "source.oidc.issuer",
            ),
            (
                base.replace(
                    "https://sso.example.com/realms/home",
                    "https://sso.example.com/?x=1",
                ),
                "source.oidc.issuer",
            ),
            (
                base.replace("https://sso.example.com/realms/home", "sso.example.com"),
                "source.oidc.issuer",
            ),
            (
                base.replace("client_id = \"vestibule\"", "client_id = \" \""),
                "source.oidc.client_id",
            ),
            (
                base.replace("/.vestibule/oidc/callback", "/callback"),
                "source.oidc.redirect_url",
            ),
            (
                base.replace(
                    "https://gate.example.com/.vestibule",
                    "http://gate.example.com/.vestibule",
                ),
                "source.oidc.redirect_url",
            ),
            (
                oidc(&secret, "scopes = [\"profile\"]"),
                "source.oidc.scopes",
            ),
            (
                oidc(&secret, "scopes = [\"openid email\"]"),
                "source.oidc.scopes",
            ),
            (
                oidc(
                    &secret,
                    "post_logout_redirect_url = \"javascript:alert(1)\"",
                ),
                "source.oidc.post_logout_redirect_url",
            ),
            (
                oidc(&secret, "allowed_groups = [\"\"]"),
                "source.oidc.allowed_groups",
            ),
            (oidc(&secret, "leeway = \"10m\""), "source.oidc.leeway"),
            (
                oidc(&secret, "logout_token_max_age = \"1s\""),
                "source.oidc.logout_token_max_age",
            ),
            (
                oidc(&secret, "logout_token_max_age = \"1h\""),
                "source.oidc.logout_token_max_age",
            ),
            (
                oidc(&secret, "recheck_every = \"0s\""),
                "source.oidc.recheck_every",
            ),
            (
                oidc(&secret, "recheck_every = \"2d\""),
                "source.oidc.recheck_every",
            ),
            (
                oidc(&secret, "recheck_grace = \"30d\""),
                "source.oidc.recheck_grace",
            ),
            (
                oidc(&secret, "provisioning = \"auto-if-group\""),
                "source.oidc.provision_groups",
            ),
            (oidc(&empty, ""), "source.oidc.client_secret_file"),
            (
                oidc(&secret.with_extension("missing"), ""),
                "source.oidc.client_secret_file",
            ),
            (
                oidc(&secret, "client_secret_env = \"X\""),
                "source.oidc.client_secret_file",
            ),
            (
                base.replace("client_secret_file", "client_secret_env")
                    .replace(
                        &secret.display().to_string(),
                        "VESTIBULE_TEST_NOT_SET_ANYWHERE",
                    ),
                "source.oidc.client_secret_env",
            ),
        ] {
            let (got, diags) = check(&text);
            assert!(got.is_none(), "{text}");
            assert_eq!(diags, [want], "{text}");
        }
    }

    #[test]
    fn loopback_http_issuer_and_scopes_are_normalised() {
        let secret = secret_file("loopback", "s");
        let text = oidc(&secret, "scopes = [\"email\", \"openid\", \"openid\"]\npost_logout_redirect_url = \"http://127.0.0.1:8080/\"")
            .replace("https://sso.example.com/realms/home", "http://127.0.0.1:9000/")
            .replace("https://gate.example.com", "http://[::1]:8080");
        let (got, diags) = check(&text);
        assert!(diags.is_empty(), "{diags:?}");
        let o = got.unwrap();
        assert_eq!(o.scopes, ["openid", "email"]);
        assert_eq!(
            o.discovery_url.to_string(),
            "http://127.0.0.1:9000/.well-known/openid-configuration"
        );
        assert_eq!(o.issuer, "http://127.0.0.1:9000/");
    }

    /// Issue 15: `[source.oidc]` beside `[source.headers]` or
    /// `[source.jwt]` is the second way in (its own provisioning, keyed by
    /// `sub`); the headers and JWT sources together stay ambiguous, and a
    /// JWT source named like the OIDC issuer is refused (their accounts
    /// would mix).
    #[test]
    fn oidc_beside_another_source_is_the_second_source() {
        let secret = secret_file("both", "s");
        let headers = "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]\nprovisioning = \"auto\"\n";
        let jwt = |issuer: &str| {
            format!(
                "[source.jwt]\npreset = \"oidc\"\nissuer = \"{issuer}\"\naudience = [\"gate\"]\n\
                 jwks_url = \"https://sso.example.com/jwks\"\nheader = \"X-Jwt\"\ntrusted_proxies = [\"10.0.0.5\"]\n"
            )
        };
        let validate = |text: &str| {
            let f = parse(text, &[]).unwrap();
            let mut c = Collector::default();
            let got = f.source.validate(&mut c);
            (
                got,
                c.diags.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
            )
        };

        let (got, diags) = validate(&format!(
            "{}\n{headers}",
            oidc(&secret, "provisioning = \"approval\"")
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let got = got.unwrap();
        assert!(matches!(got.kind, crate::config::SourceKind::Headers(_)));
        let also = got.also_oidc.as_deref().unwrap();
        assert_eq!(got.oidc().map(|o| &o.issuer), Some(&also.issuer));
        // Each source's own first-sighting policy.
        assert_eq!(got.policy_for("authelia"), (&Provisioning::Auto, false));
        assert_eq!(
            got.policy_for(&also.issuer),
            (&Provisioning::Approval, false)
        );

        let (got, diags) = validate(&format!(
            "{}\n{}",
            oidc(&secret, ""),
            jwt("https://other.example.com")
        ));
        assert!(diags.is_empty(), "{diags:?}");
        assert!(got.unwrap().also_oidc.is_some());

        let (got, diags) = validate(&format!(
            "{}\n{}",
            oidc(&secret, ""),
            jwt("https://sso.example.com/realms/home")
        ));
        assert!(got.is_none());
        assert_eq!(diags, ["source.oidc.issuer"]);

        let (got, diags) = validate(&format!("{headers}\n{}", jwt("https://other.example.com")));
        assert!(got.is_some_and(|g| g.also_oidc.is_none()));
        assert!(diags.iter().any(|d| d == "source"), "{diags:?}");
    }
}
