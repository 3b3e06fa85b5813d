//! From verified claims to an [`Identity`]: which claim is which field,
//! and the value rules.

use serde_json::Value;

use super::{Claims, JwtError};
use crate::decode::{Decoding, decode_value};
use crate::identity::Identity;

/// Which claim each identity field is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
// Alike identity.rs Identity, dialect.rs CustomDialect: a claim name per identity field.
pub struct ClaimMapping {
    /// The stable subject (usually `sub`).
    pub subject: String,
    /// Candidates for the username, first present (and non-empty) wins;
    /// with none, the email, then the subject.
    pub username: Vec<String>,
    /// The email address.
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The given name.
    pub given_name: Option<String>,
    /// The family name.
    pub family_name: Option<String>,
    /// The groups: a string (one group) or an array of strings.
    pub groups: Option<String>,
}

impl ClaimMapping {
    pub(super) fn of(
        username: &[&str],
        email: Option<&str>,
        display_name: Option<&str>,
        given_name: Option<&str>,
        family_name: Option<&str>,
        groups: Option<&str>,
    ) -> Self {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Self {
            subject: "sub".to_owned(),
            username: username.iter().map(|s| (*s).to_owned()).collect(),
            email: own(email),
            display_name: own(display_name),
            given_name: own(given_name),
            family_name: own(family_name),
            groups: own(groups),
        }
    }
}

/// How an identity value is read from a string claim.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spacing {
    /// Keys (subject, username, email): surrounding whitespace is refused,
    /// since trimming would make ` admin` and `admin` one person.
    Exact,
    /// Descriptive names: trimmed, as header values are.
    Trimmed,
}

/// A string claim as an identity value: `None` if absent, `null` or empty.
fn value_of(
    claims: &Claims,
    claim: &str,
    max: usize,
    spacing: Spacing,
) -> Result<Option<String>, JwtError> {
    let Some(v) = claims.present(claim) else {
        return Ok(None);
    };
    let Value::String(raw) = v else {
        return Err(JwtError::BadClaim {
            claim: claim.to_owned(),
            reason: "is not a string",
        });
    };
    let value = decode_value(raw.as_bytes(), Decoding::default(), max).map_err(|reason| {
        JwtError::BadValue {
            claim: claim.to_owned(),
            reason,
        }
    })?;
    if spacing == Spacing::Exact && value != *raw {
        return Err(JwtError::BadClaim {
            claim: claim.to_owned(),
            reason: "has leading or trailing whitespace",
        });
    }
    Ok(Some(value).filter(|v| !v.is_empty()))
}

/// Builds the [`Identity`] vouched for by `source` from verified claims.
///
/// Every value follows the identity-header rules ([`crate::decode`]): valid
/// UTF-8 (JSON strings always are), no control characters, at most
/// `max_value_bytes`; nothing is decoded further (a `{base64}` or `=?`
/// value stays literal). Subject, username, email and group names must
/// not have surrounding whitespace; display, given and family names are
/// trimmed. Empty strings and `null` count as absent.
///
/// The username is the first present `username` claim, else the email,
/// else the subject. Groups (a string, or an array of strings) are
/// de-duplicated, must not contain `,` `;` or `|` (they are re-joined for
/// apps with any of those), and together (joined by one separator) must fit
/// in `max_groups_bytes`.
pub fn identity_from_claims(
    claims: &Claims,
    mapping: &ClaimMapping,
    source: &str,
    max_value_bytes: usize,
    max_groups_bytes: usize,
) -> Result<Identity, JwtError> {
    let subject = value_of(claims, &mapping.subject, max_value_bytes, Spacing::Exact)?
        .ok_or(JwtError::MissingSubject)?;
    let mut username = None;
    for claim in &mapping.username {
        username = value_of(claims, claim, max_value_bytes, Spacing::Exact)?;
        if username.is_some() {
            break;
        }
    }
    let optional = |claim: &Option<String>, spacing| match claim {
        Some(c) => value_of(claims, c, max_value_bytes, spacing),
        None => Ok(None),
    };
    let email = optional(&mapping.email, Spacing::Exact)?;
    let display_name = optional(&mapping.display_name, Spacing::Trimmed)?;
    let given_name = optional(&mapping.given_name, Spacing::Trimmed)?;
    let family_name = optional(&mapping.family_name, Spacing::Trimmed)?;
    let groups = match &mapping.groups {
        Some(claim) => groups_of(claims, claim, max_groups_bytes)?,
        None => Vec::new(),
    };
    let username = username
        .or_else(|| email.clone())
        .unwrap_or_else(|| subject.clone());
    Ok(Identity {
        source: source.to_owned(),
        subject,
        username,
        email,
        display_name,
        given_name,
        family_name,
        groups,
        ..Identity::default()
    })
}

fn groups_of(
    claims: &Claims,
    claim: &str,
    max_groups_bytes: usize,
) -> Result<Vec<String>, JwtError> {
    let names: Vec<&str> = match claims.present(claim) {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| JwtError::BadClaim {
                claim: claim.to_owned(),
                reason: "is not a string or an array of strings",
            })?,
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: claim.to_owned(),
                reason: "is not a string or an array of strings",
            });
        }
    };
    let bad_groups = |reason| JwtError::BadGroups {
        claim: claim.to_owned(),
        reason,
    };
    let mut groups: Vec<String> = Vec::new();
    let mut total = 0usize;
    for name in names {
        if name.is_empty() {
            continue;
        }
        let value = decode_value(name.as_bytes(), Decoding::default(), max_groups_bytes).map_err(
            |reason| JwtError::BadValue {
                claim: claim.to_owned(),
                reason,
            },
        )?;
        if value != name {
            return Err(bad_groups(
                "a group name has leading or trailing whitespace",
            ));
        }
        if value.contains([',', ';', '|']) {
            return Err(bad_groups(
                "a group name contains a list separator (',', ';' or '|')",
            ));
        }
        if groups.contains(&value) {
            continue;
        }
        total += value.len() + usize::from(!groups.is_empty());
        if total > max_groups_bytes {
            return Err(bad_groups("the groups are longer than the bound together"));
        }
        groups.push(value);
    }
    Ok(groups)
}
