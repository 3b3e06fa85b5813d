//! The pairing endpoints a device calls (JSON, no session): the device's
//! side of "quick connect".
//!
//! A signed-in person starts a pairing on the devices page and gets a
//! short code (5 minutes, single use). The device `POST`s the code and its
//! name to `/.vestibule/pair` and gets a claim secret; the person sees the
//! device's name and confirms; the device then collects its credential
//! from `/.vestibule/pair/poll` exactly once. The device never needs the
//! SSO front, and nothing is issued without confirmation. Secrets are
//! never logged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use vestibule_core::credential::{
    device_token, is_pairing_claim_token, normalize_pairing_code, pairing_claim_token,
};
use vestibule_core::secret::hash_token;
use vestibule_store::{NewDevice, PairingPoll};

use crate::accounts::now_ms;
use crate::http::responses::wants_html;
use crate::identity::client_identity::ClientContext;
use crate::state::AppState;
use crate::web::devices::{check_name, random32};
use crate::web::extract::{Client, Fields, form_fields};

/// How often a pairing device should poll, in seconds.
const POLL_INTERVAL_SECS: u64 = 2;

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A refused device request: an OAuth-style JSON error (RFC 6749 §5.2
/// names: `error`, `error_description`), the JSON API's counterpart of the
/// pages' [`crate::web::extract::PageError`].
#[derive(Debug)]
pub enum ApiError {
    /// 400 `invalid_request`, with what is wrong.
    InvalidRequest(String),
    /// 404 `not_enabled`: devices are off on this gateway.
    NotEnabled,
    /// 429 `slow_down`, with `Retry-After`.
    TooMany(std::time::Duration),
    /// 503 `temporarily_unavailable`; the cause is logged.
    Unavailable(vestibule_store::StoreError),
    /// Any other answer with its status, code and description.
    Other(StatusCode, &'static str, &'static str),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, description) = match &self {
            Self::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.as_str()),
            Self::NotEnabled => (
                StatusCode::NOT_FOUND,
                "not_enabled",
                "Device pairing is not enabled on this gateway.",
            ),
            Self::TooMany(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                "Too many failed attempts; wait before trying again.",
            ),
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable for a pairing request");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "The gateway cannot reach its database; try again in a moment.",
                )
            }
            Self::Other(status, error, description) => (*status, *error, *description),
        };
        let mut r = json(
            status,
            serde_json::json!({ "error": error, "error_description": description }),
        );
        if let Self::TooMany(wait) = self {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs_f64().ceil() as u64),
            );
        }
        r
    }
}

impl ApiError {
    /// The refusal as the common page, for a browser's form.
    fn page(self) -> Response {
        let html = |status, title, message: &str, hint| {
            crate::http::responses::page(status, true, title, message, hint)
        };
        match self {
            Self::InvalidRequest(m) => html(
                StatusCode::BAD_REQUEST,
                "Check the form",
                &m,
                "Go back and correct it.",
            ),
            Self::NotEnabled => html(
                StatusCode::NOT_FOUND,
                "Not available",
                "Device pairing is not enabled on this gateway.",
                "",
            ),
            Self::TooMany(wait) => {
                let mut r = html(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    "Too many wrong pairing codes came from this address.",
                    "Wait a minute, then try again with the code shown in your browser.",
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs_f64().ceil() as u64),
                );
                r
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable for a pairing request");
                html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again shortly",
                    "vestibule cannot reach its database right now.",
                    "",
                )
            }
            Self::Other(status, _, description) => html(
                status,
                "Pairing not possible",
                description,
                "Start a new pairing in your browser, then scan its QR code again.",
            ),
        }
    }
}

impl From<vestibule_store::StoreError> for ApiError {
    fn from(e: vestibule_store::StoreError) -> Self {
        Self::Unavailable(e)
    }
}

/// A device's request: the device store and the client's context (unless
/// pairing is off or the address is blocked, checked before the body is
/// read), and its fields from JSON or a form (`None` when unreadable).
pub struct DeviceRequest {
    devices: Arc<crate::devices::Devices>,
    ctx: ClientContext,
    fields: Option<Fields>,
    /// A browser's form (the page the pairing QR code opens): answered
    /// with pages, not JSON.
    browser: Option<Browser>,
}

/// What answering a browser needs.
struct Browser {
    https: bool,
}

impl FromRequest<Arc<AppState>> for DeviceRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(Client { ctx, .. }) = Client::from_request_parts(&mut parts, state).await;
        let Some(devices) = state.devices().cloned() else {
            return Err(ApiError::NotEnabled.into_response());
        };
        if let Some(wait) = devices.failures.blocked_for(ctx.client_ip, None) {
            return Err(ApiError::TooMany(wait).into_response());
        }
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let browser = wants_html(&headers).then(|| Browser {
            https: crate::web::session::https(&ctx, &headers),
        });
        Ok(Self {
            devices,
            ctx,
            fields: device_fields(&headers, &body),
            browser,
        })
    }
}

/// The fields of a device's request, from JSON or a form.
fn device_fields(headers: &HeaderMap, body: &[u8]) -> Option<Fields> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        Some(Fields(
            v.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
        ))
    } else {
        Some(Fields(form_fields(body)))
    }
}

