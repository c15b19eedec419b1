//! The pure half of a round: from a mesh's inputs, which `reconcile.rs` reads from the store
//! (and resolves, and pairs with CA material), to every connected proxy's encoded config.
//! No I/O and no clock, so it is tested here, in-process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aerie_core::policies::meshaccesslog::{AccessLogRules, MeshAccessLogSpec};
use aerie_core::policies::meshcircuitbreaker::{CircuitBreakerRules, MeshCircuitBreakerSpec};
use aerie_core::policies::meshfaultinjection::{FaultInjectionRules, MeshFaultInjectionSpec};
use aerie_core::policies::meshhealthcheck::{HealthCheckRules, MeshHealthCheckSpec};
use aerie_core::policies::meshhttproute::{HttpRouteRules, MeshHttpRouteSpec};
use aerie_core::policies::meshloadbalancingstrategy::{
    LoadBalancingRules, MeshLoadBalancingStrategySpec,
};
use aerie_core::policies::meshmetric::{MeshMetricSpec, MetricRules};
use aerie_core::policies::meshratelimit::{MeshRateLimitSpec, RateLimitRules};
use aerie_core::policies::meshretry::{MeshRetrySpec, RetryRules};
use aerie_core::policies::meshtcproute::{MeshTcpRouteSpec, TcpRouteRules};
use aerie_core::policies::meshtimeout::{MeshTimeoutSpec, TimeoutRules};
use aerie_core::policies::meshtrace::{MeshTraceSpec, TraceRules};
use aerie_core::policies::meshtrafficpermission::{
    MeshServiceCatalog, MeshTrafficPermissionSpec, PolicyIndex,
};
use aerie_core::policies::rules::{Catalog, CatalogResource};
use aerie_core::proxy_config::{IngressRoute, MeshView};
use aerie_core::spec::{AvailableService, DataplaneSpec, MeshSpec, Tags, ZoneIngressSpec};
use aerie_core::{Resource, Spec};
use envoy_types::pb::google::protobuf::Any;

/// The policy resources of one mesh, as stored.
#[derive(Debug, Default, Clone)]
pub struct PolicyInputs {
    pub permissions: Vec<Resource>,
    pub services: Vec<Resource>,
    pub timeouts: Vec<Resource>,
    pub retries: Vec<Resource>,
    pub circuit_breakers: Vec<Resource>,
    pub health_checks: Vec<Resource>,
    pub fault_injections: Vec<Resource>,
    pub rate_limits: Vec<Resource>,
    pub load_balancing: Vec<Resource>,
    /// The zone this control plane serves (MeshLoadBalancingStrategy failover rules).
    pub zone: String,
    pub http_routes: Vec<Resource>,
    pub tcp_routes: Vec<Resource>,
    pub access_logs: Vec<Resource>,
    pub metrics: Vec<Resource>,
    pub traces: Vec<Resource>,
}

impl PolicyInputs {
    /// Whether proxies' configs depend on endpoints beyond their own outbounds (route
    /// backends carry endpoints; affinity tags need the endpoints' tags in the outbound
    /// halves), so that a round only policies caused must still be a full one.
    pub fn needs_endpoints(&self) -> bool {
        !self.http_routes.is_empty()
            || !self.tcp_routes.is_empty()
            || self.load_balancing.iter().any(|r| match &r.spec {
                Spec::MeshLoadBalancingStrategy(s) => s.has_affinity_tags(),
                _ => false,
            })
    }
}

/// A mesh's policies, indexed once per round and shared by all of its proxies.
pub struct MeshPolicies {
    pub permissions: PolicyIndex,
    pub timeouts: TimeoutRules,
    pub retries: RetryRules,
    pub circuit_breakers: CircuitBreakerRules,
    pub health_checks: HealthCheckRules,
    pub fault_injections: FaultInjectionRules,
    pub rate_limits: RateLimitRules,
    pub load_balancing: LoadBalancingRules,
    pub http_routes: HttpRouteRules,
    pub tcp_routes: TcpRouteRules,
    pub access_logs: AccessLogRules,
    pub metrics: MetricRules,
    pub traces: TraceRules,
    /// The zone this control plane serves (`%KUMA_ZONE%` in access logs).
    pub zone: String,
}

