//! Fuzz targets, shared by `fuzz/` (cargo-fuzz, nightly) and
//! `tests/fuzz_corpus.rs` (replays the corpora on stable).
//!
//! Each function takes arbitrary bytes, drives one parser and asserts the
//! properties its documentation promises. A panic here is a bug: either in
//! the parser or in the promise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::decode::{
    BASE64_PREFIX, Decoding, MAX_ENCODED_WORD_LEN, ValueError, encode_base64_prefixed,
    encode_rfc2047,
};
use crate::forwarded::{
    Hop, MAX_HEADER_BYTES, MAX_HOPS, parse_forwarded, parse_x_forwarded_for, resolve_client_ip,
    resolve_client_ip_xff,
};
use crate::net::{Peer, TrustedNetworks, canonical_ip, parse_trusted_network};
use crate::path::{MAX_PATH_LEN, PathError, target_path};

/// The trusted networks the forwarding targets run with.
fn proxies() -> TrustedNetworks {
    TrustedNetworks::parse(&["10.0.0.0/8", "192.168.0.0/16", "::1", "fd00::/8"]).unwrap_or_default()
}

/// Picks a peer from a selector byte: trusted and untrusted, v4 and v6, TCP
/// and Unix.
fn peer_from(selector: u8) -> Peer {
    match selector % 6 {
        0 => Peer::tcp(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        1 => Peer::tcp(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        2 => Peer::tcp(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        3 => Peer::tcp(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
        4 => Peer::Unix { trusted: true },
        _ => Peer::Unix { trusted: false },
    }
}

/// Splits fuzz input into a peer selector and header lines (on `\n`).
fn peer_and_lines(data: &[u8]) -> (Peer, Vec<&[u8]>) {
    match data.split_first() {
        Some((&selector, rest)) => (peer_from(selector), rest.split(|&b| b == b'\n').collect()),
        None => (peer_from(0), Vec::new()),
    }
}

/// Properties every list of hops and its resolution must have.
fn check_hops(peer: Peer, hops: &[Hop], lines: &[&[u8]]) {
    assert!(hops.len() <= MAX_HOPS, "{} hops kept", hops.len());
    let total: usize = lines.iter().map(|l| l.len()).sum();
    if total > MAX_HEADER_BYTES {
        assert_eq!(hops, [Hop::Invalid]);
    }
    for hop in hops {
        if let Hop::Ip(ip) = *hop {
            assert_eq!(ip, canonical_ip(ip), "hop address not canonical");
        }
    }
    let trusted = proxies();
    let got = resolve_client_ip(peer, &trusted, hops);
    assert!(
        got == peer.ip() || got.is_some_and(|g| hops.contains(&Hop::Ip(g))),
        "{got:?} is neither the peer nor a hop"
    );
    if !peer.is_trusted(&trusted) {
        assert_eq!(got, peer.ip(), "untrusted peer's headers were used");
    }
    // Only a trusted address may be walked past: every hop to the right of
    // the result's position is trusted.
    if let Some(g) = got
        && got != peer.ip()
        && let Some(pos) = hops.iter().rposition(|h| *h == Hop::Ip(g))
    {
        for hop in hops.get(pos + 1..).unwrap_or(&[]) {
            assert!(
                matches!(*hop, Hop::Ip(a) if trusted.contains(a)),
                "walked past {hop:?}"
            );
        }
    }
}

/// `X-Forwarded-For`: first byte picks the peer, the rest is lines split on
/// `\n`.
pub fn forwarded_xff(data: &[u8]) {
    let (peer, lines) = peer_and_lines(data);
    let hops = parse_x_forwarded_for(lines.iter().copied());
    check_hops(peer, &hops, &lines);
    // The walk in place (the per-request path) answers the same.
    assert_eq!(
        resolve_client_ip_xff(peer, &proxies(), &lines),
        resolve_client_ip(peer, &proxies(), &hops),
        "walked in place differs"
    );
    // Several lines are one comma-separated list (RFC 9110 §5.3). (No line
    // at all is no list, unlike one empty line.)
    let joined = lines.join(&b","[..]);
    if !lines.is_empty() && joined.len() <= MAX_HEADER_BYTES {
        assert_eq!(
            parse_x_forwarded_for([joined.as_slice()]),
            hops,
            "lines differ from joined"
        );
    }
}

/// RFC 7239 `Forwarded`: first byte picks the peer, the rest is lines split
/// on `\n`.
pub fn forwarded_rfc7239(data: &[u8]) {
    let (peer, lines) = peer_and_lines(data);
    let hops = parse_forwarded(lines.iter().copied());
    check_hops(peer, &hops, &lines);
    // Every element gives exactly one hop, whatever it contains.
    if hops.len() < MAX_HOPS && hops != [Hop::Invalid] {
        let lines_with_extra: Vec<&[u8]> =
            lines.iter().copied().chain([&b"for=unknown"[..]]).collect();
        let more = parse_forwarded(lines_with_extra.iter().copied());
        if lines_with_extra.iter().map(|l| l.len()).sum::<usize>() <= MAX_HEADER_BYTES {
            assert_eq!(more.len(), hops.len() + 1);
            assert_eq!(more.last(), Some(&Hop::Unknown));
        }
    }
}

/// [`decode_value`](crate::decode::decode_value): bits 0 and 1 of the first
/// byte are the flags, the other six pick `max_len`; the rest is the raw
/// value.
pub fn decode_value(data: &[u8]) {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let decoding = Decoding {
        base64_prefix: flags & 1 != 0,
        rfc2047: flags & 2 != 0,
    };
    let max_len = match flags >> 2 {
        0 => 4096,
        n => usize::from(n) * 4,
    };
    let trimmed = trim_ows(raw);
    match crate::decode::decode_value(raw, decoding, max_len) {
        Ok(v) => {
            assert!(
                !v.chars().any(char::is_control),
                "control character in {v:?}"
            );
            assert!(v.len() <= max_len, "{} bytes > {max_len}", v.len());
            assert!(
                trimmed.len() <= max_len,
                "raw value over the bound accepted"
            );
            if decoding == Decoding::default() {
                assert_eq!(v.as_bytes(), trimmed, "literal value changed");
            }
        }
        Err(ValueError::TooLong { max }) => assert_eq!(max, max_len),
        Err(_) => assert!(
            trimmed.len() <= max_len,
            "over-long value not reported as such"
        ),
    }
}

/// Encoders: whatever they produce is printable ASCII that decodes back to
/// the input, unless the input has a control character (then decoding
/// refuses it).
pub fn encode_roundtrip(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let has_control = value.chars().any(char::is_control);
    let q = Decoding {
        base64_prefix: false,
        rfc2047: true,
    };
    let b64 = Decoding {
        base64_prefix: true,
        rfc2047: false,
    };
    let bound = value.len().saturating_mul(4).saturating_add(64);

    let enc = encode_rfc2047(&value);
    assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{enc:?}");
    if enc != value {
        for word in enc.split(' ') {
            assert!(
                word.len() <= MAX_ENCODED_WORD_LEN,
                "encoded-word too long: {word}"
            );
        }
    }
    let got = crate::decode::decode_value(enc.as_bytes(), q, bound);
    if has_control {
        assert_eq!(got, Err(ValueError::ControlCharacter));
    } else {
        assert_eq!(got.as_deref(), Ok(&*value), "RFC 2047 round trip");
    }

    let enc = encode_base64_prefixed(&value);
    assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{enc:?}");
    assert!(enc == value || enc.starts_with(BASE64_PREFIX));
    let got = crate::decode::decode_value(enc.as_bytes(), b64, bound);
    if has_control {
        assert_eq!(got, Err(ValueError::ControlCharacter));
    } else {
        assert_eq!(got.as_deref(), Ok(&*value), "base64 round trip");
    }
}

/// [`path_interpretations`](crate::path::path_interpretations) and
/// [`target_path`] on arbitrary text.
pub fn path_interpretations(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let path = target_path(target);
    assert!(target.starts_with(path) && !path.contains('?'));
    check_path(target);
    if path != target {
        check_path(path);
    }
}

fn check_path(path: &str) {
    match crate::path::path_interpretations(path) {
        Ok(readings) => {
            assert!(path.starts_with('/') && path.len() <= MAX_PATH_LEN);
            assert!(!path.contains('#'), "a raw `#` must be refused");
            assert!(!readings.is_empty() && readings.len() <= crate::path::MAX_READINGS);
            for (i, r) in readings.iter().enumerate() {
                assert!(r.starts_with('/'), "{r:?} is not absolute");
                assert!(
                    r.split('/').all(|s| s != "." && s != ".."),
                    "{r:?} has a dot segment"
                );
                assert!(
                    !r.contains('\\') && !r.chars().any(char::is_control),
                    "{r:?}"
                );
                assert!(
                    !readings.get(..i).unwrap_or(&[]).contains(r),
                    "duplicate {r:?}"
                );
                // Without escapes left, a reading reads plainly as itself.
                if !r.contains('%') && r.len() <= MAX_PATH_LEN {
                    let again = crate::path::path_interpretations(r);
                    assert_eq!(again.as_ref().map(|a| a.first()), Ok(Some(r)), "{r:?}");
                }
            }
        }
        Err(PathError::NotAbsolute) => assert!(!path.starts_with('/')),
        Err(PathError::TooLong) => assert!(path.len() > MAX_PATH_LEN),
        Err(PathError::Fragment) => assert!(path.contains('#')),
        Err(_) => {}
    }
}

/// [`parse_trusted_network`] and [`TrustedNetworks`]: accepted entries
/// contain their own network address, print back to themselves, and match
/// IPv4-mapped and plain spellings alike.
pub fn trusted_network(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // A comma-separated list parses entry by entry.
    let entries: Vec<&str> = text.split(',').collect();
    if let Ok(list) = TrustedNetworks::parse(&entries) {
        assert_eq!(list.networks().len(), entries.len());
        for (entry, net) in entries.iter().zip(list.networks()) {
            assert_eq!(parse_trusted_network(entry).as_ref(), Ok(net));
        }
    }
    let Ok(net) = parse_trusted_network(&text) else {
        return;
    };
    assert!(net.contains(&net.network()));
    assert_eq!(
        parse_trusted_network(&net.to_string()),
        Ok(net),
        "{net} does not re-parse"
    );
    if let ipnet::IpNet::V6(v6) = net {
        assert!(
            v6.network().to_ipv4_mapped().is_none() || v6.prefix_len() < 96,
            "{net} left mapped"
        );
    }
    let set = TrustedNetworks::from_networks(vec![net]);
    let probe = match net.network() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::new(10, 0, 0, 1),
    };
    assert_eq!(
        set.contains(IpAddr::V4(probe)),
        set.contains(IpAddr::V6(probe.to_ipv6_mapped())),
        "mapped and plain spellings disagree for {net}"
    );
    let peer = Peer::tcp(net.network());
    assert!(
        peer.is_trusted(&set),
        "{net}'s own network address is not trusted"
    );
}

/// OWS trimming, as `decode_value` does it.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A `name:value` line as a header field, or `None` where there is no
/// colon or either side is not valid in a field.
fn header_line(line: &[u8]) -> Option<(http::HeaderName, http::HeaderValue)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    Some((
        http::HeaderName::from_bytes(name).ok()?,
        http::HeaderValue::from_bytes(value).ok()?,
    ))
}

/// Header normalisation and dialect mapping: the input is header lines
/// (`name: value`, split on `\n`), the first byte picks the dialect. Checks
/// that the identity-header set agrees with normalisation and that any
/// identity read is well-formed.
pub fn dialect_extract(data: &[u8]) {
    use crate::dialect::{Dialect, Preset, ValueLimits};
    use crate::headers::{IdentityHeaders, normalize_name};

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let preset = Preset::ALL[usize::from(selector) % Preset::ALL.len()];
    let dialect = Dialect::preset(preset);
    let ids = IdentityHeaders::builtin().with_names(dialect.header_names());
    let mut headers = http::HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some((name, value)) = header_line(line) else {
            continue;
        };
        // The set must not depend on spelling.
        let n = name.as_str();
        assert_eq!(ids.contains(n), ids.contains(&normalize_name(n)));
        assert_eq!(ids.contains(n), ids.contains(&n.replace('-', "_")));
        headers.append(name, value);
    }
    let limits = ValueLimits::default();
    if let Ok(Some(id)) = dialect.extract(&headers, &limits) {
        assert!(!id.subject.is_empty());
        assert!(!id.username.is_empty());
        assert!(id.groups.len() <= limits.max_groups);
        for v in [&id.subject, &id.username]
            .into_iter()
            .chain(id.email.iter())
            .chain(id.display_name.iter())
            .chain(id.groups.iter())
        {
            assert!(!v.chars().any(char::is_control), "control char in {v:?}");
            assert!(v.len() <= limits.max_groups_len);
        }
        for g in &id.groups {
            assert!(!g.contains([',', ';', '|']), "separator in group {g:?}");
        }
    }
    // Stripping leaves no identity header behind.
    let mut stripped = headers.clone();
    ids.strip(&mut stripped);
    assert!(stripped.keys().all(|n| !ids.contains(n.as_str())));
}

/// Route matching: the input is a raw path (lossy UTF-8). Whatever the
/// path, matching either picks one route for every reading or refuses; and
/// the route picked is at least as strict as the one any case-folded
/// spelling of the path gets, so case never loosens a decision.
pub fn route_find(data: &[u8]) {
    use crate::policy::{AuthMode, RoutePolicy};
    use crate::route::RouteTable;

    let policy = |auth: AuthMode, group: &str| RoutePolicy {
        auth,
        allow_groups: if group.is_empty() {
            vec![]
        } else {
            vec![group.to_owned()]
        },
        ..Default::default()
    };
    let policies = vec![
        policy(AuthMode::Required, ""),
        policy(AuthMode::Public, ""),
        policy(AuthMode::Required, "api"),
        policy(AuthMode::Required, "admins"),
        policy(AuthMode::Optional, ""),
        policy(AuthMode::Required, "ops"),
    ];
    let routes = [
        (None, "/"),
        (None, "/public"),
        (None, "/api/v1"),
        (Some("app.example.com"), "/admin"),
        (Some("*.example.com"), "/"),
        (None, "/OPS"),
    ];
    let Some(table) = RouteTable::new(routes)
        .ok()
        .and_then(|t| t.with_policies(policies.clone()))
    else {
        return;
    };
    // The same table as a case-insensitive app's router sees it.
    let lowered: Vec<(Option<&str>, String)> =
        routes.iter().map(|(h, p)| (*h, p.to_lowercase())).collect();
    let Ok(table_lowercased) = RouteTable::new(lowered.iter().map(|(h, p)| (*h, p.as_str())))
    else {
        return;
    };
    let raw = String::from_utf8_lossy(data);
    let path = target_path(&raw);
    for host in [None, Some("app.example.com"), Some("x.example.com:8443")] {
        let found = table.find(host, path);
        if let Ok(Some(i)) = found {
            assert!(i < 6);
            // The chosen route covers the plain reading of the path.
            if let Ok(readings) = crate::path::path_interpretations(path) {
                assert!(!readings.is_empty());
            }
        }
        if path.contains('#') {
            assert!(found.is_err(), "a raw `#` must be refused");
        }
        // The route chosen is at least as strict as the one a
        // case-insensitive app's router would pick: the same table with
        // every prefix and the path lowercased. (ASCII without escapes, so
        // that lowercasing commutes with every reading.)
        if path.is_ascii() && !path.contains('%') {
            let lowered = table_lowercased.find(host, &path.to_ascii_lowercase());
            if let (Ok(Some(a)), Ok(Some(b))) = (&found, lowered) {
                assert!(
                    policies[*a].at_least_as_strict_as(&policies[b]),
                    "{path:?} -> {a}, lowercased -> {b}"
                );
            }
        }
    }
}

/// [`check_upgrade`](crate::upgrade::check_upgrade): the input is `Upgrade`
/// header lines, and a first line `HTTP2-Settings` when it starts with `!`.
/// Only a single `websocket` token passes, and never with `HTTP2-Settings`.
pub fn upgrade_header(data: &[u8]) {
    use crate::upgrade::{Upgrade, UpgradeError, check_upgrade};
    use http::{HeaderMap, HeaderValue};

    let (settings, rest) = match data.split_first() {
        Some((b'!', rest)) => (true, rest),
        _ => (false, data),
    };
    let mut headers = HeaderMap::new();
    if settings {
        headers.insert(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAARAAAAAAAIAAAAA"),
        );
    }
    for line in rest.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(http::header::UPGRADE, v);
        }
    }
    let tokens: Option<Vec<String>> = headers
        .get_all(http::header::UPGRADE)
        .iter()
        .map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    match check_upgrade(&headers) {
        Ok(None) => assert!(!settings && headers.get(http::header::UPGRADE).is_none()),
        Ok(Some(Upgrade::WebSocket)) => {
            assert!(!settings);
            let tokens = tokens.expect("accepted values are text");
            let words: Vec<&str> = tokens
                .iter()
                .flat_map(|t| t.split(','))
                .map(|t| t.trim_matches([' ', '\t']))
                .filter(|t| !t.is_empty())
                .collect();
            assert_eq!(words.len(), 1);
            assert!(words[0].eq_ignore_ascii_case("websocket"));
        }
        Err(UpgradeError::Http2Settings) => assert!(settings),
        Err(UpgradeError::NotWebSocket(v)) => {
            assert!(!settings && !v.eq_ignore_ascii_case("websocket"));
        }
        Err(_) => assert!(!settings),
    }
}

