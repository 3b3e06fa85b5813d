//! Linking a second source without takeover (issue 15): a signed-in
//! person links their account at the OpenID provider (`[source.oidc]`)
//! to their vestibule account, by passing the provider's login while
//! signed in; and unlinks an identity from it.
//!
//! - `POST /.vestibule/account/link` (CSRF): starts the provider's login
//!   in *link mode*: the pending row records the account and the SHA-256
//!   of the session that asked (migration 0014).
//! - The callback ([`super::oidc_login::callback`]) runs every check of an
//!   ordinary sign-in on the provider's answer (`iss`, `state`, PKCE, the
//!   ID token), then [`finish`]: the (issuer, `sub`) is linked to that
//!   account only while this browser still presents that same session,
//!   live. An identity already linked to another account is refused:
//!   never merged, never moved. No session is opened by a link.
//! - `POST /.vestibule/account/identities/unlink` (CSRF): unlinks one of
//!   the account's identities, never its last one; the sessions it opened
//!   end with it.
//!
//! Nothing here matches accounts by email or username: without this flow
//! a first sign-in from the provider gets its own account (or waits for
//! approval) under `[source.oidc] provisioning`, whatever its email.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use vestibule_core::oidc_link::{AskingSession, LinkRefusal, may_link};
use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, AuditEntry, IdentityKey, StoreError};

use super::extract::{CookieSlot, CsrfForm, PageError, SignedIn};
use super::flash::Notice;
use super::see_other;
use super::session::{https, presented_token};
use crate::accounts::now_ms;
use crate::identity::client_identity::ClientContext;
use crate::state::AppState;

/// Where the link action posts.
pub(crate) const LINK_PATH: &str = "/.vestibule/account/link";
/// Where the unlink action posts.
pub(crate) const UNLINK_PATH: &str = "/.vestibule/account/identities/unlink";
/// Where the browser comes back to.
const ACCOUNT_PATH: &str = "/.vestibule/account";

/// The link form: the CSRF token only.
#[derive(Deserialize)]
pub(super) struct LinkForm {
    csrf: String,
}

/// The unlink form: which identity.
#[derive(Deserialize)]
pub(super) struct UnlinkForm {
    csrf: String,
    source: String,
    subject: String,
}

super::csrf_field!(LinkForm, UnlinkForm);

fn refused(status: StatusCode, title: &'static str, message: &'static str) -> PageError {
    PageError::refused(status, title, message, "Nothing was linked.")
}

/// Appends an `identity-link` / `identity-unlink` entry.
async fn record(
    state: &AppState,
    ctx: &ClientContext,
    action: &str,
    account_id: i64,
    key: &IdentityKey,
    outcome: &str,
    detail: &str,
) {
    let Some(accounts) = state.accounts() else {
        return;
    };
    let e = AuditEntry::new(
        now_ms(),
        format!("account:{account_id}"),
        action,
        format!("{}:{}", key.source, key.subject),
    )
    .with_client_ip(ctx.client_ip)
    .with_outcome(outcome)
    .with_detail(detail);
    crate::accounts::record_audit(&**accounts.store(), &e).await;
}

/// `POST /.vestibule/account/link`: starts the provider's login in link
/// mode for the signed-in account and this session. 404 without
/// `[source.oidc]`; refused when the account already has an identity from
/// this provider (unlink it first).
pub(super) async fn start(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    _: CsrfForm<Form<LinkForm>>,
) -> Result<Response, PageError> {
    let upstream = state
        .oidc_upstream()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))?
        .clone();
    let Some(accounts) = state.accounts() else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    let settings = upstream.settings();
    let identities = accounts.store().identities(s.account_id).await?;
    if identities.iter().any(|k| k.source == settings.issuer) {
        return Err(refused(
            StatusCode::CONFLICT,
            "Already linked",
            "Your account already has a sign-in from this provider. Unlink it first to link another.",
        ));
    }
    // Back to the account page, on vestibule's public origin (the
    // redirect URL's): a fixed address, never one from the request.
    let origin = format!(
        "{}://{}",
        settings.redirect_url.scheme_str().unwrap_or("https"),
        settings.redirect_url.authority().map_or("", |a| a.as_str())
    );
    super::oidc_login::begin(
        &state,
        &upstream,
        &s.ctx,
        &headers,
        &slot,
        format!("{origin}{ACCOUNT_PATH}"),
        Some((s.account_id, s.id_hash)),
    )
    .await
}

