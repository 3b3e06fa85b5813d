//! `[accounts.ldap]`: write provisioned accounts to an LDAP directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use vestibule_core::ldap::{Field, Layout, RoleMap};

use super::HumanDuration;
use super::diagnostic::Collector;

/// Default `accounts.ldap.pool_size`.
pub const DEFAULT_LDAP_POOL_SIZE: usize = 4;
/// Default `accounts.ldap.timeout`.
pub const DEFAULT_LDAP_TIMEOUT: &str = "5s";

/// The directory layout preset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutPreset {
    /// geOrchestra's (`ou=users`, `ou=pendingusers`, `ou=orgs`, `ou=roles`).
    Georchestra,
    /// Plain `inetOrgPerson` entries under `ou=people` (the default).
    #[default]
    Inetorgperson,
}

/// What happens to the entry of a disabled account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisabledEntries {
    /// Leave it where it is (the default).
    #[default]
    Leave,
    /// Move it under `disabled_rdn`.
    Move,
}

/// `[accounts.ldap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]`. Required.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4511 §4.14). Default false.
    #[serde(default)]
    pub starttls: bool,
    /// Allow `ldap://` without StartTLS to a host that is not loopback: the
    /// bind password and every entry cross the network in clear. Default false.
    #[serde(default)]
    pub dangerous_plaintext: bool,
    /// PEM file of the CA certificates that sign the directory's
    /// certificate. Default: the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// The DN vestibule binds as. Required.
    pub bind_dn: String,
    /// File holding the bind password (trailing newline ignored). One of
    /// this and `bind_password_env` is required.
    pub bind_password_file: Option<PathBuf>,
    /// Environment variable holding the bind password.
    pub bind_password_env: Option<String>,
    /// The directory's base DN, e.g. `dc=georchestra,dc=org`. Required.
    pub base_dn: String,
    /// `georchestra` or `inetorgperson`. Default `inetorgperson`.
    #[serde(default)]
    pub layout: LayoutPreset,
    /// Container of active users, relative to the base. Default by layout:
    /// `ou=users` (georchestra), `ou=people` (inetorgperson).
    pub users_rdn: Option<String>,
    /// Container of users waiting for approval. Default by layout:
    /// `ou=pendingusers` (georchestra), `ou=pending` (inetorgperson).
    pub pending_rdn: Option<String>,
    /// Naming attribute of user entries. Default `uid`.
    pub rdn_attribute: Option<String>,
    /// Object classes of new user entries. Default by layout.
    pub object_classes: Option<Vec<String>>,
    /// Attribute → account field (`uid`, `cn`, `sn`, `given_name`, `mail`,
    /// `display_name`, `provider`, `provider_subject`, `object_id`).
    /// Default by layout.
    pub attributes: Option<BTreeMap<String, String>>,
    /// Role group DN; `{role}` and `{base}` are replaced. Default by
    /// layout: `cn={role},ou=roles,{base}` (georchestra),
    /// `cn={role},ou=groups,{base}` (inetorgperson).
    pub role_dn_template: Option<String>,
    /// Object classes of a role group vestibule has to create. Default by
    /// layout: `top, groupOfMembers, georchestraRole` (georchestra),
    /// `top, groupOfNames` (inetorgperson).
    pub role_object_classes: Option<Vec<String>>,
    /// Directory role → the account groups that grant it. Nothing else
    /// becomes a role: an unmapped group (`ROLE_ADMINISTRATOR` sent by the
    /// front) is dropped and logged. Default none.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Roles every written account has. Default `["USER"]` (georchestra),
    /// none (inetorgperson).
    pub always_roles: Option<Vec<String>>,
    /// Organisation of accounts the front sends none for (georchestra).
    /// Default none: no organisation.
    pub default_org: Option<String>,
    /// Send the app the account's directory roles, read back after each
    /// write and at each cache refresh, as its groups (geOrchestra's
    /// `sec-roles`: `ROLE_` + role), instead of the groups the front sent.
    /// Default true (georchestra), false (inetorgperson).
    pub forward_roles: Option<bool>,
    /// Remove, at a sync, the membership of a role that `roles` maps and the
    /// account's groups no longer grant (the front stopped sending the
    /// group). `always_roles` and roles no rule names are never removed.
    /// Default false: a sync only adds roles.
    #[serde(default)]
    pub revoke_roles: bool,
    /// `leave` or `move` the entry of a disabled account. Default `leave`.
    #[serde(default)]
    pub disabled: DisabledEntries,
    /// Where `disabled = "move"` puts entries. Default `ou=disabledusers`.
    pub disabled_rdn: Option<String>,
    /// Connections kept open. Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Limit for connecting and for each operation. Default `"5s"`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_pool_size() -> usize {
    DEFAULT_LDAP_POOL_SIZE
}
fn default_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_LDAP_TIMEOUT).unwrap_or_default()
}

