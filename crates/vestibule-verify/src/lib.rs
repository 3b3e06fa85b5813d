//! Verifies the signed identity assertions that the
//! vestibule identity
//! gateway sends to apps in `X-Vestibule-Assertion`.
//!
//! An assertion is a compact JWS (RFC 7515) whose header says
//! `typ: vestibule-id+jwt` and whose claims are `iss`, `aud`, `sub`,
//! `preferred_username`, `email`, `name`, `groups`, `iat`, `nbf`, `exp`,
//! `auth_method` and, for a device credential, `device_id`. The gateway
//! publishes its public keys at `/.vestibule/jwks.json`.
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), vestibule_verify::Error> {
//! use vestibule_verify::{Jwks, Policy, Verifier};
//!
//! // Keys pinned from a file (or `Verifier::fetch(url, policy)` with the
//! // `fetch` feature).
//! let keys = Jwks::parse(&std::fs::read("jwks.json").unwrap())?;
//! let policy = Policy::new("https://sso.example.com", "app.example.com");
//! let verifier = Verifier::pinned(keys, policy);
//! let who = verifier.verify(token).await?;
//! println!("hello {}", who.username);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `fetch`: `Verifier::fetch` reads the JWK Set from the gateway over
//!   HTTP or HTTPS (rustls with aws-lc-rs, Mozilla's roots), caches it and
//!   fetches it again when a token names a key it does not have.
//! - `tower`: `AssertionLayer`, which refuses requests without a valid
//!   assertion with `401` and puts the [`Identity`] into the request's
//!   extensions.
//!
//! ## Invariants
//!
//! - **The signature is checked before a claim is read** (RFC 8725 §3.4):
//!   the payload is not even base64-decoded until the signature verified.
//! - **The algorithm is never taken from the token alone**: it must be in
//!   the [`Policy`]'s allow-list *and* fit the key the `kid` names (its
//!   `kty`, its `crv`, and its `alg` when the JWK has one). `none` and the
//!   HMAC algorithms cannot be expressed ([`Algorithm`] has no such
//!   variant), so a public key can never serve as an HMAC secret
//!   (RFC 8725 §2.1, §3.1).
//! - **Keys come from the caller only**: `jku`, `x5u`, `jwk` and `x5c` in a
//!   header are ignored (RFC 8725 §3.10); `crit` is refused (RFC 7515
//!   §4.1.11: no extension is understood). A JWK Set holding a private key
//!   member, or two keys under one `kid`, is refused whole.
//! - **Explicit typing** (RFC 8725 §3.11): `typ` must be
//!   `vestibule-id+jwt`, so no other JWT signed by the same key passes.
//! - **`iss` and `aud` must match exactly; `exp` and `nbf` are checked**
//!   with a small leeway (30 s by default) for clocks that drift.
//! - **Fail closed**: a JWK Set that cannot be fetched verifies nothing;
//!   a claim of the wrong type refuses the token.
//! - **Errors never echo the token**: [`Error`]'s `Display` is a fixed
//!   sentence per variant, safe to log.
//!
//! ## Non-goals
//!
//! - Other JWT profiles (ID tokens, access tokens), JWE, the JWS JSON
//!   serialisation, algorithms the gateway does not sign with (ES384, PS*).
//! - Authorisation: the [`Identity`] says who; what they may do is the
//!   app's business.
//! - A pluggable crypto backend: aws-lc-rs, chosen at compile time.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod claims;
mod error;
#[cfg(feature = "fetch")]
mod fetch;
mod jwk;
mod jws;
#[cfg(feature = "tower")]
mod layer;
mod verifier;

pub use claims::{AuthMethod, Identity, Policy};
pub use error::Error;
pub use jwk::Jwks;
pub use jws::Algorithm;
#[cfg(feature = "tower")]
pub use layer::{AssertionLayer, AssertionService};
pub use verifier::Verifier;

/// The JWS `typ` of a vestibule assertion (RFC 8725 §3.11).
pub const ASSERTION_TYP: &str = "vestibule-id+jwt";

/// The header the gateway sends the assertion in, unless configured
/// otherwise.
pub const DEFAULT_HEADER: &str = "x-vestibule-assertion";

/// Base64url without padding, RFC 7515 §2: `=` and non-zero trailing bits
/// are refused, so every segment has exactly one spelling.
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// The README's example, compiled as a doctest so that it stays true.
#[cfg(all(doctest, feature = "fetch", feature = "tower"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
