//! What MeshCircuitBreaker contributes to a proxy: for each outbound, the merged `to[]`
//! conf (through the generic [`rules`](crate::policies::rules) engine) turned into a
//! compact [`CircuitBreaker`]: the cluster's connection limits (Envoy's defaults under
//! every unset field) and its outlier detection (Kuma's `plugin/xds/configurer.go`: a
//! detector is enforced only when the policy names it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, MeshCircuitBreakerSpec};
use crate::duration::GoDuration;
use crate::policies::common::IntOrString;
use crate::policies::rules::{
    Catalog, DataplaneRules, DataplaneView, Merged, Options, RulesIndex, RulesSource, build_index,
    conf_json,
};
use crate::spec::{Tags, TargetRef};

/// Envoy's default for `max_connections`, `max_pending_requests` and `max_requests`.
pub const DEFAULT_LIMIT: u32 = 1024;
/// Envoy's default for `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// The circuit breaker of one outbound cluster, serialised in the proxy's config. The
/// default is Envoy's (what holds without any MeshCircuitBreaker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CircuitBreaker {
    /// Connections open to the cluster's endpoints.
    pub max_connections: u32,
    /// Requests waiting for a connection (HTTP) / connections being established (TCP).
    pub max_pending_requests: u32,
    /// Requests in flight to the cluster (HTTP).
    pub max_requests: u32,
    /// Retries in flight to the cluster.
    pub max_retries: u32,
    /// Envoy's connection pools: kuma-dp, like Envoy, keeps one per endpoint and worker
    /// thread, alive while it has a connection (open, opening or waited for); a request
    /// that would need one more is answered `503 no healthy upstream`. `None`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_pools: Option<u32>,
    /// `None`: no outlier detection (none configured, or `disabled: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
}

impl Default for CircuitBreaker {
    fn default() -> CircuitBreaker {
        CircuitBreaker {
            max_connections: DEFAULT_LIMIT,
            max_pending_requests: DEFAULT_LIMIT,
            max_requests: DEFAULT_LIMIT,
            max_retries: DEFAULT_MAX_RETRIES,
            max_connection_pools: None,
            outlier: None,
        }
    }
}

/// Passive health checking of the cluster's endpoints, durations in milliseconds. Each
/// detector is `None` unless the policy names it (Kuma sets Envoy's `enforcing_*` to 0 for
/// the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Outlier {
    pub interval_ms: u64,
    pub base_ejection_ms: u64,
    /// Envoy's `max_ejection_time` (Kuma does not expose it): 300s.
    pub max_ejection_ms: u64,
    pub max_ejection_percent: u32,
    pub split_external_and_local_errors: bool,
    /// `totalFailures.consecutive` (Envoy's `consecutive_5xx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// `gatewayFailures.consecutive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway: Option<u32>,
    /// `localOriginFailures.consecutive` (only counted apart with
    /// `splitExternalAndLocalErrors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin: Option<u32>,
    /// `successRate`: every `interval`, endpoints whose success rate is below the mean by
    /// more than `stdevFactor` standard deviations are ejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRate>,
    /// `failurePercentage`: every `interval`, endpoints failing `threshold` percent of their
    /// requests or more are ejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<FailurePercentage>,
    /// Below this percentage of healthy endpoints, ejections are ignored (Envoy's panic
    /// mode; default 50).
    pub healthy_panic_threshold: f64,
}

impl Default for Outlier {
    fn default() -> Outlier {
        Outlier {
            interval_ms: 10_000,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 10,
            split_external_and_local_errors: false,
            consecutive_5xx: None,
            consecutive_gateway: None,
            consecutive_local_origin: None,
            success_rate: None,
            failure_percentage: None,
            healthy_panic_threshold: 50.0,
        }
    }
}

