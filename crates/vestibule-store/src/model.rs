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

// Alike `PairingState` and the other stored enums below: each has its own
// stored spellings (`as_str`, `Display`, `FromStr`), which a shared macro
// would only obscure.
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

/// The LDAP entry an account is written to (`[accounts.ldap]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The account.
    pub account_id: i64,
    /// The entry's DN, as vestibule wrote it (or means to write it).
    pub dn: String,
    /// The UUID the entry carries, which tells it from someone else's.
    pub object_id: String,
    /// Whether every directory write for the account is done. `false`
    /// after a crash or a failure between the store and the directory:
    /// the next login reconciles.
    pub written: bool,
    /// Unix ms.
    pub updated_at: i64,
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
    /// The browser's `User-Agent` when the session was opened (the caller
    /// keeps it short and printable); `None` if it sent none.
    pub user_agent: Option<String>,
    /// The client address the session was opened from.
    pub client_ip: Option<String>,
}

impl Session {
    /// `now < expires_at`.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// One page of accounts found by [`crate::Store::search_accounts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSearch {
    /// The accounts on this page, each with the identity sources linked to
    /// it (sorted, without repeats).
    pub accounts: Vec<(Account, Vec<String>)>,
    /// How many accounts match, on every page together.
    pub total: u64,
}

/// `query` as a `LIKE` pattern matching it anywhere, with `\`, `%` and `_`
/// escaped (`ESCAPE '\'`), ASCII-lowercased to compare with `lower(…)`.
pub(crate) fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c.to_ascii_lowercase());
    }
    p.push('%');
    p
}

/// A credential held by one device (an API client, a phone…), owned by an
/// account. Only the SHA-256 digest of its secret is stored, and it is
/// deliberately not part of this record: look devices up by it with
/// [`crate::Store::device_by_secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Stable id, never reused.
    pub id: i64,
    /// The owning account.
    pub account_id: i64,
    /// A name for people, e.g. `alice's phone`.
    pub name: String,
    /// How the device presents its secret; free text chosen by the caller
    /// (`basic`, `bearer`, `header`, `paired`…).
    pub kind: String,
    /// The routes this device may use, by name.
    pub routes: Vec<String>,
    /// The user name a Basic client must send with its secret.
    pub basic_user: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; `None`: never expires. Valid while `now < expires_at`.
    pub expires_at: Option<i64>,
    /// Unix ms of the last request seen ([`crate::Store::touch_device`]).
    pub last_used_at: Option<i64>,
    /// The client address of the last request seen.
    pub last_used_ip: Option<String>,
}

/// A device with what verifying it needs of its owner, as one lookup
/// returns it ([`crate::Store::device_with_owner`]): the credential cache's
/// miss is one indexed query, not three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWithOwner {
    /// The device, as [`crate::Store::device_by_secret`] returns it.
    pub device: Device,
    /// Its owning account.
    pub owner: Account,
    /// The owner's first identity in (source, subject) order, as
    /// [`crate::Store::identities`] lists them; `None` for an account
    /// without one.
    pub key: Option<IdentityKey>,
}

impl Device {
    /// Whether the device has not expired: `expires_at` is `None` or
    /// `now < expires_at`.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// A device to create. `Debug` does not show `secret_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The owning account.
    pub account_id: i64,
    /// A name for people.
    pub name: String,
    /// How the device presents its secret (free text).
    pub kind: String,
    /// The routes this device may use, by name.
    pub routes: Vec<String>,
    /// SHA-256 of the secret the device holds, computed by the caller.
    pub secret_hash: [u8; 32],
    /// The user name a Basic client must send with its secret.
    pub basic_user: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; `None`: never expires.
    pub expires_at: Option<i64>,
}

