//! What MeshAccessLog contributes to a proxy, as Kuma 2.14's plugin configures Envoy's
//! access loggers (`plugin/v1alpha1/plugin.go`, `plugin/xds/rules.go`):
//!
//! - On an inbound, every inbound rule fires on its own (`from[]` entries count as
//!   catch-all rules, Kuma's `is_from_as_rules`): a request matching several rules is
//!   logged to every matching rule's backends, in the engine's order (most specific match
//!   first).
//! - On an outbound, the `to[]` entries selecting it merge in priority order; `backends`
//!   being a list, the highest-priority entry that sets it wins outright.
//!
//! File, TCP and OpenTelemetry (`endpoint`) backends are enforced by kuma-dp; an
//! OpenTelemetry backend naming a `backendRef` (a MeshOpenTelemetryBackend, which Aerie does
//! not have) is validated and stored but not sent to the proxy (left out here).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Backend, Conf, Format, MeshAccessLogSpec};
use crate::policies::callers::CallerMatch;
use crate::policies::rules::{
    Catalog, DataplaneRules, DataplaneView, InboundRules, Merged, Options, RulesIndex, build_index,
    conf_json,
};
use crate::spec::{Match, Tags};

/// The access logs of one listener, in the proxy's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLog {
    /// What Kuma's `%KUMA_*%` operators say on this listener.
    #[serde(default)]
    pub values: LogValues,
    /// Each entry's backends get a line for every request (HTTP) or connection (TCP) of a
    /// caller it matches; an outbound has one entry, for every caller.
    pub entries: Vec<LogEntry>,
}

/// The values of Kuma's own operators on one listener (Kuma's `KumaValues`): Kuma fills
/// them in when it builds the listener, so they name the proxy and the listener, not the
/// request. Aerie's inbound `%KUMA_SOURCE_SERVICE%` is the exception: it names the caller
/// its verified certificate proves (Kuma logs `unknown`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogValues {
    pub mesh: String,
    pub zone: String,
    /// Inbound: `unknown` (the proxy puts the verified caller's service in its place).
    pub source_service: String,
    /// The proxy's own address (`networking.address`), on both directions as in Kuma.
    pub source_address: String,
    pub destination_service: String,
    /// `INBOUND` or `OUTBOUND`.
    pub direction: String,
}

/// Backends for the callers `callers` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    #[serde(default, skip_serializing_if = "CallerMatch::is_any")]
    pub callers: CallerMatch,
    pub backends: Vec<LogBackend>,
}

/// Where one line goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum LogBackend {
    /// Appended to a file on the proxy's machine.
    File { path: String, format: LogFormat },
    /// Sent to a TCP collector, one line at a time.
    Tcp { address: String, format: LogFormat },
    /// Sent as OTLP log records to a collector over gRPC (`host:port`), as Envoy's
    /// OpenTelemetry access logger: the body is the format rendered (a string, or for a
    /// `kvlistValue` body a key-value list), each attribute's value is rendered too.
    Otel {
        endpoint: String,
        body: LogFormat,
        attributes: Vec<(String, String)>,
    },
}

/// The shape of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum LogFormat {
    /// Kuma's default format for the listener's protocol (HTTP or TCP).
    Default,
    /// Text with command operators (a newline is added).
    Plain { text: String, omit_empty: bool },
    /// A JSON object, one field per entry, in order (a newline is added).
    Json {
        fields: Vec<(String, String)>,
        omit_empty: bool,
    },
}

impl LogFormat {
    fn from_spec(f: Option<&Format>) -> Option<LogFormat> {
        let Some(f) = f else {
            return Some(LogFormat::Default);
        };
        let omit_empty = f.omit_empty_values == Some(true);
        match f.format_type.as_deref() {
            Some("Plain") => Some(LogFormat::Plain {
                text: f.plain.clone()?,
                omit_empty,
            }),
            Some("Json") => Some(LogFormat::Json {
                fields: f
                    .json
                    .iter()
                    .flatten()
                    .map(|j| (j.key.clone(), j.value.clone()))
                    .collect(),
                omit_empty,
            }),
            _ => None,
        }
    }
}

impl LogBackend {
    /// An enforceable backend (File or Tcp with a usable format); `None` otherwise.
    pub fn from_spec(b: &Backend) -> Option<LogBackend> {
        match b.backend_type.as_deref()? {
            "File" => {
                let f = b.file.as_ref()?;
                Some(LogBackend::File {
                    path: f.path.clone()?,
                    format: LogFormat::from_spec(f.format.as_ref())?,
                })
            }
            "Tcp" => {
                let t = b.tcp.as_ref()?;
                Some(LogBackend::Tcp {
                    address: t.address.clone()?,
                    format: LogFormat::from_spec(t.format.as_ref())?,
                })
            }
            "OpenTelemetry" => {
                let o = b.open_telemetry.as_ref()?;
                Some(LogBackend::Otel {
                    endpoint: o.endpoint.clone().filter(|e| !e.is_empty())?,
                    body: otel_body(o.body.as_ref()),
                    attributes: o
                        .attributes
                        .iter()
                        .flatten()
                        .map(|a| (a.key.clone(), a.value.clone()))
                        .collect(),
                })
            }
            _ => None,
        }
    }
}

