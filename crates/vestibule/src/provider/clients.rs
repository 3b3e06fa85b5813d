//! The client registry: clients declared in `[[oidc_provider.client]]`
//! (GitOps) and clients registered in the store (`vestibule clients`),
//! found by `client_id`.
//!
//! A stored client's registration is `StoredOidcClient::settings_json`:
//! the fields of a `[[oidc_provider.client]]` table as a JSON object,
//! without `client_id` and `secret_sha256` (columns of their own). It is
//! checked by the same rules as the file's clients each time it is read;
//! one that fails them is treated as unknown (and logged), never half
//! used.
//!
//! The same `client_id` in the file and in the store is an error: `serve`
//! refuses to start and `check` reports it when it can open the store
//! ([`clashes`]), and `vestibule clients add` refuses an id the file
//! declares. A clash that appears while running (a file edited and
//! reloaded) is still caught here, where such a client is refused as
//! unknown (an error in the log names it), because which registration
//! holds would be ambiguous.
//!
//! ## Reload
//!
//! The file's clients are one map behind a lock, swapped whole by
//! [`ClientRegistry::replace_file_clients`] when `SIGHUP` reloads a
//! changed `[[oidc_provider.client]]` list: a request that already found
//! its client keeps that registration; the next lookup sees the new one.
//! A removed client stops working at once (its refresh tokens are kept,
//! and work again if it comes back).
//!
//! ## The cache of stored registrations
//!
//! Every token, revocation, introspection and authorization request looks
//! its client up, so the store's answer for an id is kept for
//! [`STORED_CLIENT_TTL`] (well under a second) and read again after. A
//! client `vestibule clients` removes, or whose secret it rotates, stops
//! working within that time at every instance. A short TTL was chosen
//! over the change feed: the feed carries no client changes (it would
//! need a kind of its own published by every client write on both
//! backends, and a resync after a lost connection), while a TTL bounds
//! staleness by construction, whatever happens to the feed, for one
//! indexed read per client per TTL. Only ids the file declares or the
//! store holds are kept (an id nobody registered is read each time and
//! never fills the cache), and the cache is cleared when it reaches
//! [`MAX_CACHED_CLIENTS`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use vestibule_store::provider::StoredOidcClient;
use vestibule_store::{Store, StoreError};

use crate::config::{ClientDefaults, OidcClientConfig, OidcClientSettings, OidcProviderSettings};

/// How long the store's answer for a client id is kept: the longest a
/// removed client, or a rotated secret, keeps working at an instance.
pub const STORED_CLIENT_TTL: Duration = Duration::from_millis(750);
/// The most client ids kept; past it the cache starts again empty.
pub const MAX_CACHED_CLIENTS: usize = 4096;

/// The clients of the file, the defaults stored clients are read with,
/// and the store's recent answers.
pub struct ClientRegistry {
    file: RwLock<Arc<HashMap<String, Arc<OidcClientSettings>>>>,
    defaults: ClientDefaults,
    stored: Mutex<HashMap<String, (Instant, Option<StoredOidcClient>)>>,
    /// The key sets of `private_key_jwt` clients and the assertion ids
    /// they used.
    pub assertions: super::client_keys::AssertionKeys,
}

fn file_clients(settings: &OidcProviderSettings) -> HashMap<String, Arc<OidcClientSettings>> {
    settings
        .clients
        .iter()
        .map(|c| (c.client_id.clone(), Arc::new(c.clone())))
        .collect()
}

impl ClientRegistry {
    /// The registry of checked settings.
    pub fn new(settings: &OidcProviderSettings) -> Self {
        Self {
            file: RwLock::new(Arc::new(file_clients(settings))),
            defaults: settings.client_defaults,
            stored: Mutex::new(HashMap::new()),
            assertions: super::client_keys::AssertionKeys::default(),
        }
    }

    /// The file's clients as they are now.
    fn file(&self) -> Arc<HashMap<String, Arc<OidcClientSettings>>> {
        self.file
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Swaps in the clients of a reloaded file (see the module
    /// documentation); the cache of stored answers is cleared too, since
    /// which ids the file declares decides what it keeps.
    pub fn replace_file_clients(&self, settings: &OidcProviderSettings) {
        let clients = Arc::new(file_clients(settings));
        *self
            .file
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = clients;
        self.stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The store's registration of `client_id`, as read at most
    /// [`STORED_CLIENT_TTL`] ago.
    async fn stored(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<StoredOidcClient>, StoreError> {
        let lock = || {
            self.stored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((at, s)) = lock().get(client_id)
            && at.elapsed() < STORED_CLIENT_TTL
        {
            return Ok(s.clone());
        }
        let read_at = Instant::now();
        let s = store.oidc_client(client_id).await?;
        if s.is_some() || self.file().contains_key(client_id) {
            let mut cache = lock();
            if cache.len() >= MAX_CACHED_CLIENTS {
                cache.clear();
            }
            cache.insert(client_id.to_owned(), (read_at, s.clone()));
        }
        Ok(s)
    }

    /// The client `client_id`: from the file or the store (as read at most
    /// [`STORED_CLIENT_TTL`] ago); `None` if it is in neither, in both
    /// (ambiguous), or its stored registration does not pass the checks.
    pub async fn find(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<Arc<OidcClientSettings>>, StoreError> {
        let stored = self.stored(store, client_id).await?;
        match (self.file().get(client_id), stored) {
            (Some(c), None) => Ok(Some(c.clone())),
            (Some(_), Some(_)) => {
                tracing::error!(
                    client_id,
                    "the client is declared in the configuration file and registered in the store; it is refused until one of them is removed"
                );
                Ok(None)
            }
            (None, Some(s)) => match OidcClientConfig::from_stored(
                &s.client_id,
                s.secret_hash.as_ref(),
                &s.settings_json,
                self.defaults,
            ) {
                Ok(c) => Ok(Some(Arc::new(c))),
                Err(problems) => {
                    tracing::error!(client_id, %problems, "a stored client's registration is refused");
                    Ok(None)
                }
            },
            (None, None) => Ok(None),
        }
    }
}

/// The ids declared in the file and registered in the store alike, in
/// the file's order: each one is a configuration error.
pub async fn clashes(
    settings: &OidcProviderSettings,
    store: &dyn Store,
) -> Result<Vec<String>, StoreError> {
    let stored = store.oidc_clients().await?;
    Ok(settings
        .clients
        .iter()
        .filter(|c| stored.iter().any(|s| s.client_id == c.client_id))
        .map(|c| c.client_id.clone())
        .collect())
}

/// The configuration error for one id of [`clashes`].
pub fn clash_message(client_id: &str) -> String {
    format!(
        "the client `{client_id}` is declared in [[oidc_provider.client]] and registered in the \
         store (`vestibule clients`); which registration holds would be ambiguous"
    )
}
