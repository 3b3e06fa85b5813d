//! Assembling a gateway: `Settings → AppState → Router`, then binding the
//! listeners and serving until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::http::listen::{self, Bound};
use crate::http::workers;
use crate::state::{AppState, IdentityReader};

/// Where vestibule's own endpoints live on the main listeners.
pub const OWN_PREFIX: &str = "/.vestibule";

/// The main router: vestibule's own endpoints, and everything else through
/// the pipeline to the apps.
pub fn app(state: Arc<AppState>) -> Router {
    let verify_path = state.settings.verify_path.clone();
    let router = Router::new()
        .route("/.vestibule/healthz", get(healthz))
        .route(JWKS_PATH, get(jwks))
        .route(CLIENT_CA_PATH, get(crate::web::certificates::ca_pem))
        .route(CLIENT_CRL_PATH, get(crate::web::certificates::crl))
        .route(CLIENT_CRLS_PATH, get(crate::web::certificates::crls))
        .route(&verify_path, get(crate::http::forward_auth::verify))
        .merge(crate::web::router())
        .merge(crate::api::router());
    // The provider's endpoints, and its metadata in front of the apps
    // (the documents live outside /.vestibule/, on the issuer's host).
    let router = if state.provider.is_some() {
        router
            .merge(crate::provider::routes())
            .fallback(crate::provider::discovery::or_proxy)
    } else {
        router.fallback(crate::http::forward::proxy)
    };
    router.with_state(state)
}

/// The admin router: `/metrics`, `/healthz`, and the probes `/livez` and
/// `/readyz` (see [`crate::service::health`]).
pub fn admin_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route(JWKS_PATH, get(jwks))
        .route("/livez", get(crate::service::health::livez))
        .route("/readyz", get(crate::service::health::readyz))
        .with_state(state)
}

/// The client-certificate CA certificates (PEM), for fronts that check
/// certificates themselves.
pub const CLIENT_CA_PATH: &str = "/.vestibule/client-ca.pem";
/// The client-certificate CRL (DER), regenerated on every request.
pub const CLIENT_CRL_PATH: &str = "/.vestibule/client-ca.crl";
/// The CRLs of every client CA still valid, PEM (after a rotation).
pub const CLIENT_CRLS_PATH: &str = "/.vestibule/client-ca-crls.pem";

/// Where the public keys of the assertion signing keys are published, on
/// the main and the admin listeners.
pub const JWKS_PATH: &str = "/.vestibule/jwks.json";

/// The JWK Set of the signing keys (RFC 7517 §5), as
/// `application/jwk-set+json` (§8.5.1), cacheable for less than a new key
/// is published ahead of signing. 404 without a store (no keys).
async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let Some(ring) = &state.signing_keys else {
        return crate::http::responses::plain(
            StatusCode::NOT_FOUND,
            "no signing keys: assertions need [accounts] (the keys live in its store)",
        );
    };
    let mut resp = ring.published().to_json().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&ring.cache_control()) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    resp
}

async fn healthz() -> Response {
    crate::http::responses::plain(StatusCode::OK, "ok")
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// A gateway that is serving.
pub struct Running {
    /// The shared state (for tests and the demo).
    pub state: Arc<AppState>,
    /// Plain-HTTP addresses, as bound (port 0 resolved).
    pub http_addrs: Vec<SocketAddr>,
    /// TLS addresses, as bound.
    pub tls_addrs: Vec<SocketAddr>,
    /// Admin address, as bound.
    pub admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Tasks that run until aborted (cache followers).
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains open connections, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // The cache followers never end by themselves (they wait for the
        // next change); nothing needs them once the listeners are drained.
        for t in self.background {
            t.abort();
        }
    }
}

/// Opens (and migrates) the account store, creating the SQLite directory.
pub async fn open_store(
    a: &crate::config::AccountSettings,
) -> Result<Arc<dyn vestibule_store::Store>, String> {
    create_data_dir(a)?;
    vestibule_store::open(&a.store)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))
}

/// Creates the SQLite data directory, when there is one.
pub fn create_data_dir(a: &crate::config::AccountSettings) -> Result<(), String> {
    match &a.sqlite_dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display())),
        None => Ok(()),
    }
}

