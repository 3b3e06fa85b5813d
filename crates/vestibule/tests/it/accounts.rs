//! Accounts on embedded SQLite: provisioning, status, attribute sync,
//! revocation seen by the running gateway, roles. The test changes accounts
//! through a second handle on the same database file, as the admin CLI does
//! while the server runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule_store::{AccountStatus, IdentityKey, Store, StoreConfig};

use crate::support::*;

struct Setup {
    gw: Gateway,
    store: Arc<dyn Store>,
}

async fn setup(provisioning: &str, extra_source: &str, routes_extra: &str) -> Setup {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"{provisioning}\"\n{extra_source}\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\ncache_ttl = \"60s\"\n[accounts.roles]\nadmin = [\"admins\"]\n",
        data.display()
    );
    let routes = [
        route("admin", "/admin", up, "allow_roles = [\"admin\"]"),
        route("app", "/", up, routes_extra),
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

fn who<'a>(uid: &'a str, user: &'a str, groups: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-authentik-uid", uid),
        ("X-authentik-username", user),
        ("X-authentik-email", "shared@example.com"),
        ("X-authentik-groups", groups),
    ]
}

fn key(uid: &str) -> IdentityKey {
    IdentityKey::new("authentik", uid)
}

#[tokio::test]
async fn approval_flow_and_instant_disable() {
    let s = setup("approval", "", "").await;
    let carol = who("c-1", "carol", "users");
    // First sighting: a pending account, a clear page, the app never reached.
    let r = Raw::get(
        s.gw.addr,
        TRUSTED,
        "/",
        &[carol.clone(), vec![("Accept", "text/html")]].concat(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("waiting for an administrator"),
        "{}",
        r.text()
    );
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(!r.text().contains("\"headers\""), "the app was reached");
    let account = s
        .store
        .account_by_identity(&key("c-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.status, AccountStatus::Pending);

    // An admin approves: the running gateway lets carol in within a second.
    assert!(
        s.store
            .set_status(account.id, AccountStatus::Active, 0)
            .await
            .unwrap()
    );
    let took = until_status(200, async || {
        Raw::get(s.gw.addr, TRUSTED, "/", &carol).await.status
    })
    .await;
    eprintln!("approval seen by the gateway after {took:?}");
    assert!(took <= Duration::from_secs(1), "{took:?}");

    // Disabled: refused everywhere within a second, although cached for 60 s.
    assert!(
        s.store
            .set_status(account.id, AccountStatus::Disabled, 0)
            .await
            .unwrap()
    );
    let took = until_status(403, async || {
        Raw::get(s.gw.addr, TRUSTED, "/", &carol).await.status
    })
    .await;
    eprintln!("disable seen by the gateway after {took:?}");
    assert!(took <= Duration::from_secs(1), "{took:?}");
    let r = Raw::get(s.gw.addr, TRUSTED, "/", &carol).await;
    assert!(r.text().contains("disabled"), "{}", r.text());
    // Deleted: with approval provisioning she is a new, pending person again.
    assert!(s.store.delete_account(account.id).await.unwrap());
    let took = until_status(403, async || {
        let r = Raw::get(s.gw.addr, TRUSTED, "/", &carol).await;
        if r.text().contains("waiting") { 403 } else { 0 }
    })
    .await;
    assert!(took <= Duration::from_secs(1), "{took:?}");
    // Every decision is in the audit log.
    let log = s
        .store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: None,
            subject: None,
            limit: 50,
        })
        .await
        .unwrap();
    assert!(
        log.iter().any(|e| e.action == "provision"
            && e.outcome == "pending"
            && e.subject == "authentik:c-1"),
        "{log:?}"
    );
}

#[tokio::test]
async fn auto_provisioning_syncs_attributes_and_never_matches_by_email() {
    let s = setup("auto", "", "").await;
    let r = Raw::get(s.gw.addr, TRUSTED, "/", &who("u-1", "dave", "users")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.seen_headers()["remote-user"], ["dave"]);
    // Same email, different subject: a different person, a different account.
    let r = Raw::get(s.gw.addr, TRUSTED, "/", &who("u-2", "dave2", "users")).await;
    assert_eq!(r.status, 200);
    let a1 = s
        .store
        .account_by_identity(&key("u-1"))
        .await
        .unwrap()
        .unwrap();
    let a2 = s
        .store
        .account_by_identity(&key("u-2"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a1.id, a2.id);
    // The IdP renames dave and changes his groups: the account follows.
    let r = Raw::get(s.gw.addr, TRUSTED, "/", &who("u-1", "david", "users|media")).await;
    assert_eq!(r.seen_headers()["remote-user"], ["david"]);
    let started = Instant::now();
    loop {
        let a = s.store.account(a1.id).await.unwrap().unwrap();
        if a.username == "david" && a.groups == ["users", "media"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "attributes never synced: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn existing_only_and_auto_if_group() {
    let s = setup("existing-only", "", "").await;
    let r = Raw::get(s.gw.addr, TRUSTED, "/", &who("x-1", "eve", "users")).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no account"), "{}", r.text());
    assert!(
        s.store
            .account_by_identity(&key("x-1"))
            .await
            .unwrap()
            .is_none()
    );

    let s = setup("auto-if-group", "provision_groups = [\"family\"]", "").await;
    assert_eq!(
        Raw::get(s.gw.addr, TRUSTED, "/", &who("f-1", "fay", "family"))
            .await
            .status,
        200
    );
    assert_eq!(
        Raw::get(s.gw.addr, TRUSTED, "/", &who("g-1", "gil", "guests"))
            .await
            .status,
        403
    );
    assert!(
        s.store
            .account_by_identity(&key("g-1"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn roles_come_from_the_group_mapping() {
    let s = setup("auto", "", "").await;
    assert_eq!(
        Raw::get(s.gw.addr, TRUSTED, "/admin", &who("a-1", "ann", "admins"))
            .await
            .status,
        200
    );
    assert_eq!(
        Raw::get(s.gw.addr, TRUSTED, "/admin", &who("b-1", "ben", "users"))
            .await
            .status,
        403
    );
}
