//! The change feed between processes.
//!
//! Each store publishes its own changes to its subscribers right after
//! commit. Changes made by other processes arrive here:
//!
//! - **SQLite**: each change is also a row of the `changes` table, written
//!   in the same transaction. A task polls for rows newer than the last
//!   one it saw every [`POLL_INTERVAL`] and re-broadcasts those of other
//!   instances. SQLite serialises writers, so ids commit in order and a
//!   newer id is never visible before an older one. Rows older than
//!   [`KEEP_CHANGES`] are purged.
//! - **PostgreSQL**: each change is a `pg_notify` on [`PG_CHANNEL`], sent
//!   in the same transaction (PostgreSQL delivers it at commit). A task
//!   `LISTEN`s on a dedicated connection. Notifications sent while it is
//!   disconnected are lost, so it broadcasts [`Change::Resync`] when the
//!   connection drops and again once it is back, and reconnects with
//!   exponential backoff ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{AnyPool, Row};
use tokio::sync::broadcast;

use crate::{ACQUIRE_TIMEOUT, Change, StoreError};

/// The PostgreSQL notification channel.
pub(crate) const PG_CHANNEL: &str = "vestibule_changes";
/// How often SQLite stores look for other processes' changes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long rows stay in SQLite's `changes` table.
pub(crate) const KEEP_CHANGES: Duration = Duration::from_secs(3600);
/// Purge the `changes` table every this many polls (one minute).
const PURGE_EVERY: u64 = 240;
/// Rows read per poll query.
const POLL_BATCH: i64 = 500;
/// First and longest wait between PostgreSQL reconnection attempts.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Unix milliseconds, for the feed's own bookkeeping.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `origin kind key`: what a PostgreSQL notification carries.
pub(crate) fn pg_payload(origin: &str, kind: &str, key: &str) -> String {
    format!("{origin} {kind} {key}")
}

/// The change in a notification, unless it came from `own` origin. A
/// payload that does not parse becomes [`Change::Resync`].
fn from_pg_payload(payload: &str, own: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, ' ');
    let (Some(origin), Some(kind), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        tracing::warn!(payload, "malformed change notification; resyncing");
        return Some(Change::Resync);
    };
    if origin == own {
        return None;
    }
    Some(decode_or_resync(kind, key))
}

fn decode_or_resync(kind: &str, key: &str) -> Change {
    Change::decode(kind, key).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable change; resyncing");
        Change::Resync
    })
}

/// The newest change id already in the SQLite file: the poll starts after it.
pub(crate) async fn sqlite_last_change(pool: &AnyPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM changes")
            .fetch_one(pool)
            .await?,
    )
}

/// SQLite: polls `changes` forever (until the task is aborted).
pub(crate) async fn poll_sqlite(
    pool: AnyPool,
    origin: Arc<str>,
    tx: broadcast::Sender<Change>,
    mut last: i64,
) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticker.tick().await;
        if let Err(e) = poll_once(&pool, &origin, &tx, &mut last).await {
            tracing::warn!(error = %e, "reading the change feed failed; retrying");
        }
        if tick % PURGE_EVERY == 0 {
            let keep = i64::try_from(KEEP_CHANGES.as_millis()).unwrap_or(i64::MAX);
            let purged = sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(now_ms().saturating_sub(keep))
                .execute(&pool)
                .await;
            if let Err(e) = purged {
                tracing::warn!(error = %e, "purging old changes failed");
            }
        }
    }
}

async fn poll_once(
    pool: &AnyPool,
    origin: &str,
    tx: &broadcast::Sender<Change>,
    last: &mut i64,
) -> Result<(), sqlx::Error> {
    loop {
        let rows = sqlx::query(
            "SELECT id, kind, key, origin FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(*last)
        .bind(POLL_BATCH)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            *last = row.try_get("id")?;
            let from: String = row.try_get("origin")?;
            if from == origin {
                continue;
            }
            let kind: String = row.try_get("kind")?;
            let key: String = row.try_get("key")?;
            let _ = tx.send(decode_or_resync(&kind, &key));
        }
        if rows.len() < usize::try_from(POLL_BATCH).unwrap_or(usize::MAX) {
            return Ok(());
        }
    }
}

/// A listener on [`PG_CHANNEL`], on its own connection.
pub(crate) async fn pg_listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect(url)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // We reconnect ourselves, to know when it happened.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(PG_CHANNEL).await?;
    Ok(listener)
}

/// PostgreSQL: re-broadcasts notifications forever (until the task is
/// aborted), reconnecting with backoff.
pub(crate) async fn run_pg_listener(
    url: String,
    origin: Arc<str>,
    tx: broadcast::Sender<Change>,
    mut listener: PgListener,
    up: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    loop {
        let lost = loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(change) = from_pg_payload(n.payload(), &origin) {
                        let _ = tx.send(change);
                    }
                }
                Ok(None) => break "the connection was closed".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        drop(listener);
        tracing::warn!(reason = %lost, "lost the change-feed connection; reconnecting");
        up.store(false, Ordering::SeqCst);
        let _ = tx.send(Change::Resync);
        let mut delay = BACKOFF_MIN;
        listener = loop {
            tokio::time::sleep(delay).await;
            match pg_listen(&url).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::debug!(error = %e, ?delay, "change-feed reconnection failed");
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        };
        tracing::info!("change-feed connection is back; resyncing");
        up.store(true, Ordering::SeqCst);
        let _ = tx.send(Change::Resync);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_payloads() {
        let p = pg_payload("abc", "account", "7");
        assert_eq!(from_pg_payload(&p, "other"), Some(Change::Account(7)));
        assert_eq!(from_pg_payload(&p, "abc"), None);
        assert_eq!(from_pg_payload("garbage", "x"), Some(Change::Resync));
        assert_eq!(
            from_pg_payload("o session nothex", "x"),
            Some(Change::Resync)
        );
    }

    #[test]
    fn device_changes_cross_processes() {
        let (kind, key) = Change::Device(12).encode();
        // PostgreSQL: a notification from another instance.
        let p = pg_payload("abc", kind, &key);
        assert_eq!(p, "abc device 12");
        assert_eq!(from_pg_payload(&p, "other"), Some(Change::Device(12)));
        assert_eq!(from_pg_payload(&p, "abc"), None);
        // SQLite: a `changes` row.
        assert_eq!(decode_or_resync(kind, &key), Change::Device(12));
        // A key that does not parse: resync, never a wrong device.
        assert_eq!(
            from_pg_payload("o device twelve", "x"),
            Some(Change::Resync)
        );
        assert_eq!(decode_or_resync("device", ""), Change::Resync);
    }

    #[test]
    fn provider_changes_round_trip() {
        for change in [Change::Grant(7), Change::AccessToken([0xab; 32])] {
            let (kind, key) = change.encode();
            assert_eq!(decode_or_resync(kind, &key), change);
            let p = pg_payload("abc", kind, &key);
            assert_eq!(from_pg_payload(&p, "other"), Some(change));
        }
        assert_eq!(decode_or_resync("grant", "seven"), Change::Resync);
        assert_eq!(decode_or_resync("access_token", "ab"), Change::Resync);
    }
}
