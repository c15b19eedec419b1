//! kuma-cp through its REST API: start-up, configuration errors, persistence, isolation,
//! diagnostics, HTTPS and error shapes.

use aerie_e2e::{ControlPlane, CpAddrs, bin, http, loopback_ip, text};
use serde_json::json;

const MTP_ALLOW_ALL: &str = r#"{"type":"MeshTrafficPermission","name":"allow-all","mesh":"default","spec":{"targetRef":{"kind":"Mesh"},"from":[{"targetRef":{"kind":"Mesh"},"default":{"action":"Allow"}}]}}"#;

#[test]
fn first_start_creates_default_mesh_with_mtls_off_and_no_permissions() {
    let cp = ControlPlane::start();
    let meshes = cp.get("/meshes").json();
    assert_eq!(meshes["total"], 1);
    assert_eq!(meshes["items"][0]["name"], "default");
    assert!(
        meshes["items"][0].get("mtls").is_none(),
        "mTLS must be off: {meshes}"
    );
    let mtps = cp.get("/meshes/default/meshtrafficpermissions").json();
    assert_eq!(mtps["total"], 0);
    let index = cp.get("/").json();
    assert_eq!(index["tagline"], "Kuma");
    assert_eq!(index["basedOnKuma"], "2.14.0");
}

#[test]
fn skip_mesh_creation_is_honoured() {
    let cp = ControlPlane::start_with(&[("KUMA_DEFAULTS_SKIP_MESH_CREATION", "true")]);
    assert_eq!(cp.get("/meshes").json()["total"], 0);
}

#[test]
fn put_creates_then_updates_and_tracks_times() {
    let cp = ControlPlane::start();
    let path = "/meshes/default/meshtrafficpermissions/allow-all";
    assert_eq!(cp.put(path, MTP_ALLOW_ALL).status, 201);
    let first = cp.get(path).json();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(cp.put(path, MTP_ALLOW_ALL).status, 200);
    let second = cp.get(path).json();
    assert_eq!(first["creationTime"], second["creationTime"]);
    assert_ne!(first["modificationTime"], second["modificationTime"]);
    assert_eq!(second["spec"]["from"][0]["default"]["action"], "Allow");
}

