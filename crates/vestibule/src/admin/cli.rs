//! The admin commands: `vestibule users`, `sessions`, `devices`, `audit`
//! and `migrate`.
//!
//! They open the database the gateway's configuration names and work on it
//! while gateways run. Every change goes through the store, which publishes
//! it on the change feed in the same transaction, so running gateways drop
//! what they cached about the account within about a second.
//!
//! ## Invariants
//!
//! - An ACCOUNT argument is a numeric id, a `SOURCE:SUBJECT` identity, or a
//!   username that matches exactly one account. It is never matched by
//!   email. A username that matches several accounts is refused (exit 1)
//!   with the list of candidates.
//! - Every mutating command appends an audit entry (actor
//!   `cli:<$USER>`, subject `account:<id>`) after the change, with the
//!   outcome, and prints what it did.
//! - `disable` and `delete` also revoke the account's sessions.
//! - Exit codes: 0 done; 1 not found, ambiguous or conflict; 2 configuration,
//!   database or argument error.
//! - Text from identity sources (usernames, groups…) is printed with control
//!   characters escaped, so a crafted name cannot rewrite the terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use vestibule_store::{
    Account, AccountStatus, AuditEntry, AuditFilter, Backend, IdentityKey, Session, Store,
    StoreError,
};

use crate::accounts::now_ms;
use crate::config::{self, AccountSettings, HumanDuration, Severity};

/// `--config`, shared by every admin command.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The gateway's configuration file (its `[database]` and `[accounts]`).
    #[arg(
        long,
        short,
        global = true,
        env = "VESTIBULE_CONFIG",
        default_value = "vestibule.toml"
    )]
    pub config: PathBuf,
}

/// `vestibule users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List accounts, in id order.
    List {
        /// Only accounts with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one account: attributes, identities, sessions.
    Show {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending account: it may sign in.
    Approve {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Disable an account and revoke its sessions.
    Disable {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Delete an account with its identities and sessions.
    Delete {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Link another identity to an account (the same person at another
    /// source, or under a new subject).
    Link {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// The identity to attach, as SOURCE:SUBJECT.
        identity: String,
    },
}

/// An account status, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Waiting for approval.
    Pending,
    /// May sign in.
    Active,
    /// Refused.
    Disabled,
}

impl From<StatusArg> for AccountStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Pending => Self::Pending,
            StatusArg::Active => Self::Active,
            StatusArg::Disabled => Self::Disabled,
        }
    }
}

/// `vestibule sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, oldest first.
    List {
        /// Only this account's sessions.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every session of an account.
    Revoke {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        #[arg(long)]
        user: String,
    },
}

/// `vestibule devices …`.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List device credentials, in id order.
    List {
        /// Only this account's devices.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one device credential (by its id), or every device of an
    /// account (`--user`). Running gateways refuse it within a second.
    Revoke {
        /// The device id (see `devices list`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<i64>,
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        #[arg(long)]
        user: Option<String>,
    },
}

/// `vestibule audit …`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only entries this recent, e.g. `30m`, `1h`, `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only entries with exactly this action (`approve`, `disable`,
    /// `provision`, `session-start`…).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries with exactly this subject (`account:12`,
    /// `authentik:<uid>`…).
    #[arg(long)]
    pub subject: Option<String>,
    /// At most this many entries (with `--follow`: at first).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Keep printing new entries (oldest first) until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    HumanDuration::parse(s).map(|d| d.0)
}

/// Why a command failed.
#[derive(Debug)]
enum Fail {
    /// Not found, ambiguous, conflict: exit 1.
    Refused(String),
    /// Configuration, argument or database trouble: exit 2.
    Setup(String),
    /// A store call failed: 1 for `NotFound`/`Conflict`, else 2.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    fn exit(self) -> ExitCode {
        let (code, msg) = match self {
            Self::Refused(m) => (1, m),
            Self::Setup(m) => (2, m),
            Self::Store(e @ (StoreError::NotFound | StoreError::Conflict(_))) => (1, e.to_string()),
            Self::Store(e) => (2, e.to_string()),
        };
        eprintln!("error: {msg}");
        ExitCode::from(code)
    }
}

