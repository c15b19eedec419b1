//! Resource endpoints: list, get, put (create or replace), delete.

use aerie_core::format::{DocumentError, resource_from_value, resource_to_value};
use aerie_core::{ResourceType, Scope, ValidationError, validate};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::paging::ListRequest;
use super::{ApiError, AppState, Caller};
use crate::Role;
use crate::now_rfc3339;
use aerie_core::multizone;

pub async fn index(State(state): State<AppState>) -> Json<Value> {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Json(json!({
        "hostname": hostname,
        "tagline": "Kuma",
        "product": "Aerie",
        "version": env!("CARGO_PKG_VERSION"),
        "basedOnKuma": crate::BASED_ON_KUMA,
        "instanceId": &*state.instance_id,
        "clusterId": &*state.instance_id,
        "mode": state.mode.as_str(),
        "leader": *state.leader.borrow(),
    }))
}

pub async fn descriptors(State(state): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|t| {
            let mut item = json!({
                "name": t.name(),
                "path": t.plural(),
                "scope": match t.scope() { Scope::Global => "Global", Scope::Mesh => "Mesh" },
                "singularDisplayName": t.name(),
                "pluralDisplayName": t.cli_plural(),
                "readOnly": read_only(*t, &state.role).is_some(),
                "shortName": t.short_name(),
                "includeInFederation": t.include_in_federation(),
                "kumactlArg": t.cli_singular(),
                "kumactlListArg": t.cli_plural(),
            });
            // Kuma's PolicyDescription; other types have no `policy` at all.
            if t.is_policy() {
                let form = t.descriptor().policy_form;
                item["policy"] = json!({
                    "isTargetRef": true,
                    "hasToTargetRef": form.to,
                    "hasFromTargetRef": form.from,
                    "hasRulesTargetRef": form.rules,
                    "isFromAsRules": form.from_as_rules,
                });
            }
            item
        })
        .collect();
    Json(json!({ "resources": items }))
}

/// Why a type cannot be changed through this control plane's API at all, if it cannot.
fn read_only(t: ResourceType, role: &Role) -> Option<&'static str> {
    match role {
        Role::Zone(_) if multizone::is_global_only(t) => Some(ZONE_READ_ONLY),
        Role::Standalone if t == ResourceType::Zone => Some(
            "On zone control plane you can not modify Zone resources: they are managed by the global control plane.",
        ),
        Role::Global if multizone::is_zone_owned(t) => Some(GLOBAL_READ_ONLY),
        _ => None,
    }
}

/// Kuma's 405 detail on a zone connected to a global.
const ZONE_READ_ONLY: &str = "On zone control plane you can only modify zone resources with 'kumactl apply' or via the HTTP API. You can still use 'kumactl' or the HTTP API to modify the rest of the resource on the global control plane.";
/// Kuma's 405 detail for zone resources on the global.
const GLOBAL_READ_ONLY: &str = "On global control plane you can not modify dataplane resources with 'kumactl apply' or via the HTTP API. You can still use 'kumactl' or the HTTP API to modify them on the zone control plane.";

/// The multi-zone rules of one write: `existing` is what is stored under the key,
/// `incoming` the new body (`None` for a delete).
fn check_multizone(
    role: &Role,
    t: ResourceType,
    existing: Option<&aerie_core::Resource>,
    incoming: Option<&aerie_core::Resource>,
) -> Result<(), ApiError> {
    if let Some(why) = read_only(t, role) {
        return Err(ApiError::method_not_allowed(why));
    }
    if let Role::Zone(zone) = role {
        // A copy received from the global (or another zone) changes only there.
        if existing.is_some_and(|e| multizone::is_copy_on_zone(e, zone)) {
            return Err(ApiError::method_not_allowed(ZONE_READ_ONLY));
        }
        if let Some(r) = incoming
            && t.is_policy()
            && multizone::origin(r) != Some(multizone::ORIGIN_ZONE)
        {
            return Err(ApiError::invalid(ValidationError::single(
                format!("labels[\"{}\"]", multizone::ORIGIN_LABEL),
                "the origin label must be set to 'zone'",
            )));
        }
    }
    if let (Role::Global, Some(r)) = (role, incoming)
        && multizone::origin(r) == Some(multizone::ORIGIN_ZONE)
    {
        return Err(ApiError::invalid(ValidationError::single(
            format!("labels[\"{}\"]", multizone::ORIGIN_LABEL),
            "must not be 'zone' on the global control plane: resources made here sync to every zone",
        )));
    }
    Ok(())
}

fn type_from_plural(plural: &str) -> Result<ResourceType, ApiError> {
    ResourceType::from_plural(plural)
        .ok_or_else(|| ApiError::not_found(format!("unknown resource type \"{plural}\"")))
}

