//! What applies to an outbound: Kuma's two outbound models.
//!
//! - **Legacy** (`rules.BuildToRules` → `legacyBuildToRules`, `rules.BuildRules`), for
//!   outbounds addressed by a `kuma.io/service` tag: each `to[]` entry of an "old" kind
//!   stands for a tag subset (`Mesh` = none, `MeshService` = `kuma.io/service: name`,
//!   `MeshSubset`/`MeshServiceSubset` = their tags); an outbound to service `s` gets every
//!   entry whose subset `{kuma.io/service: s}` carries, merged in *policy* order (matched
//!   policies sorted as in [`super::order::PolicyKey`], each policy's entries in written
//!   order). Kuma materialises this as a list of subset rules and picks the first that
//!   contains the element; the result for one element is this merge.
//! - **Resource rules** (`rules/outbound/resourcerules.go`), for outbounds with a
//!   `backendRef` (real MeshService/MeshExternalService/MeshMultiZoneService resources) and
//!   MeshHTTPRoutes: each entry resolves (`rules/resolve/targetref.go`) to resources
//!   (`Mesh` → the mesh; by `name` → the resource with that identity; by `labels` → every
//!   resource of the kind carrying them; `sectionName` → that port, entries naming a port a
//!   resource lacks drop it). A resource (section) has a rule iff some entry resolved to
//!   exactly it; its conf merges every relevant entry — `Mesh` entries, entries on the same
//!   resource and same section, and section-less entries on the resource when the rule is
//!   for a section — sorted by policy attributes, then *entry* kind (`Mesh` before
//!   `MeshService`), then `sectionName`, then display name. A lookup tries the section, then
//!   the resource, then the mesh (`ResourceRules.Compute`).
//!
//! The two can differ: `to: [Mesh, MeshService backend, Mesh]` in one policy gives `backend`
//! the last `Mesh` entry's values in the legacy model and the MeshService entry's values as
//! a resource rule.

use std::sync::Arc;

use serde_json::Value;

use super::catalog::{Catalog, Identity, ResourceKind};
use super::index::{Compiled, CompiledTo, Id, RulesIndex, ToRef};
use super::merge::merge_confs;
use super::order::{DISPLAY_NAME_LABEL, NAMESPACE_LABEL};
use super::types::{Merged, Origin, OutboundRules, OutboundTarget, ResourceRef};
use crate::spec::{Outbound, SERVICE_TAG, Tags, TargetRef};

/// A resource (section) an entry resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    Mesh,
    /// Position in the [`Catalog`].
    Resource(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Uri {
    pub slot: Slot,
    /// A port's section name; `None` = the whole resource.
    pub section: Option<String>,
}

/// The legacy subset of an entry (`rules.asSubset`); `None` for kinds outside it.
pub(crate) fn legacy_subset(tr: &TargetRef) -> Option<Vec<(String, String)>> {
    let service = || (SERVICE_TAG.to_owned(), tr.name.clone().unwrap_or_default());
    let tags = || {
        tr.tags
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
    };
    match tr.kind.as_deref()? {
        "Mesh" => Some(Vec::new()),
        "MeshSubset" => Some(tags().collect()),
        "MeshService" => Some(vec![service()]),
        "MeshServiceSubset" => Some(std::iter::once(service()).chain(tags()).collect()),
        _ => None,
    }
}

/// `resolve.TargetRef` against the catalog, for an entry held by a policy with
/// `holder_labels`.
pub(crate) fn resolve_to(tr: &TargetRef, holder_labels: &Tags, catalog: &Catalog) -> Vec<Uri> {
    let kind = tr.kind.as_deref().unwrap_or("");
    if kind == "Mesh" {
        return vec![Uri {
            slot: Slot::Mesh,
            section: None,
        }];
    }
    let Some(rk) = ResourceKind::parse(kind) else {
        return Vec::new();
    };
    let mut section = tr.section_name.clone().filter(|s| !s.is_empty());
    let mut port = 0;
    let mut by_labels = tr.labels.clone().filter(|l| !l.is_empty());
    // Kubernetes-style `name_namespace_svc_port` MeshService names resolve to the real
    // MeshService (by namespace and display name) on that port.
    if rk == ResourceKind::MeshService
        && section.is_none()
        && let Some((name, namespace, p)) = parse_service(tr.name.as_deref().unwrap_or(""))
    {
        by_labels = Some(Tags::from([
            (NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
            (DISPLAY_NAME_LABEL.to_owned(), name.to_owned()),
        ]));
        port = p;
        section = None;
    }
    let found: Vec<usize> = match &by_labels {
        Some(labels) => catalog.by_labels(rk, labels).collect(),
        None => catalog
            .by_identity(rk, &Identity::referenced(tr, holder_labels))
            .into_iter()
            .collect(),
    };
    found
        .into_iter()
        .filter_map(|i| {
            let whole = || Uri {
                slot: Slot::Resource(i),
                section: None,
            };
            if port == 0 && section.is_none() {
                return Some(whole());
            }
            let resource = catalog.get(i)?;
            if resource.kind == ResourceKind::MeshHTTPRoute {
                return Some(whole());
            }
            let found = resource.ports.iter().find(|p| match &section {
                _ if port != 0 => p.port == port,
                Some(s) => p.section_name() == *s,
                None => false,
            })?;
            Some(Uri {
                slot: Slot::Resource(i),
                section: Some(found.section_name()),
            })
        })
        .collect()
}

/// `name_namespace_svc_port` (or `name_namespace_svc`, port 0).
fn parse_service(host: &str) -> Option<(&str, &str, u32)> {
    let parts: Vec<&str> = host.split('_').collect();
    match parts.as_slice() {
        [name, namespace, _, port] => Some((name, namespace, port.parse().ok()?)),
        [name, namespace, _] => Some((name, namespace, 0)),
        _ => None,
    }
}

/// A `to[]` entry of a policy applying to the Dataplane.
#[derive(Debug, Clone, Copy)]
struct Applying<'i> {
    id: Id,
    policy: &'i Compiled,
    entry: &'i CompiledTo,
    uri: Option<&'i Uri>,
}

impl<'i> Applying<'i> {
    fn picked(&self) -> (&'i Arc<str>, usize, &'i Value) {
        (&self.policy.name, self.entry.index, &self.entry.conf)
    }
}

/// The to-side of one Dataplane: which policies apply to it (a bitset over policy ids),
/// over the mesh-wide index of `to[]` entries.
#[derive(Debug, Clone)]
pub(crate) struct ToView<'i> {
    index: &'i RulesIndex,
    member: Vec<u64>,
}

