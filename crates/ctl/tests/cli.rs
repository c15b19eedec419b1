//! End-to-end tests of the commands against an in-process fake control plane.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    uri: String,
    auth: Option<String>,
    body: String,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> (u16, String) + Send + Sync>;

struct Fake {
    url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Requests other than the index (`GET /`).
    fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

async fn fake(handler: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) -> Fake {
    let handler: Handler = Arc::new(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let log = log.clone();
                    async move {
                        let method = req.method().to_string();
                        let uri = req.uri().to_string();
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap_or("").to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let rec = Recorded {
                            method,
                            uri,
                            auth,
                            body: String::from_utf8_lossy(&body).into(),
                        };
                        let (status, body) = handler(&rec);
                        log.lock().unwrap().push(rec);
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Fake { url, log }
}

fn index() -> String {
    json!({"hostname": "cp", "tagline": "Kuma", "product": "Aerie", "version": "0.1.0", "basedOnKuma": "2.14.0"})
        .to_string()
}

/// A handler that answers the index and 201 `{"warnings": []}` to every write.
fn accept_all(r: &Recorded) -> (u16, String) {
    match (r.method.as_str(), r.uri.as_str()) {
        ("GET", "/") => (200, index()),
        ("PUT", _) => (201, r#"{"warnings":[]}"#.into()),
        _ => (
            404,
            r#"{"title":"Could not find a resource","detail":"Not found"}"#.into(),
        ),
    }
}

fn write_config(dir: &Path, url: &str, token: Option<&str>) -> PathBuf {
    let path = dir.join("config");
    let auth = match token {
        Some(t) => format!("      authType: tokens\n      authConf:\n        token: {t}\n"),
        None => String::new(),
    };
    let text = format!(
        "contexts:\n- name: test\n  controlPlane: test\ncontrolPlanes:\n- name: test\n  coordinates:\n    apiServer:\n      url: {url}\n{auth}currentContext: test\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn kumactl(cfg: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut full = vec![
        "kumactl".to_string(),
        "--config-file".into(),
        cfg.display().to_string(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let mut input = stdin.as_bytes();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut io = aerie_ctl::Io {
        stdin: &mut input,
        out: &mut out,
        err: &mut err,
    };
    let code = aerie_ctl::run_with(full, &mut io).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

const SEED_MESH: &str = "type: Mesh
name: default
mtls:
  backends:
    - name: builtin
      type: builtin
  enabledBackend: builtin";

const SEED_K8S_MTP: &str = "apiVersion: kuma.io/v1alpha1
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
        action: Allow";

const SEED_MTP: &str = "type: MeshTrafficPermission
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
        action: Allow";

#[tokio::test]
async fn apply_seed_mesh_from_stdin() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(&cfg, &["apply", "-f", "-"], SEED_MESH).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "resource type=\"Mesh\" mesh=\"\" name=\"default\" Created\n"
    );
    let writes = cp.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].method.as_str(), writes[0].uri.as_str()),
        ("PUT", "/meshes/default")
    );
    assert_eq!(
        writes[0].json(),
        json!({"type": "Mesh", "name": "default",
            "mtls": {"backends": [{"name": "builtin", "type": "builtin"}], "enabledBackend": "builtin"}})
    );
    assert_eq!(writes[0].auth, None);
}

#[tokio::test]
async fn apply_kubernetes_and_universal_policies_with_token() {
    let cp = fake(|r| match r.method.as_str() {
        "PUT" => (200, r#"{"warnings":["something to know"]}"#.into()),
        _ => (404, String::new()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, Some("tok3n"));
    let input = format!("{SEED_K8S_MTP}\n---\n{SEED_MTP}\n");
    let (code, out, err) = kumactl(&cfg, &["apply", "-f", "-"], &input).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "resource type=\"MeshTrafficPermission\" mesh=\"default\" name=\"allow-all\" Updated\n\
         resource type=\"MeshTrafficPermission\" mesh=\"default\" name=\"allow-flight-control-to-check-in\" Updated\n"
    );
    assert_eq!(
        err,
        "Warning: something to know\nWarning: something to know\n"
    );
    let writes = cp.writes();
    assert_eq!(
        writes[0].uri,
        "/meshes/default/meshtrafficpermissions/allow-all"
    );
    assert_eq!(
        writes[1].uri,
        "/meshes/default/meshtrafficpermissions/allow-flight-control-to-check-in"
    );
    assert_eq!(writes[0].auth.as_deref(), Some("Bearer tok3n"));
    let body = writes[0].json();
    assert_eq!(body["type"], "MeshTrafficPermission");
    assert_eq!(body["mesh"], "default");
    assert_eq!(body["spec"]["from"][0]["default"]["action"], "Allow");
    assert!(
        body.get("metadata").is_none() && body.get("apiVersion").is_none(),
        "{body}"
    );
    assert_eq!(
        writes[1].json()["spec"]["targetRef"]["name"],
        "check-in-api-blu"
    );
}

#[tokio::test]
async fn a_bad_document_sends_nothing() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let bad = "type: MeshTrafficPermission\nname: x\nmesh: default\nspec:\n  from:\n    - targetRef: {kind: Mesh}\n      default: {acton: Allow}\n";
    let input = format!("{SEED_MESH}\n---\n{bad}---\ntype: Nope\nname: yy\n");
    let (code, out, err) = kumactl(&cfg, &["apply", "-f", "-"], &input).await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("Error: resource[1]: failed to parse resource: spec.from[0].default.acton: unknown field"),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "Error: resource[2]: failed to read meta: type: unknown resource type \"Nope\""
    );
    assert_eq!(lines[2], "Error: failed to validate some resources");
    assert!(cp.requests().is_empty());
}

#[tokio::test]
async fn yaml_syntax_errors_carry_the_position() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let input = format!("{SEED_MESH}\n---\ntype: Mesh\nname: [unclosed\n");
    let (code, _out, err) = kumactl(&cfg, &["apply", "-f", "-"], &input).await;
    assert_eq!(code, 1);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("Error: resource[1]: failed to parse resource: "),
        "{err}"
    );
    assert!(
        first.ends_with("line 10 column 7: unclosed bracket '['"),
        "{err}"
    );
    assert!(cp.requests().is_empty());
}