#[test]
fn invalid_resources_get_kuma_errors_and_nothing_is_stored() {
    let cp = ControlPlane::start();
    let bad = r#"{"type":"MeshTrafficPermission","name":"bad","mesh":"default","spec":{"targetRef":{"kind":"Mesh"},"from":[{"targetRef":{"kind":"Mesh"},"default":{"action":"Permit"}},{"targetRef":{"kind":"Nope"},"default":{}}]}}"#;
    let r = cp.put("/meshes/default/meshtrafficpermissions/bad", bad);
    assert_eq!(r.status, 400, "{}", r.body);
    let body = r.json();
    assert_eq!(body["title"], "Could not process a resource");
    let fields: Vec<_> = body["invalid_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fields.contains(&"spec.from[0].default.action".to_string()),
        "{body}"
    );
    assert!(
        fields.contains(&"spec.from[1].targetRef.kind".to_string()),
        "{body}"
    );
    assert!(
        fields.contains(&"spec.from[1].default.action".to_string()),
        "{body}"
    );
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions/bad").status,
        404
    );

    // Unknown mesh, URL/body mismatch, not JSON, unknown field.
    let r = cp.put(
        "/meshes/nope/meshtrafficpermissions/allow-all",
        &MTP_ALLOW_ALL.replace("\"default\",\"spec\"", "\"nope\",\"spec\""),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("mesh \\\"nope\\\" does not exist"),
        "{}",
        r.body
    );
    let r = cp.put(
        "/meshes/default/meshtrafficpermissions/other",
        MTP_ALLOW_ALL,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("name from the URL has to be the same as in body"),
        "{}",
        r.body
    );
    assert_eq!(
        cp.put("/meshes/default/meshtrafficpermissions/x", "{not json")
            .status,
        400
    );
    let r = cp.put("/meshes/m2", r#"{"type":"Mesh","name":"m2","mtlss":{}}"#);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("mtlss"), "{}", r.body);
    // Mesh references: enabledBackend, two backends, duration.
    let r = cp.put("/meshes/m3", r#"{"type":"Mesh","name":"m3","mtls":{"enabledBackend":"ca-2","backends":[{"name":"ca-1","type":"builtin","dpCert":{"rotation":{"expiration":"1 day"}}},{"name":"ca-3","type":"builtin"}]}}"#);
    assert_eq!(r.status, 400);
    for want in [
        "has to be set to one of the backends in the mesh",
        "cannot have more than 1 backends",
        "has to be a valid format",
    ] {
        assert!(r.body.contains(want), "missing {want}: {}", r.body);
    }
    assert_eq!(cp.get("/meshes").json()["total"], 1, "nothing half-stored");
}

#[test]
fn errors_for_missing_read_only_and_unknown() {
    let cp = ControlPlane::start();
    let r = cp.get("/meshes/default/meshtrafficpermissions/ghost");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["title"], "Could not find a resource");
    assert_eq!(cp.get("/meshes/ghost/dataplanes").status, 404);
    assert_eq!(cp.get("/meshes/default/unicorns").status, 404);
    let r = cp.put("/zones/z1", r#"{"type":"Zone","name":"z1"}"#);
    assert_eq!(r.status, 405, "{}", r.body);
    let r = http(
        "DELETE",
        &cp.addrs.api(),
        "/meshes/default/meshtrafficpermissions/ghost",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn lists_paginate() {
    let cp = ControlPlane::start();
    for i in 0..5 {
        let body = MTP_ALLOW_ALL.replace("allow-all", &format!("p{i}"));
        assert_eq!(
            cp.put(
                &format!("/meshes/default/meshtrafficpermissions/p{i}"),
                &body
            )
            .status,
            201
        );
    }
    let page = cp
        .get("/meshes/default/meshtrafficpermissions?size=2&offset=2")
        .json();
    assert_eq!(page["total"], 5);
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("p2"), json!("p3")]);
    assert!(page["next"].as_str().unwrap().contains("offset=4"));
    let last = cp
        .get("/meshes/default/meshtrafficpermissions?size=2&offset=4")
        .json();
    assert!(last["next"].is_null());
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions?size=0")
            .status,
        400
    );
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions?size=abc")
            .status,
        400
    );
    // Across meshes.
    assert_eq!(cp.get("/meshtrafficpermissions").json()["total"], 5);
}

