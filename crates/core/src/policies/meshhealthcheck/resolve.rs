//! What MeshHealthCheck contributes to a proxy: for each outbound, the merged `to[]` conf
//! (through the generic [`rules`](crate::policies::rules) engine) turned into a compact
//! [`HealthCheck`] with Kuma's defaults under unset fields (Kuma's
//! `plugin/xds/configurer.go`: interval 1m, timeout 15s, unhealthy after 5 failures, healthy
//! after 1 success, HTTP path `/`, expected status 200). No MeshHealthCheck on an outbound:
//! `None`, nothing probed. Which of `http`, `tcp`, `grpc` runs depends on the destination's
//! protocol, which only the outbound half knows: [`HealthCheck::pick`] is Kuma's choice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, MeshHealthCheckSpec};
use crate::duration::GoDuration;
use crate::policies::common::{HeaderModifier, IntOrString};
use crate::policies::rules::{
    Catalog, DataplaneRules, DataplaneView, Merged, Options, RulesIndex, RulesSource, build_index,
    conf_json,
};
use crate::proxy_config::Protocol;
use crate::spec::{Tags, TargetRef};

/// Kuma's default `interval`.
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// Kuma's default `timeout`.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
/// Kuma's default `unhealthyThreshold`.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 5;
/// Kuma's default `healthyThreshold`.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;
/// Envoy's default `no_traffic_interval` (Kuma leaves it to Envoy).
pub const DEFAULT_NO_TRAFFIC_INTERVAL_MS: u64 = 60_000;

/// The active health checking of one outbound cluster, durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// The first check waits a random time up to this (0: none).
    #[serde(default)]
    pub initial_jitter_ms: u64,
    /// A random time up to this is added to every interval (0: none).
    #[serde(default)]
    pub interval_jitter_ms: u64,
    /// A random share of the interval up to this percent is added to every interval.
    #[serde(default)]
    pub interval_jitter_percent: u32,
    /// The deprecated `healthyPanicThreshold` (percent, 0-100); `None`: the cluster's
    /// (MeshCircuitBreaker's, else Envoy's 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<f64>,
    /// In panic mode, answer `503` instead of balancing over every endpoint.
    #[serde(default)]
    pub fail_traffic_on_panic: bool,
    /// The interval while the outbound never had traffic.
    pub no_traffic_interval_ms: u64,
    /// Keep the check's connection between checks.
    pub reuse_connection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcCheck>,
}

/// An HTTP check: `GET path`, healthy when the status is one of `expected_statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    #[serde(default)]
    pub disabled: bool,
    pub path: String,
    /// Never empty (Kuma's default: `[200]`).
    pub expected_statuses: Vec<u16>,
    /// Headers added to the check request, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<CheckHeader>,
}

/// One header of an HTTP check: `add` appends a value, `set` (append `false`) replaces
/// earlier ones. As Kuma, a value with commas is split into one header per part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckHeader {
    pub name: String,
    pub value: String,
    pub append: bool,
}

/// A TCP check: connect, send `send`'s bytes if any, and expect each `receive` block in
/// the answer, in order (not necessarily adjacent). As Kuma, the texts are sent and
/// matched as their bytes (Kuma hex-encodes them into Envoy's text payloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receive: Vec<String>,
}

/// A gRPC check: `grpc.health.v1.Health/Check` for `service_name`, healthy on `SERVING`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcCheck {
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub service_name: String,
    /// The request's `:authority`; empty: the destination service's name.
    #[serde(default)]
    pub authority: String,
}

