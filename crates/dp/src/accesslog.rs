//! MeshAccessLog in kuma-dp: a line per HTTP request or TCP connection, written off the
//! request path.
//!
//! - Config time: each listener's [`AccessLog`] compiles into a [`ListenerLog`] (formats
//!   parsed once, Kuma's `%KUMA_*%` values of the listener turned into text) whose outputs
//!   share one [`Sink`] per backend (file path or TCP address) across listeners and config
//!   versions ([`Sinks`]).
//! - Request time: [`ListenerLog::begin`] captures what the formats need from the request
//!   head (only the headers they name), the forwarding runs inside [`track`] (a task-local
//!   slot where the upstream chosen and Envoy's response flags are noted), and
//!   [`Pending::finish`] renders the line once the response body ended (its bytes, the
//!   whole duration) and hands it to the sink's bounded queue: a full queue drops the line
//!   and counts it, never waits.
//! - Each sink has one writer thread: a file opened for append (reopened after an error),
//!   or a TCP connection to the collector (redialled at most once a second, lines dropped
//!   and counted while it is down).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aerie_core::policies::callers::{Caller, CallerMatch};
use aerie_core::policies::meshaccesslog::format::{
    DEFAULT_HTTP_FORMAT, DEFAULT_TCP_FORMAT, Op, Segment, parse,
};
use aerie_core::policies::meshaccesslog::{AccessLog, LogBackend, LogFormat, LogValues};
use aerie_core::policies::meshtrafficpermission::PeerIdentity;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prometheus_client::metrics::counter::Counter;
use tracing::warn;

/// Bytes of rendered lines a backend buffers before new lines are
/// dropped.
pub(crate) const BUFFER_BYTES: usize = 4 << 20;
/// OTLP log records an OpenTelemetry backend holds before new ones are dropped (they are
/// also held to [`BUFFER_BYTES`] of encoded size: a caller's large headers cannot grow it).
const RECORDS_HELD: usize = 16384;
/// Records in one OTLP export request at most.
const OTLP_BATCH: usize = 2048;
/// How long an OTLP export may take.
const OTLP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP collector may take to accept a connection or a write.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a failed file or TCP collector is retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often a writer drains its queue.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

// ---- Response flags (Envoy's `%RESPONSE_FLAGS%`) ----

/// No healthy upstream.
pub(crate) const UH: u16 = 1;
/// Upstream connection failure.
pub(crate) const UF: u16 = 1 << 1;
/// Upstream overflow (circuit breaker).
pub(crate) const UO: u16 = 1 << 2;
/// Upstream request timeout.
pub(crate) const UT: u16 = 1 << 3;
/// Upstream connection termination (reset before the response headers).
pub(crate) const UC: u16 = 1 << 4;
/// Upstream retry limit exceeded.
pub(crate) const URX: u16 = 1 << 5;
/// Stream idle timeout.
pub(crate) const SI: u16 = 1 << 6;
/// Upstream max stream duration reached.
pub(crate) const UMSDR: u16 = 1 << 7;
/// Delay injected (MeshFaultInjection).
pub(crate) const DI: u16 = 1 << 8;
/// Fault injected: an abort (MeshFaultInjection).
pub(crate) const FI: u16 = 1 << 9;
/// Rate limited (MeshRateLimit).
pub(crate) const RL: u16 = 1 << 10;
/// Downstream connection termination before the response ended.
pub(crate) const DC: u16 = 1 << 11;

const FLAG_NAMES: [(u16, &str); 12] = [
    (UH, "UH"),
    (UF, "UF"),
    (UO, "UO"),
    (UT, "UT"),
    (UC, "UC"),
    (URX, "URX"),
    (SI, "SI"),
    (UMSDR, "UMSDR"),
    (DI, "DI"),
    (FI, "FI"),
    (RL, "RL"),
    (DC, "DC"),
];

/// Envoy's text of a set of response flags (`UF,URX`; `-` for none).
pub(crate) fn write_flags(flags: u16, out: &mut String) {
    if flags == 0 {
        out.push('-');
        return;
    }
    let mut first = true;
    for (bit, name) in FLAG_NAMES {
        if flags & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// The flag a listener error counter kind stands for (0: none).
pub(crate) fn flag_of(kind: &str) -> u16 {
    match kind {
        "upstream_rq_none_healthy" | "upstream_cx_none_healthy" => UH,
        "upstream_overflow" | "upstream_cx_pool_overflow" | "upstream_retry_overflow" => UO,
        "upstream_request_timeout" | "upstream_per_try_timeout" => UT,
        "upstream_request" => UC,
        "stream_idle_timeout" => SI,
        "upstream_max_stream_duration" => UMSDR,
        "rate_limited" => RL,
        _ => 0,
    }
}

/// What the forwarding of one logged request notes down as it goes: the endpoint of the
/// last attempt and the response flags.
#[derive(Clone, Copy, Default)]
struct Noted {
    upstream: Option<SocketAddr>,
    flags: u16,
}

thread_local! {
    /// The notes of the [`Tracked`] future being polled on this thread (`None`: none is).
    static NOTED: Cell<Option<Noted>> = const { Cell::new(None) };
}

/// Runs `fut` so that what its forwarding notes ([`note_upstream`], [`note_flag`]) comes
/// back with its output.
pub(crate) fn track<F: Future>(fut: F) -> Tracked<F> {
    Tracked {
        fut,
        noted: Noted::default(),
    }
}

pin_project_lite::pin_project! {
    /// See [`track`]. Its size is its future's plus a few bytes (an `async` wrapper or a
    /// tokio task-local would hold the future more than once), and a poll costs two
    /// thread-local swaps.
    pub(crate) struct Tracked<F> {
        #[pin]
        fut: F,
        noted: Noted,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = (F::Output, Option<SocketAddr>, u16);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Restores the outer notes (a tracked future inside another) even if `fut` panics.
        struct Restore<'a> {
            outer: Option<Noted>,
            noted: &'a mut Noted,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(n) = NOTED.replace(self.outer) {
                    *self.noted = n;
                }
            }
        }
        let restore = Restore {
            outer: NOTED.replace(Some(*this.noted)),
            noted: &mut *this.noted,
        };
        let out = this.fut.poll(cx);
        drop(restore);
        out.map(|out| (out, this.noted.upstream, this.noted.flags))
    }
}

/// The endpoint an attempt went to (the last attempt's is logged). Outside [`track`]: a
/// thread-local lookup, nothing else.
pub(crate) fn note_upstream(addr: SocketAddr) {
    NOTED.with(|n| {
        if let Some(mut noted) = n.get() {
            noted.upstream = Some(addr);
            n.set(Some(noted));
        }
    });
}

