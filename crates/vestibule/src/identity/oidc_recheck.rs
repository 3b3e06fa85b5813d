//! Re-checking `[source.oidc]` sessions at the provider (issue 15): the
//! provider's tokens of each session, kept in the store (sealed with the
//! key-encryption key when one is configured, exactly like signing keys,
//! [`crate::keys::kek`]), and the re-check that ends a session the
//! provider no longer vouches for.
//!
//! A re-check refreshes the session's tokens (RFC 6749 §6, OIDC Core §12)
//! and keeps the rotated refresh token; a new ID token must pass core's
//! rules with the login's `sub` (§12.2). Without a refresh token it asks
//! userinfo with the access token, whose `sub` must match (§5.3.4).
//!
//! - **Refused** (`invalid_grant`, a 400 or 401, another `sub`, a token
//!   that fails its checks): the session ends at once through the store's
//!   one session-ending call, so the change feed tells every instance and
//!   the provider side queues its back-channel logouts.
//! - **Unreachable**: the session is kept until `recheck_grace` has passed
//!   since the provider last vouched for it, then ends.
//! - **Vouched with a new ID token**: its claims are what the provider
//!   holds now (§12.2). They go through the login's own rule
//!   ([`identity_of`]): refused (out of every `allowed_groups`, claims
//!   that no longer map) ends the session as above; otherwise changed
//!   attributes, groups above all, are written to the account
//!   ([`crate::accounts::Accounts::restate`]), and the change feed makes
//!   every instance use them.
//!
//! It runs on a schedule ([`spawn`], every `recheck_every`), each due
//! session claimed with a lease by one conditional UPDATE so two
//! instances never refresh the same session (a rotated refresh token used
//! twice would revoke its family, RFC 9700 §4.14.2), and synchronously
//! before a sensitive step ([`recheck_now`]: a device credential, a
//! pairing, a device-code approval).
//!
//! SSO freshness (`max_sso_age`) is not touched here, not even when
//! attributes are restated: a re-check is not the person being seen. The
//! account is seen when a request carries its live session
//! ([`crate::accounts::Accounts::resolve`]); once a re-check ends the
//! session nothing refreshes it, and device credentials lapse.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vestibule_core::oidc::{
    IdToken, IdTokenExpectations, OriginalLogin, verify_refreshed_id_token,
};
use vestibule_store::PrivateKeyFormat;
use vestibule_store::oidc_login::{OidcSessionLink, OidcSessionTokens};
use vestibule_store::{AuditEntry, Store, hex};

use crate::accounts::now_ms;
use crate::identity::oidc::{Asked, KeyedCheckError, Upstream, identity_of};
use crate::keys::kek::Kek;
use crate::state::AppState;

/// How long a claimed re-check holds its session: longer than a refresh
/// and a userinfo request with their timeouts, so a slow provider does
/// not let a second instance in.
const LEASE_MS: i64 = 60_000;
/// The most sessions looked at per round.
const BATCH: u32 = 100;
/// Re-checks in flight at once per instance. One at a time, a provider
/// 50 ms away re-checks about 1,500 sessions in 5 minutes (the default
/// `recheck_every`); eight at a time keeps up with tens of thousands
/// without looking like a flood to the provider.
const IN_FLIGHT: usize = 8;
/// The longest ID token read.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How long a sensitive step waits for a re-check another task holds.
const WAIT_FOR_LEASE: Duration = Duration::from_secs(5);

/// The provider's tokens of one session, as sealed in the store. Never
/// shown: every field but the times is a credential.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionTokens {
    /// The latest ID token: `id_token_hint` at logout.
    pub id_token: String,
    /// The refresh token, when the provider issued one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The latest access token: for userinfo without a refresh token.
    pub access_token: String,
    /// When the access token expires (unix ms), when the provider said.
    #[serde(default)]
    pub access_expires_at: Option<i64>,
    /// The login's nonce: a refreshed ID token carries it or none.
    pub nonce: String,
    /// The login's `auth_time`: a refreshed ID token carries the same.
    #[serde(default)]
    pub auth_time: Option<i64>,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("refresh_token", &self.refresh_token.is_some())
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// The additional authenticated data of a session's sealed tokens: the
/// session hash, so a sealed document copied into another row does not
/// open.
fn aad(session_hash: &[u8; 32]) -> String {
    format!("oidc-session:{}", hex(session_hash))
}

