//! What MeshTrace contributes to a proxy. A single-item policy, merged as MeshMetric is
//! (the `default` of every policy whose top-level `targetRef` selects the proxy, in
//! priority order, lists replaced); the first backend decides where spans go. kuma-dp
//! traces every HTTP inbound and outbound with it (Kuma configures each HTTP connection
//! manager alike), as the service Kuma names (`IdentifyingName`: the first inbound's
//! `kuma.io/service`), with Kuma's extra literal tags `kuma.mesh` and `kuma.zone`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Conf, MeshTraceSpec};
use crate::policies::common::IntOrString;
use crate::policies::meshfaultinjection::per_million;
use crate::policies::rules::{DataplaneView, SingleItem, SingleItemRules, ZONE_LABEL, conf_json};

/// A proxy's MeshTrace, in its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTracing {
    /// The service spans are reported as (`service.name`, Zipkin's `localEndpoint`).
    pub service: String,
    pub backend: TraceBackend,
    /// Envoy's sampling, in parts per million (Kuma's percentages; 100 % when unset).
    pub sampling: SamplingRates,
    /// Custom tags (the policy's, then Kuma's `kuma.mesh` / `kuma.zone` unless named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<SpanTag>,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum TraceBackend {
    /// OTLP over gRPC to `host:port` (Kuma's inline `endpoint`).
    OpenTelemetry { endpoint: String },
    /// Zipkin v2 JSON (`POST` to `url`).
    Zipkin {
        url: String,
        trace_id_128bit: bool,
        shared_span_context: bool,
    },
}

impl TraceBackend {
    /// How the backend is named in metrics (`otel:host:port`, `zipkin:url`).
    pub fn label(&self) -> String {
        match self {
            TraceBackend::OpenTelemetry { endpoint } => format!("otel:{endpoint}"),
            TraceBackend::Zipkin { url, .. } => format!("zipkin:{url}"),
        }
    }
}

/// Envoy's `overall_sampling`, `client_sampling` and `random_sampling`, per million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplingRates {
    pub overall: u32,
    pub client: u32,
    pub random: u32,
}

/// A span tag: a literal, or a request header's value (its `default` when absent; no tag
/// when absent without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SpanTag {
    Literal {
        name: String,
        value: String,
    },
    Header {
        name: String,
        header: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
}

impl SpanTag {
    pub fn name(&self) -> &str {
        match self {
            SpanTag::Literal { name, .. } | SpanTag::Header { name, .. } => name,
        }
    }
}

/// Why a merged MeshTrace gives the proxy no tracing though it names a backend: said at
/// apply time (a warning) and in the proxy's config never (it simply has none).
pub fn unsupported_backend(conf: &Conf) -> Option<&'static str> {
    let backend = conf.backends.as_ref()?.first()?;
    match backend.backend_type.as_deref() {
        Some("Datadog") => Some("the Datadog backend is not supported by kuma-dp"),
        Some("OpenTelemetry") => match &backend.open_telemetry {
            Some(o) if o.endpoint.as_deref().is_none_or(str::is_empty) => Some(
                "OpenTelemetry backends given by backendRef are not supported by kuma-dp; give an endpoint",
            ),
            _ => None,
        },
        Some("Zipkin") => match &backend.zipkin {
            Some(z) if z.api_version.as_deref() == Some("httpProto") => {
                Some("Zipkin apiVersion httpProto is not supported by kuma-dp; use httpJson")
            }
            Some(z) if z.url.as_deref().is_some_and(|u| !u.starts_with("http://")) => {
                Some("kuma-dp sends Zipkin spans over plain HTTP only (an http:// url)")
            }
            _ => None,
        },
        _ => None,
    }
}

/// A mesh's MeshTraces, indexed once; [`TraceRules::for_dataplane`] per proxy.
pub type TraceRules = SingleItemRules<MeshTraceSpec>;

impl SingleItem for MeshTraceSpec {
    type Conf = Conf;
    fn default_json(&self) -> Value {
        conf_json(&self.default)
    }
}

impl TraceRules {
    /// How `dp` traces: `None` without a backend kuma-dp can send to.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Option<ProxyTracing> {
        let (_, conf) = self.merged(dp);
        proxy_tracing(&conf?, dp)
    }
}

/// The proxy's view of a merged conf.
pub fn proxy_tracing(conf: &Conf, dp: &DataplaneView<'_>) -> Option<ProxyTracing> {
    if unsupported_backend(conf).is_some() {
        return None;
    }
    let backend = conf.backends.as_ref()?.first()?;
    let backend = match backend.backend_type.as_deref()? {
        "OpenTelemetry" => TraceBackend::OpenTelemetry {
            endpoint: backend.open_telemetry.as_ref()?.endpoint.clone()?,
        },
        "Zipkin" => {
            let z = backend.zipkin.as_ref()?;
            TraceBackend::Zipkin {
                url: z.url.clone()?,
                trace_id_128bit: z.trace_id_128bit.unwrap_or(false),
                shared_span_context: z.shared_span_context.unwrap_or(true),
            }
        }
        _ => return None,
    };
    let rate = |v: Option<&IntOrString>| match v {
        None => per_million(Some(&IntOrString::Int(100))),
        Some(v) => per_million(Some(v)),
    };
    let sampling = conf.sampling.as_ref();
    let sampling = SamplingRates {
        overall: rate(sampling.and_then(|s| s.overall.as_ref())),
        client: rate(sampling.and_then(|s| s.client.as_ref())),
        random: rate(sampling.and_then(|s| s.random.as_ref())),
    };
    let mut tags: Vec<SpanTag> = conf
        .tags
        .iter()
        .flatten()
        .filter_map(|t| match (&t.literal, &t.header) {
            (Some(value), _) => Some(SpanTag::Literal {
                name: t.name.clone(),
                value: value.clone(),
            }),
            (None, Some(h)) => Some(SpanTag::Header {
                name: t.name.clone(),
                header: h.name.to_ascii_lowercase(),
                default: h.default.clone(),
            }),
            (None, None) => None,
        })
        .collect();
    let zone = dp.labels.get(ZONE_LABEL).cloned().unwrap_or_default();
    for (name, value) in [("kuma.mesh", dp.mesh.to_string()), ("kuma.zone", zone)] {
        if !value.is_empty() && !tags.iter().any(|t| t.name() == name) {
            tags.push(SpanTag::Literal {
                name: name.to_string(),
                value,
            });
        }
    }
    let service = dp
        .spec
        .networking
        .as_ref()
        .and_then(|n| n.inbound.first())
        .map(|i| i.service().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| dp.name.to_string());
    Some(ProxyTracing {
        service,
        backend,
        sampling,
        tags,
    })
}

crate::policies::rules::rules_source!(MeshTraceSpec);