/// Cookie and token parsing: the input is `Cookie` header lines. A cookie
/// found is one that appears exactly once; a token accepted has the exact
/// shape of a generated one.
pub fn cookie_and_token(data: &[u8]) {
    use crate::secret::{find_cookie, is_session_token, session_token};

    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Some(v) = find_cookie(lines.iter().copied(), "vestibule") {
        let occurrences: usize = lines
            .iter()
            .filter_map(|l| std::str::from_utf8(l).ok())
            .flat_map(|l| l.split(';'))
            .filter(|p| {
                p.trim_matches([' ', '\t'])
                    .split_once('=')
                    .is_some_and(|(k, _)| k == "vestibule")
            })
            .count();
        assert_eq!(occurrences, 1);
        if is_session_token(v) {
            assert_eq!(v.len(), 47);
        }
    }
    let text = String::from_utf8_lossy(data);
    if is_session_token(&text) {
        assert!(text.starts_with("vss_"));
    }
    if data.len() >= 32 {
        let mut b = [0u8; 32];
        b.copy_from_slice(&data[..32]);
        assert!(is_session_token(session_token(b).expose()));
    }
}

/// Stripping vestibule's cookies before forwarding: the input is `Cookie`
/// header lines (on `\n`). Afterwards no line holds a pair of ours, every
/// line is still a header value, and a second pass changes nothing.
pub fn cookie_strip(data: &[u8]) {
    use crate::headers::{strip_cookie_line, strip_cookies};
    use crate::secret::find_cookie;

    const OURS: &[&str] = &["vestibule", "__Host-vestibule"];
    let mut headers = http::HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = http::HeaderValue::from_bytes(line) {
            headers.append(http::header::COOKIE, v);
        }
    }
    let before: Vec<Vec<u8>> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let dropped = strip_cookies(&mut headers, OURS);
    let after: Vec<&[u8]> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect();
    if dropped == 0 {
        assert_eq!(after, before.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
    for line in &after {
        assert!(!line.is_empty() || before.iter().any(|b| b.is_empty()));
        assert_eq!(strip_cookie_line(line, OURS), (None, 0), "{line:?}");
    }
    for name in OURS {
        assert_eq!(find_cookie(after.iter().copied(), name), None);
    }
    let mut again = headers.clone();
    assert_eq!(strip_cookies(&mut again, OURS), 0);
    assert_eq!(again, headers);
}

/// Device credential carriers: bits 0–4 of the first byte enable Basic,
/// Bearer, `Proxy-Authorization`, the custom header `x-device-token` and
/// the query parameter `token`; the rest is lines split on `\n`, each
/// `name: value`, except that a line starting with `?` is the query string.
/// Checks that a credential found is well-formed and comes from an enabled
/// carrier, that the outcome does not depend on carriers that hold nothing,
/// and that stripping the carrier leaves nothing to find. The whole input
/// is also read as a typed pairing code.
pub fn credential_carriers(data: &[u8]) {
    use crate::credential::{
        Carrier, Carriers, CredentialKind, find_credential, is_device_token,
        normalize_pairing_code, remove_query_param, strip_credential_headers,
    };

    if let Some(code) = normalize_pairing_code(&String::from_utf8_lossy(data)) {
        assert_eq!(code.len(), 11);
        assert_eq!(normalize_pairing_code(&code).as_ref(), Some(&code));
    }
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let all = Carriers {
        basic: true,
        bearer: true,
        proxy_authorization: true,
        header: Some(http::HeaderName::from_static("x-device-token")),
        query: Some("token".to_owned()),
    };
    let carriers = Carriers {
        basic: selector & 1 != 0,
        bearer: selector & 2 != 0,
        proxy_authorization: selector & 4 != 0,
        header: all.header.clone().filter(|_| selector & 8 != 0),
        query: all.query.clone().filter(|_| selector & 16 != 0),
    };
    let mut headers = http::HeaderMap::new();
    let mut query = None;
    for line in rest.split(|&b| b == b'\n') {
        if let Some(q) = line.strip_prefix(b"?") {
            query = Some(String::from_utf8_lossy(q).into_owned());
            continue;
        }
        let Some((name, value)) = header_line(line) else {
            continue;
        };
        headers.append(name, value);
    }
    let query = query.as_deref();

    let found = find_credential(&headers, query, &carriers);
    // With every carrier enabled, nothing found means nothing found with
    // fewer.
    if find_credential(&headers, query, &all) == Ok(None) {
        assert_eq!(found, Ok(None), "a subset of carriers found more");
    }
    if !carriers.any() {
        assert_eq!(found, Ok(None), "found with every carrier off");
    }
    let Ok(Some(presented)) = found else {
        return;
    };
    assert!(is_device_token(presented.token.expose()));
    let enabled = match presented.carrier {
        Carrier::Basic => carriers.basic,
        Carrier::Bearer => carriers.bearer,
        Carrier::ProxyAuthorization => carriers.proxy_authorization,
        Carrier::Header => carriers.header.is_some(),
        Carrier::Query => carriers.query.is_some(),
        Carrier::ClientCertificate => false,
    };
    assert!(enabled, "{:?} is not enabled", presented.carrier);
    if let Some(user) = &presented.basic_user {
        assert!(matches!(
            presented.carrier,
            Carrier::Basic | Carrier::ProxyAuthorization
        ));
        assert!(!user.chars().any(char::is_control));
    } else {
        assert_ne!(presented.carrier, Carrier::Basic);
    }
    // Exactly one kind of credential may be sent this way: a Basic password
    // is an app password, everything else a token.
    let kinds = [CredentialKind::Token, CredentialKind::AppPassword]
        .into_iter()
        .filter(|k| k.accepts(&presented))
        .count();
    assert_eq!(kinds, 1);
    assert_eq!(
        CredentialKind::AppPassword.accepts(&presented),
        presented.basic_user.is_some()
    );
    // The other carriers held nothing: the one that did suffices.
    let alone = Carriers {
        basic: presented.carrier == Carrier::Basic,
        bearer: presented.carrier == Carrier::Bearer,
        proxy_authorization: presented.carrier == Carrier::ProxyAuthorization,
        header: carriers
            .header
            .clone()
            .filter(|_| presented.carrier == Carrier::Header),
        query: carriers
            .query
            .clone()
            .filter(|_| presented.carrier == Carrier::Query),
    };
    assert_eq!(
        find_credential(&headers, query, &alone),
        Ok(Some(presented.clone()))
    );
    // Stripped, the request holds nothing more for these carriers, and
    // headers other than the carrier's are untouched.
    let mut stripped = headers.clone();
    strip_credential_headers(&mut stripped, presented.carrier, &carriers);
    let removed: Vec<_> = headers
        .keys()
        .filter(|k| !stripped.contains_key(*k))
        .collect();
    assert!(removed.len() <= 1, "{removed:?}");
    let target = query.map(|q| remove_query_param(&format!("/p?{q}"), "token"));
    let stripped_query = match presented.carrier {
        Carrier::Query => target
            .as_deref()
            .map(|t| t.split_once('?').map_or("", |(_, q)| q)),
        _ => query,
    };
    assert_eq!(
        find_credential(&stripped, stripped_query, &carriers),
        Ok(None)
    );
}

/// Return addresses ([`crate::redirect`]): the first byte picks the origin
/// of the request being answered, the rest (lossy UTF-8) is the address.
/// An accepted address must lead, both as given and as rebuilt, to the
/// origin the result names, as read by `browser_origin`, a model of the
/// WHATWG URL parser's leniencies written independently of the module.
pub fn redirect_target(data: &[u8]) {
    use crate::redirect::{MAX_RETURN_LEN, Origin, RedirectError, RedirectPolicy};

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let parse = |s: &str| Origin::parse(s).expect("fixed origin");
    let policy = RedirectPolicy::new([
        parse("https://auth.good.example"),
        parse("https://good.example"),
        parse("http://good.example:8080"),
        parse("https://[2001:db8::1]:8443"),
        parse("https://192.0.2.1"),
    ]);
    let heres = [
        parse("https://auth.good.example"),
        parse("http://app.example:8443"),
        parse("https://[::1]"),
    ];
    let here = &heres[usize::from(selector) % heres.len()];
    let raw = String::from_utf8_lossy(rest);

    // Origins, parsed from the same input, print back to themselves and
    // mean to a browser what they mean to us.
    for origin in [Origin::parse(&raw), Origin::of_url(&raw)]
        .into_iter()
        .flatten()
    {
        assert_eq!(Origin::parse(&origin.to_string()).as_ref(), Ok(&origin));
        assert_eq!(
            browser_origin(&raw, here),
            browser_origin(&format!("{origin}/"), here),
            "{raw:?} read as {origin}"
        );
    }

    let result = policy.check(&raw, here);
    if raw.is_empty() {
        assert_eq!(result, Err(RedirectError::Empty));
    } else if raw.len() > MAX_RETURN_LEN {
        assert_eq!(result, Err(RedirectError::TooLong));
    }
    let Ok(out) = result else {
        return;
    };
    assert!(
        raw.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'\\'),
        "{raw:?} accepted"
    );
    // The result is an allowed origin (or, for a path, ours), a `/`, and
    // the rest as given.
    let candidates: Vec<&Origin> = if raw.starts_with('/') {
        assert_eq!(out, format!("{here}{raw}"));
        vec![here]
    } else {
        policy.origins().iter().collect()
    };
    let Some((target, path)) = candidates.iter().find_map(|o| {
        let prefix = o.to_string();
        out.strip_prefix(prefix.as_str())
            .filter(|p| p.starts_with('/'))
            .map(|p| (*o, p))
    }) else {
        panic!("{raw:?} -> {out:?}: not on an allowed origin");
    };
    assert!(!path.starts_with("//"), "{out:?}");
    assert!(
        raw.ends_with(path.trim_start_matches('/')),
        "{raw:?} -> {out:?}"
    );
    // A browser goes there, whether it reads the address or the result.
    let want = browser_origin(&format!("{target}/"), here);
    assert!(want.is_some(), "{target} unreadable");
    assert_eq!(browser_origin(&out, here), want, "{out:?}");
    assert_eq!(browser_origin(&raw, here), want, "{raw:?}");
    // The result is its own fixed point.
    if policy.allows(target) {
        for other in &heres {
            assert_eq!(policy.check(&out, other).as_ref(), Ok(&out));
        }
    }
}

