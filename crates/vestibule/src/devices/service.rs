//! Step 3c: device credentials, for clients that cannot pass the SSO
//! front's login page (mobile apps, Subsonic and WebDAV clients, CLIs).
//!
//! - A credential is 256 random bits (`vst_…`); only its SHA-256 is
//!   stored, and it is looked up by that digest, so verification needs no
//!   slow hash and no comparison of the secret itself.
//! - A valid credential acts as its owner: the owner's account (status,
//!   groups, roles) decides, exactly as for a browser user.
//! - The hot path answers from memory: a known credential costs one SHA-256
//!   and a map lookup. Revoking a device, or disabling or deleting its
//!   owner, reaches every instance through the store's change feed and
//!   drops the cache entry at once; `accounts.cache_ttl` bounds the rest.
//! - "Last used" is written behind the request, at most once a minute per
//!   credential.
//! - Failures (unknown, expired, wrong Basic user) are rate-limited per
//!   client address and per Basic user name; past the limit, every attempt
//!   from that address or name gets 429 until the limit allows one again.
//! - SSO freshness: with `max_sso_age`, a credential whose owner has not
//!   been seen through the SSO front for that long is refused until the
//!   owner signs in once in a browser.
//!
//! This module finds, caches and counts; what a credential is worth is
//! decided by `vestibule_core::credential::judge_device`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hashbrown::HashTable;
use vestibule_core::credential::{
    CredentialKind, DeviceFacts, DeviceJudgement, OwnerStanding, Presented, judge_device,
};
use vestibule_core::identity::Identity;
use vestibule_core::policy::roles_for;
use vestibule_core::secret::hash_token;
use vestibule_store::{
    Account, AccountStatus, Change, DeviceWithOwner, IdentityKey, Store, StoreError,
};

use crate::accounts::now_ms;

/// How often "last used" is written for a credential.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What a presented credential is worth on a route.
#[derive(Debug, Clone)]
// Alike core DeviceJudgement: adds Unknown, RateLimited, identity and kind, which http/ matches on.
pub enum Verdict {
    /// Valid: act as the owner.
    Allowed {
        /// The owner, with roles.
        identity: Box<Identity>,
        /// The device (its id in the store), for the assertion's `device_id`.
        device_id: i64,
    },
    /// No such credential (never issued, mistyped or revoked).
    Unknown,
    /// Past its expiry.
    Expired,
    /// Sent in a way its kind does not allow (a token as a Basic password,
    /// an app password as a bearer value), or of a kind this version does
    /// not know.
    WrongCarrier {
        /// The credential's kind, when known.
        kind: Option<CredentialKind>,
    },
    /// Sent as Basic with a user name that is not the owner's.
    WrongUser,
    /// Valid, but not for this route.
    WrongRoute,
    /// The owner's account waits for approval.
    Pending,
    /// The owner's account is disabled.
    Disabled,
    /// The owner has not been seen through SSO within `max_sso_age`.
    SsoStale,
    /// Too many failures from this address or for this user name.
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
}

impl Verdict {
    /// Whether this outcome counts towards the failure rate limit.
    fn is_failure(&self) -> bool {
        matches!(self, Self::Unknown | Self::Expired | Self::WrongUser)
    }
}

/// A credential's owner, shared by every cached device of the account:
/// a million credentials of a hundred thousand accounts hold a hundred
/// thousand owners.
#[derive(Debug)]
struct Owner {
    account: Account,
    key: IdentityKey,
}

/// Route lists, interned: devices mostly share a few. A thin pointer
/// (the slice's length lives behind it), 8 bytes in every entry.
type Routes = Arc<Box<[Box<str>]>>;

/// What the hot path needs of a device, and no more (no name or
/// timestamps; the kind as one byte; times as offsets from the cache's
/// epoch; thin pointers): with a million credentials cached, every byte
/// counts a million times. 56 bytes (checked by a test below).
#[derive(Debug, Clone)]
struct Cached {
    owner: Arc<Owner>,
    routes: Routes,
    /// The Basic user name, when it is not the owner's username (rare).
    basic_user: Option<Arc<String>>,
    id: i64,
    /// Unix ms; [`NEVER`] when the device does not expire.
    expires_at: i64,
    /// When it was read from the store, in ms since [`Devices::epoch`].
    fetched_ms: u64,
    /// The second (since [`Devices::epoch`]) from which "last used" may
    /// be written again; 0 at first, so the first use is written.
    next_touch_s: u32,
    kind: Option<CredentialKind>,
}

