//! Online backups of a SQLite store ([`backup`]) and bringing one back
//! ([`restore`]).
//!
//! The copy is made with `VACUUM INTO`, which SQLite documents as a
//! consistent online backup: it reads the database in one read
//! transaction, so it sees exactly the writes committed before it started
//! (every acknowledged write: see the crate's durability invariant) and
//! none after, while gateways keep writing (WAL mode lets readers and one
//! writer run together). The `sqlite3_backup_*` API is not reachable
//! through sqlx without `unsafe` and a direct `libsqlite3-sys` dependency;
//! `VACUUM INTO` gives the same guarantee and a compacted file.
//!
//! PostgreSQL has `pg_dump`, which does the same from one snapshot; these
//! functions refuse a `postgres:` URL and say so (see `docs/install.md`).
//!
//! ## Invariants
//!
//! - Neither function ever overwrites a file it was not told it may
//!   replace: [`backup`] refuses an existing destination, [`restore`]
//!   refuses an existing database unless `replace` is set.
//! - A file appears at its final name only complete and synced: it is
//!   written under a temporary name in the same directory, `fsync`ed, then
//!   linked (or renamed) into place and the directory `fsync`ed.
//! - A backup is checked before it is used: it must pass SQLite's
//!   `quick_check` and carry a schema this binary knows.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::{Backend, SCHEMA_VERSION, StoreConfig, StoreError};

/// Why a backup or restore did not happen.
#[derive(Debug)]
pub enum BackupError {
    /// Not done, on purpose: the destination exists, the URL is not
    /// SQLite, the backup is not a vestibule database… The whole sentence.
    Refused(String),
    /// A file could not be read, written or synced.
    Io(String),
    /// SQLite failed.
    Store(StoreError),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(s) | Self::Io(s) => f.write_str(s),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BackupError {}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::from(e))
    }
}

/// What [`backup`] or [`restore`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema version it holds.
    pub schema_version: i64,
}

/// The database file a `sqlite:` URL names. In-memory and non-SQLite URLs
/// are refused.
pub fn sqlite_file(url: &str) -> Result<PathBuf, BackupError> {
    match Backend::of_url(url).map_err(BackupError::Store)? {
        Backend::Postgres => {
            return Err(BackupError::Refused(
                "vestibule backup and restore work on a SQLite database; for PostgreSQL use \
                 pg_dump and pg_restore (see docs/install.md)"
                    .into(),
            ));
        }
        Backend::Sqlite => {}
    }
    let (location, params) = url.split_once('?').unwrap_or((url, ""));
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
        return Err(BackupError::Refused(
            "an in-memory SQLite database has nothing to back up or restore into".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// Copies the live SQLite store of `cfg` to `dest`, online: gateways may
/// keep running and writing. Refuses when `dest` exists.
pub async fn backup(cfg: &StoreConfig, dest: &Path) -> Result<Written, BackupError> {
    let source = sqlite_file(&cfg.url)?;
    if !source.is_file() {
        return Err(BackupError::Refused(format!(
            "there is no database at {} to back up",
            source.display()
        )));
    }
    refuse_existing(dest, "the backup file")?;
    let temp = TempFile::beside(dest)?;
    // Read-only: a backup must never create or change the live database.
    let mut conn = open_sqlite(&source, true).await?;
    let result = sqlx::query("VACUUM INTO $1")
        .bind(temp.path.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    conn.close().await?;
    result?;
    let schema_version = check_copy(&temp.path).await?;
    sync_file(&temp.path)?;
    // A hard link fails if `dest` appeared meanwhile: never overwrites.
    std::fs::hard_link(&temp.path, dest).map_err(|e| {
        BackupError::Io(format!("cannot create the backup {}: {e}", dest.display()))
    })?;
    drop(temp);
    sync_parent(dest)?;
    Ok(Written {
        path: dest.to_owned(),
        bytes: file_len(dest)?,
        schema_version,
    })
}

/// Puts the backup `from` in place as the SQLite store of `cfg`. The
/// gateways using that database must be stopped first (a running one
/// keeps the old file open). Refuses when the database exists, unless
/// `replace`; then the old file and its WAL are replaced.
pub async fn restore(
    from: &Path,
    cfg: &StoreConfig,
    replace: bool,
) -> Result<Written, BackupError> {
    let target = sqlite_file(&cfg.url)?;
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "there is no backup at {}",
            from.display()
        )));
    }
    if !replace {
        refuse_existing(&target, "the database")?;
    }
    let temp = TempFile::beside(&target)?;
    std::fs::copy(from, &temp.path).map_err(|e| {
        BackupError::Io(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            temp.path.display()
        ))
    })?;
    let schema_version = check_copy(&temp.path).await?;
    sync_file(&temp.path)?;
    if replace {
        // A WAL left beside the new file would be replayed into it.
        for suffix in ["-wal", "-shm"] {
            let mut side = target.clone().into_os_string();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(BackupError::Io(format!(
                        "cannot remove {}: {e}",
                        PathBuf::from(side).display()
                    )));
                }
            }
        }
        std::fs::rename(&temp.path, &target)
            .map_err(|e| BackupError::Io(format!("cannot replace {}: {e}", target.display())))?;
    } else {
        std::fs::hard_link(&temp.path, &target)
            .map_err(|e| BackupError::Io(format!("cannot create {}: {e}", target.display())))?;
    }
    drop(temp);
    sync_parent(&target)?;
    Ok(Written {
        bytes: file_len(&target)?,
        path: target,
        schema_version,
    })
}

