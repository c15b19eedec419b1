//! Upstream connections: dialling (plaintext or mTLS to a peer proxy) and per-endpoint HTTP
//! connection pools.
//!
//! A hand-rolled pool rather than hyper-util's legacy client because the proxy must pick the
//! endpoint *before* the request is committed: when an endpoint refuses the connection the
//! request (whose body is a stream that cannot be replayed) is still ours and goes to the next
//! endpoint. HTTP/1 connections are kept on an idle stack and returned when the response body
//! ends; HTTP/2 uses one shared, multiplexed connection per endpoint, read lock-free.
//!
//! Both are kept per worker thread ([`crate::workers`]): a connection's task runs on the
//! worker that opened it, so a request only ever borrows a connection from its own thread
//! (the per-slot mutex is therefore uncontended).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use crate::breaker::{Cluster, EndpointHealth, Held, PoolMember, Resource};
use crate::retry::ReqBody;
use crate::tls::{Alpn, TlsStore};
use crate::workers;

/// Idle HTTP/1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 128;
/// How long a returned HTTP/1 connection may take to become reusable before it is closed.
const PARK_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the peer over mTLS.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub store: Arc<TlsStore>,
    pub spiffe_id: Arc<str>,
    pub alpn: Alpn,
    /// The server name sent in the ClientHello (`<service>.<mesh>.mesh`): a zone ingress
    /// routes on it. `None` sends none (configs from before SNI existed). The peer is
    /// verified by its SPIFFE ID either way, never by this name.
    pub sni: Option<ServerName<'static>>,
}

impl TlsTarget {
    /// The SNI to send for an outbound's `sni` field: a DNS name, or `None` when empty or
    /// not a valid DNS name (which is then logged once, when the config is applied).
    pub fn sni(sni: &str) -> Option<ServerName<'static>> {
        if sni.is_empty() {
            return None;
        }
        match ServerName::try_from(sni.to_owned()) {
            Ok(name @ ServerName::DnsName(_)) => Some(name),
            _ => {
                tracing::warn!(%sni, "the outbound's server name is not a valid DNS name; sending no SNI (a zone ingress cannot route this service)");
                None
            }
        }
    }
}

/// Dials one endpoint.
#[derive(Clone)]
pub(crate) struct Connector {
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, io::Error),
    #[error("connect to {0}: timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: no workload identity yet, cannot speak mTLS")]
    NoIdentity(SocketAddr),
    #[error("TLS client config for {0}: {1}")]
    Config(SocketAddr, String),
    #[error("TLS handshake with {0}: {1}")]
    Tls(SocketAddr, io::Error),
    #[error("HTTP handshake with {0}: {1}")]
    Http(SocketAddr, hyper::Error),
}

impl Connector {
    pub async fn connect(&self) -> Result<Upstream, ConnectError> {
        let addr = self.addr;
        let work = async {
            let tcp = crate::dial::connect(addr)
                .await
                .map_err(|e| ConnectError::Io(addr, e))?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Upstream::Plain(tcp));
            };
            let material = tls
                .store
                .load_full()
                .ok_or(ConnectError::NoIdentity(addr))?;
            let config = material
                .client(&tls.spiffe_id, tls.alpn)
                .map_err(|e| ConnectError::Config(addr, e))?;
            let name = tls
                .sni
                .clone()
                .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Tls(addr, e))?;
            Ok(Upstream::Tls(Box::new(stream)))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ConnectError::Timeout(addr))?
    }
}

/// A connection to an upstream, plaintext or mTLS.
pub(crate) enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Upstream {
    fn negotiated_h2(&self) -> bool {
        match self {
            Upstream::Plain(_) => false,
            Upstream::Tls(s) => s.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2),
        }
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Which HTTP version the pool speaks to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    H1,
    H2,
}

/// A ready-to-use request sender; an HTTP/1 one with the identity epoch of the proxy's
/// certificate it was opened with (see [`EndpointPool::epoch`]), to pool it under.
pub(crate) enum Sender {
    H1(http1::SendRequest<ReqBody>, u64),
    H2(http2::SendRequest<ReqBody>),
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckoutError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A circuit breaker (`maxPendingRequests`) refused the request.
    #[error("circuit breaker overflow")]
    Overflow,
    /// The cluster may have no more connection pools (`maxConnectionPools`), and this
    /// worker has none to the endpoint.
    #[error("no connection pool available")]
    PoolOverflow,
}

