//! `whoami`: a tiny app that shows exactly what it received. The demo puts
//! it behind vestibule; tests and benchmarks use it as their upstream.
//!
//! - `GET /_bytes/{n}` streams `n` zero bytes (large-download tests).
//! - `POST /_count` streams the request body and answers its length in JSON
//!   (large-upload tests).
//! - `GET /_bench` answers `ok` with nothing else (benchmarks).
//! - Anything else: the method, path and headers, as HTML for browsers and
//!   JSON otherwise, with identity headers picked out.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use vestibule_core::headers::IdentityHeaders;

/// The whoami router.
pub fn app() -> Router {
    Router::new()
        .route("/_bytes/{n}", get(bytes))
        .route("/_count", post(count))
        .route("/_bench", get(|| async { "ok" }))
        .fallback(show)
}

const CHUNK: usize = 64 * 1024;

async fn bytes(Path(n): Path<u64>) -> Response {
    let chunk = Bytes::from(vec![0u8; CHUNK]);
    let stream = futures_util::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(CHUNK as u64);
            Some((
                Ok::<_, std::io::Error>(chunk.slice(..take as usize)),
                left - take,
            ))
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(header::CONTENT_LENGTH, n.into());
    resp
}

async fn count(req: Request) -> Response {
    let mut body = req.into_body();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    total += d.len() as u64;
                }
            }
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("body error: {e}\n")).into_response();
            }
        }
    }
    axum::Json(serde_json::json!({ "bytes": total })).into_response()
}

/// What whoami received, as JSON.
#[derive(Debug, Serialize)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Every header line, in order, as received (lowercased names).
    pub headers: Vec<(String, String)>,
    /// The identity headers among them.
    pub identity: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "whoami.html")]
struct Page<'a> {
    seen: &'a Seen,
}

fn seen(method: &str, uri: &str, headers: &HeaderMap) -> Seen {
    let ids = IdentityHeaders::builtin();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let identity = pairs
        .iter()
        .filter(|(n, _)| ids.contains(n))
        .cloned()
        .collect();
    Seen {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers: pairs,
        identity,
    }
}

async fn show(req: Request) -> Response {
    let s = seen(req.method().as_str(), &req.uri().to_string(), req.headers());
    let html = crate::http::responses::wants_html(req.headers());
    // Drain the body so keep-alive connections stay usable.
    let _ = req.into_body().collect().await;
    if html {
        match (Page { seen: &s }).render() {
            Ok(body) => Html(body).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    } else {
        axum::Json(s).into_response()
    }
}

/// Serves whoami on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, app()).await
}
