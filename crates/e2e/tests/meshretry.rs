//! MeshRetry enforced by the real sidecars: an upstream failing every other call with 503
//! is invisible to flight-control behind `numRetries: 3`, visible with `numRetries: 0`; the
//! policy only selects flight-control, and `inspect` shows what is in force.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aerie_e2e::{http, wait_for};
use common::*;

/// flight-control's retries to check-in-api, `n` of them, on 503.
fn retries(n: u32) -> String {
    format!(
        "type: MeshRetry\nname: check-in-retries\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        http:\n          numRetries: {n}\n          retryOn: [\"503\"]\n          backOff:\n            baseInterval: 5ms\n            maxInterval: 20ms\n"
    )
}

/// Of `n` calls to the half-failing route, how many succeeded.
fn successes(outbound: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            http("GET", outbound, "/flaky/50", None, &[])
                .map(|r| r.status == 200)
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn retries_hide_a_flaky_upstream_and_zero_retries_show_it() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);

    // No retries for flight-control: every other call fails.
    k.apply(&retries(0));
    wait_for("flight-control sees the 503s", PROPAGATION, || {
        (successes(&k.from_flight_control, 10) < 10).then_some(())
    });
    let ok = successes(&k.from_flight_control, 100);
    assert!(
        (40..=60).contains(&ok),
        "{ok} of 100 succeeded without retries"
    );

    // Three retries: the 503s are retried away.
    k.apply(&retries(3));
    wait_for("flight-control retries", PROPAGATION, || {
        (successes(&k.from_flight_control, 20) == 20).then_some(())
    });
    let ok = successes(&k.from_flight_control, 200);
    assert!(ok >= 198, "{ok} of 200 succeeded with numRetries: 3");

    // kumactl lists the policies applying to flight-control (kumactl 2.14's text), and
    // Aerie's `_explain` shows the retries its outbound to check-in-api enforces.
    let inspect = k.kumactl.ok(&["inspect", "dataplane", "flight-control-1"]);
    assert!(
        inspect.contains("  MeshRetry\n    mesh-retry-all-default\ncheck-in-retries\n"),
        "{inspect}"
    );
    let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    let retry = &outbound["meshRetry"];
    assert_eq!(
        retry["policies"],
        serde_json::json!(["mesh-retry-all-default", "check-in-retries"]),
        "{outbound}"
    );
    assert_eq!(retry["effective"]["http"]["numRetries"], 3, "{outbound}");
    assert_eq!(
        retry["effective"]["http"]["retryOn"],
        serde_json::json!(["gateway-error", "connect-failure", "refused-stream"]),
        "{outbound}"
    );
    assert_eq!(
        retry["effective"]["http"]["statusCodes"],
        serde_json::json!([503]),
        "{outbound}"
    );

    // booking is not selected: Kuma's default policy (5 retries on gateway errors, 503
    // included) keeps it whole.
    let ok = successes(&k.from_booking, 50);
    assert_eq!(ok, 50, "booking keeps the default MeshRetry");
}
