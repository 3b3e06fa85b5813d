//! Client certificates per device (issue 18): the deployment's private CA,
//! kept in the store so every instance shares it, the device certificates
//! it issues (PKCS#12 and PEM), and the CRL.
//!
//! - The CA is made on first use ([`ClientCa::open`]) and its private key
//!   is sealed with the key-encryption key when one is configured, exactly
//!   like the assertion signing keys ([`crate::keys::kek`]).
//! - A device certificate is signed directly by the root (iOS apps do not
//!   send a leaf signed by an intermediate: home-assistant/iOS #4477), with
//!   EKU clientAuth, the subject naming the user and the device, and a CRL
//!   distribution point when `crl_url` is configured.
//! - The device's row holds the SHA-256 of the leaf's DER as its
//!   `secret_hash`: that is the identity looked up on every request
//!   ([`vestibule_core::client_cert`]). The private key is never stored.
//! - Every CA has the same subject name ([`CA_COMMON_NAME`]), so the TLS
//!   `certificate_authorities` hint stays right across a rotation.

pub mod pkcs12;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use vestibule_core::client_cert::CertFingerprint;
use vestibule_store::{ClientCertificate, PrivateKeyFormat, Store, StoredClientCa};

use crate::keys::kek::Kek;

/// The subject CN of every vestibule client CA (the TLS hint names it).
pub const CA_COMMON_NAME: &str = "vestibule device CA";
/// The subject O of every vestibule client CA.
pub const CA_ORGANIZATION: &str = "vestibule";
/// How long a CA certificate is valid: it outlives every leaf it signs.
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 86_400);
/// How long a CRL is announced as current (`nextUpdate`); it is
/// regenerated on every revocation anyway.
const CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);
/// A cached CRL is signed again once it is this old, well before its
/// `nextUpdate`, so a front that fetches it never holds a stale one.
const CRL_REFRESH: Duration = Duration::from_secs(86_400);

/// The key type of a device certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum LeafKey {
    /// RSA-2048 with SHA-256: imports everywhere (some Android apps fail on
    /// EC keys: home-assistant/android PR #2023, schwabe/ics-openvpn #762).
    #[default]
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// ECDSA P-256 with SHA-256: smaller, for apps known to take it.
    #[serde(rename = "p256")]
    P256,
}

impl LeafKey {
    /// The configuration and form name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa-2048",
            Self::P256 => "p256",
        }
    }

    /// Reads a form value.
    pub fn from_form(v: &str) -> Option<Self> {
        [Self::Rsa2048, Self::P256]
            .into_iter()
            .find(|k| k.as_str() == v)
    }

    fn generate(self) -> Result<KeyPair, String> {
        match self {
            Self::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            Self::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        }
        .map_err(|e| format!("cannot make a key pair: {e}"))
    }
}

/// What a device certificate is issued for.
#[derive(Debug, Clone)]
pub struct LeafRequest<'a> {
    /// The owner's user name (subject CN).
    pub username: &'a str,
    /// The device's name (subject OU).
    pub device: &'a str,
    /// The key type.
    pub key: LeafKey,
    /// Validity from now.
    pub validity: Duration,
}

/// A freshly issued device certificate: the only time its private key
/// exists outside the device.
pub struct IssuedLeaf {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    /// Its serial, lowercase hex.
    pub serial: String,
    /// The CA that signed it.
    pub ca_id: String,
    /// Unix ms of notAfter.
    pub not_after: i64,
}

impl IssuedLeaf {
    /// The SHA-256 of the leaf: the device's `secret_hash`.
    pub fn fingerprint(&self) -> CertFingerprint {
        CertFingerprint::of_der(&self.cert_der)
    }

    /// Certificate and key as PEM, for `curl --cert` (RFC 7468).
    pub fn pem(&self) -> String {
        let mut out = pem_block("CERTIFICATE", &self.cert_der);
        out.push_str(&pem_block("PRIVATE KEY", &self.key_pkcs8));
        out
    }
}

/// The private key never reaches a log.
impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field("serial", &self.serial)
            .field("ca_id", &self.ca_id)
            .finish_non_exhaustive()
    }
}

/// One PEM block (RFC 7468 §2: 64-character lines).
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The CA in the store, with its key opened.
struct OpenCa {
    row: StoredClientCa,
    key: KeyPair,
}

/// The deployment's client CA.
pub struct ClientCa {
    store: Arc<dyn Store>,
    kek: Option<Kek>,
    crl_url: Option<String>,
    /// The last CRL each CA signed (by CA id), and what it was signed over.
    crl: std::sync::Mutex<std::collections::HashMap<String, SignedCrl>>,
}

