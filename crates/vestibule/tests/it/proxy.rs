//! The reverse proxy: streaming, upgrades, failures, listeners.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

#[tokio::test]
async fn healthz_and_metrics() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    let r = Raw::get(gw.addr, UNTRUSTED, "/.vestibule/healthz", &[]).await;
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    Raw::get(gw.addr, TRUSTED, "/", &[("Remote-User", "a")]).await;
    Raw::get(gw.addr, TRUSTED, "/", &[]).await;
    let m = gw.metrics().await;
    for needle in [
        "vestibule_requests_total{route=\"app\",outcome=\"forwarded\"} 1",
        "vestibule_requests_total{route=\"app\",outcome=\"unauthenticated\"} 1",
        "vestibule_auth_decisions_total{source=\"headers\",result=\"authenticated\"} 1",
        "vestibule_upstream_duration_seconds_count{route=\"app\"} 1",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}

#[tokio::test]
async fn upstream_down_gives_502_and_slow_upstream_504() {
    let down = closed_port().await;
    // An upstream that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let routes = [
        route("down", "/down", down, "auth = \"public\""),
        route("slow", "/slow", silent_addr, "auth = \"public\""),
    ]
    .concat();
    let cfg = config(&authelia(), &routes).replacen(
        "[log]",
        "[upstream]\nresponse_timeout = \"1s\"\n\n[log]",
        1,
    );
    let gw = Gateway::start(&cfg).await;
    let r = Raw::get(gw.addr, TRUSTED, "/down", &[]).await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains("could not be reached"));
    let r = Raw::get(gw.addr, TRUSTED, "/slow", &[]).await;
    assert_eq!(r.status, 504);
    let m = gw.metrics().await;
    assert!(m.contains("outcome=\"upstream_error\"} 1"), "{m}");
    assert!(m.contains("outcome=\"upstream_timeout\"} 1"), "{m}");
}

#[tokio::test]
async fn forwarded_headers_are_rebuilt() {
    let up = start_whoami().await;
    let src = "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n[client_ip]\ntrusted_hops = [\"127.0.0.1\", \"10.0.0.0/8\"]\n";
    let gw = Gateway::start(&config(src, &route("app", "/", up, "auth = \"public\""))).await;
    let spoof = [
        ("X-Forwarded-For", "6.6.6.6, 10.0.0.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Real-IP", "1.1.1.1"),
    ];
    // Trusted hop: its chain is extended, the client is the right-most untrusted entry.
    let s = Raw::get(gw.addr, TRUSTED, "/", &spoof).await.seen_headers();
    assert_eq!(s["x-forwarded-for"], ["6.6.6.6, 10.0.0.9, 127.0.0.1"]);
    assert_eq!(s["x-real-ip"], ["6.6.6.6"]);
    assert_eq!(s["x-forwarded-proto"], ["https"]);
    // Untrusted peer: everything it claimed is replaced.
    let s = Raw::get(gw.addr, UNTRUSTED, "/", &spoof)
        .await
        .seen_headers();
    assert_eq!(s["x-forwarded-for"], ["127.0.0.2"]);
    assert_eq!(s["x-real-ip"], ["127.0.0.2"]);
    assert_eq!(s["x-forwarded-proto"], ["http"]);
    assert_eq!(s["x-forwarded-host"], ["app.test"]);
    // Underscore spellings (read by CGI/PHP as the real ones) and headers
    // that apps read as the real path never reach the app, from any peer.
    let odd = [
        ("X_Forwarded_Host", "evil.example"),
        ("X_Real_IP", "6.6.6.6"),
        ("X-Original-URL", "/admin"),
        ("X_Rewrite_URL", "/admin"),
    ];
    for peer in [TRUSTED, UNTRUSTED] {
        let s = Raw::get(gw.addr, peer, "/", &odd).await.seen_headers();
        for h in [
            "x_forwarded_host",
            "x_real_ip",
            "x-original-url",
            "x_rewrite_url",
        ] {
            assert!(!s.contains_key(h), "{h} forwarded from {peer}: {s:?}");
        }
        assert_ne!(s["x-real-ip"], ["6.6.6.6"]);
    }
    // Hop-by-hop headers stop at vestibule.
    let s = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("Keep-Alive", "timeout=5"),
            ("X-Drop", "1"),
            ("Connection", "close, X-Drop"),
            ("Proxy-Authorization", "Basic eDp5"),
        ],
    )
    .await
    .seen_headers();
    for h in ["keep-alive", "x-drop", "proxy-authorization"] {
        assert!(!s.contains_key(h), "{h} forwarded");
    }
}

