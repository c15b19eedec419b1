use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Tags;

/// Body of a `MeshService`. On Universal the control plane generates one per `kuma.io/service`
/// found in Dataplane inbounds; users may also apply their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshServiceSpec {
    /// `Available` or `Unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<MeshServiceSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<MeshServicePort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<MeshServiceIdentity>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshServiceSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_ref: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_labels: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub port: u32,
    /// A port number or an inbound name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshServiceIdentity {
    /// `ServiceTag` or `SpiffeID`.
    #[serde(rename = "type", default)]
    pub identity_type: String,
    #[serde(default)]
    pub value: String,
}
