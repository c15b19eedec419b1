//! MeshCircuitBreaker: a cluster's connection limits and its endpoints' outlier detection.
//!
//! A [`Cluster`] is one outbound's (or one inbound application's) upstream cluster as Envoy
//! sees it: counters of open connections, requests waiting for a connection, requests and
//! retries in flight, each checked against its threshold when it is taken ([`Cluster::try_take`]).
//! Counters and thresholds are atomics: a config change stores new thresholds, and the
//! cluster (with what is in flight) survives it. Past a threshold the request is answered
//! as Envoy does (`503`, `x-envoy-overloaded: true`, [`OVERFLOW_TEXT`]).
//!
//! [`EndpointHealth`] is one endpoint's outlier-detection state (consecutive failures, when
//! its ejection ends), kept in its pool; [`OutlierPolicy`] is the listener's configuration.
//! Ejections end at their exact time (Envoy returns hosts at its next `interval` sweep),
//! and the ejection multiplier decays by one per `interval` spent back in the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use aerie_core::policies::meshcircuitbreaker::{CircuitBreaker, Outlier};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::ProxyBody;

/// Envoy's answer to a request refused by a circuit breaker.
pub(crate) const OVERFLOW_TEXT: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// `503` with [`OVERFLOW_TEXT`] and `x-envoy-overloaded: true`.
pub(crate) fn overflow_response() -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Local {
        data: Some(Bytes::from_static(OVERFLOW_TEXT.as_bytes())),
    });
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp.headers_mut().insert(
        http::HeaderName::from_static("x-envoy-overloaded"),
        HeaderValue::from_static("true"),
    );
    resp
}

/// What a cluster counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Open (or opening) upstream connections.
    Connections = 0,
    /// Requests waiting for a connection (dialling, or for one to free up); TCP
    /// connections being established.
    Pending = 1,
    /// HTTP requests in flight (until their response body ends).
    Requests = 2,
    /// Retries in flight (from their back-off until their attempt ends).
    Retries = 3,
}

/// One upstream cluster's counters and thresholds.
pub(crate) struct Cluster {
    /// Time zero for the endpoints' ejection deadlines (milliseconds since).
    epoch: Instant,
    max: [AtomicU32; 4],
    used: [AtomicU32; 4],
    /// Signalled when a connection is released or closed while requests wait for one.
    released: Notify,
}

impl Cluster {
    pub fn new(cb: &CircuitBreaker) -> Arc<Cluster> {
        let c = Cluster {
            epoch: Instant::now(),
            max: Default::default(),
            used: Default::default(),
            released: Notify::new(),
        };
        c.set_limits(cb);
        Arc::new(c)
    }

    /// A cluster without limits (inbound applications: kuma-dp enforces no inbound
    /// MeshCircuitBreaker).
    pub fn unlimited() -> Arc<Cluster> {
        Cluster::new(&CircuitBreaker {
            max_connections: u32::MAX,
            max_pending_requests: u32::MAX,
            max_requests: u32::MAX,
            max_retries: u32::MAX,
            ..CircuitBreaker::default()
        })
    }

    /// New thresholds; what is in flight stays counted.
    pub fn set_limits(&self, cb: &CircuitBreaker) {
        let set = |r: Resource, v: u32| self.max[r as usize].store(v, Ordering::Relaxed);
        set(Resource::Connections, cb.max_connections);
        set(Resource::Pending, cb.max_pending_requests);
        set(Resource::Requests, cb.max_requests);
        set(Resource::Retries, cb.max_retries);
    }

    /// One more of `r`, unless the threshold is reached.
    pub fn try_take(self: &Arc<Self>, r: Resource) -> Option<Held> {
        let max = self.max[r as usize].load(Ordering::Relaxed);
        self.used[r as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Held {
            cluster: self.clone(),
            r,
        })
    }

    /// One more of `r` whatever the threshold (replacing a connection that just died).
    pub fn take(self: &Arc<Self>, r: Resource) -> Held {
        self.used[r as usize].fetch_add(1, Ordering::AcqRel);
        Held {
            cluster: self.clone(),
            r,
        }
    }

    pub fn in_use(&self, r: Resource) -> u32 {
        self.used[r as usize].load(Ordering::Relaxed)
    }

    pub fn has_room(&self, r: Resource) -> bool {
        self.in_use(r) < self.max[r as usize].load(Ordering::Relaxed)
    }

