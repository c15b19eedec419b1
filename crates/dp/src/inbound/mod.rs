//! Inbound: traffic from other proxies (or, without mTLS, anyone) to the local application.
//!
//! Per connection: establish who the peer is (mTLS handshake, or plaintext per the mesh's
//! mode), decide authorization, then proxy. A denied HTTP connection is still served, so
//! each request gets Envoy's `403 RBAC: access denied`; a denied TCP connection is closed.
//! HTTP connections re-decide when the listener's config is swapped (see [`crate::rbac`]):
//! a permission removed by the control plane stops the very next request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::{MtlsMode, Protocol};
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::body::rbac_denied;
use crate::listener::{InboundRoute, Route, copy_tcp, serve_http};
use crate::proxy::Shared;
use crate::rbac::{ConnAuthz, Peer, authorize};

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<InboundRoute>,
    live: Arc<ArcSwap<Route>>,
    shared: &Arc<Shared>,
) {
    let tls = match route.mtls {
        MtlsMode::Off => return proxy(stream, Peer::MeshWithoutMtls, route, live, shared).await,
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
        return proxy(stream, Peer::Plaintext, route, live, shared).await;
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
    let peer_id = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        Some(leaf) => Peer::from_certificate(leaf, &route.stats.name),
        // The verifier requires a certificate; be defensive anyway.
        None => Peer::Unusable,
    };
    proxy(stream, peer_id, route, live, shared).await;
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

/// The decision in force on a connection, for the route (config) it was made under.
struct Decided {
    route: Arc<InboundRoute>,
    authz: ConnAuthz,
}

async fn proxy<IO>(
    io: IO,
    peer: Peer,
    route: Arc<InboundRoute>,
    live: Arc<ArcSwap<Route>>,
    shared: &Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let authz = authorize(shared, &route, &peer);
    if route.cfg.protocol == Protocol::Tcp {
        // A TCP stream is authorized when it opens (as Envoy's network RBAC filter does).
        authz.record();
        if !authz.decision.is_allowed() {
            return; // dropping `io` closes the connection without a byte sent
        }
        let Some(app) = route.app.connect().await else {
            return;
        };
        return copy_tcp(shared, io, app, &route.stats).await;
    }
    let stats = route.stats.clone();
    let decided = Arc::new(ArcSwap::from_pointee(Decided { route, authz }));
    let ctx = Arc::new((peer, live, decided, shared.clone()));
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            let (peer, live, decided, shared) = &*ctx;
            let mut current = decided.load_full();
            // Re-decide only if the listener's config was swapped since (rare).
            if let Route::Inbound(latest) = &**live.load()
                && !Arc::ptr_eq(latest, &current.route)
            {
                let authz = authorize(shared, latest, peer);
                current = Arc::new(Decided {
                    route: latest.clone(),
                    authz,
                });
                decided.store(current.clone());
            }
            let Decided { route, authz } = &*current;
            route.stats.requests.inc();
            authz.record();
            let resp = if authz.decision.is_allowed() {
                route.app.forward(req).await
            } else {
                rbac_denied()
            };
            route.stats.response(resp.status());
            Ok::<_, Infallible>(resp)
        }
    });
    serve_http(shared, io, svc, &stats).await;
}
