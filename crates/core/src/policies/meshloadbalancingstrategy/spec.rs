//! The body of a MeshLoadBalancingStrategy, field for field as Kuma 2.14 spells it
//! (`meshloadbalancingstrategy.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised). The enumerations (`loadBalancer.type`, `hashPolicies[].type`,
//! `failover[].to.type`, `ringHash.hashFunction`) are kept as text: Kuma's validator checks
//! them only where it acts on them ([`super::validate`]).

use serde::{Deserialize, Serialize};

use crate::policies::common::{GoDuration, IntOrString};
use crate::spec::TargetRef;

/// Body of a `MeshLoadBalancingStrategy`: how a proxy balances the traffic it sends, per
/// group of destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshLoadBalancingStrategySpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
}

impl MeshLoadBalancingStrategySpec {
    /// Whether a `to[]` entry names `localZone.affinityTags` (the proxies then need their
    /// endpoints' tags).
    pub fn has_affinity_tags(&self) -> bool {
        self.to.iter().flatten().any(|t| {
            t.default
                .as_ref()
                .and_then(|d| d.locality_awareness.as_ref())
                .and_then(|l| l.local_zone.as_ref())
                .and_then(|z| z.affinity_tags.as_ref())
                .is_some_and(|a| !a.is_empty())
        })
    }
}

/// Balancing of the traffic to a group of destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// The strategy: locality awareness, the algorithm, and what a consistent hash is taken of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_awareness: Option<LocalityAwareness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// What `RingHash` and `Maglev` hash, tried in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// Prefer nearby endpoints: inside the zone by tags, then other zones in a given order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityAwareness {
    /// `true` balances across all endpoints whatever their locality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_zone: Option<LocalZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_zone: Option<CrossZone>,
}

/// Priorities inside the local zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalZone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_tags: Option<Vec<AffinityTag>>,
}

/// A tag whose value endpoints should share with the caller, with an optional weight (all
/// tags have one, or none does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AffinityTag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Which zones take the traffic when the local zone's endpoints are not enough.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossZone {
    /// Rules in order of priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Vec<Failover>>,
    /// Share of live endpoints (percent, above 0; default 50) below which the next priority
    /// is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_threshold: Option<FailoverThreshold>,
}

/// One failover rule: for callers in `from` zones (all when missing), the zones in `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failover {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ToZone>,
}

/// The caller zones of a failover rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromZone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

/// The target zones of a failover rule: `None`, `Only` (these), `Any`, `AnyExcept` (these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToZone {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub zone_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

/// [`CrossZone::failover_threshold`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailoverThreshold {
    /// Percent, above 0 and at most 100 (`70`, `"99.5"`); unset is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

/// The algorithm: `RoundRobin`, `LeastRequest`, `RingHash`, `Random` or `Maglev`, with the
/// settings of the chosen one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub lb_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_robin: Option<RoundRobin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub least_request: Option<LeastRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<Random>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
}

/// Round robin has no settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundRobin {}

/// Random has no settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Random {}

/// The host with the fewest active requests among `choiceCount` random ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeastRequest {
    /// Hosts compared (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
    /// How strongly active requests lower a host's weight; not negative (`1`, `"1.3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_request_bias: Option<IntOrString>,
}

/// Consistent hashing on a ring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// `XXHash` (default) or `MurmurHash2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ring_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ring_size: Option<u32>,
    /// Deprecated by Kuma in favour of [`Conf::hash_policies`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// Consistent hashing with Maglev's table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Maglev {
    /// A prime (default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u32>,
    /// Deprecated by Kuma in favour of [`Conf::hash_policies`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// What one hash is taken of: `Header`, `Cookie`, `Connection` (`SourceIP`, deprecated),
/// `QueryParameter` or `FilterState`, with the matching field set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashPolicy {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    /// Stop at this policy when it produced a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<NamedKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<Cookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<NamedKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_state: Option<FilterState>,
}

/// A request header or query parameter, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A cookie, generated with `ttl` when missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cookie {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// An absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Properties of the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    #[serde(default, rename = "sourceIP", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

/// An object of Envoy's per-request filter state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}
