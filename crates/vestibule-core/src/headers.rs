//! Header-name normalisation and identity-header hygiene.
//!
//! CGI, WSGI and PHP turn both `X-Auth-User` and `X-Auth_User` into
//! `HTTP_X_AUTH_USER`, so a proxy that strips only one spelling can be
//! bypassed (oauth2-proxy CVE-2025-64484). Every comparison here is on the
//! normalised name: ASCII-lowercased, with `_` read as `-`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use http::{HeaderMap, HeaderName};

/// ASCII-lowercases `name` and reads `_` as `-`.
pub fn normalize_name(name: &str) -> String {
    name.bytes().map(|b| normalize_byte(b) as char).collect()
}

#[inline]
fn normalize_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Whether two header names are the same once normalised.
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| normalize_byte(x) == normalize_byte(y))
}

/// Exact identity header names known to any dialect, profile or peer, normalised.
const BUILTIN_NAMES: &[&str] = &[
    // oauth2-proxy (upstream headers)
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    // geOrchestra gateway output and pre-authentication marker
    "sec-username",
    "sec-userid",
    "sec-email",
    "sec-firstname",
    "sec-lastname",
    "sec-org",
    "sec-orgid",
    "sec-orgname",
    "sec-roles",
    "sec-proxy",
    "sec-tel",
    "sec-address",
    "sec-title",
    "sec-notes",
    "sec-lastupdated",
    "sec-org-lastupdated",
    "sec-json-user",
    "sec-json-organization",
    "sec-external-authentication",
    "sec-georchestra-preauthenticated",
    // Apache and misc.
    "x-remote-user",
    "x-user",
    "x-email",
    "cf-access-jwt-assertion",
    "cf-access-authenticated-user-email",
    "x-goog-iap-jwt-assertion",
    // Client certificates forwarded by TLS-terminating fronts (issue 18):
    // nginx/HAProxy/Caddy snippets, authentik, Traefik, Envoy, AWS ALB and
    // RFC 9440. A client-sent copy must never reach vestibule's reader or
    // an app (OpenShift router CVE-2026-46579).
    "x-client-cert",
    "x-client-verify",
    "ssl-client-cert",
    "ssl-client-verify",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-forwarded-client-cert",
    "x-amzn-mtls-clientcert",
    "x-amzn-mtls-clientcert-leaf",
    "client-cert",
    "client-cert-chain",
];

/// Identity header name prefixes, normalised: every header starting with one
/// of these is an identity header.
const BUILTIN_PREFIXES: &[&str] = &[
    "remote-",         // Authelia, and the `remote` profile
    "x-authentik-",    // authentik
    "x-auth-request-", // oauth2-proxy with --set-xauthrequest
    "x-webauth-",      // Grafana, Gitea
    "preauth-",        // geOrchestra pre-authentication
    "tailscale-",      // Tailscale Serve
    "oidc-claim-",     // Apache mod_auth_openidc
    "oidc-access-token",
    "x-pomerium-",  // Pomerium
    "x-vestibule-", // our own assertion and future headers
    "x-goog-authenticated-",
    "x-ssl-client-", // OpenShift router, FortiClient, many nginx snippets
];

/// FNV-1a: a fast hash for a small, fixed set of short keys. Only lookups of
/// request header names hit this set; nothing a client sends is inserted, so
/// hash flooding does not apply.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type NameSet = HashSet<String, BuildHasherDefault<Fnv>>;

/// The set of header names that carry identity and so must never reach an
/// app unless vestibule put them there.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    exact: NameSet,
    prefixes: Vec<String>,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self::builtin()
    }
}

