//! The records the store keeps, and the checked conversions between them
//! and database columns.

use std::fmt;
use std::str::FromStr;

use crate::StoreError;

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// May sign in.
    Active,
    /// Created, waiting for an admin's approval.
    Pending,
    /// Refused at sign-in; its sessions should be revoked with it.
    Disabled,
}

impl AccountStatus {
    /// The stored text: `active`, `pending` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the stored text; the error is the offending text.
impl FromStr for AccountStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "pending" => Ok(Self::Pending),
            "disabled" => Ok(Self::Disabled),
            other => Err(other.to_owned()),
        }
    }
}

/// A person known to vestibule, with the attributes their identity source
/// last sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable id, never reused.
    pub id: i64,
    /// Login name as the source sent it. Not unique, never a key.
    pub username: String,
    /// Email as the source sent it. Not unique, never a key.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Group names, in the order the source sent them.
    pub groups: Vec<String>,
    /// Organisation.
    pub org: Option<String>,
    /// Whether the account may sign in.
    pub status: AccountStatus,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change of attributes or status.
    pub updated_at: i64,
    /// Unix ms of the last sign-in or request seen.
    pub last_seen_at: i64,
}

/// What identifies a person: the identity source's name (e.g. `headers`)
/// and the subject that source vouches for. The only login key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey {
    /// The identity source's configured name.
    pub source: String,
    /// The stable subject within that source.
    pub subject: String,
}

impl IdentityKey {
    /// A key from its two parts.
    pub fn new(source: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            subject: subject.into(),
        }
    }
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.subject)
    }
}

/// An account to create, with its first identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The identity linked to the new account.
    pub key: IdentityKey,
    /// Login name.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// Organisation.
    pub org: Option<String>,
    /// Initial status.
    pub status: AccountStatus,
    /// Unix ms; becomes `created_at`, `updated_at` and `last_seen_at`.
    pub now: i64,
}

/// The attributes an identity source sends at each sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// Login name.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// Organisation.
    pub org: Option<String>,
}

/// A signed-in browser (or client) session. Only digests are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id the client holds.
    pub id_hash: [u8; 32],
    /// The account signed in.
    pub account_id: i64,
    /// The identity source the session was opened with.
    pub source: String,
    /// The subject the session was opened with.
    pub subject: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_seen_at: i64,
    /// Unix ms; the session is valid while `now < expires_at`.
    pub expires_at: i64,
    /// SHA-256 of the session's CSRF token.
    pub csrf_hash: [u8; 32],
}

impl Session {
    /// `now < expires_at`.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix ms.
    pub at: i64,
    /// Who acted: an account's identity, `cli`, `system`…
    pub actor: String,
    /// What was done, e.g. `account.disable`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// The client's address, when there was a client.
    pub client_ip: Option<String>,
    /// `ok`, `denied`, `error`…
    pub outcome: String,
    /// Free text.
    pub detail: String,
}

/// Which audit entries to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries with `at >= since`.
    pub since: Option<i64>,
    /// Only entries with exactly this action.
    pub action: Option<String>,
    /// Only entries with exactly this subject.
    pub subject: Option<String>,
    /// At most this many entries.
    pub limit: u32,
}

/// What changed, for dropping cache entries. Published by the calls that
/// revoke or change something (see [`crate::Store`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Anything cached about this account (attributes, status, identities,
    /// its sessions) is stale.
    Account(i64),
    /// This session (by id digest) was revoked.
    Session([u8; 32]),
    /// Every session of this account was revoked.
    AllSessionsOf(i64),
    /// Changes may have been missed (the PostgreSQL listener reconnected):
    /// drop the whole cache.
    Resync,
}

impl Change {
    /// `(kind, key)` as written to the feed.
    pub(crate) fn encode(&self) -> (&'static str, String) {
        match self {
            Self::Account(id) => ("account", id.to_string()),
            Self::Session(hash) => ("session", hex(hash)),
            Self::AllSessionsOf(id) => ("sessions_of", id.to_string()),
            Self::Resync => ("resync", String::new()),
        }
    }

    /// The inverse of [`Change::encode`]. A kind this version does not
    /// know (a newer vestibule wrote it) becomes [`Change::Resync`]; a
    /// malformed key is an error.
    pub(crate) fn decode(kind: &str, key: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt(format!("change {kind:?} has a malformed key {key:?}"));
        match kind {
            "account" => key.parse().map(Self::Account).map_err(|_| bad()),
            "session" => unhex32(key).map(Self::Session).ok_or_else(bad),
            "sessions_of" => key.parse().map(Self::AllSessionsOf).map_err(|_| bad()),
            _ => Ok(Self::Resync),
        }
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// 64 hex digits to 32 bytes.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// A stored digest: exactly 32 bytes, or the row is corrupt.
pub(crate) fn decode_hash(what: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    let len = bytes.len();
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what} is {len} bytes, not a 32-byte digest")))
}

/// A stored status.
pub(crate) fn decode_status(account: i64, text: &str) -> Result<AccountStatus, StoreError> {
    text.parse().map_err(|bad: String| {
        StoreError::Corrupt(format!("account {account} has an unknown status {bad:?}"))
    })
}

/// Stored groups: a JSON array of strings.
pub(crate) fn decode_groups(account: i64, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Corrupt(format!(
            "account {account} has groups that are not a JSON array of strings ({e})"
        ))
    })
}

/// Groups as stored.
pub(crate) fn encode_groups(groups: &[String]) -> String {
    // Serialising a slice of strings cannot fail.
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_rejects_unknown() {
        for s in [
            AccountStatus::Active,
            AccountStatus::Pending,
            AccountStatus::Disabled,
        ] {
            assert_eq!(decode_status(1, s.as_str()), Ok(s));
        }
        assert_eq!(
            decode_status(7, "Active"),
            Err(StoreError::Corrupt(
                "account 7 has an unknown status \"Active\"".into()
            ))
        );
    }

    #[test]
    fn hash_must_be_32_bytes() {
        assert_eq!(decode_hash("x", vec![9; 32]), Ok([9; 32]));
        assert_eq!(
            decode_hash("session id_hash", vec![1; 31]),
            Err(StoreError::Corrupt(
                "session id_hash is 31 bytes, not a 32-byte digest".into()
            ))
        );
        assert!(matches!(
            decode_hash("x", vec![]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn groups_must_be_a_json_array_of_strings() {
        let groups = vec!["admins".to_owned(), "a \"quoted\", comma".to_owned()];
        assert_eq!(decode_groups(1, &encode_groups(&groups)), Ok(groups));
        assert_eq!(decode_groups(1, "[]"), Ok(vec![]));
        for bad in ["", "admins,users", "[1,2]", "{\"a\":1}", "[\"a\""] {
            let err = decode_groups(4, bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(m) if m.starts_with("account 4 has groups")),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn changes_round_trip() {
        for c in [
            Change::Account(42),
            Change::Session([0xab; 32]),
            Change::AllSessionsOf(-1),
            Change::Resync,
        ] {
            let (kind, key) = c.encode();
            assert_eq!(Change::decode(kind, &key), Ok(c));
        }
        assert_eq!(Change::decode("from-the-future", "x"), Ok(Change::Resync));
        assert!(matches!(
            Change::decode("account", "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            Change::decode("session", &"g".repeat(64)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            Change::decode("session", "abcd"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 8) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32(&hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(unhex32("+1"), None);
    }
}
