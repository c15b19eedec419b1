//! Kuma 2.14's inspection answers (the cases of its `pkg/api-server` table tests, written
//! anew) computed in-process.

use serde_json::{Value, json};

use super::*;
use crate::format::{parse_yaml_value, resource_from_value};
use crate::policies::rules::{Catalog, CatalogResource};

fn resource(yaml: &str) -> Resource {
    resource_from_value(&parse_yaml_value(yaml).unwrap()).unwrap()
}

fn resources(yaml: &str) -> Vec<Resource> {
    crate::format::parse_yaml_documents(yaml)
        .unwrap()
        .iter()
        .map(|d| resource_from_value(d).unwrap())
        .collect()
}

fn catalog(all: &[Resource]) -> Catalog {
    Catalog::new(
        all.iter()
            .filter_map(|r| match &r.spec {
                Spec::MeshService(s) => {
                    Some(CatalogResource::mesh_service(r.name(), &r.meta.labels, s))
                }
                _ => None,
            })
            .collect(),
    )
}

fn view(dp: &Resource) -> DataplaneView<'_> {
    match &dp.spec {
        Spec::Dataplane(spec) => DataplaneView {
            mesh: dp.mesh(),
            name: dp.name(),
            labels: &dp.meta.labels,
            spec,
        },
        other => panic!("{other:?}"),
    }
}

const DP: &str = "type: Dataplane\nname: dp-1\nmesh: default\nlabels:\n  kuma.io/zone: zone-a\nnetworking:\n  address: 127.0.0.1\n  inbound:\n    - port: 8080\n      name: main-port\n      tags: {kuma.io/service: foo, kuma.io/protocol: http}\n    - port: 8081\n      tags: {kuma.io/service: foo-admin, kuma.io/protocol: tcp}\n  listeners:\n    - {type: ZoneEgress, address: 127.0.0.1, port: 10002, name: ze-port}\n";

const SERVICE: &str = "type: MeshService\nname: backend-xyz\nmesh: default\nlabels:\n  kuma.io/display-name: backend\n  kuma.io/zone: zone-a\nspec:\n  selector:\n    dataplaneTags: {kuma.io/service: backend}\n  ports:\n    - {port: 80, targetPort: 80, appProtocol: http, name: main-port}\n    - {port: 8080, targetPort: 8080, appProtocol: tcp, name: secondary-port}\n";

fn inspector(policies: &str) -> MeshInspector {
    let mut all = resources(policies);
    all.push(resource(SERVICE));
    MeshInspector::new("default", &all, &catalog(&all))
}

const MAIN: &str = "kri_msvc_default_zone-a__backend_main-port";

#[test]
fn inbound_rules_of_two_timeouts_in_priority_order_with_go_durations() {
    let i = inspector(
        "type: MeshTimeout\nname: inbound-timeout\nmesh: default\nspec:\n  rules:\n    - default: {idleTimeout: 60s, connectionTimeout: 2s}\n---\ntype: MeshTimeout\nname: inbound-timeout-1\nmesh: default\nspec:\n  rules:\n    - default:\n        http: {requestTimeout: 10s, streamIdleTimeout: 1h, maxStreamDuration: 30m, maxConnectionDuration: 30m}\n",
    );
    let dp = resource(DP);
    let answer = i.inbound_policies(&view(&dp), "main-port").unwrap();
    // Of two otherwise equal policies the alphabetically first wins: it comes last.
    assert_eq!(
        answer,
        json!({"policies": [{
            "kind": "MeshTimeout",
            "origins": [
                {"kri": "kri_mt_default___inbound-timeout-1_"},
                {"kri": "kri_mt_default___inbound-timeout_"},
            ],
            "rules": [
                {"conf": {"http": {"requestTimeout": "10s", "streamIdleTimeout": "1h0m0s", "maxStreamDuration": "30m0s", "maxConnectionDuration": "30m0s"}},
                 "kri": "kri_mt_default___inbound-timeout-1_"},
                {"conf": {"connectionTimeout": "2s", "idleTimeout": "1m0s"},
                 "kri": "kri_mt_default___inbound-timeout_"},
            ],
        }]})
    );
    // Keys in Kuma's order: the conf type's fields, not the order written.
    let conf = &answer["policies"][0]["rules"][1]["conf"];
    let keys: Vec<&String> = conf.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["connectionTimeout", "idleTimeout"]);
}

