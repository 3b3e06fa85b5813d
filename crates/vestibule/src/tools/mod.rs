//! Programs beside the gateway: the demo ([`demo`], with its OpenID
//! Connect app [`demo_app`]), the whoami test app
//! ([`whoami`]), the benchmark seeder ([`bench_seed`]), and the man page
//! and completions for the Debian package ([`assets`]).

pub mod assets;
pub mod bench_seed;
pub mod demo;
pub mod demo_app;
pub mod whoami;

use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The tools' HTTP client (the demo front, the benchmark seeder): hyper's
/// pooled legacy client. The gateway's own path to upstreams is
/// `http/upstream.rs`.
pub type ToolClient = Client<HttpConnector, Body>;

/// A pooled HTTP/1.1 client. `local_ip` binds outgoing sockets (the demo
/// front uses it to connect from its own loopback address).
pub fn tool_client(
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    local_ip: Option<std::net::IpAddr>,
) -> ToolClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.set_local_address(local_ip);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .build(connector)
}
