//! What MeshRetry contributes to a proxy: for each outbound, the merged `to[]` conf
//! (through the generic [`rules`](crate::policies::rules) engine) turned into a compact
//! [`Retry`] the proxy enforces, Envoy's and Kuma's defaults filling every unset field
//! (Kuma's `plugin/xds/configurer.go`: `genHttpRetryPolicy`, `genGrpcRetryPolicy`, the TCP
//! proxy's `max_connect_attempts`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BackOff, Conf, GRPC_RETRY_ON, HTTP_RETRY_ON, MeshRetrySpec, RateLimitedBackOff};
use crate::duration::GoDuration;
use crate::policies::common::HeaderMatch;
use crate::policies::rules::{
    Catalog, DataplaneRules, DataplaneView, Merged, Options, RulesIndex, RulesSource, build_index,
    conf_json,
};
use crate::spec::{Tags, TargetRef};

/// Kuma's `retryOn` when `http.retryOn` is unset (`HttpRetryOnDefault`).
pub const HTTP_RETRY_ON_DEFAULT: [&str; 3] = ["gateway-error", "connect-failure", "refused-stream"];
/// Kuma's `retryOn` when `grpc.retryOn` is unset (`GrpcRetryOnDefault`).
pub const GRPC_RETRY_ON_DEFAULT: [&str; 7] = [
    "cancelled",
    "connect-failure",
    "gateway-error",
    "refused-stream",
    "reset",
    "resource-exhausted",
    "unavailable",
];
/// Envoy's back-off base interval when none is given.
pub const DEFAULT_BASE_INTERVAL_MS: u64 = 25;
/// Envoy's `num_retries` when a retry policy does not say.
pub const DEFAULT_NUM_RETRIES: u32 = 1;
/// Envoy's `rate_limited_retry_back_off.max_interval` when none is given.
pub const DEFAULT_RATE_LIMITED_MAX_INTERVAL_MS: u64 = 300_000;

/// The retry behaviour of one outbound, serialised in the proxy's config. The default is
/// what holds without any MeshRetry: no HTTP or gRPC retries, one TCP connect attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Retry {
    /// Retries of `http` outbounds (Kuma gives `http2` outbounds none); `None`: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRetry>,
    /// Retries of `grpc` outbounds; `None`: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<HttpRetry>,
    /// TCP outbounds: connection attempts before the downstream connection is closed.
    pub tcp_max_connect_attempt: u32,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            http: None,
            grpc: None,
            tcp_max_connect_attempt: 1,
        }
    }
}

/// An HTTP or gRPC retry policy (Envoy's route `retry_policy`), durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRetry {
    /// Retries after the first attempt (never 0: `numRetries: 0` means no policy).
    pub num_retries: u32,
    /// Limit of each attempt; 0: none (the request timeout alone).
    pub per_try_timeout_ms: u64,
    /// Back-off: retry N waits a random time below `(2^N - 1) × base`, capped at `max`.
    pub base_interval_ms: u64,
    pub max_interval_ms: u64,
    /// Envoy's `retry_on` conditions (`5xx`, `gateway-error`, `reset`, `connect-failure`,
    /// `retriable-4xx`, `refused-stream`, `envoy-ratelimited`,
    /// `http3-post-connect-failure`; gRPC: `cancelled`, `deadline-exceeded`, `internal`,
    /// `resource-exhausted`, `unavailable`).
    pub retry_on: Vec<String>,
    /// Response status codes that are retried (`retryOn: ["503"]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u16>,
    /// Only requests with one of these methods are retried (`retryOn: [HttpMethodGet]`);
    /// empty: any method.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Only requests matching one of these are retried (`retriableRequestHeaders`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<HeaderCondition>,
    /// A response matching one of these is retried, whatever `retryOn` says
    /// (`retriableResponseHeaders`, HTTP only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<HeaderCondition>,
    /// `rateLimitedBackOff`: the wait a retried response asks for replaces the exponential
    /// back-off. `None`: the exponential back-off only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<RateLimitedRetry>,
}

/// Envoy's `rate_limited_retry_back_off`: before a retry of a response carrying one of
/// `resetHeaders` (the first that reads as a wait of at most `maxInterval`), wait that long
/// (jittered up to half as long again) instead of the exponential back-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitedRetry {
    /// The headers to read, in order (names in lower case).
    pub reset_headers: Vec<ResetHeaderConf>,
    /// A longer wait is ignored (the next header is tried, else the exponential back-off).
    pub max_interval_ms: u64,
}

