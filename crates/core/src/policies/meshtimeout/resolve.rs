//! What MeshTimeout contributes to a proxy: for each inbound and each outbound, the merged
//! conf (through the generic [`rules`](crate::policies::rules) engine, `from` read as rules as
//! Kuma does for this policy) turned into concrete [`Timeouts`], Kuma's defaults filling
//! every unset field.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Conf, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STREAM_IDLE_TIMEOUT, MeshTimeoutSpec,
};
use crate::duration::GoDuration;
use crate::policies::rules::{
    Catalog, DataplaneView, Merged, Options, RulesIndex, RulesSource, build_index, conf_json,
};
use crate::spec::{Tags, TargetRef};

/// The timeouts a proxy enforces on one listener, in milliseconds; `0` disables the ones
/// Kuma lets be disabled. Serialised in the proxy's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Timeouts {
    /// Establishing a TCP connection to the upstream (never 0).
    pub connect_ms: u64,
    /// A connection with nothing in flight and no bytes either way is closed.
    pub idle_ms: u64,
    /// From a request's start until its response headers.
    pub request_ms: u64,
    /// An HTTP stream (request and response) with no frame either way for this long ends:
    /// `408`/`504 stream timeout` before the response headers, a reset after (Envoy's route
    /// `idle_timeout`).
    pub stream_idle_ms: u64,
    /// An attempt's upstream stream ends this long after it was sent, even while bytes flow:
    /// `408`/`504 upstream max stream duration reached` before the response headers, a reset
    /// after (Envoy's cluster `max_stream_duration`; HTTP and HTTP/2 listeners only, as Kuma
    /// sets it on those clusters alone).
    pub max_stream_ms: u64,
    /// An HTTP connection is drained once it is this old.
    pub max_connection_ms: u64,
    /// From the first byte of an HTTP/1 request head to its end: `408 request header
    /// timeout` and the connection closed (Envoy's HCM `request_headers_timeout`).
    pub request_headers_ms: u64,
}

/// Kuma's defaults (`policies/core/defaults`): what holds where no MeshTimeout says otherwise.
impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect_ms: ms(DEFAULT_CONNECT_TIMEOUT),
            idle_ms: ms(DEFAULT_IDLE_TIMEOUT),
            request_ms: ms(DEFAULT_REQUEST_TIMEOUT),
            stream_idle_ms: ms(DEFAULT_STREAM_IDLE_TIMEOUT),
            max_stream_ms: 0,
            max_connection_ms: 0,
            request_headers_ms: 0,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Timeouts {
    /// A merged conf on top of Kuma's defaults. Negative values cannot pass validation; were
    /// one stored anyway it reads as the default. A connect timeout below 1 ms is 1 ms.
    pub fn from_conf(conf: Option<&Conf>) -> Timeouts {
        let mut t = Timeouts::default();
        let Some(c) = conf else { return t };
        let set = |field: &mut u64, d: &Option<GoDuration>| {
            if let Some(v) = d.as_ref().and_then(GoDuration::to_std) {
                *field = ms(v);
            }
        };
        set(&mut t.connect_ms, &c.connection_timeout);
        t.connect_ms = t.connect_ms.max(1);
        set(&mut t.idle_ms, &c.idle_timeout);
        if let Some(h) = &c.http {
            set(&mut t.request_ms, &h.request_timeout);
            set(&mut t.stream_idle_ms, &h.stream_idle_timeout);
            set(&mut t.max_stream_ms, &h.max_stream_duration);
            set(&mut t.max_connection_ms, &h.max_connection_duration);
            set(&mut t.request_headers_ms, &h.request_headers_timeout);
        }
        t
    }

    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }

    /// `None` when disabled.
    pub fn idle(&self) -> Option<Duration> {
        nonzero(self.idle_ms)
    }

    /// `None` when disabled.
    pub fn request(&self) -> Option<Duration> {
        nonzero(self.request_ms)
    }

    /// `None` when disabled.
    pub fn max_connection(&self) -> Option<Duration> {
        nonzero(self.max_connection_ms)
    }

    /// `None` when disabled.
    pub fn stream_idle(&self) -> Option<Duration> {
        nonzero(self.stream_idle_ms)
    }

    /// `None` when disabled.
    pub fn max_stream(&self) -> Option<Duration> {
        nonzero(self.max_stream_ms)
    }

    /// `None` when disabled.
    pub fn request_headers(&self) -> Option<Duration> {
        nonzero(self.request_headers_ms)
    }
}

fn nonzero(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// A mesh's MeshTimeouts, indexed once; [`TimeoutRules::for_dataplane`] per proxy.
#[derive(Debug, Clone, Default)]
pub struct TimeoutRules {
    index: RulesIndex,
}

/// What one proxy gets: one entry per `networking.inbound` and per `networking.outbound`,
/// in order.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneTimeouts {
    pub inbounds: Vec<Timeouts>,
    pub outbounds: Vec<Timeouts>,
}

impl TimeoutRules {
    /// `policies` are the mesh's MeshTimeouts as (name, labels, spec).
    pub fn new(mesh: &str, policies: &[(&str, &Tags, &MeshTimeoutSpec)]) -> TimeoutRules {
        Self::with_catalog(mesh, policies, Catalog::default())
    }

