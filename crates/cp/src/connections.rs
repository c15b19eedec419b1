//! How every listener of the control plane treats its connections, so that hostile or
//! broken clients cannot take it down:
//!
//! - a cap on open connections per server (`Gate`): when it is reached the server stops
//!   accepting (new clients wait in the kernel's backlog) until a connection closes;
//! - a TLS handshake bounded by the server's read-header timeout;
//! - a watchdog per connection (`Activity::expired`): the first request must arrive within
//!   the read-header timeout, a request whose first bytes arrived must complete its head
//!   within it too (HTTP/1), a connection with no request in flight is closed after the idle
//!   timeout, and (HTTP/1) a request must be answered within the write timeout of its head;
//! - (HTTP/1) a request body must arrive within the read timeout of the request's head.
//!
//! Timeouts follow Go's `http.Server`, which Kuma's servers are: `readHeaderTimeout`,
//! `idleTimeout`, `readTimeout`, `writeTimeout`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::serve::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long open connections get to finish after a stop signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The time limits of one server's connections.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The TLS handshake, the first request's head, and (HTTP/1) a later request's head
    /// once its first byte arrived.
    pub read_header: Duration,
    /// A connection with no request in flight (HTTP/1) or no open stream (HTTP/2).
    pub idle: Duration,
    /// HTTP/1: the request body must arrive within this time of the request's head.
    pub read: Option<Duration>,
    /// HTTP/1: the response must be done within this time of the request's head.
    pub write: Option<Duration>,
}

/// A server's connection cap, shared by its listeners (the API's HTTP and HTTPS ports share one).
pub struct Gate {
    server: &'static str,
    /// The config key (and env var) of the cap, for the log line when it is reached.
    key: &'static str,
    permits: Arc<Semaphore>,
    max: u32,
}

