//! What a proxy (`kuma-dp`) needs to serve traffic, as the control plane computes it and
//! sends it over the CP<->DP stream: its inbounds with their resolved authorization, its
//! outbounds with the live endpoints of each destination, and the mesh's mTLS mode.
//! Certificates travel separately (they rotate on their own clock).
//!
//! Pure data, serde-serialisable, so the control plane, the proxy and the tests share one
//! definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policies::meshaccesslog::{AccessLog, AccessLogRules, LogValues};
use crate::policies::meshcircuitbreaker::{CircuitBreaker, CircuitBreakerRules};
use crate::policies::meshfaultinjection::{FaultInjectionRules, InboundFaults};
use crate::policies::meshhealthcheck::{HealthCheck, HealthCheckRules};
use crate::policies::meshhttproute::HttpRouteRules;
use crate::policies::meshhttproute::table::{HttpRoutes, TcpRoutes};
use crate::policies::meshloadbalancingstrategy::LoadBalancingRules;
use crate::policies::meshloadbalancingstrategy::resolve::LoadBalancer;
use crate::policies::meshmetric::{MetricRules, ProxyMetrics};
use crate::policies::meshratelimit::{InboundRateLimit, RateLimitRules};
use crate::policies::meshretry::{Retry, RetryRules};
use crate::policies::meshtcproute::TcpRouteRules;
use crate::policies::meshtimeout::{TimeoutRules, Timeouts};
use crate::policies::meshtrace::{ProxyTracing, TraceRules};
use crate::policies::meshtrafficpermission::InboundAuthz;

/// How the mesh secures traffic between proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum MtlsMode {
    /// mTLS off: plaintext, no identities, no authorization.
    #[default]
    Off,
    /// Inbounds accept only mTLS with a client certificate from the mesh.
    Strict,
    /// Inbounds also accept plaintext (which carries no identity).
    Permissive,
}

/// How the proxy handles a port's traffic (`kuma.io/protocol`; `tcp` when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
    Http2,
    Grpc,
}

impl Protocol {
    /// Reads a `kuma.io/protocol` tag value; `kafka` and unknown values are handled as TCP.
    pub fn from_tag(value: Option<&str>) -> Protocol {
        match value {
            Some("http") => Protocol::Http,
            Some("http2") => Protocol::Http2,
            Some("grpc") => Protocol::Grpc,
            _ => Protocol::Tcp,
        }
    }

    /// The `kuma.io/protocol` value.
    pub fn tag(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
        }
    }

    /// Whether the proxy terminates HTTP (and can answer a denied request with 403).
    pub fn is_http(self) -> bool {
        !matches!(self, Protocol::Tcp)
    }
}

/// The proxy's whole configuration at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    pub mesh: String,
    /// The Dataplane's name.
    pub name: String,
    pub mtls: MtlsMode,
    pub inbounds: Vec<InboundConfig>,
    pub outbounds: Vec<OutboundConfig>,
    /// What policies set on each outbound, by listener address. Part of the inbound half
    /// (it changes with policies, not with endpoints); the proxy copies each entry onto the
    /// outbound listening there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_policies: Vec<OutboundPolicies>,
    /// MeshMetric: the proxy's Prometheus endpoints and what they serve; none: no
    /// MeshMetric with a Prometheus backend selects the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ProxyMetrics>,
    /// MeshTrace: where the proxy sends spans, how many requests it traces and their tags;
    /// none: no MeshTrace with a backend kuma-dp can send to selects the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<ProxyTracing>,
}

/// The policies' say on one outbound listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundPolicies {
    pub address: String,
    pub port: u16,
    /// MeshTimeout (`to`).
    pub timeouts: Timeouts,
    /// MeshRetry (`to`); none when absent.
    #[serde(default, skip_serializing_if = "Retry::is_default")]
    pub retry: Retry,
    /// MeshCircuitBreaker (`to`); Envoy's defaults when absent.
    #[serde(default, skip_serializing_if = "CircuitBreaker::is_default")]
    pub circuit_breaker: CircuitBreaker,
    /// MeshLoadBalancingStrategy (`to`); round robin over every endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// MeshHealthCheck (`to`); none: no active health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// MeshHTTPRoute (or, on an HTTP outbound without one, MeshTCPRoute as a catch-all):
    /// the route table; none: every request goes to the outbound's own destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_routes: Option<HttpRoutes>,
    /// MeshTCPRoute on a TCP outbound: where connections go; none: the outbound's own
    /// destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<TcpRoutes>,
    /// MeshAccessLog (`to`); none: nothing logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

/// One `networking.inbound`: where the proxy listens, where the application is, and who may
/// call it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundConfig {
    /// The inbound's `name`, or its port as text.
    pub name: String,
    /// Where the proxy listens (IP address).
    pub address: String,
    pub port: u16,
    /// Where the application listens.
    pub service_address: String,
    pub service_port: u16,
    /// `kuma.io/service`.
    pub service: String,
    pub protocol: Protocol,
    pub tags: BTreeMap<String, String>,
    /// `false` for `NotReady` inbounds: the proxy still serves them, but outbounds elsewhere
    /// skip this endpoint.
    pub ready: bool,
    pub authz: InboundAuthz,
    /// MeshTimeout (`from`/`rules`); Kuma's defaults when absent.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// MeshFaultInjection (`from`/`rules`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_injection: Option<InboundFaults>,
    /// MeshRateLimit (`from`/`rules`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<InboundRateLimit>,
    /// MeshAccessLog (`from`/`rules`); none: nothing logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

/// One `networking.outbound`: a local port the application calls, balanced over the
/// destination's live endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundConfig {
    /// Where the proxy listens for the application (default 127.0.0.1).
    pub address: String,
    pub port: u16,
    /// The destination service.
    pub service: String,
    pub protocol: Protocol,
    /// The identity the destination must present: `spiffe://<mesh>/<service>`.
    pub spiffe_id: String,
    /// The TLS server name to send ([`crate::multizone::service_sni`]): zone ingresses
    /// route on it.
    #[serde(default)]
    pub sni: String,
    /// Online, ready endpoints, in a stable order.
    pub endpoints: Vec<Endpoint>,
    /// MeshTimeout (`to`): filled in by the proxy from [`ProxyConfig::outbound_policies`];
    /// Kuma's defaults when absent.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// MeshRetry (`to`), filled in the same way; no retries when absent.
    #[serde(default, skip_serializing_if = "Retry::is_default")]
    pub retry: Retry,
    /// MeshCircuitBreaker (`to`), filled in the same way; Envoy's defaults when absent.
    #[serde(default, skip_serializing_if = "CircuitBreaker::is_default")]
    pub circuit_breaker: CircuitBreaker,
    /// MeshLoadBalancingStrategy (`to`), filled in the same way; round robin when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// MeshHealthCheck (`to`), filled in the same way; none: no active health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// MeshHTTPRoute, filled in the same way; none: no routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_routes: Option<HttpRoutes>,
    /// MeshTCPRoute, filled in the same way; none: no routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<TcpRoutes>,
    /// MeshAccessLog, filled in the same way; none: nothing logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

