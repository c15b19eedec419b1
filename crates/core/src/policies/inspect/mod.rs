//! Kuma 2.14's policy inspection answers for one Dataplane, computed with the targetRef
//! engine ([`super::rules`]): what `GET /meshes/{mesh}/dataplanes/{name}/_inbounds/{kri}/_policies`,
//! `.../_outbounds/{kri}/_policies`, `.../policies` and `.../_layout` answer
//! (`pkg/api-server/resource_endpoints.go`, `inspect_endpoints.go`,
//! `dataplane_layout_endpoint.go`). Pure: the control plane reads the mesh and hands its
//! policies, MeshServices and the Dataplane over.
//!
//! Every policy kind takes part that the engine can merge: MeshTrafficPermission,
//! MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshFaultInjection, MeshRateLimit,
//! MeshHealthCheck, MeshLoadBalancingStrategy and MeshTCPRoute. A MeshHTTPRoute selects
//! proxies (it is listed by `.../policies`) but contributes no outbound conf: Kuma merges its
//! rules by matches and host names, which the engine does not.
//!
//! A conf is written the way Kuma writes one it decoded into its Go types: in the conf
//! type's field order, durations as Go prints them (`60s` -> `1m0s`).
//!
//! Kuma's proxy-level answer (`.../_policies`) lists the single-item policies (a top-level
//! `default`) selecting the proxy, merged: of Kuma's four such kinds Aerie has MeshMetric and
//! MeshTrace (not MeshProxyPatch, MeshPassthrough) ([`MeshInspector::proxy_policies`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::rules::{
    Catalog, InboundRules, Merged, Options, ResourceKind, RulesIndex, RulesSource, SingleItem,
    build_index, conf_json, inbound_section_name, merge_confs,
};
use super::{
    meshaccesslog, meshcircuitbreaker, meshfaultinjection, meshhealthcheck,
    meshloadbalancingstrategy, meshmetric, meshratelimit, meshretry, meshtcproute, meshtimeout,
    meshtrace,
};
use crate::duration::in_go_form;
use crate::kri::Kri;
use crate::resource::{Resource, ResourceType, Spec};
use crate::spec::{DataplaneSpec, PROTOCOL_TAG, Tags};

pub use super::rules::DataplaneView;

/// One policy kind of a mesh, indexed.
struct Kind {
    rtype: ResourceType,
    index: RulesIndex,
    /// Policy name -> its KRI, written out.
    kris: HashMap<String, String>,
    /// Policy name -> its REST metadata (`type, mesh, name, creationTime,
    /// modificationTime, labels, kri`), as `.../policies` lists it.
    metas: HashMap<String, Value>,
    /// A single-item kind's `default` of each policy, by name (`None`: not single-item).
    defaults: Option<HashMap<String, Value>>,
}

impl Kind {
    fn kri(&self, policy: &str) -> String {
        self.kris.get(policy).cloned().unwrap_or_default()
    }

    /// The KRIs of `names`, each once, in first-seen order.
    fn origins<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
        let mut seen: Vec<&str> = Vec::new();
        for n in names {
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen.into_iter()
            .map(|n| json!({ "kri": self.kri(n) }))
            .collect()
    }
}

/// A mesh's policies of every kind, indexed for inspecting its Dataplanes.
pub struct MeshInspector {
    /// In Kuma's plugin order (`kuma:policy:order`): the order of the answers' `policies`.
    kinds: Vec<Kind>,
}

impl MeshInspector {
    /// `policies`: the mesh's policies (other resources are ignored); `catalog`: its
    /// MeshServices, as the proxies' configs are built with.
    pub fn new(mesh: &str, policies: &[Resource], catalog: &Catalog) -> MeshInspector {
        let mut types: Vec<ResourceType> = ResourceType::ALL
            .into_iter()
            .filter(|t| t.is_policy())
            .collect();
        types.sort_by_key(|t| t.descriptor().policy_order);
        let kinds = types
            .into_iter()
            .filter_map(|rtype| {
                let of_kind: Vec<&Resource> = policies
                    .iter()
                    .filter(|r| r.resource_type() == rtype)
                    .collect();
                let index = index_of(rtype, mesh, &of_kind, catalog.clone())?;
                let kris = of_kind
                    .iter()
                    .map(|r| {
                        let kri = Kri::for_resource(r).map(|k| k.to_string());
                        (r.name().to_owned(), kri.unwrap_or_default())
                    })
                    .collect();
                let metas = of_kind
                    .iter()
                    .map(|r| (r.name().to_owned(), rest_meta(r)))
                    .collect();
                let defaults = rtype.descriptor().policy_form.is_single_item().then(|| {
                    of_kind
                        .iter()
                        .filter_map(|r| Some((r.name().to_owned(), single_default(&r.spec)?)))
                        .collect()
                });
                Some(Kind {
                    rtype,
                    index,
                    kris,
                    metas,
                    defaults,
                })
            })
            .collect();
        MeshInspector { kinds }
    }

