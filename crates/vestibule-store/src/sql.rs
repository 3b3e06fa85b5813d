//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver, for both backends.
//!
//! Every statement is a static string with `$n` placeholders that SQLite
//! and PostgreSQL both accept (the multi-row device `INSERT` is built at
//! run time, from placeholders only: no value is ever in the text). The
//! only per-backend statements are the transaction start (SQLite takes the
//! write lock up front with `BEGIN IMMEDIATE`, so two writers wait on
//! `busy_timeout` instead of failing on a lock upgrade) and the change
//! record (a `changes` row on SQLite, `pg_notify` on PostgreSQL).

//
// Alike throughout: every `Store` method here is one statement (or one
// short transaction) written out in full: bind, fetch, decode. Their
// shapes repeat on purpose; a generic helper would hide the SQL, which is
// what a reader of this file needs to see next to its decoding.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use sqlx::any::AnyArguments;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{
    Any, AnyConnection, AnyPool, AssertSqlSafe, Decode, Row, SqlSafeStr, Transaction, Type,
};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::backchannel_sql::{EndedBy, end_grants};
use crate::model::{
    decode_hash, decode_pairing_state, decode_private_format, decode_status, decode_string_list,
    encode_groups,
};
use crate::{
    ACQUIRE_TIMEOUT, Account, AccountSearch, AccountStatus, Attributes, AuditEntry, AuditFilter,
    Backend, BoxFuture, BulkLoad, CHANGE_CHANNEL_CAPACITY, Change, ClientCertificate, Device,
    DeviceWithOwner, DirectoryEntry, IdentityKey, NewAccount, NewDevice, Pairing, PairingPoll,
    PairingState, Session, Store, StoreConfig, StoreError, StoredClientCa, StoredSigningKey, feed,
    migrations,
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
        "id_hash, account_id, source, subject, created_at, last_seen_at, expires_at, csrf_hash, \
         user_agent, client_ip"
    };
}

/// Columns of `devices` a [`Device`] is made of (never `secret_hash`).
macro_rules! device_columns {
    () => {
        "id, account_id, name, kind, routes_json, basic_user, created_at, expires_at, \
         last_used_at, last_used_ip"
    };
}

/// Columns of `pairings` a [`Pairing`] is made of (never the digests).
macro_rules! pairing_columns {
    () => {
        "id, account_id, routes_json, created_at, expires_at, state, device_name, claimed_at, \
         claimed_ip, device_id"
    };
}

/// The columns a device is inserted with, in bind order ([`bind_device`]).
macro_rules! device_insert_columns {
    () => {
        "account_id, name, kind, routes_json, secret_hash, basic_user, created_at, expires_at"
    };
}

/// Parameters per inserted device row.
const DEVICE_INSERT_PARAMS: usize = 8;

/// Rows per multi-row `INSERT` in [`BulkLoad::create_devices_bulk`]: 400
/// parameters, far below SQLite's limit (32766) and PostgreSQL's (65535).
/// Not more: sqlx binds each SQLite parameter by looking its `$n` name up,
/// which costs time linear in the statement's parameter count, so a
/// statement's bind time grows with the square of its size. Measured for
/// 100 000 rows (debug build): 500 rows per statement took 7.8 s on SQLite,
/// 50 took 2.1 s; PostgreSQL took 1.7 s either way.
const BULK_ROWS: usize = 50;

/// `INSERT INTO devices (…) VALUES ($1, …, $8), ($9, …), …` for `rows`
/// rows. Only placeholders: nothing of the data is in the text.
fn device_insert_sql(rows: usize) -> String {
    let mut sql = String::from(concat!(
        "INSERT INTO devices (",
        device_insert_columns!(),
        ") VALUES "
    ));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..DEVICE_INSERT_PARAMS {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * DEVICE_INSERT_PARAMS + col + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// The full-size bulk statement, built once (and prepared once per
/// connection, as it is always the same text).
static BULK_DEVICE_INSERT: LazyLock<String> = LazyLock::new(|| device_insert_sql(BULK_ROWS));

/// Binds one device's values in [`device_insert_columns`]'s order.
fn bind_device<'q>(q: Query<'q, Any, AnyArguments>, d: &NewDevice) -> Query<'q, Any, AnyArguments> {
    q.bind(d.account_id)
        .bind(&d.name)
        .bind(&d.kind)
        .bind(encode_groups(&d.routes))
        .bind(&d.secret_hash[..])
        .bind(d.basic_user.as_deref())
        .bind(d.created_at)
        .bind(d.expires_at)
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
    /// Whether the change feed is connected (see [`Store::reachable`]).
    feed_up: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        self.feed_task.abort();
    }
}

