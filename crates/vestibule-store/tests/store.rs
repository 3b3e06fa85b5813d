//! One suite, two backends: every `case_*` runs against a fresh SQLite file
//! and against a fresh database on a private PostgreSQL cluster
//! (`vestibule_store::testkit`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use vestibule_store::{
    Account, AccountStatus, Attributes, AuditEntry, AuditFilter, Backend, BulkLoad, Change, Device,
    DeviceWithOwner, DirectoryEntry, IdentityKey, NewAccount, NewDevice, Pairing, PairingPoll,
    PairingState, PrivateKeyFormat, Session, Store, StoreConfig, StoreError, StoredSigningKey,
    testkit,
};
use vestibule_store::{ClientCertificate, StoredClientCa};

/// Cases taking a fresh store, opened by `$open`, in modules `$sqlite` and
/// `$postgres`.
macro_rules! on_both_backends {
    ($open:ident => $sqlite:ident, $postgres:ident: $($case:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::$open(&vestibule_store::testkit::sqlite_url(dir.path())).await;
                    super::$case(store).await;
                }
            )*
        }
        mod $postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::$open(&vestibule_store::testkit::postgres_url()).await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

/// Cases taking the URL of a fresh database (they open it themselves).
macro_rules! on_both_backends_by_url {
    ($($case:ident),* $(,)?) => {
        mod sqlite_url {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$case(vestibule_store::testkit::sqlite_url(dir.path())).await;
                }
            )*
        }
        mod postgres_url {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(vestibule_store::testkit::postgres_url()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    open => sqlite, postgres:
    case_create_and_look_up,
    case_directory_entries,
    case_identity_is_unique,
    case_never_matched_by_email_or_username,
    case_link_identity,
    case_update_attributes_and_touch,
    case_status_and_listing,
    case_search_accounts,
    case_delete_cascades,
    case_sessions,
    case_purge_expired_sessions,
    case_audit_filter_order_and_limit,
    case_change_feed_in_process,
    case_devices,
    case_device_with_owner,
    case_delete_account_cascades_devices_and_pairings,
    case_pairing_flow,
    case_pairing_refused,
    case_pairing_expiry_and_purge,
    case_pairing_redeem_conflict_keeps_it_confirmed,
    case_pairing_races,
    case_signing_keys,
    case_client_ca_and_certificates,
    case_certificate_renewal,
    case_signing_key_races,
    case_oidc_login_rows,
    case_oidc_login_tokens_and_rechecks,
);

// Cases that also bulk-load (`BulkLoad`, not part of `Store`).
on_both_backends!(
    open_for_bulk_load => sqlite_bulk, postgres_bulk:
    case_device_revocation_is_published,
    case_devices_bulk,
    case_accounts_bulk,
);

on_both_backends_by_url!(
    case_change_feed_across_instances,
    case_device_revocation_across_instances,
    case_migrate_is_idempotent,
    case_oidc_backchannel_claims_are_exclusive_across_instances,
    case_oidc_recheck_claims_are_exclusive_across_instances,
    case_client_assertions_are_accepted_once_across_instances,
);

async fn open(url: &str) -> Arc<dyn Store> {
    vestibule_store::open(&StoreConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

async fn open_for_bulk_load(url: &str) -> Arc<dyn BulkLoad> {
    vestibule_store::open_for_bulk_load(&StoreConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

fn key(source: &str, subject: &str) -> IdentityKey {
    IdentityKey::new(source, subject)
}

fn new_account(source: &str, subject: &str, now: i64) -> NewAccount {
    NewAccount {
        key: key(source, subject),
        username: subject.to_owned(),
        email: Some(format!("{subject}@example.com")),
        display_name: Some(format!("{subject} Ø \"quoted\"")),
        groups: vec!["users".into(), "a, b|c;d".into()],
        org: None,
        status: AccountStatus::Active,
        now,
    }
}

fn session(id: u8, account_id: i64, expires_at: i64) -> Session {
    Session {
        id_hash: [id; 32],
        account_id,
        source: "headers".into(),
        subject: "s".into(),
        created_at: i64::from(id),
        last_seen_at: i64::from(id),
        expires_at,
        csrf_hash: [id.wrapping_add(100); 32],
        // Even ids carry a browser and an address, odd ones neither (as
        // sessions opened before they were recorded).
        user_agent: id
            .is_multiple_of(2)
            .then(|| format!("Mozilla/5.0 (X11; Linux) Firefox/{id} Ø")),
        client_ip: id.is_multiple_of(2).then(|| format!("2001:db8::{id}")),
    }
}

fn new_device(account_id: i64, secret: u8) -> NewDevice {
    NewDevice {
        account_id,
        name: format!("device {secret} Ø"),
        kind: "bearer".into(),
        routes: vec!["api".into(), "files, \"quoted\"".into()],
        secret_hash: [secret; 32],
        basic_user: None,
        created_at: 100 + i64::from(secret),
        expires_at: None,
    }
}

/// What `create_device` should return for `d` with id `id`.
fn device_as_created(id: i64, d: &NewDevice) -> Device {
    Device {
        id,
        account_id: d.account_id,
        name: d.name.clone(),
        kind: d.kind.clone(),
        routes: d.routes.clone(),
        basic_user: d.basic_user.clone(),
        created_at: d.created_at,
        expires_at: d.expires_at,
        last_used_at: None,
        last_used_ip: None,
    }
}

fn routes(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

async fn next_change(rx: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("no change within 1 s")
        .expect("change channel closed or lagged")
}

/// Nothing more arrives within `wait`.
async fn no_change(rx: &mut broadcast::Receiver<Change>, wait: Duration) {
    if let Ok(got) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected change {got:?}");
    }
}

// ---- cases -------------------------------------------------------------

async fn case_create_and_look_up(store: Arc<dyn Store>) {
    let new = NewAccount {
        org: Some("Example Org".into()),
        ..new_account("headers", "alice", 1_700_000_000_123)
    };
    let created = store.create_account(new.clone()).await.unwrap();
    let expected = Account {
        id: created.id,
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        display_name: Some("alice Ø \"quoted\"".into()),
        groups: vec!["users".into(), "a, b|c;d".into()],
        org: Some("Example Org".into()),
        status: AccountStatus::Active,
        created_at: 1_700_000_000_123,
        updated_at: 1_700_000_000_123,
        last_seen_at: 1_700_000_000_123,
    };
    assert_eq!(created, expected);
    assert_eq!(
        store.account_by_identity(&new.key).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.account(created.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.account(created.id + 1000).await.unwrap(), None);
    assert_eq!(
        store
            .account_by_identity(&key("headers", "bob"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.identities(created.id).await.unwrap(), vec![new.key]);

    // Nones and empty groups round-trip too.
    let bare = store
        .create_account(NewAccount {
            email: None,
            display_name: None,
            groups: vec![],
            status: AccountStatus::Pending,
            ..new_account("headers", "bare", 5)
        })
        .await
        .unwrap();
    let got = store.account(bare.id).await.unwrap().unwrap();
    assert_eq!(got, bare);
    assert_eq!(
        (got.email, got.display_name, got.groups, got.status),
        (None, None, vec![], AccountStatus::Pending)
    );
    assert!(bare.id > created.id);
}

/// The LDAP entry of an account: recorded, replaced in place, gone with
/// the account, refused for an account that does not exist.
async fn case_directory_entries(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1_000))
        .await
        .unwrap();
    assert_eq!(store.directory_entry(a.id).await.unwrap(), None);
    let mut e = DirectoryEntry {
        account_id: a.id,
        dn: "uid=alice,ou=pendingusers,dc=g".into(),
        object_id: "0b8f0d4e-3f5a-4c52-9d07-5b1f3a2e6c11".into(),
        written: false,
        updated_at: 2_000,
    };
    store.put_directory_entry(&e).await.unwrap();
    assert_eq!(store.directory_entry(a.id).await.unwrap(), Some(e.clone()));
    e.dn = "uid=alice,ou=users,dc=g".into();
    e.written = true;
    e.updated_at = 3_000;
    store.put_directory_entry(&e).await.unwrap();
    assert_eq!(store.directory_entry(a.id).await.unwrap(), Some(e.clone()));
    let orphan = DirectoryEntry {
        account_id: a.id + 1000,
        ..e.clone()
    };
    assert!(matches!(
        store.put_directory_entry(&orphan).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.delete_account(a.id).await.unwrap());
    assert_eq!(store.directory_entry(a.id).await.unwrap(), None);
}

async fn case_identity_is_unique(store: Arc<dyn Store>) {
    let first = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let err = store
        .create_account(NewAccount {
            username: "someone-else".into(),
            ..new_account("headers", "alice", 2)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict("the identity headers/alice is already linked to an account".into())
    );
    // The failed create left no account behind (one transaction).
    let all = store.accounts(None, 100).await.unwrap();
    assert_eq!(all, vec![first]);
    assert!(
        store
            .accounts_by_username("someone-else")
            .await
            .unwrap()
            .is_empty()
    );

    // Same subject, other source: another identity, another account.
    let other = store
        .create_account(new_account("oidc", "alice", 3))
        .await
        .unwrap();
    assert_ne!(other.id, all[0].id);
}

async fn case_never_matched_by_email_or_username(store: Arc<dyn Store>) {
    // Same username, same email, different sources: two people.
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(NewAccount {
            key: key("oidc", "0f6c2a"),
            ..new_account("headers", "alice", 2)
        })
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.email, b.email);
    assert_eq!(a.username, b.username);

    let by_a = store
        .account_by_identity(&key("headers", "alice"))
        .await
        .unwrap();
    let by_b = store
        .account_by_identity(&key("oidc", "0f6c2a"))
        .await
        .unwrap();
    assert_eq!(by_a.map(|x| x.id), Some(a.id));
    assert_eq!(by_b.map(|x| x.id), Some(b.id));
    // The username or email as a subject of another source matches nothing.
    for k in [
        key("oidc", "alice"),
        key("oidc", "alice@example.com"),
        key("headers", "alice@example.com"),
        key("headers", "0f6c2a"),
    ] {
        assert_eq!(store.account_by_identity(&k).await.unwrap(), None, "{k}");
    }
    assert_eq!(
        store.identities(a.id).await.unwrap(),
        vec![key("headers", "alice")]
    );
    assert_eq!(
        store.identities(b.id).await.unwrap(),
        vec![key("oidc", "0f6c2a")]
    );

    // The admin lookup by username sees both, in id order.
    let named: Vec<i64> = store
        .accounts_by_username("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(named, vec![a.id, b.id]);
    assert!(
        store
            .accounts_by_username("Alice")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn case_search_accounts(store: Arc<dyn Store>) {
    // 120 ordinary accounts, three with LIKE's special characters, one
    // found only by its display name, two pending.
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(
            store
                .create_account(new_account("headers", &format!("user{i:03}"), i))
                .await
                .unwrap()
                .id,
        );
    }
    for name in ["under_score", "per%cent", "back\\slash"] {
        store
            .create_account(new_account("headers", name, 200))
            .await
            .unwrap();
    }
    let special = store
        .create_account(NewAccount {
            display_name: Some("Zoë Special".into()),
            ..new_account("headers", "zz-by-name", 201)
        })
        .await
        .unwrap();
    for i in [7, 90] {
        store
            .set_status(ids[i], AccountStatus::Pending, 300)
            .await
            .unwrap();
    }
    store
        .link_identity(ids[5], &key("oidc", "five"))
        .await
        .unwrap();
    store
        .link_identity(ids[5], &key("authentik", "five"))
        .await
        .unwrap();

    // Every account, 50 a page: pending first, then by username; no
    // account on two pages.
    let mut seen = Vec::new();
    for page in 0..3u64 {
        let r = store.search_accounts("", page * 50, 50).await.unwrap();
        assert_eq!(r.total, 124);
        assert_eq!(r.accounts.len(), if page < 2 { 50 } else { 24 });
        seen.extend(r.accounts.into_iter().map(|(a, _)| a));
    }
    let names: Vec<&str> = seen.iter().map(|a| a.username.as_str()).collect();
    assert_eq!(&names[..3], ["user007", "user090", "back\\slash"]);
    let mut rest = names[2..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, names[2..]);
    let mut unique: Vec<i64> = seen.iter().map(|a| a.id).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 124);
    let past = store.search_accounts("", 500, 50).await.unwrap();
    assert_eq!((past.total, past.accounts.len()), (124, 0));

    // The sources come along, sorted.
    let r = store.search_accounts("user005", 0, 50).await.unwrap();
    assert_eq!(r.total, 1);
    assert_eq!(r.accounts[0].1, ["authentik", "headers", "oidc"]);
    assert_eq!(r.accounts[0].0.id, ids[5]);

    // Substrings of username, email or display name, ASCII without case;
    // LIKE's special characters are plain.
    let found = |q: &'static str| {
        let store = store.clone();
        async move {
            let r = store.search_accounts(q, 0, 200).await.unwrap();
            assert_eq!(r.total as usize, r.accounts.len(), "{q}");
            let mut names: Vec<String> = r.accounts.into_iter().map(|(a, _)| a.username).collect();
            names.sort_unstable();
            names
        }
    };
    assert_eq!(found("USER00").await.len(), 10);
    assert_eq!(found("user11").await.len(), 10);
    assert_eq!(found("_").await, ["under_score"]);
    assert_eq!(found("%").await, ["per%cent"]);
    assert_eq!(found("\\").await, ["back\\slash"]);
    assert_eq!(found("special").await, ["zz-by-name"]);
    assert_eq!(found("user042@EXAMPLE").await, ["user042"]);
    assert_eq!(found("example.com").await.len(), 124);
    assert!(found("nobody").await.is_empty());
    assert!(found("'; DROP TABLE accounts; --").await.is_empty());
    assert!(store.account(special.id).await.unwrap().is_some());
}

async fn case_link_identity(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();

    store
        .link_identity(a.id, &key("oidc", "sub-a"))
        .await
        .unwrap();
    assert_eq!(
        store.identities(a.id).await.unwrap(),
        vec![key("headers", "alice"), key("oidc", "sub-a")]
    );
    let via_new = store
        .account_by_identity(&key("oidc", "sub-a"))
        .await
        .unwrap();
    assert_eq!(via_new.map(|x| x.id), Some(a.id));

    // Already linked: to this account, or to another.
    for (account, k) in [
        (a.id, key("oidc", "sub-a")),
        (b.id, key("oidc", "sub-a")),
        (b.id, key("headers", "alice")),
    ] {
        assert_eq!(
            store.link_identity(account, &k).await,
            Err(StoreError::Conflict(format!(
                "the identity {k} is already linked to an account"
            ))),
        );
    }
    assert_eq!(
        store.identities(b.id).await.unwrap(),
        vec![key("headers", "bob")]
    );

    // No such account.
    assert_eq!(
        store
            .link_identity(b.id + 1000, &key("oidc", "nobody"))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .account_by_identity(&key("oidc", "nobody"))
            .await
            .unwrap(),
        None
    );
    assert!(store.identities(b.id + 1000).await.unwrap().is_empty());

    // Unlinking: never the last identity, never another account's; the
    // sessions the unlinked identity opened end, the others stay.
    let mut feed = store.subscribe();
    let mut by_oidc = session(1, a.id, i64::MAX);
    by_oidc.source = "oidc".into();
    by_oidc.subject = "sub-a".into();
    store.create_session(&by_oidc).await.unwrap();
    let mut by_headers = session(2, a.id, i64::MAX);
    by_headers.subject = "alice".into();
    store.create_session(&by_headers).await.unwrap();
    assert!(
        !store
            .unlink_identity(b.id, &key("oidc", "sub-a"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .unlink_identity(b.id, &key("headers", "bob"))
            .await
            .unwrap(),
        "the last one stays"
    );
    assert!(
        store
            .unlink_identity(a.id, &key("oidc", "sub-a"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.identities(a.id).await.unwrap(),
        vec![key("headers", "alice")]
    );
    assert_eq!(
        store
            .account_by_identity(&key("oidc", "sub-a"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.session(&[1; 32]).await.unwrap(), None);
    assert!(store.session(&[2; 32]).await.unwrap().is_some());
    assert_eq!(feed.recv().await.unwrap(), Change::Session([1; 32]));
    assert_eq!(feed.recv().await.unwrap(), Change::Account(a.id));
    assert!(
        !store
            .unlink_identity(a.id, &key("headers", "alice"))
            .await
            .unwrap(),
        "now the last one"
    );
}

async fn case_update_attributes_and_touch(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 10))
        .await
        .unwrap();
    let attrs = Attributes {
        username: "alice2".into(),
        email: None,
        display_name: Some("Alice".into()),
        groups: vec!["admins".into()],
        org: Some("Org".into()),
    };
    store.update_attributes(a.id, &attrs, 20).await.unwrap();
    let got = store.account(a.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Account {
            username: "alice2".into(),
            email: None,
            display_name: Some("Alice".into()),
            groups: vec!["admins".into()],
            org: Some("Org".into()),
            updated_at: 20,
            last_seen_at: 20,
            ..a.clone()
        }
    );

    // Same attributes again: seen, but not updated.
    store.update_attributes(a.id, &attrs, 30).await.unwrap();
    let got = store.account(a.id).await.unwrap().unwrap();
    assert_eq!((got.updated_at, got.last_seen_at), (20, 30));

    store.touch_seen(a.id, 40).await.unwrap();
    let got = store.account(a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.created_at, got.updated_at, got.last_seen_at),
        (10, 20, 40)
    );

    assert_eq!(
        store.update_attributes(a.id + 1000, &attrs, 50).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.touch_seen(a.id + 1000, 50).await,
        Err(StoreError::NotFound)
    );

    // A provider's statement (an OIDC re-check) replaces attributes
    // without counting as a sighting, and says whether anything changed.
    let mut fewer = attrs.clone();
    fewer.groups = vec!["users".into()];
    let mut changes = store.subscribe();
    assert!(store.replace_attributes(a.id, &fewer, 60).await.unwrap());
    assert_eq!(next_change(&mut changes).await, Change::Account(a.id));
    let got = store.account(a.id).await.unwrap().unwrap();
    assert_eq!(got.groups, vec!["users".to_owned()]);
    assert_eq!((got.updated_at, got.last_seen_at), (60, 40));
    assert!(!store.replace_attributes(a.id, &fewer, 70).await.unwrap());
    let got = store.account(a.id).await.unwrap().unwrap();
    assert_eq!((got.updated_at, got.last_seen_at), (60, 40));
    assert_eq!(
        store.replace_attributes(a.id + 1000, &fewer, 80).await,
        Err(StoreError::NotFound)
    );
    // Attributes never change the login key.
    assert_eq!(
        store.identities(a.id).await.unwrap(),
        vec![key("headers", "alice")]
    );
}

async fn case_status_and_listing(store: Arc<dyn Store>) {
    let mut ids = vec![];
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let status = if i == 3 {
            AccountStatus::Pending
        } else {
            AccountStatus::Active
        };
        let new = NewAccount {
            status,
            ..new_account("headers", name, 1)
        };
        ids.push(store.create_account(new).await.unwrap().id);
    }
    assert!(
        store
            .set_status(ids[1], AccountStatus::Disabled, 7)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_status(ids[3] + 1000, AccountStatus::Disabled, 7)
            .await
            .unwrap()
    );
    let b = store.account(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (b.status, b.updated_at, b.created_at),
        (AccountStatus::Disabled, 7, 1)
    );

    let list = |status, limit| {
        let store = store.clone();
        async move {
            store
                .accounts(status, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, 100).await, ids);
    assert_eq!(list(None, 2).await, ids[..2]);
    assert_eq!(list(None, 0).await, Vec::<i64>::new());
    assert_eq!(
        list(Some(AccountStatus::Active), 100).await,
        vec![ids[0], ids[2]]
    );
    assert_eq!(list(Some(AccountStatus::Active), 1).await, vec![ids[0]]);
    assert_eq!(list(Some(AccountStatus::Disabled), 100).await, vec![ids[1]]);
    assert_eq!(list(Some(AccountStatus::Pending), 100).await, vec![ids[3]]);

    assert!(
        store
            .set_status(ids[1], AccountStatus::Active, 8)
            .await
            .unwrap()
    );
    assert_eq!(
        list(Some(AccountStatus::Active), 100).await,
        vec![ids[0], ids[1], ids[2]]
    );
}

async fn case_delete_cascades(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    store
        .link_identity(a.id, &key("oidc", "sub-a"))
        .await
        .unwrap();
    store.create_session(&session(1, a.id, 1000)).await.unwrap();
    store.create_session(&session(2, a.id, 1000)).await.unwrap();
    store.create_session(&session(3, b.id, 1000)).await.unwrap();

    assert!(store.delete_account(a.id).await.unwrap());
    assert_eq!(store.account(a.id).await.unwrap(), None);
    assert!(store.identities(a.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .account_by_identity(&key("headers", "alice"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .account_by_identity(&key("oidc", "sub-a"))
            .await
            .unwrap(),
        None
    );
    assert!(store.sessions_of(Some(a.id)).await.unwrap().is_empty());
    assert_eq!(store.session(&[1; 32]).await.unwrap(), None);
    // Bob is untouched.
    assert_eq!(
        store.sessions_of(None).await.unwrap(),
        vec![session(3, b.id, 1000)]
    );
    assert_eq!(
        store.identities(b.id).await.unwrap(),
        vec![key("headers", "bob")]
    );

    assert!(!store.delete_account(a.id).await.unwrap());
    // The identity is free again, and the new account gets a new id.
    let again = store
        .create_account(new_account("headers", "alice", 2))
        .await
        .unwrap();
    assert!(again.id > b.id);
}

async fn case_sessions(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let s1 = session(1, a.id, 1000);
    let s2 = session(2, a.id, 2000);
    let s3 = session(3, b.id, 3000);
    for s in [&s1, &s2, &s3] {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(store.session(&[1; 32]).await.unwrap(), Some(s1.clone()));
    assert_eq!(store.session(&[9; 32]).await.unwrap(), None);

    assert_eq!(
        store.create_session(&session(1, b.id, 5)).await,
        Err(StoreError::Conflict(
            "a session with this id already exists".into()
        ))
    );
    assert_eq!(
        store.create_session(&session(4, b.id + 1000, 5)).await,
        Err(StoreError::NotFound)
    );

    store.touch_session(&[2; 32], 50).await.unwrap();
    let touched = store.session(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(
        touched,
        Session {
            last_seen_at: 50,
            ..s2.clone()
        }
    );
    assert_eq!(
        store.touch_session(&[9; 32], 50).await,
        Err(StoreError::NotFound)
    );

    assert_eq!(
        store.sessions_of(Some(a.id)).await.unwrap(),
        vec![s1.clone(), touched.clone()]
    );
    assert_eq!(
        store.sessions_of(Some(b.id)).await.unwrap(),
        vec![s3.clone()]
    );
    assert_eq!(
        store.sessions_of(None).await.unwrap(),
        vec![s1.clone(), touched.clone(), s3.clone()]
    );

    assert!(store.revoke_session(&[1; 32]).await.unwrap());
    assert!(!store.revoke_session(&[1; 32]).await.unwrap());
    assert_eq!(store.session(&[1; 32]).await.unwrap(), None);

    store.create_session(&session(5, a.id, 9000)).await.unwrap();
    assert_eq!(store.revoke_sessions_of(a.id).await.unwrap(), 2);
    assert_eq!(store.revoke_sessions_of(a.id).await.unwrap(), 0);
    assert!(store.sessions_of(Some(a.id)).await.unwrap().is_empty());
    assert_eq!(store.sessions_of(None).await.unwrap(), vec![s3]);
}

async fn case_purge_expired_sessions(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    for (id, expires) in [(1, 100), (2, 200), (3, 300)] {
        store
            .create_session(&session(id, a.id, expires))
            .await
            .unwrap();
    }
    let s2 = store.session(&[2; 32]).await.unwrap().unwrap();
    assert!(s2.is_live(199));
    assert!(!s2.is_live(200));

    assert_eq!(store.purge_expired_sessions(99).await.unwrap(), 0);
    // Expired means `expires_at <= now`.
    assert_eq!(store.purge_expired_sessions(200).await.unwrap(), 2);
    let left: Vec<[u8; 32]> = store
        .sessions_of(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id_hash)
        .collect();
    assert_eq!(left, vec![[3; 32]]);
    assert_eq!(store.purge_expired_sessions(200).await.unwrap(), 0);
}

async fn case_audit_filter_order_and_limit(store: Arc<dyn Store>) {
    let entry = |at: i64, action: &str, subject: &str, ip: Option<&str>| AuditEntry {
        at,
        actor: "cli".into(),
        action: action.into(),
        subject: subject.into(),
        client_ip: ip.map(str::to_owned),
        outcome: "ok".into(),
        detail: format!("{action} {subject} at {at}"),
    };
    let entries = [
        entry(10, "login", "alice", Some("192.0.2.1")),
        entry(20, "login", "bob", Some("2001:db8::1")),
        entry(20, "account.disable", "bob", None),
        entry(30, "login", "alice", None),
        entry(40, "logout", "alice", Some("192.0.2.1")),
    ];
    for e in &entries {
        store.append_audit(e).await.unwrap();
    }
    let read = |since: Option<i64>, action: Option<&str>, subject: Option<&str>, limit: u32| {
        let store = store.clone();
        let f = AuditFilter {
            since,
            action: action.map(str::to_owned),
            subject: subject.map(str::to_owned),
            limit,
        };
        async move { store.audit(&f).await.unwrap() }
    };
    let [e10, e20a, e20b, e30, e40] = entries;

    // Newest first; equal times: the later append first.
    assert_eq!(
        read(None, None, None, 100).await,
        vec![
            e40.clone(),
            e30.clone(),
            e20b.clone(),
            e20a.clone(),
            e10.clone()
        ]
    );
    assert_eq!(
        read(None, None, None, 2).await,
        vec![e40.clone(), e30.clone()]
    );
    assert!(read(None, None, None, 0).await.is_empty());
    assert_eq!(
        read(Some(20), None, None, 100).await,
        vec![e40.clone(), e30.clone(), e20b.clone(), e20a.clone()]
    );
    assert_eq!(
        read(None, Some("login"), None, 100).await,
        vec![e30.clone(), e20a.clone(), e10.clone()]
    );
    assert_eq!(
        read(None, None, Some("alice"), 100).await,
        vec![e40.clone(), e30.clone(), e10.clone()]
    );
    assert_eq!(
        read(Some(15), Some("login"), Some("alice"), 100).await,
        vec![e30.clone()]
    );
    assert_eq!(
        read(None, Some("login"), Some("alice"), 1).await,
        vec![e30.clone()]
    );
    assert!(read(None, Some("nothing"), None, 100).await.is_empty());
}

async fn case_change_feed_in_process(store: Arc<dyn Store>) {
    // A freshly opened store's feed is connected.
    assert!(store.reachable());
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let mut rx = store.subscribe();
    store.create_session(&session(1, a.id, 1000)).await.unwrap();
    store.create_session(&session(2, a.id, 1000)).await.unwrap();

    assert!(
        store
            .set_status(a.id, AccountStatus::Disabled, 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));

    assert!(store.revoke_session(&[1; 32]).await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::Session([1; 32]));

    assert_eq!(store.revoke_sessions_of(a.id).await.unwrap(), 1);
    assert_eq!(next_change(&mut rx).await, Change::AllSessionsOf(a.id));

    let attrs = Attributes {
        username: "alice".into(),
        email: None,
        display_name: None,
        groups: vec!["admins".into()],
        org: None,
    };
    store.update_attributes(a.id, &attrs, 3).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));

    store
        .link_identity(a.id, &key("oidc", "sub-a"))
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));

    // Calls that change nothing revocable publish nothing: the next change
    // seen is the delete's.
    store.update_attributes(a.id, &attrs, 4).await.unwrap();
    store.touch_seen(a.id, 5).await.unwrap();
    assert!(!store.revoke_session(&[1; 32]).await.unwrap());
    assert_eq!(store.revoke_sessions_of(a.id).await.unwrap(), 0);
    assert!(
        !store
            .set_status(a.id + 1000, AccountStatus::Active, 6)
            .await
            .unwrap()
    );
    store.create_session(&session(3, a.id, 10)).await.unwrap();
    store.touch_session(&[3; 32], 7).await.unwrap();
    store.purge_expired_sessions(100).await.unwrap();
    store
        .append_audit(&AuditEntry {
            at: 1,
            actor: "a".into(),
            action: "b".into(),
            subject: "c".into(),
            client_ip: None,
            outcome: "ok".into(),
            detail: String::new(),
        })
        .await
        .unwrap();
    assert!(store.delete_account(a.id).await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));

    // A failed (rolled back) change is not published.
    assert!(store.link_identity(a.id, &key("oidc", "x")).await.is_err());
    no_change(&mut rx, Duration::from_millis(600)).await;
}

/// The admin CLI and the server are two processes on one database: two
/// `open()`s of the same URL stand in for them.
async fn case_change_feed_across_instances(url: String) {
    let server = open(&url).await;
    let cli = open(&url).await;
    let a = cli
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    cli.create_session(&session(1, a.id, 1000)).await.unwrap();
    cli.create_session(&session(2, a.id, 1000)).await.unwrap();
    let mut on_server = server.subscribe();
    let mut on_cli = cli.subscribe();

    assert!(
        cli.set_status(a.id, AccountStatus::Disabled, 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut on_server).await, Change::Account(a.id));
    assert!(cli.revoke_session(&[1; 32]).await.unwrap());
    assert_eq!(next_change(&mut on_server).await, Change::Session([1; 32]));
    assert_eq!(cli.revoke_sessions_of(a.id).await.unwrap(), 1);
    assert_eq!(
        next_change(&mut on_server).await,
        Change::AllSessionsOf(a.id)
    );

    // And the other way round.
    assert!(server.delete_account(a.id).await.unwrap());
    assert_eq!(next_change(&mut on_server).await, Change::Account(a.id));

    // Each instance saw its own changes once: not again through the feed.
    for want in [
        Change::Account(a.id),
        Change::Session([1; 32]),
        Change::AllSessionsOf(a.id),
        Change::Account(a.id),
    ] {
        assert_eq!(next_change(&mut on_cli).await, want);
    }
    no_change(&mut on_server, Duration::from_millis(700)).await;
    no_change(&mut on_cli, Duration::from_millis(10)).await;

    // A third instance opened later starts from now, not from history.
    let late = open(&url).await;
    let mut on_late = late.subscribe();
    no_change(&mut on_late, Duration::from_millis(600)).await;
    let b = server
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    assert!(
        server
            .set_status(b.id, AccountStatus::Disabled, 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut on_late).await, Change::Account(b.id));
    assert_eq!(next_change(&mut on_cli).await, Change::Account(b.id));
}

/// A device revoked by the admin CLI is dropped by the server.
async fn case_device_revocation_across_instances(url: String) {
    let server = open(&url).await;
    let cli = open(&url).await;
    let a = cli
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let d = cli.create_device(&new_device(a.id, 1)).await.unwrap();
    let mut on_server = server.subscribe();
    let mut on_cli = cli.subscribe();

    assert!(cli.revoke_device(d.id, None).await.unwrap());
    assert_eq!(next_change(&mut on_server).await, Change::Device(d.id));
    assert_eq!(next_change(&mut on_cli).await, Change::Device(d.id));
    assert_eq!(server.device_by_secret(&[1; 32]).await.unwrap(), None);

    // Nothing revoked, nothing published.
    assert!(!cli.revoke_device(d.id, None).await.unwrap());
    no_change(&mut on_server, Duration::from_millis(600)).await;
    no_change(&mut on_cli, Duration::from_millis(10)).await;
}

async fn case_migrate_is_idempotent(url: String) {
    let cfg = StoreConfig::new(url.as_str());
    vestibule_store::migrate(&cfg).await.unwrap();
    vestibule_store::migrate(&cfg).await.unwrap();
    let store = open(&url).await;
    let want = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(store.backend(), want);
    store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    drop(store);
    // Reopening keeps the data and applies nothing twice.
    let store = open(&url).await;
    assert_eq!(store.accounts(None, 10).await.unwrap().len(), 1);
}

async fn case_devices(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let n1 = NewDevice {
        kind: "basic".into(),
        basic_user: Some("alice-phone".into()),
        expires_at: Some(5000),
        ..new_device(a.id, 1)
    };
    let n2 = NewDevice {
        routes: vec![],
        ..new_device(a.id, 2)
    };
    let n3 = new_device(b.id, 3);
    let d1 = store.create_device(&n1).await.unwrap();
    let d2 = store.create_device(&n2).await.unwrap();
    let d3 = store.create_device(&n3).await.unwrap();
    assert_eq!(d1, device_as_created(d1.id, &n1));
    assert_eq!(d2, device_as_created(d2.id, &n2));
    assert!(d1.id < d2.id && d2.id < d3.id);

    // Lookups return what was stored, expired or not.
    assert_eq!(
        store.device_by_secret(&[1; 32]).await.unwrap(),
        Some(d1.clone())
    );
    assert_eq!(
        store.device_by_secret(&[2; 32]).await.unwrap(),
        Some(d2.clone())
    );
    assert_eq!(store.device_by_secret(&[9; 32]).await.unwrap(), None);
    assert_eq!(store.device(d3.id).await.unwrap(), Some(d3.clone()));
    assert_eq!(store.device(d3.id + 1000).await.unwrap(), None);
    assert!(d1.is_live(4999));
    assert!(!d1.is_live(5000));
    assert!(d2.is_live(i64::MAX));
    store.purge_expired(4999).await.unwrap();
    assert_eq!(
        store.device_by_secret(&[1; 32]).await.unwrap(),
        Some(d1.clone())
    );

    // Listing, in id order.
    assert_eq!(
        store.devices_of(Some(a.id)).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(
        store.devices_of(Some(b.id)).await.unwrap(),
        vec![d3.clone()]
    );
    assert_eq!(
        store.devices_of(None).await.unwrap(),
        vec![d1.clone(), d2.clone(), d3.clone()]
    );
    assert!(
        store
            .devices_of(Some(b.id + 1000))
            .await
            .unwrap()
            .is_empty()
    );

    // A secret digest is unique across every account; nothing is written.
    for dup in [new_device(a.id, 1), new_device(b.id, 1)] {
        assert_eq!(
            store.create_device(&dup).await,
            Err(StoreError::Conflict(
                "a device with this secret already exists".into()
            ))
        );
    }
    assert_eq!(
        store.create_device(&new_device(b.id + 1000, 7)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.devices_of(None).await.unwrap().len(), 3);

    // Touch: last use, with or without an address.
    store
        .touch_device(d2.id, 700, Some("2001:db8::7"))
        .await
        .unwrap();
    let touched = Device {
        last_used_at: Some(700),
        last_used_ip: Some("2001:db8::7".into()),
        ..d2.clone()
    };
    assert_eq!(store.device(d2.id).await.unwrap(), Some(touched.clone()));
    store.touch_device(d2.id, 800, None).await.unwrap();
    assert_eq!(
        store.device_by_secret(&[2; 32]).await.unwrap(),
        Some(Device {
            last_used_at: Some(800),
            last_used_ip: None,
            ..d2.clone()
        })
    );
    assert_eq!(
        store.touch_device(d3.id + 1000, 1, None).await,
        Err(StoreError::NotFound)
    );

    // Revoke: the owner check.
    assert!(!store.revoke_device(d3.id, Some(a.id)).await.unwrap());
    assert_eq!(store.device(d3.id).await.unwrap(), Some(d3.clone()));
    assert!(store.revoke_device(d3.id, Some(b.id)).await.unwrap());
    assert!(!store.revoke_device(d3.id, Some(b.id)).await.unwrap());
    assert_eq!(store.device_by_secret(&[3; 32]).await.unwrap(), None);
    // Without an owner (admin): any device.
    assert!(store.revoke_device(d1.id, None).await.unwrap());
    assert!(!store.revoke_device(d1.id, None).await.unwrap());
    assert_eq!(store.devices_of(None).await.unwrap().len(), 1);

    // Ids are never reused; a revoked secret may be registered again.
    let again = store.create_device(&new_device(b.id, 3)).await.unwrap();
    assert!(again.id > d3.id);
}

async fn case_device_revocation_is_published(store: Arc<dyn BulkLoad>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let mut rx = store.subscribe();
    let d1 = store.create_device(&new_device(a.id, 1)).await.unwrap();
    let d2 = store.create_device(&new_device(a.id, 2)).await.unwrap();

    assert!(store.revoke_device(d1.id, Some(a.id)).await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::Device(d1.id));
    assert!(store.revoke_device(d2.id, None).await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::Device(d2.id));

    // Creating, touching, bulk inserts, failed revocations (another
    // owner's, already gone), pairing steps and purges publish nothing.
    let d3 = store.create_device(&new_device(b.id, 3)).await.unwrap();
    store
        .touch_device(d3.id, 5, Some("192.0.2.1"))
        .await
        .unwrap();
    assert!(!store.revoke_device(d3.id, Some(a.id)).await.unwrap());
    assert!(!store.revoke_device(d1.id, None).await.unwrap());
    store
        .create_devices_bulk(&[new_device(b.id, 4), new_device(b.id, 5)])
        .await
        .unwrap();
    let p = store
        .create_pairing(a.id, &[1; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    store
        .claim_pairing(&[1; 32], &[2; 32], "phone", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(store.decide_pairing(p.id, a.id, true, 3).await.unwrap());
    assert!(matches!(
        store
            .redeem_pairing(&[2; 32], &new_device(0, 6), 4)
            .await
            .unwrap(),
        PairingPoll::Issued(_)
    ));
    store.purge_expired(2000).await.unwrap();
    no_change(&mut rx, Duration::from_millis(600)).await;
}

async fn case_delete_account_cascades_devices_and_pairings(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let d1 = store.create_device(&new_device(a.id, 1)).await.unwrap();
    let d3 = store.create_device(&new_device(b.id, 3)).await.unwrap();
    // Alice: an open pairing and an issued one.
    let open = store
        .create_pairing(a.id, &[10; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    let issued = store
        .create_pairing(a.id, &[11; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    store
        .claim_pairing(&[11; 32], &[12; 32], "tablet", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .decide_pairing(issued.id, a.id, true, 3)
            .await
            .unwrap()
    );
    let PairingPoll::Issued(d2) = store
        .redeem_pairing(&[12; 32], &new_device(a.id, 2), 4)
        .await
        .unwrap()
    else {
        panic!("not issued")
    };
    // Bob: one open pairing.
    let bobs = store
        .create_pairing(b.id, &[20; 32], &routes(&[]), 1, 1000)
        .await
        .unwrap();

    let mut rx = store.subscribe();
    assert!(store.delete_account(a.id).await.unwrap());
    // One change for the account covers its devices.
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));
    for id in [d1.id, d2.id] {
        assert_eq!(store.device(id).await.unwrap(), None);
    }
    assert_eq!(store.device_by_secret(&[1; 32]).await.unwrap(), None);
    assert_eq!(store.device_by_secret(&[2; 32]).await.unwrap(), None);
    assert!(store.devices_of(Some(a.id)).await.unwrap().is_empty());
    assert_eq!(store.pairing(open.id).await.unwrap(), None);
    assert_eq!(store.pairing(issued.id).await.unwrap(), None);
    assert_eq!(
        store
            .claim_pairing(&[10; 32], &[13; 32], "late", Some("192.0.2.7"), 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_pairing(&[12; 32], &new_device(a.id, 2), 5)
            .await
            .unwrap(),
        PairingPoll::Expired
    );
    // Bob is untouched.
    assert_eq!(store.devices_of(None).await.unwrap(), vec![d3]);
    assert_eq!(store.pairing(bobs.id).await.unwrap(), Some(bobs));
    no_change(&mut rx, Duration::from_millis(600)).await;
}

async fn case_pairing_flow(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let code = [1; 32];
    let claim = [2; 32];
    let r = routes(&["api", "files"]);
    let created = store
        .create_pairing(a.id, &code, &r, 10, 1000)
        .await
        .unwrap();
    let open = Pairing {
        id: created.id,
        account_id: a.id,
        routes: r.clone(),
        created_at: 10,
        expires_at: 1000,
        state: PairingState::Open,
        device_name: None,
        claimed_at: None,
        claimed_ip: None,
        device_id: None,
    };
    assert_eq!(created, open);
    assert_eq!(store.pairing(open.id).await.unwrap(), Some(open.clone()));
    assert_eq!(store.pairing(open.id + 1000).await.unwrap(), None);

    // A code is unique.
    assert_eq!(
        store.create_pairing(b.id, &code, &r, 10, 1000).await,
        Err(StoreError::Conflict(
            "a pairing with this code already exists".into()
        ))
    );
    assert_eq!(
        store
            .create_pairing(b.id + 1000, &[9; 32], &r, 10, 1000)
            .await,
        Err(StoreError::NotFound)
    );

    // Nothing to decide or redeem while open.
    assert!(!store.decide_pairing(open.id, a.id, true, 20).await.unwrap());
    assert_eq!(
        store
            .redeem_pairing(&claim, &new_device(b.id, 5), 20)
            .await
            .unwrap(),
        PairingPoll::Expired
    );

    // Claim once.
    let claimed = store
        .claim_pairing(&code, &claim, "alice's phone", Some("192.0.2.7"), 30)
        .await
        .unwrap();
    let claimed_want = Pairing {
        state: PairingState::Claimed,
        device_name: Some("alice's phone".into()),
        claimed_at: Some(30),
        claimed_ip: Some("192.0.2.7".into()),
        ..open.clone()
    };
    assert_eq!(claimed, Some(claimed_want.clone()));
    assert_eq!(
        store
            .claim_pairing(&code, &[3; 32], "mallory", Some("192.0.2.7"), 31)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_pairing(&code, &claim, "alice's phone", Some("192.0.2.7"), 31)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_pairing(&[8; 32], &[4; 32], "unknown code", Some("192.0.2.7"), 31)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.pairing(open.id).await.unwrap(),
        Some(claimed_want.clone())
    );

    // Claimed: the device waits.
    assert_eq!(
        store
            .redeem_pairing(&claim, &new_device(b.id, 5), 40)
            .await
            .unwrap(),
        PairingPoll::Pending
    );
    assert_eq!(
        store
            .redeem_pairing(&[7; 32], &new_device(b.id, 5), 40)
            .await
            .unwrap(),
        PairingPoll::Expired
    );

    // Only the owner decides.
    assert!(!store.decide_pairing(open.id, b.id, true, 50).await.unwrap());
    assert!(
        !store
            .decide_pairing(open.id + 1000, a.id, true, 50)
            .await
            .unwrap()
    );
    assert_eq!(
        store.pairing(open.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Claimed)
    );
    assert!(store.decide_pairing(open.id, a.id, true, 50).await.unwrap());
    // Decided once.
    assert!(
        !store
            .decide_pairing(open.id, a.id, false, 51)
            .await
            .unwrap()
    );
    assert_eq!(
        store.pairing(open.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Confirmed)
    );

    // Issued exactly once. Account, routes and name come from the
    // pairing, whatever the device asked for.
    let asked = NewDevice {
        name: "ignored".into(),
        kind: "paired".into(),
        routes: routes(&["admin"]),
        expires_at: Some(99_999),
        created_at: 60,
        ..new_device(b.id, 5)
    };
    let PairingPoll::Issued(device) = store.redeem_pairing(&claim, &asked, 60).await.unwrap()
    else {
        panic!("not issued")
    };
    assert_eq!(
        device,
        Device {
            id: device.id,
            account_id: a.id,
            name: "alice's phone".into(),
            kind: "paired".into(),
            routes: r.clone(),
            basic_user: None,
            created_at: 60,
            expires_at: Some(99_999),
            last_used_at: None,
            last_used_ip: None,
        }
    );
    assert_eq!(
        store.device_by_secret(&[5; 32]).await.unwrap(),
        Some(device.clone())
    );
    assert_eq!(
        store.devices_of(Some(a.id)).await.unwrap(),
        vec![device.clone()]
    );
    assert!(store.devices_of(Some(b.id)).await.unwrap().is_empty());
    let issued = Pairing {
        state: PairingState::Issued,
        device_id: Some(device.id),
        ..claimed_want.clone()
    };
    assert_eq!(store.pairing(open.id).await.unwrap(), Some(issued.clone()));
    for secret in [5, 6] {
        assert_eq!(
            store
                .redeem_pairing(&claim, &new_device(b.id, secret), 61)
                .await
                .unwrap(),
            PairingPoll::Expired
        );
    }
    assert_eq!(store.devices_of(None).await.unwrap().len(), 1);
    // Still single use.
    assert_eq!(
        store
            .claim_pairing(&code, &[3; 32], "again", Some("192.0.2.7"), 62)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .decide_pairing(open.id, a.id, false, 62)
            .await
            .unwrap()
    );

    // Revoking the device leaves the pairing's record, without its device.
    assert!(store.revoke_device(device.id, Some(a.id)).await.unwrap());
    assert_eq!(
        store.pairing(open.id).await.unwrap(),
        Some(Pairing {
            device_id: None,
            ..issued
        })
    );
    assert_eq!(
        store
            .redeem_pairing(&claim, &new_device(b.id, 6), 63)
            .await
            .unwrap(),
        PairingPoll::Expired
    );
}

async fn case_pairing_refused(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let p = store
        .create_pairing(a.id, &[1; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    store
        .claim_pairing(&[1; 32], &[2; 32], "mallory's phone", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(store.decide_pairing(p.id, a.id, false, 3).await.unwrap());
    assert!(!store.decide_pairing(p.id, a.id, true, 4).await.unwrap());
    assert_eq!(
        store.pairing(p.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Refused)
    );
    for now in [5, 6] {
        assert_eq!(
            store
                .redeem_pairing(&[2; 32], &new_device(a.id, 3), now)
                .await
                .unwrap(),
            PairingPoll::Refused
        );
    }
    assert!(store.devices_of(None).await.unwrap().is_empty());
    // Past its expiry a refused pairing is just expired, then purged.
    assert_eq!(
        store
            .redeem_pairing(&[2; 32], &new_device(a.id, 3), 1000)
            .await
            .unwrap(),
        PairingPoll::Expired
    );
    assert_eq!(store.purge_expired(1000).await.unwrap(), 1);
    assert_eq!(store.pairing(p.id).await.unwrap(), None);
}

async fn case_pairing_expiry_and_purge(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let r = routes(&["api"]);
    // Expired before it was claimed: `expires_at <= now` is expired.
    let p1 = store
        .create_pairing(a.id, &[1; 32], &r, 1, 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_pairing(&[1; 32], &[11; 32], "late", Some("192.0.2.7"), 100)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.pairing(p1.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Open)
    );

    // Claimed in time, decided too late.
    let p2 = store
        .create_pairing(a.id, &[2; 32], &r, 1, 200)
        .await
        .unwrap();
    store
        .claim_pairing(&[2; 32], &[12; 32], "slow owner", Some("192.0.2.7"), 199)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .redeem_pairing(&[12; 32], &new_device(a.id, 50), 199)
            .await
            .unwrap(),
        PairingPoll::Pending
    );
    assert!(!store.decide_pairing(p2.id, a.id, true, 200).await.unwrap());
    assert_eq!(
        store
            .redeem_pairing(&[12; 32], &new_device(a.id, 50), 200)
            .await
            .unwrap(),
        PairingPoll::Expired
    );

    // Confirmed in time, polled too late: no device.
    let p3 = store
        .create_pairing(a.id, &[3; 32], &r, 1, 300)
        .await
        .unwrap();
    store
        .claim_pairing(&[3; 32], &[13; 32], "slow device", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(store.decide_pairing(p3.id, a.id, true, 299).await.unwrap());
    assert_eq!(
        store
            .redeem_pairing(&[13; 32], &new_device(a.id, 51), 300)
            .await
            .unwrap(),
        PairingPoll::Expired
    );
    assert!(store.devices_of(None).await.unwrap().is_empty());

    // Issued in time: kept by the purge, as the record of its device.
    let p4 = store
        .create_pairing(a.id, &[4; 32], &r, 1, 400)
        .await
        .unwrap();
    store
        .claim_pairing(&[4; 32], &[14; 32], "quick", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(store.decide_pairing(p4.id, a.id, true, 3).await.unwrap());
    let issued = NewDevice {
        expires_at: Some(10_000),
        ..new_device(a.id, 52)
    };
    assert!(matches!(
        store.redeem_pairing(&[14; 32], &issued, 4).await.unwrap(),
        PairingPoll::Issued(_)
    ));
    // Unexpired, and expiring devices.
    let p5 = store
        .create_pairing(a.id, &[5; 32], &r, 1, 5000)
        .await
        .unwrap();
    let soon = store
        .create_device(&NewDevice {
            expires_at: Some(450),
            ..new_device(a.id, 53)
        })
        .await
        .unwrap();
    let forever = store.create_device(&new_device(a.id, 54)).await.unwrap();

    assert_eq!(store.purge_expired(99).await.unwrap(), 0);
    // p1, p2, p3: expired and not issued. p4 was issued; p5 is still open.
    assert_eq!(store.purge_expired(449).await.unwrap(), 3);
    for gone in [p1.id, p2.id, p3.id] {
        assert_eq!(store.pairing(gone).await.unwrap(), None);
    }
    assert_eq!(
        store.pairing(p4.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Issued)
    );
    assert_eq!(
        store.pairing(p5.id).await.unwrap().map(|p| p.state),
        Some(PairingState::Open)
    );
    // Devices expire with `expires_at <= now`; `None` never does.
    assert_eq!(store.purge_expired(450).await.unwrap(), 1);
    assert_eq!(store.device(soon.id).await.unwrap(), None);
    assert_eq!(store.purge_expired(10_000).await.unwrap(), 2);
    let left: Vec<i64> = store
        .devices_of(None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, vec![forever.id]);
    // The issued pairing stays, now without its (expired) device.
    let p4 = store.pairing(p4.id).await.unwrap().unwrap();
    assert_eq!((p4.state, p4.device_id), (PairingState::Issued, None));
    assert_eq!(store.pairing(p5.id).await.unwrap(), None);
    assert_eq!(store.purge_expired(10_000).await.unwrap(), 0);
}

async fn case_pairing_redeem_conflict_keeps_it_confirmed(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let taken = store.create_device(&new_device(a.id, 1)).await.unwrap();
    let p = store
        .create_pairing(a.id, &[10; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    store
        .claim_pairing(&[10; 32], &[11; 32], "phone", Some("192.0.2.7"), 2)
        .await
        .unwrap()
        .unwrap();
    assert!(store.decide_pairing(p.id, a.id, true, 3).await.unwrap());
    // The device's secret exists already: nothing is written.
    assert_eq!(
        store
            .redeem_pairing(&[11; 32], &new_device(a.id, 1), 4)
            .await,
        Err(StoreError::Conflict(
            "a device with this secret already exists".into()
        ))
    );
    let still = store.pairing(p.id).await.unwrap().unwrap();
    assert_eq!(
        (still.state, still.device_id),
        (PairingState::Confirmed, None)
    );
    assert_eq!(store.devices_of(None).await.unwrap(), vec![taken]);
    // A retry with a fresh secret gets its device.
    let PairingPoll::Issued(d) = store
        .redeem_pairing(&[11; 32], &new_device(a.id, 2), 5)
        .await
        .unwrap()
    else {
        panic!("not issued")
    };
    assert_eq!(
        store.pairing(p.id).await.unwrap().and_then(|p| p.device_id),
        Some(d.id)
    );

    // A claim secret already used by another pairing: a conflict, and the
    // code stays open.
    let q = store
        .create_pairing(a.id, &[20; 32], &routes(&["api"]), 1, 1000)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_pairing(&[20; 32], &[11; 32], "copycat", Some("192.0.2.7"), 6)
            .await,
        Err(StoreError::Conflict(
            "a pairing with this claim secret already exists".into()
        ))
    );
    assert_eq!(store.pairing(q.id).await.unwrap(), Some(q));
}

async fn case_pairing_races(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let p = store
        .create_pairing(a.id, &[1; 32], &routes(&["api"]), 1, 1_000_000)
        .await
        .unwrap();

    // Eight devices redeem the same code at once: exactly one wins.
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let claims: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let won = store
                    .claim_pairing(
                        &[1; 32],
                        &[100 + i; 32],
                        &format!("device {i}"),
                        Some("192.0.2.7"),
                        2,
                    )
                    .await
                    .unwrap();
                won.map(|p| (i, p))
            })
        })
        .collect();
    let mut winners = vec![];
    for t in claims {
        if let Some(w) = t.await.unwrap() {
            winners.push(w);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (i, won) = winners.pop().unwrap();
    assert_eq!(won.device_name, Some(format!("device {i}")));
    assert_eq!(store.pairing(p.id).await.unwrap(), Some(won));
    // The losers' claims lead nowhere.
    for loser in (0..8u8).filter(|&l| l != i) {
        assert_eq!(
            store
                .redeem_pairing(&[100 + loser; 32], &new_device(a.id, 50), 3)
                .await
                .unwrap(),
            PairingPoll::Expired
        );
    }

    // Four polls of the confirmed pairing at once: one device, issued once.
    assert!(store.decide_pairing(p.id, a.id, true, 3).await.unwrap());
    let start = Arc::new(tokio::sync::Barrier::new(4));
    let polls: Vec<_> = (0..4u8)
        .map(|n| {
            let store = store.clone();
            let start = start.clone();
            let winner_claim = [100 + i; 32];
            tokio::spawn(async move {
                start.wait().await;
                store
                    .redeem_pairing(&winner_claim, &new_device(a.id, 60 + n), 4)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut issued = vec![];
    for t in polls {
        match t.await.unwrap() {
            PairingPoll::Issued(d) => issued.push(d),
            PairingPoll::Expired => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(store.devices_of(None).await.unwrap(), issued);
}

async fn case_devices_bulk(store: Arc<dyn BulkLoad>) {
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "bob", 1))
        .await
        .unwrap();
    let secret = |i: u32| {
        let mut s = [0x5a; 32];
        s[..4].copy_from_slice(&i.to_be_bytes());
        s
    };
    // 2000 rows: whole statements only (the 501 rows further down end with
    // a short one).
    let devices: Vec<NewDevice> = (0..2000u32)
        .map(|i| NewDevice {
            account_id: if i % 2 == 0 { a.id } else { b.id },
            name: format!("bench {i}"),
            kind: if i % 3 == 0 { "basic" } else { "bearer" }.into(),
            routes: vec![format!("route-{}", i % 7)],
            secret_hash: secret(i),
            basic_user: (i % 3 == 0).then(|| format!("user{i}")),
            created_at: i64::from(i),
            expires_at: (i % 5 == 0).then_some(1_000_000 + i64::from(i)),
        })
        .collect();
    assert_eq!(store.create_devices_bulk(&devices).await.unwrap(), 2000);
    assert_eq!(store.create_devices_bulk(&[]).await.unwrap(), 0);

    for i in [0u32, 1, 499, 500, 1001, 1998, 1999] {
        let d = &devices[i as usize];
        let got = store.device_by_secret(&secret(i)).await.unwrap().unwrap();
        assert_eq!(got, device_as_created(got.id, d), "row {i}");
    }
    let all = store.devices_of(None).await.unwrap();
    assert_eq!(all.len(), 2000);
    // Inserted in order: ids follow the slice.
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[0].name, "bench 0");
    assert_eq!(all[1999].name, "bench 1999");
    assert_eq!(store.devices_of(Some(a.id)).await.unwrap().len(), 1000);

    // All or nothing: a duplicate in the last (short) statement, or a
    // missing account in the first, leaves no row behind.
    let mut more: Vec<NewDevice> = (2000..2501u32)
        .map(|i| NewDevice {
            secret_hash: secret(i),
            ..devices[0].clone()
        })
        .collect();
    more[500].secret_hash = secret(7);
    assert_eq!(
        store.create_devices_bulk(&more).await,
        Err(StoreError::Conflict(
            "a device with this secret already exists".into()
        ))
    );
    more[500].secret_hash = secret(2500);
    more[3].account_id = b.id + 1000;
    assert_eq!(
        store.create_devices_bulk(&more).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.devices_of(None).await.unwrap().len(), 2000);
    assert_eq!(store.device_by_secret(&secret(2000)).await.unwrap(), None);
    more[3].account_id = a.id;
    assert_eq!(store.create_devices_bulk(&more).await.unwrap(), 501);
    assert_eq!(store.devices_of(None).await.unwrap().len(), 2501);
}

// ---- backend-specific --------------------------------------------------

#[tokio::test]
async fn sqlite_file_is_created_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let url = testkit::sqlite_url(dir.path());
    let store = open(&url).await;
    store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    drop(store);
    assert!(dir.path().join("vestibule.db").is_file());
    let store = open(&url).await;
    assert!(
        store
            .account_by_identity(&key("headers", "alice"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Writers in two instances wait for SQLite's write lock (`busy_timeout`)
/// instead of failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_in_two_instances() {
    let dir = tempfile::tempdir().unwrap();
    let url = testkit::sqlite_url(dir.path());
    let stores = [open(&url).await, open(&url).await];
    let mut tasks = vec![];
    for (i, store) in stores.iter().enumerate() {
        for t in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let subject = format!("s{i}-{t}");
                let a = store
                    .create_account(new_account("headers", &subject, 1))
                    .await
                    .unwrap();
                for n in 0..20u8 {
                    let attrs = Attributes {
                        username: format!("{subject}-{n}"),
                        email: None,
                        display_name: None,
                        groups: vec![],
                        org: None,
                    };
                    store
                        .update_attributes(a.id, &attrs, i64::from(n))
                        .await
                        .unwrap();
                    let id = [u8::try_from(1 + i * 100 + t * 30).unwrap() + n; 32];
                    store
                        .create_session(&Session {
                            id_hash: id,
                            ..session(1, a.id, 9)
                        })
                        .await
                        .unwrap();
                    assert!(store.revoke_session(&id).await.unwrap());
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stores[0].accounts(None, 100).await.unwrap().len(), 6);
}

#[tokio::test]
async fn bad_configs_are_refused() {
    for url in ["sqlite::memory:", "mysql://localhost/db", "vestibule.db"] {
        let err = vestibule_store::open(&StoreConfig::new(url)).await.err();
        assert!(
            matches!(err, Some(StoreError::InvalidConfig(_))),
            "{url}: {err:?}"
        );
    }
    // A directory that does not exist: the file cannot be created.
    let err = vestibule_store::open(&StoreConfig::new("sqlite:///nonexistent-dir/x/v.db"))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn postgres_feed_resyncs_after_its_connection_is_killed() {
    let url = testkit::postgres_url();
    let store = open(&url).await;
    let mut rx = store.subscribe();
    let other = open(&url).await;
    let a = other
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();

    // Kill every connection to this database but our own: the listener's
    // and both pools'.
    let admin = open_admin(&url).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&admin)
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut resyncs = 0;
    while resyncs < 2 {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no Resync within 10 s")
            .unwrap();
        assert_eq!(got, Change::Resync);
        resyncs += 1;
    }
    // Back: changes from the other instance flow again. The pools
    // reconnect by themselves too.
    assert!(
        other
            .set_status(a.id, AccountStatus::Disabled, 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));
}

#[tokio::test]
async fn postgres_outage_is_unavailable_then_recovers_with_resync() {
    let mut cluster = testkit::PgCluster::start();
    let url = cluster.create_database();
    let store = open(&url).await;
    let a = store
        .create_account(new_account("headers", "alice", 1))
        .await
        .unwrap();
    let mut rx = store.subscribe();

    assert!(store.reachable());
    cluster.stop();
    assert_eq!(next_change(&mut rx).await, Change::Resync);
    // Set before the Resync is sent: callers can refuse at once.
    assert!(!store.reachable());
    let err = store.account(a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().starts_with("the database is unavailable"));

    cluster.start_again();
    let got = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("no Resync within 15 s of the restart")
        .unwrap();
    assert_eq!(got, Change::Resync);
    assert!(store.reachable());
    assert_eq!(store.account(a.id).await.unwrap().map(|x| x.id), Some(a.id));

    let other = open(&url).await;
    assert!(
        other
            .set_status(a.id, AccountStatus::Disabled, 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut rx).await, Change::Account(a.id));
}

async fn open_admin(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

async fn case_accounts_bulk(store: Arc<dyn BulkLoad>) {
    let many: Vec<NewAccount> = (0..1500)
        .map(|i| new_account("headers", &format!("user-{i}"), 1))
        .collect();
    assert_eq!(store.create_accounts_bulk(&many).await.unwrap(), 1500);
    assert_eq!(store.create_accounts_bulk(&[]).await.unwrap(), 0);
    let a = store
        .account_by_identity(&IdentityKey::new("headers", "user-1499"))
        .await
        .unwrap()
        .expect("the last one is linked");
    assert_eq!(a.username, "user-1499");
    // All or nothing: one identity already linked, none of the batch lands.
    let again = vec![
        new_account("headers", "fresh-1", 1),
        new_account("headers", "user-7", 1),
    ];
    assert!(matches!(
        store.create_accounts_bulk(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .account_by_identity(&IdentityKey::new("headers", "fresh-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.accounts(None, 10_000).await.unwrap().len(), 1500);
}

fn signing_key(kid: &str, created_at: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        alg: "ES256".into(),
        private_format: PrivateKeyFormat::Aes256Gcm,
        // Bytes of every value, so a backend that mangles one shows.
        private_key: (0..=255u8).collect(),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at,
        signs_from: created_at + 3_600_000,
        retired_at: None,
        verify_until: None,
    }
}

async fn case_signing_keys(store: Arc<dyn Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty());

    // The first key: stored when there is no key at all.
    let first = signing_key("k1", 1_000);
    assert!(store.insert_signing_key(&first, i64::MIN).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), vec![first.clone()]);

    // A second "first key" loses: k1 is not retired.
    assert!(
        !store
            .insert_signing_key(&signing_key("k1b", 1_001), i64::MIN)
            .await
            .unwrap()
    );
    // A rotation wanted only if no key newer than 500: refused too.
    assert!(
        !store
            .insert_signing_key(&signing_key("k2", 2_000), 500)
            .await
            .unwrap()
    );
    // Only if no key newer than 1 000 (k1 is not newer): stored.
    let mut second = signing_key("k2", 2_000);
    second.private_format = PrivateKeyFormat::Plain;
    second.alg = "EdDSA".into();
    assert!(store.insert_signing_key(&second, 1_000).await.unwrap());
    // The same kid again: a conflict, whatever the condition says.
    assert!(matches!(
        store
            .insert_signing_key(&signing_key("k2", 3_000), 2_000)
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Retire k1: once; the first retirement stands.
    assert!(store.retire_signing_key("k1", 5_000, 9_000).await.unwrap());
    assert!(!store.retire_signing_key("k1", 6_000, 99_000).await.unwrap());
    assert!(
        !store
            .retire_signing_key("nope", 6_000, 99_000)
            .await
            .unwrap()
    );
    let keys = store.signing_keys().await.unwrap();
    let retired = StoredSigningKey {
        retired_at: Some(5_000),
        verify_until: Some(9_000),
        ..first
    };
    assert_eq!(keys, vec![retired.clone(), second.clone()]);

    // A retired key does not block a new key of its algorithm (k2, of the
    // same algorithm as k3, does, though).
    let third = StoredSigningKey {
        alg: "EdDSA".into(),
        ..signing_key("k3", 3_000)
    };
    assert!(!store.insert_signing_key(&third, 1_000).await.unwrap());

    // Purge: only retired keys past `verify_until`.
    assert_eq!(store.purge_signing_keys(8_999).await.unwrap(), 0);
    assert_eq!(store.purge_signing_keys(9_000).await.unwrap(), 1);
    assert_eq!(store.signing_keys().await.unwrap(), vec![second.clone()]);
    assert_eq!(store.purge_signing_keys(i64::MAX).await.unwrap(), 0);

    // Sealing a key stored plain: once, in place. A sealed key, or an
    // unknown kid, is left alone.
    let sealed: Vec<u8> = (0..=255u8).rev().collect();
    assert!(store.seal_signing_key("k2", &sealed).await.unwrap());
    assert!(!store.seal_signing_key("k2", b"again").await.unwrap());
    assert!(!store.seal_signing_key("nope", &sealed).await.unwrap());
    let second = StoredSigningKey {
        private_format: PrivateKeyFormat::Aes256Gcm,
        private_key: sealed,
        ..second
    };
    assert_eq!(store.signing_keys().await.unwrap(), vec![second.clone()]);

    // Each algorithm is its own family: a first RS256 key is stored while
    // the EdDSA key k2 is live, and a second first RS256 key loses.
    let rsa = StoredSigningKey {
        alg: "RS256".into(),
        ..signing_key("k4", 4_000)
    };
    assert!(store.insert_signing_key(&rsa, i64::MIN).await.unwrap());
    let rsa_again = StoredSigningKey {
        alg: "RS256".into(),
        ..signing_key("k5", 4_001)
    };
    assert!(
        !store
            .insert_signing_key(&rsa_again, i64::MIN)
            .await
            .unwrap()
    );
    assert_eq!(store.signing_keys().await.unwrap(), vec![second, rsa]);
}

/// Instances starting together each try to create the first key: exactly
/// one is stored, and every instance then loads that one.
async fn case_signing_key_races(store: Arc<dyn Store>) {
    let tries = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_signing_key(&signing_key(&format!("racer{i}"), 1_000 + i), i64::MIN)
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for t in tries {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}

fn client_ca(id: &str, created_at: i64) -> StoredClientCa {
    StoredClientCa {
        id: id.into(),
        cert_der: (0..=255u8).rev().collect(),
        private_format: PrivateKeyFormat::Aes256Gcm,
        private_key: (0..=255u8).collect(),
        created_at,
        retired_at: None,
    }
}

/// Two accounts, alice and bob, created at 100.
async fn alice_and_bob(store: &Arc<dyn Store>) -> (Account, Account) {
    let mut made = Vec::with_capacity(2);
    for name in ["alice", "bob"] {
        made.push(
            store
                .create_account(new_account("t", name, 100))
                .await
                .unwrap(),
        );
    }
    let bob = made.pop().unwrap();
    (made.pop().unwrap(), bob)
}

fn client_cert(serial: &str, ca_id: &str, device_id: i64, not_after: i64) -> ClientCertificate {
    ClientCertificate {
        serial: serial.into(),
        ca_id: ca_id.into(),
        device_id: Some(device_id),
        issued_at: 1_000,
        not_after,
        revoked_at: None,
    }
}

/// The client CA (issue 18): made once when several race, rotation
/// retires the previous one; issued certificates reach the CRL when their
/// device is revoked (marked at revocation) or deleted with its account,
/// and leave it when they expire.
async fn case_client_ca_and_certificates(store: Arc<dyn Store>) {
    assert!(store.client_cas().await.unwrap().is_empty());
    let first = client_ca("ca1", 1_000);
    assert!(store.insert_client_ca(&first, i64::MIN).await.unwrap());
    // A second "first CA" loses: one already exists.
    assert!(
        !store
            .insert_client_ca(&client_ca("ca1b", 1_001), i64::MIN)
            .await
            .unwrap()
    );
    assert_eq!(store.client_cas().await.unwrap(), vec![first.clone()]);
    // Rotation: the new one is current, the old one retired at its creation.
    assert!(
        store
            .insert_client_ca(&client_ca("ca2", 2_000), 1_999)
            .await
            .unwrap()
    );
    let cas = store.client_cas().await.unwrap();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0].retired_at, Some(2_000));
    assert_eq!(cas[1].retired_at, None);
    assert!(matches!(
        store
            .insert_client_ca(&client_ca("ca2", 3_000), 2_999)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Sealing a CA key stored plain: once, in place; a sealed one is left
    // alone.
    let mut plain = client_ca("ca3", 3_000);
    plain.private_format = PrivateKeyFormat::Plain;
    assert!(store.insert_client_ca(&plain, 2_999).await.unwrap());
    assert!(!store.seal_client_ca_key("ca2", b"x").await.unwrap());
    assert!(store.seal_client_ca_key("ca3", b"sealed").await.unwrap());
    assert!(!store.seal_client_ca_key("ca3", b"again").await.unwrap());
    let cas = store.client_cas().await.unwrap();
    assert_eq!(cas[2].private_format, PrivateKeyFormat::Aes256Gcm);
    assert_eq!(cas[2].private_key, b"sealed");
    assert_eq!(cas[1].private_key, client_ca("ca2", 0).private_key);

    let (alice, bob) = alice_and_bob(&store).await;
    let a1 = store.create_device(&new_device(alice.id, 1)).await.unwrap();
    let a2 = store.create_device(&new_device(alice.id, 2)).await.unwrap();
    let b1 = store.create_device(&new_device(bob.id, 3)).await.unwrap();
    for (serial, d, not_after) in [
        ("0a", a1.id, 50_000),
        ("0b", a2.id, 50_000),
        ("0c", b1.id, 50_000),
        ("0d", a2.id, 5_000),
    ] {
        store
            .record_client_certificate(&client_cert(serial, "ca2", d, not_after))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .record_client_certificate(&client_cert("0a", "ca2", a1.id, 1))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .revoked_client_certificates("ca2", 4_000)
            .await
            .unwrap()
            .is_empty()
    );

    // Another owner's revocation changes nothing, not even the CRL.
    assert!(!store.revoke_device(a1.id, Some(bob.id)).await.unwrap());
    assert!(
        store
            .revoked_client_certificates("ca2", 4_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.revoke_device(a2.id, Some(alice.id)).await.unwrap());
    let crl = store
        .revoked_client_certificates("ca2", 4_000)
        .await
        .unwrap();
    assert_eq!(
        crl.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["0b", "0d"]
    );
    assert!(
        crl.iter()
            .all(|c| c.revoked_at.is_some() && c.device_id.is_none())
    );
    // Expired certificates leave the CRL.
    let crl = store
        .revoked_client_certificates("ca2", 6_000)
        .await
        .unwrap();
    assert_eq!(
        crl.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["0b"]
    );
    // A device deleted with its account: on the CRL, without a time of its own.
    assert!(store.delete_account(bob.id).await.unwrap());
    let crl = store
        .revoked_client_certificates("ca2", 6_000)
        .await
        .unwrap();
    assert_eq!(
        crl.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["0b", "0c"]
    );
    assert_eq!(crl[1].revoked_at, None);
    // Another CA's list is its own.
    assert!(
        store
            .revoked_client_certificates("ca1", 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Renewing a certificate device (issue 18): the same row gets the new
/// leaf's digest and expiry, the old certificate goes on the CRL and the
/// new one is recorded, all at once and published; another owner's, a
/// non-certificate, an expired or a revoked device is left untouched.
async fn case_certificate_renewal(store: Arc<dyn Store>) {
    assert!(
        store
            .insert_client_ca(&client_ca("ca", 1_000), i64::MIN)
            .await
            .unwrap()
    );
    let (alice, bob) = alice_and_bob(&store).await;
    let cert_device = |secret: u8, expires_at: Option<i64>| NewDevice {
        kind: "certificate".into(),
        expires_at,
        ..new_device(alice.id, secret)
    };
    let phone = store
        .create_device(&cert_device(1, Some(50_000)))
        .await
        .unwrap();
    let expired = store
        .create_device(&cert_device(2, Some(2_000)))
        .await
        .unwrap();
    let token = store.create_device(&new_device(alice.id, 3)).await.unwrap();
    store
        .record_client_certificate(&client_cert("01", "ca", phone.id, 50_000))
        .await
        .unwrap();
    let mut rx = store.subscribe();
    let new_cert = |serial: &str| ClientCertificate {
        // Ignored: the certificate is recorded for the renewed device.
        device_id: None,
        issued_at: 3_000,
        ..client_cert(serial, "ca", 0, 90_000)
    };

    // Refused, with nothing written or published: another owner, a token
    // device, an expired certificate device.
    for (id, owner) in [
        (phone.id, bob.id),
        (token.id, alice.id),
        (expired.id, alice.id),
    ] {
        assert!(
            !store
                .renew_certificate_device(id, owner, &[9; 32], 90_000, &new_cert("02"), 3_000)
                .await
                .unwrap()
        );
    }
    no_change(&mut rx, Duration::from_millis(200)).await;
    assert!(store.device_by_secret(&[9; 32]).await.unwrap().is_none());
    assert!(
        store
            .revoked_client_certificates("ca", 3_000)
            .await
            .unwrap()
            .is_empty()
    );
    // A digest another device holds: a conflict, and the old state stays.
    assert!(matches!(
        store
            .renew_certificate_device(phone.id, alice.id, &[3; 32], 90_000, &new_cert("02"), 3_000)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.device_by_secret(&[1; 32]).await.unwrap().unwrap().id,
        phone.id
    );
    assert!(
        store
            .revoked_client_certificates("ca", 3_000)
            .await
            .unwrap()
            .is_empty()
    );
    no_change(&mut rx, Duration::from_millis(200)).await;

    assert!(
        store
            .renew_certificate_device(phone.id, alice.id, &[9; 32], 90_000, &new_cert("02"), 3_000)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut rx).await, Change::Device(phone.id));
    // The same row: id, name and creation kept; the old digest is gone.
    assert!(store.device_by_secret(&[1; 32]).await.unwrap().is_none());
    let renewed = store.device_by_secret(&[9; 32]).await.unwrap().unwrap();
    assert_eq!(
        renewed,
        Device {
            expires_at: Some(90_000),
            ..device_as_created(phone.id, &cert_device(1, None))
        }
    );
    let crl = store
        .revoked_client_certificates("ca", 3_000)
        .await
        .unwrap();
    assert_eq!(crl.len(), 1);
    assert_eq!(crl[0].serial, "01");
    assert_eq!(crl[0].revoked_at, Some(3_000));
    assert_eq!(crl[0].device_id, Some(phone.id));
    // The new certificate is the device's: revoking the device lists both.
    assert!(store.revoke_device(phone.id, Some(alice.id)).await.unwrap());
    let crl = store
        .revoked_client_certificates("ca", 3_000)
        .await
        .unwrap();
    assert_eq!(
        crl.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["01", "02"]
    );
    assert_eq!(crl[0].revoked_at, Some(3_000));
    // A revoked device cannot be renewed back.
    assert!(
        !store
            .renew_certificate_device(phone.id, alice.id, &[8; 32], 90_000, &new_cert("03"), 4_000)
            .await
            .unwrap()
    );
}

// ---- OpenID Connect provider (issue 14) --------------------------------

on_both_backends!(
    open => sqlite_provider, postgres_provider:
    case_oidc_clients_and_consents,
    case_oidc_code_single_use_and_replay,
    case_oidc_refresh_rotation_grace_and_reuse,
    case_oidc_refresh_races,
    case_oidc_access_tokens_revocation_and_purge,
    case_oidc_device_codes,
    case_oidc_device_code_races,
    case_oidc_revocations_are_published,
    case_oidc_session_end_queues_backchannel_logouts,
    case_oidc_backchannel_retry_bookkeeping,
);

use vestibule_store::provider::{
    CodeExchange, CodeTokens, NewAuthorizationCode, NewToken, RefreshOutcome, Rotation,
    StoredOidcClient,
};

/// A 32-byte digest stand-in: distinct per `n`.
fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

fn oidc_code(n: u8, client_id: &str, account_id: i64, now: i64) -> NewAuthorizationCode {
    NewAuthorizationCode {
        code_hash: digest(n),
        client_id: client_id.to_owned(),
        account_id,
        redirect_uri: "http://127.0.0.1:49152/cb".to_owned(),
        scopes: "email offline_access openid".to_owned(),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        session_ref: Some("s1".to_owned()),
        auth_time: now - 5_000,
        amr: vec!["pwd".to_owned(), "mfa".to_owned()],
        created_at: now,
        expires_at: now + 60_000,
    }
}

fn code_tokens(access: u8, refresh: Option<u8>, now: i64) -> CodeTokens {
    CodeTokens {
        access: NewToken {
            token_hash: digest(access),
            expires_at: now + 300_000,
        },
        refresh: refresh.map(|r| {
            (
                NewToken {
                    token_hash: digest(r),
                    expires_at: now + 3_600_000,
                },
                now + 86_400_000,
            )
        }),
    }
}

fn rotation(refresh: u8, access: u8, now: i64) -> Rotation {
    Rotation {
        refresh: NewToken {
            token_hash: digest(refresh),
            expires_at: now + 3_600_000,
        },
        access: NewToken {
            token_hash: digest(access),
            expires_at: now + 300_000,
        },
        sealed: vec![refresh, access, 0xee],
        grace_ms: 10_000,
        access_scopes: None,
    }
}

/// An account and a code for it, redeemed by `app`; returns the account id
/// and the refresh family.
async fn redeemed_grant(store: &Arc<dyn Store>, subject: &str, n: u8, now: i64) -> (i64, i64) {
    let account = store
        .create_account(new_account("idp", subject, now))
        .await
        .unwrap();
    store
        .create_authorization_code(&oidc_code(n, "app", account.id, now))
        .await
        .unwrap();
    match store
        .exchange_code(
            &digest(n),
            "app",
            now + 1,
            &code_tokens(n + 1, Some(n + 2), now),
        )
        .await
        .unwrap()
    {
        CodeExchange::Issued {
            family_id: Some(family),
            ..
        } => (account.id, family),
        other => panic!("not issued: {other:?}"),
    }
}

async fn case_oidc_clients_and_consents(store: Arc<dyn Store>) {
    let confidential = StoredOidcClient {
        client_id: "grafana".into(),
        secret_hash: Some(digest(1)),
        settings_json: r#"{"name":"Grafana"}"#.into(),
        created_at: 1_000,
        updated_at: 1_000,
    };
    let public = StoredOidcClient {
        client_id: "immich-mobile".into(),
        secret_hash: None,
        settings_json: "{}".into(),
        created_at: 1_001,
        updated_at: 1_001,
    };
    store.create_oidc_client(&public).await.unwrap();
    store.create_oidc_client(&confidential).await.unwrap();
    assert!(matches!(
        store.create_oidc_client(&confidential).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.oidc_clients().await.unwrap(),
        vec![confidential.clone(), public.clone()]
    );
    assert_eq!(
        store.oidc_client("grafana").await.unwrap(),
        Some(confidential.clone())
    );
    assert_eq!(store.oidc_client("GRAFANA").await.unwrap(), None);
    // Rotation replaces the digest; a public client gets no secret.
    assert!(
        store
            .set_oidc_client_secret("grafana", &digest(2), 2_000)
            .await
            .unwrap()
    );
    let rotated = store.oidc_client("grafana").await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, Some(digest(2)));
    assert_eq!(rotated.updated_at, 2_000);
    assert!(
        !store
            .set_oidc_client_secret("immich-mobile", &digest(3), 2_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_oidc_client_secret("nobody", &digest(3), 2_000)
            .await
            .unwrap()
    );

    // Consents: one per user and client, replaced on a new consent.
    let account = store
        .create_account(new_account("idp", "alice", 1_000))
        .await
        .unwrap();
    assert_eq!(store.consent(account.id, "grafana").await.unwrap(), None);
    store
        .put_consent(account.id, "grafana", "openid profile", 3_000)
        .await
        .unwrap();
    store
        .put_consent(account.id, "grafana", "email openid profile", 4_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .consent(account.id, "grafana")
            .await
            .unwrap()
            .as_deref(),
        Some("email openid profile")
    );
    assert!(matches!(
        store.put_consent(999_999, "grafana", "openid", 4_000).await,
        Err(StoreError::NotFound)
    ));
    // Forgetting a consent: the next request asks again; once.
    assert!(store.forget_consent(account.id, "grafana").await.unwrap());
    assert_eq!(store.consent(account.id, "grafana").await.unwrap(), None);
    assert!(!store.forget_consent(account.id, "grafana").await.unwrap());
    store
        .put_consent(account.id, "grafana", "email openid profile", 4_000)
        .await
        .unwrap();

    // Removing a client takes its consents and grants with it.
    store
        .create_authorization_code(&oidc_code(10, "grafana", account.id, 5_000))
        .await
        .unwrap();
    assert!(matches!(
        store
            .exchange_code(
                &digest(10),
                "grafana",
                5_001,
                &code_tokens(11, Some(12), 5_000)
            )
            .await
            .unwrap(),
        CodeExchange::Issued { .. }
    ));
    assert!(store.delete_oidc_client("grafana").await.unwrap());
    assert!(!store.delete_oidc_client("grafana").await.unwrap());
    assert_eq!(store.consent(account.id, "grafana").await.unwrap(), None);
    assert!(store.grants_of(account.id).await.unwrap().is_empty());
    assert_eq!(store.access_token(&digest(11)).await.unwrap(), None);
    assert_eq!(store.refresh_token(&digest(12)).await.unwrap(), None);
    assert_eq!(store.authorization_code(&digest(10)).await.unwrap(), None);
    assert_eq!(store.oidc_clients().await.unwrap(), vec![public]);
}

async fn case_oidc_code_single_use_and_replay(store: Arc<dyn Store>) {
    let now = 1_000_000;
    let account = store
        .create_account(new_account("idp", "bob", now))
        .await
        .unwrap();
    let code = oidc_code(1, "app", account.id, now);
    store.create_authorization_code(&code).await.unwrap();
    assert!(matches!(
        store.create_authorization_code(&code).await,
        Err(StoreError::Conflict(_))
    ));
    let mut for_nobody = oidc_code(9, "app", 999_999, now);
    for_nobody.amr.clear();
    assert!(matches!(
        store.create_authorization_code(&for_nobody).await,
        Err(StoreError::NotFound)
    ));
    let stored = store.authorization_code(&digest(1)).await.unwrap().unwrap();
    assert_eq!(stored.code, code);
    assert_eq!((stored.redeemed_at, stored.grant_id), (None, None));

    // Another client cannot redeem it, and does not use it up.
    assert_eq!(
        store
            .exchange_code(&digest(1), "other", now + 1, &code_tokens(2, Some(3), now))
            .await
            .unwrap(),
        CodeExchange::Invalid
    );
    let CodeExchange::Issued {
        code: redeemed,
        grant,
        family_id: Some(family),
    } = store
        .exchange_code(&digest(1), "app", now + 1, &code_tokens(2, Some(3), now))
        .await
        .unwrap()
    else {
        panic!("the first redemption issues");
    };
    assert_eq!(*redeemed, code);
    assert_eq!(
        (
            grant.account_id,
            grant.client_id.as_str(),
            grant.scopes.as_str()
        ),
        (account.id, "app", "email offline_access openid")
    );
    assert_eq!(
        (grant.auth_time, grant.session_ref.as_deref()),
        (now - 5_000, Some("s1"))
    );
    assert_eq!(
        store.grants_of(account.id).await.unwrap(),
        vec![grant.clone()]
    );
    let access = store.access_token(&digest(2)).await.unwrap().unwrap();
    assert_eq!(
        (access.account_id, access.grant_id, access.family_id),
        (Some(account.id), Some(grant.id), Some(family))
    );
    let refresh = store.refresh_token(&digest(3)).await.unwrap().unwrap();
    assert!(refresh.is_active(now + 2));
    assert_eq!(refresh.family_expires_at, now + 86_400_000);
    let stored = store.authorization_code(&digest(1)).await.unwrap().unwrap();
    assert_eq!(
        (stored.redeemed_at, stored.grant_id),
        (Some(now + 1), Some(grant.id))
    );

    // A replay (by anyone) revokes everything the code issued.
    assert_eq!(
        store
            .exchange_code(&digest(1), "app", now + 2, &code_tokens(4, Some(5), now))
            .await
            .unwrap(),
        CodeExchange::Replayed {
            revoked_grant: Some(grant.id)
        }
    );
    assert_eq!(store.access_token(&digest(2)).await.unwrap(), None);
    assert_eq!(store.refresh_token(&digest(3)).await.unwrap(), None);
    assert_eq!(store.access_token(&digest(4)).await.unwrap(), None);
    assert!(store.grants_of(account.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .exchange_code(&digest(1), "app", now + 3, &code_tokens(4, Some(5), now))
            .await
            .unwrap(),
        CodeExchange::Replayed {
            revoked_grant: None
        }
    );

    // Expired and unknown codes are invalid; no refresh token when none is asked.
    store
        .create_authorization_code(&oidc_code(20, "app", account.id, now))
        .await
        .unwrap();
    assert_eq!(
        store
            .exchange_code(
                &digest(20),
                "app",
                now + 60_000,
                &code_tokens(21, None, now)
            )
            .await
            .unwrap(),
        CodeExchange::Invalid
    );
    assert_eq!(
        store
            .exchange_code(&digest(30), "app", now, &code_tokens(21, None, now))
            .await
            .unwrap(),
        CodeExchange::Invalid
    );
    store
        .create_authorization_code(&oidc_code(40, "app", account.id, now))
        .await
        .unwrap();
    let CodeExchange::Issued {
        family_id: None,
        grant,
        ..
    } = store
        .exchange_code(&digest(40), "app", now + 1, &code_tokens(41, None, now))
        .await
        .unwrap()
    else {
        panic!("issued without a refresh token");
    };
    // One grant by id, whoever holds it.
    assert_eq!(store.grant(grant.id).await.unwrap(), Some(grant.clone()));
    assert_eq!(store.grant(grant.id + 1_000).await.unwrap(), None);
    // The owner check on revoking a grant.
    assert!(
        !store
            .revoke_grant(grant.id, Some(account.id + 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_grant(grant.id, Some(account.id))
            .await
            .unwrap()
    );
    assert_eq!(store.access_token(&digest(41)).await.unwrap(), None);
    assert_eq!(store.grant(grant.id).await.unwrap(), None);
    // Deleting the account takes its codes.
    store
        .create_authorization_code(&oidc_code(50, "app", account.id, now))
        .await
        .unwrap();
    assert!(store.delete_account(account.id).await.unwrap());
    assert_eq!(store.authorization_code(&digest(50)).await.unwrap(), None);
}

async fn case_oidc_refresh_rotation_grace_and_reuse(store: Arc<dyn Store>) {
    let now = 1_000_000;
    let (account, family) = redeemed_grant(&store, "carol", 1, now).await;
    // digest(3) is the first refresh token.
    let rotated = store
        .rotate_refresh(&digest(3), "app", now + 10, &rotation(10, 11, now + 10))
        .await
        .unwrap();
    let RefreshOutcome::Rotated {
        grant,
        refresh_expires_at,
    } = rotated
    else {
        panic!("rotates: {rotated:?}");
    };
    assert_eq!((grant.account_id, grant.last_used_at), (account, now + 10));
    assert_eq!(refresh_expires_at, now + 10 + 3_600_000);
    let parent = store.refresh_token(&digest(3)).await.unwrap().unwrap();
    assert_eq!(parent.rotated_at, Some(now + 10));
    assert!(!parent.is_active(now + 11));
    let successor = store.refresh_token(&digest(10)).await.unwrap().unwrap();
    assert_eq!(successor.family_id, family);
    assert!(successor.is_active(now + 11));
    assert_eq!(
        store
            .access_token(&digest(11))
            .await
            .unwrap()
            .unwrap()
            .family_id,
        Some(family)
    );

    // A retry inside the window gets the sealed successors, stores nothing.
    assert_eq!(
        store
            .rotate_refresh(&digest(3), "app", now + 10_010, &rotation(12, 13, now))
            .await
            .unwrap(),
        RefreshOutcome::GraceRetry {
            grant: grant.clone(),
            sealed: vec![10, 11, 0xee]
        }
    );
    assert_eq!(store.refresh_token(&digest(12)).await.unwrap(), None);
    // Another client presenting it is refused and revokes nothing.
    assert_eq!(
        store
            .rotate_refresh(&digest(3), "thief", now + 20, &rotation(12, 13, now))
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert!(
        store
            .refresh_token(&digest(10))
            .await
            .unwrap()
            .unwrap()
            .is_active(now + 21)
    );

    // Outside the window: the family dies with its access tokens.
    assert_eq!(
        store
            .rotate_refresh(&digest(3), "app", now + 10_011, &rotation(12, 13, now))
            .await
            .unwrap(),
        RefreshOutcome::Reused {
            family_id: family,
            grant: grant.clone()
        }
    );
    let dead = store.refresh_token(&digest(10)).await.unwrap().unwrap();
    assert_eq!(dead.family_revoked_at, Some(now + 10_011));
    assert!(!dead.is_active(now + 10_012));
    assert_eq!(store.access_token(&digest(11)).await.unwrap(), None);
    assert_eq!(store.access_token(&digest(2)).await.unwrap(), None);
    assert_eq!(
        store
            .rotate_refresh(&digest(10), "app", now + 10_012, &rotation(12, 13, now))
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );

    // Inside the window, but the successor was used already: reuse.
    let (_, family2) = redeemed_grant(&store, "dave", 20, now).await;
    assert!(matches!(
        store
            .rotate_refresh(&digest(22), "app", now + 10, &rotation(30, 31, now))
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
    assert!(matches!(
        store
            .rotate_refresh(&digest(30), "app", now + 20, &rotation(32, 33, now))
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
    assert!(matches!(
        store
            .rotate_refresh(&digest(22), "app", now + 30, &rotation(34, 35, now))
            .await
            .unwrap(),
        RefreshOutcome::Reused { family_id, .. } if family_id == family2
    ));

    // Sliding expiry is capped at the family's absolute expiry; an expired
    // current token is invalid and revokes nothing.
    let (_, _) = redeemed_grant(&store, "erin", 40, now).await;
    let RefreshOutcome::Rotated {
        refresh_expires_at, ..
    } = store
        .rotate_refresh(
            &digest(42),
            "app",
            now + 100,
            &rotation(50, 51, now + 86_400_000),
        )
        .await
        .unwrap()
    else {
        panic!("rotates before the cap");
    };
    assert_eq!(refresh_expires_at, now + 86_400_000);
    assert_eq!(
        store
            .rotate_refresh(&digest(50), "app", now + 86_400_000, &rotation(52, 53, now))
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        store
            .refresh_token(&digest(50))
            .await
            .unwrap()
            .unwrap()
            .family_revoked_at,
        None
    );

    // Revocation (RFC 7009) by the right client only.
    let (_, family4) = redeemed_grant(&store, "frank", 60, now).await;
    assert!(
        !store
            .revoke_refresh_family(&digest(62), "thief", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_refresh_family(&digest(62), "app", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_refresh_family(&digest(62), "app", now)
            .await
            .unwrap()
    );
    assert_eq!(store.access_token(&digest(61)).await.unwrap(), None);
    assert_eq!(
        store
            .refresh_token(&digest(62))
            .await
            .unwrap()
            .unwrap()
            .family_id,
        family4
    );
}

async fn case_oidc_refresh_races(store: Arc<dyn Store>) {
    // Parallel refreshes with one token: exactly one rotates, the others
    // get the same sealed successors back (none revokes the family).
    let now = 1_000_000;
    let (_, _) = redeemed_grant(&store, "gina", 1, now).await;
    let mut tasks = Vec::new();
    for i in 0..4u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh(
                    &digest(3),
                    "app",
                    now + 10,
                    &rotation(100 + i, 110 + i, now),
                )
                .await
                .unwrap()
        }));
    }
    let mut rotated = Vec::new();
    let mut retries = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            RefreshOutcome::Rotated { .. } => rotated.push(()),
            RefreshOutcome::GraceRetry { sealed, .. } => retries.push(sealed),
            other => panic!("a parallel refresh got {other:?}"),
        }
    }
    assert_eq!((rotated.len(), retries.len()), (1, 3));
    let winner = retries[0].clone();
    assert!(retries.iter().all(|s| *s == winner));
    assert!(
        store
            .refresh_token(&digest(winner[0]))
            .await
            .unwrap()
            .unwrap()
            .is_active(now + 11)
    );
}

async fn case_oidc_access_tokens_revocation_and_purge(store: Arc<dyn Store>) {
    let now = 1_000_000;
    let cc = NewToken {
        token_hash: digest(200),
        expires_at: now + 300_000,
    };
    store
        .create_client_access_token("service", "metrics:read", &cc, now)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_client_access_token("service", "metrics:read", &cc, now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let record = store.access_token(&digest(200)).await.unwrap().unwrap();
    assert_eq!(
        (
            record.client_id.as_str(),
            record.account_id,
            record.grant_id,
            record.scopes.as_str()
        ),
        ("service", None, None, "metrics:read")
    );
    assert_eq!(record.expires_at, now + 300_000);
    // Only the client it was issued to revokes it.
    assert!(
        !store
            .revoke_access_token(&digest(200), "app")
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_access_token(&digest(200), "service")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_access_token(&digest(200), "service")
            .await
            .unwrap()
    );

    // Purge: expired access tokens, unredeemed expired codes, redeemed codes
    // past the retention, families past their absolute expiry, and sealed
    // successors past the grace window.
    let (account, _) = redeemed_grant(&store, "hank", 1, now).await;
    store
        .create_authorization_code(&oidc_code(90, "app", account, now))
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh(&digest(3), "app", now + 10, &rotation(10, 11, now))
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
    // Before anything expired, only the sealed successor is dropped.
    assert_eq!(
        store
            .purge_provider(now + 20, now - 1, now + 20)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store
            .rotate_refresh(&digest(3), "app", now + 30, &rotation(12, 13, now))
            .await
            .unwrap(),
        RefreshOutcome::Reused { .. }
    ));
    let purged = store
        .purge_provider(now + 86_400_000, now + 86_400_000, now + 86_400_000)
        .await
        .unwrap();
    // Access token 2 (revoked with the family: already gone), code 90,
    // code 1 (redeemed), the family; the rotated tokens go with the family.
    assert_eq!(purged, 3);
    assert_eq!(store.authorization_code(&digest(1)).await.unwrap(), None);
    assert_eq!(store.authorization_code(&digest(90)).await.unwrap(), None);
    assert_eq!(store.refresh_token(&digest(3)).await.unwrap(), None);
    assert_eq!(store.grants_of(account).await.unwrap().len(), 1);
}

// ---- device codes (RFC 8628) -------------------------------------------

use vestibule_store::provider::{DeviceApproval, DeviceDecision, DeviceRedemption, NewDeviceCode};

fn device_code(n: u8, client_id: &str, now: i64) -> NewDeviceCode {
    NewDeviceCode {
        device_code_hash: digest(n),
        user_code_hash: digest(n + 1),
        client_id: client_id.to_owned(),
        scopes: "offline_access openid".to_owned(),
        interval_ms: 5_000,
        created_at: now,
        expires_at: now + 600_000,
    }
}

async fn case_oidc_device_codes(store: Arc<dyn Store>) {
    let now = 1_000_000;
    let account = store
        .create_account(new_account("idp", "tv-owner", now))
        .await
        .unwrap();
    store
        .create_device_code(&device_code(10, "tv", now))
        .await
        .unwrap();
    // The same user code again is a conflict: the caller draws another.
    let mut clash = device_code(12, "tv", now);
    clash.user_code_hash = digest(11);
    assert!(matches!(
        store.create_device_code(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    let d = store
        .device_code_by_user_code(&digest(11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.code, device_code(10, "tv", now));
    assert_eq!(
        (d.decision, d.last_poll_at, d.redeemed_at),
        (DeviceDecision::Pending, None, None)
    );
    assert_eq!(store.device_code(&digest(10)).await.unwrap(), Some(d));
    assert!(store.device_code(&digest(11)).await.unwrap().is_none());

    // Polls: compare and set on the previous poll.
    assert!(
        store
            .record_device_poll(&digest(10), None, now + 1, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_device_poll(&digest(10), None, now + 2, 5_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_device_poll(&digest(10), Some(now + 1), now + 2, 10_000)
            .await
            .unwrap()
    );
    let d = store.device_code(&digest(10)).await.unwrap().unwrap();
    assert_eq!(
        (d.last_poll_at, d.code.interval_ms),
        (Some(now + 2), 10_000)
    );

    // Not approved yet: nothing to redeem.
    let tokens = code_tokens(20, Some(21), now);
    assert_eq!(
        store
            .redeem_device_code(&digest(10), "tv", now + 3, &tokens)
            .await
            .unwrap(),
        DeviceRedemption::Invalid
    );
    let approval = DeviceApproval {
        account_id: account.id,
        session_ref: Some("s9".into()),
        auth_time: now - 50,
        amr: vec!["pwd".into()],
    };
    assert!(
        store
            .decide_device_code(&digest(11), now + 4, Some(&approval))
            .await
            .unwrap()
    );
    // Answered once: neither a second approval nor a denial changes it.
    assert!(
        !store
            .decide_device_code(&digest(11), now + 5, None)
            .await
            .unwrap()
    );
    let d = store.device_code(&digest(10)).await.unwrap().unwrap();
    assert_eq!(
        (d.decision, d.approval.as_ref()),
        (DeviceDecision::Approved, Some(&approval))
    );
    // Another client cannot redeem it.
    assert_eq!(
        store
            .redeem_device_code(&digest(10), "other", now + 6, &tokens)
            .await
            .unwrap(),
        DeviceRedemption::Invalid
    );
    let DeviceRedemption::Issued { grant, family_id } = store
        .redeem_device_code(&digest(10), "tv", now + 6, &tokens)
        .await
        .unwrap()
    else {
        panic!("not issued");
    };
    assert_eq!(
        (
            grant.account_id,
            grant.client_id.as_str(),
            grant.scopes.as_str(),
            grant.session_ref.as_deref(),
            grant.auth_time
        ),
        (
            account.id,
            "tv",
            "offline_access openid",
            Some("s9"),
            now - 50
        )
    );
    let family_id = family_id.expect("a refresh family");
    let r = store.refresh_token(&digest(21)).await.unwrap().unwrap();
    assert_eq!((r.family_id, r.grant.id), (family_id, grant.id));
    let a = store.access_token(&digest(20)).await.unwrap().unwrap();
    assert_eq!(
        (a.account_id, a.grant_id),
        (Some(account.id), Some(grant.id))
    );
    // Redeemed once.
    assert_eq!(
        store
            .redeem_device_code(&digest(10), "tv", now + 7, &code_tokens(22, None, now))
            .await
            .unwrap(),
        DeviceRedemption::Invalid
    );
    assert_eq!(
        store
            .device_code(&digest(10))
            .await
            .unwrap()
            .unwrap()
            .redeemed_at,
        Some(now + 6)
    );

    // Denied, and expired codes: no answer, no redemption.
    store
        .create_device_code(&device_code(30, "tv", now))
        .await
        .unwrap();
    assert!(
        store
            .decide_device_code(&digest(31), now + 1, None)
            .await
            .unwrap()
    );
    let d = store.device_code(&digest(30)).await.unwrap().unwrap();
    assert_eq!((d.decision, d.approval), (DeviceDecision::Denied, None));
    assert_eq!(
        store
            .redeem_device_code(&digest(30), "tv", now + 2, &code_tokens(32, None, now))
            .await
            .unwrap(),
        DeviceRedemption::Invalid
    );
    store
        .create_device_code(&device_code(40, "tv", now))
        .await
        .unwrap();
    assert!(
        !store
            .decide_device_code(&digest(41), now + 600_000, Some(&approval))
            .await
            .unwrap()
    );
    store
        .create_device_code(&device_code(50, "tv", now))
        .await
        .unwrap();
    assert!(
        store
            .decide_device_code(&digest(51), now + 1, Some(&approval))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .redeem_device_code(
                &digest(50),
                "tv",
                now + 600_000,
                &code_tokens(52, None, now)
            )
            .await
            .unwrap(),
        DeviceRedemption::Invalid
    );

    // Purged after expiry (the redeemed one's grant stays).
    store.purge_provider(now + 600_000, 0, 0).await.unwrap();
    for n in [10, 30, 40, 50] {
        assert!(
            store.device_code(&digest(n)).await.unwrap().is_none(),
            "{n}"
        );
    }
    assert_eq!(store.grants_of(account.id).await.unwrap().len(), 1);

    // A store client's removal takes its device codes with it.
    store
        .create_oidc_client(&StoredOidcClient {
            client_id: "tv2".into(),
            secret_hash: None,
            settings_json: "{}".into(),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    store
        .create_device_code(&device_code(60, "tv2", now))
        .await
        .unwrap();
    assert!(store.delete_oidc_client("tv2").await.unwrap());
    assert!(store.device_code(&digest(60)).await.unwrap().is_none());
}

/// Racing redemptions of one approved device code: exactly one issues
/// tokens (one conditional UPDATE); racing polls with the same previous
/// poll: exactly one is recorded.
async fn case_oidc_device_code_races(store: Arc<dyn Store>) {
    let now = 2_000_000;
    let account = store
        .create_account(new_account("idp", "racer", now))
        .await
        .unwrap();
    store
        .create_device_code(&device_code(70, "tv", now))
        .await
        .unwrap();
    let approval = DeviceApproval {
        account_id: account.id,
        session_ref: None,
        auth_time: now,
        amr: Vec::new(),
    };
    assert!(
        store
            .decide_device_code(&digest(71), now, Some(&approval))
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let t = code_tokens(100 + i, Some(120 + i), now);
            let r = store
                .redeem_device_code(&digest(70), "tv", now + 1, &t)
                .await;
            let p = store
                .record_device_poll(&digest(70), None, now + 1, 5_000)
                .await;
            (r, p)
        }));
    }
    let mut issued = 0;
    let mut polls = 0;
    for t in tasks {
        let (r, p) = t.await.unwrap();
        issued += usize::from(matches!(r.unwrap(), DeviceRedemption::Issued { .. }));
        polls += usize::from(p.unwrap());
    }
    assert_eq!((issued, polls), (1, 1));
    assert_eq!(store.grants_of(account.id).await.unwrap().len(), 1);
}

/// Every provider revocation is published on the change feed (the gate's
/// token cache drops what it names): an access token by its digest, a
/// refresh family, a grant and a replayed code by the grant's id. Nothing
/// is published when nothing was revoked.
async fn case_oidc_revocations_are_published(store: Arc<dyn Store>) {
    let now = 1_000_000;
    let mut rx = store.subscribe();
    // A client_credentials token, revoked by its client only.
    let svc = NewToken {
        token_hash: digest(90),
        expires_at: now + 60_000,
    };
    store
        .create_client_access_token("svc", "api", &svc, now)
        .await
        .unwrap();
    assert!(
        !store
            .revoke_access_token(&digest(90), "other")
            .await
            .unwrap()
    );
    assert!(store.revoke_access_token(&digest(90), "svc").await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::AccessToken(digest(90)));
    assert!(!store.revoke_access_token(&digest(90), "svc").await.unwrap());
    no_change(&mut rx, Duration::from_millis(200)).await;

    // A refresh family: its grant is named.
    let (ann, _) = redeemed_grant(&store, "ann-pub", 100, now).await;
    let grant = store.grants_of(ann).await.unwrap()[0].id;
    assert!(
        store
            .revoke_refresh_family(&digest(102), "app", now + 2)
            .await
            .unwrap()
    );
    assert_eq!(next_change(&mut rx).await, Change::Grant(grant));
    assert!(
        !store
            .revoke_refresh_family(&digest(102), "app", now + 3)
            .await
            .unwrap()
    );
    no_change(&mut rx, Duration::from_millis(200)).await;

    // A grant revoked by its owner (or an admin).
    assert!(store.revoke_grant(grant, Some(ann)).await.unwrap());
    assert_eq!(next_change(&mut rx).await, Change::Grant(grant));
    assert!(!store.revoke_grant(grant, None).await.unwrap());
    no_change(&mut rx, Duration::from_millis(200)).await;

    // A replayed code revokes the grant its redemption created.
    let (bob, _) = redeemed_grant(&store, "bob-pub", 110, now).await;
    let grant = store.grants_of(bob).await.unwrap()[0].id;
    let replay = store
        .exchange_code(&digest(110), "app", now + 5, &code_tokens(120, None, now))
        .await
        .unwrap();
    assert_eq!(
        replay,
        CodeExchange::Replayed {
            revoked_grant: Some(grant)
        }
    );
    assert_eq!(next_change(&mut rx).await, Change::Grant(grant));

    // A rotated refresh token reused outside the window: the family dies,
    // and its grant is named.
    let (carl, _) = redeemed_grant(&store, "carl-pub", 130, now).await;
    let grant = store.grants_of(carl).await.unwrap()[0].id;
    let mut r = rotation(150, 151, now);
    r.grace_ms = 0;
    assert!(matches!(
        store
            .rotate_refresh(&digest(132), "app", now + 10, &rotation(140, 141, now))
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
    assert!(matches!(
        store
            .rotate_refresh(&digest(132), "app", now + 20, &r)
            .await
            .unwrap(),
        RefreshOutcome::Reused { .. }
    ));
    assert_eq!(next_change(&mut rx).await, Change::Grant(grant));
    no_change(&mut rx, Duration::from_millis(200)).await;
}

// ---- back-channel logout outbox (migration 0011) -----------------------

use vestibule_store::provider::BackchannelLogout;

/// A grant of `client` from the session `[session; 32]` of `account`,
/// issued by code `n` (access token `n + 1`, refresh token `n + 2`).
async fn grant_from_session(
    store: &Arc<dyn Store>,
    account: i64,
    client: &str,
    session: u8,
    n: u8,
    now: i64,
) -> i64 {
    let mut code = oidc_code(n, client, account, now);
    code.session_ref = Some(vestibule_store::hex(&[session; 32]));
    store.create_authorization_code(&code).await.unwrap();
    match store
        .exchange_code(
            &digest(n),
            client,
            now + 1,
            &code_tokens(n + 1, Some(n + 2), now),
        )
        .await
        .unwrap()
    {
        CodeExchange::Issued { grant, .. } => grant.id,
        other => panic!("not issued: {other:?}"),
    }
}

/// The grant issued by code `n` is gone with its tokens.
async fn grant_is_dead(store: &Arc<dyn Store>, account: i64, grant: i64, n: u8) {
    assert!(
        store
            .grants_of(account)
            .await
            .unwrap()
            .iter()
            .all(|g| g.id != grant),
        "grant {grant} still exists"
    );
    assert_eq!(store.access_token(&digest(n + 1)).await.unwrap(), None);
    assert_eq!(store.refresh_token(&digest(n + 2)).await.unwrap(), None);
}

/// The outbox rows, as (client, account, grant, session_ref).
async fn outbox(store: &Arc<dyn Store>) -> Vec<(String, i64, i64, String)> {
    store
        .backchannel_logouts()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.client_id, r.account_id, r.grant_id, r.session_ref))
        .collect()
}

async fn grant_changes(rx: &mut broadcast::Receiver<Change>, n: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < n {
        if let Change::Grant(id) = next_change(rx).await {
            got.push(id);
        }
    }
    got.sort_unstable();
    got
}

async fn case_oidc_session_end_queues_backchannel_logouts(store: Arc<dyn Store>) {
    let now = vestibule_store_now();
    let alice = store
        .create_account(new_account("idp", "alice", now))
        .await
        .unwrap()
        .id;
    let bob = store
        .create_account(new_account("idp", "bob", now))
        .await
        .unwrap()
        .id;
    let far = now + 3_600_000;
    let mut rx = store.subscribe();

    // revoke_session: both grants of session 1 die, session 2's stays.
    store.create_session(&session(1, alice, far)).await.unwrap();
    store.create_session(&session(2, alice, far)).await.unwrap();
    let g1 = grant_from_session(&store, alice, "app", 1, 10, now).await;
    let g1b = grant_from_session(&store, alice, "wiki", 1, 20, now).await;
    let g2 = grant_from_session(&store, alice, "app", 2, 30, now).await;
    // A code from session 1 not redeemed yet dies with it.
    let mut pending = oidc_code(40, "app", alice, now);
    pending.session_ref = Some(vestibule_store::hex(&[1; 32]));
    store.create_authorization_code(&pending).await.unwrap();
    assert!(store.revoke_session(&[1; 32]).await.unwrap());
    grant_is_dead(&store, alice, g1, 10).await;
    grant_is_dead(&store, alice, g1b, 20).await;
    assert_eq!(store.authorization_code(&digest(40)).await.unwrap(), None);
    assert!(store.access_token(&digest(31)).await.unwrap().is_some());
    let s1 = vestibule_store::hex(&[1; 32]);
    assert_eq!(
        outbox(&store).await,
        vec![
            ("app".to_owned(), alice, g1, s1.clone()),
            ("wiki".to_owned(), alice, g1b, s1.clone()),
        ]
    );
    assert_eq!(grant_changes(&mut rx, 2).await, vec![g1, g1b]);
    let rows = store.backchannel_logouts().await.unwrap();
    assert!(rows.iter().all(|r| r.attempts == 0
        && r.lease.is_none()
        && r.last_error.is_none()
        && r.next_attempt_at == r.created_at
        && r.created_at >= now));

    // revoke_sessions_of (admin revoke-all, account disabled).
    assert_eq!(store.revoke_sessions_of(alice).await.unwrap(), 1);
    grant_is_dead(&store, alice, g2, 30).await;
    assert_eq!(outbox(&store).await.len(), 3);
    assert_eq!(
        outbox(&store).await[2],
        ("app".to_owned(), alice, g2, vestibule_store::hex(&[2; 32]))
    );
    assert_eq!(grant_changes(&mut rx, 1).await, vec![g2]);

    // purge_expired_sessions: only the expired session's grant.
    store
        .create_session(&session(3, bob, now - 1))
        .await
        .unwrap();
    store.create_session(&session(4, bob, far)).await.unwrap();
    let g3 = grant_from_session(&store, bob, "app", 3, 50, now).await;
    let g4 = grant_from_session(&store, bob, "app", 4, 60, now).await;
    assert_eq!(store.purge_expired_sessions(now).await.unwrap(), 1);
    grant_is_dead(&store, bob, g3, 50).await;
    assert!(store.access_token(&digest(61)).await.unwrap().is_some());
    assert_eq!(
        outbox(&store).await[3],
        ("app".to_owned(), bob, g3, vestibule_store::hex(&[3; 32]))
    );
    assert_eq!(grant_changes(&mut rx, 1).await, vec![g3]);

    // revoke_grant: only its owner (or the admin, None) revokes it.
    assert!(!store.revoke_grant(g4, Some(alice)).await.unwrap());
    assert_eq!(outbox(&store).await.len(), 4);
    assert!(store.revoke_grant(g4, Some(bob)).await.unwrap());
    grant_is_dead(&store, bob, g4, 60).await;
    assert_eq!(
        outbox(&store).await[4],
        ("app".to_owned(), bob, g4, vestibule_store::hex(&[4; 32]))
    );
    assert_eq!(grant_changes(&mut rx, 1).await, vec![g4]);
    assert!(!store.revoke_grant(g4, None).await.unwrap());
    // The session itself still runs: revoking an app is not a logout.
    assert!(store.session(&[4; 32]).await.unwrap().is_some());

    // delete_account: every grant of the account, told before it goes.
    let g5 = grant_from_session(&store, bob, "app", 4, 70, now).await;
    assert!(store.delete_account(bob).await.unwrap());
    assert_eq!(
        outbox(&store).await[5],
        ("app".to_owned(), bob, g5, vestibule_store::hex(&[4; 32]))
    );
    assert_eq!(store.backchannel_logouts().await.unwrap().len(), 6);
}

fn vestibule_store_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Queues `n` notifications for one account (one session, `n` clients).
async fn queue_logouts(store: &Arc<dyn Store>, n: u8) -> i64 {
    let now = vestibule_store_now();
    let a = store
        .create_account(new_account("idp", "carol", now))
        .await
        .unwrap()
        .id;
    store
        .create_session(&session(9, a, now + 3_600_000))
        .await
        .unwrap();
    for i in 0..n {
        grant_from_session(store, a, &format!("c{i}"), 9, 10 + 3 * i, now).await;
    }
    store.revoke_session(&[9; 32]).await.unwrap();
    a
}

async fn case_oidc_backchannel_retry_bookkeeping(store: Arc<dyn Store>) {
    queue_logouts(&store, 1).await;
    let row = store.backchannel_logouts().await.unwrap().remove(0);
    let t = row.created_at;
    assert_eq!(store.next_backchannel_logout_at().await.unwrap(), Some(t));
    // Not due before its time.
    assert!(
        store
            .claim_backchannel_logouts(t - 1, "L1", t + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store
        .claim_backchannel_logouts(t, "L1", t + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.as_deref(), Some("L1"));
    assert_eq!(claimed[0].lease_until, Some(t + 60_000));
    // Leased: the next claim waits for the lease's end.
    assert_eq!(
        store.next_backchannel_logout_at().await.unwrap(),
        Some(t + 60_000)
    );
    assert!(
        store
            .claim_backchannel_logouts(t + 1, "L2", t + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A failure: one more attempt, the error, the lease released.
    assert!(
        !store
            .retry_backchannel_logout(row.id, "L2", t + 1_000, "nope")
            .await
            .unwrap()
    );
    assert!(
        store
            .retry_backchannel_logout(row.id, "L1", t + 1_000, "HTTP 500")
            .await
            .unwrap()
    );
    let after = store.backchannel_logouts().await.unwrap().remove(0);
    assert_eq!(
        (
            after.attempts,
            after.next_attempt_at,
            after.lease,
            after.lease_until,
            after.last_error.as_deref()
        ),
        (1, t + 1_000, None, None, Some("HTTP 500"))
    );
    assert_eq!(
        store.next_backchannel_logout_at().await.unwrap(),
        Some(t + 1_000)
    );
    assert!(
        store
            .claim_backchannel_logouts(t + 999, "L3", t + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_backchannel_logouts(t + 1_000, "L3", t + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(
        store
            .retry_backchannel_logout(row.id, "L3", t + 3_000, "timed out")
            .await
            .unwrap()
    );
    let again = store
        .claim_backchannel_logouts(t + 3_000, "L4", t + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again[0].attempts, 2);
    // Done: only the lease holder deletes it.
    assert!(!store.finish_backchannel_logout(row.id, "L3").await.unwrap());
    assert!(store.finish_backchannel_logout(row.id, "L4").await.unwrap());
    assert!(!store.finish_backchannel_logout(row.id, "L4").await.unwrap());
    assert!(store.backchannel_logouts().await.unwrap().is_empty());
    assert_eq!(store.next_backchannel_logout_at().await.unwrap(), None);
}

async fn case_oidc_backchannel_claims_are_exclusive_across_instances(url: String) {
    let a = open(&url).await;
    let b = open(&url).await;
    queue_logouts(&a, 12).await;
    let now = vestibule_store_now() + 1_000;
    // Two instances claim at once, several times each: no row twice.
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let lease = format!("lease-{i}");
            let got: Vec<BackchannelLogout> = store
                .claim_backchannel_logouts(now, &lease, now + 60_000, 5)
                .await
                .unwrap();
            got.into_iter()
                .map(|r| (r.id, lease.clone()))
                .collect::<Vec<_>>()
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let mut ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a row was claimed twice: {claimed:?}");
    // Whatever is left is claimed now; then nothing is.
    let rest = b
        .claim_backchannel_logouts(now, "rest", now + 60_000, 100)
        .await
        .unwrap();
    assert_eq!(before + rest.len(), 12);
    assert!(
        a.claim_backchannel_logouts(now, "late", now + 60_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A lapsed lease: the row is claimed again, and the first holder can
    // no longer finish it.
    // `unwrap_or_else`, not `unwrap_or`: when the four claims took all
    // twelve rows, `rest` is empty and must not be indexed.
    let (id, first) = claimed
        .first()
        .cloned()
        .unwrap_or_else(|| (rest[0].id, "rest".to_owned()));
    let later = a
        .claim_backchannel_logouts(now + 60_000, "second", now + 120_000, 100)
        .await
        .unwrap();
    assert_eq!(later.len(), 12);
    assert!(!b.finish_backchannel_logout(id, &first).await.unwrap());
    assert!(b.finish_backchannel_logout(id, "second").await.unwrap());
    assert_eq!(a.backchannel_logouts().await.unwrap().len(), 11);
}

/// `[source.oidc]`'s rows (migration 0012): a login under way is taken
/// once and not after it expired; a session's link goes with the session;
/// logout tokens name sessions by sid (narrowed by sub) or by sub alone,
/// under their issuer only; a jti is accepted once per issuer until it
/// expires.
async fn case_oidc_login_rows(store: Arc<dyn Store>) {
    use vestibule_store::oidc_login::{OidcSessionLink, PendingOidcLogin};
    let pending = |n: u8, expires_at: i64| PendingOidcLogin {
        login_hash: [n; 32],
        state: format!("state-{n}"),
        nonce: format!("nonce-{n}"),
        verifier: format!("verifier-{n}"),
        return_to: "https://app.example.test/".into(),
        expires_at,
        link: None,
    };
    store
        .put_pending_oidc_login(&pending(1, 100), 0)
        .await
        .unwrap();
    store
        .put_pending_oidc_login(&pending(2, 100), 0)
        .await
        .unwrap();
    assert_eq!(
        store.take_pending_oidc_login(&[1; 32], 50).await.unwrap(),
        Some(pending(1, 100))
    );
    assert_eq!(
        store.take_pending_oidc_login(&[1; 32], 50).await.unwrap(),
        None
    );
    assert_eq!(
        store.take_pending_oidc_login(&[2; 32], 100).await.unwrap(),
        None,
        "expired"
    );
    // Link mode (0014): the account and the session come back as written.
    let linking = PendingOidcLogin {
        link: Some((42, [9; 32])),
        ..pending(3, 100)
    };
    store.put_pending_oidc_login(&linking, 0).await.unwrap();
    assert_eq!(
        store.take_pending_oidc_login(&[3; 32], 50).await.unwrap(),
        Some(linking)
    );

    let a = store
        .create_account(new_account("https://idp.test", "alice", 1))
        .await
        .unwrap();
    let link = |n: u8, issuer: &str, sub: &str, sid: Option<&str>| OidcSessionLink {
        session_hash: [n; 32],
        issuer: issuer.into(),
        subject: sub.into(),
        sid: sid.map(str::to_owned),
        id_token: format!("id-token-{n}"),
        created_at: 1,
    };
    let links = [
        link(1, "https://idp.test", "alice", Some("sid-a")),
        link(2, "https://idp.test", "alice", Some("sid-b")),
        link(3, "https://other.test", "alice", Some("sid-a")),
    ];
    for l in &links {
        store
            .create_session(&session(l.session_hash[0], a.id, 1000))
            .await
            .unwrap();
        store.link_oidc_session(l).await.unwrap();
    }
    assert_eq!(
        store.oidc_session_link(&[2; 32]).await.unwrap(),
        Some(links[1].clone())
    );
    let named = async |iss: &str, sid: Option<&str>, sub: Option<&str>| {
        let mut v = store.oidc_sessions_named(iss, sid, sub).await.unwrap();
        v.sort();
        v
    };
    assert_eq!(
        named("https://idp.test", Some("sid-a"), None).await,
        [[1; 32]]
    );
    assert_eq!(
        named("https://idp.test", Some("sid-a"), Some("bob")).await,
        Vec::<[u8; 32]>::new()
    );
    assert_eq!(
        named("https://idp.test", None, Some("alice")).await,
        [[1; 32], [2; 32]]
    );
    assert_eq!(
        named("https://idp.test", None, None).await,
        Vec::<[u8; 32]>::new()
    );
    // The link goes with its session.
    assert!(store.revoke_session(&[1; 32]).await.unwrap());
    assert_eq!(store.oidc_session_link(&[1; 32]).await.unwrap(), None);
    assert_eq!(
        named("https://idp.test", Some("sid-a"), None).await,
        Vec::<[u8; 32]>::new()
    );

    assert!(
        store
            .remember_logout_jti("https://idp.test", "j1", 200, 100)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remember_logout_jti("https://idp.test", "j1", 200, 150)
            .await
            .unwrap()
    );
    assert!(
        store
            .remember_logout_jti("https://other.test", "j1", 200, 150)
            .await
            .unwrap()
    );
    // Forgotten once past its time.
    assert!(
        store
            .remember_logout_jti("https://idp.test", "j1", 400, 201)
            .await
            .unwrap()
    );
}

/// The provider's tokens of an OIDC session (migration 0013): a row from
/// before it has none and keeps its plaintext ID token; tokens are stored
/// as given (format and bytes), re-checks fall due, are claimed once,
/// finish fenced by their lease, and go with the session.
async fn case_oidc_login_tokens_and_rechecks(store: Arc<dyn Store>) {
    use vestibule_store::oidc_login::{OidcSessionLink, OidcSessionTokens};
    let a = store
        .create_account(new_account("https://idp.test", "alice", 1))
        .await
        .unwrap();
    for n in [1u8, 2] {
        store
            .create_session(&session(n, a.id, 1_000_000))
            .await
            .unwrap();
        store
            .link_oidc_session(&OidcSessionLink {
                session_hash: [n; 32],
                issuer: "https://idp.test".into(),
                subject: "alice".into(),
                sid: None,
                id_token: if n == 1 {
                    "plain-id-token".into()
                } else {
                    String::new()
                },
                created_at: 1,
            })
            .await
            .unwrap();
    }
    // Session 1 is like a row from before 0013: its ID token is read as
    // before, it has no tokens and is never due.
    assert_eq!(
        store
            .oidc_session_link(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .id_token,
        "plain-id-token"
    );
    assert_eq!(store.oidc_tokens(&[1; 32]).await.unwrap(), None);
    assert!(
        store
            .oidc_rechecks_due(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.claim_oidc_recheck(&[1; 32], 5, 50).await.unwrap());

    let tokens = |bytes: &[u8], checked_at: i64, next: i64| OidcSessionTokens {
        format: PrivateKeyFormat::Aes256Gcm,
        tokens: bytes.to_vec(),
        checked_at,
        next_check_at: next,
    };
    let first = tokens(&[0, 1, 2, 255], 10, 100);
    store.put_oidc_tokens(&[2; 32], &first).await.unwrap();
    assert_eq!(
        store.oidc_tokens(&[2; 32]).await.unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        store.put_oidc_tokens(&[9; 32], &first).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.oidc_rechecks_due(99, 10).await.unwrap().is_empty());
    assert_eq!(store.oidc_rechecks_due(100, 10).await.unwrap(), [[2; 32]]);

    // Claimed once; while the lease runs it is neither due nor claimable.
    assert!(store.claim_oidc_recheck(&[2; 32], 100, 160).await.unwrap());
    assert!(!store.claim_oidc_recheck(&[2; 32], 120, 180).await.unwrap());
    assert!(store.oidc_rechecks_due(150, 10).await.unwrap().is_empty());
    // A provider that cannot be asked: only next_check_at moves.
    assert!(
        store
            .finish_oidc_recheck(&[2; 32], 160, None, 200)
            .await
            .unwrap()
    );
    let kept = store.oidc_tokens(&[2; 32]).await.unwrap().unwrap();
    assert_eq!((kept.checked_at, kept.next_check_at), (10, 200));
    assert_eq!(kept.tokens, first.tokens);

    // A lease that ran out is taken over; the first holder's finish is
    // then refused and writes nothing.
    assert!(store.claim_oidc_recheck(&[2; 32], 200, 260).await.unwrap());
    assert!(store.claim_oidc_recheck(&[2; 32], 260, 320).await.unwrap());
    let stale = tokens(b"stale", 250, 400);
    assert!(
        !store
            .finish_oidc_recheck(&[2; 32], 260, Some(&stale), 0)
            .await
            .unwrap()
    );
    let rotated = tokens(b"rotated", 300, 500);
    assert!(
        store
            .finish_oidc_recheck(&[2; 32], 320, Some(&rotated), 0)
            .await
            .unwrap()
    );
    assert_eq!(store.oidc_tokens(&[2; 32]).await.unwrap(), Some(rotated));
    assert!(
        !store
            .finish_oidc_recheck(&[2; 32], 320, None, 0)
            .await
            .unwrap()
    );

    // The tokens go with the session.
    assert!(store.revoke_session(&[2; 32]).await.unwrap());
    assert_eq!(store.oidc_tokens(&[2; 32]).await.unwrap(), None);
    assert!(
        !store
            .claim_oidc_recheck(&[2; 32], 1_000, 1_100)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_oidc_recheck(&[2; 32], 320, None, 0)
            .await
            .unwrap()
    );
}

/// Two instances (two pools on one database) racing to claim the same
/// due re-check: exactly one wins each round.
async fn case_oidc_recheck_claims_are_exclusive_across_instances(url: String) {
    use vestibule_store::oidc_login::{OidcSessionLink, OidcSessionTokens};
    let (a, b) = (open(&url).await, open(&url).await);
    let account = a
        .create_account(new_account("https://idp.test", "racer", 1))
        .await
        .unwrap();
    a.create_session(&session(7, account.id, 1_000_000))
        .await
        .unwrap();
    a.link_oidc_session(&OidcSessionLink {
        session_hash: [7; 32],
        issuer: "https://idp.test".into(),
        subject: "racer".into(),
        sid: None,
        id_token: String::new(),
        created_at: 1,
    })
    .await
    .unwrap();
    a.put_oidc_tokens(
        &[7; 32],
        &OidcSessionTokens {
            format: PrivateKeyFormat::Plain,
            tokens: b"{}".to_vec(),
            checked_at: 1,
            next_check_at: 1,
        },
    )
    .await
    .unwrap();
    for round in 0..20i64 {
        let now = 10 + round * 100;
        let (x, y) = tokio::join!(
            a.claim_oidc_recheck(&[7; 32], now, now + 50),
            b.claim_oidc_recheck(&[7; 32], now, now + 50),
        );
        assert!(x.unwrap() ^ y.unwrap(), "round {round}: exactly one claims");
    }
}

/// The cache miss's one query returns exactly what the three lookups it
/// replaces return: the device, its owner, and the owner's first identity
/// in (source, subject) order.
async fn case_device_with_owner(store: Arc<dyn Store>) {
    let a = store
        .create_account(new_account("headers", "wendy", 7))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("headers", "xavier", 8))
        .await
        .unwrap();
    // Linked after, but first in (source, subject) order.
    store
        .link_identity(a.id, &key("authelia", "wendy"))
        .await
        .unwrap();
    let n1 = NewDevice {
        basic_user: Some("wendy-phone".into()),
        expires_at: Some(5000),
        ..new_device(a.id, 1)
    };
    let d1 = store.create_device(&n1).await.unwrap();
    let d2 = store.create_device(&new_device(b.id, 2)).await.unwrap();
    let a = store.account(a.id).await.unwrap().unwrap();
    let b = store.account(b.id).await.unwrap().unwrap();
    assert_eq!(
        store.identities(a.id).await.unwrap()[0],
        key("authelia", "wendy")
    );
    assert_eq!(
        store.device_with_owner(&[1; 32]).await.unwrap(),
        Some(DeviceWithOwner {
            device: d1,
            owner: a.clone(),
            key: Some(key("authelia", "wendy")),
        })
    );
    assert_eq!(
        store.device_with_owner(&[2; 32]).await.unwrap(),
        Some(DeviceWithOwner {
            device: d2.clone(),
            owner: b.clone(),
            key: Some(key("headers", "xavier")),
        })
    );
    assert_eq!(store.device_with_owner(&[9; 32]).await.unwrap(), None);
    // Revoked: gone from the lookup at once.
    assert!(store.revoke_device(d2.id, None).await.unwrap());
    assert_eq!(store.device_with_owner(&[2; 32]).await.unwrap(), None);
    // The owner's changes show in the next lookup (nothing is cached here).
    store
        .set_status(a.id, AccountStatus::Disabled, 9)
        .await
        .unwrap();
    let got = store.device_with_owner(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(got.owner.status, AccountStatus::Disabled);
}

/// `private_key_jwt` assertion ids (migration 0015, RFC 7523 §3 item 7):
/// accepted once per client until they expire, then forgotten; of two
/// instances given the same assertion at once, exactly one accepts it.
async fn case_client_assertions_are_accepted_once_across_instances(url: String) {
    let (a, b) = (open(&url).await, open(&url).await);
    assert!(
        a.remember_client_assertion("app", "j1", 200, 100)
            .await
            .unwrap()
    );
    assert!(
        !b.remember_client_assertion("app", "j1", 200, 150)
            .await
            .unwrap(),
        "a replay, at the other instance"
    );
    assert!(
        a.remember_client_assertion("other", "j1", 200, 150)
            .await
            .unwrap(),
        "another client's ids are its own"
    );
    // Past its time it is forgotten (the assertion no longer verifies).
    assert!(
        b.remember_client_assertion("app", "j1", 400, 201)
            .await
            .unwrap()
    );
    for round in 0..20 {
        let jti = format!("race-{round}");
        let (x, y) = tokio::join!(
            a.remember_client_assertion("app", &jti, 900, 300),
            b.remember_client_assertion("app", &jti, 900, 300),
        );
        assert!(
            x.unwrap() ^ y.unwrap(),
            "round {round}: exactly one accepts"
        );
    }
}