impl Gate {
    /// `max` is validated by the config (1..=1,000,000).
    pub fn new(server: &'static str, key: &'static str, max: usize) -> Arc<Gate> {
        let max = u32::try_from(max.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Arc::new(Gate {
            server,
            key,
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
        })
    }

    /// Waits (bounded) until every connection has closed.
    async fn drain(&self, within: Duration) {
        if tokio::time::timeout(within, self.permits.acquire_many(self.max))
            .await
            .is_err()
        {
            tracing::warn!(
                server = self.server,
                "connections still open after the drain period; closing them"
            );
        }
    }
}

/// Logs at most once a minute.
#[derive(Default)]
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

/// Accepts connections while the gate has room and hands each to `handle` (in its own task,
/// holding its slot until it ends); on shutdown stops accepting and drains.
async fn accept_loop<H, Fut>(listener: TcpListener, gate: Arc<Gate>, shutdown: Shutdown, handle: H)
where
    H: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (mut full_log, mut error_log) = (Throttle::default(), Throttle::default());
    loop {
        let permit = match gate.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if full_log.ready() {
                    tracing::warn!(
                        server = gate.server,
                        max = gate.max,
                        "the connection cap is reached ({}): new connections wait until one closes",
                        gate.key
                    );
                }
                tokio::select! {
                    p = gate.permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = shutdown.wait() => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    if error_log.ready() {
                        tracing::warn!(server = gate.server, error = %e, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let conn = handle(tcp, peer);
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
    drop(listener);
    gate.drain(DRAIN).await;
}

/// What a connection adds to each of its requests' extensions.
pub trait ConnInfo: Clone + Send + Sync + 'static {
    fn insert(&self, ext: &mut http::Extensions);
}

/// The REST API's view of a connection: the peer (for the loopback-is-admin rule), the
/// address it came in on and whether it is TLS (for `next` links).
#[derive(Debug, Clone, Copy)]
pub struct ApiConn {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

impl ConnInfo for ApiConn {
    fn insert(&self, ext: &mut http::Extensions) {
        ext.insert(axum::extract::ConnectInfo(self.peer));
        ext.insert(*self);
    }
}

/// gRPC handlers read the peer with `Request::remote_addr`, which looks for this.
impl ConnInfo for tonic::transport::server::TcpConnectInfo {
    fn insert(&self, ext: &mut http::Extensions) {
        ext.insert(self.clone());
    }
}

/// Serves HTTP/1.1 (the REST API, diagnostics), over TLS when `tls` is set.
pub async fn serve_http1(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    timeouts: Timeouts,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    let local = listener.local_addr().ok();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog keeps time; hyper's own header timer would also run while a keep-alive
    // connection is idle.
    builder.header_read_timeout(None);
    let builder = Arc::new(builder);
    let handle = |tcp: TcpStream, peer: SocketAddr| {
        let (tls, router, builder, shutdown) = (
            tls.clone(),
            router.clone(),
            builder.clone(),
            shutdown.clone(),
        );
        async move {
            let info = ApiConn {
                peer,
                local: tcp.local_addr().ok().or(local).unwrap_or(peer),
                tls: tls.is_some(),
            };
            let activity = Arc::new(Activity::default());
            let svc = ConnService {
                inner: router,
                info,
                activity: activity.clone(),
                read_timeout: timeouts.read,
            };
            match tls {
                None => {
                    let io = TokioIo::new(Tracked::new(tcp, activity.clone()));
                    let conn = builder.serve_connection(io, svc);
                    drive(
                        conn,
                        |c| c.graceful_shutdown(),
                        &activity,
                        timeouts,
                        true,
                        shutdown,
                        peer,
                    )
                    .await
                }
                Some(acceptor) => {
                    let Some(stream) = handshake(&acceptor, tcp, timeouts.read_header, peer).await
                    else {
                        return;
                    };
                    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
                    let conn = builder.serve_connection(io, svc);
                    drive(
                        conn,
                        |c| c.graceful_shutdown(),
                        &activity,
                        timeouts,
                        true,
                        shutdown,
                        peer,
                    )
                    .await
                }
            }
        }
    };
    accept_loop(listener, gate, shutdown.clone(), handle).await
}

/// Serves gRPC over TLS (HTTP/2: the DP server, KDS).
pub async fn serve_grpc(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    routes: tonic::service::Routes,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    timeouts: Timeouts,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    let h2 = Arc::new(h2);
    let handle = |tcp: TcpStream, peer: SocketAddr| {
        let (tls, routes, h2, shutdown) =
            (tls.clone(), routes.clone(), h2.clone(), shutdown.clone());
        async move {
            let info = tonic::transport::server::TcpConnectInfo {
                local_addr: tcp.local_addr().ok(),
                remote_addr: Some(peer),
            };
            // Boxed, here and below: a future holding the handshake and the connection
            // inline would keep room for both, for every connection's whole life.
            let Some(stream) = Box::pin(handshake(&tls, tcp, timeouts.read_header, peer)).await
            else {
                return;
            };
            let activity = Arc::new(Activity::default());
            let svc = ConnService {
                inner: routes,
                info,
                activity: activity.clone(),
                read_timeout: None,
            };
            let conn = Box::pin(h2.serve_connection(TokioIo::new(stream), svc));
            drive(
                conn,
                |c| c.get_mut().as_mut().graceful_shutdown(),
                &activity,
                timeouts,
                false,
                shutdown,
                peer,
            )
            .await
        }
    };
    accept_loop(listener, gate, shutdown.clone(), handle).await
}

/// The HTTP/2 settings of the gRPC servers.
pub fn grpc_h2(
    keepalive: Duration,
    keepalive_timeout: Duration,
    max_streams: u32,
    window: u32,
) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive_timeout)
        .max_concurrent_streams(max_streams)
        .max_header_list_size(16 * 1024)
        .initial_stream_window_size(window)
        .initial_connection_window_size(window.saturating_mul(4));
    b
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    within: Duration,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(within, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Runs one connection until it ends, its watchdog expires (the connection is dropped,
/// which closes it) or the server stops (graceful shutdown, then the watchdog still bounds it).
async fn drive<C, G>(
    conn: C,
    mut graceful: G,
    activity: &Activity,
    timeouts: Timeouts,
    track_bytes: bool,
    shutdown: Shutdown,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), hyper::Error>>,
    G: FnMut(Pin<&mut C>),
{
    let mut conn = std::pin::pin!(conn);
    let watchdog = activity.expired(timeouts, track_bytes);
    let mut watchdog = std::pin::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = &mut watchdog => {
                tracing::debug!(%peer, why, "closing a connection");
                return;
            }
            _ = shutdown.wait(), if !stopping => {
                graceful(conn.as_mut());
                stopping = true;
            }
        }
    }
}

/// What the watchdog knows about one connection: requests started and finished (from the
/// service wrapper), and whether bytes arrived since it went idle (from the IO wrapper).
#[derive(Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    bytes: AtomicBool,
    wake: Notify,
}

/// One request in flight; dropping it (the response is done, or abandoned) finishes it.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let finished = self.0.finished.fetch_add(1, SeqCst) + 1;
        if finished == self.0.started.load(SeqCst) {
            // Idle again: bytes from now on belong to the next request.
            self.0.bytes.store(false, SeqCst);
        }
        self.0.wake.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight and no byte of the next one; `first`: none yet on this connection.
    Idle { first: bool },
    /// The first bytes of a request arrived, its head is not complete.
    Head,
    /// A request is being served.
    Busy,
}

impl Activity {
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, SeqCst);
        self.wake.notify_one();
        InFlight(self.clone())
    }

    pub(crate) fn saw_bytes(&self) {
        if !self.bytes.load(SeqCst) {
            self.bytes.store(true, SeqCst);
            self.wake.notify_one();
        }
    }

    /// Resolves when the connection has outlived one of its timeouts, with the reason.
    /// `track_bytes`: HTTP/1, where bytes on an idle connection start the next request's
    /// head (on HTTP/2 they may be pings or settings).
    pub(crate) async fn expired(&self, t: Timeouts, track_bytes: bool) -> &'static str {
        let mut phase = Phase::Idle { first: true };
        let mut since = Instant::now();
        let mut seen = 0u64;
        loop {
            let notified = self.wake.notified();
            let started = self.started.load(SeqCst);
            let finished = self.finished.load(SeqCst);
            let now = Instant::now();
            let current = if started > finished {
                Phase::Busy
            } else if track_bytes && self.bytes.load(SeqCst) {
                Phase::Head
            } else {
                Phase::Idle {
                    first: started == 0,
                }
            };
            // The first request's head counts from the start, as its idle time did.
            let keeps_clock = phase == Phase::Idle { first: true } && current == Phase::Head;
            if (current != phase || started != seen) && !keeps_clock {
                since = now;
            }
            phase = current;
            seen = started;
            let (limit, why) = match phase {
                Phase::Idle { first: true } => (Some(t.read_header), "no request in time"),
                Phase::Idle { first: false } => (Some(t.idle), "idle"),
                Phase::Head => (
                    Some(t.read_header),
                    "the request head did not arrive in time",
                ),
                Phase::Busy => (t.write, "the response was not done in time"),
            };
            match limit {
                None => notified.await,
                Some(limit) => {
                    let deadline = since + limit;
                    if now >= deadline {
                        return why;
                    }
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
            }
        }
    }
}