#[tokio::test]
async fn dry_run_prints_and_sends_nothing() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let input = format!("{SEED_MESH}\n---\n{SEED_K8S_MTP}\n");
    let (code, out, err) = kumactl(&cfg, &["apply", "--dry-run", "-f", "-"], &input).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("type: Mesh\nname: default\nmtls:\n"),
        "{out}"
    );
    assert!(
        out.contains("\n---\ntype: MeshTrafficPermission\nmesh: default\nname: allow-all\n"),
        "{out}"
    );
    assert!(cp.requests().is_empty());
}

#[tokio::test]
async fn dry_run_needs_no_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "http://127.0.0.1:1", None);
    let (code, out, _) = kumactl(&cfg, &["apply", "--dry-run", "-f", "-"], SEED_MESH).await;
    assert_eq!(code, 0);
    assert!(out.contains("enabledBackend: builtin"));
}

#[tokio::test]
async fn server_side_errors_are_reported_like_kumactl() {
    let cp = fake(|r| match r.method.as_str() {
        "PUT" => (
            400,
            json!({"type": "/std-errors", "status": 400, "title": "Could not process a resource",
                "detail": "Resource is not valid",
                "invalid_parameters": [{"field": "spec.from[0].default.action", "reason": "must be one of Allow, Deny, AllowWithShadowDeny"}]})
            .to_string(),
        ),
        _ => (404, String::new()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, _, err) = kumactl(&cfg, &["apply", "-f", "-"], SEED_MTP).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: resource type=\"MeshTrafficPermission\" mesh=\"default\" name=\"allow-flight-control-to-check-in\": failed server side: Could not process a resource (Resource is not valid);spec.from[0].default.action=must be one of Allow, Deny, AllowWithShadowDeny \n"
    );
}

#[tokio::test]
async fn apply_directory_files_and_variables() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let res = dir.path().join("res");
    std::fs::create_dir(&res).unwrap();
    std::fs::write(res.join("b.yml"), "type: Mesh\nname: {{ b }}\n").unwrap();
    std::fs::write(
        res.join("a.yaml"),
        "type: Mesh\nname: {{a}}\n---\ntype: Mesh\nname: a2\n",
    )
    .unwrap();
    std::fs::write(res.join("c.json"), r#"{"type": "Zone", "name": "zone-1"}"#).unwrap();
    std::fs::write(res.join("notes.txt"), "not yaml").unwrap();
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, "type: Mesh\nname: extra\n").unwrap();
    let res_s = res.display().to_string();
    let extra_s = extra.display().to_string();
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "apply", "-f", &res_s, "-f", &extra_s, "-v", "a=first", "--var", "b=second",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let uris: Vec<String> = cp.writes().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        [
            "/meshes/first",
            "/meshes/a2",
            "/meshes/second",
            "/zones/zone-1",
            "/meshes/extra"
        ]
    );

    // A variable without a value: nothing is sent and the variable is named.
    let before = cp.requests().len();
    let (code, _, err) = kumactl(&cfg, &["apply", "-f", &res_s, "-v", "a=first"], "").await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: ") && err.contains("\"b\""), "{err}");
    assert_eq!(cp.requests().len(), before);

    let (code, _, err) = kumactl(&cfg, &["apply", "-f", "/nonexistent/file.yaml"], "").await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: error while opening provided file /nonexistent/file.yaml"),
        "{err}"
    );
    let (code, _, err) = kumactl(&cfg, &["apply", "-f", "-"], "\n# nothing\n").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: no resource(s) passed to apply\n")
    );
}

