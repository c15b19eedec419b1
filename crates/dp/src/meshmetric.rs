//! MeshMetric in kuma-dp: a Prometheus endpoint per backend on the proxy's address
//! (`networking.address:5670/metrics` by default), serving
//!
//! - the proxy's metrics, in Envoy's names where Aerie has the same quantity
//!   (`envoy_cluster_upstream_rq_total`, `envoy_http_downstream_rq_xx`,
//!   `envoy_http_rbac_denied`, ...: [`envoy_families`]) and its own `aerie_dp_*` ones,
//!   filtered by the profile (`All`, `Basic`, `None`) and the `exclude` / `include`
//!   selectors, counters never incremented left out unless `includeUnused`;
//! - the applications' metrics, scraped when Prometheus scrapes (5 s each, 8 MiB at most),
//!   as they are;
//!
//! every sample carrying the labels Kuma's kuma-dp adds (`mesh`, `dataplane`, `service`,
//! the inbound tags...). Computed at scrape time from the counters the request path keeps
//! anyway: nothing is added to the request path. The endpoints are plain HTTP/1.1 with a
//! header timeout, a connection cap and a bounded lifetime per connection.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aerie_core::policies::meshmetric::{NameSelector, ProfileName, ProxyMetrics};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::proxy::{Inner, Proxy};

/// How long an application may take to answer a scrape.
const APP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most an application's answer may weigh.
const APP_MAX_BYTES: usize = 8 << 20;
/// Connections served at once per endpoint; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// How long a request head may take, and a connection may live.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

// ---- Parsing the exposition text ----

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// The value and timestamp as written.
    pub rest: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses a sample line of the text format; `None` for comments, blank or broken lines.
pub(crate) fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim_start();
    if !line.starts_with(is_name_start) {
        return None;
    }
    let end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let name = &line[..end];
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut s = inner;
        loop {
            s = s.trim_start_matches([' ', ',']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let key_end = s.find(|c: char| !is_name_char(c))?;
            let key = &s[..key_end];
            s = s[key_end..].trim_start().strip_prefix('=')?.trim_start();
            s = s.strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = s.char_indices();
            let close = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            s = &s[close + 1..];
        }
    }
    let rest = rest.trim();
    // A value (a float, `NaN`, `+Inf`), optionally a timestamp.
    let mut tokens = rest.split_whitespace();
    tokens.next()?.parse::<f64>().ok()?;
    if let Some(ts) = tokens.next() {
        ts.parse::<i64>().ok()?;
    }
    if tokens.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        rest: rest.to_string(),
    })
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_sample(out: &mut String, s: &Sample, extra: &BTreeMap<String, String>) {
    out.push_str(&s.name);
    let mut first = true;
    let mut label = |out: &mut String, k: &str, v: &str| {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&escape(v));
        out.push('"');
    };
    for (k, v) in &s.labels {
        label(out, k, v);
    }
    // The sample's own labels win over the added ones.
    for (k, v) in extra {
        if !s.labels.iter().any(|(l, _)| l == k) {
            label(out, k, v);
        }
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&s.rest);
    out.push('\n');
}

/// Prometheus's label-name rule applied to the added labels (`kuma.proxy_role` becomes
/// `kuma_proxy_role`).
fn label_names(extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    extra
        .iter()
        .map(|(k, v)| {
            (
                aerie_core::policies::meshmetric::sanitize_label_name(k),
                v.clone(),
            )
        })
        .collect()
}

/// A metric family: its samples' base name, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family {
    pub name: String,
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

