//! The body of a MeshMetric, field for field as Kuma 2.14 spells it (`meshmetric.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised); Kuma's schema defaults (Prometheus port 5670 and path `/metrics`,
//! an application's path `/metrics`) are applied where the policy resolves
//! ([`super::resolve`]). The enumerations are kept as text and checked by
//! [`super::validate`].

use serde::{Deserialize, Serialize};

use crate::policies::common::{BackendResourceRef, GoDuration};
use crate::spec::TargetRef;

/// Body of a `MeshMetric`: how the proxies it selects expose their metrics (and their
/// applications') and to whom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshMetricSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// What a proxy exposes and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    /// The proxy's own metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<Sidecar>,
    /// The application endpoints whose metrics the proxy serves with its own (a list: a
    /// merge replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<Vec<Application>>,
    /// Where metrics go (a list: a merge replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Profiles>,
    /// Also metrics that were never updated (Envoy's `usedonly` off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_unused: Option<bool>,
}

/// Which of the proxy's metrics are served: the broadest appended profile (Basic by
/// default), minus `exclude`, plus `include` (include wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profiles {
    /// Appended across merged policies (Kuma's `Append` lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_profiles: Option<Vec<Profile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<Selector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Selector>>,
}

/// `All`, `Basic` or `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
}

/// A metric-name selector: `Prefix`, `Regex`, `Exact` or `Contains`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(rename = "type", default)]
    pub selector_type: String,
    #[serde(rename = "match", default)]
    pub match_value: String,
}

/// An application metrics endpoint, scraped by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Application {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `/metrics` when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The proxy's application address (`127.0.0.1`) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// A backend: `type` names which of `prometheus` and `openTelemetry` is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub backend_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OtelBackend>,
}

/// A Prometheus scrape endpoint on the proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusBackend {
    /// The discovery client this endpoint is announced to (`_kuma-default-client` when
    /// missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// 5670 when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `/metrics` when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusTls {
    /// `Disabled` (default), `ProvidedTLS` or `ActiveMTLSBackend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// An OpenTelemetry collector the proxy pushes metrics to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendResourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<GoDuration>,
}
