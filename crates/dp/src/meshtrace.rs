//! MeshTrace in the proxy: a span for each traced HTTP request on an inbound (`SERVER`) and
//! an outbound (`CLIENT`), W3C `traceparent` and B3 read and written so that a request
//! through two sidecars (and instrumented applications between them) makes one trace, and
//! an exporter thread that sends finished spans to the policy's backend: OTLP over gRPC
//! (`TraceService/Export`) or Zipkin v2 JSON (`POST` to its url).
//!
//! Sampling follows Envoy's HTTP connection manager, which Kuma configures: a request
//! carrying `x-client-trace-id` is traced with `client` probability, one carrying
//! `x-envoy-force-trace` always, any other with `random` probability, and `overall` caps the
//! result. Where Envoy passes its decision to the next proxy in `x-request-id`, kuma-dp
//! passes it in the trace context it propagates (`traceparent` flags, `x-b3-sampled`): a
//! request that arrives with a decision keeps it, so both sidecars of a hop agree and a
//! trace is never half sampled. An unsampled request without a context gets one (flag 0),
//! so the next proxy does not sample it on its own.
//!
//! The request path pays, per request: a few header lookups and one random draw when
//! unsampled; a boxed [`Span`] and a queue push when sampled. Nothing blocks on the backend:
//! a bounded queue (drop and count when full, `aerie_dp_tracing_spans_dropped_total`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aerie_core::policies::meshtrace::{ProxyTracing, SpanTag, TraceBackend};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;
use tracing::warn;

use crate::accesslog::BackendLabels;

/// Finished spans waiting for the exporter, at most.
pub(crate) const QUEUE_SPANS: usize = 8192;
/// Spans sent in one export, at most.
const BATCH: usize = 512;
/// How long the exporter gathers a batch after its first span.
const GATHER: Duration = Duration::from_millis(100);
/// One export's deadline (connect and answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a span keeps of a caller-sent tag value (Envoy's default `max_path_tag_length`).
const TAG_BYTES: usize = 256;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static B3: HeaderName = HeaderName::from_static("b3");
static B3_TRACE: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
static CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");
static FORCE_TRACE: HeaderName = HeaderName::from_static("x-envoy-force-trace");
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which side of the proxy a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An inbound: the request as the destination's sidecar received it.
    Server,
    /// An outbound: the request as the caller's sidecar sent it on.
    Client,
}

/// A trace context read from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Context {
    pub trace_id: u128,
    pub span_id: u64,
    /// B3's `x-b3-parentspanid` (W3C does not carry it).
    pub parent_id: Option<u64>,
    /// The upstream's decision; none: it left it to us (B3 without `x-b3-sampled`).
    pub sampled: Option<bool>,
    /// Whether the context came in B3 headers (then it goes on in B3 as well).
    pub b3: bool,
}

/// Reads `traceparent` (version 00 and later versions' first four fields) and B3 (the
/// single `b3` header, else the `x-b3-*` headers); `prefer_b3` (a Zipkin tracer) takes B3
/// when both came, W3C otherwise. Malformed contexts are ignored (a new trace starts), as
/// the W3C recommendation says.
pub(crate) fn extract(headers: &HeaderMap, prefer_b3: bool) -> Option<Context> {
    let w3c = || {
        headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
    };
    if prefer_b3 {
        extract_b3(headers).or_else(w3c)
    } else {
        w3c().or_else(|| extract_b3(headers))
    }
}

fn extract_b3(headers: &HeaderMap) -> Option<Context> {
    if let Some(v) = headers.get(&B3).and_then(|v| v.to_str().ok()) {
        return parse_b3_single(v);
    }
    let trace_id = headers
        .get(&B3_TRACE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_trace_id)?;
    let span_id = headers
        .get(&B3_SPAN)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_span_id)?;
    let parent_id = headers
        .get(&B3_PARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_span_id);
    let debug = headers.get(&B3_FLAGS).is_some_and(|v| v.as_bytes() == b"1");
    let sampled = match headers.get(&B3_SAMPLED).map(HeaderValue::as_bytes) {
        _ if debug => Some(true),
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        _ => None,
    };
    Some(Context {
        trace_id,
        span_id,
        parent_id,
        sampled,
        b3: true,
    })
}

fn parse_traceparent(v: &str) -> Option<Context> {
    let mut parts = v.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    // Version ff is invalid; version 00 has exactly four fields.
    if version.len() != 2
        || version.eq_ignore_ascii_case("ff")
        || !version.bytes().all(|b| b.is_ascii_hexdigit())
        || (version == "00" && parts.next().is_some())
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let trace_id = parse_trace_id(trace)?;
    let span_id = parse_span_id(span)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Context {
        trace_id,
        span_id,
        parent_id: None,
        sampled: Some(flags & 1 == 1),
        b3: false,
    })
}

