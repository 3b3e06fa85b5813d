//! vestibule's own pages under `/.vestibule/`: the account page (identity
//! and sessions), the devices pages (device credentials and pairing, in
//! [`devices`]) and the admin page (approve, disable, enable accounts;
//! revoke anyone's devices).
//! Server-rendered, no JavaScript, every state change a CSRF-checked POST
//! answered with 303 after the write is on disk.

pub mod cookies;
mod devices;
mod login;
pub mod security_headers;
pub mod session;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use vestibule_store::{AccountStatus, AuditEntry};

use crate::accounts::now_ms;
use crate::http::responses::page;
use crate::http::responses::wants_html;
use crate::identity::client_identity::ConnInfo;
use crate::state::AppState;
use session::{PageSession, check_csrf, page_session};

/// The page routes, with security headers.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.vestibule/account", get(account))
        .route("/.vestibule/account/sessions/revoke", post(revoke_one))
        .route("/.vestibule/account/sessions/revoke-all", post(revoke_all))
        .route("/.vestibule/admin", get(admin))
        .route("/.vestibule/admin/accounts", post(admin_action))
        .route(
            "/.vestibule/admin/devices/revoke",
            post(devices::admin_revoke),
        )
        .route("/.vestibule/devices", get(devices::devices))
        .route("/.vestibule/devices/new", post(devices::create))
        .route("/.vestibule/devices/revoke", post(devices::revoke))
        .route("/.vestibule/devices/pair", post(devices::pair_start))
        .route(
            "/.vestibule/devices/pair/{id}",
            get(devices::pair_status).post(devices::pair_decide),
        )
        .route("/.vestibule/pair", post(devices::pair_claim))
        .route("/.vestibule/pair/poll", post(devices::pair_poll))
        .route("/.vestibule/login", get(login::login))
        .route("/.vestibule/logout", get(login::logout).post(login::logout))
        .layer(axum::middleware::from_fn(security_headers::layer))
}

fn conn(ext: Option<Extension<ConnInfo>>) -> ConnInfo {
    ext.map_or(ConnInfo::UNKNOWN, |Extension(c)| c)
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

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn with_cookie(mut resp: Response, s: &PageSession) -> Response {
    if let Some(c) = &s.set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    resp
}

fn see_other(to: &str) -> Response {
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

fn is_admin(state: &AppState, s: &PageSession) -> bool {
    state
        .settings
        .accounts
        .as_ref()
        .is_some_and(|a| a.admin_groups.iter().any(|g| s.identity.in_group(g)))
}

async fn audit(state: &AppState, s: &PageSession, action: &str, subject: String, detail: String) {
    let Some(accounts) = &state.accounts else {
        return;
    };
    let e = AuditEntry {
        at: now_ms(),
        actor: s.identity.username.clone(),
        action: action.into(),
        subject,
        client_ip: s.ctx.client_ip.map(|i| i.to_string()),
        outcome: "ok".into(),
        detail,
    };
    if let Err(err) = accounts.store().append_audit(&e).await {
        tracing::warn!(error = %err, "could not write the audit log");
    }
}

struct SessionRow {
    id: String,
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
    csrf: String,
    is_admin: bool,
}

async fn account(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let s = match page_session(&state, conn(ext), &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(accounts) = &state.accounts else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sessions = match accounts.store().sessions_of(Some(s.account_id)).await {
        Ok(v) => v,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
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
                created: when(x.created_at),
                last_seen: when(x.last_seen_at),
                expires: when(x.expires_at),
                current: x.id_hash == s.id_hash,
            })
            .collect(),
        csrf: s.csrf.clone(),
        is_admin: is_admin(&state, &s),
    };
    with_cookie(render(page), &s)
}

/// A form with only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
    session: Option<String>,
}

fn csrf_refused(headers: &HeaderMap) -> Response {
    page(
        StatusCode::FORBIDDEN,
        wants_html(headers),
        "Request refused",
        "This form was not sent from your own session (its security token does not match).",
        "Reload the page and try again.",
    )
}

