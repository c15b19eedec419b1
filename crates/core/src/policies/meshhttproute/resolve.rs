//! What a MeshHTTPRoute gives the targetRef engine (`policies/rules/`): its top-level ref
//! only, so the engine knows which proxies a route applies to (and what a policy whose
//! top-level ref is this route selects). Its `to` rules are not handed over: Kuma merges
//! them by matches and host names (`mergeValuesByKey`, `mergeValues`), which the engine's
//! JSON merge patch does not do, so a route contributes no outbound conf here.

use super::MeshHttpRouteSpec;
use crate::policies::rules::RulesSource;
use crate::spec::TargetRef;

impl RulesSource for MeshHttpRouteSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// Routing: what kuma-dp enforces.
// ---------------------------------------------------------------------------------------

use std::collections::HashMap;

use serde_json::{Value, json};

use super::table::{
    HeaderEdits, HeaderMatcher, HttpRouteRule, Mirror, PathMatcher, PathRewrite, QueryMatcher,
    Redirect, RouteBackend, RouteDestination, RouteFilter, UrlRewrite, ValueMatcher,
};
use super::{Filter, Match, RuleConf};
use crate::policies::common::BackendRef;
use crate::policies::rules::{Catalog, DataplaneView, Options, RulesIndex, build_index};
use crate::spec::Tags;

/// A MeshHTTPRoute as the routing index sees it: every `to[]` entry, its rules kept aside
/// (the engine only says which entries apply to an outbound, and in which order).
struct Routing<'a>(&'a MeshHttpRouteSpec);

impl RulesSource for Routing<'_> {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.0.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.0
            .to
            .iter()
            .flatten()
            .map(|t| (t.target_ref.as_ref(), json!({})))
            .collect()
    }
}

/// One route of an outbound, before its backends are resolved to endpoints: a single match
/// (Kuma expands a rule's `matches` into one route each), the merged filters and backends.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedRoute {
    /// The MeshHTTPRoute whose rule it is.
    pub origin: String,
    pub matched: Match,
    pub filters: Vec<Filter>,
    pub backend_refs: Vec<BackendRef>,
}

/// A mesh's MeshHTTPRoutes, indexed once per round for every proxy's outbounds.
#[derive(Debug, Clone, Default)]
pub struct HttpRouteRules {
    index: RulesIndex,
    specs: HashMap<String, MeshHttpRouteSpec>,
}

