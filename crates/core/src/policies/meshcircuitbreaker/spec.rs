//! The body of a MeshCircuitBreaker, field for field as Kuma 2.14 spells it
//! (`meshcircuitbreaker.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised); what Kuma requires is checked by [`super::validate`].

use serde::{Deserialize, Serialize};

use crate::policies::common::{GoDuration, IntOrString};
use crate::spec::TargetRef;

/// Body of a `MeshCircuitBreaker`: outbound settings per destination (`to`), inbound
/// settings per client (`from`, deprecated by Kuma in favour of `rules`) or for all inbound
/// traffic (`rules`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshCircuitBreakerSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// Inbound settings; cannot be combined with `to` or `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// Settings for the traffic to a destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Settings for the traffic from a group of clients (only `kind: Mesh` is allowed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Settings for all inbound traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// The circuit breaker: connection limits, outlier detection, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limits: Option<ConnectionLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

/// Limits that open the circuit when exceeded; each must be above 0 when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Connections to the upstream cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Concurrent connection pools per cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_pools: Option<u32>,
    /// Pending requests (a connection limit for non-HTTP traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Parallel retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Parallel requests (HTTP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
}

/// Passive health checking: hosts that behave unlike the others are ejected for a while.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// `true` switches outlier detection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Time between ejection sweeps; above zero when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Base ejection time (multiplied by the times a host was ejected); above zero when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<GoDuration>,
    /// Most hosts (percent, 0-100) that may be ejected at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Count locally originated failures apart from upstream ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_and_local_errors: Option<bool>,
    /// Required when `outlierDetection` is given; at least one detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectors: Option<Detectors>,
    /// Envoy's panic threshold, percent 0-100 (`70`, `"99.5"`; Envoy's default: 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
}

/// The outlier detectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Detectors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_failures: Option<DetectorTotalFailures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_failures: Option<DetectorGatewayFailures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_origin_failures: Option<DetectorLocalOriginFailures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<DetectorSuccessRateFailures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<DetectorFailurePercentageFailures>,
}

/// Consecutive errors of any kind (5xx, connection failures) before ejection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectorTotalFailures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

/// Consecutive gateway errors (502, 503, 504) before ejection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectorGatewayFailures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

/// Consecutive locally originated failures (timeouts, resets) before ejection; used only
/// with `splitExternalAndLocalErrors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectorLocalOriginFailures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

/// Ejection of hosts whose success rate is a statistical outlier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectorSuccessRateFailures {
    /// Hosts with enough requests needed for the detector to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Requests per interval a host needs to be considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    /// Ejection threshold: mean − stdev × factor; a positive number (`1900`, `"1.9"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_deviation_factor: Option<IntOrString>,
}

/// Ejection of hosts whose failure percentage reaches a threshold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectorFailurePercentageFailures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    /// Failure percentage (0-100) at which a host is ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}
