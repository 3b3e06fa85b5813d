//! The session-identity cache of `[source.oidc]` (issue 15): what an app
//! route needs to know about a session cookie, kept in memory so that a
//! known session costs one SHA-256 and one map lookup instead of two store
//! reads per request.
//!
//! - **Key**: the SHA-256 of the session cookie (the store's
//!   `sessions.id_hash`); the cookie itself is never kept.
//! - **Every hit is judged again** from the cached timestamps: the
//!   session's absolute expiry (`now < expires_at`), its idle expiry
//!   (`now - last_seen < idle`) and its source (the configured issuer). A
//!   hit that fails one is dropped and the store is asked again, so the
//!   store has the last word on anything the cache would refuse.
//! - **Revocation**: the store publishes `Change::Session` (one session
//!   ended: logout, back-channel logout, an admin), `Change::AllSessionsOf`
//!   and `Change::Account` (status, attributes, deletion) on its change
//!   feed, also for other instances' changes (SQLite: polled every 250 ms;
//!   PostgreSQL: `LISTEN`), so a revocation reaches every instance within
//!   a second. The cache holds its own receiver of that feed and drains it
//!   **before every lookup**: a change published before a request began
//!   (this instance's own, or one the feed already brought) is applied
//!   before that request is answered, with no background task to wait
//!   for. A lagging receiver (changes lost) and `Change::Resync` clear
//!   the whole cache.
//! - **Bounds**: [`CACHE_TTL`] (the store is read again at least this
//!   often per session, for anything no change names) and
//!   [`MAX_ENTRIES`].
//! - **No stale insert**: a store read that raced a revocation is not
//!   cached (a generation counter moves with every change that drops
//!   entries).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::TryRecvError};
use vestibule_core::identity::Identity;
use vestibule_store::{AccountStatus, Change, Store, StoreError};

/// How long a cached session is trusted without the feed saying otherwise.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// The most sessions kept; past it, stale and expired entries go, then all.
pub const MAX_ENTRIES: usize = 100_000;
/// How often "last used" is written for a session.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// A session as an app route sees it.
#[derive(Debug)]
pub struct CachedSession {
    /// The account signed in.
    pub account_id: i64,
    /// The account's status when read.
    pub status: AccountStatus,
    /// The identity the session stands for (source, subject, the
    /// account's attributes).
    pub identity: Identity,
    expires_at: i64,
    /// Unix ms, as last written to the store (by this instance, or read).
    last_seen: AtomicI64,
    fetched: Instant,
}

impl CachedSession {
    /// Whether the session may be used at `now` for `issuer`: its own
    /// source, not past its absolute expiry, not idle.
    fn usable(&self, issuer: &str, now: i64, idle_ms: i64) -> bool {
        self.identity.source == issuer
            && now < self.expires_at
            && now.saturating_sub(self.last_seen.load(Ordering::Relaxed)) < idle_ms
    }
}

/// The cache, over one store.
pub struct OidcSessions {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<[u8; 32], Arc<CachedSession>>>,
    changes: Mutex<broadcast::Receiver<Change>>,
    /// Moves with every change that drops entries.
    generation: AtomicU64,
}

