//! The fallback: everything that is not vestibule's own goes through the
//! pipeline to an app. Its refusals need no upstream; one pass-through
//! goes to whoami on a loopback socket.

use super::*;

/// `app` needs an identity and has a login URL; `music` takes Basic device
/// credentials; `admins` needs the group; `public` is public. No catch-all.
fn proxy_config(upstream: &str) -> String {
    let routes = [
        route(
            "app",
            "/app",
            upstream,
            "login_url = \"https://sso.test/?rd={url}\"",
        ),
        route("music", "/music", upstream, "credentials = [\"basic\"]"),
        route("admins", "/admins", upstream, "allow_groups = [\"admins\"]"),
        route("public", "/public", upstream, "auth = \"public\""),
    ]
    .concat();
    accounts_config("auto", "", &routes)
}

#[tokio::test]
async fn no_route_is_404_and_unknown_vestibule_paths_are_vestibules_404() {
    let gw = Gw::new(&proxy_config(NO_UPSTREAM)).await;
    for path in ["/", "/elsewhere"] {
        let r = Call::get(path)
            .headers(&[("Remote-User", "alice")])
            .send(&gw.app)
            .await;
        r.assert_plain(404);
        assert_eq!(r.text(), "No app is configured at this address.\n");
        // Not a page of vestibule's: no page headers.
        assert_eq!(r.header("content-security-policy"), None, "{path}");
    }
    // Under /.vestibule/ the path is vestibule's: its own 404 page.
    for path in ["/.vestibule/nope", "/.vestibule/account/x"] {
        let r = Call::get(path)
            .headers(&[("Remote-User", "alice")])
            .send(&gw.app)
            .await;
        r.assert_plain(404);
        assert_eq!(r.text(), "vestibule has no page at this address.\n");
        r.assert_page_headers();
    }
}

#[tokio::test]
async fn anonymous_browsers_are_sent_to_login_others_get_401() {
    let gw = Gw::new(&proxy_config(NO_UPSTREAM)).await;
    let r = Call::get("/app/page?x=1").html().send(&gw.app).await;
    r.assert_plain(302);
    let back = query_value("http://app.test/app/page?x=1");
    assert_eq!(
        r.header("location"),
        Some(format!("https://sso.test/?rd={back}").as_str())
    );
    // Behind a trusted front that terminates TLS, the way back is https.
    let r = Call::get("/app/page")
        .header("X-Forwarded-Proto", "https")
        .html()
        .send(&gw.app)
        .await;
    let back = query_value("https://app.test/app/page");
    assert_eq!(
        r.header("location"),
        Some(format!("https://sso.test/?rd={back}").as_str())
    );
    // API clients: a 401, no redirect, no challenge on a route without
    // device credentials.
    let r = Call::get("/app/page").send(&gw.app).await;
    r.assert_plain(401);
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("www-authenticate"), None);
    // A route taking Basic credentials challenges (RFC 9110 §11.6.1), so
    // WebDAV clients send their password; no login URL there.
    for html in [false, true] {
        let c = Call::get("/music/rest/ping");
        let r = if html { c.html() } else { c }.send(&gw.app).await;
        if html {
            // A browser's cancelled Basic prompt shows the common page.
            assert_eq!(r.status, 401);
            assert!(r.text().contains("id=\"refusal\" data-status=\"401\""));
        } else {
            r.assert_plain(401);
        }
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"vestibule\", charset=\"UTF-8\"")
        );
        // The proxy neither makes nor clears a page session.
        assert!(r.set_cookies().is_empty());
    }
}

#[tokio::test]
async fn an_untrusted_peers_identity_headers_are_ignored() {
    let gw = Gw::new(&proxy_config(NO_UPSTREAM)).await;
    let r = Call::get("/app/x")
        .from(UNTRUSTED)
        .headers(&[("Remote-User", "admin"), ("Remote-Groups", "admins")])
        .send(&gw.app)
        .await;
    r.assert_plain(401);
    // Nor does it become an account.
    let found = gw
        .store()
        .account_by_identity(&IdentityKey::new("authelia", "admin"))
        .await
        .unwrap();
    assert!(found.is_none());
}

