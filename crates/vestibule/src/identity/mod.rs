//! Who is asking: the socket peer and the client behind it
//! ([`client_identity`]), the identity a trusted source vouches for
//! ([`authenticate`]) and its per-request memo ([`cache`]), and the key sets that assertions are verified with
//! ([`jwks`]), and the upstream OpenID provider of `[source.oidc]`
//! ([`oidc`]).

pub mod authenticate;
pub mod cache;
pub mod client_identity;
pub mod jwks;
pub mod oidc;
pub mod oidc_recheck;
