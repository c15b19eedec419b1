//! Outbound: the local application's traffic to a mesh service, balanced over the service's
//! endpoints (other proxies' inbounds), over mTLS when the mesh has it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::Protocol;
use http::StatusCode;
use hyper::service::service_fn;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::local_response;
use crate::lb::SourceIp;
use crate::listener::{ConnLimits, LiveRoute, OutboundRoute, Route, copy_tcp, serve_http};
use crate::proxy::Shared;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<OutboundRoute>,
    live: Arc<LiveRoute>,
    shared: &Shared,
) {
    if route.cfg.protocol == Protocol::Tcp {
        let upstreams = match &route.tcp {
            None => &*route.upstreams,
            Some(t) => t.backends.pick().map_or(&*route.upstreams, |u| &**u),
        };
        let Some((upstream, _connection)) = upstreams.connect().await else {
            debug!(listener = %route.stats.name, %peer, "no endpoint reachable, closing");
            return;
        };
        return copy_tcp(
            shared,
            stream,
            upstream,
            &route.stats,
            route.cfg.timeouts.idle(),
            std::future::pending(),
        )
        .await;
    }
    let stats = route.stats.clone();
    let limits = ConnLimits::of(&route.cfg.timeouts);
    // For cookies a hash policy generates (Envoy hashes the connection's two addresses).
    let local = stream.local_addr().unwrap_or(peer);
    // Each request follows the listener's current route: a kept-alive application connection
    // sees new endpoints, and never keeps speaking plaintext after the mesh turned mTLS on.
    let svc = service_fn(move |mut req: http::Request<_>| {
        let current = match &**live.load() {
            Route::Outbound(r) => Some(r.clone()),
            Route::Inbound(_) => None,
        };
        async move {
            let Some(route) = current else {
                // The address now serves an inbound: this connection has no destination.
                return Ok::<_, Infallible>(local_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy upstream",
                ));
            };
            route.stats.requests.inc();
            // Only a balancer hashing the source address gets it (an extension allocates).
            if route.upstreams.lb.wants_source_ip() {
                req.extensions_mut().insert(SourceIp(peer.ip()));
            }
            // A missing sticky-session cookie is generated (RingHash/Maglev on a cookie
            // with a `ttl`) and set on the response.
            let generated = if route.upstreams.lb.generates_cookies() {
                let g =
                    route
                        .upstreams
                        .lb
                        .cookies_to_generate(req.headers(), req.uri(), peer, local);
                if let Some(g) = &g {
                    req.extensions_mut().insert(g.clone());
                }
                g
            } else {
                None
            };
            let mut resp = match &route.routes {
                None => route.upstreams.forward(req).await,
                Some(table) => table.forward(&route.upstreams, req).await,
            };
            for c in generated.iter().flat_map(|g| &g.0) {
                if let Ok(v) = http::HeaderValue::from_str(&c.set_cookie()) {
                    resp.headers_mut().append(http::header::SET_COOKIE, v);
                }
            }
            route.stats.response(resp.status());
            Ok(resp)
        }
    });
    serve_http(shared, stream, svc, stats, limits).await;
}
