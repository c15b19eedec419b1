//! MeshRetry enforced by the real sidecars: an upstream failing every other call with 503
//! is invisible to flight-control behind `numRetries: 3`, visible with `numRetries: 0`; the
//! policy only selects flight-control, and `inspect` shows what is in force. A 429 asking
//! to come back in a second (`Retry-After: 1`, or a Unix time in `X-RateLimit-Reset`) is
//! retried that much later under `rateLimitedBackOff`, and a response carrying a header of
//! `retriableResponseHeaders` is retried.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use aerie_e2e::{http, wait_for};
use common::*;

/// flight-control's retries to check-in-api of 429s, waiting what they ask for, and of
/// responses marked `x-retry-me: yes`.
const RATE_LIMITED: &str = "type: MeshRetry\nname: check-in-rate-limited\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        http:\n          numRetries: 1\n          retryOn: [\"429\"]\n          backOff:\n            baseInterval: 5ms\n            maxInterval: 20ms\n          rateLimitedBackOff:\n            resetHeaders:\n              - name: Retry-After\n                format: Seconds\n              - name: X-RateLimit-Reset\n                format: UnixTimestamp\n            maxInterval: 3s\n          retriableResponseHeaders:\n            - name: x-retry-me\n              value: \"yes\"\n";

/// A call of `/fail-once/<id>?<query>` (its first call answers as the query says, later
/// ones 200): the status, how many times check-in-api saw it (2: retried), and how long it
/// took.
fn fail_once(outbound: &str, id: &str, query: &str) -> (u16, u64, Duration) {
    let start = Instant::now();
    let r = http(
        "GET",
        outbound,
        &format!("/fail-once/{id}?{query}"),
        None,
        &[],
    )
    .unwrap();
    let took = start.elapsed();
    let seen = if r.status == 200 {
        r.json()["seen"].as_u64().unwrap_or(0)
    } else {
        0
    };
    (r.status, seen, took)
}

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

#[test]
fn rate_limited_back_off_waits_what_the_answer_asks_and_response_headers_retry() {
    let k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let fc = &k.from_flight_control;
    k.apply(RATE_LIMITED);
    let mut n = 0;
    let mut id = |what: &str| {
        n += 1;
        format!("{what}-{n}")
    };
    wait_for("flight-control retries 429s", PROPAGATION, || {
        let (status, seen, _) = fail_once(fc, &id("warm-up"), "status=429");
        (status == 200 && seen == 2).then_some(())
    });

    // `Retry-After: 1`: the retry goes a second later (Envoy jitters it up to 1.5s).
    let (status, seen, took) = fail_once(fc, &id("after"), "status=429&header=retry-after:1");
    assert_eq!((status, seen), (200, 2));
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_millis(2_200),
        "retried after {took:?}"
    );
    // Without a reset header, the exponential back-off (at most 20ms).
    let (status, seen, took) = fail_once(fc, &id("plain"), "status=429");
    assert_eq!((status, seen), (200, 2));
    assert!(took < Duration::from_millis(700), "retried after {took:?}");
    // A wait beyond maxInterval (3s) is ignored: the exponential back-off again.
    let (status, seen, took) = fail_once(fc, &id("too-long"), "status=429&header=retry-after:10");
    assert_eq!((status, seen), (200, 2));
    assert!(took < Duration::from_millis(700), "retried after {took:?}");
    // A Unix time two seconds ahead: between one and two seconds from the proxy's clock
    // (whole seconds), jittered up to half as long again.
    let reset = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let (status, seen, took) = fail_once(
        fc,
        &id("reset"),
        &format!("status=429&header=x-ratelimit-reset:{reset}"),
    );
    assert_eq!((status, seen), (200, 2));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3_700),
        "retried after {took:?}"
    );

    // retriableResponseHeaders: a 200 marked `x-retry-me: yes` is retried, other values
    // are not.
    let (status, seen, _) = fail_once(fc, &id("marked"), "status=200&header=x-retry-me:yes");
    assert_eq!((status, seen), (200, 2));
    let (status, seen, _) = fail_once(fc, &id("unmarked"), "status=200&header=x-retry-me:no");
    assert_eq!((status, seen), (200, 1));

    // booking is not selected: Kuma's default MeshRetry retries neither.
    let (status, _, _) = fail_once(
        &k.from_booking,
        &id("booking"),
        "status=429&header=retry-after:1",
    );
    assert_eq!(status, 429);
    let (status, seen, _) = fail_once(
        &k.from_booking,
        &id("booking-marked"),
        "status=200&header=x-retry-me:yes",
    );
    assert_eq!((status, seen), (200, 1));

    // `_explain` shows both in force on flight-control's outbound to check-in-api.
    let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    let http = &outbound["meshRetry"]["effective"]["http"];
    assert_eq!(
        http["rateLimited"]["resetHeaders"],
        serde_json::json!([
            {"name": "retry-after", "format": "Seconds"},
            {"name": "x-ratelimit-reset", "format": "UnixTimestamp"}
        ]),
        "{outbound}"
    );
    assert_eq!(http["rateLimited"]["maxIntervalMs"], 3000, "{outbound}");
    assert_eq!(
        http["responseHeaders"][0]["name"], "x-retry-me",
        "{outbound}"
    );
}
