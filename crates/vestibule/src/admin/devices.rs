//! `vestibule devices …`: list and revoke device credentials.

use serde_json::{Value, json};
use vestibule_store::StoreError;

use super::context::{Ctx, Fail, find, usernames};
use super::output::{Table, describe, print_json, print_none, when};
use crate::accounts::admin::clean;
use crate::accounts::now_ms;

fn device_json(d: &vestibule_store::Device, username: &str) -> Value {
    json!({
        "id": d.id,
        "account_id": d.account_id,
        "username": username,
        "name": d.name,
        "kind": d.kind,
        "routes": d.routes,
        "created_at": d.created_at,
        "expires_at": d.expires_at,
        "last_used_at": d.last_used_at,
        "last_used_ip": d.last_used_ip,
    })
}

pub(super) async fn list(ctx: &Ctx, user: Option<&str>, json: bool) -> Result<(), Fail> {
    let account = match user {
        Some(spec) => Some(find(&*ctx.store, spec).await?),
        None => None,
    };
    let list = ctx.store.devices_of(account.as_ref().map(|a| a.id)).await?;
    let names = usernames(ctx, list.iter().map(|d| d.account_id)).await?;
    if json {
        print_json(
            &list
                .iter()
                .map(|d| device_json(d, &names[&d.account_id]))
                .collect(),
        );
        return Ok(());
    }
    if list.is_empty() {
        print_none(account.as_ref(), "devices");
        return Ok(());
    }
    let now = now_ms();
    let mut t = Table::new(&[
        "DEVICE",
        "ACCOUNT",
        "USERNAME",
        "NAME",
        "KIND",
        "ROUTES",
        "CREATED (UTC)",
        "LAST USED (UTC)",
        "EXPIRES (UTC)",
        "STATE",
    ]);
    for d in &list {
        t.row(vec![
            d.id.to_string(),
            d.account_id.to_string(),
            clean(&names[&d.account_id]),
            clean(&d.name),
            clean(&d.kind),
            clean(&d.routes.join(",")),
            when(d.created_at),
            match (d.last_used_at, &d.last_used_ip) {
                (Some(t), Some(ip)) => format!("{} from {}", when(t), clean(ip)),
                (Some(t), None) => when(t),
                _ => "never".to_owned(),
            },
            d.expires_at.map_or_else(|| "never".to_owned(), when),
            if d.is_live(now) { "live" } else { "expired" }.to_owned(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn revoke(ctx: &Ctx, id: i64) -> Result<(), Fail> {
    let Some(d) = ctx.store.device(id).await? else {
        return Err(Fail::Store(StoreError::NotFound));
    };
    if ctx.store.revoke_device(id, None).await? {
        println!(
            "revoked device {id} ({}) of account {}",
            clean(&d.name),
            d.account_id
        );
        ctx.audit("device-revoke", d.account_id, "ok", &format!("device:{id}"))
            .await;
    }
    Ok(())
}

pub(super) async fn revoke_all(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let mut n = 0;
    for d in ctx.store.devices_of(Some(a.id)).await? {
        if ctx.store.revoke_device(d.id, None).await? {
            n += 1;
        }
    }
    println!("revoked {n} device(s) of {}", describe(&a));
    ctx.audit("device-revoke", a.id, "ok", &format!("all {n} device(s)"))
        .await;
    Ok(())
}
