//! vestibule's own endpoints that are not pages: `/.vestibule/healthz`,
//! the forward-auth endpoint, and the admin router (`/metrics`, `/healthz`).

use super::*;

/// `public` is public, `admins` needs the group, everything else (`app`)
/// needs an identity and has a login URL. No accounts.
fn gateway_config() -> String {
    let routes = [
        route("public", "/public", NO_UPSTREAM, "auth = \"public\""),
        route(
            "admins",
            "/admins",
            NO_UPSTREAM,
            "allow_groups = [\"admins\"]",
        ),
        route(
            "app",
            "/",
            NO_UPSTREAM,
            "login_url = \"https://sso.example.com/?rd={url}\"",
        ),
    ]
    .concat();
    config("", "", &routes)
}

/// A forward-auth request describing `uri` on `https://app.example.com`,
/// as nginx `auth_request` sends it.
fn verify(uri: &str) -> Call {
    Call::get("/.vestibule/verify")
        .header("X-Original-URI", uri)
        .header("X-Forwarded-Host", "app.example.com")
        .header("X-Forwarded-Proto", "https")
}

const PROFILE: [&str; 4] = [
    "remote-user",
    "remote-email",
    "remote-name",
    "remote-groups",
];

#[tokio::test]
async fn healthz_answers_anyone_on_both_routers_for_get_only() {
    let gw = Gw::new(&gateway_config()).await;
    for from in [TRUSTED, UNTRUSTED] {
        let r = Call::get("/.vestibule/healthz")
            .from(from)
            .send(&gw.app)
            .await;
        r.assert_plain(200);
        assert_eq!(r.text(), "ok\n");
        let r = Call::get("/healthz").from(from).send(&gw.admin).await;
        r.assert_plain(200);
        assert_eq!(r.text(), "ok\n");
    }
    // HEAD is GET without the body (RFC 9110 §9.3.2).
    let r = Call::new("HEAD", "/.vestibule/healthz").send(&gw.app).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    for (router, path) in [(&gw.app, "/.vestibule/healthz"), (&gw.admin, "/healthz")] {
        let r = Call::post(path).send(router).await;
        assert_eq!(r.status, 405, "{path}");
        // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
        assert_eq!(r.header("allow"), Some("GET,HEAD"), "{path}");
    }
}

