//! The rows of sign-in against an upstream OpenID provider
//! (`[source.oidc]`, migration 0012): which vestibule session came from
//! which provider session, and the logout tokens already accepted.
//!
//! Ending sessions stays with [`Store::revoke_session`](crate::Store::revoke_session),
//! so each end goes on the change feed like any other.

use sqlx::any::AnyRow;

use crate::model::{decode_hash, decode_private_format};
use crate::sql::{SqlStore, get};
use crate::{BoxFuture, PrivateKeyFormat, StoreError};

/// The provider's tokens of a session (migration 0013), as stored: the
/// store neither seals nor reads them; the caller seals `tokens` with the
/// key-encryption key when one is configured, as it does signing keys.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcSessionTokens {
    /// How `tokens` is stored (`plain` or `aes256gcm`).
    pub format: PrivateKeyFormat,
    /// The tokens, as `format` says.
    pub tokens: Vec<u8>,
    /// Unix ms: the last time the provider vouched for the session (the
    /// login, then each successful re-check).
    pub checked_at: i64,
    /// Unix ms: when the next re-check is due.
    pub next_check_at: i64,
}

impl std::fmt::Debug for OidcSessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Refresh and ID tokens are credentials: never in logs.
        f.debug_struct("OidcSessionTokens")
            .field("format", &self.format)
            .field("checked_at", &self.checked_at)
            .field("next_check_at", &self.next_check_at)
            .finish_non_exhaustive()
    }
}

/// What an OIDC login recorded with its vestibule session.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcSessionLink {
    /// SHA-256 of the vestibule session id (`sessions.id_hash`).
    pub session_hash: [u8; 32],
    /// The provider's issuer identifier.
    pub issuer: String,
    /// The upstream `sub`.
    pub subject: String,
    /// The upstream `sid`, when the ID token carried one.
    pub sid: Option<String>,
    /// The ID token, for `id_token_hint` at logout.
    pub id_token: String,
    /// Unix ms.
    pub created_at: i64,
}

impl std::fmt::Debug for OidcSessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ID token is a bearer of identity: never in logs.
        f.debug_struct("OidcSessionLink")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

/// A login under way: what its callback checks.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingOidcLogin {
    /// SHA-256 of the id in the browser's login cookie.
    pub login_hash: [u8; 32],
    /// The `state` sent.
    pub state: String,
    /// The `nonce` sent.
    pub nonce: String,
    /// The PKCE `code_verifier`.
    pub verifier: String,
    /// Where the browser goes once signed in (already checked).
    pub return_to: String,
    /// Unix ms.
    pub expires_at: i64,
    /// Link mode (migration 0014): the account that asked to link the
    /// provider's identity, and the SHA-256 of the session it asked from.
    /// `None` for an ordinary sign-in.
    pub link: Option<(i64, [u8; 32])>,
}

impl std::fmt::Debug for PendingOidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingOidcLogin")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .field("link_account", &self.link.map(|(a, _)| a))
            .finish_non_exhaustive()
    }
}

/// Persistence of `[source.oidc]` sessions.
pub trait OidcLoginStore {
    /// Records a login under way; forgets the expired ones first.
    fn put_pending_oidc_login<'a>(
        &'a self,
        login: &'a PendingOidcLogin,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Takes a login under way: returns it and deletes it, once (a second
    /// call, here or at another instance, gets `None`). `None` as well
    /// when it expired.
    fn take_pending_oidc_login<'a>(
        &'a self,
        login_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<PendingOidcLogin>, StoreError>>;

    /// Records the provider session behind a vestibule session (created
    /// just before with `create_session`).
    fn link_oidc_session<'a>(
        &'a self,
        link: &'a OidcSessionLink,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The link of a session, if it came from an OIDC login.
    fn oidc_session_link<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<OidcSessionLink>, StoreError>>;

    /// The sessions a logout token names (Back-Channel Logout 1.0 §2.7):
    /// with `sid`, those of that provider session (and of `subject` too
    /// when given); with `subject` only, every session of that subject
    /// from `issuer`. Neither: none.
    fn oidc_sessions_named<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<[u8; 32]>, StoreError>>;

    /// Stores the provider's tokens of a linked session with its re-check
    /// schedule (at login, or a re-check under no lease). `NotFound` when
    /// the session has no link (it ended).
    fn put_oidc_tokens<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        tokens: &'a OidcSessionTokens,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The provider's tokens of a session; `None` when the session has no
    /// link or its link predates migration 0013.
    fn oidc_tokens<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<OidcSessionTokens>, StoreError>>;

