//! Dataplane inspection: Kuma's `dataplanes+insights` (online status, certificate, config
//! versions), and Aerie's `_explain` (which MeshTrafficPermissions apply to each inbound,
//! which MeshTimeouts, MeshRetries, MeshCircuitBreakers and MeshLoadBalancingStrategies to
//! each inbound and outbound, the merged result and what the proxy enforces). Kuma's own policy inspection is `inspect.rs`.

use aerie_core::format::{resource_to_value, spec_to_value};
use aerie_core::policies::meshtimeout::explain_json;
use aerie_core::policies::meshtrafficpermission::DataplaneRef;
use aerie_core::policies::{
    meshaccesslog, meshcircuitbreaker, meshfaultinjection, meshhealthcheck, meshratelimit,
    meshretry,
};
use aerie_core::{Resource, ResourceType, Spec};

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::paging::ListRequest;
use super::{ApiError, AppState};

/// `online`: the proxy holds a session on any replica (this one gives the details).
fn overview(state: &AppState, dp: &Resource, online: bool) -> Value {
    let status = state.hub.status(dp.mesh(), dp.name());
    let mut insight = json!({ "subscriptions": [] });
    if let Some(st) = &status {
        insight = json!({
            "subscriptions": [{
                "id": st.connect_time,
                "controlPlaneInstanceId": &*state.instance_id,
                "connectTime": st.connect_time,
                "status": {
                    "total": { "responsesSent": st.responses_sent, "responsesAcknowledged": st.responses_acknowledged },
                    "configVersionSent": st.config_version_sent,
                    "configVersionAcknowledged": st.config_version_acked,
                    "lastNack": st.last_nack,
                },
                "version": { "kumaDp": { "version": st.dp_version } },
                "peer": st.peer,
            }],
            "mTLS": st.certificate_expiration_time.as_ref().map(|t| json!({
                "certificateExpirationTime": t,
                "certificateRegenerations": st.certificate_regenerations,
            })),
        });
    }
    let base = resource_to_value(dp);
    let mut overview = json!({
        "type": "DataplaneOverview",
        "mesh": dp.mesh(),
        "name": dp.name(),
        "creationTime": base.get("creationTime"),
        "modificationTime": base.get("modificationTime"),
        "online": online || status.is_some(),
        "dataplane": spec_to_value(&dp.spec),
        "dataplaneInsight": insight,
    });
    // Aerie's addition: why other proxies do not reach this one (an address that does not
    // resolve, or resolves to nothing they may dial).
    let problems = state.hub.problems.get(dp.mesh(), dp.name());
    if !problems.is_empty() {
        overview["addressProblems"] = json!(problems);
    }
    overview
}

pub async fn list_overviews(
    State(state): State<AppState>,
    Path(mesh): Path<String>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    if state
        .store
        .get(ResourceType::Mesh, "", &mesh)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "mesh \"{mesh}\" does not exist"
        )));
    }
    let dps = state
        .store
        .list(ResourceType::Dataplane, Some(&mesh))
        .await?;
    let online = state.store.online(&mesh).await.unwrap_or_default();
    let page = req.page(dps.into_iter().filter(|d| req.matches(d)).collect());
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|d| overview(&state, d, online.contains(d.name())))
        .collect();
    Ok(Json(
        json!({ "total": page.total, "items": items, "next": page.next }),
    ))
}

pub async fn get_overview(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    match state
        .store
        .get(ResourceType::Dataplane, &mesh, &name)
        .await?
    {
        Some(dp) => {
            let online = state
                .store
                .online(&mesh)
                .await
                .unwrap_or_default()
                .contains(&name);
            Ok(Json(overview(&state, &dp, online)))
        }
        None => Err(ApiError::not_found(format!(
            "Dataplane \"{name}\" not found in mesh \"{mesh}\""
        ))),
    }
}

