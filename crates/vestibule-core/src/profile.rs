//! Output profiles: how an app wants identity spelled in the headers
//! vestibule injects.
//!
//! A profile renders *every* one of its headers. In-path forwarding leaves
//! out the empty ones; forward-auth answers send them all, empty when
//! anonymous, because Caddy `copy_headers` and nginx `auth_request_set`
//! leave a client-supplied value in place when the auth response lacks a
//! header (Caddy #6610, GHSA-7r4p-vjf4-gxv4).

use std::fmt;

use http::{HeaderName, HeaderValue};

use std::borrow::Cow;

use crate::decode::{encode_base64_prefixed, encode_rfc2047};
use crate::identity::Identity;

/// How non-ASCII values are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutEncoding {
    /// Raw UTF-8 bytes (what Authelia and most Go and Node apps read).
    Utf8,
    /// RFC 2047 `=?UTF-8?B?…?=` (Grafana's `headers_encoded`, Tailscale).
    Rfc2047,
    /// geOrchestra's `{base64}` prefix.
    Base64Prefix,
}

impl OutEncoding {
    /// `value` encoded; borrowed when it needs no encoding (plain ASCII,
    /// the usual case).
    fn apply(self, value: Cow<'_, str>) -> Cow<'_, str> {
        let encoded = match self {
            Self::Utf8 => return value,
            Self::Rfc2047 => encode_rfc2047(&value),
            Self::Base64Prefix => encode_base64_prefixed(&value),
        };
        match encoded {
            Cow::Borrowed(_) => value,
            Cow::Owned(e) => Cow::Owned(e),
        }
    }
}

/// An identity field a profile header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Alike dialect.rs Field: that is what a dialect reads in; this, what a profile writes out.
pub enum OutField {
    /// The stable subject.
    Subject,
    /// The username.
    Username,
    /// The email.
    Email,
    /// The display name (falls back to given + family name, then username).
    DisplayName,
    /// Given name (falls back to the display name).
    GivenName,
    /// Family name (empty when only a display name is known).
    FamilyName,
    /// Groups, joined by the profile's separator.
    Groups,
    /// Organisation.
    Org,
}

/// The built-in profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileKind {
    /// `Remote-User`, `Remote-Email`, `Remote-Name`, `Remote-Groups` (comma-separated), UTF-8.
    Remote,
    /// `X-Forwarded-User`, `-Email`, `-Groups`, `-Preferred-Username` (oauth2-proxy style), UTF-8.
    XForwarded,
    /// `X-WEBAUTH-USER`, plus `X-WEBAUTH-EMAIL` and `X-WEBAUTH-NAME` when enabled.
    Grafana {
        /// Send `X-WEBAUTH-EMAIL`.
        email: bool,
        /// Send `X-WEBAUTH-NAME`.
        name: bool,
    },
    /// `sec-username`, `sec-email`, `sec-firstname`, `sec-lastname`, `sec-org`,
    /// `sec-roles` (`;`-separated), `sec-proxy: true`; non-ASCII as `{base64}`.
    Georchestra,
    /// Operator-chosen header names.
    Custom(CustomProfile),
}

/// An operator-defined profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomProfile {
    /// `(header name, field)` pairs.
    pub headers: Vec<(String, OutField)>,
    /// Separator used for groups.
    pub groups_separator: String,
    /// Encoding for non-ASCII values.
    pub encoding: OutEncoding,
}

/// Why a profile could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not a valid header name.
    BadHeaderName(String),
    /// A custom profile with no headers.
    Empty,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHeaderName(n) => write!(f, "`{n}` is not a valid HTTP header name"),
            Self::Empty => write!(f, "a custom profile needs at least one header"),
        }
    }
}

impl std::error::Error for ProfileError {}

/// A built-in profile's header table, constant headers, groups separator
/// and encoding.
type BuiltinProfile<'a> = (
    Vec<(&'a str, OutField)>,
    &'a [(&'a str, &'a str)],
    &'a str,
    OutEncoding,
);

