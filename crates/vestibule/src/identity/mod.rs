//! Who is asking: the socket peer and the client behind it
//! ([`client_identity`]), the identity a trusted source vouches for
//! ([`authenticate`]), and the key sets that assertions are verified with
//! ([`jwks`]).

pub mod authenticate;
pub mod client_identity;
pub mod jwks;