impl HttpRouteRules {
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshHttpRouteSpec)],
        catalog: Catalog,
    ) -> HttpRouteRules {
        let wrapped: Vec<Routing<'_>> = policies.iter().map(|(_, _, s)| Routing(s)).collect();
        let items: Vec<(&str, &Tags, &Routing<'_>)> = policies
            .iter()
            .zip(&wrapped)
            .map(|((n, l, _), w)| (*n, *l, w))
            .collect();
        HttpRouteRules {
            index: build_index(mesh, &items, catalog, Options::default()),
            specs: policies
                .iter()
                .map(|(n, _, s)| ((*n).to_owned(), (*s).clone()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Per `networking.outbound`, in order: its routes, most specific first (without
    /// Kuma's catch-all), or `None` when no MeshHTTPRoute applies to it.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Option<Vec<OrderedRoute>>> {
        if self.specs.is_empty() {
            let n = dp.spec.networking.as_ref().map_or(0, |n| n.outbound.len());
            return vec![None; n];
        }
        self.index
            .resolve(dp)
            .outbounds
            .iter()
            .map(|o| {
                if o.merged.origins.is_empty() {
                    return None;
                }
                let entries = o.merged.origins.iter().filter_map(|origin| {
                    let spec = self.specs.get(&*origin.policy)?;
                    let to = spec.to.as_ref()?.get(origin.index)?;
                    Some((&*origin.policy, to.rules.as_deref().unwrap_or_default()))
                });
                Some(order_routes(entries))
            })
            .collect()
    }
}

/// The `_explain` view of one outbound's routes: each route in the order the proxy tries
/// them (its MeshHTTPRoute, the one match, the merged filters and backends as written)
/// and, when the route has a MeshTimeout or MeshRetry rule of its own, what the proxy
/// enforces for it (`timeouts`, `retry`: the outbound's for the others). A request matching
/// none goes to the outbound's own destination.
pub fn explain_json(
    routes: &[OrderedRoute],
    timeouts: &[Option<crate::policies::meshtimeout::Timeouts>],
    retries: &[Option<crate::policies::meshretry::Retry>],
) -> Value {
    Value::Array(
        routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = json!({
                    "route": r.origin,
                    "matches": r.matched,
                    "filters": r.filters,
                    "backendRefs": r.backend_refs,
                });
                if let Some(Some(t)) = timeouts.get(i) {
                    v["timeouts"] = json!(t);
                }
                if let Some(Some(t)) = retries.get(i) {
                    v["retry"] = json!(t);
                }
                v
            })
            .collect(),
    )
}

/// Kuma's merge of the rules of every `to[]` entry applying to an outbound (`to` entries
/// lowest priority first): each entry's rules reversed and concatenated, rules with equal
/// `matches` merged into the position of the last one (`mergeValuesByKey`, later
/// `filters`/`backendRefs` replacing earlier ones), the list reversed back (so the first
/// rule of the most important policy comes first), expanded to one route per match and
/// sorted stably by match specificity (`CompareMatch`).
pub fn order_routes<'a>(
    entries: impl Iterator<Item = (&'a str, &'a [super::Rule])>,
) -> Vec<OrderedRoute> {
    struct Group<'a> {
        matches: Option<&'a Vec<Match>>,
        confs: Vec<(&'a str, Option<&'a RuleConf>)>,
    }
    let mut groups: Vec<Option<Group<'a>>> = Vec::new();
    for (policy, rules) in entries {
        for rule in rules.iter().rev() {
            let mut confs = Vec::new();
            for slot in groups.iter_mut() {
                if slot
                    .as_ref()
                    .is_some_and(|g| g.matches == rule.matches.as_ref())
                    && let Some(g) = slot.take()
                {
                    confs = g.confs;
                }
            }
            confs.push((policy, rule.default.as_ref()));
            groups.push(Some(Group {
                matches: rule.matches.as_ref(),
                confs,
            }));
        }
    }
    let mut routes = Vec::new();
    for g in groups
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let mut filters = None;
        let mut backend_refs = None;
        let mut origin = "";
        for (policy, conf) in &g.confs {
            origin = policy;
            if let Some(c) = conf {
                if c.filters.is_some() {
                    filters = c.filters.clone();
                }
                if c.backend_refs.is_some() {
                    backend_refs = c.backend_refs.clone();
                }
            }
        }
        for m in g.matches.into_iter().flatten() {
            routes.push(OrderedRoute {
                origin: origin.to_owned(),
                matched: m.clone(),
                filters: filters.clone().unwrap_or_default(),
                backend_refs: backend_refs.clone().unwrap_or_default(),
            });
        }
    }
    routes.sort_by(|a, b| compare_match(&a.matched, &b.matched));
    routes
}

/// Kuma's `CompareMatch` (Gateway API precedence): a path first (`Exact`, then
/// `PathPrefix`, then `RegularExpression`; of one type, the longer value), then a method,
/// then more headers, then more query parameters.
pub fn compare_match(a: &Match, b: &Match) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let rank = |t: Option<&str>| match t {
        Some("Exact") => 0,
        Some("PathPrefix") => 1,
        _ => 2,
    };
    let path = match (&a.path, &b.path) {
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (None, None) => Equal,
        (Some(p), Some(q)) => {
            let (rp, rq) = (rank(p.match_type.as_deref()), rank(q.match_type.as_deref()));
            if rp != rq {
                rp.cmp(&rq)
            } else if rp == 0 {
                Equal
            } else {
                let len = |v: &Option<String>| v.as_deref().map_or(0, str::len);
                len(&q.value).cmp(&len(&p.value))
            }
        }
    };
    let count = |v: &Option<Vec<_>>| v.as_ref().map_or(0, Vec::len);
    path.then_with(|| match (&a.method, &b.method) {
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        _ => Equal,
    })
    .then_with(|| {
        let (ha, hb) = (
            a.headers.as_ref().map_or(0, Vec::len),
            b.headers.as_ref().map_or(0, Vec::len),
        );
        hb.cmp(&ha)
    })
    .then_with(|| count(&b.query_params).cmp(&count(&a.query_params)))
}

/// How a backend reference reaches endpoints (from the mesh's view): `None` when it cannot
/// be resolved (it then counts as the outbound's own destination, as in Kuma), else the
/// destination (`None` inside: the outbound's own).
pub type ResolveBackend<'r> = dyn Fn(&BackendRef) -> Option<Option<RouteDestination>> + 'r;

