//! Kuma 2.14's `meshcircuitbreaker/api/v1alpha1/validator_test.go`, every case (7 accepted,
//! 14 refused with exactly Kuma's violations), then what this port adds: `rules`, parsing,
//! round trips, warnings and the default policy.

use super::*;
use crate::policies::common::DefaultPolicyEnv;
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshCircuitBreakerSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// A policy for `web-frontend` with one `to` entry (`web-backend`) and the given `default`.
fn to_backend(default: &str) -> String {
    format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nto:\n  - targetRef: {{kind: MeshService, name: web-backend}}\n    default: {default}\n"
    )
}

/// Where a `default` of [`full_conf`] carries `healthyPanicThreshold`.
#[derive(Clone, Copy)]
enum Panic {
    Absent,
    /// In `outlierDetection`, where the field is.
    Set(u32),
    /// In `outlierDetection.detectors`, where Kuma's full example writes it.
    InDetectors(u32),
}

/// A complete `default` (every field), with values to fill in.
#[allow(clippy::too_many_arguments)]
fn full_conf(
    limits: [u32; 5],
    interval: &str,
    base_ejection: &str,
    max_ejection: u32,
    consecutive: [u32; 3],
    success_rate: (u32, u32, &str),
    failure_percentage: (u32, u32, u32),
    panic: Panic,
) -> String {
    let [c, pools, pending, retries, requests] = limits;
    let [total, gateway, local] = consecutive;
    let (sr_hosts, sr_volume, sr_factor) = success_rate;
    let (fp_volume, fp_hosts, fp_threshold) = failure_percentage;
    let (in_detectors, in_outlier) = match panic {
        Panic::Absent => (String::new(), String::new()),
        Panic::Set(t) => (String::new(), format!(", healthyPanicThreshold: {t}")),
        Panic::InDetectors(t) => (format!(", healthyPanicThreshold: {t}"), String::new()),
    };
    format!(
        "{{connectionLimits: {{maxConnections: {c}, maxConnectionPools: {pools}, maxPendingRequests: {pending}, maxRetries: {retries}, maxRequests: {requests}}}, \
outlierDetection: {{disabled: false, interval: {interval}, baseEjectionTime: {base_ejection}, maxEjectionPercent: {max_ejection}, splitExternalAndLocalErrors: true, \
detectors: {{totalFailures: {{consecutive: {total}}}, gatewayFailures: {{consecutive: {gateway}}}, localOriginFailures: {{consecutive: {local}}}, \
successRate: {{minimumHosts: {sr_hosts}, requestVolume: {sr_volume}, standardDeviationFactor: {sr_factor}}}, \
failurePercentage: {{requestVolume: {fp_volume}, minimumHosts: {fp_hosts}, threshold: {fp_threshold}}}{in_detectors}}}{in_outlier}}}}}"
    )
}

/// Kuma's full example: `from` Mesh and three `to` entries, every field set.
fn kuma_full_example_doc(panic: fn(u32) -> Panic) -> String {
    let from = full_conf(
        [12, 12, 92, 8, 128],
        "11s",
        "38s",
        22,
        [10, 10, 10],
        (5, 10, "\"1.9\""),
        (10, 5, 31),
        panic(60),
    );
    let to = [
        (
            "{kind: MeshService, name: web-backend}",
            full_conf(
                [2, 2, 2, 1, 32],
                "5s",
                "30s",
                20,
                [10, 10, 10],
                (5, 10, "1900"),
                (10, 5, 85),
                panic(70),
            ),
        ),
        (
            "{kind: Mesh}",
            full_conf(
                [2, 2, 2, 1, 32],
                "5s",
                "30s",
                20,
                [10, 10, 10],
                (5, 10, "1900"),
                (10, 5, 85),
                panic(80),
            ),
        ),
        (
            "{kind: MeshService, name: web-backend}",
            full_conf(
                [22, 22, 32, 2, 64],
                "10s",
                "15s",
                43,
                [20, 30, 40],
                (3, 20, "1300"),
                (4, 2, 75),
                panic(90),
            ),
        ),
    ];
    let mut yaml = format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nfrom:\n  - targetRef: {{kind: Mesh}}\n    default: {from}\nto:\n"
    );
    for (target, conf) in to {
        yaml.push_str(&format!("  - targetRef: {target}\n    default: {conf}\n"));
    }
    yaml
}

