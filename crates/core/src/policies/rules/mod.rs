//! The targetRef engine: for any policy kind, what applies to each inbound and outbound of
//! a Dataplane, with Kuma 2.14's matching and merging rules. Pure: no I/O, no clock.
//!
//! A policy kind hands its policies over as [`PolicyItem`]s (top-level targetRef, `to[]`,
//! `from[]`, `rules[]`, each `default` as JSON), gets back per inbound and per outbound the
//! contributing entries and their merged conf ([`Merged`]), and decodes that into its own
//! conf type with [`Merged::merged`].
//!
//! # Which policies apply (`select.rs`)
//!
//! Kuma: `pkg/plugins/policies/core/matchers/dataplane.go` (`MatchedPolicies`,
//! `DppSelectedByPolicy`). A top-level targetRef selects inbounds:
//! - missing or `Mesh`: all of them, if `proxyTypes` (empty = all) lists the proxy's type
//!   (`Gateway` when `networking.gateway` is set, else `Sidecar`);
//! - `MeshSubset {tags}`: inbounds whose tags match (`*` matches any value; no tags = all),
//!   `proxyTypes` as above;
//! - `MeshService {name}`: inbounds with `kuma.io/service: name`; `MeshServiceSubset
//!   {name, tags}`: that and the tags. Kuma ignores `labels`, `sectionName` and
//!   `proxyTypes` on both;
//! - `Dataplane`: the proxies it names (by identity: display name, zone, namespace, as
//!   Kuma's KRI), or whose labels contain `labels`, or every proxy when it has neither name,
//!   namespace nor labels; then only the inbound whose section name (its `name`, else its
//!   port written out) is `sectionName`, if given;
//! - `MeshHTTPRoute {name}`: what the route's own top-level targetRef selects;
//! - `MeshGateway`, unknown kinds, a ref without kind: nothing.
//!
//! Before that, a policy from a zone (`kuma.io/origin: zone` + `kuma.io/zone`) only reaches
//! proxies of that zone (unless it is a `producer` policy), and `consumer`/`workload-owner`
//! policies only reach proxies of their `k8s.kuma.io/namespace`. Policies labelled
//! `kuma.io/effect: shadow` are skipped unless [`Options::include_shadow`]. A delegated
//! gateway (`networking.gateway`, type not `BUILTIN`) is selected by `Mesh`, `Dataplane`
//! and tag refs matching its gateway tags. A policy applies to the Dataplane when it selects
//! an inbound or the delegated gateway.
//!
//! # Priority (`order.rs`)
//!
//! Matched policies are sorted lowest priority first and merged in that order, so later
//! ones win each field: top-level kind (`Mesh` < `Dataplane` < `MeshSubset` < `MeshGateway`
//! < `MeshService` < `MeshExternalService` < `MeshMultiZoneService` < `MeshServiceSubset` <
//! `MeshHTTPRoute`); among `Dataplane` refs, `labels` < `name`, no `sectionName` <
//! `sectionName`; origin (`global` < none < `zone`); role (`system` < `producer` <
//! `consumer` < `workload-owner`); then the display name *inverted*, so that of two
//! otherwise equal policies the alphabetically first wins. Kuma:
//! `api/common/v1alpha1/targetref.go`, `api/mesh/v1alpha1/dataplane_helpers.go`,
//! `matchers/dataplane.go` (`SortByTargetRef`), `rules/sort/sort.go`.
//!
//! # Merging (`merge.rs`)
//!
//! `rules/merge/merge.go`: confs are merged with RFC 7386 JSON merge patch (objects merge
//! member by member, everything else — arrays included — is replaced), starting from the
//! lowest-priority conf. `null`s in a conf are dropped first (Kuma decodes confs into
//! structs, where `null` is just "unset"), so a policy cannot unset what another set. Lists
//! under `append*` keys (`appendProfiles`, ...) are concatenated instead of replaced.
//!
//! # Inbounds (`inbound.rs`)
//!
//! `rules/inbound/inboundrules.go`: [`InboundRules::rules`] lists the `rules[]` entries of
//! the policies selecting the inbound (or, for `IsFromAsRules` kinds — [`Options::from_as_rules`]
//! — the `from[]` entries of policies without `rules`, as catch-alls), most specific match
//! first; [`InboundRules::conf`] merges the catch-all ones. [`InboundRules::from_conf`]
//! gives the legacy per-caller view of `from[]` (MeshTrafficPermission, MeshFaultInjection,
//! MeshRateLimit in Kuma read it).
//!
//! # Outbounds (`outbound.rs`)
//!
//! Every `to[]` entry of every policy applying to the Dataplane is considered for every
//! outbound. An outbound with a `kuma.io/service` tag uses Kuma's legacy subset rules
//! (policy order, entries as written); an outbound with a `backendRef` uses resource rules
//! (sorted again by entry kind, `sectionName` first, then the resource's section, the
//! resource, the mesh). See the module for the details; [`Matched`] answers other lookups
//! (a route, the mesh-wide conf of a gateway).
//!
//! # Where Aerie differs from Kuma
//!
//! - `Dataplane {}` sorts below every other `Dataplane` ref (Kuma's pairwise comparison
//!   leaves it unordered against them); exact display-name ties are broken by name.
//! - Legacy from/to rules are evaluated for the one caller or destination asked about
//!   rather than materialised as Kuma's negated subset partition; for an element carrying
//!   tags this is the conf Kuma's rules are built to give. (Kuma's partition has no
//!   catch-all rule once two tag keys are involved, so its mesh-wide lookup can come back
//!   empty; here it is the merge of the `Mesh` entries.) Entries of kinds Kuma cannot turn
//!   into subsets (e.g. `MeshGateway`) are ignored instead of voiding every rule.
//! - No MeshGateway resources: built-in gateways are selected only by `Dataplane` refs
//!   naming an inbound, and there are no gateway listener rules; embedded zone-proxy
//!   `listeners` are not inbounds here. `mergeValuesByKey` (MeshHTTPRoute's rule merging) is
//!   not implemented, and per-route confs of legacy outbounds (`__rule-matches-hash__`) are
//!   not produced: a policy whose top-level ref is a `MeshHTTPRoute` applies to the
//!   Dataplanes the route selects but contributes no outbound conf (as in Kuma's resource
//!   rules); `to[]` entries naming a MeshHTTPRoute are looked up with [`Matched::to_route`].
//! - `targetRef.mesh` is ignored (Kuma reserves it); a Dataplane of another mesh than the
//!   index's gets nothing.
//!
//! # Cost
//!
//! Build one [`RulesIndex`] per mesh and policy kind when policies or the [`Catalog`]
//! change: it compiles the targetRefs, resolves `to[]` entries against the catalog and
//! buckets everything by what it keys on (`index.rs`). Resolving a Dataplane then costs its
//! candidate lookups plus one merge per inbound and outbound; the results share confs with
//! the index. `cargo bench -p aerie-core --bench rules` measures 10,000 Dataplanes.
//!
//! # Example
//!
//! ```
//! use aerie_core::policies::rules::{Catalog, DataplaneView, Entry, Options, PolicyItem, RulesIndex};
//! use aerie_core::spec::{DataplaneSpec, Tags, TargetRef};
//! use serde_json::json;
//!
//! let dp: DataplaneSpec = serde_json::from_value(json!({"networking": {
//!     "address": "10.0.0.1",
//!     "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}],
//!     "outbound": [{"port": 10001, "tags": {"kuma.io/service": "backend"}}]
//! }})).unwrap();
//! let mesh = TargetRef { kind: Some("Mesh".into()), ..TargetRef::default() };
//! let backend = TargetRef { kind: Some("MeshService".into()), name: Some("backend".into()), ..TargetRef::default() };
//! let (wide, narrow) = (json!({"idleTimeout": "1h", "connectionTimeout": "5s"}), json!({"connectionTimeout": "1s"}));
//! let labels = Tags::new();
//! let policies = vec![
//!     PolicyItem { name: "defaults", labels: &labels, target_ref: None,
//!                  to: vec![Entry::new(Some(&mesh), Some(&wide))], from: vec![], rules: vec![] },
//!     PolicyItem { name: "to-backend", labels: &labels, target_ref: None,
//!                  to: vec![Entry::new(Some(&backend), Some(&narrow))], from: vec![], rules: vec![] },
//! ];
//! let index = RulesIndex::new("default", &policies, Catalog::default(), Options::default());
//! let view = DataplaneView { mesh: "default", name: "web-1", labels: &labels, spec: &dp };
//! let rules = index.resolve(&view);
//! let out = &rules.outbounds[0].merged;
//! // A tag-addressed outbound merges whole policies in priority order. Both are mesh-wide,
//! // so the inverted name decides: "defaults" merges last and its connectionTimeout wins.
//! assert_eq!(out.policies(), ["to-backend", "defaults"]);
//! assert_eq!(out.conf, Some(json!({"idleTimeout": "1h", "connectionTimeout": "5s"})));
//! ```

