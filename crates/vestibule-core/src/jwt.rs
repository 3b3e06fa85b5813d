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
//! [`identity_from_claims`] then maps verified claims to an [`Identity`]
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

use std::fmt;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::decode::{Decoding, ValueError, decode_value};
use crate::identity::Identity;

#[doc(hidden)]
pub mod testing;

/// Base64url without padding, as RFC 7515 §2 defines it for every JWS
/// segment: `=` is refused, and so are non-zero trailing bits, so each
/// segment has exactly one spelling (base64's `URL_SAFE_NO_PAD` is exactly
/// that).
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// JWK members are base64url too (RFC 7518 §6); the JWKS comes from the
/// operator's issuer, so padding is tolerated there.
const B64URL_JWK: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWS signature algorithm vestibule verifies (RFC 7518 §3.1, RFC 8037
/// §3.1). `none` and `HS*` are deliberately absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA with Ed25519.
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// Parses an `alg` value. Exact and case-sensitive (RFC 7515 §4.1.1):
    /// `rs256` is not `RS256`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The `alg` value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    fn family(self) -> Family {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 => Family::P256,
            Self::ES384 => Family::P384,
            Self::EdDSA => Family::Ed25519,
        }
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::ES256 | Self::ES384 | Self::EdDSA => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// JWK members that only a private (or symmetric) key has: RSA's (RFC 7518
/// §6.3.2), EC's and OKP's `d` (§6.2.2, RFC 8037 §2), the symmetric `k`
/// (§6.4), and `priv` (the AKP key type of the ML-DSA drafts).
const PRIVATE_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

/// Smallest and largest RSA modulus, in bits (RFC 7518 §3.3: "a key of size
/// 2048 bits or larger MUST be used"; aws-lc-rs's parameters stop at 8192).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A parsed JWK Set (RFC 7517 §5): the public signing keys of one issuer.
///
/// Keys vestibule cannot use are skipped, as RFC 7517 §5 asks ("SHOULD
/// ignore JWKs ... that use kty values that are not understood ..., that
/// are missing required members, or for which values are out of the
/// supported ranges"): unknown `kty` or `crv`, `use` other than `sig`,
/// `key_ops` without `verify`, an `alg` vestibule does not verify or that
/// does not fit the key, malformed members, RSA keys outside 2048–8192
/// bits, EC points off the curve. [`Jwks::skipped`] lists them for logs.
///
/// A key with **private members** (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`,
/// or a symmetric `k`) refuses the whole set ([`JwksError::PrivateKey`]):
/// a published JWKS holding a private key means the issuer's signing key
/// has leaked, and the operator must hear about it rather than have it
/// quietly skipped.
#[derive(Clone, Debug)]
pub struct Jwks {
    keys: Vec<Jwk>,
    skipped: Vec<SkippedKey>,
}

/// A key [`Jwks::parse`] left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, if it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: &'static str,
}

/// One usable key, parsed once for each algorithm it may verify.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    /// The JWK `alg`, when present.
    alg: Option<Algorithm>,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<&str> = self.verifiers.iter().map(|(a, _)| a.as_str()).collect();
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("verifies", &algs)
            .finish()
    }
}

impl Jwk {
    /// The parsed key for `alg`, if this key may verify it.
    fn verifier(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        if self.alg.is_some_and(|a| a != alg) {
            return None;
        }
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, k)| k)
    }
}

/// Why a JWK Set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// Not JSON, or not an object with a `keys` array (RFC 7517 §5.1).
    Malformed(String),
    /// A key has private members: the issuer published a private key.
    PrivateKey {
        /// Its `kid`, if it had a string one.
        kid: Option<String>,
    },
    /// No key vestibule can use (an empty set, or every key skipped).
    Empty,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "the JWK Set is malformed: {why}"),
            Self::PrivateKey { kid: Some(kid) } => write!(
                f,
                "the JWK Set holds a private key (kid {kid:?}): the issuer's key has leaked"
            ),
            Self::PrivateKey { kid: None } => f.write_str(
                "the JWK Set holds a private key (without kid): the issuer's key has leaked",
            ),
            Self::Empty => f.write_str("the JWK Set has no usable signing key"),
        }
    }
}

impl std::error::Error for JwksError {}

impl Jwks {
    /// Parses a JWK Set document.
    ///
    /// The caller bounds the document's size; keys are parsed eagerly
    /// (once per algorithm they may verify), so verification does no key
    /// parsing.
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        let doc: Value = serde_json::from_slice(json)
            .map_err(|e| JwksError::Malformed(format!("not JSON ({e})")))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::Malformed("no \"keys\" array".to_owned()))?;
        // Private keys first, over every member, whatever its type: a leak
        // is reported even alongside keys we could not use anyway.
        for key in keys.iter().filter_map(Value::as_object) {
            if PRIVATE_MEMBERS.iter().any(|m| key.contains_key(*m)) {
                return Err(JwksError::PrivateKey {
                    kid: key.get("kid").and_then(Value::as_str).map(str::to_owned),
                });
            }
        }
        let mut jwks = Jwks {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        for key in keys {
            let kid = key.get("kid").and_then(Value::as_str).map(str::to_owned);
            match parse_jwk(key) {
                Ok(jwk) => jwks.keys.push(jwk),
                Err(reason) => jwks.skipped.push(SkippedKey { kid, reason }),
            }
        }
        if jwks.keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(jwks)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key (never true of a parsed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that were skipped, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }
}

/// One JWK (RFC 7517 §4), or why it was skipped.
fn parse_jwk(key: &Value) -> Result<Jwk, &'static str> {
    let key = key.as_object().ok_or("not a JSON object")?;
    let kid = match key.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"kid\" is not a string"),
    };
    match key.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("\"use\" is not \"sig\""),
    }
    if let Some(ops) = key.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o == "verify"));
        if !verify {
            return Err("\"key_ops\" does not include \"verify\"");
        }
    }
    let alg = match key.get("alg") {
        None => None,
        Some(Value::String(a)) => {
            Some(Algorithm::parse(a).ok_or("\"alg\" is not an algorithm vestibule verifies")?)
        }
        Some(_) => return Err("\"alg\" is not a string"),
    };
    let member = |name: &str| -> Result<Vec<u8>, &'static str> {
        let s = key
            .get(name)
            .and_then(Value::as_str)
            .ok_or("a key member is missing or not a string")?;
        B64URL_JWK
            .decode(s)
            .map_err(|_| "a key member is not base64url")
    };
    let kty = key.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = key.get("crv").and_then(Value::as_str).unwrap_or("");
    let family = match (kty, crv) {
        ("RSA", _) => Family::Rsa,
        ("EC", "P-256") => Family::P256,
        ("EC", "P-384") => Family::P384,
        ("OKP", "Ed25519") => Family::Ed25519,
        ("EC" | "OKP", _) => return Err("the curve is not supported"),
        _ => return Err("the key type is not supported"),
    };
    if alg.is_some_and(|a| a.family() != family) {
        return Err("\"alg\" does not fit the key type");
    }
    let algs = Algorithm::ALL
        .into_iter()
        .filter(|a| a.family() == family && alg.is_none_or(|b| b == *a));
    let mut verifiers = Vec::new();
    match family {
        Family::Rsa => {
            // Base64urlUInt is minimal (RFC 7518 §2), but leading zero
            // octets are sometimes sent; they do not change the number and
            // aws-lc-rs wants them gone.
            let n = member("n")?;
            let e = member("e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            // An all-zero modulus strips to nothing (found by fuzzing
            // jwks_parse: the subtraction below underflowed).
            let Some(first) = n.first() else {
                return Err("the RSA modulus is zero");
            };
            let bits = n.len() * 8 - first.leading_zeros() as usize;
            if !RSA_BITS.contains(&bits) {
                return Err("the RSA modulus is not 2048 to 8192 bits");
            }
            if e.is_empty() {
                return Err("the RSA exponent is zero");
            }
            let components = RsaPublicKeyComponents { n, e };
            for a in algs {
                let params = a.rsa_parameters().ok_or("not an RSA algorithm")?;
                let parsed = components
                    .to_parsed_public_key(params)
                    .map_err(|_| "the RSA key is invalid")?;
                verifiers.push((a, parsed));
            }
        }
        Family::P256 | Family::P384 => {
            // RFC 7518 §6.2.1.2–3: each coordinate is the full size.
            let (size, verification): (usize, &'static signature::EcdsaVerificationAlgorithm) =
                if family == Family::P256 {
                    (32, &signature::ECDSA_P256_SHA256_FIXED)
                } else {
                    (48, &signature::ECDSA_P384_SHA384_FIXED)
                };
            let x = member("x")?;
            let y = member("y")?;
            if x.len() != size || y.len() != size {
                return Err("an EC coordinate is not the curve's size");
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let parsed = ParsedPublicKey::new(verification, &point)
                .map_err(|_| "the EC point is not on the curve")?;
            for a in algs {
                verifiers.push((a, parsed.clone()));
            }
        }
        Family::Ed25519 => {
            let x = member("x")?;
            if x.len() != 32 {
                return Err("the Ed25519 key is not 32 bytes");
            }
            let parsed = ParsedPublicKey::new(&signature::ED25519, &x)
                .map_err(|_| "the Ed25519 key is invalid")?;
            for a in algs {
                verifiers.push((a, parsed.clone()));
            }
        }
    }
    Ok(Jwk {
        kid,
        alg,
        verifiers,
    })
}

fn strip_leading_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

/// What the operator expects of every assertion.
#[derive(Clone, Copy, Debug)]
pub struct Expectations<'a> {
    /// The exact `iss` (RFC 7519 §4.1.1), compared byte for byte. An empty
    /// issuer matches nothing.
    pub issuer: &'a str,
    /// `aud` (a string or an array of strings, RFC 7519 §4.1.3) must
    /// contain at least one of these. Empty means `aud` is not checked:
    /// whether that is allowed is the binary's decision.
    pub audiences: &'a [String],
    /// The algorithms accepted. A key must also fit the algorithm (its
    /// type and curve, and its JWK `alg` if any). Empty refuses everything.
    pub algorithms: &'a [Algorithm],
    /// The current time, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (negative
    /// counts as zero).
    pub leeway: i64,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// The claims of a verified assertion that vestibule uses, plus the whole
/// claims object for [`ClaimMapping`]'s configured names.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// `iss`, equal to [`Expectations::issuer`].
    pub issuer: String,
    /// `sub`, never empty.
    pub subject: String,
    /// `aud`, as a list (empty when absent).
    pub audiences: Vec<String>,
    /// `exp`, Unix seconds (a fractional value is rounded down).
    pub expires_at: i64,
    /// `nbf`, Unix seconds (a fractional value is rounded up).
    pub not_before: Option<i64>,
    /// `iat`, Unix seconds (a fractional value is rounded up).
    pub issued_at: Option<i64>,
    raw: Map<String, Value>,
}

impl Claims {
    /// The claim `name` if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.raw.get(name).and_then(Value::as_str)
    }

    /// The claim `name` if it is a string (a list of one) or an array of
    /// strings only.
    pub fn get_str_list(&self, name: &str) -> Option<Vec<&str>> {
        match self.raw.get(name)? {
            Value::String(s) => Some(vec![s.as_str()]),
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        }
    }

    /// The claim `name`, `null` read as absent.
    fn present(&self, name: &str) -> Option<&Value> {
        self.raw.get(name).filter(|v| !v.is_null())
    }
}