/// `{trace}-{span}[-{sampled}[-{parent}]]`, or a lone decision `0`, `1`, `d`.
fn parse_b3_single(v: &str) -> Option<Context> {
    let mut parts = v.trim().split('-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    let parent_id = match parts.next() {
        None => None,
        Some(p) => Some(parse_span_id(p)?),
    };
    Some(Context {
        trace_id: parse_trace_id(trace)?,
        span_id: parse_span_id(span)?,
        parent_id,
        sampled,
        b3: true,
    })
}

/// 16 or 32 lowercase or uppercase hex digits, not all zero.
/// Lower- or upper-case hex digits, in one pass.
fn parse_hex(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(d))
    })
}

fn parse_trace_id(s: &str) -> Option<u128> {
    if s.len() != 16 && s.len() != 32 {
        return None;
    }
    parse_hex(s).filter(|v| *v != 0)
}

fn parse_span_id(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    parse_hex(s)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v != 0)
}

fn new_span_id() -> u64 {
    loop {
        let id = crate::rng::random_below(u64::MAX);
        if id != 0 {
            return id;
        }
    }
}

fn new_trace_id(bits128: bool) -> u128 {
    let low = u128::from(new_span_id());
    if bits128 {
        (u128::from(new_span_id()) << 64) | low
    } else {
        low
    }
}

/// What a span keeps of a value the caller sent (its URL, headers): at most
/// [`TAG_BYTES`], as Envoy caps `http.url` (`max_path_tag_length`). A caller that forces
/// tracing cannot fill the span queue with its large headers.
fn capped(v: &str) -> String {
    let mut end = v.len().min(TAG_BYTES);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}

