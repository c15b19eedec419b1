//! What MeshMetric contributes to a proxy. MeshMetric is a single-item policy: the
//! `default` of every policy whose top-level `targetRef` selects the proxy, merged in
//! priority order (JSON merge patch; `appendProfiles` appended, `include`, `exclude`,
//! `applications` and `backends` replaced), as Kuma's `SingleItemRules`. The proxy serves
//! its metrics on each Prometheus backend's port and path (Kuma's defaults 5670 and
//! `/metrics`) filtered by the profiles, with its applications' metrics and the labels
//! Kuma's kuma-dp adds (`extraLabels`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, MeshMetricSpec};
use crate::policies::rules::{DataplaneView, SingleItem, SingleItemRules, conf_json};

/// Kuma's default Prometheus port and path, and the client a backend without `clientId`
/// is announced to.
pub const DEFAULT_PORT: u16 = 5670;
pub const DEFAULT_PATH: &str = "/metrics";
pub const DEFAULT_CLIENT_ID: &str = "_kuma-default-client";

/// A proxy's MeshMetric, in its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyMetrics {
    /// The proxy's address (`networking.address`): the endpoints listen there.
    pub address: String,
    /// Where the proxy serves its metrics (one listener each).
    pub prometheus: Vec<PrometheusEndpoint>,
    /// The broadest profile appended (`Basic` when none is).
    pub profile: ProfileName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<NameSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<NameSelector>,
    #[serde(default)]
    pub include_unused: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<AppEndpoint>,
    /// Labels added to every sample (Kuma's `extraLabels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A Prometheus endpoint on the proxy's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusEndpoint {
    pub client_id: String,
    pub port: u16,
    pub path: String,
    /// `ProvidedTLS` asked for (served in plaintext, as Kuma without certificate paths).
    #[serde(default)]
    pub tls_requested: bool,
}

/// An application metrics endpoint the proxy scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
    pub port: u16,
    pub path: String,
}

/// Kuma's metric profiles, broadest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProfileName {
    All,
    Basic,
    None,
}

/// A metric-name selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "match")]
pub enum NameSelector {
    Prefix(String),
    Exact(String),
    Contains(String),
    Regex(String),
}

/// A mesh's MeshMetrics, indexed once; [`MetricRules::for_dataplane`] per proxy.
pub type MetricRules = SingleItemRules<MeshMetricSpec>;

impl SingleItem for MeshMetricSpec {
    type Conf = Conf;
    fn default_json(&self) -> Value {
        conf_json(&self.default)
    }
}

impl MetricRules {
    /// What `dp` serves: `None` without a Prometheus backend.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Option<ProxyMetrics> {
        let (_, conf) = self.merged(dp);
        proxy_metrics(&conf?, dp)
    }
}

/// The proxy's view of a merged conf.
pub fn proxy_metrics(conf: &Conf, dp: &DataplaneView<'_>) -> Option<ProxyMetrics> {
    let prometheus: Vec<PrometheusEndpoint> = conf
        .backends
        .iter()
        .flatten()
        .filter(|b| b.backend_type.as_deref() == Some("Prometheus"))
        .filter_map(|b| b.prometheus.as_ref())
        .filter_map(|p| {
            Some(PrometheusEndpoint {
                client_id: p
                    .client_id
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CLIENT_ID.into()),
                port: match p.port {
                    None => DEFAULT_PORT,
                    Some(port) => u16::try_from(port).ok().filter(|p| *p != 0)?,
                },
                path: p
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| DEFAULT_PATH.into()),
                tls_requested: p.tls.as_ref().and_then(|t| t.mode.as_deref())
                    == Some("ProvidedTLS"),
            })
        })
        .collect();
    if prometheus.is_empty() {
        return None;
    }
    let profiles = conf.sidecar.as_ref().and_then(|s| s.profiles.as_ref());
    let profile = profiles
        .and_then(|p| p.append_profiles.as_ref())
        .and_then(|list| {
            list.iter()
                .filter_map(|p| match p.name.as_str() {
                    "All" => Some(ProfileName::All),
                    "Basic" => Some(ProfileName::Basic),
                    "None" => Some(ProfileName::None),
                    _ => None,
                })
                .min()
        })
        .unwrap_or(ProfileName::Basic);
    let selectors = |list: Option<&Vec<super::Selector>>| -> Vec<NameSelector> {
        list.into_iter()
            .flatten()
            .filter_map(|s| {
                let m = s.match_value.clone();
                Some(match s.selector_type.as_str() {
                    "Prefix" => NameSelector::Prefix(m),
                    "Exact" => NameSelector::Exact(m),
                    "Contains" => NameSelector::Contains(m),
                    "Regex" => NameSelector::Regex(m),
                    _ => return None,
                })
            })
            .collect()
    };
    let applications = conf
        .applications
        .iter()
        .flatten()
        .filter_map(|a| {
            Some(AppEndpoint {
                name: a.name.clone(),
                address: a.address.clone().unwrap_or_else(|| "127.0.0.1".into()),
                port: u16::try_from(a.port?).ok().filter(|p| *p != 0)?,
                path: a
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| DEFAULT_PATH.into()),
            })
        })
        .collect();
    Some(ProxyMetrics {
        address: dp
            .spec
            .networking
            .as_ref()
            .map(|n| n.address.clone())
            .unwrap_or_default(),
        prometheus,
        profile,
        include: selectors(profiles.and_then(|p| p.include.as_ref())),
        exclude: selectors(profiles.and_then(|p| p.exclude.as_ref())),
        include_unused: conf
            .sidecar
            .as_ref()
            .and_then(|s| s.include_unused)
            .unwrap_or(false),
        applications,
        labels: extra_labels(dp),
    })
}

/// Kuma's `extraLabels` without unified naming: `mesh`, `zone` (from the Dataplane's
/// `kuma.io/zone` label), `kuma.proxy_role`, every inbound tag (sanitised: `kuma_io_service`)
/// with its plural form listing every value (`kuma_io_services: ",a,b,"`), `dataplane` and
/// `service`.
pub fn extra_labels(dp: &DataplaneView<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("mesh".to_string(), dp.mesh.to_string());
    if let Some(zone) = dp.labels.get(crate::policies::rules::ZONE_LABEL) {
        out.insert("zone".to_string(), zone.clone());
    }
    out.insert("kuma.proxy_role".to_string(), "sidecar".to_string());
    let inbound = dp
        .spec
        .networking
        .as_ref()
        .map(|n| n.inbound.as_slice())
        .unwrap_or_default();
    let mut tags: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in inbound {
        for (k, v) in &i.tags {
            let values = tags.entry(k.as_str()).or_default();
            if !values.contains(&v.as_str()) {
                values.push(v.as_str());
            }
        }
    }
    for (k, values) in &tags {
        let key = sanitize_label_name(k);
        if let Some(first) = values.first() {
            out.insert(key.clone(), first.to_string());
        }
        out.insert(format!("{key}s"), format!(",{},", values.join(",")));
    }
    out.insert("dataplane".to_string(), dp.name.to_string());
    if let Some(service) = inbound
        .first()
        .map(|i| i.service())
        .filter(|s| !s.is_empty())
    {
        out.insert("service".to_string(), service.to_string());
    }
    out
}

/// Prometheus's label-name rule: anything but `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

crate::policies::rules::rules_source!(MeshMetricSpec);
