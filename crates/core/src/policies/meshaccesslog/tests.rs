//! Kuma 2.14's `meshaccesslog/api/v1alpha1/validator_test.go`, every case (7 accepted, 20
//! refused with exactly Kuma's violations), then what this port adds: the address rule,
//! unknown types, resolution and warnings.

use super::*;
use crate::policies::callers::Caller;
use crate::policies::meshtrafficpermission::PeerIdentity;
use crate::policies::rules::DataplaneView;
use crate::policies::test_util::{assert_round_trip, body, pairs, violations};
use crate::spec::Tags;
use serde_json::json;

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshAccessLogSpec>(yaml)))
}

fn assert_valid(yaml: &str) {
    assert_eq!(check(yaml), Vec::new(), "for\n{yaml}");
}

fn assert_errors(yaml: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(yaml), pairs(expected), "for\n{yaml}");
}

/// `targetRef: web-frontend` with one `from` entry of kind Mesh whose backends are `b`.
fn from_mesh(backends: &str) -> String {
    format!(
        "targetRef: {{kind: MeshService, name: web-frontend}}\nfrom:\n  - targetRef: {{kind: Mesh}}\n    default:\n      backends:\n{backends}"
    )
}

// ---- Kuma: "should pass validation" ----

#[test]
fn kuma_accepted_cases() {
    assert_valid(
        r#"
targetRef: {kind: MeshService, name: web-frontend}
from:
  - targetRef: {kind: Mesh}
    default:
      backends:
        - type: Tcp
          tcp:
            format: {type: Json, json: [{key: start_time, value: "%START_TIME%"}]}
            address: 127.0.0.1:5000
to:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      backends:
        - type: File
          file:
            format: {type: Plain, plain: '{"start_time": "%START_TIME%"}'}
            path: /tmp/logs.txt
"#,
    );
    assert_valid(&from_mesh(
        "        - type: File\n          file: {path: /tmp/logs.txt}\n",
    ));
    assert_valid(
        "targetRef: {kind: MeshService, name: web-frontend}\nfrom:\n  - targetRef: {kind: Mesh}\n    default:\n      backends: []\n",
    );
    assert_valid(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: MeshMultiZoneService, name: web-backend}\n    default:\n      backends:\n        - type: File\n          file: {path: /tmp/logs.txt}\n",
    );
    for labels in ["kuma.io/display-name: my-otel", "app: otel-collector"] {
        assert_valid(&from_mesh(&format!(
            "        - type: OpenTelemetry\n          openTelemetry:\n            backendRef:\n              kind: MeshOpenTelemetryBackend\n              labels: {{{labels}}}\n"
        )));
    }
    assert_valid(&from_mesh(
        "        - type: OpenTelemetry\n          openTelemetry:\n            endpoint: otel-collector:4317\n            attributes: [{key: service.version, value: '%KUMA_MESH%'}]\n",
    ));
}

// ---- Kuma: "should validate all fields and return as much individual errors as possible" ----

#[test]
fn kuma_nothing_to_configure() {
    assert_errors(
        "targetRef: {kind: Mesh}\n",
        &[(
            "spec",
            "at least one of 'from', 'to' or 'rules' has to be defined",
        )],
    );
}

#[test]
fn kuma_file_paths() {
    let path = "spec.from[0].default.backends[0].file.path";
    assert_errors(
        &from_mesh(
            "        - type: File\n          file:\n            format: {type: Plain, plain: '{\"start_time\": \"%START_TIME%\"}'}\n",
        ),
        &[(path, "file backend requires a valid path")],
    );
    assert_errors(
        &from_mesh("        - type: File\n          file: {path: '#not_valid'}\n"),
        &[(path, "file backend requires a valid path")],
    );
}

#[test]
fn kuma_json_fields() {
    let at = "spec.from[0].default.backends[0].file.format.json[0]";
    let json = |field: &str| {
        from_mesh(&format!(
            "        - type: File\n          file:\n            path: /tmp/logs.txt\n            format: {{type: Json, json: [{field}]}}\n"
        ))
    };
    assert_errors(
        &json("{value: '%START_TIME%'}"),
        &[(&format!("{at}.key"), "key cannot be empty")],
    );
    assert_errors(
        &json("{key: start_time}"),
        &[(&format!("{at}.value"), "value cannot be empty")],
    );
    assert_errors(
        &json("{key: '\"', value: '%START_TIME%'}"),
        &[(at, "is not a valid JSON object")],
    );
}