fn mesh_list_server() -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    |r| {
        let mesh = json!({"type": "Mesh", "name": "default", "creationTime": "2020-01-01T00:00:00Z",
            "modificationTime": "2020-01-01T00:00:00Z",
            "mtls": {"backends": [{"name": "builtin", "type": "builtin"}], "enabledBackend": "builtin"}});
        let mtp = json!({"type": "MeshTrafficPermission", "mesh": "default", "name": "allow-all",
            "creationTime": "2020-01-01T00:00:00Z", "labels": {},
            "spec": {"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]}});
        match (r.method.as_str(), r.uri.as_str()) {
            ("GET", "/meshes") => (200, json!({"total": 1, "items": [mesh], "next": null}).to_string()),
            ("GET", "/meshes/default") => (200, mesh.to_string()),
            ("GET", "/meshes/default/meshtrafficpermissions?size=1") => (
                200,
                json!({"total": 2, "items": [mtp], "next": "http://x/meshes/default/meshtrafficpermissions?offset=1&size=1"})
                    .to_string(),
            ),
            ("DELETE", "/meshes/default/meshtrafficpermissions/allow-all") => (200, "{}".into()),
            _ => (404, json!({"title": "Could not find a resource", "detail": "Not found"}).to_string()),
        }
    }
}

#[tokio::test]
async fn get_lists_and_single_resources() {
    let cp = fake(mesh_list_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);

    let (code, out, err) = kumactl(&cfg, &["get", "meshes", "-o", "yaml"], "").await;
    assert_eq!(code, 0, "{err}");
    // What `kumactl get meshes -o yaml | grep -A5 mtls` shows.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.contains("mtls")).expect(&out);
    let block: Vec<&str> = lines[at..at + 5].iter().map(|l| l.trim()).collect();
    assert_eq!(
        block,
        [
            "mtls:",
            "backends:",
            "- name: builtin",
            "type: builtin",
            "enabledBackend: builtin"
        ]
    );
    assert!(
        out.starts_with("items:\n") && out.contains("\nnext: null\ntotal: 1\n"),
        "{out}"
    );

    let (code, out, _) = kumactl(&cfg, &["get", "meshes"], "").await;
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "NAME      mTLS              LOCALITY   ZONEEGRESS   AGE"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("default   builtin/builtin   off        off          "),
        "{out}"
    );

    let (code, out, _) = kumactl(&cfg, &["get", "mesh", "default", "-o", "json"], "").await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mtls"]["enabledBackend"], "builtin");
    assert!(out.starts_with("{\n  \"type\": \"Mesh\""), "{out}");

    let (code, out, _) = kumactl(&cfg, &["get", "mtp", "--size", "1"], "").await;
    assert_eq!(code, 0);
    assert!(out.starts_with("MESH      NAME        TARGETREF KIND   TARGETREF NAME   AGE\ndefault   allow-all   Mesh                              "), "{out}");
    assert!(
        out.ends_with("\n\nRerun command with --offset=1 argument to retrieve more resources\n"),
        "{out}"
    );

    let (code, _, err) = kumactl(&cfg, &["get", "meshtrafficpermission", "nope"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: No resources found in default mesh\n")
    );
    let (code, _, err) = kumactl(&cfg, &["get", "mesh", "nope"], "").await;
    assert_eq!((code, err.as_str()), (1, "Error: No resources found\n"));
    let (code, _, err) = kumactl(&cfg, &["get", "zones"], "").await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: failed to list Zone: Could not find a resource (Not found)\n"
    );
    let (code, _, err) = kumactl(&cfg, &["get", "meshes", "-o", "xml"], "").await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: invalid value 'xml'"), "{err}");
}

#[tokio::test]
async fn delete_like_kumactl() {
    let cp = fake(mesh_list_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(
        &cfg,
        &[
            "delete",
            "meshtrafficpermission",
            "allow-all",
            "--mesh",
            "default",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "deleted MeshTrafficPermission \"allow-all\"\n");
    let (code, _, err) = kumactl(&cfg, &["delete", "mtp", "gone", "-m", "default"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: there is no MeshTrafficPermission with name \"gone\"\n"
        )
    );
    assert_eq!(
        cp.requests().last().unwrap().uri,
        "/meshes/default/meshtrafficpermissions/gone"
    );
}

#[tokio::test]
async fn generate_user_token() {
    let cp = fake(|r| match (r.method.as_str(), r.uri.as_str()) {
        ("POST", "/tokens/user") => (200, "eyJhbGciOi.token.sig".into()),
        _ => (404, String::new()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, Some("admin-token"));
    let args = [
        "generate",
        "user-token",
        "--name",
        "john",
        "--group",
        "mesh-system:admin",
        "--group",
        "team",
        "--valid-for",
        "24h",
    ];
    let (code, out, err) = kumactl(&cfg, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "eyJhbGciOi.token.sig");
    let req = &cp.requests()[0];
    assert_eq!(
        req.json(),
        json!({"name": "john", "groups": ["mesh-system:admin", "team"], "validFor": "24h"})
    );
    assert_eq!(req.auth.as_deref(), Some("Bearer admin-token"));
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "generate",
            "user-token",
            "--name",
            "j",
            "--valid-for",
            "soon",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: invalid argument \"soon\" for \"--valid-for\""),
        "{err}"
    );
}

#[tokio::test]
async fn control_planes_add_list_use_switch_remove() {
    let cp = fake(accept_all).await;
    let not_kuma = fake(|_| (200, r#"{"tagline": "Something else"}"#.to_string())).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kumactl").join("config");

    let (code, out, _) = kumactl(&cfg, &["config", "control-planes", "list"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ACTIVE   NAME    ADDRESS\n*        local   http://localhost:5681\n"
        )
    );
    assert!(!cfg.exists());

    let (code, out, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "global-cp",
            "--address",
            &cp.url,
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "added Control Plane \"global-cp\"\nswitched active Control Plane to \"global-cp\"\n"
    );
    assert!(cfg.exists());
    assert_eq!(cp.requests()[0].uri, "/");

    let (code, _, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "global-cp",
            "--address",
            &cp.url,
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: Control Plane with name \"global-cp\" already exists. Use --overwrite to replace an existing one.\n"
    );
    let args = [
        "config",
        "control-planes",
        "add",
        "--name",
        "global-cp",
        "--address",
        &cp.url,
        "--overwrite",
        "--auth-type",
        "tokens",
        "--auth-conf",
        "token=abc",
    ];
    let (code, _, err) = kumactl(&cfg, &args, "").await;
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "other",
            "--address",
            &not_kuma.url,
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: this CLI is for Kuma but the control plane you're connected to is Something else"), "{err}");
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "down",
            "--address",
            "http://127.0.0.1:1",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: could not connect to the Control Plane API Server: "),
        "{err}"
    );
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "tls",
            "--address",
            "https://cp.example:5682",
            "--skip-check",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("--ca-cert-file"), "{err}");
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "tls",
            "--address",
            "https://cp.example:5682",
            "--skip-check",
            "--skip-verify",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");

    let (_, out, _) = kumactl(&cfg, &["config", "control-planes", "list"], "").await;
    assert_eq!(
        out,
        format!(
            "ACTIVE   NAME        ADDRESS\n         local       http://localhost:5681\n         global-cp   {}\n*        tls         https://cp.example:5682\n",
            cp.url
        )
    );

    let (code, out, _) = kumactl(&cfg, &["config", "control-planes", "use", "global-cp"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "switched active Control Plane to \"global-cp\"\n")
    );
    let (code, out, _) = kumactl(
        &cfg,
        &["config", "control-planes", "switch", "--name", "local"],
        "",
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "switched active Control Plane to \"local\"\n")
    );
    let (code, _, err) = kumactl(&cfg, &["config", "control-planes", "use", "nope"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: there is no Control Plane with name \"nope\"\n")
    );
    let (code, out, _) = kumactl(
        &cfg,
        &["config", "control-planes", "remove", "--name", "local"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "removed Control Plane \"local\"\nswitched active Control Plane to \"global-cp\"\n"
    );

    let (code, out, _) = kumactl(&cfg, &["config", "view"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("currentContext: global-cp"), "{out}");
    assert!(
        out.contains("authType: tokens") && out.contains("token: abc"),
        "{out}"
    );
    assert!(out.contains("skipVerify: true"), "{out}");

    // The token is sent on the next call.
    let (code, _, err) = kumactl(&cfg, &["apply", "-f", "-"], SEED_MESH).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cp.writes().last().unwrap().auth.as_deref(),
        Some("Bearer abc")
    );
}

#[tokio::test]
async fn version_and_completion_and_usage_errors() {
    let cp = fake(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, _) = kumactl(&cfg, &["version"], "").await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "Client: Aerie kumactl {} (based on Kuma 2.14)\nServer: Aerie 0.1.0 (based on Kuma 2.14.0)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let (code, out, _) = kumactl(&cfg, &["completion", "bash"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("kumactl"), "{out}");
    let (code, _, err) = kumactl(&cfg, &["get"], "").await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: "), "{err}");
    let (code, _, err) = kumactl(&cfg, &["--api-timeout", "soon", "get", "meshes"], "").await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: invalid argument \"soon\" for \"--api-timeout\""),
        "{err}"
    );
    let (code, _, err) = kumactl(&cfg, &["get", "things"], "").await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: unknown TYPE: things."), "{err}");
}

fn token_server() -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    |r| match (r.method.as_str(), r.uri.as_str()) {
        ("POST", "/tokens/dataplane") => {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            match (body["mesh"].as_str(), r.auth.as_deref()) {
                (_, None) => (
                    403,
                    json!({"type": "/std-errors", "status": 403, "title": "Access Denied",
                        "detail": "user \"mesh-system:anonymous\" cannot generate dataplane tokens"})
                    .to_string(),
                ),
                (Some("nope"), _) => (
                    400,
                    json!({"type": "/std-errors", "status": 400, "title": "Invalid request",
                        "detail": "Resource is not valid",
                        "invalid_parameters": [{"field": "mesh", "reason": "mesh \"nope\" does not exist"}]})
                    .to_string(),
                ),
                _ => (200, "eyJhbGciOiJSUzI1NiJ9.dp.sig".into()),
            }
        }
        _ => (404, String::new()),
    }
}

