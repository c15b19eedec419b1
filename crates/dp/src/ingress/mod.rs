//! The zone ingress (`kuma-dp run --proxy-type ingress`): lets callers in other zones reach
//! this zone's services.
//!
//! Per connection it reads the caller's TLS ClientHello, looks its server name up in the
//! routes the control plane computed ([`IngressConfig`]), connects to one of the
//! destination's sidecar inbounds (round robin, skipping endpoints that refuse), replays the
//! bytes it read and then copies bytes both ways. It never terminates TLS and holds no
//! certificate: the destination sidecar sees the caller's own client certificate and
//! authorizes the caller's identity, exactly as for a caller in its own zone.
//!
//! Anything it cannot route is closed without a byte sent, and counted: no config yet,
//! plaintext or garbage, a malformed or oversized ClientHello, one that does not complete
//! within the handshake timeout, no server name, an unknown server name, or no endpoint
//! accepting the connection.
//!
//! The route table is an immutable snapshot behind an `ArcSwapOption`: a connection loads
//! it once (no lock) when its ClientHello is complete, and a new config affects new
//! connections only. Per-route counters are resolved when a config is applied.

pub(crate) mod hello;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_core::proxy_config::IngressConfig;
use arc_swap::ArcSwapOption;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::admin::{self, AdminView};
use crate::drain::{self, Drain, Phase};
use crate::lb::RoundRobin;

use hello::Hello;

/// Static settings of a zone ingress (from `kuma-dp run` flags and the ZoneIngress).
#[derive(Debug, Clone)]
pub struct IngressOptions {
    /// The ZoneIngress's name; configs for another ingress are refused (empty: any).
    pub name: String,
    /// Where the admin API is meant to listen (127.0.0.1:9901 by default).
    pub admin_address: SocketAddr,
    /// How long [`Ingress::drain`] waits for open connections.
    pub drain_timeout: Duration,
    /// Upper bound on connecting to one endpoint.
    pub connect_timeout: Duration,
    /// Upper bound on receiving the whole ClientHello, so idle or trickling connections
    /// cannot hold resources.
    pub handshake_timeout: Duration,
    /// The most bytes read while waiting for the ClientHello (Envoy's TLS inspector allows
    /// 64 KiB too); a larger ClientHello is refused.
    pub max_client_hello: usize,
}

impl IngressOptions {
    pub fn new(name: impl Into<String>) -> IngressOptions {
        IngressOptions {
            name: name.into(),
            ..IngressOptions::default()
        }
    }
}

impl Default for IngressOptions {
    fn default() -> Self {
        IngressOptions {
            name: String::new(),
            admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)),
            drain_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_client_hello: 64 * 1024,
        }
    }
}

/// Why an ingress config was refused (a NACK); the last good config stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngressConfigError {
    #[error("config is for zone ingress {got:?}, this proxy is {name:?}")]
    WrongIngress { name: String, got: String },
    #[error("route {index} ({mesh}/{service}): invalid server name {sni:?}")]
    Sni {
        index: usize,
        mesh: String,
        service: String,
        sni: String,
    },
    #[error("server name {0:?} has two routes")]
    DuplicateSni(String),
    #[error("the ingress is draining and accepts no new configuration")]
    Draining,
}

/// Why a connection was closed without being forwarded (the `reason` label). The
/// discriminant indexes the pre-resolved counters, in [`Refusal::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoConfig,
    NotTls,
    BadClientHello,
    ClientHelloTooLarge,
    ClientHelloTimeout,
    ClosedBeforeClientHello,
    NoSni,
    NoRoute,
    NoHealthyUpstream,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::NoConfig,
        Refusal::NotTls,
        Refusal::BadClientHello,
        Refusal::ClientHelloTooLarge,
        Refusal::ClientHelloTimeout,
        Refusal::ClosedBeforeClientHello,
        Refusal::NoSni,
        Refusal::NoRoute,
        Refusal::NoHealthyUpstream,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::NoConfig => "no_config",
            Refusal::NotTls => "not_tls",
            Refusal::BadClientHello => "bad_client_hello",
            Refusal::ClientHelloTooLarge => "client_hello_too_large",
            Refusal::ClientHelloTimeout => "client_hello_timeout",
            Refusal::ClosedBeforeClientHello => "closed_before_client_hello",
            Refusal::NoSni => "no_sni",
            Refusal::NoRoute => "no_route",
            Refusal::NoHealthyUpstream => "no_healthy_upstream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    mesh: String,
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// The ingress's metric families (names under `aerie_dp_`).
struct IngressMetrics {
    registry: Registry,
    forwarded: Family<RouteLabels, Counter>,
    connect_errors: Family<RouteLabels, Counter>,
    /// Pre-resolved, in [`Refusal::ALL`] order.
    refused: Vec<Counter>,
    active: Gauge,
    routes: Gauge,
    config_version: Family<VersionLabels, Gauge>,
    config_applied: Counter,
    config_rejected: Counter,
}