#[tokio::test]
async fn admin_router_serves_metrics_and_health_and_nothing_else() {
    let gw = Gw::new(&gateway_config()).await;
    // A refusal on the main router shows in the admin router's metrics.
    let r = verify("/admins").from(UNTRUSTED).send(&gw.app).await;
    assert_eq!(r.status, 403);

    let r = Call::get("/metrics").send(&gw.admin).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let m = r.text();
    assert!(
        m.contains("vestibule_requests_total{route=\"verify\",outcome=\"forbidden\"} 1"),
        "{m}"
    );
    assert!(m.ends_with("# EOF\n"), "{m}");

    let r = Call::post("/metrics").send(&gw.admin).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    // The main router's endpoints are not on the admin listener.
    for path in ["/nope", "/.vestibule/verify", "/.vestibule/healthz", "/"] {
        let r = Call::get(path).send(&gw.admin).await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Nor are the admin endpoints on the main one: `/metrics` is an app
    // path there, decided like any other (anonymous on `app`: 401).
    let r = Call::get("/metrics").send(&gw.app).await;
    r.assert_plain(401);
}

#[tokio::test]
async fn verify_answers_an_identity_with_every_profile_header() {
    let gw = Gw::new(&gateway_config()).await;
    let r = verify("/app")
        .header("Remote-User", "alice")
        .header("Remote-Groups", "admins")
        .send(&gw.app)
        .await;
    r.assert_plain(200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert_eq!(r.header("remote-groups"), Some("admins"));
    // Sent even when empty, so that the proxy overwrites a client's value.
    assert_eq!(r.header("remote-email"), Some(""));
    // No credential was consumed and the client sent no Authorization.
    assert_eq!(r.header("x-vestibule-authorization"), Some(""));

    // An app's own Authorization is handed back for the proxy to forward.
    let r = verify("/app")
        .header("Remote-User", "alice")
        .header("Authorization", "Bearer app-own-token")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-vestibule-authorization"),
        Some("Bearer app-own-token")
    );

    // HEAD: the same headers, no body.
    let r = Call::new("HEAD", "/.vestibule/verify")
        .header("X-Original-URI", "/app")
        .header("Remote-User", "alice")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert!(r.body.is_empty());

    // The route's policy: `admins` needs the group.
    let r = verify("/admins/x")
        .header("Remote-User", "alice")
        .header("Remote-Groups", "admins")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    let r = verify("/admins/x")
        .header("Remote-User", "bob")
        .send(&gw.app)
        .await;
    r.assert_plain(403);
    assert_eq!(r.header("remote-user"), None);
}

#[tokio::test]
async fn verify_on_a_public_route_withholds_every_identity() {
    let gw = Gw::new(&gateway_config()).await;
    for identity in [&[][..], &[("Remote-User", "alice")][..]] {
        let r = verify("/public/x").headers(identity).send(&gw.app).await;
        r.assert_plain(200);
        for h in PROFILE {
            assert_eq!(r.header(h), Some(""), "{h} with {identity:?}");
        }
    }
}

#[tokio::test]
async fn verify_without_identity_names_the_login_url_or_redirects_browsers() {
    let gw = Gw::new(&gateway_config()).await;
    let login = "https://sso.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fapp%3Fx%3D1";
    // nginx: always a 401, the login URL in a header for `error_page`.
    for accept in ["text/html", "application/json"] {
        let r = verify("/app?x=1")
            .header("Accept", accept)
            .send(&gw.app)
            .await;
        r.assert_plain(401);
        assert_eq!(r.header("x-vestibule-login-url"), Some(login));
        assert_eq!(r.header("location"), None);
        assert_eq!(r.header("remote-user"), None);
    }
    // Caddy, Traefik: `?redirect=1` (or `true`) makes it a 302 for browsers…
    for q in ["1", "true"] {
        let r = Call::get(&format!("/.vestibule/verify?redirect={q}"))
            .header("X-Original-URI", "/app?x=1")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https")
            .html()
            .send(&gw.app)
            .await;
        r.assert_plain(302);
        assert_eq!(r.header("location"), Some(login));
    }
    // …and still a 401 for API clients.
    let r = Call::get("/.vestibule/verify?redirect=1")
        .header("X-Original-URI", "/app")
        .header("Accept", "application/json")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401);
    // A route without a login URL: a bare 401.
    let r = verify("/admins").html().send(&gw.app).await;
    r.assert_plain(401);
    assert_eq!(r.header("x-vestibule-login-url"), None);
}

