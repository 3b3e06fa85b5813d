//! Protocol upgrades: which ones a request may ask for.
//!
//! An upgrade turns the connection into a tunnel: after `101 Switching
//! Protocols` the front splices bytes and never asks vestibule again. With
//! `Upgrade: h2c` (RFC 7540 §3.2) every later HTTP/2 request on that
//! connection reaches the app unchecked, forged identity headers included
//! ("h2c smuggling"). RFC 9113 §3.1 deprecates that upgrade, and no browser
//! or proxy needs it, so vestibule refuses it; the only upgrade that passes
//! is WebSocket (RFC 6455 §4.1: `Upgrade: websocket`), whose one upgraded
//! request is the one vestibule decided.
//!
//! The check reads the `Upgrade` header whether or not `Connection` names
//! it (RFC 9110 §7.8 makes both necessary for a real upgrade), because in
//! forward-auth mode the `Connection` vestibule sees is the front's own,
//! not the client's, and a front may add it back on its way to the app.

use std::fmt;

use http::HeaderMap;

use crate::headers::same_name;

/// The upgrade a request may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// `Upgrade: websocket` (RFC 6455 §4.1).
    WebSocket,
}

/// Why a request's upgrade was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeError {
    /// An `HTTP2-Settings` header (any spelling): only sent with an h2c
    /// upgrade (RFC 7540 §3.2.1).
    Http2Settings,
    /// `Upgrade` names something other than exactly one `websocket`
    /// (`h2c`, `TLS/1.0`, a list); the value, for the log.
    NotWebSocket(String),
    /// `Upgrade` is present but empty or not visible ASCII.
    Malformed,
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http2Settings => f.write_str(
                "the request carries `HTTP2-Settings`, which only an h2c upgrade sends (refused)",
            ),
            Self::NotWebSocket(v) => write!(
                f,
                "the request asks to upgrade to `{v}`; only `websocket` is allowed"
            ),
            Self::Malformed => f.write_str("the request's `Upgrade` header is empty or malformed"),
        }
    }
}

impl std::error::Error for UpgradeError {}

/// The upgrade `headers` ask for: `Ok(None)` without `Upgrade`,
/// `Ok(Some(WebSocket))` for exactly `websocket` (ASCII case-insensitive,
/// RFC 9110 §7.8), an error for anything else or for `HTTP2-Settings`.
pub fn check_upgrade(headers: &HeaderMap) -> Result<Option<Upgrade>, UpgradeError> {
    if headers
        .keys()
        .any(|n| same_name(n.as_str(), "http2-settings"))
    {
        return Err(UpgradeError::Http2Settings);
    }
    let mut tokens: Vec<&str> = Vec::new();
    let mut present = false;
    for value in headers.get_all(http::header::UPGRADE) {
        present = true;
        let text = value.to_str().map_err(|_| UpgradeError::Malformed)?;
        // A list (RFC 9110 §5.6.1): empty elements do not count.
        tokens.extend(
            text.split(',')
                .map(|t| t.trim_matches([' ', '\t']))
                .filter(|t| !t.is_empty()),
        );
    }
    match tokens.as_slice() {
        [] if present => Err(UpgradeError::Malformed),
        [] => Ok(None),
        [one] if one.eq_ignore_ascii_case("websocket") => Ok(Some(Upgrade::WebSocket)),
        _ => Err(UpgradeError::NotWebSocket(tokens.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let line = |(k, v): &(&str, &str)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        };
        // `collect` appends, so repeated names keep every line.
        pairs.iter().map(line).collect()
    }

    #[test]
    fn no_upgrade_and_websocket_pass() {
        assert_eq!(check_upgrade(&h(&[("accept", "*/*")])), Ok(None));
        for v in [
            "websocket",
            "WebSocket",
            " websocket ",
            "websocket,",
            ", WEBSOCKET",
        ] {
            assert_eq!(
                check_upgrade(&h(&[("upgrade", v), ("connection", "upgrade")])),
                Ok(Some(Upgrade::WebSocket)),
                "{v}"
            );
        }
    }

    #[test]
    fn h2c_is_refused_however_it_is_spelled() {
        for v in ["h2c", "H2C", "h2c, websocket", "websocket, h2c"] {
            assert!(
                matches!(
                    check_upgrade(&h(&[("upgrade", v)])),
                    Err(UpgradeError::NotWebSocket(_))
                ),
                "{v}"
            );
        }
        // Split over two lines.
        assert!(matches!(
            check_upgrade(&h(&[("upgrade", "websocket"), ("upgrade", "h2c")])),
            Err(UpgradeError::NotWebSocket(_))
        ));
        // The settings header alone, in any spelling, is refused too.
        for name in ["http2-settings", "HTTP2_Settings", "Http2-Settings"] {
            assert_eq!(
                check_upgrade(&h(&[(name, "AAMAAABkAARAAAAAAAIAAAAA")])),
                Err(UpgradeError::Http2Settings),
                "{name}"
            );
        }
    }

    #[test]
    fn other_protocols_and_malformed_values_are_refused() {
        for v in ["TLS/1.0", "HTTP/2.0", "websocket/13", "IRC/6.9", "h2"] {
            assert!(check_upgrade(&h(&[("upgrade", v)])).is_err(), "{v}");
        }
        assert_eq!(
            check_upgrade(&h(&[("upgrade", "")])),
            Err(UpgradeError::Malformed)
        );
        assert_eq!(
            check_upgrade(&h(&[("upgrade", " , ")])),
            Err(UpgradeError::Malformed)
        );
        let mut m = HeaderMap::new();
        m.insert("upgrade", HeaderValue::from_bytes(b"h2c\xff").unwrap());
        assert_eq!(check_upgrade(&m), Err(UpgradeError::Malformed));
    }

    proptest! {
        /// Whatever the values, only a single `websocket` token passes.
        #[test]
        fn only_websocket_passes(values in prop::collection::vec("[ -~]{0,20}", 0..3)) {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("upgrade", v.as_str())).collect();
            let mut m = HeaderMap::new();
            for (k, v) in &pairs {
                if let Ok(v) = HeaderValue::from_str(v) {
                    m.append(*k, v);
                }
            }
            let tokens: Vec<String> = m
                .get_all("upgrade")
                .iter()
                .flat_map(|v| v.to_str().unwrap().split(',').map(|t| t.trim_matches([' ', '\t']).to_owned()).collect::<Vec<_>>())
                .filter(|t| !t.is_empty())
                .collect();
            match check_upgrade(&m) {
                Ok(None) => prop_assert!(m.get("upgrade").is_none()),
                Ok(Some(Upgrade::WebSocket)) => {
                    prop_assert_eq!(tokens.len(), 1);
                    prop_assert!(tokens[0].eq_ignore_ascii_case("websocket"));
                }
                Err(_) => prop_assert!(
                    tokens.len() != 1 || !tokens[0].eq_ignore_ascii_case("websocket")
                ),
            }
        }
    }
}
