//! Slow and half-open clients against every kuma-cp listener, through the real binaries:
//! a thousand connections that send half a request line, half a header, half a TLS
//! handshake or nothing at all must not stop the control plane from answering others, and
//! the server must close them itself within its timeouts. Also the connection cap, the
//! keep-alive idle timeout, the read and write timeouts, and the open-files limit.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aerie_e2e::{ControlPlane, Dataplane, free_port, http, loopback_ip, raise_fd_limit, skipped};

#[path = "common/tls.rs"]
mod tls;
use tls::{https_get, tls_config, tls_connect};

/// Hostile connections per test.
const HOSTILE: usize = 1000;
/// How long after its timeout a hostile connection may take to be seen closed.
const SLACK: Duration = Duration::from_secs(4);

/// Raises this process's descriptor limit so it can hold the hostile connections; false
/// (with a SKIPPED line) where the hard limit is too low to run the test at all.
fn enough_descriptors(test: &str) -> bool {
    let limit = raise_fd_limit();
    if limit < 4096 {
        skipped(
            test,
            &format!("the open-files hard limit is {limit}; this test needs 4096"),
        );
        return false;
    }
    true
}

fn connect(addr: &str) -> TcpStream {
    let sock: SocketAddr = addr.parse().expect("address");
    TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// HTTP clients that stop mid-way: a third send nothing, a third half a request line, a
/// third a request line and half the headers.
fn hostile_http(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect(addr);
            match i % 3 {
                0 => {}
                1 => s.write_all(b"GET /meshes HT").expect("write"),
                _ => s
                    .write_all(b"GET /meshes HTTP/1.1\r\nHost: x\r\nUser-Agent: slow")
                    .expect("write"),
            }
            s
        })
        .collect()
}

/// TLS clients that never finish the handshake: half send nothing, half start a
/// ClientHello record (announcing 512 bytes) and stop after a few.
fn hostile_tls(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect(addr);
            if i % 2 == 1 {
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                    .expect("write");
            }
            s
        })
        .collect()
}

/// Whether the server closed `s` (EOF or reset) before `deadline`; bytes it sends first
/// (an error response, a TLS alert) are read and skipped.
fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Asserts every connection was closed by the server before `deadline`.
fn assert_all_closed(what: &str, conns: &mut [TcpStream], deadline: Instant, cp: &ControlPlane) {
    // Wait on each until the deadline; once it has passed, the rest are only checked.
    let open = conns
        .iter_mut()
        .map(|s| closed_by(s, deadline) || !still_open(s))
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        open,
        0,
        "{open} of {} {what} connections were still open at the deadline\n{}",
        conns.len(),
        tail(&cp.logs())
    );
}

/// Whether `s` is still open right now (no EOF, no reset); bytes already sent by the
/// server (TLS tickets, HTTP/2 settings) are read and skipped.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    let open = loop {
        match (&*s).read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) => break e.kind() == std::io::ErrorKind::WouldBlock,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    open
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A request that must be answered within 5 s despite the hostile clients.
fn answered_quickly(what: &str, f: impl FnOnce() -> std::io::Result<u16>) {
    let start = Instant::now();
    let status = f().unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let took = start.elapsed();
    assert_eq!(status, 200, "{what}");
    assert!(
        took < Duration::from_secs(5),
        "{what} took {took:?} with hostile clients connected"
    );
}

#[test]
fn the_http_api_answers_and_closes_a_thousand_half_open_clients() {
    if !enough_descriptors("the_http_api_answers_and_closes_a_thousand_half_open_clients") {
        return;
    }
    // A common default soft limit: kuma-cp raises it to the hard limit itself.
    let cp = ControlPlane::start_with_nofile(&[], 1024);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", cp.pid())).expect("limits");
    let files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files")
        .split_whitespace()
        .collect();
    assert_eq!(
        files[3], files[4],
        "kuma-cp must raise its soft open-files limit to the hard limit: {files:?}"
    );
    assert!(cp.logs().contains("RLIMIT_NOFILE"), "{}", cp.logs());

    let api = cp.addrs.api();
    let opened = Instant::now();
    let mut hostile = hostile_http(&api, HOSTILE);
    answered_quickly("GET /", || {
        http("GET", &api, "/", None, &[]).map(|r| r.status)
    });
    answered_quickly("GET /meshes", || {
        http("GET", &api, "/meshes", None, &[]).map(|r| r.status)
    });
    // apiServer.readHeaderTimeout is 1 s by default.
    assert_all_closed(
        "half-open HTTP",
        &mut hostile,
        opened + Duration::from_secs(1) + SLACK,
        &cp,
    );
}

