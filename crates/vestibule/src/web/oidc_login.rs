//! Signing in against an upstream OpenID provider (`[source.oidc]`,
//! issue 15): `/.vestibule/oidc/login`, `/.vestibule/oidc/callback`, the
//! session that follows on vestibule's pages and app routes, and
//! `/.vestibule/oidc/backchannel-logout`.
//!
//! Where a login under way is kept: **server-side**, in the store
//! (`oidc_pending_logins`), keyed by the SHA-256 of a random 256-bit id
//! the browser holds in a short-lived `HttpOnly` cookie
//! (`__Host-vestibule-oidc` over HTTPS). The row holds the `state`, the
//! `nonce`, the PKCE verifier and the checked return address, for ten
//! minutes, and the callback takes it once: a callback without that
//! browser's cookie, or a second use, finds nothing. In the store rather
//! than in memory so the callback may reach another instance.
//!
//! Every check on what the provider sends is vestibule-core's
//! ([`vestibule_core::oidc`]): `iss`/`state` at the callback (RFC 9207,
//! RFC 6749 §4.1.2), the token response, the ID token (OIDC Core
//! §3.1.3.7), the logout token (Back-Channel Logout 1.0 §2.6).

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngCore;
use vestibule_core::identity::Identity;
use vestibule_core::oidc::{
    CallbackError, ClaimsRefused, IdTokenExpectations, LogoutTokenExpectations, check_callback,
    pkce_challenge, verify_id_token, verify_logout_token,
};
use vestibule_core::secret::{find_cookie, hash_token};
use vestibule_store::oidc_login::{OidcSessionLink, PendingOidcLogin};

use super::extract::{Client, CookieSlot, PageError, form_fields};
use super::login::{ReturnQuery, Target, bad, return_query, target};
use super::see_other;
use super::session::{SessionAudit, active, https, open_session, presented_token};
use crate::accounts::{Accounts, now_ms};
use crate::identity::authenticate::SourceError;
use crate::identity::client_identity::ClientContext;
use crate::identity::oidc::{KeyedCheckError, Upstream, identity_of};
use crate::identity::oidc_recheck::{SessionTokens, id_token_hint, store_login_tokens};
use crate::state::AppState;

/// How long a login may take, provider page included.
const LOGIN_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// The longest ID or logout token read.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The login cookie over HTTPS (`__Host-`: `Secure`, `Path=/`, no
/// `Domain`, RFC 6265bis §4.1.3.2) and over plain HTTP.
pub(crate) const LOGIN_COOKIE_SECURE: &str = "__Host-vestibule-oidc";
/// See [`LOGIN_COOKIE_SECURE`].
pub(crate) const LOGIN_COOKIE_PLAIN: &str = "vestibule_oidc";

fn login_cookie(https: bool) -> &'static str {
    if https {
        LOGIN_COOKIE_SECURE
    } else {
        LOGIN_COOKIE_PLAIN
    }
}

/// `Set-Cookie` for the login id (`None` clears it). `SameSite=Lax`: the
/// callback is a top-level GET from the provider's site, which Lax sends.
fn set_login_cookie(https: bool, value: Option<&str>) -> Option<HeaderValue> {
    let (value, age) = value.map_or(("", 0), |v| (v, LOGIN_LIFETIME_MS / 1000));
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}",
        login_cookie(https)
    ))
    .ok()
}

/// 256 random bits, base64url.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn upstream(state: &AppState) -> Result<&Arc<Upstream>, PageError> {
    state
        .oidc_upstream()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))
}

fn provider_unreachable(e: &str) -> PageError {
    tracing::warn!(error = %e, "the OpenID provider could not be used");
    PageError::refused(
        StatusCode::BAD_GATEWAY,
        "Sign-in unavailable",
        "vestibule could not reach your sign-in provider, or did not understand its answer.",
        "Try again in a moment.",
    )
}

