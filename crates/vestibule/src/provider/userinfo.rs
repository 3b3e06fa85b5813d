//! The UserInfo endpoint (OIDC Core §5.3): `GET` or `POST` with an access
//! token as `Authorization: Bearer` (RFC 6750 §2.1) or, with `POST`, in
//! the form body (§2.2; MinIO POSTs). The answer is `sub` and the claims
//! the token's scopes release, the same claims the ID token carries.
//!
//! The token is looked up by its SHA-256 whether opaque or a JWT (both are
//! stored so), so a revoked or replay-revoked token stops working at once.
//! Refusals are 401 with `WWW-Authenticate: Bearer error="invalid_token"`
//! (RFC 6750 §3.1), and the account is re-checked on every call.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};
use vestibule_core::oidc_token::{bearer_token, parse_form, parse_scope, scoped_claims};

use super::id_token::{subject, user_claims};
use super::{account_allowed, find_client, no_store_json, provider, sha256};
use crate::accounts::now_ms;
use crate::state::AppState;

/// A refusal with its `WWW-Authenticate` challenge (RFC 6750 §3).
fn challenge(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let mut body = Map::new();
    let mut value = "Bearer realm=\"vestibule\"".to_owned();
    if let Some(e) = error {
        value.push_str(&format!(", error=\"{e}\""));
        body.insert("error".into(), e.into());
        body.insert("error_description".into(), description.into());
    }
    let mut resp = no_store_json(status, &Value::Object(body));
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn invalid_token(description: &str) -> Response {
    challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"), description)
}

fn invalid_request(description: &str) -> Response {
    challenge(
        StatusCode::BAD_REQUEST,
        Some("invalid_request"),
        description,
    )
}

/// `GET` and `POST /.vestibule/oidc/userinfo`.
pub async fn userinfo(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(p) = provider(&state) else {
        return super::not_configured();
    };
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let in_header = authorization.next();
    if authorization.next().is_some() {
        return invalid_request("more than one Authorization header");
    }
    let from_header = match in_header {
        Some(v) => match bearer_token(v.as_bytes()) {
            Some(t) => Some(t.to_owned()),
            None => return invalid_token("the Authorization header is not a Bearer token"),
        },
        None => None,
    };
    let form_body = method == Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
    let from_body = if form_body {
        match parse_form(&body) {
            Ok(f) => f.get("access_token").map(str::to_owned),
            Err(_) => return invalid_request("malformed form body"),
        }
    } else {
        None
    };
    // RFC 6750 §2: "Clients MUST NOT use more than one method".
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => return invalid_request("the token came in the header and the body"),
        (Some(t), None) | (None, Some(t)) => t,
        // RFC 6750 §3.1: no error code when no authentication came.
        (None, None) => return challenge(StatusCode::UNAUTHORIZED, None, ""),
    };
    let record = match p.store.access_token(&sha256(&token)).await {
        Ok(Some(r)) if now_ms() < r.expires_at => r,
        Ok(_) => return invalid_token("the access token is unknown, expired or revoked"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo: store failed");
            return no_store_json(StatusCode::SERVICE_UNAVAILABLE, &Value::Object(Map::new()));
        }
    };
    let scopes = parse_scope(&record.scopes).unwrap_or_default();
    let Some(account_id) = record.account_id else {
        return challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "a client_credentials token has no user",
        );
    };
    if !scopes.contains("openid") {
        return challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "userinfo needs the openid scope",
        );
    }
    let client = match find_client(&p, &record.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return invalid_token("the client of this token is gone"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo: store failed");
            return no_store_json(StatusCode::SERVICE_UNAVAILABLE, &Value::Object(Map::new()));
        }
    };
    let account = match p.store.account(account_id).await {
        Ok(Some(a)) if account_allowed(&a, &client) => a,
        Ok(_) => return invalid_token("the account may not use this client"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo: store failed");
            return no_store_json(StatusCode::SERVICE_UNAVAILABLE, &Value::Object(Map::new()));
        }
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), subject(account.id).into());
    claims.extend(scoped_claims(&scopes, &user_claims(&account)));
    no_store_json(StatusCode::OK, &Value::Object(claims))
}
