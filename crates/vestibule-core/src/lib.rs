//! # vestibule-core
//!
//! Every trust decision vestibule makes, as pure functions over plain data.
//! Nothing here opens a socket, reads a file or looks at a clock: callers
//! pass in the peer address, the headers and the current time. That keeps
//! the security logic small enough to read in one sitting, and lets every
//! parser of untrusted input be property-tested and fuzzed (`fuzz/`).
//!
//! ## Invariants
//!
//! - **Trust comes from the TCP peer only.** [`net::Peer`] is the socket's
//!   address (IPv4-mapped IPv6 normalised) or a Unix socket the operator
//!   declared trusted. No header, `X-Forwarded-For` included, ever makes a
//!   peer trusted ([`forwarded`] only says who the client *probably* is, for
//!   logs and rate limits).
//! - **Header names are compared normalised**: ASCII-lowercased, `_` read as
//!   `-` ([`headers::normalize_name`]). `Remote_User`, `REMOTE-USER` and
//!   `remote-user` are one header.
//! - **Ambiguity is an error.** A trusted peer that sends an identity header
//!   twice, or under two spellings, gets [`dialect::IdentityError::Ambiguous`]
//!   (HTTP 400), never "first one wins".
//! - **Identity values are decoded once and validated**: valid UTF-8, no
//!   control characters, bounded length ([`decode`]). Nothing is truncated.
//! - **Every spelling of every identity header any dialect or profile knows
//!   is stripped** before a request leaves vestibule ([`headers::IdentityHeaders`]).
//! - **Route matching is done on every reasonable reading of the path**
//!   ([`path`]); if two readings pick different routes the request is refused.
//! - **Device credentials (`vst_…`) are ours only by their prefix or by
//!   configuration** ([`credential`]): the application's own `Authorization`
//!   passes untouched, while ours must be well-formed, unique and stripped.
//! - **Return addresses go only to configured origins** ([`redirect`]): a
//!   path on the request's own origin, or an absolute `http(s)` URL whose
//!   origin is configured exactly. Anything a browser might read
//!   differently (`//`, `\`, tabs, userinfo, odd hosts) is refused, and the
//!   `Location` is rebuilt from the checked parts.
//! - **Identity assertions (JWTs) are verified before they are read**
//!   ([`jwt`]): the signature against the operator's JWK Set, with an
//!   allowed algorithm (never `none` or HMAC) and a key that fits it, before
//!   any claim is parsed; then `iss`, `aud`, `exp` (required), `nbf` and
//!   `iat`. Keys named in the token (`jku`, `x5u`, `jwk`, `x5c`) are never
//!   used, and claims become identity values under the header rules.
//!
//! ## Non-goals
//!
//! - I/O of any kind, async, logging, configuration files.
//! - Choosing defaults for operators: the binary's config layer does that and
//!   documents each one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_token;
pub mod backchannel_delivery;
pub mod client_cert;
pub mod credential;
pub mod decode;
pub mod device_grant;
pub mod dialect;
pub mod forwarded;
pub mod framing;
/// Fuzz entry points: only for tests and the `fuzzing` feature (the fuzz
/// crate, the corpus replay), never in a release build.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
pub mod identity;
pub mod jwt;
pub mod ldap;
pub mod net;
pub mod oidc;
pub mod oidc_link;
pub mod oidc_logout;
pub mod oidc_provider;
pub mod oidc_token;
pub mod path;
pub mod policy;
pub mod profile;
pub mod redirect;
pub mod route;
pub mod secret;
pub mod upgrade;
pub mod user_agent;
