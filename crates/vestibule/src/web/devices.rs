//! Device pages: the person's side of device credentials and pairing.
//!
//! - `/.vestibule/devices`: your devices (revoke), add one (the secret is
//!   shown once, with copy-ready forms and a QR code), pair one.
//! - Pairing ("quick connect"): a signed-in person starts a pairing and
//!   gets a short code (5 minutes, single use). The device redeems it at
//!   the JSON endpoints in [`crate::api::pairing`]; the person sees the
//!   device's name here and confirms. Nothing is issued without
//!   confirmation.
//!
//! Every state change is a CSRF-checked POST answered after the write is on
//! disk. Secrets are shown once and never logged.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngCore;
use serde::Deserialize;
use vestibule_core::credential::{CredentialKind, device_token, pairing_code};
use vestibule_core::policy::Decision;
use vestibule_core::secret::{Secret, find_cookie, hash_token};
use vestibule_store::{Device, NewDevice, PairingPoll, PairingState};

use super::chrome::{Chrome, Nav};
use super::extract::{AdminSession, Client, CookieSlot, CsrfForm, Fields, PageError, SignedIn};
use super::flash::{Flash, Notice};
use super::session::PageSession;
use super::{ConfirmPage, audit, csrf_field, done, render, see_other, when};
use crate::accounts::now_ms;
use crate::devices::reveal::{Created, PairingCode, REVEAL_TTL_MS};
use crate::state::AppState;