/// The success-rate detector (Envoy's `success_rate_*`, defaults under unset fields),
/// evaluated every `interval` over the requests of that interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessRate {
    /// Endpoints with `requestVolume` requests in the interval needed to run at all.
    pub minimum_hosts: u32,
    /// Requests in the interval an endpoint needs to be considered.
    pub request_volume: u32,
    /// Envoy's `success_rate_stdev_factor`: Kuma's `standardDeviationFactor` × 1000
    /// (`"1.9"`: 1900); the ejection threshold is `mean - stdev × stdevFactor / 1000`.
    pub stdev_factor: u32,
}

impl Default for SuccessRate {
    fn default() -> SuccessRate {
        SuccessRate {
            minimum_hosts: 5,
            request_volume: 100,
            stdev_factor: 1900,
        }
    }
}

/// The failure-percentage detector (Envoy's `failure_percentage_*`, defaults under unset
/// fields), evaluated every `interval` over the requests of that interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FailurePercentage {
    /// Endpoints with `requestVolume` requests in the interval needed to run at all.
    pub minimum_hosts: u32,
    /// Requests in the interval an endpoint needs to be considered.
    pub request_volume: u32,
    /// Failure percentage (0-100) at or above which an endpoint is ejected.
    pub threshold: u32,
}

impl Default for FailurePercentage {
    fn default() -> FailurePercentage {
        FailurePercentage {
            minimum_hosts: 5,
            request_volume: 50,
            threshold: 85,
        }
    }
}

fn ms(d: &GoDuration) -> Option<u64> {
    d.to_std()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CircuitBreaker {
    /// A merged conf (`None`: no MeshCircuitBreaker applies) as the proxy enforces it.
    pub fn from_conf(conf: Option<&Conf>) -> CircuitBreaker {
        let mut cb = CircuitBreaker::default();
        let Some(c) = conf else { return cb };
        if let Some(l) = &c.connection_limits {
            let set = |field: &mut u32, v: Option<u32>| {
                if let Some(v) = v {
                    *field = v;
                }
            };
            set(&mut cb.max_connections, l.max_connections);
            set(&mut cb.max_pending_requests, l.max_pending_requests);
            set(&mut cb.max_requests, l.max_requests);
            set(&mut cb.max_retries, l.max_retries);
            cb.max_connection_pools = l.max_connection_pools;
        }
        let Some(o) = &c.outlier_detection else {
            return cb;
        };
        if o.disabled == Some(true) {
            return cb;
        }
        let mut out = Outlier::default();
        if let Some(v) = o.interval.as_ref().and_then(ms) {
            out.interval_ms = v.max(1);
        }
        if let Some(v) = o.base_ejection_time.as_ref().and_then(ms) {
            out.base_ejection_ms = v.max(1);
        }
        // Envoy: max_ejection_time must not be below the base.
        out.max_ejection_ms = out.max_ejection_ms.max(out.base_ejection_ms);
        if let Some(v) = o.max_ejection_percent {
            out.max_ejection_percent = v.min(100);
        }
        out.split_external_and_local_errors = o.split_external_and_local_errors == Some(true);
        if let Some(d) = &o.detectors {
            out.consecutive_5xx = d.total_failures.as_ref().and_then(|t| t.consecutive);
            out.consecutive_gateway = d.gateway_failures.as_ref().and_then(|t| t.consecutive);
            out.consecutive_local_origin =
                d.local_origin_failures.as_ref().and_then(|t| t.consecutive);
            out.success_rate = d.success_rate.as_ref().map(|s| {
                let mut sr = SuccessRate::default();
                if let Some(v) = s.minimum_hosts {
                    sr.minimum_hosts = v;
                }
                if let Some(v) = s.request_volume {
                    sr.request_volume = v;
                }
                // Kuma sends the factor × 1000, its integer part (validated positive).
                if let Some(v) = s
                    .standard_deviation_factor
                    .as_ref()
                    .and_then(IntOrString::decimal)
                    .and_then(|d| d.scaled_int_part(3))
                {
                    sr.stdev_factor = u32::try_from(v).unwrap_or(u32::MAX);
                }
                sr
            });
            out.failure_percentage = d.failure_percentage.as_ref().map(|f| {
                let mut fp = FailurePercentage::default();
                if let Some(v) = f.minimum_hosts {
                    fp.minimum_hosts = v;
                }
                if let Some(v) = f.request_volume {
                    fp.request_volume = v;
                }
                if let Some(v) = f.threshold {
                    fp.threshold = v.min(100);
                }
                fp
            });
        }
        let panic = o.healthy_panic_threshold.as_ref().and_then(|p| match p {
            IntOrString::Int(i) => Some(f64::from(*i)),
            IntOrString::String(s) => s.parse::<f64>().ok().filter(|v| v.is_finite()),
        });
        if let Some(p) = panic {
            out.healthy_panic_threshold = p.clamp(0.0, 100.0);
        }
        cb.outlier = Some(out);
        cb
    }

    /// Whether this is Envoy's default (nothing to send to the proxy).
    pub fn is_default(&self) -> bool {
        *self == CircuitBreaker::default()
    }
}

/// A mesh's MeshCircuitBreakers, indexed once; [`CircuitBreakerRules::for_dataplane`] per
/// proxy.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakerRules {
    index: RulesIndex,
}

