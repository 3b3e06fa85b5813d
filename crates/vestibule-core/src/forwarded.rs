//! Who the client probably is: `X-Forwarded-For` and RFC 7239 `Forwarded`.
//!
//! The result of this module feeds logs and rate limits **only**. It never
//! makes anybody trusted: trust is decided on the TCP peer ([`Peer`]), and a
//! peer outside the trusted networks has its forwarding headers ignored
//! altogether.
//!
//! Both headers are lists written left to right by successive proxies, so the
//! right-most entries are the most recent hops and the only ones our own
//! (trusted) proxies vouch for. The left-most entries are whatever the client
//! chose to send, which is why [`resolve_client_ip`] walks from the right and
//! stops at the first address that is not one of ours.
//!
//! Parsing is total: every element becomes exactly one [`Hop`], and anything
//! not understood becomes [`Hop::Invalid`], which stops the walk. The work is
//! bounded by [`MAX_HEADER_BYTES`] and [`MAX_HOPS`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::{Peer, TrustedNetworks, canonical_ip};

/// Header lines totalling more than this many bytes are not parsed: they
/// become a single [`Hop::Invalid`]. No legitimate proxy chain comes close,
/// and the bound keeps the parser's work small whatever a client sends.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// At most this many hops (the right-most ones) are kept. When more were
/// written, the left-most kept hop is replaced by [`Hop::Invalid`] so that
/// [`resolve_client_ip`] stops there instead of trusting a truncated chain.
pub const MAX_HOPS: usize = 64;

/// One hop as written in a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// An address, already passed through [`canonical_ip`].
    Ip(IpAddr),
    /// `unknown` (RFC 7239 §6.2; also used in `X-Forwarded-For`).
    Unknown,
    /// An obfuscated identifier such as `_hidden` (RFC 7239 §6.3).
    Obfuscated,
    /// Anything that could not be parsed.
    Invalid,
}

/// Which header a node comes from: the two accept different spellings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// `X-Forwarded-For`: de facto syntax, bare IPv6 allowed, no obfuscation.
    Xff,
    /// RFC 7239 §6 `node`: IPv6 must be bracketed, obfuscated names allowed.
    Forwarded,
}

/// Parses `X-Forwarded-For` header lines, in the order they were received.
///
/// Several lines are one list, as if joined by `,` (RFC 9110 §5.3). Each
/// element, with spaces and tabs trimmed, is an IPv4 address, `IPv4:port`, a
/// bare IPv6 address, `[IPv6]` or `[IPv6]:port`, or `unknown` (any case).
/// Anything else, an empty element included, is [`Hop::Invalid`].
pub fn parse_x_forwarded_for<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
    let Some(lines) = bounded_lines(lines) else {
        return vec![Hop::Invalid];
    };
    let hops = lines
        .iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|element| parse_node(trim_ows(element), Syntax::Xff))
        .collect();
    cap_hops(hops)
}

/// Parses RFC 7239 `Forwarded` header lines, in the order they were received.
///
/// Each `forwarded-element` (RFC 7239 §4) gives exactly one [`Hop`], taken
/// from its `for=` parameter (§5.2, §6). An element without `for=`, with a
/// duplicate `for=` (§4: "MUST NOT occur more than once"), with bad quoting,
/// or whose node is not valid (an unbracketed IPv6 address, say) is
/// [`Hop::Invalid`]. Other parameters (`by`, `proto`, `host`, extensions)
/// must be well formed but are otherwise ignored.
pub fn parse_forwarded<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
    let Some(lines) = bounded_lines(lines) else {
        return vec![Hop::Invalid];
    };
    let mut hops = Vec::new();
    for line in lines {
        // A quoted-string cannot span two field lines: each line is split on
        // its own, so an unterminated quote spoils only its own element.
        for (element, quoting_ok) in split_outside_quotes(line, b',') {
            hops.push(if quoting_ok {
                parse_forwarded_element(element)
            } else {
                Hop::Invalid
            });
        }
    }
    cap_hops(hops)
}

