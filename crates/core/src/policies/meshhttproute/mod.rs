//! MeshHTTPRoute: how a proxy routes the HTTP requests addressed to a destination: matches
//! on path, method, headers and query parameters, filters (header changes, redirects,
//! rewrites, mirroring) and weighted backends.
//!
//! A MeshHTTPRoute selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and, for each `to[]` destination (a MeshService, MeshExternalService or
//! MeshMultiZoneService; the whole mesh for a route on a MeshGateway, which may also name
//! `hostnames`), lists rules. Enforced by kuma-dp on the caller's outbounds (`resolve.rs` orders and
//! merges the rules, `table.rs` is what the proxy receives).
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshhttproute/api/v1alpha1/meshhttproute.go`
//! (the fields), `validation.go` / `validation_test.go` (the checks, ported in `tests.rs`),
//! `zz_generated.resource.go` (the descriptor: order 100).

mod resolve;
mod spec;
pub mod table;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    HttpRouteRules, OrderedRoute, ResolveBackend, compare_match, compile_routes, explain_json,
    order_routes,
};
pub use spec::*;
pub use validate::{UNRESOLVED_BACKEND, validate, validate_with_role};

use crate::policies::common::top_level_target_ref_deprecations;
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshHTTPRoute in the registry (`kuma:policy:order=100`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshHTTPRoute,
    name: "MeshHTTPRoute",
    plural: "meshhttproutes",
    cli_singular: "meshhttproute",
    cli_plural: "meshhttproutes",
    short_name: "mhttpr",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(100),
    policy_form: PolicyForm {
        to: true,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshHttpRouteSpec {
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