// ---- Kuma: "should pass validation" ----

/// Kuma's full example writes `healthyPanicThreshold` inside `detectors`, where the field
/// does not exist: Kuma's test reader ignores unknown fields, Aerie refuses them with the
/// path. The same document with the threshold where it belongs is accepted.
#[test]
fn kuma_full_example() {
    let (path, message) =
        parse::<MeshCircuitBreakerSpec>(&kuma_full_example_doc(Panic::InDetectors)).unwrap_err();
    assert_eq!(
        path,
        "from[0].default.outlierDetection.detectors.healthyPanicThreshold"
    );
    assert!(
        message.starts_with("unknown field `healthyPanicThreshold`"),
        "{message}"
    );
    assert_valid(&kuma_full_example_doc(Panic::Set));
}

#[test]
fn kuma_only_to() {
    let yaml = format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nto:\n  - targetRef: {{kind: Mesh}}\n    default: {}\n  - targetRef: {{kind: MeshService, name: web-backend}}\n    default: {}\n",
        full_conf(
            [2, 2, 2, 1, 32],
            "5s",
            "30s",
            20,
            [10, 10, 10],
            (5, 10, "1333"),
            (10, 5, 85),
            Panic::Absent
        ),
        full_conf(
            [22, 22, 32, 2, 64],
            "10s",
            "15s",
            43,
            [20, 30, 40],
            (3, 20, "3311"),
            (4, 2, 75),
            Panic::Absent
        ),
    );
    assert_valid(&yaml);
}

#[test]
fn kuma_minimal_example() {
    assert_valid(&to_backend("{connectionLimits: {}}"));
}

#[test]
fn kuma_to_mesh_multi_zone_service() {
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshMultiZoneService, name: web-backend}\n    default: {connectionLimits: {}}\n",
    );
}

#[test]
fn kuma_to_mesh_external_service() {
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshExternalService, name: external}\n    default: {connectionLimits: {}}\n",
    );
}

#[test]
fn kuma_top_level_dataplane_to_mesh_external_service() {
    assert_valid(
        "targetRef: {kind: Dataplane}\nto:\n  - targetRef: {kind: MeshExternalService, name: external}\n    default: {connectionLimits: {}}\n",
    );
}

#[test]
fn kuma_gateway_example() {
    assert_valid(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n  - targetRef: {kind: MeshService, name: web-backend}\n    default: {connectionLimits: {}}\n",
    );
}

// ---- Kuma: "should validate all fields and return as much individual errors as possible" ----

#[test]
fn kuma_neither_from_to_nor_rules() {
    assert_errors(
        "targetRef: {kind: Mesh}\n",
        &[(
            "spec",
            "at least one of 'from', 'to' or 'rules' has to be defined",
        )],
    );
}

#[test]
fn kuma_unsupported_from_kind() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nfrom:\n  - targetRef: {kind: MeshGatewayRoute}\n    default: {connectionLimits: {}}\n",
        &[(
            "spec.from[0].targetRef.kind",
            "value 'MeshGatewayRoute' is not supported",
        )],
    );
}

#[test]
fn kuma_from_with_rules() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nfrom:\n  - targetRef: {kind: Mesh}\n    default: {connectionLimits: {}}\nrules:\n  - default: {connectionLimits: {}}\n",
        &[(
            "spec",
            "fields 'to' and 'from' must be empty when 'rules' is defined",
        )],
    );
}

#[test]
fn kuma_to_with_rules() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nto:\n  - targetRef: {kind: MeshServiceSubset}\n    default: {connectionLimits: {}}\nrules:\n  - default: {connectionLimits: {}}\n",
        &[
            (
                "spec",
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            ),
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshServiceSubset' is not supported",
            ),
        ],
    );
}

#[test]
fn kuma_unsupported_to_kind() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nto:\n  - targetRef: {kind: MeshServiceSubset}\n    default: {connectionLimits: {}}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshServiceSubset' is not supported",
        )],
    );
}

