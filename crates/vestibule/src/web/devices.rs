//! Device pages and the pairing endpoints.
//!
//! - `/.vestibule/devices`: your devices (revoke), add one (the secret is
//!   shown once, with copy-ready forms and a QR code), pair one.
//! - Pairing ("quick connect"): a signed-in person starts a pairing and
//!   gets a short code (5 minutes, single use). The device `POST`s the code
//!   and its name to `/.vestibule/pair` and gets a claim secret; the person
//!   sees the device's name and confirms; the device then collects its
//!   credential from `/.vestibule/pair/poll` exactly once. The device never
//!   needs the SSO front, and nothing is issued without confirmation.
//!
//! Every state change is a CSRF-checked POST answered after the write is on
//! disk. Secrets are shown once and never logged.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngCore;
use serde::Deserialize;
use vestibule_core::credential::{
    device_token, is_pairing_claim_token, normalize_pairing_code, pairing_claim_token, pairing_code,
};
use vestibule_core::policy::Decision;
use vestibule_core::secret::{Secret, hash_token};
use vestibule_store::{Device, NewDevice, PairingPoll, PairingState};

use super::session::{PageSession, check_csrf, page_session};
use super::{admin_session, audit, conn, csrf_refused, render, see_other, when, with_cookie};
use crate::accounts::now_ms;
use crate::http::responses::page;
use crate::http::responses::wants_html;
use crate::identity::client_identity::ConnInfo;
use crate::state::AppState;

/// Longest device name accepted.
const MAX_NAME_CHARS: usize = 64;
/// How often a pairing device should poll, in seconds.
const POLL_INTERVAL_SECS: u64 = 2;

/// Expiry choices on the "add a device" form, in days (0: never).
const EXPIRY_CHOICES: &[(u32, &str)] = &[
    (0, "never"),
    (30, "in 30 days"),
    (90, "in 90 days"),
    (365, "in a year"),
];

/// A route a device may be given: it takes credentials, and the person
/// passes its policy.
struct RouteChoice {
    name: String,
    carriers: String,
}

fn route_choices(state: &AppState, s: &PageSession) -> Vec<RouteChoice> {
    state
        .settings
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.carriers.any())
        .filter(|(i, _)| {
            matches!(
                crate::policy::authorize::authorize(state, *i, Some(&s.identity)),
                Decision::Allow {
                    forward_identity: true
                }
            )
        })
        .map(|(_, r)| RouteChoice {
            name: r.name.clone(),
            carriers: carrier_names(&r.carriers).join(", "),
        })
        .collect()
}

fn carrier_names(c: &vestibule_core::credential::Carriers) -> Vec<&'static str> {
    let mut v = Vec::new();
    if c.basic {
        v.push("Basic");
    }
    if c.bearer {
        v.push("Bearer");
    }
    if c.proxy_authorization {
        v.push("Proxy-Authorization");
    }
    if c.header.is_some() {
        v.push("header");
    }
    if c.query.is_some() {
        v.push("query");
    }
    v
}

/// A device, as the pages show it.
pub(super) struct DeviceRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) routes: String,
    pub(super) created: String,
    pub(super) expires: String,
    pub(super) last_used: String,
    pub(super) owner: String,
}

fn device_row(d: &Device, owner: String) -> DeviceRow {
    DeviceRow {
        id: d.id,
        name: d.name.clone(),
        kind: d.kind.clone(),
        routes: d.routes.join(", "),
        created: when(d.created_at),
        expires: d.expires_at.map_or_else(|| "never".to_owned(), when),
        last_used: match (&d.last_used_at, &d.last_used_ip) {
            (Some(t), Some(ip)) => format!("{} from {ip}", when(*t)),
            (Some(t), None) => when(*t),
            _ => "never".to_owned(),
        },
        owner,
    }
}