fn finish(r: Result<(), Fail>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

// ---- opening the database ---------------------------------------------

/// Loads and validates the configuration and returns its `[accounts]`.
fn account_settings(path: &Path) -> Result<(AccountSettings, Option<String>), Fail> {
    let file = config::load(path).map_err(|e| Fail::Setup(e.to_string()))?;
    let (settings, diags) = config::validate(&file);
    let Some(settings) = settings else {
        for d in diags.iter().filter(|d| d.severity == Severity::Error) {
            eprintln!("{d}");
        }
        return Err(Fail::Setup(format!(
            "{} has errors (see `vestibule check`)",
            path.display()
        )));
    };
    let source = settings
        .identity_source
        .as_ref()
        .map(|s| s.name().to_owned());
    match settings.accounts {
        Some(a) => Ok((a, source)),
        None => Err(Fail::Setup(format!(
            "{} has no [accounts] section: accounts are off, so there is no account database",
            path.display()
        ))),
    }
}

/// [`account_settings`] for commands outside this file: the `[accounts]`
/// settings, or the exit code after the reason was printed.
pub(crate) fn account_settings_for(path: &Path) -> Result<AccountSettings, ExitCode> {
    account_settings(path).map(|(a, _)| a).map_err(Fail::exit)
}

/// The file behind a `sqlite:` URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// An open store, and who is acting.
struct Ctx {
    store: Arc<dyn Store>,
    actor: String,
    detail_suffix: String,
    /// The configured identity source's name, when there is one.
    source: Option<String>,
}

async fn open(path: &Path) -> Result<Ctx, Fail> {
    let (a, source) = account_settings(path)?;
    // A relative `data_dir` is resolved against the working directory: run
    // from elsewhere, it would name a new, empty database. Refuse that
    // rather than create one.
    if Backend::of_url(&a.store.url).ok() == Some(Backend::Sqlite)
        && let Some(file) = sqlite_file(&a.store.url)
        && !file.exists()
    {
        return Err(Fail::Setup(format!(
            "there is no account database at {} (a relative `database.data_dir` is relative to \
             the directory you run vestibule in; run this where the gateway runs, or use \
             `vestibule migrate` to create an empty one)",
            file.display()
        )));
    }
    let store = crate::app::open_store(&a).await.map_err(Fail::Setup)?;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let detail_suffix = match std::env::var("SUDO_USER") {
        Ok(s) if !s.is_empty() && s != user => format!(" (through sudo by {s})"),
        _ => String::new(),
    };
    Ok(Ctx {
        store,
        actor: format!("cli:{user}"),
        detail_suffix,
        source,
    })
}

impl Ctx {
    /// Appends the audit entry for a command that acted on `account`.
    async fn audit(&self, action: &str, account: i64, outcome: &str, detail: &str) {
        let e = AuditEntry {
            at: now_ms(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            subject: format!("account:{account}"),
            client_ip: None,
            outcome: outcome.to_owned(),
            detail: format!("{detail}{}", self.detail_suffix),
        };
        if let Err(err) = self.store.append_audit(&e).await {
            eprintln!("warning: the audit entry could not be written: {err}");
        }
    }
}

// ---- finding an account -----------------------------------------------

/// `SOURCE:SUBJECT`, both parts non-empty.
fn parse_identity(s: &str) -> Option<IdentityKey> {
    let (source, subject) = s.split_once(':')?;
    (!source.is_empty() && !subject.is_empty()).then(|| IdentityKey::new(source, subject))
}

/// The one account `spec` names: an id, an identity, or a username that
/// matches exactly one account. Never an email.
async fn find(store: &dyn Store, spec: &str) -> Result<Account, Fail> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let found = match spec.parse::<i64>() {
            Ok(id) => store.account(id).await?,
            Err(_) => None,
        };
        return found.ok_or_else(|| {
            Fail::Refused(format!(
                "no account has the id {spec} (a number is always read as an id)"
            ))
        });
    }
    if let Some(key) = parse_identity(spec)
        && let Some(a) = store.account_by_identity(&key).await?
    {
        return Ok(a);
    }
    let mut matches = store.accounts_by_username(spec).await?;
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(Fail::Refused(format!(
            "no account matches {} (give an id, SOURCE:SUBJECT, or an exact username; \
             accounts are never looked up by email)",
            clean(spec)
        ))),
        n => {
            let mut t = Table::new(&["ID", "USERNAME", "STATUS", "EMAIL", "IDENTITIES"]);
            for a in &matches {
                let ids = identities_text(&store.identities(a.id).await?);
                t.row(vec![
                    a.id.to_string(),
                    clean(&a.username),
                    a.status.to_string(),
                    clean(a.email.as_deref().unwrap_or("")),
                    ids,
                ]);
            }
            Err(Fail::Refused(format!(
                "{n} accounts have the username {}; name one by id or SOURCE:SUBJECT:\n{}",
                clean(spec),
                t.render().trim_end()
            )))
        }
    }
}

