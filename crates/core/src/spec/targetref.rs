use serde::{Deserialize, Serialize};

use super::Tags;

/// A reference to proxies or services (`api/common/v1alpha1/targetref.go`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
}

/// A traffic predicate of the `rules` form (`api/common/v1alpha1/match.go`): the caller's
/// SPIFFE ID and/or the SNI it asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    #[serde(default, rename = "spiffeID", skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<ValueMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<ValueMatch>,
}

/// `{type, value}`: `Exact`/`Prefix` for SPIFFE IDs, `Exact` for SNI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatch {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}
