//! Kuma 2.14's `meshratelimit/api/v1alpha1/validator_test.go`, every case (8 accepted, 15
//! refused with exactly Kuma's violations, in Kuma's order), then what this port adds: the
//! policy role, parsing, round trips and warnings.

use super::*;
use crate::policies::common::PolicyRole;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshRateLimitSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// A policy for `web-frontend` with one `from` entry (`kind: Mesh`) and the given `default`.
fn from_mesh(default: &str) -> String {
    format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nfrom:\n  - targetRef: {{kind: Mesh}}\n    default: {default}\n"
    )
}

/// `from` by MeshService `backend`, which Kuma refuses, with the given `local`.
fn from_backend(local: &str) -> String {
    format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nfrom:\n  - targetRef: {{kind: MeshService, name: backend}}\n    default: {{local: {local}}}\n"
    )
}

const HTTP_AND_TCP: &str = "{local: {http: {requestRate: {num: 100, interval: 10s}}, tcp: {connectionRate: {num: 100, interval: 100ms}}}}";

const FROM_GATEWAY_SCOPE: &str = "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to";

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_full_example() {
    assert_valid(
        r#"
targetRef:
  kind: MeshService
  name: web-frontend
from:
  - targetRef:
      kind: Mesh
    default:
      local:
        http:
          disabled: false
          requestRate:
            num: 100
            interval: 10s
          onRateLimit:
            status: 123
            headers:
              add:
              - name: "test"
                value: "123"
        tcp:
          disabled: false
          connectionRate:
            num: 100
            interval: 100ms"#,
    );
}

#[test]
fn kuma_full_example_only_http() {
    assert_valid(&from_mesh(
        "{local: {http: {requestRate: {num: 100, interval: 10s}, onRateLimit: {status: 123, headers: {set: [{name: test, value: '123'}]}}}}}",
    ));
}

#[test]
fn kuma_full_example_only_tcp() {
    assert_valid(&from_mesh(
        "{local: {tcp: {disabled: false, connectionRate: {num: 100, interval: 100ms}}}}",
    ));
}

#[test]
fn kuma_minimal_example() {
    assert_valid(&from_mesh(HTTP_AND_TCP));
}

#[test]
fn kuma_disable_rate_limit() {
    assert_valid(&from_mesh(
        "{local: {http: {disabled: true}, tcp: {disabled: true}}}",
    ));
}

#[test]
fn kuma_gateway_example() {
    assert_valid(&format!(
        "targetRef: {{kind: MeshGateway, name: edge}}\nto:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
    ));
}

#[test]
fn kuma_gateway_example_targeting_mesh_http_route() {
    assert_valid(&format!(
        "targetRef: {{kind: MeshHTTPRoute, name: http-route-1}}\nto:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
    ));
}

#[test]
fn kuma_rules_example_with_sni_match() {
    assert_valid(
        r#"
targetRef:
  kind: Dataplane
rules:
  - matches:
      - sni:
          type: Exact
          value: backend.mesh
    default:
      local:
        http:
          requestRate:
            num: 100
            interval: 10s"#,
    );
}

// ---- Kuma: "should validate all fields and return as much individual errors as possible" ----

#[test]
fn kuma_unsupported_kind_in_from_selector() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nfrom:\n  - targetRef: {kind: MeshGatewayRoute}\n    default: {local: {http: {requestRate: {num: 10, interval: 10s}}}}\n",
        &[(
            "spec.from[0].targetRef.kind",
            "value 'MeshGatewayRoute' is not supported",
        )],
    );
}

