//! The one way into a page: extractors for the client, its identity, its
//! page session and CSRF-checked forms, one error type for every refusal,
//! and the layer that puts the session cookie on every response.
//!
//! - [`layer`] (on the page router) puts a [`CookieSlot`] into the request
//!   before any extractor runs and appends what was written to it to
//!   *whatever* comes back: the handler's page, an extractor's rejection or
//!   an error page (tower-cookies' `CookieManager` shape). A session the
//!   request just earned is therefore never dropped by an early return.
//! - [`Client`]: connection facts and the resolved [`ClientContext`],
//!   resolved once and cached in the extensions (cloned, never removed, so
//!   a second extractor sees it too).
//! - [`Identified`]: the one [`authenticate`] for pages that only need to
//!   know whether someone is signed in (login).
//! - [`SignedIn`]: authenticate, resolve the account, find or start the
//!   session ([`page_session`]), once per request.
//! - [`AdminSession`]: [`SignedIn`] and a member of `accounts.admin_groups`
//!   (the setting is named in the log, never to the person).
//! - [`CsrfForm`]: the session from the parts, then the body, then a
//!   constant-time compare of its `csrf` field (axum's custom-extractor
//!   shape), so a handler that takes one cannot forget the check.
//! - [`PageError`]: every refusal of a page; the user-facing text is
//!   separate from the logged detail (vaultwarden's split), and the page is
//!   rendered by [`layer`], which knows whether the client wants HTML.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{BytesRejection, FormRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use vestibule_core::identity::Identity;
use vestibule_core::secret::secrets_equal;

use super::session::{PageSession, identity_refused, page_session};
use crate::http::responses::{page, plain, redirect, wants_html};
use crate::identity::authenticate::authenticate;
use crate::identity::client_identity::{self, ClientContext, ConnInfo};
use crate::state::AppState;

/// The `Set-Cookie`s a request earned (a new session or its removal, a
/// flash message), put on the response by [`layer`]. Per cookie name the
/// last write wins: a session started and then ended in the same request
/// leaves only the removal.
#[derive(Clone, Default)]
pub struct CookieSlot(Arc<Mutex<Vec<HeaderValue>>>);

/// The name in a `Set-Cookie` value (before the first `=`).
fn cookie_name(v: &HeaderValue) -> &[u8] {
    let b = v.as_bytes();
    b.iter().position(|c| *c == b'=').map_or(b, |i| &b[..i])
}

impl CookieSlot {
    /// Records a `Set-Cookie` to send, replacing one for the same name.
    pub fn set(&self, value: HeaderValue) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|c| cookie_name(c) != cookie_name(&value));
        v.push(value);
    }

    fn take(&self) -> Vec<HeaderValue> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The page router's layer: a [`CookieSlot`] in, its `Set-Cookie` out on
/// every response, and a [`PageError`] rendered for the client (HTML for
/// browsers, text otherwise). Unlike tower-sessions it appends on 5xx too:
/// the session row was written by the extractor, before the handler ran.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let slot = CookieSlot::default();
    let html = wants_html(req.headers());
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if let Some(e) = resp.extensions_mut().remove::<PageError>() {
        resp = e.render(html);
    }
    for c in slot.take() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Why a page request was refused. The text shown is in the variant; what