/// Why an assertion was refused. Each means "not authenticated": the
/// caller answers 401 (or treats the request as anonymous), logs the
/// variant, and for [`JwtError::UnknownKey`] may refetch the JWKS once.
///
/// Display strings are short and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than [`Expectations::max_token_bytes`].
    TooLong,
    /// Not a compact JWS with JSON header and claims objects.
    Malformed(&'static str),
    /// `alg` is not one vestibule verifies (`none`, `HS256`, ...). The value
    /// is cut to 32 characters, anything but printable ASCII shown as `?`.
    UnsupportedAlgorithm(String),
    /// `alg` is supported but not in [`Expectations::algorithms`].
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

/// A JSON object whose member names are unique (RFC 7515 §4 and RFC 7519
/// §4 let a parser refuse duplicates; lexically-last-wins would let two
/// parsers read one token differently).
struct UniqueObject(Map<String, Value>);

const DUPLICATE: &str = "duplicate member name";

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes one segment and parses it as a JSON object with unique names.
fn json_object(
    segment: &str,
    not_b64: &'static str,
    not_object: &'static str,
    duplicate: &'static str,
) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64URL
        .decode(segment)
        .map_err(|_| JwtError::Malformed(not_b64))?;
    match serde_json::from_slice::<UniqueObject>(&bytes) {
        Ok(UniqueObject(map)) => Ok(map),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JwtError::Malformed(duplicate)),
        Err(_) => Err(JwtError::Malformed(not_object)),
    }
}

/// The three segments of a compact JWS (RFC 7515 §7.1).
fn split(token: &str) -> Result<[&str; 3], JwtError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(JwtError::Malformed(
            "not three dot-separated segments (compact JWS)",
        )),
    }
}

fn parse_header(segment: &str) -> Result<Map<String, Value>, JwtError> {
    json_object(
        segment,
        "the header is not base64url without padding",
        "the header is not a JSON object",
        "the header repeats a parameter",
    )
}

/// The header's `kid`: absent, or a string.
fn header_kid(header: &Map<String, Value>) -> Result<Option<String>, JwtError> {
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(k)) => Ok(Some(k.clone())),
        Some(_) => Err(JwtError::Malformed("the kid is not a string")),
    }
}

/// Why the assertion header of a request cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionHeaderError {
    /// Sent twice, or under two spellings (`X-Assertion`, `X_Assertion`):
    /// ambiguous, as for plain identity headers (HTTP 400).
    Ambiguous,
    /// Not visible ASCII: no compact JWS can be in it.
    NotAscii,
}

/// The assertion a request carries in header `name` (normalised, see
/// [`crate::headers::same_name`]), trimmed. Empty counts as none: that is how
/// fronts say "nobody" on pages they do not protect (Apache's `RequestHeader
/// set` with an unset variable), as with plain identity headers.
pub fn assertion_in<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, AssertionHeaderError> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| crate::headers::same_name(n.as_str(), name))
        .map(|(_, v)| v);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AssertionHeaderError::Ambiguous);
    }
    let token = value
        .to_str()
        .map_err(|_| AssertionHeaderError::NotAscii)?
        .trim();
    Ok((!token.is_empty()).then_some(token))
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