#[test]
fn kuma_default_not_defined() {
    assert_errors(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: Mesh}\n",
        &[("spec.to[0].default.backends", "must be defined")],
    );
    assert_errors(
        "targetRef: {kind: Mesh}\nfrom:\n  - targetRef: {kind: Mesh}\n",
        &[("spec.from[0].default.backends", "must be defined")],
    );
    assert_errors(
        "targetRef: {kind: Dataplane, sectionName: test}\nto:\n  - targetRef: {kind: Mesh}\n",
        &[
            (
                "spec.targetRef.sectionName",
                "can only be used with inbound policies",
            ),
            ("spec.to[0].default.backends", "must be defined"),
        ],
    );
}

#[test]
fn kuma_from_and_rules_do_not_mix() {
    assert_errors(
        r#"
targetRef: {kind: Mesh}
from:
  - targetRef: {kind: Mesh}
rules:
  - default:
      backends:
        - type: Tcp
          tcp:
            format: {type: Json, json: [{key: start_time, value: "%START_TIME%"}]}
            address: google.com
"#,
        &[
            (
                "spec",
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            ),
            ("spec.from[0].default.backends", "must be defined"),
        ],
    );
}

#[test]
fn kuma_tcp_address() {
    assert_errors(
        &from_mesh(
            "        - type: Tcp\n          tcp:\n            format: {type: Json, json: [{key: start_time, value: '%START_TIME%'}]}\n            address: not_valid_url\n",
        ),
        &[(
            "spec.from[0].default.backends[0].tcp.address",
            "tcp backend requires valid address",
        )],
    );
}

#[test]
fn kuma_empty_formats() {
    let b = "spec.from[0].default.backends";
    assert_errors(
        &from_mesh(
            "        - type: File\n          file: {path: /tmp/logs.txt, format: {type: Json, json: []}}\n        - type: Tcp\n          tcp: {address: 'http://logs.com', format: {type: Json, json: []}}\n",
        ),
        &[
            (&format!("{b}[0].file.format.json"), "must not be empty"),
            (&format!("{b}[1].tcp.format.json"), "must not be empty"),
        ],
    );
    assert_errors(
        &from_mesh(
            "        - type: File\n          file: {path: /tmp/logs.txt, format: {type: Plain, plain: ''}}\n        - type: Tcp\n          tcp: {address: 'http://logs.com', format: {type: Plain, plain: ''}}\n",
        ),
        &[
            (&format!("{b}[0].file.format.plain"), "must not be empty"),
            (&format!("{b}[1].tcp.format.plain"), "must not be empty"),
        ],
    );
    assert_errors(
        &from_mesh(
            "        - type: File\n          file: {path: /tmp/logs.txt, format: {type: Plain}}\n        - type: Tcp\n          tcp: {address: 'http://logs.com', format: {type: Json}}\n",
        ),
        &[
            (&format!("{b}[0].file.format.plain"), "must be defined"),
            (&format!("{b}[1].tcp.format.json"), "must be defined"),
        ],
    );
}

#[test]
fn kuma_backend_must_be_defined() {
    let b = "spec.from[0].default.backends";
    assert_errors(
        &from_mesh("        - type: File\n        - type: Tcp\n        - type: OpenTelemetry\n"),
        &[
            (&format!("{b}[0].file"), "must be defined"),
            (&format!("{b}[1].tcp"), "must be defined"),
            (&format!("{b}[2].openTelemetry"), "must be defined"),
        ],
    );
}

