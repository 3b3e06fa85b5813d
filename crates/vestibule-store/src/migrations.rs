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

/// Applies pending migrations. Fails if the database has a migration this
/// binary does not know (a newer vestibule ran on it) or a changed one.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
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
