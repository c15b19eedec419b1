//! Unit tests: each ordering rule, merge patch, selection by every targetRef kind, inbound
//! and outbound rules, and scenarios re-expressed from Kuma 2.14's testdata
//! (`pkg/plugins/policies/core/{matchers,rules}/.../testdata`).

use serde_json::{Value, json};

use super::order::{compare_matches, kind_rank};
use super::*;
use crate::spec::{DataplaneSpec, Tags, TargetRef};

const MESH: &str = "mesh-1";

/// A policy written as JSON: `{name, labels?, targetRef?, to?, from?, rules?}`.
#[derive(Debug, Clone)]
pub(super) struct P {
    pub name: String,
    pub labels: Tags,
    pub target_ref: Option<TargetRef>,
    pub to: Vec<(TargetRef, Value)>,
    pub from: Vec<(TargetRef, Value)>,
    pub rules: Vec<(Vec<Value>, Value)>,
}

impl P {
    pub fn new(v: Value) -> P {
        let entries = |key: &str| -> Vec<(TargetRef, Value)> {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        serde_json::from_value(e["targetRef"].clone()).unwrap(),
                        e.get("default").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect()
        };
        P {
            name: v["name"].as_str().unwrap().to_owned(),
            labels: serde_json::from_value(v.get("labels").cloned().unwrap_or(json!({}))).unwrap(),
            target_ref: v
                .get("targetRef")
                .map(|t| serde_json::from_value(t.clone()).unwrap()),
            to: entries("to"),
            from: entries("from"),
            rules: v
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| {
                    let matches = r
                        .get("matches")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    (matches, r.get("default").cloned().unwrap_or(Value::Null))
                })
                .collect(),
        }
    }

    pub fn item(&self) -> PolicyItem<'_> {
        PolicyItem {
            name: &self.name,
            labels: &self.labels,
            target_ref: self.target_ref.as_ref(),
            to: self
                .to
                .iter()
                .map(|(t, d)| Entry::new(Some(t), Some(d)))
                .collect(),
            from: self
                .from
                .iter()
                .map(|(t, d)| Entry::new(Some(t), Some(d)))
                .collect(),
            rules: self
                .rules
                .iter()
                .map(|(m, d)| RuleItem::new(Some(m), Some(d)))
                .collect(),
        }
    }
}

pub(super) fn policies(vs: Vec<Value>) -> Vec<P> {
    vs.into_iter().map(P::new).collect()
}

pub(super) fn index_with(ps: &[P], catalog: Catalog, options: Options) -> RulesIndex {
    let items: Vec<PolicyItem<'_>> = ps.iter().map(P::item).collect();
    RulesIndex::new(MESH, &items, catalog, options)
}

fn index(ps: &[P]) -> RulesIndex {
    index_with(ps, Catalog::default(), Options::default())
}

/// A Dataplane: `{name?, labels?, networking}`.
#[derive(Debug, Clone)]
pub(super) struct D {
    pub name: String,
    pub labels: Tags,
    pub spec: DataplaneSpec,
}

impl D {
    pub fn new(v: Value) -> D {
        D {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("dp-1")
                .to_owned(),
            labels: serde_json::from_value(v.get("labels").cloned().unwrap_or(json!({}))).unwrap(),
            spec: serde_json::from_value(json!({"networking": v["networking"].clone()})).unwrap(),
        }
    }

    pub fn view(&self) -> DataplaneView<'_> {
        DataplaneView {
            mesh: MESH,
            name: &self.name,
            labels: &self.labels,
            spec: &self.spec,
        }
    }
}

/// Two inbounds of `web` (8080 version v1, 8081 version v3), as in Kuma's matcher testdata.
fn web_dp() -> D {
    D::new(json!({"networking": {"address": "1.1.1.1", "inbound": [
        {"port": 8080, "tags": {"kuma.io/service": "web", "version": "v1"}},
        {"port": 8081, "tags": {"kuma.io/service": "web", "version": "v3"}}
    ]}}))
}

fn per_inbound(ix: &RulesIndex, d: &D) -> Vec<Vec<String>> {
    ix.resolve(&d.view())
        .inbounds
        .into_iter()
        .map(|i| i.policies)
        .collect()
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn mesh_timeout(name: &str, labels: Value, target_ref: Value, conf: Value) -> Value {
    json!({"name": name, "labels": labels, "targetRef": target_ref,
           "to": [{"targetRef": {"kind": "Mesh"}, "default": conf}]})
}

fn outbound_dp() -> D {
    D::new(json!({"networking": {"address": "1.1.1.1",
        "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web", "version": "v1"}}],
        "outbound": [{"port": 10001, "tags": {"kuma.io/service": "backend"}}]}}))
}

// ---- Ordering -------------------------------------------------------------------------

#[test]
fn kind_ranks_follow_kuma() {
    let kinds = [
        "Mesh",
        "Dataplane",
        "MeshSubset",
        "MeshGateway",
        "MeshService",
        "MeshExternalService",
        "MeshMultiZoneService",
        "MeshServiceSubset",
        "MeshHTTPRoute",
    ];
    let ranks: Vec<u8> = kinds.iter().map(|k| kind_rank(k)).collect();
    assert_eq!(ranks, (1..=9).collect::<Vec<u8>>());
    assert_eq!(kind_rank("Unknown"), 0);
    assert_eq!(kind_rank(""), 0);
}

#[test]
fn top_level_kind_orders_matched_policies() {
    // Every kind that can select inbound 8080, named so that the name order is the reverse
    // of the kind order: the kind must win.
    let ps = policies(vec![
        json!({"name": "a-route", "targetRef": {"kind": "MeshHTTPRoute", "name": "route-1"}}),
        json!({"name": "b-mss", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}}),
        json!({"name": "c-ms", "targetRef": {"kind": "MeshService", "name": "web"}}),
        json!({"name": "d-subset", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}}),
        json!({"name": "e-dp", "targetRef": {"kind": "Dataplane"}}),
        json!({"name": "f-mesh", "targetRef": {"kind": "Mesh"}}),
        json!({"name": "g-missing"}),
    ]);
    let catalog = Catalog::new(vec![CatalogResource {
        kind: ResourceKind::MeshHTTPRoute,
        name: "route-1".into(),
        labels: Tags::new(),
        ports: vec![],
        target_ref: None,
    }]);
    let ix = index_with(&ps, catalog, Options::default());
    assert_eq!(
        per_inbound(&ix, &web_dp())[0],
        [
            "g-missing",
            "f-mesh",
            "e-dp",
            "d-subset",
            "c-ms",
            "b-mss",
            "a-route"
        ]
    );
}

#[test]
fn dataplane_refs_order_labels_then_name_then_section() {
    let d = D::new(
        json!({"name": "dp-1", "labels": {"app": "web"}, "networking": {
        "address": "1.1.1.1",
        "inbound": [{"port": 8080, "name": "http", "tags": {"kuma.io/service": "web"}}]}}),
    );
    let ps = policies(vec![
        json!({"name": "a-name-section", "targetRef": {"kind": "Dataplane", "name": "dp-1", "sectionName": "http"}}),
        json!({"name": "b-name", "targetRef": {"kind": "Dataplane", "name": "dp-1"}}),
        json!({"name": "c-name-labels", "targetRef": {"kind": "Dataplane", "name": "dp-1", "labels": {"app": "web"}}}),
        json!({"name": "d-labels-section", "targetRef": {"kind": "Dataplane", "labels": {"app": "web"}, "sectionName": "http"}}),
        json!({"name": "e-labels", "targetRef": {"kind": "Dataplane", "labels": {"app": "web"}}}),
        json!({"name": "f-all", "targetRef": {"kind": "Dataplane"}}),
    ]);
    assert_eq!(
        per_inbound(&index(&ps), &d)[0],
        [
            "f-all",
            "e-labels",
            "d-labels-section",
            "c-name-labels",
            "b-name",
            "a-name-section"
        ]
    );
}

