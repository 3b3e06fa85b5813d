//! Why an assertion or a key set was refused.

use std::fmt;

/// Why verification failed.
///
/// Detail is for the log and for diagnosis; an app should not vary its
/// behaviour on the variant beyond "refused" (as with rustls's
/// `PeerMisbehaved`). `Display` is a fixed sentence per variant: it never
/// contains any part of the token or of a key, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Not a compact JWS: not three base64url segments, a header that is
    /// not a JSON object, or a token larger than 16 KiB.
    Malformed,
    /// The header's `alg` is not in the policy's allow-list (this includes
    /// `none` and every HMAC algorithm, which are never allowed).
    AlgorithmNotAllowed,
    /// The header's `typ` is not `vestibule-id+jwt`.
    WrongType,
    /// The header has `crit` (RFC 7515 §4.1.11): no extension is understood.
    CriticalHeader,
    /// The header has no `kid`.
    MissingKeyId,
    /// No key in the JWK Set has the token's `kid` (after a refetch, when
    /// the keys are fetched and the rate limit allowed one).
    UnknownKey,
    /// The key named by `kid` does not fit the token's `alg` (another key
    /// type or curve, or the JWK's own `alg` differs).
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The payload is not a JSON object with the assertion's claims of the
    /// right types.
    MalformedClaims,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` does not name the expected audience.
    WrongAudience,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// The JWK Set could not be fetched or read: nothing verifies until it
    /// can (fail closed).
    KeysUnavailable,
    /// A JWK Set that is not valid: not JSON, no `keys` array, a private
    /// key member, two keys with one `kid`, or a malformed supported key.
    InvalidKeySet(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the assertion is not a compact JWS",
            Self::AlgorithmNotAllowed => "the assertion's algorithm is not allowed",
            Self::WrongType => "the assertion's typ is not vestibule-id+jwt",
            Self::CriticalHeader => "the assertion has a crit header",
            Self::MissingKeyId => "the assertion names no key (kid)",
            Self::UnknownKey => "the assertion names a key that is not in the key set",
            Self::KeyMismatch => "the assertion's algorithm does not fit its key",
            Self::BadSignature => "the assertion's signature does not verify",
            Self::MalformedClaims => "the assertion's claims are malformed",
            Self::WrongIssuer => "the assertion has the wrong issuer",
            Self::WrongAudience => "the assertion is for another audience",
            Self::Expired => "the assertion has expired",
            Self::NotYetValid => "the assertion is not valid yet",
            Self::KeysUnavailable => "the key set is unavailable",
            Self::InvalidKeySet(why) => return write!(f, "invalid key set: {why}"),
        })
    }
}

impl std::error::Error for Error {}
