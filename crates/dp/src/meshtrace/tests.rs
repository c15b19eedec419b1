use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerie_core::policies::meshtrace::{ProxyTracing, SamplingRates, SpanTag, TraceBackend};
use http::{HeaderMap, HeaderValue, Request};

use super::*;

const ALL: u32 = 1_000_000;

fn tracing(backend: TraceBackend, rates: (u32, u32, u32)) -> ProxyTracing {
    ProxyTracing {
        service: "web".into(),
        backend,
        sampling: SamplingRates {
            overall: rates.0,
            client: rates.1,
            random: rates.2,
        },
        tags: vec![
            SpanTag::Literal {
                name: "team".into(),
                value: "core".into(),
            },
            SpanTag::Header {
                name: "env".into(),
                header: "x-env".into(),
                default: Some("prod".into()),
            },
            SpanTag::Header {
                name: "absent".into(),
                header: "x-absent".into(),
                default: None,
            },
        ],
    }
}

fn otel() -> TraceBackend {
    TraceBackend::OpenTelemetry {
        endpoint: "127.0.0.1:9".into(),
    }
}

fn zipkin(url: &str) -> TraceBackend {
    TraceBackend::Zipkin {
        url: url.into(),
        trace_id_128bit: false,
        shared_span_context: true,
    }
}

fn tracer(cfg: &ProxyTracing) -> Arc<Tracer> {
    Tracer::start(cfg, "web-1", &SpanMetrics::default())
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("http://api:8080/orders?id=7").header("user-agent", "curl/8");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn peer() -> SocketAddr {
    "127.0.0.9:41000".parse().unwrap()
}

fn header<'a>(req: &'a Request<()>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn reads_w3c_and_both_b3_forms() {
    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    let ctx = extract(&h, false).unwrap();
    assert_eq!(ctx.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(ctx.span_id, 0xb7ad6b7169203331);
    assert_eq!(ctx.sampled, Some(true));
    assert!(!ctx.b3);

    let mut h = HeaderMap::new();
    h.insert(
        "b3",
        HeaderValue::from_static(
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90",
        ),
    );
    let ctx = extract(&h, false).unwrap();
    assert_eq!(ctx.span_id, 0xe457b5a2e4d86bd1);
    assert_eq!(ctx.parent_id, Some(0x05e3ac9a4f6e3b90));
    assert_eq!(ctx.sampled, Some(false));
    assert!(ctx.b3);

    let mut h = HeaderMap::new();
    h.insert("x-b3-traceid", HeaderValue::from_static("463ac35c9f6413ad"));
    h.insert("x-b3-spanid", HeaderValue::from_static("a2fb4a1d1a96d312"));
    h.insert("x-b3-flags", HeaderValue::from_static("1"));
    let ctx = extract(&h, false).unwrap();
    assert_eq!(ctx.trace_id, 0x463ac35c9f6413ad);
    assert_eq!(ctx.parent_id, None);
    assert_eq!(ctx.sampled, Some(true), "debug flag means sampled");

    h.remove("x-b3-flags");
    assert_eq!(
        extract(&h, false).unwrap().sampled,
        None,
        "no decision given"
    );
}

#[test]
fn malformed_contexts_are_ignored() {
    for bad in [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        "",
    ] {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_str(bad).unwrap());
        assert_eq!(extract(&h, false), None, "{bad:?}");
    }
    // A later version's extra fields are allowed.
    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        HeaderValue::from_static("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-x"),
    );
    assert_eq!(extract(&h, false).unwrap().sampled, Some(false));
}

#[tokio::test]
async fn a_sampled_request_starts_a_trace_and_passes_its_span_on() {
    let t = tracer(&tracing(otel(), (ALL, ALL, ALL)));
    let mut req = request(&[("x-env", "staging")]);
    let span = t.begin(&mut req, Kind::Client, "api", peer()).unwrap();
    let f = &span.finished;
    assert_eq!(f.parent_id, None);
    assert_eq!(f.kind, Kind::Client);
    assert_eq!(f.name, "GET api");
    let tp = header(&req, "traceparent").unwrap();
    assert_eq!(
        tp,
        format!("00-{:032x}-{:016x}-01", f.trace_id, f.span_id),
        "the next hop continues from this span"
    );
    assert!(
        f.trace_id >> 64 != 0,
        "OpenTelemetry trace ids have 128 bits"
    );
    assert_eq!(
        header(&req, "x-b3-traceid"),
        None,
        "no B3 for OpenTelemetry"
    );
    let tags: Vec<(String, String)> = f
        .attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.text().into_owned()))
        .collect();
    for want in [
        ("node_id", "web-1"),
        ("http.method", "GET"),
        ("http.url", "http://api:8080/orders?id=7"),
        ("user_agent", "curl/8"),
        ("upstream_cluster", "api"),
        ("peer.address", "127.0.0.9"),
        ("team", "core"),
        ("env", "staging"),
    ] {
        assert!(
            tags.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {tags:?}"
        );
    }
    assert!(
        !tags.iter().any(|(k, _)| k == "absent"),
        "no header, no default: no tag"
    );
}

