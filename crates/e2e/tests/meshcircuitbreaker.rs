//! MeshCircuitBreaker enforced by the real sidecars: an instance answering 500 is ejected
//! from flight-control's load balancing for `baseEjectionTime`, then comes back; and
//! `maxRequests: 1` turns a request made while another is in flight into Envoy's overflow
//! 503.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{http, wait_for};
use common::*;

const EJECT: &str = "type: MeshCircuitBreaker\nname: eject-failing-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        outlierDetection:\n          disabled: false\n          baseEjectionTime: 4s\n          maxEjectionPercent: 50\n          detectors:\n            totalFailures:\n              consecutive: 3\n";

const ONE_AT_A_TIME: &str = "type: MeshCircuitBreaker\nname: one-at-a-time\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        connectionLimits:\n          maxRequests: 1\n";

const OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// Which instance answered a call (the app's name), or the status when it failed.
fn answered_by(outbound: &str) -> Result<String, u16> {
    let r = http("GET", outbound, "/check-in", None, &[]).map_err(|_| 0u16)?;
    if r.status != 200 {
        return Err(r.status);
    }
    Ok(r.json()["service"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn an_instance_answering_500_is_ejected_until_its_ejection_ends() {
    let mut k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let _bad = k.add_checkin_instance("check-in-api-bad", &["--fail-status", "500"]);
    wait_for("both instances answer", PROPAGATION, || {
        (0..10)
            .any(|_| answered_by(&k.from_flight_control) == Err(500))
            .then_some(())
    });

    k.apply(EJECT);
    // Ejected: a run of answers all from the healthy instance, which round robin over two
    // instances cannot give otherwise.
    let ejected_at = wait_for("the failing instance is ejected", PROPAGATION, || {
        let start = Instant::now();
        (0..12)
            .all(|_| answered_by(&k.from_flight_control).as_deref() == Ok("check-in-api"))
            .then_some(start)
    });
    // While ejected, it gets no traffic at all.
    while ejected_at.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            answered_by(&k.from_flight_control).as_deref(),
            Ok("check-in-api"),
            "{:?} after the ejection",
            ejected_at.elapsed()
        );
    }
    // After baseEjectionTime it is back (and fails again).
    wait_for("the ejected instance is back", PROPAGATION, || {
        (answered_by(&k.from_flight_control) == Err(500)).then_some(())
    });
    assert!(
        ejected_at.elapsed() >= Duration::from_millis(3_500),
        "back after only {:?}",
        ejected_at.elapsed()
    );
    // booking is not selected: no ejection, round robin goes on.
    assert!(
        (0..10).any(|_| answered_by(&k.from_booking) == Err(500)),
        "booking keeps calling both instances"
    );
}

#[test]
fn max_requests_turns_a_concurrent_request_into_an_overflow_503() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    k.apply(ONE_AT_A_TIME);
    let outbound = k.from_flight_control.clone();
    // While a slow request is in flight, another one is refused by the circuit breaker.
    let refused = wait_for("a concurrent request overflows", PROPAGATION, || {
        let slow_to = outbound.clone();
        let slow =
            std::thread::spawn(move || http("GET", &slow_to, "/delay/1500", None, &[]).unwrap());
        let mut refused = None;
        while !slow.is_finished() {
            let r = http("GET", &outbound, "/check-in", None, &[]).unwrap();
            if r.status == 503 {
                refused = Some(r);
                break;
            }
        }
        let slow = slow.join().unwrap();
        assert_eq!(slow.status, 200, "the request in flight is not disturbed");
        refused
    });
    assert_eq!(refused.body, OVERFLOW);
    // Alone, requests pass.
    for _ in 0..5 {
        assert_eq!(call(&k.from_flight_control), 200);
    }
    // booking is not selected: concurrent requests pass.
    let slow_to = k.from_booking.clone();
    let slow = std::thread::spawn(move || http("GET", &slow_to, "/delay/1000", None, &[]).unwrap());
    while !slow.is_finished() {
        assert_eq!(call(&k.from_booking), 200);
    }
    assert_eq!(slow.join().unwrap().status, 200);
}
