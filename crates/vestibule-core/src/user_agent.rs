//! A coarse reading of `User-Agent` (RFC 9110 §10.1.5), for showing a
//! person which browser and system each of their sessions was opened from.
//!
//! Display only: nothing is decided on it (a client writes whatever it
//! likes there). It lives here because it parses untrusted input, so it
//! gets the property tests and the fuzz target every such parser has.
//!
//! - [`for_record`] is what is stored: one header line, visible ASCII and
//!   spaces only, at most [`MAX_STORED_BYTES`]; anything else is not kept.
//! - [`describe`] names a browser family and an OS family out of fixed
//!   lists, so what the page shows is never text from the client.

/// The longest `User-Agent` kept with a session. Real ones are 100–250
/// bytes; the rest is not worth a database row.
pub const MAX_STORED_BYTES: usize = 256;

/// The `User-Agent` to store with a session, from the request's lines:
/// `None` when absent, sent on more than one line, or holding anything but
/// visible ASCII and spaces (RFC 9110 §5.5 allows obs-text, but nothing a
/// browser sends needs it); trimmed and cut to [`MAX_STORED_BYTES`].
pub fn for_record<'a>(mut lines: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    if !value
        .iter()
        .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let text = text.trim_matches([' ', '\t']).replace('\t', " ");
    if text.is_empty() {
        return None;
    }
    // ASCII only: every index is a char boundary.
    let cut = text.len().min(MAX_STORED_BYTES);
    Some(text[..cut].trim_end().to_owned())
}

/// A browser family and an OS family, from fixed lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// `Firefox`, `Chrome`, `Safari`, `Edge`, `curl`…, or `Unknown browser`.
    pub browser: &'static str,
    /// `Windows`, `macOS`, `Linux`, `Android`, `iOS`…, or `unknown OS`.
    pub os: &'static str,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.browser, self.os)
    }
}

/// Browser tokens, most specific first: Edge, Opera and Samsung Internet
/// also say `Chrome/` and `Safari/`; Chrome also says `Safari/`.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
    ("curl/", "curl"),
    ("Wget/", "Wget"),
    ("python-requests/", "Python"),
    ("Python-urllib/", "Python"),
    ("okhttp/", "OkHttp"),
];

/// OS tokens, most specific first: iOS says `like Mac OS X`, Android and
/// ChromeOS say `Linux`.
const SYSTEMS: &[(&str, &str)] = &[
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("iPod", "iOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("FreeBSD", "FreeBSD"),
    ("OpenBSD", "OpenBSD"),
    ("Linux", "Linux"),
];

/// Which browser and system `user_agent` claims to be, coarsely.
pub fn describe(user_agent: &str) -> Summary {
    let pick = |list: &[(&str, &'static str)], otherwise| {
        list.iter()
            .find(|(token, _)| user_agent.contains(token))
            .map_or(otherwise, |&(_, name)| name)
    };
    Summary {
        browser: pick(BROWSERS, "Unknown browser"),
        os: pick(SYSTEMS, "unknown OS"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_user_agents() {
        for (ua, browser, os) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox",
                "Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome",
                "Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge",
                "Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari",
                "macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari",
                "iOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1",
                "Chrome",
                "iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome",
                "Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                "Samsung Internet",
                "Android",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome",
                "ChromeOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                "Opera",
                "Windows",
            ),
            ("curl/8.5.0", "curl", "unknown OS"),
            ("", "Unknown browser", "unknown OS"),
            ("<script>alert(1)</script>", "Unknown browser", "unknown OS"),
        ] {
            let s = describe(ua);
            assert_eq!((s.browser, s.os), (browser, os), "{ua}");
        }
        assert_eq!(
            describe("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0").to_string(),
            "Firefox on Linux"
        );
    }

    #[test]
    fn what_is_stored() {
        let one = |v: &[u8]| for_record([v].into_iter());
        assert_eq!(one(b"  curl/8.5.0 \t").as_deref(), Some("curl/8.5.0"));
        assert_eq!(one(b"a\tb").as_deref(), Some("a b"));
        assert_eq!(one(b""), None);
        assert_eq!(one(b"  "), None);
        assert_eq!(one(b"caf\xc3\xa9"), None, "not ASCII");
        assert_eq!(one(b"a\x7fb"), None, "a control character");
        assert_eq!(for_record([].into_iter()), None);
        assert_eq!(
            for_record([b"a".as_slice(), b"b"].into_iter()),
            None,
            "two lines"
        );
        let long = "x".repeat(1000);
        assert_eq!(one(long.as_bytes()).unwrap().len(), MAX_STORED_BYTES);
        let spaced = format!("{} y", "x".repeat(MAX_STORED_BYTES - 1));
        assert_eq!(
            one(spaced.as_bytes()).unwrap(),
            "x".repeat(MAX_STORED_BYTES - 1)
        );
    }

    proptest! {
        #[test]
        fn stored_values_are_short_visible_ascii(v in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(s) = for_record([v.as_slice()].into_iter()) {
                prop_assert!(!s.is_empty() && s.len() <= MAX_STORED_BYTES);
                prop_assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
                prop_assert_eq!(s.trim(), s.as_str());
                // Storing what was stored changes nothing.
                prop_assert_eq!(for_record([s.as_bytes()].into_iter()), Some(s.clone()));
            }
        }

        #[test]
        fn descriptions_come_from_the_lists(ua in any::<String>()) {
            let s = describe(&ua);
            prop_assert!(BROWSERS.iter().any(|(_, n)| *n == s.browser) || s.browser == "Unknown browser");
            prop_assert!(SYSTEMS.iter().any(|(_, n)| *n == s.os) || s.os == "unknown OS");
        }

        #[test]
        fn a_token_anywhere_is_found(prefix in "[a-z ;()]{0,20}", suffix in "[a-z ;()]{0,20}") {
            let ua = format!("{prefix}Firefox/128.0{suffix}");
            prop_assert_eq!(describe(&ua).browser, "Firefox");
        }
    }
}
