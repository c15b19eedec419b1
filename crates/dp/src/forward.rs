//! Forwarding one HTTP request to a set of endpoints (shared by inbound and outbound), with
//! the listener's MeshTimeout request and stream timeouts, MeshRetry retries, and
//! MeshCircuitBreaker limits and outlier detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::body::{ProxyBody, local_response};
use crate::breaker::{
    Cluster, Detector, Held, Outcome, OutlierPolicy, PoolMember, Resource, overflow_response,
};
use crate::lb::{Balancer, GeneratedCookies, SourceIp};
use crate::metrics::ListenerStats;
use crate::pool::{CheckoutError, Connector, EndpointPool, HttpVersion, Upstream};
use crate::retry::{self, Attempt, ReqBody, RetryPolicy};
use crate::stream::{
    self, Expired, RxBody, RxWatch, StreamLimits, TimedBody, request_done, timeout_status,
};

/// The endpoints behind a listener, balanced round robin or as a MeshLoadBalancingStrategy
/// says.
pub(crate) struct Upstreams {
    pub pools: Vec<Arc<EndpointPool>>,
    pub lb: Balancer,
    pub stats: Arc<ListenerStats>,
    /// The listener's request timeouts and retries (a MeshHTTPRoute may have its own).
    pub http: HttpPolicy,
    /// The cluster's counters and MeshCircuitBreaker thresholds (shared with the pools).
    pub cluster: Arc<Cluster>,
    /// MeshCircuitBreaker outlier detection; `None`: off.
    pub outlier: Option<OutlierPolicy>,
    /// TCP: MeshRetry `tcp.maxConnectAttempt` (every endpoint is tried at least once).
    pub connect_attempts: u32,
    /// MeshHealthCheck's active checks (`crate::health`); `None`: off.
    pub health: Option<crate::health::ActiveHealth>,
}

/// What a request is forwarded with: the listener's MeshTimeout request and stream
/// timeouts and MeshRetry, or those of a MeshHTTPRoute's own rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpPolicy {
    /// MeshTimeout `http.requestTimeout`: from a request's start to its response headers.
    pub request_timeout: Option<Duration>,
    /// MeshTimeout `http.streamIdleTimeout` and `http.maxStreamDuration`.
    pub streams: StreamLimits,
    /// MeshRetry for this listener's protocol (HTTP or gRPC); `None`: no retries.
    pub retry: Option<RetryPolicy>,
}

/// How long a mirrored copy may take when no timeout of the listener bounds it (Kuma's
/// default `http.requestTimeout`).
const SHADOW_LIMIT: Duration = Duration::from_secs(15);

/// No endpoint chosen yet (see [`Upstreams::attempt`]).
const NONE_CHOSEN: usize = usize::MAX;

/// One attempt's answer and how it is classified for retries.
struct Tried {
    resp: Response<ProxyBody>,
    attempt: Attempt,
    /// Refused by a circuit breaker: never retried.
    overflow: bool,
}

