//! Kuma 2.14's `meshloadbalancingstrategy/api/v1alpha1/validator_test.go`, every case (6
//! accepted, 17 refused with exactly Kuma's violations), then what this port adds: parsing,
//! round trips, warnings and the descriptor. Kuma's documents carry `type`, `mesh` and `name`
//! beside the spec (its test reads them leniently into the spec); the ports keep the spec.

use super::*;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshLoadBalancingStrategySpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// A policy for MeshService `svc-1` with one `to` entry (MeshService `svc-2`) and the given
/// `default` block (indented under `default:`).
fn svc1_to_svc2(default: &str) -> String {
    format!(
        "targetRef:\n  kind: MeshService\n  name: svc-1\nto:\n  - targetRef:\n      kind: MeshService\n      name: svc-2\n    default:\n{default}"
    )
}

/// A policy for the mesh with one `to` entry (MeshService `svc-1`) and the given `default`.
fn mesh_to_svc1(default: &str) -> String {
    format!(
        "targetRef:\n  kind: Mesh\nto:\n  - targetRef:\n      kind: MeshService\n      name: svc-1\n    default:\n{default}"
    )
}

/// Hash policies of every type needing settings, without them.
const BARE_HASH_POLICIES: &str = concat!(
    "            - type: Header\n",
    "            - type: Cookie\n",
    "            - type: Connection\n",
    "            - type: QueryParameter\n",
    "            - type: FilterState\n",
);

fn missing_hash_settings(prefix: &str) -> Vec<(String, String)> {
    [
        "header",
        "cookie",
        "connection",
        "queryParameter",
        "filterState",
    ]
    .iter()
    .enumerate()
    .map(|(i, f)| {
        (
            format!("spec.to[0].default.{prefix}[{i}].{f}"),
            "must be defined".to_string(),
        )
    })
    .collect()
}

// ---- Kuma: "should validate all fields and return as many individual errors as possible" ----

#[test]
fn kuma_spec_errors() {
    assert_errors(
        "targetRef:\n  kind: MeshGatewayRoute\n  name: route-1\nto: []\n",
        &[(
            "spec.targetRef.kind",
            "value 'MeshGatewayRoute' is not supported",
        )],
    );
}

#[test]
fn kuma_spec_to_errors() {
    assert_errors(
        r#"
targetRef:
  kind: MeshService
  name: svc-1
to:
  - targetRef:
      kind: MeshServiceSubset
      name: svc-2
      tags:
        version: v1
  - targetRef:
      kind: MeshService
      name: real-mesh-service
      sectionName: http
    default:
      localityAwareness:
        crossZone: {}
"#,
        &[
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshServiceSubset' is not supported",
            ),
            (
                "spec.to[1].default.localityAwareness.crossZone",
                "must not be set: MeshService traffic is local",
            ),
        ],
    );
}

#[test]
fn kuma_ring_hash_error() {
    let yaml = svc1_to_svc2(&format!(
        "      loadBalancer:\n        type: RingHash\n        ringHash:\n          hashPolicies:\n{BARE_HASH_POLICIES}"
    ));
    assert_eq!(
        check(&yaml),
        missing_hash_settings("loadBalancer.ringHash.hashPolicies")
    );
}

#[test]
fn kuma_ring_hash_cookie_error() {
    assert_errors(
        &svc1_to_svc2(
            "      loadBalancer:\n        type: RingHash\n        ringHash:\n          hashPolicies:\n            - type: Cookie\n              cookie: {name: cookie-name, ttl: 1s, path: relative-path}\n",
        ),
        &[(
            "spec.to[0].default.loadBalancer.ringHash.hashPolicies[0].cookie.path",
            "must be an absolute path",
        )],
    );
}

#[test]
fn kuma_maglev_error() {
    // Kuma's third policy is `SourceIP`, which needs `connection` as `Connection` does.
    let yaml = svc1_to_svc2(&format!(
        "      loadBalancer:\n        type: Maglev\n        maglev:\n          hashPolicies:\n{}",
        BARE_HASH_POLICIES.replace("type: Connection", "type: SourceIP")
    ));
    assert_eq!(
        check(&yaml),
        missing_hash_settings("loadBalancer.maglev.hashPolicies")
    );
}

