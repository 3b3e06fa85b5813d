//! The key-encryption key: seals signing keys' private halves in the store
//! with AES-256-GCM.
//!
//! A sealed key is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
//! nonce is random (96 bits, NIST SP 800-38D §8.2.2): a vestibule seals
//! one key per rotation, far below the 2^32 invocations that section
//! allows per key. The kid is the additional authenticated data, so a
//! sealed key copied into another row does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config::KekSource;

/// The key-encryption key. Never shown.
pub struct Kek(LessSafeKey);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(…)")
    }
}

/// Records that a private key stored plain (before a key-encryption key
/// was configured) was sealed in place: `subject` names the key
/// (`key:<kid>`, `ca:<id>`), never its bytes.
pub async fn audit_sealed(store: &dyn vestibule_store::Store, subject: String) {
    tracing::info!(key = %subject, "private key stored plain sealed with the key-encryption key");
    let entry = vestibule_store::AuditEntry::new(
        crate::accounts::now_ms(),
        "vestibule",
        "key-seal",
        subject,
    )
    .with_outcome("ok")
    .with_detail("stored plain before a key-encryption key was configured; sealed in place");
    crate::accounts::record_audit(store, &entry).await;
}

impl Kek {
    /// Reads the key from its source: 32 bytes in standard, padded base64,
    /// surrounding whitespace ignored. The error never shows the text.
    pub fn load(source: &KekSource) -> Result<Self, String> {
        let (text, from) = match source {
            KekSource::File(path) => (
                std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the key-encryption key {}: {e}", path.display())
                })?,
                format!("the file {}", path.display()),
            ),
            KekSource::Env(var) => (
                std::env::var(var).map_err(|_| {
                    format!("the key-encryption key variable {var} is not set (or not UTF-8)")
                })?,
                format!("the variable {var}"),
            ),
        };
        Self::from_base64(&text).map_err(|why| format!("{from}: {why}"))
    }

    /// The key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "the key-encryption key is not base64".to_owned())?;
        Self::from_bytes(&bytes)
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "the key-encryption key must be 32 bytes (256 bits), not {}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "the key-encryption key was refused".to_owned())?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Seals `plain` for the key `kid`.
    pub fn seal(&self, kid: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_owned())?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut body,
            )
            .map_err(|_| "sealing a signing key failed".to_owned())?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made for `kid`. Fails when the key,
    /// the kid or a byte differs.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let refused = || {
            format!(
                "signing key {kid} does not open with the key-encryption key \
                 (a different key, or the row was altered)"
            )
        };
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(refused());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
            .map_err(|_| refused())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let k = kek(7);
        let sealed = k.seal("kid-a", b"private key").unwrap();
        assert_eq!(sealed.len(), 12 + 11 + 16);
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
        assert_eq!(k.open("kid-a", &sealed).unwrap(), b"private key");
        assert!(k.open("kid-b", &sealed).is_err());
        assert!(kek(8).open("kid-a", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.open("kid-a", &bad).is_err(), "byte {i} flipped");
        }
        assert!(k.open("kid-a", &sealed[..27]).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = kek(1);
        let a = k.seal("kid", b"same").unwrap();
        let b = k.seal("kid", b"same").unwrap();
        assert_ne!(a[..12], b[..12]);
    }

    #[test]
    fn the_key_is_32_bytes_of_base64() {
        let text = STANDARD.encode([9u8; 32]);
        assert!(Kek::from_base64(&format!("  {text}\n")).is_ok());
        assert!(Kek::from_base64(&STANDARD.encode([9u8; 31])).is_err());
        assert!(Kek::from_base64(&STANDARD.encode([9u8; 64])).is_err());
        assert!(Kek::from_base64("not base64!").is_err());
        let err = Kek::from_base64(&STANDARD.encode([9u8; 16])).unwrap_err();
        assert!(err.contains("not 16"), "{err}");
    }

    #[test]
    fn a_file_source_is_read_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, STANDARD.encode([3u8; 32])).unwrap();
        let k = Kek::load(&KekSource::File(path.clone())).unwrap();
        let sealed = k.seal("x", b"y").unwrap();
        assert_eq!(kek(3).open("x", &sealed).unwrap(), b"y");
        std::fs::write(&path, "short").unwrap();
        let err = Kek::load(&KekSource::File(path.clone())).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