#[tokio::test]
async fn verify_answers_only_trusted_proxies() {
    let gw = Gw::new(&gateway_config()).await;
    // GHSA-7x63-xv5r-3p2x: an untrusted peer describing a request, with or
    // without identity headers, learns nothing.
    for identity in [&[][..], &[("Remote-User", "alice")][..]] {
        let r = verify("/public")
            .from(UNTRUSTED)
            .headers(identity)
            .send(&gw.app)
            .await;
        r.assert_plain(403);
        assert_eq!(
            r.text(),
            "Forward-auth requests are answered only for trusted proxies.\n"
        );
        for h in PROFILE {
            assert_eq!(r.header(h), None, "{h}");
        }
    }
    // Without connection facts, the caller is nobody trusted.
    let mut req = http::Request::get("/.vestibule/verify")
        .header("X-Original-URI", "/public")
        .body(Body::empty())
        .unwrap();
    req.headers_mut()
        .insert(http::header::HOST, HeaderValue::from_static("app.test"));
    let r = gw.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn verify_needs_one_unambiguous_original_request() {
    let gw = Gw::new(&gateway_config()).await;
    let app = &gw.app;
    let bad = |c: Call| async move {
        let r = c.send(app).await;
        r.assert_plain(400);
        assert!(
            r.text().starts_with("Bad forward-auth request: "),
            "{}",
            r.text()
        );
        assert_eq!(r.header("remote-user"), None);
    };
    // Never matched on the verify path itself.
    bad(Call::get("/.vestibule/verify").header("Remote-User", "alice")).await;
    bad(Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/public")
        .header("X-Original-URI", "/app"))
    .await;
    bad(Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/public")
        .header("X-Forwarded-Uri", "/app"))
    .await;
    bad(Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/public")
        .header("X-Forwarded-Host", "a.test")
        .header("X-Forwarded-Host", "b.test"))
    .await;
    // The Traefik/Caddy spelling alone is enough.
    let r = Call::get("/.vestibule/verify")
        .header("X-Forwarded-Uri", "/public")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    // The same value under both spellings agrees.
    let r = Call::get("/.vestibule/verify")
        .header("X-Forwarded-Uri", "/public")
        .header("X-Original-URI", "/public")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn verify_refuses_ambiguous_identity_with_400() {
    let gw = Gw::new(&gateway_config()).await;
    for (a, b) in [
        (("Remote-User", "alice"), ("Remote-User", "bob")),
        (("Remote-User", "alice"), ("Remote_User", "alice")),
        // The same value twice is still two identity headers.
        (("Remote-User", "alice"), ("Remote-User", "alice")),
    ] {
        let r = verify("/app").headers(&[a, b]).send(&gw.app).await;
        r.assert_plain(400);
        assert!(
            r.text()
                .starts_with("The identity sent by the SSO proxy was refused"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("remote-user"), None);
    }
}

#[tokio::test]
async fn verify_refuses_unknown_apps_and_other_methods() {
    // No catch-all route.
    let gw = Gw::new(&config(
        "",
        "",
        &route("public", "/public", NO_UPSTREAM, "auth = \"public\""),
    ))
    .await;
    // An unknown app is a 403, not a 404 (nginx would make a 404 a 500).
    let r = verify("/elsewhere").send(&gw.app).await;
    r.assert_plain(403);
    assert_eq!(r.text(), "No app is configured at this address.\n");
    let r = Call::post("/.vestibule/verify")
        .header("X-Original-URI", "/public")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
}

#[tokio::test]
async fn unknown_own_paths_get_vestibules_404_not_an_app() {
    // `app` takes every path, so a mistyped /.vestibule/ path used to reach it.
    let gw = Gw::new(&gateway_config()).await;
    let paths = [
        "/.vestibule",
        "/.vestibule/",
        "/.vestibule/nope",
        "/.vestibule/acount",
        "/.vestibule/devices/x/y",
        "/.vestibule/verify/extra",
        "/.vestibule/pair/poll/x",
        "/.vestibule/healthz/",
    ];
    for path in paths {
        for method in ["GET", "POST", "DELETE"] {
            let r = Call::new(method, path).html().send(&gw.app).await;
            assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
            r.assert_page_headers();
            assert!(
                r.header("content-type").unwrap().starts_with("text/html"),
                "{method} {path}"
            );
            assert!(
                r.text().contains("vestibule has no page at this address"),
                "{path}"
            );
        }
        // Without Accept: text/html, the same 404 as text.
        let r = Call::get(path).send(&gw.app).await;
        r.assert_plain(404);
    }
    // The known endpoints still answer, and an app path is still the app's
    // (anonymous on `app`: 401).
    Call::get("/.vestibule/healthz")
        .send(&gw.app)
        .await
        .assert_plain(200);
    assert_eq!(verify("/admins").send(&gw.app).await.status, 401);
    Call::get("/vestibule/nope")
        .send(&gw.app)
        .await
        .assert_plain(401);
    Call::get("/.vestibulex")
        .send(&gw.app)
        .await
        .assert_plain(401);

    // A verify path of one's own is matched before the catch-all.
    let routes = route("app", "/", NO_UPSTREAM, "");
    let gw = Gw::new(&config(
        "",
        "[forward_auth]\npath = \"/.vestibule/check\"\n",
        &routes,
    ))
    .await;
    let r = Call::get("/.vestibule/check")
        .header("X-Original-URI", "/x")
        .header("Remote-User", "alice")
        .send(&gw.app)
        .await;
    r.assert_plain(200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    Call::get("/.vestibule/verify")
        .send(&gw.app)
        .await
        .assert_plain(404);
}
