//! May they: route lookup and the route's policy. The rules themselves are
//! in `vestibule_core::{route, policy}`; this folder only applies them to
//! the running configuration.

pub mod authorize;
