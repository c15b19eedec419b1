//! MeshService checks: ports, state and identities.

use std::collections::HashSet;

use serde_json::Value;

use crate::ValidationError;
use crate::spec::{MeshServiceIdentity, MeshServicePort, MeshServiceSpec};

use super::{check_one_of, check_port, one_of};

/// Values `spec.state` may take.
const STATES: [&str; 2] = ["Available", "Unavailable"];

/// Protocols a port may declare; the same set `kuma.io/protocol` accepts on inbounds.
const APP_PROTOCOLS: [&str; 5] = ["tcp", "http", "http2", "grpc", "kafka"];

/// How a service identity is expressed.
const IDENTITY_TYPES: [&str; 2] = ["ServiceTag", "SpiffeID"];

/// Validates the spec; every field path starts with `spec`.
pub(super) fn validate(spec: &MeshServiceSpec) -> ValidationError {
    let mut errs = ValidationError::new();
    check_one_of(&mut errs, "state", spec.state.as_deref(), &STATES);
    check_ports(&spec.ports, &mut errs);
    for (i, identity) in spec.identities.iter().enumerate() {
        errs.add_prefixed(&format!("identities[{i}]"), validate_identity(identity));
    }
    let mut out = ValidationError::new();
    out.add_prefixed("spec", errs);
    out
}

/// Each port on its own, then uniqueness: clients pick a port by number or by name, so
/// neither may repeat.
fn check_ports(ports: &[MeshServicePort], errs: &mut ValidationError) {
    let mut numbers: HashSet<u32> = HashSet::new();
    let mut names: HashSet<&str> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("ports[{i}]");
        errs.add_prefixed(&at, validate_port(port));
        if !numbers.insert(port.port) {
            errs.add(
                format!("{at}.port"),
                format!("duplicate entry: {}, values have to be unique", port.port),
            );
        }
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() && !names.insert(name) {
            errs.add(
                format!("{at}.name"),
                format!("duplicate entry: {name}, values have to be unique"),
            );
        }
    }
}

/// One port: its number, target (a number or an inbound name) and protocol.
fn validate_port(port: &MeshServicePort) -> ValidationError {
    let mut errs = ValidationError::new();
    check_port(&mut errs, "port", port.port);
    match &port.target_port {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let n = n
                .as_u64()
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            check_port(&mut errs, "targetPort", n);
        }
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(_) => errs.add("targetPort", "must be a port number or an inbound name"),
    }
    check_one_of(
        &mut errs,
        "appProtocol",
        port.app_protocol.as_deref(),
        &APP_PROTOCOLS,
    );
    errs
}

/// One identity: a known type and a value.
fn validate_identity(identity: &MeshServiceIdentity) -> ValidationError {
    let mut errs = ValidationError::new();
    if !IDENTITY_TYPES.contains(&identity.identity_type.as_str()) {
        errs.add("type", one_of(&IDENTITY_TYPES));
    }
    if identity.value.is_empty() {
        errs.add("value", "cannot be empty");
    }
    errs
}

#[cfg(test)]
mod tests {
    use crate::validate::PORT_RANGE;
    use crate::validate::test_util::{assert_errors, assert_valid};

    fn msvc(spec: &str) -> String {
        format!(
            "type: MeshService\nname: redis\nmesh: default\nlabels: {{team: db}}\nspec:\n{spec}"
        )
    }

    #[test]
    fn accepted_services() {
        assert_valid("type: MeshService\nname: redis\nmesh: default\n");
        assert_valid(&msvc(
            "  state: Available\n  selector:\n    dataplaneTags: {app: redis}\n  ports:\n    - {name: main, port: 6739, targetPort: 6739, appProtocol: tcp}\n    - {name: admin, port: 8080, targetPort: admin, appProtocol: http}\n    - {port: 9090}\n  identities:\n    - {type: ServiceTag, value: redis}\n    - {type: SpiffeID, value: 'spiffe://default/redis'}\n",
        ));
        assert_valid(&msvc("  state: Unavailable\n"));
        for protocol in ["tcp", "http", "http2", "grpc", "kafka"] {
            assert_valid(&msvc(&format!(
                "  ports:\n    - {{port: 1, appProtocol: {protocol}}}\n"
            )));
        }
    }

    #[test]
    fn state_rule() {
        assert_errors(
            &msvc("  state: Up\n"),
            &[("spec.state", "must be one of Available, Unavailable")],
        );
    }

    #[test]
    fn port_rules() {
        assert_errors(
            &msvc(
                "  ports:\n    - {port: 0, targetPort: 70000, appProtocol: udp}\n    - {port: 80, targetPort: ''}\n    - {port: 81, targetPort: [1]}\n",
            ),
            &[
                ("spec.ports[0].port", PORT_RANGE),
                ("spec.ports[0].targetPort", PORT_RANGE),
                (
                    "spec.ports[0].appProtocol",
                    "must be one of tcp, http, http2, grpc, kafka",
                ),
                (
                    "spec.ports[1].targetPort",
                    "must be a port number or an inbound name",
                ),
                (
                    "spec.ports[2].targetPort",
                    "must be a port number or an inbound name",
                ),
            ],
        );
    }

    #[test]
    fn ports_are_unique() {
        assert_errors(
            &msvc(
                "  ports:\n    - {name: a, port: 80}\n    - {name: a, port: 80}\n    - {name: b, port: 81}\n",
            ),
            &[
                (
                    "spec.ports[1].port",
                    "duplicate entry: 80, values have to be unique",
                ),
                (
                    "spec.ports[1].name",
                    "duplicate entry: a, values have to be unique",
                ),
            ],
        );
    }

    #[test]
    fn identity_rules() {
        assert_errors(
            &msvc("  identities:\n    - {type: Spiffe, value: x}\n    - {type: ServiceTag}\n"),
            &[
                (
                    "spec.identities[0].type",
                    "must be one of ServiceTag, SpiffeID",
                ),
                ("spec.identities[1].value", "cannot be empty"),
            ],
        );
    }
}
