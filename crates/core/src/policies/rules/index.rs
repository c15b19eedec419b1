//! Policies of one mesh compiled once, bucketed by what their top-level targetRef keys on,
//! so that each inbound only checks the policies that can select it.
//!
//! Buckets: mesh-wide (`Mesh`, `Dataplane {}`, tag selectors with only `*` values); by
//! `kuma.io/service` value; by one other inbound tag; by Dataplane display name; by one
//! Dataplane label. Every candidate is then checked in full by [`Target`], the same check
//! [`RulesIndex::scan_inbound`] applies to every policy, so the buckets change speed only.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::catalog::{Catalog, ResourceKind};
use super::merge::strip_nulls;
use super::order::{EFFECT_LABEL, PolicyKey, to_entry_rank, top_level_kind};
use super::outbound::{Slot, Uri, legacy_subset, resolve_to};
use super::select::{DpFacts, Selector, Target};
use super::types::{DataplaneView, Options, PolicyItem};
use crate::spec::{Inbound, SERVICE_TAG, Tags, TargetRef};

/// Ids are positions in the priority-sorted policy list: sorting ids sorts by priority.
pub(crate) type Id = u32;

#[derive(Debug, Clone)]
pub(crate) struct CompiledTo {
    pub index: usize,
    /// `outbound.CompareByToEntry`.
    pub rank: (u8, u8),
    pub conf: Arc<Value>,
    /// The tags a legacy (`kuma.io/service`) destination must carry; `None` for kinds the
    /// legacy rules leave out.
    pub legacy: Option<Vec<(String, String)>>,
    /// What the entry resolves to among real resources.
    pub resolved: Vec<Uri>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFrom {
    pub index: usize,
    pub target_ref: Arc<TargetRef>,
    pub subset: Option<Arc<[(String, String)]>>,
    pub conf: Arc<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub index: usize,
    pub matches: Vec<Value>,
    pub conf: Arc<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub name: Arc<str>,
    pub key: PolicyKey,
    pub target: Target,
    pub to: Vec<CompiledTo>,
    pub from: Vec<CompiledFrom>,
    pub rules: Vec<CompiledRule>,
    /// Takes part in legacy to-rules: not a top-level `MeshHTTPRoute` policy (whose entries
    /// only ever apply per route) and no `to[]` entry of kind `MeshHTTPRoute` (Kuma skips
    /// such policies in `legacyBuildToRules`).
    pub legacy_to: bool,
    /// Takes part in resource to-rules: not a top-level `MeshHTTPRoute` policy.
    pub resource_to: bool,
    /// A top-level `MeshHTTPRoute` policy: the route it names (the route's resource name
    /// when the catalog has it). Its entries apply to that route's requests on outbounds
    /// addressed by `kuma.io/service` tags (Kuma's `__rule-matches-hash__` subsets).
    pub top_route: Option<String>,
}

/// The policies of one kind in one mesh, compiled for resolving many Dataplanes.
#[derive(Debug, Clone, Default)]
pub struct RulesIndex {
    pub(crate) mesh: String,
    pub(crate) options: Options,
    pub(crate) catalog: Catalog,
    pub(crate) policies: Vec<Compiled>,
    mesh_wide: Vec<Id>,
    by_service: HashMap<String, Vec<Id>>,
    by_tag: HashMap<String, HashMap<String, Vec<Id>>>,
    by_dp_name: HashMap<String, Vec<Id>>,
    by_dp_label: HashMap<String, HashMap<String, Vec<Id>>>,
    /// Every `to[]` entry, indexed by what it names (see [`ToRef`]), in merge order.
    pub(crate) to_legacy_any: Vec<ToRef>,
    pub(crate) to_legacy_by_service: HashMap<String, Vec<ToRef>>,
    pub(crate) to_mesh: Vec<ToRef>,
    pub(crate) to_by_resource: HashMap<usize, Vec<ToRef>>,
    /// Entries of top-level `MeshHTTPRoute` policies, by route name (legacy outbounds).
    pub(crate) to_legacy_by_route: HashMap<String, Vec<ToRef>>,
}

/// A `to[]` entry of a policy (and, for resource rules, one of the resources it resolves
/// to): `(policy id, position in to[], position in resolved)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ToRef {
    pub id: Id,
    pub entry: usize,
    pub uri: usize,
}

impl RulesIndex {
    /// Whether a `to[]` entry names a MeshHTTPRoute (only then can a route have a rule of
    /// its own).
    pub fn names_routes(&self) -> bool {
        !self.to_legacy_by_route.is_empty()
            || self.to_by_resource.keys().any(|&i| {
                self.catalog
                    .get(i)
                    .is_some_and(|r| r.kind == ResourceKind::MeshHTTPRoute)
            })
    }