/// A host as a browser compares it.
#[derive(Debug, PartialEq, Eq)]
enum BrowserHost {
    V6(Ipv6Addr),
    Name(String),
}

/// Where a browser on a page of `base` goes for `input` (scheme, host,
/// port), modelling the WHATWG URL parser's leniencies: leading and
/// trailing controls and spaces trimmed, tab and newline removed anywhere,
/// `\` read as `/`, any number of slashes before the authority, userinfo
/// up to the last `@`, an empty port meaning the default one. `None` for
/// other schemes and hosts this model does not read (percent-escapes).
fn browser_origin(
    input: &str,
    base: &crate::redirect::Origin,
) -> Option<(crate::redirect::Scheme, BrowserHost, u16)> {
    use crate::redirect::Scheme;

    let cleaned: String = input
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    let on_base = || Some((base.scheme(), browser_host(base.host())?, base.port()));
    let scheme_name = cleaned.split_once(':').filter(|(name, _)| {
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, after) = match scheme_name {
        Some((name, rest)) => {
            let scheme = match name.to_ascii_lowercase().as_str() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                _ => return None,
            };
            // Same scheme as the page and no `//`: a path on the page's
            // host ("special relative or authority state").
            if scheme == base.scheme() && !rest.starts_with("//") {
                return on_base();
            }
            (scheme, rest.trim_start_matches('/'))
        }
        None if cleaned.starts_with("//") => (base.scheme(), cleaned.trim_start_matches('/')),
        None => return on_base(),
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let split = if host_port.starts_with('[') {
        host_port.find(']').map(|i| i + 1)
    } else {
        host_port.find(':')
    };
    let (host, port) = host_port.split_at(split.unwrap_or(host_port.len()));
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => scheme.default_port(),
        None => return None,
        Some("") => scheme.default_port(),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.trim_start_matches('0') {
            "" => 0,
            digits => digits.parse().ok()?,
        },
        Some(_) => return None,
    };
    Some((scheme, browser_host(host)?, port))
}

