//! The REST API on 5681 (HTTP) and 5682 (HTTPS), Kuma's paths and shapes
//! (see `docs/rest-api.md`).

mod auth;
mod error;
mod insights;
mod inspect;
mod paging;
mod resources;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use auth::{ADMIN_GROUP, Caller};
pub use error::ApiError;

use crate::config::Mode;
use crate::metrics::Metrics;
use crate::tokens::TokenIssuer;
use aerie_store::SharedStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub tokens: Arc<TokenIssuer>,
    /// Connected proxies (for online status and inspection).
    pub hub: Arc<crate::dpserver::Hub>,
    pub metrics: Arc<Metrics>,
    pub mode: Mode,
    pub localhost_is_admin: bool,
    pub instance_id: Arc<str>,
    /// Whether this replica leads (see `crate::leader`).
    pub leader: tokio::sync::watch::Receiver<bool>,
    /// Standalone, global, or a zone connected to a global: decides what may be written.
    pub role: crate::Role,
    /// On a global: the zones connected to this replica (for `/zones+insights`).
    pub zones: Option<Arc<crate::kds::ZoneRegistry>>,
}

/// Builds the API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(resources::index))
        .route("/_resources", get(resources::descriptors))
        .route("/tokens/user", post(crate::tokens::issue_user_token))
        .route(
            "/tokens/dataplane",
            post(crate::tokens::issue_dataplane_token),
        )
        .route("/tokens/zone", post(crate::tokens::issue_zone_token))
        .route("/zones+insights", get(insights::list_zones))
        .route("/zones+insights/{name}", get(insights::get_zone))
        .route("/zoneingresses+insights", get(insights::list_ingresses))
        .route("/zoneingresses+insights/{name}", get(insights::get_ingress))
        .route("/meshes", get(resources::list_meshes))
        .route(
            "/meshes/{name}",
            get(resources::get_mesh)
                .put(resources::put_mesh)
                .delete(resources::delete_mesh),
        )
        .route(
            "/meshes/{mesh}/dataplanes+insights",
            get(insights::list_overviews),
        )
        .route(
            "/meshes/{mesh}/dataplanes+insights/{name}",
            get(insights::get_overview),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_policies",
            get(inspect::proxy_policies),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_inbounds/{kri}/_policies",
            get(inspect::inbound_policies),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_outbounds/{kri}/_policies",
            get(inspect::outbound_policies),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_layout",
            get(inspect::layout),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/policies",
            get(inspect::matched_policies),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_config",
            get(insights::config),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_explain",
            get(insights::explain),
        )
        .route("/meshes/{mesh}/{plural}", get(resources::list_in_mesh))
        .route(
            "/meshes/{mesh}/{plural}/{name}",
            get(resources::get_in_mesh)
                .put(resources::put_in_mesh)
                .delete(resources::delete_in_mesh),
        )
        .route("/{plural}", get(resources::list_top))
        .route(
            "/{plural}/{name}",
            get(resources::get_top)
                .put(resources::put_top)
                .delete(resources::delete_top),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Kuma's API metrics: latency by route pattern (not the path: bounded label values),
/// method and status, and requests in flight by route.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let handler = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let start = std::time::Instant::now();
    state.metrics.api_inflight(&handler, 1.0);
    let resp = next.run(req).await;
    state.metrics.api_inflight(&handler, -1.0);
    state.metrics.api_request(
        &handler,
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
