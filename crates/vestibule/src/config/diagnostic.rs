//! [`Diagnostic`]s and the [`Collector`] every section reports into, plus
//! the checks more than one section uses.
//!
//! Validation never stops at the first problem: each section adds what it
//! finds, so `vestibule check` shows them all, each with its key and a fix.

use std::fmt;
use std::net::SocketAddr;

use http::Uri;
use vestibule_core::net::{TrustedNetworks, parse_trusted_network};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works, but probably not as meant.
    Warning,
    /// Refused: `serve` will not start.
    Error,
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The offending key, e.g. `source.headers.trusted_proxies[1]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}: {}: {}\n  fix: {}",
            self.key, self.message, self.fix
        )
    }
}

/// Gathers the diagnostics of every section.
#[derive(Debug, Default)]
pub(super) struct Collector {
    pub(super) diags: Vec<Diagnostic>,
}

impl Collector {
    pub(super) fn error(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, key, message, fix);
    }

    pub(super) fn warn(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Warning, key, message, fix);
    }

    fn push(
        &mut self,
        severity: Severity,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Whether any error (not warning) was reported.
    pub(super) fn has_error(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }
}

/// A listener address; `localhost:8080` is refused because it names no
/// single address to bind.
pub(super) fn parse_addr(c: &mut Collector, key: &str, s: &str) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.error(
                key,
                format!("`{s}` is not an address with a port"),
                "write it as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            );
            None
        }
    }
}

/// A list of IPs and CIDRs; each bad entry is reported under `key[i]`.
pub(super) fn trusted_list(c: &mut Collector, key: &str, list: &[String]) -> TrustedNetworks {
    let mut nets = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match parse_trusted_network(entry) {
            Ok(n) => nets.push(n),
            Err(e) => c.error(
                format!("{key}[{i}]"),
                e.to_string(),
                "write an IP (\"10.0.0.5\") or a network (\"10.0.0.0/24\")",
            ),
        }
    }
    TrustedNetworks::from_networks(nets)
}

/// A redirect template: an absolute http(s) URL once `{url}` is filled in.
pub(super) fn check_login_url(c: &mut Collector, key: &str, url: &str) {
    match url.replace("{url}", "x").parse::<Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
        _ => c.error(
            key,
            format!("`{url}` is not an absolute http(s) URL"),
            "write it like \"https://auth.example.com/?rd={url}\"",
        ),
    }
}

/// A secret read from the file at `file_key` or the environment variable
/// at `env_key` (exactly one of them), with a trailing newline dropped from
/// a file. `what` names it in the fix ("password", "client secret"). Each
/// problem is reported at its key; the secret itself never is.
pub(super) fn secret_from_file_or_env(
    c: &mut Collector,
    (file_key, file): (&str, Option<&std::path::Path>),
    (env_key, env): (&str, Option<&str>),
    what: &str,
) -> Option<String> {
    let field = |k: &str| k.rsplit('.').next().unwrap_or(k).to_owned();
    match (file, env) {
        (Some(path), None) => match std::fs::read_to_string(path) {
            Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_owned()),
            Err(e) => {
                c.error(
                    file_key,
                    format!("cannot read {}: {e}", path.display()),
                    "create the file, readable by vestibule only",
                );
                None
            }
        },
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) => Some(s),
            Err(_) => {
                c.error(
                    env_key,
                    format!("the environment variable {var} is not set"),
                    "set it in the service's environment",
                );
                None
            }
        },
        _ => {
            c.error(
                file_key,
                format!(
                    "exactly one of {} and {} is needed",
                    field(file_key),
                    field(env_key)
                ),
                format!("point {} at a file holding the {what}", field(file_key)),
            );
            None
        }
    }
}