/// Parses and verifies a compact JWS assertion (RFC 7515 §7.1) and its
/// claims (RFC 7519 §7.2), in the order the [module docs](self) give.
///
/// Key selection: with a header `kid`, the key with that `kid`
/// ([`JwtError::UnknownKey`] if none, so the caller can refetch the JWKS;
/// [`JwtError::KeyMismatch`] if it does not fit the algorithm); without
/// one, the only key that fits the algorithm ([`JwtError::UnknownKey`] if
/// none, [`JwtError::AmbiguousKey`] if several). A token with a `kid` never
/// falls back to a key without one.
///
/// `typ`: absent, `JWT` or `application/jwt`, in any case (media types are
/// case-insensitive, RFC 7515 §4.1.9). Anything else, `at+jwt` included,
/// is [`JwtError::WrongType`].
pub fn verify(token: &str, jwks: &Jwks, expect: &Expectations<'_>) -> Result<Claims, JwtError> {
    if token.len() > expect.max_token_bytes {
        return Err(JwtError::TooLong);
    }
    let [header_b64, payload_b64, signature_b64] = split(token)?;

    // The header.
    let header = parse_header(header_b64)?;
    if header.contains_key("crit") {
        return Err(JwtError::CriticalHeader);
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => {
            Algorithm::parse(a).ok_or_else(|| JwtError::UnsupportedAlgorithm(sanitize(a)))?
        }
        Some(_) => return Err(JwtError::Malformed("the alg is not a string")),
        None => return Err(JwtError::Malformed("the header has no alg")),
    };
    if !expect.algorithms.contains(&alg) {
        return Err(JwtError::AlgorithmNotAllowed);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt") => {}
        Some(Value::String(_)) => return Err(JwtError::WrongType),
        Some(_) => return Err(JwtError::Malformed("the typ is not a string")),
    }
    match header.get("cty") {
        None => {}
        Some(Value::String(c))
            if c.eq_ignore_ascii_case("JWT") || c.eq_ignore_ascii_case("application/jwt") =>
        {
            return Err(JwtError::Malformed(
                "nested JWTs (cty JWT) are not supported",
            ));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(JwtError::Malformed("the cty is not a string")),
    }
    let kid = header_kid(&header)?;

    // The key, then the signature, before anything of the payload is read.
    let key = select_key(jwks, alg, kid)?;
    let signature = B64URL
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed("the signature is not base64url without padding"))?;
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(JwtError::Malformed(
            "not three dot-separated segments (compact JWS)",
        ))?;
    key.verify_sig(signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;

    // The claims.
    let raw = json_object(
        payload_b64,
        "the payload is not base64url without padding",
        "the claims are not a JSON object",
        "the claims repeat a name",
    )?;
    check_claims(raw, expect)
}

fn select_key(
    jwks: &Jwks,
    alg: Algorithm,
    kid: Option<String>,
) -> Result<&ParsedPublicKey, JwtError> {
    let mut named = 0usize;
    let mut fitting = Vec::new();
    for key in &jwks.keys {
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
        ([], Some(_)) if named > 0 => Err(JwtError::KeyMismatch),
        ([], _) => Err(JwtError::UnknownKey { kid }),
        _ => Err(JwtError::AmbiguousKey { kid }),
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional. Fractions are
/// rounded towards refusal: `exp` down, `nbf` and `iat` up.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    up: bool,
) -> Result<Option<i64>, JwtError> {
    let bad = || JwtError::BadClaim {
        claim: name.to_owned(),
        reason: "is not a NumericDate",
    };
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(bad());
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
    let f = if up { f.ceil() } else { f.floor() };
    // i64::MAX is not exactly representable; stay strictly inside.
    if (-9.2e18..=9.2e18).contains(&f) {
        Ok(Some(f as i64))
    } else {
        Err(bad())
    }
}

fn check_claims(raw: Map<String, Value>, expect: &Expectations<'_>) -> Result<Claims, JwtError> {
    let leeway = expect.leeway.max(0);
    let now = expect.now;

    let issuer = match raw.get("iss") {
        Some(Value::String(iss)) if !iss.is_empty() && iss == expect.issuer => iss.clone(),
        _ => return Err(JwtError::WrongIssuer),
    };

    let audiences: Vec<String> = match raw.get("aud") {
        None => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| JwtError::BadClaim {
                claim: "aud".to_owned(),
                reason: "is not a string or an array of strings",
            })?,
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: "aud".to_owned(),
                reason: "is not a string or an array of strings",
            });
        }
    };
    if !expect.audiences.is_empty() && !audiences.iter().any(|a| expect.audiences.contains(a)) {
        return Err(JwtError::WrongAudience);
    }

    // RFC 7519 §4.1.4: not accepted "on or after" exp.
    let expires_at = numeric_date(&raw, "exp", false)?.ok_or(JwtError::MissingExpiry)?;
    if now >= expires_at.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    // §4.1.5: not accepted "before" nbf.
    let not_before = numeric_date(&raw, "nbf", true)?;
    if not_before.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    let issued_at = numeric_date(&raw, "iat", true)?;
    if issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(JwtError::IssuedInFuture);
    }

    let subject = match raw.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(JwtError::MissingSubject);
        }
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: "sub".to_owned(),
                reason: "is not a string",
            });
        }
    };

    Ok(Claims {
        issuer,
        subject,
        audiences,
        expires_at,
        not_before,
        issued_at,
        raw,
    })
}

/// Which claim each identity field is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimMapping {
    /// The stable subject (usually `sub`).
    pub subject: String,
    /// Candidates for the username, first present (and non-empty) wins;
    /// with none, the email, then the subject.
    pub username: Vec<String>,
    /// The email address.
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The given name.
    pub given_name: Option<String>,
    /// The family name.
    pub family_name: Option<String>,
    /// The groups: a string (one group) or an array of strings.
    pub groups: Option<String>,
}

impl ClaimMapping {
    /// Preset names, for configuration.
    pub const PRESETS: [&'static str; 4] = ["pomerium", "cloudflare", "authentik", "oidc"];

    fn of(
        username: &[&str],
        email: Option<&str>,
        display_name: Option<&str>,
        given_name: Option<&str>,
        family_name: Option<&str>,
        groups: Option<&str>,
    ) -> Self {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Self {
            subject: "sub".to_owned(),
            username: username.iter().map(|s| (*s).to_owned()).collect(),
            email: own(email),
            display_name: own(display_name),
            given_name: own(given_name),
            family_name: own(family_name),
            groups: own(groups),
        }
    }

    /// Pomerium's `X-Pomerium-Jwt-Assertion`: `sub` (the user id; `user`
    /// repeats it), `email`, `name`, `groups` (group ids and names). It has
    /// no login-name claim unless the operator adds `preferred_username`
    /// through `jwt_claims_headers`, so the username is that, else the
    /// email.
    pub fn pomerium() -> Self {
        // The same claim names as authentik's.
        Self::authentik()
    }

    /// Cloudflare Access's `Cf-Access-Jwt-Assertion`: `sub` (the user's
    /// uuid) and `email`; groups are not in the token (they come from the
    /// separate get-identity endpoint). The username is the email.
    pub fn cloudflare() -> Self {
        Self::of(&[], Some("email"), None, None, None, None)
    }

    /// authentik's `X-authentik-jwt` (the proxy provider's ID token): `sub`,
    /// `preferred_username`, `email`, `name`, `groups`. Its `given_name`
    /// is the full name again, so it is not mapped.
    pub fn authentik() -> Self {
        Self::of(
            &["preferred_username"],
            Some("email"),
            Some("name"),
            None,
            None,
            Some("groups"),
        )
    }

    /// OpenID Connect standard claims (OIDC Core §5.1) plus the common
    /// `groups`: `sub`, `preferred_username`, `email`, `name`,
    /// `given_name`, `family_name`, `groups`.
    pub fn oidc() -> Self {
        Self::of(
            &["preferred_username"],
            Some("email"),
            Some("name"),
            Some("given_name"),
            Some("family_name"),
            Some("groups"),
        )
    }

    /// A preset by its configuration name (see [`ClaimMapping::PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "pomerium" => Some(Self::pomerium()),
            "cloudflare" => Some(Self::cloudflare()),
            "authentik" => Some(Self::authentik()),
            "oidc" => Some(Self::oidc()),
            _ => None,
        }
    }
}

/// How an identity value is read from a string claim.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spacing {
    /// Keys (subject, username, email): surrounding whitespace is refused,
    /// since trimming would make ` admin` and `admin` one person.
    Exact,
    /// Descriptive names: trimmed, as header values are.
    Trimmed,
}

/// A string claim as an identity value: `None` if absent, `null` or empty.
fn value_of(
    claims: &Claims,
    claim: &str,
    max: usize,
    spacing: Spacing,
) -> Result<Option<String>, JwtError> {
    let Some(v) = claims.present(claim) else {
        return Ok(None);
    };
    let Value::String(raw) = v else {
        return Err(JwtError::BadClaim {
            claim: claim.to_owned(),
            reason: "is not a string",
        });
    };
    let value = decode_value(raw.as_bytes(), Decoding::default(), max).map_err(|reason| {
        JwtError::BadValue {
            claim: claim.to_owned(),
            reason,
        }
    })?;
    if spacing == Spacing::Exact && value != *raw {
        return Err(JwtError::BadClaim {
            claim: claim.to_owned(),
            reason: "has leading or trailing whitespace",
        });
    }
    Ok(Some(value).filter(|v| !v.is_empty()))
}

/// Builds the [`Identity`] vouched for by `source` from verified claims.
///
/// Every value follows the identity-header rules ([`crate::decode`]): valid
/// UTF-8 (JSON strings always are), no control characters, at most
/// `max_value_bytes`; nothing is decoded further (a `{base64}` or `=?`
/// value stays literal). Subject, username, email and group names must
/// not have surrounding whitespace; display, given and family names are
/// trimmed. Empty strings and `null` count as absent.
///
/// The username is the first present `username` claim, else the email,
/// else the subject. Groups (a string, or an array of strings) are
/// de-duplicated, must not contain `,` `;` or `|` (they are re-joined for
/// apps with any of those), and together (joined by one separator) must fit
/// in `max_groups_bytes`.
pub fn identity_from_claims(
    claims: &Claims,
    mapping: &ClaimMapping,
    source: &str,
    max_value_bytes: usize,
    max_groups_bytes: usize,
) -> Result<Identity, JwtError> {
    let subject = value_of(claims, &mapping.subject, max_value_bytes, Spacing::Exact)?
        .ok_or(JwtError::MissingSubject)?;
    let mut username = None;
    for claim in &mapping.username {
        username = value_of(claims, claim, max_value_bytes, Spacing::Exact)?;
        if username.is_some() {
            break;
        }
    }
    let optional = |claim: &Option<String>, spacing| match claim {
        Some(c) => value_of(claims, c, max_value_bytes, spacing),
        None => Ok(None),
    };
    let email = optional(&mapping.email, Spacing::Exact)?;
    let display_name = optional(&mapping.display_name, Spacing::Trimmed)?;
    let given_name = optional(&mapping.given_name, Spacing::Trimmed)?;
    let family_name = optional(&mapping.family_name, Spacing::Trimmed)?;
    let groups = match &mapping.groups {
        Some(claim) => groups_of(claims, claim, max_groups_bytes)?,
        None => Vec::new(),
    };
    let username = username
        .or_else(|| email.clone())
        .unwrap_or_else(|| subject.clone());
    Ok(Identity {
        source: source.to_owned(),
        subject,
        username,
        email,
        display_name,
        given_name,
        family_name,
        groups,
        ..Identity::default()
    })
}

