//! MeshCircuitBreaker enforced by the real sidecars: an instance answering 500 is ejected
//! from flight-control's load balancing for `baseEjectionTime`, then comes back; of three
//! instances, the one failing 60% of its requests is ejected by the success-rate detector
//! and by the failure-percentage detector, judged once per `interval`; `maxRequests: 1`
//! turns a request made while another is in flight into Envoy's overflow 503; and
//! `maxConnectionPools: 1` keeps flight-control on the one connection pool it has (a
//! request needing another gets Envoy's `503 no healthy upstream`).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{http, wait_for};
use common::*;

const EJECT: &str = "type: MeshCircuitBreaker\nname: eject-failing-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        outlierDetection:\n          disabled: false\n          baseEjectionTime: 4s\n          maxEjectionPercent: 50\n          detectors:\n            totalFailures:\n              consecutive: 3\n";

const ONE_AT_A_TIME: &str = "type: MeshCircuitBreaker\nname: one-at-a-time\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        connectionLimits:\n          maxRequests: 1\n";

/// flight-control's outlier detection to check-in-api with `detector` (YAML under
/// `detectors:`), judged every second, ejecting for 4s.
fn interval_detector(detector: &str) -> String {
    format!(
        "type: MeshCircuitBreaker\nname: eject-outlier-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        outlierDetection:\n          interval: 1s\n          baseEjectionTime: 4s\n          maxEjectionPercent: 50\n          detectors:\n            {detector}\n"
    )
}

/// flight-control's connection pools to check-in-api.
fn connection_pools(n: u32) -> String {
    format!(
        "type: MeshCircuitBreaker\nname: few-pools\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        connectionLimits:\n          maxConnectionPools: {n}\n"
    )
}

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

/// Three check-in-api instances, the third (`check-in-api-bad`) failing 60% of its
/// requests with 500; `policy` applied once all three answer. The bad instance must get no
/// traffic while it is ejected, and come back after `baseEjectionTime` (4s).
fn ejected_as_an_outlier(policy: &str) {
    let mut k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let _good = k.add_checkin_instance_named("check-in-api-2", "check-in-api-b", &[]);
    let _bad = k.add_checkin_instance_named(
        "check-in-api-3",
        "check-in-api-bad",
        &["--fail-percent", "60"],
    );
    wait_for("the three instances answer", PROPAGATION, || {
        let answers: Vec<_> = (0..12)
            .map(|_| answered_by(&k.from_flight_control))
            .collect();
        ["check-in-api", "check-in-api-b"]
            .iter()
            .all(|name| answers.contains(&Ok((*name).to_owned())))
            .then_some(())
            .filter(|()| answers.contains(&Err(500)))
    });

    k.apply(policy);
    let healthy =
        |a: &Result<String, u16>| matches!(a.as_deref(), Ok("check-in-api") | Ok("check-in-api-b"));
    // Ejected at an interval's end: a run of answers all from the healthy instances, which
    // round robin over three instances cannot give otherwise.
    let ejected_at = wait_for("the failing instance is ejected", PROPAGATION, || {
        let start = Instant::now();
        (0..15)
            .all(|_| healthy(&answered_by(&k.from_flight_control)))
            .then_some(start)
    });
    // While ejected, it gets no traffic at all.
    let mut calls = 0;
    while ejected_at.elapsed() < Duration::from_secs(3) {
        let a = answered_by(&k.from_flight_control);
        assert!(
            healthy(&a),
            "{a:?} {:?} after the ejection",
            ejected_at.elapsed()
        );
        calls += 1;
    }
    assert!(calls > 30, "only {calls} calls while ejected");
    // After baseEjectionTime it is back (and fails again).
    wait_for("the ejected instance is back", PROPAGATION, || {
        (!healthy(&answered_by(&k.from_flight_control))).then_some(())
    });
    assert!(
        ejected_at.elapsed() >= Duration::from_millis(3_500),
        "back after only {:?}",
        ejected_at.elapsed()
    );
    // booking is not selected: it keeps calling the failing instance.
    assert!(
        (0..30).any(|_| answered_by(&k.from_booking) == Err(500)),
        "booking keeps calling the three instances"
    );
}

#[test]
fn success_rate_ejects_the_instance_below_the_others() {
    // 100%, 100% and 40%: the mean is 80, one standard deviation 28.3.
    ejected_as_an_outlier(&interval_detector(
        "successRate: {minimumHosts: 3, requestVolume: 10, standardDeviationFactor: \"1.0\"}",
    ));
}

#[test]
fn failure_percentage_ejects_the_instance_failing_half_its_requests() {
    ejected_as_an_outlier(&interval_detector(
        "failurePercentage: {minimumHosts: 3, requestVolume: 10, threshold: 50}",
    ));
}

#[test]
fn max_connection_pools_keeps_the_pools_there_are() {
    // One worker thread: one pool per check-in-api instance.
    let mut k = KongAir::start_with("http", &["--concurrency", "1"]);
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    // flight-control has a pool to the one instance (its connection stays open, idle).
    k.apply(&connection_pools(1));
    wait_for(
        "flight-control has maxConnectionPools: 1",
        PROPAGATION,
        || {
            let dump = http("GET", &k.flight_control.admin, "/config_dump", None, &[]).ok()?;
            dump.body
                .contains("\"maxConnectionPools\": 1")
                .then_some(())
        },
    );
    // A new instance would need a new pool: requests sent to it are refused as Envoy
    // refuses a request it has no pool for; the first instance keeps answering.
    let _two = k.add_checkin_instance("check-in-api-b", &[]);
    let refused = wait_for(
        "a request needing a new pool is refused",
        PROPAGATION,
        || {
            (0..10)
                .map(|_| http("GET", &k.from_flight_control, "/check-in", None, &[]).unwrap())
                .find(|r| r.status == 503)
        },
    );
    assert_eq!(refused.body, "no healthy upstream");
    // Round robin alternates: the first instance answers, the second is refused.
    let answers: Vec<_> = (0..20)
        .map(|_| answered_by(&k.from_flight_control))
        .collect();
    let (ok, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.is_ok());
    assert!(
        ok.iter().all(|a| a.as_deref() == Ok("check-in-api"))
            && refused.iter().all(|a| **a == Err(503)),
        "{answers:?}"
    );
    assert_eq!((ok.len(), refused.len()), (10, 10), "{answers:?}");
    assert!(
        k.flight_control
            .stats()
            .contains("upstream_cx_pool_overflow"),
        "{}",
        k.flight_control.stats()
    );

    // More pools: the new instance gets its own.
    k.apply(&connection_pools(64));
    wait_for("the new instance answers", PROPAGATION, || {
        (answered_by(&k.from_flight_control).as_deref() == Ok("check-in-api-b")).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(call(&k.from_flight_control), 200);
    }
    // booking is not selected: it reaches both instances.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        seen.insert(answered_by(&k.from_booking));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}
