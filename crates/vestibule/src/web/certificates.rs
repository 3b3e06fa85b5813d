//! Certificate devices (issue 18), the owner's side:
//!
//! - `POST /.vestibule/devices/certificate`: issue a client certificate for
//!   a new device (key pair made here, signed by the deployment's CA, the
//!   device row keyed on the leaf's SHA-256), then POST/redirect/GET to
//! - `GET /.vestibule/devices/certificate/{id}`: the PKCS#12 password,
//!   shown once, with the app's install steps and the download links;
//! - `GET /.vestibule/devices/certificate/{id}/device.p12` and `device.pem`:
//!   the files, for the session that made them, for [`REVEAL_TTL_MS`].
//!
//! Nothing here is stored but the certificate's serial and fingerprint: the
//! private key, the file and its password live in memory for minutes.
//!
//! And the public endpoints fronts need: `/.vestibule/client-ca.pem` (every
//! CA certificate still valid), `/.vestibule/client-ca-crls.pem` (the CRL
//! of each) and `/.vestibule/client-ca.crl` (the current CA's RFC 5280
//! CRL, DER; the revocations are read on each request, so a revocation
//! shows on the next fetch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use vestibule_core::credential::CredentialKind;
use vestibule_store::NewDevice;

use super::chrome::{Chrome, Nav};
use super::extract::{CsrfForm, Fields, PageError, SignedIn};
use super::flash::Flash;
use super::{audit, render, see_other};
use crate::accounts::now_ms;
use crate::certs::pkcs12::{self, Pkcs12Form};
use crate::certs::{LeafKey, LeafRequest};
use crate::devices::reveal::REVEAL_TTL_MS;
use crate::state::AppState;

/// The apps the page has install steps for.
pub(crate) const APPS: &[(&str, &str)] = &[
    (
        "android",
        "Android, system-wide (Home Assistant, Nextcloud, DAVx5, Bitwarden)",
    ),
    ("ios-ha", "Home Assistant on iOS (in-app import)"),
    ("ios-immich", "Immich on iOS or Android (in-app import)"),
    ("ios-paperless", "paperless-mobile (in-app import)"),
    ("desktop", "Nextcloud desktop, browsers, other desktop apps"),
    ("cli", "curl and other command-line tools (PEM)"),
];

/// A freshly issued certificate, waiting for its page and downloads.
pub(crate) struct IssuedFiles {
    session: [u8; 32],
    name: String,
    app: String,
    form: Pkcs12Form,
    /// Taken by the first view of the page.
    password: Option<String>,
    /// The fallback token, when one was asked for; shown with the password.
    fallback: Option<vestibule_core::secret::Secret>,
    p12: Vec<u8>,
    pem: String,
    expires_at: i64,
    not_after: i64,
}

/// The issued files, by one-time id. In memory only (see the module docs).
#[derive(Default)]
pub struct IssuedCertificates(Mutex<HashMap<String, IssuedFiles>>);

impl IssuedCertificates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, IssuedFiles>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, id: String, files: IssuedFiles, now: i64) {
        let mut m = self.lock();
        m.retain(|_, v| v.expires_at > now);
        m.insert(id, files);
    }

    fn with<T>(
        &self,
        id: &str,
        session: &[u8; 32],
        now: i64,
        f: impl FnOnce(&mut IssuedFiles) -> T,
    ) -> Option<T> {
        let mut m = self.lock();
        m.get_mut(id)
            .filter(|v| &v.session == session && v.expires_at > now)
            .map(f)
    }
}

#[derive(Template)]
#[template(path = "certificate_created.html")]
struct CertificatePage {
    id: String,
    name: String,
    app: String,
    form: &'static str,
    password: String,
    /// The fallback token, shown once with the password.
    fallback: Option<String>,
    expires: String,
    chrome: Chrome,
}

fn ca_on(state: &AppState) -> Result<&Arc<crate::certs::ClientCa>, PageError> {
    state
        .client_ca
        .as_ref()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))
}

fn unavailable(detail: String) -> PageError {
    PageError::Unavailable { detail }
}

