//! `[source.oidc]` re-checks (issue 15) against a REAL upstream provider:
//! as in `oidc_login.rs`, a second `vestibule serve` runs its OpenID
//! provider and the downstream gateway signs in against it. The
//! downstream asks for `offline_access`, so the upstream issues refresh
//! tokens (rotated at each use); without it, the re-check asks userinfo.
//!
//! The upstream account is disabled with the real CLI (`vestibule users
//! disable`) against the upstream's configuration and store; the
//! upstream is "unreachable" once its process is killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule::identity::oidc_recheck::{SessionTokens, open};
use vestibule::keys::kek::Kek;
use vestibule_core::secret::hash_token;
use vestibule_store::oidc_login::OidcSessionTokens;
use vestibule_store::{PrivateKeyFormat, Store};

use crate::admin_cli::cli;
use crate::oidc_login::{Pair, account_of, at, down_store, location, pair_with, session, sign_in};
use crate::support::*;

const OFFLINE: &str =
    "scopes = [\"openid\", \"profile\", \"email\", \"groups\", \"offline_access\"]\n";
const KEK_VAR: &str = "TEST_KEK_FOR_OIDC_RECHECK";
const KEK: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// A downstream re-checking every second, with `extra` in `[source.oidc]`.
async fn pair(extra: &str, down_extra: &str, env: &[(&str, &str)]) -> Pair {
    pair_with(
        &format!("{OFFLINE}recheck_every = \"1s\"\n{extra}"),
        down_extra,
        env,
    )
    .await
}

/// The signed-in session is served (200), or not (a redirect to login).
async fn alive(p: &Pair, cookie: &str) -> bool {
    let r = at(
        p.down.addr,
        UNTRUSTED,
        "/hello",
        &[("Cookie", &session(cookie))],
    )
    .await;
    match r.status {
        200 => true,
        // Without a session: 401 to a client that is not a browser.
        302 | 303 | 401 => false,
        other => panic!("unexpected {other}: {}", r.text()),
    }
}

/// The session's stored provider tokens (raw, as in the row).
async fn stored(store: &Arc<dyn Store>, cookie: &str) -> Option<OidcSessionTokens> {
    store.oidc_tokens(&hash_token(cookie)).await.unwrap()
}

/// The session's tokens, opened (plain rows need no key).
async fn tokens(store: &Arc<dyn Store>, cookie: &str, kek: Option<&Kek>) -> SessionTokens {
    let raw = stored(store, cookie).await.expect("the session's tokens");
    open(kek, &hash_token(cookie), &raw).unwrap()
}

/// Waits (up to `limit`) until `f` holds.
async fn until(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The audit entries of action `oidc-recheck`: (outcome, detail).
async fn recheck_audit(store: &Arc<dyn Store>) -> Vec<(String, String)> {
    let filter = vestibule_store::AuditFilter {
        since: None,
        action: Some("oidc-recheck".into()),
        subject: None,
        limit: 100,
    };
    store
        .audit(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.outcome, e.detail))
        .collect()
}

/// Disables alice at the upstream with the CLI, on its configuration.
async fn disable_upstream_alice(p: &Pair) {
    let cfg = p.up._dir.path().join("vestibule.toml");
    let o = cli(&cfg, &["users", "disable", "alice"]).await;
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
}

#[tokio::test]
async fn scheduled_recheck_keeps_a_good_session_and_rotates_the_refresh_token() {
    let p = pair("", "", &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let first = tokens(&store, &cookie, None).await;
    let first_checked = stored(&store, &cookie).await.unwrap().checked_at;
    let first_refresh = first
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");
    // Within a few rounds the scheduled re-check has refreshed: a new
    // refresh token (the upstream rotates them) and a later check time.
    until(
        Duration::from_secs(30),
        "a re-check rotated the refresh token",
        async || {
            tokens(&store, &cookie, None).await.refresh_token.as_deref() != Some(&first_refresh)
        },
    )
    .await;
    let after = stored(&store, &cookie).await.unwrap();
    assert!(after.checked_at > first_checked);
    assert!(after.next_check_at > after.checked_at);
    let now = tokens(&store, &cookie, None).await;
    assert_ne!(now.access_token, first.access_token);
    assert_eq!(now.nonce, first.nonce, "the login's nonce is kept");
    // And keeps rotating: the stored one is the one in use at the upstream
    // (using an old, rotated one would have revoked the family).
    let second = now.refresh_token.unwrap();
    until(Duration::from_secs(30), "a second rotation", async || {
        tokens(&store, &cookie, None).await.refresh_token.as_deref() != Some(&second)
    })
    .await;
    assert!(alive(&p, &cookie).await);
    assert!(recheck_audit(&store).await.is_empty(), "nothing ended");
    let m = p.down.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("vestibule_oidc_login_rechecks_total{outcome=\"vouched\"}")),
        "{m}"
    );
}

