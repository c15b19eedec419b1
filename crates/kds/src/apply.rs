//! Applying received resources to the local store, on either side of KDS.
//!
//! A receiver only ever touches the copies it owns through KDS: a zone, the copies of
//! global resources (labelled `kuma.io/origin: global`) and of other zones' ingresses; the
//! global, the copies of one zone's resources (labelled with that zone). Everything else
//! in the store is left alone, so a misbehaving peer cannot delete or overwrite local
//! resources, and each received resource is validated like an API write before it is
//! stored.

use std::collections::HashMap;

use aerie_core::multizone::{self, ORIGIN_GLOBAL, ORIGIN_LABEL, ORIGIN_ZONE, ZONE_LABEL};
use aerie_core::{Resource, ResourceType};
use aerie_store::{SharedStore, StoreError};

use crate::wire;

/// Which end of KDS is applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side<'a> {
    /// A zone control plane receiving the global's resources.
    Zone { local_zone: &'a str },
    /// The global receiving one zone's resources.
    Global { zone: &'a str },
}

/// Whether a side receives a type, as the type's descriptor says.
fn receives(side: Side<'_>, t: ResourceType) -> bool {
    let d = t.descriptor();
    match side {
        Side::Zone { .. } => d.to_zones,
        Side::Global { .. } => d.to_global,
    }
}

/// The types a side receives, in the order they are applied (a mesh before what lives in it).
fn received_types(side: Side<'_>) -> impl Iterator<Item = ResourceType> {
    ResourceType::ALL
        .into_iter()
        .filter(move |t| receives(side, *t))
}

/// Where a type comes in the order of application ([`ResourceType::ALL`]'s).
fn rank(t: ResourceType) -> usize {
    ResourceType::ALL
        .iter()
        .position(|x| *x == t)
        .unwrap_or(usize::MAX)
}

impl Side<'_> {
    /// Whether an existing local resource is a copy this side manages.
    pub fn owns(&self, r: &Resource) -> bool {
        match *self {
            Side::Zone { local_zone } => multizone::is_copy_on_zone(r, local_zone),
            Side::Global { zone } => {
                multizone::origin(r) == Some(ORIGIN_ZONE)
                    && r.meta.labels.get(ZONE_LABEL).map(String::as_str) == Some(zone)
            }
        }
    }

    /// Why a received resource may not be stored here, if it may not.
    fn refuse(&self, r: &Resource) -> Option<String> {
        let t = r.resource_type();
        if !receives(*self, t) {
            return Some(format!("{} does not sync in this direction", r.describe()));
        }
        match *self {
            Side::Zone { local_zone } => {
                if t == ResourceType::GlobalSecret
                    && !multizone::global_secret_syncs_to_zones(r.name())
                {
                    return Some(format!("{} is not synced to zones", r.describe()));
                }
                if t == ResourceType::ZoneIngress {
                    let zone = r.meta.labels.get(ZONE_LABEL).map(String::as_str);
                    if zone.is_none_or(|z| z == local_zone) {
                        return Some(format!("{} is not another zone's ingress", r.describe()));
                    }
                } else if multizone::origin(r) != Some(ORIGIN_GLOBAL) {
                    return Some(format!(
                        "{} lacks the label {ORIGIN_LABEL}: {ORIGIN_GLOBAL}",
                        r.describe()
                    ));
                }
            }
            Side::Global { .. } => {
                if !self.owns(r) {
                    return Some(format!(
                        "{} is not labelled as coming from this zone",
                        r.describe()
                    ));
                }
            }
        }
        None
    }

    /// Whether a received resource may replace an existing local one with the same key.
    /// Global-only types always follow the global; anything else only replaces a copy.
    fn may_replace(&self, existing: &Resource) -> bool {
        match self {
            Side::Zone { .. } if multizone::is_global_only(existing.resource_type()) => true,
            _ => self.owns(existing),
        }
    }
}

/// What this side holds of the copies it manages: key -> content version. Sent as
/// `initial_resource_versions` so the peer sends only what differs.
pub async fn holdings(
    store: &SharedStore,
    side: Side<'_>,
) -> Result<HashMap<String, String>, StoreError> {
    let mut out = HashMap::new();
    for t in received_types(side) {
        for r in store.list(t, None).await? {
            if side.owns(&r) {
                out.insert(wire::key_of(&r), wire::version_of(&r));
            }
        }
    }
    Ok(out)
}

/// The outcome of applying one message.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Resources created, updated or deleted.
    pub changed: usize,
    /// One line per resource that could not be applied (sent back in the NACK).
    pub errors: Vec<String>,
}