#[test]
fn kuma_maglev_cookie_error() {
    assert_errors(
        &svc1_to_svc2(
            "      loadBalancer:\n        type: Maglev\n        maglev:\n          hashPolicies:\n            - type: Cookie\n              cookie: {name: cookie-name, ttl: 1s, path: relative-path}\n",
        ),
        &[(
            "spec.to[0].default.loadBalancer.maglev.hashPolicies[0].cookie.path",
            "must be an absolute path",
        )],
    );
}

#[test]
fn kuma_least_request_error() {
    assert_errors(
        &svc1_to_svc2(
            "      loadBalancer:\n        type: LeastRequest\n        leastRequest:\n          activeRequestBias: -1\n",
        ),
        &[(
            "spec.to[0].default.loadBalancer.leastRequest.activeRequestBias",
            "must be greater or equal then: 0",
        )],
    );
}

#[test]
fn kuma_empty_from_in_failover() {
    assert_errors(
        &mesh_to_svc1(
            "      localityAwareness:\n        crossZone:\n          failover:\n            - from:\n                zones: []\n              to:\n                type: None\n",
        ),
        &[(
            "spec.to[0].default.localityAwareness.crossZone.failover[0].from.zones",
            "must not be empty",
        )],
    );
}

#[test]
fn kuma_incorrect_weight() {
    assert_errors(
        &mesh_to_svc1(
            "      localityAwareness:\n        localZone:\n          affinityTags:\n            - key: k8s/node\n              weight: 0\n            - key: \"\"\n              weight: 10\n",
        ),
        &[
            (
                "spec.to[0].default.localityAwareness.localZone.affinityTags[0].weight",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.localityAwareness.localZone.affinityTags[1].key",
                "must not be empty",
            ),
        ],
    );
}

#[test]
fn kuma_mixing_affinity_tags_with_and_without_weights() {
    assert_errors(
        &mesh_to_svc1(
            "      localityAwareness:\n        localZone:\n          affinityTags:\n            - key: k8s/node\n              weight: 10\n            - key: k8s/az\n",
        ),
        &[(
            "spec.to[0].default.localityAwareness.localZone.affinityTags",
            "all or none affinity tags should have weight",
        )],
    );
}

#[test]
fn kuma_percentage_cant_be_zero() {
    assert_errors(
        &mesh_to_svc1(
            "      localityAwareness:\n        crossZone:\n          failoverThreshold:\n            percentage: 0\n",
        ),
        &[(
            "spec.to[0].default.localityAwareness.crossZone.failoverThreshold.percentage",
            "must be greater than 0",
        )],
    );
}

#[test]
fn kuma_percentage_is_not_a_parseable_number() {
    assert_errors(
        &mesh_to_svc1(
            "      localityAwareness:\n        crossZone:\n          failoverThreshold:\n            percentage: \"hello\"\n",
        ),
        &[(
            "spec.to[0].default.localityAwareness.crossZone.failoverThreshold.percentage",
            "string must be a valid number",
        )],
    );
}

#[test]
fn kuma_broken_failover_rules() {
    let at = |i: usize, rest: &str| {
        format!("spec.to[0].default.localityAwareness.crossZone.failover[{i}].{rest}")
    };
    let expected = [
        (at(0, "to.zones"), "must be empty when type is None"),
        (at(1, "from.zones[1]"), "must not be empty"),
        (at(2, "to.zones"), "must be empty when type is Any"),
        (at(3, "to.zones"), "must not be empty when type is Only"),
        (at(4, "to.zones"), "must not be empty when type is Only"),
        (
            at(5, "to.zones"),
            "must not be empty when type is AnyExcept",
        ),
        (
            at(6, "to.zones"),
            "must not be empty when type is AnyExcept",
        ),
    ];
    let expected: Vec<(&str, &str)> = expected.iter().map(|(f, m)| (f.as_str(), *m)).collect();
    assert_errors(
        &mesh_to_svc1(
            r#"      localityAwareness:
        crossZone:
          failover:
            - from:
                zones: ["zone-1"]
              to:
                type: None
                zones: ["zone-1"]
            - from:
                zones: ["zone-1", ""]
              to:
                type: Any
            - to:
                type: Any
                zones: ["zone-1"]
            - to:
                type: Only
                zones: []
            - to:
                type: Only
            - to:
                type: AnyExcept
                zones: []
            - to:
                type: AnyExcept

"#,
        ),
        &expected,
    );
}

