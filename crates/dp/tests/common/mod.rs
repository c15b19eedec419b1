//! Test fixtures: a per-mesh CA, workload identities, tiny HTTP and TCP apps, proxy configs
//! and clients. Everything runs on loopback with ports picked by the kernel.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aerie_core::policies::meshtimeout::Timeouts;
use aerie_core::policies::meshtrafficpermission::{AuthzMode, Grant, InboundAuthz};
use aerie_core::proxy_config::{
    Endpoint, InboundConfig, MtlsMode, OutboundConfig, Protocol, ProxyConfig,
};
use aerie_dp::{Identity, Proxy, ProxyOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const MESH: &str = "default";

/// A mesh CA issuing workload certificates the way the control plane does.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(mesh: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![format!("spiffe://{mesh}")]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Kuma");
        params.distinguished_name.push(DnType::CommonName, mesh);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // Only the URI SAN; CertificateParams::new made it a DNS name.
        params.subject_alt_names =
            vec![SanType::URI(format!("spiffe://{mesh}").try_into().unwrap())];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
        }
    }

    /// A workload identity for `service`: `spiffe://<mesh>/<service>` plus `kuma://` tags.
    pub fn identity(&self, mesh: &str, service: &str) -> Identity {
        let mut sans = vec![
            format!("spiffe://{mesh}/{service}"),
            format!("kuma://kuma.io/service/{service}"),
        ];
        sans.push("kuma://version/v1".to_owned());
        self.identity_with_sans(&sans)
    }

    pub fn identity_with_sans(&self, sans: &[String]) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(sans).signed_by(&key, &self.issuer).unwrap();
        Identity {
            chain: vec![cert.der().clone()],
            key: private_key(&key),
            trust_anchors: vec![self.cert.clone()],
        }
    }
}

fn leaf_params(sans: &[String]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = sans
        .iter()
        .map(|s| SanType::URI(s.clone().try_into().unwrap()))
        .collect();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A self-signed leaf (no CA) with a SPIFFE ID: chains to nothing the mesh trusts.
pub fn self_signed(service: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(&[format!("spiffe://{MESH}/{service}")])
        .self_signed(&key)
        .unwrap();
    (cert.der().clone(), private_key(&key))
}

pub use aerie_testkit::free_addr;

/// Polls `f` until it returns `Some`, for at most 10 s (of tokio time).
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    aerie_testkit::eventually(what, Duration::from_secs(10), f).await
}

/// A tiny HTTP app (h1 and h2): answers `200 <name> <path>`; `/slow?ms=N` waits first.
pub struct HttpApp {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    pub conns: Arc<AtomicUsize>,
}

impl HttpApp {
    pub async fn start(name: &str) -> HttpApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let name: Arc<str> = name.into();
        let counter = hits.clone();
        let conns = Arc::new(AtomicUsize::new(0));
        let accepted = conns.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let name = name.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let name = name.clone();
                        let counter = counter.clone();
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            if let Some(ms) = req
                                .uri()
                                .query()
                                .and_then(|q| q.strip_prefix("ms="))
                                .and_then(|v| v.parse::<u64>().ok())
                            {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let text = format!("{name} {}", String::from_utf8_lossy(&body));
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        HttpApp { addr, hits, conns }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// A TCP echo app.
pub async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// The HTTP response a client got, or why it got none.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: Option<String>,
}

/// One HTTP/1.1 request on a fresh connection. `Err` = no HTTP response.
pub async fn http_request(addr: SocketAddr, path: &str, body: &str) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let method = if body.is_empty() { "GET" } else { "POST" };
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.local")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| format!("request: {e}"))?;
    read_reply(resp).await
}

/// One HTTP/2 (prior knowledge) request on a fresh connection.
pub async fn h2_request(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri(format!("http://app.local{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    read_reply(resp).await
}

async fn read_reply(resp: hyper::Response<Incoming>) -> Result<Reply, String> {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type,
    })
}

/// Sends `data` over a fresh TCP connection and reads until EOF or `want` bytes.
pub async fn tcp_roundtrip(addr: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(data).await?;
    let mut buf = vec![0u8; data.len()];
    let mut read = 0;
    while read < buf.len() {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[read..]))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        if n == 0 {
            break;
        }
        read += n;
    }
    buf.truncate(read);
    Ok(buf)
}