/// A destination address: another proxy's inbound.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    /// The Dataplane serving it (for logs and stats).
    pub dataplane: String,
    /// The zone behind a zone ingress endpoint; `None` for this zone's own endpoints (and
    /// not serialised), for MeshLoadBalancingStrategy's locality awareness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The endpoint's tags that MeshLoadBalancingStrategy affinity tags name (only those,
    /// and only when some policy of the mesh names one).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A zone ingress's whole configuration: where to send each server name it may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressConfig {
    /// The ZoneIngress's name.
    pub name: String,
    /// Sorted by `sni`.
    pub routes: Vec<IngressRoute>,
}

/// One destination behind a zone ingress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRoute {
    /// The TLS server name callers send for this service.
    pub sni: String,
    pub mesh: String,
    pub service: String,
    /// Live, ready sidecar inbounds in this zone, in a stable order.
    pub endpoints: Vec<Endpoint>,
}

/// The SPIFFE ID of a service in a mesh (the seed's `spiffe://<mesh>/<service>`).
pub fn spiffe_id(mesh: &str, service: &str) -> String {
    format!("spiffe://{mesh}/{service}")
}

/// One live endpoint of a service: where it listens and how it speaks.
#[derive(Debug, Clone)]
struct ServiceEndpoint<'a> {
    endpoint: Endpoint,
    protocol: Protocol,
    /// The inbound's tags (route subsets pick by them); none for other zones' ingresses.
    tags: Option<&'a crate::spec::Tags>,
}

/// Everything about one mesh that every proxy's config is computed from. Built once per
/// mesh change and shared by all of the mesh's proxies: the policy index, and the live
/// endpoints of every service (so an outbound is a map lookup, not a scan of the mesh).
pub struct MeshView<'a> {
    mesh: &'a str,
    spec: &'a crate::spec::MeshSpec,
    index: &'a crate::policies::meshtrafficpermission::PolicyIndex,
    /// The mesh's MeshTimeouts; none = Kuma's defaults everywhere.
    timeouts: Option<&'a TimeoutRules>,
    /// The mesh's MeshRetries; none = no retries.
    retries: Option<&'a RetryRules>,
    /// The mesh's MeshCircuitBreakers; none = Envoy's defaults.
    breakers: Option<&'a CircuitBreakerRules>,
    /// The mesh's MeshLoadBalancingStrategies; none = round robin.
    balancers: Option<&'a LoadBalancingRules>,
    /// The mesh's MeshHealthChecks; none = no active health checks.
    health_checks: Option<&'a HealthCheckRules>,
    /// The mesh's MeshFaultInjections; none = no faults.
    faults: Option<&'a FaultInjectionRules>,
    /// The mesh's MeshRateLimits; none = no limits.
    rate_limits: Option<&'a RateLimitRules>,
    /// The mesh's MeshHTTPRoutes; none = no routing.
    http_routes: Option<&'a HttpRouteRules>,
    /// The mesh's MeshTCPRoutes; none = no routing.
    tcp_routes: Option<&'a TcpRouteRules>,
    /// The mesh's MeshAccessLogs; none = nothing logged.
    access_logs: Option<&'a AccessLogRules>,
    /// The mesh's MeshMetrics; none = no metrics endpoint.
    metrics: Option<&'a MetricRules>,
    /// The mesh's MeshTraces; none = no tracing.
    tracing: Option<&'a TraceRules>,
    /// This control plane's zone, for `%KUMA_ZONE%` (a Dataplane's `kuma.io/zone` label
    /// wins).
    zone: &'a str,
    endpoints: std::collections::HashMap<&'a str, Vec<ServiceEndpoint<'a>>>,
    /// Services of other zones, reached through their zone ingresses.
    remote: std::collections::HashMap<String, Vec<ServiceEndpoint<'a>>>,
}

impl<'a> MeshView<'a> {
    /// `dataplanes` is every Dataplane of the mesh as (name, spec); `online` says whether a
    /// Dataplane's proxy is connected (offline proxies, and NotReady or Ignored inbounds, are
    /// not endpoints).
    pub fn new(
        mesh: &'a str,
        spec: &'a crate::spec::MeshSpec,
        index: &'a crate::policies::meshtrafficpermission::PolicyIndex,
        dataplanes: &[(&'a str, &'a crate::spec::DataplaneSpec)],
        online: &dyn Fn(&str) -> bool,
    ) -> Self {
        use crate::spec::PROTOCOL_TAG;
        let mut endpoints: std::collections::HashMap<&'a str, Vec<ServiceEndpoint<'a>>> =
            Default::default();
        for (dp_name, dp) in dataplanes {
            if !online(dp_name) {
                continue;
            }
            let Some(net) = dp.networking.as_ref() else {
                continue;
            };
            for i in &net.inbound {
                let address = i.address.as_ref().unwrap_or(&net.address);
                if matches!(i.state.as_deref(), Some("NotReady") | Some("Ignored"))
                    || i.service().is_empty()
                    || !dialable(address)
                {
                    continue;
                }
                endpoints
                    .entry(i.service())
                    .or_default()
                    .push(ServiceEndpoint {
                        endpoint: Endpoint {
                            address: address.clone(),
                            port: clamp_port(i.port),
                            dataplane: dp_name.to_string(),
                            zone: None,
                            tags: Default::default(),
                        },
                        protocol: Protocol::from_tag(i.tags.get(PROTOCOL_TAG).map(String::as_str)),
                        tags: Some(&i.tags),
                    });
            }
        }
        for list in endpoints.values_mut() {
            list.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
            list.dedup_by(|a, b| a.endpoint == b.endpoint);
        }
        MeshView {
            mesh,
            spec,
            index,
            timeouts: None,
            retries: None,
            breakers: None,
            balancers: None,
            health_checks: None,
            faults: None,
            rate_limits: None,
            http_routes: None,
            tcp_routes: None,
            access_logs: None,
            metrics: None,
            tracing: None,
            zone: "",
            endpoints,
            remote: Default::default(),
        }
    }

