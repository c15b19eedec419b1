//! The zone ingress engine with real sockets on loopback: routing by TLS server name without
//! terminating TLS, round robin, refusals, config swaps, drain, and the sidecar outbound's
//! SNI that the ingress routes on.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_core::multizone::service_sni;
use aerie_core::proxy_config::{Endpoint, IngressConfig, IngressRoute, MtlsMode, Protocol};
use aerie_dp::{Identity, Ingress, IngressOptions};
use common::*;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// What a backend saw on one connection.
#[derive(Debug, Clone)]
struct Seen {
    sni: Option<String>,
    client_leaf: Option<CertificateDer<'static>>,
}

/// A TLS server standing in for a sidecar inbound: it requires a mesh client certificate,
/// records the SNI and the client's certificate, greets with its name and echoes.
struct TlsBackend {
    addr: SocketAddr,
    leaf: CertificateDer<'static>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsBackend {
    async fn start(ca: &TestCa, ip: &str, service: &str, name: &str) -> TlsBackend {
        let id = ca.identity(MESH, service);
        let leaf = id.chain[0].clone();
        let verifier = aerie_identity::verify::client_cert_verifier(&id.trust_anchors).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(id.chain, id.key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, greeting) = (seen.clone(), format!("{name}\n"));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, log, greeting) = (acceptor.clone(), log.clone(), greeting.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let conn = tls.get_ref().1;
                    log.lock().unwrap().push(Seen {
                        sni: conn.server_name().map(str::to_owned),
                        client_leaf: conn.peer_certificates().map(|c| c[0].clone()),
                    });
                    if tls.write_all(greeting.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TlsBackend { addr, leaf, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A client of the mesh (`web`): presents its certificate, accepts any server certificate
/// so the test can look at which one it got.
fn client_config(id: Identity) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(aerie_identity::verify::InsecureServerVerifier::new())
        .with_client_auth_cert(id.chain, id.key)
        .unwrap();
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    sni: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connect = tokio_rustls::TlsConnector::from(config).connect(sni, tcp);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("handshake: {e}")),
        Err(_) => Err("handshake timed out".into()),
    }
}

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).unwrap()
}

/// Reads one `\n`-terminated line.
async fn read_line<S: AsyncReadExt + Unpin>(s: &mut S) -> Result<String, String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&out)));
        }
        if byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(byte[0]);
    }
}

