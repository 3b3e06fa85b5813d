//! Route matching by host and path prefix.
//!
//! The path is matched under every reading [`crate::path::path_interpretations`]
//! produces (percent-decoding, dot segments, `;` parameters, merged
//! slashes, a cut at an encoded `#` or `?`). If two readings pick different
//! routes, the request is refused: otherwise `/public/..%2Fadmin`-style
//! paths could be checked against the public route and served by the app
//! as the protected one.
//!
//! **Letter case** is one more reading: a case-insensitive app (Windows,
//! macOS file systems, many routers) serves `/ADMINS/secret` as
//! `/admins/secret`. Route prefixes match case-sensitively, and then every
//! reading is matched again case-folded (Unicode lowercase and uppercase,
//! so `K` (Kelvin sign) and `ı` fold too). When a folded reading reaches a
//! different route, the **strictest** policy applies: the request is
//! handled as the route whose policy is at least as strict as every other
//! reached ([`RoutePolicy::at_least_as_strict_as`]: `public` < `optional` <
//! `required` < `required` with allow lists, lists ordered by inclusion).
//! When no route is stricter than all the others (incomparable lists), or
//! the table has no policies, the request is refused
//! ([`MatchError::CaseAmbiguous`]). A path whose exact reading reaches no
//! route stays unrouted, whatever its folded readings reach.

use std::fmt;

use crate::path::{PathError, path_interpretations};
use crate::policy::RoutePolicy;

/// A host a route answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (lowercase, no port).
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex. Stored as `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Parses `host` or `*.domain`.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        if let Some(rest) = s.strip_prefix("*.") {
            if valid(rest) {
                return Ok(Self::Wildcard(format!(".{rest}")));
            }
        } else if valid(&s) {
            return Ok(Self::Exact(s));
        }
        Err(RouteError::BadHost(s))
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            Self::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// Normalises a `Host` header or `:authority`: lowercase, no port, no
/// trailing dot. IPv6 literals keep their brackets.
pub fn normalize_host(host: &str) -> String {
    normalized_host(host).into_owned()
}

/// [`normalize_host`], borrowing when the name is already lowercase (the
/// request path's usual case: no allocation).
fn normalized_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let name = without_port.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Why a route table or a request could not be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Alike net.rs CidrError, dialect.rs DialectError: each parser's own error enum and Display.
pub enum RouteError {
    /// A route's host is not a hostname or `*.domain`.
    BadHost(String),
    /// A route's path prefix does not start with `/` or is not a clean path.
    BadPrefix(String),
    /// Two routes have the same host and prefix.
    Duplicate(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHost(h) => write!(f, "`{h}` is not a hostname or `*.domain` pattern"),
            Self::BadPrefix(p) => write!(
                f,
                "`{p}` is not a clean absolute path (it must start with `/` and have no `.`/`..` segments, `%`, `;`, `?` or `#`)"
            ),
            Self::Duplicate(r) => write!(f, "two routes match exactly the same requests: {r}"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Why a request matched no single route.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Alike vestibule-jose jws.rs JwsError in shape only: an error enum and its Display.
pub enum MatchError {
    /// The path is malformed.
    BadPath(PathError),
    /// Two readings of the path select different routes.
    AmbiguousPath,
    /// The path read case-folded reaches routes of which none has a policy
    /// at least as strict as all the others'.
    CaseAmbiguous,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPath(e) => write!(f, "bad request path: {e}"),
            Self::AmbiguousPath => write!(
                f,
                "the request path can be read as belonging to two different routes"
            ),
            Self::CaseAmbiguous => write!(
                f,
                "the request path, read case-insensitively, belongs to routes with incomparable policies"
            ),
        }
    }
}

impl std::error::Error for MatchError {}

#[derive(Debug, Clone)]
struct Entry {
    host: Option<HostPattern>,
    prefix: String,
    /// `prefix`, Unicode-lowercased and -uppercased, for folded matching.
    prefix_lower: String,
    prefix_upper: String,
}

/// A compiled set of routes. Indices are the order given to [`RouteTable::new`].
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
    /// Each route's policy, by index, to pick the strictest route a
    /// case-folded reading reaches; `None` refuses whenever folding
    /// changes the route.
    policies: Option<Vec<RoutePolicy>>,
}