#[tokio::test]
async fn generate_dataplane_token() {
    let cp = fake(token_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, Some("admin-token"));
    let args = [
        "generate",
        "dataplane-token",
        "--name",
        "check-in-api-blu-1",
        "--mesh",
        "airport",
        "--tag",
        "kuma.io/service=check-in-api-blu",
        "--tag",
        "version=v1",
        "--tag",
        "kuma.io/service=check-in-api-grn",
        "--valid-for",
        "720h",
        "--proxy-type",
        "dataplane",
    ];
    let (code, out, err) = kumactl(&cfg, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "eyJhbGciOiJSUzI1NiJ9.dp.sig");
    let req = &cp.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.uri.as_str()),
        ("POST", "/tokens/dataplane")
    );
    assert_eq!(req.auth.as_deref(), Some("Bearer admin-token"));
    assert_eq!(
        req.json(),
        json!({"name": "check-in-api-blu-1", "mesh": "airport",
            "tags": {"kuma.io/service": ["check-in-api-blu", "check-in-api-grn"], "version": ["v1"]},
            "type": "dataplane", "validFor": "720h"})
    );

    // Defaults: mesh `default`, no tags, type dataplane, no validFor.
    let (code, _, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--name", "web-1"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cp.requests()[1].json(),
        json!({"name": "web-1", "mesh": "default", "tags": {}, "type": "dataplane"})
    );
    let (code, _, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--proxy-type", "ingress"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cp.requests()[2].json(),
        json!({"mesh": "default", "tags": {}, "type": "ingress"})
    );

    // Bad flags: nothing is sent.
    let before = cp.requests().len();
    let (code, _, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--name", "x", "--tag", "web"],
        "",
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: invalid argument \"web\" for \"--tag\" flag: web must be formatted as key=value\n"
        )
    );
    let (code, _, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--valid-for", "forever"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: invalid argument \"forever\" for \"--valid-for\""),
        "{err}"
    );
    let (code, _, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--proxy-type", "gateway"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: invalid value 'gateway'"), "{err}");
    assert_eq!(cp.requests().len(), before);

    // Server errors.
    let (code, out, err) = kumactl(
        &cfg,
        &["generate", "dataplane-token", "--name", "x", "-m", "nope"],
        "",
    )
    .await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error: failed to generate a dataplane token: Invalid request (Resource is not valid);mesh=mesh \"nope\" does not exist \n"
    );
    let anonymous = write_config(dir.path(), &cp.url, None);
    let (code, _, err) = kumactl(&anonymous, &["generate", "dataplane-token"], "").await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: failed to generate a dataplane token: Access Denied (user \"mesh-system:anonymous\" cannot generate dataplane tokens)\n"
    );
}

