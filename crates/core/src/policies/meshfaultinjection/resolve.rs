//! What MeshFaultInjection contributes to a proxy: for each inbound, the fault sets it
//! injects and which callers each applies to, as Kuma 2.14's plugin builds Envoy fault
//! filters (`plugin/v1alpha1/plugin.go`, `plugin/xds/configurer.go`, `legacy_configurer.go`):
//!
//! - When a policy selecting the inbound has `rules`, every rule (one per `matches` item,
//!   most specific first, then the catch-alls in policy order) contributes one fault filter
//!   per fault set of its own `default.http`, unmerged, skipped for callers its match does
//!   not select. All filters whose match holds apply, in order.
//! - Otherwise the legacy `from[]` entries apply: for a caller, the entries whose targetRef
//!   it satisfies are merged in priority order, and `http` being a list, the
//!   highest-priority matching entry that sets `http` wins outright. The proxy gets those
//!   entries highest priority first and applies the first that matches.
//!
//! In each fault set Envoy draws the delay and the abort independently (the delay first);
//! an abort ends the request; a bandwidth limit slows the response body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, FaultInjectionConf, MeshFaultInjectionSpec};
use crate::policies::callers::CallerMatch;
use crate::policies::common::IntOrString;
use crate::policies::rules::{
    Catalog, DataplaneView, InboundRules, Options, RulesIndex, build_index, conf_json,
};
use crate::spec::{Match, Tags};

/// Shares are drawn in parts per million (Envoy's finest `FractionalPercent`).
pub const PER_MILLION: u32 = 1_000_000;

/// The faults of one inbound, in the proxy's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundFaults {
    pub combine: Combine,
    pub entries: Vec<FaultEntry>,
}

/// How the entries of an inbound combine for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Combine {
    /// Legacy `from[]`: the first entry matching the caller applies, alone.
    First,
    /// `rules[]`: every entry matching the caller applies, in order.
    All,
}

/// Fault sets for the callers `callers` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultEntry {
    #[serde(default, skip_serializing_if = "CallerMatch::is_any")]
    pub callers: CallerMatch,
    pub faults: Vec<Fault>,
}

/// One fault set (one Envoy fault filter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bandwidth: Option<Bandwidth>,
}

/// Hold a request this long before forwarding it, for `per_million` of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    pub ms: u64,
    pub per_million: u32,
}

/// Answer `status` instead of forwarding, for `per_million` of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    pub status: u16,
    pub per_million: u32,
}

/// Send the response body at most this fast, for `per_million` of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub bytes_per_second: u64,
    pub per_million: u32,
}

/// A percentage (`50`, `"50.5"`) in parts per million, clamped to 0..=100 %; Kuma's
/// rounding (`ConvertPercentage`) is exact at this resolution. Unreadable = 0.
pub fn per_million(p: Option<&IntOrString>) -> u32 {
    let percent = p.and_then(IntOrString::decimal).map_or(0.0, |d| d.to_f64());
    let ppm = (percent * 10_000.0).round();
    if ppm.is_nan() || ppm <= 0.0 {
        0
    } else if ppm >= f64::from(PER_MILLION) {
        PER_MILLION
    } else {
        // In range: the cast is exact.
        ppm as u32
    }
}

/// `100kbps`, `5 Mbps`, `1Gbps` in bytes per second: Kuma converts the text to a number of
/// kbps (`k` 1, `M` 1000, `G` 1000000) and hands it to Envoy as `limit_kbps`, which Envoy
/// reads as KiB/s. `None` for what Kuma's converter refuses (no digits, another unit).
pub fn bandwidth_bytes_per_second(limit: &str) -> Option<u64> {
    let rest = limit.strip_suffix("bps")?;
    let (digits, factor) = if let Some(d) = rest.strip_suffix('k') {
        (d, 1u64)
    } else if let Some(d) = rest.strip_suffix('M') {
        (d, 1_000)
    } else if let Some(d) = rest.strip_suffix('G') {
        (d, 1_000_000)
    } else {
        return None;
    };
    let digits = digits.strip_suffix([' ', '\t']).unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kibps = digits.parse::<u64>().ok()?.checked_mul(factor)?;
    kibps.checked_mul(1024)
}