#[tokio::test]
#[allow(clippy::result_large_err)] // the callback's type is tungstenite's
async fn websocket_passes_through_with_identity() {
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    tokio::spawn(async move {
        while let Ok((s, _)) = ws.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    let _ = seen_tx.send(req.headers().get("remote-user").map(|v| v.to_str().unwrap().to_owned()));
                    Ok(resp)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(s, cb).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        ws.send(m).await.unwrap();
                    }
                }
            });
        }
    });
    let gw = Gateway::start(&config(&authelia(), &route("ws", "/", ws_addr, ""))).await;
    let stream = Raw::connect(gw.addr, TRUSTED).await;
    let mut req = format!("ws://{}/socket", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Remote-User", "alice".parse().unwrap());
    req.headers_mut()
        .insert("remote_user_spoof", "x".parse().unwrap());
    let (mut client, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(seen_rx.recv().await.unwrap().as_deref(), Some("alice"));
    for i in 0..3 {
        client
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    client
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let m = client.next().await.unwrap().unwrap();
    assert_eq!(m.into_data().as_ref(), &[0u8, 1, 2, 255]);

    // Without identity the upgrade never reaches the app.
    let stream = Raw::connect(gw.addr, UNTRUSTED).await;
    let mut req = format!("ws://{}/socket", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Remote-User", "alice".parse().unwrap());
    let err = tokio_tungstenite::client_async(req, stream)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// 100 MiB each way through the proxy; the gateway's peak RSS must stay far
/// below the body size, which it could not if it buffered.
#[tokio::test]
async fn large_bodies_stream_without_buffering() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    let before = vm_hwm_kib(gw.pid());

    // Upload.
    let mut s = Raw::connect(gw.addr, TRUSTED).await;
    s.write_all(format!("POST /_count HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: alice\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..(SIZE / chunk.len() as u64) {
        s.write_all(&chunk).await.unwrap();
    }
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let r = Raw::parse(&buf);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["bytes"].as_u64(), Some(SIZE));

    // Download, counted without keeping it.
    let mut s = Raw::connect(gw.addr, TRUSTED).await;
    s.write_all(format!("GET /_bytes/{SIZE} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: alice\r\n\r\n").as_bytes()).await.unwrap();
    let mut total: u64 = 0;
    let mut head_done = false;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        if head_done {
            total += n as u64;
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head_done = true;
                total += (head.len() - p - 4) as u64;
                assert!(
                    head.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&head)
                );
            }
        }
    }
    assert_eq!(total, SIZE);

    let after = vm_hwm_kib(gw.pid());
    eprintln!("gateway peak RSS: {before} KiB before, {after} KiB after 2 x 100 MiB");
    assert!(
        after < before + 40 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    let stream = Raw::connect(gw.addr, TRUSTED).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://app.test/h2?x=1")
        .header("remote-user", "alice")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let headers = j["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|p| p[0] == "remote-user" && p[1] == "alice"),
        "{j}"
    );
    assert!(
        headers.iter().any(|p| p[0] == "host" && p[1] == "app.test"),
        "{j}"
    );
    assert_eq!(j["uri"], "/h2?x=1");
}

#[tokio::test]
async fn tls_listener_speaks_http1_and_h2() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "[server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let cfg = config(&authelia(), &route("app", "/", up, "")).replacen(
        "[log]",
        &format!("{tls}\n[log]"),
        1,
    );
    let gw = Gateway::start_in(dir, &cfg, &[]).await;
    let tls_addr = gw.tls.expect("no TLS listener");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = Raw::connect(tls_addr, TRUSTED).await;
        let mut stream = connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        if alpn == b"h2" {
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = http::Request::builder()
                .uri("https://localhost/")
                .header("remote-user", "alice")
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(
                j["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p[0] == "x-forwarded-proto" && p[1] == "https"),
                "{j}"
            );
        } else {
            stream
                .write_all(&request("GET", "/", &[("Remote-User", "alice")]))
                .await
                .unwrap();
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).await.ok();
            let r = Raw::parse(&buf);
            assert_eq!(r.status, 200);
            assert_eq!(r.seen_headers()["x-forwarded-proto"], ["https"]);
            assert_eq!(r.seen_headers()["remote-user"], ["alice"]);
        }
    }
}

#[tokio::test]
async fn unix_socket_trust_is_declared_per_listener() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted.sock");
    let open = dir.path().join("open.sock");
    let unix = format!(
        "[[server.unix]]\npath = \"{}\"\ntrusted = true\n\n[[server.unix]]\npath = \"{}\"\n",
        trusted.display(),
        open.display()
    );
    let cfg = config(&authelia(), &route("app", "/", up, "auth = \"optional\"")).replacen(
        "[log]",
        &format!("{unix}\n[log]"),
        1,
    );
    let _gw = Gateway::start_in(dir, &cfg, &[]).await;
    for (path, expect_user) in [(&trusted, true), (&open, false)] {
        let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
        s.write_all(&request("GET", "/", &[("Remote-User", "alice")]))
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let r = Raw::parse(&buf);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.seen_headers().contains_key("remote-user"),
            expect_user,
            "{}",
            path.display()
        );
    }
}

