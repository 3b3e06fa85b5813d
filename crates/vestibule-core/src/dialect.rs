//! Input dialects: how an SSO front spells identity in request headers.
//!
//! A dialect is data: which header (or headers) carry each identity field,
//! the groups separator, an optional marker header, and which value
//! encodings the sender uses. [`Dialect::extract`] is only ever called for
//! a request from a trusted peer; untrusted peers never get this far.

use std::fmt;

use http::HeaderMap;

use crate::decode::{Decoding, ValueError, decode_value};
use crate::headers::normalize_name;
use crate::identity::Identity;

/// The built-in dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// `Remote-User`, `Remote-Groups` (comma-separated), `Remote-Email`, `Remote-Name`.
    Authelia,
    /// `X-authentik-uid` (subject), `-username`, `-email`, `-name`, `-groups` (`|`-separated).
    Authentik,
    /// `X-Forwarded-User` / `X-Auth-Request-User` (subject), `-Email`, `-Groups`,
    /// `-Preferred-Username`. Either family may be used; if both are sent
    /// they must agree.
    OAuth2Proxy,
    /// `sec-georchestra-preauthenticated: true` plus `preauth-username`,
    /// `-email`, `-firstname`, `-lastname`, `-org`, `-roles` (`;`-separated),
    /// `-provider`, `-provider-id` (subject when present). `{base64}` values
    /// are decoded.
    Georchestra,
    /// `Tailscale-User-Login` (subject), `Tailscale-User-Name` (RFC 2047).
    Tailscale,
}

impl Preset {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authelia => "authelia",
            Self::Authentik => "authentik",
            Self::OAuth2Proxy => "oauth2-proxy",
            Self::Georchestra => "georchestra",
            Self::Tailscale => "tailscale",
        }
    }

    /// Every preset.
    pub const ALL: [Self; 5] = [
        Self::Authelia,
        Self::Authentik,
        Self::OAuth2Proxy,
        Self::Georchestra,
        Self::Tailscale,
    ];

    /// Looks a preset up by its configuration name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// An operator-defined dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
// Alike jwt/mapping.rs ClaimMapping: one header name for each identity field it fills.
pub struct CustomDialect {
    /// Header carrying the stable subject (required).
    pub subject: String,
    /// Header carrying the username; the subject when unset.
    pub username: Option<String>,
    /// Header carrying the email.
    pub email: Option<String>,
    /// Header carrying the display name.
    pub display_name: Option<String>,
    /// Header carrying the groups.
    pub groups: Option<String>,
    /// Separator between groups.
    pub groups_separator: char,
    /// Header carrying the organisation.
    pub org: Option<String>,
    /// Encodings the sender uses.
    pub decoding: Decoding,
}

/// Bounds on identity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueLimits {
    /// Largest value, in bytes, for every field but groups.
    pub max_value_len: usize,
    /// Largest groups value, in bytes.
    pub max_groups_len: usize,
    /// Most groups one identity may carry.
    pub max_groups: usize,
}

impl Default for ValueLimits {
    fn default() -> Self {
        Self {
            max_value_len: 1024,
            max_groups_len: 8192,
            max_groups: 256,
        }
    }
}

/// Why a trusted peer's identity headers were refused. Each is answered
/// with HTTP 400: the front is misconfigured or under attack, and guessing
/// which value it meant would be a trust decision made on a coin toss.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The same identity header arrived more than once, or under two
    /// spellings (`Remote-User` and `Remote_User`), or two alternative
    /// headers for one field disagree.
    Ambiguous {
        /// The normalised header name(s).
        header: String,
    },
    /// A value failed decoding or validation.
    BadValue {
        /// The normalised header name.
        header: String,
        /// What was wrong with it.
        reason: ValueError,
    },
    /// A group name contains a list separator, or there are too many groups.
    BadGroups {
        /// The normalised header name.
        header: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// Identity fields were sent without the subject header.
    Incomplete {
        /// The header that should have carried the subject.
        missing: String,
        /// A header that was present.
        present: String,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ambiguous { header } => write!(
                f,
                "identity header `{header}` was sent more than once or under more than one spelling"
            ),
            Self::BadValue { header, reason } => {
                write!(f, "identity header `{header}` has a bad value: {reason}")
            }
            Self::BadGroups { header, reason } => {
                write!(f, "identity header `{header}`: {reason}")
            }
            Self::Incomplete { missing, present } => write!(
                f,
                "identity header `{present}` was sent without the subject header `{missing}`"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Why a custom dialect was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Alike net.rs CidrError, route.rs RouteError: each parser's own error enum and Display.
pub enum DialectError {
    /// Not a valid HTTP header name.
    BadHeaderName(String),
    /// The groups separator is not one of `,` `;` `|` or space.
    BadSeparator(char),
}

impl fmt::Display for DialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHeaderName(n) => write!(f, "`{n}` is not a valid HTTP header name"),
            Self::BadSeparator(c) => {
                write!(
                    f,
                    "groups separator {c:?} must be one of ',', ';', '|' or ' '"
                )
            }
        }
    }
}

