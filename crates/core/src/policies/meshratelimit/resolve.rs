//! What MeshRateLimit contributes to a proxy: for each inbound, its token buckets, as Kuma
//! 2.14's plugin configures Envoy's local rate limits (`plugin/v1alpha1/plugin.go`,
//! `plugin/xds/configurer.go`):
//!
//! - The catch-all rules (`rules[]` without `matches`, and `from[]` entries of policies
//!   without `rules`, the kind being `IsFromAsRules`) merged are the inbound's base conf. It
//!   applies only when there is such a catch-all: its `local.http` is one bucket for every
//!   request of the inbound, its `local.tcp` one bucket for every connection.
//! - Each distinct SPIFFE ID match of a `rules[]` entry setting `local.http` gets its own
//!   HTTP bucket (Kuma duplicates the inbound's route with a filter-state match on the
//!   caller's URI SAN), with the base conf and every such rule whose match covers it merged
//!   in (least specific first). Routes are tried most specific first; a caller matching
//!   none falls to the base bucket. A `disabled` or rate-less result lets callers through.
//!
//! A limited request gets the configured status (Envoy's 429 by default), Envoy's body
//! `local_rate_limited`, `x-envoy-ratelimited: true` and the configured headers (`add`
//! appends, `set` replaces, one value per comma-separated item as Kuma hands them to
//! Envoy). A connection over the TCP rate is closed at once.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, LocalHttp, MeshRateLimitSpec};
use crate::policies::callers::CallerMatch;
use crate::policies::rules::{
    Catalog, DataplaneView, InboundRule, InboundRules, Options, RulesIndex, build_index, conf_json,
    merge_confs,
};
use crate::spec::{Match, Tags, ValueMatch};

/// Envoy's status for a locally rate-limited request.
pub const DEFAULT_STATUS: u16 = 429;

/// The rate limits of one inbound, in the proxy's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRateLimit {
    /// HTTP buckets, tried in order: the first whose callers match decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// New connections (any protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Rate>,
}

/// A bucket for the requests of the callers `callers` selects; `limit: None` = unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default, skip_serializing_if = "CallerMatch::is_any")]
    pub callers: CallerMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<HttpLimit>,
}

/// `num` tokens, all refilled every `interval_ms` (Envoy's token bucket with `max_tokens =
/// tokens_per_fill = num`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub num: u32,
    pub interval_ms: u64,
}

/// An HTTP bucket and what a request finding it empty gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpLimit {
    pub rate: Rate,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderAction>,
}

/// A response header: appended, or replacing every value of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAction {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
}

impl Rate {
    fn from_spec(r: Option<&super::Rate>) -> Option<Rate> {
        let r = r?;
        let num = r.num.filter(|n| *n > 0)?;
        let interval = r.interval.as_ref()?.to_std()?;
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        (interval_ms > 0).then_some(Rate { num, interval_ms })
    }
}

impl HttpLimit {
    /// Kuma's `RateLimitConfigurationFromPolicy`: nothing when disabled or without a rate.
    pub fn from_conf(h: &LocalHttp) -> Option<HttpLimit> {
        if h.disabled == Some(true) {
            return None;
        }
        let rate = Rate::from_spec(h.request_rate.as_ref())?;
        let on = h.on_rate_limit.as_ref();
        let status = on
            .and_then(|o| o.status)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .unwrap_or(DEFAULT_STATUS);
        let mut headers = Vec::new();
        if let Some(m) = on.and_then(|o| o.headers.as_ref()) {
            for h in m.add.iter().flatten() {
                if let (Some(n), Some(v)) = (&h.name, &h.value) {
                    headers.push(HeaderAction {
                        name: n.clone(),
                        value: v.clone(),
                        append: true,
                    });
                }
            }
            for h in m.set.iter().flatten() {
                if let (Some(n), Some(v)) = (&h.name, &h.value) {
                    for part in v.split(',') {
                        headers.push(HeaderAction {
                            name: n.clone(),
                            value: part.to_owned(),
                            append: false,
                        });
                    }
                }
            }
        }
        Some(HttpLimit {
            rate,
            status,
            headers,
        })
    }
}

/// A mesh's MeshRateLimits, indexed once; [`RateLimitRules::for_dataplane`] per proxy.
#[derive(Debug, Clone, Default)]
pub struct RateLimitRules {
    index: RulesIndex,
}

impl RateLimitRules {
    /// `policies` are the mesh's MeshRateLimits as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshRateLimitSpec)]) -> Self {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshRateLimitSpec)],
        catalog: Catalog,
    ) -> Self {
        RateLimitRules {
            index: build_index(
                mesh,
                policies,
                catalog,
                Options {
                    from_as_rules: true,
                    include_shadow: false,
                },
            ),
        }
    }

    /// Per `networking.inbound`, in order: its limits, `None` when it has none.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Option<InboundRateLimit>> {
        if self.index.is_empty() {
            return Vec::new();
        }
        self.index
            .resolve(dp)
            .inbounds
            .iter()
            .map(inbound_rate_limit)
            .collect()
    }

    /// What the engine found for one proxy, for `inspect`.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> crate::policies::rules::DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

