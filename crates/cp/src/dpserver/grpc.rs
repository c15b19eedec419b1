//! The DP server's gRPC service: Envoy's aggregated discovery service
//! (`StreamAggregatedResources`) answered by [`DpServer`], with codec buffers sized for a
//! control plane holding one idle stream per proxy.
//!
//! The generated server (`AggregatedDiscoveryServiceServer`) gives every stream tonic's
//! default 8 KiB encode and 8 KiB decode buffers, allocated for the stream's lifetime:
//! 16 KiB per connected proxy before any config is sent, although a proxy's requests
//! (ACKs) are a few hundred bytes and its pushes a few KiB. Here both start at
//! [`CODEC_BUFFER`] and grow only to what a message needs.

use std::convert::Infallible;
use std::sync::Arc;

use aerie_xds::{AggregatedDiscoveryService, DiscoveryRequest, DiscoveryResponse};
use hyper::body::Body;
use tonic::codec::{BufferSettings, Codec};
use tonic::codegen::{BoxFuture, Context, Poll, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::{DpServer, ResponseStream};

/// Initial size of a stream's encode and decode buffers.
const CODEC_BUFFER: usize = 512;
/// tonic's default: how much encoded data a response stream gathers before it yields.
const YIELD_THRESHOLD: usize = 32 * 1024;

const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const STREAM_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The ADS service the DP server's router mounts.
#[derive(Clone)]
pub struct AdsService {
    inner: Arc<DpServer>,
    /// The largest request message accepted (larger ones end the stream with `OutOfRange`).
    max_decoding_message_size: usize,
}

impl AdsService {
    pub fn new(inner: DpServer, max_decoding_message_size: usize) -> AdsService {
        AdsService {
            inner: Arc::new(inner),
            max_decoding_message_size,
        }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE;
}

/// Prost encoding with small initial buffers.
#[derive(Debug, Clone, Copy, Default)]
struct AdsCodec;

impl Codec for AdsCodec {
    type Encode = DiscoveryResponse;
    type Decode = DiscoveryRequest;
    type Encoder = ProstEncoder<DiscoveryResponse>;
    type Decoder = ProstDecoder<DiscoveryRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(CODEC_BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::new(CODEC_BUFFER, YIELD_THRESHOLD))
    }
}

struct Stream(Arc<DpServer>);

impl StreamingService<DiscoveryRequest> for Stream {
    type Response = DiscoveryResponse;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.stream_aggregated_resources(request).await })
    }
}

impl<B> tower::Service<http::Request<B>> for AdsService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            STREAM_PATH => {
                let method = Stream(self.inner.clone());
                let max = self.max_decoding_message_size;
                Box::pin(async move {
                    let mut grpc =
                        Grpc::new(AdsCodec).apply_max_message_size_config(Some(max), None);
                    Ok(grpc.streaming(method, req).await)
                })
            }
            DELTA_PATH => Box::pin(async {
                Ok(Status::unimplemented(
                    "incremental xDS is not supported: use StreamAggregatedResources",
                )
                .into_http())
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}