#[test]
fn origin_orders_global_then_unknown_then_zone() {
    // Kuma's inbound testdata mt-order-by-origin, with a Dataplane selecting them all.
    let ps = policies(vec![
        json!({"name": "aaa", "labels": {"kuma.io/origin": "global"}, "rules": [{"default": {"connectionTimeout": "11s", "http": {"requestTimeout": "12s"}}}]}),
        json!({"name": "ccc", "labels": {"kuma.io/origin": "zone"}, "rules": [{"default": {"connectionTimeout": "111s", "idleTimeout": "109s"}}]}),
        json!({"name": "bbb", "rules": [{"default": {"connectionTimeout": "211s", "http": {"requestTimeout": "209s"}}}]}),
    ]);
    let inbound = index(&ps).resolve(&web_dp().view()).inbounds.remove(0);
    assert_eq!(inbound.policies, ["aaa", "bbb", "ccc"]);
    assert_eq!(
        inbound.conf.conf,
        Some(
            json!({"connectionTimeout": "111s", "idleTimeout": "109s", "http": {"requestTimeout": "209s"}})
        )
    );
    assert_eq!(inbound.conf.policies(), ["aaa", "bbb", "ccc"]);
}

#[test]
fn role_orders_system_producer_consumer_workload_owner() {
    // Consumer and workload-owner policies only reach proxies of their namespace.
    let ns = json!({"k8s.kuma.io/namespace": "kuma-demo"});
    let with_ns = |role: &str| {
        let mut l = ns.clone();
        l["kuma.io/policy-role"] = json!(role);
        l
    };
    let ps = policies(vec![
        json!({"name": "a-owner", "labels": with_ns("workload-owner")}),
        json!({"name": "b-consumer", "labels": with_ns("consumer")}),
        json!({"name": "c-producer", "labels": with_ns("producer")}),
        json!({"name": "d-system", "labels": with_ns("system")}),
        json!({"name": "e-no-role"}),
    ]);
    let d = D::new(json!({"labels": ns, "networking": {"address": "1.1.1.1",
        "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]}}));
    assert_eq!(
        per_inbound(&index(&ps), &d)[0],
        [
            "e-no-role",
            "d-system",
            "c-producer",
            "b-consumer",
            "a-owner"
        ]
    );
}

#[test]
fn equal_policies_order_by_inverted_display_name() {
    // Kuma's dataplanepolicies/02: same levels, names sorted descending (first name wins).
    let ps = policies(vec![
        json!({"name": "aaa", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}}),
        json!({"name": "bbb", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}}),
        json!({"name": "1-my-policy", "targetRef": {"kind": "Mesh"}}),
        json!({"name": "2-my-policy", "targetRef": {"kind": "Mesh"}}),
        json!({"name": "my-policy-2", "targetRef": {"kind": "MeshService", "name": "web"}}),
        json!({"name": "my-policy-1", "targetRef": {"kind": "MeshService", "name": "web"}}),
        json!({"name": "222", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}}),
        json!({"name": "111", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}}),
    ]);
    let rules = index(&ps).resolve(&web_dp().view());
    assert_eq!(
        rules.policies,
        [
            "2-my-policy",
            "1-my-policy",
            "222",
            "111",
            "my-policy-2",
            "my-policy-1",
            "bbb",
            "aaa"
        ]
    );
}

#[test]
fn display_name_label_orders_before_the_resource_name() {
    // dataplanepolicies/08: synced names carry a suffix, the display name decides.
    let ps = policies(vec![
        json!({"name": "default-demo-app.kuma-system", "labels": {"kuma.io/display-name": "default-demo-app"}}),
        json!({"name": "default-demo-app-b.kuma-system", "labels": {"kuma.io/display-name": "default-demo-app-b"}}),
    ]);
    assert_eq!(
        index(&ps).resolve(&web_dp().view()).policies,
        [
            "default-demo-app-b.kuma-system",
            "default-demo-app.kuma-system"
        ]
    );
}

#[test]
fn inbound_rules_sort_by_match_specificity_then_policy_order() {
    let exact = json!({"spiffeID": {"type": "Exact", "value": "spiffe://a"}});
    let prefix = json!({"spiffeID": {"type": "Prefix", "value": "spiffe://"}});
    let sni = json!({"sni": {"type": "Exact", "value": "x"}});
    assert_eq!(
        compare_matches(Some(&exact), Some(&prefix)),
        std::cmp::Ordering::Less
    );
    assert_eq!(
        compare_matches(Some(&prefix), Some(&sni)),
        std::cmp::Ordering::Less
    );
    assert_eq!(compare_matches(Some(&sni), None), std::cmp::Ordering::Less);
    assert_eq!(
        compare_matches(None, Some(&json!({}))),
        std::cmp::Ordering::Equal
    );

    let ps = policies(vec![
        json!({"name": "b", "rules": [
            {"default": {"idleTimeout": "1s"}},
            {"matches": [sni, prefix], "default": {"idleTimeout": "2s"}}]}),
        json!({"name": "a", "rules": [
            {"matches": [exact], "default": {"idleTimeout": "3s"}},
            {"default": {"connectionTimeout": "4s"}}]}),
    ]);
    let inbound = index(&ps).resolve(&web_dp().view()).inbounds.remove(0);
    let order: Vec<(String, usize, bool)> = inbound
        .rules
        .iter()
        .map(|r| {
            (
                r.origin.policy.to_string(),
                r.origin.index,
                r.matches.is_some(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("a".into(), 0, true),
            ("b".into(), 1, true),
            ("b".into(), 1, true),
            ("b".into(), 0, false),
            ("a".into(), 1, false)
        ]
    );
    assert_eq!(
        inbound.rules[1].matches.as_ref().unwrap()["spiffeID"]["type"],
        "Prefix"
    );
    // Only catch-alls are merged into the common conf.
    assert_eq!(
        inbound.conf.conf,
        Some(json!({"idleTimeout": "1s", "connectionTimeout": "4s"}))
    );
}

// ---- Merge ----------------------------------------------------------------------------

#[test]
fn merge_patch_rfc7386_appendix_a() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (target, patch, want) in cases {
        let mut got = target.clone();
        merge_patch(&mut got, &patch);
        assert_eq!(got, want, "{target} + {patch}");
    }
}

#[test]
fn merge_patch_rfc7386_section_3_example() {
    let mut doc = json!({
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged"
    });
    merge_patch(
        &mut doc,
        &json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        }),
    );
    assert_eq!(
        doc,
        json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        })
    );
}

#[test]
fn merge_confs_nulls_are_unset_not_deletes() {
    let low = strip_nulls(&json!({"idleTimeout": "1h", "http": {"requestTimeout": "1s"}}));
    let high = strip_nulls(
        &json!({"idleTimeout": null, "http": {"requestTimeout": null, "maxStreamDuration": "2s"}}),
    );
    assert_eq!(
        merge_confs([&low, &high]),
        Some(
            json!({"idleTimeout": "1h", "http": {"requestTimeout": "1s", "maxStreamDuration": "2s"}})
        )
    );
}

#[test]
fn merge_confs_objects_recurse_arrays_replace() {
    let a = json!({"http": {"numRetries": 1, "retryOn": ["5xx"]}, "tcp": {"maxConnectAttempt": 2}});
    let b = json!({"http": {"retryOn": ["reset"]}});
    assert_eq!(
        merge_confs([&a, &b]),
        Some(
            json!({"http": {"numRetries": 1, "retryOn": ["reset"]}, "tcp": {"maxConnectAttempt": 2}})
        )
    );
    assert_eq!(merge_confs(std::iter::empty::<&Value>()), None);
    assert_eq!(merge_confs([&a]), Some(a.clone()));
}

