//! Which addresses the mesh may dial on someone else's behalf, and how a relayed connection
//! is told apart from a local client.
//!
//! A zone ingress forwards a remote caller's bytes to an endpoint, an outbound forwards the
//! application's bytes to an endpoint, and an inbound forwards an authorized caller's bytes to
//! the application. The endpoint addresses come from Dataplanes, which a workload's token can
//! register: so every proxy checks an endpoint with [`endpoint_refusal`] before dialling it,
//! and dials loopback destinations from [`RELAY_SOURCE_V4`], an address no local client uses.
//! The control plane's "loopback clients are admins" rule ([`is_local_client`]) excludes that
//! address, so a connection a proxy relays is never mistaken for a person at the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The source address of every connection a proxy opens to a loopback destination (the same
/// address Istio's sidecars use for the same purpose). The kernel never picks it for an
/// unbound socket (it picks 127.0.0.1), so a peer on it was relayed by a proxy.
pub const RELAY_SOURCE_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// Why an address is not something a proxy dials for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRefusal {
    /// 0.0.0.0 or `::`: "any address", not a host.
    Unspecified,
    /// A multicast group.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 169.254.0.0/16 or fe80::/10: link-local, where cloud metadata services live.
    LinkLocal,
    /// `::1`: IPv6 has one loopback address, so a relayed connection to it could not come
    /// from a distinguishable source.
    Ipv6Loopback,
}

impl std::fmt::Display for EndpointRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndpointRefusal::Unspecified => "an unspecified address (0.0.0.0 or ::) is not a host",
            EndpointRefusal::Multicast => "a multicast address is not a host",
            EndpointRefusal::Broadcast => "the broadcast address is not a host",
            EndpointRefusal::LinkLocal => {
                "a link-local address (169.254.0.0/16, fe80::/10) is not reachable through the mesh"
            }
            EndpointRefusal::Ipv6Loopback => {
                "the IPv6 loopback address is not reachable through the mesh (use 127.0.0.1)"
            }
        })
    }
}

/// `Some(why)` when a proxy must not dial `ip` as another proxy's endpoint.
pub fn endpoint_refusal(ip: IpAddr) -> Option<EndpointRefusal> {
    let ip = canonical(ip);
    if ip.is_unspecified() {
        return Some(EndpointRefusal::Unspecified);
    }
    if ip.is_multicast() {
        return Some(EndpointRefusal::Multicast);
    }
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some(EndpointRefusal::Broadcast),
        IpAddr::V4(v4) if v4.is_link_local() => Some(EndpointRefusal::LinkLocal),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(EndpointRefusal::LinkLocal),
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Some(EndpointRefusal::Ipv6Loopback),
        _ => None,
    }
}

/// Whether a peer at `ip` is a client on this host (loopback) and not a connection a proxy
/// relayed (those come from [`RELAY_SOURCE_V4`]).
pub fn is_local_client(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_loopback() && v4 != RELAY_SOURCE_V4,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// Whether `ip` is a loopback address (IPv4-mapped IPv6 included).
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener reports for an
/// IPv4 peer) as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn endpoints_must_be_hosts_reachable_through_the_mesh() {
        for ok in [
            "10.0.0.1",
            "127.0.0.1",
            "127.0.0.5",
            "192.168.1.1",
            "2001:db8::1",
        ] {
            assert_eq!(endpoint_refusal(ip(ok)), None, "{ok}");
        }
        let refused = [
            ("0.0.0.0", EndpointRefusal::Unspecified),
            ("::", EndpointRefusal::Unspecified),
            ("224.0.0.1", EndpointRefusal::Multicast),
            ("ff02::1", EndpointRefusal::Multicast),
            ("255.255.255.255", EndpointRefusal::Broadcast),
            ("169.254.169.254", EndpointRefusal::LinkLocal),
            ("fe80::1", EndpointRefusal::LinkLocal),
            ("::1", EndpointRefusal::Ipv6Loopback),
            ("::ffff:169.254.169.254", EndpointRefusal::LinkLocal),
        ];
        for (addr, why) in refused {
            assert_eq!(endpoint_refusal(ip(addr)), Some(why), "{addr}");
        }
    }

    #[test]
    fn relayed_connections_are_not_local_clients() {
        for local in ["127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local_client(ip(local)), "{local}");
        }
        for other in ["127.0.0.6", "::ffff:127.0.0.6", "10.0.0.1", "::2"] {
            assert!(!is_local_client(ip(other)), "{other}");
        }
    }
}