/// A compiled profile. Comparable, so that a rendering memoised for one
/// profile is only ever reused for an equal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProfile {
    headers: Vec<(HeaderName, OutField)>,
    constants: Vec<(HeaderName, HeaderValue)>,
    groups_separator: String,
    encoding: OutEncoding,
}

impl HeaderProfile {
    /// Compiles a profile.
    pub fn new(kind: &ProfileKind) -> Result<Self, ProfileError> {
        use OutField::*;
        let (pairs, constants, sep, enc): BuiltinProfile<'_> = match kind {
            ProfileKind::Remote => (
                vec![
                    ("remote-user", Username),
                    ("remote-email", Email),
                    ("remote-name", DisplayName),
                    ("remote-groups", Groups),
                ],
                &[],
                ",",
                OutEncoding::Utf8,
            ),
            ProfileKind::XForwarded => (
                vec![
                    ("x-forwarded-user", Username),
                    ("x-forwarded-email", Email),
                    ("x-forwarded-groups", Groups),
                    ("x-forwarded-preferred-username", Username),
                ],
                &[],
                ",",
                OutEncoding::Utf8,
            ),
            ProfileKind::Grafana { email, name } => {
                let mut v = vec![("x-webauth-user", Username)];
                if *email {
                    v.push(("x-webauth-email", Email));
                }
                if *name {
                    v.push(("x-webauth-name", DisplayName));
                }
                (v, &[], ",", OutEncoding::Utf8)
            }
            ProfileKind::Georchestra => (
                vec![
                    ("sec-username", Username),
                    ("sec-email", Email),
                    ("sec-firstname", GivenName),
                    ("sec-lastname", FamilyName),
                    ("sec-org", Org),
                    ("sec-roles", Groups),
                ],
                &[("sec-proxy", "true")],
                ";",
                OutEncoding::Base64Prefix,
            ),
            ProfileKind::Custom(c) => {
                if c.headers.is_empty() {
                    return Err(ProfileError::Empty);
                }
                let headers = c
                    .headers
                    .iter()
                    .map(|(n, f)| {
                        HeaderName::from_bytes(n.as_bytes())
                            .map(|h| (h, *f))
                            .map_err(|_| ProfileError::BadHeaderName(n.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Self {
                    headers,
                    constants: Vec::new(),
                    groups_separator: c.groups_separator.clone(),
                    encoding: c.encoding,
                });
            }
        };
        Ok(Self {
            headers: pairs
                .into_iter()
                .map(|(n, f)| (HeaderName::from_static(n), f))
                .collect(),
            constants: constants
                .iter()
                .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
                .collect(),
            groups_separator: sep.to_owned(),
            encoding: enc,
        })
    }

    /// Every header name this profile sets.
    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.headers
            .iter()
            .map(|(n, _)| n)
            .chain(self.constants.iter().map(|(n, _)| n))
    }

    /// Renders every header of the profile. With no identity every value is
    /// empty (and constants such as `sec-proxy` are still sent).
    pub fn render(&self, identity: Option<&Identity>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.headers.len() + self.constants.len());
        self.render_each(identity, |name, value| out.push((name.clone(), value)));
        out
    }

    /// [`HeaderProfile::render`], handing each header to `emit` instead
    /// of collecting them: the request path inserts them in place, and a
    /// value is then the only allocation (its bytes, which `HeaderValue`
    /// owns).
    pub fn render_each(
        &self,
        identity: Option<&Identity>,
        mut emit: impl FnMut(&HeaderName, HeaderValue),
    ) {
        for (name, field) in &self.headers {
            let value = identity.map_or(Cow::Borrowed(""), |id| self.field_value(id, *field));
            let encoded = self.encoding.apply(value);
            // Values were validated on the way in (no control characters),
            // and encodings only produce visible ASCII, so this cannot fail;
            // an impossible failure still fails closed to an empty value.
            let hv = if encoded.is_empty() {
                HeaderValue::from_static("")
            } else {
                HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
            };
            emit(name, hv);
        }
        for (name, value) in &self.constants {
            emit(name, value.clone());
        }
    }