    /// Compiles the policies of one kind in `mesh`. `catalog` holds the mesh's
    /// MeshServices, MeshExternalServices, MeshMultiZoneServices and MeshHTTPRoutes.
    pub fn new(
        mesh: &str,
        policies: &[PolicyItem<'_>],
        catalog: Catalog,
        options: Options,
    ) -> RulesIndex {
        let mut compiled: Vec<Compiled> = policies
            .iter()
            .filter(|p| {
                options.include_shadow
                    || p.labels.get(EFFECT_LABEL).map(String::as_str) != Some("shadow")
            })
            .map(|p| compile(p, &catalog))
            .collect();
        // Stable: exact duplicates (impossible in a store) keep their input order.
        compiled.sort_by(|a, b| a.key.cmp(&b.key));
        let mut index = RulesIndex {
            mesh: mesh.to_owned(),
            options,
            catalog,
            ..RulesIndex::default()
        };
        for (id, policy) in (0..).zip(&compiled) {
            index.bucket(id, &policy.target.selector);
            index.index_to(id, policy);
        }
        index.policies = compiled;
        index
    }

    fn index_to(&mut self, id: Id, policy: &Compiled) {
        for (entry, e) in policy.to.iter().enumerate() {
            let at = |uri| ToRef { id, entry, uri };
            if let Some(route) = &policy.top_route
                && e.legacy.is_some()
            {
                self.to_legacy_by_route
                    .entry(route.clone())
                    .or_default()
                    .push(at(0));
            }
            if policy.legacy_to
                && let Some(subset) = &e.legacy
            {
                match subset.as_slice() {
                    [(k, v)] if k == SERVICE_TAG => self
                        .to_legacy_by_service
                        .entry(v.clone())
                        .or_default()
                        .push(at(0)),
                    _ => self.to_legacy_any.push(at(0)),
                }
            }
            if !policy.resource_to {
                continue;
            }
            for (k, uri) in e.resolved.iter().enumerate() {
                match uri.slot {
                    Slot::Mesh => self.to_mesh.push(at(k)),
                    Slot::Resource(i) => self.to_by_resource.entry(i).or_default().push(at(k)),
                }
            }
        }
    }

    /// The entry and resolved resource a [`ToRef`] points at.
    pub(crate) fn to_entry(&self, r: ToRef) -> Option<(&Compiled, &CompiledTo, Option<&Uri>)> {
        let p = self.policy(r.id)?;
        let e = p.to.get(r.entry)?;
        Some((p, e, e.resolved.get(r.uri)))
    }

    fn bucket(&mut self, id: Id, selector: &Selector) {
        match selector {
            Selector::Mesh { .. } => self.mesh_wide.push(id),
            Selector::Tags { tags, .. } => match tags.get(SERVICE_TAG).filter(|v| *v != "*") {
                Some(service) => self.by_service.entry(service.clone()).or_default().push(id),
                None => match tags.iter().find(|(_, v)| *v != "*") {
                    Some((k, v)) => push_nested(&mut self.by_tag, k, v, id),
                    None => self.mesh_wide.push(id),
                },
            },
            Selector::Dataplane {
                all,
                identity,
                labels,
                ..
            } => {
                if *all || labels.as_ref().is_some_and(Tags::is_empty) {
                    self.mesh_wide.push(id);
                    return;
                }
                if let Some(identity) = identity {
                    self.by_dp_name
                        .entry(identity.name.clone())
                        .or_default()
                        .push(id);
                }
                if let Some((k, v)) = labels.as_ref().and_then(|l| l.iter().next()) {
                    push_nested(&mut self.by_dp_label, k, v, id);
                }
            }
            Selector::Nothing => {}
        }
    }

    /// Number of policies indexed (shadow ones excluded unless asked for).
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every `to[]` entry's conf, in policy order.
    pub fn confs(&self) -> impl Iterator<Item = &Value> {
        self.policies
            .iter()
            .flat_map(|p| p.to.iter().map(|e| &*e.conf))
    }

    pub fn mesh(&self) -> &str {
        &self.mesh
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn policy(&self, id: Id) -> Option<&Compiled> {
        usize::try_from(id).ok().and_then(|i| self.policies.get(i))
    }

    pub(crate) fn facts<'d>(&self, dp: &DataplaneView<'d>) -> DpFacts<'d> {
        DpFacts::new(dp.name, dp.labels, dp.spec)
    }

    /// Candidates keyed on the Dataplane itself (display name, labels): once per Dataplane.
    pub(crate) fn dataplane_candidates(&self, facts: &DpFacts<'_>) -> Vec<Id> {
        let mut ids: Vec<Id> = self
            .by_dp_name
            .get(&facts.identity.name)
            .cloned()
            .unwrap_or_default();
        for (k, v) in facts.labels {
            if let Some(found) = lookup(&self.by_dp_label, k, v) {
                ids.extend_from_slice(found);
            }
        }
        ids
    }

