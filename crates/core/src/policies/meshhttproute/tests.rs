//! Kuma 2.14's `meshhttproute/api/v1alpha1/validation_test.go`, every case (5 accepted, 16
//! refused with exactly Kuma's violations), then what this port adds.

use super::*;
use crate::policies::common::PolicyRole;
use crate::policies::test_util::{assert_round_trip, body, pairs, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshHttpRouteSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// A route from `frontend` to `frontend` with the given rules (YAML list, indented 2).
fn frontend_rules(rules: &str) -> String {
    format!(
        "targetRef: {{kind: MeshService, name: frontend}}\nto:\n- targetRef: {{kind: MeshService, name: frontend}}\n  rules:\n{rules}"
    )
}

const RFC1123: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LONG_VALID: &str = "a23456789-a23456789-a234567890.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.com";
const LONG_DOT: &str = "a23456789-a23456789-a234567890.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a23456789.a2345678.com.";

// ---- Kuma: error cases ----

#[test]
fn kuma_top_level_kind() {
    assert_errors(
        "targetRef: {kind: BlahBlah, name: frontend}\nto: []\n",
        &[("spec.targetRef.kind", "value 'BlahBlah' is not supported")],
    );
}

#[test]
fn kuma_to_kind() {
    assert_errors(
        "targetRef: {kind: MeshService, name: frontend}\nto:\n- targetRef: {kind: BlahBlah, name: frontend}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'BlahBlah' is not supported",
        )],
    );
}

#[test]
fn kuma_to_mesh_not_allowed() {
    assert_errors(
        "targetRef: {kind: MeshService, name: frontend}\nto:\n- targetRef: {kind: Mesh}\n",
        &[("spec.to[0].targetRef.kind", "value 'Mesh' is not supported")],
    );
}

#[test]
fn kuma_to_mesh_service_not_allowed_on_a_gateway() {
    assert_errors(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n- targetRef: {kind: MeshService, name: backend}\n",
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshService' is not supported",
        )],
    );
}

#[test]
fn kuma_incorrect_path_match_values() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - path: {value: relative, type: Exact}\n      - path: {value: /trailing/slash/, type: PathPrefix}\n      - path: {value: relative, type: PathPrefix}\n",
        ),
        &[
            (
                "spec.to[0].rules[0].matches[0].path.value",
                "must be an absolute path",
            ),
            (
                "spec.to[0].rules[0].matches[1].path.value",
                "does not need a trailing slash because only a `/`-separated prefix or an entire path is matched",
            ),
            (
                "spec.to[0].rules[0].matches[2].path.value",
                "must be an absolute path",
            ),
        ],
    );
}

#[test]
fn kuma_repeated_query_param_names() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - queryParams:\n        - {type: Exact, name: foo, value: bar}\n        - {type: Exact, name: foo, value: baz}\n",
        ),
        &[(
            "spec.to[0].rules[0].matches[0].queryParams[1].name",
            "multiple entries for name foo",
        )],
    );
}

#[test]
fn kuma_empty_filters() {
    assert_errors(
        &frontend_rules(
            "    - default:\n        filters:\n          - type: RequestHeaderModifier\n          - type: ResponseHeaderModifier\n          - type: RequestRedirect\n          - type: RequestMirror\n          - type: URLRewrite\n",
        ),
        &[
            (
                "spec.to[0].rules[0].default.filters[0].requestHeaderModifier",
                "must be defined",
            ),
            (
                "spec.to[0].rules[0].default.filters[1].responseHeaderModifier",
                "must be defined",
            ),
            (
                "spec.to[0].rules[0].default.filters[2].requestRedirect",
                "must be defined",
            ),
            (
                "spec.to[0].rules[0].default.filters[3].requestMirror",
                "must be defined",
            ),
            (
                "spec.to[0].rules[0].default.filters[4].urlRewrite",
                "must be defined",
            ),
        ],
    );
}

