//! Upgrades: a database made by the previous release opens with this one
//! and keeps every row; a database newer than this binary is refused.
//!
//! The fixtures in `tests/fixtures/` were made by vestibule 0.1.0 (schema
//! version 3) through the store API, with the rows [`check_release_rows`]
//! expects: `v0.1.0.sqlite` is the SQLite file itself (a `vestibule backup`
//! of it: one file, no WAL; `VESTIBULE_WRITE_FIXTURE=path` on
//! `the_fixture_rows_read_back_as_written` writes it),
//! `v0.1.0-postgres.sql` is `pg_dump --no-owner --no-privileges` of the
//! same rows. When a migration is added, these fixtures stay as they are:
//! they are what an upgrading operator has on disk.

use std::path::Path;
use std::sync::Arc;

use vestibule_store::testkit;
use vestibule_store::{AccountStatus, IdentityKey, Store, StoreConfig, StoreError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn key(source: &str, subject: &str) -> IdentityKey {
    IdentityKey {
        source: source.into(),
        subject: subject.into(),
    }
}

/// Every row the 0.1.0 fixtures hold, read through this release's store.
async fn check_release_rows(store: &Arc<dyn Store>) {
    let alice = store
        .account_by_identity(&key("authelia", "alice"))
        .await
        .unwrap()
        .expect("alice survives the upgrade");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Ø \"A\""));
    assert_eq!(alice.groups, vec!["admins".to_owned(), "users".to_owned()]);
    assert_eq!(alice.status, AccountStatus::Active);
    assert_eq!(
        store.identities(alice.id).await.unwrap(),
        vec![key("authelia", "alice"), key("oidc", "a-1")]
    );
    let bob = store
        .account_by_identity(&key("authelia", "bob"))
        .await
        .unwrap()
        .expect("bob survives the upgrade");
    assert_eq!(bob.status, AccountStatus::Disabled);
    assert_eq!(store.accounts(None, 100).await.unwrap().len(), 2);

    let session = store
        .session(&[1; 32])
        .await
        .unwrap()
        .expect("the session survives");
    assert_eq!(session.account_id, alice.id);
    assert_eq!(session.csrf_hash, [2; 32]);
    assert_eq!(session.expires_at, 4_000_000_000_000);

    let device = store
        .device_by_secret(&[3; 32])
        .await
        .unwrap()
        .expect("the device survives");
    assert_eq!(device.account_id, alice.id);
    assert_eq!(device.name, "phone");
    assert_eq!(device.routes, vec!["nextcloud".to_owned()]);
    assert_eq!(store.devices_of(None).await.unwrap().len(), 1);

    let pairing = store
        .pairing(1)
        .await
        .unwrap()
        .expect("the pairing survives");
    assert_eq!(pairing.account_id, alice.id);

    let audit = store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: None,
            subject: None,
            limit: 100,
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["account.disable", "login"]);
}

/// Makes the fixture rows (how the committed fixtures were made).
async fn write_release_rows(store: &Arc<dyn Store>) {
    let mut alice = vestibule_store::NewAccount {
        key: key("authelia", "alice"),
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        display_name: Some("Alice Ø \"A\"".into()),
        groups: vec!["admins".into(), "users".into()],
        org: None,
        status: AccountStatus::Active,
        now: 1_700_000_000_000,
    };
    let a = store.create_account(alice.clone()).await.unwrap();
    store
        .link_identity(a.id, &key("oidc", "a-1"))
        .await
        .unwrap();
    alice.key = key("authelia", "bob");
    alice.username = "bob".into();
    alice.email = None;
    alice.display_name = None;
    alice.groups = vec![];
    let b = store.create_account(alice).await.unwrap();
    store
        .set_status(b.id, AccountStatus::Disabled, 1_700_000_000_001)
        .await
        .unwrap();
    store
        .create_session(&vestibule_store::Session {
            id_hash: [1; 32],
            account_id: a.id,
            source: "authelia".into(),
            subject: "alice".into(),
            created_at: 1_700_000_000_002,
            last_seen_at: 1_700_000_000_002,
            expires_at: 4_000_000_000_000,
            csrf_hash: [2; 32],
            user_agent: None,
            client_ip: None,
        })
        .await
        .unwrap();
    store
        .create_device(&vestibule_store::NewDevice {
            account_id: a.id,
            name: "phone".into(),
            kind: "bearer".into(),
            routes: vec!["nextcloud".into()],
            secret_hash: [3; 32],
            basic_user: None,
            created_at: 1_700_000_000_003,
            expires_at: None,
        })
        .await
        .unwrap();
    store
        .create_pairing(
            a.id,
            &[4; 32],
            &["nextcloud".into()],
            1_700_000_000_004,
            4_000_000_000_000,
        )
        .await
        .unwrap();
    for (at, action) in [
        (1_700_000_000_005, "login"),
        (1_700_000_000_006, "account.disable"),
    ] {
        store
            .append_audit(&vestibule_store::AuditEntry {
                at,
                actor: "cli:root".into(),
                action: action.into(),
                subject: format!("account:{}", b.id),
                client_ip: None,
                outcome: "ok".into(),
                detail: String::new(),
            })
            .await
            .unwrap();
    }
}

