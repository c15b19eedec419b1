//! Recomputes the snapshots of a mesh's connected proxies when anything they depend on
//! changes: the Mesh, its MeshTrafficPermissions, MeshServices, Dataplanes (endpoints), its
//! CA secrets, or which proxies are online. Changes are debounced and each mesh's policy
//! index is built once per round and shared by all of its proxies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aerie_core::multizone;
use aerie_core::proxy_config::{IngressConfig, identity_sans};
use aerie_core::spec::ZoneIngressSpec;
use aerie_core::{ResourceType, Spec};
use aerie_store::SharedStore;
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::hub::{Hub, MtlsMaterial, Snapshot};
use super::snapshot::{self, Halves, MeshInputs, MeshPolicies, PolicyInputs};
use crate::ca::MeshCas;
use crate::resolve::{self, Resolver};

/// How long changes are gathered before a round of recomputation.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// After a mesh's CA changes, how long proxies get to trust the new CA before certificates
/// are re-issued from it.
pub const CA_CHANGE_GRACE: Duration = Duration::from_secs(5);

/// The CA each mesh signs with, and since when: a change starts a grace period.
#[derive(Default)]
pub struct CaChanges(std::sync::Mutex<HashMap<String, (String, tokio::time::Instant)>>);

impl CaChanges {
    /// Whether certificates may be issued from `ca_pem` now; on a change, schedules another
    /// round for when the grace period ends.
    fn reissue_allowed(&self, hub: &Arc<Hub>, mesh: &str, ca_pem: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        match seen.get(mesh) {
            // First CA this control plane sees for the mesh: nothing to transition from.
            None => {
                seen.insert(
                    mesh.to_string(),
                    (ca_pem.to_string(), now - CA_CHANGE_GRACE),
                );
                true
            }
            Some((pem, since)) if pem == ca_pem => now >= *since + CA_CHANGE_GRACE,
            Some(_) => {
                seen.insert(mesh.to_string(), (ca_pem.to_string(), now));
                tracing::info!(mesh, grace = ?CA_CHANGE_GRACE, "mesh CA changed: distributing the new trust anchor before re-issuing certificates");
                let (hub, mesh) = (hub.clone(), mesh.to_string());
                tokio::spawn(async move {
                    tokio::time::sleep(CA_CHANGE_GRACE).await;
                    hub.mark_dirty(&mesh);
                });
                false
            }
        }
    }
}

/// Meshes to recompute, each with whether its endpoints may have changed (`true`: a full
/// round) or only its policies (`false`: inbound halves only).
type Pending = BTreeMap<String, bool>;

fn mark(pending: &mut Pending, mesh: String, full: bool) {
    *pending.entry(mesh).or_default() |= full;
}

/// What a mesh's last full round computed, reused by rounds that only policies caused.
#[derive(Default)]
pub struct MeshCache {
    dataplanes: Vec<aerie_core::Resource>,
    /// Per connected proxy: its encoded outbound half (shared) and that half's version.
    outbounds: HashMap<String, (Arc<Any>, String)>,
}

pub async fn run(
    store: SharedStore,
    hub: Arc<Hub>,
    cas: Arc<MeshCas>,
    mut dirty: mpsc::UnboundedReceiver<String>,
    local_zone: Arc<str>,
    resolver: Arc<Resolver>,
) {
    let mut feed = store.subscribe();
    let mut pending = Pending::new();
    let changes = CaChanges::default();
    let mut caches: HashMap<String, MeshCache> = HashMap::new();
    loop {
        // Wait for the first change, then gather for the debounce window.
        tokio::select! {
            m = dirty.recv() => match m { Some(m) => mark(&mut pending, m, true), None => return },
            ev = feed.recv() => if !absorb(&store, ev, &mut pending).await { return },
        }
        let window = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                Some(m) = dirty.recv() => mark(&mut pending, m, true),
                ev = feed.recv() => if !absorb(&store, ev, &mut pending).await { return },
            }
        }
        let round = std::mem::take(&mut pending);
        let endpoints_changed = round.values().any(|full| *full);
        // "" stands for the zone ingresses; any mesh change may change what they route.
        for (mesh, full) in round {
            if mesh.is_empty() {
                continue;
            }
            let cache = caches.entry(mesh.clone()).or_default();
            let ctx = Ctx {
                store: &store,
                hub: &hub,
                cas: &cas,
                changes: &changes,
                local_zone: &local_zone,
                resolver: &resolver,
            };
            let result = rebuild_mesh(&ctx, &mesh, full, cache).await;
            if let Err(e) = result {
                hub.metrics.xds_generation_error();
                // Start from scratch next time.
                caches.remove(&mesh);
                tracing::warn!(mesh, error = %format!("{e:#}"), "cannot compute proxy configs; proxies keep their last config");
            }
        }
        if endpoints_changed
            && let Err(e) = rebuild_ingresses(&store, &hub, &local_zone, &resolver).await
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot compute zone ingress routes; ingresses keep their last config");
        }
    }
}

