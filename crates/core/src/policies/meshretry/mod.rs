//! MeshRetry: how a proxy retries requests and connections that failed to a destination.
//!
//! A MeshRetry selects proxies with its top-level `targetRef` (the whole mesh when missing)
//! and, for each `to[]` destination (a MeshService, MeshExternalService,
//! MeshMultiZoneService, MeshHTTPRoute or the whole mesh), says how to retry:
//!
//! - `tcp.maxConnectAttempt`: connection attempts before giving up;
//! - `http` / `grpc`: how many retries, the per-try timeout, exponential back-off and
//!   back-off driven by rate-limit headers, which failures are retriable (`retryOn`) and, for
//!   HTTP, header conditions and host selection for the retried request.
//!
//! Kuma creates one with every mesh ([`default_policy`]): 5 TCP connect attempts and 5
//! HTTP/gRPC retries, 16s per try, back-off from 25ms to 250ms.
//!
//! Kuma references (2.14): `pkg/plugins/policies/meshretry/api/v1alpha1/meshretry.go` (the
//! fields), `validator.go` / `validator_test.go` (the checks, ported in `tests.rs`),
//! `rest.yaml` (the schema), `pkg/defaults/mesh/meshretry.go` (the default policy).

mod resolve;
mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use resolve::{
    DEFAULT_RATE_LIMITED_MAX_INTERVAL_MS, GRPC_RETRY_ON_DEFAULT, HTTP_RETRY_ON_DEFAULT,
    HeaderCondition, HttpRetry, RateLimitedRetry, ResetFormat, ResetHeaderConf, Retry, RetryRules,
    explain_json,
};
pub use spec::*;
pub use validate::{validate, validate_with_role};

use crate::policies::common::{
    DefaultPolicy, DefaultPolicyEnv, GoDuration, top_level_target_ref_deprecations,
};
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::spec::TargetRef;
use crate::{Meta, ValidationError};

/// MeshRetry in the registry (`kuma:policy:order=1400`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshRetry,
    name: "MeshRetry",
    plural: "meshretries",
    cli_singular: "meshretry",
    cli_plural: "meshretries",
    short_name: "mr",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1400),
    policy_form: PolicyForm {
        to: true,
        from: false,
        rules: false,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshRetrySpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate_with_role(
            self,
            &crate::policies::common::PolicyRole::from_labels(&meta.labels),
        )
    }

    fn warnings(&self) -> Vec<String> {
        warnings(self)
    }
}

/// Name prefix of the default MeshRetry: `mesh-retry-all-<mesh>`.
pub const DEFAULT_POLICY_PREFIX: &str = "mesh-retry-all";

/// The body of the MeshRetry Kuma creates in every new mesh (unless `MeshRetry` is in the
/// control plane's list of skipped default policies).
pub fn default_spec() -> MeshRetrySpec {
    let back_off = || BackOff {
        base_interval: Some(GoDuration::from_millis(25)),
        max_interval: Some(GoDuration::from_millis(250)),
    };
    let mesh = || TargetRef {
        kind: Some("Mesh".to_string()),
        ..TargetRef::default()
    };
    MeshRetrySpec {
        target_ref: Some(mesh()),
        to: Some(vec![ToItem {
            target_ref: Some(mesh()),
            default: Some(Conf {
                tcp: Some(Tcp {
                    max_connect_attempt: Some(5),
                }),
                http: Some(Http {
                    num_retries: Some(5),
                    per_try_timeout: Some(GoDuration::from_millis(16_000)),
                    back_off: Some(back_off()),
                    ..Http::default()
                }),
                grpc: Some(Grpc {
                    num_retries: Some(5),
                    per_try_timeout: Some(GoDuration::from_millis(16_000)),
                    back_off: Some(back_off()),
                    ..Grpc::default()
                }),
            }),
        }]),
    }
}

/// The default MeshRetry of `mesh` as Kuma creates it: name `mesh-retry-all-<mesh>` (with
/// `.<system namespace>` on Kubernetes), the labels Kuma computes, [`default_spec`].
pub fn default_policy(mesh: &str, env: &DefaultPolicyEnv<'_>) -> DefaultPolicy<MeshRetrySpec> {
    DefaultPolicy::new(DEFAULT_POLICY_PREFIX, mesh, env, default_spec())
}

/// Kuma's deprecation remarks (`deprecated.go`): the top-level kinds Kuma deprecates.
pub fn warnings(spec: &MeshRetrySpec) -> Vec<String> {
    top_level_target_ref_deprecations(spec.target_ref.as_ref())
}
