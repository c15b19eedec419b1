//! [`Proxy`]: the handle the `kuma-dp` glue drives.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_core::policies::meshhttproute::table::RouteDestination;
use aerie_core::proxy_config::{MtlsMode, Protocol, ProxyConfig};
use arc_swap::ArcSwapOption;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tracing::{info, warn};

use crate::accesslog::ListenerLog;
use crate::breaker::{Cluster, OutlierPolicy};
use crate::config::{self, ConfigError, ListenerSpec};
use crate::drain::{Drain, Phase};
use crate::forward::{HttpPolicy, Upstreams};
use crate::lb::Balancer;
use crate::listener::{InboundRoute, Listener, OutboundRoute, Route};
use crate::metrics::{Direction, Metrics};
use crate::pool::{Connector, EndpointPool, HttpVersion, TlsTarget};
use crate::ratelimit::InboundLimiter;
use crate::rbac::RateLimit;
use crate::retry::RetryPolicy;
use crate::route::{RouteTable, TcpTable};
use crate::stream::StreamLimits;
use crate::tls::{Alpn, Identity, IdentityError, IdentitySummary, TlsMaterial, TlsStore};
use crate::workers::Workers;

/// Static settings of a proxy (from `kuma-dp run` flags).
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The mesh this proxy belongs to; configs for another mesh are refused (empty: any).
    pub mesh: String,
    /// The Dataplane's name; configs for another Dataplane are refused (empty: any).
    pub dataplane: String,
    /// Where [`Proxy::serve_admin`] is meant to listen (Envoy's admin port, 127.0.0.1:9901).
    pub admin_address: SocketAddr,
    /// How long [`Proxy::drain`] waits for in-flight work.
    pub drain_timeout: Duration,
    /// Upper bound on a downstream TLS handshake / protocol sniffing, so idle or garbage
    /// connections cannot hold resources.
    pub handshake_timeout: Duration,
    /// Worker threads serving connections (Kuma's `--concurrency`); 0: one per CPU.
    pub workers: usize,
}

impl ProxyOptions {
    pub fn new(mesh: impl Into<String>, dataplane: impl Into<String>) -> ProxyOptions {
        ProxyOptions {
            mesh: mesh.into(),
            dataplane: dataplane.into(),
            ..ProxyOptions::default()
        }
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            mesh: String::new(),
            dataplane: String::new(),
            admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)),
            drain_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            workers: 0,
        }
    }
}

/// State shared by every listener and connection task.
pub(crate) struct Shared {
    pub opts: ProxyOptions,
    pub tls: Arc<TlsStore>,
    pub metrics: Metrics,
    pub drain: Drain,
    /// One HTTP server configuration (h1 + h2 autodetection) for every downstream connection.
    pub http: auto::Builder<TokioExecutor>,
    pub shadow_log: RateLimit,
    /// The threads connections are served on.
    pub workers: Workers,
    /// MeshAccessLog backends, shared by listeners and config versions.
    pub access_logs: crate::accesslog::Sinks,
}

/// The applied configuration and its version.
pub(crate) struct Applied {
    pub version: String,
    pub config: ProxyConfig,
}

pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub config: ArcSwapOption<Applied>,
    pub cp_connected: AtomicBool,
    /// Listeners by address. The mutex serialises config changes only; traffic never takes it.
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    /// MeshMetric's Prometheus endpoints.
    metrics_servers: crate::meshmetric::MetricsServers,
    /// MeshTrace's tracer (and its exporter), kept while the config keeps it.
    tracer: Mutex<Option<Arc<crate::meshtrace::Tracer>>>,
}

/// The sidecar proxy. Cheap to clone: all clones drive the same proxy.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("mesh", &self.inner.shared.opts.mesh)
            .field("dataplane", &self.inner.shared.opts.dataplane)
            .field("config_version", &self.config_version())
            .finish()
    }
}