/// Connections to one endpoint, per worker slot ([`crate::workers::slot`]): each slot is
/// one of Envoy's connection pools, counted in the cluster's `maxConnectionPools` while it
/// has members ([`PoolMember`]: connections, and requests waiting for one). Each pooled
/// connection remembers the identity epoch it was opened with: once the proxy's identity
/// changes (an admin changed its services), connections presenting the old certificate are
/// not reused, so the peer never authorizes a request under an identity the proxy no longer
/// holds. Rotations that keep the identity keep the epoch, and the connections.
pub(crate) struct EndpointPool {
    pub connector: Connector,
    pub version: HttpVersion,
    /// The cluster this endpoint belongs to: its connections count there.
    pub cluster: Arc<Cluster>,
    /// Outlier detection's view of this endpoint.
    pub health: EndpointHealth,
    /// Members of each slot's pool (see [`Cluster::join_pool`]).
    members: Arc<[AtomicU32]>,
    idle: Box<[Mutex<IdleStack>]>,
    h2: Box<[ArcSwapOption<Pooled<http2::SendRequest<ReqBody>>>]>,
}

/// A pooled connection's sender with the identity epoch it was opened under.
type Pooled<S> = (u64, S);
/// A worker's idle HTTP/1 connections to one endpoint.
type IdleStack = Vec<Pooled<http1::SendRequest<ReqBody>>>;

impl EndpointPool {
    /// `slots`: the number of worker slots (workers + 1 for other threads).
    pub fn new(
        connector: Connector,
        version: HttpVersion,
        slots: usize,
        cluster: Arc<Cluster>,
    ) -> Arc<EndpointPool> {
        let slots = slots.max(1);
        Arc::new(EndpointPool {
            connector,
            version,
            cluster,
            health: EndpointHealth::default(),
            members: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            idle: (0..slots).map(|_| Mutex::new(Vec::new())).collect(),
            h2: (0..slots).map(|_| ArcSwapOption::empty()).collect(),
        })
    }

    /// A place in this worker's pool to the endpoint (see [`Cluster::join_pool`]): `None`
    /// when creating the pool would exceed the cluster's `maxConnectionPools` (never with
    /// `force`).
    pub fn join_pool(&self, force: bool) -> Option<PoolMember> {
        let slot = workers::slot(self.members.len());
        self.cluster.join_pool(&self.members, slot, force)
    }

    fn idle_stack(&self) -> &Mutex<IdleStack> {
        &self.idle[workers::slot(self.idle.len())]
    }

    fn h2_conn(&self) -> &ArcSwapOption<Pooled<http2::SendRequest<ReqBody>>> {
        &self.h2[workers::slot(self.h2.len())]
    }

    /// The identity epoch new connections present: that of the current certificate (mTLS),
    /// 0 for plaintext pools. One pointer load.
    fn epoch(&self) -> u64 {
        self.connector
            .tls
            .as_ref()
            .and_then(|t| t.store.load().as_ref().map(|m| m.epoch))
            .unwrap_or(0)
    }

    /// A sender on a live connection: a pooled one when available, else a new connection.
    /// `Err` when dialling fails (the caller can try another endpoint) or when the
    /// cluster's circuit breaker refuses another waiting request.
    pub async fn checkout(&self) -> Result<Sender, CheckoutError> {
        let epoch = self.epoch();
        if let Some(sender) = self.pooled(epoch) {
            return Ok(sender);
        }
        // Boxed: dialling (TCP + TLS + HTTP handshakes) is a large future, and inline it
        // would make every request's future that large (and copied around) for a path
        // taken once per connection.
        Box::pin(self.checkout_slow(epoch)).await
    }

    /// A live pooled connection of this worker, if any.
    fn pooled(&self, epoch: u64) -> Option<Sender> {
        match self.version {
            HttpVersion::H1 => {
                // Never wait on a pooled connection: one that is not ready right now is busy
                // or broken, and a fresh connection is the better bet.
                while let Some((opened, mut sender)) = self.pop_idle() {
                    if opened == epoch
                        && !sender.is_closed()
                        && matches!(sender.ready().now_or_never(), Some(Ok(())))
                    {
                        return Some(Sender::H1(sender, opened));
                    }
                }
            }
            HttpVersion::H2 => {
                if let Some((opened, sender)) = self.h2_conn().load().as_deref()
                    && *opened == epoch
                    && !sender.is_closed()
                {
                    return Some(Sender::H2(sender.clone()));
                }
            }
        }
        None
    }