fn mesh_scoped(plural: &str) -> Result<ResourceType, ApiError> {
    let t = type_from_plural(plural)?;
    if t.scope() != Scope::Mesh {
        return Err(ApiError::not_found(format!(
            "{t} is not inside a mesh: use /{}",
            t.plural()
        )));
    }
    Ok(t)
}

/// Secrets are readable by admins only.
fn check_read(t: ResourceType, caller: &Caller) -> Result<(), ApiError> {
    if matches!(t, ResourceType::Secret | ResourceType::GlobalSecret) {
        caller.require_admin("read secrets")?;
    }
    Ok(())
}

/// Whether a secret holds a private key the control plane generated for itself: a builtin
/// mesh CA's key (`{mesh}.ca-builtin-key-{backend}`) or a token-signing key
/// (`dataplane-token-signing-key-{mesh}`, `user-token-signing-key-N`,
/// `zone-token-signing-key-N`). Their `data` is never served over the API, not even to admins:
/// whoever holds one can mint any identity or token in the mesh, and nothing outside the
/// control plane needs it (back up the store instead). Lists show them without `data`.
fn is_generated_key(t: ResourceType, name: &str) -> bool {
    match t {
        ResourceType::Secret => {
            name.contains(".ca-builtin-key-") || name.starts_with("dataplane-token-signing-key-")
        }
        ResourceType::GlobalSecret => {
            name.starts_with("user-token-signing-key-")
                || name.starts_with("zone-token-signing-key-")
        }
        _ => false,
    }
}

/// A resource as the API shows it: generated private keys without their `data`.
fn shown(r: &aerie_core::Resource) -> Value {
    let mut v = resource_to_value(r);
    if is_generated_key(r.resource_type(), r.name())
        && let Some(obj) = v.as_object_mut()
    {
        obj.remove("data");
    }
    v
}

async fn list(
    state: &AppState,
    caller: &Caller,
    t: ResourceType,
    mesh: Option<&str>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    check_read(t, caller)?;
    if let Some(m) = mesh {
        ensure_mesh(state, m).await?;
    }
    let all = state.store.list(t, mesh).await?;
    let page = req.page(all.into_iter().filter(|r| req.matches(r)).collect());
    let items: Vec<Value> = page.items.iter().map(shown).collect();
    Ok(Json(
        json!({ "total": page.total, "items": items, "next": page.next }),
    ))
}

async fn ensure_mesh(state: &AppState, mesh: &str) -> Result<(), ApiError> {
    match state.store.get(ResourceType::Mesh, "", mesh).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "mesh \"{mesh}\" does not exist"
        ))),
    }
}

async fn get_one(
    state: &AppState,
    caller: &Caller,
    t: ResourceType,
    mesh: &str,
    name: &str,
) -> Result<Json<Value>, ApiError> {
    check_read(t, caller)?;
    match state.store.get(t, mesh, name).await? {
        Some(_) if is_generated_key(t, name) => Err(ApiError::forbidden(format!(
            "{t} \"{name}\" holds a private key the control plane generated (a mesh CA key or a token-signing key); it is never served over the API: back up the store to keep it"
        ))),
        Some(r) => Ok(Json(resource_to_value(&r))),
        None => Err(ApiError::not_found(not_found_detail(t, mesh, name))),
    }
}

fn not_found_detail(t: ResourceType, mesh: &str, name: &str) -> String {
    if mesh.is_empty() {
        format!("{t} \"{name}\" not found")
    } else {
        format!("{t} \"{name}\" not found in mesh \"{mesh}\"")
    }
}