    /// Wakes requests waiting for a connection, if any (no cost otherwise).
    pub fn connection_released(&self) {
        if self.in_use(Resource::Pending) > 0 {
            self.released.notify_waiters();
        }
    }

    pub fn released(&self) -> &Notify {
        &self.released
    }

    /// Milliseconds since the cluster was created (ejection deadlines are in these).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One unit of a cluster resource, given back when dropped.
pub(crate) struct Held {
    cluster: Arc<Cluster>,
    r: Resource,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cluster.used[self.r as usize].fetch_sub(1, Ordering::AcqRel);
        if self.r == Resource::Connections {
            self.cluster.connection_released();
        }
    }
}

/// The outlier detection a listener enforces (from [`Outlier`]).
#[derive(Debug, Clone)]
pub(crate) struct OutlierPolicy {
    interval_ms: u64,
    base_ejection_ms: u64,
    max_ejection_ms: u64,
    max_ejection_percent: u64,
    split: bool,
    consecutive_5xx: Option<u32>,
    consecutive_gateway: Option<u32>,
    consecutive_local: Option<u32>,
    panic_threshold: f64,
}

impl OutlierPolicy {
    /// `None` when no detector is enforced (nothing could ever be ejected).
    pub fn new(o: &Outlier) -> Option<OutlierPolicy> {
        let local = o
            .consecutive_local_origin
            .filter(|_| o.split_external_and_local_errors);
        if o.consecutive_5xx.is_none() && o.consecutive_gateway.is_none() && local.is_none() {
            return None;
        }
        Some(OutlierPolicy {
            interval_ms: o.interval_ms.max(1),
            base_ejection_ms: o.base_ejection_ms.max(1),
            max_ejection_ms: o.max_ejection_ms.max(o.base_ejection_ms),
            max_ejection_percent: u64::from(o.max_ejection_percent),
            split: o.split_external_and_local_errors,
            consecutive_5xx: o.consecutive_5xx,
            consecutive_gateway: o.consecutive_gateway,
            consecutive_local: local,
            panic_threshold: o.healthy_panic_threshold,
        })
    }
}

/// What one attempt on an endpoint came to, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The endpoint answered with this status.
    Status(u16),
    /// No answer: the connection could not be made, broke, or timed out (a locally
    /// originated failure, Envoy's `LocalOrigin*`).
    LocalFailure,
    /// A TCP connection was established.
    Connected,
}

/// One endpoint's outlier-detection state.
#[derive(Debug, Default)]
pub(crate) struct EndpointHealth {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// When the current (or last) ejection ends, in the cluster's milliseconds; 0: never
    /// ejected.
    ejected_until: AtomicU64,
    /// Envoy's ejection multiplier.
    ejections: AtomicU32,
}

impl EndpointHealth {
    /// Whether the endpoint is ejected at `now_ms`.
    fn ejected_at(&self, now_ms: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_ms < until
    }

    /// Counts `outcome`; ejects the endpoint when a detector's threshold is reached.
    fn record(&self, outcome: Outcome, p: &OutlierPolicy) -> bool {
        let bump = |c: &AtomicU32, limit: Option<u32>| {
            let n = c.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            limit.is_some_and(|l| n >= l)
        };
        let reset = |c: &AtomicU32| {
            if c.load(Ordering::Relaxed) != 0 {
                c.store(0, Ordering::Relaxed);
            }
        };
        // Without the split, a local failure counts as Envoy's 503.
        let status = match outcome {
            Outcome::LocalFailure if p.split => {
                return bump(&self.consecutive_local, p.consecutive_local);
            }
            Outcome::LocalFailure => 503,
            Outcome::Connected if p.split => {
                reset(&self.consecutive_local);
                return false;
            }
            Outcome::Connected => 200,
            Outcome::Status(s) => s,
        };
        if p.split {
            // The request reached the endpoint: its connection worked.
            reset(&self.consecutive_local);
        }
        if status >= 500 {
            let gateway = if (502..=504).contains(&status) {
                bump(&self.consecutive_gateway, p.consecutive_gateway)
            } else {
                reset(&self.consecutive_gateway);
                false
            };
            bump(&self.consecutive_5xx, p.consecutive_5xx) || gateway
        } else {
            reset(&self.consecutive_5xx);
            reset(&self.consecutive_gateway);
            false
        }
    }

    fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
    }

    /// Ejects for `base × multiplier` (capped), the multiplier first decayed by one per
    /// `interval` spent back in the cluster since the last ejection ended.
    fn eject(&self, now_ms: u64, p: &OutlierPolicy) -> Duration {
        let last_end = self.ejected_until.load(Ordering::Relaxed);
        let back_for = now_ms.saturating_sub(last_end);
        let decayed = u32::try_from(back_for / p.interval_ms).unwrap_or(u32::MAX);
        let previous = self.ejections.load(Ordering::Relaxed);
        let multiplier = previous.saturating_sub(decayed).saturating_add(1);
        self.ejections.store(multiplier, Ordering::Relaxed);
        let ms = p
            .base_ejection_ms
            .saturating_mul(u64::from(multiplier))
            .min(p.max_ejection_ms);
        self.ejected_until
            .store(now_ms.saturating_add(ms).max(1), Ordering::Relaxed);
        self.reset_counters();
        Duration::from_millis(ms)
    }
}

/// Outlier detection over one listener's endpoints: `health` yields each endpoint's state.
pub(crate) struct Detector<'a, H> {
    pub policy: &'a OutlierPolicy,
    pub cluster: &'a Cluster,
    pub endpoints: &'a [H],
    pub health: fn(&H) -> &EndpointHealth,
}