/// A response flag (see [`flag_of`]).
pub(crate) fn note_flag(flag: u16) {
    if flag == 0 {
        return;
    }
    NOTED.with(|n| {
        if let Some(mut noted) = n.get() {
            noted.flags |= flag;
            n.set(Some(noted));
        }
    });
}

// ---- Sinks ----

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SinkKey {
    File(String),
    Tcp(String),
    /// An OTLP collector, with the resource's `kuma.mesh` and `kuma.zone`.
    Otel {
        endpoint: String,
        mesh: String,
        zone: String,
    },
}

impl SinkKey {
    fn label(&self) -> String {
        match self {
            SinkKey::File(p) => format!("file:{p}"),
            SinkKey::Tcp(a) => format!("tcp:{a}"),
            SinkKey::Otel { endpoint, .. } => format!("otel:{endpoint}"),
        }
    }
}

/// One backend's buffer: the request path renders its line straight into it (under a lock
/// held for that render only, so lines keep the order requests ended in), and the writer
/// thread swaps it out on a timer. No allocation, channel or wake-up per line. The writer
/// thread ends once every [`Sink`] handle is gone.
pub(crate) struct Sink {
    buffers: Arc<Buffers>,
}

struct Buffers {
    queued: Mutex<Queued>,
    /// Bytes of lines held at most.
    cap: usize,
    dropped: Counter,
}

/// What waits for the writer.
#[derive(Default)]
struct Queued {
    text: String,
    lines: u64,
    /// An OpenTelemetry backend's records (its `text` stays empty), and their encoded size.
    records: Vec<LogRecord>,
    record_bytes: usize,
}

impl Buffers {
    fn new(cap: usize, dropped: Counter) -> Buffers {
        Buffers {
            queued: Mutex::default(),
            cap,
            dropped,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink {
    /// Appends the line `render` writes (newline included), or drops and counts it when
    /// the buffer is full.
    fn log(&self, render: impl FnOnce(&mut String)) {
        let b = &*self.buffers;
        let mut q = b.lock();
        let before = q.text.len();
        render(&mut q.text);
        if q.text.len() > b.cap {
            q.text.truncate(before);
            b.dropped.inc();
        } else {
            q.lines += 1;
        }
    }

    /// Appends an OTLP log record, or drops and counts it when the buffer is full.
    fn log_record(&self, record: LogRecord) {
        let b = &*self.buffers;
        let size = prost::Message::encoded_len(&record);
        let mut q = b.lock();
        if q.records.len() >= RECORDS_HELD || q.record_bytes + size > b.cap {
            b.dropped.inc();
        } else {
            q.records.push(record);
            q.record_bytes += size;
        }
    }
}

/// Counters of the access logs, by backend.
#[derive(Clone, Default)]
pub(crate) struct SinkMetrics {
    pub written: prometheus_client::metrics::family::Family<BackendLabels, Counter>,
    pub dropped: prometheus_client::metrics::family::Family<BackendLabels, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct BackendLabels {
    pub backend: String,
}

/// The proxy's sinks, shared by every listener and config version that names the same
/// backend. Taken at config time only.
#[derive(Default)]
pub(crate) struct Sinks {
    open: Mutex<HashMap<SinkKey, Weak<Sink>>>,
    metrics: SinkMetrics,
}

impl Sinks {
    pub fn new(metrics: SinkMetrics) -> Sinks {
        Sinks {
            open: Mutex::default(),
            metrics,
        }
    }

    fn get(&self, key: SinkKey) -> Arc<Sink> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.strong_count() > 0);
        if let Some(sink) = open.get(&key).and_then(Weak::upgrade) {
            return sink;
        }
        let labels = BackendLabels {
            backend: key.label(),
        };
        let written = self.metrics.written.get_or_create(&labels).clone();
        let dropped = self.metrics.dropped.get_or_create(&labels).clone();
        let buffers = Arc::new(Buffers::new(BUFFER_BYTES, dropped.clone()));
        let writer = Writer {
            key: key.clone(),
            written,
            dropped,
        };
        let drained = buffers.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(&drained));
        if let Err(e) = spawned {
            // Nothing drains the buffer: once full, every line is dropped and counted.
            warn!(backend = %key.label(), error = %e, "cannot start an access log writer");
        }
        let sink = Arc::new(Sink { buffers });
        open.insert(key, Arc::downgrade(&sink));
        sink
    }
}

/// A sink's writer thread.
struct Writer {
    key: SinkKey,
    written: Counter,
    dropped: Counter,
}

/// Where a writer writes.
enum Out {
    File(std::io::BufWriter<std::fs::File>),
    Tcp(std::io::BufWriter<TcpStream>),
}

impl Out {
    fn get_mut(&mut self) -> &mut dyn std::io::Write {
        match self {
            Out::File(f) => f,
            Out::Tcp(t) => t,
        }
    }
}

impl Writer {
    fn open(&self) -> std::io::Result<Out> {
        match &self.key {
            SinkKey::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Ok(Out::File(std::io::BufWriter::new(f)))
            }
            SinkKey::Tcp(address) => {
                let addr = tcp_target(address)?;
                let s = TcpStream::connect_timeout(&addr, TCP_TIMEOUT)?;
                s.set_write_timeout(Some(TCP_TIMEOUT))?;
                s.set_nodelay(true)?;
                Ok(Out::Tcp(std::io::BufWriter::new(s)))
            }
            // Written by `run_otel`, never opened as a stream.
            SinkKey::Otel { .. } => Err(std::io::Error::other("not a line backend")),
        }
    }

    fn run(self, buffers: &Arc<Buffers>) {
        if let SinkKey::Otel { .. } = &self.key {
            return self.run_otel(buffers);
        }
        let mut out: Option<Out> = None;
        let mut retry_at: Option<Instant> = None;
        let mut spare = String::new();
        loop {
            // The request path never wakes this thread: it drains the buffer on a timer, so
            // a request pays for rendering into it only, and a drain is one write
            // (Envoy flushes file logs on a timer too).
            std::thread::sleep(FLUSH_EVERY);
            // Every handle gone: this is the last drain (nothing can append any more).
            let last = Arc::strong_count(buffers) == 1;
            let lines = {
                let mut q = buffers.lock();
                std::mem::swap(&mut q.text, &mut spare);
                std::mem::take(&mut q.lines)
            };
            if lines > 0 {
                self.write(&mut out, &mut retry_at, &spare, lines);
            }
            spare.clear();
            // A burst's buffer is not kept for ever.
            if spare.capacity() > buffers.cap / 4 {
                spare = String::new();
            }
            if last {
                break;
            }
        }
        if let Some(mut o) = out {
            let _ = o.get_mut().flush();
        }
    }