#[test]
fn merge_confs_append_lists_concatenate() {
    let a = json!({"appendProfiles": [{"name": "All"}], "sidecar": {"appendMatch": [1]}, "profiles": ["x"]});
    let b = json!({"appendProfiles": [{"name": "Basic"}], "sidecar": {"appendMatch": [2]}, "profiles": ["y"]});
    let c = json!({"sidecar": {}});
    assert_eq!(
        merge_confs([&a, &b, &c]),
        Some(json!({
            "appendProfiles": [{"name": "All"}, {"name": "Basic"}],
            "sidecar": {"appendMatch": [1, 2]},
            "profiles": ["y"]
        }))
    );
    // `append` alone, or followed by lower case, is an ordinary key.
    let d = json!({"append": [1], "appendix": [1]});
    let e = json!({"append": [2], "appendix": [2]});
    assert_eq!(
        merge_confs([&d, &e]),
        Some(json!({"append": [2], "appendix": [2]}))
    );
}

#[test]
fn merged_decodes_into_a_typed_conf() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Conf {
        idle_timeout: Option<String>,
        connection_timeout: Option<String>,
    }
    let m = Merged {
        origins: vec![],
        conf: Some(json!({"idleTimeout": "1s"})),
    };
    assert_eq!(
        m.merged::<Conf>().unwrap(),
        Some(Conf {
            idle_timeout: Some("1s".into()),
            connection_timeout: None
        })
    );
    assert_eq!(Merged::default().merged::<Conf>().unwrap(), None);
    let bad = Merged {
        origins: vec![],
        conf: Some(json!({"idleTimeout": 5})),
    };
    assert!(bad.merged::<Conf>().is_err());
}

// ---- Selection ------------------------------------------------------------------------

#[test]
fn selection_by_each_top_level_kind() {
    let d = D::new(
        json!({"name": "dp-1", "labels": {"app": "web"}, "networking": {
        "address": "1.1.1.1",
        "inbound": [
            {"port": 8080, "name": "http", "tags": {"kuma.io/service": "web", "version": "v1"}},
            {"port": 8081, "tags": {"kuma.io/service": "web", "version": "v3"}},
            {"port": 9090, "tags": {"kuma.io/service": "admin", "version": "v1"}}
        ]}}),
    );
    let cases = [
        (json!({"kind": "Mesh"}), vec![true, true, true]),
        (
            json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}),
            vec![false, false, false],
        ),
        (json!({"kind": "MeshSubset"}), vec![true, true, true]),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            vec![true, false, true],
        ),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "*"}}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "MeshSubset", "tags": {"team": "*"}}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}, "proxyTypes": ["Gateway"]}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "MeshService", "name": "web"}),
            vec![true, true, false],
        ),
        // Kuma ignores sectionName, labels and proxyTypes on a top-level MeshService.
        (
            json!({"kind": "MeshService", "name": "web", "sectionName": "http", "proxyTypes": ["Gateway"]}),
            vec![true, true, false],
        ),
        (
            json!({"kind": "MeshService", "labels": {"app": "web"}}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v3"}}),
            vec![false, true, false],
        ),
        (json!({"kind": "Dataplane"}), vec![true, true, true]),
        (
            json!({"kind": "Dataplane", "name": "dp-1"}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "Dataplane", "name": "dp-2"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "Dataplane", "name": "dp-1", "namespace": "other"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "Dataplane", "namespace": "other"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "Dataplane", "labels": {"app": "web"}}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "Dataplane", "labels": {}}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "Dataplane", "labels": {"app": "api"}}),
            vec![false, false, false],
        ),
        // Name or labels: either is enough.
        (
            json!({"kind": "Dataplane", "name": "dp-2", "labels": {"app": "web"}}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "Dataplane", "name": "dp-1", "sectionName": "http"}),
            vec![true, false, false],
        ),
        // An unnamed inbound's section name is its port; a named one's is only its name.
        (
            json!({"kind": "Dataplane", "sectionName": "8081"}),
            vec![false, true, false],
        ),
        (
            json!({"kind": "Dataplane", "sectionName": "8080"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "Dataplane", "proxyTypes": ["Gateway"]}),
            vec![true, true, true],
        ),
        (
            json!({"kind": "MeshGateway", "name": "gw"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "MeshHTTPRoute", "name": "missing"}),
            vec![false, false, false],
        ),
        (
            json!({"kind": "MeshExternalService", "name": "web"}),
            vec![false, false, false],
        ),
        (json!({"kind": "Bogus"}), vec![false, false, false]),
        (json!({}), vec![false, false, false]),
    ];
    for (target_ref, want) in cases {
        let ps = policies(vec![json!({"name": "p", "targetRef": target_ref})]);
        let got: Vec<bool> = per_inbound(&index(&ps), &d)
            .iter()
            .map(|p| !p.is_empty())
            .collect();
        assert_eq!(got, want, "{target_ref}");
    }
}

#[test]
fn meshhttproute_top_level_selects_what_the_route_selects() {
    let catalog = Catalog::new(vec![
        CatalogResource {
            kind: ResourceKind::MeshHTTPRoute,
            name: "to-web".into(),
            labels: Tags::new(),
            ports: vec![],
            target_ref: Some(
                serde_json::from_value(json!({"kind": "MeshSubset", "tags": {"version": "v3"}}))
                    .unwrap(),
            ),
        },
        CatalogResource {
            kind: ResourceKind::MeshHTTPRoute,
            name: "everywhere".into(),
            labels: Tags::new(),
            ports: vec![],
            target_ref: None,
        },
    ]);
    let ps = policies(vec![
        json!({"name": "p1", "targetRef": {"kind": "MeshHTTPRoute", "name": "to-web"}}),
        json!({"name": "p2", "targetRef": {"kind": "MeshHTTPRoute", "name": "everywhere"}}),
    ]);
    let ix = index_with(&ps, catalog, Options::default());
    assert_eq!(per_inbound(&ix, &web_dp()), [vec!["p2"], vec!["p2", "p1"]]);
}

