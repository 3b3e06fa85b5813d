//! vestibule's own pages and their sessions, through the real binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, IdentityKey, Store, StoreConfig};

use crate::support::*;

struct Setup {
    gw: Gateway,
    store: Arc<dyn Store>,
    db: std::path::PathBuf,
}

async fn setup(extra: &str) -> Setup {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = format!(
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"approval\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\nadmin_groups = [\"admins\"]\n[accounts.roles]\nadmin = [\"admins\"]\n\n{extra}\n",
        data.display()
    );
    let gw = Gateway::start_in(dir, &config(&src, &route("app", "/", up, "")), &[]).await;
    let db = data.join("vestibule.db");
    let store = vestibule_store::open(&StoreConfig::new(format!("sqlite://{}", db.display())))
        .await
        .unwrap();
    Setup { gw, store, db }
}

pub(crate) fn cookie_of(r: &Raw) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.clone())
        .find(|v| !v.contains("Max-Age=0"))
}

pub(crate) fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

pub(crate) fn csrf_in(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("no csrf field") + 19;
    html[i..].split('"').next().unwrap().to_owned()
}

async fn approve(store: &Arc<dyn Store>, user: &str) {
    let a = store
        .account_by_identity(&IdentityKey::new("authelia", user))
        .await
        .unwrap()
        .unwrap();
    store
        .set_status(a.id, AccountStatus::Active, 0)
        .await
        .unwrap();
}

async fn account_page(gw: &Gateway, headers: &[(&str, &str)]) -> Raw {
    Raw::get(gw.addr, TRUSTED, "/.vestibule/account", headers).await
}

#[tokio::test]
async fn session_cookie_flags_reuse_and_hashed_storage() {
    let s = setup("").await;
    let alice = [("Remote-User", "alice"), ("Remote-Groups", "admins")];
    // First visit: pending (approval provisioning), no session.
    let r = account_page(&s.gw, &alice).await;
    assert_eq!(r.status, 403);
    assert!(cookie_of(&r).is_none());
    approve(&s.store, "alice").await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let r = account_page(&s.gw, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let set = cookie_of(&r).expect("no session cookie");
    assert!(set.starts_with("vestibule=vss_"), "{set}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Domain"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.text().contains("this session"));

    // The same session is reused.
    let c = pair(&set);
    let r = account_page(&s.gw, &[alice.as_slice(), &[("Cookie", &c)]].concat()).await;
    assert_eq!(r.status, 200);
    assert!(cookie_of(&r).is_none(), "a new session for a valid cookie");

    // Stored as SHA-256 only: the token itself is nowhere in the database.
    let token = c.trim_start_matches("vestibule=");
    assert!(s.store.session(&hash_token(token)).await.unwrap().is_some());
    let mut raw = std::fs::read(&s.db).unwrap();
    for f in ["vestibule.db-wal", "vestibule.db-shm"] {
        raw.extend(std::fs::read(s.db.with_file_name(f)).unwrap_or_default());
    }
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "raw token stored"
    );

    // Over HTTPS (said by the trusted front) the cookie is __Host- and Secure.
    let r = account_page(
        &s.gw,
        &[alice.as_slice(), &[("X-Forwarded-Proto", "https")]].concat(),
    )
    .await;
    let set = cookie_of(&r).unwrap();
    assert!(
        set.starts_with("__Host-vestibule=vss_") && set.contains("; Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn sessions_follow_the_header_identity() {
    let s = setup("").await;
    approve_after_first_sighting(&s, "bob").await;
    approve_after_first_sighting(&s, "carol").await;
    let bob = [("Remote-User", "bob")];
    let r = account_page(&s.gw, &bob).await;
    let c = pair(&cookie_of(&r).unwrap());
    let bob_session = hash_token(c.trim_start_matches("vestibule="));

    // The front now says carol: bob's session ends, carol gets a new one.
    let r = account_page(&s.gw, &[("Remote-User", "carol"), ("Cookie", &c)]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("carol"));
    let c2 = pair(&cookie_of(&r).expect("carol got bob's session"));
    assert_ne!(c, c2);
    assert!(
        s.store.session(&bob_session).await.unwrap().is_none(),
        "bob's session survived"
    );

    // The front stops sending identity (IdP logout): the session ends too.
    let carol_session = hash_token(c2.trim_start_matches("vestibule="));
    let r = account_page(&s.gw, &[("Cookie", &c2)]).await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "set-cookie" && v.contains("Max-Age=0"))
    );
    assert!(
        s.store.session(&carol_session).await.unwrap().is_none(),
        "session outlived the IdP logout"
    );
}