/// Authorization granting exactly these caller services (mTLS on).
pub fn allow(port: u16, services: &[&str]) -> InboundAuthz {
    let mut authz = InboundAuthz::allow_all(u32::from(port), MESH);
    authz.mode = AuthzMode::Enforce;
    authz.services = services
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                Grant {
                    shadow_deny: false,
                    policies: vec![],
                },
            )
        })
        .collect();
    authz
}

/// Like [`allow`], through `AllowWithShadowDeny`.
pub fn allow_shadow(port: u16, services: &[&str]) -> InboundAuthz {
    let mut authz = allow(port, services);
    for g in authz.services.values_mut() {
        g.shadow_deny = true;
    }
    authz
}

pub fn inbound(
    service: &str,
    listen: SocketAddr,
    app: SocketAddr,
    protocol: Protocol,
    authz: InboundAuthz,
) -> InboundConfig {
    InboundConfig {
        name: format!("{service}-{}", listen.port()),
        address: listen.ip().to_string(),
        port: listen.port(),
        service_address: app.ip().to_string(),
        service_port: app.port(),
        service: service.to_owned(),
        protocol,
        tags: BTreeMap::from([("kuma.io/service".to_owned(), service.to_owned())]),
        ready: true,
        authz,
        timeouts: Default::default(),
        fault_injection: None,
        rate_limit: None,
        access_log: None,
    }
}

pub fn outbound(
    service: &str,
    listen: SocketAddr,
    protocol: Protocol,
    endpoints: &[SocketAddr],
) -> OutboundConfig {
    OutboundConfig {
        load_balancer: None,
        address: listen.ip().to_string(),
        port: listen.port(),
        service: service.to_owned(),
        protocol,
        spiffe_id: format!("spiffe://{MESH}/{service}"),
        sni: aerie_core::multizone::service_sni(MESH, service),
        endpoints: endpoints
            .iter()
            .map(|e| Endpoint {
                zone: None,
                address: e.ip().to_string(),
                port: e.port(),
                dataplane: format!("dp-{}", e.port()),
                tags: Default::default(),
            })
            .collect(),
        timeouts: Default::default(),
        retry: Default::default(),
        circuit_breaker: Default::default(),
        health_check: None,
        http_routes: None,
        tcp_routes: None,
        access_log: None,
    }
}

pub fn config(
    name: &str,
    mtls: MtlsMode,
    inbounds: Vec<InboundConfig>,
    outbounds: Vec<OutboundConfig>,
) -> ProxyConfig {
    ProxyConfig {
        mesh: MESH.to_owned(),
        name: name.to_owned(),
        mtls,
        inbounds,
        outbounds,
        outbound_policies: Vec::new(),
        metrics: None,
        tracing: None,
    }
}

pub fn proxy(name: &str) -> Proxy {
    proxy_with(name, |_| {})
}

/// [`proxy`] with options changed by `tweak`.
pub fn proxy_with(name: &str, tweak: impl Fn(&mut ProxyOptions)) -> Proxy {
    let mut opts = ProxyOptions::new(MESH, name);
    opts.drain_timeout = Duration::from_secs(5);
    // Two workers, so connections of one test really do run on several threads.
    opts.workers = 2;
    tweak(&mut opts);
    Proxy::new(opts).expect("start the proxy's workers")
}

/// A "client" proxy (outbound to `backend`) and a "server" proxy (inbound for `backend`).
pub struct Pair {
    pub client: Proxy,
    pub server: Proxy,
    /// Where the application calls `backend` (the client proxy's outbound).
    pub outbound: SocketAddr,
    /// The server proxy's inbound.
    pub inbound: SocketAddr,
    pub app: SocketAddr,
    pub server_config: ProxyConfig,
}

/// Builds the pair for `protocol`, `mtls` and `authz`; identities `web` (client) and
/// `backend` (server) from `ca` when mTLS is on.
pub async fn pair(
    ca: &TestCa,
    mtls: MtlsMode,
    protocol: Protocol,
    app: SocketAddr,
    authz: impl FnOnce(u16) -> InboundAuthz,
) -> Pair {
    pair_with(ca, mtls, protocol, app, authz, |_| {}).await
}