#[test]
fn deleting_a_mesh_deletes_its_resources() {
    let cp = ControlPlane::start();
    assert_eq!(
        cp.put("/meshes/m1", r#"{"type":"Mesh","name":"m1"}"#)
            .status,
        201
    );
    let body = MTP_ALLOW_ALL.replace("\"default\",\"spec\"", "\"m1\",\"spec\"");
    assert_eq!(
        cp.put("/meshes/m1/meshtrafficpermissions/allow-all", &body)
            .status,
        201
    );
    let r = http("DELETE", &cp.addrs.api(), "/meshes/m1", None, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(cp.get("/meshtrafficpermissions").json()["total"], 0);
}

#[test]
fn dataplanes_generate_mesh_services() {
    let cp = ControlPlane::start();
    let dp = r#"{"type":"Dataplane","name":"web-1","mesh":"default","networking":{"address":"127.0.0.1","inbound":[{"port":8080,"servicePort":18080,"tags":{"kuma.io/service":"web","kuma.io/protocol":"http"}}]}}"#;
    assert_eq!(cp.put("/meshes/default/dataplanes/web-1", dp).status, 201);
    let ms = aerie_e2e::wait_for(
        "MeshService web",
        std::time::Duration::from_secs(10),
        || {
            let r = cp.get("/meshes/default/meshservices/web");
            (r.status == 200).then(|| r.json())
        },
    );
    assert_eq!(ms["spec"]["ports"][0]["port"], 8080);
    assert_eq!(ms["spec"]["ports"][0]["appProtocol"], "http");
    // Removing the last dataplane removes the generated service; a mesh with dataplanes
    // cannot be deleted.
    let r = http("DELETE", &cp.addrs.api(), "/meshes/default", None, &[]).unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("there are still some dataplanes attached"),
        "{}",
        r.body
    );
    let r = http(
        "DELETE",
        &cp.addrs.api(),
        "/meshes/default/dataplanes/web-1",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    aerie_e2e::wait_for(
        "MeshService web removed",
        std::time::Duration::from_secs(10),
        || (cp.get("/meshes/default/meshservices/web").status == 404).then_some(()),
    );
}

#[test]
fn resources_survive_restart_and_kill_9() {
    let mut cp = ControlPlane::start();
    assert_eq!(
        cp.put(
            "/meshes/default/meshtrafficpermissions/allow-all",
            MTP_ALLOW_ALL
        )
        .status,
        201
    );
    cp.restart();
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions/allow-all")
            .status,
        200
    );
    // Acknowledged, then killed at once: the write must be on disk.
    for i in 0..20 {
        let body = MTP_ALLOW_ALL.replace("allow-all", &format!("k{i}"));
        assert_eq!(
            cp.put(
                &format!("/meshes/default/meshtrafficpermissions/k{i}"),
                &body
            )
            .status,
            201
        );
    }
    cp.kill9();
    cp.restart();
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions").json()["total"],
        21
    );
    assert_eq!(
        cp.get("/meshes").json()["total"],
        1,
        "default mesh not created twice"
    );
}

#[test]
fn memory_store_forgets_on_restart() {
    let mut cp = ControlPlane::start_with(&[("KUMA_STORE_TYPE", "memory")]);
    assert_eq!(
        cp.put(
            "/meshes/default/meshtrafficpermissions/allow-all",
            MTP_ALLOW_ALL
        )
        .status,
        201
    );
    cp.restart();
    assert_eq!(
        cp.get("/meshes/default/meshtrafficpermissions/allow-all")
            .status,
        404
    );
}

