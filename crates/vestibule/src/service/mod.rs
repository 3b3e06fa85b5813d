//! Running as a service: liveness and readiness ([`health`]), telling
//! systemd the gateway is ready ([`notify`]), and what `SIGHUP` does
//! ([`reload`]).

pub mod health;
pub mod notify;
pub mod reload;
