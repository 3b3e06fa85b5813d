//! `vestibule backup FILE` and `vestibule restore FILE`: an online,
//! consistent copy of the SQLite account database, and putting one back
//! (see [`vestibule_store::backup`]). PostgreSQL: `pg_dump` (see
//! `docs/install.md`).
//!
//! Exit codes: 0 done; 1 refused (the file exists, not a vestibule
//! backup…); 2 configuration, file or database error.

use std::path::Path;
use std::process::ExitCode;

use vestibule_store::backup::{self, BackupError, Written};

use super::context::account_settings_for;

/// `vestibule backup FILE`.
pub async fn backup(config: &Path, dest: &Path) -> ExitCode {
    let store = match account_settings_for(config) {
        Ok(a) => a.store,
        Err(code) => return code,
    };
    report(
        "backup",
        backup::backup(&store, dest).await,
        "restore it with `vestibule restore`",
    )
}

/// `vestibule restore FILE [--replace]`.
pub async fn restore(config: &Path, from: &Path, replace: bool) -> ExitCode {
    let (store, data_dir) = match account_settings_for(config) {
        Ok(a) => (a.store, a.sqlite_dir),
        Err(code) => return code,
    };
    // A new machine has no data directory yet (`serve` and `migrate`
    // create it the same way).
    if let Some(dir) = data_dir
        && let Err(e) = std::fs::create_dir_all(&dir)
    {
        eprintln!(
            "error: cannot create the data directory {}: {e}",
            dir.display()
        );
        return ExitCode::from(2);
    }
    report(
        "restore",
        backup::restore(from, &store, replace).await,
        "start vestibule: it brings the schema up to date",
    )
}

fn report(what: &str, result: Result<Written, BackupError>, next: &str) -> ExitCode {
    match result {
        Ok(w) => {
            println!(
                "{what}: wrote {} ({} bytes, schema version {}); {next}",
                w.path.display(),
                w.bytes,
                w.schema_version
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                BackupError::Refused(_) => 1,
                BackupError::Io(_) | BackupError::Store(_) => 2,
            })
        }
    }
}
