//! `/.vestibule/login` and `/.vestibule/logout`, and the open-redirect
//! class: a return address (`rd`, `return_to`) may only lead to configured
//! origins (SECURITY.md).

use std::sync::Arc;

use vestibule_core::secret::hash_token;
use vestibule_store::{Store, StoreConfig};

use crate::support::*;

fn gateway_config(up: std::net::SocketAddr, data: &std::path::Path) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [auth]\nlogin_url = \"https://sso.test/login?rd={{url}}\"\n\
         logout_url = \"https://sso.test/logout?rd={{url}}\"\n\
         redirect_origins = [\"https://photos.test\", \"https://[::1]:8443\"]\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n",
        data.display()
    );
    let routes = [
        route("app", "/", up, ""),
        format!(
            "[[route]]\nname = \"music\"\nhost = \"music.test\"\nupstream = \"http://{up}\"\n\n\
             [[route]]\nname = \"any\"\nhost = \"*.wild.test\"\nupstream = \"http://{up}\"\n"
        ),
    ]
    .concat();
    config(&src, &routes)
}

fn login_path(param: &str, value: &str) -> String {
    let enc = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
    format!("/.vestibule/login?{param}={enc}")
}

/// Every classic open-redirect payload is refused with 400, signed in or
/// not, on login and on logout; nothing is redirected anywhere.
#[tokio::test]
async fn return_addresses_only_lead_to_configured_origins() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, &gateway_config(up, &data), &[]).await;
    let alice = [("Remote-User", "alice")];

    let refused = [
        "https://evil.test/",
        "//evil.test/",
        "/\\evil.test",
        "\\\\evil.test",
        "/\t/evil.test",
        "https://photos.test@evil.test/",
        "https://evil.test\\@photos.test/",
        "https://photos.test.evil.test/",
        "https:evil.test",
        "https:/evil.test",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/%2F%2Fevil.test",
        "/%5cevil.test",
        "http://photos.test/",         // wrong scheme
        "https://photos.test:8443/",   // wrong port
        "https://[::1]/",              // wrong port
        "https://x.wild.test/",        // wildcard hosts are not expanded
        "https://photos.test./",       // trailing dot
        "https://ph\u{00f6}tos.test/", // non-ASCII
        "https://sso.test/",           // the front is not a return address
        "",
    ];
    for payload in refused {
        for param in ["rd", "return_to"] {
            for who in [&alice[..], &[][..]] {
                let r = Raw::get(gw.addr, TRUSTED, &login_path(param, payload), who).await;
                assert_eq!(r.status, 400, "login {param}={payload:?}: {}", r.text());
                assert_eq!(r.header("location"), None, "{payload:?}");
            }
            let path = login_path(param, payload).replace("/login", "/logout");
            let r = Raw::get(gw.addr, TRUSTED, &path, &alice).await;
            assert_eq!(r.status, 400, "logout {param}={payload:?}");
            assert_eq!(r.header("location"), None, "{payload:?}");
        }
    }

    // Two different return addresses are ambiguous.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/login?rd=%2Fa&return_to=%2Fb",
        &alice,
    )
    .await;
    assert_eq!(r.status, 400);

    // Allowed: vestibule's own origin (relative or absolute), the
    // configured origins, and routes' exact hosts in either scheme.
    let allowed = [
        (
            "/photos/album?id=3#top",
            "http://app.test/photos/album?id=3#top",
        ),
        ("/", "http://app.test/"),
        (
            "/ok?rd=https://evil.test/",
            "http://app.test/ok?rd=https://evil.test/",
        ),
        ("https://photos.test/a", "https://photos.test/a"),
        ("HTTPS://PHOTOS.TEST:443/b", "https://photos.test/b"),
        ("https://[::1]:8443/c", "https://[::1]:8443/c"),
        ("https://music.test/d", "https://music.test/d"),
        ("http://music.test/e", "http://music.test/e"),
    ];
    for (rd, want) in allowed {
        let r = Raw::get(gw.addr, TRUSTED, &login_path("rd", rd), &alice).await;
        assert_eq!(r.status, 303, "{rd:?}: {}", r.text());
        assert_eq!(r.header("location"), Some(want), "{rd:?}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // Without a return address, a signed-in browser lands on vestibule's root.
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/login", &alice).await;
    assert_eq!(r.header("location"), Some("http://app.test/"));
}

/// Anonymous: login goes to the SSO front with a way back to the login
/// page, which then forwards to `rd`. An untrusted peer's identity headers
/// count for nothing here either.
#[tokio::test]
async fn login_sends_anonymous_browsers_through_the_front_and_back() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, &gateway_config(up, &data), &[]).await;
    let path = login_path("rd", "https://photos.test/album");
    for (peer, headers) in [
        (TRUSTED, vec![]),
        (UNTRUSTED, vec![("Remote-User", "admin")]),
    ] {
        let r = Raw::get(gw.addr, peer, &path, &headers).await;
        assert_eq!(r.status, 303, "{peer}");
        let location = r.header("location").unwrap();
        let back = format!("http://app.test{path}");
        const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let enc = percent_encoding::utf8_percent_encode(&back, UNRESERVED);
        assert_eq!(location, format!("https://sso.test/login?rd={enc}"));
    }
}

/// Logout ends vestibule's page session on disk before answering, clears
/// the cookie, and hands over to the front's sign-out with the checked
/// return address.
#[tokio::test]
async fn logout_ends_the_session_then_hands_over_to_the_front() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, &gateway_config(up, &data), &[]).await;
    let store: Arc<dyn Store> = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        data.join("vestibule.db").display()
    )))
    .await
    .unwrap();

    let alice = [("Remote-User", "alice")];
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/account", &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && !v.contains("Max-Age=0"))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    let cookie = set.split(';').next().unwrap().to_owned();
    let token = cookie.split_once('=').unwrap().1.to_owned();
    assert!(store.session(&hash_token(&token)).await.unwrap().is_some());

    // A refused return address changes nothing.
    let with_cookie = [("Remote-User", "alice"), ("Cookie", cookie.as_str())];
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/logout?return_to=https%3A%2F%2Fevil.test%2F",
        &with_cookie,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(store.session(&hash_token(&token)).await.unwrap().is_some());

    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/logout?return_to=https%3A%2F%2Fphotos.test%2Fbye",
        &with_cookie,
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("https://sso.test/logout?rd=https%3A%2F%2Fphotos.test%2Fbye")
    );
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "set-cookie" && v.contains("Max-Age=0")),
        "the cookie is cleared"
    );
    // Gone on disk by the time the 303 arrived.
    assert!(store.session(&hash_token(&token)).await.unwrap().is_none());
    let audit = store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("session-end".into()),
            subject: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "session-end" && e.detail == "logout"),
        "{audit:?}"
    );

    // POST works too, and with no return address the front gets
    // vestibule's own root.
    let req = request("POST", "/.vestibule/logout", &[("Content-Length", "0")]);
    let r = Raw::send(gw.addr, TRUSTED, &req).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("https://sso.test/logout?rd=http%3A%2F%2Fapp.test%2F")
    );
}

/// Without `logout_url`, logout goes straight to the return address, or
/// says so on a page.
#[tokio::test]
async fn logout_without_a_front_sign_out() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/logout?rd=%2Fbye", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("http://app.test/bye"));
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/logout",
        &[("Accept", "text/html")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("signed out"), "{}", r.text());
}