/// `expires_at` of a device that does not expire. A device stored with
/// this very expiry is equivalent: `now < i64::MAX` holds for any `now`.
const NEVER: i64 = i64::MAX;

impl Cached {
    fn expires_at(&self) -> Option<i64> {
        (self.expires_at != NEVER).then_some(self.expires_at)
    }
}

/// One cached credential: the digest it is found by, and its facts.
#[derive(Debug)]
struct Slot {
    hash: [u8; 32],
    c: Cached,
}

/// The credential cache: the entries in one dense vector (88 bytes each,
/// no per-entry allocation), found through two hash tables of positions
/// in it (4 bytes a bucket, plus hashbrown's control byte): by the
/// credential's digest (the hot path) and by device id (revocation, which
/// must reach the cache at once without a scan). Two `HashMap`s with the
/// digest and the entry in every bucket cost about three times as much at
/// a million entries (the tables double in size past 7/8 full).
#[derive(Default)]
struct Cache {
    slots: Vec<Slot>,
    by_hash: HashTable<u32>,
    by_id: HashTable<u32>,
    /// Keyed (SipHash with a random key), like `HashMap`'s default.
    hasher: RandomState,
    owners: HashMap<i64, Arc<Owner>>,
    route_sets: HashMap<Vec<String>, Routes>,
    /// Moves with every change the store reports: a miss whose store read
    /// began before a change does not cache what it read, which may be
    /// what the change just revoked (the change's own removal may already
    /// have run).
    changes: u64,
}

impl Cache {
    fn position(&self, hash: &[u8; 32]) -> Option<usize> {
        let slots = &self.slots;
        self.by_hash
            .find(self.hasher.hash_one(hash), |&i| {
                slots[i as usize].hash == *hash
            })
            .map(|&i| i as usize)
    }

    fn get(&self, hash: &[u8; 32]) -> Option<&Cached> {
        self.position(hash).map(|i| &self.slots[i].c)
    }