fn decode(conf: &Value) -> Option<Conf> {
    serde_json::from_value(conf.clone()).ok()
}

fn local_http(conf: &Value) -> Option<LocalHttp> {
    decode(conf)?.local?.http
}

/// A rule's SPIFFE ID match (with its SNI part, if any).
fn spiffe_match(r: &InboundRule) -> Option<Match> {
    let m: Match = serde_json::from_value(r.matches.clone()?).ok()?;
    m.spiffe_id.as_ref()?;
    Some(m)
}

fn rank(m: &Match) -> u8 {
    match m.spiffe_id.as_ref().map(|s| s.kind.as_str()) {
        Some("Exact") => 0,
        Some("Prefix") => 1,
        _ => 2,
    }
}

fn prefix_len(m: &Match) -> usize {
    match &m.spiffe_id {
        Some(s) if s.kind == "Prefix" => s.value.len(),
        _ => 0,
    }
}

/// Most specific first: Exact before Prefix, longer prefixes first.
fn more_specific_first(a: &Match, b: &Match) -> Ordering {
    rank(a).cmp(&rank(b)).then_with(|| {
        let (la, lb) = (prefix_len(a), prefix_len(b));
        if la == 0 || lb == 0 {
            Ordering::Equal
        } else {
            lb.cmp(&la)
        }
    })
}

/// Whether every caller `target` selects is also selected by `candidate`.
fn covers(candidate: &Match, target: &Match) -> bool {
    let spiffe = match (&candidate.spiffe_id, &target.spiffe_id) {
        (Some(c), Some(t)) => match c.kind.as_str() {
            "Exact" => t.kind == "Exact" && c.value == t.value,
            "Prefix" => t.value.starts_with(&c.value),
            _ => false,
        },
        _ => false,
    };
    let sni = match (&candidate.sni, &target.sni) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ValueMatch { kind, value }), Some(t)) => *kind == t.kind && *value == t.value,
    };
    spiffe && sni
}

/// One inbound's limits from what the engine matched.
pub fn inbound_rate_limit(rules: &InboundRules) -> Option<InboundRateLimit> {
    let has_catch_all = rules.rules.iter().any(|r| r.matches.is_none());
    let base = has_catch_all
        .then(|| rules.conf.conf.clone())
        .flatten()
        .filter(|c| !c.is_null());
    let base_http = base.as_ref().and_then(local_http);
    let tcp = base
        .as_ref()
        .and_then(decode)
        .and_then(|c| c.local?.tcp)
        .filter(|t| t.disabled != Some(true))
        .and_then(|t| Rate::from_spec(t.connection_rate.as_ref()));

    let mut matched: Vec<(Match, &InboundRule)> = rules
        .rules
        .iter()
        .filter(|r| local_http(&r.conf).is_some())
        .filter_map(|r| Some((spiffe_match(r)?, r)))
        .collect();
    matched.sort_by(|a, b| more_specific_first(&a.0, &b.0));

    let mut http: Vec<HttpRoute> = Vec::new();
    let mut seen: Vec<&Match> = Vec::new();
    for (target, _) in &matched {
        if seen.contains(&target) {
            continue;
        }
        seen.push(target);
        let mut applicable: Vec<&(Match, &InboundRule)> =
            matched.iter().filter(|(m, _)| covers(m, target)).collect();
        // Least specific first, so the most specific merges last and wins.
        applicable.sort_by(|a, b| more_specific_first(&b.0, &a.0));
        let base_part = base.as_ref().filter(|_| base_http.is_some());
        let merged = merge_confs(
            base_part
                .into_iter()
                .chain(applicable.iter().map(|(_, r)| &*r.conf)),
        );
        let limit = merged
            .as_ref()
            .and_then(local_http)
            .and_then(|h| HttpLimit::from_conf(&h));
        let Some(callers) = CallerMatch::from_rule_match(target) else {
            continue;
        };
        http.push(HttpRoute { callers, limit });
    }
    if let Some(h) = &base_http {
        http.push(HttpRoute {
            callers: CallerMatch::any(),
            limit: HttpLimit::from_conf(h),
        });
    }
    if http.iter().all(|r| r.limit.is_none()) {
        http.clear();
    }
    (!http.is_empty() || tcp.is_some()).then_some(InboundRateLimit { http, tcp })
}

/// The `inspect` view of one inbound: the policies selecting it, the merged catch-all conf
/// as written, and the limits in force.
pub fn explain_json(rules: &InboundRules) -> Value {
    serde_json::json!({
        "policies": rules.policies,
        "conf": rules.conf.conf.clone().unwrap_or(Value::Null),
        "effective": inbound_rate_limit(rules).map(|l| conf_json(&l)).unwrap_or(Value::Null),
    })
}

