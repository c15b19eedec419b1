//! MeshCircuitBreaker: a cluster's connection limits and its endpoints' outlier detection.
//!
//! A [`Cluster`] is one outbound's (or one inbound application's) upstream cluster as Envoy
//! sees it: counters of open connections, requests waiting for a connection, requests and
//! retries in flight, each checked against its threshold when it is taken ([`Cluster::try_take`]).
//! Counters and thresholds are atomics: a config change stores new thresholds, and the
//! cluster (with what is in flight) survives it. Past a threshold the request is answered
//! as Envoy does (`503`, `x-envoy-overloaded: true`, [`OVERFLOW_TEXT`]).
//!
//! Connection pools (`maxConnectionPools`) are Envoy's: one per endpoint and worker thread,
//! alive while it has a connection, open, being opened or waited for ([`Cluster::join_pool`],
//! [`PoolMember`]). A request that would need one more is refused as Envoy's router refuses
//! it when it gets no pool: `503 no healthy upstream`.
//!
//! [`EndpointHealth`] is one endpoint's outlier-detection state (consecutive failures, the
//! requests and successes of the current interval, when its ejection ends), kept in its
//! pool; [`OutlierPolicy`] is the listener's configuration. The consecutive detectors eject
//! as the failure is recorded; the success-rate and failure-percentage detectors run once
//! per `interval` over the requests of the interval that ended ([`Detector::maybe_sweep`]).
//! The sweep is driven by the traffic itself rather than a timer: the first request after
//! an interval boundary claims it (one atomic load per request otherwise) and evaluates it
//! as of that boundary, so a quiet cluster costs nothing and a late sweep ejects exactly as
//! a punctual one would have. Ejections end at their exact time (Envoy returns hosts at
//! its next `interval` sweep), and the ejection multiplier decays by one per `interval`
//! spent back in the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use aerie_core::policies::meshcircuitbreaker::{
    CircuitBreaker, FailurePercentage, Outlier, SuccessRate,
};
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
    /// Connection pools: endpoints × worker threads with a connection (see [`PoolMember`]).
    ConnectionPools = 4,
}

/// One upstream cluster's counters and thresholds.
pub(crate) struct Cluster {
    /// Time zero for the endpoints' ejection deadlines (milliseconds since).
    epoch: Instant,
    max: [AtomicU32; 5],
    used: [AtomicU32; 5],
    /// Signalled when a connection is released or closed while requests wait for one.
    released: Notify,
    /// When the next success-rate / failure-percentage sweep is due, in the cluster's
    /// milliseconds; 0: not started.
    next_sweep: AtomicU64,
}