#[test]
fn kuma_invalid_mesh_gateway_and_to_mesh_service() {
    assert_errors(
        "targetRef:\n  kind: MeshGateway\n  name: edge-gateway\nto:\n  - targetRef:\n      kind: MeshService\n      name: svc-1\n    default:\n      loadBalancer:\n        type: LeastRequest\n        leastRequest:\n          activeRequestBias: \"1.3\"\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshGateway' is not supported, only Mesh is allowed if loadBalancer is set",
        )],
    );
}

#[test]
fn kuma_invalid_hash_policies() {
    let yaml = svc1_to_svc2(&format!(
        "      hashPolicies:\n{}",
        BARE_HASH_POLICIES
            .replace("type: Connection", "type: SourceIP")
            .replace("            -", "        -")
    ));
    assert_eq!(check(&yaml), missing_hash_settings("hashPolicies"));
}

#[test]
fn kuma_mixing_hash_policies_in_root_conf_and_lb_conf() {
    assert_errors(
        &svc1_to_svc2(
            r#"      hashPolicies:
        - type: Header
          header:
            name: x-header-name
      loadBalancer:
        type: Maglev
        maglev:
          hashPolicies:
            - type: Cookie
              cookie:
                name: session_id
        ringHash:
          hashPolicies:
            - type: Cookie
              cookie:
                name: session_id
"#,
        ),
        &[
            (
                "spec.to[0].default.loadBalancer.ringHash.hashPolicies",
                "hashPolicies already specified in the root level",
            ),
            (
                "spec.to[0].default.loadBalancer.maglev.hashPolicies",
                "hashPolicies already specified in the root level",
            ),
        ],
    );
}

/// A policy for `svc-1` with one `to` entry (MeshHTTPRoute `route-1`) and the given extra
/// `default` settings beside a valid header hash policy.
fn to_route(extra: &str) -> String {
    format!(
        "targetRef:\n  kind: MeshService\n  name: svc-1\nto:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: route-1\n    default:\n{extra}      hashPolicies:\n        - type: Header\n          header:\n            name: x-header-name\n"
    )
}

#[test]
fn kuma_mesh_http_route_with_load_balancer() {
    assert_errors(
        &to_route("      loadBalancer:\n        type: RoundRobin\n"),
        &[(
            "spec.to[0].default.loadBalancer",
            "field is not allowed when targetRef.kind is MeshHTTPRoute, only hashPolicies is supported",
        )],
    );
}

#[test]
fn kuma_mesh_http_route_with_locality_awareness() {
    assert_errors(
        &to_route("      localityAwareness:\n        disabled: true\n"),
        &[(
            "spec.to[0].default.localityAwareness",
            "field is not allowed when targetRef.kind is MeshHTTPRoute, only hashPolicies is supported",
        )],
    );
}

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_mesh_http_route_with_only_hash_policies() {
    assert_valid(
        "targetRef:\n  kind: MeshService\n  name: svc-1\nto:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: route-1\n    default:\n      hashPolicies:\n        - type: Header\n          header:\n            name: x-header-name\n        - type: Cookie\n          cookie:\n            name: session_id\n            ttl: 1s\n            path: /absolute-path\n",
    );
}

#[test]
fn kuma_full_spec() {
    assert_valid(&svc1_to_svc2(
        "      localityAwareness:\n        disabled: true\n      hashPolicies:\n        - type: Cookie\n          cookie:\n            name: cookie-name\n            ttl: 1s\n            path: /absolute-path\n      loadBalancer:\n        type: Maglev\n",
    ));
}

#[test]
fn kuma_full_spec_least_request() {
    assert_valid(&svc1_to_svc2(
        "      localityAwareness:\n        disabled: true\n      loadBalancer:\n        type: LeastRequest\n        leastRequest:\n          activeRequestBias: \"1.3\"\n",
    ));
}

