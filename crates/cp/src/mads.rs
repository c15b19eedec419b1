//! Prometheus discovery of the proxies' MeshMetric endpoints, on the Monitoring Assignment
//! Discovery Service port (5676, `KUMA_MONITORING_ASSIGNMENT_SERVER_PORT`):
//!
//! - `POST /v3/discovery:monitoringassignments`: Kuma's MADS as Prometheus's
//!   `kuma_sd_configs` speaks it (xDS REST with JSON bodies): a `DiscoveryRequest` naming
//!   its client in `node.id`, answered with a `DiscoveryResponse` of
//!   `kuma.observability.v1.MonitoringAssignment` resources, one per proxy and Prometheus
//!   backend announced to that client (`_kuma-default-client` for a client no backend
//!   names). A request carrying the current `version_info` waits (long polling, up to its
//!   `fetch-timeout`, default 30 s) for a change, else gets `304 Not Modified`.
//! - `GET /http_sd` (Aerie's): the same targets as Prometheus's generic HTTP service
//!   discovery reads them (`[{"targets": [...], "labels": {...}}]`), with the labels
//!   `kuma_sd_configs` would give (`__meta_kuma_mesh`, `__meta_kuma_service`,
//!   `__meta_kuma_dataplane`, `__metrics_path__`, `__scheme__`, `instance`); `client_id`
//!   picks the client as `node.id` does.
//!
//! Assignments are computed from the store at most once per refresh interval (1 s) and
//! shared by every request. Like Kuma's, the server is unauthenticated and read-only: it
//! tells where metrics are, never any secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerie_core::policies::meshmetric::DEFAULT_CLIENT_ID;
use aerie_core::policies::rules::DataplaneView;
use aerie_core::{ResourceType, Spec};
use aerie_store::SharedStore;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The MonitoringAssignment type URL.
pub const TYPE_URL: &str = "type.googleapis.com/kuma.observability.v1.MonitoringAssignment";
/// How often assignments are recomputed at most (Kuma's `assignmentRefreshInterval`).
const REFRESH: Duration = Duration::from_secs(1);
/// The longest wait a client may ask for.
const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// One proxy's endpoint announced to one client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub client_id: String,
    pub mesh: String,
    pub service: String,
    pub dataplane: String,
    pub address: String,
    pub path: String,
    pub scheme: &'static str,
}

/// Every assignment of every mesh, sorted.
pub async fn compute(store: &SharedStore) -> anyhow::Result<Vec<Assignment>> {
    let mut out = Vec::new();
    for mesh in store.list(ResourceType::Mesh, None).await? {
        let mesh_name = mesh.meta.name.clone();
        let metrics = store
            .list(ResourceType::MeshMetric, Some(&mesh_name))
            .await?;
        if metrics.is_empty() {
            continue;
        }
        let services = store
            .list(ResourceType::MeshService, Some(&mesh_name))
            .await?;
        let catalog = crate::dpserver::service_catalog(services.iter());
        let rules = crate::dpserver::metric_rules(&mesh_name, &metrics, &catalog);
        for dp in store
            .list(ResourceType::Dataplane, Some(&mesh_name))
            .await?
        {
            let Spec::Dataplane(spec) = &dp.spec else {
                continue;
            };
            let view = DataplaneView {
                mesh: &mesh_name,
                name: &dp.meta.name,
                labels: &dp.meta.labels,
                spec,
            };
            let Some(m) = rules.for_dataplane(&view) else {
                continue;
            };
            let net = spec.networking.as_ref();
            let ip = net
                .and_then(|n| n.advertised_address.clone())
                .or_else(|| net.map(|n| n.address.clone()))
                .unwrap_or_default();
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            let service = net
                .and_then(|n| n.inbound.first())
                .map(|i| i.service().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into());
            for p in &m.prometheus {
                out.push(Assignment {
                    client_id: p.client_id.clone(),
                    mesh: mesh_name.clone(),
                    service: service.clone(),
                    dataplane: dp.meta.name.clone(),
                    address: format!("{host}:{}", p.port),
                    path: p.path.clone(),
                    scheme: if p.tls_requested { "https" } else { "http" },
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The assignments a client sees: those announced to it, or, for a client no backend
/// names, those of the default client (Kuma's fallback node hash).
pub fn for_client<'a>(all: &'a [Assignment], client: &str) -> Vec<&'a Assignment> {
    let known = all.iter().any(|a| a.client_id == client);
    let wanted = if known { client } else { DEFAULT_CLIENT_ID };
    all.iter().filter(|a| a.client_id == wanted).collect()
}

/// A client's view as MADS resources.
pub fn resources(list: &[&Assignment]) -> Vec<Value> {
    list.iter()
        .map(|a| {
            json!({
                "@type": TYPE_URL,
                "mesh": a.mesh,
                "service": a.service,
                "targets": [{
                    "name": a.dataplane,
                    "scheme": a.scheme,
                    "address": a.address,
                    "metrics_path": a.path,
                    "labels": {},
                }],
                "labels": {},
            })
        })
        .collect()
}

/// The version of a client's view: a hash of its resources.
pub fn version(resources: &[Value]) -> String {
    let text = serde_json::to_string(resources).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh64::xxh64(text.as_bytes(), 0))
}

/// A client's view as Prometheus HTTP SD target groups.
pub fn http_sd(list: &[&Assignment]) -> Value {
    Value::Array(
        list.iter()
            .map(|a| {
                json!({
                    "targets": [a.address],
                    "labels": {
                        "__meta_kuma_mesh": a.mesh,
                        "__meta_kuma_service": a.service,
                        "__meta_kuma_dataplane": a.dataplane,
                        "__metrics_path__": a.path,
                        "__scheme__": a.scheme,
                        "instance": a.dataplane,
                    },
                })
            })
            .collect(),
    )
}

/// The last assignments computed, and when.
type Cached = Option<(Instant, Arc<Vec<Assignment>>)>;

#[derive(Clone)]
struct Mads {
    store: SharedStore,
    cache: Arc<Mutex<Cached>>,
    default_fetch_timeout: Duration,
}

impl Mads {
    /// The current assignments, recomputed when older than the refresh interval.
    async fn current(&self) -> Result<Arc<Vec<Assignment>>, String> {
        let mut cache = self.cache.lock().await;
        if let Some((at, all)) = cache.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(all.clone());
        }
        let all = Arc::new(compute(&self.store).await.map_err(|e| e.to_string())?);
        *cache = Some((Instant::now(), all.clone()));
        Ok(all)
    }
}

/// The MADS router.
pub fn router(store: SharedStore, default_fetch_timeout: Duration) -> Router {
    Router::new()
        .route("/v3/discovery:monitoringassignments", post(fetch))
        .route("/http_sd", get(http_sd_targets))
        .with_state(Mads {
            store,
            cache: Arc::default(),
            default_fetch_timeout,
        })
}

#[derive(Debug, Default, Deserialize)]
struct DiscoveryRequest {
    #[serde(default, alias = "versionInfo")]
    version_info: String,
    #[serde(default)]
    node: Option<Node>,
}

#[derive(Debug, Default, Deserialize)]
struct Node {
    #[serde(default)]
    id: String,
}

fn error(status: StatusCode, title: &str, detail: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"title": title, "details": detail}).to_string(),
    )
        .into_response()
}