/// A signed-in page request on a gateway with devices: the session and
/// the device store, or the response that refuses it.
async fn device_session(
    state: &Arc<AppState>,
    ext: Option<Extension<ConnInfo>>,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<(PageSession, Arc<crate::devices::Devices>), Response> {
    let s = page_session(state, conn(ext), headers, uri).await?;
    match &state.devices {
        Some(d) => Ok((s, d.clone())),
        None => Err(StatusCode::NOT_FOUND.into_response()),
    }
}

/// [`device_session`] for a state-changing form: the CSRF token must match.
async fn device_form(
    state: &Arc<AppState>,
    ext: Option<Extension<ConnInfo>>,
    headers: &HeaderMap,
    uri: &http::Uri,
    csrf: &str,
) -> Result<(PageSession, Arc<crate::devices::Devices>), Response> {
    let (s, d) = device_session(state, ext, headers, uri).await?;
    if !check_csrf(&s, csrf) {
        return Err(csrf_refused(headers));
    }
    Ok((s, d))
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    devices: Vec<DeviceRow>,
    routes: Vec<RouteChoice>,
    expiries: Vec<(u32, &'static str)>,
    csrf: String,
    is_admin: bool,
}

/// `GET /.vestibule/devices`.
pub(super) async fn devices(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let (s, devices) = match device_session(&state, ext, &headers, &uri).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let list = match devices.store().devices_of(Some(s.account_id)).await {
        Ok(v) => v,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let page = DevicesPage {
        devices: list
            .iter()
            .map(|d| device_row(d, s.identity.username.clone()))
            .collect(),
        routes: route_choices(&state, &s),
        expiries: EXPIRY_CHOICES.to_vec(),
        csrf: s.csrf.clone(),
        is_admin: super::is_admin(&state, &s),
    };
    with_cookie(render(page), &s)
}

fn bad_form(headers: &HeaderMap, message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        wants_html(headers),
        "Check the form",
        message,
        "Go back and correct it.",
    )
}

/// A form's fields, in order (repeated names kept): axum's `Form` would
/// keep only one `route`.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
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

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The routes a form asked for, checked against what the person may choose.
fn chosen_routes(
    state: &AppState,
    s: &PageSession,
    fields: &[(String, String)],
) -> Result<Vec<String>, String> {
    let allowed = route_choices(state, s);
    let mut routes: Vec<String> = Vec::new();
    for (k, v) in fields {
        if k != "route" {
            continue;
        }
        if !allowed.iter().any(|r| &r.name == v) {
            return Err(format!("You cannot give a device access to `{v}`."));
        }
        if !routes.contains(v) {
            routes.push(v.clone());
        }
    }
    if routes.is_empty() {
        return Err("Pick at least one app for the device.".into());
    }
    Ok(routes)
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("Give the device a name, such as \"Phone\" or \"Laptop WebDAV\".".into());
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "A device name is at most {MAX_NAME_CHARS} characters, without control characters."
        ));
    }
    Ok(name.to_owned())
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// An SVG QR code for `value` (inline in the page: no request, no script).
fn qr_svg(value: &str) -> String {
    match qrcode::QrCode::new(value.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            // Drop the XML declaration: the SVG goes inside HTML.
            match svg.find("<svg") {
                Some(i) => svg[i..].to_owned(),
                None => svg,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not make a QR code");
            String::new()
        }
    }
}

/// Characters escaped in the user part of `user:password@host` (RFC 3986
/// §3.2.1: only unreserved characters are kept).
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One way of sending the credential, ready to copy.
struct Snippet {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "device_created.html")]
struct CreatedPage {
    name: String,
    routes: String,
    secret: String,
    username: String,
    snippets: Vec<Snippet>,
    qr: String,
}

fn snippets(
    state: &AppState,
    routes: &[String],
    user: &str,
    secret: &Secret,
    origin: &str,
) -> Vec<Snippet> {
    let mut out = Vec::new();
    let token = secret.expose();
    let carriers: Vec<_> = state
        .settings
        .routes
        .iter()
        .filter(|r| routes.contains(&r.name))
        .map(|r| &r.carriers)
        .collect();
    let any =
        |f: &dyn Fn(&vestibule_core::credential::Carriers) -> bool| carriers.iter().any(|c| f(c));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    if any(&|c| c.basic) {
        out.push(Snippet {
            label: "User name (Basic, app password: Subsonic, WebDAV, CalDAV)".into(),
            value: user.to_owned(),
        });
        out.push(Snippet {
            label: "App password".into(),
            value: token.to_owned(),
        });
        out.push(Snippet {
            label: "Authorization header (Basic)".into(),
            value: format!("Authorization: Basic {basic}"),
        });
        // Clients with one "server" field (immich's `user:pass@host`).
        if let Some((scheme, rest)) = origin.split_once("://") {
            let user_enc = percent_encoding::utf8_percent_encode(user, USERINFO).to_string();
            out.push(Snippet {
                label:
                    "Server address with the app password (clients that take user:password@host)"
                        .into(),
                value: format!("{scheme}://{user_enc}:{token}@{rest}"),
            });
        }
    }
    if any(&|c| c.bearer) {
        out.push(Snippet {
            label: "Authorization header (Bearer)".into(),
            value: format!("Authorization: Bearer {token}"),
        });
    }
    if any(&|c| c.proxy_authorization) {
        out.push(Snippet {
            label: "Proxy-Authorization header".into(),
            value: format!("Proxy-Authorization: Bearer {token}"),
        });
    }
    let mut names: Vec<String> = carriers
        .iter()
        .filter_map(|c| c.header.as_ref().map(|h| h.as_str().to_owned()))
        .collect();
    names.dedup();
    for h in names {
        out.push(Snippet {
            label: format!("Custom header (immich, Home Assistant companion): {h}"),
            value: format!("{h}: {token}"),
        });
    }
    let mut params: Vec<&String> = carriers.iter().filter_map(|c| c.query.as_ref()).collect();
    params.dedup();
    for q in params {
        out.push(Snippet {
            label: "Query parameter (media URLs only)".into(),
            value: format!("?{q}={token}"),
        });
    }
    out
}

