//! Listening sockets and the connection plumbing shared by inbound and outbound.
//!
//! A listener is keyed by address only and carries a swappable [`Route`]: a config change
//! that keeps the address (even one turning an inbound into an outbound) swaps the route
//! without closing the socket, so no connection attempt is ever refused during an update.

use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::{InboundConfig, MtlsMode, OutboundConfig};
use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
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

/// Serves HTTP/1.1 and HTTP/2 (autodetected) on `io` until the peer is done; on drain the
/// connection is shut down gracefully, and dropped once the drain timeout has passed.
pub(crate) async fn serve_http<I, S>(shared: &Shared, io: I, svc: S, stats: &ListenerStats)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<ProxyBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = shared.http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut phase = shared.drain.subscribe();
    let res = tokio::select! {
        res = conn.as_mut() => res,
        () = drain::reached(&mut phase, Phase::Draining) => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                res = conn.as_mut() => res,
                () = drain::reached(&mut phase, Phase::Closed) => return,
            }
        }
    };
    if let Err(e) = res {
        stats.error("http");
        debug!(listener = %stats.name, error = %e, "HTTP connection error");
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
