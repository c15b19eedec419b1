//! Which addresses a proxy may declare for itself when it registers.
//!
//! Other proxies dial what a Dataplane declares (outbounds, zone ingresses), so a workload
//! token must not be able to point them somewhere they should never go:
//! - never at an address no proxy may dial ([`aerie_core::net::endpoint_refusal`]: unspecified,
//!   multicast, broadcast, link-local such as a cloud metadata service, IPv6 loopback);
//! - at a loopback address only when the proxy itself connects from this host's loopback: a
//!   proxy elsewhere declaring `127.0.0.1` can only mean "whatever listens on loopback where
//!   you are", which is the control plane's own host for a co-located ingress.
//!
//! An admin applying a Dataplane through the API is not held to these rules (Kuma's
//! validation applies there); proxies still skip undialable endpoints whoever declared them.

use std::net::{IpAddr, SocketAddr};

use aerie_core::net::{endpoint_refusal, is_local_client, is_loopback};
use aerie_core::spec::{DataplaneSpec, ZoneIngressSpec};
use tonic::Status;

/// Checks the addresses a sidecar's Dataplane declares, for a proxy connecting from `peer`.
pub fn check_dataplane(spec: &DataplaneSpec, peer: Option<SocketAddr>) -> Result<(), Status> {
    let Some(net) = &spec.networking else {
        return Ok(());
    };
    let mut declared = vec![("networking.address".to_string(), net.address.as_str())];
    if let Some(a) = &net.advertised_address {
        declared.push(("networking.advertisedAddress".into(), a));
    }
    for (i, inbound) in net.inbound.iter().enumerate() {
        if let Some(a) = &inbound.address {
            declared.push((format!("networking.inbound[{i}].address"), a));
        }
    }
    check(&declared, peer)
}

/// Checks the addresses a zone ingress declares, for an ingress connecting from `peer`.
pub fn check_zone_ingress(spec: &ZoneIngressSpec, peer: Option<SocketAddr>) -> Result<(), Status> {
    let net = &spec.networking;
    let mut declared = vec![("networking.address".to_string(), net.address.as_str())];
    if let Some(a) = &net.advertised_address {
        declared.push(("networking.advertisedAddress".into(), a));
    }
    check(&declared, peer)
}

fn check(declared: &[(String, &str)], peer: Option<SocketAddr>) -> Result<(), Status> {
    let local_peer = peer.is_some_and(|p| is_local_client(p.ip()));
    for (field, address) in declared {
        // Host names are resolved by the control plane, which applies the same rules to
        // what they resolve to (see `crate::resolve`).
        let Ok(ip) = address.parse::<IpAddr>() else {
            continue;
        };
        if let Some(why) = endpoint_refusal(ip) {
            return Err(Status::invalid_argument(format!("{field}: {why}")));
        }
        if is_loopback(ip) && !local_peer {
            let from =
                peer.map_or_else(|| "an unknown address".to_string(), |p| p.ip().to_string());
            return Err(Status::permission_denied(format!(
                "{field}: {address} is a loopback address, which only a proxy on the control plane's own host may declare (this proxy connects from {from}); declare the address other proxies reach it on"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::Spec;
    use aerie_core::format::{parse_yaml_value, resource_from_value};

    fn dataplane(address: &str, inbound_address: Option<&str>) -> DataplaneSpec {
        let inbound = inbound_address.map_or(String::new(), |a| format!("    address: {a}\n"));
        let yaml = format!(
            "type: Dataplane\nname: dp\nmesh: default\nnetworking:\n  address: {address}\n  inbound:\n  - port: 9000\n{inbound}    tags:\n      kuma.io/service: web\n"
        );
        let r = resource_from_value(&parse_yaml_value(&yaml).unwrap()).unwrap();
        match r.spec {
            Spec::Dataplane(d) => d,
            _ => unreachable!(),
        }
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn loopback_addresses_only_from_this_host() {
        let local = dataplane("127.0.0.1", None);
        assert!(check_dataplane(&local, peer("127.0.0.1:40000")).is_ok());
        assert!(check_dataplane(&local, peer("[::1]:40000")).is_ok());
        for remote in ["10.0.0.7:40000", "127.0.0.6:40000"] {
            let err = check_dataplane(&local, peer(remote)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{remote}");
            assert!(
                err.message()
                    .starts_with("networking.address: 127.0.0.1 is a loopback address")
            );
        }
        assert!(check_dataplane(&local, None).is_err());
        let inbound = dataplane("10.0.0.7", Some("127.0.0.1"));
        let err = check_dataplane(&inbound, peer("10.0.0.7:40000")).unwrap_err();
        assert!(
            err.message().starts_with("networking.inbound[0].address"),
            "{err}"
        );
        assert!(check_dataplane(&dataplane("10.0.0.7", None), peer("10.0.0.7:1")).is_ok());
        assert!(check_dataplane(&dataplane("web.internal", None), peer("10.0.0.7:1")).is_ok());
    }

    #[test]
    fn addresses_no_proxy_may_dial_are_refused_from_anywhere() {
        for bad in ["169.254.169.254", "224.0.0.1", "255.255.255.255"] {
            let err = check_dataplane(&dataplane(bad, None), peer("127.0.0.1:1")).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(err.message().starts_with("networking.address: "), "{err}");
        }
    }
}
