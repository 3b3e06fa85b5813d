//! Request message framing: where a request's body ends, decided from its
//! `Content-Length` and `Transfer-Encoding` fields, strictly.
//!
//! Request smuggling lives in the gap between two parsers that frame one
//! byte stream differently: a front that reads `Content-Length` and a
//! gateway that reads `Transfer-Encoding`, or one that takes the first of
//! two lengths and one that takes the last. RFC 9112 §6.3 lists the
//! ambiguous cases and lets a server refuse them; vestibule refuses every
//! one, so that nothing it forwards can be framed two ways:
//!
//! - `Transfer-Encoding` together with `Content-Length` (RFC 9112 §6.1,
//!   §6.3 item 3: "a server MAY reject"; the connection must close);
//! - more than one `Content-Length` value, even identical ones (RFC 9110
//!   §8.6 and RFC 9112 §6.3 item 5 let a recipient either collapse
//!   identical values or reject; a front that keeps the first of `5, 5`
//!   and an app that sums or refuses them disagree, so we reject);
//! - a `Content-Length` that is not `1*DIGIT` (RFC 9110 §8.6), or too
//!   large for a `u64`;
//! - a `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1:
//!   chunked must be final and applied once; any other coding is one
//!   vestibule would have to trust the app to decode the same way, and a
//!   request carrying one gets 400 rather than the 501 the RFC suggests);
//! - `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: "MUST
//!   treat the message as if the framing is faulty").
//!
//! Chunked bodies themselves (chunk sizes, extensions, CRLFs) are decoded
//! by hyper, which fails the body stream on the first malformed byte;
//! [`chunked_body_ok`] is the strict reference grammar the tests compare
//! against.
//!
//! [`stream`] follows the message boundaries of a whole connection, to see
//! what hyper hides from a service: a head with both `Content-Length` and
//! `Transfer-Encoding`.

use std::fmt;

pub mod stream;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (neither field).
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndTransferEncoding,
    /// More than one `Content-Length` value, equal or not.
    RepeatedLength,
    /// A `Content-Length` value that is not a decimal number.
    BadLength,
    /// A `Transfer-Encoding` other than exactly `chunked`.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LengthAndTransferEncoding => {
                "the request has both Content-Length and Transfer-Encoding"
            }
            Self::RepeatedLength => "the request has more than one Content-Length value",
            Self::BadLength => "the request's Content-Length is not a decimal number",
            Self::UnsupportedTransferEncoding => {
                "the request's Transfer-Encoding is not exactly `chunked`"
            }
            Self::TransferEncodingInHttp10 => "an HTTP/1.0 request has Transfer-Encoding",
        })
    }
}

impl std::error::Error for FramingError {}

/// The elements of a comma-separated field over all its lines (RFC 9110
/// §5.6.1: empty elements are ignored, OWS around each is trimmed).
fn list_elements<'a>(lines: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    lines
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
}

/// Decides a request's body framing from its `Content-Length` and
/// `Transfer-Encoding` field lines (every line of each, in order), or
/// refuses it (see the module documentation). `http11` is false for
/// HTTP/1.0. An HTTP/2 request has no `Transfer-Encoding` (RFC 9113
/// §8.2.2) and its `Content-Length` only has to agree with its frames,
/// which hyper checks; call this for HTTP/1 only.
pub fn request_body_framing<'a>(
    http11: bool,
    content_length: impl Iterator<Item = &'a [u8]>,
    transfer_encoding: impl Iterator<Item = &'a [u8]>,
) -> Result<BodyFraming, FramingError> {
    let mut te_lines = transfer_encoding.peekable();
    let mut cl_lines = content_length.peekable();
    let has_te = te_lines.peek().is_some();
    let has_cl = cl_lines.peek().is_some();
    if has_te {
        if !http11 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        if has_cl {
            return Err(FramingError::LengthAndTransferEncoding);
        }
        let mut codings = list_elements(te_lines);
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
            _ => Err(FramingError::UnsupportedTransferEncoding),
        };
    }
    if !has_cl {
        return Ok(BodyFraming::Empty);
    }
    let mut values = list_elements(cl_lines);
    let Some(value) = values.next() else {
        // Only empty lines or commas: no number at all.
        return Err(FramingError::BadLength);
    };
    if values.next().is_some() {
        return Err(FramingError::RepeatedLength);
    }
    decimal(value)
        .map(BodyFraming::Length)
        .ok_or(FramingError::BadLength)
}

