//! Strict framing and the reserved prefix, over raw TCP against the real
//! binary, with an upstream that records whether it was contacted: every
//! ambiguous or malformed request gets 400 and a closed connection, a head
//! error reaches no upstream, a body error found while streaming is still
//! the client's 400 (not 502), and no spelling of `/.vestibule/` is
//! forwarded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// An upstream that counts the connections it accepts. It answers 200
/// after the request head, except for paths starting `/hold`, where it
/// reads the body until the gateway gives up and never answers.
struct Recorder {
    addr: SocketAddr,
    contacted: Arc<AtomicUsize>,
    /// The request heads received, as sent by the gateway.
    heads: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let contacted = Arc::new(AtomicUsize::new(0));
        let count = contacted.clone();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(buf) = read_request_head(&mut s).await else {
                        return;
                    };
                    let end = head_end(&buf).unwrap();
                    seen.lock().unwrap().push(buf[..end].to_vec());
                    if buf.starts_with(b"POST /hold") {
                        let mut chunk = [0u8; 4096];
                        while let Ok(n) = s.read(&mut chunk).await {
                            if n == 0 {
                                return;
                            }
                        }
                        return;
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream")
                        .await;
                });
            }
        });
        Self {
            addr,
            contacted,
            heads,
        }
    }

    fn contacted(&self) -> usize {
        self.contacted.load(Ordering::SeqCst)
    }
}

async fn in_path(up: &Recorder) -> Gateway {
    let routes = [
        route("admins", "/admins", up.addr, "allow_groups = [\"admins\"]"),
        route("public", "/", up.addr, "auth = \"public\""),
    ]
    .concat();
    Gateway::start(&config(&authelia(), &routes)).await
}

/// Sends `request` on a fresh connection and reads until the gateway
/// closes it (the test fails if it does not, within 10 s).
async fn exchange_raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = Raw::connect(addr, UNTRUSTED).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection stayed open after {:?}",
                String::from_utf8_lossy(request)
            )
        })
        .unwrap();
    buf
}

/// [`exchange_raw`], parsed as one response.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Raw {
    Raw::parse(&exchange_raw(addr, request).await)
}

/// Requests whose head is malformed or ambiguous: each gets 400, the
/// connection is closed (`exchange` reads to EOF even though none of
/// them asks to close), and the upstream is never contacted.
#[tokio::test]
async fn ambiguous_heads_get_400_and_never_reach_the_upstream() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let cases: &[(&str, &str)] = &[
        (
            "two different lengths",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "a length list",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
        (
            "a signed length",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "gzip then chunked",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "chunked twice",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "chunked not final",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "an unknown coding",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "chunked in HTTP/1.0",
            "POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obsolete line folding",
            "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\r\n b\r\n\r\n",
        ),
        (
            "a space before the colon",
            "GET / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "two Hosts",
            "GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n",
        ),
        (
            "absolute-form naming another host",
            "GET http://other.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "absolute-form with another scheme",
            "GET ftp://app.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "authority-form without CONNECT",
            "GET app.test:80 HTTP/1.1\r\nHost: app.test:80\r\n\r\n",
        ),
        (
            "CONNECT",
            "CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n",
        ),
        (
            "asterisk-form without OPTIONS",
            "GET * HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "userinfo in Host",
            "GET / HTTP/1.1\r\nHost: evil.test@app.test\r\n\r\n",
        ),
        (
            "a path in Host",
            "GET / HTTP/1.1\r\nHost: app.test/x\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let r = exchange(gw.addr, request.as_bytes()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(up.contacted(), 0, "{what} reached the upstream");
    }
    // The same gateway forwards a well-framed request.
    let r = exchange(
        gw.addr,
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "upstream"));
    assert_eq!(up.contacted(), 1);
}

