//! The control plane's side of KDS (see `aerie_kds` for the protocol): the global serves
//! [`global::GlobalKds`] on its KDS port, a federated zone runs [`zone::run`].
//!
//! Both directions share one shape: a *sender* computes the full set of resources the peer
//! should hold, diffs it against what the peer holds, and sends the difference; a
//! *receiver* states what it holds when the stream opens, applies each message and answers
//! with an ACK (or a NACK listing what it could not apply). A stream that breaks is simply
//! reopened: each side states its holdings again and only the difference travels.

pub mod global;
pub mod zone;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerie_core::ResourceType;
use aerie_core::multizone::{self, ZONE_LABEL};
use aerie_kds::apply::{self, Side};
use aerie_kds::delta::{Desired, PeerState};
use aerie_kds::wire::{self, Received};
use aerie_kds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, KDS_TYPE, RpcStatus};
use aerie_store::{SharedStore, StoreError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use crate::metrics::Metrics;

/// Changes are gathered this long before a message goes out.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Even without store events the sender re-checks this often (online proxies change
/// without touching resources).
const RECHECK: Duration = Duration::from_secs(1);

/// What the global resources a zone should hold look like: every resource that syncs
/// global -> zone, as the zone stores it, except that zone's own ingresses.
pub async fn global_desired(store: &SharedStore, zone: &str) -> Result<Desired, StoreError> {
    let mut out = Desired::new();
    for t in ResourceType::synced_to_zones() {
        for r in store.list(t, None).await? {
            if !multizone::syncs_global_to_zone(&r)
                || r.meta.labels.get(ZONE_LABEL).is_some_and(|z| z == zone)
            {
                continue;
            }
            let copy = multizone::to_zone_copy(&r);
            out.insert(wire::key_of(&copy), wire::encode(&copy));
        }
    }
    Ok(out)
}

/// What a zone sends the global: its own Dataplanes, MeshServices and ZoneIngresses as the
/// global stores them.
pub async fn zone_desired(store: &SharedStore, zone: &str) -> Result<Desired, StoreError> {
    let mut out = Desired::new();
    for t in ResourceType::synced_to_global() {
        for r in store.list(t, None).await? {
            if multizone::syncs_zone_to_global(&r, zone) {
                let copy = multizone::to_global_copy(&r, zone);
                out.insert(wire::key_of(&copy), wire::encode(&copy));
            }
        }
    }
    Ok(out)
}

/// An online marker for each proxy connected to this zone (sidecars per mesh; ingresses are
/// sessions outside any mesh, under mesh ""), named as the global names their resources.
pub async fn zone_online_markers(store: &SharedStore, zone: &str) -> Result<Desired, StoreError> {
    let mut out = Desired::new();
    let meshes = store.list(ResourceType::Mesh, None).await?;
    let scopes = meshes.iter().map(|m| m.name()).chain(std::iter::once(""));
    for mesh in scopes {
        for name in store.online(mesh).await? {
            let marker = wire::encode_online(mesh, &multizone::hashed_name(&name, &[mesh, zone]));
            out.insert(marker.name.clone(), marker);
        }
    }
    Ok(out)
}

/// What one side of a stream sends.
#[tonic::async_trait]
pub trait Source: Send + Sync {
    /// Everything derived from stored resources: recomputed only after a store change.
    async fn resources(&self) -> Result<Desired, String>;
    /// What changes without a store event (which proxies are online): re-read every
    /// [`RECHECK`], so it must be cheap.
    async fn volatile(&self) -> Result<Desired, String> {
        Ok(Desired::new())
    }
}

/// Counters of one stream, for `/zones+insights`.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub responses_sent: u64,
    pub responses_acknowledged: u64,
    pub responses_rejected: u64,
    pub last_update_time: Option<String>,
    pub last_error: Option<String>,
}

pub type SharedStats = Arc<Mutex<StreamStats>>;

fn stats(s: &SharedStats) -> std::sync::MutexGuard<'_, StreamStats> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a stream half reports: its stream's stats (`/zones+insights`) and the control
/// plane's metrics.
pub struct Observed<'a> {
    pub stats: SharedStats,
    pub metrics: &'a Metrics,
}

/// Responses whose delivery time is still awaited, at most.
const IN_FLIGHT_KEPT: usize = 16;

