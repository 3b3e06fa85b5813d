//! The one integration-test binary: the tests boot the real `vestibule`
//! executable (or the library on a real socket) on loopback, with a real
//! upstream; `router` drives the routers in-process with `oneshot`. One
//! binary keeps link time down.

#![allow(unreachable_pub, dead_code)]

mod access_tokens_pg;
mod accounts;
mod admin_cli;
mod advisories;
mod assertions;
mod assertions_out;
mod careless_app;
mod check_cli;
mod client_certs;
mod deploy;
mod devices;
mod docs;
mod durability;
mod framing;
mod frontends;
mod identity;
mod key_rotation;
mod ldap;
mod limits;
mod oidc_client_auth;
mod oidc_link;
mod oidc_login;
mod oidc_login_pg;
mod oidc_recheck;
mod one_way_in;
mod pages;
mod postgres;
mod provider_instances;
mod proxy;
mod redirects;
mod router;
mod service;
mod signing_keys;
mod support;
mod troubleshooting;
mod verify;
mod verify_crate;
// vestibule-verify's example app, served as it is by `verify_crate`.
#[path = "../../../vestibule-verify/examples/support/whoami_app.rs"]
mod whoami_app;
mod workers;