    /// Writes `lines` lines (`text`), opening the backend first if it is not open and not
    /// waiting for a retry; counts them written or dropped.
    fn write(&self, out: &mut Option<Out>, retry_at: &mut Option<Instant>, text: &str, lines: u64) {
        if out.is_none() && retry_at.is_none_or(|at| Instant::now() >= at) {
            match self.open() {
                Ok(o) => {
                    *out = Some(o);
                    *retry_at = None;
                }
                Err(e) => {
                    warn!(backend = %self.key.label(), error = %e, "access log backend unavailable; dropping lines");
                    *retry_at = Some(Instant::now() + RETRY_EVERY);
                }
            }
        }
        let Some(o) = out else {
            self.dropped.inc_by(lines);
            return;
        };
        let w = o.get_mut();
        if w.write_all(text.as_bytes()).is_ok() && w.flush().is_ok() {
            self.written.inc_by(lines);
        } else {
            warn!(backend = %self.key.label(), "writing access log lines failed; reopening");
            self.dropped.inc_by(lines);
            *out = None;
            *retry_at = Some(Instant::now() + RETRY_EVERY);
        }
    }
}

impl Writer {
    /// An OpenTelemetry backend's writer: every [`FLUSH_EVERY`] the buffered records go to
    /// the collector in OTLP export requests (gRPC, on this thread's own runtime).
    fn run_otel(self, buffers: &Arc<Buffers>) {
        let SinkKey::Otel {
            endpoint,
            mesh,
            zone,
        } = &self.key
        else {
            return;
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                warn!(backend = %self.key.label(), error = %e, "cannot start the access log exporter's runtime");
                return;
            }
        };
        // The client's connection task needs the runtime's context.
        let _entered = rt.enter();
        let resource = otel_resource(mesh, zone);
        let mut client: Option<OtlpLogsClient> = None;
        let mut last_warning: Option<Instant> = None;
        loop {
            std::thread::sleep(FLUSH_EVERY);
            let last = Arc::strong_count(buffers) == 1;
            let mut batch = {
                let mut q = buffers.lock();
                q.record_bytes = 0;
                std::mem::take(&mut q.records)
            };
            while !batch.is_empty() {
                let rest = batch.split_off(batch.len().min(OTLP_BATCH));
                let chunk = std::mem::replace(&mut batch, rest);
                let n = chunk.len() as u64;
                let req = otel_logs_request(&resource, chunk);
                let sent = match &mut client {
                    Some(c) => Ok(c),
                    None => otlp_logs_client(endpoint).map(|c| client.insert(c)),
                }
                .and_then(|c| {
                    rt.block_on(async {
                        tokio::time::timeout(OTLP_TIMEOUT, c.export(req))
                            .await
                            .map_err(|_| "timed out".to_string())
                            .and_then(|r| r.map(|_| ()).map_err(|s| s.to_string()))
                    })
                });
                match sent {
                    Ok(()) => {
                        self.written.inc_by(n);
                    }
                    Err(e) => {
                        self.dropped.inc_by(n);
                        if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            last_warning = Some(Instant::now());
                            warn!(backend = %self.key.label(), error = %e, records = n, "cannot send access log records; dropped");
                        }
                    }
                }
            }
            if last {
                break;
            }
        }
    }
}

type OtlpLogsClient =
    opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient<
        tonic::transport::Channel,
    >;

fn otlp_logs_client(endpoint: &str) -> Result<OtlpLogsClient, String> {
    crate::meshtrace::otlp_channel(endpoint, OTLP_TIMEOUT).map(OtlpLogsClient::new)
}

fn string_value(s: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    }
}

/// The resource Kuma's OpenTelemetry access logs describe: `kuma.mesh`, `kuma.zone` (when
/// the proxy has one).
fn otel_resource(mesh: &str, zone: &str) -> opentelemetry_proto::tonic::resource::v1::Resource {
    let mut attributes = vec![KeyValue {
        key: "kuma.mesh".into(),
        value: Some(string_value(mesh.to_string())),
        ..Default::default()
    }];
    if !zone.is_empty() {
        attributes.push(KeyValue {
            key: "kuma.zone".into(),
            value: Some(string_value(zone.to_string())),
            ..Default::default()
        });
    }
    opentelemetry_proto::tonic::resource::v1::Resource {
        attributes,
        ..Default::default()
    }
}

/// One export request: the resource, one scope (`kuma-dp`) and its records.
fn otel_logs_request(
    resource: &opentelemetry_proto::tonic::resource::v1::Resource,
    log_records: Vec<LogRecord>,
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "kuma-dp".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn tcp_target(address: &str) -> std::io::Result<SocketAddr> {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    hostport.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing")
    })
}

// ---- Formats ----

/// A format segment with the listener's static values already turned into text.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(Box<str>),
    Op(Op, Option<usize>),
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Plain(Vec<Piece>),
    Json(Vec<(String, Vec<Piece>)>),
}

#[derive(Debug, Clone, PartialEq)]
struct Format {
    shape: Shape,
    omit_empty: bool,
}

/// A format's pieces: `%KUMA_*%` operators become the listener's values, except the
/// inbound source service when the caller is known per request.
fn pieces(text: &str, values: &LogValues, inbound: bool) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for seg in parse(text) {
        let (op, max) = match seg {
            Segment::Text(t) => {
                push_text(&mut out, &t);
                continue;
            }
            Segment::Op(o) => (o.op, o.max_len),
        };
        let fixed = match &op {
            Op::KumaMesh => Some(values.mesh.clone()),
            Op::KumaZone => Some(values.zone.clone()),
            Op::KumaDestinationService => Some(values.destination_service.clone()),
            Op::KumaSourceService if !inbound => Some(values.source_service.clone()),
            Op::KumaSourceAddress => Some(join_host_port(&values.source_address, 0)),
            Op::KumaSourceAddressWithoutPort => Some(values.source_address.clone()),
            Op::KumaTrafficDirection => Some(values.direction.clone()),
            Op::KumaWorkload => Some(String::new()),
            _ => None,
        };
        match fixed {
            Some(t) => push_text(&mut out, truncate(&t, max)),
            None => out.push(Piece::Op(op, max)),
        }
    }
    out
}

