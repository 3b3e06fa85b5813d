//! JWK and JWK Set (RFC 7517): parsing an issuer's set into verifying
//! keys, publishing our own public keys, and RFC 7638 thumbprints.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde_json::Value;

use crate::B64URL;
use crate::algorithm::{Algorithm, Family};

/// JWK members are base64url too (RFC 7518 §6); the JWKS comes from the
/// operator's issuer, so padding is tolerated there.
const B64URL_JWK: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// JWK members that only a private (or symmetric) key has: RSA's (RFC 7518
/// §6.3.2), EC's and OKP's `d` (§6.2.2, RFC 8037 §2), the symmetric `k`
/// (§6.4), and `priv` (the AKP key type of the ML-DSA drafts).
pub(crate) const PRIVATE_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

/// Smallest and largest RSA modulus, in bits (RFC 7518 §3.3: "a key of size
/// 2048 bits or larger MUST be used"; aws-lc-rs's parameters stop at 8192).
pub(crate) const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

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
    pub(crate) keys: Vec<VerifyingKey>,
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

/// One usable public key, parsed once for each algorithm it may verify.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    /// The JWK `alg`, when present: the only algorithm the key verifies.
    alg: Option<Algorithm>,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<&str> = self.verifiers.iter().map(|(a, _)| a.as_str()).collect();
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("verifies", &algs)
            .finish()
    }
}

impl VerifyingKey {
    /// The parsed key for `alg`, if this key may verify it.
    pub(crate) fn verifier(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
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
pub(crate) fn parse_jwk(key: &Value) -> Result<VerifyingKey, &'static str> {
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
            // RFC 7518 §6.3.1.1: n is unsigned big-endian; leading zero
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
    Ok(VerifyingKey {
        kid,
        alg,
        verifiers,
    })
}

pub(crate) fn strip_leading_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

/// The public half of one of our signing keys, as a JWK (RFC 7517 §4) to
/// publish: `kty`, the key members, `kid`, `use: sig` and the one `alg` the
/// key signs with. There is no field for a private member, so none can be
/// serialised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    kid: String,
    #[serde(rename = "use")]
    use_: &'static str,
    #[serde(serialize_with = "alg_name")]
    alg: Algorithm,
}

fn alg_name<S: serde::Serializer>(alg: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(alg.as_str())
}

impl PublicJwk {
    /// An RSA key (RFC 7518 §6.3.1) from its big-endian modulus and
    /// exponent; the `kid` is its thumbprint.
    pub(crate) fn rsa(alg: Algorithm, n: &[u8], e: &[u8]) -> Self {
        let mut jwk = Self::bare("RSA", None, alg);
        jwk.n = Some(B64URL.encode(strip_leading_zeros(n)));
        jwk.e = Some(B64URL.encode(strip_leading_zeros(e)));
        jwk.with_thumbprint_kid()
    }

    /// An EC key (RFC 7518 §6.2.1) from its uncompressed point.
    pub(crate) fn ec(alg: Algorithm, crv: &'static str, point: &[u8]) -> Option<Self> {
        let coordinates = point.strip_prefix(&[0x04])?;
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        let mut jwk = Self::bare("EC", Some(crv), alg);
        jwk.x = Some(B64URL.encode(x));
        jwk.y = Some(B64URL.encode(y));
        Some(jwk.with_thumbprint_kid())
    }

    /// An Ed25519 key (RFC 8037 §2) from its 32 bytes.
    pub(crate) fn ed25519(public: &[u8]) -> Self {
        let mut jwk = Self::bare("OKP", Some("Ed25519"), Algorithm::EdDSA);
        jwk.x = Some(B64URL.encode(public));
        jwk.with_thumbprint_kid()
    }

    fn bare(kty: &'static str, crv: Option<&'static str>, alg: Algorithm) -> Self {
        Self {
            kty,
            crv,
            n: None,
            e: None,
            x: None,
            y: None,
            kid: String::new(),
            use_: "sig",
            alg,
        }
    }

    fn with_thumbprint_kid(mut self) -> Self {
        self.kid = thumbprint_of(self.kty, self.crv, &self.n, &self.e, &self.x, &self.y);
        self
    }

    /// The key id: the RFC 7638 thumbprint of the key, so two different
    /// keys never share one and a rotated key never reuses one.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm the key is used with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The JWK as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The key as [`Jwks::parse`] would read it.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, &'static str> {
        parse_jwk(&self.to_json())
    }
}

/// A JWK Set (RFC 7517 §5) of our public keys, to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicJwks {
    keys: Vec<PublicJwk>,
}

impl PublicJwks {
    pub(crate) fn new(keys: Vec<PublicJwk>) -> Self {
        Self { keys }
    }

    /// Several sets published as one, in the order given (each set's own
    /// order kept): one document for keys of several algorithms.
    pub fn merged(sets: impl IntoIterator<Item = PublicJwks>) -> Self {
        Self {
            keys: sets.into_iter().flat_map(|s| s.keys).collect(),
        }
    }

    /// The keys, in publishing order.
    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// The JWK Set document (`application/jwk-set+json`, RFC 7517 §8.5.1).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"keys\":[]}".to_owned())
    }
}

/// The RFC 7638 thumbprint of a public JWK, base64url without padding: the
/// SHA-256 (§3.1) of a JSON object of only the key type's required members
/// (§3.2: `e`, `kty`, `n` for RSA; `crv`, `kty`, `x`, `y` for EC; and by
/// RFC 8037 §2 `crv`, `kty`, `x` for OKP), in lexicographic order, without
/// whitespace. `None` if `jwk` is not an RSA, EC or OKP key with those
/// members as strings.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str).map(str::to_owned);
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "RSA" => canonical(&[("e", &s("e")?), ("kty", "RSA"), ("n", &s("n")?)]),
        "EC" => canonical(&[
            ("crv", &s("crv")?),
            ("kty", "EC"),
            ("x", &s("x")?),
            ("y", &s("y")?),
        ]),
        "OKP" => canonical(&[("crv", &s("crv")?), ("kty", "OKP"), ("x", &s("x")?)]),
        _ => return None,
    };
    Some(B64URL.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
}

fn thumbprint_of(
    kty: &str,
    crv: Option<&str>,
    n: &Option<String>,
    e: &Option<String>,
    x: &Option<String>,
    y: &Option<String>,
) -> String {
    let mut jwk = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            jwk.insert(k.to_owned(), v.into());
        }
    };
    put("kty", Some(kty));
    put("crv", crv);
    put("n", n.as_deref());
    put("e", e.as_deref());
    put("x", x.as_deref());
    put("y", y.as_deref());
    thumbprint(&Value::Object(jwk)).unwrap_or_default()
}

/// `{"a":"…","b":"…"}` with members in the given (sorted) order and JSON
/// string escaping (RFC 7638 §3.3).
fn canonical(members: &[(&str, &str)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{}", Value::from(*v)))
        .collect();
    format!("{{{}}}", body.join(","))
}
