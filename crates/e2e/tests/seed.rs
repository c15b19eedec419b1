//! The seed walkthrough (`shared/seed/first-policy.md`), command for command, through the
//! real kumactl against a real kuma-cp. The data-plane half (403 at the receiving sidecar)
//! lives with the proxy's tests.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_e2e::{ControlPlane, Kumactl, text};

const ENABLE_MTLS: &str = "echo 'type: Mesh
name: default
mtls:
  backends:
    - name: builtin
      type: builtin
  enabledBackend: builtin' | kumactl apply -f -";

const ALLOW_ALL: &str = "echo 'type: MeshTrafficPermission
name: allow-all
mesh: default
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow' | kumactl apply -f -";

const DEFAULT_DENY: &str = "echo 'type: MeshTrafficPermission
name: default-deny
mesh: default
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Deny' | kumactl apply -f -";

const TARGETED_ALLOW: &str = "echo 'type: MeshTrafficPermission
name: allow-flight-control-to-check-in
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: check-in-api-blu
  from:
    - targetRef:
        kind: MeshService
        name: flight-control-blu
      default:
        action: Allow' | kumactl apply -f -";

// The Kubernetes tab's documents, applied with kumactl to a Universal control plane.
const K8S_MESH: &str = "echo 'apiVersion: kuma.io/v1alpha1
kind: Mesh
metadata:
  name: default
spec:
  mtls:
    backends:
      - name: builtin
        type: builtin
    enabledBackend: builtin' | kumactl apply -f -";

const K8S_ALLOW_ALL: &str = "apiVersion: kuma.io/v1alpha1
kind: MeshTrafficPermission
metadata:
  name: allow-all
  namespace: kong-mesh-system
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow
";

const K8S_DEFAULT_DENY: &str = "echo 'apiVersion: kuma.io/v1alpha1
kind: MeshTrafficPermission
metadata:
  name: default-deny
  namespace: kong-mesh-system
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Deny' | kumactl apply -f -";

const K8S_TARGETED_ALLOW: &str = "echo 'apiVersion: kuma.io/v1alpha1
kind: MeshTrafficPermission
metadata:
  name: allow-flight-control-to-check-in
  namespace: kong-mesh-system
spec:
  targetRef:
    kind: MeshService
    name: check-in-api-blu
  from:
    - targetRef:
        kind: MeshService
        name: flight-control-blu
      default:
        action: Allow' | kumactl apply -f -";

fn names(k: &Kumactl) -> Vec<String> {
    let out = k.ok(&["get", "meshtrafficpermissions", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn universal_tab_verbatim() {
    let cp = ControlPlane::start();
    let k = Kumactl::new();
    k.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "global-cp",
        "--address",
        &cp.addrs.url(),
    ]);
    // The seed's spelling of switching control planes.
    k.ok(&["config", "control-planes", "use", "global-cp"]);

    k.sh_ok(ENABLE_MTLS);
    let shown = k.sh_ok("kumactl get meshes -o yaml | grep -A5 mtls");
    let lines: Vec<&str> = shown.lines().map(str::trim).collect();
    let expect = [
        "mtls:",
        "backends:",
        "- name: builtin",
        "type: builtin",
        "enabledBackend: builtin",
    ];
    let mut at = 0;
    for l in &lines {
        if at < expect.len() && *l == expect[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        expect.len(),
        "expected the seed's lines in order, got:\n{shown}"
    );

    k.sh_ok(ALLOW_ALL);
    assert_eq!(names(&k), ["allow-all"]);
    let deleted = k.ok(&[
        "delete",
        "meshtrafficpermission",
        "allow-all",
        "--mesh",
        "default",
    ]);
    assert!(deleted.contains("allow-all"), "{deleted}");
    assert!(names(&k).is_empty());
    k.sh_ok(DEFAULT_DENY);
    k.sh_ok(TARGETED_ALLOW);
    assert_eq!(
        names(&k),
        ["allow-flight-control-to-check-in", "default-deny"]
    );
    let table = k.ok(&["get", "meshtrafficpermissions"]);
    assert!(
        table.contains("allow-flight-control-to-check-in") && table.contains("default-deny"),
        "{table}"
    );
    let one = k.ok(&[
        "get",
        "meshtrafficpermission",
        "allow-flight-control-to-check-in",
        "-o",
        "yaml",
    ]);
    assert!(one.contains("name: flight-control-blu"), "{one}");
    // Applying the same document again is an update, not an error.
    k.sh_ok(TARGETED_ALLOW);
}

#[test]
fn kubernetes_tab_documents_apply_too() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    k.sh_ok(K8S_MESH);
    let mesh = k.ok(&["get", "mesh", "default", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&mesh).unwrap();
    assert_eq!(v["mtls"]["enabledBackend"], "builtin");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("allow-all.yaml");
    std::fs::write(&f, K8S_ALLOW_ALL).unwrap();
    k.ok(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(names(&k), ["allow-all"]);
    k.ok(&[
        "delete",
        "meshtrafficpermission",
        "allow-all",
        "--mesh",
        "default",
    ]);
    k.sh_ok(K8S_DEFAULT_DENY);
    k.sh_ok(K8S_TARGETED_ALLOW);
    assert_eq!(
        names(&k),
        ["allow-flight-control-to-check-in", "default-deny"]
    );
}

#[test]
fn deleting_a_missing_policy_fails_clearly() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    let err = k.fails(&[
        "delete",
        "meshtrafficpermission",
        "allow-all",
        "--mesh",
        "default",
    ]);
    assert!(err.contains("allow-all"), "{err}");
    let out = k.run(&["get", "meshes"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("default"));
}
