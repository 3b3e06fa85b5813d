//! Accounts: lookup, provisioning and status ([`service`]), the admin
//! actions the CLI and the admin page share ([`admin`]), and the
//! background purge of expired rows ([`housekeeping`]).

pub mod admin;
pub mod housekeeping;
pub mod ldap;
mod service;
#[cfg(test)]
pub(crate) use service::tests::account as test_account;

pub use service::*;