/// `00-<trace id>-<span id>-<flags>`, written without the formatting machinery: every
/// request that is not traced still carries it on (the decision for the next hop).
fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (i, b) in out[3..35].iter_mut().enumerate() {
        *b = HEX[((trace_id >> (124 - 4 * i)) & 0xf) as usize];
    }
    for (i, b) in out[36..52].iter_mut().enumerate() {
        *b = HEX[((span_id >> (60 - 4 * i)) & 0xf) as usize];
    }
    if sampled {
        out[54] = b'1';
    }
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn header(text: &str) -> HeaderValue {
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Counters of the span exporters, by backend.
#[derive(Clone, Default)]
pub(crate) struct SpanMetrics {
    pub exported: Family<BackendLabels, Counter>,
    pub dropped: Family<BackendLabels, Counter>,
}

/// The proxy's MeshTrace: sampling, tags and the exporter's queue. One per applied config
/// that traces, shared by every listener; kept across applies that leave it as it is.
pub(crate) struct Tracer {
    pub cfg: ProxyTracing,
    /// The Dataplane's name (Envoy's `node_id` tag).
    node_id: Arc<str>,
    /// Zipkin with `sharedSpanContext`: an inbound reuses the caller's span id.
    shared_context: bool,
    /// Zipkin: B3 headers go out with every traced request.
    b3_out: bool,
    trace_id_128bit: bool,
    queue: mpsc::Sender<FinishedSpan>,
    dropped: Counter,
}

impl Tracer {
    /// Starts the exporter for `cfg` (a thread with its own runtime; it ends once the tracer
    /// and its spans are gone, after sending what is queued).
    pub fn start(cfg: &ProxyTracing, node_id: &str, metrics: &SpanMetrics) -> Arc<Tracer> {
        let labels = BackendLabels {
            backend: cfg.backend.label(),
        };
        let exported = metrics.exported.get_or_create(&labels).clone();
        let dropped = metrics.dropped.get_or_create(&labels).clone();
        let (tx, rx) = mpsc::channel(QUEUE_SPANS);
        let exporter = Exporter {
            backend: cfg.backend.clone(),
            service: cfg.service.clone(),
            exported,
            dropped: dropped.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("span-exporter".into())
            .spawn(move || exporter.run(rx));
        if let Err(e) = spawned {
            // The receiver went with the closure: every span is dropped and counted.
            warn!(backend = %labels.backend, error = %e, "cannot start the span exporter");
        }
        let (shared_context, b3_out, trace_id_128bit) = match &cfg.backend {
            TraceBackend::Zipkin {
                shared_span_context,
                trace_id_128bit,
                ..
            } => (*shared_span_context, true, *trace_id_128bit),
            TraceBackend::OpenTelemetry { .. } => (false, false, true),
        };
        Arc::new(Tracer {
            cfg: cfg.clone(),
            node_id: node_id.into(),
            shared_context,
            b3_out,
            trace_id_128bit,
            queue: tx,
            dropped,
        })
    }

    /// Envoy's decision for a request without an upstream decision.
    fn sample(&self, headers: &HeaderMap) -> bool {
        let rates = &self.cfg.sampling;
        let traced = if headers.contains_key(&CLIENT_TRACE_ID) {
            crate::rng::chance(rates.client)
        } else if headers.contains_key(&FORCE_TRACE) {
            true
        } else {
            crate::rng::chance(rates.random)
        };
        traced && crate::rng::chance(rates.overall)
    }

    /// Decides whether `req` is traced here, rewrites its trace context for the next hop
    /// and, when traced, starts its span. `destination`: the service the request is for;
    /// `peer`: the address it came from.
    pub fn begin<B>(
        self: &Arc<Self>,
        req: &mut Request<B>,
        kind: Kind,
        destination: &str,
        peer: SocketAddr,
    ) -> Option<Box<Span>> {
        let incoming = extract(req.headers(), self.b3_out);
        let sampled = match incoming.and_then(|c| c.sampled) {
            Some(decided) => decided,
            None => self.sample(req.headers()),
        };
        if !sampled {
            if incoming.is_none() {
                // Pass the decision on, so the next proxy does not sample on its own.
                let trace_id = new_trace_id(self.trace_id_128bit);
                let span_id = new_span_id();
                let headers = req.headers_mut();
                headers.insert(TRACEPARENT.clone(), traceparent(trace_id, span_id, false));
                if self.b3_out {
                    headers.insert(B3_SAMPLED.clone(), HeaderValue::from_static("0"));
                }
            }
            return None;
        }
        let start = SystemTime::now();
        let started = Instant::now();
        let (trace_id, span_id, parent_id, shared) = match incoming {
            // Zipkin's shared span context: the server half of the caller's span.
            Some(c) if kind == Kind::Server && self.shared_context && c.b3 => {
                (c.trace_id, c.span_id, c.parent_id, true)
            }
            Some(c) => (c.trace_id, new_span_id(), Some(c.span_id), false),
            None => (
                new_trace_id(self.trace_id_128bit),
                new_span_id(),
                None,
                false,
            ),
        };
        let headers = req.headers();
        let mut attributes: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(12);
        let mut put = |k: &'static str, v: Value| attributes.push((Cow::Borrowed(k), v));
        put("node_id", Value::Str(self.node_id.to_string()));
        put("component", Value::Str("proxy".into()));
        put("http.method", Value::Str(req.method().as_str().to_string()));
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or(destination);
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        put(
            "http.url",
            Value::Str(capped(&format!("http://{host}{path}"))),
        );
        put(
            "http.protocol",
            Value::Str(format!("{:?}", req.version()).replace("HTTP/2.0", "HTTP/2")),
        );
        for (tag, name) in [
            ("user_agent", http::header::USER_AGENT),
            ("guid:x-request-id", REQUEST_ID.clone()),
        ] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                put(tag, Value::Str(capped(v)));
            }
        }
        put("peer.address", Value::Str(peer.ip().to_string()));
        put("upstream_cluster", Value::Str(destination.to_string()));
        for t in &self.cfg.tags {
            let value = match t {
                SpanTag::Literal { value, .. } => Some(value.clone()),
                SpanTag::Header {
                    header, default, ..
                } => headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(capped)
                    .or_else(|| default.clone()),
            };
            if let Some(v) = value {
                attributes.push((Cow::Owned(t.name().to_string()), Value::Str(v)));
            }
        }
        let name = format!("{} {destination}", req.method());
        // The next hop continues from this span.
        let headers = req.headers_mut();
        headers.insert(TRACEPARENT.clone(), traceparent(trace_id, span_id, true));
        if self.b3_out || incoming.is_some_and(|c| c.b3) {
            headers.remove(&B3);
            let width = if trace_id >> 64 == 0 && !self.trace_id_128bit {
                16
            } else {
                32
            };
            headers.insert(
                B3_TRACE.clone(),
                header(&format!("{trace_id:0width$x}", width = width)),
            );
            headers.insert(B3_SPAN.clone(), header(&format!("{span_id:016x}")));
            match parent_id {
                Some(p) => {
                    headers.insert(B3_PARENT.clone(), header(&format!("{p:016x}")));
                }
                None => {
                    headers.remove(&B3_PARENT);
                }
            }
            headers.insert(B3_SAMPLED.clone(), HeaderValue::from_static("1"));
        }
        Some(Box::new(Span {
            tracer: self.clone(),
            finished: FinishedSpan {
                trace_id,
                span_id,
                parent_id,
                shared,
                kind,
                name,
                start,
                duration: Duration::ZERO,
                attributes,
                error: false,
                remote: Some(peer),
            },
            started,
        }))
    }
}

