//! MeshHealthCheck enforced by the real sidecars: flight-control's sidecar probes both
//! check-in-api instances (through their sidecars, over mTLS with its own identity); once
//! one fails its health check `unhealthyThreshold` times in a row it gets no traffic from
//! flight-control, and it gets traffic again once it passes. The HTTP check (`GET /health`,
//! expected 200) and the TCP check (bytes sent, a block expected in the answer: Kuma's
//! fallback for an HTTP destination whose `http` check is disabled) both do. booking, not
//! selected, keeps calling both instances.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aerie_e2e::{http, wait_for};
use common::*;

/// flight-control's health checks of check-in-api: every second, unhealthy after two
/// failed checks, healthy after one passed; `check` is the YAML of the check kinds (under
/// `default:`, indented 8).
fn health_check(check: &str) -> String {
    format!(
        "type: MeshHealthCheck\nname: check-in-health\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        interval: 1s\n        timeout: 500ms\n        unhealthyThreshold: 2\n        healthyThreshold: 1\n{check}"
    )
}

const HTTP_CHECK: &str = "        http:\n          path: /health\n          expectedStatuses: [200]\n          requestHeadersToAdd:\n            add:\n              - name: x-checked-by\n                value: flight-control\n";

/// A TCP check speaking HTTP/1.1 itself: the instance's sidecar passes the bytes to the
/// app, whose answer must contain `200 OK` (a `503` closes without it).
const TCP_CHECK: &str = "        http:\n          disabled: true\n        tcp:\n          send: \"GET /health HTTP/1.1\\r\\nHost: check-in\\r\\nConnection: close\\r\\n\\r\\n\"\n          receive: [\"200 OK\"]\n";

/// Which instance answered a call (the app's name), or the status when it failed.
fn answered_by(outbound: &str) -> Result<String, u16> {
    let r = http("GET", outbound, "/check-in", None, &[]).map_err(|_| 0u16)?;
    if r.status != 200 {
        return Err(r.status);
    }
    Ok(r.json()["service"].as_str().unwrap_or_default().to_owned())
}

fn toggle_health(app: &str) -> String {
    let r = http("GET", app, "/toggle-health", None, &[]).unwrap();
    r.json()["health"].as_str().unwrap_or_default().to_owned()
}

/// Two instances behind mTLS (every caller allowed); `check` applied once both answer;
/// the second instance's `/health` turned to 503 and back.
fn unhealthy_instance_is_skipped_until_it_recovers(check: &str, kind: &str) {
    let mut k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let (_two, app) = k.add_checkin_instance_with_app("check-in-api-2", "check-in-api-sick", &[]);
    let both = |outbound: &str| {
        let answers: Vec<_> = (0..12).map(|_| answered_by(outbound)).collect();
        ["check-in-api", "check-in-api-sick"]
            .iter()
            .all(|name| answers.contains(&Ok((*name).to_owned())))
    };
    wait_for("both instances answer", PROPAGATION, || {
        both(&k.from_flight_control).then_some(())
    });

    k.apply(&health_check(check));
    // The merged conf as the proxy enforces it, in _explain and in the proxy's config.
    let explained = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    let effective = &explained["meshHealthCheck"]["effective"];
    assert_eq!(effective["intervalMs"], 1000, "{explained}");
    assert_eq!(effective["timeoutMs"], 500, "{explained}");
    assert_eq!(effective["unhealthyThreshold"], 2, "{explained}");
    assert_eq!(effective["healthyThreshold"], 1, "{explained}");
    assert!(effective[kind].is_object(), "{explained}");
    assert_eq!(
        explained["meshHealthCheck"]["policies"],
        serde_json::json!(["check-in-health"])
    );
    wait_for("flight-control has the health check", PROPAGATION, || {
        let dump = http("GET", &k.flight_control.admin, "/config_dump", None, &[]).ok()?;
        let config = dump.json()["config"].clone();
        config["outboundPolicies"]
            .as_array()?
            .iter()
            .any(|p| p["healthCheck"]["intervalMs"] == 1000)
            .then_some(())
    });
    // Both pass their checks: both get traffic.
    wait_for("both instances answer under checks", PROPAGATION, || {
        both(&k.from_flight_control).then_some(())
    });

    assert_eq!(toggle_health(&app), "unhealthy");
    let failing_since = Instant::now();
    // Two failed checks a second apart: a run of answers all from the healthy instance,
    // which round robin over two instances cannot give otherwise.
    let skipped_at = wait_for("the unhealthy instance is skipped", PROPAGATION, || {
        let start = Instant::now();
        (0..12)
            .all(|_| answered_by(&k.from_flight_control).as_deref() == Ok("check-in-api"))
            .then_some(start)
    });
    let took = skipped_at.duration_since(failing_since);
    assert!(
        took < Duration::from_millis(2 * 1000 + 500 + 2_500),
        "skipped only after {took:?}"
    );
    // While unhealthy, it gets no traffic from flight-control at all.
    let mut calls = 0;
    while skipped_at.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            answered_by(&k.from_flight_control).as_deref(),
            Ok("check-in-api"),
            "{:?} after it was skipped",
            skipped_at.elapsed()
        );
        calls += 1;
    }
    assert!(calls > 10, "only {calls} calls while unhealthy");
    // booking is not selected: it keeps calling both.
    assert!(both(&k.from_booking), "booking calls both instances");

    // Recovered: one passed check and it is back.
    assert_eq!(toggle_health(&app), "healthy");
    let recovered = Instant::now();
    wait_for("the recovered instance gets traffic", PROPAGATION, || {
        both(&k.from_flight_control).then_some(())
    });
    assert!(
        recovered.elapsed() < Duration::from_secs(5),
        "back only after {:?}",
        recovered.elapsed()
    );
}

#[test]
fn http_check_skips_an_instance_whose_health_path_fails() {
    unhealthy_instance_is_skipped_until_it_recovers(HTTP_CHECK, "http");
}

#[test]
fn tcp_check_skips_an_instance_whose_answer_lacks_the_expected_bytes() {
    unhealthy_instance_is_skipped_until_it_recovers(TCP_CHECK, "tcp");
}

/// Without a MeshHealthCheck nothing is probed: the outbound's policies carry no check and
/// an instance failing `/health` keeps its traffic.
#[test]
fn without_a_policy_an_instance_failing_health_keeps_traffic() {
    let mut k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let (_two, app) = k.add_checkin_instance_with_app("check-in-api-2", "check-in-api-sick", &[]);
    assert_eq!(toggle_health(&app), "unhealthy");
    wait_for("both instances answer", PROPAGATION, || {
        let answers: Vec<_> = (0..12)
            .map(|_| answered_by(&k.from_flight_control))
            .collect();
        answers
            .contains(&Ok("check-in-api-sick".to_owned()))
            .then_some(())
    });
    let explained = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    assert_eq!(
        explained["meshHealthCheck"]["effective"],
        serde_json::Value::Null
    );
}
