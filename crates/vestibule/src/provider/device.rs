//! The OAuth 2.0 Device Authorization Grant (RFC 8628), for TVs, consoles
//! and command-line tools that have no browser or no keyboard.
//!
//! - [`authorization`], `POST /.vestibule/oidc/device_authorization`
//!   (§3.1, §3.2): the client authenticates like at the token endpoint (a
//!   secret for confidential clients, `client_id` alone for public ones)
//!   and must have the `device_code` grant. It gets a device code (256
//!   random bits, stored as SHA-256), a user code of 8 letters of the
//!   base-20 alphabet shown `XXXX-XXXX` (§6.1,
//!   [`vestibule_core::device_grant`]), `verification_uri`,
//!   `verification_uri_complete`, `expires_in` and `interval`.
//! - [`page`] and [`answer`], `/.vestibule/device` (§3.3): the signed-in
//!   person (the page extractors) types the code, or arrives with it from
//!   `verification_uri_complete` prefilled, and must still confirm after
//!   seeing the client's name and the scopes (§5.4: a code sent by someone
//!   else is remote phishing; nothing is approved by following a link).
//!   Wrong codes are limited per account and per client address (§5.1,
//!   brute force). Disabled accounts and accounts outside the client's
//!   groups are refused.
//! - [`token`], the `urn:ietf:params:oauth:grant-type:device_code` arm of
//!   the token endpoint (§3.4, §3.5): `authorization_pending`,
//!   `slow_down` (a poll sooner than the code's interval after the
//!   previous one; the interval then grows by 5 s for that code),
//!   `access_denied`, `expired_token`; once approved, the same tokens as
//!   a code exchange (an ID token with `openid`, a refresh token with
//!   `offline_access` when the client has the `refresh_token` grant). A
//!   device code is redeemed once.
//!
//! Everything lives in the store, so a code issued by one instance is
//! approved at a second and redeemed at a third; only the wrong-code
//! limiter is per instance.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use vestibule_core::device_grant::{
    PollTiming, display_user_code, normalize_user_code, poll_timing, user_code_from_bytes,
};
use vestibule_core::oidc_token::{Params, parse_scope, scope_string};
use vestibule_store::StoreError;
use vestibule_store::provider::{DeviceApproval, DeviceDecision, DeviceRedemption, NewDeviceCode};

use super::token::{
    IdTokenContext, allowed_account, bad_request, invalid_grant, mint_tokens, ms, server_error,
};
use super::{Provider, account_allowed, random_token, sha256};
use crate::accounts::now_ms;
use crate::config::{GrantType, OidcClientSettings};
use crate::state::AppState;
use crate::web::chrome::{Chrome, Nav};
use crate::web::extract::{CsrfForm, Fields, PageError, SignedIn, is_admin};
use crate::web::flash::Flash;

/// The verification page (RFC 8628 §3.2 `verification_uri`).
pub const DEVICE_PAGE_PATH: &str = "/.vestibule/device";

/// `verification_uri_complete` as a QR code (SVG), for devices that show
/// one but cannot draw it (RFC 8628 §3.3.1: "the device could display
/// the URI as a QR code"): `?user_code=` the code it was given.
pub const DEVICE_QR_PATH: &str = "/.vestibule/oidc/device_qr.svg";
/// The grant type of the token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Wrong user codes per account and per client address per minute
/// (§5.1): with 20^8 codes and a handful live, guessing one at this rate
/// takes centuries.
pub const WRONG_CODES_PER_MINUTE: u32 = 5;
/// Prefix of device codes (secret scanners spot it).
pub const DEVICE_CODE_PREFIX: &str = "vdc_";

fn oauth(error: &str, description: &str) -> Response {
    bad_request(error, description)
}

