//! Apps with access (issue 14): the grants a user holds, as people see
//! them, and the one way a grant is revoked by a person, whether the user
//! on their own page, an admin on the admin page, or `vestibule grants`.
//!
//! ## Invariants
//!
//! - [`revoke`] is the only caller of `ProviderStore::revoke_grant` outside
//!   the provider's own token rules: whatever else a revocation must do
//!   (back-channel logout, queued by the store's `revoke_grant`) happens
//!   for every revocation a person asks for.
//! - A user names only their own grants: with `owner`, a grant of another
//!   account is "no such grant", exactly like an unknown id, so the answer
//!   tells nothing about other people's grants.
//! - Every revocation appends an audit entry `oidc-grant-revoke` (who
//!   acted, whose grant, which client) and counts in
//!   `vestibule_oidc_grants_revoked_total{by}`.
//! - Revoking a grant also forgets the consent the user gave that client
//!   (`ProviderStore::forget_consent`): an app the user cut off must ask
//!   again before it gets a new grant, instead of getting one silently
//!   through the remembered consent. Other grants of the same client (on
//!   another device) keep working: a grant does not depend on the consent
//!   once issued.

use std::collections::HashMap;

use vestibule_store::provider::OidcGrant;
use vestibule_store::{AuditEntry, Store, StoreError};

use super::clients::ClientRegistry;
use super::consent::describe;
use crate::accounts::admin::Actor;
use crate::accounts::now_ms;
use crate::metrics::Metrics;

/// Who revokes: the grant's holder, or an administrator (the admin page or
/// the CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The user, of their own grant.
    Owner,
    /// An administrator, of anyone's.
    Admin,
}

impl By {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Owner => "user",
            Self::Admin => "admin",
        }
    }
}

/// Revokes grant `id`: with `owner`, only if that account holds it (the
/// user's own page); without, whoever holds it (admins). Deletes the grant
/// with its refresh families and access tokens (through the store's
/// `revoke_grant`), forgets the user's consent to that client, audits and
/// counts. `None` if there was no such grant (for `owner`: none of
/// theirs); then nothing is audited as done.
pub async fn revoke(
    store: &dyn Store,
    metrics: Option<&Metrics>,
    id: i64,
    owner: Option<i64>,
    by: By,
    actor: &Actor,
) -> Result<Option<OidcGrant>, StoreError> {
    let Some(grant) = store.grant(id).await? else {
        return Ok(None);
    };
    if owner.is_some_and(|o| o != grant.account_id) {
        return Ok(None);
    }
    // The owner check again in the store: the grant read above could have
    // been revoked (or its id reused) in between.
    if !store.revoke_grant(id, Some(grant.account_id)).await? {
        return Ok(None);
    }
    let forgot = store
        .forget_consent(grant.account_id, &grant.client_id)
        .await?;
    if let Some(m) = metrics {
        m.grant_revoked(by);
    }
    let e = AuditEntry::new(
        now_ms(),
        actor.name.as_str(),
        "oidc-grant-revoke",
        format!("account:{}", grant.account_id),
    )
    .with_client_ip(actor.client_ip)
    .with_outcome("ok")
    .with_detail(format!(
        "grant {} of client {} ({}){}{}",
        grant.id,
        grant.client_id,
        match by {
            By::Owner => "by its holder",
            By::Admin => "by an administrator",
        },
        if forgot { "; consent forgotten" } else { "" },
        actor.note
    ));
    crate::accounts::record_audit(store, &e).await;
    Ok(Some(grant))
}

/// A grant as the pages and the CLI show it.
pub struct GrantView {
    /// The grant's id (the revoke forms and `vestibule grants revoke`).
    pub id: i64,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's name from the registry; its id when the client is
    /// gone from it (a grant outlives nothing, but a file edit can drop a
    /// client before a reload).
    pub client_name: String,
    /// The granted scopes, as the consent page words them.
    pub scopes: Vec<String>,
    /// The granted scopes, space-separated, as granted.
    pub scope: String,
    /// When the grant was made (unix ms).
    pub created_at: i64,
    /// When a token of it was last issued or refreshed (unix ms).
    pub last_used_at: i64,
    /// Where it came from (see [`origin`]).
    pub origin: &'static str,
    /// The browser and system of the session that granted it (from its
    /// `User-Agent`), when that session is known and recorded one: the
    /// device the grant was given from. A grant never outlives its
    /// session (a session's end revokes its grants), so a grant with a
    /// session reference finds it.
    pub device: Option<String>,
}

/// Where a grant came from, as far as the store knows: the page session
/// that signed in (authorization code flow, and the device grant approved
/// from a page), by its reference. `current` is the viewer's own session
/// reference, when a user looks at their own grants.
pub fn origin(grant: &OidcGrant, current: Option<&str>) -> &'static str {
    match (grant.session_ref.as_deref(), current) {
        (Some(r), Some(c)) if r == c => "this browser session",
        (Some(_), _) => "a browser session",
        (None, _) => "unknown",
    }
}

/// The grants of `account_id`, oldest first, with client names from
/// `clients` (one registry lookup per client).
pub async fn views(
    store: &dyn Store,
    clients: &ClientRegistry,
    account_id: i64,
    current_session: Option<&str>,
) -> Result<Vec<GrantView>, StoreError> {
    let grants = store.grants_of(account_id).await?;
    // One read for every grant's device: the account's sessions.
    let devices: HashMap<String, String> = if grants.iter().any(|g| g.session_ref.is_some()) {
        store
            .sessions_of(Some(account_id))
            .await?
            .into_iter()
            .filter_map(|s| {
                let ua = s.user_agent?;
                Some((
                    vestibule_store::hex(&s.id_hash),
                    vestibule_core::user_agent::describe(&ua).to_string(),
                ))
            })
            .collect()
    } else {
        HashMap::new()
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(grants.len());
    for g in grants {
        if !names.contains_key(&g.client_id) {
            let name = clients
                .find(store, &g.client_id)
                .await?
                .map_or_else(|| g.client_id.clone(), |c| c.name.clone());
            names.insert(g.client_id.clone(), name);
        }
        out.push(GrantView {
            id: g.id,
            client_name: names[&g.client_id].clone(),
            scopes: g.scopes.split_whitespace().map(describe).collect(),
            scope: g.scopes.clone(),
            created_at: g.created_at,
            last_used_at: g.last_used_at,
            origin: origin(&g, current_session),
            device: g.session_ref.as_ref().and_then(|r| devices.get(r).cloned()),
            client_id: g.client_id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(session_ref: Option<&str>) -> OidcGrant {
        OidcGrant {
            id: 1,
            account_id: 2,
            client_id: "c".into(),
            scopes: "openid".into(),
            session_ref: session_ref.map(str::to_owned),
            auth_time: 0,
            created_at: 0,
            last_used_at: 0,
        }
    }

    #[test]
    fn origins() {
        assert_eq!(origin(&grant(Some("a")), Some("a")), "this browser session");
        assert_eq!(origin(&grant(Some("a")), Some("b")), "a browser session");
        assert_eq!(origin(&grant(Some("a")), None), "a browser session");
        assert_eq!(origin(&grant(None), Some("a")), "unknown");
    }
}
