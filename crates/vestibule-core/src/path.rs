//! Request paths for route matching, read every way an upstream might.
//!
//! A gateway decides "`/public` is open, everything else needs a login" on a
//! path that the upstream application server may read differently: it may
//! decode `%2F` into a separator, strip `;jsessionid=...` path parameters
//! before resolving `..` (Tomcat, Jetty), or merge `//` (nginx
//! `merge_slashes`). Each mismatch has been an authentication bypass in
//! oauth2-proxy (GHSA-7rh7-c77v-6434, GHSA-pxq7-h93f-9jrg,
//! GHSA-7x63-xv5r-3p2x).
//!
//! So instead of guessing one reading, [`path_interpretations`] returns all
//! of them, and the caller refuses the request if two readings land on
//! different routes. Inputs that no reasonable server agrees on (backslashes,
//! control characters, broken escapes, non-UTF-8, a raw `#`) are refused
//! outright.
//!
//! A raw `#` never belongs in a request target (RFC 9112 §3.2: origin-form
//! is `absolute-path [ "?" query ]`; RFC 3986 §3.5: the fragment stays with
//! the client). Yet nginx forwards `GET /public#/../app/secret` as sent, a
//! gate that cut the target at `#` judged `/public`, and a file server read
//! `/app/secret`. So the target is cut at `?` only, and a `#` left in the
//! path is refused ([`PathError::Fragment`]). An encoded `%23` or `%3F` is
//! data, but an app may decode it and then cut there; both readings are
//! made.
//!
//! Letter case is one more reading, handled by route matching
//! ([`crate::route`]): a case-insensitive app serves `/ADMINS/x` as
//! `/admins/x`.

use std::fmt;

use crate::decode::hex_value;

