//! Kuma 2.14's `meshhealthcheck/api/v1alpha1/validator_test.go`, every case (5 accepted, 7
//! refused with exactly Kuma's violations, in Kuma's order), then what this port adds:
//! parsing, round trips, warnings and the descriptor.
//!
//! One Kuma case differs on purpose: Kuma's full example indents `set`/`add` beside
//! `requestHeadersToAdd` instead of under it, which Kuma's lenient YAML reading ignores;
//! here unknown fields are refused, so the test checks that refusal and validates the
//! example with the headers where they belong.

use super::*;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshHealthCheckSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// A policy for `backend` with one `to` entry (`web-backend`) and the given `default`
/// (indented for a block under `default:`).
fn to_web_backend(default: &str) -> String {
    format!(
        "targetRef:\n  kind: MeshService\n  name: backend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:{default}"
    )
}

/// Kuma's full example; `headers_indent` places `set`/`add` (8 spaces: beside
/// `requestHeadersToAdd`, as Kuma writes it; 10: under it).
fn kuma_full_example_doc(headers_indent: usize) -> String {
    let pad = " ".repeat(headers_indent);
    to_web_backend(&format!(
        r#"
      interval: 10s
      timeout: 2s
      unhealthyThreshold: 3
      healthyThreshold: 1
      initialJitter: 5s # optional
      intervalJitter: 6s # optional
      intervalJitterPercent: 10 # optional
      healthyPanicThreshold: 60 # optional, by default 50
      failTrafficOnPanic: true # optional, by default false
      noTrafficInterval: 10s # optional, by default 60s
      eventLogPath: "/tmp/health-check.log" # optional
      alwaysLogHealthCheckFailures: true # optional, by default false
      reuseConnection: false # optional, by default true
      tcp:
        disabled: true
        send: Zm9v
        receive:
        - YmFy
        - YmF6
      http:
        disabled: true
        path: /health
        requestHeadersToAdd:
{pad}set:
{pad}- name: Content-Type
{pad}  value: application/json
{pad}add:
{pad}- name: Accept
{pad}  value: application/json
        expectedStatuses: [200, 201]
      grpc:
        disabled: false
        serviceName: ""
        authority: ""
"#
    ))
}

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_full_example() {
    let (path, message) = parse::<MeshHealthCheckSpec>(&kuma_full_example_doc(8)).unwrap_err();
    assert_eq!(path, "to[0].default.http.set");
    assert!(message.starts_with("unknown field `set`"), "{message}");
    assert_valid(&kuma_full_example_doc(10));
}

#[test]
fn kuma_top_level_mesh_gateway() {
    assert_valid(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n  - targetRef: {kind: MeshService, name: web-backend}\n    default: {interval: 10s, tcp: {disabled: true}}\n",
    );
}

#[test]
fn kuma_to_level_mesh_multi_zone_service() {
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshMultiZoneService, name: web-backend}\n    default: {interval: 10s, tcp: {disabled: true}}\n",
    );
}

#[test]
fn kuma_to_level_mesh_external_service() {
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshExternalService, name: external}\n    default: {interval: 10s, tcp: {disabled: true}}\n",
    );
}

#[test]
fn kuma_top_level_dataplane_to_mesh_external_service() {
    assert_valid(
        "targetRef: {kind: Dataplane}\nto:\n  - targetRef: {kind: MeshExternalService, name: external}\n    default: {interval: 10s, tcp: {disabled: true}}\n",
    );
}

// ---- Kuma: "should validate all fields and return as much individual errors as possible" ----

#[test]
fn kuma_wrong_top_level_target_ref() {
    assert_errors(
        "targetRef:\n  kind: MeshGatewayRoute\n  name: some-mesh-gateway-route\n",
        &[(
            "spec.targetRef.kind",
            "value 'MeshGatewayRoute' is not supported",
        )],
    );
}

#[test]
fn kuma_required_fields_are_missing() {
    assert_errors(
        &to_web_backend(" {}\n"),
        &[(
            "spec.to[0].default",
            "must have at least one defined: http, tcp, grpc",
        )],
    );
}

#[test]
fn kuma_positive_values_are_out_of_range() {
    assert_errors(
        &to_web_backend(
            "\n      interval: 10s\n      timeout: 2s\n      unhealthyThreshold: -3\n      healthyThreshold: 0\n      grpc: {}\n",
        ),
        &[
            (
                "spec.to[0].default.unhealthyThreshold",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.healthyThreshold",
                "must be greater than zero when defined",
            ),
        ],
    );
}

#[test]
fn kuma_positive_durations_are_out_of_range() {
    assert_errors(
        &to_web_backend(
            "\n      interval: -10s\n      timeout: -2s\n      initialJitter: -5s\n      intervalJitter: -6s\n      noTrafficInterval: -10s\n      unhealthyThreshold: 3\n      healthyThreshold: 1\n      grpc: {}\n",
        ),
        &[
            (
                "spec.to[0].default.interval",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.timeout",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.initialJitter",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.intervalJitter",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.noTrafficInterval",
                "must be greater than zero when defined",
            ),
        ],
    );
}

#[test]
fn kuma_all_percentages_are_out_of_percentage_range() {
    assert_errors(
        &to_web_backend(
            "\n      interval: 10s\n      timeout: 2s\n      unhealthyThreshold: 3\n      healthyThreshold: 1\n      intervalJitterPercent: 110\n      healthyPanicThreshold: -10\n      grpc: {}\n",
        ),
        &[
            (
                "spec.to[0].default.intervalJitterPercent",
                "must be in inclusive range [0, 100]",
            ),
            (
                "spec.to[0].default.healthyPanicThreshold",
                "must be in inclusive range [0.0, 100.0]",
            ),
        ],
    );
}

