//! Accounts: lookup, provisioning and status ([`service`]), and the
//! background purge of expired rows ([`housekeeping`]).

pub mod housekeeping;
mod service;

pub use service::*;
