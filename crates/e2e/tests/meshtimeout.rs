//! MeshTimeout enforced by the real sidecars: a request to a hung upstream ends with `504
//! upstream request timeout` at the configured `http.requestTimeout`, only on the proxies the
//! policy selects, and Kuma's default (15 s) returns when the policy goes; kumactl and
//! `_explain` show it.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{http, wait_for};
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
