//! Step 3b: from an authenticated identity to the account it belongs to.
//!
//! - Accounts are keyed by (source, stable subject), never by email or
//!   username (unless the operator keys a source by username on purpose).
//! - A first sighting follows the source's provisioning policy (decided in
//!   `vestibule_core::policy::Provisioning`).
//! - The hot path answers from memory: a known identity costs no database
//!   round trip until its cache entry is `accounts.cache_ttl` old. Changes
//!   (disable, delete, approve) arrive through the store's change feed and
//!   drop the entry at once, on every instance.
//! - Attribute refreshes and "last seen" are written behind the request, at
//!   most once a minute per account when nothing changed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vestibule_core::identity::Identity;
use vestibule_core::policy::{FirstSighting, Provisioning, roles_for};
use vestibule_store::{
    Account, AccountStatus, Attributes, AuditEntry, Change, IdentityKey, NewAccount, Store,
    StoreError,
};

/// How often "last seen" is written for an account whose attributes did not change.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// The account side of a decision.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// An active account: the identity, with roles, may proceed to policy.
    Active {
        /// The identity as the source sent it, with the account's roles:
        /// the very one passed in, shared, when the account changes
        /// nothing of it (the per-request path copies nothing).
        identity: Arc<Identity>,
        /// The account's id.
        account_id: i64,
    },
    /// The account waits for an admin's approval.
    Pending,
    /// The account is disabled.
    Disabled,
    /// No account, and the policy creates none.
    NoAccount,
    /// The account's directory entry cannot be written without an admin
    /// (its uid or mail belongs to another entry): the reason.
    DirectoryConflict(String),
}

#[derive(Debug, Clone)]
struct Cached {
    account: Account,
    /// Whether the directory entry (`[accounts.ldap]`) is known written
    /// and in place; always true without a directory.
    in_directory: bool,
    /// The groups to forward instead of the front's: the account's roles
    /// read back from the directory (`[accounts.ldap] forward_roles`).
    directory_groups: Option<Vec<String>>,
    fetched: Instant,
    last_write: Instant,
}

#[derive(Default)]
struct Cache {
    /// Shared with the requests that read an entry: a cache hit clones a
    /// pointer, not the account.
    by_key: HashMap<IdentityKey, Arc<Cached>>,
    /// Every cached key of an account: linked identities share one account,
    /// and a change to it must drop them all.
    keys_of: HashMap<i64, Vec<IdentityKey>>,
    /// Moves with every change the store reports: a miss whose store read
    /// began before a change does not cache what it read (a disable may
    /// have been applied to the cache between the read and the insert).
    changes: u64,
}

impl Cache {
    fn insert(&mut self, key: IdentityKey, c: Arc<Cached>) {
        let keys = self.keys_of.entry(c.account.id).or_default();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        self.by_key.insert(key, c);
    }
    fn forget(&mut self, id: i64) {
        for k in self.keys_of.remove(&id).unwrap_or_default() {
            self.by_key.remove(&k);
        }
    }
    fn clear(&mut self) {
        self.by_key.clear();
        self.keys_of.clear();
    }
    /// Applies a change the store reported.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Account(id) => self.forget(id),
            // Notifications may have been missed: trust nothing cached.
            Change::Resync => self.clear(),
            _ => return,
        }
        self.changes += 1;
    }
    /// Caches what a miss read, unless a change came in since
    /// `changes_before` (read before the store was): that change may have
    /// disabled the account, its removal from the cache already done.
    fn insert_if_unchanged(
        &mut self,
        key: IdentityKey,
        c: Arc<Cached>,
        changes_before: u64,
    ) -> bool {
        if self.changes != changes_before {
            return false;
        }
        self.insert(key, c);
        true
    }
}

/// Accounts, backed by a store, fronted by a cache.
pub struct Accounts {
    store: Arc<dyn Store>,
    cache: RwLock<Cache>,
    ttl: Duration,
    roles: Vec<(String, Vec<String>)>,
    /// When this process last saw each account through the SSO front (unix
    /// ms), so that device credentials revive the moment their owner signs
    /// in, without waiting for the once-a-minute "last seen" write.
    sightings: RwLock<HashMap<i64, i64>>,
    /// The LDAP directory accounts are written to, if any.
    directory: Option<Arc<super::ldap::Directory>>,
}