/// Binds every listener in `settings` and starts serving.
pub async fn spawn(settings: Settings) -> Result<Running, String> {
    let limits = listen::Limits {
        header_read_timeout: settings.header_read_timeout,
        max_request_headers: settings.max_request_headers,
        max_header_bytes: settings.max_header_bytes,
        connections: Arc::new(tokio::sync::Semaphore::new(settings.max_connections)),
    };
    let admin_listen = settings.admin_listen;
    let store = match &settings.accounts {
        Some(a) => Some(open_store(a).await?),
        None => None,
    };
    let keys = settings.keys.clone();
    // The ID token algorithms get key families of their own (issue 14).
    let id_token_algs = crate::provider::id_token::algorithms(settings.oidc_provider.as_ref());
    let client_certs = settings.client_certs.clone();
    let tls_files = settings.tls.clone();
    // The same client id in the file and the store is a configuration
    // error (issue 14): refuse to start rather than guess which holds.
    if let (Some(store), Some(p)) = (&store, &settings.oidc_provider) {
        let clashes = crate::provider::clients::clashes(p, store.as_ref())
            .await
            .map_err(|e| format!("cannot read the stored OpenID Connect clients: {e}"))?;
        if let Some(id) = clashes.first() {
            return Err(crate::provider::clients::clash_message(id));
        }
    }
    let mut state = AppState::new(settings, store.clone())?;
    let mut background = Vec::new();
    if let Some(store) = store {
        if let Some(cc) = &client_certs {
            let kek = keys
                .kek
                .as_ref()
                .map(crate::keys::kek::Kek::load)
                .transpose()?;
            let ca = crate::certs::ClientCa::open(store.clone(), kek, cc.crl_url.clone()).await?;
            state.client_ca = Some(Arc::new(ca));
        }
        let ring = Arc::new(crate::keys::KeyRing::open_with(store, keys, &id_token_algs).await?);
        background.push(ring.clone().maintain());
        state.signing_keys = Some(ring);
    }
    let tls = match &tls_files {
        Some(t) => {
            let (hosts, verifier) = match (&client_certs, &state.client_ca) {
                (Some(cc), Some(ca)) if !cc.hostnames.is_empty() => {
                    let cas: Vec<Vec<u8>> =
                        ca.all().await?.into_iter().map(|r| r.cert_der).collect();
                    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                    let v: Arc<dyn rustls::server::danger::ClientCertVerifier> =
                        Arc::new(crate::certs::tls::AnyClientCert::new(&cas, provider)?);
                    (cc.hostnames.clone(), Some(v))
                }
                _ => (Vec::new(), None),
            };
            Some((
                listen::TlsSetup::load(&t.cert, &t.key, hosts, verifier)?,
                t.listen.clone(),
            ))
        }
        None => None,
    };
    let state = Arc::new(state);
    let mut tasks = Vec::new();
    if let Some(IdentityReader::Jwt { keys, .. }) = &state.identity_reader {
        // The first load is awaited so a working key server is in use from
        // the first request; a failing one is retried in the background.
        match keys.refresh().await {
            Ok(n) => tracing::info!(keys = n, "assertion signing keys loaded"),
            Err(e) => {
                tracing::warn!(error = %e, "could not load the assertion signing keys; assertions get 503 until they load")
            }
        }
        background.push(keys.refresh_loop());
    }
    if let Some(accounts) = state.accounts() {
        background.push(accounts.follow_changes());
        background.push(crate::accounts::housekeeping::purge_expired_rows(
            accounts.store().clone(),
            crate::accounts::housekeeping::PURGE_EVERY,
        ));
    }
    if let Some(devices) = state.devices() {
        background.push(devices.follow_changes());
    }
    if let Some(p) = &state.provider {
        background.push(p.gate.follow_changes(&p.store));
    }
    // Back-Channel Logout 1.0: deliveries queued by the store.
    if let Some(sender) = crate::provider::backchannel::spawn_sender(state.clone()) {
        background.push(sender);
    }
    // `[source.oidc]`: each session re-checked at the provider.
    if let Some(rechecks) = crate::identity::oidc_recheck::spawn(state.clone()) {
        background.push(rechecks);
    }
    let (shutdown, rx) = watch::channel(false);
    let router = app(state.clone());

    // Every main listener is bound here, once per worker, so an address
    // in use stops startup; the workers serve them (http/workers.rs).
    let workers = state.settings.workers;
    let mut listeners = Vec::new();
    let mut http_addrs = Vec::new();
    let mut tls_addrs = Vec::new();
    for addr in &state.settings.listen {
        let (sockets, bound) = workers::bind_tcp(*addr, workers)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(listener = %format!("http://{bound}"), workers, "listening");
        http_addrs.push(bound);
        listeners.push(workers::Listener::Tcp(sockets, None));
    }
    if let Some((acceptor, addrs)) = tls {
        for addr in addrs {
            let (sockets, bound) = workers::bind_tcp(addr, workers)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!(listener = %format!("https://{bound}"), workers, "listening");
            tls_addrs.push(bound);
            listeners.push(workers::Listener::Tcp(sockets, Some(acceptor.clone())));
        }
    }
    for u in &state.settings.unix {
        // A socket left by a previous run would make bind fail; anything
        // else at that path is the operator's file and is left alone.
        if let Ok(meta) = std::fs::symlink_metadata(&u.path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    u.path.display()
                ));
            }
            std::fs::remove_file(&u.path)
                .map_err(|e| format!("cannot replace {}: {e}", u.path.display()))?;
        }
        let l = std::os::unix::net::UnixListener::bind(&u.path)
            .map_err(|e| format!("cannot listen on {}: {e}", u.path.display()))?;
        let describe = format!(
            "unix:{}{}",
            u.path.display(),
            if u.trusted { " (trusted)" } else { "" }
        );
        tracing::info!(listener = %describe, workers, "listening");
        listeners.push(workers::Listener::Unix(l, u.trusted, u.path.clone()));
    }
    tasks.extend(workers::spawn(
        workers,
        listeners,
        &listen::Dispatch::main(router.clone(), state.clone()),
        &limits,
        &rx,
    )?);
    let mut admin_addr = None;
    if let Some(addr) = admin_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
        admin_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        tracing::info!(listener = %format!("http://{}", l.local_addr().map_err(|e| e.to_string())?), "admin listening");
        tasks.push(tokio::spawn(listen::serve(
            Bound::Tcp(l, None),
            listen::Dispatch::router_only(admin_app(state.clone())),
            // The admin listener has its own small budget, so a flood on the
            // main listeners cannot lock operators out of /metrics.
            listen::Limits {
                connections: Arc::new(tokio::sync::Semaphore::new(64)),
                ..limits.clone()
            },
            rx.clone(),
        )));
    }
    Ok(Running {
        state,
        http_addrs,
        tls_addrs,
        admin_addr,
        shutdown,
        tasks,
        background,
    })
}