/// Aerie's explanation of what a proxy enforces (`GET .../dataplanes/{name}/_explain`, not a
/// Kuma endpoint): per inbound, the MeshTrafficPermissions whose targetRef selects it, their
/// `from` entries, the resulting authorization table and its MeshTimeout; per outbound, its
/// MeshTimeout, MeshRetry, MeshCircuitBreaker and MeshLoadBalancingStrategy (`effective`
/// `null`: round robin), each with the contributing policies, the
/// merged conf and what the proxy enforces from it (`effective`).
pub async fn explain(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let Some(dp) = state
        .store
        .get(ResourceType::Dataplane, &mesh, &name)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "Dataplane \"{name}\" not found in mesh \"{mesh}\""
        )));
    };
    let Spec::Dataplane(spec) = &dp.spec else {
        return Err(ApiError::not_found("not a dataplane"));
    };
    let Some(mesh_res) = state.store.get(ResourceType::Mesh, "", &mesh).await? else {
        return Err(ApiError::not_found(format!(
            "mesh \"{mesh}\" does not exist"
        )));
    };
    let Spec::Mesh(mesh_spec) = &mesh_res.spec else {
        return Err(ApiError::not_found("not a mesh"));
    };
    let mtps = state
        .store
        .list(ResourceType::MeshTrafficPermission, Some(&mesh))
        .await?;
    let services = state
        .store
        .list(ResourceType::MeshService, Some(&mesh))
        .await?;
    let index = crate::dpserver::policy_index(&mtps, &services);
    let dp_ref = DataplaneRef {
        mesh: &mesh,
        name: &name,
        labels: &dp.meta.labels,
        spec,
    };
    let explained = index.explain(&dp_ref);
    let authz = index.resolve(mesh_spec, &dp_ref);
    let view = aerie_core::policies::rules::DataplaneView {
        mesh: &mesh,
        name: &name,
        labels: &dp.meta.labels,
        spec,
    };
    let routes = state
        .store
        .list(ResourceType::MeshHTTPRoute, Some(&mesh))
        .await?;
    let catalog = crate::dpserver::service_catalog(services.iter().chain(&routes));
    let timeout_rules = crate::dpserver::timeout_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshTimeout, Some(&mesh))
            .await?,
        &catalog,
    );
    let timeouts = timeout_rules.explain(&view);
    let retry_rules = crate::dpserver::retry_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshRetry, Some(&mesh))
            .await?,
        &catalog,
    );
    let retries = retry_rules.explain(&view);
    let http_routes =
        crate::dpserver::http_route_rules(&mesh, &routes, &catalog).for_dataplane(&view);
    let tcp_routes = crate::dpserver::tcp_route_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshTCPRoute, Some(&mesh))
            .await?,
        &catalog,
    )
    .for_dataplane(&view);
    let breakers = crate::dpserver::circuit_breaker_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshCircuitBreaker, Some(&mesh))
            .await?,
        &catalog,
    )
    .explain(&view);
    // Failover rules name the caller's zone: a federated zone's name, else the default.
    let zone = match &state.role {
        crate::Role::Zone(z) => z.as_str(),
        _ => "default",
    };
    let balancing = crate::dpserver::load_balancing_rules(
        &mesh,
        zone,
        &state
            .store
            .list(ResourceType::MeshLoadBalancingStrategy, Some(&mesh))
            .await?,
        &catalog,
    );
    let balanced = balancing.explain(&view);
    let health_checks = crate::dpserver::health_check_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshHealthCheck, Some(&mesh))
            .await?,
        &catalog,
    )
    .explain(&view);
    let faults = crate::dpserver::fault_injection_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshFaultInjection, Some(&mesh))
            .await?,
        &catalog,
    )
    .explain(&view);
    let rate_limits = crate::dpserver::rate_limit_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshRateLimit, Some(&mesh))
            .await?,
        &catalog,
    )
    .explain(&view);
    let access_logs = crate::dpserver::access_log_rules(
        &mesh,
        &state
            .store
            .list(ResourceType::MeshAccessLog, Some(&mesh))
            .await?,
        &catalog,
    )
    .explain(&view);
    let inbounds: Vec<Value> = explained
        .iter()
        .zip(authz.iter())
        .enumerate()
        .map(|(i, (e, a))| {
            json!({
                "port": e.port,
                "name": e.name,
                "service": e.service,
                "mtls": mesh_spec.mtls_enabled(),
                "policies": serde_json::to_value(&e.policies).unwrap_or(Value::Null),
                "authorization": serde_json::to_value(a).unwrap_or(Value::Null),
                "meshTimeout": timeouts.inbounds.get(i).map(|r| explain_json(&r.conf)),
                "meshFaultInjection": faults.inbounds.get(i).map(meshfaultinjection::explain_json),
                "meshRateLimit": rate_limits.inbounds.get(i).map(meshratelimit::explain_json),
                "meshAccessLog": access_logs.inbounds.get(i).map(meshaccesslog::explain_inbound_json),
            })
        })
        .collect();
    let declared = spec
        .networking
        .as_ref()
        .map(|n| n.outbound.as_slice())
        .unwrap_or_default();
    let outbounds: Vec<Value> = declared
        .iter()
        .zip(&timeouts.outbounds)
        .enumerate()
        .map(|(i, (o, r))| {
            // Routes with a MeshTimeout or MeshRetry rule of their own.
            let service = match &o.backend_ref {
                Some(_) => None,
                None => o.tags.get(aerie_core::spec::SERVICE_TAG).map(String::as_str),
            };
            let routes = http_routes.get(i).and_then(Option::as_ref);
            let wanted: Vec<(&str, Option<&str>)> = routes
                .iter()
                .flat_map(|r| r.iter().map(|r| (r.origin.as_str(), service)))
                .collect();
            let own_timeouts = timeout_rules.for_routes(&view, &wanted);
            let own_retries = retry_rules.for_routes(&view, &wanted);
            json!({
                "address": o.address.clone().unwrap_or_else(|| "127.0.0.1".into()),
                "port": o.port,
                "target": serde_json::to_value(&r.target).unwrap_or(Value::Null),
                "meshTimeout": explain_json(&r.merged),
                "meshRetry": retries.outbounds.get(i).map(|r| meshretry::explain_json(&r.merged)),
                "meshCircuitBreaker": breakers
                    .outbounds
                    .get(i)
                    .map(|r| meshcircuitbreaker::explain_json(&r.merged)),
                "meshLoadBalancingStrategy": balanced
                    .outbounds
                    .get(i)
                    .map(|r| balancing.explain_json(&view, &r.merged)),
                "meshHealthCheck": health_checks
                    .outbounds
                    .get(i)
                    .map(|r| meshhealthcheck::explain_json(&r.merged)),
                "meshHTTPRoute": routes.map(|routes| {
                    aerie_core::policies::meshhttproute::explain_json(routes, &own_timeouts, &own_retries)
                }),
                "meshTCPRoute": tcp_routes.get(i).and_then(Option::as_ref).map(|b| json!({"backendRefs": b})),
                "meshAccessLog": access_logs
                    .outbounds
                    .get(i)
                    .map(|r| meshaccesslog::explain_json(&r.merged)),
            })
        })
        .collect();
    Ok(Json(
        json!({ "mesh": mesh, "name": name, "inbounds": inbounds, "outbounds": outbounds }),
    ))
}