#[test]
fn kuma_invalid_header_modifiers() {
    assert_errors(
        &frontend_rules(
            r#"    - default:
        filters:
          - type: RequestHeaderModifier
            requestHeaderModifier:
              set:
                - {name: foo, value: bar}
                - {name: foo, value: bazz}
          - type: ResponseHeaderModifier
            responseHeaderModifier: {}
          - type: ResponseHeaderModifier
            responseHeaderModifier:
              set:
                - {name: foo, value: bar}
              add:
                - {name: foo, value: bar}
              remove:
                - foo
"#,
        ),
        &[
            (
                "spec.to[0].rules[0].default.filters[0].requestHeaderModifier.set[1].name",
                "duplicate header name",
            ),
            (
                "spec.to[0].rules[0].default.filters[1].responseHeaderModifier",
                "must have at least one defined: set, add, remove",
            ),
            (
                "spec.to[0].rules[0].default.filters[2].responseHeaderModifier.add[0].name",
                "duplicate header name",
            ),
            (
                "spec.to[0].rules[0].default.filters[2].responseHeaderModifier.remove[0].name",
                "duplicate header name",
            ),
        ],
    );
}

#[test]
fn kuma_prefix_rewrite_without_prefix_match() {
    assert_errors(
        &frontend_rules(
            r#"    - matches:
      - path: {value: /prefix, type: Exact}
      default:
        filters:
          - type: URLRewrite
            urlRewrite:
              path: {type: ReplacePrefixMatch, replacePrefixMatch: /other}
          - type: RequestRedirect
            requestRedirect:
              path: {type: ReplacePrefixMatch, replacePrefixMatch: /other}
"#,
        ),
        &[
            (
                "spec.to[0].rules[0].default.filters[0].urlRewrite.path.replacePrefixMatch",
                "can only appear if all matches match a path prefix",
            ),
            (
                "spec.to[0].rules[0].default.filters[1].requestRedirect.path.replacePrefixMatch",
                "can only appear if all matches match a path prefix",
            ),
        ],
    );
}

#[test]
fn kuma_present_and_absent_header_matches_take_no_value() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - headers:\n        - {type: Present, name: foo, value: x}\n        - {type: Absent, name: foo, value: x}\n",
        ),
        &[
            (
                "spec.to[0].rules[0].matches[0].headers[0].value",
                "must not be defined",
            ),
            (
                "spec.to[0].rules[0].matches[0].headers[1].value",
                "must not be defined",
            ),
        ],
    );
}

#[test]
fn kuma_invalid_backend_refs() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - path: {type: PathPrefix, value: /}\n      default:\n        backendRefs:\n          - kind: MeshServiceSubset\n            tags: {version: v1}\n",
        ),
        &[(
            "spec.to[0].rules[0].default.backendRefs[0].name",
            "must be set when kind is MeshServiceSubset",
        )],
    );
}

#[test]
fn kuma_multizone_backend_needs_a_port() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - path: {type: PathPrefix, value: /}\n      default:\n        backendRefs:\n          - {kind: MeshMultiZoneService, name: test-server}\n",
        ),
        &[(
            "spec.to[0].rules[0].default.backendRefs[0].port",
            "must be defined with kind MeshMultiZoneService",
        )],
    );
}

/// Kuma lists these two the other way round; its test compares them as a set. Aerie
/// reports in the order its validator walks (rules, then hostnames), as Kuma's does.
#[test]
fn kuma_hostnames_and_host_to_backend_rewrite_need_a_gateway() {
    assert_errors(
        r#"
targetRef: {kind: MeshService, name: frontend}
to:
- targetRef: {kind: MeshService, name: backend}
  hostnames: [backend.com]
  rules:
    - matches:
      - path: {type: PathPrefix, value: /}
      default:
        filters:
          - type: URLRewrite
            urlRewrite: {hostToBackendHostname: true}
        backendRefs:
          - {kind: MeshService, name: backend}
"#,
        &[
            (
                "spec.to[0].rules[0].default.filters[0].urlRewrite.hostToBackendHostname",
                "can only be set with MeshGateway",
            ),
            ("spec.to[0].hostnames", "must not be defined"),
        ],
    );
}

