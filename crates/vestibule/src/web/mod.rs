//! vestibule's own pages under `/.vestibule/`: the account page (identity
//! and sessions), the devices pages (device credentials and pairing, in
//! [`devices`]), apps with access (OpenID Connect grants, in [`apps`]) and
//! the admin page (approve, disable, enable accounts; revoke anyone's
//! devices and grants).
//! Server-rendered, no JavaScript, every state change a CSRF-checked POST
//! answered with 303 after the write is on disk.

pub(crate) mod apps;
pub mod assets;
pub(crate) mod certificates;
pub mod chrome;
pub mod cookies;
pub(crate) mod devices;
pub mod extract;
pub mod flash;
pub(crate) mod login;
pub(crate) mod oidc_link;
pub(crate) mod oidc_login;
pub mod oidc_sessions;
pub mod security_headers;
pub mod session;

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use vestibule_store::{AccountStatus, AuditEntry, hex};

use crate::accounts::admin::{self, Actor, Done, Lockout, LockoutGuard, StatusAction};
use crate::accounts::now_ms;
use crate::state::AppState;
use chrome::{Chrome, Nav};
use extract::{AdminSession, CookieSlot, CsrfForm, PageError, SignedIn, is_admin};
use flash::{Flash, Notice};
use session::PageSession;

/// The page routes, with security headers.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.vestibule/account", get(account))
        .route("/.vestibule/account/sessions/revoke", post(revoke_one))
        .route("/.vestibule/account/sessions/revoke-all", post(revoke_all))
        .route(oidc_link::LINK_PATH, post(oidc_link::start))
        .route(oidc_link::UNLINK_PATH, post(oidc_link::unlink))
        .route("/.vestibule/admin", get(admin))
        .route("/.vestibule/admin/accounts", post(admin_action))
        .route(
            "/.vestibule/admin/accounts/{id}/{action}",
            get(admin_confirm),
        )
        .route(
            "/.vestibule/admin/devices/revoke",
            post(devices::admin_revoke),
        )
        .route(
            "/.vestibule/admin/devices/{id}/revoke",
            get(devices::admin_revoke_confirm),
        )
        .route(apps::APPS_PATH, get(apps::page))
        .route(apps::REVOKE_PATH, post(apps::revoke))
        .route("/.vestibule/admin/apps/{id}", get(apps::admin_page))
        .route(apps::ADMIN_REVOKE_PATH, post(apps::admin_revoke))
        .route("/.vestibule/devices", get(devices::devices))
        .route("/.vestibule/devices/new", post(devices::create))
        .route("/.vestibule/devices/created/{id}", get(devices::created))
        .route("/.vestibule/devices/revoke", post(devices::revoke))
        .route(
            "/.vestibule/devices/certificate",
            post(certificates::create),
        )
        .route(
            "/.vestibule/devices/certificate/{id}",
            get(certificates::created),
        )
        .route(
            "/.vestibule/devices/certificate/{id}/{file}",
            get(certificates::download),
        )
        .route("/.vestibule/devices/pair", post(devices::pair_start))
        .route(
            "/.vestibule/devices/pair/{id}",
            get(devices::pair_status).post(devices::pair_decide),
        )
        .route("/.vestibule/login", get(login::login))
        .route("/.vestibule/logout", get(login::logout).post(login::logout))
        .route(crate::config::OIDC_LOGIN_PATH, get(oidc_login::login))
        .route(crate::config::OIDC_CALLBACK_PATH, get(oidc_login::callback))
        .route(
            crate::config::OIDC_BACKCHANNEL_LOGOUT_PATH,
            post(oidc_login::backchannel_logout),
        )
        // Everything else under /.vestibule/ is vestibule's too: a mistyped
        // path gets vestibule's 404, never an app behind it.
        .route("/.vestibule", any(unknown_own_path))
        .route("/.vestibule/", any(unknown_own_path))
        .route("/.vestibule/{*rest}", any(unknown_own_path))
        // Inner: the session cookie and page errors; outer: the security
        // headers, on whatever the inner one answers.
        .route("/.vestibule/pair", get(devices::pair_landing))
        .route("/.vestibule/pair/wait", get(devices::pair_wait))
        .layer(axum::middleware::from_fn(extract::layer))
        .layer(axum::middleware::from_fn(security_headers::layer))
        // Outside the layers: cached for a year, not `no-store`.
        .route("/.vestibule/static/{file}", get(assets::static_file))
}

