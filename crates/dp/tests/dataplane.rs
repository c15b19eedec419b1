//! End-to-end tests of the proxy engine: two proxies in-process (a "client" with an outbound
//! to `backend`, a "server" with the `backend` inbound), real sockets on loopback.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aerie_core::policies::meshtimeout::Timeouts;
use aerie_core::policies::meshtrafficpermission::InboundAuthz;
use aerie_core::proxy_config::{MtlsMode, Protocol};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn allow_web(port: u16) -> InboundAuthz {
    allow(port, &["web"])
}

fn allow_nobody(port: u16) -> InboundAuthz {
    allow(port, &["somebody-else"])
}

#[tokio::test]
async fn mtls_off_http_flows_through_both_proxies() {
    let app = HttpApp::start("backend").await;
    let p = pair(
        &TestCa::new(MESH),
        MtlsMode::Off,
        Protocol::Http,
        app.addr,
        |port| InboundAuthz::allow_all(u32::from(port), MESH),
    )
    .await;
    let reply = http_request(p.outbound, "/hello", "ping").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "backend ping");
    assert_eq!(app.hits(), 1);
    // Plaintext straight to the inbound works too: no mTLS, no authorization.
    assert_eq!(http_request(p.inbound, "/", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn strict_allowed_caller_gets_200_over_h1_and_h2() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, allow_web).await;
    for i in 0..5 {
        let reply = http_request(p.outbound, "/", &format!("req{i}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, format!("backend req{i}"));
    }
    // The application may speak HTTP/2 to its outbound as well.
    let reply = h2_request(p.outbound, "/").await.unwrap();
    assert_eq!(reply.status, 200);

    let app2 = HttpApp::start("grpc-backend").await;
    let p2 = pair(&ca, MtlsMode::Strict, Protocol::Grpc, app2.addr, allow_web).await;
    let reply = h2_request(p2.outbound, "/svc.Method").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "grpc-backend ");
    let reply = http_request(p2.outbound, "/", "h1 in, h2 out")
        .await
        .unwrap();
    assert_eq!(reply.body, "grpc-backend h1 in, h2 out");
}

#[tokio::test]
async fn strict_denied_caller_gets_403_and_app_never_sees_it() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(
        &ca,
        MtlsMode::Strict,
        Protocol::Http,
        app.addr,
        allow_nobody,
    )
    .await;
    for _ in 0..3 {
        let reply = http_request(p.outbound, "/secret", "").await.unwrap();
        assert_eq!(reply.status, 403);
        assert_eq!(reply.body, "RBAC: access denied");
        assert_eq!(reply.content_type.as_deref(), Some("text/plain"));
    }
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn strict_tcp_allowed_echoes_denied_closes() {
    let ca = TestCa::new(MESH);
    let echo = tcp_echo().await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Tcp, echo, allow_web).await;
    let got = tcp_roundtrip(p.outbound, b"hello over mtls").await.unwrap();
    assert_eq!(got, b"hello over mtls");

    let denied = pair(&ca, MtlsMode::Strict, Protocol::Tcp, echo, allow_nobody).await;
    let got = tcp_roundtrip(denied.outbound, b"let me in").await;
    assert!(
        got.as_ref().map_or(true, |b| b.is_empty()),
        "denied TCP must close without data, got {got:?}"
    );
}

#[tokio::test]
async fn strict_inbound_refuses_unauthenticated_and_foreign_clients() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, |port| {
        allow(port, &["web", "backend"])
    })
    .await;
    let no_http = |r: Result<(String, _), String>| match r {
        Err(_) => true,
        Ok((text, _)) => !text.starts_with("HTTP/1.1"),
    };

    // Plaintext HTTP.
    assert!(http_request(p.inbound, "/", "").await.is_err());
    // TLS without a client certificate.
    assert!(no_http(raw_tls_get(p.inbound, raw_tls_client(None)).await));
    // A self-signed certificate claiming an allowed service.
    let (cert, key) = self_signed("web");
    assert!(no_http(
        raw_tls_get(p.inbound, raw_tls_client(Some((vec![cert], key)))).await
    ));
    // A certificate from another mesh's CA, also claiming `web` of this mesh.
    let other = TestCa::new("other").identity(MESH, "web");
    assert!(no_http(
        raw_tls_get(p.inbound, raw_tls_client(Some((other.chain, other.key)))).await
    ));
    assert_eq!(app.hits(), 0);

    // A proper mesh certificate gets through, and the inbound presents the service's SPIFFE ID.
    let web = ca.identity(MESH, "web");
    let (text, leaf) = raw_tls_get(p.inbound, raw_tls_client(Some((web.chain, web.key))))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let sans = aerie_identity::verify::peer_uri_sans(&leaf).unwrap();
    assert!(
        sans.contains(&"spiffe://default/backend".to_owned()),
        "{sans:?}"
    );
}

