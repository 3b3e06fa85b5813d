//! Apps with access (issue 14): the user's `/.vestibule/apps` page and the
//! admin's per-account view, in process against a real SQLite file store
//! and the real key ring, with the clients and helpers of
//! `provider_tokens`. Revoking there must end the grant's tokens (the
//! refresh token gets `invalid_grant`, the access token is inactive at
//! introspection), forget the consent, audit and count.

use vestibule_store::AuditFilter;

use super::provider_support::{
    CHALLENGE, SECRET, WEB_CB, basic, code, exchange, form, oauth_error, provider_gw, refresh,
    sha256, tokens_ok, web_code,
};
use super::*;

const APPS: &str = "/.vestibule/apps";
const REVOKE: &str = "/.vestibule/apps/revoke";
const ADMIN_REVOKE: &str = "/.vestibule/admin/grants/revoke";
const INTROSPECT: &str = "/.vestibule/oidc/introspect";

async fn grant_ids(gw: &Gw, account: i64) -> Vec<i64> {
    let grants = gw.store().grants_of(account).await.unwrap();
    grants.iter().map(|g| g.id).collect()
}

/// A grant for `account` at `web`: (its id, access token, refresh token).
async fn grant(gw: &Gw, account: i64) -> (i64, String, String) {
    let before = grant_ids(gw, account).await;
    let j = tokens_ok(&exchange(gw, &code(gw, web_code(account)).await).await);
    let id = grant_ids(gw, account)
        .await
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("the exchange made a grant");
    (
        id,
        j["access_token"].as_str().unwrap().to_owned(),
        j["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn active(gw: &Gw, access: &str) -> bool {
    let r = Call::post(INTROSPECT)
        .header("Authorization", &basic("web", SECRET))
        .form(&form(&[("token", access)]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["active"].as_bool().unwrap()
}

async fn revokes(gw: &Gw) -> Vec<vestibule_store::AuditEntry> {
    gw.store()
        .audit(&AuditFilter {
            since: None,
            action: Some("oidc-grant-revoke".into()),
            subject: None,
            limit: 100,
        })
        .await
        .unwrap()
}

async fn post_revoke(b: &Browser, gw: &Gw, path: &str, csrf: &str, id: i64) -> Resp {
    b.call("POST", path)
        .form(&format!("csrf={csrf}&id={id}"))
        .send(&gw.app)
        .await
}

#[tokio::test]
async fn the_apps_page_lists_only_your_grants_and_revoking_one_ends_its_tokens() {
    let gw = provider_gw().await;
    let alice = Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "alice")]).await;
    Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "bob")]).await;
    let (a_id, b_id) = (gw.account_id("alice").await, gw.account_id("bob").await);
    let (ag, a_access, a_refresh) = grant(&gw, a_id).await;
    let (bg, b_access, b_refresh) = grant(&gw, b_id).await;
    gw.store()
        .put_consent(a_id, "web", "openid profile", 1)
        .await
        .unwrap();

    // Linked from every page's navigation.
    let r = alice.call("GET", "/.vestibule/account").send(&gw.app).await;
    assert!(
        r.text().contains("href=\"/.vestibule/apps\""),
        "{}",
        r.text()
    );

    let r = alice.call("GET", APPS).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    let page = r.text();
    assert!(page.contains(&format!("data-grant=\"{ag}\"")), "{page}");
    assert!(!page.contains(&format!("data-grant=\"{bg}\"")), "{page}");
    // The scopes in the consent page's words; the current page is marked.
    assert!(page.contains("Your email address"), "{page}");
    assert!(page.contains("Access while you are away"), "{page}");
    assert!(
        page.contains("id=\"nav-app-access\" aria-current=\"page\""),
        "{page}"
    );
    // Codes in tests come from the session "session-one", not this one.
    assert!(page.contains("a browser session"), "{page}");

    // Without the CSRF token: refused, nothing revoked.
    let r = post_revoke(&alice, &gw, REVOKE, "wrong", ag).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(active(&gw, &a_access).await);
    // Someone else's grant id: 404, like an unknown one; bob's keeps
    // working.
    let r = post_revoke(&alice, &gw, REVOKE, &alice.csrf, bg).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post_revoke(&alice, &gw, REVOKE, &alice.csrf, 987_654).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(active(&gw, &b_access).await);
    assert!(revokes(&gw).await.is_empty());

    // Her own: 303 back with a flash; the tokens are dead at once.
    let r = post_revoke(&alice, &gw, REVOKE, &alice.csrf, ag).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(APPS));
    let flash = flash_cookie(&r);
    oauth_error(&refresh(&gw, &a_refresh, None).await, 400, "invalid_grant");
    assert!(!active(&gw, &a_access).await);
    // The consent is forgotten: the app must ask again.
    assert_eq!(gw.store().consent(a_id, "web").await.unwrap(), None);
    let r = alice
        .call("GET", APPS)
        .header("Cookie", &format!("{}; {flash}", alice.cookie))
        .send(&gw.app)
        .await;
    let page = r.text();
    assert!(page.contains("access is revoked"), "{page}");
    assert!(page.contains("id=\"no-grants\""), "{page}");
    // Bob's grant is untouched.
    assert!(active(&gw, &b_access).await);
    tokens_ok(&refresh(&gw, &b_refresh, None).await);

    let audit = revokes(&gw).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor, "alice");
    assert_eq!(audit[0].subject, format!("account:{a_id}"));
    assert!(
        audit[0]
            .detail
            .contains(&format!("grant {ag} of client web")),
        "{audit:?}"
    );
    assert!(audit[0].detail.contains("consent forgotten"), "{audit:?}");
    assert!(
        gw.state
            .metrics
            .render()
            .contains("vestibule_oidc_grants_revoked_total{by=\"user\"} 1"),
        "{}",
        gw.state.metrics.render()
    );
}