/// Kuma's `GET .../dataplanes/{name}/_config` (`{"xds": ...}`): the configuration this
/// control plane last computed for the proxy and sent it, as kuma-dp reads it (Aerie's
/// proxy takes its own config format, not Envoy's): every inbound and outbound with the
/// policies in force on it, merged (MeshTrafficPermission's authorization, MeshTimeout,
/// MeshRetry, MeshCircuitBreaker), and the outbounds' endpoints. Only a zone control plane
/// holding the proxy's session has it: anything else is a 404 that says why.
pub async fn config(
    State(state): State<AppState>,
    Path((mesh, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if state
        .store
        .get(ResourceType::Dataplane, &mesh, &name)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "Dataplane \"{name}\" not found in mesh \"{mesh}\""
        )));
    }
    let Some(snapshot) = state.hub.snapshot(&mesh, &name) else {
        return Err(ApiError::not_found(format!(
            "Dataplane \"{name}\" in mesh \"{mesh}\" is not connected to this control plane: its config is computed where its proxy is connected"
        )));
    };
    let decode = |any| {
        aerie_xds::decode_proxy_config(any).map_err(|e| {
            tracing::error!(mesh, name, error = %e, "cannot read back a published config");
            ApiError::internal("Could not retrieve the proxy config")
        })
    };
    let inbound = decode(&snapshot.config)?;
    let outbound = decode(&snapshot.outbounds)?;
    let merged = aerie_xds::merge_proxy_config(&inbound, &outbound);
    Ok(Json(json!({
        "xds": serde_json::to_value(&merged).unwrap_or(Value::Null),
    })))
}