/// Longest device name accepted.
pub(crate) const MAX_NAME_CHARS: usize = 64;

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
    let routes = state.routes();
    routes
        .list
        .iter()
        .enumerate()
        .filter(|(_, r)| r.carriers.any())
        .filter(|(i, _)| {
            matches!(
                crate::policy::authorize::authorize(&routes, *i, Some(&s.identity)),
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
    /// Whether the page asks for a renewal (a certificate close to expiry).
    pub(super) renew_soon: bool,
    pub(super) last_used: String,
    /// For a certificate device paired with a fallback token: when the
    /// token was last used, i.e. the device seen without its certificate.
    pub(super) last_used_without: Option<String>,
    pub(super) owner: String,
    /// A certificate device: the page offers to renew it.
    pub(super) renewable: bool,
}

/// How long before a certificate expires the devices page asks for a
/// renewal: 30 days, or a quarter of the configured validity when that is
/// shorter (a 30-day certificate is not "to renew soon" the day it is made).
const RENEW_REMINDER_MS: i64 = 30 * 86_400_000;

/// The renewal reminder window on this gateway (see [`RENEW_REMINDER_MS`]).
pub(super) fn renew_window_ms(state: &AppState) -> i64 {
    state
        .settings
        .client_certs
        .as_ref()
        .map_or(RENEW_REMINDER_MS, |c| {
            RENEW_REMINDER_MS.min(i64::try_from(c.validity.as_millis() / 4).unwrap_or(i64::MAX))
        })
}

/// The name of the token device made beside certificate device `name`
/// (`web::certificates`' fallback token).
pub(super) fn fallback_name(name: &str) -> String {
    format!("{name} (fallback token)")
}

fn seen(d: &Device) -> String {
    match (&d.last_used_at, &d.last_used_ip) {
        (Some(t), Some(ip)) => format!("{} from {ip}", when(*t)),
        (Some(t), None) => when(*t),
        _ => "never".to_owned(),
    }
}

/// `d` as a row; `all` is every device of the same listing, where a
/// certificate device finds its fallback token (same owner, the token's
/// name), so the row says when the device was last seen with its
/// certificate and when without (issue 18).
fn device_row(d: &Device, owner: String, all: &[Device], renew_window_ms: i64) -> DeviceRow {
    let certificate = d.kind == "certificate";
    let fallback = certificate
        .then(|| {
            let name = fallback_name(&d.name);
            all.iter()
                .find(|t| t.account_id == d.account_id && t.kind == "token" && t.name == name)
        })
        .flatten();
    let is_fallback = d.kind == "token"
        && all.iter().any(|c| {
            c.account_id == d.account_id
                && c.kind == "certificate"
                && fallback_name(&c.name) == d.name
        });
    let renew_soon = certificate
        && d.expires_at
            .is_some_and(|at| at - now_ms() < renew_window_ms);
    DeviceRow {
        id: d.id,
        name: d.name.clone(),
        kind: d.kind.clone(),
        routes: d.routes.join(", "),
        created: when(d.created_at),
        expires: match d.expires_at {
            None => "never".to_owned(),
            // A certificate must be reinstalled on the device: say so
            // early enough to do it.
            Some(at) if renew_soon => format!("{}: renew it soon", when(at)),
            Some(at) => when(at),
        },
        renew_soon,
        renewable: certificate,
        last_used: match (certificate, is_fallback) {
            (true, _) => format!("with the certificate: {}", seen(d)),
            (false, true) => format!("without the certificate: {}", seen(d)),
            _ => seen(d),
        },
        last_used_without: fallback
            .map(|t| format!("without the certificate (fallback token): {}", seen(t))),
        owner,
    }
}

/// The device store, on a gateway with devices (a bare 404 otherwise).
fn devices_on(state: &AppState) -> Result<Arc<crate::devices::Devices>, PageError> {
    state
        .devices()
        .cloned()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    devices: Vec<DeviceRow>,
    pairings: Vec<PairingRow>,
    routes: Vec<RouteChoice>,
    expiries: Vec<(u32, &'static str)>,
    /// Whether certificate devices can be made (`[client_certs]`).
    certificates: bool,
    /// The app picker of the certificate form.
    cert_apps: Vec<(&'static str, &'static str)>,
    csrf: String,
    chrome: Chrome,
}

/// A pairing in progress, as the devices page lists it.
struct PairingRow {
    id: i64,
    label: String,
    routes: String,
    expires: String,
}

/// `GET /.vestibule/devices`.
pub(super) async fn devices(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    flash: Flash,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let list = devices.store().devices_of(Some(s.account_id)).await?;
    let now = now_ms();
    let mut pairings = Vec::new();
    for id in devices.reveals.pairings_of(s.account_id, now) {
        let Some(p) = devices.store().pairing(id).await? else {
            continue;
        };
        let label = match pairing_state(&p, now) {
            "open" => "Waiting for a device".to_owned(),
            "claimed" => format!(
                "{} asks to be paired: confirm or refuse",
                p.device_name.as_deref().unwrap_or("A device")
            ),
            "confirmed" => "Confirmed, waiting for the device to collect".to_owned(),
            _ => continue,
        };
        pairings.push(PairingRow {
            id,
            label,
            routes: p.routes.join(", "),
            expires: when(p.expires_at),
        });
    }
    let page = DevicesPage {
        pairings,
        devices: list
            .iter()
            .map(|d| {
                device_row(
                    d,
                    s.identity.username.clone(),
                    &list,
                    renew_window_ms(&state),
                )
            })
            .collect(),
        routes: route_choices(&state, &s),
        expiries: EXPIRY_CHOICES.to_vec(),
        certificates: state.client_ca.is_some(),
        cert_apps: super::certificates::APPS.to_vec(),
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Devices, super::is_admin(&state, &s), flash),
    };
    Ok(render(page))
}

/// The routes a form asked for, checked against what the person may choose.
pub(super) fn chosen_routes(
    state: &AppState,
    s: &PageSession,
    fields: &Fields,
) -> Result<Vec<String>, PageError> {
    let allowed = route_choices(state, s);
    let mut routes: Vec<String> = Vec::new();
    for (k, v) in &fields.0 {
        if k != "route" {
            continue;
        }
        if !allowed.iter().any(|r| &r.name == v) {
            return Err(PageError::BadForm(format!(
                "You cannot give a device access to `{v}`."
            )));
        }
        if !routes.contains(v) {
            routes.push(v.clone());
        }
    }
    if routes.is_empty() {
        return Err(PageError::BadForm(
            "Pick at least one app for the device.".into(),
        ));
    }
    Ok(routes)
}

/// A device name, trimmed, or what is wrong with it.
pub(crate) fn check_name(name: &str) -> Result<String, String> {
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

pub(crate) fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// An SVG QR code for `value` (inline in the page: no request, no script).
pub(crate) fn qr_svg(value: &str) -> String {
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
    /// The gateway's address, as the browser reached it.
    server: String,
    snippets: Vec<Snippet>,
    /// The QR code of [`connect_url`].
    qr: String,
    chrome: Chrome,
}

impl CreatedPage {
    /// The page that reveals a device's secret, for `user` on `routes`.
    #[allow(clippy::too_many_arguments, reason = "one page, built in one place")]
    fn new(
        state: &AppState,
        kind: CredentialKind,
        name: String,
        routes: &[String],
        user: &str,
        secret: &Secret,
        server: String,
        chrome: Chrome,
    ) -> Self {
        Self {
            snippets: snippets(state, kind, routes, user, secret, &server),
            qr: qr_svg(&device_qr(kind, &server, user, secret.expose())),
            name,
            routes: routes.join(", "),
            secret: secret.expose().to_owned(),
            username: user.to_owned(),
            server,
            chrome,
        }
    }
}

/// What the device QR code holds (documented in docs/clients.md): for an
/// app password, [`connect_url`], the address apps that scan a server field
/// read; for a token, which is only accepted as a bearer value, a JSON
/// object `{"server", "user", "token", "send_as": "Bearer"}`, since no
/// address form can carry a bearer token.
pub(crate) fn device_qr(kind: CredentialKind, server: &str, user: &str, token: &str) -> String {
    match kind {
        CredentialKind::AppPassword => connect_url(server, user, token),
        CredentialKind::Token => serde_json::json!({
            "server": server,
            "user": user,
            "token": token,
            "send_as": "Bearer",
        })
        .to_string(),
        // A certificate is a file, imported on the device: no QR code.
        CredentialKind::Certificate => String::new(),
    }
}

/// The address form of a Basic credential: the
/// gateway's address with the user and the secret as its userinfo,
/// `https://alice:vst_…@host/` (RFC 3986 §3.2.1, both parts
/// percent-encoded), the one form apps that scan a server address read.
pub(crate) fn connect_url(server: &str, user: &str, token: &str) -> String {
    match server.split_once("://") {
        Some((scheme, rest)) => {
            let user = percent_encoding::utf8_percent_encode(user, USERINFO);
            let token = percent_encoding::utf8_percent_encode(token, USERINFO);
            format!("{scheme}://{user}:{token}@{rest}")
        }
        None => server.to_owned(),
    }
}

/// What to paste, for the carriers of `routes` that take a credential of
/// `kind`.
fn snippets(
    state: &AppState,
    kind: CredentialKind,
    routes: &[String],
    user: &str,
    secret: &Secret,
    origin: &str,
) -> Vec<Snippet> {
    let mut out = Vec::new();
    let token = secret.expose();
    let routes_now = state.routes();
    let carriers: Vec<_> = routes_now
        .list
        .iter()
        .filter(|r| routes.contains(&r.name))
        .map(|r| &r.carriers)
        .collect();
    let any =
        |f: &dyn Fn(&vestibule_core::credential::Carriers) -> bool| carriers.iter().any(|c| f(c));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    if kind == CredentialKind::AppPassword {
        return app_password_snippets(&carriers, user, token, &basic, origin);
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
            label: format!("Custom header {h} (immich, Symfonium, paperless-mobile)"),
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

/// What to paste for an app password: HTTP Basic only.
fn app_password_snippets(
    carriers: &[&vestibule_core::credential::Carriers],
    user: &str,
    token: &str,
    basic: &str,
    origin: &str,
) -> Vec<Snippet> {
    let mut out = Vec::new();
    if carriers.iter().any(|c| c.basic) {
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
        // Clients with one "server" field (immich's `user:pass@host`);
        // the same address the QR code holds.
        out.push(Snippet {
            label: "Server address with the app password (clients that take user:password@host)"
                .into(),
            value: connect_url(origin, user, token),
        });
    }
    if carriers.iter().any(|c| c.proxy_authorization) {
        out.push(Snippet {
            label: "Proxy-Authorization header (Basic)".into(),
            value: format!("Proxy-Authorization: Basic {basic}"),
        });
    }
    out
}

/// `POST /.vestibule/devices/new`: create a device and show its secret once.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let name = check_name(fields.get("name").unwrap_or("")).map_err(PageError::BadForm)?;
    let routes = chosen_routes(&state, &s, &fields)?;
    super::session::provider_still_vouches(&state, &s).await?;
    let kind = match fields.get("kind").unwrap_or("token") {
        "token" => CredentialKind::Token,
        "app-password" => CredentialKind::AppPassword,
        _ => return Err(PageError::BadForm("Unknown kind of device.".into())),
    };
    // The kind decides how the credential may be sent: refuse one that
    // could not be used on an app it is meant for.
    if let Some(r) = state
        .routes()
        .list
        .iter()
        .find(|r| routes.contains(&r.name) && !r.carriers.take(kind))
    {
        return Err(PageError::BadForm(match kind {
            CredentialKind::AppPassword => format!(
                "`{}` does not take app passwords (HTTP Basic): create a token for it.",
                r.name
            ),
            CredentialKind::Token | CredentialKind::Certificate => format!(
                "`{}` only takes app passwords (HTTP Basic): create an app password for it.",
                r.name
            ),
        }));
    }
    let days: u32 = match fields.get("expires_days").unwrap_or("0").parse() {
        Ok(d) if EXPIRY_CHOICES.iter().any(|(c, _)| *c == d) => d,
        _ => return Err(PageError::BadForm("Pick an expiry from the list.".into())),
    };
    let now = now_ms();
    let expires_at = (days > 0).then(|| now + i64::from(days) * 86_400_000);
    let secret = device_token(random32());
    let new = NewDevice {
        account_id: s.account_id,
        name: name.clone(),
        kind: kind.as_str().to_owned(),
        routes: routes.clone(),
        secret_hash: hash_token(secret.expose()),
        basic_user: Some(s.identity.username.clone()),
        created_at: now,
        expires_at,
    };
    let device = devices.store().create_device(&new).await?;
    audit(
        &state,
        &s,
        "device-create",
        format!("device:{}", device.id),
        format!("{name} for {}", routes.join(",")),
    )
    .await;
    // The secret waits in memory for the one page that shows it: a reload
    // of that page cannot mint a second device (POST/redirect/GET).
    let reveal_id = vestibule_store::hex(&random32());
    devices.reveals.put_created(
        reveal_id.clone(),
        Created {
            session: s.id_hash,
            kind,
            name,
            routes,
            secret,
            expires_at: now + REVEAL_TTL_MS,
        },
        now,
    );
    Ok(see_other(&format!(
        "/.vestibule/devices/created/{reveal_id}"
    )))
}

/// `GET /.vestibule/devices/created/{id}`: the new device's secret, once,
/// to the session that created it.
pub(super) async fn created(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let Some(c) = devices.reveals.take_created(&id, &s.id_hash, now_ms()) else {
        return Err(PageError::refused(
            StatusCode::GONE,
            "Already shown",
            "This secret was shown once and is gone; vestibule keeps only its hash.",
            "If you did not copy it, revoke the device on your devices page and create another.",
        ));
    };
    let chrome = Chrome::new(Nav::Devices, super::is_admin(&state, &s), Flash(None));
    Ok(render(CreatedPage::new(
        &state,
        c.kind,
        c.name,
        &c.routes,
        &s.identity.username,
        &c.secret,
        origin(&s.ctx, &headers),
        chrome,
    )))
}

/// A form naming one device.
#[derive(Deserialize)]
pub(super) struct DeviceForm {
    csrf: String,
    id: i64,
}

/// The owner's answer to a device's request.
#[derive(Deserialize)]
pub(super) struct DecideForm {
    csrf: String,
    decision: String,
}

csrf_field!(DeviceForm, DecideForm);

/// `POST /.vestibule/devices/revoke`: the owner revokes one of theirs.
pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<DeviceForm>>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    if !devices
        .store()
        .revoke_device(f.id, Some(s.account_id))
        .await?
    {
        return Err(PageError::not_found("You have no such device."));
    }
    audit(
        &state,
        &s,
        "device-revoke",
        format!("device:{}", f.id),
        String::new(),
    )
    .await;
    Ok(done(
        &slot,
        &s,
        "/.vestibule/devices",
        Notice::DeviceRevoked,
    ))
}

/// `POST /.vestibule/admin/devices/revoke`: an admin revokes anyone's.
// Alike revoke above: a handler's extractors; an admin revokes anyone's, and a miss is a bare 404.
pub(super) async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    Extension(slot): Extension<CookieSlot>,
    CsrfForm(Form(f)): CsrfForm<Form<DeviceForm>>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    if !devices.store().revoke_device(f.id, None).await? {
        // No such device: nothing to audit as done.
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    }
    audit(
        &state,
        &s,
        "device-revoke",
        format!("device:{}", f.id),
        "by an admin".into(),
    )
    .await;
    Ok(done(&slot, &s, "/.vestibule/admin", Notice::DeviceRevoked))
}

/// `GET /.vestibule/admin/devices/{id}/revoke`: the confirmation before an
/// admin revokes someone's device.
pub(super) async fn admin_revoke_confirm(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let d = devices
        .store()
        .device(id)
        .await?
        .ok_or_else(|| PageError::not_found("No such device."))?;
    let owner = match devices.store().account(d.account_id).await? {
        Some(a) => a.username,
        None => format!("account {}", d.account_id),
    };
    Ok(render(ConfirmPage {
        title: "Revoke this device?",
        message: format!(
            "{owner}'s device \u{201c}{}\u{201d} stops working at once; its owner has to create a new credential.",
            d.name
        ),
        action: "/.vestibule/admin/devices/revoke",
        fields: vec![("id", id.to_string())],
        button: "Revoke the device",
        cancel: "/.vestibule/admin",
        csrf: s.csrf.clone(),
        chrome: Chrome::new(Nav::Admin, true, Flash(None)),
    }))
}

/// Every device, for the admin page (none when devices are off). `owners`
/// maps account ids to usernames the caller already has; others are looked
/// up once each.
pub(super) async fn all_devices(
    state: &AppState,
    mut owners: std::collections::HashMap<i64, String>,
) -> Result<Vec<DeviceRow>, vestibule_store::StoreError> {
    let Some(devices) = state.devices() else {
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
        out.push(device_row(
            d,
            owners[&d.account_id].clone(),
            &list,
            renew_window_ms(state),
        ));
    }
    Ok(out)
}

// ---- pairing ------------------------------------------------------------

#[derive(Template)]
#[template(path = "pairing.html")]
struct PairingPage {
    id: i64,
    /// Shown while the pairing is open (kept in memory, see
    /// [`crate::devices::reveal`]).
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
    /// Whether the page reloads itself (while it waits for the device).
    refresh: bool,
    chrome: Chrome,
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

/// `POST /.vestibule/devices/pair`: start a pairing, then show it on its
/// own page (POST/redirect/GET: a reload does not start another).
pub(super) async fn pair_start(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let routes = chosen_routes(&state, &s, &fields)?;
    super::session::provider_still_vouches(&state, &s).await?;
    let mut random = [0u8; 8];
    rand::rng().fill_bytes(&mut random);
    let code = pairing_code(random);
    // Already canonical (`XXXXX-XXXXX`): what a device's typing normalises to.
    let canonical = code.expose();
    let now = now_ms();
    let ttl = i64::try_from(state.settings.devices.pairing_ttl.as_millis()).unwrap_or(300_000);
    let pairing = devices
        .store()
        .create_pairing(
            s.account_id,
            &hash_token(canonical),
            &routes,
            now,
            now + ttl,
        )
        .await?;
    devices.reveals.put_pairing(
        pairing.id,
        PairingCode {
            account_id: s.account_id,
            code: canonical.to_owned(),
            expires_at: pairing.expires_at,
        },
        now,
    );
    audit(
        &state,
        &s,
        "pairing-start",
        format!("pairing:{}", pairing.id),
        routes.join(","),
    )
    .await;
    Ok(see_other(&format!(
        "/.vestibule/devices/pair/{}",
        pairing.id
    )))
}

/// The gateway's own origin and root (`https://host/`), as the browser
/// reached it.
fn origin(ctx: &crate::identity::client_identity::ClientContext, headers: &HeaderMap) -> String {
    let view = crate::urls::RequestView {
        host: headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        path: "/",
        path_and_query: "/",
        headers,
    };
    crate::urls::original_url(ctx, &view)
}

/// `GET /.vestibule/devices/pair/{id}`: how a pairing stands, with its
/// code while it is open; confirm here. Reloads itself while it waits.
pub(super) async fn pair_status(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    headers: HeaderMap,
    flash: Flash,
    Path(id): Path<i64>,
    Query(view): Query<ViewQuery>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let p = match devices.store().pairing(id).await? {
        Some(p) if p.account_id == s.account_id => p,
        _ => return Err(PageError::not_found("You have no such pairing.")),
    };
    let now = now_ms();
    let state_name = pairing_state(&p, now);
    let code = devices
        .reveals
        .pairing_code(id, s.account_id, now)
        .filter(|_| state_name == "open");
    let pair_url = code.as_deref().map_or_else(String::new, |c| {
        format!("{}.vestibule/pair?code={c}", origin(&s.ctx, &headers))
    });
    let page = PairingPage {
        id: p.id,
        qr: if pair_url.is_empty() {
            String::new()
        } else {
            qr_svg(&pair_url)
        },
        code,
        pair_url,
        state: state_name,
        device_name: p.device_name.clone().unwrap_or_default(),
        claimed: match (&p.claimed_ip, p.claimed_at) {
            (Some(ip), Some(at)) => format!("from {ip}, {}", when(at)),
            (None, Some(at)) => when(at),
            _ => String::new(),
        },
        routes: p.routes.join(", "),
        expires: when(p.expires_at),
        csrf: s.csrf.clone(),
        refresh: matches!(state_name, "open" | "confirmed") && !view.manual(),
        chrome: Chrome::new(Nav::Devices, super::is_admin(&state, &s), flash),
    };
    Ok(render(page))
}

/// `POST /.vestibule/devices/pair/{id}`: confirm or refuse.
pub(super) async fn pair_decide(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Extension(slot): Extension<CookieSlot>,
    Path(id): Path<i64>,
    CsrfForm(Form(f)): CsrfForm<Form<DecideForm>>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let confirm = match f.decision.as_str() {
        "confirm" => true,
        "refuse" => false,
        _ => return Err(PageError::BadForm("Confirm or refuse.".into())),
    };
    if confirm {
        super::session::provider_still_vouches(&state, &s).await?;
    }
    if !devices
        .store()
        .decide_pairing(id, s.account_id, confirm, now_ms())
        .await?
    {
        return Err(PageError::refused(
            StatusCode::CONFLICT,
            "Too late",
            "This pairing can no longer be confirmed: it expired, or was already answered.",
            "Start a new pairing.",
        ));
    }
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
    let notice = if confirm {
        Notice::PairingConfirmed
    } else {
        Notice::PairingRefused
    };
    Ok(done(
        &slot,
        &s,
        &format!("/.vestibule/devices/pair/{id}"),
        notice,
    ))
}

// ---- the pairing QR code, opened in the device's own browser -------------

/// The cookie that holds a browser's pairing claim between the form and
/// the waiting page. `HttpOnly`, `SameSite=Strict` and only sent to
/// `/.vestibule/pair`.
pub(crate) const CLAIM_COOKIE: &str = super::cookies::PAIRING_CLAIM_NAME;

/// `?manual=1`: a waiting page that does not reload itself (WCAG 2.2.1:
/// a time limit the person can turn off).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ViewQuery {
    manual: Option<String>,
}

impl ViewQuery {
    fn manual(&self) -> bool {
        self.manual.is_some()
    }
}

/// `?code=` of the pairing address.
#[derive(Deserialize)]
pub(super) struct CodeQuery {
    code: Option<String>,
}

#[derive(Template)]
#[template(path = "pair_device.html")]
struct PairDevicePage {
    code: String,
    chrome: Chrome,
}

/// `GET /.vestibule/pair?code=…`: what the pairing QR code opens in a
/// phone's browser. No session is needed: the code is the secret. The
/// form posts to the same address, which apps call with JSON.
pub(super) async fn pair_landing(
    State(state): State<Arc<AppState>>,
    query: Result<Query<CodeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    devices_on(&state)?;
    // Only a well-formed code is put back into the form.
    let code = query
        .ok()
        .and_then(|Query(q)| q.code)
        .and_then(|c| vestibule_core::credential::normalize_pairing_code(&c))
        .unwrap_or_default();
    Ok(render(PairDevicePage {
        code,
        chrome: Chrome::bare(),
    }))
}

/// `Set-Cookie` for a browser's claim (or its removal: `None`).
pub(crate) fn claim_cookie(claim: Option<&str>, https: bool, max_age_secs: i64) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let (value, age) = match claim {
        Some(c) => (c, max_age_secs.max(0)),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{CLAIM_COOKIE}={value}; Path=/.vestibule/pair; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vestibule_pair=; Max-Age=0"))
}

#[derive(Template)]
#[template(path = "pair_wait.html")]
struct PairWaitPage {
    /// Whether the page reloads itself.
    refresh: bool,
    chrome: Chrome,
}

/// `GET /.vestibule/pair/wait`: the device's browser waits for the
/// person's confirmation (reloading itself), then is shown the credential
/// exactly once: collecting it is the redemption, as a device's poll is.
pub(super) async fn pair_wait(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    Extension(slot): Extension<CookieSlot>,
    headers: HeaderMap,
    Query(view): Query<ViewQuery>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let https = super::session::https(&ctx, &headers);
    let claim = find_cookie(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        CLAIM_COOKIE,
    )
    .filter(|c| vestibule_core::credential::is_pairing_claim_token(c))
    .map(str::to_owned);
    let gone = || {
        PageError::refused(
            StatusCode::GONE,
            "Pairing over",
            "This pairing expired, or its credential was already shown.",
            "Start a new pairing in your browser, then scan its QR code again.",
        )
    };
    let Some(claim) = claim else {
        return Err(gone());
    };
    let (poll, secret) = crate::api::pairing::redeem(&devices, &claim).await?;
    match poll {
        PairingPoll::Pending => Ok(render(PairWaitPage {
            refresh: !view.manual(),
            chrome: Chrome::bare(),
        })),
        PairingPoll::Refused => {
            slot.set(claim_cookie(None, https, 0));
            Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Pairing refused",
                "The pairing was refused in the browser where it was started.",
                "Nothing was issued to this device.",
            ))
        }
        PairingPoll::Expired => {
            slot.set(claim_cookie(None, https, 0));
            Err(gone())
        }
        PairingPoll::Issued(device) => {
            slot.set(claim_cookie(None, https, 0));
            let owner = devices
                .store()
                .account(device.account_id)
                .await?
                .map(|a| a.username)
                .unwrap_or_default();
            tracing::info!(
                device = device.id,
                "a paired browser collected its credential"
            );
            Ok(render(CreatedPage::new(
                &state,
                CredentialKind::Token,
                device.name.clone(),
                &device.routes,
                &owner,
                &secret,
                origin(&ctx, &headers),
                Chrome::bare(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