/// Adds the meshes a feed event makes stale to `pending`; `false` when the feed is closed.
/// A lagging receiver or a store resync (its change notifications were interrupted) makes
/// every mesh stale.
async fn absorb(
    store: &SharedStore,
    ev: Result<aerie_store::ChangeEvent, RecvError>,
    pending: &mut Pending,
) -> bool {
    match ev {
        Ok(ev) if ev.is_resync() => {
            for m in all_meshes(store).await {
                mark(pending, m, true);
            }
        }
        // Another zone's ingress changes the endpoints of every mesh.
        Ok(ev) if ev.rtype == ResourceType::ZoneIngress => {
            for m in all_meshes(store).await {
                mark(pending, m, true);
            }
            mark(pending, String::new(), true);
        }
        Ok(ev) => {
            if let Some((mesh, full)) = relevant_mesh(&ev) {
                mark(pending, mesh, full);
            }
        }
        Err(RecvError::Lagged(_)) => {
            for m in all_meshes(store).await {
                mark(pending, m, true);
            }
        }
        Err(RecvError::Closed) => return false,
    }
    true
}

/// The mesh an event concerns, and whether it can change endpoints (permissions and
/// MeshServices only change authorization).
fn relevant_mesh(ev: &aerie_store::ChangeEvent) -> Option<(String, bool)> {
    match ev.rtype {
        ResourceType::Mesh => Some((ev.name.clone(), true)),
        ResourceType::Dataplane | ResourceType::Secret => Some((ev.mesh.clone(), true)),
        ResourceType::GlobalSecret | ResourceType::Zone | ResourceType::ZoneIngress => None,
        // Policies and MeshServices change what proxies enforce, not where endpoints are.
        _ => Some((ev.mesh.clone(), false)),
    }
}

async fn all_meshes(store: &SharedStore) -> Vec<String> {
    store
        .list(ResourceType::Mesh, None)
        .await
        .map(|ms| ms.into_iter().map(|m| m.meta.name).collect())
        .unwrap_or_default()
}

/// What every round works with.
struct Ctx<'a> {
    store: &'a SharedStore,
    hub: &'a Arc<Hub>,
    cas: &'a MeshCas,
    changes: &'a CaChanges,
    local_zone: &'a str,
    resolver: &'a Resolver,
}

