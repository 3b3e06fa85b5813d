//! The account page and its session forms, and the admin page and its
//! account form.

use vestibule_core::secret::hash_token;
use vestibule_store::AccountStatus;

use super::*;

const ACCOUNT: &str = "/.vestibule/account";
const REVOKE: &str = "/.vestibule/account/sessions/revoke";
const REVOKE_ALL: &str = "/.vestibule/account/sessions/revoke-all";
const ADMIN: &str = "/.vestibule/admin";
const ADMIN_ACCOUNTS: &str = "/.vestibule/admin/accounts";

/// Every page a browser GETs under `/.vestibule/`.
const PAGES: [&str; 4] = [
    ACCOUNT,
    ADMIN,
    "/.vestibule/devices",
    "/.vestibule/devices/pair/1",
];

/// Accounts with `provisioning`, a login URL, roles from groups, one app.
fn pages_config(provisioning: &str) -> String {
    accounts_config(
        provisioning,
        "[accounts.roles]\nadmin = [\"admins\"]\n\n[auth]\nlogin_url = \"https://sso.test/login?rd={url}\"\n",
        &route("app", "/", NO_UPSTREAM, ""),
    )
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn the_account_page_starts_one_session_and_then_reuses_it() {
    let gw = Gw::new(&pages_config("auto")).await;
    let alice = [("Remote-User", "alice")];
    let r = Call::get(ACCOUNT).headers(&alice).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.set_cookies().len(), 1);
    let cookie = session_pair(r.new_session().unwrap(), false);
    let csrf = r.csrf();
    assert!(!csrf.is_empty());
    assert!(r.text().contains("alice"));
    // Stored by its SHA-256 only.
    let token = cookie.split_once('=').unwrap().1;
    let stored = gw.store().session(&hash_token(token)).await.unwrap();
    assert!(stored.is_some());

    // The cookie is presented: same session, no new cookie, same token.
    let r = Call::get(ACCOUNT)
        .headers(&alice)
        .header("Cookie", &cookie)
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    r.assert_page_headers();
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(r.csrf(), csrf);
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure() {
    let gw = Gw::new(&pages_config("auto")).await;
    let alice = [("Remote-User", "alice")];
    // A TLS listener.
    let r = Call::get(ACCOUNT).tls().headers(&alice).send(&gw.app).await;
    assert_eq!(r.status, 200);
    let tls_cookie = session_pair(r.new_session().unwrap(), true);
    // HTTPS as the trusted front says.
    let r = Call::get(ACCOUNT)
        .headers(&alice)
        .header("X-Forwarded-Proto", "https")
        .send(&gw.app)
        .await;
    session_pair(r.new_session().unwrap(), true);
    // The __Host- cookie is the session over HTTPS.
    let r = Call::get(ACCOUNT)
        .tls()
        .headers(&alice)
        .header("Cookie", &tls_cookie)
        .send(&gw.app)
        .await;
    assert!(r.set_cookies().is_empty());
    // Over plain HTTP a cookie by that name is not looked at: a new session.
    let r = Call::get(ACCOUNT)
        .headers(&alice)
        .header("Cookie", &tls_cookie)
        .send(&gw.app)
        .await;
    session_pair(r.new_session().unwrap(), false);
    // An untrusted peer's X-Forwarded-Proto is not believed: the cookie it
    // is told to drop is the plain one.
    let r = Call::get(ACCOUNT)
        .from(UNTRUSTED)
        .header("X-Forwarded-Proto", "https")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    let r = Call::get(ACCOUNT).tls().send(&gw.app).await;
    assert_eq!(r.set_cookies(), [clear_cookie(true)]);
}

#[tokio::test]
async fn anonymous_browsers_go_to_the_login_url_and_others_get_401() {
    let gw = Gw::new(&pages_config("auto")).await;
    for page in PAGES {
        let r = Call::get(page).html().send(&gw.app).await;
        assert_eq!(r.status, 302, "{page}: {}", r.text());
        let back = query_value(&format!("http://app.test{page}"));
        assert_eq!(
            r.header("location"),
            Some(format!("https://sso.test/login?rd={back}").as_str())
        );
        assert_eq!(r.set_cookies(), [clear_cookie(false)], "{page}");
        r.assert_page_headers();

        let r = Call::get(page)
            .header("Accept", "application/json")
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 401, "{page}");
        assert_eq!(r.header("location"), None);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.set_cookies(), [clear_cookie(false)], "{page}");
        r.assert_page_headers();
    }
    // Without a login URL, browsers get the 401 as a page.
    let gw = Gw::new(&accounts_config(
        "auto",
        "",
        &route("app", "/", NO_UPSTREAM, ""),
    ))
    .await;
    let r = Call::get(ACCOUNT).html().send(&gw.app).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    r.assert_page_headers();
}