    fn get_mut(&mut self, hash: &[u8; 32]) -> Option<&mut Cached> {
        self.position(hash).map(|i| &mut self.slots[i].c)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Caches `c` under `hash`, replacing what was cached under that digest
    /// or for that device (a renewed certificate keeps its device id and
    /// changes its digest): one entry per device.
    fn insert(&mut self, hash: [u8; 32], c: Cached) {
        if let Some(i) = self.position(&hash) {
            self.remove_at(i);
        }
        self.forget_device(c.id);
        let Ok(i) = u32::try_from(self.slots.len()) else {
            // Four billion entries: not cached, still answered.
            return;
        };
        let id = c.id;
        self.slots.push(Slot { hash, c });
        let Self {
            slots,
            by_hash,
            by_id,
            hasher,
            ..
        } = self;
        by_hash.insert_unique(hasher.hash_one(hash), i, |&j| {
            hasher.hash_one(slots[j as usize].hash)
        });
        by_id.insert_unique(hasher.hash_one(id), i, |&j| {
            hasher.hash_one(slots[j as usize].c.id)
        });
    }

    /// Removes entry `i`; the last entry takes its place (and its
    /// positions in both tables are rewritten).
    fn remove_at(&mut self, i: usize) {
        let Self {
            slots,
            by_hash,
            by_id,
            hasher,
            ..
        } = self;
        let Ok(at) = u32::try_from(i) else { return };
        let slot = &slots[i];
        if let Ok(e) = by_hash.find_entry(hasher.hash_one(slot.hash), |&j| j == at) {
            e.remove();
        }
        if let Ok(e) = by_id.find_entry(hasher.hash_one(slot.c.id), |&j| j == at) {
            e.remove();
        }
        slots.swap_remove(i);
        let Some(moved) = slots.get(i) else {
            return; // It was the last one.
        };
        let from = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        if let Some(j) = by_hash.find_mut(hasher.hash_one(moved.hash), |&j| j == from) {
            *j = at;
        }
        if let Some(j) = by_id.find_mut(hasher.hash_one(moved.c.id), |&j| j == from) {
            *j = at;
        }
    }

    fn routes(&mut self, routes: Vec<String>) -> Routes {
        if let Some(r) = self.route_sets.get(&routes) {
            return r.clone();
        }
        let interned: Routes = Arc::new(routes.iter().map(|r| r.as_str().into()).collect());
        self.route_sets.insert(routes, interned.clone());
        interned
    }

    /// The owner to share: the cached one when the store returned the same
    /// account and key, else this one (which replaces it).
    fn owner(&mut self, account: Account, key: IdentityKey) -> Arc<Owner> {
        if let Some(o) = self.owners.get(&account.id)
            && o.account == account
            && o.key == key
        {
            return o.clone();
        }
        let o = Arc::new(Owner { account, key });
        self.owners.insert(o.account.id, o.clone());
        o
    }

    fn forget_device(&mut self, id: i64) {
        let slots = &self.slots;
        let found = self
            .by_id
            .find(self.hasher.hash_one(id), |&j| slots[j as usize].c.id == id)
            .copied();
        if let Some(i) = found {
            self.remove_at(i as usize);
        }
    }

    fn forget_owner(&mut self, account_id: i64) {
        self.owners.remove(&account_id);
        // Rare (an account change), so a scan is fine. From the end: the
        // entry that fills a removed one's place has been looked at.
        for i in (0..self.slots.len()).rev() {
            if self.slots[i].c.owner.account.id == account_id {
                self.remove_at(i);
            }
        }
    }

    fn clear(&mut self) {
        let changes = self.changes;
        *self = Self::default();
        self.changes = changes;
    }

    /// Applies a change the store reported.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Device(id) => self.forget_device(id),
            Change::Account(id) => self.forget_owner(id),
            Change::Resync => self.clear(),
            _ => return,
        }
        self.changes += 1;
    }

    /// Caches what a miss read, unless a change came in since
    /// `changes_before` (read before the store was): that change may
    /// have revoked it, its removal already done.
    fn insert_if_unchanged(&mut self, hash: [u8; 32], c: Cached, changes_before: u64) -> bool {
        if self.changes != changes_before {
            return false;
        }
        self.insert(hash, c);
        true
    }
}

/// Who a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Ip(IpAddr),
    User(String),
}

/// Failed attempts per client address and per Basic user name (GCRA, via
/// governor). A key that runs out is blocked until governor would allow
/// its next attempt, so that a valid credential sent from a blocked
/// address learns nothing either.
pub struct FailureLimiter {
    limiter: DefaultKeyedRateLimiter<FailureKey>,
    blocked: Mutex<HashMap<FailureKey, Instant>>,
}

impl FailureLimiter {
    /// `per_minute` failures per key per minute (bursts of that size).
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: Option<IpAddr>, user: Option<&str>) -> Vec<FailureKey> {
        let mut keys = Vec::with_capacity(2);
        if let Some(ip) = ip {
            keys.push(FailureKey::Ip(ip));
        }
        if let Some(u) = user {
            keys.push(FailureKey::User(u.to_owned()));
        }
        keys
    }

    /// How long the caller must wait, if any of its keys is blocked.
    pub fn blocked_for(&self, ip: Option<IpAddr>, user: Option<&str>) -> Option<Duration> {
        let Ok(mut blocked) = self.blocked.lock() else {
            return None;
        };
        if blocked.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut wait = None;
        for k in Self::keys(ip, user) {
            match blocked.get(&k) {
                Some(until) if *until > now => {
                    wait = Some(wait.map_or(*until - now, |w: Duration| w.max(*until - now)));
                }
                Some(_) => {
                    blocked.remove(&k);
                }
                None => {}
            }
        }
        wait
    }

    /// Counts one failure; returns the wait if it used up a key's budget.
    pub fn record_failure(&self, ip: Option<IpAddr>, user: Option<&str>) -> Option<Duration> {
        let mut wait: Option<Duration> = None;
        for k in Self::keys(ip, user) {
            if let Err(not_until) = self.limiter.check_key(&k) {
                let w = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                // Never less than a second: Retry-After counts in seconds.
                let w = w.max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    if blocked.len() > 100_000 {
                        let now = Instant::now();
                        blocked.retain(|_, until| *until > now);
                    }
                    blocked.insert(k, Instant::now() + w);
                }
                wait = Some(wait.map_or(w, |x| x.max(w)));
            }
        }
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        wait
    }
}