#[tokio::test]
async fn ambiguous_identity_and_paths_are_400_policy_refusals_403() {
    let gw = Gw::new(&proxy_config(NO_UPSTREAM)).await;
    for pair in [
        [("Remote-User", "alice"), ("Remote-User", "bob")],
        [("Remote-User", "alice"), ("Remote_User", "alice")],
    ] {
        let r = Call::get("/app/x").headers(&pair).send(&gw.app).await;
        r.assert_plain(400);
        assert!(
            r.text()
                .starts_with("The identity sent by the SSO proxy was refused")
        );
    }
    // A path that reads differently upstream.
    for path in ["/public/..%2Fapp", "/public/..;/app", "/public//../app"] {
        let r = Call::get(path).send(&gw.app).await;
        r.assert_plain(400);
        assert_eq!(
            r.text(),
            "The request path is malformed or ambiguous.\n",
            "{path}"
        );
    }
    let r = Call::get("/admins/x")
        .headers(&[("Remote-User", "bob")])
        .send(&gw.app)
        .await;
    r.assert_plain(403);
    assert_eq!(r.text(), "Your account is not allowed to use this app.\n");
    // A malformed Basic credential: 401 with the challenge.
    let r = Call::get("/music/x")
        .header("Authorization", "Basic !!!")
        .send(&gw.app)
        .await;
    r.assert_plain(401);
    assert!(r.header("www-authenticate").is_some());
}

#[tokio::test]
async fn a_pending_account_is_told_so_by_the_proxy() {
    let routes = route("app", "/app", NO_UPSTREAM, "");
    let gw = Gw::new(&accounts_config("approval", "", &routes)).await;
    let r = Call::get("/app")
        .headers(&[("Remote-User", "erin")])
        .html()
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Waiting for approval"));
    // The pages' CSP: the stylesheet only, no script.
    assert_eq!(r.header("content-security-policy"), Some(PAGE_CSP));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn an_allowed_request_reaches_the_app_with_only_vouched_identity() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap().to_string();
    let server = tokio::spawn(vestibule::tools::whoami::serve(l));
    let gw = Gw::new(&proxy_config(&up)).await;

    let r = Call::get("/app/hello?q=1")
        .headers(&[("Remote-User", "alice"), ("Remote-Groups", "users")])
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["uri"], "/app/hello?q=1");
    let seen = |name: &str| -> Vec<String> {
        j["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|p| p[1].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(seen("remote-user"), ["alice"]);
    assert_eq!(seen("remote-groups"), ["users"]);
    assert_eq!(seen("x-forwarded-for"), ["127.0.0.1"]);

    // On a public route an untrusted client's identity headers, in any
    // spelling, are removed before the app.
    let r = Call::get("/public/x")
        .from(UNTRUSTED)
        .headers(&[("Remote-User", "admin"), ("Remote_User", "admin")])
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let names: Vec<String> = j["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p[0].as_str()
                .unwrap()
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .collect();
    assert!(!names.contains(&"remote-user".to_owned()), "{names:?}");
    server.abort();
}

/// Issue 20: the upstream errors a browser can meet (502, 504) are the
/// common styled page, with a way on; an API client gets plain text.
#[tokio::test]
async fn upstream_errors_are_the_common_page_for_browsers() {
    // 502: nothing listens on the discard port.
    let gw = Gw::new(&proxy_config(NO_UPSTREAM)).await;
    let r = Call::get("/public/x").html().send(&gw.app).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("id=\"refusal\" data-status=\"502\""),
        "{}",
        r.text()
    );
    let r = Call::get("/public/x").send(&gw.app).await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("<html"), "{}", r.text());

    // 504: an app that accepts and never answers, with a short timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let cfg = proxy_config(&addr).replacen(
        "[[route]]",
        "[upstream]\nresponse_timeout = \"200ms\"\n\n[[route]]",
        1,
    );
    let gw = Gw::new(&cfg).await;
    let r = Call::get("/public/x").html().send(&gw.app).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.text().contains("id=\"refusal\" data-status=\"504\""),
        "{}",
        r.text()
    );
    held.abort();
}