impl Proxy {
    /// A proxy with no listeners: nothing is served until the first [`Proxy::apply_config`].
    /// Starts the worker threads connections will be served on (`Err`: they could not be
    /// started); dropping the last clone of the proxy stops them.
    pub fn new(opts: ProxyOptions) -> std::io::Result<Proxy> {
        let count = match opts.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let workers = Workers::start(count)?;
        let mut http = auto::Builder::new(TokioExecutor::new());
        // No hyper header timer (it would also close every keep-alive connection idle for
        // that long, and closes without an answer): idle connections are closed by
        // `listener::serve_http` after the listener's MeshTimeout `idleTimeout`, and a head
        // is timed from its first byte by `head_timer::HeadTimer` when the listener's
        // `http.requestHeadersTimeout` asks for it, as Envoy's HCM does.
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        http.http2().timer(TokioTimer::new());
        let metrics = Metrics::new();
        let access_logs = crate::accesslog::Sinks::new(metrics.access_log.clone());
        let shared = Arc::new(Shared {
            access_logs,
            opts,
            tls: Arc::new(ArcSwapOption::empty()),
            metrics,
            drain: Drain::new(),
            http,
            shadow_log: RateLimit::new(Duration::from_secs(1)),
            workers,
        });
        Ok(Proxy {
            inner: Arc::new(Inner {
                shared,
                config: ArcSwapOption::empty(),
                cp_connected: AtomicBool::new(false),
                listeners: Mutex::new(HashMap::new()),
                metrics_servers: Default::default(),
                tracer: Mutex::new(None),
            }),
        })
    }

    pub fn options(&self) -> &ProxyOptions {
        &self.inner.shared.opts
    }

    /// Validates and applies a configuration (`version` is the control plane's, reported in
    /// `/config_dump`, metrics and [`Proxy::config_version`]).
    ///
    /// Listeners for new addresses are bound first; if any bind fails nothing changes. Then
    /// listeners that stay have their route swapped atomically (connections already open keep
    /// the config they started with; the next connection sees the new one), new ones start
    /// accepting and removed ones stop accepting (their open connections finish on their
    /// own). `Err` is a NACK: the last good config stays in force.
    ///
    /// Must be called from within a Tokio runtime (listeners are registered with it).
    pub fn apply_config(
        &self,
        version: impl Into<String>,
        cfg: ProxyConfig,
    ) -> Result<(), ConfigError> {
        let version = version.into();
        let metrics = &self.inner.shared.metrics;
        match self.try_apply(&version, cfg) {
            Ok(()) => {
                metrics.config_applied.inc();
                metrics.set_config_version(&version);
                info!(%version, "configuration applied");
                Ok(())
            }
            Err(e) => {
                metrics.config_rejected.inc();
                warn!(%version, error = %e, "configuration rejected");
                Err(e)
            }
        }
    }

    fn try_apply(&self, version: &str, cfg: ProxyConfig) -> Result<(), ConfigError> {
        let shared = &self.inner.shared;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let plan = config::plan(&shared.opts, &cfg)?;
        let mut listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Checked under the lock so a concurrent drain() cannot miss new listeners.
        if shared.drain.phase() != Phase::Running {
            return Err(ConfigError::Draining);
        }

        let mut bound = HashMap::new();
        for (addr, spec) in &plan {
            if !listeners.contains_key(addr) {
                let socket =
                    Listener::bind(*addr, &handle).map_err(|source| ConfigError::Bind {
                        addr: *addr,
                        what: spec.describe(),
                        source,
                    })?;
                bound.insert(*addr, socket);
            }
        }

        let tracer = self.tracer_for(&cfg);
        let mut next = HashMap::with_capacity(plan.len());
        for (addr, spec) in plan {
            let old = listeners.remove(&addr);
            let route = self.build_route(
                spec,
                cfg.mtls,
                old.as_ref().map(|l| l.route()),
                tracer.as_ref(),
            );
            let listener = match (old, bound.remove(&addr)) {
                (Some(l), _) => {
                    l.swap(route);
                    l
                }
                (None, Some(socket)) => Listener::start(socket, route, shared.clone(), &handle),
                (None, None) => unreachable!("every new address was bound above"),
            };
            next.insert(addr, listener);
        }
        // What is left was removed from the config: dropping stops accepting.
        *listeners = next;
        self.inner.metrics_servers.apply(
            &Arc::downgrade(&self.inner),
            &handle,
            cfg.metrics.as_ref(),
        );
        self.inner.config.store(Some(Arc::new(Applied {
            version: version.to_owned(),
            config: cfg,
        })));
        Ok(())
    }

