//! Kuma 2.14's `meshmetric/api/v1alpha1/validator_test.go`, every case (2 accepted, 12
//! refused with exactly Kuma's violations), then what this port adds: the role, warnings,
//! round trips and resolution (merging, defaults, labels).

use super::*;
use crate::policies::rules::DataplaneView;
use crate::policies::test_util::{assert_round_trip, body, pairs, violations};
use crate::spec::Tags;

fn check(default: &str) -> Vec<(String, String)> {
    let yaml = format!("targetRef:\n  kind: MeshService\n  name: svc-1\ndefault:\n{default}");
    violations(validate(&body::<MeshMetricSpec>(&yaml)))
}

fn assert_errors(default: &str, expected: &[(&str, &str)]) {
    assert_eq!(check(default), pairs(expected), "for\n{default}");
}

#[test]
fn kuma_accepted_cases() {
    let full = r#"  sidecar:
    profiles:
      appendProfiles:
        - name: None
        - name: Basic
      exclude:
        - type: Regex
          match: "my_match.*"
      include:
        - type: Prefix
          match: "my_match"
    includeUnused: true
  applications:
    - path: "metrics/prometheus"
      port: 8888
    - port: 8000
  backends:
    - type: Prometheus
      prometheus:
        clientId: main-backend
        port: 5670
        path: /metrics
        tls:
          mode: "ProvidedTLS"
    - type: OpenTelemetry
      openTelemetry:
        endpoint: otel-collector:4778
"#;
    assert_eq!(check(full), Vec::new());
    let otel_ref = "  backends:\n    - type: OpenTelemetry\n      openTelemetry:\n        backendRef:\n          kind: MeshOpenTelemetryBackend\n          labels:\n            kuma.io/display-name: my-otel\n";
    assert_eq!(check(otel_ref), Vec::new());
}

#[test]
fn kuma_refused_cases() {
    let b = "spec.default.backends.backend[0]";
    assert_errors(
        "  backends:\n    - type: Prometheus\n",
        &[(&format!("{b}.prometheus"), "must be defined")],
    );
    assert_errors(
        "  backends:\n    - type: Prometheus\n      prometheus:\n        port: 95599\n",
        &[(&format!("{b}.port"), "port must be a valid (1-65535)")],
    );
    assert_errors(
        "  applications:\n    - port: 95599\n",
        &[(
            "spec.default.applications.application[0]",
            "port must be a valid (1-65535)",
        )],
    );
    assert_errors(
        "  sidecar:\n    profiles:\n      exclude:\n        - type: Regex\n          match: \"())(!(\"\n    includeUnused: true\n",
        &[(
            "spec.default.sidecar.profiles.exclude[0].match",
            "invalid regex",
        )],
    );
    assert_errors(
        "  sidecar:\n    profiles:\n      include:\n        - type: not_supported\n",
        &[(
            "spec.default.sidecar.profiles.include[0].type",
            "unrecognized type 'not_supported' - 'Regex', 'Prefix', 'Exact' are supported",
        )],
    );
    assert_errors(
        "  sidecar:\n    profiles:\n      appendProfiles:\n        - name: not_supported\n",
        &[(
            "spec.default.sidecar.profiles.appendProfiles[0].name",
            "unrecognized profile name 'not_supported' - 'All', 'None', 'Basic' are supported",
        )],
    );
    let otel = |conf: &str| {
        format!("  backends:\n    - type: OpenTelemetry\n      openTelemetry:\n{conf}")
    };
    assert_errors(
        &otel("        endpoint: asdasd123\n"),
        &[(
            &format!("{b}.openTelemetry.endpoint"),
            "must be in host:port format",
        )],
    );
    assert_errors(
        &otel("        endpoint: http://endpoint:8023\n"),
        &[(
            &format!("{b}.openTelemetry.endpoint"),
            "must be in host:port format, not a URL",
        )],
    );
    assert_errors(
        "  backends:\n    - type: OpenTelemetry\n      openTelemetry: {}\n",
        &[(
            &format!("{b}.openTelemetry"),
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        )],
    );
    assert_errors(
        &otel(
            "        endpoint: otel-collector:4778\n        backendRef:\n          kind: MeshOpenTelemetryBackend\n          labels:\n            kuma.io/display-name: my-otel\n",
        ),
        &[(
            &format!("{b}.openTelemetry"),
            "openTelemetry must have only one type defined: endpoint, backendRef",
        )],
    );
    assert_errors(
        &otel("        backendRef:\n          kind: MeshOpenTelemetryBackend\n"),
        &[(
            &format!("{b}.openTelemetry.backendRef"),
            "backendRef must have exactly one defined: labels",
        )],
    );
    assert_errors(
        "  backends:\n    - type: OpenTelemetry\n      prometheus:\n        port: 5670\n",
        &[(&format!("{b}.openTelemetry"), "must be defined")],
    );
}

#[test]
fn roles_other_than_system_cannot_target_gateways() {
    let spec = body::<MeshMetricSpec>("targetRef: {kind: MeshGateway, name: gw}\n");
    assert!(validate(&spec).is_empty());
    let v = violations(validate_with_role(&spec, &PolicyRole::Consumer));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, "spec.targetRef.kind");
}