impl<H> Detector<'_, H> {
    /// Records what endpoint `i` did, and ejects it when a detector fires and the
    /// cluster's `maxEjectionPercent` allows (Envoy always allows one ejected endpoint).
    /// `Some(duration)` when it was ejected.
    pub fn record(&self, i: usize, outcome: Outcome) -> Option<Duration> {
        let h = (self.health)(self.endpoints.get(i)?);
        if !h.record(outcome, self.policy) {
            return None;
        }
        let now = self.cluster.now_ms();
        if h.ejected_at(now) {
            return None;
        }
        let ejected = self.ejected_count(now) as u64;
        let total = self.endpoints.len() as u64;
        let allowed =
            ejected == 0 || (ejected + 1) * 100 <= self.policy.max_ejection_percent * total;
        if !allowed {
            h.reset_counters();
            return None;
        }
        Some(h.eject(now, self.policy))
    }

    fn ejected_count(&self, now: u64) -> usize {
        self.endpoints
            .iter()
            .filter(|e| (self.health)(e).ejected_at(now))
            .count()
    }

    /// A filter for endpoint selection: `true` for endpoints to skip. Ejected endpoints are
    /// skipped unless too few are healthy (Envoy's panic threshold), in which case none is.
    pub fn skip(&self) -> impl Fn(usize) -> bool + '_ {
        let now = self.cluster.now_ms();
        let panic = std::cell::OnceCell::new();
        move |i| {
            let Some(e) = self.endpoints.get(i) else {
                return false;
            };
            if !(self.health)(e).ejected_at(now) {
                return false;
            }
            let panic = *panic.get_or_init(|| {
                let total = self.endpoints.len();
                let healthy = total - self.ejected_count(now);
                (healthy as f64) * 100.0 < self.policy.panic_threshold * (total as f64)
            });
            !panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: serde_json::Value) -> OutlierPolicy {
        let o: Outlier = serde_json::from_value(yaml).unwrap_or_else(|e| panic!("{e}"));
        OutlierPolicy::new(&o).unwrap_or_else(|| panic!("no detector"))
    }

    fn detector<'a>(
        p: &'a OutlierPolicy,
        c: &'a Cluster,
        hs: &'a [EndpointHealth],
    ) -> Detector<'a, EndpointHealth> {
        Detector {
            policy: p,
            cluster: c,
            endpoints: hs,
            health: |h| h,
        }
    }

    #[test]
    fn limits_refuse_past_the_threshold_and_give_back_on_drop() {
        let cb = CircuitBreaker {
            max_requests: 2,
            ..CircuitBreaker::default()
        };
        let c = Cluster::new(&cb);
        let a = c.try_take(Resource::Requests);
        let b = c.try_take(Resource::Requests);
        assert!(a.is_some() && b.is_some());
        assert!(c.try_take(Resource::Requests).is_none());
        drop(a);
        assert!(c.try_take(Resource::Requests).is_some());
        // New thresholds apply to what is counted already.
        c.set_limits(&CircuitBreaker {
            max_requests: 1,
            ..CircuitBreaker::default()
        });
        assert_eq!(c.in_use(Resource::Requests), 1);
        assert!(c.try_take(Resource::Requests).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_5xx_eject_for_base_times_ejections_then_the_endpoint_returns() {
        let p = policy(
            serde_json::json!({"baseEjectionMs": 1000, "intervalMs": 10_000,
            "maxEjectionPercent": 50, "consecutive5xx": 3}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs: Vec<EndpointHealth> = (0..2).map(|_| EndpointHealth::default()).collect();
        let d = detector(&p, &c, &hs);
        assert_eq!(d.record(0, Outcome::Status(500)), None);
        // A success in between starts the count again.
        assert_eq!(d.record(0, Outcome::Status(200)), None);
        assert_eq!(d.record(0, Outcome::Status(500)), None);
        assert_eq!(d.record(0, Outcome::Status(503)), None);
        assert_eq!(
            d.record(0, Outcome::Status(500)),
            Some(Duration::from_secs(1))
        );
        assert!(d.skip()(0));
        assert!(!d.skip()(1));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(d.skip()(0), "still ejected");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!d.skip()(0), "back after the ejection time");
        // Ejected again soon after: twice the base.
        for _ in 0..2 {
            assert_eq!(d.record(0, Outcome::Status(500)), None);
        }
        assert_eq!(
            d.record(0, Outcome::Status(500)),
            Some(Duration::from_secs(2))
        );
        // Back, then healthy for two intervals: the multiplier decays to 0, then 1 again.
        tokio::time::advance(Duration::from_millis(2_001 + 20_000)).await;
        for _ in 0..2 {
            d.record(0, Outcome::Status(500));
        }
        assert_eq!(
            d.record(0, Outcome::Status(500)),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_keeps_endpoints_but_one_may_always_go() {
        // 10% of 3 endpoints is less than one: the first ejection is allowed anyway, the
        // second is not.
        let p = policy(
            serde_json::json!({"baseEjectionMs": 30_000, "maxEjectionPercent": 10,
            "consecutive5xx": 1}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs: Vec<EndpointHealth> = (0..3).map(|_| EndpointHealth::default()).collect();
        let d = detector(&p, &c, &hs);
        assert!(d.record(0, Outcome::Status(500)).is_some());
        assert!(d.record(1, Outcome::Status(500)).is_none());
        let skip = d.skip();
        assert_eq!((skip(0), skip(1), skip(2)), (true, false, false));
    }

    #[tokio::test(start_paused = true)]
    async fn panic_mode_ignores_ejections_when_too_few_are_healthy() {
        let p = policy(serde_json::json!({"maxEjectionPercent": 100, "consecutive5xx": 1}));
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = [EndpointHealth::default()];
        let d = detector(&p, &c, &hs);
        assert!(d.record(0, Outcome::Status(500)).is_some());
        assert!(!d.skip()(0), "the only endpoint is used anyway");
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_and_local_origin_detectors() {
        let p = policy(serde_json::json!({"consecutiveGateway": 2, "maxEjectionPercent": 100}));
        let c = Cluster::new(&CircuitBreaker::default());
        let hs: Vec<EndpointHealth> = (0..2).map(|_| EndpointHealth::default()).collect();
        let d = detector(&p, &c, &hs);
        // 500 is no gateway error: it breaks the run.
        assert!(d.record(0, Outcome::Status(502)).is_none());
        assert!(d.record(0, Outcome::Status(500)).is_none());
        assert!(d.record(0, Outcome::Status(504)).is_none());
        // Without the split, a connect failure counts as a 503.
        assert!(d.record(0, Outcome::LocalFailure).is_some());

        let p = policy(serde_json::json!({"splitExternalAndLocalErrors": true,
            "consecutiveLocalOrigin": 2, "consecutive5xx": 5, "maxEjectionPercent": 100}));
        let hs: Vec<EndpointHealth> = (0..2).map(|_| EndpointHealth::default()).collect();
        let d = detector(&p, &c, &hs);
        assert!(d.record(1, Outcome::LocalFailure).is_none());
        assert!(
            d.record(1, Outcome::Connected).is_none(),
            "a connection resets"
        );
        assert!(d.record(1, Outcome::LocalFailure).is_none());
        assert!(d.record(1, Outcome::LocalFailure).is_some());
        // With the split, local failures do not count as 5xx.
        for _ in 0..4 {
            let _ = d.record(0, Outcome::LocalFailure);
        }
        assert_eq!(hs[0].consecutive_5xx.load(Ordering::Relaxed), 0);
    }
}
