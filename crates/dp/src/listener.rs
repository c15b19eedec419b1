//! Listening sockets and the connection plumbing shared by inbound and outbound.
//!
//! A listener is keyed by address only and carries a swappable [`Route`]: a config change
//! that keeps the address (even one turning an inbound into an outbound) swaps the route
//! without closing the socket, so no connection attempt is ever refused during an update.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::body::ProxyBody;
use crate::drain::{self, Phase};
use crate::forward::Upstreams;
use crate::metrics::ListenerStats;
use crate::proxy::Shared;

/// Pending connections the kernel queues per listener.
const BACKLOG: u32 = 1024;

/// What a listener does with its connections, at one config version.
pub(crate) enum Route {
    Inbound(Arc<InboundRoute>),
    Outbound(Arc<OutboundRoute>),
}

pub(crate) struct InboundRoute {
    pub cfg: InboundConfig,
    pub mtls: MtlsMode,
    pub app_addr: SocketAddr,
    /// The application, as a one-endpoint pool.
    pub app: Upstreams,
    pub stats: Arc<ListenerStats>,
}

pub(crate) struct OutboundRoute {
    pub cfg: OutboundConfig,
    pub mtls: MtlsMode,
    pub upstreams: Upstreams,
    pub stats: Arc<ListenerStats>,
}

/// A running listener; dropping it stops accepting (open connections are not touched).
pub(crate) struct Listener {
    route: Arc<ArcSwap<Route>>,
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
        let route = Arc::new(ArcSwap::from_pointee(route));
        let (stop, stopped) = oneshot::channel();
        handle.spawn(accept_loop(socket, route.clone(), shared, stopped));
        Listener { route, _stop: stop }
    }

    pub fn route(&self) -> Arc<Route> {
        self.route.load_full()
    }

    pub fn swap(&self, route: Route) {
        self.route.store(Arc::new(route));
    }
}

async fn accept_loop(
    socket: TcpListener,
    route: Arc<ArcSwap<Route>>,
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
                let current = route.load_full();
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
                            crate::outbound::serve(stream, peer, r.clone(), &shared).await;
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

/// Serves HTTP/1.1 and HTTP/2 (autodetected) on `io` until the peer is done. The connection
/// is shut down gracefully on drain, or once no request has been in flight for the idle
/// timeout; after a drain it is dropped once the drain timeout has passed.
pub(crate) async fn serve_http<I, S>(shared: &Shared, io: I, svc: S, stats: &ListenerStats)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<ProxyBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::default());
    let svc = Tracked {
        inner: svc,
        activity: activity.clone(),
    };
    let conn = shared.http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut phase = shared.drain.subscribe();
    let mut idle = IdleCheck::new(shared.opts.idle_timeout);
    let res = loop {
        tokio::select! {
            res = conn.as_mut() => break res,
            () = drain::reached(&mut phase, Phase::Draining) => {}
            () = idle.tick() => {
                if !idle.expired(&activity) {
                    continue;
                }
                debug!(listener = %stats.name, "closing an idle HTTP connection");
            }
        }
        // Draining or idle: finish what is in flight, then close.
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            res = conn.as_mut() => break res,
            () = drain::reached(&mut phase, Phase::Closed) => return,
        }
    };
    if let Err(e) = res {
        stats.error("http");
        debug!(listener = %stats.name, error = %e, "HTTP connection error");
    }
}

/// A connection's requests as [`serve_http`] sees them: how many started, how many are in
/// flight (until their response body is done or dropped). Touched by one thread only, so
/// the atomics are uncontended.
#[derive(Default)]
struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

/// Held by a request from its start until its response body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks a connection for idleness every quarter of the timeout (one timer per connection,
/// none per request): idle once four checks in a row saw nothing start and nothing in
/// flight, i.e. after between 1 and 1.25 times the timeout.
struct IdleCheck {
    ticks: tokio::time::Interval,
    last_started: u64,
    quiet: u32,
}

const IDLE_CHECKS: u32 = 4;

impl IdleCheck {
    fn new(timeout: Duration) -> IdleCheck {
        let period = (timeout / IDLE_CHECKS).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        IdleCheck {
            ticks,
            last_started: 0,
            quiet: 0,
        }
    }

    async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    fn expired(&mut self, activity: &Activity) -> bool {
        let started = activity.started.load(Ordering::Relaxed);
        if started != self.last_started || activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.last_started = started;
            self.quiet = 0;
            return false;
        }
        self.quiet += 1;
        self.quiet >= IDLE_CHECKS
    }
}

/// Wraps a connection's service to track its requests in an [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Service<http::Request<Incoming>> for Tracked<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<ProxyBody>>,
{
    type Response = http::Response<TrackedBody>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.activity);
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
        Poll::Ready(res.map(|resp| {
            resp.map(|body| TrackedBody {
                body,
                _guard: guard,
            })
        }))
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct TrackedBody {
    body: ProxyBody,
    _guard: Option<InFlight>,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Copies bytes both ways until both sides are done (or the drain timeout passes).
pub(crate) async fn copy_tcp<A, B>(shared: &Shared, mut a: A, mut b: B, stats: &ListenerStats)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = shared.drain.subscribe();
    tokio::select! {
        res = tokio::io::copy_bidirectional(&mut a, &mut b) => {
            if let Err(e) = res {
                stats.error("tcp");
                debug!(listener = %stats.name, error = %e, "TCP proxying ended with an error");
            }
        }
        () = drain::reached(&mut phase, Phase::Closed) => {}
    }
}
