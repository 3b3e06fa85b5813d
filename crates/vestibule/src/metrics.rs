//! Prometheus metrics, served as text on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `vestibule_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name, or `none`.
    pub route: String,
    /// `forwarded`, `verified`, `unauthenticated`, `forbidden`, `bad_request`,
    /// `no_route`, `too_large`, `upstream_error`, `upstream_timeout`.
    pub outcome: &'static str,
}

/// Labels of `vestibule_oidc_backchannel_logouts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackchannelLabels {
    /// `sent`, `failed` (retried later), `gave_up`, `dropped` (the client
    /// is gone or has no `backchannel_logout_uri`).
    pub outcome: &'static str,
}

/// Labels of `vestibule_oidc_login_rechecks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecheckLabels {
    /// `vouched` (kept), `refused` (ended at once), `unreachable` (kept
    /// within `recheck_grace`), `expired` (ended: the grace passed).
    pub outcome: &'static str,
}

/// Labels of `vestibule_auth_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Identity source (`headers`, or `device` for device credentials).
    pub source: &'static str,
    /// `authenticated`, `anonymous`, `rejected`; for devices also
    /// `refused` (valid, but not for this app or owner) and `rate_limited`.
    pub result: &'static str,
}

/// Labels of `vestibule_upstream_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route name.
    pub route: String,
}

/// Labels of `vestibule_oidc_grants_revoked_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevokedByLabel {
    /// `user` (their own, on the apps page) or `admin` (the admin page).
    pub by: &'static str,
}

/// Every metric vestibule exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Authentication decisions by source and result.
    pub auth_decisions: Family<AuthLabels, Counter>,
    /// Identity headers sent by untrusted peers and stripped.
    pub spoofed_headers_stripped: Counter,
    /// Time from sending a request upstream to its response headers.
    pub upstream_duration: Family<RouteLabel, Histogram>,
    /// Rotated OIDC refresh tokens presented again after the grace window:
    /// each revoked its family (RFC 9700 §4.14.2), and may be a theft.
    pub oidc_refresh_reuse: Counter,
    /// OIDC grants revoked by a person (the apps page, the admin page),
    /// by who revoked them.
    pub oidc_grants_revoked: Family<RevokedByLabel, Counter>,
    /// Back-channel logout deliveries by outcome.
    pub oidc_backchannel_logouts: Family<BackchannelLabels, Counter>,
    /// Re-checks of `[source.oidc]` sessions at the provider, by outcome.
    pub oidc_login_rechecks: Family<RecheckLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vestibule");
        let requests = Family::<RequestLabels, Counter>::default();
        let auth_decisions = Family::<AuthLabels, Counter>::default();
        let spoofed_headers_stripped = Counter::default();
        let oidc_refresh_reuse = Counter::default();
        let oidc_grants_revoked = Family::<RevokedByLabel, Counter>::default();
        let oidc_backchannel_logouts = Family::<BackchannelLabels, Counter>::default();
        let oidc_login_rechecks = Family::<RecheckLabels, Counter>::default();
        let upstream_duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        registry.register(
            "requests",
            "Requests by route and outcome",
            requests.clone(),
        );
        registry.register(
            "auth_decisions",
            "Authentication decisions by source and result",
            auth_decisions.clone(),
        );
        registry.register(
            "spoofed_identity_headers_stripped",
            "Identity headers sent by untrusted peers and stripped",
            spoofed_headers_stripped.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time until the upstream's response headers",
            upstream_duration.clone(),
        );
        registry.register(
            "oidc_refresh_token_reuse",
            "Rotated refresh tokens presented after the grace window (family revoked)",
            oidc_refresh_reuse.clone(),
        );
        registry.register(
            "oidc_grants_revoked",
            "OIDC grants revoked by their user or an administrator",
            oidc_grants_revoked.clone(),
        );
        registry.register(
            "oidc_backchannel_logouts",
            "Back-channel logout deliveries by outcome (sent, failed, gave_up, dropped)",
            oidc_backchannel_logouts.clone(),
        );
        registry.register(
            "oidc_login_rechecks",
            "Re-checks of sessions from the OpenID provider login, by outcome (vouched, refused, unreachable, expired)",
            oidc_login_rechecks.clone(),
        );
        Self {
            registry,
            requests,
            auth_decisions,
            spoofed_headers_stripped,
            upstream_duration,
            oidc_refresh_reuse,
            oidc_grants_revoked,
            oidc_backchannel_logouts,
            oidc_login_rechecks,
        }
    }

    /// Counts one request.
    pub fn request(&self, route: &str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts one grant revoked by a person.
    pub fn grant_revoked(&self, by: crate::provider::grants::By) {
        self.oidc_grants_revoked
            .get_or_create(&RevokedByLabel { by: by.label() })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
