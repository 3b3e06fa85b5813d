//! Rows that can no longer be used are deleted in the background: expired
//! sessions, expired device credentials, and pairings that expired before
//! they issued anything. They are refused by their expiry already; this
//! only keeps the tables (and the indexes kept for this purpose) from
//! growing without bound. With several instances on one PostgreSQL, each
//! purges; the deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use vestibule_store::Store;

use crate::accounts::now_ms;

/// How often expired rows are purged. The first purge is one period after
/// start-up, so starting costs nothing.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Spawns the purge task, every `period` ([`PURGE_EVERY`] in the server);
/// it runs until aborted.
pub fn purge_expired_rows(store: Arc<dyn Store>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            match (
                store.purge_expired_sessions(now).await,
                store.purge_expired(now).await,
            ) {
                (Ok(sessions), Ok(rows)) => {
                    tracing::debug!(sessions, devices_and_pairings = rows, "expired rows purged");
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "could not purge expired rows; retrying next period");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vestibule_store::{AccountStatus, IdentityKey, NewAccount, Session, StoreConfig};

    #[tokio::test]
    async fn expired_sessions_are_purged_each_period() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store = vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
        let a = store
            .create_account(NewAccount {
                key: IdentityKey::new("headers", "alice"),
                username: "alice".into(),
                email: None,
                display_name: None,
                groups: vec![],
                org: None,
                status: AccountStatus::Active,
                now: 1,
            })
            .await
            .unwrap();
        let session = |id: u8, expires_at: i64| Session {
            id_hash: [id; 32],
            account_id: a.id,
            source: "headers".into(),
            subject: "alice".into(),
            created_at: 1,
            last_seen_at: 1,
            expires_at,
            csrf_hash: [0; 32],
            user_agent: None,
            client_ip: None,
        };
        store.create_session(&session(1, 2)).await.unwrap();
        store.create_session(&session(2, i64::MAX)).await.unwrap();
        let period = Duration::from_millis(300);
        let task = purge_expired_rows(store.clone(), period);
        // Nothing happens at start-up.
        assert_eq!(store.sessions_of(Some(a.id)).await.unwrap().len(), 2);
        // After a period the expired session is gone, the live one stays.
        let mut left = Vec::new();
        for _ in 0..50 {
            tokio::time::sleep(period / 3).await;
            left = store.sessions_of(Some(a.id)).await.unwrap();
            if left.len() == 1 {
                break;
            }
        }
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].id_hash, [2; 32]);
        task.abort();
    }
}
