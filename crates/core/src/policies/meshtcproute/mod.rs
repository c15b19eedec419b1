//! MeshTCPRoute: where a proxy sends the TCP traffic addressed to a destination, split over
//! weighted backends (canaries, migrations between services).
//!
//! A MeshTCPRoute selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and, for each `to[]` destination (a MeshService, MeshExternalService or
//! MeshMultiZoneService; the whole mesh for a route on a MeshGateway), gives one rule whose
//! `default.backendRefs` are the weighted backends. Validated and stored; kuma-dp does not
//! route by it yet.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshtcproute/api/v1alpha1/meshtcproute.go`
//! (the fields), `validator.go` / `validator_test.go` (the checks, ported in `tests.rs`),
//! `zz_generated.resource.go` (the descriptor: order 200).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::TcpRouteRules;
pub use spec::*;
pub use validate::{validate, validate_with_role};

use crate::policies::common::top_level_target_ref_deprecations;
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshTCPRoute in the registry (`kuma:policy:order=200`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshTCPRoute,
    name: "MeshTCPRoute",
    plural: "meshtcproutes",
    cli_singular: "meshtcproute",
    cli_plural: "meshtcproutes",
    short_name: "mtcpr",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(200),
    policy_form: PolicyForm {
        to: true,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshTcpRouteSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(
            self,
            &crate::policies::common::PolicyRole::from_labels(&meta.labels),
        )
    }

    fn warnings(&self) -> Vec<String> {
        top_level_target_ref_deprecations(self.target_ref.as_ref())
    }
}
