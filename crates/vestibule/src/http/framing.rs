//! The first check on every request, before routing: one target host, a
//! request-target form vestibule can route, and one unambiguous body
//! framing. A request failing it gets 400 and the connection is closed
//! (`Connection: close`): after a framing error, where the next request
//! starts is a guess, and guessing is what request smuggling exploits.
//!
//! hyper already refuses, with 400 and a closed connection, what it cannot
//! parse: a malformed request line or field line, obsolete line folding
//! (RFC 9112 §5.2), a `Content-Length` that is not a number or two that
//! differ, `Transfer-Encoding` in HTTP/1.0 or not ending in `chunked`.
//! What it accepts and would resolve silently is refused here, using the
//! rules in [`vestibule_core::framing`]. hyper itself drops `Content-Length`
//! when `Transfer-Encoding` is present (and closes the connection after
//! the response), so that case cannot be seen in the head: [`TrackedIo`]
//! finds it in the connection's bytes and [`StreamWatch::check`] refuses
//! it first. hyper also folds repeated identical `Content-Length` lines
//! into one; that case never reaches this check as such (see SECURITY.md).

use axum::response::Response;
use http::{HeaderValue, Method, Request, StatusCode, Version, header};

use crate::http::responses;

/// Why a request's head is refused, as told to the client.
fn refusal(message: &str) -> Response {
    let mut resp = responses::plain(StatusCode::BAD_REQUEST, &format!("Bad request: {message}."));
    // hyper closes the connection after a response carrying this.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// 400 with `Connection: close`, for a request body that turned out
/// malformed while it was streamed (a bad chunk size, extension or line
/// ending): the request is not forwarded further, whatever the upstream
/// said.
pub fn bad_body() -> Response {
    refusal("the request body's chunked framing is malformed")
}

/// The 400 answer for a request whose head vestibule cannot vouch for, or
/// `None` when it may go on to routing.
pub fn check_head<B>(req: &Request<B>) -> Option<Response> {
    let refused = |e: &dyn std::fmt::Display| {
        tracing::debug!(error = %e, "request refused before routing");
        Some(refusal(&e.to_string()))
    };
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    // Routing, policy and the app must all see one target host; hyper
    // leaves RFC 9112 §3.2 to the server.
    if let Err(e) = vestibule_core::headers::check_host(
        req.version() == Version::HTTP_11,
        req.uri().authority().map(|a| a.as_str()),
        req.headers()
            .get_all(header::HOST)
            .iter()
            .map(HeaderValue::as_bytes),
    ) {
        return refused(&e);
    }
    if let Some(host) = req.headers().get(header::HOST)
        && !vestibule_core::framing::host_value_ok(host.as_bytes())
    {
        return refused(&"the Host header is not a host name with an optional port");
    }
    if let Err(e) = vestibule_core::framing::check_target_form(
        req.method() == Method::CONNECT,
        req.method() == Method::OPTIONS,
        req.uri().scheme_str(),
        req.uri().authority().is_some(),
        req.uri().path(),
    ) {
        return refused(&e);
    }
    if let Some(name) = req
        .headers()
        .keys()
        .find(|n| vestibule_core::framing::is_framing_lookalike(n.as_str().as_bytes()))
    {
        return refused(&format!(
            "the field `{name}` reads as a framing field where `_` is `-`"
        ));
    }
    if http1 {
        let lines = |name| {
            req.headers()
                .get_all(name)
                .into_iter()
                .map(HeaderValue::as_bytes)
        };
        if let Err(e) = vestibule_core::framing::request_body_framing(
            req.version() == Version::HTTP_11,
            lines(header::CONTENT_LENGTH),
            lines(header::TRANSFER_ENCODING),
        ) {
            return refused(&e);
        }
    }
    None
}

/// A request body that remembers whether reading it from the client
/// failed (a malformed chunk, or the client gone), so that a failed
/// upstream request can be told apart from a failed upstream: the first
/// is the client's fault and gets [`bad_body`], not 502.
pub struct WatchedBody {
    inner: axum::body::Body,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Whether the client's body failed; shared with a [`WatchedBody`].
#[derive(Clone, Default)]
pub struct BodyFailed(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BodyFailed {
    /// True once the client's body stream returned an error.
    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Wraps the client's request body; the flag turns true on its first error.
pub fn watch_body(inner: axum::body::Body) -> (axum::body::Body, BodyFailed) {
    let flag = BodyFailed::default();
    let watched = WatchedBody {
        inner,
        failed: flag.0.clone(),
    };
    (axum::body::Body::new(watched), flag)
}

impl http_body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(_))) = &polled {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection's [`TrackedIo`] learned, shared with the service that
/// answers the connection's requests: the index of the first request head
/// carrying both `Content-Length` and `Transfer-Encoding`, and how many
/// HTTP/1 requests the service has been called for.
///
/// hyper reads such a request as chunked, closes the connection after it,
/// and drops `Content-Length` before the service sees the request (RFC
/// 9112 §6.1 allows that, or rejecting): the head alone cannot show it.
/// The bytes can; [`vestibule_core::framing::stream::Tracker`] follows
/// them as hyper frames them, and the service refuses the request with
/// the same index.
#[derive(Debug)]
pub struct StreamWatch {
    /// `u64::MAX` until a head is found.
    first_ambiguous: std::sync::atomic::AtomicU64,
    /// HTTP/1 requests seen by the service: the index of the next one.
    served: std::sync::atomic::AtomicU64,
}

impl StreamWatch {
    fn new() -> Self {
        Self {
            first_ambiguous: std::sync::atomic::AtomicU64::new(u64::MAX),
            served: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The 400 answer for `req` when it is the head the connection's
    /// tracker found with both framing fields; counts `req` either way.
    ///
    /// hyper calls the service for an HTTP/1 connection's requests one
    /// after another, in the order of their heads, and the tracker has
    /// seen a head's bytes before hyper parses it, so the count is the
    /// head's index and the flag is already set when its turn comes.
    pub fn check<B>(&self, req: &Request<B>) -> Option<Response> {
        use std::sync::atomic::Ordering;
        if !matches!(req.version(), Version::HTTP_10 | Version::HTTP_11) {
            return None;
        }
        let index = self.served.fetch_add(1, Ordering::Relaxed);
        if index != self.first_ambiguous.load(Ordering::Acquire) {
            return None;
        }
        let e = vestibule_core::framing::FramingError::LengthAndTransferEncoding;
        tracing::debug!(error = %e, "request refused before routing");
        Some(refusal(&e.to_string()))
    }
}

/// A server connection's byte stream, every byte read also fed to a
/// [`vestibule_core::framing::stream::Tracker`]; writes pass through.
/// The tracker is dropped once it has found a head or stopped following
/// the stream (HTTP/2, an upgrade, bytes hyper refuses), so a tunnel or
/// an HTTP/2 connection pays one branch per read after its first head.
pub struct TrackedIo<I> {
    inner: I,
    tracker: Option<vestibule_core::framing::stream::Tracker>,
    watch: std::sync::Arc<StreamWatch>,
}

/// Wraps a freshly accepted connection; `max_line` is the listener's
/// `max_header_bytes` (hyper refuses a longer head anyway).
pub fn track_stream<I>(inner: I, max_line: usize) -> (TrackedIo<I>, std::sync::Arc<StreamWatch>) {
    let watch = std::sync::Arc::new(StreamWatch::new());
    let io = TrackedIo {
        inner,
        tracker: Some(vestibule_core::framing::stream::Tracker::new(max_line)),
        watch: watch.clone(),
    };
    (io, watch)
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (std::task::Poll::Ready(Ok(())), Some(tracker)) = (&polled, &mut this.tracker) {
            if let Some(index) = tracker.feed(&buf.filled()[before..]) {
                this.watch
                    .first_ambiguous
                    .store(index, std::sync::atomic::Ordering::Release);
                this.tracker = None;
            } else if !tracker.tracking() {
                this.tracker = None;
            }
        }
        polled
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for TrackedIo<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
