//! Route matching by host and path prefix.
//!
//! The path is matched under every reading [`crate::path::path_interpretations`]
//! produces (percent-decoding, dot segments, `;` parameters, merged
//! slashes). If two readings pick different routes, the request is refused:
//! otherwise `/public/..%2Fadmin`-style paths could be checked against the
//! public route and served by the app as the protected one.

use std::fmt;

use crate::path::{PathError, path_interpretations};

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
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a route table or a request could not be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
pub enum MatchError {
    /// The path is malformed.
    BadPath(PathError),
    /// Two readings of the path select different routes.
    AmbiguousPath,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPath(e) => write!(f, "bad request path: {e}"),
            Self::AmbiguousPath => write!(
                f,
                "the request path can be read as belonging to two different routes"
            ),
        }
    }
}

impl std::error::Error for MatchError {}

#[derive(Debug, Clone)]
struct Entry {
    host: Option<HostPattern>,
    prefix: String,
}

/// A compiled set of routes. Indices are the order given to [`RouteTable::new`].
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
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
            entries.push(Entry { host, prefix });
        }
        Ok(Self { entries })
    }

    /// The route for one already-normalised path, by precedence: exact host,
    /// then wildcard host, then any host; within each, the longest prefix.
    fn find_one(&self, host: &str, path: &str) -> Option<usize> {
        // (host class, wildcard specificity, prefix length): exact host 2,
        // wildcard 1 (longer suffix first), any host 0.
        let rank = |e: &Entry| match &e.host {
            Some(HostPattern::Exact(_)) => (2, 0, e.prefix.len()),
            Some(HostPattern::Wildcard(w)) => (1, w.len(), e.prefix.len()),
            None => (0, 0, e.prefix.len()),
        };
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.host.as_ref().is_none_or(|h| h.matches(host)))
            .filter(|(_, e)| path_has_prefix(path, &e.prefix))
            .max_by_key(|(_, e)| rank(e))
            .map(|(i, _)| i)
    }

    /// Finds the route for a request. `host` is a raw `Host` value (or
    /// `None`), `raw_path` the request path without the query.
    pub fn find(&self, host: Option<&str>, raw_path: &str) -> Result<Option<usize>, MatchError> {
        let host = host.map(normalize_host).unwrap_or_default();
        if is_plain_path(raw_path) {
            // Nothing to decode, no parameters, no empty or dot segments:
            // the path has exactly one reading, itself.
            return Ok(self.find_one(&host, raw_path));
        }
        let readings = path_interpretations(raw_path).map_err(MatchError::BadPath)?;
        let mut chosen: Option<Option<usize>> = None;
        for reading in &readings {
            let r = self.find_one(&host, reading);
            match chosen {
                None => chosen = Some(r),
                Some(c) if c == r => {}
                Some(_) => return Err(MatchError::AmbiguousPath),
            }
        }
        Ok(chosen.flatten())
    }
}

/// Whether `path` has exactly one reading: it starts with `/`, has only
/// unreserved characters and sub-delimiters other than `;`, no `%`, no `\\`,
/// no empty segment (`//`) and no `.` or `..` segment.
fn is_plain_path(path: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