#[tokio::test]
async fn outbound_verifies_the_server_spiffe_id() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, allow_web).await;
    // The server now presents `impostor`: the client proxy expects `backend`.
    p.server
        .apply_identity(ca.identity(MESH, "impostor"))
        .unwrap();
    let reply = http_request(p.outbound, "/", "").await.unwrap();
    assert!(
        reply.status == 502 || reply.status == 503,
        "expected 502/503, got {reply:?}"
    );
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn permissive_accepts_plaintext_as_unauthenticated_and_tls_as_strict() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(
        &ca,
        MtlsMode::Permissive,
        Protocol::Http,
        app.addr,
        allow_web,
    )
    .await;
    // mTLS through the proxies: identity `web` is allowed.
    assert_eq!(http_request(p.outbound, "/", "").await.unwrap().status, 200);
    // Plaintext is accepted but carries no identity: the unauthenticated decision (deny with
    // mTLS on) applies.
    let reply = http_request(p.inbound, "/", "").await.unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, "RBAC: access denied");
    assert_eq!(app.hits(), 1);
    // TLS without a client certificate is refused, as in STRICT.
    let r = raw_tls_get(p.inbound, raw_tls_client(None)).await;
    assert!(r.map_or(true, |(t, _)| t.is_empty()));

    // With a table that lets everyone in (mTLS-off style), plaintext reaches the app.
    let mut cfg = p.server_config.clone();
    cfg.inbounds[0].authz = InboundAuthz::allow_all(u32::from(p.inbound.port()), MESH);
    p.server.apply_config("2", cfg).unwrap();
    assert_eq!(http_request(p.inbound, "/", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn identity_rotation_fails_no_request() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, allow_web).await;
    // TCP opens a new mTLS connection per exchange, so it sees every certificate change.
    let tcp = pair(
        &ca,
        MtlsMode::Strict,
        Protocol::Tcp,
        tcp_echo().await,
        allow_web,
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    {
        let (stop, ok, outbound) = (stop.clone(), ok.clone(), tcp.outbound);
        loops.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match tcp_roundtrip(outbound, b"rotate").await {
                    Ok(b) if b == b"rotate" => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!("tcp: {other:?}")),
                }
            }
            failures
        }));
    }
    for _ in 0..4 {
        let (stop, ok, outbound) = (stop.clone(), ok.clone(), p.outbound);
        loops.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match http_request(outbound, "/", "x").await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        }));
    }
    for round in 0..5 {
        let before = ok.load(Ordering::SeqCst);
        eventually("requests between rotations", || async {
            (ok.load(Ordering::SeqCst) >= before + 20).then_some(())
        })
        .await;
        // Alternate which side rotates first.
        let (server, client) = (
            || {
                p.server
                    .apply_identity(ca.identity(MESH, "backend"))
                    .unwrap()
            },
            || p.client.apply_identity(ca.identity(MESH, "web")).unwrap(),
        );
        if round % 2 == 0 {
            server();
            client();
        } else {
            client();
            server();
        }
        tcp.server
            .apply_identity(ca.identity(MESH, "backend"))
            .unwrap();
        tcp.client.apply_identity(ca.identity(MESH, "web")).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        let failures = l.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(ok.load(Ordering::SeqCst) >= 100);
}

#[tokio::test]
async fn revoking_a_permission_closes_open_tcp_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new(MESH);
    let echo = tcp_echo().await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Tcp, echo, allow_web).await;
    let mut open = tokio::net::TcpStream::connect(p.outbound).await.unwrap();
    open.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");

    // A change that still allows the caller leaves the connection alone.
    let mut cfg = p.server_config.clone();
    cfg.inbounds[0].authz = allow_web(p.inbound.port());
    p.server.apply_config("2", cfg.clone()).unwrap();
    open.write_all(b"again").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again");

    // Revoked: the open connection is closed (EOF or reset), not left flowing.
    cfg.inbounds[0].authz = allow_nobody(p.inbound.port());
    p.server.apply_config("3", cfg).unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = open.write_all(b"x").await;
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await
    .expect("the connection is closed within 5 s");
    assert!(closed.as_ref().map_or(true, |b| b.is_empty()), "{closed:?}");
}