// ---- output -------------------------------------------------------------

/// Escapes control characters (and only them).
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn key_text(k: &IdentityKey) -> String {
    clean(&format!("{}:{}", k.source, k.subject))
}

fn identities_text(keys: &[IdentityKey]) -> String {
    keys.iter().map(key_text).collect::<Vec<_>>().join(", ")
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS` UTC.
fn when(ms: i64) -> String {
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A plain text table: columns padded to their widest cell.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Self {
            rows: vec![head.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
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

fn account_json(a: &Account, identities: &[IdentityKey]) -> Value {
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

fn session_json(s: &Session, now: i64) -> Value {
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

fn print_json(v: &Value) {
    // Serialising a `Value` cannot fail.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn describe(a: &Account) -> String {
    format!("account {} ({})", a.id, clean(&a.username))
}

// ---- users --------------------------------------------------------------

/// Runs `vestibule users …`.
pub async fn users(config: &Path, cmd: UsersCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        UsersCommand::List { status, json } => users_list(&ctx, status, json).await,
        UsersCommand::Show { account, json } => users_show(&ctx, &account, json).await,
        UsersCommand::Approve { account } => {
            set_status(&ctx, &account, "approve", AccountStatus::Active).await
        }
        UsersCommand::Enable { account } => {
            set_status(&ctx, &account, "enable", AccountStatus::Active).await
        }
        UsersCommand::Disable { account } => {
            set_status(&ctx, &account, "disable", AccountStatus::Disabled).await
        }
        UsersCommand::Delete { account } => delete(&ctx, &account).await,
        UsersCommand::Link { account, identity } => link(&ctx, &account, &identity).await,
    })
}

async fn users_list(ctx: &Ctx, status: Option<StatusArg>, json: bool) -> Result<(), Fail> {
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

async fn users_show(ctx: &Ctx, spec: &str, json: bool) -> Result<(), Fail> {
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

async fn set_status(ctx: &Ctx, spec: &str, action: &str, to: AccountStatus) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let from = a.status;
    if from == to && to == AccountStatus::Active {
        println!("{} is already active; nothing changed", describe(&a));
        ctx.audit(action, a.id, "unchanged", "already active").await;
        return Ok(());
    }
    if from != to && !ctx.store.set_status(a.id, to, now_ms()).await? {
        ctx.audit(action, a.id, "not-found", "deleted meanwhile")
            .await;
        return Err(Fail::Refused(format!("{} no longer exists", describe(&a))));
    }
    let mut detail = format!("{from} -> {to}");
    if to == AccountStatus::Disabled {
        // Also when it was disabled already: a session may have been
        // started before, and `disable` promises none is left.
        let n = ctx.store.revoke_sessions_of(a.id).await?;
        detail.push_str(&format!("; {n} session(s) revoked"));
    }
    let verb = match action {
        "approve" => "approved",
        "enable" => "enabled",
        _ => "disabled",
    };
    println!("{verb} {}: {detail}", describe(&a));
    ctx.audit(action, a.id, "ok", &detail).await;
    Ok(())
}

async fn delete(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let ids = ctx.store.identities(a.id).await?;
    let n = ctx.store.revoke_sessions_of(a.id).await?;
    if !ctx.store.delete_account(a.id).await? {
        ctx.audit("delete", a.id, "not-found", "deleted meanwhile")
            .await;
        return Err(Fail::Refused(format!("{} no longer exists", describe(&a))));
    }
    let detail = format!(
        "username {}, identities [{}]; {n} session(s) revoked",
        clean(&a.username),
        identities_text(&ids)
    );
    println!("deleted {}: {detail}", describe(&a));
    ctx.audit("delete", a.id, "ok", &detail).await;
    Ok(())
}

async fn link(ctx: &Ctx, spec: &str, identity: &str) -> Result<(), Fail> {
    let Some(key) = parse_identity(identity) else {
        return Err(Fail::Setup(format!(
            "{} is not an identity: write SOURCE:SUBJECT, e.g. authentik:2f6c…",
            clean(identity)
        )));
    };
    let a = find(&*ctx.store, spec).await?;
    if let Some(source) = &ctx.source
        && *source != key.source
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

// ---- sessions -----------------------------------------------------------

/// The username of each account id (`-` for one that is gone), each
/// looked up once.
async fn usernames(
    ctx: &Ctx,
    ids: impl Iterator<Item = i64>,
) -> Result<std::collections::HashMap<i64, String>, Fail> {
    let mut names = std::collections::HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            let name = ctx
                .store
                .account(id)
                .await?
                .map_or_else(|| "-".to_owned(), |a| a.username);
            slot.insert(name);
        }
    }
    Ok(names)
}

/// Runs `vestibule sessions …`.
pub async fn sessions(config: &Path, cmd: SessionsCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        SessionsCommand::List { user, json } => sessions_list(&ctx, user.as_deref(), json).await,
        SessionsCommand::Revoke { user } => sessions_revoke(&ctx, &user).await,
    })
}

async fn sessions_list(ctx: &Ctx, user: Option<&str>, json: bool) -> Result<(), Fail> {
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
        match &account {
            Some(a) => println!("{} has no sessions", describe(a)),
            None => println!("no sessions"),
        }
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

async fn sessions_revoke(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
    let a = find(&*ctx.store, spec).await?;
    let n = ctx.store.revoke_sessions_of(a.id).await?;
    println!("revoked {n} session(s) of {}", describe(&a));
    ctx.audit("session-revoke", a.id, "ok", &format!("all {n} session(s)"))
        .await;
    Ok(())
}

// ---- devices ------------------------------------------------------------

/// Runs `vestibule devices …`.
pub async fn devices(config: &Path, cmd: DevicesCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        DevicesCommand::List { user, json } => devices_list(&ctx, user.as_deref(), json).await,
        DevicesCommand::Revoke { id: Some(id), .. } => device_revoke(&ctx, id).await,
        DevicesCommand::Revoke { user, .. } => {
            devices_revoke_all(&ctx, user.as_deref().unwrap_or("")).await
        }
    })
}

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

async fn devices_list(ctx: &Ctx, user: Option<&str>, json: bool) -> Result<(), Fail> {
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
        match &account {
            Some(a) => println!("{} has no devices", describe(a)),
            None => println!("no devices"),
        }
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

async fn device_revoke(ctx: &Ctx, id: i64) -> Result<(), Fail> {
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

async fn devices_revoke_all(ctx: &Ctx, spec: &str) -> Result<(), Fail> {
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

// ---- audit --------------------------------------------------------------

/// Runs `vestibule audit …`.
pub async fn audit(config: &Path, args: AuditArgs) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(audit_run(&ctx, args).await)
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

async fn audit_run(ctx: &Ctx, args: AuditArgs) -> Result<(), Fail> {
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

// ---- migrate ------------------------------------------------------------

/// Runs `vestibule migrate`: brings the schema up to date and exits.
pub async fn migrate(config: &Path) -> ExitCode {
    finish(migrate_run(config).await)
}

async fn migrate_run(config: &Path) -> Result<(), Fail> {
    let (a, _) = account_settings(config)?;
    if let Some(dir) = &a.sqlite_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Fail::Setup(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    vestibule_store::migrate(&a.store).await?;
    let backend = Backend::of_url(&a.store.url).map_or("database", Backend::name);
    println!("the {backend} schema is up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(1_795_000_000_123), "2026-11-18 11:06:40");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("bob\u{1b}[2J\n"), "bob\\u{1b}[2J\\n");
        assert_eq!(clean("Zoë"), "Zoë");
    }

    #[test]
    fn identities_need_both_parts() {
        assert_eq!(
            parse_identity("authentik:a:b"),
            Some(IdentityKey::new("authentik", "a:b"))
        );
        assert_eq!(parse_identity("authentik:"), None);
        assert_eq!(parse_identity(":x"), None);
        assert_eq!(parse_identity("bob"), None);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/v.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/v.db"))
        );
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide cell  x\n");
    }
}
