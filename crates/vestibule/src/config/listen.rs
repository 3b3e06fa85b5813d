//! `[server]` (listeners, TLS, Unix sockets, the admin listener, request
//! limits) and `[client_ip]` (how the client address is found).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vestibule_core::net::TrustedNetworks;

use super::HumanDuration;
use super::diagnostic::{Collector, parse_addr, trusted_list};

/// Default plain-HTTP listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin (metrics) listener: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Default time a client has to send its request headers (slowloris guard).
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// Default `server.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10000;
/// Most `server.workers`: far above any core count this runs on, low
/// enough that a typo (an extra zero) is caught.
pub(super) const MAX_WORKERS: usize = 1024;
/// Default `server.max_request_headers`.
pub const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;
/// Default `server.max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 65536;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-HTTP listeners. Default `["127.0.0.1:8080"]`. Port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Unix socket listeners. Default none.
    #[serde(default)]
    pub unix: Vec<UnixListenerConfig>,
    /// TLS listener. Default none.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Admin listener for `/metrics`. Default `"127.0.0.1:9090"`; `""` turns it off.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Time a client has to send its request headers. Default `"10s"`.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// Most connections served at once, over all listeners; further clients
    /// wait in the kernel's accept queue. Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most header lines in one request (431 beyond). Default 100.
    #[serde(default = "default_max_request_headers")]
    pub max_request_headers: usize,
    /// Largest request head (request line plus headers), in bytes (431
    /// beyond). Default 65536.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Proxy workers: OS threads, each with its own single-threaded
    /// runtime and its own SO_REUSEPORT socket per listener. Default the
    /// CPUs this process may run on (`std::thread::available_parallelism`,
    /// which follows `taskset` and cgroup CPU limits); 1..=1024.
    #[serde(default)]
    pub workers: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            unix: Vec::new(),
            tls: None,
            admin_listen: default_admin_listen(),
            header_read_timeout: default_header_read_timeout(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            workers: None,
        }
    }
}

/// The default `server.workers`: one per CPU this process may run on.
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_request_headers() -> usize {
    DEFAULT_MAX_REQUEST_HEADERS
}
fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_listen() -> Vec<String> {
    vec![DEFAULT_LISTEN.to_owned()]
}
fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.to_owned()
}
fn default_header_read_timeout() -> HumanDuration {
    HumanDuration::parse(DEFAULT_HEADER_READ_TIMEOUT).unwrap_or_default()
}

/// `[[server.unix]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixListenerConfig {
    /// Socket path (required). A stale socket file is replaced.
    pub path: PathBuf,
    /// Whether peers on this socket are trusted like `trusted_proxies`.
    /// Default `false`. Only the front proxy should be able to connect.
    #[serde(default)]
    pub trusted: bool,
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// TLS listeners (required, e.g. `["0.0.0.0:8443"]`).
    pub listen: Vec<String>,
    /// PEM certificate chain (required).
    pub cert: PathBuf,
    /// PEM private key (required).
    pub key: PathBuf,
}

/// TLS listener settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Addresses.
    pub listen: Vec<SocketAddr>,
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// `[server]`, checked.
#[derive(Debug, Clone)]
pub(super) struct ServerSettings {
    pub(super) listen: Vec<SocketAddr>,
    pub(super) unix: Vec<UnixListenerConfig>,
    pub(super) tls: Option<TlsSettings>,
    pub(super) admin_listen: Option<SocketAddr>,
    pub(super) header_read_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_request_headers: usize,
    pub(super) max_header_bytes: usize,
    pub(super) workers: usize,
}

