//! Admin actions on accounts, written once: the admin CLI
//! (`vestibule users approve|enable|disable|delete`) and the admin page
//! (`/.vestibule/admin`) both call these, so the rule "disabling or
//! deleting an account ends what it holds" and the audit entry it leaves
//! cannot drift apart.
//!
//! ## Invariants
//!
//! - `disable` revokes every session of the account, also when it was
//!   disabled already (a session may have been started before, and
//!   `disable` promises none is left). Its device credentials are not
//!   deleted: they are refused while the owner is disabled (the owner's
//!   status decides on every use) and work again after `enable`.
//! - `delete` revokes the sessions, then deletes the account with its
//!   identities, devices and pairings (`ON DELETE CASCADE`).
//! - Every call that reaches the database leaves one audit entry (subject
//!   `account:<id>`), with outcome `ok`, `unchanged` or `not-found`, after
//!   the change. A store error before the change leaves none.
//! - Text from identity sources goes into audit details with control
//!   characters escaped ([`clean`]).
//! - With a [`LockoutGuard`] (the admin page), an admin cannot disable or
//!   delete their own account, nor the last active account in an admin
//!   group: that would leave nobody able to undo it from the page. The
//!   refusal is audited (outcome `refused`). The CLI has no guard: it runs
//!   on the server and is itself the way back in.

use std::net::IpAddr;

use vestibule_store::{Account, AccountStatus, AuditEntry, IdentityKey, Store, StoreError};

use super::now_ms;

/// Who acts, as the audit log names them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `cli:<$USER>`, or the admin's username on the admin page.
    pub name: String,
    /// The admin's address (the page), when known.
    pub client_ip: Option<IpAddr>,
    /// Appended to every detail, e.g. the CLI's ` (through sudo by ann)`.
    pub note: String,
    /// The self-lockout rule, for admins acting from the page.
    pub guard: Option<LockoutGuard>,
}

/// What the self-lockout rule needs to know about the acting admin.
#[derive(Debug, Clone)]
pub struct LockoutGuard {
    /// The acting admin's own account.
    pub own_account: i64,
    /// `accounts.admin_groups`: an active account in one of them is an
    /// admin who could undo the change.
    pub admin_groups: Vec<String>,
}

/// Why an action was refused by the self-lockout rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// The admin's own account.
    Yourself,
    /// The last active account in an admin group.
    LastAdmin,
}

/// A status change an admin can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// A pending (or disabled) account may sign in.
    Approve,
    /// A disabled account may sign in again.
    Enable,
    /// The account is refused, and its sessions end.
    Disable,
}

impl StatusAction {
    /// The action as the page's form and the audit log spell it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "enable" => Some(Self::Enable),
            "disable" => Some(Self::Disable),
            _ => None,
        }
    }

    /// `approve`, `enable` or `disable`: the audit entry's action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Enable => "enable",
            Self::Disable => "disable",
        }
    }

    /// The status the account ends in.
    pub fn target(self) -> AccountStatus {
        match self {
            Self::Approve | Self::Enable => AccountStatus::Active,
            Self::Disable => AccountStatus::Disabled,
        }
    }
}

/// What an admin action did, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The change is made; the audit detail, e.g.
    /// `active -> disabled; 2 session(s) revoked`.
    Changed(String),
    /// The account was active already: nothing written but the audit
    /// entry (outcome `unchanged`).
    AlreadyActive,
    /// The account was deleted between the caller's lookup and the write
    /// (outcome `not-found`).
    Gone,
    /// Refused by the self-lockout rule; nothing changed (outcome
    /// `refused`).
    Refused(Lockout),
}

/// The result of an admin action, and whether its audit entry was written
/// (the action stands either way; the caller reports a failed write the
/// way its audience sees warnings).
#[derive(Debug)]
pub struct Audited {
    /// What was done.
    pub done: Done,
    /// `Err` when the audit entry could not be appended.
    pub audit: Result<(), StoreError>,
}

