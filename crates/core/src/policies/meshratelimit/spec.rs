//! The body of a MeshRateLimit, field for field as Kuma 2.14 spells it (`meshratelimit.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised). Kuma's Go types have plain values where these are `None` in a
//! rate: an unset `num` is 0 and an unset `interval` is 0s; [`super::validate`] judges them
//! as such.

use serde::{Deserialize, Serialize};

use crate::policies::common::GoDuration;
pub use crate::policies::common::{HeaderKeyValue, HeaderModifier};
use crate::spec::{Match, TargetRef};

/// Body of a `MeshRateLimit`: local rate limits on the traffic a proxy receives (`rules`,
/// or the deprecated `from` per group of clients) or, for gateways, on the traffic they
/// forward (`to`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshRateLimitSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Limits per group of clients (only `kind: Mesh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// Limits per group of destinations; only where the policy's scope includes gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
    /// Limits for inbound traffic, optionally narrowed by the caller's SPIFFE ID or SNI;
    /// cannot be combined with `to` or `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// Limits for the inbound traffic that `matches` selects (all of it without matches).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Limits for the traffic from a group of clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Limits for the traffic to a group of destinations (only `kind: Mesh`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// The limits; Kuma requires `local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Local>,
}

/// Limits each proxy enforces on its own: HTTP requests, TCP connections, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Local {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<LocalHttp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<LocalTcp>,
}

/// HTTP requests per interval, and what a limited request gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalHttp {
    /// `true` switches the HTTP limit off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rate_limit: Option<OnRateLimit>,
}

/// The response to a limited request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnRateLimit {
    /// The status code (Envoy's default: 429); Kuma warns below 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderModifier>,
}

/// TCP connections per interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalTcp {
    /// `true` switches the TCP limit off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_rate: Option<Rate>,
}

/// `num` requests or connections per `interval`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    /// Above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num: Option<u32>,
    /// Above 50ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
}
