//! Listening sockets and the connection plumbing shared by inbound and outbound.
//!
//! A listener is keyed by address only and carries a swappable [`Route`]: a config change
//! that keeps the address (even one turning an inbound into an outbound) swaps the route
//! without closing the socket, so no connection attempt is ever refused during an update.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use aerie_core::proxy_config::{InboundConfig, MtlsMode, OutboundConfig};
use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::body::{BodyError, ProxyBody};
use crate::drain::{self, Phase};
use crate::forward::Upstreams;
use crate::head_timer::HeadTimer;
use crate::metrics::ListenerStats;
use crate::proxy::Shared;
use crate::stream::RxBody;

/// Pending connections the kernel queues per listener.
const BACKLOG: u32 = 1024;

/// What a listener does with its connections, at one config version.
pub(crate) enum Route {
    Inbound(Arc<InboundRoute>),
    Outbound(Arc<OutboundRoute>),
}

pub(crate) struct InboundRoute {
    pub cfg: InboundConfig,
    /// This inbound's identity (`spiffe://<mesh>/<service>`): `By=` of the
    /// `x-forwarded-client-cert` it sets.
    pub spiffe_id: Arc<str>,
    pub mtls: MtlsMode,
    pub app_addr: SocketAddr,
    /// The application, as a one-endpoint pool.
    pub app: Upstreams,
    pub stats: Arc<ListenerStats>,
    /// MeshRateLimit's buckets; none without a rate limit.
    pub limiter: Option<Arc<crate::ratelimit::InboundLimiter>>,
    /// MeshAccessLog; none: nothing logged.
    pub access_log: Option<Arc<crate::accesslog::ListenerLog>>,
    /// MeshTrace (HTTP listeners); none: nothing traced.
    pub tracer: Option<Arc<crate::meshtrace::Tracer>>,
}

pub(crate) struct OutboundRoute {
    pub cfg: OutboundConfig,
    pub mtls: MtlsMode,
    pub upstreams: Arc<Upstreams>,
    /// MeshHTTPRoute (HTTP outbounds); none: every request to `upstreams`.
    pub routes: Option<Box<crate::route::RouteTable>>,
    /// MeshTCPRoute (TCP outbounds); none: every connection to `upstreams`.
    pub tcp: Option<Box<crate::route::TcpTable>>,
    pub stats: Arc<ListenerStats>,
    /// MeshAccessLog; none: nothing logged.
    pub access_log: Option<Arc<crate::accesslog::ListenerLog>>,
    /// MeshTrace (HTTP listeners); none: nothing traced.
    pub tracer: Option<Arc<crate::meshtrace::Tracer>>,
}

impl OutboundRoute {
    /// The pools of the outbound's own destination and of its routes' other ones.
    pub fn all_pools(&self) -> impl Iterator<Item = &Arc<crate::pool::EndpointPool>> {
        let routed = self.routes.iter().flat_map(|r| r.upstreams());
        let tcp = self.tcp.iter().flat_map(|t| t.backends.upstreams());
        self.upstreams
            .pools
            .iter()
            .chain(routed.chain(tcp).flat_map(|u| u.pools.iter()))
    }
}

/// A listener's current route, and a signal for the connections that must re-decide when
/// it changes (inbound TCP connections re-check their authorization).
pub(crate) struct LiveRoute {
    route: ArcSwap<Route>,
    changed: watch::Sender<()>,
}

impl LiveRoute {
    fn new(route: Route) -> LiveRoute {
        LiveRoute {
            route: ArcSwap::from_pointee(route),
            changed: watch::channel(()).0,
        }
    }

    /// The current route (a pointer load, no lock).
    pub fn load(&self) -> arc_swap::Guard<Arc<Route>> {
        self.route.load()
    }

    pub fn load_full(&self) -> Arc<Route> {
        self.route.load_full()
    }

    /// Resolves at every later route change; errs once the listener is gone.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

/// A running listener; dropping it stops accepting. Open HTTP connections keep their last
/// route; open inbound TCP connections stop re-checking their authorization.
pub(crate) struct Listener {
    route: Arc<LiveRoute>,
    _stop: oneshot::Sender<()>,
}

impl Listener {
    /// Binds synchronously, so a taken port is reported as a NACK of the config.
    pub fn bind(addr: SocketAddr, handle: &Handle) -> std::io::Result<TcpListener> {
        let _guard = handle.enter();
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    }

