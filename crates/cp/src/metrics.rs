//! Control-plane metrics in Prometheus text format, on the diagnostics port's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    resource_type: String,
}

/// Every metric the control plane exports, in one explicit registry (no global state).
pub struct Metrics {
    registry: Registry,
    api_requests: Family<RequestLabels, Counter>,
    resources: Family<TypeLabels, Gauge>,
    ready: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kuma_cp");
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_server_http_requests",
            "REST API requests by method and status code",
            api_requests.clone(),
        );
        let resources = Family::<TypeLabels, Gauge>::default();
        registry.register(
            "store_resources",
            "Resources in the store by type",
            resources.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica leads the control planes sharing its store",
            leader.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the control plane is ready to serve",
            ready.clone(),
        );
        Self {
            registry,
            api_requests,
            resources,
            ready,
            leader,
        }
    }

    pub fn api_request(&self, method: &str, code: u16) {
        self.api_requests
            .get_or_create(&RequestLabels {
                method: method.into(),
                code,
            })
            .inc();
    }

    pub fn set_resource_count(&self, resource_type: &str, n: usize) {
        self.resources
            .get_or_create(&TypeLabels {
                resource_type: resource_type.into(),
            })
            .set(n as i64);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