#[test]
fn kuma_gateway_rules_need_backends() {
    assert_errors(
        r#"
targetRef: {kind: MeshGateway, name: edge}
to:
- targetRef: {kind: Mesh}
  rules:
    - matches:
      - path: {type: PathPrefix, value: /}
      default:
        filters:
          - type: URLRewrite
            urlRewrite:
              path: {type: ReplacePrefixMatch, replacePrefixMatch: /other}
"#,
        &[(
            "spec.to[0].rules[0].default.backendRefs",
            "must not be empty",
        )],
    );
}

#[test]
fn kuma_invalid_mirror_backend() {
    assert_errors(
        &frontend_rules(
            "    - matches:\n      - path: {type: PathPrefix, value: /}\n      default:\n        filters:\n          - type: RequestMirror\n            requestMirror:\n              backendRef:\n                kind: MeshServiceSubset\n                tags: {version: v1}\n",
        ),
        &[(
            "spec.to[0].rules[0].default.filters[0].requestMirror.backendRef.name",
            "must be set when kind is MeshServiceSubset",
        )],
    );
}

#[test]
fn kuma_invalid_hostnames() {
    let hosts = [
        "127.0.0.1",
        "2001:db8:3333:4444:5555:6666:7777:8888",
        "a..bc",
        "ec2-35-160-210-253.us-west-2-.compute.amazonaws.com",
        "-ec2_35$160%210-253.us-west-2-.compute.amazonaws.com",
        "ec2-35-160-210-253.us-west-2-.compute.amazonaws.com.",
        LONG_VALID,
        "mx.foo.com.",
        LONG_DOT,
    ];
    let mut filters = String::new();
    for kind in ["RequestRedirect: requestRedirect", "URLRewrite: urlRewrite"] {
        let (filter_type, field) = kind.split_once(": ").unwrap();
        for h in hosts {
            filters.push_str(&format!(
                "          - type: {filter_type}\n            {field}:\n              hostname: \"{h}\"\n"
            ));
        }
    }
    let yaml = frontend_rules(&format!(
        "    - matches:\n      - path: {{type: PathPrefix, value: /}}\n      default:\n        filters:\n{filters}"
    ));
    let too_long = "must be no more than 253 characters";
    let per_host: [&[&str]; 9] = [
        &["cannot be an IP address"],
        &["cannot be an IP address"],
        &[RFC1123],
        &[RFC1123],
        &[RFC1123],
        &[RFC1123],
        &[too_long],
        &[RFC1123],
        &[too_long, RFC1123],
    ];
    let mut expected = Vec::new();
    for (offset, field) in [(0, "requestRedirect"), (9, "urlRewrite")] {
        for (i, messages) in per_host.iter().enumerate() {
            for m in *messages {
                expected.push((
                    format!(
                        "spec.to[0].rules[0].default.filters[{}].{field}.hostname",
                        offset + i
                    ),
                    m.to_string(),
                ));
            }
        }
    }
    assert_eq!(check(&yaml), expected);
}

// ---- Kuma: valid cases ----

#[test]
fn kuma_valid_without_destinations() {
    assert_valid("targetRef: {kind: MeshService, name: frontend}\nto: []\n");
}

#[test]
fn kuma_prefix_rewrite_with_prefix_match() {
    assert_valid(&frontend_rules(
        r#"    - matches:
      - path: {value: /prefix, type: PathPrefix}
      default:
        filters:
          - type: URLRewrite
            urlRewrite:
              path: {type: ReplacePrefixMatch, replacePrefixMatch: /other}
          - type: RequestRedirect
            requestRedirect:
              path: {type: ReplacePrefixMatch, replacePrefixMatch: /other}
"#,
    ));
}

#[test]
fn kuma_gateway_to_mesh() {
    assert_valid(
        r#"
targetRef: {kind: MeshGateway, name: edge}
to:
- targetRef: {kind: Mesh}
  rules:
    - matches:
      - path: {value: /, type: PathPrefix}
      default:
        filters:
          - type: URLRewrite
            urlRewrite: {hostToBackendHostname: true}
        backendRefs:
          - {kind: MeshService, name: backend}
"#,
    );
}