#[tokio::test]
async fn connections_from_before_mtls_are_closed_when_it_turns_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new(MESH);
    let echo = tcp_echo().await;
    let app = HttpApp::start("backend").await;
    // TCP: the connection is closed.
    let p = pair(&ca, MtlsMode::Off, Protocol::Tcp, echo, allow_web).await;
    let mut open = tokio::net::TcpStream::connect(p.inbound).await.unwrap();
    open.write_all(b"plain").await.unwrap();
    let mut buf = [0u8; 5];
    open.read_exact(&mut buf).await.unwrap();
    p.server
        .apply_identity(ca.identity(MESH, "backend"))
        .unwrap();
    let mut cfg = p.server_config.clone();
    cfg.mtls = MtlsMode::Strict;
    p.server.apply_config("2", cfg).unwrap();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await
    .expect("closed within 5 s");
    assert!(rest.as_ref().map_or(true, |b| b.is_empty()), "{rest:?}");

    // HTTP: the next request on the kept-alive plaintext connection is denied.
    let p = pair(&ca, MtlsMode::Off, Protocol::Http, app.addr, allow_web).await;
    let mut conn = tokio::net::TcpStream::connect(p.inbound).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nhost: backend\r\n\r\n";
    conn.write_all(request).await.unwrap();
    let mut head = vec![0u8; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let hits = app.hits();
    p.server
        .apply_identity(ca.identity(MESH, "backend"))
        .unwrap();
    let mut cfg = p.server_config.clone();
    cfg.mtls = MtlsMode::Strict;
    p.server.apply_config("2", cfg).unwrap();
    let mut rest = vec![0u8; 4096];
    // Drain the first response's remainder, then ask again on the same connection.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), conn.read(&mut rest)).await;
    conn.write_all(request).await.unwrap();
    let n = conn.read(&mut rest).await.unwrap();
    let answer = String::from_utf8_lossy(&rest[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(app.hits(), hits, "the app never saw the second request");
}

#[tokio::test]
async fn a_kept_alive_app_connection_follows_the_outbounds_new_endpoints() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (old, new) = (HttpApp::start("old").await, HttpApp::start("new").await);
    let client = proxy("web-1");
    let listen = free_addr();
    let cfg = |app: std::net::SocketAddr| {
        config(
            "web-1",
            MtlsMode::Off,
            vec![],
            vec![outbound("backend", listen, Protocol::Http, &[app])],
        )
    };
    client.apply_config("1", cfg(old.addr)).unwrap();
    let mut conn = tokio::net::TcpStream::connect(listen).await.unwrap();
    let ask = async |conn: &mut tokio::net::TcpStream| {
        conn.write_all(b"GET / HTTP/1.1\r\nhost: backend\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut conn).await.ends_with("old "));
    client.apply_config("2", cfg(new.addr)).unwrap();
    assert!(
        ask(&mut conn).await.ends_with("new "),
        "the same connection, the new endpoint"
    );
    assert_eq!(old.hits(), 1);
}

#[tokio::test]
async fn authz_change_applies_to_the_next_connection_without_restarting() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Tcp, app.addr, allow_nobody).await;
    // Use TCP so every request is a new upstream connection (and a new decision).
    let echo = tcp_echo().await;
    let mut cfg = p.server_config.clone();
    cfg.inbounds[0].service_port = echo.port();
    p.server.apply_config("2", cfg.clone()).unwrap();
    assert!(
        tcp_roundtrip(p.outbound, b"x")
            .await
            .map_or(true, |b| b.is_empty())
    );

    cfg.inbounds[0].authz = allow_web(p.inbound.port());
    p.server.apply_config("3", cfg).unwrap();
    assert_eq!(tcp_roundtrip(p.outbound, b"now").await.unwrap(), b"now");
    assert_eq!(p.server.config_version().as_deref(), Some("3"));
}

#[tokio::test]
async fn round_robin_spreads_requests_and_skips_dead_endpoints() {
    let a = HttpApp::start("a").await;
    let b = HttpApp::start("b").await;
    let dead = free_addr();
    let outbound_addr = free_addr();
    let client = proxy("web-1");
    client
        .apply_config(
            "1",
            config(
                "web-1",
                MtlsMode::Off,
                vec![],
                vec![outbound(
                    "backend",
                    outbound_addr,
                    Protocol::Http,
                    &[a.addr, dead, b.addr],
                )],
            ),
        )
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..12 {
        let reply = http_request(outbound_addr, "/", "").await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        *seen.entry(reply.body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n >= 4), "{seen:?}");
    let stats = client.prometheus();
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("aerie_dp_upstream_connect_errors_total")
                && l.contains("outbound")
                && !l.ends_with(" 0")),
        "{stats}"
    );

    // No endpoints: 503; TCP: closed.
    let tcp_addr = free_addr();
    client
        .apply_config(
            "2",
            config(
                "web-1",
                MtlsMode::Off,
                vec![],
                vec![
                    outbound("backend", outbound_addr, Protocol::Http, &[]),
                    outbound("db", tcp_addr, Protocol::Tcp, &[dead]),
                ],
            ),
        )
        .unwrap();
    assert_eq!(
        http_request(outbound_addr, "/", "").await.unwrap().status,
        503
    );
    assert!(
        tcp_roundtrip(tcp_addr, b"x")
            .await
            .map_or(true, |b| b.is_empty())
    );
}

