//! The session cookie, made in one place, and the list of vestibule's own
//! cookies, stripped before forwarding ([`OWN_NAMES`]).
//!
//! - Over HTTPS (a TLS listener, or `X-Forwarded-Proto: https` from a
//!   trusted proxy) the name is `__Host-vestibule`: browsers then insist on
//!   `Secure`, `Path=/` and no `Domain`, so no sibling subdomain can set or
//!   read it (RFC 6265bis §4.1.3.2).
//! - Over plain HTTP (loopback demos, tests) it is `vestibule`, and
//!   `vestibule check` warns when no TLS is configured.
//! - Always `HttpOnly` (no script reads it) and `SameSite=Lax` (not sent on
//!   cross-site POSTs, which backs up the CSRF token).

use http::HeaderValue;

/// Cookie name over HTTPS.
pub const SECURE_NAME: &str = "__Host-vestibule";
/// Cookie name over plain HTTP.
pub const PLAIN_NAME: &str = "vestibule";

/// The flash message cookie (`web/flash.rs`): a fixed code, `Path=/.vestibule/`.
pub const FLASH_NAME: &str = "vestibule_flash";
/// A phone browser's pairing claim (`web/devices.rs`), `Path=/.vestibule/pair`:
/// a secret until the credential is collected.
pub const PAIRING_CLAIM_NAME: &str = "vestibule_pair";

/// Every cookie vestibule sets. They are removed from `Cookie` before a
/// request is forwarded in-path, so an application never holds a session
/// of vestibule's (add any new cookie here). The flash and pairing cookies
/// are scoped to `/.vestibule/` paths already; a browser that sends them
/// elsewhere anyway still does not reach an app with them.
pub const OWN_NAMES: &[&str] = &[
    SECURE_NAME,
    PLAIN_NAME,
    FLASH_NAME,
    PAIRING_CLAIM_NAME,
    super::oidc_login::LOGIN_COOKIE_SECURE,
    super::oidc_login::LOGIN_COOKIE_PLAIN,
];

/// The cookie name for a request.
pub fn name(https: bool) -> &'static str {
    if https { SECURE_NAME } else { PLAIN_NAME }
}

/// `Set-Cookie` for a new session, living at most `max_age_secs`.
pub fn set(https: bool, token: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
        name(https)
    ))
    .ok()
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear(https: bool) -> HeaderValue {
    if https {
        HeaderValue::from_static(
            "__Host-vestibule=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static("vestibule=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let c = set(true, "vss_x", 60).unwrap();
        let c = c.to_str().unwrap();
        assert!(c.starts_with("__Host-vestibule=vss_x; Path=/; HttpOnly; SameSite=Lax"));
        assert!(c.ends_with("; Secure"));
        assert!(!c.contains("Domain"));
        let c = set(false, "vss_x", 60).unwrap();
        assert!(c.to_str().unwrap().starts_with("vestibule=vss_x;"));
        assert!(!c.to_str().unwrap().contains("Secure"));
    }
}
