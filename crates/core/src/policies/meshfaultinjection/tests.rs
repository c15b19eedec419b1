//! Kuma 2.14's `meshfaultinjection/api/v1alpha1/validator_test.go`, every case (5 accepted,
//! 8 refused with exactly Kuma's violations), then what this port adds: the policy role,
//! the scope rules for `from` and `to`, parsing, round trips and warnings.

use super::*;
use crate::policies::common::PolicyRole;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshFaultInjectionSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// The fault sets of Kuma's valid examples.
const VALID_FAULTS: &str = r#"
        - abort:
            httpStatus: 503
            percentage: 50
          delay:
            value: 10s
            percentage: 5
        - delay:
            value: 5s
            percentage: 5
        - responseBandwidth:
            limit: 100Mbps
            percentage: 5
        - abort:
            httpStatus: 500
            percentage: "50.5"
"#;

/// The fault sets of Kuma's "incorrect values" examples.
const INVALID_FAULTS: &str = r#"
      - abort:
          httpStatus: 677
          percentage: 111
      - delay:
          value: -5s
          percentage: 1111
      - responseBandwidth:
          limit: 1000
          percentage: 1111
"#;

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_accepts_valid_resource() {
    assert_valid(&format!(
        r#"
targetRef: {{kind: MeshService, name: backend}}
from:
  - targetRef: {{kind: MeshService, name: web-backend}}
    default:
      http:{VALID_FAULTS}"#
    ));
}

#[test]
fn kuma_empty_faults() {
    assert_valid(
        r#"
targetRef: {kind: MeshService, name: backend}
from:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      http: []
"#,
    );
}

#[test]
fn kuma_kind_mesh_with_to_and_only_gateway() {
    assert_valid(
        r#"
targetRef:
  kind: Mesh
  proxyTypes: ["Gateway"]
to:
  - targetRef: {kind: Mesh}
    default:
      http: []
"#,
    );
}

#[test]
fn kuma_accepts_valid_resource_with_rules() {
    assert_valid(&format!(
        r#"
targetRef: {{kind: Mesh}}
rules:
  - matches:
      - spiffeID:
          type: Exact
          value: spiffe://trust.domain/service
    default:
      http:{VALID_FAULTS}"#
    ));
}

#[test]
fn kuma_accepts_rules_matches_with_sni() {
    assert_valid(
        r#"
targetRef: {kind: Mesh}
rules:
  - matches:
      - sni:
          type: Exact
          value: sni.extsvc.default.zone-1.aws-aurora.8443
    default:
      http:
        - responseBandwidth:
            limit: 1000Mbps
            percentage: 50
"#,
    );
}

// ---- Kuma: "should validate all fields and return as many individual errors as possible" ----

#[test]
fn kuma_incorrect_values() {
    assert_errors(
        &format!(
            r#"
targetRef: {{kind: MeshService, name: backend}}
from:
  - targetRef: {{kind: MeshService, name: web-backend}}
    default:
      http:{INVALID_FAULTS}"#
        ),
        &[
            (
                "spec.from[0].default.http.abort[0].httpStatus",
                "must be in inclusive range [100, 599]",
            ),
            (
                "spec.from[0].default.http.abort[0].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.from[0].default.http.delay[1].value",
                "must not be negative when defined",
            ),
            (
                "spec.from[0].default.http.delay[1].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.from[0].default.http.responseBandwidth[2].limit",
                "must be in kbps/Mbps/Gbps units",
            ),
            (
                "spec.from[0].default.http.responseBandwidth[2].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
        ],
    );
}

#[test]
fn kuma_incorrect_values_with_rules() {
    assert_errors(
        &format!(
            r#"
targetRef: {{kind: Mesh}}
rules:
  - matches:
      - spiffeID:
          type: Exact
          value: spiffe://trust.domain/service
    default:
      http:{INVALID_FAULTS}"#
        ),
        &[
            (
                "spec.rules[0].default.http.abort[0].httpStatus",
                "must be in inclusive range [100, 599]",
            ),
            (
                "spec.rules[0].default.http.abort[0].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.rules[0].default.http.delay[1].value",
                "must not be negative when defined",
            ),
            (
                "spec.rules[0].default.http.delay[1].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.rules[0].default.http.responseBandwidth[2].limit",
                "must be in kbps/Mbps/Gbps units",
            ),
            (
                "spec.rules[0].default.http.responseBandwidth[2].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
        ],
    );
}

#[test]
fn kuma_matches_sni_incorrect() {
    assert_errors(
        r#"
targetRef: {kind: Mesh}
rules:
  - matches:
      - sni:
          type: Prefix
          value: sni.extsvc.default.zone-1.aws-aurora.8443
    default:
      http:
      - responseBandwidth:
          limit: 1000Mbps
          percentage: 50
"#,
        &[(
            "spec.rules[0].matches[0].sni.type",
            "unrecognized type \"Prefix\", supported values are: Exact",
        )],
    );
}

#[test]
fn kuma_matches_spiffe_id_incorrect() {
    assert_errors(
        r#"
targetRef: {kind: Mesh}
rules:
  - matches:
      - spiffeID:
          type: Exact
          value: not-valid
    default:
      http:
      - responseBandwidth:
          limit: 1000Mbps
"#,
        &[(
            "spec.rules[0].matches[0].spiffeID",
            "must be a valid Spiffe ID: scheme is missing or invalid",
        )],
    );
}

#[test]
fn kuma_empty_values() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: backend}
from:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      http:
      - abort: {}
      - delay: {}
      - responseBandwidth:
          limit: 1000
"#,
        &[
            (
                "spec.from[0].default.http.abort[0].httpStatus",
                "must be in inclusive range [100, 599]",
            ),
            (
                "spec.from[0].default.http.responseBandwidth[2].limit",
                "must be in kbps/Mbps/Gbps units",
            ),
        ],
    );
}

