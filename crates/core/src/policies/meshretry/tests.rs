//! Kuma 2.14's `meshretry/api/v1alpha1/validator_test.go`, every case (9 accepted, 17
//! refused with exactly Kuma's violations), then what this port adds: the policy role,
//! parsing, round trips and the default policy.

use super::*;
use crate::policies::common::{DefaultPolicyEnv, PolicyRole};
use crate::policies::test_util::{assert_round_trip, body, pairs, parse, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshRetrySpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// `to` with one `kind: Mesh` entry and the given `default`.
fn to_mesh(default: &str) -> String {
    format!(
        "targetRef: {{kind: Mesh}}\nto:\n  - targetRef: {{kind: Mesh}}\n    default: {default}\n"
    )
}

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_full_example() {
    assert_valid(
        r#"
targetRef: {kind: Mesh}
to:
  - targetRef: {kind: Mesh}
    default:
      tcp: {maxConnectAttempt: 5}
  - targetRef: {kind: MeshService, name: backend}
    default:
      tcp: {maxConnectAttempt: 5}
      http:
        numRetries: 10
        perTryTimeout: 20s
        backOff: {baseInterval: 15s, maxInterval: 20m}
        rateLimitedBackOff:
          resetHeaders:
            - {name: retry-after-http, format: Seconds}
            - {name: x-retry-after-http, format: UnixTimestamp}
          maxInterval: 21m
        retryOn: [5xx, GatewayError, Reset, Retriable4xx, ConnectFailure, EnvoyRatelimited,
          RefusedStream, Http3PostConnectFailure, HttpMethodConnect, HttpMethodDelete,
          HttpMethodGet, HttpMethodHead, HttpMethodOptions, HttpMethodPatch, HttpMethodPost,
          HttpMethodPut, HttpMethodTrace, 500, 409, 503]
        retriableRequestHeaders:
          - {type: PREFIX, name: x-my-header-1, value: kuma-value-}
          - {type: REGULAR_EXPRESSION, name: x-my-header-2, value: ".*"}
          - {type: EXACT, name: x-my-header-3, value: exact-value}
        retriableResponseHeaders:
          - {type: PREFIX, name: x-my-header-4, value: kuma-value-}
          - {type: REGULAR_EXPRESSION, name: x-my-header-5, value: ".*"}
          - {type: EXACT, name: x-my-header-6, value: exact-value}
      grpc:
        numRetries: 10
        perTryTimeout: 20s
        backOff: {baseInterval: 15s, maxInterval: 20m}
        rateLimitedBackOff:
          resetHeaders:
            - {name: retry-after-grpc, format: Seconds}
            - {name: x-retry-after-grpc, format: UnixTimestamp}
          maxInterval: 21m
        retryOn: [Canceled, DeadlineExceeded, Internal, ResourceExhausted, Unavailable]
"#,
    );
}

#[test]
fn kuma_minimal_http_retry() {
    assert_valid(&to_mesh("{http: {numRetries: 5}}"));
}

#[test]
fn kuma_minimal_to_mesh_multi_zone_service() {
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshMultiZoneService, name: web-backend}\n    default: {http: {numRetries: 5}}\n",
    );
}

#[test]
fn kuma_empty_http_arrays() {
    assert_valid(&to_mesh(
        "{http: {numRetries: 5, retryOn: [], retriableRequestHeaders: [], retriableResponseHeaders: []}}",
    ));
}

#[test]
fn kuma_minimal_grpc_retry() {
    assert_valid(&to_mesh("{grpc: {numRetries: 5}}"));
}

#[test]
fn kuma_empty_grpc_arrays() {
    assert_valid(&to_mesh("{grpc: {numRetries: 5, retryOn: []}}"));
}

#[test]
fn kuma_http_retry_on_status_codes() {
    assert_valid(&to_mesh("{http: {retryOn: [500, 409]}}"));
}

#[test]
fn kuma_top_level_mesh_http_route() {
    assert_valid(
        "targetRef: {kind: MeshHTTPRoute, name: route-1}\nto:\n  - targetRef: {kind: Mesh}\n    default: {http: {retryOn: [500, 409]}}\n",
    );
}

#[test]
fn kuma_empty_to_overrides_inherited_rules() {
    assert_valid("targetRef: {kind: Dataplane, labels: {app: web}}\nto: []\n");
}