/// Applies received upserts and removals. Each resource is applied on its own (one bad
/// resource does not hold back the others); the errors come back in the report.
pub async fn apply(
    store: &SharedStore,
    side: Side<'_>,
    mut upserts: Vec<Resource>,
    removed: Vec<String>,
    now: &str,
) -> Result<ApplyReport, StoreError> {
    let mut report = ApplyReport::default();
    upserts.sort_by_key(|r| rank(r.resource_type()));
    for r in upserts {
        if let Some(why) = side.refuse(&r) {
            report.errors.push(why);
            continue;
        }
        if let Err(e) = aerie_core::validate::validate(&r) {
            report.errors.push(format!(
                "{}: {}",
                r.describe(),
                e.to_string().replace('\n', "; ")
            ));
            continue;
        }
        if r.meta.mesh.is_some() && store.get(ResourceType::Mesh, "", r.mesh()).await?.is_none() {
            report.errors.push(format!(
                "{}: mesh \"{}\" does not exist",
                r.describe(),
                r.mesh()
            ));
            continue;
        }
        match upsert(store, side, r, now).await {
            Ok(true) => report.changed += 1,
            Ok(false) => {}
            Err(UpsertError::Store(e)) => return Err(e),
            Err(UpsertError::Refused(why)) => report.errors.push(why),
        }
    }
    let mut keys: Vec<(ResourceType, String, String)> = removed
        .iter()
        .filter_map(|k| {
            let (t, m, n) = wire::parse_key(k)?;
            Some((t, m.to_string(), n.to_string()))
        })
        .collect();
    // Things inside a mesh go before the mesh (whose deletion would take them anyway).
    keys.sort_by_key(|(t, _, _)| std::cmp::Reverse(rank(*t)));
    for k in removed.iter().filter(|k| wire::parse_key(k).is_none()) {
        report.errors.push(format!("\"{k}\" is not a resource key"));
    }
    for (t, mesh, name) in keys {
        let Some(existing) = store.get(t, &mesh, &name).await? else {
            continue;
        };
        if !side.owns(&existing) {
            report.errors.push(format!(
                "{} is not a synced copy: not deleting it",
                existing.describe()
            ));
            continue;
        }
        match store.delete(t, &mesh, &name).await {
            Ok(()) => report.changed += 1,
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

enum UpsertError {
    Store(StoreError),
    Refused(String),
}

/// Creates or replaces one resource; `Ok(false)` when it was already there unchanged.
async fn upsert(
    store: &SharedStore,
    side: Side<'_>,
    r: Resource,
    now: &str,
) -> Result<bool, UpsertError> {
    // Two attempts: a concurrent local writer (e.g. another replica applying the same
    // message) can win the first race.
    for _ in 0..2 {
        let existing = store
            .get(r.resource_type(), r.mesh(), r.name())
            .await
            .map_err(UpsertError::Store)?;
        let result = match &existing {
            None => store.create(r.clone(), now).await.map(|_| ()),
            Some(e) if wire::same_content(e, &r) => return Ok(false),
            Some(e) if !side.may_replace(e) => {
                return Err(UpsertError::Refused(format!(
                    "{} exists here and is not a synced copy: not replacing it",
                    e.describe()
                )));
            }
            Some(e) => store
                .update(r.clone(), e.meta.version, now)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(UpsertError::Store(e)),
        }
    }
    Err(UpsertError::Refused(format!(
        "{} kept changing while being applied",
        r.describe()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::format::{parse_yaml_value, resource_from_value};
    use aerie_core::multizone::{to_global_copy, to_zone_copy};
    use std::sync::Arc;

    const NOW: &str = "2026-11-26T00:00:00Z";

    fn parse(yaml: &str) -> Resource {
        resource_from_value(&parse_yaml_value(yaml).unwrap()).unwrap()
    }

    fn mesh() -> Resource {
        parse("type: Mesh\nname: default\n")
    }

    fn mtp(name: &str) -> Resource {
        parse(&format!(
            "type: MeshTrafficPermission\nname: {name}\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n  from:\n    - targetRef: {{kind: Mesh}}\n      default: {{action: Allow}}\n"
        ))
    }

    fn dp(name: &str) -> Resource {
        parse(&format!(
            "type: Dataplane\nname: {name}\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {{port: 80, servicePort: 8080, tags: {{kuma.io/service: web}}}}\n"
        ))
    }

    fn store() -> SharedStore {
        Arc::new(aerie_store::MemoryStore::new())
    }

    #[tokio::test]
    async fn a_zone_applies_copies_and_removes_only_copies() {
        let s = store();
        let side = Side::Zone {
            local_zone: "zone-1",
        };
        // The zone's own policy, which the sync must never touch.
        s.create(mesh(), NOW).await.unwrap();
        let mut own = mtp("local");
        own.meta
            .labels
            .insert(ORIGIN_LABEL.into(), ORIGIN_ZONE.into());
        s.create(own.clone(), NOW).await.unwrap();

        let copies = vec![to_zone_copy(&mtp("allow")), to_zone_copy(&mesh())];
        let report = apply(&s, side, copies.clone(), vec![], NOW).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            report.changed, 2,
            "the mesh was replaced by its copy, the policy created"
        );
        let held = holdings(&s, side).await.unwrap();
        assert_eq!(held.len(), 2, "{held:?}");
        for c in &copies {
            assert_eq!(held[&wire::key_of(c)], wire::version_of(c));
        }
        // Applying the same again changes nothing.
        let again = apply(&s, side, copies.clone(), vec![], NOW).await.unwrap();
        assert_eq!(again.changed, 0);

        // Removing the zone's own policy by key is refused; removing the copy works.
        let report = apply(
            &s,
            side,
            vec![],
            vec![wire::key_of(&own), wire::key_of(&copies[0]), "junk".into()],
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(report.changed, 1);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert!(
            s.get(ResourceType::MeshTrafficPermission, "default", "local")
                .await
                .unwrap()
                .is_some()
        );
    }

    /// One valid resource of each type (a type added to the descriptors without a sample
    /// here fails the test below).
    fn sample(t: ResourceType) -> Resource {
        match t {
            ResourceType::Mesh => mesh(),
            ResourceType::Dataplane => dp("web-1"),
            ResourceType::MeshTrafficPermission => mtp("allow"),
            ResourceType::MeshTimeout => parse(
                "type: MeshTimeout\nname: t\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: Mesh}\n      default: {idleTimeout: 1m}\n",
            ),
            ResourceType::MeshCircuitBreaker => parse(
                "type: MeshCircuitBreaker\nname: cb\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {connectionLimits: {maxConnections: 10}}\n",
            ),
            ResourceType::MeshRetry => parse(
                "type: MeshRetry\nname: r\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {tcp: {maxConnectAttempt: 3}}\n",
            ),
            ResourceType::MeshTCPRoute => parse(
                "type: MeshTCPRoute\nname: tcp\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, name: db}\n      rules:\n        - default: {backendRefs: [{kind: MeshService, name: db-v2}]}\n",
            ),
            ResourceType::MeshHTTPRoute => parse(
                "type: MeshHTTPRoute\nname: http\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: MeshService, name: web}\n      rules:\n        - matches: [{path: {type: PathPrefix, value: /v2}}]\n          default: {backendRefs: [{kind: MeshService, name: web-v2}]}\n",
            ),
            ResourceType::MeshFaultInjection => parse(
                "type: MeshFaultInjection\nname: fi\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  rules:\n    - default: {http: [{abort: {httpStatus: 503, percentage: 50}}]}\n",
            ),
            ResourceType::MeshRateLimit => parse(
                "type: MeshRateLimit\nname: rl\nmesh: default\nspec:\n  targetRef: {kind: Mesh, proxyTypes: [Sidecar]}\n  rules:\n    - default: {local: {http: {requestRate: {num: 100, interval: 1s}}}}\n",
            ),
            ResourceType::MeshHealthCheck => parse(
                "type: MeshHealthCheck\nname: hc\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {interval: 10s, http: {path: /health}}\n",
            ),
            ResourceType::MeshLoadBalancingStrategy => parse(
                "type: MeshLoadBalancingStrategy\nname: lb\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {loadBalancer: {type: LeastRequest}}\n",
            ),
            ResourceType::MeshAccessLog => parse(
                "type: MeshAccessLog\nname: al\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {backends: [{type: File, file: {path: /tmp/access.log}}]}\n",
            ),
            ResourceType::MeshMetric => parse(
                "type: MeshMetric\nname: mm\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  default:\n    backends: [{type: Prometheus, prometheus: {port: 5670}}]\n",
            ),
            ResourceType::MeshTrace => parse(
                "type: MeshTrace\nname: mtr\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  default:\n    backends: [{type: Zipkin, zipkin: {url: 'http://zipkin:9411/api/v2/spans'}}]\n",
            ),
            ResourceType::MeshService => parse(
                "type: MeshService\nname: web\nmesh: default\nspec:\n  selector:\n    dataplaneTags: {kuma.io/service: web}\n  ports:\n    - {port: 80, targetPort: 8080, appProtocol: http}\n",
            ),
            ResourceType::Secret => parse("type: Secret\nname: s\nmesh: default\ndata: c2VjcmV0\n"),
            ResourceType::GlobalSecret => {
                parse("type: GlobalSecret\nname: zone-token-revocations\ndata: c2VjcmV0\n")
            }
            ResourceType::Zone => parse("type: Zone\nname: zone-2\n"),
            ResourceType::ZoneIngress => parse(
                "type: ZoneIngress\nname: ingress\nzone: zone-2\nnetworking: {address: 10.0.0.9, port: 10001}\n",
            ),
        }
    }

    #[test]
    fn each_side_receives_exactly_what_the_descriptors_say() {
        let zone = Side::Zone {
            local_zone: "zone-1",
        };
        let global = Side::Global { zone: "zone-2" };
        for d in aerie_core::DESCRIPTORS.iter() {
            let r = sample(d.rtype);
            let wrong_way = |side: Side<'_>, copy: &Resource| {
                side.refuse(copy)
                    .is_some_and(|why| why.contains("does not sync in this direction"))
            };
            let to_zone = to_zone_copy(&r);
            assert_eq!(
                !wrong_way(zone, &to_zone),
                d.to_zones,
                "{}: zones receive it: {}",
                d.name,
                d.to_zones
            );
            let to_global = to_global_copy(&r, "zone-2");
            assert_eq!(
                !wrong_way(global, &to_global),
                d.to_global,
                "{}: the global receives it: {}",
                d.name,
                d.to_global
            );
        }
    }

    #[test]
    fn zones_refuse_what_the_global_may_not_send() {
        let side = Side::Zone {
            local_zone: "zone-1",
        };
        // Not labelled as a global copy.
        assert!(side.refuse(&mtp("allow")).is_some());
        // Dataplanes never travel global -> zone.
        assert!(side.refuse(&to_zone_copy(&dp("web"))).is_some());
        // This zone's own ingress coming back.
        let ingress =
            parse("type: ZoneIngress\nname: i\nnetworking: {address: 10.0.0.1, port: 10001}\n");
        assert!(side.refuse(&to_global_copy(&ingress, "zone-1")).is_some());
        assert!(side.refuse(&to_global_copy(&ingress, "zone-2")).is_none());
        // Of the global secrets, only the zone-token public key and revocations.
        let mut gs = parse("type: GlobalSecret\nname: user-token-signing-key-1\ndata: YQ==\n");
        gs.meta
            .labels
            .insert(ORIGIN_LABEL.into(), ORIGIN_GLOBAL.into());
        assert!(side.refuse(&gs).is_some());
        for name in [
            "zone-token-signing-key-1",
            "user-token-revocations",
            "dataplane-token-signing-key-default",
        ] {
            gs.meta.name = name.into();
            assert!(side.refuse(&gs).is_some(), "{name}");
        }
        for name in [
            multizone::ZONE_TOKEN_PUBLIC_KEY,
            multizone::ZONE_TOKEN_REVOCATIONS,
        ] {
            gs.meta.name = name.into();
            assert!(side.refuse(&gs).is_none(), "{name}");
        }
    }

    #[tokio::test]
    async fn the_global_keeps_each_zone_to_its_own_copies() {
        let s = store();
        s.create(mesh(), NOW).await.unwrap();
        let z1 = Side::Global { zone: "zone-1" };
        let z2 = Side::Global { zone: "zone-2" };
        let from_z1 = to_global_copy(&dp("web"), "zone-1");
        let from_z2 = to_global_copy(&dp("web"), "zone-2");
        assert_ne!(from_z1.name(), from_z2.name());
        let r = apply(&s, z1, vec![from_z1.clone()], vec![], NOW)
            .await
            .unwrap();
        assert_eq!((r.changed, r.errors.len()), (1, 0));
        // zone-2 may not send zone-1's resource, nor delete it.
        let r = apply(
            &s,
            z2,
            vec![from_z1.clone()],
            vec![wire::key_of(&from_z1)],
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(r.changed, 0);
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
        let r = apply(&s, z2, vec![from_z2.clone()], vec![], NOW)
            .await
            .unwrap();
        assert_eq!(r.changed, 1);
        assert_eq!(holdings(&s, z1).await.unwrap().len(), 1);
        assert_eq!(holdings(&s, z2).await.unwrap().len(), 1);
        // A resource in a mesh the global does not have is refused, not half-stored.
        let mut lost = to_global_copy(&dp("x"), "zone-1");
        lost.meta.mesh = Some("nope".into());
        let r = apply(&s, z1, vec![lost], vec![], NOW).await.unwrap();
        assert_eq!(r.changed, 0);
        assert!(r.errors[0].contains("does not exist"), "{:?}", r.errors);
        // An invalid resource is refused with its validation errors.
        let mut bad = to_global_copy(&dp("bad"), "zone-1");
        if let aerie_core::Spec::Dataplane(d) = &mut bad.spec {
            d.networking.as_mut().unwrap().address = String::new();
        }
        let r = apply(&s, z1, vec![bad], vec![], NOW).await.unwrap();
        assert!(r.errors[0].contains("networking.address"), "{:?}", r.errors);
    }
}
