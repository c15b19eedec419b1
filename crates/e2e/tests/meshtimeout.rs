//! MeshTimeout enforced by the real sidecars: a request to a hung upstream ends with `504
//! upstream request timeout` at the configured `http.requestTimeout`, only on the proxies the
//! policy selects, and Kuma's default (15 s) returns when the policy goes; streams that idle
//! or outlive `http.streamIdleTimeout` / `http.maxStreamDuration` end with Envoy's answers
//! (`504`/`408` before the response headers, a reset after), and a request head that does
//! not arrive within `http.requestHeadersTimeout` gets `408 request header timeout`;
//! kumactl and `_explain` show it.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{
    Dataplane, Ended, RawExchange, free_port, http, loopback_ip, raw_exchange, start_app, wait_for,
};
use common::*;

/// A 1 s request timeout on flight-control's outbounds to check-in-api only.
const FAST: &str = "type: MeshTimeout\nname: fast-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        http:\n          requestTimeout: 1s\n";

fn timed(outbound: &str, path: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let r = http("GET", outbound, path, None, &[]).unwrap();
    (r.status, r.body, start.elapsed())
}

#[test]
fn a_hung_upstream_ends_with_504_at_the_configured_request_timeout() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);

    // Kuma's default policy (15 s) lets a 2 s answer through.
    let (status, _, took) = timed(&k.from_flight_control, "/delay/2000");
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(2000), "{took:?}");

    k.apply(FAST);
    let (status, body, took) = wait_for(
        "flight-control's request timeout is 1 s",
        PROPAGATION,
        || {
            let r = timed(&k.from_flight_control, "/delay/3000");
            (r.0 == 504).then_some(r)
        },
    );
    assert_eq!((status, body.as_str()), (504, "upstream request timeout"));
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "the timeout fired after {took:?}"
    );
    // kumactl lists the policies applying to flight-control (kumactl 2.14's text), and
    // Aerie's `_explain` shows the timeout its outbound to check-in-api enforces.
    let inspect = k.kumactl.ok(&["inspect", "dataplane", "flight-control-1"]);
    assert!(
        inspect.contains("  MeshTimeout\n    mesh-timeout-all-default\nfast-check-in\n"),
        "{inspect}"
    );
    let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    assert_eq!(
        outbound["meshTimeout"]["policies"],
        serde_json::json!(["mesh-timeout-all-default", "fast-check-in"]),
        "{outbound}"
    );
    assert_eq!(
        outbound["meshTimeout"]["effective"]["requestMs"], 1000,
        "{outbound}"
    );
    // `kumactl inspect dataplane --type=config` (Kuma's `_config`): the config the control
    // plane sent flight-control, with the merged timeouts of its outbound in it.
    let config: serde_json::Value = serde_json::from_str(&k.kumactl.ok(&[
        "inspect",
        "dataplane",
        "flight-control-1",
        "--type=config",
    ]))
    .unwrap();
    let outbounds = config["xds"]["outboundPolicies"].as_array().unwrap();
    assert_eq!(outbounds.len(), 1, "{config}");
    assert_eq!(outbounds[0]["timeouts"]["requestMs"], 1000, "{config}");
    assert_eq!(
        config["xds"]["outbounds"][0]["service"], "check-in-api-blu",
        "{config}"
    );
    // Quick answers still pass; the proxy the policy does not select keeps the default.
    assert_eq!(timed(&k.from_flight_control, "/delay/100").0, 200);
    let (status, _, took) = timed(&k.from_booking, "/delay/2000");
    assert_eq!(status, 200, "booking is not selected (took {took:?})");

    // The policy goes: the default holds again.
    k.kumactl.ok(&[
        "delete",
        "meshtimeout",
        "fast-check-in",
        "--mesh",
        "default",
    ]);
    wait_for("the default request timeout is back", PROPAGATION, || {
        (timed(&k.from_flight_control, "/delay/1500").0 == 200).then_some(())
    });
}