    /// A live connection of another worker, for when the cluster may open no more.
    fn pooled_elsewhere(&self, epoch: u64) -> Option<Sender> {
        match self.version {
            HttpVersion::H1 => self.idle.iter().find_map(|slot| {
                let mut stack = slot.lock().unwrap_or_else(|e| e.into_inner());
                while let Some((opened, mut sender)) = stack.pop() {
                    if opened == epoch
                        && !sender.is_closed()
                        && matches!(sender.ready().now_or_never(), Some(Ok(())))
                    {
                        return Some(Sender::H1(sender, opened));
                    }
                }
                None
            }),
            HttpVersion::H2 => self.h2.iter().find_map(|slot| {
                let conn = slot.load();
                let (opened, sender) = conn.as_deref()?;
                (*opened == epoch && !sender.is_closed()).then(|| Sender::H2(sender.clone()))
            }),
        }
    }

    /// Joins this worker's pool to the endpoint (creating it if needed), then waits (as a
    /// pending request) for the cluster to allow a new connection, or for one to be
    /// released, and dials if needed.
    async fn checkout_slow(&self, epoch: u64) -> Result<Sender, CheckoutError> {
        let cluster = &self.cluster;
        let member = self.join_pool(false).ok_or(CheckoutError::PoolOverflow)?;
        let _pending = cluster
            .try_take(Resource::Pending)
            .ok_or(CheckoutError::Overflow)?;
        loop {
            if let Some(conn) = cluster.try_take(Resource::Connections) {
                return Ok(self.connect_with(conn, Some(member)).await?);
            }
            let mut released = std::pin::pin!(cluster.released().notified());
            released.as_mut().enable();
            if let Some(sender) = self.pooled_elsewhere(epoch) {
                return Ok(sender);
            }
            if cluster.has_room(Resource::Connections) {
                continue;
            }
            released.await;
        }
    }

