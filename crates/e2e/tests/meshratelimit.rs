//! MeshRateLimit enforced by the real sidecars: an HTTP limit of 10 requests per second
//! answers the 11th with the configured status and headers and recovers in the next
//! interval; a limit for one SPIFFE ID (`rules`) leaves other callers alone; a TCP
//! connection rate closes the excess connections.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aerie_e2e::{HttpResponse, http, wait_for};
use common::*;

const TEN_PER_SECOND: &str = "type: MeshRateLimit\nname: ten-per-second\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        local:\n          http:\n            requestRate:\n              num: 10\n              interval: 1s\n            onRateLimit:\n              status: 423\n              headers:\n                add:\n                  - name: x-kuma-rate-limited\n                    value: \"true\"\n                set:\n                  - name: x-limit\n                    value: ten-per-second\n";

const ONE_CALLER: &str = "type: MeshRateLimit\nname: flight-control-only\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  rules:\n    - matches:\n        - spiffeID:\n            type: Exact\n            value: spiffe://default/flight-control-blu\n      default:\n        local:\n          http:\n            requestRate:\n              num: 2\n              interval: 10s\n";

const THREE_CONNECTIONS: &str = "type: MeshRateLimit\nname: three-connections\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n    proxyTypes: [Sidecar]\n  rules:\n    - default:\n        local:\n          tcp:\n            connectionRate:\n              num: 3\n              interval: 5s\n";

fn get(outbound: &str) -> HttpResponse {
    http("GET", outbound, "/check-in", None, &[]).unwrap()
}

fn mtls(protocol: &str) -> KongAir {
    let k = KongAir::start(protocol);
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    k
}

#[test]
fn the_eleventh_request_within_a_second_is_limited_and_the_next_second_recovers() {
    let k = mtls("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    k.apply(TEN_PER_SECOND);
    wait_for("the limit is in force", PROPAGATION, || {
        (0..12)
            .any(|_| get(&k.from_flight_control).status == 423)
            .then_some(())
    });
    // A burst of 30 takes far less than a second; one that does not straddle a refill gets
    // exactly 10 answers, then only limited ones.
    let limited = wait_for("a burst within one interval", PROPAGATION, || {
        // Start right after a refill: wait for the first 200.
        let first = wait_for("a refill", Duration::from_secs(3), || {
            let r = get(&k.from_flight_control);
            (r.status == 200).then_some(r)
        });
        let start = Instant::now();
        let mut burst: Vec<HttpResponse> = vec![first];
        burst.extend((0..29).map(|_| get(&k.from_flight_control)));
        if start.elapsed() >= Duration::from_millis(800) {
            return None;
        }
        let statuses: Vec<u16> = burst.iter().map(|r| r.status).collect();
        let ok = statuses.iter().take_while(|s| **s == 200).count();
        (ok == 10 && statuses[ok..].iter().all(|s| *s == 423)).then(|| (ok, burst.pop().unwrap()))
    });
    let (ok, limited) = limited;
    assert_eq!(ok, 10);
    assert_eq!(limited.status, 423);
    assert_eq!(limited.body, "local_rate_limited");
    assert_eq!(limited.header("x-kuma-rate-limited"), Some("true"));
    assert_eq!(limited.header("x-limit"), Some("ten-per-second"));
    assert_eq!(limited.header("x-envoy-ratelimited"), Some("true"));
    // The next interval lets requests through again (the bucket is the inbound's: booking
    // takes from it too).
    let limited_at = Instant::now();
    wait_for("the next interval recovers", Duration::from_secs(3), || {
        (get(&k.from_booking).status == 200).then_some(())
    });
    assert!(limited_at.elapsed() <= Duration::from_millis(1500));

    // `_explain` shows the limit on check-in-api's inbound.
    let explained =
        k.cp.get("/meshes/default/dataplanes/check-in-api-1/_explain")
            .json();
    let limit = &explained["inbounds"][0]["meshRateLimit"];
    assert_eq!(
        limit["policies"],
        serde_json::json!(["ten-per-second"]),
        "{explained}"
    );
    let http = limit["effective"]["http"].as_array().unwrap();
    let catch_all = &http[http.len() - 1]["limit"];
    assert_eq!(
        (
            catch_all["rate"]["num"].as_u64(),
            catch_all["rate"]["intervalMs"].as_u64(),
            catch_all["status"].as_u64()
        ),
        (Some(10), Some(1000), Some(423)),
        "{explained}"
    );
}

#[test]
fn a_limit_for_one_spiffe_id_leaves_other_callers_alone() {
    let k = mtls("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    k.apply(ONE_CALLER);
    wait_for("flight-control is limited", PROPAGATION, || {
        (0..4)
            .any(|_| get(&k.from_flight_control).status == 429)
            .then_some(())
    });
    let r = get(&k.from_flight_control);
    assert_eq!((r.status, r.body.as_str()), (429, "local_rate_limited"));
    assert_eq!(r.header("x-envoy-ratelimited"), Some("true"));
    for _ in 0..20 {
        assert_eq!(get(&k.from_booking).status, 200, "booking has no limit");
    }
}

#[test]
fn connections_over_the_tcp_rate_are_closed() {
    let k = mtls("tcp");
    let echo = |addr: &str| -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"boarding-pass");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out == b"boarding-pass"
    };
    wait_for("TCP bytes flow", PROPAGATION, || {
        echo(&k.from_flight_control).then_some(())
    });
    k.apply(THREE_CONNECTIONS);
    wait_for("a connection over the rate is closed", PROPAGATION, || {
        (!echo(&k.from_flight_control)).then_some(())
    });
    // The next interval admits 3 connections, and the 4th is closed.
    wait_for("the next interval", Duration::from_secs(8), || {
        echo(&k.from_flight_control).then_some(())
    });
    let start = Instant::now();
    let tries: Vec<(bool, Duration)> = (0..4)
        .map(|_| (echo(&k.from_booking), start.elapsed()))
        .collect();
    let admitted = tries.iter().filter(|t| t.0).count();
    assert_eq!(admitted, 2, "3 per interval, one already used: {tries:?}");
}