/// Any other path under `/.vestibule/`.
async fn unknown_own_path() -> PageError {
    PageError::not_found("vestibule has no page at this address.")
}

fn when(ms: i64) -> String {
    // Minutes precision, UTC, without pulling in a date crate.
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// 303 to `to`, with `notice` as the next page's flash message.
fn done(slot: &CookieSlot, s: &PageSession, to: &str, notice: Notice) -> Response {
    notice.set(slot, s.https);
    see_other(to)
}

pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(h) => Html(h).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn audit(state: &AppState, s: &PageSession, action: &str, subject: String, detail: String) {
    let Some(accounts) = state.accounts() else {
        return;
    };
    let e = AuditEntry::new(now_ms(), s.identity.username.as_str(), action, subject)
        .with_client_ip(s.ctx.client_ip)
        .with_detail(detail);
    crate::accounts::record_audit(&**accounts.store(), &e).await;
}

struct SessionRow {
    id: String,
    /// Browser and OS, coarsely, from the User-Agent it was opened with.
    browser: String,
    /// The client address it was opened from.
    address: String,
    created: String,
    last_seen: String,
    expires: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    name: String,
    username: String,
    email: String,
    source: String,
    subject: String,
    groups: String,
    roles: String,
    sessions: Vec<SessionRow>,
    /// The sign-ins linked to the account (issue 15).
    identities: Vec<IdentityRow>,
    /// Whether one may be unlinked (never the last).
    can_unlink: bool,
    /// The OIDC provider's issuer, when its sign-in can be linked.
    link_provider: Option<String>,
    csrf: String,
    chrome: Chrome,
}

/// One identity linked to the account.
struct IdentityRow {
    source: String,
    subject: String,
    /// The one this session signed in with.
    current: bool,
}

/// The account store; a signed-in request implies accounts are on, so
/// this only fails if that ever stops being true.
fn accounts(state: &AppState) -> Result<&Arc<crate::accounts::Accounts>, PageError> {
    state
        .accounts()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))
}

async fn account(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    flash: Flash,
) -> Result<Response, PageError> {
    let store = accounts(&state)?.store();
    let sessions = store.sessions_of(Some(s.account_id)).await?;
    let identities = store.identities(s.account_id).await?;
    // "Link your <provider> account", when [source.oidc] is on and the
    // account has no sign-in from it yet (issue 15).
    let link_provider = state
        .oidc_upstream()
        .map(|u| u.settings().issuer.clone())
        .filter(|issuer| !identities.iter().any(|k| &k.source == issuer));
    let now = now_ms();
    let page = AccountPage {
        name: s.identity.name_for_display(),
        username: s.identity.username.clone(),
        email: s.identity.email.clone().unwrap_or_default(),
        source: s.identity.source.clone(),
        subject: s.identity.subject.clone(),
        groups: s.identity.groups.join(", "),
        roles: s.identity.roles.join(", "),
        sessions: sessions
            .iter()
            .filter(|x| x.expires_at > now)
            .map(|x| SessionRow {
                id: hex(&x.id_hash),
                browser: x.user_agent.as_deref().map_or_else(
                    || "unknown".to_owned(),
                    |ua| vestibule_core::user_agent::describe(ua).to_string(),
                ),
                address: x.client_ip.clone().unwrap_or_else(|| "unknown".to_owned()),
                created: when(x.created_at),
                last_seen: when(x.last_seen_at),
                expires: when(x.expires_at),
                current: x.id_hash == s.id_hash,
            })
            .collect(),
        can_unlink: identities.len() > 1,
        identities: identities
            .into_iter()
            .map(|k| IdentityRow {
                current: k.source == s.identity.source && k.subject == s.identity.subject,
                source: k.source,
                subject: k.subject,
            })
            .collect(),
        link_provider,
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Account, is_admin(&state, &s), flash),
    };
    Ok(render(page))
}

