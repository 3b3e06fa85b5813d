//! Identity header values: decoded once, then validated.
//!
//! HTTP field values are bytes, and most identity-aware proxies send ASCII
//! only, so non-ASCII names reach us in one of two encodings:
//!
//! - geOrchestra's `{base64}` prefix followed by standard base64 of UTF-8;
//! - RFC 2047 encoded-words (`=?UTF-8?Q?Ren=C3=A9e?=`), as Tailscale sends.
//!
//! A dialect says which of them its sender uses ([`Decoding`]); a value is
//! decoded with at most that one scheme, and only once. Whatever the path, the
//! result must be UTF-8, free of control characters and no longer than the
//! caller's bound. Nothing is ever truncated: a value that does not fit is
//! refused.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

/// The prefix geOrchestra puts before base64-encoded values (exact, case
/// sensitive, as its security proxy writes it).
pub const BASE64_PREFIX: &str = "{base64}";

/// RFC 2047 §2: "An 'encoded-word' may not be more than 75 characters long".
pub const MAX_ENCODED_WORD_LEN: usize = 75;

/// Standard alphabet, padding optional on input (senders differ), trailing
/// bits refused so each value has one spelling.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which encodings a dialect's sender uses.
///
/// With neither flag set a value is taken literally, even if it looks
/// encoded: a sender that does not encode must not have its values
/// reinterpreted (that would turn a user named `=?utf-8?q?admin?=` into
/// `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoding {
    /// Values starting with `{base64}` are base64 (geOrchestra).
    pub base64_prefix: bool,
    /// Values containing `=?` are RFC 2047 encoded-words (Tailscale).
    pub rfc2047: bool,
}

/// Why an identity value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// The value, raw or decoded, is longer than the bound (in bytes).
    TooLong {
        /// The bound, in bytes.
        max: usize,
    },
    /// The value, raw or decoded, is not valid UTF-8.
    NotUtf8,
    /// The decoded value contains a control character (NUL, CR, LF, TAB,
    /// DEL, C1 controls, ...).
    ControlCharacter,
    /// The text after `{base64}` is not valid standard base64.
    Base64,
    /// A `=?` starts something that is not a well-formed RFC 2047
    /// encoded-word.
    EncodedWord,
    /// An encoded-word names a charset other than UTF-8, US-ASCII or
    /// ISO-8859-1.
    UnsupportedCharset,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "the value is longer than {max} bytes"),
            Self::NotUtf8 => f.write_str("the value is not valid UTF-8"),
            Self::ControlCharacter => f.write_str("the value contains a control character"),
            Self::Base64 => f.write_str("the value after `{base64}` is not valid base64"),
            Self::EncodedWord => {
                f.write_str("the value contains a malformed RFC 2047 encoded-word")
            }
            Self::UnsupportedCharset => f.write_str(
                "the value contains an RFC 2047 encoded-word in a charset other than \
                 UTF-8, US-ASCII or ISO-8859-1",
            ),
        }
    }
}

impl std::error::Error for ValueError {}

/// Decodes and validates one identity header value.
///
/// 1. Leading and trailing SP / HTAB are trimmed (OWS, RFC 9110 §5.5).
/// 2. A value longer than `max_len` bytes is refused, not truncated.
/// 3. With `base64_prefix`, a value starting with `{base64}` is the base64
///    of the real value. Otherwise, with `rfc2047`, a value containing `=?`
///    is decoded as RFC 2047 encoded-words with the text around them kept.
///    Otherwise the bytes are the value.
/// 4. The result must be UTF-8, contain no control character
///    ([`char::is_control`]) and be at most `max_len` bytes.
pub fn decode_value(raw: &[u8], decoding: Decoding, max_len: usize) -> Result<String, ValueError> {
    let raw = trim_ows(raw);
    if raw.len() > max_len {
        return Err(ValueError::TooLong { max: max_len });
    }
    let decoded = match raw.strip_prefix(BASE64_PREFIX.as_bytes()) {
        Some(payload) if decoding.base64_prefix => {
            let bytes = BASE64_LENIENT
                .decode(payload)
                .map_err(|_| ValueError::Base64)?;
            String::from_utf8(bytes).map_err(|_| ValueError::NotUtf8)?
        }
        _ if decoding.rfc2047 && contains(raw, b"=?") => decode_rfc2047(raw)?,
        _ => String::from_utf8(raw.to_vec()).map_err(|_| ValueError::NotUtf8)?,
    };
    if decoded.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter);
    }
    if decoded.len() > max_len {
        return Err(ValueError::TooLong { max: max_len });
    }
    Ok(decoded)
}