#[test]
fn two_control_planes_on_one_host_do_not_interfere() {
    let a = ControlPlane::start();
    let b = ControlPlane::start();
    assert_ne!(a.addrs.ip, b.addrs.ip);
    assert_eq!(
        a.put(
            "/meshes/default/meshtrafficpermissions/allow-all",
            MTP_ALLOW_ALL
        )
        .status,
        201
    );
    assert_eq!(
        b.get("/meshes/default/meshtrafficpermissions/allow-all")
            .status,
        404
    );
    assert_eq!(
        b.put("/meshes/only-b", r#"{"type":"Mesh","name":"only-b"}"#)
            .status,
        201
    );
    assert_eq!(a.get("/meshes/only-b").status, 404);
}

#[test]
fn sigterm_stops_gracefully() {
    let mut cp = ControlPlane::start();
    assert_eq!(cp.stop(), Some(0), "{}", cp.logs());
    assert!(cp.logs().contains("stopped"), "{}", cp.logs());
}

#[test]
fn diagnostics_endpoints() {
    let cp = ControlPlane::start();
    let diag = format!("127.0.0.1:{}", cp.addrs.diagnostics);
    assert_eq!(http("GET", &diag, "/ready", None, &[]).unwrap().status, 200);
    assert_eq!(
        http("GET", &diag, "/healthy", None, &[]).unwrap().status,
        200
    );
    cp.get("/meshes");
    let m = http("GET", &diag, "/metrics", None, &[]).unwrap();
    assert_eq!(m.status, 200);
    // Kuma's names, text format 0.0.4, the constant `zone` label.
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for want in [
        "api_server_http_request_duration_seconds_count{service=\"\",handler=\"/meshes\",method=\"GET\",code=\"200\",zone=\"Zone\"}",
        "kuma_cp_store_resources{resource_type=\"Mesh\",zone=\"Zone\"} 1",
        "leader{zone=\"Zone\"} 1",
        "store_count{operation=\"list\",resource_type=\"Mesh\",zone=\"Zone\"}",
        "xds_streams_active{zone=\"Zone\"} 0",
        "# TYPE api_server_http_request_duration_seconds histogram",
    ] {
        assert!(m.body.contains(want), "{want} not in\n{}", m.body);
    }
    assert!(m.body.contains("cp_info{product=\"Aerie\""), "{}", m.body);
}

#[test]
fn bad_configuration_refuses_to_start_naming_the_key() {
    let cases = [
        (
            "KUMA_API_SERVER_HTTP_PORT",
            "not-a-port",
            "KUMA_API_SERVER_HTTP_PORT",
        ),
        ("KUMA_STORE_TYPE", "etcd", "KUMA_STORE_TYPE"),
        ("KUMA_MODE", "galaxy", "KUMA_MODE"),
        (
            "KUMA_DEFAULTS_SKIP_MESH_CREATION",
            "perhaps",
            "KUMA_DEFAULTS_SKIP_MESH_CREATION",
        ),
    ];
    for (key, value, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(bin("kuma-cp"))
            .arg("run")
            .env("KUMA_GENERAL_WORK_DIR", dir.path())
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} must refuse to start");
        let err = text(&out.stderr);
        assert!(
            err.contains(want) && err.contains(value),
            "{key}={value}: {err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cp.yaml");
    std::fs::write(&cfg, "apiServer:\n  http:\n    port: [1\n").unwrap();
    let out = std::process::Command::new(bin("kuma-cp"))
        .args(["run", "--config-file"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cp.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_file_sets_ports() {
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback_ip();
    let addrs = CpAddrs::new(&ip);
    let cfg = dir.path().join("cp.yaml");
    std::fs::write(
        &cfg,
        format!(
            "general:\n  workDir: {}\napiServer:\n  http:\n    interface: {ip}\n    port: {}\n  https:\n    enabled: false\ndiagnostics:\n  serverPort: {}\ndpServer:\n  port: {}\n",
            dir.path().join("w").display(),
            addrs.http,
            addrs.diagnostics,
            addrs.dp_server
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin("kuma-cp"))
        .args(["run", "--config-file"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ok = aerie_e2e::wait_for(
        "config-file control plane",
        aerie_e2e::READY_TIMEOUT,
        || {
            http("GET", &addrs.api(), "/meshes", None, &[])
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    assert_eq!(ok.json()["total"], 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn port_in_use_is_a_clear_error() {
    let cp = ControlPlane::start();
    let mut other = ControlPlane::start();
    other.kill9();
    other.addrs.http = cp.addrs.http;
    other.addrs.ip = cp.addrs.ip.clone();
    let out = other.command().output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("KUMA_API_SERVER_HTTP_PORT"),
        "{err}"
    );
}

#[test]
fn enabling_mtls_creates_the_mesh_ca_at_once() {
    let cp = ControlPlane::start();
    // No proxy is connected: the leader's CA housekeeping creates the CA anyway, as Kuma does.
    let r = cp.put("/meshes/default", r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"builtin","backends":[{"name":"builtin","type":"builtin"}]}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    aerie_e2e::wait_for(
        "the builtin CA secrets",
        std::time::Duration::from_secs(15),
        || {
            let cert = cp
                .get("/meshes/default/secrets/default.ca-builtin-cert-builtin")
                .status
                == 200;
            // The key exists (403: never served over the API), not 404.
            let key = cp
                .get("/meshes/default/secrets/default.ca-builtin-key-builtin")
                .status
                == 403;
            (cert && key).then_some(())
        },
    );
}