#[tokio::test]
async fn upstream_account_disabled_ends_the_session_at_the_next_recheck() {
    let p = pair("", "", &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    assert!(alive(&p, &cookie).await);
    disable_upstream_alice(&p).await;
    // recheck_every is 1 s: the refresh is refused (invalid_grant) and the
    // session ends through the store.
    until(Duration::from_secs(20), "the session ended", async || {
        !alive(&p, &cookie).await
    })
    .await;
    assert!(store.session(&hash_token(&cookie)).await.unwrap().is_none());
    assert!(
        stored(&store, &cookie).await.is_none(),
        "its tokens went with it"
    );
    // The audit entry follows the end.
    until(Duration::from_secs(5), "the audit entry", async || {
        !recheck_audit(&store).await.is_empty()
    })
    .await;
    let audit = recheck_audit(&store).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "ended");
    assert!(audit[0].1.contains("refused"), "{audit:?}");
    let m = p.down.metrics().await;
    assert!(
        m.lines()
            .any(|l| l == "vestibule_oidc_login_rechecks_total{outcome=\"refused\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn unreachable_upstream_keeps_the_session_within_grace_then_ends_it() {
    let mut p = pair("recheck_grace = \"8s\"\n", "", &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    p.up.child.kill().await.unwrap();
    let vouched_at = stored(&store, &cookie).await.unwrap().checked_at;
    // A re-check failed (next_check_at moved on, checked_at did not), and
    // the session lives on: within the grace.
    until(Duration::from_secs(20), "a failed re-check", async || {
        let s = stored(&store, &cookie).await.unwrap();
        s.checked_at == vouched_at && s.next_check_at > vouched_at + 1_500
    })
    .await;
    assert!(alive(&p, &cookie).await, "kept within recheck_grace");
    assert!(recheck_audit(&store).await.is_empty());
    // Once the grace has passed since the provider last vouched: ended.
    until(Duration::from_secs(40), "the session ended", async || {
        !alive(&p, &cookie).await
    })
    .await;
    assert!(
        vestibule::accounts::now_ms() - vouched_at >= 8_000,
        "not before the grace"
    );
    // The audit entry follows the end.
    until(Duration::from_secs(5), "the audit entry", async || {
        !recheck_audit(&store).await.is_empty()
    })
    .await;
    let audit = recheck_audit(&store).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "failed");
    assert!(audit[0].1.contains("recheck_grace"), "{audit:?}");
}

/// The devices page's CSRF token for a session.
async fn csrf(p: &Pair, cookie: &str) -> String {
    let r = at(
        p.down.addr,
        UNTRUSTED,
        "/.vestibule/devices",
        &[("Cookie", &session(cookie))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    let start = t.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    t[start..start + t[start..].find('"').unwrap()].to_owned()
}

async fn create_device(p: &Pair, cookie: &str, csrf: &str, name: &str) -> Raw {
    let body = format!("csrf={csrf}&name={name}&kind=token&route=app&expires_days=0");
    let req = format!(
        "POST /.vestibule/devices/new HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        p.down.addr,
        session(cookie),
        body.len()
    );
    Raw::send(p.down.addr, UNTRUSTED, req.as_bytes()).await
}

#[tokio::test]
async fn a_sensitive_step_rechecks_first_and_is_refused_after_an_upstream_refusal() {
    // No scheduled re-check in the test's time: the step's own does it.
    let p = pair_with(&format!("{OFFLINE}recheck_every = \"1h\"\n"), "", &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let before = tokens(&store, &cookie, None).await.refresh_token;
    let token = csrf(&p, &cookie).await;
    // The provider vouches: the device is created, and the re-check ran
    // (the refresh token rotated).
    let r = create_device(&p, &cookie, &token, "Phone").await;
    assert!(matches!(r.status, 200 | 303), "{} {}", r.status, r.text());
    assert_ne!(tokens(&store, &cookie, None).await.refresh_token, before);
    assert_eq!(store.devices_of(None).await.unwrap().len(), 1);

    disable_upstream_alice(&p).await;
    // Still served until a re-check asks (the next scheduled one is an
    // hour away)...
    assert!(alive(&p, &cookie).await);
    // ... but the sensitive step asks now: refused, the session ended,
    // nothing created.
    let r = create_device(&p, &cookie, &token, "Laptop").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.text().contains("no longer accepts your sign-in"),
        "{}",
        r.text()
    );
    assert_eq!(store.devices_of(None).await.unwrap().len(), 1);
    assert!(!alive(&p, &cookie).await);
    let r = at(
        p.down.addr,
        UNTRUSTED,
        "/.vestibule/devices",
        &[("Cookie", &session(&cookie))],
    )
    .await;
    assert_ne!(r.status, 200);
    let audit = recheck_audit(&store).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "ended");
}

#[tokio::test]
async fn tokens_are_stored_sealed_when_a_kek_is_configured() {
    let p = pair(
        "",
        &format!("[keys]\nkek_env = \"{KEK_VAR}\"\n"),
        &[(KEK_VAR, KEK)],
    )
    .await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let raw = stored(&store, &cookie).await.unwrap();
    assert_eq!(raw.format, PrivateKeyFormat::Aes256Gcm);
    let kek = Kek::from_base64(KEK).unwrap();
    let t = open(Some(&kek), &hash_token(&cookie), &raw).unwrap();
    let refresh = t.refresh_token.clone().unwrap();
    let link = store
        .oidc_session_link(&hash_token(&cookie))
        .await
        .unwrap()
        .unwrap();
    assert!(link.id_token.is_empty(), "no plaintext ID token column");
    // No token's bytes in the row, nor anywhere in the database files
    // (the main file and its write-ahead log).
    let secrets = [
        refresh.as_str(),
        t.access_token.as_str(),
        t.id_token.as_str(),
    ];
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for s in secrets {
        assert!(!contains(&raw.tokens, s));
    }
    // After a rotation too.
    until(
        Duration::from_secs(30),
        "a re-check rotated the refresh token",
        async || {
            let raw = stored(&store, &cookie).await.unwrap();
            open(Some(&kek), &hash_token(&cookie), &raw)
                .unwrap()
                .refresh_token
                .as_deref()
                != Some(&refresh)
        },
    )
    .await;
    let t2 = tokens(&store, &cookie, Some(&kek)).await;
    let data = p.down._dir.path().join("data");
    for file in ["vestibule.db", "vestibule.db-wal"] {
        let Ok(bytes) = std::fs::read(data.join(file)) else {
            continue;
        };
        for s in [
            &refresh,
            t2.refresh_token.as_ref().unwrap(),
            &t2.access_token,
            &t2.id_token,
            &t.id_token,
        ] {
            assert!(!contains(&bytes, s), "{file} holds a token in plaintext");
        }
    }
    // Without the key, or for another session, the row does not open.
    assert!(open(None, &hash_token(&cookie), &raw).is_err());
    assert!(open(Some(&kek), &[0; 32], &raw).is_err());
    // Logout still finds the ID token for id_token_hint.
    let r = at(
        p.down.addr,
        UNTRUSTED,
        "/.vestibule/logout",
        &[("Accept", "text/html"), ("Cookie", &session(&cookie))],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(location(&r).contains("id_token_hint="), "{}", location(&r));
}

#[tokio::test]
async fn the_absolute_session_lifetime_ends_an_oidc_session_that_is_still_vouched_for() {
    // No offline_access: no refresh token, so the re-check asks userinfo
    // with the access token. The provider keeps vouching, yet the session
    // ends at its absolute lifetime.
    let p = pair_with(
        "recheck_every = \"1s\"\n",
        "[sessions]\nidle_timeout = \"6s\"\nabsolute_timeout = \"6s\"\n",
        &[],
    )
    .await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let t = tokens(&store, &cookie, None).await;
    assert!(t.refresh_token.is_none());
    let s = store.session(&hash_token(&cookie)).await.unwrap().unwrap();
    assert_eq!(s.expires_at - s.created_at, 6_000);
    let first = stored(&store, &cookie).await.unwrap().checked_at;
    // userinfo vouched at a later re-check, and the session is served.
    until(Duration::from_secs(5), "a userinfo re-check", async || {
        stored(&store, &cookie).await.unwrap().checked_at > first
    })
    .await;
    assert!(alive(&p, &cookie).await);
    until(Duration::from_secs(20), "the session ended", async || {
        !alive(&p, &cookie).await
    })
    .await;
    assert!(vestibule::accounts::now_ms() >= s.expires_at);
    assert!(
        recheck_audit(&store).await.is_empty(),
        "not ended by a re-check"
    );
}

/// SSO freshness (`max_sso_age`) of device credentials: requests carrying
/// the live OIDC session keep the account seen, so its device keeps
/// working; once the upstream refuses and the re-check ends the session,
/// the same browsing no longer counts and the device lapses.
#[tokio::test]
async fn an_ended_upstream_session_no_longer_keeps_device_credentials_fresh() {
    let app = start_whoami().await;
    let stale = route(
        "stale",
        "/stale",
        app,
        "credentials = [\"bearer\"]\nmax_sso_age = \"4s\"",
    );
    let p = pair("", &stale, &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let account = account_of(&store, &cookie).await;
    let token = vestibule_core::credential::device_token(rand::random())
        .expose()
        .to_owned();
    let now = vestibule::accounts::now_ms();
    store
        .create_device(&vestibule_store::NewDevice {
            account_id: account,
            name: "phone".into(),
            kind: "token".into(),
            routes: vec!["stale".into()],
            secret_hash: hash_token(&token),
            basic_user: Some("alice".into()),
            created_at: now,
            expires_at: None,
        })
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    let device = async || {
        Raw::get(
            p.down.addr,
            UNTRUSTED,
            "/stale/x",
            &[("Authorization", &bearer)],
        )
        .await
        .status
    };
    // Browsing with the live session for longer than max_sso_age: the
    // device keeps working throughout.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        assert!(alive(&p, &cookie).await);
        assert_eq!(device().await, 200, "fresh while the session is live");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    disable_upstream_alice(&p).await;
    until(Duration::from_secs(20), "the session ended", async || {
        !alive(&p, &cookie).await
    })
    .await;
    // The same browsing goes on, without a session: the device lapses
    // (403, "sign in with a browser") within max_sso_age.
    let ended = Instant::now();
    loop {
        assert!(!alive(&p, &cookie).await);
        let r = Raw::get(
            p.down.addr,
            UNTRUSTED,
            "/stale/x",
            &[("Authorization", &bearer)],
        )
        .await;
        if r.status == 403 {
            assert!(r.text().contains("browser"), "{}", r.text());
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            ended.elapsed() < Duration::from_secs(15),
            "the device is still fresh"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Alice's groups at the upstream become `groups`: she browses the
/// upstream's own app route through its trusted front with them, and the
/// upstream writes them to her account there.
async fn regroup_upstream_alice(p: &Pair, groups: &str) {
    let mut h = crate::oidc_login::ALICE.to_vec();
    h.retain(|(n, _)| *n != "Remote-Groups");
    h.push(("Remote-Groups", groups));
    let r = Raw::get(p.up.addr, TRUSTED, "/", &h).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// OIDC Core §12.2: the refreshed ID token states the claims as the
/// provider holds them now. A group given at the upstream reaches the
/// downstream account at the next re-check (a route for that group lets
/// her in), and one taken away stops counting, without a new login;
/// restating is not a sighting.
#[tokio::test]
async fn groups_changed_at_the_upstream_reach_the_account_at_the_next_recheck() {
    let app = start_whoami().await;
    let staff = route("staff", "/staff", app, "allow_groups = [\"staff\"]");
    let p = pair("", &staff, &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    let account = account_of(&store, &cookie).await;
    let groups = async || store.account(account).await.unwrap().unwrap().groups;
    assert_eq!(groups().await, vec!["users".to_owned()]);
    let at_staff = async || {
        at(
            p.down.addr,
            UNTRUSTED,
            "/staff/x",
            &[("Cookie", &session(&cookie))],
        )
        .await
        .status
    };
    assert_eq!(at_staff().await, 403);
    // Her requests are sightings, written behind them: wait until the
    // last has landed (the value holds still).
    let last_seen = async || store.account(account).await.unwrap().unwrap().last_seen_at;
    let mut seen = last_seen().await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = last_seen().await;
        if now == seen {
            break;
        }
        seen = now;
    }

    regroup_upstream_alice(&p, "users,staff").await;
    until(
        Duration::from_secs(30),
        "staff reached the account",
        async || groups().await.contains(&"staff".to_owned()),
    )
    .await;
    // Nothing of hers reached the downstream since: the restated account
    // was not seen (SSO freshness moves only with her requests).
    let restated = store.account(account).await.unwrap().unwrap();
    assert_eq!(restated.last_seen_at, seen, "a re-check is not a sighting");
    assert!(restated.updated_at > seen);
    until(
        Duration::from_secs(5),
        "the staff route lets her in",
        async || at_staff().await == 200,
    )
    .await;

    regroup_upstream_alice(&p, "users").await;
    until(
        Duration::from_secs(30),
        "staff left the account",
        async || !groups().await.contains(&"staff".to_owned()),
    )
    .await;
    until(
        Duration::from_secs(5),
        "the staff route refuses her",
        async || at_staff().await == 403,
    )
    .await;
    assert!(alive(&p, &cookie).await, "the session itself lives on");
    assert!(recheck_audit(&store).await.is_empty(), "nothing ended");
}

/// A person the login would refuse is refused at the re-check too: out of
/// every `allowed_groups` at the upstream, the session ends.
#[tokio::test]
async fn leaving_every_allowed_group_at_the_upstream_ends_the_session() {
    let p = pair("allowed_groups = [\"users\"]\n", "", &[]).await;
    let cookie = sign_in(&p, &format!("http://{}/hello", p.down.addr)).await;
    let store = down_store(&p).await;
    assert!(alive(&p, &cookie).await);
    regroup_upstream_alice(&p, "guests").await;
    until(Duration::from_secs(30), "the session ended", async || {
        !alive(&p, &cookie).await
    })
    .await;
    assert!(store.session(&hash_token(&cookie)).await.unwrap().is_none());
    until(Duration::from_secs(5), "the audit entry", async || {
        !recheck_audit(&store).await.is_empty()
    })
    .await;
    let audit = recheck_audit(&store).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "ended");
    assert!(audit[0].1.contains("allowed_groups"), "{audit:?}");
}

/// Several sessions due at once are re-checked side by side (several in
/// flight against the one upstream): each keeps its own rotated refresh
/// token, none is refused or lost.
#[tokio::test]
async fn many_sessions_due_at_once_are_each_rechecked() {
    let p = pair("", "", &[]).await;
    let mut cookies = Vec::new();
    for _ in 0..12 {
        cookies.push(sign_in(&p, &format!("http://{}/hello", p.down.addr)).await);
    }
    let store = down_store(&p).await;
    let mut first = Vec::new();
    for c in &cookies {
        first.push(tokens(&store, c, None).await.refresh_token.unwrap());
    }
    until(
        Duration::from_secs(30),
        "every session's refresh token rotated",
        async || {
            for (c, f) in cookies.iter().zip(&first) {
                if tokens(&store, c, None).await.refresh_token.as_deref() == Some(f) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for c in &cookies {
        assert!(alive(&p, c).await);
    }
    assert!(recheck_audit(&store).await.is_empty(), "nothing ended");
}
