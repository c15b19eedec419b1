//! MeshTrace through the real sidecars: a request from flight-control to check-in-api makes
//! one trace of a CLIENT span (flight-control's outbound) and its child SERVER span
//! (check-in-api's inbound), sent to an OTLP/gRPC receiver that decodes the official
//! protobuf (opentelemetry-proto's `TraceService`), with the policy's tags and the trace
//! context the application sees; a caller's own `traceparent` is continued; 0 % sampling
//! sends nothing and passes the decision on; and Zipkin v2 JSON with B3 headers and
//! Zipkin's shared span context.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use aerie_e2e::{http, wait_for};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// A span as the receiver decoded it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    kind: i32,
    name: String,
    tags: HashMap<String, String>,
    status_code: i32,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                assert_eq!(ss.scope.as_ref().unwrap().name, "kuma-dp");
                for s in ss.spans {
                    got.push(Got {
                        service: service.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        kind: s.kind,
                        name: s.name,
                        tags: s
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                        status_code: s.status.map_or(0, |st| st.code),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn otlp_receiver() -> (String, Receiver) {
    let receiver = Receiver::default();
    let svc = TraceServiceServer::new(receiver.clone());
    let addr = spawn_server(move |listener| async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, receiver)
}

/// The `GET /headers` answer of check-in-api's application (what its sidecar passed on).
fn app_headers(k: &KongAir, headers: &[(&str, &str)]) -> serde_json::Value {
    let r = http("GET", &k.from_flight_control, "/headers", None, headers).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// `00-{trace}-{span}-{flags}` split.
fn traceparent(v: &serde_json::Value) -> Option<(String, String, String)> {
    let tp = v["traceparent"].as_str()?;
    let parts: Vec<&str> = tp.split('-').collect();
    (parts.len() == 4).then(|| (parts[1].into(), parts[2].into(), parts[3].into()))
}

fn spans_of(r: &Receiver, trace: &str) -> Vec<Got> {
    r.0.lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect()
}

fn wait_trace(r: &Receiver, trace: &str, n: usize) -> Vec<Got> {
    wait_for(&format!("{n} spans of trace {trace}"), PROPAGATION, || {
        let spans = spans_of(r, trace);
        (spans.len() >= n).then_some(spans)
    })
}

#[test]
fn otlp_spans_from_both_sidecars_make_one_trace() {
    let (collector, receiver) = otlp_receiver();
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    wait_status("flight-control -> check-in", &k.from_flight_control, 200);
    k.apply(&format!(
        "type: MeshTrace\nname: default\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    backends:\n      - type: OpenTelemetry\n        openTelemetry:\n          endpoint: {collector}\n    tags:\n      - name: team\n        literal: core\n      - name: env\n        header:\n          name: x-env\n          default: prod\n"
    ));

    // Once both sidecars trace, the application sees the server span as its parent.
    let (trace, app_parent) = wait_for("both sidecars trace", PROPAGATION, || {
        let h = app_headers(&k, &[("x-env", "e2e")]);
        let (trace, span, flags) = traceparent(&h)?;
        assert_eq!(flags, "01", "{h}");
        // The first traced requests may predate the policy on one side: then this trace
        // never gets its second span, and the next request is tried.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if spans_of(&receiver, &trace).len() == 2 {
                return Some((trace, span));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    });
    let spans = wait_trace(&receiver, &trace, 2);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(client.service, "flight-control-blu");
    assert_eq!(server.service, "check-in-api-blu");
    assert_eq!(client.parent, "", "the caller sent no context: a root span");
    assert_eq!(
        server.parent, client.span_id,
        "the server span is the client's child"
    );
    assert_eq!(
        server.span_id, app_parent,
        "the application continues the server span"
    );
    for s in [client, server] {
        assert_eq!(s.name, "GET check-in-api-blu");
        assert_eq!(s.tags["http.status_code"], "200", "{s:?}");
        assert_eq!(s.tags["upstream_cluster"], "check-in-api-blu");
        assert_eq!(s.tags["team"], "core");
        assert_eq!(s.tags["env"], "e2e");
        assert_eq!(s.tags["kuma.mesh"], "default");
        assert_eq!(s.tags["http.method"], "GET");
        assert_eq!(s.status_code, 0, "STATUS_CODE_UNSET");
    }
    assert_eq!(client.tags["node_id"], "flight-control-1");
    assert_eq!(server.tags["node_id"], "check-in-api-1");
    assert_eq!(client.tags["upstream_address"], k.checkin_inbound);

    // An instrumented caller's own context is continued: same trace, its span the parent.
    let theirs = "4bf92f3577b34da6a3ce929d0e0e4736";
    let h = app_headers(
        &k,
        &[("traceparent", &format!("00-{theirs}-00f067aa0ba902b7-01"))],
    );
    assert_eq!(traceparent(&h).unwrap().0, theirs);
    let spans = wait_trace(&receiver, theirs, 2);
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap();
    assert_eq!(client.parent, "00f067aa0ba902b7");
    assert_eq!(
        spans.iter().filter(|s| s.parent == client.span_id).count(),
        1
    );
    // A failed request marks both spans as errors.
    let r = http("GET", &k.from_flight_control, "/status/503", None, &[]).unwrap();
    assert_eq!(r.status, 503);

    // 0 % random sampling: nothing is traced, and the decision travels with the request so
    // the destination's sidecar does not trace on its own; a forced trace still is.
    k.apply(&format!(
        "type: MeshTrace\nname: default\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    backends:\n      - type: OpenTelemetry\n        openTelemetry:\n          endpoint: {collector}\n    sampling:\n      random: 0\n"
    ));
    let unsampled = wait_for("0 % sampling in force", PROPAGATION, || {
        let h = app_headers(&k, &[]);
        let (trace, _, flags) = traceparent(&h)?;
        (flags == "00").then_some(trace)
    });
    let mut quiet = vec![unsampled];
    for _ in 0..5 {
        let h = app_headers(&k, &[]);
        let (trace, _, flags) = traceparent(&h).unwrap();
        assert_eq!(flags, "00");
        quiet.push(trace);
    }
    let forced = app_headers(&k, &[("x-envoy-force-trace", "true")]);
    let (forced, _, flags) = traceparent(&forced).unwrap();
    assert_eq!(flags, "01");
    // The forced trace arrives after everything sent before it.
    wait_trace(&receiver, &forced, 2);
    let got = receiver.0.lock().unwrap().clone();
    assert!(
        got.iter().all(|s| !quiet.contains(&s.trace_id)),
        "unsampled requests made spans"
    );
    // A failed request: its client span and the server spans of every try (Kuma's default
    // MeshRetry retries a 503) are errors, each try a child of the client span.
    let failed: Vec<&Got> = got
        .iter()
        .filter(|s| s.tags.get("http.status_code").map(String::as_str) == Some("503"))
        .collect();
    let clients: Vec<&&Got> = failed
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(clients.len(), 1, "{failed:#?}");
    let tries = failed
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .inspect(|s| assert_eq!(s.parent, clients[0].span_id, "{s:?}"))
        .count();
    assert!(tries >= 1, "{failed:#?}");
    assert!(
        failed
            .iter()
            .all(|s| s.status_code == 2 && s.tags["error"] == "true")
    );

    // The proxies count what they exported.
    let exported = |admin: &str| -> u64 {
        let text = http("GET", admin, "/stats/prometheus", None, &[])
            .unwrap()
            .body;
        text.lines()
            .find(|l| {
                l.starts_with("aerie_dp_tracing_spans_exported_total")
                    && l.contains(&format!("backend=\"otel:{collector}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(exported(&k.flight_control.admin) >= 3);
    assert!(exported(&k.checkin.admin) >= 3);
}

#[test]
fn zipkin_gets_v2_json_with_b3_and_a_shared_span() {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let store = got.clone();
    let collector = spawn_server(move |listener| async move {
        use http_body_util::BodyExt;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/api/v2/spans");
                            assert_eq!(req.headers()["content-type"], "application/json");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let spans: Vec<serde_json::Value> =
                                serde_json::from_slice(&body).unwrap();
                            store.lock().unwrap().extend(spans);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(202)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    k.wait_mtls();
    k.apply(&format!(
        "type: MeshTrace\nname: zipkin\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    backends:\n      - type: Zipkin\n        zipkin:\n          url: http://{collector}/api/v2/spans\n"
    ));
    let spans_of = |trace: &str| -> Vec<serde_json::Value> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|s| s["traceId"] == trace)
            .cloned()
            .collect()
    };
    let (h, spans) = wait_for("a trace with both halves", PROPAGATION, || {
        let h = app_headers(&k, &[]);
        let trace = h["x-b3-traceid"].as_str()?.to_string();
        let spans = wait_for("spans", PROPAGATION, || {
            let s = spans_of(&trace);
            (!s.is_empty()).then_some(s)
        });
        (spans.len() == 2).then_some((h, spans))
    });
    let trace = h["x-b3-traceid"].as_str().unwrap();
    assert_eq!(trace.len(), 16, "64-bit trace ids by default");
    assert_eq!(h["x-b3-sampled"], "1");
    let client = spans.iter().find(|s| s["kind"] == "CLIENT").unwrap();
    let server = spans.iter().find(|s| s["kind"] == "SERVER").unwrap();
    assert_eq!(client["localEndpoint"]["serviceName"], "flight-control-blu");
    assert_eq!(server["localEndpoint"]["serviceName"], "check-in-api-blu");
    // Shared span context: the server half has the client's id, and the application
    // continues that span.
    assert_eq!(server["id"], client["id"]);
    assert_eq!(server["shared"], true);
    assert_eq!(h["x-b3-spanid"], client["id"]);
    assert!(client.get("parentId").is_none());
    assert_eq!(client["tags"]["http.status_code"], "200");
    assert_eq!(client["remoteEndpoint"]["port"], 9000);
    assert!(server["duration"].as_u64().unwrap() >= 1);
    assert!(client["duration"].as_u64() >= server["duration"].as_u64());
}
