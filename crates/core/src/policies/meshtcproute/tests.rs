//! Kuma 2.14's `meshtcproute/api/v1alpha1/validator_test.go`, every case (4 accepted, 5
//! refused with exactly Kuma's violations), then what this port adds.

use super::*;
use crate::policies::common::PolicyRole;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshTcpRouteSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

// ---- Kuma: error cases ----

#[test]
fn kuma_top_level_kind_not_supported() {
    assert_errors(
        "targetRef: {kind: BlahBlah, name: frontend}\nto:\n- targetRef: {kind: MeshService, name: backend}\n",
        &[("spec.targetRef.kind", "value 'BlahBlah' is not supported")],
    );
}

#[test]
fn kuma_to_mesh_is_not_a_destination() {
    assert_errors(
        "targetRef: {kind: MeshService, name: frontend}\nto:\n- targetRef: {kind: Mesh}\n",
        &[("spec.to[0].targetRef.kind", "value 'Mesh' is not supported")],
    );
}

#[test]
fn kuma_gateway_routes_go_to_the_mesh_only() {
    assert_errors(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n- targetRef: {kind: MeshService, name: backend}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshService' is not supported",
        )],
    );
}

#[test]
fn kuma_invalid_backend_ref() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: frontend}
to:
- targetRef: {kind: MeshService, name: backend}
  rules:
  - default:
      backendRefs:
      - kind: MeshServiceSubset
        tags: {version: v1}
"#,
        &[(
            "spec.to[0].rules[0].default.backendRefs[0].name",
            "must be set when kind is MeshServiceSubset",
        )],
    );
}

#[test]
fn kuma_multizone_backend_needs_a_port() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: frontend}
to:
- targetRef: {kind: MeshService, name: backend}
  rules:
  - default:
      backendRefs:
      - {kind: MeshMultiZoneService, name: test-server}
"#,
        &[(
            "spec.to[0].rules[0].default.backendRefs[0].port",
            "must be defined with kind MeshMultiZoneService",
        )],
    );
}

// ---- Kuma: valid cases ----

#[test]
fn kuma_valid_with_rules() {
    assert_valid(
        r#"
targetRef: {kind: MeshService, name: frontend}
to:
- targetRef: {kind: MeshService, name: backend}
  rules:
  - default:
      backendRefs:
      - {kind: MeshService, name: other}
"#,
    );
}

#[test]
fn kuma_valid_without_rules() {
    assert_valid(
        "targetRef: {kind: MeshService, name: frontend}\nto:\n- targetRef: {kind: MeshService, name: backend}\n",
    );
}

#[test]
fn kuma_gateway_listener_tags() {
    assert_valid(
        r#"
targetRef:
  kind: MeshGateway
  name: edge
  tags: {port: 6000}
to:
- targetRef: {kind: Mesh}
  rules:
  - default:
      backendRefs:
      - {kind: MeshService, name: other}
"#,
    );
}

#[test]
fn kuma_mesh_service_and_multizone_service() {
    assert_valid(
        r#"
targetRef: {kind: Mesh}
to:
- targetRef: {kind: MeshService, name: backend, sectionName: "8080"}
  rules:
  - default:
      backendRefs:
      - {kind: MeshMultiZoneService, name: other, port: 8080}
- targetRef: {kind: MeshMultiZoneService, name: other, sectionName: "8080"}
  rules:
  - default:
      backendRefs:
      - {kind: MeshService, name: backend, port: 8080}
"#,
    );
}

// ---- Beyond Kuma's cases ----

#[test]
fn a_rule_without_backends_and_a_missing_destination() {
    assert_errors(
        "to:\n- rules:\n  - default: {}\n  - {}\n",
        &[
            ("spec.to[0].targetRef.kind", "must be defined"),
            ("spec.to[0].rules[0].default.backendRefs", "must be defined"),
            ("spec.to[0].rules[1].default.backendRefs", "must be defined"),
        ],
    );
}

#[test]
fn only_system_policies_target_gateways() {
    let spec = body::<MeshTcpRouteSpec>(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n- targetRef: {kind: Mesh}\n",
    );
    assert!(violations(validate_with_role(&spec, &PolicyRole::System)).is_empty());
    assert_eq!(
        violations(validate_with_role(&spec, &PolicyRole::Consumer)),
        pairs(&[(
            "spec.targetRef.kind",
            "value 'MeshGateway' is not supported"
        )])
    );
}

#[test]
fn weights_default_to_one_and_documents_round_trip() {
    let yaml = r#"
targetRef: {kind: Mesh}
to:
- targetRef: {kind: MeshService, name: backend}
  rules:
  - default:
      backendRefs:
      - {kind: MeshServiceSubset, name: backend, tags: {version: v1}, weight: 90}
      - {kind: MeshServiceSubset, name: backend, tags: {version: v2}}
"#;
    assert_valid(yaml);
    let spec = body::<MeshTcpRouteSpec>(yaml);
    let refs = spec.to.as_ref().unwrap()[0].rules.as_ref().unwrap()[0]
        .default
        .as_ref()
        .unwrap()
        .backend_refs
        .clone()
        .unwrap();
    assert_eq!(refs.iter().map(|r| r.weight()).collect::<Vec<_>>(), [90, 1]);
    assert_round_trip::<MeshTcpRouteSpec>(yaml);
    assert_eq!(
        parse::<MeshTcpRouteSpec>("to:\n- targetRef: {kind: MeshService, name: a}\n  rules:\n  - default:\n      backendRefs:\n      - {kind: MeshService, name: b, weight: -1}\n")
            .unwrap_err()
            .0,
        "to[0].rules[0].default.backendRefs[0].weight"
    );
}

#[test]
fn reference_tags_take_numbers_and_booleans_as_kuma_reads_them_but_not_null() {
    let spec = body::<MeshTcpRouteSpec>(
        "targetRef: {kind: MeshSubset, tags: {port: 6000, canary: true, version: v1}}\n",
    );
    let tags = spec.target_ref.unwrap().tags.unwrap();
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        [
            ("canary".to_string(), "true".to_string()),
            ("port".to_string(), "6000".to_string()),
            ("version".to_string(), "v1".to_string())
        ]
    );
    let err = parse::<MeshTcpRouteSpec>("targetRef: {kind: MeshSubset, tags: {version: null}}\n")
        .unwrap_err();
    assert_eq!(err.0, "targetRef.tags");
    assert!(err.1.contains("\"version\""), "{err:?}");
}