/// Create or replace one resource. All checks run before anything is written; the write is
/// a single store operation, so a resource is stored whole or not at all.
async fn put(
    state: &AppState,
    caller: &Caller,
    t: ResourceType,
    mesh: &str,
    name: &str,
    body: &[u8],
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin("change resources")?;
    if let Some(why) = read_only(t, &state.role) {
        return Err(ApiError::method_not_allowed(why));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(ValidationError::single(
            "",
            format!("the body is not valid JSON: {e}"),
        ))
    })?;
    let mut r = resource_from_value(&doc).map_err(|e| match e {
        DocumentError::Syntax(m) => ApiError::invalid(ValidationError::single("", m)),
        DocumentError::Meta(v) | DocumentError::Parse(v) => ApiError::invalid(v),
    })?;
    let mut errs = ValidationError::new();
    if r.resource_type() != t {
        errs.add("type", "type from the URL has to be the same as in body");
    }
    if r.name() != name {
        errs.add("name", "name from the URL has to be the same as in body");
    }
    if t.scope() == Scope::Mesh && r.mesh() != mesh {
        errs.add("mesh", "mesh from the URL has to be the same as in body");
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    validate::validate(&r).map_err(ApiError::invalid)?;
    if t.scope() == Scope::Mesh
        && state
            .store
            .get(ResourceType::Mesh, "", mesh)
            .await?
            .is_none()
    {
        return Err(ApiError::invalid(ValidationError::single(
            "mesh",
            format!("mesh \"{mesh}\" does not exist: create it first"),
        )));
    }
    let warnings = validate::warnings(&r);
    let now = now_rfc3339();
    let existing = state.store.get(t, mesh, name).await?;
    check_multizone(&state.role, t, existing.as_ref(), Some(&r))?;
    let status = match existing {
        None => {
            if t == ResourceType::Mesh && name.len() > 63 {
                return Err(ApiError::invalid(ValidationError::single(
                    "name",
                    "cannot be longer than 63 characters",
                )));
            }
            if t == ResourceType::Mesh {
                // With its dataplane-token signing key (see `defaults::create_mesh`).
                crate::defaults::create_mesh(&state.store, r, &now)
                    .await
                    .map_err(|e| match e {
                        crate::defaults::CreateMeshError::Store(e) => ApiError::from(e),
                        e => ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "Internal Server Error",
                            e.to_string(),
                        ),
                    })?;
            } else {
                state.store.create(r, &now).await?;
            }
            StatusCode::CREATED
        }
        Some(cur) => {
            r.meta.creation_time = cur.meta.creation_time.clone();
            state.store.update(r, cur.meta.version, &now).await?;
            StatusCode::OK
        }
    };
    Ok((status, Json(json!({ "warnings": warnings }))))
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    t: ResourceType,
    mesh: &str,
    name: &str,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin("delete resources")?;
    let existing = state.store.get(t, mesh, name).await?;
    check_multizone(&state.role, t, existing.as_ref(), None)?;
    if t == ResourceType::Mesh {
        let dps = state
            .store
            .list(ResourceType::Dataplane, Some(name))
            .await?;
        if !dps.is_empty() {
            return Err(ApiError::invalid(ValidationError::single(
                "mesh",
                "unable to delete mesh, there are still some dataplanes attached",
            )));
        }
    }
    match state.store.delete(t, mesh, name).await {
        Ok(()) => Ok(Json(json!({}))),
        Err(aerie_store::StoreError::NotFound { .. }) => {
            Err(ApiError::not_found(not_found_detail(t, mesh, name)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn list_meshes(
    State(s): State<AppState>,
    caller: Caller,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, ResourceType::Mesh, None, req).await
}

pub async fn get_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_one(&s, &caller, ResourceType::Mesh, "", &name).await
}

pub async fn put_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    put(&s, &caller, ResourceType::Mesh, "", &name, &body).await
}

pub async fn delete_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete(&s, &caller, ResourceType::Mesh, "", &name).await
}

pub async fn list_in_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path((mesh, plural)): Path<(String, String)>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    let t = mesh_scoped(&plural)?;
    list(&s, &caller, t, Some(&mesh), req).await
}

pub async fn get_in_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path((mesh, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = mesh_scoped(&plural)?;
    get_one(&s, &caller, t, &mesh, &name).await
}

pub async fn put_in_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path((mesh, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let t = mesh_scoped(&plural)?;
    put(&s, &caller, t, &mesh, &name, &body).await
}

pub async fn delete_in_mesh(
    State(s): State<AppState>,
    caller: Caller,
    Path((mesh, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = mesh_scoped(&plural)?;
    delete(&s, &caller, t, &mesh, &name).await
}

/// `/{plural}`: a global type, or a mesh-scoped type across every mesh.
pub async fn list_top(
    State(s): State<AppState>,
    caller: Caller,
    Path(plural): Path<String>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    let t = type_from_plural(&plural)?;
    list(&s, &caller, t, None, req).await
}

fn global_type(plural: &str) -> Result<ResourceType, ApiError> {
    let t = type_from_plural(plural)?;
    if t.scope() != Scope::Global {
        return Err(ApiError::not_found(format!(
            "{t} lives inside a mesh: use /meshes/{{mesh}}/{}/{{name}}",
            t.plural()
        )));
    }
    Ok(t)
}

pub async fn get_top(
    State(s): State<AppState>,
    caller: Caller,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = global_type(&plural)?;
    get_one(&s, &caller, t, "", &name).await
}

pub async fn put_top(
    State(s): State<AppState>,
    caller: Caller,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let t = global_type(&plural)?;
    put(&s, &caller, t, "", &name, &body).await
}

pub async fn delete_top(
    State(s): State<AppState>,
    caller: Caller,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = global_type(&plural)?;
    delete(&s, &caller, t, "", &name).await
}