#[test]
fn kuma_section_name_with_outbound_policy() {
    assert_errors(
        r#"
targetRef:
  kind: Dataplane
  sectionName: test
to:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      http:
      - abort: {}
      - delay: {}
      - responseBandwidth:
          limit: 1000
"#,
        &[
            (
                "spec.targetRef.sectionName",
                "can only be used with inbound policies",
            ),
            ("spec.to", "must not be defined"),
        ],
    );
}

#[test]
fn kuma_incorrect_value_in_percentage() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: backend}
from:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      http:
      - responseBandwidth:
          limit: 1000
          percentage: "xyz"
"#,
        &[
            (
                "spec.from[0].default.http.responseBandwidth[0].limit",
                "must be in kbps/Mbps/Gbps units",
            ),
            (
                "spec.from[0].default.http.responseBandwidth[0].percentage",
                "string must be a valid number",
            ),
        ],
    );
}

#[test]
fn kuma_mesh_gateway_and_target_refs() {
    assert_errors(
        r#"
targetRef: {kind: MeshGateway, name: edge}
to:
  - targetRef: {kind: Mesh}
    default:
      http:
      - abort: {httpStatus: 503, percentage: 50}
  - targetRef: {kind: MeshService, name: backend}
    default:
      http:
      - abort: {httpStatus: 503, percentage: 50}
from:
  - targetRef: {kind: Mesh}
    default:
      http:
      - abort: {httpStatus: 503, percentage: 50}
"#,
        &[
            (
                "spec.from",
                "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to",
            ),
            (
                "spec.to[1].targetRef.kind",
                "value 'MeshService' is not supported",
            ),
        ],
    );
}

// ---- What this port adds ----

#[test]
fn only_system_policies_target_gateways() {
    let gateway = body::<MeshFaultInjectionSpec>(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n  - targetRef: {kind: Mesh}\n    default: {http: []}\n",
    );
    assert!(validate_with_role(&gateway, &PolicyRole::System).is_empty());
    for role in [
        PolicyRole::Producer,
        PolicyRole::Consumer,
        PolicyRole::WorkloadOwner,
    ] {
        assert_eq!(
            violations(validate_with_role(&gateway, &role)),
            pairs(&[(
                "spec.targetRef.kind",
                "value 'MeshGateway' is not supported"
            )]),
            "{role:?}"
        );
    }
    // The registry reads the role from the labels.
    let mut meta = Meta::default();
    meta.labels
        .insert("kuma.io/policy-role".into(), "consumer".into());
    assert_eq!(ResourceBody::validate(&gateway, &meta).violations.len(), 1);
    assert!(ResourceBody::validate(&gateway, &Meta::default()).is_empty());
}

#[test]
fn from_and_to_follow_the_scope() {
    // No targetRef is the whole mesh, gateways included: `from` is refused, `to` allowed.
    assert_errors(
        "from:\n  - targetRef: {kind: Mesh}\n    default: {http: []}\n",
        &[(
            "spec.from",
            "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to",
        )],
    );
    assert_valid("to:\n  - targetRef: {kind: Mesh}\n    default: {http: []}\n");
    // Sidecars only: `from` is allowed, `to` refused.
    assert_valid(
        "targetRef: {kind: Mesh, proxyTypes: [Sidecar]}\nfrom:\n  - targetRef: {kind: MeshSubset, tags: {version: v1}}\n    default: {http: []}\n",
    );
    assert_errors(
        "targetRef: {kind: MeshSubset, tags: {a: b}, proxyTypes: [Sidecar]}\nto:\n  - targetRef: {kind: Mesh}\n",
        &[("spec.to", "must not be defined")],
    );
    // Inbound traffic of a gateway scope through `rules` is fine.
    assert_valid("rules:\n  - default: {http: []}\n");
    // `from` kinds, and missing target references.
    assert_errors(
        "targetRef: {kind: Dataplane, labels: {app: web}}\nfrom:\n  - targetRef: {kind: Dataplane, name: x}\n  - default: {}\n",
        &[
            (
                "spec.from[0].targetRef.kind",
                "value 'Dataplane' is not supported",
            ),
            ("spec.from[1].targetRef.kind", "must be defined"),
        ],
    );
    assert_errors(
        "to:\n  - {}\n",
        &[("spec.to[0].targetRef.kind", "must be defined")],
    );
}

