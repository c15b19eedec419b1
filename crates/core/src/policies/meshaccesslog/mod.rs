//! MeshAccessLog: where proxies log the requests and connections they handle.
//!
//! A MeshAccessLog selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and lists backends for the traffic they send (`to[]`, per group of
//! destinations) and receive (`rules[]`, optionally narrowed by the caller's SPIFFE ID or
//! SNI, or the deprecated `from[]` with `kind: Mesh`). A backend is a `File` (a path on the
//! proxy's machine), a `Tcp` collector (`host:port`, one line each) or an `OpenTelemetry`
//! collector, each with Kuma's default format for the listener's protocol, a `Plain` text
//! or `Json` fields made of Envoy's command operators ([`format`]).
//!
//! kuma-dp writes lines and OTLP log records off the request path (a bounded buffer per
//! backend; what does not fit is dropped and counted). OpenTelemetry backends given by
//! `backendRef` are validated and stored but not sent (Aerie has no
//! MeshOpenTelemetryBackend). Kuma creates no MeshAccessLog with a mesh.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshaccesslog/api/v1alpha1/`
//! `meshaccesslog.go` (the fields), `validator.go` / `validator_test.go` (the checks,
//! ported in `tests.rs`), `deprecated.go`, `zz_generated.resource.go` (the descriptor), and
//! `plugin/` (how it reaches a proxy, [`resolve`](mod@resolve)).

pub mod format;
mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    AccessLog, AccessLogRules, DataplaneAccessLogs, LogBackend, LogEntry, LogFormat, LogValues,
    explain_inbound_json, explain_json, inbound_log, otel_body, outbound_log,
};
pub use spec::*;
pub use validate::{is_url, otel_attribute_name_problem, validate};

use crate::policies::common::{
    OTEL_ENDPOINT_DEPRECATION, is_inline_otel_endpoint, top_level_target_ref_deprecations,
};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshAccessLog in the registry (`kuma:policy:order=600`, short name `mal`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshAccessLog,
    name: "MeshAccessLog",
    plural: "meshaccesslogs",
    cli_singular: "meshaccesslog",
    cli_plural: "meshaccesslogs",
    short_name: "mal",
    short_names: &["mal"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(600),
    policy_form: PolicyForm {
        to: true,
        from: true,
        rules: true,
        from_as_rules: true,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshAccessLogSpec {
    fn validate(&self, _meta: &Meta) -> ValidationError {
        validate(self)
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Every backend of the policy, wherever it is listed.
fn backends(spec: &MeshAccessLogSpec) -> impl Iterator<Item = &Backend> {
    let to = spec.to.iter().flatten().map(|t| t.default.as_ref());
    let from = spec.from.iter().flatten().map(|f| f.default.as_ref());
    let rules = spec.rules.iter().flatten().map(|r| r.default.as_ref());
    to.chain(from)
        .chain(rules)
        .flatten()
        .flat_map(|c| c.backends.iter().flatten())
}

/// Kuma's deprecation remarks (`deprecated.go`: `from`, an inline OpenTelemetry endpoint,
/// the top-level kinds Kuma deprecates), then Aerie's: operators kuma-dp renders as `-`, and
/// OpenTelemetry backends, which kuma-dp does not send yet.
pub fn warnings(spec: &MeshAccessLogSpec) -> Vec<String> {
    let mut out = Vec::new();
    if spec.from.as_ref().is_some_and(|f| !f.is_empty()) {
        out.push("'from' field is deprecated, use 'rules' instead".to_string());
    }
    let inline_endpoint = backends(spec).any(|b| {
        b.open_telemetry
            .as_ref()
            .is_some_and(|o| is_inline_otel_endpoint(o.endpoint.as_deref(), o.backend_ref.as_ref()))
    });
    if inline_endpoint {
        out.push(OTEL_ENDPOINT_DEPRECATION.to_string());
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    let mut unknown: Vec<String> = Vec::new();
    for b in backends(spec) {
        let f = b
            .file
            .as_ref()
            .and_then(|f| f.format.as_ref())
            .or_else(|| b.tcp.as_ref().and_then(|t| t.format.as_ref()));
        let texts = f.into_iter().flat_map(|f| {
            f.plain
                .iter()
                .map(String::as_str)
                .chain(f.json.iter().flatten().map(|j| j.value.as_str()))
        });
        // An OpenTelemetry backend's body (a string or an `AnyValue`) and attribute values.
        let otel = b.open_telemetry.as_ref();
        let body = otel.and_then(|o| o.body.as_ref()).map(|v| v.to_string());
        let attributes = otel
            .into_iter()
            .flat_map(|o| o.attributes.iter().flatten())
            .map(|a| a.value.clone());
        let owned: Vec<String> = body.into_iter().chain(attributes).collect();
        for t in texts.chain(owned.iter().map(String::as_str)) {
            for op in format::unknown_operators(t) {
                if !unknown.contains(&op) {
                    unknown.push(op);
                }
            }
        }
    }
    if !unknown.is_empty() {
        out.push(format!(
            "kuma-dp does not know the operators {}: it logs '-' in their place",
            unknown
                .iter()
                .map(|o| format!("%{o}%"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let by_ref = backends(spec).any(|b| {
        b.backend_type.as_deref() == Some("OpenTelemetry")
            && b.open_telemetry
                .as_ref()
                .is_some_and(|o| o.endpoint.as_deref().is_none_or(str::is_empty))
    });
    if by_ref {
        out.push("OpenTelemetry backends given by backendRef are stored but kuma-dp does not send to them (Aerie has no MeshOpenTelemetryBackend); give an endpoint".to_string());
    }
    out
}
