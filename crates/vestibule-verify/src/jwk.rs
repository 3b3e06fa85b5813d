//! JWK Sets (RFC 7517 §5): the gateway's public keys.

use std::collections::HashSet;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::jws::Algorithm;
use crate::{B64URL, Error};

/// Members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037
/// §2): a set holding one was published by mistake and is refused whole.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The largest RSA modulus accepted (aws-lc-rs refuses below 2048 bits).
const MAX_RSA_BYTES: usize = 1024;

/// A public key that can verify one family of signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    /// An uncompressed P-256 point, `0x04 || x || y` (SEC1 §2.3.3).
    P256(Vec<u8>),
    /// A raw Ed25519 public key (RFC 8037 §2).
    Ed25519(Vec<u8>),
    /// RSA modulus and exponent, big-endian (RFC 7518 §6.3.1).
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One usable key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) kid: String,
    /// The JWK's own `alg`, when it has one: the only algorithm it verifies.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) material: KeyMaterial,
}

impl Key {
    /// Whether this key may verify `alg` (RFC 8725 §3.1: the algorithm
    /// must fit the key, not just be allowed).
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        let family = matches!(
            (&self.material, alg),
            (KeyMaterial::P256(_), Algorithm::ES256)
                | (KeyMaterial::Ed25519(_), Algorithm::EdDSA)
                | (KeyMaterial::Rsa { .. }, Algorithm::RS256)
        );
        family && self.alg.is_none_or(|own| own == alg)
    }
}

/// A parsed JWK Set: the keys this crate can use, by `kid`.
///
/// Keys of a type this crate does not verify (another curve, `use: enc`,
/// an `alg` outside ES256/EdDSA/RS256) are skipped, not refused, so the
/// gateway can publish them; keys without a `kid` are skipped too, since
/// an assertion always names its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Key>,
}

/// The JWK members this crate reads; the rest are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwks {
    /// Parses a JWK Set document (`{"keys": [...]}`).
    ///
    /// # Errors
    /// [`Error::InvalidKeySet`] when it is not a JSON object with a `keys`
    /// array, a key holds a private member, two usable keys share a `kid`,
    /// or a key of a supported type is malformed.
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|_| Error::InvalidKeySet("not JSON"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(Error::InvalidKeySet("no keys array"))?;
        let mut keys = Vec::with_capacity(list.len());
        let mut kids = HashSet::new();
        for entry in list {
            let object = entry
                .as_object()
                .ok_or(Error::InvalidKeySet("a key is not an object"))?;
            if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m)) {
                return Err(Error::InvalidKeySet("a key has a private member"));
            }
            let raw: RawJwk = serde_json::from_value(entry.clone())
                .map_err(|_| Error::InvalidKeySet("a key's members have the wrong types"))?;
            let Some(key) = usable(raw)? else { continue };
            if !kids.insert(key.kid.clone()) {
                return Err(Error::InvalidKeySet("two keys share a kid"));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.find(kid).is_some()
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The key `raw` describes, or `None` when this crate cannot use it.
fn usable(raw: RawJwk) -> Result<Option<Key>, Error> {
    let Some(kid) = raw.kid else { return Ok(None) };
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(a) => match Algorithm::parse(a) {
            Some(alg) => Some(alg),
            None => return Ok(None),
        },
    };
    let field = |v: Option<String>| -> Result<Vec<u8>, Error> {
        let s = v.ok_or(Error::InvalidKeySet("a key lacks a member"))?;
        B64URL
            .decode(s)
            .map_err(|_| Error::InvalidKeySet("a key member is not base64url"))
    };
    let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
        // RFC 7518 §6.2.1: x and y are the full 32-byte coordinates.
        ("EC", Some("P-256")) => {
            let (x, y) = (field(raw.x)?, field(raw.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(Error::InvalidKeySet("a P-256 coordinate is not 32 bytes"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::P256(point)
        }
        // RFC 8037 §2.
        ("OKP", Some("Ed25519")) => {
            let x = field(raw.x)?;
            if x.len() != 32 {
                return Err(Error::InvalidKeySet("an Ed25519 key is not 32 bytes"));
            }
            KeyMaterial::Ed25519(x)
        }
        ("RSA", _) => {
            let (n, e) = (field(raw.n)?, field(raw.e)?);
            if n.is_empty() || n.len() > MAX_RSA_BYTES || e.is_empty() || e.len() > 8 {
                return Err(Error::InvalidKeySet("an RSA key has a bad size"));
            }
            KeyMaterial::Rsa { n, e }
        }
        _ => return Ok(None),
    };
    let key = Key { kid, alg, material };
    // A JWK whose own `alg` does not fit its type could never verify
    // anything: skip it rather than keep a key that only confuses.
    if alg.is_some_and(|a| !key.fits(a)) {
        return Ok(None);
    }
    Ok(Some(key))
}
