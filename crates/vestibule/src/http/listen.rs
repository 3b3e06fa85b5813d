//! Step 1 of a request: accept the connection and record who the peer is.
//!
//! The peer address recorded here ([`ConnInfo`]) is the only input to every
//! trust decision later on. It comes from the socket, normalised
//! (IPv4-mapped IPv6 → IPv4), or from the operator's word for a Unix socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use vestibule_core::client_cert::CertFingerprint;
use vestibule_core::net::Peer;

use crate::identity::client_identity::ConnInfo;

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent HTTP/2 streams per connection.
const MAX_H2_STREAMS: u32 = 256;

/// Per-listener protocol limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request head (slowloris guard).
    pub header_read_timeout: Duration,
    /// Header lines per request.
    pub max_request_headers: usize,
    /// Bytes per request head.
    pub max_header_bytes: usize,
    /// Connections served at once over all listeners sharing it.
    pub connections: Arc<tokio::sync::Semaphore>,
}

/// A bound listener, before it serves.
pub enum Bound {
    /// TCP, optionally with TLS.
    Tcp(TcpListener, Option<TlsSetup>),
    /// A Unix socket and whether its peers are trusted.
    Unix(UnixListener, bool, PathBuf),
}

impl Bound {
    /// A URL for the log and for tests.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l, tls) => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                match l.local_addr() {
                    Ok(a) => format!("{scheme}://{a}"),
                    Err(_) => format!("{scheme}://?"),
                }
            }
            Self::Unix(_, trusted, path) => format!(
                "unix:{}{}",
                path.display(),
                if *trusted { " (trusted)" } else { "" }
            ),
        }
    }

    /// The TCP address, if any.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l, _) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }
}

/// Loads a rustls acceptor (aws-lc-rs, TLS 1.2 and 1.3, ALPN h2 and http/1.1).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    Ok(TlsAcceptor::from(Arc::new(server_config(cert, key, None)?)))
}

