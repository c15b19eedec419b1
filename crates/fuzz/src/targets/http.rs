//! The proxy's HTTP front: raw bytes from a client through hyper's server, configured as
//! kuma-dp configures it (`auto` HTTP/1 + HTTP/2, no header-read timer), on an in-memory
//! duplex stream; each request the server parses goes through kuma-dp's request preparation
//! (`forward::prepare_request`) for an HTTP/1 and an HTTP/2 upstream. Invariants: no
//! hop-by-hop header survives (nor any header the request's `Connection` names), `te` is only
//! ever `trailers`, and an HTTP/1 upstream gets an origin-form URI.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_dp::fuzzing::{HttpVersion, prepare_request};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{Rng, Target, mutate_bytes};

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n",
    b"GET /path?q=1 HTTP/1.1\r\nHost: backend:8080\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /chunked HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    b"GET http://backend.mesh:80/abs?x=y HTTP/1.1\r\nHost: other\r\nProxy-Connection: keep-alive\r\n\r\n",
    b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: b\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\nGET /second HTTP/1.1\r\nHost: b\r\nTE: gzip\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\nConnection: x-a\r\nX-A: 1\r\nX-Forwarded-Client-Cert: By=spiffe://default/evil\r\n\r\n",
    // HTTP/2 with prior knowledge: preface, SETTINGS, HEADERS (GET / on stream 1, HPACK).
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x0c\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x07backend",
];

const HTTP_TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b": ",
    b"Host: ",
    b"Connection: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 18446744073709551616\r\n",
    b"TE: trailers\r\n",
    b"Upgrade: websocket\r\n",
    b"Keep-Alive: ",
    b"Proxy-Connection: ",
    b"http://",
    b"https://",
    b"[::1]",
    b"@",
    b"%00",
    b"\x00",
    b"\xff",
    b" HTTP/1.1",
    b" HTTP/2.0",
    b"\t",
    b",",
    b"0\r\n\r\n",
];

/// What RFC 9110 §7.6.1 calls connection-specific, which a proxy must not forward.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn headers_named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect()
}

fn check_prepared<B>(req: &Request<B>, named: &[HeaderName], upstream: HttpVersion) {
    let headers = req.headers();
    for name in HOP_BY_HOP {
        assert!(
            !headers.contains_key(name),
            "{upstream:?}: hop-by-hop header {name} forwarded"
        );
    }
    for name in named {
        // `te: trailers` is the one exception (gRPC needs it); checked below.
        if name != header::TE {
            assert!(
                !headers.contains_key(name),
                "{upstream:?}: header {name}, named by Connection, forwarded"
            );
        }
    }
    for te in headers.get_all(header::TE) {
        assert_eq!(te.as_bytes(), b"trailers", "{upstream:?}: te forwarded");
    }
    if upstream == HttpVersion::H1 {
        assert!(
            req.uri().authority().is_none(),
            "HTTP/1 upstream gets a non-origin-form URI {}",
            req.uri()
        );
    }
}

/// kuma-dp's preparation of one request, for both upstream versions, with the invariants.
fn prepare_both(req: Request<Incoming>) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
    let named = headers_named_by_connection(req.headers());
    let mut copy = Request::new(());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    let h2 = prepare_request(copy, HttpVersion::H2, addr);
    check_prepared(&h2, &named, HttpVersion::H2);
    let h1 = prepare_request(req, HttpVersion::H1, addr);
    check_prepared(&h1, &named, HttpVersion::H1);
}

pub struct HttpFront {
    rt: tokio::runtime::Runtime,
    server: auto::Builder<TokioExecutor>,
    /// Connections that had not finished after the time limit (a hang would show here).
    pub timeouts: u64,
    /// Requests hyper parsed and handed to the service.
    pub served: Arc<AtomicU64>,
}

impl HttpFront {
    pub fn new() -> HttpFront {
        // As `aerie_dp::Proxy::new` configures its server.
        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        server.http2().timer(TokioTimer::new());
        HttpFront {
            rt: super::runtime(),
            server,
            timeouts: 0,
            served: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Default for HttpFront {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for HttpFront {
    fn name(&self) -> &'static str {
        "http"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut input = rng.pick(SEEDS).map(|s| s.to_vec()).unwrap_or_default();
        let other = rng.pick(SEEDS).copied().unwrap_or_default();
        mutate_bytes(&mut input, rng, HTTP_TOKENS, other);
        input
    }

    fn run(&mut self, input: &[u8]) {
        let server = &self.server;
        let served = self.served.clone();
        let finished = self.rt.block_on(async {
            let (mut client, io) = tokio::io::duplex(64 * 1024);
            // HTTP/2 streams run in tasks of their own, whose panics tokio would swallow:
            // a failed check is carried out of the connection and raised here.
            let failed = Arc::new(Mutex::new(None::<String>));
            let failed_in_svc = failed.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let failed = failed_in_svc.clone();
                served.fetch_add(1, Ordering::Relaxed);
                async move {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| prepare_both(req))) {
                        let msg = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                    }
                    Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
                }
            });
            let conn = server.serve_connection(TokioIo::new(io), svc);
            let talk = async move {
                let _ = client.write_all(input).await;
                let _ = client.shutdown().await;
                let mut out = Vec::new();
                let _ = client.read_to_end(&mut out).await;
            };
            let finished = tokio::time::timeout(Duration::from_secs(5), async {
                let (_served, ()) = tokio::join!(conn, talk);
            })
            .await
            .is_ok();
            let failed = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
            (finished, failed)
        });
        let (finished, failed) = finished;
        if let Some(msg) = failed {
            panic!("{msg}");
        }
        if !finished {
            self.timeouts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_reach_the_request_preparation() {
        let mut t = HttpFront::new();
        for seed in SEEDS {
            t.run(seed);
        }
        // Every seed is one request but the pipelined one (two) and CONNECT/upgrade ones,
        // which hyper may still hand over: at least one per seed.
        assert!(
            t.served.load(Ordering::Relaxed) >= SEEDS.len() as u64 - 1,
            "{:?}",
            t.served
        );
        assert_eq!(t.timeouts, 0);
    }
}
