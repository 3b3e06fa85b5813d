//! `vestibule backup` / `restore` on SQLite: a backup taken while a writer
//! keeps writing holds every write acknowledged before it started, and
//! restores into a working store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vestibule_store::backup::{self, BackupError};
use vestibule_store::testkit;
use vestibule_store::{AccountStatus, IdentityKey, NewAccount, StoreConfig};

fn account(n: u64) -> NewAccount {
    NewAccount {
        key: IdentityKey {
            source: "load".into(),
            subject: format!("user-{n}"),
        },
        username: format!("user-{n}"),
        email: None,
        display_name: None,
        groups: vec!["users".into()],
        org: None,
        status: AccountStatus::Active,
        now: 1_700_000_000_000 + n as i64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_every_acknowledged_write() {
    let live_dir = tempfile::tempdir().unwrap();
    let live_cfg = StoreConfig::new(testkit::sqlite_url(live_dir.path()));
    let store = vestibule_store::open(&live_cfg).await.unwrap();

    // The writer records the id of every account whose creation returned
    // Ok: an acknowledged write.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let store = store.clone();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let a = store.create_account(account(n)).await.unwrap();
                acknowledged.lock().unwrap().push(a.id);
                tokio::task::yield_now().await;
            }
        })
    };
    // Let it write a while, then back up while it keeps going.
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<i64> = acknowledged.lock().unwrap().clone();
    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("vestibule.backup");
    let written = backup::backup(&live_cfg, &file).await.unwrap();
    let after_backup = acknowledged.lock().unwrap().len();
    // Writes continue after the backup, and are not required in it.
    while acknowledged.lock().unwrap().len() < after_backup + 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.abort();
    let _ = writer.await;
    assert_eq!(written.path, file);
    assert_eq!(written.schema_version, vestibule_store::SCHEMA_VERSION);
    assert_eq!(written.bytes, std::fs::metadata(&file).unwrap().len());
    eprintln!(
        "backup: {} acknowledged before it started, {after_backup} when it returned, {} bytes",
        before.len(),
        written.bytes
    );

    // A second backup to the same file is refused; the first is intact.
    let again = backup::backup(&live_cfg, &file).await.unwrap_err();
    assert!(matches!(again, BackupError::Refused(_)), "{again}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), written.bytes);

    // Restore into a new place, open it as a store: every write
    // acknowledged before the backup started is there.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored_cfg = StoreConfig::new(testkit::sqlite_url(restored_dir.path()));
    let r = backup::restore(&file, &restored_cfg, false).await.unwrap();
    assert_eq!(r.schema_version, vestibule_store::SCHEMA_VERSION);
    let restored = vestibule_store::open(&restored_cfg).await.unwrap();
    for id in &before {
        let a = restored.account(*id).await.unwrap();
        assert!(
            a.is_some(),
            "account {id} was acknowledged before the backup"
        );
    }
    // And nothing written after the backup returned: at most the writes
    // acknowledged by then, plus the one that may have committed but not
    // yet been recorded by the writer.
    let all = restored.accounts(None, u32::MAX).await.unwrap();
    assert!(
        all.len() >= before.len() && all.len() <= after_backup + 1,
        "{} restored, {} before, {after_backup} after",
        all.len(),
        before.len()
    );
    drop(restored);

    // Restoring over an existing database needs `replace`.
    let refused = backup::restore(&file, &restored_cfg, false)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("refusing to overwrite"),
        "{refused}"
    );
    // With it, a database that has moved on goes back to the backup.
    let store = vestibule_store::open(&restored_cfg).await.unwrap();
    store.create_account(account(1_000_000)).await.unwrap();
    drop(store);
    backup::restore(&file, &restored_cfg, true).await.unwrap();
    let store = vestibule_store::open(&restored_cfg).await.unwrap();
    assert_eq!(
        store.accounts(None, u32::MAX).await.unwrap().len(),
        all.len()
    );
}

#[tokio::test]
async fn restore_refuses_what_is_not_a_vestibule_backup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(testkit::sqlite_url(dir.path()));
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"not a database at all, just text").unwrap();
    assert!(backup::restore(&garbage, &cfg, false).await.is_err());
    let missing = backup::restore(&dir.path().join("missing"), &cfg, false)
        .await
        .unwrap_err();
    assert!(matches!(missing, BackupError::Refused(_)), "{missing}");
    // Nothing was created at the target.
    assert!(!dir.path().join("vestibule.db").exists());
    // Backing up a database that does not exist creates neither.
    let none = backup::backup(&cfg, &dir.path().join("b"))
        .await
        .unwrap_err();
    assert!(matches!(none, BackupError::Refused(_)), "{none}");
    assert!(!dir.path().join("vestibule.db").exists());
    assert!(!dir.path().join("b").exists());
}