#[test]
fn kuma_not_allow_invalid_values() {
    assert_errors(
        &from_mesh(
            "{local: {http: {requestRate: {num: 0, interval: 49ms}}, tcp: {connectionRate: {num: 0, interval: 49ms}}}}",
        ),
        &[
            (
                "spec.from[0].default.local.http.requestRate.num",
                "must be greater than 0",
            ),
            (
                "spec.from[0].default.local.http.requestRate.interval",
                "must be greater than: 50ms",
            ),
            (
                "spec.from[0].default.local.tcp.connectionRate.num",
                "must be greater than 0",
            ),
            (
                "spec.from[0].default.local.tcp.connectionRate.interval",
                "must be greater than: 50ms",
            ),
        ],
    );
}

const FROM_MESH_SERVICE: [(&str, &str); 1] = [(
    "spec.from[0].targetRef.kind",
    "value 'MeshService' is not supported",
)];

#[test]
fn kuma_not_allow_from_to_be_mesh_service_for_tcp() {
    assert_errors(
        &from_backend("{tcp: {connectionRate: {num: 100, interval: 500ms}}}"),
        &FROM_MESH_SERVICE,
    );
}

#[test]
fn kuma_not_allow_from_to_be_mesh_service_when_http_and_tcp_set() {
    assert_errors(
        &from_backend(
            "{http: {requestRate: {num: 100, interval: 500ms}}, tcp: {connectionRate: {num: 100, interval: 500ms}}}",
        ),
        &FROM_MESH_SERVICE,
    );
}

#[test]
fn kuma_not_allow_from_to_be_mesh_service() {
    assert_errors(
        &from_backend("{http: {requestRate: {num: 100, interval: 500ms}}}"),
        &FROM_MESH_SERVICE,
    );
}

#[test]
fn kuma_empty_default() {
    assert_errors(
        &from_mesh("{}"),
        &[("spec.from[0].default.local", "must be defined")],
    );
}