#[test]
fn round_trip_and_warnings() {
    assert_round_trip::<MeshMetricSpec>(
        "targetRef: {kind: Mesh}\ndefault:\n  sidecar: {includeUnused: false, profiles: {appendProfiles: [{name: All}], exclude: [{type: Contains, match: rbac}]}}\n  applications: [{name: app, port: 8080, path: /stats, address: 127.0.0.2}]\n  backends: [{type: Prometheus, prometheus: {clientId: c, port: 5680, path: /m, tls: {mode: Disabled}}}]\n",
    );
    let spec = body::<MeshMetricSpec>(
        "targetRef: {kind: MeshService, name: a}\ndefault:\n  backends:\n    - {type: OpenTelemetry, openTelemetry: {endpoint: 'c:4317'}}\n    - {type: Prometheus, prometheus: {tls: {mode: ProvidedTLS}}}\n",
    );
    let w = warnings(&spec);
    assert!(
        w[0].starts_with("openTelemetry.endpoint is deprecated"),
        "{w:?}"
    );
    assert!(w[1].contains("'targetRef.kind' is deprecated"), "{w:?}");
    assert!(
        w[2].starts_with("OpenTelemetry backends are stored"),
        "{w:?}"
    );
    assert!(w[3].contains("without TLS"), "{w:?}");
}

const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nlabels:\n  kuma.io/zone: zone-1\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http, version: v1}}\n    - {port: 9090, tags: {kuma.io/service: web-admin, kuma.io/protocol: http}}\n";

fn resolve(policies: &[(&str, &str)]) -> Option<ProxyMetrics> {
    let specs: Vec<(&str, MeshMetricSpec)> = policies
        .iter()
        .map(|(n, y)| (*n, body::<MeshMetricSpec>(y)))
        .collect();
    let labels = Tags::new();
    let list: Vec<_> = specs.iter().map(|(n, s)| (*n, &labels, s)).collect();
    let rules = MetricRules::new("default", &list);
    let d = crate::policies::test_util::dataplane(WEB);
    let mut dp_labels = Tags::new();
    dp_labels.insert("kuma.io/zone".into(), "zone-1".into());
    rules.for_dataplane(&DataplaneView {
        mesh: "default",
        name: "web-1",
        labels: &dp_labels,
        spec: &d,
    })
}

#[test]
fn defaults_profiles_append_and_lists_replace() {
    assert_eq!(resolve(&[]), None);
    // No Prometheus backend: nothing served.
    assert_eq!(
        resolve(&[(
            "otel",
            "targetRef: {kind: Mesh}\ndefault:\n  backends: [{type: OpenTelemetry, openTelemetry: {endpoint: 'c:4317'}}]\n"
        )]),
        None
    );
    let wide = "targetRef: {kind: Mesh}\ndefault:\n  sidecar: {profiles: {appendProfiles: [{name: None}], exclude: [{type: Prefix, match: envoy_server}]}}\n  applications: [{port: 8080}]\n  backends: [{type: Prometheus, prometheus: {}}]\n";
    let narrow = "targetRef: {kind: MeshService, name: web}\ndefault:\n  sidecar: {profiles: {appendProfiles: [{name: All}], include: [{type: Regex, match: 'rbac.*'}]}}\n  backends: [{type: Prometheus, prometheus: {clientId: prom-2, port: 5671, path: /m}}]\n";
    let only_wide = resolve(&[("wide", wide)]).unwrap_or_else(|| panic!("metrics"));
    assert_eq!(
        only_wide.prometheus,
        vec![PrometheusEndpoint {
            client_id: DEFAULT_CLIENT_ID.into(),
            port: DEFAULT_PORT,
            path: DEFAULT_PATH.into(),
            tls_requested: false,
        }]
    );
    assert_eq!(only_wide.profile, ProfileName::None);
    assert_eq!(
        only_wide.applications,
        vec![AppEndpoint {
            name: None,
            address: "127.0.0.1".into(),
            port: 8080,
            path: "/metrics".into()
        }]
    );
    let both = resolve(&[("narrow", narrow), ("wide", wide)]).unwrap_or_else(|| panic!("metrics"));
    // appendProfiles append (None + All: All is the broadest), backends are replaced by
    // the more specific policy, exclude stays (the narrow one does not set it).
    assert_eq!(both.profile, ProfileName::All);
    assert_eq!(both.prometheus.len(), 1);
    assert_eq!(both.prometheus[0].client_id, "prom-2");
    assert_eq!(both.prometheus[0].port, 5671);
    assert_eq!(
        both.exclude,
        vec![NameSelector::Prefix("envoy_server".into())]
    );
    assert_eq!(both.include, vec![NameSelector::Regex("rbac.*".into())]);
    assert_eq!(both.applications.len(), 1);
}

#[test]
fn labels_are_kumas_extra_labels() {
    let m = resolve(&[(
        "m",
        "targetRef: {kind: Mesh}\ndefault:\n  backends: [{type: Prometheus, prometheus: {}}]\n",
    )])
    .unwrap_or_else(|| panic!("metrics"));
    let l = |k: &str| m.labels.get(k).map(String::as_str);
    assert_eq!(l("mesh"), Some("default"));
    assert_eq!(l("zone"), Some("zone-1"));
    assert_eq!(l("kuma.proxy_role"), Some("sidecar"));
    assert_eq!(l("dataplane"), Some("web-1"));
    assert_eq!(l("service"), Some("web"));
    assert_eq!(l("kuma_io_service"), Some("web"));
    assert_eq!(l("kuma_io_services"), Some(",web,web-admin,"));
    assert_eq!(l("version"), Some("v1"));
    assert_eq!(l("versions"), Some(",v1,"));
}