impl Fault {
    /// A validated fault set; parts that cannot be enforced (a negative delay, a status
    /// out of range, an unreadable bandwidth) are left out.
    pub fn from_conf(c: &FaultInjectionConf) -> Fault {
        Fault {
            delay: c.delay.as_ref().and_then(|d| {
                let v = d.value.as_ref()?.to_std()?;
                Some(Delay {
                    ms: u64::try_from(v.as_millis()).unwrap_or(u64::MAX),
                    per_million: per_million(d.percentage.as_ref()),
                })
            }),
            abort: c.abort.as_ref().and_then(|a| {
                let status = u16::try_from(a.http_status?).ok()?;
                (100..=599).contains(&status).then(|| Abort {
                    status,
                    per_million: per_million(a.percentage.as_ref()),
                })
            }),
            response_bandwidth: c.response_bandwidth.as_ref().and_then(|b| {
                Some(Bandwidth {
                    bytes_per_second: bandwidth_bytes_per_second(b.limit.as_deref()?)?,
                    per_million: per_million(b.percentage.as_ref()),
                })
            }),
        }
    }
}

/// A mesh's MeshFaultInjections, indexed once; [`FaultInjectionRules::for_dataplane`] per
/// proxy.
#[derive(Debug, Clone, Default)]
pub struct FaultInjectionRules {
    index: RulesIndex,
}

impl FaultInjectionRules {
    /// `policies` are the mesh's MeshFaultInjections as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshFaultInjectionSpec)]) -> Self {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshFaultInjectionSpec)],
        catalog: Catalog,
    ) -> Self {
        FaultInjectionRules {
            index: build_index(mesh, policies, catalog, Options::default()),
        }
    }

    /// Per `networking.inbound`, in order: its faults, `None` when it has none.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Option<InboundFaults>> {
        if self.index.is_empty() {
            return Vec::new();
        }
        self.index
            .resolve(dp)
            .inbounds
            .iter()
            .map(inbound_faults)
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

fn faults_of(conf: &Conf) -> Option<Vec<Fault>> {
    conf.http
        .as_ref()
        .map(|h| h.iter().map(Fault::from_conf).collect())
}

/// One inbound's faults from what the engine matched.
pub fn inbound_faults(rules: &InboundRules) -> Option<InboundFaults> {
    let out = if rules.rules.is_empty() {
        // Legacy from-rules: highest priority first, the first entry matching the caller
        // and setting `http` decides (a merge replaces lists).
        let entries: Vec<FaultEntry> = rules
            .from
            .iter()
            .rev()
            .filter_map(|e| {
                let subset = e.subset.as_ref()?;
                let faults = faults_of(&decode(&e.conf)?)?;
                Some(FaultEntry {
                    callers: CallerMatch::from_tags(subset),
                    faults,
                })
            })
            .collect();
        InboundFaults {
            combine: Combine::First,
            entries,
        }
    } else {
        let entries = rules
            .rules
            .iter()
            .filter_map(|r| {
                let callers = match &r.matches {
                    None => CallerMatch::any(),
                    Some(m) => CallerMatch::from_rule_match(
                        &serde_json::from_value::<Match>(m.clone()).ok()?,
                    )?,
                };
                let faults = faults_of(&decode(&r.conf)?)?;
                (!faults.is_empty()).then_some(FaultEntry { callers, faults })
            })
            .collect();
        InboundFaults {
            combine: Combine::All,
            entries,
        }
    };
    out.entries
        .iter()
        .any(|e| !e.faults.is_empty())
        .then_some(out)
}

/// The `inspect` view of one inbound: the policies selecting it and the faults in force.
pub fn explain_json(rules: &InboundRules) -> Value {
    serde_json::json!({
        "policies": rules.policies,
        "effective": inbound_faults(rules).map(|f| conf_json(&f)).unwrap_or(Value::Null),
    })
}