impl CircuitBreakerRules {
    /// `policies` are the mesh's MeshCircuitBreakers as (name, labels, spec). Only `to[]`
    /// (outbound clusters) is read: kuma-dp does not enforce inbound circuit breakers.
    pub fn new(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshCircuitBreakerSpec)],
    ) -> CircuitBreakerRules {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    /// [`CircuitBreakerRules::new`] with the mesh's resources that `to` entries and
    /// `backendRef` outbounds may name (MeshServices...), so references by labels or with a
    /// `sectionName` resolve.
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshCircuitBreakerSpec)],
        catalog: Catalog,
    ) -> CircuitBreakerRules {
        CircuitBreakerRules {
            index: build_index(
                mesh,
                policies,
                catalog,
                Options {
                    from_as_rules: true,
                    include_shadow: false,
                },
            ),
        }
    }

    /// The circuit breaker of each `networking.outbound`, in order.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<CircuitBreaker> {
        self.index
            .resolve(dp)
            .outbounds
            .iter()
            .map(|o| breaker(&o.merged))
            .collect()
    }

    /// What the engine found for one proxy, for `inspect`.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// The `inspect` view of one outbound's MeshCircuitBreaker: the contributing policies
/// (lowest priority first), the merged conf as written, and what the proxy enforces.
pub fn explain_json(merged: &Merged) -> Value {
    crate::policies::rules::explain_json(merged, &breaker(merged))
}

fn breaker(merged: &Merged) -> CircuitBreaker {
    CircuitBreaker::from_conf(merged.merged::<Conf>().ok().flatten().as_ref())
}

