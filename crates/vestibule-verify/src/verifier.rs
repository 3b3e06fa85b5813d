//! [`Verifier`]: a [`Policy`] and where its keys come from.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::claims::{Identity, Policy};
use crate::jwk::Jwks;

/// Verifies assertions under one [`Policy`], with pinned or fetched keys.
/// Cheap to clone (the keys and the cache are shared).
#[derive(Debug, Clone)]
pub struct Verifier {
    policy: Arc<Policy>,
    keys: Keys,
    /// The shortest time between two fetches of the key set.
    #[cfg(feature = "fetch")]
    min_refetch: std::time::Duration,
}

#[derive(Debug, Clone)]
enum Keys {
    Pinned(Arc<Jwks>),
    #[cfg(feature = "fetch")]
    Fetched(Arc<crate::fetch::RemoteJwks>),
}

impl Verifier {
    /// A verifier with a fixed key set (say, a copy of the gateway's
    /// `/.vestibule/jwks.json` deployed with the app). Rotation then means
    /// redeploying the set before the gateway signs with a new key.
    pub fn pinned(keys: Jwks, policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            keys: Keys::Pinned(Arc::new(keys)),
            #[cfg(feature = "fetch")]
            min_refetch: crate::fetch::MIN_REFETCH,
        }
    }

    /// [`pinned`](Self::pinned) with the key set read from a file.
    ///
    /// # Errors
    /// [`Error::KeysUnavailable`] when the file cannot be read,
    /// [`Error::InvalidKeySet`] when it is not a valid JWK Set.
    pub fn pinned_file(path: impl AsRef<std::path::Path>, policy: Policy) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|_| Error::KeysUnavailable)?;
        Ok(Self::pinned(Jwks::parse(&bytes)?, policy))
    }

    /// A verifier that fetches the key set from `jwks_url` (the gateway's
    /// `https://…/.vestibule/jwks.json`; `http://` only for a gateway on
    /// the same host or a private network) on first use, keeps it for
    /// five minutes, and fetches it again at once when a token names an
    /// unknown `kid` (at most once every ten seconds, so invented `kid`s
    /// cannot make the app hammer the gateway). HTTPS trusts Mozilla's
    /// roots (webpki-roots); see [`fetch_with_tls`](Self::fetch_with_tls).
    ///
    /// Fail closed: when the set cannot be fetched, nothing verifies.
    ///
    /// # Errors
    /// [`Error::KeysUnavailable`] when `jwks_url` is not an absolute
    /// `http` or `https` URL.
    #[cfg(feature = "fetch")]
    pub fn fetch(jwks_url: &str, policy: Policy) -> Result<Self, Error> {
        Self::fetch_with_tls(jwks_url, policy, crate::fetch::default_tls()?)
    }

    /// [`fetch`](Self::fetch) with your own rustls configuration (a
    /// private CA, say). Use rustls's aws-lc-rs provider.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    #[cfg(feature = "fetch")]
    pub fn fetch_with_tls(
        jwks_url: &str,
        policy: Policy,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Error> {
        Ok(Self {
            policy: Arc::new(policy),
            keys: Keys::Fetched(Arc::new(crate::fetch::RemoteJwks::new(jwks_url, tls)?)),
            min_refetch: crate::fetch::MIN_REFETCH,
        })
    }

    /// The shortest time between two fetches of the key set (default
    /// 10 s), whatever asks for them: unknown `kid`s, a stale cache, or a
    /// failed fetch. No effect on a pinned verifier.
    #[cfg(feature = "fetch")]
    #[must_use]
    pub fn with_min_refetch(mut self, interval: std::time::Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The policy this verifier checks.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies `token` now (the system clock).
    ///
    /// # Errors
    /// Why the token was refused; see [`Error`].
    pub async fn verify(&self, token: &str) -> Result<Identity, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match &self.keys {
            Keys::Pinned(keys) => self.policy.verify_at(token, keys, now),
            #[cfg(feature = "fetch")]
            Keys::Fetched(remote) => {
                // The header is read (not trusted) first, for the `kid` to
                // look up; everything is checked again by `verify_at`.
                let kid = crate::jws::key_id(token)?;
                let keys = remote.keys_for(&kid, self.min_refetch).await?;
                self.policy.verify_at(token, &keys, now)
            }
        }
    }
}