mod catalog;
mod inbound;
mod index;
mod merge;
mod order;
mod outbound;
mod select;
mod single;
mod source;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use catalog::{Catalog, CatalogResource, Port, ResourceKind};
pub use index::RulesIndex;
pub use merge::{merge_confs, merge_patch, strip_nulls};
pub use order::{
    DISPLAY_NAME_LABEL, EFFECT_LABEL, NAMESPACE_LABEL, ORIGIN_LABEL, ROLE_LABEL, ZONE_LABEL,
};
pub use select::{ProxyType, inbound_section_name};
pub use single::{SingleItem, SingleItemRules};
pub(crate) use source::rules_source;
pub use source::{RulesSource, build_index, conf_json, explain_json};
pub use types::{
    DataplaneRules, DataplaneView, Entry, FromEntry, InboundRule, InboundRules, Merged, Options,
    Origin, OutboundRules, OutboundTarget, PolicyItem, ResourceRef, RuleItem,
};

use crate::spec::{Inbound, Tags};
use std::cell::OnceCell;

use catalog::Identity;
use index::Id;
use outbound::{Slot, ToView, Uri};

/// The policies applying to one Dataplane, for lookups beyond its own inbounds and
/// outbounds.
#[derive(Debug, Clone)]
pub struct Matched<'i, 'd> {
    index: &'i RulesIndex,
    inbounds: &'d [Inbound],
    /// Every policy applying to the Dataplane, lowest priority first.
    policies: Vec<Id>,
    /// Per `networking.inbound`, the policies selecting it.
    by_inbound: Vec<Vec<Id>>,
    /// Their `to[]` entries indexed, built on first use.
    to: OnceCell<ToView<'i>>,
}

