//! MeshLoadBalancingStrategy enforced by the real sidecars, over three check-in-api
//! instances: `RingHash` on the `x-user` header keeps each user on one instance (and the
//! users spread over several) while booking, not selected, keeps round robin; `LeastRequest`
//! keeps new requests off the instance holding a slow one; `Random` reaches every instance;
//! `RingHash` on a cookie with a `ttl` sets a missing cookie (Envoy's sticky session) and
//! keeps each client that sends it back on the instance of its first request;
//! `_explain` shows what flight-control's outbound enforces.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};

use aerie_e2e::{Dataplane, http, wait_for};
use common::*;

/// flight-control's balancing of check-in-api.
fn strategy(default: &str) -> String {
    format!(
        "type: MeshLoadBalancingStrategy\nname: check-in-balancing\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n{default}"
    )
}

const RING_HASH: &str = "        loadBalancer:\n          type: RingHash\n        hashPolicies:\n          - type: Header\n            header:\n              name: x-user\n";

/// Which instance answered `path` (the app's name), as `user` when given.
fn answered_by(outbound: &str, path: &str, user: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = user.map(|u| ("x-user", u)).into_iter().collect();
    let r = http("GET", outbound, path, None, &headers).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["service"].as_str().unwrap_or_default().to_owned()
}

/// KongAir with three check-in-api instances, each seen answering flight-control.
fn three_instances() -> (KongAir, Vec<Dataplane>) {
    let mut k = KongAir::start("http");
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    let b = k.add_checkin_instance_named("check-in-api-2", "check-in-api-b", &[]);
    let c = k.add_checkin_instance_named("check-in-api-3", "check-in-api-c", &[]);
    wait_for("the three instances answer", PROPAGATION, || {
        let seen: HashSet<String> = (0..12)
            .map(|_| answered_by(&k.from_flight_control, "/check-in", None))
            .collect();
        (seen.len() == 3).then_some(())
    });
    (k, vec![b, c])
}

const STICKY: &str = "        loadBalancer:\n          type: RingHash\n        hashPolicies:\n          - type: Cookie\n            cookie:\n              name: session\n              ttl: 1h\n              path: /\n";

