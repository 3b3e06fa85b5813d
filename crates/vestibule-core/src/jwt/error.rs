//! Why an assertion was refused.

use std::fmt;

use vestibule_jose::JwsError;

use crate::decode::ValueError;

/// Why an assertion was refused. Each means "not authenticated": the
/// caller answers 401 (or treats the request as anonymous), logs the
/// variant, and for [`JwtError::UnknownKey`] may refetch the JWKS once.
///
/// Display strings are short and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Alike vestibule-jose JwsError: mirrored flat for the binary's matches, plus claim checks.
pub enum JwtError {
    /// Longer than [`Expectations::max_token_bytes`](super::Expectations::max_token_bytes).
    TooLong,
    /// Not a compact JWS with JSON header and claims objects.
    Malformed(&'static str),
    /// `alg` is not one vestibule verifies (`none`, `HS256`, ...). The value
    /// is cut to 32 characters, anything but printable ASCII shown as `?`.
    UnsupportedAlgorithm(String),
    /// `alg` is supported but not in [`Expectations::algorithms`](super::Expectations::algorithms).
    AlgorithmNotAllowed,
    /// The header has `crit` (RFC 7515 §4.1.11).
    CriticalHeader,
    /// `typ` is neither `JWT` nor `application/jwt` (any case): an access
    /// token (`at+jwt`), a logout token or some other kind of JWT is not
    /// an identity assertion (RFC 8725 §3.11).
    WrongType,
    /// No key has the header's `kid`, or (without `kid`) no key fits the
    /// algorithm. Refetching the JWKS may help.
    UnknownKey {
        /// The header's `kid`.
        kid: Option<String>,
    },
    /// Several keys could verify it: two keys share the `kid`, or there is
    /// no `kid` and several keys fit the algorithm.
    AmbiguousKey {
        /// The header's `kid`.
        kid: Option<String>,
    },
    /// The key named by `kid` does not fit the algorithm (another key type
    /// or curve, or a JWK `alg` that differs).
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// There is no `exp`: an assertion that never expires is refused.
    MissingExpiry,
    /// `iss` is missing or not the expected issuer.
    WrongIssuer,
    /// `aud` contains none of the expected audiences.
    WrongAudience,
    /// The subject claim is missing or empty.
    MissingSubject,
    /// A claim has the wrong JSON type or shape.
    BadClaim {
        /// The claim name.
        claim: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A claim mapped to an identity field fails the value rules.
    BadValue {
        /// The claim name.
        claim: String,
        /// What was wrong with it.
        reason: ValueError,
    },
    /// A group name contains a list separator or surrounding whitespace,
    /// or the groups are too long together.
    BadGroups {
        /// The claim name.
        claim: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => f.write_str("the assertion is too long"),
            Self::Malformed(why) => write!(f, "the assertion is malformed: {why}"),
            Self::UnsupportedAlgorithm(alg) => {
                write!(f, "the assertion's algorithm {alg:?} is not supported")
            }
            Self::AlgorithmNotAllowed => {
                f.write_str("the assertion's algorithm is not in the allowed list")
            }
            Self::CriticalHeader => f.write_str("the assertion has a critical header extension"),
            Self::WrongType => f.write_str("the assertion's typ is not JWT"),
            Self::UnknownKey { .. } => {
                f.write_str("no key in the JWK Set matches the assertion's key id")
            }
            Self::AmbiguousKey { .. } => {
                f.write_str("more than one key in the JWK Set could verify the assertion")
            }
            Self::KeyMismatch => f.write_str("the assertion's key does not fit its algorithm"),
            Self::BadSignature => f.write_str("the assertion's signature does not verify"),
            Self::Expired => f.write_str("the assertion has expired"),
            Self::NotYetValid => f.write_str("the assertion is not valid yet (nbf)"),
            Self::IssuedInFuture => f.write_str("the assertion was issued in the future (iat)"),
            Self::MissingExpiry => f.write_str("the assertion has no expiry (exp)"),
            Self::WrongIssuer => f.write_str("the assertion's issuer is not the expected one"),
            Self::WrongAudience => f.write_str("the assertion's audience is not an expected one"),
            Self::MissingSubject => f.write_str("the assertion has no subject"),
            Self::BadClaim { claim, reason } => write!(f, "claim `{claim}` {reason}"),
            Self::BadValue { claim, reason } => {
                write!(f, "claim `{claim}` has a bad value: {reason}")
            }
            Self::BadGroups { claim, reason } => write!(f, "claim `{claim}`: {reason}"),
        }
    }
}

impl std::error::Error for JwtError {}

impl From<JwsError> for JwtError {
    /// The JWS layer's refusals, under the names (and `Display` strings)
    /// they have always had here.
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed(why) => Self::Malformed(why),
            JwsError::UnsupportedAlgorithm(alg) => Self::UnsupportedAlgorithm(alg),
            JwsError::AlgorithmNotAllowed => Self::AlgorithmNotAllowed,
            JwsError::CriticalHeader => Self::CriticalHeader,
            JwsError::WrongType => Self::WrongType,
            JwsError::UnknownKey { kid } => Self::UnknownKey { kid },
            JwsError::AmbiguousKey { kid } => Self::AmbiguousKey { kid },
            JwsError::KeyMismatch => Self::KeyMismatch,
            JwsError::BadSignature => Self::BadSignature,
        }
    }
}
