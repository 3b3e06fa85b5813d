//! What the tests share: the gateway's claims for alice, and the clock.

#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};

pub const ISSUER: &str = "https://sso.example.test";
pub const AUDIENCE: &str = "app.test";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims the gateway signs for alice (see the binary's
/// `keys::assertion`), issued at `iat`, valid for 60 s.
pub fn alice(iat: i64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "a-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "name": "Alice A",
        "groups": ["admins", "users"],
        "auth_method": "header",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 60,
    })
}
