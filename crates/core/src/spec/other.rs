use serde::{Deserialize, Serialize};

/// The tag every inbound carries: the service name, and the SPIFFE ID path.
pub const SERVICE_TAG: &str = "kuma.io/service";
/// The tag that selects how the proxy handles an inbound (`tcp` when missing).
pub const PROTOCOL_TAG: &str = "kuma.io/protocol";
/// The label that names a policy's mesh in Kubernetes-format documents.
pub const MESH_LABEL: &str = "kuma.io/mesh";
/// Who a policy belongs to (`system`, `producer`, `consumer`, `workload-owner`); a policy
/// without it is a `system` policy.
pub const POLICY_ROLE_LABEL: &str = "kuma.io/policy-role";

/// Body of a `Secret` or `GlobalSecret`: base64 of the secret bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    #[serde(default)]
    pub data: String,
}

/// Body of a `Zone`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}