#[tokio::test]
async fn ipv4_mapped_peers_are_normalised() {
    let up = start_whoami().await;
    let cfg = config(&authelia(), &route("app", "/", up, "")).replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"[::ffff:127.0.0.1]:0\"]",
    );
    let gw = Gateway::start(&cfg).await;
    assert!(gw.addr.is_ipv6(), "{}", gw.addr);
    let v4 = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), gw.addr.port());
    let r = Raw::get(v4, TRUSTED, "/", &[("Remote-User", "alice")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.seen_headers()["x-real-ip"], ["127.0.0.1"]);
}

/// Issue 21, in-path: vestibule itself refuses an h2c upgrade (no tunnel
/// to an HTTP/2-capable app), never forwards a fragment, and applies the
/// strictest route to a case-folded path, in front of an app that reads
/// targets carelessly.
#[tokio::test]
async fn in_path_h2c_fragments_and_letter_case() {
    use crate::careless_app::{CarelessApp, H2cAsk, try_h2c};

    let app = CarelessApp::start("127.0.0.1:0".parse().unwrap()).await;
    let up = app.addr;
    let routes = [
        route("public", "/public", up, "auth = \"public\""),
        route("admins", "/admins", up, "allow_groups = [\"admins\"]"),
        route("app", "/", up, ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let alice = [("Remote-User", "alice"), ("Remote-Groups", "admins")];
    let bob = [("Remote-User", "bob"), ("Remote-Groups", "users")];

    // Control: the careless app is reached.
    let r = Raw::get(gw.addr, TRUSTED, "/public/index.txt", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "public index"));

    // h2c: refused before the app, on any route, with or without identity.
    for ask in [H2cAsk::WithSettings, H2cAsk::UpgradeOnly] {
        for (path, who) in [("/public/index.txt", &[][..]), ("/app", &bob[..])] {
            let attempt = try_h2c(gw.addr, TRUSTED, ask, path, who, "/admins/secret", &alice).await;
            assert_eq!(attempt.status, 400, "{ask:?} {path}: {attempt:?}");
            assert!(attempt.tunneled.is_none());
        }
    }
    assert!(
        app.served()
            .iter()
            .all(|r| r.protocol != "h2" && r.header("upgrade").is_empty()),
        "an upgrade reached the app: {:?}",
        app.served()
    );

    // A fragment sent anyway is not forwarded as path (hyper drops it), so
    // the app reads what vestibule judged.
    let r = Raw::send(
        gw.addr,
        TRUSTED,
        b"GET /public#/../app/secret.txt HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !r.text().contains("APP-SECRET"),
        "{} {}",
        r.status,
        r.text()
    );
    assert!(
        !app.served()
            .iter()
            .any(|s| s.file == Some("/app/secret.txt")),
        "{:?}",
        app.served()
    );

    // Letter case: /ADMINS/secret is the admins route's.
    let r = Raw::get(gw.addr, TRUSTED, "/ADMINS/secret", &bob).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = Raw::get(gw.addr, TRUSTED, "/ADMINS/secret", &alice).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ADMINS-SECRET"));
}

/// Logs written to a file (here stderr redirected, as under systemd or
/// docker) carry no colour codes and no Rust debug text: addresses as
/// addresses, absent values as `-`.
#[tokio::test]
async fn logs_are_plain_text_when_not_on_a_terminal() {
    let up = start_whoami().await;
    let src = "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let gw = Gateway::start(&config(src, &route("app", "/", up, ""))).await;
    // An identity header from an untrusted peer (logged with peer and
    // client address), and a forward-auth call from one.
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &[("Remote-User", "admin")]).await;
    assert_eq!(r.status, 401);
    let r = Raw::get(
        gw.addr,
        UNTRUSTED,
        "/.vestibule/verify",
        &[("X-Original-URI", "/")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let mut log = String::new();
    for _ in 0..100 {
        log = gw.stderr();
        if log.contains("untrusted peer were ignored")
            && log.contains("forward-auth request refused")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(log.contains("untrusted peer were ignored"), "{log}");
    assert!(log.contains("forward-auth request refused"), "{log}");
    assert!(log.contains("peer=127.0.0.2"), "{log}");
    assert!(log.contains("client_ip=127.0.0.2"), "{log}");
    assert!(log.contains("headers=remote-user"), "{log}");
    for debug_text in ["\x1b[", "Tcp(", "Unix {", "Some(", "None"] {
        assert!(
            !log.contains(debug_text),
            "{debug_text:?} in the log:\n{log}"
        );
    }
}
