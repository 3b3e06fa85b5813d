//! The consent page (OIDC Core §3.1.2.4): names the client and what it
//! will receive, in plain words, and asks to allow or deny. The answer is
//! a CSRF-checked POST from the person's own page session; the form
//! carries the authorization request, which is checked again in full when
//! it comes back (the person could have changed it; only their own
//! request is affected).
//!
//! An allowed request is remembered per user, client and scopes
//! (`ProviderStore::put_consent`, the union with what was allowed before):
//! a later request for a subset skips the page; one that asks for more
//! asks again. Clients with `consent = "implicit"` (first-party apps)
//! never show it, unless the request says `prompt=consent`.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use vestibule_core::oidc_provider::{AuthorizationParams, CheckedRequest};

use super::CONSENT_PATH;
use super::authorize::{Answer, Valid, decide, provider, validate_client};
use crate::state::AppState;
use crate::web::chrome::{Chrome, Nav};
use crate::web::extract::{CookieSlot, CsrfForm, Fields, PageError, SignedIn, is_admin};
use crate::web::flash::Flash;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    client: String,
    username: String,
    scopes: Vec<String>,
    redirect_uri: String,
    action: &'static str,
    fields: Vec<(&'static str, String)>,
    csrf: String,
    chrome: Chrome,
}

/// What a scope gives the client, in plain words.
pub(super) fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Who you are on this gateway (an identifier for your account)".into(),
        "profile" => "Your name and user name".into(),
        "email" => "Your email address".into(),
        "groups" => "The groups you belong to".into(),
        "offline_access" => {
            "Access while you are away: it stays signed in until you revoke it".into()
        }
        other => format!("The permission “{other}”"),
    }
}

/// The consent page for a checked request.
pub(super) fn page(state: &AppState, v: &Valid, req: &CheckedRequest, s: &SignedIn) -> Response {
    let page = ConsentPage {
        client: v.client.name.clone(),
        username: s.identity.username.clone(),
        scopes: req.scopes.iter().map(|x| describe(x)).collect(),
        redirect_uri: v.redirect_uri.clone(),
        action: CONSENT_PATH,
        // prompt and max_age were honoured when the page was shown.
        fields: v
            .params
            .to_pairs(true)
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect(),
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::None, is_admin(state, s), Flash(None)),
    };
    match page.render() {
        Ok(h) => Html(h).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /.vestibule/oidc/consent`: `decision=allow|deny` and the request.
pub async fn answer(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Fields(fields)): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let p = provider(&state)?;
    let answer = match fields
        .iter()
        .find(|(k, _)| k == "decision")
        .map(|(_, v)| v.as_str())
    {
        Some("allow") => Answer::Allow,
        Some("deny") => Answer::Deny,
        _ => return Err(PageError::BadForm("Choose Allow or Deny.".into())),
    };
    let params =
        AuthorizationParams::from_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let v = validate_client(p, &params).await?;
    // RFC 9700 §4.11 / the BCP's advice on credential forms: 303 after a
    // POST, never 307 (which would re-post the form to the client).
    decide(
        &state,
        p,
        v,
        Ok(s),
        Some(slot),
        Some(answer),
        StatusCode::SEE_OTHER,
    )
    .await
}