#[test]
fn kuma_full_locality_awareness_spec() {
    assert_valid(&svc1_to_svc2(
        r#"      localityAwareness:
        localZone:
          affinityTags:
            - key: "k8s/node"
            - key: "k8s/az"
        crossZone:
          failover:
            - from:
                zones: ["zone-1"]
              to:
                type: Only
                zones: ["zone-2"]
            - from:
                zones: ["zone-3"]
              to:
                type: Any
            - from:
                zones: ["zone-4"]
              to:
                type: AnyExcept
                zones: ["zone-1"]
            - to:
                type: None
          failoverThreshold:
            percentage: 70
"#,
    ));
}

#[test]
fn kuma_empty_to_allowed_as_override() {
    assert_valid("targetRef:\n  kind: Dataplane\n  labels:\n    app: web\nto: []\n");
}

#[test]
fn kuma_top_level_mesh_gateway() {
    assert_valid(
        "targetRef:\n  kind: MeshGateway\n  name: edge\n  tags:\n    name: listener-1\nto:\n  - targetRef:\n      kind: MeshService\n      name: svc-2\n    default:\n      localityAwareness:\n        disabled: true\n",
    );
}

// ---- What this port adds ----

#[test]
fn destinations_and_details() {
    assert_errors(
        r#"
targetRef: {kind: Dataplane, labels: {app: web}}
to:
  - targetRef: {kind: MeshExternalService, name: ext}
  - default: {}
  - targetRef: {kind: MeshService, labels: {app: api}}
    default:
      localityAwareness:
        crossZone:
          failover: [{from: {}, to: {type: Sometimes}}, {}]
          failoverThreshold: {percentage: "100.1"}
      loadBalancer: {type: LeastRequest, leastRequest: {activeRequestBias: "x"}}
      hashPolicies: [{type: Unknown}, {type: Connection, connection: {sourceIP: true}}]
"#,
        &[
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshExternalService' is not supported",
            ),
            (
                "spec.to[0].targetRef.kind",
                "kind MeshExternalService is only allowed with targetRef.kind: Mesh as it is configured on the Zone Egress and shared by all clients in the mesh",
            ),
            ("spec.to[1].targetRef.kind", "must be defined"),
            (
                "spec.to[2].default.loadBalancer.leastRequest.activeRequestBias",
                "string must be a valid number",
            ),
            (
                "spec.to[2].default.localityAwareness.crossZone",
                "must not be set: MeshService traffic is local",
            ),
            (
                "spec.to[2].default.localityAwareness.crossZone.failover[0].from.zones",
                "must not be empty",
            ),
            (
                "spec.to[2].default.localityAwareness.crossZone.failover[0].to.type",
                "unrecognized type",
            ),
            (
                "spec.to[2].default.localityAwareness.crossZone.failover[1].to.type",
                "unrecognized type",
            ),
            (
                "spec.to[2].default.localityAwareness.crossZone.failoverThreshold.percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
        ],
    );
    // Under a MeshGateway without loadBalancer, MeshService is fine; a missing percentage
    // is 0.
    assert_errors(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n  - targetRef: {kind: MeshMultiZoneService, name: web}\n    default: {localityAwareness: {crossZone: {failoverThreshold: {}}}}\n  - targetRef: {kind: Mesh}\n    default: {loadBalancer: {type: RingHash, ringHash: {hashPolicies: [{type: Header}]}}}\n",
        &[
            (
                "spec.to[0].default.localityAwareness.crossZone.failoverThreshold.percentage",
                "must be greater than 0",
            ),
            (
                "spec.to[1].default.loadBalancer.ringHash.hashPolicies[0].header",
                "must be defined",
            ),
        ],
    );
    // Settings of an algorithm that is not the chosen one are not checked.
    assert_valid(
        "to:\n  - targetRef: {kind: Mesh}\n    default: {loadBalancer: {type: RoundRobin, maglev: {hashPolicies: [{type: Header}]}}}\n",
    );
}