/// The proxy's own families from its registry's text (OpenMetrics, as prometheus-client
/// writes it), each counter named as its samples are (`..._total`).
pub(crate) fn own_families(text: &str) -> Vec<Family> {
    let mut kinds: HashMap<String, &'static str> = HashMap::new();
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut parts = t.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                let kind = match kind {
                    "counter" => "counter",
                    "gauge" => "gauge",
                    "histogram" => "histogram",
                    _ => "untyped",
                };
                let sample_name = if kind == "counter" && !name.ends_with("_total") {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                kinds.insert(sample_name, kind);
            }
            continue;
        }
        let Some(s) = parse_sample(line) else {
            continue;
        };
        match families.iter_mut().find(|f| f.name == s.name) {
            Some(f) => f.samples.push(s),
            None => families.push(Family {
                kind: kinds.get(&s.name).copied().unwrap_or("untyped"),
                name: s.name.clone(),
                samples: vec![s],
            }),
        }
    }
    families
}

fn value_of(s: &Sample) -> f64 {
    s.rest
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn label<'a>(s: &'a Sample, key: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Envoy's stat prefix for a listener: an outbound's service (Envoy's cluster and HTTP
/// connection manager are named after it), an inbound's `localhost_<name>`.
fn envoy_prefix(direction: &str, listener: &str) -> String {
    match direction {
        "inbound" => format!("localhost_{listener}"),
        _ => listener.to_string(),
    }
}

/// Envoy-named families derived from the proxy's own: what a Kuma user's dashboards read.
pub(crate) fn envoy_families(own: &[Family]) -> Vec<Family> {
    let mut sums: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
    let mut add = |name: &str, labels: Vec<(String, String)>, v: f64| {
        *sums.entry((name.to_string(), labels)).or_insert(0.0) += v;
    };
    for f in own {
        for s in &f.samples {
            let v = value_of(s);
            let direction = label(s, "direction").unwrap_or("");
            let listener = label(s, "listener").unwrap_or("");
            let prefix = envoy_prefix(direction, listener);
            let cluster = vec![("envoy_cluster_name".to_string(), prefix.clone())];
            let hcm = vec![("envoy_http_conn_manager_prefix".to_string(), prefix.clone())];
            match f.name.as_str() {
                "aerie_dp_http_requests_total" => {
                    add("envoy_cluster_upstream_rq_total", cluster, v);
                    add("envoy_http_downstream_rq_total", hcm, v);
                }
                "aerie_dp_http_responses_total" => {
                    let class = label(s, "code_class").unwrap_or("").trim_end_matches("xx");
                    let with_class = |base: Vec<(String, String)>| {
                        let mut l =
                            vec![("envoy_response_code_class".to_string(), class.to_string())];
                        l.extend(base);
                        l
                    };
                    add("envoy_cluster_upstream_rq_xx", with_class(cluster), v);
                    add("envoy_http_downstream_rq_xx", with_class(hcm), v);
                }
                "aerie_dp_upstream_connect_errors_total" => {
                    add("envoy_cluster_upstream_cx_connect_fail", cluster, v);
                }
                "aerie_dp_connections_total" => {
                    add(
                        "envoy_listener_downstream_cx_total",
                        vec![("envoy_listener_address".to_string(), prefix)],
                        v,
                    );
                }
                "aerie_dp_rbac_allowed_total"
                | "aerie_dp_rbac_denied_total"
                | "aerie_dp_rbac_shadow_denied_total" => {
                    let name = match f.name.as_str() {
                        "aerie_dp_rbac_allowed_total" => "envoy_http_rbac_allowed",
                        "aerie_dp_rbac_denied_total" => "envoy_http_rbac_denied",
                        _ => "envoy_http_rbac_shadow_denied",
                    };
                    add(
                        name,
                        vec![(
                            "envoy_http_conn_manager_prefix".to_string(),
                            envoy_prefix("inbound", listener),
                        )],
                        v,
                    );
                }
                "aerie_dp_certificate_expiry_seconds" => {
                    add(
                        "envoy_server_days_until_first_cert_expiring",
                        Vec::new(),
                        (v / 86_400.0).floor(),
                    );
                }
                _ => {}
            }
        }
    }
    add("envoy_server_live", Vec::new(), 1.0);
    let mut out: Vec<Family> = Vec::new();
    for ((name, labels), v) in sums {
        let kind = if name.starts_with("envoy_server_") {
            "gauge"
        } else {
            "counter"
        };
        let sample = Sample {
            name: name.clone(),
            labels,
            rest: format_value(v),
        };
        match out.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push(sample),
            None => out.push(Family {
                name,
                kind,
                samples: vec![sample],
            }),
        }
    }
    out
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

// ---- Profiles ----

/// Kuma's Basic profile (kuma-dp's `profiles.go`): metric names containing one of these...
const BASIC_CONTAINS: [&str; 29] = [
    "rq_time",
    "cx_length_ms",
    "cx_count",
    "_rq",
    "bytes",
    "timeout",
    "health_check",
    "lb_healthy_panic",
    "cx_destroy",
    "error",
    "fail",
    "reset",
    "eject",
    "overflow",
    "cancelled",
    "max_duration_reached",
    "no_cluster",
    "no_route",
    "no_filter_chain",
    "reject",
    "denied",
    "days_until_first_cert_expiring",
    "rbac",
    "cx_active",
    "cx_connect",
    "circuit_breakers",
    "cx_total",
    "ssl_handshake",
    "ssl_context_update_by_sds",
];
/// ...or equal to one of these...
const BASIC_EXACT: [&str; 4] = [
    "envoy_cluster_membership_degraded",
    "envoy_cluster_membership_healthy",
    "envoy_cluster_ssl_handshake",
    "envoy_cluster_membership_total",
];
/// ...or starting with one of these.
const BASIC_PREFIX: [&str; 5] = [
    "envoy_server",
    "envoy_control_plane",
    "envoy_dns_filter",
    "envoy_dns_cares",
    "kuma_dp_dns",
];

/// Compiled selectors of one config.
pub(crate) struct Selection {
    profile: ProfileName,
    include: Vec<Matcher>,
    exclude: Vec<Matcher>,
}

enum Matcher {
    Prefix(String),
    Exact(String),
    Contains(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn of(s: &NameSelector) -> Option<Matcher> {
        Some(match s {
            NameSelector::Prefix(p) => Matcher::Prefix(p.clone()),
            NameSelector::Exact(p) => Matcher::Exact(p.clone()),
            NameSelector::Contains(p) => Matcher::Contains(p.clone()),
            // Go's MatchString: anywhere in the name.
            NameSelector::Regex(r) => Matcher::Regex(regex::Regex::new(r).ok()?),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
            Matcher::Exact(p) => name == p,
            Matcher::Contains(p) => name.contains(p.as_str()),
            Matcher::Regex(r) => r.is_match(name),
        }
    }
}

impl Selection {
    pub fn new(cfg: &ProxyMetrics) -> Selection {
        Selection {
            profile: cfg.profile,
            include: cfg.include.iter().filter_map(Matcher::of).collect(),
            exclude: cfg.exclude.iter().filter_map(Matcher::of).collect(),
        }
    }

    /// Kuma's order: the profile, then any exclude drops, then any include brings back.
    pub fn selects(&self, name: &str) -> bool {
        let mut selected = match self.profile {
            ProfileName::All => true,
            ProfileName::None => false,
            ProfileName::Basic => {
                BASIC_CONTAINS.iter().any(|c| name.contains(c))
                    || BASIC_EXACT.contains(&name)
                    || BASIC_PREFIX.iter().any(|p| name.starts_with(p))
            }
        };
        if self.exclude.iter().any(|m| m.matches(name)) {
            selected = false;
        }
        if self.include.iter().any(|m| m.matches(name)) {
            selected = true;
        }
        selected
    }
}

/// The text an endpoint serves for the proxy's own metrics.
pub(crate) fn render_proxy(text: &str, cfg: &ProxyMetrics, selection: &Selection) -> String {
    let extra = label_names(&cfg.labels);
    let own = own_families(text);
    let mut families = envoy_families(&own);
    families.extend(own);
    let mut out = String::new();
    for f in &families {
        if !selection.selects(&f.name) {
            continue;
        }
        let samples: Vec<&Sample> = f
            .samples
            .iter()
            .filter(|s| cfg.include_unused || f.kind != "counter" || value_of(s) != 0.0)
            .collect();
        if samples.is_empty() {
            continue;
        }
        out.push_str(&format!("# TYPE {} {}\n", f.name, f.kind));
        for s in samples {
            write_sample(&mut out, s, &extra);
        }
    }
    out
}

/// An application's exposition text with the proxy's labels added to every sample
/// (comments kept, broken lines dropped, OpenMetrics' `# EOF` left out).
pub(crate) fn relabel(text: &str, extra: &BTreeMap<String, String>) -> String {
    let extra = label_names(extra);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with('#') {
            if line.trim() != "# EOF" {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(s) = parse_sample(line) {
            write_sample(&mut out, &s, &extra);
        }
    }
    out
}

// ---- Serving ----

struct Endpoint {
    path: String,
    cfg: Arc<ProxyMetrics>,
    selection: Selection,
}

struct Running {
    current: Arc<ArcSwap<Endpoint>>,
    task: tokio::task::JoinHandle<()>,
}

/// The proxy's metrics endpoints, by address. Changed at config time only.
#[derive(Default)]
pub(crate) struct MetricsServers {
    running: Mutex<HashMap<SocketAddr, Running>>,
}

impl Drop for MetricsServers {
    fn drop(&mut self) {
        let running = self.running.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            r.task.abort();
        }
    }
}

impl MetricsServers {
    /// Starts, updates and stops endpoints to match `cfg`. Must run inside the proxy's
    /// runtime. An endpoint that cannot bind is logged and retried at the next config.
    pub fn apply(
        &self,
        proxy: &Weak<Inner>,
        handle: &tokio::runtime::Handle,
        cfg: Option<&ProxyMetrics>,
    ) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(cfg) = cfg else {
            for (addr, r) in running.drain() {
                info!(%addr, "MeshMetric endpoint stopped");
                r.task.abort();
            }
            return;
        };
        let shared_cfg = Arc::new(cfg.clone());
        let ip = cfg
            .address
            .parse::<std::net::IpAddr>()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let mut wanted: HashMap<SocketAddr, String> = HashMap::new();
        for p in &cfg.prometheus {
            wanted
                .entry(SocketAddr::new(ip, p.port))
                .or_insert_with(|| p.path.clone());
        }
        running.retain(|addr, r| {
            let keep = wanted.contains_key(addr) && !r.task.is_finished();
            if !keep {
                r.task.abort();
            }
            keep
        });
        for (addr, path) in wanted {
            let endpoint = Endpoint {
                path,
                cfg: shared_cfg.clone(),
                selection: Selection::new(cfg),
            };
            if let Some(r) = running.get(&addr) {
                r.current.store(Arc::new(endpoint));
                continue;
            }
            let std_listener = match std::net::TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    warn!(%addr, error = %e, "cannot bind the MeshMetric endpoint");
                    continue;
                }
            };
            let listener = match std_listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(std_listener))
            {
                Ok(l) => l,
                Err(e) => {
                    warn!(%addr, error = %e, "cannot serve the MeshMetric endpoint");
                    continue;
                }
            };
            info!(%addr, path = %endpoint.path, "MeshMetric endpoint serving");
            let current = Arc::new(ArcSwap::from_pointee(endpoint));
            let task = handle.spawn(serve(listener, current.clone(), proxy.clone()));
            running.insert(addr, Running { current, task });
        }
    }
}

