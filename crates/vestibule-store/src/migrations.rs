//! The schema, one migrations folder per backend, embedded in the binary.
//!
//! sqlx's `migrate!` macro needs the `macros` feature, which builds the
//! whole driver stack a second time for the proc-macro host; instead each
//! file is `include_str!`-ed here and handed to
//! [`Migrator::with_migrations`]. Applied migrations are recorded, with a
//! checksum, in `_sqlx_migrations`: never edit a file once released; add
//! the next version to both folders instead.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Backend, StoreError};

/// `(version, description, sqlite, postgres)`, in version order.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "devices",
        include_str!("../migrations/sqlite/0002_devices.sql"),
        include_str!("../migrations/postgres/0002_devices.sql"),
    ),
    (
        3,
        "pairing claimant address",
        include_str!("../migrations/sqlite/0003_pairing_claimant.sql"),
        include_str!("../migrations/postgres/0003_pairing_claimant.sql"),
    ),
    (
        4,
        "session browser and address",
        include_str!("../migrations/sqlite/0004_session_client.sql"),
        include_str!("../migrations/postgres/0004_session_client.sql"),
    ),
    (
        5,
        "signing keys",
        include_str!("../migrations/sqlite/0005_signing_keys.sql"),
        include_str!("../migrations/postgres/0005_signing_keys.sql"),
    ),
    (
        6,
        "directory entries",
        include_str!("../migrations/sqlite/0006_directory_entries.sql"),
        include_str!("../migrations/postgres/0006_directory_entries.sql"),
    ),
    (
        7,
        "client certificates",
        include_str!("../migrations/sqlite/0007_client_certificates.sql"),
        include_str!("../migrations/postgres/0007_client_certificates.sql"),
    ),
    (
        8,
        "oidc provider",
        include_str!("../migrations/sqlite/0008_oidc_provider.sql"),
        include_str!("../migrations/postgres/0008_oidc_provider.sql"),
    ),
    (
        10,
        "oidc device codes",
        include_str!("../migrations/sqlite/0010_oidc_device_codes.sql"),
        include_str!("../migrations/postgres/0010_oidc_device_codes.sql"),
    ),
    (
        11,
        "oidc back-channel logout outbox",
        include_str!("../migrations/sqlite/0011_oidc_backchannel_outbox.sql"),
        include_str!("../migrations/postgres/0011_oidc_backchannel_outbox.sql"),
    ),
    (
        12,
        "oidc login sessions",
        include_str!("../migrations/sqlite/0012_oidc_login.sql"),
        include_str!("../migrations/postgres/0012_oidc_login.sql"),
    ),
    (
        13,
        "oidc login tokens",
        include_str!("../migrations/sqlite/0013_oidc_login_tokens.sql"),
        include_str!("../migrations/postgres/0013_oidc_login_tokens.sql"),
    ),
    (
        14,
        "oidc link mode",
        include_str!("../migrations/sqlite/0014_oidc_link.sql"),
        include_str!("../migrations/postgres/0014_oidc_link.sql"),
    ),
    (
        15,
        "client assertion jtis",
        include_str!("../migrations/sqlite/0015_client_assertion_jtis.sql"),
        include_str!("../migrations/postgres/0015_client_assertion_jtis.sql"),
    ),
];

/// The migrator for one backend.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sqlite, postgres)| {
                let sql = match backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The newest schema version this binary knows.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The newest schema version recorded in a database, `None` for a database
/// no vestibule has migrated yet.
pub(crate) async fn applied_version(
    pool: &AnyPool,
    backend: Backend,
) -> Result<Option<i64>, StoreError> {
    let exists_sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(pool).await?;
    if exists == 0 {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await?,
    )
}

/// Applies pending migrations, forward only: each one runs in its own
/// transaction (sqlx's default for a migration without `no_tx`), so a
/// failing one leaves the schema at the version before it. Refuses a
/// database whose schema is newer than this binary (a newer vestibule ran
/// on it: an older one would misread its rows), and a database where a
/// released migration was changed (sqlx compares checksums).
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    if let Some(found) = applied_version(pool, backend).await?
        && found > LATEST_VERSION
    {
        return Err(StoreError::Migration(format!(
            "the database schema is version {found}, newer than the version {LATEST_VERSION} \
             this vestibule ({}) knows: a newer vestibule has run on it; run that version \
             (or restore a backup made before the upgrade)",
            env!("CARGO_PKG_VERSION")
        )));
    }
    migrator(backend)
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_both_backends_have_every_version() {
        let mut last = 0;
        for &(version, _, sqlite, postgres) in MIGRATIONS {
            assert!(version > last);
            last = version;
            assert!(!sqlite.trim().is_empty() && !postgres.trim().is_empty());
        }
        assert_eq!(migrator(Backend::Sqlite).iter().count(), MIGRATIONS.len());
        assert_eq!(migrator(Backend::Postgres).iter().count(), MIGRATIONS.len());
    }

    /// A database made by schema 1 (with data) moves to schema 2, and the
    /// new tables cascade from the old ones.
    #[tokio::test]
    async fn schema_1_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let (pool, backend) = crate::sql::connect(&crate::StoreConfig::new(url))
            .await
            .unwrap();
        migrator(backend).run_to(1, &pool).await.unwrap();
        sqlx::query(
            "INSERT INTO accounts (username, status, created_at, updated_at, last_seen_at) \
             VALUES ('alice', 'active', 1, 1, 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert!(
            sqlx::query("SELECT id FROM devices")
                .fetch_all(&pool)
                .await
                .is_err()
        );

        run(&pool, backend).await.unwrap();
        run(&pool, backend).await.unwrap();
        sqlx::query(
            "INSERT INTO devices (account_id, name, kind, routes_json, secret_hash, created_at) \
             SELECT id, 'phone', 'bearer', '[]', zeroblob(32), 2 FROM accounts",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("DELETE FROM accounts")
            .execute(&pool)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
}