#[test]
fn the_https_api_closes_unfinished_handshakes_and_answers_others() {
    if !enough_descriptors("the_https_api_closes_unfinished_handshakes_and_answers_others") {
        return;
    }
    let cp = ControlPlane::start_with_nofile(&[], 1024);
    let https = format!("{}:{}", cp.addrs.ip, cp.addrs.https);
    let cfg = tls_config(&cp.work_dir.join("tls/api-server.crt"), b"http/1.1");
    let opened = Instant::now();
    let mut hostile = hostile_tls(&https, HOSTILE);
    // A finished handshake followed by half a request is cut as well.
    let mut half_request: Vec<_> = (0..10)
        .map(|_| {
            let mut s = tls_connect(&https, &cp.addrs.ip, &cfg);
            s.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
            s.flush().expect("flush");
            s.sock.try_clone().expect("clone")
        })
        .collect();
    answered_quickly("GET / over HTTPS", || {
        https_get(&https, &cp.addrs.ip, &cfg, "/").map(|(s, _)| s)
    });
    // The handshake is bounded by apiServer.readHeaderTimeout (1 s).
    let deadline = opened + Duration::from_secs(1) + SLACK;
    assert_all_closed("unfinished TLS", &mut hostile, deadline, &cp);
    assert_all_closed("half-request HTTPS", &mut half_request, deadline, &cp);
}

#[test]
fn diagnostics_answer_ready_and_close_half_open_clients() {
    if !enough_descriptors("diagnostics_answer_ready_and_close_half_open_clients") {
        return;
    }
    let cp = ControlPlane::start_with_nofile(&[], 1024);
    let diag = format!("127.0.0.1:{}", cp.addrs.diagnostics);
    let opened = Instant::now();
    let mut hostile = hostile_http(&diag, HOSTILE);
    answered_quickly("GET /ready", || {
        http("GET", &diag, "/ready", None, &[]).map(|r| r.status)
    });
    // Kuma's diagnostics server allows 1 s for a request head.
    assert_all_closed(
        "half-open diagnostics",
        &mut hostile,
        opened + Duration::from_secs(1) + SLACK,
        &cp,
    );
}

#[test]
fn the_dp_server_closes_stalled_clients_while_a_proxy_connects() {
    if !enough_descriptors("the_dp_server_closes_stalled_clients_while_a_proxy_connects") {
        return;
    }
    // Long enough that the proxy below is certainly served while the hostile clients
    // are still connected.
    let timeout = Duration::from_secs(8);
    let cp = ControlPlane::start_with_nofile(&[("KUMA_DP_SERVER_READ_HEADER_TIMEOUT", "8s")], 1024);
    let dp_addr = format!("127.0.0.1:{}", cp.addrs.dp_server);
    let cfg = tls_config(&cp.dp_ca_file(), b"h2");
    let opened = Instant::now();
    let mut hostile = hostile_tls(&dp_addr, HOSTILE);
    // Finished handshakes that then send no HTTP/2 preface, or the preface and SETTINGS
    // but never a request.
    let mut stalled: Vec<TcpStream> = (0..10)
        .map(|i| {
            let mut s = tls_connect(&dp_addr, "localhost", &cfg);
            if i % 2 == 1 {
                s.write_all(
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
                )
                .expect("preface");
                s.flush().expect("flush");
            }
            s.sock.try_clone().expect("clone")
        })
        .collect();

    let admin = free_port("127.0.0.1");
    let ip = loopback_ip();
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: steady-1\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 1\n    tags:\n      kuma.io/service: steady\n"
    );
    let mut dp = Dataplane::start(&cp, "steady-1", &yaml, admin);
    dp.wait_ready();
    assert!(
        still_open(&hostile[0]) && still_open(&stalled[0]),
        "the proxy should have been served while the stalled clients were connected (took {:?})",
        opened.elapsed()
    );
    let deadline = opened + timeout + SLACK;
    assert_all_closed("unfinished TLS", &mut hostile, deadline, &cp);
    assert_all_closed("stalled HTTP/2", &mut stalled, deadline, &cp);
    // The proxy's own connection holds a stream: it stays.
    assert!(dp.process.exited().is_none(), "{}", dp.process.logs());
    let r = http("GET", &dp.admin, "/ready", None, &[]).expect("dp ready");
    assert_eq!(r.status, 200);
    let overview = cp
        .dataplane_overview("default", "steady-1")
        .expect("overview");
    assert_eq!(overview["online"], true, "{overview}");
}