/// The provider does not take vestibule's client authentication: a
/// configuration mismatch, named in the log and on the page (it is about
/// the gateway, not the person).
fn client_auth_mismatch(e: &str) -> PageError {
    tracing::error!(error = %e, "OIDC sign-in cannot start");
    PageError::refused(
        StatusCode::BAD_GATEWAY,
        "Sign-in is misconfigured",
        "vestibule and your sign-in provider do not agree on how vestibule authenticates (source.oidc.client_auth); the log names the methods the provider offers.",
        "Tell the administrator.",
    )
}

fn refused(status: StatusCode, why: &str) -> PageError {
    tracing::info!(reason = %why, "an OIDC sign-in was refused");
    PageError::refused(
        status,
        "Sign-in not accepted",
        "The answer from your sign-in provider could not be accepted.",
        "Start again from the app.",
    )
}

fn form(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `url` with `params` appended to its query.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form(v));
        sep = '&';
    }
    out
}

/// `GET /.vestibule/oidc/login?return_to=…`: starts an authorization-code
/// login with PKCE `S256`, `state` and `nonce` (OIDC Core §3.1.2.1, RFC
/// 7636 §4.3, RFC 9700 §2.1.1) and sends the browser to the provider. The
/// return address is checked by the same open-redirect rule as
/// `/.vestibule/login` (400 otherwise).
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    uri: http::Uri,
    q: Result<Query<ReturnQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let upstream = upstream(&state)?.clone();
    let q = return_query(q)?;
    let Target { ctx, here, dest } = target(&state, ctx, &headers, &uri, &q).map_err(bad)?;
    let return_to = dest.unwrap_or_else(|| format!("{here}/"));
    begin(&state, &upstream, &ctx, &headers, &slot, return_to, None).await
}

/// Starts an authorization-code login (OIDC Core §3.1.2.1) and answers
/// with the redirect to the provider: the pending row (with `link` in
/// link mode), the login cookie.
pub(super) async fn begin(
    state: &AppState,
    upstream: &Upstream,
    ctx: &ClientContext,
    headers: &HeaderMap,
    slot: &CookieSlot,
    return_to: String,
    link: Option<(i64, [u8; 32])>,
) -> Result<Response, PageError> {
    let Some(accounts) = state.accounts() else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    let m = upstream
        .metadata()
        .await
        .map_err(|e: String| provider_unreachable(&e))?;
    upstream
        .check_client_auth(&m, state.signing_keys.as_deref())
        .map_err(|e| client_auth_mismatch(&e))?;
    let settings = upstream.settings();
    let (id, state_value, nonce, verifier) = (
        random_token(),
        random_token(),
        random_token(),
        random_token(),
    );
    let now = now_ms();
    accounts
        .store()
        .put_pending_oidc_login(
            &PendingOidcLogin {
                login_hash: hash_token(&id),
                state: state_value.clone(),
                nonce: nonce.clone(),
                verifier: verifier.clone(),
                return_to,
                expires_at: now.saturating_add(LOGIN_LIFETIME_MS),
                link,
            },
            now,
        )
        .await?;
    let https = https(ctx, headers);
    if let Some(c) = set_login_cookie(https, Some(&id)) {
        slot.set(c);
    }
    let challenge = pkce_challenge(&verifier);
    let scope = settings.scopes.join(" ");
    let redirect_uri = settings.redirect_url.to_string();
    Ok(see_other(&with_query(
        &m.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", &settings.client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", &scope),
            ("state", &state_value),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )))
}

/// Verifies an ID token, fetching the provider's keys once more when it
/// names a key id vestibule does not have (rotation, OIDC Core §10.1.1).
async fn verified_id_token(
    upstream: &Upstream,
    token: &str,
    expect: &IdTokenExpectations<'_>,
) -> Result<vestibule_core::oidc::IdToken, String> {
    upstream
        .verify_with_keys(|keys| verify_id_token(token, keys, expect))
        .await
        .map_err(|e| e.to_string())
}

