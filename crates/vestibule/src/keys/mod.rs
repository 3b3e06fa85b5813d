//! The keys vestibule signs identity assertions with: kept in the store so
//! every instance on one database signs with the same set, sealed with the
//! key-encryption key when one is configured ([`kek`]), rotated on a
//! schedule and on command, published as a JWK Set.
//!
//! ## Lifecycle of a key (all times in the row)
//!
//! 1. **Published** from `created_at`: it is in the JWK Set but signs
//!    nothing, for `publish_ahead`, so that verifiers' cached sets (served
//!    with `max-age` of half of that) hold it before any token names it.
//! 2. **Signing** from `signs_from`: the newest key whose `signs_from` has
//!    come signs; the one before it is then retired.
//! 3. **Retired** at the next key's `signs_from`: it stays published until
//!    `verify_until` = retirement + [`KeyRing::verify_grace`] (the
//!    longest assertion lifetime, the verifiers' leeway, and how late an
//!    instance may notice the switch: `reload_every`), then it is purged.
//!
//! ## Races between instances
//!
//! Creating the first key and rotating are one conditional insert each
//! ([`vestibule_store::Store::insert_signing_key`]): "unless a key newer
//! than the one I saw exists". Of instances deciding together, one wins;
//! every instance then reloads the rows, so all build the same set.
//! Retiring is idempotent (the first retirement stands).
//!
//! ## One family per algorithm
//!
//! Assertions sign with `[keys] algorithm`; the OpenID Connect provider
//! signs ID tokens with RS256 by default and ES256 or EdDSA per client
//! (issue 14). Each algorithm in use is a **family** of its own: its first
//! key is made at the first start that needs it, it rotates on the same
//! schedule, and its keys live through the same lifecycle; the conditional
//! insert is per algorithm. The JWK Set publishes every family, each key
//! with its `kid`, `use: "sig"` and `alg`. A family stays in use while it
//! has a key that is not retired, so one made for a client that was later
//! removed (or an assertion algorithm since changed) keeps rotating and
//! being published: nothing it signed fails verification after a
//! configuration change.

pub mod assertion;
pub mod kek;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use vestibule_jose::{Algorithm, KeySet, PublicJwks, SigningKey};
use vestibule_store::{PrivateKeyFormat, Store, StoredSigningKey};

use crate::accounts::now_ms;
use crate::config::KeySettings;
use kek::Kek;

/// The pause after a failed reload before the next attempt.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The longest an assertion lives, and verifiers' leeway on `exp`: a
/// retired key stays published for these (and `[keys] reload_every`, how
/// late an instance may notice the switch) after it stopped signing.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// See [`MAX_ASSERTION_LIFETIME`].
pub const VERIFIER_LEEWAY: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The signing keys, as this instance last loaded them.
pub struct KeyRing {
    store: Arc<dyn Store>,
    kek: Option<Kek>,
    settings: KeySettings,
    /// The families: the assertion algorithm first; grows when a client
    /// needs one more ([`KeyRing::ensure_family`]).
    algorithms: RwLock<Vec<Algorithm>>,
    set: RwLock<Arc<Loaded>>,
}