/// Device credentials, backed by a store, fronted by a cache.
pub struct Devices {
    store: Arc<dyn Store>,
    accounts: Arc<crate::accounts::Accounts>,
    cache: RwLock<Cache>,
    /// What the cache's times count from.
    epoch: Instant,
    ttl: Duration,
    roles: Vec<(String, Vec<String>)>,
    /// Failure limits, shared with the pairing endpoint.
    pub failures: FailureLimiter,
    /// Secrets and pairing codes the pages show after a redirect.
    pub reveals: super::reveal::Reveals,
    /// "Last used" writes in flight (at most [`MAX_TOUCH_WRITES`]).
    touch_writes: Arc<tokio::sync::Semaphore>,
}

/// The most "last used" writes in flight at once. A burst of first uses
/// (a warm-up of a million credentials, every client coming back after
/// an outage) would otherwise queue a task per credential behind the
/// database's writer, each holding memory; past the bound a use is not
/// recorded now, and the next use of that credential tries again.
pub const MAX_TOUCH_WRITES: usize = 256;

impl Devices {
    /// Wraps `store`; call [`Devices::follow_changes`] once.
    pub fn new(
        store: Arc<dyn Store>,
        accounts: Arc<crate::accounts::Accounts>,
        ttl: Duration,
        roles: Vec<(String, Vec<String>)>,
        failures_per_minute: u32,
    ) -> Self {
        Self {
            store,
            accounts,
            cache: RwLock::new(Cache::default()),
            epoch: Instant::now(),
            ttl,
            roles,
            failures: FailureLimiter::new(failures_per_minute),
            reveals: super::reveal::Reveals::default(),
            touch_writes: Arc::new(tokio::sync::Semaphore::new(MAX_TOUCH_WRITES)),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Spawns the task that drops cache entries as the store reports
    /// changes (revoked devices, changed or deleted owners).
    pub fn follow_changes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        crate::accounts::follow_store_changes(&self.store, Arc::downgrade(self), |me, change| {
            if let Ok(mut cache) = me.cache.write() {
                cache.apply(change);
            }
        })
    }

    /// Drops every cached credential.
    pub fn forget_all(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
            c.changes += 1;
        }
    }

    /// Cached credentials, for the benches and the memory test.
    pub fn cached_len(&self) -> usize {
        self.cache.read().map_or(0, |c| c.len())
    }