fn push_text(out: &mut Vec<Piece>, t: &str) {
    if t.is_empty() {
        return;
    }
    if let Some(Piece::Text(prev)) = out.last_mut() {
        let mut s = String::from(&**prev);
        s.push_str(t);
        *prev = s.into();
    } else {
        out.push(Piece::Text(t.into()));
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn truncate(s: &str, max: Option<usize>) -> &str {
    match max {
        Some(n) if s.len() > n => {
            let mut end = n;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        }
        _ => s,
    }
}

impl Format {
    fn compile(f: &LogFormat, tcp: bool, values: &LogValues, inbound: bool) -> Format {
        match f {
            LogFormat::Default => Format {
                shape: Shape::Plain(pieces(
                    if tcp {
                        DEFAULT_TCP_FORMAT
                    } else {
                        DEFAULT_HTTP_FORMAT
                    },
                    values,
                    inbound,
                )),
                omit_empty: false,
            },
            LogFormat::Plain { text, omit_empty } => Format {
                shape: Shape::Plain(pieces(text, values, inbound)),
                omit_empty: *omit_empty,
            },
            LogFormat::Json { fields, omit_empty } => Format {
                shape: Shape::Json(
                    fields
                        .iter()
                        .map(|(k, v)| (k.clone(), pieces(v, values, inbound)))
                        .collect(),
                ),
                omit_empty: *omit_empty,
            },
        }
    }

    fn ops(&self) -> Vec<&Op> {
        let all: Vec<&Vec<Piece>> = match &self.shape {
            Shape::Plain(p) => vec![p],
            Shape::Json(fields) => fields.iter().map(|(_, p)| p).collect(),
        };
        all.into_iter()
            .flatten()
            .filter_map(|p| match p {
                Piece::Op(op, _) => Some(op),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// Appends one line, newline included, to `line`.
    fn render(&self, r: &Record, log: &ListenerLog, line: &mut String) {
        match &self.shape {
            Shape::Plain(pieces) => render_plain(pieces, self.omit_empty, r, log, line),
            Shape::Json(fields) => {
                let mut obj = serde_json::Map::new();
                for (key, pieces) in fields {
                    let value = json_value(pieces, r, log);
                    if value.is_null() && self.omit_empty {
                        continue;
                    }
                    obj.insert(key.clone(), value);
                }
                line.push_str(&serde_json::Value::Object(obj).to_string());
            }
        }
        line.push('\n');
    }

    /// An OTLP log record's body: the text, or for JSON fields a key-value list (a lone
    /// numeric operator as an integer).
    fn render_any(&self, r: &Record, log: &ListenerLog) -> AnyValue {
        match &self.shape {
            Shape::Plain(pieces) => {
                let mut text = String::new();
                render_plain(pieces, self.omit_empty, r, log, &mut text);
                string_value(text)
            }
            Shape::Json(fields) => {
                let values = fields
                    .iter()
                    .filter_map(|(key, pieces)| {
                        let value = match json_value(pieces, r, log) {
                            serde_json::Value::Null if self.omit_empty => return None,
                            serde_json::Value::Null => string_value("-".into()),
                            serde_json::Value::Number(n) => AnyValue {
                                value: Some(n.as_i64().map_or_else(
                                    || any_value::Value::StringValue(n.to_string()),
                                    any_value::Value::IntValue,
                                )),
                            },
                            serde_json::Value::String(s) => string_value(s),
                            other => string_value(other.to_string()),
                        };
                        Some(KeyValue {
                            key: key.clone(),
                            value: Some(value),
                            ..Default::default()
                        })
                    })
                    .collect();
                AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList { values })),
                }
            }
        }
    }
}

/// Appends plain pieces: text, and each operator's value (`-` without one, unless empty
/// values are omitted), truncated to its length limit.
fn render_plain(
    pieces: &[Piece],
    omit_empty: bool,
    r: &Record,
    log: &ListenerLog,
    line: &mut String,
) {
    for p in pieces {
        match p {
            Piece::Text(t) => line.push_str(t),
            Piece::Op(op, max) => {
                let start = line.len();
                if r.value(op, log, line) {
                    if let Some(n) = max {
                        let end = start + truncate(&line[start..], Some(*n)).len();
                        line.truncate(end);
                    }
                } else if !omit_empty {
                    line.push('-');
                }
            }
        }
    }
}

/// A JSON field: a number for a lone numeric operator, `null` for a lone operator without
/// a value, else the text.
fn json_value(pieces: &[Piece], r: &Record, log: &ListenerLog) -> serde_json::Value {
    if let [Piece::Op(op, max)] = pieces {
        let mut v = String::new();
        if !r.value(op, log, &mut v) {
            return serde_json::Value::Null;
        }
        let v = truncate(&v, *max);
        let numeric = matches!(
            op,
            Op::ResponseCode
                | Op::BytesReceived
                | Op::BytesSent
                | Op::Duration
                | Op::ResponseDuration
        );
        if numeric && let Ok(n) = v.parse::<u64>() {
            return serde_json::Value::from(n);
        }
        return serde_json::Value::String(v.to_string());
    }
    let mut text = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => text.push_str(t),
            Piece::Op(op, max) => {
                let mut v = String::new();
                if r.value(op, log, &mut v) {
                    text.push_str(truncate(&v, *max));
                } else {
                    text.push('-');
                }
            }
        }
    }
    serde_json::Value::String(text)
}

// ---- A listener's logs ----

struct Output {
    sink: Arc<Sink>,
    format: Format,
    /// An OpenTelemetry backend: its attributes, each a name and a plain format (its
    /// records' body is `format`). `None`: a line backend.
    otel: Option<Vec<(String, Format)>>,
}

struct Entry {
    callers: CallerMatch,
    outputs: Vec<Output>,
}

/// One listener's access logs, compiled for one config version.
pub(crate) struct ListenerLog {
    entries: Vec<Entry>,
    /// The request headers the formats name (besides the request line's pseudo-headers).
    req_headers: Vec<HeaderName>,
    resp_headers: Vec<HeaderName>,
    /// The listener's direction: inbound lines name the verified caller.
    inbound: bool,
    tcp: bool,
    /// The default source service (`unknown` inbound).
    source_service: Box<str>,
}

