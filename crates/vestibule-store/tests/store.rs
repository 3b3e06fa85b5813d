//! One suite, two backends: every `case_*` runs against a fresh SQLite file
//! and against a fresh database on a private PostgreSQL cluster
//! (`vestibule_store::testkit`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use vestibule_store::{
    Account, AccountStatus, Attributes, AuditEntry, AuditFilter, Backend, Change, IdentityKey,
    NewAccount, Session, Store, StoreConfig, StoreError, testkit,
};

/// Cases taking a fresh store.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::open(&vestibule_store::testkit::sqlite_url(dir.path())).await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::open(&vestibule_store::testkit::postgres_url()).await;
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
    case_create_and_look_up,
    case_identity_is_unique,
    case_never_matched_by_email_or_username,
    case_link_identity,
    case_update_attributes_and_touch,
    case_status_and_listing,
    case_delete_cascades,
    case_sessions,
    case_purge_expired_sessions,
    case_audit_filter_order_and_limit,
    case_change_feed_in_process,
);

on_both_backends_by_url!(
    case_change_feed_across_instances,
    case_migrate_is_idempotent,
);

async fn open(url: &str) -> Arc<dyn Store> {
    vestibule_store::open(&StoreConfig::new(url))
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
    }
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

    cluster.stop();
    assert_eq!(next_change(&mut rx).await, Change::Resync);
    let err = store.account(a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().starts_with("the database is unavailable"));

    cluster.start_again();
    let got = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("no Resync within 15 s of the restart")
        .unwrap();
    assert_eq!(got, Change::Resync);
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
