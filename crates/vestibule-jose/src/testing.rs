//! For tests only (compiled under `cfg(test)` or the `testing` feature,
//! which only `[dev-dependencies]` and the fuzz crate turn on): mints
//! signed tokens and the JWKS that verifies them, so unit tests, fuzz
//! harnesses, benches and the binary's integration tests can exercise
//! verification without a real SSO front.
//!
//! Nothing here is for production, and nothing shares a constructor with
//! [`SigningKey`](crate::SigningKey): every method panics on failure, a
//! signer signs with any algorithm of its key's family and under any
//! header, and the `*_from_seed` constructors derive keys from
//! caller-chosen bytes.

#![allow(clippy::expect_used, clippy::panic)]

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::agreement;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::algorithm::{Algorithm, Family};
use crate::jwk::strip_leading_zeros;

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A key pair that signs compact JWS assertions, with its public JWK.
#[derive(Clone)]
pub struct TestSigner {
    kid: String,
    alg: Algorithm,
    key: Arc<Material>,
    jwk_alg: bool,
}

impl fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSigner")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestSigner {
    /// A fresh key for `alg`. RSA keys are 2048 bits (slow-ish to make:
    /// reuse them with [`with_algorithm`](Self::with_algorithm)).
    ///
    /// # Panics
    /// If key generation fails.
    pub fn new(alg: Algorithm, kid: &str) -> Self {
        let key = match alg.family() {
            Family::Rsa => {
                Material::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
            }
            Family::P256 => Material::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("P-256 key generation"),
            ),
            Family::P384 => Material::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("P-384 key generation"),
            ),
            Family::Ed25519 => {
                Material::Ed(Ed25519KeyPair::generate().expect("Ed25519 key generation"))
            }
        };
        Self {
            kid: kid.to_owned(),
            alg,
            key: Arc::new(key),
            jwk_alg: true,
        }
    }

    /// A fresh P-256 key signing ES256 (Pomerium's default).
    pub fn es256(kid: &str) -> Self {
        Self::new(Algorithm::ES256, kid)
    }

    /// A fresh 2048-bit RSA key signing RS256 (Cloudflare Access, authentik).
    pub fn rs256(kid: &str) -> Self {
        Self::new(Algorithm::RS256, kid)
    }

    /// A fresh Ed25519 key signing EdDSA.
    pub fn ed25519(kid: &str) -> Self {
        Self::new(Algorithm::EdDSA, kid)
    }

    /// The Ed25519 key whose seed (RFC 8032 §5.1.5 private key) is `seed`:
    /// the same key on every run.
    ///
    /// # Panics
    /// Never for a 32-byte seed.
    pub fn ed25519_from_seed(kid: &str, seed: &[u8; 32]) -> Self {
        let key = Ed25519KeyPair::from_seed_unchecked(seed).expect("Ed25519 seed");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            key: Arc::new(Material::Ed(key)),
            jwk_alg: true,
        }
    }

    /// The P-256 key whose private scalar is `scalar` (big-endian): the
    /// same key on every run (signatures still differ, ECDSA is randomised).
    ///
    /// # Panics
    /// If `scalar` is zero or not below the group order.
    pub fn es256_from_seed(kid: &str, scalar: &[u8; 32]) -> Self {
        // The public point from the scalar (aws-lc-rs's ECDH key type
        // computes it), then the signing pair from both.
        let point = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, scalar)
            .expect("P-256 scalar")
            .compute_public_key()
            .expect("P-256 public point");
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            point.as_ref(),
        )
        .expect("P-256 key pair");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            key: Arc::new(Material::Ec(key)),
            jwk_alg: true,
        }
    }

    /// The same key signing with another algorithm of its family (an RSA
    /// key with PS384, say).
    ///
    /// # Panics
    /// If `alg` needs another kind of key.
    pub fn with_algorithm(&self, alg: Algorithm) -> Self {
        assert_eq!(alg.family(), self.alg.family(), "{alg} needs another key");
        Self {
            alg,
            ..self.clone()
        }
    }

    /// The same key under another key id.
    pub fn with_kid(&self, kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            ..self.clone()
        }
    }

    /// The same key, published without the JWK `alg` member (RFC 7517
    /// §4.4 makes it optional).
    pub fn without_jwk_alg(&self) -> Self {
        Self {
            jwk_alg: false,
            ..self.clone()
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this signer signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as aws-lc-rs gives it: DER `RSAPublicKey` (RFC 8017
    /// §A.1.1), an uncompressed EC point, or the raw Ed25519 key.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &*self.key {
            Material::Rsa(k) => k.public_key().as_ref().to_vec(),
            Material::Ec(k) => k.public_key().as_ref().to_vec(),
            Material::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The public JWK: `kty`, the key members, `use: sig`, `kid` and (unless
    /// [`without_jwk_alg`](Self::without_jwk_alg)) `alg`.
    ///
    pub fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = match &*self.key {
            Material::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({
                    "kty": "RSA",
                    "n": b64(strip_leading_zeros(&c.n)),
                    "e": b64(strip_leading_zeros(&c.e)),
                })
            }
            Material::Ec(k) => {
                let point = k.public_key().as_ref();
                let (crv, size) = match self.alg.family() {
                    Family::P384 => ("P-384", 48),
                    _ => ("P-256", 32),
                };
                let x = point.get(1..1 + size).unwrap_or_default();
                let y = point.get(1 + size..).unwrap_or_default();
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            Material::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        };
        if let Value::Object(m) = &mut jwk {
            m.insert("use".into(), "sig".into());
            m.insert("kid".into(), self.kid.clone().into());
            if self.jwk_alg {
                m.insert("alg".into(), self.alg.as_str().into());
            }
        }
        jwk
    }

    /// A JWK Set (RFC 7517 §5) of the signers' public keys.
    pub fn jwks_json(signers: &[&TestSigner]) -> String {
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        json!({ "keys": keys }).to_string()
    }

    /// The header [`sign`](Self::sign) uses: `alg`, `kid` and `typ: JWT`.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": "JWT"})
    }

    /// A compact JWS of `claims` under [`header`](Self::header).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// A compact JWS of `claims` under any header. The signature is made
    /// with this signer's algorithm whatever the header says.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A compact JWS of raw header and payload bytes (which need not be
    /// JSON): `b64(header).b64(payload).b64(signature)`.
    pub fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self.signature(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The raw signature of `signing_input` (RFC 7515 §5.1 step 5), in the
    /// JWS encoding of the algorithm (RFC 7518 §3.4: `R || S` for ECDSA).
    ///
    /// # Panics
    /// If signing fails.
    pub fn signature(&self, signing_input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &*self.key {
            Material::Rsa(k) => {
                let padding: &'static dyn RsaEncoding = match self.alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, signing_input, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Material::Ec(k) => k
                .sign(&rng, signing_input)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Material::Ed(k) => k.sign(signing_input).as_ref().to_vec(),
        }
    }
}

/// The `typ` of a vestibule identity assertion (RFC 8725 §3.11), as the
/// gateway's `keys::assertion` signs it.
pub const ASSERTION_TYP: &str = "vestibule-id+jwt";

/// A valid vestibule identity assertion: `claims` under `alg`, `kid` and
/// `typ: vestibule-id+jwt`, signed by `signer`.
pub fn assertion(signer: &TestSigner, claims: &Value) -> String {
    let header = json!({"alg": signer.alg.as_str(), "kid": signer.kid, "typ": ASSERTION_TYP});
    signer.sign_with_header(&header, claims)
}

/// The rejection matrix for verifiers of vestibule identity assertions:
/// `(name, token)` pairs that every verifier (vestibule-verify, npm
/// `jose`, PyJWT) must refuse, when it trusts the JWK Set
/// `TestSigner::jwks_json(&[signer, other])`, expects `claims["iss"]` and
/// `claims["aud"]`, and runs at about `claims["iat"]` (which, with
/// `claims["nbf"]` and `claims["exp"]`, must make `claims` valid:
/// [`assertion`]`(signer, claims)` must verify).
///
/// `other` must be another key of the same set (a second published key).
/// The names: `tampered_payload`, `tampered_signature`, `alg_none`,
/// `kid_swapped`, `hs256_with_public_jwk`, `hs256_with_public_key_bytes`,
/// `expired`, `not_yet_valid`, `wrong_aud`, `wrong_typ`, `wrong_iss`.
///
/// # Panics
/// If `claims` lacks a numeric `iat` or `aud`/`iss`.
pub fn forged_assertions(
    signer: &TestSigner,
    other: &TestSigner,
    claims: &Value,
) -> Vec<(&'static str, String)> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let iat = claims["iat"].as_i64().expect("claims need a numeric iat");
    let with = |changes: Value| {
        let mut c = claims.clone();
        if let (Value::Object(c), Value::Object(changes)) = (&mut c, changes) {
            c.extend(changes);
        }
        c
    };
    let valid = assertion(signer, claims);
    let mut segments = valid.split('.');
    let (header_b64, _, sig_b64) = (
        segments.next().expect("header"),
        segments.next().expect("payload"),
        segments.next().expect("signature"),
    );

    // The signed header and signature, over other claims (say, another
    // user): what an attacker who edits a captured token sends.
    let tampered_payload = format!(
        "{header_b64}.{}.{sig_b64}",
        b64(
            with(json!({"sub": "someone-else", "preferred_username": "root"}))
                .to_string()
                .as_bytes()
        )
    );
    // One bit of the signature flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(sig_b64).expect("signature");
    if let Some(first) = sig.first_mut() {
        *first ^= 0x01;
    }
    let tampered_signature = format!(
        "{}.{}",
        valid.rsplit_once('.').expect("three segments").0,
        b64(&sig)
    );
    // RFC 7518 §3.6: the unsecured JWS, empty signature.
    let alg_none = format!(
        "{}.{}.",
        b64(
            json!({"alg": "none", "kid": signer.kid, "typ": ASSERTION_TYP})
                .to_string()
                .as_bytes()
        ),
        b64(claims.to_string().as_bytes())
    );
    // Signed by `signer`, but naming `other`'s key.
    let kid_swapped = signer.sign_with_header(
        &json!({"alg": signer.alg.as_str(), "kid": other.kid, "typ": ASSERTION_TYP}),
        claims,
    );
    // RFC 8725 §2.1: HMAC keyed with what the verifier has, the public key.
    let hs256 = |secret: &[u8]| {
        let input = format!(
            "{}.{}",
            b64(
                json!({"alg": "HS256", "kid": signer.kid, "typ": ASSERTION_TYP})
                    .to_string()
                    .as_bytes()
            ),
            b64(claims.to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let hs256_with_public_jwk = hs256(signer.jwk().to_string().as_bytes());
    let hs256_with_public_key_bytes = hs256(&signer.public_key_bytes());
    let expired = assertion(
        signer,
        &with(json!({"iat": iat - 7200, "nbf": iat - 7200, "exp": iat - 3600})),
    );
    let not_yet_valid = assertion(
        signer,
        &with(json!({"iat": iat + 3600, "nbf": iat + 3600, "exp": iat + 3660})),
    );
    let wrong_aud = assertion(
        signer,
        &with(json!({"aud": format!("not-{}", claims["aud"].as_str().expect("aud"))})),
    );
    let wrong_typ = signer.sign_with_header(
        &json!({"alg": signer.alg.as_str(), "kid": signer.kid, "typ": "JWT"}),
        claims,
    );
    let wrong_iss = assertion(
        signer,
        &with(json!({"iss": format!("{}.evil", claims["iss"].as_str().expect("iss"))})),
    );
    vec![
        ("tampered_payload", tampered_payload),
        ("tampered_signature", tampered_signature),
        ("alg_none", alg_none),
        ("kid_swapped", kid_swapped),
        ("hs256_with_public_jwk", hs256_with_public_jwk),
        ("hs256_with_public_key_bytes", hs256_with_public_key_bytes),
        ("expired", expired),
        ("not_yet_valid", not_yet_valid),
        ("wrong_aud", wrong_aud),
        ("wrong_typ", wrong_typ),
        ("wrong_iss", wrong_iss),
    ]
}