/// An OpenTelemetry backend's `body` as Kuma reads it: missing, the default format; an OTLP
/// `AnyValue` in its JSON form, its `stringValue` as plain text or its `kvlistValue` as
/// fields (each value's `stringValue`); anything else, its JSON text as plain text.
pub fn otel_body(body: Option<&Value>) -> LogFormat {
    let plain = |text: String| LogFormat::Plain {
        text,
        omit_empty: false,
    };
    let Some(body) = body else {
        return LogFormat::Default;
    };
    if let Some(s) = body.as_str() {
        return plain(s.to_string());
    }
    if let Some(s) = body.get("stringValue").and_then(Value::as_str) {
        return plain(s.to_string());
    }
    let kvs = body
        .get("kvlistValue")
        .and_then(|l| l.get("values"))
        .and_then(Value::as_array);
    if let Some(kvs) = kvs {
        let fields: Option<Vec<(String, String)>> = kvs
            .iter()
            .map(|kv| {
                let key = kv.get("key")?.as_str()?;
                let value = kv.get("value")?.get("stringValue")?.as_str()?;
                Some((key.to_string(), value.to_string()))
            })
            .collect();
        if let Some(fields) = fields {
            return LogFormat::Json {
                fields,
                omit_empty: false,
            };
        }
    }
    plain(body.to_string())
}

/// A mesh's MeshAccessLogs, indexed once; [`AccessLogRules::for_dataplane`] per proxy.
#[derive(Debug, Clone, Default)]
pub struct AccessLogRules {
    index: RulesIndex,
}

/// One proxy's access logs: per `networking.inbound` and per `networking.outbound`, in
/// order (`None`: nothing logged there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneAccessLogs {
    pub inbounds: Vec<Option<AccessLog>>,
    pub outbounds: Vec<Option<AccessLog>>,
}

impl AccessLogRules {
    /// `policies` are the mesh's MeshAccessLogs as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshAccessLogSpec)]) -> Self {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshAccessLogSpec)],
        catalog: Catalog,
    ) -> Self {
        AccessLogRules {
            index: build_index(
                mesh,
                policies,
                catalog,
                Options {
                    from_as_rules: true,
                    include_shadow: false,
                },
            ),
        }
    }

    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> DataplaneAccessLogs {
        if self.index.is_empty() {
            return DataplaneAccessLogs::default();
        }
        let rules = self.index.resolve(dp);
        DataplaneAccessLogs {
            inbounds: rules.inbounds.iter().map(inbound_log).collect(),
            outbounds: rules
                .outbounds
                .iter()
                .map(|o| outbound_log(&o.merged))
                .collect(),
        }
    }

    /// What the engine found for one proxy, for `inspect`.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

fn backends_of(conf: &Value) -> Option<Vec<LogBackend>> {
    let conf: Conf = serde_json::from_value(conf.clone()).ok()?;
    Some(
        conf.backends?
            .iter()
            .filter_map(LogBackend::from_spec)
            .collect(),
    )
}

/// One inbound's access logs from what the engine matched.
pub fn inbound_log(rules: &InboundRules) -> Option<AccessLog> {
    let entries: Vec<LogEntry> = rules
        .rules
        .iter()
        .filter_map(|r| {
            let callers = match &r.matches {
                None => CallerMatch::any(),
                Some(m) => {
                    CallerMatch::from_rule_match(&serde_json::from_value::<Match>(m.clone()).ok()?)?
                }
            };
            let backends = backends_of(&r.conf)?;
            (!backends.is_empty()).then_some(LogEntry { callers, backends })
        })
        .collect();
    (!entries.is_empty()).then_some(AccessLog {
        values: LogValues::default(),
        entries,
    })
}

/// One outbound's access log from its merged `to[]` conf.
pub fn outbound_log(merged: &Merged) -> Option<AccessLog> {
    let conf = merged.merged::<Conf>().ok().flatten()?;
    let backends: Vec<LogBackend> = conf
        .backends?
        .iter()
        .filter_map(LogBackend::from_spec)
        .collect();
    (!backends.is_empty()).then(|| AccessLog {
        values: LogValues::default(),
        entries: vec![LogEntry {
            callers: CallerMatch::any(),
            backends,
        }],
    })
}

/// The `inspect` view of one inbound: the policies selecting it and its logs.
pub fn explain_inbound_json(rules: &InboundRules) -> Value {
    serde_json::json!({
        "policies": rules.policies,
        "effective": inbound_log(rules).map(|l| conf_json(&l)).unwrap_or(Value::Null),
    })
}

/// The `inspect` view of one outbound.
pub fn explain_json(merged: &Merged) -> Value {
    crate::policies::rules::explain_json(merged, &outbound_log(merged))
}

crate::policies::rules::rules_source!(MeshAccessLogSpec; to; from; rules);
