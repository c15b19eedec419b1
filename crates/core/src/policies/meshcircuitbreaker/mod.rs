//! MeshCircuitBreaker: protects services from overload and from unhealthy instances.
//!
//! A MeshCircuitBreaker selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and configures, per outbound destination (`to[]`: the whole mesh, a
//! MeshService, MeshExternalService or MeshMultiZoneService) or for inbound traffic
//! (`rules[]`, or the deprecated `from[]` with `kind: Mesh`):
//!
//! - `connectionLimits`: connections, pending requests, parallel requests and retries,
//!   connection pools; past a limit the circuit opens and traffic is refused;
//! - `outlierDetection`: passive health checking; hosts failing consecutively (any error,
//!   gateway errors, local errors) or whose success rate or failure percentage stands out
//!   are ejected from load balancing for a growing time.
//!
//! Kuma creates one with every mesh ([`default_policy`]): 1024 connections, pending
//! requests and requests, 3 parallel retries, to every destination.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshcircuitbreaker/api/v1alpha1/`
//! `meshcircuitbreaker.go` (the fields), `validator.go` / `validator_test.go` (the checks,
//! ported in `tests.rs`), `rest.yaml` (the schema), `deprecated.go` (`from` is deprecated),
//! and `pkg/defaults/mesh/meshcircuitbreaker.go` (the default policy).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    CircuitBreaker, CircuitBreakerRules, FailurePercentage, Outlier, SuccessRate, explain_json,
};
pub use spec::*;
pub use validate::validate;

use crate::policies::common::{DefaultPolicy, DefaultPolicyEnv, top_level_target_ref_deprecations};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::spec::TargetRef;
use crate::{Meta, ValidationError};

/// MeshCircuitBreaker in the registry (`kuma:policy:order=1300`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshCircuitBreaker,
    name: "MeshCircuitBreaker",
    plural: "meshcircuitbreakers",
    cli_singular: "meshcircuitbreaker",
    cli_plural: "meshcircuitbreakers",
    short_name: "mcb",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1300),
    policy_form: PolicyForm {
        to: true,
        from: true,
        rules: true,
        from_as_rules: true,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshCircuitBreakerSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        validate(self)
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Name prefix of the default MeshCircuitBreaker: `mesh-circuit-breaker-all-<mesh>`.
pub const DEFAULT_POLICY_PREFIX: &str = "mesh-circuit-breaker-all";

/// The body of the MeshCircuitBreaker Kuma creates in every new mesh (unless
/// `MeshCircuitBreaker` is in the control plane's list of skipped default policies).
pub fn default_spec() -> MeshCircuitBreakerSpec {
    let mesh = || TargetRef {
        kind: Some("Mesh".to_string()),
        ..TargetRef::default()
    };
    MeshCircuitBreakerSpec {
        target_ref: Some(mesh()),
        to: Some(vec![ToItem {
            target_ref: Some(mesh()),
            default: Some(Conf {
                connection_limits: Some(ConnectionLimits {
                    max_connections: Some(1024),
                    max_pending_requests: Some(1024),
                    max_requests: Some(1024),
                    max_retries: Some(3),
                    max_connection_pools: None,
                }),
                outlier_detection: None,
            }),
        }]),
        from: None,
        rules: None,
    }
}

/// The default MeshCircuitBreaker of `mesh` as Kuma creates it: name
/// `mesh-circuit-breaker-all-<mesh>` (with `.<system namespace>` on Kubernetes), the labels
/// Kuma computes, [`default_spec`].
pub fn default_policy(
    mesh: &str,
    env: &DefaultPolicyEnv<'_>,
) -> DefaultPolicy<MeshCircuitBreakerSpec> {
    DefaultPolicy::new(DEFAULT_POLICY_PREFIX, mesh, env, default_spec())
}

/// Kuma's deprecation remarks (`deprecated.go`): `from` (use `rules`), and the top-level
/// kinds Kuma deprecates.
pub fn warnings(spec: &MeshCircuitBreakerSpec) -> Vec<String> {
    let mut out = Vec::new();
    if spec.from.as_ref().is_some_and(|f| !f.is_empty()) {
        out.push("'from' field is deprecated, use 'rules' instead".to_string());
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    out
}