/// The account page's forms: the CSRF token, and which session to end.
#[derive(Deserialize)]
pub struct SessionForm {
    csrf: String,
    session: Option<String>,
}

/// Implements [`CsrfField`] for forms whose token is in a `csrf` field.
macro_rules! csrf_field {
    ($($form:ty),*) => {$(
        impl $crate::web::extract::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )*};
}
pub(crate) use csrf_field;
csrf_field!(SessionForm, AdminForm);

// Alike devices.rs revoke and admin_action below: a CSRF-checked form handler's extractors.
async fn revoke_one(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<SessionForm>>,
) -> Result<Response, PageError> {
    let accounts = accounts(&state)?;
    let target = f.session.unwrap_or_default();
    // Only the holder's own sessions can be ended here.
    let own = accounts.store().sessions_of(Some(s.account_id)).await?;
    let Some(x) = own.iter().find(|x| hex(&x.id_hash) == target) else {
        // Not one of hers (or gone already): answered like a success, so
        // that the form tells nothing about other people's sessions; but
        // no flash says something ended.
        return Ok(see_other("/.vestibule/account"));
    };
    {
        accounts.store().revoke_session(&x.id_hash).await?;
        audit(
            &state,
            &s,
            "session-revoke",
            format!("account:{}", s.account_id),
            "one session".into(),
        )
        .await;
    }
    Ok(done(&slot, &s, "/.vestibule/account", Notice::SessionEnded))
}

async fn revoke_all(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    _: CsrfForm<Form<SessionForm>>,
) -> Result<Response, PageError> {
    let n = accounts(&state)?
        .store()
        .revoke_sessions_of(s.account_id)
        .await?;
    audit(
        &state,
        &s,
        "session-revoke",
        format!("account:{}", s.account_id),
        format!("all {n} sessions"),
    )
    .await;
    // This session is gone too: the browser drops its cookie, named as
    // the session recorded it (`__Host-` over HTTPS), and goes on to sign
    // out, so that the SSO front does not start a new session right away.
    slot.set(cookies::clear(s.https));
    Ok(see_other("/.vestibule/logout"))
}

struct AccountRow {
    id: i64,
    username: String,
    display_name: String,
    email: String,
    /// The identity sources linked to the account.
    sources: String,
    groups: String,
    roles: String,
    status: &'static str,
    last_seen: String,
    actions: Vec<RowAction>,
    /// The signed-in admin's own account (it offers no "disable").
    is_you: bool,
}

/// A button in an account's row.
struct RowAction {
    /// The form's `action`.
    name: &'static str,
    label: &'static str,
    /// The button's class (`primary`, `danger` or none).
    class: &'static str,
    /// Destructive: the button leads to a confirmation page first.
    confirm: bool,
}

const APPROVE: RowAction = RowAction {
    name: "approve",
    label: "Approve",
    class: "primary",
    confirm: false,
};
const ENABLE: RowAction = RowAction {
    name: "enable",
    label: "Enable",
    class: "",
    confirm: false,
};
const DISABLE: RowAction = RowAction {
    name: "disable",
    label: "Disable",
    class: "danger",
    confirm: true,
};

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    accounts: Vec<AccountRow>,
    pending_count: usize,
    /// The search, as typed.
    q: String,
    /// Accounts matching it, on all pages.
    total: u64,
    /// "accounts 51–100 of 230", or empty when there is one page.
    range: String,
    /// Links to the previous and next pages, when there are.
    prev: Option<String>,
    next: Option<String>,
    devices: Vec<devices::DeviceRow>,
    csrf: String,
    chrome: Chrome,
}