    /// Kuma's `PoliciesList` for `GET .../dataplanes/{name}/_policies`: per single-item
    /// kind, the `default`s of the policies selecting `dp` merged in priority order, and
    /// those policies (lowest priority first, as Kuma lists them).
    pub fn proxy_policies(&self, dp: &DataplaneView<'_>) -> Value {
        let mut policies = Vec::new();
        for kind in &self.kinds {
            let Some(defaults) = &kind.defaults else {
                continue;
            };
            let names = kind.index.matched(dp).policies();
            if names.is_empty() {
                continue;
            }
            let confs = names
                .iter()
                .filter_map(|n| defaults.get(*n))
                .filter(|c| !c.is_null());
            let conf = merge_confs(confs).map_or_else(|| json!({}), |c| kuma_conf(kind.rtype, &c));
            policies.push(json!({
                "conf": conf,
                "kind": kind.rtype.name(),
                "origins": kind.origins(names.iter().copied()),
            }));
        }
        json!({ "policies": policies })
    }

    /// Kuma's `InboundPoliciesList` for the inbound of `dp` whose section name (its name,
    /// else its port) is `section`, or else its embedded zone-proxy listener of that name;
    /// an empty `section` means the first inbound (Kuma's `InboundsSelectedBySectionName`).
    /// `None` when there is no such inbound or listener.
    pub fn inbound_policies(&self, dp: &DataplaneView<'_>, section: &str) -> Option<Value> {
        let networking = dp.spec.networking.as_ref();
        let inbounds = networking.map(|n| n.inbound.as_slice()).unwrap_or_default();
        let target = match inbounds
            .iter()
            .position(|i| section.is_empty() || inbound_section_name(i) == section)
        {
            Some(i) => Target::Inbound(i),
            None => {
                let (port, name) = listeners(dp.spec)
                    .into_iter()
                    .find(|l| section.is_empty() || l.section == section)
                    .map(|l| (l.port, l.section))?;
                Target::Listener(port, name)
            }
        };
        let mut policies = Vec::new();
        for kind in &self.kinds {
            let rules: Option<InboundRules> = match &target {
                Target::Inbound(i) => kind.index.matched(dp).inbound(*i),
                Target::Listener(port, name) => Some(kind.index.listener(dp, *port, name)),
            };
            let Some(rules) = rules.filter(|r| !r.rules.is_empty()) else {
                continue;
            };
            let entries: Vec<Value> = rules
                .rules
                .iter()
                .map(|r| {
                    json!({
                        "conf": kuma_conf(kind.rtype, &r.conf),
                        "kri": kind.kri(&r.origin.policy),
                    })
                })
                .collect();
            policies.push(json!({
                "kind": kind.rtype.name(),
                "origins": kind.origins(rules.rules.iter().map(|r| &*r.origin.policy)),
                "rules": entries,
            }));
        }
        Some(json!({ "policies": policies }))
    }

    /// Kuma's `PoliciesList` for the outbound `kri` names: per kind, the resource rule of
    /// the destination's section, else of the destination, else of the mesh (a destination
    /// this mesh does not hold gets the mesh's); kinds without one are left out.
    pub fn outbound_policies(&self, dp: &DataplaneView<'_>, kri: &Kri) -> Value {
        let kind_of_kri = match kri.rtype {
            ResourceType::MeshService => Some(ResourceKind::MeshService),
            ResourceType::MeshHTTPRoute => Some(ResourceKind::MeshHTTPRoute),
            _ => None,
        }
        .filter(|_| kri.mesh == dp.mesh);
        let mut policies = Vec::new();
        for kind in &self.kinds {
            let matched = kind.index.matched(dp);
            let merged: Merged = match kind_of_kri {
                Some(k) => {
                    matched.to_identified(k, &kri.name, &kri.zone, &kri.namespace, &kri.section)
                }
                None => matched.to_mesh(),
            };
            if merged.origins.is_empty() {
                continue;
            }
            let conf = merged.conf.as_ref().map(|c| kuma_conf(kind.rtype, c));
            policies.push(json!({
                "conf": [conf.unwrap_or_else(|| json!({}))],
                "kind": kind.rtype.name(),
                "origins": kind.origins(merged.origins.iter().map(|o| &*o.policy)),
            }));
        }
        json!({ "policies": policies })
    }