/// Encodes `value` for a sender that uses RFC 2047.
///
/// A value that would decode to itself as it is (printable ASCII, no `=?`,
/// no leading or trailing space, which decoding trims) is returned
/// unchanged. Anything else becomes `=?UTF-8?B?...?=` encoded-words of at
/// most [`MAX_ENCODED_WORD_LEN`] characters each (RFC 2047 §2), cut only
/// between characters (§5: each word holds whole characters) and joined by
/// single spaces, which decoding drops (§6.2).
pub fn encode_rfc2047(value: &str) -> Cow<'_, str> {
    if is_plain(value) && !value.contains("=?") {
        return Cow::Borrowed(value);
    }
    const OVERHEAD: usize = "=?UTF-8?B??=".len();
    // Base64 turns 3 bytes into 4 characters.
    const MAX_BYTES: usize = (MAX_ENCODED_WORD_LEN - OVERHEAD) / 4 * 3;
    let mut words: Vec<String> = Vec::new();
    let mut chunk_start = 0;
    let mut chunk_len = 0;
    for c in value.chars() {
        if chunk_len + c.len_utf8() > MAX_BYTES {
            words.push(b_word(
                value
                    .get(chunk_start..chunk_start + chunk_len)
                    .unwrap_or(""),
            ));
            chunk_start += chunk_len;
            chunk_len = 0;
        }
        chunk_len += c.len_utf8();
    }
    words.push(b_word(value.get(chunk_start..).unwrap_or("")));
    Cow::Owned(words.join(" "))
}

/// Encodes `value` for a sender that uses the `{base64}` prefix.
///
/// A value that would decode to itself (printable ASCII, no leading or
/// trailing space, not starting with `{base64}`) is returned unchanged;
/// anything else becomes `{base64}` and standard padded base64 of its UTF-8.
pub fn encode_base64_prefixed(value: &str) -> Cow<'_, str> {
    if is_plain(value) && !value.starts_with(BASE64_PREFIX) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(format!("{BASE64_PREFIX}{}", STANDARD.encode(value)))
}

/// Printable ASCII with nothing for OWS trimming to eat.
fn is_plain(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
}

fn b_word(chunk: &str) -> String {
    format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk))
}

/// Trims SP and HTAB at both ends.
/// Strips optional whitespace (RFC 9110 §5.6.3: spaces and tabs).
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a value made of encoded-words and plain text.
fn decode_rfc2047(raw: &[u8]) -> Result<String, ValueError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    // Whether the last thing appended was an encoded-word, and the
    // whitespace seen since: RFC 2047 §6.2 drops whitespace between two
    // adjacent encoded-words, and only there.
    let mut after_word = false;
    loop {
        let start = rest.windows(2).position(|w| w == b"=?");
        let (text, word_and_rest) = match start {
            Some(i) => (rest.get(..i).unwrap_or(&[]), rest.get(i..)),
            None => (rest, None),
        };
        let Some(word_and_rest) = word_and_rest else {
            out.push_str(std::str::from_utf8(text).map_err(|_| ValueError::NotUtf8)?);
            return Ok(out);
        };
        let between_words = after_word && text.iter().all(|&b| b == b' ' || b == b'\t');
        if !between_words {
            out.push_str(std::str::from_utf8(text).map_err(|_| ValueError::NotUtf8)?);
        }
        let (decoded, tail) = decode_encoded_word(word_and_rest)?;
        out.push_str(&decoded);
        rest = tail;
        after_word = true;
    }
}

