//! `SIGHUP` (`systemctl reload vestibule`): re-read and check the
//! configuration file, apply what can change without a restart, and name
//! what cannot.
//!
//! - A file with errors is reported (each diagnostic, as `vestibule check`
//!   would) and the running configuration stays, whole.
//! - `[[route]]` applies live: the routes, their matcher, the identity
//!   header spellings their profiles add, the return addresses their hosts
//!   allow and their metric handles are built as one [`Routes`] and swapped
//!   in at once ([`AppState::replace_routes`]). A request in flight keeps
//!   the snapshot it started with; the next one gets the new routes. The
//!   new routes are checked together with the *running* rest of the file,
//!   so they never lean on a change that has not been applied (a role of a
//!   changed `[accounts.roles]`, for example); if they do, or if they would
//!   turn signed assertions on or off (their keys and cache exist from the
//!   start or not at all), they wait for a restart like the rest.
//! - `[[oidc_provider.client]]` applies live when it is the only change in
//!   `[oidc_provider]`: the clients, checked with the running rest of the
//!   file, are swapped into the provider's registry at once
//!   ([`ClientRegistry::replace_file_clients`](crate::provider::clients::ClientRegistry::replace_file_clients)).
//!   A new client's ID-token algorithm gets its key family at its first
//!   token (the key ring makes missing families on demand). Any other
//!   change in `[oidc_provider]` waits for a restart, the clients with it.
//! - Every other changed section is logged as `needs a restart: <section>`
//!   (`systemctl restart vestibule`). Listeners, the identity source, the
//!   database, accounts, sessions, devices, keys and assertions are built
//!   once at start.
//!
//! Whatever the file says, each `SIGHUP` also refreshes what vestibule
//! holds from elsewhere ([`refresh_remote`]), without waiting for its
//! schedule: the signing keys are reloaded from the store (a key rotated
//! by `vestibule keys rotate` at another instance signs here at once), the
//! `[source.jwt]` JWK Set and the `[source.oidc]` provider's discovery
//! document and JWK Set are fetched again, and the key sets of
//! `private_key_jwt` clients are forgotten (fetched at their next use).
//! Each is logged; a failed fetch keeps what was held.
//!
//! The comparison is against what runs: the file at start, with the routes
//! of the last reload that applied them.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::config::{self, FileConfig, Severity};
use crate::state::{AppState, Routes};

/// What one reload found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file could not be read or has errors; nothing changes.
    Invalid(Vec<String>),
    /// The file describes the running configuration.
    Unchanged,
    /// The file is valid and differs from what runs.
    Changed {
        /// Sections applied now (`[[route]]`, or nothing).
        applied: Vec<&'static str>,
        /// Sections that differ and wait for a restart.
        needs_restart: Vec<&'static str>,
    },
}

/// The configuration file, what runs, and the state to apply routes to.
pub struct Reloader {
    path: PathBuf,
    running: FileConfig,
    state: Option<Arc<AppState>>,
}

impl Reloader {
    /// `running` is the configuration `path` held when the gateway started.
    pub fn new(path: PathBuf, running: FileConfig) -> Self {
        Self {
            path,
            running,
            state: None,
        }
    }

    /// Applies live changes to `state` (without it, a reload only checks).
    pub fn applying_to(mut self, state: Arc<AppState>) -> Self {
        self.state = Some(state);
        self
    }

    /// Re-reads and checks the file, applies the routes if they changed
    /// and can be applied, and names the rest.
    pub fn apply(&mut self) -> Outcome {
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
        let mut needs_restart = changed_sections(&self.running, &file);
        if needs_restart.is_empty() {
            return Outcome::Unchanged;
        }
        let mut applied = Vec::new();
        if let Some(at) = needs_restart.iter().position(|s| *s == OIDC_PROVIDER)
            && let Some(state) = &self.state
            && let Some(provider) = &state.provider
            && let Some(settings) = self.clients_alone(&file)
        {
            provider.clients.replace_file_clients(&settings);
            if let (Some(running), Some(new)) =
                (&mut self.running.oidc_provider, &file.oidc_provider)
            {
                running.clients = new.clients.clone();
            }
            needs_restart.remove(at);
            applied.push(CLIENTS);
        }
        if let Some(at) = needs_restart.iter().position(|s| *s == ROUTES)
            && let Some(state) = &self.state
            && let Some(routes) = self.routes_alone(&file, state)
        {
            state.replace_routes(routes);
            self.running.routes = file.routes;
            needs_restart.remove(at);
            applied.push(ROUTES);
        }
        Outcome::Changed {
            applied,
            needs_restart,
        }
    }

