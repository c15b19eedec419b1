//! The DP server (port 5678): proxies connect here over gRPC + TLS, authenticate with their
//! dataplane token, register their Dataplane, and receive config and certificates on one
//! aggregated stream (see `aerie_xds` for the protocol).

mod addresses;
mod grpc;
pub mod hub;
mod ingress;
mod reconcile;
mod revocations;
mod session;
pub mod snapshot;
mod stream;

use std::pin::Pin;
use std::sync::Arc;

use aerie_store::SharedStore;
use aerie_xds::{
    AggregatedDiscoveryService, DiscoveryRequest, DiscoveryResponse, NodeInfo, ProxyType,
};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use hub::{ConnStatus, Hub};

/// The DP server's checks of a proxy's first request, for the fuzzing harness
/// (`crates/fuzz`) only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::ingress::admit as admit_ingress;
    pub use super::session::{Admitted, admit as admit_dataplane};
}
pub use snapshot::{
    access_log_rules, circuit_breaker_rules, fault_injection_rules, health_check_rules,
    http_route_rules, load_balancing_rules, metric_rules, policy_index, rate_limit_rules,
    retry_rules, service_catalog, tcp_route_rules, timeout_rules,
};

use crate::ca::MeshCas;
use crate::tokens::TokenIssuer;

/// The ADS service.
#[derive(Clone)]
pub struct DpServer {
    store: SharedStore,
    tokens: Arc<TokenIssuer>,
    hub: Arc<Hub>,
    role: crate::Role,
    local_zone: Arc<str>,
}

/// Where a DP server runs: its role, the zone it serves, how long resolved host names are
/// kept.
pub struct Placement {
    pub role: crate::Role,
    pub local_zone: String,
    pub dns_cache_ttl: std::time::Duration,
}

