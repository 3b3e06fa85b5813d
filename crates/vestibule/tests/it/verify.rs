//! Forward-auth, answered directly (the real proxies are in `frontends`).

use crate::support::*;

async fn gateway() -> Gateway {
    let up = closed_port().await; // never contacted: verify only decides
    let routes = [
        route("public", "/public", up, "auth = \"public\""),
        route("admins", "/admins", up, "allow_groups = [\"admins\"]"),
        route(
            "app",
            "/",
            up,
            "login_url = \"https://sso.example.com/?rd={url}\"",
        ),
    ]
    .concat();
    Gateway::start(&config(&authelia(), &routes)).await
}

fn verify_req<'a>(uri: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("X-Original-URI", uri),
        ("X-Forwarded-Host", "app.example.com"),
        ("X-Forwarded-Proto", "https"),
    ];
    h.extend_from_slice(extra);
    h
}

const PROFILE: [&str; 4] = [
    "remote-user",
    "remote-email",
    "remote-name",
    "remote-groups",
];

#[tokio::test]
async fn authenticated_gets_200_with_every_profile_header() {
    let gw = gateway().await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &verify_req(
            "/app",
            &[("Remote-User", "alice"), ("Remote-Groups", "admins")],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert_eq!(r.header("remote-groups"), Some("admins"));
    // Sent even when empty.
    assert_eq!(r.header("remote-email"), Some(""));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // HEAD works too.
    let mut req = request(
        "HEAD",
        "/.vestibule/verify",
        &verify_req("/app", &[("Remote-User", "alice")]),
    );
    let r = Raw::send(gw.addr, TRUSTED, &req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    req.clear();
}

#[tokio::test]
async fn anonymous_on_public_gets_every_header_empty() {
    let gw = gateway().await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &verify_req("/public/x", &[]),
    )
    .await;
    assert_eq!(r.status, 200);
    for h in PROFILE {
        assert_eq!(r.header(h), Some(""), "{h}");
    }
    // Even a signed-in user's identity is withheld on a public route.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &verify_req("/public/x", &[("Remote-User", "alice")]),
    )
    .await;
    assert_eq!(r.header("remote-user"), Some(""));
}

#[tokio::test]
async fn unauthenticated_forbidden_and_login() {
    let gw = gateway().await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &verify_req("/app?x=1", &[("Accept", "text/html")]),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-vestibule-login-url"),
        Some("https://sso.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fapp%3Fx%3D1")
    );
    assert_eq!(r.header("location"), None);
    // Caddy/Traefik style: a 302 for browsers when asked.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify?redirect=1",
        &verify_req("/app", &[("Accept", "text/html")]),
    )
    .await;
    assert_eq!(r.status, 302);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("https://sso.example.com/?rd=")
    );
    // ...but not for API clients.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify?redirect=1",
        &verify_req("/app", &[("Accept", "application/json")]),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &verify_req("/admins", &[("Remote-User", "bob")]),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn only_trusted_proxies_may_ask_and_must_say_what_for() {
    let gw = gateway().await;
    // GHSA-7x63-xv5r-3p2x: X-Forwarded-Uri from an untrusted peer.
    let r = Raw::get(
        gw.addr,
        UNTRUSTED,
        "/.vestibule/verify",
        &verify_req("/public", &[("X-Forwarded-Uri", "/public")]),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &[("Remote-User", "alice")],
    )
    .await;
    assert_eq!(r.status, 400, "never matched on the verify path itself");
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &[("X-Original-URI", "/public"), ("X-Original-URI", "/app")],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &[("X-Original-URI", "/public"), ("X-Forwarded-Uri", "/app")],
    )
    .await;
    assert_eq!(r.status, 400);
    // Unknown host/path combination with no catch-all is refused, not 404.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &[("X-Original-URI", "relative")],
    )
    .await;
    assert_eq!(r.status, 400);
}

/// oauth2-proxy GHSA-7rh7-c77v-6434 (query), GHSA-pxq7-h93f-9jrg (fragment),
/// and the path tricks that read differently upstream.
#[tokio::test]
async fn uri_tricks_cannot_reach_a_protected_path_as_public() {
    let gw = gateway().await;
    for (uri, want) in [
        ("/public", 200),
        ("/app?/public", 401),
        ("/app?x=/public", 401),
        // A raw `#` is refused (issue 21); an encoded one, read cut or
        // not, stays under the app route.
        ("/app#/public", 400),
        ("/app%23/public", 401),
        ("/public/../app", 401),
        ("/public/%2e%2e/app", 401),
        ("/public/..%2Fapp", 400),
        ("/app%2F..%2Fpublic", 400),
        ("/public/..;/app", 400),
        ("/public//../app", 400),
        ("/%70ublic", 200),
    ] {
        let r = Raw::get(
            gw.addr,
            TRUSTED,
            "/.vestibule/verify",
            &verify_req(uri, &[]),
        )
        .await;
        assert_eq!(r.status, want, "{uri}: {}", r.text());
        if want != 200 {
            assert_eq!(r.header("remote-user"), None, "{uri}");
        }
    }
}

/// Issue 21: an upgrade other than WebSocket (h2c, or `HTTP2-Settings`), a
/// `#` in the original target and a case-folded path are decided in the
/// verify answer itself, whatever the front does with them.
#[tokio::test]
async fn h2c_fragments_and_letter_case_are_decided_strictly() {
    let gw = gateway().await;
    let ask = async |uri: &str, extra: &[(&str, &str)]| {
        Raw::get(
            gw.addr,
            TRUSTED,
            "/.vestibule/verify",
            &verify_req(uri, extra),
        )
        .await
    };
    for upgrade in [
        &[("Upgrade", "h2c"), ("Connection", "Upgrade")][..],
        &[("Upgrade", "H2C")],
        &[("Upgrade", "websocket, h2c")],
        &[("Upgrade", "TLS/1.0")],
        &[("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
    ] {
        let r = ask("/public/x", upgrade).await;
        assert_eq!(r.status, 400, "{upgrade:?}: {}", r.text());
        assert_eq!(r.header("remote-user"), None, "{upgrade:?}");
    }
    let r = ask(
        "/public/x",
        &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "a WebSocket upgrade is allowed: {}",
        r.text()
    );

    // A raw `#`: nginx forwards the whole target, so no part of it is cut.
    for uri in ["/public#/../admins/x", "/public#", "/admins#/public"] {
        let r = ask(uri, &[("Remote-User", "bob")]).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.text());
    }
    // An encoded one is read both cut and not: two routes, refused.
    let r = ask("/public%23/../admins/x", &[("Remote-User", "bob")]).await;
    assert_eq!(r.status, 400, "{}", r.text());

    // Letter case: the strictest route of every reading.
    for uri in ["/ADMINS/x", "/Admins", "/public/../ADMINS"] {
        let r = ask(uri, &[("Remote-User", "bob"), ("Remote-Groups", "users")]).await;
        assert_eq!(r.status, 403, "bob on {uri}: {}", r.text());
        let r = ask(
            uri,
            &[("Remote-User", "alice"), ("Remote-Groups", "admins")],
        )
        .await;
        assert_eq!(r.status, 200, "alice on {uri}: {}", r.text());
        assert_eq!(r.header("remote-user"), Some("alice"));
    }
    // `/PUBLIC` is under the public route only in its folded reading; the
    // exact one (the app route, which needs a login) is stricter and stays.
    let r = ask("/PUBLIC/x", &[("Accept", "application/json")]).await;
    assert_eq!(r.status, 401, "{}", r.text());
}
