//! What `private_key_jwt` client authentication needs beside the rules of
//! [`vestibule_core::oidc::verify_client_assertion`]: each client's JWK
//! Set, fetched from its registered `jwks_uri`, and the `jti`s of the
//! assertions already used (RFC 7523 §3 item 7, OIDC Core §9).
//!
//! - A key set is fetched on first use and kept for [`KEYS_TTL`]; when an
//!   assertion names a key id the set lacks (the client rotated) it is
//!   fetched again, at most every [`MIN_REFETCH`] per URL, so a forged
//!   `kid` cannot make the provider hammer the client. A failed refetch
//!   keeps the old set until its TTL runs out.
//! - A used `jti` is remembered, per client, until the assertion would
//!   have expired anyway (`exp` plus the leeway, at most a few minutes
//!   ahead: the core check bounds `exp`): here, in this instance's memory,
//!   where a replay is caught without a write, and then in the database
//!   (`Store::remember_client_assertion`, by `client_auth.rs`), which
//!   instances share, so an assertion is accepted once among them all.
//!   When [`MAX_REMEMBERED_ASSERTIONS`] live entries are held here, new
//!   assertions are refused (fail closed) rather than forgetting one still
//!   live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use vestibule_core::jwt::Jwks;

use crate::identity::jwks::request;

/// How long a client's key set is used before it is fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(300);
/// The shortest time between two fetches of one URL for an unknown key id.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// The most assertion ids remembered at once.
pub const MAX_REMEMBERED_ASSERTIONS: usize = 100_000;
/// The largest client JWK Set read.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Time allowed for one fetch.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What [`AssertionKeys::first_use`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The first use of this `jti` by this client.
    First,
    /// Seen before and not yet expired: a replay.
    Replay,
    /// The memory is full of live entries: refused, fail closed.
    Full,
}

/// The clients' key sets and the used assertion ids.
#[derive(Default)]
pub struct AssertionKeys {
    tls: std::sync::OnceLock<Option<tokio_rustls::TlsConnector>>,
    sets: Mutex<HashMap<String, (Instant, Arc<Jwks>)>>,
    refetched: Mutex<HashMap<String, Instant>>,
    seen: Mutex<HashMap<(String, String), i64>>,
    /// Held during a fetch (single flight: one fetch at a time).
    fetching: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AssertionKeys {
    fn tls(&self) -> Result<&tokio_rustls::TlsConnector, String> {
        self.tls
            .get_or_init(|| {
                crate::config::client_tls(None)
                    .ok()
                    .map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
            })
            .as_ref()
            .ok_or_else(|| "no TLS roots to fetch client keys with".to_owned())
    }

    /// The key set at `uri`, as fetched at most [`KEYS_TTL`] ago.
    pub async fn keys(&self, uri: &str) -> Result<Arc<Jwks>, String> {
        if let Some((at, k)) = lock(&self.sets).get(uri)
            && at.elapsed() < KEYS_TTL
        {
            return Ok(k.clone());
        }
        let _one = self.fetching.lock().await;
        if let Some((at, k)) = lock(&self.sets).get(uri)
            && at.elapsed() < KEYS_TTL
        {
            return Ok(k.clone());
        }
        self.fetch(uri).await
    }

    /// The key set at `uri` fetched again because an assertion named an
    /// unknown key id; `None` when that happened within [`MIN_REFETCH`] or
    /// the fetch failed.
    pub async fn refetch(&self, uri: &str) -> Option<Arc<Jwks>> {
        let _one = self.fetching.lock().await;
        {
            let mut last = lock(&self.refetched);
            if last.get(uri).is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return None;
            }
            if last.len() >= 4096 {
                last.clear();
            }
            last.insert(uri.to_owned(), Instant::now());
        }
        match self.fetch(uri).await {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(jwks_uri = uri, error = %e, "a client's keys could not be fetched again");
                None
            }
        }
    }

    /// Forgets every fetched key set (`SIGHUP`): the next assertion of each
    /// client fetches its keys anew.
    pub fn forget_keys(&self) -> usize {
        let mut sets = lock(&self.sets);
        let n = sets.len();
        sets.clear();
        lock(&self.refetched).clear();
        n
    }

    async fn fetch(&self, uri: &str) -> Result<Arc<Jwks>, String> {
        let url: http::Uri = uri.parse().map_err(|_| "jwks_uri is not a URL")?;
        let (status, body) = tokio::time::timeout(
            TIMEOUT,
            request(
                &url,
                self.tls()?,
                http::Method::GET,
                &[(http::header::ACCEPT, "application/json")],
                Bytes::new(),
                MAX_JWKS_BYTES,
            ),
        )
        .await
        .map_err(|_| format!("{uri}: no answer within {TIMEOUT:?}"))??;
        if status != http::StatusCode::OK {
            return Err(format!("{uri} answered {status}"));
        }
        let jwks =
            Jwks::parse(&body).map_err(|e| format!("the client's JWK Set is refused: {e}"))?;
        if jwks.is_empty() {
            return Err("the client's JWK Set has no usable signing key".into());
        }
        let jwks = Arc::new(jwks);
        let mut sets = lock(&self.sets);
        if sets.len() >= 4096 {
            sets.clear();
        }
        sets.insert(uri.to_owned(), (Instant::now(), jwks.clone()));
        Ok(jwks)
    }

    /// Records the assertion `jti` of `client_id`, remembered until
    /// `until` (Unix seconds).
    pub fn first_use(&self, client_id: &str, jti: &str, until: i64, now: i64) -> Use {
        let mut seen = lock(&self.seen);
        let key = (client_id.to_owned(), jti.to_owned());
        if seen.get(&key).is_some_and(|&u| u >= now) {
            return Use::Replay;
        }
        if seen.len() >= MAX_REMEMBERED_ASSERTIONS {
            seen.retain(|_, &mut u| u >= now);
            if seen.len() >= MAX_REMEMBERED_ASSERTIONS {
                return Use::Full;
            }
        }
        seen.insert(key, until);
        Use::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_used_once_per_client_until_it_expires() {
        let k = AssertionKeys::default();
        assert_eq!(k.first_use("app", "j1", 100, 50), Use::First);
        assert_eq!(k.first_use("app", "j1", 100, 60), Use::Replay);
        // Another client's jti space is its own.
        assert_eq!(k.first_use("other", "j1", 100, 60), Use::First);
        // Past its expiry the assertion is refused by its `exp` anyway;
        // the entry may be reused.
        assert_eq!(k.first_use("app", "j1", 200, 101), Use::First);
    }
}