    /// The tracer `cfg` asks for: the current one when its MeshTrace is unchanged (its
    /// exporter and queue go on), a new one when it changed, none without one.
    fn tracer_for(&self, cfg: &ProxyConfig) -> Option<Arc<crate::meshtrace::Tracer>> {
        let mut current = self.inner.tracer.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = cfg.tracing.as_ref();
        let keep = match (&*current, wanted) {
            (Some(t), Some(w)) => t.cfg == *w,
            _ => false,
        };
        if !keep {
            *current = wanted.map(|w| {
                crate::meshtrace::Tracer::start(w, &cfg.name, &self.inner.shared.metrics.spans)
            });
        }
        current.clone()
    }

    fn build_route(
        &self,
        spec: ListenerSpec,
        mtls: MtlsMode,
        old: Option<Arc<Route>>,
        tracer: Option<&Arc<crate::meshtrace::Tracer>>,
    ) -> Route {
        let shared = &self.inner.shared;
        // One idle stack (and HTTP/2 connection) per worker, plus one for other threads.
        let slots = shared.workers.count() + 1;
        match spec {
            ListenerSpec::Inbound { cfg, app } => {
                let cfg = *cfg;
                let stats = shared.metrics.listener(Direction::Inbound, &cfg.name);
                let version = http_version(cfg.protocol);
                // The application's cluster (no limits: kuma-dp enforces no inbound
                // MeshCircuitBreaker) and its pool survive changes that keep how it dials.
                let reuse = match old.as_deref() {
                    Some(Route::Inbound(r))
                        if r.app_addr == app
                            && r.cfg.protocol == cfg.protocol
                            && r.cfg.timeouts.connect_ms == cfg.timeouts.connect_ms =>
                    {
                        Some((r.app.pools.clone(), r.app.cluster.clone()))
                    }
                    _ => None,
                };
                let (pools, cluster) = reuse.unwrap_or_else(|| {
                    let cluster = Cluster::unlimited();
                    let connector = Connector {
                        addr: app,
                        tls: None,
                        timeout: cfg.timeouts.connect(),
                    };
                    (
                        vec![EndpointPool::new(
                            connector,
                            version,
                            slots,
                            cluster.clone(),
                        )],
                        cluster,
                    )
                });
                // Rate-limit buckets survive a push that leaves the limits as they were.
                let limiter = cfg.rate_limit.as_ref().map(|rl| {
                    match old.as_deref() {
                        Some(Route::Inbound(r)) => {
                            r.limiter.as_ref().filter(|l| l.cfg == *rl).cloned()
                        }
                        _ => None,
                    }
                    .unwrap_or_else(|| Arc::new(InboundLimiter::new(rl)))
                });
                let access_log = cfg.access_log.as_ref().map(|l| {
                    Arc::new(ListenerLog::build(
                        l,
                        !cfg.protocol.is_http(),
                        true,
                        &self.inner.shared.access_logs,
                    ))
                });
                Route::Inbound(Arc::new(InboundRoute {
                    tracer: tracer.filter(|_| cfg.protocol.is_http()).cloned(),
                    access_log,
                    limiter,
                    spiffe_id: aerie_core::proxy_config::spiffe_id(&cfg.authz.mesh, &cfg.service)
                        .into(),
                    app: Upstreams {
                        pools,
                        lb: Balancer::default(),
                        stats: stats.clone(),
                        http: HttpPolicy {
                            request_timeout: cfg.timeouts.request(),
                            streams: StreamLimits::of(&cfg.timeouts, cfg.protocol),
                            retry: None,
                        },
                        cluster,
                        outlier: None,
                        connect_attempts: 1,
                        health: None,
                    },
                    app_addr: app,
                    mtls,
                    stats,
                    cfg,
                }))
            }
            ListenerSpec::Outbound { cfg, endpoints } => {
                let cfg = *cfg;
                let stats = shared.metrics.listener(Direction::Outbound, &cfg.service);
                let tls = (mtls != MtlsMode::Off).then(|| TlsTarget {
                    store: shared.tls.clone(),
                    spiffe_id: cfg.spiffe_id.as_str().into(),
                    alpn: match cfg.protocol {
                        Protocol::Tcp => Alpn::None,
                        Protocol::Http => Alpn::H1,
                        Protocol::Http2 | Protocol::Grpc => Alpn::H2,
                    },
                    sni: TlsTarget::sni(&cfg.sni),
                });
                // Pools survive an endpoint-list change when nothing about how they dial did
                // (the server name included: two outbounds reaching the same zone ingress
                // address must never share a connection).
                // The cluster (what is in flight, counted against MeshCircuitBreaker limits)
                // survives every change of the outbound; its thresholds are updated.
                let cluster = match old.as_deref() {
                    Some(Route::Outbound(r)) => {
                        r.upstreams.cluster.set_limits(&cfg.circuit_breaker);
                        r.upstreams.cluster.clone()
                    }
                    _ => Cluster::new(&cfg.circuit_breaker),
                };
                let same_dialling = match old.as_deref() {
                    Some(Route::Outbound(r)) => {
                        r.cfg.protocol == cfg.protocol
                            && r.cfg.spiffe_id == cfg.spiffe_id
                            && r.cfg.sni == cfg.sni
                            && r.cfg.timeouts.connect_ms == cfg.timeouts.connect_ms
                            && r.mtls == mtls
                    }
                    _ => false,
                };
                // Route destinations' pools are reused the same way, keyed by what they dial.
                let reusable: HashMap<PoolKey, Arc<EndpointPool>> = match old.as_deref() {
                    Some(Route::Outbound(r))
                        if r.cfg.protocol == cfg.protocol
                            && r.cfg.timeouts.connect_ms == cfg.timeouts.connect_ms
                            && r.mtls == mtls =>
                    {
                        r.all_pools().map(|p| (PoolKey::of(p), p.clone())).collect()
                    }
                    _ => HashMap::new(),
                };
                let version = http_version(cfg.protocol);
                // MeshLoadBalancingStrategy: rings and tables built here, once per change
                // (for a route's other destinations too, over their own endpoints).
                let balancer =
                    |located: &[(SocketAddr, Option<&str>)],
                     tagged: &[aerie_core::proxy_config::Endpoint]| {
                        // Endpoints' tags (affinity groups), when the control plane sent some.
                        let tags: HashMap<SocketAddr, &std::collections::BTreeMap<String, String>> =
                            tagged
                                .iter()
                                .filter(|e| !e.tags.is_empty())
                                .filter_map(|e| {
                                    Some((crate::dial::endpoint(&e.address, e.port).ok()?, &e.tags))
                                })
                                .collect();
                        Balancer::with_tags(cfg.load_balancer.as_ref(), located, &|i| {
                            located.get(i).and_then(|(a, _)| tags.get(a).copied())
                        })
                    };
                let lb = {
                    let zones: HashMap<SocketAddr, &str> = cfg
                        .endpoints
                        .iter()
                        .filter_map(|e| {
                            let zone = e.zone.as_deref()?;
                            let addr = crate::dial::endpoint(&e.address, e.port).ok()?;
                            Some((addr, zone))
                        })
                        .collect();
                    let located: Vec<(SocketAddr, Option<&str>)> = endpoints
                        .iter()
                        .map(|a| (*a, zones.get(a).copied()))
                        .collect();
                    balancer(&located, &cfg.endpoints)
                };
                let pools_for = |addrs: &mut dyn Iterator<Item = SocketAddr>,
                                 tls: &Option<TlsTarget>| {
                    addrs
                        .map(|addr| {
                            let key = PoolKey {
                                addr,
                                spiffe_id: tls.as_ref().map(|t| t.spiffe_id.clone()),
                                sni: tls.as_ref().and_then(|t| t.sni.clone()),
                            };
                            reusable.get(&key).cloned().unwrap_or_else(|| {
                                let connector = Connector {
                                    addr,
                                    tls: tls.clone(),
                                    timeout: cfg.timeouts.connect(),
                                };
                                EndpointPool::new(connector, version, slots, cluster.clone())
                            })
                        })
                        .collect::<Vec<_>>()
                };
                let pools = pools_for(&mut endpoints.into_iter(), &tls);
                // MeshHealthCheck: a checker per endpoint of the outbound's own destination,
                // dialling as requests do; kept across changes that leave the check and the
                // dialling alone.
                let health = cfg.health_check.as_ref().and_then(|hc| {
                    let connectors: Vec<Connector> =
                        pools.iter().map(|p| p.connector.clone()).collect();
                    let old_health: Vec<&crate::health::ActiveHealth> = match old.as_deref() {
                        Some(Route::Outbound(r)) => r.upstreams.health.iter().collect(),
                        _ => Vec::new(),
                    };
                    crate::health::ActiveHealth::build(
                        Some(hc),
                        cfg.protocol,
                        &cfg.service,
                        &connectors,
                        &old_health,
                        same_dialling,
                        cfg.circuit_breaker
                            .outlier
                            .as_ref()
                            .map(|o| o.healthy_panic_threshold),
                    )
                });
                let http = HttpPolicy {
                    request_timeout: cfg.timeouts.request(),
                    streams: StreamLimits::of(&cfg.timeouts, cfg.protocol),
                    retry: RetryPolicy::for_protocol(&cfg.retry, cfg.protocol),
                };
                let outlier = cfg
                    .circuit_breaker
                    .outlier
                    .as_ref()
                    .and_then(OutlierPolicy::new);
                let upstreams = |pools, lb, health| Upstreams {
                    pools,
                    lb,
                    stats: stats.clone(),
                    http: http.clone(),
                    cluster: cluster.clone(),
                    outlier: outlier.clone(),
                    connect_attempts: cfg.retry.tcp_max_connect_attempt,
                    health,
                };
                // Health checks running already: this outbound's own (new) and, when the
                // dialling is kept, the previous route's, so that a route's destination never
                // probes an endpoint a check of the same kind probes already.
                let route_dialling_kept = matches!(
                    old.as_deref(),
                    Some(Route::Outbound(r)) if r.cfg.protocol == cfg.protocol
                        && r.cfg.timeouts.connect_ms == cfg.timeouts.connect_ms
                        && r.mtls == mtls
                );
                let running: Vec<&crate::health::ActiveHealth> = match old.as_deref() {
                    Some(Route::Outbound(r)) if route_dialling_kept => health
                        .iter()
                        .chain(r.upstreams.health.iter())
                        .chain(
                            r.routes
                                .iter()
                                .flat_map(|t| t.upstreams())
                                .filter_map(|u| u.health.as_ref()),
                        )
                        .chain(
                            r.tcp
                                .iter()
                                .flat_map(|t| t.backends.upstreams())
                                .filter_map(|u| u.health.as_ref()),
                        )
                        .collect(),
                    _ => health.iter().collect(),
                };
                // A route's other destinations: their own endpoints, identity and
                // MeshHealthCheck, the outbound's policies and cluster.
                let mut make = |d: &RouteDestination| {
                    let tls = tls.as_ref().map(|t| TlsTarget {
                        spiffe_id: d.spiffe_id.as_str().into(),
                        sni: TlsTarget::sni(&d.sni),
                        ..t.clone()
                    });
                    let mut addrs = d
                        .endpoints
                        .iter()
                        .filter_map(|e| crate::dial::endpoint(&e.address, e.port).ok());
                    let pools = pools_for(&mut addrs, &tls);
                    let located: Vec<(SocketAddr, Option<&str>)> =
                        pools.iter().map(|p| (p.connector.addr, None)).collect();
                    let connectors: Vec<Connector> =
                        pools.iter().map(|p| p.connector.clone()).collect();
                    let checked = crate::health::ActiveHealth::build(
                        d.health_check.as_ref(),
                        cfg.protocol,
                        &d.service,
                        &connectors,
                        &running,
                        true,
                        cfg.circuit_breaker
                            .outlier
                            .as_ref()
                            .map(|o| o.healthy_panic_threshold),
                    );
                    Arc::new(upstreams(pools, balancer(&located, &d.endpoints), checked))
                };
                let routes = cfg
                    .http_routes
                    .as_ref()
                    .filter(|_| cfg.protocol.is_http())
                    .map(|r| Box::new(RouteTable::build(r, &cfg, &mut make)));
                let tcp = cfg
                    .tcp_routes
                    .as_ref()
                    .filter(|_| !cfg.protocol.is_http())
                    .map(|r| Box::new(TcpTable::build(r, &mut make)));
                let access_log = cfg.access_log.as_ref().map(|l| {
                    Arc::new(ListenerLog::build(
                        l,
                        !cfg.protocol.is_http(),
                        false,
                        &self.inner.shared.access_logs,
                    ))
                });
                Route::Outbound(Arc::new(OutboundRoute {
                    tracer: tracer.filter(|_| cfg.protocol.is_http()).cloned(),
                    access_log,
                    upstreams: Arc::new(upstreams(pools, lb, health)),
                    routes,
                    tcp,
                    mtls,
                    stats,
                    cfg,
                }))
            }
        }
    }