impl Cluster {
    pub fn new(cb: &CircuitBreaker) -> Arc<Cluster> {
        let c = Cluster {
            epoch: Instant::now(),
            max: Default::default(),
            used: Default::default(),
            released: Notify::new(),
            next_sweep: AtomicU64::new(0),
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
        set(
            Resource::ConnectionPools,
            cb.max_connection_pools.unwrap_or(u32::MAX),
        );
    }

    /// One more of `r`, unless the threshold is reached.
    pub fn try_take(self: &Arc<Self>, r: Resource) -> Option<Held> {
        self.try_count(r).then(|| Held {
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

    /// Counts one more of `r` unless the threshold is reached (the caller gives it back).
    fn try_count(&self, r: Resource) -> bool {
        let max = self.max[r as usize].load(Ordering::Relaxed);
        self.used[r as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
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

    /// A place in the connection pool of `slot` (its worker thread) of one endpoint, whose
    /// members `slots[slot]` counts. The first member creates the pool, which takes one of
    /// the cluster's `maxConnectionPools` (`None` when none is left, unless `force`: a
    /// connection replacing one that just died); the last one to leave gives it back.
    pub fn join_pool(
        self: &Arc<Self>,
        slots: &Arc<[AtomicU32]>,
        slot: usize,
        force: bool,
    ) -> Option<PoolMember> {
        let members = slots.get(slot)?;
        let mut n = members.load(Ordering::Acquire);
        loop {
            if n > 0 {
                match members.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => n = now,
                }
                continue;
            }
            // A new pool, counted until its last member leaves (`PoolMember::drop`).
            let pools = &self.used[Resource::ConnectionPools as usize];
            if force {
                pools.fetch_add(1, Ordering::AcqRel);
            } else if !self.try_count(Resource::ConnectionPools) {
                return None;
            }
            match members.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                // Another request created it meanwhile: join that one.
                Err(now) => {
                    pools.fetch_sub(1, Ordering::AcqRel);
                    n = now;
                }
            }
        }
        Some(PoolMember {
            cluster: self.clone(),
            slots: slots.clone(),
            slot,
        })
    }

    /// Claims the success-rate sweep due at `now`, if one is: `Some(at)`, the interval
    /// boundary it is evaluated at. One caller wins each boundary; the next one is the
    /// first boundary after `now`.
    fn claim_sweep(&self, now: u64, interval: u64) -> Option<u64> {
        let next = self.next_sweep.load(Ordering::Acquire);
        let following = |from: u64| now.saturating_add(interval).max(from);
        if next == 0 || next > now.saturating_add(interval) {
            // The first interval starts now (or a shorter interval was configured).
            let _ = self.next_sweep.compare_exchange(
                next,
                following(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return None;
        }
        if now < next {
            return None;
        }
        let missed = (now - next) / interval;
        let after = next.saturating_add(interval.saturating_mul(missed.saturating_add(1)));
        self.next_sweep
            .compare_exchange(next, after, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| next)
    }
}

/// A member of one endpoint's connection pool on one worker (a connection, open or being
/// opened, or a request waiting for one): the pool, and its place in the cluster's
/// `maxConnectionPools`, lives while it has members.
pub(crate) struct PoolMember {
    cluster: Arc<Cluster>,
    slots: Arc<[AtomicU32]>,
    slot: usize,
}

impl Drop for PoolMember {
    fn drop(&mut self) {
        if let Some(members) = self.slots.get(self.slot)
            && members.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.cluster.used[Resource::ConnectionPools as usize].fetch_sub(1, Ordering::AcqRel);
        }
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
    success_rate: Option<SuccessRate>,
    failure_percentage: Option<FailurePercentage>,
    /// A rate detector is on: outcomes are counted per interval.
    rates: bool,
    panic_threshold: f64,
}

impl OutlierPolicy {
    /// `None` when no detector is enforced (nothing could ever be ejected).
    pub fn new(o: &Outlier) -> Option<OutlierPolicy> {
        let local = o
            .consecutive_local_origin
            .filter(|_| o.split_external_and_local_errors);
        let rates = o.success_rate.is_some() || o.failure_percentage.is_some();
        if o.consecutive_5xx.is_none()
            && o.consecutive_gateway.is_none()
            && local.is_none()
            && !rates
        {
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
            success_rate: o.success_rate.clone(),
            failure_percentage: o.failure_percentage.clone(),
            rates,
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

/// One request of an interval, in a packed interval counter: requests in the high half,
/// successes in the low half (one atomic add counts both; each half holds 2^32 per interval).
const REQUEST: u64 = 1 << 32;

/// One endpoint's outlier-detection state.
#[derive(Debug, Default)]
pub(crate) struct EndpointHealth {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Requests and successes (not 5xx) of the current interval, packed (see [`REQUEST`]);
    /// counted only when a rate detector is on.
    external: AtomicU64,
    /// Locally originated outcomes of the current interval (a connection made or not), with
    /// `splitExternalAndLocalErrors` only.
    local: AtomicU64,
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
        let count = |c: &AtomicU64, ok: bool| {
            if p.rates {
                c.fetch_add(REQUEST | u64::from(ok), Ordering::Relaxed);
            }
        };
        // Without the split, a local failure counts as Envoy's 503.
        let status = match outcome {
            Outcome::LocalFailure if p.split => {
                count(&self.local, false);
                return bump(&self.consecutive_local, p.consecutive_local);
            }
            Outcome::LocalFailure => 503,
            Outcome::Connected if p.split => {
                count(&self.local, true);
                reset(&self.consecutive_local);
                return false;
            }
            Outcome::Connected => 200,
            Outcome::Status(s) => s,
        };
        if p.split {
            // The request reached the endpoint: its connection worked.
            count(&self.local, true);
            reset(&self.consecutive_local);
        }
        count(&self.external, status < 500);
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

/// Whether `n` reaches `min`.
fn enough_of(n: usize, min: u32) -> bool {
    usize::try_from(min).is_ok_and(|m| n >= m)
}

/// Outlier detection over one listener's endpoints: `health` yields each endpoint's state.
pub(crate) struct Detector<'a, H> {
    pub policy: &'a OutlierPolicy,
    pub cluster: &'a Cluster,
    pub endpoints: &'a [H],
    pub health: fn(&H) -> &EndpointHealth,
}

impl<H> Detector<'_, H> {
    /// Records what endpoint `i` did, and ejects it when a consecutive detector fires and
    /// the cluster's `maxEjectionPercent` allows (Envoy always allows one ejected endpoint).
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
        let ejected = self.try_eject(h, now);
        if ejected.is_none() {
            // Refused by `maxEjectionPercent`: the run starts again.
            h.reset_counters();
        }
        ejected
    }

    /// Ejects `h` at `now` unless it is ejected already or `maxEjectionPercent` forbids.
    fn try_eject(&self, h: &EndpointHealth, now: u64) -> Option<Duration> {
        if h.ejected_at(now) {
            return None;
        }
        let ejected = self.ejected_count(now) as u64;
        let total = self.endpoints.len() as u64;
        let allowed =
            ejected == 0 || (ejected + 1) * 100 <= self.policy.max_ejection_percent * total;
        allowed.then(|| h.eject(now, self.policy))
    }

    /// Runs the success-rate and failure-percentage detectors when an interval ended since
    /// they last ran (one caller per interval; one clock read and one atomic load
    /// otherwise). The endpoints ejected, with how long from now; `None` when nothing was
    /// due or no rate detector is on.
    pub fn maybe_sweep(&self) -> Option<Vec<(usize, Duration)>> {
        if !self.policy.rates {
            return None;
        }
        let now = self.cluster.now_ms();
        let at = self.cluster.claim_sweep(now, self.policy.interval_ms)?;
        // What is left of each ejection (a late sweep's may be over already).
        let late = Duration::from_millis(now - at);
        let mut ejected = self.sweep(at);
        ejected.retain_mut(|(_, time)| {
            *time = time.saturating_sub(late);
            !time.is_zero()
        });
        Some(ejected)
    }

    /// Envoy's interval sweep, as of `at`: every endpoint's counts of the interval are
    /// taken (a new interval starts for each), then evaluated for external outcomes and,
    /// with `splitExternalAndLocalErrors`, for locally originated ones.
    fn sweep(&self, at: u64) -> Vec<(usize, Duration)> {
        let counts: Vec<(u64, u64)> = self
            .endpoints
            .iter()
            .map(|e| {
                let h = (self.health)(e);
                (
                    h.external.swap(0, Ordering::Relaxed),
                    h.local.swap(0, Ordering::Relaxed),
                )
            })
            .collect();
        let mut ejected = Vec::new();
        self.detect(at, counts.iter().map(|c| c.0), &mut ejected);
        if self.policy.split {
            self.detect(at, counts.iter().map(|c| c.1), &mut ejected);
        }
        ejected
    }

    /// Envoy's `processSuccessRateEjections` over one kind of outcome (`counts`: each
    /// endpoint's packed interval counter). Endpoints ejected at `at` are left out; the
    /// others with `requestVolume` requests are considered, if there are `minimumHosts` of
    /// them: below `mean - stdev × factor` (success rate) or failing `threshold` percent or
    /// more (failure percentage), an endpoint is ejected.
    fn detect(
        &self,
        at: u64,
        counts: impl Iterator<Item = u64>,
        ejected: &mut Vec<(usize, Duration)>,
    ) {
        let p = self.policy;
        let hosts = self.endpoints.len();
        let enough = |min: u32| enough_of(hosts, min);
        let sr = p.success_rate.as_ref().filter(|s| enough(s.minimum_hosts));
        let fp = p
            .failure_percentage
            .as_ref()
            .filter(|f| enough(f.minimum_hosts));
        if sr.is_none() && fp.is_none() {
            return;
        }
        // (endpoint, success rate in percent) of the endpoints each detector considers.
        let mut by_rate: Vec<(usize, f64)> = Vec::new();
        let mut by_failures: Vec<(usize, f64)> = Vec::new();
        for (i, packed) in counts.enumerate() {
            let total = packed >> 32;
            if total == 0 {
                continue;
            }
            let Some(h) = self.endpoints.get(i).map(self.health) else {
                continue;
            };
            if h.ejected_at(at) {
                continue;
            }
            let rate = (packed & 0xffff_ffff) as f64 * 100.0 / total as f64;
            if sr.is_some_and(|s| total >= u64::from(s.request_volume)) {
                by_rate.push((i, rate));
            }
            if fp.is_some_and(|f| total >= u64::from(f.request_volume)) {
                by_failures.push((i, rate));
            }
        }
        let mut eject = |i: usize| {
            if let Some(h) = self.endpoints.get(i).map(self.health)
                && let Some(time) = self.try_eject(h, at)
            {
                ejected.push((i, time));
            }
        };
        if let Some(s) = sr
            && !by_rate.is_empty()
            && enough_of(by_rate.len(), s.minimum_hosts)
        {
            let n = by_rate.len() as f64;
            let mean = by_rate.iter().map(|(_, r)| r).sum::<f64>() / n;
            let variance = by_rate.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
            let threshold = mean - f64::from(s.stdev_factor) / 1000.0 * variance.sqrt();
            for &(i, rate) in &by_rate {
                if rate < threshold {
                    eject(i);
                }
            }
        }
        if let Some(f) = fp
            && !by_failures.is_empty()
            && enough_of(by_failures.len(), f.minimum_hosts)
        {
            for &(i, rate) in &by_failures {
                if 100.0 - rate >= f64::from(f.threshold) {
                    eject(i);
                }
            }
        }
    }

    fn ejected_count(&self, now: u64) -> usize {
        self.endpoints
            .iter()
            .filter(|e| (self.health)(e).ejected_at(now))
            .count()
    }

    /// Whether endpoint `i` is ejected now (panic threshold not applied: MeshHealthCheck's
    /// selection, `health.rs`, applies it over ejected and unhealthy endpoints together).
    pub fn ejected(&self) -> impl Fn(usize) -> bool + '_ {
        let now = self.cluster.now_ms();
        move |i| {
            self.endpoints
                .get(i)
                .is_some_and(|e| (self.health)(e).ejected_at(now))
        }
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

    /// `n` outcomes for endpoint `i`, `ok` of them successes.
    fn outcomes(d: &Detector<'_, EndpointHealth>, i: usize, n: usize, ok: usize) {
        for k in 0..n {
            let status = if k < ok { 200 } else { 500 };
            assert_eq!(d.record(i, Outcome::Status(status)), None);
        }
    }

    fn healths(n: usize) -> Vec<EndpointHealth> {
        (0..n).map(|_| EndpointHealth::default()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn success_rate_ejects_below_mean_minus_stdev_times_factor_once_per_interval() {
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "baseEjectionMs": 5000,
            "maxEjectionPercent": 50,
            "successRate": {"minimumHosts": 3, "requestVolume": 10, "stdevFactor": 1000}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(3);
        let d = detector(&p, &c, &hs);
        // The first look starts the first interval.
        assert_eq!(d.maybe_sweep(), None);
        // 100%, 100%, 40%: mean 80, stdev 28.3, threshold 51.7.
        outcomes(&d, 0, 20, 20);
        outcomes(&d, 1, 20, 20);
        outcomes(&d, 2, 20, 8);
        assert!(!d.skip()(2), "rates are not judged per request");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(d.maybe_sweep(), None, "the interval has not ended");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.maybe_sweep(), Some(vec![(2, Duration::from_secs(5))]));
        assert_eq!(d.maybe_sweep(), None, "one sweep per interval");
        let skip = d.skip();
        assert_eq!((skip(0), skip(1), skip(2)), (false, false, true));
        // The next interval starts from zero: too few requests, nothing happens.
        outcomes(&d, 0, 9, 0);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(d.maybe_sweep(), Some(vec![]));
        // The ejection ends after baseEjectionTime.
        tokio::time::advance(Duration::from_millis(3_999)).await;
        assert!(d.skip()(2));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!d.skip()(2));
    }

    #[tokio::test(start_paused = true)]
    async fn success_rate_needs_minimum_hosts_with_the_request_volume() {
        // Envoy's default factor (1.9): with three hosts, one outlier can never be 1.9
        // standard deviations below the mean (at most sqrt(2)).
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "maxEjectionPercent": 100,
            "successRate": {"minimumHosts": 3, "requestVolume": 10}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(3);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 20, 20);
        outcomes(&d, 1, 20, 20);
        outcomes(&d, 2, 20, 0);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(
            d.maybe_sweep(),
            Some(vec![]),
            "within 1.9 standard deviations"
        );

        let p = policy(
            serde_json::json!({"intervalMs": 1000, "maxEjectionPercent": 100,
            "successRate": {"minimumHosts": 3, "requestVolume": 10, "stdevFactor": 1000}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 20, 20);
        outcomes(&d, 1, 9, 9);
        outcomes(&d, 2, 20, 0);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(
            d.maybe_sweep(),
            Some(vec![]),
            "only two hosts with the request volume"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failure_percentage_ejects_at_the_threshold() {
        let p = policy(
            serde_json::json!({"intervalMs": 2000, "baseEjectionMs": 1000,
            "maxEjectionPercent": 100,
            "failurePercentage": {"minimumHosts": 3, "requestVolume": 10, "threshold": 60}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(4);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 10, 10);
        outcomes(&d, 1, 10, 5); // 50%: kept
        outcomes(&d, 2, 10, 4); // 60%: ejected
        outcomes(&d, 3, 9, 0); // too few requests to be judged
        tokio::time::advance(Duration::from_millis(2000)).await;
        assert_eq!(d.maybe_sweep(), Some(vec![(2, Duration::from_secs(1))]));
        let skip = d.skip();
        assert_eq!(
            (skip(0), skip(1), skip(2), skip(3)),
            (false, false, true, false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_sweep_judges_the_interval_as_of_its_end() {
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "baseEjectionMs": 3000,
            "maxEjectionPercent": 100,
            "failurePercentage": {"minimumHosts": 1, "requestVolume": 10, "threshold": 50}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(2);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 10, 0);
        outcomes(&d, 1, 10, 10);
        // Nobody came for 2.5s: the interval that ended at 1s is judged as of 1s, so the
        // ejection has 1.5s left rather than 3s.
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(
            d.maybe_sweep(),
            Some(vec![(0, Duration::from_millis(1_500))])
        );
        // The next boundary is 3s (not 3.5s), and there is nothing to judge there.
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(d.maybe_sweep(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.maybe_sweep(), Some(vec![]));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(d.skip()(0));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!d.skip()(0), "back 3s after the boundary it was judged at");

        // Much later: the stale interval's ejection would already be over.
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(2);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 10, 0);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(d.maybe_sweep(), Some(vec![]));
        assert!(!d.skip()(0));
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_bounds_interval_ejections() {
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "maxEjectionPercent": 25,
            "failurePercentage": {"minimumHosts": 4, "requestVolume": 10, "threshold": 50}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(4);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        outcomes(&d, 0, 10, 0);
        outcomes(&d, 1, 10, 0);
        outcomes(&d, 2, 10, 10);
        outcomes(&d, 3, 10, 10);
        tokio::time::advance(Duration::from_millis(1000)).await;
        let ejected = d.maybe_sweep().unwrap_or_default();
        assert_eq!(ejected.len(), 1, "{ejected:?}");
        assert_eq!(ejected[0].0, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn split_errors_judge_local_origin_failures_apart() {
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "maxEjectionPercent": 100,
            "splitExternalAndLocalErrors": true,
            "failurePercentage": {"minimumHosts": 2, "requestVolume": 10, "threshold": 50}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(2);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        // Endpoint 0 cannot be reached; endpoint 1 answers, all 200.
        for _ in 0..10 {
            assert_eq!(d.record(0, Outcome::LocalFailure), None);
        }
        outcomes(&d, 1, 10, 10);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(
            d.maybe_sweep()
                .map(|e| e.into_iter().map(|(i, _)| i).collect::<Vec<_>>()),
            Some(vec![0])
        );

        // Without the split, a connect failure is a 503 among the external outcomes.
        let p = policy(
            serde_json::json!({"intervalMs": 1000, "maxEjectionPercent": 100,
            "failurePercentage": {"minimumHosts": 2, "requestVolume": 10, "threshold": 50}}),
        );
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(2);
        let d = detector(&p, &c, &hs);
        assert_eq!(d.maybe_sweep(), None);
        for _ in 0..5 {
            assert_eq!(d.record(0, Outcome::LocalFailure), None);
            assert_eq!(d.record(0, Outcome::Status(200)), None);
        }
        outcomes(&d, 1, 10, 10);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(
            d.maybe_sweep()
                .map(|e| e.into_iter().map(|(i, _)| i).collect::<Vec<_>>()),
            Some(vec![0])
        );
    }

    #[test]
    fn without_rate_detectors_nothing_is_counted_or_swept() {
        let p = policy(serde_json::json!({"consecutive5xx": 100}));
        let c = Cluster::new(&CircuitBreaker::default());
        let hs = healths(1);
        let d = detector(&p, &c, &hs);
        outcomes(&d, 0, 10, 5);
        assert_eq!(hs[0].external.load(Ordering::Relaxed), 0);
        assert_eq!(d.maybe_sweep(), None);
        assert_eq!(c.next_sweep.load(Ordering::Relaxed), 0);
        let off: Outlier = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(OutlierPolicy::new(&off).is_none(), "no detector: no policy");
    }

    #[test]
    fn connection_pools_are_counted_while_they_have_members() {
        let c = Cluster::new(&CircuitBreaker {
            max_connection_pools: Some(1),
            ..CircuitBreaker::default()
        });
        let endpoint_a: Arc<[AtomicU32]> = (0..2).map(|_| AtomicU32::new(0)).collect();
        let endpoint_b: Arc<[AtomicU32]> = (0..2).map(|_| AtomicU32::new(0)).collect();
        let first = c.join_pool(&endpoint_a, 0, false);
        assert!(first.is_some());
        // The same worker's pool to the same endpoint: no new pool.
        let second = c.join_pool(&endpoint_a, 0, false);
        assert!(second.is_some());
        assert_eq!(c.in_use(Resource::ConnectionPools), 1);
        // Another worker, or another endpoint, would need a second pool.
        assert!(c.join_pool(&endpoint_a, 1, false).is_none());
        assert!(c.join_pool(&endpoint_b, 0, false).is_none());
        // A replacement connection is never refused.
        let forced = c.join_pool(&endpoint_b, 0, true);
        assert!(forced.is_some());
        assert_eq!(c.in_use(Resource::ConnectionPools), 2);
        drop(forced);
        drop(first);
        assert_eq!(c.in_use(Resource::ConnectionPools), 1, "one member left");
        drop(second);
        assert_eq!(c.in_use(Resource::ConnectionPools), 0);
        assert!(c.join_pool(&endpoint_b, 1, false).is_some());
        assert_eq!(c.in_use(Resource::ConnectionPools), 0);
        assert_eq!(
            Arc::strong_count(&c),
            1,
            "members hold the cluster no longer"
        );
        // Without maxConnectionPools, pools are unlimited.
        let c = Cluster::new(&CircuitBreaker::default());
        let members: Vec<PoolMember> = (0..2)
            .flat_map(|slot| [&endpoint_a, &endpoint_b].map(|e| c.join_pool(e, slot, false)))
            .flatten()
            .collect();
        assert_eq!(members.len(), 4);
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