// ---- Kuma: "should validate all fields and return as much individual errors as possible" ----

#[test]
fn kuma_unsupported_to_kinds() {
    assert_errors(
        r#"
targetRef: {kind: Mesh}
to:
  - targetRef: {kind: MeshSubset, tags: {version: v1}}
    default: {http: {numRetries: 1}}
  - targetRef: {kind: MeshServiceSubset, name: backend, tags: {kuma.io/zone: us-east}}
    default: {grpc: {numRetries: 1}}
"#,
        &[
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshSubset' is not supported",
            ),
            (
                "spec.to[1].targetRef.kind",
                "value 'MeshServiceSubset' is not supported",
            ),
        ],
    );
}

#[test]
fn kuma_empty_default() {
    assert_errors(
        &to_mesh("{}"),
        &[(
            "spec.to[0].default.conf",
            "at least one of the 'tcp', 'http', 'grpc' must be specified",
        )],
    );
}

#[test]
fn kuma_empty_protocol_sections() {
    assert_errors(
        &to_mesh("{tcp: {}, http: {}, grpc: {}}"),
        &[
            ("spec.to[0].default.conf.tcp", "must not be empty"),
            ("spec.to[0].default.conf.http", "must not be empty"),
            ("spec.to[0].default.conf.grpc", "must not be empty"),
        ],
    );
}

#[test]
fn kuma_zero_max_connect_attempt() {
    assert_errors(
        &to_mesh("{tcp: {maxConnectAttempt: 0}}"),
        &[(
            "spec.to[0].default.conf.tcp.maxConnectAttempt",
            "must be greater than 0",
        )],
    );
}

#[test]
fn kuma_empty_http_back_off() {
    assert_errors(
        &to_mesh("{http: {backOff: {}}}"),
        &[("spec.to[0].default.conf.http.backOff", "must not be empty")],
    );
}

#[test]
fn kuma_http_rate_limited_back_off_without_reset_headers() {
    assert_errors(
        &to_mesh("{http: {rateLimitedBackOff: {}}}"),
        &[(
            "spec.to[0].default.conf.http.rateLimitedBackOff.resetHeaders",
            "must be defined",
        )],
    );
}

#[test]
fn kuma_empty_grpc_back_off() {
    assert_errors(
        &to_mesh("{grpc: {backOff: {}}}"),
        &[("spec.to[0].default.conf.grpc.backOff", "must not be empty")],
    );
}

#[test]
fn kuma_grpc_rate_limited_back_off_without_reset_headers() {
    assert_errors(
        &to_mesh("{grpc: {rateLimitedBackOff: {}}}"),
        &[(
            "spec.to[0].default.conf.grpc.rateLimitedBackOff.resetHeaders",
            "must be defined",
        )],
    );
}

#[test]
fn kuma_http_retry_on_unknown_values() {
    assert_errors(
        &to_mesh("{http: {retryOn: [WRONG_VALUE, 5XX, reset, DEADLINE_EXCEEDED, 123, 952]}}"),
        &[
            (
                "spec.to[0].default.conf.http.retryOn[0]",
                "unknown item 'WRONG_VALUE'",
            ),
            (
                "spec.to[0].default.conf.http.retryOn[1]",
                "unknown item '5XX'",
            ),
            (
                "spec.to[0].default.conf.http.retryOn[2]",
                "unknown item 'reset'",
            ),
            (
                "spec.to[0].default.conf.http.retryOn[3]",
                "unknown item 'DEADLINE_EXCEEDED'",
            ),
            (
                "spec.to[0].default.conf.http.retryOn[4]",
                "unknown item '123'",
            ),
            (
                "spec.to[0].default.conf.http.retryOn[5]",
                "unknown item '952'",
            ),
        ],
    );
}

#[test]
fn kuma_grpc_retry_on_unknown_values() {
    assert_errors(
        &to_mesh("{grpc: {retryOn: [500, reset, wrong]}}"),
        &[
            (
                "spec.to[0].default.conf.grpc.retryOn[0]",
                "unknown item '500'",
            ),
            (
                "spec.to[0].default.conf.grpc.retryOn[1]",
                "unknown item 'reset'",
            ),
            (
                "spec.to[0].default.conf.grpc.retryOn[2]",
                "unknown item 'wrong'",
            ),
        ],
    );
}