impl OidcSessions {
    /// A cache over `store`, following its change feed from now on.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let changes = Mutex::new(store.subscribe());
        Self {
            store,
            cache: RwLock::default(),
            changes,
            generation: AtomicU64::new(0),
        }
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies every change the feed has brought so far.
    fn apply_pending(&self) {
        let mut rx = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(c) => pending.push(c),
                // Changes were lost: nothing cached can be vouched for.
                Err(TryRecvError::Lagged(_)) => pending.push(Change::Resync),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let relevant: Vec<Change> = pending
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::Session(_)
                        | Change::AllSessionsOf(_)
                        | Change::Account(_)
                        | Change::Resync
                )
            })
            .collect();
        if relevant.is_empty() {
            return;
        }
        // Still under the receiver's lock: a lookup that drained after us
        // finds the entries already gone.
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        for change in relevant {
            match change {
                Change::Session(h) => {
                    cache.remove(&h);
                }
                // Rare events, so a scan is fine.
                Change::AllSessionsOf(id) | Change::Account(id) => {
                    cache.retain(|_, e| e.account_id != id);
                }
                _ => cache.clear(),
            }
        }
    }

    fn forget(&self, hash: &[u8; 32]) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(hash);
    }

    /// The session whose cookie hashes to `hash`, if it is live, not idle
    /// (`idle_ms`) and was opened by `issuer`'s login, with its account as
    /// stored; `None` otherwise. Writes "last used" at most once a
    /// [`TOUCH_EVERY_MS`]. Fails only when the store is needed and
    /// unreachable.
    pub async fn lookup(
        &self,
        hash: &[u8; 32],
        issuer: &str,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<Arc<CachedSession>>, StoreError> {
        self.apply_pending();
        let hit = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned();
        let entry = match hit {
            Some(e) if e.fetched.elapsed() < CACHE_TTL && e.usable(issuer, now, idle_ms) => e,
            other => {
                if other.is_some() {
                    self.forget(hash);
                }
                match self.fetch(hash, issuer, now, idle_ms).await? {
                    Some(e) => e,
                    None => return Ok(None),
                }
            }
        };
        let seen = entry.last_seen.load(Ordering::Relaxed);
        // One request per interval writes it (the others lose the swap).
        if now.saturating_sub(seen) > TOUCH_EVERY_MS
            && entry
                .last_seen
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            match self.store.touch_session(hash, now).await {
                Ok(()) => {}
                // Gone from the store without a change (expired rows are
                // purged silently): fail closed.
                Err(StoreError::NotFound) => {
                    self.forget(hash);
                    return Ok(None);
                }
                Err(e) => tracing::debug!(error = %e, "a session's last use was not written"),
            }
        }
        Ok(Some(entry))
    }

    /// Reads the session and its account from the store, and caches them
    /// unless a change arrived meanwhile.
    async fn fetch(
        &self,
        hash: &[u8; 32],
        issuer: &str,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<Arc<CachedSession>>, StoreError> {
        crate::accounts::reachable(&self.store)?;
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(s) = self.store.session(hash).await? else {
            return Ok(None);
        };
        let Some(account) = self.store.account(s.account_id).await? else {
            return Ok(None);
        };
        let entry = Arc::new(CachedSession {
            account_id: s.account_id,
            status: account.status,
            identity: Identity {
                source: s.source,
                subject: s.subject,
                username: account.username,
                email: account.email,
                display_name: account.display_name,
                groups: account.groups,
                org: account.org,
                ..Identity::default()
            },
            expires_at: s.expires_at,
            last_seen: AtomicI64::new(s.last_seen_at),
            fetched: Instant::now(),
        });
        if !entry.usable(issuer, now, idle_ms) {
            return Ok(None);
        }
        // A change published while we read (this instance's own, or one
        // the feed brought) may concern what we read: not cached then.
        self.apply_pending();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::SeqCst) == generation {
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, e| e.fetched.elapsed() < CACHE_TTL && now < e.expires_at);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(*hash, entry.clone());
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vestibule_store::{IdentityKey, NewAccount, Session, StoreConfig};

    const ISSUER: &str = "https://idp.example.test";
    const IDLE: i64 = 3_600_000;

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        vestibule_store::open(&StoreConfig::new(url)).await.unwrap()
    }

    /// An active account with one session from `ISSUER`, opened at `now`.
    async fn signed_in(store: &Arc<dyn Store>, sub: &str, n: u8, now: i64) -> (i64, [u8; 32]) {
        let account = store
            .create_account(NewAccount {
                key: IdentityKey {
                    source: ISSUER.into(),
                    subject: sub.into(),
                },
                username: sub.into(),
                email: None,
                display_name: None,
                groups: vec!["users".into()],
                org: None,
                status: AccountStatus::Active,
                now,
            })
            .await
            .unwrap();
        let hash = [n; 32];
        session(store, account.id, sub, hash, now).await;
        (account.id, hash)
    }

    async fn session(store: &Arc<dyn Store>, account: i64, sub: &str, hash: [u8; 32], now: i64) {
        store
            .create_session(&Session {
                id_hash: hash,
                account_id: account,
                source: ISSUER.into(),
                subject: sub.into(),
                created_at: now,
                last_seen_at: now,
                expires_at: now + 8 * IDLE,
                csrf_hash: [0; 32],
                user_agent: None,
                client_ip: None,
            })
            .await
            .unwrap();
    }

    /// Makes the stored session look idle without a change on the feed
    /// (a "last used" write publishes none): only a store read sees it.
    async fn age_in_store(store: &Arc<dyn Store>, hash: &[u8; 32], now: i64) {
        store.touch_session(hash, now - 2 * IDLE).await.unwrap();
    }

    #[tokio::test]
    async fn a_hit_is_served_from_memory_and_judged_on_cached_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let now = crate::accounts::now_ms();
        let (_, hash) = signed_in(&store, "alice", 1, now).await;
        let cache = OidcSessions::new(store.clone());
        let s = cache.lookup(&hash, ISSUER, now, IDLE).await.unwrap();
        assert_eq!(s.unwrap().identity.username, "alice");
        assert_eq!(cache.len(), 1);
        // The store now says idle, the cache does not read it: a hit.
        age_in_store(&store, &hash, now).await;
        assert!(
            cache
                .lookup(&hash, ISSUER, now + 1, IDLE)
                .await
                .unwrap()
                .is_some()
        );
        // Idle by the cached "last used": refused at once, without the TTL.
        assert!(
            cache
                .lookup(&hash, ISSUER, now + IDLE, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        // Another issuer's session is not this source's.
        let (_, other) = signed_in(&store, "bob", 2, now).await;
        assert!(
            cache
                .lookup(&other, "https://other.example.test", now, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        // Past its absolute expiry: refused, from memory too.
        assert!(
            cache
                .lookup(&other, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            cache
                .lookup(&other, ISSUER, now + 8 * IDLE, 16 * IDLE)
                .await
                .unwrap()
                .is_none()
        );
        // Unknown: none.
        assert!(
            cache
                .lookup(&[9; 32], ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_revoked_session_is_refused_at_once_after_a_cached_hit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let now = crate::accounts::now_ms();
        let (account, hash) = signed_in(&store, "alice", 1, now).await;
        let second = [3; 32];
        session(&store, account, "alice", second, now).await;
        let cache = OidcSessions::new(store.clone());
        for h in [&hash, &second] {
            assert!(cache.lookup(h, ISSUER, now, IDLE).await.unwrap().is_some());
            assert!(cache.lookup(h, ISSUER, now, IDLE).await.unwrap().is_some());
        }
        assert!(store.revoke_session(&hash).await.unwrap());
        // The very next lookup: no background task to wait for.
        assert!(
            cache
                .lookup(&hash, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .lookup(&second, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.revoke_sessions_of(account).await.unwrap(), 1);
        assert!(
            cache
                .lookup(&second, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_none()
        );
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn a_disabled_account_is_read_again_at_once_after_a_cached_hit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let now = crate::accounts::now_ms();
        let (account, hash) = signed_in(&store, "alice", 1, now).await;
        let cache = OidcSessions::new(store.clone());
        let s = cache
            .lookup(&hash, ISSUER, now, IDLE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.status, AccountStatus::Active);
        assert!(
            store
                .set_status(account, AccountStatus::Disabled, now)
                .await
                .unwrap()
        );
        let s = cache
            .lookup(&hash, ISSUER, now, IDLE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.status, AccountStatus::Disabled, "not the cached status");
    }

    #[tokio::test]
    async fn another_instances_revocation_arrives_through_the_feed() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir).await;
        // A second process's view of the same file.
        let b = store(&dir).await;
        let now = crate::accounts::now_ms();
        let (_, hash) = signed_in(&a, "alice", 1, now).await;
        let cache = OidcSessions::new(a.clone());
        assert!(
            cache
                .lookup(&hash, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_some()
        );
        assert!(b.revoke_session(&hash).await.unwrap());
        // SQLite's feed polls every 250 ms; revocation must land within 1 s.
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if cache
                .lookup(&hash, ISSUER, now, IDLE)
                .await
                .unwrap()
                .is_none()
            {
                break;
            }
            assert!(Instant::now() < deadline, "still cached after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