#[test]
fn kuma_gateway_with_hostnames() {
    assert_valid(
        r#"
targetRef: {kind: MeshGateway, name: edge}
to:
- targetRef: {kind: Mesh}
  hostnames: [exammple.com]
  rules:
    - matches:
      - path: {value: /, type: PathPrefix}
      default:
        backendRefs:
          - {kind: MeshService, name: backend}
"#,
    );
}

#[test]
fn kuma_mesh_service_and_multizone_service() {
    assert_valid(
        r#"
targetRef: {kind: Mesh}
to:
- targetRef:
    kind: MeshService
    labels: {kuma.io/display-name: backend}
  rules:
    - matches:
      - path: {value: /v1, type: PathPrefix}
      default:
        backendRefs:
          - kind: MeshService
            labels: {kuma.io/display-name: backend}
            port: 8080
    - matches:
      - path: {value: /v2, type: PathPrefix}
      default:
        backendRefs:
          - kind: MeshMultiZoneService
            labels: {kuma.io/display-name: backend}
            port: 8080
"#,
    );
}

// ---- Beyond Kuma's cases ----

#[test]
fn only_system_policies_target_gateways() {
    let spec = body::<MeshHttpRouteSpec>(
        "targetRef: {kind: MeshGateway, name: edge}\nto:\n- targetRef: {kind: Mesh}\n  rules:\n  - default: {backendRefs: [{kind: MeshService, name: b}]}\n",
    );
    assert!(violations(validate_with_role(&spec, &PolicyRole::System)).is_empty());
    assert_eq!(
        violations(validate_with_role(&spec, &PolicyRole::Producer)),
        pairs(&[(
            "spec.targetRef.kind",
            "value 'MeshGateway' is not supported"
        )])
    );
}

#[test]
fn the_unresolved_backend_name_is_allowed_others_are_not() {
    let rule = |name: &str| {
        frontend_rules(&format!(
            "    - default:\n        backendRefs:\n          - {{kind: MeshService, name: \"{name}\"}}\n"
        ))
    };
    assert_valid(&rule(UNRESOLVED_BACKEND));
    assert_eq!(
        check(&rule("Not/Valid"))
            .into_iter()
            .map(|(f, _)| f)
            .collect::<Vec<_>>(),
        ["spec.to[0].rules[0].default.backendRefs[0].name"]
    );
}

#[test]
fn a_redirect_needs_no_backend_on_a_gateway_and_ips_with_leading_zeros_are_ips() {
    assert_valid(
        r#"
targetRef: {kind: MeshGateway, name: edge}
to:
- targetRef: {kind: Mesh}
  rules:
    - default:
        filters:
          - type: RequestRedirect
            requestRedirect: {scheme: https, statusCode: 301}
"#,
    );
    assert_eq!(
        check(&frontend_rules(
            "    - default:\n        filters:\n          - type: RequestRedirect\n            requestRedirect: {hostname: 010.001.0.1}\n"
        )),
        pairs(&[(
            "spec.to[0].rules[0].default.filters[0].requestRedirect.hostname",
            "cannot be an IP address"
        )])
    );
}

#[test]
fn documents_round_trip() {
    assert_round_trip::<MeshHttpRouteSpec>(
        r#"
targetRef: {kind: Mesh}
to:
- targetRef: {kind: MeshService, name: backend}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
      method: GET
      headers: [{type: Exact, name: x-version, value: v2}]
      queryParams: [{type: RegularExpression, name: q, value: "^a.*"}]
    default:
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-c]}
      - type: RequestMirror
        requestMirror: {percentage: "12.5", backendRef: {kind: MeshService, name: shadow}}
      backendRefs:
      - {kind: MeshServiceSubset, name: backend, tags: {version: v1}, weight: 90}
      - {kind: MeshServiceSubset, name: backend, tags: {version: v2}, weight: 10}
"#,
    );
}