fn browser_host(host: &str) -> Option<BrowserHost> {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.strip_suffix(']')?.parse().ok().map(BrowserHost::V6);
    }
    if host.is_empty() || host.contains('%') {
        return None;
    }
    Some(BrowserHost::Name(host.to_ascii_lowercase()))
}

/// The keys the JWT targets run with, made once per process: Ed25519 and
/// P-256 keys derived from fixed seeds (so tokens saved in the corpus
/// verify on every run) and a generated RSA key (for the RSA paths; its
/// tokens do not outlive the process).
struct JwtFixture {
    ed: crate::jwt::testing::TestSigner,
    es: crate::jwt::testing::TestSigner,
    jwks: crate::jwt::Jwks,
    audiences: Vec<String>,
    /// A valid token signed by `ed`.
    token: String,
}

/// The time the JWT targets verify at; corpus tokens expire after it.
const JWT_NOW: i64 = 1_700_000_000;

fn jwt_fixture() -> &'static JwtFixture {
    use crate::jwt::Jwks;
    use crate::jwt::testing::TestSigner;

    static FIXTURE: std::sync::OnceLock<JwtFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ed = TestSigner::ed25519_from_seed("fuzz-ed", &[0x11; 32]);
        let es = TestSigner::es256_from_seed("fuzz-es", &[0x22; 32]);
        let rs = TestSigner::rs256("fuzz-rs");
        let jwks =
            Jwks::parse(TestSigner::jwks_json(&[&ed, &es, &rs]).as_bytes()).expect("fixture JWKS");
        let token = ed.sign(&serde_json::json!({
            "iss": "https://sso.example.com", "aud": "app", "sub": "u-1",
            "exp": JWT_NOW + 600, "email": "a@example.com", "groups": ["g"],
        }));
        JwtFixture {
            ed,
            es,
            jwks,
            audiences: vec!["app".to_owned()],
            token,
        }
    })
}

impl JwtFixture {
    fn expect(&self) -> crate::jwt::Expectations<'_> {
        crate::jwt::Expectations {
            issuer: "https://sso.example.com",
            audiences: &self.audiences,
            algorithms: &crate::jwt::Algorithm::ALL,
            now: JWT_NOW,
            leeway: 60,
            max_token_bytes: 16 * 1024,
        }
    }
}

/// Verified claims meet the expectations, and every preset's identity made
/// from them is clean and bounded (or refused).
fn check_verified(claims: &crate::jwt::Claims, expect: &crate::jwt::Expectations<'_>) {
    use crate::jwt::{ClaimMapping, identity_from_claims};
    const MAX_VALUE: usize = 256;
    const MAX_GROUPS: usize = 1024;

    assert_eq!(claims.issuer, expect.issuer);
    assert!(
        claims
            .audiences
            .iter()
            .any(|a| expect.audiences.contains(a))
    );
    assert!(expect.now < claims.expires_at.saturating_add(expect.leeway));
    let later = expect.now.saturating_add(expect.leeway);
    assert!(claims.not_before.is_none_or(|nbf| nbf <= later));
    assert!(claims.issued_at.is_none_or(|iat| iat <= later));
    assert!(!claims.subject.is_empty());
    assert_eq!(claims.get_str("sub"), Some(claims.subject.as_str()));
    for name in ClaimMapping::PRESETS {
        let Some(mapping) = ClaimMapping::preset(name) else {
            continue;
        };
        let Ok(id) = identity_from_claims(claims, &mapping, "jwt", MAX_VALUE, MAX_GROUPS) else {
            continue;
        };
        assert!(!id.subject.is_empty() && !id.username.is_empty());
        for v in [&id.subject, &id.username]
            .into_iter()
            .chain(id.email.iter())
            .chain(id.display_name.iter())
            .chain(id.given_name.iter())
            .chain(id.family_name.iter())
        {
            assert!(!v.chars().any(char::is_control), "control char in {v:?}");
            assert!(v.len() <= MAX_VALUE);
        }
        assert!(id.groups.join(",").len() <= MAX_GROUPS);
        for g in &id.groups {
            assert!(!g.is_empty());
            assert!(!g.contains([',', ';', '|']), "separator in group {g:?}");
            assert!(!g.chars().any(char::is_control), "control char in {g:?}");
        }
    }
}

