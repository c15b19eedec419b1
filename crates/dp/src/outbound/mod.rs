//! Outbound: the local application's traffic to a mesh service, balanced over the service's
//! endpoints (other proxies' inbounds), over mTLS when the mesh has it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aerie_core::proxy_config::Protocol;
use hyper::service::service_fn;
use tokio::net::TcpStream;
use tracing::debug;

use crate::listener::{OutboundRoute, copy_tcp, serve_http};
use crate::proxy::Shared;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<OutboundRoute>,
    shared: &Shared,
) {
    if route.cfg.protocol == Protocol::Tcp {
        let Some(upstream) = route.upstreams.connect().await else {
            debug!(listener = %route.stats.name, %peer, "no endpoint reachable, closing");
            return;
        };
        return copy_tcp(shared, stream, upstream, &route.stats, std::future::pending()).await;
    }
    let stats = route.stats.clone();
    let svc = service_fn(move |req| {
        let route = route.clone();
        async move {
            route.stats.requests.inc();
            let resp = route.upstreams.forward(req).await;
            route.stats.response(resp.status());
            Ok::<_, Infallible>(resp)
        }
    });
    serve_http(shared, stream, svc, &stats).await;
}
