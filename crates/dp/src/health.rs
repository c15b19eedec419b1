//! MeshHealthCheck: active health checking of an outbound's endpoints.
//!
//! An outbound with a [`HealthCheck`] whose check kind applies to its protocol
//! ([`HealthCheck::pick`]) owns an [`ActiveHealth`]: one [`EndpointChecker`] per endpoint, a
//! tokio task that probes the endpoint the way a request reaches it (the route's
//! [`Connector`]: dial, then mTLS with the proxy's current identity, so the destination's
//! MeshTrafficPermission decides as for traffic) every interval, and flips the endpoint's
//! health flag (an atomic) after `unhealthyThreshold` failed or `healthyThreshold` passed
//! checks (Envoy's rules: a new endpoint counts as unhealthy until its first check passes).
//! Endpoint selection (`forward.rs`) skips unhealthy endpoints ([`ActiveHealth::verdict`]),
//! together with those outlier detection ejected, unless too few are left (the panic
//! threshold): then every endpoint is used, or, with `failTrafficOnPanic`, none.
//!
//! Checkers survive config changes that leave the check, and how the endpoint is dialled,
//! alone (they keep their state); a dropped checker's task is aborted, so a removed
//! endpoint or outbound stops being probed once the last route holding it is gone.
//!
//! Kuma 2.14: `pkg/plugins/policies/meshhealthcheck/plugin/xds/configurer.go` (what reaches
//! Envoy), Envoy's `HealthCheckerImplBase` (scheduling, thresholds, `no_traffic_interval`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use aerie_core::policies::meshhealthcheck::{
    CheckKind, GrpcCheck, HealthCheck, HttpCheck, TcpCheck,
};
use aerie_core::proxy_config::Protocol;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::{debug, info};

use crate::breaker::Detector;
use crate::pool::{Connector, Upstream};
use crate::rng::XorShift;

/// The most of a TCP check's answer searched for its `receive` blocks.
const MAX_TCP_RECEIVE: usize = 64 * 1024;
/// The most of an HTTP or gRPC check's answer body read.
const MAX_BODY: usize = 64 * 1024;

/// Endpoint states (one byte, read by endpoint selection).
const HEALTHY: u8 = 0;
const UNHEALTHY: u8 = 1;

/// Whether the outbound ever carried traffic (Envoy's `no_traffic_interval` applies until
/// it did); the first request wakes checkers waiting out that interval.
#[derive(Default)]
pub(crate) struct Traffic {
    seen: AtomicBool,
    notify: Notify,
}

impl Traffic {
    /// Called per request attempt on an outbound with health checks: one relaxed load once
    /// traffic was seen.
    #[inline]
    pub fn saw(&self) {
        if !self.seen.load(Ordering::Relaxed) && !self.seen.swap(true, Ordering::Relaxed) {
            self.notify.notify_waiters();
        }
    }

    fn seen(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }
}

/// How one endpoint's check results turn into its health (Envoy's rules): it starts
/// unhealthy, waiting for its first check, which alone decides; after that it turns
/// unhealthy after `unhealthy` consecutive failures and healthy after `healthy`
/// consecutive passes.
#[derive(Debug, Clone)]
pub(crate) struct Verdicts {
    unhealthy: u32,
    healthy: u32,
    fails: u32,
    passes: u32,
    is_healthy: bool,
    first: bool,
}

impl Verdicts {
    pub fn new(unhealthy: u32, healthy: u32) -> Verdicts {
        Verdicts {
            unhealthy: unhealthy.max(1),
            healthy: healthy.max(1),
            fails: 0,
            passes: 0,
            is_healthy: false,
            first: true,
        }
    }

