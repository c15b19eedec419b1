//! Dataplane checks (Kuma's `dataplane_validator.go`).
//!
//! Differences from Kuma, on purpose: a Dataplane needs no inbound (outbound-only and
//! gateway proxies are fine), every inbound must carry `kuma.io/service` (an inbound
//! without tags is invalid too), and two inbounds may not listen on the same address:port.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use crate::ValidationError;
use crate::duration::parse_go_duration;
use crate::spec::{
    BackendRef, DataplaneSpec, Inbound, Networking, Outbound, PROTOCOL_TAG, SERVICE_TAG,
};

use super::targetref::{TagValues, validate_tags};
use super::{check_one_of, check_port, is_dns_name, key_path, one_of};

/// Protocols an inbound may declare with `kuma.io/protocol`.
const PROTOCOLS: [&str; 5] = ["grpc", "http", "http2", "kafka", "tcp"];

/// Health states an inbound may be put in.
const INBOUND_STATES: [&str; 3] = ["Ready", "NotReady", "Ignored"];

/// Kinds an outbound `backendRef` (and a reachable backend) may name, sorted as Kuma prints them.
const BACKEND_KINDS: [&str; 3] = ["MeshExternalService", "MeshMultiZoneService", "MeshService"];

/// Where applications and outbound listeners live when no address is given.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Validates a Dataplane body; paths are top-level (`networking.…`).
pub(super) fn validate(spec: &DataplaneSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(net) = &spec.networking else {
        // Nothing else can be checked meaningfully without networking: Kuma stops here too.
        errs.add("networking", "must be defined");
        return errs;
    };
    check_admin_port(net, &mut errs);
    check_gateway(spec, net, &mut errs);
    check_address(&net.address, &mut errs);
    check_inbounds(net, &mut errs);
    for (i, outbound) in net.outbound.iter().enumerate() {
        errs.add_prefixed(
            &format!("networking.outbound[{i}]"),
            validate_outbound(outbound),
        );
    }
    if let Some(tp) = &net.transparent_proxying {
        errs.add_prefixed(
            "networking.transparentProxing",
            validate_transparent_proxying(tp),
        );
    }
    if let Some(probes) = &spec.probes {
        errs.add_prefixed("probes", validate_probes(probes));
    }
    let prometheus = |m: &Value| m.get("type").and_then(Value::as_str) == Some("prometheus");
    if spec.metrics.as_ref().is_some_and(|m| !prometheus(m)) {
        errs.add(
            "metrics.type",
            "unknown backend type. Available backends: \"prometheus\"",
        );
    }
    errs
}

/// Envoy's admin listener binds to 127.0.0.1: it must not take a port an inbound or
/// outbound already uses there.
fn check_admin_port(net: &Networking, errs: &mut ValidationError) {
    let Some(port) = net.admin.as_ref().map(|a| a.port).filter(|&p| p != 0) else {
        return;
    };
    let inbound_clash = net.inbound.iter().any(|ib| {
        let proxy_ip = or_default(ib.address.as_deref(), &net.address);
        let app_ip = or_default(ib.service_address.as_deref(), "127.0.0.1");
        let app_port = ib.service_port.filter(|&p| p != 0).unwrap_or(ib.port);
        (ib.port == port && overlaps_loopback(proxy_ip))
            || (app_port == port && overlaps_loopback(app_ip))
    });
    if inbound_clash {
        errs.add("networking.admin.port", "must differ from inbound");
    }
    let outbound_clash = net.outbound.iter().any(|ob| {
        ob.port == port && overlaps_loopback(or_default(ob.address.as_deref(), "127.0.0.1"))
    });
    if outbound_clash {
        errs.add("networking.admin.port", "must differ from outbound");
    }
}

/// An optional address, or `default` when it is missing or empty (proto's zero value).
fn or_default<'a>(value: Option<&'a str>, default: &'a str) -> &'a str {
    value.filter(|v| !v.is_empty()).unwrap_or(default)
}

