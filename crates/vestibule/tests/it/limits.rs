//! Limits and abuse: header bounds, body caps, connection cap, slow clients,
//! request smuggling. Sent raw, where a polite client would refuse.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

#[tokio::test]
async fn too_many_or_too_large_headers_are_refused() {
    let up = start_whoami().await;
    let cfg = config(&authelia(), &route("app", "/", up, "auth = \"public\""))
        .replacen("[log]", "[server.limits]\n", 0)
        .replace(
            "admin_listen = \"127.0.0.1:0\"",
            "admin_listen = \"127.0.0.1:0\"\nmax_request_headers = 20\nmax_header_bytes = 8192",
        );
    let gw = Gateway::start(&cfg).await;
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-H{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &many).await;
    assert_eq!(r.status, 431, "{}", r.text());
    let big = "x".repeat(10_000);
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &[("X-Big", big.as_str())]).await;
    assert_eq!(r.status, 431);
    // Within bounds: fine.
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &many[..10]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn body_cap_per_route() {
    let up = start_whoami().await;
    let routes = [
        route(
            "small",
            "/_count",
            up,
            "auth = \"public\"\nmax_body_bytes = 1000",
        ),
        route("app", "/", up, "auth = \"public\""),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let body = "x".repeat(2000);
    // Announced too large: refused before anything is sent upstream.
    let req = format!(
        "POST /_count HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n{body}"
    );
    assert_eq!(
        Raw::send(gw.addr, TRUSTED, req.as_bytes()).await.status,
        413
    );
    // Streamed (chunked) past the cap: cut off with 413.
    let req = format!(
        "POST /_count HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{body}\r\n0\r\n\r\n"
    );
    assert_eq!(
        Raw::send(gw.addr, TRUSTED, req.as_bytes()).await.status,
        413
    );
    // Under the cap: passes.
    let req = format!(
        "POST /_count HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 500\r\n\r\n{}",
        &body[..500]
    );
    let r = Raw::send(gw.addr, TRUSTED, req.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bytes"], 500);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let up = start_whoami().await;
    let cfg = config(&authelia(), &route("app", "/", up, "auth = \"public\"")).replace(
        "admin_listen = \"127.0.0.1:0\"",
        "admin_listen = \"127.0.0.1:0\"\nheader_read_timeout = \"1s\"",
    );
    let gw = Gateway::start(&cfg).await;
    let mut s = Raw::connect(gw.addr, UNTRUSTED).await;
    let started = Instant::now();
    // A slowloris client: a request line and one header, then nothing.
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("vestibule kept a slow client's connection open")
        .ok();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    if !buf.is_empty() {
        assert_eq!(Raw::parse(&buf).status, 408);
    }
}

#[tokio::test]
async fn connection_cap_queues_further_clients() {
    let up = start_whoami().await;
    let cfg = config(&authelia(), &route("app", "/", up, "auth = \"public\"")).replace(
        "admin_listen = \"127.0.0.1:0\"",
        // Two workers: the cap holds over both, and a worker waiting on an
        // empty socket holds no slot.
        "admin_listen = \"127.0.0.1:0\"\nmax_connections = 2\nworkers = 2",
    );
    let gw = Gateway::start(&cfg).await;
    let idle1 = Raw::connect(gw.addr, TRUSTED).await;
    let idle2 = Raw::connect(gw.addr, TRUSTED).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = Raw::connect(gw.addr, TRUSTED).await;
    third.write_all(&request("GET", "/", &[])).await.unwrap();
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served above the cap"
    );
    drop(idle1);
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf))
        .await
        .expect("the queued client was never served")
        .unwrap();
    assert_eq!(Raw::parse(&buf).status, 200);
    drop(idle2);
}

/// A raw upstream that records the bytes it receives and answers every
/// request it can frame with a fixed 200.
async fn recording_upstream() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {
                            seen.extend_from_slice(&buf[..n]);
                            if seen.ends_with(b"\r\n\r\n") || seen.ends_with(b"0\r\n\r\n") {
                                let _ = s
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                    .await;
                            }
                        }
                        _ => break,
                    }
                }
                let _ = tx.send(seen);
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn request_smuggling_is_refused_or_normalised() {
    let (up, mut seen) = recording_upstream().await;
    let gw = Gateway::start(&config(
        &authelia(),
        &route("app", "/", up, "auth = \"public\""),
    ))
    .await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\nRemote-User: admin\r\n\r\n";
    // CL.TE and TE.CL: Content-Length and Transfer-Encoding together.
    for req in [
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n{smuggled}\r\n0\r\n\r\n"
        ),
        // Obfuscated Transfer-Encoding.
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Two Content-Length values.
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd{smuggled}"
        ),
        // An obs-folded header (RFC 9112 §5.2: reject).
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Remote-User: admin\r\n\r\n".to_owned(),
    ] {
        let r = Raw::send(gw.addr, UNTRUSTED, req.as_bytes()).await;
        // Every one is refused outright (RFC 9112 §6.3 lets a server
        // reject each; `Content-Length` with `Transfer-Encoding` is found
        // in the connection's bytes, since hyper drops the length).
        assert_eq!(r.status, 400, "{req:?}: {}", r.text());
    }
    // The upstream is reachable: a well-framed request is the one that
    // arrives.
    let r = Raw::send(
        gw.addr,
        UNTRUSTED,
        b"GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Whatever reached the upstream: every request in it carries vestibule's
    // framing, never both headers, and never the client's identity.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut heads_seen = 0;
    while let Ok(bytes) = seen.try_recv() {
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        // A request head starts a segment with a request line; anything
        // else (such as `3b\r\nget /admin…`) is chunk data inside a body
        // that vestibule framed, which the upstream never parses as a request.
        for head in text.split("\r\n\r\n").filter(|seg| {
            let first = seg.lines().next().unwrap_or("");
            let mut parts = first.split(' ');
            matches!((parts.next(), parts.next(), parts.next()), (Some(m), Some(p), Some("http/1.1")) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_lowercase()) && p.starts_with('/'))
        }) {
            heads_seen += 1;
            assert!(!head.contains("remote-user"), "identity smuggled into a request head upstream:\n{head}");
            assert!(!head.starts_with("get /admin"), "a smuggled request reached the upstream:\n{head}");
            assert!(
                !(head.contains("content-length:") && head.contains("transfer-encoding:")),
                "ambiguous framing upstream:\n{head}"
            );
        }
    }
    assert_eq!(
        heads_seen, 1,
        "only the well-framed request reaches the upstream"
    );
}