    pub fn start(
        socket: TcpListener,
        route: Route,
        shared: Arc<Shared>,
        handle: &Handle,
    ) -> Listener {
        let route = Arc::new(LiveRoute::new(route));
        let (stop, stopped) = oneshot::channel();
        handle.spawn(accept_loop(socket, route.clone(), shared, stopped));
        Listener { route, _stop: stop }
    }

    pub fn route(&self) -> Arc<Route> {
        self.route.route.load_full()
    }

    pub fn swap(&self, route: Route) {
        self.route.route.store(Arc::new(route));
        self.route.changed.send_replace(());
    }
}

async fn accept_loop(
    socket: TcpListener,
    route: Arc<LiveRoute>,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut phase = shared.drain.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => break,
            () = drain::reached(&mut phase, Phase::Draining) => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                // Handed to a worker thread, whose runtime registers it anew.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(error = %e, "cannot hand an accepted connection to a worker");
                        continue;
                    }
                };
                let guard = shared.drain.track();
                let current = route.route.load_full();
                let (task_shared, live) = (shared.clone(), route.clone());
                shared.workers.spawn(async move {
                    let shared = task_shared;
                    let stream = match TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            debug!(error = %e, "cannot register an accepted connection");
                            return;
                        }
                    };
                    match &*current {
                        Route::Inbound(r) => {
                            r.stats.connections.inc();
                            crate::inbound::serve(stream, peer, r.clone(), live, &shared).await;
                        }
                        Route::Outbound(r) => {
                            r.stats.connections.inc();
                            crate::outbound::serve(stream, peer, r.clone(), live, &shared).await;
                        }
                    }
                    drop(guard);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                debug!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    debug!(addr = ?socket.local_addr().ok(), "listener stopped");
}

/// What a listener's MeshTimeout allows one downstream connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnLimits {
    /// Closed once nothing has happened on it for this long (`idleTimeout`; `None` = never).
    pub idle: Option<Duration>,
    /// HTTP: drained once this old (`http.maxConnectionDuration`; `None` = never).
    pub max_age: Option<Duration>,
    /// HTTP/1: from a request head's first byte to its end (`http.requestHeadersTimeout`;
    /// `None` = no limit).
    pub request_headers: Option<Duration>,
}

