//! The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1.1), GET
//! and POST (form serialization, OIDC Core §3.1.2.1).
//!
//! In order:
//!
//! 1. The client and the redirect URI. An unknown `client_id`, a missing
//!    or unregistered `redirect_uri`, or either of them repeated, gets an
//!    error **page** (400), never a redirect: redirecting to an address the
//!    client did not register would make vestibule an open redirector
//!    (RFC 6749 §4.1.2.1, RFC 9700 §4.1.3).
//! 2. The rest of the request (`vestibule_core::oidc_provider::
//!    check_authorization`): from here on every refusal goes back to the
//!    redirect URI as `error=…` with `state` and `iss`.
//! 3. Who the person is: whoever the gate says, through the same
//!    extractor as the pages (`SignedIn`: a trusted front's identity or a
//!    verified assertion, the account, the page session). Without one, the
//!    browser goes through `auth.login_url` and back to this request; with
//!    `prompt=none` the client gets `login_required` instead. A pending or
//!    disabled account gets the extractor's page.
//! 4. Whether the account may use the client (`allowed_groups`). If not,
//!    the person gets a page (403) saying so, not a redirect: they learn
//!    why, and the app is not told that the person has an account here.
//! 5. Re-authentication (`prompt=login`, or `max_age` older than the
//!    session): vestibule does not hold credentials, the front does. It
//!    ends the vestibule page session and sends the browser through
//!    `auth.login_url` back to this request, without `prompt` and
//!    `max_age` (or it would loop); the session then starts afresh, which
//!    is the new `auth_time` and `sid`. Whether the front asks for a
//!    password again is the front's business (Authelia, authentik and
//!    Keycloak do not while their own session lasts). Without
//!    `auth.login_url`, vestibule cannot re-authenticate and answers
//!    `login_required` (OIDC Core §3.1.2.1: "If it cannot reauthenticate
//!    the End-User, it MUST return an error, typically login_required").
//! 6. Consent ([`super::consent`]).
//! 7. The code: 256 random bits, stored as its SHA-256 with everything
//!    the token endpoint needs, then the redirect with `code`, `state` and
//!    `iss` (RFC 9207 §2). The row is on disk before the redirect is sent.
//!
//! A request without the `openid` scope is plain OAuth 2.0 (RFC 6749): it
//! gets a code the same way, and the token endpoint issues no ID token
//! for it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use rand::RngCore;
use vestibule_core::oidc_provider::{
    AuthorizationParams, AuthzError, AuthzErrorCode, CheckedRequest, ClientRules,
    authorization_code, check_authorization, needs_reauthentication, redirect_uri_matches,
    response_url, scopes_covered,
};
use vestibule_core::secret::hash_token;
use vestibule_store::provider::NewAuthorizationCode;
use vestibule_store::{AuditEntry, hex};

use super::{AUTHORIZE_PATH, ProviderState};
use crate::accounts::now_ms;
use crate::config::{ClientKind, ConsentMode, GrantType, OidcClientSettings};
use crate::state::AppState;
use crate::web::cookies;
use crate::web::extract::{CookieSlot, PageError, SignedIn, form_fields};