/// `kds_delta_streams_active` while a stream half runs.
struct StreamGauge<'a>(&'a Metrics);

impl<'a> StreamGauge<'a> {
    fn open(metrics: &'a Metrics) -> Self {
        metrics.kds_stream(1);
        StreamGauge(metrics)
    }
}

impl Drop for StreamGauge<'_> {
    fn drop(&mut self) {
        self.0.kds_stream(-1);
    }
}

/// Runs the sending half of a stream until the peer closes it (`Ok`) or it breaks (`Err`).
/// `incoming` yields the peer's requests: the first states its holdings, the others are
/// ACKs/NACKs.
pub async fn run_sender<S>(
    store: SharedStore,
    mut incoming: S,
    out: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    source: &dyn Source,
    what: &str,
    observed: Observed<'_>,
) -> Result<(), String>
where
    S: Stream<Item = Result<DeltaDiscoveryRequest, Status>> + Unpin,
{
    let Observed {
        stats: stats_,
        metrics,
    } = observed;
    let _open = StreamGauge::open(metrics);
    let first = match incoming.next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(e.message().to_string()),
        None => return Ok(()),
    };
    let mut peer = PeerState::from_initial(first.initial_resource_versions);
    let mut feed = store.subscribe();
    let mut nonce: u64 = 0;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (resources changed, volatile part may have changed)
    let (mut stored_dirty, mut dirty) = (true, true);
    let mut resources = Desired::new();
    // Responses not answered yet: nonce and when it was sent (`kds_delta_delivery`). The
    // peer answers each in order; a few are kept in case it does not.
    let mut in_flight: VecDeque<(String, Instant)> = VecDeque::new();
    loop {
        if dirty {
            dirty = false;
            if std::mem::take(&mut stored_dirty) {
                resources = source.resources().await?;
            }
            let volatile = source.volatile().await?;
            let delta = peer.diff_all(&[&resources, &volatile]);
            if !delta.is_empty() {
                nonce += 1;
                let (n_up, n_rm) = (delta.upserts.len(), delta.removed.len());
                let msg = DeltaDiscoveryResponse {
                    system_version_info: nonce.to_string(),
                    resources: delta.upserts.clone(),
                    removed_resources: delta.removed.clone(),
                    type_url: KDS_TYPE.into(),
                    nonce: nonce.to_string(),
                    ..DeltaDiscoveryResponse::default()
                };
                metrics.kds_response(KDS_TYPE, prost::Message::encoded_len(&msg));
                if in_flight.len() == IN_FLIGHT_KEPT {
                    in_flight.pop_front();
                }
                in_flight.push_back((msg.nonce.clone(), Instant::now()));
                out.send(Ok(msg))
                    .await
                    .map_err(|_| "the stream closed".to_string())?;
                peer.commit(&delta);
                stats(&stats_).responses_sent += 1;
                tracing::debug!(what, upserts = n_up, removed = n_rm, nonce, "KDS sent");
            }
        }
        tokio::select! {
            ev = feed.recv() => {
                // Any change may matter; gather a burst before recomputing.
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = ev {
                    return Err("the store's change feed closed".into());
                }
                tokio::time::sleep(DEBOUNCE).await;
                while feed.try_recv().is_ok() {}
                (stored_dirty, dirty) = (true, true);
            }
            _ = recheck.tick() => dirty = true,
            req = incoming.next() => match req {
                Some(Ok(req)) => {
                    metrics.kds_request(KDS_TYPE, req.error_detail.is_some());
                    if let Some(i) = in_flight.iter().position(|(n, _)| *n == req.response_nonce)
                        && let Some((_, at)) = in_flight.remove(i)
                    {
                        metrics.kds_delivered(at.elapsed().as_secs_f64() * 1000.0);
                    }
                    let mut st = stats(&stats_);
                    match req.error_detail {
                        Some(err) => {
                            st.responses_rejected += 1;
                            st.last_error = Some(err.message.clone());
                            tracing::warn!(what, error = %err.message, "the peer could not apply some resources (NACK)");
                        }
                        None => {
                            st.responses_acknowledged += 1;
                            st.last_update_time = Some(crate::now_rfc3339());
                        }
                    }
                }
                Some(Err(e)) => return Err(e.message().to_string()),
                None => return Ok(()),
            },
        }
    }
}