#[test]
fn kuma_open_telemetry_endpoint_or_backend_ref() {
    let at = "spec.from[0].default.backends[0].openTelemetry";
    assert_errors(
        &from_mesh("        - type: OpenTelemetry\n          openTelemetry: {endpoint: ''}\n"),
        &[(
            at,
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        )],
    );
    assert_errors(
        &from_mesh(
            "        - type: OpenTelemetry\n          openTelemetry:\n            endpoint: otel-collector:4317\n            backendRef: {kind: MeshOpenTelemetryBackend, labels: {kuma.io/display-name: my-otel}}\n",
        ),
        &[(
            at,
            "openTelemetry must have only one type defined: endpoint, backendRef",
        )],
    );
    assert_errors(
        &from_mesh(
            "        - type: OpenTelemetry\n          openTelemetry:\n            backendRef: {kind: MeshOpenTelemetryBackend}\n",
        ),
        &[(
            &format!("{at}.backendRef"),
            "backendRef must have exactly one defined: labels",
        )],
    );
}

#[test]
fn kuma_open_telemetry_attribute_names() {
    let key =
        |i: usize| format!("spec.from[0].default.backends[0].openTelemetry.attributes[{i}].key");
    let otel = |attrs: &str| {
        from_mesh(&format!(
            "        - type: OpenTelemetry\n          openTelemetry:\n            endpoint: otel-collector:4317\n            attributes: [{attrs}]\n"
        ))
    };
    assert_errors(
        &otel("{key: 'my custom attribute', value: '%KUMA_MESH%'}"),
        &[(&key(0), validate::OTEL_NAME_FORMAT)],
    );
    assert_errors(
        &otel("{key: '%KUMA_ZONE%', value: '%KUMA_MESH%'}"),
        &[(&key(0), validate::OTEL_NAME_STATIC)],
    );
    assert_errors(
        &otel("{key: otel.attribute, value: '%KUMA_MESH%'}"),
        &[(&key(0), validate::OTEL_NAME_RESERVED)],
    );
    assert_errors(
        &otel("{key: 'bad key', value: '%KUMA_MESH%'}, {key: '%KUMA_ZONE%', value: '%KUMA_ZONE%'}"),
        &[
            (&key(0), validate::OTEL_NAME_FORMAT),
            (&key(1), validate::OTEL_NAME_STATIC),
        ],
    );
}

#[test]
fn kuma_mesh_gateway_to_kinds() {
    assert_errors(
        r#"
targetRef: {kind: MeshGateway, name: edge-gateway}
to:
  - targetRef: {kind: MeshService, name: web-backend}
    default:
      backends:
        - type: File
          file:
            format: {type: Plain, plain: '{"start_time": "%START_TIME%"}'}
            path: /tmp/logs.txt
"#,
        &[(
            "spec.to[0].targetRef.kind",
            "value 'MeshService' is not supported",
        )],
    );
}

// ---- What this port adds ----

#[test]
fn addresses_follow_govalidators_url_rule() {
    for ok in [
        "127.0.0.1:5000",
        "google.com",
        "http://logs.com",
        "logs.internal:1234",
        "localhost:5000",
        "[::1]:5000",
        "tcp://collector.example.com:9000/x",
        "user@logs.example.com",
    ] {
        assert!(is_url(ok), "{ok}");
    }
    for bad in [
        "",
        "a.b",
        "not_valid_url",
        "localhost",
        ".logs.com",
        "logs.com:abc",
        "logs.com:123456",
        "gopher://logs.com",
        "http://logs .com",
        "http://",
        "-logs.com",
        "[zz]:5000",
    ] {
        assert!(!is_url(bad), "{bad}");
    }
}

#[test]
fn unknown_types_are_refused_with_the_allowed_values() {
    assert_errors(
        &from_mesh("        - type: Syslog\n"),
        &[(
            "spec.from[0].default.backends[0].type",
            "must be one of Tcp, File, OpenTelemetry",
        )],
    );
    assert_errors(
        &from_mesh(
            "        - type: File\n          file: {path: /tmp/a.log, format: {type: Yaml, plain: x}}\n",
        ),
        &[(
            "spec.from[0].default.backends[0].file.format.type",
            "must be one of Plain, Json",
        )],
    );
}

#[test]
fn documents_read_back_as_written() {
    assert_round_trip::<MeshAccessLogSpec>(
        r#"
targetRef: {kind: Mesh}
rules:
  - matches:
      - spiffeID: {type: Prefix, value: 'spiffe://default/'}
    default:
      backends:
        - type: File
          file:
            path: /tmp/a.log
            format: {type: Json, json: [{key: code, value: '%RESPONSE_CODE%'}], omitEmptyValues: true}
        - type: OpenTelemetry
          openTelemetry:
            endpoint: collector:4317
            body: {kvlistValue: {values: [{key: mesh, value: {stringValue: '%KUMA_MESH%'}}]}}
"#,
    );
}