/// [`pair`] with both proxies' options changed by `tweak`.
pub async fn pair_with(
    ca: &TestCa,
    mtls: MtlsMode,
    protocol: Protocol,
    app: SocketAddr,
    authz: impl FnOnce(u16) -> InboundAuthz,
    tweak: impl Fn(&mut ProxyOptions),
) -> Pair {
    pair_with_timeouts(ca, mtls, protocol, app, authz, tweak, Timeouts::default()).await
}

/// [`pair_with`], both listeners (the server's inbound, the client's outbound) with
/// `timeouts` (what MeshTimeout would set).
pub async fn pair_with_timeouts(
    ca: &TestCa,
    mtls: MtlsMode,
    protocol: Protocol,
    app: SocketAddr,
    authz: impl FnOnce(u16) -> InboundAuthz,
    tweak: impl Fn(&mut ProxyOptions),
    timeouts: Timeouts,
) -> Pair {
    let inbound_addr = free_addr();
    let outbound_addr = free_addr();
    let client = proxy_with("web-1", &tweak);
    let server = proxy_with("backend-1", &tweak);
    if mtls != MtlsMode::Off {
        client.apply_identity(ca.identity(MESH, "web")).unwrap();
        server.apply_identity(ca.identity(MESH, "backend")).unwrap();
    }
    let server_config = config(
        "backend-1",
        mtls,
        vec![InboundConfig {
            timeouts,
            ..inbound(
                "backend",
                inbound_addr,
                app,
                protocol,
                authz(inbound_addr.port()),
            )
        }],
        vec![],
    );
    server.apply_config("1", server_config.clone()).unwrap();
    client
        .apply_config(
            "1",
            config(
                "web-1",
                mtls,
                vec![],
                vec![OutboundConfig {
                    timeouts,
                    ..outbound("backend", outbound_addr, protocol, &[inbound_addr])
                }],
            ),
        )
        .unwrap();
    Pair {
        client,
        server,
        outbound: outbound_addr,
        inbound: inbound_addr,
        app,
        server_config,
    }
}

/// A rustls client config for poking at an inbound directly: accepts any server certificate
/// (recording nothing) and presents `client_cert` if given.
pub fn raw_tls_client(
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(aerie_identity::verify::InsecureServerVerifier::new());
    let mut config = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `addr` with TLS, sends an HTTP/1.1 GET and returns what came back (possibly
/// nothing): `Err` when the handshake itself failed. Also returns the server's leaf.
pub async fn raw_tls_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<(String, CertificateDer<'static>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let _ = tls
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok((String::from_utf8_lossy(&out).into_owned(), leaf))
}

/// Fetches an admin path.
pub async fn admin_get(addr: SocketAddr, path: &str) -> Reply {
    http_request(addr, path, "").await.unwrap()
}

/// Starts the admin server of `proxy` on a free port.
pub async fn start_admin(proxy: &Proxy) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = proxy.clone();
    tokio::spawn(async move { proxy.serve_admin_on(listener).await });
    addr
}

/// What a [`ScriptedApp`] does with its `n`th request (0-based): answer `status` after
/// `delay`, echoing the request body.
pub type Script = dyn Fn(usize) -> (u16, Duration) + Send + Sync;

/// An HTTP/1 app whose answers follow a script (flaky, failing or slow upstreams).
pub struct ScriptedApp {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub conns: Arc<AtomicUsize>,
}

impl ScriptedApp {
    pub async fn start(script: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (counter, accepted) = (hits.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (counter, script) = (counter.clone(), script.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let (counter, script) = (counter.clone(), script.clone());
                        async move {
                            let n = counter.fetch_add(1, Ordering::SeqCst);
                            let (status, delay) = script(n);
                            tokio::time::sleep(delay).await;
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let mut resp = hyper::Response::new(Full::new(body));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ScriptedApp { addr, hits, conns }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 request with `method` and `body`: status, body and the response headers.
pub async fn request_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes, hyper::HeaderMap), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.local")
        .body(Full::new(body))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((parts.status.as_u16(), body, parts.headers))
}