impl ConnLimits {
    pub fn of(t: &aerie_core::policies::meshtimeout::Timeouts) -> ConnLimits {
        ConnLimits {
            idle: t.idle(),
            max_age: t.max_connection(),
            request_headers: t.request_headers(),
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 (autodetected) on `io` until the peer is done. The connection
/// is shut down gracefully on drain, once no request has been in flight for the idle
/// timeout, or once it reaches its maximum age; after a drain it is dropped once the drain
/// timeout has passed. An HTTP/1 request head that does not arrive within the request
/// headers timeout is answered `408` and the connection closed ([`HeadTimer`]).
pub(crate) async fn serve_http<I, S>(
    shared: &Shared,
    io: I,
    svc: S,
    stats: Arc<ListenerStats>,
    limits: ConnLimits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<RxBody>, Response = http::Response<ProxyBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = Arc::new(HttpConn {
        activity: Activity::default(),
        stats,
        abandoned_at: AtomicU64::new(0),
        head_timed_out: AtomicBool::new(false),
    });
    let svc = Tracked {
        inner: svc,
        conn: conn.clone(),
    };
    let io = HeadTimer::new(io, conn.clone(), limits.request_headers);
    let http = shared.http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(http);
    let stats = &conn.stats;
    let mut phase = shared.drain.subscribe();
    let mut idle = IdleCheck::new(limits.idle);
    let too_old = deadline(limits.max_age);
    tokio::pin!(too_old);
    let res = loop {
        tokio::select! {
            res = http.as_mut() => break res,
            () = drain::reached(&mut phase, Phase::Draining) => {}
            () = idle.tick() => {
                if !idle.expired(&conn.activity) {
                    continue;
                }
                debug!(listener = %stats.name, "closing an idle HTTP connection");
            }
            () = too_old.as_mut() => {
                debug!(listener = %stats.name, "draining an HTTP connection at its maximum duration");
            }
        }
        // Draining or idle: finish what is in flight, then close.
        http.as_mut().graceful_shutdown();
        tokio::select! {
            res = http.as_mut() => break res,
            () = drain::reached(&mut phase, Phase::Closed) => return,
        }
    };
    if conn.head_timed_out.load(Ordering::Relaxed) {
        stats.error("request_headers_timeout");
        stats.response(http::StatusCode::REQUEST_TIMEOUT);
        debug!(listener = %stats.name, "closed an HTTP/1 connection whose request head did not arrive in time");
    } else if let Err(e) = res {
        stats.error("http");
        debug!(listener = %stats.name, error = %e, "HTTP connection error");
    }
}

/// What happens on a connection, for idleness: `seen` counts events (HTTP requests started,
/// TCP reads), `in_flight` the HTTP requests whose response body is not done yet, or whose
/// request body is still arriving. Touched by one thread only (HTTP/2 streams of one
/// connection run on its worker), so the atomics are uncontended.
#[derive(Default)]
pub(crate) struct Activity {
    pub seen: AtomicU64,
    pub in_flight: AtomicUsize,
}

/// One downstream HTTP connection's state, shared by its service, request and response
/// bodies and [`HeadTimer`] (one allocation per connection).
pub(crate) struct HttpConn {
    pub activity: Activity,
    pub stats: Arc<ListenerStats>,
    /// `seen + 1` when the request `seen` counts dropped its body before the end (HTTP/1:
    /// the bytes read next may be its rest, not a new head); `0`: none.
    pub abandoned_at: AtomicU64,
    /// The request headers timeout fired: the connection ended with a `408`.
    pub head_timed_out: AtomicBool,
}

#[cfg(test)]
impl HttpConn {
    pub(crate) fn for_test() -> Arc<HttpConn> {
        let metrics = crate::metrics::Metrics::new();
        Arc::new(HttpConn {
            activity: Activity::default(),
            stats: metrics.listener(crate::metrics::Direction::Outbound, "test"),
            abandoned_at: AtomicU64::new(0),
            head_timed_out: AtomicBool::new(false),
        })
    }
}

/// Held by a request from its start until its response body is dropped, and by its request
/// body until it ends.
pub(crate) struct InFlight(Arc<HttpConn>);

impl InFlight {
    fn start(conn: &Arc<HttpConn>) -> InFlight {
        conn.activity.seen.fetch_add(1, Ordering::Relaxed);
        InFlight::body(conn)
    }

    /// For a request body that is still to arrive (the request already counted in `seen`).
    fn body(conn: &Arc<HttpConn>) -> InFlight {
        conn.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(conn.clone())
    }

    /// A request body dropped before its end.
    pub fn abandon(self) {
        let seen = self.0.activity.seen.load(Ordering::Relaxed);
        self.0
            .abandoned_at
            .store(seen.wrapping_add(1), Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks a connection for idleness every quarter of the timeout (one timer per connection,
/// none per request): idle once four checks in a row saw nothing happen, nothing in flight
/// and nothing in flight at the check before, i.e. after between 1 and 1.25 times the
/// timeout since the last event or the end of the last request.
struct IdleCheck {
    ticks: Option<tokio::time::Interval>,
    last_seen: u64,
    /// A request was in flight at the last check (it ended since, at an unknown time).
    was_busy: bool,
    quiet: u32,
}

const IDLE_CHECKS: u32 = 4;

/// Sleeps until `after` has passed; forever when `None`.
async fn deadline(after: Option<Duration>) {
    match after {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl IdleCheck {
    /// `None`: the connection is never idle (no timer at all).
    fn new(timeout: Option<Duration>) -> IdleCheck {
        let ticks = timeout.map(|timeout| {
            let period = (timeout / IDLE_CHECKS).max(Duration::from_millis(1));
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        IdleCheck {
            ticks,
            last_seen: 0,
            was_busy: false,
            quiet: 0,
        }
    }

    async fn tick(&mut self) {
        match &mut self.ticks {
            Some(ticks) => {
                ticks.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    fn expired(&mut self, activity: &Activity) -> bool {
        let seen = activity.seen.load(Ordering::Relaxed);
        let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
        let active = seen != self.last_seen || busy || self.was_busy;
        self.last_seen = seen;
        self.was_busy = busy;
        if active {
            self.quiet = 0;
            return false;
        }
        self.quiet += 1;
        self.quiet >= IDLE_CHECKS
    }
}

/// Wraps a connection's service to track its requests in the connection's [`Activity`]
/// and hand it the request body as an [`RxBody`].
struct Tracked<S> {
    inner: S,
    conn: Arc<HttpConn>,
}

impl<S> Service<http::Request<Incoming>> for Tracked<S>
where
    S: Service<http::Request<RxBody>, Response = http::Response<ProxyBody>>,
{
    type Response = http::Response<TrackedBody>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.conn);
        let req = req.map(|body| {
            // A body still to arrive keeps the request in flight until it has (no count,
            // no reference for a request without one).
            let open = (!body.is_end_stream()).then(|| InFlight::body(&self.conn));
            RxBody::new(body, open)
        });
        TrackedFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<ProxyBody>, E>>,
{
    type Output = Result<http::Response<TrackedBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(res.map(|resp| resp.map(|body| TrackedBody { body, guard })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is dropped, and
    /// counts the stream timeouts that cut it.
    struct TrackedBody {
        #[pin]
        body: ProxyBody,
        guard: Option<InFlight>,
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let res = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &res
            && let (Some(kind), Some(guard)) = (e.kind(), this.guard.as_ref())
        {
            guard.0.stats.error(kind);
            debug!(listener = %guard.0.stats.name, error = %e, "resetting a stream");
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Copies bytes both ways until either side is done, nothing has arrived from either side
/// for the idle timeout (Envoy's TCP proxy idle timeout), the proxy has drained, or
/// `revoked` resolves (the connection is no longer allowed). Returns the bytes read from
/// `a` and from `b`.
pub(crate) async fn copy_tcp<A, B>(
    shared: &Shared,
    a: A,
    b: B,
    stats: &ListenerStats,
    idle_timeout: Option<Duration>,
    revoked: impl Future<Output = ()>,
) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::default();
    let mut a = Counted {
        inner: a,
        activity: &activity,
        bytes: 0,
    };
    let mut b = Counted {
        inner: b,
        activity: &activity,
        bytes: 0,
    };
    copy_until_done(
        shared,
        &mut a,
        &mut b,
        stats,
        idle_timeout,
        revoked,
        &activity,
    )
    .await;
    (a.bytes, b.bytes)
}

/// [`copy_tcp`]'s loop: until either side is done, the connection is revoked, the proxy
/// drains or the connection idles out.
async fn copy_until_done<A, B>(
    shared: &Shared,
    a: &mut Counted<'_, A>,
    b: &mut Counted<'_, B>,
    stats: &ListenerStats,
    idle_timeout: Option<Duration>,
    revoked: impl Future<Output = ()>,
    activity: &Activity,
) where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = shared.drain.subscribe();
    let mut idle = IdleCheck::new(idle_timeout);
    let copy = tokio::io::copy_bidirectional(a, b);
    tokio::pin!(copy);
    tokio::pin!(revoked);
    loop {
        tokio::select! {
            () = revoked.as_mut() => return,
            res = copy.as_mut() => {
                if let Err(e) = res {
                    stats.error("tcp");
                    debug!(listener = %stats.name, error = %e, "TCP proxying ended with an error");
                }
                return;
            }
            () = drain::reached(&mut phase, Phase::Closed) => return,
            () = idle.tick() => {
                if idle.expired(activity) {
                    debug!(listener = %stats.name, "closing an idle TCP connection");
                    return;
                }
            }
        }
    }
}

/// A stream whose reads (bytes arriving from that side) count as activity, and are
/// counted.
struct Counted<'a, T> {
    inner: T,
    activity: &'a Activity,
    bytes: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.activity.seen.fetch_add(1, Ordering::Relaxed);
            this.bytes += read as u64;
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks (without timers: `expired` is what each tick runs) until idle; `None` if not
    /// idle within 20 checks.
    fn checks_until_idle(check: &mut IdleCheck, activity: &Activity) -> Option<u32> {
        (1..=20).find(|_| check.expired(activity))
    }

    #[tokio::test]
    async fn idle_after_four_quiet_checks_counting_the_end_of_a_request_as_activity() {
        let conn = HttpConn::for_test();
        let activity = &conn.activity;
        let mut check = IdleCheck::new(Some(Duration::from_secs(3600)));
        // A fresh connection that never does anything: idle at the 4th check.
        assert_eq!(checks_until_idle(&mut check, activity), Some(4));

        // An event (request start / TCP read) between checks: 4 quiet checks after the one
        // that saw it.
        let mut check = IdleCheck::new(Some(Duration::from_secs(3600)));
        assert!(!check.expired(activity));
        activity.seen.fetch_add(1, Ordering::Relaxed);
        assert!(!check.expired(activity), "the check that sees the event");
        assert_eq!(checks_until_idle(&mut check, activity), Some(4));

        // A long request: never idle while in flight, whatever the number of checks.
        let mut check = IdleCheck::new(Some(Duration::from_secs(3600)));
        let guard = InFlight::start(&conn);
        assert_eq!(checks_until_idle(&mut check, activity), None);
        // It ended at some point before the next check: that check counts as active too,
        // so the timeout runs from the end of the request, not from the last busy check.
        drop(guard);
        assert!(!check.expired(activity));
        assert_eq!(checks_until_idle(&mut check, activity), Some(4));
    }
}