/// Paths longer than this many bytes are refused. Servers commonly cap the
/// whole request line at 8 KiB; no route needs more.
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (only origin-form paths are routed).
    NotAbsolute,
    /// A `%` is not followed by two hexadecimal digits (RFC 3986 §2.1).
    BadPercentEncoding,
    /// The percent-decoded path is not valid UTF-8.
    NotUtf8,
    /// The path contains a control character, raw or percent-encoded.
    ControlCharacter,
    /// The path contains a backslash, raw or percent-encoded: some servers
    /// read it as a separator, others as a plain character.
    Backslash,
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    TooLong,
    /// The path contains a raw `#`: a fragment, which a client never sends
    /// (RFC 9112 §3.2, RFC 3986 §3.5), and which the app may read as path.
    Fragment,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => f.write_str("the request path does not start with `/`"),
            Self::BadPercentEncoding => f.write_str(
                "the request path has a `%` that is not followed by two hexadecimal digits",
            ),
            Self::NotUtf8 => f.write_str("the request path does not decode to valid UTF-8"),
            Self::ControlCharacter => f.write_str("the request path contains a control character"),
            Self::Backslash => f.write_str("the request path contains a backslash"),
            Self::TooLong => write!(f, "the request path is longer than {MAX_PATH_LEN} bytes"),
            Self::Fragment => f.write_str(
                "the request target contains a `#` (a fragment is never part of a request)",
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// The path part of an origin-form request target: everything before the
/// first `?` (query, RFC 3986 §3.4). A `#` is **not** cut: a conforming
/// client never sends one (RFC 9112 §3.2), a front may forward it raw and
/// an app may read what follows as path, so it stays in the path, where
/// [`path_interpretations`] refuses it.
pub fn target_path(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

/// The query of an origin-form request target: after the first `?` that
/// comes before any `#`, up to the `#` (RFC 3986 §3.4, §3.5); `None`
/// without one. A `?` inside a fragment starts no query, as for
/// [`target_path`].
pub fn target_query(target: &str) -> Option<&str> {
    let before_fragment = target.split_once('#').map_or(target, |(t, _)| t);
    before_fragment.split_once('?').map(|(_, q)| q)
}

/// Whether any reading of `raw_path` (see [`path_interpretations`]), in any
/// letter case, is `prefix` or lies below it, segment-wise. `prefix` is a
/// clean absolute path without a trailing `/` (vestibule's own
/// `/.vestibule`). A path reserved this way is answered by vestibule or
/// refused, never forwarded: an app that decodes `%2e`, resolves `..`,
/// merges `//` or folds case would otherwise serve a request vestibule
/// judged to be the app's.
///
/// Case is compared ASCII-insensitively and, for non-ASCII paths, also on
/// the Unicode lower- and uppercased reading (`ſ` uppercases to `S`).
pub fn reaches_reserved_prefix(raw_path: &str, prefix: &str) -> Result<bool, PathError> {
    let below = |path: &str, prefix: &str| {
        let (p, x) = (path.as_bytes(), prefix.as_bytes());
        p.len() >= x.len()
            && p[..x.len()].eq_ignore_ascii_case(x)
            && (p.len() == x.len() || p[x.len()] == b'/')
    };
    // One reading, itself, and ASCII: no readings to build (the common
    // request's path).
    if is_plain_path(raw_path) {
        return Ok(below(raw_path, prefix));
    }
    let readings = path_interpretations(raw_path)?;
    Ok(readings.iter().any(|r| {
        below(r, prefix)
            || (!r.is_ascii()
                && (below(&r.to_lowercase(), &prefix.to_lowercase())
                    || below(&r.to_uppercase(), &prefix.to_uppercase())))
    }))
}

/// Every reasonable reading of `raw_path` (a path, without query).
///
/// The readings are the product of three choices, each made by some widely
/// deployed server:
///
/// - `%2F` decoded into `/`, or kept as the three characters `%2F`
///   (uppercased);
/// - `;` path parameters stripped from each segment (`/a;x=1/b` is `/a/b`
///   for Tomcat and Jetty), or kept;
/// - runs of `/` merged into one (nginx `merge_slashes`), or kept.
///
/// Every other escape is decoded, then dot segments (`.`, `..`, encoded or
/// not) are removed as in RFC 3986 §5.2.4. When the path holds an encoded
/// `#` or `?` (`%23`, `%3F`), each reading is also made cut at the first
/// one, before and after dot-segment removal, as an app that decodes first
/// and then looks for a fragment or query would. The distinct results are
/// returned (at most [`MAX_READINGS`]); the first is the plain reading
/// (`%2F` kept, parameters kept, slashes kept, nothing cut).
pub fn path_interpretations(raw_path: &str) -> Result<Vec<String>, PathError> {
    if raw_path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw_path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let units = tokenize(raw_path.as_bytes())?;
    // Validate the fully decoded form once. Every reading differs from it
    // only by ASCII (a `/` written as `%2F`, a `;...` run removed, a `/`
    // removed), so each is UTF-8 and control-free if this one is.
    let full: Vec<u8> = units.iter().map(|u| u.decoded()).collect();
    let full = std::str::from_utf8(&full).map_err(|_| PathError::NotUtf8)?;
    if full.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }

    // A raw `#` was refused above and a raw `?` is cut by the caller
    // (`target_path`), so these were encoded; a raw `?` passed here anyway
    // is cut the same way, which only adds readings.
    let has_delimiter = units.iter().any(|u| matches!(u, Unit::Byte(b'#' | b'?')));
    let cuts: &[Cut] = if has_delimiter {
        &[Cut::None, Cut::BeforeDots, Cut::AfterDots]
    } else {
        &[Cut::None]
    };
    let mut readings: Vec<String> = Vec::with_capacity(8);
    for &cut in cuts {
        for decode_slash in [false, true] {
            for strip_params in [false, true] {
                for merge_slashes in [false, true] {
                    let mut path = render(&units, decode_slash, strip_params);
                    if cut == Cut::BeforeDots {
                        cut_at_delimiter(&mut path);
                    }
                    if merge_slashes {
                        path.dedup_by(|a, b| *a == b'/' && *b == b'/');
                    }
                    let mut path = remove_dot_segments(&path);
                    if cut == Cut::AfterDots {
                        cut_at_delimiter(&mut path);
                        // The cut may leave a dot segment at the end.
                        path = remove_dot_segments(&path);
                    }
                    let path = String::from_utf8(path).map_err(|_| PathError::NotUtf8)?;
                    if !readings.contains(&path) {
                        readings.push(path);
                    }
                }
            }
        }
    }
    Ok(readings)
}

/// Whether `path` has exactly one reading: it starts with `/`, has only
/// unreserved characters and sub-delimiters other than `;`, no `%`, no `\\`,
/// no empty segment (`//`) and no `.` or `..` segment. Such a path is
/// ASCII, and [`path_interpretations`] would return it alone; callers
/// take this check first so the common request allocates nothing.
pub fn is_plain_path(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let ok_byte = |c: u8| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'/' | b'-'
                    | b'_'
                    | b'~'
                    | b'.'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
                    | b':'
                    | b'@'
            )
    };
    if !b.iter().all(|&c| ok_byte(c)) {
        return false;
    }
    path[1..].split('/').enumerate().all(|(i, seg)| {
        // A trailing slash gives one empty last segment, which is fine.
        let last = i == path[1..].split('/').count() - 1;
        !(seg == "." || seg == ".." || (seg.is_empty() && !last))
    })
}