#[tokio::test]
async fn admin_ready_stats_and_config_dump() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let server = proxy("backend-1");
    let admin = start_admin(&server).await;

    let r = admin_get(admin, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no configuration"), "{}", r.body);
    assert!(r.body.contains("control plane: disconnected"), "{}", r.body);

    let inbound_addr = free_addr();
    let cfg = config(
        "backend-1",
        MtlsMode::Strict,
        vec![inbound(
            "backend",
            inbound_addr,
            app.addr,
            Protocol::Http,
            allow_nobody(inbound_addr.port()),
        )],
        vec![],
    );
    server.apply_config("v1", cfg).unwrap();
    server.set_control_plane_connected(true);
    let r = admin_get(admin, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no identity"), "{}", r.body);
    // Fail closed: mTLS on, no identity yet -> connections refused.
    assert!(http_request(inbound_addr, "/", "").await.is_err());

    server.apply_identity(ca.identity(MESH, "backend")).unwrap();
    let r = admin_get(admin, "/ready").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("LIVE"), "{}", r.body);
    assert!(r.body.contains("control plane: connected"), "{}", r.body);

    // A denied caller shows up in the RBAC counters.
    let web = ca.identity(MESH, "web");
    let (text, _) = raw_tls_get(inbound_addr, raw_tls_client(Some((web.chain, web.key))))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    let r = admin_get(admin, "/stats/prometheus").await;
    assert_eq!(r.status, 200);
    let denied = r
        .body
        .lines()
        .find(|l| l.starts_with("aerie_dp_rbac_denied_total{"))
        .unwrap_or_else(|| panic!("{}", r.body));
    assert!(denied.contains("source_service=\"web\""), "{denied}");
    assert!(denied.ends_with(" 1"), "{denied}");
    assert!(
        r.body.contains("aerie_dp_certificate_expiry_seconds"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("aerie_dp_config_version_info{version=\"v1\"} 1"),
        "{}",
        r.body
    );

    let r = admin_get(admin, "/config_dump").await;
    assert_eq!(r.status, 200);
    let dump: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(dump["version"], "v1");
    assert_eq!(dump["config"]["inbounds"][0]["service"], "backend");
    let sans = dump["identity"]["uriSans"].as_array().unwrap();
    assert!(
        sans.iter().any(|s| s == "spiffe://default/backend"),
        "{sans:?}"
    );
    assert!(dump["identity"]["notAfter"].is_string());
    assert!(!r.body.to_lowercase().contains("private"), "{}", r.body);
    assert!(!r.body.contains("BEGIN"), "{}", r.body);

    server.drain().await;
    let r = admin_get(admin, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("draining"), "{}", r.body);
}

#[tokio::test]
async fn shadow_deny_is_allowed_and_counted() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, |port| {
        allow_shadow(port, &["web"])
    })
    .await;
    assert_eq!(http_request(p.outbound, "/", "").await.unwrap().status, 200);
    let stats = p.server.prometheus();
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("aerie_dp_rbac_shadow_denied_total{")
                && l.contains("source_service=\"web\"")
                && l.ends_with(" 1")),
        "{stats}"
    );
}

#[tokio::test]
async fn drain_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let app = HttpApp::start("backend").await;
    let p = pair(
        &TestCa::new(MESH),
        MtlsMode::Off,
        Protocol::Http,
        app.addr,
        |port| InboundAuthz::allow_all(u32::from(port), MESH),
    )
    .await;
    let outbound = p.outbound;
    let slow = tokio::spawn(async move { http_request(outbound, "/slow?ms=700", "slow").await });
    eventually("the slow request to reach the app", || async {
        (app.hits() == 1).then_some(())
    })
    .await;
    let client = p.client.clone();
    let drain = tokio::spawn(async move { client.drain().await });
    eventually("the outbound to refuse connections", || async {
        TcpStream::connect(outbound).await.is_err().then_some(())
    })
    .await;
    let reply = slow.await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "backend slow");
    drain.await.unwrap();
    assert!(
        p.client
            .apply_config("2", config("web-1", MtlsMode::Off, vec![], vec![]))
            .is_err()
    );
}