/// `GET /.vestibule/oidc/callback`: the provider's answer. In order: the
/// login this browser started (its cookie, once), `iss` then `state`
/// (RFC 9207 §2.4, constant time), the code exchanged with the PKCE
/// verifier, the ID token (signature, `iss`, `aud`, `azp`, `exp`, `iat`,
/// `nonce`, `at_hash`), the account by (issuer, `sub`) under the
/// provisioning policy (never by email), then a new vestibule session
/// recorded with the provider's `sub` and `sid`.
pub(super) async fn callback(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Result<Response, PageError> {
    let upstream = upstream(&state)?.clone();
    let Some(accounts) = state.accounts().cloned() else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    let store = accounts.store().clone();
    let https = https(&ctx, &headers);
    let cookie = find_cookie(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        login_cookie(https),
    );
    let now = now_ms();
    let pending = match cookie {
        Some(id) => store.take_pending_oidc_login(&hash_token(id), now).await?,
        None => None,
    };
    if let Some(c) = set_login_cookie(https, None) {
        slot.set(c);
    }
    let Some(pending) = pending else {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, was already used, or took too long.",
            "Start again from the app.",
        ));
    };
    let settings = upstream.settings();
    let m = upstream
        .metadata()
        .await
        .map_err(|e: String| provider_unreachable(&e))?;
    let code = check_callback(
        uri.query().unwrap_or(""),
        &pending.state,
        &settings.issuer,
        m.sends_iss_in_response,
    )
    .map_err(|e| match e {
        CallbackError::Provider(code) => refused(
            StatusCode::FORBIDDEN,
            &format!("the provider answered {code}"),
        ),
        e => refused(StatusCode::BAD_REQUEST, &format!("{e:?}")),
    })?;
    let tokens = upstream
        .exchange(&code, &pending.verifier, state.signing_keys.as_deref())
        .await
        .map_err(|e: String| provider_unreachable(&e))?;
    let expect = IdTokenExpectations {
        issuer: &settings.issuer,
        client_id: &settings.client_id,
        trusted_audiences: &[],
        algorithms: &settings.algorithms,
        nonce: &pending.nonce,
        access_token: Some(&tokens.access_token),
        now: now / 1000,
        leeway: settings.leeway_secs,
        max_age: 600,
        max_token_bytes: MAX_TOKEN_BYTES,
    };
    let id_token = verified_id_token(&upstream, &tokens.id_token, &expect)
        .await
        .map_err(|e| refused(StatusCode::UNAUTHORIZED, &format!("ID token: {e}")))?;
    let identity = match identity_of(settings, &id_token) {
        Ok(identity) => identity,
        Err(e @ ClaimsRefused::Claims(_)) => {
            return Err(refused(StatusCode::UNAUTHORIZED, &e.to_string()));
        }
        Err(ClaimsRefused::NotInAllowedGroup) => {
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your account at the sign-in provider is not in a group allowed here.",
                "",
            ));
        }
    };
    // Link mode: the provider's (issuer, sub) goes to the account that
    // asked, or nowhere; no session is opened.
    if let Some(link) = pending.link {
        return super::oidc_link::finish(
            &state,
            &ctx,
            &headers,
            &slot,
            link,
            &Accounts::key_for(&identity, false),
            &pending.return_to,
        )
        .await;
    }
    let (identity, account_id) = active(
        accounts
            .resolve(identity, &settings.provisioning, false, ctx.client_ip)
            .await?,
    )?;
    // A session this browser held before ends: one browser, one session.
    super::login::end_page_session(&state, &ctx, &headers, &slot, "new OIDC sign-in").await?;
    let key = Accounts::key_for(&identity, false);
    let audit = SessionAudit {
        accounts: &accounts,
        ctx: &ctx,
    };
    let (id_hash, _csrf) = open_session(
        &state,
        &audit,
        (account_id, &key, &identity),
        &headers,
        https,
        &slot,
    )
    .await?;
    store
        .link_oidc_session(&OidcSessionLink {
            session_hash: id_hash,
            issuer: settings.issuer.clone(),
            subject: id_token.claims.subject.clone(),
            sid: id_token.session_id.clone(),
            // Kept with the other tokens, sealed when a key-encryption key
            // is configured; the plaintext column stays for older rows.
            id_token: String::new(),
            created_at: now,
        })
        .await?;
    let kept = SessionTokens {
        id_token: tokens.id_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        access_token: tokens.access_token.clone(),
        access_expires_at: tokens
            .expires_in
            .map(|s| now.saturating_add(s.saturating_mul(1000))),
        nonce: pending.nonce.clone(),
        auth_time: id_token.auth_time,
    };
    if let Err(e) = store_login_tokens(&upstream, &*store, &id_hash, &kept, now).await {
        // A session that cannot be re-checked is not opened.
        let _ = store.revoke_session(&id_hash).await;
        tracing::warn!(error = %e, "the provider's tokens of a new session could not be stored");
        return Err(PageError::Internal(
            "the session's tokens could not be stored",
        ));
    }
    Ok(see_other(&pending.return_to))
}