    /// Kuma's `DataplaneInspectEntryList` (`GET .../dataplanes/{name}/policies`, what
    /// `kumactl inspect dataplane --type=policies` prints): one `dataplane` attachment
    /// listing, per kind, the policies applying to the proxy, lowest priority first. Kuma's
    /// other attachments (inbound, outbound, service) come from its pre-targetRef policy
    /// types, which Aerie does not have.
    pub fn matched_policies(&self, dp: &DataplaneView<'_>) -> Value {
        let mut by_type: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for kind in &self.kinds {
            let names = kind.index.matched(dp).policies();
            if names.is_empty() {
                continue;
            }
            by_type.insert(
                kind.rtype.name(),
                names
                    .iter()
                    .filter_map(|n| kind.metas.get(*n).cloned())
                    .collect(),
            );
        }
        let items: Vec<Value> = if by_type.is_empty() {
            Vec::new()
        } else {
            vec![json!({ "type": "dataplane", "matchedPolicies": by_type })]
        };
        json!({ "kind": "SidecarDataplane", "total": items.len(), "items": items })
    }
}

enum Target {
    /// `networking.inbound[i]`.
    Inbound(usize),
    /// An embedded listener: its port and section name.
    Listener(u32, String),
}

/// One policy kind's index, if the engine can read the kind.
fn index_of(
    rtype: ResourceType,
    mesh: &str,
    policies: &[&Resource],
    catalog: Catalog,
) -> Option<RulesIndex> {
    let options = Options {
        from_as_rules: rtype.descriptor().policy_form.from_as_rules,
        include_shadow: false,
    };
    fn build<S: RulesSource>(
        mesh: &str,
        policies: &[&Resource],
        pick: fn(&Spec) -> Option<&S>,
        catalog: Catalog,
        options: Options,
    ) -> RulesIndex {
        let items: Vec<(&str, &Tags, &S)> = policies
            .iter()
            .filter_map(|r| pick(&r.spec).map(|s| (r.name(), &r.meta.labels, s)))
            .collect();
        build_index(mesh, &items, catalog, options)
    }
    macro_rules! kind {
        ($variant:ident) => {
            build(
                mesh,
                policies,
                |s| match s {
                    Spec::$variant(s) => Some(s),
                    _ => None,
                },
                catalog,
                options,
            )
        };
    }
    Some(match rtype {
        ResourceType::MeshTrafficPermission => kind!(MeshTrafficPermission),
        ResourceType::MeshTimeout => kind!(MeshTimeout),
        ResourceType::MeshCircuitBreaker => kind!(MeshCircuitBreaker),
        ResourceType::MeshRetry => kind!(MeshRetry),
        ResourceType::MeshTCPRoute => kind!(MeshTCPRoute),
        ResourceType::MeshHTTPRoute => kind!(MeshHTTPRoute),
        ResourceType::MeshFaultInjection => kind!(MeshFaultInjection),
        ResourceType::MeshRateLimit => kind!(MeshRateLimit),
        ResourceType::MeshHealthCheck => kind!(MeshHealthCheck),
        ResourceType::MeshLoadBalancingStrategy => kind!(MeshLoadBalancingStrategy),
        ResourceType::MeshAccessLog => kind!(MeshAccessLog),
        ResourceType::MeshMetric => kind!(MeshMetric),
        ResourceType::MeshTrace => kind!(MeshTrace),
        ResourceType::Mesh
        | ResourceType::Dataplane
        | ResourceType::MeshService
        | ResourceType::Secret
        | ResourceType::GlobalSecret
        | ResourceType::Zone
        | ResourceType::ZoneIngress => return None,
    })
}