    /// A view for computing inbound configs only ([`MeshView::inbound_config`]): no
    /// endpoints, so building it costs nothing per Dataplane.
    pub fn for_policies(
        mesh: &'a str,
        spec: &'a crate::spec::MeshSpec,
        index: &'a crate::policies::meshtrafficpermission::PolicyIndex,
    ) -> Self {
        MeshView {
            mesh,
            spec,
            index,
            timeouts: None,
            retries: None,
            breakers: None,
            balancers: None,
            health_checks: None,
            faults: None,
            rate_limits: None,
            http_routes: None,
            tcp_routes: None,
            access_logs: None,
            metrics: None,
            tracing: None,
            zone: "",
            endpoints: Default::default(),
            remote: Default::default(),
        }
    }

    /// The mesh's MeshTimeouts, resolved into every proxy's inbounds and outbounds.
    pub fn with_timeouts(mut self, rules: &'a TimeoutRules) -> Self {
        self.timeouts = Some(rules);
        self
    }

    /// The mesh's MeshRetries, resolved into every proxy's outbounds.
    pub fn with_retries(mut self, rules: &'a RetryRules) -> Self {
        self.retries = Some(rules);
        self
    }

    /// The mesh's MeshCircuitBreakers, resolved into every proxy's outbounds.
    pub fn with_circuit_breakers(mut self, rules: &'a CircuitBreakerRules) -> Self {
        self.breakers = Some(rules);
        self
    }

    /// The mesh's MeshLoadBalancingStrategies, resolved into every proxy's outbounds.
    pub fn with_load_balancing(mut self, rules: &'a LoadBalancingRules) -> Self {
        self.balancers = Some(rules);
        self
    }

    /// The mesh's MeshHealthChecks, resolved into every proxy's outbounds.
    pub fn with_health_checks(mut self, rules: &'a HealthCheckRules) -> Self {
        self.health_checks = Some(rules);
        self
    }

    /// The mesh's MeshFaultInjections, resolved into every proxy's inbounds.
    pub fn with_fault_injections(mut self, rules: &'a FaultInjectionRules) -> Self {
        self.faults = Some(rules);
        self
    }

    /// The mesh's MeshRateLimits, resolved into every proxy's inbounds.
    pub fn with_rate_limits(mut self, rules: &'a RateLimitRules) -> Self {
        self.rate_limits = Some(rules);
        self
    }

    /// The mesh's MeshAccessLogs, resolved into every proxy's inbounds and outbounds;
    /// `zone` is this control plane's zone (empty on a standalone one).
    pub fn with_access_logs(mut self, rules: &'a AccessLogRules, zone: &'a str) -> Self {
        self.access_logs = Some(rules);
        self.zone = zone;
        self
    }

    /// The mesh's MeshMetrics, resolved into every proxy's config.
    pub fn with_metrics(mut self, rules: &'a MetricRules) -> Self {
        self.metrics = Some(rules);
        self
    }

    /// The mesh's MeshTraces, resolved into every proxy's config.
    pub fn with_tracing(mut self, rules: &'a TraceRules) -> Self {
        self.tracing = Some(rules);
        self
    }

    /// The mesh's MeshHTTPRoutes and MeshTCPRoutes, resolved into every proxy's outbounds.
    /// Their backends carry endpoints: a view without them ([`MeshView::for_policies`])
    /// gives backends none.
    pub fn with_routes(mut self, http: &'a HttpRouteRules, tcp: &'a TcpRouteRules) -> Self {
        self.http_routes = Some(http);
        self.tcp_routes = Some(tcp);
        self
    }

    /// Adds the services other zones offer through their ingresses (`ingresses` are the
    /// ZoneIngress copies from other zones, as (name, spec)). Each ingress is one endpoint
    /// per service; it forwards by TLS server name to a live instance in its zone. Only
    /// meaningful with mTLS on: without TLS there is no server name to route on.
    pub fn add_remote_ingresses(&mut self, ingresses: &[(&str, &crate::spec::ZoneIngressSpec)]) {
        use crate::spec::{PROTOCOL_TAG, SERVICE_TAG};
        if self.mtls_mode() == MtlsMode::Off {
            return;
        }
        for (name, ingress) in ingresses {
            let (address, port) = ingress.advertised();
            if !dialable(address) {
                continue;
            }
            for svc in &ingress.available_services {
                let Some(service) = svc.tags.get(SERVICE_TAG) else {
                    continue;
                };
                if svc.mesh != self.mesh || svc.instances == 0 || svc.external_service {
                    continue;
                }
                self.remote
                    .entry(service.clone())
                    .or_default()
                    .push(ServiceEndpoint {
                        endpoint: Endpoint {
                            address: address.to_string(),
                            port: clamp_port(port),
                            dataplane: format!("{}/{name}", ingress.zone),
                            zone: Some(ingress.zone.clone()),
                            tags: Default::default(),
                        },
                        protocol: Protocol::from_tag(
                            svc.tags.get(PROTOCOL_TAG).map(String::as_str),
                        ),
                        tags: None,
                    });
            }
        }
        for list in self.remote.values_mut() {
            list.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
            list.dedup_by(|a, b| a.endpoint == b.endpoint);
        }
    }

    /// What a zone ingress of this zone offers for this mesh: every service with a live,
    /// ready instance here, with its instance count and (when all instances agree) its
    /// protocol. Empty with mTLS off.
    pub fn available_services(&self) -> Vec<crate::spec::AvailableService> {
        use crate::spec::{PROTOCOL_TAG, SERVICE_TAG};
        if self.mtls_mode() == MtlsMode::Off {
            return Vec::new();
        }
        let mut out: Vec<crate::spec::AvailableService> = self
            .endpoints
            .iter()
            .map(|(service, eps)| {
                let mut tags = crate::spec::Tags::new();
                tags.insert(SERVICE_TAG.into(), service.to_string());
                let first = eps.first().map(|e| e.protocol).unwrap_or_default();
                if first != Protocol::Tcp && eps.iter().all(|e| e.protocol == first) {
                    tags.insert(PROTOCOL_TAG.into(), first.tag().into());
                }
                crate::spec::AvailableService {
                    tags,
                    instances: u32::try_from(eps.len()).unwrap_or(u32::MAX),
                    mesh: self.mesh.to_string(),
                    external_service: false,
                }
            })
            .collect();
        out.sort_by(|a, b| a.tags.cmp(&b.tags));
        out
    }

