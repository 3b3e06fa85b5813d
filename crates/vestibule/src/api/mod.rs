//! vestibule's JSON endpoints for clients that are not browsers (no page
//! session, JSON answers). The pages are in [`crate::web`].
//!
//! - [`pairing`]: `/.vestibule/pair` and `/.vestibule/pair/poll`, where a
//!   device redeems a pairing code and collects its credential.

pub mod pairing;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use crate::state::AppState;

/// The JSON routes, with the same security headers as the pages
/// (`no-store` above all: the answers carry secrets).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.vestibule/pair", post(pairing::pair_claim))
        .route("/.vestibule/pair/poll", post(pairing::pair_poll))
        .layer(axum::middleware::from_fn(
            crate::web::security_headers::layer,
        ))
}
