//! The device codes of the OpenID Connect provider (RFC 8628; migration
//! 0010) over [`SqlStore`], behind the `ProviderStore` methods of
//! `provider_sql.rs`. Every state change is one conditional statement, so
//! instances sharing a database agree: a user code is answered once, a
//! poll is recorded once per previous poll, a device code is redeemed
//! once.

use sqlx::any::AnyRow;

use crate::StoreError;
use crate::model::{decode_hash, decode_string_list, encode_groups};
use crate::provider::{
    CodeTokens, DeviceApproval, DeviceCode, DeviceDecision, DeviceRedemption, NewDeviceCode,
};
use crate::provider_sql::{GrantSource, issue_grant};
use crate::sql::{SqlStore, get};

const COLUMNS: &str = "device_code_hash, user_code_hash, client_id, scopes, created_at, \
     expires_at, interval_ms, last_poll_at, decision, account_id, session_ref, auth_time, \
     amr_json, redeemed_at, grant_id";

fn from_row(row: &AnyRow) -> Result<DeviceCode, StoreError> {
    let created_at: i64 = get(row, "created_at")?;
    let decision: Option<String> = get(row, "decision")?;
    let decision = match decision.as_deref() {
        None => DeviceDecision::Pending,
        Some("approved") => DeviceDecision::Approved,
        Some("denied") => DeviceDecision::Denied,
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "oidc_device_codes row of {created_at} has decision {other:?}"
            )));
        }
    };
    let account_id: Option<i64> = get(row, "account_id")?;
    let auth_time: Option<i64> = get(row, "auth_time")?;
    let approval = match (decision, account_id, auth_time) {
        (DeviceDecision::Approved, Some(account_id), Some(auth_time)) => {
            let amr: Option<String> = get(row, "amr_json")?;
            Some(DeviceApproval {
                account_id,
                session_ref: get(row, "session_ref")?,
                auth_time,
                amr: match amr {
                    Some(a) => decode_string_list("oidc_device_codes", created_at, "amr_json", &a)?,
                    None => Vec::new(),
                },
            })
        }
        _ => None,
    };
    Ok(DeviceCode {
        code: NewDeviceCode {
            device_code_hash: decode_hash("a device code digest", get(row, "device_code_hash")?)?,
            user_code_hash: decode_hash("a user code digest", get(row, "user_code_hash")?)?,
            client_id: get(row, "client_id")?,
            scopes: get(row, "scopes")?,
            interval_ms: get(row, "interval_ms")?,
            created_at,
            expires_at: get(row, "expires_at")?,
        },
        last_poll_at: get(row, "last_poll_at")?,
        decision,
        approval,
        redeemed_at: get(row, "redeemed_at")?,
        grant_id: get(row, "grant_id")?,
    })
}

pub(crate) async fn create(store: &SqlStore, c: &NewDeviceCode) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_device_codes (device_code_hash, user_code_hash, client_id, scopes, \
         created_at, expires_at, interval_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.device_code_hash[..])
    .bind(&c.user_code_hash[..])
    .bind(&c.client_id)
    .bind(&c.scopes)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.interval_ms)
    .execute(&store.pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "a device code or user code with this digest exists"))?;
    Ok(())
}

/// `column` is one of two constants, never input.
pub(crate) async fn by_hash(
    store: &SqlStore,
    column: &'static str,
    hash: &[u8; 32],
) -> Result<Option<DeviceCode>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM oidc_device_codes WHERE {column} = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&hash[..])
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn decide(
    store: &SqlStore,
    user_code_hash: &[u8; 32],
    now: i64,
    approval: Option<&DeviceApproval>,
) -> Result<bool, StoreError> {
    let done = match approval {
        Some(a) => {
            sqlx::query(
                "UPDATE oidc_device_codes SET decision = 'approved', decided_at = $2, \
                 account_id = $3, session_ref = $4, auth_time = $5, amr_json = $6 \
                 WHERE user_code_hash = $1 AND decision IS NULL AND expires_at > $2",
            )
            .bind(&user_code_hash[..])
            .bind(now)
            .bind(a.account_id)
            .bind(a.session_ref.as_deref())
            .bind(a.auth_time)
            .bind(encode_groups(&a.amr))
            .execute(&store.pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE oidc_device_codes SET decision = 'denied', decided_at = $2 \
                 WHERE user_code_hash = $1 AND decision IS NULL AND expires_at > $2",
            )
            .bind(&user_code_hash[..])
            .bind(now)
            .execute(&store.pool)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn record_poll(
    store: &SqlStore,
    device_code_hash: &[u8; 32],
    expected_last_poll: Option<i64>,
    now: i64,
    interval_ms: i64,
) -> Result<bool, StoreError> {
    // Compare and set on the previous poll: two instances answering two
    // racing polls cannot both find the client on time.
    let done = match expected_last_poll {
        Some(last) => {
            sqlx::query(
                "UPDATE oidc_device_codes SET last_poll_at = $2, interval_ms = $3 \
                 WHERE device_code_hash = $1 AND last_poll_at = $4",
            )
            .bind(&device_code_hash[..])
            .bind(now)
            .bind(interval_ms)
            .bind(last)
            .execute(&store.pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE oidc_device_codes SET last_poll_at = $2, interval_ms = $3 \
                 WHERE device_code_hash = $1 AND last_poll_at IS NULL",
            )
            .bind(&device_code_hash[..])
            .bind(now)
            .bind(interval_ms)
            .execute(&store.pool)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn redeem(
    store: &SqlStore,
    device_code_hash: &[u8; 32],
    client_id: &str,
    now: i64,
    tokens: &CodeTokens,
) -> Result<DeviceRedemption, StoreError> {
    let mut tx = store.begin().await?;
    // One conditional statement: of two racing redemptions the second
    // finds `redeemed_at` set.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE oidc_device_codes SET redeemed_at = $3 \
         WHERE device_code_hash = $1 AND client_id = $2 AND decision = 'approved' \
         AND redeemed_at IS NULL AND expires_at > $3 RETURNING {COLUMNS}"
    )))
    .bind(&device_code_hash[..])
    .bind(client_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(DeviceRedemption::Invalid);
    };
    let code = from_row(&row)?;
    let Some(a) = &code.approval else {
        return Err(StoreError::Corrupt(
            "an approved device code without its approval".into(),
        ));
    };
    let (grant, family_id) = issue_grant(
        &mut tx,
        &GrantSource {
            account_id: a.account_id,
            client_id: &code.code.client_id,
            scopes: &code.code.scopes,
            session_ref: a.session_ref.as_deref(),
            auth_time: a.auth_time,
        },
        now,
        tokens,
    )
    .await?;
    sqlx::query("UPDATE oidc_device_codes SET grant_id = $2 WHERE device_code_hash = $1")
        .bind(&device_code_hash[..])
        .bind(grant.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(DeviceRedemption::Issued { grant, family_id })
}