    /// A zone ingress's routes for this mesh: per local service, its server name and live
    /// instances. Empty with mTLS off.
    pub fn ingress_routes(&self) -> Vec<IngressRoute> {
        if self.mtls_mode() == MtlsMode::Off {
            return Vec::new();
        }
        let mut out: Vec<IngressRoute> = self
            .endpoints
            .iter()
            .map(|(service, eps)| IngressRoute {
                sni: crate::multizone::service_sni(self.mesh, service),
                mesh: self.mesh.to_string(),
                service: service.to_string(),
                endpoints: eps.iter().map(|e| e.endpoint.clone()).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.sni.cmp(&b.sni));
        out
    }

    pub fn mtls_mode(&self) -> MtlsMode {
        match self.spec.enabled_mtls_backend() {
            None => MtlsMode::Off,
            Some(b) if b.mode.as_deref() == Some("PERMISSIVE") => MtlsMode::Permissive,
            Some(_) => MtlsMode::Strict,
        }
    }

    /// The config of one proxy.
    pub fn proxy_config(
        &self,
        name: &str,
        labels: &crate::spec::Tags,
        dp: &crate::spec::DataplaneSpec,
    ) -> ProxyConfig {
        let mut cfg = self.inbound_config(name, labels, dp);
        if let Some(net) = dp.networking.as_ref() {
            cfg.outbounds = self.outbounds(net);
        }
        cfg
    }

    /// The inbound half of a proxy's config (mode, inbounds and their authorization; no
    /// outbounds): all that a policy change can alter, so a round caused by one needs
    /// nothing else (see [`MeshView::for_policies`]).
    pub fn inbound_config(
        &self,
        name: &str,
        labels: &crate::spec::Tags,
        dp: &crate::spec::DataplaneSpec,
    ) -> ProxyConfig {
        use crate::policies::meshtrafficpermission::DataplaneRef;
        use crate::spec::PROTOCOL_TAG;

        let Some(net) = dp.networking.as_ref() else {
            return ProxyConfig {
                mesh: self.mesh.into(),
                name: name.into(),
                mtls: self.mtls_mode(),
                ..ProxyConfig::default()
            };
        };
        let dp_ref = DataplaneRef {
            mesh: self.mesh,
            name,
            labels,
            spec: dp,
        };
        let authz = self.index.resolve(self.spec, &dp_ref);
        let view = crate::policies::rules::DataplaneView {
            mesh: self.mesh,
            name,
            labels,
            spec: dp,
        };
        let timeouts = self.timeouts.map(|rules| rules.for_dataplane(&view));
        let retries = self
            .retries
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let breakers = self
            .breakers
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut balancers = self
            .balancers
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut health_checks = self
            .health_checks
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut faults = self
            .faults
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut rate_limits = self
            .rate_limits
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut http_routes = self
            .http_routes
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut tcp_routes = self
            .tcp_routes
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let mut access_logs = self
            .access_logs
            .map(|rules| rules.for_dataplane(&view))
            .unwrap_or_default();
        let log_values = |direction: &str, source: &str, destination: &str| LogValues {
            mesh: self.mesh.to_string(),
            zone: labels
                .get(crate::policies::rules::ZONE_LABEL)
                .map_or(self.zone, String::as_str)
                .to_string(),
            source_service: source.to_string(),
            source_address: net.address.clone(),
            destination_service: destination.to_string(),
            direction: direction.to_string(),
        };
        // Kuma's `IdentifyingName`: the first inbound's service.
        let own_service = net
            .inbound
            .first()
            .map(|i| i.service().to_string())
            .unwrap_or_default();
        let inbound_timeouts = |i: usize| {
            timeouts
                .as_ref()
                .and_then(|t| t.inbounds.get(i).copied())
                .unwrap_or_default()
        };
        let inbounds =
            net.inbound
                .iter()
                .zip(authz)
                .enumerate()
                .filter(|(_, (i, _))| i.state.as_deref() != Some("Ignored"))
                .map(|(n, (i, authz))| InboundConfig {
                    name: i.name.clone().unwrap_or_else(|| i.port.to_string()),
                    address: i.address.clone().unwrap_or_else(|| net.address.clone()),
                    port: clamp_port(i.port),
                    service_address: i
                        .service_address
                        .clone()
                        .unwrap_or_else(|| "127.0.0.1".into()),
                    service_port: clamp_port(i.service_port.filter(|p| *p != 0).unwrap_or(i.port)),
                    service: i.service().to_string(),
                    protocol: Protocol::from_tag(i.tags.get(PROTOCOL_TAG).map(String::as_str)),
                    tags: i.tags.clone(),
                    ready: i.state.as_deref() != Some("NotReady"),
                    authz,
                    timeouts: inbound_timeouts(n),
                    fault_injection: faults.get_mut(n).and_then(Option::take),
                    rate_limit: rate_limits.get_mut(n).and_then(Option::take),
                    access_log: access_logs.inbounds.get_mut(n).and_then(Option::take).map(
                        |mut l| {
                            l.values = log_values("INBOUND", "unknown", i.service());
                            l
                        },
                    ),
                })
                .collect();
        // Only outbounds where a policy differs from its defaults travel: the proxy applies
        // the defaults to the rest.
        let outbound_timeouts = timeouts.map(|t| t.outbounds).unwrap_or_default();
        let outbound_policies = net
            .outbound
            .iter()
            .enumerate()
            .filter_map(|(n, o)| {
                let (mut http_routes, mut tcp_routes) = self.routes(
                    o,
                    http_routes.get_mut(n).and_then(Option::take),
                    tcp_routes.get_mut(n).and_then(Option::take),
                );
                let timeouts = outbound_timeouts.get(n).copied().unwrap_or_default();
                let retry = retries.get(n).cloned().unwrap_or_default();
                let health_check = health_checks.get_mut(n).and_then(Option::take);
                // A route's other destinations get their service's MeshHealthCheck.
                let mut others = route_destinations(&mut http_routes, &mut tcp_routes);
                if !others.is_empty()
                    && let Some(rules) = self.health_checks
                {
                    let own = Self::outbound_target(o).map(|(s, _)| s).unwrap_or_default();
                    let wanted: Vec<(&str, bool)> = others
                        .iter()
                        .map(|d| (d.service.as_str(), o.backend_ref.is_some()))
                        .collect();
                    let found = rules.for_destinations(&view, &wanted);
                    for (d, hc) in others.iter_mut().zip(found) {
                        d.health_check = if d.service == own {
                            health_check.clone()
                        } else {
                            hc
                        };
                    }
                }
                // Routes with a MeshTimeout or MeshRetry rule of their own: a `to[]` entry
                // naming the route on a `backendRef` outbound, a policy with a top-level
                // `MeshHTTPRoute` ref on a `kuma.io/service` one (as Kuma).
                if let Some(h) = &mut http_routes {
                    let service = match &o.backend_ref {
                        Some(_) => None,
                        None => o.tags.get(crate::spec::SERVICE_TAG).map(String::as_str),
                    };
                    let wanted: Vec<(&str, Option<&str>)> = h
                        .rules
                        .iter()
                        .map(|r| (r.origin.as_str(), service))
                        .collect();
                    let n = wanted.len();
                    let own_timeouts = self
                        .timeouts
                        .map_or_else(|| vec![None; n], |t| t.for_routes(&view, &wanted));
                    let own_retries = self
                        .retries
                        .map_or_else(|| vec![None; n], |t| t.for_routes(&view, &wanted));
                    drop(wanted);
                    for ((rule, t), r) in h.rules.iter_mut().zip(own_timeouts).zip(own_retries) {
                        if rule.origin.is_empty() {
                            continue;
                        }
                        rule.timeouts = t.filter(|t| *t != timeouts);
                        rule.retry = r.filter(|r| *r != retry);
                    }
                }
                let p = OutboundPolicies {
                    address: o.address.clone().unwrap_or_else(|| "127.0.0.1".into()),
                    port: clamp_port(o.port),
                    timeouts,
                    retry,
                    circuit_breaker: breakers.get(n).cloned().unwrap_or_default(),
                    load_balancer: balancers.get_mut(n).and_then(Option::take),
                    health_check,
                    http_routes,
                    tcp_routes,
                    access_log: access_logs.outbounds.get_mut(n).and_then(Option::take).map(
                        |mut l| {
                            let destination =
                                Self::outbound_target(o).map(|(s, _)| s).unwrap_or_default();
                            l.values = log_values("OUTBOUND", &own_service, &destination);
                            l
                        },
                    ),
                };
                let default = p.timeouts == Timeouts::default()
                    && p.retry.is_default()
                    && p.circuit_breaker.is_default()
                    && p.load_balancer.is_none()
                    && p.health_check.is_none()
                    && p.http_routes.is_none()
                    && p.tcp_routes.is_none()
                    && p.access_log.is_none();
                (!default).then_some(p)
            })
            .collect();
        ProxyConfig {
            mesh: self.mesh.into(),
            name: name.into(),
            mtls: self.mtls_mode(),
            inbounds,
            outbounds: Vec::new(),
            outbound_policies,
            metrics: self.metrics.and_then(|m| m.for_dataplane(&view)),
            tracing: self.tracing.and_then(|t| t.for_dataplane(&view)),
        }
    }

    /// The outbound half of a proxy's config: its outbounds with their live endpoints, and
    /// no name, so that proxies declaring the same outbounds share one encoding (the proxy
    /// takes its mesh, name and mode from the inbound half).
    pub fn outbound_config(&self, dp: &crate::spec::DataplaneSpec) -> ProxyConfig {
        ProxyConfig {
            mesh: self.mesh.into(),
            name: String::new(),
            mtls: self.mtls_mode(),
            metrics: None,
            tracing: None,
            inbounds: Vec::new(),
            outbounds: dp
                .networking
                .as_ref()
                .map(|net| self.outbounds(net))
                .unwrap_or_default(),
            outbound_policies: Vec::new(),
        }
    }

    /// A proxy's outbounds with their live endpoints.
    fn outbounds(&self, net: &crate::spec::Networking) -> Vec<OutboundConfig> {
        use crate::spec::SERVICE_TAG;
        net.outbound
            .iter()
            .filter_map(|o| {
                let (service, port_filter) = match &o.backend_ref {
                    Some(b) if b.kind == "MeshService" => (b.name.clone()?, b.port),
                    Some(_) => return None,
                    None => (o.tags.get(SERVICE_TAG)?.clone(), None),
                };
                let live = self
                    .endpoints
                    .get(service.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                // Other zones' ingresses listen on their own ports: a port filter picks
                // among local instances only.
                let remote = self
                    .remote
                    .get(service.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let matching = live
                    .iter()
                    .filter(|e| port_filter.is_none_or(|p| u32::from(e.endpoint.port) == p))
                    .chain(remote.iter());
                let protocol = matching
                    .clone()
                    .next()
                    .map(|e| e.protocol)
                    .unwrap_or_default();
                Some(OutboundConfig {
                    address: o.address.clone().unwrap_or_else(|| "127.0.0.1".into()),
                    port: clamp_port(o.port),
                    spiffe_id: spiffe_id(self.mesh, &service),
                    sni: crate::multizone::service_sni(self.mesh, &service),
                    protocol,
                    endpoints: matching.map(|e| self.endpoint(e)).collect(),
                    service,
                    timeouts: Timeouts::default(),
                    retry: Retry::default(),
                    circuit_breaker: CircuitBreaker::default(),
                    load_balancer: None,
                    health_check: None,
                    http_routes: None,
                    tcp_routes: None,
                    access_log: None,
                })
            })
            .collect()
    }

    /// An endpoint as a proxy gets it: with the tags MeshLoadBalancingStrategy affinity
    /// tags name, when some do.
    fn endpoint(&self, e: &ServiceEndpoint) -> Endpoint {
        let mut out = e.endpoint.clone();
        if let (Some(rules), Some(tags)) = (self.balancers, e.tags) {
            out.tags = rules
                .affinity_keys()
                .iter()
                .filter_map(|k| Some((k.clone(), tags.get(k)?.clone())))
                .collect();
        }
        out
    }

    /// The destination an outbound is addressed to: its service and port filter.
    fn outbound_target(o: &crate::spec::Outbound) -> Option<(String, Option<u32>)> {
        use crate::spec::SERVICE_TAG;
        match &o.backend_ref {
            Some(b) if b.kind == "MeshService" => Some((b.name.clone()?, b.port)),
            Some(_) => None,
            None => Some((o.tags.get(SERVICE_TAG)?.clone(), None)),
        }
    }

    /// An outbound's route tables: MeshHTTPRoute's on an HTTP outbound (MeshTCPRoute's, as
    /// one catch-all rule, when no MeshHTTPRoute applies: Kuma's precedence), MeshTCPRoute's
    /// on a TCP one. The protocol is the destination's, as [`MeshView::outbounds`] finds it.
    fn routes(
        &self,
        o: &crate::spec::Outbound,
        http: Option<Vec<crate::policies::meshhttproute::OrderedRoute>>,
        tcp: Option<Vec<crate::policies::common::BackendRef>>,
    ) -> (Option<HttpRoutes>, Option<TcpRoutes>) {
        use crate::policies::meshhttproute::table::{HttpRouteRule, PathMatcher};
        if http.is_none() && tcp.is_none() {
            return (None, None);
        }
        let Some((service, port)) = Self::outbound_target(o) else {
            return (None, None);
        };
        let protocol = self
            .endpoints
            .get(service.as_str())
            .into_iter()
            .flatten()
            .find(|e| port.is_none_or(|p| u32::from(e.endpoint.port) == p))
            .or_else(|| self.remote.get(service.as_str()).and_then(|r| r.first()))
            .map(|e| e.protocol)
            .unwrap_or_default();
        let resolve = |b: &crate::policies::common::BackendRef| self.destination(b, &service, port);
        let tcp_backends = |refs: &[crate::policies::common::BackendRef]| {
            let backends: Vec<_> = refs
                .iter()
                .filter(|b| b.weight() > 0)
                .map(|b| crate::policies::meshhttproute::table::RouteBackend {
                    weight: u32::try_from(b.weight()).unwrap_or(u32::MAX),
                    destination: resolve(b).flatten(),
                })
                .collect();
            (!backends.is_empty()).then_some(backends)
        };
        if protocol.is_http() {
            if let Some(routes) = http {
                let rules = crate::policies::meshhttproute::compile_routes(&routes, &resolve);
                return (Some(HttpRoutes { rules }), None);
            }
            let backends = tcp.as_deref().and_then(tcp_backends);
            return (
                backends.map(|backends| HttpRoutes {
                    rules: vec![HttpRouteRule {
                        origin: String::new(),
                        path: Some(PathMatcher::Prefix(String::new())),
                        method: None,
                        headers: Vec::new(),
                        query: Vec::new(),
                        filters: Vec::new(),
                        backends,
                        timeouts: None,
                        retry: None,
                    }],
                }),
                None,
            );
        }
        let backends = tcp.as_deref().and_then(tcp_backends);
        (None, backends.map(|backends| TcpRoutes { backends }))
    }

    /// Where a route's backend reference leads: `None` when it cannot be resolved (Kuma
    /// then sends the traffic to the outbound's own destination), `Some(None)` for the
    /// outbound's own destination, else the service's live endpoints with the reference's
    /// tags (`MeshServiceSubset`, or `tags` beside a `MeshService`'s name) and port.
    fn destination(
        &self,
        b: &crate::policies::common::BackendRef,
        own_service: &str,
        own_port: Option<u32>,
    ) -> Option<Option<crate::policies::meshhttproute::table::RouteDestination>> {
        use crate::spec::SERVICE_TAG;
        let kind = b.kind.as_deref().unwrap_or("MeshService");
        if !matches!(kind, "MeshService" | "MeshServiceSubset") {
            return None;
        }
        let service = b
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| b.tags.as_ref()?.get(SERVICE_TAG).cloned())?;
        let subset: Vec<(&String, &String)> = b
            .tags
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != SERVICE_TAG)
            .collect();
        let port = b.port.or(if service == own_service {
            own_port
        } else {
            None
        });
        if service == own_service && subset.is_empty() && port == own_port {
            return Some(None);
        }
        let live = self
            .endpoints
            .get(service.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let remote = self
            .remote
            .get(service.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let endpoints = live
            .iter()
            .filter(|e| port.is_none_or(|p| u32::from(e.endpoint.port) == p))
            .chain(remote.iter().filter(|_| subset.is_empty()))
            .filter(|e| {
                subset.iter().all(|(k, v)| {
                    e.tags
                        .is_some_and(|t| t.get(k.as_str()).is_some_and(|x| x == *v))
                })
            })
            .map(|e| e.endpoint.clone())
            .collect();
        let mut name = service.clone();
        for (k, v) in &subset {
            name.push_str(&format!(",{k}={v}"));
        }
        Some(Some(
            crate::policies::meshhttproute::table::RouteDestination {
                name,
                spiffe_id: spiffe_id(self.mesh, &service),
                sni: crate::multizone::service_sni(self.mesh, &service),
                endpoints,
                service,
                health_check: None,
            },
        ))
    }
}

/// Every destination other than the outbound's own that its route tables name (weighted
/// backends and mirrors).
fn route_destinations<'r>(
    http: &'r mut Option<HttpRoutes>,
    tcp: &'r mut Option<TcpRoutes>,
) -> Vec<&'r mut crate::policies::meshhttproute::table::RouteDestination> {
    use crate::policies::meshhttproute::table::RouteFilter;
    let mut out = Vec::new();
    for rule in http.iter_mut().flat_map(|h| h.rules.iter_mut()) {
        out.extend(
            rule.backends
                .iter_mut()
                .filter_map(|b| b.destination.as_mut()),
        );
        out.extend(rule.filters.iter_mut().filter_map(|f| match f {
            RouteFilter::Mirror(m) => m.destination.as_deref_mut(),
            _ => None,
        }));
    }
    out.extend(
        tcp.iter_mut()
            .flat_map(|t| t.backends.iter_mut())
            .filter_map(|b| b.destination.as_mut()),
    );
    out
}

/// Whether an endpoint address is an IP address a proxy may dial (see [`crate::net`]). The
/// control plane resolves host names before building configs; a name it could not resolve, or
/// an address no proxy may dial, is left out, so one bad Dataplane never spoils the config of
/// every proxy that calls its service.
pub fn dialable(address: &str) -> bool {
    address
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| crate::net::endpoint_refusal(ip).is_none())
}