async fn revoke_one(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match page_session(&state, conn(ext), &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !check_csrf(&s, &f.csrf) {
        return csrf_refused(&headers);
    }
    let Some(accounts) = &state.accounts else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let target = f.session.unwrap_or_default();
    // Only the holder's own sessions can be ended here.
    let own = match accounts.store().sessions_of(Some(s.account_id)).await {
        Ok(v) => v,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    if let Some(x) = own.iter().find(|x| hex(&x.id_hash) == target) {
        if accounts.store().revoke_session(&x.id_hash).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        audit(
            &state,
            &s,
            "session-revoke",
            format!("account:{}", s.account_id),
            "one session".into(),
        )
        .await;
    }
    with_cookie(see_other("/.vestibule/account"), &s)
}

async fn revoke_all(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match page_session(&state, conn(ext), &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !check_csrf(&s, &f.csrf) {
        return csrf_refused(&headers);
    }
    let Some(accounts) = &state.accounts else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match accounts.store().revoke_sessions_of(s.account_id).await {
        Ok(n) => {
            audit(
                &state,
                &s,
                "session-revoke",
                format!("account:{}", s.account_id),
                format!("all {n} sessions"),
            )
            .await;
            let mut r = see_other("/.vestibule/account");
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::clear(
                    s.set_cookie
                        .as_ref()
                        .is_some_and(|c| c.as_bytes().starts_with(b"__Host-")),
                ),
            );
            r
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

struct AccountRow {
    id: i64,
    username: String,
    email: String,
    groups: String,
    status: &'static str,
    last_seen: String,
    actions: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    accounts: Vec<AccountRow>,
    pending_count: usize,
    devices: Vec<devices::DeviceRow>,
    csrf: String,
}

async fn admin_session(
    state: &Arc<AppState>,
    ext: Option<Extension<ConnInfo>>,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<PageSession, Response> {
    let s = page_session(state, conn(ext), headers, uri).await?;
    if !is_admin(state, &s) {
        return Err(page(
            StatusCode::FORBIDDEN,
            wants_html(headers),
            "Administrators only",
            "This page is for members of the groups in accounts.admin_groups.",
            "",
        ));
    }
    Ok(s)
}

async fn admin(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let s = match admin_session(&state, ext, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(accounts) = &state.accounts else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut list = match accounts.store().accounts(None, 1000).await {
        Ok(v) => v,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    // Pending first: they are what an admin came for.
    list.sort_by_key(|a| (a.status != AccountStatus::Pending, a.username.clone()));
    let pending_count = list
        .iter()
        .filter(|a| a.status == AccountStatus::Pending)
        .count();
    // The devices table names owners from the accounts already read.
    let owners: std::collections::HashMap<i64, String> =
        list.iter().map(|a| (a.id, a.username.clone())).collect();
    // A database error is a 503, not an empty list on a security page.
    let devices = match devices::all_devices(&state, owners).await {
        Ok(d) => d,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let page = AdminPage {
        accounts: list
            .into_iter()
            .map(|a| AccountRow {
                id: a.id,
                username: a.username,
                email: a.email.unwrap_or_default(),
                groups: a.groups.join(", "),
                status: a.status.as_str(),
                last_seen: when(a.last_seen_at),
                actions: match a.status {
                    AccountStatus::Pending => vec!["approve", "disable"],
                    AccountStatus::Active => vec!["disable"],
                    AccountStatus::Disabled => vec!["enable"],
                },
            })
            .collect(),
        pending_count,
        devices,
        csrf: s.csrf.clone(),
    };
    with_cookie(render(page), &s)
}

/// An admin action on an account.
#[derive(Deserialize)]
pub struct AdminForm {
    csrf: String,
    id: i64,
    action: String,
}

async fn admin_action(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Form(f): Form<AdminForm>,
) -> Response {
    let s = match admin_session(&state, ext, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !check_csrf(&s, &f.csrf) {
        return csrf_refused(&headers);
    }
    let Some(accounts) = &state.accounts else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = match f.action.as_str() {
        "approve" | "enable" => AccountStatus::Active,
        "disable" => AccountStatus::Disabled,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                wants_html(&headers),
                "Bad request",
                "Unknown action.",
                "",
            );
        }
    };
    let store = accounts.store();
    match store.set_status(f.id, status, now_ms()).await {
        Ok(true) => {}
        Ok(false) => {
            return page(
                StatusCode::NOT_FOUND,
                wants_html(&headers),
                "Not found",
                "No such account.",
                "",
            );
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    if status == AccountStatus::Disabled && store.revoke_sessions_of(f.id).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    audit(
        &state,
        &s,
        &f.action,
        format!("account:{}", f.id),
        String::new(),
    )
    .await;
    // The write is on disk; only now answer.
    with_cookie(see_other("/.vestibule/admin"), &s)
}

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
