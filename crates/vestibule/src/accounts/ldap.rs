//! Writing accounts to an LDAP directory (`[accounts.ldap]`).
//!
//! The entry, its modifications, the organisation and the roles are computed
//! in `vestibule_core::ldap`; this module talks to the directory.
//!
//! **Order, so that the store and the directory never disagree.** For an
//! account without a written entry:
//! 1. the store records the DN and object identifier the entry will have,
//!    with `written = false`;
//! 2. the directory gets the organisation (idempotent), then the user, then
//!    the role memberships; on a failure, what this attempt created is
//!    removed again;
//! 3. the store records `written = true`.
//!
//! A crash between 2 and 3 leaves `written = false`: the next login finds
//! the entry by its object identifier (or its `oAuth2Provider`/`oAuth2Uid`)
//! and adopts it instead of creating a second one. Someone else's entry
//! with the same uid or mail is a conflict, and nothing is overwritten.

use std::collections::HashSet;
use std::sync::Mutex;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use tokio::sync::Semaphore;
use vestibule_core::identity::Identity;
use vestibule_core::ldap::{Entry, Field, Person, escape_filter_value};
use vestibule_store::{Account, DirectoryEntry, Store, StoreError};

use crate::config::LdapSettings;

/// LDAP result codes (RFC 4511 §4.1.9) this module tells apart.
const NO_SUCH_OBJECT: u32 = 32;
const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
const ENTRY_ALREADY_EXISTS: u32 = 68;
const NO_SUCH_ATTRIBUTE: u32 = 16;

/// What a sync decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The entry is written and up to date; its roles as read back (the
    /// `cn` of every role group that lists it), when roles are forwarded.
    Written(Option<Vec<String>>),
    /// The entry cannot be written without an admin: the uid or the mail
    /// belongs to another entry, or the front sent too little.
    NeedsAdmin(String),
}

/// The directory is unreachable or refused a write: the login gets 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryError(pub String);

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LDAP directory: {}", self.0)
    }
}

impl From<ldap3::LdapError> for DirectoryError {
    fn from(e: ldap3::LdapError) -> Self {
        Self(e.to_string())
    }
}

impl From<StoreError> for DirectoryError {
    fn from(e: StoreError) -> Self {
        Self(format!("store: {e}"))
    }
}