impl ListenerLog {
    pub fn build(cfg: &AccessLog, tcp: bool, inbound: bool, sinks: &Sinks) -> ListenerLog {
        let mut req_headers: Vec<HeaderName> = Vec::new();
        let mut resp_headers: Vec<HeaderName> = Vec::new();
        let entries: Vec<Entry> = cfg
            .entries
            .iter()
            .map(|e| Entry {
                callers: e.callers.clone(),
                outputs: e
                    .backends
                    .iter()
                    .map(|b| {
                        let (key, format, attributes) = match b {
                            LogBackend::File { path, format } => {
                                (SinkKey::File(path.clone()), format, None)
                            }
                            LogBackend::Tcp { address, format } => {
                                (SinkKey::Tcp(address.clone()), format, None)
                            }
                            LogBackend::Otel {
                                endpoint,
                                body,
                                attributes,
                            } => (
                                SinkKey::Otel {
                                    endpoint: endpoint.clone(),
                                    mesh: cfg.values.mesh.clone(),
                                    zone: cfg.values.zone.clone(),
                                },
                                body,
                                Some(attributes),
                            ),
                        };
                        let format = Format::compile(format, tcp, &cfg.values, inbound);
                        let otel = attributes.map(|list| {
                            list.iter()
                                .map(|(k, v)| {
                                    let plain = LogFormat::Plain {
                                        text: v.clone(),
                                        omit_empty: false,
                                    };
                                    (
                                        k.clone(),
                                        Format::compile(&plain, tcp, &cfg.values, inbound),
                                    )
                                })
                                .collect::<Vec<_>>()
                        });
                        let all_ops = format
                            .ops()
                            .into_iter()
                            .chain(otel.iter().flatten().flat_map(|(_, f)| f.ops()));
                        for op in all_ops {
                            let (names, list) = match op {
                                Op::Req(n) => (n, &mut req_headers),
                                Op::Resp(n) => (n, &mut resp_headers),
                                _ => continue,
                            };
                            for n in names {
                                let name = if n == ":authority" { "host" } else { n };
                                if name.starts_with(':') {
                                    continue;
                                }
                                if let Ok(h) = HeaderName::from_bytes(name.as_bytes())
                                    && !list.contains(&h)
                                {
                                    list.push(h);
                                }
                            }
                        }
                        Output {
                            sink: sinks.get(key),
                            format,
                            otel,
                        }
                    })
                    .collect(),
            })
            .collect();
        ListenerLog {
            entries,
            req_headers,
            resp_headers,
            inbound,
            tcp,
            source_service: cfg.values.source_service.as_str().into(),
        }
    }

    /// The entries logging this caller (once per connection).
    pub fn entries_for(&self, caller: &Caller<'_>) -> Arc<[u16]> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.callers.matches(caller))
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect()
    }

    /// Starts the record of an HTTP request (before it is forwarded).
    pub fn begin<B>(
        self: &Arc<Self>,
        req: &http::Request<B>,
        conn: &ConnInfo,
        entries: Arc<[u16]>,
    ) -> Pending {
        let headers = req.headers();
        let mut record = Record::new(conn);
        record.method = Some(req.method().clone());
        record.uri = Some(req.uri().clone());
        record.version = req.version();
        record.req = self
            .req_headers
            .iter()
            .map(|h| headers.get(h).cloned())
            .collect();
        self.pending(record, entries)
    }

    /// Starts the record of a TCP connection.
    pub fn begin_tcp(self: &Arc<Self>, conn: &ConnInfo, entries: Arc<[u16]>) -> Pending {
        self.pending(Record::new(conn), entries)
    }

    fn pending(self: &Arc<Self>, record: Record, entries: Arc<[u16]>) -> Pending {
        Pending {
            log: self.clone(),
            entries,
            record,
        }
    }