/// A caller whose outbound names a MeshService (`backendRef`), reached by a policy that
/// selects MeshServices by their labels: the labels are read from the stored MeshService, so
/// relabelling it moves the policy.
#[test]
fn a_policy_selects_a_backend_ref_outbound_by_the_mesh_service_labels() {
    let k = KongAir::start("http");
    let service = |team: &str| {
        format!(
            "type: MeshService\nname: check-in-api-blu\nmesh: default\nlabels:\n  team: {team}\nspec:\n  selector:\n    dataplaneTags:\n      kuma.io/service: check-in-api-blu\n  ports:\n  - port: 9000\n    targetPort: 9000\n    appProtocol: http\n"
        )
    };
    k.apply(&service("airport"));
    // ops-1 reaches check-in-api through a MeshService backendRef.
    let app = free_port("127.0.0.1");
    let _app = start_app("ops", &format!("127.0.0.1:{app}"), false);
    let (admin, out) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: ops-1\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app}\n    tags:\n      kuma.io/service: ops\n      kuma.io/protocol: http\n  outbound:\n  - port: {out}\n    backendRef:\n      kind: MeshService\n      name: check-in-api-blu\n      port: 9000\n",
        loopback_ip()
    );
    let mut ops = Dataplane::start(&k.cp, "ops-1", &yaml, admin);
    ops.wait_ready();
    let from_ops = format!("127.0.0.1:{out}");
    wait_status("ops -> check-in (backendRef)", &from_ops, 200);

    k.apply("type: MeshTimeout\nname: airport-is-fast\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      labels:\n        team: airport\n    default:\n      http:\n        requestTimeout: 1s\n");
    let (status, took) = wait_for("ops' request timeout is 1 s", PROPAGATION, || {
        let (status, _, took) = timed(&from_ops, "/delay/3000");
        (status == 504).then_some((status, took))
    });
    assert_eq!(status, 504);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "the timeout fired after {took:?}"
    );

    // Relabelled, the MeshService no longer matches: Kuma's default (15 s) holds again.
    k.apply(&service("elsewhere"));
    wait_for("the labels no longer match", PROPAGATION, || {
        (timed(&from_ops, "/delay/1500").0 == 200).then_some(())
    });
}

/// A MeshTimeout on flight-control's outbound to check-in-api with `http` set to `conf`.
fn outbound_policy(name: &str, conf: &str) -> String {
    format!(
        "type: MeshTimeout\nname: {name}\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        http:\n{conf}"
    )
}

/// A MeshTimeout on check-in-api's inbound (the `rules` form) with `http` set to `conf`.
fn inbound_policy(name: &str, conf: &str) -> String {
    format!(
        "type: MeshTimeout\nname: {name}\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  rules:\n    - default:\n        http:\n{conf}"
    )
}

/// `GET path` on a fresh connection; reads until the connection ends or is quiet for 5 s.
fn get(addr: &str, path: &str) -> RawExchange {
    let req = format!("GET {path} HTTP/1.1\r\nHost: check-in-api\r\nConnection: close\r\n\r\n");
    raw_exchange(
        addr,
        &[req.as_bytes()],
        Duration::ZERO,
        Duration::from_secs(5),
    )
    .unwrap()
}

/// `POST /echo` announcing a 10-byte body and sending only 5 of them.
fn post_half_a_body(addr: &str) -> RawExchange {
    let req = b"POST /echo HTTP/1.1\r\nHost: check-in-api\r\ncontent-length: 10\r\n\r\n12345";
    raw_exchange(addr, &[req], Duration::ZERO, Duration::from_secs(5)).unwrap()
}

/// One quick retry of a reset on flight-control's outbound to check-in-api.
const RETRY_RESET_ONCE: &str = "type: MeshRetry\nname: retry-reset-once\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        http:\n          numRetries: 1\n          retryOn: [Reset]\n          backOff:\n            baseInterval: 5ms\n            maxInterval: 20ms\n";

fn between(took: Duration, low_ms: u64, high_ms: u64) -> bool {
    took >= Duration::from_millis(low_ms) && took < Duration::from_millis(high_ms)
}