impl RulesIndex {
    /// Which policies apply to `dp`, and to which of its inbounds.
    pub fn matched<'i, 'd>(&'i self, dp: &DataplaneView<'d>) -> Matched<'i, 'd> {
        let inbounds: &'d [Inbound] = dp
            .spec
            .networking
            .as_ref()
            .map(|n| n.inbound.as_slice())
            .unwrap_or_default();
        if dp.mesh != self.mesh {
            return Matched {
                index: self,
                inbounds,
                policies: Vec::new(),
                by_inbound: vec![Vec::new(); inbounds.len()],
                to: OnceCell::new(),
            };
        }
        let facts = self.facts(dp);
        let dp_ids = self.dataplane_candidates(&facts);
        let by_inbound: Vec<Vec<Id>> = inbounds
            .iter()
            .map(|inbound| self.inbound_ids(&facts, &dp_ids, inbound))
            .collect();
        let mut policies: Vec<Id> = by_inbound.iter().flatten().copied().collect();
        policies.extend(self.gateway_ids(&facts, &dp_ids));
        policies.sort_unstable();
        policies.dedup();
        Matched {
            index: self,
            inbounds,
            policies,
            by_inbound,
            to: OnceCell::new(),
        }
    }

    /// The rules MeshHTTPRoutes have of their own on `dp`, per `(route, service)`:
    /// `service` `None` for an outbound with a `backendRef` (a `to[]` entry naming the
    /// route: [`Matched::route_rule`]), `Some` for one addressed by `kuma.io/service` tags
    /// (top-level `MeshHTTPRoute` policies: [`Matched::legacy_route_rule`]). `None`: the
    /// route has none; nothing is matched when no policy names a route.
    pub fn route_rules(
        &self,
        dp: &DataplaneView<'_>,
        routes: &[(&str, Option<&str>)],
    ) -> Vec<Option<Merged>> {
        if !self.names_routes() {
            return vec![None; routes.len()];
        }
        let matched = self.matched(dp);
        routes
            .iter()
            .map(|(route, service)| match service {
                None => matched.route_rule(route),
                Some(s) => matched.legacy_route_rule(route, s),
            })
            .collect()
    }