/// The identity of the OIDC session a request presents (the session
/// cookie), for the one pipeline ([`crate::identity::authenticate`]): a
/// live, not idle session opened by this provider's login, and its account
/// as stored, answered from [`super::oidc_sessions`] (a known session
/// reads nothing from the store). A disabled account's session is none
/// (fail closed, whatever the accounts cache says yet). `Ok(None)`
/// without one; the store unreachable is 503.
pub(crate) async fn session_identity(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    upstream: &Upstream,
) -> Result<Option<Identity>, SourceError> {
    let Some(sessions) = state.oidc_sessions.as_deref() else {
        return Ok(None);
    };
    let Some(token) = presented_token(headers, https(ctx, headers)) else {
        return Ok(None);
    };
    let idle = i64::try_from(state.settings.sessions.idle.as_millis()).unwrap_or(i64::MAX);
    let found = sessions
        .lookup(
            &hash_token(token),
            &upstream.settings().issuer,
            now_ms(),
            idle,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the session store cannot be read");
            SourceError::KeysUnavailable
        })?;
    Ok(found
        .filter(|s| s.status != vestibule_store::AccountStatus::Disabled)
        .map(|s| s.identity.clone()))
}

/// Where `/.vestibule/logout` sends a browser whose session came from the
/// OIDC login: the provider's `end_session_endpoint` with `id_token_hint`,
/// `client_id` and the registered `post_logout_redirect_uri`
/// (RP-Initiated Logout 1.0 §2). `None` for any other session, or when
/// the provider has no such endpoint. Read before the session ends (its
/// link goes with it).
pub(super) async fn end_session_location(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
) -> Option<String> {
    let upstream = state.oidc_upstream()?;
    let token = presented_token(headers, https(ctx, headers))?;
    let store = state.accounts()?.store();
    let link = store.oidc_session_link(&hash_token(token)).await.ok()??;
    let hint = id_token_hint(upstream, &**store, &link).await?;
    let m = upstream.metadata().await.ok()?;
    let end = m.end_session_endpoint.as_deref()?;
    let settings = upstream.settings();
    let post = settings
        .post_logout_redirect_url
        .as_ref()
        .map(ToString::to_string);
    let mut params = vec![
        ("id_token_hint", hint.as_str()),
        ("client_id", settings.client_id.as_str()),
    ];
    if let Some(p) = &post {
        params.push(("post_logout_redirect_uri", p));
    }
    Some(with_query(end, &params))
}