#[test]
fn kuma_path_is_invalid() {
    assert_errors(
        &to_web_backend(
            "\n      interval: 10s\n      timeout: 2s\n      unhealthyThreshold: 3\n      healthyThreshold: 1\n      eventLogPath: \"#not_valid_path\"\n      grpc: {}\n",
        ),
        &[(
            "spec.to[0].default.eventLogPath",
            "must be a valid path when defined",
        )],
    );
}

#[test]
fn kuma_status_codes_out_of_range_in_expected_statuses() {
    assert_errors(
        &to_web_backend(
            "\n      interval: 10s\n      timeout: 2s\n      unhealthyThreshold: 3\n      healthyThreshold: 1\n      http:\n        path: /health\n        expectedStatuses: [99, 600]\n",
        ),
        &[
            (
                "spec.to[0].default.http.expectedStatuses[0]",
                "must be in inclusive range [100, 599]",
            ),
            (
                "spec.to[0].default.http.expectedStatuses[1]",
                "must be in inclusive range [100, 599]",
            ),
        ],
    );
}

// ---- What this port adds ----

#[test]
fn every_problem_is_reported_at_once() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: web, proxyTypes: [Sidecar]}
to:
  - targetRef: {kind: MeshSubset, tags: {a: b}}
    default:
      interval: 0s
      intervalJitterPercent: -1
      healthyPanicThreshold: "half"
      eventLogPath: logs/hc.log
      http: {path: "", expectedStatuses: [200, 0]}
  - default: {tcp: {}}
  - targetRef: {kind: Mesh}
"#,
        &[
            (
                "spec.targetRef.proxyTypes",
                "must not be set with kind MeshService",
            ),
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshSubset' is not supported",
            ),
            (
                "spec.to[0].default.interval",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.intervalJitterPercent",
                "must be in inclusive range [0, 100]",
            ),
            (
                "spec.to[0].default.healthyPanicThreshold",
                "string must be a valid number",
            ),
            (
                "spec.to[0].default.eventLogPath",
                "must be a valid path when defined",
            ),
            ("spec.to[0].default.http.path", "must be defined"),
            (
                "spec.to[0].default.http.expectedStatuses[1]",
                "must be in inclusive range [100, 599]",
            ),
            ("spec.to[1].targetRef.kind", "must be defined"),
            (
                "spec.to[2].default",
                "must have at least one defined: http, tcp, grpc",
            ),
        ],
    );
    // No `to` at all is valid, as in Kuma.
    assert_valid("targetRef: {kind: Mesh}\n");
    // Any role may target a gateway's listeners by tags.
    let gateway = body::<MeshHealthCheckSpec>(
        "targetRef: {kind: MeshGateway, name: edge, tags: {port: '80'}}\nto:\n  - targetRef: {kind: Mesh}\n    default: {grpc: {}}\n",
    );
    let mut meta = Meta::default();
    meta.labels
        .insert("kuma.io/policy-role".into(), "consumer".into());
    assert!(ResourceBody::validate(&gateway, &meta).is_empty());
}

#[test]
fn warnings_follow_kuma() {
    let w = |yaml: &str| warnings(&body::<MeshHealthCheckSpec>(yaml));
    assert_eq!(
        w(
            "targetRef: {kind: MeshServiceSubset, name: web}\nto:\n  - targetRef: {kind: Mesh}\n    default: {healthyPanicThreshold: 10, tcp: {}}\n  - targetRef: {kind: Mesh}\n    default: {tcp: {}}\n"
        ),
        [
            "MeshServiceSubset value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
            "healthyPanicThreshold for 'to[].default' is deprecated. The setting has been moved to MeshCircuitBreaker policy, please use MeshCircuitBreaker policy instead.",
        ]
    );
    assert!(w("to:\n  - targetRef: {kind: Mesh}\n    default: {tcp: {}}\n").is_empty());
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            "to:\n  - default: {interval: 1d}\n",
            "to[0].default.interval",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            "to:\n  - default: {http: {expectedStatuses: ['200']}}\n",
            "to[0].default.http.expectedStatuses[0]",
            "invalid type",
        ),
        (
            "to:\n  - default: {healthyThreshold: 3000000000}\n",
            "to[0].default.healthyThreshold",
            "invalid value",
        ),
        ("from: []\n", "from", "unknown field `from`"),
    ] {
        let (got_path, got_message) = parse::<MeshHealthCheckSpec>(yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshHealthCheckSpec>(&kuma_full_example_doc(10));
    assert_round_trip::<MeshHealthCheckSpec>(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshService, name: api}\n    default: {healthyPanicThreshold: \"99.5\", grpc: {serviceName: api}}\n",
    );
    assert_eq!(
        serde_json::to_string(&MeshHealthCheckSpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn descriptor_is_kumas() {
    let d = ResourceType::MeshHealthCheck.descriptor();
    assert_eq!(
        (
            d.name,
            d.plural,
            d.cli_singular,
            d.cli_plural,
            d.short_names
        ),
        (
            "MeshHealthCheck",
            "meshhealthchecks",
            "meshhealthcheck",
            "meshhealthchecks",
            &["mhc"][..]
        )
    );
    assert_eq!(d.policy_order, Some(1200));
    assert_eq!(
        ResourceType::from_cli("mhc"),
        Some(ResourceType::MeshHealthCheck)
    );
}