/// A single-item policy's `default`, as JSON.
fn single_default(spec: &Spec) -> Option<Value> {
    match spec {
        Spec::MeshMetric(s) => Some(s.default_json()),
        Spec::MeshTrace(s) => Some(s.default_json()),
        _ => None,
    }
}

/// A conf as Kuma writes it after decoding it into its Go type: the type's field order,
/// durations in Go's form. A conf that does not decode (it cannot: every input was a
/// validated conf) is kept as it is.
pub fn kuma_conf(rtype: ResourceType, conf: &Value) -> Value {
    fn typed<T: DeserializeOwned + Serialize>(conf: &Value) -> Value {
        match serde_json::from_value::<T>(conf.clone()) {
            Ok(t) => in_go_form(|| conf_json(&t)),
            Err(_) => conf.clone(),
        }
    }
    match rtype {
        ResourceType::MeshTimeout => typed::<meshtimeout::Conf>(conf),
        ResourceType::MeshRetry => typed::<meshretry::Conf>(conf),
        ResourceType::MeshCircuitBreaker => typed::<meshcircuitbreaker::Conf>(conf),
        ResourceType::MeshFaultInjection => typed::<meshfaultinjection::Conf>(conf),
        ResourceType::MeshRateLimit => typed::<meshratelimit::Conf>(conf),
        ResourceType::MeshHealthCheck => typed::<meshhealthcheck::Conf>(conf),
        ResourceType::MeshLoadBalancingStrategy => typed::<meshloadbalancingstrategy::Conf>(conf),
        ResourceType::MeshTCPRoute => typed::<meshtcproute::Rule>(conf),
        ResourceType::MeshAccessLog => typed::<meshaccesslog::Conf>(conf),
        ResourceType::MeshMetric => typed::<meshmetric::Conf>(conf),
        ResourceType::MeshTrace => with_trace_defaults(typed::<meshtrace::Conf>(conf)),
        // MeshTrafficPermission's confs (`{action}`, `{allow, deny, ...}`) hold no durations.
        _ => conf.clone(),
    }
}

/// A MeshTrace conf with the defaults Kuma's API types give the backends' plain fields (Zipkin
/// `traceId128bit: false`, `apiVersion: httpJson`, `sharedSpanContext: true`; Datadog
/// `splitService: false`), which its inspection answers always show.
fn with_trace_defaults(mut conf: Value) -> Value {
    let defaults: [(&str, &[(&str, Value)]); 2] = [
        (
            "zipkin",
            &[
                ("traceId128bit", Value::Bool(false)),
                ("apiVersion", Value::String("httpJson".into())),
                ("sharedSpanContext", Value::Bool(true)),
            ],
        ),
        ("datadog", &[("splitService", Value::Bool(false))]),
    ];
    let backends = conf.get_mut("backends").and_then(Value::as_array_mut);
    for b in backends.into_iter().flatten() {
        for (kind, fields) in &defaults {
            if let Some(obj) = b.get_mut(*kind).and_then(Value::as_object_mut) {
                for (k, v) in fields.iter() {
                    obj.entry(*k).or_insert_with(|| v.clone());
                }
            }
        }
    }
    conf
}

/// A resource's REST metadata as Kuma's inspection lists write it (`rest.From.Meta`):
/// `type, mesh, name, creationTime, modificationTime`, `labels` when there are any, and
/// `kri` when the type has one.
pub fn rest_meta(r: &Resource) -> Value {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let mut m = Map::new();
    m.insert("type".into(), json!(r.resource_type().name()));
    if !r.mesh().is_empty() {
        m.insert("mesh".into(), json!(r.mesh()));
    }
    m.insert("name".into(), json!(r.name()));
    m.insert(
        "creationTime".into(),
        json!(r.meta.creation_time.as_deref().unwrap_or(ZERO_TIME)),
    );
    m.insert(
        "modificationTime".into(),
        json!(r.meta.modification_time.as_deref().unwrap_or(ZERO_TIME)),
    );
    if !r.meta.labels.is_empty() {
        m.insert("labels".into(), json!(r.meta.labels));
    }
    if let Some(kri) = Kri::for_resource(r) {
        m.insert("kri".into(), json!(kri.to_string()));
    }
    Value::Object(m)
}

/// An embedded zone-proxy listener (`networking.listeners[]`) as the inspection reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    /// `ZoneIngress`, `ZoneEgress` (anything else is skipped by the layout).
    kind: String,
    port: u32,
    /// Its name, else its port written out.
    section: String,
}