impl Upstreams {
    /// Outlier detection over this listener's endpoints, when it is on.
    fn detector(&self) -> Option<Detector<'_, Arc<EndpointPool>>> {
        self.outlier.as_ref().map(|policy| Detector {
            policy,
            cluster: &self.cluster,
            endpoints: &self.pools,
            health: |p| &p.health,
        })
    }

    fn record(&self, i: usize, outcome: Outcome) {
        if let Some(d) = self.detector()
            && let Some(time) = d.record(i, outcome)
        {
            self.ejected(i, time);
        }
    }

    fn ejected(&self, i: usize, time: Duration) {
        self.stats.error("outlier_ejection");
        if let Some(p) = self.pools.get(i) {
            info!(listener = %self.stats.name, endpoint = %p.connector.addr, ?time, "endpoint ejected by outlier detection");
        }
    }

    /// Outlier detection, once the interval's success-rate and failure-percentage sweep ran
    /// if one was due (before an endpoint is chosen).
    fn swept_detector(&self) -> Option<Detector<'_, Arc<EndpointPool>>> {
        let d = self.detector()?;
        for (i, time) in d.maybe_sweep().into_iter().flatten() {
            self.ejected(i, time);
        }
        Some(d)
    }

    /// Dials an endpoint for TCP proxying: up to `connect_attempts` attempts (and at least
    /// one per endpoint), in the balancer's order, skipping ejected endpoints. The
    /// connection counts in the cluster's `maxConnections` and in this worker's pool to the
    /// endpoint (`maxConnectionPools`) while the returned guards live. `None` closes the
    /// downstream connection.
    pub async fn connect(&self) -> Option<(Upstream, (Held, PoolMember))> {
        let Some(conn) = self.cluster.try_take(Resource::Connections) else {
            self.stats.error("upstream_overflow");
            return None;
        };
        let Some(_pending) = self.cluster.try_take(Resource::Pending) else {
            self.stats.error("upstream_overflow");
            return None;
        };
        let n = self.pools.len();
        let attempts = usize::try_from(self.connect_attempts)
            .unwrap_or(usize::MAX)
            .max(n);
        let detector = self.swept_detector();
        let skip = crate::health::selection(self.health.as_ref(), detector.as_ref());
        if skip.fails() {
            self.stats.error("upstream_cx_none_healthy");
            return None;
        }
        let skipped = move |i: usize| skip.skips(i);
        // Rounds over the balancer's order (each round starts afresh: round robin moves
        // on, a policy draws again) until the attempts are used up.
        let mut tried = 0;
        'rounds: loop {
            let mut yielded = false;
            for i in self.lb.order(n, None, &skipped) {
                yielded = true;
                if tried >= attempts {
                    break 'rounds;
                }
                tried += 1;
                if skipped(i) {
                    continue;
                }
                let pool = self.pools.get(i)?;
                // As Envoy's TCP proxy: no pool for the chosen endpoint ends the attempt.
                let Some(member) = pool.join_pool(false) else {
                    self.stats.error("upstream_cx_pool_overflow");
                    return None;
                };
                match pool.connector.connect().await {
                    Ok(io) => {
                        self.record(i, Outcome::Connected);
                        crate::accesslog::note_upstream(pool.connector.addr);
                        return Some((io, (conn, member)));
                    }
                    Err(e) => {
                        self.connect_failed(&pool.connector, &e);
                        self.record(i, Outcome::LocalFailure);
                    }
                }
            }
            if !yielded {
                break;
            }
        }
        if n == 0 {
            crate::accesslog::note_flag(crate::accesslog::UH);
        }
        None
    }

    fn connect_failed(&self, connector: &Connector, e: &dyn std::fmt::Display) {
        self.stats.connect_errors.inc();
        crate::accesslog::note_flag(crate::accesslog::UF);
        debug!(listener = %self.stats.name, endpoint = %connector.addr, error = %e, "upstream connect failed");
    }

    /// Forwards `req` to the next endpoint that accepts a connection, retrying as the
    /// listener's MeshRetry says. Never fails: upstream problems become `503` (nothing
    /// reachable, or a circuit breaker's overflow), `502` (the exchange broke), `504` (no
    /// response headers within the request or per-try timeout; Envoy's `upstream request
    /// timeout`), or `504`/`408` (`408` while the request is still arriving) when the stream
    /// idled out (`stream timeout`) or an attempt reached the maximum stream duration
    /// (`upstream max stream duration reached`) before the response headers. After them,
    /// those two reset the stream ([`TimedBody`]).
    pub async fn forward(&self, req: Request<RxBody>) -> Response<ProxyBody> {
        self.forward_with(req, &self.http).await
    }

    /// [`Upstreams::forward`] with a MeshHTTPRoute's own timeouts and retries.
    pub async fn forward_with(
        &self,
        req: Request<RxBody>,
        policy: &HttpPolicy,
    ) -> Response<ProxyBody> {
        let Some(active) = self.cluster.try_take(Resource::Requests) else {
            self.stats.error("upstream_overflow");
            return overflow_response();
        };
        let timed = policy.request_timeout.is_some() || policy.streams.any();
        let start = if timed { Some(Instant::now()) } else { None };
        // A body still to arrive reports to the stream's timers (the only allocation they
        // make, and only for a request with a body).
        let (parts, mut body) = req.into_parts();
        let rx = match start {
            Some(start) if policy.streams.any() => body.watch(start),
            _ => None,
        };
        let req = Request::from_parts(parts, body);
        // Each branch makes its own exchange future, so the state machine holds one.
        let mut resp = match start {
            None => self.forward_untimed(req, policy, None).await,
            Some(start) => {
                match stream::before_headers(
                    self.forward_untimed(req, policy, rx.as_ref()),
                    start,
                    policy.request_timeout,
                    policy.streams.idle,
                    rx.as_deref(),
                )
                .await
                {
                    Ok(resp) => resp,
                    Err(Expired::Request) => {
                        self.stats.error("upstream_request_timeout");
                        local_response(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
                    }
                    Err(Expired::StreamIdle) => {
                        self.stats.error("stream_idle_timeout");
                        local_response(
                            timeout_status(request_done(rx.as_deref())),
                            "stream timeout",
                        )
                    }
                }
            }
        };
        resp.body_mut().hold(active);
        resp
    }

    /// Sends a mirrored copy of a request (MeshHTTPRoute's `RequestMirror`, Envoy's shadow):
    /// one attempt, no retries, counted in the cluster's `maxRequests`; the answer is read
    /// to its end and dropped. The whole exchange is bounded by the request timeout (else
    /// the stream idle timeout, else Kuma's default request timeout): a copy never waits
    /// forever.
    pub async fn shadow(&self, req: Request<ReqBody>) {
        let Some(_active) = self.cluster.try_take(Resource::Requests) else {
            self.stats.error("upstream_overflow");
            return;
        };
        let limit = self
            .http
            .request_timeout
            .or(self.http.streams.idle)
            .unwrap_or(SHADOW_LIMIT);
        let exchange = async {
            let chosen = AtomicUsize::new(NONE_CHOSEN);
            let tried = self.attempt(req, self.http.streams, &chosen, None).await;
            self.stats.error("upstream_rq_mirrored");
            // Read to its end (frame by frame), so that the connection goes back to the pool.
            let mut body = std::pin::pin!(tried.resp.into_body());
            while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
        };
        if tokio::time::timeout(limit, exchange).await.is_err() {
            self.stats.error("upstream_shadow_timeout");
        }
    }

    async fn forward_untimed(
        &self,
        req: Request<RxBody>,
        http: &HttpPolicy,
        rx: Option<&Arc<RxWatch>>,
    ) -> Response<ProxyBody> {
        match &http.retry {
            Some(policy) if policy.eligible(req.method(), req.headers()) => {
                self.forward_retrying(req, policy, http.streams, rx).await
            }
            _ => {
                let chosen = AtomicUsize::new(NONE_CHOSEN);
                self.attempt(req.map(ReqBody::Stream), http.streams, &chosen, rx)
                    .await
                    .resp
            }
        }
    }

    /// Attempts until one is not retriable, its request cannot be replayed, the retries
    /// are used up, or the cluster's `maxRetries` refuses another; the last answer is
    /// returned.
    async fn forward_retrying(
        &self,
        req: Request<RxBody>,
        policy: &RetryPolicy,
        streams: StreamLimits,
        rx: Option<&Arc<RxWatch>>,
    ) -> Response<ProxyBody> {
        let (parts, body) = req.into_parts();
        let head = retry::Head::of(&parts);
        let (body, copy) = ReqBody::tee(body);
        let mut req = Request::from_parts(parts, body);
        let mut retries = 0;
        // Exponential back-offs so far (a rate-limited one does not advance it, as Envoy).
        let mut backed_off = 0;
        let mut _retry: Option<Held> = None;
        loop {
            let tried = self
                .try_once(req, policy.per_try_timeout, streams, rx)
                .await;
            _retry = None;
            if tried.overflow
                || retries >= policy.num_retries
                || !policy.retries(tried.attempt, tried.resp.headers())
            {
                if retries > 0
                    && retries >= policy.num_retries
                    && policy.retries(tried.attempt, tried.resp.headers())
                {
                    crate::accesslog::note_flag(crate::accesslog::URX);
                }
                return tried.resp;
            }
            let body = match &copy {
                None => ReqBody::Full {
                    data: None,
                    trailers: None,
                },
                Some(copy) => {
                    let replay = copy.lock().unwrap_or_else(|e| e.into_inner()).replay();
                    match replay {
                        Some(body) => body,
                        None => {
                            self.stats.error("upstream_retry_not_replayable");
                            return tried.resp;
                        }
                    }
                }
            };
            let Some(held) = self.cluster.try_take(Resource::Retries) else {
                self.stats.error("upstream_retry_overflow");
                return tried.resp;
            };
            _retry = Some(held);
            // A response asking for a wait (`rateLimitedBackOff`) gets it; otherwise the
            // jittered exponential back-off.
            let asked = match tried.attempt {
                Attempt::Response { .. } => policy.rate_limited_back_off(tried.resp.headers()),
                _ => None,
            };
            let wait = match asked {
                Some(wait) => {
                    self.stats.error("upstream_retry_backoff_ratelimited");
                    wait
                }
                None => {
                    backed_off += 1;
                    policy.back_off(backed_off)
                }
            };
            // The discarded answer's connection is closed with it.
            drop(tried);
            retries += 1;
            self.stats.error("upstream_retry");
            tokio::time::sleep(wait).await;
            req = head.request(body);
        }
    }

    /// One attempt within the per-try timeout.
    async fn try_once(
        &self,
        req: Request<ReqBody>,
        per_try: Option<Duration>,
        streams: StreamLimits,
        rx: Option<&Arc<RxWatch>>,
    ) -> Tried {
        let chosen = AtomicUsize::new(NONE_CHOSEN);
        let Some(limit) = per_try else {
            return self.attempt(req, streams, &chosen, rx).await;
        };
        match tokio::time::timeout(limit, self.attempt(req, streams, &chosen, rx)).await {
            Ok(tried) => tried,
            Err(_) => {
                let i = chosen.load(Ordering::Relaxed);
                if i != NONE_CHOSEN {
                    self.record(i, Outcome::LocalFailure);
                }
                self.stats.error("upstream_per_try_timeout");
                Tried {
                    resp: local_response(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout"),
                    attempt: Attempt::Reset,
                    overflow: false,
                }
            }
        }
    }

    /// Sends `req` to the next endpoint (in the balancer's order, skipping ejected ones) that accepts a
    /// connection; `chosen` says which one it went to. The maximum stream duration runs
    /// from the moment the request has a connection (Envoy's `onPoolReady`); `rx` is the
    /// request body's watch, for the stream timers of the response body.
    async fn attempt(
        &self,
        req: Request<ReqBody>,
        streams: StreamLimits,
        chosen: &AtomicUsize,
        rx: Option<&Arc<RxWatch>>,
    ) -> Tried {
        let mut picked = None;
        {
            let detector = self.swept_detector();
            let skip = crate::health::selection(self.health.as_ref(), detector.as_ref());
            if skip.fails() {
                // MeshHealthCheck's `failTrafficOnPanic`: too few healthy endpoints.
                self.stats.error("upstream_rq_none_healthy");
                return Tried {
                    resp: local_response(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
                    attempt: Attempt::ConnectFailure,
                    overflow: false,
                };
            }
            let skipped = move |i: usize| skip.skips(i);
            // Round robin: no hash to compute (a branch).
            let key = match &self.lb {
                Balancer::RoundRobin(_) => None,
                Balancer::Policy(_) => self.lb.hash(
                    req.headers(),
                    req.uri(),
                    req.extensions().get::<SourceIp>().map(|s| s.0),
                    req.extensions().get::<GeneratedCookies>(),
                ),
            };
            for i in self.lb.order(self.pools.len(), key, &skipped) {
                if skipped(i) {
                    continue;
                }
                let Some(pool) = self.pools.get(i) else { break };
                match pool.checkout().await {
                    Ok(sender) => {
                        picked = Some((i, pool, sender));
                        break;
                    }
                    Err(CheckoutError::Overflow) => {
                        self.stats.error("upstream_overflow");
                        return Tried {
                            resp: overflow_response(),
                            attempt: Attempt::ConnectFailure,
                            overflow: true,
                        };
                    }
                    // Envoy's router answers a request it gets no connection pool for as
                    // it answers one without a host, and does not retry it.
                    Err(CheckoutError::PoolOverflow) => {
                        self.stats.error("upstream_cx_pool_overflow");
                        return Tried {
                            resp: local_response(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "no healthy upstream",
                            ),
                            attempt: Attempt::ConnectFailure,
                            overflow: true,
                        };
                    }
                    Err(CheckoutError::Connect(e)) => {
                        self.connect_failed(&pool.connector, &e);
                        self.record(i, Outcome::LocalFailure);
                    }
                }
            }
        }
        let Some((i, pool, sender)) = picked else {
            if self.pools.is_empty() {
                crate::accesslog::note_flag(crate::accesslog::UH);
            }
            let text = if self.pools.is_empty() {
                "no healthy upstream"
            } else {
                "upstream connect error"
            };
            return Tried {
                resp: local_response(StatusCode::SERVICE_UNAVAILABLE, text),
                attempt: Attempt::ConnectFailure,
                overflow: false,
            };
        };
        chosen.store(i, Ordering::Relaxed);
        crate::accesslog::note_upstream(pool.connector.addr);
        // Least request: in flight from here until the response body ends.
        let active = self.lb.begin(i);
        let req = prepare_request(req, pool.version, pool.connector.addr);
        let max_at = streams.max.and_then(|max| Instant::now().checked_add(max));
        let sent = match max_at {
            None => pool.send(sender, req).await,
            Some(at) => match tokio::time::timeout_at(at, pool.send(sender, req)).await {
                Ok(sent) => sent,
                Err(_) => {
                    // Envoy resets the upstream stream, retries it as a reset if the policy
                    // says so, and otherwise answers locally (no outlier detection event).
                    self.stats.error("upstream_max_stream_duration");
                    return Tried {
                        resp: local_response(
                            timeout_status(request_done(rx.map(|w| &**w))),
                            "upstream max stream duration reached",
                        ),
                        attempt: Attempt::Reset,
                        overflow: false,
                    };
                }
            },
        };
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                self.record(i, Outcome::Status(status));
                let attempt = Attempt::Response {
                    status,
                    grpc: resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                    rate_limited: resp.headers().contains_key("x-envoy-ratelimited"),
                };
                let mut resp = resp.map(|body| {
                    if streams.any() {
                        ProxyBody::Timed {
                            body: TimedBody::new(body, streams.idle, max_at, rx.cloned()),
                        }
                    } else {
                        ProxyBody::Upstream { body }
                    }
                });
                strip_hop_by_hop(resp.headers_mut());
                *resp.version_mut() = Version::HTTP_11;
                if let Some(active) = active {
                    resp.body_mut().hold_active(active);
                }
                Tried {
                    resp,
                    attempt,
                    overflow: false,
                }
            }
            Err(e) => {
                self.record(i, Outcome::LocalFailure);
                self.stats.error("upstream_request");
                debug!(listener = %self.stats.name, endpoint = %pool.connector.addr, error = %e, "upstream request failed");
                Tried {
                    resp: local_response(
                        StatusCode::BAD_GATEWAY,
                        "upstream connect error or disconnect/reset before headers",
                    ),
                    attempt: Attempt::Reset,
                    overflow: false,
                }
            }
        }
    }
}