#[test]
fn kuma_reset_header_without_name() {
    // The format is a valid one: only the empty name is reported.
    assert_errors(
        &to_mesh(
            "{http: {rateLimitedBackOff: {resetHeaders: [{name: '', format: UnixTimestamp}]}}}",
        ),
        &[(
            "spec.to[0].default.conf.http.rateLimitedBackOff.resetHeaders[0].name",
            "must be defined",
        )],
    );
}

#[test]
fn kuma_omit_hosts_with_tags_without_tags() {
    assert_errors(
        &to_mesh("{http: {hostSelection: [{predicate: OmitHostsWithTags}]}}"),
        &[(
            "spec.to[0].default.conf.http.hostSelection[0].tags",
            "must be defined",
        )],
    );
}

#[test]
fn kuma_omit_previous_priorities_with_zero_update_frequency() {
    assert_errors(
        &to_mesh(
            "{http: {hostSelection: [{predicate: OmitPreviousPriorities, updateFrequency: 0}]}}",
        ),
        &[(
            "spec.to[0].default.conf.http.hostSelection[0].updateFrequency",
            "must be defined and greater than zero",
        )],
    );
}

#[test]
fn kuma_unknown_predicate() {
    assert_errors(
        &to_mesh(
            "{http: {hostSelection: [{predicate: OmitPreviousHosts}, {predicate: IncorrectPredicateType}]}}",
        ),
        &[(
            "spec.to[0].default.conf.http.hostSelection[1].predicate",
            "unknown predicate type 'IncorrectPredicateType'",
        )],
    );
}

#[test]
fn kuma_omit_previous_priorities_twice() {
    assert_errors(
        &to_mesh(
            "{http: {hostSelection: [{predicate: OmitPreviousPriorities, updateFrequency: 3}, {predicate: OmitPreviousHosts}, {predicate: OmitPreviousPriorities, updateFrequency: 1}]}}",
        ),
        &[(
            "spec.to[0].default.conf.http.hostSelection[2].predicate",
            "OmitPreviousPriorities must only be specified once",
        )],
    );
}

#[test]
fn kuma_top_level_mesh_gateway_limits_to_kinds() {
    assert_errors(
        "targetRef: {kind: MeshGateway, name: gateway-1}\nto:\n  - targetRef: {kind: MeshService, name: web-backend}\n    default: {tcp: {maxConnectAttempt: 5}}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshService' is not supported",
        )],
    );
}

#[test]
fn kuma_top_level_mesh_http_route_limits_to_kinds() {
    assert_errors(
        "targetRef: {kind: MeshHTTPRoute, name: route-1}\nto:\n  - targetRef: {kind: MeshService, name: web-backend}\n    default: {http: {retryOn: [5xx]}}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshService' is not supported",
        )],
    );
}

// ---- Beyond Kuma's table ----