/// JWT verification ([`crate::jwt::verify`]), two ways. The input (lossy
/// UTF-8) is a token verified against the fixture's JWKS: whatever it is,
/// nothing panics, and anything accepted meets the expectations. Then the
/// input after its first byte is a payload the harness signs (the first
/// byte picks the Ed25519 or P-256 key): a harness-signed token may only
/// fail on its claims, an accepted one maps to clean identities, and
/// changing any one character of it makes it fail.
pub fn jwt_verify(data: &[u8]) {
    use crate::jwt::{JwtError, verify};

    let fx = jwt_fixture();
    let expect = fx.expect();

    let token = String::from_utf8_lossy(data);
    if let Ok(claims) = verify(&token, &fx.jwks, &expect) {
        check_verified(&claims, &expect);
    }

    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let signer = if selector & 1 == 0 { &fx.ed } else { &fx.es };
    let token = signer.sign_bytes(signer.header().to_string().as_bytes(), payload);
    match verify(&token, &fx.jwks, &expect) {
        Ok(claims) => {
            check_verified(&claims, &expect);
            let value: serde_json::Value =
                serde_json::from_slice(payload).expect("verified claims are JSON");
            assert_eq!(
                value.get("sub").and_then(serde_json::Value::as_str),
                Some(claims.subject.as_str())
            );
            let mut bytes = token.into_bytes();
            let i = (usize::from(selector) * 131 + payload.len()) % bytes.len();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).expect("tokens are ASCII");
            assert!(
                verify(&changed, &fx.jwks, &expect).is_err(),
                "still verifies with byte {i} changed"
            );
        }
        Err(e) => assert!(
            !matches!(
                e,
                JwtError::BadSignature
                    | JwtError::UnknownKey { .. }
                    | JwtError::AmbiguousKey { .. }
                    | JwtError::KeyMismatch
                    | JwtError::UnsupportedAlgorithm(_)
                    | JwtError::AlgorithmNotAllowed
                    | JwtError::CriticalHeader
                    | JwtError::WrongType
            ),
            "a token the harness signed failed with {e:?}"
        ),
    }
}

/// JWK Set parsing ([`crate::jwt::Jwks::parse`]) on arbitrary bytes: no
/// panic; a set with a private member in any key is refused as such; a set
/// accepted accounts for every key (used or skipped) and can verify.
pub fn jwks_parse(data: &[u8]) {
    use crate::jwt::{Jwks, JwksError, verify};
    use serde_json::Value;

    let parsed = Jwks::parse(data);
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    let keys = doc
        .as_ref()
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array);
    let private = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];
    let has_private = keys.is_some_and(|keys| {
        keys.iter()
            .filter_map(Value::as_object)
            .any(|k| private.iter().any(|m| k.contains_key(*m)))
    });
    if has_private {
        assert!(
            matches!(parsed, Err(JwksError::PrivateKey { .. })),
            "a private key was not refused: {parsed:?}"
        );
    }
    match parsed {
        Ok(jwks) => {
            let keys = keys.expect("an accepted set has a keys array");
            assert!(!jwks.is_empty());
            assert_eq!(jwks.len() + jwks.skipped().len(), keys.len());
            let fx = jwt_fixture();
            let _ = verify(&fx.token, &jwks, &fx.expect());
        }
        Err(JwksError::Malformed(_)) => assert!(keys.is_none()),
        Err(_) => assert!(keys.is_some()),
    }
}

/// Our own keys for [`jose_jws`]: an Ed25519 key that signs and a P-256
/// key retired until `JWT_NOW + 600`, as after one rotation.
fn jose_key_set() -> &'static vestibule_jose::KeySet {
    use vestibule_jose::{Algorithm, KeySet, SigningKey};

    static SET: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let key = |alg| SigningKey::generate(alg).expect("key generation");
        let mut set = KeySet::new(key(Algorithm::ES256)).expect("key set");
        set.add_next(key(Algorithm::EdDSA)).expect("next key");
        set.rotate(JWT_NOW + 600).expect("rotation");
        set
    })
}

/// vestibule-jose's compact JWS parser and [`vestibule_jose::KeySet`],
/// two ways. The input (lossy UTF-8) as a token: parsing and verifying
/// never panic, and nothing verifies under our keys without our signature.
/// Then the input as a payload the current key signs: it verifies, comes
/// back byte for byte, and changing any one character of the token (or
/// verifying after the retired key's time, with a retired key) fails.
pub fn jose_jws(data: &[u8]) {
    use vestibule_jose::{Algorithm, Compact, Policy, thumbprint};

    let set = jose_key_set();
    let policy = Policy {
        algorithms: &Algorithm::ALL,
        types: &["JWT"],
        type_required: false,
    };
    let token = String::from_utf8_lossy(data);
    if let Ok(jws) = Compact::parse(&token) {
        let _ = jws.header().get("kid");
        if let Ok(verified) = set.verify(&jws, &policy, JWT_NOW) {
            let _ = verified.claims_object();
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(t) = thumbprint(&value)
    {
        assert_eq!(
            t.len(),
            43,
            "a SHA-256 thumbprint is 43 base64url characters"
        );
    }

    let signed = set.sign(Some("JWT"), data).expect("signing");
    let jws = Compact::parse(&signed).expect("our own token parses");
    let verified = set
        .verify(&jws, &policy, JWT_NOW)
        .expect("our own token verifies");
    assert_eq!(verified.payload(), data);
    assert_eq!(verified.kid(), Some(set.current().kid()));
    let mut bytes = signed.into_bytes();
    let i = data.len().wrapping_mul(131) % bytes.len();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(bytes).expect("tokens are ASCII");
    assert!(
        Compact::parse(&changed)
            .and_then(|c| set.verify(&c, &policy, JWT_NOW))
            .is_err(),
        "still verifies with byte {i} changed"
    );
}

/// `User-Agent` reading: what is stored is short visible ASCII and stable
/// when stored again; the description is always from the fixed lists.
pub fn user_agent(data: &[u8]) {
    use crate::user_agent::{MAX_STORED_BYTES, describe, for_record};

    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let stored = for_record(lines.iter().copied());
    if lines.len() > 1 {
        assert_eq!(stored, None, "two lines");
    }
    if let Some(s) = &stored {
        assert!(!s.is_empty() && s.len() <= MAX_STORED_BYTES);
        assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
        assert_eq!(for_record([s.as_bytes()].into_iter()).as_ref(), Some(s));
    }
    let summary = describe(&String::from_utf8_lossy(data));
    assert!(!summary.browser.is_empty() && !summary.os.is_empty());
}

/// LDAP values from the front: a DN value escaped (RFC 4514) reads back
/// as itself and carries no bare special character; any string the strict
/// reader accepts round-trips; a filter value (RFC 4515) keeps no
/// metacharacter; a normalised uid is a fixed point.
pub fn ldap_values(data: &[u8]) {
    use crate::ldap::{escape_dn_value, escape_filter_value, normalize_uid, unescape_dn_value};

    let text = String::from_utf8_lossy(data);
    let escaped = escape_dn_value(&text);
    assert_eq!(unescape_dn_value(&escaped).as_deref(), Ok(&*text));
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        assert!(
            !",+;=<>\"\0".contains(c) && !c.is_ascii_control(),
            "{escaped:?}"
        );
    }
    if let Ok(v) = unescape_dn_value(&text) {
        assert_eq!(unescape_dn_value(&escape_dn_value(&v)), Ok(v));
    }
    assert!(!escape_filter_value(&text).contains(['*', '(', ')', '\0']));
    if let Ok(uid) = normalize_uid(&text) {
        assert_eq!(normalize_uid(&uid), Ok(uid.clone()));
    }
}

/// The forwarded client-certificate reader (`client_cert`): the first byte
/// picks the format, the rest is header lines (`name: value`). Never
/// panics; an accepted value is one DER certificate whose fingerprint is
/// the SHA-256 of what the format decodes to; a second copy of the header
/// is always refused.
pub fn client_cert_header(data: &[u8]) {
    use crate::client_cert::{
        CertFormat, CertHeaderError, ForwardedCertSource, parse_cert_value, read_forwarded_cert,
    };
    use crate::headers::same_name;
    use http::{HeaderMap, HeaderName, HeaderValue};

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = CertFormat::ALL[usize::from(selector) % CertFormat::ALL.len()];
    let source = ForwardedCertSource {
        header: "X-Client-Cert".into(),
        format,
        verify_header: (selector & 0x80 != 0).then(|| "X-Client-Verify".into()),
    };
    // The raw bytes as one value, whatever they hold.
    let _ = parse_cert_value(rest, format);
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let copies = headers
        .keys()
        .filter(|n| same_name(n.as_str(), &source.header))
        .map(|n| headers.get_all(n).iter().count())
        .sum::<usize>();
    match read_forwarded_cert(&headers, &source) {
        Ok(Some(fp)) => {
            assert_eq!(copies, 1);
            let value = headers
                .iter()
                .find(|(n, _)| same_name(n.as_str(), &source.header))
                .map(|(_, v)| v.as_bytes())
                .expect("the header was read");
            assert_eq!(parse_cert_value(value, format), Ok(Some(fp)));
        }
        Ok(None) => assert!(copies <= 1),
        Err(CertHeaderError::Duplicate) => {
            let verify_copies = headers
                .keys()
                .filter(|n| same_name(n.as_str(), "X-Client-Verify"))
                .map(|n| headers.get_all(n).iter().count())
                .sum::<usize>();
            assert!(copies > 1 || (source.verify_header.is_some() && verify_copies > 1));
        }
        Err(CertHeaderError::Malformed(_)) => assert_eq!(copies, 1),
    }
}

/// [`request_body_framing`](crate::framing::request_body_framing) and
/// [`chunked_body_ok`](crate::framing::chunked_body_ok). The first byte's
/// low bit is the HTTP version (1 = 1.1); the rest is field lines split at
/// `\n`, each `C` (Content-Length) or `T` (Transfer-Encoding) then its
/// value. A framing is only ever decided from exactly one field's single
/// element; the whole input is also run through the chunked grammar, and
/// a body that passes it is rebuilt chunk by chunk and passes again.
pub fn request_framing(data: &[u8]) {
    use crate::framing::{BodyFraming, chunked_body_ok, request_body_framing};

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let http11 = flags & 1 == 1;
    let mut cl: Vec<&[u8]> = Vec::new();
    let mut te: Vec<&[u8]> = Vec::new();
    for line in rest.split(|&b| b == b'\n') {
        match line.split_first() {
            Some((b'C', v)) => cl.push(v),
            Some((b'T', v)) => te.push(v),
            _ => {}
        }
    }
    match request_body_framing(http11, cl.iter().copied(), te.iter().copied()) {
        Ok(BodyFraming::Empty) => assert!(cl.is_empty() && te.is_empty()),
        Ok(BodyFraming::Chunked) => assert!(http11 && cl.is_empty() && !te.is_empty()),
        Ok(BodyFraming::Length(n)) => {
            assert!(te.is_empty());
            let digits: Vec<u8> = cl
                .iter()
                .flat_map(|l| l.iter().copied())
                .filter(u8::is_ascii_digit)
                .collect();
            assert_eq!(
                std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok()),
                Some(n)
            );
        }
        Err(_) => assert!(!cl.is_empty() || !te.is_empty()),
    }
    if chunked_body_ok(rest) {
        assert!(rest.ends_with(b"\r\n\r\n"));
    }
}

