//! `[assertions]`: the signed identity vestibule sends apps on routes with
//! `assertion = true` (keys: `[keys]`).

use std::time::Duration;

use serde::Deserialize;

use super::HumanDuration;
use super::diagnostic::Collector;

/// Default `assertions.header`.
pub const DEFAULT_ASSERTION_HEADER: &str = "X-Vestibule-Assertion";
/// Default `assertions.lifetime`.
pub const DEFAULT_ASSERTION_LIFETIME: &str = "60s";

/// `[assertions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionsConfig {
    /// The header the assertion is sent in. A client's copy, in any
    /// spelling, is always removed. Default `"X-Vestibule-Assertion"`.
    #[serde(default = "default_header")]
    pub header: String,
    /// How long an assertion is valid (`exp - iat`), at most 5 minutes.
    /// Default `"60s"`.
    #[serde(default = "default_lifetime")]
    pub lifetime: HumanDuration,
    /// The `iss` claim: this gateway's public URL, e.g.
    /// `"https://sso.example.com"`. Default none; required when a route has
    /// `assertion = true`.
    pub issuer: Option<String>,
}

impl Default for AssertionsConfig {
    fn default() -> Self {
        Self {
            header: default_header(),
            lifetime: default_lifetime(),
            issuer: None,
        }
    }
}

fn default_header() -> String {
    DEFAULT_ASSERTION_HEADER.to_owned()
}
fn default_lifetime() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ASSERTION_LIFETIME).unwrap_or_default()
}

/// Assertions, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSettings {
    /// The header name.
    pub header: http::HeaderName,
    /// `exp - iat`.
    pub lifetime: Duration,
    /// `iss`.
    pub issuer: String,
}

impl AssertionsConfig {
    /// Checks `[assertions]`; `None` when no route asks for assertions (or
    /// on an error). `wanted`: some route has `assertion = true`;
    /// `accounts`: the store (which holds the keys) exists.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        wanted: bool,
        accounts: bool,
    ) -> Option<AssertionSettings> {
        let header = http::HeaderName::from_bytes(self.header.as_bytes()).ok();
        if header.is_none() {
            c.error(
                "assertions.header",
                "not a valid header name",
                "keep the default, \"X-Vestibule-Assertion\"",
            );
        }
        let lifetime = self.lifetime.0;
        if lifetime < Duration::from_secs(1) || lifetime > crate::keys::MAX_ASSERTION_LIFETIME {
            c.error(
                "assertions.lifetime",
                "an assertion must live at least 1 second and at most 5 minutes",
                "keep the default, \"60s\"",
            );
        }
        if !wanted {
            return None;
        }
        if !accounts {
            c.error(
                "route.assertion",
                "assertions are signed with keys kept in the account store, and `[accounts]` is off",
                "add an `[accounts]` section",
            );
        }
        let issuer = match self.issuer.as_deref().map(str::trim) {
            Some(i) if !i.is_empty() => Some(i.to_owned()),
            _ => {
                c.error(
                    "assertions.issuer",
                    "a route sends assertions, and apps must be told whose they are",
                    "set it to this gateway's public URL, e.g. \"https://sso.example.com\"",
                );
                None
            }
        };
        Some(AssertionSettings {
            header: header?,
            lifetime,
            issuer: issuer?,
        })
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    fn check(toml: &str, wanted: bool, accounts: bool) -> (Option<AssertionSettings>, Vec<String>) {
        let f = parse(toml, &[]).unwrap();
        let mut c = Collector::default();
        let a = f.assertions.validate(&mut c, wanted, accounts);
        (a, c.diags.iter().map(|d| d.key.clone()).collect())
    }

    #[test]
    fn defaults_apply_and_the_issuer_is_required_when_wanted() {
        assert_eq!(check("", false, false), (None, vec![]));
        let (a, errors) = check("[assertions]\nissuer = \"https://sso\"", true, true);
        assert!(errors.is_empty(), "{errors:?}");
        let a = a.unwrap();
        assert_eq!(a.header, "x-vestibule-assertion");
        assert_eq!(a.lifetime, Duration::from_secs(60));
        assert_eq!(a.issuer, "https://sso");
        assert_eq!(check("", true, true).1, vec!["assertions.issuer"]);
        assert_eq!(
            check("[assertions]\nissuer = \"i\"", true, false).1,
            vec!["route.assertion"]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            check("[assertions]\nlifetime = \"10m\"", false, true).1,
            vec!["assertions.lifetime"]
        );
        assert_eq!(
            check("[assertions]\nheader = \"bad header\"", false, true).1,
            vec!["assertions.header"]
        );
    }
}