impl Default for RateLimitedRetry {
    fn default() -> RateLimitedRetry {
        RateLimitedRetry {
            reset_headers: Vec::new(),
            max_interval_ms: DEFAULT_RATE_LIMITED_MAX_INTERVAL_MS,
        }
    }
}

/// One reset header: its name (lower case) and how its value reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetHeaderConf {
    pub name: String,
    pub format: ResetFormat,
}

/// How a reset header's value reads (Kuma's `Seconds`, `UnixTimestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetFormat {
    /// A number of seconds to wait (`Retry-After: 5`).
    Seconds,
    /// The Unix time (seconds) to wait for (`X-RateLimit-Reset: 1700000000`).
    UnixTimestamp,
}

impl Default for HttpRetry {
    fn default() -> HttpRetry {
        HttpRetry {
            num_retries: DEFAULT_NUM_RETRIES,
            per_try_timeout_ms: 0,
            base_interval_ms: DEFAULT_BASE_INTERVAL_MS,
            max_interval_ms: 10 * DEFAULT_BASE_INTERVAL_MS,
            retry_on: Vec::new(),
            status_codes: Vec::new(),
            methods: Vec::new(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            rate_limited: None,
        }
    }
}

/// A header condition as Kuma writes it: `type` is `Exact` (default), `Prefix`,
/// `RegularExpression`, `Present` or `Absent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderCondition {
    pub name: String,
    #[serde(rename = "type")]
    pub match_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

fn ms(d: &GoDuration) -> Option<u64> {
    d.to_std()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Retry {
    /// A merged conf (`None`: no MeshRetry applies) as the proxy enforces it.
    pub fn from_conf(conf: Option<&Conf>) -> Retry {
        let mut r = Retry::default();
        let Some(c) = conf else { return r };
        if let Some(n) = c.tcp.as_ref().and_then(|t| t.max_connect_attempt) {
            r.tcp_max_connect_attempt = n.max(1);
        }
        if let Some(h) = &c.http {
            r.http = policy(
                h.num_retries,
                h.per_try_timeout.as_ref(),
                h.back_off.as_ref(),
                h.rate_limited_back_off.as_ref(),
            )
            .map(|mut p| {
                http_retry_on(&mut p, h.retry_on.as_deref());
                p.request_headers = h
                    .retriable_request_headers
                    .iter()
                    .flatten()
                    .filter_map(condition)
                    .collect();
                p.response_headers = h
                    .retriable_response_headers
                    .iter()
                    .flatten()
                    .filter_map(condition)
                    .collect();
                p
            });
        }
        if let Some(g) = &c.grpc {
            r.grpc = policy(
                g.num_retries,
                g.per_try_timeout.as_ref(),
                g.back_off.as_ref(),
                g.rate_limited_back_off.as_ref(),
            )
            .map(|mut p| {
                let named: Vec<String> = g
                    .retry_on
                    .iter()
                    .flatten()
                    .filter_map(|v| GRPC_RETRY_ON.iter().find(|(k, _)| k == v))
                    .map(|(_, envoy)| (*envoy).to_owned())
                    .collect();
                p.retry_on = if named.is_empty() {
                    GRPC_RETRY_ON_DEFAULT
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                } else {
                    named
                };
                p
            });
        }
        r
    }

    /// Whether no MeshRetry changes anything (nothing to send to the proxy).
    pub fn is_default(&self) -> bool {
        *self == Retry::default()
    }
}

/// The common part of an HTTP or gRPC policy; `None` when `numRetries` is 0.
fn policy(
    num_retries: Option<u32>,
    per_try: Option<&GoDuration>,
    back_off: Option<&BackOff>,
    rate_limited: Option<&RateLimitedBackOff>,
) -> Option<HttpRetry> {
    let mut p = HttpRetry::default();
    if let Some(n) = num_retries {
        if n == 0 {
            return None;
        }
        p.num_retries = n;
    }
    if let Some(t) = per_try.and_then(ms) {
        p.per_try_timeout_ms = t;
    }
    if let Some(b) = back_off {
        if let Some(base) = b.base_interval.as_ref().and_then(ms) {
            p.base_interval_ms = base.max(1);
        }
        p.max_interval_ms = match b.max_interval.as_ref().and_then(ms) {
            Some(max) => max.max(1),
            None => p.base_interval_ms.saturating_mul(10),
        };
    } else {
        p.max_interval_ms = p.base_interval_ms.saturating_mul(10);
    }
    // Envoy refuses a max below the base; read it as the base.
    p.max_interval_ms = p.max_interval_ms.max(p.base_interval_ms);
    p.rate_limited = rate_limited.and_then(rate_limited_retry);
    Some(p)
}

/// `rateLimitedBackOff` as Kuma's `configureRateLimitedRetryBackOff` writes it: every reset
/// header in order (a missing or unknown `format` reads as `Seconds`, Envoy's enum zero);
/// `None` without any header (Envoy needs one).
fn rate_limited_retry(b: &RateLimitedBackOff) -> Option<RateLimitedRetry> {
    let reset_headers: Vec<ResetHeaderConf> = b
        .reset_headers
        .iter()
        .flatten()
        .filter_map(|h| {
            let name = h.name.as_deref().filter(|n| !n.is_empty())?;
            Some(ResetHeaderConf {
                name: name.to_ascii_lowercase(),
                format: match h.format.as_deref() {
                    Some("UnixTimestamp") => ResetFormat::UnixTimestamp,
                    _ => ResetFormat::Seconds,
                },
            })
        })
        .collect();
    if reset_headers.is_empty() {
        return None;
    }
    Some(RateLimitedRetry {
        reset_headers,
        max_interval_ms: b
            .max_interval
            .as_ref()
            .and_then(ms)
            .unwrap_or(DEFAULT_RATE_LIMITED_MAX_INTERVAL_MS),
    })
}

/// `retryOn` split as Kuma's `splitRetryOn` does: status codes, methods, named conditions
/// (Kuma's default when none is named).
fn http_retry_on(p: &mut HttpRetry, retry_on: Option<&[String]>) {
    let mut named = Vec::new();
    for item in retry_on.unwrap_or_default() {
        if let Ok(code) = item.parse::<u16>() {
            if (100..=599).contains(&code) {
                p.status_codes.push(code);
            }
            continue;
        }
        let Some((_, envoy)) = HTTP_RETRY_ON.iter().find(|(k, _)| k == item) else {
            continue;
        };
        if item.starts_with("HttpMethod") {
            p.methods.push((*envoy).to_owned());
        } else {
            named.push((*envoy).to_owned());
        }
    }
    p.retry_on = if named.is_empty() {
        HTTP_RETRY_ON_DEFAULT
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        named
    };
}

fn condition(h: &HeaderMatch) -> Option<HeaderCondition> {
    Some(HeaderCondition {
        name: h.name.clone()?.to_ascii_lowercase(),
        match_type: h.match_type.clone().unwrap_or_else(|| "Exact".into()),
        value: h.value.clone().unwrap_or_default(),
    })
}

/// A mesh's MeshRetries, indexed once; [`RetryRules::for_dataplane`] per proxy.
#[derive(Debug, Clone, Default)]
pub struct RetryRules {
    index: RulesIndex,
}

impl RetryRules {
    /// `policies` are the mesh's MeshRetries as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshRetrySpec)]) -> RetryRules {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    /// [`RetryRules::new`] with the mesh's resources that `to` entries and `backendRef`
    /// outbounds may name (MeshServices...), so references by labels or with a
    /// `sectionName` resolve.
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshRetrySpec)],
        catalog: Catalog,
    ) -> RetryRules {
        RetryRules {
            index: build_index(mesh, policies, catalog, Options::default()),
        }
    }

    /// The retry behaviour of each `networking.outbound`, in order.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> Vec<Retry> {
        self.index
            .resolve(dp)
            .outbounds
            .iter()
            .map(|o| retry(&o.merged))
            .collect()
    }

    /// What MeshHTTPRoutes with a rule of their own get on this proxy instead of their
    /// outbound's conf, per `(route, service)` (see [`RulesIndex::route_rules`]).
    pub fn for_routes(
        &self,
        dp: &DataplaneView<'_>,
        routes: &[(&str, Option<&str>)],
    ) -> Vec<Option<Retry>> {
        self.index
            .route_rules(dp, routes)
            .iter()
            .map(|r| r.as_ref().map(retry))
            .collect()
    }

    /// What the engine found for one proxy, for `inspect`.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// The `inspect` view of one outbound's MeshRetry: the contributing policies (lowest