crate::policies::rules::rules_source!(MeshFaultInjectionSpec; to; from; rules);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::callers::Caller;
    use crate::policies::meshtrafficpermission::PeerIdentity;

    fn spec(yaml: &str) -> MeshFaultInjectionSpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshFaultInjection(s) => s,
            other => panic!("{other:?}"),
        }
    }

    const BOOKING: &str = "type: Dataplane\nname: booking-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: booking, kuma.io/protocol: http}}\n    - {port: 9090, tags: {kuma.io/service: admin, kuma.io/protocol: http}}\n";

    fn resolve(policies: &[(&str, &MeshFaultInjectionSpec)]) -> Vec<Option<InboundFaults>> {
        let labels = Tags::new();
        let list: Vec<_> = policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
        let rules = FaultInjectionRules::new("default", &list);
        let d = crate::policies::test_util::dataplane(BOOKING);
        rules.for_dataplane(&DataplaneView {
            mesh: "default",
            name: "booking-1",
            labels: &labels,
            spec: &d,
        })
    }

    fn caller(id: &PeerIdentity) -> Caller<'_> {
        Caller {
            identity: Some(id),
            sni: None,
        }
    }

    #[test]
    fn percentages_and_bandwidths_convert_as_kuma_hands_them_to_envoy() {
        let p = |s: &str| per_million(Some(&IntOrString::String(s.into())));
        assert_eq!(p("50"), 500_000);
        assert_eq!(p("12.1"), 121_000);
        assert_eq!(p("62.9"), 629_000);
        assert_eq!(p("0.0001"), 1);
        assert_eq!(p("100"), PER_MILLION);
        assert_eq!(per_million(Some(&IntOrString::Int(55))), 550_000);
        assert_eq!(per_million(None), 0);
        assert_eq!(bandwidth_bytes_per_second("100kbps"), Some(100 * 1024));
        assert_eq!(bandwidth_bytes_per_second("1Mbps"), Some(1_000 * 1024));
        assert_eq!(bandwidth_bytes_per_second("5 Gbps"), Some(5_000_000 * 1024));
        for bad in ["Mbps", "1kMbps", "100", "1.5Mbps"] {
            assert_eq!(bandwidth_bytes_per_second(bad), None, "{bad}");
        }
    }

    #[test]
    fn legacy_from_entries_first_match_wins_highest_priority_first() {
        let wide = spec(
            "type: MeshFaultInjection\nname: all\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n    - targetRef: {kind: Mesh}\n      default:\n        http:\n          - delay: {value: 1s, percentage: 100}\n",
        );
        let narrow = spec(
            "type: MeshFaultInjection\nname: flight-control\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: booking}\n  from:\n    - targetRef: {kind: MeshService, name: flight-control}\n      default:\n        http:\n          - abort: {httpStatus: 503, percentage: '50'}\n",
        );
        let got = resolve(&[("all", &wide), ("flight-control", &narrow)]);
        let booking = got[0]
            .as_ref()
            .unwrap_or_else(|| panic!("faults on booking"));
        assert_eq!(booking.combine, Combine::First);
        assert_eq!(booking.entries.len(), 2);
        let fc = PeerIdentity::new("default", ["flight-control"]);
        let other = PeerIdentity::new("default", ["web"]);
        let first = |id: &PeerIdentity| {
            booking
                .entries
                .iter()
                .find(|e| e.callers.matches(&caller(id)))
                .map(|e| e.faults.clone())
        };
        assert_eq!(
            first(&fc),
            Some(vec![Fault {
                abort: Some(Abort {
                    status: 503,
                    per_million: 500_000
                }),
                ..Fault::default()
            }])
        );
        assert_eq!(
            first(&other),
            Some(vec![Fault {
                delay: Some(Delay {
                    ms: 1000,
                    per_million: PER_MILLION
                }),
                ..Fault::default()
            }])
        );
        // The admin inbound is only selected by the mesh-wide policy.
        let admin = got[1].as_ref().unwrap_or_else(|| panic!("faults on admin"));
        assert_eq!(admin.entries.len(), 1);
    }

    #[test]
    fn rules_apply_every_matching_entry_unmerged() {
        let rules = spec(
            "type: MeshFaultInjection\nname: r\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  rules:\n    - default:\n        http:\n          - delay: {value: 300ms, percentage: 100}\n    - matches:\n        - spiffeID: {type: Exact, value: 'spiffe://default/flight-control'}\n      default:\n        http:\n          - abort: {httpStatus: 503, percentage: 100}\n          - responseBandwidth: {limit: 100kbps, percentage: 100}\n",
        );
        let got = resolve(&[("r", &rules)]);
        let f = got[0].as_ref().unwrap_or_else(|| panic!("faults"));
        assert_eq!(f.combine, Combine::All);
        // The SPIFFE ID match sorts before the catch-all.
        assert_eq!(
            f.entries[0].callers.spiffe_exact.as_deref(),
            Some("spiffe://default/flight-control")
        );
        assert_eq!(f.entries[0].faults.len(), 2);
        assert!(f.entries[1].callers.is_any());
        let fc = PeerIdentity::new("default", ["flight-control"]);
        let n = f
            .entries
            .iter()
            .filter(|e| e.callers.matches(&caller(&fc)))
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn no_policy_no_faults() {
        assert!(resolve(&[]).is_empty());
        let empty = spec(
            "type: MeshFaultInjection\nname: e\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: nobody}\n  from:\n    - targetRef: {kind: Mesh}\n      default:\n        http:\n          - delay: {value: 1s, percentage: 100}\n",
        );
        assert_eq!(resolve(&[("e", &empty)]), vec![None, None]);
    }
}