impl std::error::Error for DialectError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Alike profile.rs OutField: these are read in (with Provider); OutField is written out.
enum Field {
    Subject = 0,
    Username,
    Email,
    DisplayName,
    GivenName,
    FamilyName,
    Groups,
    Org,
    Provider,
}

const FIELD_COUNT: usize = 9;

/// A name length's bit in `Dialect::slot_lengths`; lengths of 63 and more
/// share the last one.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// A compiled dialect, ready to read requests.
#[derive(Debug, Clone)]
pub struct Dialect {
    name: String,
    /// Normalised header names, one per slot.
    slots: Vec<String>,
    /// Bit `min(len, 63)` set for each slot's name length: most request
    /// headers are none of the dialect's, and their length alone says so
    /// (`same_name` never matches names of different lengths).
    slot_lengths: u64,
    /// For each field, the slots that may carry it (alternatives).
    fields: [Vec<usize>; FIELD_COUNT],
    /// A slot whose value must equal (case-insensitively) the given string
    /// for the dialect to apply at all.
    marker: Option<(usize, &'static str)>,
    groups_separator: char,
    decoding: Decoding,
    subject_falls_back_to_username: bool,
    username_is_email: bool,
}

struct Builder {
    d: Dialect,
}

impl Builder {
    fn new(name: &str, groups_separator: char, decoding: Decoding) -> Self {
        Self {
            d: Dialect {
                name: name.to_owned(),
                slots: Vec::new(),
                slot_lengths: 0,
                fields: Default::default(),
                marker: None,
                groups_separator,
                decoding,
                subject_falls_back_to_username: false,
                username_is_email: false,
            },
        }
    }

    fn slot(&mut self, header: &str) -> usize {
        let n = normalize_name(header);
        // A dialect has a handful of slots: a search, not a map.
        if let Some(i) = self.d.slots.iter().position(|s| *s == n) {
            return i;
        }
        self.d.slot_lengths |= length_bit(n.len());
        self.d.slots.push(n);
        self.d.slots.len() - 1
    }

    fn field(mut self, field: Field, headers: &[&str]) -> Self {
        for h in headers {
            let s = self.slot(h);
            self.d.fields[field as usize].push(s);
        }
        self
    }

