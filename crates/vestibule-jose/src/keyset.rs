//! Our keys over time: one signs, retired ones still verify for a while,
//! next ones are published before they sign.

use crate::jwk::{PublicJwk, PublicJwks, VerifyingKey};
use crate::jws::{Compact, JwsError, Policy, Verified};
use crate::sign::{KeyError, SigningKey};

/// A set of our own keys modelling rotation (kanidm's key objects, RFC
/// 7517 §5 for publishing):
///
/// - one **current** key signs;
/// - **next** keys are published before they sign, so relying parties that
///   cache our JWK Set already know them when [`rotate`](Self::rotate)
///   makes one current; they do not verify yet (nothing they signed can
///   exist);
/// - **retired** keys signed in the past and still verify, and are still
///   published, while `now < verify_until`; after that they neither verify
///   nor appear, and [`prune`](Self::prune) forgets them.
///
/// Every key carries its one algorithm, and `kid`s are RFC 7638
/// thumbprints, unique in the set. Pure: `now` comes from the caller.
#[derive(Debug)]
pub struct KeySet {
    current: Held,
    next: Vec<Held>,
    retired: Vec<Retired>,
}

#[derive(Debug)]
struct Held {
    key: SigningKey,
    verifier: VerifyingKey,
}

#[derive(Debug)]
struct Retired {
    public: PublicJwk,
    verifier: VerifyingKey,
    verify_until: i64,
}

fn held(key: SigningKey) -> Result<Held, KeyError> {
    let verifier = key
        .public_jwk()
        .verifying_key()
        .map_err(KeyError::Rejected)?;
    Ok(Held { key, verifier })
}

impl KeySet {
    /// A set whose current key is `current`.
    pub fn new(current: SigningKey) -> Result<Self, KeyError> {
        Ok(Self {
            current: held(current)?,
            next: Vec::new(),
            retired: Vec::new(),
        })
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.current.key.kid() == kid
            || self.next.iter().any(|h| h.key.kid() == kid)
            || self.retired.iter().any(|r| r.public.kid() == kid)
    }

    /// The key that signs.
    pub fn current(&self) -> &SigningKey {
        &self.current.key
    }

    /// The keys published ahead of signing, oldest first.
    pub fn next_keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.next.iter().map(|h| &h.key)
    }

    /// The retired keys and the time each verifies until, newest first.
    pub fn retired_keys(&self) -> impl Iterator<Item = (&PublicJwk, i64)> {
        self.retired.iter().map(|r| (&r.public, r.verify_until))
    }

    /// Signs `payload` with the current key ([`SigningKey::sign`]).
    pub fn sign(&self, typ: Option<&str>, payload: &[u8]) -> Result<String, KeyError> {
        self.current.key.sign(typ, payload)
    }

    /// Publishes `key` ahead of its use; it signs after a
    /// [`rotate`](Self::rotate).
    pub fn add_next(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.has_kid(key.kid()) {
            return Err(KeyError::DuplicateKid);
        }
        self.next.push(held(key)?);
        Ok(())
    }

    /// Adds a key retired earlier (say, restored from storage): it verifies
    /// while `now < verify_until`.
    pub fn add_retired(&mut self, public: PublicJwk, verify_until: i64) -> Result<(), KeyError> {
        if self.has_kid(public.kid()) {
            return Err(KeyError::DuplicateKid);
        }
        let verifier = public.verifying_key().map_err(KeyError::Rejected)?;
        self.retired.push(Retired {
            public,
            verifier,
            verify_until,
        });
        Ok(())
    }

    /// Makes the oldest next key current; the current key retires and
    /// verifies while `now < verify_until` (pick it past the lifetime of
    /// the longest-lived token it signed). Its private half is dropped.
    pub fn rotate(&mut self, verify_until: i64) -> Result<(), KeyError> {
        if self.next.is_empty() {
            return Err(KeyError::NoNextKey);
        }
        let new = self.next.remove(0);
        let old = std::mem::replace(&mut self.current, new);
        self.retired.insert(
            0,
            Retired {
                public: old.key.public_jwk().clone(),
                verifier: old.verifier,
                verify_until,
            },
        );
        Ok(())
    }

    /// Forgets retired keys that no longer verify at `now`.
    pub fn prune(&mut self, now: i64) {
        self.retired.retain(|r| now < r.verify_until);
    }

    fn retired_at(&self, now: i64) -> impl Iterator<Item = &Retired> {
        self.retired.iter().filter(move |r| now < r.verify_until)
    }

    /// The JWK Set to publish at `now`: the current key first (many
    /// clients take the first key as the newest), then the next keys, then
    /// the retired keys that still verify, newest first. Public members
    /// only.
    pub fn published(&self, now: i64) -> PublicJwks {
        let mut keys = vec![self.current.key.public_jwk().clone()];
        keys.extend(self.next.iter().map(|h| h.key.public_jwk().clone()));
        keys.extend(self.retired_at(now).map(|r| r.public.clone()));
        PublicJwks::new(keys)
    }

    /// Verifies a JWS we signed, at `now`: with the current key, or a
    /// retired key that still verifies. Otherwise as
    /// [`Compact::verify`].
    pub fn verify(
        &self,
        jws: &Compact<'_>,
        policy: &Policy<'_>,
        now: i64,
    ) -> Result<Verified, JwsError> {
        let keys = std::iter::once(&self.current.verifier)
            .chain(self.retired_at(now).map(|r| &r.verifier));
        jws.verify_with(keys, policy)
    }
}
