//! Trust decisions of the OpenID Connect provider (issue 14) on what a
//! client sends: whether a presented `redirect_uri` is one the client
//! registered, and whether a PKCE `code_verifier` answers the
//! `code_challenge` of the authorization request. Pure and I/O-free.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Whether `presented` matches the registered `registered` redirect URI.
///
/// Exact, byte for byte (RFC 9700 §4.1.3: "exact string matching"), with
/// one exception: for a registered loopback IP literal redirect
/// (`http://127.0.0.1…` or `http://[::1]…`) the port may differ, or be
/// absent in either (RFC 8252 §7.3: "MUST allow any port to be specified
/// at the time of the request for loopback IP redirect URIs"). `localhost`
/// gets no such exception (RFC 8252 §8.3: NOT RECOMMENDED).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let (Some(reg), Some(pre)) =
            (registered.strip_prefix(host), presented.strip_prefix(host))
            && let (Some(reg_rest), Some(pre_rest)) = (after_port(reg), after_port(pre))
        {
            return reg_rest == pre_rest;
        }
    }
    false
}

/// What follows the authority of a loopback URI whose host was stripped:
/// `rest` without an optional `:port` (1 to 65535, digits only), which
/// must be followed by the end, `/` or `?`. `None` if `rest` is anything
/// else (`127.0.0.1.evil.example`, `127.0.0.1@evil`, `:0`, `:+80`).
fn after_port(rest: &str) -> Option<&str> {
    let tail = match rest.strip_prefix(':') {
        Some(port_and_tail) => {
            let digits = port_and_tail.bytes().take_while(u8::is_ascii_digit).count();
            let port = &port_and_tail[..digits];
            // At most 5 digits and a valid non-zero port.
            if digits == 0 || digits > 5 || !matches!(port.parse::<u32>(), Ok(1..=65_535)) {
                return None;
            }
            &port_and_tail[digits..]
        }
        None => rest,
    };
    (tail.is_empty() || tail.starts_with(['/', '?'])).then_some(tail)
}

/// Why a PKCE parameter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceError {
    /// `code_challenge_method` other than `S256` (`plain` included, and
    /// absent, which RFC 7636 §4.3 defines as `plain`).
    MethodNotS256,
    /// The challenge is not 43 base64url characters (the size of an S256
    /// challenge, RFC 7636 §4.2).
    MalformedChallenge,
}

/// Checks an authorization request's PKCE parameters: only `S256`
/// (RFC 9700 §2.1.1: `plain` is not to be used; RFC 7636 §4.3: an absent
/// method means `plain`, so it is refused too).
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceError> {
    if method != Some("S256") {
        return Err(PkceError::MethodNotS256);
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if challenge.len() != 43 || !challenge.bytes().all(base64url) {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(())
}

/// Whether `verifier` answers the S256 `challenge` (RFC 7636 §4.6:
/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge`),
/// compared in constant time. A verifier outside the syntax of RFC 7636
/// §4.1 (43 to 128 characters of `[A-Za-z0-9-._~]`) never matches.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_challenge(challenge, Some("S256")), Ok(()));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&verifier.replace('d', "e"), challenge));
        // `plain`, an absent method and a lowercase name are refused.
        assert_eq!(
            check_challenge(verifier, Some("plain")),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(challenge, None),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(challenge, Some("s256")),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(&challenge[1..], Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        assert_eq!(
            check_challenge(&challenge.replace('-', "+"), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        // `plain` use of the challenge as its own verifier fails.
        assert!(!verifier_matches(challenge, challenge));
        // Too short or with a character outside the syntax.
        assert!(!verifier_matches("short", "short"));
        assert!(!verifier_matches(&format!("{verifier} "), challenge));
    }

    #[test]
    fn redirect_matching_is_exact_except_the_loopback_port() {
        let reg = "https://grafana.example.com/login/generic_oauth";
        assert!(redirect_uri_matches(reg, reg));
        for bad in [
            "https://grafana.example.com/login/generic_oauth/",
            "https://grafana.example.com/login/generic_oauth?x=1",
            "https://GRAFANA.example.com/login/generic_oauth",
            "https://grafana.example.com:443/login/generic_oauth",
            "https://grafana.example.com/login/generic_oauth#",
        ] {
            assert!(!redirect_uri_matches(reg, bad), "{bad}");
        }
        let lo = "http://127.0.0.1/callback";
        for ok in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:65535/callback",
        ] {
            assert!(redirect_uri_matches(lo, ok), "{ok}");
        }
        assert!(redirect_uri_matches(
            "http://[::1]:8080/cb?a=1",
            "http://[::1]:3000/cb?a=1"
        ));
        for bad in [
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:080000/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:+80/callback",
            "http://127.0.0.1.evil.example/callback",
            "http://127.0.0.1@evil.example/callback",
            "http://127.0.0.1:80@evil.example/callback",
            "http://127.0.0.1:8080/callback/x",
            "http://[::1]:8080/callback",
            "https://127.0.0.1:8080/callback",
        ] {
            assert!(!redirect_uri_matches(lo, bad), "{bad}");
        }
        // `localhost` gets no port exception (RFC 8252 §8.3).
        assert!(!redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:8080/cb"
        ));
        // Private-use schemes: exact.
        let app = "app.immich:///oauth-callback";
        assert!(redirect_uri_matches(app, app));
        assert!(!redirect_uri_matches(app, "app.immich:///oauth-callback2"));
    }

    proptest! {
        /// Exact strings always match; a loopback registration matches
        /// the same path on any valid port and nothing with another path.
        #[test]
        fn loopback_ports(port in 1u32..=65_535, path in "[a-z/?=]{0,20}", other in "[a-z/?=]{0,20}") {
            let reg = format!("http://127.0.0.1/{path}");
            prop_assert!(redirect_uri_matches(&reg, &reg));
            let same_path = format!("http://127.0.0.1:{port}/{path}");
            let other_path = format!("http://127.0.0.1:{port}/{other}");
            prop_assert!(redirect_uri_matches(&reg, &same_path));
            prop_assert_eq!(redirect_uri_matches(&reg, &other_path), other == path);
        }

        /// Outside loopback, matching is string equality.
        #[test]
        fn non_loopback_is_equality(a in "https://[a-z.]{1,12}(:[0-9]{1,5})?/[a-z]{0,8}", b in "https://[a-z.]{1,12}(:[0-9]{1,5})?/[a-z]{0,8}") {
            prop_assert_eq!(redirect_uri_matches(&a, &b), a == b);
        }

        /// A verifier matches its own S256 challenge and no other.
        #[test]
        fn verifiers(v in "[A-Za-z0-9._~-]{43,128}", w in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, v.as_bytes()));
            prop_assert_eq!(check_challenge(&challenge, Some("S256")), Ok(()));
            prop_assert!(verifier_matches(&v, &challenge));
            prop_assert_eq!(verifier_matches(&w, &challenge), v == w);
        }
    }
}
