//! The wire shape of a MeshTimeout (`pkg/plugins/policies/meshtimeout/api/v1alpha1`).

use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;
use crate::spec::{Match, TargetRef};

/// Body of a `MeshTimeout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTimeoutSpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Outbound timeouts, per group of destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
    /// Inbound timeouts, per group of callers (only `kind: Mesh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<From>>,
    /// Inbound timeouts, the newer form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    #[serde(default)]
    pub target_ref: TargetRef,
    #[serde(default)]
    pub default: Conf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    #[serde(default)]
    pub target_ref: TargetRef,
    #[serde(default)]
    pub default: Conf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    #[serde(default)]
    pub default: Conf,
}

/// The timeouts themselves. Unset fields take what a less specific policy (or Kuma's
/// default policy) says; `0` disables a timeout where Kuma allows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    /// How long establishing a TCP connection to an upstream may take (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<GoDuration>,
    /// A connection with no bytes either way for this long is closed (default 1h; 0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http {
    /// From the start of a request until its response starts (default 15s; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<GoDuration>,
    /// A stream (request/response exchange) with no activity for this long is reset
    /// (default 30m; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<GoDuration>,
    /// The longest a stream may last (unset/0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<GoDuration>,
    /// A connection is closed once it is this old (unset/0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<GoDuration>,
    /// How long a client may take to send the request headers (unset/0 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<GoDuration>,
}
