//! What vestibule keeps as an OpenID Connect provider (issue 14): store
//! clients, consents, authorization codes, grants, refresh-token families
//! and opaque access tokens. They live in the store, not in memory, so a
//! code issued by one instance is redeemed at another and a reused refresh
//! token is detected whichever instance sees it.
//!
//! ## Invariants
//!
//! - **No token or code is stored.** Codes, refresh tokens and access
//!   tokens are stored as the SHA-256 of their value, computed by the
//!   caller.
//! - **A code is redeemed at most once** ([`ProviderStore::exchange_code`]
//!   is one conditional `UPDATE`); presenting it again revokes the grant
//!   its redemption created, with every token issued from it (RFC 6749
//!   §4.1.2: "the authorization server MUST deny the request and SHOULD
//!   revoke (when possible) all tokens previously issued based on that
//!   authorization code"; RFC 9700 §4.5.3).
//! - **A refresh token rotates once** ([`ProviderStore::rotate_refresh`]:
//!   one conditional `UPDATE` on `rotated_at IS NULL`). A rotated token
//!   presented again (RFC 9700 §4.14.2, refresh token rotation) revokes its
//!   whole family, unless it comes within the grace window the caller
//!   passes and its successor has not been used yet: then the caller gets
//!   the sealed successor back ([`RefreshOutcome::GraceRetry`]).
//!
//! ## The grace window without a plaintext token at rest
//!
//! A client that lost the response to a refresh (a mobile app going out of
//! coverage, two parallel refreshes) retries with the token it already
//! rotated; it must get the *same* successor tokens, or the two copies of
//! the app would race each other into a family revocation. The store must
//! therefore be able to give the successors back, yet it never holds a
//! token. The caller seals the successor tokens (refresh and access) with
//! an AEAD under a key derived from the *presented* token's value (HKDF
//! with a label of its own, so the key is unrelated to the SHA-256 the row
//! is keyed by) and the store keeps only that ciphertext
//! (`successor_sealed`). Only someone who holds the rotated token can open
//! it, which is exactly who is entitled to the successors; a copy of the
//! database alone opens nothing. The ciphertext is dropped by
//! [`ProviderStore::purge_provider`] once the window has passed, and is
//! never returned once the successor has itself been rotated.

use crate::{BoxFuture, StoreError};

/// A client registered with `vestibule clients add` (clients declared in
/// the config file are not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOidcClient {
    /// The `client_id` (RFC 6749 §2.2).
    pub client_id: String,
    /// SHA-256 of the client secret; `None` for a public client.
    pub secret_hash: Option<[u8; 32]>,
    /// The registration (redirect URIs, scopes…), as the binary writes it.
    pub settings_json: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change (secret rotation).
    pub updated_at: i64,
}

/// An authorization code about to be stored (RFC 6749 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthorizationCode {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The client it was issued to.
    pub client_id: String,
    /// The signed-in user.
    pub account_id: i64,
    /// The redirect URI of the request, to be matched at the token
    /// endpoint (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// Granted scopes, space-separated (RFC 6749 §3.3).
    pub scopes: String,
    /// The request's `nonce` (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    /// The S256 `code_challenge` (RFC 7636 §4.2); `None` only for a
    /// confidential client that opted out of PKCE.
    pub code_challenge: Option<String>,
    /// What the ID token's `sid` is derived from (the vestibule session).
    pub session_ref: Option<String>,
    /// When the user authenticated (unix ms; the ID token's `auth_time`).
    pub auth_time: i64,
    /// Authentication methods (the ID token's `amr`).
    pub amr: Vec<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; 60 s after `created_at` at most.
    pub expires_at: i64,
}

/// A stored code, as [`ProviderStore::authorization_code`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// What was stored.
    pub code: NewAuthorizationCode,
    /// Unix ms of its redemption; `None` while unused.
    pub redeemed_at: Option<i64>,
    /// The grant its redemption created, while that grant exists.
    pub grant_id: Option<i64>,
}