/// `POST /.vestibule/oidc/device_authorization` (RFC 8628 §3.1, §3.2).
pub async fn authorization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ps) = state.provider.as_deref() else {
        return super::not_configured();
    };
    // §3.1: "the client authentication requirements of Section 3.2.1 of
    // [RFC6749] apply"; a public client sends its client_id.
    let super::ClientRequest {
        provider: p,
        params,
        client,
        ..
    } = match super::client_request(&state, &headers, &body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    if !client.grants.contains(&GrantType::DeviceCode) {
        return oauth(
            "unauthorized_client",
            "this client may not use the device authorization grant",
        );
    }
    let scope = match requested_scope(&client, params.get("scope")) {
        Some(s) => s,
        None => {
            return oauth(
                "invalid_scope",
                "the scope is not one this client may ask for",
            );
        }
    };
    let now = now_ms();
    // A user-code clash (a live code already has it) draws again.
    for _ in 0..4 {
        let Some(user_code) = user_code_from_bytes(&rand::random::<[u8; 32]>()) else {
            continue;
        };
        let device_code = random_token(DEVICE_CODE_PREFIX);
        let row = NewDeviceCode {
            device_code_hash: sha256(&device_code),
            user_code_hash: sha256(&user_code),
            client_id: client.client_id.clone(),
            scopes: scope.clone(),
            interval_ms: ms(ps.settings.device_poll_interval),
            created_at: now,
            expires_at: now + ms(ps.settings.device_code_lifetime),
        };
        match p.store.create_device_code(&row).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return server_error(e),
        }
        let shown = display_user_code(&user_code);
        let uri = ps.endpoint(DEVICE_PAGE_PATH);
        return super::no_store_json(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": shown,
                "verification_uri": uri,
                "verification_uri_complete": format!("{uri}?user_code={shown}"),
                "expires_in": ps.settings.device_code_lifetime.as_secs(),
                "interval": ps.settings.device_poll_interval.as_secs(),
            }),
        );
    }
    server_error("could not draw an unused user code")
}

/// The scopes of a device request: those asked for, all the client's;
/// without `scope`, `openid` if the client has it (§3.1: OPTIONAL).
fn requested_scope(client: &OidcClientSettings, asked: Option<&str>) -> Option<String> {
    let scopes = match asked {
        Some(s) => parse_scope(s).ok()?,
        None => std::iter::once("openid".to_owned()).collect(),
    };
    (!scopes.is_empty() && scopes.iter().all(|s| client.scopes.contains(s)))
        .then(|| scope_string(&scopes))
}

/// The device grant arm of the token endpoint (RFC 8628 §3.4, §3.5).
pub(super) async fn token(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    params: &Params,
) -> Response {
    let Some(device_code) = params.get("device_code") else {
        return oauth("invalid_request", "device_code is required");
    };
    let hash = sha256(device_code);
    // Compare and set on the previous poll; a lost race reads again (and
    // then finds itself too early).
    let mut attempts = 0;
    let code = loop {
        attempts += 1;
        let now = now_ms();
        let code = match p.store.device_code(&hash).await {
            Ok(Some(c)) if c.code.client_id == client.client_id => c,
            Ok(_) => return invalid_grant("unknown device code"),
            Err(e) => return server_error(e),
        };
        if code.redeemed_at.is_some() {
            return replayed(p, client, &code).await;
        }
        // §3.5 expired_token.
        if now >= code.code.expires_at {
            return oauth("expired_token", "the device code has expired");
        }
        let timing = poll_timing(code.last_poll_at, code.code.interval_ms, now);
        let interval = match timing {
            PollTiming::OnTime => code.code.interval_ms,
            PollTiming::SlowDown { interval_ms } => interval_ms,
        };
        match p
            .store
            .record_device_poll(&hash, code.last_poll_at, now, interval)
            .await
        {
            Ok(true) => {}
            Ok(false) if attempts < 4 => continue,
            Ok(false) => return oauth("slow_down", "poll less often"),
            Err(e) => return server_error(e),
        }
        if let PollTiming::SlowDown { interval_ms } = timing {
            // §3.5: "the interval MUST be increased by 5 seconds for this
            // and all subsequent requests".
            return super::no_store_json(
                StatusCode::BAD_REQUEST,
                &json!({
                    "error": "slow_down",
                    "error_description": format!("poll at most every {} s", interval_ms / 1000),
                }),
            );
        }
        break code;
    };
    let approval = match (code.decision, &code.approval) {
        (DeviceDecision::Pending, _) => {
            return oauth(
                "authorization_pending",
                "the user has not answered on the device page yet",
            );
        }
        (DeviceDecision::Denied, _) => {
            return oauth("access_denied", "the user denied the request");
        }
        (DeviceDecision::Approved, Some(a)) => a.clone(),
        (DeviceDecision::Approved, None) => return server_error("an approval without its user"),
    };
    issue(p, client, &hash, &code.code.scopes, &approval).await
}

