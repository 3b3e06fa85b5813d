//! `SIGHUP` (`systemctl reload vestibule`): re-read and check the
//! configuration file, and say precisely what a restart would change.
//!
//! This round applies nothing at runtime: the route table, policies,
//! profiles, identity sources and listeners are read by the request path
//! straight from the `Settings` the gateway started with, and swapping
//! them safely under live requests is its own change. So a reload is a
//! safe "what would change" check that never half-applies anything:
//!
//! - a file with errors is reported (each diagnostic) and the running
//!   configuration stays, exactly as `vestibule check` would report it;
//! - a valid file is compared section by section with the one the
//!   gateway started with, and every changed section is named as needing a
//!   restart (`systemctl restart vestibule`);
//! - an unchanged file says so.
//!
//! The comparison is against the running configuration, not the last
//! reload: until a restart, every reload reports all pending changes.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::config::{self, FileConfig, Severity};

/// What one reload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file could not be read or has errors; nothing changes.
    Invalid(Vec<String>),
    /// The file describes the running configuration.
    Unchanged,
    /// These sections differ from the running configuration and need a
    /// restart; nothing was applied.
    NeedsRestart(Vec<&'static str>),
}

/// The configuration file and the configuration the gateway runs with.
pub struct Reloader {
    path: PathBuf,
    running: FileConfig,
}

impl Reloader {
    /// `running` is the configuration `path` held when the gateway started.
    pub fn new(path: PathBuf, running: FileConfig) -> Self {
        Self { path, running }
    }

    /// Re-reads and checks the file, and compares it with the running one.
    pub fn check(&self) -> Outcome {
        let file = match config::load(&self.path) {
            Ok(f) => f,
            Err(e) => return Outcome::Invalid(vec![e.to_string()]),
        };
        let (settings, diags) = config::validate(&file);
        if settings.is_none() {
            return Outcome::Invalid(
                diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(ToString::to_string)
                    .collect(),
            );
        }
        let changed = changed_sections(&self.running, &file);
        if changed.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::NeedsRestart(changed)
        }
    }

    /// [`check`](Self::check), and the log lines that report it.
    pub fn reload(&self) -> Outcome {
        let outcome = self.check();
        let file = self.path.display();
        match &outcome {
            Outcome::Invalid(errors) => {
                for e in errors {
                    tracing::error!("reload: {e}");
                }
                tracing::error!(
                    "reload: {file} has errors; the running configuration stays (see `vestibule check`)"
                );
            }
            Outcome::Unchanged => {
                tracing::info!("reload: {file} is valid and matches the running configuration")
            }
            Outcome::NeedsRestart(sections) => {
                let list = sections.join(", ");
                tracing::warn!(
                    "reload: {file} is valid; changed since start: {list}; these need a restart \
                     to apply (systemctl restart vestibule); nothing was applied"
                );
            }
        }
        outcome
    }
}

/// The top-level sections that differ, as the file spells them. Compared through `Debug`, which
/// shows every field (`FileConfig` is read-only data without `PartialEq`);
/// the strings are compared, never logged, so secrets in them stay put.
pub fn changed_sections(a: &FileConfig, b: &FileConfig) -> Vec<&'static str> {
    macro_rules! differing {
        ($($name:literal => $field:ident),* $(,)?) => {
            [$(($name, format!("{:?}", a.$field) != format!("{:?}", b.$field))),*]
        };
    }
    differing!(
        "[server]" => server,
        "[log]" => log,
        "[source]" => source,
        "[client_ip]" => client_ip,
        "[upstream]" => upstream,
        "[auth]" => auth,
        "[forward_auth]" => forward_auth,
        "[database]" => database,
        "[accounts]" => accounts,
        "[sessions]" => sessions,
        "[devices]" => devices,
        "[[route]]" => routes,
    )
    .into_iter()
    .filter(|&(_, changed)| changed)
    .map(|(name, _)| name)
    .collect()
}

/// Installs the `SIGHUP` handler now (so a reload right after start is
/// not the default action, which would end the process) and runs a
/// [`Reloader::reload`] on each signal.
pub fn on_sighup(reloader: Reloader) -> std::io::Result<JoinHandle<()>> {
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("reload: SIGHUP received");
            reloader.reload();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn names_exactly_the_sections_that_differ() {
        let a = parse("[server]\nlisten = [\"127.0.0.1:8080\"]\n");
        let b = parse("[server]\nlisten = [\"127.0.0.1:8081\"]\n[log]\nlevel = \"debug\"\n");
        assert_eq!(changed_sections(&a, &a.clone()), Vec::<&str>::new());
        assert_eq!(changed_sections(&a, &b), vec!["[server]", "[log]"]);
    }
}
