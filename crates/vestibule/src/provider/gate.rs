//! The provider's access tokens at the gate (issue 14): a route with
//! `[route.access_tokens]` lets API and CLI clients through with a token
//! vestibule issued, modelled on `devices/service.rs`.
//!
//! - **Opaque tokens** (`vat_…`): SHA-256, then a map lookup in memory;
//!   on a miss, `store.access_token()`. A known token costs one hash and
//!   one lookup.
//! - **JWT tokens** (RFC 9068): the signature is verified with the
//!   gateway's own key ring (the family of the token's `alg`, current or
//!   retired-but-published key), `typ` must be `at+jwt`, then `iss`, `aud`
//!   and `exp` ([`vestibule_core::access_token::check_jwt_claims`]); a
//!   forged token never reaches the store. Then it is looked up by its
//!   SHA-256 like an opaque one (the provider stores both kinds so), so a
//!   revoked JWT is refused too.
//! - **Revocation on every instance within 1 s**: the store publishes
//!   `Change::AccessToken` (a token revoked), `Change::Grant` (a grant or
//!   refresh family revoked, a code replayed, a refresh token reused) and
//!   `Change::Account` (status, groups, deletion) on its change feed; the
//!   cache drops what they name, and everything on `Change::Resync`.
//!   [`CACHE_TTL`] bounds the rest (a stored client deleted), and an entry
//!   never outlives its token, whose expiry is judged on every request.
//! - **What a token is worth** is decided by
//!   [`vestibule_core::access_token::judge_access`].
//! - **Service clients**: a `client_credentials` token has no account. It
//!   passes only on a route with `service_clients = true`, and the
//!   identity is then the client: source `oauth-client`, subject and
//!   username the `client_id`, no groups.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use vestibule_core::access_token::{
    AccessFacts, AccessJudgement, AccessRule, PresentedAccess, TokenForm, check_jwt_claims,
    judge_access,
};
use vestibule_core::credential::OwnerStanding;
use vestibule_core::identity::Identity;
use vestibule_core::policy::roles_for;
use vestibule_store::provider::AccessTokenRecord;
use vestibule_store::{Account, AccountStatus, Change, IdentityKey, Store, StoreError};

use super::{ProviderState, account_allowed, sha256};
use crate::accounts::now_ms;
use crate::keys::KeyRing;

/// How long a cached token is trusted without the feed saying otherwise.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// The most tokens kept; past it, expired and stale entries go, then all.
pub const MAX_ENTRIES: usize = 100_000;
/// The identity source of a `client_credentials` token's client.
pub const SERVICE_SOURCE: &str = "oauth-client";

/// What a presented token is worth on a route.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Pass, as this identity.
    Allowed {
        /// The account's (or, for a service client, the client's).
        identity: Box<Identity>,
        /// The client the token was issued to.
        client_id: String,
    },
    /// `invalid_token` (RFC 6750 §3.1): why, for the log and the
    /// challenge's `error_description`.
    Invalid(&'static str),
    /// `insufficient_scope`.
    InsufficientScope,
}

#[derive(Debug)]
struct Owner {
    account: Account,
    key: IdentityKey,
}

#[derive(Debug, Clone)]
struct Cached {
    record: Arc<AccessTokenRecord>,
    owner: Option<Arc<Owner>>,
    /// Whether the client still lets the owner in (`allowed_groups`).
    client_allows: bool,
    fetched: Instant,
}

/// The token cache.
#[derive(Default)]
pub struct AccessTokens {
    cache: RwLock<HashMap<[u8; 32], Cached>>,
}

impl AccessTokens {
    /// Drops what a change names.
    fn apply(&self, change: Change) {
        let Ok(mut c) = self.cache.write() else {
            return;
        };
        match change {
            Change::AccessToken(h) => {
                c.remove(&h);
            }
            // Rare events, so a scan is fine.
            Change::Grant(id) => c.retain(|_, e| e.record.grant_id != Some(id)),
            Change::Account(id) => c.retain(|_, e| e.record.account_id != Some(id)),
            Change::Resync => c.clear(),
            _ => {}
        }
    }

