//! Which inbounds of a Dataplane a top-level `targetRef` selects
//! (`pkg/plugins/policies/core/matchers/dataplane.go`, `DppSelectedByPolicy`).
//!
//! A policy applies to a Dataplane iff it selects at least one of its inbounds, or the
//! Dataplane is a delegated gateway and the ref selects the gateway. Its `to` entries then
//! apply to all the Dataplane's outbounds; its `from`/`rules` entries to the inbounds it
//! selects.

use super::catalog::{Catalog, Identity, contains_all};
use super::order::{NAMESPACE_LABEL, ORIGIN_LABEL, ZONE_LABEL, role, top_level_kind};
use crate::spec::{DataplaneSpec, Inbound, SERVICE_TAG, Tags, TargetRef};

/// `*` in a tag selector matches any value of the tag.
const MATCH_ALL: &str = "*";

/// Kuma's `TagSelector.Matches`: every selector tag is present with the same value (or the
/// selector says `*`); an empty selector matches everything.
pub(crate) fn tags_match(selector: &Tags, tags: &Tags) -> bool {
    selector
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|have| v == MATCH_ALL || have == v))
}

/// `Sidecar` or `Gateway`, as `proxyTypes` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyType {
    Sidecar,
    Gateway,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Sidecar => "Sidecar",
            ProxyType::Gateway => "Gateway",
        }
    }
}

/// `networking.gateway`: its tags and whether it is `BUILTIN` (else `DELEGATED`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GatewayFacts {
    pub builtin: bool,
    pub tags: Tags,
}

/// The Dataplane facts selection reads, computed once per Dataplane.
#[derive(Debug, Clone)]
pub(crate) struct DpFacts<'a> {
    pub labels: &'a Tags,
    pub identity: Identity,
    pub proxy_type: ProxyType,
    pub gateway: Option<GatewayFacts>,
}

impl<'a> DpFacts<'a> {
    pub fn new(name: &str, labels: &'a Tags, spec: &DataplaneSpec) -> Self {
        let gateway = spec
            .networking
            .as_ref()
            .and_then(|n| n.gateway.as_ref())
            .map(|g| GatewayFacts {
                builtin: g.get("type").and_then(serde_json::Value::as_str) == Some("BUILTIN"),
                tags: g
                    .get("tags")
                    .and_then(serde_json::Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        DpFacts {
            labels,
            identity: Identity::of(name, labels),
            proxy_type: if gateway.is_some() {
                ProxyType::Gateway
            } else {
                ProxyType::Sidecar
            },
            gateway,
        }
    }

    /// Tags of a delegated gateway (what refs select it by); `None` for other proxies.
    pub fn delegated_tags(&self) -> Option<&Tags> {
        self.gateway
            .as_ref()
            .filter(|g| !g.builtin)
            .map(|g| &g.tags)
    }
}

/// The labels-derived facts of a resource holding a targetRef (the policy, or a
/// MeshHTTPRoute it points at), for the zone and namespace checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    producer: bool,
    namespaced_role: bool,
    origin_zone: bool,
    zone: Option<String>,
    namespace: Option<String>,
}

impl Holder {
    pub fn new(labels: &Tags) -> Holder {
        let r = role(labels);
        Holder {
            producer: r == "producer",
            namespaced_role: r == "consumer" || r == "workload-owner",
            origin_zone: labels.get(ORIGIN_LABEL).map(String::as_str) == Some("zone"),
            zone: labels.get(ZONE_LABEL).cloned(),
            namespace: labels.get(NAMESPACE_LABEL).cloned(),
        }
    }

    /// `dppSelectedByZone` and `dppSelectedByNamespace`.
    pub fn admits(&self, dp: &DpFacts<'_>) -> bool {
        self.zone_admits(dp.labels) && self.namespace_admits(dp.labels)
    }

    /// A zone-originated policy (unless it is a producer policy) only reaches proxies of its
    /// own zone; proxies without an origin or synced from global are always reachable.
    fn zone_admits(&self, dp_labels: &Tags) -> bool {
        if self.producer {
            return true;
        }
        let dp_origin = match dp_labels.get(ORIGIN_LABEL) {
            None => return true,
            Some(o) if o == "global" => return true,
            Some(o) => o,
        };
        if !self.origin_zone {
            return true;
        }
        let Some(zone) = &self.zone else { return true };
        // `IsLocalZoneResource`: a zone-origin proxy, of that zone (or without a zone label).
        dp_origin == "zone" && dp_labels.get(ZONE_LABEL).is_none_or(|z| z == zone)
    }

    /// Consumer and workload-owner policies only reach proxies of their own namespace.
    fn namespace_admits(&self, dp_labels: &Tags) -> bool {
        if !self.namespaced_role {
            return true;
        }
        let Some(ns) = &self.namespace else {
            return false;
        };
        dp_labels
            .get(NAMESPACE_LABEL)
            .map(String::as_str)
            .unwrap_or("")
            == ns
    }
}

/// What a top-level targetRef selects, once compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// `Mesh`: every inbound and a delegated gateway, if `proxyTypes` allow.
    Mesh { proxy_types: Option<Vec<String>> },
    /// Inbounds (and a delegated gateway) whose tags match: `MeshSubset` (with
    /// `proxyTypes`), `MeshService` (`kuma.io/service: name`), `MeshServiceSubset`.
    Tags {
        tags: Tags,
        proxy_types: Option<Vec<String>>,
    },
    /// `Dataplane`: the proxies it names or labels (all without either), their inbounds
    /// narrowed by `sectionName`, and a delegated gateway.
    Dataplane {
        all: bool,
        identity: Option<Identity>,
        labels: Option<Tags>,
        section: Option<String>,
    },
    /// An unknown or unsupported kind (MeshGateway: no MeshGateway resources here), or a
    /// MeshHTTPRoute that does not resolve.
    Nothing,
}

/// A compiled top-level targetRef: the holders whose zone/namespace rules must admit the
/// proxy (the policy; for a `MeshHTTPRoute` ref also the route), and the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub holders: Vec<Holder>,
    pub selector: Selector,
}

