//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver, for both backends.
//!
//! Every statement is a static string with `$n` placeholders that SQLite
//! and PostgreSQL both accept. The only per-backend statements are the
//! transaction start (SQLite takes the write lock up front with
//! `BEGIN IMMEDIATE`, so two writers wait on `busy_timeout` instead of
//! failing on a lock upgrade) and the change record (a `changes` row on
//! SQLite, `pg_notify` on PostgreSQL).

use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Decode, Row, Transaction, Type};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::model::{decode_groups, decode_hash, decode_status, encode_groups};
use crate::{
    ACQUIRE_TIMEOUT, Account, AccountStatus, Attributes, AuditEntry, AuditFilter, Backend,
    BoxFuture, CHANGE_CHANNEL_CAPACITY, Change, IdentityKey, NewAccount, Session, Store,
    StoreConfig, StoreError, feed, migrations,
};

/// Columns of `accounts`, in [`account_from_row`]'s order.
macro_rules! account_columns {
    () => {
        "id, username, email, display_name, groups_json, org, status, created_at, updated_at, last_seen_at"
    };
}

/// Columns of `sessions`.
macro_rules! session_columns {
    () => {
        "id_hash, account_id, source, subject, created_at, last_seen_at, expires_at, csrf_hash"
    };
}

/// Connects a pool with the per-connection settings the invariants need.
pub(crate) async fn connect(cfg: &StoreConfig) -> Result<(AnyPool, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(&cfg.url)?;
    let url = match backend {
        Backend::Sqlite => sqlite_url(&cfg.url)?,
        Backend::Postgres => cfg.url.clone(),
    };
    let options = AnyConnectOptions::from_str(&url)
        .map_err(|e| StoreError::InvalidConfig(format!("the database URL does not parse: {e}")))?;
    let pool = AnyPoolOptions::new()
        .max_connections(cfg.max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT);
    let pool = match backend {
        // Per connection: `synchronous` is not stored in the file.
        // `foreign_keys` is sqlx's default; the cascades depend on it.
        Backend::Sqlite => pool.after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        }),
        // The server's default may have been turned off; not for us.
        Backend::Postgres => pool.after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET synchronous_commit = on")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        }),
    };
    let pool = pool.connect_with(options).await.map_err(|e| match e {
        sqlx::Error::Configuration(e) => {
            StoreError::InvalidConfig(format!("the database URL is not usable: {e}"))
        }
        e => StoreError::Unavailable(format!("cannot connect to {}: {e}", backend.name())),
    })?;
    if backend == Backend::Sqlite {
        // Persistent in the file; a no-op once set.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&pool)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::InvalidConfig(format!(
                "SQLite refused WAL mode for this file (journal mode is {mode:?}); \
                 put the database on a local filesystem"
            )));
        }
    }
    Ok((pool, backend))
}

/// Checks a `sqlite:` URL and asks for the file to be created if missing.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let (location, params) = url.split_once('?').unwrap_or((url, ""));
    let path = location
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let in_memory =
        path.is_empty() || path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
    if in_memory {
        return Err(StoreError::InvalidConfig(
            "an in-memory SQLite database loses every write when the process stops; \
             give a file, e.g. sqlite:///var/lib/vestibule/vestibule.db"
                .into(),
        ));
    }
    let has_mode = params.split('&').any(|p| p.starts_with("mode="));
    Ok(match (params.is_empty(), has_mode) {
        (_, true) => url.to_owned(),
        (true, false) => format!("{location}?mode=rwc"),
        (false, false) => format!("{location}?{params}&mode=rwc"),
    })
}

/// The store. Dropping it stops its change-feed task.
pub(crate) struct SqlStore {
    pub(crate) pool: AnyPool,
    backend: Backend,
    changes: broadcast::Sender<Change>,
    /// Random per instance: tells this instance's own changes apart in the
    /// shared feed, since they were already published locally.
    origin: Arc<str>,
    feed_task: AbortHandle,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        self.feed_task.abort();
    }
}