fn listeners(spec: &DataplaneSpec) -> Vec<Listener> {
    let list = spec
        .networking
        .as_ref()
        .and_then(|n| n.listeners.as_deref())
        .unwrap_or_default();
    list.iter()
        .map(|l| {
            let port = l
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0);
            let name = l.get("name").and_then(Value::as_str).unwrap_or("");
            Listener {
                kind: l
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                port,
                section: if name.is_empty() {
                    port.to_string()
                } else {
                    name.to_owned()
                },
            }
        })
        .collect()
}

/// One port of a MeshService, for the layout.
struct Destination<'a> {
    kri: Kri,
    labels: &'a Tags,
    ports: Vec<(Option<&'a str>, u32, &'a str)>,
}

impl Destination<'_> {
    /// `FindPortByName`: the port whose name (unset reads as empty) or number is `section`.
    fn port_named(&self, section: &str) -> Option<(String, u32, &str)> {
        self.ports
            .iter()
            .find(|(name, port, _)| name.unwrap_or("") == section || port.to_string() == section)
            .map(|&(name, port, proto)| (section_of(name, port), port, proto))
    }

    fn all_ports(&self) -> impl Iterator<Item = (String, u32, &str)> + '_ {
        self.ports
            .iter()
            .map(|&(name, port, proto)| (section_of(name, port), port, proto))
    }
}

/// A port's section name: its name, else its number.
fn section_of(name: Option<&str>, port: u32) -> String {
    match name {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => port.to_string(),
    }
}

/// Kuma's `DataplaneNetworkingLayout` (`GET .../dataplanes/{name}/_layout`): the proxy's
/// KRI and labels, its inbounds and embedded zone-proxy listeners (with KRIs and the names
/// of the Envoy resources Kuma would give them), and the outbounds it can reach: the
/// MeshService ports its `backendRef` outbounds name, else those its
/// `transparentProxying.reachableBackends` lists, else every MeshService port of the mesh
/// (Kuma's `DestinationIndex.GetReachableBackends`; outbounds addressed by `kuma.io/service`
/// only are not destinations and do not appear). `services`: the mesh's MeshServices.
pub fn layout(
    mesh: &str,
    name: &str,
    labels: &Tags,
    spec: &DataplaneSpec,
    services: &[Resource],
) -> Value {
    let dp_kri = Kri::of(ResourceType::Dataplane, mesh, name, labels);
    let dp_kri_text = |section: &str| {
        dp_kri
            .clone()
            .map(|k| k.with_section(section).to_string())
            .unwrap_or_default()
    };
    let networking = spec.networking.as_ref();
    let inbounds: Vec<Value> = networking
        .map(|n| n.inbound.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let section = inbound_section_name(i);
            json!({
                "kri": dp_kri_text(&section),
                "port": i.port,
                "protocol": i.tags.get(PROTOCOL_TAG).map(String::as_str).unwrap_or(""),
                "proxyResourceName": format!("self_inbound_dp_{section}"),
            })
        })
        .collect();
    let listeners: Vec<Value> = listeners(spec)
        .into_iter()
        .filter_map(|l| {
            let resource = match l.kind.as_str() {
                "ZoneIngress" => format!("self_zoneingress_dp_{}", l.section),
                "ZoneEgress" => format!("self_zoneegress_dp_{}", l.section),
                _ => return None,
            };
            Some(json!({
                "kri": dp_kri_text(&l.section),
                "port": l.port,
                "proxyResourceName": resource,
                "type": l.kind,
            }))
        })
        .collect();
    let outbounds: Vec<Value> = reachable(mesh, labels, spec, services)
        .into_iter()
        .map(|(kri, (port, protocol))| {
            json!({
                "kri": kri,
                "port": port,
                "protocol": protocol,
                "proxyResourceName": kri,
            })
        })
        .collect();
    json!({
        "inbounds": inbounds,
        "kri": dp_kri.map(|k| k.to_string()).unwrap_or_default(),
        "labels": labels,
        "listeners": listeners,
        "outbounds": outbounds,
    })
}