/// Accounts per page of the admin table.
pub const ADMIN_PAGE_SIZE: u32 = 50;

/// The longest search the admin table takes.
const MAX_QUERY_CHARS: usize = 100;

/// `?q=` (a substring of username, display name or email) and `?page=`
/// (from 1) of the admin table.
#[derive(Deserialize)]
struct AdminQuery {
    q: Option<String>,
    page: Option<String>,
}

/// The admin table's link to page `page` of search `q`.
fn admin_link(q: &str, page: u64) -> String {
    let mut link = format!("/.vestibule/admin?page={page}");
    if !q.is_empty() {
        link.push_str("&q=");
        link.extend(percent_encoding::utf8_percent_encode(
            q,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    link
}

async fn admin(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    flash: Flash,
    axum::extract::Query(query): axum::extract::Query<AdminQuery>,
) -> Result<Response, PageError> {
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        return Err(PageError::BadForm(format!(
            "Search for at most {MAX_QUERY_CHARS} printable characters."
        )));
    }
    let page: u64 = match query.page.as_deref().unwrap_or("1").parse() {
        Ok(p) if p >= 1 => p,
        _ => {
            return Err(PageError::BadForm(
                "The page number must be a whole number from 1.".into(),
            ));
        }
    };
    let accounts = accounts(&state)?;
    let store = accounts.store();
    let offset = (page - 1).saturating_mul(u64::from(ADMIN_PAGE_SIZE));
    // Pending first: they are what an admin came for.
    let found = store.search_accounts(&q, offset, ADMIN_PAGE_SIZE).await?;
    let pending_count = store
        .accounts(Some(AccountStatus::Pending), u32::MAX)
        .await?
        .len();
    // The devices table names owners from the accounts already read.
    let owners: std::collections::HashMap<i64, String> = found
        .accounts
        .iter()
        .map(|(a, _)| (a.id, a.username.clone()))
        .collect();
    // A database error is a 503, not an empty list on a security page.
    let devices = devices::all_devices(&state, owners).await?;
    let shown = found.accounts.len() as u64;
    let page = AdminPage {
        range: if found.total > u64::from(ADMIN_PAGE_SIZE) || page > 1 {
            if shown == 0 {
                format!("no accounts on page {page} of {}", found.total)
            } else {
                format!(
                    "accounts {}–{} of {}",
                    offset + 1,
                    offset + shown,
                    found.total
                )
            }
        } else {
            String::new()
        },
        prev: (page > 1).then(|| admin_link(&q, page - 1)),
        next: (offset + shown < found.total).then(|| admin_link(&q, page + 1)),
        total: found.total,
        accounts: found
            .accounts
            .into_iter()
            .map(|(a, sources)| AccountRow {
                id: a.id,
                roles: accounts.roles_of(&a.groups).join(", "),
                sources: sources.join(", "),
                display_name: a.display_name.unwrap_or_default(),
                username: a.username,
                email: a.email.unwrap_or_default(),
                groups: a.groups.join(", "),
                status: a.status.as_str(),
                last_seen: when(a.last_seen_at),
                actions: match a.status {
                    _ if a.id == s.account_id => vec![],
                    AccountStatus::Pending => vec![APPROVE, DISABLE],
                    AccountStatus::Active => vec![DISABLE],
                    AccountStatus::Disabled => vec![ENABLE],
                },
                is_you: a.id == s.account_id,
            })
            .collect(),
        pending_count,
        q,
        devices,
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Admin, true, flash),
    };
    Ok(render(page))
}

/// An admin action on an account.
#[derive(Deserialize)]
pub struct AdminForm {
    csrf: String,
    id: i64,
    action: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(super) struct ConfirmPage {
    pub(super) title: &'static str,
    pub(super) message: String,
    pub(super) action: &'static str,
    pub(super) fields: Vec<(&'static str, String)>,
    pub(super) button: &'static str,
    pub(super) cancel: &'static str,
    pub(super) csrf: String,
    pub(super) chrome: Chrome,
}

/// `GET /.vestibule/admin/accounts/{id}/disable`: the confirmation a
/// destructive action asks for (no script: a page of its own).
async fn admin_confirm(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    if action != "disable" {
        return Err(PageError::not_found("There is no such page."));
    }
    let account = accounts(&state)?
        .store()
        .account(id)
        .await?
        .ok_or_else(|| PageError::not_found("No such account."))?;
    Ok(render(ConfirmPage {
        title: "Disable this account?",
        message: format!(
            "{} will be signed out of every session and refused until an admin enables the account again. Their devices stop working meanwhile.",
            account.username
        ),
        action: "/.vestibule/admin/accounts",
        fields: vec![("id", id.to_string()), ("action", "disable".into())],
        button: "Disable the account",
        cancel: "/.vestibule/admin",
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Admin, true, Flash(None)),
    }))
}

// Alike revoke_one above: a CSRF-checked form handler's extractors.
async fn admin_action(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<AdminForm>>,
) -> Result<Response, PageError> {
    let store = accounts(&state)?.store();
    let action = StatusAction::parse(&f.action).ok_or(PageError::refused(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "Unknown action.",
        "",
    ))?;
    let not_found = || PageError::not_found("No such account.");
    let account = store.account(f.id).await?.ok_or_else(not_found)?;
    let by = Actor {
        name: s.identity.username.clone(),
        client_ip: s.ctx.client_ip,
        note: String::new(),
        guard: Some(LockoutGuard {
            own_account: s.account_id,
            admin_groups: state
                .settings
                .accounts
                .as_ref()
                .map(|a| a.admin_groups.clone())
                .unwrap_or_default(),
        }),
    };
    // The status change, the revocations and the audit entry are the
    // accounts service's one rule, shared with `vestibule users`.
    let r = admin::set_status(&**store, &account, action, &by).await?;
    if let Err(err) = r.audit {
        tracing::warn!(error = %err, "could not write the audit log");
    }
    // The directory entry follows the status (`[accounts.ldap]`); if the
    // directory is down, the account's next login moves it.
    if matches!(r.done, Done::Changed(_))
        && let Some(dir) = state.accounts().and_then(|a| a.directory())
        && let Some(now) = store.account(account.id).await?
        && let Err(e) = dir.relocate(&**store, &now).await
    {
        tracing::warn!(account = account.id, error = %e, "directory entry not moved; the next login moves it");
    }
    let notice = match r.done {
        Done::Gone => return Err(not_found()),
        Done::Refused(why) => return Err(lockout_refused(why)),
        Done::AlreadyActive => Notice::Unchanged,
        Done::Changed(_) => match action {
            StatusAction::Approve => Notice::Approved,
            StatusAction::Enable => Notice::Enabled,
            StatusAction::Disable => Notice::Disabled,
        },
    };
    // The write is on disk; only now answer.
    Ok(done(&slot, &s, "/.vestibule/admin", notice))
}

/// The page for an action the self-lockout rule refused.
fn lockout_refused(why: Lockout) -> PageError {
    let message = match why {
        Lockout::Yourself => {
            "You cannot disable your own account: nobody could then undo it from this page."
        }
        Lockout::LastAdmin => {
            "This is the last active administrator: disabling it would leave nobody able to manage accounts from this page."
        }
    };
    PageError::refused(
        StatusCode::CONFLICT,
        "Not done",
        message,
        "Make another account an administrator first, or ask another administrator.",
    )
}

// Alike admin/output.rs tests: each tests its own `when` (minutes here, seconds in the CLI).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        // Reference values from Python's datetime.utcfromtimestamp.
        assert_eq!(when(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
