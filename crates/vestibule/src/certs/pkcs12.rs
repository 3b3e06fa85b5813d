//! The PKCS#12 file a device imports (RFC 7292), in one of two forms:
//!
//! - **compatible** (the default): PBE-SHA1-3DES for both the certificate
//!   and the key bag, an HMAC-SHA1 MAC with an 8-byte salt, 2048
//!   iterations. It is `openssl pkcs12 -legacy` without RC2, and the one
//!   form Android ≤ 13, iOS ≤ 17, macOS Keychain, Windows Server ≤ 2016 and
//!   OpenSSL 3 (without its legacy provider) all open
//!   (../shared/research/client-certificates.md §1).
//! - **aes**: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, an HMAC-SHA256
//!   MAC: OpenSSL 3's default, for Android 14+, current iOS and desktops.
//!
//! Only the leaf goes in (no CA: Android would offer to trust it), with
//! the key under the same `localKeyID` (Apple and Firefox need it) and a
//! friendlyName. The password is never empty (Apple platforms read the two
//! encodings of an empty password differently).

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

/// Which PKCS#12 form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Pkcs12Form {
    /// 3DES bags and an HMAC-SHA1 MAC: imports everywhere.
    #[default]
    #[serde(rename = "compatible")]
    Compatible,
    /// AES-256-CBC (PBES2) bags and an HMAC-SHA256 MAC.
    #[serde(rename = "aes")]
    Aes,
}

impl Pkcs12Form {
    /// The configuration and form name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compatible => "compatible",
            Self::Aes => "aes",
        }
    }

    /// Reads a form value.
    pub fn from_form(v: &str) -> Option<Self> {
        [Self::Compatible, Self::Aes]
            .into_iter()
            .find(|f| f.as_str() == v)
    }
}

/// Iterations of the 3DES key derivation and the SHA-1 MAC: what
/// `openssl pkcs12 -legacy` and Apple's Keychain write.
const COMPATIBLE_ITERATIONS: u32 = 2048;
/// Iterations for the AES form: OpenSSL 3's default.
const AES_ITERATIONS: u32 = 2048;

/// Writes the PKCS#12 file holding `cert_der` and its key `key_pkcs8`,
/// protected by `password` (non-empty), the key named `friendly_name`.
pub fn write(
    cert_der: &[u8],
    key_pkcs8: &[u8],
    friendly_name: &str,
    password: &str,
    form: Pkcs12Form,
) -> Result<Vec<u8>, String> {
    if password.is_empty() {
        return Err("a PKCS#12 password must not be empty".into());
    }
    let cert = Certificate::from_der(cert_der).map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKey::from_der(key_pkcs8).map_err(|e| format!("private key: {e}"))?;
    // localKeyID: the SHA-1 of the certificate, as OpenSSL writes it; only
    // the leaf and the key carry it.
    let local_key_id =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
    let chain = PrivateKeyChain::new(local_key_id.as_ref(), key, [cert]);
    let mut store = KeyStore::new();
    store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));
    let (enc, mac, iterations) = match form {
        Pkcs12Form::Compatible => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
            COMPATIBLE_ITERATIONS,
        ),
        Pkcs12Form::Aes => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
            AES_ITERATIONS,
        ),
    };
    store
        .writer(password)
        .encryption_algorithm(enc)
        .encryption_iterations(iterations)
        .mac_algorithm(mac)
        .mac_iterations(iterations)
        .write()
        .map_err(|e| format!("cannot write the PKCS#12 file: {e}"))
}

/// A one-time password for a PKCS#12 file: 20 characters from an alphabet
/// without look-alikes (about 100 bits), grouped for typing on a phone.
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes: [u8; 20] = rand::random();
    let mut out = String::with_capacity(24);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b % 32)]));
    }
    out
}
