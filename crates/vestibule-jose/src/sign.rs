//! Our own signing keys: generation, PKCS#8 export and import, compact JWS
//! signing.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::B64URL;
use crate::algorithm::Algorithm;
use crate::jwk::{PublicJwk, RSA_BITS};

/// Why a signing key could not be made, read or used. Never shows key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// We sign only with RS256, ES256 and EdDSA.
    UnsupportedAlgorithm(Algorithm),
    /// The PKCS#8 document is not a key for the algorithm (or an RSA key
    /// outside 2048 to 8192 bits).
    Rejected(&'static str),
    /// Generating, exporting or signing failed inside aws-lc-rs.
    Crypto(&'static str),
    /// A key with this `kid` is already in the [`KeySet`](crate::KeySet).
    DuplicateKid,
    /// [`KeySet::rotate`](crate::KeySet::rotate) without a next key.
    NoNextKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedAlgorithm(alg) => {
                write!(
                    f,
                    "signing with {alg} is not supported (RS256, ES256, EdDSA are)"
                )
            }
            Self::Rejected(why) => write!(f, "the private key was rejected: {why}"),
            Self::Crypto(what) => write!(f, "{what} failed"),
            Self::DuplicateKid => f.write_str("a key with this key id is already in the set"),
            Self::NoNextKey => f.write_str("there is no next key to rotate to"),
        }
    }
}

impl std::error::Error for KeyError {}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key that signs compact JWS with exactly one algorithm: RS256
/// (2048-bit RSA), ES256 (P-256) or EdDSA (Ed25519). Its `kid` is the RFC
/// 7638 thumbprint of its public key.
///
/// `Debug` shows the `kid` and algorithm only.
pub struct SigningKey {
    alg: Algorithm,
    pair: Pair,
    public: PublicJwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid())
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The algorithms we sign with.
    pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// A fresh key for `alg`, from aws-lc-rs's random generator. RSA keys
    /// are 2048 bits (RFC 7518 §3.3's minimum; slow-ish to make).
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let pair = match alg {
            Algorithm::RS256 => Pair::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| KeyError::Crypto("RSA key generation"))?,
            ),
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Crypto("P-256 key generation"))?,
            ),
            Algorithm::EdDSA => Pair::Ed(
                Ed25519KeyPair::generate()
                    .map_err(|_| KeyError::Crypto("Ed25519 key generation"))?,
            ),
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        Self::from_pair(alg, pair)
    }

    /// Reads a PKCS#8 private key (RFC 5208 / RFC 5958 DER, as
    /// [`to_pkcs8_der`](Self::to_pkcs8_der) writes it) for `alg`.
    pub fn from_pkcs8_der(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let pair = match alg {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::Rejected("not an RSA PKCS#8 key"))?;
                if !RSA_BITS.contains(&(pair.public_modulus_len() * 8)) {
                    return Err(KeyError::Rejected("the RSA key is not 2048 to 8192 bits"));
                }
                Pair::Rsa(pair)
            }
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Rejected("not a P-256 PKCS#8 key"))?,
            ),
            // v1 (seed only) or v2 (seed and public key, checked to match).
            Algorithm::EdDSA => Pair::Ed(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::Rejected("not an Ed25519 PKCS#8 key"))?,
            ),
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        Self::from_pair(alg, pair)
    }

    fn from_pair(alg: Algorithm, pair: Pair) -> Result<Self, KeyError> {
        let public = match &pair {
            Pair::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                PublicJwk::rsa(alg, &c.n, &c.e)
            }
            Pair::Ec(k) => PublicJwk::ec(alg, "P-256", k.public_key().as_ref())
                .ok_or(KeyError::Crypto("reading the EC public key"))?,
            Pair::Ed(k) => PublicJwk::ed25519(k.public_key().as_ref()),
        };
        Ok(Self { alg, pair, public })
    }

    /// The private key as PKCS#8 DER: v1 for RSA and P-256, v2 (with the
    /// public key) for Ed25519. Secret: encrypt it before it rests anywhere.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let err = KeyError::Crypto("PKCS#8 export");
        Ok(match &self.pair {
            Pair::Rsa(k) => k.as_der().map_err(|_| err)?.as_ref().to_vec(),
            Pair::Ec(k) => k.to_pkcs8v1().map_err(|_| err)?.as_ref().to_vec(),
            Pair::Ed(k) => k.to_pkcs8().map_err(|_| err)?.as_ref().to_vec(),
        })
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK to publish.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// A compact JWS (RFC 7515 §7.1) of `payload`, under the protected
    /// header `{"alg": <ours>, "kid": <ours>, "typ": typ}` (`typ` left out
    /// when `None`).
    pub fn sign(&self, typ: Option<&str>, payload: &[u8]) -> Result<String, KeyError> {
        let mut header = Map::new();
        header.insert("alg".into(), self.alg.as_str().into());
        header.insert("kid".into(), self.kid().into());
        if let Some(typ) = typ {
            header.insert("typ".into(), typ.into());
        }
        let input = format!(
            "{}.{}",
            B64URL.encode(Value::Object(header).to_string()),
            B64URL.encode(payload)
        );
        let sig = self.signature(input.as_bytes())?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }

    /// The JWS signature of `input` (RFC 7518 §3.3, §3.4: `R || S` for
    /// ECDSA; RFC 8037 §3.1).
    fn signature(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let err = KeyError::Crypto("signing");
        Ok(match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .map_err(|_| err)?;
                sig
            }
            Pair::Ec(k) => k.sign(&rng, input).map_err(|_| err)?.as_ref().to_vec(),
            Pair::Ed(k) => k.sign(input).as_ref().to_vec(),
        })
    }
}