    /// Milliseconds since [`Devices::epoch`].
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Seconds since [`Devices::epoch`].
    fn now_s(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    // Alike accounts/service.rs cached: another cache, keyed by token hash, same TTL filter.
    fn cached(&self, hash: &[u8; 32]) -> Option<Cached> {
        let cache = self.cache.read().ok()?;
        let now = self.now_ms();
        cache
            .get(hash)
            .filter(|c| Duration::from_millis(now.saturating_sub(c.fetched_ms)) < self.ttl)
            .cloned()
    }

    /// A cache miss: the device and its owner (account and identity key)
    /// in one query, always fresh from the store. The owner is shared with
    /// the account's other cached devices when it has not changed.
    async fn fetch(&self, hash: [u8; 32]) -> Result<Option<Cached>, StoreError> {
        crate::accounts::reachable(&self.store)?;
        let changes_before = self.cache.read().map_or(u64::MAX, |c| c.changes);
        let Some(DeviceWithOwner {
            device,
            owner: account,
            key,
        }) = self.store.device_with_owner(&hash).await?
        else {
            return Ok(None);
        };
        let key = key.unwrap_or_else(|| IdentityKey {
            source: "device".into(),
            subject: account.id.to_string(),
        });
        let fetched_ms = self.now_ms();
        let Ok(mut cache) = self.cache.write() else {
            return Ok(None);
        };
        let basic_user = device
            .basic_user
            .filter(|u| *u != account.username)
            .map(Arc::new);
        let c = Cached {
            owner: cache.owner(account, key),
            routes: cache.routes(device.routes),
            basic_user,
            id: device.id,
            expires_at: device.expires_at.unwrap_or(NEVER),
            fetched_ms,
            next_touch_s: 0,
            kind: CredentialKind::from_stored(&device.kind),
        };
        // Answered from the store either way; cached only when no change
        // came in meanwhile.
        cache.insert_if_unchanged(hash, c.clone(), changes_before);
        Ok(Some(c))
    }

    /// Decides what `presented` is worth on route `route_name`. Fails only
    /// when the store is needed and unreachable (the caller answers 503).
    pub async fn verify(
        &self,
        presented: &Presented,
        route_name: &str,
        max_sso_age: Option<Duration>,
        client_ip: Option<IpAddr>,
    ) -> Result<Verdict, StoreError> {
        let user = presented.basic_user.as_deref();
        if let Some(retry_after) = self.failures.blocked_for(client_ip, user) {
            return Ok(Verdict::RateLimited { retry_after });
        }
        let verdict = self
            .verify_unlimited(presented, route_name, max_sso_age, client_ip)
            .await?;
        if verdict.is_failure()
            && let Some(retry_after) = self.failures.record_failure(client_ip, user)
        {
            self.audit_failure(presented, client_ip, "rate-limited")
                .await;
            return Ok(Verdict::RateLimited { retry_after });
        }
        if verdict.is_failure() {
            self.audit_failure(presented, client_ip, "refused").await;
        }
        Ok(verdict)
    }

    // Alike verify above: the same arguments; verify wraps this in the failure rate limit.
    async fn verify_unlimited(
        &self,
        presented: &Presented,
        route_name: &str,
        max_sso_age: Option<Duration>,
        client_ip: Option<IpAddr>,
    ) -> Result<Verdict, StoreError> {
        let hash = presented_hash(presented);
        let mut entry = match self.cached(&hash) {
            Some(c) => c,
            None => match self.fetch(hash).await? {
                Some(c) => c,
                None => return Ok(Verdict::Unknown),
            },
        };
        let now = now_ms();
        let max_ms = max_sso_age.map(|a| i64::try_from(a.as_millis()).unwrap_or(i64::MAX));
        let mut judgement = self.judge(&entry, presented, route_name, max_ms, now);
        if judgement == DeviceJudgement::SsoStale {
            // The owner may have signed in through another instance since
            // this entry was cached ("seeing them again revives it"): ask
            // the store once before refusing.
            if let Some(fresh) = self.fetch(hash).await? {
                judgement = self.judge(&fresh, presented, route_name, max_ms, now);
                entry = fresh;
            }
        }
        match judgement {
            DeviceJudgement::Allowed => {}
            DeviceJudgement::Expired => return Ok(Verdict::Expired),
            DeviceJudgement::WrongCarrier => {
                return Ok(Verdict::WrongCarrier { kind: entry.kind });
            }
            DeviceJudgement::WrongUser => return Ok(Verdict::WrongUser),
            DeviceJudgement::WrongRoute => return Ok(Verdict::WrongRoute),
            DeviceJudgement::Pending => return Ok(Verdict::Pending),
            DeviceJudgement::Disabled => return Ok(Verdict::Disabled),
            DeviceJudgement::SsoStale => return Ok(Verdict::SsoStale),
        }
        self.touch_behind(&hash, &entry, client_ip);
        let owner = &entry.owner.account;
        let identity = Identity {
            source: entry.owner.key.source.clone(),
            subject: entry.owner.key.subject.clone(),
            username: owner.username.clone(),
            email: owner.email.clone(),
            display_name: owner.display_name.clone(),
            groups: owner.groups.clone(),
            org: owner.org.clone(),
            roles: roles_for(&owner.groups, &self.roles),
            ..Identity::default()
        };
        Ok(Verdict::Allowed {
            identity: Box::new(identity),
            device_id: entry.id,
        })
    }

    /// The cached facts, judged by `vestibule_core`.
    fn judge(
        &self,
        entry: &Cached,
        presented: &Presented,
        route: &str,
        max_sso_age_ms: Option<i64>,
        now: i64,
    ) -> DeviceJudgement {
        let owner = &entry.owner.account;
        let facts = DeviceFacts {
            kind: entry.kind,
            expires_at: entry.expires_at(),
            basic_user: entry.basic_user.as_deref().map_or(&owner.username, |u| u),
            routes: &entry.routes,
            owner: match owner.status {
                AccountStatus::Active => OwnerStanding::Active,
                AccountStatus::Pending => OwnerStanding::Pending,
                AccountStatus::Disabled => OwnerStanding::Disabled,
            },
            // Only read (and only worth a lock) when freshness is asked for.
            owner_last_seen: if max_sso_age_ms.is_some() {
                owner
                    .last_seen_at
                    .max(self.accounts.last_sighting(owner.id).unwrap_or(0))
            } else {
                0
            },
        };
        judge_device(&facts, presented, route, max_sso_age_ms, now)
    }

    /// Writes "last used" without making the request wait, at most once
    /// per [`TOUCH_INTERVAL`] per credential.
    fn touch_behind(&self, hash: &[u8; 32], entry: &Cached, client_ip: Option<IpAddr>) {
        let now = self.now_s();
        if now < entry.next_touch_s {
            return;
        }
        // Before the claim: a use that finds no slot leaves the write to
        // the next one.
        let Ok(slot) = self.touch_writes.clone().try_acquire_owned() else {
            return;
        };
        {
            let Ok(mut cache) = self.cache.write() else {
                return;
            };
            let Some(c) = cache.get_mut(hash) else {
                return;
            };
            // Claim the write, so concurrent requests don't all write.
            if now < c.next_touch_s {
                return;
            }
            // Whole seconds: one more, so that never less than the
            // interval passes between two writes.
            let interval = u32::try_from(TOUCH_INTERVAL.as_secs()).unwrap_or(u32::MAX);
            c.next_touch_s = now.saturating_add(interval).saturating_add(1);
        }
        let store = self.store.clone();
        let id = entry.id;
        tokio::spawn(async move {
            let _slot = slot;
            let ip = client_ip.map(|i| i.to_string());
            if let Err(e) = store.touch_device(id, now_ms(), ip.as_deref()).await {
                tracing::warn!(device = id, error = %e, "could not record the device's last use");
            }
        });
    }

    async fn audit_failure(&self, presented: &Presented, client_ip: Option<IpAddr>, outcome: &str) {
        // The secret never reaches the log: only how it was sent, and the
        // Basic user name the client claimed.
        let e = vestibule_store::AuditEntry::new(
            now_ms(),
            presented.basic_user.as_deref().unwrap_or("device"),
            "credential-failure",
            format!("carrier:{}", presented.carrier.as_str()),
        )
        .with_client_ip(client_ip)
        .with_outcome(outcome);
        crate::accounts::record_audit(&*self.store, &e).await;
    }
}

/// What a presented credential is looked up by: the SHA-256 of a secret,
/// or, for a client certificate, the SHA-256 of its leaf, which the
/// "token" holds as hex (the device row stores exactly that digest).
fn presented_hash(presented: &Presented) -> [u8; 32] {
    if presented.carrier == vestibule_core::credential::Carrier::ClientCertificate
        && let Some(fp) =
            vestibule_core::client_cert::CertFingerprint::from_hex(presented.token.expose())
    {
        return fp.0;
    }
    hash_token(presented.token.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry's size is what a million credentials multiply.
    #[test]
    fn a_cached_credential_is_56_bytes_and_its_slot_88() {
        assert_eq!(std::mem::size_of::<Cached>(), 56);
        assert_eq!(std::mem::size_of::<Slot>(), 88);
    }

    fn owner(id: i64) -> Arc<Owner> {
        Arc::new(Owner {
            account: crate::accounts::test_account(id),
            key: IdentityKey::new("headers", format!("u{id}")),
        })
    }

    fn entry(id: i64, owner: &Arc<Owner>) -> Cached {
        Cached {
            owner: owner.clone(),
            routes: Arc::new(Box::new([])),
            basic_user: None,
            id,
            expires_at: NEVER,
            fetched_ms: 0,
            next_touch_s: 0,
            kind: None,
        }
    }

    fn digest(n: i64) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&n.to_le_bytes());
        h
    }

