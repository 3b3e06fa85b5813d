//! The identity cache of `[source.headers]` (issue 17): a memo of
//! `Dialect::extract` and of the route profile's rendering, so that a
//! request whose front sends the same identity headers as an earlier one
//! neither decodes them nor copies a string.
//!
//! What it is not: a trust decision. Whether the peer may send identity
//! headers at all is decided before the cache is consulted, on every
//! request (`authenticate`), and the account and the policy are checked
//! after it, on every request too. The cache only answers "what does
//! `extract` give for these bytes", and it answers exactly what `extract`
//! would:
//!
//! - The key is the exact bytes of every header the dialect reads, all
//!   occurrences in order, with the slot each one fills
//!   (`Dialect::identity_headers`); a hash picks the bucket, and an entry
//!   is only used when its stored bytes are equal to the request's. A
//!   collision costs a comparison, never someone else's identity.
//! - Only an identity is cached: headers that are ambiguous or malformed
//!   (400) or absent are read again on every request, so every error keeps
//!   its own message.
//! - The cache belongs to the `IdentityReader` that holds the dialect and
//!   the limits, so it never outlives them.
//! - A rendering is kept per profile (compared by value, so a reloaded
//!   route with another profile renders afresh) and is only used for the
//!   cached identity itself: when the account changes what is forwarded
//!   (roles from `[accounts.roles]`, groups read back from the directory),
//!   the decision carries another identity and it is rendered as before.
//!
//! Bounded: at most [`IDENTITY_CACHE_ENTRIES`] identities; a new one past
//! that evicts an arbitrary bucket (the map's first), so a front that
//! sends a new identity per request costs memory no more than this.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, RwLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use vestibule_core::dialect::{Dialect, IdentityError, ValueLimits};
use vestibule_core::identity::Identity;
use vestibule_core::profile::HeaderProfile;
use vestibule_store::IdentityKey;

/// The most identities kept: a few thousand people behind one front is
/// the common size; an entry is the identity headers' bytes, the identity
/// and its rendering, well under 2 KiB, so at most a few MiB.
pub const IDENTITY_CACHE_ENTRIES: usize = 4096;

/// The most profiles one identity keeps a rendering for (routes with
/// distinct profiles it visits); more and the renderings are dropped and
/// made again.
const RENDERINGS_PER_IDENTITY: usize = 8;

/// The most identity headers a request's cache key is gathered from, on
/// the stack: more than any dialect reads (a preset reads at most nine
/// headers, a custom one six; see the test), so a request with more
/// repeats one, which `extract` refuses; it is read without the cache.
const GATHERED: usize = 16;

/// A profile's rendered headers, shared: a hit hands out clones, which
/// for a `HeaderValue` made once from `Bytes` is a reference count.
type Rendering = Arc<[(HeaderName, HeaderValue)]>;

/// One cached identity.
pub struct Entry {
    /// The identity headers' bytes: per header, its slot and its length
    /// (both `u32`, little-endian), then its value.
    key: Box<[u8]>,
    /// What `extract` made of them.
    pub identity: Arc<Identity>,
    /// The account keys (`Accounts::key_for`), built once: by subject and
    /// by username.
    by_subject: IdentityKey,
    by_username: IdentityKey,
    renderings: RwLock<Vec<(HeaderProfile, Rendering)>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identity's name only; the bytes are the front's headers.
        f.debug_struct("Entry")
            .field("username", &self.identity.username)
            .finish_non_exhaustive()
    }
}

impl Entry {
    fn new(key: Box<[u8]>, identity: Identity) -> Self {
        Self {
            by_subject: crate::accounts::Accounts::key_for(&identity, false),
            by_username: crate::accounts::Accounts::key_for(&identity, true),
            key,
            identity: Arc::new(identity),
            renderings: RwLock::new(Vec::new()),
        }
    }

    /// The key the identity's account is filed under, borrowed.
    pub fn account_key(&self, key_by_username: bool) -> &IdentityKey {
        if key_by_username {
            &self.by_username
        } else {
            &self.by_subject
        }
    }

    /// Hands every header of `profile`, rendered for this identity, to
    /// `emit`: what `profile.render_each(Some(&self.identity), emit)`
    /// gives, from the memo after the first time.
    pub fn render_each(
        &self,
        profile: &HeaderProfile,
        mut emit: impl FnMut(&HeaderName, HeaderValue),
    ) {
        let found = self.renderings.read().ok().and_then(|r| {
            r.iter()
                .find(|(p, _)| p == profile)
                .map(|(_, rendered)| rendered.clone())
        });
        let rendered = match found {
            Some(r) => r,
            None => {
                let rendered: Rendering = profile.render(Some(&self.identity)).into();
                if let Ok(mut r) = self.renderings.write() {
                    if r.len() >= RENDERINGS_PER_IDENTITY {
                        r.clear();
                    }
                    r.push((profile.clone(), rendered.clone()));
                }
                rendered
            }
        };
        for (name, value) in rendered.iter() {
            emit(name, value.clone());
        }
    }