/// `[accounts.ldap]`, checked.
#[derive(Clone)]
pub struct LdapSettings {
    /// The URL.
    pub url: String,
    /// StartTLS on `ldap://`.
    pub starttls: bool,
    /// TLS client configuration (aws-lc-rs), for ldaps:// and StartTLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Bind DN.
    pub bind_dn: String,
    /// Bind password (never logged).
    pub bind_password: String,
    /// The layout.
    pub layout: Layout,
    /// Directory roles from account groups.
    pub roles: RoleMap,
    /// Object classes of a role group vestibule creates.
    pub role_object_classes: Vec<String>,
    /// Organisation when the front sends none.
    pub default_org: Option<String>,
    /// Forward the directory's roles as groups, with this prefix
    /// (`ROLE_` for geOrchestra); `None`: forward the front's groups.
    pub forward_roles: Option<String>,
    /// Remove mapped roles the account's groups no longer grant.
    pub revoke_roles: bool,
    /// Container disabled accounts move to, if they move.
    pub disabled_dn: Option<String>,
    /// Pool size.
    pub pool_size: usize,
    /// Connect and operation timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

fn field_named(name: &str) -> Option<Field> {
    Some(match name {
        "uid" => Field::Uid,
        "cn" => Field::CommonName,
        "sn" => Field::FamilyName,
        "given_name" => Field::GivenName,
        "mail" => Field::Mail,
        "display_name" => Field::DisplayName,
        "provider" => Field::Provider,
        "provider_subject" => Field::ProviderSubject,
        "object_id" => Field::ObjectId,
        _ => return None,
    })
}

/// Whether `url`'s host is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn loopback_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| vestibule_core::net::canonical_ip(ip).is_loopback())
}