/// `POST /.vestibule/devices/certificate`.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<Response, PageError> {
    let ca = ca_on(&state)?.clone();
    let (Some(settings), Some(devices)) = (&state.settings.client_certs, state.devices()) else {
        return Err(PageError::Status(StatusCode::NOT_FOUND));
    };
    super::session::provider_still_vouches(&state, &s).await?;
    // Renewal (issue 18): a new certificate for the same device, with its
    // name and apps; the old certificate stops working as the new one is
    // recorded (see `renew_certificate_device`).
    let renewing = match fields.get("renew") {
        Some(id) => {
            let old = match id.parse::<i64>() {
                Ok(id) => devices.store().device(id).await?,
                Err(_) => None,
            };
            match old {
                Some(d)
                    if d.account_id == s.account_id
                        && d.kind == CredentialKind::Certificate.as_str()
                        && d.is_live(now_ms()) =>
                {
                    Some(d)
                }
                _ => return Err(PageError::not_found("You have no such certificate device.")),
            }
        }
        None => None,
    };
    let (name, routes) = match &renewing {
        Some(d) => (d.name.clone(), d.routes.clone()),
        None => (
            super::devices::check_name(fields.get("name").unwrap_or(""))
                .map_err(PageError::BadForm)?,
            super::devices::chosen_routes(&state, &s, &fields)?,
        ),
    };
    let key = match fields.get("key") {
        None | Some("") => settings.key,
        Some(k) => LeafKey::from_form(k)
            .ok_or_else(|| PageError::BadForm("Pick RSA-2048 or P-256.".into()))?,
    };
    let form = match fields.get("pkcs12") {
        None | Some("") => settings.pkcs12,
        Some(f) => Pkcs12Form::from_form(f)
            .ok_or_else(|| PageError::BadForm("Pick the compatible or the AES file.".into()))?,
    };
    let app = fields.get("app").unwrap_or("android");
    if !APPS.iter().any(|(a, _)| *a == app) {
        return Err(PageError::BadForm("Pick an app from the list.".into()));
    }
    // A renewed device keeps the fallback token it has, if any.
    let want_fallback = renewing.is_none() && fields.get("fallback") == Some("on");
    if want_fallback {
        check_fallback_routes(&state, &routes)?;
    }
    let leaf = ca
        .issue(&LeafRequest {
            username: &s.identity.username,
            device: &name,
            key,
            validity: settings.validity,
        })
        .await
        .map_err(unavailable)?;
    let now = now_ms();
    let fingerprint = leaf.fingerprint().0;
    let (device_id, action, verb) = match &renewing {
        Some(old) => {
            let renewed = devices
                .store()
                .renew_certificate_device(
                    old.id,
                    s.account_id,
                    &fingerprint,
                    leaf.not_after,
                    &ca.recorded(&leaf, old.id),
                    now,
                )
                .await?;
            if !renewed {
                // Revoked or expired since it was read above.
                return Err(PageError::not_found("You have no such certificate device."));
            }
            (old.id, "device-renew", "renewed with")
        }
        None => {
            let device = devices
                .store()
                .create_device(&NewDevice {
                    account_id: s.account_id,
                    name: name.clone(),
                    kind: CredentialKind::Certificate.as_str().to_owned(),
                    routes: routes.clone(),
                    secret_hash: fingerprint,
                    basic_user: None,
                    created_at: now,
                    expires_at: Some(leaf.not_after),
                })
                .await?;
            ca.record(&leaf, device.id).await.map_err(unavailable)?;
            (device.id, "device-create", "with")
        }
    };
    audit(
        &state,
        &s,
        action,
        format!("device:{device_id}"),
        format!(
            "{name} ({verb} client certificate {}) for {}",
            leaf.serial,
            routes.join(",")
        ),
    )
    .await;
    let fallback = match want_fallback {
        true => Some(fallback_token(&state, &s, &name, &routes, leaf.not_after).await?),
        false => None,
    };
    let password = pkcs12::one_time_password();
    let friendly = format!("{} — {}", s.identity.username, name);
    let p12 = pkcs12::write(&leaf.cert_der, &leaf.key_pkcs8, &friendly, &password, form)
        .map_err(unavailable)?;
    let id = vestibule_store::hex(&super::devices::random32());
    devices_issued(&state).put(
        id.clone(),
        IssuedFiles {
            session: s.id_hash,
            name,
            app: app.to_owned(),
            form,
            password: Some(password),
            fallback,
            p12,
            pem: leaf.pem(),
            expires_at: now + REVEAL_TTL_MS,
            not_after: leaf.not_after,
        },
        now,
    );
    Ok(see_other(&format!("/.vestibule/devices/certificate/{id}")))
}

/// A fallback token needs every app to take tokens; checked before
/// anything is issued.
fn check_fallback_routes(state: &AppState, routes: &[String]) -> Result<(), PageError> {
    match state
        .settings
        .routes
        .iter()
        .find(|r| routes.contains(&r.name) && !r.carriers.take(CredentialKind::Token))
    {
        Some(r) => Err(PageError::BadForm(format!(
            "`{}` does not take tokens: make the certificate without a fallback token.",
            r.name
        ))),
        None => Ok(()),
    }
}