/// [`Tracker`](crate::framing::stream::Tracker), the request-stream
/// boundary tracker: the first byte picks where the rest is cut into two
/// or three pieces. Fed whole, in those pieces and byte by byte, it gives
/// one verdict, head count and tracking state; a reported head is one it
/// counted, after which it has stopped; its kept partial line never grows
/// beyond the cap.
pub fn request_stream(data: &[u8]) {
    use crate::framing::stream::Tracker;

    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    const CAP: usize = 256;
    let outcome = |t: &Tracker| (t.first_ambiguous(), t.heads(), t.tracking());
    let mut whole = Tracker::new(CAP);
    whole.feed(rest);
    let a = usize::from(seed & 0x0f) * rest.len() / 15;
    let b = a + usize::from(seed >> 4) * (rest.len() - a) / 15;
    let mut pieces = Tracker::new(CAP);
    for piece in [&rest[..a], &rest[a..b], &rest[b..]] {
        pieces.feed(piece);
    }
    let mut bytewise = Tracker::new(CAP);
    for byte in rest {
        bytewise.feed(std::slice::from_ref(byte));
    }
    assert_eq!(outcome(&whole), outcome(&pieces));
    assert_eq!(outcome(&whole), outcome(&bytewise));
    if let Some(i) = whole.first_ambiguous() {
        assert!(i < whole.heads() && !whole.tracking());
    }
}

/// [`reaches_reserved_prefix`](crate::path::reaches_reserved_prefix): the
/// input is a request path. When any reading of it lies under
/// `/.vestibule`, route matching must not be the only guard: the check is
/// compared with a case-folded pass over the readings.
pub fn reserved_prefix(data: &[u8]) {
    use crate::path::{path_interpretations, reaches_reserved_prefix};

    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let found = reaches_reserved_prefix(path, "/.vestibule");
    match path_interpretations(path) {
        Err(e) => assert_eq!(found, Err(e)),
        Ok(readings) => {
            let ascii = readings.iter().any(|r| {
                let l = r.to_ascii_lowercase();
                l == "/.vestibule" || l.starts_with("/.vestibule/")
            });
            // ASCII folding finds a subset of what Unicode folding finds.
            if ascii {
                assert_eq!(found, Ok(true));
            }
            // A plain path under the prefix is always found.
            if path.starts_with("/.vestibule/") {
                assert_eq!(found, Ok(true));
            }
        }
    }
}

/// Logout tokens (Back-Channel Logout 1.0 §2.6) and ID tokens (OIDC Core
/// §3.1.3.7): the input as a token, then (after a selector byte choosing
/// the key and `typ`) as the claims of a token signed with the provider's
/// key. Whatever verifies meets every rule; one changed byte never does.
pub fn oidc_tokens(data: &[u8]) {
    use crate::oidc::{
        BACKCHANNEL_LOGOUT_EVENT, ClientAssertionExpectations, IdTokenExpectations,
        LogoutTokenExpectations, unverified_assertion_client, verify_client_assertion,
        verify_id_token, verify_logout_token,
    };
    use serde_json::Value;

    let fx = jwt_fixture();
    let assertion_audiences = [
        "https://sso.example.com".to_owned(),
        "https://sso.example.com/token".to_owned(),
    ];
    let assertion_expect = ClientAssertionExpectations {
        client_id: "app",
        audiences: &assertion_audiences,
        algorithms: &crate::jwt::Algorithm::ALL,
        now: JWT_NOW,
        leeway: 60,
        max_lifetime: 300,
        max_token_bytes: 16 * 1024,
    };
    let logout_expect = LogoutTokenExpectations {
        issuer: "https://sso.example.com",
        client_id: "app",
        algorithms: &crate::jwt::Algorithm::ALL,
        now: JWT_NOW,
        leeway: 60,
        max_age: 300,
        require_expiry: false,
        max_token_bytes: 16 * 1024,
    };
    let id_expect = IdTokenExpectations {
        issuer: "https://sso.example.com",
        client_id: "app",
        trusted_audiences: &[],
        algorithms: &crate::jwt::Algorithm::ALL,
        nonce: "n-1",
        access_token: Some("at-1"),
        now: JWT_NOW,
        leeway: 60,
        max_age: 600,
        max_token_bytes: 16 * 1024,
    };
    let check = |token: &str| {
        if let Ok(t) = verify_logout_token(token, &fx.jwks, &logout_expect) {
            assert_eq!(t.issuer, "https://sso.example.com");
            assert!(t.subject.is_some() || t.session_id.is_some());
            assert!(!t.token_id.is_empty());
            assert!(t.replay_until >= JWT_NOW && t.issued_at <= JWT_NOW + 60);
            let claims: Value = vestibule_jose_claims(token);
            assert!(claims.get("nonce").is_none());
            assert!(claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
        }
        if let Ok(t) = verify_id_token(token, &fx.jwks, &id_expect) {
            assert_eq!(t.claims.issuer, "https://sso.example.com");
            assert!(t.claims.audiences.iter().all(|a| a == "app"));
            assert!(!t.claims.subject.is_empty() && t.claims.subject.len() <= 255);
            let claims: Value = vestibule_jose_claims(token);
            assert_eq!(claims["nonce"], "n-1");
        }
        // A refreshed ID token (OIDC Core §12.2): the login's subject, and
        // the login's nonce or none.
        let original = crate::oidc::OriginalLogin {
            subject: "u-1",
            auth_time: Some(JWT_NOW - 100),
        };
        if let Ok(t) =
            crate::oidc::verify_refreshed_id_token(token, &fx.jwks, &id_expect, &original)
        {
            assert_eq!(t.claims.subject, "u-1");
            assert!(t.auth_time.is_none_or(|a| a == JWT_NOW - 100));
            let claims: Value = vestibule_jose_claims(token);
            assert!(claims.get("nonce").is_none_or(|n| n == "n-1"));
        }
        if let Ok(a) = verify_client_assertion(token, &fx.jwks, &assertion_expect) {
            // RFC 7523 §3: iss = sub = the client; aud only this provider.
            let claims: Value = vestibule_jose_claims(token);
            assert_eq!(
                (&claims["iss"], &claims["sub"]),
                (&Value::from("app"), &Value::from("app"))
            );
            assert!(!a.token_id.is_empty() && a.replay_until <= JWT_NOW + 420);
            assert_eq!(
                unverified_assertion_client(token, 16 * 1024).as_deref(),
                Some("app")
            );
        }
    };
    check(&String::from_utf8_lossy(data));

    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let signer = if selector & 1 == 0 { &fx.ed } else { &fx.es };
    let mut header = signer.header();
    match (selector >> 1) % 3 {
        0 => header["typ"] = Value::from("logout+jwt"),
        1 => drop(header.as_object_mut().map(|h| h.remove("typ"))),
        _ => {}
    }
    let token = signer.sign_bytes(header.to_string().as_bytes(), payload);
    check(&token);
    let accepted = verify_logout_token(&token, &fx.jwks, &logout_expect).is_ok()
        || verify_id_token(&token, &fx.jwks, &id_expect).is_ok()
        || verify_client_assertion(&token, &fx.jwks, &assertion_expect).is_ok();
    if accepted {
        let mut bytes = token.into_bytes();
        let i = (usize::from(selector) * 131 + payload.len()) % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).expect("tokens are ASCII");
        assert!(verify_logout_token(&changed, &fx.jwks, &logout_expect).is_err());
        assert!(verify_id_token(&changed, &fx.jwks, &id_expect).is_err());
        assert!(verify_client_assertion(&changed, &fx.jwks, &assertion_expect).is_err());
    }
}

