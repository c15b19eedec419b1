//! MeshAccessLog through the real sidecars: Kuma's default format in a file on the caller's
//! side, JSON lines on the destination's side naming the caller its certificate proves
//! (Kuma logs `unknown` there), a TCP collector getting a line per TCP connection, lines
//! dropped and counted while the collector is down, no more lines once the policy is
//! deleted, and OTLP log records (the official protobuf) from both sides to an
//! OpenTelemetry collector.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use aerie_e2e::{http, wait_for};
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The lines of `path` that are not the warm-up requests', once there are `n` of them.
fn wait_lines(what: &str, path: &Path, n: usize) -> Vec<String> {
    wait_for(what, PROPAGATION, || {
        let l: Vec<String> = lines(path)
            .into_iter()
            .filter(|l| !l.contains("warm-up"))
            .collect();
        (l.len() >= n).then_some(l)
    })
}

fn metric(admin: &str, name: &str, backend: &str) -> u64 {
    let text = http("GET", admin, "/stats/prometheus", None, &[])
        .map(|r| r.body)
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("backend=\"{backend}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn file_logs_on_both_sides_name_the_verified_caller() {
    let dir = tempfile::tempdir().unwrap();
    let out_log = dir.path().join("outbound.log");
    let in_log = dir.path().join("inbound.log");
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);

    // flight-control's outbounds in Kuma's default format; every caller of check-in-api
    // (the `rules` form) in JSON.
    k.apply(&format!(
        "type: MeshAccessLog\nname: flight-control-out\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        backends:\n          - type: File\n            file:\n              path: {}\n",
        out_log.display()
    ));
    k.apply(&format!(
        "type: MeshAccessLog\nname: check-in-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  rules:\n    - default:\n        backends:\n          - type: File\n            file:\n              path: {}\n              format:\n                type: Json\n                json:\n                  - {{key: code, value: '%RESPONSE_CODE%'}}\n                  - {{key: request, value: '%REQ(:METHOD)% %REQ(:PATH)%'}}\n                  - {{key: source, value: '%KUMA_SOURCE_SERVICE%'}}\n                  - {{key: peer, value: '%DOWNSTREAM_PEER_URI_SAN%'}}\n                  - {{key: destination, value: '%KUMA_DESTINATION_SERVICE%'}}\n                  - {{key: direction, value: '%KUMA_TRAFFIC_DIRECTION%'}}\n                  - {{key: sent, value: '%BYTES_SENT%'}}\n                  - {{key: id, value: '%REQ(X-REQUEST-ID)%'}}\n",
        in_log.display()
    ));

    // Requests until both policies are in force (the first lines may predate one of them).
    wait_for("both sides log", PROPAGATION, || {
        let r = http(
            "GET",
            &k.from_flight_control,
            "/check-in?warm=1",
            None,
            &[("x-request-id", "warm-up")],
        )
        .ok()?;
        assert_eq!(r.status, 200);
        (!lines(&out_log).is_empty() && !lines(&in_log).is_empty()).then_some(())
    });
    for i in 0..5 {
        let id = format!("req-{i}");
        let r = http(
            "GET",
            &k.from_flight_control,
            &format!("/check-in?n={i}"),
            None,
            &[("x-request-id", &id), ("user-agent", "e2e/1")],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let r = http("GET", &k.from_booking, "/check-in?from=booking", None, &[]).unwrap();
        assert_eq!(r.status, 200);
    }
    // The caller's side: flight-control's five requests (booking is not selected), with
    // flight-control's own address as Kuma's source address.
    let fc =
        k.cp.get("/meshes/default/dataplanes/flight-control-1")
            .json();
    let fc_address = fc["networking"]["address"].as_str().unwrap().to_string();
    let out = wait_lines("outbound lines", &out_log, 5);
    assert_eq!(out.len(), 5, "{out:#?}");
    for (i, line) in out.iter().enumerate() {
        for part in [
            "default \"GET /check-in?n=".to_string(),
            format!("/check-in?n={i} HTTP/1.1\" 200 - 0 "),
            format!("\"e2e/1\" \"-\" \"req-{i}\""),
            format!(
                "\"flight-control-blu\" \"check-in-api-blu\" \"{fc_address}\" \"{}\"",
                k.checkin_inbound
            ),
        ] {
            assert!(line.contains(&part), "{part:?} not in {line}");
        }
        assert!(line.starts_with("[20"), "{line}");
    }
    // The destination's side: both callers, each named by its certificate.
    let inbound = wait_lines("inbound lines", &in_log, 10);
    let parsed: Vec<serde_json::Value> = inbound
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 10, "{parsed:#?}");
    let from_fc: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["source"] == "flight-control-blu")
        .collect();
    assert_eq!(from_fc.len(), 5, "{parsed:#?}");
    for v in &from_fc {
        assert_eq!(v["code"], 200);
        assert_eq!(v["peer"], "spiffe://default/flight-control-blu");
        assert_eq!(v["destination"], "check-in-api-blu");
        assert_eq!(v["direction"], "INBOUND");
        assert!(v["sent"].as_u64().unwrap() > 0, "{v}");
        assert!(
            v["request"]
                .as_str()
                .unwrap()
                .starts_with("GET /check-in?n=")
        );
    }
    let from_booking = parsed
        .iter()
        .filter(|v| v["source"] == "booking-blu" && v["request"] == "GET /check-in?from=booking")
        .count();
    assert_eq!(from_booking, 5, "{parsed:#?}");
    // `_explain` shows the inbound's log.
    let explained =
        k.cp.get("/meshes/default/dataplanes/check-in-api-1/_explain")
            .json();
    let log = &explained["inbounds"][0]["meshAccessLog"];
    assert_eq!(
        log["policies"],
        serde_json::json!(["check-in-in"]),
        "{explained}"
    );
    assert_eq!(
        log["effective"]["entries"][0]["backends"][0]["path"],
        serde_json::json!(in_log.display().to_string()),
        "{explained}"
    );
    let written = metric(
        &k.checkin.admin,
        "aerie_dp_access_log_lines_written_total",
        &format!("file:{}", in_log.display()),
    );
    assert!(written >= 10, "{written}");

    // The control plane's own metrics count the proxies' sessions and config pushes.
    let diag = format!("127.0.0.1:{}", k.cp.addrs.diagnostics);
    let m = http("GET", &diag, "/metrics", None, &[]).unwrap().body;
    assert!(m.contains("xds_streams_active{zone=\"Zone\"} 3"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("xds_requests_received{") && l.contains("confirmation=\"ACK\"")),
        "{m}"
    );
    assert!(m.contains("xds_responses_sent{type_url="), "{m}");
    // Each ACK closes a delivery: sent -> answered, in milliseconds.
    let deliveries: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("xds_delivery_count{zone=\"Zone\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(deliveries >= 3.0, "{m}");
    assert!(
        m.contains("xds_responses_sent_bytes_bucket{type_url="),
        "{m}"
    );
    assert!(
        m.contains(
            "xds_generation_count{proxy_type=\"dataplane\",result=\"changed\",zone=\"Zone\"}"
        ),
        "{m}"
    );

    // Deleted, the proxy stops logging.
    k.kumactl.ok(&[
        "delete",
        "meshaccesslog",
        "flight-control-out",
        "--mesh",
        "default",
    ]);
    wait_for(
        "the outbound log is gone from the config",
        PROPAGATION,
        || {
            let dump = http("GET", &k.flight_control.admin, "/config_dump", None, &[]).ok()?;
            (dump.status == 200 && !dump.body.contains("accessLog")).then_some(())
        },
    );
    let (out_before, in_before) = (lines(&out_log).len(), lines(&in_log).len());
    for _ in 0..3 {
        assert_eq!(call(&k.from_flight_control), 200);
    }
    // The inbound side still logs these three; the outbound side has no log to write to.
    wait_for("inbound still logs", PROPAGATION, || {
        (lines(&in_log).len() >= in_before + 3).then_some(())
    });
    assert_eq!(lines(&out_log).len(), out_before);
}