/// A loaded set, and when its next key starts signing.
struct Loaded {
    /// The assertion algorithm's family.
    set: Arc<KeySet>,
    /// The other families, in [`KeyRing::algorithms`] order.
    others: Vec<(Algorithm, Arc<KeySet>)>,
    next_signs_from: Option<i64>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("settings", &self.settings)
            .field("sealed", &self.kek.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`KeyRing::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new key was stored: its kid and when it signs from (unix ms).
    Added { kid: String, signs_from: i64 },
    /// Another instance rotated first (or, on schedule, it is not due).
    NotNeeded,
}

impl KeyRing {
    /// Loads the key-encryption key, creates the first signing key when
    /// the store has none (one instance wins; the rest load its key), and
    /// loads the set.
    pub async fn open(store: Arc<dyn Store>, settings: KeySettings) -> Result<Self, String> {
        Self::open_with(store, settings, &[]).await
    }

    /// [`KeyRing::open`], with a family for each of `extra` too (the ID
    /// token algorithms of the OpenID Connect provider), besides the
    /// assertion algorithm and every family that has a live key.
    pub async fn open_with(
        store: Arc<dyn Store>,
        settings: KeySettings,
        extra: &[Algorithm],
    ) -> Result<Self, String> {
        let kek = settings.kek.as_ref().map(Kek::load).transpose()?;
        if let Some(kek) = &kek {
            seal_plain_keys(&*store, kek).await?;
        }
        let now = now_ms();
        let rows = store.signing_keys().await.map_err(store_error)?;
        let algorithms = algorithms_in_use(settings.algorithm.jose(), extra, &rows);
        for &alg in &algorithms {
            first_key(&*store, kek.as_ref(), alg, &rows, now).await?;
        }
        let set = load_set(
            &*store,
            kek.as_ref(),
            &algorithms,
            now,
            verify_grace(&settings),
        )
        .await?;
        Ok(Self {
            store,
            kek,
            settings,
            algorithms: RwLock::new(algorithms),
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// The algorithms of the families, the assertion algorithm first.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.algorithms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes sure the ring has a family for `alg`: a client registered in
    /// the store, or added by `vestibule clients` while this instance
    /// runs, may sign its ID tokens with an algorithm no family was opened
    /// for at start. The first key is made as at start (of instances doing
    /// this together one wins; the rest load its key), then the set is
    /// reloaded. Called before every signature of the provider, so the
    /// cost when the family exists is one read lock.
    pub async fn ensure_family(&self, alg: Algorithm) -> Result<(), String> {
        if self.for_algorithm(alg).is_some() {
            return Ok(());
        }
        let rows = self.store.signing_keys().await.map_err(store_error)?;
        first_key(&*self.store, self.kek.as_ref(), alg, &rows, now_ms()).await?;
        {
            let mut algs = self
                .algorithms
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        self.reload().await
    }

    /// The set of the family of `alg`, if the ring has one.
    pub fn for_algorithm(&self, alg: Algorithm) -> Option<Arc<KeySet>> {
        let loaded = self.loaded();
        if loaded.set.current().algorithm() == alg {
            return Some(loaded.set.clone());
        }
        loaded
            .others
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, s)| s.clone())
    }

    /// The set loaded last.
    pub fn current(&self) -> Arc<KeySet> {
        self.loaded().set.clone()
    }

    /// The JWK Set to publish now: every family's keys, the assertion
    /// family first.
    pub fn published(&self) -> PublicJwks {
        let loaded = self.loaded();
        let now = now_ms();
        PublicJwks::merged(
            std::iter::once(loaded.set.published(now))
                .chain(loaded.others.iter().map(|(_, s)| s.published(now))),
        )
    }

    /// `Cache-Control` for the published set.
    pub fn cache_control(&self) -> String {
        format!("public, max-age={}", self.settings.jwks_max_age().as_secs())
    }

    /// How long a retired key stays published after it stopped signing.
    pub fn verify_grace(&self) -> Duration {
        verify_grace(&self.settings)
    }

    /// Reloads the set from the store, persisting the retirement of keys
    /// that a newer key has replaced, and purging keys past
    /// `verify_until`.
    pub async fn reload(&self) -> Result<(), String> {
        let now = now_ms();
        let set = load_set(
            &*self.store,
            self.kek.as_ref(),
            &self.algorithms(),
            now,
            self.verify_grace(),
        )
        .await?;
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        let purged = self
            .store
            .purge_signing_keys(now)
            .await
            .map_err(store_error)?;
        if purged > 0 {
            tracing::info!(
                purged,
                "signing keys past their last token's expiry removed"
            );
        }
        Ok(())
    }

    /// Adds the next key when the newest one is due for replacement
    /// (`force`: now, whatever the schedule). It is published at once and
    /// signs after `publish_ahead` (`immediately`: at once, for a key that
    /// must go now; verifiers that cached the set refetch on the unknown
    /// kid). Reloads afterwards either way.
    pub async fn rotate(&self, force: bool, immediately: bool) -> Result<Rotation, String> {
        let rows = self.store.signing_keys().await.map_err(store_error)?;
        let alg = self.settings.algorithm.jose();
        let outcome = self
            .rotate_family(alg, &rows, now_ms(), force, immediately)
            .await?;
        self.reload().await?;
        Ok(outcome)
    }

    /// [`KeyRing::rotate`] for every family: what each did, in
    /// [`KeyRing::algorithms`] order.
    pub async fn rotate_all(
        &self,
        force: bool,
        immediately: bool,
    ) -> Result<Vec<(Algorithm, Rotation)>, String> {
        let rows = self.store.signing_keys().await.map_err(store_error)?;
        let now = now_ms();
        let algorithms = self.algorithms();
        let mut out = Vec::with_capacity(algorithms.len());
        for alg in algorithms {
            let outcome = self
                .rotate_family(alg, &rows, now, force, immediately)
                .await?;
            out.push((alg, outcome));
        }
        self.reload().await?;
        Ok(out)
    }

    /// Adds the next key of the family of `alg` when due (or `force`d);
    /// `rows` are the stored keys as read just before.
    async fn rotate_family(
        &self,
        alg: Algorithm,
        rows: &[StoredSigningKey],
        now: i64,
        force: bool,
        immediately: bool,
    ) -> Result<Rotation, String> {
        let newest = rows
            .iter()
            .filter(|r| r.retired_at.is_none() && r.alg == alg.as_str())
            .map(|r| r.created_at)
            .max()
            .unwrap_or(i64::MIN);
        let due = newest.saturating_add(ms(self.settings.rotate_every))
            <= now.saturating_add(ms(self.settings.publish_ahead));
        if !(force || due) {
            return Ok(Rotation::NotNeeded);
        }
        let signs_from = if immediately {
            now
        } else {
            now + ms(self.settings.publish_ahead)
        };
        let (key, row) = new_key(alg, self.kek.as_ref(), now, signs_from)?;
        if !self
            .store
            .insert_signing_key(&row, newest)
            .await
            .map_err(store_error)?
        {
            return Ok(Rotation::NotNeeded);
        }
        tracing::info!(kid = key.kid(), alg = %alg, signs_from, "next signing key published");
        Ok(Rotation::Added {
            kid: key.kid().to_owned(),
            signs_from,
        })
    }

    /// Spawns the task that rotates when due and reloads, every
    /// `[keys] reload_every` (and right when a published key starts
    /// signing). This is also the longest an instance may keep signing with
    /// a key after the next one's `signs_from`, or go without publishing a
    /// key another instance added (the switch itself is computed from the
    /// rows at each reload).
    pub fn maintain(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.settings.reload_every;
            loop {
                let wait = self.next_switch_in().unwrap_or(every).min(every);
                tokio::time::sleep(wait).await;
                if let Err(e) = self.rotate_all(false, false).await {
                    tracing::warn!(error = %e, "could not rotate or reload the signing keys; retrying");
                    // The switch time may have passed already: without a
                    // pause this would retry in a tight loop while the
                    // store is away.
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        })
    }

    /// How long until the next published key starts signing.
    fn next_switch_in(&self) -> Option<Duration> {
        let at = self.loaded().next_signs_from?;
        Some(Duration::from_millis(
            u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0),
        ))
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn verify_grace(settings: &KeySettings) -> Duration {
    MAX_ASSERTION_LIFETIME + VERIFIER_LEEWAY + settings.reload_every
}

fn store_error(e: vestibule_store::StoreError) -> String {
    format!("signing keys: {e}")
}

/// The families a ring holds: `primary` (assertions), then `extra`, then
/// the algorithm of every live stored key, each once. A stored algorithm
/// this build does not know is left out (its rows fail nothing).
fn algorithms_in_use(
    primary: Algorithm,
    extra: &[Algorithm],
    rows: &[StoredSigningKey],
) -> Vec<Algorithm> {
    let stored = rows
        .iter()
        .filter(|r| r.retired_at.is_none())
        .filter_map(|r| Algorithm::parse(&r.alg));
    let mut out: Vec<Algorithm> = Vec::new();
    for alg in std::iter::once(primary)
        .chain(extra.iter().copied())
        .chain(stored)
    {
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    out
}

/// Makes the first key of the family of `alg` when it has no live key in
/// `rows`. It signs at once: no verifier can have cached a set without it,
/// as there was none. Of instances doing this together, one wins.
async fn first_key(
    store: &dyn Store,
    kek: Option<&Kek>,
    alg: Algorithm,
    rows: &[StoredSigningKey],
    now: i64,
) -> Result<(), String> {
    if rows
        .iter()
        .any(|r| r.retired_at.is_none() && r.alg == alg.as_str())
    {
        return Ok(());
    }
    let (key, row) = new_key(alg, kek, now, now)?;
    if store
        .insert_signing_key(&row, i64::MIN)
        .await
        .map_err(store_error)?
    {
        tracing::info!(kid = key.kid(), alg = %key.algorithm(), "first signing key created");
    }
    Ok(())
}

/// With a key-encryption key configured, seals in place every signing key
/// still stored plain (made before one was configured): one conditional
/// update per key, so of instances starting together one seals each key
/// and the rest change nothing. Logged and audited by kid, never the key.
async fn seal_plain_keys(store: &dyn Store, kek: &Kek) -> Result<(), String> {
    for row in store.signing_keys().await.map_err(store_error)? {
        if row.private_format != PrivateKeyFormat::Plain {
            continue;
        }
        // Only a row that holds the key its kid names is sealed under it.
        open_row(&row, None)?;
        let sealed = kek.seal(&row.kid, &row.private_key)?;
        if store
            .seal_signing_key(&row.kid, &sealed)
            .await
            .map_err(store_error)?
        {
            kek::audit_sealed(store, format!("key:{}", row.kid)).await;
        }
    }
    Ok(())
}

/// A new key for `alg`, and its row (sealed with `kek` when there is one).
fn new_key(
    alg: Algorithm,
    kek: Option<&Kek>,
    now: i64,
    signs_from: i64,
) -> Result<(SigningKey, StoredSigningKey), String> {
    let key = SigningKey::generate(alg).map_err(|e| format!("cannot make a signing key: {e}"))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| format!("cannot export a signing key: {e}"))?;
    let (private_format, private_key) = match kek {
        Some(kek) => (PrivateKeyFormat::Aes256Gcm, kek.seal(key.kid(), &der)?),
        None => (PrivateKeyFormat::Plain, der),
    };
    let row = StoredSigningKey {
        kid: key.kid().to_owned(),
        alg: alg.as_str().to_owned(),
        private_format,
        private_key,
        public_jwk: key.public_jwk().to_json().to_string(),
        created_at: now,
        signs_from,
        retired_at: None,
        verify_until: None,
    };
    Ok((key, row))
}

/// The signing key a row holds. The kid must be the key's own thumbprint:
/// a row whose key was swapped is refused.
fn open_row(row: &StoredSigningKey, kek: Option<&Kek>) -> Result<SigningKey, String> {
    let alg = Algorithm::parse(&row.alg)
        .ok_or_else(|| format!("signing key {} has an unknown algorithm", row.kid))?;
    let der = match (row.private_format, kek) {
        (PrivateKeyFormat::Plain, _) => row.private_key.clone(),
        (PrivateKeyFormat::Aes256Gcm, Some(kek)) => kek.open(&row.kid, &row.private_key)?,
        (PrivateKeyFormat::Aes256Gcm, None) => {
            return Err(format!(
                "signing key {} is sealed, and no key-encryption key is configured \
                 (`[keys] kek_file` or `kek_env`)",
                row.kid
            ));
        }
    };
    let key = SigningKey::from_pkcs8_der(alg, &der)
        .map_err(|e| format!("signing key {}: {e}", row.kid))?;
    if key.kid() != row.kid {
        return Err(format!(
            "signing key {} holds a different key ({}): the row was altered",
            row.kid,
            key.kid()
        ));
    }
    Ok(key)
}

/// Builds the sets of the families of `algorithms` (the assertion family
/// first) from the stored rows at `now`, and persists the retirement of
/// keys a newer signing key of their family replaced.
async fn load_set(
    store: &dyn Store,
    kek: Option<&Kek>,
    algorithms: &[Algorithm],
    now: i64,
    grace: Duration,
) -> Result<Loaded, String> {
    let rows = store.signing_keys().await.map_err(store_error)?;
    let mut sets = Vec::with_capacity(algorithms.len());
    let mut next_signs_from: Option<i64> = None;
    for &alg in algorithms {
        let family: Vec<StoredSigningKey> = rows
            .iter()
            .filter(|r| r.alg == alg.as_str())
            .cloned()
            .collect();
        let (set, next) = load_family(store, kek, &family, now, grace).await?;
        next_signs_from = match (next_signs_from, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        sets.push((alg, Arc::new(set)));
    }
    if sets.is_empty() {
        return Err("no signing key is stored".to_owned());
    }
    let (_, set) = sets.remove(0);
    Ok(Loaded {
        set,
        others: sets,
        next_signs_from,
    })
}

/// The set of one family from its rows, and when its next key signs.
async fn load_family(
    store: &dyn Store,
    kek: Option<&Kek>,
    rows: &[StoredSigningKey],
    now: i64,
    grace: Duration,
) -> Result<(KeySet, Option<i64>), String> {
    let plan = plan(rows, now, ms(grace))?;
    for (kid, retired_at, verify_until) in &plan.retire {
        store
            .retire_signing_key(kid, *retired_at, *verify_until)
            .await
            .map_err(store_error)?;
    }
    let by_kid = |kid: &str| rows.iter().find(|r| r.kid == kid);
    let current = by_kid(&plan.current)
        .map(|r| open_row(r, kek))
        .transpose()?;
    let current = current.ok_or_else(|| "no signing key is stored".to_owned())?;
    let mut set = KeySet::new(current).map_err(|e| e.to_string())?;
    for kid in &plan.next {
        if let Some(r) = by_kid(kid) {
            set.add_next(open_row(r, kek)?).map_err(|e| e.to_string())?;
        }
    }
    for (kid, verify_until) in &plan.retired {
        if let Some(r) = by_kid(kid) {
            let public = open_row(r, kek)?.public_jwk().clone();
            set.add_retired(public, *verify_until)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok((set, plan.next_signs_from))
}

/// Which stored key plays which part at `now`.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The key that signs: the newest whose `signs_from` has come (or, if
    /// none has, the earliest to come: better than not signing).
    current: String,
    /// Keys published ahead of signing, by `signs_from`.
    next: Vec<String>,
    /// When the first of `next` starts signing.
    next_signs_from: Option<i64>,
    /// Retired keys still verifying: kid and `verify_until`.
    retired: Vec<(String, i64)>,
    /// Keys to retire in the store: kid, retirement, `verify_until`.
    retire: Vec<(String, i64, i64)>,
}

fn plan(rows: &[StoredSigningKey], now: i64, grace_ms: i64) -> Result<Plan, String> {
    let mut active: Vec<&StoredSigningKey> =
        rows.iter().filter(|r| r.retired_at.is_none()).collect();
    active.sort_by(|a, b| {
        (a.signs_from, a.created_at, &a.kid).cmp(&(b.signs_from, b.created_at, &b.kid))
    });
    let signing = active.iter().filter(|r| r.signs_from <= now).count();
    let current_at = signing.saturating_sub(1);
    let current = *active
        .get(current_at)
        .ok_or_else(|| "no signing key is stored".to_owned())?;
    let mut retired: Vec<(String, i64)> = Vec::new();
    let mut retire = Vec::new();
    // Older keys that were signing until `current` took over.
    for (i, old) in active[..current_at].iter().enumerate() {
        let replaced_at = active[i + 1].signs_from;
        let verify_until = replaced_at.saturating_add(grace_ms);
        retire.push((old.kid.clone(), replaced_at, verify_until));
        if now < verify_until {
            retired.push((old.kid.clone(), verify_until));
        }
    }
    let next: Vec<&StoredSigningKey> = active[current_at + 1..].to_vec();
    for r in rows {
        if let Some(until) = r.verify_until
            && r.retired_at.is_some()
            && now < until
        {
            retired.push((r.kid.clone(), until));
        }
    }
    // Newest first, as published.
    retired.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Plan {
        current: current.kid.clone(),
        next_signs_from: next.first().map(|r| r.signs_from),
        next: next.iter().map(|r| r.kid.clone()).collect(),
        retired,
        retire,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SigningAlgorithm;

    fn settings(kek: Option<crate::config::KekSource>) -> KeySettings {
        KeySettings {
            algorithm: SigningAlgorithm::Es256,
            rotate_every: Duration::from_secs(30 * 86_400),
            publish_ahead: Duration::from_secs(3600),
            reload_every: Duration::from_secs(60),
            kek,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        vestibule_store::open(&vestibule_store::StoreConfig::new(url))
            .await
            .unwrap()
    }

    fn row(kid: &str, created_at: i64, signs_from: i64) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_format: PrivateKeyFormat::Plain,
            private_key: Vec::new(),
            public_jwk: String::new(),
            created_at,
            signs_from,
            retired_at: None,
            verify_until: None,
        }
    }

    #[test]
    fn the_newest_key_whose_time_has_come_signs() {
        let rows = vec![
            row("a", 0, 0),
            row("b", 100, 200),
            row("c", 300, 400),
            StoredSigningKey {
                retired_at: Some(50),
                verify_until: Some(1_000),
                ..row("old", -10, -10)
            },
            StoredSigningKey {
                retired_at: Some(10),
                verify_until: Some(100),
                ..row("gone", -20, -20)
            },
        ];
        // Before b signs: a signs, b and c are published ahead.
        let p = plan(&rows, 150, 500).unwrap();
        assert_eq!(p.current, "a");
        assert_eq!(p.next, vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(p.next_signs_from, Some(200));
        assert_eq!(p.retired, vec![("old".to_owned(), 1_000)]);
        assert!(p.retire.is_empty());
        // b's time has come: a is retired at b's signs_from, for the grace.
        let p = plan(&rows, 250, 500).unwrap();
        assert_eq!(p.current, "b");
        assert_eq!(p.next, vec!["c".to_owned()]);
        assert_eq!(p.retire, vec![("a".to_owned(), 200, 700)]);
        assert_eq!(
            p.retired,
            vec![("old".to_owned(), 1_000), ("a".to_owned(), 700)]
        );
        // Long after: c signs; a and b are past their grace.
        let p = plan(&rows, 5_000, 500).unwrap();
        assert_eq!(p.current, "c");
        assert!(p.next.is_empty() && p.retired.is_empty());
        assert_eq!(
            p.retire,
            vec![("a".to_owned(), 200, 700), ("b".to_owned(), 400, 900)]
        );
        assert!(plan(&[], 0, 500).is_err());
    }

    #[tokio::test]
    async fn the_first_key_is_made_once_and_shared_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let kek_path = dir.path().join("kek");
        std::fs::write(&kek_path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let kek = Some(crate::config::KekSource::File(kek_path));
        let store = store(&dir).await;
        let (a, b) = tokio::join!(
            KeyRing::open(store.clone(), settings(kek.clone())),
            KeyRing::open(store.clone(), settings(kek.clone())),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.current().current().kid(), b.current().current().kid());
        let rows = store.signing_keys().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].private_format, PrivateKeyFormat::Aes256Gcm);
        assert_eq!(rows[0].alg, "ES256");
        // Sealed: the store holds no usable key without the KEK.
        assert!(KeyRing::open(store.clone(), settings(None)).await.is_err());
        assert_eq!(a.cache_control(), "public, max-age=1800");
        let jwks: serde_json::Value = serde_json::from_str(&a.published().to_json()).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], rows[0].kid.as_str());
        assert!(jwks["keys"][0].get("d").is_none());
    }

    #[tokio::test]
    async fn one_family_per_algorithm_each_rotated_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let extra = [Algorithm::RS256, Algorithm::EdDSA, Algorithm::RS256];
        let ring = KeyRing::open_with(store.clone(), settings(None), &extra)
            .await
            .unwrap();
        assert_eq!(
            ring.algorithms(),
            [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
        );
        // Assertions keep their algorithm.
        assert_eq!(ring.current().current().algorithm(), Algorithm::ES256);
        for alg in ring.algorithms() {
            let set = ring.for_algorithm(alg).unwrap();
            assert_eq!(set.current().algorithm(), alg);
        }
        assert!(ring.for_algorithm(Algorithm::ES384).is_none());
        let jwks: serde_json::Value = serde_json::from_str(&ring.published().to_json()).unwrap();
        let algs: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert_eq!(k["use"], "sig");
                assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
                k["alg"].as_str().unwrap()
            })
            .collect();
        assert_eq!(algs, ["ES256", "RS256", "EdDSA"]);
        // Every family rotates; a ring opened without the extra algorithms
        // (the `keys` command) still holds them, as they have live keys.
        let rotated = ring.rotate_all(true, false).await.unwrap();
        assert_eq!(rotated.len(), 3);
        assert!(
            rotated
                .iter()
                .all(|(_, r)| matches!(r, Rotation::Added { .. }))
        );
        assert_eq!(store.signing_keys().await.unwrap().len(), 6);
        let other = KeyRing::open(store.clone(), settings(None)).await.unwrap();
        assert_eq!(other.algorithms().len(), 3);
        assert_eq!(other.published().keys().len(), 6);
        assert_eq!(
            other
                .for_algorithm(Algorithm::RS256)
                .unwrap()
                .current()
                .kid(),
            ring.for_algorithm(Algorithm::RS256)
                .unwrap()
                .current()
                .kid()
        );
    }

    #[tokio::test]
    async fn rotation_publishes_ahead_then_an_immediate_one_signs() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ring = KeyRing::open(store.clone(), settings(None)).await.unwrap();
        let first = ring.current().current().kid().to_owned();
        // Not due on schedule.
        assert_eq!(
            ring.rotate(false, false).await.unwrap(),
            Rotation::NotNeeded
        );
        // Forced: published, not signing yet.
        let Rotation::Added { kid: ahead, .. } = ring.rotate(true, false).await.unwrap() else {
            panic!("a forced rotation adds a key");
        };
        let set = ring.current();
        assert_eq!(set.current().kid(), first);
        assert_eq!(
            set.next_keys().map(|k| k.kid()).collect::<Vec<_>>(),
            vec![ahead.as_str()]
        );
        assert_eq!(ring.published().keys().len(), 2);
        // Immediately: it signs now; the first key is retired but still
        // published (its tokens may be live); the one ahead stays ahead.
        let Rotation::Added { kid: now_kid, .. } = ring.rotate(true, true).await.unwrap() else {
            panic!("a forced rotation adds a key");
        };
        let set = ring.current();
        assert_eq!(set.current().kid(), now_kid);
        let published: Vec<String> = ring
            .published()
            .keys()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(
            published,
            vec![now_kid.clone(), ahead.clone(), first.clone()]
        );
        let rows = store.signing_keys().await.unwrap();
        let first_row = rows.iter().find(|r| r.kid == first).unwrap();
        let retired_at = first_row.retired_at.expect("the first key is retired");
        assert_eq!(
            first_row.verify_until,
            Some(retired_at + ms(ring.verify_grace()))
        );
        // Another instance loads the same set.
        let other = KeyRing::open(store, settings(None)).await.unwrap();
        assert_eq!(other.current().current().kid(), now_kid);
    }
}