/// `1*DIGIT` as a `u64` (no sign, no white space inside, no overflow).
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether a field name is a look-alike of `Content-Length` or
/// `Transfer-Encoding`: the same with `_` for `-` (`Transfer_Encoding`).
/// hyper frames by the exact names only, but CGI, WSGI and Rack map both
/// spellings to one variable, so an app behind vestibule could frame the
/// body by a field vestibule ignored. Refused as ambiguous framing.
pub fn is_framing_lookalike(name: &[u8]) -> bool {
    [&b"content-length"[..], b"transfer-encoding"]
        .iter()
        .any(|real| {
            name.len() == real.len()
                && !name.eq_ignore_ascii_case(real)
                && name
                    .iter()
                    .zip(real.iter())
                    .all(|(&n, &r)| n.to_ascii_lowercase() == r || (n == b'_' && r == b'-'))
        })
}

/// Why a request target's form is refused (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// `CONNECT`: vestibule is a reverse proxy, not a tunnel.
    Connect,
    /// Authority-form (`host:port`) with a method other than `CONNECT`
    /// (RFC 9112 §3.2.3).
    AuthorityForm,
    /// Asterisk-form (`*`) with a method other than `OPTIONS` (RFC 9112
    /// §3.2.4).
    AsteriskForm,
    /// Absolute-form with a scheme other than `http` or `https`.
    Scheme,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "CONNECT is not served: this is a reverse proxy",
            Self::AuthorityForm => "an authority-form request target is only for CONNECT",
            Self::AsteriskForm => "a `*` request target is only for OPTIONS",
            Self::Scheme => "an absolute-form request target must be http or https",
        })
    }
}

impl std::error::Error for TargetError {}

/// Checks that a request target has a form its method allows (RFC 9112
/// §3.2): origin-form (a path), absolute-form with `http`/`https` (whose
/// authority [`crate::headers::check_host`] compares with `Host`), or `*`
/// for `OPTIONS`; never `CONNECT`.
pub fn check_target_form(
    connect: bool,
    options: bool,
    scheme: Option<&str>,
    has_authority: bool,
    path: &str,
) -> Result<(), TargetError> {
    if connect {
        return Err(TargetError::Connect);
    }
    match scheme {
        Some(s) if !s.eq_ignore_ascii_case("http") && !s.eq_ignore_ascii_case("https") => {
            return Err(TargetError::Scheme);
        }
        None if has_authority => return Err(TargetError::AuthorityForm),
        _ => {}
    }
    if path == "*" && !options {
        return Err(TargetError::AsteriskForm);
    }
    Ok(())
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC
/// 3986 §3.2.2): a bracketed IP literal, or a reg-name of unreserved,
/// sub-delims and percent-escapes, then an optional all-digit port. No
/// userinfo (`@`), path, query or white space: the app must not find a
/// second host inside it. An empty value is allowed (RFC 9112 §3.2).
pub fn host_value_ok(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        let Some(end) = host.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &host[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        (&host[..0], &host[end + 1..])
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, &host[host.len()..]),
        }
    };
    let name_ok = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    let port_ok = port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    name_ok && port_ok
}

/// Whether `body` is exactly one well-formed chunked body (RFC 9112 §7.1),
/// with nothing after it: `chunk-size` is `1*HEXDIG` (fitting a `u64`),
/// each chunk extension is `;` `token` [`=` (`token` / `quoted-string`)]
/// with optional BWS, every line ends in CRLF (a bare LF or CR is refused),
/// the data is followed by CRLF, and the trailer section is field lines
/// (`token ":" value`) ended by an empty line. The strict reference the
/// server's behaviour is tested against.
pub fn chunked_body_ok(mut body: &[u8]) -> bool {
    loop {
        let Some((line, rest)) = crlf_line(body) else {
            return false;
        };
        let Some(size) = chunk_size_line(line) else {
            return false;
        };
        body = rest;
        if size == 0 {
            break;
        }
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        if body.len() < size + 2 || &body[size..size + 2] != b"\r\n" {
            return false;
        }
        body = &body[size + 2..];
    }
    // Trailer section: field lines up to an empty line.
    loop {
        let Some((line, rest)) = crlf_line(body) else {
            return false;
        };
        body = rest;
        if line.is_empty() {
            return body.is_empty();
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        if !is_token(&line[..colon]) || !line[colon + 1..].iter().all(|&b| is_field_vchar(b)) {
            return false;
        }
    }
}

/// The bytes before the first CRLF and those after it; `None` without a
/// CRLF, or when a bare CR or LF comes first.
fn crlf_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\r' || c == b'\n')?;
    (b[i] == b'\r' && b.get(i + 1) == Some(&b'\n')).then(|| (&b[..i], &b[i + 2..]))
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1, §7.1.1).
fn chunk_size_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let size = line[..digits].iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(d))
    })?;
    let mut ext = &line[digits..];
    while !ext.is_empty() {
        // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        ext = ext.trim_ascii_start();
        ext = ext.strip_prefix(b";")?.trim_ascii_start();
        let name = ext.iter().take_while(|&&b| is_tchar(b)).count();
        if name == 0 {
            return None;
        }
        ext = ext[name..].trim_ascii_start();
        if let Some(v) = ext.strip_prefix(b"=") {
            let v = v.trim_ascii_start();
            let len = if v.first() == Some(&b'"') {
                quoted_string_len(v)?
            } else {
                v.iter().take_while(|&&b| is_tchar(b)).count()
            };
            if len == 0 {
                return None;
            }
            ext = &v[len..];
        }
        if !ext.is_empty() && !matches!(ext[0], b' ' | b'\t' | b';') {
            return None;
        }
    }
    Some(size)
}