/// What a user authorized a client to do: created when a code is
/// redeemed, and the owner of every token issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcGrant {
    /// Row id.
    pub id: i64,
    /// The user.
    pub account_id: i64,
    /// The client.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// The vestibule session it came from, if any.
    pub session_ref: Option<String>,
    /// Unix ms of the user's authentication.
    pub auth_time: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last token issued from it.
    pub last_used_at: i64,
}

/// A token about to be stored: its digest and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewToken {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Unix ms.
    pub expires_at: i64,
}

/// The tokens a code exchange issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeTokens {
    /// The access token.
    pub access: NewToken,
    /// A refresh token and its family's absolute expiry (unix ms), when
    /// the grant includes one.
    pub refresh: Option<(NewToken, i64)>,
}

/// What [`ProviderStore::exchange_code`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeExchange {
    /// The code was redeemed now: the grant and the refresh family (if a
    /// refresh token was issued) that hold the new tokens.
    Issued {
        /// The code as stored (nonce, auth_time… for the ID token).
        code: Box<NewAuthorizationCode>,
        /// The new grant.
        grant: OidcGrant,
        /// The new refresh family.
        family_id: Option<i64>,
    },
    /// The code had been redeemed before: the grant it created (and its
    /// tokens) was revoked now, if it still existed. Answer `invalid_grant`.
    Replayed {
        /// The grant revoked now.
        revoked_grant: Option<i64>,
    },
    /// Unknown, expired, or issued to another client. Answer
    /// `invalid_grant`.
    Invalid,
}

/// A refresh token with its family and grant, as looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Its family.
    pub family_id: i64,
    /// The grant the family belongs to.
    pub grant: OidcGrant,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms (sliding; never after the family's absolute expiry).
    pub expires_at: i64,
    /// Unix ms of its rotation; `None` while it is the family's current
    /// token.
    pub rotated_at: Option<i64>,
    /// Unix ms: no token of the family lives past this.
    pub family_expires_at: i64,
    /// Unix ms of the family's revocation.
    pub family_revoked_at: Option<i64>,
}

impl RefreshTokenRecord {
    /// Whether it may be used now: current, unexpired, family live.
    pub fn is_active(&self, now: i64) -> bool {
        self.rotated_at.is_none()
            && self.family_revoked_at.is_none()
            && now < self.expires_at
            && now < self.family_expires_at
    }
}

/// One rotation's new tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The successor refresh token (its expiry is capped at the family's).
    pub refresh: NewToken,
    /// The new access token.
    pub access: NewToken,
    /// Both successor tokens, sealed under a key derived from the
    /// presented token (see the module documentation).
    pub sealed: Vec<u8>,
    /// How long after a rotation a retry gets [`RefreshOutcome::GraceRetry`]
    /// (ms).
    pub grace_ms: i64,
    /// The new access token's scopes when the client narrowed them
    /// (RFC 6749 §6: a subset of the grant's, checked by the caller);
    /// `None`: the grant's.
    pub access_scopes: Option<String>,
}

/// What [`ProviderStore::rotate_refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Rotated now; the tokens of the [`Rotation`] are stored.
    Rotated {
        /// The grant (for the account check and the ID token).
        grant: OidcGrant,
        /// The successor's expiry after the family cap (unix ms).
        refresh_expires_at: i64,
    },
    /// A retry within the grace window: nothing was stored; `sealed` is
    /// what the first rotation stored. Open it with the presented token.
    GraceRetry {
        /// The grant.
        grant: OidcGrant,
        /// The sealed successor tokens.
        sealed: Vec<u8>,
    },
    /// A rotated token came back outside the window (or after its
    /// successor was used): the family is revoked now with its access
    /// tokens. Answer `invalid_grant` and log a security event.
    Reused {
        /// The family revoked now.
        family_id: i64,
        /// The grant it belonged to.
        grant: OidcGrant,
    },
    /// Unknown, expired, revoked, or another client's. `invalid_grant`.
    Invalid,
}