#[test]
fn a_tcp_collector_gets_a_line_per_connection_and_drops_are_counted() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = collector.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // One collector connection at a time, lines forwarded to the test.
        for conn in collector.incoming() {
            let Ok(conn) = conn else { return };
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    });
    let k = KongAir::start("tcp");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    k.apply(&format!(
        "type: MeshAccessLog\nname: tcp-collector\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        backends:\n          - type: Tcp\n            tcp:\n              address: {address}\n              format:\n                type: Plain\n                plain: '%KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% via %UPSTREAM_HOST% sent=%BYTES_SENT% received=%BYTES_RECEIVED% flags=%RESPONSE_FLAGS%'\n"
    ));
    let echo = |payload: &[u8]| -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(&k.from_flight_control).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(payload).ok()?;
        let mut got = vec![0u8; payload.len()];
        s.read_exact(&mut got).ok()?;
        Some(got)
    };
    let expected = format!(
        "flight-control-blu->check-in-api-blu via {} sent=11 received=11 flags=-",
        k.checkin_inbound
    );
    let line = wait_for("a line at the collector", PROPAGATION, || {
        assert_eq!(echo(b"hello world").as_deref(), Some(&b"hello world"[..]));
        rx.recv_timeout(Duration::from_millis(200)).ok()
    });
    assert_eq!(line, expected);
    for _ in 0..3 {
        assert_eq!(echo(b"hello world").as_deref(), Some(&b"hello world"[..]));
        let line = rx.recv_timeout(PROPAGATION).unwrap();
        assert_eq!(line, expected);
    }
    // booking's connections are not logged there: nothing arrives besides flight-control's.
    let mut s = TcpStream::connect(&k.from_booking).unwrap();
    s.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).unwrap();
    drop(s);
    assert_eq!(echo(b"hello world").as_deref(), Some(&b"hello world"[..]));
    assert_eq!(rx.recv_timeout(PROPAGATION).unwrap(), expected);

    // The collector goes away: connections still work, their lines are dropped and
    // counted.
    drop(rx);
    let backend = format!("tcp:{address}");
    wait_for("lines dropped and counted", PROPAGATION, || {
        assert_eq!(echo(b"hello world").as_deref(), Some(&b"hello world"[..]));
        (metric(
            &k.flight_control.admin,
            "aerie_dp_access_log_lines_dropped_total",
            &backend,
        ) > 0)
            .then_some(())
    });
}

