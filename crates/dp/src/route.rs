//! MeshHTTPRoute and MeshTCPRoute on an outbound: the route table the control plane resolved
//! ([`aerie_core::policies::meshhttproute::table`]), compiled once per config (regular
//! expressions included) and walked per request.
//!
//! A request takes the first rule whose matchers all match, compared on borrowed `&str`s
//! (path, method, header values, raw query pairs), so matching allocates nothing; the rule's
//! filters run (a redirect is answered here; header edits insert prepared names and
//! values; a URL rewrite builds the new URI, the only allocation, and only for rules that
//! have one), then a backend is drawn by weight from the per-thread xorshift
//! ([`crate::rng`]) and the request is forwarded through that backend's [`Upstreams`]: the
//! outbound's own, or one per other destination (its own endpoints, pools, SPIFFE ID and
//! server name; the outbound's timeouts, retries and circuit breaker).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aerie_core::policies::meshhttproute::table::{
    HeaderEdits, HttpRouteRule, HttpRoutes, PathMatcher, PathRewrite, Redirect, RouteBackend,
    RouteDestination, RouteFilter, TcpRoutes, UrlRewrite, ValueMatcher,
};
use aerie_core::proxy_config::OutboundConfig;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use regex::Regex;
use tracing::warn;

use crate::body::{ProxyBody, local_response};
use crate::forward::{HttpPolicy, Upstreams};
use crate::retry::ReqBody;
use crate::retry::RetryPolicy;
use crate::stream::RxBody;
use crate::stream::StreamLimits;

/// Builds the [`Upstreams`] of a destination other than the outbound's own.
pub(crate) type MakeUpstreams<'a> = dyn FnMut(&RouteDestination) -> Arc<Upstreams> + 'a;

/// Weighted backends: `None` is the outbound's own destination.
pub(crate) struct Backends {
    /// Cumulative weights, ascending; the last is the total.
    cumulative: Vec<u64>,
    targets: Vec<Option<Arc<Upstreams>>>,
}

impl Backends {
    fn build(backends: &[RouteBackend], make: &mut MakeUpstreams<'_>) -> Backends {
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(backends.len());
        let mut targets = Vec::with_capacity(backends.len());
        for b in backends.iter().filter(|b| b.weight > 0) {
            total += u64::from(b.weight);
            cumulative.push(total);
            targets.push(b.destination.as_ref().map(&mut *make));
        }
        Backends {
            cumulative,
            targets,
        }
    }

    /// Draws a backend by weight; `None`: the outbound's own destination.
    pub fn pick(&self) -> Option<&Arc<Upstreams>> {
        let total = *self.cumulative.last()?;
        let i = if self.cumulative.len() == 1 {
            0
        } else {
            let draw = crate::rng::random_below(total);
            self.cumulative.partition_point(|c| *c <= draw)
        };
        self.targets.get(i)?.as_ref()
    }

    /// Every destination other than the outbound's own (pools to reuse on the next config).
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstreams>> {
        self.targets.iter().flatten()
    }
}

/// A MeshTCPRoute: where each connection goes.
pub(crate) struct TcpTable {
    pub backends: Backends,
}

impl TcpTable {
    pub fn build(routes: &TcpRoutes, make: &mut MakeUpstreams<'_>) -> TcpTable {
        TcpTable {
            backends: Backends::build(&routes.backends, make),
        }
    }
}

enum Path {
    Exact(String),
    /// Without a trailing `/`; empty matches everything.
    Prefix(String),
    Regex(Regex),
    /// A regular expression that did not compile: matches nothing.
    Never,
}

enum Value {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present,
    Absent,
    Never,
}

impl Value {
    fn compile(m: &ValueMatcher) -> Value {
        match m {
            ValueMatcher::Exact(v) => Value::Exact(v.clone()),
            ValueMatcher::Prefix(v) => Value::Prefix(v.clone()),
            ValueMatcher::Regex(r) => whole(r).map_or(Value::Never, Value::Regex),
            ValueMatcher::Present => Value::Present,
            ValueMatcher::Absent => Value::Absent,
        }
    }

