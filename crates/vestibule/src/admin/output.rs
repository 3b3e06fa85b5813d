//! How the admin commands print: aligned tables, UTC times, JSON, with
//! text from identity sources cleaned of control characters.

use serde_json::{Value, json};
use vestibule_store::{Account, IdentityKey, Session, hex};

use crate::accounts::admin::clean;

/// Unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
pub(super) fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::web::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A plain text table: columns padded to their widest cell.
pub(super) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(head: &[&str]) -> Self {
        Self {
            rows: vec![head.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(super) fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 < r.len() {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

pub(super) fn account_json(a: &Account, identities: &[IdentityKey]) -> Value {
    json!({
        "id": a.id,
        "username": a.username,
        "email": a.email,
        "display_name": a.display_name,
        "groups": a.groups,
        "org": a.org,
        "status": a.status.as_str(),
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "last_seen_at": a.last_seen_at,
        "identities": identities
            .iter()
            .map(|k| format!("{}:{}", k.source, k.subject))
            .collect::<Vec<_>>(),
    })
}

pub(super) fn session_json(s: &Session, now: i64) -> Value {
    json!({
        "id_hash": hex(&s.id_hash),
        "account_id": s.account_id,
        "identity": format!("{}:{}", s.source, s.subject),
        "created_at": s.created_at,
        "last_seen_at": s.last_seen_at,
        "expires_at": s.expires_at,
        "live": s.is_live(now),
    })
}

pub(super) fn print_json(v: &Value) {
    // Serialising a `Value` cannot fail.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) fn describe(a: &Account) -> String {
    format!("account {} ({})", a.id, clean(&a.username))
}

/// What an empty listing prints: `account 3 (ann) has no devices`, or
/// `no devices` when the listing was not limited to one account.
pub(super) fn print_none(account: Option<&Account>, what: &str) {
    match account {
        Some(a) => println!("{} has no {what}", describe(a)),
        None => println!("no {what}"),
    }
}

// Alike web/mod.rs tests: each tests its own `when` (seconds here, minutes on pages).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(1_795_000_000_123), "2026-11-18 11:06:40");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide cell  x\n");
    }
}
