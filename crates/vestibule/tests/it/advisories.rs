//! One regression test per advisory class seen in peers (see SECURITY.md).
//! Other classes live next to the feature they test: header smuggling and
//! ambiguity in `identity`, forward-auth URI tricks in `verify` and
//! `frontends`, request smuggling and limits in `limits`, trusted-range
//! checks in `check_cli` and the core's unit tests.

use crate::support::*;

/// koel #2015, Home Assistant core #14345, authentik CVE-2024-47070: the
/// trust decision was made on X-Forwarded-For. Here a client claims to be
/// the trusted proxy in every forwarding header there is.
#[tokio::test]
async fn forwarding_headers_never_make_a_peer_trusted() {
    let up = start_whoami().await;
    let src = "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let gw = Gateway::start(&config(src, &route("app", "/", up, "auth = \"optional\""))).await;
    let lies = [
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=127.0.0.1;proto=https"),
        ("X-Real-IP", "127.0.0.1"),
        ("X-Client-IP", "127.0.0.1"),
        ("True-Client-IP", "127.0.0.1"),
        ("CF-Connecting-IP", "127.0.0.1"),
        ("Remote-User", "admin"),
        ("Remote-Groups", "admins"),
    ];
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &lies).await;
    assert_eq!(r.status, 200);
    let seen = r.seen_headers();
    assert!(!seen.contains_key("remote-user"), "{seen:?}");
    assert_eq!(
        seen["x-real-ip"],
        ["127.0.0.2"],
        "the client picked its own address"
    );
    assert_eq!(seen["x-forwarded-for"], ["127.0.0.2"]);
}

/// paperless-ngx GHSA-72w4-hxqq-c256: header auth applied where it was
/// switched off. With the header source disabled, even the trusted proxy's
/// identity headers are ignored, and stripped before the app.
#[tokio::test]
async fn disabled_header_source_reads_nothing() {
    let up = start_whoami().await;
    let src = "[source.headers]\nenabled = false\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let routes = [
        route("open", "/open", up, "auth = \"optional\""),
        route("app", "/", up, ""),
    ]
    .concat();
    let gw = Gateway::start(&config(src, &routes)).await;
    let id = [("Remote-User", "alice"), ("Remote-Groups", "admins")];
    assert_eq!(Raw::get(gw.addr, TRUSTED, "/", &id).await.status, 401);
    let r = Raw::get(gw.addr, TRUSTED, "/open", &id).await;
    assert_eq!(r.status, 200);
    assert!(!r.seen_headers().contains_key("remote-user"));
}

/// RFC 9112 §5.2: a header folded onto the next line (obs-fold) could hide
/// `Remote-User` inside another header for a lenient parser. It is refused.
#[tokio::test]
async fn folded_headers_are_refused() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(
        &authelia(),
        &route("app", "/", up, "auth = \"optional\""),
    ))
    .await;
    for from in [TRUSTED, UNTRUSTED] {
        let r = Raw::send(
            gw.addr,
            from,
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: hello\r\n Remote-User: admin\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 400, "from {from}");
    }
}

/// Identity values carrying CR, LF or NUL never reach an app: HTTP itself
/// refuses raw CR/LF/NUL, and encodings that smuggle them are refused too.
#[tokio::test]
async fn control_characters_in_encoded_values_are_refused() {
    let up = start_whoami().await;
    let src = "[source.headers]\ndialect = \"georchestra\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let gw = Gateway::start(&config(
        src,
        &route("app", "/", up, "profile = \"georchestra\""),
    ))
    .await;
    // "admin\r\nsec-roles: ROLE_ADMINISTRATOR" in base64.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("sec-georchestra-preauthenticated", "true"),
            (
                "preauth-username",
                "{base64}YWRtaW4NCnNlYy1yb2xlczogUk9MRV9BRE1JTklTVFJBVE9S",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let src = "[source.headers]\ndialect = \"tailscale\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let gw = Gateway::start(&config(src, &route("app", "/", up, ""))).await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("Tailscale-User-Login", "a@b"),
            (
                "Tailscale-User-Name",
                "=?utf-8?q?x=0D=0AX-Webauth-User:_admin?=",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// RFC 9112 §3.2: two `Host` lines, or none in HTTP/1.1, are a 400; so is
/// an absolute-form target naming another host than `Host`. Otherwise the
/// route could be chosen by one host while the app serves another.
#[tokio::test]
async fn ambiguous_target_hosts_are_refused() {
    let up = start_whoami().await;
    let routes = [
        format!("[[route]]\nname = \"open\"\nhost = \"open.test\"\nupstream = \"http://{up}\"\nauth = \"public\"\n"),
        format!("[[route]]\nname = \"admin\"\nhost = \"admin.test\"\nupstream = \"http://{up}\"\n"),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: open.test\r\nHost: admin.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: open.test\r\nHost: open.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET http://admin.test/ HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n",
    ];
    for raw in cases {
        let r = Raw::send(gw.addr, TRUSTED, raw).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
        assert!(r.text().contains("Host"), "{}", r.text());
    }
    // The control cases pass.
    let ok: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n",
        b"GET http://open.test/ HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n",
    ];
    for raw in ok {
        let r = Raw::send(gw.addr, TRUSTED, raw).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(raw));
    }
}
