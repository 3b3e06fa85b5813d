//! `vestibule grants …`: the OpenID Connect grants an account holds (apps
//! with access, issue 14), listed and revoked from the command line.
//!
//! Revoking goes through [`crate::provider::grants::revoke`], the same
//! function as the apps page and the admin page: the grant goes with its
//! refresh families and access tokens, the user's consent to that client
//! is forgotten, and an `oidc-grant-revoke` entry is audited (actor
//! `cli:<$USER>`). Running gateways refuse the grant's tokens within about
//! a second (the store's change feed). The CLI runs in its own process, so
//! it does not count in a gateway's `vestibule_oidc_grants_revoked_total`.

use serde_json::json;
use vestibule_store::StoreError;

use super::context::{Ctx, Fail, find};
use super::output::{Table, describe, print_json, print_none, when};
use crate::accounts::admin::clean;
use crate::provider::clients::ClientRegistry;
use crate::provider::grants::{self, By};

/// The client registry of `[oidc_provider]`, or exit 2: without the
/// provider no grant is ever issued or read.
fn registry(ctx: &Ctx) -> Result<ClientRegistry, Fail> {
    ctx.provider
        .as_ref()
        .map(ClientRegistry::new)
        .ok_or_else(|| {
            Fail::Setup(
                "the configuration has no [oidc_provider] section: the provider is off, so no \
             grant is issued or honoured"
                    .into(),
            )
        })
}

pub(super) async fn list(ctx: &Ctx, spec: &str, json: bool) -> Result<(), Fail> {
    let clients = registry(ctx)?;
    let a = find(&*ctx.store, spec).await?;
    let views = grants::views(&*ctx.store, &clients, a.id, None).await?;
    if json {
        print_json(
            &views
                .iter()
                .map(|g| {
                    json!({
                        "id": g.id,
                        "account_id": a.id,
                        "username": a.username,
                        "client_id": g.client_id,
                        "client_name": g.client_name,
                        "scope": g.scope,
                        "created_at": g.created_at,
                        "last_used_at": g.last_used_at,
                        "origin": g.origin,
                        "device": g.device,
                    })
                })
                .collect(),
        );
        return Ok(());
    }
    if views.is_empty() {
        print_none(Some(&a), "grants");
        return Ok(());
    }
    let mut t = Table::new(&[
        "GRANT",
        "CLIENT",
        "NAME",
        "SCOPE",
        "CREATED (UTC)",
        "LAST USED (UTC)",
    ]);
    for g in &views {
        t.row(vec![
            g.id.to_string(),
            clean(&g.client_id),
            clean(&g.client_name),
            clean(&g.scope),
            when(g.created_at),
            when(g.last_used_at),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn revoke(ctx: &Ctx, id: i64) -> Result<(), Fail> {
    registry(ctx)?;
    let Some(g) = grants::revoke(&*ctx.store, None, id, None, By::Admin, &ctx.actor).await? else {
        return Err(Fail::Store(StoreError::NotFound));
    };
    println!(
        "revoked grant {id} of client {} held by account {}",
        clean(&g.client_id),
        g.account_id
    );
    Ok(())
}

pub(super) async fn revoke_all(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    registry(ctx)?;
    let a = find(&*ctx.store, spec).await?;
    let mut n = 0;
    for g in ctx.store.grants_of(a.id).await? {
        if grants::revoke(&*ctx.store, None, g.id, Some(a.id), By::Admin, &ctx.actor)
            .await?
            .is_some()
        {
            n += 1;
        }
    }
    println!("revoked {n} grant(s) of {}", describe(&a));
    Ok(())
}