    /// Records one check; `Some(healthy)` when the endpoint's health changed.
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        let first = std::mem::replace(&mut self.first, false);
        if passed {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.is_healthy && (first || self.passes >= self.healthy) {
                self.is_healthy = true;
                return Some(true);
            }
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if self.is_healthy && self.fails >= self.unhealthy {
                self.is_healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// The check settings a checker runs with (shared by the outbound's checkers).
#[derive(Debug, PartialEq)]
pub(crate) struct Probe {
    pub conf: HealthCheck,
    pub protocol: Protocol,
    /// The destination service: the HTTP check's `Host`, the gRPC check's default
    /// `:authority` (Envoy's cluster name).
    pub service: String,
}

impl Probe {
    fn kind(&self) -> Option<CheckKind<'_>> {
        self.conf.pick(self.protocol)
    }

    /// The wait before the next check: the interval (or, while the outbound never had
    /// traffic, `noTrafficInterval`) plus a random share up to `intervalJitterPercent` of it
    /// and a random time up to `intervalJitter` (Envoy's `intervalWithJitter`).
    pub fn next_wait(&self, traffic: bool, rng: &mut XorShift) -> Duration {
        let c = &self.conf;
        let mut ms = if traffic {
            c.interval_ms
        } else {
            c.no_traffic_interval_ms
        };
        let percent_mod = ms.saturating_mul(u64::from(c.interval_jitter_percent)) / 100;
        if percent_mod > 0 {
            ms = ms.saturating_add(rng.below(percent_mod));
        }
        if c.interval_jitter_ms > 0 {
            ms = ms.saturating_add(rng.below(c.interval_jitter_ms));
        }
        Duration::from_millis(ms.max(1))
    }

    /// The wait before the first check: a random time up to `initialJitter`.
    pub fn initial_wait(&self, rng: &mut XorShift) -> Duration {
        match self.conf.initial_jitter_ms {
            0 => Duration::ZERO,
            j => Duration::from_millis(rng.below(j)),
        }
    }
}

/// One endpoint's health, written by its checker, read by endpoint selection.
#[derive(Debug)]
pub(crate) struct EndpointState {
    state: AtomicU8,
}

impl EndpointState {
    pub fn new() -> EndpointState {
        EndpointState {
            state: AtomicU8::new(UNHEALTHY),
        }
    }

    #[inline]
    pub fn healthy(&self) -> bool {
        self.state.load(Ordering::Relaxed) == HEALTHY
    }

    fn set(&self, healthy: bool) {
        self.state
            .store(if healthy { HEALTHY } else { UNHEALTHY }, Ordering::Relaxed);
    }
}

/// A running checker; dropping it stops the task.
pub(crate) struct EndpointChecker {
    pub state: Arc<EndpointState>,
    addr: std::net::SocketAddr,
    task: AbortHandle,
}

impl Drop for EndpointChecker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An outbound's active health checking: a checker per endpoint (in the route's endpoint
/// order), and the panic settings of its cluster.
pub(crate) struct ActiveHealth {
    pub checkers: Vec<Arc<EndpointChecker>>,
    pub traffic: Arc<Traffic>,
    probe: Arc<Probe>,
    /// Percent of healthy endpoints under which every endpoint is used (Envoy's panic
    /// threshold).
    panic_threshold: f64,
    fail_on_panic: bool,
}

/// Which endpoints a request may go to, once the panic threshold was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Skip unhealthy and ejected endpoints.
    Skip,
    /// Panic: every endpoint.
    All,
    /// Panic with `failTrafficOnPanic`: none (`503 no healthy upstream`).
    Fail,
}

/// One request's view of an outbound's endpoints under health checking.
pub(crate) struct Verdict<'a, E> {
    health: &'a ActiveHealth,
    ejected: E,
    pub mode: Mode,
}

impl<E: Fn(usize) -> bool> Verdict<'_, E> {
    #[inline]
    pub fn skips(&self, i: usize) -> bool {
        self.mode == Mode::Skip
            && (self
                .health
                .checkers
                .get(i)
                .is_some_and(|c| !c.state.healthy())
                || (self.ejected)(i))
    }
}

/// Endpoint selection's filter: outlier detection alone (its own panic threshold), or
/// health checks with outlier ejections.
pub(crate) enum Selection<'a, O, E> {
    Outlier(Option<O>),
    Health(Verdict<'a, E>),
}

impl<O: Fn(usize) -> bool, E: Fn(usize) -> bool> Selection<'_, O, E> {
    /// `true` for an endpoint to skip.
    #[inline]
    pub fn skips(&self, i: usize) -> bool {
        match self {
            Selection::Outlier(o) => o.as_ref().is_some_and(|o| o(i)),
            Selection::Health(v) => v.skips(i),
        }
    }

    /// Panic with `failTrafficOnPanic`: the request is answered `503 no healthy upstream`.
    #[inline]
    pub fn fails(&self) -> bool {
        matches!(self, Selection::Health(v) if v.mode == Mode::Fail)
    }
}

