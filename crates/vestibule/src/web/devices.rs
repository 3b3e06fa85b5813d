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
use axum::extract::{Form, Path, State};
use axum::response::Response;
use base64::Engine;
use http::{HeaderMap, StatusCode, header};
use rand::RngCore;
use serde::Deserialize;
use vestibule_core::credential::{CredentialKind, device_token, pairing_code};
use vestibule_core::policy::Decision;
use vestibule_core::secret::{Secret, hash_token};
use vestibule_store::{Device, NewDevice, PairingState};

use super::extract::{AdminSession, CsrfForm, Fields, PageError, SignedIn};
use super::session::PageSession;
use super::{audit, csrf_field, render, see_other, when};
use crate::accounts::now_ms;
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
    routes: Vec<RouteChoice>,
    expiries: Vec<(u32, &'static str)>,
    csrf: String,
    is_admin: bool,
}

/// `GET /.vestibule/devices`.
pub(super) async fn devices(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
) -> Result<Response, PageError> {
    let list = devices_on(&state)?
        .store()
        .devices_of(Some(s.account_id))
        .await?;
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
    Ok(render(page))
}

/// The routes a form asked for, checked against what the person may choose.
fn chosen_routes(
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
    headers: HeaderMap,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let name = check_name(fields.get("name").unwrap_or("")).map_err(PageError::BadForm)?;
    let routes = chosen_routes(&state, &s, &fields)?;
    let kind = match fields.get("kind").unwrap_or("token") {
        "token" => CredentialKind::Token,
        "app-password" => CredentialKind::AppPassword,
        _ => return Err(PageError::BadForm("Unknown kind of device.".into())),
    };
    // The kind decides how the credential may be sent: refuse one that
    // could not be used on an app it is meant for.
    if let Some(r) = state
        .settings
        .routes
        .iter()
        .find(|r| routes.contains(&r.name) && !r.carriers.take(kind))
    {
        return Err(PageError::BadForm(match kind {
            CredentialKind::AppPassword => format!(
                "`{}` does not take app passwords (HTTP Basic): create a token for it.",
                r.name
            ),
            CredentialKind::Token => format!(
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
    let page = CreatedPage {
        snippets: snippets(
            &state,
            kind,
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
    Ok(render(page))
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
    Ok(see_other("/.vestibule/devices"))
}

/// `POST /.vestibule/admin/devices/revoke`: an admin revokes anyone's.
pub(super) async fn admin_revoke(
    State(state): State<Arc<AppState>>,
    s: AdminSession,
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
    Ok(see_other("/.vestibule/admin"))
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
    s: SignedIn,
    headers: HeaderMap,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let routes = chosen_routes(&state, &s, &fields)?;
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
    Ok(render(page))
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
    s: SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let p = match devices_on(&state)?.store().pairing(id).await? {
        Some(p) if p.account_id == s.account_id => p,
        _ => return Err(PageError::not_found("You have no such pairing.")),
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
    Ok(render(page))
}

/// `POST /.vestibule/devices/pair/{id}`: confirm or refuse.
pub(super) async fn pair_decide(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Path(id): Path<i64>,
    CsrfForm(Form(f)): CsrfForm<Form<DecideForm>>,
) -> Result<Response, PageError> {
    let devices = devices_on(&state)?;
    let confirm = match f.decision.as_str() {
        "confirm" => true,
        "refuse" => false,
        _ => return Err(PageError::BadForm("Confirm or refuse.".into())),
    };
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
    Ok(see_other(&format!("/.vestibule/devices/pair/{id}")))
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