impl<'i> ToView<'i> {
    /// `ids`: the policies applying to the Dataplane.
    pub fn new(index: &'i RulesIndex, ids: &[Id]) -> ToView<'i> {
        let mut member = vec![0u64; index.policies.len().div_ceil(64)];
        for &id in ids {
            let Ok(id) = usize::try_from(id) else {
                continue;
            };
            if let Some(word) = member.get_mut(id / 64) {
                *word |= 1 << (id % 64);
            }
        }
        ToView { index, member }
    }

    fn applies(&self, id: Id) -> bool {
        usize::try_from(id).is_ok_and(|id| {
            self.member
                .get(id / 64)
                .is_some_and(|w| w & (1 << (id % 64)) != 0)
        })
    }

    /// The entries of applying policies among `refs`.
    fn applying(&self, refs: &'i [ToRef]) -> impl Iterator<Item = Applying<'i>> + '_ {
        refs.iter().filter(|r| self.applies(r.id)).filter_map(|r| {
            let (policy, entry, uri) = self.index.to_entry(*r)?;
            Some(Applying {
                id: r.id,
                policy,
                entry,
                uri,
            })
        })
    }

    /// The applying legacy entries whose subset `element` carries (not yet ordered).
    fn legacy_entries(&self, element: &Tags) -> Vec<Applying<'i>> {
        let specific = element
            .get(SERVICE_TAG)
            .and_then(|s| self.index.to_legacy_by_service.get(s))
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.applying(&self.index.to_legacy_any)
            .chain(self.applying(specific))
            .filter(|a| in_subset(a, element))
            .collect()
    }

    /// Legacy rules for an element (a destination's tags).
    pub fn element(&self, element: &Tags) -> Merged {
        let mut picked = self.legacy_entries(element);
        // Policy order, then written order.
        picked.sort_by_key(|a| (a.id, a.entry.index));
        merged(picked.iter().map(Applying::picked).collect())
    }

    /// A route's rules on a legacy outbound to a destination with `element`'s tags (Kuma's
    /// element with `__rule-matches-hash__`): the element's legacy entries and the entries
    /// of top-level `MeshHTTPRoute` policies naming `route`, merged in policy order (such
    /// a policy is the most specific). `None` when no such entry applies.
    pub fn route_element(&self, route: &str, element: &Tags) -> Option<Merged> {
        let own = self.index.to_legacy_by_route.get(route)?;
        let for_route: Vec<Applying<'i>> = self
            .applying(own)
            .filter(|a| in_subset(a, element))
            .collect();
        if for_route.is_empty() {
            return None;
        }
        let mut picked = self.legacy_entries(element);
        picked.extend(for_route);
        picked.sort_by_key(|a| (a.id, a.entry.index));
        Some(merged(picked.iter().map(Applying::picked).collect()))
    }

    /// The first of `chain` that has a resource rule, else the mesh's (if any).
    pub fn chain(&self, chain: &[Option<Uri>]) -> Merged {
        let mesh = Uri {
            slot: Slot::Mesh,
            section: None,
        };
        chain
            .iter()
            .flatten()
            .chain(std::iter::once(&mesh))
            .find(|uri| self.has_rule(uri))
            .map(|uri| self.rule(uri))
            .unwrap_or_default()
    }