#[test]
fn a_stream_idle_for_the_stream_idle_timeout_ends_before_or_after_its_response_headers() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);

    // Kuma's default (30 min): an upstream that pauses 1.5 s mid-body is waited for.
    let r = get(&k.from_flight_control, "/stall/1500");
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(r.body(), "partial\nrest\n", "{r:?}");
    assert!(r.chunked_complete(), "{r:?}");

    // 500 ms, with the request timeout off: only the stream idle timeout limits a request.
    k.apply(&outbound_policy(
        "stream-idle",
        "          requestTimeout: 0s\n          streamIdleTimeout: 500ms\n",
    ));
    // An upstream that never answers: Envoy's `504 stream timeout` (the request was whole).
    let hung = wait_for(
        "flight-control's stream idle timeout is 500 ms",
        PROPAGATION,
        || {
            let r = get(&k.from_flight_control, "/delay/3000");
            (r.status() == Some(504)).then_some(r)
        },
    );
    assert_eq!(hung.body(), "stream timeout", "{hung:?}");
    assert!(between(hung.took, 450, 2500), "{hung:?}");

    // Headers and a first chunk, then nothing: the stream is reset (the connection closed
    // without the last chunk) 500 ms after the last byte.
    let r = get(&k.from_flight_control, "/stall/5000");
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(r.body(), "partial\n", "{r:?}");
    assert!(!r.chunked_complete(), "{r:?}");
    assert_ne!(r.ended, Ended::Quiet, "{r:?}");
    assert!(between(r.took, 450, 2500), "{r:?}");

    // A slow answer whose chunks come every 150 ms (1.35 s in all) is not idle.
    let r = get(&k.from_flight_control, "/trickle/10/150");
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(r.chunked_complete(), "{r:?}");
    assert_eq!(r.body().lines().count(), 10, "{r:?}");
    assert!(r.took >= Duration::from_millis(1300), "{r:?}");

    // A client that stops sending its body: `408 stream timeout` (the request was not whole).
    let r = post_half_a_body(&k.from_flight_control);
    assert_eq!(r.status(), Some(408), "{r:?}");
    assert_eq!(r.body(), "stream timeout", "{r:?}");
    assert!(between(r.took, 450, 2500), "{r:?}");
    // A whole body is echoed.
    let r = http(
        "POST",
        &k.from_flight_control,
        "/echo",
        Some("0123456789"),
        &[],
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "0123456789"));
    assert!(
        k.flight_control
            .stats()
            .contains("kind=\"stream_idle_timeout\""),
        "{}",
        k.flight_control.stats()
    );

    // On check-in-api's inbound (called directly: the mesh has no mTLS) the same, from its
    // own policy.
    assert!(get(&k.checkin_inbound, "/stall/1500").chunked_complete());
    k.apply(&inbound_policy(
        "check-in-stream-idle",
        "          streamIdleTimeout: 500ms\n",
    ));
    let r = wait_for(
        "check-in's stream idle timeout is 500 ms",
        PROPAGATION,
        || {
            let r = get(&k.checkin_inbound, "/stall/3000");
            (!r.chunked_complete()).then_some(r)
        },
    );
    assert_eq!(
        (r.status(), r.body().as_str()),
        (Some(200), "partial\n"),
        "{r:?}"
    );
    assert!(between(r.took, 450, 2500), "{r:?}");
}

#[test]
fn a_stream_is_ended_at_the_maximum_stream_duration_even_while_bytes_flow() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    // Off by default: a 2 s trickle arrives whole.
    let r = get(&k.from_flight_control, "/trickle/11/200");
    assert!(r.chunked_complete(), "{r:?}");

    // As Envoy, an attempt cut before its response headers is a reset, which MeshRetry may
    // retry (Kuma's default policy does, on `gateway-error`): one retry on `Reset`, quickly.
    k.apply(RETRY_RESET_ONCE);
    k.apply(&outbound_policy(
        "max-stream",
        "          maxStreamDuration: 700ms\n",
    ));
    // Before the response headers: `504 upstream max stream duration reached`, after two
    // attempts of 700 ms each.
    let r = wait_for(
        "flight-control's streams last 700 ms at most",
        PROPAGATION,
        || {
            let r = get(&k.from_flight_control, "/delay/3000");
            (r.status() == Some(504)).then_some(r)
        },
    );
    assert_eq!(r.body(), "upstream max stream duration reached", "{r:?}");
    assert!(between(r.took, 1350, 2900), "two attempts: {r:?}");

    // After them: a chunk every 200 ms, never idle, still reset at 700 ms.
    let r = get(&k.from_flight_control, "/trickle/11/200");
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(!r.chunked_complete(), "{r:?}");
    assert_ne!(r.ended, Ended::Quiet, "{r:?}");
    let chunks = r.body().lines().count();
    assert!((2..=5).contains(&chunks), "{chunks} chunks: {r:?}");
    assert!(between(r.took, 650, 2500), "{r:?}");

    // A request still arriving when the time is up: `408`.
    let r = post_half_a_body(&k.from_flight_control);
    assert_eq!(r.status(), Some(408), "{r:?}");
    assert_eq!(r.body(), "upstream max stream duration reached", "{r:?}");

    // Quick exchanges pass.
    assert_eq!(call(&k.from_flight_control), 200);
    assert!(
        k.flight_control
            .stats()
            .contains("kind=\"upstream_max_stream_duration\"")
    );
}

