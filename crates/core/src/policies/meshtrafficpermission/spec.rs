use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::TargetRef;

/// Body of a `MeshTrafficPermission` (Kuma 2.14, legacy `from` form plus the `rules` form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTrafficPermissionSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// The 2.12+ `rules` form needs MeshIdentity; stored and validated for shape, refused
    /// by validation until MeshIdentity exists (see the README's compatibility table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<MtpConf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MtpConf {
    /// `Allow`, `Deny` or `AllowWithShadowDeny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}