#[tokio::test]
async fn an_untrusted_peers_identity_headers_count_for_nothing() {
    let gw = Gw::new(&pages_config("auto")).await;
    let spoof = [("Remote-User", "root"), ("Remote-Groups", "admins")];
    for page in PAGES {
        let r = Call::get(page)
            .from(UNTRUSTED)
            .headers(&spoof)
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 401, "{page}: {}", r.text());
        assert!(r.new_session().is_none());
    }
    // No account was made for the name it sent.
    let found = gw
        .store()
        .account_by_identity(&IdentityKey::new("authelia", "root"))
        .await
        .unwrap();
    assert!(found.is_none());
}

#[tokio::test]
async fn ambiguous_identity_headers_are_a_400_with_no_session() {
    let gw = Gw::new(&pages_config("auto")).await;
    for page in PAGES {
        for pair in [
            [("Remote-User", "alice"), ("Remote-User", "bob")],
            [("Remote-User", "alice"), ("Remote_User", "alice")],
        ] {
            let r = Call::get(page).headers(&pair).send(&gw.app).await;
            assert_eq!(r.status, 400, "{page} {pair:?}: {}", r.text());
            assert!(
                r.text()
                    .starts_with("The identity sent by the SSO proxy was refused"),
                "{}",
                r.text()
            );
            assert!(r.set_cookies().is_empty());
            r.assert_page_headers();
        }
    }
}

