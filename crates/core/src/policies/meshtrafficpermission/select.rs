//! Compiling `targetRef`s: the top-level one into an inbound selector, `from[].targetRef`
//! into caller matchers.
//!
//! Everything here is *fail closed*: a reference this module does not understand (unknown
//! kind, missing required name, another mesh, MeshService labels that match no MeshService)
//! selects no inbound and matches no caller. Under "Allow wins" that can only ever remove
//! access an Allow would have granted, never grant access by accident. Validation refuses such
//! documents anyway; this only matters for data that slipped past it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{DataplaneSpec, Inbound, SERVICE_TAG, Tags, TargetRef};

/// A `from[].default.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
    AllowWithShadowDeny,
}

impl Action {
    /// Parses Kuma's spelling; anything else is `None` (and grants nothing).
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "Allow" => Some(Action::Allow),
            "Deny" => Some(Action::Deny),
            "AllowWithShadowDeny" => Some(Action::AllowWithShadowDeny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::AllowWithShadowDeny => "AllowWithShadowDeny",
        }
    }

    /// Whether the action lets the caller in (possibly with a shadow deny).
    pub fn grants(self) -> bool {
        !matches!(self, Action::Deny)
    }
}

/// One condition on a caller, compiled from a `from[].targetRef`.
///
/// Ordered (derive) so rule lists built from it are sorted and deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CallerMatcher {
    /// Any identity of the mesh (`kind: Mesh`, or a `MeshSubset` without tags).
    AnyInMesh,
    /// An identity carrying `spiffe://<mesh>/<name>`.
    Service { name: String },
    /// An identity holding every service in `services` and every `tags` pair. Tags never
    /// contain `kuma.io/service`: that is moved into `services` at compile time.
    Subset {
        services: Vec<String>,
        tags: Vec<(String, String)>,
    },
}

/// MeshService names and labels, for MeshService `targetRef`s that select by `labels`.
///
/// Kuma resolves `{kind: MeshService, labels: {...}}` to the MeshService *resources* whose
/// labels match, then to their workloads. On Universal a MeshService is named after the
/// `kuma.io/service` it groups, so a label reference resolves here to a set of service names,
/// once, when the [`super::PolicyIndex`] is built. An empty catalog makes such references
/// select nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshServiceCatalog {
    services: Vec<(String, Tags)>,
}

impl MeshServiceCatalog {
    pub fn new<I, S>(services: I) -> Self
    where
        I: IntoIterator<Item = (S, Tags)>,
        S: Into<String>,
    {
        let mut services: Vec<(String, Tags)> =
            services.into_iter().map(|(n, l)| (n.into(), l)).collect();
        services.sort();
        services.dedup_by(|a, b| a.0 == b.0);
        MeshServiceCatalog { services }
    }

    /// Names of the MeshServices whose labels contain all of `labels`, sorted.
    pub fn names_matching(&self, labels: &Tags) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, l)| contains_all(l, labels))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// What a top-level `targetRef` selects, before `sectionName`/`proxyTypes`/`mesh` narrowing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Every inbound: `Mesh`, a missing targetRef, `MeshSubset` without tags, `Dataplane {}`.
    All,
    /// Inbounds whose tags contain all of these (`kuma.io/service` included, if given).
    InboundTags(Tags),
    /// Inbounds whose service is one of these (sorted); optionally also carrying `tags`.
    Services { names: Vec<String>, tags: Tags },
    /// Dataplanes with this name (if given) and these labels.
    Dataplane { name: Option<String>, labels: Tags },
    /// Nothing (unknown kind, missing name, unresolvable labels).
    Nothing,
}

/// A compiled top-level `targetRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub selector: Selector,
    /// Only the inbound whose name (or port, as a string) equals this.
    pub section: Option<String>,
    /// `proxyTypes`; `None` = all types.
    pub proxy_types: Option<Vec<String>>,
    /// `targetRef.mesh`: set and different from the resolved mesh means nothing is selected.
    pub mesh: Option<String>,
}

/// The dataplane facts selection looks at, computed once per dataplane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DpFacts<'a> {
    pub mesh: &'a str,
    pub name: &'a str,
    pub labels: &'a Tags,
    pub proxy_type: &'static str,
}

/// `Gateway` when the Dataplane declares a gateway, else `Sidecar` (Kuma's `proxyTypes`).
pub(crate) fn proxy_type(dp: &DataplaneSpec) -> &'static str {
    match dp.networking.as_ref().and_then(|n| n.gateway.as_ref()) {
        Some(_) => "Gateway",
        None => "Sidecar",
    }
}

