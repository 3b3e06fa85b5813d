//! Peer addresses and trusted networks.
//!
//! The one rule: a trust decision is made on the **TCP peer** (or on a Unix
//! socket the operator declared trusted), never on a header. This module holds
//! the address side of that rule: CIDR parsing that does not widen bare
//! addresses, and IPv4-mapped IPv6 normalisation so that `::ffff:10.0.0.1`
//! and `10.0.0.1` are the same peer.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Returns `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned
/// into the IPv4 address it carries. A dual-stack listener reports IPv4
/// clients this way; without this step `10.0.0.1/32` would never match them.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why a trusted-network entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Alike dialect.rs DialectError, route.rs RouteError: each parser's own error enum and Display.
pub enum CidrError {
    /// The entry is neither an IP address nor `address/prefix`.
    Malformed(String),
    /// The prefix length is too long for the address family.
    BadPrefix(String),
    /// The entry has host bits set below the prefix (`10.0.0.1/8`): almost
    /// always a typo for a narrower network, so it is refused, not masked.
    HostBitsSet(String),
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(s) => write!(f, "`{s}` is not an IP address or CIDR network"),
            Self::BadPrefix(s) => write!(f, "`{s}` has a prefix length too long for its family"),
            Self::HostBitsSet(s) => {
                write!(
                    f,
                    "`{s}` has host bits set below its prefix; write the network address"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// Parses one trusted-network entry.
///
/// - A bare address means exactly that host: `/32` for IPv4, `/128` for IPv6
///   (Grafana appends `/32` to IPv6 too, trusting a whole /32 by accident).
/// - An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes the IPv4
///   network it denotes, because peers are compared after [`canonical_ip`].
/// - Surrounding whitespace is ignored (lists are often written `a, b`).
pub fn parse_trusted_network(entry: &str) -> Result<IpNet, CidrError> {
    let entry = entry.trim();
    let net = match entry.split_once('/') {
        None => {
            let ip: IpAddr = entry
                .parse()
                .map_err(|_| CidrError::Malformed(entry.to_owned()))?;
            IpNet::from(ip)
        }
        Some((addr, prefix)) => {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| CidrError::Malformed(entry.to_owned()))?;
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3
            {
                return Err(CidrError::Malformed(entry.to_owned()));
            }
            let len: u8 = prefix
                .parse()
                .map_err(|_| CidrError::Malformed(entry.to_owned()))?;
            let net = IpNet::new(ip, len).map_err(|_| CidrError::BadPrefix(entry.to_owned()))?;
            if net.network() != ip {
                return Err(CidrError::HostBitsSet(entry.to_owned()));
            }
            net
        }
    };
    Ok(unmap_network(net))
}

/// Turns a network inside `::ffff:0:0/96` into the IPv4 network it denotes.
fn unmap_network(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        // The prefix is at least 96, so `prefix_len - 96` is at most 32.
        if let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
            return IpNet::V4(v4net);
        }
    }
    net
}

/// The set of networks whose TCP peers are trusted to speak for someone else
/// (identity headers, `X-Forwarded-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    nets: Vec<IpNet>,
}

impl TrustedNetworks {
    /// The empty set: nobody is trusted.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a list of entries with [`parse_trusted_network`].
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, CidrError> {
        let nets = entries
            .iter()
            .map(|e| parse_trusted_network(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets })
    }

    /// Builds the set from already-parsed networks.
    pub fn from_networks(nets: Vec<IpNet>) -> Self {
        Self {
            nets: nets.into_iter().map(unmap_network).collect(),
        }
    }

    /// Whether `ip` (after [`canonical_ip`]) is inside one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks, as parsed.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The entries so wide that they trust (nearly) every address: an IPv4
    /// prefix shorter than /8 or an IPv6 prefix shorter than /16, which
    /// includes `0.0.0.0/0`, `::/0`, and splits like `0.0.0.0/1` +
    /// `128.0.0.0/1`. Such a set lets any client impersonate any user, so
    /// configuration refuses it unless the operator overrides it by name.
    pub fn any_address_entries(&self) -> Vec<IpNet> {
        self.nets
            .iter()
            .copied()
            .filter(|n| match n {
                IpNet::V4(v4) => v4.prefix_len() < MIN_IPV4_PREFIX,
                IpNet::V6(v6) => v6.prefix_len() < MIN_IPV6_PREFIX,
            })
            .collect()
    }
}