/// The route table of one outbound: its ordered routes compiled for the proxy, routes
/// whose backends all weigh 0 left out (Kuma skips an empty split), and Kuma's catch-all
/// to the outbound's own destination appended unless a route already is `PathPrefix /`
/// without other conditions.
pub fn compile_routes(routes: &[OrderedRoute], resolve: &ResolveBackend<'_>) -> Vec<HttpRouteRule> {
    let mut out = Vec::with_capacity(routes.len() + 1);
    let mut has_catch_all = false;
    for r in routes {
        let catch_all = is_catch_all(&r.matched);
        let backends: Vec<RouteBackend> = if r.backend_refs.is_empty() {
            vec![RouteBackend {
                weight: 1,
                destination: None,
            }]
        } else {
            r.backend_refs
                .iter()
                .filter(|b| b.weight() > 0)
                .map(|b| RouteBackend {
                    weight: u32::try_from(b.weight()).unwrap_or(u32::MAX),
                    destination: resolve(b).flatten(),
                })
                .collect()
        };
        has_catch_all |= catch_all;
        if backends.is_empty() {
            continue;
        }
        let (method, headers, query) = conditions(&r.matched);
        out.push(HttpRouteRule {
            origin: r.origin.clone(),
            path: Some(path_matcher(&r.matched)),
            method,
            headers,
            query,
            filters: r
                .filters
                .iter()
                .filter_map(|f| filter(f, resolve))
                .collect(),
            backends,
            timeouts: None,
            retry: None,
        });
    }
    if !has_catch_all {
        out.push(HttpRouteRule {
            origin: String::new(),
            path: Some(PathMatcher::Prefix(String::new())),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
            filters: Vec::new(),
            backends: vec![RouteBackend {
                weight: 1,
                destination: None,
            }],
            timeouts: None,
            retry: None,
        });
    }
    out
}

fn is_catch_all(m: &Match) -> bool {
    m.method.is_none()
        && m.headers.is_none()
        && m.query_params.is_none()
        && m.path.as_ref().is_some_and(|p| {
            p.match_type.as_deref() == Some("PathPrefix") && p.value.as_deref() == Some("/")
        })
}

/// A missing path is Kuma's catch-all path (`PathPrefix /`).
fn path_matcher(m: &Match) -> PathMatcher {
    let Some(p) = &m.path else {
        return PathMatcher::Prefix(String::new());
    };
    let value = p.value.clone().unwrap_or_default();
    match p.match_type.as_deref() {
        Some("Exact") => PathMatcher::Exact(value),
        Some("RegularExpression") => PathMatcher::Regex(value),
        _ => PathMatcher::Prefix(value.trim_end_matches('/').to_owned()),
    }
}

type Conditions = (Option<String>, Vec<HeaderMatcher>, Vec<QueryMatcher>);

fn conditions(m: &Match) -> Conditions {
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for h in m.headers.iter().flatten() {
        let Some(name) = h.name.as_deref().map(str::to_ascii_lowercase) else {
            continue;
        };
        if headers.iter().any(|x| x.name == name) {
            continue;
        }
        let value = h.value.clone().unwrap_or_default();
        let kind = match h.match_type.as_deref() {
            Some("Present") => ValueMatcher::Present,
            Some("Absent") => ValueMatcher::Absent,
            Some("RegularExpression") => ValueMatcher::Regex(value),
            Some("Prefix") if value.is_empty() => ValueMatcher::Present,
            Some("Prefix") => ValueMatcher::Prefix(value),
            _ => ValueMatcher::Exact(value),
        };
        headers.push(HeaderMatcher { name, kind });
    }
    let mut query: Vec<QueryMatcher> = Vec::new();
    for q in m.query_params.iter().flatten() {
        let Some(name) = q.name.clone() else { continue };
        if query.iter().any(|x| x.name == name) {
            continue;
        }
        let value = q.value.clone().unwrap_or_default();
        let kind = match q.match_type.as_deref() {
            Some("RegularExpression") => ValueMatcher::Regex(value),
            _ => ValueMatcher::Exact(value),
        };
        query.push(QueryMatcher { name, kind });
    }
    (m.method.clone(), headers, query)
}

fn edits(m: Option<&super::HeaderModifier>) -> HeaderEdits {
    let pairs = |v: &Option<Vec<crate::policies::common::HeaderKeyValue>>| {
        v.iter()
            .flatten()
            .filter_map(|kv| {
                Some((
                    kv.name.as_deref()?.to_ascii_lowercase(),
                    kv.value.clone().unwrap_or_default(),
                ))
            })
            .collect()
    };
    match m {
        None => HeaderEdits::default(),
        Some(m) => HeaderEdits {
            set: pairs(&m.set),
            add: pairs(&m.add),
            remove: m
                .remove
                .iter()
                .flatten()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        },
    }
}

