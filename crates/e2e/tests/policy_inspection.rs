//! Kuma 2.14's policy inspection through the real control plane and kumactl: `_policies`,
//! `_inbounds/{kri}/_policies`, `_outbounds/{kri}/_policies`, `_layout` and the `policies`
//! list kumactl prints, for a Dataplane with two inbounds and MeshService-backed outbounds.
//! Each answer is checked against the shapes of Kuma's OpenAPI (`api/openapi/specs`) and
//! field by field; errors against Kuma's answers.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_core::kri::Kri;
use aerie_e2e::{ControlPlane, HttpResponse, Kumactl};
use serde_json::{Value, json};

/// A mesh with MeshServices in `Exclusive` mode (Kuma answers the `_policies` family only
/// then) and no default policies, so every answer below is exactly what is applied here.
const MESH: &str = "type: Mesh\nname: shop\nmeshServices:\n  mode: Exclusive\nskipCreatingInitialPolicies: ['*']\n";

const SERVICES: &str = "type: MeshService\nname: backend\nmesh: shop\nspec:\n  selector:\n    dataplaneTags:\n      kuma.io/service: backend\n  ports:\n  - port: 80\n    targetPort: 8080\n    appProtocol: http\n    name: main-port\n  - port: 8081\n    targetPort: 8081\n    appProtocol: tcp\n    name: secondary-port\n---\ntype: MeshService\nname: db\nmesh: shop\nspec:\n  selector:\n    dataplaneTags:\n      kuma.io/service: db\n  ports:\n  - port: 5432\n    targetPort: 5432\n    appProtocol: tcp\n";

/// Two inbounds (one named), two outbounds to MeshServices.
const WEB: &str = "type: Dataplane\nname: web-1\nmesh: shop\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 8080\n    name: http-port\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n  - port: 9090\n    tags:\n      kuma.io/service: web-admin\n      kuma.io/protocol: tcp\n  outbound:\n  - port: 10001\n    backendRef:\n      kind: MeshService\n      name: backend\n      port: 80\n  - port: 10002\n    backendRef:\n      kind: MeshService\n      name: db\n      port: 5432\n";

const POLICIES: &str = "type: MeshTimeout\nname: mesh-wide\nmesh: shop\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      idleTimeout: 30m\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 2s\n---\ntype: MeshTimeout\nname: web-http\nmesh: shop\nspec:\n  targetRef:\n    kind: Dataplane\n    sectionName: http-port\n  rules:\n  - default:\n      idleTimeout: 60s\n---\ntype: MeshTimeout\nname: to-backend\nmesh: shop\nspec:\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n      sectionName: main-port\n    default:\n      http:\n        requestTimeout: 5s\n---\ntype: MeshCircuitBreaker\nname: backend-limits\nmesh: shop\nspec:\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    default:\n      connectionLimits:\n        maxRequests: 7\n---\ntype: MeshRateLimit\nname: web-limit\nmesh: shop\nspec:\n  targetRef:\n    kind: Mesh\n    proxyTypes:\n    - Sidecar\n  rules:\n  - default:\n      local:\n        http:\n          requestRate:\n            num: 100\n            interval: 90s\n---\ntype: MeshRetry\nname: other-service\nmesh: shop\nspec:\n  targetRef:\n    kind: MeshService\n    name: somebody-else\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      tcp:\n        maxConnectAttempt: 3\n";

fn apply(kumactl: &Kumactl, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.yaml");
    std::fs::write(&f, yaml).unwrap();
    kumactl.ok(&["apply", "-f", f.to_str().unwrap()]);
}

/// A KRI the answer gives: a string Kuma's format parses.
fn assert_kri(v: &Value, what: &str) {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    Kri::parse(text).unwrap_or_else(|e| panic!("{what}: {text}: {e}"));
}

fn object<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"))
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"))
}

/// Every key of `v` is one of `allowed`, and every one of `required` is there.
fn keys(v: &Value, required: &[&str], allowed: &[&str], what: &str) {
    let o = object(v, what);
    for k in required {
        assert!(o.contains_key(*k), "{what}: `{k}` missing in {v}");
    }
    for k in o.keys() {
        assert!(
            allowed.contains(&k.as_str()) || required.contains(&k.as_str()),
            "{what}: unexpected `{k}` in {v}"
        );
    }
}

/// `PolicyOrigin[]`.
fn check_origins(v: &Value, what: &str) {
    for o in array(v, what) {
        keys(o, &["kri"], &[], what);
        assert_kri(&o["kri"], what);
    }
}