/// The reachable destination ports, by KRI (sorted): port number and protocol.
fn reachable(
    mesh: &str,
    dp_labels: &Tags,
    spec: &DataplaneSpec,
    services: &[Resource],
) -> BTreeMap<String, (u32, String)> {
    let destinations: Vec<Destination<'_>> = services
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::MeshService(s) => Some(Destination {
                kri: Kri::for_resource(r)?,
                labels: &r.meta.labels,
                ports: s
                    .ports
                    .iter()
                    .map(|p| {
                        (
                            p.name.as_deref(),
                            p.port,
                            p.app_protocol.as_deref().unwrap_or(""),
                        )
                    })
                    .collect(),
            }),
            _ => None,
        })
        .collect();
    let dp_kri = Kri::of(ResourceType::Dataplane, mesh, "", dp_labels);
    let lookup = Lookup {
        destinations: &destinations,
        dp: dp_kri.as_ref(),
    };
    let mut out = BTreeMap::new();
    let networking = spec.networking.as_ref();
    // Outbounds declared without a transparent proxy.
    for o in networking
        .map(|n| n.outbound.as_slice())
        .unwrap_or_default()
    {
        if let Some(b) = &o.backend_ref {
            let reference = Reference {
                kind: &b.kind,
                name: b.name.as_deref().unwrap_or(""),
                namespace: "",
                port: Some(b.port.unwrap_or(0)),
                labels: b.labels.clone().unwrap_or_default(),
            };
            lookup.resolve(&reference, &mut out);
        }
    }
    if !out.is_empty() {
        return out;
    }
    let reachable_backends = networking
        .and_then(|n| n.transparent_proxying.as_ref())
        .and_then(|tp| tp.get("reachableBackends"))
        .filter(|rb| !rb.is_null());
    let Some(reachable_backends) = reachable_backends else {
        // Not configured: every destination of the mesh.
        for d in &destinations {
            for p in d.all_ports() {
                insert(&mut out, d, p);
            }
        }
        return out;
    };
    let refs = reachable_backends
        .get("refs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for r in refs {
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let reference = Reference {
            kind: text("kind"),
            name: text("name"),
            namespace: text("namespace"),
            port: r
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            labels: r
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
        };
        lookup.resolve(&reference, &mut out);
    }
    out
}

fn insert(
    out: &mut BTreeMap<String, (u32, String)>,
    d: &Destination<'_>,
    (section, port, proto): (String, u32, &str),
) {
    out.insert(
        d.kri.clone().with_section(section).to_string(),
        (port, proto.to_owned()),
    );
}

/// A reference to destinations: a `backendRef` outbound or a `reachableBackends` ref.
struct Reference<'a> {
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
    port: Option<u32>,
    labels: Tags,
}

struct Lookup<'a, 'd> {
    destinations: &'a [Destination<'d>],
    /// The proxy's own KRI: the zone and namespace a reference by name is taken in.
    dp: Option<&'a Kri>,
}

impl Lookup<'_, '_> {
    /// Kuma's `processRef`: the destinations of the kind carrying every one of `labels`,
    /// else the one `name` (and `namespace`, else the proxy's) names in the proxy's zone;
    /// with a port only that port when the destination has it (then no further
    /// destination), else every port. Only MeshServices exist here.
    fn resolve(&self, r: &Reference<'_>, out: &mut BTreeMap<String, (u32, String)>) {
        if r.kind != "MeshService" {
            return;
        }
        let mut found: Vec<&Destination<'_>> = if r.labels.is_empty() {
            Vec::new()
        } else {
            self.destinations
                .iter()
                .filter(|d| r.labels.iter().all(|(k, v)| d.labels.get(k) == Some(v)))
                .collect()
        };
        if found.is_empty() {
            let Some(dp) = self.dp else { return };
            let wanted = Kri {
                rtype: ResourceType::MeshService,
                mesh: dp.mesh.clone(),
                zone: dp.zone.clone(),
                namespace: if r.namespace.is_empty() {
                    dp.namespace.clone()
                } else {
                    r.namespace.to_owned()
                },
                name: r.name.to_owned(),
                section: String::new(),
            };
            found = self
                .destinations
                .iter()
                .filter(|d| d.kri == wanted)
                .collect();
        }
        let section = r.port.map(|p| p.to_string()).unwrap_or_default();
        for d in found {
            if let Some(p) = d.port_named(&section) {
                insert(out, d, p);
                return;
            }
            for p in d.all_ports() {
                insert(out, d, p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
