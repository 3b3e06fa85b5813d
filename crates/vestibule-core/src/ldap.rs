//! The directory entry of a provisioned account, computed without I/O.
//!
//! vestibule writes the accounts it provisions to an LDAP directory when the
//! operator asks for it (`[accounts.ldap]`). Everything here is a pure
//! function of the account and the configured [`Layout`]: the DN, the object
//! classes and attributes of a new entry, the modifications that bring an
//! existing entry up to date, the organisation entries (geOrchestra) and the
//! role groups the account belongs to. The binary does the network part.
//!
//! Values that come from the SSO front (user names, organisation names,
//! group names) are untrusted. They reach a DN only through
//! [`escape_dn_value`] (RFC 4514) and a search filter only through
//! [`escape_filter_value`] (RFC 4515). Roles are never taken from the front
//! as they are: [`RoleMap`] keeps only the roles the operator mapped.

use std::collections::BTreeSet;
use std::fmt;

use crate::identity::Identity;

/// Longest user name written as a `uid` (bytes, before escaping).
pub const MAX_UID_LEN: usize = 255;

/// Escapes `value` for use as an attribute value in a DN's string form.
///
/// RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>` and `\` are escaped with a
/// backslash anywhere, a space or `#` at the start and a space at the end
/// likewise, and NUL as `\00`. `=` is escaped too (§3 allows it), and every
/// other control character as a hex pair, so the result never carries a
/// byte a log line or a careless DN parser could misread.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(ch);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_control() && c.is_ascii() => {
                out.push_str(&format!("\\{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Why an attribute value in a DN's string form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnValueError {
    /// A special character that must be escaped appears bare (RFC 4514 §3).
    Unescaped(char),
    /// A backslash ends the value or is followed by something that is
    /// neither a special character nor two hex digits.
    BadEscape,
    /// The hex pairs do not decode to UTF-8.
    NotUtf8,
    /// A leading `#` (the BER hex form, which vestibule never writes) or
    /// a bare leading or trailing space.
    BadEdge,
}

impl fmt::Display for DnValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unescaped(c) => write!(f, "unescaped {c:?} in a DN value"),
            Self::BadEscape => f.write_str("malformed escape in a DN value"),
            Self::NotUtf8 => f.write_str("escaped bytes of a DN value are not UTF-8"),
            Self::BadEdge => f.write_str("a DN value starts with '#' or a space, or ends with one"),
        }
    }
}

impl std::error::Error for DnValueError {}

