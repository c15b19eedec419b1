//! The resources of a mesh that targetRefs can name besides proxies: MeshServices,
//! MeshExternalServices, MeshMultiZoneServices (destinations with ports) and MeshHTTPRoutes
//! (a top-level `MeshHTTPRoute` ref selects what the route's own targetRef selects).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::order::{NAMESPACE_LABEL, ZONE_LABEL, display_name};
use crate::spec::{MeshServiceSpec, Tags, TargetRef};

/// A kind of resource a `to[].targetRef` can resolve to (besides the Mesh itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    MeshService,
    MeshExternalService,
    MeshMultiZoneService,
    MeshHTTPRoute,
}

impl ResourceKind {
    pub fn parse(kind: &str) -> Option<ResourceKind> {
        match kind {
            "MeshService" => Some(ResourceKind::MeshService),
            "MeshExternalService" => Some(ResourceKind::MeshExternalService),
            "MeshMultiZoneService" => Some(ResourceKind::MeshMultiZoneService),
            "MeshHTTPRoute" => Some(ResourceKind::MeshHTTPRoute),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::MeshService => "MeshService",
            ResourceKind::MeshExternalService => "MeshExternalService",
            ResourceKind::MeshMultiZoneService => "MeshMultiZoneService",
            ResourceKind::MeshHTTPRoute => "MeshHTTPRoute",
        }
    }
}

/// One port of a destination. Its section name (what `sectionName` matches) is `name`, or
/// the port number written out when unnamed (Kuma's `Port.GetName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Port {
    pub fn section_name(&self) -> String {
        match self.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => self.port.to_string(),
        }
    }
}

/// A resource of the mesh, as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogResource {
    pub kind: ResourceKind,
    pub name: String,
    #[serde(default)]
    pub labels: Tags,
    /// Destinations' ports (a MeshExternalService has one: its `match.port`, unnamed).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// A MeshHTTPRoute's top-level targetRef (missing = the whole mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
}

impl CatalogResource {
    /// A MeshService resource with its ports.
    pub fn mesh_service(name: &str, labels: &Tags, spec: &MeshServiceSpec) -> CatalogResource {
        CatalogResource {
            kind: ResourceKind::MeshService,
            name: name.to_owned(),
            labels: labels.clone(),
            ports: spec
                .ports
                .iter()
                .map(|p| Port {
                    port: p.port,
                    name: p.name.clone(),
                })
                .collect(),
            target_ref: None,
        }
    }

    /// A MeshHTTPRoute: what its own top-level targetRef selects (`None`: the mesh).
    pub fn mesh_http_route(
        name: &str,
        labels: &Tags,
        target_ref: Option<&TargetRef>,
    ) -> CatalogResource {
        CatalogResource {
            kind: ResourceKind::MeshHTTPRoute,
            name: name.to_owned(),
            labels: labels.clone(),
            ports: Vec::new(),
            target_ref: target_ref.cloned(),
        }
    }

    /// The identity a targetRef by name is compared with (Kuma's KRI without type and
    /// mesh): display name, `kuma.io/zone`, `k8s.kuma.io/namespace`.
    pub(crate) fn identity(&self) -> Identity {
        Identity::of(&self.name, &self.labels)
    }
}

/// Who a resource is, for references by name: Kuma compares KRIs, i.e. type, mesh, zone
/// label, namespace label and display name. Type and mesh are compared by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Identity {
    pub name: String,
    pub zone: String,
    pub namespace: String,
}

impl Identity {
    pub fn of(name: &str, labels: &Tags) -> Identity {
        Identity {
            name: display_name(name, labels).to_owned(),
            zone: labels.get(ZONE_LABEL).cloned().unwrap_or_default(),
            namespace: labels.get(NAMESPACE_LABEL).cloned().unwrap_or_default(),
        }
    }