#[test]
fn kuma_section_name_in_an_outbound_policy() {
    assert_errors(
        "targetRef: {kind: Dataplane, sectionName: test}\nto:\n  - targetRef: {kind: MeshServiceSubset}\n    default: {connectionLimits: {}}\n",
        &[
            (
                "spec.targetRef.sectionName",
                "can only be used with inbound policies",
            ),
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshServiceSubset' is not supported",
            ),
        ],
    );
}

#[test]
fn kuma_missing_configuration() {
    assert_errors(
        "targetRef: {kind: MeshService, name: web-frontend}\nto:\n  - targetRef: {kind: MeshService, name: web-backend}\n",
        &[(
            "spec.to[0].default",
            "at least one of: 'connectionLimits' or 'outlierDetection' should be configured",
        )],
    );
}

#[test]
fn kuma_zero_limits() {
    assert_errors(
        &to_backend(
            "{connectionLimits: {maxConnections: 0, maxConnectionPools: 0, maxPendingRequests: 0, maxRetries: 0, maxRequests: 0}}",
        ),
        &[
            (
                "spec.to[0].default.connectionLimits.maxConnections",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.connectionLimits.maxConnectionPools",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.connectionLimits.maxPendingRequests",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.connectionLimits.maxRetries",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.connectionLimits.maxRequests",
                "must be greater than 0",
            ),
        ],
    );
}

#[test]
fn kuma_zero_outlier_detection_numbers() {
    // Zero is fine for `maxEjectionPercent`, `healthyPanicThreshold` and `threshold`.
    assert_errors(
        &to_backend(
            "{outlierDetection: {interval: 0s, baseEjectionTime: 0s, maxEjectionPercent: 0, \
detectors: {totalFailures: {consecutive: 0}, gatewayFailures: {consecutive: 0}, localOriginFailures: {consecutive: 0}, \
successRate: {minimumHosts: 0, requestVolume: 0, standardDeviationFactor: 0}, \
failurePercentage: {requestVolume: 0, minimumHosts: 0, threshold: 0}}, healthyPanicThreshold: 0}}",
        ),
        &[
            (
                "spec.to[0].default.outlierDetection.interval",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.outlierDetection.baseEjectionTime",
                "must be greater than zero when defined",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.totalFailures.consecutive",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.gatewayFailures.consecutive",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.localOriginFailures.consecutive",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.successRate.minimumHosts",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.successRate.requestVolume",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.failurePercentage.minimumHosts",
                "must be greater than 0",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.failurePercentage.requestVolume",
                "must be greater than 0",
            ),
        ],
    );
}

#[test]
fn kuma_percentages_above_100() {
    assert_errors(
        &to_backend(
            "{outlierDetection: {maxEjectionPercent: 101, detectors: {failurePercentage: {threshold: 101}}, healthyPanicThreshold: 101}}",
        ),
        &[
            (
                "spec.to[0].default.outlierDetection.maxEjectionPercent",
                "must be in inclusive range [0, 100]",
            ),
            (
                "spec.to[0].default.outlierDetection.healthyPanicThreshold",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.failurePercentage.threshold",
                "must be in inclusive range [0, 100]",
            ),
        ],
    );
}

#[test]
fn kuma_negative_percentage_and_factor() {
    assert_errors(
        &to_backend(
            "{outlierDetection: {detectors: {successRate: {standardDeviationFactor: -2}}, healthyPanicThreshold: -3}}",
        ),
        &[
            (
                "spec.to[0].default.outlierDetection.healthyPanicThreshold",
                "must be in inclusive range [0.0, 100.0]",
            ),
            (
                "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
                "must be greater than 0",
            ),
        ],
    );
}

#[test]
fn kuma_detectors_missing() {
    assert_errors(
        &to_backend("{outlierDetection: {maxEjectionPercent: 100}}"),
        &[(
            "spec.to[0].default.outlierDetection.detectors",
            "must be defined",
        )],
    );
}

#[test]
fn kuma_detectors_empty() {
    assert_errors(
        &to_backend("{outlierDetection: {maxEjectionPercent: 100, detectors: {}}}"),
        &[(
            "spec.to[0].default.outlierDetection.detectors",
            "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage",
        )],
    );
}

#[test]
fn kuma_standard_deviation_factor_not_a_number() {
    assert_errors(
        &to_backend(
            "{outlierDetection: {detectors: {successRate: {standardDeviationFactor: xyz}}}}",
        ),
        &[(
            "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
            "invalid number",
        )],
    );
}