/// an operator needs goes to the log when the error is answered.
#[derive(Debug, Clone)]
pub enum PageError {
    /// A refusal the person should understand: a page with a title, a
    /// message and a hint.
    Refused {
        /// The status.
        status: StatusCode,
        /// The page title.
        title: &'static str,
        /// What happened.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The database could not be reached: 503 with `Retry-After`.
    Unavailable {
        /// Logged, never shown.
        detail: String,
    },
    /// The form's CSRF token does not match the session's: 403.
    CsrfRefused,
    /// A form field is wrong: 400, with what to correct.
    BadForm(String),
    /// A bare status without a body (devices off; an unknown device on the
    /// admin page).
    Status(StatusCode),
    /// A browser without identity goes to the SSO portal: 302.
    SignInAt(String),
    /// The request body could not be read or parsed as the form: axum's
    /// status and text.
    Body {
        /// The rejection's status (400, 413, 415, 422).
        status: StatusCode,
        /// The rejection's text.
        text: String,
    },
    /// A wiring mistake (the page router without its layer): 500.
    Internal(&'static str),
}

impl PageError {
    /// A refusal page.
    pub fn refused(
        status: StatusCode,
        title: &'static str,
        message: impl Into<String>,
        hint: &'static str,
    ) -> Self {
        Self::Refused {
            status,
            title,
            message: message.into(),
            hint,
        }
    }

    /// "Not found", with what was not found.
    pub fn not_found(message: &'static str) -> Self {
        Self::refused(StatusCode::NOT_FOUND, "Not found", message, "")
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Refused { status, .. } | Self::Status(status) | Self::Body { status, .. } => {
                *status
            }
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::CsrfRefused => StatusCode::FORBIDDEN,
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::SignInAt(_) => StatusCode::FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response, as HTML for browsers (`html`) or text.
    fn render(self, html: bool) -> Response {
        match self {
            Self::Refused {
                status,
                title,
                message,
                hint,
            } => page(status, html, title, &message, hint),
            Self::Unavailable { .. } => {
                let mut r = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    html,
                    "Try again shortly",
                    "vestibule cannot reach its database right now.",
                    "",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            Self::CsrfRefused => page(
                StatusCode::FORBIDDEN,
                html,
                "Request refused",
                "This form was not sent from your own session (its security token does not match).",
                "Reload the page and try again.",
            ),
            Self::BadForm(message) => page(
                StatusCode::BAD_REQUEST,
                html,
                "Check the form",
                &message,
                "Go back and correct it.",
            ),
            Self::Status(status) => page(
                status,
                html,
                status.canonical_reason().unwrap_or("Refused"),
                "There is nothing here.",
                "",
            ),
            Self::SignInAt(location) => redirect(&location),
            Self::Body { status, text } => page(
                status,
                html,
                "Check the form",
                &text,
                "Go back, reload the page and try again.",
            ),
            Self::Internal(what) => plain(StatusCode::INTERNAL_SERVER_ERROR, what),
        }
    }
}

impl IntoResponse for PageError {
    /// Logs the detail, then answers with the status and the error itself
    /// in the extensions; [`layer`] renders it for the client.
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable { detail } => {
                tracing::warn!(error = %detail, "database unavailable for a page request");
            }
            Self::Internal(what) => tracing::error!("page request failed: {what}"),
            _ => {}
        }
        let mut r = self.status().into_response();
        r.extensions_mut().insert(self);
        r
    }
}

impl From<vestibule_store::StoreError> for PageError {
    fn from(e: vestibule_store::StoreError) -> Self {
        Self::Unavailable {
            detail: e.to_string(),
        }
    }
}

impl From<FormRejection> for PageError {
    fn from(r: FormRejection) -> Self {
        Self::Body {
            status: r.status(),
            text: r.body_text(),
        }
    }
}

impl From<BytesRejection> for PageError {
    fn from(r: BytesRejection) -> Self {
        Self::Body {
            status: r.status(),
            text: r.body_text(),
        }
    }
}

/// The connection facts and who the client is, resolved once per request.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// What the listener recorded ([`ConnInfo::UNKNOWN`] without it: an
    /// untrusted peer, fail closed).
    pub conn: ConnInfo,
    /// The trust facts.
    pub ctx: ClientContext,
}

impl FromRequestParts<Arc<AppState>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Client>() {
            return Ok(*c);
        }
        let conn = parts
            .extensions
            .get::<ConnInfo>()
            .copied()
            .unwrap_or(ConnInfo::UNKNOWN);
        let ctx = client_identity::resolve(&state.settings, conn, &parts.headers);
        let c = Self { conn, ctx };
        parts.extensions.insert(c);
        Ok(c)
    }
}

/// The identity the front sent, if any, without an account or a session.
pub struct Identified(pub Option<Identity>);

impl FromRequestParts<Arc<AppState>> for Identified {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        let Ok(Client { ctx, .. }) = Client::from_request_parts(parts, state).await;
        authenticate(state, &ctx, &parts.headers)
            .await
            .map(Identified)
            .map_err(|e| identity_refused(&e))
    }
}