/// Through the ingress with `sni`: the backend's greeting, the certificate the client saw,
/// and the stream (to keep using).
async fn via_ingress(
    ingress: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<(String, CertificateDer<'static>, TlsStream<TcpStream>), String> {
    let mut tls = tls_connect(ingress, dns(sni), config).await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let name = read_line(&mut tls).await?;
    Ok((name, leaf, tls))
}

/// Whether the peer closes the connection without sending anything.
async fn closed_without_data(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

fn route(service: &str, endpoints: &[SocketAddr]) -> IngressRoute {
    IngressRoute {
        sni: service_sni(MESH, service),
        mesh: MESH.into(),
        service: service.into(),
        endpoints: endpoints
            .iter()
            .map(|e| Endpoint {
                zone: None,
                address: e.ip().to_string(),
                port: e.port(),
                dataplane: format!("{service}-{}", e.port()),
                tags: Default::default(),
            })
            .collect(),
    }
}

fn ingress_config(mut routes: Vec<IngressRoute>) -> IngressConfig {
    routes.sort_by(|a, b| a.sni.cmp(&b.sni));
    IngressConfig {
        name: "ingress-1".into(),
        routes,
    }
}

/// An ingress listening on `ip` (port picked by the kernel).
async fn start_ingress(ip: &str, tweak: impl FnOnce(&mut IngressOptions)) -> (Ingress, SocketAddr) {
    let mut opts = IngressOptions::new("ingress-1");
    opts.drain_timeout = Duration::from_secs(5);
    tweak(&mut opts);
    let ingress = Ingress::new(opts);
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = ingress.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (ingress, addr)
}

/// `backend` (one endpoint on `backend_ip`) behind an ingress on `ingress_ip` with options
/// changed by `tweak`, configured with that one route.
async fn routed_ingress(
    ca: &TestCa,
    ingress_ip: &str,
    backend_ip: &str,
    tweak: impl FnOnce(&mut IngressOptions),
) -> (TlsBackend, Ingress, SocketAddr) {
    let backend = TlsBackend::start(ca, backend_ip, "backend", "backend-1").await;
    let (ingress, addr) = start_ingress(ingress_ip, tweak).await;
    ingress
        .apply_config("1", ingress_config(vec![route("backend", &[backend.addr])]))
        .unwrap();
    (backend, ingress, addr)
}

/// The value of the metric line starting with `prefix` (labels included), 0 if absent.
fn metric(ingress: &Ingress, prefix: &str) -> u64 {
    ingress
        .prometheus()
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

fn refused(ingress: &Ingress, reason: &str) -> u64 {
    metric(
        ingress,
        &format!("aerie_dp_ingress_refused_connections_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn routes_by_sni_and_tls_stays_end_to_end() {
    let ca = TestCa::new(MESH);
    let backend = TlsBackend::start(&ca, "127.0.0.21", "backend", "backend-1").await;
    let other = TlsBackend::start(&ca, "127.0.0.22", "other", "other-1").await;
    let (ingress, addr) = start_ingress("127.0.0.20", |_| {}).await;
    ingress
        .apply_config(
            "1",
            ingress_config(vec![
                route("backend", &[backend.addr]),
                route("other", &[other.addr]),
            ]),
        )
        .unwrap();
    let web = ca.identity(MESH, "web");
    let web_leaf = web.chain[0].clone();
    let client = client_config(web);

    let (name, server_leaf, mut tls) = via_ingress(addr, "backend.default.mesh", client.clone())
        .await
        .unwrap();
    assert_eq!(name, "backend-1");
    // The client got the backend's own certificate: the ingress did not terminate TLS...
    assert_eq!(server_leaf, backend.leaf);
    // ...and the backend got the client's, with the server name the client sent.
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sni.as_deref(), Some("backend.default.mesh"));
    assert_eq!(seen[0].client_leaf.as_ref(), Some(&web_leaf));
    tls.write_all(b"ping\n").await.unwrap();
    assert_eq!(read_line(&mut tls).await.unwrap(), "ping");

    let (name, server_leaf, _tls) = via_ingress(addr, "other.default.mesh", client.clone())
        .await
        .unwrap();
    assert_eq!(name, "other-1");
    assert_eq!(server_leaf, other.leaf);
    // Server names are matched as DNS names: case-insensitively.
    let (name, _, _) = via_ingress(addr, "OTHER.Default.mesh", client)
        .await
        .unwrap();
    assert_eq!(name, "other-1");

    let forwarded = "aerie_dp_ingress_connections_total{mesh=\"default\",service=";
    assert_eq!(metric(&ingress, &format!("{forwarded}\"backend\"}}")), 1);
    assert_eq!(metric(&ingress, &format!("{forwarded}\"other\"}}")), 2);
    assert_eq!(metric(&ingress, "aerie_dp_ingress_routes"), 2);
}

#[tokio::test]
async fn round_robin_over_endpoints_skipping_dead_ones() {
    let ca = TestCa::new(MESH);
    let a = TlsBackend::start(&ca, "127.0.0.24", "backend", "a").await;
    let b = TlsBackend::start(&ca, "127.0.0.25", "backend", "b").await;
    let (ingress, addr) = start_ingress("127.0.0.23", |_| {}).await;
    ingress
        .apply_config(
            "1",
            ingress_config(vec![route("backend", &[a.addr, b.addr])]),
        )
        .unwrap();
    let client = client_config(ca.identity(MESH, "web"));
    let mut names = Vec::new();
    for _ in 0..4 {
        let (name, _, _) = via_ingress(addr, "backend.default.mesh", client.clone())
            .await
            .unwrap();
        names.push(name);
    }
    assert_eq!(names, ["a", "b", "a", "b"]);
    assert_eq!((a.seen().len(), b.seen().len()), (2, 2));

    // An endpoint that refuses connections is skipped (and counted).
    let dead = free_addr();
    ingress
        .apply_config("2", ingress_config(vec![route("backend", &[dead, b.addr])]))
        .unwrap();
    for _ in 0..2 {
        let (name, _, _) = via_ingress(addr, "backend.default.mesh", client.clone())
            .await
            .unwrap();
        assert_eq!(name, "b");
    }
    assert!(
        metric(
            &ingress,
            "aerie_dp_ingress_upstream_connect_errors_total{mesh=\"default\",service=\"backend\"}"
        ) >= 1
    );
    // No endpoint at all: closed.
    ingress
        .apply_config("3", ingress_config(vec![route("backend", &[dead])]))
        .unwrap();
    assert!(
        via_ingress(addr, "backend.default.mesh", client)
            .await
            .is_err()
    );
    assert_eq!(refused(&ingress, "no_healthy_upstream"), 1);
}

/// A ClientHello as a real client sends it.
fn client_hello_bytes(sni: &str) -> Vec<u8> {
    let mut conn = rustls::ClientConnection::new(
        client_config(TestCa::new(MESH).identity(MESH, "web")),
        dns(sni),
    )
    .unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[tokio::test]
async fn unroutable_connections_are_closed_and_counted() {
    let ca = TestCa::new(MESH);
    let (backend, ingress, addr) = routed_ingress(&ca, "127.0.0.26", "127.0.0.27", |_| {}).await;
    let client = client_config(ca.identity(MESH, "web"));

    // An unknown server name, and none at all (an IP address is never sent as SNI).
    assert!(
        tls_connect(addr, dns("unknown.default.mesh"), client.clone())
            .await
            .is_err()
    );
    assert!(
        tls_connect(addr, ServerName::IpAddress(addr.ip().into()), client)
            .await
            .is_err()
    );
    // Plaintext HTTP, garbage that looks like a TLS record, and a peer that sends nothing
    // but closes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_without_data(plain).await);
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04abcd")
        .await
        .unwrap();
    assert!(closed_without_data(garbage).await);
    drop(TcpStream::connect(addr).await.unwrap());

    eventually("every refusal counted", || async {
        let counts = [
            refused(&ingress, "no_route"),
            refused(&ingress, "no_sni"),
            refused(&ingress, "not_tls"),
            refused(&ingress, "bad_client_hello"),
            refused(&ingress, "closed_before_client_hello"),
        ];
        (counts == [1, 1, 1, 1, 1]).then_some(())
    })
    .await;
    assert!(backend.seen().is_empty(), "nothing reached the backend");
    assert_eq!(metric(&ingress, "aerie_dp_ingress_active_connections"), 0);
}

#[tokio::test]
async fn a_client_hello_that_never_completes_is_closed_after_the_timeout() {
    let ca = TestCa::new(MESH);
    let (backend, ingress, addr) = routed_ingress(&ca, "127.0.0.28", "127.0.0.29", |o| {
        o.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let hello = client_hello_bytes("backend.default.mesh");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&hello[..hello.len() / 2]).await.unwrap();
    // Then silence: the ingress must give up on its own (the read below allows 10 s).
    assert!(closed_without_data(stream).await);
    assert_eq!(refused(&ingress, "client_hello_timeout"), 1);
    assert!(backend.seen().is_empty());
}

#[tokio::test]
async fn no_config_refuses_and_a_new_config_applies_to_new_connections() {
    let ca = TestCa::new(MESH);
    let first = TlsBackend::start(&ca, "127.0.0.31", "backend", "first").await;
    let second = TlsBackend::start(&ca, "127.0.0.32", "backend", "second").await;
    let (ingress, addr) = start_ingress("127.0.0.30", |_| {}).await;
    let admin = start_ingress_admin(&ingress).await;
    let client = client_config(ca.identity(MESH, "web"));

    // Before any config: every connection is closed, and the ingress is not ready.
    assert!(
        via_ingress(addr, "backend.default.mesh", client.clone())
            .await
            .is_err()
    );
    assert_eq!(refused(&ingress, "no_config"), 1);
    let ready = admin_get(admin, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);

    ingress
        .apply_config("1", ingress_config(vec![route("backend", &[first.addr])]))
        .unwrap();
    assert_eq!(admin_get(admin, "/ready").await.status, 200);
    let (name, _, mut open) = via_ingress(addr, "backend.default.mesh", client.clone())
        .await
        .unwrap();
    assert_eq!(name, "first");

    ingress
        .apply_config("2", ingress_config(vec![route("backend", &[second.addr])]))
        .unwrap();
    let (name, _, _) = via_ingress(addr, "backend.default.mesh", client)
        .await
        .unwrap();
    assert_eq!(name, "second");
    // The connection opened under the first config still reaches its backend.
    open.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_line(&mut open).await.unwrap(), "still here");

    let dump = admin_get(admin, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    assert_eq!(dump["version"], "2");
    assert_eq!(dump["config"]["routes"][0]["sni"], "backend.default.mesh");
    assert_eq!(
        dump["config"]["routes"][0]["endpoints"][0]["port"],
        second.addr.port()
    );
    let stats = admin_get(admin, "/stats/prometheus").await.body;
    for name in [
        "aerie_dp_ingress_connections_total",
        "aerie_dp_ingress_refused_connections_total",
        "aerie_dp_ingress_upstream_connect_errors_total",
        "aerie_dp_ingress_active_connections",
        "aerie_dp_config_version_info{version=\"2\"} 1",
    ] {
        assert!(stats.contains(name), "{name} missing from\n{stats}");
    }
}

async fn start_ingress_admin(ingress: &Ingress) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ingress = ingress.clone();
    tokio::spawn(async move { ingress.serve_admin_on(listener).await });
    addr
}

#[tokio::test]
async fn drain_stops_accepting_and_waits_for_open_connections() {
    let ca = TestCa::new(MESH);
    let (_backend, ingress, addr) = routed_ingress(&ca, "127.0.0.33", "127.0.0.34", |_| {}).await;
    let client = client_config(ca.identity(MESH, "web"));
    let (_, _, mut open) = via_ingress(addr, "backend.default.mesh", client)
        .await
        .unwrap();
    let draining = ingress.clone();
    let drained = tokio::spawn(async move { draining.drain().await });
    eventually("the listener to close", || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(ingress.not_ready_reason().is_some());
    // The open connection still works until its client closes it.
    open.write_all(b"during drain\n").await.unwrap();
    assert_eq!(read_line(&mut open).await.unwrap(), "during drain");
    assert!(!drained.is_finished());
    drop(open);
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("drain ends once the last connection closed")
        .unwrap();
    assert!(ingress.apply_config("2", ingress_config(vec![])).is_err());
}

#[tokio::test]
async fn outbound_sends_the_configured_sni_and_keeps_verifying_the_spiffe_id() {
    let ca = TestCa::new(MESH);
    let backend = TlsBackend::start(&ca, "127.0.0.35", "backend", "backend-1").await;
    let client = proxy("web-1");
    client.apply_identity(ca.identity(MESH, "web")).unwrap();
    let with_sni = free_addr();
    let without_sni = free_addr();
    let wrong_id = free_addr();
    let mut legacy = outbound("backend", without_sni, Protocol::Tcp, &[backend.addr]);
    legacy.sni.clear();
    let mut impostor = outbound("backend", wrong_id, Protocol::Tcp, &[backend.addr]);
    impostor.spiffe_id = format!("spiffe://{MESH}/somebody-else");
    impostor.sni = service_sni(MESH, "somebody-else");
    client
        .apply_config(
            "1",
            config(
                "web-1",
                MtlsMode::Strict,
                vec![],
                vec![
                    outbound("backend", with_sni, Protocol::Tcp, &[backend.addr]),
                    legacy,
                    impostor,
                ],
            ),
        )
        .unwrap();
    for addr in [with_sni, without_sni] {
        let mut app = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_line(&mut app).await.unwrap(), "backend-1");
    }
    let seen: Vec<Option<String>> = backend.seen().into_iter().map(|s| s.sni).collect();
    assert_eq!(seen, [Some("backend.default.mesh".to_owned()), None]);
    // The server name is not what is verified: a peer without the expected SPIFFE ID is
    // still refused.
    let app = TcpStream::connect(wrong_id).await.unwrap();
    assert!(closed_without_data(app).await);
}

#[tokio::test]
async fn sidecar_to_ingress_to_sidecar_carries_the_callers_identity() {
    let ca = TestCa::new(MESH);
    let backend_app = HttpApp::start("backend").await;
    let other_app = HttpApp::start("other").await;
    // Two destination sidecars: `backend` allows `web`, `other` allows nobody but `admin`.
    let mut inbounds = Vec::new();
    for (service, app, allowed) in [
        ("backend", backend_app.addr, "web"),
        ("other", other_app.addr, "admin"),
    ] {
        let sidecar = proxy(&format!("{service}-1"));
        sidecar.apply_identity(ca.identity(MESH, service)).unwrap();
        let listen = free_addr();
        sidecar
            .apply_config(
                "1",
                config(
                    &format!("{service}-1"),
                    MtlsMode::Strict,
                    vec![inbound(
                        service,
                        listen,
                        app,
                        Protocol::Http,
                        allow(listen.port(), &[allowed]),
                    )],
                    vec![],
                ),
            )
            .unwrap();
        inbounds.push((sidecar, listen));
    }
    let (ingress, ingress_addr) = start_ingress("127.0.0.36", |_| {}).await;
    ingress
        .apply_config(
            "1",
            ingress_config(vec![
                route("backend", &[inbounds[0].1]),
                route("other", &[inbounds[1].1]),
            ]),
        )
        .unwrap();
    // The caller reaches both services through the same ingress address, as a remote zone
    // does: only the server name tells the two apart.
    let client = proxy("web-1");
    client.apply_identity(ca.identity(MESH, "web")).unwrap();
    let (to_backend, to_other) = (free_addr(), free_addr());
    client
        .apply_config(
            "1",
            config(
                "web-1",
                MtlsMode::Strict,
                vec![],
                vec![
                    outbound("backend", to_backend, Protocol::Http, &[ingress_addr]),
                    outbound("other", to_other, Protocol::Http, &[ingress_addr]),
                ],
            ),
        )
        .unwrap();
    for i in 0..3 {
        let reply = http_request(to_backend, "/", &format!("hi{i}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, format!("backend hi{i}"));
        // `other` sees `web`'s certificate and denies it.
        let reply = http_request(to_other, "/", "").await.unwrap();
        assert_eq!(reply.status, 403, "{reply:?}");
        assert_eq!(reply.body, "RBAC: access denied");
    }
    assert_eq!(other_app.hits(), 0);
    assert_eq!(backend_app.hits(), 3);
}

#[tokio::test]
async fn an_oversized_client_hello_is_refused() {
    let ca = TestCa::new(MESH);
    let (backend, ingress, addr) =
        routed_ingress(&ca, "127.0.0.37", "127.0.0.38", |o| o.max_client_hello = 64).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&client_hello_bytes("backend.default.mesh"))
        .await
        .unwrap();
    assert!(closed_without_data(stream).await);
    assert_eq!(refused(&ingress, "client_hello_too_large"), 1);
    assert!(backend.seen().is_empty());
}