impl IdentityHeaders {
    /// Every spelling any built-in dialect or profile knows.
    pub fn builtin() -> Self {
        Self {
            exact: BUILTIN_NAMES.iter().map(|s| (*s).to_owned()).collect(),
            prefixes: BUILTIN_PREFIXES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Adds operator-configured names (custom dialects and profiles).
    pub fn with_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.exact
            .extend(names.into_iter().map(|n| normalize_name(n.as_ref())));
        self
    }

    /// Whether `name` (any case, `_` or `-`) is an identity header.
    pub fn contains(&self, name: &str) -> bool {
        let mut buf = [0u8; 64];
        let owned;
        let norm: &str = if name.len() <= buf.len() {
            for (dst, src) in buf.iter_mut().zip(name.bytes()) {
                *dst = normalize_byte(src);
            }
            // Only ASCII bytes were changed, so the buffer stays valid UTF-8.
            match std::str::from_utf8(&buf[..name.len()]) {
                Ok(s) => s,
                Err(_) => return false,
            }
        } else {
            owned = normalize_name(name);
            &owned
        };
        self.exact.contains(norm) || self.prefixes.iter().any(|p| norm.starts_with(p.as_str()))
    }

    /// Removes every identity header from `headers`, returning the distinct
    /// names that were present (as received, so logs show the spelling used).
    pub fn strip(&self, headers: &mut HeaderMap) -> Vec<HeaderName> {
        let found: Vec<HeaderName> = headers
            .keys()
            .filter(|n| self.contains(n.as_str()))
            .cloned()
            .collect();
        for name in &found {
            headers.remove(name);
        }
        found
    }
}

/// Removes `name` under every spelling (`X-App-Key`, `X_App_Key`, any
/// case), as CGI-style apps would read any of them as the same variable.
pub fn remove_every_spelling(headers: &mut HeaderMap, name: &str) {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| same_name(n.as_str(), name))
        .cloned()
        .collect();
    for n in &found {
        headers.remove(n);
    }
}

/// Headers some apps and frameworks read as the request's *real* path
/// (Symfony and IIS's URL Rewrite read `X-Original-URL` and
/// `X-Rewrite-URL`; nginx setups pass `X-Original-URI`). vestibule decides
/// on the request target itself, so a client-sent one would let the app
/// serve a path that was never decided: they never reach an app, whoever
/// sent them.
pub const PATH_OVERRIDE_HEADERS: &[&str] = &["x-original-url", "x-rewrite-url", "x-original-uri"];

/// The forwarding headers vestibule rebuilds in-path. Only the canonical
/// (dash) spelling is rebuilt, so any other spelling is removed.
pub const FORWARDING_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "forwarded",
];

/// Before forwarding in-path: removes every spelling of the
/// [`PATH_OVERRIDE_HEADERS`], and every spelling of the
/// [`FORWARDING_HEADERS`] other than the canonical one. CGI, WSGI and PHP
/// read `X_Forwarded_Host` as `HTTP_X_FORWARDED_HOST`, exactly like the
/// header vestibule vouches for, so an underscore spelling from a client
/// would shadow or duplicate it.
pub fn remove_path_overrides_and_odd_forwarding_spellings(headers: &mut HeaderMap) {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| {
            let n = n.as_str();
            PATH_OVERRIDE_HEADERS.iter().any(|p| same_name(n, p))
                || FORWARDING_HEADERS
                    .iter()
                    .any(|f| n != *f && same_name(n, f))
        })
        .cloned()
        .collect();
    for n in &found {
        headers.remove(n);
    }
}

/// Removes the cookies named `names` from every `Cookie` line before a
/// request is forwarded: vestibule's own session cookie is a bearer secret
/// for vestibule, and an application (or anyone who can read its logs) has
/// no business holding it.
///
/// A line is a cookie-string (RFC 6265 §4.2.1, §5.4): cookie-pairs joined
/// by `;` and a space. A pair is dropped when its name, up to the first
/// `=` and without surrounding spaces and tabs, is exactly one of `names`
/// (cookie names are case-sensitive, RFC 6265 §5.4 step 4; trimming also
/// catches `vestibule =…`, which some servers read as `vestibule`). Every
/// other pair is kept byte for byte, in order, rejoined with `; `; a line
/// with nothing dropped is not touched, and a line left empty is removed
/// (with every line gone, so is the header). Pairs without `=` (nameless
/// cookies, RFC 6265bis §5.6) are the application's and are kept.
///
/// Returns how many pairs were dropped.
pub fn strip_cookies(headers: &mut HeaderMap, names: &[&str]) -> usize {
    let mut dropped = 0;
    let mut lines: Vec<http::HeaderValue> = Vec::new();
    for line in headers.get_all(http::header::COOKIE) {
        let (kept, n) = strip_cookie_line(line.as_bytes(), names);
        dropped += n;
        match kept {
            None => lines.push(line.clone()),
            Some(kept) if kept.is_empty() => {}
            // Parts of a valid value joined by "; " are a valid value; if
            // not, the line is dropped rather than forwarded unstripped.
            Some(kept) => lines.extend(http::HeaderValue::from_bytes(&kept).ok()),
        }
    }
    if dropped > 0 {
        headers.remove(http::header::COOKIE);
        for line in lines {
            headers.append(http::header::COOKIE, line);
        }
    }
    dropped
}