/// Decodes the encoded-word at the start of `s` (which starts with `=?`),
/// returning its text and what follows it.
///
/// `encoded-word = "=?" charset "?" encoding "?" encoded-text "?="` (§2).
fn decode_encoded_word(s: &[u8]) -> Result<(String, &[u8]), ValueError> {
    let s = s.strip_prefix(b"=?").ok_or(ValueError::EncodedWord)?;
    let (charset, s) = split_at_byte(s, b'?').ok_or(ValueError::EncodedWord)?;
    let (encoding, s) = split_at_byte(s, b'?').ok_or(ValueError::EncodedWord)?;
    // encoded-text has no `?` (§2), so the first one must start the `?=`.
    let (text, s) = split_at_byte(s, b'?').ok_or(ValueError::EncodedWord)?;
    let rest = s.strip_prefix(b"=").ok_or(ValueError::EncodedWord)?;
    if charset.is_empty() || !charset.iter().all(|&b| is_token_char(b)) {
        return Err(ValueError::EncodedWord);
    }
    // encoded-text = 1*<any printable ASCII other than "?" or SPACE> (§2).
    if text.is_empty() || !text.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(ValueError::EncodedWord);
    }
    let bytes = match encoding {
        b"B" | b"b" => BASE64_LENIENT
            .decode(text)
            .map_err(|_| ValueError::EncodedWord)?,
        b"Q" | b"q" => decode_q(text)?,
        _ => return Err(ValueError::EncodedWord),
    };
    // RFC 2231 §5 lets a language follow the charset: `UTF-8*en`.
    let charset = match charset.iter().position(|&b| b == b'*') {
        Some(star) => charset.get(..star).unwrap_or(&[]),
        None => charset,
    };
    let text = if charset.eq_ignore_ascii_case(b"utf-8") {
        String::from_utf8(bytes).map_err(|_| ValueError::NotUtf8)?
    } else if charset.eq_ignore_ascii_case(b"us-ascii") {
        if !bytes.is_ascii() {
            return Err(ValueError::EncodedWord);
        }
        bytes.into_iter().map(char::from).collect()
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        // ISO-8859-1 is the first 256 code points of Unicode.
        bytes.into_iter().map(char::from).collect()
    } else {
        return Err(ValueError::UnsupportedCharset);
    };
    Ok((text, rest))
}

/// The "Q" encoding (RFC 2047 §4.2): `_` is a space, `=XX` a byte in hex
/// (either case accepted), other printable characters stand for themselves.
fn decode_q(text: &[u8]) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = bytes.next().and_then(|&h| hex_value(h));
                let lo = bytes.next().and_then(|&l| hex_value(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(ValueError::EncodedWord),
                }
            }
            _ => out.push(b),
        }
    }
    Ok(out)
}

/// One hexadecimal digit's value, either case: the Q encoding here and
/// percent-encoding in `path` (RFC 3986 §2.1) both read it.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 2047 §2 `token`: printable ASCII except SPACE and `especials`.
fn is_token_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"()<>@,;:\"/[]?.=".contains(&b)
}