impl Target {
    pub fn compile(tr: Option<&TargetRef>, labels: &Tags, catalog: &Catalog) -> Target {
        let mut holders = vec![Holder::new(labels)];
        let selector = compile_selector(tr, labels, catalog, &mut holders, 0);
        Target { holders, selector }
    }

    /// Everything that does not depend on the inbound: zone/namespace, `proxyTypes`, and
    /// for `Dataplane` refs the proxy's identity or labels.
    pub fn admits_dataplane(&self, dp: &DpFacts<'_>) -> bool {
        if !self.holders.iter().all(|h| h.admits(dp)) {
            return false;
        }
        match &self.selector {
            Selector::Mesh { proxy_types } | Selector::Tags { proxy_types, .. } => proxy_types
                .as_ref()
                .is_none_or(|p| p.iter().any(|t| t == dp.proxy_type.as_str())),
            Selector::Dataplane {
                all,
                identity,
                labels,
                ..
            } => {
                *all || identity.as_ref().is_some_and(|id| *id == dp.identity)
                    || labels.as_ref().is_some_and(|l| contains_all(dp.labels, l))
            }
            Selector::Nothing => false,
        }
    }

    /// Whether `inbound` is selected, given [`Target::admits_dataplane`].
    pub fn selects_inbound_of_admitted(&self, inbound: &Inbound) -> bool {
        match &self.selector {
            Selector::Mesh { .. } => true,
            Selector::Tags { tags, .. } => tags_match(tags, &inbound.tags),
            Selector::Dataplane { section, .. } => section
                .as_deref()
                .is_none_or(|s| s == inbound_section_name(inbound)),
            Selector::Nothing => false,
        }
    }