#[test]
fn warnings_follow_kuma() {
    let w = |yaml: &str| warnings(&body::<MeshLoadBalancingStrategySpec>(yaml));
    assert_eq!(
        w(
            "targetRef: {kind: MeshSubset, tags: {a: b}}\nto:\n  - targetRef: {kind: Mesh}\n    default: {loadBalancer: {type: Maglev, maglev: {hashPolicies: [{type: Header, header: {name: a}}, {type: SourceIP, connection: {}}]}}}\n  - targetRef: {kind: Mesh}\n    default: {loadBalancer: {type: RingHash, ringHash: {hashPolicies: []}, maglev: {hashPolicies: []}}}\n  - targetRef: {kind: Mesh}\n    default: {loadBalancer: {type: Random, ringHash: {hashPolicies: []}}}\n"
        ),
        [
            "configuration 'spec.to[0].default.loadBalancer.maglev.hashPolicies' is deprecated, use 'spec.to[0].default.hashPolicies' instead",
            "SourceIP type for 'spec.to[0].default.loadBalancer.maglev.hashPolicies[1].type' is deprecated, use Connection instead",
            "configuration 'spec.to[1].default.loadBalancer.ringHash.hashPolicies' is deprecated, use 'spec.to[1].default.hashPolicies' instead",
            "MeshSubset value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
        ]
    );
    assert!(w("to:\n  - targetRef: {kind: Mesh}\n    default: {hashPolicies: [{type: SourceIP, connection: {}}]}\n").is_empty());
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            "to:\n  - default: {hashPolicies: [{type: Cookie, cookie: {ttl: 1d}}]}\n",
            "to[0].default.hashPolicies[0].cookie.ttl",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            "to:\n  - default: {localityAwareness: {localZone: {affinityTags: [{key: a, weight: -1}]}}}\n",
            "to[0].default.localityAwareness.localZone.affinityTags[0].weight",
            "invalid value",
        ),
        (
            "to:\n  - default: {loadBalancer: {type: RoundRobin, roundRobin: {x: 1}}}\n",
            "to[0].default.loadBalancer.roundRobin.x",
            "unknown field `x`",
        ),
        ("from: []\n", "from", "unknown field `from`"),
    ] {
        let (got_path, got_message) = parse::<MeshLoadBalancingStrategySpec>(yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshLoadBalancingStrategySpec>(
        r#"
targetRef: {kind: MeshGateway, name: edge, tags: {name: listener-1}}
to:
  - targetRef: {kind: Mesh}
    default:
      localityAwareness:
        disabled: false
        localZone: {affinityTags: [{key: k8s/node, weight: 9}, {key: k8s/az, weight: 1}]}
        crossZone:
          failover:
            - {from: {zones: [zone-1]}, to: {type: Only, zones: [zone-2]}}
            - to: {type: Any}
          failoverThreshold: {percentage: "70.5"}
      loadBalancer:
        type: RingHash
        roundRobin: {}
        random: {}
        leastRequest: {choiceCount: 3, activeRequestBias: 1}
        ringHash: {hashFunction: MurmurHash2, minRingSize: 1024, maxRingSize: 4096, hashPolicies: []}
        maglev: {tableSize: 65537}
      hashPolicies:
        - {type: Header, terminal: true, header: {name: x-user}}
        - {type: Cookie, cookie: {name: s, ttl: 1h, path: /}}
        - {type: Connection, connection: {sourceIP: true}}
        - {type: QueryParameter, queryParameter: {name: q}}
        - {type: FilterState, filterState: {key: k}}
"#,
    );
    assert_eq!(
        serde_json::to_string(&MeshLoadBalancingStrategySpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn descriptor_is_kumas() {
    let d = ResourceType::MeshLoadBalancingStrategy.descriptor();
    assert_eq!(
        (
            d.name,
            d.plural,
            d.cli_singular,
            d.cli_plural,
            d.short_names
        ),
        (
            "MeshLoadBalancingStrategy",
            "meshloadbalancingstrategies",
            "meshloadbalancingstrategy",
            "meshloadbalancingstrategies",
            &["mlbs"][..]
        )
    );
    assert_eq!(d.policy_order, Some(400));
    assert_eq!(
        ResourceType::from_cli("mlbs"),
        Some(ResourceType::MeshLoadBalancingStrategy)
    );
}