#[test]
fn warnings_name_deprecations_unknown_operators_and_unsent_backends() {
    let spec = body::<MeshAccessLogSpec>(&from_mesh(
        "        - type: File\n          file: {path: /tmp/a.log, format: {type: Plain, plain: '%RESPONSE_CODE% %NOPE% %FILTER_STATE(x)%'}}\n        - type: OpenTelemetry\n          openTelemetry: {endpoint: 'collector:4317'}\n",
    ));
    let w = warnings(&spec);
    assert_eq!(w[0], "'from' field is deprecated, use 'rules' instead");
    assert!(
        w[1].starts_with("openTelemetry.endpoint is deprecated"),
        "{w:?}"
    );
    assert!(
        w.iter().any(|m| m.contains("%NOPE%, %FILTER_STATE(x)%")),
        "{w:?}"
    );
    // An endpoint is sent to; a backendRef is not (and says so).
    assert!(
        !w.iter().any(|m| m.contains("backendRef are stored")),
        "{w:?}"
    );
    let by_ref = body::<MeshAccessLogSpec>(&from_mesh(
        "        - type: OpenTelemetry\n          openTelemetry:\n            backendRef: {kind: MeshOpenTelemetryBackend, name: otel}\n",
    ));
    assert!(
        warnings(&by_ref)
            .iter()
            .any(|m| m.starts_with("OpenTelemetry backends given by backendRef are stored")),
        "{:?}",
        warnings(&by_ref)
    );
    // Unknown operators of an OpenTelemetry body and attributes are named too.
    let otel = body::<MeshAccessLogSpec>(&from_mesh(
        "        - type: OpenTelemetry\n          openTelemetry:\n            endpoint: collector:4317\n            body: '%NOPE_BODY%'\n            attributes: [{key: a, value: '%NOPE_ATTR%'}]\n",
    ));
    assert!(
        warnings(&otel)
            .iter()
            .any(|m| m.contains("%NOPE_BODY%, %NOPE_ATTR%")),
        "{:?}",
        warnings(&otel)
    );
    let clean = body::<MeshAccessLogSpec>(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: Mesh}\n    default:\n      backends: [{type: File, file: {path: /tmp/a.log}}]\n",
    );
    assert!(warnings(&clean).is_empty());
}

const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: backend}}\n    - {port: 10002, tags: {kuma.io/service: db}}\n";

#[test]
fn opentelemetry_bodies_read_as_kuma_reads_them() {
    let plain = |t: &str| LogFormat::Plain {
        text: t.into(),
        omit_empty: false,
    };
    assert_eq!(otel_body(None), LogFormat::Default);
    assert_eq!(
        otel_body(Some(&json!("%KUMA_MESH% x"))),
        plain("%KUMA_MESH% x")
    );
    assert_eq!(
        otel_body(Some(&json!({"stringValue": "%RESPONSE_CODE%"}))),
        plain("%RESPONSE_CODE%")
    );
    assert_eq!(
        otel_body(Some(&json!({"kvlistValue": {"values": [
            {"key": "code", "value": {"stringValue": "%RESPONSE_CODE%"}},
            {"key": "mesh", "value": {"stringValue": "%KUMA_MESH%"}}
        ]}}))),
        LogFormat::Json {
            fields: vec![
                ("code".into(), "%RESPONSE_CODE%".into()),
                ("mesh".into(), "%KUMA_MESH%".into())
            ],
            omit_empty: false
        }
    );
    // Another shape: its JSON text.
    assert_eq!(
        otel_body(Some(&json!({"intValue": 3}))),
        plain("{\"intValue\":3}")
    );
    // The resolved backend: endpoint, body and attributes; a backendRef is left out.
    let spec = body::<MeshAccessLogSpec>(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: Mesh}\n    default:\n      backends:\n        - type: OpenTelemetry\n          openTelemetry: {endpoint: 'collector:4317', attributes: [{key: k, value: '%KUMA_MESH%'}]}\n        - type: OpenTelemetry\n          openTelemetry: {backendRef: {kind: MeshOpenTelemetryBackend, name: otel}}\n",
    );
    let logs = resolve(&[("otel", &spec)]);
    let out = logs.outbounds[0].as_ref().unwrap();
    assert_eq!(
        out.entries[0].backends,
        vec![LogBackend::Otel {
            endpoint: "collector:4317".into(),
            body: LogFormat::Default,
            attributes: vec![("k".into(), "%KUMA_MESH%".into())],
        }]
    );
}