/// At most this many readings come back from [`path_interpretations`]:
/// three choices of two (`%2F`, `;`, `//`) times three cuts.
pub const MAX_READINGS: usize = 24;

/// Where a reading is cut at a decoded `#` or `?`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    BeforeDots,
    AfterDots,
}

/// Truncates `path` at its first `#` or `?`, keeping at least the `/`.
fn cut_at_delimiter(path: &mut Vec<u8>) {
    if let Some(i) = path.iter().position(|&b| b == b'#' || b == b'?') {
        path.truncate(i.max(1));
    }
}

/// A piece of the raw path, after percent-decoding.
#[derive(Clone, Copy)]
enum Unit {
    /// A literal `/`: always a separator.
    Slash,
    /// `%2F` (any case): a separator or a character, depending on the server.
    EncodedSlash,
    /// A literal `;`: starts path parameters for Tomcat and Jetty. (An
    /// encoded `%3B` is data for them, so it is a [`Unit::Byte`].)
    Semicolon,
    /// Any other byte, decoded.
    Byte(u8),
}

impl Unit {
    fn decoded(self) -> u8 {
        match self {
            Self::Slash | Self::EncodedSlash => b'/',
            Self::Semicolon => b';',
            Self::Byte(b) => b,
        }
    }
}

/// Percent-decodes `raw` (RFC 3986 §2.1) into units, refusing broken
/// escapes, backslashes and ASCII control characters, raw or encoded.
fn tokenize(raw: &[u8]) -> Result<Vec<Unit>, PathError> {
    let mut units = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        let unit = match b {
            b'#' => return Err(PathError::Fragment),
            b'/' => Unit::Slash,
            b';' => Unit::Semicolon,
            b'%' => {
                let hi = bytes.next().and_then(|&h| hex_value(h));
                let lo = bytes.next().and_then(|&l| hex_value(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadPercentEncoding);
                };
                match hi << 4 | lo {
                    b'/' => Unit::EncodedSlash,
                    decoded => Unit::Byte(decoded),
                }
            }
            _ => Unit::Byte(b),
        };
        if let Unit::Byte(b) = unit {
            if b == b'\\' {
                return Err(PathError::Backslash);
            }
            if b.is_ascii_control() {
                return Err(PathError::ControlCharacter);
            }
        }
        units.push(unit);
    }
    Ok(units)
}