/// A chunked body that turns malformed after the head was forwarded: the
/// upstream request is aborted, and the client gets 400 and a closed
/// connection, not 502. (Chunk extensions are read past by hyper and
/// never forwarded: the body is re-chunked to the upstream.)
#[tokio::test]
async fn malformed_chunks_found_while_streaming_are_400_not_502() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let cases: &[(&str, &[u8])] = &[
        ("a size that is not hex", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("a negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
        (
            "an overflowing size",
            b"fffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        ),
        ("data longer than its size", b"5\r\nhelloXX\r\n0\r\n\r\n"),
        ("a bare LF after the data", b"5\r\nhello\n0\r\n\r\n"),
    ];
    for (what, body) in cases {
        let mut req = b"POST /hold HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n".to_vec();
        req.extend_from_slice(body);
        let r = exchange(gw.addr, &req).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
}

/// `Content-Length` with `Transfer-Encoding` (RFC 9112 §6.1, §6.3 item
/// 3): hyper would read the body as chunked and drop the length before a
/// service sees it, so vestibule finds the pair in the connection's bytes
/// (`vestibule_core::framing::stream`) and answers 400 and closes, in
/// either order and in every spelling hyper accepts. Nothing reaches the
/// upstream, and the bytes a `Content-Length` reader would take for a
/// second request are never answered.
#[tokio::test]
async fn length_with_chunked_gets_400_and_a_closed_connection() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let smuggled = "GET /.vestibule/smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let cases: &[(&str, &str)] = &[
        (
            "length first",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "chunked first",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        ),
        (
            "upper case",
            "POST / HTTP/1.1\r\nHOST: app.test\r\nTRANSFER-ENCODING: CHUNKED\r\nCONTENT-LENGTH: 4\r\n\r\n0\r\n\r\n",
        ),
        (
            "tab and trailing white space",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length:\t4\t\r\nTransfer-Encoding:\tchunked \r\n\r\n0\r\n\r\n",
        ),
        (
            "bare LF line ends",
            "POST / HTTP/1.1\nHost: app.test\ntransfer-encoding: Chunked\ncontent-length: 4\n\n0\r\n\r\n",
        ),
        (
            "a coding list ending in chunked",
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "an invalid length after chunked (hyper skips it)",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n",
        ),
        (
            "two lengths after chunked",
            "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\n0\r\n\r\n",
        ),
        (
            "forward-auth's path",
            "POST /.vestibule/verify HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nX-Original-URI: /\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let buf = exchange_raw(gw.addr, format!("{request}{smuggled}").as_bytes()).await;
        let text = String::from_utf8_lossy(&buf);
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{what}: {text}");
        let r = Raw::parse(&buf);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(
            r.text()
                .contains("both Content-Length and Transfer-Encoding"),
            "{what}: {}",
            r.text()
        );
        assert_eq!(up.contacted(), 0, "{what} reached the upstream");
    }
}

/// Sends `requests` back to back on one connection (the last one asks to
/// close) and returns the responses' status codes and bodies, in order.
async fn pipelined(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<(u16, String)> {
    let buf = exchange_raw(addr, &requests.concat()).await;
    let mut out = Vec::new();
    let mut rest = &buf[..];
    while !rest.is_empty() {
        let end = head_end(rest).unwrap() + 4;
        let r = Raw::parse(&rest[..end]);
        let len: usize = r
            .header("content-length")
            .unwrap_or_else(|| panic!("no length: {:?}", String::from_utf8_lossy(rest)))
            .parse()
            .unwrap();
        out.push((
            r.status,
            String::from_utf8_lossy(&rest[end..end + len]).into_owned(),
        ));
        rest = &rest[end + len..];
    }
    out
}

/// A valid request then one with both fields, pipelined: the first is
/// answered by the app, the second gets 400 and the connection closes,
/// and only the first reached the upstream.
#[tokio::test]
async fn a_pipelined_request_with_length_and_chunked_is_refused_alone() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let answers = pipelined(
        gw.addr,
        &[
            b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n".to_vec(),
            b"POST /second HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n".to_vec(),
            b"GET /third HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n".to_vec(),
        ],
    )
    .await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0], (200, "upstream".to_owned()));
    assert_eq!(answers[1].0, 400, "{answers:?}");
    let heads = up.heads.lock().unwrap();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].starts_with(b"GET /first "));
}

