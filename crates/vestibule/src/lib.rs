//! # vestibule
//!
//! An identity gateway between an SSO front (Authelia, authentik, Keycloak
//! behind Caddy, nginx, Traefik or Apache) and self-hosted apps.
//!
//! Folders follow the path a request takes:
//!
//! 1. [`http::listen`]: accept the connection, record the socket peer.
//! 2. [`identity::client_identity`]: is the peer trusted; who is the client
//!    behind it.
//! 3. [`identity::authenticate`]: read the identity a trusted front sent;
//!    then [`accounts`]: find (or provision) its account and check its
//!    status. Without one, [`devices`]: a per-device credential acts as its
//!    owner.
//! 4. [`policy::authorize`]: match the route, apply its policy.
//! 5. [`http::forward`]: strip every identity spelling, inject the app's
//!    profile, stream to the upstream.
//!
//! [`http::decide`] runs steps 2–4 and is the only place a request is
//! decided; [`http::forward`] (in-path) and [`http::forward_auth`] both call
//! it. vestibule's own pages are in [`web`], its JSON endpoints in [`api`],
//! the operators' CLI in [`admin`], systemd readiness, probes and reloads
//! in [`service`], and the demo, whoami, bench seeder and packaging assets
//! in [`tools`]. The map
//! with a diagram is `docs/architecture.md`.
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
pub mod admin;
pub mod api;
pub mod app;
pub mod certs;
pub mod cli;
pub mod config;
pub mod devices;
pub mod http;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod provider;
pub mod ratelimited_log;
pub mod service;
pub mod state;
pub mod tools;
pub mod urls;
pub mod web;