#[tokio::test]
async fn admins_see_and_revoke_any_accounts_grants() {
    let gw = provider_gw().await;
    let alice = Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "alice")]).await;
    let root = Browser::open(
        &gw.app,
        "/.vestibule/account",
        &[("Remote-User", "root"), ("Remote-Groups", "admins")],
    )
    .await;
    let a_id = gw.account_id("alice").await;
    let (ag, a_access, a_refresh) = grant(&gw, a_id).await;
    let view = format!("/.vestibule/admin/apps/{a_id}");

    // The admin page links each account's apps.
    let r = root.call("GET", "/.vestibule/admin").send(&gw.app).await;
    assert!(
        r.text().contains(&format!("href=\"{view}\"")),
        "{}",
        r.text()
    );
    let r = root.call("GET", &view).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!("data-grant=\"{ag}\"")),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("id=\"apps-owner\">alice<"),
        "{}",
        r.text()
    );
    let r = root
        .call("GET", "/.vestibule/admin/apps/987654")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // Not for non-admins, neither the view nor the form.
    let r = alice.call("GET", &view).send(&gw.app).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_revoke(&alice, &gw, ADMIN_REVOKE, &alice.csrf, ag).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // CSRF checked for admins too.
    let r = post_revoke(&root, &gw, ADMIN_REVOKE, "wrong", ag).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(active(&gw, &a_access).await);

    let r = post_revoke(&root, &gw, ADMIN_REVOKE, &root.csrf, ag).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(view.as_str()));
    oauth_error(&refresh(&gw, &a_refresh, None).await, 400, "invalid_grant");
    assert!(!active(&gw, &a_access).await);
    let r = post_revoke(&root, &gw, ADMIN_REVOKE, &root.csrf, ag).await;
    assert_eq!(r.status, 404, "{}", r.text());

    let audit = revokes(&gw).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor, "root");
    assert_eq!(audit[0].subject, format!("account:{a_id}"));
    assert!(audit[0].detail.contains("by an administrator"), "{audit:?}");
    assert!(
        gw.state
            .metrics
            .render()
            .contains("vestibule_oidc_grants_revoked_total{by=\"admin\"} 1")
    );
}

#[tokio::test]
async fn without_the_provider_the_apps_page_says_so() {
    let gw = Gw::new(&accounts_config(
        "auto",
        "",
        &route("app", "/", NO_UPSTREAM, ""),
    ))
    .await;
    let alice = Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "alice")]).await;
    let r = alice.call("GET", APPS).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("id=\"no-provider\""), "{}", r.text());
    let r = post_revoke(&alice, &gw, REVOKE, &alice.csrf, 1).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// A grant given from a known session shows that session's browser (the
/// device it was granted from), from the session's recorded User-Agent.
#[tokio::test]
async fn a_grant_shows_the_browser_it_was_given_from() {
    let gw = provider_gw().await;
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let carol = Browser::open(
        &gw.app,
        "/.vestibule/account",
        &[("Remote-User", "carol"), ("User-Agent", firefox)],
    )
    .await;
    let id = gw.account_id("carol").await;
    let session = gw.store().sessions_of(Some(id)).await.unwrap()[0].id_hash;
    // The code as authorize stores it from this session.
    let code = "code-from-carols-firefox";
    let now = vestibule::accounts::now_ms();
    gw.store()
        .create_authorization_code(&vestibule_store::provider::NewAuthorizationCode {
            session_ref: Some(vestibule_store::hex(&session)),
            code_hash: sha256(code),
            ..provider_code(id, now)
        })
        .await
        .unwrap();
    tokens_ok(&exchange(&gw, code).await);
    let page = carol.call("GET", APPS).send(&gw.app).await.text();
    let browser = vestibule_core::user_agent::describe(firefox).to_string();
    assert!(browser.contains("Firefox"), "{browser}");
    assert!(
        page.contains(&format!("this browser session ({browser})")),
        "{page}"
    );
}

/// What `provider_support::code` stores for `web`, at `now`.
fn provider_code(account: i64, now: i64) -> vestibule_store::provider::NewAuthorizationCode {
    vestibule_store::provider::NewAuthorizationCode {
        code_hash: [0; 32],
        client_id: "web".into(),
        account_id: account,
        redirect_uri: WEB_CB.into(),
        scopes: "openid profile".into(),
        nonce: None,
        code_challenge: Some(CHALLENGE.into()),
        session_ref: None,
        auth_time: now - 5_000,
        amr: vec!["pwd".into()],
        created_at: now,
        expires_at: now + 60_000,
    }
}