    /// Installs a new workload identity. TLS configs are rebuilt once here and swapped
    /// atomically: established connections keep their session, new ones use the new
    /// certificate. `Err` leaves the previous identity in place.
    pub fn apply_identity(&self, id: Identity) -> Result<(), IdentityError> {
        let metrics = &self.inner.shared.metrics;
        let previous = self.inner.shared.tls.load_full();
        match TlsMaterial::new(id, previous.as_deref()) {
            Ok(material) => {
                info!(sans = ?material.summary.uri_sans, not_after = %material.summary.not_after, "identity applied");
                self.inner.shared.tls.store(Some(Arc::new(material)));
                metrics.identity_applied.inc();
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "identity rejected");
                metrics.identity_rejected.inc();
                Err(e)
            }
        }
    }

    /// Records whether the control-plane stream is up (shown by `/ready` and logged). The
    /// proxy keeps serving its last config while disconnected.
    pub fn set_control_plane_connected(&self, connected: bool) {
        let was = self.inner.cp_connected.swap(connected, Ordering::AcqRel);
        if was != connected {
            if connected {
                info!("connected to the control plane");
            } else {
                warn!("disconnected from the control plane; serving the last configuration");
            }
        }
    }

    pub fn control_plane_connected(&self) -> bool {
        self.inner.cp_connected.load(Ordering::Acquire)
    }

    /// The version of the applied config, if any.
    pub fn config_version(&self) -> Option<String> {
        self.inner.config.load().as_ref().map(|a| a.version.clone())
    }

    /// The applied config, if any.
    pub fn config(&self) -> Option<ProxyConfig> {
        self.inner.config.load().as_ref().map(|a| a.config.clone())
    }

    /// What the current identity proves, if one was applied.
    pub fn identity(&self) -> Option<IdentitySummary> {
        self.inner
            .shared
            .tls
            .load()
            .as_ref()
            .map(|m| m.summary.clone())
    }

    /// `None` when ready to serve, else why not (the `/ready` answer).
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.inner.shared.drain.phase() != Phase::Running {
            return Some("draining");
        }
        let config = self.inner.config.load();
        let Some(applied) = config.as_ref() else {
            return Some("no configuration received from the control plane yet");
        };
        if applied.config.mtls != MtlsMode::Off && self.inner.shared.tls.load().is_none() {
            return Some("mTLS is enabled but no identity (certificate) has been received yet");
        }
        None
    }

    /// Stops accepting connections on every listener, lets in-flight requests and connections
    /// finish for up to [`ProxyOptions::drain_timeout`], then closes whatever is left. New
    /// configurations are refused from here on.
    pub async fn drain(&self) {
        let shared = &self.inner.shared;
        {
            let mut listeners = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            shared.drain.set(Phase::Draining);
            listeners.clear();
        }
        info!(active = shared.drain.active(), "draining");
        let timeout = shared.opts.drain_timeout;
        if tokio::time::timeout(timeout, shared.drain.wait_idle())
            .await
            .is_err()
        {
            warn!(
                active = shared.drain.active(),
                "drain timeout reached, closing the remaining connections"
            );
        }
        shared.drain.set(Phase::Closed);
    }
}

/// What a pooled connection was dialled to and as: pools are reused only for the same.
#[derive(PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    spiffe_id: Option<Arc<str>>,
    sni: Option<rustls_pki_types::ServerName<'static>>,
}

impl PoolKey {
    fn of(p: &EndpointPool) -> PoolKey {
        PoolKey {
            addr: p.connector.addr,
            spiffe_id: p.connector.tls.as_ref().map(|t| t.spiffe_id.clone()),
            sni: p.connector.tls.as_ref().and_then(|t| t.sni.clone()),
        }
    }
}

fn http_version(protocol: Protocol) -> HttpVersion {
    match protocol {
        Protocol::Http2 | Protocol::Grpc => HttpVersion::H2,
        Protocol::Tcp | Protocol::Http => HttpVersion::H1,
    }
}
