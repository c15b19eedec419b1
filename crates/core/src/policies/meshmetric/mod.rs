//! MeshMetric: how proxies expose their metrics, and their applications', to Prometheus
//! (or an OpenTelemetry collector).
//!
//! A single-item policy: the top-level `targetRef` selects proxies (the whole mesh when
//! missing) and `default` says what they serve: the proxy's own metrics filtered by
//! `sidecar.profiles` (`All`, `Basic`, `None`, then `exclude` and `include` selectors),
//! `applications` scraped and served with them, and `backends`: a Prometheus endpoint on
//! the proxy (`port` 5670, `path` `/metrics` by default; announced to the `clientId`
//! through the control plane's discovery) or an OpenTelemetry collector (validated and
//! stored, not pushed to). Kuma creates no MeshMetric with a mesh.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshmetric/api/v1alpha1/` `meshmetric.go`,
//! `validator.go` / `validator_test.go` (ported in `tests.rs`), `deprecated.go`,
//! `zz_generated.resource.go`; `plugin/` and kuma-dp's `meshmetrics` component (what the
//! proxy serves, [`resolve`](mod@resolve)); `pkg/mads` (discovery).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    AppEndpoint, DEFAULT_CLIENT_ID, DEFAULT_PATH, DEFAULT_PORT, MetricRules, NameSelector,
    ProfileName, PrometheusEndpoint, ProxyMetrics, extra_labels, proxy_metrics,
    sanitize_label_name,
};
pub use spec::*;
pub use validate::{validate, validate_with_role};

use crate::policies::common::{
    OTEL_ENDPOINT_DEPRECATION, PolicyRole, is_inline_otel_endpoint,
    top_level_target_ref_deprecations,
};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshMetric in the registry (`kuma:policy:order=1500`, short name `mm`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshMetric,
    name: "MeshMetric",
    plural: "meshmetrics",
    cli_singular: "meshmetric",
    cli_plural: "meshmetrics",
    short_name: "mm",
    short_names: &["mm"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1500),
    policy_form: PolicyForm {
        to: false,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshMetricSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(self, &PolicyRole::from_labels(&meta.labels))
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`: an inline OpenTelemetry endpoint, the
/// top-level kinds Kuma deprecates), then Aerie's: OpenTelemetry backends are not pushed
/// to, `ProvidedTLS` is served in plaintext.
pub fn warnings(spec: &MeshMetricSpec) -> Vec<String> {
    let mut out = Vec::new();
    let backends: Vec<&Backend> = spec
        .default
        .iter()
        .flat_map(|d| d.backends.iter().flatten())
        .collect();
    if backends.iter().any(|b| {
        b.open_telemetry
            .as_ref()
            .is_some_and(|o| is_inline_otel_endpoint(o.endpoint.as_deref(), o.backend_ref.as_ref()))
    }) {
        out.push(OTEL_ENDPOINT_DEPRECATION.to_string());
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    if backends
        .iter()
        .any(|b| b.backend_type.as_deref() == Some("OpenTelemetry"))
    {
        out.push("OpenTelemetry backends are stored but kuma-dp does not push to them yet; use a Prometheus backend".to_string());
    }
    if backends.iter().any(|b| {
        b.prometheus
            .as_ref()
            .and_then(|p| p.tls.as_ref())
            .and_then(|t| t.mode.as_deref())
            == Some("ProvidedTLS")
    }) {
        out.push("prometheus.tls.mode ProvidedTLS: kuma-dp has no metrics certificate configured and serves the endpoint without TLS, as Kuma does without certificate paths".to_string());
    }
    out
}