// ---- Beyond Kuma's table ----

#[test]
fn rules_are_checked_and_reported_under_from() {
    // Kuma reports `rules[i]` problems at `from[i]`; kept for identical messages.
    assert_errors(
        "targetRef: {kind: Dataplane, sectionName: http}\nrules:\n  - default: {connectionLimits: {maxRetries: 0}}\n  - {}\n",
        &[
            (
                "spec.from[0].default.connectionLimits.maxRetries",
                "must be greater than 0",
            ),
            (
                "spec.from[1].default",
                "at least one of: 'connectionLimits' or 'outlierDetection' should be configured",
            ),
        ],
    );
    // `rules` make it an inbound policy: `sectionName` is fine.
    assert_valid(
        "targetRef: {kind: Dataplane, name: dp, sectionName: http}\nrules:\n  - default: {connectionLimits: {}}\n",
    );
    // An empty `rules` list counts as none.
    assert_errors(
        "rules: []\nto: []\nfrom: []\n",
        &[(
            "spec",
            "at least one of 'from', 'to' or 'rules' has to be defined",
        )],
    );
}

#[test]
fn from_and_top_level_target_refs() {
    assert_errors(
        "targetRef: {kind: MeshHTTPRoute, name: r}\nfrom:\n  - default: {connectionLimits: {}}\n  - targetRef: {kind: Mesh, name: x}\n    default: {connectionLimits: {}}\n",
        &[
            (
                "spec.targetRef.kind",
                "value 'MeshHTTPRoute' is not supported",
            ),
            ("spec.from[0].targetRef.kind", "must be defined"),
            (
                "spec.from[1].targetRef.name",
                "using name with kind Mesh is not yet supported",
            ),
        ],
    );
    // Gateway listeners may be selected by tags.
    assert_valid(
        "targetRef: {kind: MeshGateway, name: edge, tags: {port: '80'}}\nto:\n  - targetRef: {kind: Mesh}\n    default: {connectionLimits: {}}\n",
    );
    assert_errors(
        "targetRef: {kind: MeshGateway}\nto:\n  - targetRef: {kind: MeshExternalService}\n    default: {connectionLimits: {}}\n",
        &[
            (
                "spec.targetRef.name",
                "must be set when kind is MeshGateway",
            ),
            (
                "spec.to[0].targetRef",
                "name or labels must be set when kind is MeshExternalService",
            ),
        ],
    );
}

