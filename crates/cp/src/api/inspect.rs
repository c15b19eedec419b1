//! Kuma 2.14's policy inspection endpoints for a Dataplane, with its answers and errors:
//!
//! - `GET /meshes/{mesh}/dataplanes/{name}/_policies`: the single-item policies (MeshMetric,
//!   MeshTrace) selecting the proxy, merged (`PoliciesList`);
//! - `GET .../_inbounds/{kri}/_policies`: per kind, the rules of one inbound
//!   (`InboundPoliciesList`);
//! - `GET .../_outbounds/{kri}/_policies`: per kind, the merged conf for one destination
//!   (`PoliciesList`);
//! - `GET .../_layout`: the proxy's inbounds, listeners and reachable outbounds, with KRIs
//!   (`DataplaneNetworkingLayout`);
//! - `GET .../policies`: the policies applying to the proxy (`DataplaneInspectEntryList`),
//!   what `kumactl inspect dataplane --type=policies` prints.
//!
//! The first four need the mesh's `meshServices.mode: Exclusive`, as in Kuma. The answers
//! are computed by `aerie_core::policies::inspect` from the store's current content.

use aerie_core::Resource;
use aerie_core::kri::Kri;
use aerie_core::policies::inspect::{self, DataplaneView, MeshInspector};
use aerie_core::{ResourceType, Spec};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiError, AppState};

/// Kuma's 400 for a mesh without `meshServices.mode: Exclusive`.
fn mesh_services_required(endpoint: &str) -> ApiError {
    ApiError::bad_request(format!(
        "bad request: can't use {endpoint} endpoint without meshService enabled"
    ))
}

/// A Kuma `NotFound` error as `HandleError` writes it: the title says what was being done.
fn not_found(title: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, title, "Not found")
}

/// Whether a mesh's `meshServices.mode` is `Exclusive` (as protobuf JSON writes the enum,
/// or its number).
fn exclusive(mesh: &Resource) -> bool {
    let Spec::Mesh(spec) = &mesh.spec else {
        return false;
    };
    match spec.mesh_services.as_ref().and_then(|m| m.get("mode")) {
        Some(Value::String(mode)) => mode == "Exclusive",
        Some(Value::Number(n)) => n.as_u64() == Some(3),
        _ => false,
    }
}

/// What the `_policies` family reads: the Dataplane (Kuma's "Could not retrieve Dataplane"
/// when missing), then the mesh, which must have MeshServices in `Exclusive` mode.
async fn exclusive_dataplane(
    state: &AppState,
    mesh: &str,
    name: &str,
) -> Result<Resource, ApiError> {
    let dp = state
        .store
        .get(ResourceType::Dataplane, mesh, name)
        .await?
        .ok_or_else(|| not_found("Could not retrieve Dataplane"))?;
    let mesh_res = state
        .store
        .get(ResourceType::Mesh, "", mesh)
        .await?
        .ok_or_else(|| not_found("Failed to build Mesh context"))?;
    if !exclusive(&mesh_res) {
        return Err(mesh_services_required("_policies"));
    }
    Ok(dp)
}

/// The mesh's policies of every kind and its MeshServices, indexed.
async fn inspector(state: &AppState, mesh: &str) -> Result<MeshInspector, ApiError> {
    let mut policies = Vec::new();
    for t in ResourceType::ALL.into_iter().filter(|t| t.is_policy()) {
        policies.extend(state.store.list(t, Some(mesh)).await?);
    }
    let services = state
        .store
        .list(ResourceType::MeshService, Some(mesh))
        .await?;
    let catalog = crate::dpserver::service_catalog(services.iter().chain(&policies));
    Ok(MeshInspector::new(mesh, &policies, &catalog))
}

fn view(dp: &Resource) -> Option<DataplaneView<'_>> {
    match &dp.spec {
        Spec::Dataplane(spec) => Some(DataplaneView {
            mesh: dp.mesh(),
            name: dp.name(),
            labels: &dp.meta.labels,
            spec,
        }),
        _ => None,
    }
}

/// A KRI from the path, or Kuma's 400 naming the problem.
fn parse_kri(text: &str) -> Result<Kri, ApiError> {
    Kri::parse(text).map_err(|e| ApiError::bad_request(format!("bad request: {e}")))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/_policies`.
pub async fn proxy_policies(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dp = exclusive_dataplane(&state, &mesh, &name).await?;
    let inspector = inspector(&state, &mesh).await?;
    let view = view(&dp).ok_or_else(|| ApiError::internal("Failed building response"))?;
    Ok(Json(inspector.proxy_policies(&view)))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/_inbounds/{kri}/_policies`. Only the KRI's section
/// name is read (an empty one means the first inbound), as Kuma does; no such inbound or
/// listener is Kuma's 500 (`inbound not found` in its log).
pub async fn inbound_policies(
    State(state): State<AppState>,
    Path((mesh, name, kri)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dp = exclusive_dataplane(&state, &mesh, &name).await?;
    let kri = parse_kri(&kri)?;
    let inspector = inspector(&state, &mesh).await?;
    let view = view(&dp).ok_or_else(|| ApiError::internal("Failed building response"))?;
    inspector
        .inbound_policies(&view, &kri.section)
        .map(Json)
        .ok_or_else(|| ApiError::internal("Failed building response"))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/_outbounds/{kri}/_policies`. Any destination KRI
/// is answered (Kuma does not check the proxy has such an outbound): one this mesh does not
/// hold gets the mesh-wide confs.
pub async fn outbound_policies(
    State(state): State<AppState>,
    Path((mesh, name, kri)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dp = exclusive_dataplane(&state, &mesh, &name).await?;
    let kri = parse_kri(&kri)?;
    let inspector = inspector(&state, &mesh).await?;
    let view = view(&dp).ok_or_else(|| ApiError::internal("Failed building response"))?;
    Ok(Json(inspector.outbound_policies(&view, &kri)))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/_layout`: Kuma reads the mesh first, then the
/// Dataplane.
pub async fn layout(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mesh_res = state
        .store
        .get(ResourceType::Mesh, "", &mesh)
        .await?
        .ok_or_else(|| not_found("Failed to build MeshContext"))?;
    if !exclusive(&mesh_res) {
        return Err(mesh_services_required("_layout"));
    }
    let dp = state
        .store
        .get(ResourceType::Dataplane, &mesh, &name)
        .await?
        .ok_or_else(|| not_found("Failed to retrieve Dataplane"))?;
    let Spec::Dataplane(spec) = &dp.spec else {
        return Err(not_found("Failed to retrieve Dataplane"));
    };
    let services = state
        .store
        .list(ResourceType::MeshService, Some(&mesh))
        .await?;
    Ok(Json(inspect::layout(
        &mesh,
        &name,
        &dp.meta.labels,
        spec,
        &services,
    )))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/policies` (no underscore: Kuma's older inspection,
/// which kumactl 2.14 still calls). Any mesh mode.
pub async fn matched_policies(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if state
        .store
        .get(ResourceType::Mesh, "", &mesh)
        .await?
        .is_none()
    {
        return Err(not_found("Could not build MeshContext"));
    }
    let dp = state
        .store
        .get(ResourceType::Dataplane, &mesh, &name)
        .await?
        .ok_or_else(|| not_found("Could not get MatchedPolicies"))?;
    let inspector = inspector(&state, &mesh).await?;
    let view = view(&dp).ok_or_else(|| not_found("Could not get MatchedPolicies"))?;
    Ok(Json(inspector.matched_policies(&view)))
}
