//! The HTTP side of a request: accepting it, deciding it once, and either
//! forwarding it to the app (in-path) or answering the front (forward-auth).
//!
//! - [`framing`]: the request head's host, target form and body framing,
//!   checked before anything else (400 and a closed connection).
//! - [`listen`]: accept connections (TCP, TLS, Unix), record the socket peer.
//! - [`decide`]: the one decision for in-path and forward-auth alike.
//! - [`forward`]: in-path: strip identity spellings, inject the profile,
//!   stream to the upstream.
//! - [`forward_auth`]: the verify endpoint a front's `auth_request` /
//!   `forward_auth` calls.
//! - [`upstream`]: the pooled HTTP/1.1 connections to the apps.
//! - [`refusal`]: what a refusal is, how it is answered, and the one
//!   place it is logged.
//! - [`responses`]: plain, redirect and page answers shared by both.
//! - [`workers`]: the proxy worker threads, one current-thread runtime
//!   and one `SO_REUSEPORT` socket per listener each.

pub mod decide;
pub mod forward;
pub mod forward_auth;
pub mod framing;
pub mod listen;
pub mod refusal;
pub mod responses;
pub mod upstream;
pub mod workers;
