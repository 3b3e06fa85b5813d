//! Signed identity assertions: the JWTs Pomerium (`X-Pomerium-Jwt-Assertion`),
//! Cloudflare Access (`Cf-Access-Jwt-Assertion`), authentik's proxy outpost
//! (`X-authentik-jwt`) and OIDC-style issuers put on every request they
//! forward, verified against the issuer's JWK Set.
//!
//! A header dialect ([`crate::dialect`]) trusts whatever a trusted peer
//! says; an assertion carries its own proof, so it can be checked even when
//! the network path cannot. The checks, in the order [`verify`] makes them:
//!
//! 1. **Shape** (RFC 7515 §7.1): the compact serialisation, three base64url
//!    segments without padding (RFC 7515 §2), at most
//!    [`Expectations::max_token_bytes`]. Anything else, JWE (five segments)
//!    included, is [`JwtError::Malformed`].
//! 2. **Header** (RFC 7515 §4): a JSON object with unique member names
//!    (§4 allows refusing duplicates; we do, as everywhere: ambiguity is an
//!    error). `alg` must be one of [`Algorithm`]: `none` and the HMAC
//!    algorithms are never supported, so the classic confusion of
//!    verifying `HS256` with an RSA public key as the secret cannot happen
//!    (RFC 8725 §2.1, §3.1). The operator's allow-list comes next
//!    ([`Expectations::algorithms`]). A `crit` header is refused (RFC 7515
//!    §4.1.11: we understand no extension, so none can be critical). `jku`,
//!    `x5u`, `jwk` and `x5c` are ignored, never fetched nor trusted: keys
//!    come from the operator's JWKS only (RFC 8725 §3.10). `typ`, when
//!    present, must say JWT (see [`JwtError::WrongType`], RFC 8725 §3.11);
//!    `cty: JWT` (a nested JWT, RFC 7519 §5.2) is refused.
//! 3. **Key selection**: the `kid` names the key (RFC 7515 §4.1.4);
//!    without one, the only key that fits the algorithm. The key's type and
//!    curve must fit the algorithm and its JWK `alg`, if any, must be that
//!    algorithm (RFC 8725 §3.1). An unknown `kid` is
//!    [`JwtError::UnknownKey`], so the caller can refetch the JWKS (keys
//!    rotate), with a rate limit of its own, and verify again.
//! 4. **Signature** over the ASCII `header.payload` (RFC 7515 §5.2), by
//!    aws-lc-rs, before a byte of the payload is decoded: unauthenticated
//!    claims are never parsed (RFC 8725 §3.4).
//! 5. **Claims** (RFC 7519 §4.1), again a JSON object with unique names
//!    (§4): `iss` exactly the expected issuer (RFC 8725 §3.8), `aud`
//!    containing an expected audience (§3.9), `exp` present and not past,
//!    `nbf` and `iat` not in the future (each with the operator's leeway),
//!    `sub` a non-empty string.
//!
//! [`identity_from_claims`] then maps verified claims to an [`Identity`](crate::identity::Identity)
//! with the same value rules as identity headers ([`crate::decode`]).
//!
//! ## Algorithms
//!
//! RS256/384/512 (RSASSA-PKCS1-v1_5) and PS256/384/512 (RSASSA-PSS) with
//! 2048- to 8192-bit keys (RFC 7518 §3.3, §3.5), ES256 and ES384 on P-256
//! and P-384 (RFC 7518 §3.4), and EdDSA with Ed25519 (RFC 8037 §3.1).
//! Pomerium signs with ES256 by default, Cloudflare Access with RS256,
//! authentik with RS256 or ES256 depending on its signing certificate (and
//! with HS256 when none is selected: vestibule refuses that, choose a
//! certificate).
//!
//! Steps 1 to 4 are JOSE and live in the `vestibule-jose` crate
//! ([`vestibule_jose::Compact`]); this module keeps the trust decisions:
//! the operator's [`Expectations`], the claims and the identity mapping.

mod claims;
mod error;
mod header;
mod mapping;
mod presets;
#[cfg(test)]
mod tests;

pub use claims::{Claims, Expectations, verify};
pub(crate) use claims::{audiences_of, check_claims, issuer_is, numeric_date};
pub use error::JwtError;
pub use header::{AssertionHeaderError, assertion_in};
pub use mapping::{ClaimMapping, identity_from_claims};
pub use vestibule_jose::{Algorithm, Jwks, JwksError, SkippedKey};

/// Test signers (`TestSigner`): only under `cfg(test)` or the `testing`
/// feature, never in a release build.
#[cfg(any(test, feature = "testing"))]
pub use vestibule_jose::testing;
