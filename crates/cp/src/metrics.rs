//! Control-plane metrics on the diagnostics port's `/metrics`, in Prometheus's text format
//! (0.0.4) under Kuma's names, so that a Kuma user's dashboards and alerts read them: the
//! REST API (`api_server_http_request_duration_seconds`, `..._requests_inflight`), proxy
//! sessions and config pushes (`xds_streams_active`, `xds_requests_received`,
//! `xds_responses_sent`, `xds_responses_sent_bytes`, `xds_delivery`, `xds_generation`,
//! `xds_generation_errors`), KDS (`kds_delta_streams_active`, `kds_delta_requests_received`,
//! `kds_delta_responses_sent`, `kds_delta_responses_sent_bytes`, `kds_delta_delivery`,
//! `kds_zone_active_connections`, `kds_resources_sync`), the store (`store`,
//! `store_conflicts`) and leadership (`leader`, `cp_info`). As Kuma's, every
//! sample carries a constant `zone` label (the zone's name, `Zone` for a standalone control
//! plane without one, `Global` on a global). Aerie adds `kuma_cp_store_resources` and
//! `kuma_cp_ready`.
//!
//! Written by hand rather than with a client library: Kuma's counters carry no `_total`
//! suffix, which the OpenMetrics encoders add. The control plane is not a hot path; each
//! family is a map under a mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Prometheus's default buckets (seconds).
const SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Kuma's buckets for message sizes (`ExponentialBuckets(1024, 2, 16)`).
const BYTES: &[f64] = &[
    1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0, 262144.0, 524288.0,
    1048576.0, 2097152.0, 4194304.0, 8388608.0, 16777216.0, 33554432.0,
];
/// Buckets for durations Kuma records in milliseconds.
const MILLIS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_labels(
    out: &mut String,
    names: &[&str],
    values: &[String],
    zone: &str,
    extra: Option<(&str, &str)>,
) {
    out.push('{');
    let mut first = true;
    let mut one = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    };
    for (k, v) in names.iter().zip(values) {
        one(out, k, v);
    }
    if let Some((k, v)) = extra {
        one(out, k, v);
    }
    one(out, "zone", zone);
    out.push('}');
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

/// Kuma's `confirmation` and `error_type` labels of a reply (`NACK` errors are `other`).
fn confirmation(nack: bool) -> (&'static str, &'static str) {
    if nack {
        ("NACK", "other")
    } else {
        ("ACK", "no_error")
    }
}

/// An `*_streams_active` gauge (Kuma's help text), with only the `zone` label.
fn streams_gauge(out: &mut String, name: &str, zone: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} Number of active connections between a server and a client"
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{zone=\"{}\"}} {value}", escape(zone));
}

/// A family of counters or gauges by label values.
struct Values {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl Values {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &'static [&'static str],
    ) -> Values {
        Values {
            name,
            help,
            kind,
            labels,
            values: Mutex::default(),
        }
    }

    fn add(&self, labels: &[&str], v: f64) {
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(labels.iter().map(|s| s.to_string()).collect())
            .or_insert(0.0) += v;
    }

    fn set(&self, labels: &[&str], v: f64) {
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(labels.iter().map(|s| s.to_string()).collect(), v);
    }

    fn encode(&self, out: &mut String, zone: &str) {
        let map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (values, v) in map.iter() {
            out.push_str(self.name);
            write_labels(out, self.labels, values, zone, None);
            let _ = writeln!(out, " {}", number(*v));
        }
    }
}

#[derive(Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A family of histograms by label values.
struct Histograms {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, Hist>>,
}

impl Histograms {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Histograms {
        Histograms {
            name,
            help,
            labels,
            buckets,
            values: Mutex::default(),
        }
    }

    fn observe(&self, labels: &[&str], v: f64) {
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let h = map
            .entry(labels.iter().map(|s| s.to_string()).collect())
            .or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; self.buckets.len()];
        }
        for (i, b) in self.buckets.iter().enumerate() {
            if v <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += v;
        h.count += 1;
    }

    fn encode(&self, out: &mut String, zone: &str) {
        let map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (values, h) in map.iter() {
            for (b, c) in self.buckets.iter().zip(&h.counts) {
                let _ = write!(out, "{}_bucket", self.name);
                write_labels(out, self.labels, values, zone, Some(("le", &number(*b))));
                let _ = writeln!(out, " {c}");
            }
            let _ = write!(out, "{}_bucket", self.name);
            write_labels(out, self.labels, values, zone, Some(("le", "+Inf")));
            let _ = writeln!(out, " {}", h.count);
            let _ = write!(out, "{}_sum", self.name);
            write_labels(out, self.labels, values, zone, None);
            let _ = writeln!(out, " {}", number(h.sum));
            let _ = write!(out, "{}_count", self.name);
            write_labels(out, self.labels, values, zone, None);
            let _ = writeln!(out, " {}", h.count);
        }
    }
}

