//! The control-plane client for a zone ingress, against a fake ADS server (gRPC over TLS on
//! loopback): what it subscribes to, what its node says, ACK/NACK, reconnection and the
//! graceful leave. A sidecar's subscriptions are checked too, so the two paths stay apart.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aerie_core::proxy_config::{Endpoint, IngressConfig, IngressRoute, ProxyConfig};
use aerie_dp::{Ingress, IngressOptions};
use aerie_identity::WorkloadKey;
use aerie_xds::client::{self, ClientOptions, ProxySink};
use aerie_xds::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer, DiscoveryRequest,
    DiscoveryResponse, INGRESS_CONFIG_TYPE, NodeInfo, PROXY_CONFIG_TYPE, PROXY_OUTBOUNDS_TYPE,
    ProxyType, SECRET_TYPE, encode_ingress_config, encode_proxy_config,
};
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// One stream the fake control plane accepted.
struct CpStream {
    authorization: Option<String>,
    requests: mpsc::UnboundedReceiver<DiscoveryRequest>,
    responses: mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>,
}

struct FakeCp {
    streams: mpsc::UnboundedSender<CpStream>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponses = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for FakeCp {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut inbound = request.into_inner();
        let (req_tx, requests) = mpsc::unbounded_channel();
        // Forwards the proxy's requests; the channel closes when the proxy ends its stream.
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if req_tx.send(r).is_err() {
                    break;
                }
            }
        });
        let (responses, resp_rx) = mpsc::unbounded_channel();
        let _ = self.streams.send(CpStream {
            authorization,
            requests,
            responses,
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(
            resp_rx,
        ))))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<
            Streaming<envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest>,
        >,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(Status::unimplemented("state of the world only"))
    }
}

/// Starts the fake control plane; returns its address and the streams it accepts.
async fn start_cp() -> (String, mpsc::UnboundedReceiver<CpStream>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let identity =
        tonic::transport::Identity::from_pem(cert.cert.pem(), cert.signing_key.serialize_pem());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .unwrap()
        .add_service(AggregatedDiscoveryServiceServer::new(FakeCp {
            streams: tx,
        }));
    tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
    (format!("https://{addr}"), rx)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("timed out waiting for the proxy")
}

fn response(type_url: &str, version: &str, nonce: &str, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: type_url.into(),
        resources,
        ..Default::default()
    }
}

struct IngressSink(Ingress);

impl ProxySink for IngressSink {
    fn apply_config(&self, _: &str, _: &ProxyConfig) -> Result<(), String> {
        Err("not a sidecar".into())
    }

    fn apply_identity(&self, _: &str, _: &WorkloadKey, _: &str) -> Result<(), String> {
        Err("no certificate".into())
    }

    fn set_connected(&self, connected: bool) {
        self.0.set_control_plane_connected(connected);
    }

    fn apply_ingress(&self, version: &str, cfg: IngressConfig) -> Result<(), String> {
        self.0.apply_config(version, cfg).map_err(|e| e.to_string())
    }
}

fn routes(address: &str) -> IngressConfig {
    IngressConfig {
        name: "ingress-1".into(),
        routes: vec![IngressRoute {
            sni: "backend.default.mesh".into(),
            mesh: "default".into(),
            service: "backend".into(),
            endpoints: vec![Endpoint {
                zone: None,
                address: address.into(),
                port: 10001,
                dataplane: "backend-1".into(),
                tags: Default::default(),
            }],
        }],
    }
}

fn options(cp: &str, proxy_type: ProxyType) -> ClientOptions {
    ClientOptions {
        cp_addresses: vec![cp.to_owned()],
        ca_cert_pem: None,
        token: "the-token".into(),
        node: NodeInfo {
            mesh: match proxy_type {
                ProxyType::Dataplane => "default".into(),
                ProxyType::Ingress => String::new(),
            },
            name: "ingress-1".into(),
            dataplane_json: Some("{\"type\":\"ZoneIngress\"}".into()),
            csr_pem: None,
            version: "test".into(),
            proxy_type,
        },
    }
}