    /// Ids of the policies that can select something carrying `tags` (an inbound's, or a
    /// delegated gateway's), before the full check.
    fn tag_candidates(&self, dp_ids: &[Id], tags: &Tags) -> Vec<Id> {
        let mut ids: Vec<Id> = Vec::with_capacity(self.mesh_wide.len() + dp_ids.len() + 4);
        ids.extend_from_slice(&self.mesh_wide);
        ids.extend_from_slice(dp_ids);
        if let Some(found) = tags.get(SERVICE_TAG).and_then(|s| self.by_service.get(s)) {
            ids.extend_from_slice(found);
        }
        for (k, v) in tags {
            if let Some(found) = lookup(&self.by_tag, k, v) {
                ids.extend_from_slice(found);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The policies selecting `inbound`, in priority order (lowest first).
    pub(crate) fn inbound_ids(
        &self,
        facts: &DpFacts<'_>,
        dp_ids: &[Id],
        inbound: &Inbound,
    ) -> Vec<Id> {
        let mut ids = self.tag_candidates(dp_ids, &inbound.tags);
        ids.retain(|&id| {
            self.policy(id)
                .is_some_and(|p| p.target.selects_inbound(facts, inbound))
        });
        ids
    }

    /// The policies selecting an embedded zone-proxy listener named `section`, in priority
    /// order. Only mesh-wide and Dataplane-keyed policies can select one.
    pub(crate) fn listener_ids(
        &self,
        facts: &DpFacts<'_>,
        dp_ids: &[Id],
        section: &str,
    ) -> Vec<Id> {
        let mut ids: Vec<Id> = Vec::with_capacity(self.mesh_wide.len() + dp_ids.len());
        ids.extend_from_slice(&self.mesh_wide);
        ids.extend_from_slice(dp_ids);
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| {
            self.policy(id).is_some_and(|p| {
                p.target.admits_dataplane(facts) && p.target.selects_listener_of_admitted(section)
            })
        });
        ids
    }

    /// The policies selecting the Dataplane as a delegated gateway, in priority order.
    pub(crate) fn gateway_ids(&self, facts: &DpFacts<'_>, dp_ids: &[Id]) -> Vec<Id> {
        let Some(tags) = facts.delegated_tags() else {
            return Vec::new();
        };
        let mut ids = self.tag_candidates(dp_ids, tags);
        ids.retain(|&id| {
            self.policy(id)
                .is_some_and(|p| p.target.selects_gateway(facts))
        });
        ids
    }

    /// Every policy checked against `inbound`: the reference the buckets are tested against.
    #[cfg(test)]
    pub(crate) fn scan_inbound(&self, facts: &DpFacts<'_>, inbound: &Inbound) -> Vec<Id> {
        (0..)
            .zip(&self.policies)
            .filter(|(_, p)| p.target.selects_inbound(facts, inbound))
            .map(|(id, _)| id)
            .collect()
    }

    /// The catalog resource a `backendRef`-style reference names.
    pub(crate) fn resource_by_name(&self, kind: ResourceKind, name: &str) -> Option<usize> {
        self.catalog.by_name(kind, name)
    }
}

fn lookup<'m>(
    map: &'m HashMap<String, HashMap<String, Vec<Id>>>,
    k: &str,
    v: &str,
) -> Option<&'m Vec<Id>> {
    map.get(k).and_then(|m| m.get(v))
}

fn push_nested(map: &mut HashMap<String, HashMap<String, Vec<Id>>>, k: &str, v: &str, id: Id) {
    map.entry(k.to_owned())
        .or_default()
        .entry(v.to_owned())
        .or_default()
        .push(id);
}

fn compile(p: &PolicyItem<'_>, catalog: &Catalog) -> Compiled {
    let top_route = top_level_kind(p.target_ref) == "MeshHTTPRoute";
    let to: Vec<CompiledTo> =
        p.to.iter()
            .enumerate()
            .map(|(index, e)| CompiledTo {
                index,
                rank: to_entry_rank(e.target_ref),
                conf: conf_of(e.default),
                legacy: legacy_subset(e.target_ref),
                resolved: resolve_to(e.target_ref, p.labels, catalog),
            })
            .collect();
    let has_route_entry =
        p.to.iter()
            .any(|e| e.target_ref.kind.as_deref() == Some("MeshHTTPRoute"));
    Compiled {
        name: Arc::from(p.name),
        key: PolicyKey::new(p.name, p.labels, p.target_ref),
        target: Target::compile(p.target_ref, p.labels, catalog),
        to,
        from: p
            .from
            .iter()
            .enumerate()
            .map(|(index, e)| CompiledFrom {
                index,
                target_ref: Arc::new(e.target_ref.clone()),
                subset: legacy_subset(e.target_ref).map(Arc::from),
                conf: conf_of(e.default),
            })
            .collect(),
        rules: p
            .rules
            .iter()
            .enumerate()
            .map(|(index, r)| CompiledRule {
                index,
                matches: r.matches.to_vec(),
                conf: conf_of(r.default),
            })
            .collect(),
        legacy_to: !top_route && !has_route_entry,
        resource_to: !top_route,
        top_route: top_route.then(|| {
            let name = p
                .target_ref
                .and_then(|t| t.name.clone())
                .unwrap_or_default();
            catalog
                .by_name(ResourceKind::MeshHTTPRoute, &name)
                .and_then(|i| catalog.get(i))
                .map_or(name, |r| r.name.clone())
        }),
    }
}

/// A `default` as Kuma's typed decoding leaves it: `null` members dropped, a missing conf
/// an empty object.
fn conf_of(default: &Value) -> Arc<Value> {
    Arc::new(match default {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => strip_nulls(other),
    })
}