impl SqlStore {
    /// One conditional `UPDATE` (`sql` binds id, the sealed format, the
    /// sealed bytes and the plain format): whether it sealed the row.
    async fn seal_plain_key(
        &self,
        sql: &'static str,
        id: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(crate::PrivateKeyFormat::Aes256Gcm.as_str())
            .bind(sealed)
            .bind(crate::PrivateKeyFormat::Plain.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Connects, migrates and starts the change feed.
    pub(crate) async fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let (pool, backend) = connect(cfg).await?;
        migrations::run(&pool, backend).await?;
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let origin: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
        let feed_up = Arc::new(std::sync::atomic::AtomicBool::new(true));
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
                    feed_up.clone(),
                ))
            }
        };
        Ok(Self {
            pool,
            backend,
            changes,
            origin,
            feed_task: task.abort_handle(),
            feed_up,
        })
    }

    /// A write transaction.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Records `change` for other processes, inside the caller's
    /// transaction, so that it is published if and only if it commits.
    pub(crate) async fn record(
        &self,
        conn: &mut AnyConnection,
        change: Change,
    ) -> Result<(), StoreError> {
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
    pub(crate) fn publish(&self, change: Change) {
        // No subscriber is not an error.
        let _ = self.changes.send(change);
    }

    /// Runs one revoking write: `write` in a transaction, then, if it
    /// reports that something changed, the change record, commit and
    /// publish.
    pub(crate) async fn revoking<T>(
        &self,
        change: Change,
        write: impl AsyncFnOnce(&mut AnyConnection) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        self.revoking_many(async |conn| {
            let (out, changed) = write(conn).await?;
            Ok((out, if changed { vec![change] } else { Vec::new() }))
        })
        .await
    }

    /// A token id accepted once within its scope (an issuer, a client):
    /// `purge` (`$1` = `now`) forgets the ids past their time, then
    /// `insert` (`$1` scope, `$2` id, `$3` expiry) adds it unless present,
    /// in one statement, so of two instances given the same token at once
    /// one accepts it: the primary key decides. Whether it was new.
    pub(crate) async fn remember_once(
        &self,
        purge: &'static str,
        insert: &'static str,
        (scope, id, expires_at): (&str, &str, i64),
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query(purge).bind(now).execute(&self.pool).await?;
        let done = sqlx::query(insert)
            .bind(scope)
            .bind(id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// [`SqlStore::revoking`] for a write that changes several things:
    /// every change it returns is recorded in its transaction and
    /// published after the commit.
    pub(crate) async fn revoking_many<T>(
        &self,
        write: impl AsyncFnOnce(&mut AnyConnection) -> Result<(T, Vec<Change>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin().await?;
        let (out, changes) = write(&mut *tx).await?;
        for change in &changes {
            self.record(&mut tx, *change).await?;
        }
        tx.commit().await?;
        for change in changes {
            self.publish(change);
        }
        Ok(out)
    }

    /// Ends the sessions whose id digests are `ended` (deleted already by
    /// the caller, in `conn`'s transaction) for the provider: their grants
    /// die and back-channel logouts are queued (`backchannel_sql`).
    /// Returns the `Change::Grant` of each grant ended.
    async fn end_provider_sessions(
        conn: &mut AnyConnection,
        ended: &[Vec<u8>],
    ) -> Result<Vec<Change>, StoreError> {
        let now = feed::now_ms();
        let mut changes = Vec::new();
        for id_hash in ended {
            let r = crate::model::hex(id_hash);
            let grants = end_grants(conn, EndedBy::Session(&r), now).await?;
            changes.extend(grants.into_iter().map(Change::Grant));
        }
        Ok(changes)
    }
}

/// One column, or `Corrupt`.
pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}` does not decode: {e}")))
}

fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    account_from_columns(row, &ACCOUNT_COLUMN_NAMES)
}

/// The names [`account_columns!`] gives the columns, in its order.
const ACCOUNT_COLUMN_NAMES: [&str; 10] = [
    "id",
    "username",
    "email",
    "display_name",
    "groups_json",
    "org",
    "status",
    "created_at",
    "updated_at",
    "last_seen_at",
];

/// An account from columns named `names` (in [`ACCOUNT_COLUMN_NAMES`]'s
/// order): a join renames them, as `devices` has columns of the same names.
fn account_from_columns(row: &AnyRow, names: &[&str; 10]) -> Result<Account, StoreError> {
    let id: i64 = get(row, names[0])?;
    let status: String = get(row, names[6])?;
    let groups: String = get(row, names[4])?;
    Ok(Account {
        id,
        username: get(row, names[1])?,
        email: get(row, names[2])?,
        display_name: get(row, names[3])?,
        groups: decode_string_list("account", id, "groups", &groups)?,
        org: get(row, names[5])?,
        status: decode_status(id, &status)?,
        created_at: get(row, names[7])?,
        updated_at: get(row, names[8])?,
        last_seen_at: get(row, names[9])?,
    })
}

/// The owner's columns in [`DEVICE_WITH_OWNER`], renamed.
const OWNER_COLUMN_NAMES: [&str; 10] = [
    "o_id",
    "o_username",
    "o_email",
    "o_display_name",
    "o_groups_json",
    "o_org",
    "o_status",
    "o_created_at",
    "o_updated_at",
    "o_last_seen_at",
];

/// The credential cache's miss as one statement: the device by its unique
/// `secret_hash`, its owner by primary key, and the owner's first identity
/// in (source, subject) order through `identities_account` (two scalar
/// subselects, each one index probe; [`Store::identities`] lists in the
/// same order).
const DEVICE_WITH_OWNER: &str = "SELECT d.id, d.account_id, d.name, d.kind, d.routes_json, d.basic_user, d.created_at, \
     d.expires_at, d.last_used_at, d.last_used_ip, \
     a.id AS o_id, a.username AS o_username, a.email AS o_email, \
     a.display_name AS o_display_name, a.groups_json AS o_groups_json, a.org AS o_org, \
     a.status AS o_status, a.created_at AS o_created_at, a.updated_at AS o_updated_at, \
     a.last_seen_at AS o_last_seen_at, \
     (SELECT i.source FROM identities i WHERE i.account_id = a.id \
      ORDER BY i.source, i.subject LIMIT 1) AS key_source, \
     (SELECT i.subject FROM identities i WHERE i.account_id = a.id \
      ORDER BY i.source, i.subject LIMIT 1) AS key_subject \
     FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.secret_hash = $1";

fn device_with_owner_from_row(row: &AnyRow) -> Result<DeviceWithOwner, StoreError> {
    let source: Option<String> = get(row, "key_source")?;
    let subject: Option<String> = get(row, "key_subject")?;
    Ok(DeviceWithOwner {
        device: device_from_row(row)?,
        owner: account_from_columns(row, &OWNER_COLUMN_NAMES)?,
        key: match (source, subject) {
            (Some(source), Some(subject)) => Some(IdentityKey { source, subject }),
            _ => None,
        },
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
        user_agent: get(row, "user_agent")?,
        client_ip: get(row, "client_ip")?,
    })
}

fn device_from_row(row: &AnyRow) -> Result<Device, StoreError> {
    let id: i64 = get(row, "id")?;
    let routes: String = get(row, "routes_json")?;
    Ok(Device {
        id,
        account_id: get(row, "account_id")?,
        name: get(row, "name")?,
        kind: get(row, "kind")?,
        routes: decode_string_list("device", id, "routes", &routes)?,
        basic_user: get(row, "basic_user")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
        last_used_ip: get(row, "last_used_ip")?,
    })
}

fn pairing_from_row(row: &AnyRow) -> Result<Pairing, StoreError> {
    let id: i64 = get(row, "id")?;
    let routes: String = get(row, "routes_json")?;
    let state: String = get(row, "state")?;
    Ok(Pairing {
        id,
        account_id: get(row, "account_id")?,
        routes: decode_string_list("pairing", id, "routes", &routes)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        state: decode_pairing_state(id, &state)?,
        device_name: get(row, "device_name")?,
        claimed_at: get(row, "claimed_at")?,
        claimed_ip: get(row, "claimed_ip")?,
        device_id: get(row, "device_id")?,
    })
}

fn signing_key_from_row(row: &AnyRow) -> Result<StoredSigningKey, StoreError> {
    let kid: String = get(row, "kid")?;
    let format: String = get(row, "private_format")?;
    Ok(StoredSigningKey {
        private_format: decode_private_format(&kid, &format)?,
        alg: get(row, "alg")?,
        private_key: get(row, "private_key")?,
        public_jwk: get(row, "public_jwk")?,
        created_at: get(row, "created_at")?,
        signs_from: get(row, "signs_from")?,
        retired_at: get(row, "retired_at")?,
        verify_until: get(row, "verify_until")?,
        kid,
    })
}

fn client_ca_from_row(row: &AnyRow) -> Result<StoredClientCa, StoreError> {
    let id: String = get(row, "id")?;
    let format: String = get(row, "private_format")?;
    Ok(StoredClientCa {
        private_format: decode_private_format(&id, &format)?,
        cert_der: get(row, "cert_der")?,
        private_key: get(row, "private_key")?,
        created_at: get(row, "created_at")?,
        retired_at: get(row, "retired_at")?,
        id,
    })
}

fn client_certificate_from_row(row: &AnyRow) -> Result<ClientCertificate, StoreError> {
    Ok(ClientCertificate {
        serial: get(row, "serial")?,
        ca_id: get(row, "ca_id")?,
        device_id: get(row, "device_id")?,
        issued_at: get(row, "issued_at")?,
        not_after: get(row, "not_after")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

/// Inserts an account and links its identity, in the caller's transaction;
/// returns the new id. [`StoreError::Conflict`] if the identity is linked.
async fn insert_account(
    tx: &mut Transaction<'static, Any>,
    new: &NewAccount,
) -> Result<i64, StoreError> {
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
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO identities (source, subject, account_id) VALUES ($1, $2, $3)")
        .bind(&new.key.source)
        .bind(&new.key.subject)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::from_sqlx(e, &linked_conflict(&new.key)))?;
    Ok(id)
}

/// Inserts one device (in the caller's transaction or not) and returns it.
/// Inserts `cert`'s row, for device `device_id`.
async fn insert_client_certificate<'c, E>(
    conn: E,
    cert: &ClientCertificate,
    device_id: Option<i64>,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO client_certificates \
         (serial, ca_id, device_id, issued_at, not_after, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&cert.serial)
    .bind(&cert.ca_id)
    .bind(device_id)
    .bind(cert.issued_at)
    .bind(cert.not_after)
    .bind(cert.revoked_at)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "a client certificate with this serial exists"))?;
    Ok(())
}

async fn insert_device<'c, E>(conn: E, d: &NewDevice) -> Result<Device, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let row = bind_device(
        sqlx::query(concat!(
            "INSERT INTO devices (",
            device_insert_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"
        )),
        d,
    )
    .fetch_one(conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, DEVICE_CONFLICT))?;
    Ok(Device {
        id: get(&row, "id")?,
        account_id: d.account_id,
        name: d.name.clone(),
        kind: d.kind.clone(),
        routes: d.routes.clone(),
        basic_user: d.basic_user.clone(),
        created_at: d.created_at,
        expires_at: d.expires_at,
        last_used_at: None,
        last_used_ip: None,
    })
}

const DEVICE_CONFLICT: &str = "a device with this secret already exists";

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

pub(crate) fn all<T>(
    rows: &[AnyRow],
    f: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

fn linked_conflict(key: &IdentityKey) -> String {
    format!("the identity {key} is already linked to an account")
}

/// Writes account `id`'s attributes where any differs, with
/// `updated_at = now`; whether a row changed. `last_seen_at` is not
/// touched.
async fn set_attributes(
    conn: &mut AnyConnection,
    id: i64,
    attrs: &Attributes,
    now: i64,
) -> Result<bool, StoreError> {
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
    Ok(changed.rows_affected() > 0)
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

    fn search_accounts<'a>(
        &'a self,
        query: &'a str,
        offset: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<AccountSearch, StoreError>> {
        // $1: the query, $2: its LIKE pattern. lower() folds ASCII on
        // SQLite and more on PostgreSQL; the pattern is ASCII-lowercased.
        macro_rules! matching {
            () => {
                " FROM accounts WHERE ($1 = '' \
                 OR lower(username) LIKE $2 ESCAPE '\\' \
                 OR lower(COALESCE(display_name, '')) LIKE $2 ESCAPE '\\' \
                 OR lower(COALESCE(email, '')) LIKE $2 ESCAPE '\\')"
            };
        }
        macro_rules! page {
            () => {
                " ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END, username, id \
                 LIMIT $3 OFFSET $4"
            };
        }
        Box::pin(async move {
            let pattern = crate::model::contains_pattern(query);
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let row = sqlx::query(concat!("SELECT COUNT(*) AS n", matching!()))
                .bind(query)
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await?;
            let total: i64 = get(&row, "n")?;
            // The page's four parameters, for both queries below.
            let paged = |q: Query<'a, Any, AnyArguments>| {
                q.bind(query)
                    .bind(pattern.clone())
                    .bind(i64::from(limit))
                    .bind(offset)
            };
            let rows = paged(sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                matching!(),
                page!()
            )))
            .fetch_all(&self.pool)
            .await?;
            let accounts = all(&rows, account_from_row)?;
            // The sources of this page's accounts, in one more query.
            let sources = paged(sqlx::query(concat!(
                "SELECT DISTINCT account_id, source FROM identities WHERE account_id IN \
                 (SELECT id",
                matching!(),
                page!(),
                ") ORDER BY account_id, source"
            )))
            .fetch_all(&self.pool)
            .await?;
            let mut by_account: std::collections::HashMap<i64, Vec<String>> =
                std::collections::HashMap::new();
            for row in &sources {
                by_account
                    .entry(get(row, "account_id")?)
                    .or_default()
                    .push(get(row, "source")?);
            }
            Ok(AccountSearch {
                accounts: accounts
                    .into_iter()
                    .map(|a| {
                        let s = by_account.remove(&a.id).unwrap_or_default();
                        (a, s)
                    })
                    .collect(),
                total: u64::try_from(total).unwrap_or(0),
            })
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
            let id = insert_account(&mut tx, &new).await?;
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
                let changed = set_attributes(conn, id, attrs, now).await?;
                Ok(((), changed))
            })
            .await
        })
    }

    fn replace_attributes<'a>(
        &'a self,
        id: i64,
        attrs: &'a Attributes,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Account(id), async |conn| {
                let changed = set_attributes(conn, id, attrs, now).await?;
                if !changed {
                    let found = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound);
                    }
                }
                Ok((changed, changed))
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
            self.revoking_many(async |conn| {
                // Its sessions end: every grant of the account dies and
                // its apps are told (back-channel logout), before the
                // cascade would delete the grants silently.
                let grants = end_grants(conn, EndedBy::Account(id), feed::now_ms()).await?;
                // Identities and sessions go with it (ON DELETE CASCADE).
                let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let found = done.rows_affected() > 0;
                let mut changes: Vec<Change> = grants.into_iter().map(Change::Grant).collect();
                if found {
                    changes.push(Change::Account(id));
                }
                Ok((found, changes))
            })
            .await
        })
    }

    fn directory_entry(
        &self,
        account_id: i64,
    ) -> BoxFuture<'_, Result<Option<DirectoryEntry>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT account_id, dn, object_id, written, updated_at \
                 FROM directory_entries WHERE account_id = $1",
            )
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref()
                .map(|r| -> Result<DirectoryEntry, StoreError> {
                    Ok(DirectoryEntry {
                        account_id: get(r, "account_id")?,
                        dn: get(r, "dn")?,
                        object_id: get(r, "object_id")?,
                        written: get::<i64>(r, "written")? != 0,
                        updated_at: get(r, "updated_at")?,
                    })
                })
                .transpose()
        })
    }

    fn put_directory_entry<'a>(
        &'a self,
        e: &'a DirectoryEntry,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO directory_entries (account_id, dn, object_id, written, updated_at) \
                 SELECT id, $2, $3, $4, $5 FROM accounts WHERE id = $1 \
                 ON CONFLICT (account_id) DO UPDATE SET dn = excluded.dn, \
                 object_id = excluded.object_id, written = excluded.written, \
                 updated_at = excluded.updated_at",
            )
            .bind(e.account_id)
            .bind(&e.dn)
            .bind(&e.object_id)
            .bind(i64::from(e.written))
            .bind(e.updated_at)
            .execute(&self.pool)
            .await?;
            match done.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
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

    fn unlink_identity<'a>(
        &'a self,
        account_id: i64,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking_many(async |conn| {
                // One conditional DELETE: the last identity stays, even
                // when two unlinks race (each sees the other's row).
                let done = sqlx::query(
                    "DELETE FROM identities WHERE account_id = $1 AND source = $2 \
                     AND subject = $3 AND \
                     (SELECT COUNT(*) FROM identities WHERE account_id = $1) > 1",
                )
                .bind(account_id)
                .bind(&key.source)
                .bind(&key.subject)
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok((false, Vec::new()));
                }
                // Its sessions no longer stand for anyone on this account.
                let ended: Vec<Vec<u8>> = sqlx::query_scalar(
                    "DELETE FROM sessions WHERE account_id = $1 AND source = $2 \
                     AND subject = $3 RETURNING id_hash",
                )
                .bind(account_id)
                .bind(&key.source)
                .bind(&key.subject)
                .fetch_all(&mut *conn)
                .await?;
                let mut changes = Self::end_provider_sessions(conn, &ended).await?;
                for h in &ended {
                    changes.push(Change::Session(crate::model::decode_hash(
                        "a session",
                        h.clone(),
                    )?));
                }
                changes.push(Change::Account(account_id));
                Ok((true, changes))
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
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&s.id_hash[..])
            .bind(s.account_id)
            .bind(&s.source)
            .bind(&s.subject)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .bind(&s.csrf_hash[..])
            .bind(&s.user_agent)
            .bind(&s.client_ip)
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
            self.revoking_many(async |conn| {
                let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(&id_hash[..])
                    .execute(&mut *conn)
                    .await?;
                let found = done.rows_affected() > 0;
                // Grants of the session end even if the row was gone
                // already: they belong to a session that no longer runs.
                let mut changes = Self::end_provider_sessions(conn, &[id_hash.to_vec()]).await?;
                if found {
                    changes.push(Change::Session(*id_hash));
                }
                Ok((found, changes))
            })
            .await
        })
    }

    fn revoke_sessions_of(&self, account_id: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            self.revoking_many(async |conn| {
                let ended: Vec<Vec<u8>> = sqlx::query_scalar(
                    "DELETE FROM sessions WHERE account_id = $1 RETURNING id_hash",
                )
                .bind(account_id)
                .fetch_all(&mut *conn)
                .await?;
                let mut changes = Self::end_provider_sessions(conn, &ended).await?;
                if !ended.is_empty() {
                    changes.push(Change::AllSessionsOf(account_id));
                }
                Ok((ended.len() as u64, changes))
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
            // Nothing is published for the sessions themselves (an expired
            // session is refused by its expiry), but their provider grants
            // end here, with their back-channel logouts, and those are.
            self.revoking_many(async |conn| {
                let ended: Vec<Vec<u8>> = sqlx::query_scalar(
                    "DELETE FROM sessions WHERE expires_at <= $1 RETURNING id_hash",
                )
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
                let changes = Self::end_provider_sessions(conn, &ended).await?;
                Ok((ended.len() as u64, changes))
            })
            .await
        })
    }

    fn create_device<'a>(&'a self, d: &'a NewDevice) -> BoxFuture<'a, Result<Device, StoreError>> {
        Box::pin(async move { insert_device(&self.pool, d).await })
    }

    fn device_by_secret<'a>(
        &'a self,
        secret_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<Device>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                device_columns!(),
                " FROM devices WHERE secret_hash = $1"
            ))
            .bind(&secret_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(device_from_row).transpose()
        })
    }

    fn device_with_owner<'a>(
        &'a self,
        secret_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceWithOwner>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(DEVICE_WITH_OWNER)
                .bind(&secret_hash[..])
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(device_with_owner_from_row).transpose()
        })
    }

    fn device(&self, id: i64) -> BoxFuture<'_, Result<Option<Device>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                device_columns!(),
                " FROM devices WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(device_from_row).transpose()
        })
    }

    fn devices_of(
        &self,
        account_id: Option<i64>,
    ) -> BoxFuture<'_, Result<Vec<Device>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                device_columns!(),
                " FROM devices WHERE ($1 IS NULL OR account_id = $1) ORDER BY id"
            ))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, device_from_row)
        })
    }

    fn revoke_device(
        &self,
        id: i64,
        owner: Option<i64>,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Device(id), async |conn| {
                // Its certificates go on the CRL from now (the row's
                // `device_id` becomes NULL with the delete below).
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                sqlx::query(
                    "UPDATE client_certificates SET revoked_at = $3 \
                     WHERE device_id = $1 AND revoked_at IS NULL \
                     AND EXISTS (SELECT 1 FROM devices \
                                 WHERE id = $1 AND ($2 IS NULL OR account_id = $2))",
                )
                .bind(id)
                .bind(owner)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                // An issued pairing's `device_id` becomes NULL (ON DELETE SET NULL).
                let done = sqlx::query(
                    "DELETE FROM devices WHERE id = $1 AND ($2 IS NULL OR account_id = $2)",
                )
                .bind(id)
                .bind(owner)
                .execute(&mut *conn)
                .await?;
                let found = done.rows_affected() > 0;
                Ok((found, found))
            })
            .await
        })
    }

    fn touch_device<'a>(
        &'a self,
        id: i64,
        now: i64,
        ip: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE devices SET last_used_at = $2, last_used_ip = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(ip)
            .execute(&self.pool)
            .await?;
            match done.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn create_pairing<'a>(
        &'a self,
        account_id: i64,
        code_hash: &'a [u8; 32],
        routes: &'a [String],
        now: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Pairing, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "INSERT INTO pairings \
                 (code_hash, account_id, routes_json, created_at, expires_at, state) \
                 VALUES ($1, $2, $3, $4, $5, 'open') RETURNING id",
            )
            .bind(&code_hash[..])
            .bind(account_id)
            .bind(encode_groups(routes))
            .bind(now)
            .bind(expires_at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a pairing with this code already exists"))?;
            Ok(Pairing {
                id: get(&row, "id")?,
                account_id,
                routes: routes.to_vec(),
                created_at: now,
                expires_at,
                state: PairingState::Open,
                device_name: None,
                claimed_at: None,
                claimed_ip: None,
                device_id: None,
            })
        })
    }

    fn pairing(&self, id: i64) -> BoxFuture<'_, Result<Option<Pairing>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                pairing_columns!(),
                " FROM pairings WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(pairing_from_row).transpose()
        })
    }

    fn claim_pairing<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
        claim_hash: &'a [u8; 32],
        device_name: &'a str,
        claimed_ip: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>> {
        Box::pin(async move {
            // One conditional statement: of two racing claims, the second
            // finds the row no longer `open` (PostgreSQL re-checks the
            // condition after waiting for the first's row lock; SQLite runs
            // writers one at a time).
            let row = sqlx::query(concat!(
                "UPDATE pairings SET state = 'claimed', claim_hash = $2, device_name = $3, \
                 claimed_at = $4, claimed_ip = $5 \
                 WHERE code_hash = $1 AND state = 'open' AND expires_at > $4 \
                 RETURNING ",
                pairing_columns!()
            ))
            .bind(&code_hash[..])
            .bind(&claim_hash[..])
            .bind(device_name)
            .bind(now)
            .bind(claimed_ip)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| {
                StoreError::from_sqlx(e, "a pairing with this claim secret already exists")
            })?;
            row.as_ref().map(pairing_from_row).transpose()
        })
    }

    fn decide_pairing(
        &self,
        id: i64,
        account_id: i64,
        confirm: bool,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let state = if confirm {
                PairingState::Confirmed
            } else {
                PairingState::Refused
            };
            let done = sqlx::query(
                "UPDATE pairings SET state = $3 \
                 WHERE id = $1 AND account_id = $2 AND state = 'claimed' AND expires_at > $4",
            )
            .bind(id)
            .bind(account_id)
            .bind(state.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn redeem_pairing<'a>(
        &'a self,
        claim_hash: &'a [u8; 32],
        device: &'a NewDevice,
        now: i64,
    ) -> BoxFuture<'a, Result<PairingPoll, StoreError>> {
        Box::pin(async move {
            // Most polls find nothing to do: read without the write lock.
            let row =
                sqlx::query("SELECT id, state, expires_at FROM pairings WHERE claim_hash = $1")
                    .bind(&claim_hash[..])
                    .fetch_optional(&self.pool)
                    .await?;
            let Some(row) = row else {
                return Ok(PairingPoll::Expired);
            };
            let id: i64 = get(&row, "id")?;
            let state: String = get(&row, "state")?;
            let expires_at: i64 = get(&row, "expires_at")?;
            if expires_at <= now {
                return Ok(PairingPoll::Expired);
            }
            match decode_pairing_state(id, &state)? {
                PairingState::Claimed => return Ok(PairingPoll::Pending),
                PairingState::Refused => return Ok(PairingPoll::Refused),
                // An open pairing has no claim (a CHECK says so).
                PairingState::Issued | PairingState::Open => return Ok(PairingPoll::Expired),
                PairingState::Confirmed => {}
            }

            // Issue, once: the conditional UPDATE is what decides it. A
            // concurrent poll that got there first leaves it `issued`.
            let mut tx = self.begin().await?;
            let row = sqlx::query(
                "UPDATE pairings SET state = 'issued' \
                 WHERE id = $1 AND state = 'confirmed' AND expires_at > $2 \
                 RETURNING account_id, routes_json, device_name",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(PairingPoll::Expired);
            };
            let routes: String = get(&row, "routes_json")?;
            let name: Option<String> = get(&row, "device_name")?;
            let new = NewDevice {
                account_id: get(&row, "account_id")?,
                name: name.unwrap_or_else(|| device.name.clone()),
                routes: decode_string_list("pairing", id, "routes", &routes)?,
                ..device.clone()
            };
            let created = insert_device(&mut *tx, &new).await?;
            sqlx::query("UPDATE pairings SET device_id = $2 WHERE id = $1")
                .bind(id)
                .bind(created.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(PairingPoll::Issued(created))
        })
    }

    fn purge_expired(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let pairings =
                sqlx::query("DELETE FROM pairings WHERE expires_at <= $1 AND state <> 'issued'")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            // NULL (never expires) is not `<=` anything.
            let devices = sqlx::query("DELETE FROM devices WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(pairings.rows_affected() + devices.rows_affected())
        })
    }

    fn insert_signing_key<'a>(
        &'a self,
        key: &'a StoredSigningKey,
        unless_created_after: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // SQLite serialises writers (`BEGIN IMMEDIATE`); on PostgreSQL
            // two READ COMMITTED inserts could both see no newer key, so
            // the table is locked against other writers for the check.
            let mut tx = self.begin().await?;
            if self.backend == Backend::Postgres {
                sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query(
                "INSERT INTO signing_keys \
                 (kid, alg, private_format, private_key, public_jwk, created_at, signs_from, \
                  retired_at, verify_until) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 WHERE NOT EXISTS (SELECT 1 FROM signing_keys \
                                   WHERE retired_at IS NULL AND alg = $2 \
                                   AND created_at > $10)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(key.private_format.as_str())
            .bind(&key.private_key[..])
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .bind(key.signs_from)
            .bind(key.retired_at)
            .bind(key.verify_until)
            .bind(unless_created_after)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a signing key with this kid already exists"))?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn signing_keys(&self) -> BoxFuture<'_, Result<Vec<StoredSigningKey>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT kid, alg, private_format, private_key, public_jwk, created_at, \
                 signs_from, retired_at, verify_until FROM signing_keys ORDER BY created_at, kid",
            )
            .fetch_all(&self.pool)
            .await?;
            all(&rows, signing_key_from_row)
        })
    }

    fn retire_signing_key<'a>(
        &'a self,
        kid: &'a str,
        now: i64,
        verify_until: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE signing_keys SET retired_at = $2, verify_until = $3 \
                 WHERE kid = $1 AND retired_at IS NULL",
            )
            .bind(kid)
            .bind(now)
            .bind(verify_until)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn seal_signing_key<'a>(
        &'a self,
        kid: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.seal_plain_key(
            "UPDATE signing_keys SET private_format = $2, private_key = $3 \
             WHERE kid = $1 AND private_format = $4",
            kid,
            sealed,
        ))
    }

    fn seal_client_ca_key<'a>(
        &'a self,
        id: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.seal_plain_key(
            "UPDATE client_cas SET private_format = $2, private_key = $3 \
             WHERE id = $1 AND private_format = $4",
            id,
            sealed,
        ))
    }

    fn insert_client_ca<'a>(
        &'a self,
        ca: &'a StoredClientCa,
        unless_created_after: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // As for signing keys: SQLite serialises writers, PostgreSQL
            // needs the table locked for the check.
            let mut tx = self.begin().await?;
            if self.backend == Backend::Postgres {
                sqlx::query("LOCK TABLE client_cas IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query(
                "INSERT INTO client_cas \
                 (id, cert_der, private_format, private_key, created_at, retired_at) \
                 SELECT $1, $2, $3, $4, $5, NULL \
                 WHERE NOT EXISTS (SELECT 1 FROM client_cas \
                                   WHERE retired_at IS NULL AND created_at > $6)",
            )
            .bind(&ca.id)
            .bind(&ca.cert_der[..])
            .bind(ca.private_format.as_str())
            .bind(&ca.private_key[..])
            .bind(ca.created_at)
            .bind(unless_created_after)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a client CA with this id already exists"))?;
            let stored = done.rows_affected() > 0;
            if stored {
                sqlx::query(
                    "UPDATE client_cas SET retired_at = $2 WHERE id <> $1 AND retired_at IS NULL",
                )
                .bind(&ca.id)
                .bind(ca.created_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(stored)
        })
    }

    fn client_cas(&self) -> BoxFuture<'_, Result<Vec<StoredClientCa>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, cert_der, private_format, private_key, created_at, retired_at \
                 FROM client_cas ORDER BY created_at, id",
            )
            .fetch_all(&self.pool)
            .await?;
            all(&rows, client_ca_from_row)
        })
    }

    fn record_client_certificate<'a>(
        &'a self,
        cert: &'a ClientCertificate,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { insert_client_certificate(&self.pool, cert, cert.device_id).await })
    }

    fn renew_certificate_device<'a>(
        &'a self,
        device_id: i64,
        owner: i64,
        new_hash: &'a [u8; 32],
        new_expiry: i64,
        cert: &'a ClientCertificate,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::Device(device_id), async |conn| {
                // The kind is the store's free text; `certificate` is what
                // the gateway writes for a client-certificate device.
                let done = sqlx::query(
                    "UPDATE devices SET secret_hash = $3, expires_at = $4 \
                     WHERE id = $1 AND account_id = $2 AND kind = 'certificate' \
                     AND (expires_at IS NULL OR expires_at > $5)",
                )
                .bind(device_id)
                .bind(owner)
                .bind(&new_hash[..])
                .bind(new_expiry)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, DEVICE_CONFLICT))?;
                if done.rows_affected() == 0 {
                    return Ok((false, false));
                }
                sqlx::query(
                    "UPDATE client_certificates SET revoked_at = $2 \
                     WHERE device_id = $1 AND revoked_at IS NULL",
                )
                .bind(device_id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                insert_client_certificate(&mut *conn, cert, Some(device_id)).await?;
                Ok((true, true))
            })
            .await
        })
    }

    fn revoked_client_certificates<'a>(
        &'a self,
        ca_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<ClientCertificate>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT serial, ca_id, device_id, issued_at, not_after, revoked_at \
                 FROM client_certificates \
                 WHERE ca_id = $1 AND not_after > $2 \
                 AND (revoked_at IS NOT NULL OR device_id IS NULL) ORDER BY serial",
            )
            .bind(ca_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, client_certificate_from_row)
        })
    }

    fn purge_signing_keys(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM signing_keys WHERE verify_until <= $1")
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

    fn reachable(&self) -> bool {
        self.feed_up.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Bulk loading, for `vestibule bench-seed` and imports: not part of
/// [`Store`], so that the gateway's code cannot reach it.
impl BulkLoad for SqlStore {
    fn create_accounts_bulk<'a>(
        &'a self,
        accounts: &'a [NewAccount],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            if accounts.is_empty() {
                return Ok(0);
            }
            // One transaction, one commit: the per-row statements are
            // prepared once and cost microseconds; the fsync is paid once.
            let mut tx = self.begin().await?;
            for new in accounts {
                insert_account(&mut tx, new).await?;
            }
            tx.commit().await?;
            Ok(accounts.len() as u64)
        })
    }

    fn create_devices_bulk<'a>(
        &'a self,
        devices: &'a [NewDevice],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            if devices.is_empty() {
                return Ok(0);
            }
            let mut tx = self.begin().await?;
            let mut inserted = 0;
            for chunk in devices.chunks(BULK_ROWS) {
                let sql = if chunk.len() == BULK_ROWS {
                    BULK_DEVICE_INSERT.as_str().into_sql_str()
                } else {
                    // The last, shorter chunk: a text of its own.
                    AssertSqlSafe(device_insert_sql(chunk.len())).into_sql_str()
                };
                let mut q = sqlx::query(sql);
                for d in chunk {
                    q = bind_device(q, d);
                }
                let done = q
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, DEVICE_CONFLICT))?;
                inserted += done.rows_affected();
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewDevice;

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

    /// The credential cache's miss searches by index at every step (the
    /// device by `secret_hash`, its owner by primary key, the identity
    /// subselects by `identities_account`): no table is scanned, so its
    /// cost does not grow with the number of devices.
    #[tokio::test]
    async fn the_device_with_owner_lookup_uses_indexes_only() {
        let (_dir, store) = temp_store().await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {DEVICE_WITH_OWNER}"
        )))
        .bind(&[0u8; 32][..])
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| get(r, "detail").unwrap()).collect();
        let joined = plan.join("\n");
        assert!(
            plan.iter().all(|l| !l.starts_with("SCAN")),
            "a table is scanned:\n{joined}"
        );
        for index in [
            "sqlite_autoindex_devices_1",
            "INTEGER PRIMARY KEY",
            "identities_account",
        ] {
            assert!(joined.contains(index), "{index} is not used:\n{joined}");
        }
    }

    /// The session, its grant and the outbox row go together or not at
    /// all: with the outbox made unwritable the logout fails whole.
    #[tokio::test]
    async fn a_session_ends_with_its_grants_and_their_logouts_or_not_at_all() {
        use crate::provider::{
            CodeExchange, CodeTokens, NewAuthorizationCode, NewToken, ProviderStore,
        };
        let (_dir, store) = temp_store().await;
        let a = store.create_account(new_account("dora")).await.unwrap();
        let s = Session {
            id_hash: [7; 32],
            account_id: a.id,
            source: "headers".into(),
            subject: "dora".into(),
            created_at: 1,
            last_seen_at: 1,
            expires_at: i64::MAX,
            csrf_hash: [0; 32],
            user_agent: None,
            client_ip: None,
        };
        store.create_session(&s).await.unwrap();
        let now = feed::now_ms();
        store
            .create_authorization_code(&NewAuthorizationCode {
                code_hash: [1; 32],
                client_id: "app".into(),
                account_id: a.id,
                redirect_uri: "http://127.0.0.1/cb".into(),
                scopes: "openid".into(),
                nonce: None,
                code_challenge: None,
                session_ref: Some(crate::model::hex(&[7; 32])),
                auth_time: now,
                amr: vec![],
                created_at: now,
                expires_at: now + 60_000,
            })
            .await
            .unwrap();
        let tokens = CodeTokens {
            access: NewToken {
                token_hash: [2; 32],
                expires_at: now + 60_000,
            },
            refresh: None,
        };
        let CodeExchange::Issued { grant, .. } = store
            .exchange_code(&[1; 32], "app", now, &tokens)
            .await
            .unwrap()
        else {
            panic!("not issued")
        };
        sqlx::query(
            "CREATE TRIGGER no_outbox BEFORE INSERT ON oidc_backchannel_outbox \
                     BEGIN SELECT RAISE(ABORT, 'outbox refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let mut rx = store.subscribe();
        assert!(store.revoke_session(&[7; 32]).await.is_err());
        assert!(store.session(&[7; 32]).await.unwrap().is_some());
        assert_eq!(store.grants_of(a.id).await.unwrap(), vec![grant]);
        assert!(store.access_token(&[2; 32]).await.unwrap().is_some());
        assert!(
            rx.try_recv().is_err(),
            "nothing is published for a rolled-back logout"
        );
        sqlx::query("DROP TRIGGER no_outbox")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(store.revoke_session(&[7; 32]).await.unwrap());
        assert!(store.grants_of(a.id).await.unwrap().is_empty());
        assert_eq!(store.backchannel_logouts().await.unwrap().len(), 1);
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

    #[test]
    fn bulk_insert_text_numbers_every_row() {
        assert_eq!(
            device_insert_sql(2),
            "INSERT INTO devices (account_id, name, kind, routes_json, secret_hash, basic_user, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8), \
             ($9, $10, $11, $12, $13, $14, $15, $16)"
        );
        let last = BULK_ROWS * DEVICE_INSERT_PARAMS;
        assert!(BULK_DEVICE_INSERT.ends_with(&format!(", ${last})")));
        assert!(!BULK_DEVICE_INSERT.contains(&format!("${}", last + 1)));
        assert_eq!(BULK_DEVICE_INSERT.matches('(').count(), BULK_ROWS + 1);
    }

    #[tokio::test]
    async fn device_and_pairing_rows_that_do_not_decode_are_corrupt() {
        let (_dir, store) = temp_store().await;
        let a = store.create_account(new_account("alice")).await.unwrap();
        let d = store
            .create_device(&NewDevice {
                account_id: a.id,
                name: "phone".into(),
                kind: "bearer".into(),
                routes: vec!["api".into()],
                secret_hash: [1; 32],
                basic_user: None,
                created_at: 1,
                expires_at: None,
            })
            .await
            .unwrap();
        sqlx::query("UPDATE devices SET routes_json = 'api' WHERE id = $1")
            .bind(d.id)
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.device_by_secret(&[1; 32]).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.starts_with(&format!("device {} has routes", d.id))),
            "{err:?}"
        );
        assert!(matches!(
            store.devices_of(None).await,
            Err(StoreError::Corrupt(_))
        ));

        let p = store
            .create_pairing(a.id, &[2; 32], &["api".into()], 1, 100)
            .await
            .unwrap();
        sqlx::query("UPDATE pairings SET routes_json = '{}' WHERE id = $1")
            .bind(p.id)
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.pairing(p.id).await,
            Err(StoreError::Corrupt(_))
        ));

        // The schema refuses what the model could not represent.
        for bad in [
            "UPDATE pairings SET state = 'lost'",
            "UPDATE pairings SET state = 'claimed'",
            "UPDATE devices SET secret_hash = x'0102'",
        ] {
            assert!(
                sqlx::query(bad).execute(&store.pool).await.is_err(),
                "{bad}"
            );
        }
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
