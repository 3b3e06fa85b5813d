//! What every admin command shares: the exit codes ([`Fail`]), opening the
//! database the configuration names ([`open`]), and finding the one account
//! an ACCOUNT argument names ([`find`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use vestibule_store::{Account, AuditEntry, Backend, IdentityKey, Store, StoreError};

use super::output::Table;
use crate::accounts::admin::{Actor, clean, identities_text};
use crate::accounts::now_ms;
use crate::config::{self, AccountSettings, Severity};

/// Why a command failed.
#[derive(Debug)]
pub(super) enum Fail {
    /// Not found, ambiguous, conflict: exit 1.
    Refused(String),
    /// Configuration, argument or database trouble: exit 2.
    Setup(String),
    /// A store call failed: 1 for `NotFound`/`Conflict`, else 2.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    pub(super) fn exit(self) -> ExitCode {
        let (code, msg) = match self {
            Self::Refused(m) => (1, m),
            Self::Setup(m) => (2, m),
            Self::Store(e @ (StoreError::NotFound | StoreError::Conflict(_))) => (1, e.to_string()),
            Self::Store(e) => (2, e.to_string()),
        };
        eprintln!("error: {msg}");
        ExitCode::from(code)
    }
}

pub(super) fn finish(r: Result<(), Fail>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

/// Loads and validates the configuration and returns its `[accounts]`.
pub(super) fn account_settings(path: &Path) -> Result<(AccountSettings, Option<String>), Fail> {
    settings_with_accounts(path).map(|s| (s.accounts, s.source))
}

/// What the admin commands read from a valid configuration.
pub(super) struct AdminSettings {
    /// `[accounts]`.
    pub(super) accounts: AccountSettings,
    /// The identity source's name.
    pub(super) source: Option<String>,
    /// `[source.oidc]`'s issuer when it is on beside the other source.
    pub(super) also_source: Option<String>,
    /// `[keys]`.
    pub(super) keys: config::KeySettings,
    /// `[oidc_provider]`, when configured.
    pub(super) provider: Option<config::OidcProviderSettings>,
}

/// [`account_settings`], and the `[keys]` and `[oidc_provider]` settings.
pub(super) fn settings_with_accounts(path: &Path) -> Result<AdminSettings, Fail> {
    let file = config::load(path).map_err(|e| Fail::Setup(e.to_string()))?;
    let (settings, diags) = config::validate(&file);
    let Some(settings) = settings else {
        for d in diags.iter().filter(|d| d.severity == Severity::Error) {
            eprintln!("{d}");
        }
        return Err(Fail::Setup(format!(
            "{} has errors (see `vestibule check`)",
            path.display()
        )));
    };
    let source = settings
        .identity_source
        .as_ref()
        .map(|s| s.name().to_owned());
    let also_source = settings
        .identity_source
        .as_ref()
        .and_then(|s| s.also_oidc.as_ref())
        .map(|o| o.issuer.clone());
    match settings.accounts {
        Some(accounts) => Ok(AdminSettings {
            accounts,
            source,
            also_source,
            keys: settings.keys,
            provider: settings.oidc_provider,
        }),
        None => Err(Fail::Setup(format!(
            "{} has no [accounts] section: accounts are off, so there is no account database",
            path.display()
        ))),
    }
}

/// [`account_settings`] for commands that report their own way (backup,
/// restore): the `[accounts]` settings, or the exit code after the reason
/// was printed.
pub(super) fn account_settings_for(path: &Path) -> Result<AccountSettings, ExitCode> {
    account_settings(path).map(|(a, _)| a).map_err(Fail::exit)
}

/// The file behind a `sqlite:` URL.
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// An open store, and who is acting.
pub(super) struct Ctx {
    pub(super) store: Arc<dyn Store>,
    /// `cli:<$USER>`, noting the sudo user behind it.
    pub(super) actor: Actor,
    /// The configured identity source's name, when there is one.
    pub(super) source: Option<String>,
    /// `[source.oidc]`'s issuer when it is on beside the other source.
    pub(super) also_source: Option<String>,
    /// `[keys]`.
    pub(super) keys: config::KeySettings,
    /// `[accounts.ldap]`: status changes move the directory entry too.
    pub(super) directory: Option<crate::accounts::ldap::Directory>,
    /// `[oidc_provider]`: `vestibule clients` refuses the file's client ids.
    pub(super) provider: Option<config::OidcProviderSettings>,
}

pub(super) async fn open(path: &Path) -> Result<Ctx, Fail> {
    let AdminSettings {
        accounts: a,
        source,
        also_source,
        keys,
        provider,
    } = settings_with_accounts(path)?;
    // A relative `data_dir` is resolved against the working directory: run
    // from elsewhere, it would name a new, empty database. Refuse that
    // rather than create one.
    if Backend::of_url(&a.store.url).ok() == Some(Backend::Sqlite)
        && let Some(file) = sqlite_file(&a.store.url)
        && !file.exists()
    {
        return Err(Fail::Setup(format!(
            "there is no account database at {} (a relative `database.data_dir` is relative to \
             the directory you run vestibule in; run this where the gateway runs, or use \
             `vestibule migrate` to create an empty one)",
            file.display()
        )));
    }
    let store = crate::app::open_store(&a).await.map_err(Fail::Setup)?;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let note = match std::env::var("SUDO_USER") {
        Ok(s) if !s.is_empty() && s != user => format!(" (through sudo by {s})"),
        _ => String::new(),
    };
    let directory = a.ldap.clone().map(crate::accounts::ldap::Directory::new);
    Ok(Ctx {
        directory,
        store,
        actor: Actor {
            name: format!("cli:{user}"),
            client_ip: None,
            note,
            // The CLI runs on the server: it is the way back in after a
            // lockout, so it is not guarded against one.
            guard: None,
        },
        source,
        also_source,
        keys,
        provider,
    })
}

impl Ctx {
    /// Appends the audit entry for a command that acted on `account`.
    pub(super) async fn audit(&self, action: &str, account: i64, outcome: &str, detail: &str) {
        self.audit_subject(action, &format!("account:{account}"), outcome, detail)
            .await;
    }

    /// Appends the audit entry for a command that acted on `subject`
    /// (`account:<id>`, `client:<id>`).
    pub(super) async fn audit_subject(
        &self,
        action: &str,
        subject: &str,
        outcome: &str,
        detail: &str,
    ) {
        let e = AuditEntry::new(now_ms(), self.actor.name.as_str(), action, subject)
            .with_outcome(outcome)
            .with_detail(format!("{detail}{}", self.actor.note));
        self.warn_if_unaudited(self.store.append_audit(&e).await);
    }

    /// Tells the operator, on stderr, that an audit entry is missing.
    pub(super) fn warn_if_unaudited(&self, written: Result<(), StoreError>) {
        if let Err(err) = written {
            eprintln!("warning: the audit entry could not be written: {err}");
        }
    }
}

/// `SOURCE:SUBJECT`, both parts non-empty.
pub(super) fn parse_identity(s: &str) -> Option<IdentityKey> {
    let (source, subject) = s.split_once(':')?;
    (!source.is_empty() && !subject.is_empty()).then(|| IdentityKey::new(source, subject))
}

/// The one account `spec` names: an id, an identity, or a username that
/// matches exactly one account. Never an email.
pub(super) async fn find(store: &dyn Store, spec: &str) -> Result<Account, Fail> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let found = match spec.parse::<i64>() {
            Ok(id) => store.account(id).await?,
            Err(_) => None,
        };
        return found.ok_or_else(|| {
            Fail::Refused(format!(
                "no account has the id {spec} (a number is always read as an id)"
            ))
        });
    }
    if let Some(key) = parse_identity(spec)
        && let Some(a) = store.account_by_identity(&key).await?
    {
        return Ok(a);
    }
    let mut matches = store.accounts_by_username(spec).await?;
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(Fail::Refused(format!(
            "no account matches {} (give an id, SOURCE:SUBJECT, or an exact username; \
             accounts are never looked up by email)",
            clean(spec)
        ))),
        n => {
            let mut t = Table::new(&["ID", "USERNAME", "STATUS", "EMAIL", "IDENTITIES"]);
            for a in &matches {
                let ids = identities_text(&store.identities(a.id).await?);
                t.row(vec![
                    a.id.to_string(),
                    clean(&a.username),
                    a.status.to_string(),
                    clean(a.email.as_deref().unwrap_or("")),
                    ids,
                ]);
            }
            Err(Fail::Refused(format!(
                "{n} accounts have the username {}; name one by id or SOURCE:SUBJECT:\n{}",
                clean(spec),
                t.render().trim_end()
            )))
        }
    }
}

/// The username of each account id (`-` for one that is gone), each
/// looked up once.
pub(super) async fn usernames(
    ctx: &Ctx,
    ids: impl Iterator<Item = i64>,
) -> Result<std::collections::HashMap<i64, String>, Fail> {
    let mut names = std::collections::HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            let name = ctx
                .store
                .account(id)
                .await?
                .map_or_else(|| "-".to_owned(), |a| a.username);
            slot.insert(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_need_both_parts() {
        assert_eq!(
            parse_identity("authentik:a:b"),
            Some(IdentityKey::new("authentik", "a:b"))
        );
        assert_eq!(parse_identity("authentik:"), None);
        assert_eq!(parse_identity(":x"), None);
        assert_eq!(parse_identity("bob"), None);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/v.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/v.db"))
        );
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }
}