crate::policies::rules::rules_source!(MeshRateLimitSpec; to; from; rules);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::callers::Caller;
    use crate::policies::meshtrafficpermission::PeerIdentity;

    fn spec(yaml: &str) -> MeshRateLimitSpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshRateLimit(s) => s,
            other => panic!("{other:?}"),
        }
    }

    const BOOKING: &str = "type: Dataplane\nname: booking-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: booking, kuma.io/protocol: http}}\n";

    fn resolve(policies: &[(&str, &MeshRateLimitSpec)]) -> Option<InboundRateLimit> {
        let labels = Tags::new();
        let list: Vec<_> = policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
        let rules = RateLimitRules::new("default", &list);
        let d = crate::policies::test_util::dataplane(BOOKING);
        rules
            .for_dataplane(&DataplaneView {
                mesh: "default",
                name: "booking-1",
                labels: &labels,
                spec: &d,
            })
            .into_iter()
            .next()
            .flatten()
    }

    #[test]
    fn from_entries_are_the_inbounds_buckets() {
        let p = spec(
            "type: MeshRateLimit\nname: rl\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n    - targetRef: {kind: Mesh}\n      default:\n        local:\n          http:\n            requestRate: {num: 10, interval: 1s}\n            onRateLimit:\n              status: 423\n              headers:\n                add: [{name: x-kuma-rate-limited, value: 'true'}]\n                set: [{name: x-set, value: 'a,b'}]\n          tcp:\n            connectionRate: {num: 5, interval: 10s}\n",
        );
        let got = resolve(&[("rl", &p)]).unwrap_or_else(|| panic!("limits"));
        assert_eq!(
            got.tcp,
            Some(Rate {
                num: 5,
                interval_ms: 10_000
            })
        );
        assert_eq!(got.http.len(), 1);
        assert!(got.http[0].callers.is_any());
        let limit = got.http[0].limit.clone().unwrap_or_else(|| panic!("http"));
        assert_eq!(
            limit.rate,
            Rate {
                num: 10,
                interval_ms: 1000
            }
        );
        assert_eq!(limit.status, 423);
        let h: Vec<_> = limit
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str(), h.append))
            .collect();
        assert_eq!(
            h,
            [
                ("x-kuma-rate-limited", "true", true),
                ("x-set", "a", false),
                ("x-set", "b", false)
            ]
        );
    }

    #[test]
    fn spiffe_matches_get_their_own_buckets_merged_over_the_base() {
        let p = spec(
            "type: MeshRateLimit\nname: rl\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  rules:\n    - default:\n        local:\n          http:\n            requestRate: {num: 100, interval: 10s}\n    - matches:\n        - spiffeID: {type: Prefix, value: 'spiffe://default/'}\n      default:\n        local:\n          http:\n            requestRate: {num: 5, interval: 1s}\n    - matches:\n        - spiffeID: {type: Exact, value: 'spiffe://default/flight-control'}\n      default:\n        local:\n          http:\n            onRateLimit: {status: 503}\n    - matches:\n        - spiffeID: {type: Exact, value: 'spiffe://default/trusted'}\n      default:\n        local:\n          http: {disabled: true}\n",
        );
        let got = resolve(&[("rl", &p)]).unwrap_or_else(|| panic!("limits"));
        assert_eq!(got.tcp, None);
        let route_of = |service: &str| {
            let id = PeerIdentity::new("default", [service]);
            let caller = Caller {
                identity: Some(&id),
                sni: None,
            };
            got.http
                .iter()
                .find(|r| r.callers.matches(&caller))
                .map(|r| r.limit.clone())
        };
        // Exact flight-control: base, the prefix and its own status merged.
        let fc = route_of("flight-control")
            .flatten()
            .unwrap_or_else(|| panic!("fc"));
        assert_eq!(
            (fc.rate.num, fc.rate.interval_ms, fc.status),
            (5, 1000, 503)
        );
        // Another caller of the mesh: the prefix bucket.
        let web = route_of("web").flatten().unwrap_or_else(|| panic!("web"));
        assert_eq!(
            (web.rate.num, web.rate.interval_ms, web.status),
            (5, 1000, 429)
        );
        // Disabled for one caller.
        assert_eq!(route_of("trusted"), Some(None));
        // No identity: the inbound's bucket.
        let anon = got.http.last().unwrap_or_else(|| panic!("base"));
        assert!(anon.callers.is_any());
        assert_eq!(anon.limit.as_ref().map(|l| l.rate.num), Some(100));
    }

    #[test]
    fn without_a_catch_all_only_matched_callers_are_limited() {
        let p = spec(
            "type: MeshRateLimit\nname: rl\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  rules:\n    - matches:\n        - spiffeID: {type: Exact, value: 'spiffe://default/flight-control'}\n      default:\n        local:\n          http:\n            requestRate: {num: 1, interval: 1s}\n          tcp:\n            connectionRate: {num: 1, interval: 1s}\n",
        );
        let got = resolve(&[("rl", &p)]).unwrap_or_else(|| panic!("limits"));
        assert_eq!(got.tcp, None, "connection limits come from catch-alls only");
        assert_eq!(got.http.len(), 1);
        assert!(!got.http[0].callers.is_any());
        assert_eq!(resolve(&[]), None);
    }
}