/// A redeemed device code presented again: the grant its redemption
/// created is revoked with every token issued from it, as for a replayed
/// authorization code (RFC 6749 §4.1.2: "If an authorization code is used
/// more than once, the authorization server MUST deny the request and
/// SHOULD revoke (when possible) all tokens previously issued based on
/// that authorization code"; RFC 8628 §3.5 makes the device code the
/// code of this grant). Logged as a security event; `invalid_grant`.
async fn replayed(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    code: &vestibule_store::provider::DeviceCode,
) -> Response {
    let revoked = match code.grant_id {
        Some(id) => match p.store.revoke_grant(id, None).await {
            Ok(done) => done.then_some(id),
            Err(e) => return server_error(e),
        },
        None => None,
    };
    tracing::warn!(
        security_event = "device_code_replay",
        client_id = %client.client_id,
        account_id = code.approval.as_ref().map(|a| a.account_id),
        revoked_grant = revoked,
        "device code presented again: the grant it created is revoked"
    );
    invalid_grant("the device code was already used")
}

/// Tokens for an approved device code, like a code exchange's.
async fn issue(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    hash: &[u8; 32],
    scope: &str,
    approval: &DeviceApproval,
) -> Response {
    let now = now_ms();
    // The account is checked again at redemption: disabled or moved out of
    // the client's groups since the approval means no tokens.
    let account = match allowed_account(p, approval.account_id, client).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return oauth(
                "access_denied",
                "the account may not sign in to this client",
            );
        }
        Err(r) => return r,
    };
    let minted = match mint_tokens(p, client, &account, scope, approval.auth_time, now) {
        Ok(m) => m,
        Err(e) => return server_error(e),
    };
    match p
        .store
        .redeem_device_code(hash, &client.client_id, now, &minted.stored)
        .await
    {
        Ok(DeviceRedemption::Issued { .. }) => {}
        // Another poll redeemed it between the lookup and now.
        Ok(DeviceRedemption::Invalid) => return invalid_grant("the device code was already used"),
        Err(e) => return server_error(e),
    }
    minted.respond(
        p,
        client,
        &account,
        &IdTokenContext {
            nonce: None,
            auth_time: approval.auth_time,
            session_ref: approval.session_ref.as_deref(),
            amr: &approval.amr,
        },
        now,
    )
}

// ---- the verification page ----------------------------------------------

enum Stage {
    Enter {
        error: Option<String>,
        prefill: String,
    },
    Confirm {
        client: String,
        user_code: String,
        scopes: Vec<String>,
    },
    Done {
        allowed: bool,
    },
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    stage: Stage,
    username: String,
    action: &'static str,
    csrf: String,
    chrome: Chrome,
}

