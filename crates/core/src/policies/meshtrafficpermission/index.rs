//! Resolution for many dataplanes: policies compiled once and bucketed by what their
//! top-level `targetRef` keys on, so each inbound only looks at policies that can select it.
//!
//! Buckets (each policy sits in exactly one kind of bucket, and an inbound can reach it
//! through at most one key, so candidates never repeat):
//! - mesh-wide (`Mesh`, missing targetRef, `MeshSubset` without tags, `Dataplane {}`):
//!   candidates for every inbound;
//! - by service name (`MeshService`, `MeshServiceSubset`, `MeshSubset` with a
//!   `kuma.io/service` tag): looked up with the inbound's service;
//! - by one inbound tag (other `MeshSubset`s): looked up with each tag of the inbound;
//! - by Dataplane name, or by one Dataplane label (`Dataplane` refs): looked up once per
//!   dataplane.
//!
//! Every candidate is then checked in full by the same code the unindexed
//! [`PolicyIndex::resolve_scan`] uses, so the index can only change speed, not answers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::authz::{AuthzBuilder, InboundAuthz};
use super::select::{
    Action, CallerMatcher, DpFacts, MeshServiceCatalog, Selector, Target, compile_caller,
    proxy_type,
};
use super::spec::MeshTrafficPermissionSpec;
use crate::spec::{DataplaneSpec, Inbound, MeshSpec, SERVICE_TAG, Tags, TargetRef};

/// The dataplane being resolved: its mesh, name, labels and spec.
#[derive(Debug, Clone, Copy)]
pub struct DataplaneRef<'a> {
    pub mesh: &'a str,
    pub name: &'a str,
    pub labels: &'a Tags,
    pub spec: &'a DataplaneSpec,
}

impl<'a> DataplaneRef<'a> {
    fn facts(&self) -> DpFacts<'a> {
        DpFacts {
            mesh: self.mesh,
            name: self.name,
            labels: self.labels,
            proxy_type: proxy_type(self.spec),
        }
    }

    fn inbounds(&self) -> &'a [Inbound] {
        self.spec
            .networking
            .as_ref()
            .map(|n| n.inbound.as_slice())
            .unwrap_or_default()
    }
}

/// One `from` entry of a policy selecting an inbound, for the inspect view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedFrom {
    /// The entry's `targetRef` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// `None` when the action is missing or unknown (the entry then grants nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The callers it matches; empty = nobody (unknown kind, other mesh, unresolved labels).
    pub callers: Vec<CallerMatcher>,
}

/// One policy whose top-level `targetRef` selects an inbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedPolicy {
    pub name: String,
    /// The top-level `targetRef` as written (`None` = whole mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    pub from: Vec<MatchedFrom>,
}

/// The MeshTrafficPermissions selecting one inbound (`kumactl inspect dataplane
/// --type=policies`), sorted by policy name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedPolicies {
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub service: String,
    pub policies: Vec<MatchedPolicy>,
}

/// A policy compiled for resolution.
#[derive(Debug, Clone)]
struct CompiledPolicy {
    name: String,
    target_ref: Option<TargetRef>,
    target: Target,
    from: Vec<CompiledFrom>,
}

#[derive(Debug, Clone)]
struct CompiledFrom {
    target_ref: Option<TargetRef>,
    action: Option<Action>,
    callers: Vec<CallerMatcher>,
    /// `from[].targetRef.mesh`: another mesh's callers never reach this one.
    mesh: Option<String>,
}

impl CompiledFrom {
    fn callers_in(&self, mesh: &str) -> &[CallerMatcher] {
        match self.mesh.as_deref() {
            Some(m) if m != mesh => &[],
            _ => &self.callers,
        }
    }
}

/// Policy ids, in name order (ids are positions in the name-sorted policy list).
type Ids = Vec<u32>;

/// The MeshTrafficPermissions of one mesh, compiled and bucketed for fast resolution.
#[derive(Debug, Clone, Default)]
pub struct PolicyIndex {
    policies: Vec<CompiledPolicy>,
    mesh_wide: Ids,
    by_service: HashMap<String, Ids>,
    /// tag -> value -> ids (nested so lookups borrow `&str`, no allocation).
    by_inbound_tag: HashMap<String, HashMap<String, Ids>>,
    by_dataplane: HashMap<String, Ids>,
    by_dataplane_label: HashMap<String, HashMap<String, Ids>>,
}

