//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at
//! `/.vestibule/oidc/end_session`, GET and POST.
//!
//! - The request's rules (parameters once each, the client named by the
//!   hint or `client_id` and both agreeing, the exact post-logout redirect)
//!   are `vestibule_core::oidc_logout`'s; here the `id_token_hint` is
//!   verified: a JWS signed by one of our key families, `iss` ours byte
//!   for byte. Its `exp` is not checked (§2: "the OP need not be concerned
//!   with the ID Token's expiration"): apps typically send the ID token of
//!   a sign-in long past.
//! - With a valid hint for the signed-in account, the session ends at
//!   once. Without one (no hint, or a hint for another account) the person
//!   is asked first (§2, §6: a forged link must not sign anyone out
//!   silently); the answer is a CSRF-checked POST to [`CONFIRM_PATH`].
//! - The session ends by the one logout rule
//!   ([`crate::web::login::end_page_session`]); then the browser goes to
//!   the client's registered `post_logout_redirect_uri` with `state`, or
//!   gets a "signed out" page. An invalid hint, an unknown client or a
//!   client mismatch is a 400 page, never a redirect.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use vestibule_core::oidc_logout::{
    EndSessionRequest, parse_end_session, post_logout_redirect, requesting_client,
};

use super::{Provider, find_client, provider};
use crate::accounts::now_ms;
use crate::http::responses::{page, wants_html};
use crate::state::AppState;
use crate::web::chrome::{Chrome, Nav};
use crate::web::extract::{Client, CookieSlot, CsrfForm, Fields, PageError, SignedIn, is_admin};
use crate::web::flash::Flash;
use crate::web::login::end_page_session;
use crate::web::see_other;

/// Where the confirmation form is answered.
pub const CONFIRM_PATH: &str = "/.vestibule/oidc/end_session/confirm";

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    title: &'static str,
    message: String,
    action: &'static str,
    fields: Vec<(&'static str, String)>,
    button: &'static str,
    cancel: &'static str,
    csrf: String,
    chrome: Chrome,
}

fn refused(message: String) -> PageError {
    PageError::refused(
        StatusCode::BAD_REQUEST,
        "Sign-out refused",
        message,
        "The app sent a sign-out request vestibule cannot accept. Sign out from vestibule's own pages instead.",
    )
}

/// What a verified `id_token_hint` says.
struct Hint {
    /// `aud`: the client it was issued to.
    client_id: String,
    /// `sub`: the account.
    subject: String,
}

/// Verifies an `id_token_hint`: our signature (any family, current or
/// retired key still published), our `iss`; expiry ignored (§2).
fn verify_hint(p: &Provider<'_>, issuer: &str, hint: &str) -> Result<Hint, String> {
    let claims = super::id_token::verify_own(
        p.keys,
        hint,
        &[super::id_token::ID_TOKEN_TYP],
        false,
        now_ms(),
    )?;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
        return Err("issued by someone else".into());
    }
    let client_id = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a.clone(),
        _ => return Err("no single audience".into()),
    };
    // Every ID token names its client in `azp` too (id_token.rs): this
    // tells it from other JWTs signed with the same keys.
    if claims.get("azp").and_then(|v| v.as_str()) != Some(client_id.as_str()) {
        return Err("not an ID token of ours (azp)".into());
    }
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .ok_or("no sub")?
        .to_owned();
    Ok(Hint { client_id, subject })
}

/// Where to go after the session ended: the checked redirect, or `None`
/// for the "signed out" page.
async fn destination(
    p: &Provider<'_>,
    client_id: Option<&str>,
    req: &EndSessionRequest,
) -> Result<Option<String>, PageError> {
    let Some(client_id) = client_id else {
        // §3: no client identified, no redirection.
        return Ok(None);
    };
    let Some(client) = find_client(p, client_id).await? else {
        return Err(refused("The app that sent you here is not known.".into()));
    };
    Ok(post_logout_redirect(
        &client.post_logout_redirect_uris,
        req.post_logout_redirect_uri.as_deref(),
        req.state.as_deref(),
    ))
}