/// Whether `path` is `prefix` or below it, segment-wise: `/api` matches
/// `/api` and `/api/x`, not `/apix`.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// [`path_has_prefix`], ASCII case-insensitively (a non-ASCII byte in
/// `prefix` matches nothing in an ASCII path).
fn has_prefix_ignore_ascii_case(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let (p, x) = (path.as_bytes(), prefix.as_bytes());
    p.len() >= x.len()
        && p[..x.len()].eq_ignore_ascii_case(x)
        && (p.len() == x.len() || p[x.len()] == b'/')
}

impl RouteTable {
    /// Builds a table from `(host, path prefix)` pairs. A trailing `/` on a
    /// prefix is ignored (`/api/` is `/api`).
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (Option<&'a str>, &'a str)>,
    ) -> Result<Self, RouteError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (host, prefix) in routes {
            let host = host.map(HostPattern::parse).transpose()?;
            let clean = path_interpretations(prefix)
                .ok()
                .filter(|r| r.len() == 1 && r[0] == prefix)
                .is_some()
                && !prefix.contains(['%', ';', '?', '#']);
            if !clean {
                return Err(RouteError::BadPrefix(prefix.to_owned()));
            }
            let prefix = match prefix.trim_end_matches('/') {
                "" => "/".to_owned(),
                p => p.to_owned(),
            };
            if entries.iter().any(|e| e.host == host && e.prefix == prefix) {
                return Err(RouteError::Duplicate(format!(
                    "host {} path {prefix}",
                    host.as_ref()
                        .map_or("(any)".to_owned(), |h| format!("{h:?}"))
                )));
            }
            entries.push(Entry {
                host,
                prefix_lower: prefix.to_lowercase(),
                prefix_upper: prefix.to_uppercase(),
                prefix,
            });
        }
        Ok(Self {
            entries,
            policies: None,
        })
    }

    /// Gives each route its policy (same order as [`RouteTable::new`]), so
    /// that a case-folded reading reaching another route is handled under
    /// the strictest of them instead of refused. `None` if the count differs.
    pub fn with_policies(mut self, policies: Vec<RoutePolicy>) -> Option<Self> {
        if policies.len() != self.entries.len() {
            return None;
        }
        self.policies = Some(policies);
        Some(self)
    }

    /// The route for one already-normalised path, by precedence: exact host,
    /// then wildcard host, then any host; within each, the longest prefix.
    fn find_one(&self, host: &str, path: &str) -> Option<usize> {
        let rank = |i: usize| Self::rank(&self.entries[i]);
        self.matching(host, |e| path_has_prefix(path, &e.prefix))
            .max_by_key(|&i| rank(i))
    }

    /// The routes a case-insensitive app's reading of `path` belongs to:
    /// the best-ranked routes whose prefix matches the path lowercased or
    /// uppercased, all of them when tied (`/team` and `/TEAM` are one
    /// prefix to such an app). Both directions, as Unicode folds each way
    /// differently: `ſ` uppercases to `S`, the Kelvin sign lowercases to `k`.
    /// Every route an ASCII `path` matches ignoring letter case (before
    /// [`Self::find_folded`] keeps the best-ranked).
    fn folded_matches<'a>(
        &'a self,
        host: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = usize> + 'a {
        debug_assert!(path.is_ascii());
        self.matching(host, move |e| {
            has_prefix_ignore_ascii_case(path, &e.prefix_lower)
                || has_prefix_ignore_ascii_case(path, &e.prefix_upper)
        })
    }

    fn find_folded(&self, host: &str, path: &str) -> Vec<usize> {
        let found: Vec<usize> = if path.is_ascii() {
            // ASCII folds to ASCII: compare in place.
            self.folded_matches(host, path).collect()
        } else {
            let lower = path.to_lowercase();
            let upper = path.to_uppercase();
            self.matching(host, |e| {
                path_has_prefix(&lower, &e.prefix_lower) || path_has_prefix(&upper, &e.prefix_upper)
            })
            .collect()
        };
        let best = found.iter().map(|&i| Self::rank(&self.entries[i])).max();
        found
            .into_iter()
            .filter(|&i| Some(Self::rank(&self.entries[i])) == best)
            .collect()
    }

    /// Precedence: (host class, wildcard specificity, prefix length); exact
    /// host 2, wildcard 1 (longer suffix first), any host 0.
    fn rank(e: &Entry) -> (u8, usize, usize) {
        match &e.host {
            Some(HostPattern::Exact(_)) => (2, 0, e.prefix.len()),
            Some(HostPattern::Wildcard(w)) => (1, w.len(), e.prefix.len()),
            None => (0, 0, e.prefix.len()),
        }
    }

    /// The routes for `host` that `matches` accepts.
    fn matching<'a>(
        &'a self,
        host: &'a str,
        matches: impl Fn(&Entry) -> bool + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.host.as_ref().is_none_or(|h| h.matches(host)))
            .filter(move |(_, e)| matches(e))
            .map(|(i, _)| i)
    }

    /// The route to handle a request under, given the route `exact` its
    /// readings agree on and the routes its case-folded readings reach: the
    /// one whose policy is at least as strict as all of them (`exact`
    /// itself when it qualifies), or an error when none or several do.
    fn strictest(&self, exact: usize, folded: &[usize]) -> Result<usize, MatchError> {
        if folded.iter().all(|&r| r == exact) {
            return Ok(exact);
        }
        let Some(policies) = &self.policies else {
            return Err(MatchError::CaseAmbiguous);
        };
        let dominates = |m: usize| {
            std::iter::once(exact)
                .chain(folded.iter().copied())
                .all(|r| policies[m].at_least_as_strict_as(&policies[r]))
        };
        if dominates(exact) {
            return Ok(exact);
        }
        let winners: Vec<usize> = folded.iter().copied().filter(|&r| dominates(r)).collect();
        match winners.as_slice() {
            [m] => Ok(*m),
            // None is stricter than all, or two equally strict routes other
            // than the exact one: nothing says which app it is.
            _ => Err(MatchError::CaseAmbiguous),
        }
    }

    /// Finds the route for a request. `host` is a raw `Host` value (or
    /// `None`), `raw_path` the request path without the query.
    ///
    /// Every reading must reach the same route (else
    /// [`MatchError::AmbiguousPath`]); then the case-folded readings may
    /// move the request to a stricter route (see the module documentation).
    pub fn find(&self, host: Option<&str>, raw_path: &str) -> Result<Option<usize>, MatchError> {
        let host = host.map(normalized_host).unwrap_or_default();
        let host = host.as_ref();
        if crate::path::is_plain_path(raw_path) {
            // Nothing to decode, no parameters, no empty or dot segments:
            // the path has exactly one reading, itself.
            let Some(exact) = self.find_one(host, raw_path) else {
                return Ok(None);
            };
            // The usual case: no route but `exact` under any letter case,
            // decided without collecting the folded matches.
            if self.folded_matches(host, raw_path).all(|r| r == exact) {
                return Ok(Some(exact));
            }
            let mut folded = self.find_folded(host, raw_path);
            folded.retain(|&r| r != exact);
            return self.strictest(exact, &folded).map(Some);
        }
        let readings = path_interpretations(raw_path).map_err(MatchError::BadPath)?;
        let mut chosen: Option<Option<usize>> = None;
        for reading in &readings {
            let r = self.find_one(host, reading);
            match chosen {
                None => chosen = Some(r),
                Some(c) if c == r => {}
                Some(_) => return Err(MatchError::AmbiguousPath),
            }
        }
        let Some(exact) = chosen.flatten() else {
            // No route refuses everything: nothing is stricter.
            return Ok(None);
        };
        let mut folded: Vec<usize> = Vec::new();
        for reading in &readings {
            for r in self.find_folded(host, reading) {
                if r != exact && !folded.contains(&r) {
                    folded.push(r);
                }
            }
        }
        self.strictest(exact, &folded).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::is_plain_path;
    use crate::policy::AuthMode;

    #[test]
    fn prefix_is_segment_aware() {
        assert!(path_has_prefix("/api", "/api"));
        assert!(path_has_prefix("/api/x", "/api"));
        assert!(!path_has_prefix("/apix", "/api"));
        assert!(path_has_prefix("/anything", "/"));
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }

    #[test]
    fn precedence() {
        let t = RouteTable::new([
            (None, "/"),
            (None, "/api"),
            (Some("grafana.example.com"), "/"),
            (Some("*.example.com"), "/"),
        ])
        .unwrap();
        assert_eq!(t.find(Some("other.org"), "/x").unwrap(), Some(0));
        assert_eq!(t.find(Some("other.org"), "/api/v1").unwrap(), Some(1));
        assert_eq!(
            t.find(Some("grafana.example.com:443"), "/api").unwrap(),
            Some(2)
        );
        assert_eq!(t.find(Some("photos.example.com"), "/").unwrap(), Some(3));
        // The wildcard does not cover the apex.
        assert_eq!(t.find(Some("example.com"), "/").unwrap(), Some(0));
    }

    #[test]
    fn no_route_is_none() {
        let t = RouteTable::new([(None, "/app")]).unwrap();
        assert_eq!(t.find(None, "/other").unwrap(), None);
    }

    #[test]
    fn bad_prefixes_and_duplicates_are_refused() {
        for bad in ["api", "/a/../b", "/a%2Fb", "/a;x", "/a?b", ""] {
            assert!(RouteTable::new([(None, bad)]).is_err(), "{bad}");
        }
        assert!(matches!(
            RouteTable::new([(None, "/api"), (None, "/api/")]),
            Err(RouteError::Duplicate(_))
        ));
        assert!(RouteTable::new([(Some("bad host"), "/")]).is_err());
    }

    #[test]
    fn dot_segments_cannot_reach_a_protected_route_as_public() {
        let t = RouteTable::new([(None, "/"), (None, "/public")]).unwrap();
        // `/public/../admin` is `/admin`: the catch-all, not the public route.
        assert_eq!(t.find(None, "/public/../admin").unwrap(), Some(0));
        assert_eq!(t.find(None, "/public/%2e%2e/admin").unwrap(), Some(0));
        assert_eq!(t.find(None, "/public/x").unwrap(), Some(1));
    }

    #[test]
    fn plain_paths_take_the_fast_path_and_agree_with_the_slow_one() {
        for p in ["/", "/a", "/a/b/", "/api/v1/items-42_x~y.json", "/a:b@c"] {
            assert!(is_plain_path(p), "{p}");
            assert_eq!(path_interpretations(p).unwrap(), vec![p.to_owned()], "{p}");
        }
        for p in [
            "", "a", "//", "/a//b", "/./a", "/a/..", "/a/../b", "/a%2Fb", "/a;b", "/a\\b", "/é",
        ] {
            assert!(!is_plain_path(p), "{p}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_path_is_exact(path in "/[a-z./;%2F-]{0,12}") {
            if is_plain_path(&path) {
                proptest::prop_assert_eq!(path_interpretations(&path).unwrap(), vec![path.clone()]);
            }
        }
    }

    fn policy(auth: AuthMode, groups: &[&str]) -> RoutePolicy {
        RoutePolicy {
            auth,
            allow_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        }
    }

    /// `/` for any signed-in user, `/public` open, `/admins` for admins,
    /// `/ops` for ops: the table of the integration pages, plus one.
    fn page_table() -> RouteTable {
        RouteTable::new([
            (None, "/"),
            (None, "/public"),
            (None, "/admins"),
            (None, "/ops"),
        ])
        .unwrap()
        .with_policies(vec![
            policy(AuthMode::Required, &[]),
            policy(AuthMode::Public, &[]),
            policy(AuthMode::Required, &["admins"]),
            policy(AuthMode::Required, &["ops"]),
        ])
        .unwrap()
    }

    #[test]
    fn case_folding_applies_the_strictest_route() {
        let t = page_table();
        // A case-insensitive app serves these as /admins/secret.
        for p in [
            "/ADMINS/secret",
            "/Admins",
            "/aDmInS/x/y",
            "/ADMINS%2Fsecret",
            "/public/../ADMINS/x",
            "/ADMINS;x=1/secret",
        ] {
            assert_eq!(t.find(None, p), Ok(Some(2)), "{p}");
        }
        // The exact route is already the stricter one: it stays.
        assert_eq!(t.find(None, "/PUBLIC/x"), Ok(Some(0)));
        assert_eq!(t.find(None, "/Public"), Ok(Some(0)));
        // Unicode folding: the Kelvin sign lowercases to `k`, `ſ` (long s)
        // uppercases to `S`; both reach the ops and admins routes.
        assert_eq!(t.find(None, "/ADMIN\u{17f}/x"), Ok(Some(2)));
        let k = RouteTable::new([(None, "/"), (None, "/kube")])
            .unwrap()
            .with_policies(vec![
                policy(AuthMode::Public, &[]),
                policy(AuthMode::Required, &[]),
            ])
            .unwrap();
        assert_eq!(k.find(None, "/\u{212a}ube/x"), Ok(Some(1)));
        assert_eq!(k.find(None, "/%E2%84%AAube/x"), Ok(Some(1)));
        // Unchanged where case does not matter.
        assert_eq!(t.find(None, "/admins/x"), Ok(Some(2)));
        assert_eq!(t.find(None, "/app/Admins"), Ok(Some(0)));
        assert_eq!(t.find(None, "/adminsX"), Ok(Some(0)));
        assert_eq!(t.find(None, "/ADMINSX"), Ok(Some(0)));
    }

    #[test]
    fn case_folding_refuses_incomparable_or_unknown_policies() {
        // Routes for admins and for ops, one spelled in capitals: which
        // policy applies to `/OPS` is clear, but to a prefix both fold to,
        // it is not.
        let t = RouteTable::new([(None, "/"), (None, "/team"), (None, "/TEAM")])
            .unwrap()
            .with_policies(vec![
                policy(AuthMode::Public, &[]),
                policy(AuthMode::Required, &["admins"]),
                policy(AuthMode::Required, &["ops"]),
            ])
            .unwrap();
        assert_eq!(t.find(None, "/team/x"), Err(MatchError::CaseAmbiguous));
        assert_eq!(t.find(None, "/Team/x"), Err(MatchError::CaseAmbiguous));
        // Without policies, any disagreement is refused.
        let bare = RouteTable::new([(None, "/"), (None, "/admins")]).unwrap();
        assert_eq!(bare.find(None, "/ADMINS"), Err(MatchError::CaseAmbiguous));
        assert_eq!(bare.find(None, "/admins"), Ok(Some(1)));
        assert_eq!(bare.find(None, "/other"), Ok(Some(0)));
        // No route for the exact reading stays no route.
        let only = RouteTable::new([(None, "/admins")])
            .unwrap()
            .with_policies(vec![policy(AuthMode::Required, &["admins"])])
            .unwrap();
        assert_eq!(only.find(None, "/ADMINS"), Ok(None));
        // The policy count must match.
        assert!(
            RouteTable::new([(None, "/")])
                .unwrap()
                .with_policies(vec![])
                .is_none()
        );
    }

    #[test]
    fn an_encoded_fragment_cannot_reach_a_lenient_route() {
        let t = page_table();
        // `/public%23/../admins` is /admins decoded, /public cut at `#`.
        assert_eq!(
            t.find(None, "/public%23/../admins"),
            Err(MatchError::AmbiguousPath)
        );
        assert_eq!(
            t.find(None, "/public#/../admins"),
            Err(MatchError::BadPath(PathError::Fragment))
        );
        // A `#` in a file name under one route is fine.
        assert_eq!(t.find(None, "/admins/a%23b"), Ok(Some(2)));
    }

    proptest::proptest! {
        /// Whatever the case of the path, the route chosen is at least as
        /// strict as the one its lowercase spelling gets.
        #[test]
        fn folding_never_loosens(path in "/[a-zA-Z/]{0,16}") {
            let t = page_table();
            let lower = path.to_lowercase();
            if let (Ok(Some(a)), Ok(Some(b))) = (t.find(None, &path), t.find(None, &lower)) {
                let ps = t.policies.as_ref().unwrap();
                proptest::prop_assert!(ps[a].at_least_as_strict_as(&ps[b]), "{path}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn readings_that_disagree_are_refused() {
        let t = RouteTable::new([(None, "/"), (None, "/public")]).unwrap();
        assert_eq!(
            t.find(None, "/admin%2F..%2Fpublic"),
            Err(MatchError::AmbiguousPath)
        );
        // Tomcat reads `..;` as `..`.
        assert_eq!(
            t.find(None, "/public/..;/admin"),
            Err(MatchError::AmbiguousPath)
        );
        assert_eq!(
            t.find(None, "/public//../admin"),
            Err(MatchError::AmbiguousPath)
        );
    }
}