/// The filter for one request: without health checks, outlier detection's own; with them,
/// one that also counts the request as traffic (`noTrafficInterval`).
pub(crate) fn selection<'b, H>(
    health: Option<&'b ActiveHealth>,
    detector: Option<&'b Detector<'_, H>>,
) -> Selection<'b, impl Fn(usize) -> bool + 'b, impl Fn(usize) -> bool + 'b> {
    match health {
        None => Selection::Outlier(detector.map(|d| d.skip())),
        Some(h) => {
            h.traffic.saw();
            let ejected = detector.map(|d| d.ejected());
            let ejected = move |i| ejected.as_ref().is_some_and(|e| e(i));
            let mode = h.mode(&ejected);
            Selection::Health(Verdict {
                health: h,
                ejected,
                mode,
            })
        }
    }
}

impl ActiveHealth {
    /// The health checking of an outbound (`None`: no MeshHealthCheck, or none of its
    /// kinds applies to the protocol). `connectors` are the route's endpoints in order;
    /// `old` are health checks running already (the previous route's, and for a route's
    /// other destination the outbound's own), whose checkers are kept for endpoints they
    /// check when `reusable` (nothing about how endpoints are dialled changed) and the check
    /// is the same: an endpoint is never probed twice for one check. `outlier_panic` is
    /// MeshCircuitBreaker's panic threshold when it enforces outlier detection. Must run
    /// within a tokio runtime.
    pub fn build(
        conf: Option<&HealthCheck>,
        protocol: Protocol,
        service: &str,
        connectors: &[Connector],
        old: &[&ActiveHealth],
        reusable: bool,
        outlier_panic: Option<f64>,
    ) -> Option<ActiveHealth> {
        let conf = conf?;
        conf.pick(protocol)?;
        let probe = Probe {
            conf: conf.clone(),
            protocol,
            service: service.to_owned(),
        };
        let same: Vec<&ActiveHealth> = old
            .iter()
            .copied()
            .filter(|o| reusable && *o.probe == probe)
            .collect();
        let first = same.first();
        let probe = first.map_or_else(|| Arc::new(probe), |o| o.probe.clone());
        let traffic = first.map_or_else(Arc::default, |o| o.traffic.clone());
        let checkers = connectors
            .iter()
            .map(|c| {
                same.iter()
                    .find_map(|o| o.checkers.iter().find(|k| k.addr == c.addr))
                    .cloned()
                    .unwrap_or_else(|| spawn(probe.clone(), c.clone(), traffic.clone()))
            })
            .collect();
        // MeshCircuitBreaker's threshold is applied after MeshHealthCheck's deprecated one
        // (policy order 1300 after 1200), as in Kuma.
        let panic_threshold = outlier_panic
            .or(conf.healthy_panic_threshold)
            .unwrap_or(50.0);
        Some(ActiveHealth {
            checkers,
            traffic,
            probe,
            panic_threshold,
            fail_on_panic: conf.fail_traffic_on_panic,
        })
    }

    /// Whether too few endpoints are left (`ejected(i)`: outlier detection ejected
    /// endpoint `i`): unhealthy and ejected endpoints are skipped unless fewer than the
    /// panic threshold's share are left.
    pub fn mode(&self, ejected: impl Fn(usize) -> bool) -> Mode {
        let total = self.checkers.len();
        let healthy = self
            .checkers
            .iter()
            .enumerate()
            .filter(|(i, c)| c.state.healthy() && !ejected(*i))
            .count();
        if total > 0 && (healthy as f64) * 100.0 < self.panic_threshold * (total as f64) {
            if self.fail_on_panic {
                Mode::Fail
            } else {
                Mode::All
            }
        } else {
            Mode::Skip
        }
    }
}

fn spawn(probe: Arc<Probe>, connector: Connector, traffic: Arc<Traffic>) -> Arc<EndpointChecker> {
    let state = Arc::new(EndpointState::new());
    let addr = connector.addr;
    let task = tokio::spawn(run(probe, connector, state.clone(), traffic)).abort_handle();
    Arc::new(EndpointChecker { state, addr, task })
}