/// A JSON answer of the back-channel logout endpoint, never cached
/// (Back-Channel Logout 1.0 §2.8).
fn backchannel_answer(status: StatusCode, error: Option<&str>) -> Response {
    let body = match error {
        Some(e) => {
            serde_json::json!({ "error": "invalid_request", "error_description": e }).to_string()
        }
        None => String::new(),
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if error.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// `POST /.vestibule/oidc/backchannel-logout`: the provider says a user
/// logged out (Back-Channel Logout 1.0 §2.5). The logout token is checked
/// by core (§2.6); a bad one is 400 with a JSON error and nothing ends
/// (§2.8). Its `jti` is remembered in the store, so a replay is refused at
/// any instance (§2.6 point 7). `sid` ends that provider session's
/// sessions; `sub` alone ends all of that user's sessions from this
/// issuer (§2.7). Each end goes through the store's session-ending call,
/// so every instance sees it on the change feed. 200 also when no session
/// matched (it may have ended already).
pub(super) async fn backchannel_logout(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Response {
    let Ok(upstream) = upstream(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(accounts) = state.accounts() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fields = form_fields(&body);
    let mut tokens = fields.iter().filter(|(k, _)| k == "logout_token");
    let (Some((_, token)), None) = (tokens.next(), tokens.next()) else {
        return backchannel_answer(
            StatusCode::BAD_REQUEST,
            Some("exactly one logout_token is required"),
        );
    };
    let settings = upstream.settings();
    let now = now_ms();
    let expect = LogoutTokenExpectations {
        issuer: &settings.issuer,
        client_id: &settings.client_id,
        algorithms: &settings.algorithms,
        now: now / 1000,
        leeway: settings.leeway_secs,
        max_age: settings.logout_token_max_age_secs,
        require_expiry: settings.strict_logout_tokens,
        max_token_bytes: MAX_TOKEN_BYTES,
    };
    let verified = upstream
        .verify_with_keys(|keys| verify_logout_token(token, keys, &expect))
        .await;
    let logout = match verified {
        Ok(t) => t,
        Err(KeyedCheckError::NoKeys(e)) => {
            tracing::warn!(error = %e, "a logout token arrived but the provider's keys cannot be fetched");
            return backchannel_answer(StatusCode::SERVICE_UNAVAILABLE, None);
        }
        Err(KeyedCheckError::Refused(e)) => {
            tracing::info!(error = %e, "a logout token was refused");
            return backchannel_answer(StatusCode::BAD_REQUEST, Some(&e.to_string()));
        }
    };
    let store = accounts.store();
    match store
        .remember_logout_jti(
            &logout.issuer,
            &logout.token_id,
            logout.replay_until,
            now / 1000,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("a logout token was replayed");
            return backchannel_answer(
                StatusCode::BAD_REQUEST,
                Some("the logout token was already used"),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "a logout token's jti could not be recorded");
            return backchannel_answer(StatusCode::SERVICE_UNAVAILABLE, None);
        }
    }
    let named = store
        .oidc_sessions_named(
            &logout.issuer,
            logout.session_id.as_deref(),
            // With `sid`, `sub` narrows it; without, it names them all.
            logout.subject.as_deref(),
        )
        .await;
    let hashes = match named {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "the sessions of a logout token could not be found");
            return backchannel_answer(StatusCode::SERVICE_UNAVAILABLE, None);
        }
    };
    let mut ended = 0u32;
    for h in &hashes {
        match store.revoke_session(h).await {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a session named by a logout token could not be ended");
                return backchannel_answer(StatusCode::SERVICE_UNAVAILABLE, None);
            }
        }
    }
    let who = format!(
        "{}:{}",
        logout.issuer,
        logout.subject.as_deref().unwrap_or("-")
    );
    let entry = vestibule_store::AuditEntry::new(now, who.clone(), "session-end", who)
        .with_outcome("ok")
        .with_detail(format!("back-channel logout, {ended} session(s)"));
    crate::accounts::record_audit(&**store, &entry).await;
    backchannel_answer(StatusCode::OK, None)
}
