//! Step 3: who the request is from.
//!
//! Only a trusted peer's identity headers are read. An untrusted peer's are
//! ignored (and stripped later, like everyone's), counted, and logged at a
//! rate-limited warning: they are either a misconfigured front or an attack.

use http::HeaderMap;
use vestibule_core::dialect::IdentityError;
use vestibule_core::identity::Identity;

use crate::client_identity::ClientContext;
use crate::state::AppState;

/// Authenticates a request from its headers.
pub fn authenticate(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
) -> Result<Option<Identity>, IdentityError> {
    let Some(source) = &state.settings.header_source else {
        return Ok(None);
    };
    let counters = &state.header_auth;
    if !ctx.trusted_for_identity {
        note_spoof_attempt(state, ctx, headers);
        counters.anonymous.inc();
        return Ok(None);
    }
    let result = source.dialect.extract(headers, &source.limits);
    match &result {
        Ok(Some(_)) => counters.authenticated.inc(),
        Ok(None) => counters.anonymous.inc(),
        Err(_) => counters.rejected.inc(),
    };
    result
}

fn note_spoof_attempt(state: &AppState, ctx: &ClientContext, headers: &HeaderMap) {
    let ids = &state.settings.identity_headers;
    // A device credential header is expected from anyone, trusted or not.
    let is_credential = |n: &http::HeaderName| {
        state
            .settings
            .routes
            .iter()
            .any(|r| r.carriers.header.as_ref() == Some(n))
    };
    let mut names = headers
        .keys()
        .filter(|n| ids.contains(n.as_str()) && !is_credential(n))
        .peekable();
    if names.peek().is_none() {
        return;
    }
    let names: Vec<&str> = names.map(|n| n.as_str()).collect();
    state
        .metrics
        .spoofed_headers_stripped
        .inc_by(names.len() as u64);
    if let Some(suppressed) = state.spoof_log.check() {
        tracing::warn!(
            peer = ?ctx.peer,
            client_ip = ?ctx.client_ip,
            headers = ?names,
            suppressed_since_last = suppressed,
            "identity headers from an untrusted peer were ignored and stripped"
        );
        // The audit log gets the same rate-limited line, written behind the
        // request.
        if let Some(accounts) = &state.accounts {
            let store = accounts.store().clone();
            let entry = vestibule_store::AuditEntry {
                at: crate::accounts::now_ms(),
                actor: format!("{:?}", ctx.peer),
                action: "spoof-attempt".into(),
                subject: names.join(","),
                client_ip: ctx.client_ip.map(|i| i.to_string()),
                outcome: "stripped".into(),
                detail: format!("{suppressed} more since the last entry"),
            };
            tokio::spawn(async move {
                if let Err(e) = store.append_audit(&entry).await {
                    tracing::warn!(error = %e, "could not write the audit log");
                }
            });
        }
    }
}
