//! Device credentials and pairing, through the real binary: every carrier
//! in-path and through forward-auth, every refusal, the rate limit, the
//! pages (create, revoke, CSRF) and quick-connect pairing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use vestibule_core::credential::device_token;
use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, IdentityKey, NewDevice, Store, StoreConfig};

use crate::support::*;

pub(crate) struct Setup {
    pub(crate) gw: Gateway,
    pub(crate) store: Arc<dyn Store>,
}

/// A gateway with authentik identities from 127.0.0.1, auto provisioning,
/// and routes: `music` (Basic), `api` (Bearer, Proxy-Authorization, custom
/// header), `media` (query), `stale` (Bearer, max_sso_age 2 s), `plain`
/// (no credentials).
async fn setup(devices_section: &str) -> Setup {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\ncache_ttl = \"60s\"\n\n{devices_section}\n",
        data.display()
    );
    let routes = [
        route("music", "/music", up, "credentials = [\"basic\"]"),
        route(
            "api",
            "/api",
            up,
            "credentials = [\"bearer\", \"proxy-authorization\", \"header\"]",
        ),
        route("media", "/media", up, "credentials = [\"query\"]"),
        route(
            "stale",
            "/stale",
            up,
            "credentials = [\"bearer\"]\nmax_sso_age = \"2s\"",
        ),
        route("plain", "/plain", up, ""),
    ]
    .concat();
    let gw = Gateway::start_in(dir, &config(&src, &routes), &[]).await;
    let store = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        data.join("vestibule.db").display()
    )))
    .await
    .unwrap();
    Setup { gw, store }
}

pub(crate) fn sso(uid: &str, user: &str) -> Vec<(String, String)> {
    vec![
        ("X-authentik-uid".into(), uid.into()),
        ("X-authentik-username".into(), user.into()),
        ("X-authentik-email".into(), format!("{user}@example.com")),
        ("X-authentik-groups".into(), "users".into()),
    ]
}