async fn fetch(
    State(m): State<Mads>,
    Query(params): Query<BTreeMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let req: DiscoveryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Could not parse request body",
                e.to_string(),
            );
        }
    };
    let wait = match params.get("fetch-timeout").map(String::as_str) {
        None => m.default_fetch_timeout,
        Some(t) => match aerie_core::duration::parse_go_duration(t) {
            Some(d) => d.min(MAX_FETCH_TIMEOUT),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Could not parse fetch-timeout",
                    format!("fetch-timeout: invalid duration {t:?}"),
                );
            }
        },
    };
    let client = req.node.map(|n| n.id).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let all = match m.current().await {
            Ok(all) => all,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Could not fetch MonitoringAssignments",
                    e,
                );
            }
        };
        let list = for_client(&all, &client);
        let resources = resources(&list);
        let version = version(&resources);
        if version != req.version_info {
            let body = json!({
                "version_info": version,
                "resources": resources,
                "type_url": TYPE_URL,
            });
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        // Long polling: wait for a change until the client's timeout.
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        tokio::time::sleep(REFRESH.min(deadline - now)).await;
    }
}

async fn http_sd_targets(
    State(m): State<Mads>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let client = params.get("client_id").cloned().unwrap_or_default();
    match m.current().await {
        Ok(all) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            http_sd(&for_client(&all, &client)).to_string(),
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not fetch MonitoringAssignments",
            e,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(client: &str, dp: &str) -> Assignment {
        Assignment {
            client_id: client.into(),
            mesh: "default".into(),
            service: "web".into(),
            dataplane: dp.into(),
            address: "10.0.0.1:5670".into(),
            path: "/metrics".into(),
            scheme: "http",
        }
    }

    #[test]
    fn clients_see_their_own_or_the_default_clients_assignments() {
        let all = vec![a(DEFAULT_CLIENT_ID, "web-1"), a("prom-2", "web-2")];
        let names = |c: &str| -> Vec<String> {
            for_client(&all, c)
                .iter()
                .map(|x| x.dataplane.clone())
                .collect()
        };
        assert_eq!(names("prom-2"), vec!["web-2"]);
        assert_eq!(names("someone"), vec!["web-1"]);
        assert_eq!(names(""), vec!["web-1"]);
    }

    #[test]
    fn resources_and_http_sd_carry_kumas_fields_and_labels() {
        let all = vec![a(DEFAULT_CLIENT_ID, "web-1")];
        let list = for_client(&all, "");
        let r = resources(&list);
        assert_eq!(
            r[0],
            json!({"@type": TYPE_URL, "mesh": "default", "service": "web", "labels": {},
                   "targets": [{"name": "web-1", "scheme": "http", "address": "10.0.0.1:5670", "metrics_path": "/metrics", "labels": {}}]})
        );
        assert_eq!(version(&r), version(&resources(&list)));
        assert_ne!(version(&r), version(&[]));
        assert_eq!(
            http_sd(&list),
            json!([{"targets": ["10.0.0.1:5670"], "labels": {
                "__meta_kuma_mesh": "default", "__meta_kuma_service": "web",
                "__meta_kuma_dataplane": "web-1", "__metrics_path__": "/metrics",
                "__scheme__": "http", "instance": "web-1"}}])
        );
    }
}