/// Recomputes and publishes the snapshot of every proxy of `mesh` connected here.
async fn rebuild_mesh(
    ctx: &Ctx<'_>,
    mesh: &str,
    full: bool,
    cache: &mut MeshCache,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let Ctx {
        store,
        hub,
        cas,
        changes,
        local_zone,
        resolver,
    } = *ctx;
    let connected = hub.connected_in(mesh);
    if connected.is_empty() {
        *cache = MeshCache::default();
        return Ok(());
    }
    // A policy-only round reuses the last full round's Dataplanes and outbound halves,
    // unless a connected proxy has none yet.
    let full = full || connected.iter().any(|n| !cache.outbounds.contains_key(n));
    let Some(mesh_res) = store.get(ResourceType::Mesh, "", mesh).await? else {
        // The mesh is gone: its proxies keep serving their last config (fail static) but
        // get nothing new; the operator sees them in the logs.
        tracing::warn!(mesh, "mesh deleted while proxies are connected");
        return Ok(());
    };
    let Spec::Mesh(mesh_spec) = &mesh_res.spec else {
        return Ok(());
    };
    let policy_inputs = PolicyInputs {
        permissions: store
            .list(ResourceType::MeshTrafficPermission, Some(mesh))
            .await?,
        services: store.list(ResourceType::MeshService, Some(mesh)).await?,
        timeouts: store.list(ResourceType::MeshTimeout, Some(mesh)).await?,
        retries: store.list(ResourceType::MeshRetry, Some(mesh)).await?,
        circuit_breakers: store
            .list(ResourceType::MeshCircuitBreaker, Some(mesh))
            .await?,
        health_checks: store
            .list(ResourceType::MeshHealthCheck, Some(mesh))
            .await?,
        fault_injections: store
            .list(ResourceType::MeshFaultInjection, Some(mesh))
            .await?,
        rate_limits: store.list(ResourceType::MeshRateLimit, Some(mesh)).await?,
        load_balancing: store
            .list(ResourceType::MeshLoadBalancingStrategy, Some(mesh))
            .await?,
        zone: local_zone.to_string(),
        http_routes: store.list(ResourceType::MeshHTTPRoute, Some(mesh)).await?,
        tcp_routes: store.list(ResourceType::MeshTCPRoute, Some(mesh)).await?,
        access_logs: store.list(ResourceType::MeshAccessLog, Some(mesh)).await?,
        metrics: store.list(ResourceType::MeshMetric, Some(mesh)).await?,
        traces: store.list(ResourceType::MeshTrace, Some(mesh)).await?,
    };
    // Route backends carry endpoints: with routes in the mesh every round is a full one.
    let full = full || policy_inputs.needs_endpoints();
    if full {
        cache.dataplanes = store.list(ResourceType::Dataplane, Some(mesh)).await?;
        let problems = resolve_dataplanes(resolver, mesh, &mut cache.dataplanes).await;
        hub.problems.set_mesh(mesh, problems);
    }
    let policies = MeshPolicies::new(mesh, &policy_inputs);
    let inputs = MeshInputs {
        mesh,
        spec: mesh_spec,
        policies: &policies,
        dataplanes: &cache.dataplanes,
    };

    let mtls = match cas.enabled_ca(mesh, mesh_spec).await? {
        Some(ca) => {
            let bundle: Arc<str> = Arc::from(cas.trust_bundle(mesh, &ca).await?);
            let reissue = changes.reissue_allowed(hub, mesh, ca.ca.cert_pem());
            Some((ca, bundle, reissue))
        }
        None => None,
    };
    let sans: HashMap<&str, Vec<String>> = cache
        .dataplanes
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Dataplane(d) if mtls.is_some() => Some((r.name(), identity_sans(mesh, d))),
            _ => None,
        })
        .collect();
    // How many proxies got a config that differs from their last (`xds_generation`).
    let changed = std::sync::atomic::AtomicUsize::new(0);
    let publish = |built: BTreeMap<String, Halves>| {
        for (name, h) in built {
            let mtls = mtls.as_ref().map(|(ca, bundle, reissue)| MtlsMaterial {
                ca: ca.clone(),
                bundle_pem: bundle.clone(),
                reissue_allowed: *reissue,
                sans: sans.get(name.as_str()).cloned().unwrap_or_default(),
            });
            let snapshot = Snapshot {
                version: h.version,
                config: h.config,
                outbounds: h.outbounds,
                outbounds_version: h.outbounds_version,
                mtls,
            };
            if hub.publish(&(mesh.to_string(), name), Some(Arc::new(snapshot))) {
                changed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    if !full {
        publish(snapshot::build_policies(
            &inputs,
            &connected,
            &cache.outbounds,
        ));
        hub.metrics.xds_generation(
            started.elapsed().as_secs_f64() * 1000.0,
            changed.load(std::sync::atomic::Ordering::Relaxed) > 0,
        );
        return Ok(());
    }
    // Endpoints are the proxies connected to any replica; if the store cannot say, those
    // connected here (better than none).
    let online: HashSet<String> = match store.online(mesh).await {
        Ok(set) => set.into_iter().chain(connected.iter().cloned()).collect(),
        Err(e) => {
            tracing::warn!(mesh, error = %e, "cannot read which proxies are online; using this replica's");
            connected.iter().cloned().collect()
        }
    };
    let remote = remote_ingresses(store, local_zone, resolver).await?;
    let remote_refs: Vec<(&str, &ZoneIngressSpec)> =
        remote.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let built = snapshot::build_full(
        &inputs,
        &|name: &str| online.contains(name),
        &remote_refs,
        &connected,
    );
    let outbounds = built
        .iter()
        .map(|(name, h)| {
            (
                name.clone(),
                (h.outbounds.clone(), h.outbounds_version.clone()),
            )
        })
        .collect();
    publish(built);
    cache.outbounds = outbounds;
    hub.metrics.xds_generation(
        started.elapsed().as_secs_f64() * 1000.0,
        changed.load(std::sync::atomic::Ordering::Relaxed) > 0,
    );
    Ok(())
}

/// Other zones' ingresses (the copies the global sent): how this zone reaches their services.
async fn remote_ingresses(
    store: &SharedStore,
    local_zone: &str,
    resolver: &Resolver,
) -> anyhow::Result<Vec<(String, ZoneIngressSpec)>> {
    let mut ingresses: Vec<(String, ZoneIngressSpec)> = store
        .list(ResourceType::ZoneIngress, None)
        .await?
        .into_iter()
        .filter(|r| {
            multizone::origin(r) == Some(multizone::ORIGIN_ZONE)
                && r.meta
                    .labels
                    .get(multizone::ZONE_LABEL)
                    .is_some_and(|z| z != local_zone)
        })
        .filter_map(|r| match r.spec {
            Spec::ZoneIngress(s) => Some((r.meta.name, s)),
            _ => None,
        })
        .collect();
    let mut names = BTreeSet::new();
    for (_, spec) in &ingresses {
        resolve::ingress_names(spec, &mut names);
    }
    if !names.is_empty() {
        let answers = resolver.resolve("", names).await;
        for (name, spec) in &mut ingresses {
            let problems = resolve::substitute_ingress(spec, &answers);
            if !problems.is_empty() {
                tracing::debug!(ingress = %name, ?problems, "another zone's ingress address cannot be used");
            }
        }
    }
    Ok(ingresses)
}

/// Replaces the host names of a mesh's Dataplanes by the addresses they resolve to (see
/// [`crate::resolve`]); returns, per Dataplane, what could not be resolved.
async fn resolve_dataplanes(
    resolver: &Resolver,
    mesh: &str,
    dataplanes: &mut [aerie_core::Resource],
) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeSet::new();
    for r in dataplanes.iter() {
        if let Spec::Dataplane(d) = &r.spec {
            resolve::dataplane_names(d, &mut names);
        }
    }
    let mut problems = BTreeMap::new();
    if names.is_empty() {
        return problems;
    }
    let answers = resolver.resolve(mesh, names).await;
    for r in dataplanes.iter_mut() {
        if let Spec::Dataplane(d) = &mut r.spec {
            let found = resolve::substitute_dataplane(d, &answers);
            if !found.is_empty() {
                problems.insert(r.meta.name.clone(), found);
            }
        }
    }
    problems
}

/// This zone's ingresses: each connected one gets the routes to every live local service,
/// and each ZoneIngress resource lists those services (`availableServices`), which is how
/// other zones learn what they can reach through it.
async fn rebuild_ingresses(
    store: &SharedStore,
    hub: &Arc<Hub>,
    local_zone: &str,
    resolver: &Resolver,
) -> anyhow::Result<()> {
    let connected = hub.connected_in("");
    let own: Vec<aerie_core::Resource> = store
        .list(ResourceType::ZoneIngress, None)
        .await?
        .into_iter()
        .filter(|r| !multizone::is_copy_on_zone(r, local_zone))
        .collect();
    if connected.is_empty() && own.is_empty() {
        return Ok(());
    }
    let mut meshes = Vec::new();
    for mesh_res in store.list(ResourceType::Mesh, None).await? {
        let Spec::Mesh(mesh_spec) = mesh_res.spec else {
            continue;
        };
        let mesh = mesh_res.meta.name;
        let mut dps = store.list(ResourceType::Dataplane, Some(&mesh)).await?;
        resolve_dataplanes(resolver, &mesh, &mut dps).await;
        let online = store.online(&mesh).await?;
        meshes.push((mesh, mesh_spec, dps, online));
    }
    let (routes, available) = snapshot::ingress_offer(
        meshes
            .iter()
            .map(|(mesh, spec, dps, online)| (mesh.as_str(), spec, dps.as_slice(), online)),
    );
    for r in own {
        let Spec::ZoneIngress(spec) = &r.spec else {
            continue;
        };
        if spec.available_services == available {
            continue;
        }
        let mut updated = r.clone();
        if let Spec::ZoneIngress(s) = &mut updated.spec {
            s.available_services.clone_from(&available);
        }
        match store
            .update(updated, r.meta.version, &crate::now_rfc3339())
            .await
        {
            // A concurrent change triggers another round.
            Ok(_)
            | Err(
                aerie_store::StoreError::Conflict { .. } | aerie_store::StoreError::NotFound { .. },
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in connected {
        let cfg = IngressConfig {
            name: name.clone(),
            routes: routes.clone(),
        };
        let any = aerie_xds::encode_ingress_config(&cfg);
        let version = content_version(&any.value);
        let snapshot = Snapshot {
            config: any,
            version,
            outbounds: Arc::default(),
            outbounds_version: String::new(),
            mtls: None,
        };
        hub.publish(&(String::new(), name), Some(Arc::new(snapshot)));
    }
    Ok(())
}

use snapshot::content_version;
