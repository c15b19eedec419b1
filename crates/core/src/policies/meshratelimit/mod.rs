//! MeshRateLimit: local rate limits that protect services from being overwhelmed.
//!
//! A MeshRateLimit selects proxies with its top-level `targetRef` (the whole mesh when
//! missing) and sets, for the traffic they receive (`rules[]`, optionally narrowed by the
//! caller's SPIFFE ID or SNI, or the deprecated `from[]` with `kind: Mesh`) or, for
//! gateways, the traffic they forward (`to[]` with `kind: Mesh`), `local` limits each proxy
//! enforces on its own:
//!
//! - `http`: requests per interval, and the status and headers a limited request gets;
//! - `tcp`: connections per interval.
//!
//! Kuma creates no MeshRateLimit with a mesh. kuma-dp enforces the limits on its inbounds
//! ([`resolve`](mod@resolve) says which bucket a caller takes from); `to` (gateways) is not
//! enforced.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshratelimit/api/v1alpha1/`
//! `meshratelimit.go` (the fields), `validator.go` / `validator_test.go` (the checks, ported
//! in `tests.rs`), `rest.yaml` (the schema), `deprecated.go` (`from` is deprecated, a status
//! below 400 is warned about), `zz_generated.resource.go` (the descriptor).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    DEFAULT_STATUS, HeaderAction, HttpLimit, HttpRoute, InboundRateLimit, Rate as LimitRate,
    RateLimitRules, explain_json, inbound_rate_limit,
};
pub use spec::*;
pub use validate::{validate, validate_with_role};

use crate::policies::common::{PolicyRole, top_level_target_ref_deprecations};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::{Meta, ValidationError};

/// MeshRateLimit in the registry (`kuma:policy:order=900`, short name `mrl`; Kuma reads its
/// `from` entries as rules, `is_from_as_rules=true`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshRateLimit,
    name: "MeshRateLimit",
    plural: "meshratelimits",
    cli_singular: "meshratelimit",
    cli_plural: "meshratelimits",
    short_name: "mrl",
    short_names: &["mrl"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(900),
    policy_form: PolicyForm {
        to: true,
        from: true,
        rules: true,
        from_as_rules: true,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshRateLimitSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(self, &PolicyRole::from_labels(&meta.labels))
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Kuma's deprecation remarks (`deprecated.go`): `from` (use `rules`), an `onRateLimit`
/// status below 400 in any entry (Kuma's message names it `requestRate.status`), and the
/// top-level kinds Kuma deprecates.
pub fn warnings(spec: &MeshRateLimitSpec) -> Vec<String> {
    let mut out = Vec::new();
    let from = spec.from.as_deref().unwrap_or_default();
    if !from.is_empty() {
        out.push("'from' field is deprecated, use 'rules' instead".to_string());
    }
    let sections = [
        (
            "from",
            from.iter().map(|f| f.default.as_ref()).collect::<Vec<_>>(),
        ),
        (
            "rules",
            spec.rules
                .iter()
                .flatten()
                .map(|r| r.default.as_ref())
                .collect(),
        ),
        (
            "to",
            spec.to
                .iter()
                .flatten()
                .map(|t| t.default.as_ref())
                .collect(),
        ),
    ];
    for (section, confs) in sections {
        for (i, conf) in confs.into_iter().enumerate() {
            if status_below_400(conf) {
                out.push(format!(
                    "'spec.{section}[{i}].default.local.http.requestRate.status' must be 400 or higher. Please update your configuration."
                ));
            }
        }
    }
    out.extend(top_level_target_ref_deprecations(spec.target_ref.as_ref()));
    out
}

fn status_below_400(conf: Option<&Conf>) -> bool {
    conf.and_then(|c| c.local.as_ref())
        .and_then(|l| l.http.as_ref())
        .and_then(|h| h.on_rate_limit.as_ref())
        .and_then(|o| o.status)
        .is_some_and(|s| s < 400)
}