/// A log record as the OTLP receiver decoded it, with its resource's attributes.
#[derive(Debug, Clone)]
struct Record {
    resource: HashMap<String, String>,
    body: otlp::any_value::Value,
    attributes: HashMap<String, String>,
    time_unix_nano: u64,
}

mod otlp {
    pub use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
}

#[derive(Clone, Default)]
struct LogReceiver(Arc<Mutex<Vec<Record>>>);

fn text(v: Option<&otlp::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(otlp::any_value::Value::StringValue(s)) => s.clone(),
        Some(otlp::any_value::Value::IntValue(i)) => i.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl LogsService for LogReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rl in request.into_inner().resource_logs {
            let resource: HashMap<String, String> = rl
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                .collect();
            for sl in rl.scope_logs {
                assert_eq!(sl.scope.as_ref().unwrap().name, "kuma-dp");
                for r in sl.log_records {
                    got.push(Record {
                        resource: resource.clone(),
                        body: r.body.and_then(|b| b.value).unwrap(),
                        attributes: r
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                        time_unix_nano: r.time_unix_nano,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP/gRPC logs receiver on its own runtime thread: its address and what it got.
fn otlp_log_receiver() -> (String, LogReceiver) {
    let receiver = LogReceiver::default();
    let svc = LogsServiceServer::new(receiver.clone());
    let addr = spawn_server(move |listener| async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, receiver)
}

#[test]
fn opentelemetry_backends_get_otlp_log_records_from_both_sides() {
    let (endpoint, receiver) = otlp_log_receiver();
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);

    // The caller's side: a key-value body and an attribute; the destination's side:
    // Kuma's default format as the body.
    k.apply(&format!(
        "type: MeshAccessLog\nname: otel-out\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        backends:\n          - type: OpenTelemetry\n            openTelemetry:\n              endpoint: {endpoint}\n              attributes:\n                - {{key: request.id, value: '%REQ(X-REQUEST-ID)%'}}\n              body:\n                kvlistValue:\n                  values:\n                    - {{key: status, value: {{stringValue: '%RESPONSE_CODE%'}}}}\n                    - {{key: path, value: {{stringValue: '%REQ(:PATH)%'}}}}\n"
    ));
    k.apply(&format!(
        "type: MeshAccessLog\nname: otel-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  rules:\n    - default:\n        backends:\n          - type: OpenTelemetry\n            openTelemetry:\n              endpoint: {endpoint}\n"
    ));
    let is_out = |r: &Record| matches!(r.body, otlp::any_value::Value::KvlistValue(_));
    wait_for("records from both sides", PROPAGATION, || {
        let r = http(
            "GET",
            &k.from_flight_control,
            "/check-in?warm=1",
            None,
            &[("x-request-id", "warm-up")],
        )
        .ok()?;
        assert_eq!(r.status, 200);
        let got = receiver.0.lock().unwrap();
        (got.iter().any(is_out) && got.iter().any(|r| !is_out(r))).then_some(())
    });
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for i in 0..3 {
        let id = format!("otel-{i}");
        let r = http(
            "GET",
            &k.from_flight_control,
            &format!("/check-in?otel={i}"),
            None,
            &[("x-request-id", &id)],
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let fresh = |r: &Record| r.time_unix_nano >= before;
    let got = wait_for("three records each side", PROPAGATION, || {
        let got = receiver.0.lock().unwrap().clone();
        let n_out = got.iter().filter(|r| fresh(r) && is_out(r)).count();
        let n_in = got.iter().filter(|r| fresh(r) && !is_out(r)).count();
        (n_out >= 3 && n_in >= 3).then_some(got)
    });
    for r in got.iter().filter(|r| fresh(r)) {
        assert_eq!(
            r.resource.get("kuma.mesh").map(String::as_str),
            Some("default"),
            "{r:?}"
        );
        match &r.body {
            otlp::any_value::Value::KvlistValue(list) => {
                let fields: HashMap<String, String> = list
                    .values
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                    .collect();
                assert_eq!(fields["status"], "200", "{r:?}");
                assert!(fields["path"].starts_with("/check-in?otel="), "{r:?}");
                let id = &r.attributes["request.id"];
                assert_eq!(
                    fields["path"].trim_start_matches("/check-in?otel="),
                    id.trim_start_matches("otel-"),
                    "{r:?}"
                );
            }
            otlp::any_value::Value::StringValue(line) => {
                // Kuma's default HTTP format, naming the caller its certificate proves.
                assert!(line.contains("\"GET /check-in?otel="), "{line}");
                assert!(line.contains(" 200 "), "{line}");
                assert!(line.contains("\"flight-control-blu\""), "{line}");
            }
            other => panic!("unexpected body {other:?}"),
        }
    }
    let written = metric(
        &k.checkin.admin,
        "aerie_dp_access_log_lines_written_total",
        &format!("otel:{endpoint}"),
    );
    assert!(written >= 3, "{written}");
}
