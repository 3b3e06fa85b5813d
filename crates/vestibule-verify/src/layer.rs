//! [`AssertionLayer`]: requests without a valid assertion never reach the
//! app.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::{DEFAULT_HEADER, Verifier};

/// The body of every refusal: short, and the same whatever went wrong, so
/// a client learns nothing about why (the reason is in
/// [`Error`](crate::Error), for the app's own log if it wants one).
const REFUSAL_BODY: &str = "invalid assertion\n";

/// A tower layer that verifies the assertion header of every request.
///
/// A request with exactly one valid assertion goes on with the
/// [`Identity`](crate::Identity) in its extensions (axum:
/// `Extension<Identity>`); any other (none, two, or one that does not
/// verify) is answered `401 Unauthorized` with the body
/// `invalid assertion`.
#[derive(Debug, Clone)]
pub struct AssertionLayer {
    verifier: Verifier,
    header: HeaderName,
}

impl AssertionLayer {
    /// Verifies `X-Vestibule-Assertion` with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            header: HeaderName::from_static(DEFAULT_HEADER),
        }
    }

    /// Reads the assertion from `header` instead (the gateway's
    /// `[assertions] header`). Header names compare case-insensitively.
    #[must_use]
    pub fn with_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<S> Layer<S> for AssertionLayer {
    type Service = AssertionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AssertionService {
            inner,
            verifier: self.verifier.clone(),
            header: self.header.clone(),
        }
    }
}

/// The service [`AssertionLayer`] makes.
#[derive(Debug, Clone)]
pub struct AssertionService<S> {
    inner: S,
    verifier: Verifier,
    header: HeaderName,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AssertionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready serves this request; the
        // clone waits for the next one (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        // Exactly one value: two assertions are ambiguous, refused.
        let mut values = request.headers().get_all(&self.header).iter();
        let token = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok().map(str::to_owned),
            _ => None,
        };
        Box::pin(async move {
            let Some(token) = token else {
                return Ok(refusal());
            };
            match verifier.verify(&token).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(_) => Ok(refusal()),
            }
        })
    }
}

fn refusal<B: From<&'static str>>() -> Response<B> {
    let mut response = Response::new(B::from(REFUSAL_BODY));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // RFC 9110 §15.5.2: a 401 carries a challenge; there is no standard
    // scheme for a gateway assertion, so a private one names it.
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Vestibule-Assertion"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