    /// Whether the stored bytes are exactly `headers`'s.
    fn matches(&self, headers: &[(usize, &[u8])]) -> bool {
        let mut rest: &[u8] = &self.key;
        for &(slot, value) in headers {
            let Some((head, tail)) = rest.split_at_checked(8) else {
                return false;
            };
            let (s, len) = head.split_at(4);
            if u32::from_le_bytes(s.try_into().unwrap_or_default()) as usize != slot
                || u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize != value.len()
            {
                return false;
            }
            let Some((stored, tail)) = tail.split_at_checked(value.len()) else {
                return false;
            };
            if stored != value {
                return false;
            }
            rest = tail;
        }
        rest.is_empty()
    }
}

/// The key's bytes for `headers` (see [`Entry`]); `None` when a value or
/// a slot does not fit a `u32` (never for a header hyper accepted, but
/// such a request is simply not cached).
fn encode(headers: &[(usize, &[u8])]) -> Option<Box<[u8]>> {
    let mut key = Vec::new();
    for &(slot, value) in headers {
        key.extend_from_slice(&u32::try_from(slot).ok()?.to_le_bytes());
        key.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
        key.extend_from_slice(value);
    }
    Some(key.into_boxed_slice())
}

#[derive(Default)]
struct Map {
    /// Keyed by the already keyed hash of the headers: hashing it again
    /// would only cost time.
    buckets: HashMap<u64, Vec<Arc<Entry>>, BuildHasherDefault<AlreadyHashed>>,
    len: usize,
}

/// A `Hasher` for keys that are themselves the output of a keyed hash:
/// the key is the hash.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the map's key is a `u64`); any other
        // input still hashes, just not as well.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The cache; see the module's documentation.
