//! Step 3: who the request is from.
//!
//! Only a trusted peer's identity headers are read. An untrusted peer's are
//! ignored (and stripped later, like everyone's), counted, and logged at a
//! rate-limited warning: they are either a misconfigured front or an attack.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use vestibule_core::dialect::{IdentityError, ValueLimits};
use vestibule_core::identity::Identity;
use vestibule_core::jwt::{self, AssertionHeaderError, Expectations, JwtError};

use crate::identity::cache::Entry;
use crate::identity::client_identity::ClientContext;
use crate::identity::jwks::SigningKeys;
use crate::state::{AppState, IdentityReader};

/// Why a trusted peer's identity was not accepted.
#[derive(Debug, Clone)]
pub enum SourceError {
    /// Identity headers that are ambiguous or malformed: 400.
    Headers(IdentityError),
    /// An assertion that does not verify (signature, issuer, audience,
    /// expiry...): 401.
    Assertion(JwtError),
    /// Assertions are configured but no signing key could be loaded yet,
    /// or the store holding OIDC sessions cannot be read: 503 (fail
    /// closed).
    KeysUnavailable,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Headers(e) => e.fmt(f),
            Self::Assertion(e) => write!(f, "the identity assertion was refused: {e}"),
            Self::KeysUnavailable => f.write_str("the assertion signing keys are not loaded yet"),
        }
    }
}

/// An identity as [`authenticate_shared`] gives it.
// Unboxed on purpose: a box would be one more allocation per request for
// the sources read afresh, and the value is moved twice at most.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Authenticated {
    /// From the identity cache of `[source.headers]`: shared, with its
    /// account keys and renderings.
    Cached(Arc<Entry>),
    /// Read for this request alone (an assertion, an OIDC session).
    Fresh(Identity),
}

impl Authenticated {
    /// The identity.
    pub fn identity(&self) -> &Identity {
        match self {
            Self::Cached(e) => &e.identity,
            Self::Fresh(id) => id,
        }
    }

    /// The identity, owned (a copy when it is cached).
    pub fn into_identity(self) -> Identity {
        match self {
            Self::Cached(e) => (*e.identity).clone(),
            Self::Fresh(id) => id,
        }
    }
}

/// Authenticates a request from its headers.
pub async fn authenticate(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
) -> Result<Option<Identity>, SourceError> {
    authenticate_shared(state, ctx, headers)
        .await
        .map(|a| a.map(Authenticated::into_identity))
}