/// Sets `account`'s status for `action`, revoking its sessions when it is
/// disabled, and writes the audit entry. `account` is the row the caller
/// looked up (by id, identity or username).
pub async fn set_status(
    store: &dyn Store,
    account: &Account,
    action: StatusAction,
    by: &Actor,
) -> Result<Audited, StoreError> {
    let (from, to) = (account.status, action.target());
    if to == AccountStatus::Disabled
        && let Some(why) = lockout(store, account, by).await?
    {
        return Ok(audit(store, by, action.as_str(), account, Done::Refused(why)).await);
    }
    if from == to && to == AccountStatus::Active {
        return Ok(audit(store, by, action.as_str(), account, Done::AlreadyActive).await);
    }
    if from != to && !store.set_status(account.id, to, now_ms()).await? {
        return Ok(audit(store, by, action.as_str(), account, Done::Gone).await);
    }
    let mut detail = format!("{from} -> {to}");
    if to == AccountStatus::Disabled {
        // Also when it was disabled already: a session may have been
        // started before, and `disable` promises none is left.
        let n = store.revoke_sessions_of(account.id).await?;
        detail.push_str(&format!("; {n} session(s) revoked"));
    }
    Ok(audit(store, by, action.as_str(), account, Done::Changed(detail)).await)
}

/// Revokes `account`'s sessions, deletes it (with its identities, devices
/// and pairings) and writes the audit entry.
pub async fn delete(
    store: &dyn Store,
    account: &Account,
    by: &Actor,
) -> Result<Audited, StoreError> {
    if let Some(why) = lockout(store, account, by).await? {
        return Ok(audit(store, by, "delete", account, Done::Refused(why)).await);
    }
    let ids = store.identities(account.id).await?;
    let n = store.revoke_sessions_of(account.id).await?;
    let done = if store.delete_account(account.id).await? {
        Done::Changed(format!(
            "username {}, identities [{}]; {n} session(s) revoked",
            clean(&account.username),
            identities_text(&ids)
        ))
    } else {
        Done::Gone
    };
    Ok(audit(store, by, "delete", account, done).await)
}

/// Whether taking `account` out of service (disable, delete) would lock
/// the acting admin out: their own account, or the last active admin.
async fn lockout(
    store: &dyn Store,
    account: &Account,
    by: &Actor,
) -> Result<Option<Lockout>, StoreError> {
    let Some(guard) = &by.guard else {
        return Ok(None);
    };
    if account.id == guard.own_account {
        return Ok(Some(Lockout::Yourself));
    }
    let is_admin = |a: &Account| a.groups.iter().any(|g| guard.admin_groups.contains(g));
    if account.status != AccountStatus::Active || !is_admin(account) {
        return Ok(None);
    }
    let others = store
        .accounts(Some(AccountStatus::Active), u32::MAX)
        .await?
        .iter()
        .any(|a| a.id != account.id && is_admin(a));
    Ok((!others).then_some(Lockout::LastAdmin))
}

async fn audit(
    store: &dyn Store,
    by: &Actor,
    action: &str,
    account: &Account,
    done: Done,
) -> Audited {
    let (outcome, detail) = match &done {
        Done::Changed(detail) => ("ok", detail.as_str()),
        Done::AlreadyActive => ("unchanged", "already active"),
        Done::Gone => ("not-found", "deleted meanwhile"),
        Done::Refused(Lockout::Yourself) => ("refused", "an admin's own account"),
        Done::Refused(Lockout::LastAdmin) => ("refused", "the last active admin"),
    };
    let e = AuditEntry::new(
        now_ms(),
        by.name.as_str(),
        action,
        format!("account:{}", account.id),
    )
    .with_client_ip(by.client_ip)
    .with_outcome(outcome)
    .with_detail(format!("{detail}{}", by.note));
    Audited {
        audit: store.append_audit(&e).await,
        done,
    }
}

/// Escapes control characters (and only them), so that a crafted name
/// cannot rewrite a terminal or forge a line of the audit log.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `SOURCE:SUBJECT`, cleaned.
pub fn key_text(k: &IdentityKey) -> String {
    clean(&format!("{}:{}", k.source, k.subject))
}

/// Identities as `a:x, b:y`, cleaned.
pub fn identities_text(keys: &[IdentityKey]) -> String {
    keys.iter().map(key_text).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("bob\u{1b}[2J\n"), "bob\\u{1b}[2J\\n");
        assert_eq!(clean("Zoë"), "Zoë");
    }

    #[test]
    fn actions_round_trip_and_name_their_status() {
        for a in [
            StatusAction::Approve,
            StatusAction::Enable,
            StatusAction::Disable,
        ] {
            assert_eq!(StatusAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(StatusAction::parse("delete"), None);
        assert_eq!(StatusAction::Approve.target(), AccountStatus::Active);
        assert_eq!(StatusAction::Disable.target(), AccountStatus::Disabled);
    }
}