impl IngressMetrics {
    fn new() -> IngressMetrics {
        let mut registry = Registry::with_prefix("aerie_dp");
        let refused_family = Family::<ReasonLabels, Counter>::default();
        let refused = Refusal::ALL
            .iter()
            .map(|r| {
                refused_family
                    .get_or_create(&ReasonLabels { reason: r.as_str() })
                    .clone()
            })
            .collect();
        let m = IngressMetrics {
            registry: Registry::default(),
            forwarded: Family::default(),
            connect_errors: Family::default(),
            refused,
            active: Gauge::default(),
            routes: Gauge::default(),
            config_version: Family::default(),
            config_applied: Counter::default(),
            config_rejected: Counter::default(),
        };
        let r = &mut registry;
        r.register(
            "ingress_connections",
            "Connections forwarded to a destination, by mesh and service",
            m.forwarded.clone(),
        );
        r.register(
            "ingress_upstream_connect_errors",
            "Failed connections to a destination endpoint, by mesh and service",
            m.connect_errors.clone(),
        );
        r.register(
            "ingress_refused_connections",
            "Connections closed without forwarding, by reason",
            refused_family,
        );
        r.register(
            "ingress_active_connections",
            "Connections open now (reading the ClientHello or forwarding)",
            m.active.clone(),
        );
        r.register(
            "ingress_routes",
            "Server names in the applied configuration",
            m.routes.clone(),
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
        IngressMetrics { registry, ..m }
    }

    fn refuse(&self, reason: Refusal) {
        if let Some(c) = self.refused.get(reason as usize) {
            c.inc();
        }
    }
}

/// One destination: its endpoints and counters, resolved once per config.
struct RouteState {
    mesh: String,
    service: String,
    endpoints: Vec<SocketAddr>,
    rr: RoundRobin,
    forwarded: Counter,
    connect_errors: Counter,
}

/// An applied config: what `/config_dump` shows and the lookup table built from it.
struct Table {
    version: String,
    config: IngressConfig,
    /// By normalised server name ([`route_key`]).
    routes: HashMap<String, Arc<RouteState>>,
}

struct Inner {
    opts: IngressOptions,
    table: ArcSwapOption<Table>,
    cp_connected: AtomicBool,
    drain: Drain,
    metrics: IngressMetrics,
    /// Serialises config changes with the start of a drain; traffic never takes it.
    changes: Mutex<()>,
}

/// A zone ingress. Cheap to clone: all clones drive the same ingress.
#[derive(Clone)]
pub struct Ingress {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress")
            .field("name", &self.inner.opts.name)
            .field("config_version", &self.config_version())
            .finish()
    }
}

/// Lookups ignore case and a trailing dot, as DNS names do.
fn route_key(sni: &str) -> Cow<'_, str> {
    let sni = sni.strip_suffix('.').unwrap_or(sni);
    if sni.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(sni.to_ascii_lowercase())
    } else {
        Cow::Borrowed(sni)
    }
}

impl Ingress {
    /// An ingress with no routes: every connection is closed until the first
    /// [`Ingress::apply_config`].
    pub fn new(opts: IngressOptions) -> Ingress {
        Ingress {
            inner: Arc::new(Inner {
                opts,
                table: ArcSwapOption::empty(),
                cp_connected: AtomicBool::new(false),
                drain: Drain::new(),
                metrics: IngressMetrics::new(),
                changes: Mutex::new(()),
            }),
        }
    }

    pub fn options(&self) -> &IngressOptions {
        &self.inner.opts
    }

