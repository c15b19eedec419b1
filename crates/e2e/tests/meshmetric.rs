//! MeshMetric through the real binaries: each proxy serves its metrics in Envoy's names
//! with Kuma's labels on `networking.address:5670/metrics`, with its application's own
//! metrics; the control plane announces the endpoints over MADS (the request Prometheus's
//! `kuma_sd_configs` makes, long polling included) and Prometheus HTTP service discovery;
//! Debian's real Prometheus discovers every proxy, scrapes them, and a PromQL query returns
//! each service's request count.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use aerie_e2e::{Process, free_port, http, skipped, wait_for};
use common::*;

const EVERY_PROXY: &str = "type: MeshMetric\nname: every-proxy\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    backends:\n      - type: Prometheus\n        prometheus: {}\n";

fn app_port(k: &KongAir, dataplane: &str) -> u64 {
    let dp =
        k.cp.get(&format!("/meshes/default/dataplanes/{dataplane}"))
            .json();
    dp["networking"]["inbound"][0]["servicePort"]
        .as_u64()
        .unwrap()
}

fn dp_address(k: &KongAir, dataplane: &str) -> String {
    let dp =
        k.cp.get(&format!("/meshes/default/dataplanes/{dataplane}"))
            .json();
    dp["networking"]["address"].as_str().unwrap().to_string()
}

/// Kong Air with mTLS, everyone allowed, a MeshMetric on every proxy and check-in-api's
/// application metrics on its proxy; some traffic from both callers.
fn mesh() -> KongAir {
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    k.apply(EVERY_PROXY);
    k.apply(&format!(
        "type: MeshMetric\nname: check-in-app\nmesh: default\nspec:\n  targetRef:\n    kind: Dataplane\n    name: check-in-api-1\n  default:\n    applications:\n      - port: {}\n",
        app_port(&k, "check-in-api-1")
    ));
    for _ in 0..5 {
        assert_eq!(call(&k.from_flight_control), 200);
    }
    for _ in 0..3 {
        assert_eq!(call(&k.from_booking), 200);
    }
    k
}

fn scrape(address: &str) -> Option<String> {
    let r = http("GET", &format!("{address}:5670"), "/metrics", None, &[]).ok()?;
    (r.status == 200).then_some(r.body)
}

fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn proxies_serve_envoy_named_metrics_with_kumas_labels_and_their_apps() {
    let k = mesh();
    let fc = dp_address(&k, "flight-control-1");
    let checkin = dp_address(&k, "check-in-api-1");
    // The caller's outbound, as Envoy names its cluster and connection manager.
    let text = wait_for("flight-control's metrics", PROPAGATION, || {
        let t = scrape(&fc)?;
        (sample(&t, "envoy_cluster_upstream_rq_total", &[]).unwrap_or(0.0) >= 5.0).then_some(t)
    });
    let labels = [
        "envoy_cluster_name=\"check-in-api-blu\"",
        "dataplane=\"flight-control-1\"",
        "mesh=\"default\"",
        "service=\"flight-control-blu\"",
        "kuma_io_service=\"flight-control-blu\"",
        "kuma_proxy_role=\"sidecar\"",
    ];
    assert!(
        sample(&text, "envoy_cluster_upstream_rq_total", &labels).unwrap() >= 5.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "envoy_cluster_upstream_rq_xx",
            &[
                "envoy_response_code_class=\"2\"",
                "envoy_cluster_name=\"check-in-api-blu\""
            ]
        )
        .unwrap()
            >= 5.0,
        "{text}"
    );
    assert!(
        text.contains("# TYPE envoy_cluster_upstream_rq_total counter"),
        "{text}"
    );
    // Kuma's default profile (Basic) leaves the proxy's config counters out.
    assert!(!text.contains("aerie_dp_config_applied"), "{text}");

    // The destination: its inbound, its RBAC decisions and its application's metrics.
    let text = wait_for("check-in-api's metrics and its app's", PROPAGATION, || {
        let t = scrape(&checkin)?;
        t.contains("demo_requests_total").then_some(t)
    });
    assert!(
        sample(
            &text,
            "envoy_http_downstream_rq_xx",
            &[
                "envoy_response_code_class=\"2\"",
                "dataplane=\"check-in-api-1\""
            ]
        )
        .unwrap()
            >= 8.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "envoy_http_rbac_allowed",
            &["service=\"check-in-api-blu\""]
        )
        .unwrap()
            >= 8.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "demo_requests_total",
            &[
                "app=\"check-in-api\"",
                "dataplane=\"check-in-api-1\"",
                "mesh=\"default\""
            ]
        )
        .unwrap()
            >= 8.0,
        "{text}"
    );
    // Anything else on the port: 404.
    let r = http("GET", &format!("{checkin}:5670"), "/other", None, &[]).unwrap();
    assert_eq!(r.status, 404);

    // A profile of None with one metric included back.
    k.apply("type: MeshMetric\nname: every-proxy\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    sidecar:\n      profiles:\n        appendProfiles: [{name: None}]\n        include: [{type: Exact, match: envoy_cluster_upstream_rq_total}]\n    backends:\n      - type: Prometheus\n        prometheus: {}\n");
    let text = wait_for("the None profile", PROPAGATION, || {
        let t = scrape(&fc)?;
        (!t.contains("envoy_cluster_upstream_rq_xx")).then_some(t)
    });
    assert!(
        sample(&text, "envoy_cluster_upstream_rq_total", &[]).is_some(),
        "{text}"
    );
    assert!(!text.contains("envoy_server_live"), "{text}");

    // Deleted, the endpoints close.
    k.kumactl
        .ok(&["delete", "meshmetric", "every-proxy", "--mesh", "default"]);
    wait_for("the endpoint closed", PROPAGATION, || {
        scrape(&fc).is_none().then_some(())
    });
}