/// Checks that `path` is an intact vestibule database with a schema this
/// binary knows, and returns that schema version.
async fn check_copy(path: &Path) -> Result<i64, BackupError> {
    let mut conn = open_sqlite(path, true).await?;
    let result = check_open_copy(&mut conn, path).await;
    conn.close().await?;
    result
}

async fn check_open_copy(conn: &mut SqliteConnection, path: &Path) -> Result<i64, BackupError> {
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *conn)
        .await?;
    if verdict != "ok" {
        return Err(BackupError::Refused(format!(
            "{} is damaged (SQLite quick_check: {verdict})",
            path.display()
        )));
    }
    let has_schema: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if has_schema == 0 {
        return Err(BackupError::Refused(format!(
            "{} is not a vestibule database (it has no schema version)",
            path.display()
        )));
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    match version {
        Some(v) if v <= SCHEMA_VERSION => Ok(v),
        Some(v) => Err(BackupError::Refused(format!(
            "{} has schema version {v}, newer than the version {SCHEMA_VERSION} this vestibule \
             knows: restore it with the vestibule that made it",
            path.display()
        ))),
        None => Err(BackupError::Refused(format!(
            "{} is not a vestibule database (no migration was applied)",
            path.display()
        ))),
    }
}

async fn open_sqlite(path: &Path, read_only: bool) -> Result<SqliteConnection, BackupError> {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(|e| BackupError::Store(StoreError::InvalidConfig(e.to_string())))?
        .filename(path)
        .read_only(read_only)
        .create_if_missing(false);
    options.connect().await.map_err(|e| {
        BackupError::Store(StoreError::Unavailable(format!(
            "cannot open {}: {e}",
            path.display()
        )))
    })
}

fn refuse_existing(path: &Path, what: &str) -> Result<(), BackupError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(BackupError::Refused(format!(
            "{what} {} exists; refusing to overwrite it",
            path.display()
        )));
    }
    Ok(())
}

fn file_len(path: &Path) -> Result<u64, BackupError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| BackupError::Io(format!("cannot read {}: {e}", path.display())))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::Io(format!("cannot sync {}: {e}", path.display())))
}

/// Makes a new directory entry durable.
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_file(parent)
}

/// A file name in the destination's directory, removed on drop (after
/// it was linked or renamed into place, or on failure).
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn beside(dest: &Path) -> Result<Self, BackupError> {
        let name = dest.file_name().ok_or_else(|| {
            BackupError::Refused(format!("{} is not a file name", dest.display()))
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".partial-{:016x}", rand::random::<u64>()));
        Ok(Self {
            path: dest.with_file_name(temp_name),
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_files_are_backed_up() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/vestibule/vestibule.db?mode=rwc").unwrap(),
            PathBuf::from("/var/lib/vestibule/vestibule.db")
        );
        assert_eq!(
            sqlite_file("sqlite:data/v.db").unwrap(),
            PathBuf::from("data/v.db")
        );
        for url in ["sqlite::memory:", "sqlite://", "sqlite:///x.db?mode=memory"] {
            assert!(
                matches!(sqlite_file(url), Err(BackupError::Refused(_))),
                "{url}"
            );
        }
        let pg = sqlite_file("postgres://u@localhost/v").unwrap_err();
        assert!(pg.to_string().contains("pg_dump"), "{pg}");
        assert!(matches!(
            sqlite_file("mysql://x"),
            Err(BackupError::Store(StoreError::InvalidConfig(_)))
        ));
    }
}