fn groups_of(
    claims: &Claims,
    claim: &str,
    max_groups_bytes: usize,
) -> Result<Vec<String>, JwtError> {
    let names: Vec<&str> = match claims.present(claim) {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| JwtError::BadClaim {
                claim: claim.to_owned(),
                reason: "is not a string or an array of strings",
            })?,
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: claim.to_owned(),
                reason: "is not a string or an array of strings",
            });
        }
    };
    let bad_groups = |reason| JwtError::BadGroups {
        claim: claim.to_owned(),
        reason,
    };
    let mut groups: Vec<String> = Vec::new();
    let mut total = 0usize;
    for name in names {
        if name.is_empty() {
            continue;
        }
        let value = decode_value(name.as_bytes(), Decoding::default(), max_groups_bytes).map_err(
            |reason| JwtError::BadValue {
                claim: claim.to_owned(),
                reason,
            },
        )?;
        if value != name {
            return Err(bad_groups(
                "a group name has leading or trailing whitespace",
            ));
        }
        if value.contains([',', ';', '|']) {
            return Err(bad_groups(
                "a group name contains a list separator (',', ';' or '|')",
            ));
        }
        if groups.contains(&value) {
            continue;
        }
        total += value.len() + usize::from(!groups.is_empty());
        if total > max_groups_bytes {
            return Err(bad_groups("the groups are longer than the bound together"));
        }
        groups.push(value);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    #[test]
    fn assertion_header_once_under_any_spelling() {
        use super::{AssertionHeaderError, assertion_in};
        let map = |lines: &[(&'static str, &'static [u8])]| {
            let mut h = http::HeaderMap::new();
            for (n, v) in lines {
                h.append(*n, http::HeaderValue::from_bytes(v).unwrap());
            }
            h
        };
        let name = "x-assertion";
        assert_eq!(assertion_in(&map(&[]), name), Ok(None));
        assert_eq!(assertion_in(&map(&[("x-assertion", b" ")]), name), Ok(None));
        assert_eq!(
            assertion_in(&map(&[("x-assertion", b" a.b.c ")]), name),
            Ok(Some("a.b.c"))
        );
        assert_eq!(
            assertion_in(&map(&[("x_assertion", b"a.b.c")]), name),
            Ok(Some("a.b.c"))
        );
        assert_eq!(
            assertion_in(&map(&[("x-assertion", b"a"), ("x_assertion", b"a")]), name),
            Err(AssertionHeaderError::Ambiguous)
        );
        assert_eq!(
            assertion_in(&map(&[("x-assertion", b"a"), ("x-assertion", b"a")]), name),
            Err(AssertionHeaderError::Ambiguous)
        );
        assert_eq!(
            assertion_in(&map(&[("x-assertion", b"\xff")]), name),
            Err(AssertionHeaderError::NotAscii)
        );
    }

    proptest::proptest! {
        #[test]
        fn assertion_header_is_ambiguous_exactly_when_sent_twice(
            lines in proptest::collection::vec(
                (proptest::sample::select(vec!["x-assertion", "x_assertion", "X_ASSERTION", "x-other"]),
                 "[ -~]{0,12}"),
                0..4,
            ),
        ) {
            let mut h = http::HeaderMap::new();
            for (n, v) in &lines {
                h.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            let ours: Vec<&String> = lines.iter().filter(|(n, _)| *n != "x-other").map(|(_, v)| v).collect();
            let got = super::assertion_in(&h, "x-assertion");
            match ours.len() {
                0 => proptest::prop_assert_eq!(got, Ok(None)),
                1 => {
                    let want = ours[0].trim();
                    proptest::prop_assert_eq!(got, Ok((!want.is_empty()).then_some(want)));
                }
                _ => proptest::prop_assert_eq!(got, Err(super::AssertionHeaderError::Ambiguous)),
            }
        }
    }

    use super::testing::TestSigner;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::OnceLock;

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://sso.example.com";

    fn audiences() -> &'static [String] {
        static AUD: OnceLock<Vec<String>> = OnceLock::new();
        AUD.get_or_init(|| vec!["app".to_owned()])
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: ISS,
            audiences: audiences(),
            algorithms: &Algorithm::ALL,
            now: NOW,
            leeway: 30,
            max_token_bytes: 8192,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISS,
            "aud": "app",
            "sub": "u-123",
            "exp": NOW + 300,
            "iat": NOW,
            "email": "alice@example.com",
            "preferred_username": "alice",
            "name": "Alice Liddell",
            "groups": ["admins", "users"],
        })
    }

    /// One key of each kind, made once: RSA generation is slow-ish.
    struct Keys {
        rsa: TestSigner,
        es256: TestSigner,
        es384: TestSigner,
        ed: TestSigner,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| Keys {
            rsa: TestSigner::rs256("rsa"),
            es256: TestSigner::es256("es256"),
            es384: TestSigner::new(Algorithm::ES384, "es384"),
            ed: TestSigner::ed25519("ed"),
        })
    }

    fn jwks_of(signers: &[&TestSigner]) -> Jwks {
        Jwks::parse(TestSigner::jwks_json(signers).as_bytes()).unwrap()
    }

    fn ok(signer: &TestSigner, claims: &Value) -> Result<Claims, JwtError> {
        verify(&signer.sign(claims), &jwks_of(&[signer]), &expect())
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v.as_object_mut().unwrap().insert(k.to_owned(), x);
        v
    }

    fn without(mut v: Value, k: &str) -> Value {
        v.as_object_mut().unwrap().remove(k);
        v
    }

    fn b64(s: &str) -> String {
        B64URL.encode(s)
    }

    #[test]
    fn every_algorithm_verifies() {
        let k = keys();
        let mut signers: Vec<TestSigner> = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ]
        .into_iter()
        .map(|a| k.rsa.with_algorithm(a).with_kid(a.as_str()))
        .collect();
        signers.extend([k.es256.clone(), k.es384.clone(), k.ed.clone()]);
        let all: Vec<&TestSigner> = signers.iter().collect();
        let jwks = jwks_of(&all);
        assert_eq!(jwks.len(), 9);
        for s in &signers {
            let c = verify(&s.sign(&claims()), &jwks, &expect())
                .unwrap_or_else(|e| panic!("{}: {e}", s.algorithm()));
            assert_eq!(c.subject, "u-123");
            assert_eq!(c.issuer, ISS);
            assert_eq!(c.audiences, ["app"]);
            assert_eq!(c.expires_at, NOW + 300);
            assert_eq!(c.issued_at, Some(NOW));
            assert_eq!(c.not_before, None);
            assert_eq!(c.get_str("email"), Some("alice@example.com"));
            assert_eq!(c.get_str_list("groups"), Some(vec!["admins", "users"]));
            assert_eq!(c.get_str_list("email"), Some(vec!["alice@example.com"]));
            assert_eq!(c.get_str_list("exp"), None);
        }
    }

    #[test]
    fn a_key_without_jwk_alg_verifies_every_algorithm_of_its_kind() {
        let rsa = keys().rsa.without_jwk_alg();
        let jwks = jwks_of(&[&rsa]);
        for a in [Algorithm::RS256, Algorithm::PS512] {
            let t = rsa.with_algorithm(a).sign(&claims());
            assert!(verify(&t, &jwks, &expect()).is_ok(), "{a}");
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        for bad in ["none", "None", "HS256", "rs256", "ES512", "", "RS256 "] {
            assert_eq!(Algorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn wrong_key_does_not_verify() {
        let k = keys();
        let other = TestSigner::es256("es256");
        let jwks = jwks_of(&[&other]);
        assert_eq!(
            verify(&k.es256.sign(&claims()), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
        let other = TestSigner::ed25519("ed");
        assert_eq!(
            verify(&k.ed.sign(&claims()), &jwks_of(&[&other]), &expect()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = &keys().es256;
        let jwks = jwks_of(&[s]);
        let token = s.sign(&claims());
        let [h, p, sig] = split(&token).unwrap();
        // Another payload under the original signature.
        let forged = b64(&with(claims(), "sub", "admin".into()).to_string());
        assert_eq!(
            verify(&format!("{h}.{forged}.{sig}"), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
        // Another header (still ES256, same kid) under the original signature.
        let h2 = b64(r#"{"alg":"ES256","kid":"es256"}"#);
        assert_eq!(
            verify(&format!("{h2}.{p}.{sig}"), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
        // A flipped signature bit.
        let mut raw = B64URL.decode(sig).unwrap();
        raw[5] ^= 1;
        let sig2 = B64URL.encode(&raw);
        assert_eq!(
            verify(&format!("{h}.{p}.{sig2}"), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
        // No signature at all.
        assert_eq!(
            verify(&format!("{h}.{p}."), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let s = &keys().es256;
        let jwks = jwks_of(&[s]);
        let p = b64(&claims().to_string());
        for alg in ["none", "None", "NONE"] {
            let h = b64(&format!(r#"{{"alg":"{alg}","kid":"es256"}}"#));
            for token in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
                assert_eq!(
                    verify(&token, &jwks, &expect()),
                    Err(JwtError::UnsupportedAlgorithm(alg.to_owned()))
                );
            }
        }
    }

    #[test]
    fn hs256_with_the_rsa_public_key_as_secret_is_refused() {
        use aws_lc_rs::hmac;
        let rsa = &keys().rsa;
        let jwks_json = TestSigner::jwks_json(&[rsa]);
        let jwks = Jwks::parse(jwks_json.as_bytes()).unwrap();
        // Every form of the public key an attacker might use as the secret.
        let secrets = [
            rsa.public_key_bytes(),
            jwks_json.clone().into_bytes(),
            rsa.jwk().to_string().into_bytes(),
        ];
        for secret in secrets {
            let h = b64(r#"{"alg":"HS256","kid":"rsa","typ":"JWT"}"#);
            let p = b64(&claims().to_string());
            let input = format!("{h}.{p}");
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &secret),
                input.as_bytes(),
            );
            let token = format!("{input}.{}", B64URL.encode(tag.as_ref()));
            assert_eq!(
                verify(&token, &jwks, &expect()),
                Err(JwtError::UnsupportedAlgorithm("HS256".to_owned()))
            );
        }
    }

    #[test]
    fn algorithm_must_be_allowed() {
        let k = keys();
        let jwks = jwks_of(&[&k.es256, &k.ed]);
        let only_ed = Expectations {
            algorithms: &[Algorithm::EdDSA],
            ..expect()
        };
        assert_eq!(
            verify(&k.es256.sign(&claims()), &jwks, &only_ed),
            Err(JwtError::AlgorithmNotAllowed)
        );
        assert!(verify(&k.ed.sign(&claims()), &jwks, &only_ed).is_ok());
        let none = Expectations {
            algorithms: &[],
            ..expect()
        };
        assert_eq!(
            verify(&k.ed.sign(&claims()), &jwks, &none),
            Err(JwtError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn key_must_fit_the_algorithm() {
        let k = keys();
        // The JWK says RS256; a PS256 token with that kid is refused even
        // though the key could verify PSS.
        let jwks = jwks_of(&[&k.rsa]);
        let ps = k.rsa.with_algorithm(Algorithm::PS256);
        assert_eq!(
            verify(&ps.sign(&claims()), &jwks, &expect()),
            Err(JwtError::KeyMismatch)
        );
        // A header claiming ES256 with the kid of an RSA key.
        let header = json!({"alg": "ES256", "kid": "rsa"});
        let t = k.es256.sign_with_header(&header, &claims());
        assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::KeyMismatch));
        // ES384 header with a P-256 key's kid.
        let jwks = jwks_of(&[&k.es256]);
        let t = k
            .es256
            .sign_with_header(&json!({"alg": "ES384", "kid": "es256"}), &claims());
        assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::KeyMismatch));
    }

    #[test]
    fn key_selection() {
        let k = keys();
        let jwks = jwks_of(&[&k.es256, &k.ed]);
        // Unknown kid: the caller may refetch.
        let t = k.ed.with_kid("rotated").sign(&claims());
        assert_eq!(
            verify(&t, &jwks, &expect()),
            Err(JwtError::UnknownKey {
                kid: Some("rotated".into())
            })
        );
        // No kid: the only key fitting the algorithm.
        let t = k.ed.sign_with_header(&json!({"alg": "EdDSA"}), &claims());
        assert!(verify(&t, &jwks, &expect()).is_ok());
        // No kid and two keys fitting: ambiguous.
        let ed2 = TestSigner::ed25519("ed2");
        let jwks2 = jwks_of(&[&k.ed, &ed2]);
        assert_eq!(
            verify(&t, &jwks2, &expect()),
            Err(JwtError::AmbiguousKey { kid: None })
        );
        // No kid and no key fitting.
        let jwks3 = jwks_of(&[&k.es256]);
        assert_eq!(
            verify(&t, &jwks3, &expect()),
            Err(JwtError::UnknownKey { kid: None })
        );
        // Two keys under one kid.
        let twin = TestSigner::ed25519("ed");
        let jwks4 = jwks_of(&[&k.ed, &twin]);
        assert_eq!(
            verify(&k.ed.sign(&claims()), &jwks4, &expect()),
            Err(JwtError::AmbiguousKey {
                kid: Some("ed".into())
            })
        );
        // A kid never falls back to a key without one.
        let anon = Jwks::parse(
            json!({"keys": [without(k.ed.jwk(), "kid")]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            verify(&k.ed.sign(&claims()), &anon, &expect()),
            Err(JwtError::UnknownKey {
                kid: Some("ed".into())
            })
        );
        assert!(verify(&t, &anon, &expect()).is_ok());
    }

    #[test]
    fn expiry_and_leeway() {
        let s = &keys().ed;
        // Past beyond leeway.
        let c = with(claims(), "exp", (NOW - 31).into());
        assert_eq!(ok(s, &c), Err(JwtError::Expired));
        // exp == now - leeway: "on or after" is expired.
        let c = with(claims(), "exp", (NOW - 30).into());
        assert_eq!(ok(s, &c), Err(JwtError::Expired));
        // Within leeway.
        let c = with(claims(), "exp", (NOW - 29).into());
        assert!(ok(s, &c).is_ok());
        // Missing.
        assert_eq!(
            ok(s, &without(claims(), "exp")),
            Err(JwtError::MissingExpiry)
        );
        let c = with(claims(), "exp", Value::Null);
        assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { claim, .. }) if claim == "exp"));
        let c = with(claims(), "exp", "2030-01-01".into());
        assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { claim, .. }) if claim == "exp"));
        // Fractional: rounded down.
        let c = with(claims(), "exp", json!((NOW - 29) as f64 + 0.9));
        assert_eq!(ok(s, &c).unwrap().expires_at, NOW - 29);
        let c = with(claims(), "exp", json!(1e300));
        assert!(matches!(ok(s, &c), Err(JwtError::BadClaim { .. })));
        // Huge integer exp does not overflow.
        let c = with(claims(), "exp", i64::MAX.into());
        assert!(ok(s, &c).is_ok());
        // Negative leeway is no leeway.
        let strict = Expectations {
            leeway: -1000,
            ..expect()
        };
        let c = with(claims(), "exp", (NOW + 1).into());
        assert!(verify(&s.sign(&c), &jwks_of(&[s]), &strict).is_ok());
        let c = with(claims(), "exp", NOW.into());
        assert_eq!(
            verify(&s.sign(&c), &jwks_of(&[s]), &strict),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn not_before_and_issued_at() {
        let s = &keys().ed;
        let c = with(claims(), "nbf", (NOW + 31).into());
        assert_eq!(ok(s, &c), Err(JwtError::NotYetValid));
        let c = with(claims(), "nbf", (NOW + 30).into());
        assert_eq!(ok(s, &c).unwrap().not_before, Some(NOW + 30));
        let c = with(claims(), "iat", (NOW + 31).into());
        assert_eq!(ok(s, &c), Err(JwtError::IssuedInFuture));
        let c = with(claims(), "iat", (NOW + 30).into());
        assert!(ok(s, &c).is_ok());
        // Fractional iat is rounded up, towards refusal.
        let c = with(claims(), "iat", json!((NOW + 30) as f64 + 0.1));
        assert_eq!(ok(s, &c), Err(JwtError::IssuedInFuture));
        assert!(ok(s, &without(claims(), "iat")).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        let s = &keys().ed;
        for iss in [
            json!("https://sso.example.com/"),
            json!("https://SSO.example.com"),
            json!("https://evil.example.com"),
            json!(["https://sso.example.com"]),
            json!(""),
            Value::Null,
        ] {
            assert_eq!(
                ok(s, &with(claims(), "iss", iss.clone())),
                Err(JwtError::WrongIssuer),
                "{iss}"
            );
        }
        assert_eq!(ok(s, &without(claims(), "iss")), Err(JwtError::WrongIssuer));
        let empty = Expectations {
            issuer: "",
            ..expect()
        };
        let c = with(claims(), "iss", "".into());
        assert_eq!(
            verify(&s.sign(&c), &jwks_of(&[s]), &empty),
            Err(JwtError::WrongIssuer)
        );
    }

    #[test]
    fn audience_string_or_array() {
        let s = &keys().ed;
        assert_eq!(
            ok(s, &with(claims(), "aud", json!("app")))
                .unwrap()
                .audiences,
            ["app"]
        );
        let c = ok(s, &with(claims(), "aud", json!(["other", "app"]))).unwrap();
        assert_eq!(c.audiences, ["other", "app"]);
        for aud in [json!("other"), json!(["other"]), json!([]), json!("APP")] {
            assert_eq!(
                ok(s, &with(claims(), "aud", aud.clone())),
                Err(JwtError::WrongAudience),
                "{aud}"
            );
        }
        assert_eq!(
            ok(s, &without(claims(), "aud")),
            Err(JwtError::WrongAudience)
        );
        for aud in [json!(["app", 1]), json!(7), json!({"app": true})] {
            assert!(
                matches!(ok(s, &with(claims(), "aud", aud.clone())), Err(JwtError::BadClaim { claim, .. }) if claim == "aud"),
                "{aud}"
            );
        }
        // Empty expected audiences: not checked.
        let any = Expectations {
            audiences: &[],
            ..expect()
        };
        let c = without(claims(), "aud");
        assert!(verify(&s.sign(&c), &jwks_of(&[s]), &any).is_ok());
    }

    #[test]
    fn subject_is_required() {
        let s = &keys().ed;
        assert_eq!(
            ok(s, &without(claims(), "sub")),
            Err(JwtError::MissingSubject)
        );
        assert_eq!(
            ok(s, &with(claims(), "sub", "".into())),
            Err(JwtError::MissingSubject)
        );
        assert!(matches!(
            ok(s, &with(claims(), "sub", 42.into())),
            Err(JwtError::BadClaim { claim, .. }) if claim == "sub"
        ));
    }

    #[test]
    fn header_checks() {
        let s = &keys().ed;
        let jwks = jwks_of(&[s]);
        let sign = |h: Value| verify(&s.sign_with_header(&h, &claims()), &jwks, &expect());
        assert_eq!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"], "exp": 1})),
            Err(JwtError::CriticalHeader)
        );
        assert_eq!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "crit": []})),
            Err(JwtError::CriticalHeader)
        );
        // b64: false only means something under crit (RFC 7797 §6).
        assert_eq!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "b64": false, "crit": ["b64"]})),
            Err(JwtError::CriticalHeader)
        );
        for typ in ["JWT", "jwt", "application/jwt", "Application/JWT"] {
            assert!(
                sign(json!({"alg": "EdDSA", "kid": "ed", "typ": typ})).is_ok(),
                "{typ}"
            );
        }
        for typ in ["at+jwt", "application/at+jwt", "logout+jwt", "JOSE", ""] {
            assert_eq!(
                sign(json!({"alg": "EdDSA", "kid": "ed", "typ": typ})),
                Err(JwtError::WrongType),
                "{typ}"
            );
        }
        assert!(matches!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "typ": 1})),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            sign(json!({"alg": "EdDSA", "kid": "ed", "cty": "JWT"})),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            sign(json!({"kid": "ed"})),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            sign(json!({"alg": ["EdDSA"], "kid": "ed"})),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            sign(json!({"alg": "EdDSA", "kid": 7})),
            Err(JwtError::Malformed(_))
        ));
        // Duplicate header parameters: refused, whichever would win.
        let t = s.sign_bytes(
            br#"{"alg":"EdDSA","kid":"ed","alg":"EdDSA"}"#,
            claims().to_string().as_bytes(),
        );
        assert!(matches!(
            verify(&t, &jwks, &expect()),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn embedded_keys_and_key_urls_are_ignored() {
        let k = keys();
        let jwks = jwks_of(&[&k.ed]);
        // An attacker's own key, offered every way a header can.
        let attacker = TestSigner::ed25519("ed");
        let header = json!({
            "alg": "EdDSA",
            "kid": "ed",
            "jku": "https://evil.example/jwks.json",
            "x5u": "https://evil.example/cert.pem",
            "jwk": attacker.jwk(),
            "x5c": ["MIIB"],
        });
        assert_eq!(
            verify(
                &attacker.sign_with_header(&header, &claims()),
                &jwks,
                &expect()
            ),
            Err(JwtError::BadSignature)
        );
        // The same header on a token our key signed: still verifies.
        assert!(verify(&k.ed.sign_with_header(&header, &claims()), &jwks, &expect()).is_ok());
    }

    #[test]
    fn shape_is_strict() {
        let s = &keys().ed;
        let jwks = jwks_of(&[s]);
        let token = s.sign(&claims());
        assert!(verify(&token, &jwks, &expect()).is_ok());
        let [h, p, sig] = split(&token).unwrap();
        // '=' padding in the header or signature segment. (In the payload
        // it breaks the signature first: the signing input is the text.)
        for t in [format!("{h}=.{p}.{sig}"), format!("{h}.{p}.{sig}==")] {
            assert!(
                matches!(verify(&t, &jwks, &expect()), Err(JwtError::Malformed(_))),
                "{t}"
            );
        }
        assert_eq!(
            verify(&format!("{h}.{p}=.{sig}"), &jwks, &expect()),
            Err(JwtError::BadSignature)
        );
        // Correctly padded segments, validly signed: still refused.
        let padded = base64::engine::general_purpose::URL_SAFE;
        let mut payload = claims().to_string();
        while payload.len().is_multiple_of(3) {
            payload.push(' ');
        }
        let padded_h = padded.encode(r#"{"alg":"EdDSA","kid":"ed"}"#);
        assert!(padded_h.ends_with('='));
        for input in [
            format!("{h}.{}", padded.encode(&payload)),
            format!("{padded_h}.{p}"),
        ] {
            assert!(input.ends_with('=') || input.contains("=."));
            let t = format!("{input}.{}", B64URL.encode(s.signature(input.as_bytes())));
            assert!(
                matches!(verify(&t, &jwks, &expect()), Err(JwtError::Malformed(_))),
                "{t}"
            );
        }
        let padded_sig = padded.encode(s.signature(format!("{h}.{p}").as_bytes()));
        assert!(padded_sig.ends_with('='));
        assert!(matches!(
            verify(&format!("{h}.{p}.{padded_sig}"), &jwks, &expect()),
            Err(JwtError::Malformed(_))
        ));
        // The standard alphabet ('+', '/'), validly signed: refused.
        let std_h = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(r#"{"alg":"EdDSA","kid":"ed","x":"???>>>"}"#);
        assert!(std_h.contains('+') && std_h.contains('/'));
        let input = format!("{std_h}.{p}");
        let t = format!("{input}.{}", B64URL.encode(s.signature(input.as_bytes())));
        assert!(matches!(
            verify(&t, &jwks, &expect()),
            Err(JwtError::Malformed(_))
        ));
        // Whitespace, extra or missing dots, JWE.
        for t in [
            format!("{h}.{p}.{sig}."),
            format!("{h}.{p}"),
            format!("{h}..{p}.{sig}"),
            format!(".{h}.{p}.{sig}"),
            format!("{h}.{p}.{sig}.x.y"),
            format!(" {token}"),
            format!("{token}\n"),
            String::new(),
            "...".to_owned(),
        ] {
            let r = verify(&t, &jwks, &expect());
            assert!(matches!(r, Err(JwtError::Malformed(_))), "{t:?}: {r:?}");
        }
        // Payloads that verify but are not JSON objects.
        for payload in [&b"[]"[..], b"null", b"\"x\"", b"{", b"{} {}", b"\xff"] {
            let t = s.sign_bytes(s.header().to_string().as_bytes(), payload);
            assert!(matches!(
                verify(&t, &jwks, &expect()),
                Err(JwtError::Malformed(_))
            ));
        }
        // Duplicate claims.
        let t = s.sign_bytes(
            s.header().to_string().as_bytes(),
            format!(
                r#"{{"iss":"{ISS}","aud":"app","exp":{},"sub":"alice","sub":"admin"}}"#,
                NOW + 60
            )
            .as_bytes(),
        );
        assert_eq!(
            verify(&t, &jwks, &expect()),
            Err(JwtError::Malformed("the claims repeat a name"))
        );
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let s = &keys().ed;
        let jwks = jwks_of(&[s]);
        let big = with(claims(), "pad", "x".repeat(10_000).into());
        let t = s.sign(&big);
        assert_eq!(verify(&t, &jwks, &expect()), Err(JwtError::TooLong));
        let roomy = Expectations {
            max_token_bytes: 20_000,
            ..expect()
        };
        assert!(verify(&t, &jwks, &roomy).is_ok());
        let exact = Expectations {
            max_token_bytes: t.len(),
            ..expect()
        };
        assert!(verify(&t, &jwks, &exact).is_ok());
    }

    #[test]
    fn jwks_with_a_private_key_is_refused() {
        let s = &keys().ed;
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let mut private = s.jwk();
            private
                .as_object_mut()
                .unwrap()
                .insert(member.to_owned(), "AAAA".into());
            let doc = json!({"keys": [keys().es256.jwk(), private]}).to_string();
            assert_eq!(
                Jwks::parse(doc.as_bytes()).unwrap_err(),
                JwksError::PrivateKey {
                    kid: Some("ed".into())
                },
                "{member}"
            );
        }
        // Even for a key type we do not know.
        let doc = json!({"keys": [keys().ed.jwk(), {"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
        assert_eq!(
            Jwks::parse(doc.as_bytes()).unwrap_err(),
            JwksError::PrivateKey { kid: None }
        );
        assert!(
            JwksError::PrivateKey { kid: None }
                .to_string()
                .contains("private key")
        );
    }

    #[test]
    fn jwks_skips_keys_it_cannot_use() {
        let k = keys();
        let ed = k.ed.jwk();
        let skipped = [
            json!({"kty": "foo", "kid": "a"}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "b"}),
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
            with(k.es256.jwk(), "use", "enc".into()),
            with(k.es256.jwk(), "key_ops", json!(["encrypt"])),
            with(k.es256.jwk(), "alg", "ES512".into()),
            with(k.es256.jwk(), "alg", "HS256".into()),
            with(k.es256.jwk(), "alg", "none".into()),
            with(k.es256.jwk(), "alg", "RS256".into()),
            with(k.es256.jwk(), "kid", 5.into()),
            with(k.es256.jwk(), "x", "!!!".into()),
            with(k.es256.jwk(), "x", B64URL.encode([1u8; 31]).into()),
            // A point off the curve.
            with(k.es256.jwk(), "y", B64URL.encode([7u8; 32]).into()),
            with(ed.clone(), "x", B64URL.encode([1u8; 33]).into()),
            // A 1024-bit RSA modulus.
            with(k.rsa.jwk(), "n", B64URL.encode([0xc3u8; 128]).into()),
            // An all-zero modulus (found by fuzzing: it underflowed).
            with(k.rsa.jwk(), "n", "AAA".into()),
            with(k.rsa.jwk(), "n", "".into()),
            without(k.rsa.jwk(), "e"),
            json!("not an object"),
        ];
        let mut all = vec![ed];
        all.extend(skipped.iter().cloned());
        let jwks = Jwks::parse(json!({ "keys": all }).to_string().as_bytes()).unwrap();
        assert_eq!(jwks.len(), 1);
        assert_eq!(jwks.skipped().len(), skipped.len());
        assert!(jwks.skipped().iter().all(|s| !s.reason.is_empty()));
        assert!(verify(&k.ed.sign(&claims()), &jwks, &expect()).is_ok());
        // key_ops with verify, padded members, leading zero octets: fine.
        let mut rsa = k.rsa.jwk();
        let n = B64URL_JWK.decode(rsa["n"].as_str().unwrap()).unwrap();
        let mut n0 = vec![0u8];
        n0.extend(n);
        rsa["n"] = base64::engine::general_purpose::URL_SAFE.encode(n0).into();
        rsa["key_ops"] = json!(["verify"]);
        let jwks = Jwks::parse(json!({ "keys": [rsa] }).to_string().as_bytes()).unwrap();
        assert!(verify(&k.rsa.sign(&claims()), &jwks, &expect()).is_ok());
    }

    #[test]
    fn jwks_malformed_and_empty() {
        for doc in [
            &b""[..],
            b"[]",
            b"{}",
            b"{\"keys\": {}}",
            b"not json",
            b"{\"keys\": []} x",
        ] {
            assert!(
                matches!(Jwks::parse(doc), Err(JwksError::Malformed(_))),
                "{doc:?}"
            );
        }
        assert_eq!(
            Jwks::parse(b"{\"keys\": []}").unwrap_err(),
            JwksError::Empty
        );
        assert_eq!(
            Jwks::parse(br#"{"keys": [{"kty": "oct-ish"}]}"#).unwrap_err(),
            JwksError::Empty
        );
    }

    #[test]
    fn errors_read_as_short_sentences_without_the_token() {
        let s = &keys().ed;
        let jwks = jwks_of(&[s]);
        let token = s.with_kid("secret-kid").sign(&claims());
        let e = verify(&token, &jwks, &expect()).unwrap_err();
        assert!(!e.to_string().contains("secret-kid"));
        assert_eq!(
            e.to_string(),
            "no key in the JWK Set matches the assertion's key id"
        );
        assert_eq!(
            JwtError::UnsupportedAlgorithm(sanitize("HS256\n\u{1b}[31m")).to_string(),
            r#"the assertion's algorithm "HS256??[31m" is not supported"#
        );
        assert_eq!(sanitize(&"x".repeat(100)).len(), 32);
        let b: Box<dyn std::error::Error> = Box::new(JwtError::Expired);
        assert_eq!(b.to_string(), "the assertion has expired");
        let b: Box<dyn std::error::Error> = Box::new(JwksError::Empty);
        assert_eq!(b.to_string(), "the JWK Set has no usable signing key");
    }

    fn identity(c: Value, mapping: &ClaimMapping) -> Result<Identity, JwtError> {
        let claims = ok(&keys().ed, &c).unwrap();
        identity_from_claims(&claims, mapping, "jwt", 64, 128)
    }

    #[test]
    fn presets_map_their_claims() {
        let id = identity(claims(), &ClaimMapping::oidc()).unwrap();
        assert_eq!(id.source, "jwt");
        assert_eq!(id.subject, "u-123");
        assert_eq!(id.username, "alice");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.display_name.as_deref(), Some("Alice Liddell"));
        assert_eq!(id.groups, ["admins", "users"]);

        // Pomerium: sub and user are the id, no login name.
        let pomerium = json!({
            "iss": ISS, "aud": "app", "exp": NOW + 300, "iat": NOW,
            "jti": "5f0b", "sid": "s1",
            "sub": "google-oauth2|1234", "user": "google-oauth2|1234",
            "email": "bob@example.com", "name": "Bob, Jr.",
            "groups": ["00gid1", "engineering"],
        });
        let id = identity(pomerium.clone(), &ClaimMapping::pomerium()).unwrap();
        assert_eq!(id.subject, "google-oauth2|1234");
        assert_eq!(id.username, "bob@example.com");
        assert_eq!(id.display_name.as_deref(), Some("Bob, Jr."));
        assert_eq!(id.groups, ["00gid1", "engineering"]);
        // Pomerium used to send `groups: null`.
        let id = identity(
            with(pomerium, "groups", Value::Null),
            &ClaimMapping::pomerium(),
        )
        .unwrap();
        assert!(id.groups.is_empty());

        // Cloudflare Access.
        let cf = json!({
            "iss": ISS, "aud": ["app"], "exp": NOW + 300, "iat": NOW, "nbf": NOW,
            "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
            "email": "carol@example.com", "type": "app",
            "identity_nonce": "6ei69kawdKzMIAPF", "country": "US",
        });
        let id = identity(cf, &ClaimMapping::cloudflare()).unwrap();
        assert_eq!(id.username, "carol@example.com");
        assert_eq!(id.email.as_deref(), Some("carol@example.com"));
        assert!(id.groups.is_empty());

        // authentik.
        let ak = json!({
            "iss": ISS, "aud": "app", "exp": NOW + 300, "iat": NOW,
            "sub": "900347b8a29876b45ca6f757", "email": "dave@example.com",
            "name": "Dave Example", "given_name": "Dave Example",
            "preferred_username": "dave", "nickname": "dave",
            "groups": ["authentik Admins"],
        });
        let id = identity(ak, &ClaimMapping::authentik()).unwrap();
        assert_eq!(id.username, "dave");
        assert_eq!(id.given_name, None);
        assert_eq!(id.groups, ["authentik Admins"]);

        for name in ClaimMapping::PRESETS {
            assert!(ClaimMapping::preset(name).is_some(), "{name}");
        }
        assert_eq!(
            ClaimMapping::preset("authentik"),
            Some(ClaimMapping::authentik())
        );
        assert_eq!(ClaimMapping::preset("nope"), None);
    }

    #[test]
    fn username_falls_back_to_email_then_subject() {
        let m = ClaimMapping::oidc();
        let c = without(claims(), "preferred_username");
        assert_eq!(
            identity(c.clone(), &m).unwrap().username,
            "alice@example.com"
        );
        let c = without(c, "email");
        assert_eq!(identity(c, &m).unwrap().username, "u-123");
        // Empty or null counts as absent; the first present candidate wins.
        let c = with(claims(), "preferred_username", "".into());
        assert_eq!(identity(c, &m).unwrap().username, "alice@example.com");
        let m2 = ClaimMapping {
            username: vec!["login".into(), "preferred_username".into()],
            ..ClaimMapping::oidc()
        };
        assert_eq!(identity(claims(), &m2).unwrap().username, "alice");
        let c = with(claims(), "login", "al".into());
        assert_eq!(identity(c, &m2).unwrap().username, "al");
        let c = with(claims(), "login", Value::Null);
        assert_eq!(identity(c, &m2).unwrap().username, "alice");
    }

    #[test]
    fn identity_values_follow_the_header_rules() {
        let m = ClaimMapping::oidc();
        for (claim, bad) in [
            ("preferred_username", "ali\nce"),
            ("preferred_username", "alice\u{0}"),
            ("email", "a\u{85}@example.com"),
            ("name", "Alice\r\nX-Admin: 1"),
            ("given_name", "\u{7f}"),
        ] {
            assert!(
                matches!(
                    identity(with(claims(), claim, bad.into()), &m),
                    Err(JwtError::BadValue { claim: c, reason: ValueError::ControlCharacter }) if c == claim
                ),
                "{claim}: {bad:?}"
            );
        }
        // Too long (64 here).
        let long = "a".repeat(65);
        assert!(matches!(
            identity(with(claims(), "preferred_username", long.into()), &m),
            Err(JwtError::BadValue {
                reason: ValueError::TooLong { max: 64 },
                ..
            })
        ));
        // Not strings.
        assert!(matches!(
            identity(with(claims(), "email", json!(["a@b"])), &m),
            Err(JwtError::BadClaim { claim, .. }) if claim == "email"
        ));
        // Keys refuse surrounding whitespace; names are trimmed.
        for claim in ["preferred_username", "email"] {
            assert!(matches!(
                identity(with(claims(), claim, " admin".into()), &m),
                Err(JwtError::BadClaim { .. })
            ));
        }
        let id = identity(with(claims(), "name", "  Alice  ".into()), &m).unwrap();
        assert_eq!(id.display_name.as_deref(), Some("Alice"));
        // Encoded-looking values stay literal.
        let id = identity(
            with(claims(), "preferred_username", "=?utf-8?q?admin?=".into()),
            &m,
        )
        .unwrap();
        assert_eq!(id.username, "=?utf-8?q?admin?=");
        // A subject claim that is absent under a custom mapping.
        let custom = ClaimMapping {
            subject: "uid".into(),
            ..ClaimMapping::oidc()
        };
        assert_eq!(identity(claims(), &custom), Err(JwtError::MissingSubject));
        let id = identity(with(claims(), "uid", "42".into()), &custom).unwrap();
        assert_eq!(id.subject, "42");
    }

    #[test]
    fn groups_are_validated() {
        let m = ClaimMapping::oidc();
        for g in [json!(["users,admins"]), json!(["a;b"]), json!("x|y")] {
            assert!(
                matches!(
                    identity(with(claims(), "groups", g.clone()), &m),
                    Err(JwtError::BadGroups { .. })
                ),
                "{g}"
            );
        }
        assert!(matches!(
            identity(with(claims(), "groups", json!([" admins"])), &m),
            Err(JwtError::BadGroups { .. })
        ));
        assert!(matches!(
            identity(with(claims(), "groups", json!(["ad\u{0}mins"])), &m),
            Err(JwtError::BadValue { .. })
        ));
        assert!(matches!(
            identity(with(claims(), "groups", json!(["a", 1])), &m),
            Err(JwtError::BadClaim { .. })
        ));
        assert!(matches!(
            identity(with(claims(), "groups", json!({"a": 1})), &m),
            Err(JwtError::BadClaim { .. })
        ));
        // A single string is one group; empty names skipped; duplicates merged.
        let id = identity(with(claims(), "groups", json!("solo")), &m).unwrap();
        assert_eq!(id.groups, ["solo"]);
        let id = identity(with(claims(), "groups", json!(["a", "", "b", "a"])), &m).unwrap();
        assert_eq!(id.groups, ["a", "b"]);
        // The bound (128 here) is on the joined list.
        let fits: Vec<String> = (0..32).map(|i| format!("g{i:02}")).collect();
        assert_eq!(fits.join(",").len(), 127);
        assert!(identity(with(claims(), "groups", json!(fits)), &m).is_ok());
        let too_many: Vec<String> = (0..33).map(|i| format!("g{i:02}")).collect();
        assert!(matches!(
            identity(with(claims(), "groups", json!(too_many)), &m),
            Err(JwtError::BadGroups { .. })
        ));
    }

    #[test]
    fn testing_signers_are_deterministic_when_seeded() {
        let a = TestSigner::ed25519_from_seed("a", &[7; 32]);
        let b = TestSigner::ed25519_from_seed("a", &[7; 32]);
        assert_eq!(a.jwk(), b.jwk());
        let a = TestSigner::es256_from_seed("e", &[9; 32]);
        let b = TestSigner::es256_from_seed("e", &[9; 32]);
        assert_eq!(a.jwk(), b.jwk());
        let jwks = jwks_of(&[&a]);
        assert!(verify(&b.sign(&claims()), &jwks, &expect()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn verify_never_panics(s in "\\PC{0,300}") {
            let jwks = jwks_of(&[&keys().ed, &keys().es256]);
            prop_assert!(verify(&s, &jwks, &expect()).is_err());
        }

        #[test]
        fn verify_never_panics_on_token_shaped_input(
            h in "[A-Za-z0-9_=-]{0,60}", p in "[A-Za-z0-9_=-]{0,60}", sig in "[A-Za-z0-9_=-]{0,90}",
        ) {
            let jwks = jwks_of(&[&keys().ed]);
            let t = format!("{h}.{p}.{sig}");
            prop_assert!(verify(&t, &jwks, &expect()).is_err());
        }

        #[test]
        fn jwks_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Jwks::parse(&b);
        }

        #[test]
        fn any_single_byte_change_breaks_a_valid_token(
            pos in any::<prop::sample::Index>(), byte in any::<u8>(), which in 0usize..2,
        ) {
            let s = if which == 0 { &keys().ed } else { &keys().es256 };
            let jwks = jwks_of(&[s]);
            let token = s.sign(&claims());
            prop_assert!(verify(&token, &jwks, &expect()).is_ok());
            let mut bytes = token.clone().into_bytes();
            let i = pos.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(verify(&changed, &jwks, &expect()).is_err(), "{changed}");
            }
        }

        #[test]
        fn identities_are_clean_and_bounded(
            // Printable text and control characters (C0, DEL, NEL), which
            // must never come out.
            username in "[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,80}",
            name in "[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,80}",
            groups in proptest::collection::vec("[\\PC\\x00-\\x1F\\x7F\\x{85}]{0,20}", 0..10),
        ) {
            let c = with(with(with(claims(), "preferred_username", username.into()), "name", name.into()), "groups", json!(groups));
            let claims = ok(&keys().ed, &c).unwrap();
            for name in ClaimMapping::PRESETS {
                let m = ClaimMapping::preset(name).unwrap();
                if let Ok(id) = identity_from_claims(&claims, &m, "jwt", 64, 128) {
                    for v in [&id.subject, &id.username].into_iter().chain(id.email.iter()).chain(id.display_name.iter()) {
                        prop_assert!(!v.chars().any(char::is_control));
                        prop_assert!(!v.is_empty() && v.len() <= 64);
                    }
                    let joined = id.groups.join(",");
                    prop_assert!(joined.len() <= 128);
                    for g in &id.groups {
                        prop_assert!(!g.is_empty() && !g.contains([',', ';', '|']));
                        prop_assert!(!g.chars().any(char::is_control));
                    }
                }
            }
        }
    }
}
