use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of a `Mesh` (Kuma's `api/mesh/v1alpha1/mesh.proto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Mtls>,
    /// `["*"]` or type names: which default policies not to create with the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_creating_initial_policies: Option<Vec<String>>,
    // Kuma fields Aerie stores and returns but does not act on yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_services: Option<Value>,
}

impl MeshSpec {
    /// The enabled mTLS backend, if mTLS is on (a non-empty `enabledBackend` naming a backend).
    pub fn enabled_mtls_backend(&self) -> Option<&MtlsBackend> {
        let mtls = self.mtls.as_ref()?;
        let name = mtls.enabled_backend.as_deref().filter(|n| !n.is_empty())?;
        mtls.backends.iter().find(|b| b.name == name)
    }

    pub fn mtls_enabled(&self) -> bool {
        self.enabled_mtls_backend().is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mtls {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<MtlsBackend>,
    /// Empty or missing: mTLS off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_validation: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MtlsBackend {
    #[serde(default)]
    pub name: String,
    /// `builtin` or `provided`.
    #[serde(rename = "type", default)]
    pub backend_type: String,
    /// `STRICT` (default) or `PERMISSIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp_cert: Option<DpCert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_chain: Option<RequestTimeout>,
    /// Type-specific: [`BuiltinCaConf`] or [`ProvidedCaConf`]; checked by validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DpCert {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestTimeout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

/// `conf` of a `builtin` backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuiltinCaConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<CaCertConf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaCertConf {
    #[serde(rename = "RSAbits", default, skip_serializing_if = "Option::is_none")]
    pub rsa_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

/// `conf` of a `provided` backend: the user's CA certificate and key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvidedCaConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<DataSource>,
}

/// Kuma's DataSource oneof: exactly one of the four must be set (checked by validation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSource {
    /// Name of a Secret in the same mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Path on the control plane's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Base64 of the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_string: Option<String>,
}
