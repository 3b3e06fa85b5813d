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

use std::collections::HashMap;
use std::sync::Arc;

use vestibule_store::{Store, StoreError};

use crate::config::{ClientDefaults, OidcClientConfig, OidcClientSettings, OidcProviderSettings};

/// The clients of the file, and the defaults stored clients are read with.
pub struct ClientRegistry {
    file: HashMap<String, Arc<OidcClientSettings>>,
    defaults: ClientDefaults,
}

impl ClientRegistry {
    /// The registry of checked settings.
    pub fn new(settings: &OidcProviderSettings) -> Self {
        Self {
            file: settings
                .clients
                .iter()
                .map(|c| (c.client_id.clone(), Arc::new(c.clone())))
                .collect(),
            defaults: settings.client_defaults,
        }
    }

    /// The client `client_id`: from the file or the store; `None` if it
    /// is in neither, in both (ambiguous), or its stored registration does
    /// not pass the checks.
    pub async fn find(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<Arc<OidcClientSettings>>, StoreError> {
        let stored = store.oidc_client(client_id).await?;
        match (self.file.get(client_id), stored) {
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