/// `POST /.vestibule/pair`: a device redeems a pairing code.
///
/// Takes `code` and `name` (JSON or form). Answers 202 with a `claim`
/// secret to poll with; 404 for an unknown, used or expired code; 429
/// after too many failures from one address.
///
/// A browser's form (from the page the pairing QR code opens) gets a 303
/// to `/.vestibule/pair/wait` instead, with the claim in a cookie, and
/// refusals as pages.
pub async fn pair_claim(req: DeviceRequest) -> Response {
    let is_browser = req.browser.is_some();
    match claim(req).await {
        Ok(r) => r,
        Err(e) if is_browser => e.page(),
        Err(e) => e.into_response(),
    }
}

async fn claim(req: DeviceRequest) -> Result<Response, ApiError> {
    let DeviceRequest {
        devices,
        ctx,
        fields,
        browser,
    } = req;
    let Some(fields) = fields else {
        return Err(ApiError::InvalidRequest(
            "Send JSON {\"code\": …, \"name\": …} or a form.".into(),
        ));
    };
    let name = check_name(fields.get("name").unwrap_or("")).map_err(ApiError::InvalidRequest)?;
    let Some(code) = normalize_pairing_code(fields.get("code").unwrap_or("")) else {
        return Err(refuse_code(&devices, &ctx));
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
        .await?
    {
        Some(p) if let Some(b) = browser => {
            tracing::info!(pairing = p.id, device = %name, "a browser redeemed a pairing code");
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_static("/.vestibule/pair/wait"),
            );
            r.headers_mut().insert(
                header::SET_COOKIE,
                crate::web::devices::claim_cookie(
                    Some(claim.expose()),
                    b.https,
                    (p.expires_at - now) / 1000,
                ),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Some(p) => {
            tracing::info!(pairing = p.id, device = %name, "a device redeemed a pairing code");
            Ok(json(
                StatusCode::ACCEPTED,
                serde_json::json!({
                    "status": "pending",
                    "claim": claim.expose(),
                    "poll": "/.vestibule/pair/poll",
                    "interval": POLL_INTERVAL_SECS,
                    "expires_in": (p.expires_at - now).max(0) / 1000,
                    "message": "Confirm this device on the pairing page in your browser.",
                }),
            ))
        }
        None => Err(refuse_code(&devices, &ctx)),
    }
}

/// A failed attempt counts towards the address's limit: `refusal`, or 429
/// once the limit is reached.
fn failed(devices: &crate::devices::Devices, ctx: &ClientContext, refusal: ApiError) -> ApiError {
    match devices.failures.record_failure(ctx.client_ip, None) {
        Some(wait) => ApiError::TooMany(wait),
        None => refusal,
    }
}

fn refuse_code(devices: &crate::devices::Devices, ctx: &ClientContext) -> ApiError {
    failed(
        devices,
        ctx,
        ApiError::Other(
            StatusCode::NOT_FOUND,
            "invalid_code",
            "This pairing code is unknown, already used or expired. Start a new pairing in your browser.",
        ),
    )
}

/// `POST /.vestibule/pair/poll`: the device collects its credential.
///
/// Takes `claim`. 202 while the person has not answered; 200 with the
/// credential once confirmed (exactly once); 403 if refused; 410 when
/// expired or already collected.
pub async fn pair_poll(
    State(state): State<Arc<AppState>>,
    req: DeviceRequest,
) -> Result<Response, ApiError> {
    let DeviceRequest {
        devices,
        ctx,
        fields,
        ..
    } = req;
    let claim = fields
        .and_then(|f| f.get("claim").map(str::to_owned))
        .unwrap_or_default();
    if !is_pairing_claim_token(&claim) {
        return Err(ApiError::InvalidRequest(
            "Send the `claim` you got from /.vestibule/pair.".into(),
        ));
    }
    match redeem(&devices, &claim).await? {
        (PairingPoll::Pending, _) => Ok(json(
            StatusCode::ACCEPTED,
            serde_json::json!({ "status": "pending", "interval": POLL_INTERVAL_SECS }),
        )),
        (PairingPoll::Refused, _) => Err(ApiError::Other(
            StatusCode::FORBIDDEN,
            "access_denied",
            "The pairing was refused in the browser.",
        )),
        (PairingPoll::Expired, _) => Err(failed(
            &devices,
            &ctx,
            ApiError::Other(
                StatusCode::GONE,
                "expired_token",
                "This pairing expired or was already collected. Start a new one.",
            ),
        )),
        (PairingPoll::Issued(device), secret) => {
            let owner = match devices.store().account(device.account_id).await {
                Ok(Some(a)) => a.username,
                _ => String::new(),
            };
            let header_names: Vec<String> = state
                .routes()
                .list
                .iter()
                .filter(|r| device.routes.contains(&r.name))
                .filter_map(|r| r.carriers.header.as_ref().map(|h| h.as_str().to_owned()))
                .collect();
            tracing::info!(
                device = device.id,
                "a paired device collected its credential"
            );
            Ok(json(
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
            ))
        }
    }
}

/// Redeems the pairing `claim` proves: the new device and its secret once
/// the person confirmed, exactly once (the poll above, and the waiting
/// page of a browser that opened the pairing QR code).
pub(crate) async fn redeem(
    devices: &crate::devices::Devices,
    claim: &str,
) -> Result<(PairingPoll, vestibule_core::secret::Secret), vestibule_store::StoreError> {
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
    let poll = devices
        .store()
        .redeem_pairing(&hash_token(claim), &template, now)
        .await?;
    Ok((poll, secret))
}
