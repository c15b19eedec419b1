//! Kuma 2.14's `meshtrace/api/v1alpha1/validator_test.go`, every case (6 accepted, the
//! refused ones with exactly Kuma's violations), then what this port adds.

use super::*;
use crate::policies::test_util::{assert_round_trip, body, pairs, violations};

fn check(yaml: &str) -> Vec<(String, String)> {
    violations(validate(&body::<MeshTraceSpec>(yaml)))
}

fn with_default(default: &str) -> String {
    format!("targetRef:\n  kind: MeshService\n  name: backend\ndefault:\n{default}")
}

fn assert_errors(default: &str, expected: &[(&str, &str)]) {
    let yaml = with_default(default);
    assert_eq!(check(&yaml), pairs(expected), "for\n{yaml}");
}

const TAGS_AND_SAMPLING: &str = "  tags:\n    - name: team\n      literal: core\n    - name: env\n      header:\n        name: x-env\n        default: prod\n    - name: version\n      header:\n        name: x-version\n  sampling:\n    overall: 80\n    random: \"60.1\"\n    client: 40\n";

#[test]
fn kuma_accepted_cases() {
    let accepted = [
        with_default(&format!(
            "  backends:\n    - type: Zipkin\n      zipkin:\n        url: http://jaeger-collector.mesh-observability:9411/api/v2/spans\n        apiVersion: httpJson\n{TAGS_AND_SAMPLING}"
        )),
        with_default("  backends:\n    - type: OpenTelemetry\n      openTelemetry:\n        endpoint: otel-collector:4317\n"),
        with_default(&format!("  backends: []\n{TAGS_AND_SAMPLING}")),
        with_default("  backends:\n    - type: Datadog\n      datadog:\n        url: http://intake.datadoghq.eu:8126\n        splitService: true\n"),
        "targetRef:\n  kind: MeshGateway\n  name: edge\ndefault:\n  backends:\n    - type: Datadog\n      datadog:\n        url: http://intake.datadoghq.eu:8126\n        splitService: true\n".to_string(),
        with_default("  backends:\n    - type: OpenTelemetry\n      openTelemetry:\n        backendRef:\n          kind: MeshOpenTelemetryBackend\n          labels:\n            kuma.io/display-name: my-otel\n"),
    ];
    for yaml in accepted {
        assert_eq!(check(&yaml), Vec::new(), "for\n{yaml}");
    }
}

