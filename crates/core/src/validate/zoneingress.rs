//! `ZoneIngress`: addresses and ports, as Kuma's `ZoneIngress.Validate` checks them.

use std::net::IpAddr;

use crate::ValidationError;
use crate::spec::ZoneIngressSpec;

use super::{check_port, is_dns_name};

fn check_address(field: &str, address: &str, errs: &mut ValidationError) {
    if address.is_empty() {
        errs.add(field, "address can't be empty");
    } else if address.parse::<IpAddr>().is_err() && !is_dns_name(address) {
        errs.add(field, "address has to be valid IP address or domain name");
    }
}

pub(super) fn validate(spec: &ZoneIngressSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    let net = &spec.networking;
    check_address("networking.address", &net.address, &mut errs);
    check_port(&mut errs, "networking.port", net.port);
    match (&net.advertised_address, net.advertised_port) {
        (Some(a), Some(p)) => {
            check_address("networking.advertisedAddress", a, &mut errs);
            check_port(&mut errs, "networking.advertisedPort", p);
        }
        (Some(_), None) => errs.add(
            "networking.advertisedPort",
            "has to be defined with advertisedAddress",
        ),
        (None, Some(_)) => errs.add(
            "networking.advertisedAddress",
            "has to be defined with advertisedPort",
        ),
        (None, None) => {}
    }
    if let Some(admin) = &net.admin {
        check_port(&mut errs, "networking.admin.port", admin.port);
        if admin.port == net.port {
            errs.add("networking.admin.port", "must differ from networking.port");
        }
    }
    for (i, s) in spec.available_services.iter().enumerate() {
        if !s.tags.contains_key(crate::spec::SERVICE_TAG) {
            errs.add(
                format!("availableServices[{i}].tags"),
                "mandatory tag \"kuma.io/service\" is missing",
            );
        }
        if s.mesh.is_empty() {
            errs.add(format!("availableServices[{i}].mesh"), "cannot be empty");
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use crate::validate::test_util::{assert_errors, assert_valid};

    #[test]
    fn minimal_and_full_ingresses_are_valid() {
        assert_valid(
            "type: ZoneIngress\nname: ingress\nnetworking:\n  address: 127.0.0.1\n  port: 10001\n",
        );
        assert_valid(
            "type: ZoneIngress\nname: ingress\nzone: zone-1\nnetworking:\n  address: 10.0.0.1\n  advertisedAddress: ingress.example.com\n  port: 10001\n  advertisedPort: 20001\n  admin: {port: 9901}\navailableServices:\n  - {tags: {kuma.io/service: a}, instances: 2, mesh: default}\n",
        );
    }

    #[test]
    fn bad_fields_are_each_reported() {
        assert_errors(
            "type: ZoneIngress\nname: ingress\nnetworking:\n  address: 'not an address!'\n  port: 0\n  advertisedAddress: 10.0.0.1\n  admin: {port: 70000}\navailableServices:\n  - {tags: {a: b}}\n",
            &[
                (
                    "networking.address",
                    "address has to be valid IP address or domain name",
                ),
                ("networking.port", "port must be in the range [1, 65535]"),
                (
                    "networking.advertisedPort",
                    "has to be defined with advertisedAddress",
                ),
                (
                    "networking.admin.port",
                    "port must be in the range [1, 65535]",
                ),
                (
                    "availableServices[0].tags",
                    "mandatory tag \"kuma.io/service\" is missing",
                ),
                ("availableServices[0].mesh", "cannot be empty"),
            ],
        );
    }

    #[test]
    fn missing_networking_is_reported() {
        assert_errors(
            "type: ZoneIngress\nname: ingress\n",
            &[
                ("networking.address", "address can't be empty"),
                ("networking.port", "port must be in the range [1, 65535]"),
            ],
        );
    }
}
