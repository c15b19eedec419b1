//! kumactl against a real kuma-cp: bad input gets one clear line and stores nothing;
//! config, get, apply options, HTTPS, tokens, version, completion.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_e2e::{ControlPlane, Kumactl, text};

/// Applies `doc` from stdin; asserts failure and that the mesh's MTP/mesh counts are unchanged.
fn refused(cp: &ControlPlane, k: &Kumactl, doc: &str, want: &[&str]) {
    let before = (
        cp.get("/meshes").json()["total"].clone(),
        cp.get("/meshtrafficpermissions").json()["total"].clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("doc.yaml");
    std::fs::write(&f, doc).unwrap();
    let out = k.run(&["apply", "-f", f.to_str().unwrap()]);
    assert!(!out.status.success(), "should be refused:\n{doc}");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for w in want {
        assert!(err.contains(w), "stderr lacks {w:?}:\n{err}\nfor:\n{doc}");
    }
    let after = (
        cp.get("/meshes").json()["total"].clone(),
        cp.get("/meshtrafficpermissions").json()["total"].clone(),
    );
    assert_eq!(before, after, "nothing may be stored for:\n{doc}");
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\nmtls: [unclosed\n",
        &["line 3"],
    );
    refused(
        &cp,
        &k,
        "type: Unicorn\nname: u\n",
        &["resource[0]", "Unicorn"],
    );
    refused(
        &cp,
        &k,
        "type: MeshTrafficPermission\nname: p\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Permit}\n",
        &[
            "resource[0]",
            "spec.from[0].default.action: must be one of Allow, Deny, AllowWithShadowDeny",
        ],
    );
    refused(
        &cp,
        &k,
        "type: MeshTrafficPermission\nname: p\nmesh: default\nspec:\n  targetRef: {kind: MeshService}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
        &[
            "spec.targetRef",
            "name or labels must be set when kind is MeshService",
        ],
    );
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\nmtls:\n  enabledBackend: ca-2\n  backends:\n  - name: ca-1\n    type: builtin\n",
        &[
            "mtls.enabledBackend",
            "has to be set to one of the backends in the mesh",
        ],
    );
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\nmtls:\n  backends:\n  - name: a\n    type: builtin\n  - name: b\n    type: builtin\n",
        &["cannot have more than 1 backends"],
    );
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\nmtls:\n  backends:\n  - name: a\n    type: builtin\n    dpCert:\n      rotation:\n        expiration: 1 day\n",
        &["has to be a valid format"],
    );
    // Observability backends and constraints are checked as Kuma checks them.
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\ntracing:\n  backends:\n  - name: zipkin\n    sampling: 100.1\n    type: zipkin\n    conf:\n      url: http://zipkin.local/api/v2/spans\n",
        &[
            "tracing.backends[0].sampling: has to be in [0.0 - 100.0] range",
            "tracing.backends[0].config.url: port has to be explicitly specified",
        ],
    );
    refused(
        &cp,
        &k,
        "type: Mesh\nname: m\nmetrics:\n  enabledBackend: prom\n  backends:\n  - name: prom\n    type: prometheus\n    conf:\n      skipMTLS: true\n      tls:\n        mode: providedTLS\nlogging:\n  backends:\n  - name: tcp\n    type: tcp\n    conf:\n      address: kibana\n",
        &[
            "logging.backends[0].config.address: has to be in format of HOST:PORT",
            "metrics.backends[0].conf: skipMTLS and tls configuration cannot be defined together",
        ],
    );
    // Unknown mesh: only the server knows; the error says so.
    refused(
        &cp,
        &k,
        "type: MeshTrafficPermission\nname: p\nmesh: nowhere\nspec:\n  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
        &["failed server side", "nowhere"],
    );
    // Multi-document: a bad second document stops the first from being stored.
    refused(
        &cp,
        &k,
        "type: Mesh\nname: good-one\n---\ntype: Mesh\nname: Bad_Name\n",
        &["resource[1]"],
    );
}

#[test]
fn dry_run_templating_and_directories() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "type: Mesh\nname: '{{ name }}'\n",
    )
    .unwrap();
    let out = k.ok(&[
        "apply",
        "-f",
        dir.path().join("a.yaml").to_str().unwrap(),
        "--var",
        "name=templated",
        "--dry-run",
    ]);
    assert!(out.contains("name: templated"), "{out}");
    assert_eq!(
        cp.get("/meshes/templated").status,
        404,
        "dry run stores nothing"
    );
    k.ok(&[
        "apply",
        "-f",
        dir.path().join("a.yaml").to_str().unwrap(),
        "-v",
        "name=templated",
    ]);
    assert_eq!(cp.get("/meshes/templated").status, 200);
    let err = k.fails(&["apply", "-f", dir.path().join("a.yaml").to_str().unwrap()]);
    assert!(
        err.contains("name"),
        "missing variable must be named: {err}"
    );

    let d = dir.path().join("many");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("1.yaml"), "type: Mesh\nname: dir-a\n").unwrap();
    std::fs::write(
        d.join("2.yml"),
        "type: Mesh\nname: dir-b\n---\ntype: Mesh\nname: dir-c\n",
    )
    .unwrap();
    k.ok(&["apply", "-f", d.to_str().unwrap()]);
    for m in ["dir-a", "dir-b", "dir-c"] {
        assert_eq!(cp.get(&format!("/meshes/{m}")).status, 200, "{m}");
    }
}