/// A rustls server configuration (aws-lc-rs, TLS 1.2 and 1.3, ALPN h2 and
/// http/1.1), asking for a client certificate when `client_auth` is given.
fn server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_auth: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_auth {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("bad certificate or key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS listener's configurations: the plain one, and the one asking for
/// a client certificate, chosen per connection by the SNI before the
/// handshake (`LazyConfigAcceptor`).
#[derive(Clone)]
pub struct TlsSetup {
    plain: Arc<rustls::ServerConfig>,
    client_certs: Option<Arc<rustls::ServerConfig>>,
    cert_hosts: Arc<[String]>,
}

impl TlsSetup {
    /// Loads the server certificate; with `cert_hosts` non-empty, a client
    /// certificate is requested on those hostnames (lowercase) with
    /// `verifier` ([`crate::certs::tls::AnyClientCert`]).
    pub fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
        cert_hosts: Vec<String>,
        verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Result<Self, String> {
        let plain = Arc::new(server_config(cert, key, None)?);
        let client_certs = match verifier {
            Some(v) if !cert_hosts.is_empty() => Some(Arc::new(server_config(cert, key, Some(v))?)),
            _ => None,
        };
        Ok(Self {
            plain,
            client_certs,
            cert_hosts: cert_hosts.into(),
        })
    }

    /// The index of the certificate hostname `sni` names, if any.
    fn cert_host(&self, sni: Option<&str>) -> Option<u16> {
        let sni = sni?;
        self.client_certs.as_ref()?;
        self.cert_hosts
            .iter()
            .position(|h| h.eq_ignore_ascii_case(sni))
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Runs the handshake with the configuration the SNI picks; returns the
    /// stream and the connection's facts about client certificates.
    async fn accept(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        Option<u16>,
        Option<CertFingerprint>,
    )> {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let cert_host = self.cert_host(start.client_hello().server_name());
        let config = match (cert_host, &self.client_certs) {
            (Some(_), Some(c)) => c.clone(),
            _ => self.plain.clone(),
        };
        let tls = start.into_stream(config).await?;
        // Also set on a resumed session (restored without the verifier):
        // the per-request lookup decides either way.
        let fingerprint = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|leaf| CertFingerprint::of_der(leaf));
        Ok((tls, cert_host, fingerprint))
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_request_headers)
        .max_buf_size(limits.max_header_bytes);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Where a request goes once its head is checked: the proxy pipeline
/// directly ([`crate::http::forward::proxy`]), or, for vestibule's own
/// paths, the axum router.
///
/// axum's routing (a path match, a boxed handler, extractors) costs every
/// proxied request CPU for nothing: the apps' requests are all its
/// fallback. So the main listeners send a request to the router only when
/// it could be one of vestibule's: under any reading or letter case of
/// the reserved prefix (the rule the pipeline itself refuses by,
/// [`vestibule_core::path::reaches_reserved_prefix`]; a path it cannot
/// read goes there too, and is refused the same way), the verify path,
/// and the provider's metadata documents on the issuer's host. Everything
/// the router does not serve still ends in the same pipeline, as its
/// fallback.
#[derive(Clone)]
pub struct Dispatch {
    router: Router,
    /// With the gateway's state, every other request goes straight to
    /// the pipeline; without (the admin listener), all to the router.
    proxy: Option<Arc<crate::state::AppState>>,
}

impl Dispatch {
    /// Every request to `router` (the admin listener).
    pub fn router_only(router: Router) -> Self {
        Self {
            router,
            proxy: None,
        }
    }

    /// The main listeners: `router` ([`crate::app::app`]) for vestibule's
    /// own paths, the pipeline for the rest.
    pub fn main(router: Router, state: Arc<crate::state::AppState>) -> Self {
        Self {
            router,
            proxy: Some(state),
        }
    }

    /// The state to proxy `req` with, or `None` when the router takes it.
    fn proxies<B>(&self, req: &http::Request<B>) -> Option<&Arc<crate::state::AppState>> {
        let state = self.proxy.as_ref()?;
        let path = req.uri().path();
        if !matches!(
            vestibule_core::path::reaches_reserved_prefix(path, crate::app::OWN_PREFIX),
            Ok(false)
        ) || path == state.settings.verify_path
        {
            return None;
        }
        if let Some(p) = &state.provider
            && (path == p.discovery.openid_path || path == p.discovery.oauth_path)
        {
            return None;
        }
        Some(state)
    }
}

/// Serves `bound` until `shutdown` turns true, then drains open connections.
pub async fn serve(
    bound: Bound,
    router: Dispatch,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = http_builder(&limits);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = accept(&bound) => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A connection slot, taken once a connection is there: at the cap
        // this one waits, and no further one is accepted (those clients
        // wait in the kernel's backlog). Not before accepting: with
        // several workers, a worker waiting on an empty socket would hold
        // a slot that a client queued at another worker needs.
        let permit = match limits.connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                _ = shutdown.changed() => break,
                p = limits.connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            },
        };
        match accepted {
            Accepted::Tcp(stream, addr) => {
                let peer = Peer::tcp(addr.ip());
                match &bound {
                    Bound::Tcp(_, Some(tls)) => {
                        let tls = tls.clone();
                        let cert_hosts = tls.cert_hosts.clone();
                        let router = router.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        let max_line = limits.max_header_bytes;
                        tokio::spawn(async move {
                            let _permit = permit;
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream))
                                .await
                            {
                                Ok(Ok((stream, cert_host, client_cert))) => {
                                    let conn = ConnInfo {
                                        peer,
                                        tls: true,
                                        cert_host,
                                        client_cert,
                                    };
                                    let (stream, framing) =
                                        crate::http::framing::track_stream(stream, max_line);
                                    let c = builder
                                        .serve_connection_with_upgrades(
                                            TokioIo::new(stream),
                                            Tagged {
                                                router,
                                                conn,
                                                cert_hosts,
                                                framing,
                                            },
                                        )
                                        .into_owned();
                                    if let Err(e) = watcher.watch(c).await {
                                        tracing::debug!(error = %e, "connection ended with an error");
                                    }
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                    _ => spawn_conn(
                        &builder,
                        &graceful,
                        stream,
                        router.clone(),
                        ConnInfo::plain(peer),
                        permit,
                        limits.max_header_bytes,
                    ),
                }
            }
            Accepted::Unix(stream, trusted) => {
                spawn_conn(
                    &builder,
                    &graceful,
                    stream,
                    router.clone(),
                    ConnInfo::plain(Peer::Unix { trusted }),
                    permit,
                    limits.max_header_bytes,
                );
            }
        }
    }
    if let Bound::Unix(_, _, path) = &bound {
        let _ = std::fs::remove_file(path);
    }
    drop(bound);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the drain timeout");
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream, bool),
}

async fn accept(bound: &Bound) -> std::io::Result<Accepted> {
    match bound {
        Bound::Tcp(l, _) => {
            let (s, a) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Accepted::Tcp(s, a))
        }
        Bound::Unix(l, trusted, _) => {
            let (s, _) = l.accept().await?;
            Ok(Accepted::Unix(s, *trusted))
        }
    }
}

/// The dispatch, with the connection's facts put into every request.
#[derive(Clone)]
struct Tagged {
    router: Dispatch,
    conn: ConnInfo,
    /// The TLS listener's certificate hostnames (empty elsewhere).
    cert_hosts: Arc<[String]>,
    /// What the connection's byte stream showed about request framing.
    framing: Arc<crate::http::framing::StreamWatch>,
}

impl hyper::service::Service<http::Request<Incoming>> for Tagged {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        futures_util::future::Either<
            axum::routing::future::RouteFuture<std::convert::Infallible>,
            ProxyFuture,
        >,
        std::future::Ready<Result<axum::response::Response, std::convert::Infallible>>,
    >;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        // Host, target form and body framing, before anything else: first
        // what only the bytes showed (`Content-Length` with
        // `Transfer-Encoding`), then the head.
        if let Some(resp) = self
            .framing
            .check(&req)
            .or_else(|| crate::http::framing::check_head(&req))
        {
            return futures_util::future::Either::Right(std::future::ready(Ok(resp)));
        }
        if let Some(resp) = misdirected(&req, self.conn, &self.cert_hosts) {
            return futures_util::future::Either::Right(std::future::ready(Ok(resp)));
        }
        req.extensions_mut().insert(self.conn);
        use futures_util::future::Either;
        if let Some(state) = self.router.proxies(&req) {
            let state = state.clone();
            let req = req.map(axum::body::Body::new);
            return Either::Left(Either::Right(Box::pin(async move {
                Ok(crate::http::forward::proxy(axum::extract::State(state), req).await)
            })));
        }
        // Router is always ready; cloning it clones an Arc.
        Either::Left(Either::Left(tower::Service::call(
            &mut self.router.router.clone(),
            req,
        )))
    }
}