#[test]
fn kuma_refused_cases() {
    assert_eq!(
        check("targetRef:\n  kind: MeshService\n  name: backend\n"),
        pairs(&[("spec.default.backends", "must be defined")])
    );
    assert_errors(
        "  backends:\n    - zipkin:\n        url: http://jaeger-collector1.mesh-observability:9411/api/v2/spans\n    - zipkin:\n        url: http://jaeger-collector2.mesh-observability:9411/api/v2/spans\n",
        &[(
            "spec.default.backends",
            "must have zero or one backend defined",
        )],
    );
    let b = "spec.default.backends[0]";
    assert_errors(
        "  backends:\n    - type: Zipkin\n      zipkin: {}\n",
        &[(&format!("{b}.zipkin.url"), "must not be empty")],
    );
    assert_errors(
        "  backends:\n    - type: Zipkin\n      zipkin:\n        url: not_valid_url\n",
        &[(&format!("{b}.zipkin.url"), "must be a valid url")],
    );
    let datadog = |url: &str, message: &str| {
        assert_errors(
            &format!("  backends:\n    - type: Datadog\n      datadog:\n        url: {url}\n"),
            &[(&format!("{b}.datadog.url"), message)],
        );
    };
    datadog("not_valid_url", "must be a valid url");
    datadog("http://intake.datadoghq.eu", "port must be defined");
    datadog(
        "http://intake.datadoghq.eu:999999",
        "port must be a valid (1-65535)",
    );
    datadog("sql://intake.datadoghq.eu:8126", "scheme must be http");
    datadog(
        "http://intake.datadoghq.eu:8126/some/path",
        "path must not be defined",
    );
    let dd = "  backends:\n    - type: Datadog\n      datadog:\n        url: http://intake.datadoghq.eu:443\n";
    assert_errors(
        &format!("{dd}  tags:\n    - literal: example\n    - header:\n        default: example\n"),
        &[
            ("spec.default.tags[0].name", "must not be empty"),
            ("spec.default.tags[1].name", "must not be empty"),
        ],
    );
    assert_errors(
        &format!("{dd}  tags:\n    - name: example\n"),
        &[(
            "spec.default.tags[0]",
            "tag must have only one type defined: header, literal",
        )],
    );
    assert_errors(
        &format!("{dd}  sampling:\n    overall: 101\n"),
        &[("spec.default.sampling.overall", "must be between 0 and 100")],
    );
    assert_errors(
        &format!("{dd}  sampling:\n    overall: xyz\n    client: xyz\n    random: xyz\n"),
        &[
            ("spec.default.sampling.client", "string is not a number"),
            ("spec.default.sampling.random", "string is not a number"),
            ("spec.default.sampling.overall", "string is not a number"),
        ],
    );
    for (kind, field) in [
        ("Datadog", "datadog"),
        ("Zipkin", "zipkin"),
        ("OpenTelemetry", "openTelemetry"),
    ] {
        assert_errors(
            &format!("  backends:\n    - type: {kind}\n"),
            &[(&format!("{b}.{field}"), "must be defined")],
        );
    }
    assert_errors(
        "  backends:\n    - type: OpenTelemetry\n      openTelemetry:\n        endpoint: \"\"\n",
        &[(
            &format!("{b}.openTelemetry"),
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        )],
    );
}

#[test]
fn roles_round_trip_and_warnings() {
    let gw = body::<MeshTraceSpec>(
        "targetRef: {kind: MeshGateway, name: edge}\ndefault: {backends: []}\n",
    );
    assert!(validate(&gw).is_empty());
    let v = violations(validate_with_role(&gw, &PolicyRole::Consumer));
    assert_eq!(v[0].0, "spec.targetRef.kind", "{v:?}");
    assert_round_trip::<MeshTraceSpec>(&with_default(
        "  backends:\n    - type: Zipkin\n      zipkin: {url: 'http://z:9411/api/v2/spans', traceId128bit: true, apiVersion: httpJson, sharedSpanContext: false}\n  sampling: {overall: 1, client: '2.5', random: 3}\n  tags: [{name: t, header: {name: x-t, default: d}}]\n",
    ));
    let spec = body::<MeshTraceSpec>(&with_default(
        "  backends:\n    - type: OpenTelemetry\n      openTelemetry: {endpoint: 'c:4317'}\n",
    ));
    let w = warnings(&spec);
    assert!(
        w[0].starts_with("openTelemetry.endpoint is deprecated"),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|m| m.contains("send no spans")),
        "an OpenTelemetry endpoint is traced: {w:?}"
    );
    for (default, why) in [
        (
            "  backends: [{type: Datadog, datadog: {url: 'http://agent:8126'}}]\n",
            "the Datadog backend is not supported",
        ),
        (
            "  backends: [{type: Zipkin, zipkin: {url: 'http://z:9411/api/v2/spans', apiVersion: httpProto}}]\n",
            "apiVersion httpProto",
        ),
        (
            "  backends: [{type: Zipkin, zipkin: {url: 'https://z:9411/api/v2/spans'}}]\n",
            "plain HTTP only",
        ),
        (
            "  backends: [{type: OpenTelemetry, openTelemetry: {backendRef: {kind: MeshOpenTelemetryBackend, name: otel}}}]\n",
            "backendRef are not supported",
        ),
    ] {
        let w = warnings(&body::<MeshTraceSpec>(&with_default(default)));
        assert!(
            w.iter()
                .any(|m| m.contains(why)
                    && m.ends_with("proxies this MeshTrace selects send no spans")),
            "{default}: {w:?}"
        );
    }
}