#[test]
fn a_request_head_that_does_not_arrive_in_time_gets_408_but_idle_connections_stay() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let partial: &[u8] = b"GET /check-in HTTP/1.1\r\nHost: check-in-api\r\n";
    // Off by default: a half-sent head just waits.
    let r = raw_exchange(
        &k.from_flight_control,
        &[partial],
        Duration::ZERO,
        Duration::from_millis(1500),
    )
    .unwrap();
    assert_eq!((r.ended, r.bytes.len()), (Ended::Quiet, 0), "{r:?}");

    // (Kuma wants one more field than `requestHeadersTimeout` in `http`.)
    k.apply(&outbound_policy(
        "request-headers",
        "          requestHeadersTimeout: 400ms\n          requestTimeout: 15s\n",
    ));
    let r = wait_for(
        "flight-control's request headers timeout is 400 ms",
        PROPAGATION,
        || {
            let r = raw_exchange(
                &k.from_flight_control,
                &[partial],
                Duration::ZERO,
                Duration::from_secs(3),
            )
            .unwrap();
            (r.status() == Some(408)).then_some(r)
        },
    );
    assert!(
        r.text().starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{r:?}"
    );
    assert_eq!(r.body(), "request header timeout", "{r:?}");
    assert_ne!(r.ended, Ended::Quiet, "the connection is closed: {r:?}");
    assert!(between(r.took, 350, 2000), "{r:?}");

    // A head sent in two parts 150 ms apart arrives in time.
    let r = raw_exchange(
        &k.from_flight_control,
        &[partial, b"Connection: close\r\n\r\n"],
        Duration::from_millis(150),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status(), Some(200), "{r:?}");

    // A kept-alive connection idle for longer than the timeout is not touched: the timer
    // runs from a head's first byte, not while waiting for the next request.
    let mut conn = std::net::TcpStream::connect(&k.from_flight_control).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let whole = b"GET /check-in HTTP/1.1\r\nHost: check-in-api\r\n\r\n";
    for round in 0..2 {
        std::io::Write::write_all(&mut conn, whole).unwrap();
        let (status, _) = read_response(&mut conn);
        assert_eq!(status, 200, "request {round} on the kept-alive connection");
        if round == 0 {
            // Nothing arrives for 1 s (2.5 times the timeout).
            conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut byte = [0u8; 1];
            let err = std::io::Read::read(&mut conn, &mut byte).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{err}"
            );
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
    }
    assert!(
        k.flight_control
            .stats()
            .contains("kind=\"request_headers_timeout\"")
    );

    // check-in-api's inbound, from its own policy.
    k.apply(&inbound_policy(
        "check-in-request-headers",
        "          requestHeadersTimeout: 400ms\n          requestTimeout: 15s\n",
    ));
    let r = wait_for(
        "check-in's request headers timeout is 400 ms",
        PROPAGATION,
        || {
            let r = raw_exchange(
                &k.checkin_inbound,
                &[partial],
                Duration::ZERO,
                Duration::from_secs(3),
            )
            .unwrap();
            (r.status() == Some(408)).then_some(r)
        },
    );
    assert_eq!(r.body(), "request header timeout", "{r:?}");
    assert!(between(r.took, 350, 2000), "{r:?}");
}

/// Reads one response with a `content-length` body from a kept-alive connection.
fn read_response(conn: &mut std::net::TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = std::io::Read::read(conn, &mut buf).unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("a content-length");
        if body.len() >= len {
            let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            return (status, body[..len].to_owned());
        }
    }
}