/// An IO that tells its connection's watchdog when bytes arrive.
struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    fn new(io: IO, activity: Arc<Activity>) -> Self {
        Tracked { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.saw_bytes();
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The per-connection service: adds the connection's info to each request, bounds the
/// request body (HTTP/1) and keeps the request counted until its response is done.
#[derive(Clone)]
struct ConnService<S, I> {
    inner: S,
    info: I,
    activity: Arc<Activity>,
    read_timeout: Option<Duration>,
}

impl<S, I, B> hyper::service::Service<Request<Incoming>> for ConnService<S, I>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    I: ConnInfo,
{
    type Response = Response<ResponseBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let (mut parts, body) = req.into_parts();
        self.info.insert(&mut parts.extensions);
        let body = RequestBody {
            inner: body,
            deadline: self.read_timeout.map(|d| Instant::now() + d),
            sleep: None,
        };
        let svc = self.inner.clone();
        Box::pin(async move {
            let resp = svc.oneshot(Request::from_parts(parts, body)).await?;
            Ok(resp.map(|inner| ResponseBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A request body that fails once its deadline (the read timeout) passes.
pub struct RequestBody {
    inner: Incoming,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Some(deadline) = this.deadline {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(
                    "the request body did not arrive within the read timeout".into(),
                )));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct ResponseBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises this process's open-files soft limit to its hard limit (connections are file
/// descriptors: a low soft limit lets a few hundred idle clients lock everyone else out).
/// Returns (before, after).
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let before = lim.current.unwrap_or(u64::MAX);
    if let (Some(current), Some(maximum)) = (lim.current, lim.maximum)
        && current < maximum
    {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    let after = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        read_header: Duration::from_secs(1),
        idle: Duration::from_secs(120),
        read: None,
        write: Some(Duration::from_secs(30)),
    };

    /// Polls the watchdog until it expires or `for_` passes; the elapsed time if it expired.
    async fn expires_within(
        a: &Activity,
        t: Timeouts,
        track_bytes: bool,
        for_: Duration,
    ) -> Option<&'static str> {
        tokio::time::timeout(for_, a.expired(t, track_bytes))
            .await
            .ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_closes_after_the_read_header_timeout() {
        let a = Arc::new(Activity::default());
        let start = Instant::now();
        let why = a.expired(T, true).await;
        assert_eq!(why, "no request in time");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_first_head_counts_from_accept() {
        let a = Arc::new(Activity::default());
        let start = Instant::now();
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(T, true).await })
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        a.saw_bytes();
        assert_eq!(w.await.unwrap(), "the request head did not arrive in time");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_waits_for_the_idle_timeout_then_a_new_head_gets_read_header() {
        let a = Arc::new(Activity::default());
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(T, true).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.saw_bytes();
        let req = a.begin();
        // Busy for longer than the read-header timeout: no expiry while serving.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(req);
        // Idle well beyond the read-header timeout, within the idle timeout.
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!w.is_finished());
        let head_start = Instant::now();
        a.saw_bytes();
        assert_eq!(w.await.unwrap(), "the request head did not arrive in time");
        assert_eq!(head_start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_closes_after_the_idle_timeout() {
        let a = Arc::new(Activity::default());
        drop(a.begin());
        let start = Instant::now();
        assert_eq!(a.expired(T, true).await, "idle");
        assert_eq!(start.elapsed(), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_bounded_by_the_write_timeout_only_when_set() {
        let a = Arc::new(Activity::default());
        let _req = a.begin();
        let start = Instant::now();
        assert_eq!(
            a.expired(T, true).await,
            "the response was not done in time"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        // gRPC: a stream may stay open for ever, and pings are no request bytes.
        let b = Arc::new(Activity::default());
        let _stream = b.begin();
        b.saw_bytes();
        let grpc = Timeouts { write: None, ..T };
        assert_eq!(
            expires_within(&b, grpc, false, Duration::from_secs(3600)).await,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_idle_connections_ignore_bytes_and_close_after_the_idle_timeout() {
        let a = Arc::new(Activity::default());
        let grpc = Timeouts { write: None, ..T };
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(grpc, false).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(a.begin());
        let idle_start = Instant::now();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            a.saw_bytes(); // keepalive pings
        }
        assert_eq!(w.await.unwrap(), "idle");
        assert_eq!(idle_start.elapsed(), Duration::from_secs(120));
    }
}