    fn marker(mut self, header: &str, value: &'static str) -> Self {
        let s = self.slot(header);
        self.d.marker = Some((s, value));
        self
    }
}

impl Dialect {
    /// A built-in dialect.
    pub fn preset(preset: Preset) -> Self {
        let plain = Decoding::default();
        // Alike within: one builder chain a preset, each a table of header names.
        let b = match preset {
            Preset::Authelia => Builder::new(preset.name(), ',', plain)
                .field(Field::Subject, &["remote-user"])
                .field(Field::Username, &["remote-user"])
                .field(Field::Email, &["remote-email"])
                .field(Field::DisplayName, &["remote-name"])
                .field(Field::Groups, &["remote-groups"]),
            Preset::Authentik => Builder::new(preset.name(), '|', plain)
                .field(Field::Subject, &["x-authentik-uid"])
                .field(Field::Username, &["x-authentik-username"])
                .field(Field::Email, &["x-authentik-email"])
                .field(Field::DisplayName, &["x-authentik-name"])
                .field(Field::Groups, &["x-authentik-groups"]),
            Preset::OAuth2Proxy => Builder::new(preset.name(), ',', plain)
                .field(Field::Subject, &["x-forwarded-user", "x-auth-request-user"])
                .field(
                    Field::Username,
                    &[
                        "x-forwarded-preferred-username",
                        "x-auth-request-preferred-username",
                    ],
                )
                .field(Field::Email, &["x-forwarded-email", "x-auth-request-email"])
                .field(
                    Field::Groups,
                    &["x-forwarded-groups", "x-auth-request-groups"],
                ),
            Preset::Georchestra => {
                let mut b = Builder::new(
                    preset.name(),
                    ';',
                    Decoding {
                        base64_prefix: true,
                        rfc2047: false,
                    },
                )
                .marker("sec-georchestra-preauthenticated", "true")
                .field(Field::Subject, &["preauth-provider-id"])
                .field(Field::Username, &["preauth-username"])
                .field(Field::Email, &["preauth-email"])
                .field(Field::GivenName, &["preauth-firstname"])
                .field(Field::FamilyName, &["preauth-lastname"])
                .field(Field::Org, &["preauth-org"])
                .field(Field::Groups, &["preauth-roles"])
                .field(Field::Provider, &["preauth-provider"]);
                b.d.subject_falls_back_to_username = true;
                b
            }
            Preset::Tailscale => {
                let mut b = Builder::new(
                    preset.name(),
                    ',',
                    Decoding {
                        base64_prefix: false,
                        rfc2047: true,
                    },
                )
                .field(Field::Subject, &["tailscale-user-login"])
                .field(Field::Username, &["tailscale-user-login"])
                .field(Field::DisplayName, &["tailscale-user-name"]);
                b.d.username_is_email = true;
                b
            }
        };
        b.d
    }

