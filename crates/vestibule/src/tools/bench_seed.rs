//! `vestibule bench-seed` and `bench-warm` (hidden): synthetic accounts and
//! device credentials for `bench/run.sh`, so that memory, latency and
//! start-up can be measured with 100k or 1M credentials in the store, and a
//! warm-up that uses each credential once.
//!
//! It writes the credentials it made to a file, one per line, for the load
//! generator. Never point it at a real database: it refuses one that has
//! accounts already.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rand::RngCore;
use vestibule_core::credential::device_token;
use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, IdentityKey, NewAccount, NewDevice};

use crate::accounts::now_ms;
use crate::config::{self, Severity};

/// Arguments of `vestibule bench-seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// The gateway's configuration (its `[database]`).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Accounts to create (`bench-0` …), identity `<source>:bench-N`.
    #[arg(long, default_value_t = 1)]
    pub accounts: u32,
    /// Device credentials to create, spread over the accounts.
    #[arg(long, default_value_t = 1)]
    pub devices: u32,
    /// The identity source name of the accounts (the dialect's name).
    #[arg(long, default_value = "authelia")]
    pub source: String,
    /// The route the credentials may reach.
    #[arg(long)]
    pub route: String,
    /// Where to write the credentials, one per line.
    #[arg(long)]
    pub tokens_out: PathBuf,
}

/// Rows per bulk call: bounds memory while seeding a million.
const BATCH: usize = 50_000;

/// Synthetic account `i` of `source`: identity `<source>:bench-<i>`,
/// username `bench-<i>`, in group `users`. Also the layout of the
/// benches' seeded store (`benches/support/credentials.rs`).
pub fn bench_account(source: &str, i: usize, now: i64) -> NewAccount {
    NewAccount {
        key: IdentityKey::new(source, format!("bench-{i}").as_str()),
        username: format!("bench-{i}"),
        email: Some(format!("bench-{i}@example.com")),
        display_name: Some(format!("Bench User {i}")),
        groups: vec!["users".into()],
        org: None,
        status: AccountStatus::Active,
        now,
    }
}

/// Synthetic device `i` of account `owner` (the `owner`-th account made by
/// [`bench_account`], whose id is `account_id`), on `route`, with the
/// credential whose SHA-256 is `secret_hash`; Basic user `bench-<owner>`.
pub fn bench_device(
    i: usize,
    owner: usize,
    account_id: i64,
    route: &str,
    secret_hash: [u8; 32],
    now: i64,
) -> NewDevice {
    NewDevice {
        account_id,
        name: format!("bench device {i}"),
        kind: "token".into(),
        routes: vec![route.to_owned()],
        secret_hash,
        basic_user: Some(format!("bench-{owner}")),
        created_at: now,
        expires_at: None,
    }
}

/// Runs `vestibule bench-seed`.
pub async fn run(args: SeedArgs) -> ExitCode {
    match seed(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn seed(args: &SeedArgs) -> Result<(), String> {
    let file = config::load(&args.config).map_err(|e| e.to_string())?;
    let (settings, diags) = config::validate(&file);
    let Some(settings) = settings else {
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        return Err(errors.join("\n"));
    };
    let a = settings
        .accounts
        .ok_or("the configuration has no [accounts] section")?;
    crate::app::create_data_dir(&a)?;
    let store = vestibule_store::open_for_bulk_load(&a.store)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    if !store
        .accounts(None, 1)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Err("the database has accounts already: seed only an empty, throw-away one".into());
    }
    let now = now_ms();
    let accounts: Vec<NewAccount> = (0..args.accounts.max(1) as usize)
        .map(|i| bench_account(&args.source, i, now))
        .collect();
    for chunk in accounts.chunks(BATCH) {
        store
            .create_accounts_bulk(chunk)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Account ids are handed out in order from 1 in a fresh database.
    let first = store
        .account_by_identity(&accounts[0].key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the first account was not found")?
        .id;
    let n_accounts = i64::from(args.accounts.max(1));
    let out = std::fs::File::create(&args.tokens_out)
        .map_err(|e| format!("{}: {e}", args.tokens_out.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut rng = rand::rng();
    let mut made = 0u32;
    while made < args.devices {
        let n = (args.devices - made).min(BATCH as u32);
        let mut batch = Vec::with_capacity(n as usize);
        for i in made..made + n {
            let mut random = [0u8; 32];
            rng.fill_bytes(&mut random);
            let token = device_token(random);
            writeln!(out, "{}", token.expose()).map_err(|e| e.to_string())?;
            let owner = i64::from(i) % n_accounts;
            batch.push(bench_device(
                i as usize,
                owner as usize,
                first + owner,
                &args.route,
                hash_token(token.expose()),
                now,
            ));
        }
        store
            .create_devices_bulk(&batch)
            .await
            .map_err(|e| e.to_string())?;
        made += n;
    }
    out.flush().map_err(|e| e.to_string())?;
    println!(
        "seeded {} account(s) and {} device credential(s); credentials in {}",
        args.accounts.max(1),
        args.devices,
        args.tokens_out.display()
    );
    Ok(())
}

/// Arguments of `vestibule bench-warm`.
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// The credentials, one per line (what `bench-seed` wrote).
    #[arg(long)]
    pub tokens: PathBuf,
    /// The URL to send each one to, as `Authorization: Bearer`.
    #[arg(long)]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Use only the first this many credentials.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Runs `vestibule bench-warm`: every credential once (wrk cannot stop after
/// a number of requests), then prints `requests non_2xx seconds`.
pub async fn warm(args: WarmArgs) -> ExitCode {
    use futures_util::StreamExt;
    let text = match std::fs::read_to_string(&args.tokens) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.tokens.display());
            return ExitCode::from(2);
        }
    };
    let uri: http::Uri = match args.url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {}: {e}", args.url);
            return ExitCode::from(2);
        }
    };
    let client = crate::tools::tool_client(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_secs(90),
        None,
    );
    let started = std::time::Instant::now();
    let lines = text
        .lines()
        .filter(|l| !l.is_empty())
        .take(args.limit.unwrap_or(usize::MAX));
    let statuses: Vec<u16> = futures_util::stream::iter(lines)
        .map(|token| {
            let req = http::Request::get(uri.clone())
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::empty());
            let client = client.clone();
            async move {
                let Ok(req) = req else { return 0 };
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        // Drain the body so the connection goes back to the pool.
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        status
                    }
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let bad = statuses.iter().filter(|s| !(200..300).contains(*s)).count();
    println!(
        "{} {} {:.1}",
        statuses.len(),
        bad,
        started.elapsed().as_secs_f64()
    );
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
