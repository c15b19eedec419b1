//! MeshTCPRoute enforced by the caller's real sidecar on a TCP outbound: billing calls
//! `legacy-ledger` (protocol `tcp`) through its outbound; a route sends every connection to
//! `ledger` instead, then a 1:1 weighted split spreads connections over both, and deleting
//! the route brings everything back to `legacy-ledger`. Both destinations are HTTP apps
//! reached as plain TCP, so each connection's answer names the app that served it.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aerie_e2e::{
    ControlPlane, Dataplane, Kumactl, Process, free_port, http, loopback_ip, start_app, wait_for,
};
use common::PROPAGATION;

fn dataplane(
    name: &str,
    admin: u16,
    service: &str,
    app_port: u16,
    outbound: Option<(u16, &str)>,
) -> String {
    let mut y = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app_port}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: tcp\n",
        loopback_ip()
    );
    if let Some((port, dest)) = outbound {
        y.push_str(&format!(
            "  outbound:\n  - port: {port}\n    tags:\n      kuma.io/service: {dest}\n"
        ));
    }
    y
}

/// Which app served one connection through the outbound (`None`: no HTTP answer came back).
fn served_by(outbound: &str) -> Option<String> {
    let r = http("GET", outbound, "/ledger", None, &[]).ok()?;
    (r.status == 200).then(|| r.json()["service"].as_str().unwrap_or_default().to_owned())
}

/// `n` connections: how many each app served.
fn spread(outbound: &str, n: usize) -> (usize, usize, usize) {
    let (mut legacy, mut ledger, mut other) = (0, 0, 0);
    for _ in 0..n {
        match served_by(outbound).as_deref() {
            Some("legacy-ledger") => legacy += 1,
            Some("ledger") => ledger += 1,
            _ => other += 1,
        }
    }
    (legacy, ledger, other)
}

fn apply(kumactl: &Kumactl, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("route.yaml");
    std::fs::write(&f, yaml).unwrap();
    kumactl.ok(&["apply", "-f", f.to_str().unwrap()]);
}

fn tcp_route(backends: &str) -> String {
    format!(
        "type: MeshTCPRoute\nname: ledger-migration\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: billing\n  to:\n    - targetRef:\n        kind: MeshService\n        name: legacy-ledger\n      rules:\n        - default:\n            backendRefs:\n{backends}"
    )
}

#[test]
fn a_tcp_route_moves_and_splits_connections_and_its_removal_restores_them() {
    let cp = ControlPlane::start();
    let kumactl = Kumactl::for_cp(&cp);
    let mut apps: Vec<Process> = Vec::new();
    let mut dps: Vec<Dataplane> = Vec::new();
    for service in ["legacy-ledger", "ledger"] {
        let port = free_port("127.0.0.1");
        apps.push(start_app(service, &format!("127.0.0.1:{port}"), false));
        let admin = free_port("127.0.0.1");
        let mut d = Dataplane::start(
            &cp,
            service,
            &dataplane(service, admin, service, port, None),
            admin,
        );
        d.wait_ready();
        dps.push(d);
    }
    let app = free_port("127.0.0.1");
    apps.push(start_app("billing", &format!("127.0.0.1:{app}"), false));
    let (out, admin) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut billing = Dataplane::start(
        &cp,
        "billing",
        &dataplane(
            "billing",
            admin,
            "billing",
            app,
            Some((out, "legacy-ledger")),
        ),
        admin,
    );
    billing.wait_ready();
    let outbound = format!("127.0.0.1:{out}");

    // No route: the outbound's own service.
    wait_for("legacy-ledger answers", PROPAGATION, || {
        (served_by(&outbound).as_deref() == Some("legacy-ledger")).then_some(())
    });
    assert_eq!(spread(&outbound, 20), (20, 0, 0));

    // Every connection to ledger.
    apply(
        &kumactl,
        &tcp_route("              - kind: MeshService\n                name: ledger\n"),
    );
    wait_for("the route reaches billing's sidecar", PROPAGATION, || {
        (served_by(&outbound).as_deref() == Some("ledger")).then_some(())
    });
    assert_eq!(spread(&outbound, 40), (0, 40, 0));

    // 1:1 by weight: each connection draws a backend.
    apply(
        &kumactl,
        &tcp_route(
            "              - kind: MeshService\n                name: legacy-ledger\n                weight: 1\n              - kind: MeshService\n                name: ledger\n                weight: 1\n",
        ),
    );
    wait_for("the split reaches billing's sidecar", PROPAGATION, || {
        (served_by(&outbound).as_deref() == Some("legacy-ledger")).then_some(())
    });
    let (legacy, ledger, other) = spread(&outbound, 400);
    assert_eq!(other, 0, "every connection answered");
    // 400 fair draws: 200 +- 60 is more than six standard deviations (10).
    assert!(
        (140..=260).contains(&legacy) && (140..=260).contains(&ledger),
        "legacy-ledger {legacy}, ledger {ledger}"
    );

    // Route deleted: back to the outbound's own service.
    kumactl.ok(&[
        "delete",
        "meshtcproute",
        "ledger-migration",
        "--mesh",
        "default",
    ]);
    wait_for(
        "the deletion reaches billing's sidecar",
        PROPAGATION,
        || (spread(&outbound, 10) == (10, 0, 0)).then_some(()),
    );
    assert_eq!(spread(&outbound, 40), (40, 0, 0));
    drop((dps, billing, apps));
}