impl LdapConfig {
    /// Checks `[accounts.ldap]`.
    pub(super) fn validate(&self, c: &mut Collector) -> Option<LdapSettings> {
        let tls = self.url.starts_with("ldaps://");
        if !tls && !self.url.starts_with("ldap://") {
            c.error(
                "accounts.ldap.url",
                "the directory URL must start with ldaps:// or ldap://",
                "write e.g. ldaps://ldap.example.org",
            );
            return None;
        }
        if tls && self.starttls {
            c.error(
                "accounts.ldap.starttls",
                "StartTLS on an ldaps:// connection, which is TLS already",
                "remove starttls, or use ldap:// with it",
            );
        }
        if !tls && !self.starttls && !loopback_host(&self.url) && !self.dangerous_plaintext {
            c.error(
                "accounts.ldap.url",
                "plain ldap:// to a host that is not loopback sends the bind password and every entry in clear",
                "use ldaps://, or starttls = true; dangerous_plaintext = true allows it anyway",
            );
        }
        let password = super::diagnostic::secret_from_file_or_env(
            c,
            (
                "accounts.ldap.bind_password_file",
                self.bind_password_file.as_deref(),
            ),
            (
                "accounts.ldap.bind_password_env",
                self.bind_password_env.as_deref(),
            ),
            "password",
        )?;
        let mut layout = match self.layout {
            LayoutPreset::Georchestra => Layout::georchestra(&self.base_dn),
            LayoutPreset::Inetorgperson => Layout::inetorgperson(&self.base_dn),
        };
        if self.base_dn.trim().is_empty() {
            c.error(
                "accounts.ldap.base_dn",
                "the base DN is empty",
                "write e.g. dc=example,dc=org",
            );
        }
        if let Some(v) = &self.users_rdn {
            layout.users_rdn.clone_from(v);
        }
        if let Some(v) = &self.pending_rdn {
            layout.pending_rdn.clone_from(v);
        }
        if let Some(v) = &self.rdn_attribute {
            layout.rdn_attribute.clone_from(v);
        }
        if let Some(v) = &self.object_classes {
            layout.object_classes.clone_from(v);
        }
        if let Some(v) = &self.role_dn_template {
            if !v.contains("{role}") {
                c.error(
                    "accounts.ldap.role_dn_template",
                    "the template has no {role}, so every role would be one group",
                    "write e.g. cn={role},ou=groups,{base}",
                );
            }
            layout.role_dn_template.clone_from(v);
        }
        if let Some(attrs) = &self.attributes {
            let mut mapped = Vec::new();
            for (attr, name) in attrs {
                match field_named(name) {
                    Some(f) => mapped.push((attr.clone(), f)),
                    None => c.error(
                        "accounts.ldap.attributes",
                        format!("`{name}` (for {attr}) is not an account field"),
                        "use uid, cn, sn, given_name, mail, display_name, provider, provider_subject or object_id",
                    ),
                }
            }
            layout.attributes = mapped;
        }
        // The DN's value is the uid, and RFC 4512 §2.3.1 wants the RDN's
        // value among the entry's values of that attribute: the naming
        // attribute must carry the uid field, or every add fails.
        if !layout
            .attributes
            .iter()
            .any(|(a, f)| a.eq_ignore_ascii_case(&layout.rdn_attribute) && *f == Field::Uid)
        {
            c.error(
                "accounts.ldap.attributes",
                format!(
                    "the naming attribute {} does not carry the uid (the value the DN is made of)",
                    layout.rdn_attribute
                ),
                format!("map it: {} = \"uid\"", layout.rdn_attribute),
            );
        }
        for (role, groups) in &self.roles {
            // RFC 4517 has no wildcard in a group name; a rule that passes
            // any group through defeats the allow-list.
            if groups
                .iter()
                .any(|g| g.contains('*') || g.trim().is_empty())
            {
                c.error(
                    "accounts.ldap.roles",
                    format!("role {role} is granted by a wildcard or empty group, which passes anything through"),
                    "list the exact group names that grant it",
                );
            }
        }
        let always_roles = self
            .always_roles
            .clone()
            .unwrap_or_else(|| match self.layout {
                LayoutPreset::Georchestra => vec!["USER".into()],
                LayoutPreset::Inetorgperson => Vec::new(),
            });
        let role_object_classes =
            self.role_object_classes
                .clone()
                .unwrap_or_else(|| match self.layout {
                    LayoutPreset::Georchestra => vec![
                        "top".into(),
                        "groupOfMembers".into(),
                        "georchestraRole".into(),
                    ],
                    LayoutPreset::Inetorgperson => vec!["top".into(), "groupOfNames".into()],
                });
        if self.revoke_roles
            && role_object_classes
                .iter()
                .any(|c| c.eq_ignore_ascii_case("groupOfNames"))
        {
            // RFC 4519 §3.5: groupOfNames MUST have a member.
            c.warn(
                "accounts.ldap.revoke_roles",
                "a groupOfNames role group cannot lose its last member: a login that would empty one gets 503",
                "use groupOfMembers (role_object_classes), or give each group a placeholder member",
            );
        }
        if self.default_org.is_some() && layout.orgs_rdn.is_none() {
            c.warn(
                "accounts.ldap.default_org",
                "the inetorgperson layout has no organisations; default_org is unused",
                "remove it, or use layout = \"georchestra\"",
            );
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            c.error(
                "accounts.ldap.pool_size",
                format!("{} is outside 1..=64", self.pool_size),
                "keep the default, 4",
            );
        }
        if self.timeout.0.is_zero() {
            c.error(
                "accounts.ldap.timeout",
                "a zero timeout fails every operation",
                "use e.g. \"5s\"",
            );
        }
        let tls_config = if tls || self.starttls {
            match client_tls(self.ca_file.as_deref()) {
                Ok(cfg) => Some(Arc::new(cfg)),
                Err(e) => {
                    c.error(
                        "accounts.ldap.ca_file",
                        e,
                        "point ca_file at a PEM file of CA certificates",
                    );
                    None
                }
            }
        } else {
            None
        };
        let disabled_dn = match self.disabled {
            DisabledEntries::Leave => None,
            DisabledEntries::Move => Some(format!(
                "{},{}",
                self.disabled_rdn.as_deref().unwrap_or("ou=disabledusers"),
                self.base_dn
            )),
        };
        Some(LdapSettings {
            url: self.url.clone(),
            starttls: self.starttls,
            tls: tls_config,
            bind_dn: self.bind_dn.clone(),
            bind_password: password,
            roles: RoleMap::new(
                always_roles,
                self.roles
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            role_object_classes,
            layout,
            default_org: self.default_org.clone().filter(|o| !o.trim().is_empty()),
            forward_roles: match (self.layout, self.forward_roles) {
                (LayoutPreset::Georchestra, None | Some(true)) => Some("ROLE_".into()),
                (LayoutPreset::Inetorgperson, Some(true)) => Some(String::new()),
                (_, _) => None,
            },
            revoke_roles: self.revoke_roles,
            disabled_dn,
            pool_size: self.pool_size,
            timeout: self.timeout.0,
        })
    }
}

/// A rustls client configuration on aws-lc-rs, trusting `ca_file` or the
/// Mozilla roots (LDAP here, and the JWK Set fetch).
pub fn client_tls(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    fn ldap(extra: &str) -> (Option<LdapSettings>, Collector) {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let f = parse(
            &format!(
                "[accounts.ldap]\nbind_dn = \"cn=admin,dc=g\"\nbind_password_file = \"{}\"\nbase_dn = \"dc=g\"\n{extra}",
                pw.display()
            ),
            &[],
        )
        .unwrap();
        let mut c = Collector::default();
        let s = f.accounts.unwrap().ldap.unwrap().validate(&mut c);
        (s, c)
    }

    #[test]
    fn defaults_apply() {
        let (s, c) = ldap("url = \"ldap://127.0.0.1:389\"");
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        let s = s.unwrap();
        assert_eq!(s.bind_password, "s3cret");
        assert_eq!(s.pool_size, DEFAULT_LDAP_POOL_SIZE);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.layout, Layout::inetorgperson("dc=g"));
        assert!(s.tls.is_none() && s.disabled_dn.is_none());
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn plaintext_to_a_remote_host_is_refused_unless_asked_for() {
        let (_, c) = ldap("url = \"ldap://ldap.example.org\"");
        assert!(
            c.diags.iter().any(|d| d.key == "accounts.ldap.url"),
            "{:?}",
            c.diags
        );
        let (s, c) = ldap("url = \"ldap://ldap.example.org\"\nstarttls = true");
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert!(s.unwrap().tls.is_some());
        let (_, c) = ldap("url = \"ldap://ldap.example.org\"\ndangerous_plaintext = true");
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        let (_, c) = ldap("url = \"ldap://[::1]:3890\"");
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        let (_, c) = ldap("url = \"ldaps://ldap.example.org\"\nstarttls = true");
        assert!(c.diags.iter().any(|d| d.key == "accounts.ldap.starttls"));
    }

    #[test]
    fn the_naming_attribute_carries_the_uid() {
        let (_, c) = ldap("url = \"ldap://127.0.0.1\"\nrdn_attribute = \"cn\"");
        assert!(
            c.diags.iter().any(|d| d.key == "accounts.ldap.attributes"),
            "{:?}",
            c.diags
        );
        let (s, c) = ldap(
            "url = \"ldap://127.0.0.1\"\nrdn_attribute = \"cn\"\nattributes = { cn = \"uid\", sn = \"sn\" }",
        );
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(s.unwrap().layout.rdn_attribute, "cn");
    }

    #[test]
    fn revoking_from_groups_of_names_is_warned_of() {
        let (s, c) = ldap("url = \"ldap://127.0.0.1\"\nrevoke_roles = true");
        assert!(s.unwrap().revoke_roles);
        assert!(
            c.diags
                .iter()
                .any(|d| d.key == "accounts.ldap.revoke_roles"),
            "{:?}",
            c.diags
        );
        let (_, c) =
            ldap("url = \"ldap://127.0.0.1\"\nrevoke_roles = true\nlayout = \"georchestra\"");
        assert!(c.diags.is_empty(), "{:?}", c.diags);
    }

    #[test]
    fn a_wildcard_role_rule_is_refused() {
        let (_, c) = ldap(
            "url = \"ldaps://l\"\nlayout = \"georchestra\"\n[accounts.ldap.roles]\nADMINISTRATOR = [\"*\"]",
        );
        assert!(
            c.diags.iter().any(|d| d.key == "accounts.ldap.roles"),
            "{:?}",
            c.diags
        );
    }
}
