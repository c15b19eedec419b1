//! Inbound: traffic from other proxies (or, without mTLS, anyone) to the local application.
//!
//! Per connection: establish who the peer is (mTLS handshake, or plaintext per the mesh's
//! mode), decide authorization, then proxy. A denied HTTP connection is still served, so
//! each request gets Envoy's `403 RBAC: access denied`; a denied TCP connection is closed.
//! HTTP connections re-decide when the listener's config is swapped (see [`crate::rbac`]):
//! a permission removed by the control plane stops the very next request.
//!
//! Every HTTP request reaches the application with the proxy's own
//! `x-forwarded-client-cert` (the verified caller, computed once per connection) and never
//! with one the caller sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::policies::callers::Caller;
use aerie_core::proxy_config::{MtlsMode, Protocol};
use arc_swap::ArcSwap;
use http::{HeaderValue, Response};
use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::accesslog::{self, ConnInfo};
use crate::body::{ProxyBody, rbac_denied};
use crate::fault::{self, Outcome, Throttled};
use crate::listener::{ConnLimits, InboundRoute, LiveRoute, Route, copy_tcp, serve_http};
use crate::meshtrace;
use crate::proxy::Shared;
use crate::rbac::{ConnAuthz, Peer, XFCC, authorize};
use crate::stream::RxBody;

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<InboundRoute>,
    live: Arc<LiveRoute>,
    shared: &Arc<Shared>,
) {
    // MeshRateLimit's connection rate comes first (Envoy's network filter is prepended):
    // a connection over it is closed before anything else is spent on it.
    if let Some(limiter) = &route.limiter
        && !limiter.admit_connection()
    {
        route.stats.error("rate_limited");
        return;
    }
    let addrs = (peer, stream.local_addr().unwrap_or(peer));
    let tls = match route.mtls {
        MtlsMode::Off => {
            let downstream = Downstream {
                peer: Peer::MeshWithoutMtls,
                xfcc: None,
                sni: None,
                addrs,
            };
            return proxy(stream, downstream, route, live, shared).await;
        }
        MtlsMode::Strict => true,
        MtlsMode::Permissive => match sniff_tls(&stream, shared).await {
            Some(tls) => tls,
            None => {
                route.stats.error("sniff");
                return;
            }
        },
    };
    if !tls {
        let downstream = Downstream {
            peer: Peer::Plaintext,
            xfcc: None,
            sni: None,
            addrs,
        };
        return proxy(stream, downstream, route, live, shared).await;
    }
    // Fail closed: no identity means we can neither prove ours nor verify theirs.
    let Some(material) = shared.tls.load_full() else {
        route.stats.error("no_identity");
        debug!(listener = %route.stats.name, %peer, "refusing mTLS connection: no identity yet");
        return;
    };
    let accept = TlsAcceptor::from(material.server.clone()).accept(stream);
    let stream = match tokio::time::timeout(shared.opts.handshake_timeout, accept).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            route.stats.error("tls_handshake");
            debug!(listener = %route.stats.name, %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            route.stats.error("tls_handshake_timeout");
            debug!(listener = %route.stats.name, %peer, "TLS handshake timed out");
            return;
        }
    };
    let sni: Option<Box<str>> = stream.get_ref().1.server_name().map(Into::into);
    let (peer_id, xfcc) = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        Some(leaf) => Peer::from_certificate(leaf, &route.stats.name, &route.spiffe_id),
        // The verifier requires a certificate; be defensive anyway.
        None => (Peer::Unusable, None),
    };
    let downstream = Downstream {
        peer: peer_id,
        xfcc,
        sni,
        addrs,
    };
    proxy(stream, downstream, route, live, shared).await;
}