/// The stored form of `tokens`: sealed with `kek` when there is one.
pub fn seal(
    kek: Option<&Kek>,
    session_hash: &[u8; 32],
    tokens: &SessionTokens,
    checked_at: i64,
    next_check_at: i64,
) -> Result<OidcSessionTokens, String> {
    let plain = serde_json::to_vec(tokens).map_err(|e| e.to_string())?;
    let (format, tokens) = match kek {
        Some(k) => (
            PrivateKeyFormat::Aes256Gcm,
            k.seal(&aad(session_hash), &plain)?,
        ),
        None => (PrivateKeyFormat::Plain, plain),
    };
    Ok(OidcSessionTokens {
        format,
        tokens,
        checked_at,
        next_check_at,
    })
}

/// Opens what [`seal`] stored. Fails for a sealed row without the key, or
/// with another key, or moved to another session.
pub fn open(
    kek: Option<&Kek>,
    session_hash: &[u8; 32],
    stored: &OidcSessionTokens,
) -> Result<SessionTokens, String> {
    let plain = match (stored.format, kek) {
        (PrivateKeyFormat::Plain, _) => stored.tokens.clone(),
        (PrivateKeyFormat::Aes256Gcm, Some(k)) => k
            .open(&aad(session_hash), &stored.tokens)
            .map_err(|_| "a session's provider tokens do not open with the key-encryption key")?,
        (PrivateKeyFormat::Aes256Gcm, None) => {
            return Err(
                "a session's provider tokens are sealed, and no key-encryption key is configured"
                    .into(),
            );
        }
    };
    serde_json::from_slice(&plain).map_err(|_| "a session's provider tokens are unreadable".into())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The upstream of the `[source.oidc]` login, whether it is the source
/// or beside another one.
fn upstream(state: &AppState) -> Option<&Arc<Upstream>> {
    state.oidc_upstream()
}

/// Records a login's tokens with its new session (the callback): the
/// provider vouched just now, the first re-check is due `recheck_every`
/// later.
pub async fn store_login_tokens(
    upstream: &Upstream,
    store: &dyn Store,
    session_hash: &[u8; 32],
    tokens: &SessionTokens,
    now: i64,
) -> Result<(), String> {
    let next = now.saturating_add(ms(upstream.settings().recheck_every));
    let stored = seal(upstream.kek(), session_hash, tokens, now, next)?;
    store
        .put_oidc_tokens(session_hash, &stored)
        .await
        .map_err(|e| e.to_string())
}

/// The ID token of a session for `id_token_hint`: from its sealed tokens,
/// or the plaintext column of a row written before they were kept.
pub async fn id_token_hint(
    upstream: &Upstream,
    store: &dyn Store,
    link: &OidcSessionLink,
) -> Option<String> {
    if !link.id_token.is_empty() {
        return Some(link.id_token.clone());
    }
    let stored = store.oidc_tokens(&link.session_hash).await.ok()??;
    open(upstream.kek(), &link.session_hash, &stored)
        .ok()
        .map(|t| t.id_token)
}

/// Asks the provider about one session: its new tokens when it vouches.
async fn ask(
    upstream: &Upstream,
    keys: Option<&crate::keys::KeyRing>,
    link: &OidcSessionLink,
    old: SessionTokens,
) -> Asked<(SessionTokens, Option<IdToken>)> {
    let now = now_ms();
    let Some(refresh_token) = old.refresh_token.clone() else {
        return match upstream.userinfo(&old.access_token, &link.subject).await {
            Asked::Vouched(()) => Asked::Vouched((old, None)),
            Asked::Refused(why) => Asked::Refused(why),
            Asked::Unreachable(why) => Asked::Unreachable(why),
        };
    };
    let answer = match upstream.refresh(&refresh_token, keys).await {
        Asked::Vouched(a) => a,
        Asked::Refused(why) => return Asked::Refused(why),
        Asked::Unreachable(why) => return Asked::Unreachable(why),
    };
    let settings = upstream.settings();
    let (id_token, refreshed) = match answer.id_token {
        Some(token) => {
            let expect = IdTokenExpectations {
                issuer: &settings.issuer,
                client_id: &settings.client_id,
                trusted_audiences: &[],
                algorithms: &settings.algorithms,
                nonce: &old.nonce,
                access_token: Some(&answer.access_token),
                now: now / 1000,
                leeway: settings.leeway_secs,
                max_age: 600,
                max_token_bytes: MAX_TOKEN_BYTES,
            };
            let original = OriginalLogin {
                subject: &link.subject,
                auth_time: old.auth_time,
            };
            // A provider that answers with a token failing the checks (a
            // key of someone else, another subject) no longer vouches.
            match upstream
                .verify_with_keys(|keys| {
                    verify_refreshed_id_token(&token, keys, &expect, &original)
                })
                .await
            {
                Ok(verified) => (token, Some(verified)),
                // Keys out of reach say nothing of the token: the grace
                // applies, as for a provider out of reach.
                Err(e @ KeyedCheckError::NoKeys(_)) => return Asked::Unreachable(e.to_string()),
                Err(e @ KeyedCheckError::Refused(_)) => {
                    return Asked::Refused(format!("the refreshed ID token: {e}"));
                }
            }
        }
        None => (old.id_token, None),
    };
    let tokens = SessionTokens {
        id_token,
        // RFC 6749 §6: without a new one the old one stays valid.
        refresh_token: answer.refresh_token.or(old.refresh_token),
        access_token: answer.access_token,
        access_expires_at: answer
            .expires_in
            .map(|s| now.saturating_add(s.saturating_mul(1000))),
        nonce: old.nonce,
        auth_time: old.auth_time,
    };
    Asked::Vouched((tokens, refreshed))
}

/// Applies what a refreshed ID token states now (OIDC Core §12.2) to the
/// session's account: mapped and checked by the login's own rule
/// ([`identity_of`]), so a person the login would refuse (claims that no
/// longer map, out of every `allowed_groups`) is refused here too, and
/// changed attributes (groups above all) are written
/// ([`crate::accounts::Accounts::restate`]).
async fn restate(
    state: &AppState,
    upstream: &Upstream,
    store: &dyn Store,
    session_hash: &[u8; 32],
    id_token: &IdToken,
) -> Result<(), NotRestated> {
    let identity = identity_of(upstream.settings(), id_token)
        .map_err(|e| NotRestated::Refused(e.to_string()))?;
    let Some(accounts) = state.accounts() else {
        return Ok(());
    };
    let session = store.session(session_hash).await.map_err(|e| {
        tracing::warn!(error = %e, "a re-checked session could not be read");
        NotRestated::StoreFailed
    })?;
    let Some(session) = session else {
        return Ok(());
    };
    match accounts.restate(session.account_id, &identity).await {
        Ok(changed) => {
            if changed {
                tracing::info!(
                    account = session.account_id,
                    "the OpenID provider restated the account's attributes at a re-check"
                );
            }
            Ok(())
        }
        Err(vestibule_store::StoreError::NotFound) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "the attributes of a re-checked session's account could not be written");
            Err(NotRestated::StoreFailed)
        }
    }
}

