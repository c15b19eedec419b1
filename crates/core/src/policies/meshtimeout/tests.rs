//! Kuma's validator cases for MeshTimeout (`validator_test.go`), re-expressed, plus parsing,
//! the default policies and round trips.

use super::*;
use crate::format::{resource_to_value, spec_from_value};
use crate::validate::test_util::{assert_errors, assert_valid, errors_of, parse};
use crate::{ResourceType, Spec};

/// A Universal MeshTimeout whose `spec:` is `body` (a YAML block at column 0).
fn mt(body: &str) -> String {
    let indented: String = body
        .trim_matches('\n')
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!("type: MeshTimeout\nname: t\nmesh: default\nspec:\n{indented}")
}

#[test]
fn kuma_accepts() {
    for body in [
        // full example
        "targetRef:\n  kind: MeshService\n  name: web-frontend\nfrom:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h\n      http:\n        requestTimeout: 0s\n        streamIdleTimeout: 1h\n        maxStreamDuration: 1h\n        maxConnectionDuration: 1h\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 1h\n        maxStreamDuration: 1h\n        maxConnectionDuration: 1h",
        // only to targetRef
        "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 1h\n        maxStreamDuration: 1h\n        maxConnectionDuration: 1h",
        // minimal example
        "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      http:\n        requestTimeout: 1s",
        // top-level MeshHTTPRoute (a system policy)
        "targetRef:\n  kind: MeshHTTPRoute\n  name: route-1\nto:\n  - targetRef:\n      kind: Mesh\n    default:\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 2s",
        // MeshExternalService by name and by labels
        "targetRef:\n  kind: MeshSubset\n  tags:\n    kuma.io/service: web-frontend\nto:\n  - targetRef:\n      kind: MeshExternalService\n      name: web-backend\n    default:\n      http:\n        requestTimeout: 1s\n  - targetRef:\n      kind: MeshExternalService\n      labels:\n        kuma.io/display-name: web-backend\n    default:\n      http:\n        requestTimeout: 1s",
        // MeshHTTPRoute by name and by labels
        "targetRef:\n  kind: MeshSubset\n  tags:\n    kuma.io/service: web-frontend\nto:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: http-route-1\n    default:\n      http:\n        requestTimeout: 1s",
        "targetRef:\n  kind: MeshSubset\n  tags:\n    kuma.io/service: web-frontend\nto:\n  - targetRef:\n      kind: MeshHTTPRoute\n      labels:\n        kuma.io/display-name: http-route-1\n    default:\n      http:\n        requestTimeout: 1s",
        // matched inbound rule with route timeouts
        "targetRef:\n  kind: Mesh\nrules:\n  - matches:\n      - spiffeID:\n          type: Exact\n          value: spiffe://default/client\n        sni:\n          type: Exact\n          value: backend.mesh\n    default:\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 2s",
    ] {
        assert_valid(&mt(body));
    }
}