/// An opaque access token as looked up (for userinfo and introspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// The client it was issued to.
    pub client_id: String,
    /// The user; `None` for `client_credentials`.
    pub account_id: Option<i64>,
    /// The grant; `None` for `client_credentials`.
    pub grant_id: Option<i64>,
    /// The refresh family that issued it, if any.
    pub family_id: Option<i64>,
    /// Scopes, space-separated.
    pub scopes: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}

/// A device authorization request about to be stored (RFC 8628 §3.1,
/// §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceCode {
    /// SHA-256 of the device code.
    pub device_code_hash: [u8; 32],
    /// SHA-256 of the user code in its canonical form (8 upper-case
    /// letters, no dash).
    pub user_code_hash: [u8; 32],
    /// The client it was issued to.
    pub client_id: String,
    /// Requested scopes, space-separated.
    pub scopes: String,
    /// The polling interval (ms) the response announced (§3.2).
    pub interval_ms: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms (`expires_in` of the response).
    pub expires_at: i64,
}

/// What the user said on the verification page (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// Not yet: `authorization_pending` (§3.5).
    Pending,
    /// Approved: tokens on the next poll.
    Approved,
    /// Denied: `access_denied` (§3.5).
    Denied,
}

/// Who approved a device code, as the ID token will say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceApproval {
    /// The signed-in user.
    pub account_id: i64,
    /// Their vestibule session (the `sid`).
    pub session_ref: Option<String>,
    /// When they authenticated (unix ms).
    pub auth_time: i64,
    /// Authentication methods.
    pub amr: Vec<String>,
}

/// A stored device code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// What was stored (with `interval_ms` as it is now: each `slow_down`
    /// adds 5 s).
    pub code: NewDeviceCode,
    /// Unix ms of the previous poll.
    pub last_poll_at: Option<i64>,
    /// The user's answer.
    pub decision: DeviceDecision,
    /// Who approved it, once approved.
    pub approval: Option<DeviceApproval>,
    /// Unix ms of the redemption.
    pub redeemed_at: Option<i64>,
    /// The grant the redemption created, while it exists (a code
    /// presented again revokes it).
    pub grant_id: Option<i64>,
}

/// What [`ProviderStore::redeem_device_code`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRedemption {
    /// Redeemed now: the grant, and the refresh family if one was issued.
    Issued {
        /// The new grant.
        grant: OidcGrant,
        /// The new refresh family.
        family_id: Option<i64>,
    },
    /// Not approved, expired, another client's, unknown or redeemed
    /// before.
    Invalid,
}

/// A queued back-channel logout notification (OpenID Connect Back-Channel
/// Logout 1.0): the grant it is about is gone already; the row lives until
/// the client has been told or the sender gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// Row id.
    pub id: i64,
    /// The client to tell.
    pub client_id: String,
    /// The account (the logout token's `sub` is derived from it).
    pub account_id: i64,
    /// The grant that was revoked (deleted by now).
    pub grant_id: i64,
    /// What the `sid` is derived from: the grant's session reference, or
    /// `grant:<id>` for a grant without one.
    pub session_ref: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix ms: not sent before this.
    pub next_attempt_at: i64,
    /// The claim's random lease, while a sender holds it.
    pub lease: Option<String>,
    /// Unix ms: when the current claim lapses.
    pub lease_until: Option<i64>,
    /// What the last failed attempt got.
    pub last_error: Option<String>,
    /// Unix ms: when the session ended.
    pub created_at: i64,
}

/// Persistence of the OpenID Connect provider; part of every
/// [`Store`](crate::Store). Every write is one transaction.
pub trait ProviderStore: Send + Sync {
    // ---- clients -------------------------------------------------------

    /// Stores a client. [`StoreError::Conflict`] if the id exists.
    fn create_oidc_client<'a>(
        &'a self,
        client: &'a StoredOidcClient,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// One stored client.
    fn oidc_client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredOidcClient>, StoreError>>;

    /// Every stored client, by id.
    fn oidc_clients(&self) -> BoxFuture<'_, Result<Vec<StoredOidcClient>, StoreError>>;