/// Whether a listener on `ip` would take the same socket as one on 127.0.0.1
/// (the same address, or a wildcard one).
fn overlaps_loopback(ip: &str) -> bool {
    ip.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified() || ip == LOOPBACK)
}

/// Gateway proxies route for others: they take no inbounds or listeners of their own, and
/// builtin gateways (configured by the control plane) no outbounds or probes either.
fn check_gateway(spec: &DataplaneSpec, net: &Networking, errs: &mut ValidationError) {
    let Some(gateway) = &net.gateway else { return };
    let Some(fields) = gateway.as_object() else {
        errs.add("networking.gateway", "must be a mapping");
        return;
    };
    let kind = match fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("DELEGATED")
    {
        "DELEGATED" => "delegated",
        "BUILTIN" => "builtin",
        _ => {
            errs.add("networking.gateway.type", one_of(&["DELEGATED", "BUILTIN"]));
            return;
        }
    };
    let has_listeners = net.listeners.as_ref().is_some_and(|l| !l.is_empty());
    let builtin = kind == "builtin";
    let forbidden = [
        ("networking.inbound", "inbound", !net.inbound.is_empty()),
        (
            "networking.outbound",
            "outbound",
            builtin && !net.outbound.is_empty(),
        ),
        ("networking.listeners", "listeners", has_listeners),
        (
            "networking.probes",
            "probes",
            builtin && spec.probes.is_some(),
        ),
    ];
    for (field, what, present) in forbidden {
        if present {
            errs.add(
                field,
                format!("{what} cannot be defined for {kind} gateways"),
            );
        }
    }
    if let Some(tags) = fields.get("tags") {
        errs.add_prefixed("networking.gateway.tags", validate_gateway_tags(tags));
    }
}

/// Gateway tags: if any, `kuma.io/service` is mandatory and the protocol can only be tcp.
fn validate_gateway_tags(tags: &Value) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(map) = tags.as_object() else {
        errs.add("", "must be a mapping of strings");
        return errs;
    };
    let mut strings = crate::spec::Tags::new();
    for (key, value) in map {
        match value.as_str() {
            Some(s) => {
                strings.insert(key.clone(), s.to_string());
            }
            None => errs.add(key_path("", key), "must be a string"),
        }
    }
    if strings.is_empty() {
        return errs;
    }
    if let Some(protocol) = strings.get(PROTOCOL_TAG).filter(|p| *p != "tcp") {
        errs.add(
            key_path("", PROTOCOL_TAG),
            format!("other values than tcp are not allowed, provided value \"{protocol}\""),
        );
    }
    errs.violations
        .extend(validate_tags(&strings, TagValues::Plain).violations);
    if !strings.contains_key(SERVICE_TAG) {
        errs.add("", format!("mandatory tag \"{SERVICE_TAG}\" is missing"));
    }
    errs
}

/// `networking.address`: where other proxies reach this one.
fn check_address(address: &str, errs: &mut ValidationError) {
    const FIELD: &str = "networking.address";
    if address.is_empty() {
        errs.add(FIELD, "address can't be empty");
        return;
    }
    if address == "0.0.0.0" || address == "::" {
        errs.add(FIELD, "must not be 0.0.0.0 or ::");
    }
    if address.parse::<IpAddr>().is_err() && !is_dns_name(address) {
        errs.add(FIELD, "address has to be valid IP address or domain name");
    }
}

/// Every inbound on its own, then uniqueness of names and of address:port pairs.
fn check_inbounds(net: &Networking, errs: &mut ValidationError) {
    let mut sockets: HashSet<(&str, u32)> = HashSet::new();
    let mut names: HashSet<&str> = HashSet::new();
    for (i, inbound) in net.inbound.iter().enumerate() {
        let at = format!("networking.inbound[{i}]");
        errs.add_prefixed(&at, validate_inbound(inbound, &net.address));
        let address = or_default(inbound.address.as_deref(), &net.address);
        if (1..=65535).contains(&inbound.port) && !sockets.insert((address, inbound.port)) {
            errs.add(
                format!("{at}.port"),
                "port is already used by another inbound",
            );
        }
        let name = inbound.name.as_deref().unwrap_or("");
        if !name.is_empty() && !names.insert(name) {
            errs.add(
                format!("{at}.name"),
                format!("name \"{name}\" must be unique across inbounds and listeners"),
            );
        }
    }
}