fn path_rewrite(p: Option<&super::PathRewrite>) -> Option<PathRewrite> {
    let p = p?;
    match p.rewrite_type.as_deref() {
        Some("ReplaceFullPath") => Some(PathRewrite::Full(p.replace_full_path.clone()?)),
        Some("ReplacePrefixMatch") => Some(PathRewrite::Prefix(p.replace_prefix_match.clone()?)),
        _ => None,
    }
}

fn filter(f: &Filter, resolve: &ResolveBackend<'_>) -> Option<RouteFilter> {
    match f.filter_type.as_deref()? {
        "RequestHeaderModifier" => Some(RouteFilter::RequestHeaders(edits(
            f.request_header_modifier.as_ref(),
        ))),
        "ResponseHeaderModifier" => Some(RouteFilter::ResponseHeaders(edits(
            f.response_header_modifier.as_ref(),
        ))),
        "RequestRedirect" => {
            let r = f.request_redirect.as_ref()?;
            Some(RouteFilter::Redirect(Redirect {
                scheme: r.scheme.clone(),
                hostname: r.hostname.clone(),
                port: r.port.and_then(|p| u16::try_from(p).ok()),
                path: path_rewrite(r.path.as_ref()),
                status: r
                    .status_code
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(302),
            }))
        }
        "URLRewrite" => {
            let r = f.url_rewrite.as_ref()?;
            Some(RouteFilter::UrlRewrite(UrlRewrite {
                hostname: r.hostname.clone(),
                path: path_rewrite(r.path.as_ref()),
            }))
        }
        "RequestMirror" => {
            let m = f.request_mirror.as_ref()?;
            let per_million = match &m.percentage {
                None => 1_000_000,
                Some(p) => {
                    let pct = p.decimal().map_or(100.0, |d| d.to_f64());
                    (pct.clamp(0.0, 100.0) * 10_000.0).round() as u32
                }
            };
            let destination = m
                .backend_ref
                .as_ref()
                .and_then(resolve)
                .flatten()
                .map(Box::new);
            Some(RouteFilter::Mirror(Mirror {
                destination,
                per_million,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod routing_tests {
    use super::*;
    use crate::format::{parse_yaml_value, resource_from_value};
    use crate::policies::meshtrafficpermission::PolicyIndex;
    use crate::proxy_config::MeshView;
    use crate::spec::DataplaneSpec;
    use crate::{Spec, spec::MeshSpec};

    fn parse(yaml: &str) -> Spec {
        resource_from_value(&parse_yaml_value(yaml).unwrap())
            .unwrap()
            .spec
    }

    fn route(yaml_rules: &str) -> MeshHttpRouteSpec {
        match parse(&format!(
            "type: MeshHTTPRoute\nname: r\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n  to:\n  - targetRef: {{kind: MeshService, name: api}}\n    rules:\n{yaml_rules}"
        )) {
            Spec::MeshHTTPRoute(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn paths(routes: &[OrderedRoute]) -> Vec<String> {
        routes
            .iter()
            .map(|r| {
                let p = r.matched.path.as_ref();
                format!(
                    "{}:{}:{}",
                    r.origin,
                    p.and_then(|p| p.match_type.clone()).unwrap_or_default(),
                    p.and_then(|p| p.value.clone()).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn rules_merge_by_matches_and_sort_by_specificity() {
        let low = route(
            "    - matches: [{path: {type: PathPrefix, value: /a}}]\n      default: {backendRefs: [{kind: MeshService, name: one}]}\n    - matches: [{path: {type: RegularExpression, value: /x.*}}, {path: {type: Exact, value: /e}}]\n      default: {filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]}\n",
        );
        let high = route(
            "    - matches: [{path: {type: PathPrefix, value: /a}}]\n      default: {backendRefs: [{kind: MeshService, name: two}]}\n    - matches: [{path: {type: PathPrefix, value: /a/longer}}]\n",
        );
        let low_rules = low.to.as_ref().unwrap()[0].rules.as_deref().unwrap();
        let high_rules = high.to.as_ref().unwrap()[0].rules.as_deref().unwrap();
        let routes = order_routes([("low", low_rules), ("high", high_rules)].into_iter());
        assert_eq!(
            paths(&routes),
            [
                "low:Exact:/e",
                "high:PathPrefix:/a/longer",
                "high:PathPrefix:/a",
                "low:RegularExpression:/x.*",
            ]
        );
        // The later (more important) policy's backends replace the earlier ones on equal
        // matches.
        assert_eq!(routes[2].backend_refs[0].name.as_deref(), Some("two"));
        assert_eq!(routes[0].filters.len(), 1);
    }

    #[test]
    fn compare_match_follows_kuma() {
        let m = |yaml: &str| -> Match {
            serde_json::from_value(parse_yaml_value(yaml).unwrap()).unwrap()
        };
        use std::cmp::Ordering::*;
        let exact = m("{path: {type: Exact, value: /a}}");
        let prefix = m("{path: {type: PathPrefix, value: /a}}");
        let long_prefix = m("{path: {type: PathPrefix, value: /a/b}}");
        let regex = m("{path: {type: RegularExpression, value: /a}}");
        let method = m("{method: GET}");
        let headers = m("{headers: [{name: x, value: y}]}");
        assert_eq!(compare_match(&exact, &prefix), Less);
        assert_eq!(compare_match(&long_prefix, &prefix), Less);
        assert_eq!(compare_match(&prefix, &regex), Less);
        assert_eq!(compare_match(&regex, &method), Less);
        assert_eq!(compare_match(&method, &headers), Less);
        assert_eq!(compare_match(&headers, &m("{}")), Less);
    }

    fn dp(yaml: &str) -> DataplaneSpec {
        match parse(yaml) {
            Spec::Dataplane(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_view_resolves_subsets_to_endpoints_and_appends_the_catch_all() {
        let Spec::Mesh(mesh) = parse("type: Mesh\nname: default\n") else {
            panic!()
        };
        let mesh: MeshSpec = mesh;
        let api = |name: &str, ip: &str, version: &str| {
            dp(&format!(
                "type: Dataplane\nname: {name}\nmesh: default\nnetworking:\n  address: {ip}\n  inbound:\n  - port: 9000\n    tags: {{kuma.io/service: api, kuma.io/protocol: http, version: {version}}}\n"
            ))
        };
        let (v1, v2) = (
            api("api-1", "10.0.0.1", "v1"),
            api("api-2", "10.0.0.2", "v2"),
        );
        let web = dp(
            "type: Dataplane\nname: web\nmesh: default\nnetworking:\n  address: 10.0.0.9\n  inbound:\n  - port: 9000\n    tags: {kuma.io/service: web}\n  outbound:\n  - port: 10001\n    tags: {kuma.io/service: api}\n  - port: 10002\n    tags: {kuma.io/service: other}\n",
        );
        let spec = route(
            "    - matches: [{headers: [{name: X-Version, value: v2}]}]\n      default:\n        backendRefs:\n        - {kind: MeshServiceSubset, name: api, tags: {version: v2}, weight: 3}\n        - {kind: MeshService, name: api, weight: 1}\n        - {kind: MeshService, name: api, weight: 0}\n",
        );
        let labels = Tags::new();
        let rules =
            HttpRouteRules::with_catalog("default", &[("r", &labels, &spec)], Catalog::default());
        let tcp = crate::policies::meshtcproute::TcpRouteRules::default();
        let index = PolicyIndex::new(&[]);
        let dps = [("api-1", &v1), ("api-2", &v2), ("web", &web)];
        let view =
            MeshView::new("default", &mesh, &index, &dps, &|_| true).with_routes(&rules, &tcp);
        let cfg = view.proxy_config("web", &labels, &web);
        assert_eq!(cfg.outbound_policies.len(), 1, "only the routed outbound");
        let table = cfg.outbound_policies[0].http_routes.as_ref().unwrap();
        assert_eq!(table.rules.len(), 2);
        let first = &table.rules[0];
        assert_eq!(first.origin, "r");
        assert_eq!(first.headers[0].name, "x-version");
        assert_eq!(first.backends.len(), 2, "weight 0 is left out");
        let d = first.backends[0].destination.as_ref().unwrap();
        assert_eq!(d.endpoints.len(), 1);
        assert_eq!(d.endpoints[0].address, "10.0.0.2");
        assert_eq!(d.spiffe_id, "spiffe://default/api");
        assert_eq!(first.backends[0].weight, 3);
        assert!(
            first.backends[1].destination.is_none(),
            "the outbound's own"
        );
        let catch_all = &table.rules[1];
        assert_eq!(
            catch_all.path,
            Some(super::super::table::PathMatcher::Prefix(String::new()))
        );
        assert!(catch_all.backends[0].destination.is_none());
    }
}
