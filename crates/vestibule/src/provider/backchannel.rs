//! OpenID Connect Back-Channel Logout 1.0, the provider's side: the logout
//! token (§2.4) and its delivery (§2.5).
//!
//! ## What is sent, and when
//!
//! The store queues one notification per grant when the vestibule session
//! the grant came from ends (logout, an admin revoking sessions, a
//! disabled or deleted account, expiry) or when the grant itself is
//! revoked (the Apps page), in the transaction that ends it, and kills
//! the grant's tokens there too (`vestibule_store::provider`,
//! `backchannel_sql.rs`). This module only delivers:
//!
//! - [`spawn_sender`] runs on every instance. It claims due rows (a lease,
//!   so one row goes to one instance at a time), mints a fresh logout
//!   token for each attempt (a new `jti` and `iat`), and POSTs it as
//!   `application/x-www-form-urlencoded` `logout_token=…` to the client's
//!   `backchannel_logout_uri` (§2.5), with [`POST_TIMEOUT`], no redirect
//!   followed.
//! - A 2xx answer deletes the row (§2.8 asks the RP for 200; any 2xx is
//!   taken as done). Anything else is retried on the schedule of
//!   `vestibule_core::backchannel_delivery`, until it gives up 24 h after
//!   the logout. Each outcome is audited (`backchannel-logout`: `sent`,
//!   `failed`, `gave-up`) and counted
//!   (`vestibule_oidc_backchannel_logouts_total`).
//! - A row whose client no longer exists or has no
//!   `backchannel_logout_uri` is dropped (logged at debug): the store
//!   queues for every grant, since it does not know the file's clients.
//! - The sender wakes on the store's change feed (every revoked grant
//!   publishes `Change::Grant`, from this instance or another) and at
//!   least every [`POLL_EVERY`], or when the earliest retry is due, so
//!   rows queued by another instance or before a crash are sent too.
//!
//! The token is never logged nor stored.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use vestibule_core::backchannel_delivery::{AfterFailure, after_failure};
use vestibule_store::provider::BackchannelLogout;
use vestibule_store::{AuditEntry, Change};

use serde_json::{Map, Value, json};
use vestibule_core::oidc::BACKCHANNEL_LOGOUT_EVENT;
use vestibule_jose::Algorithm;

use crate::keys::KeyRing;
use crate::metrics::BackchannelLabels;
use crate::state::AppState;

/// How long one delivery may take (connect, TLS, answer).
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed row is this sender's: longer than a delivery can
/// take, so a row is never sent twice at once; a sender that dies holding
/// it leaves it to another after this.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the outbox is looked at when nothing wakes the sender.
pub const POLL_EVERY: Duration = Duration::from_secs(30);
/// Rows claimed at a time.
const BATCH: u32 = 16;

/// The JWS `typ` of a logout token (§2.4: explicit typing, RFC 8725
/// §3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// How long a logout token is valid: §2.4 recommends at most two minutes.
pub const LOGOUT_TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// A logout token for `client_id` about the account `subject` and the
/// vestibule session whose `sid` is `sid` (both always, so an RP keyed by
/// either finds its session), signed with the client's ID-token
/// algorithm. Minted afresh for each delivery attempt (a new `jti`,
/// `iat` now), never with a `nonce` (§2.4: it would make it pass for an
/// ID token).
pub fn mint_logout_token(
    keys: &KeyRing,
    alg: Algorithm,
    issuer: &str,
    client_id: &str,
    subject: &str,
    sid: &str,
    now: i64,
) -> Result<String, String> {
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("aud".into(), client_id.into());
    claims.insert("iat".into(), now.into());
    let lifetime = i64::try_from(LOGOUT_TOKEN_LIFETIME.as_secs()).unwrap_or(120);
    claims.insert("exp".into(), (now + lifetime).into());
    claims.insert("jti".into(), super::random_token("").into());
    claims.insert("sub".into(), subject.into());
    claims.insert("sid".into(), sid.into());
    claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    super::id_token::sign(keys, alg, LOGOUT_TOKEN_TYP, &Value::Object(claims))
}

/// Starts the sender (see the module documentation); it runs until
/// aborted. `None` without a provider or signing keys.
pub fn spawn_sender(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    state.provider.as_ref()?;
    state.signing_keys.as_ref()?;
    let tls = match crate::config::client_tls(None) {
        Ok(c) => tokio_rustls::TlsConnector::from(Arc::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "no TLS roots: back-channel logouts cannot be sent");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let Some(p) = state.provider.clone() else {
            return;
        };
        // Subscribed before the first look: nothing queued after it is
        // missed.
        let mut changes = p.store.subscribe();
        loop {
            let now = crate::accounts::now_ms();
            if let Err(e) = send_due(&state, &tls, now).await {
                tracing::warn!(error = %e, "could not read the back-channel logout outbox");
            }
            let poll = i64::try_from(POLL_EVERY.as_millis()).unwrap_or(30_000);
            let wait = match p.store.next_backchannel_logout_at().await {
                Ok(Some(at)) => (at - crate::accounts::now_ms()).clamp(0, poll),
                _ => poll,
            };
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    got = changes.recv() => match got {
                        // A revoked grant (here or at another instance)
                        // queued a row; a lost or resynced feed may have.
                        Ok(Change::Grant(_) | Change::Resync)
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }))
}

