//! Client certificates: reading the one a TLS-terminating front forwards,
//! and the fingerprint that names a device.
//!
//! vestibule identifies a certificate device by the **SHA-256 of its leaf
//! certificate's DER**, looked up in its own device table on every request.
//! That one lookup gives revocation, expiry and ownership, and it does not
//! depend on the TLS verifier having run (TLS session resumption restores a
//! peer certificate without running it again). So nothing here validates a
//! chain: a certificate vestibule did not issue has a fingerprint no device
//! has, whoever signed it.
//!
//! When a front (nginx, Caddy, HAProxy, Traefik) terminates TLS it forwards
//! the certificate in a header, in its own format. The operator configures
//! exactly one header name and one [`CertFormat`]; the format is never guessed
//! from the value, since the value is only believed from a trusted peer and a
//! guess would widen what that peer's clients can make us read.
//!
//! - Several copies of the header, under any spelling (`X-Client-Cert`,
//!   `x_client_cert`), are ambiguous: [`CertHeaderError::Duplicate`] (400).
//! - An empty value, an unexpanded placeholder (Caddy 2.6 sends the literal
//!   `{http.request.tls.client.certificate_der_base64}` when the client sent
//!   no certificate) and a failed-verification marker in the configured
//!   verify header (`FAILED:…`, `NONE`) mean "no certificate".
//! - Anything else must decode, in the configured format, to exactly one
//!   DER `SEQUENCE` (the leaf first, for chains); otherwise
//!   [`CertHeaderError::Malformed`] (400).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

use crate::headers::same_name;

/// The longest forwarded header value read, in bytes. A leaf with a
/// 4096-bit RSA key and a long subject is ~2 KiB of DER, ~3 KiB in base64
/// and ~4.5 KiB percent-encoded PEM; a Traefik chain of a few such
/// certificates fits as well. Longer values are refused, not truncated.
pub const MAX_HEADER_LEN: usize = 32 * 1024;

/// How a front encodes the certificate in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFormat {
    /// nginx `$ssl_client_escaped_cert`: the PEM, percent-encoded
    /// (`-----BEGIN%20CERTIFICATE-----%0AMIIB…`).
    NginxEscapedPem,
    /// Base64 (RFC 4648 §4, padded) of the DER: Caddy's
    /// `{http.request.tls.client.certificate_der_base64}` and HAProxy's
    /// `%[ssl_c_der,base64]`.
    Base64Der,
    /// Traefik's `passTLSClientCert` with `pem: true`
    /// (`X-Forwarded-Tls-Client-Cert`): base64 DER of each certificate,
    /// joined by `,`, the leaf first.
    TraefikChain,
    /// RFC 9440 §2.2 `Client-Cert`: the DER as a Structured Field Byte
    /// Sequence (RFC 8941 §3.3.5), `:base64:`.
    Rfc9440,
}

impl CertFormat {
    /// Every format, in documentation order.
    pub const ALL: [CertFormat; 4] = [
        CertFormat::NginxEscapedPem,
        CertFormat::Base64Der,
        CertFormat::TraefikChain,
        CertFormat::Rfc9440,
    ];

    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            CertFormat::NginxEscapedPem => "nginx-escaped-pem",
            CertFormat::Base64Der => "base64-der",
            CertFormat::TraefikChain => "traefik-chain",
            CertFormat::Rfc9440 => "rfc9440",
        }
    }

    /// Reads a configuration name (exact, lowercase).
    pub fn from_config_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// The SHA-256 of a leaf certificate's DER: a certificate device's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// The fingerprint of `der`, which the caller has as one certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        CertFingerprint(out)
    }

    /// Lowercase hex, as stored in the device table.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Reads 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(CertFingerprint(out))
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_hex())
    }
}

/// Why a forwarded certificate header was refused (HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertHeaderError {
    /// The header (or the verify header) came more than once, under one
    /// spelling or several.
    Duplicate,
    /// The value is not the configured format, or not one DER certificate.
    Malformed(&'static str),
}

impl fmt::Display for CertHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertHeaderError::Duplicate => {
                f.write_str("the client-certificate header was sent more than once")
            }
            CertHeaderError::Malformed(why) => {
                write!(f, "the forwarded client certificate is malformed: {why}")
            }
        }
    }
}

impl std::error::Error for CertHeaderError {}

/// Where and how a trusted front forwards the client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCertSource {
    /// The header carrying the certificate (compared normalised).
    pub header: String,
    /// Its encoding.
    pub format: CertFormat,
    /// An optional header carrying the front's verification result (nginx
    /// `$ssl_client_verify`): a value starting with `FAILED` or equal to
    /// `NONE` means "no certificate", whatever the certificate header says.
    pub verify_header: Option<String>,
}

/// Reads the forwarded client certificate. `Ok(None)` is "no certificate";
/// call only for a request from a trusted peer (for anyone else the header
/// is stripped unread).
pub fn read_forwarded_cert(
    headers: &HeaderMap,
    source: &ForwardedCertSource,
) -> Result<Option<CertFingerprint>, CertHeaderError> {
    let value = match single_value(headers, &source.header)? {
        None => return Ok(None),
        Some(v) => v,
    };
    if let Some(verify_name) = &source.verify_header
        && let Some(verdict) = single_value(headers, verify_name)?
        && !verify_succeeded(verdict)
    {
        return Ok(None);
    }
    parse_cert_value(value, source.format)
}