/// The client address to log and rate-limit on.
///
/// - A peer outside `trusted` is the client, whatever its headers say: they
///   are ignored entirely.
/// - From a trusted peer, `hops` are walked right to left. Each address that
///   is itself trusted is another of our proxies, so the walk continues; the
///   first untrusted address is the client. A non-address hop (`unknown`, an
///   obfuscated name, garbage) ends the walk at the last trusted hop seen.
///
/// The result is always the peer's address or an address from `hops`.
pub fn resolve_client_ip(peer: Peer, trusted: &TrustedNetworks, hops: &[Hop]) -> Option<IpAddr> {
    if !peer.is_trusted(trusted) {
        return peer.ip();
    }
    let mut current = peer.ip();
    for hop in hops.iter().rev() {
        match *hop {
            Hop::Ip(addr) if trusted.contains(addr) => current = Some(addr),
            Hop::Ip(addr) => return Some(addr),
            Hop::Unknown | Hop::Obfuscated | Hop::Invalid => return current,
        }
    }
    current
}

/// [`resolve_client_ip`] over [`parse_x_forwarded_for`]'s hops, walked
/// in place, right to left, without collecting them (the per-request path,
/// issue 17): the same answer for the same lines, bounds included (lines
/// over [`MAX_HEADER_BYTES`] are one [`Hop::Invalid`]; past [`MAX_HOPS`]
/// hops from the right the walk stops, as at the cut's marker). `lines`
/// (a `&GetAll`, a `&Vec`) is read twice: once for the byte bound, once
/// backwards for the walk.
pub fn resolve_client_ip_xff<'a, L, V>(
    peer: Peer,
    trusted: &TrustedNetworks,
    lines: L,
) -> Option<IpAddr>
where
    L: IntoIterator<Item = &'a V> + Copy,
    L::IntoIter: DoubleEndedIterator,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    if !peer.is_trusted(trusted) {
        return peer.ip();
    }
    let mut total = 0usize;
    for line in lines {
        total = total.saturating_add(line.as_ref().len());
        if total > MAX_HEADER_BYTES {
            // One `Hop::Invalid`: the walk ends at once.
            return peer.ip();
        }
    }
    let mut current = peer.ip();
    let mut walked = 0usize;
    let mut elements = lines
        .into_iter()
        .rev()
        .flat_map(|line| line.as_ref().rsplit(|&b| b == b','))
        .peekable();
    while let Some(element) = elements.next() {
        walked += 1;
        // The right-most MAX_HOPS are kept and, when there were more, the
        // left-most kept one is the cut's `Invalid` (`cap_hops`): the walk
        // stops there.
        if walked == MAX_HOPS && elements.peek().is_some() {
            return current;
        }
        match parse_node(trim_ows(element), Syntax::Xff) {
            Hop::Ip(addr) if trusted.contains(addr) => current = Some(addr),
            Hop::Ip(addr) => return Some(addr),
            Hop::Unknown | Hop::Obfuscated | Hop::Invalid => return current,
        }
    }
    current
}

/// Collects the lines, or `None` once they exceed [`MAX_HEADER_BYTES`]
/// (without reading further).
fn bounded_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<&'a [u8]>> {
    let mut total = 0usize;
    let mut out = Vec::new();
    for line in lines {
        total = total.saturating_add(line.len());
        if total > MAX_HEADER_BYTES {
            return None;
        }
        out.push(line);
    }
    Some(out)
}

/// Keeps the right-most [`MAX_HOPS`] hops, marking the cut.
fn cap_hops(mut hops: Vec<Hop>) -> Vec<Hop> {
    if hops.len() > MAX_HOPS {
        let excess = hops.len() - MAX_HOPS;
        hops.drain(..excess);
        if let Some(first) = hops.first_mut() {
            *first = Hop::Invalid;
        }
    }
    hops
}

/// Trims HTTP optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits `s` on `sep` where it is not inside a quoted-string (RFC 9110
/// §5.6.4, honouring `\` quoted-pairs). Each piece comes with `false` if it
/// ends inside an unterminated quoted-string.
fn split_outside_quotes(s: &[u8], sep: u8) -> Vec<(&[u8], bool)> {
    let mut pieces = Vec::new();
    let mut rest = s;
    loop {
        let mut in_quotes = false;
        let mut escaped = false;
        let mut cut = None;
        for (i, &b) in rest.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if in_quotes && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes && b == sep {
                cut = Some(i);
                break;
            }
        }
        match cut.and_then(|i| Some((rest.get(..i)?, rest.get(i + 1..)?))) {
            Some((piece, tail)) => {
                pieces.push((piece, true));
                rest = tail;
            }
            None => {
                pieces.push((rest, !in_quotes));
                return pieces;
            }
        }
    }
}