#[tokio::test]
async fn an_ingress_subscribes_to_its_routes_only_and_acks_and_nacks() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cp, mut streams) = start_cp().await;
    let ingress = Ingress::new(IngressOptions::new("ingress-1"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink: Arc<dyn ProxySink> = Arc::new(IngressSink(ingress.clone()));
    let client = tokio::spawn(client::run(options(&cp, ProxyType::Ingress), sink, stop_rx));

    let mut s = next(&mut streams).await.unwrap();
    assert_eq!(s.authorization.as_deref(), Some("Bearer the-token"));
    let hello = next(&mut s.requests).await.unwrap();
    assert_eq!(hello.type_url, INGRESS_CONFIG_TYPE);
    let node = NodeInfo::from_proto(hello.node.as_ref().unwrap()).unwrap();
    assert_eq!(node.proxy_type, ProxyType::Ingress);
    assert_eq!((node.mesh.as_str(), node.name.as_str()), ("", "ingress-1"));
    assert_eq!(node.csr_pem, None, "an ingress has no key and sends no CSR");
    assert!(node.dataplane_json.unwrap().contains("ZoneIngress"));

    // A good config is applied and ACKed. Had the proxy subscribed to anything else, that
    // subscription would come before this ACK.
    let good = routes("127.0.0.1");
    s.responses
        .send(Ok(response(
            INGRESS_CONFIG_TYPE,
            "v1",
            "n1",
            vec![encode_ingress_config(&good)],
        )))
        .unwrap();
    let ack = next(&mut s.requests).await.unwrap();
    assert_eq!(
        (
            ack.type_url.as_str(),
            ack.version_info.as_str(),
            ack.response_nonce.as_str()
        ),
        (INGRESS_CONFIG_TYPE, "v1", "n1")
    );
    assert!(ack.error_detail.is_none(), "{:?}", ack.error_detail);
    assert_eq!(ingress.config(), Some(good.clone()));
    assert!(ingress.control_plane_connected());

    // What the ingress cannot apply is NACKed with the reason; the last good config stays.
    let bad_payload = Any {
        type_url: INGRESS_CONFIG_TYPE.into(),
        value: b"not json".to_vec(),
    };
    let sidecar_half = encode_proxy_config(&ProxyConfig::default()).0;
    let cases = [
        (
            response(
                INGRESS_CONFIG_TYPE,
                "v2",
                "n2",
                vec![encode_ingress_config(&IngressConfig {
                    name: "another-ingress".into(),
                    ..routes("10.0.0.1")
                })],
            ),
            "another-ingress",
        ),
        (
            response(INGRESS_CONFIG_TYPE, "v3", "n3", vec![bad_payload]),
            "decode",
        ),
        (
            response(INGRESS_CONFIG_TYPE, "v4", "n4", vec![]),
            "expected one",
        ),
        (
            response(PROXY_CONFIG_TYPE, "v5", "n5", vec![sidecar_half]),
            "unexpected resource type",
        ),
        (
            response(SECRET_TYPE, "v6", "n6", vec![]),
            "unexpected resource type",
        ),
    ];
    for (resp, why) in cases {
        let nonce = resp.nonce.clone();
        s.responses.send(Ok(resp)).unwrap();
        let nack = next(&mut s.requests).await.unwrap();
        assert_eq!(nack.response_nonce, nonce);
        assert_eq!(nack.version_info, "", "a NACK does not claim the version");
        let detail = nack.error_detail.expect("a NACK").message;
        assert!(detail.contains(why), "{nonce}: {detail}");
    }
    assert_eq!(ingress.config_version().as_deref(), Some("v1"));

    // The control plane goes away: the ingress keeps its routes and comes back.
    s.responses
        .send(Err(Status::unavailable("restarting")))
        .unwrap();
    let mut s = next(&mut streams).await.unwrap();
    let hello = next(&mut s.requests).await.unwrap();
    assert_eq!(hello.type_url, INGRESS_CONFIG_TYPE);
    assert_eq!(ingress.config(), Some(good));

    // Leaving: the proxy closes its request stream (the control plane then removes it).
    stop_tx.send(true).unwrap();
    assert!(
        next(&mut s.requests).await.is_none(),
        "the stream was closed"
    );
    drop(s); // as the real control plane does, end the response stream too
    tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("the client stops")
        .unwrap()
        .unwrap();
}

/// Accepts anything and records nothing: only the subscriptions matter here.
struct SidecarSink;

impl ProxySink for SidecarSink {
    fn apply_config(&self, _: &str, _: &ProxyConfig) -> Result<(), String> {
        Ok(())
    }

    fn apply_identity(&self, _: &str, _: &WorkloadKey, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn set_connected(&self, _: bool) {}
}

#[tokio::test]
async fn a_sidecar_still_subscribes_to_its_config_and_certificate_and_refuses_routes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cp, mut streams) = start_cp().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = tokio::spawn(client::run(
        options(&cp, ProxyType::Dataplane),
        Arc::new(SidecarSink),
        stop_rx,
    ));
    let mut s = next(&mut streams).await.unwrap();
    let mut types = Vec::new();
    for _ in 0..3 {
        let r = next(&mut s.requests).await.unwrap();
        let node = NodeInfo::from_proto(r.node.as_ref().unwrap()).unwrap();
        assert!(node.csr_pem.is_some(), "a sidecar asks for a certificate");
        assert_eq!(node.proxy_type, ProxyType::Dataplane);
        types.push(r.type_url);
    }
    assert_eq!(
        types,
        [PROXY_CONFIG_TYPE, PROXY_OUTBOUNDS_TYPE, SECRET_TYPE]
    );
    s.responses
        .send(Ok(response(
            INGRESS_CONFIG_TYPE,
            "v1",
            "n1",
            vec![encode_ingress_config(&routes("127.0.0.1"))],
        )))
        .unwrap();
    let nack = next(&mut s.requests).await.unwrap();
    assert!(
        nack.error_detail.is_some(),
        "a sidecar refuses ingress routes"
    );
    stop_tx.send(true).unwrap();
    assert!(
        next(&mut s.requests).await.is_none(),
        "the stream was closed"
    );
    drop(s);
    tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("the client stops")
        .unwrap()
        .unwrap();
}