/// Why [`restate`] did not apply a refreshed ID token.
enum NotRestated {
    /// The login's rule refuses the person now: the session must end.
    Refused(String),
    /// The store failed: tried again at the next re-check.
    StoreFailed,
}

/// What a re-check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider vouched; the session lives on (with new tokens).
    Kept,
    /// The provider could not be asked, and the grace has not passed.
    Deferred,
    /// The session ended (refused, or the grace passed), or was gone.
    Ended,
    /// The lease was lost to another instance: nothing was written.
    Lost,
}

fn count(state: &AppState, outcome: &'static str) {
    state
        .metrics
        .oidc_login_rechecks
        .get_or_create(&crate::metrics::RecheckLabels { outcome })
        .inc();
}

/// Ends a session the provider no longer vouches for, through the store's
/// session-ending call, and audits it.
async fn end(store: &dyn Store, link: &OidcSessionLink, outcome: &str, why: &str) {
    let ended = match store.revoke_session(&link.session_hash).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "a session the OpenID provider refused could not be ended");
            return;
        }
    };
    tracing::info!(issuer = %link.issuer, subject = %link.subject, reason = %why, "an OIDC session ended at its re-check");
    let who = format!("{}:{}", link.issuer, link.subject);
    let entry = AuditEntry::new(now_ms(), "vestibule", "oidc-recheck", who)
        .with_outcome(outcome)
        .with_detail(if ended {
            format!("session ended: {why}")
        } else {
            format!("session already gone: {why}")
        });
    crate::accounts::record_audit(store, &entry).await;
}