/// Every metric the control plane exports.
pub struct Metrics {
    zone: Mutex<String>,
    info: Values,
    leader: Values,
    ready: Values,
    resources: Values,
    api_duration: Histograms,
    api_inflight: Values,
    xds_streams: AtomicI64,
    xds_requests: Values,
    xds_responses: Values,
    xds_response_bytes: Histograms,
    xds_delivery: Histograms,
    xds_generation: Histograms,
    xds_generation_errors: Values,
    kds_streams: AtomicI64,
    kds_requests: Values,
    kds_responses: Values,
    kds_response_bytes: Histograms,
    kds_delivery: Histograms,
    kds_zone_connections: Values,
    kds_resources_sync: Histograms,
    store: Histograms,
    store_conflicts: Values,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            zone: Mutex::new("Zone".into()),
            info: Values::new(
                "cp_info",
                "Static information about the control plane",
                "gauge",
                &["product", "version", "instance_id", "based_on_kuma"],
            ),
            leader: Values::new(
                "leader",
                "1 indicates that this instance is leader",
                "gauge",
                &[],
            ),
            ready: Values::new(
                "kuma_cp_ready",
                "1 when the control plane is ready to serve",
                "gauge",
                &[],
            ),
            resources: Values::new(
                "kuma_cp_store_resources",
                "Resources in the store by type",
                "gauge",
                &["resource_type"],
            ),
            api_duration: Histograms::new(
                "api_server_http_request_duration_seconds",
                "The latency of the HTTP requests.",
                &["service", "handler", "method", "code"],
                SECONDS,
            ),
            api_inflight: Values::new(
                "api_server_http_requests_inflight",
                "The number of inflight requests being handled at the same time.",
                "gauge",
                &["service", "handler"],
            ),
            xds_streams: AtomicI64::new(0),
            xds_requests: Values::new(
                "xds_requests_received",
                "Number of confirmations requests from a client",
                "counter",
                &["type_url", "confirmation", "error_type"],
            ),
            xds_responses: Values::new(
                "xds_responses_sent",
                "Number of XDS responses sent to the Dataplane",
                "counter",
                &["type_url"],
            ),
            xds_response_bytes: Histograms::new(
                "xds_responses_sent_bytes",
                "Size in bytes of DiscoveryResponse messages sent by the server",
                &["type_url"],
                BYTES,
            ),
            xds_delivery: Histograms::new(
                "xds_delivery",
                "Summary of config delivery including a response (ACK/NACK) from the client (ms)",
                &[],
                MILLIS,
            ),
            kds_streams: AtomicI64::new(0),
            kds_requests: Values::new(
                "kds_delta_requests_received",
                "Number of confirmations requests from a client",
                "counter",
                &["type_url", "confirmation", "error_type"],
            ),
            kds_responses: Values::new(
                "kds_delta_responses_sent",
                "Number of responses sent by the server to a client",
                "counter",
                &["type_url"],
            ),
            kds_response_bytes: Histograms::new(
                "kds_delta_responses_sent_bytes",
                "Size in bytes of DiscoveryResponse messages sent by the server",
                &["type_url"],
                BYTES,
            ),
            kds_delivery: Histograms::new(
                "kds_delta_delivery",
                "Summary of config delivery including a response (ACK/NACK) from the client (ms)",
                &[],
                MILLIS,
            ),
            kds_zone_connections: Values::new(
                "kds_zone_active_connections",
                "Number of active KDS streams per zone.",
                "gauge",
                &["zone_name"],
            ),
            kds_resources_sync: Histograms::new(
                "kds_resources_sync",
                "Time it took to sync resources from the upstream over KDS",
                &[],
                SECONDS,
            ),
            xds_generation: Histograms::new(
                "xds_generation",
                "Summary of XDS Snapshot generation (ms; one observation per mesh round)",
                &["proxy_type", "result"],
                MILLIS,
            ),
            xds_generation_errors: Values::new(
                "xds_generation_errors",
                "Counter of errors during XDS generation",
                "counter",
                &[],
            ),
            store: Histograms::new(
                "store",
                "Summary of Store operations",
                &["operation", "resource_type"],
                SECONDS,
            ),
            store_conflicts: Values::new(
                "store_conflicts",
                "Counter of store conflicts",
                "counter",
                &["resource_type"],
            ),
        }
    }

    /// The constant `zone` label and `cp_info`'s values.
    pub fn set_identity(&self, zone: &str, version: &str, instance_id: &str) {
        *self.zone.lock().unwrap_or_else(|e| e.into_inner()) = zone.to_string();
        self.info
            .set(&["Aerie", version, instance_id, "2.14.3"], 1.0);
    }

    /// A REST API request: `handler` is the route's path pattern.
    pub fn api_request(&self, handler: &str, method: &str, code: u16, seconds: f64) {
        self.api_duration
            .observe(&["", handler, method, &code.to_string()], seconds);
    }

    /// A REST API request starts (`+1`) or ends (`-1`).
    pub fn api_inflight(&self, handler: &str, delta: f64) {
        self.api_inflight.add(&["", handler], delta);
    }

    pub fn xds_stream(&self, delta: i64) {
        self.xds_streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// A proxy's reply to a response: `ACK` or `NACK`.
    pub fn xds_request(&self, type_url: &str, nack: bool) {
        let (confirmation, error) = confirmation(nack);
        self.xds_requests.add(&[type_url, confirmation, error], 1.0);
    }

    /// A response of `bytes` (encoded) sent to a proxy.
    pub fn xds_response(&self, type_url: &str, bytes: usize) {
        self.xds_responses.add(&[type_url], 1.0);
        self.xds_response_bytes.observe(&[type_url], bytes as f64);
    }

    /// A proxy answered (ACK or NACK) a response sent `ms` milliseconds earlier.
    pub fn xds_delivered(&self, ms: f64) {
        self.xds_delivery.observe(&[], ms);
    }

    /// A KDS stream (either direction, either side) opens (`+1`) or ends (`-1`).
    pub fn kds_stream(&self, delta: i64) {
        self.kds_streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// A KDS peer's reply to a response: `ACK` or `NACK`.
    pub fn kds_request(&self, type_url: &str, nack: bool) {
        let (confirmation, error) = confirmation(nack);
        self.kds_requests.add(&[type_url, confirmation, error], 1.0);
    }

    /// A KDS response of `bytes` (encoded) sent.
    pub fn kds_response(&self, type_url: &str, bytes: usize) {
        self.kds_responses.add(&[type_url], 1.0);
        self.kds_response_bytes.observe(&[type_url], bytes as f64);
    }

    /// A KDS peer answered a response sent `ms` milliseconds earlier.
    pub fn kds_delivered(&self, ms: f64) {
        self.kds_delivery.observe(&[], ms);
    }

    /// A zone's KDS stream to this global opens (`+1`) or ends (`-1`).
    pub fn kds_zone_connection(&self, zone: &str, delta: f64) {
        self.kds_zone_connections.add(&[zone], delta);
    }

    /// A KDS message from the peer was applied to the store in `seconds`.
    pub fn kds_synced(&self, seconds: f64) {
        self.kds_resources_sync.observe(&[], seconds);
    }

    /// A mesh's round: `changed` when it gave some proxy a new config, else `skip`.
    pub fn xds_generation(&self, ms: f64, changed: bool) {
        let result = if changed { "changed" } else { "skip" };
        self.xds_generation.observe(&["dataplane", result], ms);
    }

    pub fn xds_generation_error(&self) {
        self.xds_generation_errors.add(&[], 1.0);
    }

    pub fn store_op(&self, operation: &str, resource_type: &str, seconds: f64) {
        self.store.observe(&[operation, resource_type], seconds);
    }

    pub fn store_conflict(&self, resource_type: &str) {
        self.store_conflicts.add(&[resource_type], 1.0);
    }

    pub fn set_resource_count(&self, resource_type: &str, n: usize) {
        self.resources.set(&[resource_type], n as f64);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(&[], f64::from(u8::from(leader)));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(&[], f64::from(u8::from(ready)));
    }

    /// The exposition text (format 0.0.4).
    pub fn encode(&self) -> String {
        let zone = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        self.info.encode(&mut out, &zone);
        self.leader.encode(&mut out, &zone);
        self.ready.encode(&mut out, &zone);
        self.resources.encode(&mut out, &zone);
        self.api_duration.encode(&mut out, &zone);
        self.api_inflight.encode(&mut out, &zone);
        streams_gauge(
            &mut out,
            "xds_streams_active",
            &zone,
            self.xds_streams.load(Ordering::Relaxed),
        );
        self.xds_requests.encode(&mut out, &zone);
        self.xds_responses.encode(&mut out, &zone);
        self.xds_response_bytes.encode(&mut out, &zone);
        self.xds_delivery.encode(&mut out, &zone);
        self.xds_generation.encode(&mut out, &zone);
        self.xds_generation_errors.encode(&mut out, &zone);
        streams_gauge(
            &mut out,
            "kds_delta_streams_active",
            &zone,
            self.kds_streams.load(Ordering::Relaxed),
        );
        self.kds_requests.encode(&mut out, &zone);
        self.kds_responses.encode(&mut out, &zone);
        self.kds_response_bytes.encode(&mut out, &zone);
        self.kds_delivery.encode(&mut out, &zone);
        self.kds_zone_connections.encode(&mut out, &zone);
        self.kds_resources_sync.encode(&mut out, &zone);
        self.store.encode(&mut out, &zone);
        self.store_conflicts.encode(&mut out, &zone);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kumas_names_and_the_zone_label() {
        let m = Metrics::new();
        m.set_identity("zone-1", "0.1.0", "cp-1");
        m.set_leader(true);
        m.api_request("/meshes/{mesh}", "GET", 200, 0.02);
        m.api_request("/meshes/{mesh}", "GET", 200, 3.0);
        m.xds_stream(2);
        m.xds_stream(-1);
        m.xds_request("type.googleapis.com/x", false);
        m.xds_request("type.googleapis.com/x", true);
        m.xds_response("type.googleapis.com/x", 3000);
        m.xds_delivered(7.0);
        m.kds_stream(1);
        m.kds_request("type.googleapis.com/k", false);
        m.kds_response("type.googleapis.com/k", 100);
        m.kds_delivered(30.0);
        m.kds_zone_connection("zone-a", 1.0);
        m.kds_synced(0.002);
        m.xds_generation(12.0, true);
        m.store_op("list", "Mesh", 0.001);
        let text = m.encode();
        for line in [
            "cp_info{product=\"Aerie\",version=\"0.1.0\",instance_id=\"cp-1\",based_on_kuma=\"2.14.3\",zone=\"zone-1\"} 1",
            "leader{zone=\"zone-1\"} 1",
            "# TYPE api_server_http_request_duration_seconds histogram",
            "api_server_http_request_duration_seconds_bucket{service=\"\",handler=\"/meshes/{mesh}\",method=\"GET\",code=\"200\",le=\"0.025\",zone=\"zone-1\"} 1",
            "api_server_http_request_duration_seconds_bucket{service=\"\",handler=\"/meshes/{mesh}\",method=\"GET\",code=\"200\",le=\"+Inf\",zone=\"zone-1\"} 2",
            "api_server_http_request_duration_seconds_count{service=\"\",handler=\"/meshes/{mesh}\",method=\"GET\",code=\"200\",zone=\"zone-1\"} 2",
            "xds_streams_active{zone=\"zone-1\"} 1",
            "xds_requests_received{type_url=\"type.googleapis.com/x\",confirmation=\"ACK\",error_type=\"no_error\",zone=\"zone-1\"} 1",
            "xds_requests_received{type_url=\"type.googleapis.com/x\",confirmation=\"NACK\",error_type=\"other\",zone=\"zone-1\"} 1",
            "xds_responses_sent{type_url=\"type.googleapis.com/x\",zone=\"zone-1\"} 1",
            "xds_generation_count{proxy_type=\"dataplane\",result=\"changed\",zone=\"zone-1\"} 1",
            "store_count{operation=\"list\",resource_type=\"Mesh\",zone=\"zone-1\"} 1",
            "xds_responses_sent_bytes_bucket{type_url=\"type.googleapis.com/x\",le=\"2048\",zone=\"zone-1\"} 0",
            "xds_responses_sent_bytes_bucket{type_url=\"type.googleapis.com/x\",le=\"4096\",zone=\"zone-1\"} 1",
            "xds_delivery_bucket{le=\"10\",zone=\"zone-1\"} 1",
            "xds_delivery_sum{zone=\"zone-1\"} 7",
            "kds_delta_streams_active{zone=\"zone-1\"} 1",
            "kds_delta_requests_received{type_url=\"type.googleapis.com/k\",confirmation=\"ACK\",error_type=\"no_error\",zone=\"zone-1\"} 1",
            "kds_delta_responses_sent{type_url=\"type.googleapis.com/k\",zone=\"zone-1\"} 1",
            "kds_delta_delivery_count{zone=\"zone-1\"} 1",
            "kds_zone_active_connections{zone_name=\"zone-a\",zone=\"zone-1\"} 1",
            "kds_resources_sync_count{zone=\"zone-1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
        }
        assert!(!text.contains("_total"), "Kuma's counters have no suffix");
    }
}