    /// Spawns the task that follows the store's change feed.
    pub fn follow_changes(self: &Arc<Self>, store: &Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        crate::accounts::follow_store_changes(store, Arc::downgrade(self), |me, change| {
            me.apply(change);
        })
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Cached> {
        let c = self.cache.read().ok()?;
        c.get(hash)
            .filter(|e| e.fetched.elapsed() < CACHE_TTL)
            .cloned()
    }

    async fn fetch(&self, p: &ProviderState, hash: [u8; 32]) -> Result<Option<Cached>, StoreError> {
        crate::accounts::reachable(&p.store)?;
        let Some(record) = p.store.access_token(&hash).await? else {
            return Ok(None);
        };
        let client = p.clients.find(p.store.as_ref(), &record.client_id).await?;
        let Some(client) = client else {
            return Ok(None);
        };
        let owner = match record.account_id {
            None => None,
            Some(id) => {
                let Some(account) = p.store.account(id).await? else {
                    return Ok(None);
                };
                let key = p
                    .store
                    .identities(id)
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| IdentityKey {
                        source: "oauth".into(),
                        subject: id.to_string(),
                    });
                Some(Arc::new(Owner { account, key }))
            }
        };
        let entry = Cached {
            client_allows: owner
                .as_ref()
                .is_none_or(|o| account_allowed(&o.account, &client)),
            record: Arc::new(record),
            owner,
            fetched: Instant::now(),
        };
        if let Ok(mut c) = self.cache.write() {
            if c.len() >= MAX_ENTRIES {
                let now = now_ms();
                c.retain(|_, e| e.record.expires_at > now && e.fetched.elapsed() < CACHE_TTL);
                if c.len() >= MAX_ENTRIES {
                    c.clear();
                }
            }
            c.insert(hash, entry.clone());
        }
        Ok(Some(entry))
    }

    /// Decides what `presented` is worth under `rule`. Fails only when
    /// the store is needed and unreachable (the caller answers 503).
    pub async fn verify(
        &self,
        p: &ProviderState,
        keys: Option<&KeyRing>,
        roles: &[(String, Vec<String>)],
        presented: &PresentedAccess,
        rule: &AccessRule,
    ) -> Result<Verdict, StoreError> {
        let token = presented.token.expose();
        let now = now_ms();
        let jwt_client = match presented.form {
            TokenForm::Opaque => None,
            TokenForm::Jwt => match verify_jwt(keys, &p.issuer, token, now) {
                Ok(client) => Some(client),
                Err(why) => return Ok(Verdict::Invalid(why)),
            },
        };
        let hash = sha256(token);
        let entry = match self.cached(&hash) {
            Some(e) => e,
            None => match self.fetch(p, hash).await? {
                Some(e) => e,
                None => return Ok(Verdict::Invalid("unknown, revoked or expired token")),
            },
        };
        let record = &entry.record;
        if jwt_client.is_some_and(|c| c != record.client_id) {
            return Ok(Verdict::Invalid(
                "the token's client_id is not the one it was issued to",
            ));
        }
        let facts = AccessFacts {
            client_id: &record.client_id,
            scopes: &record.scopes,
            expires_at: record.expires_at,
            account: entry.owner.as_ref().map(|o| {
                (
                    match o.account.status {
                        AccountStatus::Active => OwnerStanding::Active,
                        AccountStatus::Pending => OwnerStanding::Pending,
                        AccountStatus::Disabled => OwnerStanding::Disabled,
                    },
                    entry.client_allows,
                )
            }),
        };
        let why = match judge_access(&facts, rule, now) {
            AccessJudgement::Allowed => None,
            AccessJudgement::Expired => Some("expired token"),
            AccessJudgement::WrongClient => Some("this route does not accept the token's client"),
            AccessJudgement::InsufficientScope => return Ok(Verdict::InsufficientScope),
            AccessJudgement::ServiceClient => {
                Some("a client_credentials token has no user, and this route takes users only")
            }
            AccessJudgement::Pending => Some("the account waits for approval"),
            AccessJudgement::Disabled => Some("the account is disabled"),
            AccessJudgement::AccountNotAllowed => {
                Some("the account may no longer use the token's client")
            }
        };
        if let Some(why) = why {
            return Ok(Verdict::Invalid(why));
        }
        let identity = match &entry.owner {
            Some(o) => Identity {
                source: o.key.source.clone(),
                subject: o.key.subject.clone(),
                username: o.account.username.clone(),
                email: o.account.email.clone(),
                display_name: o.account.display_name.clone(),
                groups: o.account.groups.clone(),
                org: o.account.org.clone(),
                roles: roles_for(&o.account.groups, roles),
                ..Identity::default()
            },
            None => Identity {
                source: SERVICE_SOURCE.into(),
                subject: record.client_id.clone(),
                username: record.client_id.clone(),
                ..Identity::default()
            },
        };
        Ok(Verdict::Allowed {
            identity: Box::new(identity),
            client_id: record.client_id.clone(),
        })
    }
}

/// Verifies a JWT access token with our own keys (RFC 9068 §4): the
/// family of its `alg` (an algorithm we do not sign with is refused),
/// `typ` `at+jwt` required, then the claims. Returns its `client_id`.
fn verify_jwt(
    keys: Option<&KeyRing>,
    issuer: &str,
    token: &str,
    now: i64,
) -> Result<String, &'static str> {
    let keys = keys.ok_or("the signing keys are not loaded")?;
    let claims =
        super::id_token::verify_own(keys, token, &[super::id_token::ACCESS_TOKEN_TYP], true, now)?;
    check_jwt_claims(&claims, issuer, super::secs(now)).map(|c| c.client_id)
}
