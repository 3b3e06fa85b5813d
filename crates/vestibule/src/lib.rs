//! # vestibule
//!
//! An identity gateway between an SSO front (Authelia, authentik, Keycloak
//! behind Caddy, nginx, Traefik or Apache) and self-hosted apps.
//!
//! Modules follow the path a request takes:
//!
//! 1. [`listen`]: accept the connection, record the socket peer.
//! 2. [`client_identity`]: is the peer trusted; who is the client behind it.
//! 3. [`authenticate`]: read the identity a trusted front sent; then
//!    [`accounts`]: find (or provision) its account and check its status.
//!    Without one, [`devices`]: a per-device credential acts as its owner.
//! 4. [`authorize`]: match the route, apply its policy.
//! 5. [`forward`]: strip every identity spelling, inject the app's profile,
//!    stream to the upstream.
//!
//! [`pipeline`] runs steps 2–4 and is the only place a request is decided;
//! [`forward`] (in-path) and [`verify`] (forward-auth) both call it.
//!
//! ## Invariants
//!
//! - Trust decisions are made in `vestibule_core` on the socket peer only.
//! - No identity header reaches an app unless vestibule put it there.
//! - The server refuses to start with a configuration that has errors
//!   (`vestibule check` lists them).
//!
//! ## Non-goals
//!
//! - Being an identity provider: vestibule trusts a front that already
//!   authenticated the person.
//! - Load balancing and caching: one route, one upstream.

pub mod accounts;
pub mod admin_cli;
pub mod app;
pub mod authenticate;
pub mod authorize;
pub mod bench_seed;
pub mod cli;
pub mod client_identity;
pub mod config;
pub mod demo;
pub mod devices;
pub mod forward;
pub mod housekeeping;
pub mod jwks;
pub mod listen;
pub mod metrics;
pub mod pipeline;
pub mod ratelimited_log;
pub mod responses;
pub mod state;
pub mod verify;
pub mod web;
pub mod whoami;
