//! The diagnostics port (5680): `/ready`, `/healthy`, `/metrics`.

use std::sync::Arc;

use aerie_core::ResourceType;
use aerie_store::SharedStore;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Clone)]
struct Diag {
    store: SharedStore,
    metrics: Arc<Metrics>,
    leader: tokio::sync::watch::Receiver<bool>,
}

pub fn router(
    store: SharedStore,
    metrics: Arc<Metrics>,
    leader: tokio::sync::watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/healthy", get(|| async { "OK" }))
        .route("/metrics", get(metrics_text))
        .with_state(Diag {
            store,
            metrics,
            leader,
        })
}

/// Ready when the store answers; the body says whether this replica leads.
async fn ready(State(d): State<Diag>) -> (StatusCode, String) {
    match d.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            if *d.leader.borrow() {
                "OK: leader"
            } else {
                "OK: follower"
            }
            .into(),
        ),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

async fn metrics_text(
    State(d): State<Diag>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    for t in ResourceType::ALL {
        if let Ok(items) = d.store.list(t, None).await {
            d.metrics.set_resource_count(t.name(), items.len());
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        d.metrics.encode(),
    )
}