pub struct IdentityCache {
    /// Keyed per process, so a front cannot aim its identities at one
    /// bucket (and a bucket is compared entry by entry anyway).
    hasher: RandomState,
    capacity: usize,
    map: RwLock<Map>,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for IdentityCache {
    fn default() -> Self {
        Self::with_capacity(IDENTITY_CACHE_ENTRIES)
    }
}

impl IdentityCache {
    /// A cache of at most `capacity` identities.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            map: RwLock::new(Map::default()),
        }
    }

    /// How many identities are cached.
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `dialect.extract(headers, limits)`, from the cache when the same
    /// identity headers were read before; the identity comes in its entry
    /// (with the account keys and the renderings).
    pub fn extract(
        &self,
        dialect: &Dialect,
        limits: &ValueLimits,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Entry>>, IdentityError> {
        // One pass over the request's headers (each compared with the
        // dialect's slots) yields what the hash, the comparison and the
        // key are made from.
        let mut read = [(0, &[][..]); GATHERED];
        let mut n = 0;
        for found in dialect.identity_headers(headers) {
            let Some(place) = read.get_mut(n) else {
                // More identity headers than the dialect has slots: one
                // is repeated, which `extract` refuses. Read, not cached.
                return Ok(dialect
                    .extract(headers, limits)?
                    .map(|id| Arc::new(Entry::new(Box::default(), id))));
            };
            *place = found;
            n += 1;
        }
        let read = &read[..n];
        let mut h = self.hasher.build_hasher();
        for &(slot, value) in read {
            h.write_usize(slot);
            h.write_usize(value.len());
            h.write(value);
        }
        let hash = h.finish();
        let hit = self.map.read().ok().and_then(|m| {
            m.buckets
                .get(&hash)?
                .iter()
                .find(|e| e.matches(read))
                .cloned()
        });
        if hit.is_some() {
            return Ok(hit);
        }
        let Some(identity) = dialect.extract(headers, limits)? else {
            return Ok(None);
        };
        let Some(key) = encode(read) else {
            return Ok(Some(Arc::new(Entry::new(Box::default(), identity))));
        };
        let entry = Arc::new(Entry::new(key, identity));
        if let Ok(mut m) = self.map.write() {
            let m = &mut *m;
            if m.len >= self.capacity
                && let Some(&evict) = m.buckets.keys().next()
                && let Some(gone) = m.buckets.remove(&evict)
            {
                m.len -= gone.len();
            }
            let bucket = m.buckets.entry(hash).or_default();
            // Two requests may have raced to the same miss: keep one.
            if !bucket.iter().any(|e| e.matches(read)) {
                bucket.push(entry.clone());
                m.len += 1;
            }
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;
    use vestibule_core::dialect::Preset;
    use vestibule_core::profile::ProfileKind;

    fn map(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn profiles() -> Vec<HeaderProfile> {
        [
            ProfileKind::Remote,
            ProfileKind::XForwarded,
            ProfileKind::Grafana {
                email: true,
                name: true,
            },
            ProfileKind::Georchestra,
        ]
        .iter()
        .map(|k| HeaderProfile::new(k).unwrap())
        .collect()
    }

    /// One header set: identity headers of every preset (some under `_`
    /// spellings, some repeated), values that are ambiguous, encoded or
    /// empty, and other headers among them.
    fn header_sets() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(
            (
                "(remote[-_](user|groups|email|name)|x-authentik-(uid|username|groups|email)|preauth-(username|roles|email|firstname|lastname)|sec-georchestra-preauthenticated|x-forwarded-(user|email|groups|preferred-username)|tailscale-user-(login|name)|accept|cookie)",
                "(true|alice|bob|Bob|a,b|a;b|a\\|b|x@y\\.z|=\\?utf-8\\?q\\?=C3=A9\\?=|\\{base64\\}w6k=| alice |)",
            ),
            0..8,
        )
    }

    proptest! {
        /// Cached or not, the same answer: the first reading (a miss) and
        /// the second (a hit, or an error read again) both give what
        /// `extract` gives, and a hit's rendering is the profile's own.
        #[test]
        fn the_cache_answers_what_extract_does(sets in proptest::collection::vec(header_sets(), 1..6)) {
            let limits = ValueLimits::default();
            for preset in Preset::ALL {
                let dialect = Dialect::preset(preset);
                // Small, so eviction happens within a case.
                let cache = IdentityCache::with_capacity(3);
                for round in 0..2 {
                    for pairs in &sets {
                        let headers = map(pairs);
                        let want = dialect.extract(&headers, &limits);
                        let got = cache.extract(&dialect, &limits, &headers);
                        match (&want, &got) {
                            (Ok(Some(w)), Ok(Some(e))) => {
                                prop_assert_eq!(w, &*e.identity, "round {}", round);
                                prop_assert_eq!(e.account_key(false), &crate::accounts::Accounts::key_for(w, false));
                                prop_assert_eq!(e.account_key(true), &crate::accounts::Accounts::key_for(w, true));
                                for profile in profiles() {
                                    let mut rendered = Vec::new();
                                    e.render_each(&profile, |n, v| rendered.push((n.clone(), v)));
                                    prop_assert_eq!(rendered, profile.render(Some(w)));
                                }
                            }
                            (Ok(None), Ok(None)) => {}
                            (Err(w), Err(g)) => prop_assert_eq!(w, g),
                            _ => prop_assert!(false, "{:?} cached as {:?}", want, got),
                        }
                        prop_assert!(cache.len() <= 3);
                    }
                }
            }
        }
    }

    #[test]
    fn a_hit_is_shared_and_other_bytes_are_another_identity() {
        let dialect = Dialect::preset(Preset::Authelia);
        let limits = ValueLimits::default();
        let cache = IdentityCache::default();
        let alice = map(&[("remote-user".into(), "alice".into())]);
        let a1 = cache.extract(&dialect, &limits, &alice).unwrap().unwrap();
        let a2 = cache.extract(&dialect, &limits, &alice).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&a1, &a2),
            "the second reading is the first's entry"
        );
        // One byte more, a second occurrence, another spelling: each is
        // read on its own (the last two are ambiguous, 400).
        let alicea = map(&[("remote-user".into(), "alicea".into())]);
        assert_eq!(
            cache
                .extract(&dialect, &limits, &alicea)
                .unwrap()
                .unwrap()
                .identity
                .username,
            "alicea"
        );
        let twice = map(&[
            ("remote-user".into(), "alice".into()),
            ("remote-user".into(), "alice".into()),
        ]);
        assert!(cache.extract(&dialect, &limits, &twice).is_err());
        let spelled = map(&[
            ("remote-user".into(), "alice".into()),
            ("remote_user".into(), "alice".into()),
        ]);
        assert!(cache.extract(&dialect, &limits, &spelled).is_err());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_request_with_more_identity_headers_than_gathered_is_read_uncached() {
        for preset in Preset::ALL {
            assert!(Dialect::preset(preset).header_names().count() < GATHERED);
        }
        let dialect = Dialect::preset(Preset::Authelia);
        let limits = ValueLimits::default();
        let cache = IdentityCache::default();
        let many: Vec<_> = (0..=GATHERED)
            .map(|_| ("remote-user".to_owned(), "alice".to_owned()))
            .collect();
        let headers = map(&many);
        assert_eq!(
            cache.extract(&dialect, &limits, &headers).unwrap_err(),
            dialect.extract(&headers, &limits).unwrap_err()
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let dialect = Dialect::preset(Preset::Authelia);
        let limits = ValueLimits::default();
        let cache = IdentityCache::with_capacity(16);
        for i in 0..1000 {
            let h = map(&[("remote-user".into(), format!("user{i}"))]);
            let e = cache.extract(&dialect, &limits, &h).unwrap().unwrap();
            assert_eq!(e.identity.username, format!("user{i}"));
            assert!(cache.len() <= 16);
        }
        assert!(!cache.is_empty());
    }
}