/// Sends every row due at `now`, a batch at a time.
async fn send_due(
    state: &AppState,
    tls: &tokio_rustls::TlsConnector,
    now: i64,
) -> Result<(), vestibule_store::StoreError> {
    let Some(p) = &state.provider else {
        return Ok(());
    };
    let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(60_000);
    loop {
        let lease = super::random_token("");
        let rows = p
            .store
            .claim_backchannel_logouts(now, &lease, now + lease_ms, BATCH)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let sends = rows.iter().map(|row| deliver(state, tls, row, &lease));
        futures_util::future::join_all(sends).await;
    }
}

/// One attempt for one claimed row, and its bookkeeping.
async fn deliver(
    state: &AppState,
    tls: &tokio_rustls::TlsConnector,
    row: &BackchannelLogout,
    lease: &str,
) {
    let (Some(p), Some(keys)) = (&state.provider, &state.signing_keys) else {
        return;
    };
    let store = p.store.as_ref();
    let count = |outcome| {
        state
            .metrics
            .oidc_backchannel_logouts
            .get_or_create(&BackchannelLabels { outcome })
            .inc();
    };
    let client = match p.clients.find(store, &row.client_id).await {
        Ok(c) => c,
        Err(e) => {
            // The lease lapses and the row is tried again.
            tracing::warn!(error = %e, client_id = %row.client_id, "could not read a client for a back-channel logout");
            return;
        }
    };
    let target = client
        .as_ref()
        .and_then(|c| c.backchannel_logout_uri.clone().map(|u| (c, u)));
    let Some((client, uri)) = target else {
        tracing::debug!(client_id = %row.client_id, grant = row.grant_id, "no back-channel logout URI for this client; the notification is dropped");
        let _ = store.finish_backchannel_logout(row.id, lease).await;
        count("dropped");
        return;
    };
    let attempt = row.attempts.saturating_add(1);
    let result = post(state, keys, tls, client.id_token_alg.jose(), row, &uri).await;
    let now = crate::accounts::now_ms();
    let audit = |outcome: &str, detail: String| {
        AuditEntry::new(now, "system", "backchannel-logout", row.client_id.clone())
            .with_outcome(outcome)
            .with_detail(detail)
    };
    let entry = match result {
        Ok(()) => {
            let _ = store.finish_backchannel_logout(row.id, lease).await;
            count("sent");
            audit(
                "sent",
                format!(
                    "grant {}, account {}, attempt {attempt}",
                    row.grant_id, row.account_id
                ),
            )
        }
        Err(error) => match after_failure(row.created_at, attempt, now) {
            AfterFailure::RetryAt(at) => {
                let _ = store
                    .retry_backchannel_logout(row.id, lease, at, &error)
                    .await;
                count("failed");
                tracing::info!(client_id = %row.client_id, attempt, %error, retry_in_ms = at - now, "back-channel logout failed; it will be retried");
                audit(
                    "failed",
                    format!(
                        "grant {}, account {}, attempt {attempt}: {error}",
                        row.grant_id, row.account_id
                    ),
                )
            }
            AfterFailure::GiveUp => {
                let _ = store.finish_backchannel_logout(row.id, lease).await;
                count("gave_up");
                tracing::warn!(client_id = %row.client_id, attempt, %error, "back-channel logout given up");
                audit(
                    "gave-up",
                    format!(
                        "grant {}, account {}, attempt {attempt}: {error}",
                        row.grant_id, row.account_id
                    ),
                )
            }
        },
    };
    crate::accounts::record_audit(store, &entry).await;
}

/// Mints a fresh logout token and POSTs it (§2.5); `Err` says why it was
/// not accepted (never containing the token).
async fn post(
    state: &AppState,
    keys: &KeyRing,
    tls: &tokio_rustls::TlsConnector,
    alg: Algorithm,
    row: &BackchannelLogout,
    uri: &str,
) -> Result<(), String> {
    let Some(p) = &state.provider else {
        return Err("no provider".into());
    };
    let url: http::Uri = uri
        .parse()
        .map_err(|_| "the URI does not parse".to_owned())?;
    let token = mint_logout_token(
        keys,
        alg,
        &p.issuer,
        &row.client_id,
        &super::id_token::subject(row.account_id),
        &super::id_token::sid(&row.session_ref),
        crate::accounts::now_ms() / 1000,
    )?;
    let body = format!(
        "logout_token={}",
        percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
    );
    let request = http::Request::post(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::USER_AGENT, "vestibule")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(
        POST_TIMEOUT,
        crate::identity::jwks::request_once(&url, tls, request),
    )
    .await
    .map_err(|_| format!("no answer within {} s", POST_TIMEOUT.as_secs()))??;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}
