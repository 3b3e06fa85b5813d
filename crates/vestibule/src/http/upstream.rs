//! Connections to the apps: HTTP/1.1 over TCP through hyper's
//! `client::conn::http1`, with a pool of ready senders per upstream
//! authority.
//!
//! Why not hyper-util's pooled client: it hands every request to the
//! connection's task through a channel after boxing it, formats and parses
//! an absolute URI, and checks its pool out through futures of its own.
//! Here a request is written by the connection task directly from the
//! `SendRequest` the handler holds; the only task per connection is hyper's
//! connection driver, and none is spawned per request.
//!
//! A sender goes back to the pool when its response body has been read to
//! the end (then the connection is idle again); a response dropped half
//! read, or a protocol switch, takes its connection with it.
//!
//! The pool has a shard per proxy worker ([`crate::http::workers`]), and
//! one for every other thread: a connection opened by a worker has its
//! driver task on that worker's runtime, and only that worker's requests
//! use it, so a request and its upstream connection never wake each other
//! across threads.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::uri::Authority;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The HTTP/1.1 port when an upstream's authority names none (RFC 9110 §4.2.1).
const HTTP_DEFAULT_PORT: u16 = 80;

/// A pool of idle upstream connections, keyed by authority, one shard
/// per proxy worker.
pub struct UpstreamPool {
    /// Shard 0 for threads that are not workers, `1 + i` for worker `i`.
    shards: Box<[Mutex<Shard>]>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Whether the sweeper that closes connections idle for longer than
    /// `idle_timeout` runs (started with the first connection, as the pool
    /// may be made outside a runtime).
    sweeping: AtomicBool,
}

/// One worker's idle connections, by authority.
type Shard = HashMap<Authority, VecDeque<Idle>>;

/// A connection whose last response has been read to the end.
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why no response came from the upstream.
#[derive(Debug)]
pub enum UpstreamError {
    /// The TCP connection could not be made (refused, unreachable, name
    /// not resolved).
    Connect(std::io::Error),
    /// The TCP connection took longer than `connect_timeout`.
    ConnectTimeout,
    /// HTTP/1.1 failed: the handshake, writing the request (its body
    /// included) or reading the response head.
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(_) => f.write_str("could not connect to the upstream"),
            Self::ConnectTimeout => f.write_str("connecting to the upstream timed out"),
            Self::Http(_) => f.write_str("the upstream exchange failed"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::ConnectTimeout => None,
            Self::Http(e) => Some(e),
        }
    }
}