/// One `Cookie` line without the pairs named in `names`: `None` when none
/// was there (the line stays as it is), else the kept pairs and how many
/// were dropped.
pub fn strip_cookie_line(line: &[u8], names: &[&str]) -> (Option<Vec<u8>>, usize) {
    let trim = |b: &[u8]| -> std::ops::Range<usize> {
        let start = b.iter().position(|c| !matches!(c, b' ' | b'\t'));
        let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t'));
        match (start, end) {
            (Some(s), Some(e)) => s..e + 1,
            _ => 0..0,
        }
    };
    let is_ours = |pair: &[u8]| {
        pair.iter().position(|&c| c == b'=').is_some_and(|eq| {
            let name = &pair[..eq];
            let name = &name[trim(name)];
            names.iter().any(|n| n.as_bytes() == name)
        })
    };
    let pairs: Vec<&[u8]> = line.split(|&c| c == b';').collect();
    let dropped = pairs.iter().filter(|p| is_ours(p)).count();
    if dropped == 0 {
        return (None, 0);
    }
    let mut kept = Vec::with_capacity(line.len());
    for pair in pairs.into_iter().filter(|p| !is_ours(p)) {
        let pair = &pair[trim(pair)];
        // Empty pieces (`a=1;;b=2`, a trailing `;`) carry nothing.
        if pair.is_empty() {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    (Some(kept), dropped)
}

/// Why a request's target host is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// More than one `Host` line (RFC 9112 §3.2: answer 400).
    Duplicate,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2: answer 400).
    Missing,
    /// An absolute-form target whose authority differs from `Host`. RFC
    /// 9112 §3.2.2 says to use the target's; vestibule routes on `Host`,
    /// and an app may read either, so the two must agree.
    Disagrees,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "the request has more than one Host header",
            Self::Missing => "the request has no Host header",
            Self::Disagrees => "the request target names another host than the Host header",
        })
    }
}

impl std::error::Error for HostError {}