/// A connection kept between checks (`reuseConnection`).
enum Kept {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    Tcp(Box<Upstream>),
}

/// A checker's life: checks every interval until aborted.
async fn run(
    probe: Arc<Probe>,
    connector: Connector,
    state: Arc<EndpointState>,
    traffic: Arc<Traffic>,
) {
    let mut rng = XorShift::new(crate::rng::random_below(u64::MAX));
    let mut verdicts = Verdicts::new(probe.conf.unhealthy_threshold, probe.conf.healthy_threshold);
    let mut kept: Option<Kept> = None;
    tokio::time::sleep(probe.initial_wait(&mut rng)).await;
    loop {
        let timeout = Duration::from_millis(probe.conf.timeout_ms);
        let passed = match tokio::time::timeout(timeout, check(&probe, &connector, &mut kept)).await
        {
            Ok(Ok(())) => true,
            Ok(Err(why)) => {
                debug!(endpoint = %connector.addr, service = %probe.service, %why, "health check failed");
                kept = None;
                false
            }
            Err(_) => {
                debug!(endpoint = %connector.addr, service = %probe.service, "health check timed out");
                kept = None;
                false
            }
        };
        if !probe.conf.reuse_connection {
            kept = None;
        }
        if let Some(healthy) = verdicts.record(passed) {
            state.set(healthy);
            info!(endpoint = %connector.addr, service = %probe.service, healthy, "endpoint health changed (MeshHealthCheck)");
        }
        // Waiting out the no-traffic interval ends early with the first request.
        let notified = traffic.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let seen = traffic.seen();
        let wait = probe.next_wait(seen, &mut rng);
        if seen {
            tokio::time::sleep(wait).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = notified => {
                    tokio::time::sleep(probe.next_wait(true, &mut rng)).await;
                }
            }
        }
    }
}

/// One check; `Err` says why it failed.
async fn check(
    probe: &Probe,
    connector: &Connector,
    kept: &mut Option<Kept>,
) -> Result<(), String> {
    match probe.kind() {
        Some(CheckKind::Http(h)) => check_http(probe, h, connector, kept).await,
        Some(CheckKind::Tcp(t)) => check_tcp(t, connector, kept).await,
        Some(CheckKind::Grpc(g)) => check_grpc(probe, g, connector, kept).await,
        None => Ok(()),
    }
}

async fn dial(connector: &Connector) -> Result<Upstream, String> {
    connector.connect().await.map_err(|e| e.to_string())
}