/// A digest is not the secret, but it is what a lookup is keyed on: it
/// stays out of logs.
impl fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDevice")
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("routes", &self.routes)
            .field("secret_hash", &format_args!("<redacted>"))
            .field("basic_user", &self.basic_user)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where a pairing is in its life: `Open` → `Claimed` (a device redeemed
/// the code) → `Confirmed` or `Refused` (by the owner) → `Issued` (the
/// device received its credential, once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairingState {
    /// Created; the code has not been redeemed yet.
    Open,
    /// A device redeemed the code and waits for the owner's decision.
    Claimed,
    /// The owner accepted the device; its next poll gets the credential.
    Confirmed,
    /// The owner refused the device.
    Refused,
    /// The device received its credential.
    Issued,
}

impl PairingState {
    /// The stored text: `open`, `claimed`, `confirmed`, `refused` or
    /// `issued`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Confirmed => "confirmed",
            Self::Refused => "refused",
            Self::Issued => "issued",
        }
    }
}

impl fmt::Display for PairingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the stored text; the error is the offending text.
impl FromStr for PairingState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "claimed" => Ok(Self::Claimed),
            "confirmed" => Ok(Self::Confirmed),
            "refused" => Ok(Self::Refused),
            "issued" => Ok(Self::Issued),
            other => Err(other.to_owned()),
        }
    }
}

/// A pairing: a single-use code with which a device asks to become a
/// credential of an account. Only digests of the code and of the device's
/// claim secret are stored, and neither is part of this record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// Stable id, never reused.
    pub id: i64,
    /// The account the device will belong to.
    pub account_id: i64,
    /// The routes the device will get.
    pub routes: Vec<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; every step must happen while `now < expires_at`.
    pub expires_at: i64,
    /// Where the pairing is.
    pub state: PairingState,
    /// The name the device gave when it claimed the code.
    pub device_name: Option<String>,
    /// Unix ms of the claim.
    pub claimed_at: Option<i64>,
    /// The client address the claim came from, as the gateway saw it.
    pub claimed_ip: Option<String>,
    /// The device issued, once `Issued` (`None` again if it was revoked).
    pub device_id: Option<i64>,
}

/// What a device polling with its claim secret learns
/// ([`crate::Store::redeem_pairing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingPoll {
    /// The owner has not decided yet: poll again.
    Pending,
    /// The owner refused the device.
    Refused,
    /// Unknown claim, expired, or already issued: stop polling.
    Expired,
    /// The owner confirmed: this is the new device, returned exactly once.
    Issued(Device),
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

impl AuditEntry {
    /// An entry with outcome `ok`, no client address and no detail; the
    /// `with_*` methods set those. The one way audit entries are built, so
    /// every writer fills the same fields the same way.
    pub fn new(
        at: i64,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            client_ip: None,
            outcome: "ok".into(),
            detail: String::new(),
        }
    }

    /// The client's address (an `IpAddr`, or its text), when there was a
    /// client.
    #[must_use]
    pub fn with_client_ip(mut self, ip: Option<impl ToString>) -> Self {
        self.client_ip = ip.map(|i| i.to_string());
        self
    }

    /// The outcome, instead of `ok`.
    #[must_use]
    pub fn with_outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    /// Free text.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
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
    /// its sessions, its devices and pairings) is stale.
    Account(i64),
    /// This session (by id digest) was revoked.
    Session([u8; 32]),
    /// Every session of this account was revoked.
    AllSessionsOf(i64),
    /// This device (by id) was revoked.
    Device(i64),
    /// This OIDC provider grant (by id) was revoked or lost tokens: every
    /// access token issued from it may be gone.
    Grant(i64),
    /// This OIDC provider access token (by its SHA-256) was revoked.
    AccessToken([u8; 32]),
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
            Self::Device(id) => ("device", id.to_string()),
            Self::Grant(id) => ("grant", id.to_string()),
            Self::AccessToken(hash) => ("access_token", hex(hash)),
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
            "device" => key.parse().map(Self::Device).map_err(|_| bad()),
            "grant" => key.parse().map(Self::Grant).map_err(|_| bad()),
            "access_token" => unhex32(key).map(Self::AccessToken).ok_or_else(bad),
            _ => Ok(Self::Resync),
        }
    }
}