impl MeshPolicies {
    pub fn new(mesh: &str, inputs: &PolicyInputs) -> MeshPolicies {
        let catalog = service_catalog(inputs.services.iter().chain(&inputs.http_routes));
        MeshPolicies {
            permissions: policy_index(&inputs.permissions, &inputs.services),
            timeouts: timeout_rules(mesh, &inputs.timeouts, &catalog),
            retries: retry_rules(mesh, &inputs.retries, &catalog),
            circuit_breakers: circuit_breaker_rules(mesh, &inputs.circuit_breakers, &catalog),
            health_checks: health_check_rules(mesh, &inputs.health_checks, &catalog),
            fault_injections: fault_injection_rules(mesh, &inputs.fault_injections, &catalog),
            rate_limits: rate_limit_rules(mesh, &inputs.rate_limits, &catalog),
            load_balancing: load_balancing_rules(
                mesh,
                &inputs.zone,
                &inputs.load_balancing,
                &catalog,
            ),
            http_routes: http_route_rules(mesh, &inputs.http_routes, &catalog),
            tcp_routes: tcp_route_rules(mesh, &inputs.tcp_routes, &catalog),
            access_logs: access_log_rules(mesh, &inputs.access_logs, &catalog),
            metrics: metric_rules(mesh, &inputs.metrics, &catalog),
            traces: trace_rules(mesh, &inputs.traces, &catalog),
            zone: inputs.zone.clone(),
        }
    }
}

/// One mesh as a round sees it.
pub struct MeshInputs<'a> {
    pub mesh: &'a str,
    pub spec: &'a MeshSpec,
    pub policies: &'a MeshPolicies,
    /// Every Dataplane of the mesh, host names already resolved.
    pub dataplanes: &'a [Resource],
}

/// An outbound half, encoded once and shared by every proxy declaring the same outbounds.
pub type SharedHalf = (Arc<Any>, String);

/// A proxy's config: the policy half (inbounds, and the policies of its outbounds) and the
/// outbound half (endpoints), each with its content version.
#[derive(Debug, Clone)]
pub struct Halves {
    pub config: Any,
    pub version: String,
    pub outbounds: Arc<Any>,
    pub outbounds_version: String,
}

impl MeshInputs<'_> {
    fn specs(&self) -> impl Iterator<Item = (&str, &Tags, &DataplaneSpec)> {
        self.dataplanes.iter().filter_map(|r| match &r.spec {
            Spec::Dataplane(d) => Some((r.meta.name.as_str(), &r.meta.labels, d)),
            _ => None,
        })
    }

    fn find(&self, name: &str) -> Option<(&Tags, &DataplaneSpec)> {
        self.specs()
            .find(|(n, _, _)| *n == name)
            .map(|(_, labels, spec)| (labels, spec))
    }

    fn by_name(&self) -> HashMap<&str, (&Tags, &DataplaneSpec)> {
        self.specs().map(|(n, l, d)| (n, (l, d))).collect()
    }
}