/// No false positive: bodies that contain text looking like heads with
/// both fields, chunk extensions, trailers and bare LF heads, pipelined on
/// one connection, are all served, each body counted whole by the app.
#[tokio::test]
async fn bodies_extensions_and_trailers_are_not_mistaken_for_heads() {
    let app = start_whoami().await;
    let routes = route("public", "/", app, "auth = \"public\"");
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let lookalike =
        "\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    let requests = [
        format!(
            "POST /_count HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n{lookalike}",
            lookalike.len()
        ),
        format!(
            "POST /_count HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x};ext=\"a;b\";x\r\n{lookalike}\r\n3 ;q=1\r\nabc\r\n0;last\r\n\
             Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            lookalike.len()
        ),
        "POST /_count HTTP/1.1\nHost: app.test\nContent-Length: 2\n\nhi".to_owned(),
        "GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n".to_owned(),
    ];
    let requests: Vec<Vec<u8>> = requests.iter().map(|r| r.clone().into_bytes()).collect();
    let answers = pipelined(gw.addr, &requests).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200], "{answers:?}");
    let n = lookalike.len();
    assert_eq!(answers[0].1, format!("{{\"bytes\":{n}}}"));
    assert_eq!(answers[1].1, format!("{{\"bytes\":{}}}", n + 3));
    assert_eq!(answers[2].1, "{\"bytes\":2}");
}

/// vestibule's reserved prefix, spelt any way the route matcher reads a
/// path, is answered by vestibule or refused, never forwarded.
#[tokio::test]
async fn reserved_prefix_spellings_are_never_forwarded() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    for path in [
        "/.vestibule/no-such-page",
        "/.VESTIBULE/healthz",
        "/.Vestibule/login",
        "/%2evestibule/healthz",
        "/%2Evestibule/healthz",
        "/%2e%76estibule/x",
        "//.vestibule/healthz",
        "/app/../.vestibule/healthz",
        "/app/%2e%2e/.vestibule/healthz",
        "/app%2f..%2f.vestibule/x",
        "/.vestibule;x=1/healthz",
        "/./.vestibule/healthz",
        "/.vestibule%2fhealthz",
        "/.vestibule\\healthz",
        "/.vestibule%5chealthz",
    ] {
        let r = Raw::get(gw.addr, UNTRUSTED, path, &[]).await;
        // 404 is vestibule's own "no such page" under the exact prefix.
        assert!(
            r.status == 400 || (r.status == 404 && path.starts_with("/.vestibule/")),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(up.contacted(), 0, "{path} reached the upstream");
    }
    let r = Raw::get(gw.addr, UNTRUSTED, "/.vestibule/healthz", &[]).await;
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    assert_eq!(up.contacted(), 0);
}

/// Letter case is one more reading: `/ADMINS` is handled under the
/// stricter `/admins` route, not forwarded as public.
#[tokio::test]
async fn letter_case_takes_the_strictest_route() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    for path in ["/ADMINS/x", "/Admins", "/%41dmins/x"] {
        let r = Raw::get(gw.addr, UNTRUSTED, path, &[]).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
    }
    assert_eq!(up.contacted(), 0);
}