#[tokio::test]
async fn invalid_or_unbindable_config_is_rejected_and_the_last_good_one_stays() {
    let app = HttpApp::start("backend").await;
    let p = pair(
        &TestCa::new(MESH),
        MtlsMode::Off,
        Protocol::Http,
        app.addr,
        |port| InboundAuthz::allow_all(u32::from(port), MESH),
    )
    .await;
    let mut bad = p.server_config.clone();
    bad.inbounds[0].service_address = "not an ip".into();
    assert!(p.server.apply_config("2", bad).is_err());

    // A port someone else holds: NACK, nothing changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clash = p.server_config.clone();
    let mut extra = clash.inbounds[0].clone();
    extra.name = "extra".into();
    extra.port = taken.local_addr().unwrap().port();
    clash.inbounds.push(extra);
    assert!(p.server.apply_config("3", clash).is_err());

    let mut other = p.server_config.clone();
    other.name = "someone-else".into();
    assert!(p.server.apply_config("4", other).is_err());

    assert_eq!(p.server.config_version().as_deref(), Some("1"));
    assert_eq!(http_request(p.outbound, "/", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn garbage_from_peers_does_not_hurt_the_proxy() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let strict = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, allow_web).await;
    let permissive = pair(
        &ca,
        MtlsMode::Permissive,
        Protocol::Http,
        app.addr,
        allow_web,
    )
    .await;
    let off = pair(&ca, MtlsMode::Off, Protocol::Http, app.addr, |port| {
        InboundAuthz::allow_all(u32::from(port), MESH)
    })
    .await;
    let payloads: [&[u8]; 5] = [
        b"\x16\x03\x01\x00\xffgarbage-tls-record",
        b"\x16",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\xff\xff\xff",
    ];
    for target in [
        strict.inbound,
        permissive.inbound,
        off.inbound,
        off.outbound,
    ] {
        for payload in payloads {
            let mut s = TcpStream::connect(target).await.unwrap();
            let _ = s.write_all(payload).await;
            let _ = s.shutdown().await; // half-close
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        }
    }
    // Everything still works.
    assert_eq!(
        http_request(strict.outbound, "/", "").await.unwrap().status,
        200
    );
    assert_eq!(
        http_request(permissive.outbound, "/", "")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http_request(off.outbound, "/", "").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn no_listeners_before_the_first_config() {
    let p = proxy("lonely");
    assert!(p.config_version().is_none());
    assert!(p.not_ready_reason().is_some());
    let bad = aerie_dp::Identity {
        chain: vec![],
        key: rustls_pki_types::PrivateKeyDer::Pkcs8(vec![1, 2, 3].into()),
        trust_anchors: vec![],
    };
    assert!(p.apply_identity(bad).is_err());
    assert!(p.identity().is_none());
}

#[tokio::test]
async fn revoking_a_permission_stops_the_next_request_on_a_pooled_connection() {
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = pair(&ca, MtlsMode::Strict, Protocol::Http, app.addr, allow_web).await;
    for _ in 0..3 {
        assert_eq!(
            http_request(p.outbound, "/", "x").await.unwrap().status,
            200
        );
    }
    // Deny: the client proxy keeps its pooled mTLS connection to the server proxy, and the
    // server must re-decide on it.
    let mut cfg = p.server_config.clone();
    cfg.inbounds[0].authz = allow_nobody(p.inbound.port());
    p.server.apply_config("2", cfg.clone()).unwrap();
    let hits = app.hits();
    let reply = http_request(p.outbound, "/", "after").await.unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body, "RBAC: access denied");
    assert_eq!(app.hits(), hits, "the app never sees a denied request");
    // And back: allowed again on the same connection.
    cfg.inbounds[0].authz = allow_web(p.inbound.port());
    p.server.apply_config("3", cfg).unwrap();
    assert_eq!(
        http_request(p.outbound, "/", "again").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn keep_alive_clients_on_every_worker_reuse_pooled_upstream_connections() {
    // 8 keep-alive clients x 25 requests, dealt over the proxies' two workers: every request
    // succeeds, and the server proxy's per-worker pools reuse their connections to the app
    // (without pooling the app would see one connection per request).
    const CLIENTS: usize = 8;
    const REQUESTS: usize = 25;
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = serving_http_pair(&ca, &app, |_| {}).await;
    let before = app.connections();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let outbound = p.outbound;
        clients.push(tokio::spawn(async move {
            let stream = TcpStream::connect(outbound).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            for i in 0..REQUESTS {
                sender.ready().await.unwrap();
                let req = hyper::Request::builder()
                    .method("POST")
                    .uri("/")
                    .header("host", "backend")
                    .body(Full::new(Bytes::from(format!("{c}-{i}"))))
                    .unwrap();
                let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
                    .await
                    .expect("no timeout")
                    .expect("a response");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, format!("backend {c}-{i}").as_bytes());
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let opened = app.connections() - before;
    assert!(
        opened <= 2 * CLIENTS,
        "{opened} app connections for {} requests from {CLIENTS} keep-alive clients",
        CLIENTS * REQUESTS
    );
}

/// A STRICT mTLS HTTP pair to `app` allowing `web`, with options changed by `tweak`, once
/// it serves.
async fn serving_http_pair(
    ca: &TestCa,
    app: &HttpApp,
    tweak: impl Fn(&mut aerie_dp::ProxyOptions),
) -> Pair {
    serving_http_pair_with(ca, app, tweak, Timeouts::default()).await
}

/// Kuma's default timeouts but the idle one (what a MeshTimeout `idleTimeout` sets).
fn idle(d: Duration) -> Timeouts {
    Timeouts {
        idle_ms: u64::try_from(d.as_millis()).unwrap(),
        ..Timeouts::default()
    }
}

async fn serving_http_pair_with(
    ca: &TestCa,
    app: &HttpApp,
    tweak: impl Fn(&mut aerie_dp::ProxyOptions),
    timeouts: Timeouts,
) -> Pair {
    let p = pair_with_timeouts(
        ca,
        MtlsMode::Strict,
        Protocol::Http,
        app.addr,
        allow_web,
        tweak,
        timeouts,
    )
    .await;
    eventually("the pair serves", || async {
        http_request(p.outbound, "/", "")
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;
    p
}

/// A keep-alive HTTP/1.1 client connection to `addr`; the returned flag turns true once the
/// connection has ended (closed by the other side).
async fn keep_alive_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    Arc<AtomicBool>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    tokio::spawn(async move {
        let _ = conn.await;
        flag.store(true, Ordering::SeqCst);
    });
    (sender, ended)
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> Result<u16, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", "backend")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_not_before() {
    // The handshake timeout (which once also bounded idle keep-alive connections) is far
    // shorter than the idle timeout: a connection idle for longer than the former is kept.
    const IDLE: Duration = Duration::from_millis(1500);
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = serving_http_pair_with(
        &ca,
        &app,
        |o| o.handshake_timeout = Duration::from_millis(200),
        idle(IDLE),
    )
    .await;
    let (mut sender, ended) = keep_alive_client(p.outbound).await;
    assert_eq!(get(&mut sender, "/").await, Ok(200));
    let app_conns = app.connections();
    // Idle for well past the handshake timeout, well short of the idle timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!ended.load(Ordering::SeqCst), "closed after 600 ms idle");
    assert_eq!(
        get(&mut sender, "/").await,
        Ok(200),
        "the same connection serves"
    );
    let last = std::time::Instant::now();
    // Both proxies kept their pooled connections too (client -> server proxy -> app).
    assert_eq!(app.connections(), app_conns, "no new connection to the app");
    // Now idle for good: the proxy closes it within the timeout's 1.25x (plus slack).
    let deadline = last + IDLE * 3;
    while !ended.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "an idle connection was still open after {:?}",
            last.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        last.elapsed() >= IDLE,
        "closed after {:?}, before the idle timeout",
        last.elapsed()
    );
}

#[tokio::test]
async fn a_slow_request_is_not_idle() {
    // A request in flight for longer than the idle timeout keeps its connection.
    let ca = TestCa::new(MESH);
    let app = HttpApp::start("backend").await;
    let p = serving_http_pair_with(&ca, &app, |_| {}, idle(Duration::from_millis(300))).await;
    let (mut sender, ended) = keep_alive_client(p.outbound).await;
    assert_eq!(get(&mut sender, "/slow?ms=1200").await, Ok(200));
    assert!(!ended.load(Ordering::SeqCst));
    assert_eq!(get(&mut sender, "/").await, Ok(200));
}

#[tokio::test]
async fn tcp_connections_close_when_idle_and_stay_open_while_bytes_flow() {
    const IDLE: Duration = Duration::from_millis(600);
    let ca = TestCa::new(MESH);
    let echo = tcp_echo().await;
    let p = pair_with_timeouts(
        &ca,
        MtlsMode::Strict,
        Protocol::Tcp,
        echo,
        allow_web,
        |_| {},
        idle(IDLE),
    )
    .await;
    eventually("the pair echoes", || async {
        tcp_roundtrip(p.outbound, b"ping")
            .await
            .ok()
            .filter(|b| b == b"ping")
    })
    .await;
    let mut stream = TcpStream::connect(p.outbound).await.unwrap();
    let mut byte = [0u8; 1];
    // A byte each 150 ms for 2.5x the idle timeout: never idle, never closed.
    let busy_until = std::time::Instant::now() + IDLE * 5 / 2;
    let mut last = std::time::Instant::now();
    while last < busy_until {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(b"x").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut byte))
            .await
            .expect("echo in time")
            .expect("the connection is open while bytes flow");
        assert_eq!(&byte, b"x");
        last = std::time::Instant::now();
    }
    // Then silence: the proxy closes the connection after the idle timeout.
    let read = tokio::time::timeout(IDLE * 4, stream.read(&mut byte))
        .await
        .expect("closed within 4x the idle timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the connection closed, read {read:?}"
    );
    assert!(
        last.elapsed() >= IDLE,
        "closed after {:?}, before the idle timeout",
        last.elapsed()
    );
}

// MeshRetry and MeshCircuitBreaker: one client proxy whose outbound (mTLS off) reaches
// scripted apps directly.

use aerie_core::policies::meshcircuitbreaker::{CircuitBreaker, Outlier};
use aerie_core::policies::meshretry::{HttpRetry, Retry};
use aerie_core::proxy_config::OutboundConfig;

/// A client proxy with one HTTP outbound to `endpoints`, with `retry` and `cb`.
async fn resilient_client(
    endpoints: &[std::net::SocketAddr],
    retry: Retry,
    cb: CircuitBreaker,
) -> (aerie_dp::Proxy, std::net::SocketAddr) {
    let listen = free_addr();
    let client = proxy("web-1");
    client
        .apply_config(
            "1",
            config(
                "web-1",
                MtlsMode::Off,
                vec![],
                vec![OutboundConfig {
                    retry,
                    circuit_breaker: cb,
                    http_routes: None,
                    tcp_routes: None,
                    access_log: None,
                    ..outbound("backend", listen, Protocol::Http, endpoints)
                }],
            ),
        )
        .unwrap();
    eventually("the outbound listens", || async {
        TcpStream::connect(listen).await.ok().map(|_| ())
    })
    .await;
    (client, listen)
}

fn http_retries(n: u32, tweak: impl FnOnce(&mut HttpRetry)) -> Retry {
    let mut http = HttpRetry {
        num_retries: n,
        base_interval_ms: 1,
        max_interval_ms: 5,
        retry_on: vec!["gateway-error".into(), "connect-failure".into()],
        ..HttpRetry::default()
    };
    tweak(&mut http);
    Retry {
        http: Some(http),
        ..Retry::default()
    }
}

/// Every other answer is a 503.
fn every_other_503(n: usize) -> (u16, Duration) {
    (if n.is_multiple_of(2) { 503 } else { 200 }, Duration::ZERO)
}

#[tokio::test]
async fn retries_turn_a_flaky_upstream_into_successes_and_without_them_it_shows() {
    let app = ScriptedApp::start(every_other_503).await;
    let (_client, out) = resilient_client(
        &[app.addr],
        http_retries(3, |_| {}),
        CircuitBreaker::default(),
    )
    .await;
    for i in 0..40 {
        let (status, body, _) = request_full(out, "POST", "/", Bytes::from(format!("req-{i}")))
            .await
            .unwrap();
        assert_eq!(status, 200, "request {i}");
        // The body was replayed to the attempt that succeeded.
        assert_eq!(body, format!("req-{i}").as_bytes());
    }
    assert_eq!(app.hits(), 80, "each request: a 503, then a retried 200");

    let app = ScriptedApp::start(every_other_503).await;
    let (_client, out) =
        resilient_client(&[app.addr], Retry::default(), CircuitBreaker::default()).await;
    let mut failed = 0;
    for _ in 0..40 {
        let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
        if status == 503 {
            failed += 1;
        }
    }
    assert_eq!(failed, 20, "without MeshRetry every other request fails");
}

#[tokio::test]
async fn only_the_configured_conditions_and_replayable_bodies_are_retried() {
    // 500 is no gateway error: not retried by the default conditions.
    let app = ScriptedApp::start(|n| (if n == 0 { 500 } else { 200 }, Duration::ZERO)).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(3, |_| {}),
        CircuitBreaker::default(),
    )
    .await;
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!((status, app.hits()), (500, 1));

    // A status code in retryOn is.
    let app = ScriptedApp::start(|n| (if n == 0 { 500 } else { 200 }, Duration::ZERO)).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(3, |h| h.status_codes = vec![500]),
        CircuitBreaker::default(),
    )
    .await;
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!((status, app.hits()), (200, 2));

    // A body over the replay buffer goes out once, streamed, and is not retried.
    let app = ScriptedApp::start(|n| (if n == 0 { 503 } else { 200 }, Duration::ZERO)).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(3, |_| {}),
        CircuitBreaker::default(),
    )
    .await;
    let big = Bytes::from(vec![b'x'; 100 * 1024]);
    let (status, _, _) = request_full(out, "POST", "/", big).await.unwrap();
    assert_eq!((status, app.hits()), (503, 1));

    // Retries stop at numRetries: the last answer is returned.
    let app = ScriptedApp::start(|_| (503, Duration::ZERO)).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(2, |_| {}),
        CircuitBreaker::default(),
    )
    .await;
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!((status, app.hits()), (503, 3));

    // maxRetries 0: the circuit breaker allows no retry at all.
    let app = ScriptedApp::start(|_| (503, Duration::ZERO)).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(2, |_| {}),
        CircuitBreaker {
            max_retries: 0,
            ..CircuitBreaker::default()
        },
    )
    .await;
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!((status, app.hits()), (503, 1));
}

