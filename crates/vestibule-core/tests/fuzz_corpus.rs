//! Replays the checked-in fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same `vestibule_core::fuzzing` functions the cargo-fuzz targets call, so
//! CI exercises every saved input on stable Rust, without nightly or
//! libFuzzer.

use std::fs;
use std::path::PathBuf;

use vestibule_core::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    for path in entries {
        let data =
            fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} failed on {}", path.display());
    }
}

#[test]
fn forwarded_xff() {
    replay("forwarded_xff", fuzzing::forwarded_xff);
}

#[test]
fn forwarded_rfc7239() {
    replay("forwarded_rfc7239", fuzzing::forwarded_rfc7239);
}

#[test]
fn decode_value() {
    replay("decode_value", fuzzing::decode_value);
}

#[test]
fn encode_roundtrip() {
    replay("encode_roundtrip", fuzzing::encode_roundtrip);
}

#[test]
fn path_interpretations() {
    replay("path_interpretations", fuzzing::path_interpretations);
}

#[test]
fn trusted_network() {
    replay("trusted_network", fuzzing::trusted_network);
}

#[test]
fn dialect_extract() {
    replay("dialect_extract", fuzzing::dialect_extract);
}

#[test]
fn route_find() {
    replay("route_find", fuzzing::route_find);
}

#[test]
fn cookie_and_token() {
    replay("cookie_and_token", fuzzing::cookie_and_token);
}

#[test]
fn credential_carriers() {
    replay("credential_carriers", fuzzing::credential_carriers);
}

#[test]
fn redirect_target() {
    replay("redirect_target", fuzzing::redirect_target);
}

#[test]
fn jwt_verify() {
    replay("jwt_verify", fuzzing::jwt_verify);
}

#[test]
fn jwks_parse() {
    replay("jwks_parse", fuzzing::jwks_parse);
}

#[test]
fn upgrade_header() {
    replay("upgrade_header", fuzzing::upgrade_header);
}

#[test]
fn jose_jws() {
    replay("jose_jws", fuzzing::jose_jws);
}

#[test]
fn cookie_strip() {
    replay("cookie_strip", fuzzing::cookie_strip);
}

#[test]
fn user_agent() {
    replay("user_agent", fuzzing::user_agent);
}

#[test]
fn ldap_values() {
    replay("ldap_values", fuzzing::ldap_values);
}

#[test]
fn client_cert_header() {
    replay("client_cert_header", fuzzing::client_cert_header);
}

#[test]
fn request_framing() {
    replay("request_framing", fuzzing::request_framing);
}

#[test]
fn request_stream() {
    replay("request_stream", fuzzing::request_stream);
}

#[test]
fn reserved_prefix() {
    replay("reserved_prefix", fuzzing::reserved_prefix);
}

#[test]
fn oidc_tokens() {
    replay("oidc_tokens", fuzzing::oidc_tokens);
}

#[test]
fn oidc_provider_responses() {
    replay("oidc_provider_responses", fuzzing::oidc_provider_responses);
}

#[test]
fn oidc_redirect_pkce() {
    replay("oidc_redirect_pkce", fuzzing::oidc_redirect_pkce);
}

#[test]
fn oidc_authorize_request() {
    replay("oidc_authorize_request", fuzzing::oidc_authorize_request);
}

#[test]
fn oidc_token_request() {
    replay("oidc_token_request", fuzzing::oidc_token_request);
}

#[test]
fn device_user_code() {
    replay("device_user_code", fuzzing::device_user_code);
}

#[test]
fn access_token_carriers() {
    replay("access_token_carriers", fuzzing::access_token_carriers);
}

#[test]
fn oidc_token_type_hint() {
    replay("oidc_token_type_hint", fuzzing::oidc_token_type_hint);
}

#[test]
fn oidc_link() {
    replay("oidc_link", fuzzing::oidc_link);
}
