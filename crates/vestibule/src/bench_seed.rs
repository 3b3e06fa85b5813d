//! `vestibule bench-seed` (hidden): synthetic accounts and device
//! credentials for `bench/run.sh`, so that memory, latency and start-up can
//! be measured with 100k or 1M credentials in the store.
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
    let store = crate::app::open_store(&a).await?;
    if !store
        .accounts(None, 1)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Err("the database has accounts already: seed only an empty, throw-away one".into());
    }
    let now = now_ms();
    let accounts: Vec<NewAccount> = (0..args.accounts.max(1))
        .map(|i| NewAccount {
            key: IdentityKey::new(args.source.as_str(), format!("bench-{i}").as_str()),
            username: format!("bench-{i}"),
            email: Some(format!("bench-{i}@example.com")),
            display_name: Some(format!("Bench User {i}")),
            groups: vec!["users".into()],
            org: None,
            status: AccountStatus::Active,
            now,
        })
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
            batch.push(NewDevice {
                account_id: first + owner,
                name: format!("bench device {i}"),
                kind: "token".into(),
                routes: vec![args.route.clone()],
                secret_hash: hash_token(token.expose()),
                basic_user: Some(format!("bench-{owner}")),
                created_at: now,
                expires_at: None,
            });
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
