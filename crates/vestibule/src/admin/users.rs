//! `vestibule users …`: list, show, approve, enable, disable, delete, link.

use serde_json::Value;
use vestibule_store::{AccountStatus, StoreError};

use super::cli::StatusArg;
use super::context::{Ctx, Fail, find, parse_identity};
use super::output::{Table, account_json, describe, print_json, session_json, when};
use crate::accounts::admin::{self, Done, StatusAction, clean, identities_text, key_text};
use crate::accounts::now_ms;

pub(super) async fn list(ctx: &Ctx, status: Option<StatusArg>, json: bool) -> Result<(), Fail> {
    let list = ctx
        .store
        .accounts(status.map(AccountStatus::from), u32::MAX)
        .await?;
    let mut rows = Vec::with_capacity(list.len());
    for a in list {
        let ids = ctx.store.identities(a.id).await?;
        rows.push((a, ids));
    }
    if json {
        print_json(&Value::Array(
            rows.iter().map(|(a, ids)| account_json(a, ids)).collect(),
        ));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no accounts");
        return Ok(());
    }
    let mut t = Table::new(&[
        "ID",
        "USERNAME",
        "STATUS",
        "EMAIL",
        "GROUPS",
        "IDENTITIES",
        "LAST SEEN (UTC)",
    ]);
    for (a, ids) in &rows {
        t.row(vec![
            a.id.to_string(),
            clean(&a.username),
            a.status.to_string(),
            clean(a.email.as_deref().unwrap_or("-")),
            clean(&a.groups.join(",")),
            identities_text(ids),
            when(a.last_seen_at),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn show(ctx: &Ctx, spec: &str, json: bool) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let ids = ctx.store.identities(a.id).await?;
    let sessions = ctx.store.sessions_of(Some(a.id)).await?;
    let now = now_ms();
    if json {
        let mut v = account_json(&a, &ids);
        v["sessions"] = sessions.iter().map(|s| session_json(s, now)).collect();
        print_json(&v);
        return Ok(());
    }
    let opt = |o: &Option<String>| clean(o.as_deref().unwrap_or("-"));
    let live = sessions.iter().filter(|s| s.is_live(now)).count();
    let lines = [
        ("id", a.id.to_string()),
        ("username", clean(&a.username)),
        ("status", a.status.to_string()),
        ("email", opt(&a.email)),
        ("display name", opt(&a.display_name)),
        ("groups", clean(&a.groups.join(", "))),
        ("org", opt(&a.org)),
        ("identities", identities_text(&ids)),
        ("created", format!("{} UTC", when(a.created_at))),
        ("updated", format!("{} UTC", when(a.updated_at))),
        ("last seen", format!("{} UTC", when(a.last_seen_at))),
        (
            "sessions",
            format!("{live} live, {} expired", sessions.len() - live),
        ),
    ];
    for (k, v) in lines {
        println!("{:<13} {v}", format!("{k}:"));
    }
    Ok(())
}

pub(super) async fn set_status(ctx: &Ctx, spec: &str, action: StatusAction) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let r = admin::set_status(&*ctx.store, &a, action, &ctx.actor).await?;
    ctx.warn_if_unaudited(r.audit);
    match r.done {
        Done::AlreadyActive => {
            println!("{} is already active; nothing changed", describe(&a));
            Ok(())
        }
        Done::Gone => Err(Fail::Refused(format!("{} no longer exists", describe(&a)))),
        Done::Refused(why) => Err(Fail::Refused(format!(
            "{} is not changed: {why:?}",
            describe(&a)
        ))),
        Done::Changed(detail) => {
            let verb = match action {
                StatusAction::Approve => "approved",
                StatusAction::Enable => "enabled",
                StatusAction::Disable => "disabled",
            };
            println!("{verb} {}: {detail}", describe(&a));
            if let Some(dir) = &ctx.directory
                && let Some(now) = ctx.store.account(a.id).await?
            {
                match dir.relocate(&*ctx.store, &now).await {
                    Ok(()) => {}
                    Err(e) => eprintln!(
                        "warning: the directory entry was not moved ({e}); it moves at the account's next login"
                    ),
                }
            }
            Ok(())
        }
    }
}

pub(super) async fn delete(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let r = admin::delete(&*ctx.store, &a, &ctx.actor).await?;
    ctx.warn_if_unaudited(r.audit);
    match r.done {
        Done::Changed(detail) => {
            println!("deleted {}: {detail}", describe(&a));
            Ok(())
        }
        Done::AlreadyActive | Done::Gone => {
            Err(Fail::Refused(format!("{} no longer exists", describe(&a))))
        }
        Done::Refused(why) => Err(Fail::Refused(format!(
            "{} is not deleted: {why:?}",
            describe(&a)
        ))),
    }
}

pub(super) async fn link(ctx: &Ctx, spec: &str, identity: &str) -> Result<(), Fail> {
    let Some(key) = parse_identity(identity) else {
        return Err(Fail::Setup(format!(
            "{} is not an identity: write SOURCE:SUBJECT, e.g. authentik:2f6c…",
            clean(identity)
        )));
    };
    let a = find(&*ctx.store, spec).await?;
    if let Some(source) = &ctx.source
        && *source != key.source
        && ctx.also_source.as_deref() != Some(key.source.as_str())
    {
        eprintln!(
            "warning: this gateway's identity source is `{source}`; it never sees identities \
             of source `{}`",
            clean(&key.source)
        );
    }
    match ctx.store.link_identity(a.id, &key).await {
        Ok(()) => {
            let detail = format!("identity {}", key_text(&key));
            println!("linked {} to {}", key_text(&key), describe(&a));
            ctx.audit("link", a.id, "ok", &detail).await;
            Ok(())
        }
        Err(StoreError::Conflict(_)) => {
            let holder = match ctx.store.account_by_identity(&key).await {
                Ok(Some(h)) => describe(&h),
                _ => "another account".to_owned(),
            };
            let msg = format!(
                "the identity {} is already linked to {holder}; nothing changed",
                key_text(&key)
            );
            ctx.audit("link", a.id, "conflict", &msg).await;
            Err(Fail::Refused(msg))
        }
        Err(StoreError::NotFound) => {
            Err(Fail::Refused(format!("{} no longer exists", describe(&a))))
        }
        Err(e) => Err(e.into()),
    }
}

/// `users unlink`: detaches an identity from an account, never its last
/// one (the store's one conditional statement decides).
pub(super) async fn unlink(ctx: &Ctx, spec: &str, identity: &str) -> Result<(), Fail> {
    let Some(key) = parse_identity(identity) else {
        return Err(Fail::Setup(format!(
            "{} is not an identity: write SOURCE:SUBJECT, e.g. authentik:2f6c…",
            clean(identity)
        )));
    };
    let a = find(&*ctx.store, spec).await?;
    if ctx.store.unlink_identity(a.id, &key).await? {
        let detail = format!("identity {}", key_text(&key));
        println!("unlinked {} from {}", key_text(&key), describe(&a));
        ctx.audit("unlink", a.id, "ok", &detail).await;
        Ok(())
    } else {
        let msg = format!(
            "the identity {} is not linked to {}, or is its last one; nothing changed",
            key_text(&key),
            describe(&a)
        );
        ctx.audit("unlink", a.id, "refused", &msg).await;
        Err(Fail::Refused(msg))
    }
}