/// The provider's discovery document (OIDC Discovery §3, §4.3) and the
/// authorization response at the callback (RFC 6749 §4.1.2, RFC 9207),
/// and the token endpoint's answer (RFC 6749 §5.1, §5.2).
pub fn oidc_provider_responses(data: &[u8]) {
    use crate::oidc::{check_callback, is_secure_url, parse_discovery, parse_token_response};

    if let Ok(t) = parse_token_response(data) {
        assert!(!t.access_token.is_empty() && !t.id_token.is_empty());
        assert!(t.refresh_token.as_ref().is_none_or(|r| !r.is_empty()));
    }
    // The answer to a refresh (RFC 6749 §6) and userinfo (OIDC Core §5.3.4).
    if let Ok(r) = crate::oidc::parse_refresh_response(data) {
        assert!(!r.access_token.is_empty());
        assert!(r.expires_in.is_none_or(|e| e >= 0));
    }
    if crate::oidc::check_userinfo(data, "u-1").is_ok() {
        assert!(data.windows(3).any(|w| w == b"u-1"));
    }

    let issuer = "https://sso.example.com";
    if let Ok(m) = parse_discovery(data, issuer) {
        assert_eq!(m.issuer, issuer);
        for url in [&m.authorization_endpoint, &m.token_endpoint, &m.jwks_uri] {
            assert!(is_secure_url(url), "{url}");
        }
    }
    let query = String::from_utf8_lossy(data);
    for sends_iss in [false, true] {
        if let Ok(code) = check_callback(&query, "st-1", issuer, sends_iss) {
            assert!(!code.is_empty());
            assert!(query.contains("state=st-1"));
            assert!(!sends_iss || query.contains("iss="));
        }
    }
}

/// The claims of a compact JWS, read without verifying (only after it
/// verified).
fn vestibule_jose_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("three segments");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The provider's redirect and PKCE rules on arbitrary input: never
/// panics; a URI always matches itself; a match between different strings
/// happens only for loopback IP literals, differing only in the port; a
/// verifier matches only the challenge computed from it.
pub fn oidc_redirect_pkce(data: &[u8]) {
    use crate::oidc_provider::{check_challenge, redirect_uri_matches, verifier_matches};

    let text = String::from_utf8_lossy(data);
    let (registered, presented) = text.split_once('\n').unwrap_or((&text, ""));
    assert!(redirect_uri_matches(registered, registered));
    if registered != presented && redirect_uri_matches(registered, presented) {
        let loopback = |s: &str| s.starts_with("http://127.0.0.1") || s.starts_with("http://[::1]");
        assert!(
            loopback(registered) && loopback(presented),
            "{registered:?} ~ {presented:?}"
        );
    }
    let _ = check_challenge(registered, Some("S256"));
    if verifier_matches(registered, presented) {
        use base64::Engine;
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, registered.as_bytes()),
        );
        assert_eq!(computed, presented);
    }
}

/// The provider's authorization request on arbitrary input (a query
/// string, `&`-separated `name=value`): never panics; an accepted request
/// asked for `code`, only allowed scopes and an S256 challenge when one is
/// needed; the parameters written back read the same; a `Host` that is
/// the issuer's is one whose text could name it.
pub fn oidc_authorize_request(data: &[u8]) {
    use crate::oidc_provider::{
        AuthorizationParams, ClientRules, check_authorization, is_issuer_authority,
        needs_reauthentication, parse_max_age, parse_prompt, parse_scope, response_url,
    };

    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let p = AuthorizationParams::from_pairs(pairs.iter().copied());
    let allowed: Vec<String> = ["openid", "profile", "email"].map(String::from).to_vec();
    for (public, require_pkce) in [(true, true), (false, true), (false, false)] {
        let rules = ClientRules {
            public,
            require_pkce,
            code_grant: true,
            scopes: &allowed,
        };
        if let Ok(r) = check_authorization(&p, rules) {
            assert_eq!(p.response_type.as_deref(), Some("code"));
            assert!(p.malformed.is_none() && !p.request && !p.request_uri);
            assert!(r.scopes.iter().all(|s| allowed.contains(s)));
            assert!(!r.scopes.is_empty());
            if public || require_pkce {
                assert_eq!(r.code_challenge.as_ref().map(String::len), Some(43));
            }
            assert!(!(r.prompt.none && (r.prompt.login || r.prompt.consent)));
            let _ = needs_reauthentication(&r, 0, i64::MAX);
            let _ = needs_reauthentication(&r, i64::MAX, i64::MIN);
        }
    }
    if p.malformed.is_none() {
        let again = AuthorizationParams::from_pairs(p.to_pairs(false));
        assert_eq!(again.to_pairs(false), p.to_pairs(false));
    }
    let _ = parse_scope(&text);
    let _ = parse_prompt(&text);
    let _ = parse_max_age(&text);
    let (issuer, host) = text.split_once('\n').unwrap_or((&text, ""));
    if is_issuer_authority(issuer, host) {
        let bare = host.split(':').next().unwrap_or("").to_ascii_lowercase();
        assert!(
            issuer
                .to_ascii_lowercase()
                .contains(bare.trim_start_matches('['))
        );
    }
    let url = response_url(issuer, &[("state", host)]);
    assert!(url.starts_with(issuer));
}