const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n";

fn resolve(policies: &[(&str, &str)]) -> Option<ProxyTracing> {
    use crate::policies::rules::DataplaneView;
    use crate::spec::Tags;
    let specs: Vec<(&str, MeshTraceSpec)> = policies
        .iter()
        .map(|(n, y)| (*n, body::<MeshTraceSpec>(y)))
        .collect();
    let labels = Tags::new();
    let list: Vec<_> = specs.iter().map(|(n, s)| (*n, &labels, s)).collect();
    let rules = TraceRules::new("default", &list);
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
fn resolves_kumas_defaults_merges_and_adds_kumas_tags() {
    assert_eq!(resolve(&[]), None);
    let t = resolve(&[(
        "zipkin",
        "targetRef: {kind: Mesh}\ndefault:\n  backends: [{type: Zipkin, zipkin: {url: 'http://z:9411/api/v2/spans'}}]\n",
    )])
    .unwrap();
    assert_eq!(t.service, "web");
    assert_eq!(
        t.backend,
        TraceBackend::Zipkin {
            url: "http://z:9411/api/v2/spans".into(),
            trace_id_128bit: false,
            shared_span_context: true,
        }
    );
    assert_eq!(
        t.sampling,
        SamplingRates {
            overall: 1_000_000,
            client: 1_000_000,
            random: 1_000_000
        },
        "100 % when unset"
    );
    assert_eq!(
        t.tags,
        vec![
            SpanTag::Literal {
                name: "kuma.mesh".into(),
                value: "default".into()
            },
            SpanTag::Literal {
                name: "kuma.zone".into(),
                value: "zone-1".into()
            },
        ]
    );
    // A more specific policy's sampling and tags merge over the mesh-wide backend.
    let t = resolve(&[
        (
            "otel",
            "targetRef: {kind: Mesh}\ndefault:\n  backends: [{type: OpenTelemetry, openTelemetry: {endpoint: 'collector:4317'}}]\n  sampling: {random: 50}\n",
        ),
        (
            "web-only",
            "targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}\ndefault:\n  sampling: {overall: '1.5', client: 0}\n  tags: [{name: kuma.mesh, literal: mine}, {name: env, header: {name: X-Env, default: prod}}]\n",
        ),
    ])
    .unwrap();
    assert_eq!(
        t.backend,
        TraceBackend::OpenTelemetry {
            endpoint: "collector:4317".into()
        }
    );
    assert_eq!(
        t.sampling,
        SamplingRates {
            overall: 15_000,
            client: 0,
            random: 500_000
        }
    );
    assert_eq!(t.tags[0].name(), "kuma.mesh", "the policy's own tag wins");
    assert_eq!(
        t.tags[1],
        SpanTag::Header {
            name: "env".into(),
            header: "x-env".into(),
            default: Some("prod".into())
        }
    );
    assert_eq!(t.tags.iter().filter(|t| t.name() == "kuma.mesh").count(), 1);
    // A backend kuma-dp cannot send to: no tracing at all.
    assert_eq!(
        resolve(&[(
            "dd",
            "targetRef: {kind: Mesh}\ndefault:\n  backends: [{type: Datadog, datadog: {url: 'http://agent:8126'}}]\n",
        )]),
        None
    );
}

#[test]
fn datadog_urls() {
    assert!(datadog_url_problems("http://agent:8126").is_empty());
    assert!(datadog_url_problems("http://[::1]:8126").is_empty());
    assert_eq!(
        datadog_url_problems("https://u@agent:8126/p?q#f"),
        vec![
            "scheme must be http",
            "user must not be defined",
            "path must not be defined",
            "query must not be defined",
            "fragment must not be defined"
        ]
    );
}