/// A proxied request's response, as the pipeline answers it.
type ProxyFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>>
            + Send,
    >,
>;

fn service(
    router: Dispatch,
    conn: ConnInfo,
    framing: Arc<crate::http::framing::StreamWatch>,
) -> Tagged {
    Tagged {
        router,
        conn,
        cert_hosts: Arc::from(Vec::new()),
        framing,
    }
}

/// 421 Misdirected Request (RFC 9110 §15.5.20) for a request a browser
/// coalesced onto a TLS connection made for another name (RFC 9113
/// §9.1.1): a request for a certificate hostname on a connection that did
/// not ask for a certificate, or for another hostname on one that did. The
/// client retries on a new connection, with the right SNI.
fn misdirected(
    req: &http::Request<Incoming>,
    conn: ConnInfo,
    cert_hosts: &[String],
) -> Option<axum::response::Response> {
    if !conn.tls || cert_hosts.is_empty() {
        return None;
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            Some(
                h.parse::<http::uri::Authority>()
                    .map(|a| a.host().to_owned())
                    .unwrap_or_else(|_| h.to_owned()),
            )
        })?;
    let host = host.trim_end_matches('.');
    let wanted = cert_hosts.iter().position(|h| h.eq_ignore_ascii_case(host));
    let on = conn.cert_host.map(usize::from);
    if wanted == on {
        return None;
    }
    Some(crate::http::responses::plain(
        http::StatusCode::MISDIRECTED_REQUEST,
        "Misdirected request: this connection was made for another host name; retry on a new connection.",
    ))
}

fn spawn_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    io: I,
    router: Dispatch,
    conn: ConnInfo,
    permit: tokio::sync::OwnedSemaphorePermit,
    max_line: usize,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, framing) = crate::http::framing::track_stream(io, max_line);
    let c = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service(router, conn, framing))
        .into_owned();
    let fut = graceful.watch(c);
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = fut.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}