    fn pop_idle(&self) -> Option<Pooled<http1::SendRequest<ReqBody>>> {
        self.idle_stack()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    /// Returns a connection whose response has been fully read. The connection task may not
    /// have noticed yet (or the request body may still be streaming), so a connection that is
    /// not ready at once is parked until it is, keeping the idle stack free of busy entries.
    fn release(self: Arc<Self>, epoch: u64, mut sender: http1::SendRequest<ReqBody>) {
        match sender.ready().now_or_never() {
            Some(Ok(())) => self.push_idle(epoch, sender),
            Some(Err(_)) => {}
            None => {
                tokio::spawn(async move {
                    if let Ok(Ok(())) = tokio::time::timeout(PARK_TIMEOUT, sender.ready()).await {
                        self.push_idle(epoch, sender);
                    }
                });
            }
        }
    }

    fn push_idle(&self, epoch: u64, sender: http1::SendRequest<ReqBody>) {
        {
            let mut idle = self.idle_stack().lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_PER_ENDPOINT {
                idle.push((epoch, sender));
            }
        }
        self.cluster.connection_released();
    }

    /// Opens a new connection outside the cluster's limits (replacing one that just died).
    async fn connect(&self) -> Result<Sender, ConnectError> {
        self.connect_with(
            self.cluster.take(Resource::Connections),
            self.join_pool(true),
        )
        .await
    }

    /// Opens a new connection, counted in the cluster as `conn` and in this worker's pool as
    /// `member` until it closes. HTTP/2 is used when the pool is configured for it or when
    /// TLS negotiated `h2`.
    async fn connect_with(
        &self,
        conn: Held,
        member: Option<PoolMember>,
    ) -> Result<Sender, ConnectError> {
        let addr = self.connector.addr;
        // Read before dialling: if the identity changes during the handshake, the connection
        // is stamped with the older epoch and simply not reused.
        let epoch = self.epoch();
        let io = self.connector.connect().await?;
        let h2 = self.version == HttpVersion::H2 || io.negotiated_h2();
        let io = TokioIo::new(io);
        if h2 {
            let (sender, conn_task) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| ConnectError::Http(addr, e))?;
            tokio::spawn(async move {
                if let Err(e) = conn_task.await {
                    debug!(%addr, error = %e, "upstream h2 connection ended");
                }
                drop((conn, member));
            });
            self.h2_conn()
                .store(Some(Arc::new((epoch, sender.clone()))));
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn_task) = http1::handshake(io)
                .await
                .map_err(|e| ConnectError::Http(addr, e))?;
            tokio::spawn(async move {
                if let Err(e) = conn_task.await {
                    debug!(%addr, error = %e, "upstream h1 connection ended");
                }
                drop((conn, member));
            });
            Ok(Sender::H1(sender, epoch))
        }
    }

    /// Sends `req` on `sender`. A pooled HTTP/1 connection that turns out to be closed before
    /// the request was written (the server timed it out) is replaced by a fresh one, once.
    pub async fn send(
        self: &Arc<Self>,
        sender: Sender,
        req: Request<ReqBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        // The common case holds one send future; the stale-connection case is a boxed call
        // (see `resend`), so its locals do not grow every request's future.
        let (tried, sender) = match sender {
            Sender::H2(mut sender) => (sender.try_send_request(req).await, None),
            Sender::H1(mut sender, epoch) => {
                let tried = sender.try_send_request(req).await;
                (tried, Some((sender, epoch)))
            }
        };
        let (resp, h1) = match tried {
            Ok(resp) => (resp, sender),
            Err(mut e) => match e.take_message() {
                Some(req) => Box::pin(self.resend(req, sender.is_none())).await?,
                None => return Err(SendError::Http(e.into_error())),
            },
        };
        Ok(match h1 {
            None => resp.map(|body| PooledBody {
                body,
                ret: None,
                request: None,
                active: None,
            }),
            Some((sender, epoch)) => {
                let pool = self.clone();
                resp.map(|body| {
                    let mut body = PooledBody {
                        body,
                        ret: Some((epoch, sender, pool)),
                        request: None,
                        active: None,
                    };
                    body.release_if_done();
                    body
                })
            }
        })
    }

    /// The pooled connection was found closed before `req` was written: sends it once on a
    /// fresh connection (HTTP/2: after forgetting the shared one).
    async fn resend(
        self: &Arc<Self>,
        req: Request<ReqBody>,
        h2: bool,
    ) -> Result<
        (
            Response<Incoming>,
            Option<(http1::SendRequest<ReqBody>, u64)>,
        ),
        SendError,
    > {
        if h2 {
            self.h2_conn().store(None);
        }
        match self.connect().await? {
            Sender::H2(mut fresh) if h2 => Ok((fresh.send_request(req).await?, None)),
            Sender::H1(mut fresh, epoch) if !h2 => {
                let resp = fresh.send_request(req).await?;
                Ok((resp, Some((fresh, epoch))))
            }
            _ => Err(SendError::Protocol),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("the endpoint changed protocol")]
    Protocol,
}

/// An upstream response body that hands its HTTP/1 connection back to the pool once fully
/// read. Dropped early, the connection is closed instead (it may still carry unread bytes).
pub(crate) struct PooledBody {
    body: Incoming,
    ret: Option<(u64, http1::SendRequest<ReqBody>, Arc<EndpointPool>)>,
    /// The request's place in its cluster's `maxRequests`, held until the body is done.
    request: Option<Held>,
    /// The request counted in flight to its endpoint (least request), until the body is done.
    active: Option<crate::lb::Active>,
}

impl PooledBody {
    /// Keeps the request counted in its cluster until this body is dropped.
    pub fn hold(&mut self, request: Held) {
        self.request = Some(request);
    }

    /// Keeps the request counted in flight to its endpoint until this body is dropped.
    pub fn hold_active(&mut self, active: crate::lb::Active) {
        self.active = Some(active);
    }

    fn release_if_done(&mut self) {
        if self.body.is_end_stream()
            && let Some((epoch, sender, pool)) = self.ret.take()
        {
            pool.release(epoch, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.body).poll_frame(cx);
        match &res {
            Poll::Ready(None) => {
                if let Some((epoch, sender, pool)) = this.ret.take() {
                    pool.release(epoch, sender);
                }
            }
            Poll::Ready(Some(Ok(_))) => this.release_if_done(),
            Poll::Ready(Some(Err(_))) => this.ret = None,
            Poll::Pending => {}
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