    fn field_value<'a>(&self, id: &'a Identity, field: OutField) -> Cow<'a, str> {
        let or_empty = |v: &'a Option<String>| Cow::Borrowed(v.as_deref().unwrap_or(""));
        match field {
            OutField::Subject => Cow::Borrowed(&id.subject),
            OutField::Username => Cow::Borrowed(&id.username),
            OutField::Email => or_empty(&id.email),
            OutField::DisplayName => id.name_for_display_ref(),
            OutField::GivenName => or_empty(if id.given_name.is_some() {
                &id.given_name
            } else {
                &id.display_name
            }),
            OutField::FamilyName => {
                if id.given_name.is_some() {
                    or_empty(&id.family_name)
                } else {
                    Cow::Borrowed("")
                }
            }
            OutField::Groups => match id.groups.as_slice() {
                [one] => Cow::Borrowed(one),
                groups => Cow::Owned(groups.join(&self.groups_separator)),
            },
            OutField::Org => or_empty(&id.org),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            source: "authelia".into(),
            subject: "alice-id".into(),
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            display_name: Some("Alice Ångström".into()),
            groups: vec!["admins".into(), "users".into()],
            ..Default::default()
        }
    }

    fn render(kind: ProfileKind, id: Option<&Identity>) -> Vec<(String, Vec<u8>)> {
        HeaderProfile::new(&kind)
            .unwrap()
            .render(id)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn get<'a>(r: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &r.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn remote_profile() {
        let r = render(ProfileKind::Remote, Some(&alice()));
        assert_eq!(get(&r, "remote-user"), b"alice");
        assert_eq!(get(&r, "remote-groups"), b"admins,users");
        assert_eq!(get(&r, "remote-name"), "Alice Ångström".as_bytes());
    }

    #[test]
    fn anonymous_renders_every_header_empty() {
        for kind in [
            ProfileKind::Remote,
            ProfileKind::XForwarded,
            ProfileKind::Grafana {
                email: true,
                name: true,
            },
            ProfileKind::Georchestra,
        ] {
            let r = render(kind.clone(), None);
            assert!(!r.is_empty());
            for (n, v) in &r {
                if n == "sec-proxy" {
                    assert_eq!(v, b"true");
                } else {
                    assert!(v.is_empty(), "{kind:?} {n}");
                }
            }
        }
    }

    #[test]
    fn grafana_sends_optional_headers_only_when_enabled() {
        let r = render(
            ProfileKind::Grafana {
                email: false,
                name: false,
            },
            Some(&alice()),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(get(&r, "x-webauth-user"), b"alice");
        let r = render(
            ProfileKind::Grafana {
                email: true,
                name: true,
            },
            Some(&alice()),
        );
        assert_eq!(get(&r, "x-webauth-email"), b"alice@example.com");
    }

    #[test]
    fn georchestra_encodes_non_ascii_as_base64() {
        let r = render(ProfileKind::Georchestra, Some(&alice()));
        let first = String::from_utf8(get(&r, "sec-firstname").to_vec()).unwrap();
        assert!(first.starts_with("{base64}"), "{first}");
        assert_eq!(get(&r, "sec-roles"), b"admins;users");
        assert_eq!(get(&r, "sec-proxy"), b"true");
        assert_eq!(get(&r, "sec-username"), b"alice");
    }

    #[test]
    fn custom_profile() {
        let kind = ProfileKind::Custom(CustomProfile {
            headers: vec![
                ("X-App-Sub".into(), OutField::Subject),
                ("X-App-Roles".into(), OutField::Groups),
            ],
            groups_separator: " ".into(),
            encoding: OutEncoding::Rfc2047,
        });
        let r = render(kind, Some(&alice()));
        assert_eq!(get(&r, "x-app-sub"), b"alice-id");
        assert_eq!(get(&r, "x-app-roles"), b"admins users");
        assert!(matches!(
            HeaderProfile::new(&ProfileKind::Custom(CustomProfile {
                headers: vec![],
                groups_separator: ",".into(),
                encoding: OutEncoding::Utf8
            })),
            Err(ProfileError::Empty)
        ));
    }
}
