//! The lifecycle every proxy stream shares, sidecar or zone ingress: one state machine.
//!
//! A stream is admitted and registered by the caller (`session::admit`, `ingress::admit`),
//! then [`run`] drives it: each request goes to the kind's [`Protocol::handle`] (subscriptions,
//! ACKs and NACKs), each new snapshot to [`Protocol::push`], a revoked token ends the stream
//! with `Unauthenticated`. When the stream ends the session is closed in the store if this
//! stream still holds it, and a proxy that said goodbye (closed its side) has its resource
//! removed; one whose connection was lost keeps it, offline, until the cleanup age.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use aerie_core::ResourceType;
use aerie_store::{SharedStore, StoreError};
use aerie_xds::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::hub::{ConnStatus, DpKey, Hub, Registration};

/// What one kind of proxy adds to the shared lifecycle.
pub trait Protocol: Send {
    /// The resource a proxy of this kind registers, removed when it leaves gracefully.
    const RESOURCE: ResourceType;
    /// How logs name the proxy.
    const WHO: &'static str;
    /// What the proxy is told when the token it connected with is revoked.
    const REVOKED: &'static str;

    /// Handles one request from the proxy. `Err` means the stream is gone.
    fn handle(
        &mut self,
        conn: &mut Conn,
        req: DiscoveryRequest,
    ) -> impl Future<Output = Result<(), ()>> + Send;

    /// Sends whatever the proxy lacks from the current snapshot. `Err`: the stream is gone.
    fn push(&mut self, conn: &mut Conn) -> impl Future<Output = Result<(), ()>> + Send;
}

/// The connection's shared state: who it is, where its snapshots come from, where its
/// responses go.
pub struct Conn {
    pub key: DpKey,
    pub hub: Arc<Hub>,
    pub store: SharedStore,
    pub reg: Registration,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    nonce: u64,
    /// Per type URL, the last response's nonce and when it was sent, until the proxy answers
    /// it (`xds_delivery`).
    in_flight: Vec<(String, String, Instant)>,
}

enum End {
    /// The proxy closed its stream: it is leaving.
    Graceful,
    /// The stream broke, this session was replaced, or its token was revoked.
    Lost,
}

impl Conn {
    pub fn new(
        key: DpKey,
        hub: Arc<Hub>,
        store: SharedStore,
        reg: Registration,
        tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    ) -> Conn {
        Conn {
            key,
            hub,
            store,
            reg,
            tx,
            nonce: 0,
            in_flight: Vec::new(),
        }
    }

    /// The connection's status, as `inspect` shows it.
    pub fn status(&self) -> std::sync::MutexGuard<'_, ConnStatus> {
        self.reg.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A response with the next nonce.
    pub fn response(
        &mut self,
        type_url: &str,
        version: &str,
        resources: Vec<envoy_types::pb::google::protobuf::Any>,
    ) -> DiscoveryResponse {
        self.nonce += 1;
        DiscoveryResponse {
            version_info: version.to_string(),
            resources,
            type_url: type_url.to_string(),
            nonce: self.nonce.to_string(),
            ..DiscoveryResponse::default()
        }
    }

    /// The nonce of the last response, for a version that must change with every send.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Sends a response, counting it. `Err`: the proxy is gone.
    pub async fn send(&mut self, resp: DiscoveryResponse) -> Result<(), ()> {
        self.status().responses_sent += 1;
        self.hub
            .metrics
            .xds_response(&resp.type_url, prost::Message::encoded_len(&resp));
        let sent = (resp.type_url.clone(), resp.nonce.clone(), Instant::now());
        match self.in_flight.iter_mut().find(|f| f.0 == resp.type_url) {
            Some(f) => *f = sent,
            None => self.in_flight.push(sent),
        }
        self.tx.send(Ok(resp)).await.map_err(|_| ())
    }