#[test]
fn get_formats_and_errors() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    let table = k.ok(&["get", "meshes"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("mTLS") && header.contains("AGE"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("default "),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "meshes", "-o", "json"])).unwrap();
    assert_eq!(json["total"], 1);
    let yaml = k.ok(&["get", "mesh", "default", "-o", "yaml"]);
    assert!(
        yaml.contains("name: default") && yaml.contains("type: Mesh"),
        "{yaml}"
    );
    let err = k.fails(&["get", "unicorns"]);
    assert!(err.contains("unicorns"), "{err}");
    let err = k.fails(&["get", "mesh", "ghost"]);
    assert!(!err.is_empty());
    // Short names.
    k.ok(&["get", "mtp"]);
}

#[test]
fn control_plane_config_commands() {
    let a = ControlPlane::start();
    let b = ControlPlane::start();
    let k = Kumactl::new();
    let err = k.fails(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "dead",
        "--address",
        "http://127.0.0.1:1",
    ]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    k.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "a",
        "--address",
        &a.addrs.url(),
    ]);
    k.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "b",
        "--address",
        &b.addrs.url(),
    ]);
    let err = k.fails(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "b",
        "--address",
        &b.addrs.url(),
    ]);
    assert!(err.contains("b"), "{err}");
    k.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "b",
        "--address",
        &b.addrs.url(),
        "--overwrite",
    ]);
    let list = k.ok(&["config", "control-planes", "list"]);
    assert!(
        list.contains(&a.addrs.url()) && list.contains(&b.addrs.url()),
        "{list}"
    );
    // Writes go to the active control plane.
    k.sh_ok("echo 'type: Mesh\nname: on-b' | kumactl apply -f -");
    assert_eq!(b.get("/meshes/on-b").status, 200);
    assert_eq!(a.get("/meshes/on-b").status, 404);
    k.ok(&["config", "control-planes", "switch", "--name", "a"]);
    k.sh_ok("echo 'type: Mesh\nname: on-a' | kumactl apply -f -");
    assert_eq!(a.get("/meshes/on-a").status, 200);
    k.ok(&["config", "control-planes", "use", "b"]);
    let view = k.ok(&["config", "view"]);
    assert!(view.contains("currentContext: b"), "{view}");
    k.ok(&["config", "control-planes", "remove", "--name", "a"]);
    assert!(
        !k.ok(&["config", "control-planes", "list"])
            .contains(&a.addrs.url())
    );
    let err = k.fails(&["config", "control-planes", "use", "nope"]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn https_with_the_generated_certificate() {
    let cp = ControlPlane::start();
    let k = Kumactl::new();
    let url = format!("https://{}:{}", cp.addrs.ip, cp.addrs.https);
    // Without a CA file or --skip-verify there is nothing to verify the server against.
    let err = k.fails(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "tls",
        "--address",
        &url,
    ]);
    assert!(!err.is_empty());
    k.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "tls",
        "--address",
        &url,
        "--skip-verify",
    ]);
    assert!(k.ok(&["get", "meshes"]).contains("default"));
    // The generated certificate is kept in the work dir and names the HTTPS interface:
    // pinning it verifies the control plane.
    let ca = cp.work_dir.join("tls/api-server.crt");
    let pinned = Kumactl::new();
    pinned.ok(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "tls",
        "--address",
        &url,
        "--ca-cert-file",
        ca.to_str().unwrap(),
    ]);
    assert!(pinned.ok(&["get", "meshes"]).contains("default"));
    // A different CA does not verify it.
    let other = ControlPlane::start();
    let wrong = Kumactl::new();
    let err = wrong.fails(&[
        "config",
        "control-planes",
        "add",
        "--name",
        "tls",
        "--address",
        &url,
        "--ca-cert-file",
        other.work_dir.join("tls/api-server.crt").to_str().unwrap(),
    ]);
    assert!(!err.is_empty());
}

#[test]
fn user_tokens_version_and_completion() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);
    let token = k.ok(&[
        "generate",
        "user-token",
        "--name",
        "john",
        "--group",
        "mesh-system:admin",
        "--valid-for",
        "24h",
    ]);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    let err = k.fails(&[
        "generate",
        "user-token",
        "--name",
        "john",
        "--valid-for",
        "forever",
    ]);
    assert!(
        err.contains("validFor") || err.contains("valid-for") || err.contains("forever"),
        "{err}"
    );
    let v = k.ok(&["version"]);
    assert!(v.contains("Client") && v.contains("Server"), "{v}");
    let c = k.ok(&["completion", "bash"]);
    assert!(c.contains("kumactl"), "completion script");
}