/// A tag's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Value {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

/// A traced request in flight.
pub(crate) struct Span {
    tracer: Arc<Tracer>,
    finished: FinishedSpan,
    started: Instant,
}

impl Span {
    /// The response head: status (none: no response), response flags and the upstream.
    pub fn respond(&mut self, status: Option<u16>, flags: u16, upstream: Option<SocketAddr>) {
        let f = &mut self.finished;
        if let Some(s) = status {
            f.attributes
                .push(("http.status_code".into(), Value::Int(i64::from(s))));
        }
        let mut text = String::new();
        crate::accesslog::write_flags(flags, &mut text);
        f.attributes
            .push(("response_flags".into(), Value::Str(text)));
        if let Some(u) = upstream {
            f.attributes
                .push(("upstream_address".into(), Value::Str(u.to_string())));
            // A client span's remote end is the server it reached.
            if f.kind == Kind::Client {
                f.remote = Some(u);
            }
        }
        // Envoy marks 5xx answers and missing answers as errors.
        f.error = status.is_none_or(|s| s >= 500);
        if f.error {
            f.attributes.push(("error".into(), Value::Bool(true)));
        }
    }

    /// The response ended (`complete`: with its last byte) or was abandoned.
    pub fn finish(mut self, complete: bool) {
        self.finished.duration = self.started.elapsed();
        if !complete && !self.finished.error {
            self.finished.error = true;
            self.finished
                .attributes
                .push((Cow::Borrowed("error"), Value::Bool(true)));
        }
        let tracer = self.tracer.clone();
        if tracer.queue.try_send(self.finished).is_err() {
            tracer.dropped.inc();
        }
    }
}

/// A span ready to send.
#[derive(Debug, Clone)]
pub(crate) struct FinishedSpan {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_id: Option<u64>,
    /// Zipkin's `shared`: the server half of a span the client started.
    pub shared: bool,
    pub kind: Kind,
    pub name: String,
    pub start: SystemTime,
    pub duration: Duration,
    pub attributes: Vec<(Cow<'static, str>, Value)>,
    pub error: bool,
    pub remote: Option<SocketAddr>,
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sends one tracer's spans.
struct Exporter {
    backend: TraceBackend,
    service: String,
    exported: Counter,
    dropped: Counter,
}

impl Exporter {
    fn run(self, rx: mpsc::Receiver<FinishedSpan>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                warn!(error = %e, "cannot start the span exporter's runtime");
                return;
            }
        };
        rt.block_on(self.export_all(rx));
    }

    async fn export_all(self, mut rx: mpsc::Receiver<FinishedSpan>) {
        let mut otlp = None;
        let mut last_warning: Option<Instant> = None;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let gather = tokio::time::sleep(GATHER);
            tokio::pin!(gather);
            while batch.len() < BATCH {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(s) => batch.push(s),
                        None => break,
                    },
                    _ = &mut gather => break,
                }
            }
            let n = batch.len() as u64;
            let sent = match &self.backend {
                TraceBackend::OpenTelemetry { endpoint } => {
                    let client = match &mut otlp {
                        Some(c) => Ok(c),
                        None => otlp_client(endpoint).map(|c| otlp.insert(c)),
                    };
                    match client {
                        Ok(c) => {
                            let req = otlp_request(&self.service, &batch);
                            tokio::time::timeout(EXPORT_TIMEOUT, c.export(req))
                                .await
                                .map_err(|_| "timed out".to_string())
                                .and_then(|r| r.map(|_| ()).map_err(|s| s.to_string()))
                        }
                        Err(e) => Err(e),
                    }
                }
                TraceBackend::Zipkin {
                    url,
                    trace_id_128bit,
                    ..
                } => {
                    let body = zipkin_json(&self.service, &batch, *trace_id_128bit);
                    tokio::time::timeout(EXPORT_TIMEOUT, post_json(url, body))
                        .await
                        .map_err(|_| "timed out".to_string())
                        .and_then(|r| r)
                }
            };
            match sent {
                Ok(()) => {
                    self.exported.inc_by(n);
                }
                Err(e) => {
                    self.dropped.inc_by(n);
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        last_warning = Some(Instant::now());
                        warn!(backend = %self.backend.label(), error = %e, spans = n, "cannot send spans; dropped");
                    }
                }
            }
        }
    }
}