/// One `forwarded-element` (RFC 7239 §4):
/// `[ forwarded-pair ] *( ";" [ forwarded-pair ] )`.
fn parse_forwarded_element(element: &[u8]) -> Hop {
    let mut node: Option<Vec<u8>> = None;
    for (pair, quoting_ok) in split_outside_quotes(element, b';') {
        if !quoting_ok {
            return Hop::Invalid;
        }
        // RFC 7239 has no whitespace around pairs, but `for=a; proto=http`
        // is common and harmless: accept OWS around each pair (not around
        // `=`).
        let pair = trim_ows(pair);
        if pair.is_empty() {
            // Empty pairs are allowed by the grammar (`[ forwarded-pair ]`).
            continue;
        }
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return Hop::Invalid;
        };
        let (Some(name), Some(value)) = (pair.get(..eq), pair.get(eq + 1..)) else {
            return Hop::Invalid;
        };
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Hop::Invalid;
        }
        let Some(value) = parse_value(value) else {
            return Hop::Invalid;
        };
        // Parameter names are case-insensitive (RFC 7239 §4).
        if name.eq_ignore_ascii_case(b"for") {
            if node.is_some() {
                return Hop::Invalid;
            }
            node = Some(value);
        }
    }
    match node {
        Some(node) => parse_node(&node, Syntax::Forwarded),
        None => Hop::Invalid,
    }
}

/// `value = token / quoted-string` (RFC 7239 §4), unescaped.
fn parse_value(v: &[u8]) -> Option<Vec<u8>> {
    match v {
        [b'"', inner @ .., b'"'] => unquote(inner),
        _ if !v.is_empty() && v.iter().all(|&b| is_tchar(b)) => Some(v.to_vec()),
        _ => None,
    }
}

/// The inside of a quoted-string (RFC 9110 §5.6.4): `qdtext` or
/// `quoted-pair`, anything else (a bare `"`, a control character, a trailing
/// `\`) refuses the whole value.
fn unquote(inner: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => {
                let &next = bytes.next()?;
                if !(next == b'\t' || next == b' ' || is_vchar_or_obs(next)) {
                    return None;
                }
                out.push(next);
            }
            b'"' => return None,
            b'\t' | b' ' => out.push(b),
            _ if is_vchar_or_obs(b) => out.push(b),
            _ => return None,
        }
    }
    Some(out)
}