/// Reads an attribute value of a DN's string form back (RFC 4514 §3), the
/// inverse of [`escape_dn_value`]. Strict: anything RFC 4514 does not allow
/// bare is refused, and the `#` hex-BER form is not accepted.
pub fn unescape_dn_value(escaped: &str) -> Result<String, DnValueError> {
    if escaped.starts_with('#') || escaped.starts_with(' ') {
        return Err(DnValueError::BadEdge);
    }
    let bytes = escaped.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    // Whether the last character was a bare (unescaped) space.
    let mut bare_space = false;
    while i < bytes.len() {
        let b = bytes[i];
        bare_space = b == b' ';
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1).ok_or(DnValueError::BadEscape)?;
                if b"\"+,;<>\\ #=".contains(&next) {
                    out.push(next);
                    i += 2;
                } else {
                    let hi = hex_digit(next).ok_or(DnValueError::BadEscape)?;
                    let lo = bytes
                        .get(i + 2)
                        .and_then(|&c| hex_digit(c))
                        .ok_or(DnValueError::BadEscape)?;
                    out.push(hi << 4 | lo);
                    i += 3;
                }
            }
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'=' | 0 => {
                return Err(DnValueError::Unescaped(char::from(b)));
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    if bare_space {
        return Err(DnValueError::BadEdge);
    }
    String::from_utf8(out).map_err(|_| DnValueError::NotUtf8)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Escapes `value` for an assertion value in a search filter.
///
/// RFC 4515 §3: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`,
/// `\5c` and `\00`, so a value can never add a wildcard or a clause.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for ch in value.chars() {
        match ch {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Why a user name cannot become a `uid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidError {
    /// Empty, or only white space.
    Empty,
    /// Longer than [`MAX_UID_LEN`] bytes.
    TooLong,
    /// A control character, or white space at either end.
    BadCharacter,
}

impl fmt::Display for UidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the user name is empty"),
            Self::TooLong => write!(f, "the user name is longer than {MAX_UID_LEN} bytes"),
            Self::BadCharacter => {
                f.write_str("the user name has a control character or white space at either end")
            }
        }
    }
}

impl std::error::Error for UidError {}

/// The `uid` a user name is written as: lowercased, as geOrchestra's
/// account DAO does, so `Alice` and `alice` are one directory user.
pub fn normalize_uid(username: &str) -> Result<String, UidError> {
    if username.trim().is_empty() {
        return Err(UidError::Empty);
    }
    if username.chars().any(char::is_control) || username.trim() != username {
        return Err(UidError::BadCharacter);
    }
    let uid = username.to_lowercase();
    if uid.len() > MAX_UID_LEN {
        return Err(UidError::TooLong);
    }
    Ok(uid)
}

/// Directory roles from the account's groups, by the operator's mapping.
///
/// Nothing passes through unmapped: a group the mapping does not name
/// (a spoofed or misconfigured `ADMINISTRATOR` sent by the front) gives no
/// role, and is reported in [`MappedRoles::dropped`] for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    /// Roles every provisioned account has (geOrchestra: `USER`).
    always: Vec<String>,
    /// `(directory role, groups that grant it)`.
    rules: Vec<(String, Vec<String>)>,
}

/// What [`RoleMap::map`] made of a list of groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedRoles {
    /// Directory roles, sorted, without duplicates.
    pub roles: Vec<String>,
    /// Groups no rule names, in the order they came.
    pub dropped: Vec<String>,
}

impl RoleMap {
    /// A mapping with roles every account has, and rules.
    pub fn new(always: Vec<String>, rules: Vec<(String, Vec<String>)>) -> Self {
        Self { always, rules }
    }

    /// The roles `groups` grant. Group names compare exactly.
    pub fn map(&self, groups: &[String]) -> MappedRoles {
        let mut roles: BTreeSet<String> = self.always.iter().cloned().collect();
        let mut dropped = Vec::new();
        for g in groups {
            let mut used = false;
            for (role, granted_by) in &self.rules {
                if granted_by.iter().any(|x| x == g) {
                    roles.insert(role.clone());
                    used = true;
                }
            }
            if !used && !dropped.contains(g) {
                dropped.push(g.clone());
            }
        }
        MappedRoles {
            roles: roles.into_iter().collect(),
            dropped,
        }
    }

    /// The roles a rule names that `granted` (what [`RoleMap::map`] gave)
    /// does not hold: what `revoke_roles` removes at a sync. Never a role
    /// every account has, never a role no rule names (an admin's grant in
    /// the directory that vestibule knows nothing of). Sorted.
    pub fn not_granted(&self, granted: &[String]) -> Vec<String> {
        let out: BTreeSet<String> = self
            .rules
            .iter()
            .map(|(role, _)| role)
            .filter(|r| !granted.contains(r) && !self.always.contains(r))
            .cloned()
            .collect();
        out.into_iter().collect()
    }
}

/// A value of the account that an attribute can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The normalised user name ([`normalize_uid`]).
    Uid,
    /// "given family", or the display name when either is missing.
    CommonName,
    /// Family name (falls back to the display name, then the uid, outside
    /// the geOrchestra layout, which requires it).
    FamilyName,
    /// Given name.
    GivenName,
    /// Email.
    Mail,
    /// Display name.
    DisplayName,
    /// The source's stable subject, written only when the identity names
    /// its upstream provider (geOrchestra `oAuth2Uid`).
    ProviderSubject,
    /// The upstream provider's name (geOrchestra `oAuth2Provider`).
    Provider,
    /// A random UUID chosen when the entry is created, never changed
    /// (geOrchestra `georchestraObjectIdentifier`).
    ObjectId,
}

/// How accounts are laid out in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The base DN, e.g. `dc=georchestra,dc=org`.
    pub base_dn: String,
    /// Where active users live, relative to the base (`ou=users`).
    pub users_rdn: String,
    /// Where users waiting for approval live (`ou=pendingusers`).
    pub pending_rdn: String,
    /// The naming attribute of a user entry (`uid`).
    pub rdn_attribute: String,
    /// Object classes of a new user entry.
    pub object_classes: Vec<String>,
    /// Attribute name → the account value it carries.
    pub attributes: Vec<(String, Field)>,
    /// Role group DN, `{role}` and `{base}` replaced
    /// (`cn={role},ou=roles,{base}`).
    pub role_dn_template: String,
    /// The attribute of a role group that lists its members (`member`).
    pub member_attribute: String,
    /// geOrchestra's organisations (`ou=orgs`), or none.
    pub orgs_rdn: Option<String>,
    /// Whether given name, family name and email are required (geOrchestra
    /// refuses an account without them).
    pub require_names: bool,
}

impl Layout {
    /// geOrchestra's layout, as its gateway and console write it
    /// (`georchestra-ldap-account-management` 25.x).
    pub fn georchestra(base_dn: &str) -> Self {
        Self {
            base_dn: base_dn.to_owned(),
            users_rdn: "ou=users".into(),
            pending_rdn: "ou=pendingusers".into(),
            rdn_attribute: "uid".into(),
            object_classes: [
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "shadowAccount",
                "georchestraUser",
            ]
            .map(String::from)
            .to_vec(),
            attributes: person_attributes(&[
                ("georchestraObjectIdentifier", Field::ObjectId),
                ("oAuth2Provider", Field::Provider),
                ("oAuth2Uid", Field::ProviderSubject),
            ]),
            role_dn_template: "cn={role},ou=roles,{base}".into(),
            member_attribute: "member".into(),
            orgs_rdn: Some("ou=orgs".into()),
            require_names: true,
        }
    }

    /// A plain `inetOrgPerson` layout, for other LDAP-backed apps.
    pub fn inetorgperson(base_dn: &str) -> Self {
        Self {
            base_dn: base_dn.to_owned(),
            users_rdn: "ou=people".into(),
            pending_rdn: "ou=pending".into(),
            rdn_attribute: "uid".into(),
            object_classes: ["top", "person", "organizationalPerson", "inetOrgPerson"]
                .map(String::from)
                .to_vec(),
            attributes: person_attributes(&[("displayName", Field::DisplayName)]),
            role_dn_template: "cn={role},ou=groups,{base}".into(),
            member_attribute: "member".into(),
            orgs_rdn: None,
            require_names: false,
        }
    }

    /// The container of active (or pending) users.
    pub fn users_dn(&self, pending: bool) -> String {
        let rdn = if pending {
            &self.pending_rdn
        } else {
            &self.users_rdn
        };
        join_dn(rdn, &self.base_dn)
    }

    /// The DN of user `uid` (already normalised).
    pub fn user_dn(&self, uid: &str, pending: bool) -> String {
        format!(
            "{}={},{}",
            self.rdn_attribute,
            escape_dn_value(uid),
            self.users_dn(pending)
        )
    }

    /// The DN of role group `role`.
    pub fn role_dn(&self, role: &str) -> String {
        self.role_dn_template
            .replace("{role}", &escape_dn_value(role))
            .replace("{base}", &self.base_dn)
    }

    /// The attribute that names a field, if the layout writes it.
    pub fn attribute_for(&self, field: Field) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(_, f)| *f == field)
            .map(|(a, _)| a.as_str())
    }

    /// The entry of a new user.
    pub fn user_entry(&self, p: &Person, pending: bool) -> Result<Entry, EntryError> {
        let mut attrs = vec![("objectClass".to_owned(), self.object_classes.clone())];
        for (name, field) in &self.attributes {
            if let Some(v) = self.value_of(p, *field)? {
                attrs.push((name.clone(), vec![v]));
            }
        }
        Ok(Entry {
            dn: self.user_dn(&p.uid, pending),
            attrs,
        })
    }

    /// The replacements that bring `current` (an existing entry's managed
    /// attributes) up to date with `p`. Nothing is deleted: a value the
    /// account no longer has stays in the directory. The naming attribute
    /// and the object identifier are never changed.
    pub fn sync_changes(
        &self,
        p: &Person,
        current: &[(String, Vec<String>)],
    ) -> Result<Vec<(String, Vec<String>)>, EntryError> {
        let mut changes = Vec::new();
        for (name, field) in &self.attributes {
            if matches!(field, Field::ObjectId) || name.eq_ignore_ascii_case(&self.rdn_attribute) {
                continue;
            }
            let Some(want) = self.value_of(p, *field)? else {
                continue;
            };
            let have = current
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
                .unwrap_or(&[]);
            if have != [want.as_str()] {
                changes.push((name.clone(), vec![want]));
            }
        }
        Ok(changes)
    }

    /// The two entries of a geOrchestra organisation, with `member_dn` as
    /// its first member. `None` when the layout has no organisations.
    pub fn org_entries(&self, org: &str, member_dn: &str, object_id: &str) -> Option<[Entry; 2]> {
        let orgs = join_dn(self.orgs_rdn.as_deref()?, &self.base_dn);
        let v = escape_dn_value(org);
        let ext_dn = format!("o={v},{orgs}");
        let group = Entry {
            dn: format!("cn={v},{orgs}"),
            attrs: vec![
                (
                    "objectClass".into(),
                    vec!["top".into(), "groupOfMembers".into()],
                ),
                ("cn".into(), vec![org.to_owned()]),
                ("o".into(), vec![org.to_owned()]),
                ("ou".into(), vec![org.to_owned()]),
                ("member".into(), vec![member_dn.to_owned()]),
                ("seeAlso".into(), vec![ext_dn.clone()]),
            ],
        };
        let ext = Entry {
            dn: ext_dn,
            attrs: vec![
                (
                    "objectClass".into(),
                    vec!["top".into(), "organization".into(), "georchestraOrg".into()],
                ),
                ("o".into(), vec![org.to_owned()]),
                ("businessCategory".into(), vec!["Other".into()]),
                (
                    "georchestraObjectIdentifier".into(),
                    vec![object_id.to_owned()],
                ),
            ],
        };
        Some([group, ext])
    }

    /// The DN of the group entry of organisation `org` (geOrchestra).
    pub fn org_group_dn(&self, org: &str) -> Option<String> {
        let orgs = join_dn(self.orgs_rdn.as_deref()?, &self.base_dn);
        Some(format!("cn={},{orgs}", escape_dn_value(org)))
    }

    fn value_of(&self, p: &Person, field: Field) -> Result<Option<String>, EntryError> {
        let need = |v: &Option<String>, what: &'static str| -> Result<Option<String>, EntryError> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(Some(s.to_owned())),
                _ if self.require_names => Err(EntryError::Missing(what)),
                _ => Ok(None),
            }
        };
        Ok(match field {
            Field::Uid => Some(p.uid.clone()),
            Field::GivenName => need(&p.given_name, "first name")?,
            Field::Mail => need(&p.mail, "email")?,
            Field::FamilyName => match need(&p.family_name, "last name")? {
                Some(s) => Some(s),
                None => Some(self.fallback_name(p)),
            },
            Field::CommonName => match (&p.given_name, &p.family_name) {
                (Some(g), Some(f)) if !g.trim().is_empty() && !f.trim().is_empty() => {
                    Some(format!("{} {}", g.trim(), f.trim()))
                }
                _ => Some(self.fallback_name(p)),
            },
            Field::DisplayName => Some(self.fallback_name(p)),
            Field::Provider => p.provider.clone(),
            Field::ProviderSubject => p.provider.as_ref().map(|_| p.subject.clone()),
            Field::ObjectId => Some(p.object_id.clone()),
        })
    }

    fn fallback_name(&self, p: &Person) -> String {
        match p.display_name.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => d.to_owned(),
            _ => p.uid.clone(),
        }
    }
}

/// `uid`, `cn`, `sn`, `givenName`, `mail` (what both layouts write), then
/// `more`.
fn person_attributes(more: &[(&str, Field)]) -> Vec<(String, Field)> {
    [
        ("uid", Field::Uid),
        ("cn", Field::CommonName),
        ("sn", Field::FamilyName),
        ("givenName", Field::GivenName),
        ("mail", Field::Mail),
    ]
    .iter()
    .chain(more)
    .map(|(a, f)| ((*a).to_owned(), *f))
    .collect()
}

fn join_dn(rdn: &str, base: &str) -> String {
    if rdn.is_empty() {
        base.to_owned()
    } else {
        format!("{rdn},{base}")
    }
}

/// The account values a directory entry is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Normalised ([`normalize_uid`]).
    pub uid: String,
    /// The source's stable subject.
    pub subject: String,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Email.
    pub mail: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Upstream provider (geOrchestra `preauth-provider`).
    pub provider: Option<String>,
    /// The entry's object identifier (a UUID the caller chose).
    pub object_id: String,
}

impl Person {
    /// The values of `id`; `object_id` is the UUID a new entry gets.
    pub fn of(id: &Identity, object_id: String) -> Result<Self, UidError> {
        Ok(Self {
            uid: normalize_uid(&id.username)?,
            subject: id.subject.clone(),
            given_name: id.given_name.clone(),
            family_name: id.family_name.clone(),
            mail: id.email.clone(),
            // The name a person is shown by: the display name, else
            // "given family", else the user name.
            display_name: Some(id.name_for_display()),
            provider: id.provider.clone(),
            object_id,
        })
    }
}

/// A directory entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its DN.
    pub dn: String,
    /// Attribute → values, `objectClass` first.
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    /// The values of `name` (case-insensitive), if any.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Why no entry can be computed for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// The layout requires a value the front did not send.
    Missing(&'static str),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(what) => write!(
                f,
                "the SSO front sent no {what}, which the directory layout requires"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alice() -> Person {
        Person {
            uid: "alice".into(),
            subject: "sub-1".into(),
            given_name: Some("Alice".into()),
            family_name: Some("Liddell".into()),
            mail: Some("alice@example.org".into()),
            display_name: Some("Alice L.".into()),
            provider: Some("myidp".into()),
            object_id: "7f1d8f8e-0c1c-4d8e-9b7e-1a2b3c4d5e6f".into(),
        }
    }

    #[test]
    fn escapes_rfc4514_examples() {
        // RFC 4514 §4 examples, as values.
        assert_eq!(
            escape_dn_value("Sue, Grabbit and Runn"),
            "Sue\\, Grabbit and Runn"
        );
        assert_eq!(escape_dn_value("Before\rAfter"), "Before\\0dAfter");
        assert_eq!(escape_dn_value(" lead#trail "), "\\ lead#trail\\ ");
        assert_eq!(escape_dn_value("#x"), "\\#x");
        assert_eq!(
            escape_dn_value("a+b=c;<>\"\\"),
            "a\\+b\\=c\\;\\<\\>\\\"\\\\"
        );
        assert_eq!(escape_dn_value("Lučić"), "Lučić");
        assert_eq!(unescape_dn_value("Lu\\c4\\8di\\c4\\87").unwrap(), "Lučić");
        assert_eq!(unescape_dn_value("a,b"), Err(DnValueError::Unescaped(',')));
        assert_eq!(unescape_dn_value("#04"), Err(DnValueError::BadEdge));
        assert_eq!(unescape_dn_value("ab\\"), Err(DnValueError::BadEscape));
        assert_eq!(unescape_dn_value("\\ff"), Err(DnValueError::NotUtf8));
    }

    #[test]
    fn filter_values_cannot_add_clauses() {
        assert_eq!(escape_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b\0"), "a\\5cb\\00");
    }

    #[test]
    fn uids_are_lowercased_and_checked() {
        assert_eq!(normalize_uid("PMauduit").unwrap(), "pmauduit");
        assert_eq!(normalize_uid("Ölaf").unwrap(), "ölaf");
        assert_eq!(normalize_uid(" "), Err(UidError::Empty));
        assert_eq!(normalize_uid(" a"), Err(UidError::BadCharacter));
        assert_eq!(normalize_uid("a\u{7}"), Err(UidError::BadCharacter));
        assert_eq!(normalize_uid(&"a".repeat(256)), Err(UidError::TooLong));
    }

    #[test]
    fn georchestra_user_entry_is_what_the_console_writes() {
        let l = Layout::georchestra("dc=georchestra,dc=org");
        let e = l.user_entry(&alice(), false).unwrap();
        assert_eq!(e.dn, "uid=alice,ou=users,dc=georchestra,dc=org");
        assert_eq!(
            e.get("objectClass").unwrap(),
            [
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "shadowAccount",
                "georchestraUser"
            ]
        );
        assert_eq!(e.get("cn").unwrap(), ["Alice Liddell"]);
        assert_eq!(e.get("sn").unwrap(), ["Liddell"]);
        assert_eq!(e.get("oAuth2Provider").unwrap(), ["myidp"]);
        assert_eq!(e.get("oAuth2Uid").unwrap(), ["sub-1"]);
        assert_eq!(e.get("displayName"), None);
        let pending = l.user_entry(&alice(), true).unwrap();
        assert_eq!(
            pending.dn,
            "uid=alice,ou=pendingusers,dc=georchestra,dc=org"
        );
        // No provider: no oAuth2 attributes (the subject alone is not an
        // OIDC identity).
        let mut p = alice();
        p.provider = None;
        let e = l.user_entry(&p, false).unwrap();
        assert_eq!(e.get("oAuth2Uid"), None);
        p.mail = None;
        assert_eq!(l.user_entry(&p, false), Err(EntryError::Missing("email")));
    }

    #[test]
    fn generic_entry_falls_back_to_the_display_name() {
        let l = Layout::inetorgperson("dc=example,dc=org");
        let mut p = alice();
        p.family_name = None;
        p.mail = None;
        let e = l.user_entry(&p, false).unwrap();
        assert_eq!(e.dn, "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(e.get("sn").unwrap(), ["Alice L."]);
        assert_eq!(e.get("cn").unwrap(), ["Alice L."]);
        assert_eq!(e.get("mail"), None);
        assert_eq!(
            l.role_dn("app-users"),
            "cn=app-users,ou=groups,dc=example,dc=org"
        );
    }

    #[test]
    fn sync_replaces_what_changed_and_deletes_nothing() {
        let l = Layout::georchestra("dc=g");
        let current = vec![
            ("uid".into(), vec!["alice".into()]),
            ("cn".into(), vec!["Alice Liddell".into()]),
            ("sn".into(), vec!["Liddell".into()]),
            ("givenName".into(), vec!["Alice".into()]),
            ("mail".into(), vec!["old@example.org".into()]),
            ("georchestraObjectIdentifier".into(), vec!["other".into()]),
            ("oAuth2Provider".into(), vec!["myidp".into()]),
            ("oAuth2Uid".into(), vec!["sub-1".into()]),
        ];
        let changes = l.sync_changes(&alice(), &current).unwrap();
        assert_eq!(
            changes,
            vec![("mail".to_owned(), vec!["alice@example.org".to_owned()])]
        );
        let mut p = alice();
        p.provider = None;
        p.uid = "renamed".into();
        let changes = l.sync_changes(&p, &current).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
    }

    #[test]
    fn unmapped_roles_are_dropped() {
        let m = RoleMap::new(
            vec!["USER".into()],
            vec![(
                "SUPERUSER".into(),
                vec!["ROLE_SUPERUSER".into(), "admins".into()],
            )],
        );
        let got = m.map(&[
            "ROLE_ADMINISTRATOR".into(),
            "admins".into(),
            "ROLE_SUPERUSER".into(),
        ]);
        assert_eq!(got.roles, ["SUPERUSER", "USER"]);
        assert_eq!(got.dropped, ["ROLE_ADMINISTRATOR"]);
        assert_eq!(m.map(&[]).roles, ["USER"]);
        assert!(m.not_granted(&got.roles).is_empty());
        assert_eq!(m.not_granted(&m.map(&[]).roles), ["SUPERUSER"]);
    }

    #[test]
    fn org_entries_link_each_other() {
        let l = Layout::georchestra("dc=g");
        let [group, ext] = l
            .org_entries("Ville, de Paris", "uid=a,ou=users,dc=g", "id")
            .unwrap();
        assert_eq!(group.dn, "cn=Ville\\, de Paris,ou=orgs,dc=g");
        assert_eq!(ext.dn, "o=Ville\\, de Paris,ou=orgs,dc=g");
        assert_eq!(group.get("seeAlso").unwrap(), std::slice::from_ref(&ext.dn));
        assert_eq!(group.get("member").unwrap(), ["uid=a,ou=users,dc=g"]);
        assert!(
            Layout::inetorgperson("dc=g")
                .org_entries("x", "y", "z")
                .is_none()
        );
    }

    proptest! {
        #[test]
        fn dn_escaping_round_trips(v in any::<String>()) {
            let escaped = escape_dn_value(&v);
            prop_assert_eq!(unescape_dn_value(&escaped), Ok(v.clone()));
            // The escaped form never ends an RDN or starts another one.
            let mut chars = escaped.chars();
            while let Some(c) = chars.next() {
                if c == '\\' { chars.next(); continue; }
                prop_assert!(!",+;=<>\"\0".contains(c), "bare {:?} in {:?}", c, escaped);
                prop_assert!(!c.is_ascii_control(), "control in {:?}", escaped);
            }
        }

        #[test]
        fn dn_unescaping_is_consistent(s in "[a-z\\\\,#= 0-9a-f+\"]{0,12}") {
            if let Ok(v) = unescape_dn_value(&s) {
                prop_assert_eq!(unescape_dn_value(&escape_dn_value(&v)), Ok(v));
            }
        }

        #[test]
        fn filter_escaping_leaves_no_metacharacter(v in any::<String>()) {
            let e = escape_filter_value(&v);
            prop_assert!(!e.contains(['*', '(', ')', '\0']));
            // Every backslash starts one of the five escapes.
            for (i, _) in e.match_indices('\\') {
                let esc = &e[i..(i + 3).min(e.len())];
                prop_assert!(["\\2a", "\\28", "\\29", "\\5c", "\\00"].contains(&esc), "{}", e);
            }
        }

        #[test]
        fn uids_are_stable_under_normalisation(u in "\\PC{1,40}") {
            if let Ok(uid) = normalize_uid(&u) {
                prop_assert_eq!(normalize_uid(&uid), Ok(uid.clone()));
                prop_assert_eq!(uid.to_lowercase(), uid);
            }
        }

        #[test]
        fn role_mapping_only_grants_configured_roles(groups in proptest::collection::vec("[A-Z_]{1,12}", 0..8)) {
            let m = RoleMap::new(vec!["USER".into()], vec![("SUPERUSER".into(), vec!["ROLE_SUPERUSER".into()])]);
            let got = m.map(&groups);
            for r in &got.roles {
                prop_assert!(r == "USER" || r == "SUPERUSER");
            }
            prop_assert_eq!(got.roles.contains(&"SUPERUSER".to_owned()), groups.contains(&"ROLE_SUPERUSER".to_owned()));
            for g in &groups {
                prop_assert!(g == "ROLE_SUPERUSER" || got.dropped.contains(g));
            }
        }

        #[test]
        fn revocation_takes_only_mapped_roles_not_granted(groups in proptest::collection::vec("[A-Z_]{1,12}", 0..8)) {
            let m = RoleMap::new(
                vec!["USER".into()],
                vec![
                    ("SUPERUSER".into(), vec!["ROLE_SUPERUSER".into()]),
                    ("USER".into(), vec!["ROLE_USER".into()]),
                    ("EDITOR".into(), vec!["ROLE_EDITOR".into(), "ROLE_SUPERUSER".into()]),
                ],
            );
            let granted = m.map(&groups).roles;
            let gone = m.not_granted(&granted);
            for r in &gone {
                prop_assert!(!granted.contains(r));
                prop_assert!(r == "SUPERUSER" || r == "EDITOR", "{}", r);
            }
            // Mapped roles are split exactly between granted and revoked.
            for r in ["SUPERUSER", "EDITOR"] {
                prop_assert!(granted.iter().any(|g| g == r) != gone.iter().any(|g| g == r));
            }
        }
    }
}