#[test]
fn kuma_section_name_with_outbound_policy() {
    assert_errors(
        "targetRef:\n  kind: Dataplane\n  sectionName: test\nto:\n- targetRef:\n    kind: Mesh\n  default: {}\n",
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
fn kuma_neither_tcp_or_http_defined() {
    assert_errors(
        &from_mesh("{local: {}}"),
        &[(
            "spec.from[0].default.local",
            "must have at least one defined: tcp, http",
        )],
    );
}

#[test]
fn kuma_empty_tcp() {
    assert_errors(
        &from_mesh("{local: {tcp: {}}}"),
        &[(
            "spec.from[0].default.local.tcp",
            "must have at least one defined: disabled, connectionRate",
        )],
    );
}

#[test]
fn kuma_empty_http() {
    assert_errors(
        &from_mesh("{local: {http: {}}}"),
        &[(
            "spec.from[0].default.local.http",
            "must have at least one defined: disabled, requestRate, onRateLimit",
        )],
    );
}

#[test]
fn kuma_invalid_gateway_example() {
    assert_errors(
        &format!(
            "targetRef: {{kind: MeshGateway, name: edge}}\nfrom:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
        ),
        &[("spec.from", FROM_GATEWAY_SCOPE)],
    );
}

#[test]
fn kuma_mixing_from_with_rules() {
    assert_errors(
        r#"
targetRef:
  kind: Mesh
from:
  - targetRef:
      kind: Mesh
    default:
      local:
        http:
          requestRate:
            num: 100
            interval: 10s
rules:
  - default:
      local:
        http:
          requestRate:
            num: 100
            interval: 10s"#,
        &[
            (
                "spec",
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            ),
            ("spec.rules", "must not be defined"),
            ("spec.from", FROM_GATEWAY_SCOPE),
        ],
    );
}

#[test]
fn kuma_invalid_gateway_example_when_targeting_mesh_http_route() {
    assert_errors(
        &format!(
            "targetRef: {{kind: MeshHTTPRoute, name: http-route-1}}\nfrom:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
        ),
        &[("spec.from", FROM_GATEWAY_SCOPE)],
    );
}

#[test]
fn kuma_spiffe_id_match_with_tcp_rule() {
    assert_errors(
        r#"
targetRef:
  kind: Dataplane
rules:
  - matches:
      - spiffeID:
          type: Exact
          value: spiffe://default/client
    default:
      local:
        tcp:
          connectionRate:
            num: 100
            interval: 100ms"#,
        &[(
            "spec.rules[0].default.local.tcp",
            "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
        )],
    );
}

#[test]
fn kuma_spiffe_id_match_with_unsupported_type() {
    assert_errors(
        r#"
targetRef:
  kind: Dataplane
rules:
  - matches:
      - spiffeID:
          type: Unknown
          value: spiffe://default/client
    default:
      local:
        http:
          requestRate:
            num: 100
            interval: 10s"#,
        &[(
            "spec.rules[0].matches[0].spiffeID.type",
            "unrecognized type \"Unknown\", supported values are: Exact, Prefix",
        )],
    );
}

// ---- What this port adds ----

#[test]
fn only_system_policies_target_gateways_and_routes() {
    for top in [
        "{kind: MeshGateway, name: edge}",
        "{kind: MeshHTTPRoute, name: route}",
    ] {
        let spec = body::<MeshRateLimitSpec>(&format!(
            "targetRef: {top}\nto:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
        ));
        assert!(validate_with_role(&spec, &PolicyRole::System).is_empty());
        let kind = spec
            .target_ref
            .as_ref()
            .and_then(|r| r.kind.clone())
            .unwrap();
        for role in [
            PolicyRole::Producer,
            PolicyRole::Consumer,
            PolicyRole::WorkloadOwner,
        ] {
            assert_eq!(
                violations(validate_with_role(&spec, &role)),
                vec![(
                    "spec.targetRef.kind".to_string(),
                    format!("value '{kind}' is not supported")
                )],
                "{role:?}"
            );
        }
        let mut meta = Meta::default();
        meta.labels
            .insert("kuma.io/policy-role".into(), "producer".into());
        assert_eq!(ResourceBody::validate(&spec, &meta).violations.len(), 1);
    }
}

#[test]
fn rules_are_checked_in_full() {
    assert_errors(
        r#"
targetRef: {kind: Mesh, proxyTypes: [Sidecar]}
rules:
  - matches: [{}, {spiffeID: {value: "spiffe://a/b"}}, {sni: {type: Exact, value: backend.mesh}}]
    default:
      local:
        http: {onRateLimit: {status: 0}}
        tcp: {connectionRate: {interval: 1s}}
  - {}
"#,
        &[
            (
                "spec.rules[0].matches[0]",
                "must specify at least one of 'spiffeID' or 'sni'",
            ),
            ("spec.rules[0].matches[1].spiffeID.type", "must be set"),
            (
                "spec.rules[0].default.local.tcp",
                "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
            ),
            (
                "spec.rules[0].default.local.http.onRateLimit.status",
                "must be greater than 0",
            ),
            (
                "spec.rules[0].default.local.tcp.connectionRate.num",
                "must be greater than 0",
            ),
            ("spec.rules[1].default.local", "must be defined"),
        ],
    );
    // Without a targetRef the scope includes gateways: no rules.
    assert_errors(
        "rules:\n  - default: {local: {http: {disabled: true}}}\n",
        &[("spec.rules", "must not be defined")],
    );
    // A rate without interval is a zero interval.
    assert_errors(
        "targetRef: {kind: Dataplane, labels: {app: web}}\nrules:\n  - default: {local: {http: {requestRate: {num: 1}}}}\n",
        &[(
            "spec.rules[0].default.local.http.requestRate.interval",
            "must be greater than: 50ms",
        )],
    );
    assert_valid(
        "targetRef: {kind: Dataplane, labels: {app: web}}\nrules:\n  - default: {local: {http: {requestRate: {num: 1, interval: 51ms}}}}\n",
    );
}

#[test]
fn to_is_for_gateway_scopes() {
    assert_valid(&format!(
        "to:\n  - targetRef: {{kind: Mesh}}\n    default: {HTTP_AND_TCP}\n"
    ));
    assert_errors(
        "to:\n  - targetRef: {kind: MeshService, name: backend}\n    default: {local: {}}\n",
        &[
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshService' is not supported",
            ),
            (
                "spec.to[0].default.local",
                "must have at least one defined: tcp, http",
            ),
        ],
    );
    assert_errors(
        "targetRef: {kind: MeshService, name: web}\nto:\n  - targetRef: {kind: Mesh}\n",
        &[("spec.to", "must not be defined")],
    );
}

#[test]
fn warnings_follow_kuma() {
    let w = |yaml: &str| warnings(&body::<MeshRateLimitSpec>(yaml));
    assert_eq!(
        w(&from_mesh("{local: {http: {onRateLimit: {status: 399}}}}")),
        [
            "'from' field is deprecated, use 'rules' instead",
            "'spec.from[0].default.local.http.requestRate.status' must be 400 or higher. Please update your configuration.",
            "MeshService value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
        ]
    );
    assert_eq!(
        w(
            "rules:\n  - default: {local: {http: {onRateLimit: {status: 429}}}}\n  - default: {local: {http: {onRateLimit: {status: 200}}}}\nto:\n  - default: {local: {http: {onRateLimit: {status: 100}}}}\n"
        ),
        [
            "'spec.rules[1].default.local.http.requestRate.status' must be 400 or higher. Please update your configuration.",
            "'spec.to[0].default.local.http.requestRate.status' must be 400 or higher. Please update your configuration.",
        ]
    );
    assert!(
        w(&format!(
            "targetRef: {{kind: Mesh}}\nrules:\n  - default: {HTTP_AND_TCP}\n"
        ))
        .is_empty()
    );
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            "rules:\n  - default: {local: {http: {requestRate: {num: 1, interval: 1d}}}}\n",
            "rules[0].default.local.http.requestRate.interval",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            "rules:\n  - default: {local: {tcp: {connectionRate: {num: -1}}}}\n",
            "rules[0].default.local.tcp.connectionRate.num",
            "invalid value",
        ),
        (
            "rules:\n  - default: {local: {http: {onRateLimit: {headers: {remove: [x]}}}}}\n",
            "rules[0].default.local.http.onRateLimit.headers.remove",
            "unknown field `remove`",
        ),
        (
            "rules:\n  - default: {global: {}}\n",
            "rules[0].default.global",
            "unknown field `global`",
        ),
    ] {
        let (got_path, got_message) = parse::<MeshRateLimitSpec>(yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshRateLimitSpec>(
        r#"
targetRef: {kind: Dataplane, labels: {app: web}, sectionName: http}
rules:
  - matches: [{spiffeID: {type: Prefix, value: "spiffe://a/"}}, {sni: {type: Exact, value: a.b}}]
    default:
      local:
        http:
          disabled: false
          requestRate: {num: 100, interval: 1m30s}
          onRateLimit:
            status: 429
            headers:
              set: [{name: x-limited, value: "true"}]
              add: [{name: retry-after, value: "1"}]
        tcp: {disabled: true, connectionRate: {num: 5, interval: 1s}}
  - default: {}
"#,
    );
    assert_eq!(
        serde_json::to_string(&MeshRateLimitSpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn descriptor_is_kumas() {
    let d = ResourceType::MeshRateLimit.descriptor();
    assert_eq!(
        (
            d.name,
            d.plural,
            d.cli_singular,
            d.cli_plural,
            d.short_names
        ),
        (
            "MeshRateLimit",
            "meshratelimits",
            "meshratelimit",
            "meshratelimits",
            &["mrl"][..]
        )
    );
    assert_eq!(d.policy_order, Some(900));
    assert_eq!(
        ResourceType::from_cli("mrl"),
        Some(ResourceType::MeshRateLimit)
    );
}