/// The token endpoint's and userinfo's readers of client input: a form
/// body, `Authorization: Basic` client credentials, a Bearer token and a
/// scope. None panics; a parsed form has at most [`MAX_PARAMS`] values and
/// gives no empty value; Basic credentials never have an empty client id;
/// a Bearer token is the value's tail; a narrowed scope is within the
/// grant.
///
/// [`MAX_PARAMS`]: crate::oidc_token::MAX_PARAMS
pub fn oidc_token_request(data: &[u8]) {
    use crate::oidc_token::{
        MAX_PARAMS, basic_client, bearer_token, narrow_scope, parse_form, parse_scope,
    };

    if let Ok(form) = parse_form(data) {
        let mut n = 0;
        for name in ["grant_type", "code", "client_id", "scope", "a", ""] {
            if let Some(v) = form.get(name) {
                assert!(!v.is_empty());
                n += 1;
            }
        }
        assert!(n <= MAX_PARAMS);
    }
    if let Some(c) = basic_client(data) {
        assert!(!c.client_id.is_empty());
    }
    if let Some(t) = bearer_token(data) {
        assert!(!t.is_empty() && data.ends_with(t.as_bytes()));
    }
    let text = String::from_utf8_lossy(data);
    let (granted, asked) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(narrowed) = narrow_scope(granted, Some(asked)) {
        let g = parse_scope(granted).unwrap_or_default();
        let n = parse_scope(&narrowed).unwrap_or_default();
        assert!(n.is_subset(&g));
    }
}

/// End-session requests (RP-Initiated Logout 1.0): parsing is total, and
/// a post-logout redirect only ever goes to a registered URI.
pub fn oidc_end_session(data: &[u8]) {
    use crate::oidc_logout::{parse_end_session, post_logout_redirect, requesting_client};

    if let Ok(r) = parse_end_session(data) {
        let registered: Vec<String> = r.client_id.iter().cloned().collect();
        let asked = r.post_logout_redirect_uri.as_deref();
        match post_logout_redirect(&registered, asked, r.state.as_deref()) {
            Some(url) => {
                let asked = asked.unwrap_or_default();
                assert!(registered.iter().any(|x| x == asked) && url.starts_with(asked));
            }
            None => assert!(asked.is_none_or(|a| !registered.iter().any(|x| x == a))),
        }
        if let Ok(Some(c)) = requesting_client(r.state.as_deref(), r.client_id.as_deref()) {
            assert!(Some(c) == r.state.as_deref() || Some(c) == r.client_id.as_deref());
        }
    }
}

/// RFC 8628 user codes: whatever is typed either reads as a canonical code
/// (8 letters of the base-20 alphabet) that reads back as itself and is
/// what the input was without dashes and spaces, upper-cased, or is
/// refused; never a panic.
pub fn device_user_code(data: &[u8]) {
    use crate::device_grant::{
        USER_CODE_ALPHABET, USER_CODE_LEN, display_user_code, normalize_user_code,
        user_code_from_bytes,
    };
    let typed = String::from_utf8_lossy(data);
    if let Ok(code) = normalize_user_code(&typed) {
        assert_eq!(code.len(), USER_CODE_LEN);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        assert_eq!(normalize_user_code(&code).as_deref(), Ok(code.as_str()));
        assert_eq!(
            normalize_user_code(&display_user_code(&code)).as_deref(),
            Ok(code.as_str())
        );
        let kept: String = typed.chars().filter(|c| *c != '-' && *c != ' ').collect();
        assert_eq!(kept.to_ascii_uppercase(), code);
    }
    if let Some(code) = user_code_from_bytes(data) {
        assert_eq!(normalize_user_code(&code).as_deref(), Ok(code.as_str()));
    }
}

/// Access tokens at the gate: the first line is the issuer, each further
/// line an `Authorization` line, and the last one (when there are three or
/// more) also the custom header. Reading never panics; what is found is
/// ours (a `vat_` token or an `at+jwt` of the issuer), and combining it
/// with any device reading never yields two credentials.
pub fn access_token_carriers(data: &[u8]) {
    use crate::access_token::{AccessCarriers, classify, find_access_token, one_credential};
    use crate::credential::{Carriers, find_credential};

    let mut lines = data.split(|&b| b == b'\n');
    let issuer = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let rest: Vec<&[u8]> = lines.collect();
    let name = http::HeaderName::from_static("x-vestibule-token");
    let mut h = http::HeaderMap::new();
    for l in &rest {
        if let Ok(v) = http::HeaderValue::from_bytes(l) {
            h.append(http::header::AUTHORIZATION, v);
        }
    }
    if rest.len() >= 2
        && let Some(Ok(v)) = rest.last().map(|l| http::HeaderValue::from_bytes(l))
    {
        h.append(name.clone(), v);
    }
    for device_header in [false, true] {
        let carriers = AccessCarriers {
            bearer: true,
            header: Some(name.clone()),
        };
        let access = find_access_token(&h, &carriers, &issuer, device_header);
        if let Ok(Some(p)) = &access {
            assert_eq!(classify(p.token.expose(), &issuer), Some(Ok(p.form)));
        }
        let device = find_credential(
            &h,
            None,
            &Carriers {
                bearer: true,
                header: device_header.then(|| name.clone()),
                ..Carriers::default()
            },
        );
        let _ = one_credential(device, access);
    }
}

/// `token_type_hint` of revocation and introspection (RFC 7009 §2.1,
/// RFC 7662 §2.1): recognised only when it is exactly one of the two
/// registered names; whatever it is, both kinds are looked up, the hinted
/// one first; never a panic.
pub fn oidc_token_type_hint(data: &[u8]) {
    use crate::oidc_token::TokenKind;
    let hint = String::from_utf8_lossy(data);
    let kind = TokenKind::from_hint(Some(&hint));
    match kind {
        Some(TokenKind::Access) => assert_eq!(hint, "access_token"),
        Some(TokenKind::Refresh) => assert_eq!(hint, "refresh_token"),
        None => assert!(hint != "access_token" && hint != "refresh_token"),
    }
    let order = TokenKind::lookup_order(kind);
    assert_ne!(order[0], order[1]);
    if let Some(k) = kind {
        assert_eq!(order[0], k);
    }
    // The form reader hands the hint over as a parameter: the same through it.
    if let Ok(form) = crate::oidc_token::parse_form(data) {
        let k = TokenKind::from_hint(form.get("token_type_hint"));
        assert_eq!(TokenKind::lookup_order(k).len(), 2);
    }
}

/// The link rule of issue 15 on arbitrary input (two 32-byte hashes, then
/// the session's and the clock's numbers): never panics; a link is allowed
/// only when the presented session is the asking one, of the asking
/// account, unexpired, and the account is active.
pub fn oidc_link(data: &[u8]) {
    use crate::oidc_link::{AskingSession, may_link};

    let mut bytes = data.iter().copied().chain(std::iter::repeat(0));
    let mut hash = || -> [u8; 32] { std::array::from_fn(|_| bytes.next().unwrap_or(0)) };
    let (presented, asked) = (hash(), hash());
    let rest = data.get(64..).unwrap_or(&[]);
    let int = |i: usize| -> i64 {
        let mut b = [0u8; 8];
        for (j, x) in b.iter_mut().enumerate() {
            *x = rest.get(i * 8 + j).copied().unwrap_or(0);
        }
        i64::from_le_bytes(b)
    };
    let flags = rest.get(48).copied().unwrap_or(0);
    let session = (flags & 1 == 1).then(|| AskingSession {
        account_id: int(0),
        expires_at: int(1),
        last_seen_at: int(2),
    });
    let presented = (flags & 2 == 2).then_some(presented);
    let active = flags & 4 == 4;
    let (account, now, idle) = (int(3), int(4), int(5));
    if may_link(
        presented.as_ref(),
        &asked,
        account,
        session,
        active,
        now,
        idle,
    )
    .is_ok()
    {
        assert_eq!(presented, Some(asked));
        let s = session.expect("a session");
        assert!(s.account_id == account && active && now < s.expires_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_is_not_one_empty_line() {
        // First fuzzing crash (a harness bug, not a parser bug): empty input
        // means no header line, which is no hop, while one empty line is one
        // invalid hop. The join check must not compare the two.
        assert_eq!(parse_x_forwarded_for([]), []);
        assert_eq!(parse_x_forwarded_for([&b""[..]]), [Hop::Invalid]);
        forwarded_xff(b"");
    }

    #[test]
    fn targets_accept_trivial_inputs() {
        for data in [&b""[..], b"\x00", b"\x00/", b"\xff\xff\xff"] {
            forwarded_xff(data);
            forwarded_rfc7239(data);
            decode_value(data);
            encode_roundtrip(data);
            path_interpretations(data);
            trusted_network(data);
            credential_carriers(data);
            redirect_target(data);
            jwt_verify(data);
            jwks_parse(data);
            route_find(data);
            upgrade_header(data);
            jose_jws(data);
            oidc_tokens(data);
            oidc_provider_responses(data);
            oidc_authorize_request(data);
            oidc_end_session(data);
            access_token_carriers(data);
        }
    }
}
