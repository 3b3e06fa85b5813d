//! Step 2 of a request: who is on the other end of the socket, do we trust
//! them to speak for someone else, and who is the client behind them.
//!
//! Every decision is delegated to `vestibule_core`; this module only feeds it
//! the connection facts and the request headers.

use std::net::IpAddr;

use http::HeaderMap;
use vestibule_core::forwarded::{parse_forwarded, resolve_client_ip, resolve_client_ip_xff};
use vestibule_core::net::Peer;

use crate::config::{ForwardedHeaderKind, Settings};

/// What the listener knows about a connection; inserted into every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: Peer,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// On vestibule's own TLS listener, the index of the certificate
    /// hostname (`[client_certs] hostnames`) the SNI named: a client
    /// certificate was requested on this connection.
    pub cert_host: Option<u16>,
    /// The SHA-256 of the client certificate presented in the handshake.
    pub client_cert: Option<vestibule_core::client_cert::CertFingerprint>,
}

impl ConnInfo {
    /// What a request without connection facts is treated as: an untrusted
    /// peer with no address. Fails closed.
    pub const UNKNOWN: Self = Self::plain(Peer::Unix { trusted: false });

    /// A connection without TLS.
    pub const fn plain(peer: Peer) -> Self {
        Self {
            peer,
            tls: false,
            cert_host: None,
            client_cert: None,
        }
    }
}

/// The trust facts for one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientContext {
    /// The socket peer.
    pub peer: Peer,
    /// Whether the peer may send identity headers.
    pub trusted_for_identity: bool,
    /// Whether the peer's `X-Forwarded-*` headers are believed.
    pub trusted_for_forwarding: bool,
    /// The client's address, for logs and rate limits only.
    pub client_ip: Option<IpAddr>,
    /// Whether the connection to vestibule is TLS.
    pub tls: bool,
}

/// Resolves the trust facts of a request.
pub fn resolve(settings: &Settings, conn: ConnInfo, headers: &HeaderMap) -> ClientContext {
    let trusted_for_identity = settings
        .identity_source
        .as_ref()
        .is_some_and(|s| conn.peer.is_trusted(&s.trusted));
    let trusted_for_forwarding = conn.peer.is_trusted(&settings.client_ip_hops);
    let client_ip = if trusted_for_forwarding {
        match settings.client_ip_header {
            // Walked in place, nothing collected (issue 17): the same
            // answer as parsing the hops, then walking them.
            ForwardedHeaderKind::XForwardedFor => resolve_client_ip_xff(
                conn.peer,
                &settings.client_ip_hops,
                &headers.get_all("x-forwarded-for"),
            ),
            ForwardedHeaderKind::Forwarded => {
                let hops =
                    parse_forwarded(headers.get_all("forwarded").iter().map(|v| v.as_bytes()));
                resolve_client_ip(conn.peer, &settings.client_ip_hops, &hops)
            }
        }
    } else {
        conn.peer.ip()
    };
    ClientContext {
        peer: conn.peer,
        trusted_for_identity,
        trusted_for_forwarding,
        client_ip,
        tls: conn.tls,
    }
}
