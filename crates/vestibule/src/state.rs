//! Shared, read-mostly state of a running gateway.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use vestibule_core::dialect::{Dialect, ValueLimits};
use vestibule_core::headers::IdentityHeaders;
use vestibule_core::redirect::RedirectPolicy;
use vestibule_core::route::RouteTable;

use crate::accounts::Accounts;
use crate::config::{RouteSettings, Settings, SourceKind};
use crate::devices::Devices;
use crate::identity::jwks::SigningKeys;
use crate::metrics::{AuthLabels, Metrics, RequestLabels, RouteLabel};
use crate::ratelimited_log::RateLimitedLog;

/// Everything a request handler needs.
pub struct AppState {
    /// The checked configuration.
    pub settings: Settings,
    /// Pooled HTTP/1.1 connections towards the apps.
    pub upstream: Arc<crate::http::upstream::UpstreamPool>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Gate for the "untrusted peer sent identity headers" warning.
    pub spoof_log: RateLimitedLog,
    /// The routes and what depends on them, replaced whole by a reload
    /// (`SIGHUP`); read them with [`AppState::routes`].
    routes: RwLock<Arc<Routes>>,
    /// Handles of `vestibule_auth_decisions_total{source="headers"}`.
    pub header_auth: AuthCounters,
    /// Handles of `vestibule_auth_decisions_total{source="device"}`.
    pub device_auth: DeviceAuthCounters,
    /// Accounts and device credentials, when `[accounts]` is configured
    /// (they exist together or not at all); see [`AppState::accounts`] and
    /// [`AppState::devices`].
    pub account_services: Option<AccountServices>,
    /// How identities are read, when a `[source]` is configured.
    pub identity_reader: Option<IdentityReader>,
    /// `[source.oidc]` beside `[source.headers]` or `[source.jwt]`: the
    /// second way in (issue 15, linking); see [`AppState::oidc_upstream`].
    pub also_oidc: Option<Arc<crate::identity::oidc::Upstream>>,
    /// What app routes know of the sessions the OIDC login opened (as the
    /// source or beside one), with the store: see `web/oidc_sessions.rs`.
    pub oidc_sessions: Option<Arc<crate::web::oidc_sessions::OidcSessions>>,
    /// The keys identity assertions are signed with, published at
    /// `/.vestibule/jwks.json`; loaded (or made) by [`crate::app::spawn`]
    /// when the store exists.
    pub signing_keys: Option<Arc<crate::keys::KeyRing>>,
    /// Assertion signing and its cache, when a route sends assertions.
    pub assertions: Option<crate::keys::assertion::Assertions>,
    /// The client-certificate CA, when `[client_certs]` is enabled; opened
    /// (or made) by [`crate::app::spawn`].
    pub client_ca: Option<Arc<crate::certs::ClientCa>>,
    /// Certificates just issued, waiting for their page and downloads.
    pub issued_certificates: crate::web::certificates::IssuedCertificates,
    /// The OpenID provider, when `[oidc_provider]` is configured (it
    /// needs the store, which the configuration check insists on).
    pub provider: Option<Arc<crate::provider::ProviderState>>,
}

/// The services that exist only with `[accounts]`, over one store.
pub struct AccountServices {
    /// Accounts: lookup, provisioning, the admin actions' store.
    pub accounts: Arc<Accounts>,
    /// Device credentials and pairing.
    pub devices: Arc<Devices>,
}

/// How this gateway reads who a request is from: one type per kind of
/// `[source]`, so that assertions cannot be configured without the keys
/// that check them.
pub enum IdentityReader {
    /// `[source.headers]`: plain identity headers in a dialect.
    Headers {
        /// The dialect that reads them.
        dialect: Box<Dialect>,
        /// Bounds on values.
        limits: ValueLimits,
        /// The identities read so far, by their headers' bytes (issue 17).
        cache: crate::identity::cache::IdentityCache,
    },
    /// `[source.jwt]`: a signed assertion, checked against a JWK Set.
    Jwt {
        /// The assertion signing keys (and the `[source.jwt]` settings).
        keys: Arc<SigningKeys>,
        /// Bounds on values.
        limits: ValueLimits,
    },
    /// `[source.oidc]`: the session cookie of vestibule's own OIDC login.
    Oidc {
        /// The upstream provider (and the `[source.oidc]` settings).
        upstream: Arc<crate::identity::oidc::Upstream>,
    },
}