#[tokio::test]
async fn a_request_with_a_context_becomes_a_child_and_keeps_the_decision() {
    let t = tracer(&tracing(otel(), (0, 0, 0)));
    let mut req = request(&[(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )]);
    let span = t
        .begin(&mut req, Kind::Server, "api", peer())
        .expect("the caller's decision wins over our 0 %");
    assert_eq!(span.finished.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(span.finished.parent_id, Some(0xb7ad6b7169203331));
    assert_ne!(span.finished.span_id, 0xb7ad6b7169203331);
    assert!(
        header(&req, "traceparent")
            .unwrap()
            .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
    );

    // An upstream "not sampled" is kept, and the header passes on untouched.
    let t = tracer(&tracing(otel(), (ALL, ALL, ALL)));
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let mut req = request(&[("traceparent", unsampled)]);
    assert!(t.begin(&mut req, Kind::Server, "api", peer()).is_none());
    assert_eq!(header(&req, "traceparent"), Some(unsampled));
}

#[tokio::test]
async fn an_unsampled_request_carries_the_decision_on() {
    let t = tracer(&tracing(
        zipkin("http://127.0.0.1:9/api/v2/spans"),
        (ALL, ALL, 0),
    ));
    let mut req = request(&[]);
    assert!(t.begin(&mut req, Kind::Client, "api", peer()).is_none());
    let tp = header(&req, "traceparent").unwrap();
    assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    assert_eq!(header(&req, "x-b3-sampled"), Some("0"));
    // The next proxy reads it and does not sample on its own.
    let next = tracer(&tracing(otel(), (ALL, ALL, ALL)));
    assert!(next.begin(&mut req, Kind::Server, "api", peer()).is_none());
}

#[tokio::test]
async fn envoys_client_force_and_overall_sampling() {
    // random 0, client 100: only requests with x-client-trace-id are traced.
    let t = tracer(&tracing(otel(), (ALL, ALL, 0)));
    assert!(
        t.begin(&mut request(&[]), Kind::Client, "api", peer())
            .is_none()
    );
    assert!(
        t.begin(
            &mut request(&[("x-client-trace-id", "abc")]),
            Kind::Client,
            "api",
            peer()
        )
        .is_some()
    );
    assert!(
        t.begin(
            &mut request(&[("x-envoy-force-trace", "true")]),
            Kind::Client,
            "api",
            peer()
        )
        .is_some()
    );
    // overall 0 caps everything.
    let t = tracer(&tracing(otel(), (0, ALL, ALL)));
    assert!(
        t.begin(
            &mut request(&[("x-client-trace-id", "abc")]),
            Kind::Client,
            "api",
            peer()
        )
        .is_none()
    );
    // 50 % random: about half of 20,000 requests.
    let t = tracer(&tracing(otel(), (ALL, ALL, ALL / 2)));
    let traced = (0..20_000)
        .filter(|_| {
            t.begin(&mut request(&[]), Kind::Client, "api", peer())
                .is_some()
        })
        .count();
    assert!((9_000..11_000).contains(&traced), "{traced}");
}

#[tokio::test]
async fn zipkin_shares_the_span_context_on_the_server_side_and_writes_b3() {
    let t = tracer(&tracing(
        zipkin("http://127.0.0.1:9/api/v2/spans"),
        (ALL, ALL, ALL),
    ));
    let mut out = request(&[]);
    let client = t.begin(&mut out, Kind::Client, "api", peer()).unwrap();
    let f = &client.finished;
    assert_eq!(f.trace_id >> 64, 0, "64-bit trace ids unless traceId128bit");
    assert_eq!(
        header(&out, "x-b3-traceid"),
        Some(format!("{:016x}", f.trace_id).as_str())
    );
    assert_eq!(
        header(&out, "x-b3-spanid"),
        Some(format!("{:016x}", f.span_id).as_str())
    );
    assert_eq!(header(&out, "x-b3-sampled"), Some("1"));
    // The destination's sidecar receives those headers.
    let mut inbound = request(&[
        ("x-b3-traceid", header(&out, "x-b3-traceid").unwrap()),
        ("x-b3-spanid", header(&out, "x-b3-spanid").unwrap()),
        ("x-b3-sampled", "1"),
    ]);
    let server = t.begin(&mut inbound, Kind::Server, "api", peer()).unwrap();
    assert_eq!(server.finished.span_id, f.span_id, "one span, two halves");
    assert!(server.finished.shared);
    assert_eq!(server.finished.parent_id, None);

    let json: serde_json::Value = serde_json::from_str(&zipkin_json(
        "web",
        &[client.finished.clone(), server.finished.clone()],
        false,
    ))
    .unwrap();
    let spans = json.as_array().unwrap();
    assert_eq!(spans[0]["kind"], "CLIENT");
    assert_eq!(spans[0]["traceId"].as_str().unwrap().len(), 16);
    assert_eq!(spans[0]["localEndpoint"]["serviceName"], "web");
    assert_eq!(spans[0]["remoteEndpoint"]["ipv4"], "127.0.0.9");
    assert_eq!(spans[0]["tags"]["team"], "core");
    assert_eq!(spans[1]["kind"], "SERVER");
    assert_eq!(spans[1]["shared"], true);
    assert!(spans[0].get("shared").is_none());
    let ts = spans[0]["timestamp"].as_u64().unwrap();
    assert!(
        ts > 1_600_000_000_000_000,
        "microseconds since the epoch: {ts}"
    );
}

#[tokio::test]
async fn the_response_completes_the_span_and_otlp_carries_it() {
    let t = tracer(&tracing(otel(), (ALL, ALL, ALL)));
    let mut req = request(&[]);
    let mut span = t.begin(&mut req, Kind::Client, "api", peer()).unwrap();
    span.respond(
        Some(503),
        crate::accesslog::UF,
        Some("127.0.0.2:8080".parse().unwrap()),
    );
    let f = span.finished.clone();
    assert!(f.error);
    assert_eq!(f.remote, Some("127.0.0.2:8080".parse().unwrap()));
    let out = otlp_request("web", std::slice::from_ref(&f));
    let rs = &out.resource_spans[0];
    let service = &rs.resource.as_ref().unwrap().attributes[0];
    assert_eq!(service.key, "service.name");
    let s = &rs.scope_spans[0].spans[0];
    assert_eq!(s.trace_id, f.trace_id.to_be_bytes().to_vec());
    assert_eq!(s.span_id.len(), 8);
    assert!(s.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        s.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32
    );
    assert_eq!(s.status.as_ref().unwrap().code, 2, "STATUS_CODE_ERROR");
    let flags = s
        .attributes
        .iter()
        .find(|kv| kv.key == "response_flags")
        .unwrap();
    assert_eq!(
        flags.value.as_ref().unwrap().value,
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("UF".into()))
    );
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
}

