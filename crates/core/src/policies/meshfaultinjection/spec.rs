//! The body of a MeshFaultInjection, field for field as Kuma 2.14 spells it
//! (`meshfaultinjection.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised). Kuma's Go types have plain values where these are `None`: an unset
//! `httpStatus` is 0, an unset `percentage` or `delay.value` is 0, an unset `limit` is `""`;
//! [`super::validate`] judges them as such.

use serde::{Deserialize, Serialize};

use crate::policies::common::{GoDuration, IntOrString, string_or_integer};
use crate::spec::{Match, TargetRef};

/// Body of a `MeshFaultInjection`: faults injected into the traffic a proxy receives
/// (`from`, deprecated by Kuma in favour of `rules`, or `rules`), or, for gateways, into
/// the traffic it sends (`to`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshFaultInjectionSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Faults per group of clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// Faults per group of destinations; only where the policy's scope includes gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
    /// Faults for inbound traffic, optionally narrowed by the caller's SPIFFE ID or SNI;
    /// cannot be combined with `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// Faults for the inbound traffic that `matches` selects (all of it without matches).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Faults for the traffic from a group of clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Faults for the traffic to a group of destinations (only `kind: Mesh`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// The faults: a list of HTTP fault sets, each applied independently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<FaultInjectionConf>>,
}

/// One set of HTTP faults: an abort, a delay, a response bandwidth limit, or several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultInjectionConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelayConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bandwidth: Option<ResponseBandwidthConf>,
}

/// Answer some requests with a status code instead of delivering them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortConf {
    /// The status code returned (100-599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// Share of requests aborted, percent 0-100 (`50`, `"50.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

/// Delay some responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelayConf {
    /// How long the response is delayed (not negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<GoDuration>,
    /// Share of requests delayed, percent 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

/// Slow some responses down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseBandwidthConf {
    /// The rate, in `kbps`, `Mbps` or `Gbps` (`100Mbps`). A bare integer is read as its
    /// text (and then refused for its missing unit), as Kuma reads it.
    #[serde(
        default,
        deserialize_with = "string_or_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<String>,
    /// Share of responses limited, percent 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}