    /// The provider's settings with the file's clients on top of the
    /// running rest of the file, when the clients are all that changed in
    /// `[oidc_provider]` and that passes the checks.
    fn clients_alone(&self, file: &FileConfig) -> Option<crate::config::OidcProviderSettings> {
        let (Some(running), Some(new)) = (&self.running.oidc_provider, &file.oidc_provider) else {
            return None;
        };
        let mut same_but_clients = running.clone();
        same_but_clients.clients = new.clients.clone();
        // Compared through `Debug`, as `changed_sections` does.
        if format!("{same_but_clients:?}") != format!("{new:?}") {
            return None;
        }
        let mut mixed = self.running.clone();
        mixed.oidc_provider = Some(same_but_clients);
        let (settings, diags) = config::validate(&mixed);
        let Some(settings) = settings else {
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                tracing::warn!(
                    "reload: [[oidc_provider.client]] depends on a change that needs a restart: {d}"
                );
            }
            return None;
        };
        settings.oidc_provider
    }

    /// The new routes on top of the running rest of the file, if that
    /// passes the checks and keeps assertions as they are.
    fn routes_alone(&self, file: &FileConfig, state: &AppState) -> Option<Routes> {
        let mut mixed = self.running.clone();
        mixed.routes = file.routes.clone();
        let (settings, diags) = config::validate(&mixed);
        let Some(settings) = settings else {
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                tracing::warn!("reload: [[route]] depends on a change that needs a restart: {d}");
            }
            return None;
        };
        if settings.assertions.is_some() != state.assertions.is_some() {
            tracing::warn!(
                "reload: [[route]] turns signed assertions on or off, which needs a restart"
            );
            return None;
        }
        Some(Routes::new(&settings, &state.metrics))
    }

    /// [`apply`](Self::apply), and the log lines that report it.
    pub fn reload(&mut self) -> Outcome {
        let outcome = self.apply();
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
            Outcome::Changed {
                applied,
                needs_restart,
            } => {
                for section in applied {
                    tracing::info!("reload: applied {section} from {file}");
                }
                for section in needs_restart {
                    tracing::warn!(
                        "reload: needs a restart: {section} (systemctl restart vestibule); \
                         the running {section} stays until then"
                    );
                }
            }
        }
        outcome
    }
}

/// How `changed_sections` names the routes.
const ROUTES: &str = "[[route]]";
/// How `changed_sections` names the provider.
const OIDC_PROVIDER: &str = "[oidc_provider]";
/// What a reload applies of the provider: its clients.
const CLIENTS: &str = "[[oidc_provider.client]]";

/// The top-level sections that differ, as the file spells them. Compared through `Debug`, which
/// shows every field (`FileConfig` is read-only data without `PartialEq`);
/// the strings are compared, never logged, so secrets in them stay put.
pub fn changed_sections(a: &FileConfig, b: &FileConfig) -> Vec<&'static str> {
    // Every section, by name: a section added to `FileConfig` and not
    // listed below is a compile error here, not a change a reload ignores.
    let FileConfig {
        server: _,
        log: _,
        source: _,
        client_ip: _,
        upstream: _,
        auth: _,
        forward_auth: _,
        database: _,
        accounts: _,
        sessions: _,
        devices: _,
        keys: _,
        client_certs: _,
        assertions: _,
        oidc_provider: _,
        routes: _,
    } = a;
    macro_rules! differing {
        ($($name:expr => $field:ident),* $(,)?) => {
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
        "[keys]" => keys,
        "[client_certs]" => client_certs,
        "[assertions]" => assertions,
        OIDC_PROVIDER => oidc_provider,
        ROUTES => routes,
    )
    .into_iter()
    .filter(|&(_, changed)| changed)
    .map(|(name, _)| name)
    .collect()
}

/// Installs the `SIGHUP` handler now (so a reload right after start is
/// not the default action, which would end the process) and runs a
/// [`Reloader::reload`] on each signal.
pub fn on_sighup(mut reloader: Reloader) -> std::io::Result<JoinHandle<()>> {
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("reload: SIGHUP received");
            reloader.reload();
            if let Some(state) = &reloader.state {
                refresh_remote(state).await;
            }
        }
    }))
}

/// Reloads what vestibule holds from the store and from other servers
/// (see the module documentation), logging each: `reload: <what>
/// refreshed` or, when it failed, a warning naming it (what was held
/// stays).
pub async fn refresh_remote(state: &AppState) {
    if let Some(ring) = &state.signing_keys {
        match ring.reload().await {
            Ok(()) => tracing::info!(
                keys = ring.published().keys().len(),
                "reload: signing keys reloaded from the store"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reload: signing keys could not be reloaded; the loaded ones stay")
            }
        }
    }
    if let Some(crate::state::IdentityReader::Jwt { keys, .. }) = &state.identity_reader {
        match keys.refresh().await {
            Ok(n) => tracing::info!(keys = n, "reload: [source.jwt] JWK Set fetched again"),
            Err(e) => {
                tracing::warn!(error = %e, "reload: [source.jwt] JWK Set could not be fetched; the held keys stay")
            }
        }
    }
    // The OIDC login's provider, whether it is the source or beside one.
    if let Some(upstream) = state.oidc_upstream() {
        match upstream.refetch().await {
            Ok(n) => tracing::info!(
                keys = n,
                "reload: [source.oidc] discovery document and JWK Set fetched again"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reload: [source.oidc] provider could not be fetched; what was held stays")
            }
        }
    }
    if let Some(p) = &state.provider {
        let n = p.clients.assertions.forget_keys();
        if n > 0 {
            tracing::info!(
                sets = n,
                "reload: private_key_jwt clients' key sets forgotten; fetched again at their next use"
            );
        }
    }
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
