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