impl IdentityReader {
    /// The `source` label of `vestibule_auth_decisions_total`.
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Headers { .. } => "headers",
            Self::Jwt { .. } => "jwt",
            Self::Oidc { .. } => "oidc",
        }
    }
}

/// The routes as one unit: their settings, the matcher over them, the
/// identity header spellings their profiles add, the return addresses
/// their hosts allow, and their metric handles, all by the same index.
///
/// A request takes one snapshot ([`AppState::routes`]) and keeps it from
/// the decision to the response, so a route index never meets another
/// table, even when a reload swaps the routes in between.
pub struct Routes {
    /// Routes, in file order.
    pub list: Vec<RouteSettings>,
    /// Matcher over `list`.
    pub table: RouteTable,
    /// Every identity header spelling, stripped before forwarding.
    pub identity_headers: IdentityHeaders,
    /// Where `rd` and `return_to` may send a browser.
    pub redirects: RedirectPolicy,
    /// Metric handles by route index, created once so the hot path
    /// increments an atomic instead of hashing labels.
    pub metrics: Vec<RouteMetrics>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The route names say which table this is; the rest is derived.
        f.debug_struct("Routes")
            .field(
                "names",
                &self.list.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// The routes of checked `settings`, with their metric handles.
    pub fn new(settings: &Settings, metrics: &Metrics) -> Self {
        let request = |route: &str, outcome: &'static str| {
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: route.to_owned(),
                    outcome,
                })
                .clone()
        };
        Self {
            list: settings.routes.clone(),
            table: settings.route_table.clone(),
            identity_headers: settings.identity_headers.clone(),
            redirects: settings.redirects.clone(),
            metrics: settings
                .routes
                .iter()
                .map(|r| RouteMetrics {
                    forwarded: request(&r.name, "forwarded"),
                    verified: request(&r.name, "verified"),
                    upstream: metrics
                        .upstream_duration
                        .get_or_create(&RouteLabel {
                            route: r.name.clone(),
                        })
                        .clone(),
                })
                .collect(),
        }
    }
}

/// The hot metrics of one route.
pub struct RouteMetrics {
    /// `outcome="forwarded"`.
    pub forwarded: Counter,
    /// `outcome="verified"`.
    pub verified: Counter,
    /// `vestibule_upstream_duration_seconds{route}`.
    pub upstream: Histogram,
}

/// Authentication decision counters of one source.
pub struct AuthCounters {
    /// `result="authenticated"`.
    pub authenticated: Counter,
    /// `result="anonymous"`.
    pub anonymous: Counter,
    /// `result="rejected"`.
    pub rejected: Counter,
}

/// Decision counters of device credentials.
pub struct DeviceAuthCounters {
    /// `result="authenticated"`.
    pub authenticated: Counter,
    /// `result="rejected"`: unknown, expired, or the wrong Basic user.
    pub rejected: Counter,
    /// `result="refused"`: valid, but another app, a pending or disabled
    /// owner, or stale SSO.
    pub refused: Counter,
    /// `result="rate_limited"`.
    pub rate_limited: Counter,
}

impl AppState {
    /// The routes now: one snapshot, to be kept for the whole request.
    pub fn routes(&self) -> Arc<Routes> {
        // A panic while swapping cannot leave a half-written `Arc`.
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts new routes in place of the running ones, atomically: requests
    /// already holding a snapshot finish with it, later ones get these.
    pub fn replace_routes(&self, routes: Routes) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(routes);
    }

    /// The accounts service, with `[accounts]`.
    pub fn accounts(&self) -> Option<&Arc<Accounts>> {
        self.account_services.as_ref().map(|s| &s.accounts)
    }

    /// The OIDC login's upstream, whether `[source.oidc]` is the only
    /// source or the second one.
    pub fn oidc_upstream(&self) -> Option<&Arc<crate::identity::oidc::Upstream>> {
        match &self.identity_reader {
            Some(IdentityReader::Oidc { upstream }) => Some(upstream),
            _ => self.also_oidc.as_ref(),
        }
    }

    /// The device credentials service, with `[accounts]`.
    pub fn devices(&self) -> Option<&Arc<Devices>> {
        self.account_services.as_ref().map(|s| &s.devices)
    }

