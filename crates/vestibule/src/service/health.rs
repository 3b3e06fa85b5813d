//! `/livez` and `/readyz` on the admin listener.
//!
//! `/livez` answers 200 while the process serves HTTP at all: a
//! supervisor restarts the process when it fails. `/readyz` answers 200
//! only when the gateway can do its work: with `[source.jwt]`, its signing
//! keys are loaded; when accounts are on, the database answers a cheap
//! query within [`READY_TIMEOUT`]; else 503,
//! so a load balancer sends requests elsewhere (restarting would not help).
//! `/healthz` stays what it was (the process answers) for existing probes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use crate::http::responses::plain;
use crate::state::AppState;

/// How long `/readyz` waits for the database. Shorter than the store's
/// pool acquire timeout, so a probe with a few seconds' budget gets an
/// answer rather than its own timeout.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /livez`.
pub async fn livez() -> Response {
    plain(StatusCode::OK, "alive")
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // Without its keys, a `[source.jwt]` gateway answers every assertion
    // 503 (see `identity::jwks`): not ready either.
    if let Some(crate::state::IdentityReader::Jwt { keys, .. }) = &state.identity_reader
        && keys.current().is_none()
    {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the assertion signing keys are not loaded",
        );
    }
    match store_ready(&state).await {
        Ok(()) => plain(StatusCode::OK, "ready"),
        Err(why) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready: {why}"),
        ),
    }
}

/// Whether the account store (if any) answers. The detail stays in the
/// log: the admin listener is for operators, but a database error can name
/// hosts, so the body only says which part is not ready.
async fn store_ready(state: &AppState) -> Result<(), &'static str> {
    let Some(accounts) = state.accounts() else {
        return Ok(());
    };
    let store = accounts.store();
    // The change feed already knows the database is gone: answer at once.
    if !store.reachable() {
        return Err("the database is unreachable");
    }
    // A primary-key lookup of an id that never exists: one round trip,
    // no rows, and it needs a pooled connection like every request does.
    match tokio::time::timeout(READY_TIMEOUT, store.account(0)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database query failed");
            Err("the database query failed")
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "readiness: the database did not answer in time");
            Err("the database did not answer in time")
        }
    }
}