    /// A miss that read the store before a revocation was applied to the
    /// cache does not cache what it read; one with no change in between
    /// does. A resync counts as a change too.
    #[test]
    fn a_miss_racing_a_change_is_not_cached() {
        let a = owner(1);
        let mut c = Cache::default();
        let before = c.changes;
        c.apply(Change::Device(7));
        assert!(!c.insert_if_unchanged(digest(7), entry(7, &a), before));
        assert!(c.get(&digest(7)).is_none());
        let before = c.changes;
        assert!(c.insert_if_unchanged(digest(7), entry(7, &a), before));
        assert!(c.get(&digest(7)).is_some());
        let before = c.changes;
        c.apply(Change::Resync);
        assert!(c.get(&digest(7)).is_none());
        assert!(!c.insert_if_unchanged(digest(8), entry(8, &a), before));
        // A change the cache does not follow moves nothing.
        let before = c.changes;
        c.apply(Change::Session([0; 32]));
        assert!(c.insert_if_unchanged(digest(9), entry(9, &a), before));
    }

    /// Every entry is found by its digest and by its id, at the position
    /// the tables say, and nothing else is in the tables.
    fn assert_consistent(c: &Cache) {
        assert_eq!(c.by_hash.len(), c.slots.len());
        assert_eq!(c.by_id.len(), c.slots.len());
        for (i, s) in c.slots.iter().enumerate() {
            assert_eq!(c.position(&s.hash), Some(i));
            let by_id = c
                .by_id
                .find(c.hasher.hash_one(s.c.id), |&j| {
                    c.slots[j as usize].c.id == s.c.id
                })
                .copied();
            assert_eq!(by_id, Some(u32::try_from(i).unwrap()));
        }
    }