impl PolicyIndex {
    /// Compiles `(policy name, spec)` pairs of one mesh. MeshService references by `labels`
    /// select nothing; use [`PolicyIndex::with_mesh_services`] to resolve them.
    pub fn new(policies: &[(String, &MeshTrafficPermissionSpec)]) -> Self {
        Self::with_mesh_services(policies, &MeshServiceCatalog::default())
    }

    /// Like [`PolicyIndex::new`], resolving MeshService `labels` references against `catalog`.
    pub fn with_mesh_services(
        policies: &[(String, &MeshTrafficPermissionSpec)],
        catalog: &MeshServiceCatalog,
    ) -> Self {
        let mut sorted: Vec<&(String, &MeshTrafficPermissionSpec)> = policies.iter().collect();
        // Stable: duplicate names (impossible in a store) keep their input order.
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut index = PolicyIndex::default();
        for (name, spec) in sorted {
            let Ok(id) = u32::try_from(index.policies.len()) else {
                break;
            };
            let policy = compile(name, spec, catalog);
            index.bucket(id, &policy.target.selector);
            index.policies.push(policy);
        }
        index
    }

    fn bucket(&mut self, id: u32, selector: &Selector) {
        match selector {
            Selector::All => self.mesh_wide.push(id),
            Selector::InboundTags(tags) => match tags.get(SERVICE_TAG) {
                Some(service) => self.by_service.entry(service.clone()).or_default().push(id),
                None => {
                    if let Some((k, v)) = tags.iter().next() {
                        push_nested(&mut self.by_inbound_tag, k, v, id);
                    }
                }
            },
            Selector::Services { names, .. } => {
                for name in names {
                    self.by_service.entry(name.clone()).or_default().push(id);
                }
            }
            Selector::Dataplane {
                name: Some(name), ..
            } => {
                self.by_dataplane.entry(name.clone()).or_default().push(id);
            }
            Selector::Dataplane { name: None, labels } => {
                if let Some((k, v)) = labels.iter().next() {
                    push_nested(&mut self.by_dataplane_label, k, v, id);
                }
            }
            Selector::Nothing => {}
        }
    }

    /// Number of policies indexed.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// One [`InboundAuthz`] per `networking.inbound` of `dp`, in order.
    pub fn resolve(&self, mesh: &MeshSpec, dp: &DataplaneRef<'_>) -> Vec<InboundAuthz> {
        self.resolve_with(mesh, dp, |facts, dp_ids, inbound| {
            self.candidates(facts, dp_ids, inbound)
        })
    }

    /// The same answer as [`PolicyIndex::resolve`], checking every policy against every
    /// inbound: the reference the index is tested against, and the benchmark's baseline.
    pub fn resolve_scan(&self, mesh: &MeshSpec, dp: &DataplaneRef<'_>) -> Vec<InboundAuthz> {
        self.resolve_with(mesh, dp, |facts, _, inbound| self.scan(facts, inbound))
    }