/// Only `to[]` (outbound clusters) is read: kuma-dp does not enforce inbound circuit
/// breakers.
impl RulesSource for MeshCircuitBreakerSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.to
            .iter()
            .flatten()
            .map(|t| {
                (
                    t.target_ref.as_ref(),
                    t.default.as_ref().map_or(Value::Null, conf_json),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MeshCircuitBreakerSpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshCircuitBreaker(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn dp(yaml: &str) -> crate::spec::DataplaneSpec {
        crate::policies::test_util::dataplane(yaml)
    }

    const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: backend}}\n    - {port: 10002, tags: {kuma.io/service: db}}\n";

    fn resolve(policies: &[(&str, &MeshCircuitBreakerSpec)]) -> Vec<CircuitBreaker> {
        let labels = Tags::new();
        let with_labels: Vec<(&str, &Tags, &MeshCircuitBreakerSpec)> =
            policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
        let rules = CircuitBreakerRules::new("default", &with_labels);
        let d = dp(WEB);
        rules.for_dataplane(&DataplaneView {
            mesh: "default",
            name: "web-1",
            labels: &labels,
            spec: &d,
        })
    }

    #[test]
    fn kumas_default_policy_is_envoys_default() {
        let default = super::super::default_spec();
        let r = resolve(&[("mesh-circuit-breaker-all-default", &default)]);
        assert!(r.iter().all(CircuitBreaker::is_default), "{r:?}");
        assert!(resolve(&[]).iter().all(CircuitBreaker::is_default));
    }

    #[test]
    fn the_default_and_a_narrower_policy_merge_field_by_field() {
        let default = super::super::default_spec();
        let narrow = spec(
            "type: MeshCircuitBreaker\nname: backend-cb\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default:\n        connectionLimits: {maxRequests: 1}\n        outlierDetection:\n          baseEjectionTime: 2s\n          maxEjectionPercent: 50\n          detectors:\n            totalFailures: {consecutive: 3}\n            gatewayFailures: {}\n",
        );
        let r = resolve(&[
            ("mesh-circuit-breaker-all-default", &default),
            ("backend-cb", &narrow),
        ]);
        assert_eq!(r[0].max_requests, 1);
        assert_eq!(r[0].max_connections, 1024);
        assert_eq!(r[0].max_retries, 3);
        let o = r[0].outlier.clone().unwrap_or_else(|| panic!("no outlier"));
        assert_eq!(o.base_ejection_ms, 2_000);
        assert_eq!(o.interval_ms, 10_000);
        assert_eq!(o.max_ejection_percent, 50);
        assert_eq!(o.consecutive_5xx, Some(3));
        assert_eq!(o.consecutive_gateway, None, "no consecutive: not enforced");
        assert!(r[1].is_default());
    }

    #[test]
    fn success_rate_and_failure_percentage_are_typed_with_envoys_defaults() {
        let p = spec(
            "type: MeshCircuitBreaker\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        connectionLimits: {maxConnectionPools: 4}\n        outlierDetection:\n          interval: 1s\n          detectors:\n            successRate: {minimumHosts: 3, standardDeviationFactor: \"1.25\"}\n            failurePercentage: {threshold: 60}\n",
        );
        let r = resolve(&[("p", &p)]);
        assert_eq!(r[0].max_connection_pools, Some(4));
        let o = r[0].outlier.clone().unwrap_or_else(|| panic!("no outlier"));
        assert_eq!(o.interval_ms, 1_000);
        assert_eq!(
            o.success_rate,
            Some(SuccessRate {
                minimum_hosts: 3,
                request_volume: 100,
                stdev_factor: 1250,
            })
        );
        assert_eq!(
            o.failure_percentage,
            Some(FailurePercentage {
                minimum_hosts: 5,
                request_volume: 50,
                threshold: 60,
            })
        );
        assert_eq!((o.consecutive_5xx, o.consecutive_gateway), (None, None));
        // As Kuma, an integer factor is multiplied too (2 -> 2000), and the sides round-trip
        // through the proxy's config.
        let p = spec(
            "type: MeshCircuitBreaker\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        outlierDetection:\n          detectors:\n            successRate: {standardDeviationFactor: 2}\n",
        );
        let r = resolve(&[("p", &p)]);
        let o = r[0].outlier.clone().unwrap_or_else(|| panic!("no outlier"));
        assert_eq!(o.success_rate.as_ref().map(|s| s.stdev_factor), Some(2000));
        assert_eq!(o.failure_percentage, None, "not named: not enforced");
        let json = serde_json::to_value(&r[0]).unwrap_or_default();
        assert_eq!(json["outlier"]["successRate"]["stdevFactor"], 2000);
        let back: CircuitBreaker = serde_json::from_value(json).unwrap_or_default();
        assert_eq!(back, r[0]);
    }

    #[test]
    fn disabled_outlier_detection_is_none() {
        let p = spec(
            "type: MeshCircuitBreaker\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        outlierDetection:\n          disabled: true\n          detectors: {totalFailures: {consecutive: 3}}\n",
        );
        assert!(resolve(&[("p", &p)]).iter().all(CircuitBreaker::is_default));
    }
}
