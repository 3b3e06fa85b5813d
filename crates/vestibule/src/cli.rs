//! The command line: `serve`, `check`, `demo`, `whoami`, and the admin
//! commands `users`, `sessions`, `devices`, `clients`, `audit`, `migrate` (in
//! [`crate::admin::cli`]), `backup` and `restore` (in
//! [`crate::admin::backup`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::cli as admin_cli;
use crate::config::{self, Diagnostic, Severity};

/// vestibule: an identity gateway between your SSO front and your apps.
#[derive(Debug, Parser)]
#[command(name = "vestibule", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway. Refuses to start while the configuration has errors.
    Serve {
        /// Configuration file.
        #[arg(
            long,
            short,
            env = "VESTIBULE_CONFIG",
            default_value = "vestibule.toml"
        )]
        config: PathBuf,
    },
    /// Check a configuration: exit 0 clean, 1 warnings (with --strict), 2 errors.
    Check {
        /// Configuration file.
        #[arg(
            long,
            short,
            env = "VESTIBULE_CONFIG",
            default_value = "vestibule.toml"
        )]
        config: PathBuf,
        /// Treat warnings as failures (exit 1).
        #[arg(long)]
        strict: bool,
        /// Also connect to what the configuration names: bind to the LDAP
        /// directory (`[accounts.ldap]`), search its base and check its
        /// schema has the layout's object classes. A failure is an error.
        #[arg(long)]
        online: bool,
    },
    /// Start a demo SSO front, vestibule and a whoami app on loopback.
    Demo {
        /// Where the demo front listens (loopback only).
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Print the demo's vestibule configuration and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Run only the whoami app (an upstream for tests and benchmarks).
    Whoami {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Manage accounts in the configured database (works while gateways run).
    ///
    /// ACCOUNT is an id, SOURCE:SUBJECT, or a username that matches exactly
    /// one account (never an email). Exit 0 done, 1 not found, ambiguous or
    /// conflict, 2 configuration or database error.
    Users {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::UsersCommand,
    },
    /// List or revoke sessions of vestibule's own pages.
    Sessions {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::SessionsCommand,
    },
    /// Register, list, show, re-key or remove the OpenID Connect clients
    /// kept in the store (`[[oidc_provider.client]]` declares others).
    Clients {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::ClientsCommand,
    },
    /// List or revoke the OpenID Connect grants an account holds (apps
    /// with access).
    Grants {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::GrantsCommand,
    },
    /// List or revoke device credentials.
    Devices {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::DevicesCommand,
    },
    /// List or rotate the keys assertions are signed with.
    Keys {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::KeysCommand,
    },
    /// Show, rotate or export the client-certificate CA.
    Ca {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::CaCommand,
    },
    /// Read the audit log, newest first (--follow: chronological, until Ctrl-C).
    Audit {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        #[command(flatten)]
        args: admin_cli::AuditArgs,
    },
    /// Synthetic accounts and credentials for bench/run.sh (never on a real database).
    #[command(hide = true)]
    BenchSeed(crate::tools::bench_seed::SeedArgs),
    /// Sends every credential of a file once, for bench/run.sh's cache warm-up.
    #[command(hide = true)]
    BenchWarm(crate::tools::bench_seed::WarmArgs),
    /// Bring the database schema up to date, then exit.
    Migrate {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
    },
    /// Copy the SQLite account database to FILE, online (gateways may run).
    ///
    /// A consistent copy (SQLite's VACUUM INTO) of every committed write.
    /// Refuses to overwrite FILE. PostgreSQL: use pg_dump. Exit 0 done,
    /// 1 refused, 2 configuration, file or database error.
    Backup {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// The backup file to create.
        file: PathBuf,
    },
    /// Put a backup made by `vestibule backup` in place as the database.
    ///
    /// Stop the gateways first. The backup is checked (intact, a schema this
    /// vestibule knows) before anything is written. Exit 0 done, 1 refused,
    /// 2 configuration, file or database error.
    Restore {
        #[command(flatten)]
        db: admin_cli::ConfigArg,
        /// The backup file.
        file: PathBuf,
        /// Replace an existing database (and its WAL) instead of refusing.
        #[arg(long)]
        replace: bool,
    },
    /// Write the man page and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
}

fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes in a log file or
    // a journal are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

/// The exit code of `check` for a set of diagnostics.
pub fn check_exit_code(diags: &[Diagnostic], strict: bool) -> u8 {
    if diags.iter().any(|d| d.severity == Severity::Error) {
        2
    } else if strict && !diags.is_empty() {
        1
    } else {
        0
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `check`'s look at the store: a client id both in the file and in the
/// store is an error. Done only when the store can be opened without
/// creating it (an SQLite file that exists, or a reachable PostgreSQL);
/// when it cannot be opened, a warning says it was not looked at.
async fn stored_client_clashes(s: &config::Settings) -> Vec<config::Diagnostic> {
    let (Some(p), Some(a)) = (&s.oidc_provider, &s.accounts) else {
        return Vec::new();
    };
    let skipped = |why: String| {
        vec![config::Diagnostic {
            severity: Severity::Warning,
            key: "oidc_provider.client".into(),
            message: format!("the store's clients were not compared with the file's: {why}"),
            fix: "run `vestibule check` where the database is reachable".into(),
        }]
    };
    // No database yet: nothing is stored, so nothing can clash (and
    // `check` must not create one).
    if let Some(file) = crate::admin::sqlite_file(&a.store.url)
        && !file.exists()
    {
        return Vec::new();
    }
    let store = match vestibule_store::open(&a.store).await {
        Ok(st) => st,
        Err(e) => return skipped(e.to_string()),
    };
    match crate::provider::clients::clashes(p, store.as_ref()).await {
        Ok(ids) => ids
            .iter()
            .map(|id| config::Diagnostic {
                severity: Severity::Error,
                key: "oidc_provider.client".into(),
                message: crate::provider::clients::clash_message(id),
                fix: format!(
                    "remove it from the file, or `vestibule clients remove {id}` from the store"
                ),
            })
            .collect(),
        Err(e) => skipped(e.to_string()),
    }
}

/// Reads the configuration file, or says why not (exit 2).
fn load_file(path: &std::path::Path) -> Result<config::FileConfig, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check {
            config,
            strict,
            online,
        } => {
            let file = match load_file(&config) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let (settings, mut diags) = config::validate(&file);
            if online
                && let Some(l) = settings
                    .as_ref()
                    .and_then(|s| s.accounts.as_ref())
                    .and_then(|a| a.ldap.clone())
            {
                let url = l.url.clone();
                match crate::accounts::ldap::Directory::new(l)
                    .check_online()
                    .await
                {
                    Ok(()) => eprintln!(
                        "{url}: bound, base searched, schema has the layout's object classes"
                    ),
                    Err(e) => diags.push(config::Diagnostic {
                        severity: Severity::Error,
                        key: "accounts.ldap".into(),
                        message: e.to_string(),
                        fix: "check url, bind_dn, the password, base_dn and the directory's schema"
                            .into(),
                    }),
                }
            }
            if let Some(s) = &settings {
                diags.extend(stored_client_clashes(s).await);
            }
            print_diagnostics(&diags);
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let warnings = diags.len() - errors;
            eprintln!(
                "{}: {errors} error(s), {warnings} warning(s)",
                config.display()
            );
            ExitCode::from(check_exit_code(&diags, strict))
        }
        Command::Serve { config } => {
            let file = match load_file(&config) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let (settings, diags) = config::validate(&file);
            let Some(settings) = settings else {
                print_diagnostics(&diags);
                eprintln!(
                    "vestibule will not start while the configuration has errors (see `vestibule check`)."
                );
                return ExitCode::from(2);
            };
            let reloader = crate::service::reload::Reloader::new(config.clone(), file);
            init_logging(settings.log_json, &settings.log_level);
            for d in &diags {
                tracing::warn!(key = %d.key, fix = %d.fix, "{}", d.message);
            }
            let running = match crate::app::spawn(settings).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            // SIGHUP's handler goes in before anyone is told where we listen:
            // a reload asked for right after start must not kill the process
            // (SIGHUP's default action).
            let reload_task = match crate::service::reload::on_sighup(
                reloader.applying_to(running.state.clone()),
            ) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot handle SIGHUP: {e}");
                    running.shutdown().await;
                    return ExitCode::from(1);
                }
            };
            // Machine-readable lines on stdout, for scripts and tests.
            for a in &running.http_addrs {
                println!("vestibule: listening on http://{a}");
            }
            for a in &running.tls_addrs {
                println!("vestibule: listening on https://{a}");
            }
            if let Some(a) = running.admin_addr {
                println!("vestibule: admin on http://{a}");
            }
            // Every listener is bound and SIGHUP is handled: ready.
            crate::service::notify::ready();
            shutdown_signal().await;
            reload_task.abort();
            tracing::info!("shutting down");
            running.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Demo {
            listen,
            print_config,
        } => {
            if print_config {
                let cwd = std::env::current_dir().unwrap_or_default();
                print!("{}", crate::tools::demo::printed_config(listen, &cwd));
                return ExitCode::SUCCESS;
            }
            init_logging(false, "warn,vestibule=info");
            match crate::tools::demo::run(
                crate::tools::demo::DemoOptions { listen },
                shutdown_signal(),
            )
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Whoami { listen } => {
            init_logging(false, "warn");
            let l = match tokio::net::TcpListener::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot listen on {listen}: {e}");
                    return ExitCode::from(1);
                }
            };
            match l.local_addr() {
                Ok(a) => println!("whoami: listening on http://{a}"),
                Err(e) => eprintln!("whoami: {e}"),
            }
            tokio::select! {
                r = crate::tools::whoami::serve(l) => if let Err(e) = r { eprintln!("error: {e}"); return ExitCode::from(1); },
                _ = shutdown_signal() => {}
            }
            ExitCode::SUCCESS
        }
        Command::Users { db, command } => admin_cli::users(&db.config, command).await,
        Command::Sessions { db, command } => admin_cli::sessions(&db.config, command).await,
        Command::Devices { db, command } => admin_cli::devices(&db.config, command).await,
        Command::Clients { db, command } => admin_cli::clients(&db.config, command).await,
        Command::Grants { db, command } => admin_cli::grants(&db.config, command).await,
        Command::Keys { db, command } => admin_cli::keys(&db.config, command).await,
        Command::Ca { db, command } => admin_cli::ca(&db.config, command).await,
        Command::Audit { db, args } => admin_cli::audit(&db.config, args).await,
        Command::Migrate { db } => admin_cli::migrate(&db.config).await,
        Command::Backup { db, file } => crate::admin::backup::backup(&db.config, &file).await,
        Command::Restore { db, file, replace } => {
            crate::admin::backup::restore(&db.config, &file, replace).await
        }
        Command::GenerateAssets { dir } => match crate::tools::assets::write(&dir) {
            Ok(written) => {
                for p in written {
                    println!("wrote {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write to {}: {e}", dir.display());
                ExitCode::from(2)
            }
        },
        Command::BenchSeed(args) => crate::tools::bench_seed::run(args).await,
        Command::BenchWarm(args) => crate::tools::bench_seed::warm(args).await,
    }
}