impl ServerConfig {
    /// Checks `[server]`.
    pub(super) fn validate(&self, c: &mut Collector) -> ServerSettings {
        let listen: Vec<SocketAddr> = self
            .listen
            .iter()
            .enumerate()
            .filter_map(|(i, s)| parse_addr(c, &format!("server.listen[{i}]"), s))
            .collect();
        if self.listen.is_empty() && self.unix.is_empty() && self.tls.is_none() {
            c.error(
                "server.listen",
                "no listener is configured",
                "add an address such as \"127.0.0.1:8080\"",
            );
        }
        let tls = self.tls.as_ref().map(|t| t.validate(c));
        for (i, u) in self.unix.iter().enumerate() {
            if u.path.as_os_str().is_empty() {
                c.error(
                    format!("server.unix[{i}].path"),
                    "empty socket path",
                    "set a path such as \"/run/vestibule/http.sock\"",
                );
            }
        }
        let admin_listen = if self.admin_listen.is_empty() {
            None
        } else {
            let a = parse_addr(c, "server.admin_listen", &self.admin_listen);
            if let Some(a) = a
                && !a.ip().is_loopback()
            {
                c.warn(
                    "server.admin_listen",
                    format!("metrics are served on {a}, which is not loopback"),
                    "keep the admin listener on 127.0.0.1 unless a firewall guards it",
                );
            }
            a
        };
        if self.header_read_timeout.0.is_zero() {
            zero_timeout(c, "server.header_read_timeout");
        }
        for (key, v, lo, hi) in [
            ("server.max_connections", self.max_connections, 1, 1_000_000),
            (
                "server.max_request_headers",
                self.max_request_headers,
                8,
                1000,
            ),
            (
                "server.max_header_bytes",
                self.max_header_bytes,
                8192,
                1 << 20,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                c.error(
                    key,
                    format!("{v} is outside {lo}..={hi}"),
                    "keep the default unless a client needs more",
                );
            }
        }
        let workers = self.workers.unwrap_or_else(default_workers);
        if !(1..=MAX_WORKERS).contains(&workers) {
            c.error(
                "server.workers",
                format!("{workers} is outside 1..={MAX_WORKERS}"),
                "leave it unset for one worker per CPU, or set 1 to serve from one thread",
            );
        }
        ServerSettings {
            listen,
            unix: self.unix.clone(),
            tls,
            admin_listen,
            header_read_timeout: self.header_read_timeout.0,
            max_connections: self.max_connections,
            max_request_headers: self.max_request_headers,
            max_header_bytes: self.max_header_bytes,
            workers,
        }
    }
}

impl TlsConfig {
    fn validate(&self, c: &mut Collector) -> TlsSettings {
        for (key, path) in [
            ("server.tls.cert", &self.cert),
            ("server.tls.key", &self.key),
        ] {
            if !path.is_file() {
                c.error(
                    key,
                    format!("{} does not exist or is not a file", path.display()),
                    "point it at a PEM file readable by vestibule",
                );
            }
        }
        if self.listen.is_empty() {
            c.error(
                "server.tls.listen",
                "TLS is configured without a listener",
                "add an address such as \"0.0.0.0:8443\"",
            );
        }
        TlsSettings {
            listen: self
                .listen
                .iter()
                .enumerate()
                .filter_map(|(i, s)| parse_addr(c, &format!("server.tls.listen[{i}]"), s))
                .collect(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Reports a zero timeout at `key`.
pub(super) fn zero_timeout(c: &mut Collector, key: &str) {
    c.error(
        key,
        "a zero timeout would refuse every request",
        "use a duration such as \"10s\"",
    );
}

/// `[client_ip]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    /// Proxies whose `X-Forwarded-For`/`Forwarded` entries are believed when
    /// finding the client address (for logs and rate limits, never for
    /// trust). Default: `source.headers.trusted_proxies`.
    pub trusted_hops: Option<Vec<String>>,
    /// `"x-forwarded-for"` (default) or `"forwarded"` (RFC 7239).
    #[serde(default)]
    pub header: ForwardedHeaderKind,
}

/// Which forwarding header gives the client address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeaderKind {
    /// `X-Forwarded-For`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

impl ClientIpConfig {
    /// Checks `[client_ip]`. Without `trusted_hops`, the client address is
    /// believed from the same proxies as the identity source.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        source_trusted: Option<&TrustedNetworks>,
    ) -> TrustedNetworks {
        let hops = match &self.trusted_hops {
            Some(list) => trusted_list(c, "client_ip.trusted_hops", list),
            None => source_trusted.cloned().unwrap_or_default(),
        };
        if !hops.any_address_entries().is_empty() {
            c.warn(
                "client_ip.trusted_hops",
                "every peer's X-Forwarded-For is believed, so clients can pick the address that is logged and rate-limited",
                "list only your proxies' addresses",
            );
        }
        hops
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    #[test]
    fn unknown_client_ip_header_lists_the_valid_ones() {
        let e = parse("[client_ip]\nheader = \"x-real-ip\"", &[]).unwrap_err();
        assert!(e.contains("x-real-ip"), "{e}");
        assert!(
            e.contains("x-forwarded-for") && e.contains("forwarded"),
            "{e}"
        );
        assert!(e.starts_with("client_ip.header: "), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let f = parse("", &[]).unwrap();
        assert_eq!(f.client_ip.header, ForwardedHeaderKind::XForwardedFor);
        let mut c = Collector::default();
        let s = f.server.validate(&mut c);
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(s.listen, [DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.admin_listen, Some(DEFAULT_ADMIN_LISTEN.parse().unwrap()));
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            "[server]\nmax_connections = 5",
            &[
                ("VESTIBULE_SERVER__MAX_CONNECTIONS", "7"),
                ("VESTIBULE_CLIENT_IP__HEADER", "forwarded"),
            ],
        )
        .unwrap();
        assert_eq!(f.server.max_connections, 7);
        assert_eq!(f.client_ip.header, ForwardedHeaderKind::Forwarded);
    }
}