/// A full round: both halves of every proxy in `connected` that has a Dataplane. Endpoints
/// are the `online` proxies' inbounds, plus the services of other zones behind
/// `remote_ingresses`. Outbound halves depend only on the declared outbounds: each distinct
/// declaration is computed and encoded once.
pub fn build_full(
    inputs: &MeshInputs<'_>,
    online: &dyn Fn(&str) -> bool,
    remote_ingresses: &[(&str, &ZoneIngressSpec)],
    connected: &[String],
) -> BTreeMap<String, Halves> {
    let specs: Vec<(&str, &DataplaneSpec)> = inputs.specs().map(|(n, _, d)| (n, d)).collect();
    let mut view = MeshView::new(
        inputs.mesh,
        inputs.spec,
        &inputs.policies.permissions,
        &specs,
        online,
    )
    .with_timeouts(&inputs.policies.timeouts)
    .with_retries(&inputs.policies.retries)
    .with_circuit_breakers(&inputs.policies.circuit_breakers)
    .with_health_checks(&inputs.policies.health_checks)
    .with_fault_injections(&inputs.policies.fault_injections)
    .with_rate_limits(&inputs.policies.rate_limits)
    .with_access_logs(&inputs.policies.access_logs, &inputs.policies.zone)
    .with_metrics(&inputs.policies.metrics)
    .with_tracing(&inputs.policies.traces)
    .with_load_balancing(&inputs.policies.load_balancing)
    .with_routes(&inputs.policies.http_routes, &inputs.policies.tcp_routes);
    view.add_remote_ingresses(remote_ingresses);
    let by_name = inputs.by_name();
    let mut interned: HashMap<Vec<u8>, SharedHalf> = HashMap::new();
    let mut out = BTreeMap::new();
    for name in connected {
        let Some((labels, spec)) = by_name.get(name.as_str()) else {
            continue;
        };
        let config = aerie_xds::encode_inbound_half(&view.inbound_config(name, labels, spec));
        let key = spec
            .networking
            .as_ref()
            .and_then(|n| serde_json::to_vec(&n.outbound).ok())
            .unwrap_or_default();
        let (outbounds, outbounds_version) = interned
            .entry(key)
            .or_insert_with(|| {
                let any = aerie_xds::encode_outbound_half(&view.outbound_config(spec));
                let version = content_version(&any.value);
                (Arc::new(any), version)
            })
            .clone();
        out.insert(
            name.clone(),
            Halves {
                version: content_version(&config.value),
                config,
                outbounds,
                outbounds_version,
            },
        );
    }
    out
}

/// A round only policies caused: new policy halves, each proxy's outbound half taken from
/// `previous` (the last full round). A proxy without one is skipped (it needs a full round).
pub fn build_policies(
    inputs: &MeshInputs<'_>,
    connected: &[String],
    previous: &HashMap<String, SharedHalf>,
) -> BTreeMap<String, Halves> {
    let view = MeshView::for_policies(inputs.mesh, inputs.spec, &inputs.policies.permissions)
        .with_timeouts(&inputs.policies.timeouts)
        .with_retries(&inputs.policies.retries)
        .with_circuit_breakers(&inputs.policies.circuit_breakers)
        .with_health_checks(&inputs.policies.health_checks)
        .with_fault_injections(&inputs.policies.fault_injections)
        .with_rate_limits(&inputs.policies.rate_limits)
        .with_access_logs(&inputs.policies.access_logs, &inputs.policies.zone)
        .with_metrics(&inputs.policies.metrics)
        .with_tracing(&inputs.policies.traces)
        .with_tracing(&inputs.policies.traces)
        .with_load_balancing(&inputs.policies.load_balancing);
    let mut out = BTreeMap::new();
    for name in connected {
        let (Some((labels, spec)), Some((outbounds, outbounds_version))) =
            (inputs.find(name), previous.get(name))
        else {
            continue;
        };
        let config = aerie_xds::encode_inbound_half(&view.inbound_config(name, labels, spec));
        out.insert(
            name.clone(),
            Halves {
                version: content_version(&config.value),
                config,
                outbounds: outbounds.clone(),
                outbounds_version: outbounds_version.clone(),
            },
        );
    }
    out
}

/// What this zone's ingresses offer, over every mesh (each with its Dataplanes and the names
/// of its online proxies): the routes (server name -> live local
/// instances, sorted by server name) and the services listed in each ZoneIngress.
pub fn ingress_offer<'a>(
    meshes: impl IntoIterator<Item = (&'a str, &'a MeshSpec, &'a [Resource], &'a HashSet<String>)>,
) -> (Vec<IngressRoute>, Vec<AvailableService>) {
    let empty_index = policy_index(&[], &[]);
    let mut routes = Vec::new();
    let mut available = Vec::new();
    for (mesh, spec, dataplanes, online) in meshes {
        let specs: Vec<(&str, &DataplaneSpec)> = dataplanes
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::Dataplane(d) => Some((r.name(), d)),
                _ => None,
            })
            .collect();
        let view = MeshView::new(mesh, spec, &empty_index, &specs, &|name: &str| {
            online.contains(name)
        });
        routes.extend(view.ingress_routes());
        available.extend(view.available_services());
    }
    routes.sort_by(|a, b| a.sni.cmp(&b.sni));
    (routes, available)
}