/// [`authenticate`], with the identity shared when it comes from the
/// identity cache: the per-request path, which then copies nothing.
pub async fn authenticate_shared(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, SourceError> {
    let fresh = |r: Result<Option<Identity>, SourceError>| r.map(|o| o.map(Authenticated::Fresh));
    let Some(reader) = &state.identity_reader else {
        return Ok(None);
    };
    let counters = &state.header_auth;
    // The OIDC login's identity is the browser's own session cookie, from
    // anyone: no front vouches for it.
    if let IdentityReader::Oidc { upstream } = reader {
        // Boxed, as every path below that reads an identity afresh: their
        // futures are large (store and HTTP calls), and inline they would
        // grow the decision's own future, moved on every request, the
        // identity cache's hits included (issue 17). These paths allocate
        // the identity anyway.
        let result = Box::pin(crate::web::oidc_login::session_identity(
            state, ctx, headers, upstream,
        ))
        .await;
        match &result {
            Ok(Some(_)) => counters.authenticated.inc(),
            Ok(None) => counters.anonymous.inc(),
            Err(_) => counters.rejected.inc(),
        };
        return fresh(result);
    }
    // The trust decision comes first, on every request: the cache below
    // is never consulted for a peer that may not send identity headers.
    if !ctx.trusted_for_identity {
        note_spoof_attempt(state, ctx, headers);
        return fresh(Box::pin(second_oidc(state, ctx, headers)).await);
    }
    let result = match reader {
        IdentityReader::Headers {
            dialect,
            limits,
            cache,
        } => cache
            .extract(dialect, limits, headers)
            .map(|e| e.map(Authenticated::Cached))
            .map_err(SourceError::Headers),
        IdentityReader::Jwt { keys, limits } => {
            fresh(Box::pin(read_assertion(keys, headers, limits)).await)
        }
        IdentityReader::Oidc { .. } => Ok(None),
    };
    match result {
        // The front vouches for nobody: with `[source.oidc]` beside it, the
        // browser's own OIDC session may. The front's identity, when it
        // sends one, comes first: the front authenticated this request.
        Ok(None) => fresh(Box::pin(second_oidc(state, ctx, headers)).await),
        other => {
            match &other {
                Ok(_) => counters.authenticated.inc(),
                Err(_) => counters.rejected.inc(),
            };
            other
        }
    }
}

/// The session of `[source.oidc]` when it is the second source, counted;
/// `Ok(None)` without one.
async fn second_oidc(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
) -> Result<Option<Identity>, SourceError> {
    let counters = &state.header_auth;
    let result = match &state.also_oidc {
        Some(upstream) => {
            crate::web::oidc_login::session_identity(state, ctx, headers, upstream).await
        }
        None => Ok(None),
    };
    match &result {
        Ok(Some(_)) => counters.authenticated.inc(),
        Ok(None) => counters.anonymous.inc(),
        Err(_) => counters.rejected.inc(),
    };
    result
}

/// Reads and verifies the assertion header, if there is one.
async fn read_assertion(
    keys: &SigningKeys,
    headers: &HeaderMap,
    limits: &ValueLimits,
) -> Result<Option<Identity>, SourceError> {
    let settings = keys.settings();
    let token = match jwt::assertion_in(headers, settings.header.as_str()) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(None),
        Err(AssertionHeaderError::Ambiguous) => {
            return Err(SourceError::Headers(IdentityError::Ambiguous {
                header: settings.header.as_str().to_owned(),
            }));
        }
        Err(AssertionHeaderError::NotAscii) => {
            return Err(SourceError::Assertion(JwtError::Malformed("not ASCII")));
        }
    };
    let now = crate::accounts::now_ms() / 1000;
    let token_hash = vestibule_core::secret::hash_token(token);
    if let Some(identity) = keys.remembered(&token_hash, now) {
        return Ok(Some(identity));
    }
    let expect = Expectations {
        issuer: &settings.issuer,
        audiences: &settings.audiences,
        algorithms: &settings.algorithms,
        now,
        leeway: settings.leeway_secs,
        max_token_bytes: MAX_ASSERTION_BYTES,
    };
    let (jwks, mut generation) = keys.current().ok_or(SourceError::KeysUnavailable)?;
    let claims = match jwt::verify(token, &jwks, &expect) {
        // A key id we do not know is how a rotation shows up: fetch once
        // (rate limited), then verify again.
        Err(JwtError::UnknownKey { kid: Some(_) }) if keys.refetch_for_unknown_key().await => {
            let jwks;
            (jwks, generation) = keys.current().ok_or(SourceError::KeysUnavailable)?;
            jwt::verify(token, &jwks, &expect)
        }
        verified => verified,
    }
    .map_err(SourceError::Assertion)?;
    let identity = jwt::identity_from_claims(
        &claims,
        &settings.mapping,
        &settings.issuer,
        limits.max_value_len,
        limits.max_groups_len,
    )
    .map_err(SourceError::Assertion)?;
    keys.remember(
        token_hash,
        &identity,
        claims.expires_at.saturating_add(settings.leeway_secs),
        now,
        generation,
    );
    Ok(Some(identity))
}

/// The largest assertion read; the front's header limits are usually 8 KiB.
const MAX_ASSERTION_BYTES: usize = 16 * 1024;

fn note_spoof_attempt(state: &AppState, ctx: &ClientContext, headers: &HeaderMap) {
    // A fresh snapshot: this only counts and logs spoof attempts, and the
    // request's own snapshot strips the headers before forwarding.
    let routes = state.routes();
    let ids = &routes.identity_headers;
    // A device credential or access token header is expected from anyone,
    // trusted or not.
    let is_credential = |n: &http::HeaderName| {
        routes.list.iter().any(|r| {
            r.carriers.header.as_ref() == Some(n)
                || r.access_tokens
                    .as_ref()
                    .is_some_and(|a| a.carriers.header.as_ref() == Some(n))
        })
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
            peer = %ctx.peer,
            client_ip = %crate::http::refusal::ip_for_log(ctx.client_ip),
            headers = %names.join(","),
            suppressed_since_last = suppressed,
            "identity headers from an untrusted peer were ignored and stripped"
        );
        // The audit log gets the same rate-limited line, written behind the
        // request.
        audit_spoof_attempt(
            state,
            &ctx.peer,
            ctx.client_ip,
            &names.join(","),
            "stripped",
            suppressed,
        );
    }
}

/// Writes a `spoof-attempt` audit entry behind the request (the caller
/// has rate-limited it with `state.spoof_log`): who sent it, which
/// headers (names only, never values), and what was done (`outcome`).
pub fn audit_spoof_attempt(
    state: &AppState,
    peer: &vestibule_core::net::Peer,
    client_ip: Option<std::net::IpAddr>,
    names: &str,
    outcome: &str,
    suppressed: u64,
) {
    if let Some(accounts) = state.accounts() {
        let store = accounts.store().clone();
        let entry = vestibule_store::AuditEntry::new(
            crate::accounts::now_ms(),
            peer.to_string(),
            "spoof-attempt",
            names.to_owned(),
        )
        .with_client_ip(client_ip)
        .with_outcome(outcome)
        .with_detail(format!("{suppressed} more since the last entry"));
        tokio::spawn(async move { crate::accounts::record_audit(&*store, &entry).await });
    }
}