    /// Up to `limit` sessions whose re-check is due at `now` and that no
    /// instance holds (lease passed), the most overdue first. Only a
    /// candidate list: [`claim_oidc_recheck`](Self::claim_oidc_recheck)
    /// decides.
    fn oidc_rechecks_due<'a>(
        &'a self,
        now: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<[u8; 32]>, StoreError>>;

    /// Claims a session's re-check until `lease_until` with one
    /// conditional UPDATE: `true` for the one caller whose update found
    /// the lease passed at `now`, `false` for every other (another instance
    /// holds it, or the session ended).
    fn claim_oidc_recheck<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        now: i64,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Ends a claimed re-check and releases the lease: with `tokens`, the
    /// provider vouched (new tokens, `checked_at`, `next_check_at`);
    /// without, it could not be asked and only `next_check_at` moves
    /// (`checked_at` stays, for the grace). Fenced by the `lease_until` of
    /// the claim: `false` when the lease was lost (it expired and another
    /// instance claimed the row) or the session ended, and nothing is
    /// written.
    fn finish_oidc_recheck<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        lease_until: i64,
        tokens: Option<&'a OidcSessionTokens>,
        next_check_at: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Remembers a logout token's `jti` until `expires_at` (unix seconds);
    /// `false` when `(issuer, jti)` is already remembered: a replay
    /// (§2.6 point 7). Forgets the `jti`s past their time first.
    fn remember_logout_jti<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

fn link_from_row(row: &AnyRow) -> Result<OidcSessionLink, StoreError> {
    let hash: Vec<u8> = get(row, "session_hash")?;
    Ok(OidcSessionLink {
        session_hash: decode_hash("an OIDC session link", hash)?,
        issuer: get(row, "issuer")?,
        subject: get(row, "subject")?,
        sid: get(row, "sid")?,
        id_token: get(row, "id_token")?,
        created_at: get(row, "created_at")?,
    })
}

impl OidcLoginStore for SqlStore {
    fn put_pending_oidc_login<'a>(
        &'a self,
        login: &'a PendingOidcLogin,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM oidc_pending_logins WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_pending_logins \
                 (login_hash, state, nonce, verifier, return_to, expires_at, \
                  link_account_id, link_session_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&login.login_hash[..])
            .bind(&login.state)
            .bind(&login.nonce)
            .bind(&login.verifier)
            .bind(&login.return_to)
            .bind(login.expires_at)
            .bind(login.link.map(|(a, _)| a))
            .bind(login.link.map(|(_, h)| h.to_vec()))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "a login with this id already exists"))?;
            Ok(())
        })
    }

    fn take_pending_oidc_login<'a>(
        &'a self,
        login_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<PendingOidcLogin>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT login_hash, state, nonce, verifier, return_to, expires_at, \
                 link_account_id, link_session_hash \
                 FROM oidc_pending_logins WHERE login_hash = $1",
            )
            .bind(&login_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            // The DELETE decides who takes it: of two callbacks racing with
            // the same cookie, one deletes the row, the other gets None.
            let done = sqlx::query("DELETE FROM oidc_pending_logins WHERE login_hash = $1")
                .bind(&login_hash[..])
                .execute(&self.pool)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(None);
            }
            let hash: Vec<u8> = get(&row, "login_hash")?;
            let link_account: Option<i64> = get(&row, "link_account_id")?;
            let link_session: Option<Vec<u8>> = get(&row, "link_session_hash")?;
            // Both or neither: a half-written link is corrupt, never an
            // ordinary sign-in.
            let link = match (link_account, link_session) {
                (Some(a), Some(h)) => Some((a, decode_hash("a pending OIDC link", h)?)),
                (None, None) => None,
                _ => {
                    return Err(StoreError::Corrupt(
                        "a pending OIDC login with half a link".into(),
                    ));
                }
            };
            let login = PendingOidcLogin {
                link,
                login_hash: decode_hash("a pending OIDC login", hash)?,
                state: get(&row, "state")?,
                nonce: get(&row, "nonce")?,
                verifier: get(&row, "verifier")?,
                return_to: get(&row, "return_to")?,
                expires_at: get(&row, "expires_at")?,
            };
            Ok((now < login.expires_at).then_some(login))
        })
    }

    fn link_oidc_session<'a>(
        &'a self,
        link: &'a OidcSessionLink,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO oidc_login_sessions \
                 (session_hash, issuer, subject, sid, id_token, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&link.session_hash[..])
            .bind(&link.issuer)
            .bind(&link.subject)
            .bind(&link.sid)
            .bind(&link.id_token)
            .bind(link.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "this session is already linked"))?;
            Ok(())
        })
    }

    fn oidc_session_link<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<OidcSessionLink>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT session_hash, issuer, subject, sid, id_token, created_at \
                 FROM oidc_login_sessions WHERE session_hash = $1",
            )
            .bind(&session_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(link_from_row).transpose()
        })
    }

    fn oidc_sessions_named<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<[u8; 32]>, StoreError>> {
        Box::pin(async move {
            if sid.is_none() && subject.is_none() {
                return Ok(Vec::new());
            }
            // An absent one is bound as '' (never a stored sid or sub:
            // both are non-empty), which the query reads as "any".
            let rows = sqlx::query(
                "SELECT session_hash FROM oidc_login_sessions \
                 WHERE issuer = $1 AND ($2 = '' OR sid = $2) AND ($3 = '' OR subject = $3)",
            )
            .bind(issuer)
            .bind(sid.unwrap_or(""))
            .bind(subject.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| decode_hash("an OIDC session link", get(r, "session_hash")?))
                .collect()
        })
    }

    fn put_oidc_tokens<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        tokens: &'a OidcSessionTokens,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE oidc_login_sessions SET tokens_format = $2, tokens = $3, \
                 checked_at = $4, next_check_at = $5 WHERE session_hash = $1",
            )
            .bind(&session_hash[..])
            .bind(tokens.format.as_str())
            .bind(&tokens.tokens[..])
            .bind(tokens.checked_at)
            .bind(tokens.next_check_at)
            .execute(&self.pool)
            .await?;
            match done.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn oidc_tokens<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<OidcSessionTokens>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT tokens_format, tokens, checked_at, next_check_at \
                 FROM oidc_login_sessions WHERE session_hash = $1 AND tokens IS NOT NULL",
            )
            .bind(&session_hash[..])
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let format: String = get(&row, "tokens_format")?;
            Ok(Some(OidcSessionTokens {
                format: decode_private_format("of an OIDC session's tokens", &format)?,
                tokens: get(&row, "tokens")?,
                checked_at: get(&row, "checked_at")?,
                next_check_at: get(&row, "next_check_at")?,
            }))
        })
    }

    fn oidc_rechecks_due<'a>(
        &'a self,
        now: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<[u8; 32]>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT session_hash FROM oidc_login_sessions \
                 WHERE tokens IS NOT NULL AND next_check_at <= $1 AND lease_until <= $1 \
                 ORDER BY next_check_at LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| decode_hash("an OIDC session link", get(r, "session_hash")?))
                .collect()
        })
    }

    fn claim_oidc_recheck<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        now: i64,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // One statement: of instances racing for the row, the database
            // lets one update find the lease passed.
            let done = sqlx::query(
                "UPDATE oidc_login_sessions SET lease_until = $3 \
                 WHERE session_hash = $1 AND lease_until <= $2 AND tokens IS NOT NULL",
            )
            .bind(&session_hash[..])
            .bind(now)
            .bind(lease_until)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn finish_oidc_recheck<'a>(
        &'a self,
        session_hash: &'a [u8; 32],
        lease_until: i64,
        tokens: Option<&'a OidcSessionTokens>,
        next_check_at: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = match tokens {
                Some(t) => {
                    sqlx::query(
                        "UPDATE oidc_login_sessions SET tokens_format = $3, tokens = $4, \
                         checked_at = $5, next_check_at = $6, lease_until = 0 \
                         WHERE session_hash = $1 AND lease_until = $2",
                    )
                    .bind(&session_hash[..])
                    .bind(lease_until)
                    .bind(t.format.as_str())
                    .bind(&t.tokens[..])
                    .bind(t.checked_at)
                    .bind(t.next_check_at)
                    .execute(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(
                        "UPDATE oidc_login_sessions SET next_check_at = $3, lease_until = 0 \
                         WHERE session_hash = $1 AND lease_until = $2",
                    )
                    .bind(&session_hash[..])
                    .bind(lease_until)
                    .bind(next_check_at)
                    .execute(&self.pool)
                    .await?
                }
            };
            Ok(done.rows_affected() == 1)
        })
    }

    fn remember_logout_jti<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.remember_once(
            "DELETE FROM oidc_logout_jtis WHERE expires_at < $1",
            "INSERT INTO oidc_logout_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (issuer, jti) DO NOTHING",
            (issuer, jti, expires_at),
            now,
        ))
    }
}