/// After the session ended: the redirect, or the page.
fn done(headers: &HeaderMap, dest: Option<String>) -> Response {
    match dest {
        Some(url) => see_other(&url),
        None => page(
            StatusCode::OK,
            wants_html(headers),
            "Signed out",
            "You are signed out of vestibule.",
            "Sign out of your SSO portal too if you share this device.",
        ),
    }
}

/// `GET|POST /.vestibule/oidc/end_session`.
#[allow(clippy::too_many_arguments)]
pub async fn end_session(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    signed_in: Result<SignedIn, PageError>,
    method: Method,
    headers: HeaderMap,
    uri: http::Uri,
    body: Bytes,
) -> Result<Response, PageError> {
    let Some(p) = provider(&state) else {
        return Ok(super::not_configured());
    };
    let issuer = state
        .provider
        .as_deref()
        .map(|x| x.issuer.clone())
        .unwrap_or_default();
    let raw: &[u8] = if method == Method::POST {
        // §2: POST uses form serialization.
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(refused("The request is not a form.".into()));
        }
        &body
    } else {
        uri.query().unwrap_or("").as_bytes()
    };
    let req = parse_end_session(raw).map_err(|e| refused(format!("{e}.")))?;
    let hint = match &req.id_token_hint {
        Some(h) => Some(verify_hint(&p, &issuer, h).map_err(|why| {
            tracing::info!(%why, "an end-session id_token_hint was refused");
            refused("The app's proof of your sign-in (id_token_hint) is not valid.".into())
        })?),
        None => None,
    };
    let client_id = requesting_client(
        hint.as_ref().map(|h| h.client_id.as_str()),
        req.client_id.as_deref(),
    )
    .map_err(|e| refused(format!("{e}.")))?;
    let dest = destination(&p, client_id, &req).await?;
    let s = match signed_in {
        Ok(s) => s,
        // Nobody signed in: nothing to end; the cookie (if any) goes.
        Err(_) => {
            end_page_session(&state, &ctx, &headers, &slot, "oidc end_session").await?;
            return Ok(done(&headers, dest));
        }
    };
    let hint_is_theirs = hint
        .as_ref()
        .is_some_and(|h| h.subject == super::id_token::subject(s.account_id));
    if hint_is_theirs {
        end_page_session(&state, &ctx, &headers, &slot, "oidc end_session").await?;
        return Ok(done(&headers, dest));
    }
    // §6: without proof that the app speaks for this person, ask.
    let mut fields = Vec::new();
    if let Some(c) = client_id {
        fields.push(("client_id", c.to_owned()));
    }
    if let Some(u) = &req.post_logout_redirect_uri {
        fields.push(("post_logout_redirect_uri", u.clone()));
    }
    if let Some(st) = &req.state {
        fields.push(("state", st.clone()));
    }
    let who = match client_id {
        Some(c) => match find_client(&p, c).await? {
            Some(client) => format!("{} asks to sign you out", client.name),
            None => "An app asks to sign you out".into(),
        },
        None => "A link asks to sign you out".into(),
    };
    let page = ConfirmPage {
        title: "Sign out?",
        message: format!(
            "{who} of vestibule ({}). Sign out only if you meant to.",
            s.identity.username
        ),
        action: CONFIRM_PATH,
        fields,
        button: "Sign out",
        cancel: "/",
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::None, is_admin(&state, &s), Flash(None)),
    };
    Ok(match page.render() {
        Ok(h) => Html(h).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    })
}

/// `POST /.vestibule/oidc/end_session/confirm`: the person confirmed.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    CsrfForm(Fields(fields)): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let Some(p) = provider(&state) else {
        return Ok(super::not_configured());
    };
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, v)| k == n && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let req = EndSessionRequest {
        id_token_hint: None,
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    };
    // The form is checked again in full: the person could have changed it.
    let dest = destination(&p, req.client_id.as_deref(), &req).await?;
    end_page_session(&state, &ctx, &headers, &slot, "oidc end_session").await?;
    Ok(done(&headers, dest))
}