    /// What `{name, namespace}` in a ref held by a resource with `holder_labels` points at
    /// (`resolve.TargetRefToKRI`): the holder's zone, the ref's namespace or else the
    /// holder's.
    pub fn referenced(tr: &TargetRef, holder_labels: &Tags) -> Identity {
        let namespace = match tr.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => holder_labels
                .get(NAMESPACE_LABEL)
                .cloned()
                .unwrap_or_default(),
        };
        Identity {
            name: tr.name.clone().unwrap_or_default(),
            zone: holder_labels.get(ZONE_LABEL).cloned().unwrap_or_default(),
            namespace,
        }
    }
}

/// The MeshServices, MeshExternalServices, MeshMultiZoneServices and MeshHTTPRoutes of one
/// mesh. Order matters only where Kuma takes "the oldest" of several matches (an outbound
/// `backendRef` by labels): pass them oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    resources: Vec<CatalogResource>,
    /// kind -> resource name -> first position.
    by_name: HashMap<ResourceKind, HashMap<String, usize>>,
    /// kind -> display name -> positions, in catalog order.
    by_display_name: HashMap<ResourceKind, HashMap<String, Vec<usize>>>,
    identities: Vec<Identity>,
}

impl Catalog {
    pub fn new(resources: Vec<CatalogResource>) -> Catalog {
        let identities: Vec<Identity> = resources.iter().map(CatalogResource::identity).collect();
        let mut by_name: HashMap<ResourceKind, HashMap<String, usize>> = HashMap::new();
        let mut by_display_name: HashMap<ResourceKind, HashMap<String, Vec<usize>>> =
            HashMap::new();
        for (i, (r, id)) in resources.iter().zip(&identities).enumerate() {
            by_name
                .entry(r.kind)
                .or_default()
                .entry(r.name.clone())
                .or_insert(i);
            by_display_name
                .entry(r.kind)
                .or_default()
                .entry(id.name.clone())
                .or_default()
                .push(i);
        }
        Catalog {
            resources,
            by_name,
            by_display_name,
            identities,
        }
    }

    pub fn resources(&self) -> &[CatalogResource] {
        &self.resources
    }

    pub(crate) fn get(&self, id: usize) -> Option<&CatalogResource> {
        self.resources.get(id)
    }

    fn with_display_name(&self, kind: ResourceKind, name: &str) -> &[usize] {
        self.by_display_name
            .get(&kind)
            .and_then(|m| m.get(name))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The resource of `kind` with this `name` (resource name, else display name).
    pub(crate) fn by_name(&self, kind: ResourceKind, name: &str) -> Option<usize> {
        self.by_name
            .get(&kind)
            .and_then(|m| m.get(name))
            .copied()
            .or_else(|| self.with_display_name(kind, name).first().copied())
    }

    /// The resource of `kind` with exactly this identity.
    pub(crate) fn by_identity(&self, kind: ResourceKind, identity: &Identity) -> Option<usize> {
        self.with_display_name(kind, &identity.name)
            .iter()
            .copied()
            .find(|&i| self.identities.get(i) == Some(identity))
    }

    /// Resources of `kind` whose labels contain all of `labels`, in catalog order.
    pub(crate) fn by_labels<'s>(
        &'s self,
        kind: ResourceKind,
        labels: &'s Tags,
    ) -> impl Iterator<Item = usize> + 's {
        self.resources
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.kind == kind && contains_all(&r.labels, labels))
            .map(|(i, _)| i)
    }

    /// A MeshHTTPRoute referenced by name from a resource of the same mesh
    /// (`core_model.IsReferenced`: the route's display name).
    pub(crate) fn route(&self, name: &str) -> Option<&CatalogResource> {
        self.with_display_name(ResourceKind::MeshHTTPRoute, name)
            .first()
            .and_then(|&i| self.get(i))
    }
}

/// Whether `have` contains every key/value of `want` (an empty `want` always matches).
pub(crate) fn contains_all(have: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}