#[tokio::test]
async fn a_slow_attempt_is_cut_by_the_per_try_timeout_and_retried() {
    let app = ScriptedApp::start(|n| {
        let delay = if n == 0 {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        };
        (200, delay)
    })
    .await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(1, |h| h.per_try_timeout_ms = 200),
        CircuitBreaker::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.hits(), 2);

    // Without retries, the per-try timeout alone answers 504.
    let app = ScriptedApp::start(|_| (200, Duration::from_secs(5))).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        http_retries(1, |h| {
            h.per_try_timeout_ms = 200;
            h.retry_on = vec!["connect-failure".into()];
        }),
        CircuitBreaker::default(),
    )
    .await;
    let (status, body, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!((status, &body[..]), (504, &b"upstream request timeout"[..]));
}

#[tokio::test]
async fn max_requests_turns_excess_concurrent_requests_into_overflow_503s() {
    let app = ScriptedApp::start(|_| (200, Duration::from_millis(800))).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        Retry::default(),
        CircuitBreaker {
            max_requests: 1,
            ..CircuitBreaker::default()
        },
    )
    .await;
    let first = tokio::spawn(request_full(out, "GET", "/", Bytes::new()));
    eventually("the first request reaches the app", || async {
        (app.hits() == 1).then_some(())
    })
    .await;
    let (status, body, headers) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    );
    assert_eq!(headers.get("x-envoy-overloaded").unwrap(), "true");
    assert_eq!(first.await.unwrap().unwrap().0, 200);
    // The slot is given back once the first response is done.
    let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(app.hits(), 2, "the refused request never reached the app");
}