/// `PoliciesList` of `PolicyConf` (`ProxyPolicyConfResponse`, `OutboundPolicyConfResponse`).
fn check_policies_list(v: &Value) {
    keys(v, &["policies"], &[], "PoliciesList");
    for p in array(&v["policies"], "policies") {
        keys(p, &["kind", "conf", "origins"], &[], "PolicyConf");
        assert!(p["kind"].is_string(), "{p}");
        // `conf` is free-form: Kuma writes the merged confs of a resource rule as a list.
        assert!(p["conf"].is_array() || p["conf"].is_object(), "{p}");
        check_origins(&p["origins"], "PolicyConf.origins");
    }
}

/// `InboundPoliciesList` of `InboundPolicyConf` (`InboundPolicyConfResponse`).
fn check_inbound_policies_list(v: &Value) {
    keys(v, &["policies"], &[], "InboundPoliciesList");
    for p in array(&v["policies"], "policies") {
        keys(p, &["kind", "rules", "origins"], &[], "InboundPolicyConf");
        assert!(p["kind"].is_string(), "{p}");
        for r in array(&p["rules"], "rules") {
            keys(r, &["conf"], &["kri"], "PolicyRule");
            object(&r["conf"], "PolicyRule.conf");
            assert_kri(&r["kri"], "PolicyRule.kri");
        }
        check_origins(&p["origins"], "InboundPolicyConf.origins");
    }
}

/// `DataplaneNetworkingLayout` (`DataplaneNetworkingLayoutResponse`).
fn check_layout(v: &Value) {
    keys(
        v,
        &["kri", "labels", "inbounds", "outbounds", "listeners"],
        &["spiffeId"],
        "DataplaneNetworkingLayout",
    );
    assert_kri(&v["kri"], "kri");
    for l in object(&v["labels"], "labels").values() {
        assert!(l.is_string(), "{v}");
    }
    for (list, what) in [
        (&v["inbounds"], "DataplaneInbound"),
        (&v["outbounds"], "DataplaneOutbound"),
    ] {
        for e in array(list, what) {
            keys(
                e,
                &["kri", "port", "protocol", "proxyResourceName"],
                &[],
                what,
            );
            assert_kri(&e["kri"], what);
            assert!(e["port"].is_u64() && e["protocol"].is_string(), "{e}");
            assert!(e["proxyResourceName"].is_string(), "{e}");
        }
    }
    for e in array(&v["listeners"], "listeners") {
        keys(
            e,
            &["kri", "type", "port", "proxyResourceName"],
            &[],
            "DataplaneListener",
        );
        assert!(["ZoneIngress", "ZoneEgress"].contains(&e["type"].as_str().unwrap_or("")));
    }
}

/// Kuma's error body.
fn assert_error(r: &HttpResponse, status: u16, title: &str, detail: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"type": "/std-errors", "status": status, "title": title, "detail": detail, "details": detail}),
        "{}",
        r.body
    );
}