/// Rewrites a request for the upstream's HTTP version: origin-form URI and `Host` for
/// HTTP/1.1, absolute URI (`:scheme`/`:authority`) for HTTP/2; hop-by-hop headers removed.
pub fn prepare_request<B>(
    mut req: Request<B>,
    version: HttpVersion,
    addr: std::net::SocketAddr,
) -> Request<B> {
    strip_hop_by_hop(req.headers_mut());
    match version {
        HttpVersion::H1 => {
            *req.version_mut() = Version::HTTP_11;
            if req.uri().authority().is_some() {
                if !req.headers().contains_key(header::HOST)
                    && let Some(host) = req
                        .uri()
                        .authority()
                        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                {
                    req.headers_mut().insert(header::HOST, host);
                }
                let path = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(path);
            }
        }
        HttpVersion::H2 => {
            *req.version_mut() = Version::HTTP_2;
            if req.uri().scheme().is_none() || req.uri().authority().is_none() {
                let authority = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    .or_else(|| Authority::try_from(addr.to_string()).ok());
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = authority;
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                }
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    req
}

/// Typed names, so removing them hashes a known name instead of parsing a string.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes connection-scoped headers (RFC 9110 §7.6.1): the fixed ones and every header
/// any `Connection` field names (all of its lines; a value with non-ASCII bytes still names
/// the options it lists). `te: trailers` survives unless named: gRPC needs it.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers_but_keeps_te_trailers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["te", "x-kept"]);

        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    /// Found by fuzzing (`aerie-fuzz`, target `http`): only the first `Connection` line was
    /// read, and not at all when it held a non-ASCII byte, so a client could have a header it
    /// declared connection-specific forwarded to the application.
    #[test]
    fn every_connection_line_names_headers_to_strip() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("close"));
        h.append("connection", HeaderValue::from_static("x-a"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);

        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_bytes(b"keep-aliv\x8e, x-secret").unwrap(),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
