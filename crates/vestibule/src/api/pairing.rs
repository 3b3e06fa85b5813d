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

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use vestibule_core::credential::{
    device_token, is_pairing_claim_token, normalize_pairing_code, pairing_claim_token,
};
use vestibule_core::secret::hash_token;
use vestibule_store::{NewDevice, PairingPoll};

use crate::accounts::now_ms;
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

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        serde_json::json!({ "error": error, "error_description": description }),
    )
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
    ctx: ClientContext,
) -> Result<(Arc<crate::devices::Devices>, ClientContext), Response> {
    let Some(devices) = &state.devices else {
        return Err(json_error(
            StatusCode::NOT_FOUND,
            "not_enabled",
            "Device pairing is not enabled on this gateway.",
        ));
    };
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
pub async fn pair_claim(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (devices, ctx) = match device_endpoint(&state, ctx) {
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
    let name = match check_name(fields.get("name").unwrap_or("")) {
        Ok(n) => n,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &m),
    };
    let Some(code) = normalize_pairing_code(fields.get("code").unwrap_or("")) else {
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

fn refuse_code(devices: &crate::devices::Devices, ctx: &ClientContext) -> Response {
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
pub async fn pair_poll(
    State(state): State<Arc<AppState>>,
    Client { ctx, .. }: Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (devices, ctx) = match device_endpoint(&state, ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let claim = device_fields(&headers, &body)
        .and_then(|f| f.get("claim").map(str::to_owned))
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