#[test]
fn kumas_inspection_answers_for_a_dataplane_with_two_inbounds_and_mesh_service_outbounds() {
    let cp = ControlPlane::start();
    let kumactl = Kumactl::for_cp(&cp);
    apply(&kumactl, MESH);
    apply(&kumactl, SERVICES);
    apply(&kumactl, WEB);
    apply(&kumactl, POLICIES);
    let dp = "/meshes/shop/dataplanes/web-1";

    // Proxy-level policies: Aerie has no single-item kind (MeshTrace, MeshMetric...).
    let r = cp.get(&format!("{dp}/_policies"));
    assert_eq!(r.status, 200, "{}", r.body);
    check_policies_list(&r.json());
    assert_eq!(r.json(), json!({"policies": []}));

    // The layout: KRIs of the inbounds (by name, else port), the reachable MeshService
    // ports named by the backendRef outbounds, sorted by KRI.
    let r = cp.get(&format!("{dp}/_layout"));
    assert_eq!(r.status, 200, "{}", r.body);
    let layout = r.json();
    check_layout(&layout);
    assert_eq!(
        layout,
        json!({
            "inbounds": [
                {"kri": "kri_dp_shop___web-1_http-port", "port": 8080, "protocol": "http",
                 "proxyResourceName": "self_inbound_dp_http-port"},
                {"kri": "kri_dp_shop___web-1_9090", "port": 9090, "protocol": "tcp",
                 "proxyResourceName": "self_inbound_dp_9090"},
            ],
            "kri": "kri_dp_shop___web-1_",
            "labels": {},
            "listeners": [],
            "outbounds": [
                {"kri": "kri_msvc_shop___backend_main-port", "port": 80, "protocol": "http",
                 "proxyResourceName": "kri_msvc_shop___backend_main-port"},
                {"kri": "kri_msvc_shop___db_5432", "port": 5432, "protocol": "tcp",
                 "proxyResourceName": "kri_msvc_shop___db_5432"},
            ],
        })
    );

    // The named inbound: MeshRateLimit (order 900) before MeshTimeout (1000); the Mesh-wide
    // MeshTimeout's `from` entry is a rule (IsFromAsRules), merged before the
    // Dataplane-section one; durations as Go prints them.
    let r = cp.get(&format!(
        "{dp}/_inbounds/kri_dp_shop___web-1_http-port/_policies"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let http_inbound = r.json();
    check_inbound_policies_list(&http_inbound);
    assert_eq!(
        http_inbound,
        json!({"policies": [
            {"kind": "MeshRateLimit",
             "origins": [{"kri": "kri_mrl_shop___web-limit_"}],
             "rules": [{"conf": {"local": {"http": {"requestRate": {"num": 100, "interval": "1m30s"}}}},
                        "kri": "kri_mrl_shop___web-limit_"}]},
            {"kind": "MeshTimeout",
             "origins": [{"kri": "kri_mt_shop___mesh-wide_"}, {"kri": "kri_mt_shop___web-http_"}],
             "rules": [{"conf": {"connectionTimeout": "2s"}, "kri": "kri_mt_shop___mesh-wide_"},
                       {"conf": {"idleTimeout": "1m0s"}, "kri": "kri_mt_shop___web-http_"}]},
        ]})
    );
    // The unnamed inbound by its port: web-http names the other section.
    let r = cp.get(&format!(
        "{dp}/_inbounds/kri_dp_shop___web-1_9090/_policies"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    check_inbound_policies_list(&r.json());
    assert_eq!(
        r.json()["policies"][1],
        json!({"kind": "MeshTimeout",
               "origins": [{"kri": "kri_mt_shop___mesh-wide_"}],
               "rules": [{"conf": {"connectionTimeout": "2s"}, "kri": "kri_mt_shop___mesh-wide_"}]})
    );
    // Kuma reads only the section name: the Dataplane's own KRI means its first inbound.
    let r = cp.get(&format!("{dp}/_inbounds/kri_dp_shop___web-1_/_policies"));
    assert_eq!(r.json(), http_inbound, "{}", r.body);

    // The outbound to backend's main port: the port's rule merges the Mesh entry, the
    // service entry and the section entry; MeshTimeout (1000) before MeshCircuitBreaker
    // (1300). The retry policy selects another proxy.
    let r = cp.get(&format!(
        "{dp}/_outbounds/kri_msvc_shop___backend_main-port/_policies"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let main_port = r.json();
    check_policies_list(&main_port);
    assert_eq!(
        main_port,
        json!({"policies": [
            {"conf": [{"idleTimeout": "30m0s", "http": {"requestTimeout": "5s"}}],
             "kind": "MeshTimeout",
             "origins": [{"kri": "kri_mt_shop___mesh-wide_"}, {"kri": "kri_mt_shop___to-backend_"}]},
            {"conf": [{"connectionLimits": {"maxRequests": 7}}],
             "kind": "MeshCircuitBreaker",
             "origins": [{"kri": "kri_mcb_shop___backend-limits_"}]},
        ]})
    );
    // Its other port: the service's rule (no section entry there), the mesh's timeouts.
    let r = cp.get(&format!(
        "{dp}/_outbounds/kri_msvc_shop___backend_secondary-port/_policies"
    ));
    check_policies_list(&r.json());
    assert_eq!(
        r.json(),
        json!({"policies": [
            {"conf": [{"idleTimeout": "30m0s"}], "kind": "MeshTimeout",
             "origins": [{"kri": "kri_mt_shop___mesh-wide_"}]},
            {"conf": [{"connectionLimits": {"maxRequests": 7}}], "kind": "MeshCircuitBreaker",
             "origins": [{"kri": "kri_mcb_shop___backend-limits_"}]},
        ]})
    );
    // db, and a MeshService that does not exist: only the mesh-wide rule (Kuma answers
    // any destination KRI).
    let mesh_only = json!({"policies": [
        {"conf": [{"idleTimeout": "30m0s"}], "kind": "MeshTimeout",
         "origins": [{"kri": "kri_mt_shop___mesh-wide_"}]},
    ]});
    for kri in ["kri_msvc_shop___db_5432", "kri_msvc_shop___nothing-here_80"] {
        let r = cp.get(&format!("{dp}/_outbounds/{kri}/_policies"));
        assert_eq!(r.status, 200, "{kri}: {}", r.body);
        check_policies_list(&r.json());
        assert_eq!(r.json(), mesh_only, "{kri}");
    }

    // kumactl 2.14's text: every kind with the policies applying to the proxy, lowest
    // priority first (of two Mesh-wide policies the alphabetically first wins, so it comes
    // later).
    let text = kumactl.ok(&["inspect", "dataplane", "web-1", "--mesh", "shop"]);
    assert_eq!(
        text,
        "DATAPLANE:\n  MeshCircuitBreaker\n    backend-limits\n  MeshRateLimit\n    web-limit\n  MeshTimeout\n    to-backend\nmesh-wide\nweb-http\n\n"
    );
    let listed = cp.get(&format!("{dp}/policies")).json();
    assert_eq!(listed["kind"], "SidecarDataplane");
    assert_eq!(listed["total"], 1);
    let timeouts = &listed["items"][0]["matchedPolicies"]["MeshTimeout"];
    for (m, name) in
        array(timeouts, "MeshTimeout")
            .iter()
            .zip(["to-backend", "mesh-wide", "web-http"])
    {
        keys(
            m,
            &[
                "type",
                "mesh",
                "name",
                "creationTime",
                "modificationTime",
                "kri",
            ],
            &["labels"],
            "Meta",
        );
        assert_eq!(
            (&m["type"], &m["mesh"], &m["name"]),
            (&json!("MeshTimeout"), &json!("shop"), &json!(name))
        );
        assert_eq!(m["kri"], format!("kri_mt_shop___{name}_"));
    }
}

#[test]
fn kumas_errors_for_the_inspection_endpoints() {
    let cp = ControlPlane::start();
    let kumactl = Kumactl::for_cp(&cp);
    apply(&kumactl, MESH);
    apply(&kumactl, WEB);
    let dp = "/meshes/shop/dataplanes/web-1";

    // No such Dataplane: Kuma's 404s, their titles saying what was being done.
    for path in [
        "/meshes/shop/dataplanes/nope/_policies",
        "/meshes/shop/dataplanes/nope/_inbounds/kri_dp_shop___nope_8080/_policies",
        "/meshes/shop/dataplanes/nope/_outbounds/kri_msvc_shop___backend_80/_policies",
        "/meshes/nowhere/dataplanes/nope/_policies",
    ] {
        assert_error(
            &cp.get(path),
            404,
            "Could not retrieve Dataplane",
            "Not found",
        );
    }
    assert_error(
        &cp.get("/meshes/shop/dataplanes/nope/_layout"),
        404,
        "Failed to retrieve Dataplane",
        "Not found",
    );
    assert_error(
        &cp.get("/meshes/nowhere/dataplanes/nope/_layout"),
        404,
        "Failed to build MeshContext",
        "Not found",
    );
    assert_error(
        &cp.get("/meshes/shop/dataplanes/nope/policies"),
        404,
        "Could not get MatchedPolicies",
        "Not found",
    );
    let err = kumactl.fails(&["inspect", "dataplane", "nope", "--mesh", "shop"]);
    assert_eq!(
        err,
        "Error: (404): {\"type\":\"/std-errors\",\"status\":404,\"title\":\"Could not get MatchedPolicies\",\"detail\":\"Not found\",\"details\":\"Not found\"}\n"
    );

    // KRIs that do not parse: 400 naming the problem.
    for (kri, problem) in [
        ("invalid-kri", "invalid identifier string: \"invalid-kri\""),
        (
            "id_dp_shop___web-1_http-port",
            "identifier must start with 'kri': \"id_dp_shop___web-1_http-port\"",
        ),
        (
            "kri_extsvc_shop___payments_443",
            "unknown short name of resource type: \"extsvc\"",
        ),
    ] {
        for side in ["_inbounds", "_outbounds"] {
            assert_error(
                &cp.get(&format!("{dp}/{side}/{kri}/_policies")),
                400,
                "Bad Request",
                &format!("bad request: {problem}"),
            );
        }
    }
    // An inbound the Dataplane does not have: Kuma's 500.
    assert_error(
        &cp.get(&format!(
            "{dp}/_inbounds/kri_dp_shop___web-1_nope/_policies"
        )),
        500,
        "Failed building response",
        "Internal Server Error",
    );

    // A mesh without MeshServices in Exclusive mode: 400 for the `_policies` family and
    // `_layout`; kumactl's list works in every mode.
    apply(
        &kumactl,
        "type: Dataplane\nname: legacy-1\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: legacy\n",
    );
    let legacy = "/meshes/default/dataplanes/legacy-1";
    for path in [
        format!("{legacy}/_policies"),
        format!("{legacy}/_inbounds/kri_dp_default___legacy-1_8080/_policies"),
        format!("{legacy}/_outbounds/kri_msvc_default___legacy_8080/_policies"),
    ] {
        assert_error(
            &cp.get(&path),
            400,
            "Bad Request",
            "bad request: can't use _policies endpoint without meshService enabled",
        );
    }
    assert_error(
        &cp.get(&format!("{legacy}/_layout")),
        400,
        "Bad Request",
        "bad request: can't use _layout endpoint without meshService enabled",
    );
    // The default mesh's default policies apply to it.
    let text = kumactl.ok(&["inspect", "dataplane", "legacy-1"]);
    assert!(
        text.starts_with("DATAPLANE:\n")
            && text.contains("  MeshTimeout\n    mesh-timeout-all-default\n"),
        "{text}"
    );
}