    /// Which policies select each inbound of `dp`, and their `from` entries.
    pub fn explain(&self, dp: &DataplaneRef<'_>) -> Vec<MatchedPolicies> {
        let facts = dp.facts();
        let dp_ids = self.dataplane_candidates(&facts);
        dp.inbounds()
            .iter()
            .map(|inbound| MatchedPolicies {
                port: inbound.port,
                name: inbound.name.clone(),
                service: inbound.service().to_owned(),
                policies: self
                    .candidates(&facts, &dp_ids, inbound)
                    .into_iter()
                    .filter_map(|id| self.policy(id))
                    .map(|p| MatchedPolicy {
                        name: p.name.clone(),
                        target_ref: p.target_ref.clone(),
                        from: p
                            .from
                            .iter()
                            .map(|f| MatchedFrom {
                                target_ref: f.target_ref.clone(),
                                action: f.action,
                                callers: f.callers_in(dp.mesh).to_vec(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn resolve_with<F>(
        &self,
        mesh: &MeshSpec,
        dp: &DataplaneRef<'_>,
        select: F,
    ) -> Vec<InboundAuthz>
    where
        F: Fn(&DpFacts<'_>, &[u32], &Inbound) -> Ids,
    {
        let inbounds = dp.inbounds();
        if !mesh.mtls_enabled() {
            // No identities exist, so there is nobody to tell apart: skip matching entirely.
            return inbounds
                .iter()
                .map(|i| InboundAuthz::allow_all(i.port, dp.mesh))
                .collect();
        }
        let facts = dp.facts();
        let dp_ids = self.dataplane_candidates(&facts);
        inbounds
            .iter()
            .map(|inbound| {
                let mut builder = AuthzBuilder::default();
                for policy in select(&facts, &dp_ids, inbound)
                    .into_iter()
                    .filter_map(|id| self.policy(id))
                {
                    for from in &policy.from {
                        let Some(action) = from.action else { continue };
                        for caller in from.callers_in(dp.mesh) {
                            builder.add(&policy.name, action, caller);
                        }
                    }
                }
                builder.finish(inbound.port, dp.mesh)
            })
            .collect()
    }

    fn policy(&self, id: u32) -> Option<&CompiledPolicy> {
        usize::try_from(id).ok().and_then(|i| self.policies.get(i))
    }

    /// Policies keyed on the dataplane itself (name or labels) that select it, before
    /// per-inbound checks: computed once per dataplane, not per inbound.
    fn dataplane_candidates(&self, facts: &DpFacts<'_>) -> Ids {
        let mut ids: Ids = self
            .by_dataplane
            .get(facts.name)
            .cloned()
            .unwrap_or_default();
        for (k, v) in facts.labels {
            if let Some(found) = self
                .by_dataplane_label
                .get(k.as_str())
                .and_then(|m| m.get(v.as_str()))
            {
                ids.extend_from_slice(found);
            }
        }
        ids.retain(|&id| {
            self.policy(id)
                .is_some_and(|p| p.target.selects_dataplane(facts))
        });
        ids
    }

    /// The policies selecting `inbound`, sorted by name.
    fn candidates(&self, facts: &DpFacts<'_>, dp_ids: &[u32], inbound: &Inbound) -> Ids {
        let mut ids: Ids = Vec::with_capacity(self.mesh_wide.len() + dp_ids.len() + 4);
        ids.extend(self.mesh_wide.iter().copied().filter(|&id| {
            self.policy(id)
                .is_some_and(|p| p.target.selects(facts, inbound))
        }));
        // Dataplane-level checks already passed; only sectionName etc. remain.
        ids.extend(dp_ids.iter().copied().filter(|&id| {
            self.policy(id)
                .is_some_and(|p| p.target.selects_inbound(inbound))
        }));
        let keyed = self.by_service.get(inbound.service()).into_iter().chain(
            inbound.tags.iter().filter_map(|(k, v)| {
                self.by_inbound_tag
                    .get(k.as_str())
                    .and_then(|m| m.get(v.as_str()))
            }),
        );
        for found in keyed {
            ids.extend(found.iter().copied().filter(|&id| {
                self.policy(id)
                    .is_some_and(|p| p.target.selects(facts, inbound))
            }));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every policy checked against `inbound`: O(policies).
    fn scan(&self, facts: &DpFacts<'_>, inbound: &Inbound) -> Ids {
        (0u32..)
            .zip(&self.policies)
            .filter(|(_, p)| p.target.selects(facts, inbound))
            .map(|(id, _)| id)
            .collect()
    }
}

fn push_nested(map: &mut HashMap<String, HashMap<String, Ids>>, k: &str, v: &str, id: u32) {
    map.entry(k.to_owned())
        .or_default()
        .entry(v.to_owned())
        .or_default()
        .push(id);
}

fn compile(
    name: &str,
    spec: &MeshTrafficPermissionSpec,
    catalog: &MeshServiceCatalog,
) -> CompiledPolicy {
    let from = spec
        .from
        .iter()
        .flatten()
        .map(|item| {
            let tr = item.target_ref.as_ref();
            CompiledFrom {
                target_ref: item.target_ref.clone(),
                action: item
                    .default
                    .as_ref()
                    .and_then(|d| d.action.as_deref())
                    .and_then(Action::parse),
                callers: compile_caller(tr, catalog),
                mesh: tr.and_then(|t| t.mesh.clone()).filter(|m| !m.is_empty()),
            }
        })
        .collect();
    CompiledPolicy {
        name: name.to_owned(),
        target_ref: spec.target_ref.clone(),
        target: Target::compile(spec.target_ref.as_ref(), catalog),
        from,
    }
}