/// Ports are validated to 1..=65535 before they are stored; this only guards the cast.
fn clamp_port(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(0)
}

/// The URI SANs of a proxy's certificate: `spiffe://<mesh>/<service>` per inbound service,
/// then `kuma://<tag>/<value>` per other inbound tag (Kuma's legacy identity).
pub fn identity_sans(mesh: &str, dp: &crate::spec::DataplaneSpec) -> Vec<String> {
    use crate::spec::SERVICE_TAG;
    let mut services = std::collections::BTreeSet::new();
    let mut tags = std::collections::BTreeSet::new();
    for i in dp.networking.iter().flat_map(|n| n.inbound.iter()) {
        for (k, v) in &i.tags {
            if k == SERVICE_TAG {
                services.insert(spiffe_id(mesh, v));
            } else {
                tags.insert(format!("kuma://{k}/{v}"));
            }
        }
    }
    services.into_iter().chain(tags).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Spec;
    use crate::format::{parse_yaml_value, resource_from_value};
    use crate::policies::meshtrafficpermission::MeshTrafficPermissionSpec;
    use crate::policies::meshtrafficpermission::{PeerIdentity, PolicyIndex};
    use crate::spec::{DataplaneSpec, MeshSpec, Tags};

    fn parse(yaml: &str) -> Spec {
        resource_from_value(&parse_yaml_value(yaml).unwrap())
            .unwrap()
            .spec
    }

    fn dp(yaml: &str) -> DataplaneSpec {
        match parse(yaml) {
            Spec::Dataplane(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seed_mesh_builds_inbounds_outbounds_and_authz() {
        let Spec::Mesh(mesh) = parse(
            "type: Mesh\nname: default\nmtls:\n  backends:\n  - name: builtin\n    type: builtin\n  enabledBackend: builtin\n",
        ) else {
            panic!()
        };
        let Spec::MeshTrafficPermission(mtp) = parse(
            "type: MeshTrafficPermission\nname: allow-fc\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: check-in-api-blu}\n  from:\n  - targetRef: {kind: MeshService, name: flight-control-blu}\n    default: {action: Allow}\n",
        ) else {
            panic!()
        };
        let checkin = dp(
            "type: Dataplane\nname: checkin-1\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 9000\n    servicePort: 8080\n    tags: {kuma.io/service: check-in-api-blu, kuma.io/protocol: http, version: v1}\n",
        );
        let fc = dp(
            "type: Dataplane\nname: fc-1\nmesh: default\nnetworking:\n  address: 127.0.0.3\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: flight-control-blu}\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: check-in-api-blu}\n",
        );
        let gone = dp(
            "type: Dataplane\nname: checkin-2\nmesh: default\nnetworking:\n  address: 127.0.0.4\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: check-in-api-blu}\n",
        );
        let labels = Tags::new();
        let policies = vec![("allow-fc".to_string(), &mtp as &MeshTrafficPermissionSpec)];
        let index = PolicyIndex::new(&policies);
        let dps = [("checkin-1", &checkin), ("fc-1", &fc), ("checkin-2", &gone)];
        let online = |n: &str| n != "checkin-2";
        let view = MeshView::new("default", &mesh as &MeshSpec, &index, &dps, &online);
        let cfg = view.proxy_config("checkin-1", &labels, &checkin);
        assert_eq!(cfg.mtls, MtlsMode::Strict);
        let inb = &cfg.inbounds[0];
        assert_eq!(
            (inb.address.as_str(), inb.port, inb.service_port),
            ("127.0.0.2", 9000, 8080)
        );
        assert_eq!(inb.protocol, Protocol::Http);
        assert!(
            inb.authz
                .check(&PeerIdentity::new("default", ["flight-control-blu"]))
                .is_allowed()
        );
        assert!(
            !inb.authz
                .check(&PeerIdentity::new("default", ["other"]))
                .is_allowed()
        );
        let cfg = view.proxy_config("fc-1", &labels, &fc);
        let out = &cfg.outbounds[0];
        assert_eq!(out.spiffe_id, "spiffe://default/check-in-api-blu");
        assert_eq!(out.protocol, Protocol::Http);
        assert_eq!(
            out.endpoints,
            vec![Endpoint {
                address: "127.0.0.2".into(),
                port: 9000,
                dataplane: "checkin-1".into(),
                zone: None,
                tags: Default::default(),
            }]
        );
        assert_eq!(
            identity_sans("default", &checkin),
            [
                "spiffe://default/check-in-api-blu",
                "kuma://kuma.io/protocol/http",
                "kuma://version/v1"
            ]
        );
    }

    #[test]
    fn host_names_and_undialable_addresses_are_left_out_of_endpoints() {
        let Spec::Mesh(mesh) = parse("type: Mesh\nname: default\n") else {
            panic!()
        };
        let api = |name: &str, address: &str| {
            dp(&format!(
                "type: Dataplane\nname: {name}\nmesh: default\nnetworking:\n  address: {address}\n  inbound:\n  - port: 9000\n    tags: {{kuma.io/service: api}}\n"
            ))
        };
        let good = api("good", "10.0.0.2");
        let unresolved = api("named", "api.example.internal");
        let metadata = api("metadata", "169.254.169.254");
        let caller = dp(
            "type: Dataplane\nname: d\nmesh: default\nnetworking:\n  address: 10.0.0.9\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: api}\n",
        );
        let index = PolicyIndex::new(&[]);
        let dps = [
            ("good", &good),
            ("named", &unresolved),
            ("metadata", &metadata),
            ("d", &caller),
        ];
        let view = MeshView::new("default", &mesh, &index, &dps, &|_| true);
        let cfg = view.proxy_config("d", &Tags::new(), &caller);
        let addrs: Vec<_> = cfg.outbounds[0]
            .endpoints
            .iter()
            .map(|e| e.address.as_str())
            .collect();
        assert_eq!(addrs, ["10.0.0.2"]);
    }

    #[test]
    fn not_ready_and_ignored_inbounds_are_not_endpoints() {
        let Spec::Mesh(mesh) = parse("type: Mesh\nname: default\n") else {
            panic!()
        };
        let ready = dp(
            "type: Dataplane\nname: a\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: api}\n",
        );
        let not_ready = dp(
            "type: Dataplane\nname: b\nmesh: default\nnetworking:\n  address: 127.0.0.3\n  inbound:\n  - port: 9000\n    state: NotReady\n    tags: {kuma.io/service: api}\n",
        );
        let ignored = dp(
            "type: Dataplane\nname: c\nmesh: default\nnetworking:\n  address: 127.0.0.4\n  inbound:\n  - port: 9000\n    state: Ignored\n    tags: {kuma.io/service: api}\n",
        );
        let caller = dp(
            "type: Dataplane\nname: d\nmesh: default\nnetworking:\n  address: 127.0.0.5\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: api}\n",
        );
        let index = PolicyIndex::new(&[]);
        let dps = [
            ("a", &ready),
            ("b", &not_ready),
            ("c", &ignored),
            ("d", &caller),
        ];
        let view = MeshView::new("default", &mesh, &index, &dps, &|_| true);
        let cfg = view.proxy_config("d", &Tags::new(), &caller);
        let addrs: Vec<_> = cfg.outbounds[0]
            .endpoints
            .iter()
            .map(|e| e.address.as_str())
            .collect();
        assert_eq!(addrs, ["127.0.0.2"]);
        assert_eq!(cfg.mtls, MtlsMode::Off);
        // The NotReady proxy still serves its own inbound; the Ignored one has none.
        assert!(!view.proxy_config("b", &Tags::new(), &not_ready).inbounds[0].ready);
        assert!(
            view.proxy_config("c", &Tags::new(), &ignored)
                .inbounds
                .is_empty()
        );
    }

    fn mtls_mesh() -> MeshSpec {
        let Spec::Mesh(mesh) = parse(
            "type: Mesh\nname: default\nmtls:\n  backends:\n  - name: builtin\n    type: builtin\n  enabledBackend: builtin\n",
        ) else {
            panic!()
        };
        mesh
    }

    #[test]
    fn the_policy_only_view_gives_the_same_inbound_half() {
        let mesh = mtls_mesh();
        let Spec::MeshTrafficPermission(mtp) = parse(
            "type: MeshTrafficPermission\nname: allow\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: MeshService, name: b}\n    default: {action: Allow}\n",
        ) else {
            panic!()
        };
        let a = dp(
            "type: Dataplane\nname: a\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: a}\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: b}\n",
        );
        let b = dp(
            "type: Dataplane\nname: b\nmesh: default\nnetworking:\n  address: 127.0.0.3\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: b}\n",
        );
        let policies = vec![("allow".to_string(), &mtp as &MeshTrafficPermissionSpec)];
        let index = PolicyIndex::new(&policies);
        let dps = [("a", &a), ("b", &b)];
        let full = MeshView::new("default", &mesh, &index, &dps, &|_| true);
        let policies_only = MeshView::for_policies("default", &mesh, &index);
        let whole = full.proxy_config("a", &Tags::new(), &a);
        assert_eq!(whole.outbounds.len(), 1);
        let half = policies_only.inbound_config("a", &Tags::new(), &a);
        assert!(half.outbounds.is_empty());
        assert_eq!(
            half,
            ProxyConfig {
                outbounds: Vec::new(),
                ..whole
            }
        );
    }

    #[test]
    fn other_zones_ingresses_become_endpoints_and_this_zone_offers_its_services() {
        let mesh = mtls_mesh();
        let caller = dp(
            "type: Dataplane\nname: fc\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: fc}\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: api}\n",
        );
        let local_api = dp(
            "type: Dataplane\nname: api-1\nmesh: default\nnetworking:\n  address: 127.0.0.3\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: api, kuma.io/protocol: http}\n",
        );
        let Spec::ZoneIngress(ingress) = parse(
            "type: ZoneIngress\nname: ingress\nzone: zone-2\nnetworking: {address: 10.0.0.9, port: 10001, advertisedAddress: 1.2.3.4, advertisedPort: 20001}\navailableServices:\n  - {tags: {kuma.io/service: api, kuma.io/protocol: http}, instances: 2, mesh: default}\n  - {tags: {kuma.io/service: api}, instances: 1, mesh: other}\n  - {tags: {kuma.io/service: gone}, instances: 0, mesh: default}\n",
        ) else {
            panic!()
        };
        let index = PolicyIndex::new(&[]);
        let dps = [("fc", &caller), ("api-1", &local_api)];
        let mut view = MeshView::new("default", &mesh, &index, &dps, &|_| true);
        // What this zone's ingress would offer and route: local instances only.
        let offered = view.available_services();
        let names: Vec<_> = offered
            .iter()
            .map(|s| (s.tags[crate::spec::SERVICE_TAG].as_str(), s.instances))
            .collect();
        assert_eq!(names, [("api", 1), ("fc", 1)]);
        assert_eq!(offered[0].tags[crate::spec::PROTOCOL_TAG], "http");
        view.add_remote_ingresses(&[("ingress", &ingress)]);
        let routes = view.ingress_routes();
        assert_eq!(routes.len(), 2, "remote endpoints are never routed again");
        assert_eq!(routes[0].sni, "api.default.mesh");
        assert_eq!(routes[0].endpoints.len(), 1);
        let out = &view.proxy_config("fc", &Tags::new(), &caller).outbounds[0];
        let addrs: Vec<_> = out
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.address, e.port))
            .collect();
        assert_eq!(addrs, ["127.0.0.3:9000", "1.2.3.4:20001"]);
        // Only endpoints behind another zone's ingress carry (and serialise) a zone.
        assert_eq!(out.endpoints[1].zone.as_deref(), Some("zone-2"));
        assert_eq!(out.endpoints[0].zone, None);
        let local = serde_json::to_value(&out.endpoints[0]).unwrap();
        assert!(local.get("zone").is_none(), "{local}");
        assert_eq!(out.sni, "api.default.mesh");
        // With mTLS off there is no server name to route on: no remote endpoints.
        let Spec::Mesh(plain) = parse("type: Mesh\nname: default\n") else {
            panic!()
        };
        let mut view = MeshView::new("default", &plain, &index, &dps, &|_| true);
        view.add_remote_ingresses(&[("ingress", &ingress)]);
        assert_eq!(
            view.proxy_config("fc", &Tags::new(), &caller).outbounds[0]
                .endpoints
                .len(),
            1
        );
        assert!(view.available_services().is_empty());
    }
}