/// priority first), the merged conf as written, and what the proxy enforces.
pub fn explain_json(merged: &Merged) -> Value {
    crate::policies::rules::explain_json(merged, &retry(merged))
}

/// A merged conf as a [`Retry`]; one that does not decode (it cannot: every input was a
/// validated conf) reads as no MeshRetry.
fn retry(merged: &Merged) -> Retry {
    Retry::from_conf(merged.merged::<Conf>().ok().flatten().as_ref())
}

impl RulesSource for MeshRetrySpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.to
            .iter()
            .flatten()
            .map(|t| {
                (
                    t.target_ref.as_ref(),
                    t.default.as_ref().map_or(Value::Null, conf_json),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MeshRetrySpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshRetry(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn dp(yaml: &str) -> crate::spec::DataplaneSpec {
        crate::policies::test_util::dataplane(yaml)
    }

    const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: backend}}\n    - {port: 10002, tags: {kuma.io/service: db}}\n";

    fn resolve(policies: &[(&str, &MeshRetrySpec)]) -> Vec<Retry> {
        let labels = Tags::new();
        let with_labels: Vec<(&str, &Tags, &MeshRetrySpec)> =
            policies.iter().map(|(n, s)| (*n, &labels, *s)).collect();
        let rules = RetryRules::new("default", &with_labels);
        let d = dp(WEB);
        rules.for_dataplane(&DataplaneView {
            mesh: "default",
            name: "web-1",
            labels: &labels,
            spec: &d,
        })
    }

    #[test]
    fn without_policies_nothing_is_retried() {
        let r = resolve(&[]);
        assert_eq!(r, [Retry::default(), Retry::default()]);
        assert!(r[0].is_default());
        assert_eq!(r[0].tcp_max_connect_attempt, 1);
    }

    #[test]
    fn kumas_default_policy_retries_gateway_errors_five_times() {
        let default = super::super::default_spec();
        let r = resolve(&[("mesh-retry-all-default", &default)]);
        let http = r[0]
            .http
            .clone()
            .unwrap_or_else(|| panic!("no http policy"));
        assert_eq!(http.num_retries, 5);
        assert_eq!(http.per_try_timeout_ms, 16_000);
        assert_eq!((http.base_interval_ms, http.max_interval_ms), (25, 250));
        assert_eq!(http.retry_on, HTTP_RETRY_ON_DEFAULT);
        assert!(http.status_codes.is_empty() && http.methods.is_empty());
        let grpc = r[0]
            .grpc
            .clone()
            .unwrap_or_else(|| panic!("no grpc policy"));
        assert_eq!(grpc.retry_on, GRPC_RETRY_ON_DEFAULT);
        assert_eq!(r[0].tcp_max_connect_attempt, 5);
        assert_eq!(r[0], r[1]);
    }

    #[test]
    fn the_default_and_a_narrower_policy_merge_field_by_field() {
        let default = super::super::default_spec();
        let narrow = spec(
            "type: MeshRetry\nname: backend-503\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default:\n        http:\n          numRetries: 3\n          retryOn: [\"503\", Reset, HttpMethodGet]\n          backOff: {baseInterval: 10ms}\n          retriableRequestHeaders: [{name: X-Retry, value: yes}]\n",
        );
        let r = resolve(&[
            ("mesh-retry-all-default", &default),
            ("backend-503", &narrow),
        ]);
        let http = r[0]
            .http
            .clone()
            .unwrap_or_else(|| panic!("no http policy"));
        assert_eq!(http.num_retries, 3);
        // Unset here: the default policy's per-try timeout stays.
        assert_eq!(http.per_try_timeout_ms, 16_000);
        // backOff is an object: merged member by member, the default's maxInterval kept.
        assert_eq!((http.base_interval_ms, http.max_interval_ms), (10, 250));
        assert_eq!(http.status_codes, [503]);
        assert_eq!(http.retry_on, ["reset"]);
        assert_eq!(http.methods, ["GET"]);
        assert_eq!(
            http.request_headers,
            [HeaderCondition {
                name: "x-retry".into(),
                match_type: "Exact".into(),
                value: "yes".into()
            }]
        );
        // The db outbound: the default alone.
        assert_eq!(
            r[1].http.as_ref().map(|h| h.num_retries),
            Some(5),
            "db keeps the default"
        );
    }

    #[test]
    fn zero_retries_turn_the_policy_off() {
        let default = super::super::default_spec();
        let off = spec(
            "type: MeshRetry\nname: backend-no-retries\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default: {http: {numRetries: 0}, tcp: {maxConnectAttempt: 1}}\n",
        );
        // Both are mesh-wide: of equal priority, the alphabetically first name wins
        // (`backend-...` < `mesh-...`), as in Kuma.
        let r = resolve(&[
            ("mesh-retry-all-default", &default),
            ("backend-no-retries", &off),
        ]);
        assert_eq!(r[0].http, None);
        assert_eq!(r[0].tcp_max_connect_attempt, 1);
        assert!(r[0].grpc.is_some(), "grpc untouched");
        let json = explain_json(
            &RetryRules::new("default", &[])
                .index
                .resolve(&DataplaneView {
                    mesh: "default",
                    name: "web-1",
                    labels: &Tags::new(),
                    spec: &dp(WEB),
                })
                .outbounds[0]
                .merged,
        );
        assert_eq!(json["effective"]["tcpMaxConnectAttempt"], 1);
    }

    #[test]
    fn rate_limited_back_off_and_retriable_response_headers() {
        let p = spec(
            "type: MeshRetry\nname: p\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: Mesh}\n      default:\n        http:\n          rateLimitedBackOff:\n            resetHeaders:\n              - {name: Retry-After, format: Seconds}\n              - {name: X-RateLimit-Reset, format: UnixTimestamp}\n            maxInterval: 20s\n          retriableResponseHeaders: [{name: X-Retry-Me, type: Present}]\n        grpc:\n          rateLimitedBackOff:\n            resetHeaders: [{name: retry-after, format: Seconds}]\n",
        );
        let r = resolve(&[("p", &p)]);
        let http = r[0]
            .http
            .clone()
            .unwrap_or_else(|| panic!("no http policy"));
        assert_eq!(
            http.rate_limited,
            Some(RateLimitedRetry {
                reset_headers: vec![
                    ResetHeaderConf {
                        name: "retry-after".into(),
                        format: ResetFormat::Seconds,
                    },
                    ResetHeaderConf {
                        name: "x-ratelimit-reset".into(),
                        format: ResetFormat::UnixTimestamp,
                    },
                ],
                max_interval_ms: 20_000,
            })
        );
        assert_eq!(
            http.response_headers,
            [HeaderCondition {
                name: "x-retry-me".into(),
                match_type: "Present".into(),
                value: String::new(),
            }]
        );
        let grpc = r[0]
            .grpc
            .clone()
            .unwrap_or_else(|| panic!("no grpc policy"));
        assert_eq!(
            grpc.rate_limited.map(|r| r.max_interval_ms),
            Some(DEFAULT_RATE_LIMITED_MAX_INTERVAL_MS),
            "Envoy's default maximum"
        );
        // Round trip through the proxy's config.
        let json = serde_json::to_value(&r[0]).unwrap_or_default();
        assert_eq!(
            json["http"]["rateLimited"]["resetHeaders"][1]["format"],
            "UnixTimestamp"
        );
        let back: Retry = serde_json::from_value(json).unwrap_or_default();
        assert_eq!(back, r[0]);
    }

    #[test]
    fn back_off_without_max_is_ten_times_the_base() {
        let p = spec(
            "type: MeshRetry\nname: p\nmesh: default\nspec:\n  to:\n    - targetRef: {kind: Mesh}\n      default: {http: {backOff: {baseInterval: 100ms}}}\n",
        );
        let r = resolve(&[("p", &p)]);
        let http = r[0]
            .http
            .clone()
            .unwrap_or_else(|| panic!("no http policy"));
        assert_eq!(http.num_retries, DEFAULT_NUM_RETRIES);
        assert_eq!((http.base_interval_ms, http.max_interval_ms), (100, 1000));
    }
}
