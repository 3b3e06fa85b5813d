//! [`ProviderStore`] over [`SqlStore`]: the OpenID Connect provider's rows
//! (migration 0008), one static statement at a time as in `sql.rs`.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};

use crate::backchannel_sql::{self, EndedBy, end_grants, outbox_columns};
use crate::device_sql;
use crate::model::{decode_hash, decode_string_list, encode_groups};
use crate::provider::{
    AccessTokenRecord, AuthorizationCode, BackchannelLogout, CodeExchange, CodeTokens,
    DeviceApproval, DeviceCode, DeviceRedemption, NewAuthorizationCode, NewDeviceCode, NewToken,
    OidcGrant, ProviderStore, RefreshOutcome, RefreshTokenRecord, Rotation, StoredOidcClient,
};
use crate::sql::{SqlStore, all, get};
use crate::{BoxFuture, Change, StoreError};

/// Columns of `oidc_grants` (prefixed `g.`), in [`grant_from_row`]'s order.
macro_rules! grant_columns {
    () => {
        "g.id AS g_id, g.account_id AS g_account_id, g.client_id AS g_client_id, \
         g.scopes AS g_scopes, g.session_ref AS g_session_ref, g.auth_time AS g_auth_time, \
         g.created_at AS g_created_at, g.last_used_at AS g_last_used_at"
    };
}

/// Columns of `oidc_codes`.
macro_rules! code_columns {
    () => {
        "code_hash, client_id, account_id, redirect_uri, scopes, nonce, code_challenge, \
         session_ref, auth_time, amr_json, created_at, expires_at, redeemed_at, grant_id"
    };
}

/// Columns of a refresh token joined with its family (`f.`) and grant.
macro_rules! refresh_columns {
    () => {
        concat!(
            "t.family_id, t.created_at, t.expires_at, t.rotated_at, t.successor_hash, \
             t.successor_sealed, f.absolute_expires_at, f.revoked_at AS family_revoked_at, ",
            grant_columns!(),
            " FROM oidc_refresh_tokens t \
             JOIN oidc_refresh_families f ON f.id = t.family_id \
             JOIN oidc_grants g ON g.id = f.grant_id"
        )
    };
}

fn client_from_row(row: &AnyRow) -> Result<StoredOidcClient, StoreError> {
    let client_id: String = get(row, "client_id")?;
    let secret: Option<Vec<u8>> = get(row, "secret_hash")?;
    Ok(StoredOidcClient {
        secret_hash: secret
            .map(|s| decode_hash(&format!("client {client_id:?}'s secret digest"), s))
            .transpose()?,
        settings_json: get(row, "settings_json")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        client_id,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<OidcGrant, StoreError> {
    Ok(OidcGrant {
        id: get(row, "g_id")?,
        account_id: get(row, "g_account_id")?,
        client_id: get(row, "g_client_id")?,
        scopes: get(row, "g_scopes")?,
        session_ref: get(row, "g_session_ref")?,
        auth_time: get(row, "g_auth_time")?,
        created_at: get(row, "g_created_at")?,
        last_used_at: get(row, "g_last_used_at")?,
    })
}

fn code_from_row(row: &AnyRow) -> Result<AuthorizationCode, StoreError> {
    let hash: Vec<u8> = get(row, "code_hash")?;
    let created_at: i64 = get(row, "created_at")?;
    let amr: String = get(row, "amr_json")?;
    Ok(AuthorizationCode {
        code: NewAuthorizationCode {
            code_hash: decode_hash("an authorization code digest", hash)?,
            client_id: get(row, "client_id")?,
            account_id: get(row, "account_id")?,
            redirect_uri: get(row, "redirect_uri")?,
            scopes: get(row, "scopes")?,
            nonce: get(row, "nonce")?,
            code_challenge: get(row, "code_challenge")?,
            session_ref: get(row, "session_ref")?,
            auth_time: get(row, "auth_time")?,
            amr: decode_string_list("oidc_codes", created_at, "amr_json", &amr)?,
            created_at,
            expires_at: get(row, "expires_at")?,
        },
        redeemed_at: get(row, "redeemed_at")?,
        grant_id: get(row, "grant_id")?,
    })
}

fn refresh_from_row(row: &AnyRow) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        family_id: get(row, "family_id")?,
        grant: grant_from_row(row)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        rotated_at: get(row, "rotated_at")?,
        family_expires_at: get(row, "absolute_expires_at")?,
        family_revoked_at: get(row, "family_revoked_at")?,
    })
}