/// Splits at the first `sep`, dropping it.
fn split_at_byte(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Alike within: the four Decoding settings, one constant each.
    const B64: Decoding = Decoding {
        base64_prefix: true,
        rfc2047: false,
    };
    const Q: Decoding = Decoding {
        base64_prefix: false,
        rfc2047: true,
    };
    const BOTH: Decoding = Decoding {
        base64_prefix: true,
        rfc2047: true,
    };
    const LITERAL: Decoding = Decoding {
        base64_prefix: false,
        rfc2047: false,
    };

    fn dec(raw: &str, d: Decoding) -> Result<String, ValueError> {
        decode_value(raw.as_bytes(), d, 256)
    }

    #[test]
    fn georchestra_base64() {
        // "Grégoire" as geOrchestra's security proxy sends it.
        assert_eq!(encode_base64_prefixed("Grégoire"), "{base64}R3LDqWdvaXJl");
        assert_eq!(dec("{base64}R3LDqWdvaXJl", B64).unwrap(), "Grégoire");
        // Padding optional.
        assert_eq!(dec("{base64}w6k=", B64).unwrap(), "é");
        assert_eq!(dec("{base64}w6k", B64).unwrap(), "é");
        assert_eq!(dec("{base64}", B64).unwrap(), "");
        // The prefix is exact and case-sensitive.
        assert_eq!(dec("{BASE64}w6k=", B64).unwrap(), "{BASE64}w6k=");
        assert_eq!(dec(" {base64}w6k= ", B64).unwrap(), "é");
        for bad in ["{base64}w6k*", "{base64}w", "{base64} w6k=", "{base64}w6l="] {
            assert_eq!(dec(bad, B64), Err(ValueError::Base64), "{bad:?}");
        }
        // Decodes to bytes that are not UTF-8.
        assert_eq!(dec("{base64}/w==", B64), Err(ValueError::NotUtf8));
    }

    #[test]
    fn tailscale_q_and_b_words() {
        assert_eq!(dec("=?utf-8?q?Ren=C3=A9e?=", Q).unwrap(), "Renée");
        assert_eq!(
            dec("=?UTF-8?Q?Ren=c3=a9e_Dupont?=", Q).unwrap(),
            "Renée Dupont"
        );
        assert_eq!(dec("=?UTF-8?B?UmVuw6ll?=", Q).unwrap(), "Renée");
        assert_eq!(dec("=?utf-8?b?UmVuw6ll?=", Q).unwrap(), "Renée");
        assert_eq!(dec("=?UTF-8*fr?Q?Ren=C3=A9e?=", Q).unwrap(), "Renée");
        assert_eq!(dec("=?us-ascii?q?bob?=", Q).unwrap(), "bob");
    }

    #[test]
    fn whitespace_between_adjacent_words_is_dropped() {
        // RFC 2047 §8 examples.
        assert_eq!(dec("(=?ISO-8859-1?Q?a?=)", Q).unwrap(), "(a)");
        assert_eq!(dec("(=?ISO-8859-1?Q?a?= b)", Q).unwrap(), "(a b)");
        assert_eq!(
            dec("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", Q).unwrap(),
            "(ab)"
        );
        assert_eq!(
            dec("(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)", Q).unwrap(),
            "(ab)"
        );
        assert_eq!(dec("(=?ISO-8859-1?Q?a_b?=)", Q).unwrap(), "(a b)");
        // Plain text before the first word keeps its space.
        assert_eq!(
            dec("Dr. =?utf-8?q?Ren=C3=A9e?= X", Q).unwrap(),
            "Dr. Renée X"
        );
    }

    #[test]
    fn iso_8859_1_and_unsupported_charsets() {
        assert_eq!(dec("=?ISO-8859-1?Q?Gr=E9goire?=", Q).unwrap(), "Grégoire");
        assert_eq!(dec("=?iso-8859-1?b?R3LpZ29pcmU=?=", Q).unwrap(), "Grégoire");
        for cs in ["windows-1252", "utf-7", "koi8-r", "utf-16"] {
            let v = format!("=?{cs}?q?abc?=");
            assert_eq!(dec(&v, Q), Err(ValueError::UnsupportedCharset), "{cs}");
        }
        assert_eq!(dec("=?us-ascii?q?=E9?=", Q), Err(ValueError::EncodedWord));
    }

    #[test]
    fn malformed_encoded_words() {
        for bad in [
            "=?",
            "=?utf-8",
            "=?utf-8?q?abc",
            "=?utf-8?q?abc?",
            "=?utf-8?x?abc?=",
            "=?utf-8?qq?abc?=",
            "=??q?abc?=",
            "=?utf-8?q??=",
            "=?utf-8?q?a b?=",
            "=?utf-8?q?=Z0?=",
            "=?utf-8?q?=4?=",
            "=?utf-8?b?!!!!?=",
            "=?ut(f-8?q?a?=",
            "abc=?def",
        ] {
            assert_eq!(dec(bad, Q), Err(ValueError::EncodedWord), "{bad:?}");
        }
        // A UTF-8 character split across two words (forbidden by §5).
        assert_eq!(
            dec("=?utf-8?q?=C3?= =?utf-8?q?=A9?=", Q),
            Err(ValueError::NotUtf8)
        );
    }

    #[test]
    fn control_characters_are_refused_raw_and_smuggled() {
        for raw in ["a\rb", "a\nb", "a\0b", "a\tb", "a\x7fb", "a\u{85}b"] {
            for d in [LITERAL, B64, Q, BOTH] {
                assert_eq!(dec(raw, d), Err(ValueError::ControlCharacter), "{raw:?}");
            }
        }
        for smuggled in [
            "{base64}YQ1i",
            "{base64}YQpi",
            "{base64}YQBi",
            "{base64}YcKFYg==",
        ] {
            assert_eq!(
                dec(smuggled, B64),
                Err(ValueError::ControlCharacter),
                "{smuggled:?}"
            );
        }
        for smuggled in [
            "=?utf-8?q?a=0Db?=",
            "=?utf-8?q?a=0Ab?=",
            "=?utf-8?q?a=00b?=",
            "=?utf-8?b?YQ1i?=",
            "=?iso-8859-1?q?a=85b?=",
        ] {
            assert_eq!(
                dec(smuggled, Q),
                Err(ValueError::ControlCharacter),
                "{smuggled:?}"
            );
        }
    }

    #[test]
    fn length_is_bounded_raw_and_decoded() {
        assert_eq!(decode_value(b"abcd", LITERAL, 4).unwrap(), "abcd");
        assert_eq!(
            decode_value(b"abcde", LITERAL, 4),
            Err(ValueError::TooLong { max: 4 })
        );
        // OWS does not count.
        assert_eq!(decode_value(b"  abcd\t", LITERAL, 4).unwrap(), "abcd");
        // Raw fits, decoded does not: ISO-8859-1 doubles in UTF-8.
        let raw = format!("=?iso-8859-1?b?{}?=", STANDARD.encode([0xe9u8; 60]));
        assert!(raw.len() <= 100);
        assert_eq!(
            decode_value(raw.as_bytes(), Q, 100),
            Err(ValueError::TooLong { max: 100 })
        );
        assert_eq!(
            decode_value(raw.as_bytes(), Q, 120).unwrap(),
            "é".repeat(60)
        );
        // Raw too long is refused before decoding.
        let long = encode_base64_prefixed(&"é".repeat(40)).into_owned();
        assert_eq!(
            decode_value(long.as_bytes(), B64, 80),
            Err(ValueError::TooLong { max: 80 })
        );
    }

    #[test]
    fn raw_bytes_must_be_utf8() {
        assert_eq!(
            decode_value(b"Gr\xe9goire", LITERAL, 64),
            Err(ValueError::NotUtf8)
        );
        assert_eq!(
            decode_value(b"Gr\xe9goire", BOTH, 64),
            Err(ValueError::NotUtf8)
        );
        assert_eq!(
            decode_value(b"\xff =?utf-8?q?a?=", Q, 64),
            Err(ValueError::NotUtf8)
        );
        assert_eq!(
            decode_value("Grégoire".as_bytes(), LITERAL, 64).unwrap(),
            "Grégoire"
        );
    }

    #[test]
    fn flags_off_means_literal() {
        for v in ["{base64}YWRtaW4=", "=?utf-8?q?admin?=", "=?bogus", "a=?b"] {
            assert_eq!(dec(v, LITERAL).unwrap(), v);
        }
        // Each flag only enables its own scheme.
        assert_eq!(dec("=?utf-8?q?admin?=", B64).unwrap(), "=?utf-8?q?admin?=");
        assert_eq!(dec("{base64}YWRtaW4=", Q).unwrap(), "{base64}YWRtaW4=");
        // Decoding happens once: a decoded value that looks encoded stays so.
        let twice = format!(
            "{BASE64_PREFIX}{}",
            STANDARD.encode(encode_rfc2047("é").as_bytes())
        );
        assert_eq!(dec(&twice, BOTH).unwrap(), "=?UTF-8?B?w6k=?=");
    }

    #[test]
    fn encoders_leave_plain_values_alone() {
        assert_eq!(encode_rfc2047("alice@example.com"), "alice@example.com");
        assert_eq!(
            encode_base64_prefixed("alice@example.com"),
            "alice@example.com"
        );
        assert_eq!(encode_rfc2047(""), "");
        // Values that decoding would reinterpret or trim are encoded.
        assert_eq!(encode_rfc2047("a=?b"), "=?UTF-8?B?YT0/Yg==?=");
        assert_eq!(encode_base64_prefixed("{base64}x"), "{base64}e2Jhc2U2NH14");
        assert_eq!(encode_rfc2047(" a"), "=?UTF-8?B?IGE=?=");
        assert_eq!(encode_base64_prefixed("a "), "{base64}YSA=");
    }

    #[test]
    fn long_values_are_split_into_short_words() {
        let v = "é".repeat(100) + "😀";
        let enc = encode_rfc2047(&v);
        let words: Vec<&str> = enc.split(' ').collect();
        assert!(words.len() > 1);
        for w in &words {
            assert!(w.len() <= MAX_ENCODED_WORD_LEN, "{w}");
            assert!(w.starts_with("=?UTF-8?B?") && w.ends_with("?="));
        }
        assert_eq!(decode_value(enc.as_bytes(), Q, 1024).unwrap(), v);
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            ValueError::TooLong { max: 5 }.to_string(),
            "the value is longer than 5 bytes"
        );
        assert_eq!(
            ValueError::ControlCharacter.to_string(),
            "the value contains a control character"
        );
    }

    proptest! {
        #[test]
        fn rfc2047_round_trip(s in "\\PC{0,200}") {
            let enc = encode_rfc2047(&s);
            prop_assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode_value(enc.as_bytes(), Q, 4096), Ok(s));
        }

        #[test]
        fn base64_round_trip(s in "\\PC{0,200}") {
            let enc = encode_base64_prefixed(&s);
            prop_assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode_value(enc.as_bytes(), B64, 4096), Ok(s));
        }

        #[test]
        fn round_trip_of_tricky_ascii(s in "[ =?_{}a-zA-Z0-9]{0,40}") {
            prop_assert_eq!(decode_value(encode_rfc2047(&s).as_bytes(), Q, 4096), Ok(s.clone()));
            prop_assert_eq!(decode_value(encode_base64_prefixed(&s).as_bytes(), B64, 4096), Ok(s));
        }

        #[test]
        fn output_is_clean_and_bounded(
            raw in prop::collection::vec(any::<u8>(), 0..200),
            b64: bool, q: bool, max_len in 0usize..300,
        ) {
            let d = Decoding { base64_prefix: b64, rfc2047: q };
            if let Ok(v) = decode_value(&raw, d, max_len) {
                prop_assert!(!v.chars().any(char::is_control));
                prop_assert!(v.len() <= max_len);
            }
        }

        #[test]
        fn encoded_looking_input_never_panics(
            s in "[=?_ \tqQbB a-zA-Z0-9+/=\\-]{0,80}", b64: bool, q: bool,
        ) {
            let d = Decoding { base64_prefix: b64, rfc2047: q };
            if let Ok(v) = decode_value(s.as_bytes(), d, 256) {
                prop_assert!(!v.chars().any(char::is_control));
            }
        }
    }
}
