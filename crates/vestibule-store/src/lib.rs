//! # vestibule-store
//!
//! Accounts, sessions, device credentials, device pairings and the audit
//! log, on SQLite or PostgreSQL, behind one dyn-compatible [`Store`] trait. [`open`] connects, brings the schema
//! up to date and starts the change feed; everything else is a method of
//! the returned `Arc<dyn Store>`.
//!
//! Both backends run the same SQL through sqlx's `Any` driver: static
//! strings with `$1` placeholders, and only the types `Any` knows (64-bit
//! integers, text, blobs). Timestamps are unix milliseconds in an `i64`,
//! passed in by the caller (`now`); group and route lists are a JSON array
//! in a text column. Each backend has its own migrations folder
//! (`migrations/sqlite/`, `migrations/postgres/`), embedded in the binary
//! and applied by [`open`] and [`migrate`].
//!
//! ## Invariants
//!
//! - **An acknowledged write is durable.** A method returns `Ok` only after
//!   its transaction committed. SQLite runs in WAL mode with
//!   `synchronous = FULL` on every connection; PostgreSQL sessions run with
//!   `synchronous_commit = on`.
//! - **Accounts are keyed by (source, subject)** ([`IdentityKey`]): the
//!   identity source's name and the subject it vouches for. Nothing here
//!   ever matches an account by email or username: two identities with the
//!   same email are two accounts until an admin links them
//!   ([`Store::link_identity`]). [`Store::accounts_by_username`] exists for
//!   the admin CLI and must never be used at login.
//! - **Secrets are never stored.** Session ids, CSRF tokens, device
//!   secrets, pairing codes and pairing claim secrets are stored as their
//!   SHA-256 digests (`[u8; 32]`), computed by the caller; this crate never
//!   sees the secret itself. A device is looked up by the digest of its
//!   secret ([`Store::device_by_secret`]), and no record this crate returns
//!   carries a device's digest.
//! - **Every revocation is published.** A call that disables, deletes or
//!   relinks an account, or revokes a session or a device, publishes a
//!   [`Change`] in the same transaction, to this process and to every other
//!   process using the same database ([`Store::subscribe`]). A cache that
//!   drops what a `Change` names, and everything on [`Change::Resync`],
//!   never serves a revoked session or device for longer than the feed's
//!   delay (immediate in this process; at most about 250 ms from another
//!   process on SQLite; the notification delay on PostgreSQL). Deleting an
//!   account deletes its devices and pairings with it (foreign keys with
//!   `ON DELETE CASCADE`, enforced on every SQLite connection), and its
//!   [`Change::Account`] covers them: a device cache must be able to drop
//!   every device of an account.
//! - **A pairing code is used at most once.** Every pairing step
//!   ([`Store::claim_pairing`], [`Store::decide_pairing`],
//!   [`Store::redeem_pairing`]) is one conditional `UPDATE` on the
//!   pairing's state (and expiry), so of two devices racing for one code
//!   exactly one wins, and a confirmed pairing issues exactly one device.
//! - **A row that does not decode is an error**
//!   ([`StoreError::Corrupt`]), never a default value.
//!
//! ## Non-goals
//!
//! - Hashing, token generation, expiry policy or clocks: callers pass
//!   digests and `now`. [`Store::session`] and [`Store::device_by_secret`]
//!   return a session or device as stored, expired or not
//!   ([`Session::is_live`], [`Device::is_live`] help).
//! - Authorisation: a device's `routes` and `kind` are stored and returned,
//!   never interpreted.
//! - Caching: the change feed exists so the caller's cache can be dropped
//!   precisely; the store itself caches nothing.
//! - Other databases (MySQL), or a choice of schema: the schema belongs to
//!   this crate and changes only through its migrations.
//! - Locating accounts by anything but (source, subject) at login.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backchannel_sql;
pub mod backup;
mod device_sql;
mod error;
mod feed;
mod migrations;
mod model;
pub mod oidc_login;
pub mod provider;
mod provider_sql;
mod sql;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::StoreError;
pub use migrations::LATEST_VERSION as SCHEMA_VERSION;
pub use model::{
    Account, AccountSearch, AccountStatus, Attributes, AuditEntry, AuditFilter, Change,
    ClientCertificate, Device, DeviceWithOwner, DirectoryEntry, IdentityKey, NewAccount, NewDevice,
    Pairing, PairingPoll, PairingState, PrivateKeyFormat, Session, StoredClientCa,
    StoredSigningKey, hex,
};