    /// Replaces a confidential client's secret digest; `false` if there is
    /// no such client or it is public.
    fn set_oidc_client_secret<'a>(
        &'a self,
        client_id: &'a str,
        secret_hash: &'a [u8; 32],
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes a stored client with its consents, codes, grants and
    /// tokens, in one transaction; `false` if there was no such client.
    fn delete_oidc_client<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    // ---- consents ------------------------------------------------------

    /// The scopes a user consented to for a client.
    fn consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Records (inserts or replaces) a consent. [`StoreError::NotFound`] if
    /// the account does not exist.
    fn put_consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
        scopes: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets what a user consented to for a client: the next
    /// authorization request asks again. `false` if nothing was
    /// remembered.
    fn forget_consent<'a>(
        &'a self,
        account_id: i64,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// One grant by id, whoever holds it.
    fn grant(&self, id: i64) -> BoxFuture<'_, Result<Option<OidcGrant>, StoreError>>;

    // ---- codes and grants ----------------------------------------------

    /// Stores a code. [`StoreError::Conflict`] if its digest exists,
    /// [`StoreError::NotFound`] if the account does not.
    fn create_authorization_code<'a>(
        &'a self,
        code: &'a NewAuthorizationCode,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A code by digest, as stored (redeemed or expired too): the token
    /// endpoint checks PKCE and the redirect URI on it before
    /// [`ProviderStore::exchange_code`].
    fn authorization_code<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<AuthorizationCode>, StoreError>>;