#[tokio::test]
async fn max_connections_makes_requests_wait_and_max_pending_refuses_more() {
    let app = ScriptedApp::start(|_| (200, Duration::from_millis(600))).await;
    let (_c, out) = resilient_client(
        &[app.addr],
        Retry::default(),
        CircuitBreaker {
            max_connections: 1,
            max_pending_requests: 1,
            ..CircuitBreaker::default()
        },
    )
    .await;
    let first = tokio::spawn(request_full(out, "GET", "/", Bytes::new()));
    eventually("the first request reaches the app", || async {
        (app.hits() == 1).then_some(())
    })
    .await;
    // The second waits for the one connection; a third finds the pending slot taken.
    let second = tokio::spawn(request_full(out, "GET", "/", Bytes::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (third, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    assert_eq!(third, 503);
    assert_eq!(first.await.unwrap().unwrap().0, 200);
    assert_eq!(second.await.unwrap().unwrap().0, 200);
    assert_eq!(app.hits(), 2);
    assert_eq!(
        app.conns.load(Ordering::SeqCst),
        1,
        "both requests shared the one connection"
    );
}

#[tokio::test]
async fn an_endpoint_failing_consecutively_is_ejected_then_returns() {
    let bad = ScriptedApp::start(|_| (500, Duration::ZERO)).await;
    let good = ScriptedApp::start(|_| (200, Duration::ZERO)).await;
    let outlier = Outlier {
        base_ejection_ms: 1_500,
        max_ejection_percent: 50,
        consecutive_5xx: Some(3),
        ..Outlier::default()
    };
    let (_c, out) = resilient_client(
        &[bad.addr, good.addr],
        Retry::default(),
        CircuitBreaker {
            outlier: Some(outlier),
            ..CircuitBreaker::default()
        },
    )
    .await;
    // Round robin: three 500s from the bad endpoint within six requests eject it.
    for _ in 0..6 {
        request_full(out, "GET", "/", Bytes::new()).await.unwrap();
    }
    assert_eq!(bad.hits(), 3);
    let ejected_at = std::time::Instant::now();
    for _ in 0..20 {
        let (status, _, _) = request_full(out, "GET", "/", Bytes::new()).await.unwrap();
        assert_eq!(status, 200);
    }
    assert!(ejected_at.elapsed() < Duration::from_millis(1_500));
    assert_eq!(bad.hits(), 3, "no traffic while ejected");
    // After the ejection time it is back in the rotation.
    eventually("the ejected endpoint gets traffic again", || async {
        request_full(out, "GET", "/", Bytes::new()).await.unwrap();
        (bad.hits() > 3).then_some(())
    })
    .await;
    assert!(ejected_at.elapsed() >= Duration::from_millis(1_400));
}

#[tokio::test]
async fn with_retries_on_a_streaming_request_body_is_not_held_back() {
    // The app answers after the first chunk of the body; the client sends the rest only
    // after the answer. A proxy buffering bodies for replay would wait forever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        let first = body
                            .frame()
                            .await
                            .and_then(|f| f.ok())
                            .and_then(|f| f.into_data().ok())
                            .unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(first)))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let (_c, out) =
        resilient_client(&[app], http_retries(3, |_| {}), CircuitBreaker::default()).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >(4);
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let stream = TcpStream::connect(out).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "backend")
        .body(body)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("the answer came while the body was still open")
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(tx);
}