/// Writes one reading of the units.
fn render(units: &[Unit], decode_slash: bool, strip_params: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.len() + 8);
    let mut in_params = false;
    for &unit in units {
        match unit {
            Unit::Slash => {
                // A literal `/` always ends the parameters of a segment.
                in_params = false;
                out.push(b'/');
            }
            // Servers that strip parameters do it before decoding, so an
            // encoded slash inside them is dropped with them.
            _ if in_params => {}
            Unit::Semicolon if strip_params => in_params = true,
            Unit::EncodedSlash if !decode_slash => out.extend_from_slice(b"%2F"),
            other => out.push(other.decoded()),
        }
    }
    out
}

/// RFC 3986 §5.2.4, on a path that starts with `/`: `.` segments vanish,
/// `..` removes the segment before it (or nothing at the root), and a path
/// ending in a dot segment keeps a trailing `/`.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let rest = path.strip_prefix(b"/").unwrap_or(path);
    let mut out: Vec<&[u8]> = Vec::new();
    let mut ends_in_dot = false;
    for segment in rest.split(|&b| b == b'/') {
        ends_in_dot = true;
        match segment {
            b"." => {}
            b".." => {
                out.pop();
            }
            _ => {
                ends_in_dot = false;
                out.push(segment);
            }
        }
    }
    if ends_in_dot {
        out.push(b"");
    }
    let mut result = Vec::with_capacity(path.len());
    for segment in out {
        result.push(b'/');
        result.extend_from_slice(segment);
    }
    if result.is_empty() {
        result.push(b'/');
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserved_prefix_is_found_in_every_reading() {
        let reserved = |p: &str| reaches_reserved_prefix(p, "/.vestibule");
        for p in [
            "/.vestibule",
            "/.vestibule/",
            "/.vestibule/login",
            "/.VESTIBULE/login",
            "/.VeStIbUlE/x",
            "/%2evestibule/x",
            "/%2Evestibule/x",
            "/%2e%76estibule/x",
            "//.vestibule/x",
            "/app/../.vestibule/x",
            "/app/%2e%2e/.vestibule/x",
            "/app%2f..%2f.vestibule/x",
            "/.vestibule;x=1/login",
            "/./.vestibule/x",
            "/.ve\u{17f}tibule/x",
        ] {
            assert_eq!(reserved(p), Ok(true), "{p}");
        }
        for p in [
            "/",
            "/app",
            "/.vestibulex",
            "/app/.vestibule",
            "/vestibule/x",
        ] {
            assert_eq!(reserved(p), Ok(false), "{p}");
        }
        assert_eq!(reserved("/.vestibule\\x"), Err(PathError::Backslash));
        assert_eq!(reserved("/.vestibule%5Cx"), Err(PathError::Backslash));
    }

    proptest! {
        /// Any path under the prefix, spelt with some letters uppercased,
        /// some bytes percent-encoded and a detour through a dot segment,
        /// is still found.
        #[test]
        fn reserved_prefix_survives_spelling(
            tail in "[a-z]{0,8}",
            upper in proptest::collection::vec(any::<bool>(), 10),
            encode in proptest::collection::vec(any::<bool>(), 10),
            detour: bool,
        ) {
            let mut path = String::from(if detour { "/x/.." } else { "" });
            path.push('/');
            for (i, c) in ".vestibule".chars().enumerate() {
                let c = if upper[i] { c.to_ascii_uppercase() } else { c };
                if encode[i] {
                    path.push_str(&format!("%{:02X}", c as u32));
                } else {
                    path.push(c);
                }
            }
            path.push('/');
            path.push_str(&tail);
            prop_assert_eq!(reaches_reserved_prefix(&path, "/.vestibule"), Ok(true), "{}", path);
        }
    }

    use super::*;

    #[test]
    fn target_query_is_cut_at_the_fragment() {
        assert_eq!(target_query("/a?x=1#f"), Some("x=1"));
        assert_eq!(target_query("/a?"), Some(""));
        // `?` in a fragment is fragment text (found in review: it was read
        // as a query, unlike target_path's reading of the same target).
        assert_eq!(target_query("/a#f?x"), None);
        assert_eq!(target_query("/a"), None);
    }
    use proptest::prelude::*;

    fn readings(p: &str) -> Vec<String> {
        path_interpretations(p).unwrap()
    }

    #[test]
    fn target_path_cuts_the_query_and_keeps_a_fragment_to_refuse() {
        assert_eq!(target_path("/public?../admin"), "/public");
        assert_eq!(target_path("/admin#/public"), "/admin#/public");
        assert_eq!(target_path("/a/b"), "/a/b");
        assert_eq!(target_path("?x"), "");
        // nginx forwards this target raw; a file server reads /app/secret.
        assert_eq!(
            path_interpretations(target_path("/public#/../app/secret")),
            Err(PathError::Fragment)
        );
        assert_eq!(path_interpretations("/a#"), Err(PathError::Fragment));
    }

    #[test]
    fn encoded_fragment_and_query_delimiters_are_read_cut_and_not() {
        // An app that decodes `%23` and then cuts there reads /public.
        assert_eq!(readings("/public%23/../admin"), ["/admin", "/public"]);
        assert_eq!(readings("/public%3F/../admin"), ["/admin", "/public"]);
        // `..#x` is no dot segment uncut; cut, `/a/..` is `/`.
        assert_eq!(readings("/a/..%23x/b"), ["/a/..#x/b", "/"]);
        // A delimiter at the very start leaves the root.
        assert_eq!(readings("/%23admin"), ["/#admin", "/"]);
        // Files named with `#` keep their route: both readings are under /files.
        assert_eq!(readings("/files/a%23b"), ["/files/a#b", "/files/a"]);
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(readings("/public/../admin"), ["/admin"]);
        assert_eq!(readings("/public/./admin"), ["/public/admin"]);
        assert_eq!(readings("/../../admin"), ["/admin"]);
        assert_eq!(readings("/a/b/.."), ["/a/"]);
        assert_eq!(readings("/a/b/."), ["/a/b/"]);
        assert_eq!(readings("/.."), ["/"]);
        assert_eq!(readings("/"), ["/"]);
        // Not dot segments.
        assert_eq!(readings("/a/.../b/..c/.d"), ["/a/.../b/..c/.d"]);
    }

    #[test]
    // Alike refused_paths below: case tables, one assert_eq! a case.
    fn encoded_dot_segments_are_resolved() {
        assert_eq!(readings("/public/%2e%2e/admin"), ["/admin"]);
        assert_eq!(readings("/public/.%2E/admin"), ["/admin"]);
        assert_eq!(readings("/public/%2e/admin"), ["/public/admin"]);
    }

    #[test]
    fn encoded_slash_is_read_both_ways() {
        // Kept: one segment under /admin...; decoded: /public.
        assert_eq!(
            readings("/admin%2F..%2Fpublic"),
            ["/admin%2F..%2Fpublic", "/public"]
        );
        assert_eq!(
            readings("/admin%2f..%2fpublic"),
            ["/admin%2F..%2Fpublic", "/public"]
        );
        assert_eq!(readings("/a%2Fb"), ["/a%2Fb", "/a/b"]);
    }

    #[test]
    fn path_parameters_are_read_both_ways() {
        // The Tomcat `..;` trick: a proxy sees /public/..;/admin under
        // /public, Tomcat strips `;` and serves /admin.
        assert_eq!(
            readings("/public/..;/admin"),
            ["/public/..;/admin", "/admin"]
        );
        // Both readings resolve `..` against `admin;` or `admin` alike.
        assert_eq!(readings("/admin;/../public"), ["/public"]);
        assert_eq!(readings("/admin;x=1/../public"), ["/public"]);
        assert_eq!(readings("/a;x=1/b"), ["/a;x=1/b", "/a/b"]);
        // An encoded slash inside parameters goes with them when stripped.
        assert_eq!(
            readings("/public;x%2F../admin"),
            ["/public;x%2F../admin", "/public/admin", "/admin"]
        );
        // An encoded `;` is data, never a parameter.
        assert_eq!(readings("/a%3Bx/b"), ["/a;x/b"]);
    }

    #[test]
    fn slashes_are_read_merged_and_not() {
        assert_eq!(readings("/public//../admin"), ["/public/admin", "/admin"]);
        assert_eq!(readings("//admin"), ["//admin", "/admin"]);
        assert_eq!(readings("/a%2F/b"), ["/a%2F/b", "/a//b", "/a/b"]);
    }

    #[test]
    fn refused_paths() {
        let err = |p: &str| path_interpretations(p).unwrap_err();
        assert_eq!(err("admin"), PathError::NotAbsolute);
        assert_eq!(err(""), PathError::NotAbsolute);
        assert_eq!(err("*"), PathError::NotAbsolute);
        assert_eq!(err("http://x/admin"), PathError::NotAbsolute);
        assert_eq!(err("/a%5Cb"), PathError::Backslash);
        assert_eq!(err("/a%5cb"), PathError::Backslash);
        assert_eq!(err("/a\\b"), PathError::Backslash);
        assert_eq!(err("/a%00b"), PathError::ControlCharacter);
        assert_eq!(err("/a%0d%0ab"), PathError::ControlCharacter);
        assert_eq!(err("/a%7Fb"), PathError::ControlCharacter);
        assert_eq!(err("/a\tb"), PathError::ControlCharacter);
        assert_eq!(err("/a\u{85}b"), PathError::ControlCharacter);
        assert_eq!(err("/a%C2%85b"), PathError::ControlCharacter);
        assert_eq!(err("/a%zzb"), PathError::BadPercentEncoding);
        assert_eq!(err("/a%2"), PathError::BadPercentEncoding);
        assert_eq!(err("/a%"), PathError::BadPercentEncoding);
        assert_eq!(err("/a%ff"), PathError::NotUtf8);
        assert_eq!(err("/a%C3"), PathError::NotUtf8);
        // Refused even where a stripped parameter would hide it.
        assert_eq!(err("/a;%ff/b"), PathError::NotUtf8);
        assert_eq!(
            err(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            PathError::TooLong
        );
        assert!(path_interpretations(&format!("/{}", "a".repeat(MAX_PATH_LEN - 1))).is_ok());
    }

    #[test]
    fn unicode_is_decoded() {
        assert_eq!(readings("/caf%C3%A9"), ["/café"]);
        assert_eq!(readings("/café"), ["/café"]);
        assert_eq!(readings("/a%20b"), ["/a b"]);
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            PathError::Backslash.to_string(),
            "the request path contains a backslash"
        );
    }

    fn is_dot_free(reading: &str) -> bool {
        reading.split('/').all(|s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn never_panics_and_readings_are_clean(s in "\\PC{0,64}") {
            if let Ok(rs) = path_interpretations(&s) {
                prop_assert!(!rs.is_empty() && rs.len() <= MAX_READINGS);
                prop_assert!(!s.contains('#'));
                for r in &rs {
                    prop_assert!(r.starts_with('/'));
                    prop_assert!(is_dot_free(r), "{r:?}");
                }
            }
        }

        #[test]
        fn path_like_input_readings_are_clean(s in "/[/.;%2eEfF5cCa0-93#?]{0,40}") {
            if let Ok(rs) = path_interpretations(&s) {
                prop_assert!(!rs.is_empty() && rs.len() <= MAX_READINGS);
                prop_assert!(!s.contains('#'));
                for r in &rs {
                    prop_assert!(r.starts_with('/'));
                    prop_assert!(is_dot_free(r), "{r:?}");
                    prop_assert!(!r.contains('\\'));
                }
            }
        }

        #[test]
        fn plain_paths_read_as_themselves(
            segs in prop::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..6),
            trailing: bool,
        ) {
            prop_assume!(segs.iter().all(|s| s != "." && s != ".."));
            let mut p = format!("/{}", segs.join("/"));
            if trailing && !segs.is_empty() {
                p.push('/');
            }
            prop_assert_eq!(path_interpretations(&p), Ok(vec![p.clone()]));
        }
    }
}
