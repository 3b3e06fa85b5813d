//! `/.vestibule/login` and `/.vestibule/logout`: the two addresses apps link
//! to for "sign in" and "sign out", and the only places vestibule sends a
//! browser to an address taken from the request (`rd` or `return_to`).
//!
//! An open redirect here would let anyone send a link that goes through
//! the user's trusted gateway and lands on a look-alike site, so every
//! return address is checked against the configured origins by
//! [`vestibule_core::redirect`] and refused with 400 otherwise (never
//! silently replaced: a broken link should be noticed and fixed).
//!
//! Logout accepts GET, as apps link to it; the worst a forged link can do
//! is sign someone out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use vestibule_core::redirect::Origin;
use vestibule_core::secret::hash_token;

use super::extract::{Client, CookieSlot, Identified, PageError};
use super::session::{https, presented_token};
use super::{cookies, see_other};
use crate::accounts::now_ms;
use crate::http::responses::{page, wants_html};
use crate::identity::client_identity::ClientContext;
use crate::state::AppState;
use crate::urls::{RequestView, fill_login_url, fill_url_template, original_url};

/// Where to go afterwards. `rd` (Authelia, oauth2-proxy, Traefik) and
/// `return_to` (Pomerium, Kratos) are both understood.
#[derive(Debug, Deserialize)]
pub(super) struct ReturnQuery {
    rd: Option<String>,
    return_to: Option<String>,
}

/// The request's own origin, as the browser sees it.
fn here(ctx: &ClientContext, headers: &HeaderMap, uri: &http::Uri) -> Option<Origin> {
    let view = RequestView::of(headers, uri);
    Origin::of_url(&original_url(ctx, &view)).ok()
}

pub(super) fn bad(message: String) -> PageError {
    PageError::refused(
        StatusCode::BAD_REQUEST,
        "Link refused",
        message,
        "The link that brought you here points somewhere vestibule does not send people to. Go back to the app and try again.",
    )
}

/// The query, or the 400 page for one that cannot be read (a repeated
/// `rd`, say) instead of axum's bare text.
pub(super) fn return_query(
    q: Result<Query<ReturnQuery>, QueryRejection>,
) -> Result<ReturnQuery, PageError> {
    q.map(|Query(q)| q).map_err(|e| {
        tracing::info!(error = %e, "a login or logout link's query was refused");
        bad("The link's return address could not be read.".into())
    })
}

/// Who asks, where from, and where they want to go afterwards.
pub(super) struct Target {
    pub(super) ctx: ClientContext,
    /// The request's own origin.
    pub(super) here: Origin,
    /// The checked return address, if the query names one.
    pub(super) dest: Option<String>,
}

/// Resolves the request's [`Target`]; the error is the message for the
/// 400 page.
pub(super) fn target(
    state: &AppState,
    ctx: ClientContext,
    headers: &HeaderMap,
    uri: &http::Uri,
    q: &ReturnQuery,
) -> Result<Target, String> {
    let here = here(&ctx, headers, uri).ok_or("The request has no usable Host.")?;
    let raw = match (q.rd.as_deref(), q.return_to.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err("The link names two different return addresses.".into());
        }
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    let dest = match raw {
        Some(raw) => Some(state.routes().redirects.check(raw, &here).map_err(|e| {
            tracing::info!(error = %e, "return address refused");
            format!("The return address was refused: {e}.")
        })?),
        None => None,
    };
    Ok(Target { ctx, here, dest })
}

/// `GET /.vestibule/login?rd=…`: a signed-in browser goes to `rd` (or
/// vestibule's own root); an anonymous one to the SSO front's login page,
/// which brings it back here.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    headers: HeaderMap,
    uri: http::Uri,
    q: Result<Query<ReturnQuery>, QueryRejection>,
    Identified(identity): Identified,
) -> Result<Response, PageError> {
    let q = return_query(q)?;
    let Target { ctx, here, dest } = target(&state, ctx, &headers, &uri, &q).map_err(bad)?;
    let dest = dest.unwrap_or_else(|| format!("{here}/"));
    if identity.is_some() {
        return Ok(see_other(&dest));
    }
    match &state.settings.login_url {
        Some(template) => Ok(see_other(&fill_login_url(
            template,
            &ctx,
            &RequestView::of(&headers, &uri),
        ))),
        None => {
            tracing::info!("a browser asked to sign in, but auth.login_url is not set");
            Err(PageError::refused(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                "Sign in through your SSO portal, then open this page again.",
                "This gateway has no sign-in page of its own.",
            ))
        }
    }
}

/// Ends the page session the request presents, if any, and clears its
/// cookie: the one logout rule, shared by `/.vestibule/logout` and the
/// provider's end-session endpoint. The session row is revoked (and the
/// end audited, `detail` saying which way) before the browser is told it
/// is signed out: a store error is a 503, never a false "signed out".
pub(crate) async fn end_page_session(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    slot: &CookieSlot,
    detail: &str,
) -> Result<(), PageError> {
    let https = https(ctx, headers);
    if let Some(accounts) = state.accounts()
        && let Some(token) = presented_token(headers, https)
    {
        let store = accounts.store();
        let hash = hash_token(token);
        let ended = match store.session(&hash).await {
            Ok(Some(s)) => store
                .revoke_session(&hash)
                .await
                .map(|_| Some(format!("{}:{}", s.source, s.subject))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match ended {
            Ok(Some(who)) => {
                let entry =
                    vestibule_store::AuditEntry::new(now_ms(), who.clone(), "session-end", who)
                        .with_client_ip(ctx.client_ip)
                        .with_detail(detail);
                crate::accounts::record_audit(&**store, &entry).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "logout could not end the session");
                return Err(PageError::refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again",
                    "vestibule could not end your session just now.",
                    "Reload the page in a moment.",
                ));
            }
        }
    }
    slot.set(cookies::clear(https));
    Ok(())
}

/// `GET|POST /.vestibule/logout?return_to=…`: ends vestibule's page
/// session, then hands over to the SSO front's sign-out (`auth.logout_url`)
/// or goes to the return address.
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    uri: http::Uri,
    q: Result<Query<ReturnQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = return_query(q)?;
    let Target { ctx, here, dest } = target(&state, ctx, &headers, &uri, &q).map_err(bad)?;
    // A session from the OIDC login also ends at the provider (read
    // before the session ends: its record goes with it).
    let at_provider = super::oidc_login::end_session_location(&state, &ctx, &headers).await;
    end_page_session(&state, &ctx, &headers, &slot, "logout").await?;
    if let Some(location) = at_provider {
        return Ok(see_other(&location));
    }
    Ok(match (&state.settings.logout_url, dest) {
        (Some(template), dest) => {
            let back = dest.unwrap_or_else(|| format!("{here}/"));
            see_other(&fill_url_template(template, &back))
        }
        (None, Some(dest)) => see_other(&dest),
        (None, None) => page(
            StatusCode::OK,
            wants_html(&headers),
            "Signed out",
            "You are signed out of vestibule.",
            "Sign out of your SSO portal too if you share this device.",
        ),
    })
}
