//! Leadership among control-plane replicas sharing a store, and their heartbeats.
//!
//! Every replica beats once a second (so the others know its proxies are still online) and
//! asks for leadership; the store grants it to one at a time (PostgreSQL: an advisory lock on
//! a dedicated connection, released the moment that replica dies; the embedded and memory
//! stores: always this replica). Only the leader runs background work that must not run
//! twice, such as generating MeshServices.

use std::sync::Arc;
use std::time::Duration;

use aerie_store::SharedStore;
use tokio::sync::watch;

use crate::metrics::Metrics;

const TICK: Duration = Duration::from_secs(1);

/// Starts the loop; the receiver says whether this replica leads.
pub fn spawn(
    store: SharedStore,
    replica: Arc<str>,
    metrics: Arc<Metrics>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = store.heartbeat(&replica).await {
                tracing::warn!(error = %e, "cannot record this replica's heartbeat");
            }
            let leads = match store.try_lead().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check leadership; acting as a follower");
                    false
                }
            };
            if *tx.borrow() != leads {
                if leads {
                    tracing::info!(replica = %replica, "this control plane is now the leader");
                } else {
                    tracing::info!(replica = %replica, "this control plane is no longer the leader");
                }
                metrics.set_leader(leads);
                let _ = tx.send(leads);
            }
        }
    });
    (rx, task)
}

/// Offline-Dataplane cleanup, run by the leader: a Dataplane whose proxy has had no session
/// on any replica for `age` (as observed by this leader; a new leader starts counting again,
/// so nothing is ever deleted early) is deleted, as Kuma does after 72 hours.
pub async fn cleanup_offline(store: SharedStore, mut leader: watch::Receiver<bool>, age: Duration) {
    use std::collections::HashMap;

    use aerie_core::ResourceType;
    use tokio::time::Instant;

    let sweep = (age / 4).clamp(Duration::from_millis(500), Duration::from_secs(60));
    let mut offline_since: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tokio::time::sleep(sweep).await;
        if !*leader.borrow() {
            offline_since.clear();
            continue;
        }
        let meshes = match store.list(ResourceType::Mesh, None).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "offline cleanup cannot list meshes");
                continue;
            }
        };
        let now = Instant::now();
        let mut seen = HashMap::new();
        for mesh in meshes {
            let (Ok(dps), Ok(online)) = (
                store.list(ResourceType::Dataplane, Some(mesh.name())).await,
                store.online(mesh.name()).await,
            ) else {
                continue;
            };
            for dp in dps.iter().filter(|d| !online.contains(d.name())) {
                let key = (mesh.name().to_string(), dp.name().to_string());
                let since = *offline_since.get(&key).unwrap_or(&now);
                if now.duration_since(since) >= age {
                    match store
                        .delete(ResourceType::Dataplane, mesh.name(), dp.name())
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(mesh = mesh.name(), name = dp.name(), offline_for = ?age, "deleted an offline Dataplane")
                        }
                        Err(e) => {
                            tracing::warn!(mesh = mesh.name(), name = dp.name(), error = %e, "cannot delete an offline Dataplane")
                        }
                    }
                } else {
                    seen.insert(key, since);
                }
            }
        }
        offline_since = seen;
    }
}

/// CA housekeeping, run by the leader: a mesh gets its CA as soon as mTLS is enabled (not
/// when its first proxy connects), and a CA close to expiry is reported every sweep.
pub async fn ca_housekeeping(
    store: SharedStore,
    cas: Arc<crate::ca::MeshCas>,
    mut leader: watch::Receiver<bool>,
) {
    use aerie_core::{ResourceType, Spec};

    /// Warn when a CA expires within this time.
    const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);
    let mut feed = store.subscribe();
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        match store.list(ResourceType::Mesh, None).await {
            Ok(meshes) => {
                for mesh in &meshes {
                    let Spec::Mesh(spec) = &mesh.spec else {
                        continue;
                    };
                    match cas.enabled_ca(mesh.name(), spec).await {
                        Ok(Some(ca)) => {
                            let left = ca
                                .ca
                                .not_after()
                                .duration_since(std::time::SystemTime::now())
                                .unwrap_or_default();
                            if left < EXPIRY_WARNING {
                                tracing::warn!(mesh = mesh.name(), backend = %ca.backend, expires_in = ?left, "the mesh CA expires soon: rotate it (change the mTLS backend)");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(mesh = mesh.name(), error = %format!("{e:#}"), "mesh CA check failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "CA housekeeping cannot list meshes"),
        }
        // Next sweep: when a Mesh changes, leadership changes, or a minute passes.
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                changed = leader.changed() => if changed.is_err() { return } else { break },
                ev = feed.recv() => match ev {
                    Ok(ev) if ev.rtype == ResourceType::Mesh || ev.is_resync() => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}