    /// [`TimeoutRules::new`] with the mesh's resources that `to` entries and `backendRef`
    /// outbounds may name (MeshServices...), so references by labels or with a
    /// `sectionName` resolve.
    pub fn with_catalog(
        mesh: &str,
        policies: &[(&str, &Tags, &MeshTimeoutSpec)],
        catalog: Catalog,
    ) -> TimeoutRules {
        TimeoutRules {
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

    /// The timeouts of each inbound (the rules matching every caller) and each outbound.
    pub fn for_dataplane(&self, dp: &DataplaneView<'_>) -> DataplaneTimeouts {
        let rules = self.index.resolve(dp);
        DataplaneTimeouts {
            inbounds: rules.inbounds.iter().map(|i| timeouts(&i.conf)).collect(),
            outbounds: rules
                .outbounds
                .iter()
                .map(|o| timeouts(&o.merged))
                .collect(),
        }
    }

    /// What MeshHTTPRoutes with a rule of their own get on this proxy instead of their
    /// outbound's conf, per `(route, service)` (see [`RulesIndex::route_rules`]).
    pub fn for_routes(
        &self,
        dp: &DataplaneView<'_>,
        routes: &[(&str, Option<&str>)],
    ) -> Vec<Option<Timeouts>> {
        self.index
            .route_rules(dp, routes)
            .iter()
            .map(|r| r.as_ref().map(timeouts))
            .collect()
    }

    /// What the engine found for one proxy, for `inspect`: per inbound and outbound, the
    /// contributing policies and the merged conf.
    pub fn explain(&self, dp: &DataplaneView<'_>) -> crate::policies::rules::DataplaneRules {
        self.index.resolve(dp)
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// The `inspect` view of one listener's MeshTimeout: the contributing policies (lowest
/// priority first), the merged conf as written, and the timeouts in force.
pub fn explain_json(merged: &Merged) -> Value {
    crate::policies::rules::explain_json(merged, &timeouts(merged))
}

/// A merged conf as timeouts; one that does not decode (it cannot: every input was a
/// validated conf) reads as Kuma's defaults.
fn timeouts(merged: &Merged) -> Timeouts {
    Timeouts::from_conf(merged.merged::<Conf>().ok().flatten().as_ref())
}

impl RulesSource for MeshTimeoutSpec {
    fn top_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }

    fn to_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.to
            .iter()
            .flatten()
            .map(|t| (Some(&t.target_ref), conf_json(&t.default)))
            .collect()
    }

    fn caller_entries(&self) -> Vec<(Option<&TargetRef>, Value)> {
        self.from
            .iter()
            .flatten()
            .map(|f| (Some(&f.target_ref), conf_json(&f.default)))
            .collect()
    }

    fn rule_entries(&self) -> Vec<(Vec<Value>, Value)> {
        self.rules
            .iter()
            .flatten()
            .map(|r| {
                let matches = r.matches.iter().flatten().map(conf_json).collect();
                (matches, conf_json(&r.default))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MeshTimeoutSpec {
        match crate::policies::test_util::resource_spec(yaml) {
            crate::Spec::MeshTimeout(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn dp(yaml: &str) -> crate::spec::DataplaneSpec {
        crate::policies::test_util::dataplane(yaml)
    }

    const WEB: &str = "type: Dataplane\nname: web-1\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}\n  outbound:\n    - {port: 10001, tags: {kuma.io/service: backend}}\n    - {port: 10002, tags: {kuma.io/service: db}}\n";

    #[test]
    fn without_policies_kumas_defaults_hold() {
        let rules = TimeoutRules::new("default", &[]);
        let d = dp(WEB);
        let labels = Tags::new();
        let view = DataplaneView {
            mesh: "default",
            name: "web-1",
            labels: &labels,
            spec: &d,
        };
        let t = rules.for_dataplane(&view);
        assert_eq!(t.inbounds, [Timeouts::default()]);
        assert_eq!(t.outbounds, [Timeouts::default(), Timeouts::default()]);
        assert_eq!(Timeouts::default().connect(), Duration::from_secs(5));
        assert_eq!(Timeouts::default().idle(), Some(Duration::from_secs(3600)));
        assert_eq!(Timeouts::default().request(), Some(Duration::from_secs(15)));
        assert_eq!(
            Timeouts::default().stream_idle(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(Timeouts::default().max_stream(), None);
        assert_eq!(Timeouts::default().request_headers(), None);
    }

    #[test]
    fn the_defaults_and_a_narrower_policy_merge_field_by_field() {
        let (_, sidecars) = super::super::default_policies().swap_remove(1);
        let narrow = spec(
            "type: MeshTimeout\nname: backend-fast\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n      default: {http: {requestTimeout: 2s}}\n  from:\n    - targetRef: {kind: Mesh}\n      default: {idleTimeout: 0s}\n",
        );
        let labels = Tags::new();
        let rules = TimeoutRules::new(
            "default",
            &[
                ("mesh-timeout-all-default", &labels, &sidecars),
                ("backend-fast", &labels, &narrow),
            ],
        );
        let d = dp(WEB);
        let view = DataplaneView {
            mesh: "default",
            name: "web-1",
            labels: &labels,
            spec: &d,
        };
        let t = rules.for_dataplane(&view);
        // Outbound to backend: the narrow request timeout over the defaults' other fields.
        assert_eq!(t.outbounds[0].request_ms, 2_000);
        assert_eq!(t.outbounds[0].connect_ms, 5_000);
        assert_eq!(t.outbounds[0].idle_ms, 3_600_000);
        // Outbound to db: the defaults alone.
        assert_eq!(t.outbounds[1].request_ms, 15_000);
        // Inbound: the default policy's inbound side (twice the outbound's), idle disabled by
        // the other policy, which wins ties on name order ("backend-fast" < "mesh-...").
        assert_eq!(t.inbounds[0].connect_ms, 10_000);
        assert_eq!(t.inbounds[0].idle(), None);
        assert_eq!(
            t.inbounds[0].request(),
            None,
            "the default disables it inbound"
        );
    }
}
