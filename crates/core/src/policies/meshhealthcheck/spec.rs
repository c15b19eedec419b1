//! The body of a MeshHealthCheck, field for field as Kuma 2.14 spells it
//! (`meshhealthcheck.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised); the defaults in the comments are Kuma's (applied by Envoy or the
//! policy plugin, not here).

use serde::{Deserialize, Serialize};

use crate::policies::common::{GoDuration, IntOrString};
pub use crate::policies::common::{HeaderKeyValue, HeaderModifier};
use crate::spec::TargetRef;

/// Body of a `MeshHealthCheck`: active health checks of the destinations a proxy sends to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshHealthCheckSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Health checks per group of destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
}

/// Health checks of a group of destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// How hosts are probed and when they count as healthy; at least one of `tcp`, `http`,
/// `grpc` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    /// Time between checks (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Time to wait for a response (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Consecutive failed checks before a host is unhealthy (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<i32>,
    /// Consecutive passed checks before a host is healthy (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<i32>,
    /// The first check starts after a random time up to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<GoDuration>,
    /// Added to every interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<GoDuration>,
    /// Percent of the interval added to every interval (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter_percent: Option<i32>,
    /// Envoy's panic threshold, percent 0-100; deprecated by Kuma in favour of
    /// MeshCircuitBreaker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
    /// In panic mode, fail all requests instead of using every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_traffic_on_panic: Option<bool>,
    /// A file for health check events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log_path: Option<String>,
    /// Log every failure, not only the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_log_health_check_failures: Option<bool>,
    /// Interval for destinations that never had traffic (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
    /// Keep the health check connection between checks (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_connection: Option<bool>,
}

/// A TCP check: connect, optionally send bytes and expect some back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Base64 of the bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Base64 blocks expected in the response, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<Vec<String>>,
}

/// An HTTP check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The path requested (default `/`); not empty when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_to_add: Option<HeaderModifier>,
    /// Statuses that count as healthy (default `[200]`), each 100-599.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_statuses: Option<Vec<i32>>,
}

/// A gRPC health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The `:authority` of the check request (default: the cluster's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}