/// A token device paired with a certificate device, for an app's code
/// paths that skip the certificate (Immich uploads and backup have): the
/// same name with "(fallback token)", the same apps and expiry. Its own row,
/// so the devices page shows when each was last used: "with certificate"
/// and "without". [`check_fallback_routes`] first.
async fn fallback_token(
    state: &AppState,
    s: &SignedIn,
    name: &str,
    routes: &[String],
    expires_at: i64,
) -> Result<vestibule_core::secret::Secret, PageError> {
    let devices = state
        .devices()
        .ok_or(PageError::Status(StatusCode::NOT_FOUND))?;
    let secret = vestibule_core::credential::device_token(super::devices::random32());
    let device = devices
        .store()
        .create_device(&NewDevice {
            account_id: s.account_id,
            name: super::devices::fallback_name(name),
            kind: CredentialKind::Token.as_str().to_owned(),
            routes: routes.to_vec(),
            secret_hash: vestibule_core::secret::hash_token(secret.expose()),
            basic_user: Some(s.identity.username.clone()),
            created_at: now_ms(),
            expires_at: Some(expires_at),
        })
        .await?;
    audit(
        state,
        s,
        "device-create",
        format!("device:{}", device.id),
        format!("{name} (fallback token) for {}", routes.join(",")),
    )
    .await;
    Ok(secret)
}

fn devices_issued(state: &AppState) -> &IssuedCertificates {
    &state.issued_certificates
}

/// `GET /.vestibule/devices/certificate/{id}`: the password, once.
pub(super) async fn created(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let shown = devices_issued(&state).with(&id, &s.id_hash, now, |f| {
        let fallback = f.fallback.take().map(|t| t.expose().to_owned());
        f.password.take().map(|p| {
            (
                p,
                fallback,
                f.name.clone(),
                f.app.clone(),
                f.form,
                f.not_after,
            )
        })
    });
    let Some(Some((password, fallback, name, app, form, not_after))) = shown else {
        return Err(PageError::refused(
            StatusCode::GONE,
            "Already shown",
            "This certificate's password was shown once and is gone; vestibule never stores it.",
            "If you did not note it, revoke the device on your devices page and make another certificate.",
        ));
    };
    let chrome = Chrome::new(Nav::Devices, super::is_admin(&state, &s), Flash(None));
    Ok(render(CertificatePage {
        id,
        name,
        app,
        form: form.as_str(),
        password,
        fallback,
        expires: super::when(not_after),
        chrome,
    }))
}

/// `GET /.vestibule/devices/certificate/{id}/{file}`: `device.p12` or
/// `device.pem`, while the entry lives, for the session that made it.
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    s: SignedIn,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let found = devices_issued(&state).with(&id, &s.id_hash, now, |f| match file.as_str() {
        "device.p12" => Some((f.p12.clone(), "application/x-pkcs12", "p12", f.name.clone())),
        "device.pem" => Some((
            f.pem.clone().into_bytes(),
            "application/x-pem-file",
            "pem",
            f.name.clone(),
        )),
        _ => None,
    });
    let Some(Some((body, content_type, ext, name))) = found else {
        return Err(PageError::refused(
            StatusCode::GONE,
            "Gone",
            "This download is no longer available: the files are kept for ten minutes, in memory only.",
            "Revoke the device on your devices page and make another certificate.",
        ));
    };
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /.vestibule/client-ca.pem`: the CA certificates, for fronts.
pub(crate) async fn ca_pem(State(state): State<Arc<AppState>>) -> Response {
    let Some(ca) = &state.client_ca else {
        return not_enabled();
    };
    typed(
        ca.bundle_pem().await.map(String::into_bytes),
        "application/x-pem-file",
    )
}

/// `GET /.vestibule/client-ca.crl`: the current CA's CRL, DER
/// (`application/pkix-crl`, RFC 2585 §4.2), `no-cache`: the revocations are
/// read on each request, so a revocation shows on the next fetch.
pub(crate) async fn crl(State(state): State<Arc<AppState>>) -> Response {
    let Some(ca) = &state.client_ca else {
        return not_enabled();
    };
    no_cache(typed(ca.crl_der().await, "application/pkix-crl"))
}

/// `GET /.vestibule/client-ca-crls.pem`: the CRL of every CA still valid,
/// PEM, for fronts that check revocation themselves after a rotation.
pub(crate) async fn crls(State(state): State<Arc<AppState>>) -> Response {
    let Some(ca) = &state.client_ca else {
        return not_enabled();
    };
    let body = ca.crl_bundle_pem().await.map(String::into_bytes);
    no_cache(typed(body, "application/x-pem-file"))
}

fn no_cache(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `body` with its content type, or 503 when the CA could not be read.
fn typed(body: Result<Vec<u8>, String>, content_type: &'static str) -> Response {
    match body {
        Ok(b) => {
            let mut r = b.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "client CA unavailable");
            crate::http::responses::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the client CA is unavailable; try again shortly",
            )
        }
    }
}

fn not_enabled() -> Response {
    crate::http::responses::plain(
        StatusCode::NOT_FOUND,
        "client certificates are not enabled ([client_certs] enabled = true)",
    )
}