/// Prometheus's `kuma_sd_configs` request (discovery/xds/client.go): a JSON
/// DiscoveryRequest POSTed with JSON content type and accept headers.
fn mads_fetch(k: &KongAir, client: &str, version: &str, timeout: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({
        "version_info": version,
        "node": {"id": client},
        "type_url": "type.googleapis.com/kuma.observability.v1.MonitoringAssignment",
    })
    .to_string();
    let r = http(
        "POST",
        &format!("127.0.0.1:{}", k.cp.addrs.mads),
        &format!("/v3/discovery:monitoringassignments?fetch-timeout={timeout}"),
        Some(&body),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
    )
    .unwrap();
    let json = if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap()
    };
    (r.status, json)
}

#[test]
fn discovery_over_mads_and_http_sd_and_a_real_prometheus() {
    let k = mesh();
    let addresses: Vec<(String, String)> = ["check-in-api-1", "flight-control-1", "booking-1"]
        .iter()
        .map(|d| (d.to_string(), format!("{}:5670", dp_address(&k, d))))
        .collect();

    // MADS: one assignment per proxy for a client no backend names (the default client).
    let (status, first) = mads_fetch(&k, "prometheus-e2e", "", "0s");
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["type_url"],
        "type.googleapis.com/kuma.observability.v1.MonitoringAssignment"
    );
    let resources = first["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 3, "{first}");
    for (name, address) in &addresses {
        let r = resources
            .iter()
            .find(|r| r["targets"][0]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} in {first}"));
        assert_eq!(r["mesh"], "default");
        assert_eq!(r["targets"][0]["address"], address.as_str());
        assert_eq!(r["targets"][0]["metrics_path"], "/metrics");
        assert_eq!(r["targets"][0]["scheme"], "http");
    }
    let version = first["version_info"].as_str().unwrap().to_string();
    // Nothing changed: the long poll ends with 304 at its timeout.
    let start = Instant::now();
    let (status, _) = mads_fetch(&k, "prometheus-e2e", &version, "1s");
    assert_eq!(status, 304);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    // A change answers a waiting poll before its timeout: booking's endpoint moves to
    // another client.
    let poll = {
        let mads = k.cp.addrs.mads;
        let version = version.clone();
        std::thread::spawn(move || {
            let body =
                serde_json::json!({"version_info": version, "node": {"id": "prometheus-e2e"}})
                    .to_string();
            let start = Instant::now();
            let r = http(
                "POST",
                &format!("127.0.0.1:{mads}"),
                "/v3/discovery:monitoringassignments?fetch-timeout=30s",
                Some(&body),
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
            )
            .unwrap();
            (r.status, r.body, start.elapsed())
        })
    };
    k.apply("type: MeshMetric\nname: booking-elsewhere\nmesh: default\nspec:\n  targetRef:\n    kind: Dataplane\n    name: booking-1\n  default:\n    backends:\n      - type: Prometheus\n        prometheus:\n          clientId: other-prometheus\n");
    let (status, body, took) = poll.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(25), "{took:?}");
    let changed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        changed["resources"].as_array().unwrap().len(),
        2,
        "{changed}"
    );
    let (_, other) = mads_fetch(&k, "other-prometheus", "", "0s");
    let other = other["resources"].as_array().unwrap().clone();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["targets"][0]["name"], "booking-1");
    // Bad requests say what is wrong.
    let r = http(
        "POST",
        &format!("127.0.0.1:{}", k.cp.addrs.mads),
        "/v3/discovery:monitoringassignments?fetch-timeout=soon",
        Some("{}"),
        &[("content-type", "application/json")],
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("fetch-timeout"), "{}", r.body);
    k.kumactl.ok(&[
        "delete",
        "meshmetric",
        "booking-elsewhere",
        "--mesh",
        "default",
    ]);

    // HTTP SD: the same targets with the labels kuma_sd_configs gives.
    let sd = wait_for("booking back with the default client", PROPAGATION, || {
        let r = http(
            "GET",
            &format!("127.0.0.1:{}", k.cp.addrs.mads),
            "/http_sd",
            None,
            &[],
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        (v.as_array()?.len() == 3).then_some(v)
    });
    for (name, address) in &addresses {
        let group = sd
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["labels"]["__meta_kuma_dataplane"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} in {sd}"));
        assert_eq!(group["targets"], serde_json::json!([address]));
        assert_eq!(group["labels"]["__meta_kuma_mesh"], "default");
        assert_eq!(group["labels"]["__metrics_path__"], "/metrics");
    }

    // The real Prometheus: discovers every proxy over HTTP SD, scrapes them, answers PromQL.
    let Some(prometheus) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        skipped(
            "discovery_over_mads_and_http_sd_and_a_real_prometheus (Prometheus part)",
            "no prometheus binary (apt-get install prometheus)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kuma-dataplanes\n    scrape_interval: 1s\n    http_sd_configs:\n      - url: http://127.0.0.1:{}/http_sd\n        refresh_interval: 1s\n",
            k.cp.addrs.mads
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let mut prom = Process::spawn("prometheus", cmd);
    let query = "sum by (service) (envoy_http_downstream_rq_total)";
    let by_service = wait_for(
        "Prometheus to scrape every proxy",
        Duration::from_secs(60),
        || {
            if let Some(status) = prom.exited() {
                panic!("prometheus exited ({status}):\n{}", prom.logs());
            }
            let r = http(
                "GET",
                &web,
                &format!(
                    "/api/v1/query?query={}",
                    query
                        .replace(' ', "%20")
                        .replace('(', "%28")
                        .replace(')', "%29")
                ),
                None,
                &[],
            )
            .ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            let result = v["data"]["result"].as_array()?.clone();
            let counts: std::collections::BTreeMap<String, f64> = result
                .iter()
                .filter_map(|s| {
                    Some((
                        s["metric"]["service"].as_str()?.to_string(),
                        s["value"][1].as_str()?.parse().ok()?,
                    ))
                })
                .collect();
            (counts.len() == 3).then_some(counts)
        },
    );
    assert!(by_service["flight-control-blu"] >= 5.0, "{by_service:?}");
    assert!(by_service["booking-blu"] >= 3.0, "{by_service:?}");
    assert!(by_service["check-in-api-blu"] >= 8.0, "{by_service:?}");
    // Every proxy is a healthy target.
    let targets = http("GET", &web, "/api/v1/targets", None, &[])
        .unwrap()
        .json();
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 3, "{targets}");
    for t in active {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["labels"]["job"], "kuma-dataplanes");
    }
    prom.kill9();
}
