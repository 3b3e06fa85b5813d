//! The signing keys of `[source.jwt]`: a JWK Set (RFC 7517 §5) read from a
//! file or fetched over HTTPS, kept in memory, fetched again every
//! `jwks_refresh`, and at once (at most every [`MIN_REFETCH`]) when an
//! assertion names a key id vestibule does not have, which is how issuers
//! rotate keys (OIDC Core §10.1.1).
//!
//! A failed fetch keeps the keys vestibule already has: a key server that is
//! down for a minute must not sign everyone out. Until the first successful
//! load there are no keys, and assertions are answered 503 (fail closed).
//!
//! Only `jwks_url`/`jwks_file` are ever read: header parameters that point
//! at keys (`jku`, `x5u`, `jwk`) are ignored (RFC 8725 §3.10).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use tokio::net::TcpStream;
use vestibule_core::identity::Identity;
use vestibule_core::jwt::Jwks;

use crate::config::{JwksLocation, JwtSettings};

/// The shortest time between two fetches triggered by unknown key ids, so
/// a client inventing `kid`s cannot make vestibule hammer the key server.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// A JWK Set larger than this is refused.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time allowed for one fetch, connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most verified assertions remembered (about 3 MB).
const MAX_REMEMBERED: usize = 10_000;

/// An assertion that verified, so the same token (fronts send one per
/// session, for minutes) costs a hash lookup instead of a signature check
/// (22 µs for RS256, 69 µs for ES256; see BENCHMARKS.md). Keyed by the
/// token's SHA-256; valid until the token's own `exp` (with leeway) and
/// only under the key set it was checked with.
struct Remembered {
    identity: Identity,
    valid_until: i64,
    generation: u64,
}

/// The current keys of one issuer.
pub struct SigningKeys {
    settings: JwtSettings,
    current: RwLock<Option<Arc<Jwks>>>,
    /// Held during a fetch (single flight).
    fetching: tokio::sync::Mutex<()>,
    /// When an unknown key id last caused a fetch.
    last_on_demand: std::sync::Mutex<Option<Instant>>,
    /// Bumped on every key load, which forgets every remembered assertion
    /// (a key the issuer withdrew must stop working at once).
    generation: AtomicU64,
    remembered: RwLock<HashMap<[u8; 32], Remembered>>,
    tls: tokio_rustls::TlsConnector,
}

impl SigningKeys {
    /// Prepares the key set; nothing is read until [`SigningKeys::refresh`].
    pub fn new(settings: JwtSettings) -> Result<Self, String> {
        let config = crate::config::client_tls(settings.jwks_ca.as_deref())?;
        Ok(Self {
            settings,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_on_demand: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            remembered: RwLock::new(HashMap::new()),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The source's settings.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The keys, once loaded, with their generation (for
    /// [`SigningKeys::remember`]). The generation is read first: if a load
    /// slips in between, the pair is the new keys with the old number, which
    /// only makes a remembered entry useless, never stale.
    pub fn current(&self) -> Option<(Arc<Jwks>, u64)> {
        let generation = self.generation.load(Ordering::SeqCst);
        let keys = self.current.read().ok().and_then(|k| k.clone())?;
        Some((keys, generation))
    }

    /// Reads the keys now, replacing the current ones on success. Returns
    /// how many keys the new set holds.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one_at_a_time = self.fetching.lock().await;
        self.load().await
    }

    /// Fetches again because an assertion named an unknown key, unless a
    /// fetch happened within [`MIN_REFETCH`]. Returns whether a fetch was
    /// made and succeeded.
    pub async fn refetch_for_unknown_key(&self) -> bool {
        let _one_at_a_time = self.fetching.lock().await;
        {
            // Checked and set under the fetch lock, so requests that queued
            // behind a fetch do not each start another.
            let Ok(mut last) = self.last_on_demand.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.load().await {
            Ok(n) => {
                tracing::info!(keys = n, "signing keys fetched again for an unknown key id");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fetch the signing keys");
                false
            }
        }
    }

    /// The identity of an assertion that verified before under the current
    /// keys and has not expired since.
    pub fn remembered(&self, token_hash: &[u8; 32], now: i64) -> Option<Identity> {
        let generation = self.generation.load(Ordering::SeqCst);
        let map = self.remembered.read().ok()?;
        map.get(token_hash)
            .filter(|r| r.generation == generation && now <= r.valid_until)
            .map(|r| r.identity.clone())
    }

    /// Remembers an assertion verified with the keys of `generation` until
    /// `valid_until` (unix seconds). When full, expired entries go first,
    /// then everything: a bounded cache that costs a few signature checks
    /// after a flood, never memory.
    pub fn remember(
        &self,
        token_hash: [u8; 32],
        identity: &Identity,
        valid_until: i64,
        now: i64,
        generation: u64,
    ) {
        let Ok(mut map) = self.remembered.write() else {
            return;
        };
        if map.len() >= MAX_REMEMBERED {
            let current = self.generation.load(Ordering::SeqCst);
            map.retain(|_, r| r.generation == current && now <= r.valid_until);
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
        }
        map.insert(
            token_hash,
            Remembered {
                identity: identity.clone(),
                valid_until,
                generation,
            },
        );
    }

    async fn load(&self) -> Result<usize, String> {
        let bytes = match &self.settings.jwks {
            JwksLocation::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            JwksLocation::Url(url) => tokio::time::timeout(FETCH_TIMEOUT, fetch(url, &self.tls))
                .await
                .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))??,
        };
        let jwks = Jwks::parse(&bytes).map_err(|e| format!("the JWK Set is refused: {e}"))?;
        // Otherwise a skipped key only shows as assertions refused for an
        // unknown key.
        for k in jwks.skipped() {
            tracing::info!(kid = %k.kid.as_deref().unwrap_or("-"), reason = k.reason, "a key of the JWK Set is not used");
        }
        if jwks.is_empty() {
            return Err("the JWK Set has no usable signing key".into());
        }
        let n = jwks.len();
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::new(jwks));
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if let Ok(mut remembered) = self.remembered.write() {
            remembered.clear();
        }
        Ok(n)
    }