    /// An operator-defined dialect.
    pub fn custom(c: &CustomDialect) -> Result<Self, DialectError> {
        if !matches!(c.groups_separator, ',' | ';' | '|' | ' ') {
            return Err(DialectError::BadSeparator(c.groups_separator));
        }
        let all = [
            Some(&c.subject),
            c.username.as_ref(),
            c.email.as_ref(),
            c.display_name.as_ref(),
            c.groups.as_ref(),
            c.org.as_ref(),
        ];
        for name in all.into_iter().flatten() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(DialectError::BadHeaderName(name.clone()));
            }
        }
        let mut b = Builder::new("custom", c.groups_separator, c.decoding)
            .field(Field::Subject, &[&c.subject]);
        let username = c.username.as_deref().unwrap_or(&c.subject);
        b = b.field(Field::Username, &[username]);
        for (field, header) in [
            (Field::Email, &c.email),
            (Field::DisplayName, &c.display_name),
            (Field::Groups, &c.groups),
            (Field::Org, &c.org),
        ] {
            if let Some(h) = header {
                b = b.field(field, &[h]);
            }
        }
        Ok(b.d)
    }

    /// The dialect's configuration name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every header this dialect reads, normalised.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(String::as_str)
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        // A dialect reads a handful of headers: comparing the name with
        // each (lengths first, then folded bytes) is cheaper than hashing
        // it, and allocates nothing for any spelling (issue 17: this ran
        // for every header of every request).
        if self.slot_lengths & length_bit(name.len()) == 0 {
            return None;
        }
        self.slots
            .iter()
            .position(|slot| crate::headers::same_name(slot, name))
    }

    /// Every header `extract` reads, in the map's order with all
    /// occurrences, as (slot, raw value): everything [`Dialect::extract`]'s
    /// result depends on besides the limits. Two header maps that yield
    /// the same sequence get the same result from `extract`, so the
    /// sequence (its exact bytes, never a hash of them alone) is what the
    /// per-request identity cache compares (issue 17). No allocation for
    /// the names hyper produces (lowercase, no `_`).
    pub fn identity_headers<'h>(
        &'h self,
        headers: &'h HeaderMap,
    ) -> impl Iterator<Item = (usize, &'h [u8])> + 'h {
        headers
            .iter()
            .filter_map(|(name, value)| Some((self.slot_of(name.as_str())?, value.as_bytes())))
    }

    /// Reads an identity from a trusted peer's headers.
    ///
    /// Returns `Ok(None)` when no identity was sent (anonymous), and an error
    /// when what was sent is ambiguous, malformed or incomplete.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        limits: &ValueLimits,
    ) -> Result<Option<Identity>, IdentityError> {
        // Pass 1: find each slot's single value; a second occurrence under
        // any spelling is ambiguous.
        let mut values: Vec<Option<&http::HeaderValue>> = vec![None; self.slots.len()];
        for (name, value) in headers {
            if let Some(i) = self.slot_of(name.as_str()) {
                if values[i].is_some() {
                    return Err(IdentityError::Ambiguous {
                        header: self.slots[i].clone(),
                    });
                }
                values[i] = Some(value);
            }
        }
        if let Some((slot, expected)) = self.marker {
            match values[slot] {
                Some(v) if v.as_bytes().eq_ignore_ascii_case(expected.as_bytes()) => {}
                _ => return Ok(None),
            }
        }

        // Pass 2: decode, validate, and reconcile alternatives per field.
        let mut decoded: [Option<(String, usize)>; FIELD_COUNT] = Default::default();
        for (f, slots) in self.fields.iter().enumerate() {
            let max = if f == Field::Groups as usize {
                limits.max_groups_len
            } else {
                limits.max_value_len
            };
            for &slot in slots {
                let Some(raw) = values[slot] else { continue };
                let v = decode_value(raw.as_bytes(), self.decoding, max).map_err(|reason| {
                    IdentityError::BadValue {
                        header: self.slots[slot].clone(),
                        reason,
                    }
                })?;
                if v.is_empty() {
                    // nginx sends an empty header for an unset variable:
                    // empty means "not sent".
                    continue;
                }
                match &decoded[f] {
                    Some((prev, prev_slot)) if *prev != v => {
                        return Err(IdentityError::Ambiguous {
                            header: format!("{} and {}", self.slots[*prev_slot], self.slots[slot]),
                        });
                    }
                    Some(_) => {}
                    None => decoded[f] = Some((v, slot)),
                }
            }
        }
        let take = |d: &mut [Option<(String, usize)>; FIELD_COUNT], f: Field| {
            d[f as usize].take().map(|(v, _)| v)
        };

        let username = take(&mut decoded, Field::Username);
        let subject = match take(&mut decoded, Field::Subject) {
            Some(s) => s,
            None => match (&username, self.subject_falls_back_to_username) {
                (Some(u), true) => u.clone(),
                _ => {
                    // Nothing sent at all is anonymous; fields without a
                    // subject are a broken front.
                    let present = values
                        .iter()
                        .enumerate()
                        .find(|(i, v)| {
                            v.is_some_and(|v| !v.is_empty())
                                && self.marker.is_none_or(|(m, _)| m != *i)
                        })
                        .map(|(i, _)| self.slots[i].clone());
                    return match present {
                        None => Ok(None),
                        Some(present) => Err(IdentityError::Incomplete {
                            missing: self.fields[Field::Subject as usize]
                                .iter()
                                .map(|&s| self.slots[s].as_str())
                                .collect::<Vec<_>>()
                                .join(" or "),
                            present,
                        }),
                    };
                }
            },
        };

        let mut groups = Vec::new();
        if let Some((raw, slot)) = decoded[Field::Groups as usize].take() {
            for g in raw.split(self.groups_separator) {
                let g = g.trim();
                if g.is_empty() {
                    continue;
                }
                if g.contains([',', ';', '|']) {
                    return Err(IdentityError::BadGroups {
                        header: self.slots[slot].clone(),
                        reason: "a group name contains a list separator (',', ';' or '|')",
                    });
                }
                if groups.len() == limits.max_groups {
                    return Err(IdentityError::BadGroups {
                        header: self.slots[slot].clone(),
                        reason: "too many groups",
                    });
                }
                if !groups.iter().any(|x| x == g) {
                    groups.push(g.to_owned());
                }
            }
        }

        let username = username.unwrap_or_else(|| subject.clone());
        let mut email = take(&mut decoded, Field::Email);
        if email.is_none() && self.username_is_email && username.contains('@') {
            email = Some(username.clone());
        }
        Ok(Some(Identity {
            source: self.name.clone(),
            subject,
            username,
            email,
            display_name: take(&mut decoded, Field::DisplayName),
            given_name: take(&mut decoded, Field::GivenName),
            family_name: take(&mut decoded, Field::FamilyName),
            groups,
            org: take(&mut decoded, Field::Org),
            provider: take(&mut decoded, Field::Provider),
            roles: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn extract(p: Preset, pairs: &[(&str, &str)]) -> Result<Option<Identity>, IdentityError> {
        Dialect::preset(p).extract(&headers(pairs), &ValueLimits::default())
    }

    #[test]
    fn authelia() {
        let id = extract(
            Preset::Authelia,
            &[
                ("Remote-User", "alice"),
                ("Remote-Groups", "admins, users,,"),
                ("Remote-Email", "alice@example.com"),
                ("Remote-Name", "Alice Liddell"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.username, "alice");
        assert_eq!(id.groups, ["admins", "users"]);
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.display_name.as_deref(), Some("Alice Liddell"));
        assert_eq!(id.source, "authelia");
    }

    #[test]
    fn authentik_keys_on_uid_and_splits_on_pipe() {
        let id = extract(
            Preset::Authentik,
            &[
                ("X-authentik-uid", "a1b2c3"),
                ("X-authentik-username", "bob"),
                ("X-authentik-groups", "users|media"),
                ("X-authentik-email", "bob@example.com"),
                ("X-authentik-name", "Bob"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (id.subject.as_str(), id.username.as_str()),
            ("a1b2c3", "bob")
        );
        assert_eq!(id.groups, ["users", "media"]);
    }

    #[test]
    fn oauth2_proxy_accepts_either_family() {
        let a = extract(
            Preset::OAuth2Proxy,
            &[
                ("X-Forwarded-User", "u-1"),
                ("X-Forwarded-Preferred-Username", "carol"),
                ("X-Forwarded-Groups", "a,b"),
            ],
        )
        .unwrap()
        .unwrap();
        let b = extract(
            Preset::OAuth2Proxy,
            &[
                ("X-Auth-Request-User", "u-1"),
                ("X-Auth-Request-Preferred-Username", "carol"),
                ("X-Auth-Request-Groups", "a,b"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.subject, b.subject);
        assert_eq!(a.username, "carol");
        assert_eq!(a.groups, b.groups);
        // Both families agreeing is fine; disagreeing is ambiguous.
        assert!(
            extract(
                Preset::OAuth2Proxy,
                &[("X-Forwarded-User", "u-1"), ("X-Auth-Request-User", "u-1")]
            )
            .is_ok()
        );
        assert!(matches!(
            extract(
                Preset::OAuth2Proxy,
                &[
                    ("X-Forwarded-User", "u-1"),
                    ("X-Auth-Request-User", "admin")
                ]
            ),
            Err(IdentityError::Ambiguous { .. })
        ));
    }

    #[test]
    fn georchestra_needs_the_marker_and_decodes_base64() {
        let with = [
            ("sec-georchestra-preauthenticated", "true"),
            ("preauth-username", "pmauduit"),
            ("preauth-email", "pierre@example.org"),
            ("preauth-firstname", "{base64}R3LDqWdvaXJl"),
            ("preauth-lastname", "Mauduit"),
            ("preauth-org", "geOrchestra"),
            ("preauth-roles", "ROLE_USER;ROLE_ADMINISTRATOR"),
            ("preauth-provider", "myidp"),
            ("preauth-provider-id", "user_123456"),
        ];
        let id = extract(Preset::Georchestra, &with).unwrap().unwrap();
        assert_eq!(id.subject, "user_123456");
        assert_eq!(id.username, "pmauduit");
        assert_eq!(id.groups, ["ROLE_USER", "ROLE_ADMINISTRATOR"]);
        assert_eq!(id.org.as_deref(), Some("geOrchestra"));
        assert_eq!(id.provider.as_deref(), Some("myidp"));
        assert_eq!(id.given_name.as_deref(), Some("Grégoire"));
        // Without provider-id the username is the subject.
        let id = extract(
            Preset::Georchestra,
            &[
                ("sec-georchestra-preauthenticated", "TRUE"),
                ("preauth-username", "pmauduit"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(id.subject, "pmauduit");
        // Without the marker, nothing is read.
        assert_eq!(extract(Preset::Georchestra, &with[1..]).unwrap(), None);
        assert_eq!(
            extract(
                Preset::Georchestra,
                &[
                    ("sec-georchestra-preauthenticated", "false"),
                    ("preauth-username", "x")
                ]
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn tailscale_login_is_subject_and_email() {
        let id = extract(
            Preset::Tailscale,
            &[
                ("Tailscale-User-Login", "alice@example.com"),
                ("Tailscale-User-Name", "=?utf-8?q?Ren=C3=A9e?="),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(id.subject, "alice@example.com");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn custom_dialect() {
        let d = Dialect::custom(&CustomDialect {
            subject: "X-User-Id".into(),
            username: Some("X-User".into()),
            email: None,
            display_name: Some("X-Display".into()),
            groups: Some("X-Roles".into()),
            groups_separator: ' ',
            org: Some("X-Org".into()),
            decoding: Decoding::default(),
        })
        .unwrap();
        let id = d
            .extract(
                &headers(&[
                    ("x-user-id", "42"),
                    ("x-user", "dave"),
                    ("x-roles", "a b  c"),
                    ("x-org", "acme"),
                ]),
                &ValueLimits::default(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(id.subject, "42");
        assert_eq!(id.groups, ["a", "b", "c"]);
        assert_eq!(id.org.as_deref(), Some("acme"));
        assert!(matches!(
            Dialect::custom(&CustomDialect {
                subject: "bad header".into(),
                username: None,
                email: None,
                display_name: None,
                groups: None,
                groups_separator: ',',
                org: None,
                decoding: Decoding::default(),
            }),
            Err(DialectError::BadHeaderName(_))
        ));
    }

    #[test]
    fn nothing_sent_is_anonymous_and_empty_is_nothing() {
        assert_eq!(
            extract(Preset::Authelia, &[("accept", "*/*")]).unwrap(),
            None
        );
        assert_eq!(
            extract(Preset::Authelia, &[("remote-user", "")]).unwrap(),
            None
        );
    }

    #[test]
    fn duplicate_lines_are_ambiguous() {
        let e = extract(
            Preset::Authelia,
            &[("remote-user", "alice"), ("remote-user", "admin")],
        );
        assert_eq!(
            e,
            Err(IdentityError::Ambiguous {
                header: "remote-user".into()
            })
        );
        // Even identical duplicates: the front should not be sending two.
        assert!(
            extract(
                Preset::Authelia,
                &[("remote-user", "a"), ("remote-user", "a")]
            )
            .is_err()
        );
    }

    #[test]
    fn two_spellings_are_ambiguous() {
        for other in ["remote_user", "REMOTE_USER", "Remote_User"] {
            let e = extract(
                Preset::Authelia,
                &[("remote-user", "alice"), (other, "admin")],
            );
            assert!(matches!(e, Err(IdentityError::Ambiguous { .. })), "{other}");
        }
        let e = extract(
            Preset::Authelia,
            &[
                ("remote-user", "alice"),
                ("remote-groups", "a"),
                ("remote_groups", "admins"),
            ],
        );
        assert!(matches!(e, Err(IdentityError::Ambiguous { .. })));
    }

    #[test]
    fn an_underscore_spelling_alone_is_read() {
        // One spelling, one line: not ambiguous. It is the trusted front's header.
        let id = extract(Preset::Authelia, &[("remote_user", "alice")])
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "alice");
    }

    #[test]
    fn fields_without_subject_are_incomplete() {
        assert!(matches!(
            extract(Preset::Authentik, &[("x-authentik-username", "bob")]),
            Err(IdentityError::Incomplete { .. })
        ));
    }

    #[test]
    fn bad_values_are_refused_with_the_header_name() {
        // NUL, CR, LF and DEL never get this far: the `http` crate refuses
        // them in a HeaderValue. What it lets through and we refuse: invalid
        // UTF-8, TAB, and C1 controls encoded in UTF-8 (U+0085).
        for bad in [&b"al\tice"[..], b"alice\xc2\x85", b"\xff\xfe"] {
            let mut h = HeaderMap::new();
            h.insert("remote-user", HeaderValue::from_bytes(bad).unwrap());
            let e = Dialect::preset(Preset::Authelia).extract(&h, &ValueLimits::default());
            assert!(
                matches!(&e, Err(IdentityError::BadValue { header, .. }) if header == "remote-user"),
                "{bad:?}: {e:?}"
            );
        }
        let long = "a".repeat(1025);
        assert!(matches!(
            extract(Preset::Authelia, &[("remote-user", &long)]),
            Err(IdentityError::BadValue { .. })
        ));
    }

    #[test]
    fn group_names_cannot_smuggle_separators() {
        // authentik splits on `|`; a group called "users,admins" would become
        // two groups in a comma-separated profile.
        let e = extract(
            Preset::Authentik,
            &[
                ("x-authentik-uid", "1"),
                ("x-authentik-groups", "users,admins|x"),
            ],
        );
        assert!(matches!(e, Err(IdentityError::BadGroups { .. })));
    }

    #[test]
    fn too_many_groups_are_refused() {
        let many = (0..300)
            .map(|i| format!("g{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            extract(
                Preset::Authelia,
                &[("remote-user", "a"), ("remote-groups", &many)]
            ),
            Err(IdentityError::BadGroups { .. })
        ));
    }

    #[test]
    fn encodings_are_only_decoded_where_the_dialect_says_so() {
        // Authelia does not encode: a user literally named like an encoded
        // word must not become someone else.
        let id = extract(Preset::Authelia, &[("remote-user", "=?utf-8?q?admin?=")])
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "=?utf-8?q?admin?=");
        let id = extract(Preset::Authelia, &[("remote-user", "{base64}YWRtaW4=")])
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "{base64}YWRtaW4=");
    }

    proptest! {
        #[test]
        fn extract_never_panics(
            names in proptest::collection::vec("(?i)(remote[-_](user|groups|email|name)|x-authentik-(uid|groups)|preauth-(username|roles)|sec-georchestra-preauthenticated|x-forwarded-user|x-auth-request-user|tailscale-user-(login|name))", 0..6),
            values in proptest::collection::vec(proptest::collection::vec(0x20u8..=0xff, 0..40), 6),
        ) {
            let mut h = HeaderMap::new();
            for (n, v) in names.iter().zip(values.iter()) {
                if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_bytes(v)) {
                    h.append(n, v);
                }
            }
            for p in Preset::ALL {
                if let Ok(Some(id)) = Dialect::preset(p).extract(&h, &ValueLimits::default()) {
                    prop_assert!(!id.subject.is_empty());
                    for g in &id.groups {
                        prop_assert!(!g.contains([',', ';', '|']));
                    }
                    prop_assert!(!id.username.chars().any(char::is_control));
                }
            }
        }

        /// The identity cache's premise: two requests whose identity
        /// headers are the same sequence get the same answer from
        /// `extract`, whatever else they carry (and where the other
        /// headers sit among them).
        #[test]
        fn extract_depends_only_on_the_identity_headers(
            names in proptest::collection::vec("(remote[-_](user|groups|email|name)|x-authentik-(uid|username|groups)|preauth-(username|roles|email)|sec-georchestra-preauthenticated|x-forwarded-(user|email|groups)|tailscale-user-(login|name))", 0..7),
            values in proptest::collection::vec("(true|alice|bob|a,b|a;b|a\\|b|x@y|=\\?utf-8\\?q\\?x\\?=|)", 7),
            others in proptest::collection::vec(("(accept|cookie|user-agent|x-other)", "[a-z]{0,8}"), 0..4),
        ) {
            let mut a = HeaderMap::new();
            let mut b = HeaderMap::new();
            for (k, v) in &others {
                b.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            for (n, v) in names.iter().zip(values.iter()) {
                let (n, v) = (HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
                a.append(n.clone(), v.clone());
                b.append(n, v);
            }
            for p in Preset::ALL {
                let d = Dialect::preset(p);
                let (ka, kb): (Vec<_>, Vec<_>) = (d.identity_headers(&a).collect(), d.identity_headers(&b).collect());
                prop_assert_eq!(&ka, &kb);
                prop_assert_eq!(d.extract(&a, &ValueLimits::default()), d.extract(&b, &ValueLimits::default()));
            }
        }
    }
}
