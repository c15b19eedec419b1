//! The seed walkthrough between real processes: kuma-cp, kuma-dp sidecars and demo apps.
//! The wrong caller gets 403 from the receiving sidecar.

mod common;

use std::time::Duration;

use aerie_e2e::{http, wait_for};
use common::*;

#[test]
fn seed_walkthrough_between_real_sidecars() {
    let k = KongAir::start("http");
    // 1. mTLS off: everyone gets through.
    wait_status(
        "flight-control -> check-in (mTLS off)",
        &k.from_flight_control,
        200,
    );
    wait_status("booking -> check-in (mTLS off)", &k.from_booking, 200);

    // 2. mTLS on, no permission: denied at the receiving sidecar with 403.
    k.apply(MTLS);
    wait_status(
        "flight-control denied once mTLS is on",
        &k.from_flight_control,
        403,
    );
    wait_status("booking denied once mTLS is on", &k.from_booking, 403);
    let r = http("GET", &k.from_booking, "/", None, &[]).unwrap();
    assert_eq!(r.body, "RBAC: access denied");
    let inspect = k.kumactl.ok(&["inspect", "dataplanes"]);
    assert!(
        inspect.contains("check-in-api-1") && inspect.contains("Online"),
        "{inspect}"
    );

    // 3. allow-all.
    k.apply(ALLOW_ALL);
    wait_status(
        "flight-control allowed by allow-all",
        &k.from_flight_control,
        200,
    );
    wait_status("booking allowed by allow-all", &k.from_booking, 200);

    // 4. delete allow-all, default-deny.
    k.kumactl.ok(&[
        "delete",
        "meshtrafficpermission",
        "allow-all",
        "--mesh",
        "default",
    ]);
    k.apply(DENY_ALL);
    wait_status(
        "flight-control denied by default-deny",
        &k.from_flight_control,
        403,
    );
    wait_status("booking denied by default-deny", &k.from_booking, 403);

    // 5. targeted allow: only flight-control.
    k.apply(TARGETED);
    wait_status(
        "flight-control allowed by the targeted policy",
        &k.from_flight_control,
        200,
    );
    // booking stays denied (Allow wins only where an Allow matches).
    for _ in 0..5 {
        assert_eq!(call(&k.from_booking), 403);
    }
    let stats = k.checkin.stats();
    assert!(
        stats.contains("booking-blu"),
        "RBAC denials are counted by source service:\n{stats}"
    );
    // kumactl 2.14's text: both MeshTrafficPermissions apply to check-in-api.
    let policies = k
        .kumactl
        .ok(&["inspect", "dataplane", "check-in-api-1", "--type=policies"]);
    assert!(
        policies.starts_with("DATAPLANE:\n")
            && policies.contains("  MeshTrafficPermission\n")
            && policies.contains("allow-flight-control-to-check-in\n")
            && policies.contains("default-deny\n"),
        "{policies}"
    );
}

#[test]
fn tcp_service_allowed_bytes_flow_denied_connection_closes() {
    let k = KongAir::start("tcp");
    k.apply(MTLS);
    k.apply(TARGETED);
    let echo = |addr: &str| -> Vec<u8> {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"boarding-pass");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    // Wait for the policies to reach the sidecars (booking is refused), then check both.
    wait_for("booking's TCP connection refused", PROPAGATION, || {
        echo(&k.from_booking).is_empty().then_some(())
    });
    wait_for("TCP bytes flow for flight-control", PROPAGATION, || {
        (echo(&k.from_flight_control) == b"boarding-pass").then_some(())
    });
    for _ in 0..3 {
        assert!(
            echo(&k.from_booking).is_empty(),
            "a denied TCP caller gets nothing back"
        );
    }
}
