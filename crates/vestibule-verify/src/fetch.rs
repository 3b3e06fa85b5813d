//! The gateway's JWK Set over HTTP(S), cached: fetched on first use,
//! again after [`MAX_AGE`], and at once (at most every `min_refetch`,
//! by default [`MIN_REFETCH`])
//! when a token names an unknown `kid` — which is how a rotation reaches
//! the app: the gateway publishes a new key before it signs with it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;
use crate::jwk::Jwks;

/// The shortest time between two fetches, whatever asks for them, unless
/// the verifier says otherwise.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(10);
/// A key set older than this is fetched again before it is used; if that
/// fails, nothing verifies (a key the gateway withdrew stops working).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(300);
/// Connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A larger JWK Set is refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// rustls with aws-lc-rs and Mozilla's roots.
pub(crate) fn default_tls() -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::KeysUnavailable)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) struct RemoteJwks {
    url: http::Uri,
    https: bool,
    tls: tokio_rustls::TlsConnector,
    current: RwLock<Option<(Arc<Jwks>, Instant)>>,
    /// Held during a fetch (single flight); holds the last attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    pub(crate) fn new(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let url: http::Uri = url.parse().map_err(|_| Error::KeysUnavailable)?;
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(Error::KeysUnavailable),
        };
        if url.host().is_none() {
            return Err(Error::KeysUnavailable);
        }
        Ok(Self {
            url,
            https,
            tls: tokio_rustls::TlsConnector::from(tls),
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// The current set if it is fresh and holds `kid`.
    fn cached(&self, kid: Option<&str>) -> Option<Arc<Jwks>> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        let (keys, at) = guard.as_ref()?;
        (at.elapsed() < MAX_AGE && kid.is_none_or(|k| keys.contains(k))).then(|| keys.clone())
    }

    /// A key set to verify a token naming `kid` with: the cached one, or
    /// a fresh one when the cache is stale or lacks `kid` and the rate
    /// limit allows a fetch. The set returned may still lack `kid` (then
    /// the token names a key the gateway does not publish).
    pub(crate) async fn keys_for(
        &self,
        kid: &str,
        min_refetch: Duration,
    ) -> Result<Arc<Jwks>, Error> {
        if let Some(keys) = self.cached(Some(kid)) {
            return Ok(keys);
        }
        let mut last_attempt = self.fetching.lock().await;
        // Another task may have fetched while this one waited.
        if let Some(keys) = self.cached(Some(kid)) {
            return Ok(keys);
        }
        if last_attempt.is_some_and(|t| t.elapsed() < min_refetch) {
            return self.cached(None).ok_or(Error::KeysUnavailable);
        }
        *last_attempt = Some(Instant::now());
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get())
            .await
            .map_err(|_| Error::KeysUnavailable)??;
        let keys = Arc::new(Jwks::parse(&body)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// One GET over HTTP/1.1; anything but `200` with a body under
    /// [`MAX_JWKS_BYTES`] is a failure. The same shape as the binary's
    /// `identity/jwks.rs` fetch, on purpose: this crate is published on
    /// its own and can depend on no vestibule crate.
    async fn get(&self) -> Result<Bytes, Error> {
        let unavailable = |_| Error::KeysUnavailable;
        let host = self.url.host().ok_or(Error::KeysUnavailable)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = self
            .url
            .port_u16()
            .unwrap_or(if self.https { 443 } else { 80 });
        let authority = self.url.authority().map_or(host, |a| a.as_str());
        let request = http::Request::get(self.url.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, authority)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .header(http::header::USER_AGENT, "vestibule-verify")
            .body(Empty::<Bytes>::new())
            .map_err(|_| Error::KeysUnavailable)?;
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(unavailable)?;
        let response = if self.https {
            let name = rustls_pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|_| Error::KeysUnavailable)?;
            let tls = self.tls.connect(name, tcp).await.map_err(unavailable)?;
            send(TokioIo::new(tls), request).await?
        } else {
            send(TokioIo::new(tcp), request).await?
        };
        if response.status() != http::StatusCode::OK {
            return Err(Error::KeysUnavailable);
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|_| Error::KeysUnavailable)?;
        Ok(body.to_bytes())
    }
}

async fn send<T>(
    io: T,
    request: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| Error::KeysUnavailable)?;
    // The connection task ends with the response body (or the timeout
    // dropping the future that owns `sender`).
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .map_err(|_| Error::KeysUnavailable)
}