/// The check that runs on a cluster (Kuma's `selectHealthCheckType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind<'a> {
    Http(&'a HttpCheck),
    Tcp(&'a TcpCheck),
    Grpc(&'a GrpcCheck),
}

fn ms(d: &GoDuration) -> Option<u64> {
    d.to_std()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn headers(m: Option<&HeaderModifier>) -> Vec<CheckHeader> {
    let mut out = Vec::new();
    let Some(m) = m else { return out };
    for (list, append) in [(&m.add, true), (&m.set, false)] {
        for h in list.iter().flatten() {
            let Some(name) = h.name.as_deref() else {
                continue;
            };
            for value in h.value.as_deref().unwrap_or_default().split(',') {
                out.push(CheckHeader {
                    name: name.to_string(),
                    value: value.to_string(),
                    append,
                });
            }
        }
    }
    out
}

impl HealthCheck {
    /// A merged conf as the proxy enforces it; `None` when no MeshHealthCheck applies.
    pub fn from_conf(conf: Option<&Conf>) -> Option<HealthCheck> {
        let c = conf?;
        let positive = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let duration = |d: &Option<GoDuration>| d.as_ref().and_then(ms);
        Some(HealthCheck {
            interval_ms: duration(&c.interval).unwrap_or(DEFAULT_INTERVAL_MS).max(1),
            timeout_ms: duration(&c.timeout).unwrap_or(DEFAULT_TIMEOUT_MS).max(1),
            unhealthy_threshold: positive(c.unhealthy_threshold, DEFAULT_UNHEALTHY_THRESHOLD),
            healthy_threshold: positive(c.healthy_threshold, DEFAULT_HEALTHY_THRESHOLD),
            initial_jitter_ms: duration(&c.initial_jitter).unwrap_or(0),
            interval_jitter_ms: duration(&c.interval_jitter).unwrap_or(0),
            interval_jitter_percent: c
                .interval_jitter_percent
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0)
                .min(100),
            healthy_panic_threshold: c
                .healthy_panic_threshold
                .as_ref()
                .and_then(IntOrString::decimal)
                .map(|d| d.to_f64())
                .filter(|v| v.is_finite())
                .map(|v| v.clamp(0.0, 100.0)),
            fail_traffic_on_panic: c.fail_traffic_on_panic == Some(true),
            no_traffic_interval_ms: duration(&c.no_traffic_interval)
                .unwrap_or(DEFAULT_NO_TRAFFIC_INTERVAL_MS)
                .max(1),
            reuse_connection: c.reuse_connection != Some(false),
            http: c.http.as_ref().map(|h| HttpCheck {
                disabled: h.disabled == Some(true),
                path: h
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".to_string()),
                expected_statuses: match &h.expected_statuses {
                    Some(list) if !list.is_empty() => list
                        .iter()
                        .filter_map(|s| u16::try_from(*s).ok())
                        .filter(|s| (100..600).contains(s))
                        .collect(),
                    _ => vec![200],
                },
                headers: headers(h.request_headers_to_add.as_ref()),
            }),
            tcp: c.tcp.as_ref().map(|t| TcpCheck {
                disabled: t.disabled == Some(true),
                send: t.send.clone(),
                receive: t.receive.clone().unwrap_or_default(),
            }),
            grpc: c.grpc.as_ref().map(|g| GrpcCheck {
                disabled: g.disabled == Some(true),
                service_name: g.service_name.clone().unwrap_or_default(),
                authority: g.authority.clone().unwrap_or_default(),
            }),
        })
    }

    /// The check that runs for a destination speaking `protocol`, as Kuma picks it: the
    /// protocol's own kind when configured and enabled (`http` for HTTP/1.1 and HTTP/2,
    /// `grpc` for gRPC, `tcp` for TCP); for HTTP and gRPC destinations whose own kind is
    /// configured but disabled, an enabled `tcp`; otherwise none.
    pub fn pick(&self, protocol: Protocol) -> Option<CheckKind<'_>> {
        let tcp = self.tcp.as_ref().filter(|t| !t.disabled);
        match protocol {
            Protocol::Http | Protocol::Http2 => match &self.http {
                Some(h) if !h.disabled => Some(CheckKind::Http(h)),
                Some(_) => tcp.map(CheckKind::Tcp),
                None => None,
            },
            Protocol::Grpc => match &self.grpc {
                Some(g) if !g.disabled => Some(CheckKind::Grpc(g)),
                Some(_) => tcp.map(CheckKind::Tcp),
                None => None,
            },
            Protocol::Tcp => tcp.map(CheckKind::Tcp),
        }
    }
}

/// A mesh's MeshHealthChecks, indexed once; [`HealthCheckRules::for_dataplane`] per proxy.
#[derive(Debug, Clone, Default)]
pub struct HealthCheckRules {
    index: RulesIndex,
}

impl HealthCheckRules {
    /// `policies` are the mesh's MeshHealthChecks as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshHealthCheckSpec)]) -> HealthCheckRules {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    /// [`HealthCheckRules::new`] with the mesh's resources that `to` entries may name.
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshHealthCheckSpec)],
        catalog: Catalog,
    ) -> HealthCheckRules {
        HealthCheckRules {
            index: build_index(mesh, policies, catalog, Options::default()),
        }
    }

    /// The health check of each `networking.outbound`, in order (`None`: none applies).
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Option<HealthCheck>> {
        if self.index.is_empty() {
            return Vec::new();
        }
        self.index
            .resolve(dp)
            .outbounds
            .iter()
            .map(|o| health_check(&o.merged))
            .collect()
    }

    /// The health checks of route destinations on this proxy, one per `(service,
    /// by_resource)` in order: the service's legacy rule (an outbound addressed by
    /// `kuma.io/service` tags), or its MeshService's resource rule (`by_resource`: an
    /// outbound with a `backendRef`), as Kuma configures the clusters of a route's backends.
    pub fn for_destinations(
        &self,
        dp: &DataplaneView<'_>,
        destinations: &[(&str, bool)],
    ) -> Vec<Option<HealthCheck>> {
        if self.index.is_empty() {
            return vec![None; destinations.len()];
        }
        let matched = self.index.matched(dp);
        destinations
            .iter()
            .map(|(service, by_resource)| {
                let merged = if *by_resource {
                    matched.to_resource(&crate::policies::rules::ResourceRef {
                        kind: crate::policies::rules::ResourceKind::MeshService,
                        name: (*service).to_owned(),
                        section: None,
                    })
                } else {
                    matched.to_service(service)
                };
                health_check(&merged)
            })
            .collect()
    }

    /// What the engine found for one proxy, for `inspect` and `_explain`.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// The `_explain` view of one outbound's MeshHealthCheck: the contributing policies
