//! vestibule's own TLS listener asking for a client certificate, on the
//! configured hostnames only.
//!
//! **Why the verifier accepts any certificate.** A device certificate's
//! authority is its row in the device table, found by the SHA-256 of the
//! leaf on every request ([`vestibule_core::client_cert`]): that one lookup
//! gives revocation, expiry and ownership, and it is needed anyway because
//! a resumed TLS session restores the peer certificate without running the
//! verifier again. Refusing in the handshake would only turn a readable
//! HTTP 403 ("this certificate was revoked") into a TLS alert the apps show
//! as a network error. So [`AnyClientCert`] accepts any certificate chain,
//! and checks what only the handshake can check: the client's signature
//! over the handshake (CertificateVerify, RFC 8446 §4.4.3, RFC 5246
//! §7.4.8), which proves it holds the certificate's private key. A
//! certificate is public; without that proof anyone could present one.
//!
//! A certificate is requested (never required) only when the SNI names a
//! configured certificate hostname, so browsers are never prompted on the
//! SSO or pages hosts (rustls can neither renegotiate nor do TLS 1.3
//! post-handshake auth, so this is per hostname, not per path). The
//! CertificateRequest names only vestibule's CA ([`super::CA_COMMON_NAME`]),
//! so clients offer only certificates vestibule issued.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// Offers client authentication, accepts any certificate that the client
/// proves it holds the key of, and leaves the decision to the HTTP layer.
#[derive(Debug)]
pub struct AnyClientCert {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl AnyClientCert {
    /// A verifier hinting the subjects of `ca_certs` (DER).
    pub fn new(ca_certs: &[Vec<u8>], provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for der in ca_certs {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| format!("the client CA certificate is unusable: {e}"))?;
        }
        let mut hints = roots.subjects();
        hints.dedup_by(|a, b| a.as_ref() == b.as_ref());
        Ok(Self { hints, provider })
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // See the module docs: the per-request fingerprint lookup decides.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