/// Serves one endpoint; the proxy is held weakly (it owns the endpoints), and a request
/// after it is gone gets a 503.
async fn serve(listener: TcpListener, current: Arc<ArcSwap<Endpoint>>, proxy: Weak<Inner>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let current = current.clone();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: Request<Incoming>| {
                let endpoint = current.load_full();
                let proxy = proxy.upgrade().map(|inner| Proxy { inner });
                async move {
                    Ok::<_, Infallible>(match proxy {
                        Some(p) => answer(&p, &endpoint, &req).await,
                        None => plain(StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into()),
                    })
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                debug!(error = %e, "metrics connection error");
            }
        });
    }
}

async fn answer(proxy: &Proxy, e: &Endpoint, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is supported\n".into(),
        );
    }
    if req.uri().path() != e.path {
        return plain(
            StatusCode::NOT_FOUND,
            format!("not found; metrics are at {}\n", e.path),
        );
    }
    let mut body = render_proxy(&proxy.prometheus(), &e.cfg, &e.selection);
    for app in &e.cfg.applications {
        match scrape(&app.address, app.port, &app.path).await {
            Ok(text) => body.push_str(&relabel(&text, &e.cfg.labels)),
            Err(why) => {
                debug!(app = %format!("{}:{}{}", app.address, app.port, app.path), %why, "application metrics unavailable");
            }
        }
    }
    let mut resp = plain(StatusCode::OK, body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// One GET of an application's metrics, bounded in time and size.
async fn scrape(address: &str, port: u16, path: &str) -> Result<String, String> {
    let exchange = async {
        let stream = TcpStream::connect((address, port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        };
        let req = Request::get(path)
            .header(header::HOST, host)
            .header(header::ACCEPT, "text/plain")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), APP_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8".to_string())
    };
    tokio::time::timeout(APP_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_escapes_and_timestamps() {
        assert_eq!(
            parse_sample(r#"a_total{x="1",y="q\"uo}te"} 3 1700000000"#),
            Some(Sample {
                name: "a_total".into(),
                labels: vec![("x".into(), "1".into()), ("y".into(), "q\"uo}te".into())],
                rest: "3 1700000000".into(),
            })
        );
        assert_eq!(
            parse_sample("up 1"),
            Some(Sample {
                name: "up".into(),
                labels: vec![],
                rest: "1".into()
            })
        );
        for bad in [
            "# HELP x y",
            "",
            "{x=\"1\"} 2",
            "x{y=1} 2",
            "x{y=\"1\" 2",
            "x",
        ] {
            assert_eq!(parse_sample(bad), None, "{bad}");
        }
    }

    const OWN: &str = "# HELP aerie_dp_http_requests HTTP requests received.\n# TYPE aerie_dp_http_requests counter\naerie_dp_http_requests_total{direction=\"outbound\",listener=\"backend\"} 7\naerie_dp_http_requests_total{direction=\"inbound\",listener=\"main\"} 0\n# TYPE aerie_dp_http_responses counter\naerie_dp_http_responses_total{direction=\"outbound\",listener=\"backend\",code_class=\"2xx\"} 5\naerie_dp_http_responses_total{direction=\"outbound\",listener=\"backend\",code_class=\"5xx\"} 2\n# TYPE aerie_dp_rbac_denied counter\naerie_dp_rbac_denied_total{listener=\"main\",source_service=\"a\"} 1\naerie_dp_rbac_denied_total{listener=\"main\",source_service=\"b\"} 2\n# TYPE aerie_dp_certificate_expiry_seconds gauge\naerie_dp_certificate_expiry_seconds 172900\n# EOF\n";

    fn cfg(profile: ProfileName) -> ProxyMetrics {
        ProxyMetrics {
            address: "127.0.0.1".into(),
            prometheus: vec![],
            profile,
            include: vec![],
            exclude: vec![],
            include_unused: false,
            applications: vec![],
            labels: BTreeMap::from([
                ("mesh".to_string(), "default".to_string()),
                ("kuma.proxy_role".to_string(), "sidecar".to_string()),
            ]),
        }
    }

    #[test]
    fn envoy_names_are_derived_and_labels_added() {
        let c = cfg(ProfileName::All);
        let text = render_proxy(OWN, &c, &Selection::new(&c));
        for line in [
            "# TYPE envoy_cluster_upstream_rq_total counter",
            "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\",kuma_proxy_role=\"sidecar\",mesh=\"default\"} 7",
            "envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\",envoy_http_conn_manager_prefix=\"backend\",kuma_proxy_role=\"sidecar\",mesh=\"default\"} 2",
            "envoy_http_rbac_denied{envoy_http_conn_manager_prefix=\"localhost_main\",kuma_proxy_role=\"sidecar\",mesh=\"default\"} 3",
            "envoy_server_days_until_first_cert_expiring{kuma_proxy_role=\"sidecar\",mesh=\"default\"} 2",
            "envoy_server_live{kuma_proxy_role=\"sidecar\",mesh=\"default\"} 1",
            "# TYPE aerie_dp_http_requests_total counter",
            "aerie_dp_http_requests_total{direction=\"outbound\",listener=\"backend\",kuma_proxy_role=\"sidecar\",mesh=\"default\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
        }
        // Never incremented: left out (Envoy's `usedonly`), unless includeUnused.
        assert!(!text.contains("listener=\"main\"} 0"), "{text}");
        assert!(!text.contains("EOF"));
        let mut all = cfg(ProfileName::All);
        all.include_unused = true;
        let text = render_proxy(OWN, &all, &Selection::new(&all));
        assert!(text.contains("direction=\"inbound\",listener=\"main\",kuma_proxy_role=\"sidecar\",mesh=\"default\"} 0"), "{text}");
    }

    #[test]
    fn profiles_then_exclude_then_include() {
        let basic = cfg(ProfileName::Basic);
        let s = Selection::new(&basic);
        assert!(s.selects("envoy_cluster_upstream_rq_total"));
        assert!(s.selects("envoy_http_rbac_denied"));
        assert!(s.selects("envoy_server_live"));
        assert!(!s.selects("aerie_dp_config_applied_total"));
        let none = cfg(ProfileName::None);
        assert!(!Selection::new(&none).selects("envoy_cluster_upstream_rq_total"));
        let mut tuned = cfg(ProfileName::Basic);
        tuned.exclude = vec![NameSelector::Contains("rbac".into())];
        tuned.include = vec![
            NameSelector::Regex("rbac_denied$".into()),
            NameSelector::Exact("aerie_dp_config_applied_total".into()),
        ];
        let s = Selection::new(&tuned);
        assert!(!s.selects("envoy_http_rbac_allowed"));
        assert!(
            s.selects("envoy_http_rbac_denied"),
            "include wins over exclude"
        );
        assert!(s.selects("aerie_dp_config_applied_total"));
    }

    #[test]
    fn application_metrics_get_the_proxys_labels() {
        let extra = BTreeMap::from([
            ("mesh".to_string(), "default".to_string()),
            ("service".to_string(), "web".to_string()),
        ]);
        let app = "# HELP orders Orders taken.\n# TYPE orders counter\norders_total{kind=\"x\",service=\"own\"} 4\nbroken line{\nup 1\n# EOF\n";
        assert_eq!(
            relabel(app, &extra),
            "# HELP orders Orders taken.\n# TYPE orders counter\norders_total{kind=\"x\",service=\"own\",mesh=\"default\"} 4\nup{mesh=\"default\",service=\"web\"} 1\n"
        );
    }

    #[tokio::test]
    async fn scraping_an_application_is_bounded() {
        // Nothing listening: an error, not a hang.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(scrape("127.0.0.1", port, "/metrics").await.is_err());
        // A silent application: the scrape gives up (virtual time).
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (_s, _) = silent.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        tokio::time::pause();
        let got = scrape("127.0.0.1", port, "/metrics").await;
        assert_eq!(got, Err("timed out".to_string()));
        hold.abort();
    }
}