/// A client without the cookie gets one with its first answer; sending it back keeps it on
/// the instance of that first answer.
#[test]
fn ring_hash_on_a_generated_cookie_keeps_each_client_on_one_instance() {
    let (k, _more) = three_instances();
    k.apply(&strategy(STICKY));
    let first = |k: &KongAir| {
        let r = http("GET", &k.from_flight_control, "/check-in", None, &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let set = r.header("set-cookie").map(str::to_owned);
        (r.json()["service"].as_str().unwrap().to_owned(), set)
    };
    let set_cookie = wait_for("the sticky cookie is set", PROPAGATION, || first(&k).1);
    assert!(
        set_cookie.starts_with("session=\"")
            && set_cookie.ends_with("\"; Max-Age=3600; Path=/; HttpOnly"),
        "{set_cookie}"
    );
    let mut homes = HashSet::new();
    for _ in 0..12 {
        // Each connection gets its own cookie (Envoy hashes the connection's addresses).
        let (home, set) = first(&k);
        let set = set.expect("a cookie for a request without one");
        let cookie = set.split(';').next().unwrap().to_owned();
        for _ in 0..10 {
            let r = http(
                "GET",
                &k.from_flight_control,
                "/check-in",
                None,
                &[("cookie", &cookie)],
            )
            .unwrap();
            assert_eq!(r.json()["service"], home.as_str(), "{cookie}");
            // A request that has the cookie gets no new one.
            assert!(r.header("set-cookie").is_none(), "{cookie}");
        }
        homes.insert(home);
    }
    assert!(homes.len() > 1, "twelve clients all on {homes:?}");
}

#[test]
fn ring_hash_on_a_header_keeps_each_user_on_one_instance() {
    let (k, _more) = three_instances();
    k.apply(&strategy(RING_HASH));
    // In force once a user's requests all reach one instance, which round robin over three
    // instances cannot give.
    wait_for("ring hash in force", PROPAGATION, || {
        let seen: HashSet<String> = (0..12)
            .map(|_| answered_by(&k.from_flight_control, "/check-in", Some("user-0")))
            .collect();
        (seen.len() == 1).then_some(())
    });
    let mut homes: HashMap<String, String> = HashMap::new();
    for u in 0..10 {
        let user = format!("user-{u}");
        let seen: HashSet<String> = (0..50)
            .map(|_| answered_by(&k.from_flight_control, "/check-in", Some(&user)))
            .collect();
        assert_eq!(seen.len(), 1, "{user} reached {seen:?}");
        homes.insert(user, seen.into_iter().next().unwrap());
    }
    let instances: HashSet<&String> = homes.values().collect();
    assert!(instances.len() > 1, "ten users all on {instances:?}");
    // Without the header: no hash, a random instance each time (all three are reached).
    let seen: HashSet<String> = (0..60)
        .map(|_| answered_by(&k.from_flight_control, "/check-in", None))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // booking is not selected: round robin whatever the header.
    let seen: HashSet<String> = (0..6)
        .map(|_| answered_by(&k.from_booking, "/check-in", Some("user-0")))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // `_explain` shows what flight-control enforces.
    let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    let lb = &outbound["meshLoadBalancingStrategy"];
    assert_eq!(
        lb["policies"],
        serde_json::json!(["check-in-balancing"]),
        "{outbound}"
    );
    let effective = &lb["effective"];
    assert_eq!(effective["algorithm"]["type"], "RingHash", "{outbound}");
    assert_eq!(effective["algorithm"]["minRingSize"], 1024, "{outbound}");
    assert_eq!(
        effective["algorithm"]["hashFunction"], "XxHash",
        "{outbound}"
    );
    assert_eq!(
        effective["hashPolicies"][0]["key"],
        serde_json::json!({"type": "header", "name": "x-user"}),
        "{outbound}"
    );
    // booking's outbound: no strategy, round robin.
    let booking = explained_outbound(&k.cp, "booking-1", "check-in-api-blu");
    assert_eq!(
        booking["meshLoadBalancingStrategy"]["effective"],
        serde_json::Value::Null,
        "{booking}"
    );
}

#[test]
fn least_request_keeps_requests_off_a_busy_instance_and_random_reaches_all() {
    let (k, _more) = three_instances();
    k.apply(&strategy(
        "        loadBalancer:\n          type: LeastRequest\n          leastRequest:\n            choiceCount: 3\n",
    ));
    // While a slow request is in flight on one instance, quick requests (three random
    // choices, the idlest wins) reach it only when all three choices fall on it (1 in 27);
    // round robin would send it a third of them.
    wait_for("least request in force", PROPAGATION, || {
        let slow_to = k.from_flight_control.clone();
        let slow = std::thread::spawn(move || answered_by(&slow_to, "/delay/1500", None));
        // Let the slow request reach its instance.
        let mut quick = Vec::new();
        while !slow.is_finished() {
            quick.push(answered_by(&k.from_flight_control, "/check-in", None));
        }
        let busy = slow.join().unwrap();
        let late = quick.iter().skip(3).filter(|a| **a == busy).count();
        let total = quick.len().saturating_sub(3);
        let others: HashSet<&String> = quick.iter().filter(|a| **a != busy).collect();
        (total >= 30 && late * 10 <= total && others.len() == 2).then_some(())
    });
    let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
    let effective = &outbound["meshLoadBalancingStrategy"]["effective"];
    assert_eq!(
        effective["algorithm"],
        serde_json::json!({"type": "LeastRequest", "choiceCount": 3, "activeRequestBias": 1.0}),
        "{outbound}"
    );

    k.apply(&strategy("        loadBalancer:\n          type: Random\n"));
    wait_for("random in _explain", PROPAGATION, || {
        let outbound = explained_outbound(&k.cp, "flight-control-1", "check-in-api-blu");
        (outbound["meshLoadBalancingStrategy"]["effective"]["algorithm"]["type"] == "Random")
            .then_some(())
    });
    let seen: HashSet<String> = (0..60)
        .map(|_| answered_by(&k.from_flight_control, "/check-in", None))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}
