//! JWS compact serialisation (RFC 7515 §7.1): parsing and verification.

use std::fmt;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::B64URL;
use crate::algorithm::Algorithm;
use crate::json::{ObjectError, unique_object};
use crate::jwk::{Jwks, VerifyingKey};

/// Why a JWS was refused. Display strings are short, never contain the
/// token, and show an untrusted `alg` only cut and sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
// Alike vestibule-core JwtError: core mirrors these flat for the binary; jose knows no core.
pub enum JwsError {
    /// Not a compact JWS with a JSON header object (and, from
    /// [`Verified::claims_object`], a JSON payload object).
    Malformed(&'static str),
    /// `alg` is not one vestibule verifies (`none`, `HS256`, ...). The value
    /// is cut to 32 characters, anything but printable ASCII shown as `?`.
    UnsupportedAlgorithm(String),
    /// `alg` is supported but not in [`Policy::algorithms`].
    AlgorithmNotAllowed,
    /// The header has `crit` (RFC 7515 §4.1.11).
    CriticalHeader,
    /// `typ` is not one [`Policy::types`] accepts (RFC 8725 §3.11).
    WrongType,
    /// No key has the header's `kid`, or (without `kid`) no key fits the
    /// algorithm. Refetching the issuer's JWK Set may help.
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
    /// or curve, or a key `alg` that differs).
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
}

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "the JWS is malformed: {why}"),
            Self::UnsupportedAlgorithm(alg) => {
                write!(f, "the JWS algorithm {alg:?} is not supported")
            }
            Self::AlgorithmNotAllowed => {
                f.write_str("the JWS algorithm is not in the allowed list")
            }
            Self::CriticalHeader => f.write_str("the JWS has a critical header extension"),
            Self::WrongType => f.write_str("the JWS typ is not an accepted one"),
            Self::UnknownKey { .. } => f.write_str("no key matches the JWS key id"),
            Self::AmbiguousKey { .. } => f.write_str("more than one key could verify the JWS"),
            Self::KeyMismatch => f.write_str("the JWS key does not fit its algorithm"),
            Self::BadSignature => f.write_str("the JWS signature does not verify"),
        }
    }
}

impl std::error::Error for JwsError {}

/// What a caller accepts of a JWS, besides its keys.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// The algorithms accepted. A key must also fit the algorithm (its
    /// type and curve, and its `alg` if any). Empty refuses everything.
    pub algorithms: &'a [Algorithm],
    /// The `typ` values accepted (RFC 7515 §4.1.9), compared as media
    /// types: case-insensitively, and with `application/` implied when the
    /// value has no `/` (so `JWT`, `jwt` and `application/jwt` are one).
    /// Empty accepts only an absent `typ`.
    pub types: &'a [&'a str],
    /// Whether `typ` must be present.
    pub type_required: bool,
}

/// A compact JWS whose header has been read and whose payload has not.
#[derive(Clone, Debug)]
pub struct Compact<'a> {
    /// `header.payload`, the signing input (RFC 7515 §5.2).
    signing_input: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
    header: Map<String, Value>,
}

/// The three segments of a compact JWS (RFC 7515 §7.1).
fn split(token: &str) -> Result<[&str; 3], JwsError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(NOT_COMPACT),
    }
}

const NOT_COMPACT: JwsError = JwsError::Malformed("not three dot-separated segments (compact JWS)");

/// Decodes one base64url segment (RFC 7515 §2) and parses it as a JSON
/// object with unique names.
fn json_segment(
    segment: &str,
    not_b64: &'static str,
    not_object: &'static str,
    duplicate: &'static str,
) -> Result<Map<String, Value>, JwsError> {
    let bytes = B64URL
        .decode(segment)
        .map_err(|_| JwsError::Malformed(not_b64))?;
    json_object(&bytes, not_object, duplicate)
}

fn json_object(
    bytes: &[u8],
    not_object: &'static str,
    duplicate: &'static str,
) -> Result<Map<String, Value>, JwsError> {
    unique_object(bytes).map_err(|e| match e {
        ObjectError::Duplicate => JwsError::Malformed(duplicate),
        ObjectError::NotObject => JwsError::Malformed(not_object),
    })
}