    /// Redeems a code issued to `client_id`, unexpired at `now`, and
    /// stores the grant and `tokens`, in one transaction; see
    /// [`CodeExchange`]. A redeemed code presented again revokes the grant
    /// it created, whoever presents it.
    fn exchange_code<'a>(
        &'a self,
        code_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        tokens: &'a CodeTokens,
    ) -> BoxFuture<'a, Result<CodeExchange, StoreError>>;

    /// The grants of one account, oldest first.
    fn grants_of(&self, account_id: i64) -> BoxFuture<'_, Result<Vec<OidcGrant>, StoreError>>;

    /// Deletes a grant with its refresh families and access tokens; with
    /// `Some(owner)` only if it is that account's. `false` if nothing was
    /// deleted. Queues a back-channel logout for it and publishes
    /// [`Change::Grant`](crate::Change::Grant), in the same transaction.
    fn revoke_grant(&self, id: i64, owner: Option<i64>) -> BoxFuture<'_, Result<bool, StoreError>>;

    // ---- refresh tokens ------------------------------------------------

    /// A refresh token by digest, with its family and grant, in whatever
    /// state.
    fn refresh_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<RefreshTokenRecord>, StoreError>>;

    /// Rotates the refresh token whose digest is `token_hash`, presented
    /// by `client_id` at `now`; see [`RefreshOutcome`]. The successor's
    /// expiry is capped at the family's absolute expiry.
    fn rotate_refresh<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        rotation: &'a Rotation,
    ) -> BoxFuture<'a, Result<RefreshOutcome, StoreError>>;

    /// Revokes the family of a refresh token issued to `client_id`, with
    /// its access tokens (RFC 7009 §2.1); `false` if there is no such
    /// token for that client or its family was revoked already.
    fn revoke_refresh_family<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    // ---- access tokens -------------------------------------------------

    /// Stores an access token issued without a grant (`client_credentials`,
    /// RFC 6749 §4.4). [`StoreError::Conflict`] if its digest exists.
    fn create_client_access_token<'a>(
        &'a self,
        client_id: &'a str,
        scopes: &'a str,
        token: &'a NewToken,
        now: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// An access token by digest, expired or not.
    fn access_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<AccessTokenRecord>, StoreError>>;

    /// Deletes an access token issued to `client_id`; `false` if there was
    /// none (RFC 7009 §2.2 answers 200 either way).
    fn revoke_access_token<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    // ---- device codes (RFC 8628) ----------------------------------------

    /// Stores a device authorization request. [`StoreError::Conflict`] if
    /// its device code or user code digest exists (draw another code).
    fn create_device_code<'a>(
        &'a self,
        code: &'a NewDeviceCode,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A device code by the digest of its user code, in whatever state.
    fn device_code_by_user_code<'a>(
        &'a self,
        user_code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceCode>, StoreError>>;

    /// A device code by its digest, in whatever state.
    fn device_code<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<DeviceCode>, StoreError>>;

    /// Records the user's answer on a pending, unexpired device code:
    /// `Some(approval)` approves, `None` denies. `false` if it was not
    /// pending or has expired (the answer is given once).
    fn decide_device_code<'a>(
        &'a self,
        user_code_hash: &'a [u8; 32],
        now: i64,
        approval: Option<&'a DeviceApproval>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a poll at `now` with the code's interval from then on,
    /// if the previous poll is still `expected_last_poll` (compare and
    /// set: of two racing polls one wins, the other reads again). `false`
    /// if another poll came in between or there is no such code.
    fn record_device_poll<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
        expected_last_poll: Option<i64>,
        now: i64,
        interval_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Redeems an approved, unexpired, unredeemed device code issued to
    /// `client_id` and stores the grant and `tokens` in one transaction,
    /// as [`ProviderStore::exchange_code`] does: one conditional `UPDATE`,
    /// so a device code is redeemed once.
    fn redeem_device_code<'a>(
        &'a self,
        device_code_hash: &'a [u8; 32],
        client_id: &'a str,
        now: i64,
        tokens: &'a CodeTokens,
    ) -> BoxFuture<'a, Result<DeviceRedemption, StoreError>>;

    // ---- back-channel logout outbox --------------------------------------
    //
    // Rows are queued by the calls that end sessions or grants
    // (`revoke_session`, `revoke_sessions_of`, `purge_expired_sessions`,
    // `delete_account`, `revoke_grant`), never by the caller.

    /// Claims up to `limit` rows that are due at `now` (see
    /// `vestibule_core::backchannel_delivery::is_due`), oldest due first,
    /// for the holder of `lease` until `lease_until`. Each row is claimed
    /// by one conditional `UPDATE`, so of several senders (instances) each
    /// row goes to one.
    fn claim_backchannel_logouts<'a>(
        &'a self,
        now: i64,
        lease: &'a str,
        lease_until: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<BackchannelLogout>, StoreError>>;

    /// Deletes a row the holder of `lease` is done with (delivered, given
    /// up, or its client is gone). `false` if the lease was lost (another
    /// sender claimed the row after it lapsed) or the row is gone.
    fn finish_backchannel_logout<'a>(
        &'a self,
        id: i64,
        lease: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a failed attempt by the holder of `lease`: one more attempt,
    /// `error`, the next try at `next_attempt_at`, the lease released.
    /// `false` if the lease was lost or the row is gone.
    fn retry_backchannel_logout<'a>(
        &'a self,
        id: i64,
        lease: &'a str,
        next_attempt_at: i64,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every queued row, by id (for the admin and the tests).
    fn backchannel_logouts(&self) -> BoxFuture<'_, Result<Vec<BackchannelLogout>, StoreError>>;

    /// When the earliest row can next be claimed (its `next_attempt_at`,
    /// or the end of its lease if later), `None` if the outbox is empty.
    fn next_backchannel_logout_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    // ---- client assertions ---------------------------------------------

    /// Remembers the `jti` of a `private_key_jwt` assertion of
    /// `client_id` until `expires_at` (Unix seconds); `false` when
    /// `(client_id, jti)` is remembered already: a replay (RFC 7523 §3
    /// item 7). One statement, so of two instances given the same
    /// assertion at once one accepts it. Forgets the `jti`s past their
    /// time (before `now`) first.
    fn remember_client_assertion<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    // ---- housekeeping --------------------------------------------------

    /// Deletes expired access tokens, expired refresh tokens of dead
    /// families (and the families), codes unredeemed past their expiry
    /// and redeemed codes that expired before `redeemed_codes_before` (a
    /// redeemed code is kept a while for replay detection), and drops
    /// sealed successors of rotations before `sealed_before`, and device
    /// codes past their expiry. Returns how
    /// many rows were deleted or cleared.
    fn purge_provider(
        &self,
        now: i64,
        redeemed_codes_before: i64,
        sealed_before: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
}
