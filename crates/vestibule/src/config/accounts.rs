//! `[database]`, `[accounts]` (with its roles) and `[sessions]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::HumanDuration;
use super::diagnostic::Collector;

/// Default directory for the embedded SQLite database.
pub const DEFAULT_DATA_DIR: &str = "vestibule-data";
/// Default pool size.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 8;
/// Default `accounts.cache_ttl`.
pub const DEFAULT_ACCOUNT_CACHE_TTL: &str = "30s";
/// Default session idle timeout.
pub const DEFAULT_SESSION_IDLE: &str = "30m";
/// Default session absolute timeout.
pub const DEFAULT_SESSION_ABSOLUTE: &str = "12h";

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
            max_connections: DEFAULT_DB_MAX_CONNECTIONS,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_db_max_connections() -> u32 {
    DEFAULT_DB_MAX_CONNECTIONS
}

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
    /// `[accounts.ldap]`: also write accounts to an LDAP directory.
    /// Default off.
    pub ldap: Option<super::ldap::LdapConfig>,
}

fn default_cache_ttl() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ACCOUNT_CACHE_TTL).unwrap_or_default()
}

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
    /// The LDAP directory accounts are written to.
    pub ldap: Option<super::ldap::LdapSettings>,
}

/// Session timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute timeout.
    pub absolute: Duration,
}

impl AccountsConfig {
    /// Checks `[accounts]` with the `[database]` it keeps them in.
    /// `source_on`: whether an identity source is on to key them.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        db: &DatabaseConfig,
        source_on: bool,
    ) -> Option<AccountSettings> {
        if self.cache_ttl.0.is_zero() {
            c.error(
                "accounts.cache_ttl",
                "a zero cache would query the database on every request",
                "use e.g. \"30s\"",
            );
        }
        if !source_on {
            c.warn(
                "accounts",
                "accounts are on but no identity source is configured, so no account is ever used",
                "configure [source.headers] or [source.jwt], or remove [accounts]",
            );
        }
        let (url, sqlite_dir) = db.validate(c)?;
        Some(AccountSettings {
            roles: self
                .roles
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cache_ttl: self.cache_ttl.0,
            store: vestibule_store::StoreConfig {
                url,
                max_connections: db.max_connections,
            },
            sqlite_dir,
            admin_groups: self.admin_groups.clone(),
            ldap: self.ldap.as_ref().and_then(|l| l.validate(c)),
        })
    }
}

impl DatabaseConfig {
    /// The store URL, and the directory to create for an embedded SQLite file.
    fn validate(&self, c: &mut Collector) -> Option<(String, Option<PathBuf>)> {
        let (url, sqlite_dir) = match &self.url {
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
                let dir = if self.data_dir.is_absolute() {
                    self.data_dir.clone()
                } else {
                    std::env::current_dir()
                        .unwrap_or_default()
                        .join(&self.data_dir)
                };
                (
                    format!("sqlite://{}", dir.join("vestibule.db").display()),
                    Some(dir),
                )
            }
        };
        if self.max_connections == 0 || self.max_connections > 1000 {
            c.error(
                "database.max_connections",
                format!("{} is outside 1..=1000", self.max_connections),
                "keep the default, 8",
            );
        }
        Some((url, sqlite_dir))
    }
}

impl SessionsConfig {
    /// Checks `[sessions]`. `accounts_without_tls`: accounts are on and no
    /// TLS listener is configured, so cookies may lack `Secure`.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        accounts_without_tls: bool,
    ) -> SessionSettings {
        let sessions = SessionSettings {
            idle: self.idle_timeout.0,
            absolute: self.absolute_timeout.0,
        };
        if sessions.idle.is_zero()
            || sessions.absolute.is_zero()
            || sessions.idle > sessions.absolute
        {
            c.error(
                "sessions.idle_timeout",
                "session timeouts must be above zero, and idle no longer than absolute",
                "use e.g. idle_timeout = \"30m\", absolute_timeout = \"12h\"",
            );
        }
        if accounts_without_tls {
            c.warn(
                "sessions",
                "without a TLS listener, session cookies are `vestibule` (not `__Host-vestibule`, not Secure) unless a trusted front sends X-Forwarded-Proto: https",
                "terminate TLS at a front that sends X-Forwarded-Proto: https, or configure [server.tls]",
            );
        }
        sessions
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    /// `[accounts]` of `f`, checked against its `[database]`.
    fn accounts(f: &crate::config::FileConfig, c: &mut Collector) -> AccountSettings {
        let a = f.accounts.as_ref().expect("an [accounts] section");
        a.validate(c, &f.database, true).expect("valid accounts")
    }

    #[test]
    fn defaults_apply() {
        let f = parse("[accounts]", &[]).unwrap();
        let mut c = Collector::default();
        let a = accounts(&f, &mut c);
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(a.cache_ttl, Duration::from_secs(30));
        assert_eq!(a.store.max_connections, DEFAULT_DB_MAX_CONNECTIONS);
        assert!(a.store.url.starts_with("sqlite://"), "{}", a.store.url);
        assert!(a.sqlite_dir.unwrap().ends_with(DEFAULT_DATA_DIR));
        let s = f.sessions.validate(&mut c, false);
        assert_eq!(s.idle, Duration::from_secs(30 * 60));
        assert_eq!(s.absolute, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            "[accounts]\n[sessions]\nidle_timeout = \"1h\"",
            &[
                ("VESTIBULE_DATABASE__URL", "postgres://v@db/v"),
                ("VESTIBULE_ACCOUNTS__ROLES__ADMIN", "[\"admins\"]"),
                ("VESTIBULE_SESSIONS__IDLE_TIMEOUT", "10m"),
            ],
        )
        .unwrap();
        let mut c = Collector::default();
        let a = accounts(&f, &mut c);
        assert_eq!(a.store.url, "postgres://v@db/v");
        assert_eq!(a.sqlite_dir, None);
        assert_eq!(a.roles, [("admin".to_owned(), vec!["admins".to_owned()])]);
        assert_eq!(
            f.sessions.validate(&mut c, false).idle,
            Duration::from_secs(600)
        );
        assert!(c.diags.is_empty(), "{:?}", c.diags);
    }
}
