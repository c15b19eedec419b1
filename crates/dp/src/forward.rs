//! Forwarding one HTTP request to a set of endpoints (shared by inbound and outbound).

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tracing::debug;

use crate::body::{ProxyBody, local_response};
use crate::lb::RoundRobin;
use crate::metrics::ListenerStats;
use crate::pool::{Connector, EndpointPool, HttpVersion, Upstream};

/// The endpoints behind a listener, balanced round-robin.
pub(crate) struct Upstreams {
    pub pools: Vec<Arc<EndpointPool>>,
    pub rr: RoundRobin,
    pub stats: Arc<ListenerStats>,
    /// MeshTimeout `http.requestTimeout`: from a request's start to its response headers.
    pub request_timeout: Option<std::time::Duration>,
}

impl Upstreams {
    /// Dials the next endpoint that accepts a connection (TCP proxying).
    pub async fn connect(&self) -> Option<Upstream> {
        for i in self.rr.order(self.pools.len()) {
            let pool = self.pools.get(i)?;
            match pool.connector.connect().await {
                Ok(io) => return Some(io),
                Err(e) => self.connect_failed(&pool.connector, &e),
            }
        }
        None
    }

    fn connect_failed(&self, connector: &Connector, e: &dyn std::fmt::Display) {
        self.stats.connect_errors.inc();
        debug!(listener = %self.stats.name, endpoint = %connector.addr, error = %e, "upstream connect failed");
    }

    /// Forwards `req` to the next endpoint that accepts a connection. Never fails: upstream
    /// problems become `503` (nothing reachable), `502` (the exchange broke) or `504` (no
    /// response headers within the request timeout; Envoy's `upstream request timeout`).
    pub async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        match self.request_timeout {
            None => self.forward_untimed(req).await,
            Some(limit) => match tokio::time::timeout(limit, self.forward_untimed(req)).await {
                Ok(resp) => resp,
                Err(_) => {
                    self.stats.error("upstream_request_timeout");
                    local_response(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
                }
            },
        }
    }

    async fn forward_untimed(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let mut chosen = None;
        for i in self.rr.order(self.pools.len()) {
            let Some(pool) = self.pools.get(i) else { break };
            match pool.checkout().await {
                Ok(sender) => {
                    chosen = Some((pool, sender));
                    break;
                }
                Err(e) => self.connect_failed(&pool.connector, &e),
            }
        }
        let Some((pool, sender)) = chosen else {
            let text = if self.pools.is_empty() {
                "no healthy upstream"
            } else {
                "upstream connect error"
            };
            return local_response(StatusCode::SERVICE_UNAVAILABLE, text);
        };
        let req = prepare_request(req, pool.version, pool.connector.addr);
        match pool.send(sender, req).await {
            Ok(resp) => {
                let mut resp = resp.map(ProxyBody::Upstream);
                strip_hop_by_hop(resp.headers_mut());
                *resp.version_mut() = Version::HTTP_11;
                resp
            }
            Err(e) => {
                self.stats.error("upstream_request");
                debug!(listener = %self.stats.name, endpoint = %pool.connector.addr, error = %e, "upstream request failed");
                local_response(
                    StatusCode::BAD_GATEWAY,
                    "upstream connect error or disconnect/reset before headers",
                )
            }
        }
    }
}

/// Rewrites a request for the upstream's HTTP version: origin-form URI and `Host` for
/// HTTP/1.1, absolute URI (`:scheme`/`:authority`) for HTTP/2; hop-by-hop headers removed.
pub fn prepare_request<B>(
    mut req: Request<B>,
    version: HttpVersion,
    addr: std::net::SocketAddr,
) -> Request<B> {
    strip_hop_by_hop(req.headers_mut());
    match version {
        HttpVersion::H1 => {
            *req.version_mut() = Version::HTTP_11;
            if req.uri().authority().is_some() {
                if !req.headers().contains_key(header::HOST)
                    && let Some(host) = req
                        .uri()
                        .authority()
                        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                {
                    req.headers_mut().insert(header::HOST, host);
                }
                let path = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(path);
            }
        }
        HttpVersion::H2 => {
            *req.version_mut() = Version::HTTP_2;
            if req.uri().scheme().is_none() || req.uri().authority().is_none() {
                let authority = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    .or_else(|| Authority::try_from(addr.to_string()).ok());
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = authority;
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                }
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    req
}

/// Typed names, so removing them hashes a known name instead of parsing a string.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes connection-scoped headers (RFC 9110 §7.6.1): the fixed ones and every header
/// any `Connection` field names (all of its lines; a value with non-ASCII bytes still names
/// the options it lists). `te: trailers` survives unless named: gRPC needs it.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers_but_keeps_te_trailers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["te", "x-kept"]);

        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    /// Found by fuzzing (`aerie-fuzz`, target `http`): only the first `Connection` line was
    /// read, and not at all when it held a non-ASCII byte, so a client could have a header it
    /// declared connection-specific forwarded to the application.
    #[test]
    fn every_connection_line_names_headers_to_strip() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("close"));
        h.append("connection", HeaderValue::from_static("x-a"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);

        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_bytes(b"keep-aliv\x8e, x-secret").unwrap(),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
