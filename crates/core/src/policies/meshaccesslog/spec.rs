//! The body of a MeshAccessLog, field for field as Kuma 2.14 spells it (`meshaccesslog.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised). The enumerations (`backends[].type`, `format.type`) are kept as
//! text and checked by [`super::validate`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policies::common::BackendResourceRef;
use crate::spec::{Match, TargetRef};

/// Body of a `MeshAccessLog`: where a proxy logs the requests and connections it handles,
/// per group of destinations (`to`), of clients (`from`, deprecated) or per caller match
/// (`rules`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshAccessLogSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Logging of the traffic a proxy sends, per group of destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
    /// Logging of the traffic a proxy receives, per group of clients (`kind: Mesh` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// Logging of the traffic a proxy receives, optionally narrowed by the caller's SPIFFE
    /// ID or SNI; cannot be combined with `to` or `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// Backends for the inbound traffic that `matches` selects (all of it without matches).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Backends for the traffic to a group of destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Backends for the traffic from a group of clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Where the log lines go. A list: a merge replaces it whole (the highest-priority entry
/// that sets it wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
}

/// One backend: `type` names which of `file`, `tcp`, `openTelemetry` is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// `File`, `Tcp` or `OpenTelemetry`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub backend_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OtelBackend>,
}

/// Lines appended to a file on the proxy's machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileBackend {
    /// Kuma's default format when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Lines sent to a TCP collector (`host:port`), one per line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpBackend {
    /// Kuma's default format when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// OTLP log records sent to a collector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<OtelAttribute>>,
    /// A string or an OTLP `AnyValue` shape, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// `host:port` of the collector (deprecated by Kuma for `backendRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A MeshOpenTelemetryBackend reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendResourceRef>,
}

/// An OTLP attribute: a static name and a value with placeholders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelAttribute {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A log line's shape: `Plain` text or `Json` fields, with Envoy's command operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Format {
    /// `Plain` or `Json`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub format_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Vec<JsonValue>>,
    /// Leave out operators that have no value (instead of `-` in text, `null` in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_empty_values: Option<bool>,
}

/// One field of a `Json` format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}