    /// Validates and applies the routes (`version` is the control plane's, shown in
    /// `/config_dump` and metrics). Connections already forwarded keep their destination;
    /// the next connection sees the new routes. `Err` is a NACK: the last good config stays.
    pub fn apply_config(
        &self,
        version: impl Into<String>,
        cfg: IngressConfig,
    ) -> Result<(), IngressConfigError> {
        let version = version.into();
        let metrics = &self.inner.metrics;
        match self.try_apply(&version, cfg) {
            Ok(routes) => {
                metrics.config_applied.inc();
                metrics
                    .routes
                    .set(i64::try_from(routes).unwrap_or(i64::MAX));
                metrics.config_version.clear();
                metrics
                    .config_version
                    .get_or_create(&VersionLabels {
                        version: version.clone(),
                    })
                    .set(1);
                info!(%version, routes, "ingress configuration applied");
                Ok(())
            }
            Err(e) => {
                metrics.config_rejected.inc();
                warn!(%version, error = %e, "ingress configuration rejected");
                Err(e)
            }
        }
    }

    fn try_apply(&self, version: &str, cfg: IngressConfig) -> Result<usize, IngressConfigError> {
        let opts = &self.inner.opts;
        if !opts.name.is_empty() && opts.name != cfg.name {
            return Err(IngressConfigError::WrongIngress {
                name: opts.name.clone(),
                got: cfg.name.clone(),
            });
        }
        let metrics = &self.inner.metrics;
        let mut routes = HashMap::with_capacity(cfg.routes.len());
        for (index, r) in cfg.routes.iter().enumerate() {
            let key = route_key(&r.sni).into_owned();
            let valid = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !valid {
                return Err(IngressConfigError::Sni {
                    index,
                    mesh: r.mesh.clone(),
                    service: r.service.clone(),
                    sni: r.sni.clone(),
                });
            }
            // An endpoint no proxy may dial is skipped (and logged), never a reason to refuse
            // the routes of every other service.
            let endpoints = r
                .endpoints
                .iter()
                .filter_map(|e| match crate::dial::endpoint(&e.address, e.port) {
                    Ok(addr) => Some(addr),
                    Err(why) => {
                        warn!(sni = %r.sni, dataplane = %e.dataplane, %why, "ingress: skipping an endpoint");
                        None
                    }
                })
                .collect();
            let labels = RouteLabels {
                mesh: r.mesh.clone(),
                service: r.service.clone(),
            };
            let state = RouteState {
                mesh: r.mesh.clone(),
                service: r.service.clone(),
                endpoints,
                rr: RoundRobin::default(),
                forwarded: metrics.forwarded.get_or_create(&labels).clone(),
                connect_errors: metrics.connect_errors.get_or_create(&labels).clone(),
            };
            if routes.insert(key.clone(), Arc::new(state)).is_some() {
                return Err(IngressConfigError::DuplicateSni(key));
            }
        }
        let count = routes.len();
        let _changes = self.inner.changes.lock().unwrap_or_else(|e| e.into_inner());
        if self.inner.drain.phase() != Phase::Running {
            return Err(IngressConfigError::Draining);
        }
        self.inner.table.store(Some(Arc::new(Table {
            version: version.to_owned(),
            config: cfg,
            routes,
        })));
        Ok(count)
    }

    /// Accepts connections on `listener` (the ZoneIngress's `networking.address:port`)
    /// until a drain starts. Must run inside a Tokio runtime; usually spawned.
    pub async fn serve(&self, listener: TcpListener) {
        let inner = &self.inner;
        let mut phase = inner.drain.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                () = drain::reached(&mut phase, Phase::Draining) => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let guard = inner.drain.track();
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        handle(&inner, stream, peer).await;
                        drop(guard);
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    debug!(error = %e, "ingress accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        debug!(addr = ?listener.local_addr().ok(), "ingress listener stopped");
    }

    /// Records whether the control-plane stream is up (shown by `/ready`). The ingress
    /// keeps routing with its last config while disconnected.
    pub fn set_control_plane_connected(&self, connected: bool) {
        let was = self.inner.cp_connected.swap(connected, Ordering::AcqRel);
        if was != connected && !connected {
            warn!("disconnected from the control plane; routing with the last configuration");
        }
    }

    pub fn control_plane_connected(&self) -> bool {
        self.inner.cp_connected.load(Ordering::Acquire)
    }

    /// The version of the applied config, if any.
    pub fn config_version(&self) -> Option<String> {
        self.inner.table.load().as_ref().map(|t| t.version.clone())
    }

    /// The applied config, if any.
    pub fn config(&self) -> Option<IngressConfig> {
        self.inner.table.load().as_ref().map(|t| t.config.clone())
    }

    /// `None` when ready to route, else why not (the `/ready` answer).
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.inner.drain.phase() != Phase::Running {
            return Some("draining");
        }
        if self.inner.table.load().is_none() {
            return Some("no configuration received from the control plane yet");
        }
        None
    }