    /// Records the proxy's ACK or NACK (`error_detail`) of `what` in `req` (a reply: it
    /// carries a response nonce).
    pub fn record_reply(&mut self, what: &str, req: &DiscoveryRequest) {
        let (type_url, nack) = (
            req.type_url.as_str(),
            req.error_detail.as_ref().map(|e| e.message.as_str()),
        );
        self.hub.metrics.xds_request(type_url, nack.is_some());
        if let Some(i) = self
            .in_flight
            .iter()
            .position(|f| f.0 == type_url && f.1 == req.response_nonce)
        {
            let (_, _, at) = self.in_flight.swap_remove(i);
            self.hub
                .metrics
                .xds_delivered(at.elapsed().as_secs_f64() * 1000.0);
        }
        let mut st = self.status();
        match nack {
            Some(message) => {
                let (mesh, name) = &self.key;
                tracing::warn!(mesh, name, error = %message, "the proxy rejected its {what} (NACK); it keeps the last good one");
                st.last_nack = Some(message.to_string());
            }
            None => {
                st.responses_acknowledged += 1;
                st.last_nack = None;
            }
        }
    }
}

/// Drives one admitted, registered stream until it ends, then cleans up after it.
pub async fn run<P: Protocol>(
    mut conn: Conn,
    mut proto: P,
    first: DiscoveryRequest,
    mut inbound: Streaming<DiscoveryRequest>,
) {
    conn.hub.metrics.xds_stream(1);
    let end = serve(&mut conn, &mut proto, first, &mut inbound).await;
    conn.hub.metrics.xds_stream(-1);
    let still_ours = conn.hub.unregister(&conn.key, conn.reg.id);
    let (mesh, name) = &conn.key;
    let who = P::WHO;
    if !still_ours {
        tracing::info!(mesh, name, "the replaced session of a {who} ended");
        return;
    }
    if let Err(e) = conn
        .store
        .close_session(mesh, name, conn.hub.replica())
        .await
    {
        tracing::warn!(mesh, name, error = %e, "cannot record the end of a {who}'s session in the store");
    }
    match end {
        End::Graceful => {
            match conn.store.delete(P::RESOURCE, mesh, name).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(mesh, name, error = %e, "cannot remove the {} of a {who} that left", P::RESOURCE)
                }
            }
            tracing::info!(
                mesh,
                name,
                "{who} disconnected gracefully; {} removed",
                P::RESOURCE
            );
        }
        End::Lost => tracing::info!(
            mesh,
            name,
            "{who} connection lost; {} kept (offline)",
            P::RESOURCE
        ),
    }
}

async fn serve<P: Protocol>(
    conn: &mut Conn,
    proto: &mut P,
    first: DiscoveryRequest,
    inbound: &mut Streaming<DiscoveryRequest>,
) -> End {
    // `handle` and `push` are boxed: their futures (signing a certificate, encoding a
    // response) would otherwise be part of this one, held for the stream's whole life,
    // although they run only briefly on each request and push.
    if Box::pin(proto.handle(conn, first)).await.is_err() {
        return End::Lost;
    }
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => if Box::pin(proto.handle(conn, req)).await.is_err() { return End::Lost },
                Ok(None) => return End::Graceful,
                Err(status) => {
                    tracing::debug!(key = ?conn.key, %status, "stream error");
                    return End::Lost;
                }
            },
            changed = conn.reg.snapshots.changed() => {
                if changed.is_err() || Box::pin(proto.push(conn)).await.is_err() {
                    return End::Lost;
                }
            }
            revoked = conn.reg.revoked.changed() => {
                if revoked.is_ok() && *conn.reg.revoked.borrow() {
                    let (mesh, name) = &conn.key;
                    tracing::warn!(mesh, name, "the {}'s token was revoked: ending its session", P::WHO);
                    let _ = conn.tx.send(Err(Status::unauthenticated(P::REVOKED))).await;
                }
                return End::Lost;
            }
        }
    }
}