/// `POST /.vestibule/devices/new`: create a device and show its secret once.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let fields = form_fields(&body);
    let csrf = field(&fields, "csrf").unwrap_or("");
    let (s, devices) = match device_form(&state, ext, &headers, &uri, csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = match check_name(field(&fields, "name").unwrap_or("")) {
        Ok(n) => n,
        Err(m) => return bad_form(&headers, &m),
    };
    let routes = match chosen_routes(&state, &s, &fields) {
        Ok(r) => r,
        Err(m) => return bad_form(&headers, &m),
    };
    let kind = match field(&fields, "kind").unwrap_or("token") {
        k @ ("app-password" | "token") => k.to_owned(),
        _ => return bad_form(&headers, "Unknown kind of device."),
    };
    let days: u32 = match field(&fields, "expires_days").unwrap_or("0").parse() {
        Ok(d) if EXPIRY_CHOICES.iter().any(|(c, _)| *c == d) => d,
        _ => return bad_form(&headers, "Pick an expiry from the list."),
    };
    let now = now_ms();
    let expires_at = (days > 0).then(|| now + i64::from(days) * 86_400_000);
    let secret = device_token(random32());
    let new = NewDevice {
        account_id: s.account_id,
        name: name.clone(),
        kind,
        routes: routes.clone(),
        secret_hash: hash_token(secret.expose()),
        basic_user: Some(s.identity.username.clone()),
        created_at: now,
        expires_at,
    };
    let device = match devices.store().create_device(&new).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not create a device");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    audit(
        &state,
        &s,
        "device-create",
        format!("device:{}", device.id),
        format!("{name} for {}", routes.join(",")),
    )
    .await;
    let page = CreatedPage {
        snippets: snippets(
            &state,
            &routes,
            &s.identity.username,
            &secret,
            &origin(&s, &headers),
        ),
        qr: qr_svg(secret.expose()),
        name,
        routes: routes.join(", "),
        secret: secret.expose().to_owned(),
        username: s.identity.username.clone(),
    };
    with_cookie(render(page), &s)
}

/// A form naming one device.
#[derive(Deserialize)]
pub(super) struct DeviceForm {
    csrf: String,
    id: i64,
}