/// Shortest IPv4 prefix accepted without the dangerous override (a /8 is
/// the widest private range, 10.0.0.0/8).
pub const MIN_IPV4_PREFIX: u8 = 8;
/// Shortest IPv6 prefix accepted without the dangerous override.
pub const MIN_IPV6_PREFIX: u8 = 16;

/// Ranges Docker hands to bridge networks by default. Trusting one trusts
/// every container on that bridge, not only the proxy.
pub fn docker_default_ranges() -> [IpNet; 2] {
    [
        IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::new(172, 16, 0, 0), 12).unwrap_or_default()),
        IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default()),
    ]
}

/// Whether `net` overlaps a default Docker bridge range by more than one
/// host, so that containers other than the proxy would pass the check.
pub fn is_docker_bridge_range(net: &IpNet) -> bool {
    let IpNet::V4(v4) = net else {
        return matches!(net, IpNet::V6(v6) if is_wide_ula(v6));
    };
    if v4.prefix_len() == 32 {
        return false;
    }
    docker_default_ranges().iter().any(|d| match d {
        IpNet::V4(d) => d.contains(v4) || v4.contains(d),
        IpNet::V6(_) => false,
    })
}

fn is_wide_ula(v6: &Ipv6Net) -> bool {
    // Docker's IPv6 bridges use fd00::/8 unique-local prefixes.
    v6.prefix_len() < 128 && v6.network().segments()[0] & 0xff00 == 0xfd00
}

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer, already passed through [`canonical_ip`].
    Tcp(IpAddr),
    /// A Unix socket peer. `trusted` is the operator's word for the socket,
    /// since it has no address to check.
    Unix {
        /// Whether the listener was declared trusted.
        trusted: bool,
    },
}

impl Peer {
    /// A TCP peer, normalised.
    pub fn tcp(ip: IpAddr) -> Self {
        Self::Tcp(canonical_ip(ip))
    }

    /// The trust decision: may this peer speak for someone else?
    pub fn is_trusted(&self, trusted: &TrustedNetworks) -> bool {
        match *self {
            Self::Tcp(ip) => trusted.contains(ip),
            Self::Unix { trusted } => trusted,
        }
    }

    /// The peer's IP, if it has one.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Self::Tcp(ip) => Some(ip),
            Self::Unix { .. } => None,
        }
    }
}