/// `GET path` over HTTP/1.1 (HTTP/2 for `http2` destinations, as Kuma's codec choice),
/// `Host` the service, with the check's headers; passes on an expected status.
async fn check_http(
    probe: &Probe,
    h: &HttpCheck,
    connector: &Connector,
    kept: &mut Option<Kept>,
) -> Result<(), String> {
    let uri: Uri = h
        .path
        .parse()
        .map_err(|e| format!("path {:?}: {e}", h.path))?;
    let host = HeaderValue::from_str(&probe.service).map_err(|e| e.to_string())?;
    let mut builder = Request::builder().method(Method::GET);
    let headers = builder.headers_mut().ok_or("request")?;
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Envoy/HC"),
    );
    for hd in &h.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(hd.name.as_bytes()),
            HeaderValue::from_str(&hd.value),
        ) else {
            continue;
        };
        if hd.append {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
    let status = if probe.protocol == Protocol::Http2 {
        let uri = Uri::builder()
            .scheme("http")
            .authority(probe.service.as_str())
            .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|e| e.to_string())?;
        let req = builder
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = h2_sender(connector, kept).await?.send_request(req).await;
        let resp = resp.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        read_body(resp.into_body()).await?;
        status
    } else {
        let mut req = builder
            .uri(uri)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        req.headers_mut().insert(http::header::HOST, host);
        let reused = match kept.take() {
            Some(Kept::H1(mut s)) => s.ready().await.is_ok().then_some(s),
            _ => None,
        };
        let mut sender = match reused {
            Some(s) => s,
            None => {
                let io = TokioIo::new(dial(connector).await?);
                let (sender, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        read_body(resp.into_body()).await?;
        *kept = Some(Kept::H1(sender));
        status
    };
    if h.expected_statuses.contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

async fn h2_sender(
    connector: &Connector,
    kept: &mut Option<Kept>,
) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    if let Some(Kept::H2(s)) = kept
        && !s.is_closed()
    {
        return Ok(s.clone());
    }
    let io = TokioIo::new(dial(connector).await?);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    *kept = Some(Kept::H2(sender.clone()));
    Ok(sender)
}

/// Reads an answer's body (at most [`MAX_BODY`] bytes of it) and its trailers.
async fn read_body(
    mut body: hyper::body::Incoming,
) -> Result<(Bytes, Option<http::HeaderMap>), String> {
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        match frame.into_data() {
            Ok(d) => {
                if data.len() + d.len() > MAX_BODY {
                    return Err("answer too large".into());
                }
                data.extend_from_slice(&d);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}

/// Whether every block is found in `data`, in order (Envoy's fuzzy matching).
pub(crate) fn blocks_found(data: &[u8], blocks: &[&[u8]]) -> bool {
    let mut at = 0;
    for b in blocks {
        if b.is_empty() {
            continue;
        }
        let Some(found) = data
            .get(at..)
            .and_then(|rest| rest.windows(b.len()).position(|w| w == *b))
        else {
            return false;
        };
        at += found + b.len();
    }
    true
}

/// Connects (or reuses the kept connection), sends `send`'s bytes, and reads until every
/// `receive` block was seen; with nothing to receive, a connection is enough.
async fn check_tcp(
    t: &TcpCheck,
    connector: &Connector,
    kept: &mut Option<Kept>,
) -> Result<(), String> {
    let mut io = match kept.take() {
        Some(Kept::Tcp(io)) => io,
        _ => Box::new(dial(connector).await?),
    };
    if let Some(send) = t.send.as_deref().filter(|s| !s.is_empty()) {
        io.write_all(send.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        io.flush().await.map_err(|e| e.to_string())?;
    }
    if t.receive.is_empty() {
        *kept = Some(Kept::Tcp(io));
        return Ok(());
    }
    let blocks: Vec<&[u8]> = t.receive.iter().map(|r| r.as_bytes()).collect();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the expected answer".into());
        }
        data.extend_from_slice(buf.get(..n).unwrap_or_default());
        if blocks_found(&data, &blocks) {
            *kept = Some(Kept::Tcp(io));
            return Ok(());
        }
        if data.len() > MAX_TCP_RECEIVE {
            return Err("expected answer not found".into());
        }
    }
}

/// The gRPC health request: `HealthCheckRequest { service }`, length-prefixed.
pub(crate) fn grpc_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            msg.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        msg.push(len as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&msg);
    Bytes::from(out)
}

/// The `status` of a length-prefixed `HealthCheckResponse` (`1`: `SERVING`); `None` when it
/// is not one.
pub(crate) fn grpc_status(mut body: &[u8]) -> Option<u64> {
    if body.len() < 5 || body.first() != Some(&0) {
        return None;
    }
    body.advance(1);
    let len = usize::try_from(body.get_u32()).ok()?;
    let mut msg = body.get(..len)?;
    let mut status = 0; // proto3: unset is UNKNOWN (0)
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                let v = varint(&mut msg)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let l = usize::try_from(varint(&mut msg)?).ok()?;
                msg = msg.get(l..)?;
            }
            1 => msg = msg.get(8..)?,
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `grpc.health.v1.Health/Check` over HTTP/2; passes on `grpc-status: 0` and `SERVING`.
async fn check_grpc(
    probe: &Probe,
    g: &GrpcCheck,
    connector: &Connector,
    kept: &mut Option<Kept>,
) -> Result<(), String> {
    let authority = if g.authority.is_empty() {
        probe.service.as_str()
    } else {
        g.authority.as_str()
    };
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query("/grpc.health.v1.Health/Check")
        .build()
        .map_err(|e| e.to_string())?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "Envoy/HC")
        .body(Full::new(grpc_request(&g.service_name)))
        .map_err(|e| e.to_string())?;
    let resp = h2_sender(connector, kept)
        .await?
        .send_request(req)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let head_status = resp.headers().get("grpc-status").cloned();
    let (body, trailers) = read_body(resp.into_body()).await?;
    let code = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or(head_status.as_ref())
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if code.as_deref() != Some("0") {
        return Err(format!("grpc-status {code:?}"));
    }
    match grpc_status(&body) {
        Some(1) => Ok(()),
        other => Err(format!("serving status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> HealthCheck {
        HealthCheck::from_conf(Some(&aerie_core::policies::meshhealthcheck::Conf {
            tcp: Some(Default::default()),
            ..Default::default()
        }))
        .unwrap_or_else(|| panic!("a conf"))
    }

    #[test]
    fn first_check_decides_then_thresholds() {
        let mut v = Verdicts::new(2, 3);
        assert_eq!(v.record(true), Some(true), "the first pass is enough");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(true), None, "a pass resets the failures");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), Some(false), "two failures in a row");
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(false), None, "a failure resets the passes");
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), Some(true), "three passes in a row");
        let mut v = Verdicts::new(1, 1);
        assert_eq!(v.record(false), None, "starts unhealthy");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(true), Some(true));
        assert_eq!(v.record(false), Some(false));
    }

    #[test]
    fn waits_add_jitter_within_bounds() {
        let mut c = conf();
        c.interval_ms = 1_000;
        c.no_traffic_interval_ms = 60_000;
        let probe = |c: HealthCheck| Probe {
            conf: c,
            protocol: Protocol::Tcp,
            service: "s".into(),
        };
        let mut rng = XorShift::new(7);
        let p = probe(c.clone());
        assert_eq!(p.next_wait(true, &mut rng), Duration::from_secs(1));
        assert_eq!(p.next_wait(false, &mut rng), Duration::from_secs(60));
        assert_eq!(p.initial_wait(&mut rng), Duration::ZERO);
        c.interval_jitter_percent = 10;
        c.interval_jitter_ms = 500;
        c.initial_jitter_ms = 300;
        let p = probe(c);
        let waits: Vec<u128> = (0..200)
            .map(|_| p.next_wait(true, &mut rng).as_millis())
            .collect();
        assert!(
            waits.iter().all(|w| (1_000..1_600).contains(w)),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w > 1_100), "both jitters add up");
        let initial: Vec<u128> = (0..100)
            .map(|_| p.initial_wait(&mut rng).as_millis())
            .collect();
        assert!(initial.iter().all(|w| *w < 300) && initial.iter().any(|w| *w > 0));
    }

    #[test]
    fn tcp_blocks_match_in_order_not_adjacent() {
        let data = b"HTTP/1.1 200 OK\r\ncontent-type: x\r\n\r\nhealthy";
        assert!(blocks_found(data, &[b"200 OK", b"healthy"]));
        assert!(!blocks_found(data, &[b"healthy", b"200 OK"]));
        assert!(!blocks_found(data, &[b"503"]));
        assert!(blocks_found(data, &[]));
    }

    #[test]
    fn grpc_messages_round_trip() {
        assert_eq!(&grpc_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &grpc_request("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 9, 0x08]), None, "truncated");
        assert_eq!(grpc_status(&[1, 0, 0, 0, 0]), None, "compressed");
    }

    fn health(n: usize, panic: f64, fail: bool) -> (ActiveHealth, Vec<Arc<EndpointState>>) {
        let states: Vec<Arc<EndpointState>> =
            (0..n).map(|_| Arc::new(EndpointState::new())).collect();
        let rt_task = || {
            // A finished task: its handle aborts nothing.
            tokio::spawn(async {}).abort_handle()
        };
        let checkers = states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Arc::new(EndpointChecker {
                    state: s.clone(),
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                    task: rt_task(),
                })
            })
            .collect();
        (
            ActiveHealth {
                checkers,
                traffic: Arc::default(),
                probe: Arc::new(Probe {
                    conf: conf(),
                    protocol: Protocol::Tcp,
                    service: "s".into(),
                }),
                panic_threshold: panic,
                fail_on_panic: fail,
            },
            states,
        )
    }

    #[tokio::test]
    async fn unhealthy_endpoints_are_skipped_until_panic() {
        let (h, states) = health(4, 50.0, false);
        let none = |_| false;
        assert_eq!(h.mode(none), Mode::All, "all start unhealthy: panic");
        for s in &states {
            s.set(true);
        }
        states[1].set(false);
        let v = Verdict {
            health: &h,
            ejected: none,
            mode: h.mode(none),
        };
        assert!(!v.skips(0) && v.skips(1) && !v.skips(2) && !v.skips(3));
        // An ejected endpoint counts as unhealthy too: 2 of 4 healthy is not below 50%.
        let three = |i| i == 3;
        let v = Verdict {
            health: &h,
            ejected: three,
            mode: h.mode(three),
        };
        assert!(!v.skips(0) && v.skips(1) && !v.skips(2) && v.skips(3));
        // 1 of 4 is: panic, every endpoint.
        states[0].set(false);
        let v = Verdict {
            health: &h,
            ejected: three,
            mode: h.mode(three),
        };
        assert_eq!(v.mode, Mode::All);
        assert!((0..4).all(|i| !v.skips(i)));
        let (h, states) = health(2, 50.0, true);
        states[0].set(true);
        assert_eq!(h.mode(none), Mode::Skip);
        states[0].set(false);
        assert_eq!(h.mode(none), Mode::Fail, "failTrafficOnPanic");
        let (h, _) = health(2, 0.0, true);
        assert_eq!(h.mode(none), Mode::Skip, "threshold 0: never panics");
    }

    /// Polls `f` every 10 ms until it holds (deadline 10 s).
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A TCP check against a listener that answers `pong` only while `up` holds: the
    /// endpoint turns unhealthy after `unhealthyThreshold` failed checks (not after one)
    /// and back after one passed check; dropping the checks stops the task.
    #[tokio::test]
    async fn checker_flips_health_on_thresholds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let up = Arc::new(AtomicBool::new(true));
        let checks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (serving, counted) = (up.clone(), checks.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (up, counted) = (serving.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        counted.fetch_add(1, Ordering::Relaxed);
                        let answer: &[u8] = if up.load(Ordering::Relaxed) {
                            b"po" // split: the blocks are searched across reads
                        } else {
                            b"nope"
                        };
                        if s.write_all(answer).await.is_err() {
                            break;
                        }
                        if up.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            if s.write_all(b"ng").await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        let mut c = conf();
        c.interval_ms = 200;
        c.timeout_ms = 100;
        c.unhealthy_threshold = 3;
        c.healthy_threshold = 1;
        c.tcp = Some(TcpCheck {
            disabled: false,
            send: Some("ping".into()),
            receive: vec!["pong".into()],
        });
        let connector = Connector {
            addr,
            tls: None,
            timeout: Duration::from_secs(1),
        };
        let health = ActiveHealth::build(
            Some(&c),
            Protocol::Tcp,
            "s",
            std::slice::from_ref(&connector),
            &[],
            false,
            None,
        )
        .unwrap_or_else(|| panic!("checks"));
        health.traffic.saw();
        let state = health.checkers[0].state.clone();
        until("first check passed", || state.healthy()).await;
        up.store(false, Ordering::Relaxed);
        let at = checks.load(Ordering::Relaxed);
        until("failing", || !state.healthy()).await;
        let failed = checks.load(Ordering::Relaxed) - at;
        assert!(failed >= 3, "unhealthy after {failed} failed checks");
        up.store(true, Ordering::Relaxed);
        until("recovered", || state.healthy()).await;
        // A rebuild with the same check and dialling keeps the checker (and its state).
        let again = ActiveHealth::build(
            Some(&c),
            Protocol::Tcp,
            "s",
            &[connector],
            &[&health],
            true,
            None,
        )
        .unwrap_or_else(|| panic!("checks"));
        assert!(Arc::ptr_eq(&again.checkers[0], &health.checkers[0]));
        let task = health.checkers[0].task.clone();
        drop((health, again));
        until("stopped", || task.is_finished()).await;
    }

    #[test]
    fn no_check_kind_for_the_protocol_means_no_checks() {
        let c = conf();
        let rt = tokio::runtime::Builder::new_current_thread().build();
        let Ok(rt) = rt else { panic!("runtime") };
        rt.block_on(async {
            assert!(
                ActiveHealth::build(Some(&c), Protocol::Http, "s", &[], &[], false, None).is_none()
            );
            assert!(ActiveHealth::build(None, Protocol::Tcp, "s", &[], &[], false, None).is_none());
            assert!(
                ActiveHealth::build(Some(&c), Protocol::Tcp, "s", &[], &[], false, None).is_some()
            );
        });
    }
}
