//! MeshLoadBalancingStrategy: how a proxy balances the traffic it sends.
//!
//! A MeshLoadBalancingStrategy selects proxies with its top-level `targetRef` (the whole
//! mesh when missing) and, per `to[]` destination (the whole mesh, a MeshService,
//! MeshMultiZoneService or MeshHTTPRoute), sets:
//!
//! - `loadBalancer`: the algorithm (`RoundRobin`, `LeastRequest`, `RingHash`, `Random`,
//!   `Maglev`) and its settings;
//! - `hashPolicies`: what the consistent-hash algorithms hash (headers, cookies, the
//!   connection, query parameters, filter state); the only setting for a MeshHTTPRoute;
//! - `localityAwareness`: endpoints preferred inside the zone by tags, and the order in
//!   which other zones take over.
//!
//! Kuma creates no MeshLoadBalancingStrategy with a mesh. Aerie validates and stores them,
//! and resolves each outbound's merged conf into a compact [`LoadBalancer`] (`resolve.rs`)
//! that kuma-dp enforces (`crates/dp/src/lb.rs`).
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshloadbalancingstrategy/api/v1alpha1/`
//! `meshloadbalancingstrategy.go` (the fields), `validator.go` / `validator_test.go` (the
//! checks, ported in `tests.rs`), `rest.yaml` (the schema), `deprecated.go` (hash policies
//! inside `ringHash`/`maglev`, the `SourceIP` type), `zz_generated.resource.go` (the
//! descriptor).

pub mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

/// What the proxy enforces (`resolve::LoadBalancer` is the compact balancer; the spec's
/// `LoadBalancer` is the document's).
pub use resolve::{
    Algorithm, HashFunction, HashKey, LoadBalancingRules, Locality, ZoneRule, ZoneSet,
};
pub use spec::*;
pub use validate::validate;

use crate::policies::common::top_level_target_ref_deprecations;
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshLoadBalancingStrategy in the registry (`kuma:policy:order=400`, short name `mlbs`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshLoadBalancingStrategy,
    name: "MeshLoadBalancingStrategy",
    plural: "meshloadbalancingstrategies",
    cli_singular: "meshloadbalancingstrategy",
    cli_plural: "meshloadbalancingstrategies",
    short_name: "mlbs",
    short_names: &["mlbs"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(400),
    policy_form: PolicyForm {
        to: true,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshLoadBalancingStrategySpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        validate(self)
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`): hash policies inside the `RingHash` or
/// `Maglev` settings of the chosen algorithm (and each `SourceIP` type among them), then
/// the top-level kinds Kuma deprecates.
pub fn warnings(spec: &MeshLoadBalancingStrategySpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, item) in spec.to.iter().flatten().enumerate() {
        let Some(lb) = item.default.as_ref().and_then(|c| c.load_balancer.as_ref()) else {
            continue;
        };
        let (field, policies) = match lb.lb_type.as_deref() {
            Some("RingHash") => (
                "ringHash",
                lb.ring_hash.as_ref().and_then(|r| r.hash_policies.as_ref()),
            ),
            Some("Maglev") => (
                "maglev",
                lb.maglev.as_ref().and_then(|m| m.hash_policies.as_ref()),
            ),
            _ => continue,
        };
        let Some(policies) = policies else {
            continue;
        };
        out.push(format!(
            "configuration 'spec.to[{i}].default.loadBalancer.{field}.hashPolicies' is deprecated, use 'spec.to[{i}].default.hashPolicies' instead"
        ));
        for (j, p) in policies.iter().enumerate() {
            if p.policy_type.as_deref() == Some("SourceIP") {
                out.push(format!(
                    "SourceIP type for 'spec.to[{i}].default.loadBalancer.{field}.hashPolicies[{j}].type' is deprecated, use Connection instead"
                ));
            }
        }
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    out
}