/// Forward-auth: the verify request's own head is held to the same rules,
/// and an original URI in the reserved prefix is refused.
#[tokio::test]
async fn forward_auth_refuses_bad_framing_and_the_reserved_prefix() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let bad = b"GET /.vestibule/verify HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\nX-Original-URI: /app\r\n\r\n0\r\n\r\n";
    let r = Raw::send(gw.addr, TRUSTED, bad).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    for uri in [
        "/.VESTIBULE/account",
        "/%2evestibule/account",
        "/x/../.vestibule/x",
    ] {
        let r = Raw::get(
            gw.addr,
            TRUSTED,
            "/.vestibule/verify",
            &[
                ("X-Original-URI", uri),
                ("X-Forwarded-Host", "app.test"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
        assert_eq!(r.status, 400, "{uri}: {}", r.text());
    }
    assert_eq!(up.contacted(), 0);
}

/// The Transfer-Encoding obfuscations of James Kettle's `smuggler`
/// (github.com/defparam/smuggler, MIT licence, configs/exhaustive.py),
/// re-expressed here: the named gadgets, and every control byte and every
/// byte 0x7F-0xFF before, inside and after the field. Each goes in a
/// request that also has `Content-Length`. Whatever the gateway does, it
/// answers 400 or forwards a head framed exactly one way: at most one
/// `Content-Length`/`Transfer-Encoding` field in any spelling where `_` is
/// `-`.
fn smuggler_gadgets() -> Vec<Vec<u8>> {
    let mut g: Vec<Vec<u8>> = [
        &b" Transfer-Encoding: chunked"[..],
        b"Transfer-Encoding:\tchunked",
        b"Transfer-Encoding\t:\tchunked",
        b"Transfer Encoding: chunked",
        b"Transfer_Encoding: chunked",
        b"Transfer Encoding:chunked",
        b"Transfer-Encoding : chunked",
        b"Transfer-Encoding:  chunked",
        b"Transfer-Encoding:\x0bchunked",
        b"Transfer-Encoding: chunked, cow",
        b"Transfer-Encoding: cow, chunked",
        b"Content-Encoding: chunked",
        b"Transfer-Encoding:\n chunked",
        b"Transfer-Encoding: \"chunked\"",
        b"Transfer-Encoding: 'chunked'",
        b"Transfer-Encoding: chunk",
        b"TrAnSFer-EnCODinG: cHuNkeD",
        b"TRANSFER-ENCODING: CHUNKED",
        b"Transfer-Encoding: chunked\r",
        b"Transfer-Encoding: chunked\t",
        b"Transfer-Encoding: cow\r\nTransfer-Encoding: chunked",
        b"Transfer\r-Encoding: chunked",
        b"Transfer-Encoding: cow chunked bar",
        b"Transfer-Encoding:\xffchunked",
        b"Transfer-Encoding: ch\x96nked",
        b"Transf\x82r-Encoding: chunked",
        b"X:X\rTransfer-Encoding: chunked",
        b"X:X\nTransfer-Encoding: chunked",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    for byte in (0x01u8..0x20).chain(0x7f..=0xff) {
        let at = |before: &[u8], after: &[u8]| [before, &[byte][..], after].concat();
        g.push(at(b"Transfer-Encoding:", b"chunked"));
        g.push(at(b"Transfer-Encoding", b": chunked"));
        g.push(at(b"", b"Transfer-Encoding: chunked"));
        g.push(at(b"Transfer-Encoding: chunked", b""));
    }
    g
}

/// The framing fields of a forwarded head, names with `_` read as `-`.
fn framing_fields(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| line.iter().position(|&b| b == b':').map(|i| &line[..i]))
        .map(|name| {
            String::from_utf8_lossy(name)
                .trim()
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .filter(|n| n == "content-length" || n == "transfer-encoding")
        .count()
}

#[tokio::test]
async fn smuggler_obfuscations_are_refused_or_framed_one_way() {
    let up = Recorder::start().await;
    let gw = in_path(&up).await;
    let mut refused = 0;
    let gadgets = smuggler_gadgets();
    for gadget in &gadgets {
        let mut req = b"POST /?cb=1 HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(gadget);
        req.extend_from_slice(
            b"\r\nHost: app.test\r\nConnection: close\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        );
        let before = up.heads.lock().unwrap().len();
        let r = exchange(gw.addr, &req).await;
        let what = String::from_utf8_lossy(gadget);
        if r.status == 400 {
            refused += 1;
            assert_eq!(
                up.heads.lock().unwrap().len(),
                before,
                "{what:?} reached the upstream"
            );
            continue;
        }
        assert_eq!(r.status, 200, "{what:?}: {}", r.text());
        let heads = up.heads.lock().unwrap();
        assert_eq!(heads.len(), before + 1, "{what:?}");
        let head = heads.last().unwrap();
        assert_eq!(
            framing_fields(head),
            1,
            "{what:?} was forwarded framed two ways: {}",
            String::from_utf8_lossy(head)
        );
        // Every request here has `Content-Length`: one that hyper also
        // read as chunked is 400, so a forwarded one was framed by its
        // length alone.
        assert!(
            !String::from_utf8_lossy(head)
                .to_ascii_lowercase()
                .contains("transfer-encoding"),
            "{what:?} was forwarded chunked despite its Content-Length: {}",
            String::from_utf8_lossy(head)
        );
    }
    // Most obfuscations are refused outright; the rest carry no field
    // hyper reads as `Transfer-Encoding` (a plain spelling such as
    // `TRANSFER-ENCODING: CHUNKED` beside the `Content-Length` is 400).
    assert!(
        refused * 2 > gadgets.len(),
        "{refused} of {}",
        gadgets.len()
    );
}