fn resolve(policies: &[(&str, &MeshAccessLogSpec)]) -> DataplaneAccessLogs {
    let labels = Tags::new();
    let list: Vec<_> = policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
    let rules = AccessLogRules::new("default", &list);
    let d = crate::policies::test_util::dataplane(WEB);
    rules.for_dataplane(&DataplaneView {
        mesh: "default",
        name: "web-1",
        labels: &labels,
        spec: &d,
    })
}

fn file(path: &str) -> LogBackend {
    LogBackend::File {
        path: path.into(),
        format: LogFormat::Default,
    }
}

#[test]
fn outbound_backends_merge_by_priority_and_inbound_rules_all_fire() {
    let wide = body::<MeshAccessLogSpec>(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: Mesh}\n    default:\n      backends: [{type: File, file: {path: /tmp/all.log}}]\nfrom:\n  - targetRef: {kind: Mesh}\n    default:\n      backends: [{type: Tcp, tcp: {address: '127.0.0.1:5000', format: {type: Plain, plain: '%RESPONSE_CODE%'}}}]\n",
    );
    let narrow = body::<MeshAccessLogSpec>(
        "targetRef: {kind: MeshService, name: web}\nto:\n  - targetRef: {kind: MeshService, name: backend}\n    default:\n      backends: [{type: File, file: {path: /tmp/backend.log}}]\n",
    );
    let rules = body::<MeshAccessLogSpec>(
        "targetRef: {kind: MeshService, name: web}\nrules:\n  - matches: [{spiffeID: {type: Exact, value: 'spiffe://default/admin'}}]\n    default:\n      backends: [{type: File, file: {path: /tmp/admin.log}}]\n",
    );
    let got = resolve(&[("wide", &wide), ("narrow", &narrow), ("rules", &rules)]);
    // Outbounds: the more specific policy's list replaces the mesh-wide one.
    let out = |i: usize| {
        got.outbounds[i]
            .as_ref()
            .map(|l| l.entries[0].backends.clone())
    };
    assert_eq!(out(0), Some(vec![file("/tmp/backend.log")]));
    assert_eq!(out(1), Some(vec![file("/tmp/all.log")]));
    // Inbound: the rules policy (a match) and the from entry (a catch-all) both fire.
    let inbound = got.inbounds[0]
        .as_ref()
        .unwrap_or_else(|| panic!("inbound log"));
    assert_eq!(inbound.entries.len(), 2);
    let admin = PeerIdentity::new("default", ["admin"]);
    let other = PeerIdentity::new("default", ["web"]);
    let firing = |id: &PeerIdentity| {
        inbound
            .entries
            .iter()
            .filter(|e| {
                e.callers.matches(&Caller {
                    identity: Some(id),
                    sni: None,
                })
            })
            .count()
    };
    assert_eq!(firing(&admin), 2);
    assert_eq!(firing(&other), 1);
}

#[test]
fn nothing_logged_without_a_policy_or_without_enforceable_backends() {
    assert_eq!(resolve(&[]), DataplaneAccessLogs::default());
    // An OpenTelemetry backend given by `backendRef` only (no MeshOpenTelemetryBackend).
    let otel_only = body::<MeshAccessLogSpec>(
        "targetRef: {kind: Mesh}\nto:\n  - targetRef: {kind: Mesh}\n    default:\n      backends: [{type: OpenTelemetry, openTelemetry: {backendRef: {kind: MeshOpenTelemetryBackend, name: otel}}}]\n",
    );
    let got = resolve(&[("otel", &otel_only)]);
    assert_eq!(got.outbounds, vec![None, None]);
}