#[test]
fn number_forms() {
    for ok in ["'1.9'", "'0.001'", "1", "'1e3'"] {
        assert_valid(&to_backend(&format!(
            "{{outlierDetection: {{detectors: {{successRate: {{standardDeviationFactor: {ok}}}}}}}}}"
        )));
    }
    for ok in ["0", "100", "'99.5'", "'100.0'", "'0'"] {
        assert_valid(&to_backend(&format!(
            "{{outlierDetection: {{detectors: {{totalFailures: {{}}}}, healthyPanicThreshold: {ok}}}}}"
        )));
    }
    assert_errors(
        &to_backend(
            "{outlierDetection: {detectors: {totalFailures: {}}, healthyPanicThreshold: 'half'}}",
        ),
        &[(
            "spec.to[0].default.outlierDetection.healthyPanicThreshold",
            "string must be a valid number",
        )],
    );
    assert_errors(
        &to_backend(
            "{outlierDetection: {detectors: {totalFailures: {}}, healthyPanicThreshold: '100.01'}}",
        ),
        &[(
            "spec.to[0].default.outlierDetection.healthyPanicThreshold",
            "must be in inclusive range [0.0, 100.0]",
        )],
    );
    assert_errors(
        &to_backend(
            "{outlierDetection: {detectors: {successRate: {standardDeviationFactor: '-0.0'}}}}",
        ),
        &[(
            "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
            "must be greater than 0",
        )],
    );
    // Negative durations parse (as in Go) and are refused by validation.
    assert_errors(
        &to_backend(
            "{outlierDetection: {interval: -1s, baseEjectionTime: 1m, detectors: {totalFailures: {}}}}",
        ),
        &[(
            "spec.to[0].default.outlierDetection.interval",
            "must be greater than zero when defined",
        )],
    );
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            to_backend(
                "{outlierDetection: {detectors: {successRate: {standardDeviationFactor: 1.9}}}}",
            ),
            "to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
            "invalid type: floating point",
        ),
        (
            to_backend("{outlierDetection: {interval: 10}}"),
            "to[0].default.outlierDetection.interval",
            "invalid type: integer",
        ),
        (
            to_backend("{outlierDetection: {interval: 1d}}"),
            "to[0].default.outlierDetection.interval",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            to_backend("{connectionLimits: {maxConnections: -1}}"),
            "to[0].default.connectionLimits.maxConnections",
            "invalid value",
        ),
        (
            "rules:\n  - targetRef: {kind: Mesh}\n".to_string(),
            "rules[0].targetRef",
            "unknown field `targetRef`",
        ),
    ] {
        let (got_path, got_message) = parse::<MeshCircuitBreakerSpec>(&yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshCircuitBreakerSpec>(
        r#"
targetRef: {kind: Dataplane, labels: {app: web}}
to:
  - targetRef: {kind: MeshService, name: backend, namespace: ns, sectionName: http}
    default:
      connectionLimits: {maxConnections: 2, maxConnectionPools: 3, maxPendingRequests: 4, maxRetries: 5, maxRequests: 6}
      outlierDetection:
        disabled: true
        interval: 1m30s
        baseEjectionTime: 0.5s
        maxEjectionPercent: 0
        splitExternalAndLocalErrors: false
        detectors:
          totalFailures: {consecutive: 1}
          gatewayFailures: {}
          localOriginFailures: {consecutive: 3}
          successRate: {minimumHosts: 1, requestVolume: 2, standardDeviationFactor: "1.9"}
          failurePercentage: {minimumHosts: 1, requestVolume: 2, threshold: 0}
        healthyPanicThreshold: 70
  - targetRef: {kind: Mesh}
from:
  - targetRef: {kind: Mesh}
    default: {outlierDetection: {detectors: {successRate: {standardDeviationFactor: 1900}}, healthyPanicThreshold: "99.5"}}
"#,
    );
    assert_round_trip::<MeshCircuitBreakerSpec>(
        "rules:\n  - default: {connectionLimits: {}}\n  - {}\n",
    );
    assert_eq!(
        serde_json::to_string(&MeshCircuitBreakerSpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn deprecations_are_kumas() {
    let spec = body::<MeshCircuitBreakerSpec>(
        "targetRef: {kind: MeshService, name: web}\nfrom:\n  - targetRef: {kind: Mesh}\n    default: {connectionLimits: {}}\n",
    );
    assert_eq!(
        warnings(&spec),
        [
            "'from' field is deprecated, use 'rules' instead",
            "MeshService value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
        ]
    );
    assert!(warnings(&default_spec()).is_empty());
    assert!(
        warnings(&body(
            "rules:\n  - default: {connectionLimits: {}}\nfrom: []\n"
        ))
        .is_empty()
    );
}

#[test]
fn default_policy_is_kumas_and_valid() {
    let spec = default_spec();
    assert!(validate(&spec).is_empty(), "{:?}", validate(&spec));
    let expected = body::<MeshCircuitBreakerSpec>(
        r#"
targetRef: {kind: Mesh}
to:
  - targetRef: {kind: Mesh}
    default:
      connectionLimits: {maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3}
"#,
    );
    assert_eq!(spec, expected);

    let p = default_policy("default", &DefaultPolicyEnv::default());
    assert_eq!(p.name, "mesh-circuit-breaker-all-default");
    assert_eq!(
        p.labels.into_iter().collect::<Vec<_>>(),
        [("kuma.io/mesh".to_string(), "default".to_string())]
    );
    assert_eq!(p.spec, spec);
    let k8s = default_policy(
        "default",
        &DefaultPolicyEnv {
            zone: None,
            kubernetes_system_namespace: Some("kuma-system"),
        },
    );
    assert_eq!(k8s.name, "mesh-circuit-breaker-all-default.kuma-system");
    assert_eq!(
        k8s.labels.get("kuma.io/policy-role").map(String::as_str),
        Some("system")
    );
}