    /// Builds the state (and the upstream pool) from settings and, with
    /// accounts, an open store. Fails only when `source.jwt.jwks_ca`
    /// cannot be read.
    pub fn new(
        settings: Settings,
        store: Option<Arc<dyn vestibule_store::Store>>,
    ) -> Result<Self, String> {
        let upstream = crate::http::upstream::UpstreamPool::new(
            settings.connect_timeout,
            settings.pool_idle_timeout,
            settings.workers,
        );
        let metrics = Metrics::new();
        let routes = RwLock::new(Arc::new(Routes::new(&settings, &metrics)));
        let auth = |source: &'static str, result: &'static str| {
            metrics
                .auth_decisions
                .get_or_create(&AuthLabels { source, result })
                .clone()
        };
        // The OIDC login's provider, as the source or beside one: its
        // tokens sealed with the key-encryption key either way.
        let oidc_upstream = |o: &crate::config::OidcLogin| -> Result<_, String> {
            let kek = settings
                .keys
                .kek
                .as_ref()
                .map(crate::keys::kek::Kek::load)
                .transpose()?;
            Ok(Arc::new(
                crate::identity::oidc::Upstream::new(o.clone())?.with_kek(kek),
            ))
        };
        let identity_reader = match &settings.identity_source {
            Some(s) => Some(match &s.kind {
                SourceKind::Headers(dialect) => IdentityReader::Headers {
                    dialect: Box::new(dialect.clone()),
                    limits: s.limits,
                    cache: Default::default(),
                },
                SourceKind::Jwt(j) => IdentityReader::Jwt {
                    keys: Arc::new(SigningKeys::new(j.clone())?),
                    limits: s.limits,
                },
                SourceKind::Oidc(o) => IdentityReader::Oidc {
                    upstream: oidc_upstream(o)?,
                },
            }),
            None => None,
        };
        let also_oidc = match settings
            .identity_source
            .as_ref()
            .and_then(|s| s.also_oidc.as_ref())
        {
            Some(o) => Some(oidc_upstream(o)?),
            None => None,
        };
        let any_oidc =
            also_oidc.is_some() || matches!(identity_reader, Some(IdentityReader::Oidc { .. }));
        let oidc_sessions = match &store {
            Some(s) if any_oidc => Some(Arc::new(crate::web::oidc_sessions::OidcSessions::new(
                s.clone(),
            ))),
            _ => None,
        };
        let source = identity_reader
            .as_ref()
            .map_or("headers", IdentityReader::metric_label);
        let header_auth = AuthCounters {
            authenticated: auth(source, "authenticated"),
            anonymous: auth(source, "anonymous"),
            rejected: auth(source, "rejected"),
        };
        let device_auth = DeviceAuthCounters {
            authenticated: auth("device", "authenticated"),
            rejected: auth("device", "rejected"),
            refused: auth("device", "refused"),
            rate_limited: auth("device", "rate_limited"),
        };
        let provider = match (&store, &settings.oidc_provider) {
            (Some(store), Some(p)) => Some(Arc::new(crate::provider::ProviderState::new(
                p.clone(),
                store.clone(),
            ))),
            _ => None,
        };
        let account_services = match (store, &settings.accounts) {
            (Some(store), Some(a)) => {
                let mut accounts = Accounts::new(store.clone(), a.cache_ttl, a.roles.clone());
                if let Some(l) = &a.ldap {
                    accounts = accounts
                        .with_directory(Arc::new(crate::accounts::ldap::Directory::new(l.clone())));
                }
                let accounts = Arc::new(accounts);
                let devices = Arc::new(Devices::new(
                    store,
                    accounts.clone(),
                    a.cache_ttl,
                    a.roles.clone(),
                    settings.devices.failures_per_minute,
                ));
                Some(AccountServices { accounts, devices })
            }
            _ => None,
        };
        let assertions = settings
            .assertions
            .clone()
            .map(crate::keys::assertion::Assertions::new);
        Ok(Self {
            settings,
            upstream,
            metrics,
            spoof_log: RateLimitedLog::new(Duration::from_secs(10)),
            routes,
            header_auth,
            device_auth,
            account_services,
            identity_reader,
            also_oidc,
            oidc_sessions,
            signing_keys: None,
            assertions,
            client_ca: None,
            issued_certificates: Default::default(),
            provider,
        })
    }
}
