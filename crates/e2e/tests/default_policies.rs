//! Kuma's default policies through the real binaries: every new mesh gets
//! `mesh-timeout-all-<mesh>`, `mesh-gateways-timeout-all-<mesh>`,
//! `mesh-circuit-breaker-all-<mesh>` and `mesh-retry-all-<mesh>` unless its
//! `skipCreatingInitialPolicies` says otherwise; the policies are reachable through REST and
//! kumactl, and a bad one is refused with Kuma's field paths and messages.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_e2e::{ControlPlane, Kumactl};

fn names(cp: &ControlPlane, mesh: &str, plural: &str) -> Vec<String> {
    let r = cp.get(&format!("/meshes/{mesh}/{plural}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_new_mesh_gets_kumas_default_policies_unless_skipped() {
    let cp = ControlPlane::start();
    let kumactl = Kumactl::for_cp(&cp);

    // The default mesh, created at first start.
    assert_eq!(
        names(&cp, "default", "meshtimeouts"),
        [
            "mesh-gateways-timeout-all-default",
            "mesh-timeout-all-default"
        ]
    );
    assert_eq!(
        names(&cp, "default", "meshcircuitbreakers"),
        ["mesh-circuit-breaker-all-default"]
    );
    assert_eq!(
        names(&cp, "default", "meshretries"),
        ["mesh-retry-all-default"]
    );
    let timeout = cp.get("/meshes/default/meshtimeouts/mesh-timeout-all-default");
    let t = timeout.json();
    assert_eq!(t["spec"]["to"][0]["default"]["connectionTimeout"], "5s");
    assert_eq!(
        t["spec"]["to"][0]["default"]["http"]["requestTimeout"],
        "15s"
    );
    assert_eq!(t["labels"]["kuma.io/mesh"], "default");
    let table = kumactl.ok(&["get", "meshtimeouts", "--mesh", "default"]);
    assert!(
        table.contains("TARGETREF KIND") && table.contains("mesh-timeout-all-default"),
        "{table}"
    );
    let retry = kumactl.ok(&[
        "get",
        "meshretry",
        "mesh-retry-all-default",
        "--mesh",
        "default",
        "-o",
        "yaml",
    ]);
    assert!(
        retry.contains("perTryTimeout: 16s") && retry.contains("maxConnectAttempt: 5"),
        "{retry}"
    );

    // A mesh created later gets them too; one that skips them all gets none; one that
    // skips a type gets the others.
    kumactl.sh_ok("echo 'type: Mesh\nname: second' | kumactl apply -f -");
    assert_eq!(
        names(&cp, "second", "meshretries"),
        ["mesh-retry-all-second"]
    );
    kumactl.sh_ok(
        "echo 'type: Mesh\nname: bare\nskipCreatingInitialPolicies: [\"*\"]' | kumactl apply -f -",
    );
    for plural in ["meshtimeouts", "meshcircuitbreakers", "meshretries"] {
        assert!(names(&cp, "bare", plural).is_empty(), "{plural}");
    }
    kumactl.sh_ok(
        "echo 'type: Mesh\nname: some\nskipCreatingInitialPolicies: [MeshRetry]' | kumactl apply -f -",
    );
    assert!(names(&cp, "some", "meshretries").is_empty());
    assert_eq!(
        names(&cp, "some", "meshcircuitbreakers"),
        ["mesh-circuit-breaker-all-some"]
    );

    // Kuma's validation, every problem at once, nothing stored.
    let out = kumactl.sh(
        "echo 'type: MeshTimeout\nname: bad\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService}\n      default: {connectionTimeout: 0s, http: {}}' | kumactl apply -f -",
    );
    let err = aerie_e2e::text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for expected in [
        "spec.to[0].targetRef: name or labels must be set when kind is MeshService",
        "spec.to[0].default.connectionTimeout: must be greater than zero when defined",
        "spec.to[0].default.http: at least one timeout in this section should be configured",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    let out = kumactl.sh(
        "echo 'type: MeshRetry\nname: bad\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {http: {perTryTimeout: 1d}}' | kumactl apply -f -",
    );
    let err = aerie_e2e::text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("time: unknown unit \"d\" in duration \"1d\""),
        "{err}"
    );
    assert_eq!(
        cp.get("/meshes/default/meshtimeouts/bad").status,
        404,
        "nothing half-stored"
    );
}
