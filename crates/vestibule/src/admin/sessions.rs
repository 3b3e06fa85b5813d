//! `vestibule sessions …`: list and revoke browser sessions.

use vestibule_store::hex;

use super::context::{Ctx, Fail, find, usernames};
use super::output::{Table, describe, print_json, print_none, session_json, when};
use crate::accounts::admin::clean;
use crate::accounts::now_ms;

pub(super) async fn list(ctx: &Ctx, user: Option<&str>, json: bool) -> Result<(), Fail> {
    let account = match user {
        Some(spec) => Some(find(&*ctx.store, spec).await?),
        None => None,
    };
    let list = ctx
        .store
        .sessions_of(account.as_ref().map(|a| a.id))
        .await?;
    let now = now_ms();
    if json {
        print_json(&list.iter().map(|s| session_json(s, now)).collect());
        return Ok(());
    }
    if list.is_empty() {
        print_none(account.as_ref(), "sessions");
        return Ok(());
    }
    let names = usernames(ctx, list.iter().map(|s| s.account_id)).await?;
    let mut t = Table::new(&[
        "SESSION",
        "ACCOUNT",
        "USERNAME",
        "IDENTITY",
        "STARTED (UTC)",
        "LAST SEEN (UTC)",
        "EXPIRES (UTC)",
        "STATE",
    ]);
    for s in &list {
        t.row(vec![
            hex(&s.id_hash[..6]),
            s.account_id.to_string(),
            clean(&names[&s.account_id]),
            clean(&format!("{}:{}", s.source, s.subject)),
            when(s.created_at),
            when(s.last_seen_at),
            when(s.expires_at),
            if s.is_live(now) { "live" } else { "expired" }.to_owned(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn revoke(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let n = ctx.store.revoke_sessions_of(a.id).await?;
    println!("revoked {n} session(s) of {}", describe(&a));
    ctx.audit("session-revoke", a.id, "ok", &format!("all {n} session(s)"))
        .await;
    Ok(())
}