// Alike `sql.rs`: the trait's method signatures are repeated by its one
// implementation, as Rust requires.

/// A boxed, `Send` future: what every [`Store`] method returns, so that
/// `dyn Store` works. The same type as `futures::future::BoxFuture`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One SQLite file, possibly shared by several processes on one host.
    Sqlite,
    /// A PostgreSQL database, possibly shared by several hosts.
    Postgres,
}

impl Backend {
    /// Which backend a store URL names, from its scheme: `sqlite:`, or
    /// `postgres:` / `postgresql:`.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::InvalidConfig(
                "the database URL must start with `sqlite:` or `postgres://`".into(),
            )),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Where the store lives and how many connections it may hold.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite:///absolute/path/vestibule.db` (the file is created if
    /// missing; its directory must exist) or
    /// `postgres://user:password@host:port/database`. In-memory SQLite is
    /// refused: it would break the durability invariant.
    pub url: String,
    /// Pool size (0 is read as 1). A request waits at most
    /// [`ACQUIRE_TIMEOUT`] for a connection, then fails with
    /// [`StoreError::Unavailable`].
    pub max_connections: u32,
}

impl StoreConfig {
    /// A config for `url` with [`DEFAULT_MAX_CONNECTIONS`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The URL may carry a password: only its scheme is shown.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.url.split_once(':').map(|(s, _)| s).unwrap_or("?");
        f.debug_struct("StoreConfig")
            .field("url", &format_args!("{scheme}:…"))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Pool size used by [`StoreConfig::new`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long a call waits for a pooled connection (or for a new connection
/// to be made) before it fails with [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Capacity of the in-process change channel. A subscriber that falls
/// further behind gets `RecvError::Lagged` and must treat it like
/// [`Change::Resync`].
pub const CHANGE_CHANNEL_CAPACITY: usize = 1024;

/// Connects, applies pending migrations and starts the change feed.
///
/// Must be called inside a tokio runtime: the change feed runs as a task
/// on it (SQLite: a 250 ms poll of the `changes` table; PostgreSQL: a
/// `LISTEN vestibule_changes` connection that reconnects by itself). The
/// task stops when the last `Arc` of the store is dropped.
pub async fn open(cfg: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sql::SqlStore::open(cfg).await?))
}

/// [`open`], for `vestibule bench-seed`: the same store, with the bulk
/// inserts ([`BulkLoad`]) that the gateway's [`Store`] does not offer.
pub async fn open_for_bulk_load(cfg: &StoreConfig) -> Result<Arc<dyn BulkLoad>, StoreError> {
    Ok(Arc::new(sql::SqlStore::open(cfg).await?))
}

/// Connects and applies pending migrations, then disconnects. [`open`]
/// does this too; this is for a `migrate` command that should not start
/// anything else.
pub async fn migrate(cfg: &StoreConfig) -> Result<(), StoreError> {
    let (pool, backend) = sql::connect(cfg).await?;
    let result = migrations::run(&pool, backend).await;
    pool.close().await;
    result
}

/// Persistence for accounts, sessions, devices, pairings and the audit log;
/// the OpenID Connect provider's rows are in its supertrait
/// [`ProviderStore`](provider::ProviderStore).
///
/// Dyn-compatible: every method returns a [`BoxFuture`]. Methods that take
/// an id of a row that does not exist return [`StoreError::NotFound`],
/// except the `revoke_*`, `set_status`, `delete_account` and pairing
/// calls, which say what they did with a `bool`, a count, an `Option` or a
/// [`PairingPoll`]. Every write runs in one transaction and is durable
/// once the call returns `Ok`.
pub trait Store: provider::ProviderStore + oidc_login::OidcLoginStore + Send + Sync {
    /// Which database this store runs on.
    fn backend(&self) -> Backend;

    // ---- accounts ------------------------------------------------------