#[test]
fn only_system_policies_target_gateways_and_routes() {
    let gateway = body::<MeshRetrySpec>(
        "targetRef: {kind: MeshGateway, name: edge, tags: {port: '8080'}}\nto:\n  - targetRef: {kind: Mesh}\n    default: {tcp: {maxConnectAttempt: 5}}\n",
    );
    // System (the default, listener tags allowed): fine.
    assert!(validate(&gateway).is_empty());
    assert!(validate_with_role(&gateway, &PolicyRole::System).is_empty());
    for role in [
        PolicyRole::Producer,
        PolicyRole::Consumer,
        PolicyRole::WorkloadOwner,
        PolicyRole::Other("x".into()),
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
    let route = body::<MeshRetrySpec>("targetRef: {kind: MeshHTTPRoute, name: r}\n");
    assert_eq!(
        violations(validate_with_role(&route, &PolicyRole::Consumer)),
        pairs(&[(
            "spec.targetRef.kind",
            "value 'MeshHTTPRoute' is not supported"
        )])
    );
}

#[test]
fn target_refs_are_checked_in_full() {
    assert_errors(
        "targetRef: {kind: Dataplane, sectionName: http}\nto:\n  - default: {tcp: {maxConnectAttempt: 1}}\n  - targetRef: {kind: MeshHTTPRoute}\n    default: {tcp: {maxConnectAttempt: 1}}\n  - targetRef: {kind: MeshExternalService, name: Ext}\n    default: {tcp: {maxConnectAttempt: 1}}\n",
        &[
            (
                "spec.targetRef.sectionName",
                "can only be used with inbound policies",
            ),
            ("spec.to[0].targetRef.kind", "must be defined"),
            (
                "spec.to[1].targetRef",
                "name or labels must be set when kind is MeshHTTPRoute",
            ),
            (
                "spec.to[2].targetRef.name",
                "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'.",
            ),
        ],
    );
    // Without a top-level targetRef the `to` kinds are those of `kind: Mesh`.
    assert_valid(
        "to:\n  - targetRef: {kind: MeshHTTPRoute, name: r}\n    default: {tcp: {maxConnectAttempt: 1}}\n",
    );
    assert_valid("{}");
}

#[test]
fn every_problem_is_reported_at_once() {
    assert_errors(
        r#"
to:
  - targetRef: {kind: MeshSubset}
  - targetRef: {kind: Mesh}
    default:
      tcp: {}
      http:
        hostSelectionMaxAttempts: 3
      grpc:
        backOff: {}
        rateLimitedBackOff: {maxInterval: 0s, resetHeaders: [{format: Seconds}, {name: x}]}
        retryOn: [Canceled, canceled]
"#,
        &[
            (
                "spec.to[0].targetRef.kind",
                "value 'MeshSubset' is not supported",
            ),
            (
                "spec.to[0].default.conf",
                "at least one of the 'tcp', 'http', 'grpc' must be specified",
            ),
            ("spec.to[1].default.conf.tcp", "must not be empty"),
            // `hostSelectionMaxAttempts` alone does not make `http` non-empty (as in Kuma).
            ("spec.to[1].default.conf.http", "must not be empty"),
            ("spec.to[1].default.conf.grpc.backOff", "must not be empty"),
            (
                "spec.to[1].default.conf.grpc.rateLimitedBackOff.maxInterval",
                "must be defined and greater than zero",
            ),
            (
                "spec.to[1].default.conf.grpc.rateLimitedBackOff.resetHeaders[0].name",
                "must be defined",
            ),
            (
                "spec.to[1].default.conf.grpc.retryOn[1]",
                "unknown item 'canceled'",
            ),
        ],
    );
}

#[test]
fn rate_limited_max_interval_must_be_positive() {
    for bad in ["0", "0s", "-1s"] {
        assert_errors(
            &to_mesh(&format!(
                "{{http: {{rateLimitedBackOff: {{maxInterval: '{bad}', resetHeaders: []}}}}}}"
            )),
            &[(
                "spec.to[0].default.conf.http.rateLimitedBackOff.maxInterval",
                "must be defined and greater than zero",
            )],
        );
    }
    assert_valid(&to_mesh(
        "{http: {rateLimitedBackOff: {maxInterval: 1.5s, resetHeaders: []}}}",
    ));
}

#[test]
fn update_frequency_defaults_to_two() {
    // Kuma's API schema fills in `updateFrequency: 2`; only an explicit value below 1 fails.
    let yaml = to_mesh("{http: {hostSelection: [{predicate: OmitPreviousPriorities}]}}");
    assert_valid(&yaml);
    let spec = body::<MeshRetrySpec>(&yaml);
    let predicate = &spec.to.unwrap()[0]
        .default
        .clone()
        .unwrap()
        .http
        .unwrap()
        .host_selection
        .unwrap()[0];
    assert_eq!(predicate.update_frequency_or_default(), 2);
    assert_errors(
        &to_mesh(
            "{http: {hostSelection: [{predicate: OmitPreviousPriorities, updateFrequency: -1}, {}, {predicate: OmitHostsWithTags, tags: {}}]}}",
        ),
        &[
            (
                "spec.to[0].default.conf.http.hostSelection[0].updateFrequency",
                "must be defined and greater than zero",
            ),
            (
                "spec.to[0].default.conf.http.hostSelection[1].predicate",
                "unknown predicate type ''",
            ),
        ],
    );
}

#[test]
fn every_named_retry_on_value_and_status_code_is_accepted() {
    let http: Vec<&str> = HTTP_RETRY_ON.iter().map(|(n, _)| *n).collect();
    assert_valid(&to_mesh(&format!(
        "{{http: {{retryOn: [{}, '100', '451', '511']}}}}",
        http.join(", ")
    )));
    let grpc: Vec<&str> = GRPC_RETRY_ON.iter().map(|(n, _)| *n).collect();
    assert_valid(&to_mesh(&format!(
        "{{grpc: {{retryOn: [{}]}}}}",
        grpc.join(", ")
    )));
}

#[test]
fn structure_errors_name_their_path() {
    for (yaml, path, message) in [
        (
            to_mesh("{http: {perTryTimeout: 1d}}"),
            "to[0].default.http.perTryTimeout",
            "time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            to_mesh("{http: {numRetries: -1}}"),
            "to[0].default.http.numRetries",
            "invalid value",
        ),
        (
            to_mesh("{http: {retryOn: [1.5]}}"),
            "to[0].default.http.retryOn[0]",
            "invalid type",
        ),
        (
            to_mesh("{tcp: {maxConnectAttempts: 1}}"),
            "to[0].default.tcp.maxConnectAttempts",
            "unknown field `maxConnectAttempts`",
        ),
        ("from: []\n".to_string(), "from", "unknown field `from`"),
    ] {
        let (got_path, got_message) = parse::<MeshRetrySpec>(&yaml).unwrap_err();
        assert_eq!(got_path, path, "{yaml}");
        assert!(
            got_message.starts_with(message),
            "{got_message} for\n{yaml}"
        );
    }
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshRetrySpec>(
        r#"
targetRef: {kind: MeshService, name: web, namespace: ns}
to:
  - targetRef: {kind: MeshService, name: backend, sectionName: http}
    default:
      tcp: {maxConnectAttempt: 3}
      http:
        numRetries: 10
        perTryTimeout: 1m30s
        backOff: {baseInterval: 0.5s, maxInterval: 1h}
        rateLimitedBackOff:
          resetHeaders: [{name: retry-after, format: Seconds}]
          maxInterval: 300s
        retryOn: [5xx, "503"]
        retriableResponseHeaders: [{type: Prefix, name: x-a, value: b}]
        retriableRequestHeaders: [{name: x-c}]
        hostSelection:
          - {predicate: OmitHostsWithTags, tags: {zone: a}}
          - {predicate: OmitPreviousPriorities, updateFrequency: 4}
        hostSelectionMaxAttempts: 3
      grpc:
        numRetries: 2
        perTryTimeout: "0"
        backOff: {baseInterval: 25ms}
        rateLimitedBackOff: {resetHeaders: []}
        retryOn: [Unavailable]
  - targetRef: {kind: Mesh}
"#,
    );
    // A bare status code is kept as its text.
    let spec = body::<MeshRetrySpec>(&to_mesh("{http: {retryOn: [503]}}"));
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["to"][0]["default"]["http"]["retryOn"][0], "503");
    // Unset fields are not written.
    assert_eq!(
        serde_json::to_string(&MeshRetrySpec::default()).unwrap(),
        "{}"
    );
}