/// One inbound: ports, addresses, tags (service mandatory), state and health probe.
fn validate_inbound(inbound: &Inbound, dp_address: &str) -> ValidationError {
    let mut errs = ValidationError::new();
    check_port(&mut errs, "port", inbound.port);
    let service_port = inbound.service_port.unwrap_or(0);
    if service_port != 0 {
        check_port(&mut errs, "servicePort", service_port);
    }
    // The application must not be reachable on the very socket the proxy listens on.
    let same_socket = service_port == 0 || service_port == inbound.port;
    let service_address = inbound.service_address.as_deref().unwrap_or("");
    if !service_address.is_empty() {
        if service_address.parse::<IpAddr>().is_err() {
            errs.add(
                "serviceAddress",
                "serviceAddress has to be valid IP address",
            );
        }
        if service_address == dp_address && same_socket {
            errs.add(
                "serviceAddress",
                "serviceAddress and servicePort has to differ from address and port",
            );
        }
    }
    let address = inbound.address.as_deref().unwrap_or("");
    if !address.is_empty() {
        if address.parse::<IpAddr>().is_err() {
            errs.add("address", "address has to be valid IP address");
        }
        if address == service_address && same_socket {
            errs.add(
                "serviceAddress",
                "serviceAddress and servicePort has to differ from address and port",
            );
        }
    }
    let bad_protocol = inbound
        .tags
        .get(PROTOCOL_TAG)
        .filter(|p| !PROTOCOLS.contains(&p.as_str()));
    if let Some(protocol) = bad_protocol {
        errs.add(
            key_path("tags", PROTOCOL_TAG),
            format!(
                "tag \"{PROTOCOL_TAG}\" has an invalid value \"{protocol}\". Allowed values: {}",
                PROTOCOLS.join(", ")
            ),
        );
    }
    errs.add_prefixed("tags", validate_tags(&inbound.tags, TagValues::Plain));
    if !inbound.tags.contains_key(SERVICE_TAG) {
        errs.add(key_path("tags", SERVICE_TAG), "tag has to exist");
    }
    check_one_of(
        &mut errs,
        "state",
        inbound.state.as_deref(),
        &INBOUND_STATES,
    );
    if let Some(probe) = &inbound.service_probe {
        errs.add_prefixed("serviceProbe", validate_service_probe(probe));
    }
    errs
}

/// Health-check timings must be positive: a zero interval or threshold never converges.
fn validate_service_probe(probe: &Value) -> ValidationError {
    let mut errs = ValidationError::new();
    for field in ["interval", "timeout"] {
        match probe.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_str().and_then(parse_go_duration) {
                None => errs.add(field, "must have a valid value"),
                Some(d) if d.is_zero() => errs.add(field, "must have a positive value"),
                Some(_) => {}
            },
        }
    }
    for field in ["unhealthyThreshold", "healthyThreshold"] {
        match probe.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                None => errs.add(field, "must have a valid value"),
                Some(0) => errs.add(field, "must have a positive value"),
                Some(_) => {}
            },
        }
    }
    errs
}