    /// An OTLP log record as Envoy's OpenTelemetry access logger makes it: the start time,
    /// the rendered body and attributes.
    fn otel_record(&self, r: &Record, o: &Output, attributes: &[(String, Format)]) -> LogRecord {
        let nanos = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        LogRecord {
            time_unix_nano: nanos(r.start),
            observed_time_unix_nano: nanos(SystemTime::now()),
            body: Some(o.format.render_any(r, self)),
            attributes: attributes
                .iter()
                .map(|(key, f)| KeyValue {
                    key: key.clone(),
                    value: Some(f.render_any(r, self)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn emit(&self, entries: &[u16], record: &Record) {
        for &i in entries {
            let Some(e) = self.entries.get(usize::from(i)) else {
                continue;
            };
            for o in &e.outputs {
                match &o.otel {
                    None => o.sink.log(|line| o.format.render(record, self, line)),
                    Some(attributes) => o.sink.log_record(self.otel_record(record, o, attributes)),
                }
            }
        }
    }
}

/// What is known about a downstream connection, once per connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The caller's verified services (`kuma.io/service`), joined with `,` (inbound mTLS).
    pub caller: Option<Arc<str>>,
    /// The caller's SPIFFE ID (inbound mTLS).
    pub peer_uri: Option<Arc<str>>,
    pub sni: Option<Arc<str>>,
}

impl ConnInfo {
    pub fn new(remote: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            remote,
            local,
            caller: None,
            peer_uri: None,
            sni: None,
        }
    }

    /// With the caller a verified certificate proves.
    pub fn with_identity(mut self, id: Option<&PeerIdentity>, sni: Option<&str>) -> ConnInfo {
        if let Some(id) = id {
            let services: Vec<&str> = id.services.iter().map(String::as_str).collect();
            self.caller = Some(services.join(",").into());
            self.peer_uri = services
                .first()
                .map(|s| format!("spiffe://{}/{s}", id.mesh).into());
        }
        self.sni = sni.map(Into::into);
        self
    }
}

/// One request or connection being logged.
pub(crate) struct Record {
    start: SystemTime,
    started: Instant,
    conn: ConnInfo,
    method: Option<http::Method>,
    uri: Option<http::Uri>,
    version: http::Version,
    req: Vec<Option<HeaderValue>>,
    status: Option<u16>,
    resp: Vec<Option<HeaderValue>>,
    response_ms: Option<u64>,
    /// Request body bytes (counted by the body as it streams in), or TCP bytes received.
    received: Arc<AtomicU64>,
    sent: u64,
    duration_ms: u64,
    flags: u16,
    upstream: Option<SocketAddr>,
}

impl Record {
    /// A record started now, with nothing known yet beyond the connection.
    fn new(conn: &ConnInfo) -> Record {
        Record {
            start: SystemTime::now(),
            started: Instant::now(),
            conn: conn.clone(),
            method: None,
            uri: None,
            version: http::Version::HTTP_11,
            req: Vec::new(),
            status: None,
            resp: Vec::new(),
            response_ms: None,
            received: Arc::new(AtomicU64::new(0)),
            sent: 0,
            duration_ms: 0,
            flags: 0,
            upstream: None,
        }
    }

    /// Writes the value of `op` into `out`; `false` when it has none (`-`).
    fn value(&self, op: &Op, log: &ListenerLog, out: &mut String) -> bool {
        match op {
            Op::StartTime(f) => write_time(self.start, f.as_deref(), out),
            Op::Req(names) => names.iter().any(|n| self.req_value(n, log, out)),
            // Names are lower case (as `HeaderName::as_str`): compared, not parsed.
            Op::Resp(names) => names.iter().any(|n| {
                let i = log.resp_headers.iter().position(|x| x.as_str() == n);
                match i.and_then(|i| self.resp.get(i)).and_then(Option::as_ref) {
                    Some(v) => {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                        true
                    }
                    None => false,
                }
            }),
            Op::ResponseCode => match self.status {
                Some(s) => push_int(out, s),
                None if log.tcp => false,
                None => {
                    out.push('0');
                    true
                }
            },
            Op::ResponseFlags => {
                if self.flags == 0 {
                    return false;
                }
                write_flags(self.flags, out);
                true
            }
            Op::ResponseCodeDetails => {
                if self.flags == 0 && self.status.is_some() {
                    out.push_str("via_upstream");
                    true
                } else {
                    false
                }
            }
            Op::Protocol => {
                if log.tcp {
                    return false;
                }
                out.push_str(match self.version {
                    http::Version::HTTP_10 => "HTTP/1.0",
                    http::Version::HTTP_2 => "HTTP/2",
                    http::Version::HTTP_3 => "HTTP/3",
                    _ => "HTTP/1.1",
                });
                true
            }
            Op::BytesReceived => push_int(out, self.received.load(Ordering::Relaxed)),
            Op::BytesSent => push_int(out, self.sent),
            Op::Duration => push_int(out, self.duration_ms),
            Op::ResponseDuration => match self.response_ms {
                Some(ms) => push_int(out, ms),
                None => false,
            },
            Op::UpstreamHost => match self.upstream {
                Some(a) => push_addr(out, a),
                None => false,
            },
            Op::UpstreamCluster => {
                out.push_str(if log.inbound { "localhost" } else { "outbound" });
                true
            }
            Op::DownstreamRemoteAddress => push_addr(out, self.conn.remote),
            Op::DownstreamRemoteAddressWithoutPort => push_ip(out, self.conn.remote.ip()),
            Op::DownstreamLocalAddress => push_addr(out, self.conn.local),
            Op::DownstreamLocalAddressWithoutPort => push_ip(out, self.conn.local.ip()),
            Op::RequestedServerName => match &self.conn.sni {
                Some(s) => {
                    out.push_str(s);
                    true
                }
                None => false,
            },
            Op::DownstreamPeerUriSan => match &self.conn.peer_uri {
                Some(s) => {
                    out.push_str(s);
                    true
                }
                None => false,
            },
            Op::Hostname => {
                out.push_str(hostname());
                true
            }
            // Only the inbound source service stays an operator after compilation.
            Op::KumaSourceService => {
                out.push_str(self.conn.caller.as_deref().unwrap_or(&log.source_service));
                true
            }
            Op::KumaMesh
            | Op::KumaZone
            | Op::KumaDestinationService
            | Op::KumaSourceAddress
            | Op::KumaSourceAddressWithoutPort
            | Op::KumaTrafficDirection
            | Op::KumaWorkload
            | Op::Unknown(_) => false,
        }
    }

    fn req_value(&self, name: &str, log: &ListenerLog, out: &mut String) -> bool {
        match name {
            ":method" => match &self.method {
                Some(m) => {
                    out.push_str(m.as_str());
                    true
                }
                None => false,
            },
            ":path" => match self.uri.as_ref().and_then(|u| u.path_and_query()) {
                Some(p) => {
                    out.push_str(p.as_str());
                    true
                }
                None => false,
            },
            ":scheme" => match self.uri.as_ref().and_then(|u| u.scheme_str()) {
                Some(s) => {
                    out.push_str(s);
                    true
                }
                None => false,
            },
            ":authority" => {
                if let Some(a) = self.uri.as_ref().and_then(|u| u.authority()) {
                    out.push_str(a.as_str());
                    return true;
                }
                self.req_value("host", log, out)
            }
            _ => {
                let i = log.req_headers.iter().position(|x| x.as_str() == name);
                match i.and_then(|i| self.req.get(i)).and_then(Option::as_ref) {
                    Some(v) => {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// A record waiting for its request to end.
pub(crate) struct Pending {
    log: Arc<ListenerLog>,
    entries: Arc<[u16]>,
    record: Record,
}

impl Pending {
    /// The counter the request body adds its bytes to.
    pub fn received(&self) -> Arc<AtomicU64> {
        self.record.received.clone()
    }

    /// The response head arrived (or was made locally).
    pub fn respond(
        &mut self,
        head: &HeaderMap,
        status: u16,
        upstream: Option<SocketAddr>,
        flags: u16,
    ) {
        self.record.status = Some(status);
        self.record.response_ms = Some(elapsed_ms(self.record.started));
        self.record.upstream = upstream;
        self.record.flags |= flags;
        self.record.resp = self
            .log
            .resp_headers
            .iter()
            .map(|h| head.get(h).cloned())
            .collect();
    }

    /// A TCP connection's upstream.
    pub fn connected(&mut self, upstream: Option<SocketAddr>, flags: u16) {
        self.record.upstream = upstream;
        self.record.flags |= flags;
    }

    /// The exchange ended: `sent` response (or upstream-to-downstream) bytes; `received`
    /// overrides the request body's count (TCP). Renders and queues the lines.
    pub fn finish(mut self, sent: u64, received: Option<u64>, complete: bool) {
        self.record.sent = sent;
        if let Some(r) = received {
            self.record.received.store(r, Ordering::Relaxed);
        }
        if !complete {
            self.record.flags |= DC;
        }
        self.record.duration_ms = elapsed_ms(self.record.started);
        self.log.emit(&self.entries, &self.record);
    }
}

/// An integer in decimal (without the formatting machinery: a line has several).
fn push_int(out: &mut String, n: impl itoa::Integer) -> bool {
    out.push_str(itoa::Buffer::new().format(n));
    true
}

/// An address as `Display` writes it (`1.2.3.4`, IPv6 by `Display`).
fn push_ip(out: &mut String, ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let mut buf = itoa::Buffer::new();
            for (i, o) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(buf.format(o));
            }
            true
        }
        std::net::IpAddr::V6(v6) => write!(out, "{v6}").is_ok(),
    }
}

/// A socket address as `Display` writes it (`1.2.3.4:80`, `[::1]:80`).
fn push_addr(out: &mut String, a: SocketAddr) -> bool {
    match a {
        SocketAddr::V4(v4) => {
            push_ip(out, std::net::IpAddr::V4(*v4.ip()));
            out.push(':');
            push_int(out, v4.port())
        }
        SocketAddr::V6(v6) => write!(out, "{v6}").is_ok(),
    }
}

/// `n` in exactly `width` decimal digits (zero-padded; `n` is below `10^width`).
fn push_padded(out: &mut String, n: u32, width: u32) {
    let mut d = 10u32.pow(width.saturating_sub(1));
    while d > 0 {
        out.push(char::from(b'0' + ((n / d) % 10) as u8));
        d /= 10;
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "-".into())
    })
}

/// `%START_TIME%` in UTC: Envoy's default (`2026-12-06T04:05:06.789Z`), or a format with
/// `%Y %m %d %H %M %S %s %z %Z %E3S %E6S %E9S %f %3f %6f %9f %%`.
fn write_time(t: SystemTime, format: Option<&str>, out: &mut String) -> bool {
    let Some(f) = format.filter(|f| !f.is_empty()) else {
        // Envoy's default: `2025-12-06T05:46:40.123Z`. The part up to the second is the same
        // for every line of that second: kept per thread.
        thread_local! {
            static SECOND: std::cell::RefCell<(i64, String)> =
                const { std::cell::RefCell::new((i64::MIN, String::new())) };
        }
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        SECOND.with(|s| {
            let mut s = s.borrow_mut();
            if s.0 != secs {
                let dt = time::OffsetDateTime::from(t);
                s.1.clear();
                let _ = write!(
                    s.1,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    dt.year(),
                    u8::from(dt.month()),
                    dt.day(),
                    dt.hour(),
                    dt.minute(),
                    dt.second()
                );
                s.0 = secs;
            }
            out.push_str(&s.1);
        });
        push_padded(out, since.subsec_millis(), 3);
        out.push('Z');
        return true;
    };
    let dt = time::OffsetDateTime::from(t);
    let mut rest = f;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        let (used, ok) = match spec.as_bytes() {
            [b'E', b'3', b'S', ..] => {
                (3, write!(out, "{:02}.{:03}", dt.second(), dt.millisecond()))
            }
            [b'E', b'6', b'S', ..] => {
                (3, write!(out, "{:02}.{:06}", dt.second(), dt.microsecond()))
            }
            [b'E', b'9', b'S', ..] => (3, write!(out, "{:02}.{:09}", dt.second(), dt.nanosecond())),
            [b'3', b'f', ..] => (2, write!(out, "{:03}", dt.millisecond())),
            [b'6', b'f', ..] => (2, write!(out, "{:06}", dt.microsecond())),
            [b'9', b'f', ..] | [b'f', ..] => {
                let used = if spec.starts_with('f') { 1 } else { 2 };
                (used, write!(out, "{:09}", dt.nanosecond()))
            }
            [b'Y', ..] => (1, write!(out, "{:04}", dt.year())),
            [b'm', ..] => (1, write!(out, "{:02}", u8::from(dt.month()))),
            [b'd', ..] => (1, write!(out, "{:02}", dt.day())),
            [b'H', ..] => (1, write!(out, "{:02}", dt.hour())),
            [b'M', ..] => (1, write!(out, "{:02}", dt.minute())),
            [b'S', ..] => (1, write!(out, "{:02}", dt.second())),
            [b's', ..] => (1, write!(out, "{}", dt.unix_timestamp())),
            [b'z', ..] => (1, write!(out, "+0000")),
            [b'Z', ..] => (1, write!(out, "UTC")),
            [b'%', ..] => (1, write!(out, "%")),
            _ => (0, write!(out, "%")),
        };
        if ok.is_err() {
            return false;
        }
        rest = &spec[used..];
    }
    out.push_str(rest);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshaccesslog::LogEntry;

    fn values() -> LogValues {
        LogValues {
            mesh: "default".into(),
            zone: "zone-1".into(),
            source_service: "web".into(),
            source_address: "10.0.0.1".into(),
            destination_service: "backend".into(),
            direction: "OUTBOUND".into(),
        }
    }

    fn log(format: LogFormat, tcp: bool, inbound: bool, path: &str) -> Arc<ListenerLog> {
        let cfg = AccessLog {
            values: values(),
            entries: vec![LogEntry {
                callers: CallerMatch::any(),
                backends: vec![LogBackend::File {
                    path: path.into(),
                    format,
                }],
            }],
        };
        Arc::new(ListenerLog::build(&cfg, tcp, inbound, &Sinks::default()))
    }

    fn render(l: &ListenerLog, r: &Record) -> String {
        let mut line = String::new();
        l.entries[0].outputs[0].format.render(r, l, &mut line);
        line
    }

    fn conn() -> ConnInfo {
        ConnInfo::new(
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:10001".parse().unwrap(),
        )
    }

    fn request() -> http::Request<()> {
        http::Request::builder()
            .method("POST")
            .uri("/orders?id=7")
            .header("host", "backend.mesh")
            .header("user-agent", "curl/8")
            .header("x-request-id", "abcdef123456")
            .body(())
            .unwrap()
    }

    fn finished(l: &Arc<ListenerLog>, status: u16) -> Record {
        let mut p = l.begin(&request(), &conn(), Arc::from([0u16]));
        let mut head = HeaderMap::new();
        head.insert(
            "x-envoy-upstream-service-time",
            HeaderValue::from_static("3"),
        );
        p.respond(
            &head,
            status,
            Some("127.0.0.2:8080".parse().unwrap()),
            UO | UH,
        );
        p.record.received.store(12, Ordering::Relaxed);
        p.record.sent = 34;
        p.record.duration_ms = 5;
        p.record.start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_765_000_000_123);
        p.record
    }

    #[test]
    fn kumas_default_http_format_renders_like_envoy() {
        let l = log(LogFormat::Default, false, false, "/dev/null");
        let line = render(&l, &finished(&l, 503));
        assert_eq!(
            line,
            "[2025-12-06T05:46:40.123Z] default \"POST /orders?id=7 HTTP/1.1\" 503 UH,UO 12 34 5 3 \"-\" \"curl/8\" \"-\" \"abcdef123456\" \"backend.mesh\" \"web\" \"backend\" \"10.0.0.1\" \"127.0.0.2:8080\"\n"
        );
    }

    #[test]
    fn kumas_default_tcp_format() {
        let l = log(LogFormat::Default, true, false, "/dev/null");
        let mut p = l.begin_tcp(&conn(), Arc::from([0u16]));
        p.connected(Some("127.0.0.2:9000".parse().unwrap()), 0);
        p.record.start = SystemTime::UNIX_EPOCH;
        p.record.sent = 10;
        p.record.received.store(20, Ordering::Relaxed);
        assert_eq!(
            render(&l, &p.record),
            "[1970-01-01T00:00:00.000Z] - default 10.0.0.1(web)->127.0.0.2:9000(backend) took 0ms, sent 10 bytes, received: 20 bytes\n"
        );
    }

    #[test]
    fn plain_and_json_formats_with_truncation_missing_values_and_numbers() {
        let plain = log(
            LogFormat::Plain {
                text: "%REQ(X-REQUEST-ID):6% %REQ(X-MISSING)% %KUMA_TRAFFIC_DIRECTION% %START_TIME(%s)% 100%% %NOPE%".into(),
                omit_empty: false,
            },
            false,
            false,
            "/dev/null",
        );
        assert_eq!(
            render(&plain, &finished(&plain, 200)),
            "abcdef - OUTBOUND 1765000000 100% -\n"
        );
        let omit = log(
            LogFormat::Plain {
                text: "[%REQ(X-MISSING)%]".into(),
                omit_empty: true,
            },
            false,
            false,
            "/dev/null",
        );
        assert_eq!(render(&omit, &finished(&omit, 200)), "[]\n");
        let json = |omit_empty| {
            log(
                LogFormat::Json {
                    fields: vec![
                        ("code".into(), "%RESPONSE_CODE%".into()),
                        ("path".into(), "%REQ(:PATH)%".into()),
                        ("missing".into(), "%REQ(X-MISSING)%".into()),
                        (
                            "route".into(),
                            "%KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE%".into(),
                        ),
                    ],
                    omit_empty,
                },
                false,
                false,
                "/dev/null",
            )
        };
        let j = json(false);
        let v: serde_json::Value = serde_json::from_str(&render(&j, &finished(&j, 201))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": 201, "path": "/orders?id=7", "missing": null, "route": "web->backend"})
        );
        let j = json(true);
        let v: serde_json::Value = serde_json::from_str(&render(&j, &finished(&j, 201))).unwrap();
        assert!(v.get("missing").is_none());
    }

    #[test]
    fn inbound_lines_name_the_verified_caller() {
        let l = log(
            LogFormat::Plain {
                text: "%KUMA_SOURCE_SERVICE% %DOWNSTREAM_PEER_URI_SAN%".into(),
                omit_empty: false,
            },
            false,
            true,
            "/dev/null",
        );
        let id = PeerIdentity::new("default", ["flight-control"]);
        let c = conn().with_identity(Some(&id), None);
        let p = l.begin(&request(), &c, Arc::from([0u16]));
        assert_eq!(
            render(&l, &p.record),
            "flight-control spiffe://default/flight-control\n"
        );
        let anonymous = l.begin(&request(), &conn(), Arc::from([0u16]));
        assert_eq!(render(&l, &anonymous.record), "web -\n");
    }

    #[test]
    fn time_formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let mut out = String::new();
        assert!(write_time(
            t,
            Some("%Y/%m/%d %H:%M:%E3S %z|%6f|%f|%%|%q"),
            &mut out
        ));
        assert_eq!(out, "2025/12/06 05:46:40.123 +0000|123456|123456789|%|%q");
        // Envoy's default, twice in one second (the second's text is kept) and in the next.
        for (nanos, text) in [
            (1_765_000_000_123_456_789u64, "2025-12-06T05:46:40.123Z"),
            (1_765_000_000_009_000_000, "2025-12-06T05:46:40.009Z"),
            (1_765_000_001_000_000_000, "2025-12-06T05:46:41.000Z"),
        ] {
            let mut out = String::new();
            let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
            assert!(write_time(t, None, &mut out));
            assert_eq!(out, text);
        }
    }

    #[test]
    fn numbers_and_addresses_are_written_as_display_would() {
        for a in [
            "10.0.0.1:8080",
            "255.255.255.255:65535",
            "0.0.0.0:0",
            "[::1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            assert!(push_addr(&mut out, a));
            assert_eq!(out, a.to_string());
            let mut out = String::new();
            assert!(push_ip(&mut out, a.ip()));
            assert_eq!(out, a.ip().to_string());
        }
        let mut out = String::new();
        push_int(&mut out, 0u64);
        push_int(&mut out, u64::MAX);
        push_padded(&mut out, 7, 3);
        assert_eq!(out, format!("0{}007", u64::MAX));
    }

    #[test]
    fn lines_reach_the_file_and_a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let metrics = SinkMetrics::default();
        let sinks = Sinks::new(metrics.clone());
        let sink = sinks.get(SinkKey::File(path.to_string_lossy().into()));
        // Same backend, same sink.
        let again = sinks.get(SinkKey::File(path.to_string_lossy().into()));
        assert!(Arc::ptr_eq(&sink, &again));
        sink.log(|l| l.push_str("one\n"));
        // Another thread's line reaches the file too.
        let other = sink.clone();
        std::thread::spawn(move || other.log(|l| l.push_str("two\n")))
            .join()
            .unwrap();
        drop((sink, again));
        let labels = BackendLabels {
            backend: format!("file:{}", path.to_string_lossy()),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.written.get_or_create(&labels).get() < 2 {
            assert!(Instant::now() < deadline, "lines not written");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut written: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        written.sort();
        assert_eq!(written, ["one", "two"]);

        // A buffer nobody drains (its writer could not start) keeps what fits and drops
        // and counts the rest, leaving no partial line.
        let full = Sink {
            buffers: Arc::new(Buffers::new(10, Counter::default())),
        };
        full.log(|l| l.push_str("kept\n"));
        full.log(|l| l.push_str("dropped\n"));
        full.log(|l| l.push_str("also\n"));
        assert_eq!(full.buffers.dropped.get(), 1);
        let q = full.buffers.lock();
        assert_eq!((q.text.as_str(), q.lines), ("kept\nalso\n", 2));
        drop(q);

        // OTLP records are held to the same byte budget: a record carrying a caller's huge
        // header is dropped, small ones still fit.
        let records = Sink {
            buffers: Arc::new(Buffers::new(200, Counter::default())),
        };
        let record = |body: usize| LogRecord {
            body: Some(string_value("x".repeat(body))),
            ..Default::default()
        };
        records.log_record(record(20));
        records.log_record(record(300));
        records.log_record(record(20));
        assert_eq!(records.buffers.dropped.get(), 1);
        assert_eq!(records.buffers.lock().records.len(), 2);
    }

    #[test]
    fn tcp_targets_accept_kumas_address_forms() {
        assert_eq!(
            tcp_target("127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            tcp_target("tcp://127.0.0.1:5000/x").unwrap(),
            "127.0.0.1:5000".parse::<SocketAddr>().unwrap()
        );
        assert!(tcp_target("logs.invalid").is_err());
    }

    #[tokio::test]
    async fn track_sees_what_forwarding_notes() {
        note_upstream("127.0.0.9:1".parse().unwrap()); // outside: ignored
        let ((), up, flags) = track(async {
            note_upstream("127.0.0.2:80".parse().unwrap());
            note_flag(flag_of("upstream_request_timeout"));
            note_flag(flag_of("not_a_flag"));
        })
        .await;
        assert_eq!(up, Some("127.0.0.2:80".parse().unwrap()));
        assert_eq!(flags, UT);
    }
}