#[tokio::test]
async fn session_forms_need_this_sessions_csrf_token() {
    let gw = Gw::new(&pages_config("auto")).await;
    let alice = [("Remote-User", "alice")];
    let b = Browser::open(&gw.app, ACCOUNT, &alice).await;
    // A second session of the same person, elsewhere.
    let other = Browser::open(&gw.app, ACCOUNT, &alice).await;
    assert_ne!(b.csrf, other.csrf);
    let other_hash = hash_token(other.token());
    let alive = async |token: &str| {
        gw.store()
            .session(&hash_token(token))
            .await
            .unwrap()
            .is_some()
    };

    for path in [REVOKE, REVOKE_ALL] {
        // Not a form at all, or a form without the field: axum's `Form`
        // refuses before the handler runs.
        let r = b.call("POST", path).send(&gw.app).await;
        assert_eq!(r.status, 415, "{path}: {}", r.text());
        let r = b.call("POST", path).form("x=1").send(&gw.app).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        // Empty, wrong, or another session's token: 403.
        for bad in [String::new(), format!("{}x", b.csrf), other.csrf.clone()] {
            let r = b
                .call("POST", path)
                .form(&format!("csrf={bad}&session={}", hex(&other_hash)))
                .send(&gw.app)
                .await;
            assert_eq!(r.status, 403, "{path} csrf={bad}: {}", r.text());
            assert!(r.text().contains("security token does not match"));
            r.assert_page_headers();
            assert!(r.set_cookies().is_empty());
        }
        assert!(alive(b.token()).await && alive(other.token()).await);
    }

    // The right token ends the other session, only that one.
    let r = b
        .call("POST", REVOKE)
        .form(&format!("csrf={}&session={}", b.csrf, hex(&other_hash)))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(ACCOUNT));
    r.assert_page_headers();
    // Only the flash message: the session stays.
    let flash = flash_cookie(&r);
    assert_eq!(r.set_cookies().len(), 1);
    assert!(!alive(other.token()).await && alive(b.token()).await);
    let r = b
        .call("GET", ACCOUNT)
        .header("Cookie", &format!("{}; {flash}", b.cookie))
        .send(&gw.app)
        .await;
    assert!(r.text().contains("id=\"flash\">The session is ended."));
    // A session that is not hers is left alone, and answered the same way.
    let bob = Browser::open(&gw.app, ACCOUNT, &[("Remote-User", "bob")]).await;
    let r = b
        .call("POST", REVOKE)
        .form(&format!(
            "csrf={}&session={}",
            b.csrf,
            hex(&hash_token(bob.token()))
        ))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303);
    assert!(r.set_cookies().is_empty(), "no flash: nothing ended");
    assert!(alive(bob.token()).await);

    // Ending every session clears the cookie and goes on to sign out (a
    // page that would start a new session right away is no way out).
    let r = b
        .call("POST", REVOKE_ALL)
        .form(&format!("csrf={}", b.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/.vestibule/logout"));
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    assert!(!alive(b.token()).await);
}

#[tokio::test]
async fn forms_from_anonymous_browsers_are_refused_before_the_token() {
    let gw = Gw::new(&pages_config("auto")).await;
    // Every field any of these forms needs, so that the form parses.
    let form = "csrf=anything&session=00&id=1&action=approve&decision=confirm&route=app&name=x";
    for path in [
        REVOKE,
        REVOKE_ALL,
        ADMIN_ACCOUNTS,
        "/.vestibule/admin/devices/revoke",
        "/.vestibule/devices/new",
        "/.vestibule/devices/revoke",
        "/.vestibule/devices/pair",
        "/.vestibule/devices/pair/1",
    ] {
        let r = Call::post(path).form(form).send(&gw.app).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert_eq!(r.set_cookies(), [clear_cookie(false)]);
        r.assert_page_headers();
        let r = Call::post(path).html().form(form).send(&gw.app).await;
        assert_eq!(r.status, 302, "{path}");
        assert!(
            r.header("location")
                .unwrap()
                .starts_with("https://sso.test/login?rd=")
        );
    }
}

#[tokio::test]
async fn a_pending_account_sees_why_and_gets_no_session() {
    let gw = Gw::new(&pages_config("approval")).await;
    for page in PAGES {
        let r = Call::get(page)
            .headers(&[("Remote-User", "erin")])
            .html()
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 403, "{page}");
        assert!(r.text().contains("Waiting for approval"), "{}", r.text());
        assert!(r.set_cookies().is_empty());
        r.assert_page_headers();
    }
    set_status(&gw, "erin", AccountStatus::Disabled).await;
    let r = Call::get(ACCOUNT)
        .headers(&[("Remote-User", "erin")])
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "Your account is disabled.\n");
}