impl DpServer {
    /// Creates the service and starts the task that recomputes snapshots.
    pub fn start(
        store: SharedStore,
        tokens: Arc<TokenIssuer>,
        cas: Arc<MeshCas>,
        replica: Arc<str>,
        placement: Placement,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (DpServer, tokio::task::JoinHandle<()>) {
        let Placement {
            role,
            local_zone,
            dns_cache_ttl,
        } = placement;
        let (dirty_tx, dirty_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(dirty_tx, replica, metrics));
        let local_zone: Arc<str> = Arc::from(local_zone);
        let resolver = Arc::new(crate::resolve::Resolver::new(dns_cache_ttl));
        let refresh_hub = hub.clone();
        tokio::spawn(resolver.clone().refresh(move |mesh| {
            // Zone ingresses ("") follow any mesh's rebuild.
            refresh_hub.mark_dirty(mesh);
        }));
        // One task (aborting it stops both): snapshots, and sessions whose token is revoked.
        let reconciler = reconcile::run(
            store.clone(),
            hub.clone(),
            cas,
            dirty_rx,
            local_zone.clone(),
            resolver,
        );
        let revocations = revocations::run(store.clone(), hub.clone());
        let task = tokio::spawn(async move {
            tokio::join!(reconciler, revocations);
        });
        (
            DpServer {
                store,
                tokens,
                hub,
                role,
                local_zone,
            },
            task,
        )
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// The gRPC service to mount; requests over `max_message` bytes end the stream.
    pub fn into_service(self, max_message: usize) -> grpc::AdsService {
        grpc::AdsService::new(self, max_message)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse,
                    Status,
                >,
            > + Send,
    >,
>;

impl DpServer {
    async fn serve_ingress(
        &self,
        peer: Option<std::net::SocketAddr>,
        token: Option<&str>,
        node: NodeInfo,
        first: DiscoveryRequest,
        inbound: Streaming<DiscoveryRequest>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (ingress, token_id) =
            match ingress::admit(&self.tokens, token, &node, &self.local_zone, peer).await {
                Ok(r) => r,
                Err(status) => {
                    tracing::warn!(?peer, %status, "refused a zone ingress");
                    return Err(status);
                }
            };
        ingress::register(&self.store, ingress.clone()).await?;
        let key = (String::new(), ingress.name().to_string());
        let reg = self
            .hub
            .register(key.clone(), session::initial_status(peer, &node), &token_id);
        // A revocation that landed between the token check and the registration was not
        // seen by the revocation watcher: look once more.
        if self
            .tokens
            .zone_token_revoked(&token_id)
            .await
            .unwrap_or(false)
        {
            self.hub.unregister(&key, reg.id);
            tracing::warn!(?peer, name = %key.1, "refused a zone ingress: its zone token was just revoked");
            return Err(Status::unauthenticated(
                "invalid zone token: it has been revoked",
            ));
        }
        tracing::info!(name = %key.1, ?peer, "zone ingress connected");
        if let Err(e) = self
            .store
            .open_session("", &key.1, self.hub.replica(), "")
            .await
        {
            tracing::warn!(name = %key.1, error = %e, "cannot record the ingress session in the store");
        }
        let (tx, rx) = mpsc::channel(16);
        let conn = stream::Conn::new(key, self.hub.clone(), self.store.clone(), reg, tx);
        tokio::spawn(stream::run(
            conn,
            ingress::Ingress::default(),
            first,
            inbound,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for DpServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request.remote_addr();
        if self.role == crate::Role::Global {
            tracing::warn!(?peer, "refused a proxy: this is the global control plane");
            return Err(Status::failed_precondition(
                "this is a global control plane: proxies connect to a zone control plane (point kuma-dp --cp-address at your zone)",
            ));
        }
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string());
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(session::HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => {
                return Err(Status::cancelled(
                    "the proxy closed the stream before saying hello",
                ));
            }
            Ok(Err(s)) => return Err(s),
            Err(_) => return Err(Status::deadline_exceeded("no request within 15s")),
        };
        if let Some(node) = first
            .node
            .as_ref()
            .and_then(|n| NodeInfo::from_proto(n).ok())
            && node.proxy_type == ProxyType::Ingress
        {
            return self
                .serve_ingress(peer, token.as_deref(), node, first, inbound)
                .await;
        }
        let session::Admitted {
            node,
            dataplane: dp,
            token_id,
        } = match session::admit(&self.store, &self.tokens, token.as_deref(), &first, peer).await {
            Ok(x) => x,
            Err(status) => {
                tracing::warn!(?peer, %status, "refused a proxy");
                return Err(status);
            }
        };
        let key = (dp.mesh().to_string(), dp.name().to_string());
        // One live session per name: another proxy cannot take over a connected one (it is
        // told to retry, and gets in once that session ends).
        let taken = |holder: &str| {
            let status = Status::unavailable(format!(
                "another proxy is connected as Dataplane \"{}\" in mesh \"{}\" ({holder}); a proxy cannot take over a live session: retrying until it ends",
                key.1, key.0
            ));
            tracing::warn!(?peer, %status, "refused a proxy");
            status
        };
        let owner = session::owner(node.csr_pem.as_deref());
        match self.store.session_holder(&key.0, &key.1).await {
            // The same proxy moving from another replica (its CSR proves it) takes its
            // session along; anyone else waits for that session to end.
            Ok(Some(h))
                if h.replica != self.hub.replica() && (owner.is_empty() || h.owner != owner) =>
            {
                return Err(taken(&format!("on control plane {}", h.replica)));
            }
            Ok(_) => {}
            Err(e) => return Err(session::store_status(e)),
        }
        let reg = self
            .hub
            .register_exclusive(key.clone(), session::initial_status(peer, &node), &token_id)
            .map_err(|from| taken(&format!("from {from}")))?;
        // See `serve_ingress`: a revocation racing this connection.
        if self
            .tokens
            .dataplane_token_revoked(&key.0, &token_id)
            .await
            .unwrap_or(false)
        {
            self.hub.unregister(&key, reg.id);
            tracing::warn!(?peer, mesh = %key.0, name = %key.1, "refused a proxy: its dataplane token was just revoked");
            return Err(Status::unauthenticated(
                "invalid dataplane token: it has been revoked",
            ));
        }
        if let Err(status) = session::register(&self.store, dp.clone()).await {
            self.hub.unregister(&key, reg.id);
            return Err(status);
        }
        tracing::info!(mesh = %key.0, name = %key.1, ?peer, "proxy connected");
        // Other replicas count this proxy online (an endpoint) through the store.
        if let Err(e) = self
            .store
            .open_session(&key.0, &key.1, self.hub.replica(), &owner)
            .await
        {
            tracing::warn!(mesh = %key.0, name = %key.1, error = %e, "cannot record the session in the store");
        }
        let (tx, rx) = mpsc::channel(16);
        let conn = stream::Conn::new(key, self.hub.clone(), self.store.clone(), reg, tx);
        let sidecar = session::Sidecar::new(node.csr_pem.clone());
        tokio::spawn(stream::run(conn, sidecar, first, inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<
            Streaming<envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest>,
        >,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental xDS is not supported: use StreamAggregatedResources",
        ))
    }
}
