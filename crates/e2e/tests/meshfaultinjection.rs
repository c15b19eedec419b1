//! MeshFaultInjection enforced by the real sidecars, with mTLS so callers have identities:
//! a 50 % abort for one caller (legacy `from`) hits about half of its requests and none of
//! another caller's; a 100 % delay for one SPIFFE ID (`rules`) holds its requests; a
//! bandwidth limit slows response bodies; `_explain` shows the faults per inbound.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{http, wait_for};
use common::*;

/// A 50 % abort with 503 on check-in-api, for flight-control only.
const ABORT_HALF: &str = "type: MeshFaultInjection\nname: abort-flight-control\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: MeshService\n        name: flight-control-blu\n      default:\n        http:\n          - abort:\n              httpStatus: 503\n              percentage: 50\n";

/// A 300 ms delay on every request of flight-control's SPIFFE ID (the `rules` form).
const DELAY: &str = "type: MeshFaultInjection\nname: delay-flight-control\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  rules:\n    - matches:\n        - spiffeID:\n            type: Exact\n            value: spiffe://default/flight-control-blu\n      default:\n        http:\n          - delay:\n              value: 300ms\n              percentage: \"100\"\n";

/// Responses of check-in-api at 10 kbps (Envoy's KiB/s: 10240 bytes per second).
const SLOW_BODIES: &str = "type: MeshFaultInjection\nname: slow-bodies\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          - responseBandwidth:\n              limit: 10kbps\n              percentage: 100\n";

/// Kong Air with mTLS and everyone allowed. The mesh's default MeshRetry (which retries
/// 503s) and MeshCircuitBreaker (which ejects an endpoint after consecutive 5xx) are removed
/// so that what the caller sees is what the fault filter did.
fn mesh() -> KongAir {
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    for (kind, name) in [
        ("meshretry", "mesh-retry-all-default"),
        ("meshcircuitbreaker", "mesh-circuit-breaker-all-default"),
    ] {
        k.kumactl.ok(&["delete", kind, name, "--mesh", "default"]);
    }
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    wait_status("booking -> check-in", &k.from_booking, 200);
    k
}

fn statuses(outbound: &str, n: usize) -> (usize, usize, usize) {
    let (mut ok, mut aborted, mut other) = (0, 0, 0);
    for _ in 0..n {
        match http("GET", outbound, "/check-in", None, &[]) {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) if r.status == 503 && r.body == "fault filter abort" => aborted += 1,
            _ => other += 1,
        }
    }
    (ok, aborted, other)
}

#[test]
fn a_half_abort_hits_half_of_the_selected_callers_requests_only() {
    let k = mesh();
    k.apply(ABORT_HALF);
    wait_for("flight-control sees an abort", PROPAGATION, || {
        let r = http("GET", &k.from_flight_control, "/check-in", None, &[]).ok()?;
        (r.status == 503 && r.body == "fault filter abort").then_some(())
    });
    let (ok, aborted, other) = statuses(&k.from_flight_control, 2000);
    assert_eq!(
        other, 0,
        "only 200s and aborts ({ok} ok, {aborted} aborted)"
    );
    let share = aborted as f64 / 2000.0;
    eprintln!("flight-control: {ok} ok, {aborted} aborted of 2000");
    assert!(
        (0.47..=0.53).contains(&share),
        "{aborted} of 2000 aborted ({share})"
    );
    let (ok, aborted, other) = statuses(&k.from_booking, 1000);
    assert_eq!(
        (ok, aborted, other),
        (1000, 0, 0),
        "booking is not selected"
    );

    // `_explain` shows the fault on check-in-api's inbound.
    let explained =
        k.cp.get("/meshes/default/dataplanes/check-in-api-1/_explain")
            .json();
    let fault = &explained["inbounds"][0]["meshFaultInjection"];
    assert_eq!(
        fault["policies"],
        serde_json::json!(["abort-flight-control"]),
        "{explained}"
    );
    let abort = &fault["effective"]["entries"][0]["faults"][0]["abort"];
    assert_eq!(
        (abort["status"].as_u64(), abort["perMillion"].as_u64()),
        (Some(503), Some(500_000)),
        "{explained}"
    );

    // Removed, the fault stops.
    k.kumactl.ok(&[
        "delete",
        "meshfaultinjection",
        "abort-flight-control",
        "--mesh",
        "default",
    ]);
    wait_for("no more aborts", PROPAGATION, || {
        (statuses(&k.from_flight_control, 50) == (50, 0, 0)).then_some(())
    });
}

#[test]
fn a_sure_delay_holds_the_matched_spiffe_ids_requests() {
    let k = mesh();
    let timed = |outbound: &str| {
        let start = Instant::now();
        let r = http("GET", outbound, "/check-in", None, &[]).unwrap();
        (r.status, start.elapsed())
    };
    k.apply(DELAY);
    wait_for("flight-control is delayed", PROPAGATION, || {
        (timed(&k.from_flight_control).1 >= Duration::from_millis(300)).then_some(())
    });
    for _ in 0..5 {
        let (status, took) = timed(&k.from_flight_control);
        assert_eq!(status, 200);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        let (status, took) = timed(&k.from_booking);
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_millis(300),
            "booking is not matched: {took:?}"
        );
    }
}

#[test]
fn a_bandwidth_limit_slows_response_bodies() {
    let k = mesh();
    let fetch = |outbound: &str| {
        let start = Instant::now();
        let r = http("GET", outbound, "/bytes/20480", None, &[]).unwrap();
        (r.status, r.body.len(), start.elapsed())
    };
    let (status, len, took) = fetch(&k.from_booking);
    assert_eq!((status, len), (200, 20480));
    assert!(
        took < Duration::from_millis(1000),
        "{took:?} before the policy"
    );
    k.apply(SLOW_BODIES);
    // 20 KiB at 10 KiB/s: about 2 s.
    let (status, len, took) = wait_for("bodies are slowed", PROPAGATION, || {
        let r = fetch(&k.from_booking);
        (r.2 >= Duration::from_millis(1500)).then_some(r)
    });
    assert_eq!((status, len), (200, 20480), "the whole body arrives");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A small body is barely affected.
    let start = Instant::now();
    assert_eq!(call(&k.from_flight_control), 200);
    assert!(start.elapsed() < Duration::from_millis(1000));
}
