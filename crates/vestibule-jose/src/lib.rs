//! JOSE for vestibule: JWS (RFC 7515) compact signing and verification,
//! JWK and JWK Set (RFC 7517) parsing and publishing, RFC 7638 thumbprint
//! key ids, key generation and a rotating [`KeySet`].
//!
//! This crate knows signatures and keys, not trust: which issuer, which
//! audience, which claims and which clock skew are acceptable is decided by
//! the caller (vestibule-core's `jwt` module for front assertions). What it
//! hands back after [`Compact::verify`] is a header and a payload whose
//! signature checked out under a key the caller supplied.
//!
//! ## Invariants
//!
//! - **The signature is checked before any byte of the payload is decoded**
//!   (RFC 8725 §3.4): [`Compact::parse`] reads the header only; the payload
//!   comes out of [`Verified`].
//! - **`none` and the HMAC algorithms cannot be expressed**: [`Algorithm`]
//!   has no such variant, so an RSA public key can never be used as an HMAC
//!   secret (RFC 8725 §2.1, §3.1).
//! - **The algorithm is never taken from the token alone**: it must be in
//!   the caller's allow-list ([`Policy::algorithms`]) and fit the key (its
//!   type and curve, and the key's own `alg` when it has one). Keys this
//!   crate makes ([`SigningKey`]) carry exactly one algorithm.
//! - **Keys come from the caller only**: `jku`, `x5u`, `jwk` and `x5c` in a
//!   header are ignored (RFC 8725 §3.10); `crit` is refused (RFC 7515
//!   §4.1.11, no extension is understood) and so are nested JWTs (`cty:
//!   JWT`, RFC 7519 §5.2).
//! - **JSON is unambiguous**: duplicate member names in a header or payload
//!   object are refused (RFC 7515 §4, RFC 7519 §4 allow it).
//! - **Nothing private is published**: [`PublicJwk`] has no private member
//!   to serialise, and [`Jwks::parse`] refuses a set holding one.
//! - **Pure**: no I/O, no clock. Whatever depends on time takes `now`
//!   (Unix seconds) from the caller.
//!
//! ## Non-goals
//!
//! - JWE, JWS JSON serialisation, unencoded payloads (RFC 7797), detached
//!   content.
//! - Fetching JWK Sets, caching, storage of keys (the binary does that; it
//!   stores private keys as PKCS#8 DER, encrypted at rest).
//! - Claims (`iss`, `aud`, `exp`, ...): a JWT profile's business.
//! - A pluggable crypto backend: aws-lc-rs, chosen at compile time.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod algorithm;
mod json;
mod jwk;
mod jws;
mod keyset;
mod sign;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use algorithm::Algorithm;
pub use jwk::{Jwks, JwksError, PublicJwk, PublicJwks, SkippedKey, thumbprint};
pub use jws::{Compact, JwsError, Policy, Verified};
pub use keyset::KeySet;
pub use sign::{KeyError, SigningKey};

/// Base64url without padding, as RFC 7515 §2 defines it for every JWS
/// segment: `=` is refused, and so are non-zero trailing bits, so each
/// segment has exactly one spelling (base64's `URL_SAFE_NO_PAD` is exactly
/// that).
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// Parses `bytes` as one JSON object whose member names are unique (RFC
/// 8259 §4 leaves duplicates to the parser; vestibule refuses them
/// everywhere, as in JOSE headers and claims). `None` for anything else.
pub fn unique_json_object(bytes: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    json::unique_object(bytes).ok()
}
