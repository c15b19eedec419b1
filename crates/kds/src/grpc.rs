//! Kuma's `kuma.mesh.v1alpha1.KDSSyncService`, written out by hand (two bidirectional
//! streaming methods do not justify a protobuf compiler in the build):
//!
//! ```text
//! service KDSSyncService {
//!   rpc GlobalToZoneSync(stream DeltaDiscoveryRequest) returns (stream DeltaDiscoveryResponse);
//!   rpc ZoneToGlobalSync(stream DeltaDiscoveryResponse) returns (stream DeltaDiscoveryRequest);
//! }
//! ```
//!
//! The zone always dials the global. On `GlobalToZoneSync` the zone asks and the global
//! answers; on `ZoneToGlobalSync` the roles of the messages flip: the zone sends resources
//! and the global acknowledges them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, StdError, http};
use tonic::{Request, Response, Status, Streaming};

pub const SERVICE_NAME: &str = "kuma.mesh.v1alpha1.KDSSyncService";
const GLOBAL_TO_ZONE: &str = "/kuma.mesh.v1alpha1.KDSSyncService/GlobalToZoneSync";
const ZONE_TO_GLOBAL: &str = "/kuma.mesh.v1alpha1.KDSSyncService/ZoneToGlobalSync";

/// A stream of messages a handler sends back.
pub type MessageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The global control plane's side of KDS.
#[tonic::async_trait]
pub trait KdsSync: Send + Sync + 'static {
    /// The zone subscribes; the global sends it resources.
    async fn global_to_zone_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<MessageStream<DeltaDiscoveryResponse>>, Status>;

    /// The zone sends its resources; the global acknowledges them.
    async fn zone_to_global_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryResponse>>,
    ) -> Result<Response<MessageStream<DeltaDiscoveryRequest>>, Status>;
}

/// The tower service that routes the two methods to a [`KdsSync`].
pub struct KdsSyncServer<T> {
    inner: Arc<T>,
    max_decoding: usize,
}

impl<T> KdsSyncServer<T> {
    pub fn new(inner: Arc<T>) -> Self {
        KdsSyncServer {
            inner,
            max_decoding: 4 * 1024 * 1024,
        }
    }

    /// The largest message a zone may send (tonic's default is 4 MiB).
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding = limit;
        self
    }
}

impl<T> Clone for KdsSyncServer<T> {
    fn clone(&self) -> Self {
        KdsSyncServer {
            inner: self.inner.clone(),
            max_decoding: self.max_decoding,
        }
    }
}

impl<T> tonic::server::NamedService for KdsSyncServer<T> {
    const NAME: &'static str = SERVICE_NAME;
}

struct GlobalToZoneMethod<T>(Arc<T>);

impl<T: KdsSync> tonic::server::StreamingService<DeltaDiscoveryRequest> for GlobalToZoneMethod<T> {
    type Response = DeltaDiscoveryResponse;
    type ResponseStream = MessageStream<DeltaDiscoveryResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.global_to_zone_sync(request).await })
    }
}

struct ZoneToGlobalMethod<T>(Arc<T>);

impl<T: KdsSync> tonic::server::StreamingService<DeltaDiscoveryResponse> for ZoneToGlobalMethod<T> {
    type Response = DeltaDiscoveryRequest;
    type ResponseStream = MessageStream<DeltaDiscoveryRequest>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryResponse>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.zone_to_global_sync(request).await })
    }
}

impl<T, B> tonic::codegen::Service<http::Request<B>> for KdsSyncServer<T>
where
    T: KdsSync,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let limit = self.max_decoding;
        match req.uri().path() {
            GLOBAL_TO_ZONE => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .max_decoding_message_size(limit);
                Ok(grpc.streaming(GlobalToZoneMethod(inner), req).await)
            }),
            ZONE_TO_GLOBAL => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .max_decoding_message_size(limit);
                Ok(grpc.streaming(ZoneToGlobalMethod(inner), req).await)
            }),
            _ => {
                Box::pin(async move { Ok(Status::unimplemented("unknown KDS method").into_http()) })
            }
        }
    }
}

/// The zone's client.
#[derive(Clone)]
pub struct KdsSyncClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl KdsSyncClient {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        KdsSyncClient {
            inner: tonic::client::Grpc::new(channel).max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("KDS connection not ready: {e}")))
    }

    pub async fn global_to_zone_sync(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Message = DeltaDiscoveryRequest>,
    ) -> Result<Response<Streaming<DeltaDiscoveryResponse>>, Status> {
        self.stream(GLOBAL_TO_ZONE, request).await
    }

    pub async fn zone_to_global_sync(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Message = DeltaDiscoveryResponse>,
    ) -> Result<Response<Streaming<DeltaDiscoveryRequest>>, Status> {
        self.stream(ZONE_TO_GLOBAL, request).await
    }

    /// Opens the bidirectional stream at `path` (both RPCs differ only in path and types).
    async fn stream<Out, In>(
        &mut self,
        path: &'static str,
        request: impl tonic::IntoStreamingRequest<Message = Out>,
    ) -> Result<Response<Streaming<In>>, Status>
    where
        Out: prost::Message + Send + Sync + 'static,
        In: prost::Message + Default + Send + Sync + 'static,
    {
        self.ready().await?;
        self.inner
            .streaming(
                request.into_streaming_request(),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await
    }
}