/// One zone as `/zones+insights` shows it: online when its control plane holds a KDS
/// connection to any replica of the global; the details come from this replica's view.
async fn zone_overview(state: &AppState, zone: &Resource, online: bool) -> Value {
    let mut sub = state
        .zones
        .as_ref()
        .and_then(|z| z.subscription(zone.name()))
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Null));
    match (&mut sub, online) {
        // Connected to another replica of the global: this one saw it leave.
        (Some(Value::Object(s)), true) => {
            s.remove("disconnectTime");
        }
        (None, true) => {
            sub = Some(json!({
                "id": "",
                "globalInstanceId": "",
                "connectTime": resource_to_value(zone).get("modificationTime"),
                "status": { "total": { "responsesSent": "0", "responsesAcknowledged": "0" } },
            }))
        }
        _ => {}
    }
    let base = resource_to_value(zone);
    json!({
        "type": "ZoneOverview",
        "name": zone.name(),
        "creationTime": base.get("creationTime"),
        "modificationTime": base.get("modificationTime"),
        "zone": { "enabled": !matches!(&zone.spec, Spec::Zone(z) if z.enabled == Some(false)) },
        "zoneInsight": { "subscriptions": sub.into_iter().collect::<Vec<_>>() },
    })
}

pub async fn list_zones(
    State(state): State<AppState>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    let zones = state.store.list(ResourceType::Zone, None).await?;
    let online = crate::kds::online_zones(&state.store)
        .await
        .unwrap_or_default();
    let page = req.page(zones.into_iter().filter(|z| req.matches(z)).collect());
    let mut items = Vec::with_capacity(page.items.len());
    for z in &page.items {
        items.push(zone_overview(&state, z, online.contains(z.name())).await);
    }
    Ok(Json(
        json!({ "total": page.total, "items": items, "next": page.next }),
    ))
}

pub async fn get_zone(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let zone = state
        .store
        .get(ResourceType::Zone, "", &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Zone \"{name}\" not found")))?;
    let online = crate::kds::online_zones(&state.store)
        .await
        .unwrap_or_default();
    Ok(Json(
        zone_overview(&state, &zone, online.contains(&name)).await,
    ))
}

/// A zone ingress: online when its proxy is connected (here, or in its zone as the zone
/// reported to the global).
fn ingress_overview(state: &AppState, ingress: &Resource, online: bool) -> Value {
    let status = state.hub.status("", ingress.name());
    let subscriptions: Vec<Value> = match &status {
        Some(st) => vec![json!({
            "id": st.connect_time,
            "controlPlaneInstanceId": &*state.instance_id,
            "connectTime": st.connect_time,
            "status": { "total": {
                "responsesSent": st.responses_sent.to_string(),
                "responsesAcknowledged": st.responses_acknowledged.to_string(),
            } },
        })],
        None if online => vec![json!({ "connectTime": null })],
        None => Vec::new(),
    };
    let base = resource_to_value(ingress);
    json!({
        "type": "ZoneIngressOverview",
        "name": ingress.name(),
        "creationTime": base.get("creationTime"),
        "modificationTime": base.get("modificationTime"),
        "labels": base.get("labels"),
        "online": online || status.is_some(),
        "zoneIngress": spec_to_value(&ingress.spec),
        "zoneIngressInsight": { "subscriptions": subscriptions },
    })
}

pub async fn list_ingresses(
    State(state): State<AppState>,
    req: ListRequest,
) -> Result<Json<Value>, ApiError> {
    let ingresses = state.store.list(ResourceType::ZoneIngress, None).await?;
    let online = state.store.online("").await.unwrap_or_default();
    let page = req.page(ingresses.into_iter().filter(|i| req.matches(i)).collect());
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|i| ingress_overview(&state, i, online.contains(i.name())))
        .collect();
    Ok(Json(
        json!({ "total": page.total, "items": items, "next": page.next }),
    ))
}

pub async fn get_ingress(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ingress = state
        .store
        .get(ResourceType::ZoneIngress, "", &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("ZoneIngress \"{name}\" not found")))?;
    let online = state.store.online("").await.unwrap_or_default();
    Ok(Json(ingress_overview(
        &state,
        &ingress,
        online.contains(&name),
    )))
}
