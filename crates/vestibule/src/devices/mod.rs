//! Device credentials at the gate: lookup, caching, rate limits and the
//! judgement of a presented credential ([`service`]).

pub mod reveal;
mod service;

pub use service::*;