    /// Whether an embedded zone-proxy listener (`networking.listeners[]`) whose section name
    /// is `section` is selected, given [`Target::admits_dataplane`]: `Mesh` refs select every
    /// listener, `Dataplane` refs those their `sectionName` names (Kuma's
    /// `embeddedListenersAsInboundListeners` and the `Dataplane` case of
    /// `DppSelectedByPolicy`); tag refs select none.
    pub fn selects_listener_of_admitted(&self, section: &str) -> bool {
        match &self.selector {
            Selector::Mesh { .. } => true,
            Selector::Dataplane { section: s, .. } => s.as_deref().is_none_or(|s| s == section),
            Selector::Tags { .. } | Selector::Nothing => false,
        }
    }

    /// Whether a delegated gateway with these tags is selected, given
    /// [`Target::admits_dataplane`]. (`Dataplane` refs select it whatever the section.)
    pub fn selects_gateway_of_admitted(&self, gateway_tags: &Tags) -> bool {
        match &self.selector {
            Selector::Mesh { .. } | Selector::Dataplane { .. } => true,
            Selector::Tags { tags, .. } => tags_match(tags, gateway_tags),
            Selector::Nothing => false,
        }
    }

    /// The reference semantics the index must agree with.
    pub fn selects_inbound(&self, dp: &DpFacts<'_>, inbound: &Inbound) -> bool {
        self.admits_dataplane(dp) && self.selects_inbound_of_admitted(inbound)
    }

    pub fn selects_gateway(&self, dp: &DpFacts<'_>) -> bool {
        match dp.delegated_tags() {
            Some(tags) => self.admits_dataplane(dp) && self.selects_gateway_of_admitted(tags),
            None => false,
        }
    }
}

fn non_empty(list: Option<&Vec<String>>) -> Option<Vec<String>> {
    list.filter(|p| !p.is_empty()).cloned()
}

fn compile_selector(
    tr: Option<&TargetRef>,
    labels: &Tags,
    catalog: &Catalog,
    holders: &mut Vec<Holder>,
    depth: u8,
) -> Selector {
    let kind = top_level_kind(tr);
    let Some(tr) = tr else {
        return Selector::Mesh { proxy_types: None };
    };
    let service = |name: &Option<String>| {
        Tags::from([(SERVICE_TAG.to_owned(), name.clone().unwrap_or_default())])
    };
    match kind {
        "Mesh" => Selector::Mesh {
            proxy_types: non_empty(tr.proxy_types.as_ref()),
        },
        "MeshSubset" => Selector::Tags {
            tags: tr.tags.clone().unwrap_or_default(),
            proxy_types: non_empty(tr.proxy_types.as_ref()),
        },
        // Kuma ignores `proxyTypes`, `labels` and `sectionName` on these two.
        "MeshService" => Selector::Tags {
            tags: service(&tr.name),
            proxy_types: None,
        },
        "MeshServiceSubset" => {
            let mut tags = service(&tr.name);
            tags.extend(tr.tags.clone().unwrap_or_default());
            Selector::Tags {
                tags,
                proxy_types: None,
            }
        }
        "Dataplane" => {
            let name = tr.name.as_deref().unwrap_or("");
            let namespace = tr.namespace.as_deref().unwrap_or("");
            Selector::Dataplane {
                all: name.is_empty() && namespace.is_empty() && tr.labels.is_none(),
                identity: (!name.is_empty()).then(|| Identity::referenced(tr, labels)),
                labels: tr.labels.clone(),
                section: tr.section_name.clone().filter(|s| !s.is_empty()),
            }
        }
        "MeshHTTPRoute" if depth == 0 => {
            let Some(route) = catalog.route(tr.name.as_deref().unwrap_or("")) else {
                return Selector::Nothing;
            };
            holders.push(Holder::new(&route.labels));
            compile_selector(
                route.target_ref.as_ref(),
                &route.labels,
                catalog,
                holders,
                depth + 1,
            )
        }
        _ => Selector::Nothing,
    }
}

/// Kuma's `Inbound.GetSectionName`: the inbound's name, or its port written out.
pub fn inbound_section_name(inbound: &Inbound) -> String {
    match inbound.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => inbound.port.to_string(),
    }
}