impl UpstreamPool {
    /// An empty pool for `workers` proxy workers. Connections take at
    /// most `connect_timeout` to open and are dropped after `idle_timeout`
    /// unused.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration, workers: usize) -> Arc<Self> {
        Arc::new(Self {
            shards: (0..=workers).map(|_| Mutex::default()).collect(),
            connect_timeout,
            idle_timeout,
            sweeping: AtomicBool::new(false),
        })
    }

    /// Closes, every half `idle_timeout`, the connections idle for longer
    /// than it, until the pool is dropped.
    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Self> = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = pool.upgrade() else { return };
                for shard in &pool.shards {
                    let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
                    map.retain(|_, queue| {
                        queue.retain(|i| {
                            i.since.elapsed() <= pool.idle_timeout && !i.sender.is_closed()
                        });
                        !queue.is_empty()
                    });
                }
            }
        });
    }

    /// Sends `req` (its URI in origin form, its `Host` set) to `authority`
    /// on an idle connection, or a new one. A request that an idle
    /// connection could not take (the app closed it meanwhile) is sent
    /// again on a new connection: it was never written, so this is safe
    /// whatever the method.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        req: http::Request<Body>,
    ) -> Result<http::Response<PooledBody>, UpstreamError> {
        let shard = self.shard();
        let req = match self.checkout(shard, authority).await {
            Some(mut sender) => match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(shard, authority, sender, resp)),
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(UpstreamError::Http(e.into_error())),
                },
            },
            None => req,
        };
        let mut sender = self.connect(authority).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Http)?;
        Ok(self.wrap(shard, authority, sender, resp))
    }

    /// The calling thread's shard.
    fn shard(&self) -> usize {
        crate::http::workers::current().map_or(0, |w| (w + 1) % self.shards.len())
    }

    fn wrap(
        self: &Arc<Self>,
        shard: usize,
        authority: &Authority,
        sender: SendRequest<Body>,
        resp: http::Response<Incoming>,
    ) -> http::Response<PooledBody> {
        // A protocol switch ends HTTP on this connection: never pooled.
        let reusable = resp.status() != http::StatusCode::SWITCHING_PROTOCOLS;
        let owner = Owner {
            pool: Arc::clone(self),
            shard,
            authority: authority.clone(),
            sender,
            reusable,
        };
        resp.map(|inner| {
            let mut body = PooledBody {
                inner,
                owner: Some(owner),
            };
            body.release_if_done();
            body
        })
    }

    /// The most recently used idle connection to `authority` that is still
    /// open and ready, if any.
    async fn checkout(&self, shard: usize, authority: &Authority) -> Option<SendRequest<Body>> {
        loop {
            let idle = {
                let mut map = self.shards[shard]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                map.get_mut(authority)?.pop_back()?
            };
            if idle.since.elapsed() > self.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            // Ready at once unless the connection's task has not yet seen
            // the end of the last response; an error means it closed.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn release(&self, shard: usize, authority: Authority, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let queue = map.entry(authority).or_default();
        // Oldest first: drop the ones idle too long.
        while queue
            .front()
            .is_some_and(|i| i.since.elapsed() > self.idle_timeout)
        {
            queue.pop_front();
        }
        queue.push_back(Idle {
            sender,
            since: Instant::now(),
        });
    }

    async fn connect(
        self: &Arc<Self>,
        authority: &Authority,
    ) -> Result<SendRequest<Body>, UpstreamError> {
        // `[::1]` in an authority is `::1` to the resolver.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(HTTP_DEFAULT_PORT);
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        // Requests and answers are small and latency-bound.
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        self.start_sweeper();
        tokio::spawn(async move {
            // WebSocket: the connection is handed over, not closed.
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// A response body from the upstream; when read to the end, its connection
/// goes back to the pool.
pub struct PooledBody {
    inner: Incoming,
    owner: Option<Owner>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("connection_held", &self.owner.is_some())
            .finish_non_exhaustive()
    }
}

struct Owner {
    pool: Arc<UpstreamPool>,
    /// The shard of the worker that opened the connection, where it goes
    /// back whichever thread reads the body's end.
    shard: usize,
    authority: Authority,
    sender: SendRequest<Body>,
    reusable: bool,
}

impl PooledBody {
    /// Returns the connection once the body is complete. Checked after every
    /// frame, as a server stops polling a body that says it has ended.
    fn release_if_done(&mut self) {
        if http_body::Body::is_end_stream(&self.inner) {
            self.release();
        }
    }

    fn release(&mut self) {
        if let Some(owner) = self.owner.take()
            && owner.reusable
        {
            owner
                .pool
                .release(owner.shard, owner.authority, owner.sender);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) => this.release_if_done(),
            // A failed body leaves the connection in an unknown state.
            Poll::Ready(Some(Err(_))) => this.owner = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;

    /// An HTTP/1.1 app that counts its connections; `/close` answers with
    /// `Connection: close`.
    async fn app() -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                            let mut resp = http::Response::new(http_body_util::Full::new(
                                Bytes::from_static(b"ok"),
                            ));
                            if req.uri().path() == "/close" {
                                resp.headers_mut().insert(
                                    http::header::CONNECTION,
                                    http::HeaderValue::from_static("close"),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (authority, accepted)
    }

    fn get(authority: &Authority, path: &str) -> http::Request<Body> {
        http::Request::builder()
            .uri(path)
            .header(http::header::HOST, authority.as_str())
            .body(Body::empty())
            .unwrap()
    }

    async fn read(resp: http::Response<PooledBody>) -> Bytes {
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_used_again() {
        let (authority, accepted) = app().await;
        let pool = UpstreamPool::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        for _ in 0..3 {
            let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
            assert_eq!(read(resp).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_response_dropped_half_read_takes_its_connection_along() {
        let (authority, accepted) = app().await;
        let pool = UpstreamPool::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let unread = pool.send(&authority, get(&authority, "/")).await.unwrap();
        // In use: a second request needs a connection of its own.
        let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        drop(unread);
        let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_app_closed_is_replaced() {
        let (authority, accepted) = app().await;
        let pool = UpstreamPool::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let resp = pool
            .send(&authority, get(&authority, "/close"))
            .await
            .unwrap();
        assert_eq!(read(resp).await, "ok");
        let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_not_used() {
        let (authority, accepted) = app().await;
        let pool = UpstreamPool::new(Duration::from_secs(1), Duration::from_millis(50), 1);
        let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        tokio::time::sleep(Duration::from_millis(120)).await;
        let resp = pool.send(&authority, get(&authority, "/")).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let pool = UpstreamPool::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let err = pool
            .send(&authority, get(&authority, "/"))
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");
    }
}