/// One outbound: a port, and either a `backendRef` or tags naming a service.
fn validate_outbound(outbound: &Outbound) -> ValidationError {
    let mut errs = ValidationError::new();
    check_port(&mut errs, "port", outbound.port);
    let address = outbound.address.as_deref().unwrap_or("");
    if !address.is_empty() && address.parse::<IpAddr>().is_err() {
        errs.add("address", "address has to be valid IP address");
    }
    match &outbound.backend_ref {
        Some(backend) => errs.add_prefixed("backendRef", validate_backend_ref(backend)),
        None if outbound.tags.is_empty() => {
            errs.add(
                "tags",
                format!("mandatory tag \"{SERVICE_TAG}\" is missing"),
            );
        }
        None => {
            errs.add_prefixed("tags", validate_tags(&outbound.tags, TagValues::Plain));
            if !outbound.tags.contains_key(SERVICE_TAG) {
                errs.add(
                    "tags",
                    format!("mandatory tag \"{SERVICE_TAG}\" is missing"),
                );
            }
        }
    }
    if outbound.backend_ref.is_some() && !outbound.tags.is_empty() {
        errs.add(
            "backendRef",
            "both backendRef and tags/service cannot be defined",
        );
    }
    errs
}

/// An outbound's `backendRef`: a known kind, something to select, and a port (except for
/// MeshExternalService, whose port comes from its endpoints).
fn validate_backend_ref(backend: &BackendRef) -> ValidationError {
    let mut errs = ValidationError::new();
    if !BACKEND_KINDS.contains(&backend.kind.as_str()) {
        errs.add("kind", backend_kinds_message());
    }
    let has_name = backend.name.as_deref().is_some_and(|n| !n.is_empty());
    let has_labels = backend.labels.as_ref().is_some_and(|l| !l.is_empty());
    if !has_name && !has_labels {
        errs.add("", "either 'name' or 'labels' should be specified");
    }
    if backend.kind != "MeshExternalService" {
        check_port(&mut errs, "port", backend.port.unwrap_or(0));
    }
    errs
}

fn backend_kinds_message() -> String {
    format!(
        "invalid value. Available values are: {}",
        BACKEND_KINDS.join(",")
    )
}