    /// Everything this policy kind sets on `dp`: per inbound and per outbound.
    pub fn resolve(&self, dp: &DataplaneView<'_>) -> DataplaneRules {
        let matched = self.matched(dp);
        let outbounds = dp
            .spec
            .networking
            .as_ref()
            .map(|n| n.outbound.as_slice())
            .unwrap_or_default();
        let to = matched.to_view();
        DataplaneRules {
            policies: matched.policies().into_iter().map(str::to_owned).collect(),
            inbounds: (0..matched.inbounds.len())
                .filter_map(|i| matched.inbound(i))
                .collect(),
            outbounds: outbounds.iter().map(|o| to.outbound(o)).collect(),
        }
    }

    /// What applies to an embedded zone-proxy listener of `dp` (`networking.listeners[]`)
    /// with this port and section name (its name, else its port written out). Kuma selects
    /// listeners like inbounds with `Mesh` and `Dataplane` refs; Aerie's proxy config does
    /// not treat them as inbounds, so this serves inspection.
    pub fn listener(&self, dp: &DataplaneView<'_>, port: u32, section: &str) -> InboundRules {
        let listener = Inbound {
            port,
            name: Some(section.to_owned()),
            ..Inbound::default()
        };
        if dp.mesh != self.mesh {
            return inbound::inbound_rules(self, &listener, &[]);
        }
        let facts = self.facts(dp);
        let dp_ids = self.dataplane_candidates(&facts);
        let ids = self.listener_ids(&facts, &dp_ids, section);
        inbound::inbound_rules(self, &listener, &ids)
    }

    /// The section name of `port` on a catalog resource (its port name, else the number),
    /// for building a [`ResourceRef`].
    pub fn section_for_port(&self, kind: ResourceKind, name: &str, port: u32) -> Option<String> {
        let r = self.catalog.get(self.resource_by_name(kind, name)?)?;
        r.ports
            .iter()
            .find(|p| p.port == port)
            .map(Port::section_name)
    }
}