#[test]
fn the_global_kds_port_closes_unfinished_handshakes() {
    if !enough_descriptors("the_global_kds_port_closes_unfinished_handshakes") {
        return;
    }
    let kds = free_port("127.0.0.1");
    let cp = ControlPlane::start_with(&[
        ("KUMA_MODE", "global"),
        ("KUMA_MULTIZONE_GLOBAL_KDS_GRPC_PORT", &kds.to_string()),
    ]);
    let addr = format!("127.0.0.1:{kds}");
    let cfg = tls_config(&cp.work_dir.join("tls/kds-server.crt"), b"h2");
    let opened = Instant::now();
    let mut hostile = hostile_tls(&addr, 200);
    let mut stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            tls_connect(&addr, "localhost", &cfg)
                .sock
                .try_clone()
                .expect("clone")
        })
        .collect();
    // KDS allows 10 s (zones connect across a WAN).
    let deadline = opened + Duration::from_secs(10) + SLACK;
    assert_all_closed("unfinished TLS (KDS)", &mut hostile, deadline, &cp);
    assert_all_closed("stalled HTTP/2 (KDS)", &mut stalled, deadline, &cp);
}

#[test]
fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let cp = ControlPlane::start_with(&[
        ("KUMA_API_SERVER_MAX_CONNECTIONS", "20"),
        ("KUMA_API_SERVER_READ_HEADER_TIMEOUT", "3s"),
    ]);
    let api = cp.addrs.api();
    let silent: Vec<TcpStream> = (0..20).map(|_| connect(&api)).collect();
    let opened = Instant::now();
    // The 21st client is not served while the cap is taken...
    let mut waiting = connect(&api);
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let early = waiting.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served beyond the cap of 20 connections: {early:?}"
    );
    // ...and is once the silent ones time out (3 s).
    waiting
        .set_read_timeout(Some(Duration::from_secs(3) + SLACK))
        .expect("timeout");
    let mut raw = Vec::new();
    let _ = waiting.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "after the cap freed up: {text:?}\n{}",
        tail(&cp.logs())
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(2),
        "{:?}",
        opened.elapsed()
    );
    assert!(
        cp.logs()
            .contains("apiServer.maxConnections (KUMA_API_SERVER_MAX_CONNECTIONS)"),
        "{}",
        cp.logs()
    );
    drop(silent);
}

/// Sends one keep-alive request on `s` and reads its response (`Content-Length` framed).
fn keep_alive_get(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the response was complete");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().expect("length"))
                })
                .expect("content-length");
            if body.len() >= len {
                return head.lines().next().unwrap_or_default().to_string();
            }
        }
    }
}

#[test]
fn keep_alive_connections_live_until_the_idle_timeout() {
    let cp = ControlPlane::start_with(&[("KUMA_API_SERVER_IDLE_TIMEOUT", "3s")]);
    let mut s = connect(&cp.addrs.api());
    assert_eq!(keep_alive_get(&mut s, "/"), "HTTP/1.1 200 OK");
    // Idle for longer than the read-header timeout (1 s): still usable.
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(keep_alive_get(&mut s, "/meshes"), "HTTP/1.1 200 OK");
    let idle_from = Instant::now();
    assert!(
        closed_by(&mut s, idle_from + Duration::from_secs(3) + SLACK),
        "an idle keep-alive connection must close after apiServer.idleTimeout"
    );
    assert!(
        idle_from.elapsed() >= Duration::from_millis(2500),
        "closed after {:?}, before the idle timeout",
        idle_from.elapsed()
    );
}

#[test]
fn slow_request_bodies_are_cut_by_the_read_and_write_timeouts() {
    let cp = ControlPlane::start_with(&[
        ("KUMA_API_SERVER_READ_TIMEOUT", "2s"),
        ("KUMA_API_SERVER_WRITE_TIMEOUT", "20s"),
    ]);
    let api = cp.addrs.api();
    let slow_put = |api: &str| {
        let mut s = connect(api);
        s.write_all(b"PUT /meshes/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            .expect("write");
        s
    };
    // readTimeout: the body must arrive within 2 s of the head; the request fails.
    let mut s = slow_put(&api);
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(2) + SLACK))
        .expect("timeout");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains("read timeout"),
        "after {:?}: {text:?}",
        start.elapsed()
    );
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(cp.get("/meshes/slow").status, 404);
    drop(cp);

    // writeTimeout: the whole exchange must end within 2 s of the head; the connection is cut.
    let cp = ControlPlane::start_with(&[
        ("KUMA_API_SERVER_READ_TIMEOUT", "20s"),
        ("KUMA_API_SERVER_WRITE_TIMEOUT", "2s"),
    ]);
    let mut s = slow_put(&cp.addrs.api());
    let start = Instant::now();
    assert!(
        closed_by(&mut s, start + Duration::from_secs(2) + SLACK),
        "a request still unanswered after apiServer.writeTimeout must be cut"
    );
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