/// `transparentProxying.reachableBackends.refs`: each ref names one backend or selects
/// some by labels. (Kuma spells the path `transparentProxing`; kept for compatibility.)
fn validate_transparent_proxying(tp: &Value) -> ValidationError {
    let mut errs = ValidationError::new();
    let refs = tp
        .pointer("/reachableBackends/refs")
        .and_then(Value::as_array);
    for (i, r) in refs.into_iter().flatten().enumerate() {
        let at = format!("reachableBackends.refs[{i}]");
        let text = |key: &str| r.get(key).and_then(Value::as_str).unwrap_or("");
        let (kind, name, namespace) = (text("kind"), text("name"), text("namespace"));
        let has_labels = r
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(|l| !l.is_empty());
        if !BACKEND_KINDS.contains(&kind) {
            errs.add(format!("{at}.kind"), backend_kinds_message());
        }
        if !name.is_empty() && !super::meta::is_rfc1123_subdomain(name) {
            errs.add(
                format!("{at}.name"),
                "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
        if name.is_empty() && namespace.is_empty() && !has_labels {
            errs.add(format!("{at}.name"), "name or labels are required");
        }
        if name.is_empty() && !namespace.is_empty() {
            errs.add(
                format!("{at}.name"),
                "name is required, when namespace is defined",
            );
        }
        if (!name.is_empty() || !namespace.is_empty()) && has_labels {
            errs.add(
                format!("{at}.labels"),
                "labels cannot be defined when name is specified",
            );
        }
    }
    errs
}

/// Virtual probes: a port and well-formed paths.
fn validate_probes(probes: &Value) -> ValidationError {
    let mut errs = ValidationError::new();
    let port = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .map_or(0, |p| u32::try_from(p).unwrap_or(u32::MAX))
    };
    check_port(&mut errs, "port", port(probes.get("port")));
    let endpoints = probes.get("endpoints").and_then(Value::as_array);
    for (i, endpoint) in endpoints.into_iter().flatten().enumerate() {
        let at = format!("endpoints[{i}]");
        check_port(
            &mut errs,
            &format!("{at}.inboundPort"),
            port(endpoint.get("inboundPort")),
        );
        for field in ["inboundPath", "path"] {
            let path = endpoint.get(field).and_then(Value::as_str).unwrap_or("");
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                errs.add(format!("{at}.{field}"), "should be a valid URL Path");
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use crate::validate::PORT_RANGE;
    use crate::validate::test_util::{assert_errors, assert_has_error, assert_valid};

    /// A Universal Dataplane whose `networking:` body is `net` (indented by the caller).
    fn dp(net: &str) -> String {
        format!("type: Dataplane\nname: dp-1\nmesh: default\nnetworking:\n{net}")
    }

    /// A Dataplane at 10.0.0.1 with one inbound whose extra lines are `inbound`.
    fn with_inbound(inbound: &str) -> String {
        dp(&format!(
            "  address: 10.0.0.1\n  inbound:\n    - port: 8080\n{inbound}"
        ))
    }

    const WEB: &str = "      tags: {kuma.io/service: web}\n";

    #[test]
    fn accepted_dataplanes() {
        for net in [
            "  address: 192.168.0.1\n  inbound:\n    - port: 8080\n      servicePort: 8081\n      serviceAddress: 127.0.0.1\n      name: http\n      state: Ready\n      tags: {kuma.io/service: web, kuma.io/protocol: http, version: v1}\n  outbound:\n    - port: 10001\n      tags: {kuma.io/service: backend}\n    - port: 10002\n      address: 127.0.0.2\n      backendRef: {kind: MeshService, name: backend, port: 80}\n",
            // Domain and IPv6 addresses.
            "  address: web.example.com\n  inbound:\n    - {port: 80, tags: {kuma.io/service: web}}\n",
            "  address: 'fd00::1'\n  inbound:\n    - {port: 80, address: 'fd00::2', tags: {kuma.io/service: web}}\n",
            // Outbound-only, and no inbound/outbound at all.
            "  address: 10.0.0.1\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: b}}\n",
            "  address: 10.0.0.1\n",
            // A delegated gateway, with or without tags.
            "  address: 10.0.0.1\n  gateway: {tags: {kuma.io/service: kong}}\n",
            "  address: 10.0.0.1\n  gateway: {type: BUILTIN, tags: {}}\n",
            // MeshExternalService needs no port; labels instead of a name.
            "  address: 10.0.0.1\n  outbound:\n    - {port: 1, backendRef: {kind: MeshExternalService, name: httpbin}}\n    - {port: 2, backendRef: {kind: MeshService, labels: {team: a}, port: 80}}\n",
            // Same port on two different inbound addresses.
            "  address: 10.0.0.1\n  inbound:\n    - {port: 80, tags: {kuma.io/service: a}}\n    - {port: 80, address: 10.0.0.2, tags: {kuma.io/service: b}}\n",
            // Admin port elsewhere.
            "  address: 10.0.0.1\n  admin: {port: 9901}\n  inbound:\n    - {port: 80, tags: {kuma.io/service: a}}\n",
            "  address: 10.0.0.1\n  transparentProxying:\n    redirectPortInbound: 15006\n    reachableBackends:\n      refs:\n        - {kind: MeshService, name: backend, namespace: x, port: 80}\n        - {kind: MeshMultiZoneService, labels: {a: b}}\n",
        ] {
            assert_valid(&dp(net));
        }
        assert_valid(&format!(
            "{}metrics: {{type: prometheus}}\n",
            dp("  address: 10.0.0.1\n")
        ));
        assert_valid(&format!(
            "{}probes:\n  port: 9000\n  endpoints:\n    - {{inboundPort: 8080, inboundPath: /health, path: /8080/health}}\n",
            dp("  address: 10.0.0.1\n")
        ));
        assert_valid(&with_inbound(&format!(
            "{WEB}      serviceProbe: {{interval: 10s, timeout: 2s, unhealthyThreshold: 3, healthyThreshold: 1}}\n"
        )));
    }

    #[test]
    fn networking_is_required_and_stops() {
        assert_errors(
            "type: Dataplane\nname: dp\nmesh: default\nmetrics: {type: nope}\n",
            &[("networking", "must be defined")],
        );
    }

    #[test]
    fn address_rules() {
        assert_errors(
            &dp("  inbound: []\n"),
            &[("networking.address", "address can't be empty")],
        );
        assert_errors(
            &dp("  address: '::'\n"),
            &[("networking.address", "must not be 0.0.0.0 or ::")],
        );
        assert_errors(
            &dp("  address: 'not an address'\n"),
            &[(
                "networking.address",
                "address has to be valid IP address or domain name",
            )],
        );
    }

    #[test]
    fn admin_port_must_not_clash() {
        assert_errors(
            &dp(
                "  address: 127.0.0.1\n  admin: {port: 8080}\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: a}}\n",
            ),
            &[("networking.admin.port", "must differ from inbound")],
        );
        // The application's side of an inbound (servicePort on 127.0.0.1) counts too.
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  admin: {port: 9000}\n  inbound:\n    - {port: 80, servicePort: 9000, tags: {kuma.io/service: a}}\n",
            ),
            &[("networking.admin.port", "must differ from inbound")],
        );
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  admin: {port: 10001}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: b}}\n",
            ),
            &[("networking.admin.port", "must differ from outbound")],
        );
        assert_valid(&dp(
            "  address: 10.0.0.1\n  admin: {port: 10001}\n  outbound:\n    - {port: 10001, address: 10.0.0.5, tags: {kuma.io/service: b}}\n",
        ));
    }

    #[test]
    fn inbound_ports() {
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  inbound:\n    - {port: 0, servicePort: 70000, tags: {kuma.io/service: a}}\n",
            ),
            &[
                ("networking.inbound[0].port", PORT_RANGE),
                ("networking.inbound[0].servicePort", PORT_RANGE),
            ],
        );
        assert_errors(
            &with_inbound(WEB).replace("8080", "65536"),
            &[("networking.inbound[0].port", PORT_RANGE)],
        );
    }

    #[test]
    fn inbound_addresses() {
        assert_errors(
            &with_inbound(&format!(
                "      serviceAddress: localhost\n      address: my-host\n{WEB}"
            )),
            &[
                (
                    "networking.inbound[0].serviceAddress",
                    "serviceAddress has to be valid IP address",
                ),
                (
                    "networking.inbound[0].address",
                    "address has to be valid IP address",
                ),
            ],
        );
        assert_errors(
            &with_inbound(&format!("      serviceAddress: 10.0.0.1\n{WEB}")),
            &[(
                "networking.inbound[0].serviceAddress",
                "serviceAddress and servicePort has to differ from address and port",
            )],
        );
        assert_errors(
            &with_inbound(&format!(
                "      address: 10.0.0.9\n      serviceAddress: 10.0.0.9\n      servicePort: 8080\n{WEB}"
            )),
            &[(
                "networking.inbound[0].serviceAddress",
                "serviceAddress and servicePort has to differ from address and port",
            )],
        );
        assert_valid(&with_inbound(&format!(
            "      serviceAddress: 10.0.0.1\n      servicePort: 8081\n{WEB}"
        )));
    }

    #[test]
    fn inbound_tags() {
        assert_errors(
            &with_inbound(""),
            &[(
                "networking.inbound[0].tags[\"kuma.io/service\"]",
                "tag has to exist",
            )],
        );
        assert_errors(
            &with_inbound("      tags: {app: web}\n"),
            &[(
                "networking.inbound[0].tags[\"kuma.io/service\"]",
                "tag has to exist",
            )],
        );
        assert_errors(
            &with_inbound("      tags: {kuma.io/service: web, kuma.io/protocol: HTTP}\n"),
            &[(
                "networking.inbound[0].tags[\"kuma.io/protocol\"]",
                "tag \"kuma.io/protocol\" has an invalid value \"HTTP\". Allowed values: grpc, http, http2, kafka, tcp",
            )],
        );
        assert_errors(
            &with_inbound("      tags: {kuma.io/service: '', 'bad key': x}\n"),
            &[
                (
                    "networking.inbound[0].tags[\"bad key\"]",
                    "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
                ),
                (
                    "networking.inbound[0].tags[\"kuma.io/service\"]",
                    "tag value must be non-empty",
                ),
            ],
        );
    }

    #[test]
    fn inbound_state() {
        assert_errors(
            &with_inbound(&format!("      state: Down\n{WEB}")),
            &[(
                "networking.inbound[0].state",
                "must be one of Ready, NotReady, Ignored",
            )],
        );
        for state in ["Ready", "NotReady", "Ignored"] {
            assert_valid(&with_inbound(&format!("      state: {state}\n{WEB}")));
        }
    }

    #[test]
    fn inbound_service_probe() {
        assert_errors(
            &with_inbound(&format!(
                "      serviceProbe: {{interval: 0s, timeout: soon, unhealthyThreshold: 0, healthyThreshold: -1}}\n{WEB}"
            )),
            &[
                (
                    "networking.inbound[0].serviceProbe.interval",
                    "must have a positive value",
                ),
                (
                    "networking.inbound[0].serviceProbe.timeout",
                    "must have a valid value",
                ),
                (
                    "networking.inbound[0].serviceProbe.unhealthyThreshold",
                    "must have a positive value",
                ),
                (
                    "networking.inbound[0].serviceProbe.healthyThreshold",
                    "must have a valid value",
                ),
            ],
        );
    }

    #[test]
    fn duplicate_inbounds() {
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  inbound:\n    - {port: 80, name: http, tags: {kuma.io/service: a}}\n    - {port: 80, address: 10.0.0.1, name: http, tags: {kuma.io/service: b}}\n",
            ),
            &[
                (
                    "networking.inbound[1].port",
                    "port is already used by another inbound",
                ),
                (
                    "networking.inbound[1].name",
                    "name \"http\" must be unique across inbounds and listeners",
                ),
            ],
        );
    }

    #[test]
    fn outbound_rules() {
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  outbound:\n    - {port: 0, address: nowhere, tags: {kuma.io/service: a}}\n    - {port: 1, tags: {app: a}}\n    - {port: 2}\n",
            ),
            &[
                ("networking.outbound[0].port", PORT_RANGE),
                (
                    "networking.outbound[0].address",
                    "address has to be valid IP address",
                ),
                (
                    "networking.outbound[1].tags",
                    "mandatory tag \"kuma.io/service\" is missing",
                ),
                (
                    "networking.outbound[2].tags",
                    "mandatory tag \"kuma.io/service\" is missing",
                ),
            ],
        );
    }

    #[test]
    fn outbound_backend_ref_rules() {
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  outbound:\n    - port: 1\n      backendRef: {kind: Service}\n      tags: {kuma.io/service: a}\n    - port: 2\n      backendRef: {kind: MeshService, name: b, port: 0}\n",
            ),
            &[
                (
                    "networking.outbound[0].backendRef.kind",
                    "invalid value. Available values are: MeshExternalService,MeshMultiZoneService,MeshService",
                ),
                (
                    "networking.outbound[0].backendRef",
                    "either 'name' or 'labels' should be specified",
                ),
                ("networking.outbound[0].backendRef.port", PORT_RANGE),
                (
                    "networking.outbound[0].backendRef",
                    "both backendRef and tags/service cannot be defined",
                ),
                ("networking.outbound[1].backendRef.port", PORT_RANGE),
            ],
        );
    }

    #[test]
    fn gateway_rules() {
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  gateway: {tags: {kuma.io/service: gw}}\n  inbound:\n    - {port: 80, tags: {kuma.io/service: a}}\n  listeners: [{type: ZoneIngress}]\n",
            ),
            &[
                (
                    "networking.inbound",
                    "inbound cannot be defined for delegated gateways",
                ),
                (
                    "networking.listeners",
                    "listeners cannot be defined for delegated gateways",
                ),
            ],
        );
        assert_errors(
            &format!(
                "{}probes: {{port: 9000}}\n",
                dp(
                    "  address: 10.0.0.1\n  gateway: {type: BUILTIN, tags: {kuma.io/service: gw}}\n  outbound:\n    - {port: 1, tags: {kuma.io/service: a}}\n"
                )
            ),
            &[
                (
                    "networking.outbound",
                    "outbound cannot be defined for builtin gateways",
                ),
                (
                    "networking.probes",
                    "probes cannot be defined for builtin gateways",
                ),
            ],
        );
        assert_errors(
            &dp("  address: 10.0.0.1\n  gateway: {tags: {kuma.io/protocol: http}}\n"),
            &[
                (
                    "networking.gateway.tags[\"kuma.io/protocol\"]",
                    "other values than tcp are not allowed, provided value \"http\"",
                ),
                (
                    "networking.gateway.tags",
                    "mandatory tag \"kuma.io/service\" is missing",
                ),
            ],
        );
        assert_errors(
            &dp("  address: 10.0.0.1\n  gateway: {type: SIDECAR}\n"),
            &[(
                "networking.gateway.type",
                "must be one of DELEGATED, BUILTIN",
            )],
        );
        assert_errors(
            &dp("  address: 10.0.0.1\n  gateway: 5\n"),
            &[("networking.gateway", "must be a mapping")],
        );
        assert_errors(
            &dp("  address: 10.0.0.1\n  gateway: {tags: {kuma.io/service: 7}}\n"),
            &[(
                "networking.gateway.tags[\"kuma.io/service\"]",
                "must be a string",
            )],
        );
    }

    #[test]
    fn reachable_backends_rules() {
        let at = |i: usize, field: &str| {
            format!("networking.transparentProxing.reachableBackends.refs[{i}].{field}")
        };
        let fields = [
            at(0, "kind"),
            at(0, "name"),
            at(1, "name"),
            at(2, "name"),
            at(3, "labels"),
        ];
        assert_errors(
            &dp(
                "  address: 10.0.0.1\n  transparentProxying:\n    reachableBackends:\n      refs:\n        - {kind: Foo, name: Bad_Name}\n        - {kind: MeshService}\n        - {kind: MeshService, namespace: ns}\n        - {kind: MeshService, name: a, labels: {x: y}}\n",
            ),
            &[
                (
                    fields[0].as_str(),
                    "invalid value. Available values are: MeshExternalService,MeshMultiZoneService,MeshService",
                ),
                (
                    fields[1].as_str(),
                    "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                ),
                (fields[2].as_str(), "name or labels are required"),
                (
                    fields[3].as_str(),
                    "name is required, when namespace is defined",
                ),
                (
                    fields[4].as_str(),
                    "labels cannot be defined when name is specified",
                ),
            ],
        );
    }

    #[test]
    fn metrics_and_probes() {
        assert_errors(
            &format!("{}metrics: {{type: statsd}}\n", dp("  address: 10.0.0.1\n")),
            &[(
                "metrics.type",
                "unknown backend type. Available backends: \"prometheus\"",
            )],
        );
        assert_errors(
            &format!(
                "{}probes:\n  port: 0\n  endpoints:\n    - {{inboundPort: 70000, inboundPath: health, path: /ok}}\n",
                dp("  address: 10.0.0.1\n")
            ),
            &[
                ("probes.port", PORT_RANGE),
                ("probes.endpoints[0].inboundPort", PORT_RANGE),
                (
                    "probes.endpoints[0].inboundPath",
                    "should be a valid URL Path",
                ),
            ],
        );
    }

    #[test]
    fn kubernetes_dataplane_uses_top_level_paths() {
        assert_has_error(
            "apiVersion: kuma.io/v1alpha1\nkind: Dataplane\nmesh: default\nmetadata:\n  name: dp\nspec:\n  networking:\n    address: 10.0.0.1\n    inbound:\n      - port: 0\n        tags: {kuma.io/service: a}\n",
            "networking.inbound[0].port",
            PORT_RANGE,
        );
    }
}
