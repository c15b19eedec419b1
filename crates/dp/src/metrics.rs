//! Prometheus metrics (`/stats/prometheus`), in an explicit registry owned by the proxy.
//!
//! Label lookups in a `Family` hash the label set under a read lock, so the request path never
//! does them: [`ListenerStats`] resolves a listener's counters once per config, and RBAC
//! counters are resolved once per connection. Responses are counted by status class
//! (`1xx`..`5xx`) for the same reason: five pre-resolved counters instead of a lookup per code.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use aerie_core::policies::meshtrafficpermission::Decision;
use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    direction: &'static str,
    listener: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    direction: &'static str,
    listener: String,
    code_class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    direction: &'static str,
    listener: String,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RbacLabels {
    listener: String,
    source_service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The proxy's metric families.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<ListenerLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    connections: Family<ListenerLabels, Counter>,
    connect_errors: Family<ListenerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    rbac_allowed: Family<RbacLabels, Counter>,
    rbac_denied: Family<RbacLabels, Counter>,
    rbac_shadow_denied: Family<RbacLabels, Counter>,
    pub cert_expiry_seconds: Gauge<i64, AtomicI64>,
    config_version: Family<VersionLabels, Gauge>,
    pub config_applied: Counter,
    pub config_rejected: Counter,
    pub identity_applied: Counter,
    pub identity_rejected: Counter,
    /// MeshAccessLog lines written and dropped, by backend.
    pub access_log: crate::accesslog::SinkMetrics,
    /// MeshTrace spans exported and dropped, by backend.
    pub spans: crate::meshtrace::SpanMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("aerie_dp");
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            responses: Family::default(),
            connections: Family::default(),
            connect_errors: Family::default(),
            errors: Family::default(),
            rbac_allowed: Family::default(),
            rbac_denied: Family::default(),
            rbac_shadow_denied: Family::default(),
            cert_expiry_seconds: Gauge::default(),
            config_version: Family::default(),
            config_applied: Counter::default(),
            config_rejected: Counter::default(),
            identity_applied: Counter::default(),
            identity_rejected: Counter::default(),
            access_log: Default::default(),
            spans: Default::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests received",
            m.requests.clone(),
        );
        r.register(
            "http_responses",
            "HTTP responses sent, by status class",
            m.responses.clone(),
        );
        r.register(
            "connections",
            "Downstream connections accepted",
            m.connections.clone(),
        );
        r.register(
            "upstream_connect_errors",
            "Failed connections to an upstream (application or peer proxy)",
            m.connect_errors.clone(),
        );
        r.register(
            "connection_errors",
            "Downstream connection errors (TLS handshake, protocol, I/O), by kind",
            m.errors.clone(),
        );
        r.register(
            "rbac_allowed",
            "Connections/requests allowed by MeshTrafficPermission",
            m.rbac_allowed.clone(),
        );
        r.register(
            "rbac_denied",
            "Connections/requests denied by MeshTrafficPermission",
            m.rbac_denied.clone(),
        );
        r.register(
            "rbac_shadow_denied",
            "Connections/requests allowed only by AllowWithShadowDeny",
            m.rbac_shadow_denied.clone(),
        );
        r.register(
            "certificate_expiry_seconds",
            "Seconds until the workload certificate expires",
            m.cert_expiry_seconds.clone(),
        );
        r.register(
            "config_version_info",
            "The applied configuration version (value 1)",
            m.config_version.clone(),
        );
        r.register(
            "config_applied",
            "Configurations applied (ACK)",
            m.config_applied.clone(),
        );
        r.register(
            "config_rejected",
            "Configurations rejected (NACK)",
            m.config_rejected.clone(),
        );
        r.register(
            "identity_applied",
            "Identities (certificates) applied",
            m.identity_applied.clone(),
        );
        r.register(
            "identity_rejected",
            "Identities (certificates) rejected",
            m.identity_rejected.clone(),
        );
        r.register(
            "access_log_lines_written",
            "MeshAccessLog lines written, by backend",
            m.access_log.written.clone(),
        );
        r.register(
            "access_log_lines_dropped",
            "MeshAccessLog lines dropped (queue full, backend unavailable), by backend",
            m.access_log.dropped.clone(),
        );
        r.register(
            "tracing_spans_exported",
            "MeshTrace spans the backend accepted, by backend",
            m.spans.exported.clone(),
        );
        r.register(
            "tracing_spans_dropped",
            "MeshTrace spans dropped (queue full, backend unavailable or refusing), by backend",
            m.spans.dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn set_config_version(&self, version: &str) {
        self.config_version.clear();
        self.config_version
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
    }

    /// Pre-resolved counters for one listener.
    pub fn listener(&self, direction: Direction, name: &str) -> Arc<ListenerStats> {
        let labels = ListenerLabels {
            direction: direction.as_str(),
            listener: name.to_owned(),
        };
        let responses = CODE_CLASSES.map(|code_class| {
            self.responses
                .get_or_create(&ResponseLabels {
                    direction: direction.as_str(),
                    listener: name.to_owned(),
                    code_class,
                })
                .clone()
        });
        Arc::new(ListenerStats {
            name: name.into(),
            direction,
            requests: self.requests.get_or_create(&labels).clone(),
            connections: self.connections.get_or_create(&labels).clone(),
            connect_errors: self.connect_errors.get_or_create(&labels).clone(),
            responses,
            errors: self.errors.clone(),
        })
    }

    /// The counter to bump for `decision` by callers of `source_service` on `listener`.
    pub fn rbac(&self, decision: Decision, listener: &str, source_service: &str) -> Counter {
        let family = match decision {
            Decision::Allow => &self.rbac_allowed,
            Decision::AllowShadowDeny => &self.rbac_shadow_denied,
            Decision::Deny => &self.rbac_denied,
        };
        family
            .get_or_create(&RbacLabels {
                listener: listener.to_owned(),
                source_service: source_service.to_owned(),
            })
            .clone()
    }
}

/// One listener's counters, resolved when the config is applied.
pub(crate) struct ListenerStats {
    pub name: Arc<str>,
    pub direction: Direction,
    pub requests: Counter,
    pub connections: Counter,
    pub connect_errors: Counter,
    responses: [Counter; 5],
    errors: Family<ErrorLabels, Counter>,
}

impl ListenerStats {
    pub fn response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        if let Some(c) = self.responses.get(class) {
            c.inc();
        }
    }

    /// Counts an error of `kind` (error paths only: this does a label lookup).
    pub fn error(&self, kind: &'static str) {
        crate::accesslog::note_flag(crate::accesslog::flag_of(kind));
        self.errors
            .get_or_create(&ErrorLabels {
                direction: self.direction.as_str(),
                listener: self.name.to_string(),
                kind,
            })
            .inc();
    }
}
