//! `/.vestibule/login` and `/.vestibule/logout`. The open-redirect payload
//! catalogue stays in `redirects.rs`; here each route's statuses, headers
//! and refusals.

use vestibule_core::secret::hash_token;

use super::*;

const LOGIN: &str = "/.vestibule/login";
const LOGOUT: &str = "/.vestibule/logout";

/// As `redirects.rs`: a login and a logout URL on the front, one extra
/// return origin, accounts for page sessions.
fn login_config() -> String {
    accounts_config(
        "auto",
        "[auth]\nlogin_url = \"https://sso.test/login?rd={url}\"\n\
         logout_url = \"https://sso.test/logout?rd={url}\"\n\
         redirect_origins = [\"https://photos.test\"]\n",
        &route("app", "/", NO_UPSTREAM, ""),
    )
}

fn with_rd(path: &str, param: &str, value: &str) -> String {
    format!("{path}?{param}={}", query_value(value))
}

#[tokio::test]
async fn a_signed_in_browser_goes_to_a_checked_return_address() {
    let gw = Gw::new(&login_config()).await;
    let alice = [("Remote-User", "alice")];
    for (param, rd, want) in [
        ("rd", "/photos?id=3", "http://app.test/photos?id=3"),
        (
            "return_to",
            "https://photos.test/a",
            "https://photos.test/a",
        ),
    ] {
        let r = Call::get(&with_rd(LOGIN, param, rd))
            .headers(&alice)
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 303, "{rd}: {}", r.text());
        assert_eq!(r.header("location"), Some(want));
        r.assert_page_headers();
        // Login starts no page session.
        assert!(r.set_cookies().is_empty());
    }
    // No return address: vestibule's root, as the browser reached it.
    let r = Call::get(LOGIN).headers(&alice).send(&gw.app).await;
    assert_eq!(r.header("location"), Some("http://app.test/"));
    let r = Call::get(LOGIN).tls().headers(&alice).send(&gw.app).await;
    assert_eq!(r.header("location"), Some("https://app.test/"));
}

#[tokio::test]
async fn login_refuses_other_origins_and_two_addresses_with_400() {
    let gw = Gw::new(&login_config()).await;
    for who in [&[("Remote-User", "alice")][..], &[][..]] {
        for path in [
            with_rd(LOGIN, "rd", "https://evil.test/"),
            with_rd(LOGIN, "return_to", "//evil.test/"),
            format!("{LOGIN}?rd=%2Fa&return_to=%2Fb"),
        ] {
            let r = Call::get(&path).headers(who).html().send(&gw.app).await;
            assert_eq!(r.status, 400, "{path} {who:?}");
            assert_eq!(r.header("location"), None);
            assert!(r.text().contains("Link refused"), "{}", r.text());
            r.assert_page_headers();
        }
    }
    // No Host, so no origin to compare with.
    let r = Call::get(LOGIN).host(None).send(&gw.app).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "The request has no usable Host.\n");
}

#[tokio::test]
async fn anonymous_login_goes_through_the_front_whoever_claims_otherwise() {
    let gw = Gw::new(&login_config()).await;
    let path = with_rd(LOGIN, "rd", "https://photos.test/album");
    let back = query_value(&format!("http://app.test{path}"));
    let want = format!("https://sso.test/login?rd={back}");
    for (from, identity) in [
        (TRUSTED, &[][..]),
        (UNTRUSTED, &[("Remote-User", "admin")][..]),
    ] {
        let r = Call::get(&path)
            .from(from)
            .headers(identity)
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 303, "{from}");
        assert_eq!(r.header("location"), Some(want.as_str()));
        r.assert_page_headers();
    }
    // An ambiguous identity is refused, not taken as anonymous.
    let r = Call::get(&path)
        .headers(&[("Remote-User", "alice"), ("Remote_User", "bob")])
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), None);
}

#[tokio::test]
async fn without_a_login_url_anonymous_login_is_a_401() {
    let gw = Gw::new(&config("", "", &route("app", "/", NO_UPSTREAM, ""))).await;
    let r = Call::get(LOGIN).send(&gw.app).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.text(),
        "Sign in through your SSO portal, then open this page again.\n"
    );
    let r = Call::get(LOGIN).html().send(&gw.app).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    r.assert_page_headers();
}

#[tokio::test]
async fn logout_ends_the_session_clears_the_cookie_and_hands_over() {
    let gw = Gw::new(&login_config()).await;
    let b = Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "alice")]).await;
    let alive = async || {
        gw.store()
            .session(&hash_token(b.token()))
            .await
            .unwrap()
            .is_some()
    };
    // A refused return address changes nothing, cookie included.
    let r = b
        .call("GET", &with_rd(LOGOUT, "return_to", "https://evil.test/"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.set_cookies().is_empty());
    assert!(alive().await);

    let r = b
        .call(
            "GET",
            &with_rd(LOGOUT, "return_to", "https://photos.test/bye"),
        )
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("https://sso.test/logout?rd=https%3A%2F%2Fphotos.test%2Fbye")
    );
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    r.assert_page_headers();
    assert!(!alive().await, "the session outlived the 303");

    // POST too; no return address: the front gets vestibule's root. Over
    // TLS the cleared cookie is the __Host- one.
    for (call, root, https) in [
        (Call::post(LOGOUT), "http%3A%2F%2Fapp.test%2F", false),
        (Call::post(LOGOUT).tls(), "https%3A%2F%2Fapp.test%2F", true),
    ] {
        let r = call.send(&gw.app).await;
        assert_eq!(r.status, 303);
        assert_eq!(
            r.header("location"),
            Some(format!("https://sso.test/logout?rd={root}").as_str())
        );
        assert_eq!(r.set_cookies(), [clear_cookie(https)]);
    }
}

#[tokio::test]
async fn logout_without_a_front_sign_out() {
    let gw = Gw::new(&config("", "", &route("app", "/", NO_UPSTREAM, ""))).await;
    let r = Call::get(&with_rd(LOGOUT, "rd", "/bye"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("http://app.test/bye"));
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    let r = Call::get(LOGOUT).html().send(&gw.app).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("signed out"), "{}", r.text());
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    r.assert_page_headers();
}

#[tokio::test]
async fn login_and_logout_take_only_their_methods() {
    let gw = Gw::new(&login_config()).await;
    assert_405s(
        &gw.app,
        &[
            ("POST", LOGIN, "GET,HEAD"),
            ("PUT", LOGIN, "GET,HEAD"),
            ("DELETE", LOGOUT, "GET,HEAD,POST"),
        ],
    )
    .await;
}