type OtlpClient =
    opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
        tonic::transport::Channel,
    >;

fn otlp_client(endpoint: &str) -> Result<OtlpClient, String> {
    otlp_channel(endpoint, EXPORT_TIMEOUT).map(OtlpClient::new)
}

/// A gRPC channel to an OTLP collector (`host:port`, or a URL), connected on first use;
/// needs a tokio runtime's context. Shared by the span and access-log exporters.
pub(crate) fn otlp_channel(
    endpoint: &str,
    timeout: Duration,
) -> Result<tonic::transport::Channel, String> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Ok(tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .connect_lazy())
}

/// An OTLP export request: one resource (`service.name`), one scope (`kuma-dp`).
pub(crate) fn otlp_request(
    service: &str,
    spans: &[FinishedSpan],
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span, status,
    };
    let kv = |k: &str, v: &Value| KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(match v {
                Value::Str(s) => any_value::Value::StringValue(s.clone()),
                Value::Int(i) => any_value::Value::IntValue(*i),
                Value::Bool(b) => any_value::Value::BoolValue(*b),
            }),
        }),
        ..Default::default()
    };
    let spans = spans
        .iter()
        .map(|s| {
            let start = unix_nanos(s.start);
            let end = start.saturating_add(u64::try_from(s.duration.as_nanos()).unwrap_or(0));
            OtlpSpan {
                trace_id: s.trace_id.to_be_bytes().to_vec(),
                span_id: s.span_id.to_be_bytes().to_vec(),
                parent_span_id: s
                    .parent_id
                    .map(|p| p.to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: s.name.clone(),
                kind: match s.kind {
                    Kind::Server => span::SpanKind::Server,
                    Kind::Client => span::SpanKind::Client,
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: s.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                status: Some(Status {
                    message: String::new(),
                    code: if s.error {
                        status::StatusCode::Error
                    } else {
                        status::StatusCode::Unset
                    } as i32,
                }),
                ..Default::default()
            }
        })
        .collect();
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &Value::Str(service.to_string()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "kuma-dp".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Zipkin v2 JSON (`[{traceId, id, parentId, kind, name, timestamp, duration,
/// localEndpoint, remoteEndpoint, tags, shared}]`), times in microseconds.
pub(crate) fn zipkin_json(service: &str, spans: &[FinishedSpan], trace_id_128bit: bool) -> String {
    let list: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let mut o = serde_json::Map::new();
            let trace = if trace_id_128bit || s.trace_id >> 64 != 0 {
                format!("{:032x}", s.trace_id)
            } else {
                format!("{:016x}", s.trace_id)
            };
            o.insert("traceId".into(), trace.into());
            if let Some(p) = s.parent_id {
                o.insert("parentId".into(), format!("{p:016x}").into());
            }
            o.insert("id".into(), format!("{:016x}", s.span_id).into());
            o.insert(
                "kind".into(),
                match s.kind {
                    Kind::Server => "SERVER",
                    Kind::Client => "CLIENT",
                }
                .into(),
            );
            o.insert("name".into(), s.name.to_ascii_lowercase().into());
            o.insert("timestamp".into(), (unix_nanos(s.start) / 1000).into());
            o.insert(
                "duration".into(),
                (u64::try_from(s.duration.as_micros()).unwrap_or(u64::MAX))
                    .max(1)
                    .into(),
            );
            let mut local = serde_json::Map::new();
            local.insert("serviceName".into(), service.into());
            o.insert("localEndpoint".into(), local.into());
            if let Some(r) = s.remote {
                let mut remote = serde_json::Map::new();
                endpoint_ip(&mut remote, r);
                o.insert("remoteEndpoint".into(), remote.into());
            }
            let tags: serde_json::Map<String, serde_json::Value> = s
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.text().into_owned().into()))
                .collect();
            o.insert("tags".into(), tags.into());
            if s.shared {
                o.insert("shared".into(), true.into());
            }
            o.into()
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn endpoint_ip(o: &mut serde_json::Map<String, serde_json::Value>, addr: SocketAddr) {
    let key = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
    o.insert(key.into(), addr.ip().to_string().into());
    o.insert("port".into(), addr.port().into());
}

/// `POST`s a JSON body to an `http://` url; a non-2xx answer is an error.
async fn post_json(url: &str, body: String) -> Result<(), String> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let uri: http::Uri = url.parse().map_err(|e| format!("bad url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// urls are supported"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(conn);
    let req = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    // Read the answer so the connection closes cleanly.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

#[cfg(test)]
mod tests;