fn access_from_row(row: &AnyRow) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        client_id: get(row, "client_id")?,
        account_id: get(row, "account_id")?,
        grant_id: get(row, "grant_id")?,
        family_id: get(row, "family_id")?,
        scopes: get(row, "scopes")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

/// Inserts an access token in the caller's transaction.
#[allow(clippy::too_many_arguments)] // one per column
async fn insert_access(
    conn: &mut AnyConnection,
    token: &NewToken,
    client_id: &str,
    account_id: Option<i64>,
    grant_id: Option<i64>,
    family_id: Option<i64>,
    scopes: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_access_tokens \
         (token_hash, client_id, account_id, grant_id, family_id, scopes, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.token_hash[..])
    .bind(client_id)
    .bind(account_id)
    .bind(grant_id)
    .bind(family_id)
    .bind(scopes)
    .bind(now)
    .bind(token.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "an access token with this digest exists"))?;
    Ok(())
}

/// Who and what a new grant is for.
pub(crate) struct GrantSource<'a> {
    pub account_id: i64,
    pub client_id: &'a str,
    pub scopes: &'a str,
    pub session_ref: Option<&'a str>,
    pub auth_time: i64,
}

/// Creates a grant with its refresh family (when `tokens` has a refresh
/// token) and its access token, in the caller's transaction: what a code
/// exchange and a device-code redemption both issue.
pub(crate) async fn issue_grant(
    tx: &mut Transaction<'static, Any>,
    src: &GrantSource<'_>,
    now: i64,
    tokens: &CodeTokens,
) -> Result<(OidcGrant, Option<i64>), StoreError> {
    let grant_row = sqlx::query(
        "INSERT INTO oidc_grants \
         (account_id, client_id, scopes, session_ref, auth_time, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         RETURNING id AS g_id, account_id AS g_account_id, client_id AS g_client_id, \
         scopes AS g_scopes, session_ref AS g_session_ref, auth_time AS g_auth_time, \
         created_at AS g_created_at, last_used_at AS g_last_used_at",
    )
    .bind(src.account_id)
    .bind(src.client_id)
    .bind(src.scopes)
    .bind(src.session_ref)
    .bind(src.auth_time)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let grant = grant_from_row(&grant_row)?;
    let mut family_id = None;
    if let Some((refresh, absolute)) = &tokens.refresh {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO oidc_refresh_families (grant_id, created_at, absolute_expires_at) \
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(grant.id)
        .bind(now)
        .bind(*absolute)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO oidc_refresh_tokens (token_hash, family_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&refresh.token_hash[..])
        .bind(id)
        .bind(now)
        .bind(refresh.expires_at.min(*absolute))
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "a refresh token with this digest exists"))?;
        family_id = Some(id);
    }
    insert_access(
        tx,
        &tokens.access,
        src.client_id,
        Some(src.account_id),
        Some(grant.id),
        family_id,
        src.scopes,
        now,
    )
    .await?;
    Ok((grant, family_id))
}

