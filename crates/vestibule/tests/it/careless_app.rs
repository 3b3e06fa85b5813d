//! A careless app, for the bypass cases of `frontends.rs`: the kind of app
//! a gate must protect even when it reads requests differently from the
//! gate.
//!
//! - It reads the **raw** request target: cut at `?` only (a `#` is path
//!   text to it), percent-decoded, dot segments resolved, and **case
//!   folded**, as a static file server on a case-insensitive file system
//!   would. So `/public#/../app/secret.txt` and `/ADMINS/secret` serve
//!   protected files.
//! - It accepts an HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2): it answers 101
//!   and then speaks HTTP/2 (hyper's server) on the same connection, so a
//!   front that tunnels the upgrade hands the client a connection on which
//!   no later request is checked.
//!
//! Every request it gets, on either protocol, is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The files it serves, by folded path, and their contents.
pub const FILES: [(&str, &str); 3] = [
    ("/public/index.txt", "public index"),
    ("/app/secret.txt", "APP-SECRET"),
    ("/admins/secret", "ADMINS-SECRET"),
];

/// One request the app got.
#[derive(Debug, Clone)]
pub struct Served {
    /// `HTTP/1.1` or `h2` (inside an upgraded connection).
    pub protocol: &'static str,
    /// The request target as received (for h2, the `:path`).
    pub target: String,
    /// The header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The file served, if any.
    pub file: Option<&'static str>,
}

impl Served {
    /// The values of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The running app; it stops with the test's runtime.
pub struct CarelessApp {
    pub addr: SocketAddr,
    pub served: Arc<Mutex<Vec<Served>>>,
}

impl CarelessApp {
    /// Starts it on `addr` (the app port a front's page forwards to, or
    /// port 0 for any).
    pub async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("the careless app cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let served: Arc<Mutex<Vec<Served>>> = Arc::default();
        let log = served.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, log.clone()));
            }
        });
        Self { addr, served }
    }

    /// Everything served so far.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap().clone()
    }
}

/// The app's reading of a raw target: the file it serves, if any.
pub fn resolve(target: &str) -> Option<&'static str> {
    let path = target.split('?').next().unwrap_or(target);
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let folded = decoded.to_lowercase();
    let mut out: Vec<&str> = Vec::new();
    for seg in folded.split('/').skip(1) {
        match seg {
            "." | "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let clean = format!("/{}", out.join("/"));
    FILES.iter().find(|(p, _)| *p == clean).map(|(p, _)| *p)
}

fn content(file: Option<&'static str>) -> &'static str {
    file.and_then(|f| FILES.iter().find(|(p, _)| *p == f))
        .map_or("no such file", |(_, c)| *c)
}

/// Reads an HTTP/1.1 head one byte at a time, so that nothing after it
/// (the HTTP/2 preface on an upgraded connection) is consumed.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(head)
}

async fn handle(mut stream: TcpStream, log: Arc<Mutex<Vec<Served>>>) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let h2c = headers
        .iter()
        .any(|(n, v)| n == "upgrade" && v.to_ascii_lowercase().contains("h2c"));
    let file = resolve(&target);
    log.lock().unwrap().push(Served {
        protocol: "HTTP/1.1",
        target,
        headers,
        file: if h2c { None } else { file },
    });
    if h2c {
        let switching =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        if stream.write_all(switching).await.is_err() {
            return;
        }
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let target = req
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    let file = resolve(&target);
                    log.lock().unwrap().push(Served {
                        protocol: "h2",
                        headers: req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_owned(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        target,
                        file,
                    });
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        content(file),
                    ))))
                }
            });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return;
    }
    let status = if file.is_some() {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let body = content(file);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What a client got when it asked a front for an h2c upgrade.
#[derive(Debug)]
pub struct H2cAttempt {
    /// The front's status for the upgrade request.
    pub status: u16,
    /// The head of that response, for messages.
    pub head: String,
    /// With a 101: the status and body of the HTTP/2 request sent through
    /// the tunnel.
    pub tunneled: Option<(u16, String)>,
}

/// How the h2c upgrade is asked for.
#[derive(Debug, Clone, Copy)]
pub enum H2cAsk {
    /// As RFC 7540 §3.2 says: `Upgrade: h2c` with `HTTP2-Settings`.
    WithSettings,
    /// `Upgrade: h2c` alone, which lenient apps accept too.
    UpgradeOnly,
}

/// Asks `front` (from `from`) to upgrade a request for `path` to h2c; on a
/// 101, sends `GET tunnel_path` over HTTP/2 on the same connection with
/// `forged` headers, as a smuggler would.
pub async fn try_h2c(
    front: SocketAddr,
    from: &str,
    ask: H2cAsk,
    path: &str,
    extra: &[(&str, &str)],
    tunnel_path: &str,
    forged: &[(&str, &str)],
) -> H2cAttempt {
    let mut stream = crate::support::Raw::connect(front, from).await;
    let mut req = match ask {
        H2cAsk::WithSettings => format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        ),
        H2cAsk::UpgradeOnly => format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        ),
    };
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut stream)
        .await
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .unwrap_or_default();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        return H2cAttempt {
            status,
            head,
            tunneled: None,
        };
    }
    let tunneled = tokio::time::timeout(Duration::from_secs(10), async move {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(format!("http://app.test{tunnel_path}"));
        for (n, v) in forged {
            req = req.header(*n, *v);
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()?
            .to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await
    .ok()
    .flatten();
    H2cAttempt {
        status,
        head,
        tunneled: Some(tunneled.unwrap_or((0, "HTTP/2 through the tunnel failed".into()))),
    }
}

#[test]
fn the_app_reads_targets_carelessly() {
    assert_eq!(
        resolve("/public#/../app/secret.txt"),
        Some("/app/secret.txt")
    );
    assert_eq!(resolve("/ADMINS/secret"), Some("/admins/secret"));
    assert_eq!(resolve("/public/index.txt?x"), Some("/public/index.txt"));
    assert_eq!(resolve("/nothing"), None);
}