pub(super) fn cookie_slot(parts: &Parts) -> Result<CookieSlot, PageError> {
    parts
        .extensions
        .get::<CookieSlot>()
        .cloned()
        .ok_or(PageError::Internal("the page router has no cookie layer"))
}

/// A signed-in page request: identity, account and session.
#[derive(Clone)]
pub struct SignedIn(pub Arc<PageSession>);

impl Deref for SignedIn {
    type Target = PageSession;
    fn deref(&self) -> &PageSession {
        &self.0
    }
}

// Alike Identified above and AdminSession below, and flash.rs Flash: the axum extractor shape.
impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        if let Some(s) = parts.extensions.get::<Arc<PageSession>>() {
            return Ok(Self(s.clone()));
        }
        let slot = cookie_slot(parts)?;
        let Ok(Client { ctx, .. }) = Client::from_request_parts(parts, state).await;
        let s = Arc::new(page_session(state, ctx, &parts.headers, &parts.uri, &slot).await?);
        parts.extensions.insert(s.clone());
        Ok(Self(s))
    }
}

/// Whether the session's holder is an administrator.
pub fn is_admin(state: &AppState, s: &PageSession) -> bool {
    state
        .settings
        .accounts
        .as_ref()
        .is_some_and(|a| a.admin_groups.iter().any(|g| s.identity.in_group(g)))
}

/// A signed-in administrator.
pub struct AdminSession(pub SignedIn);

impl Deref for AdminSession {
    type Target = PageSession;
    fn deref(&self) -> &PageSession {
        &self.0
    }
}

impl FromRequestParts<Arc<AppState>> for AdminSession {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        let s = SignedIn::from_request_parts(parts, state).await?;
        if !is_admin(state, &s) {
            // The setting is named to the operator, in the log only.
            tracing::info!(
                user = %s.identity.username,
                "an admin page was refused: not in a group of accounts.admin_groups"
            );
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This page is for administrators, and your account is not one.",
                "If you need it, ask an administrator.",
            ));
        }
        Ok(Self(s))
    }
}

/// A form body that carries a CSRF token.
pub trait CsrfField {
    /// The token the form sent (empty when none).
    fn csrf(&self) -> &str;
}

impl<T: CsrfField> CsrfField for axum::Form<T> {
    fn csrf(&self) -> &str {
        self.0.csrf()
    }
}

/// A state-changing form from the signed-in person's own session: the
/// session is extracted from the parts first (and cached for the
/// handler's [`SignedIn`]), then the body as `F`, then the tokens are
/// compared in constant time.
pub struct CsrfForm<F>(pub F);

impl<F> FromRequest<Arc<AppState>> for CsrfForm<F>
where
    F: FromRequest<Arc<AppState>> + CsrfField,
    PageError: From<F::Rejection>,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let s = SignedIn::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let form = F::from_request(req, state).await?;
        if !secrets_equal(form.csrf(), &s.csrf) {
            return Err(PageError::CsrfRefused);
        }
        Ok(Self(form))
    }
}

/// A form's fields, in order, repeated names kept (axum's `Form` into a
/// struct would keep only one `route`). Read whatever the content type.
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl CsrfField for Fields {
    fn csrf(&self) -> &str {
        self.get("csrf").unwrap_or("")
    }
}

impl FromRequest<Arc<AppState>> for Fields {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, PageError> {
        let body = axum::body::Bytes::from_request(req, state).await?;
        Ok(Self(form_fields(&body)))
    }
}

/// `application/x-www-form-urlencoded` fields, in order.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(b: &[u8]) -> String {
    // application/x-www-form-urlencoded: `+` is a space.
    let plus: Vec<u8> = b
        .iter()
        .map(|c| if *c == b'+' { b' ' } else { *c })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_decode() {
        let f = Fields(form_fields(
            b"csrf=a%2Bb&route=photos&route=music&name=My+Phone&empty",
        ));
        assert_eq!(f.csrf(), "a+b");
        assert_eq!(f.get("name"), Some("My Phone"));
        let routes: Vec<_> = f.0.iter().filter(|(k, _)| k == "route").collect();
        assert_eq!(routes.len(), 2);
        assert_eq!(f.get("empty"), Some(""));
    }
}
