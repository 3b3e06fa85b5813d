//! Compact JWS (RFC 7515 §7.1): split, read the header, check the
//! signature. The payload is only handed out after the signature verified.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::jwk::{Jwks, KeyMaterial};
use crate::{ASSERTION_TYP, B64URL, Error};

/// The largest token accepted: a header value of 16 KiB is far above any
/// assertion the gateway signs (a few hundred bytes plus the groups).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A signature algorithm the gateway signs with (RFC 7518 §3.1, RFC 8037
/// §3.1). `none` and the HMAC algorithms have no variant on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (the gateway's default).
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, moduli of 2048 bits or more.
    RS256,
}

impl Algorithm {
    /// Every algorithm this crate verifies: the default allow-list.
    pub const ALL: &'static [Algorithm] = &[Self::ES256, Self::EdDSA, Self::RS256];

    /// The algorithm a JOSE `alg` value names (exact, case-sensitive:
    /// RFC 7515 §4.1.1).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }
}

/// The header members this crate reads. serde's derive refuses a
/// duplicate of any of them, so two parsers cannot read one header two
/// ways; `jku`, `x5u`, `jwk` and `x5c` are ignored (RFC 8725 §3.10).
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<IgnoredAny>,
}

/// Checks `token`'s header and signature against `keys`, allowing only
/// `allowed` algorithms; returns the decoded payload.
pub(crate) fn verify(token: &str, keys: &Jwks, allowed: &[Algorithm]) -> Result<Vec<u8>, Error> {
    let parts = split(token)?;
    let header = header(parts.header)?;
    let alg = Algorithm::parse(&header.alg)
        .filter(|a| allowed.contains(a))
        .ok_or(Error::AlgorithmNotAllowed)?;
    let kid = header.kid.ok_or(Error::MissingKeyId)?;
    let key = keys.find(&kid).ok_or(Error::UnknownKey)?;
    if !key.fits(alg) {
        return Err(Error::KeyMismatch);
    }
    let sig = B64URL
        .decode(parts.signature)
        .map_err(|_| Error::Malformed)?;
    // RFC 7515 §5.2 step 8: the signing input is the two encoded segments.
    let input = token
        .get(..parts.header.len() + 1 + parts.payload.len())
        .ok_or(Error::Malformed)?
        .as_bytes();
    let ok = match (&key.material, alg) {
        // RFC 7518 §3.4: R || S, 64 bytes, not DER.
        (KeyMaterial::P256(point), Algorithm::ES256) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, &sig)
                .is_ok()
        }
        (KeyMaterial::Ed25519(x), Algorithm::EdDSA) => {
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(input, &sig)
                .is_ok()
        }
        (KeyMaterial::Rsa { n, e }, Algorithm::RS256) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, &sig)
            .is_ok(),
        // `fits` above rules these out; refuse rather than panic.
        _ => false,
    };
    if !ok {
        return Err(Error::BadSignature);
    }
    B64URL.decode(parts.payload).map_err(|_| Error::Malformed)
}

/// The `kid` of a token whose header passes the checks that need no key
/// (`typ`, `crit`): a fetching verifier looks it up before it verifies.
#[cfg(feature = "fetch")]
pub(crate) fn key_id(token: &str) -> Result<String, Error> {
    header(split(token)?.header)?.kid.ok_or(Error::MissingKeyId)
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::Malformed);
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok(Parts {
            header,
            payload,
            signature,
        }),
        _ => Err(Error::Malformed),
    }
}

fn header(segment: &str) -> Result<Header, Error> {
    let bytes = B64URL.decode(segment).map_err(|_| Error::Malformed)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| Error::Malformed)?;
    if header.crit.is_some() {
        return Err(Error::CriticalHeader);
    }
    if !header.typ.as_deref().is_some_and(is_assertion_type) {
        return Err(Error::WrongType);
    }
    Ok(header)
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively,
/// whose `application/` prefix may be left out.
fn is_assertion_type(typ: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(ASSERTION_TYP)
}
