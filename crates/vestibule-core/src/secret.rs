//! Secrets: session tokens, their hashes, CSRF tokens, cookie parsing.
//!
//! - A token is 256 random bits (the caller passes them in: this crate does
//!   no I/O), written with a prefix so secret scanners can spot it
//!   (`vss_` for sessions) and base64url without padding.
//! - Only the SHA-256 of a token is ever stored; lookups are by hash.
//! - Comparisons of secrets are constant-time (`subtle`).
//! - [`Secret`] never shows its value in `Debug`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Prefix of session tokens.
pub const SESSION_PREFIX: &str = "vss_";
/// Length of a token's random part once encoded (32 bytes in base64url).
const ENCODED_LEN: usize = 43;

/// A secret string whose `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret a client presented (it is then handled like ours).
    pub fn from_exposed(value: String) -> Self {
        Self(value)
    }

    /// The secret, for the one place that must send it (a cookie, a page
    /// shown once).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A new session token from 32 random bytes.
pub fn session_token(random: [u8; 32]) -> Secret {
    prefixed_token(SESSION_PREFIX, random)
}

/// Whether `s` has the shape of a session token (prefix, 43 base64url
/// characters that decode to 32 bytes). Anything else is never looked up.
pub fn is_session_token(s: &str) -> bool {
    is_prefixed_token(s, SESSION_PREFIX)
}

/// `prefix` followed by 32 random bytes in base64url without padding: the
/// shape of every token vestibule issues (sessions, device credentials).
pub(crate) fn prefixed_token(prefix: &str, random: [u8; 32]) -> Secret {
    Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random)))
}

/// Whether `s` is exactly what [`prefixed_token`] writes for `prefix`: 43
/// base64url characters after it that decode to 32 bytes. The decoder
/// refuses non-zero trailing bits, so each 32 bytes have one spelling.
pub(crate) fn is_prefixed_token(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == ENCODED_LEN && URL_SAFE_NO_PAD.decode(rest).is_ok_and(|b| b.len() == 32)
    })
}

/// SHA-256 of a token: what the store keeps and looks up.
pub fn hash_token(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The CSRF token of a session: derived from the session token (and a
/// `binding`, such as the holder's roles), so it needs no storage and dies
/// with the session. A page embeds it in every state-changing form; the
/// handler recomputes and compares in constant time.
pub fn csrf_token(session: &Secret, binding: &str) -> String {
    let mut input = Vec::with_capacity(session.0.len() + binding.len() + 16);
    input.extend_from_slice(b"vestibule-csrf\0");
    input.extend_from_slice(session.0.as_bytes());
    input.push(0);
    input.extend_from_slice(binding.as_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Constant-time equality of two strings (length is not secret).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in `Cookie` header values, if it appears
/// exactly once. A cookie sent twice (cookie tossing from a sibling
/// domain, RFC 6265 §8.6) is treated as absent.
pub fn find_cookie<'a>(
    header_values: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a str> {
    let mut found = None;
    for value in header_values {
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        // RFC 6265 §4.2.1: cookie-pair *( ";" SP cookie-pair )
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim_matches([' ', '\t']).split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_have_a_prefix_and_256_bits() {
        let t = session_token([7u8; 32]);
        assert!(t.expose().starts_with("vss_"));
        assert!(is_session_token(t.expose()));
        assert_eq!(t.expose().len(), 4 + 43);
        assert_eq!(format!("{t:?}"), "Secret(<redacted>)");
        assert!(!format!("{t:?}").contains("vss_"));
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        for bad in [
            "",
            "vss_",
            "vss_short",
            "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "vss_!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!is_session_token(bad), "{bad}");
        }
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(hash_token("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn csrf_is_per_session_and_compared_in_constant_time() {
        let a = session_token([1; 32]);
        let b = session_token([2; 32]);
        assert_ne!(csrf_token(&a, ""), csrf_token(&b, ""));
        assert_ne!(
            csrf_token(&a, "admin"),
            csrf_token(&a, ""),
            "bound to privileges"
        );
        assert!(secrets_equal(&csrf_token(&a, ""), &csrf_token(&a, "")));
        assert!(!secrets_equal(&csrf_token(&a, ""), &csrf_token(&b, "")));
        assert!(!secrets_equal("a", "ab"));
    }

    #[test]
    fn cookies() {
        let h: &[&[u8]] = &[b"a=1; vestibule=tok; b=2"];
        assert_eq!(find_cookie(h.iter().copied(), "vestibule"), Some("tok"));
        let h: &[&[u8]] = &[b"vestibule=one", b"x=1; vestibule=two"];
        assert_eq!(
            find_cookie(h.iter().copied(), "vestibule"),
            None,
            "tossed cookie"
        );
        let h: &[&[u8]] = &[b"__Host-vestibule=\"q\""];
        assert_eq!(
            find_cookie(h.iter().copied(), "__Host-vestibule"),
            Some("q")
        );
        assert_eq!(find_cookie(h.iter().copied(), "vestibule"), None);
    }

    proptest! {
        #[test]
        fn cookie_parser_never_panics(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = find_cookie([v.as_slice()], "vestibule");
        }

        #[test]
        fn every_generated_token_parses(bytes: [u8; 32]) {
            prop_assert!(is_session_token(session_token(bytes).expose()));
        }
    }
}