/// A proxy that floods the DP server with one huge message: the message is refused from its
/// length prefix (nothing is buffered: `OutOfRange`, as gRPC says), and the control plane
/// keeps serving proxies.
#[test]
fn the_dp_server_refuses_a_message_over_its_limit() {
    let cp = ControlPlane::start();
    let tls = tls_config(&cp.dp_ca_file(), b"h2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        let channel = aerie_xds::client::channel("localhost", cp.addrs.dp_server, tls)
            .await
            .expect("channel");
        let mut client = aerie_xds::AggregatedDiscoveryServiceClient::new(channel)
            .max_encoding_message_size(64 << 20);
        // 5 MiB: over the DP server's 4 MiB limit.
        let huge = aerie_xds::DiscoveryRequest {
            type_url: "x".repeat(5 << 20),
            ..Default::default()
        };
        let started = Instant::now();
        let answer = client
            .stream_aggregated_resources(tokio_stream::once(huge))
            .await;
        (answer.err(), started.elapsed())
    });
    let (status, took) = status;
    let status = status.expect("a 5 MiB message must be refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert!(took < Duration::from_secs(5), "refused after {took:?}");

    // A well-behaved proxy still connects.
    let admin = free_port("127.0.0.1");
    let ip = loopback_ip();
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: calm-1\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 1\n    tags:\n      kuma.io/service: calm\n"
    );
    let mut dp = Dataplane::start(&cp, "calm-1", &yaml, admin);
    dp.wait_ready();
}

/// Incremental xDS is not served: a client asking for it gets `Unimplemented` with a message
/// that says what to use, and the DP server keeps serving.
#[test]
fn the_dp_server_refuses_incremental_xds_clearly() {
    let cp = ControlPlane::start();
    let tls = tls_config(&cp.dp_ca_file(), b"h2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        let channel = aerie_xds::client::channel("localhost", cp.addrs.dp_server, tls)
            .await
            .expect("channel");
        let mut client = aerie_xds::AggregatedDiscoveryServiceClient::new(channel);
        client
            .delta_aggregated_resources(tokio_stream::once(
                aerie_xds::DeltaDiscoveryRequest::default(),
            ))
            .await
            .err()
    });
    let status = status.expect("incremental xDS must be refused");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("StreamAggregatedResources"),
        "{status:?}"
    );
}

/// At `dpServer.maxConnections`, a proxy waits for a slot: silent connections hold the cap
/// until the read-header timeout closes them, then the proxy gets in.
#[test]
fn at_the_dp_server_connection_cap_a_proxy_waits_for_a_free_slot() {
    let cp = ControlPlane::start_with(&[
        ("KUMA_DP_SERVER_MAX_CONNECTIONS", "5"),
        ("KUMA_DP_SERVER_READ_HEADER_TIMEOUT", "3s"),
    ]);
    let dp_addr = format!("127.0.0.1:{}", cp.addrs.dp_server);
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..5).map(|_| connect(&dp_addr)).collect();
    let admin = free_port("127.0.0.1");
    let ip = loopback_ip();
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: patient-1\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 1\n    tags:\n      kuma.io/service: patient\n"
    );
    let mut dp = Dataplane::start(&cp, "patient-1", &yaml, admin);
    dp.wait_ready();
    // It could only have got in once the silent connections were closed (3 s).
    assert!(
        opened.elapsed() >= Duration::from_millis(2500),
        "a proxy was served beyond the cap of 5 connections after {:?}",
        opened.elapsed()
    );
    assert_all_closed(
        "silent connections at the cap",
        &mut silent,
        opened + Duration::from_secs(3) + SLACK,
        &cp,
    );
    assert!(
        cp.logs()
            .contains("dpServer.maxConnections (KUMA_DP_SERVER_MAX_CONNECTIONS)"),
        "{}",
        tail(&cp.logs())
    );
}