#[test]
fn policies_from_a_zone_only_reach_their_zone() {
    let zone_policy = |name: &str, role: &str| json!({"name": name, "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-1", "kuma.io/policy-role": role}});
    let ps = policies(vec![
        zone_policy("system", "system"),
        zone_policy("producer", "producer"),
        json!({"name": "global", "labels": {"kuma.io/origin": "global"}}),
    ]);
    let ix = index(&ps);
    let dp_in = |labels: Value| {
        D::new(
            json!({"labels": labels, "networking": {"address": "1.1.1.1",
            "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]}}),
        )
    };
    let local = dp_in(json!({"kuma.io/origin": "zone", "kuma.io/zone": "zone-1"}));
    let remote = dp_in(json!({"kuma.io/origin": "zone", "kuma.io/zone": "zone-2"}));
    let unlabelled = dp_in(json!({}));
    let from_global = dp_in(json!({"kuma.io/origin": "global"}));
    assert_eq!(
        per_inbound(&ix, &local)[0],
        ["global", "system", "producer"]
    );
    assert_eq!(per_inbound(&ix, &remote)[0], ["global", "producer"]);
    assert_eq!(
        per_inbound(&ix, &unlabelled)[0],
        ["global", "system", "producer"]
    );
    assert_eq!(
        per_inbound(&ix, &from_global)[0],
        ["global", "system", "producer"]
    );
}

#[test]
fn consumer_policies_only_reach_their_namespace() {
    let ps = policies(vec![
        json!({"name": "consumer", "labels": {"kuma.io/policy-role": "consumer", "k8s.kuma.io/namespace": "a"}}),
        json!({"name": "no-namespace", "labels": {"kuma.io/policy-role": "workload-owner"}}),
    ]);
    let ix = index(&ps);
    let dp_in = |ns: &str| {
        D::new(
            json!({"labels": {"k8s.kuma.io/namespace": ns}, "networking": {"address": "1.1.1.1",
            "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]}}),
        )
    };
    assert_eq!(per_inbound(&ix, &dp_in("a"))[0], ["consumer"]);
    assert!(per_inbound(&ix, &dp_in("b"))[0].is_empty());
}

#[test]
fn dataplane_name_matches_the_identity_in_the_policy_zone() {
    // dataplane-kind/select-by-name: a zone policy names a Dataplane of its zone; the same
    // policy synced from global (no zone label) does not name the zone's Dataplane.
    let d = D::new(
        json!({"name": "dp-1", "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-uni"},
        "networking": {"address": "1.1.1.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]}}),
    );
    let ps = policies(vec![
        json!({"name": "zone-pol", "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-uni"},
               "targetRef": {"kind": "Dataplane", "name": "dp-1"}}),
        json!({"name": "global-pol", "labels": {"kuma.io/origin": "global"},
               "targetRef": {"kind": "Dataplane", "name": "dp-1"}}),
        json!({"name": "other", "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-uni"},
               "targetRef": {"kind": "Dataplane", "name": "dp-2"}}),
    ]);
    assert_eq!(per_inbound(&index(&ps), &d)[0], ["zone-pol"]);
}

#[test]
fn shadow_policies_are_skipped_unless_asked_for() {
    let ps = policies(vec![
        json!({"name": "shadow", "labels": {"kuma.io/effect": "shadow"}}),
        json!({"name": "real"}),
    ]);
    assert_eq!(per_inbound(&index(&ps), &web_dp())[0], ["real"]);
    let all = index_with(
        &ps,
        Catalog::default(),
        Options {
            include_shadow: true,
            ..Options::default()
        },
    );
    assert_eq!(per_inbound(&all, &web_dp())[0], ["shadow", "real"]);
}

#[test]
fn another_mesh_gets_nothing() {
    let ps = policies(vec![json!({"name": "p"})]);
    let d = web_dp();
    let mut view = d.view();
    view.mesh = "other";
    let rules = index(&ps).resolve(&view);
    assert!(rules.policies.is_empty());
    assert!(rules.inbounds.iter().all(|i| i.policies.is_empty()));
}

#[test]
fn kuma_dataplanepolicies_01_no_collisions() {
    let ps = policies(vec![
        json!({"name": "mtp-1", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}}),
        json!({"name": "mtp-2"}),
        json!({"name": "mtp-3", "targetRef": {"kind": "MeshService", "name": "web"}}),
        json!({"name": "mtp-4", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}}),
        json!({"name": "mtp-5", "targetRef": {"kind": "MeshService", "name": "backend"}}),
        json!({"name": "mtp-6", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v2"}}}),
        json!({"name": "mtp-7", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"env": "dev"}}}),
    ]);
    assert_eq!(
        index(&ps).resolve(&web_dp().view()).policies,
        ["mtp-2", "mtp-4", "mtp-3", "mtp-1"]
    );
}

#[test]
fn kuma_dataplanepolicies_03_no_union_of_inbound_tags() {
    let d = D::new(json!({"networking": {"address": "1.1.1.1", "inbound": [
        {"port": 8080, "tags": {"kuma.io/service": "web", "version": "v1"}},
        {"port": 8081, "tags": {"kuma.io/service": "web", "env": "dev"}},
        {"port": 8082, "tags": {"kuma.io/service": "web", "team": "mesh"}}]}}));
    let ps = policies(vec![
        json!({"name": "mtp-1", "targetRef": {"kind": "MeshServiceSubset",
        "name": "web", "tags": {"version": "v1", "env": "dev", "team": "mesh"}}}),
    ]);
    assert!(index(&ps).resolve(&d.view()).policies.is_empty());
}

#[test]
fn kuma_dataplanepolicies_07_ignored_inbounds_are_selected() {
    let d = D::new(json!({"networking": {"address": "1.1.1.1", "inbound": [
        {"port": 8080, "state": "Ignored", "tags": {"kuma.io/service": "web", "version": "v1"}}]}}));
    let ps = policies(vec![
        json!({"name": "mtp-1", "targetRef": {"kind": "MeshServiceSubset",
        "name": "web", "tags": {"version": "v1"}}}),
    ]);
    assert_eq!(index(&ps).resolve(&d.view()).policies, ["mtp-1"]);
}

#[test]
fn delegated_gateway_is_selected_and_gets_to_rules() {
    let d = D::new(json!({"networking": {"address": "1.1.1.1",
        "gateway": {"tags": {"kuma.io/service": "edge"}},
        "outbound": [{"port": 10001, "tags": {"kuma.io/service": "backend"}}]}}));
    let ps = policies(vec![
        mesh_timeout(
            "mesh",
            json!({}),
            json!({"kind": "Mesh"}),
            json!({"idleTimeout": "1s"}),
        ),
        mesh_timeout(
            "sidecars",
            json!({}),
            json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
            json!({"idleTimeout": "2s"}),
        ),
        mesh_timeout(
            "edge",
            json!({}),
            json!({"kind": "MeshService", "name": "edge"}),
            json!({"connectionTimeout": "3s"}),
        ),
        mesh_timeout(
            "other",
            json!({}),
            json!({"kind": "MeshService", "name": "web"}),
            json!({"connectionTimeout": "4s"}),
        ),
        mesh_timeout(
            "dp",
            json!({}),
            json!({"kind": "Dataplane", "sectionName": "nope"}),
            json!({"tcp": 1}),
        ),
    ]);
    let rules = index(&ps).resolve(&d.view());
    assert_eq!(rules.policies, ["mesh", "dp", "edge"]);
    assert_eq!(
        rules.outbounds[0].merged.conf,
        Some(json!({"idleTimeout": "1s", "tcp": 1, "connectionTimeout": "3s"}))
    );
    // A built-in gateway (no MeshGateway resources here) is not selected by Mesh refs.
    let builtin = D::new(json!({"networking": {"address": "1.1.1.1",
        "gateway": {"type": "BUILTIN", "tags": {"kuma.io/service": "edge"}}}}));
    assert!(index(&ps).resolve(&builtin.view()).policies.is_empty());
}

#[test]
fn a_policy_selecting_no_inbound_does_not_reach_outbounds() {
    let ps = policies(vec![
        mesh_timeout(
            "a",
            json!({}),
            json!({"kind": "MeshSubset", "tags": {"version": "v9"}}),
            json!({"idleTimeout": "1s"}),
        ),
        mesh_timeout(
            "b",
            json!({}),
            json!({"kind": "Dataplane", "sectionName": "nope"}),
            json!({"idleTimeout": "2s"}),
        ),
    ]);
    let rules = index(&ps).resolve(&outbound_dp().view());
    assert!(rules.policies.is_empty());
    assert_eq!(rules.outbounds[0].merged, Merged::default());
}

// ---- Inbound rules --------------------------------------------------------------------

fn mt_options() -> Options {
    Options {
        from_as_rules: true,
        ..Options::default()
    }
}

#[test]
fn kuma_inboundrules_mt_mixed_rules_and_from_as_rules() {
    let ps = policies(vec![
        json!({"name": "matched-for-rules-mt-aaaaaa", "rules": [{"default": {"idleTimeout": "10s"}}]}),
        json!({"name": "matched-for-rules-mt-bbbbbb", "from": [{"targetRef": {"kind": "Mesh"},
            "default": {"idleTimeout": "100s", "connectionTimeout": "101s"}}]}),
        json!({"name": "matched-for-rules-mt-cccccc", "rules": [{"default": {"idleTimeout": "200s", "http": {"requestTimeout": "202s"}}}]}),
    ]);
    let ix = index_with(&ps, Catalog::default(), mt_options());
    let inbound = ix.resolve(&web_dp().view()).inbounds.remove(0);
    let order: Vec<&str> = inbound.rules.iter().map(|r| &*r.origin.policy).collect();
    assert_eq!(
        order,
        [
            "matched-for-rules-mt-cccccc",
            "matched-for-rules-mt-bbbbbb",
            "matched-for-rules-mt-aaaaaa"
        ]
    );
    assert!(inbound.rules.iter().all(|r| r.matches.is_none()));
    assert_eq!(
        inbound.conf.conf,
        Some(
            json!({"idleTimeout": "10s", "connectionTimeout": "101s", "http": {"requestTimeout": "202s"}})
        )
    );
    // Without IsFromAsRules the `from` entry is not an inbound rule.
    let legacy = index(&ps).resolve(&web_dp().view()).inbounds.remove(0);
    assert_eq!(legacy.rules.len(), 2);
    assert_eq!(legacy.from.len(), 1);
}

#[test]
fn kuma_inboundrules_mt_from_ignores_from_target_refs() {
    // mt-from, with one from-targetRef changed to a MeshService: as a rule it still applies
    // to every caller.
    let ps = policies(vec![
        json!({"name": "matched-for-rules-mt-aaaaaa", "from": [{"targetRef": {"kind": "MeshService", "name": "nobody"},
            "default": {"idleTimeout": "10s", "http": {"requestTimeout": "12s"}}}]}),
        json!({"name": "matched-for-rules-mt-bbbbbb", "from": [{"targetRef": {"kind": "Mesh"},
            "default": {"idleTimeout": "100s", "connectionTimeout": "101s", "http": {"requestTimeout": "102s"}}}]}),
    ]);
    let ix = index_with(&ps, Catalog::default(), mt_options());
    let inbound = ix.resolve(&web_dp().view()).inbounds.remove(0);
    assert_eq!(
        inbound.conf.policies(),
        ["matched-for-rules-mt-bbbbbb", "matched-for-rules-mt-aaaaaa"]
    );
    assert_eq!(
        inbound.conf.conf,
        Some(
            json!({"idleTimeout": "10s", "connectionTimeout": "101s", "http": {"requestTimeout": "12s"}})
        )
    );
}

#[test]
fn kuma_inboundrules_mt_to_gives_no_inbound_rules() {
    let ps = policies(vec![
        json!({"name": "mt", "to": [{"targetRef": {"kind": "Mesh"},
        "default": {"idleTimeout": "10s"}}]}),
    ]);
    let ix = index_with(&ps, Catalog::default(), mt_options());
    let inbound = ix.resolve(&web_dp().view()).inbounds.remove(0);
    assert_eq!(inbound.policies, ["mt"]);
    assert!(inbound.rules.is_empty());
    assert_eq!(inbound.conf, Merged::default());
}

#[test]
fn rules_apply_only_to_the_inbounds_the_policy_selects() {
    let ps = policies(vec![
        json!({"name": "all", "rules": [{"default": {"idleTimeout": "1s"}}]}),
        json!({"name": "v3", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v3"}},
               "rules": [{"default": {"idleTimeout": "3s"}}]}),
    ]);
    let rules = index(&ps).resolve(&web_dp().view());
    let confs: Vec<Option<Value>> = rules.inbounds.iter().map(|i| i.conf.conf.clone()).collect();
    assert_eq!(
        confs,
        [
            Some(json!({"idleTimeout": "1s"})),
            Some(json!({"idleTimeout": "3s"}))
        ]
    );
}

#[test]
fn kuma_fromrules_01_per_caller() {
    let ps = policies(vec![
        json!({"name": "mtp-1", "targetRef": {"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}},
            "from": [
                {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"action": "Allow"}},
                {"targetRef": {"kind": "MeshService", "name": "orders"}, "default": {"action": "AllowWithShadowDeny"}}]}),
        json!({"name": "mtp-2", "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}]}),
    ]);
    let rules = index(&ps).resolve(&web_dp().view());
    let caller = |s: &str| tags(&[("kuma.io/service", s)]);
    let v1 = &rules.inbounds[0];
    assert_eq!(
        v1.from_conf(&caller("orders")).conf,
        Some(json!({"action": "AllowWithShadowDeny"}))
    );
    assert_eq!(
        v1.from_conf(&caller("orders")).policies(),
        ["mtp-2", "mtp-1"]
    );
    assert_eq!(
        v1.from_conf(&caller("backend")).conf,
        Some(json!({"action": "Allow"}))
    );
    assert_eq!(
        v1.from_conf(&caller("other")).conf,
        Some(json!({"action": "Deny"}))
    );
    let v3 = &rules.inbounds[1];
    assert_eq!(
        v3.from_conf(&caller("backend")).conf,
        Some(json!({"action": "Deny"}))
    );
    assert_eq!(v3.from_conf(&caller("backend")).policies(), ["mtp-2"]);
}

#[test]
fn kuma_fromrules_lexicographic_order_per_caller() {
    // multiple-policies-lexicog-order: rule-a sorts after rule-b and wins for payment.
    let d = D::new(
        json!({"networking": {"address": "1.1.1.1", "inbound": [{"port": 8080,
        "tags": {"kuma.io/service": "foo", "k8s.kuma.io/service-name": "demo-app"}}]}}),
    );
    let selector = json!({"kind": "MeshSubset", "tags": {"k8s.kuma.io/service-name": "demo-app"}});
    let from = |app: &str, action: &str| {
        json!({"targetRef": {"kind": "MeshSubset", "tags": {"app.kubernetes.io/name": app}},
               "default": {"action": action}})
    };
    let ps = policies(vec![
        json!({"name": "rule-b", "targetRef": selector, "from": [
            from("ui", "Allow"), from("service-order", "Allow"), from("service-payment", "Allow")]}),
        json!({"name": "rule-a", "targetRef": selector, "from": [from("service-payment", "Deny")]}),
    ]);
    let inbound = index(&ps).resolve(&d.view()).inbounds.remove(0);
    let caller = |app: &str| tags(&[("kuma.io/service", "x"), ("app.kubernetes.io/name", app)]);
    let payment = inbound.from_conf(&caller("service-payment"));
    assert_eq!(payment.conf, Some(json!({"action": "Deny"})));
    assert_eq!(payment.policies(), ["rule-b", "rule-a"]);
    assert_eq!(
        inbound.from_conf(&caller("ui")).conf,
        Some(json!({"action": "Allow"}))
    );
    assert_eq!(inbound.from_conf(&caller("other")).conf, None);
}

#[test]
fn kuma_rules_from_02_overlapping_subsets_merge_per_caller() {
    // rules/from/02: version v1 Allow, zone us-east Deny, env dev Allow, in that order.
    let ps = policies(vec![json!({"name": "mtp-1", "from": [
        {"targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}, "default": {"action": "Allow"}},
        {"targetRef": {"kind": "MeshSubset", "tags": {"zone": "us-east"}}, "default": {"action": "Deny"}},
        {"targetRef": {"kind": "MeshSubset", "tags": {"env": "dev"}}, "default": {"action": "Allow"}}]})]);
    let inbound = index(&ps).resolve(&web_dp().view()).inbounds.remove(0);
    let action = |pairs: &[(&str, &str)]| inbound.from_conf(&tags(pairs)).conf;
    // The golden rules' conf for each cell of the partition.
    type Cell<'a> = (&'a [(&'a str, &'a str)], Option<Value>);
    let cases: [Cell<'_>; 8] = [
        (
            &[("env", "dev"), ("version", "v1"), ("zone", "us-east")],
            Some(json!({"action": "Allow"})),
        ),
        (
            &[("version", "v1"), ("zone", "us-east")],
            Some(json!({"action": "Deny"})),
        ),
        (
            &[("env", "dev"), ("zone", "us-east")],
            Some(json!({"action": "Allow"})),
        ),
        (
            &[("env", "dev"), ("version", "v1")],
            Some(json!({"action": "Allow"})),
        ),
        (&[("zone", "us-east")], Some(json!({"action": "Deny"}))),
        (&[("version", "v1")], Some(json!({"action": "Allow"}))),
        (&[("env", "dev")], Some(json!({"action": "Allow"}))),
        (&[("version", "v2")], None),
    ];
    for (caller, want) in cases {
        assert_eq!(action(caller), want, "{caller:?}");
    }
}

#[test]
fn caller_entries_of_other_kinds_match_no_caller() {
    let ps = policies(vec![json!({"name": "p", "from": [
        {"targetRef": {"kind": "MeshExternalService", "name": "x"}, "default": {"action": "Allow"}},
        {"targetRef": {"kind": "MeshServiceSubset", "name": "a", "tags": {"kuma.io/service": "b"}}, "default": {"action": "Allow"}}]})]);
    let inbound = index(&ps).resolve(&web_dp().view()).inbounds.remove(0);
    assert_eq!(inbound.from[0].subset, None);
    assert_eq!(
        inbound.from_conf(&tags(&[("kuma.io/service", "x")])).conf,
        None
    );
    assert_eq!(
        inbound.from_conf(&tags(&[("kuma.io/service", "a")])).conf,
        None
    );
}

// ---- Outbounds ------------------------------------------------------------------------

fn backend_catalog() -> Catalog {
    let ms = |name: &str, labels: Value, ports: Value| CatalogResource {
        kind: ResourceKind::MeshService,
        name: name.into(),
        labels: serde_json::from_value(labels).unwrap(),
        ports: serde_json::from_value(ports).unwrap(),
        target_ref: None,
    };
    Catalog::new(vec![
        ms("backend", json!({}), json!([{"port": 80}])),
        ms("backend-v2", json!({}), json!([{"port": 80}])),
        ms(
            "backend-dev",
            json!({"env": "dev", "domain": "backend"}),
            json!([{"port": 80, "name": "http-port"}, {"port": 81}]),
        ),
        ms(
            "backend-prod",
            json!({"env": "prod", "domain": "backend"}),
            json!([{"port": 80, "name": "http-port"}]),
        ),
        CatalogResource {
            kind: ResourceKind::MeshExternalService,
            name: "httpbin".into(),
            labels: Tags::new(),
            ports: vec![Port {
                port: 443,
                name: None,
            }],
            target_ref: None,
        },
        CatalogResource {
            kind: ResourceKind::MeshMultiZoneService,
            name: "global-backend".into(),
            labels: Tags::new(),
            ports: vec![Port {
                port: 80,
                name: Some("http".into()),
            }],
            target_ref: None,
        },
        CatalogResource {
            kind: ResourceKind::MeshHTTPRoute,
            name: "http-route-1".into(),
            labels: Tags::new(),
            ports: vec![],
            target_ref: None,
        },
    ])
}

fn resource(kind: ResourceKind, name: &str, section: Option<&str>) -> ResourceRef {
    ResourceRef {
        kind,
        name: name.into(),
        section: section.map(str::to_owned),
    }
}

fn ms(name: &str, section: Option<&str>) -> ResourceRef {
    resource(ResourceKind::MeshService, name, section)
}

#[test]
fn legacy_outbound_merges_in_policy_order() {
    let ps = policies(vec![
        json!({"name": "b-mesh", "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s", "connectionTimeout": "1s"}}]}),
        json!({"name": "a-backend", "to": [
            {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"connectionTimeout": "2s"}},
            {"targetRef": {"kind": "MeshService", "name": "other"}, "default": {"connectionTimeout": "9s"}}]}),
        json!({"name": "z-subset", "targetRef": {"kind": "MeshSubset", "tags": {"version": "v1"}}, "to": [
            {"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "backend"}}, "default": {"http": {"requestTimeout": "3s"}}},
            {"targetRef": {"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "v2"}}, "default": {"idleTimeout": "9s"}}]}),
    ]);
    let rules = index(&ps).resolve(&outbound_dp().view());
    let out = &rules.outbounds[0];
    assert_eq!(
        out.target,
        OutboundTarget::Service {
            name: "backend".into()
        }
    );
    assert_eq!(out.merged.policies(), ["b-mesh", "a-backend", "z-subset"]);
    assert_eq!(
        out.merged.conf,
        Some(
            json!({"idleTimeout": "1s", "connectionTimeout": "2s", "http": {"requestTimeout": "3s"}})
        )
    );
}

#[test]
fn kuma_resourcerules_mt_with_ms_and_mesh_legacy_and_resource_differ() {
    let ps = policies(vec![
        json!({"name": "matched-for-rules-mt-1", "targetRef": {"kind": "Mesh"}, "to": [
        {"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "9s"}},
        {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"connectionTimeout": "11s", "http": {"requestTimeout": "12s"}}},
        {"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "21s"}}]}),
    ]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    // Resource rules: entries sorted by kind, so the MeshService entry comes last.
    let backend = m.to_resource(&ms("backend", None));
    assert_eq!(
        backend.conf,
        Some(
            json!({"idleTimeout": "9s", "connectionTimeout": "11s", "http": {"requestTimeout": "12s"}})
        )
    );
    let indices: Vec<usize> = backend.origins.iter().map(|o| o.index).collect();
    assert_eq!(indices, [0, 2, 1]);
    assert_eq!(
        m.to_resource(&ms("backend-v2", None)).conf,
        Some(json!({"idleTimeout": "9s", "connectionTimeout": "21s"}))
    );
    // The legacy outbound keeps the written order: the last Mesh entry wins.
    assert_eq!(
        m.to_service("backend").conf,
        Some(
            json!({"idleTimeout": "9s", "connectionTimeout": "21s", "http": {"requestTimeout": "12s"}})
        )
    );
}

#[test]
fn kuma_resourcerules_mt_with_ms_labels_sectionname() {
    let ps = policies(vec![json!({"name": "matched-for-rules-mt-1", "to": [
        {"targetRef": {"kind": "MeshService", "labels": {"domain": "backend"}, "sectionName": "http-port"},
         "default": {"connectionTimeout": "31s", "http": {"requestTimeout": "32s"}}},
        {"targetRef": {"kind": "MeshService", "labels": {"domain": "backend"}, "sectionName": "non-existent-section"},
         "default": {"connectionTimeout": "41s", "http": {"requestTimeout": "42s"}}},
        {"targetRef": {"kind": "MeshService", "labels": {"env": "dev"}, "sectionName": "http-port"},
         "default": {"idleTimeout": "11s", "connectionTimeout": "12s"}},
        {"targetRef": {"kind": "MeshService", "labels": {"env": "dev"}, "sectionName": "non-existent-section"},
         "default": {"idleTimeout": "21s", "connectionTimeout": "22s"}}]})]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    let dev = m.to_resource(&ms("backend-dev", Some("http-port")));
    assert_eq!(
        dev.conf,
        Some(
            json!({"connectionTimeout": "12s", "idleTimeout": "11s", "http": {"requestTimeout": "32s"}})
        )
    );
    assert_eq!(
        dev.origins.iter().map(|o| o.index).collect::<Vec<_>>(),
        [0, 2]
    );
    assert_eq!(
        m.to_resource(&ms("backend-prod", Some("http-port"))).conf,
        Some(json!({"connectionTimeout": "31s", "http": {"requestTimeout": "32s"}}))
    );
    // No rule for the other port, the whole service or the mesh.
    assert_eq!(
        m.to_resource(&ms("backend-dev", Some("81"))),
        Merged::default()
    );
    assert_eq!(m.to_resource(&ms("backend-dev", None)), Merged::default());
}

#[test]
fn kuma_resourcerules_mt_with_different_order() {
    let ps = policies(vec![json!({"name": "matched-for-rules-mt-1", "to": [
        {"targetRef": {"kind": "MeshService", "name": "backend-v2"}, "default": {"connectionTimeout": "5s"}},
        {"targetRef": {"kind": "MeshHTTPRoute", "name": "http-route-1"}, "default": {"http": {"requestTimeout": "20s"}}},
        {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"idleTimeout": "25s", "http": {"requestTimeout": "15s"}}}]})]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    assert_eq!(
        m.to_resource(&ms("backend-v2", None)).conf,
        Some(json!({"connectionTimeout": "5s"}))
    );
    assert_eq!(
        m.to_resource(&ms("backend", None)).conf,
        Some(json!({"idleTimeout": "25s", "http": {"requestTimeout": "15s"}}))
    );
    let route = m.to_route("http-route-1", Some(&ms("backend", None)));
    assert_eq!(route.conf, Some(json!({"http": {"requestTimeout": "20s"}})));
    assert_eq!(route.origins[0].index, 1);
    // A route without a rule falls back to its parent's chain.
    assert_eq!(
        m.to_route("unknown-route", Some(&ms("backend", None))).conf,
        Some(json!({"idleTimeout": "25s", "http": {"requestTimeout": "15s"}}))
    );
    // A policy with a MeshHTTPRoute to-entry is left out of legacy rules altogether.
    assert_eq!(m.to_service("backend"), Merged::default());
    // A route's own rule, without fallback: none for a route no entry names.
    assert!(ix.names_routes());
    assert_eq!(
        m.route_rule("http-route-1").map(|r| r.conf),
        Some(Some(json!({"http": {"requestTimeout": "20s"}})))
    );
    assert_eq!(m.route_rule("unknown-route"), None);
    let without = policies(vec![json!({"name": "no-route", "to": [
        {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"idleTimeout": "25s"}}]})]);
    assert!(!index_with(&without, backend_catalog(), Options::default()).names_routes());
}

#[test]
fn resource_lookup_falls_back_section_then_resource_then_mesh() {
    let ps = policies(vec![
        json!({"name": "mesh", "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}),
        json!({"name": "svc", "to": [{"targetRef": {"kind": "MeshService", "name": "backend-dev"}, "default": {"connectionTimeout": "2s"}}]}),
        json!({"name": "port", "to": [{"targetRef": {"kind": "MeshService", "name": "backend-dev", "sectionName": "http-port"}, "default": {"http": {"requestTimeout": "3s"}}}]}),
    ]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    let section = m.to_resource(&ms("backend-dev", Some("http-port")));
    assert_eq!(
        section.conf,
        Some(
            json!({"idleTimeout": "1s", "connectionTimeout": "2s", "http": {"requestTimeout": "3s"}})
        )
    );
    assert_eq!(section.policies(), ["mesh", "svc", "port"]);
    assert_eq!(
        m.to_resource(&ms("backend-dev", Some("81"))).conf,
        Some(json!({"idleTimeout": "1s", "connectionTimeout": "2s"}))
    );
    assert_eq!(
        m.to_resource(&ms("backend", None)).conf,
        Some(json!({"idleTimeout": "1s"}))
    );
    assert_eq!(
        m.to_resource(&ms("not-in-catalog", None)).conf,
        Some(json!({"idleTimeout": "1s"}))
    );
    assert_eq!(
        ix.section_for_port(ResourceKind::MeshService, "backend-dev", 80),
        Some("http-port".into())
    );
    assert_eq!(
        ix.section_for_port(ResourceKind::MeshService, "backend-dev", 81),
        Some("81".into())
    );
}

#[test]
fn resource_rules_sort_by_attrs_then_entry_kind_then_section_then_name() {
    // Same top-level attributes: every Mesh entry before every MeshService entry, and
    // section-less MeshService entries before sectioned ones, whatever the names.
    let ps = policies(vec![
        json!({"name": "a", "to": [{"targetRef": {"kind": "MeshService", "name": "backend-dev", "sectionName": "http-port"}, "default": {"x": "a-section"}}]}),
        json!({"name": "b", "to": [{"targetRef": {"kind": "MeshService", "name": "backend-dev"}, "default": {"x": "b-service", "y": "b"}}]}),
        json!({"name": "c", "to": [{"targetRef": {"kind": "Mesh"}, "default": {"x": "c-mesh", "y": "c", "z": "c"}}]}),
        // A higher top-level kind outranks entry kinds.
        json!({"name": "d", "targetRef": {"kind": "MeshService", "name": "web"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"z": "d-mesh"}}]}),
    ]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    let got = m.to_resource(&ms("backend-dev", Some("http-port")));
    assert_eq!(got.policies(), ["c", "b", "a", "d"]);
    assert_eq!(
        got.conf,
        Some(json!({"x": "a-section", "y": "b", "z": "d-mesh"}))
    );
    // The legacy view orders whole policies (here the inverted names give the same order).
    assert_eq!(m.to_service("backend-dev").policies(), ["c", "b", "a", "d"]);
}

#[test]
fn external_and_multizone_services_resolve_by_name() {
    let ps = policies(vec![json!({"name": "p", "to": [
        {"targetRef": {"kind": "MeshExternalService", "name": "httpbin"}, "default": {"a": 1}},
        {"targetRef": {"kind": "MeshMultiZoneService", "name": "global-backend", "sectionName": "http"}, "default": {"b": 2}},
        {"targetRef": {"kind": "MeshExternalService", "name": "absent"}, "default": {"c": 3}}]})]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    let mes = resource(ResourceKind::MeshExternalService, "httpbin", Some("443"));
    assert_eq!(m.to_resource(&mes).conf, Some(json!({"a": 1})));
    let mmzs = resource(
        ResourceKind::MeshMultiZoneService,
        "global-backend",
        Some("http"),
    );
    assert_eq!(m.to_resource(&mmzs).conf, Some(json!({"b": 2})));
    let whole = resource(ResourceKind::MeshMultiZoneService, "global-backend", None);
    assert_eq!(m.to_resource(&whole), Merged::default());
    // None of these kinds take part in legacy rules.
    assert_eq!(m.to_service("httpbin"), Merged::default());
}

#[test]
fn backend_ref_outbounds_use_resource_rules() {
    let d = D::new(json!({"networking": {"address": "1.1.1.1",
        "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}],
        "outbound": [
            {"port": 10001, "backendRef": {"kind": "MeshService", "name": "backend-dev", "port": 80}},
            {"port": 10002, "backendRef": {"kind": "MeshService", "labels": {"env": "prod"}, "port": 80}},
            {"port": 10003, "backendRef": {"kind": "MeshService", "labels": {"env": "none"}, "port": 80}},
            {"port": 10004, "backendRef": {"kind": "MeshService", "name": "unknown", "port": 80}},
            {"port": 10005, "tags": {"version": "v1"}}]}}));
    let ps = policies(vec![json!({"name": "p", "to": [
        {"targetRef": {"kind": "Mesh"}, "default": {"m": 1}},
        {"targetRef": {"kind": "MeshService", "labels": {"domain": "backend"}, "sectionName": "http-port"}, "default": {"s": 2}}]})]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    let outs = ix.resolve(&d.view()).outbounds;
    assert_eq!(
        outs[0].target,
        OutboundTarget::Resource {
            kind: ResourceKind::MeshService,
            name: "backend-dev".into(),
            section: Some("http-port".into())
        }
    );
    assert_eq!(outs[0].merged.conf, Some(json!({"m": 1, "s": 2})));
    assert_eq!(
        outs[1].target,
        OutboundTarget::Resource {
            kind: ResourceKind::MeshService,
            name: "backend-prod".into(),
            section: Some("http-port".into())
        }
    );
    assert_eq!(outs[1].merged.conf, Some(json!({"m": 1, "s": 2})));
    assert_eq!(outs[2].target, OutboundTarget::Unresolved);
    assert_eq!(outs[2].merged, Merged::default());
    assert_eq!(outs[3].merged.conf, Some(json!({"m": 1})));
    assert_eq!(outs[4].target, OutboundTarget::Unresolved);
}

#[test]
fn kubernetes_style_service_names_resolve_to_real_mesh_services() {
    let catalog = Catalog::new(vec![CatalogResource {
        kind: ResourceKind::MeshService,
        name: "backend.kuma-demo".into(),
        labels: tags(&[
            ("k8s.kuma.io/namespace", "kuma-demo"),
            ("kuma.io/display-name", "backend"),
        ]),
        ports: vec![
            Port {
                port: 8080,
                name: Some("http".into()),
            },
            Port {
                port: 9090,
                name: None,
            },
        ],
        target_ref: None,
    }]);
    let ps = policies(vec![json!({"name": "p", "to": [
        {"targetRef": {"kind": "MeshService", "name": "backend_kuma-demo_svc_8080"}, "default": {"a": 1}}]})]);
    let ix = index_with(&ps, catalog, Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    assert_eq!(
        m.to_resource(&ms("backend.kuma-demo", Some("http"))).conf,
        Some(json!({"a": 1}))
    );
    assert_eq!(
        m.to_resource(&ms("backend.kuma-demo", Some("9090"))),
        Merged::default()
    );
    // ... and still address the legacy service of that name.
    assert_eq!(
        m.to_service("backend_kuma-demo_svc_8080").conf,
        Some(json!({"a": 1}))
    );
}

#[test]
fn mesh_service_by_name_resolves_in_the_policy_zone_and_namespace() {
    let catalog = Catalog::new(vec![CatalogResource {
        kind: ResourceKind::MeshService,
        name: "backend".into(),
        labels: tags(&[("kuma.io/origin", "zone"), ("kuma.io/zone", "zone-1")]),
        ports: vec![],
        target_ref: None,
    }]);
    let ps = policies(vec![
        json!({"name": "zone", "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-1"},
               "to": [{"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"a": 1}}]}),
        json!({"name": "global", "labels": {"kuma.io/origin": "global"},
               "to": [{"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"b": 2}}]}),
    ]);
    let ix = index_with(&ps, catalog, Options::default());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    assert_eq!(m.to_resource(&ms("backend", None)).policies(), ["zone"]);
    // Legacy rules compare the service name only.
    assert_eq!(m.to_service("backend").policies(), ["global", "zone"]);
}

#[test]
fn top_level_meshhttproute_policies_contribute_no_outbound_conf() {
    let catalog = backend_catalog();
    let ps = policies(vec![
        json!({"name": "via-route", "targetRef": {"kind": "MeshHTTPRoute", "name": "http-route-1"},
               "to": [{"targetRef": {"kind": "Mesh"}, "default": {"a": 1}}]}),
        json!({"name": "plain", "to": [{"targetRef": {"kind": "Mesh"}, "default": {"b": 2}}]}),
    ]);
    let ix = index_with(&ps, catalog, Options::default());
    let rules = ix.resolve(&outbound_dp().view());
    assert_eq!(rules.policies, ["plain", "via-route"]);
    assert_eq!(rules.outbounds[0].merged.policies(), ["plain"]);
    let d = outbound_dp();
    assert_eq!(
        ix.matched(&d.view())
            .to_resource(&ms("backend", None))
            .policies(),
        ["plain"]
    );
}

#[test]
fn mesh_element_gets_only_mesh_wide_entries() {
    let ps = policies(vec![json!({"name": "p", "to": [
        {"targetRef": {"kind": "Mesh"}, "default": {"a": 1}},
        {"targetRef": {"kind": "MeshSubset", "tags": {}}, "default": {"b": 2}},
        {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"c": 3}}]})]);
    let d = outbound_dp();
    let ix = index(&ps);
    let m = ix.matched(&d.view());
    assert_eq!(
        m.to_element(&Tags::new()).conf,
        Some(json!({"a": 1, "b": 2}))
    );
    assert_eq!(m.policies(), ["p"]);
    assert_eq!(m.inbound(0).map(|i| i.policies), Some(vec!["p".to_owned()]));
    assert_eq!(m.inbound(1), None);
}

#[test]
fn kuma_torules_05_proxy_types() {
    let ps = policies(vec![
        mesh_timeout(
            "mtp-1",
            json!({}),
            json!({"kind": "Mesh"}),
            json!({"http": {"requestTimeout": "1s"}}),
        ),
        mesh_timeout(
            "mtp-2",
            json!({}),
            json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}),
            json!({"http": {"requestTimeout": "3s"}}),
        ),
        mesh_timeout(
            "mtp-3",
            json!({}),
            json!({"kind": "MeshSubset", "proxyTypes": ["Sidecar"], "tags": {"version": "v1"}}),
            json!({"http": {"requestTimeout": "7s"}}),
        ),
    ]);
    let d = outbound_dp();
    let ix = index(&ps);
    let m = ix.matched(&d.view());
    let conf = m.to_element(&Tags::new());
    assert_eq!(conf.policies(), ["mtp-1", "mtp-3"]);
    assert_eq!(conf.conf, Some(json!({"http": {"requestTimeout": "7s"}})));
}

#[test]
fn one_shot_resolve_matches_the_index() {
    let ps = policies(vec![mesh_timeout(
        "p",
        json!({}),
        json!({"kind": "Mesh"}),
        json!({"a": 1}),
    )]);
    let items: Vec<PolicyItem<'_>> = ps.iter().map(P::item).collect();
    let d = outbound_dp();
    let one = resolve(
        MESH,
        &items,
        Catalog::default(),
        Options::default(),
        &d.view(),
    );
    assert_eq!(one, index(&ps).resolve(&d.view()));
    assert_eq!(one.outbounds[0].merged.conf, Some(json!({"a": 1})));
    // The serialised form, for inspection.
    let v = serde_json::to_value(&one.outbounds[0]).unwrap();
    assert_eq!(
        v,
        json!({"port": 10001, "target": {"type": "service", "name": "backend"},
               "origins": [{"policy": "p", "index": 0}], "conf": {"a": 1}})
    );
}

/// A policy whose top-level targetRef is a MeshHTTPRoute adds its entries to that route's
/// conf on legacy outbounds, over the service's legacy conf (the most specific kind, merged
/// last), and to nothing else.
#[test]
fn top_level_route_policies_apply_to_the_route_on_legacy_outbounds() {
    let ps = policies(vec![
        json!({"name": "service-wide", "to": [
            {"targetRef": {"kind": "MeshService", "name": "backend"},
             "default": {"idleTimeout": "25s", "http": {"requestTimeout": "15s"}}}]}),
        json!({"name": "on-route", "targetRef": {"kind": "MeshHTTPRoute", "name": "http-route-1"}, "to": [
            {"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "2s"}}}]}),
    ]);
    let ix = index_with(&ps, backend_catalog(), Options::default());
    assert!(ix.names_routes());
    let d = outbound_dp();
    let m = ix.matched(&d.view());
    let route = m.legacy_route_rule("http-route-1", "backend").unwrap();
    assert_eq!(
        route.conf,
        Some(json!({"idleTimeout": "25s", "http": {"requestTimeout": "2s"}}))
    );
    assert_eq!(route.policies(), ["service-wide", "on-route"]);
    // Another route, and the outbound itself, keep the service's conf.
    assert_eq!(m.legacy_route_rule("other-route", "backend"), None);
    assert_eq!(
        m.to_service("backend").conf,
        Some(json!({"idleTimeout": "25s", "http": {"requestTimeout": "15s"}}))
    );
    // Not a resource rule of the route (Kuma's resource rules skip such policies).
    assert_eq!(m.route_rule("http-route-1"), None);
}
