//! The MeshService generator: on Universal, one MeshService per `kuma.io/service` found in a
//! mesh's Dataplane inbounds, kept in step with the Dataplanes as they come and go.
//!
//! Generated MeshServices carry the label `kuma.io/managed-by: meshservice-generator`; the
//! generator never touches a MeshService without it, so a user's own MeshService wins.

use std::collections::{BTreeMap, BTreeSet};

use aerie_core::spec::{
    DataplaneSpec, MeshServiceIdentity, MeshServicePort, MeshServiceSelector, MeshServiceSpec,
    PROTOCOL_TAG, SERVICE_TAG,
};
use aerie_core::{Meta, Resource, ResourceType, Spec, validate};
use aerie_store::{ChangeKind, SharedStore, StoreError};
use tokio::sync::broadcast::error::RecvError;

pub const MANAGED_BY_LABEL: &str = "kuma.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "meshservice-generator";

/// One inbound's contribution to a service: (port, port name, protocol, target port).
type PortEntry = (u32, Option<String>, Option<String>, u32);

/// What MeshServices a mesh's Dataplanes call for, by name. Pure, so it is unit-tested.
pub fn desired_services<'a>(
    dataplanes: impl IntoIterator<Item = &'a DataplaneSpec>,
) -> BTreeMap<String, MeshServiceSpec> {
    let mut ports: BTreeMap<String, BTreeSet<PortEntry>> = BTreeMap::new();
    for dp in dataplanes {
        for inbound in dp.networking.iter().flat_map(|n| n.inbound.iter()) {
            let Some(service) = inbound.tags.get(SERVICE_TAG) else {
                continue;
            };
            let target = inbound
                .service_port
                .filter(|p| *p != 0)
                .unwrap_or(inbound.port);
            let proto = inbound.tags.get(PROTOCOL_TAG).cloned();
            ports.entry(service.clone()).or_default().insert((
                inbound.port,
                inbound.name.clone(),
                proto,
                target,
            ));
        }
    }
    ports
        .into_iter()
        .map(|(service, set)| {
            let mut seen_ports = BTreeSet::new();
            let ports = set
                .into_iter()
                .filter(|(port, ..)| seen_ports.insert(*port))
                .map(|(port, name, proto, target)| MeshServicePort {
                    name: name.or_else(|| Some(port.to_string())),
                    port,
                    target_port: Some(serde_json::Value::from(target)),
                    app_protocol: Some(proto.unwrap_or_else(|| "tcp".into())),
                })
                .collect();
            let spec = MeshServiceSpec {
                state: None,
                selector: Some(MeshServiceSelector {
                    dataplane_tags: Some(BTreeMap::from([(
                        SERVICE_TAG.to_string(),
                        service.clone(),
                    )])),
                    ..MeshServiceSelector::default()
                }),
                ports,
                identities: vec![MeshServiceIdentity {
                    identity_type: "ServiceTag".into(),
                    value: service.clone(),
                }],
            };
            (service, spec)
        })
        .collect()
}