pub(crate) fn refs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Signs `user` in once through the front, so the account exists.
pub(crate) async fn sign_in(s: &Setup, uid: &str, user: &str) -> i64 {
    let r = Raw::get(s.gw.addr, TRUSTED, "/plain", &refs(&sso(uid, user))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.store
        .account_by_identity(&IdentityKey::new("authentik", uid))
        .await
        .unwrap()
        .unwrap()
        .id
}

/// A token for `account` on `routes`, made directly in the store (as the
/// page would), and its secret.
async fn device(
    s: &Setup,
    account: i64,
    user: &str,
    routes: &[&str],
    expires_at: Option<i64>,
) -> (i64, String) {
    device_of_kind(s, "token", account, user, routes, expires_at).await
}

/// A device of `kind` (`token`, `app-password`) for `account` on `routes`,
/// and its secret.
async fn device_of_kind(
    s: &Setup,
    kind: &str,
    account: i64,
    user: &str,
    routes: &[&str],
    expires_at: Option<i64>,
) -> (i64, String) {
    let random: [u8; 32] = rand::random();
    let token = device_token(random).expose().to_owned();
    let d = s
        .store
        .create_device(&NewDevice {
            account_id: account,
            name: "test phone".into(),
            kind: kind.into(),
            routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            secret_hash: hash_token(&token),
            basic_user: Some(user.into()),
            created_at: now_ms(),
            expires_at,
        })
        .await
        .unwrap();
    (d.id, token)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn identity_of(r: &Raw) -> Option<String> {
    r.seen_headers()
        .get("remote-user")
        .and_then(|v| v.first().cloned())
}

#[tokio::test]
async fn every_carrier_acts_as_the_owner_and_never_reaches_the_app() {
    let s = setup("").await;
    let alice = sign_in(&s, "a-1", "alice").await;
    let (_, token) = device(&s, alice, "alice", &["music", "api", "media"], None).await;
    let (_, app_password) =
        device_of_kind(&s, "app-password", alice, "alice", &["music", "api"], None).await;
    let gw = s.gw.addr;
    // From an address the front is not on: credentials do not depend on
    // the peer, and a spoofed identity header is still stripped.
    let from = UNTRUSTED;

    // Basic (Subsonic, WebDAV): user name and app password.
    let auth = basic("alice", &app_password);
    let r = Raw::get(gw, from, "/music/rest/ping", &[("Authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(identity_of(&r).as_deref(), Some("alice"));
    assert!(!r.seen_headers().contains_key("authorization"));
    // Proxy-Authorization takes Basic too.
    let r = Raw::get(gw, from, "/api/x", &[("Proxy-Authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.seen_headers().contains_key("proxy-authorization"));

    // The kind means something: a token is no password, and an app
    // password is no bearer token. 401 (whoami would answer 200) with the
    // route's challenge.
    let wrong_ways = [
        (
            "/music/x",
            "Authorization",
            basic("alice", &token),
            "This is a token",
        ),
        (
            "/api/x",
            "Proxy-Authorization",
            basic("alice", &token),
            "This is a token",
        ),
        (
            "/api/x",
            "Authorization",
            format!("Bearer {app_password}"),
            "This is an app password",
        ),
        (
            "/api/x",
            "Proxy-Authorization",
            format!("Bearer {app_password}"),
            "This is an app password",
        ),
        (
            "/api/x",
            "X-Vestibule-Token",
            app_password.clone(),
            "This is an app password",
        ),
    ];
    for (path, name, value, says) in &wrong_ways {
        let r = Raw::get(gw, from, path, &[(name, value)]).await;
        assert_eq!(r.status, 401, "{name} on {path}: {}", r.text());
        assert!(r.text().contains(says), "{name} on {path}: {}", r.text());
        assert!(r.header("www-authenticate").is_some(), "{name} on {path}");
    }
    let path = format!("/media/song.mp3?vestibule_token={app_password}");
    let r = Raw::get(gw, from, &path, &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("This is an app password"), "{}", r.text());

    // Bearer.
    let bearer = format!("Bearer {token}");
    let r = Raw::get(
        gw,
        from,
        "/api/x",
        &[("Authorization", &bearer), ("Remote-User", "admin")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(identity_of(&r).as_deref(), Some("alice"));
    assert!(!r.seen_headers().contains_key("authorization"));
    assert_eq!(r.seen_headers()["remote-email"], ["alice@example.com"]);

    // Scheme names are case-insensitive (RFC 9110 §11.1).
    let lower = format!("bearer {token}");
    let r = Raw::get(gw, from, "/api/x", &[("Authorization", &lower)]).await;
    assert_eq!(r.status, 200);

    // Proxy-Authorization.
    let r = Raw::get(gw, from, "/api/x", &[("Proxy-Authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.seen_headers().contains_key("proxy-authorization"));

    // The custom header (immich, Home Assistant companion), any spelling.
    for name in ["X-Vestibule-Token", "x-vestibule-token"] {
        let r = Raw::get(gw, from, "/api/x", &[(name, &token)]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(identity_of(&r).as_deref(), Some("alice"));
        assert!(!r.seen_headers().contains_key("x-vestibule-token"));
    }

    // The query parameter, only where it is on; removed before forwarding,
    // other parameters kept.
    let path = format!("/media/song.mp3?a=1&vestibule_token={token}&b=2");
    let r = Raw::get(gw, from, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["uri"], "/media/song.mp3?a=1&b=2");
    let path = format!("/api/x?vestibule_token={token}");
    assert_eq!(Raw::get(gw, from, &path, &[]).await.status, 401);

    // A carrier the route does not take is not looked at.
    let r = Raw::get(gw, from, "/music/x", &[("Authorization", &bearer)]).await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Basic realm=")),
        "a Basic route challenges, so WebDAV clients send their password: {:?}",
        r.headers
    );
    // Nor are routes without credentials.
    assert_eq!(
        Raw::get(gw, from, "/plain/x", &[("Authorization", &bearer)])
            .await
            .status,
        401
    );
    // Someone else's bearer token (the app's own, a JWT) is not ours.
    let r = Raw::get(
        gw,
        from,
        "/api/x",
        &[("Authorization", "Bearer eyJhbGciOi.x.y")],
    )
    .await;
    assert_eq!(r.status, 401);

    // Two credentials at once: ambiguous, 400.
    let r = Raw::get(
        gw,
        from,
        "/api/x",
        &[("Authorization", &bearer), ("X-Vestibule-Token", &token)],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = Raw::get(
        gw,
        from,
        "/api/x",
        &[("X-Vestibule-Token", &token), ("X-Vestibule-Token", &token)],
    )
    .await;
    assert_eq!(r.status, 400);

    // A malformed credential in a carrier that is ours: 401, with a reason.
    let r = Raw::get(gw, from, "/api/x", &[("X-Vestibule-Token", "vst_short")]).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("malformed"), "{}", r.text());

    // The front's identity wins over a credential, which is still stripped.
    let mut h = sso("b-1", "bob");
    h.push(("Authorization".into(), bearer.clone()));
    let r = Raw::get(gw, TRUSTED, "/api/x", &refs(&h)).await;
    assert_eq!(r.status, 200);
    assert_eq!(identity_of(&r).as_deref(), Some("bob"));
    assert!(!r.seen_headers().contains_key("authorization"));
}

#[tokio::test]
async fn forward_auth_answers_for_every_carrier() {
    let s = setup("").await;
    let alice = sign_in(&s, "a-1", "alice").await;
    let (_, token) = device(&s, alice, "alice", &["api", "music", "media"], None).await;
    // What nginx sends: the original URI, and the client's headers.
    let verify = |uri: String, extra: Vec<(String, String)>| {
        let addr = s.gw.addr;
        async move {
            let mut h = vec![
                ("X-Original-URI".to_owned(), uri),
                ("X-Original-Method".to_owned(), "GET".to_owned()),
            ];
            h.extend(extra);
            Raw::get(addr, TRUSTED, "/.vestibule/verify", &refs(&h)).await
        }
    };
    let one = |n: &str, v: String| vec![(n.to_owned(), v)];
    let ok = |r: &Raw, what: &str| {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.header("remote-user"), Some("alice"), "{what}");
    };

    let r = verify(
        "/api/photos".into(),
        one("Authorization", format!("Bearer {token}")),
    )
    .await;
    ok(&r, "Bearer");
    // The proxy is told to forward no Authorization: it held our secret.
    assert_eq!(r.header("x-vestibule-authorization"), Some(""));
    let r = verify(
        "/music/x".into(),
        one("Authorization", basic("alice", &token)),
    )
    .await;
    assert_eq!(r.status, 401, "a token is no Basic password");
    assert!(r.text().contains("This is a token"), "{}", r.text());
    let (_, app_password) =
        device_of_kind(&s, "app-password", alice, "alice", &["music"], None).await;
    let r = verify(
        "/music/x".into(),
        one("Authorization", basic("alice", &app_password)),
    )
    .await;
    ok(&r, "Basic");
    assert_eq!(r.header("x-vestibule-authorization"), Some(""));
    let r = verify(
        "/api/x".into(),
        one("Proxy-Authorization", format!("Bearer {token}")),
    )
    .await;
    ok(&r, "Proxy-Authorization");
    let r = verify("/api/x".into(), one("X-Vestibule-Token", token.clone())).await;
    ok(&r, "custom header");
    // The query parameter, read from the original URI, where it is on.
    // The query parameter: the proxy forwards the original URI, so the
    // secret would reach the app; refused (it works in-path only).
    let r = verify(format!("/media/a.mp3?vestibule_token={token}"), vec![]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("query string"), "{}", r.text());
    let r = verify(format!("/api/x?vestibule_token={token}"), vec![]).await;
    assert_eq!(r.status, 401, "query is off on api");

    // An app's own token is not ours: it is echoed for the proxy to forward.
    let mut h = sso("a-1", "alice");
    h.push((
        "Authorization".to_owned(),
        "Bearer app-own-token".to_owned(),
    ));
    let r = verify("/api/photos".into(), h).await;
    ok(&r, "SSO identity with the app's own token");
    assert_eq!(
        r.header("x-vestibule-authorization"),
        Some("Bearer app-own-token")
    );

    // Refusals answer the proxy the same way as in-path.
    let r = verify(
        "/api/x".into(),
        one("Authorization", "Bearer vst_unknown".into()),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = verify(
        "/music/x".into(),
        one("Authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(r.status, 401, "music takes Basic only");
    let (_, media_only) = device(&s, alice, "alice", &["media"], None).await;
    let r = verify("/api/x".into(), one("X-Vestibule-Token", media_only)).await;
    assert_eq!(r.status, 403, "a credential for another app");
}

#[tokio::test]
async fn refusals_expired_wrong_route_revoked_disabled() {
    let s = setup("").await;
    let alice = sign_in(&s, "a-1", "alice").await;
    let gw = s.gw.addr;
    let get = |path: &'static str, token: String| async move {
        Raw::get(
            gw,
            UNTRUSTED,
            path,
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await
    };

    // Expired.
    let (_, old) = device(&s, alice, "alice", &["api"], Some(now_ms() - 1000)).await;
    let r = get("/api/x", old).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("expired"), "{}", r.text());

    // Valid, but not for this route.
    let (_, token) = device(&s, alice, "alice", &["media"], None).await;
    let r = get("/api/x", token).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("not allowed on this app"), "{}", r.text());

    // Basic with someone else's name.
    let (_, app_password) =
        device_of_kind(&s, "app-password", alice, "alice", &["music"], None).await;
    let r = Raw::get(
        gw,
        UNTRUSTED,
        "/music/x",
        &[("Authorization", &basic("mallory", &app_password))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("user name does not match"),
        "{}",
        r.text()
    );

    // Revoked: refused within a second (the change feed; the gateway
    // cached the credential on first use).
    let (id, token) = device(&s, alice, "alice", &["api"], None).await;
    assert_eq!(get("/api/x", token.clone()).await.status, 200);
    let t0 = Instant::now();
    assert!(s.store.revoke_device(id, Some(alice)).await.unwrap());
    until_status(401, async || get("/api/x", token.clone()).await.status).await;
    let revoked_in = t0.elapsed();
    eprintln!("device revocation reached the gateway in {revoked_in:?}");
    assert!(revoked_in <= Duration::from_secs(1), "{revoked_in:?}");
    let r = get("/api/x", token).await;
    assert!(r.text().contains("not recognised"), "{}", r.text());

    // A disabled owner: every credential stops within a second; enabling
    // brings them back.
    let (_, token) = device(&s, alice, "alice", &["api"], None).await;
    assert_eq!(get("/api/x", token.clone()).await.status, 200);
    let t0 = Instant::now();
    s.store
        .set_status(alice, AccountStatus::Disabled, now_ms())
        .await
        .unwrap();
    until_status(403, async || get("/api/x", token.clone()).await.status).await;
    let disabled_in = t0.elapsed();
    eprintln!("owner disable reached device credentials in {disabled_in:?}");
    assert!(disabled_in <= Duration::from_secs(1), "{disabled_in:?}");
    assert!(
        get("/api/x", token.clone())
            .await
            .text()
            .contains("disabled")
    );
    s.store
        .set_status(alice, AccountStatus::Active, now_ms())
        .await
        .unwrap();
    until_status(200, async || get("/api/x", token.clone()).await.status).await;

    // Deleting the owner deletes the devices.
    assert!(s.store.delete_account(alice).await.unwrap());
    until_status(401, async || get("/api/x", token.clone()).await.status).await;
}

#[tokio::test]
async fn stale_sso_is_refused_until_the_owner_signs_in_again() {
    let s = setup("").await;
    let alice = sign_in(&s, "a-1", "alice").await;
    let (_, token) = device(&s, alice, "alice", &["stale"], None).await;
    let get = || {
        let addr = s.gw.addr;
        let auth = format!("Bearer {token}");
        async move { Raw::get(addr, UNTRUSTED, "/stale/x", &[("Authorization", &auth)]).await }
    };
    assert_eq!(get().await.status, 200);
    // max_sso_age is 2 s on this route.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let r = get().await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("browser"), "{}", r.text());
    // One pass through the SSO front revives it at once.
    sign_in(&s, "a-1", "alice").await;
    assert_eq!(get().await.status, 200);
}

#[tokio::test]
async fn failures_are_rate_limited_per_address_and_per_user() {
    let s = setup("[devices]\nfailures_per_minute = 3\n").await;
    let alice = sign_in(&s, "a-1", "alice").await;
    let (_, token) = device(&s, alice, "alice", &["api", "music"], None).await;
    let gw = s.gw.addr;
    let bearer = |t: &str| format!("Bearer {t}");
    let wrong = device_token([9u8; 32]).expose().to_owned();
    for _ in 0..3 {
        let r = Raw::get(
            gw,
            UNTRUSTED,
            "/api/x",
            &[("Authorization", &bearer(&wrong))],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = Raw::get(
        gw,
        UNTRUSTED,
        "/api/x",
        &[("Authorization", &bearer(&wrong))],
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // While blocked, even a valid credential from that address waits: a
    // guesser learns nothing.
    let r = Raw::get(
        gw,
        UNTRUSTED,
        "/api/x",
        &[("Authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 429);
    // Another address is not affected.
    let r = Raw::get(
        gw,
        "127.0.0.4",
        "/api/x",
        &[("Authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 200);

    // Per user name: wrong app passwords for `alice` from many addresses.
    for i in 0..4 {
        let from = format!("127.0.1.{}", i + 1);
        let r = Raw::get(
            gw,
            &from,
            "/music/x",
            &[("Authorization", &basic("alice", &wrong))],
        )
        .await;
        assert_eq!(r.status, if i < 3 { 401 } else { 429 }, "attempt {i}");
    }
    let r = Raw::get(
        gw,
        "127.0.1.9",
        "/music/x",
        &[("Authorization", &basic("alice", &token))],
    )
    .await;
    assert_eq!(r.status, 429, "alice's name is blocked from every address");

    // Counted for operators.
    let m = s.gw.metrics().await;
    assert!(
        m.contains(r#"vestibule_auth_decisions_total{source="device",result="rate_limited"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"vestibule_auth_decisions_total{source="device",result="authenticated"}"#)
    );

    // Failures are audited; the secret is not.
    let audit = s
        .store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("credential-failure".into()),
            subject: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.outcome == "rate-limited"),
        "{audit:?}"
    );
    assert!(audit.iter().all(|e| !format!("{e:?}").contains(&wrong)));
}

// ---- pages and pairing ---------------------------------------------------

pub(crate) fn cookie_of(r: &Raw) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .find(|v| !v.ends_with('='))
        .expect("a session cookie")
}

pub(crate) fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {html}"))
        + start.len();
    html[i..].split(end).next().unwrap()
}

pub(crate) async fn post(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> Raw {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    Raw::send(gw.addr, TRUSTED, req.as_bytes()).await
}

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// A signed-in page visit: the session cookie and the CSRF token.
pub(crate) async fn page_session(
    s: &Setup,
    uid: &str,
    user: &str,
) -> (Vec<(String, String)>, String, String) {
    let h = sso(uid, user);
    let r = Raw::get(s.gw.addr, TRUSTED, "/.vestibule/devices", &refs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = cookie_of(&r);
    let csrf = between(&r.text(), "name=\"csrf\" value=\"", "\"").to_owned();
    let mut with_cookie = h.clone();
    with_cookie.push(("Cookie".into(), cookie));
    (with_cookie, csrf, r.text())
}

#[tokio::test]
async fn devices_page_creates_shows_once_and_revokes() {
    let s = setup("").await;
    sign_in(&s, "a-1", "alice").await;
    let (h, csrf, html) = page_session(&s, "a-1", "alice").await;
    assert!(html.contains("You have no devices yet"));
    // Routes without credentials are not offered.
    assert!(html.contains("value=\"api\"") && !html.contains("value=\"plain\""));

    // Without the CSRF token: refused, nothing created.
    let body = "name=Phone&kind=token&route=api&expires_days=0";
    let r = post(&s.gw, "/.vestibule/devices/new", &refs(&h), FORM, body).await;
    assert_eq!(r.status, 403);
    assert!(s.store.devices_of(None).await.unwrap().is_empty());
    // A route the person may not choose.
    let body = format!("csrf={csrf}&name=Phone&kind=token&route=plain&expires_days=0");
    let r = post(&s.gw, "/.vestibule/devices/new", &refs(&h), FORM, &body).await;
    assert_eq!(r.status, 400);

    // A token for an app that only takes Basic: refused, it could not work.
    let body = format!("csrf={csrf}&name=Phone&kind=token&route=api&route=music&expires_days=0");
    let r = post(&s.gw, "/.vestibule/devices/new", &refs(&h), FORM, &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("`music` only takes app passwords"),
        "{}",
        r.text()
    );

    let body = format!("csrf={csrf}&name=My+Phone&kind=token&route=api&expires_days=30");
    let r = post(&s.gw, "/.vestibule/devices/new", &refs(&h), FORM, &body).await;
    // POST/redirect/GET: the secret is on a page shown once.
    assert_eq!(r.status, 303, "{}", r.text());
    let shown = r.header("location").unwrap().to_owned();
    let r = Raw::get(s.gw.addr, TRUSTED, &shown, &refs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let html = r.text();
    let secret = between(
        &html,
        "<input id=\"secret\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    assert!(secret.starts_with("vst_") && secret.len() == 47, "{secret}");
    assert!(html.contains("<svg"), "a QR code");
    assert!(html.contains(&format!("Authorization: Bearer {secret}")));
    assert!(html.contains(&format!("x-vestibule-token: {secret}")));
    // A token is not offered as a password.
    assert!(!html.contains(&format!("alice:{secret}@")), "{html}");
    // A reload: gone, and no second device.
    let again = Raw::get(s.gw.addr, TRUSTED, &shown, &refs(&h)).await;
    assert_eq!(again.status, 410, "{}", again.text());
    assert!(!again.text().contains(&secret));
    // Stored hashed, never in clear.
    let listed = s.store.devices_of(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "My Phone");
    assert!(listed[0].expires_at.is_some());
    assert!(
        s.store
            .device_by_secret(&hash_token(&secret))
            .await
            .unwrap()
            .is_some()
    );

    // It works, and "last used" appears on the page with the address.
    let r = Raw::get(
        s.gw.addr,
        UNTRUSTED,
        "/api/x",
        &[("Authorization", &format!("Bearer {secret}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let mut seen = String::new();
    for _ in 0..50 {
        let r = Raw::get(s.gw.addr, TRUSTED, "/.vestibule/devices", &refs(&h)).await;
        seen = r.text();
        if seen.contains("from 127.0.0.2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.contains("My Phone") && seen.contains("from 127.0.0.2"),
        "{seen}"
    );

    // Someone else cannot revoke it.
    sign_in(&s, "m-1", "mallory").await;
    let (mh, mcsrf, _) = page_session(&s, "m-1", "mallory").await;
    let body = format!("csrf={mcsrf}&id={}", listed[0].id);
    let r = post(&s.gw, "/.vestibule/devices/revoke", &refs(&mh), FORM, &body).await;
    assert_eq!(r.status, 404);

    // The owner revokes it: gone within a second.
    let body = format!("csrf={csrf}&id={}", listed[0].id);
    let r = post(&s.gw, "/.vestibule/devices/revoke", &refs(&h), FORM, &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let gw = s.gw.addr;
    let auth = format!("Bearer {secret}");
    until_status(401, async || {
        Raw::get(gw, UNTRUSTED, "/api/x", &[("Authorization", &auth)])
            .await
            .status
    })
    .await;

    // An app password: Basic, and a server address with it; it works as
    // Basic and as nothing else.
    let body = format!("csrf={csrf}&name=Player&kind=app-password&route=music&expires_days=0");
    let r = post(&s.gw, "/.vestibule/devices/new", &refs(&h), FORM, &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let shown = r.header("location").unwrap().to_owned();
    let r = Raw::get(s.gw.addr, TRUSTED, &shown, &refs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    let secret = between(
        &html,
        "<input id=\"secret\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    assert!(
        html.contains(&format!("http://alice:{secret}@app.test/")),
        "{html}"
    );
    assert!(!html.contains(&format!("Bearer {secret}")), "{html}");
    let basic = basic("alice", &secret);
    let r = Raw::get(gw, UNTRUSTED, "/music/x", &[("Authorization", &basic)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn pairing_needs_the_code_once_and_a_confirmation() {
    let s = setup("").await;
    sign_in(&s, "a-1", "alice").await;
    let (h, csrf, _) = page_session(&s, "a-1", "alice").await;

    let start = |csrf: String| {
        let h = h.clone();
        let gw = &s.gw;
        async move {
            let body = format!("csrf={csrf}&route=api");
            let r = post(gw, "/.vestibule/devices/pair", &refs(&h), FORM, &body).await;
            assert_eq!(r.status, 303, "{}", r.text());
            let page = r.header("location").unwrap().to_owned();
            let id: i64 = page
                .strip_prefix("/.vestibule/devices/pair/")
                .unwrap()
                .parse()
                .unwrap();
            let r = Raw::get(gw.addr, TRUSTED, &page, &refs(&h)).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let html = r.text();
            let code = between(&html, "id=\"pairing-code\">", "<").to_owned();
            assert!(html.contains("<svg"), "a QR code");
            (code, id)
        }
    };
    let (code, id) = start(csrf.clone()).await;
    assert_eq!(code.len(), 11, "{code}");

    // A wrong code: 404.
    let r = post(
        &s.gw,
        "/.vestibule/pair",
        &[],
        "application/json",
        r#"{"code":"00000-00000","name":"Pixel"}"#,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_code");

    // The device redeems it (typed in lower case, without the dash).
    let typed = code.replace('-', "").to_lowercase();
    let r = post(
        &s.gw,
        "/.vestibule/pair",
        &[],
        "application/json",
        &format!(r#"{{"code":"{typed}","name":"Pixel 8"}}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let claim = r.json()["claim"].as_str().unwrap().to_owned();
    // Single use: a second device cannot redeem the same code.
    let r = post(
        &s.gw,
        "/.vestibule/pair",
        &[],
        FORM,
        &format!("code={code}&name=Intruder"),
    )
    .await;
    assert_eq!(r.status, 404);

    // Nothing is issued before the person confirms.
    let poll = |claim: String| {
        let gw = &s.gw;
        async move {
            post(
                gw,
                "/.vestibule/pair/poll",
                &[],
                "application/json",
                &format!(r#"{{"claim":"{claim}"}}"#),
            )
            .await
        }
    };
    let r = poll(claim.clone()).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "pending");

    // The page shows the device's name; confirming needs the CSRF token.
    let r = Raw::get(
        s.gw.addr,
        TRUSTED,
        &format!("/.vestibule/devices/pair/{id}"),
        &refs(&h),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Pixel 8"), "{}", r.text());
    // With where it came from: the devices test client is 127.0.0.1.
    assert!(r.text().contains("from 127.0.0.1, "), "{}", r.text());
    let path = format!("/.vestibule/devices/pair/{id}");
    let r = post(&s.gw, &path, &refs(&h), FORM, "decision=confirm&csrf=nope").await;
    assert_eq!(r.status, 403);
    let r = poll(claim.clone()).await;
    assert_eq!(r.status, 202);
    // Another person cannot see or confirm it.
    sign_in(&s, "m-1", "mallory").await;
    let (mh, mcsrf, _) = page_session(&s, "m-1", "mallory").await;
    let r = post(
        &s.gw,
        &path,
        &refs(&mh),
        FORM,
        &format!("decision=confirm&csrf={mcsrf}"),
    )
    .await;
    assert_eq!(r.status, 409);

    let r = post(
        &s.gw,
        &path,
        &refs(&h),
        FORM,
        &format!("decision=confirm&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = poll(claim.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["user"], "alice");
    assert_eq!(j["routes"], serde_json::json!(["api"]));
    let credential = j["credential"].as_str().unwrap().to_owned();
    // Collected exactly once.
    assert_eq!(poll(claim).await.status, 410);
    // The credential works, as alice, on the paired route only.
    let auth = format!("Bearer {credential}");
    let r = Raw::get(s.gw.addr, UNTRUSTED, "/api/x", &[("Authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(identity_of(&r).as_deref(), Some("alice"));
    let listed = s.store.devices_of(None).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|d| d.name == "Pixel 8" && d.kind == "paired")
    );

    // A refused pairing issues nothing.
    let (code, id) = start(csrf.clone()).await;
    let r = post(
        &s.gw,
        "/.vestibule/pair",
        &[],
        FORM,
        &format!("code={code}&name=Unknown+tablet"),
    )
    .await;
    let claim = r.json()["claim"].as_str().unwrap().to_owned();
    let path = format!("/.vestibule/devices/pair/{id}");
    let r = post(
        &s.gw,
        &path,
        &refs(&h),
        FORM,
        &format!("decision=refuse&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = poll(claim).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "access_denied");

    // An expired code is refused.
    let alice = s
        .store
        .account_by_identity(&IdentityKey::new("authentik", "a-1"))
        .await
        .unwrap()
        .unwrap()
        .id;
    let canonical = "ABCDE-FGH12";
    s.store
        .create_pairing(
            alice,
            &hash_token(canonical),
            &["api".to_owned()],
            now_ms() - 600_000,
            now_ms() - 1,
        )
        .await
        .unwrap();
    let r = post(
        &s.gw,
        "/.vestibule/pair",
        &[],
        FORM,
        &format!("code={canonical}&name=Late"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Pairing codes (50 bits, 5 minutes) and claim secrets are credentials
/// too: guessing either is limited per client address like device
/// credentials, and while blocked even the right code is refused.
#[tokio::test]
async fn pairing_guesses_are_rate_limited() {
    let s = setup("[devices]\nfailures_per_minute = 3\n").await;
    sign_in(&s, "a-1", "alice").await;
    let (h, csrf, _) = page_session(&s, "a-1", "alice").await;
    let body = format!("csrf={csrf}&route=api");
    let r = post(&s.gw, "/.vestibule/devices/pair", &refs(&h), FORM, &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = r.header("location").unwrap().to_owned();
    let r = Raw::get(s.gw.addr, TRUSTED, &page, &refs(&h)).await;
    let html = r.text();
    let code = between(&html, "id=\"pairing-code\">", "<").to_owned();

    let claim = |code: String| {
        let gw = &s.gw;
        async move {
            post(
                gw,
                "/.vestibule/pair",
                &[],
                "application/json",
                &format!(r#"{{"code":"{code}","name":"Guesser"}}"#),
            )
            .await
        }
    };
    for i in 0..5 {
        let r = claim(format!("0000{i}-00000")).await;
        let want = if i < 3 { 404 } else { 429 };
        assert_eq!(r.status, want, "guess {i}: {}", r.text());
        if want == 429 {
            assert!(r.header("retry-after").is_some());
        }
    }
    // Blocked: the right code is refused too, and stays redeemable.
    assert_eq!(claim(code.clone()).await.status, 429);

    // Claim secrets from the poll endpoint count the same way.
    let r = post(
        &s.gw,
        "/.vestibule/pair/poll",
        &[],
        "application/json",
        r#"{"claim":"vsp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let m = s.gw.metrics().await;
    assert!(
        m.contains(r#"vestibule_auth_decisions_total{source="device",result="rate_limited"}"#),
        "{m}"
    );
}

/// A credential header with a name of the operator's choosing is removed
/// under every spelling before the app (CGI reads `X_App_Key` as
/// `X-App-Key`), not only the configured one.
#[tokio::test]
async fn a_custom_credential_header_never_reaches_the_app_in_any_spelling() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = format!(
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n",
        data.display()
    );
    let routes = route(
        "api",
        "/",
        up,
        "credentials = [\"header\"]\ncredential_header = \"X-App-Key\"",
    );
    let gw = Gateway::start_in(dir, &config(&src, &routes), &[]).await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("Remote-User", "alice"),
            ("X_App_Key", "not-for-the-app"),
            ("x_APP-key", "nor-this"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.seen_headers();
    assert!(
        !seen.keys().any(|k| k.replace('_', "-") == "x-app-key"),
        "{seen:?}"
    );
    assert!(!r.text().contains("not-for-the-app") && !r.text().contains("nor-this"));
}

#[tokio::test]
async fn the_session_cookie_never_reaches_the_app() {
    let s = setup("").await;
    sign_in(&s, "a-1", "alice").await;
    let (h, _, _) = page_session(&s, "a-1", "alice").await;
    let session = h.iter().find(|(n, _)| n == "Cookie").unwrap().1.clone();
    assert!(session.starts_with("vestibule=vss_"), "{session}");
    let mut sso_only = h.clone();
    sso_only.retain(|(n, _)| n != "Cookie");
    let secret = session["vestibule=".len()..].to_owned();
    let gw = s.gw.addr;
    let seen_cookies = async |cookies: Vec<&str>| {
        let mut headers = sso_only.clone();
        headers.extend(
            cookies
                .into_iter()
                .map(|c| ("Cookie".to_owned(), c.to_owned())),
        );
        let r = Raw::get(gw, TRUSTED, "/plain/x", &refs(&headers)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(identity_of(&r).as_deref(), Some("alice"));
        assert!(
            !r.text().contains(&secret),
            "the session secret reached whoami"
        );
        r.seen_headers().remove("cookie").unwrap_or_default()
    };
    // The app's own cookies pass, byte for byte and in order.
    let mixed = format!("theme=dark; {session}; lang=fr;x=\"1 2\"");
    assert_eq!(
        seen_cookies(vec![&mixed]).await,
        ["theme=dark; lang=fr; x=\"1 2\""]
    );
    // Only ours: no Cookie header at all.
    assert!(seen_cookies(vec![&session]).await.is_empty());
    // The __Host- name, on a second line, as HTTP/2 clients split them.
    let host = "__Host-vestibule=vss_other";
    let got = seen_cookies(vec!["a=1", host, &session, "b=2"]).await;
    assert_eq!(got.join("; "), "a=1; b=2", "{got:?}");
    // Untouched without ours.
    assert_eq!(seen_cookies(vec!["a=1;b=2"]).await, ["a=1;b=2"]);
}