/// Checks that a request names one target host, so routing, policy and the
/// app all see the same one. `authority` is the request target's authority
/// (absolute-form in HTTP/1.1, `:authority` in HTTP/2); `hosts` the `Host`
/// values; `needs_host` is true for HTTP/1.1.
pub fn check_host<'a>(
    needs_host: bool,
    authority: Option<&str>,
    mut hosts: impl Iterator<Item = &'a [u8]>,
) -> Result<(), HostError> {
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    match (first, authority) {
        (None, None) if needs_host => Err(HostError::Missing),
        (Some(host), Some(auth)) if !host.eq_ignore_ascii_case(auth.as_bytes()) => {
            Err(HostError::Disagrees)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    /// Every front's client-certificate header, in any spelling, is an
    /// identity header: a client's copy never reaches vestibule's reader
    /// unless a trusted front set it, nor an app.
    #[test]
    fn client_certificate_headers_are_identity_headers() {
        let ids = IdentityHeaders::builtin();
        for name in [
            "X-Client-Cert",
            "x_client_cert",
            "X-Client-Verify",
            "ssl-client-cert",
            "SSL_Client_Cert",
            "X-SSL-Client-Cert",
            "x_ssl_client_s_dn",
            "X-Forwarded-Tls-Client-Cert",
            "X-Forwarded-Tls-Client-Cert-Info",
            "x-forwarded-client-cert",
            "X-Amzn-Mtls-Clientcert",
            "Client-Cert",
            "client_cert_chain",
        ] {
            assert!(ids.contains(name), "{name}");
        }
        assert!(!ids.contains("x-client-certainty"));
    }

    #[test]
    fn path_overrides_and_odd_forwarding_spellings_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-original-url", "/admin"),
            ("X_Rewrite_URL", "/admin"),
            ("x-original_uri", "/admin"),
            ("x_forwarded_host", "evil.example"),
            ("X_Real_IP", "6.6.6.6"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-app", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        remove_path_overrides_and_odd_forwarding_spellings(&mut h);
        let mut left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-app", "x-forwarded-for", "x-forwarded-host"]);
    }

    #[test]
    fn normalisation_folds_case_and_underscore() {
        assert_eq!(normalize_name("Remote_User"), "remote-user");
        assert_eq!(normalize_name("REMOTE-USER"), "remote-user");
        assert!(same_name("X-authentik_UID", "x-authentik-uid"));
        assert!(!same_name("remote-user", "remote-users"));
    }

    #[test]
    fn every_spelling_of_every_preset_is_an_identity_header() {
        let set = IdentityHeaders::builtin();
        for name in [
            "Remote-User",
            "remote_user",
            "REMOTE-GROUPS",
            "Remote_Email",
            "X-authentik-uid",
            "x_authentik_username",
            "X-Forwarded-User",
            "x_forwarded_preferred_username",
            "X-Auth-Request-Email",
            "X-WEBAUTH-USER",
            "sec-username",
            "SEC_ROLES",
            "sec-georchestra-preauthenticated",
            "preauth-username",
            "PREAUTH_PROVIDER_ID",
            "Tailscale-User-Login",
            "OIDC_CLAIM_sub",
            "X-Pomerium-Jwt-Assertion",
            "x-vestibule-assertion",
        ] {
            assert!(set.contains(name), "{name} not recognised");
        }
    }

    #[test]
    // Alike every_spelling_of_every_preset_is_an_identity_header: the same loop, the opposite list.
    fn ordinary_headers_are_not_identity_headers() {
        let set = IdentityHeaders::builtin();
        for name in [
            "host",
            "authorization",
            "cookie",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "sec-websocket-key",
            "sec-fetch-mode",
            "sec-ch-ua",
            "user-agent",
        ] {
            assert!(!set.contains(name), "{name} treated as identity");
        }
    }

    #[test]
    fn configured_names_are_added_normalised() {
        let set = IdentityHeaders::builtin().with_names(["X-My_App-User"]);
        assert!(set.contains("x-my-app-user"));
        assert!(set.contains("X_MY_APP_USER"));
    }

    #[test]
    fn very_long_names_are_still_checked() {
        let long = format!("remote-{}", "a".repeat(200));
        assert!(IdentityHeaders::builtin().contains(&long));
    }

    #[test]
    fn strip_removes_all_spellings_and_reports_them() {
        let mut h = HeaderMap::new();
        h.append("remote-user", HeaderValue::from_static("admin"));
        h.append("remote_user", HeaderValue::from_static("admin"));
        h.append("remote-user", HeaderValue::from_static("again"));
        h.append("accept", HeaderValue::from_static("*/*"));
        let removed = IdentityHeaders::builtin().strip(&mut h);
        assert_eq!(removed.len(), 2);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    proptest! {
        /// Whatever spelling a client picks, only the canonical forwarding
        /// names survive, and no path override does.
        #[test]
        fn no_spelling_of_an_override_or_odd_forwarding_name_survives(
            pick in 0usize..10,
            flips in proptest::collection::vec(any::<bool>(), 32),
        ) {
            let all: Vec<&str> = PATH_OVERRIDE_HEADERS.iter().chain(FORWARDING_HEADERS).copied().collect();
            let base = all[pick % all.len()];
            let spelled: String = base
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, f)| if c == '-' && *f { '_' } else { c })
                .collect();
            let mut h = HeaderMap::new();
            h.append(HeaderName::from_bytes(spelled.as_bytes()).unwrap(), HeaderValue::from_static("v"));
            remove_path_overrides_and_odd_forwarding_spellings(&mut h);
            let kept = FORWARDING_HEADERS.contains(&spelled.as_str());
            prop_assert_eq!(h.len(), usize::from(kept));
        }

        #[test]
        fn contains_agrees_with_normalised_form(name in "[A-Za-z0-9_-]{1,80}") {
            let set = IdentityHeaders::builtin();
            prop_assert_eq!(set.contains(&name), set.contains(&normalize_name(&name)));
            prop_assert_eq!(set.contains(&name), set.contains(&name.to_ascii_uppercase()));
            prop_assert_eq!(set.contains(&name), set.contains(&name.replace('-', "_")));
        }
    }

    const OURS: &[&str] = &["vestibule", "__Host-vestibule"];

    fn cookie_lines(h: &HeaderMap) -> Vec<&[u8]> {
        h.get_all(http::header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }

    #[test]
    fn our_cookies_are_stripped_and_the_rest_kept_in_order() {
        let cases: [(&[u8], Option<&[u8]>); 12] = [
            (b"a=1; vestibule=vss_x; b=2", Some(b"a=1; b=2")),
            (b"vestibule=vss_x", None),
            (b"__Host-vestibule=vss_x;theme=dark", Some(b"theme=dark")),
            // Quotes do not protect a `;` (RFC 6265 §4.1.1 cookie-octet).
            (b"a=\"q;uoted\"; vestibule=x", Some(b"a=\"q; uoted\"")),
            (b"a=1;vestibule=1;vestibule=2;  b = 2 ", Some(b"a=1; b = 2")),
            (b"vestibule =x; a=1", Some(b"a=1")),
            (b"\tvestibule\t=x;a=1", Some(b"a=1")),
            (b"a=1;; vestibule=x;", Some(b"a=1")),
            (b"nameless; vestibule=x", Some(b"nameless")),
            (b"=v; vestibule=x", Some(b"=v")),
            (b"a=vestibule=x; vestibule=", Some(b"a=vestibule=x")),
            (b"a=\xff\xfe; vestibule=x", Some(b"a=\xff\xfe")),
        ];
        for (line, want) in cases {
            let mut h = HeaderMap::new();
            h.append(http::header::COOKIE, HeaderValue::from_bytes(line).unwrap());
            assert!(strip_cookies(&mut h, OURS) > 0, "{line:?}");
            assert_eq!(cookie_lines(&h), want.as_slice(), "{line:?}");
        }
    }

    #[test]
    fn lines_without_our_cookies_are_untouched() {
        for line in [
            "a=1;b=2",
            "a=1;  b=2;",
            "Vestibule=x; vestibule2=y; xvestibule=z",
            "__host-vestibule=x",
            "vestibule",
            "a=vestibule=x",
            "",
        ] {
            let mut h = HeaderMap::new();
            h.append(http::header::COOKIE, HeaderValue::from_static(line));
            h.append(http::header::COOKIE, HeaderValue::from_static("c=3"));
            assert_eq!(strip_cookies(&mut h, OURS), 0);
            assert_eq!(cookie_lines(&h), [line.as_bytes(), b"c=3"]);
        }
    }

    #[test]
    fn every_line_is_stripped_and_empty_lines_go() {
        let mut h = HeaderMap::new();
        for line in ["a=1", "vestibule=x", "__Host-vestibule=y; b=2", "c=3"] {
            h.append(http::header::COOKIE, HeaderValue::from_static(line));
        }
        h.append("accept", HeaderValue::from_static("*/*"));
        assert_eq!(strip_cookies(&mut h, OURS), 2);
        assert_eq!(cookie_lines(&h), [b"a=1".as_slice(), b"b=2", b"c=3"]);
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("vestibule=x"),
        );
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("__Host-vestibule=y"),
        );
        assert_eq!(strip_cookies(&mut h, OURS), 2);
        assert!(!h.contains_key(http::header::COOKIE));
        // No names: nothing is ours.
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("vestibule=x"),
        );
        assert_eq!(strip_cookies(&mut h, &[]), 0);
        assert_eq!(h.len(), 1);
    }

    /// A cookie name or value as clients send them (RFC 6265 §4.1.1
    /// cookie-octets, with spaces to exercise trimming).
    fn pair() -> impl Strategy<Value = String> {
        prop_oneof![
            "(vestibule|__Host-vestibule|a|vestibule_|Vestibule)=[!#-+\\--:<-\\[\\]-~]{0,8}",
            "[ ]{0,2}(vestibule|b)[ ]{0,2}=[a-z=]{0,4}",
            "[a-z]{0,4}",
        ]
    }

    proptest! {
        #[test]
        fn stripping_keeps_exactly_the_other_pairs(pairs in proptest::collection::vec(pair(), 0..6), sep in "(; |;)") {
            let line = pairs.join(&sep);
            let Ok(v) = HeaderValue::from_str(&line) else { return Ok(()); };
            let mut h = HeaderMap::new();
            h.append(http::header::COOKIE, v);
            let ours = |p: &str| p.split_once('=').is_some_and(|(n, _)| OURS.contains(&n.trim_matches([' ', '\t'])));
            let dropped = strip_cookies(&mut h, OURS);
            prop_assert_eq!(dropped, pairs.iter().filter(|p| ours(p)).count());
            let after: Vec<String> = h.get_all(http::header::COOKIE).iter().map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap()).collect();
            if dropped == 0 {
                prop_assert_eq!(after, vec![line]);
            } else {
                let want: Vec<&str> = pairs.iter().filter(|p| !ours(p)).map(|p| p.trim_matches([' ', '\t'])).filter(|p| !p.is_empty()).collect();
                let want = want.join("; ");
                if want.is_empty() {
                    prop_assert!(after.is_empty());
                } else {
                    prop_assert_eq!(after, vec![want]);
                }
                // Nothing of ours is left for vestibule's own reader either.
                let lines = h.get_all(http::header::COOKIE).iter().map(HeaderValue::as_bytes).collect::<Vec<_>>();
                for name in OURS {
                    prop_assert_eq!(crate::secret::find_cookie(lines.iter().copied(), name), None);
                }
            }
        }

        #[test]
        fn stripping_never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..4)) {
            let mut h = HeaderMap::new();
            for l in &lines {
                if let Ok(v) = HeaderValue::from_bytes(l) {
                    h.append(http::header::COOKIE, v);
                }
            }
            strip_cookies(&mut h, OURS);
            for v in h.get_all(http::header::COOKIE) {
                prop_assert_eq!(strip_cookie_line(v.as_bytes(), OURS).1, 0);
            }
        }
    }

    #[test]
    fn every_spelling_is_removed() {
        let mut h = HeaderMap::new();
        for n in ["x-app-key", "x_app_key", "x-app-keys", "accept"] {
            h.append(
                HeaderName::from_static(n),
                http::HeaderValue::from_static("v"),
            );
        }
        remove_every_spelling(&mut h, "X-App-Key");
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-app-keys"]);
    }

    #[test]
    fn one_target_host_or_400() {
        let h = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert_eq!(check_host(true, None, h(&["a.test"]).into_iter()), Ok(()));
        assert_eq!(
            check_host(true, None, h(&["a.test", "b.test"]).into_iter()),
            Err(HostError::Duplicate)
        );
        // Even two identical lines: a second parser may join them.
        assert_eq!(
            check_host(true, None, h(&["a.test", "a.test"]).into_iter()),
            Err(HostError::Duplicate)
        );
        assert_eq!(
            check_host(true, None, h(&[]).into_iter()),
            Err(HostError::Missing)
        );
        // HTTP/1.0 may omit it; HTTP/2 carries :authority instead.
        assert_eq!(check_host(false, None, h(&[]).into_iter()), Ok(()));
        assert_eq!(
            check_host(false, Some("a.test"), h(&[]).into_iter()),
            Ok(())
        );
        assert_eq!(
            check_host(true, Some("A.test:80"), h(&["a.TEST:80"]).into_iter()),
            Ok(())
        );
        assert_eq!(
            check_host(true, Some("admin.test"), h(&["a.test"]).into_iter()),
            Err(HostError::Disagrees)
        );
    }

    proptest::proptest! {
        #[test]
        fn check_host_never_panics_and_refuses_any_second_line(
            auth in proptest::option::of("[ -~]{0,20}"),
            hosts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..20), 0..4),
            needs in proptest::bool::ANY,
        ) {
            let r = check_host(needs, auth.as_deref(), hosts.iter().map(Vec::as_slice));
            if hosts.len() > 1 {
                proptest::prop_assert_eq!(r, Err(HostError::Duplicate));
            }
        }
    }
}
