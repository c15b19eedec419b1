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

use crate::accesslog::{self, ConnInfo};
use crate::body::{ProxyBody, local_response};
use crate::lb::SourceIp;
use crate::listener::{ConnLimits, LiveRoute, OutboundRoute, Route, copy_tcp, serve_http};
use crate::meshtrace;
use crate::proxy::Shared;
use crate::stream::RxBody;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<OutboundRoute>,
    live: Arc<LiveRoute>,
    shared: &Shared,
) {
    let local = stream.local_addr().unwrap_or(peer);
    if route.cfg.protocol == Protocol::Tcp {
        let upstreams = match &route.tcp {
            None => &*route.upstreams,
            Some(t) => t.backends.pick().map_or(&*route.upstreams, |u| &**u),
        };
        let mut logged = route
            .access_log
            .as_ref()
            .map(|l| l.begin_tcp(&ConnInfo::new(peer, local), Arc::from([0u16])));
        let (connected, upstream_addr, flags) = match &logged {
            None => (upstreams.connect().await, None, 0),
            Some(_) => accesslog::track(upstreams.connect()).await,
        };
        if let Some(p) = &mut logged {
            p.connected(upstream_addr, flags);
        }
        let Some((upstream, _connection)) = connected else {
            debug!(listener = %route.stats.name, %peer, "no endpoint reachable, closing");
            if let Some(p) = logged {
                p.finish(0, Some(0), true);
            }
            return;
        };
        let (received, sent) = copy_tcp(
            shared,
            stream,
            upstream,
            &route.stats,
            route.cfg.timeouts.idle(),
            std::future::pending(),
        )
        .await;
        if let Some(p) = logged {
            p.finish(sent, Some(received), true);
        }
        return;
    }
    let stats = route.stats.clone();
    let limits = ConnLimits::of(&route.cfg.timeouts);
    // For cookies a hash policy generates (Envoy hashes the connection's two addresses);
    // `local` also for access logs.
    let conn = ConnInfo::new(peer, local);
    // An outbound's log has one entry; the connection shares its list with each request.
    let first: Arc<[u16]> = Arc::from([0u16]);
    // Each request follows the listener's current route: a kept-alive application connection
    // sees new endpoints, and never keeps speaking plaintext after the mesh turned mTLS on.
    let svc = service_fn(move |mut req: http::Request<RxBody>| {
        let current = match &**live.load() {
            Route::Outbound(r) => Some(r.clone()),
            Route::Inbound(_) => None,
        };
        // MeshAccessLog: the record starts here, boxed, so that a request without a log
        // carries one pointer-sized `None` in its future.
        let logged = current.as_ref().and_then(|r| {
            r.access_log
                .as_ref()
                .map(|l| Box::new(l.begin(&req, &conn, first.clone())))
        });
        async move {
            let mut logged = logged;
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
            // MeshTrace: the client span (boxed; none when unsampled or untraced).
            let mut span = route
                .tracer
                .as_ref()
                .and_then(|t| t.begin(&mut req, meshtrace::Kind::Client, &route.cfg.service, peer));
            if let Some(p) = &logged {
                req.body_mut().count_into(p.received());
            }
            // One path for every request: tracking costs two thread-local swaps per poll
            // and a few bytes of the future.
            let (mut resp, upstream, flags) = accesslog::track(forward(&route, req)).await;
            crate::body::note_response(
                logged.as_deref_mut(),
                span.as_deref_mut(),
                &resp,
                upstream,
                flags,
            );
            for c in generated.iter().flat_map(|g| &g.0) {
                if let Ok(v) = http::HeaderValue::from_str(&c.set_cookie()) {
                    resp.headers_mut().append(http::header::SET_COOKIE, v);
                }
            }
            route.stats.response(resp.status());
            if logged.is_some() || span.is_some() {
                resp = resp.map(|b| b.observed(logged.map(|p| *p), span));
            }
            Ok(resp)
        }
    });
    serve_http(shared, stream, svc, stats, limits).await;
}

/// A request through the outbound's routes, or straight to its destination.
async fn forward(route: &OutboundRoute, req: http::Request<RxBody>) -> http::Response<ProxyBody> {
    match &route.routes {
        None => route.upstreams.forward(req).await,
        Some(table) => table.forward(&route.upstreams, req).await,
    }
}