fn rfc3339_ago(secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    (time::OffsetDateTime::now_utc() - time::Duration::seconds(secs))
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

fn overviews() -> Value {
    json!({"total": 2, "next": null, "items": [
        {"type": "DataplaneOverview", "mesh": "default", "name": "check-in-api-blu-1",
         "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
         "online": true,
         "dataplane": {"networking": {"address": "127.0.0.1", "inbound": [
             {"port": 9000, "servicePort": 19000, "tags": {"kuma.io/service": "check-in-api-blu", "version": "v1"}}]}},
         "dataplaneInsight": {"subscriptions": [{
             "connectTime": rfc3339_ago(210),
             "status": {"total": {"responsesSent": 3, "responsesAcknowledged": 3},
                        "configVersionSent": "7f3a", "configVersionAcknowledged": "7f3a", "lastNack": null},
             "version": {"kumaDp": {"version": "0.1.0"}}}],
             "mTLS": {"certificateExpirationTime": "2026-03-02T09:00:00Z", "certificateRegenerations": 1}}},
        {"type": "DataplaneOverview", "mesh": "default", "name": "flight-control-blu-1",
         "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
         "online": false,
         "dataplane": {"networking": {"address": "127.0.0.2", "inbound": [
             {"port": 8080, "tags": {"kuma.io/service": "flight-control-blu", "version": "v1"}}]}},
         "dataplaneInsight": {"subscriptions": [], "mTLS": null}}]})
}

/// What `/meshes/{mesh}/dataplanes/{name}/policies` answers (Kuma's `DataplaneInspectEntryList`).
fn policies_answer() -> Value {
    json!({"kind": "SidecarDataplane", "total": 1, "items": [
        {"type": "dataplane", "matchedPolicies": {
            "MeshTrafficPermission": [
                {"type": "MeshTrafficPermission", "mesh": "default", "name": "default-deny",
                 "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                 "kri": "kri_mtp_default___default-deny_"},
                {"type": "MeshTrafficPermission", "mesh": "default", "name": "allow-flight-control-to-check-in",
                 "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                 "kri": "kri_mtp_default___allow-flight-control-to-check-in_"}],
            "MeshRetry": [
                {"type": "MeshRetry", "mesh": "default", "name": "mesh-retry-all-default",
                 "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                 "kri": "kri_mr_default___mesh-retry-all-default_"}]}}]})
}

fn inspect_server() -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    |r| {
        let not_found = |what: &str| {
            (
                404,
                json!({"type": "/std-errors", "status": 404, "title": "Could not find a resource", "detail": what})
                    .to_string(),
            )
        };
        let dp = json!({"type": "Dataplane", "mesh": "default", "name": "check-in-api-blu-1",
            "networking": {"address": "127.0.0.1", "inbound": [{"port": 9000, "tags": {"kuma.io/service": "check-in-api-blu"}}]}});
        match (r.method.as_str(), r.uri.as_str()) {
            ("GET", "/meshes") => (
                200,
                json!({"total": 2, "next": null, "items": [
                    {"type": "Mesh", "name": "default", "creationTime": "2020-01-01T00:00:00Z",
                     "mtls": {"backends": [{"name": "ca-1", "type": "builtin"}], "enabledBackend": "ca-1"}},
                    {"type": "Mesh", "name": "plain", "creationTime": "2020-01-01T00:00:00Z"}]})
                .to_string(),
            ),
            ("GET", "/meshes/default/dataplanes+insights") => (200, overviews().to_string()),
            ("GET", "/meshes/plain/dataplanes+insights") => (
                200,
                json!({"total": 0, "items": [], "next": null}).to_string(),
            ),
            ("GET", "/meshes/default/dataplanes+insights/check-in-api-blu-1") => {
                (200, overviews()["items"][0].to_string())
            }
            ("GET", "/meshes/default/dataplanes/check-in-api-blu-1/policies") => {
                (200, policies_answer().to_string())
            }
            ("GET", "/meshes/default/dataplanes/check-in-api-blu-1/_config") => (
                200,
                json!({"xds": {"mesh": "default", "name": "check-in-api-blu-1", "inbounds": []}})
                    .to_string(),
            ),
            ("GET", "/meshes/plain/dataplanes/check-in-api-blu-1/policies") => (
                200,
                json!({"kind": "SidecarDataplane", "total": 0, "items": []}).to_string(),
            ),
            ("GET", "/meshes/default/dataplanes/ghost/policies") => (
                404,
                json!({"type": "/std-errors", "status": 404, "title": "Could not get MatchedPolicies",
                       "detail": "Not found", "details": "Not found"})
                .to_string(),
            ),
            ("GET", "/meshes/default/dataplanes/check-in-api-blu-1")
            | ("GET", "/meshes/plain/dataplanes/check-in-api-blu-1") => (200, dp.to_string()),
            ("GET", "/meshes/forbidden/dataplanes+insights") => (
                403,
                json!({"type": "/std-errors", "status": 403, "title": "Access Denied", "detail": "nope"})
                    .to_string(),
            ),
            _ => not_found("Not found"),
        }
    }
}

#[tokio::test]
async fn inspect_dataplanes_table_filter_and_raw() {
    let cp = fake(inspect_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(&cfg, &["inspect", "dataplanes"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "MESH      NAME                   TAGS                                            STATUS    LAST CONNECTED AGO   CONFIG ACKED   CERT EXPIRATION        CERT REGENERATIONS   KUMA-DP VERSION\n\
         default   check-in-api-blu-1     kuma.io/service=check-in-api-blu version=v1     Online    3m                   7f3a           2026-03-02T09:00:00Z   1                    0.1.0\n\
         default   flight-control-blu-1   kuma.io/service=flight-control-blu version=v1   Offline   never                -              -                      -                    -\n"
    );
    assert_eq!(cp.requests()[0].uri, "/meshes/default/dataplanes+insights");

    let (code, out, err) = kumactl(
        &cfg,
        &[
            "inspect",
            "dataplanes",
            "--tag",
            "kuma.io/service=flight-control-blu",
            "--tag",
            "version=v1",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["flight-control-blu-1"]);

    let (code, out, err) = kumactl(
        &cfg,
        &["inspect", "dataplanes", "--tag", "version=v1", "-o", "json"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(
        v["items"][0]["dataplaneInsight"]["mTLS"]["certificateRegenerations"],
        1
    );
    let (code, out, _) = kumactl(&cfg, &["inspect", "dataplanes", "-o", "yaml"], "").await;
    assert_eq!(code, 0);
    assert!(out.starts_with("items:\n"), "{out}");
    assert!(out.contains("online: false"), "{out}");

    let (code, _, err) = kumactl(&cfg, &["inspect", "dataplanes", "--tag", "v1"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("must be formatted as key=value"), "{err}");
    let (code, _, err) = kumactl(&cfg, &["inspect", "dataplanes", "-m", "nope"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: failed to list Dataplanes in mesh \"nope\": Could not find a resource (Not found)\n"
        )
    );
    let (code, _, err) = kumactl(&cfg, &["inspect", "dataplanes", "--mesh", "forbidden"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: failed to list Dataplanes in mesh \"forbidden\": Access Denied (nope)\n"
        )
    );
}

#[tokio::test]
async fn inspect_dataplane_policies_and_config() {
    let cp = fake(inspect_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(&cfg, &["inspect", "dataplane", "check-in-api-blu-1"], "").await;
    assert_eq!(code, 0, "{err}");
    // kumactl 2.14's template, its unindented second name included.
    assert_eq!(
        out,
        "DATAPLANE:\n\
         \x20 MeshRetry\n\
         \x20   mesh-retry-all-default\n\
         \x20 MeshTrafficPermission\n\
         \x20   default-deny\n\
         allow-flight-control-to-check-in\n\
         \n"
    );
    let uris: Vec<String> = cp.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        ["/meshes/default/dataplanes/check-in-api-blu-1/policies"]
    );

    let (code, out, err) = kumactl(
        &cfg,
        &[
            "inspect",
            "dataplane",
            "check-in-api-blu-1",
            "-m",
            "plain",
            "--type=policies",
        ],
        "",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    let (code, out, err) = kumactl(
        &cfg,
        &["inspect", "dataplane", "check-in-api-blu-1", "-o", "json"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, policies_answer());

    let (code, out, err) = kumactl(
        &cfg,
        &[
            "inspect",
            "dataplane",
            "check-in-api-blu-1",
            "--type",
            "config",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // kumactl 2.14 prints the control plane's `{"xds": ...}` document.
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["xds"]["name"], "check-in-api-blu-1", "{out}");
    assert_eq!(
        cp.requests().last().unwrap().uri,
        "/meshes/default/dataplanes/check-in-api-blu-1/_config"
    );

    // kumactl 2.14 prints the status and the control plane's answer.
    let (code, _, err) = kumactl(&cfg, &["inspect", "dataplane", "ghost"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: (404): {\"type\":\"/std-errors\",\"status\":404,\"title\":\"Could not get MatchedPolicies\",\"detail\":\"Not found\",\"details\":\"Not found\"}\n"
        )
    );
    let (code, _, err) = kumactl(
        &cfg,
        &["inspect", "dataplane", "ghost", "--type=config"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: (404): {"), "{err}");
    let before = cp.requests().len();
    let (code, _, err) = kumactl(
        &cfg,
        &["inspect", "dataplane", "check-in-api-blu-1", "--type=stats"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: --type=stats is not supported"),
        "{err}"
    );
    let (code, _, err) = kumactl(
        &cfg,
        &["inspect", "dataplane", "check-in-api-blu-1", "--type=nope"],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: invalid value 'nope'"), "{err}");
    assert_eq!(cp.requests().len(), before);
}

#[tokio::test]
async fn inspect_meshes_counts_online_dataplanes() {
    let cp = fake(inspect_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(&cfg, &["inspect", "meshes"], "").await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NAME      mTLS           DATAPLANES   AGE");
    assert!(
        lines[1].starts_with("default   builtin/ca-1   1/2          "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("plain     off            0/0          "),
        "{out}"
    );
    assert_eq!(lines.len(), 3);
}

fn zone_token_server() -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    |r| match (r.method.as_str(), r.uri.as_str()) {
        ("POST", "/tokens/zone") => {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            if body["zone"] == "bad_zone" {
                return (
                    400,
                    json!({"type": "/std-errors", "status": 400, "title": "Could not process a resource",
                        "detail": "Resource is not valid",
                        "invalid_parameters": [{"field": "zone", "reason": "invalid characters"}]})
                    .to_string(),
                );
            }
            (200, "eyJhbGciOiJFUzI1NiJ9.zone.sig".into())
        }
        _ => (404, String::new()),
    }
}

#[tokio::test]
async fn generate_zone_token() {
    let cp = fake(zone_token_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, Some("admin-token"));
    let args = [
        "generate",
        "zone-token",
        "--zone",
        "zone-1",
        "--scope",
        "ingress",
        "--scope",
        "egress,INGRESS",
        "--valid-for",
        "720h",
    ];
    let (code, out, err) = kumactl(&cfg, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "eyJhbGciOiJFUzI1NiJ9.zone.sig");
    let req = &cp.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.uri.as_str()),
        ("POST", "/tokens/zone")
    );
    assert_eq!(req.auth.as_deref(), Some("Bearer admin-token"));
    assert_eq!(
        req.json(),
        json!({"zone": "zone-1", "scope": ["ingress", "egress"], "validFor": "720h"})
    );

    // Defaults: every scope, no validFor (the control plane's default).
    let (code, _, err) = kumactl(&cfg, &["generate", "zone-token", "--zone", "zone-2"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cp.requests()[1].json(),
        json!({"zone": "zone-2", "scope": ["cp", "ingress", "egress"]})
    );

    // Bad flags: nothing is sent.
    let before = cp.requests().len();
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "generate",
            "zone-token",
            "--zone",
            "z",
            "--scope",
            "dataplane",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: invalid value 'dataplane' for '--scope <SCOPES>'"),
        "{err}"
    );
    assert!(err.contains("cp, ingress, egress"), "{err}");
    let (code, _, err) = kumactl(&cfg, &["generate", "zone-token"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("--zone <ZONE>"), "{err}");
    let (code, _, err) = kumactl(
        &cfg,
        &[
            "generate",
            "zone-token",
            "--zone",
            "z",
            "--valid-for",
            "a while",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: invalid argument \"a while\" for \"--valid-for\""),
        "{err}"
    );
    assert_eq!(cp.requests().len(), before);

    // Server errors name the field.
    let (code, out, err) =
        kumactl(&cfg, &["generate", "zone-token", "--zone", "bad_zone"], "").await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error: failed to generate a zone token: Could not process a resource (Resource is not valid);zone=invalid characters \n"
    );
}

fn zones_server() -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    |r| {
        let ingress = json!({"type": "ZoneIngress", "name": "ingress-1", "zone": "zone-1",
            "creationTime": "2020-01-01T00:00:00Z", "modificationTime": "2020-01-01T00:00:00Z",
            "networking": {"address": "192.168.0.1", "port": 10001, "advertisedAddress": "10.0.0.1", "advertisedPort": 10000},
            "availableServices": [{"mesh": "default", "instances": 1, "tags": {"kuma.io/service": "web"}}]});
        match (r.method.as_str(), r.uri.as_str()) {
            ("GET", "/zones+insights") => (
                200,
                json!({"total": 3, "next": null, "items": [
                    {"type": "ZoneOverview", "name": "zone-1",
                     "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                     "zone": {"enabled": true},
                     "zoneInsight": {"subscriptions": [
                        {"id": "1", "globalInstanceId": "global-1", "connectTime": rfc3339_ago(7200),
                         "disconnectTime": rfc3339_ago(3600),
                         "status": {"lastUpdateTime": rfc3339_ago(3700),
                                    "total": {"responsesSent": "30", "responsesAcknowledged": "30"}}},
                        {"id": "2", "globalInstanceId": "global-1", "connectTime": rfc3339_ago(180),
                         "status": {"lastUpdateTime": rfc3339_ago(20),
                                    "total": {"responsesSent": "12", "responsesAcknowledged": "12", "responsesRejected": "1"}},
                         "version": {"kumaCp": {"version": "0.1.0"}},
                         "config": "{\"store\":{\"type\":\"postgres\"}}"}]}},
                    {"type": "ZoneOverview", "name": "zone-2",
                     "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                     "zone": {"enabled": true},
                     "zoneInsight": {"subscriptions": [
                        {"id": "3", "globalInstanceId": "global-1", "connectTime": rfc3339_ago(600),
                         "disconnectTime": rfc3339_ago(300),
                         "status": {"lastUpdateTime": rfc3339_ago(400),
                                    "total": {"responsesSent": "5", "responsesAcknowledged": "4"}}}]}},
                    {"type": "ZoneOverview", "name": "zone-3",
                     "creationTime": "2026-03-01T09:00:00Z", "modificationTime": "2026-03-01T09:00:00Z",
                     "zone": {"enabled": false}, "zoneInsight": {}}]})
                .to_string(),
            ),
            ("GET", "/zoneingresses+insights") => (
                200,
                json!({"total": 2, "next": null, "items": [
                    {"type": "ZoneIngressOverview", "name": "ingress-1",
                     "zoneIngress": ingress.clone(),
                     "zoneIngressInsight": {"subscriptions": [{"connectTime": rfc3339_ago(60)}]}},
                    {"type": "ZoneIngressOverview", "name": "ingress-2",
                     "zoneIngress": {"zone": "zone-2", "networking": {"address": "10.2.0.1", "port": 10001}},
                     "zoneIngressInsight": {"subscriptions": [
                        {"connectTime": rfc3339_ago(60), "disconnectTime": rfc3339_ago(30)}]}}]})
                .to_string(),
            ),
            ("GET", "/zoneingresses") => (
                200,
                json!({"total": 1, "next": null, "items": [ingress]}).to_string(),
            ),
            ("GET", "/zoneingresses/ingress-1") => (200, ingress.to_string()),
            ("GET", "/zones") => (
                200,
                json!({"total": 2, "next": null, "items": [
                    {"type": "Zone", "name": "zone-1", "creationTime": "2020-01-01T00:00:00Z"},
                    {"type": "Zone", "name": "zone-3", "enabled": false, "creationTime": "2020-01-01T00:00:00Z"}]})
                .to_string(),
            ),
            ("GET", "/zones/zone-1") => (
                200,
                json!({"type": "Zone", "name": "zone-1", "creationTime": "2020-01-01T00:00:00Z"}).to_string(),
            ),
            _ => (
                404,
                json!({"type": "/std-errors", "status": 404, "title": "Could not find a resource", "detail": "Not found"})
                    .to_string(),
            ),
        }
    }
}

#[tokio::test]
async fn inspect_zones_online_and_offline() {
    let cp = fake(zones_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);
    let (code, out, err) = kumactl(&cfg, &["inspect", "zones"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "NAME     STATUS    LAST CONNECTED AGO   LAST UPDATED AGO   TOTAL UPDATES   TOTAL ERRORS   ZONE-CP VERSION   BACKEND\n\
         zone-1   Online    3m                   20s                42              1              0.1.0             postgres\n\
         zone-2   Offline   10m                  6m                 5               0                                \n\
         zone-3   Offline   never                never              0               0                                \n"
    );
    assert_eq!(cp.requests()[0].uri, "/zones+insights");

    let (code, out, err) = kumactl(&cfg, &["inspect", "zones", "-o", "json"], "").await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(
        v["items"][0]["zoneInsight"]["subscriptions"][1]["globalInstanceId"],
        "global-1"
    );
    let (code, out, _) = kumactl(&cfg, &["inspect", "zones", "-o", "yaml"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("type: ZoneOverview"), "{out}");
    assert!(out.contains("enabled: false"), "{out}");

    // A control plane without the endpoint.
    let bare = fake(accept_all).await;
    let cfg2 = write_config(&dir.path().join(""), &bare.url, None);
    let (code, _, err) = kumactl(&cfg2, &["inspect", "zones"], "").await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: failed to list Zones: Could not find a resource (Not found)\n"
        )
    );
}

#[tokio::test]
async fn get_and_inspect_zone_ingresses_and_zones() {
    let cp = fake(zones_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &cp.url, None);

    for args in [
        &["get", "zoneingresses"][..],
        &["get", "zone-ingresses"][..],
    ] {
        let (code, out, err) = kumactl(&cfg, args, "").await;
        assert_eq!(code, 0, "{err}");
        let mut lines = out.lines();
        assert_eq!(
            lines.next().unwrap(),
            "NAME        ZONE     ADDRESS          AGE"
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("ingress-1   zone-1   10.0.0.1:10000   "),
            "{out}"
        );
    }
    let (code, out, err) =
        kumactl(&cfg, &["get", "zoneingress", "ingress-1", "-o", "yaml"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("type: ZoneIngress\n"), "{out}");
    assert!(out.contains("advertisedPort: 10000"), "{out}");
    let (code, _, err) = kumactl(&cfg, &["get", "zoneingress", "nope"], "").await;
    assert_eq!((code, err.as_str()), (1, "Error: No resources found\n"));

    let (code, out, err) = kumactl(&cfg, &["get", "zones"], "").await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NAME     ENABLED   AGE");
    assert!(lines[1].starts_with("zone-1   true      "), "{out}");
    assert!(lines[2].starts_with("zone-3   false     "), "{out}");
    let (code, out, err) = kumactl(&cfg, &["get", "zone", "zone-1"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("NAME     ENABLED   AGE\nzone-1   true      "),
        "{out}"
    );

    for args in [
        &["inspect", "zoneingresses"][..],
        &["inspect", "zone-ingresses"][..],
    ] {
        let (code, out, err) = kumactl(&cfg, args, "").await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            "NAME        ZONE     STATUS    ADDRESS          AVAILABLE SERVICES\n\
             ingress-1   zone-1   Online    10.0.0.1:10000   1\n\
             ingress-2   zone-2   Offline   10.2.0.1:10001   0\n"
        );
    }
    assert_eq!(cp.requests().last().unwrap().uri, "/zoneingresses+insights");
    let (code, out, _) = kumactl(&cfg, &["inspect", "zoneingresses", "-o", "json"], "").await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"][1]["zoneIngress"]["zone"], "zone-2");
}