/// How a signing key's private half is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateKeyFormat {
    /// PKCS#8 DER as is: no key-encryption key was configured.
    Plain,
    /// PKCS#8 DER sealed with AES-256-GCM under the key-encryption key: a
    /// 12-byte nonce, then the ciphertext and its 16-byte tag. The key's
    /// kid is the additional authenticated data, so a sealed key moved to
    /// another row does not open.
    Aes256Gcm,
}

impl PrivateKeyFormat {
    /// The stored text: `plain` or `aes256gcm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Aes256Gcm => "aes256gcm",
        }
    }
}

/// A key vestibule signs identity assertions with, as stored. The store
/// neither encrypts nor interprets the key: the caller seals
/// `private_key` and reads `public_jwk`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// The key id (an RFC 7638 thumbprint): the primary key.
    pub kid: String,
    /// The JWS `alg` the key signs with (`ES256`, `EdDSA`, `RS256`).
    pub alg: String,
    /// How `private_key` is stored.
    pub private_format: PrivateKeyFormat,
    /// The private key, as `private_format` says.
    pub private_key: Vec<u8>,
    /// The public key as a JWK (JSON text), as published.
    pub public_jwk: String,
    /// Unix ms; the key is published from then on.
    pub created_at: i64,
    /// Unix ms from which the key signs: later than `created_at`, so that
    /// caches of the published set hold it before any token names it.
    pub signs_from: i64,
    /// Unix ms when the key stopped signing; `None` while it may sign.
    pub retired_at: Option<i64>,
    /// Unix ms until which a retired key stays published (the expiry of
    /// the last token it signed); `None` while it may sign.
    pub verify_until: Option<i64>,
}

/// The private key is never shown.
impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_format", &self.private_format)
            .field(
                "private_key",
                &format_args!("<{} bytes>", self.private_key.len()),
            )
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retired_at", &self.retired_at)
            .field("verify_until", &self.verify_until)
            .finish()
    }
}

/// The client-certificate CA (issue 18), as stored. The caller seals
/// `private_key` exactly as for [`StoredSigningKey`].
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClientCa {
    /// The CA's id (its certificate's SHA-256, hex): the primary key.
    pub id: String,
    /// The self-signed CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// How `private_key` is stored.
    pub private_format: PrivateKeyFormat,
    /// The CA's PKCS#8 private key, as `private_format` says.
    pub private_key: Vec<u8>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms when a newer CA replaced it; `None` for the current one.
    pub retired_at: Option<i64>,
}

/// The private key is never shown.
impl fmt::Debug for StoredClientCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredClientCa")
            .field("id", &self.id)
            .field("private_format", &self.private_format)
            .field(
                "private_key",
                &format_args!("<{} bytes>", self.private_key.len()),
            )
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A certificate issued to a device (the device's own row holds its
/// SHA-256 as `secret_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The serial number, lowercase hex: the primary key.
    pub serial: String,
    /// The CA that signed it ([`StoredClientCa::id`]).
    pub ca_id: String,
    /// The device it was issued to; `None` once the device is deleted.
    pub device_id: Option<i64>,
    /// Unix ms.
    pub issued_at: i64,
    /// Unix ms: the certificate's notAfter.
    pub not_after: i64,
    /// Unix ms of its revocation; `None` while not revoked.
    pub revoked_at: Option<i64>,
}

/// Lowercase hex: how a digest (a session id's SHA-256…) is written on the
/// change feed, shown to admins and named in forms.
pub fn hex(bytes: &[u8]) -> String {
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

/// A stored list (an account's groups, a device's or pairing's routes): a
/// JSON array of strings. The error names the row, e.g. `device 4 has
/// routes that are not…`; it is only built when decoding fails.
pub(crate) fn decode_string_list(
    table: &str,
    id: i64,
    column: &str,
    json: &str,
) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Corrupt(format!(
            "{table} {id} has {column} that are not a JSON array of strings ({e})"
        ))
    })
}