/// Shows an untrusted `alg` safely: at most 32 characters, printable ASCII.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `typ` or `cty` as a full media type, lowercased (RFC 7515 §4.1.9:
/// "application/" may be omitted when no other `/` appears).
fn media_type(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

impl<'a> Compact<'a> {
    /// Splits a compact JWS into its three segments and parses the header:
    /// base64url without padding, one JSON object with unique names.
    /// Nothing else is checked yet; the payload stays encoded.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let [header_b64, payload_b64, signature_b64] = split(token)?;
        let header = json_segment(
            header_b64,
            "the header is not base64url without padding",
            "the header is not a JSON object",
            "the header repeats a parameter",
        )?;
        let signing_input = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or(NOT_COMPACT)?;
        Ok(Self {
            signing_input,
            payload_b64,
            signature_b64,
            header,
        })
    }

    /// The (unverified) header. Read it to pick keys, never to decide.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// Verifies the JWS with the issuer's keys `jwks`.
    ///
    /// In order: `crit` refused; `alg` one of [`Algorithm`] and in
    /// [`Policy::algorithms`]; `typ` as the policy says; `cty: JWT` (a
    /// nested JWT) refused; `kid` absent or a string. The key: with a
    /// `kid`, the key with that `kid` ([`JwsError::UnknownKey`] if none,
    /// [`JwsError::KeyMismatch`] if it does not fit the algorithm); without
    /// one, the only key that fits ([`JwsError::UnknownKey`] if none,
    /// [`JwsError::AmbiguousKey`] if several). A token with a `kid` never
    /// falls back to a key without one. `jku`, `x5u`, `jwk` and `x5c` are
    /// ignored (RFC 8725 §3.10). Then the signature over the signing input,
    /// and only then is the payload decoded.
    pub fn verify(&self, jwks: &Jwks, policy: &Policy<'_>) -> Result<Verified, JwsError> {
        self.verify_with(jwks.keys.iter(), policy)
    }

    pub(crate) fn verify_with<'k>(
        &self,
        keys: impl Iterator<Item = &'k VerifyingKey>,
        policy: &Policy<'_>,
    ) -> Result<Verified, JwsError> {
        let header = &self.header;
        if header.contains_key("crit") {
            return Err(JwsError::CriticalHeader);
        }
        let alg = match header.get("alg") {
            Some(Value::String(a)) => {
                Algorithm::parse(a).ok_or_else(|| JwsError::UnsupportedAlgorithm(sanitize(a)))?
            }
            Some(_) => return Err(JwsError::Malformed("the alg is not a string")),
            None => return Err(JwsError::Malformed("the header has no alg")),
        };
        if !policy.algorithms.contains(&alg) {
            return Err(JwsError::AlgorithmNotAllowed);
        }
        match header.get("typ") {
            None if policy.type_required => return Err(JwsError::WrongType),
            None => {}
            Some(Value::String(t)) => {
                let t = media_type(t);
                if !policy.types.iter().any(|want| media_type(want) == t) {
                    return Err(JwsError::WrongType);
                }
            }
            Some(_) => return Err(JwsError::Malformed("the typ is not a string")),
        }
        match header.get("cty") {
            None => {}
            Some(Value::String(c)) if media_type(c) == "application/jwt" => {
                return Err(JwsError::Malformed(
                    "nested JWTs (cty JWT) are not supported",
                ));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(JwsError::Malformed("the cty is not a string")),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(JwsError::Malformed("the kid is not a string")),
        };

        // The key, then the signature, before anything of the payload is read.
        let key = select_key(keys, alg, kid.clone())?;
        let signature = B64URL
            .decode(self.signature_b64)
            .map_err(|_| JwsError::Malformed("the signature is not base64url without padding"))?;
        key.verify_sig(self.signing_input.as_bytes(), &signature)
            .map_err(|_| JwsError::BadSignature)?;

        let payload = B64URL
            .decode(self.payload_b64)
            .map_err(|_| JwsError::Malformed("the payload is not base64url without padding"))?;
        Ok(Verified {
            alg,
            kid,
            header: self.header.clone(),
            payload,
        })
    }
}

fn select_key<'k>(
    keys: impl Iterator<Item = &'k VerifyingKey>,
    alg: Algorithm,
    kid: Option<String>,
) -> Result<&'k ParsedPublicKey, JwsError> {
    let mut named = 0usize;
    let mut fitting = Vec::new();
    for key in keys {
        if let Some(k) = &kid
            && key.kid.as_ref() != Some(k)
        {
            continue;
        }
        named += 1;
        if let Some(parsed) = key.verifier(alg) {
            fitting.push(parsed);
        }
    }
    match (fitting.as_slice(), &kid) {
        ([one], _) => Ok(one),
        ([], Some(_)) if named > 0 => Err(JwsError::KeyMismatch),
        ([], _) => Err(JwsError::UnknownKey { kid }),
        _ => Err(JwsError::AmbiguousKey { kid }),
    }
}

/// A JWS whose signature verified: its header and decoded payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    alg: Algorithm,
    kid: Option<String>,
    header: Map<String, Value>,
    payload: Vec<u8>,
}

impl Verified {
    /// The algorithm it was verified with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The header's `kid`, if it had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as a JWT Claims Set (RFC 7519 §7.2 step 10): one JSON
    /// object with unique member names (§4).
    pub fn claims_object(&self) -> Result<Map<String, Value>, JwsError> {
        json_object(
            &self.payload,
            "the claims are not a JSON object",
            "the claims repeat a name",
        )
    }
}
