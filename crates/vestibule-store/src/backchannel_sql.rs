//! The back-channel logout outbox (migration 0011) and the one rule that
//! fills it: **a vestibule session that ends takes every grant bound to
//! it**. The grant is deleted (its refresh families, refresh tokens and
//! access tokens go with it, `ON DELETE CASCADE`), codes issued from the
//! session that were not redeemed yet are deleted too (they would mint a
//! grant for a session that no longer exists), and one outbox row per
//! grant is queued, all in the caller's transaction: the same one that
//! deletes the session, so a crash can neither end the session and forget
//! to tell the apps nor tell them about a session that still runs.
//!
//! Every session-ending call of the store goes through [`end_grants`]:
//! `revoke_session`, `revoke_sessions_of`, `purge_expired_sessions`,
//! `delete_account` and `revoke_grant`.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::StoreError;
use crate::provider::BackchannelLogout;
use crate::sql::get;

/// What [`end_grants`] reads of a grant.
macro_rules! grants {
    () => {
        "SELECT id, account_id, client_id, session_ref FROM oidc_grants"
    };
}

/// Which grants end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndedBy<'a> {
    /// The vestibule session whose reference (`hex` of its id digest) is
    /// this ended.
    Session(&'a str),
    /// The account is being deleted: all its grants.
    Account(i64),
    /// One grant is revoked (the Apps page, the admin), with `Some(owner)`
    /// only if it is that account's.
    Grant(i64, Option<i64>),
}

/// Deletes the grants `which` names and queues a back-channel logout for
/// each, in the caller's transaction; returns their ids (for
/// `Change::Grant`).
pub(crate) async fn end_grants(
    conn: &mut AnyConnection,
    which: EndedBy<'_>,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let rows = match which {
        EndedBy::Session(r) => {
            // A code from the session not redeemed yet must not become a
            // grant afterwards; a redeemed one stays (replay detection).
            sqlx::query("DELETE FROM oidc_codes WHERE session_ref = $1 AND redeemed_at IS NULL")
                .bind(r)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "DELETE FROM oidc_device_codes WHERE session_ref = $1 AND redeemed_at IS NULL",
            )
            .bind(r)
            .execute(&mut *conn)
            .await?;
            sqlx::query(concat!(grants!(), " WHERE session_ref = $1 ORDER BY id"))
                .bind(r)
                .fetch_all(&mut *conn)
                .await?
        }
        EndedBy::Account(a) => {
            sqlx::query(concat!(grants!(), " WHERE account_id = $1 ORDER BY id"))
                .bind(a)
                .fetch_all(&mut *conn)
                .await?
        }
        EndedBy::Grant(id, owner) => {
            sqlx::query(concat!(
                grants!(),
                " WHERE id = $1 AND ($2 IS NULL OR account_id = $2)"
            ))
            .bind(id)
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut ended = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = get(row, "id")?;
        let account_id: i64 = get(row, "account_id")?;
        let client_id: String = get(row, "client_id")?;
        let session_ref: Option<String> = get(row, "session_ref")?;
        let done = sqlx::query("DELETE FROM oidc_grants WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            continue;
        }
        // Back-Channel Logout §2.4 needs `sid` or `sub`; we always send
        // both. A grant without a session (none is made today: codes and
        // device approvals always carry one) is named by a reference of
        // its own, stable for the grant, so the RP still gets a `sid`.
        let session_ref = session_ref.unwrap_or_else(|| format!("grant:{id}"));
        sqlx::query(
            "INSERT INTO oidc_backchannel_outbox \
             (client_id, account_id, grant_id, session_ref, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&client_id)
        .bind(account_id)
        .bind(id)
        .bind(&session_ref)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        ended.push(id);
    }
    Ok(ended)
}

/// Columns of `oidc_backchannel_outbox`, as [`from_row`] reads them.
macro_rules! outbox_columns {
    () => {
        "id, client_id, account_id, grant_id, session_ref, attempts, next_attempt_at, lease, \
         lease_until, last_error, created_at"
    };
}
pub(crate) use outbox_columns;

pub(crate) fn from_row(row: &AnyRow) -> Result<BackchannelLogout, StoreError> {
    let attempts: i64 = get(row, "attempts")?;
    Ok(BackchannelLogout {
        id: get(row, "id")?,
        client_id: get(row, "client_id")?,
        account_id: get(row, "account_id")?,
        grant_id: get(row, "grant_id")?,
        session_ref: get(row, "session_ref")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("outbox attempts {attempts}")))?,
        next_attempt_at: get(row, "next_attempt_at")?,
        lease: get(row, "lease")?,
        lease_until: get(row, "lease_until")?,
        last_error: get(row, "last_error")?,
        created_at: get(row, "created_at")?,
    })
}