/// The callback in link mode, after every check of the provider's answer:
/// links `key` to the account that asked, only while this browser still
/// presents the session that asked (same id, live, not idle, same
/// account) and the account is active. Audited either way.
pub(super) async fn finish(
    state: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    slot: &CookieSlot,
    (account_id, session_hash): (i64, [u8; 32]),
    key: &IdentityKey,
    return_to: &str,
) -> Result<Response, PageError> {
    let Some(accounts) = state.accounts() else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    let store = accounts.store();
    let now = now_ms();
    let idle = i64::try_from(state.settings.sessions.idle.as_millis()).unwrap_or(i64::MAX);
    let https = https(ctx, headers);
    let presented = presented_token(headers, https).map(hash_token);
    // A callback reaching another browser, or this browser after a
    // sign-out or a sign-in as someone else, links nothing (core's rule,
    // `vestibule_core::oidc_link::may_link`, which compares the presented
    // session with the asking one in constant time).
    let asking = store.session(&session_hash).await?;
    let active = match &asking {
        Some(x) if x.account_id == account_id => store
            .account(account_id)
            .await?
            .is_some_and(|a| a.status == AccountStatus::Active),
        _ => false,
    };
    let decision = may_link(
        presented.as_ref(),
        &session_hash,
        account_id,
        asking.map(|x| AskingSession {
            account_id: x.account_id,
            expires_at: x.expires_at,
            last_seen_at: x.last_seen_at,
        }),
        active,
        now,
        idle,
    );
    if let Err(why) = decision {
        let detail = match why {
            LinkRefusal::NotTheAskingSession => "the browser presents another session",
            LinkRefusal::SessionEnded => "the session that asked is no longer signed in",
            LinkRefusal::AccountInactive => "the account is not active",
        };
        record(
            state,
            ctx,
            "identity-link",
            account_id,
            key,
            "refused",
            detail,
        )
        .await;
        return Err(refused(
            StatusCode::FORBIDDEN,
            "Linking not accepted",
            "The account you started linking from is no longer signed in in this browser.",
        ));
    }
    match store.link_identity(account_id, key).await {
        Ok(()) => {
            record(state, ctx, "identity-link", account_id, key, "ok", "").await;
            Notice::IdentityLinked.set(slot, https);
            Ok(see_other(return_to))
        }
        Err(StoreError::Conflict(_)) => {
            let owner = store.account_by_identity(key).await?.map(|a| a.id);
            if owner == Some(account_id) {
                // Linked already (a second tab, say): nothing to do.
                return Ok(see_other(return_to));
            }
            record(
                state,
                ctx,
                "identity-link",
                account_id,
                key,
                "refused",
                "the identity belongs to another account",
            )
            .await;
            Err(refused(
                StatusCode::CONFLICT,
                "Linked to another account",
                "This sign-in already belongs to another account here. Accounts are never merged or taken over; an administrator can sort it out.",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /.vestibule/account/identities/unlink`: unlinks one of the
/// signed-in account's identities, never the last one.
pub(super) async fn unlink(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<UnlinkForm>>,
) -> Result<Response, PageError> {
    let Some(accounts) = state.accounts() else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    let key = IdentityKey::new(f.source, f.subject);
    if !accounts.store().unlink_identity(s.account_id, &key).await? {
        return Err(PageError::refused(
            StatusCode::CONFLICT,
            "Not unlinked",
            "That sign-in is your account's last one, or not your account's.",
            "Nothing was changed.",
        ));
    }
    record(
        &state,
        &s.ctx,
        "identity-unlink",
        s.account_id,
        &key,
        "ok",
        "",
    )
    .await;
    Notice::IdentityUnlinked.set(&slot, s.https);
    Ok(see_other(ACCOUNT_PATH))
}