/// Groups (or routes) as stored: a JSON array of strings.
pub(crate) fn encode_groups(groups: &[String]) -> String {
    // Serialising a slice of strings cannot fail.
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored pairing state.
pub(crate) fn decode_pairing_state(pairing: i64, text: &str) -> Result<PairingState, StoreError> {
    text.parse().map_err(|bad: String| {
        StoreError::Corrupt(format!("pairing {pairing} has an unknown state {bad:?}"))
    })
}

pub(crate) fn decode_private_format(kid: &str, text: &str) -> Result<PrivateKeyFormat, StoreError> {
    match text {
        "plain" => Ok(PrivateKeyFormat::Plain),
        "aes256gcm" => Ok(PrivateKeyFormat::Aes256Gcm),
        other => Err(StoreError::Corrupt(format!(
            "signing key {kid} has an unknown private key format `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("Ali"), "%ali%");
        assert_eq!(contains_pattern("a_b%c\\d"), "%a\\_b\\%c\\\\d%");
        assert_eq!(contains_pattern("Ørsted"), "%Ørsted%");
    }

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
    fn pairing_state_round_trips_and_rejects_unknown() {
        for s in [
            PairingState::Open,
            PairingState::Claimed,
            PairingState::Confirmed,
            PairingState::Refused,
            PairingState::Issued,
        ] {
            assert_eq!(decode_pairing_state(1, s.as_str()), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(
            decode_pairing_state(3, "Open"),
            Err(StoreError::Corrupt(
                "pairing 3 has an unknown state \"Open\"".into()
            ))
        );
    }

    #[test]
    fn routes_must_be_a_json_array_of_strings() {
        let routes = vec!["api".to_owned(), "files, \"quoted\"".to_owned()];
        assert_eq!(
            decode_string_list("device", 1, "routes", &encode_groups(&routes)),
            Ok(routes)
        );
        let err = decode_string_list("device", 4, "routes", "api,files").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.starts_with("device 4 has routes")),
            "{err:?}"
        );
    }

    #[test]
    fn device_liveness_and_redacted_debug() {
        let device = Device {
            id: 1,
            account_id: 2,
            name: "phone".into(),
            kind: "bearer".into(),
            routes: vec![],
            basic_user: None,
            created_at: 0,
            expires_at: Some(100),
            last_used_at: None,
            last_used_ip: None,
        };
        assert!(device.is_live(99));
        assert!(!device.is_live(100));
        let forever = Device {
            expires_at: None,
            ..device
        };
        assert!(forever.is_live(i64::MAX));

        let new = NewDevice {
            account_id: 2,
            name: "phone".into(),
            kind: "bearer".into(),
            routes: vec!["api".into()],
            secret_hash: [0xab; 32],
            basic_user: None,
            created_at: 0,
            expires_at: None,
        };
        let shown = format!("{new:?}");
        assert!(shown.contains("secret_hash: <redacted>"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
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
        assert_eq!(
            decode_string_list("account", 1, "groups", &encode_groups(&groups)),
            Ok(groups)
        );
        assert_eq!(decode_string_list("account", 1, "groups", "[]"), Ok(vec![]));
        for bad in ["", "admins,users", "[1,2]", "{\"a\":1}", "[\"a\""] {
            let err = decode_string_list("account", 4, "groups", bad).unwrap_err();
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
            Change::Device(9_007_199_254_740_993),
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
        assert_eq!(Change::Device(5).encode(), ("device", "5".to_owned()));
        for bad in ["", "x", "5.0", "99999999999999999999"] {
            assert!(matches!(
                Change::decode("device", bad),
                Err(StoreError::Corrupt(_))
            ));
        }
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

    #[test]
    fn audit_entries_default_to_ok_with_nothing_else() {
        let plain = AuditEntry::new(5, "cli:ann", "approve", "account:3");
        assert_eq!(
            plain,
            AuditEntry {
                at: 5,
                actor: "cli:ann".into(),
                action: "approve".into(),
                subject: "account:3".into(),
                client_ip: None,
                outcome: "ok".into(),
                detail: String::new(),
            }
        );
        let ip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let full = plain
            .with_client_ip(Some(ip))
            .with_outcome("unchanged")
            .with_detail("already active");
        assert_eq!(full.client_ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(full.outcome, "unchanged");
        assert_eq!(full.detail, "already active");
    }
}
