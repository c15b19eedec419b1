//! MeshTrace: distributed tracing settings for the proxies a policy selects.
//!
//! A single-item policy: the top-level `targetRef` selects proxies (the whole mesh when
//! missing) and `default` names at most one backend (`Zipkin`, `Datadog`, `OpenTelemetry`),
//! the sampling percentages (`overall`, `client`, `random`; 100 by default) and span
//! `tags` (literals or request headers). Validated as Kuma 2.14 validates it; resolved per
//! proxy in `resolve.rs` ([`ProxyTracing`]); kuma-dp makes the spans (`crates/dp/src/meshtrace.rs`).
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshtrace/api/v1alpha1/` `meshtrace.go`,
//! `validator.go` / `validator_test.go` (ported in `tests.rs`), `deprecated.go`,
//! `zz_generated.resource.go`.

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::*;
pub use spec::*;
pub use validate::{datadog_url_problems, validate, validate_with_role};

use crate::policies::common::{
    OTEL_ENDPOINT_DEPRECATION, PolicyRole, is_inline_otel_endpoint,
    top_level_target_ref_deprecations,
};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshTrace in the registry (`kuma:policy:order=700`, short name `mtr`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshTrace,
    name: "MeshTrace",
    plural: "meshtraces",
    cli_singular: "meshtrace",
    cli_plural: "meshtraces",
    short_name: "mtr",
    short_names: &["mtr"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(700),
    policy_form: PolicyForm {
        to: false,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshTraceSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(self, &PolicyRole::from_labels(&meta.labels))
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`), then Aerie's: a backend kuma-dp cannot send
/// to (the policy is stored, and selects no tracing).
pub fn warnings(spec: &MeshTraceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut backends = spec
        .default
        .iter()
        .flat_map(|d| d.backends.iter().flatten());
    if backends.any(|b| {
        b.open_telemetry
            .as_ref()
            .is_some_and(|o| is_inline_otel_endpoint(o.endpoint.as_deref(), o.backend_ref.as_ref()))
    }) {
        out.push(OTEL_ENDPOINT_DEPRECATION.to_string());
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    if let Some(why) = spec.default.as_ref().and_then(unsupported_backend) {
        out.push(format!(
            "{why}: proxies this MeshTrace selects send no spans"
        ));
    }
    out
}