#[test]
fn default_policy_is_kumas_and_valid() {
    let spec = default_spec();
    assert!(validate(&spec).is_empty(), "{:?}", validate(&spec));
    let expected = body::<MeshRetrySpec>(
        r#"
targetRef: {kind: Mesh}
to:
  - targetRef: {kind: Mesh}
    default:
      tcp: {maxConnectAttempt: 5}
      http:
        numRetries: 5
        perTryTimeout: 16s
        backOff: {baseInterval: 25ms, maxInterval: 250ms}
      grpc:
        numRetries: 5
        perTryTimeout: 16s
        backOff: {baseInterval: 25ms, maxInterval: 250ms}
"#,
    );
    assert_eq!(spec, expected);

    let p = default_policy("default", &DefaultPolicyEnv::default());
    assert_eq!(p.name, "mesh-retry-all-default");
    assert_eq!(
        p.labels.into_iter().collect::<Vec<_>>(),
        [("kuma.io/mesh".to_string(), "default".to_string())]
    );
    assert_eq!(p.spec, spec);
    let zone = default_policy(
        "payments",
        &DefaultPolicyEnv {
            zone: Some("east"),
            kubernetes_system_namespace: None,
        },
    );
    assert_eq!(zone.name, "mesh-retry-all-payments");
    assert_eq!(
        zone.labels.get("kuma.io/zone").map(String::as_str),
        Some("east")
    );
    assert_eq!(
        zone.labels.get("kuma.io/origin").map(String::as_str),
        Some("zone")
    );
}