    /// Stops accepting, lets open connections finish for up to
    /// [`IngressOptions::drain_timeout`], then closes whatever is left. New configurations
    /// are refused from here on.
    pub async fn drain(&self) {
        let inner = &self.inner;
        {
            let _changes = inner.changes.lock().unwrap_or_else(|e| e.into_inner());
            inner.drain.set(Phase::Draining);
        }
        info!(active = inner.drain.active(), "ingress draining");
        if tokio::time::timeout(inner.opts.drain_timeout, inner.drain.wait_idle())
            .await
            .is_err()
        {
            warn!(
                active = inner.drain.active(),
                "drain timeout reached, closing the remaining connections"
            );
        }
        inner.drain.set(Phase::Closed);
    }

    /// The Prometheus exposition text (what `/stats/prometheus` serves).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.metrics.registry);
        out
    }

    /// What `/config_dump` serves.
    pub fn config_dump(&self) -> serde_json::Value {
        let table = self.inner.table.load();
        serde_json::json!({
            "proxyType": "ingress",
            "name": self.inner.opts.name,
            "version": table.as_ref().map(|t| t.version.as_str()),
            "config": table.as_ref().map(|t| &t.config),
            "controlPlaneConnected": self.control_plane_connected(),
            "ready": self.not_ready_reason().is_none(),
        })
    }

    /// Serves `/ready`, `/stats/prometheus` and `/config_dump` on an already bound listener
    /// until the future is dropped.
    pub async fn serve_admin_on(&self, listener: TcpListener) -> std::io::Result<()> {
        admin::serve(self.clone(), listener).await
    }
}

impl AdminView for Ingress {
    fn not_ready_reason(&self) -> Option<&'static str> {
        Ingress::not_ready_reason(self)
    }

    fn control_plane_connected(&self) -> bool {
        Ingress::control_plane_connected(self)
    }

    fn prometheus(&self) -> String {
        Ingress::prometheus(self)
    }

    fn config_dump(&self) -> serde_json::Value {
        Ingress::config_dump(self)
    }
}

/// Counts a connection as open for as long as it lives.
struct Active<'a>(&'a Gauge);

impl<'a> Active<'a> {
    fn new(g: &'a Gauge) -> Self {
        g.inc();
        Active(g)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Bytes read first; most ClientHellos fit (the buffer grows up to the limit otherwise).
const INITIAL_READ: usize = 4096;

async fn handle(inner: &Inner, mut stream: TcpStream, peer: SocketAddr) {
    let metrics = &inner.metrics;
    let _active = Active::new(&metrics.active);
    let refuse = |reason: Refusal| {
        metrics.refuse(reason);
        debug!(%peer, reason = reason.as_str(), "ingress connection closed");
    };
    // Fail fast before the first config: nothing to read the ClientHello for.
    if inner.table.load().is_none() {
        return refuse(Refusal::NoConfig);
    }
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; INITIAL_READ.min(inner.opts.max_client_hello.max(1))];
    let read = read_route(inner, &mut stream, &mut buf);
    let (route, filled) = match tokio::time::timeout(inner.opts.handshake_timeout, read).await {
        Ok(Ok(found)) => found,
        Ok(Err(reason)) => return refuse(reason),
        Err(_) => return refuse(Refusal::ClientHelloTimeout),
    };
    let Some(mut upstream) = connect(inner, &route).await else {
        return refuse(Refusal::NoHealthyUpstream);
    };
    route.forwarded.inc();
    if let Err(e) = upstream.write_all(&buf[..filled]).await {
        debug!(%peer, mesh = %route.mesh, service = %route.service, error = %e, "ingress: replaying the ClientHello failed");
        return;
    }
    drop(buf);
    let mut phase = inner.drain.subscribe();
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => {
            if let Err(e) = res {
                debug!(%peer, mesh = %route.mesh, service = %route.service, error = %e, "ingress connection ended with an error");
            }
        }
        () = drain::reached(&mut phase, Phase::Closed) => {}
    }
}

