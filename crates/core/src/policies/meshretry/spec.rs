//! The body of a MeshRetry, field for field as Kuma 2.14 spells it (`meshretry.go`).
//!
//! Every field is optional here so a document reads back exactly as written (unset fields
//! are not serialised); fields Kuma requires (`to[].targetRef`, `resetHeaders[].name`, …)
//! are checked by [`super::validate`], which reports them the way Kuma's zero values are
//! reported. Values from a closed set (`retryOn`, `predicate`, `format`) stay strings so
//! that every bad value is reported at once.

use serde::{Deserialize, Serialize};

use crate::policies::common::{GoDuration, HeaderMatch, string_or_integer_list};
use crate::spec::{Tags, TargetRef};

/// Body of a `MeshRetry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshRetrySpec {
    /// Which proxies the policy applies to; missing means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Destinations and the retry settings for each. An empty list is allowed (it overrides
    /// inherited rules with nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<ToItem>>,
}

/// One destination (or group of destinations) and its retry settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToItem {
    /// Required by Kuma; missing is reported as `targetRef.kind: must be defined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

/// Retry settings per protocol; at least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Tcp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Grpc>,
}

/// TCP: how many times to try connecting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tcp {
    /// Connection attempts before giving up; must be above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connect_attempt: Option<u32>,
}

/// HTTP retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http {
    /// Attempts on failed, retriable requests (Envoy's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Time limit of each attempt (`0` disables it; unset: the route's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    /// Conditions that cause a retry: [`HTTP_RETRY_ON`] or an HTTP status code (`"503"`;
    /// a bare `503` is read as its text, as Kuma's YAML reader does).
    #[serde(
        default,
        deserialize_with = "string_or_integer_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_on: Option<Vec<String>>,
    /// Response headers that trigger a retry when one matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retriable_response_headers: Option<Vec<HeaderMatch>>,
    /// Request headers that must be present for retries to be attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retriable_request_headers: Option<Vec<HeaderMatch>>,
    /// How hosts are chosen for a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_selection: Option<Vec<Predicate>>,
    /// Host-selection attempts before the last selected host is used (Envoy's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_selection_max_attempts: Option<i64>,
}

/// gRPC retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grpc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    /// gRPC status names that cause a retry: [`GRPC_RETRY_ON`].
    #[serde(
        default,
        deserialize_with = "string_or_integer_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_on: Option<Vec<String>>,
}

/// Exponential back-off between retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackOff {
    /// First interval (Envoy's default: 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<GoDuration>,
    /// Longest interval (default: 10 × `baseInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

/// Back-off driven by the upstream's rate-limit headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitedBackOff {
    /// Headers to read the wait from, tried in order; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_headers: Option<Vec<ResetHeader>>,
    /// Longest wait (Envoy's default: 300s); must be above zero when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

/// One rate-limit header and how to read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetHeader {
    /// Header name; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Seconds` or `UnixTimestamp` ([`RATE_LIMIT_FORMATS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One host-selection rule for retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Predicate {
    /// `OmitPreviousHosts`, `OmitHostsWithTags` or `OmitPreviousPriorities`
    /// ([`PREDICATES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    /// Hosts to skip (`OmitHostsWithTags`, where it is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// How often priority load is recomputed (`OmitPreviousPriorities`). Unset means
    /// [`DEFAULT_UPDATE_FREQUENCY`], the default Kuma's API schema fills in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_frequency: Option<i32>,
}

impl Predicate {
    /// `updateFrequency` with Kuma's schema default applied.
    pub fn update_frequency_or_default(&self) -> i32 {
        self.update_frequency.unwrap_or(DEFAULT_UPDATE_FREQUENCY)
    }
}

/// Kuma's schema default for `hostSelection[].updateFrequency`.
pub const DEFAULT_UPDATE_FREQUENCY: i32 = 2;

/// The named `http.retryOn` conditions, and the Envoy `retry_on` value (or HTTP method) each
/// stands for. Any HTTP status code Go knows (`"503"`) is also allowed.
pub const HTTP_RETRY_ON: [(&str, &str); 17] = [
    ("5xx", "5xx"),
    ("GatewayError", "gateway-error"),
    ("Reset", "reset"),
    ("Retriable4xx", "retriable-4xx"),
    ("ConnectFailure", "connect-failure"),
    ("EnvoyRatelimited", "envoy-ratelimited"),
    ("RefusedStream", "refused-stream"),
    ("Http3PostConnectFailure", "http3-post-connect-failure"),
    ("HttpMethodConnect", "CONNECT"),
    ("HttpMethodDelete", "DELETE"),
    ("HttpMethodGet", "GET"),
    ("HttpMethodHead", "HEAD"),
    ("HttpMethodOptions", "OPTIONS"),
    ("HttpMethodPatch", "PATCH"),
    ("HttpMethodPost", "POST"),
    ("HttpMethodPut", "PUT"),
    ("HttpMethodTrace", "TRACE"),
];

/// The `grpc.retryOn` conditions and Envoy's name for each.
pub const GRPC_RETRY_ON: [(&str, &str); 5] = [
    ("Canceled", "canceled"),
    ("DeadlineExceeded", "deadline-exceeded"),
    ("Internal", "internal"),
    ("ResourceExhausted", "resource-exhausted"),
    ("Unavailable", "unavailable"),
];

/// `hostSelection[].predicate` values.
pub const PREDICATES: [&str; 3] = [
    "OmitPreviousHosts",
    "OmitHostsWithTags",
    "OmitPreviousPriorities",
];

/// `rateLimitedBackOff.resetHeaders[].format` values.
pub const RATE_LIMIT_FORMATS: [&str; 2] = ["Seconds", "UnixTimestamp"];