    fn on_slot(&self, slot: &Slot) -> &'i [ToRef] {
        match slot {
            Slot::Mesh => &self.index.to_mesh,
            Slot::Resource(i) => self
                .index
                .to_by_resource
                .get(i)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        }
    }

    /// Whether an applying entry resolved to exactly `uri`.
    fn has_rule(&self, uri: &Uri) -> bool {
        self.applying(self.on_slot(&uri.slot))
            .any(|a| a.uri.is_some_and(|u| u.section == uri.section))
    }

    /// Every applying entry relevant to `uri` (`withResolvedResource.isRelevant`), merged
    /// in `outbound.Sort` order.
    fn rule(&self, uri: &Uri) -> Merged {
        let on_resource = match uri.slot {
            Slot::Mesh => &[][..],
            Slot::Resource(_) => self.on_slot(&uri.slot),
        };
        let by_section = match uri.slot {
            Slot::Resource(i) => matches!(
                self.index.catalog.get(i).map(|r| r.kind),
                Some(ResourceKind::MeshService | ResourceKind::MeshMultiZoneService)
            ),
            Slot::Mesh => false,
        };
        let target = uri.section.as_deref();
        let mut relevant: Vec<Applying<'i>> = self
            .applying(&self.index.to_mesh)
            .chain(self.applying(on_resource).filter(|a| {
                let section = a.uri.and_then(|u| u.section.as_deref());
                !by_section || section == target || (section.is_none() && target.is_some())
            }))
            .collect();
        // Policy attributes, entry kind and section, then policy priority (display name,
        // name) and written order.
        relevant.sort_by_key(|a| (a.policy.key.attrs, a.entry.rank, a.id, a.entry.index));
        merged(relevant.iter().map(Applying::picked).collect())
    }

    /// A resource's own rule (no fallback): `None` when no applying entry resolved to it.
    pub fn own_rule(&self, r: &ResourceRef) -> Option<Merged> {
        let uri = self.uri(r)?;
        self.has_rule(&uri).then(|| self.rule(&uri))
    }

    pub fn uri(&self, r: &ResourceRef) -> Option<Uri> {
        let i = self.index.catalog.by_name(r.kind, &r.name)?;
        Some(Uri {
            slot: Slot::Resource(i),
            section: r.section.clone().filter(|s| !s.is_empty()),
        })
    }

    /// The lookup chain of a resource: its section, the resource, (the mesh).
    pub fn resource(&self, r: &ResourceRef) -> Merged {
        let exact = self.uri(r);
        let whole = exact.as_ref().map(|u| Uri {
            slot: u.slot.clone(),
            section: None,
        });
        self.chain(&[exact, whole])
    }

    /// One `networking.outbound`.
    pub fn outbound(&self, o: &Outbound) -> OutboundRules {
        let (target, merged) = match &o.backend_ref {
            Some(b) => self.backend_ref(b),
            None => match o.tags.get(SERVICE_TAG) {
                Some(service) => (
                    OutboundTarget::Service {
                        name: service.clone(),
                    },
                    self.element(&Tags::from([(SERVICE_TAG.to_owned(), service.clone())])),
                ),
                None => (OutboundTarget::Unresolved, Merged::default()),
            },
        };
        OutboundRules {
            port: o.port,
            target,
            merged,
        }
    }

    fn backend_ref(&self, b: &crate::spec::BackendRef) -> (OutboundTarget, Merged) {
        let kind_name = if b.kind.is_empty() {
            "MeshService"
        } else {
            b.kind.as_str()
        };
        let Some(kind) = ResourceKind::parse(kind_name) else {
            return (OutboundTarget::Unresolved, Merged::default());
        };
        let catalog = &self.index.catalog;
        let found = match b.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => catalog.by_name(kind, name),
            // Several matches: the oldest, i.e. the first in catalog order.
            None => b
                .labels
                .as_ref()
                .and_then(|l| catalog.by_labels(kind, l).next()),
        };
        let name = match (found.and_then(|i| catalog.get(i)), b.name.as_deref()) {
            (Some(r), _) => r.name.clone(),
            (None, Some(n)) if !n.is_empty() => n.to_owned(),
            _ => return (OutboundTarget::Unresolved, Merged::default()),
        };
        let section = found.and_then(|i| catalog.get(i)).and_then(|r| {
            let port = b.port?;
            r.ports
                .iter()
                .find(|p| p.port == port)
                .map(|p| p.section_name())
        });
        let r = ResourceRef {
            kind,
            name,
            section,
        };
        let merged = self.resource(&r);
        (
            OutboundTarget::Resource {
                kind: r.kind,
                name: r.name,
                section: r.section,
            },
            merged,
        )
    }
}

/// Whether an entry's legacy subset is carried by `element`.
fn in_subset(a: &Applying<'_>, element: &Tags) -> bool {
    a.entry
        .legacy
        .as_ref()
        .is_some_and(|s| s.iter().all(|(k, v)| element.get(k) == Some(v)))
}

/// Merges picked entries in the given order.
pub(crate) fn merged(picked: Vec<(&Arc<str>, usize, &Value)>) -> Merged {
    Merged {
        origins: picked
            .iter()
            .map(|(policy, index, _)| Origin {
                policy: Arc::clone(policy),
                index: *index,
            })
            .collect(),
        conf: merge_confs(picked.iter().map(|(_, _, conf)| *conf)),
    }
}