/// A signed CRL and the revocations it lists: it is served as long as the
/// store's revocations of its CA are exactly these.
struct SignedCrl {
    /// `(serial, revocation time)` of every listed certificate, in the
    /// store's order.
    listed: Vec<(String, Option<i64>)>,
    /// When it was signed (Unix ms).
    signed_at: i64,
    der: Vec<u8>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("sealed", &self.kek.is_some())
            .field("crl_url", &self.crl_url)
            .finish()
    }
}

fn store_error(e: vestibule_store::StoreError) -> String {
    format!("store: {e}")
}

fn now_ms() -> i64 {
    crate::accounts::now_ms()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn datetime(ms: i64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| format!("date out of range: {e}"))
}

fn random_serial() -> [u8; 16] {
    // RFC 5280 §4.1.2.2: positive, at most 20 octets; the top bit clear
    // keeps it positive without a leading zero byte.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}

impl ClientCa {
    /// Opens the current CA, making the first one if the store has none.
    pub async fn open(
        store: Arc<dyn Store>,
        kek: Option<Kek>,
        crl_url: Option<String>,
    ) -> Result<Self, String> {
        let ca = Self {
            store,
            kek,
            crl_url,
            crl: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        ca.seal_plain_keys().await?;
        if ca.current_row().await?.is_none() {
            ca.rotate_from(i64::MIN).await?;
        }
        Ok(ca)
    }

    /// With a key-encryption key configured, seals in place every CA key
    /// still stored plain (made before one was configured), like the
    /// signing keys (`crate::keys`): one conditional update each, audited
    /// by CA id, never the key.
    async fn seal_plain_keys(&self) -> Result<(), String> {
        let Some(kek) = &self.kek else {
            return Ok(());
        };
        for row in self.store.client_cas().await.map_err(store_error)? {
            if row.private_format != PrivateKeyFormat::Plain {
                continue;
            }
            // Only a readable key is sealed.
            self.open_key(&row)?;
            let sealed = kek.seal(&row.id, &row.private_key)?;
            if self
                .store
                .seal_client_ca_key(&row.id, &sealed)
                .await
                .map_err(store_error)?
            {
                crate::keys::kek::audit_sealed(&*self.store, format!("ca:{}", row.id)).await;
            }
        }
        Ok(())
    }

    async fn current_row(&self) -> Result<Option<StoredClientCa>, String> {
        let rows = self.store.client_cas().await.map_err(store_error)?;
        Ok(rows.into_iter().rev().find(|r| r.retired_at.is_none()))
    }

    /// Every CA whose certificates may still be valid, newest first: what
    /// a front that checks chains itself must trust.
    pub async fn all(&self) -> Result<Vec<StoredClientCa>, String> {
        let mut rows = self.store.client_cas().await.map_err(store_error)?;
        let now = now_ms();
        rows.retain(|r| r.created_at + ms(CA_VALIDITY) > now);
        rows.reverse();
        Ok(rows)
    }

    /// The current CA's certificate, PEM.
    pub async fn current_pem(&self) -> Result<String, String> {
        let row = self.current_row().await?.ok_or("no client CA")?;
        Ok(pem_block("CERTIFICATE", &row.cert_der))
    }

    /// Every CA certificate still valid, PEM, newest first.
    pub async fn bundle_pem(&self) -> Result<String, String> {
        Ok(self
            .all()
            .await?
            .iter()
            .map(|r| pem_block("CERTIFICATE", &r.cert_der))
            .collect())
    }

    /// Makes a new CA and retires the current one (its certificates stay
    /// valid: devices are looked up by fingerprint, not by chain).
    pub async fn rotate(&self) -> Result<String, String> {
        self.rotate_from(now_ms() - 1).await
    }

    async fn rotate_from(&self, unless_created_after: i64) -> Result<String, String> {
        let now = now_ms();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("cannot make the CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = datetime(now - 3_600_000)?;
        params.not_after = datetime(now + ms(CA_VALIDITY))?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("cannot sign the CA: {e}"))?;
        let der = cert.der().to_vec();
        let id = CertFingerprint::of_der(&der).to_hex();
        let pkcs8 = key.serialize_der();
        let (private_format, private_key) = match &self.kek {
            Some(kek) => (PrivateKeyFormat::Aes256Gcm, kek.seal(&id, &pkcs8)?),
            None => (PrivateKeyFormat::Plain, pkcs8),
        };
        let row = StoredClientCa {
            id: id.clone(),
            cert_der: der,
            private_format,
            private_key,
            created_at: now,
            retired_at: None,
        };
        if self
            .store
            .insert_client_ca(&row, unless_created_after)
            .await
            .map_err(store_error)?
        {
            tracing::info!(ca = %id, "client-certificate CA made");
            Ok(id)
        } else {
            // Another instance made one at the same moment: use it.
            Ok(self.current_row().await?.ok_or("no client CA")?.id)
        }
    }

    fn open_key(&self, row: &StoredClientCa) -> Result<KeyPair, String> {
        let der = match (row.private_format, &self.kek) {
            (PrivateKeyFormat::Plain, _) => row.private_key.clone(),
            (PrivateKeyFormat::Aes256Gcm, Some(kek)) => kek.open(&row.id, &row.private_key)?,
            (PrivateKeyFormat::Aes256Gcm, None) => {
                return Err(format!(
                    "the client CA {} is sealed, but no key-encryption key is configured \
                     (`[keys] kek_file` or `kek_env`)",
                    row.id
                ));
            }
        };
        KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .map_err(|e| format!("the client CA {}'s key is unreadable: {e}", row.id))
    }

    async fn open_current(&self) -> Result<OpenCa, String> {
        let row = self.current_row().await?.ok_or("no client CA")?;
        let key = self.open_key(&row)?;
        Ok(OpenCa { row, key })
    }

    /// Issues a device certificate. The caller stores the device (with the
    /// leaf's fingerprint) and then [`ClientCa::record`]s the certificate.
    pub async fn issue(&self, req: &LeafRequest<'_>) -> Result<IssuedLeaf, String> {
        let ca = self.open_current().await?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(&ca.row.cert_der[..]), &ca.key)
            .map_err(|e| format!("cannot read the CA certificate: {e}"))?;
        let key = req.key.generate()?;
        let now = now_ms();
        let not_after = now.saturating_add(ms(req.validity));
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, req.username);
        dn.push(DnType::OrganizationalUnitName, req.device);
        dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if req.key == LeafKey::Rsa2048 {
            // RSA key exchange in TLS 1.2 (RFC 5280 §4.2.1.3).
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        // A little backdating for clients with a slow clock.
        params.not_before = datetime(now - 300_000)?;
        params.not_after = datetime(not_after)?;
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        if let Some(url) = &self.crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("cannot sign the certificate: {e}"))?;
        Ok(IssuedLeaf {
            cert_der: cert.der().to_vec(),
            key_pkcs8: key.serialize_der(),
            serial: vestibule_store::hex(&serial),
            ca_id: ca.row.id,
            not_after,
        })
    }

    /// Records an issued certificate against its device.
    pub async fn record(&self, leaf: &IssuedLeaf, device_id: i64) -> Result<(), String> {
        self.store
            .record_client_certificate(&self.recorded(leaf, device_id))
            .await
            .map_err(store_error)
    }

    /// The store's row for `leaf`, issued now to device `device_id`.
    pub fn recorded(&self, leaf: &IssuedLeaf, device_id: i64) -> ClientCertificate {
        ClientCertificate {
            serial: leaf.serial.clone(),
            ca_id: leaf.ca_id.clone(),
            device_id: Some(device_id),
            issued_at: now_ms(),
            not_after: leaf.not_after,
            revoked_at: None,
        }
    }

    /// The current CRL (RFC 5280 §5) of the current CA, DER: every
    /// certificate it issued whose device was revoked and that has not
    /// expired. See [`ClientCa::crl_of`].
    pub async fn crl_der(&self) -> Result<Vec<u8>, String> {
        let row = self.current_row().await?.ok_or("no client CA")?;
        self.crl_of(&row).await
    }

    /// The CRL of every CA still valid ([`ClientCa::all`]), newest first,
    /// as PEM (RFC 7468 §5, `X509 CRL`): after a rotation, the retired CA's
    /// certificates are still accepted until they expire, so a front that
    /// checks revocation itself needs its CRL too (nginx `ssl_crl` and
    /// HAProxy `crl-file` read several from one file).
    pub async fn crl_bundle_pem(&self) -> Result<String, String> {
        let mut out = String::new();
        for row in self.all().await? {
            out.push_str(&pem_block("X509 CRL", &self.crl_of(&row).await?));
        }
        Ok(out)
    }

    /// The CRL of CA `row`, DER.
    ///
    /// Signed once per change, not per request: the revocations are read
    /// from the store on every call (so a revocation made by any instance,
    /// or by `vestibule devices revoke`, is on the very next CRL), and a new
    /// CRL is signed only when they differ from the cached one's, or when
    /// the cached one is [`CRL_REFRESH`] old. A rotation makes another CA
    /// current, with a CRL of its own. Two fetches with nothing revoked in
    /// between get the same bytes (the same `cRLNumber`).
    async fn crl_of(&self, row: &StoredClientCa) -> Result<Vec<u8>, String> {
        let now = now_ms();
        let revoked = self
            .store
            .revoked_client_certificates(&row.id, now)
            .await
            .map_err(store_error)?;
        let listed: Vec<(String, Option<i64>)> = revoked
            .iter()
            .map(|c| (c.serial.clone(), c.revoked_at))
            .collect();
        let previous = {
            let cache = self.crl.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&row.id) {
                Some(c) if c.listed == listed && now - c.signed_at < ms(CRL_REFRESH) => {
                    return Ok(c.der.clone());
                }
                Some(c) => c.signed_at,
                None => i64::MIN,
            }
        };
        let key = self.open_key(row)?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(&row.cert_der[..]), &key)
            .map_err(|e| format!("cannot read the CA certificate: {e}"))?;
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for c in &revoked {
            let serial = unhex(&c.serial).ok_or_else(|| format!("bad serial {}", c.serial))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                // A device deleted with its account has no revocation
                // time of its own: its issue time is the honest lower bound.
                revocation_time: datetime(c.revoked_at.unwrap_or(c.issued_at))?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        // Milliseconds since the epoch increase with every CRL made
        // (RFC 5280 §5.2.3: monotonically increasing); a CRL made in the
        // same millisecond as the cached one still gets a larger number.
        let signed_at = now.max(previous.saturating_add(1));
        let params = CertificateRevocationListParams {
            this_update: datetime(now)?,
            next_update: datetime(now + ms(CRL_VALIDITY))?,
            crl_number: SerialNumber::from(u64::try_from(signed_at).unwrap_or(0)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let der = params
            .signed_by(&issuer)
            .map_err(|e| format!("cannot sign the CRL: {e}"))?
            .der()
            .to_vec();
        self.crl.lock().unwrap_or_else(|p| p.into_inner()).insert(
            row.id.clone(),
            SignedCrl {
                listed,
                signed_at,
                der: der.clone(),
            },
        );
        Ok(der)
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        vestibule_store::open(&vestibule_store::StoreConfig::new(url))
            .await
            .unwrap()
    }

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32]).unwrap()
    }

    fn request(key: LeafKey) -> LeafRequest<'static> {
        LeafRequest {
            username: "alice",
            device: "Phone",
            key,
            validity: Duration::from_secs(86_400),
        }
    }

    #[tokio::test]
    async fn the_ca_is_made_once_sealed_and_opens_only_with_its_kek() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ca = ClientCa::open(store.clone(), Some(kek(1)), None)
            .await
            .unwrap();
        let rows = store.client_cas().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].private_format, PrivateKeyFormat::Aes256Gcm);
        // The sealed bytes are not a PKCS#8 key. (Not "no 0x30 first
        // byte": sealed bytes start with a random nonce, so that would
        // fail one run in 256.)
        assert!(KeyPair::try_from(&rows[0].private_key[..]).is_err());
        let plain = ca.open_current().await.unwrap().key.serialize_der();
        assert!(
            !rows[0]
                .private_key
                .windows(plain.len())
                .any(|w| w == &plain[..])
        );
        // A second instance shares it.
        let again = ClientCa::open(store.clone(), Some(kek(1)), None)
            .await
            .unwrap();
        assert_eq!(store.client_cas().await.unwrap().len(), 1);
        assert_eq!(
            ca.current_pem().await.unwrap(),
            again.current_pem().await.unwrap()
        );
        ca.issue(&request(LeafKey::P256)).await.unwrap();
        // Another key-encryption key, or none, cannot sign with it.
        let wrong = ClientCa::open(store.clone(), Some(kek(2)), None)
            .await
            .unwrap();
        assert!(wrong.issue(&request(LeafKey::P256)).await.is_err());
        let none = ClientCa::open(store, None, None).await.unwrap();
        let err = none.issue(&request(LeafKey::P256)).await.unwrap_err();
        assert!(err.contains("no key-encryption key"), "{err}");
    }

    #[tokio::test]
    async fn a_ca_made_before_a_kek_is_sealed_in_place_once_a_kek_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let plain_ca = ClientCa::open(store.clone(), None, None).await.unwrap();
        let pem = plain_ca.current_pem().await.unwrap();
        let before = store.client_cas().await.unwrap()[0].clone();
        assert_eq!(before.private_format, PrivateKeyFormat::Plain);
        // Two instances start with the key-encryption key together.
        let (a, b) = tokio::join!(
            ClientCa::open(store.clone(), Some(kek(1)), None),
            ClientCa::open(store.clone(), Some(kek(1)), None),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let rows = store.client_cas().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, before.id);
        assert_eq!(rows[0].private_format, PrivateKeyFormat::Aes256Gcm);
        assert!(KeyPair::try_from(&rows[0].private_key[..]).is_err());
        assert!(
            !rows[0]
                .private_key
                .windows(before.private_key.len())
                .any(|w| w == &before.private_key[..])
        );
        // The same CA, and it still signs.
        assert_eq!(a.current_pem().await.unwrap(), pem);
        assert_eq!(b.current_pem().await.unwrap(), pem);
        a.issue(&request(LeafKey::P256)).await.unwrap();
        // Audited once, by id.
        let audited = store
            .audit(&vestibule_store::AuditFilter {
                since: None,
                action: Some("key-seal".into()),
                subject: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(audited.len(), 1, "{audited:?}");
        assert_eq!(audited[0].subject, format!("ca:{}", before.id));
        // Opening again changes nothing.
        ClientCa::open(store.clone(), Some(kek(1)), None)
            .await
            .unwrap();
        assert_eq!(store.client_cas().await.unwrap()[0], rows[0]);
    }

    #[tokio::test]
    async fn leaves_chain_to_the_current_ca_and_rotation_keeps_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ca = ClientCa::open(store.clone(), None, Some("https://sso.test/crl".into()))
            .await
            .unwrap();
        let first_ca = store.client_cas().await.unwrap()[0].clone();
        assert_eq!(first_ca.private_format, PrivateKeyFormat::Plain);
        let leaf = ca.issue(&request(LeafKey::Rsa2048)).await.unwrap();
        assert_eq!(leaf.ca_id, first_ca.id);
        assert_eq!(leaf.serial.len(), 32);
        assert!(leaf.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(leaf.pem().contains("-----BEGIN PRIVATE KEY-----\n"));
        // The leaf verifies under the CA as a client certificate (what a
        // front that checks chains does).
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(first_ca.cert_der.clone()))
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(
                &CertificateDer::from(leaf.cert_der.clone()),
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
        // Rotation: new leaves from the new CA; both CAs in the bundle.
        let new_id = ca.rotate().await.unwrap();
        assert_ne!(new_id, first_ca.id);
        assert_eq!(
            ca.issue(&request(LeafKey::P256)).await.unwrap().ca_id,
            new_id
        );
        assert_eq!(
            ca.bundle_pem()
                .await
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2
        );
        // The new CA makes its own CRL.
        assert!(!ca.crl_der().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_crl_is_signed_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ca = ClientCa::open(store.clone(), None, None).await.unwrap();
        // Nothing changed: the same CRL, byte for byte (one signature).
        let first = ca.crl_der().await.unwrap();
        assert_eq!(ca.crl_der().await.unwrap(), first);
        // Another instance sharing the store signs its own.
        let other = ClientCa::open(store.clone(), None, None).await.unwrap();
        assert!(!other.crl_der().await.unwrap().is_empty());
        // A rotation (here by the other instance): the next CRL is the
        // new CA's, on both.
        other.rotate().await.unwrap();
        let rotated = ca.crl_der().await.unwrap();
        assert_ne!(rotated, first);
        let current = ca.current_row().await.unwrap().unwrap().id;
        assert_eq!(ca.crl_der().await.unwrap(), rotated);
        // Both CAs' CRLs, newest first, for fronts that check themselves.
        let bundle = ca.crl_bundle_pem().await.unwrap();
        assert_eq!(bundle.matches("-----BEGIN X509 CRL-----\n").count(), 2);
        assert!(bundle.starts_with(&pem_block("X509 CRL", &rotated)));
        assert!(bundle.ends_with(&pem_block("X509 CRL", &first)));
        // An old cached CRL is signed again, with a larger number.
        let signed_at = |ca: &ClientCa| ca.crl.lock().unwrap()[&current].signed_at;
        let before = signed_at(&ca);
        ca.crl.lock().unwrap().get_mut(&current).unwrap().signed_at -= ms(CRL_REFRESH);
        let refreshed = ca.crl_der().await.unwrap();
        assert_ne!(refreshed, rotated);
        assert!(signed_at(&ca) > before);
    }
}