#[tokio::test]
async fn the_admin_page_and_its_form_are_for_admins_with_the_token() {
    let gw = Gw::new(&pages_config("approval")).await;
    let root = [("Remote-User", "root"), ("Remote-Groups", "admins")];
    let frank = [("Remote-User", "frank")];
    for who in [&root[..], &frank[..], &[("Remote-User", "erin")][..]] {
        let r = Call::get(ACCOUNT).headers(who).send(&gw.app).await;
        assert_eq!(r.status, 403, "pending first");
    }
    set_status(&gw, "root", AccountStatus::Active).await;
    set_status(&gw, "frank", AccountStatus::Active).await;
    let erin = gw.account_id("erin").await;
    let erin_status = async || gw.store().account(erin).await.unwrap().unwrap().status;

    // Not an admin: 403 on the page and on the form, token or not.
    let f = Browser::open(&gw.app, ACCOUNT, &frank).await;
    let r = f.call("GET", ADMIN).send(&gw.app).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        "This page is for administrators, and your account is not one.\n"
    );
    r.assert_page_headers();
    let r = f
        .call("POST", ADMIN_ACCOUNTS)
        .form(&format!("csrf={}&id={erin}&action=approve", f.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(erin_status().await, AccountStatus::Pending);

    // The admin sees erin waiting.
    let a = Browser::open(&gw.app, ADMIN, &root).await;
    let r = a.call("GET", ADMIN).send(&gw.app).await;
    assert_eq!(r.status, 200);
    r.assert_page_headers();
    assert!(r.text().contains("erin") && r.text().contains("waiting for approval"));

    let post = |body: String| a.call("POST", ADMIN_ACCOUNTS).form(&body).send(&gw.app);
    // Missing field: axum's `Form` answers.
    assert_eq!(post(format!("csrf={}&id={erin}", a.csrf)).await.status, 422);
    // Wrong or another session's token.
    for bad in ["", "nope", f.csrf.as_str()] {
        let r = post(format!("csrf={bad}&id={erin}&action=approve")).await;
        assert_eq!(r.status, 403, "{bad}");
        r.assert_page_headers();
    }
    assert_eq!(erin_status().await, AccountStatus::Pending);
    let r = post(format!("csrf={}&id={erin}&action=promote", a.csrf)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Unknown action.\n");
    let r = post(format!("csrf={}&id=999999&action=approve", a.csrf)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "No such account.\n");

    // Approve: 303 once it is on disk.
    let r = post(format!("csrf={}&id={erin}&action=approve", a.csrf)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(ADMIN));
    r.assert_page_headers();
    assert_eq!(erin_status().await, AccountStatus::Active);
    // Disable ends the account's sessions too.
    gw.state.accounts().unwrap().forget_all();
    let e = Browser::open(&gw.app, ACCOUNT, &[("Remote-User", "erin")]).await;
    let r = post(format!("csrf={}&id={erin}&action=disable", a.csrf)).await;
    assert_eq!(r.status, 303);
    assert_eq!(erin_status().await, AccountStatus::Disabled);
    let left = gw.store().session(&hash_token(e.token())).await.unwrap();
    assert!(left.is_none(), "a disabled account kept its session");
}

#[tokio::test]
async fn the_session_follows_what_the_front_says() {
    let gw = Gw::new(&pages_config("auto")).await;
    let bob = Browser::open(&gw.app, ACCOUNT, &[("Remote-User", "bob")]).await;
    let bob_session = hash_token(bob.token());

    // The front now says carol: bob's session ends, carol gets her own.
    let r = Call::get(ACCOUNT)
        .headers(&[("Remote-User", "carol"), ("Cookie", bob.cookie.as_str())])
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    let carol = session_pair(r.new_session().expect("carol got bob's session"), false);
    assert!(gw.store().session(&bob_session).await.unwrap().is_none());

    // A privilege change (new roles) is a new session id.
    let r = Call::get(ACCOUNT)
        .headers(&[
            ("Remote-User", "carol"),
            ("Remote-Groups", "admins"),
            ("Cookie", carol.as_str()),
        ])
        .send(&gw.app)
        .await;
    let promoted = session_pair(r.new_session().expect("same id after a role change"), false);
    assert_ne!(promoted, carol);

    // The front stops vouching (IdP logout): the session ends, the cookie
    // is cleared.
    let token = promoted.split_once('=').unwrap().1;
    let r = Call::get(ACCOUNT)
        .header("Cookie", &promoted)
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.set_cookies(), [clear_cookie(false)]);
    assert!(
        gw.store()
            .session(&hash_token(token))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let gw = Gw::new(&pages_config("auto")).await;
    assert_405s(
        &gw.app,
        &[
            ("POST", ACCOUNT, "GET,HEAD"),
            ("DELETE", ADMIN, "GET,HEAD"),
            ("GET", REVOKE, "POST"),
            ("GET", REVOKE_ALL, "POST"),
            ("GET", ADMIN_ACCOUNTS, "POST"),
        ],
    )
    .await;
}

#[tokio::test]
async fn without_accounts_the_pages_do_not_exist() {
    let gw = Gw::new(&config("", "", &route("app", "/", NO_UPSTREAM, ""))).await;
    for page in PAGES {
        let r = Call::get(page)
            .headers(&[("Remote-User", "alice")])
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 404, "{page}");
        assert_eq!(r.text(), "Accounts are not enabled on this gateway.\n");
        r.assert_page_headers();
    }
    let r = Call::post(REVOKE_ALL)
        .headers(&[("Remote-User", "alice")])
        .form("csrf=x")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn admins_cannot_disable_themselves_or_the_last_admin() {
    use vestibule::accounts::admin::{self, Actor, Done, Lockout, LockoutGuard, StatusAction};
    let gw = Gw::new(&pages_config("auto")).await;
    let root = [("Remote-User", "root"), ("Remote-Groups", "admins")];
    let a = Browser::open(&gw.app, ACCOUNT, &root).await;
    let ann = Browser::open(
        &gw.app,
        ACCOUNT,
        &[("Remote-User", "ann"), ("Remote-Groups", "admins")],
    )
    .await;
    let root_id = gw.account_id("root").await;
    let ann_id = gw.account_id("ann").await;
    let status = async |id| gw.store().account(id).await.unwrap().unwrap().status;

    // The page offers no "disable" for yourself, and the form refuses it
    // with an explanation.
    let r = a.call("GET", ADMIN).send(&gw.app).await;
    assert!(r.text().contains("You cannot disable yourself."));
    assert!(
        !r.text()
            .contains(&format!("/.vestibule/admin/accounts/{root_id}/disable"))
    );
    assert!(
        r.text()
            .contains(&format!("/.vestibule/admin/accounts/{ann_id}/disable"))
    );
    let r = a
        .call("POST", ADMIN_ACCOUNTS)
        .html()
        .form(&format!("csrf={}&id={root_id}&action=disable", a.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    r.assert_page_headers();
    assert!(r.text().contains("You cannot disable your own account"));
    assert!(r.text().contains("id=\"refusal\" data-status=\"409\""));
    assert_eq!(status(root_id).await, AccountStatus::Active);

    // Disabling another admin asks first, then works, with a flash.
    let r = a
        .call(
            "GET",
            &format!("/.vestibule/admin/accounts/{ann_id}/disable"),
        )
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Disable this account?") && r.text().contains("ann"));
    assert_eq!(
        status(ann_id).await,
        AccountStatus::Active,
        "asking changes nothing"
    );
    let r = a
        .call("POST", ADMIN_ACCOUNTS)
        .form(&format!("csrf={}&id={ann_id}&action=disable", a.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let flash = flash_cookie(&r);
    assert_eq!(status(ann_id).await, AccountStatus::Disabled);
    let r = a
        .call("GET", ADMIN)
        .header("Cookie", &format!("{}; {flash}", a.cookie))
        .send(&gw.app)
        .await;
    assert!(r.text().contains("The account is disabled"), "{}", r.text());
    drop(ann);

    // The rule lives in the accounts service: root is now the last active
    // admin, and nobody may disable that account from the page, whoever
    // acts (here an actor whose own stored account is not an admin).
    let frank = Browser::open(&gw.app, ACCOUNT, &[("Remote-User", "frank")]).await;
    drop(frank);
    let by = Actor {
        name: "frank".into(),
        client_ip: None,
        note: String::new(),
        guard: Some(LockoutGuard {
            own_account: gw.account_id("frank").await,
            admin_groups: vec!["admins".into()],
        }),
    };
    let root_row = gw.store().account(root_id).await.unwrap().unwrap();
    let r = admin::set_status(&**gw.store(), &root_row, StatusAction::Disable, &by)
        .await
        .unwrap();
    assert_eq!(r.done, Done::Refused(Lockout::LastAdmin));
    assert_eq!(status(root_id).await, AccountStatus::Active);
    // The CLI is not guarded: it is the way back in.
    let cli = Actor { guard: None, ..by };
    let r = admin::set_status(&**gw.store(), &root_row, StatusAction::Disable, &cli)
        .await
        .unwrap();
    assert!(matches!(r.done, Done::Changed(_)));
    assert_eq!(status(root_id).await, AccountStatus::Disabled);
}

#[tokio::test]
async fn the_admin_table_shows_who_and_searches_and_pages_beyond_fifty() {
    let gw = Gw::new(&pages_config("auto")).await;
    let root = [
        ("Remote-User", "root"),
        ("Remote-Groups", "admins"),
        ("Remote-Name", "Root Admin"),
        ("Remote-Email", "root@example.com"),
    ];
    // The account page carries a form (and so the CSRF token) whatever the
    // admin table holds.
    let a = Browser::open(&gw.app, ACCOUNT, &root).await;
    // 59 more accounts, straight in the store, one pending.
    for i in 0..59 {
        gw.store()
            .create_account(vestibule_store::NewAccount {
                key: vestibule_store::IdentityKey::new("oidc", format!("u{i}")),
                username: format!("user{i:02}"),
                email: Some(format!("user{i:02}@example.com")),
                display_name: Some(format!("Person {i:02}")),
                groups: vec!["users".into()],
                org: None,
                status: if i == 42 {
                    AccountStatus::Pending
                } else {
                    AccountStatus::Active
                },
                now: 0,
            })
            .await
            .unwrap();
    }
    let get = |path: String| a.call("GET", &path).send(&gw.app);
    let rows = |html: &str| html.matches("data-account=").count();

    // Page 1: 50 rows, pending first; name, source, roles, status, last seen.
    let r = get(ADMIN.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert_eq!(rows(&html), 50);
    assert!(html.contains("accounts 1–50 of 60"), "{html}");
    let first = between(&html, "data-account=", "</tr>");
    assert!(
        first.contains("user42") && first.contains("pending"),
        "{first}"
    );
    let root_row = between(&html, "data-account=\"root\"", "</tr>");
    for cell in [
        "Root Admin",
        "root@example.com",
        "authelia",
        "admins",
        "admin",
        "active",
    ] {
        assert!(
            root_row.contains(&format!(">{cell}</td>")),
            "{cell}: {root_row}"
        );
    }
    assert!(root_row.contains(" UTC</td>"), "last seen: {root_row}");
    assert!(html.contains(">Person 00</td>") && html.contains(">oidc</td>"));
    assert!(html.contains("href=\"/.vestibule/admin?page=2\""), "{html}");
    assert!(!html.contains("rel=\"prev\""));

    // Page 2: the other 10, and a way back.
    let html = get(format!("{ADMIN}?page=2")).await.text();
    assert_eq!(rows(&html), 10);
    assert!(html.contains("accounts 51–60 of 60") && html.contains("rel=\"prev\""));
    assert!(!html.contains("rel=\"next\""));
    let html = get(format!("{ADMIN}?page=3")).await.text();
    assert_eq!(rows(&html), 0);

    // Search: username, display name or email, without case; the search
    // is kept in the page links.
    let html = get(format!("{ADMIN}?q=USER1")).await.text();
    assert_eq!(rows(&html), 10, "{html}");
    assert!(html.contains("10 found for “USER1”"), "{html}");
    assert!(html.contains("value=\"USER1\""));
    let html = get(format!("{ADMIN}?q=person+07")).await.text();
    assert_eq!(rows(&html), 1);
    assert!(html.contains(">user07</td>"));
    let html = get(format!("{ADMIN}?q=%25")).await.text();
    assert_eq!(rows(&html), 0, "% is a character, not a wildcard");
    let html = get(format!("{ADMIN}?q=example.com")).await.text();
    assert!(
        html.contains("href=\"/.vestibule/admin?page=2&#38;q=example%2Ecom\""),
        "{html}"
    );
    // What is shown is escaped.
    let html = get(format!("{ADMIN}?q=%3Cb%3E")).await.text();
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("&#60;b&#62;") || html.contains("&lt;b&gt;"),
        "{html}"
    );

    // Bad input: 400 with the reason.
    for bad in [
        "page=0",
        "page=x",
        "page=-1",
        "q=%07",
        &format!("q={}", "x".repeat(101)),
    ] {
        let r = get(format!("{ADMIN}?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
    }
}