/// Tracks the proxies a zone reports online, as sessions in the global's store (so every
/// replica of the global sees them, and they end with this replica if it dies).
pub struct OnlineTracker {
    store: SharedStore,
    replica: Arc<str>,
    open: HashSet<(String, String)>,
}

impl OnlineTracker {
    pub fn new(store: SharedStore, replica: Arc<str>) -> Self {
        OnlineTracker {
            store,
            replica,
            open: HashSet::new(),
        }
    }

    async fn set(&mut self, mesh: &str, name: &str, online: bool) {
        let key = (mesh.to_string(), name.to_string());
        let result = if online {
            self.open.insert(key);
            self.store.open_session(mesh, name, &self.replica, "").await
        } else {
            self.open.remove(&key);
            self.store.close_session(mesh, name, &self.replica).await
        };
        if let Err(e) = result {
            tracing::warn!(mesh, name, error = %e, "cannot record a zone proxy's status");
        }
    }

    /// Ends every session this stream opened (the zone disconnected).
    pub async fn close_all(&mut self) {
        for (mesh, name) in std::mem::take(&mut self.open) {
            if let Err(e) = self.store.close_session(&mesh, &name, &self.replica).await {
                tracing::warn!(mesh, name, error = %e, "cannot record a zone proxy's status");
            }
        }
    }
}

/// Runs the receiving half: states this side's holdings, then applies each message and
/// answers it. `online` is given on the global (zones report their proxies).
pub async fn run_receiver<S>(
    store: SharedStore,
    side: Side<'_>,
    mut incoming: S,
    out: mpsc::Sender<Result<DeltaDiscoveryRequest, Status>>,
    first: DeltaDiscoveryRequest,
    mut online: Option<&mut OnlineTracker>,
    observed: Observed<'_>,
) -> Result<(), String>
where
    S: Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Unpin,
{
    let Observed {
        stats: stats_,
        metrics,
    } = observed;
    let _open = StreamGauge::open(metrics);
    let holdings = apply::holdings(&store, side)
        .await
        .map_err(|e| format!("cannot read the store: {e}"))?;
    let initial = DeltaDiscoveryRequest {
        type_url: KDS_TYPE.into(),
        initial_resource_versions: holdings,
        ..first
    };
    out.send(Ok(initial))
        .await
        .map_err(|_| "the stream closed".to_string())?;
    loop {
        let msg = match incoming.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e.message().to_string()),
            None => return Ok(()),
        };
        let mut errors = Vec::new();
        let mut upserts = Vec::new();
        for w in &msg.resources {
            match wire::decode(w) {
                Ok(Received::Resource(r)) => upserts.push(*r),
                Ok(Received::Online { mesh, name }) => match online.as_deref_mut() {
                    Some(tracker) => tracker.set(&mesh, &name, true).await,
                    None => {
                        errors.push(format!("{}: online markers only go to the global", w.name))
                    }
                },
                Err(e) => errors.push(e.to_string()),
            }
        }
        let mut removed = Vec::new();
        for key in msg.removed_resources {
            match (wire::parse_online_key(&key), online.as_deref_mut()) {
                (Some((mesh, name)), Some(tracker)) => tracker.set(mesh, name, false).await,
                (Some(_), None) => {}
                (None, _) => removed.push(key),
            }
        }
        let now = crate::now_rfc3339();
        let started = Instant::now();
        let report = apply::apply(&store, side, upserts, removed, &now)
            .await
            .map_err(|e| format!("cannot write the store: {e}"))?;
        metrics.kds_synced(started.elapsed().as_secs_f64());
        errors.extend(report.errors);
        {
            let mut st = stats(&stats_);
            st.responses_sent += 1;
            st.last_update_time = Some(now);
            if errors.is_empty() {
                st.responses_acknowledged += 1;
            } else {
                st.responses_rejected += 1;
                st.last_error = Some(errors.join("; "));
            }
        }
        if !errors.is_empty() {
            tracing::warn!(?side, errors = %errors.join("; "), "some synced resources could not be applied");
        }
        let ack = DeltaDiscoveryRequest {
            type_url: KDS_TYPE.into(),
            response_nonce: msg.nonce,
            error_detail: (!errors.is_empty()).then(|| RpcStatus {
                code: tonic::Code::InvalidArgument as i32,
                message: errors.join("; "),
                details: Vec::new(),
            }),
            ..DeltaDiscoveryRequest::default()
        };
        out.send(Ok(ack))
            .await
            .map_err(|_| "the stream closed".to_string())?;
    }
}

