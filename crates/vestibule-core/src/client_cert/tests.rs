use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

/// A DER SEQUENCE around `content`, with the minimal length form.
fn der_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn encode(der: &[u8], format: CertFormat) -> String {
    let b64 = STANDARD.encode(der);
    match format {
        CertFormat::Base64Der | CertFormat::TraefikChain => b64,
        CertFormat::Rfc9440 => format!(":{b64}:"),
        CertFormat::NginxEscapedPem => {
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap());
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            // nginx escapes everything but unreserved characters.
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }
    }
}

fn source(format: CertFormat) -> ForwardedCertSource {
    ForwardedCertSource {
        header: "X-Client-Cert".into(),
        format,
        verify_header: Some("X-Client-Verify".into()),
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const SAMPLE: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x05];

#[test]
fn each_format_reads_the_leaf_fingerprint() {
    let want = CertFingerprint::of_der(SAMPLE);
    for format in CertFormat::ALL {
        let got = parse_cert_value(encode(SAMPLE, format).as_bytes(), format).unwrap();
        assert_eq!(got, Some(want), "{format:?}");
    }
}

#[test]
fn fingerprint_is_sha256_of_the_der() {
    // `printf '\x30\x03\x02\x01\x05' | sha256sum`
    assert_eq!(
        CertFingerprint::of_der(SAMPLE).to_hex(),
        "417c7763c4e320a6b747b3cb0c6d22f93741b29a32b48594b8eb4c144fe6d729"
    );
}

#[test]
fn traefik_chain_reads_the_first_certificate() {
    let other = der_sequence(&[0x02, 0x01, 0x07]);
    let value = format!("{},{}", STANDARD.encode(SAMPLE), STANDARD.encode(&other));
    assert_eq!(
        parse_cert_value(value.as_bytes(), CertFormat::TraefikChain).unwrap(),
        Some(CertFingerprint::of_der(SAMPLE))
    );
    let broken = format!("{},notbase64!", STANDARD.encode(SAMPLE));
    assert!(parse_cert_value(broken.as_bytes(), CertFormat::TraefikChain).is_err());
}

#[test]
fn empty_and_placeholders_are_no_certificate() {
    for format in CertFormat::ALL {
        for v in [
            "",
            "  ",
            "{http.request.tls.client.certificate_der_base64}",
            "%[ssl_c_der,base64]",
        ] {
            assert_eq!(
                parse_cert_value(v.as_bytes(), format),
                Ok(None),
                "{format:?} {v:?}"
            );
        }
    }
}

#[test]
fn failed_verification_is_no_certificate() {
    let value = encode(SAMPLE, CertFormat::Base64Der);
    let s = source(CertFormat::Base64Der);
    for verdict in ["FAILED:self-signed certificate", "NONE", ""] {
        let h = headers(&[("x-client-cert", &value), ("x-client-verify", verdict)]);
        assert_eq!(read_forwarded_cert(&h, &s), Ok(None), "{verdict:?}");
    }
    let h = headers(&[("x-client-cert", &value), ("x-client-verify", "SUCCESS")]);
    assert_eq!(
        read_forwarded_cert(&h, &s),
        Ok(Some(CertFingerprint::of_der(SAMPLE)))
    );
    // No verify header at all: the certificate header alone decides.
    let h = headers(&[("x-client-cert", &value)]);
    assert_eq!(
        read_forwarded_cert(&h, &s),
        Ok(Some(CertFingerprint::of_der(SAMPLE)))
    );
}

#[test]
fn duplicates_under_any_spelling_are_refused() {
    let value = encode(SAMPLE, CertFormat::Base64Der);
    let s = source(CertFormat::Base64Der);
    for other in ["x-client-cert", "X_Client_Cert", "x_client-CERT"] {
        let h = headers(&[("x-client-cert", &value), (other, &value)]);
        assert_eq!(read_forwarded_cert(&h, &s), Err(CertHeaderError::Duplicate));
    }
    let h = headers(&[
        ("x-client-cert", &value),
        ("x-client-verify", "SUCCESS"),
        ("x_client_verify", "SUCCESS"),
    ]);
    assert_eq!(read_forwarded_cert(&h, &s), Err(CertHeaderError::Duplicate));
    assert_eq!(read_forwarded_cert(&HeaderMap::new(), &s), Ok(None));
}

#[test]
fn non_certificates_are_malformed() {
    for der in [
        &[][..],
        &[0x31, 0x00],
        &[0x30, 0x00],
        &[0x30, 0x80, 0x00, 0x00],
        &[0x30, 0x81, 0x01, 0x00],
        &[0x30, 0x82, 0x00, 0x81],
        &[0x30, 0x02, 0x02],
        &[0x30, 0x01, 0x02, 0x03],
    ] {
        assert!(check_der_certificate(der).is_err(), "{der:?}");
    }
    assert!(parse_cert_value(b"::", CertFormat::Rfc9440).is_err());
    assert!(parse_cert_value(b"MAMCAQU=", CertFormat::Rfc9440).is_err());
    assert!(parse_cert_value(b":MAMCAQU=:;a=1", CertFormat::Rfc9440).is_err());
    assert!(parse_cert_value(b"MAMCAQU", CertFormat::Base64Der).is_err());
    let two = format!(
        "{}{}",
        encode(SAMPLE, CertFormat::NginxEscapedPem),
        encode(SAMPLE, CertFormat::NginxEscapedPem)
    );
    assert!(parse_cert_value(two.as_bytes(), CertFormat::NginxEscapedPem).is_err());
    let long = vec![b'A'; MAX_HEADER_LEN + 1];
    assert!(parse_cert_value(&long, CertFormat::Base64Der).is_err());
}

#[test]
fn fingerprint_hex_round_trips() {
    let fp = CertFingerprint::of_der(SAMPLE);
    assert_eq!(CertFingerprint::from_hex(&fp.to_hex()), Some(fp));
    assert_eq!(
        CertFingerprint::from_hex(&fp.to_hex().to_uppercase()),
        Some(fp)
    );
    assert_eq!(CertFingerprint::from_hex("00"), None);
    assert_eq!(CertFingerprint::from_hex(&"g".repeat(64)), None);
}

#[test]
fn config_names_round_trip() {
    for f in CertFormat::ALL {
        assert_eq!(CertFormat::from_config_name(f.as_str()), Some(f));
    }
    assert_eq!(CertFormat::from_config_name("pem"), None);
}

fn any_format() -> impl Strategy<Value = CertFormat> {
    prop::sample::select(CertFormat::ALL.to_vec())
}

proptest! {
    #[test]
    fn encoded_certificates_read_back(content in prop::collection::vec(any::<u8>(), 1..1500), format in any_format()) {
        let der = der_sequence(&content);
        let value = encode(&der, format);
        prop_assert_eq!(
            parse_cert_value(value.as_bytes(), format),
            Ok(Some(CertFingerprint::of_der(&der)))
        );
    }

    #[test]
    fn arbitrary_values_never_panic_and_accept_only_one_der(value in prop::collection::vec(any::<u8>(), 0..400), format in any_format()) {
        if let Ok(Some(_)) = parse_cert_value(&value, format) {
            // Whatever was accepted decodes to a SEQUENCE: the value cannot
            // be empty, nor the bare placeholder.
            prop_assert!(!trim_ows(&value).is_empty());
        }
    }

    #[test]
    fn a_second_copy_is_always_refused(name in "[xX][-_][cC]lient[-_][cC]ert", format in any_format()) {
        let value = encode(SAMPLE, format);
        let h = headers(&[("x-client-cert", &value), (&name, &value)]);
        prop_assert_eq!(read_forwarded_cert(&h, &source(format)), Err(CertHeaderError::Duplicate));
    }
}
