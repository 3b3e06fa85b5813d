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
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vestibule_core::credential::{
    CredentialKind, DeviceFacts, DeviceJudgement, OwnerStanding, Presented, judge_device,
};
use vestibule_core::identity::Identity;
use vestibule_core::policy::roles_for;
use vestibule_core::secret::hash_token;
use vestibule_store::{Account, AccountStatus, Change, IdentityKey, Store, StoreError};

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

/// A credential's owner, shared by every cached device of the account.
#[derive(Debug)]
struct Owner {
    account: Account,
    key: IdentityKey,
    fetched: Instant,
}

/// What the hot path needs of a device, and no more (no name or
/// timestamps; the kind as one byte): with a million credentials cached, every byte counts
/// a million times.
#[derive(Debug, Clone)]
struct Cached {
    id: i64,
    owner: Arc<Owner>,
    kind: Option<CredentialKind>,
    expires_at: Option<i64>,
    /// Interned: devices mostly share a few route lists.
    routes: Arc<[Box<str>]>,
    /// The Basic user name, when it is not the owner's username.
    basic_user: Option<Arc<str>>,
    fetched: Instant,
    last_touch: Instant,
}

#[derive(Default)]
struct Cache {
    by_hash: HashMap<[u8; 32], Cached>,
    hash_of: HashMap<i64, [u8; 32]>,
    owners: HashMap<i64, Arc<Owner>>,
    route_sets: HashMap<Vec<String>, Arc<[Box<str>]>>,
}

impl Cache {
    fn insert(&mut self, hash: [u8; 32], c: Cached) {
        self.hash_of.insert(c.id, hash);
        self.by_hash.insert(hash, c);
    }
    fn routes(&mut self, routes: Vec<String>) -> Arc<[Box<str>]> {
        if let Some(r) = self.route_sets.get(&routes) {
            return r.clone();
        }
        let interned: Arc<[Box<str>]> = routes.iter().map(|r| r.as_str().into()).collect();
        self.route_sets.insert(routes, interned.clone());
        interned
    }
    fn forget_device(&mut self, id: i64) {
        if let Some(h) = self.hash_of.remove(&id) {
            self.by_hash.remove(&h);
        }
    }
    fn forget_owner(&mut self, account_id: i64) {
        self.owners.remove(&account_id);
        // Rare (an account change), so a scan is fine.
        let Self {
            by_hash, hash_of, ..
        } = self;
        by_hash.retain(|_, c| {
            let keep = c.owner.account.id != account_id;
            if !keep {
                hash_of.remove(&c.id);
            }
            keep
        });
    }
    fn clear(&mut self) {
        *self = Self::default();
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
    ttl: Duration,
    roles: Vec<(String, Vec<String>)>,
    /// Failure limits, shared with the pairing endpoint.
    pub failures: FailureLimiter,
    /// Secrets and pairing codes the pages show after a redirect.
    pub reveals: super::reveal::Reveals,
}

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
            ttl,
            roles,
            failures: FailureLimiter::new(failures_per_minute),
            reveals: super::reveal::Reveals::default(),
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
            let Ok(mut cache) = me.cache.write() else {
                return;
            };
            match change {
                Change::Device(id) => cache.forget_device(id),
                Change::Account(id) => cache.forget_owner(id),
                Change::Resync => cache.clear(),
                _ => {}
            }
        })
    }

    /// Drops every cached credential.
    pub fn forget_all(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }

    // Alike accounts/service.rs cached: another cache, keyed by token hash, same TTL filter.
    fn cached(&self, hash: &[u8; 32]) -> Option<Cached> {
        let cache = self.cache.read().ok()?;
        cache
            .by_hash
            .get(hash)
            .filter(|c| c.fetched.elapsed() < self.ttl)
            .cloned()
    }

    /// The owner, from the cache while fresh (an account seen through one
    /// device needs no query for the next), else from the store.
    async fn owner(&self, account_id: i64) -> Result<Option<Arc<Owner>>, StoreError> {
        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.owners.get(&account_id).cloned())
            .filter(|o| o.fetched.elapsed() < self.ttl);
        if cached.is_some() {
            return Ok(cached);
        }
        crate::accounts::reachable(&self.store)?;
        let Some(account) = self.store.account(account_id).await? else {
            return Ok(None);
        };
        let key = self
            .store
            .identities(account.id)
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| IdentityKey {
                source: "device".into(),
                subject: account.id.to_string(),
            });
        let owner = Arc::new(Owner {
            account,
            key,
            fetched: Instant::now(),
        });
        if let Ok(mut cache) = self.cache.write() {
            cache.owners.insert(account_id, owner.clone());
        }
        Ok(Some(owner))
    }

    async fn fetch(&self, hash: [u8; 32], fresh_owner: bool) -> Result<Option<Cached>, StoreError> {
        crate::accounts::reachable(&self.store)?;
        let Some(device) = self.store.device_by_secret(&hash).await? else {
            return Ok(None);
        };
        if fresh_owner && let Ok(mut cache) = self.cache.write() {
            cache.owners.remove(&device.account_id);
        }
        let Some(owner) = self.owner(device.account_id).await? else {
            return Ok(None);
        };
        let now = Instant::now();
        let Ok(mut cache) = self.cache.write() else {
            return Ok(None);
        };
        let c = Cached {
            id: device.id,
            kind: CredentialKind::from_stored(&device.kind),
            expires_at: device.expires_at,
            routes: cache.routes(device.routes),
            basic_user: device
                .basic_user
                .filter(|u| *u != owner.account.username)
                .map(Arc::from),
            owner,
            fetched: now,
            last_touch: now.checked_sub(TOUCH_INTERVAL).unwrap_or(now),
        };
        cache.insert(hash, c.clone());
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
            None => match self.fetch(hash, false).await? {
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
            if let Some(fresh) = self.fetch(hash, true).await? {
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
            expires_at: entry.expires_at,
            basic_user: entry.basic_user.as_deref().unwrap_or(&owner.username),
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
        if entry.last_touch.elapsed() < TOUCH_INTERVAL {
            return;
        }
        {
            let Ok(mut cache) = self.cache.write() else {
                return;
            };
            let Some(c) = cache.by_hash.get_mut(hash) else {
                return;
            };
            // Claim the write, so concurrent requests don't all write.
            if c.last_touch.elapsed() < TOUCH_INTERVAL {
                return;
            }
            c.last_touch = Instant::now();
        }
        let store = self.store.clone();
        let id = entry.id;
        tokio::spawn(async move {
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
