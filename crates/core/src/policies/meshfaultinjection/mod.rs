//! MeshFaultInjection: injects faults into HTTP traffic to test how services cope with
//! failure.
//!
//! A MeshFaultInjection selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and lists HTTP fault sets for the traffic they receive (`rules[]`, optionally
//! narrowed by the caller's SPIFFE ID or SNI, or the deprecated `from[]` per group of
//! clients) or, for gateways, the traffic they send (`to[]` with `kind: Mesh`). Each fault
//! set may:
//!
//! - `abort` a share of requests with a status code;
//! - `delay` a share of responses;
//! - limit the `responseBandwidth` of a share of responses (`100Mbps`).
//!
//! Kuma creates no MeshFaultInjection with a mesh. kuma-dp injects the faults on its HTTP
//! inbounds, per caller ([`resolve`](mod@resolve) says how entries combine); `to` (gateways)
//! is not enforced.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshfaultinjection/api/v1alpha1/`
//! `meshfaultinjection.go` (the fields), `validator.go` / `validator_test.go` (the checks,
//! ported in `tests.rs`), `rest.yaml` (the schema), `deprecated.go` (`from` is deprecated),
//! `zz_generated.resource.go` (the descriptor).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    Abort, Bandwidth, Combine, Delay, Fault, FaultEntry, FaultInjectionRules, InboundFaults,
    PER_MILLION, bandwidth_bytes_per_second, explain_json, inbound_faults, per_million,
};
pub use spec::*;
pub use validate::{validate, validate_with_role};

use crate::policies::common::{PolicyRole, top_level_target_ref_deprecations};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshFaultInjection in the registry (`kuma:policy:order=800`, short name `mfi`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshFaultInjection,
    name: "MeshFaultInjection",
    plural: "meshfaultinjections",
    cli_singular: "meshfaultinjection",
    cli_plural: "meshfaultinjections",
    short_name: "mfi",
    short_names: &["mfi"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(800),
    policy_form: PolicyForm {
        to: true,
        from: true,
        rules: true,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshFaultInjectionSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(self, &PolicyRole::from_labels(&meta.labels))
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`): `from` (use `rules`), and the top-level
/// kinds Kuma deprecates.
pub fn warnings(spec: &MeshFaultInjectionSpec) -> Vec<String> {
    let mut out = Vec::new();
    if spec.from.as_ref().is_some_and(|f| !f.is_empty()) {
        out.push(
            "'from' field is deprecated, use 'rules' with SPIFFE-based 'matches' instead"
                .to_string(),
        );
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    out
}