/// `POST /.vestibule/devices/revoke`: the owner revokes one of theirs.
pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Form(f): Form<DeviceForm>,
) -> Response {
    let (s, devices) = match device_form(&state, ext, &headers, &uri, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match devices
        .store()
        .revoke_device(f.id, Some(s.account_id))
        .await
    {
        Ok(true) => {
            audit(
                &state,
                &s,
                "device-revoke",
                format!("device:{}", f.id),
                String::new(),
            )
            .await;
        }
        Ok(false) => {
            return page(
                StatusCode::NOT_FOUND,
                wants_html(&headers),
                "Not found",
                "You have no such device.",
                "",
            );
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    with_cookie(see_other("/.vestibule/devices"), &s)
}

/// `POST /.vestibule/admin/devices/revoke`: an admin revokes anyone's.
pub(super) async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Form(f): Form<DeviceForm>,
) -> Response {
    let s = match admin_session(&state, ext, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !check_csrf(&s, &f.csrf) {
        return csrf_refused(&headers);
    }
    let Some(devices) = &state.devices else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match devices.store().revoke_device(f.id, None).await {
        // No such device: nothing to audit as done.
        Ok(false) => return StatusCode::NOT_FOUND.into_response(),
        Ok(true) => {
            audit(
                &state,
                &s,
                "device-revoke",
                format!("device:{}", f.id),
                "by an admin".into(),
            )
            .await;
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    with_cookie(see_other("/.vestibule/admin"), &s)
}

/// Every device, for the admin page (none when devices are off). `owners`
/// maps account ids to usernames the caller already has; others are looked
/// up once each.
pub(super) async fn all_devices(
    state: &AppState,
    mut owners: std::collections::HashMap<i64, String>,
) -> Result<Vec<DeviceRow>, vestibule_store::StoreError> {
    let Some(devices) = &state.devices else {
        return Ok(Vec::new());
    };
    let store = devices.store();
    let list = store.devices_of(None).await?;
    let mut out = Vec::with_capacity(list.len());
    for d in &list {
        if let std::collections::hash_map::Entry::Vacant(slot) = owners.entry(d.account_id) {
            let name = match store.account(d.account_id).await {
                Ok(Some(a)) => a.username,
                _ => format!("account {}", d.account_id),
            };
            slot.insert(name);
        }
        out.push(device_row(d, owners[&d.account_id].clone()));
    }
    Ok(out)
}

// ---- pairing ------------------------------------------------------------

#[derive(Template)]
#[template(path = "pairing.html")]
struct PairingPage {
    id: i64,
    /// Shown only on the page that started the pairing.
    code: Option<String>,
    qr: String,
    pair_url: String,
    state: &'static str,
    device_name: String,
    /// Where and when the device redeemed the code.
    claimed: String,
    routes: String,
    expires: String,
    csrf: String,
}

fn pairing_state(p: &vestibule_store::Pairing, now: i64) -> &'static str {
    match p.state {
        PairingState::Issued => "issued",
        PairingState::Refused => "refused",
        _ if p.expires_at <= now => "expired",
        PairingState::Open => "open",
        PairingState::Claimed => "claimed",
        PairingState::Confirmed => "confirmed",
    }
}

/// `POST /.vestibule/devices/pair`: start a pairing and show its code.
pub(super) async fn pair_start(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let fields = form_fields(&body);
    let csrf = field(&fields, "csrf").unwrap_or("");
    let (s, devices) = match device_form(&state, ext, &headers, &uri, csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let routes = match chosen_routes(&state, &s, &fields) {
        Ok(r) => r,
        Err(m) => return bad_form(&headers, &m),
    };
    let mut random = [0u8; 8];
    rand::rng().fill_bytes(&mut random);
    let code = pairing_code(random);
    // Already canonical (`XXXXX-XXXXX`): what a device's typing normalises to.
    let canonical = code.expose();
    let now = now_ms();
    let ttl = i64::try_from(state.settings.devices.pairing_ttl.as_millis()).unwrap_or(300_000);
    let pairing = match devices
        .store()
        .create_pairing(
            s.account_id,
            &hash_token(canonical),
            &routes,
            now,
            now + ttl,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not start a pairing");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    audit(
        &state,
        &s,
        "pairing-start",
        format!("pairing:{}", pairing.id),
        routes.join(","),
    )
    .await;
    let pair_url = pair_url(&s, &headers, canonical);
    let page = PairingPage {
        id: pairing.id,
        qr: qr_svg(&pair_url),
        code: Some(canonical.to_owned()),
        pair_url,
        state: "open",
        device_name: String::new(),
        claimed: String::new(),
        routes: routes.join(", "),
        expires: when(pairing.expires_at),
        csrf: s.csrf.clone(),
    };
    with_cookie(render(page), &s)
}

/// The gateway's own origin and root (`https://host/`), as the browser
/// reached it.
fn origin(s: &PageSession, headers: &HeaderMap) -> String {
    let view = crate::urls::RequestView {
        host: headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        path: "/",
        path_and_query: "/",
        headers,
    };
    crate::urls::original_url(&s.ctx, &view)
}

/// Where a device redeems the code, with the code in it (what the QR code
/// holds).
fn pair_url(s: &PageSession, headers: &HeaderMap, code: &str) -> String {
    format!("{}.vestibule/pair?code={code}", origin(s, headers))
}

/// `GET /.vestibule/devices/pair/{id}`: how a pairing stands; confirm here.
pub(super) async fn pair_status(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Path(id): Path<i64>,
) -> Response {
    let (s, devices) = match device_session(&state, ext, &headers, &uri).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = match devices.store().pairing(id).await {
        Ok(Some(p)) if p.account_id == s.account_id => p,
        Ok(_) => {
            return page(
                StatusCode::NOT_FOUND,
                wants_html(&headers),
                "Not found",
                "You have no such pairing.",
                "",
            );
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let page = PairingPage {
        id: p.id,
        code: None,
        qr: String::new(),
        pair_url: String::new(),
        state: pairing_state(&p, now_ms()),
        device_name: p.device_name.clone().unwrap_or_default(),
        claimed: match (&p.claimed_ip, p.claimed_at) {
            (Some(ip), Some(at)) => format!("from {ip}, {}", when(at)),
            (None, Some(at)) => when(at),
            _ => String::new(),
        },
        routes: p.routes.join(", "),
        expires: when(p.expires_at),
        csrf: s.csrf.clone(),
    };
    with_cookie(render(page), &s)
}

/// The owner's answer to a device's request.
#[derive(Deserialize)]
pub(super) struct DecideForm {
    csrf: String,
    decision: String,
}

/// `POST /.vestibule/devices/pair/{id}`: confirm or refuse.
pub(super) async fn pair_decide(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    let (s, devices) = match device_form(&state, ext, &headers, &uri, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let confirm = match f.decision.as_str() {
        "confirm" => true,
        "refuse" => false,
        _ => return bad_form(&headers, "Confirm or refuse."),
    };
    match devices
        .store()
        .decide_pairing(id, s.account_id, confirm, now_ms())
        .await
    {
        Ok(true) => {
            audit(
                &state,
                &s,
                if confirm {
                    "pairing-confirm"
                } else {
                    "pairing-refuse"
                },
                format!("pairing:{id}"),
                String::new(),
            )
            .await;
        }
        Ok(false) => {
            return page(
                StatusCode::CONFLICT,
                wants_html(&headers),
                "Too late",
                "This pairing can no longer be confirmed: it expired, or was already answered.",
                "Start a new pairing.",
            );
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/.vestibule/devices/pair/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    with_cookie(r, &s)
}

// ---- the device's side: no session, JSON answers ----------------------

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        serde_json::json!({ "error": error, "error_description": description }),
    )
}

/// The fields of a device's request, from JSON or a form.
fn device_fields(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        Some(
            v.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
        )
    } else {
        Some(form_fields(body))
    }
}

fn too_many(retry_after: std::time::Duration) -> Response {
    let mut r = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        "Too many failed attempts; wait before trying again.",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after.as_secs_f64().ceil() as u64),
    );
    r
}

/// The device-facing endpoints' preamble: the device store and the
/// client's context, unless pairing is off or the address is blocked.
#[allow(
    clippy::result_large_err,
    reason = "the error is the finished response, built once per refused request"
)]
fn device_endpoint(
    state: &AppState,
    ext: Option<Extension<ConnInfo>>,
    headers: &HeaderMap,
) -> Result<
    (
        Arc<crate::devices::Devices>,
        crate::identity::client_identity::ClientContext,
    ),
    Response,
> {
    let Some(devices) = &state.devices else {
        return Err(json_error(
            StatusCode::NOT_FOUND,
            "not_enabled",
            "Device pairing is not enabled on this gateway.",
        ));
    };
    let ctx = crate::identity::client_identity::resolve(&state.settings, conn(ext), headers);
    if let Some(wait) = devices.failures.blocked_for(ctx.client_ip, None) {
        return Err(too_many(wait));
    }
    Ok((devices.clone(), ctx))
}

/// `POST /.vestibule/pair`: a device redeems a pairing code.
///
/// Takes `code` and `name` (JSON or form). Answers 202 with a `claim`
/// secret to poll with; 404 for an unknown, used or expired code; 429
/// after too many failures from one address.
pub(super) async fn pair_claim(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (devices, ctx) = match device_endpoint(&state, ext, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(fields) = device_fields(&headers, &body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send JSON {\"code\": …, \"name\": …} or a form.",
        );
    };
    let name = match check_name(field(&fields, "name").unwrap_or("")) {
        Ok(n) => n,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &m),
    };
    let Some(code) = normalize_pairing_code(field(&fields, "code").unwrap_or("")) else {
        return refuse_code(&devices, &ctx);
    };
    let claim = pairing_claim_token(random32());
    let now = now_ms();
    match devices
        .store()
        .claim_pairing(
            &hash_token(&code),
            &hash_token(claim.expose()),
            &name,
            ctx.client_ip.map(|ip| ip.to_string()).as_deref(),
            now,
        )
        .await
    {
        Ok(Some(p)) => {
            tracing::info!(pairing = p.id, device = %name, "a device redeemed a pairing code");
            json(
                StatusCode::ACCEPTED,
                serde_json::json!({
                    "status": "pending",
                    "claim": claim.expose(),
                    "poll": "/.vestibule/pair/poll",
                    "interval": POLL_INTERVAL_SECS,
                    "expires_in": (p.expires_at - now).max(0) / 1000,
                    "message": "Confirm this device on the pairing page in your browser.",
                }),
            )
        }
        Ok(None) => refuse_code(&devices, &ctx),
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The gateway cannot reach its database; try again in a moment.",
        ),
    }
}

fn refuse_code(
    devices: &crate::devices::Devices,
    ctx: &crate::identity::client_identity::ClientContext,
) -> Response {
    if let Some(wait) = devices.failures.record_failure(ctx.client_ip, None) {
        return too_many(wait);
    }
    json_error(
        StatusCode::NOT_FOUND,
        "invalid_code",
        "This pairing code is unknown, already used or expired. Start a new pairing in your browser.",
    )
}

/// `POST /.vestibule/pair/poll`: the device collects its credential.
///
/// Takes `claim`. 202 while the person has not answered; 200 with the
/// credential once confirmed (exactly once); 403 if refused; 410 when
/// expired or already collected.
pub(super) async fn pair_poll(
    State(state): State<Arc<AppState>>,
    ext: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (devices, ctx) = match device_endpoint(&state, ext, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let claim = device_fields(&headers, &body)
        .and_then(|f| field(&f, "claim").map(str::to_owned))
        .unwrap_or_default();
    if !is_pairing_claim_token(&claim) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send the `claim` you got from /.vestibule/pair.",
        );
    }
    let secret = device_token(random32());
    let now = now_ms();
    // Account, name and routes come from the pairing; these are ignored.
    let template = NewDevice {
        account_id: 0,
        name: String::new(),
        kind: "paired".into(),
        routes: Vec::new(),
        secret_hash: hash_token(secret.expose()),
        basic_user: None,
        created_at: now,
        expires_at: None,
    };
    match devices
        .store()
        .redeem_pairing(&hash_token(&claim), &template, now)
        .await
    {
        Ok(PairingPoll::Pending) => json(
            StatusCode::ACCEPTED,
            serde_json::json!({ "status": "pending", "interval": POLL_INTERVAL_SECS }),
        ),
        Ok(PairingPoll::Refused) => json_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "The pairing was refused in the browser.",
        ),
        Ok(PairingPoll::Expired) => {
            if let Some(wait) = devices.failures.record_failure(ctx.client_ip, None) {
                return too_many(wait);
            }
            json_error(
                StatusCode::GONE,
                "expired_token",
                "This pairing expired or was already collected. Start a new one.",
            )
        }
        Ok(PairingPoll::Issued(device)) => {
            let owner = match devices.store().account(device.account_id).await {
                Ok(Some(a)) => a.username,
                _ => String::new(),
            };
            let header_names: Vec<String> = state
                .settings
                .routes
                .iter()
                .filter(|r| device.routes.contains(&r.name))
                .filter_map(|r| r.carriers.header.as_ref().map(|h| h.as_str().to_owned()))
                .collect();
            tracing::info!(
                device = device.id,
                "a paired device collected its credential"
            );
            json(
                StatusCode::OK,
                serde_json::json!({
                    "status": "issued",
                    "credential": secret.expose(),
                    "user": owner,
                    "device_id": device.id,
                    "name": device.name,
                    "routes": device.routes,
                    "headers": header_names,
                }),
            )
        }
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The gateway cannot reach its database; try again in a moment.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_decode() {
        let f = form_fields(b"csrf=a%2Bb&route=photos&route=music&name=My+Phone&empty");
        assert_eq!(field(&f, "csrf"), Some("a+b"));
        assert_eq!(field(&f, "name"), Some("My Phone"));
        let routes: Vec<_> = f.iter().filter(|(k, _)| k == "route").collect();
        assert_eq!(routes.len(), 2);
        assert_eq!(field(&f, "empty"), Some(""));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("  ").is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert_eq!(check_name(" Phone ").unwrap(), "Phone");
    }

    #[test]
    fn qr_is_inline_svg() {
        let svg = qr_svg("vst_abc");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("</svg>"));
    }
}