    fn matches(&self, v: Option<&str>) -> bool {
        match (self, v) {
            (Value::Absent, v) => v.is_none(),
            (_, None) | (Value::Never, _) => false,
            (Value::Present, Some(_)) => true,
            (Value::Exact(e), Some(v)) => e == v,
            (Value::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (Value::Regex(r), Some(v)) => r.is_match(v),
        }
    }
}

/// Envoy's `safe_regex` matches the whole value.
fn whole(re: &str) -> Option<Regex> {
    match Regex::new(&format!("^(?:{re})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!(regex = re, error = %e, "route regular expression does not compile; it matches nothing");
            None
        }
    }
}

/// Prepared header edits (invalid names or values left out).
#[derive(Default)]
struct Edits {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl Edits {
    fn compile(e: &HeaderEdits) -> Edits {
        let pair = |(n, v): &(String, String)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        };
        Edits {
            set: e.set.iter().filter_map(pair).collect(),
            add: e.add.iter().filter_map(pair).collect(),
            remove: e
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        }
    }

    /// Gateway API order: set, then add, then remove.
    fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

struct Rule {
    path: Path,
    method: Option<String>,
    headers: Vec<(HeaderName, Value)>,
    query: Vec<(String, Value)>,
    request_headers: Option<Edits>,
    response_headers: Option<Edits>,
    redirect: Option<Redirect>,
    rewrite: Option<UrlRewrite>,
    mirrors: Vec<MirrorTo>,
    /// The route's own MeshTimeout/MeshRetry rule; `None`: the destination's.
    policy: Option<HttpPolicy>,
    backends: Backends,
}

/// A `RequestMirror` filter: a share of the rule's requests copied to a destination.
struct MirrorTo {
    /// Out of 1,000,000.
    per_million: u32,
    /// `None`: the outbound's own destination.
    target: Option<Arc<Upstreams>>,
    /// Copies on their way (waiting for the body or sent and not yet answered).
    in_flight: Arc<AtomicUsize>,
}

/// The most copies one mirror keeps in flight; further ones are dropped. A mirror target
/// that hangs thus holds at most this many of the circuit-breaker slots and connections its
/// destination shares with the outbound, and never starves the caller's own requests.
pub(crate) const MAX_SHADOWS_IN_FLIGHT: usize = 64;

/// A copy counted in its mirror's `in_flight` until dropped.
struct InFlight(Arc<AtomicUsize>);

impl MirrorTo {
    /// Counts one more copy, unless [`MAX_SHADOWS_IN_FLIGHT`] are on their way already.
    fn enter(&self) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SHADOWS_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(self.in_flight.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A compiled MeshHTTPRoute table.
pub(crate) struct RouteTable {
    rules: Vec<Rule>,
}

impl RouteTable {
    /// `cfg`: the outbound (its timeouts and protocol, under a route's own rule).
    pub fn build(
        routes: &HttpRoutes,
        cfg: &OutboundConfig,
        make: &mut MakeUpstreams<'_>,
    ) -> RouteTable {
        let rules = routes
            .rules
            .iter()
            .map(|r| {
                let mut rule = Rule {
                    path: match &r.path {
                        None => Path::Prefix(String::new()),
                        Some(PathMatcher::Exact(p)) => Path::Exact(p.clone()),
                        Some(PathMatcher::Prefix(p)) => Path::Prefix(p.clone()),
                        Some(PathMatcher::Regex(re)) => whole(re).map_or(Path::Never, Path::Regex),
                    },
                    method: r.method.clone(),
                    headers: r
                        .headers
                        .iter()
                        .filter_map(|h| {
                            Some((
                                HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                                Value::compile(&h.kind),
                            ))
                        })
                        .collect(),
                    query: r
                        .query
                        .iter()
                        .map(|q| (q.name.clone(), Value::compile(&q.kind)))
                        .collect(),
                    request_headers: None,
                    response_headers: None,
                    redirect: None,
                    rewrite: None,
                    mirrors: Vec::new(),
                    policy: route_policy(r, cfg),
                    backends: Backends::build(&r.backends, make),
                };
                for f in &r.filters {
                    match f {
                        RouteFilter::RequestHeaders(e) => {
                            rule.request_headers = Some(Edits::compile(e))
                        }
                        RouteFilter::ResponseHeaders(e) => {
                            rule.response_headers = Some(Edits::compile(e))
                        }
                        RouteFilter::Redirect(r) => rule.redirect = Some(r.clone()),
                        RouteFilter::UrlRewrite(u) => rule.rewrite = Some(u.clone()),
                        RouteFilter::Mirror(m) if m.per_million > 0 => {
                            rule.mirrors.push(MirrorTo {
                                per_million: m.per_million,
                                target: m.destination.as_deref().map(&mut *make),
                                in_flight: Arc::default(),
                            })
                        }
                        RouteFilter::Mirror(_) => {}
                    }
                }
                rule
            })
            .collect();
        RouteTable { rules }
    }

    /// Every destination other than the outbound's own.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstreams>> {
        self.rules.iter().flat_map(|r| {
            r.backends
                .upstreams()
                .chain(r.mirrors.iter().filter_map(|m| m.target.as_ref()))
        })
    }

    /// The first rule matching the request.
    fn find<B>(&self, req: &Request<B>) -> Option<&Rule> {
        let path = req.uri().path();
        let query = req.uri().query();
        let method = req.method().as_str();
        let headers = req.headers();
        self.rules.iter().find(|r| {
            path_matches(&r.path, path)
                && r.method.as_deref().is_none_or(|m| m == method)
                && r.headers
                    .iter()
                    .all(|(name, v)| v.matches(headers.get(name).and_then(|h| h.to_str().ok())))
                && r.query
                    .iter()
                    .all(|(name, v)| v.matches(query_param(query, name)))
        })
    }

    /// Routes and forwards one request; the outbound's own destination is `own`.
    pub async fn forward(
        &self,
        own: &Arc<Upstreams>,
        mut req: Request<RxBody>,
    ) -> Response<ProxyBody> {
        let Some(rule) = self.find(&req) else {
            // Envoy's answer when no route matches.
            return local_response(StatusCode::NOT_FOUND, "");
        };
        if let Some(r) = &rule.redirect {
            return redirect(r, &rule.path, &req);
        }
        if let Some(e) = &rule.request_headers {
            e.apply(req.headers_mut());
        }
        if let Some(rw) = &rule.rewrite {
            rewrite(rw, &rule.path, &mut req);
        }
        if !rule.mirrors.is_empty() {
            mirror(&rule.mirrors, own, &mut req);
        }
        let upstreams = rule.backends.pick().map_or(&**own, |u| &**u);
        let mut resp = match &rule.policy {
            None => upstreams.forward(req).await,
            Some(policy) => upstreams.forward_with(req, policy).await,
        };
        if let Some(e) = &rule.response_headers {
            e.apply(resp.headers_mut());
        }
        resp
    }
}

/// Sends the request's copies to the mirrors whose share it falls in, as Envoy's shadows:
/// after the route's request filters, with `-shadow` appended to the host (before its
/// port), fire and forget. A body is copied as it streams to the real destination and the
/// copies leave once it has fully arrived; a body over
/// [`crate::retry::REPLAY_BUFFER_LIMIT`] (or one that breaks off) is not mirrored.
fn mirror(mirrors: &[MirrorTo], own: &Arc<Upstreams>, req: &mut Request<RxBody>) {
    let targets: Vec<(Arc<Upstreams>, InFlight)> = mirrors
        .iter()
        .filter(|m| {
            m.per_million >= 1_000_000
                || crate::rng::random_below(1_000_000) < u64::from(m.per_million)
        })
        .filter_map(|m| {
            let Some(counted) = m.enter() else {
                own.stats.error("upstream_shadow_overflow");
                return None;
            };
            Some((m.target.clone().unwrap_or_else(|| own.clone()), counted))
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    shadow_host(&mut head);
    let body = req.body_mut().tap();
    tokio::spawn(async move {
        let body = match body {
            None => ReqBody::Full {
                data: None,
                trailers: None,
            },
            Some(rx) => match rx.await {
                Ok(body) => body,
                Err(_) => {
                    if let Some((t, _)) = targets.first() {
                        t.stats.error("upstream_shadow_body_not_copied");
                    }
                    return;
                }
            },
        };
        let (data, trailers) = match body {
            ReqBody::Full { data, trailers } => (data, trailers),
            _ => (None, None),
        };
        for (target, counted) in targets {
            let mut copy = Request::new(ReqBody::Full {
                data: data.clone(),
                trailers: trailers.clone(),
            });
            *copy.method_mut() = head.method().clone();
            *copy.uri_mut() = head.uri().clone();
            *copy.version_mut() = head.version();
            *copy.headers_mut() = head.headers().clone();
            tokio::spawn(async move {
                target.shadow(copy).await;
                drop(counted);
            });
        }
    });
}

/// Envoy's shadow host: `-shadow` appended to the host name, before the port.
fn shadow_host<B>(req: &mut Request<B>) {
    let (host, port) = host_and_port(req);
    let Some(host) = host else { return };
    let shadowed = match port {
        Some(p) => format!("{host}-shadow:{p}"),
        None => format!("{host}-shadow"),
    };
    let Ok(value) = HeaderValue::from_str(&shadowed) else {
        return;
    };
    if req.uri().authority().is_some()
        && let Ok(a) = Authority::try_from(shadowed.as_str())
    {
        let mut parts = req.uri().clone().into_parts();
        parts.authority = Some(a);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req.headers_mut().insert(header::HOST, value);
}

/// A route's own MeshTimeout/MeshRetry rule as Kuma applies it to the route: its request
/// and stream idle timeouts (the route action's), the outbound's maximum stream duration
/// (the cluster's), its retries for the outbound's protocol.
fn route_policy(r: &HttpRouteRule, cfg: &OutboundConfig) -> Option<HttpPolicy> {
    if r.timeouts.is_none() && r.retry.is_none() {
        return None;
    }
    let t = r.timeouts.as_ref().unwrap_or(&cfg.timeouts);
    let streams = StreamLimits {
        idle: t.stream_idle(),
        ..StreamLimits::of(&cfg.timeouts, cfg.protocol)
    };
    Some(HttpPolicy {
        request_timeout: t.request(),
        streams,
        retry: RetryPolicy::for_protocol(r.retry.as_ref().unwrap_or(&cfg.retry), cfg.protocol),
    })
}

fn path_matches(m: &Path, path: &str) -> bool {
    match m {
        Path::Exact(p) => p == path,
        Path::Prefix(p) => {
            p.is_empty()
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
        Path::Regex(r) => r.is_match(path),
        Path::Never => false,
    }
}

/// The first value of a query parameter, as written (no decoding).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The path after a `ReplacePrefixMatch` of the rule's prefix, or a full replacement.
fn rewritten_path(rw: &PathRewrite, matched: &Path, path: &str) -> String {
    match rw {
        PathRewrite::Full(p) => p.clone(),
        PathRewrite::Prefix(replacement) => {
            let rest = match matched {
                Path::Prefix(p) => path.strip_prefix(p.as_str()).unwrap_or(path),
                _ => path,
            };
            let out = if rest.is_empty() {
                replacement.clone()
            } else {
                format!("{}{rest}", replacement.trim_end_matches('/'))
            };
            if out.is_empty() { "/".to_owned() } else { out }
        }
    }
}

/// The request's host name (without port) and port, from its URI or `Host` header.
fn host_and_port<B>(req: &Request<B>) -> (Option<&str>, Option<u16>) {
    let authority = req.uri().authority().map(Authority::as_str).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    match authority {
        None => (None, None),
        Some(a) => match a.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || a.starts_with('[') => match p.parse() {
                Ok(port) => (Some(h), Some(port)),
                Err(_) => (Some(a), None),
            },
            _ => (Some(a), None),
        },
    }
}

fn redirect<B>(r: &Redirect, matched: &Path, req: &Request<B>) -> Response<ProxyBody> {
    let scheme = r
        .scheme
        .as_deref()
        .or(req.uri().scheme_str())
        .unwrap_or("http");
    let (host, port) = host_and_port(req);
    let host = r.hostname.as_deref().or(host).unwrap_or("");
    // A new scheme drops the request's port (it belonged to the old one).
    let port = r.port.or(if r.scheme.is_some() { None } else { port });
    let path = req.uri().path();
    let path = match &r.path {
        Some(rw) => rewritten_path(rw, matched, path),
        None => path.to_owned(),
    };
    let mut location = format!("{scheme}://{host}");
    if let Some(p) = port {
        location.push_str(&format!(":{p}"));
    }
    location.push_str(&path);
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(StatusCode::is_redirection)
        .unwrap_or(StatusCode::FOUND);
    let mut resp = local_response(status, "");
    resp.headers_mut().remove(header::CONTENT_TYPE);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => local_response(StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect"),
    }
}

fn rewrite<B>(rw: &UrlRewrite, matched: &Path, req: &mut Request<B>) {
    if let Some(host) = &rw.hostname
        && let Ok(v) = HeaderValue::from_str(host)
    {
        req.headers_mut().insert(header::HOST, v);
        if req.uri().authority().is_some() {
            let mut parts = req.uri().clone().into_parts();
            let port = req.uri().port_u16();
            let authority = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            if let Ok(a) = Authority::try_from(authority) {
                parts.authority = Some(a);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    if let Some(p) = &rw.path {
        let mut path = rewritten_path(p, matched, req.uri().path());
        if let Some(q) = req.uri().query() {
            path.push('?');
            path.push_str(q);
        }
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(path) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshhttproute::table::{HeaderMatcher, HttpRouteRule, QueryMatcher};
    use std::time::Duration;

    fn rule(path: Option<PathMatcher>) -> HttpRouteRule {
        HttpRouteRule {
            origin: String::new(),
            path,
            method: None,
            headers: vec![],
            query: vec![],
            filters: vec![],
            backends: vec![RouteBackend {
                weight: 1,
                destination: None,
            }],
            timeouts: None,
            retry: None,
        }
    }

    fn outbound() -> OutboundConfig {
        serde_json::from_value(serde_json::json!({
            "address": "127.0.0.1", "port": 1, "service": "backend", "protocol": "http",
            "spiffeId": "spiffe://default/backend", "endpoints": [],
            "timeouts": {"requestMs": 15000, "streamIdleMs": 1800000, "maxStreamMs": 9000},
            "retry": {"http": {"numRetries": 5, "retryOn": ["5xx"]}}
        }))
        .unwrap()
    }

    fn table(rules: Vec<HttpRouteRule>) -> RouteTable {
        RouteTable::build(&HttpRoutes { rules }, &outbound(), &mut |_| unreachable!())
    }

    #[test]
    fn a_routes_own_rule_replaces_request_timeouts_and_retries_only() {
        let cfg = outbound();
        assert!(route_policy(&rule(None), &cfg).is_none());
        let own = HttpRouteRule {
            timeouts: Some(aerie_core::policies::meshtimeout::Timeouts {
                request_ms: 500,
                stream_idle_ms: 0,
                max_stream_ms: 1,
                ..cfg.timeouts
            }),
            ..rule(None)
        };
        let p = route_policy(&own, &cfg).unwrap();
        assert_eq!(p.request_timeout, Some(Duration::from_millis(500)));
        // The stream idle timeout is the route's (off); the maximum stream duration stays
        // the outbound's (a cluster setting in Kuma).
        assert_eq!(p.streams.idle, None);
        assert_eq!(p.streams.max, Some(Duration::from_millis(9000)));
        // No retry rule of its own: the outbound's retries.
        assert_eq!(p.retry.map(|r| r.num_retries), Some(5));
        let retry_only = HttpRouteRule {
            retry: Some(aerie_core::policies::meshretry::Retry::default()),
            ..rule(None)
        };
        let p = route_policy(&retry_only, &cfg).unwrap();
        assert!(p.retry.is_none());
        assert_eq!(p.request_timeout, Some(Duration::from_secs(15)));
    }

    fn index_of(t: &RouteTable, req: &Request<()>) -> Option<usize> {
        let found = t.find(req)?;
        t.rules.iter().position(|r| std::ptr::eq(r, found))
    }

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn paths_match_as_envoy_does() {
        let t = table(vec![
            rule(Some(PathMatcher::Exact("/exact".into()))),
            rule(Some(PathMatcher::Prefix("/api".into()))),
            rule(Some(PathMatcher::Regex("/v[0-9]+/.*".into()))),
            rule(Some(PathMatcher::Regex("([".into()))),
        ]);
        assert_eq!(index_of(&t, &get("/exact")), Some(0));
        assert_eq!(index_of(&t, &get("/exact/x")), None);
        assert_eq!(index_of(&t, &get("/api")), Some(1));
        assert_eq!(index_of(&t, &get("/api/users?x=1")), Some(1));
        assert_eq!(index_of(&t, &get("/apix")), None, "prefixes end at a /");
        assert_eq!(index_of(&t, &get("/v2/items")), Some(2));
        assert_eq!(index_of(&t, &get("/x/v2/items")), None, "regex is anchored");
        let all = table(vec![rule(Some(PathMatcher::Prefix(String::new())))]);
        assert_eq!(index_of(&all, &get("/anything")), Some(0));
    }

    #[test]
    fn methods_headers_and_query_parameters_all_must_match() {
        let mut r = rule(None);
        r.method = Some("POST".into());
        r.headers = vec![
            HeaderMatcher {
                name: "x-version".into(),
                kind: ValueMatcher::Exact("v2".into()),
            },
            HeaderMatcher {
                name: "x-debug".into(),
                kind: ValueMatcher::Absent,
            },
            HeaderMatcher {
                name: "x-team".into(),
                kind: ValueMatcher::Prefix("pay".into()),
            },
            HeaderMatcher {
                name: "x-id".into(),
                kind: ValueMatcher::Regex("[0-9]+".into()),
            },
            HeaderMatcher {
                name: "x-any".into(),
                kind: ValueMatcher::Present,
            },
        ];
        r.query = vec![
            QueryMatcher {
                name: "user".into(),
                kind: ValueMatcher::Exact("alice".into()),
            },
            QueryMatcher {
                name: "n".into(),
                kind: ValueMatcher::Regex("[a-c]".into()),
            },
        ];
        let t = table(vec![r]);
        let req = |method: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().method(method).uri(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let good: &[(&str, &str)] = &[
            ("x-version", "v2"),
            ("x-team", "payments"),
            ("x-id", "42"),
            ("x-any", ""),
        ];
        assert_eq!(
            index_of(&t, &req("POST", "/?user=alice&n=b", good)),
            Some(0)
        );
        assert_eq!(index_of(&t, &req("GET", "/?user=alice&n=b", good)), None);
        assert_eq!(index_of(&t, &req("POST", "/?user=bob&n=b", good)), None);
        assert_eq!(index_of(&t, &req("POST", "/?user=alice&n=bb", good)), None);
        assert_eq!(index_of(&t, &req("POST", "/?user=alice", good)), None);
        let mut debug = good.to_vec();
        debug.push(("x-debug", "1"));
        assert_eq!(index_of(&t, &req("POST", "/?user=alice&n=a", &debug)), None);
        let wrong_id: &[(&str, &str)] = &[
            ("x-version", "v2"),
            ("x-team", "payments"),
            ("x-id", "4a"),
            ("x-any", "1"),
        ];
        assert_eq!(
            index_of(&t, &req("POST", "/?user=alice&n=a", wrong_id)),
            None
        );
        let no_any = &good[..3];
        assert_eq!(index_of(&t, &req("POST", "/?user=alice&n=a", no_any)), None);
    }

    #[test]
    fn weighted_draws_follow_the_weights() {
        let own = Backends {
            cumulative: vec![90, 100],
            targets: vec![None, None],
        };
        let mut counts = [0u32; 2];
        for _ in 0..100_000 {
            let total = 100;
            let draw = crate::rng::random_below(total);
            counts[own.cumulative.partition_point(|c| *c <= draw)] += 1;
        }
        let share = f64::from(counts[0]) / 100_000.0;
        assert!((0.89..=0.91).contains(&share), "{share}");
        assert!(
            own.pick().is_none(),
            "no other destination: the outbound's own"
        );
        let empty = Backends {
            cumulative: vec![],
            targets: vec![],
        };
        assert!(empty.pick().is_none());
    }

    #[test]
    fn prefix_rewrites_keep_the_rest_of_the_path() {
        let m = Path::Prefix("/api".into());
        let p = PathRewrite::Prefix("/v2".into());
        assert_eq!(rewritten_path(&p, &m, "/api"), "/v2");
        assert_eq!(rewritten_path(&p, &m, "/api/users"), "/v2/users");
        let root = PathRewrite::Prefix("/".into());
        assert_eq!(rewritten_path(&root, &m, "/api/users"), "/users");
        assert_eq!(rewritten_path(&root, &m, "/api"), "/");
        let full = PathRewrite::Full("/fixed".into());
        assert_eq!(rewritten_path(&full, &m, "/api/users"), "/fixed");
    }

    #[test]
    fn redirects_replace_the_given_parts() {
        let r = Redirect {
            scheme: Some("https".into()),
            hostname: Some("example.com".into()),
            port: None,
            path: Some(PathRewrite::Prefix("/new".into())),
            status: 301,
        };
        let req = Request::get("/old/page?q=1")
            .header("host", "api.mesh:8080")
            .body(())
            .unwrap();
        let resp = redirect(&r, &Path::Prefix("/old".into()), &req);
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://example.com/new/page?q=1"
        );
        let keep = Redirect {
            scheme: None,
            hostname: None,
            port: Some(9090),
            path: None,
            status: 999,
        };
        let resp = redirect(&keep, &Path::Prefix(String::new()), &req);
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://api.mesh:9090/old/page?q=1"
        );
    }

    #[test]
    fn header_edits_set_add_then_remove() {
        let e = Edits::compile(&HeaderEdits {
            set: vec![("x-a".into(), "1".into())],
            add: vec![("x-b".into(), "2".into()), ("bad name".into(), "x".into())],
            remove: vec!["x-c".into()],
        });
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("0"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("gone"));
        e.apply(&mut h);
        assert_eq!(h["x-a"], "1");
        assert_eq!(h.get_all("x-b").iter().count(), 2);
        assert!(h.get("x-c").is_none());
    }

    #[test]
    fn a_shadow_host_gets_the_suffix_before_its_port() {
        let mut r = Request::builder()
            .uri("/a")
            .header("host", "backend:8080")
            .body(())
            .unwrap();
        shadow_host(&mut r);
        assert_eq!(r.headers()["host"], "backend-shadow:8080");
        let mut r = Request::builder()
            .uri("http://backend/a?q=1")
            .body(())
            .unwrap();
        shadow_host(&mut r);
        assert_eq!(r.headers()["host"], "backend-shadow");
        assert_eq!(r.uri().to_string(), "http://backend-shadow/a?q=1");
        // No host at all: nothing to change.
        let mut r = Request::builder().uri("/a").body(()).unwrap();
        shadow_host(&mut r);
        assert!(r.headers().get("host").is_none());
    }

    #[test]
    fn a_mirror_keeps_at_most_its_cap_of_copies_in_flight() {
        let m = MirrorTo {
            per_million: 1_000_000,
            target: None,
            in_flight: Arc::default(),
        };
        let held: Vec<InFlight> = (0..MAX_SHADOWS_IN_FLIGHT)
            .map(|_| m.enter().unwrap())
            .collect();
        assert!(m.enter().is_none(), "one over the cap");
        drop(held);
        assert_eq!(m.in_flight.load(Ordering::Acquire), 0);
        assert!(m.enter().is_some(), "answered copies free their places");
    }
}
