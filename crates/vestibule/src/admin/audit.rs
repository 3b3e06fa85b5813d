//! `vestibule audit …`: read (and follow) the audit log.

use std::time::Duration;

use serde_json::{Value, json};
use vestibule_store::{AuditEntry, AuditFilter};

use super::cli::AuditArgs;
use super::context::{Ctx, Fail};
use super::output::{Table, when};
use crate::accounts::admin::clean;
use crate::accounts::now_ms;

fn audit_json(e: &AuditEntry) -> Value {
    json!({
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "client_ip": e.client_ip,
        "outcome": e.outcome,
        "detail": e.detail,
    })
}

fn audit_table() -> Table {
    Table::new(&[
        "TIME (UTC)",
        "ACTOR",
        "ACTION",
        "SUBJECT",
        "OUTCOME",
        "CLIENT",
        "DETAIL",
    ])
}

fn audit_row(t: &mut Table, e: &AuditEntry) {
    t.row(vec![
        when(e.at),
        clean(&e.actor),
        clean(&e.action),
        clean(&e.subject),
        clean(&e.outcome),
        clean(e.client_ip.as_deref().unwrap_or("-")),
        clean(&e.detail),
    ]);
}

/// Prints entries in the order given; in follow mode each line on its own
/// (no column alignment across polls).
fn print_entries(entries: &[AuditEntry], json: bool, header: bool) {
    if json {
        for e in entries {
            println!("{}", audit_json(e));
        }
        return;
    }
    let mut t = audit_table();
    for e in entries {
        audit_row(&mut t, e);
    }
    let text = t.render();
    let mut lines = text.lines();
    if !header {
        lines.next();
    }
    for l in lines {
        println!("{l}");
    }
}

pub(super) async fn run(ctx: &Ctx, args: AuditArgs) -> Result<(), Fail> {
    let since = args
        .since
        .map(|d| now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    let mut filter = AuditFilter {
        since,
        action: args.action.clone(),
        subject: args.subject.clone(),
        limit: args.limit,
    };
    let mut first = ctx.store.audit(&filter).await?;
    if !args.follow {
        if first.is_empty() && !args.json {
            println!("no audit entries match");
        } else {
            print_entries(&first, args.json, true);
        }
        return Ok(());
    }

    // Follow: chronological, like `tail -f`. The cursor is the newest `at`
    // printed and how many entries with that `at` were printed (entries
    // come newest first, ties last-appended first).
    let mut cursor = first.first().map(|e| e.at).or(since);
    let mut printed_at_cursor = first.iter().filter(|e| Some(e.at) == cursor).count();
    first.reverse();
    print_entries(&first, args.json, true);
    filter.limit = 10_000;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        filter.since = cursor;
        let got = match ctx.store.audit(&filter).await {
            Ok(v) => {
                if failing {
                    eprintln!("the database is reachable again");
                    failing = false;
                }
                v
            }
            Err(e) => {
                if !failing {
                    eprintln!("warning: {e}; still trying");
                    failing = true;
                }
                continue;
            }
        };
        let at_cursor = got.iter().filter(|e| Some(e.at) == cursor).count();
        let fresh_len = got.len() - at_cursor.min(printed_at_cursor);
        if fresh_len == 0 {
            continue;
        }
        let mut fresh: Vec<AuditEntry> = got[..fresh_len].to_vec();
        let newest = fresh[0].at;
        if Some(newest) == cursor {
            printed_at_cursor += fresh_len;
        } else {
            cursor = Some(newest);
            printed_at_cursor = got.iter().filter(|e| e.at == newest).count();
        }
        fresh.reverse();
        print_entries(&fresh, args.json, false);
    }
}