/// The re-check of a session this caller claimed until `lease_until`.
pub async fn recheck_claimed(
    state: &AppState,
    upstream: &Upstream,
    store: &dyn Store,
    session_hash: &[u8; 32],
    lease_until: i64,
) -> Result<Outcome, String> {
    let settings = upstream.settings();
    let (Some(link), Some(stored)) = (
        store
            .oidc_session_link(session_hash)
            .await
            .map_err(|e| e.to_string())?,
        store
            .oidc_tokens(session_hash)
            .await
            .map_err(|e| e.to_string())?,
    ) else {
        return Ok(Outcome::Ended);
    };
    let asked = match open(upstream.kek(), session_hash, &stored) {
        Ok(tokens) => ask(upstream, state.signing_keys.as_deref(), &link, tokens).await,
        // Tokens that do not open cannot be re-checked: fail closed.
        Err(e) => Asked::Refused(e),
    };
    let now = now_ms();
    let next = now.saturating_add(ms(settings.recheck_every));
    match asked {
        Asked::Vouched((tokens, refreshed)) => {
            if let Some(id_token) = &refreshed {
                match restate(state, upstream, store, session_hash, id_token).await {
                    Ok(()) => {}
                    Err(NotRestated::Refused(why)) => {
                        count(state, "refused");
                        let why = format!("the provider's claims now: {why}");
                        end(store, &link, "ended", &why).await;
                        return Ok(Outcome::Ended);
                    }
                    // The tokens are still written below: the refresh
                    // token rotated at the provider must not be lost.
                    Err(NotRestated::StoreFailed) => {}
                }
            }
            let sealed = seal(upstream.kek(), session_hash, &tokens, now, next)?;
            let kept = store
                .finish_oidc_recheck(session_hash, lease_until, Some(&sealed), next)
                .await
                .map_err(|e| e.to_string())?;
            count(state, "vouched");
            Ok(if kept { Outcome::Kept } else { Outcome::Lost })
        }
        Asked::Refused(why) => {
            count(state, "refused");
            end(
                store,
                &link,
                "ended",
                &format!("the provider refused: {why}"),
            )
            .await;
            Ok(Outcome::Ended)
        }
        Asked::Unreachable(why) => {
            if now.saturating_sub(stored.checked_at) > ms(settings.recheck_grace) {
                count(state, "expired");
                let why = format!(
                    "the provider has not vouched for it within recheck_grace ({}s): {why}",
                    settings.recheck_grace.as_secs()
                );
                end(store, &link, "failed", &why).await;
                return Ok(Outcome::Ended);
            }
            count(state, "unreachable");
            tracing::warn!(error = %why, "the OpenID provider could not re-check a session; kept within recheck_grace");
            let kept = store
                .finish_oidc_recheck(session_hash, lease_until, None, next)
                .await
                .map_err(|e| e.to_string())?;
            Ok(if kept {
                Outcome::Deferred
            } else {
                Outcome::Lost
            })
        }
    }
}

/// Why a sensitive step may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRefused {
    /// The provider refused: the session has ended.
    Ended,
    /// The provider could not be asked (or the store): try again later.
    Unavailable,
}

