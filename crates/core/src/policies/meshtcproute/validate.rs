//! MeshTCPRoute checks: Kuma 2.14's `validator.go`, with its field paths and messages.

use crate::ValidationError;
use crate::policies::common::{
    PolicyRole, RefOpts, validate_backend_refs, validate_target_ref, validate_top_level,
};
use crate::spec::TargetRef;

use super::spec::{MeshTcpRouteSpec, To};

/// Top-level kinds of a system policy (any policy without a `kuma.io/policy-role` label).
const SYSTEM_TOP_LEVEL_KINDS: [&str; 6] = [
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// Top-level kinds of a policy with another role.
const TOP_LEVEL_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];

/// `to[].targetRef` kinds of a route on a MeshGateway.
const GATEWAY_TO_KINDS: [&str; 1] = ["Mesh"];

/// `to[].targetRef` kinds otherwise: real destinations.
const TO_KINDS: [&str; 3] = ["MeshService", "MeshExternalService", "MeshMultiZoneService"];

/// Validates a MeshTCPRoute as a system policy. Every field path starts with `spec`.
pub fn validate(spec: &MeshTcpRouteSpec) -> ValidationError {
    validate_with_role(spec, &PolicyRole::System)
}

/// Validates a MeshTCPRoute with the given role: only system policies may target a
/// MeshGateway (and its listeners by tags).
pub fn validate_with_role(spec: &MeshTcpRouteSpec, role: &PolicyRole) -> ValidationError {
    let mut errs = ValidationError::new();
    errs.add_prefixed(
        "",
        validate_top_level(
            spec.target_ref.as_ref(),
            role,
            &SYSTEM_TOP_LEVEL_KINDS,
            &TOP_LEVEL_KINDS,
        ),
    );
    let top_kind = spec
        .target_ref
        .as_ref()
        .map_or("Mesh", |r| r.kind.as_deref().unwrap_or(""));
    for (i, to) in spec.to.iter().flatten().enumerate() {
        errs.add_prefixed(&format!("to[{i}]"), validate_to(top_kind, to));
    }
    let mut rooted = ValidationError::new();
    rooted.add_prefixed("spec", errs);
    rooted
}

fn validate_to(top_kind: &str, to: &To) -> ValidationError {
    let mut errs = ValidationError::new();
    let kinds: &[&str] = if top_kind == "MeshGateway" {
        &GATEWAY_TO_KINDS
    } else {
        &TO_KINDS
    };
    let missing = TargetRef::default();
    errs.add_prefixed(
        "targetRef",
        validate_target_ref(
            to.target_ref.as_ref().unwrap_or(&missing),
            kinds,
            RefOpts::default(),
        ),
    );
    for (j, rule) in to.rules.iter().flatten().enumerate() {
        let at = format!("rules[{j}].default.backendRefs");
        match rule
            .default
            .as_ref()
            .and_then(|d| d.backend_refs.as_deref())
        {
            None | Some([]) => errs.add(at, "must be defined"),
            Some(refs) => errs.add_prefixed(&at, validate_backend_refs(refs)),
        }
    }
    errs
}