/// For logs: the address (`127.0.0.1`, `::1`), or `unix:trusted` /
/// `unix:untrusted` for a Unix socket.
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(ip) => ip.fmt(f),
            Self::Unix { trusted: true } => f.write_str("unix:trusted"),
            Self::Unix { trusted: false } => f.write_str("unix:untrusted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peers_display_plainly() {
        assert_eq!(Peer::tcp(ip("127.0.0.1")).to_string(), "127.0.0.1");
        assert_eq!(Peer::tcp(ip("::ffff:10.0.0.1")).to_string(), "10.0.0.1");
        assert_eq!(Peer::tcp(ip("2001:db8::1")).to_string(), "2001:db8::1");
        assert_eq!(Peer::Unix { trusted: true }.to_string(), "unix:trusted");
        assert_eq!(Peer::Unix { trusted: false }.to_string(), "unix:untrusted");
    }

    #[test]
    fn bare_ipv4_is_a_single_host() {
        let t = TrustedNetworks::parse(&["10.0.0.1"]).unwrap();
        assert!(t.contains(ip("10.0.0.1")));
        assert!(!t.contains(ip("10.0.0.2")));
    }

    #[test]
    // Alike bare_ipv4_is_a_single_host and below: parse, then contains/not-contains asserts.
    fn bare_ipv6_is_a_single_host_not_a_slash_32() {
        // Grafana appends /32 to every entry without a slash, IPv6 included.
        let t = TrustedNetworks::parse(&["2001:db8::23"]).unwrap();
        assert!(t.contains(ip("2001:db8::23")));
        assert!(!t.contains(ip("2001:db8::24")));
        assert!(!t.contains(ip("2001:db8:ffff::1")));
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_entry() {
        let t = TrustedNetworks::parse(&["127.0.0.1/32"]).unwrap();
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert!(!t.contains(ip("::ffff:127.0.0.2")));
        assert_eq!(Peer::tcp(ip("::ffff:10.1.2.3")), Peer::Tcp(ip("10.1.2.3")));
    }

    #[test]
    fn ipv4_mapped_entry_is_unmapped() {
        let t = TrustedNetworks::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        assert_eq!(t.networks()[0].to_string(), "10.0.0.0/8");
        assert!(t.contains(ip("10.200.0.1")));
        let t = TrustedNetworks::parse(&["::ffff:192.168.1.7"]).unwrap();
        assert_eq!(t.networks()[0].to_string(), "192.168.1.7/32");
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "abc",
            "10.0.0.1/",
            "10.0.0.1/33",
            "::1/129",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.1/ 8",
            "10.0.0.1/+8",
            "10.0.0.1/0008",
        ] {
            assert!(TrustedNetworks::parse(&[bad]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_bits_below_prefix_are_refused() {
        assert_eq!(
            parse_trusted_network("10.0.0.1/8"),
            Err(CidrError::HostBitsSet("10.0.0.1/8".into()))
        );
    }

    #[test]
    fn whitespace_around_entries_is_ignored() {
        let t = TrustedNetworks::parse(&[" 10.0.0.0/8 ", "\t::1"]).unwrap();
        assert!(t.contains(ip("10.9.9.9")));
        assert!(t.contains(ip("::1")));
    }

    #[test]
    fn any_address_entries_are_reported() {
        let t = TrustedNetworks::parse(&["10.0.0.0/8", "0.0.0.0/0", "::/0"]).unwrap();
        assert_eq!(t.any_address_entries().len(), 2);
        // Two halves trust everyone just as well.
        let t = TrustedNetworks::parse(&["0.0.0.0/1", "128.0.0.0/1"]).unwrap();
        assert_eq!(t.any_address_entries().len(), 2);
        let t = TrustedNetworks::parse(&["fd00::/8", "2000::/3"]).unwrap();
        assert_eq!(t.any_address_entries().len(), 2);
        let t = TrustedNetworks::parse(&["10.0.0.0/8"]).unwrap();
        assert!(t.any_address_entries().is_empty());
    }

    #[test]
    fn docker_ranges_are_spotted() {
        for (net, docker) in [
            ("172.17.0.0/16", true),
            ("172.16.0.0/12", true),
            ("192.168.0.0/16", true),
            ("10.0.0.0/8", false),
            ("172.17.0.5/32", false),
            ("fd00::/8", true),
            ("fd00::5/128", false),
            ("0.0.0.0/0", true),
        ] {
            let n = parse_trusted_network(net).unwrap();
            assert_eq!(is_docker_bridge_range(&n), docker, "{net}");
        }
    }

    #[test]
    fn unix_peer_trust_is_the_operators_word() {
        let none = TrustedNetworks::none();
        assert!(Peer::Unix { trusted: true }.is_trusted(&none));
        assert!(!Peer::Unix { trusted: false }.is_trusted(&none));
        assert!(!Peer::tcp(ip("127.0.0.1")).is_trusted(&none));
    }

    proptest! {
        #[test]
        fn mapped_and_plain_v4_always_agree(a: u32, b: u32, len in 0u8..=32) {
            let net_ip = Ipv4Addr::from(a);
            let net = Ipv4Net::new(net_ip, len).unwrap().trunc();
            let t = TrustedNetworks::parse(&[net.to_string()]).unwrap();
            let peer = Ipv4Addr::from(b);
            prop_assert_eq!(
                t.contains(IpAddr::V4(peer)),
                t.contains(IpAddr::V6(peer.to_ipv6_mapped()))
            );
            prop_assert_eq!(t.contains(IpAddr::V4(peer)), net.contains(&peer));
        }

        #[test]
        fn bare_address_matches_only_itself(a: u128, b: u128) {
            let a = Ipv6Addr::from(a);
            let b = Ipv6Addr::from(b);
            prop_assume!(a.to_ipv4_mapped().is_none());
            let t = TrustedNetworks::parse(&[a.to_string()]).unwrap();
            prop_assert!(t.contains(IpAddr::V6(a)));
            prop_assert_eq!(t.contains(IpAddr::V6(b)), a == b);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_trusted_network(&s);
        }
    }
}
