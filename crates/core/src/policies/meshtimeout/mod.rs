//! MeshTimeout: how long a proxy waits for connections, requests and idle streams, on
//! outbounds (`to`) and inbounds (`from`, `rules`). Kuma 2.14's
//! `pkg/plugins/policies/meshtimeout`, `kuma:policy:order=1000`.
//!
//! - [`spec`]: the wire shape; durations are Kubernetes durations (Go syntax).
//! - [`validate`](mod@validate): Kuma's checks with its paths and messages.
//! - [`default_policies`]: what every new mesh gets (`mesh-timeout-all-<mesh>` and
//!   `mesh-gateways-timeout-all-<mesh>`), unless the Mesh's `skipCreatingInitialPolicies`
//!   names `MeshTimeout` or `*`.
//!
//! Defaults when no policy says otherwise (Kuma's `policies/core/defaults`): connect 5s,
//! idle 1h, request 15s, stream idle 30m.

mod resolve;
mod spec;
mod validate;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use resolve::{DataplaneTimeouts, TimeoutRules, Timeouts, explain_json};
pub use spec::{Conf, From, Http, MeshTimeoutSpec, Rule, To};

use crate::duration::GoDuration;
use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::spec::TargetRef;
use crate::{Meta, ValidationError};

/// MeshTimeout in the registry.
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshTimeout,
    name: "MeshTimeout",
    plural: "meshtimeouts",
    cli_singular: "meshtimeout",
    cli_plural: "meshtimeouts",
    short_name: "mt",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1000),
    policy_form: PolicyForm {
        to: true,
        from: true,
        rules: true,
        from_as_rules: true,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshTimeoutSpec {
    fn validate(&self, meta: &Meta) -> ValidationError {
        validate::validate(self, meta)
    }

    /// Kuma's deprecation remarks for the top-level kinds it deprecates.
    fn warnings(&self) -> Vec<String> {
        crate::policies::common::top_level_target_ref_deprecations(self.target_ref.as_ref())
    }
}

/// Kuma's defaults for a sidecar outbound.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_GATEWAY_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DEFAULT_GATEWAY_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_GATEWAY_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_millis(500);

/// The MeshTimeouts Kuma creates with every mesh, by name prefix (the full name appends
/// `-<mesh>`): sidecars get Kuma's defaults outbound and twice as much inbound (so the
/// caller's side gives up first); gateways get the gateway defaults.
pub fn default_policies() -> Vec<(&'static str, MeshTimeoutSpec)> {
    let d = |d: Duration| Some(GoDuration::from_std(d));
    let mesh_ref = |proxy_type: &str| {
        Some(TargetRef {
            kind: Some("Mesh".into()),
            proxy_types: Some(vec![proxy_type.into()]),
            ..TargetRef::default()
        })
    };
    let mesh = || TargetRef {
        kind: Some("Mesh".into()),
        ..TargetRef::default()
    };
    let sidecars = MeshTimeoutSpec {
        target_ref: mesh_ref("Sidecar"),
        from: Some(vec![From {
            target_ref: mesh(),
            default: Conf {
                connection_timeout: d(2 * DEFAULT_CONNECT_TIMEOUT),
                idle_timeout: d(2 * DEFAULT_IDLE_TIMEOUT),
                http: Some(Http {
                    request_timeout: d(Duration::ZERO),
                    stream_idle_timeout: d(2 * DEFAULT_STREAM_IDLE_TIMEOUT),
                    max_stream_duration: d(Duration::ZERO),
                    ..Http::default()
                }),
            },
        }]),
        to: Some(vec![To {
            target_ref: mesh(),
            default: Conf {
                connection_timeout: d(DEFAULT_CONNECT_TIMEOUT),
                idle_timeout: d(DEFAULT_IDLE_TIMEOUT),
                http: Some(Http {
                    request_timeout: d(DEFAULT_REQUEST_TIMEOUT),
                    stream_idle_timeout: d(DEFAULT_STREAM_IDLE_TIMEOUT),
                    ..Http::default()
                }),
            },
        }]),
        rules: None,
    };
    let gateways = MeshTimeoutSpec {
        target_ref: mesh_ref("Gateway"),
        from: Some(vec![From {
            target_ref: mesh(),
            default: Conf {
                idle_timeout: d(DEFAULT_GATEWAY_IDLE_TIMEOUT),
                http: Some(Http {
                    stream_idle_timeout: d(DEFAULT_GATEWAY_STREAM_IDLE_TIMEOUT),
                    request_headers_timeout: d(DEFAULT_GATEWAY_REQUEST_HEADERS_TIMEOUT),
                    ..Http::default()
                }),
                ..Conf::default()
            },
        }]),
        to: Some(vec![To {
            target_ref: mesh(),
            default: Conf {
                idle_timeout: d(DEFAULT_IDLE_TIMEOUT),
                http: Some(Http {
                    stream_idle_timeout: d(DEFAULT_GATEWAY_STREAM_IDLE_TIMEOUT),
                    ..Http::default()
                }),
                ..Conf::default()
            },
        }]),
        rules: None,
    };
    vec![
        ("mesh-gateways-timeout-all", gateways),
        ("mesh-timeout-all", sidecars),
    ]
}