/// The length of the `quoted-string` (RFC 9110 §5.6.4) `s` starts with.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !(escaped == b'\t' || escaped == b' ' || is_vchar_or_obs(escaped)) {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF => i += 1,
            _ => return None,
        }
    }
    None
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn is_vchar_or_obs(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) || b >= 0x80
}

/// A byte allowed in a field value (RFC 9110 §5.5: VCHAR, obs-text, SP, HTAB).
fn is_field_vchar(b: u8) -> bool {
    b == b' ' || b == b'\t' || is_vchar_or_obs(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framing(http11: bool, cl: &[&str], te: &[&str]) -> Result<BodyFraming, FramingError> {
        request_body_framing(
            http11,
            cl.iter().map(|s| s.as_bytes()),
            te.iter().map(|s| s.as_bytes()),
        )
    }

    #[test]
    fn target_forms() {
        assert_eq!(check_target_form(false, false, None, false, "/x"), Ok(()));
        assert_eq!(
            check_target_form(false, false, Some("HTTP"), true, "/x"),
            Ok(())
        );
        assert_eq!(check_target_form(false, true, None, false, "*"), Ok(()));
        assert_eq!(
            check_target_form(true, false, None, true, "/"),
            Err(TargetError::Connect)
        );
        assert_eq!(
            check_target_form(false, false, None, true, "/"),
            Err(TargetError::AuthorityForm)
        );
        assert_eq!(
            check_target_form(false, false, None, false, "*"),
            Err(TargetError::AsteriskForm)
        );
        assert_eq!(
            check_target_form(false, false, Some("ftp"), true, "/"),
            Err(TargetError::Scheme)
        );
    }

    #[test]
    fn host_values() {
        for ok in [
            "",
            "app.test",
            "app.test:8080",
            "127.0.0.1",
            "[::1]:443",
            "xn--bcher-kva.example",
        ] {
            assert!(host_value_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "a b",
            "user@app.test",
            "app.test/x",
            "app.test:80x",
            "app.test:80:81",
            "[::1",
            "app.test\\x",
            "a?b",
            "a#b",
            "[]",
        ] {
            assert!(!host_value_ok(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn framing_lookalikes() {
        for name in [
            "Transfer_Encoding",
            "content_length",
            "CONTENT_length",
            "Transfer_encoding",
        ] {
            assert_eq!(
                is_framing_lookalike(name.as_bytes()),
                name.contains('_'),
                "{name}"
            );
        }
        for name in [
            "Content-Length",
            "transfer-encoding",
            "x_content_length",
            "content-lengths",
        ] {
            assert!(!is_framing_lookalike(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn plain_framings_pass() {
        assert_eq!(framing(true, &[], &[]), Ok(BodyFraming::Empty));
        assert_eq!(framing(true, &["0"], &[]), Ok(BodyFraming::Length(0)));
        assert_eq!(framing(false, &["17"], &[]), Ok(BodyFraming::Length(17)));
        assert_eq!(framing(true, &[], &["chunked"]), Ok(BodyFraming::Chunked));
        assert_eq!(framing(true, &[], &[" Chunked "]), Ok(BodyFraming::Chunked));
    }

    #[test]
    fn every_ambiguous_framing_is_refused() {
        use FramingError::*;
        assert_eq!(
            framing(true, &["5"], &["chunked"]),
            Err(LengthAndTransferEncoding)
        );
        assert_eq!(framing(true, &["5", "6"], &[]), Err(RepeatedLength));
        assert_eq!(framing(true, &["5", "5"], &[]), Err(RepeatedLength));
        assert_eq!(framing(true, &["5, 5"], &[]), Err(RepeatedLength));
        assert_eq!(framing(true, &["+5"], &[]), Err(BadLength));
        assert_eq!(framing(true, &["5 5"], &[]), Err(BadLength));
        assert_eq!(framing(true, &["0x5"], &[]), Err(BadLength));
        assert_eq!(framing(true, &[""], &[]), Err(BadLength));
        assert_eq!(
            framing(true, &["99999999999999999999999"], &[]),
            Err(BadLength)
        );
        assert_eq!(
            framing(true, &[], &["gzip, chunked"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            framing(true, &[], &["chunked, chunked"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            framing(true, &[], &["chunked", "chunked"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            framing(true, &[], &["chunked;q=1"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            framing(true, &[], &["xchunked"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            framing(true, &[], &["identity"]),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(framing(true, &[], &[""]), Err(UnsupportedTransferEncoding));
        assert_eq!(
            framing(false, &[], &["chunked"]),
            Err(TransferEncodingInHttp10)
        );
    }

    #[test]
    fn chunked_reference_grammar() {
        for good in [
            &b"0\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5;name=value\r\nhello\r\n0\r\n\r\n",
            b"5 ; a ; b=\"q\\\"x\"\r\nhello\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
            b"00005\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(chunked_body_ok(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"0\r\n",
            b"0\n\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(!chunked_body_ok(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// The obvious reading of the rules, written separately: the framing
    /// is decided only when exactly one of the two fields carries exactly
    /// one element, and that element is `chunked` or all digits.
    fn reference(http11: bool, cl: &[String], te: &[String]) -> Option<BodyFraming> {
        let elements = |lines: &[String]| -> Vec<String> {
            lines
                .iter()
                .flat_map(|l| l.split(','))
                .map(|e| e.trim_matches([' ', '\t']).to_owned())
                .filter(|e| !e.is_empty())
                .collect()
        };
        match (cl.is_empty(), te.is_empty()) {
            (true, true) => Some(BodyFraming::Empty),
            (false, false) => None,
            (true, false) => {
                let t = elements(te);
                (http11 && t.len() == 1 && t[0].eq_ignore_ascii_case("chunked"))
                    .then_some(BodyFraming::Chunked)
            }
            (false, true) => {
                let c = elements(cl);
                if c.len() != 1 || !c[0].bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                c[0].parse::<u64>().ok().map(BodyFraming::Length)
            }
        }
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("chunked".to_owned()),
            Just("CHUNKED".to_owned()),
            Just("gzip".to_owned()),
            Just("5".to_owned()),
            Just(" 5 ".to_owned()),
            "[0-9]{1,22}",
            "[0-9a-z ,;\t+-]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(
            http11: bool,
            cl in proptest::collection::vec(value(), 0..3),
            te in proptest::collection::vec(value(), 0..3),
        ) {
            let got = request_body_framing(
                http11,
                cl.iter().map(|s| s.as_bytes()),
                te.iter().map(|s| s.as_bytes()),
            );
            prop_assert_eq!(got.ok(), reference(http11, &cl, &te));
        }

        /// A body built from well-formed chunks is accepted, and the same
        /// body with a byte after its end (a second message) is not.
        #[test]
        fn built_chunked_bodies_pass(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 0..5)) {
            let mut body = Vec::new();
            for c in &chunks {
                body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                body.extend_from_slice(c);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            prop_assert!(chunked_body_ok(&body));
            // Anything after the last chunk is a second message: refused.
            body.extend_from_slice(b"X");
            prop_assert!(!chunked_body_ok(&body));
        }

        /// httparse (hyper's parser) agrees on the size of every chunk-size
        /// line the strict grammar accepts: the strict reading is never a
        /// different framing from the server's, only a narrower one.
        #[test]
        fn chunk_sizes_agree_with_httparse(
            size in "[0-9a-fA-F]{1,15}",
            ext in "(;[a-z]{1,4}(=([a-z0-9]{1,4}|\"[a-z ]{0,4}\"))?){0,2}",
        ) {
            let line = format!("{size}{ext}\r\n");
            let strict = chunk_size_line(line.trim_end().as_bytes());
            prop_assert!(strict.is_some(), "{}", line);
            match httparse::parse_chunk_size(line.as_bytes()) {
                Ok(httparse::Status::Complete((consumed, n))) => {
                    prop_assert_eq!(consumed, line.len());
                    prop_assert_eq!(strict, Some(n));
                }
                other => prop_assert!(false, "httparse: {:?} for {:?}", other, line),
            }
        }

        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = chunked_body_ok(&body);
        }
    }
}