/// A mesh's MeshTrafficPermission index, from its stored permissions and MeshServices.
pub fn policy_index(mtps: &[Resource], services: &[Resource]) -> PolicyIndex {
    let policies: Vec<(String, &MeshTrafficPermissionSpec)> = mtps
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshTrafficPermission(s) => Some((r.meta.name.clone(), s)),
            _ => None,
        })
        .collect();
    let catalog = MeshServiceCatalog::new(
        services
            .iter()
            .map(|s| (s.meta.name.clone(), s.meta.labels.clone())),
    );
    PolicyIndex::with_mesh_services(&policies, &catalog)
}

/// The resources of a mesh that policies' `to` entries and `backendRef` outbounds may name:
/// its MeshServices, oldest first (Kuma takes the oldest of several label matches).
pub fn service_catalog<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Catalog {
    let mut found: Vec<(&Resource, CatalogResource)> = resources
        .into_iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshService(s) => Some((
                r,
                CatalogResource::mesh_service(r.name(), &r.meta.labels, s),
            )),
            Spec::MeshHTTPRoute(s) => Some((
                r,
                CatalogResource::mesh_http_route(r.name(), &r.meta.labels, s.target_ref.as_ref()),
            )),
            _ => None,
        })
        .collect();
    found.sort_by(|(a, _), (b, _)| {
        (a.meta.creation_time.as_deref(), a.name())
            .cmp(&(b.meta.creation_time.as_deref(), b.name()))
    });
    Catalog::new(found.into_iter().map(|(_, c)| c).collect())
}