/// (lowest priority first), the merged conf as written, and what the proxy enforces
/// (`null`: nothing).
pub fn explain_json(merged: &Merged) -> Value {
    crate::policies::rules::explain_json(merged, &health_check(merged))
}

fn health_check(merged: &Merged) -> Option<HealthCheck> {
    HealthCheck::from_conf(merged.merged::<Conf>().ok().flatten().as_ref())
}

impl RulesSource for MeshHealthCheckSpec {
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

    fn spec(yaml: &str) -> MeshHealthCheckSpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshHealthCheck(s) => s,
            other => panic!("{other:?}"),
        }
    }

    const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: backend}}\n    - {port: 10002, tags: {kuma.io/service: db}}\n";

    fn resolve(policies: &[(&str, &MeshHealthCheckSpec)]) -> Vec<Option<HealthCheck>> {
        let labels = Tags::new();
        let with_labels: Vec<(&str, &Tags, &MeshHealthCheckSpec)> =
            policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
        let rules = HealthCheckRules::new("default", &with_labels);
        let d = crate::policies::test_util::dataplane(WEB);
        rules.for_dataplane(&DataplaneView {
            mesh: "default",
            name: "web-1",
            labels: &labels,
            spec: &d,
        })
    }

    #[test]
    fn no_policy_no_checks() {
        assert!(resolve(&[]).iter().all(Option::is_none));
    }

    #[test]
    fn kumas_defaults_fill_unset_fields() {
        let p = spec(
            "type: MeshHealthCheck\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default:\n        http: {}\n",
        );
        let r = resolve(&[("p", &p)]);
        assert!(r[1].is_none(), "db is not targeted");
        let Some(hc) = r[0].clone() else {
            panic!("backend has a check")
        };
        assert_eq!(hc.interval_ms, 60_000);
        assert_eq!(hc.timeout_ms, 15_000);
        assert_eq!(hc.unhealthy_threshold, 5);
        assert_eq!(hc.healthy_threshold, 1);
        assert_eq!(hc.no_traffic_interval_ms, 60_000);
        assert!(hc.reuse_connection);
        assert!(!hc.fail_traffic_on_panic);
        assert_eq!(hc.healthy_panic_threshold, None);
        assert_eq!(
            (
                hc.initial_jitter_ms,
                hc.interval_jitter_ms,
                hc.interval_jitter_percent
            ),
            (0, 0, 0)
        );
        let http = hc.http.clone().unwrap_or_else(|| panic!("http"));
        assert_eq!(http.path, "/");
        assert_eq!(http.expected_statuses, vec![200]);
        assert!(!http.disabled);
        assert_eq!(hc.pick(Protocol::Http), Some(CheckKind::Http(&http)));
        assert_eq!(hc.pick(Protocol::Http2), Some(CheckKind::Http(&http)));
        assert_eq!(
            hc.pick(Protocol::Tcp),
            None,
            "no tcp check for a TCP destination"
        );
        assert_eq!(hc.pick(Protocol::Grpc), None);
    }

    #[test]
    fn policies_merge_field_by_field_and_round_trip() {
        let wide = spec(
            "type: MeshHealthCheck\nname: wide\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        interval: 10s\n        timeout: 2s\n        unhealthyThreshold: 3\n        healthyPanicThreshold: \"62.5\"\n        tcp: {send: ping, receive: [pong]}\n        http:\n          path: /health\n          expectedStatuses: [200, 204]\n          requestHeadersToAdd:\n            add: [{name: x-a, value: \"1,2\"}]\n            set: [{name: x-b, value: \"3\"}]\n",
        );
        let narrow = spec(
            "type: MeshHealthCheck\nname: narrow\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default:\n        interval: 1s\n        initialJitter: 500ms\n        intervalJitter: 100ms\n        intervalJitterPercent: 10\n        failTrafficOnPanic: true\n        noTrafficInterval: 5s\n        reuseConnection: false\n        http: {disabled: true}\n        grpc: {serviceName: backend.v1, authority: backend.mesh}\n",
        );
        let r = resolve(&[("wide", &wide), ("narrow", &narrow)]);
        let Some(backend) = r[0].clone() else {
            panic!("backend")
        };
        assert_eq!(backend.interval_ms, 1_000, "the narrower policy wins");
        assert_eq!(backend.timeout_ms, 2_000, "the wider one's field stays");
        assert_eq!(backend.unhealthy_threshold, 3);
        assert_eq!(backend.initial_jitter_ms, 500);
        assert_eq!(backend.interval_jitter_ms, 100);
        assert_eq!(backend.interval_jitter_percent, 10);
        assert!(backend.fail_traffic_on_panic);
        assert_eq!(backend.no_traffic_interval_ms, 5_000);
        assert!(!backend.reuse_connection);
        assert_eq!(backend.healthy_panic_threshold, Some(62.5));
        let http = backend.http.clone().unwrap_or_else(|| panic!("http"));
        assert!(http.disabled, "disabled merged in");
        assert_eq!(http.path, "/health");
        assert_eq!(http.expected_statuses, vec![200, 204]);
        let headers: Vec<(&str, &str, bool)> = http
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str(), h.append))
            .collect();
        assert_eq!(
            headers,
            [("x-a", "1", true), ("x-a", "2", true), ("x-b", "3", false)]
        );
        // HTTP disabled with TCP enabled: Kuma falls back to TCP; gRPC runs gRPC.
        let tcp = backend.tcp.clone().unwrap_or_else(|| panic!("tcp"));
        assert_eq!(tcp.send.as_deref(), Some("ping"));
        assert_eq!(tcp.receive, vec!["pong".to_string()]);
        assert_eq!(backend.pick(Protocol::Http), Some(CheckKind::Tcp(&tcp)));
        assert_eq!(backend.pick(Protocol::Tcp), Some(CheckKind::Tcp(&tcp)));
        let grpc = backend.grpc.clone().unwrap_or_else(|| panic!("grpc"));
        assert_eq!(grpc.service_name, "backend.v1");
        assert_eq!(grpc.authority, "backend.mesh");
        assert_eq!(backend.pick(Protocol::Grpc), Some(CheckKind::Grpc(&grpc)));
        let Some(db) = r[1].clone() else { panic!("db") };
        assert_eq!(db.interval_ms, 10_000);
        assert_eq!(db.pick(Protocol::Http).map(|_| ()), Some(()));
        // The proxy reads back what the control plane sent.
        let json = serde_json::to_value(&backend).unwrap_or_default();
        assert_eq!(json["intervalMs"], 1_000);
        let back: Option<HealthCheck> = serde_json::from_value(json).ok();
        assert_eq!(back, Some(backend));
    }

    #[test]
    fn disabled_kinds_without_fallback_pick_nothing() {
        let p = spec(
            "type: MeshHealthCheck\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        tcp: {disabled: true}\n        http: {disabled: true}\n        grpc: {disabled: true}\n",
        );
        let r = resolve(&[("p", &p)]);
        let hc = r[0].clone().unwrap_or_else(|| panic!("conf"));
        for proto in [
            Protocol::Tcp,
            Protocol::Http,
            Protocol::Http2,
            Protocol::Grpc,
        ] {
            assert_eq!(hc.pick(proto), None, "{proto:?}");
        }
    }
}
