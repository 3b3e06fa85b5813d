//! `vestibule keys …`: list and rotate the assertion signing keys.

use serde_json::json;
use vestibule_store::AuditEntry;

use super::context::{Ctx, Fail};
use super::output::{Table, print_json, when};
use crate::accounts::now_ms;
use crate::keys::{KeyRing, Rotation};

pub(super) async fn list(ctx: &Ctx, json: bool) -> Result<(), Fail> {
    let rows = ctx.store.signing_keys().await?;
    let now = now_ms();
    // The key that signs, per algorithm (each is its own family): the
    // newest unretired one whose time has come (an older one is retired by
    // the gateways at their next reload).
    let signing = |alg: &str| {
        rows.iter()
            .filter(|r| r.alg == alg && r.retired_at.is_none() && r.signs_from <= now)
            .max_by_key(|r| (r.signs_from, r.created_at, r.kid.as_str()))
            .map(|r| r.kid.as_str())
    };
    let state = |r: &vestibule_store::StoredSigningKey| match (r.retired_at, r.verify_until) {
        (Some(_), Some(until)) if until <= now => "expired",
        (Some(_), _) => "retired",
        (None, _) if r.signs_from > now => "published",
        (None, _) if Some(r.kid.as_str()) == signing(&r.alg) => "signing",
        (None, _) => "replaced",
    };
    if json {
        print_json(&json!(
            rows.iter()
                .map(|r| json!({
                    "kid": r.kid,
                    "alg": r.alg,
                    "sealed": r.private_format == vestibule_store::PrivateKeyFormat::Aes256Gcm,
                    "created_at": r.created_at,
                    "signs_from": r.signs_from,
                    "retired_at": r.retired_at,
                    "verify_until": r.verify_until,
                    "state": state(r),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no signing keys yet (the gateway makes the first when it starts)");
        return Ok(());
    }
    let mut t = Table::new(&[
        "KID",
        "ALG",
        "AT REST",
        "CREATED (UTC)",
        "SIGNS FROM (UTC)",
        "PUBLISHED UNTIL (UTC)",
        "STATE",
    ]);
    for r in &rows {
        t.row(vec![
            r.kid.clone(),
            r.alg.clone(),
            r.private_format.as_str().to_owned(),
            when(r.created_at),
            when(r.signs_from),
            r.verify_until.map_or_else(|| "-".to_owned(), when),
            state(r).to_owned(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn rotate(ctx: &Ctx, immediately: bool) -> Result<(), Fail> {
    let ring = KeyRing::open(ctx.store.clone(), ctx.keys.clone())
        .await
        .map_err(Fail::Setup)?;
    // Every family (assertions, ID tokens) rotates together: a forced
    // rotation is what one does after a leak.
    let outcomes = ring
        .rotate_all(true, immediately)
        .await
        .map_err(Fail::Setup)?;
    let added: Vec<(String, i64)> = outcomes
        .into_iter()
        .filter_map(|(_, r)| match r {
            Rotation::Added { kid, signs_from } => Some((kid, signs_from)),
            Rotation::NotNeeded => None,
        })
        .collect();
    if added.is_empty() {
        return Err(Fail::Refused(
            "another instance added a key at the same moment; see `vestibule keys list`".into(),
        ));
    }
    for (kid, signs_from) in &added {
        if immediately {
            println!(
                "key {kid} signs now; the previous key stays published until its tokens expire"
            );
        } else {
            println!(
                "key {kid} is published and signs from {} (UTC); running gateways pick it up within {} (`[keys] reload_every`)",
                when(*signs_from),
                crate::config::HumanDuration(ctx.keys.reload_every)
            );
        }
    }
    let kid = added
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let e = AuditEntry::new(
        now_ms(),
        ctx.actor.name.as_str(),
        "key-rotate",
        format!("key:{kid}"),
    )
    .with_outcome("ok")
    .with_detail(format!(
        "{}{}",
        if immediately {
            "signs now"
        } else {
            "published ahead"
        },
        ctx.actor.note
    ));
    ctx.warn_if_unaudited(ctx.store.append_audit(&e).await);
    Ok(())
}