impl From<DirectoryError> for StoreError {
    fn from(e: DirectoryError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

type Result<T> = std::result::Result<T, DirectoryError>;

/// A test-only crash point: the process aborts (no destructor, no store
/// write) where `FAILPOINTS` names it (not a `VESTIBULE_` variable: those are configuration keys). Compiled only with the
/// `failpoints` feature, which only the integration tests turn on.
#[cfg(feature = "failpoints")]
fn failpoint(name: &str) {
    if std::env::var("FAILPOINTS").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
#[cfg(not(feature = "failpoints"))]
fn failpoint(_: &str) {}

/// The LDAP directory, with a small pool of bound connections.
pub struct Directory {
    s: LdapSettings,
    idle: Mutex<Vec<Ldap>>,
    permits: Semaphore,
    /// Held for a whole sync. Writes are rare (first logins, changes), and
    /// a browser's parallel first requests would otherwise race to create
    /// the same entry: the second now waits, then finds it written.
    writing: tokio::sync::Mutex<()>,
}

/// A connection borrowed from the pool; returned on [`Pooled::done`].
struct Pooled<'a> {
    dir: &'a Directory,
    ldap: Option<Ldap>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Pooled<'_> {
    fn get(&mut self) -> &mut Ldap {
        // Set in `conn` and taken only in `done`.
        self.ldap.as_mut().expect("a pooled connection")
    }
    /// Back to the pool (a connection that saw an error is dropped instead).
    fn done(mut self) {
        if let (Some(l), Ok(mut idle)) = (self.ldap.take(), self.dir.idle.lock()) {
            idle.push(l);
        }
    }
}

/// What adding a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// Added now (to undo if the attempt fails).
    Added,
    /// It was there already.
    AlreadyThere,
    /// The group does not exist.
    NoGroup,
}

/// What one attempt created, to remove again if a later write fails.
#[derive(Default)]
struct Created {
    entries: Vec<String>,
    memberships: Vec<(String, String)>,
}

impl Directory {
    /// The directory `s` describes; connects on first use.
    pub fn new(s: LdapSettings) -> Self {
        let permits = Semaphore::new(s.pool_size);
        Self {
            s,
            idle: Mutex::new(Vec::new()),
            permits,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LdapSettings {
        &self.s
    }

    async fn connect(&self) -> Result<Ldap> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.s.timeout)
            .set_starttls(self.s.starttls);
        if let Some(tls) = &self.s.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.s.url).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection closed");
            }
        });
        ldap.with_timeout(self.s.timeout)
            .simple_bind(&self.s.bind_dn, &self.s.bind_password)
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("bind as {}: {e}", self.s.bind_dn)))?;
        Ok(ldap)
    }

    async fn conn(&self) -> Result<Pooled<'_>> {
        let permit = tokio::time::timeout(self.s.timeout, self.permits.acquire())
            .await
            .map_err(|_| DirectoryError("every pooled connection is busy".into()))?
            .map_err(|_| DirectoryError("pool closed".into()))?;
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let ldap = match reused {
            // A connection whose server went away is replaced.
            Some(mut l) => {
                if l.is_closed() {
                    self.connect().await?
                } else {
                    l
                }
            }
            None => self.connect().await?,
        };
        Ok(Pooled {
            dir: self,
            ldap: Some(ldap),
            _permit: permit,
        })
    }

    /// Binds and searches the base (`vestibule check --online`); reports a
    /// missing object class of the layout (`georchestraUser`) by name.
    pub async fn check_online(&self) -> Result<()> {
        let mut c = self.conn().await?;
        let base = self.s.layout.base_dn.clone();
        let timeout = self.s.timeout;
        c.get()
            .with_timeout(timeout)
            .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("search of the base {base}: {e}")))?;
        // The subschema entry (RFC 4512 §4.2) lists the object classes the
        // server knows.
        let (entries, _) = c
            .get()
            .with_timeout(timeout)
            .search(
                "cn=Subschema",
                Scope::Base,
                "(objectClass=subschema)",
                vec!["objectClasses"],
            )
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("reading the schema: {e}")))?;
        let known: Vec<String> = entries
            .into_iter()
            .flat_map(|e| {
                SearchEntry::construct(e)
                    .attrs
                    .remove("objectClasses")
                    .unwrap_or_default()
            })
            .collect();
        for class in self
            .s
            .layout
            .object_classes
            .iter()
            .chain(&self.s.role_object_classes)
        {
            let needle = format!("NAME '{}'", class.to_ascii_lowercase());
            let found = known.iter().any(|d| {
                let d = d.to_ascii_lowercase();
                d.contains(&needle) || d.contains(&format!("'{}' ", class.to_ascii_lowercase()))
            });
            if !found {
                return Err(DirectoryError(format!(
                    "the directory's schema has no object class {class}; load the schema it comes from (geOrchestra: georchestraSchema.ldif)"
                )));
            }
        }
        c.done();
        Ok(())
    }

    /// Writes or updates the entry of `account`, from `id`, in the pending
    /// container when `pending`.
    pub async fn sync(
        &self,
        store: &dyn Store,
        account: &Account,
        id: &Identity,
        pending: bool,
    ) -> Result<Synced> {
        let _writing = tokio::time::timeout(self.s.timeout, self.writing.lock())
            .await
            .map_err(|_| DirectoryError("another directory write is taking too long".into()))?;
        let link = store.directory_entry(account.id).await?;
        let object_id = link
            .as_ref()
            .map(|l| l.object_id.clone())
            .unwrap_or_else(random_uuid);
        let person = match Person::of(id, object_id) {
            Ok(p) => p,
            Err(e) => return Ok(Synced::NeedsAdmin(e.to_string())),
        };
        let mut c = self.conn().await?;
        let r = self
            .sync_on(c.get(), store, account, &person, link, pending)
            .await;
        if r.is_ok() {
            c.done();
        }
        r
    }

    async fn sync_on(
        &self,
        l: &mut Ldap,
        store: &dyn Store,
        account: &Account,
        p: &Person,
        link: Option<DirectoryEntry>,
        pending: bool,
    ) -> Result<Synced> {
        let layout = &self.s.layout;
        let ours = self.find_ours(l, p, link.as_ref()).await?;
        let uid_attr = layout.rdn_attribute.clone();
        // Someone else's entry with this uid or mail: a conflict.
        for (attr, value) in [
            (Some(uid_attr.as_str()), Some(&p.uid)),
            (layout.attribute_for(Field::Mail), p.mail.as_ref()),
        ] {
            let (Some(attr), Some(value)) = (attr, value) else {
                continue;
            };
            let filter = format!("({attr}={})", escape_filter_value(value));
            for e in self.search(l, &layout.base_dn, &filter).await? {
                if ours.as_ref().is_none_or(|o| !same_dn(&o.dn, &e.dn)) {
                    return Ok(Synced::NeedsAdmin(format!(
                        "the {attr} {value} already belongs to another directory entry ({})",
                        e.dn
                    )));
                }
            }
        }
        let org = match layout.orgs_rdn {
            Some(_) => account
                .org
                .clone()
                .or_else(|| self.s.default_org.clone())
                .filter(|o| !o.trim().is_empty()),
            None => None,
        };
        let mapped = self.s.roles.map(&account.groups);
        if !mapped.dropped.is_empty() {
            tracing::warn!(
                account = account.id,
                dropped = ?mapped.dropped,
                "groups with no [accounts.ldap.roles] mapping give no directory role"
            );
        }
        let container = self.target_container(account, pending);
        match ours {
            Some(existing) => {
                // An entry adopted from elsewhere (written by geOrchestra's
                // console, matched by oAuth2Provider/oAuth2Uid) keeps its
                // identifier; the store records that one.
                let object_id = layout
                    .attribute_for(Field::ObjectId)
                    .and_then(|a| first(&existing, a))
                    .unwrap_or(&p.object_id)
                    .to_owned();
                let mut dn = existing.dn.clone();
                let current: Vec<(String, Vec<String>)> = existing.attrs.into_iter().collect();
                let changes = match layout.sync_changes(p, &current) {
                    Ok(c) => c,
                    Err(e) => return Ok(Synced::NeedsAdmin(e.to_string())),
                };
                if !changes.is_empty() {
                    let mods = changes
                        .into_iter()
                        .map(|(a, v)| Mod::Replace(a, v.into_iter().collect()))
                        .collect();
                    l.with_timeout(self.s.timeout)
                        .modify(&dn, mods)
                        .await?
                        .success()?;
                    failpoint("ldap-after-sync-modify");
                }
                if !parent_is(&dn, &container) {
                    dn = self.move_entry(l, &dn, &container).await?;
                } else if link.as_ref().is_some_and(|k| !same_dn(&k.dn, &dn)) {
                    // Found elsewhere than recorded: a move a crash cut
                    // short. Finish it: the groups still naming the old DN.
                    self.heal_memberships(l, &dn).await?;
                }
                // Record the DN before the memberships: a crash now is
                // reconciled by the same path.
                self.record(store, account.id, &dn, &object_id, false)
                    .await?;
                let mut created = Created::default();
                if let Some(org) = &org {
                    self.ensure_org(l, org, &dn, &mut created).await?;
                    self.leave_other_orgs(l, org, &dn).await?;
                }
                for role in &mapped.roles {
                    self.ensure_member(l, &layout.role_dn(role), role, &dn, &mut created)
                        .await?;
                }
                if self.s.revoke_roles {
                    for role in self.s.roles.not_granted(&mapped.roles) {
                        self.remove_member(l, &layout.role_dn(&role), &dn).await?;
                    }
                }
                self.record(store, account.id, &dn, &object_id, true)
                    .await?;
                Ok(Synced::Written(self.forwarded_roles(l, &dn).await?))
            }
            None => {
                let entry = match layout.user_entry(p, pending) {
                    Ok(e) => e,
                    Err(e) => return Ok(Synced::NeedsAdmin(e.to_string())),
                };
                let dn = format!(
                    "{}={},{container}",
                    layout.rdn_attribute,
                    vestibule_core::ldap::escape_dn_value(&p.uid)
                );
                let entry = Entry {
                    dn: dn.clone(),
                    ..entry
                };
                // 1. The store says what is about to be written.
                self.record(store, account.id, &dn, &p.object_id, false)
                    .await?;
                // 2. Organisation, user, roles; undone on failure.
                let mut created = Created::default();
                let r = self
                    .create(l, &entry, org.as_deref(), &mapped.roles, &mut created)
                    .await;
                if let Err(e) = r {
                    self.undo(l, created).await;
                    return Err(e);
                }
                failpoint("ldap-after-directory-writes");
                // 3. Done.
                self.record(store, account.id, &dn, &p.object_id, true)
                    .await?;
                tracing::info!(account = account.id, dn = %dn, "directory entry created");
                Ok(Synced::Written(self.forwarded_roles(l, &dn).await?))
            }
        }
    }

    async fn create(
        &self,
        l: &mut Ldap,
        entry: &Entry,
        org: Option<&str>,
        roles: &[String],
        created: &mut Created,
    ) -> Result<()> {
        if let Some(org) = org {
            self.ensure_org(l, org, &entry.dn, created).await?;
        }
        let attrs = entry
            .attrs
            .iter()
            .map(|(a, v)| (a.clone(), v.iter().cloned().collect::<HashSet<_>>()))
            .collect();
        l.with_timeout(self.s.timeout)
            .add(&entry.dn, attrs)
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("adding {}: {e}", entry.dn)))?;
        created.entries.push(entry.dn.clone());
        failpoint("ldap-after-user-entry");
        for role in roles {
            self.ensure_member(l, &self.s.layout.role_dn(role), role, &entry.dn, created)
                .await?;
        }
        Ok(())
    }

    /// Removes what an attempt created, newest first. A failure here is
    /// logged: the store still says `written = false`, and the next login
    /// adopts what is left by its object identifier.
    async fn undo(&self, l: &mut Ldap, created: Created) {
        for (group, member) in created.memberships.iter().rev() {
            let m = Mod::Delete(
                self.s.layout.member_attribute.clone(),
                HashSet::from([member.clone()]),
            );
            if let Err(e) = l.with_timeout(self.s.timeout).modify(group, vec![m]).await {
                tracing::warn!(group = %group, error = %e, "could not undo a directory membership");
            }
        }
        for dn in created.entries.iter().rev() {
            if let Err(e) = l.with_timeout(self.s.timeout).delete(dn).await {
                tracing::warn!(dn = %dn, error = %e, "could not undo a directory entry");
            }
        }
    }

    /// The organisation's two entries, created if missing, with `member`
    /// among the group's members.
    async fn ensure_org(
        &self,
        l: &mut Ldap,
        org: &str,
        member: &str,
        created: &mut Created,
    ) -> Result<()> {
        let Some(group_dn) = self.s.layout.org_group_dn(org) else {
            return Ok(());
        };
        match self.add_member(l, &group_dn, member).await? {
            Membership::Added => {
                created.memberships.push((group_dn, member.to_owned()));
                return Ok(());
            }
            Membership::AlreadyThere => return Ok(()),
            Membership::NoGroup => {}
        }
        let Some([group, ext]) = self.s.layout.org_entries(org, member, &random_uuid()) else {
            return Ok(());
        };
        for e in [ext, group] {
            let attrs = e
                .attrs
                .iter()
                .map(|(a, v)| (a.clone(), v.iter().cloned().collect::<HashSet<_>>()))
                .collect();
            let r = l.with_timeout(self.s.timeout).add(&e.dn, attrs).await?;
            match r.rc {
                0 => created.entries.push(e.dn.clone()),
                // Created meanwhile by another login: add to it.
                ENTRY_ALREADY_EXISTS if e.dn == group_dn => {
                    if self.add_member(l, &group_dn, member).await? == Membership::Added {
                        created
                            .memberships
                            .push((group_dn.clone(), member.to_owned()));
                    }
                }
                ENTRY_ALREADY_EXISTS => {}
                _ => return Err(DirectoryError(format!("adding {}: {}", e.dn, r))),
            }
        }
        Ok(())
    }

    /// Removes `member` from every other organisation (one per user).
    async fn leave_other_orgs(&self, l: &mut Ldap, org: &str, member: &str) -> Result<()> {
        let (Some(orgs), Some(keep)) = (
            self.s.layout.orgs_rdn.as_ref(),
            self.s.layout.org_group_dn(org),
        ) else {
            return Ok(());
        };
        let base = format!("{orgs},{}", self.s.layout.base_dn);
        let filter = format!(
            "(&(objectClass=groupOfMembers)(member={}))",
            escape_filter_value(member)
        );
        for g in self.search(l, &base, &filter).await? {
            if !same_dn(&g.dn, &keep) {
                let m = Mod::Delete(
                    self.s.layout.member_attribute.clone(),
                    HashSet::from([member.to_owned()]),
                );
                l.with_timeout(self.s.timeout)
                    .modify(&g.dn, vec![m])
                    .await?
                    .success()?;
            }
        }
        Ok(())
    }

    /// `member` in role group `group_dn`, the group created if missing.
    async fn ensure_member(
        &self,
        l: &mut Ldap,
        group_dn: &str,
        role: &str,
        member: &str,
        created: &mut Created,
    ) -> Result<()> {
        match self.add_member(l, group_dn, member).await? {
            Membership::Added => {
                created
                    .memberships
                    .push((group_dn.to_owned(), member.to_owned()));
                Ok(())
            }
            Membership::AlreadyThere => Ok(()),
            Membership::NoGroup => {
                let mut attrs: Vec<(String, HashSet<String>)> = vec![
                    (
                        "objectClass".into(),
                        self.s.role_object_classes.iter().cloned().collect(),
                    ),
                    ("cn".into(), HashSet::from([role.to_owned()])),
                    (
                        self.s.layout.member_attribute.clone(),
                        HashSet::from([member.to_owned()]),
                    ),
                ];
                if self
                    .s
                    .role_object_classes
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("georchestraRole"))
                {
                    attrs.push((
                        "georchestraObjectIdentifier".into(),
                        HashSet::from([random_uuid()]),
                    ));
                }
                let r = l.with_timeout(self.s.timeout).add(group_dn, attrs).await?;
                match r.rc {
                    // Role groups are shared and stay once created.
                    0 => Ok(()),
                    ENTRY_ALREADY_EXISTS => {
                        if self.add_member(l, group_dn, member).await? == Membership::Added {
                            created
                                .memberships
                                .push((group_dn.to_owned(), member.to_owned()));
                        }
                        Ok(())
                    }
                    _ => Err(DirectoryError(format!("adding {group_dn}: {r}"))),
                }
            }
        }
    }

    /// Adds (`add`) or deletes `member` in `group_dn`'s member attribute;
    /// the result code is the caller's to judge.
    async fn change_member(
        &self,
        l: &mut Ldap,
        group_dn: &str,
        member: &str,
        add: bool,
    ) -> Result<ldap3::LdapResult> {
        let attr = self.s.layout.member_attribute.clone();
        let value = HashSet::from([member.to_owned()]);
        let m = if add {
            Mod::Add(attr, value)
        } else {
            Mod::Delete(attr, value)
        };
        Ok(l.with_timeout(self.s.timeout)
            .modify(group_dn, vec![m])
            .await?)
    }

    /// Removes `member` from `group_dn` (`revoke_roles`); nothing to do
    /// when it is not a member or the group does not exist.
    async fn remove_member(&self, l: &mut Ldap, group_dn: &str, member: &str) -> Result<()> {
        let r = self.change_member(l, group_dn, member, false).await?;
        match r.rc {
            0 => {
                tracing::info!(group = %group_dn, member = %member, "directory role revoked");
                Ok(())
            }
            NO_SUCH_ATTRIBUTE | NO_SUCH_OBJECT => Ok(()),
            _ => Err(DirectoryError(format!(
                "removing a member of {group_dn}: {r}"
            ))),
        }
    }

    /// Adds `member` to `group_dn`.
    async fn add_member(&self, l: &mut Ldap, group_dn: &str, member: &str) -> Result<Membership> {
        let r = self.change_member(l, group_dn, member, true).await?;
        match r.rc {
            0 => Ok(Membership::Added),
            ATTRIBUTE_OR_VALUE_EXISTS => Ok(Membership::AlreadyThere),
            NO_SUCH_OBJECT => Ok(Membership::NoGroup),
            _ => Err(DirectoryError(format!(
                "adding a member to {group_dn}: {r}"
            ))),
        }
    }

    /// Moves `dn` under `container`, and rewrites the memberships that
    /// named it (no referential-integrity overlay is assumed).
    async fn move_entry(&self, l: &mut Ldap, dn: &str, container: &str) -> Result<String> {
        let rdn = rdn_of(dn).to_owned();
        let new_dn = format!("{rdn},{container}");
        l.with_timeout(self.s.timeout)
            .modifydn(dn, &rdn, true, Some(container))
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("moving {dn} under {container}: {e}")))?;
        // A crash here leaves the groups naming the old DN and the store
        // recording it: the next sync or relocation finds the entry by its
        // RDN in the new container and calls `heal_memberships`.
        failpoint("ldap-after-move");
        self.heal_memberships(l, &new_dn).await?;
        tracing::info!(from = %dn, to = %new_dn, "directory entry moved");
        Ok(new_dn)
    }

    /// The containers an entry vestibule wrote can sit in: active users,
    /// pending users, and disabled users when entries move.
    fn containers(&self) -> Vec<String> {
        let mut v = vec![self.s.layout.users_dn(false), self.s.layout.users_dn(true)];
        v.extend(self.s.disabled_dn.clone());
        v.dedup_by(|a, b| same_dn(a, b));
        v
    }

    /// Rewrites every membership naming `dn`'s RDN in one of the other
    /// containers to `dn`. Idempotent: it finishes a move that a crash
    /// interrupted between the `modrdn` and the group rewrites.
    async fn heal_memberships(&self, l: &mut Ldap, dn: &str) -> Result<()> {
        let rdn = rdn_of(dn);
        let attr = self.s.layout.member_attribute.clone();
        let base = self.s.layout.base_dn.clone();
        for container in self.containers() {
            if parent_is(dn, &container) {
                continue;
            }
            let stale = format!("{rdn},{container}");
            let filter = format!("({attr}={})", escape_filter_value(&stale));
            for g in self.search(l, &base, &filter).await? {
                let mods = vec![
                    Mod::Delete(attr.clone(), HashSet::from([stale.clone()])),
                    Mod::Add(attr.clone(), HashSet::from([dn.to_owned()])),
                ];
                let r = l.with_timeout(self.s.timeout).modify(&g.dn, mods).await?;
                // 16: gone meanwhile; 20: the new DN is listed already.
                if r.rc == ATTRIBUTE_OR_VALUE_EXISTS {
                    let m = Mod::Delete(attr.clone(), HashSet::from([stale.clone()]));
                    l.with_timeout(self.s.timeout)
                        .modify(&g.dn, vec![m])
                        .await?;
                } else if r.rc != 0 && r.rc != NO_SUCH_ATTRIBUTE {
                    return Err(DirectoryError(format!(
                        "rewriting a member of {}: {r}",
                        g.dn
                    )));
                }
            }
        }
        Ok(())
    }

    /// The entry recorded at `dn`, or, when that DN is gone, the entry
    /// with the same RDN in another of vestibule's containers: a move
    /// (`users approve|disable|enable`) that a crash cut short before the
    /// store recorded the new DN.
    async fn locate(&self, l: &mut Ldap, dn: &str) -> Result<Option<SearchEntry>> {
        if let Some(e) = self.read(l, dn).await? {
            return Ok(Some(e));
        }
        let rdn = rdn_of(dn);
        for container in self.containers() {
            if parent_is(dn, &container) {
                continue;
            }
            if let Some(e) = self.read(l, &format!("{rdn},{container}")).await? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The entry at `dn`, if there is one.
    async fn read(&self, l: &mut Ldap, dn: &str) -> Result<Option<SearchEntry>> {
        let r = l
            .with_timeout(self.s.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", vec!["*"])
            .await?;
        match r.1.rc {
            0 => Ok(r.0.into_iter().next().map(SearchEntry::construct)),
            NO_SUCH_OBJECT => Ok(None),
            _ => Err(DirectoryError(format!("reading {dn}: {}", r.1))),
        }
    }

    /// Moves the account's written entry to where its status says: out
    /// of the pending container once approved, under `disabled_dn` when
    /// disabled and entries move. Nothing to do without a written entry.
    /// Called by `vestibule users approve|enable|disable`, the admin page,
    /// and the login that finds an entry out of place.
    pub async fn relocate(&self, store: &dyn Store, account: &Account) -> Result<()> {
        let Some(link) = store
            .directory_entry(account.id)
            .await?
            .filter(|l| l.written)
        else {
            return Ok(());
        };
        if self.left_alone(account) {
            return Ok(());
        }
        let target = self.target_container(
            account,
            account.status == vestibule_store::AccountStatus::Pending,
        );
        if parent_is(&link.dn, &target) {
            return Ok(());
        }
        let _writing = tokio::time::timeout(self.s.timeout, self.writing.lock())
            .await
            .map_err(|_| DirectoryError("another directory write is taking too long".into()))?;
        let mut c = self.conn().await?;
        let l = c.get();
        let Some(found) = self.locate(l, &link.dn).await? else {
            return Err(DirectoryError(format!(
                "the entry {} is gone from the directory",
                link.dn
            )));
        };
        let dn = if parent_is(&found.dn, &target) {
            // Moved already, by an attempt a crash cut short.
            self.heal_memberships(l, &found.dn).await?;
            found.dn
        } else {
            self.move_entry(l, &found.dn, &target).await?
        };
        c.done();
        store
            .put_directory_entry(&DirectoryEntry {
                dn,
                updated_at: super::now_ms(),
                ..link
            })
            .await?;
        Ok(())
    }

    /// Whether the app gets the directory's roles instead of the front's
    /// groups.
    pub fn forwards_roles(&self) -> bool {
        self.s.forward_roles.is_some()
    }

    /// The groups to forward for `account`, read from the directory: its
    /// roles with the configured prefix. `None` when roles are not
    /// forwarded or the account has no written entry.
    pub async fn roles_of(
        &self,
        store: &dyn Store,
        account: &Account,
    ) -> Result<Option<Vec<String>>> {
        if self.s.forward_roles.is_none() {
            return Ok(None);
        }
        let Some(link) = store
            .directory_entry(account.id)
            .await?
            .filter(|l| l.written)
        else {
            return Ok(None);
        };
        let mut c = self.conn().await?;
        let roles = self.forwarded_roles(c.get(), &link.dn).await?;
        c.done();
        Ok(roles)
    }

    /// The roles of `dn` (role groups listing it, under the role
    /// template's container), prefixed, sorted.
    async fn forwarded_roles(&self, l: &mut Ldap, dn: &str) -> Result<Option<Vec<String>>> {
        let Some(prefix) = &self.s.forward_roles else {
            return Ok(None);
        };
        let template = &self.s.layout.role_dn_template;
        let container = template
            .split_once(',')
            .map_or(template.as_str(), |(_, c)| c)
            .replace("{base}", &self.s.layout.base_dn);
        let filter = format!(
            "({}={})",
            self.s.layout.member_attribute,
            escape_filter_value(dn)
        );
        let mut roles: Vec<String> = self
            .search(l, &container, &filter)
            .await?
            .iter()
            .filter_map(|g| first(g, "cn"))
            .map(|cn| format!("{prefix}{cn}"))
            .collect();
        roles.sort();
        roles.dedup();
        Ok(Some(roles))
    }

    /// Whether the account's recorded entry sits where its status says.
    pub fn in_place(&self, account: &Account, link: &DirectoryEntry) -> bool {
        link.written
            && (self.left_alone(account)
                || parent_is(
                    &link.dn,
                    &self.target_container(
                        account,
                        account.status == vestibule_store::AccountStatus::Pending,
                    ),
                ))
    }

    /// A disabled account's entry stays where it is with `disabled = "leave"`.
    fn left_alone(&self, account: &Account) -> bool {
        account.status == vestibule_store::AccountStatus::Disabled && self.s.disabled_dn.is_none()
    }

    fn target_container(&self, account: &Account, pending: bool) -> String {
        if account.status == vestibule_store::AccountStatus::Disabled
            && let Some(d) = &self.s.disabled_dn
        {
            return d.clone();
        }
        self.s.layout.users_dn(pending)
    }

    /// Records the account's entry in the store: `written = false` before
    /// directory writes, `true` after the last one.
    async fn record(
        &self,
        store: &dyn Store,
        account_id: i64,
        dn: &str,
        object_id: &str,
        written: bool,
    ) -> Result<()> {
        store
            .put_directory_entry(&DirectoryEntry {
                account_id,
                dn: dn.to_owned(),
                object_id: object_id.to_owned(),
                written,
                updated_at: super::now_ms(),
            })
            .await?;
        Ok(())
    }

    /// Our entry: the recorded DN (if it still carries our object
    /// identifier), else the one with our `(oAuth2Provider, oAuth2Uid)`,
    /// else the one carrying our object identifier.
    async fn find_ours(
        &self,
        l: &mut Ldap,
        p: &Person,
        link: Option<&DirectoryEntry>,
    ) -> Result<Option<SearchEntry>> {
        let layout = &self.s.layout;
        let id_attr = layout.attribute_for(Field::ObjectId);
        if let Some(link) = link
            && let Some(e) = self.locate(l, &link.dn).await?
        {
            let carries_ours = match id_attr {
                Some(a) => first(&e, a) == Some(link.object_id.as_str()),
                // Without an identifier attribute, the recorded DN
                // and the uid are what we have.
                None => first(&e, &layout.rdn_attribute) == Some(p.uid.as_str()),
            };
            if carries_ours {
                return Ok(Some(e));
            }
        }
        if let (Some(pa), Some(sa), Some(provider)) = (
            layout.attribute_for(Field::Provider),
            layout.attribute_for(Field::ProviderSubject),
            p.provider.as_ref(),
        ) {
            let filter = format!(
                "(&({pa}={})({sa}={}))",
                escape_filter_value(provider),
                escape_filter_value(&p.subject)
            );
            if let Some(e) = self.search_one(l, &layout.base_dn, &filter).await? {
                return Ok(Some(e));
            }
        }
        if let (Some(a), Some(link)) = (id_attr, link) {
            let filter = format!("({a}={})", escape_filter_value(&link.object_id));
            if let Some(e) = self.search_one(l, &layout.base_dn, &filter).await? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The first entry `search` finds, if any.
    async fn search_one(
        &self,
        l: &mut Ldap,
        base: &str,
        filter: &str,
    ) -> Result<Option<SearchEntry>> {
        Ok(self.search(l, base, filter).await?.into_iter().next())
    }

    async fn search(&self, l: &mut Ldap, base: &str, filter: &str) -> Result<Vec<SearchEntry>> {
        let (entries, _) = l
            .with_timeout(self.s.timeout)
            .search(base, Scope::Subtree, filter, vec!["*"])
            .await?
            .success()
            .map_err(|e| DirectoryError(format!("searching {base} for {filter}: {e}")))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }
}

fn first<'a>(e: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// DNs as vestibule writes them compare without case in the attribute
/// names and the ASCII of the values (every attribute vestibule names by
/// DN matches case-insensitively).
fn same_dn(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The first RDN of `dn` (vestibule's RDNs are escaped, RFC 4514 §2.4,
/// so an unescaped comma is the separator).
fn rdn_of(dn: &str) -> &str {
    let mut escaped = false;
    for (i, ch) in dn.char_indices() {
        match ch {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return &dn[..i],
            _ => escaped = false,
        }
    }
    dn
}

fn parent_is(dn: &str, container: &str) -> bool {
    dn.get(rdn_of(dn).len() + 1..)
        .is_some_and(|parent| same_dn(parent, container))
}

/// A random (version 4) UUID, RFC 9562 §5.4.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = vestibule_store::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_and_parent_respect_escaped_commas() {
        let dn = r"uid=sue\, grabbit,ou=users,dc=g";
        assert_eq!(rdn_of(dn), r"uid=sue\, grabbit");
        assert!(parent_is(dn, "ou=users,dc=g"));
        assert!(parent_is(r"uid=a\\,ou=users,dc=g", "ou=users,dc=g"));
        assert!(!parent_is("uid=a", ""));
        assert!(parent_is("UID=a,OU=Users,dc=g", "ou=users,dc=g"));
    }
}