#[test]
fn spans_a_backend_refuses_are_dropped_and_counted() {
    // A port nothing listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let metrics = SpanMetrics::default();
    let cfg = tracing(
        zipkin(&format!("http://127.0.0.1:{port}/api/v2/spans")),
        (ALL, ALL, ALL),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Tracer::start(&cfg, "web-1", &metrics);
        for _ in 0..3 {
            let span = t
                .begin(&mut request(&[]), Kind::Client, "api", peer())
                .unwrap();
            span.finish(true);
        }
    });
    let labels = crate::accesslog::BackendLabels {
        backend: cfg.backend.label(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.dropped.get_or_create(&labels).get() < 3 {
        assert!(Instant::now() < deadline, "spans never counted as dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metrics.exported.get_or_create(&labels).get(), 0);
}

#[test]
fn traceparent_is_written_as_formatting_would() {
    assert_eq!(
        traceparent(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, true),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(
        traceparent(1, 2, false),
        "00-00000000000000000000000000000001-0000000000000002-00"
    );
    for _ in 0..100 {
        let (t, s) = (new_trace_id(true), new_span_id());
        assert_eq!(
            traceparent(t, s, false),
            format!("00-{t:032x}-{s:016x}-00").as_str()
        );
    }
}

#[test]
fn caller_sent_tag_values_are_capped() {
    assert_eq!(capped("short"), "short");
    assert_eq!(capped(&"a".repeat(1000)).len(), TAG_BYTES);
    // Cut at a character boundary.
    let v = format!("{}é", "a".repeat(TAG_BYTES - 1));
    assert_eq!(capped(&v), "a".repeat(TAG_BYTES - 1));
}