    /// The account an identity is linked to. This is the login lookup.
    fn account_by_identity<'a>(
        &'a self,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<Option<Account>, StoreError>>;

    /// One account by id.
    fn account(&self, id: i64) -> BoxFuture<'_, Result<Option<Account>, StoreError>>;

    /// Accounts in id order, optionally only those with `status`, at most
    /// `limit` of them.
    fn accounts(
        &self,
        status: Option<AccountStatus>,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<Account>, StoreError>>;

    /// The admin page's account list: accounts whose username, display name
    /// or email contains `query` (ASCII letters compared without case;
    /// `%`, `_` and `\` are plain characters; empty matches every account),
    /// pending first, then by username and id; `limit` of them from
    /// `offset`, and how many match in all.
    fn search_accounts<'a>(
        &'a self,
        query: &'a str,
        offset: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<AccountSearch, StoreError>>;

    /// Accounts whose username is exactly `username`, in id order. For the
    /// admin CLI only: usernames are not unique and never used at login.
    fn accounts_by_username<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Account>, StoreError>>;

    /// Creates an account and links `new.key` to it, in one transaction.
    /// [`StoreError::Conflict`] if the identity is already linked (to any
    /// account); nothing is written then.
    fn create_account(&self, new: NewAccount) -> BoxFuture<'_, Result<Account, StoreError>>;

    /// Replaces the attributes the identity source sent, and sets
    /// `last_seen_at = now`. When an attribute actually changed it also
    /// sets `updated_at = now` and publishes [`Change::Account`] (groups
    /// decide access).
    fn update_attributes<'a>(
        &'a self,
        id: i64,
        attrs: &'a Attributes,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces the attributes as [`Store::update_attributes`] does, but
    /// leaves `last_seen_at` alone: for a statement of the identity
    /// provider that is not the person being seen (an OIDC re-check).
    /// Returns whether an attribute changed (then [`Change::Account`] is
    /// published); [`StoreError::NotFound`] without the account.
    fn replace_attributes<'a>(
        &'a self,
        id: i64,
        attrs: &'a Attributes,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Sets `last_seen_at = now`.
    fn touch_seen(&self, id: i64, now: i64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Sets the status (and `updated_at = now`); `false` if there is no
    /// such account. Publishes [`Change::Account`].
    fn set_status(
        &self,
        id: i64,
        status: AccountStatus,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Deletes the account with its identities, sessions, devices and
    /// pairings (`ON DELETE CASCADE`); `false` if there was no such
    /// account. Publishes [`Change::Account`], which covers the account's
    /// sessions and devices: no [`Change::Device`] is published for them.
    /// Every OIDC grant of the account ends first, in the same
    /// transaction, with a back-channel logout queued and
    /// [`Change::Grant`] published for each.
    fn delete_account(&self, id: i64) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Links another identity to an account. [`StoreError::Conflict`] if
    /// that identity is linked to any account already (this one included),
    /// [`StoreError::NotFound`] if the account does not exist. Publishes
    /// [`Change::Account`].
    fn link_identity<'a>(
        &'a self,
        account_id: i64,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Unlinks an identity from an account, unless it is the account's
    /// last one (one conditional statement); ends the sessions that
    /// identity opened on the account. `false` if nothing was unlinked
    /// (not this account's, or its last). Publishes [`Change::Account`]
    /// and [`Change::Session`] for each session ended.
    fn unlink_identity<'a>(
        &'a self,
        account_id: i64,
        key: &'a IdentityKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The LDAP entry an account is written to, if any.
    fn directory_entry(
        &self,
        account_id: i64,
    ) -> BoxFuture<'_, Result<Option<DirectoryEntry>, StoreError>>;

    /// Records (inserts or replaces) the LDAP entry of an account.
    /// [`StoreError::NotFound`] if the account does not exist.
    fn put_directory_entry<'a>(
        &'a self,
        entry: &'a DirectoryEntry,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The identities linked to an account, ordered by (source, subject).
    fn identities(&self, account_id: i64) -> BoxFuture<'_, Result<Vec<IdentityKey>, StoreError>>;

    // ---- sessions ------------------------------------------------------

    /// Stores a new session. [`StoreError::Conflict`] if `id_hash` exists,
    /// [`StoreError::NotFound`] if the account does not.
    fn create_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A session by the digest of its id, as stored: expired sessions are
    /// returned too (see [`Session::is_live`]).
    fn session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>>;

    /// Sets a session's `last_seen_at = now`.
    fn touch_session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes a session; `false` if there was none. Publishes
    /// [`Change::Session`]. In the same transaction every OIDC grant of the
    /// session ends (its tokens die, a back-channel logout is queued, and
    /// [`Change::Grant`] is published), as in every call below that ends
    /// sessions (see `ProviderStore`'s outbox).
    fn revoke_session<'a>(
        &'a self,
        id_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes every session of an account and returns how many there
    /// were. Publishes [`Change::AllSessionsOf`] when there was one or more.
    /// Their OIDC grants end (see [`Store::revoke_session`]).
    fn revoke_sessions_of(&self, account_id: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Sessions of one account, or of everyone, oldest first.
    fn sessions_of(
        &self,
        account_id: Option<i64>,
    ) -> BoxFuture<'_, Result<Vec<Session>, StoreError>>;

    /// Deletes sessions with `expires_at <= now` and returns how many. No
    /// session change is published (an expired session is refused by its
    /// expiry), but their OIDC grants end (see [`Store::revoke_session`])
    /// and publish [`Change::Grant`].
    fn purge_expired_sessions(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    // ---- devices -------------------------------------------------------

    /// Stores a new device credential. [`StoreError::Conflict`] if a device
    /// with `d.secret_hash` exists, [`StoreError::NotFound`] if the account
    /// does not. No change is published.
    fn create_device<'a>(&'a self, d: &'a NewDevice) -> BoxFuture<'a, Result<Device, StoreError>>;

    /// A device by the digest of its secret: the authentication lookup. As
    /// stored: expired devices are returned too (see [`Device::is_live`]).
    fn device_by_secret<'a>(
        &'a self,
        secret_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<Device>, StoreError>>;

    /// A device by the digest of its secret, with its owner's account and
    /// first identity, in ONE statement (the device's unique index on
    /// `secret_hash`, then the primary key of `accounts` and the
    /// `identities_account` index): the credential cache's miss. As
    /// stored, like [`Store::device_by_secret`].
    fn device_with_owner<'a>(
        &'a self,
        secret_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceWithOwner>, StoreError>>;

    /// One device by id, expired or not.
    fn device(&self, id: i64) -> BoxFuture<'_, Result<Option<Device>, StoreError>>;

    /// Devices of one account, or of everyone (`None`), in id order.
    fn devices_of(&self, account_id: Option<i64>)
    -> BoxFuture<'_, Result<Vec<Device>, StoreError>>;

    /// Deletes a device; with `Some(owner)` only if it belongs to that
    /// account (a signed-in user revoking their own device). `false` if
    /// nothing was deleted (no such device, or another account's).
    /// Publishes [`Change::Device`] when it deleted one. A pairing that
    /// issued the device keeps its row, with `device_id` set to `None`; a
    /// client certificate issued to it is marked revoked now (for the
    /// CRL), in the same transaction.
    fn revoke_device(&self, id: i64, owner: Option<i64>)
    -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Records a request by the device: `last_used_at = now` and
    /// `last_used_ip = ip` (`None` when the client address is unknown). No
    /// change is published. [`StoreError::NotFound`] if there is no such
    /// device (e.g. it was just revoked).
    fn touch_device<'a>(
        &'a self,
        id: i64,
        now: i64,
        ip: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    // ---- pairing -------------------------------------------------------

    /// Opens a pairing for `account_id`: a device that presents the code
    /// whose digest is `code_hash` before `expires_at` may ask to become a
    /// device of that account with `routes`. [`StoreError::Conflict`] if
    /// `code_hash` exists (in any state, until purged),
    /// [`StoreError::NotFound`] if the account does not.
    fn create_pairing<'a>(
        &'a self,
        account_id: i64,
        code_hash: &'a [u8; 32],
        routes: &'a [String],
        now: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Pairing, StoreError>>;

    /// One pairing by id, in whatever state, expired or not.
    fn pairing(&self, id: i64) -> BoxFuture<'_, Result<Option<Pairing>, StoreError>>;

    /// A device redeems a code: only an `open`, unexpired (`now <
    /// expires_at`) pairing moves to `claimed`, recording the digest of the
    /// device's claim secret, its name, its address and `claimed_at = now`.
    /// Atomically: a conditional `UPDATE`, so two devices racing for one code cannot
    /// both win. `None` for unknown, expired or already-used codes (single
    /// use). [`StoreError::Conflict`] if `claim_hash` is already the claim
    /// of another pairing (the code stays open then).
    fn claim_pairing<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
        claim_hash: &'a [u8; 32],
        device_name: &'a str,
        claimed_ip: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Pairing>, StoreError>>;

    /// The signed-in owner confirms (`confirm`) or refuses a `claimed`,
    /// unexpired pairing of their account. `false` otherwise: no such
    /// pairing, wrong owner, wrong state (already decided), or expired.
    /// No change is published.
    fn decide_pairing(
        &self,
        id: i64,
        account_id: i64,
        confirm: bool,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// The device polls with the digest of its claim secret.
    ///
    /// - Confirmed and unexpired: creates the device from `device` (its
    ///   `account_id`, `routes` and `name` are taken from the pairing,
    ///   overriding what `device` says), marks the pairing `issued` with
    ///   its `device_id`, and returns [`PairingPoll::Issued`], in one
    ///   transaction; exactly once: the next poll gets `Expired`.
    ///   [`StoreError::Conflict`] if `device.secret_hash` exists; nothing
    ///   is written then and the pairing stays confirmed.
    /// - Claimed and unexpired: [`PairingPoll::Pending`].
    /// - Refused and unexpired: [`PairingPoll::Refused`].
    /// - Unknown claim, expired (`expires_at <= now`, whatever the state),
    ///   or already issued: [`PairingPoll::Expired`].
    ///
    /// No change is published (a new device revokes nothing).
    fn redeem_pairing<'a>(
        &'a self,
        claim_hash: &'a [u8; 32],
        device: &'a NewDevice,
        now: i64,
    ) -> BoxFuture<'a, Result<PairingPoll, StoreError>>;

    /// Deletes pairings with `expires_at <= now` that were not issued
    /// (issued ones stay, as the record of which pairing made which
    /// device), and devices with `expires_at <= now`, in one transaction;
    /// returns how many rows were deleted in all. No change is published:
    /// an expired device is refused by its expiry ([`Device::is_live`]).
    fn purge_expired(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    // ---- signing keys --------------------------------------------------

    /// Stores a new signing key unless a key of the same algorithm that is
    /// not retired was created after `unless_created_after` (unix ms); says
    /// whether it stored it. Each algorithm is its own family (assertions
    /// sign with one, ID tokens with others), created and rotated apart. One conditional `INSERT`, so of several instances that
    /// decide at once to create the first key (`i64::MIN`) or to rotate
    /// (the newest acceptable creation time), exactly one wins; the others
    /// reload with [`Store::signing_keys`]. The caller seals the private
    /// key. [`StoreError::Conflict`] if the kid exists. No change is
    /// published: instances reload keys on their own schedule.
    fn insert_signing_key<'a>(
        &'a self,
        key: &'a StoredSigningKey,
        unless_created_after: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every stored signing key, oldest first (by `created_at`, then kid).
    fn signing_keys(&self) -> BoxFuture<'_, Result<Vec<StoredSigningKey>, StoreError>>;

    /// Retires a key that is not retired yet: it stops signing at `now`
    /// and stays published until `verify_until`. `false` if there is no
    /// such key or it was retired already (the first retirement stands).
    fn retire_signing_key<'a>(
        &'a self,
        kid: &'a str,
        now: i64,
        verify_until: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes retired keys with `verify_until <= now`; returns how many.
    fn purge_signing_keys(&self, now: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Replaces a signing key stored plain with `sealed`, its private key
    /// sealed under the key-encryption key, only while it is still plain:
    /// of instances sealing at once the first stands and the others change
    /// nothing. `false` if there is no such key or it was sealed already.
    fn seal_signing_key<'a>(
        &'a self,
        kid: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    // ---- client-certificate CA (issue 18) ------------------------------

    /// Stores a new client CA unless one that is not retired was created
    /// after `unless_created_after`; says whether it stored it (one
    /// conditional `INSERT`, like [`Store::insert_signing_key`]). When
    /// stored, every older CA that was not retired is retired at
    /// `ca.created_at`.
    fn insert_client_ca<'a>(
        &'a self,
        ca: &'a StoredClientCa,
        unless_created_after: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every client CA, oldest first (by `created_at`, then id).
    fn client_cas(&self) -> BoxFuture<'_, Result<Vec<StoredClientCa>, StoreError>>;

    /// Replaces a client CA's plain private key with `sealed`, like
    /// [`Store::seal_signing_key`].
    fn seal_client_ca_key<'a>(
        &'a self,
        id: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a certificate issued to a device.
    /// [`StoreError::Conflict`] if the serial exists.
    fn record_client_certificate<'a>(
        &'a self,
        cert: &'a ClientCertificate,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Renews certificate device `device_id` of account `owner` in place,
    /// in one transaction: the device's `secret_hash` becomes `new_hash`
    /// (the new leaf's SHA-256) and its `expires_at` `new_expiry`; every
    /// certificate recorded for it that is not yet revoked is marked
    /// revoked at `now` (so it is on the CRL); `cert` is recorded for it
    /// (its own `device_id` is ignored). `false`, and nothing written, if
    /// the device is not `owner`'s, of kind `certificate`, and live at
    /// `now`. Publishes [`Change::Device`] when it renewed, so every
    /// instance drops the old credential from its cache.
    /// [`StoreError::Conflict`] if `new_hash` or the serial is taken.
    fn renew_certificate_device<'a>(
        &'a self,
        device_id: i64,
        owner: i64,
        new_hash: &'a [u8; 32],
        new_expiry: i64,
        cert: &'a ClientCertificate,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The certificates of CA `ca_id` that are revoked (or whose device is
    /// gone) and not yet expired at `now`, by serial: the CRL.
    fn revoked_client_certificates<'a>(
        &'a self,
        ca_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<ClientCertificate>, StoreError>>;

    // ---- audit ---------------------------------------------------------

    /// Appends one audit entry.
    fn append_audit<'a>(&'a self, e: &'a AuditEntry) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Audit entries matching the filter, newest first (ties: last
    /// appended first), at most `f.limit`.
    fn audit<'a>(
        &'a self,
        f: &'a AuditFilter,
    ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>>;

    // ---- change feed ---------------------------------------------------

    /// Changes from now on, from this process and from every other process
    /// using the same database. `RecvError::Lagged` means changes were
    /// lost: treat it like [`Change::Resync`].
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;

    /// `false` while the change feed has lost its database connection
    /// (PostgreSQL), so callers can answer "unavailable" at once instead of
    /// waiting [`ACQUIRE_TIMEOUT`] for a pool connection that will not come.
    /// Back to `true` once the feed has reconnected (within
    /// 5 s of the database returning). Always `true` for SQLite.
    fn reachable(&self) -> bool;
}

/// Bulk inserts for benchmarks and imports (`vestibule bench-seed`), apart
/// from [`Store`] so that nothing serving requests can call them: they
/// publish no [`Change`], so a running gateway's caches would not hear of
/// them. Get one from
/// [`open_for_bulk_load`].
pub trait BulkLoad: Store {
    /// Creates many accounts, each with its identity, in one transaction,
    /// for benchmarks and imports; returns how many. All or nothing:
    /// [`StoreError::Conflict`] if any identity is linked already (or
    /// repeats). No change is published.
    fn create_accounts_bulk<'a>(
        &'a self,
        accounts: &'a [NewAccount],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Stores many devices in one transaction (multi-row `INSERT`s), for
    /// benchmarks and imports, and returns how many. All or nothing:
    /// [`StoreError::Conflict`] if any secret digest exists (or repeats),
    /// [`StoreError::NotFound`] if any account does not. No change is
    /// published.
    fn create_devices_bulk<'a>(
        &'a self,
        devices: &'a [NewDevice],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}