/// Whether a verify header value says the front accepted the certificate.
/// nginx writes `SUCCESS`, `FAILED:<reason>` or `NONE`; anything but a
/// success (an empty value included) counts as "no certificate".
fn verify_succeeded(verdict: &[u8]) -> bool {
    trim_ows(verdict).eq_ignore_ascii_case(b"SUCCESS")
}

/// The one value of `name` (any spelling), or `None` when absent.
fn single_value<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h [u8]>, CertHeaderError> {
    let mut found = None;
    for (n, v) in headers {
        if same_name(n.as_str(), name) {
            if found.is_some() {
                return Err(CertHeaderError::Duplicate);
            }
            found = Some(v.as_bytes());
        }
    }
    Ok(found)
}

/// RFC 9110 §5.5: leading and trailing SP / HTAB are not part of a value.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Decodes one header value in `format` to the leaf's fingerprint;
/// `Ok(None)` for an empty value or an unexpanded `{…}` placeholder.
pub fn parse_cert_value(
    raw: &[u8],
    format: CertFormat,
) -> Result<Option<CertFingerprint>, CertHeaderError> {
    if raw.len() > MAX_HEADER_LEN {
        return Err(CertHeaderError::Malformed("longer than allowed"));
    }
    let value = trim_ows(raw);
    if value.is_empty() || is_placeholder(value) {
        return Ok(None);
    }
    let leaf = match format {
        CertFormat::NginxEscapedPem => nginx_pem(value)?,
        CertFormat::Base64Der => base64(value)?,
        CertFormat::TraefikChain => {
            // The leaf comes first; the rest of the chain must still be
            // well-formed, or the value is not what the front writes.
            let mut parts = value.split(|&b| b == b',');
            let leaf = base64(parts.next().unwrap_or_default())?;
            for part in parts {
                let extra = base64(part)?;
                check_der_certificate(&extra)?;
            }
            leaf
        }
        CertFormat::Rfc9440 => rfc9440(value)?,
    };
    check_der_certificate(&leaf)?;
    Ok(Some(CertFingerprint::of_der(&leaf)))
}

/// A template variable the front did not expand: Caddy's
/// `{http.request.tls.client.certificate_der_base64}`, or a `%[…]` HAProxy
/// sample expression forwarded verbatim. Neither can be base64 or PEM.
fn is_placeholder(v: &[u8]) -> bool {
    (v.first() == Some(&b'{') && v.last() == Some(&b'}'))
        || (v.starts_with(b"%[") && v.last() == Some(&b']'))
}

fn base64(v: &[u8]) -> Result<Vec<u8>, CertHeaderError> {
    STANDARD
        .decode(v)
        .map_err(|_| CertHeaderError::Malformed("not padded base64"))
}

/// RFC 8941 §3.3.5: `":" *(base64) ":"`; parameters are not allowed, since
/// RFC 9440 §2 defines none for `Client-Cert`.
fn rfc9440(v: &[u8]) -> Result<Vec<u8>, CertHeaderError> {
    let inner = v
        .strip_prefix(b":")
        .and_then(|r| r.strip_suffix(b":"))
        .ok_or(CertHeaderError::Malformed(
            "not a structured-field byte sequence",
        ))?;
    base64(inner)
}

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// nginx's `$ssl_client_escaped_cert`: exactly one PEM certificate block
/// (RFC 7468 §2), percent-encoded.
fn nginx_pem(v: &[u8]) -> Result<Vec<u8>, CertHeaderError> {
    let pem: Vec<u8> = percent_encoding::percent_decode(v).collect();
    let pem = trim_pem_space(&pem);
    let body = pem
        .strip_prefix(PEM_BEGIN)
        .and_then(|r| r.strip_suffix(PEM_END))
        .ok_or(CertHeaderError::Malformed("not one PEM certificate"))?;
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.windows(5).any(|w| w == b"-----") {
        return Err(CertHeaderError::Malformed("more than one PEM block"));
    }
    base64(&compact)
}

fn trim_pem_space(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// The bytes are exactly one DER `SEQUENCE` (X.690 §8.9, §10.1: definite,
/// minimal length). A certificate is one (RFC 5280 §4.1); the inside is not
/// read, since only the fingerprint is used and it must match a
/// certificate vestibule issued.
pub fn check_der_certificate(der: &[u8]) -> Result<(), CertHeaderError> {
    const BAD: CertHeaderError = CertHeaderError::Malformed("not one DER certificate");
    let (&tag, rest) = der.split_first().ok_or(BAD)?;
    if tag != 0x30 {
        return Err(BAD);
    }
    let (&first, rest) = rest.split_first().ok_or(BAD)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            // 0x80 is the indefinite form (not DER); more than 3 length
            // octets is over 16 MiB, far beyond MAX_HEADER_LEN.
            return Err(BAD);
        }
        let (octets, rest) = rest.split_at(n);
        if octets[0] == 0 {
            return Err(BAD); // not minimal
        }
        let len = octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(BAD); // the short form was required
        }
        (len, rest)
    };
    if len != rest.len() || len == 0 {
        return Err(BAD);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
