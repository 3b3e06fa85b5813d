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
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/postgres/0001_initial.sql"),
)];

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
}