impl Target {
    /// Compiles a top-level targetRef (`None` = the whole mesh).
    pub fn compile(tr: Option<&TargetRef>, catalog: &MeshServiceCatalog) -> Target {
        let Some(tr) = tr else {
            return Target {
                selector: Selector::All,
                section: None,
                proxy_types: None,
                mesh: None,
            };
        };
        let tags = tr.tags.clone().unwrap_or_default();
        let selector = match tr.kind.as_deref() {
            Some("Mesh") => Selector::All,
            Some("MeshSubset") if tags.is_empty() => Selector::All,
            Some("MeshSubset") => Selector::InboundTags(tags),
            Some("MeshService") => {
                let mut names = match (&tr.name, &tr.labels) {
                    (Some(name), None) => vec![name.clone()],
                    (name, Some(labels)) => {
                        let mut names = catalog.names_matching(labels);
                        // Both given: the named service must also carry the labels.
                        if let Some(name) = name {
                            names.retain(|n| n == name);
                        }
                        names
                    }
                    (None, None) => Vec::new(),
                };
                names.retain(|n| !n.is_empty());
                if names.is_empty() {
                    Selector::Nothing
                } else {
                    Selector::Services {
                        names,
                        tags: Tags::new(),
                    }
                }
            }
            Some("MeshServiceSubset") => match tr.name.as_deref() {
                Some(name) if !name.is_empty() => Selector::Services {
                    names: vec![name.to_owned()],
                    tags,
                },
                _ => Selector::Nothing,
            },
            Some("Dataplane") => {
                let name = tr.name.clone();
                let labels = tr.labels.clone().unwrap_or_default();
                if name.is_none() && labels.is_empty() {
                    Selector::All
                } else {
                    Selector::Dataplane { name, labels }
                }
            }
            _ => Selector::Nothing,
        };
        Target {
            selector,
            section: tr.section_name.clone(),
            proxy_types: tr.proxy_types.clone().filter(|p| !p.is_empty()),
            mesh: tr.mesh.clone().filter(|m| !m.is_empty()),
        }
    }

    /// Whether the dataplane as a whole can be selected (everything but per-inbound checks).
    pub fn selects_dataplane(&self, dp: &DpFacts<'_>) -> bool {
        if self.mesh.as_deref().is_some_and(|m| m != dp.mesh) {
            return false;
        }
        if self
            .proxy_types
            .as_ref()
            .is_some_and(|p| !p.iter().any(|t| t == dp.proxy_type))
        {
            return false;
        }
        match &self.selector {
            Selector::Dataplane { name, labels } => {
                name.as_deref().is_none_or(|n| n == dp.name) && contains_all(dp.labels, labels)
            }
            Selector::Nothing => false,
            _ => true,
        }
    }

    /// Whether `inbound` of a dataplane accepted by [`Target::selects_dataplane`] is selected.
    pub fn selects_inbound(&self, inbound: &Inbound) -> bool {
        if let Some(section) = &self.section
            && !section_matches(section, inbound)
        {
            return false;
        }
        match &self.selector {
            Selector::All | Selector::Dataplane { .. } => true,
            Selector::InboundTags(tags) => contains_all(&inbound.tags, tags),
            Selector::Services { names, tags } => {
                names
                    .binary_search_by(|n| n.as_str().cmp(inbound.service()))
                    .is_ok()
                    && contains_all(&inbound.tags, tags)
            }
            Selector::Nothing => false,
        }
    }

    /// Both checks: the reference semantics the index must agree with.
    pub fn selects(&self, dp: &DpFacts<'_>, inbound: &Inbound) -> bool {
        self.selects_dataplane(dp) && self.selects_inbound(inbound)
    }
}

/// `sectionName` names an inbound by its `name`, or by its port written as a number.
fn section_matches(section: &str, inbound: &Inbound) -> bool {
    inbound.name.as_deref() == Some(section)
        || section.parse::<u32>().is_ok_and(|p| p == inbound.port)
}

/// Whether `have` contains every key/value of `want` (an empty `want` always matches).
pub(crate) fn contains_all(have: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Compiles a `from[].targetRef` into the caller conditions it stands for (any one suffices;
/// empty = nobody). Several only for MeshService `labels`, which may name several services.
pub(crate) fn compile_caller(
    tr: Option<&TargetRef>,
    catalog: &MeshServiceCatalog,
) -> Vec<CallerMatcher> {
    // A missing from-targetRef is invalid in Kuma; matching nobody is the safe reading.
    let Some(tr) = tr else { return Vec::new() };
    let tags = tr.tags.as_ref();
    match tr.kind.as_deref() {
        Some("Mesh") => vec![CallerMatcher::AnyInMesh],
        Some("MeshSubset") => subset(Vec::new(), tags),
        Some("MeshService") => {
            let mut names = match (&tr.name, &tr.labels) {
                (Some(name), None) => vec![name.clone()],
                (name, Some(labels)) => {
                    let mut names = catalog.names_matching(labels);
                    if let Some(name) = name {
                        names.retain(|n| n == name);
                    }
                    names
                }
                (None, None) => Vec::new(),
            };
            names.retain(|n| !n.is_empty());
            names
                .into_iter()
                .map(|name| CallerMatcher::Service { name })
                .collect()
        }
        Some("MeshServiceSubset") => match tr.name.as_deref() {
            Some(name) if !name.is_empty() => subset(vec![name.to_owned()], tags),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Builds the simplest matcher for "these services and these tags".
fn subset(
    mut services: Vec<String>,
    tags: Option<&BTreeMap<String, String>>,
) -> Vec<CallerMatcher> {
    let mut pairs = Vec::new();
    for (k, v) in tags.into_iter().flatten() {
        if k == SERVICE_TAG {
            services.push(v.clone());
        } else {
            pairs.push((k.clone(), v.clone()));
        }
    }
    services.sort();
    services.dedup();
    let matcher = match (services.as_slice(), pairs.is_empty()) {
        ([], true) => CallerMatcher::AnyInMesh,
        ([name], true) => CallerMatcher::Service { name: name.clone() },
        _ => CallerMatcher::Subset {
            services,
            tags: pairs,
        },
    };
    vec![matcher]
}