/// Re-checks the session `session_hash` now, before a sensitive step
/// (creating a device credential, a pairing, approving a device code).
/// `Ok` for a session that is not an OIDC login's, or one whose row
/// predates stored tokens (nothing to re-check with), or that the provider
/// vouched for just now.
pub async fn recheck_now(state: &AppState, session_hash: &[u8; 32]) -> Result<(), StepRefused> {
    let (Some(upstream), Some(accounts)) = (upstream(state), state.accounts()) else {
        return Ok(());
    };
    let store = accounts.store();
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "a session could not be re-checked before a sensitive step");
        StepRefused::Unavailable
    };
    let deadline = tokio::time::Instant::now() + WAIT_FOR_LEASE;
    loop {
        if store
            .oidc_tokens(session_hash)
            .await
            .map_err(|e| failed(&e))?
            .is_none()
        {
            return match store.oidc_session_link(session_hash).await {
                // A row from before tokens were kept: nothing to ask with.
                Ok(Some(_)) => Ok(()),
                // Not an OIDC session, or one that just ended: the caller's
                // session check decides.
                Ok(None) => match store.session(session_hash).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(StepRefused::Ended),
                    Err(e) => Err(failed(&e)),
                },
                Err(e) => Err(failed(&e)),
            };
        }
        let now = now_ms();
        let lease = now.saturating_add(LEASE_MS);
        if store
            .claim_oidc_recheck(session_hash, now, lease)
            .await
            .map_err(|e| failed(&e))?
        {
            return match recheck_claimed(state, upstream, &**store, session_hash, lease).await {
                Ok(Outcome::Kept) => Ok(()),
                Ok(Outcome::Ended) => Err(StepRefused::Ended),
                Ok(Outcome::Deferred | Outcome::Lost) => Err(StepRefused::Unavailable),
                Err(e) => Err(failed(&e)),
            };
        }
        // Another re-check holds it (the scheduled one, or another
        // instance's): wait for its end, then check again ourselves.
        if tokio::time::Instant::now() >= deadline {
            return Err(StepRefused::Unavailable);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One round of the schedule: up to [`BATCH`] due sessions, [`IN_FLIGHT`] at a time.
/// Returns (due, claimed): a full batch of which some were claimed means
/// more may be due, and the next round starts at once.
async fn round(
    state: &AppState,
    upstream: &Upstream,
    store: &dyn Store,
) -> Result<(usize, usize), String> {
    use futures_util::StreamExt as _;
    let now = now_ms();
    let due = store
        .oidc_rechecks_due(now, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let n = due.len();
    let claimed = std::sync::atomic::AtomicUsize::new(0);
    futures_util::stream::iter(due)
        .for_each_concurrent(IN_FLIGHT, |hash| {
            let claimed = &claimed;
            async move {
                let now = now_ms();
                let lease = now.saturating_add(LEASE_MS);
                // Of instances looking at the same due row, one claims it.
                match store.claim_oidc_recheck(&hash, now, lease).await {
                    Ok(true) => {
                        claimed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Err(e) = recheck_claimed(state, upstream, store, &hash, lease).await
                        {
                            tracing::warn!(error = %e, "a session re-check failed");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "a session re-check could not be claimed"),
                }
            }
        })
        .await;
    Ok((n, claimed.into_inner()))
}

/// Starts the re-check schedule, one task per instance, when the source
/// is `[source.oidc]` with `[accounts]`.
pub fn spawn(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let upstream = upstream(&state)?.clone();
    let store = state.accounts()?.store().clone();
    // Due rows are looked for at least every 15 s, so a session is
    // re-checked close to its time whatever `recheck_every` is.
    let tick = upstream
        .settings()
        .recheck_every
        .min(Duration::from_secs(15));
    Some(tokio::spawn(async move {
        loop {
            match round(&state, &upstream, &*store).await {
                // Behind: more sessions are due than one round takes.
                Ok((due, claimed)) if due == BATCH as usize && claimed > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the OIDC session re-checks could not be read");
                }
            }
            tokio::time::sleep(tick).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> SessionTokens {
        SessionTokens {
            id_token: "eyJ.id.token".into(),
            refresh_token: Some("refresh-secret-value".into()),
            access_token: "access-secret-value".into(),
            access_expires_at: Some(5),
            nonce: "nonce-value".into(),
            auth_time: Some(1),
        }
    }

    #[test]
    fn sealed_tokens_hold_no_plaintext_and_open_only_for_their_session() {
        let kek = Kek::from_bytes(&[7; 32]).unwrap();
        let sealed = seal(Some(&kek), &[1; 32], &tokens(), 10, 20).unwrap();
        assert_eq!(sealed.format, PrivateKeyFormat::Aes256Gcm);
        for secret in [
            "refresh-secret-value",
            "access-secret-value",
            "eyJ.id.token",
        ] {
            assert!(
                !sealed
                    .tokens
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes())
            );
        }
        let back = open(Some(&kek), &[1; 32], &sealed).unwrap();
        assert_eq!(back.refresh_token.as_deref(), Some("refresh-secret-value"));
        assert!(
            open(Some(&kek), &[2; 32], &sealed).is_err(),
            "another session"
        );
        assert!(open(None, &[1; 32], &sealed).is_err(), "no key");
        let other = Kek::from_bytes(&[8; 32]).unwrap();
        assert!(
            open(Some(&other), &[1; 32], &sealed).is_err(),
            "another key"
        );
        // Without a key they are stored plain, and still open once a key
        // is configured.
        let plain = seal(None, &[1; 32], &tokens(), 10, 20).unwrap();
        assert_eq!(plain.format, PrivateKeyFormat::Plain);
        assert_eq!(
            open(Some(&kek), &[1; 32], &plain).unwrap().access_token,
            "access-secret-value"
        );
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", tokens());
        for secret in [
            "refresh-secret-value",
            "access-secret-value",
            "eyJ",
            "nonce-value",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