#[test]
fn which_kinds_list_from_entries_on_an_inbound() {
    // MeshRateLimit and MeshTimeout read `from` as rules; MeshFaultInjection and
    // MeshTrafficPermission do not, so a `from`-only policy of theirs is not listed.
    let i = inspector(
        "type: MeshRateLimit\nname: limit\nmesh: default\nspec:\n  targetRef: {kind: Dataplane}\n  from:\n    - targetRef: {kind: Mesh}\n      default:\n        local:\n          http:\n            requestRate: {num: 5, interval: 10s}\n---\ntype: MeshFaultInjection\nname: faults\nmesh: default\nspec:\n  from:\n    - targetRef: {kind: Mesh}\n      default:\n        http:\n          - abort: {httpStatus: 500, percentage: 50}\n---\ntype: MeshTrafficPermission\nname: allow-all\nmesh: default\nspec:\n  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n---\ntype: MeshTrafficPermission\nname: by-rules\nmesh: default\nspec:\n  rules:\n    - default:\n        allow:\n          - spiffeID: {type: Prefix, value: 'spiffe://trust-domain.mesh/ns/backend'}\n    - default:\n        deny:\n          - spiffeID: {type: Exact, value: 'spiffe://trust-domain.mesh/ns/backend/v1'}\n",
    );
    let dp = resource(DP);
    let answer = i.inbound_policies(&view(&dp), "main-port").unwrap();
    let kinds: Vec<&str> = answer["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    // Kuma's plugin order: MeshRateLimit (900) before MeshTrafficPermission (1100).
    assert_eq!(kinds, ["MeshRateLimit", "MeshTrafficPermission"]);
    assert_eq!(
        answer["policies"][0]["rules"],
        json!([{"conf": {"local": {"http": {"requestRate": {"num": 5, "interval": "10s"}}}},
                "kri": "kri_mrl_default___limit_"}])
    );
    assert_eq!(
        answer["policies"][1],
        json!({
            "kind": "MeshTrafficPermission",
            "origins": [{"kri": "kri_mtp_default___by-rules_"}],
            "rules": [
                {"conf": {"allow": [{"spiffeID": {"type": "Prefix", "value": "spiffe://trust-domain.mesh/ns/backend"}}]},
                 "kri": "kri_mtp_default___by-rules_"},
                {"conf": {"deny": [{"spiffeID": {"type": "Exact", "value": "spiffe://trust-domain.mesh/ns/backend/v1"}}]},
                 "kri": "kri_mtp_default___by-rules_"},
            ],
        })
    );
}

#[test]
fn inbounds_are_found_by_section_name() {
    let i = inspector(
        "type: MeshTimeout\nname: admin-only\nmesh: default\nspec:\n  targetRef: {kind: Dataplane, sectionName: '8081'}\n  rules:\n    - default: {idleTimeout: 7s}\n---\ntype: MeshTimeout\nname: everywhere\nmesh: default\nspec:\n  rules:\n    - default: {connectionTimeout: 1s}\n",
    );
    let dp = resource(DP);
    let origins = |section: &str| -> Option<Vec<String>> {
        let a = i.inbound_policies(&view(&dp), section)?;
        Some(
            a["policies"][0]["origins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["kri"].as_str().unwrap().to_owned())
                .collect(),
        )
    };
    // The named inbound, the unnamed one by its port, the first one for no section.
    assert_eq!(
        origins("main-port").unwrap(),
        ["kri_mt_default___everywhere_"]
    );
    // Rules in priority order, lowest first: the Mesh-wide policy, then the Dataplane one.
    assert_eq!(
        origins("8081").unwrap(),
        [
            "kri_mt_default___everywhere_",
            "kri_mt_default___admin-only_"
        ]
    );
    assert_eq!(origins("").unwrap(), ["kri_mt_default___everywhere_"]);
    // A `Mesh` policy selects the embedded listener too; a Dataplane ref with another
    // section does not.
    assert_eq!(
        origins("ze-port").unwrap(),
        ["kri_mt_default___everywhere_"]
    );
    assert_eq!(i.inbound_policies(&view(&dp), "nope"), None);
    // The port of a named inbound is not its section name.
    assert_eq!(i.inbound_policies(&view(&dp), "8080"), None);
}

#[test]
fn no_policies_no_entries() {
    let i = inspector("");
    let dp = resource(DP);
    let v = view(&dp);
    assert_eq!(
        i.inbound_policies(&v, "main-port"),
        Some(json!({"policies": []}))
    );
    assert_eq!(
        i.outbound_policies(&v, &Kri::parse(MAIN).unwrap()),
        json!({"policies": []})
    );
    assert_eq!(
        i.matched_policies(&v),
        json!({"kind": "SidecarDataplane", "total": 0, "items": []})
    );
    assert_eq!(i.proxy_policies(&v), json!({"policies": []}));
}

#[test]
fn proxy_policies_merge_single_item_kinds_in_priority_order() {
    // Kuma's `_policies/merged_policies` case, plus a MeshMetric for another proxy only.
    let i = inspector(
        "type: MeshTrace\nname: default\nmesh: default\nspec:\n  default:\n    backends:\n      - type: Zipkin\n        zipkin:\n          url: http://jaeger-collector:9411/api/v2/spans\n          apiVersion: httpJson\n---\ntype: MeshTrace\nname: default-1\nmesh: default\nspec:\n  default:\n    sampling: {overall: 80, random: 60, client: 40}\n    backends:\n      - type: Zipkin\n        zipkin:\n          url: http://jaeger-collector:9411/api/v2/spans\n          apiVersion: httpJson\n---\ntype: MeshMetric\nname: other\nmesh: default\nspec:\n  targetRef: {kind: Dataplane, labels: {team: metrics}}\n  default:\n    backends:\n      - type: Prometheus\n        prometheus: {port: 5670}\n",
    );
    let dp = resource(DP);
    assert_eq!(
        i.proxy_policies(&view(&dp)),
        json!({"policies": [{
            "conf": {
                "backends": [{"type": "Zipkin", "zipkin": {
                    "url": "http://jaeger-collector:9411/api/v2/spans",
                    "traceId128bit": false,
                    "apiVersion": "httpJson",
                    "sharedSpanContext": true
                }}],
                "sampling": {"overall": 80, "client": 40, "random": 60}
            },
            "kind": "MeshTrace",
            "origins": [
                {"kri": "kri_mtr_default___default-1_"},
                {"kri": "kri_mtr_default___default_"}
            ]
        }]})
    );
    // The MeshMetric selects the labelled proxy only.
    let mut dp2 = resource(DP);
    dp2.meta.labels.insert("team".into(), "metrics".into());
    let metrics = i.proxy_policies(&view(&dp2));
    assert_eq!(metrics["policies"][1]["kind"], "MeshMetric", "{metrics}");
    assert_eq!(
        metrics["policies"][1]["origins"],
        json!([{"kri": "kri_mm_default___other_"}])
    );
    assert_eq!(
        metrics["policies"][1]["conf"]["backends"][0]["prometheus"]["port"],
        5670
    );
}

fn outbound(i: &MeshInspector, kri: &str) -> Value {
    let dp = resource(DP);
    i.outbound_policies(&view(&dp), &Kri::parse(kri).unwrap())
}

#[test]
fn outbound_confs_merge_every_relevant_entry() {
    let i = inspector(
        "type: MeshTimeout\nname: mt-1\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, labels: {kuma.io/display-name: backend}}\n      default: {idleTimeout: 20s, connectionTimeout: 2s}\n---\ntype: MeshTimeout\nname: mt-2\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, labels: {kuma.io/display-name: backend}}\n      default: {http: {requestTimeout: 2s}}\n---\ntype: MeshCircuitBreaker\nname: web-to-backend\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, labels: {kuma.io/display-name: backend}}\n      default:\n        connectionLimits: {maxRequests: 2, maxConnections: 2, maxRetries: 2, maxPendingRequests: 8}\n",
    );
    assert_eq!(
        outbound(&i, MAIN),
        json!({"policies": [
            {"conf": [{"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "2s"}}],
             "kind": "MeshTimeout",
             "origins": [{"kri": "kri_mt_default___mt-2_"}, {"kri": "kri_mt_default___mt-1_"}]},
            {"conf": [{"connectionLimits": {"maxConnections": 2, "maxPendingRequests": 8, "maxRetries": 2, "maxRequests": 2}}],
             "kind": "MeshCircuitBreaker",
             "origins": [{"kri": "kri_mcb_default___web-to-backend_"}]},
        ]})
    );
    let limits = &outbound(&i, MAIN)["policies"][1]["conf"][0]["connectionLimits"];
    let keys: Vec<&String> = limits.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "maxConnections",
            "maxPendingRequests",
            "maxRetries",
            "maxRequests"
        ]
    );
}

#[test]
fn outbound_lookup_goes_section_then_service_then_mesh() {
    let i = inspector(
        "type: MeshTimeout\nname: mesh-wide\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: Mesh}\n      default: {idleTimeout: 1h}\n---\ntype: MeshTimeout\nname: main-only\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, labels: {kuma.io/display-name: backend}, sectionName: main-port}\n      default: {connectionTimeout: 3s}\n---\ntype: MeshRetry\nname: whole-service\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default:\n        http: {numRetries: 4}\n",
    );
    let timeout = |kri: &str| outbound(&i, kri)["policies"][0].clone();
    // The section's rule merges the mesh entry and the section entry.
    assert_eq!(
        timeout(MAIN),
        json!({"conf": [{"connectionTimeout": "3s", "idleTimeout": "1h0m0s"}], "kind": "MeshTimeout",
               "origins": [{"kri": "kri_mt_default___mesh-wide_"}, {"kri": "kri_mt_default___main-only_"}]})
    );
    // The other port, the service as a whole, another service, another mesh: the mesh's.
    for kri in [
        "kri_msvc_default_zone-a__backend_secondary-port",
        "kri_msvc_default_zone-a__backend_",
        "kri_msvc_default_zone-a__nope_main-port",
        "kri_msvc_other_zone-a__backend_main-port",
        "kri_mtp_default___x_",
    ] {
        assert_eq!(
            timeout(kri),
            json!({"conf": [{"idleTimeout": "1h0m0s"}], "kind": "MeshTimeout",
                   "origins": [{"kri": "kri_mt_default___mesh-wide_"}]}),
            "{kri}"
        );
    }
    // A name resolves in the policy's zone: `whole-service` has none, the service is in
    // zone-a, so it names nothing and MeshRetry has no rule at all.
    assert_eq!(outbound(&i, MAIN)["policies"].as_array().unwrap().len(), 1);
}

#[test]
fn a_route_policy_merges_its_default_rule() {
    let i = inspector(
        "type: MeshTCPRoute\nname: to-backend\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, labels: {kuma.io/display-name: backend}}\n",
    );
    assert_eq!(
        outbound(&i, MAIN),
        json!({"policies": [{
            "conf": [{"default": {"backendRefs": [{"kind": "MeshService", "labels": {"kuma.io/display-name": "backend"}, "weight": 1}]}}],
            "kind": "MeshTCPRoute",
            "origins": [{"kri": "kri_mtcpr_default___to-backend_"}],
        }]})
    );
}

#[test]
fn matched_policies_list_every_kind_lowest_priority_first() {
    let mut all = resources(
        "type: MeshTimeout\nname: b-timeout\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: Mesh}\n      default: {idleTimeout: 1h}\n---\ntype: MeshTimeout\nname: a-timeout\nmesh: default\nlabels: {team: x}\nspec:\n  targetRef: {kind: Dataplane, labels: {kuma.io/zone: zone-a}}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {idleTimeout: 2h}\n---\ntype: MeshRetry\nname: retry\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: foo}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {tcp: {maxConnectAttempt: 2}}\n---\ntype: MeshRetry\nname: elsewhere\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: bar}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {tcp: {maxConnectAttempt: 2}}\n---\ntype: MeshHTTPRoute\nname: route\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      rules:\n        - default: {backendRefs: [{kind: MeshService, name: backend}]}\n",
    );
    // The store's times.
    all[0].meta.creation_time = Some("2025-01-02T03:04:05Z".into());
    all[0].meta.modification_time = Some("2025-01-02T03:04:06Z".into());
    all.push(resource(SERVICE));
    let i = MeshInspector::new("default", &all, &catalog(&all));
    let dp = resource(DP);
    let answer = i.matched_policies(&view(&dp));
    let names = |t: &str| -> Vec<String> {
        answer["items"][0]["matchedPolicies"][t]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(answer["kind"], "SidecarDataplane");
    assert_eq!(answer["total"], 1);
    assert_eq!(answer["items"][0]["type"], "dataplane");
    assert!(answer["items"][0].get("name").is_none());
    let types: Vec<&String> = answer["items"][0]["matchedPolicies"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(types, ["MeshHTTPRoute", "MeshRetry", "MeshTimeout"]);
    // Mesh below Dataplane: b-timeout merges first. (A Dataplane ref by name would name
    // dp-1 in the policy's zone, none, and miss this proxy of zone-a.)
    assert_eq!(names("MeshTimeout"), ["b-timeout", "a-timeout"]);
    assert_eq!(names("MeshRetry"), ["retry"]);
    assert_eq!(
        answer["items"][0]["matchedPolicies"]["MeshTimeout"][0],
        json!({"type": "MeshTimeout", "mesh": "default", "name": "b-timeout",
               "creationTime": "2025-01-02T03:04:05Z", "modificationTime": "2025-01-02T03:04:06Z",
               "kri": "kri_mt_default___b-timeout_"})
    );
    assert_eq!(
        answer["items"][0]["matchedPolicies"]["MeshTimeout"][1],
        json!({"type": "MeshTimeout", "mesh": "default", "name": "a-timeout",
               "creationTime": "0001-01-01T00:00:00Z", "modificationTime": "0001-01-01T00:00:00Z",
               "labels": {"team": "x"}, "kri": "kri_mt_default___a-timeout_"})
    );
    // The route selects the proxy but gives its outbounds nothing here.
    assert_eq!(outbound(&i, MAIN)["policies"][0]["kind"], "MeshTimeout");
}

const SERVICES: &str = "type: MeshService\nname: test-server-1\nmesh: default\nlabels: {kuma.io/display-name: test-server-1, kuma.io/zone: zone-a}\nspec:\n  ports:\n    - {port: 80, appProtocol: http, name: main-port}\n    - {port: 8080, appProtocol: tcp, name: secondary-port}\n---\ntype: MeshService\nname: test-server-2-hash\nmesh: default\nlabels: {kuma.io/display-name: test-server-2, kuma.io/zone: zone-a, team: b}\nspec:\n  ports:\n    - {port: 80, appProtocol: http, name: main-port}\n    - {port: 9090}\n---\ntype: MeshService\nname: elsewhere\nmesh: default\nlabels: {kuma.io/display-name: elsewhere, kuma.io/zone: zone-b}\nspec:\n  ports:\n    - {port: 80}\n";

fn layout_of(dp_yaml: &str) -> Value {
    let dp = resource(dp_yaml);
    let Spec::Dataplane(spec) = &dp.spec else {
        panic!()
    };
    layout(
        dp.mesh(),
        dp.name(),
        &dp.meta.labels,
        spec,
        &resources(SERVICES),
    )
}

fn outbound_kris(layout: &Value) -> Vec<String> {
    layout["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kri"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn layout_lists_inbounds_listeners_and_every_destination() {
    let l = layout_of(DP);
    assert_eq!(
        l,
        json!({
            "inbounds": [
                {"kri": "kri_dp_default_zone-a__dp-1_main-port", "port": 8080, "protocol": "http", "proxyResourceName": "self_inbound_dp_main-port"},
                {"kri": "kri_dp_default_zone-a__dp-1_8081", "port": 8081, "protocol": "tcp", "proxyResourceName": "self_inbound_dp_8081"},
            ],
            "kri": "kri_dp_default_zone-a__dp-1_",
            "labels": {"kuma.io/zone": "zone-a"},
            "listeners": [
                {"kri": "kri_dp_default_zone-a__dp-1_ze-port", "port": 10002, "proxyResourceName": "self_zoneegress_dp_ze-port", "type": "ZoneEgress"},
            ],
            "outbounds": [
                {"kri": "kri_msvc_default_zone-a__test-server-1_main-port", "port": 80, "protocol": "http", "proxyResourceName": "kri_msvc_default_zone-a__test-server-1_main-port"},
                {"kri": "kri_msvc_default_zone-a__test-server-1_secondary-port", "port": 8080, "protocol": "tcp", "proxyResourceName": "kri_msvc_default_zone-a__test-server-1_secondary-port"},
                {"kri": "kri_msvc_default_zone-a__test-server-2_9090", "port": 9090, "protocol": "", "proxyResourceName": "kri_msvc_default_zone-a__test-server-2_9090"},
                {"kri": "kri_msvc_default_zone-a__test-server-2_main-port", "port": 80, "protocol": "http", "proxyResourceName": "kri_msvc_default_zone-a__test-server-2_main-port"},
                {"kri": "kri_msvc_default_zone-b__elsewhere_80", "port": 80, "protocol": "", "proxyResourceName": "kri_msvc_default_zone-b__elsewhere_80"},
            ],
        })
    );
}

#[test]
fn layout_outbounds_follow_backend_refs_then_reachable_backends() {
    let base = "type: Dataplane\nname: dp-1\nmesh: default\nlabels: {kuma.io/zone: zone-a}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: foo}}\n";
    // A backendRef by name (in the proxy's zone) and port; one by labels without a port
    // (every port); one naming nothing.
    let declared = format!(
        "{base}  outbound:\n    - port: 10001\n      backendRef: {{kind: MeshService, name: test-server-1, port: 80}}\n    - port: 10002\n      backendRef: {{kind: MeshService, labels: {{team: b}}}}\n    - port: 10003\n      backendRef: {{kind: MeshService, name: elsewhere, port: 80}}\n    - port: 10004\n      tags: {{kuma.io/service: legacy}}\n"
    );
    assert_eq!(
        outbound_kris(&layout_of(&declared)),
        [
            "kri_msvc_default_zone-a__test-server-1_main-port",
            "kri_msvc_default_zone-a__test-server-2_9090",
            "kri_msvc_default_zone-a__test-server-2_main-port",
        ]
    );
    // Declared outbounds that name nothing fall through to the reachable backends. A ref
    // without a port takes the first unnamed port when there is one (Kuma looks the empty
    // section name up among the port names), else every port.
    let refs = format!(
        "{base}  outbound:\n    - port: 10003\n      backendRef: {{kind: MeshService, name: nope, port: 80}}\n  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n    reachableBackends:\n      refs:\n        - {{kind: MeshService, name: test-server-1, port: 8080}}\n        - {{kind: MeshService, name: test-server-2}}\n        - {{kind: MeshService, name: test-server-1}}\n        - {{kind: MeshService, name: missing}}\n"
    );
    assert_eq!(
        outbound_kris(&layout_of(&refs)),
        [
            "kri_msvc_default_zone-a__test-server-1_main-port",
            "kri_msvc_default_zone-a__test-server-1_secondary-port",
            "kri_msvc_default_zone-a__test-server-2_9090",
        ]
    );
    let none = format!("{base}  transparentProxying:\n    reachableBackends:\n      refs: []\n");
    assert!(outbound_kris(&layout_of(&none)).is_empty());
    // Only kuma.io/service outbounds: every destination of the mesh.
    let legacy =
        format!("{base}  outbound:\n    - port: 10004\n      tags: {{kuma.io/service: legacy}}\n");
    assert_eq!(outbound_kris(&layout_of(&legacy)).len(), 5);
}

#[test]
fn layout_of_a_zone_proxy() {
    let l = layout_of(
        "type: Dataplane\nname: zp\nmesh: default\nnetworking:\n  address: 127.0.0.1\n  listeners:\n    - {type: ZoneIngress, port: 10001, name: zi-main}\n    - {type: ZoneEgress, port: 10002}\n",
    );
    assert_eq!(l["kri"], "kri_dp_default___zp_");
    assert_eq!(l["labels"], json!({}));
    assert_eq!(l["inbounds"], json!([]));
    assert_eq!(
        l["listeners"],
        json!([
            {"kri": "kri_dp_default___zp_zi-main", "port": 10001, "proxyResourceName": "self_zoneingress_dp_zi-main", "type": "ZoneIngress"},
            {"kri": "kri_dp_default___zp_10002", "port": 10002, "proxyResourceName": "self_zoneegress_dp_10002", "type": "ZoneEgress"},
        ])
    );
}

#[test]
fn kuma_conf_writes_go_durations_in_field_order() {
    let conf = json!({"http": {"requestTimeout": "90s"}, "idleTimeout": "0", "connectionTimeout": "1500ms"});
    let out = kuma_conf(ResourceType::MeshTimeout, &conf);
    assert_eq!(
        out,
        json!({"connectionTimeout": "1.5s", "idleTimeout": "0s", "http": {"requestTimeout": "1m30s"}})
    );
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["connectionTimeout", "idleTimeout", "http"]);
    // What does not decode is kept as is.
    let odd = json!({"unknown": 1});
    assert_eq!(kuma_conf(ResourceType::MeshTimeout, &odd), odd);
    assert_eq!(kuma_conf(ResourceType::MeshTrafficPermission, &odd), odd);
}