    /// Revocation by id, an owner's change, a device re-cached under a new
    /// digest (a renewed certificate) and removal of the last entry keep
    /// both tables pointing at the right entries.
    #[test]
    fn the_cache_finds_by_digest_and_forgets_by_device_and_owner() {
        let (a, b) = (owner(1), owner(2));
        let mut c = Cache::default();
        for id in 0..200 {
            c.insert(digest(id), entry(id, if id % 3 == 0 { &a } else { &b }));
        }
        assert_consistent(&c);
        assert_eq!(c.len(), 200);
        c.forget_device(5);
        c.forget_device(199); // the last entry
        c.forget_device(1000); // never cached
        assert!(c.get(&digest(5)).is_none());
        assert!(c.get(&digest(199)).is_none());
        assert_eq!(c.get(&digest(6)).map(|e| e.id), Some(6));
        assert_consistent(&c);
        // The same device under a new digest: the old one is gone.
        c.insert(digest(1007), entry(7, &b));
        assert!(c.get(&digest(7)).is_none());
        assert_eq!(c.get(&digest(1007)).map(|e| e.id), Some(7));
        // The same digest again: replaced, not doubled.
        c.insert(digest(8), entry(8, &b));
        assert_eq!(c.len(), 198);
        assert_consistent(&c);
        c.forget_owner(1);
        assert!(c.slots.iter().all(|s| s.c.owner.account.id == 2));
        assert_eq!(c.len(), 198 - 67); // 0, 3, …, 198 were a's
        assert_eq!(c.get(&digest(8)).map(|e| e.id), Some(8));
        assert!(c.get(&digest(9)).is_none());
        assert_consistent(&c);
        c.forget_owner(2);
        assert_eq!(c.len(), 0);
        assert_consistent(&c);
    }

    /// An owner returned unchanged by the store is shared; a changed one
    /// replaces it for the entries cached from then on.
    #[test]
    fn owners_are_shared_while_unchanged() {
        let mut c = Cache::default();
        let a = owner(1);
        let first = c.owner(a.account.clone(), a.key.clone());
        let again = c.owner(a.account.clone(), a.key.clone());
        assert!(Arc::ptr_eq(&first, &again));
        let mut changed = a.account.clone();
        changed.last_seen_at = 5;
        let third = c.owner(changed, a.key.clone());
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(third.account.last_seen_at, 5);
    }

    #[test]
    fn failures_block_after_the_budget_and_only_that_key() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.record_failure(Some(a), None).is_none());
        }
        let wait = l
            .record_failure(Some(a), None)
            .expect("fourth failure blocks");
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20));
        assert!(l.blocked_for(Some(a), None).is_some());
        assert!(l.blocked_for(Some(b), None).is_none());
        // A user name is its own key: another address using it is blocked too.
        for _ in 0..4 {
            l.record_failure(Some(b), Some("carol"));
        }
        assert!(l.blocked_for(None, Some("carol")).is_some());
        assert!(l.blocked_for(None, Some("dave")).is_none());
    }
}