/// Spawns a task that hands every change `store` publishes to `apply`, for
/// as long as `owner` lives. A lagging receiver (changes were lost) is
/// handed [`Change::Resync`].
pub fn follow_store_changes<T: Send + Sync + 'static>(
    store: &Arc<dyn Store>,
    owner: std::sync::Weak<T>,
    apply: fn(&T, Change),
) -> tokio::task::JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = store.subscribe();
    tokio::spawn(async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Change::Resync,
                Err(RecvError::Closed) => return,
            };
            let Some(owner) = owner.upgrade() else { return };
            apply(&owner, change);
        }
    })
}

/// Fails at once while the store's change feed knows the database is
/// down: a cache miss would otherwise wait out the pool's acquire timeout
/// (5 s) for the same 503.
pub(crate) fn reachable(store: &Arc<dyn Store>) -> Result<(), StoreError> {
    if store.reachable() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(
            "the database connection is lost (change feed reconnecting)".into(),
        ))
    }
}

/// Appends `e` to the audit log. A failure is logged, not returned: the
/// action it records has happened already and stands.
pub async fn record_audit(store: &dyn Store, e: &AuditEntry) {
    if let Err(err) = store.append_audit(e).await {
        tracing::warn!(error = %err, action = %e.action, "could not write the audit log");
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn attributes_of(id: &Identity) -> Attributes {
    Attributes {
        username: id.username.clone(),
        email: id.email.clone(),
        display_name: Some(id.name_for_display()),
        groups: id.groups.clone(),
        org: id.org.clone(),
    }
}

/// [`differs`] against the attributes `id` would give, without building
/// them.
fn differs_from(a: &Account, id: &Identity) -> bool {
    a.username != id.username
        || a.email != id.email
        || !a
            .display_name
            .as_deref()
            .is_some_and(|n| id.is_name_for_display(n))
        || a.groups != id.groups
        || a.org != id.org
}

fn differs(a: &Account, attrs: &Attributes) -> bool {
    a.username != attrs.username
        || a.email != attrs.email
        || a.display_name != attrs.display_name
        || a.groups != attrs.groups
        || a.org != attrs.org
}

impl Accounts {
    /// Wraps `store`; call [`Accounts::follow_changes`] once to keep the
    /// cache honest.
    /// The roles `groups` give, by `[accounts.roles]`.
    pub fn roles_of(&self, groups: &[String]) -> Vec<String> {
        roles_for(groups, &self.roles)
    }

    pub fn new(store: Arc<dyn Store>, ttl: Duration, roles: Vec<(String, Vec<String>)>) -> Self {
        Self {
            store,
            cache: RwLock::new(Cache::default()),
            ttl,
            roles,
            sightings: RwLock::new(HashMap::new()),
            directory: None,
        }
    }

    /// Writes accounts to `directory` too.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<super::ldap::Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The LDAP directory, if accounts are written to one.
    pub fn directory(&self) -> Option<&Arc<super::ldap::Directory>> {
        self.directory.as_ref()
    }

    /// When this process last saw `account_id` through the SSO front.
    pub fn last_sighting(&self, account_id: i64) -> Option<i64> {
        self.sightings.read().ok()?.get(&account_id).copied()
    }

    fn note_sighting(&self, account_id: i64) {
        let now = now_ms();
        // A shared lock on the hot path; the exclusive one at most once a
        // second per account.
        let fresh = self
            .sightings
            .read()
            .ok()
            .and_then(|m| m.get(&account_id).copied())
            .is_some_and(|t| now - t < 1000);
        if !fresh && let Ok(mut m) = self.sightings.write() {
            m.insert(account_id, now);
        }
    }

    /// The store, for the admin endpoints and sessions.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Spawns the task that drops cache entries as the store reports changes.
    pub fn follow_changes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        follow_store_changes(&self.store, Arc::downgrade(self), |me, change| {
            if let Ok(mut cache) = me.cache.write() {
                cache.apply(change);
            }
        })
    }

    /// The key an identity's account is filed under.
    pub fn key_for(id: &Identity, key_by_username: bool) -> IdentityKey {
        IdentityKey {
            source: id.source.clone(),
            subject: if key_by_username {
                id.username.clone()
            } else {
                id.subject.clone()
            },
        }
    }

    // Alike devices/service.rs cached: another cache, keyed by identity, same TTL filter.
    /// The entry for `key` if it is younger than the TTL at `now`, and the
    /// cache's change count (for [`Cache::insert_if_unchanged`]), both
    /// under one read of the lock; `u64::MAX` as the count when the lock
    /// is poisoned, so that a miss caches nothing.
    fn cached(&self, key: &IdentityKey, now: Instant) -> (Option<Arc<Cached>>, u64) {
        let Ok(cache) = self.cache.read() else {
            return (None, u64::MAX);
        };
        let hit = cache
            .by_key
            .get(key)
            .filter(|c| now.saturating_duration_since(c.fetched) < self.ttl)
            .cloned();
        (hit, cache.changes)
    }

    /// A provider's fresh statement of account `account_id`'s attributes
    /// (an OIDC re-check's refreshed ID token, OIDC Core §12.2), written
    /// when they differ from the stored ones. Not a sighting: SSO
    /// freshness moves only with the person's requests. The change feed
    /// then drops every cached copy on every instance, so groups taken
    /// away at the provider stop counting here now, not at the next
    /// login. Whether anything changed.
    pub async fn restate(&self, account_id: i64, id: &Identity) -> Result<bool, StoreError> {
        let Some(account) = self.store.account(account_id).await? else {
            return Err(StoreError::NotFound);
        };
        if !differs_from(&account, id) {
            return Ok(false);
        }
        self.store
            .replace_attributes(account_id, &attributes_of(id), now_ms())
            .await
    }

    /// Resolves an authenticated identity to its account's verdict.
    /// `client_ip` goes to the audit log. Fails only when the store is
    /// needed and unreachable (the caller answers 503).
    pub async fn resolve(
        &self,
        id: Identity,
        provisioning: &Provisioning,
        key_by_username: bool,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Resolution, StoreError> {
        let key = Self::key_for(&id, key_by_username);
        self.resolve_shared(Arc::new(id), &key, provisioning, client_ip)
            .await
    }

    /// [`Accounts::resolve`] for a shared identity and its account key
    /// (`key_for`), as the identity cache keeps them: a cache hit borrows
    /// the key and hands the identity back shared, allocating nothing.
    pub async fn resolve_shared(
        &self,
        id: Arc<Identity>,
        key: &IdentityKey,
        provisioning: &Provisioning,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Resolution, StoreError> {
        // Every await below but the cache's is of a miss, a write or the
        // directory's: boxed, so that their futures (LDAP, audit) do not
        // grow this one, which a cache hit moves with the decision's on
        // every request (issue 17); they allocate anyway.
        // One clock read for the request's TTL and "last seen" checks.
        let now = Instant::now();
        let (cached, changes_before) = self.cached(key, now);
        if cached.is_none() {
            reachable(&self.store)?;
        }
        let hit = cached.is_some();
        let entry = match cached {
            Some(c) => c,
            None => match self.store.account_by_identity(key).await? {
                Some(account) => {
                    let in_directory = Box::pin(self.in_directory(&account)).await?;
                    self.remember(key.clone(), account, false, in_directory, changes_before)
                }
                None => match provisioning.first_sighting(&id) {
                    FirstSighting::Refuse => {
                        Box::pin(self.audit(
                            "first-sighting",
                            key,
                            client_ip.map(|ip| ip.to_string()),
                            "refused",
                            "no account and provisioning creates none",
                        ))
                        .await;
                        return Ok(Resolution::NoAccount);
                    }
                    decision => {
                        let status = if decision == FirstSighting::CreateActive {
                            AccountStatus::Active
                        } else {
                            AccountStatus::Pending
                        };
                        let attrs = attributes_of(&id);
                        let created = self
                            .store
                            .create_account(NewAccount {
                                key: key.clone(),
                                username: attrs.username,
                                email: attrs.email,
                                display_name: attrs.display_name,
                                groups: attrs.groups,
                                org: attrs.org,
                                status,
                                now: now_ms(),
                            })
                            .await;
                        let account = match created {
                            Ok(a) => a,
                            // Another instance created it first: use theirs.
                            Err(StoreError::Conflict(_)) => self
                                .store
                                .account_by_identity(key)
                                .await?
                                .ok_or(StoreError::NotFound)?,
                            Err(e) => return Err(e),
                        };
                        Box::pin(self.audit(
                            "provision",
                            key,
                            client_ip.map(|ip| ip.to_string()),
                            status.as_str(),
                            "new identity seen",
                        ))
                        .await;
                        self.remember(
                            key.clone(),
                            account,
                            true,
                            self.directory.is_none(),
                            changes_before,
                        )
                    }
                },
            },
        };
        let mut directory_groups = entry.directory_groups.clone();
        if let Some(dir) = &self.directory {
            let attrs = attributes_of(&id);
            match entry.account.status {
                AccountStatus::Disabled if !entry.in_directory => {
                    Box::pin(dir.relocate(&*self.store, &entry.account)).await?;
                    self.mark_in_directory(key, None);
                }
                AccountStatus::Disabled => {}
                status if !entry.in_directory || differs(&entry.account, &attrs) => {
                    // The directory is written before the request goes on:
                    // all or nothing, and a failure is a 503.
                    let mut account = entry.account.clone();
                    account.username = attrs.username;
                    account.email = attrs.email;
                    account.display_name = attrs.display_name;
                    account.groups = attrs.groups;
                    account.org = attrs.org;
                    let pending = status == AccountStatus::Pending;
                    match Box::pin(dir.sync(&*self.store, &account, &id, pending)).await? {
                        super::ldap::Synced::Written(groups) => {
                            self.mark_in_directory(key, groups.clone());
                            directory_groups = groups;
                        }
                        super::ldap::Synced::NeedsAdmin(reason) => {
                            Box::pin(self.audit(
                                "directory",
                                key,
                                client_ip.map(|ip| ip.to_string()),
                                "conflict",
                                &reason,
                            ))
                            .await;
                            return Ok(Resolution::DirectoryConflict(reason));
                        }
                    }
                }
                AccountStatus::Active if directory_groups.is_none() && dir.forwards_roles() => {
                    // Written before, roles not read since this entry was
                    // cached: read them back now.
                    directory_groups = Box::pin(dir.roles_of(&*self.store, &entry.account)).await?;
                    if directory_groups.is_some() {
                        self.mark_in_directory(key, directory_groups.clone());
                    }
                }
                _ => {}
            }
        }
        match entry.account.status {
            AccountStatus::Pending => return Ok(Resolution::Pending),
            AccountStatus::Disabled => return Ok(Resolution::Disabled),
            AccountStatus::Active => {}
        }
        // A miss awaited the store and stamped its entry since: read again.
        let now = if hit { now } else { Instant::now() };
        self.refresh_behind(key, &entry, &id, now);
        self.note_sighting(entry.account.id);
        // After the refresh, which compares the front's groups with the
        // account's: the app gets the directory's roles instead.
        let groups = directory_groups.as_deref().unwrap_or(&id.groups);
        let roles = roles_for(groups, &self.roles);
        let identity = if directory_groups.is_none() && roles == id.roles {
            // Nothing to change (no directory groups, the roles it has):
            // the same identity, shared.
            id
        } else {
            let mut id = Arc::unwrap_or_clone(id);
            if let Some(groups) = directory_groups {
                id.groups = groups;
            }
            id.roles = roles;
            Arc::new(id)
        };
        Ok(Resolution::Active {
            identity,
            account_id: entry.account.id,
        })
    }

    /// Whether `account`'s directory entry is written and in place (true
    /// without a directory).
    async fn in_directory(&self, account: &Account) -> Result<bool, StoreError> {
        let Some(dir) = &self.directory else {
            return Ok(true);
        };
        Ok(match self.store.directory_entry(account.id).await? {
            Some(link) => dir.in_place(account, &link),
            None => false,
        })
    }

    fn mark_in_directory(&self, key: &IdentityKey, groups: Option<Vec<String>>) {
        if let Ok(mut cache) = self.cache.write()
            && let Some(c) = cache.by_key.get_mut(key)
        {
            let c = Arc::make_mut(c);
            c.in_directory = true;
            c.directory_groups = groups;
        }
    }

    /// Wraps what a miss read for this request, and caches it unless a
    /// change came in since `changes_before` (read before the store was).
    fn remember(
        &self,
        key: IdentityKey,
        account: Account,
        just_written: bool,
        in_directory: bool,
        changes_before: u64,
    ) -> Arc<Cached> {
        let now = Instant::now();
        let c = Arc::new(Cached {
            account,
            in_directory,
            directory_groups: None,
            fetched: now,
            // A fresh fetch has not been touched by us yet: allow one write.
            last_write: if just_written {
                now
            } else {
                now.checked_sub(TOUCH_INTERVAL).unwrap_or(now)
            },
        });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert_if_unchanged(key, c.clone(), changes_before);
        }
        c
    }

    /// Writes changed attributes, or "last seen" once a minute, without
    /// making the request wait.
    fn refresh_behind(&self, key: &IdentityKey, entry: &Cached, id: &Identity, now: Instant) {
        // Compared in place: on the usual request nothing changed and
        // nothing is due, and nothing is copied.
        let changed = differs_from(&entry.account, id);
        if !changed && now.saturating_duration_since(entry.last_write) < TOUCH_INTERVAL {
            return;
        }
        let attrs = attributes_of(id);
        // Claim the write in the cache first, so concurrent requests don't
        // all write.
        {
            let Ok(mut cache) = self.cache.write() else {
                return;
            };
            let Some(c) = cache.by_key.get_mut(key) else {
                return;
            };
            if !changed && c.last_write.elapsed() < TOUCH_INTERVAL {
                return;
            }
            let c = Arc::make_mut(c);
            c.last_write = Instant::now();
            if changed {
                c.account.username = attrs.username.clone();
                c.account.email = attrs.email.clone();
                c.account.display_name = attrs.display_name.clone();
                c.account.groups = attrs.groups.clone();
                c.account.org = attrs.org.clone();
            }
        }
        let store = self.store.clone();
        let account_id = entry.account.id;
        tokio::spawn(async move {
            let now = now_ms();
            let r = if changed {
                store.update_attributes(account_id, &attrs, now).await
            } else {
                store.touch_seen(account_id, now).await
            };
            if let Err(e) = r {
                tracing::warn!(account = account_id, error = %e, "could not record the account's latest sighting");
            }
        });
    }

    async fn audit(
        &self,
        action: &str,
        key: &IdentityKey,
        client_ip: Option<String>,
        outcome: &str,
        detail: &str,
    ) {
        let e = AuditEntry::new(
            now_ms(),
            "vestibule",
            action,
            format!("{}:{}", key.source, key.subject),
        )
        .with_client_ip(client_ip)
        .with_outcome(outcome)
        .with_detail(detail);
        record_audit(&*self.store, &e).await;
    }

    /// Drops every cached account (tests and admin actions in-process).
    pub fn forget_all(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An active account `u<id>` with nothing else set, for unit tests of
    /// the caches.
    pub(crate) fn account(id: i64) -> Account {
        Account {
            id,
            username: format!("u{id}"),
            email: None,
            display_name: None,
            groups: vec![],
            org: None,
            status: AccountStatus::Active,
            created_at: 0,
            updated_at: 0,
            last_seen_at: 0,
        }
    }

    fn cached(id: i64) -> Arc<Cached> {
        Arc::new(Cached {
            account: account(id),
            in_directory: true,
            directory_groups: None,
            fetched: Instant::now(),
            last_write: Instant::now(),
        })
    }

    /// A miss that read an account before its disable was applied to the
    /// cache does not cache it (the disable's own removal has run
    /// already); one with no change in between does; a resync counts.
    #[test]
    fn a_miss_racing_a_change_is_not_cached() {
        let key = IdentityKey::new("headers", "alice");
        let mut c = Cache::default();
        let before = c.changes;
        c.apply(Change::Account(1));
        assert!(!c.insert_if_unchanged(key.clone(), cached(1), before));
        assert!(!c.by_key.contains_key(&key));
        let before = c.changes;
        assert!(c.insert_if_unchanged(key.clone(), cached(1), before));
        let before = c.changes;
        c.apply(Change::Resync);
        assert!(!c.by_key.contains_key(&key));
        assert!(!c.insert_if_unchanged(key.clone(), cached(1), before));
        let before = c.changes;
        c.apply(Change::Device(9));
        assert!(c.insert_if_unchanged(key.clone(), cached(1), before));
        c.apply(Change::Account(1));
        assert!(!c.by_key.contains_key(&key));
    }
}