/// Reads until the ClientHello is complete and returns its route and how many bytes of
/// `buf` were read (all of which go to the destination).
async fn read_route(
    inner: &Inner,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(Arc<RouteState>, usize), Refusal> {
    let max = inner.opts.max_client_hello;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= max {
                return Err(Refusal::ClientHelloTooLarge);
            }
            let grown = (buf.len() * 2).min(max);
            buf.resize(grown, 0);
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|_| Refusal::ClosedBeforeClientHello)?;
        if n == 0 {
            return Err(Refusal::ClosedBeforeClientHello);
        }
        filled += n;
        let sni = match hello::parse(&buf[..filled], max) {
            Hello::Incomplete => continue,
            Hello::NotTls => return Err(Refusal::NotTls),
            Hello::Malformed(why) => {
                debug!(reason = why, "ingress: bad ClientHello");
                return Err(Refusal::BadClientHello);
            }
            Hello::TooLarge => return Err(Refusal::ClientHelloTooLarge),
            Hello::Complete { sni: None } => return Err(Refusal::NoSni),
            Hello::Complete { sni: Some(sni) } => sni,
        };
        let table = inner.table.load();
        let Some(table) = table.as_ref() else {
            return Err(Refusal::NoConfig);
        };
        return match table.routes.get(route_key(&sni).as_ref()) {
            Some(route) => Ok((route.clone(), filled)),
            None => {
                debug!(sni = %sni, "ingress: no route for this server name");
                Err(Refusal::NoRoute)
            }
        };
    }
}

/// Connects to the route's next endpoint that accepts, round robin.
async fn connect(inner: &Inner, route: &RouteState) -> Option<TcpStream> {
    for i in route.rr.order(route.endpoints.len()) {
        let addr = *route.endpoints.get(i)?;
        match tokio::time::timeout(inner.opts.connect_timeout, crate::dial::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some(s);
            }
            Ok(Err(e)) => {
                route.connect_errors.inc();
                debug!(mesh = %route.mesh, service = %route.service, endpoint = %addr, error = %e, "ingress: endpoint connect failed");
            }
            Err(_) => {
                route.connect_errors.inc();
                debug!(mesh = %route.mesh, service = %route.service, endpoint = %addr, "ingress: endpoint connect timed out");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::proxy_config::{Endpoint, IngressRoute};

    fn route(sni: &str, eps: &[(&str, u16)]) -> IngressRoute {
        IngressRoute {
            sni: sni.into(),
            mesh: "default".into(),
            service: sni.split('.').next().unwrap_or_default().into(),
            endpoints: eps
                .iter()
                .map(|(a, p)| Endpoint {
                    zone: None,
                    address: (*a).into(),
                    port: *p,
                    dataplane: format!("dp-{p}"),
                    tags: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn refusal_counters_are_indexed_by_discriminant() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn route_keys_ignore_case_and_a_trailing_dot() {
        assert_eq!(route_key("Web.Default.MESH."), "web.default.mesh");
        assert!(matches!(route_key("web.default.mesh"), Cow::Borrowed(_)));
    }

    #[test]
    fn endpoints_that_cannot_be_dialled_are_skipped_not_refused() {
        let ingress = Ingress::new(IngressOptions::new("ingress-1"));
        let cfg = IngressConfig {
            name: "ingress-1".into(),
            routes: vec![
                route(
                    "web.default.mesh",
                    &[("web.local", 1), ("127.0.0.1", 0), ("169.254.169.254", 80)],
                ),
                route("api.default.mesh", &[("10.0.0.1", 9000)]),
            ],
        };
        ingress.apply_config("1", cfg).unwrap();
        let table = ingress.inner.table.load_full().unwrap();
        assert!(table.routes["web.default.mesh"].endpoints.is_empty());
        assert_eq!(
            table.routes["api.default.mesh"].endpoints,
            ["10.0.0.1:9000".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn bad_configs_are_refused_and_the_last_good_one_stays() {
        let ingress = Ingress::new(IngressOptions::new("ingress-1"));
        let good = IngressConfig {
            name: "ingress-1".into(),
            routes: vec![route("web.default.mesh", &[("127.0.0.1", 1)])],
        };
        ingress.apply_config("1", good.clone()).unwrap();
        let cases = [
            IngressConfig {
                name: "other".into(),
                ..good.clone()
            },
            IngressConfig {
                name: "ingress-1".into(),
                routes: vec![route("", &[])],
            },
            IngressConfig {
                name: "ingress-1".into(),
                routes: vec![route("a b.default.mesh", &[])],
            },
            IngressConfig {
                name: "ingress-1".into(),
                routes: vec![
                    route("web.default.mesh", &[]),
                    route("WEB.default.mesh", &[]),
                ],
            },
        ];
        for bad in cases {
            assert!(ingress.apply_config("2", bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(ingress.config_version().as_deref(), Some("1"));
        assert_eq!(ingress.config(), Some(good));
        let stats = ingress.prometheus();
        assert!(
            stats.contains("aerie_dp_config_rejected_total 4"),
            "{stats}"
        );
    }
}