/// Brings one mesh's generated MeshServices in line with its Dataplanes.
pub async fn reconcile_mesh(store: &SharedStore, mesh: &str) -> Result<(), StoreError> {
    let dps = store.list(ResourceType::Dataplane, Some(mesh)).await?;
    let desired = desired_services(dps.iter().filter_map(|r| match &r.spec {
        Spec::Dataplane(d) => Some(d),
        _ => None,
    }));
    let existing = store.list(ResourceType::MeshService, Some(mesh)).await?;
    let now = crate::now_rfc3339();
    for (name, spec) in &desired {
        let resource = Resource {
            meta: Meta {
                name: name.clone(),
                mesh: Some(mesh.into()),
                labels: BTreeMap::from([(
                    MANAGED_BY_LABEL.to_string(),
                    MANAGED_BY_VALUE.to_string(),
                )]),
                ..Meta::default()
            },
            spec: Spec::MeshService(spec.clone()),
        };
        // A service name that is not a valid resource name (e.g. with `_`) gets no MeshService.
        if validate::validate(&resource).is_err() {
            continue;
        }
        match existing.iter().find(|r| &r.meta.name == name) {
            None => match store.create(resource, &now).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            },
            Some(cur) if is_managed(cur) && cur.spec != resource.spec => {
                match store.update(resource, cur.meta.version, &now).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                    }
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
        }
    }
    for cur in existing
        .iter()
        .filter(|r| is_managed(r) && !desired.contains_key(&r.meta.name))
    {
        match store
            .delete(ResourceType::MeshService, mesh, &cur.meta.name)
            .await
        {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_managed(r: &Resource) -> bool {
    r.meta.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// How long Dataplane changes are gathered before the affected meshes are reconciled.
const BATCH: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs until the feed closes, while this replica leads: reconciles every mesh on becoming
/// leader and after a lag or resync, then each mesh whose Dataplanes change.
pub async fn run(store: SharedStore, mut leader: tokio::sync::watch::Receiver<bool>) {
    let mut feed = store.subscribe();
    let reconcile_all = |store: SharedStore| async move {
        match store.list(ResourceType::Mesh, None).await {
            Ok(meshes) => {
                for m in meshes {
                    if let Err(e) = reconcile_mesh(&store, m.name()).await {
                        tracing::warn!(mesh = m.name(), error = %e, "MeshService generation failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "MeshService generation cannot list meshes"),
        }
    };
    loop {
        // Only the leader generates: followers wait (and skip the events meanwhile).
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        feed = feed.resubscribe();
        reconcile_all(store.clone()).await;
        loop {
            let ev = tokio::select! {
                ev = feed.recv() => ev,
                changed = leader.changed() => {
                    if changed.is_err() { return }
                    if !*leader.borrow() { break }
                    continue;
                }
            };
            // Gather a burst (proxies joining by the thousand) and reconcile each mesh once:
            // a reconciliation reads every Dataplane of the mesh, so doing it per event
            // would cost O(N^2) when N proxies join.
            let mut dirty = std::collections::BTreeSet::new();
            let mut everything = false;
            let mut next = Some(ev);
            let window = tokio::time::sleep(BATCH);
            tokio::pin!(window);
            loop {
                match next.take() {
                    Some(Ok(ev)) if ev.is_resync() => everything = true,
                    Some(Ok(ev))
                        if ev.rtype == ResourceType::Dataplane
                            || (ev.rtype == ResourceType::MeshService
                                && ev.kind == ChangeKind::Delete) =>
                    {
                        dirty.insert(ev.mesh);
                    }
                    Some(Ok(_)) | None => {}
                    Some(Err(RecvError::Lagged(_))) => everything = true,
                    Some(Err(RecvError::Closed)) => return,
                }
                if dirty.is_empty() && !everything {
                    break;
                }
                tokio::select! {
                    _ = &mut window => break,
                    ev = feed.recv() => next = Some(ev),
                }
            }
            if everything {
                reconcile_all(store.clone()).await;
                continue;
            }
            for mesh in dirty {
                if let Err(e) = reconcile_mesh(&store, &mesh).await {
                    tracing::warn!(mesh = %mesh, error = %e, "MeshService generation failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::format::{parse_yaml_value, resource_from_value};

    fn dp(yaml: &str) -> DataplaneSpec {
        match resource_from_value(&parse_yaml_value(yaml).unwrap())
            .unwrap()
            .spec
        {
            Spec::Dataplane(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_service_per_service_tag_with_ports() {
        let a = dp(
            "type: Dataplane\nname: a\nmesh: default\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 8080\n    servicePort: 18080\n    tags: {kuma.io/service: web, kuma.io/protocol: http}\n",
        );
        let b = dp(
            "type: Dataplane\nname: b\nmesh: default\nnetworking:\n  address: 127.0.0.2\n  inbound:\n  - port: 8080\n    tags: {kuma.io/service: web}\n  - port: 9090\n    tags: {kuma.io/service: api}\n",
        );
        let got = desired_services([&a, &b]);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["api", "web"]);
        let web = &got["web"];
        assert_eq!(
            web.ports.len(),
            1,
            "same port from two dataplanes is one port"
        );
        assert_eq!(web.ports[0].port, 8080);
        assert_eq!(web.identities[0].value, "web");
        assert_eq!(got["api"].ports[0].app_protocol.as_deref(), Some("tcp"));
    }
}