/// Resolves once a config change stops allowing `peer` on this listener (`decided` is the
/// route the connection was allowed under). Never resolves once the listener is gone (the
/// connection then runs until it closes).
async fn revoked(
    live: &LiveRoute,
    mut changes: tokio::sync::watch::Receiver<()>,
    decided: &Arc<InboundRoute>,
    peer: &Peer,
    shared: &Shared,
) {
    let mut decided = decided.clone();
    loop {
        let current = live.load_full();
        let still_allowed = match &*current {
            Route::Inbound(latest) if Arc::ptr_eq(latest, &decided) => true,
            Route::Inbound(latest) => {
                decided = latest.clone();
                authorize(shared, latest, peer).decision.is_allowed()
            }
            // The address now serves an outbound: nothing authorizes this caller any more.
            Route::Outbound(_) => false,
        };
        if !still_allowed {
            tracing::info!(listener = %decided.stats.name, "closing a TCP connection its caller is no longer allowed to hold");
            return;
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Peeks at the first byte to tell TLS from plaintext (PERMISSIVE mode). A client that sends
/// nothing within the handshake timeout is treated as plaintext (server-speaks-first
/// protocols). `None`: the connection closed or failed before sending anything.
async fn sniff_tls(stream: &TcpStream, shared: &Shared) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(shared.opts.handshake_timeout, stream.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(_)) => Some(first[0] == TLS_HANDSHAKE),
        Err(_) => Some(false),
    }
}

/// The decisions in force on a connection, for the route (config) they were made under.
struct Decided {
    route: Arc<InboundRoute>,
    authz: ConnAuthz,
    /// MeshFaultInjection: the entries applying to this caller (empty: none).
    faults: Box<[u32]>,
    /// MeshRateLimit: the HTTP bucket this caller's requests take from.
    http_limit: Option<usize>,
    /// MeshAccessLog: the entries logging this caller, and the connection as lines name it
    /// (none: nothing logged).
    log: Option<(Arc<[u16]>, ConnInfo)>,
}

impl Decided {
    fn new(
        shared: &Shared,
        route: Arc<InboundRoute>,
        peer: &Peer,
        sni: Option<&str>,
        addrs: (SocketAddr, SocketAddr),
    ) -> Decided {
        let authz = authorize(shared, &route, peer);
        let caller = Caller {
            identity: match peer {
                Peer::Identity(id) => Some(id),
                _ => None,
            },
            sni,
        };
        let faults = route
            .cfg
            .fault_injection
            .as_ref()
            .map(|f| fault::entries_for(f, &caller))
            .unwrap_or_default();
        let http_limit = route.limiter.as_ref().and_then(|l| l.route_for(&caller));
        let log = route.access_log.as_ref().and_then(|l| {
            let entries = l.entries_for(&caller);
            (!entries.is_empty()).then(|| {
                let conn = ConnInfo::new(addrs.0, addrs.1).with_identity(caller.identity, sni);
                (entries, conn)
            })
        });
        Decided {
            route,
            authz,
            faults,
            http_limit,
            log,
        }
    }

    /// An allowed request: faults, then the rate limit, then the application.
    async fn respond(&self, req: http::Request<RxBody>) -> Response<ProxyBody> {
        let route = &self.route;
        let mut bandwidth = None;
        if let Some(faults) = &route.cfg.fault_injection
            && !self.faults.is_empty()
        {
            // Boxed: its delay timer stays out of every request's state (faults are rare).
            match Box::pin(fault::inject(faults, &self.faults)).await {
                Outcome::Abort(resp) => return *resp,
                Outcome::Forward(b) => bandwidth = b,
            }
        }
        if let (Some(limiter), Some(i)) = (&route.limiter, self.http_limit)
            && let Some(limited) = limiter.check(i)
        {
            return limited;
        }
        let resp = route.app.forward(req).await;
        match bandwidth {
            Some(bps) => resp.map(|b| ProxyBody::Throttled {
                body: Box::new(Throttled::new(b, bps)),
            }),
            None => resp,
        }
    }
}

/// Who is on the other end of a connection, once it is established.
struct Downstream {
    peer: Peer,
    /// The `x-forwarded-client-cert` describing the verified caller.
    xfcc: Option<HeaderValue>,
    /// The TLS server name the caller asked for.
    sni: Option<Box<str>>,
    /// The caller's address and ours.
    addrs: (SocketAddr, SocketAddr),
}

async fn proxy<IO>(
    io: IO,
    downstream: Downstream,
    route: Arc<InboundRoute>,
    live: Arc<LiveRoute>,
    shared: &Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Downstream {
        peer,
        xfcc,
        sni,
        addrs,
    } = downstream;
    if route.cfg.protocol == Protocol::Tcp {
        // Watch for changes from before the decision, so none slips between the two.
        let changes = live.subscribe();
        let decided = Decided::new(shared, route.clone(), &peer, sni.as_deref(), addrs);
        let authz = decided.authz;
        // A TCP stream is authorized when it opens (as Envoy's network RBAC filter does),
        // and again whenever the listener's policies change: one no longer allowed is closed
        // (as ztunnel's policy watcher and Linkerd's inbound policy do).
        authz.record();
        let mut logged = match (&route.access_log, decided.log) {
            (Some(l), Some((entries, conn))) => Some(l.begin_tcp(&conn, entries)),
            _ => None,
        };
        if !authz.decision.is_allowed() {
            if let Some(p) = logged {
                p.finish(0, Some(0), true);
            }
            return; // dropping `io` closes the connection without a byte sent
        }
        let (connected, upstream, flags) = match &logged {
            None => (route.app.connect().await, None, 0),
            Some(_) => accesslog::track(route.app.connect()).await,
        };
        if let Some(p) = &mut logged {
            p.connected(upstream, flags);
        }
        let Some((app, _connection)) = connected else {
            if let Some(p) = logged {
                p.finish(0, Some(0), true);
            }
            return;
        };
        let revoked = revoked(&live, changes, &route, &peer, shared);
        let idle = route.cfg.timeouts.idle();
        let (received, sent) = copy_tcp(shared, io, app, &route.stats, idle, revoked).await;
        if let Some(p) = logged {
            p.finish(sent, Some(received), true);
        }
        return;
    }
    let stats = route.stats.clone();
    let limits = ConnLimits::of(&route.cfg.timeouts);
    let decided = Arc::new(ArcSwap::from_pointee(Decided::new(
        shared,
        route,
        &peer,
        sni.as_deref(),
        addrs,
    )));
    let ctx = Arc::new((peer, xfcc, sni, live, decided, shared.clone(), addrs));
    let svc = service_fn(move |mut req: http::Request<RxBody>| {
        let ctx = ctx.clone();
        async move {
            let (peer, xfcc, sni, live, decided, shared, addrs) = &*ctx;
            // The application hears who called from this proxy only: a caller's own
            // x-forwarded-client-cert is dropped, and the verified caller's set.
            let headers = req.headers_mut();
            headers.remove(XFCC);
            if let Some(v) = xfcc {
                headers.insert(XFCC, v.clone());
            }
            let mut current = decided.load_full();
            // Re-decide only if the listener's config was swapped since (rare).
            if let Route::Inbound(latest) = &**live.load()
                && !Arc::ptr_eq(latest, &current.route)
            {
                current = Arc::new(Decided::new(
                    shared,
                    latest.clone(),
                    peer,
                    sni.as_deref(),
                    *addrs,
                ));
                decided.store(current.clone());
            }
            let route = &current.route;
            route.stats.requests.inc();
            current.authz.record();
            let allowed = current.authz.decision.is_allowed();
            // MeshTrace: the server span (boxed; none when unsampled or untraced).
            let mut span = route.tracer.as_ref().and_then(|t| {
                t.begin(
                    &mut req,
                    meshtrace::Kind::Server,
                    &route.cfg.service,
                    addrs.0,
                )
            });
            // Boxed, so that a request without a log carries one pointer-sized `None`.
            let mut logged = match (&route.access_log, &current.log) {
                (Some(l), Some((entries, conn))) => {
                    Some(Box::new(l.begin(&req, conn, entries.clone())))
                }
                _ => None,
            };
            if let Some(p) = &logged {
                req.body_mut().count_into(p.received());
            }
            // One path for every request: tracking costs two thread-local swaps per poll
            // and a few bytes of the future.
            let (mut resp, upstream, flags) = if allowed {
                accesslog::track(current.respond(req)).await
            } else {
                (rbac_denied(), None, 0)
            };
            crate::body::note_response(
                logged.as_deref_mut(),
                span.as_deref_mut(),
                &resp,
                upstream,
                flags,
            );
            route.stats.response(resp.status());
            if logged.is_some() || span.is_some() {
                resp = resp.map(|b| b.observed(logged.map(|p| *p), span));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    serve_http(shared, io, svc, stats, limits).await;
}
