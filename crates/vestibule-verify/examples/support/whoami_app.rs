//! The example app's router, in a module of its own so that vestibule's
//! integration test (`crates/vestibule/tests/it/verify_crate.rs`) serves
//! exactly this code behind a real gateway (it includes this file with
//! `#[path]`, which costs no extra build).

use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use vestibule_verify::{AssertionLayer, AuthMethod, Identity, Verifier};

/// An app that greets the user the gateway vouches for. Every route sits
/// behind [`AssertionLayer`]: without a valid assertion, `401`.
pub(crate) fn app(verifier: Verifier) -> Router {
    Router::new()
        .route("/", get(whoami))
        .route("/{*rest}", get(whoami))
        .layer(AssertionLayer::new(verifier))
}

/// `GET /…`: a greeting and the verified identity, as JSON.
async fn whoami(Extension(who): Extension<Identity>) -> Json<Value> {
    let method = match &who.auth_method {
        AuthMethod::Header => "header",
        AuthMethod::Jwt => "jwt",
        AuthMethod::Session => "session",
        AuthMethod::Device => "device",
        AuthMethod::OAuth => "oauth",
        AuthMethod::Other(other) => other.as_str(),
        // A method a later version of vestibule-verify adds.
        _ => "unknown",
    };
    Json(json!({
        "greeting": format!("Hello, {}!", who.name.as_deref().unwrap_or(&who.username)),
        "subject": who.subject,
        "username": who.username,
        "email": who.email,
        "name": who.name,
        "groups": who.groups,
        "auth_method": method,
        "device_id": who.device_id,
    }))
}