    /// Loads the keys every `jwks_refresh` until the key set is dropped
    /// (the caller does the first load). A failed load is retried sooner,
    /// with backoff.
    pub fn refresh_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        let first_retry = Duration::from_secs(1);
        let mut wait = if self.current().is_some() {
            self.settings.refresh
        } else {
            first_retry
        };
        tokio::spawn(async move {
            let mut retry = first_retry;
            loop {
                tokio::time::sleep(wait).await;
                let Some(keys) = me.upgrade() else { return };
                wait = match keys.refresh().await {
                    Ok(n) => {
                        tracing::debug!(keys = n, "signing keys loaded");
                        retry = first_retry;
                        keys.settings.refresh
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?retry, "could not load the signing keys");
                        let this = retry;
                        retry = (retry * 2).min(keys.settings.refresh);
                        this
                    }
                };
            }
        })
    }
}

/// One GET, HTTP/1.1, over TLS unless the URL is plain HTTP (allowed by
/// the configuration check for loopback only).
async fn fetch(url: &http::Uri, tls: &tokio_rustls::TlsConnector) -> Result<Vec<u8>, String> {
    let request = http::Request::get(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .header(http::header::USER_AGENT, "vestibule")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = request_once(url, tls, request).await?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// Sends `request` (its `Host` set here from `url`) on a new HTTP/1.1
/// connection to `url`'s host, over TLS (`tls`, the system's roots or a
/// configured CA) unless the URL is plain HTTP, which the configuration
/// checks allow on loopback only. No redirect is followed, nothing is
/// pooled: the JWKS fetch and the back-channel logout POST both use it.
pub(crate) async fn request_once<B>(
    url: &http::Uri,
    tls: &tokio_rustls::TlsConnector,
    mut request: http::Request<B>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let host = url.host().ok_or("no host")?;
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let authority = url.authority().map_or(host, |a| a.as_str()).to_owned();
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
    );
    if https {
        let name = rustls_pki_types::ServerName::try_from(bare.to_owned())
            .map_err(|e| format!("{url}: {e}"))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{url}: TLS: {e}"))?;
        send(hyper_util::rt::TokioIo::new(stream), request).await
    } else {
        send(hyper_util::rt::TokioIo::new(tcp), request).await
    }
}

/// One request with a small body, its answer read whole up to `limit`
/// bytes: the OIDC login's client (discovery, keys, the token endpoint),
/// over [`request_once`], so one small client and no second TLS stack.
pub(crate) async fn request(
    url: &http::Uri,
    tls: &tokio_rustls::TlsConnector,
    method: http::Method,
    headers: &[(http::HeaderName, &str)],
    body: Bytes,
    limit: usize,
) -> Result<(http::StatusCode, Vec<u8>), String> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::USER_AGENT, "vestibule");
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = request_once(url, tls, request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok((status, body.to_bytes().to_vec()))
}

async fn send<T, B>(
    io: T,
    request: http::Request<B>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}