#[test]
fn rules_exclude_from() {
    assert_errors(
        "targetRef: {kind: Mesh, proxyTypes: [Sidecar]}\nfrom:\n  - targetRef: {kind: Mesh}\nrules:\n  - default: {http: []}\n",
        &[("spec", "field 'from' must be empty when 'rules' is defined")],
    );
}

#[test]
fn every_fault_is_checked_in_place() {
    assert_errors(
        r#"
targetRef: {kind: Mesh}
rules:
  - matches: [{sni: {type: Exact, value: Not_A_Host}}, {spiffeID: {type: Exact, value: "spiffe://a/b"}}]
    default:
      http:
        - responseBandwidth: {percentage: -1}
        - abort: {httpStatus: 99, percentage: "100.5"}
          delay: {value: 0s, percentage: "1e3"}
          responseBandwidth: {limit: 5 Gbps, percentage: "100"}
        - abort: {httpStatus: 599, percentage: "0"}
          delay: {percentage: 100}
        - abort: {httpStatus: 600}
"#,
        &[
            (
                "spec.rules[0].matches[0].sni.value",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ),
            (
                "spec.rules[0].default.http.responseBandwidth[0].limit",
                "must be defined",
            ),
            (
                "spec.rules[0].default.http.responseBandwidth[0].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.rules[0].default.http.abort[1].httpStatus",
                "must be in inclusive range [100, 599]",
            ),
            (
                "spec.rules[0].default.http.abort[1].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.rules[0].default.http.delay[1].percentage",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.rules[0].default.http.abort[3].httpStatus",
                "must be in inclusive range [100, 599]",
            ),
        ],
    );
}

#[test]
fn warnings_follow_kuma() {
    let w = |yaml: &str| warnings(&body::<MeshFaultInjectionSpec>(yaml));
    assert_eq!(
        w("targetRef: {kind: MeshService, name: web}\nfrom:\n  - targetRef: {kind: Mesh}\n"),
        [
            "'from' field is deprecated, use 'rules' with SPIFFE-based 'matches' instead",
            "MeshService value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
        ]
    );
    assert!(w("targetRef: {kind: Mesh}\nrules:\n  - default: {http: []}\nfrom: []\n").is_empty());
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            "rules:\n  - default: {http: [{delay: {value: 1d}}]}\n",
            "rules[0].default.http[0].delay.value",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            "rules:\n  - default: {http: [{abort: {httpStatus: 5000000000}}]}\n",
            "rules[0].default.http[0].abort.httpStatus",
            "invalid value",
        ),
        (
            "rules:\n  - default: {http: [{abort: {percentage: 1.5}}]}\n",
            "rules[0].default.http[0].abort.percentage",
            "invalid type",
        ),
        (
            "rules:\n  - default: {http: [{responseBandwidth: {limit: 1.5}}]}\n",
            "rules[0].default.http[0].responseBandwidth.limit",
            "invalid type",
        ),
        (
            "rules:\n  - default: {tcp: []}\n",
            "rules[0].default.tcp",
            "unknown field `tcp`",
        ),
    ] {
        let (got_path, got_message) = parse::<MeshFaultInjectionSpec>(yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshFaultInjectionSpec>(
        r#"
targetRef: {kind: Mesh, proxyTypes: [Gateway]}
to:
  - targetRef: {kind: Mesh}
    default:
      http:
        - abort: {httpStatus: 503, percentage: "50.5"}
          delay: {value: 1m30s, percentage: 5}
          responseBandwidth: {limit: 100Mbps, percentage: 0}
  - targetRef: {kind: Mesh}
rules:
  - matches: [{spiffeID: {type: Prefix, value: "spiffe://a/"}}]
    default: {http: []}
"#,
    );
    // A bare integer limit is kept as its text.
    let spec = body::<MeshFaultInjectionSpec>(
        "rules:\n  - default: {http: [{responseBandwidth: {limit: 1000}}]}\n",
    );
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json["rules"][0]["default"]["http"][0]["responseBandwidth"]["limit"],
        "1000"
    );
    assert_eq!(
        serde_json::to_string(&MeshFaultInjectionSpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn descriptor_is_kumas() {
    let d = ResourceType::MeshFaultInjection.descriptor();
    assert_eq!(
        (
            d.name,
            d.plural,
            d.cli_singular,
            d.cli_plural,
            d.short_names
        ),
        (
            "MeshFaultInjection",
            "meshfaultinjections",
            "meshfaultinjection",
            "meshfaultinjections",
            &["mfi"][..]
        )
    );
    assert_eq!(d.policy_order, Some(800));
    assert_eq!(
        ResourceType::from_cli("mfi"),
        Some(ResourceType::MeshFaultInjection)
    );
}