#[test]
fn kuma_refuses() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "targetRef:\n  kind: Mesh",
            &[(
                "spec",
                "at least one of 'from', 'to' or 'rules' has to be defined",
            )],
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nfrom:\n  - targetRef:\n      kind: MeshGatewayRoute\n    default:\n      http:\n        requestTimeout: 1s",
            &[(
                "spec.from[0].targetRef.kind",
                "value 'MeshGatewayRoute' is not supported",
            )],
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshServiceSubset\n    default:\n      http:\n        requestTimeout: 1s",
            &[(
                "spec.to[0].targetRef.kind",
                "value 'MeshServiceSubset' is not supported",
            )],
        ),
        (
            "targetRef:\n  kind: Dataplane\n  sectionName: test\nto:\n  - targetRef:\n      kind: MeshServiceSubset\n    default:\n      http:\n        requestTimeout: 1s",
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
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend",
            &[(
                "spec.to[0].default",
                "at least one timeout should be configured",
            )],
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      idleTimeout: -1s",
            &[(
                "spec.to[0].default.idleTimeout",
                "must not be negative when defined",
            )],
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: -1s\n      http:\n        requestTimeout: -10s",
            &[
                (
                    "spec.to[0].default.connectionTimeout",
                    "must be greater than zero when defined",
                ),
                (
                    "spec.to[0].default.http.requestTimeout",
                    "must not be negative when defined",
                ),
            ],
        ),
        (
            "targetRef:\n  kind: MeshService\n  name: web-frontend\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      http: {}",
            &[(
                "spec.to[0].default.http",
                "at least one timeout in this section should be configured",
            )],
        ),
        (
            "to:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: http-route-1\n      sectionName: some-section\n    default:\n      http:\n        requestTimeout: 1s",
            &[(
                "spec.to[0].targetRef.sectionName",
                "must not be set with kind MeshHTTPRoute",
            )],
        ),
        (
            "targetRef:\n  kind: MeshHTTPRoute\n  name: route-1\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 1h\n        maxStreamDuration: 1h\n        maxConnectionDuration: 1h\nfrom:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 11s",
            &[
                ("spec.from", "must not be defined"),
                (
                    "spec.to[0].targetRef.kind",
                    "value 'MeshService' is not supported",
                ),
                (
                    "spec.to[0].default.connectionTimeout",
                    "can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                ),
                (
                    "spec.to[0].default.idleTimeout",
                    "can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                ),
                (
                    "spec.to[0].default.http.maxStreamDuration",
                    "can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                ),
                (
                    "spec.to[0].default.http.maxConnectionDuration",
                    "can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                ),
            ],
        ),
        (
            "targetRef:\n  kind: MeshGateway\n  name: gateway-1\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h\n      http:\n        requestTimeout: 1s\n        streamIdleTimeout: 1h\n        maxStreamDuration: 1h\n        maxConnectionDuration: 1h\nfrom:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 11s",
            &[
                ("spec.from", "must not be defined"),
                (
                    "spec.to[0].targetRef.kind",
                    "value 'MeshService' is not supported",
                ),
            ],
        ),
        (
            "targetRef:\n  kind: Mesh\nto:\n  - targetRef:\n      kind: MeshExternalService\n      name: web-backend\n      labels:\n        kuma.io/display-name: web-backend\n    default:\n      connectionTimeout: 10s\n      idleTimeout: 1h",
            &[(
                "spec.to[0].targetRef.labels",
                "either labels or name must be specified",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - default:\n      connectionTimeout: 10s\nto:\n  - targetRef:\n      kind: MeshService\n      name: web-backend\n    default:\n      connectionTimeout: 10s",
            &[(
                "spec",
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - default:\n      connectionTimeout: 10s\nfrom:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 10s",
            &[(
                "spec",
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - default: {}",
            &[(
                "spec.rules[0].default",
                "at least one timeout should be configured",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - matches:\n      - {}\n    default:\n      http:\n        requestTimeout: 1s",
            &[(
                "spec.rules[0].matches[0]",
                "must specify at least one of 'spiffeID' or 'sni'",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - matches:\n      - spiffeID:\n          value: spiffe://default/client\n    default:\n      http:\n        requestTimeout: 1s",
            &[("spec.rules[0].matches[0].spiffeID.type", "must be set")],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - matches:\n      - spiffeID:\n          type: Regex\n          value: spiffe://default/client\n    default:\n      http:\n        requestTimeout: 1s",
            &[(
                "spec.rules[0].matches[0].spiffeID.type",
                "unrecognized type \"Regex\", supported values are: Exact, Prefix",
            )],
        ),
        (
            "targetRef:\n  kind: Mesh\nrules:\n  - matches:\n      - spiffeID:\n          type: Exact\n          value: spiffe://default/client\n    default:\n      connectionTimeout: 10s\n      http:\n        requestHeadersTimeout: 2s\n        maxStreamDuration: 3s",
            &[
                (
                    "spec.rules[0].default.connectionTimeout",
                    "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
                ),
                (
                    "spec.rules[0].default.http.requestHeadersTimeout",
                    "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
                ),
                (
                    "spec.rules[0].default.http.maxStreamDuration",
                    "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
                ),
            ],
        ),
    ];
    for (body, expected) in cases {
        assert_errors(&mt(body), expected);
    }
}

#[test]
fn non_system_policies_cannot_target_routes_or_gateways() {
    let doc = "type: MeshTimeout\nname: t\nmesh: default\nlabels:\n  kuma.io/policy-role: consumer\nspec:\n  targetRef:\n    kind: MeshHTTPRoute\n    name: r\n  to:\n    - targetRef: {kind: Mesh}\n      default: {http: {requestTimeout: 1s}}\n";
    assert_eq!(
        errors_of(doc),
        vec![(
            "spec.targetRef.kind".to_string(),
            "value 'MeshHTTPRoute' is not supported".to_string()
        )]
    );
}

#[test]
fn a_bad_duration_is_refused_naming_its_field() {
    let text = mt(
        "to:\n  - targetRef: {kind: Mesh}\n    default:\n      http:\n        requestTimeout: 1d",
    );
    let doc = crate::format::parse_yaml_value(&text).unwrap_or_else(|e| panic!("{e}"));
    let err = crate::format::resource_from_value(&doc)
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.contains("spec.to[0].default.http.requestTimeout")
            && err.contains("time: unknown unit \"d\" in duration \"1d\""),
        "{err}"
    );
}

#[test]
fn the_default_policies_are_valid_and_read_back_unchanged() {
    let policies = default_policies();
    assert_eq!(
        policies.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["mesh-gateways-timeout-all", "mesh-timeout-all"]
    );
    for (name, spec) in policies {
        let r = crate::Resource {
            meta: Meta {
                name: format!("{name}-default"),
                mesh: Some("default".into()),
                ..Meta::default()
            },
            spec: Spec::MeshTimeout(spec.clone()),
        };
        assert_eq!(crate::validate::validate(&r), Ok(()), "{name}");
        let json = resource_to_value(&r);
        let back = spec_from_value(ResourceType::MeshTimeout, json["spec"].clone());
        assert_eq!(back.ok(), Some(Spec::MeshTimeout(spec)), "{name}");
    }
}

#[test]
fn the_sidecar_default_is_kumas() {
    let (_, spec) = default_policies().swap_remove(1);
    let json = serde_json::to_value(&spec).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!({
            "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {
                "connectionTimeout": "5s", "idleTimeout": "1h0m0s",
                "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m0s"}}}],
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {
                "connectionTimeout": "10s", "idleTimeout": "2h0m0s",
                "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h0m0s", "maxStreamDuration": "0s"}}}],
        })
    );
    let r = parse(&mt(
        "to:\n  - targetRef: {kind: Mesh}\n    default: {idleTimeout: '0'}",
    ));
    assert!(matches!(r.spec, Spec::MeshTimeout(_)));
}