impl<'i> Matched<'i, '_> {
    fn to_view(&self) -> &ToView<'i> {
        self.to
            .get_or_init(|| ToView::new(self.index, &self.policies))
    }

    /// Policies applying to the Dataplane, lowest priority first.
    pub fn policies(&self) -> Vec<&'i str> {
        let index = self.index;
        self.policies
            .iter()
            .filter_map(|&id| index.policy(id))
            .map(|p| &*p.name)
            .collect()
    }

    /// What applies to `networking.inbound[i]`.
    pub fn inbound(&self, i: usize) -> Option<InboundRules> {
        let inbound = self.inbounds.get(i)?;
        let ids = self.by_inbound.get(i)?;
        Some(inbound::inbound_rules(self.index, inbound, ids))
    }

    /// The legacy outbound conf for a `kuma.io/service`.
    pub fn to_service(&self, service: &str) -> Merged {
        self.to_element(&Tags::from([(
            crate::spec::SERVICE_TAG.to_owned(),
            service.to_owned(),
        )]))
    }

    /// The legacy outbound conf for destinations carrying `element`'s tags; the empty
    /// element gives the mesh-wide conf (what Kuma applies to a gateway's routes).
    pub fn to_element(&self, element: &Tags) -> Merged {
        self.to_view().element(element)
    }

    /// The resource-rule conf of a resource (section): the section's rule, else the
    /// resource's, else the mesh's.
    pub fn to_resource(&self, r: &ResourceRef) -> Merged {
        self.to_view().resource(r)
    }

    /// The resource-rule conf of a destination named by identity, as a KRI names it
    /// (display name, `kuma.io/zone`, `k8s.kuma.io/namespace`, and a section: a port name or
    /// number, empty for the whole resource): the section's rule, else the resource's, else
    /// the mesh's (Kuma's `ResourceContext` rooted at the mesh). A destination the catalog
    /// does not hold gets the mesh's.
    pub fn to_identified(
        &self,
        kind: ResourceKind,
        name: &str,
        zone: &str,
        namespace: &str,
        section: &str,
    ) -> Merged {
        let identity = Identity {
            name: name.to_owned(),
            zone: zone.to_owned(),
            namespace: namespace.to_owned(),
        };
        let found = self.index.catalog.by_identity(kind, &identity);
        let uri = |section: Option<String>| {
            found.map(|i| Uri {
                slot: Slot::Resource(i),
                section,
            })
        };
        let exact = uri((!section.is_empty()).then(|| section.to_owned()));
        self.to_view().chain(&[exact, uri(None)])
    }

    /// The mesh's resource rule: what every `Mesh` `to[]` entry of the applying policies
    /// merges to.
    pub fn to_mesh(&self) -> Merged {
        self.to_view().chain(&[])
    }

    /// A MeshHTTPRoute's own rule (`to[]` entries naming it, with the `Mesh` entries under
    /// them): what its routes get instead of their outbound's conf. `None`: no applying
    /// entry names the route, its routes keep the outbound's conf.
    pub fn route_rule(&self, route: &str) -> Option<Merged> {
        self.to_view().own_rule(&ResourceRef {
            kind: ResourceKind::MeshHTTPRoute,
            name: route.to_owned(),
            section: None,
        })
    }

    /// A MeshHTTPRoute's rule on an outbound addressed by `kuma.io/service` tags to
    /// `service`: what top-level `MeshHTTPRoute` policies naming it add to the service's
    /// legacy conf. `None`: none applies.
    pub fn legacy_route_rule(&self, route: &str, service: &str) -> Option<Merged> {
        self.to_view().route_element(
            route,
            &Tags::from([(crate::spec::SERVICE_TAG.to_owned(), service.to_owned())]),
        )
    }

    /// The conf of a MeshHTTPRoute's routes towards `parent`: the route's rule, else
    /// `parent`'s chain (as Kuma's plugins nest `ResourceContext`s).
    pub fn to_route(&self, route: &str, parent: Option<&ResourceRef>) -> Merged {
        let view = self.to_view();
        let route_uri = view.uri(&ResourceRef {
            kind: ResourceKind::MeshHTTPRoute,
            name: route.to_owned(),
            section: None,
        });
        let exact = parent.and_then(|p| view.uri(p));
        let whole = exact.as_ref().map(|u| Uri {
            slot: u.slot.clone(),
            section: None,
        });
        view.chain(&[route_uri, exact, whole])
    }
}

/// One-shot resolution of one Dataplane against one kind's policies. For many Dataplanes,
/// build a [`RulesIndex`] per mesh once and call [`RulesIndex::resolve`].
pub fn resolve(
    mesh: &str,
    policies: &[PolicyItem<'_>],
    catalog: Catalog,
    options: Options,
    dp: &DataplaneView<'_>,
) -> DataplaneRules {
    RulesIndex::new(mesh, policies, catalog, options).resolve(dp)
}