/// Revokes a family and deletes its access tokens, in the caller's
/// transaction; `false` if it was revoked already.
async fn revoke_family(
    tx: &mut Transaction<'static, Any>,
    family_id: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM oidc_access_tokens WHERE family_id = $1")
        .bind(family_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl ProviderStore for SqlStore {
    fn create_oidc_client<'a>(
        &'a self,
        client: &'a StoredOidcClient,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO oidc_clients \
                 (client_id, secret_hash, settings_json, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&client.client_id)
            .bind(client.secret_hash.as_ref().map(|h| &h[..]))
            .bind(&client.settings_json)
            .bind(client.created_at)
            .bind(client.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                StoreError::from_sqlx(
                    e,
                    &format!("a client with id {:?} exists", client.client_id),
                )
            })?;
            Ok(())
        })
    }

    fn oidc_client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredOidcClient>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT client_id, secret_hash, settings_json, created_at, updated_at \
                 FROM oidc_clients WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(client_from_row).transpose()
        })
    }

    fn oidc_clients(&self) -> BoxFuture<'_, Result<Vec<StoredOidcClient>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT client_id, secret_hash, settings_json, created_at, updated_at \
                 FROM oidc_clients ORDER BY client_id",
            )
            .fetch_all(&self.pool)
            .await?;
            all(&rows, client_from_row)
        })
    }

    fn set_oidc_client_secret<'a>(
        &'a self,
        client_id: &'a str,
        secret_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE oidc_clients SET secret_hash = $2, updated_at = $3 \
                 WHERE client_id = $1 AND secret_hash IS NOT NULL",
            )
            .bind(client_id)
            .bind(&secret_hash[..])
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_oidc_client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let done = sqlx::query("DELETE FROM oidc_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                // Grants take their families, refresh and access tokens
                // with them (ON DELETE CASCADE); codes point at grants
                // with SET NULL, so they go first by client.
                for sql in [
                    "DELETE FROM oidc_codes WHERE client_id = $1",
                    "DELETE FROM oidc_device_codes WHERE client_id = $1",
                    "DELETE FROM oidc_access_tokens WHERE client_id = $1",
                    "DELETE FROM oidc_grants WHERE client_id = $1",
                    "DELETE FROM oidc_consents WHERE client_id = $1",
                ] {
                    sqlx::query(sql).bind(client_id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let scopes = sqlx::query_scalar(
                "SELECT scopes FROM oidc_consents WHERE account_id = $1 AND client_id = $2",
            )
            .bind(account_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(scopes)
        })
    }

    fn put_consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
        scopes: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO oidc_consents (account_id, client_id, scopes, granted_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, client_id) \
                 DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            )
            .bind(account_id)
            .bind(client_id)
            .bind(scopes)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn forget_consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done =
                sqlx::query("DELETE FROM oidc_consents WHERE account_id = $1 AND client_id = $2")
                    .bind(account_id)
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn grant(&self, id: i64) -> BoxFuture<'_, Result<Option<OidcGrant>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                grant_columns!(),
                " FROM oidc_grants g WHERE g.id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(grant_from_row).transpose()
        })
    }

    fn create_authorization_code<'a>(
        &'a self,
        code: &'a NewAuthorizationCode,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO oidc_codes \
                 (code_hash, client_id, account_id, redirect_uri, scopes, nonce, code_challenge, \
                  session_ref, auth_time, amr_json, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&code.code_hash[..])
            .bind(&code.client_id)
            .bind(code.account_id)
            .bind(&code.redirect_uri)
            .bind(&code.scopes)
            .bind(code.nonce.as_deref())
            .bind(code.code_challenge.as_deref())
            .bind(code.session_ref.as_deref())
            .bind(code.auth_time)
            .bind(encode_groups(&code.amr))
            .bind(code.created_at)
            .bind(code.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                StoreError::from_sqlx(e, "an authorization code with this digest exists")
            })?;
            Ok(())
        })
    }

    fn authorization_code<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<AuthorizationCode>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                code_columns!(),
                " FROM oidc_codes WHERE code_hash = $1"
            ))
            .bind(&code_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(code_from_row).transpose()
        })
    }

    fn exchange_code<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        tokens: &'a CodeTokens,
    ) -> BoxFuture<'a, Result<CodeExchange, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            // One conditional statement: of two racing redemptions the
            // second finds `redeemed_at` set (PostgreSQL re-checks after
            // the first's row lock; SQLite runs writers one at a time).
            let row = sqlx::query(concat!(
                "UPDATE oidc_codes SET redeemed_at = $3 \
                 WHERE code_hash = $1 AND client_id = $2 AND redeemed_at IS NULL \
                 AND expires_at > $3 RETURNING ",
                code_columns!()
            ))
            .bind(&code_hash[..])
            .bind(client_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                let redeemed: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT redeemed_at, grant_id FROM oidc_codes WHERE code_hash = $1",
                )
                .bind(&code_hash[..])
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = match redeemed {
                    Some((Some(_), grant_id)) => {
                        let mut revoked_grant = None;
                        if let Some(id) = grant_id {
                            let done = sqlx::query("DELETE FROM oidc_grants WHERE id = $1")
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                            revoked_grant = (done.rows_affected() > 0).then_some(id);
                        }
                        CodeExchange::Replayed { revoked_grant }
                    }
                    _ => CodeExchange::Invalid,
                };
                // Every instance's cache of the grant's access tokens
                // drops them (the gate honours the revocation at once).
                let revoked = match &outcome {
                    CodeExchange::Replayed {
                        revoked_grant: Some(id),
                    } => Some(Change::Grant(*id)),
                    _ => None,
                };
                if let Some(c) = revoked {
                    self.record(&mut tx, c).await?;
                }
                tx.commit().await?;
                if let Some(c) = revoked {
                    self.publish(c);
                }
                return Ok(outcome);
            };
            let code = code_from_row(&row)?.code;
            let (grant, family_id) = issue_grant(
                &mut tx,
                &GrantSource {
                    account_id: code.account_id,
                    client_id: &code.client_id,
                    scopes: &code.scopes,
                    session_ref: code.session_ref.as_deref(),
                    auth_time: code.auth_time,
                },
                now,
                tokens,
            )
            .await?;
            sqlx::query("UPDATE oidc_codes SET grant_id = $2 WHERE code_hash = $1")
                .bind(&code_hash[..])
                .bind(grant.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(CodeExchange::Issued {
                code: Box::new(code),
                grant,
                family_id,
            })
        })
    }

    fn grants_of(&self, account_id: i64) -> BoxFuture<'_, Result<Vec<OidcGrant>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                grant_columns!(),
                " FROM oidc_grants g WHERE g.account_id = $1 ORDER BY g.created_at, g.id"
            ))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, grant_from_row)
        })
    }

    fn revoke_grant(&self, id: i64, owner: Option<i64>) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking_many(async |conn| {
                let ended =
                    end_grants(conn, EndedBy::Grant(id, owner), crate::feed::now_ms()).await?;
                Ok((
                    !ended.is_empty(),
                    ended.into_iter().map(Change::Grant).collect(),
                ))
            })
            .await
        })
    }

    fn refresh_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<RefreshTokenRecord>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                refresh_columns!(),
                " WHERE t.token_hash = $1"
            ))
            .bind(&token_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(refresh_from_row).transpose()
        })
    }

    fn rotate_refresh<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        rotation: &'a Rotation,
    ) -> BoxFuture<'a, Result<RefreshOutcome, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            // The rotation itself is one conditional UPDATE on
            // `rotated_at IS NULL`: of two racing refreshes with the same
            // token exactly one rotates; the other (PostgreSQL re-checks
            // after the first's row lock) falls through to the grace rule.
            let rotated: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE oidc_refresh_tokens SET rotated_at = $2, successor_hash = $3, \
                 successor_sealed = $4 \
                 WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2 \
                 AND family_id IN (SELECT f.id FROM oidc_refresh_families f \
                                   JOIN oidc_grants g ON g.id = f.grant_id \
                                   WHERE f.revoked_at IS NULL AND f.absolute_expires_at > $2 \
                                   AND g.client_id = $5) \
                 RETURNING family_id, created_at",
            )
            .bind(&token_hash[..])
            .bind(now)
            .bind(&rotation.refresh.token_hash[..])
            .bind(&rotation.sealed[..])
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                refresh_columns!(),
                " WHERE t.token_hash = $1"
            ))
            .bind(&token_hash[..])
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(RefreshOutcome::Invalid);
            };
            let record = refresh_from_row(&row)?;
            if let Some((family_id, _)) = rotated {
                // Sliding expiry, never past the family's absolute cap.
                let refresh_expires_at = rotation.refresh.expires_at.min(record.family_expires_at);
                sqlx::query(
                    "INSERT INTO oidc_refresh_tokens \
                     (token_hash, family_id, parent_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&rotation.refresh.token_hash[..])
                .bind(family_id)
                .bind(&token_hash[..])
                .bind(now)
                .bind(refresh_expires_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "a refresh token with this digest exists"))?;
                let grant = &record.grant;
                insert_access(
                    &mut tx,
                    &rotation.access,
                    &grant.client_id,
                    Some(grant.account_id),
                    Some(grant.id),
                    Some(family_id),
                    rotation.access_scopes.as_deref().unwrap_or(&grant.scopes),
                    now,
                )
                .await?;
                sqlx::query("UPDATE oidc_grants SET last_used_at = $2 WHERE id = $1")
                    .bind(grant.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut grant = record.grant;
                grant.last_used_at = now;
                return Ok(RefreshOutcome::Rotated {
                    grant,
                    refresh_expires_at,
                });
            }
            // Not rotated now. Another client's token, a dead family or an
            // expired current token: nothing to do.
            let Some(rotated_at) = record.rotated_at else {
                return Ok(RefreshOutcome::Invalid);
            };
            if record.grant.client_id != client_id
                || record.family_revoked_at.is_some()
                || now >= record.family_expires_at
            {
                return Ok(RefreshOutcome::Invalid);
            }
            // A rotated token: a retry inside the window whose successor is
            // still unused gets the sealed successors back.
            let sealed: Option<Vec<u8>> = get(&row, "successor_sealed")?;
            let successor: Option<Vec<u8>> = get(&row, "successor_hash")?;
            let successor_unused: bool = match &successor {
                Some(hash) => {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM oidc_refresh_tokens \
                         WHERE token_hash = $1 AND rotated_at IS NULL",
                    )
                    .bind(&hash[..])
                    .fetch_one(&mut *tx)
                    .await?;
                    n > 0
                }
                None => false,
            };
            if let Some(sealed) = sealed
                && successor_unused
                && now - rotated_at <= rotation.grace_ms
            {
                return Ok(RefreshOutcome::GraceRetry {
                    grant: record.grant,
                    sealed,
                });
            }
            // Reuse (RFC 9700 §4.14.2): the family dies with its tokens,
            // on every instance's cache too.
            revoke_family(&mut tx, record.family_id, now).await?;
            let change = Change::Grant(record.grant.id);
            self.record(&mut tx, change).await?;
            tx.commit().await?;
            self.publish(change);
            Ok(RefreshOutcome::Reused {
                family_id: record.family_id,
                grant: record.grant,
            })
        })
    }

    fn revoke_refresh_family<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let family: Option<(i64, i64)> = sqlx::query_as(
                "SELECT t.family_id, f.grant_id FROM oidc_refresh_tokens t \
                 JOIN oidc_refresh_families f ON f.id = t.family_id \
                 JOIN oidc_grants g ON g.id = f.grant_id \
                 WHERE t.token_hash = $1 AND g.client_id = $2",
            )
            .bind(&token_hash[..])
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            let revoked = match family {
                Some((id, _)) => revoke_family(&mut tx, id, now).await?,
                None => false,
            };
            // The family's access tokens are gone: caches drop the
            // grant's (those of other families are fetched again).
            let change = family.filter(|_| revoked).map(|(_, g)| Change::Grant(g));
            if let Some(c) = change {
                self.record(&mut tx, c).await?;
            }
            tx.commit().await?;
            if let Some(c) = change {
                self.publish(c);
            }
            Ok(revoked)
        })
    }

    fn create_client_access_token<'a>(
        &'a self,
        client_id: &'a str,
        scopes: &'a str,
        token: &'a NewToken,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            insert_access(&mut conn, token, client_id, None, None, None, scopes, now).await
        })
    }

    fn access_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<AccessTokenRecord>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT client_id, account_id, grant_id, family_id, scopes, created_at, \
                 expires_at FROM oidc_access_tokens WHERE token_hash = $1",
            )
            .bind(&token_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(access_from_row).transpose()
        })
    }

    fn revoke_access_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.revoking(Change::AccessToken(*token_hash), async |conn| {
                let done = sqlx::query(
                    "DELETE FROM oidc_access_tokens WHERE token_hash = $1 AND client_id = $2",
                )
                .bind(&token_hash[..])
                .bind(client_id)
                .execute(&mut *conn)
                .await?;
                let deleted = done.rows_affected() > 0;
                Ok((deleted, deleted))
            })
            .await
        })
    }

    fn create_device_code<'a>(
        &'a self,
        code: &'a NewDeviceCode,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(device_sql::create(self, code))
    }

    fn device_code_by_user_code<'a>(
        &'a self,
        user_code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceCode>, StoreError>> {
        Box::pin(device_sql::by_hash(self, "user_code_hash", user_code_hash))
    }

    fn device_code<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceCode>, StoreError>> {
        Box::pin(device_sql::by_hash(
            self,
            "device_code_hash",
            device_code_hash,
        ))
    }

    fn decide_device_code<'a>(
        &'a self,
        user_code_hash: &'a [u8; 32],
        now: i64,
        approval: Option<&'a DeviceApproval>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(device_sql::decide(self, user_code_hash, now, approval))
    }

    fn record_device_poll<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
        expected_last_poll: Option<i64>,
        now: i64,
        interval_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(device_sql::record_poll(
            self,
            device_code_hash,
            expected_last_poll,
            now,
            interval_ms,
        ))
    }

    fn redeem_device_code<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        tokens: &'a CodeTokens,
    ) -> BoxFuture<'a, Result<DeviceRedemption, StoreError>> {
        Box::pin(device_sql::redeem(
            self,
            device_code_hash,
            client_id,
            now,
            tokens,
        ))
    }

    fn claim_backchannel_logouts<'a>(
        &'a self,
        now: i64,
        lease: &'a str,
        lease_until: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<BackchannelLogout>, StoreError>> {
        Box::pin(async move {
            let candidates: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM oidc_backchannel_outbox WHERE next_attempt_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_attempt_at, id LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let mut claimed = Vec::with_capacity(candidates.len());
            for id in candidates {
                // The claim re-checks that the row is due and unleased: of
                // two senders that both listed it, one updates it, the
                // other's UPDATE matches nothing (PostgreSQL re-evaluates
                // the WHERE after waiting for the first's row lock; SQLite
                // runs one writer at a time).
                let row = sqlx::query(concat!(
                    "UPDATE oidc_backchannel_outbox SET lease = $2, lease_until = $3 \
                     WHERE id = $1 AND next_attempt_at <= $4 \
                     AND (lease_until IS NULL OR lease_until <= $4) RETURNING ",
                    outbox_columns!()
                ))
                .bind(id)
                .bind(lease)
                .bind(lease_until)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = row {
                    claimed.push(backchannel_sql::from_row(&row)?);
                }
            }
            Ok(claimed)
        })
    }

    fn finish_backchannel_logout<'a>(
        &'a self,
        id: i64,
        lease: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done =
                sqlx::query("DELETE FROM oidc_backchannel_outbox WHERE id = $1 AND lease = $2")
                    .bind(id)
                    .bind(lease)
                    .execute(&self.pool)
                    .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn retry_backchannel_logout<'a>(
        &'a self,
        id: i64,
        lease: &'a str,
        next_attempt_at: i64,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE oidc_backchannel_outbox SET attempts = attempts + 1, \
                 next_attempt_at = $3, last_error = $4, lease = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease = $2",
            )
            .bind(id)
            .bind(lease)
            .bind(next_attempt_at)
            .bind(error)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn backchannel_logouts(&self) -> BoxFuture<'_, Result<Vec<BackchannelLogout>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM oidc_backchannel_outbox ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            all(&rows, backchannel_sql::from_row)
        })
    }

    fn next_backchannel_logout_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let at: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                 THEN lease_until ELSE next_attempt_at END) FROM oidc_backchannel_outbox",
            )
            .fetch_one(&self.pool)
            .await?;
            Ok(at)
        })
    }

    fn remember_client_assertion<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.remember_once(
            "DELETE FROM oidc_client_assertion_jtis WHERE expires_at < $1",
            "INSERT INTO oidc_client_assertion_jtis (client_id, jti, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING",
            (client_id, jti, expires_at),
            now,
        ))
    }

    fn purge_provider(
        &self,
        now: i64,
        redeemed_codes_before: i64,
        sealed_before: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let mut count = 0;
            for (sql, at) in [
                ("DELETE FROM oidc_access_tokens WHERE expires_at <= $1", now),
                (
                    "DELETE FROM oidc_codes WHERE expires_at <= $1 AND redeemed_at IS NULL",
                    now,
                ),
                (
                    "DELETE FROM oidc_codes WHERE expires_at <= $1",
                    redeemed_codes_before,
                ),
                (
                    "DELETE FROM oidc_refresh_families WHERE absolute_expires_at <= $1",
                    now,
                ),
                ("DELETE FROM oidc_device_codes WHERE expires_at <= $1", now),
                (
                    "UPDATE oidc_refresh_tokens SET successor_sealed = NULL \
                     WHERE rotated_at <= $1 AND successor_sealed IS NOT NULL",
                    sealed_before,
                ),
            ] {
                let done = sqlx::query(sql).bind(at).execute(&mut *tx).await?;
                count += done.rows_affected();
            }
            tx.commit().await?;
            Ok(count)
        })
    }
}
