//! The admin endpoint (Envoy's port 9901 role), bound to loopback by the caller:
//!
//! - `GET /ready`: `200 LIVE` once a config (and, with mTLS, an identity) is in place and the
//!   proxy is not draining, else `503` with the reason; both say whether the control plane is
//!   connected (a proxy keeps serving its last config while disconnected).
//! - `GET /stats/prometheus` (also `/stats`, `/metrics`): Prometheus text.
//! - `GET /config_dump`: the applied `ProxyConfig` and an identity summary (SANs, expiry;
//!   never key material); for a zone ingress, its `IngressConfig`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use crate::proxy::Proxy;

/// What the admin endpoint shows; implemented by the sidecar [`Proxy`] and the zone
/// [`Ingress`](crate::Ingress), which share the paths and their meaning.
pub(crate) trait AdminView: Clone + Send + Sync + 'static {
    /// `None` when ready to serve, else why not.
    fn not_ready_reason(&self) -> Option<&'static str>;
    fn control_plane_connected(&self) -> bool;
    fn prometheus(&self) -> String;
    fn config_dump(&self) -> serde_json::Value;
}

/// Serves the admin API on an already bound listener until the future is dropped.
pub(crate) async fn serve<V: AdminView>(view: V, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let view = view.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let view = view.clone();
                async move { Ok::<_, Infallible>(answer(&view, &req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, "admin connection error");
            }
        });
    }
}

fn answer<V: AdminView>(view: &V, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is supported\n".into(),
        );
    }
    match req.uri().path() {
        "/ready" => ready(view),
        "/stats/prometheus" | "/stats" | "/metrics" => {
            let resp = text(StatusCode::OK, view.prometheus());
            with_content_type(resp, "text/plain; version=0.0.4; charset=utf-8")
        }
        "/config_dump" => {
            let body = serde_json::to_string_pretty(&view.config_dump()).unwrap_or_default();
            with_content_type(text(StatusCode::OK, body), "application/json")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /ready, /stats/prometheus, /config_dump\n".into(),
        ),
    }
}

fn ready<V: AdminView>(view: &V) -> Response<Full<Bytes>> {
    let cp = if view.control_plane_connected() {
        "connected"
    } else {
        "disconnected"
    };
    match view.not_ready_reason() {
        None => text(StatusCode::OK, format!("LIVE\ncontrol plane: {cp}\n")),
        Some(reason) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("NOT READY: {reason}\ncontrol plane: {cp}\n"),
        ),
    }
}

impl AdminView for Proxy {
    fn not_ready_reason(&self) -> Option<&'static str> {
        Proxy::not_ready_reason(self)
    }

    fn control_plane_connected(&self) -> bool {
        Proxy::control_plane_connected(self)
    }

    fn prometheus(&self) -> String {
        Proxy::prometheus(self)
    }

    fn config_dump(&self) -> serde_json::Value {
        Proxy::config_dump(self)
    }
}

impl Proxy {
    /// Serves the admin API on `addr` (normally [`ProxyOptions::admin_address`]) until the
    /// future is dropped.
    ///
    /// [`ProxyOptions::admin_address`]: crate::ProxyOptions::admin_address
    pub async fn serve_admin(&self, addr: SocketAddr) -> io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        self.serve_admin_on(listener).await
    }

    /// Like [`Proxy::serve_admin`], on an already bound listener (port 0 in tests).
    pub async fn serve_admin_on(&self, listener: TcpListener) -> io::Result<()> {
        serve(self.clone(), listener).await
    }

    /// The Prometheus exposition text (what `/stats/prometheus` serves).
    pub fn prometheus(&self) -> String {
        let metrics = &self.inner.shared.metrics;
        let expiry = self.identity().map_or(0, |id| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            id.not_after_unix - now
        });
        metrics.cert_expiry_seconds.set(expiry);
        metrics.encode()
    }

    /// What `/config_dump` serves.
    pub fn config_dump(&self) -> serde_json::Value {
        let applied = self.inner.config.load();
        serde_json::json!({
            "mesh": self.options().mesh,
            "dataplane": self.options().dataplane,
            "version": applied.as_ref().map(|a| a.version.as_str()),
            "config": applied.as_ref().map(|a| &a.config),
            "identity": self.identity(),
            "controlPlaneConnected": self.control_plane_connected(),
            "ready": self.not_ready_reason().is_none(),
        })
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let resp = Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default();
    with_content_type(resp, "text/plain; charset=utf-8")
}

fn with_content_type(mut resp: Response<Full<Bytes>>, ct: &'static str) -> Response<Full<Bytes>> {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}
