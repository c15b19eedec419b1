//! MeshHealthCheck: active health checking of the destinations a proxy sends to.
//!
//! A MeshHealthCheck selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and, per `to[]` destination (the whole mesh, a MeshService, MeshExternalService
//! or MeshMultiZoneService), says how hosts are probed (`tcp`, `http`, `grpc`), how often,
//! and after how many results a host counts as healthy or unhealthy.
//!
//! Kuma creates no MeshHealthCheck with a mesh. The control plane resolves each outbound's
//! conf into a [`HealthCheck`] (`resolve.rs`); kuma-dp probes every endpoint of the outbound
//! with it and skips the unhealthy ones (`crates/dp/src/health.rs`).
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshhealthcheck/api/v1alpha1/`
//! `meshhealthcheck.go` (the fields), `validator.go` / `validator_test.go` (the checks,
//! ported in `tests.rs`), `rest.yaml` (the schema), `deprecated.go`
//! (`healthyPanicThreshold` moved to MeshCircuitBreaker), `zz_generated.resource.go` (the
//! descriptor).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    CheckHeader, CheckKind, GrpcCheck, HealthCheck, HealthCheckRules, HttpCheck, TcpCheck,
    explain_json,
};
pub use spec::*;
pub use validate::validate;

use crate::policies::common::top_level_target_ref_deprecations;
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshHealthCheck in the registry (`kuma:policy:order=1200`, short name `mhc`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshHealthCheck,
    name: "MeshHealthCheck",
    plural: "meshhealthchecks",
    cli_singular: "meshhealthcheck",
    cli_plural: "meshhealthchecks",
    short_name: "mhc",
    short_names: &["mhc"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1200),
    policy_form: PolicyForm {
        to: true,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshHealthCheckSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        validate(self)
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`): the top-level kinds Kuma deprecates, then
/// one remark per `to` entry with `healthyPanicThreshold`.
pub fn warnings(spec: &MeshHealthCheckSpec) -> Vec<String> {
    let mut out = top_level_target_ref_deprecations(spec.target_ref.as_ref());
    for item in spec.to.iter().flatten() {
        if item
            .default
            .as_ref()
            .is_some_and(|c| c.healthy_panic_threshold.is_some())
        {
            out.push(
                "healthyPanicThreshold for 'to[].default' is deprecated. The setting has been moved to MeshCircuitBreaker policy, please use MeshCircuitBreaker policy instead."
                    .to_string(),
            );
        }
    }
    out
}