async fn approve_after_first_sighting(s: &Setup, user: &str) {
    let r = account_page(&s.gw, &[("Remote-User", user)]).await;
    assert_eq!(r.status, 403);
    approve(&s.store, user).await;
    let started = Instant::now();
    while account_page(&s.gw, &[("Remote-User", user)]).await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn csrf_and_revocation_from_the_account_page() {
    let s = setup("").await;
    approve_after_first_sighting(&s, "dan").await;
    let dan = [("Remote-User", "dan")];
    let r = account_page(&s.gw, &dan).await;
    let c = pair(&cookie_of(&r).unwrap());
    let csrf = csrf_in(&r.text());
    let post = |body: String, cookie: String| {
        let addr = s.gw.addr;
        async move {
            let req = format!(
                "POST /.vestibule/account/sessions/revoke-all HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: dan\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            Raw::send(addr, TRUSTED, req.as_bytes()).await
        }
    };
    // Missing or wrong token: refused, nothing revoked.
    assert_eq!(post("csrf=".into(), c.clone()).await.status, 403);
    assert_eq!(post(format!("csrf={}x", csrf), c.clone()).await.status, 403);
    let token_hash = hash_token(c.trim_start_matches("vestibule="));
    assert!(s.store.session(&token_hash).await.unwrap().is_some());
    // The right token: every session ends, 303 back to the page.
    let r = post(format!("csrf={csrf}"), c.clone()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(s.store.session(&token_hash).await.unwrap().is_none());
}

#[tokio::test]
async fn admins_approve_from_the_admin_page() {
    let s = setup("").await;
    // An admin exists (approved out of band, as the first admin must be).
    approve_after_first_sighting_groups(&s, "root", "admins").await;
    // Erin signs in for the first time: pending.
    assert_eq!(
        Raw::get(s.gw.addr, TRUSTED, "/", &[("Remote-User", "erin")])
            .await
            .status,
        403
    );
    // Not an admin: no admin page.
    approve_after_first_sighting(&s, "frank").await;
    let r = Raw::get(
        s.gw.addr,
        TRUSTED,
        "/.vestibule/admin",
        &[("Remote-User", "frank")],
    )
    .await;
    assert_eq!(r.status, 403);
    // The admin sees erin waiting and approves her.
    let admin = [("Remote-User", "root"), ("Remote-Groups", "admins")];
    let r = Raw::get(s.gw.addr, TRUSTED, "/.vestibule/admin", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("erin") && html.contains("waiting for approval"),
        "{html}"
    );
    let c = pair(&cookie_of(&r).unwrap());
    let csrf = csrf_in(&html);
    let erin = s
        .store
        .account_by_identity(&IdentityKey::new("authelia", "erin"))
        .await
        .unwrap()
        .unwrap();
    let body = format!("csrf={csrf}&id={}&action=approve", erin.id);
    let req = format!(
        "POST /.vestibule/admin/accounts HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: root\r\nRemote-Groups: admins\r\nCookie: {c}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = Raw::send(s.gw.addr, TRUSTED, req.as_bytes()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    // 3xx after the write: it is on disk now.
    let erin = s.store.account(erin.id).await.unwrap().unwrap();
    assert_eq!(erin.status, AccountStatus::Active);
    let started = Instant::now();
    while Raw::get(s.gw.addr, TRUSTED, "/", &[("Remote-User", "erin")])
        .await
        .status
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "approval not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = s
        .store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("approve".into()),
            subject: None,
            limit: 5,
        })
        .await
        .unwrap();
    assert_eq!(log[0].actor, "root");
    // The same entry the CLI writes: the accounts service writes both.
    assert_eq!(log[0].subject, format!("account:{}", erin.id));
    assert_eq!(
        (log[0].outcome.as_str(), log[0].detail.as_str()),
        ("ok", "pending -> active")
    );
}

async fn approve_after_first_sighting_groups(s: &Setup, user: &str, groups: &str) {
    let h = [("Remote-User", user), ("Remote-Groups", groups)];
    assert_eq!(account_page(&s.gw, &h).await.status, 403);
    approve(&s.store, user).await;
    let started = Instant::now();
    while account_page(&s.gw, &h).await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_timeout_and_privilege_change_give_a_new_session() {
    let s = setup("[sessions]\nidle_timeout = \"1s\"\nabsolute_timeout = \"1h\"").await;
    approve_after_first_sighting(&s, "gus").await;
    let r = account_page(&s.gw, &[("Remote-User", "gus")]).await;
    let c = pair(&cookie_of(&r).unwrap());
    // Within the idle window: kept.
    let r = account_page(&s.gw, &[("Remote-User", "gus"), ("Cookie", &c)]).await;
    assert!(cookie_of(&r).is_none());
    // Gus joins admins: a privilege change, so a new session id.
    let r = account_page(
        &s.gw,
        &[
            ("Remote-User", "gus"),
            ("Remote-Groups", "admins"),
            ("Cookie", &c),
        ],
    )
    .await;
    let c2 = pair(&cookie_of(&r).expect("no new session after a privilege change"));
    assert_ne!(c, c2);
    // Idle past the timeout: a new session.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = account_page(
        &s.gw,
        &[
            ("Remote-User", "gus"),
            ("Remote-Groups", "admins"),
            ("Cookie", &c2),
        ],
    )
    .await;
    let c3 = pair(&cookie_of(&r).expect("an idle session was kept"));
    assert_ne!(c2, c3);
}

#[tokio::test]
async fn sessions_show_browser_os_address_and_which_is_this_one() {
    let s = setup("").await;
    let alice = [("Remote-User", "alice")];
    assert_eq!(account_page(&s.gw, &alice).await.status, 403);
    approve(&s.store, "alice").await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
    let laptop = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let r = account_page(&s.gw, &[alice[0], ("User-Agent", phone)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let phone_cookie = pair(&cookie_of(&r).unwrap());
    let r = account_page(&s.gw, &[alice[0], ("User-Agent", laptop)]).await;
    let laptop_cookie = pair(&cookie_of(&r).unwrap());
    let html = r.text();
    // Two rows: each with its browser, OS and address; the laptop's is this one.
    let row = |cookie: &str| {
        let id = vestibule_store::hex(&hash_token(cookie.trim_start_matches("vestibule=")));
        let start = html
            .find(&format!("data-session=\"{id}\""))
            .expect("a row per session");
        html[start..].split("</tr>").next().unwrap().to_owned()
    };
    let (mine, other) = (row(&laptop_cookie), row(&phone_cookie));
    assert!(
        mine.contains("Firefox on Linux") && mine.contains("this session"),
        "{mine}"
    );
    assert!(
        other.contains("Chrome on Android") && !other.contains("this session"),
        "{other}"
    );
    for r in [&mine, &other] {
        assert!(r.contains("class=\"address\">127.0.0.1</td>"), "{r}");
    }
    // Stored as sent, and cut at 256 bytes; a second line is not kept.
    let stored_session = async |cookie: &str| {
        let id = hash_token(cookie.trim_start_matches("vestibule="));
        s.store.session(&id).await.unwrap().unwrap()
    };
    let stored = stored_session(&phone_cookie).await;
    assert_eq!(stored.user_agent.as_deref(), Some(phone));
    assert_eq!(stored.client_ip.as_deref(), Some("127.0.0.1"));
    let long = format!("Firefox/1 {}", "x".repeat(600));
    let r = account_page(&s.gw, &[alice[0], ("User-Agent", &long)]).await;
    let c = pair(&cookie_of(&r).unwrap());
    let stored = stored_session(&c).await;
    assert_eq!(stored.user_agent.as_deref(), Some(&long[..256]));
    let r = account_page(&s.gw, &[alice[0], ("User-Agent", "a"), ("User-Agent", "b")]).await;
    let c = pair(&cookie_of(&r).unwrap());
    let stored = stored_session(&c).await;
    assert_eq!(stored.user_agent, None);
    assert!(
        r.text().contains("class=\"browser\">unknown</td>"),
        "{}",
        r.text()
    );
}