/// Writing the rows and reading them back agree, so the fixture check
/// checks what the writer wrote (and not a stale expectation).
#[tokio::test]
async fn the_fixture_rows_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = vestibule_store::open(&StoreConfig::new(testkit::sqlite_url(dir.path())))
        .await
        .unwrap();
    write_release_rows(&store).await;
    check_release_rows(&store).await;
    if let Some(out) = std::env::var_os("VESTIBULE_WRITE_FIXTURE") {
        // Regenerating the fixture (only when asked; see the module docs):
        // a consistent copy with everything in the main file, no WAL.
        let cfg = StoreConfig::new(testkit::sqlite_url(dir.path()));
        vestibule_store::backup::backup(&cfg, Path::new(&out))
            .await
            .unwrap();
    }
}

/// The same for PostgreSQL; `VESTIBULE_WRITE_PG_FIXTURE=path` writes the
/// dump with the cluster's own `pg_dump`.
#[tokio::test]
async fn the_fixture_rows_read_back_as_written_on_postgres() {
    let url = testkit::postgres_url();
    let store = vestibule_store::open(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    write_release_rows(&store).await;
    check_release_rows(&store).await;
    if let Some(out) = std::env::var_os("VESTIBULE_WRITE_PG_FIXTURE") {
        let status = std::process::Command::new("pg_dump")
            .args(["--no-owner", "--no-privileges", "--inserts", "--file"])
            .arg(out)
            .arg(&url)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[tokio::test]
async fn a_sqlite_database_from_0_1_0_upgrades_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vestibule.db");
    std::fs::copy(Path::new(FIXTURES).join("v0.1.0.sqlite"), &db).unwrap();
    let cfg = StoreConfig::new(testkit::sqlite_url(dir.path()));
    let store = vestibule_store::open(&cfg).await.unwrap();
    check_release_rows(&store).await;
    drop(store);
    // Opening again (a restart after the upgrade) changes nothing.
    let store = vestibule_store::open(&cfg).await.unwrap();
    check_release_rows(&store).await;
}

#[tokio::test]
async fn a_postgres_database_from_0_1_0_upgrades_and_keeps_every_row() {
    let url = testkit::postgres_url();
    let dump = std::fs::read_to_string(Path::new(FIXTURES).join("v0.1.0-postgres.sql")).unwrap();
    load_postgres_dump(&url, &dump).await;
    let store = vestibule_store::open(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    check_release_rows(&store).await;
}

/// Runs a plain `pg_dump` file's statements (no `COPY ... FROM stdin`:
/// the fixture was dumped with `--inserts`).
async fn load_postgres_dump(url: &str, dump: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let statements: String = dump
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_database_newer_than_this_binary_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(testkit::sqlite_url(dir.path()));
    drop(vestibule_store::open(&cfg).await.unwrap());
    let newer = vestibule_store::SCHEMA_VERSION + 1;
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&cfg.url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, installed_on, success, checksum, execution_time) \
             VALUES ($1, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
        )
        .bind(newer)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    for err in [
        vestibule_store::open(&cfg).await.err().unwrap(),
        vestibule_store::migrate(&cfg).await.unwrap_err(),
    ] {
        let StoreError::Migration(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(
            msg.contains(&format!("version {newer}"))
                && msg.contains(&format!("version {}", vestibule_store::SCHEMA_VERSION)),
            "{msg}"
        );
    }
}