/// One zone's connection to this global, as `/zones+insights` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub global_instance_id: String,
    pub connect_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_time: Option<String>,
    pub status: SubscriptionStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    pub total: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Kuma prints these counters as strings (proto uint64 in JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub responses_sent: String,
    pub responses_acknowledged: String,
    pub responses_rejected: String,
}

struct ZoneConn {
    id: u64,
    connect_time: String,
    disconnect_time: Option<String>,
    /// (global -> zone, zone -> global)
    streams: Vec<SharedStats>,
}

/// The zones connected to this global replica, and the ones that were.
pub struct ZoneRegistry {
    replica: Arc<str>,
    zones: Mutex<BTreeMap<String, ZoneConn>>,
    next: std::sync::atomic::AtomicU64,
}

impl ZoneRegistry {
    pub fn new(replica: Arc<str>) -> Self {
        ZoneRegistry {
            replica,
            zones: Mutex::new(BTreeMap::new()),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ZoneConn>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a stream of `zone`; a stream opened within the same connection (the two
    /// directions) joins it. Returns the stream's stats and the connection id.
    pub fn stream_opened(&self, zone: &str) -> (u64, SharedStats) {
        let st = SharedStats::default();
        let mut zones = self.lock();
        let reuse = zones
            .get(zone)
            .filter(|c| c.disconnect_time.is_none() && c.streams.len() < 2)
            .map(|c| c.id);
        let id = match reuse {
            Some(id) => id,
            None => {
                let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                zones.insert(
                    zone.to_string(),
                    ZoneConn {
                        id,
                        connect_time: crate::now_rfc3339(),
                        disconnect_time: None,
                        streams: Vec::new(),
                    },
                );
                id
            }
        };
        if let Some(c) = zones.get_mut(zone) {
            c.streams.push(st.clone());
        }
        (id, st)
    }

    pub fn stream_closed(&self, zone: &str, id: u64) {
        if let Some(c) = self.lock().get_mut(zone).filter(|c| c.id == id) {
            c.disconnect_time.get_or_insert_with(crate::now_rfc3339);
        }
    }

    /// This replica's view of a zone's connection, if it ever had one.
    pub fn subscription(&self, zone: &str) -> Option<Subscription> {
        let zones = self.lock();
        let c = zones.get(zone)?;
        let mut sent = 0;
        let mut acked = 0;
        let mut rejected = 0;
        let mut last_update: Option<String> = None;
        let mut last_error = None;
        for s in &c.streams {
            let s = stats(s);
            sent += s.responses_sent;
            acked += s.responses_acknowledged;
            rejected += s.responses_rejected;
            if s.last_update_time > last_update {
                last_update.clone_from(&s.last_update_time);
            }
            if s.last_error.is_some() {
                last_error.clone_from(&s.last_error);
            }
        }
        Some(Subscription {
            id: c.id.to_string(),
            global_instance_id: self.replica.to_string(),
            connect_time: c.connect_time.clone(),
            disconnect_time: c.disconnect_time.clone(),
            status: SubscriptionStatus {
                last_update_time: last_update,
                total: Totals {
                    responses_sent: sent.to_string(),
                    responses_acknowledged: acked.to_string(),
                    responses_rejected: rejected.to_string(),
                },
                last_error,
            },
        })
    }
}

/// The session key under which a connected zone is recorded in the store (beside proxy
/// sessions; no mesh is named "", so it cannot clash with a proxy).
pub fn zone_session_name(zone: &str) -> String {
    format!("zone/{zone}")
}

/// Zones connected to any replica of the global.
pub async fn online_zones(store: &SharedStore) -> Result<HashSet<String>, StoreError> {
    Ok(store
        .online("")
        .await?
        .into_iter()
        .filter_map(|n| n.strip_prefix("zone/").map(str::to_string))
        .collect())
}