/// A mesh's MeshTimeouts, indexed for every proxy's config.
pub fn timeout_rules(mesh: &str, timeouts: &[Resource], catalog: &Catalog) -> TimeoutRules {
    let policies: Vec<(&str, &Tags, &MeshTimeoutSpec)> = timeouts
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshTimeout(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    TimeoutRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshRetries, indexed for every proxy's config.
pub fn retry_rules(mesh: &str, retries: &[Resource], catalog: &Catalog) -> RetryRules {
    let policies: Vec<(&str, &Tags, &MeshRetrySpec)> = retries
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshRetry(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    RetryRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshCircuitBreakers, indexed for every proxy's config.
pub fn circuit_breaker_rules(
    mesh: &str,
    breakers: &[Resource],
    catalog: &Catalog,
) -> CircuitBreakerRules {
    let policies: Vec<(&str, &Tags, &MeshCircuitBreakerSpec)> = breakers
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshCircuitBreaker(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    CircuitBreakerRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshLoadBalancingStrategies, indexed for every proxy's config (of `zone`).
pub fn load_balancing_rules(
    mesh: &str,
    zone: &str,
    strategies: &[Resource],
    catalog: &Catalog,
) -> LoadBalancingRules {
    let policies: Vec<(&str, &Tags, &MeshLoadBalancingStrategySpec)> = strategies
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshLoadBalancingStrategy(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    LoadBalancingRules::with_catalog(mesh, zone, &policies, catalog.clone())
}

/// A mesh's MeshHealthChecks, indexed for every proxy's config.
pub fn health_check_rules(mesh: &str, checks: &[Resource], catalog: &Catalog) -> HealthCheckRules {
    let policies: Vec<(&str, &Tags, &MeshHealthCheckSpec)> = checks
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshHealthCheck(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    HealthCheckRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshFaultInjections, indexed for every proxy's config.
pub fn fault_injection_rules(
    mesh: &str,
    faults: &[Resource],
    catalog: &Catalog,
) -> FaultInjectionRules {
    let policies: Vec<(&str, &Tags, &MeshFaultInjectionSpec)> = faults
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshFaultInjection(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    FaultInjectionRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshMetrics, indexed for every proxy's config.
pub fn metric_rules(mesh: &str, metrics: &[Resource], catalog: &Catalog) -> MetricRules {
    let policies: Vec<(&str, &Tags, &MeshMetricSpec)> = metrics
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshMetric(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    MetricRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshTraces, indexed for every proxy's config.
pub fn trace_rules(mesh: &str, traces: &[Resource], catalog: &Catalog) -> TraceRules {
    let policies: Vec<(&str, &Tags, &MeshTraceSpec)> = traces
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshTrace(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    TraceRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshAccessLogs, indexed for every proxy's config.
pub fn access_log_rules(mesh: &str, logs: &[Resource], catalog: &Catalog) -> AccessLogRules {
    let policies: Vec<(&str, &Tags, &MeshAccessLogSpec)> = logs
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshAccessLog(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    AccessLogRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshRateLimits, indexed for every proxy's config.
pub fn rate_limit_rules(mesh: &str, limits: &[Resource], catalog: &Catalog) -> RateLimitRules {
    let policies: Vec<(&str, &Tags, &MeshRateLimitSpec)> = limits
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshRateLimit(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    RateLimitRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshHTTPRoutes, indexed for every proxy's outbounds.
pub fn http_route_rules(mesh: &str, routes: &[Resource], catalog: &Catalog) -> HttpRouteRules {
    let policies: Vec<(&str, &Tags, &MeshHttpRouteSpec)> = routes
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshHTTPRoute(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    HttpRouteRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A mesh's MeshTCPRoutes, indexed for every proxy's outbounds.
pub fn tcp_route_rules(mesh: &str, routes: &[Resource], catalog: &Catalog) -> TcpRouteRules {
    let policies: Vec<(&str, &Tags, &MeshTcpRouteSpec)> = routes
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshTCPRoute(s) => Some((r.meta.name.as_str(), &r.meta.labels, s)),
            _ => None,
        })
        .collect();
    TcpRouteRules::with_catalog(mesh, &policies, catalog.clone())
}

/// A short content hash of an encoded config: equal configs have equal versions on every
/// replica, and an unchanged config is not pushed again.
pub fn content_version(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use aerie_core::format::{parse_yaml_value, resource_from_value};
    use aerie_core::proxy_config::ProxyConfig;

    use super::*;

    fn resource(yaml: &str) -> Resource {
        resource_from_value(&parse_yaml_value(yaml).unwrap()).unwrap()
    }

    fn dataplane(name: &str, ip: &str, service: &str, outbound_to: Option<&str>) -> Resource {
        let outbound = outbound_to.map_or(String::new(), |to| {
            format!("  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: {to}\n")
        });
        resource(&format!(
            "type: Dataplane\nname: {name}\nmesh: default\nnetworking:\n  address: {ip}\n  inbound:\n  - port: 9000\n    servicePort: 8080\n    tags:\n      kuma.io/service: {service}\n{outbound}"
        ))
    }

    fn mesh_spec() -> MeshSpec {
        match resource(
            "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n",
        )
        .spec
        {
            Spec::Mesh(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn policies() -> PolicyInputs {
        PolicyInputs {
            permissions: vec![resource(
                "type: MeshTrafficPermission\nname: web-to-api\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: api\n  from:\n  - targetRef:\n      kind: MeshService\n      name: web\n    default:\n      action: Allow\n",
            )],
            services: vec![],
            timeouts: vec![resource(
                "type: MeshTimeout\nname: slow-api\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: api\n    default:\n      http:\n        requestTimeout: 90s\n",
            )],
            retries: vec![],
            circuit_breakers: vec![],
            health_checks: vec![],
            fault_injections: vec![],
            rate_limits: vec![],
            load_balancing: vec![],
            zone: "default".into(),
            http_routes: vec![],
            tcp_routes: vec![],
            access_logs: vec![],
            metrics: vec![],
            traces: vec![],
        }
    }

    fn decode(h: &Halves) -> ProxyConfig {
        let inbound = aerie_xds::decode_proxy_config(&h.config).unwrap();
        let outbound = aerie_xds::decode_proxy_config(&h.outbounds).unwrap();
        aerie_xds::merge_proxy_config(&inbound, &outbound)
    }

    /// The request timeout the policy half sets on the outbound at port 10001.
    fn outbound_request_timeout(cfg: &ProxyConfig) -> Option<u64> {
        cfg.outbound_policies
            .iter()
            .find(|p| p.port == 10001)
            .map(|p| p.timeouts.request_ms)
    }

    fn names(ns: &[&str]) -> Vec<String> {
        ns.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_full_round_gives_each_connected_proxy_its_policies_and_live_endpoints() {
        let dps = vec![
            dataplane("api-1", "127.0.0.2", "api", None),
            dataplane("api-2", "127.0.0.3", "api", None),
            dataplane("web-1", "127.0.0.4", "web", Some("api")),
            dataplane("web-2", "127.0.0.5", "web", Some("api")),
        ];
        let spec = mesh_spec();
        let policies = MeshPolicies::new("default", &policies());
        let inputs = MeshInputs {
            mesh: "default",
            spec: &spec,
            policies: &policies,
            dataplanes: &dps,
        };
        // api-2 is offline: not an endpoint. "ghost" has no Dataplane: no config.
        let online = |n: &str| n != "api-2";
        let built = build_full(
            &inputs,
            &online,
            &[],
            &names(&["api-1", "web-1", "web-2", "ghost"]),
        );
        assert_eq!(
            built.keys().collect::<Vec<_>>(),
            ["api-1", "web-1", "web-2"]
        );

        let api = decode(&built["api-1"]);
        assert_eq!(api.inbounds.len(), 1);
        assert_eq!(api.inbounds[0].authz.policies, ["web-to-api"]);
        assert!(api.inbounds[0].authz.services.contains_key("web"));
        assert!(api.outbounds.is_empty());

        let web = decode(&built["web-1"]);
        assert!(
            web.inbounds[0].authz.services.is_empty(),
            "nothing allows callers to web"
        );
        assert_eq!(web.outbounds.len(), 1);
        let endpoints: Vec<&str> = web.outbounds[0]
            .endpoints
            .iter()
            .map(|e| e.dataplane.as_str())
            .collect();
        assert_eq!(endpoints, ["api-1"]);
        assert_eq!(outbound_request_timeout(&web), Some(90_000));

        // Proxies declaring the same outbounds share one encoded half.
        assert!(Arc::ptr_eq(
            &built["web-1"].outbounds,
            &built["web-2"].outbounds
        ));
        assert_ne!(built["web-1"].version, built["web-2"].version);
        // Versions are content hashes: the same inputs give the same versions.
        let again = build_full(&inputs, &online, &[], &names(&["web-1"]));
        assert_eq!(again["web-1"].version, built["web-1"].version);
        assert_eq!(
            again["web-1"].outbounds_version,
            built["web-1"].outbounds_version
        );
    }

    #[test]
    fn a_policy_round_keeps_the_outbound_halves_and_skips_proxies_without_one() {
        let dps = vec![
            dataplane("api-1", "127.0.0.2", "api", None),
            dataplane("web-1", "127.0.0.4", "web", Some("api")),
        ];
        let spec = mesh_spec();
        let before = MeshPolicies::new("default", &policies());
        let inputs = MeshInputs {
            mesh: "default",
            spec: &spec,
            policies: &before,
            dataplanes: &dps,
        };
        let full = build_full(&inputs, &|_: &str| true, &[], &names(&["api-1", "web-1"]));
        let previous: HashMap<String, SharedHalf> = full
            .iter()
            .filter(|(n, _)| *n == "web-1")
            .map(|(n, h)| {
                (
                    n.clone(),
                    (h.outbounds.clone(), h.outbounds_version.clone()),
                )
            })
            .collect();

        // The permission goes: api-1's policy half changes, web-1's outbound half is reused.
        let mut without = policies();
        without.permissions.clear();
        let after = MeshPolicies::new("default", &without);
        let inputs = MeshInputs {
            policies: &after,
            ..inputs
        };
        let round = build_policies(&inputs, &names(&["api-1", "web-1"]), &previous);
        assert_eq!(
            round.keys().collect::<Vec<_>>(),
            ["web-1"],
            "api-1 has no outbound half yet"
        );
        assert!(Arc::ptr_eq(
            &round["web-1"].outbounds,
            &full["web-1"].outbounds
        ));
        let web = decode(&round["web-1"]);
        assert_eq!(web.outbounds[0].endpoints.len(), 1);
        assert_eq!(outbound_request_timeout(&web), Some(90_000));

        let previous: HashMap<String, SharedHalf> = full
            .iter()
            .map(|(n, h)| {
                (
                    n.clone(),
                    (h.outbounds.clone(), h.outbounds_version.clone()),
                )
            })
            .collect();
        let round = build_policies(&inputs, &names(&["api-1"]), &previous);
        let api = decode(&round["api-1"]);
        assert!(api.inbounds[0].authz.services.is_empty());
        assert_ne!(round["api-1"].version, full["api-1"].version);
    }

    #[test]
    fn policies_reach_a_backend_ref_outbound_through_the_mesh_service_labels() {
        let web = resource(
            "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 127.0.0.4\n  inbound:\n  - port: 9000\n    servicePort: 8080\n    tags:\n      kuma.io/service: web\n  outbound:\n  - port: 10002\n    backendRef:\n      kind: MeshService\n      name: payments\n      port: 80\n",
        );
        let dps = vec![web];
        let spec = mesh_spec();
        let mut inputs = PolicyInputs {
            services: vec![resource(
                "type: MeshService\nname: payments\nmesh: default\nlabels:\n  team: money\nspec:\n  selector:\n    dataplaneTags: {kuma.io/service: payments}\n  ports:\n    - {port: 80, targetPort: 8080, appProtocol: http}\n",
            )],
            timeouts: vec![resource(
                "type: MeshTimeout\nname: money-is-slow\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n  - targetRef:\n      kind: MeshService\n      labels: {team: money}\n    default:\n      http: {requestTimeout: 42s}\n",
            )],
            ..PolicyInputs::default()
        };
        let timeout_at = |inputs: &PolicyInputs| {
            let policies = MeshPolicies::new("default", inputs);
            let mesh = MeshInputs {
                mesh: "default",
                spec: &spec,
                policies: &policies,
                dataplanes: &dps,
            };
            let built = build_full(&mesh, &|_: &str| true, &[], &names(&["web-1"]));
            decode(&built["web-1"])
                .outbound_policies
                .iter()
                .find(|p| p.port == 10002)
                .map(|p| p.timeouts.request_ms)
        };
        assert_eq!(timeout_at(&inputs), Some(42_000));
        // Without the MeshService its labels are unknown: the policy selects nothing.
        inputs.services.clear();
        assert_ne!(timeout_at(&inputs), Some(42_000));
    }

    #[test]
    fn faults_and_rate_limits_travel_with_the_selected_inbounds_and_round_trip() {
        let dps = vec![
            dataplane("api-1", "127.0.0.2", "api", None),
            dataplane("web-1", "127.0.0.4", "web", Some("api")),
        ];
        let spec = mesh_spec();
        let inputs = PolicyInputs {
            fault_injections: vec![resource(
                "type: MeshFaultInjection\nname: chaos\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: api}\n  from:\n  - targetRef: {kind: MeshService, name: web}\n    default:\n      http:\n      - abort: {httpStatus: 503, percentage: '12.5'}\n",
            )],
            rate_limits: vec![resource(
                "type: MeshRateLimit\nname: rl\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: api}\n  from:\n  - targetRef: {kind: Mesh}\n    default:\n      local:\n        tcp: {connectionRate: {num: 5, interval: 1s}}\n",
            )],
            ..PolicyInputs::default()
        };
        let policies = MeshPolicies::new("default", &inputs);
        let mesh = MeshInputs {
            mesh: "default",
            spec: &spec,
            policies: &policies,
            dataplanes: &dps,
        };
        let built = build_full(&mesh, &|_: &str| true, &[], &names(&["api-1", "web-1"]));
        let api = decode(&built["api-1"]);
        let faults = api.inbounds[0]
            .fault_injection
            .as_ref()
            .unwrap_or_else(|| panic!("api's inbound has faults"));
        let abort = faults.entries[0].faults[0].abort.unwrap();
        assert_eq!((abort.status, abort.per_million), (503, 125_000));
        let limit = api.inbounds[0].rate_limit.as_ref().unwrap();
        assert_eq!(limit.tcp.map(|r| (r.num, r.interval_ms)), Some((5, 1000)));
        let web = decode(&built["web-1"]);
        assert!(web.inbounds[0].fault_injection.is_none() && web.inbounds[0].rate_limit.is_none());
    }

    #[test]
    fn a_load_balancing_strategy_travels_with_the_selected_outbound_only() {
        let dps = vec![
            dataplane("api-1", "127.0.0.2", "api", None),
            dataplane("web-1", "127.0.0.4", "web", Some("api")),
        ];
        let spec = mesh_spec();
        let mut inputs = PolicyInputs {
            load_balancing: vec![resource(
                "type: MeshLoadBalancingStrategy\nname: sticky\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: web}\n  to:\n  - targetRef: {kind: MeshService, name: api}\n    default:\n      loadBalancer: {type: RingHash}\n      hashPolicies: [{type: Header, header: {name: x-user}}]\n",
            )],
            zone: "zone-1".into(),
            ..PolicyInputs::default()
        };
        let build = |inputs: &PolicyInputs| {
            let policies = MeshPolicies::new("default", inputs);
            let mesh = MeshInputs {
                mesh: "default",
                spec: &spec,
                policies: &policies,
                dataplanes: &dps,
            };
            build_full(&mesh, &|_: &str| true, &[], &names(&["web-1"]))
        };
        let built = build(&inputs);
        let web = decode(&built["web-1"]);
        let lb = web.outbound_policies[0]
            .load_balancer
            .as_ref()
            .unwrap_or_else(|| panic!("web's outbound has a balancer"));
        assert!(matches!(
            lb.algorithm,
            aerie_core::policies::meshloadbalancingstrategy::Algorithm::RingHash { .. }
        ));
        assert_eq!(lb.hash_policies.len(), 1);
        // Without it nothing about balancing is sent.
        inputs.load_balancing.clear();
        let built = build(&inputs);
        let plain = String::from_utf8_lossy(&built["web-1"].config.value).into_owned();
        assert!(!plain.contains("loadBalancer"), "{plain}");
        let outbounds = String::from_utf8_lossy(&built["web-1"].outbounds.value).into_owned();
        assert!(!outbounds.contains("zone"), "{outbounds}");
    }

    #[test]
    fn the_ingress_offers_live_local_services_of_every_mesh() {
        let dps = vec![
            dataplane("api-1", "127.0.0.2", "api", None),
            dataplane("web-1", "127.0.0.4", "web", None),
        ];
        let spec = mesh_spec();
        let online: HashSet<String> = names(&["api-1"]).into_iter().collect();
        let (routes, available) = ingress_offer([("default", &spec, dps.as_slice(), &online)]);
        let snis: Vec<&str> = routes.iter().map(|r| r.sni.as_str()).collect();
        assert_eq!(snis.len(), 1, "{snis:?}");
        assert!(snis[0].starts_with("api"), "{snis:?}");
        assert_eq!(available.len(), 1);
        let (routes, available) =
            ingress_offer([("default", &spec, dps.as_slice(), &HashSet::new())]);
        assert!(routes.is_empty() && available.is_empty());
    }
}
