//! Shared, read-mostly state of a running gateway.

use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::ratelimited_log::RateLimitedLog;

/// The pooled upstream client.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// Everything a request handler needs.
pub struct AppState {
    /// The checked configuration.
    pub settings: Settings,
    /// Pooled HTTP/1.1 client towards the apps.
    pub client: UpstreamClient,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Gate for the "untrusted peer sent identity headers" warning.
    pub spoof_log: RateLimitedLog,
}

impl AppState {
    /// Builds the state (and the upstream pool) from settings.
    pub fn new(settings: Settings) -> Self {
        let client = upstream_client(settings.connect_timeout, settings.pool_idle_timeout, None);
        Self {
            settings,
            client,
            metrics: Metrics::new(),
            spoof_log: RateLimitedLog::new(Duration::from_secs(10)),
        }
    }
}

/// A pooled HTTP/1.1 client. `local_ip` binds outgoing sockets (the demo
/// front uses it to connect from its own loopback address).
pub fn upstream_client(
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    local_ip: Option<std::net::IpAddr>,
) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.set_local_address(local_ip);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .build(connector)
}
