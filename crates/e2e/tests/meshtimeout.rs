//! MeshTimeout enforced by the real sidecars: a request to a hung upstream ends with `504
//! upstream request timeout` at the configured `http.requestTimeout`, only on the proxies the
//! policy selects, and Kuma's default (15 s) returns when the policy goes.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{Dataplane, free_port, http, loopback_ip, start_app, wait_for};
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
    // `inspect` names the policies on flight-control's outbound and the timeout in force.
    let inspect = k.kumactl.ok(&[
        "inspect",
        "dataplane",
        "flight-control-1",
        "--type=policies",
    ]);
    let outbound = inspect
        .split("\noutbound ")
        .find(|o| o.contains("check-in-api-blu"))
        .unwrap_or_else(|| panic!("no outbound to check-in-api in:\n{inspect}"));
    assert!(
        outbound.contains("mesh-timeout-all-default\n    fast-check-in\n")
            && outbound.contains("http.requestTimeout=1s "),
        "{inspect}"
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