/// VCHAR or obs-text (RFC 9110 §5.5).
fn is_vchar_or_obs(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A node: an address, `unknown`, an obfuscated name, with an optional port.
fn parse_node(node: &[u8], syntax: Syntax) -> Hop {
    if syntax == Syntax::Xff {
        // Bare IPv6 is only legal in X-Forwarded-For; try it (and bare IPv4)
        // before splitting off a port, since IPv6 is full of colons.
        if let Some(ip) = parse_ascii::<IpAddr>(node) {
            return Hop::Ip(canonical_ip(ip));
        }
    }
    // node = nodename [ ":" node-port ] (RFC 7239 §6).
    let (name, port) = match node {
        [b'[', ..] => match node.iter().position(|&b| b == b']') {
            Some(close) => (node.get(..=close), node.get(close + 1..)),
            None => return Hop::Invalid,
        },
        _ => match node.iter().position(|&b| b == b':') {
            Some(colon) => (node.get(..colon), node.get(colon..)),
            None => (Some(node), None),
        },
    };
    let Some(name) = name else {
        return Hop::Invalid;
    };
    match port {
        None | Some([]) => {}
        Some([b':', port @ ..]) if is_port(port, syntax) => {}
        Some(_) => return Hop::Invalid,
    }
    parse_nodename(name, syntax)
}

/// `nodename = IPv4address / "[" IPv6address "]" / "unknown" / obfnode`
/// (RFC 7239 §6); `obfnode` only for `Forwarded`.
fn parse_nodename(name: &[u8], syntax: Syntax) -> Hop {
    if let [b'[', inner @ .., b']'] = name {
        return match parse_ascii::<Ipv6Addr>(inner) {
            Some(v6) => Hop::Ip(canonical_ip(IpAddr::V6(v6))),
            None => Hop::Invalid,
        };
    }
    if let Some(v4) = parse_ascii::<Ipv4Addr>(name) {
        return Hop::Ip(IpAddr::V4(v4));
    }
    if name.eq_ignore_ascii_case(b"unknown") {
        return Hop::Unknown;
    }
    if syntax == Syntax::Forwarded && is_obfuscated(name) {
        return Hop::Obfuscated;
    }
    Hop::Invalid
}

/// `port = 1*5DIGIT`, or for `Forwarded` also `obfport` (RFC 7239 §6).
fn is_port(port: &[u8], syntax: Syntax) -> bool {
    let digits = (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit);
    digits || (syntax == Syntax::Forwarded && is_obfuscated(port))
}

/// `obfnode` / `obfport`: `"_" 1*( ALPHA / DIGIT / "." / "_" / "-" )`
/// (RFC 7239 §6.3).
fn is_obfuscated(s: &[u8]) -> bool {
    match s {
        [b'_', rest @ ..] => {
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

/// Parses ASCII bytes with `FromStr` (the std address parsers refuse
/// leading zeros, zone identifiers and surrounding junk).
fn parse_ascii<T: std::str::FromStr>(s: &[u8]) -> Option<T> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(lines: &[&str]) -> Vec<Hop> {
        parse_x_forwarded_for(lines.iter().map(|l| l.as_bytes()))
    }

    fn fwd(lines: &[&str]) -> Vec<Hop> {
        parse_forwarded(lines.iter().map(|l| l.as_bytes()))
    }

    fn proxies() -> TrustedNetworks {
        TrustedNetworks::parse(&["10.0.0.0/8", "2001:db8:cafe::/48"]).unwrap()
    }

    #[test]
    fn xff_walked_in_place_stops_at_the_cut_like_the_parsed_list() {
        let peer = Peer::tcp(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        for n in [MAX_HOPS - 1, MAX_HOPS, MAX_HOPS + 1, MAX_HOPS + 5] {
            // The client, then n-1 of our proxies: the cut falls on one.
            let mut hops = vec!["198.51.100.7".to_owned()];
            hops.extend((1..n).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1)));
            let line = hops.join(", ");
            let want =
                resolve_client_ip(peer, &proxies(), &parse_x_forwarded_for([line.as_bytes()]));
            let got = resolve_client_ip_xff(peer, &proxies(), [line.as_bytes()]);
            assert_eq!(got, want, "{n} hops");
        }
        let big = "10.0.0.2,".repeat(MAX_HEADER_BYTES / 8);
        assert_eq!(
            resolve_client_ip_xff(peer, &proxies(), [big.as_bytes()]),
            peer.ip()
        );
    }

    #[test]
    fn xff_addresses_and_ports() {
        assert_eq!(
            xff(&[" 192.0.2.1 ,192.0.2.2:8080,\t2001:db8::1 , [2001:db8::2], [2001:db8::3]:443"]),
            vec![
                Hop::Ip(ip("192.0.2.1")),
                Hop::Ip(ip("192.0.2.2")),
                Hop::Ip(ip("2001:db8::1")),
                Hop::Ip(ip("2001:db8::2")),
                Hop::Ip(ip("2001:db8::3")),
            ]
        );
    }

    #[test]
    fn xff_unknown_and_garbage() {
        assert_eq!(
            xff(&[
                "unknown, UNKNOWN, , _hidden, evil.example, 1.2.3.4:, 1.2.3.4:123456, 01.2.3.4, [1.2.3.4], [::1, fe80::1%eth0"
            ]),
            vec![
                Hop::Unknown,
                Hop::Unknown,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
                Hop::Invalid,
            ]
        );
        assert_eq!(xff(&[""]), vec![Hop::Invalid]);
        assert_eq!(xff(&[]), vec![]);
        assert_eq!(
            parse_x_forwarded_for([&b"\xff\xfe"[..]]),
            vec![Hop::Invalid]
        );
    }

    #[test]
    fn xff_ipv4_mapped_entries_are_canonical() {
        assert_eq!(
            xff(&["::ffff:10.1.2.3, [::ffff:192.0.2.9]:80"]),
            vec![Hop::Ip(ip("10.1.2.3")), Hop::Ip(ip("192.0.2.9"))]
        );
        // A mapped spelling of a trusted proxy is still that proxy.
        let hops = xff(&["198.51.100.7, ::ffff:10.0.0.9"]);
        assert_eq!(
            resolve_client_ip(Peer::tcp(ip("10.0.0.1")), &proxies(), &hops),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn multiple_lines_are_one_list() {
        assert_eq!(
            xff(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]),
            xff(&["1.1.1.1, 2.2.2.2, 3.3.3.3"])
        );
        assert_eq!(
            fwd(&["for=1.1.1.1", "for=\"[2001:db8::1]\", for=unknown"]),
            vec![
                Hop::Ip(ip("1.1.1.1")),
                Hop::Ip(ip("2001:db8::1")),
                Hop::Unknown
            ]
        );
    }

    #[test]
    fn forwarded_rfc7239_examples() {
        // RFC 7239 §4 and §7.1 examples.
        assert_eq!(fwd(&["for=\"_gazonk\""]), vec![Hop::Obfuscated]);
        assert_eq!(
            fwd(&["For=\"[2001:db8:cafe::17]:4711\""]),
            vec![Hop::Ip(ip("2001:db8:cafe::17"))]
        );
        assert_eq!(
            fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43"]),
            vec![Hop::Ip(ip("192.0.2.60"))]
        );
        assert_eq!(
            fwd(&["for=192.0.2.43, for=198.51.100.17"]),
            vec![Hop::Ip(ip("192.0.2.43")), Hop::Ip(ip("198.51.100.17"))]
        );
        assert_eq!(
            fwd(&["for=192.0.2.43,for=\"[2001:db8:cafe::17]\",for=unknown"]),
            vec![
                Hop::Ip(ip("192.0.2.43")),
                Hop::Ip(ip("2001:db8:cafe::17")),
                Hop::Unknown
            ]
        );
    }

    #[test]
    fn forwarded_ports_quoting_and_obfuscation() {
        assert_eq!(
            fwd(&[
                "for=\"192.0.2.1:8080\"",
                "for=\"[2001:db8::1]:_port\"",
                "for=_hidden",
                "for=\"_SEVKISEK\"",
                "for=\"unknown:4711\"",
                "for=UNKNOWN",
                "for=\"1.2.\\3.4\"",
                "by=x;proto=https; for=5.6.7.8 ;host=\"a,b;c\"",
                ";;for=9.9.9.9;",
            ]),
            vec![
                Hop::Ip(ip("192.0.2.1")),
                Hop::Ip(ip("2001:db8::1")),
                Hop::Obfuscated,
                Hop::Obfuscated,
                Hop::Unknown,
                Hop::Unknown,
                Hop::Ip(ip("1.2.3.4")),
                Hop::Ip(ip("5.6.7.8")),
                Hop::Ip(ip("9.9.9.9")),
            ]
        );
    }

    #[test]
    fn forwarded_malformed_elements_are_invalid() {
        for bad in [
            "",
            "proto=https",
            "for=1.1.1.1;for=2.2.2.2",
            "for=2001:db8::1",
            "for=\"2001:db8::1\"",
            "for=[2001:db8::1]",
            "for=1.2.3.4:80",
            "for=\"1.2.3.4",
            "for=1.2.3.4\"",
            "for=\"1.2.3.4\"x",
            "for=",
            "for=\"\"",
            "for = 1.2.3.4",
            "=1.2.3.4",
            "for=1.2.3.4;by",
            "for=1.2.3.4;by=\"a",
            "for=\"1.2.3.4\\\"",
            "for=_",
            "for=\"_a b\"",
            "for=\"[1.2.3.4]\"",
            "for=\"1.2.3.4:\"",
            "for=\"1.2.3.4:123456\"",
            "for=\"[::1]x\"",
            "for=evil.example",
        ] {
            assert_eq!(fwd(&[bad]), vec![Hop::Invalid], "{bad:?}");
        }
        // An unterminated quote spoils only its own element and line.
        assert_eq!(
            fwd(&["for=1.1.1.1, for=\"2.2.2.2, for=3.3.3.3", "for=4.4.4.4"]),
            vec![Hop::Ip(ip("1.1.1.1")), Hop::Invalid, Hop::Ip(ip("4.4.4.4"))]
        );
        // A quoted comma does not split elements.
        assert_eq!(
            fwd(&["for=1.1.1.1;host=\"a,b\", for=2.2.2.2"]),
            vec![Hop::Ip(ip("1.1.1.1")), Hop::Ip(ip("2.2.2.2"))]
        );
    }

    #[test]
    fn spoofed_leftmost_entries_are_skipped() {
        // Client 203.0.113.9 sent "6.6.6.6, 10.0.0.5" itself; our proxies
        // 10.0.0.2 and 10.0.0.1 appended what they saw.
        let hops = xff(&["6.6.6.6, 10.0.0.5, 203.0.113.9, 10.0.0.2"]);
        let peer = Peer::tcp(ip("10.0.0.1"));
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("203.0.113.9"))
        );
        // Same through RFC 7239.
        let hops = fwd(&["for=6.6.6.6, for=10.0.0.5, for=203.0.113.9, for=10.0.0.2"]);
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("203.0.113.9"))
        );
        // A spoofed list alone: the right-most untrusted entry wins.
        let hops = xff(&["6.6.6.6, 10.0.0.5"]);
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("6.6.6.6"))
        );
    }

    #[test]
    fn untrusted_peer_ignores_headers() {
        let hops = xff(&["1.2.3.4"]);
        let peer = Peer::tcp(ip("198.51.100.1"));
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("198.51.100.1"))
        );
        let unix = Peer::Unix { trusted: false };
        assert_eq!(resolve_client_ip(unix, &proxies(), &hops), None);
        let unix = Peer::Unix { trusted: true };
        assert_eq!(
            resolve_client_ip(unix, &proxies(), &hops),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    // Alike spoofed_leftmost_entries_are_skipped: one hops/assert pair a case.
    fn non_address_hops_stop_the_walk() {
        let peer = Peer::tcp(ip("10.0.0.1"));
        for header in ["1.2.3.4, unknown, 10.0.0.3", "1.2.3.4, garbage, 10.0.0.3"] {
            let hops = xff(&[header]);
            assert_eq!(
                resolve_client_ip(peer, &proxies(), &hops),
                Some(ip("10.0.0.3"))
            );
        }
        let hops = fwd(&["for=1.2.3.4, for=_proxy"]);
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("10.0.0.1"))
        );
        // All trusted: the left-most trusted hop is the best we know.
        let hops = xff(&["10.0.0.7, 10.0.0.3"]);
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("10.0.0.7"))
        );
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &[]),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn hop_count_is_capped() {
        let mut list = vec!["6.6.6.6"; 10];
        list.extend(vec!["10.0.0.9"; 70]);
        let header = list.join(",");
        let hops = xff(&[&header]);
        assert_eq!(hops.len(), MAX_HOPS);
        assert_eq!(hops[0], Hop::Invalid);
        assert!(hops[1..].iter().all(|h| *h == Hop::Ip(ip("10.0.0.9"))));
        // The walk stops at the cut rather than going past it.
        let peer = Peer::tcp(ip("10.0.0.1"));
        assert_eq!(
            resolve_client_ip(peer, &proxies(), &hops),
            Some(ip("10.0.0.9"))
        );
        // Exactly 64 is not cut.
        let header = vec!["1.1.1.1"; MAX_HOPS].join(",");
        assert!(xff(&[&header]).iter().all(|h| *h == Hop::Ip(ip("1.1.1.1"))));
        let header = vec!["for=1.1.1.1"; MAX_HOPS + 1].join(",");
        let hops = fwd(&[&header]);
        assert_eq!(hops.len(), MAX_HOPS);
        assert_eq!(hops[0], Hop::Invalid);
    }

    #[test]
    fn byte_count_is_capped() {
        let line = "1".repeat(MAX_HEADER_BYTES / 2);
        assert_eq!(xff(&[&line, &line]).len(), 2);
        let longer = format!("{line}1");
        assert_eq!(xff(&[&line, &longer]), vec![Hop::Invalid]);
        assert_eq!(fwd(&[&line, &longer]), vec![Hop::Invalid]);
    }

    fn arb_hop() -> impl Strategy<Value = Hop> {
        prop_oneof![
            any::<u32>().prop_map(|a| Hop::Ip(IpAddr::V4(Ipv4Addr::from(a)))),
            (0u32..=0xff).prop_map(|a| Hop::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | a)))),
            any::<u128>().prop_map(|a| Hop::Ip(canonical_ip(IpAddr::V6(Ipv6Addr::from(a))))),
            Just(Hop::Unknown),
            Just(Hop::Obfuscated),
            Just(Hop::Invalid),
        ]
    }

    fn arb_peer() -> impl Strategy<Value = Peer> {
        prop_oneof![
            any::<u32>().prop_map(|a| Peer::tcp(IpAddr::V4(Ipv4Addr::from(a)))),
            (0u32..=0xff).prop_map(|a| Peer::tcp(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | a)))),
            any::<bool>().prop_map(|trusted| Peer::Unix { trusted }),
        ]
    }

    proptest! {
        #[test]
        fn parsers_never_panic(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..5)) {
            let xff = parse_x_forwarded_for(lines.iter().map(Vec::as_slice));
            let fwd = parse_forwarded(lines.iter().map(Vec::as_slice));
            prop_assert!(xff.len() <= MAX_HOPS && fwd.len() <= MAX_HOPS);
        }

        #[test]
        fn parsers_never_panic_on_header_like_text(s in "[0-9a-fA-F.:\\[\\]\",;= _\\\\fornuk]{0,120}") {
            let _ = parse_x_forwarded_for([s.as_bytes()]);
            let _ = parse_forwarded([s.as_bytes()]);
        }

        #[test]
        fn untrusted_peer_yields_itself(a: u32, hops in prop::collection::vec(arb_hop(), 0..80)) {
            let peer = Peer::tcp(IpAddr::V4(Ipv4Addr::from(a)));
            prop_assume!(!peer.is_trusted(&proxies()));
            prop_assert_eq!(resolve_client_ip(peer, &proxies(), &hops), peer.ip());
        }

        /// The walk in place answers what parsing then walking does.
        #[test]
        fn xff_walked_in_place_is_xff_parsed_then_walked(
            peer in arb_peer(),
            lines in prop::collection::vec(
                prop::collection::vec(prop_oneof!["10\\.0\\.0\\.[0-9]", "203\\.0\\.113\\.[0-9]", "unknown", "[0-9a-f:\\[\\]]{0,6}", " *"], 0..40)
                    .prop_map(|e| e.join(",")),
                0..4,
            ),
        ) {
            let want = resolve_client_ip(peer, &proxies(), &parse_x_forwarded_for(lines.iter().map(|l| l.as_bytes())));
            let got = resolve_client_ip_xff(peer, &proxies(), &lines);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn result_is_peer_or_a_hop(peer in arb_peer(), hops in prop::collection::vec(arb_hop(), 0..80)) {
            let got = resolve_client_ip(peer, &proxies(), &hops);
            prop_assert!(got == peer.ip() || got.is_some_and(|g| hops.contains(&Hop::Ip(g))));
        }

        #[test]
        fn written_addresses_parse_back(addrs in prop::collection::vec(any::<u128>(), 1..10)) {
            let ips: Vec<IpAddr> = addrs.iter().map(|&a| canonical_ip(IpAddr::V6(Ipv6Addr::from(a)))).collect();
            let x = ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
            let f = ips.iter().map(|ip| match ip {
                IpAddr::V4(v4) => format!("for={v4}"),
                IpAddr::V6(v6) => format!("for=\"[{v6}]:1\""),
            }).collect::<Vec<_>>().join(", ");
            let want: Vec<Hop> = ips.iter().map(|&ip| Hop::Ip(ip)).collect();
            prop_assert_eq!(parse_x_forwarded_for([x.as_bytes()]), want.clone());
            prop_assert_eq!(parse_forwarded([f.as_bytes()]), want);
        }
    }
}