fn render(state: &AppState, s: &SignedIn, stage: Stage, status: StatusCode) -> Response {
    let page = DevicePage {
        stage,
        username: s.identity.username.clone(),
        action: DEVICE_PAGE_PATH,
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::None, is_admin(state, s), Flash(None)),
    };
    match page.render() {
        Ok(h) => (status, Html(h)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `?user_code=` of `verification_uri_complete`.
#[derive(Deserialize)]
pub struct PageQuery {
    user_code: Option<String>,
}

/// `GET /.vestibule/oidc/device_qr.svg?user_code=…`: the QR code of
/// `verification_uri_complete` for that code. It says nothing about the
/// code (whether it exists, whose it is): any well-formed code gets its
/// picture, so it cannot be used to probe for live codes. A malformed
/// code is a 400.
pub async fn qr(State(state): State<Arc<AppState>>, Query(q): Query<PageQuery>) -> Response {
    let Some(ps) = state.provider.as_deref() else {
        return super::not_configured();
    };
    let Some(code) = q
        .user_code
        .as_deref()
        .and_then(|c| normalize_user_code(c).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            [(http::header::CACHE_CONTROL, "no-store")],
            "user_code must be a user code of this provider (8 letters from BCDFGHJKLMNPQRSTVWXZ)\n",
        )
            .into_response();
    };
    let complete = format!(
        "{}?user_code={}",
        ps.endpoint(DEVICE_PAGE_PATH),
        display_user_code(&code)
    );
    let svg = crate::web::devices::qr_svg(&complete);
    if svg.is_empty() {
        return server_error("could not draw the QR code");
    }
    (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, "image/svg+xml"),
            (http::header::CACHE_CONTROL, "no-store"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Opened on its own, the picture may run nothing.
            (http::header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        svg,
    )
        .into_response()
}

/// `GET /.vestibule/device[?user_code=…]`: the code box, prefilled from
/// `verification_uri_complete` but never submitted by itself (§5.4).
pub async fn page(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    super::authorize::provider(&state)?;
    // Only a well-formed code is put back in the page.
    let prefill = q
        .user_code
        .as_deref()
        .and_then(|c| normalize_user_code(c).ok())
        .map(|c| display_user_code(&c))
        .unwrap_or_default();
    Ok(render(
        &state,
        &s,
        Stage::Enter {
            error: None,
            prefill,
        },
        StatusCode::OK,
    ))
}

/// `POST /.vestibule/device`: `user_code` alone shows the confirmation;
/// with `decision=allow|deny` it answers.
pub async fn answer(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let ps = super::authorize::provider(&state)?;
    let user = format!("account:{}", s.account_id);
    let ip = s.ctx.client_ip;
    let too_many = |wait: Duration| {
        PageError::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes",
            format!(
                "Too many wrong codes were typed from your account or this network. \
                 Wait {} seconds, then type the code your device shows.",
                wait.as_secs().max(1)
            ),
            "Check the code on the device: letters only, no vowels.",
        )
    };
    if let Some(wait) = ps.device_entry.blocked_for(ip, Some(&user)) {
        return Err(too_many(wait));
    }
    let typed = fields.get("user_code").unwrap_or("");
    let wrong = |message: &str| -> Result<Response, PageError> {
        if let Some(wait) = ps.device_entry.record_failure(ip, Some(&user)) {
            return Err(too_many(wait));
        }
        Ok(render(
            &state,
            &s,
            Stage::Enter {
                error: Some(message.to_owned()),
                prefill: String::new(),
            },
            StatusCode::BAD_REQUEST,
        ))
    };
    let Ok(user_code) = normalize_user_code(typed) else {
        return wrong("That is not a code: it has 8 letters, like BDFG-HJKL.");
    };
    let user_code_hash = sha256(&user_code);
    let now = now_ms();
    let code = match ps.store.device_code_by_user_code(&user_code_hash).await {
        Ok(Some(c)) if c.decision == DeviceDecision::Pending && now < c.code.expires_at => c,
        Ok(_) => return wrong("No device is waiting for this code, or it has expired."),
        Err(e) => return Err(store_failed(e)),
    };
    let client = match ps
        .clients
        .find(ps.store.as_ref(), &code.code.client_id)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return wrong("No device is waiting for this code, or it has expired."),
        Err(e) => return Err(store_failed(e)),
    };
    let account = match ps.store.account(s.account_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(PageError::Internal("the session's account is gone")),
        Err(e) => return Err(store_failed(e)),
    };
    if !account_allowed(&account, &client) {
        return Err(PageError::refused(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!("Your account may not sign in to {}.", client.name),
            "If you need it, ask an administrator.",
        ));
    }
    let allowed = match fields.get("decision") {
        None => {
            let scopes = parse_scope(&code.code.scopes).unwrap_or_default();
            return Ok(render(
                &state,
                &s,
                Stage::Confirm {
                    client: client.name.clone(),
                    user_code: display_user_code(&user_code),
                    scopes: scopes.iter().map(|x| super::consent::describe(x)).collect(),
                },
                StatusCode::OK,
            ));
        }
        Some("allow") => true,
        Some("deny") => false,
        Some(_) => return Err(PageError::BadForm("Choose Allow or Deny.".into())),
    };
    if allowed {
        crate::web::session::provider_still_vouches(&state, &s).await?;
    }
    let approval = DeviceApproval {
        account_id: s.account_id,
        session_ref: Some(vestibule_store::hex(&s.id_hash)),
        auth_time: s.created_at,
        amr: Vec::new(),
    };
    match ps
        .store
        .decide_device_code(&user_code_hash, now, allowed.then_some(&approval))
        .await
    {
        Ok(true) => {}
        Ok(false) => return wrong("No device is waiting for this code, or it has expired."),
        Err(e) => return Err(store_failed(e)),
    }
    tracing::info!(
        client_id = %client.client_id,
        account_id = s.account_id,
        allowed,
        "device authorization answered"
    );
    Ok(render(&state, &s, Stage::Done { allowed }, StatusCode::OK))
}

fn store_failed(e: StoreError) -> PageError {
    tracing::error!(error = %e, "device page: store failed");
    PageError::Internal("the store failed")
}