/// The largest authorization request form read (a real one is a few
/// hundred bytes; every parameter is capped at `MAX_PARAM_LEN`).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// `GET|POST /.vestibule/oidc/authorize`.
pub async fn authorize(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match authorize_inner(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn authorize_inner(state: &Arc<AppState>, req: Request) -> Result<Response, PageError> {
    let provider = provider(state)?;
    let post = req.method() == Method::POST;
    let (mut parts, body) = req.into_parts();
    let pairs = if post {
        // OIDC Core §3.1.2.1: a POST uses form serialization.
        let form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !form {
            return Err(link_refused(
                "The sign-in request was not sent as a form.".into(),
            ));
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| link_refused("The sign-in request is too large.".into()))?;
        form_fields(&bytes)
    } else {
        form_fields(parts.uri.query().unwrap_or("").as_bytes())
    };
    let params =
        AuthorizationParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let status = if post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    let valid = validate_client(provider, &params).await?;
    let who = SignedIn::from_request_parts(&mut parts, state).await;
    let slot = parts.extensions.get::<CookieSlot>().cloned();
    decide(state, provider, valid, who, slot, None, status).await
}

/// The provider, or 404 when it is not configured.
pub(super) fn provider(state: &AppState) -> Result<&ProviderState, PageError> {
    state
        .provider
        .as_deref()
        .ok_or_else(|| PageError::not_found("vestibule has no page at this address."))
}

/// The 400 page of a request whose client or redirect URI is not good.
pub(super) fn link_refused(message: String) -> PageError {
    PageError::refused(
        StatusCode::BAD_REQUEST,
        "Sign-in link refused",
        message,
        "The app that sent you here is not set up correctly with this gateway. Tell its administrator; nothing was sent back to the app.",
    )
}

/// A request whose client and redirect URI are known good.
pub(super) struct Valid {
    pub(super) params: AuthorizationParams,
    pub(super) client: Arc<OidcClientSettings>,
    /// The redirect URI as presented (it matched a registered one).
    pub(super) redirect_uri: String,
}

/// Step 1: the client and the redirect URI, or the error page.
pub(super) async fn validate_client(
    p: &ProviderState,
    params: &AuthorizationParams,
) -> Result<Valid, PageError> {
    if matches!(params.malformed, Some("client_id" | "redirect_uri")) {
        return Err(link_refused(
            "The sign-in link names its app or its return address twice, or too long.".into(),
        ));
    }
    let Some(client_id) = params.client_id.as_deref() else {
        return Err(link_refused(
            "The sign-in link does not name its app.".into(),
        ));
    };
    let Some(client) = p.clients.find(&*p.store, client_id).await? else {
        tracing::info!(client_id, "authorization request for an unknown client");
        return Err(link_refused(
            "The app that sent you here is not registered with this gateway.".into(),
        ));
    };
    // OAuth 2.1 and RFC 9700 §4.1.3 want the exact URI every time; OIDC
    // Core §3.1.2.1 requires it. No default is taken.
    let Some(redirect_uri) = params.redirect_uri.as_deref() else {
        return Err(link_refused(
            "The sign-in link does not say where to return.".into(),
        ));
    };
    if !client
        .redirect_uris
        .iter()
        .any(|r| redirect_uri_matches(r, redirect_uri))
    {
        tracing::info!(
            client_id,
            "authorization request with an unregistered redirect_uri"
        );
        return Err(link_refused(
            "The sign-in link asks to return to an address this app did not register.".into(),
        ));
    }
    Ok(Valid {
        params: params.clone(),
        redirect_uri: redirect_uri.to_owned(),
        client,
    })
}

/// What the consent form answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// Steps 2 to 7, for the authorization request (`answer` `None`) and for
/// the consent form's answer.
pub(super) async fn decide(
    state: &Arc<AppState>,
    p: &ProviderState,
    v: Valid,
    who: Result<SignedIn, PageError>,
    slot: Option<CookieSlot>,
    answer: Option<Answer>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let back = |e: AuthzError| error_redirect(p, &v, e, status);
    let rules = ClientRules {
        public: v.client.kind == ClientKind::Public,
        require_pkce: v.client.require_pkce,
        code_grant: v.client.grants.contains(&GrantType::AuthorizationCode),
        scopes: &v.client.scopes,
    };
    let req = match check_authorization(&v.params, rules) {
        Ok(r) => r,
        Err(e) => return Ok(back(e)),
    };
    let s = match who {
        Ok(s) => s,
        Err(e) => {
            let no_identity = matches!(&e, PageError::SignInAt(_))
                || matches!(&e, PageError::Refused { status, .. } if *status == StatusCode::UNAUTHORIZED);
            if !no_identity {
                return Err(e);
            }
            if req.prompt.none {
                // OIDC Core §3.1.2.6: no page may be shown.
                return Ok(back(AuthzError {
                    code: AuthzErrorCode::LoginRequired,
                    description: "the user is not signed in",
                }));
            }
            return match login_redirect(state, p, &v.params, false) {
                Some(r) => Ok(r),
                None => Err(e),
            };
        }
    };
    // The account as the store has it now, not the session's copy (which
    // the session cache may hold for a moment after the account is
    // disabled or leaves a group): no code for an account that may not use
    // the client, by the same rule as every exchange and refresh.
    let account = p.store.account(s.account_id).await?;
    if !account.is_some_and(|a| super::account_allowed(&a, &v.client)) {
        tracing::info!(
            client_id = %v.client.client_id,
            user = %s.identity.username,
            "authorization refused: the account is not active or not in the client's allowed_groups"
        );
        return Err(PageError::refused(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!("Your account may not sign in to {}.", v.client.name),
            "If you need it, ask an administrator to add you to one of its groups.",
        ));
    }
    let now = now_ms();
    // The consent form's answer comes without prompt and max_age: they
    // were honoured when the form was shown.
    if answer.is_none() && needs_reauthentication(&req, s.created_at, now) {
        if req.prompt.none {
            return Ok(back(AuthzError {
                code: AuthzErrorCode::LoginRequired,
                description: "the user must sign in again",
            }));
        }
        if state.settings.login_url.is_none() {
            return Ok(back(AuthzError {
                code: AuthzErrorCode::LoginRequired,
                description: "this provider cannot ask the user to sign in again",
            }));
        }
        // A new page session is the new authentication: end this one.
        p.store.revoke_session(&s.id_hash).await?;
        if let Some(slot) = &slot {
            slot.set(cookies::clear(s.https));
        }
        audit(
            state,
            &s,
            "session-end",
            "re-authentication asked by an app",
        )
        .await;
        if let Some(r) = login_redirect(state, p, &v.params, true) {
            return Ok(r);
        }
    }
    let granted = p.store.consent(s.account_id, &v.client.client_id).await?;
    match answer {
        Some(Answer::Deny) => {
            audit(state, &s, "oidc-consent-deny", &v.client.client_id).await;
            return Ok(back(AuthzError {
                code: AuthzErrorCode::AccessDenied,
                description: "the user denied the request",
            }));
        }
        Some(Answer::Allow) => {
            // Remembered per user, client and scopes: what was allowed
            // before stays allowed, with what is allowed now.
            let mut all: Vec<String> = granted
                .as_deref()
                .map(|g| g.split(' ').map(str::to_owned).collect())
                .unwrap_or_default();
            for scope in &req.scopes {
                if !all.contains(scope) {
                    all.push(scope.clone());
                }
            }
            all.retain(|x| !x.is_empty());
            p.store
                .put_consent(s.account_id, &v.client.client_id, &all.join(" "), now)
                .await?;
            audit(state, &s, "oidc-consent-allow", &v.client.client_id).await;
        }
        None => {
            let covered = granted
                .as_deref()
                .is_some_and(|g| scopes_covered(&req.scopes, g));
            let ask = req.prompt.consent || (v.client.consent == ConsentMode::Explicit && !covered);
            if ask {
                if req.prompt.none {
                    return Ok(back(AuthzError {
                        code: AuthzErrorCode::ConsentRequired,
                        description: "the user has not allowed this app yet",
                    }));
                }
                return Ok(super::consent::page(state, &v, &req, &s));
            }
        }
    }
    issue_code(state, p, &v, &req, &s, now, status).await
}

/// Step 7: the code, stored, then the redirect that carries it.
async fn issue_code(
    state: &Arc<AppState>,
    p: &ProviderState,
    v: &Valid,
    req: &CheckedRequest,
    s: &SignedIn,
    now: i64,
    status: StatusCode,
) -> Result<Response, PageError> {
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let code = authorization_code(random);
    let lifetime = i64::try_from(p.settings.code_lifetime.as_millis()).unwrap_or(60_000);
    let row = NewAuthorizationCode {
        code_hash: hash_token(code.expose()),
        client_id: v.client.client_id.clone(),
        account_id: s.account_id,
        redirect_uri: v.redirect_uri.clone(),
        scopes: req.scopes.join(" "),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        // The page session: `revoke_session` ends it by this digest, and
        // logout (back-channel) finds the codes' grants by it.
        session_ref: Some(hex(&s.id_hash)),
        auth_time: s.created_at,
        // The front authenticated the person and does not say how.
        amr: Vec::new(),
        created_at: now,
        expires_at: now.saturating_add(lifetime),
    };
    p.store.create_authorization_code(&row).await?;
    audit(state, s, "oidc-code", &v.client.client_id).await;
    let mut params = vec![("code", code.expose())];
    if let Some(st) = v.params.state.as_deref() {
        params.push(("state", st));
    }
    params.push(("iss", p.issuer.as_str()));
    Ok(redirect(status, &response_url(&v.redirect_uri, &params)))
}

/// The error response to the validated redirect URI (RFC 6749 §4.1.2.1),
/// with `state` echoed and `iss` (RFC 9207 §2).
fn error_redirect(p: &ProviderState, v: &Valid, e: AuthzError, status: StatusCode) -> Response {
    tracing::info!(client_id = %v.client.client_id, error = e.code.as_str(), "authorization refused");
    let mut params = vec![
        ("error", e.code.as_str()),
        ("error_description", e.description),
    ];
    if let Some(st) = v.params.state.as_deref() {
        params.push(("state", st));
    }
    params.push(("iss", p.issuer.as_str()));
    redirect(status, &response_url(&v.redirect_uri, &params))
}

/// The browser to `auth.login_url`, coming back to this authorization
/// request at the issuer (as a GET, whatever it was); `None` without a
/// login URL.
fn login_redirect(
    state: &AppState,
    p: &ProviderState,
    params: &AuthorizationParams,
    drop_reauth: bool,
) -> Option<Response> {
    let template = state.settings.login_url.as_deref()?;
    let back = response_url(&p.endpoint(AUTHORIZE_PATH), &params.to_pairs(drop_reauth));
    Some(redirect(
        StatusCode::FOUND,
        &crate::urls::fill_url_template(template, &back),
    ))
}

fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = status.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        // A registered URI is printable ASCII (checked by the
        // configuration); anything else is a bug, not a redirect.
        Err(_) => PageError::Internal("a redirect address is not a header value").into_response(),
    }
}

async fn audit(state: &AppState, s: &SignedIn, action: &str, detail: &str) {
    let Some(accounts) = state.accounts() else {
        return;
    };
    let e = AuditEntry::new(
        now_ms(),
        s.identity.username.as_str(),
        action,
        format!("account:{}", s.account_id),
    )
    .with_client_ip(s.ctx.client_ip)
    .with_detail(detail);
    crate::accounts::record_audit(&**accounts.store(), &e).await;
}