impl SqlStore {
    /// Connects, migrates and starts the change feed.
    pub(crate) async fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let (pool, backend) = connect(cfg).await?;
        migrations::run(&pool, backend).await?;
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let origin: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
        let task = match backend {
            Backend::Sqlite => {
                let last = feed::sqlite_last_change(&pool).await?;
                tokio::spawn(feed::poll_sqlite(
                    pool.clone(),
                    origin.clone(),
                    changes.clone(),
                    last,
                ))
            }
            Backend::Postgres => {
                // Listening before `open` returns: nothing committed after
                // it can be missed.
                let listener = feed::pg_listen(&cfg.url).await.map_err(|e| {
                    StoreError::Unavailable(format!("cannot LISTEN for changes: {e}"))
                })?;
                tokio::spawn(feed::run_pg_listener(
                    cfg.url.clone(),
                    origin.clone(),
                    changes.clone(),
                    listener,
                ))
            }
        };
        Ok(Self {
            pool,
            backend,
            changes,
            origin,
            feed_task: task.abort_handle(),
        })
    }

    /// A write transaction.
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Records `change` for other processes, inside the caller's
    /// transaction, so that it is published if and only if it commits.
    async fn record(&self, conn: &mut AnyConnection, change: Change) -> Result<(), StoreError> {
        let (kind, key) = change.encode();
        match self.backend {
            Backend::Sqlite => {
                sqlx::query("INSERT INTO changes (kind, key, origin, at) VALUES ($1, $2, $3, $4)")
                    .bind(kind)
                    .bind(key)
                    .bind(&*self.origin)
                    .bind(feed::now_ms())
                    .execute(&mut *conn)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query("SELECT pg_notify('vestibule_changes', $1)")
                    .bind(feed::pg_payload(&self.origin, kind, &key))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes `change` in this process (after commit).
    fn publish(&self, change: Change) {
        // No subscriber is not an error.
        let _ = self.changes.send(change);
    }

    /// Runs one revoking write: `write` in a transaction, then, if it
    /// reports that something changed, the change record, commit and
    /// publish.
    async fn revoking<T>(
        &self,
        change: Change,
        write: impl AsyncFnOnce(&mut AnyConnection) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin().await?;
        let (out, changed) = write(&mut *tx).await?;
        if changed {
            self.record(&mut tx, change).await?;
        }
        tx.commit().await?;
        if changed {
            self.publish(change);
        }
        Ok(out)
    }
}

/// One column, or `Corrupt`.
fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}` does not decode: {e}")))
}

fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let id: i64 = get(row, "id")?;
    let status: String = get(row, "status")?;
    let groups: String = get(row, "groups_json")?;
    Ok(Account {
        id,
        username: get(row, "username")?,
        email: get(row, "email")?,
        display_name: get(row, "display_name")?,
        groups: decode_groups(id, &groups)?,
        org: get(row, "org")?,
        status: decode_status(id, &status)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        last_seen_at: get(row, "last_seen_at")?,
    })
}

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id_hash: decode_hash("a session's id_hash", get(row, "id_hash")?)?,
        account_id: get(row, "account_id")?,
        source: get(row, "source")?,
        subject: get(row, "subject")?,
        created_at: get(row, "created_at")?,
        last_seen_at: get(row, "last_seen_at")?,
        expires_at: get(row, "expires_at")?,
        csrf_hash: decode_hash("a session's csrf_hash", get(row, "csrf_hash")?)?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        subject: get(row, "subject")?,
        client_ip: get(row, "client_ip")?,
        outcome: get(row, "outcome")?,
        detail: get(row, "detail")?,
    })
}

fn all<T>(rows: &[AnyRow], f: fn(&AnyRow) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

fn linked_conflict(key: &IdentityKey) -> String {
    format!("the identity {key} is already linked to an account")
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn account_by_identity<'a>(
        &'a self,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<Option<Account>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE id = \
                 (SELECT account_id FROM identities WHERE source = $1 AND subject = $2)"
            ))
            .bind(&key.source)
            .bind(&key.subject)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn account(&self, id: i64) -> BoxFuture<'_, Result<Option<Account>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn accounts(
        &self,
        status: Option<AccountStatus>,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<Account>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE ($1 IS NULL OR status = $1) ORDER BY id LIMIT $2"
            ))
            .bind(status.map(AccountStatus::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            all(&rows, account_from_row)
        })
    }

    fn accounts_by_username<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Account>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE username = $1 ORDER BY id"
            ))
            .bind(username)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, account_from_row)
        })
    }

    fn create_account(&self, new: NewAccount) -> BoxFuture<'_, Result<Account, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts \
                 (username, email, display_name, groups_json, org, status, \
                  created_at, updated_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) RETURNING id",
            )
            .bind(&new.username)
            .bind(new.email.as_deref())
            .bind(new.display_name.as_deref())
            .bind(encode_groups(&new.groups))
            .bind(new.org.as_deref())
            .bind(new.status.as_str())
            .bind(new.now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO identities (source, subject, account_id) VALUES ($1, $2, $3)")
                .bind(&new.key.source)
                .bind(&new.key.subject)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, &linked_conflict(&new.key)))?;
            tx.commit().await?;
            Ok(Account {
                id,
                username: new.username,
                email: new.email,
                display_name: new.display_name,
                groups: new.groups,
                org: new.org,
                status: new.status,
                created_at: new.now,
                updated_at: new.now,
                last_seen_at: new.now,
            })
        })
    }

    fn update_attributes<'a>(
        &'a self,
        id: i64,
        attrs: &'a Attributes,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Account(id), async |conn| {
                let seen = sqlx::query("UPDATE accounts SET last_seen_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                if seen.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                let changed = sqlx::query(
                    "UPDATE accounts SET username = $2, email = $3, display_name = $4, \
                     groups_json = $5, org = $6, updated_at = $7 \
                     WHERE id = $1 AND (username IS DISTINCT FROM $2 \
                     OR email IS DISTINCT FROM $3 OR display_name IS DISTINCT FROM $4 \
                     OR groups_json IS DISTINCT FROM $5 OR org IS DISTINCT FROM $6)",
                )
                .bind(id)
                .bind(&attrs.username)
                .bind(attrs.email.as_deref())
                .bind(attrs.display_name.as_deref())
                .bind(encode_groups(&attrs.groups))
                .bind(attrs.org.as_deref())
                .bind(now)
                .execute(&mut *conn)
                .await?;
                Ok(((), changed.rows_affected() > 0))
            })
            .await
        })
    }

    fn touch_seen(&self, id: i64, now: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE accounts SET last_seen_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
            match done.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn set_status(
        &self,
        id: i64,
        status: AccountStatus,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Account(id), async |conn| {
                let done =
                    sqlx::query("UPDATE accounts SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(status.as_str())
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                let found = done.rows_affected() > 0;
                Ok((found, found))
            })
            .await
        })
    }

    fn delete_account(&self, id: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Account(id), async |conn| {
                // Identities and sessions go with it (ON DELETE CASCADE).
                let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let found = done.rows_affected() > 0;
                Ok((found, found))
            })
            .await
        })
    }

    fn link_identity<'a>(
        &'a self,
        account_id: i64,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Account(account_id), async |conn| {
                sqlx::query(
                    "INSERT INTO identities (source, subject, account_id) VALUES ($1, $2, $3)",
                )
                .bind(&key.source)
                .bind(&key.subject)
                .bind(account_id)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, &linked_conflict(key)))?;
                Ok(((), true))
            })
            .await
        })
    }

    fn identities(&self, account_id: i64) -> BoxFuture<'_, Result<Vec<IdentityKey>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT source, subject FROM identities WHERE account_id = $1 \
                 ORDER BY source, subject",
            )
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(IdentityKey {
                        source: get(row, "source")?,
                        subject: get(row, "subject")?,
                    })
                })
                .collect()
        })
    }

    fn create_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&s.id_hash[..])
            .bind(s.account_id)
            .bind(&s.source)
            .bind(&s.subject)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .bind(&s.csrf_hash[..])
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a session with this id already exists"))?;
            Ok(())
        })
    }

    fn session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE id_hash = $1"
            ))
            .bind(&id_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(session_from_row).transpose()
        })
    }

    fn touch_session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(&id_hash[..])
                .bind(now)
                .execute(&self.pool)
                .await?;
            match done.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn revoke_session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Session(*id_hash), async |conn| {
                let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(&id_hash[..])
                    .execute(&mut *conn)
                    .await?;
                let found = done.rows_affected() > 0;
                Ok((found, found))
            })
            .await
        })
    }

    fn revoke_sessions_of(&self, account_id: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::AllSessionsOf(account_id), async |conn| {
                let done = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *conn)
                    .await?;
                Ok((done.rows_affected(), done.rows_affected() > 0))
            })
            .await
        })
    }

    fn sessions_of(
        &self,
        account_id: Option<i64>,
    ) -> BoxFuture<'_, Result<Vec<Session>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE ($1 IS NULL OR account_id = $1) \
                 ORDER BY created_at, id_hash"
            ))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, session_from_row)
        })
    }

    fn purge_expired_sessions(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn append_audit<'a>(&'a self, e: &'a AuditEntry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO audit (at, actor, action, subject, client_ip, outcome, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.subject)
            .bind(e.client_ip.as_deref())
            .bind(&e.outcome)
            .bind(&e.detail)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn audit<'a>(
        &'a self,
        f: &'a AuditFilter,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT at, actor, action, subject, client_ip, outcome, detail FROM audit \
                 WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR action = $2) \
                 AND ($3 IS NULL OR subject = $3) \
                 ORDER BY at DESC, id DESC LIMIT $4",
            )
            .bind(f.since)
            .bind(f.action.as_deref())
            .bind(f.subject.as_deref())
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await?;
            all(&rows, audit_from_row)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_and_refuse_memory() {
        assert_eq!(
            sqlite_url("sqlite:///var/lib/v.db").unwrap(),
            "sqlite:///var/lib/v.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:///v.db?cache=private").unwrap(),
            "sqlite:///v.db?cache=private&mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:///v.db?mode=ro").unwrap(),
            "sqlite:///v.db?mode=ro"
        );
        for url in ["sqlite::memory:", "sqlite://", "sqlite:///x.db?mode=memory"] {
            assert!(
                matches!(sqlite_url(url), Err(StoreError::InvalidConfig(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn backend_from_scheme() {
        assert_eq!(Backend::of_url("sqlite:///x.db"), Ok(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://h/db"), Ok(Backend::Postgres));
        assert_eq!(Backend::of_url("postgresql://h/db"), Ok(Backend::Postgres));
        assert!(matches!(
            Backend::of_url("mysql://h/db"),
            Err(StoreError::InvalidConfig(_))
        ));
        assert!(matches!(
            Backend::of_url("/var/lib/x.db"),
            Err(StoreError::InvalidConfig(_))
        ));
    }

    async fn temp_store() -> (tempfile::TempDir, SqlStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqlStore::open(&StoreConfig::new(url)).await.unwrap();
        (dir, store)
    }

    fn new_account(subject: &str) -> NewAccount {
        NewAccount {
            key: IdentityKey::new("headers", subject),
            username: subject.into(),
            email: None,
            display_name: None,
            groups: vec!["users".into()],
            org: None,
            status: AccountStatus::Active,
            now: 1,
        }
    }

    #[tokio::test]
    async fn sqlite_connections_are_wal_and_synchronous_full() {
        let (_dir, store) = temp_store().await;
        let mut conn = store.pool.acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        // 2 = FULL.
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(sync, 2);
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[tokio::test]
    async fn rows_that_do_not_decode_are_corrupt() {
        let (_dir, store) = temp_store().await;
        let a = store.create_account(new_account("alice")).await.unwrap();

        sqlx::query("UPDATE accounts SET groups_json = 'admins,users' WHERE id = $1")
            .bind(a.id)
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.account(a.id).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("not a JSON array")),
            "{err:?}"
        );
        // The listing fails as a whole rather than skipping the row.
        assert!(matches!(
            store.accounts(None, 10).await,
            Err(StoreError::Corrupt(_))
        ));

        // A text where a number belongs.
        sqlx::query(
            "UPDATE accounts SET groups_json = '[]', created_at = 'yesterday' WHERE id = $1",
        )
        .bind(a.id)
        .execute(&store.pool)
        .await
        .unwrap();
        let err = store.account(a.id).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("created_at")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn changes_older_than_an_hour_are_purged() {
        let (dir, store) = temp_store().await;
        let old = feed::now_ms() - 3_600_001;
        for (key, at) in [("1", old), ("2", feed::now_ms())] {
            sqlx::query(
                "INSERT INTO changes (kind, key, origin, at) VALUES ('account', $1, 'x', $2)",
            )
            .bind(key)
            .bind(at)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        // A new instance purges on its first poll.
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let _second = SqlStore::open(&StoreConfig::new(url)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM changes ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(keys, vec!["2".to_owned()]);
    }

    #[tokio::test]
    async fn in_memory_sqlite_is_refused() {
        let err = SqlStore::open(&StoreConfig::new("sqlite::memory:"))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::InvalidConfig(_)), "{err:?}");
    }
}
