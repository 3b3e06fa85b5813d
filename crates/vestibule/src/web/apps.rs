//! Apps with access (issue 14): the OpenID Connect grants a person holds,
//! and revoking them.
//!
//! - `/.vestibule/apps`: your own grants, one row each (the client's name,
//!   the scopes in words, created, last used, and where it came from), a
//!   Revoke button per grant.
//! - `/.vestibule/admin/apps/{account}`: an administrator's view of one
//!   account's grants, linked from the admin page's accounts table, with
//!   the same Revoke button.
//!
//! Both revoke through [`provider::grants::revoke`], the one way a person
//! revokes a grant (it audits, counts and forgets the consent). Every
//! revocation is a CSRF-checked POST answered with 303 once the grant is
//! gone from the store.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use vestibule_store::hex;

use super::chrome::{Chrome, Nav};
use super::extract::{AdminSession, CookieSlot, CsrfForm, PageError, SignedIn, is_admin};
use super::flash::{Flash, Notice};
use super::session::PageSession;
use super::{accounts, csrf_field, done, render, when};
use crate::accounts::admin::Actor;
use crate::provider::grants::{self, By, GrantView};
use crate::state::AppState;

/// The user's own page.
pub(crate) const APPS_PATH: &str = "/.vestibule/apps";
/// Where the user's Revoke buttons post.
pub(crate) const REVOKE_PATH: &str = "/.vestibule/apps/revoke";
/// Where the admin's Revoke buttons post.
pub(crate) const ADMIN_REVOKE_PATH: &str = "/.vestibule/admin/grants/revoke";

/// A grant, as the page shows it.
struct Row {
    id: i64,
    client: String,
    client_id: String,
    scopes: Vec<String>,
    created: String,
    last_used: String,
    /// `origin`, with the granting session's browser when known.
    origin: String,
}

impl From<GrantView> for Row {
    fn from(g: GrantView) -> Self {
        Self {
            id: g.id,
            client: g.client_name,
            client_id: g.client_id,
            scopes: g.scopes,
            created: when(g.created_at),
            last_used: when(g.last_used_at),
            origin: match g.device {
                Some(d) => format!("{} ({d})", g.origin),
                None => g.origin.to_owned(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    /// Whose grants: empty on the user's own page, the username on the
    /// admin's.
    owner: String,
    /// Whether this gateway is an OpenID Connect provider at all.
    provider: bool,
    grants: Vec<Row>,
    action: &'static str,
    csrf: String,
    chrome: Chrome,
}

/// The rows of `account_id`'s grants; none when the provider is off.
async fn rows(
    state: &AppState,
    account_id: i64,
    current_session: Option<&str>,
) -> Result<Vec<Row>, PageError> {
    let Some(p) = state.provider.as_deref() else {
        return Ok(Vec::new());
    };
    Ok(
        grants::views(p.store.as_ref(), &p.clients, account_id, current_session)
            .await?
            .into_iter()
            .map(Row::from)
            .collect(),
    )
}

/// `GET /.vestibule/apps`.
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    flash: Flash,
) -> Result<Response, PageError> {
    let current = hex(&s.id_hash);
    Ok(render(AppsPage {
        owner: String::new(),
        provider: state.provider.is_some(),
        grants: rows(&state, s.account_id, Some(&current)).await?,
        action: REVOKE_PATH,
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Apps, is_admin(&state, &s), flash),
    }))
}

/// `GET /.vestibule/admin/apps/{account}`.
pub(super) async fn admin_page(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    flash: Flash,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let account = accounts(&state)?
        .store()
        .account(id)
        .await?
        .ok_or_else(|| PageError::not_found("No such account."))?;
    Ok(render(AppsPage {
        owner: account.username,
        provider: state.provider.is_some(),
        grants: rows(&state, id, None).await?,
        action: ADMIN_REVOKE_PATH,
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Admin, true, flash),
    }))
}

/// A Revoke button's form: the grant.
#[derive(Deserialize)]
pub(crate) struct GrantForm {
    csrf: String,
    id: i64,
}
csrf_field!(GrantForm);

/// Who acts, for the audit log.
fn actor(s: &PageSession) -> Actor {
    Actor {
        name: s.identity.username.clone(),
        client_ip: s.ctx.client_ip,
        note: String::new(),
        guard: None,
    }
}

/// The provider's store, or a bare 404 when the provider is off (no grant
/// can exist).
fn provider_store(state: &AppState) -> Result<&Arc<dyn vestibule_store::Store>, PageError> {
    state
        .provider
        .as_deref()
        .map(|p| &p.store)
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))
}

/// `POST /.vestibule/apps/revoke`: the user revokes one of their own
/// grants. Another account's grant id is a 404, like an unknown one.
// Alike admin_revoke below: a CSRF-checked form handler's extractors; the owner check differs.
pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<GrantForm>>,
) -> Result<Response, PageError> {
    let store = provider_store(&state)?;
    if grants::revoke(
        store.as_ref(),
        Some(&state.metrics),
        f.id,
        Some(s.account_id),
        By::Owner,
        &actor(&s),
    )
    .await?
    .is_none()
    {
        return Err(PageError::not_found("You have no such app access."));
    }
    Ok(done(&slot, &s, APPS_PATH, Notice::GrantRevoked))
}

/// `POST /.vestibule/admin/grants/revoke`: an administrator revokes
/// anyone's grant, then returns to that account's page.
pub(super) async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<GrantForm>>,
) -> Result<Response, PageError> {
    let store = provider_store(&state)?;
    let Some(g) = grants::revoke(
        store.as_ref(),
        Some(&state.metrics),
        f.id,
        None,
        By::Admin,
        &actor(&s),
    )
    .await?
    else {
        return Err(PageError::not_found("No such app access."));
    };
    let back = format!("/.vestibule/admin/apps/{}", g.account_id);
    Ok(done(&slot, &s, &back, Notice::GrantRevoked))
}
