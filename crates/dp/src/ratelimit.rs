//! MeshRateLimit on an inbound: Envoy's local rate limit, one token bucket per route (the
//! inbound's, and one per SPIFFE ID match of the policy's `rules`), shared by every worker
//! and connection of the listener, and one bucket for new connections.
//!
//! A bucket is one atomic word (the fill period it was last touched in, and the tokens
//! left): taking a token is a load and a compare-and-swap, never a lock. It holds `num`
//! tokens and is refilled to `num` at every `interval` boundary since it was created (as
//! Envoy's timer-driven fill does, `max_tokens = tokens_per_fill`). Buckets live with the
//! listener's route and survive config pushes that leave the limits unchanged.

use std::sync::atomic::{AtomicU64, Ordering};

use aerie_core::policies::callers::{Caller, CallerMatch};
use aerie_core::policies::meshratelimit::{HttpLimit, InboundRateLimit, LimitRate};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tokio::time::Instant;

use crate::body::{ProxyBody, local_response};

/// A token bucket: `num` tokens per `interval`, lock-free.
pub(crate) struct TokenBucket {
    start: Instant,
    interval_ms: u64,
    num: u32,
    /// High 32 bits: the fill period (intervals since `start`, wrapping); low 32: tokens left.
    state: AtomicU64,
}

impl TokenBucket {
    pub fn new(rate: LimitRate) -> TokenBucket {
        TokenBucket {
            start: Instant::now(),
            interval_ms: rate.interval_ms.max(1),
            num: rate.num,
            state: AtomicU64::new(u64::from(rate.num)),
        }
    }

    /// Takes a token; `false` when the bucket is empty until the next fill.
    pub fn try_acquire(&self) -> bool {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Wrapping on purpose: only equality with the stored period matters.
        let period = (elapsed / self.interval_ms) as u32;
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let tokens = if (cur >> 32) as u32 == period {
                cur as u32
            } else {
                self.num
            };
            if tokens == 0 {
                return false;
            }
            let next = (u64::from(period) << 32) | u64::from(tokens - 1);
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A limited route: its bucket and the answer to a request that finds it empty.
pub(crate) struct HttpBucket {
    bucket: TokenBucket,
    status: StatusCode,
    /// Names replaced (removed first), then headers appended, then the replacing values.
    replace: Vec<HeaderName>,
    headers: Vec<(HeaderName, HeaderValue, bool)>,
}

impl HttpBucket {
    fn new(limit: &HttpLimit) -> HttpBucket {
        let headers: Vec<(HeaderName, HeaderValue, bool)> = limit
            .headers
            .iter()
            .filter_map(|h| {
                Some((
                    HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                    HeaderValue::from_str(&h.value).ok()?,
                    h.append,
                ))
            })
            .collect();
        let mut replace: Vec<HeaderName> = headers
            .iter()
            .filter(|h| !h.2)
            .map(|h| h.0.clone())
            .collect();
        replace.dedup();
        HttpBucket {
            bucket: TokenBucket::new(limit.rate),
            status: StatusCode::from_u16(limit.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            replace,
            headers,
        }
    }

    /// Envoy's local reply for a limited request.
    fn limited(&self) -> Response<ProxyBody> {
        let mut resp = local_response(self.status, "local_rate_limited");
        let h = resp.headers_mut();
        h.insert(
            HeaderName::from_static("x-envoy-ratelimited"),
            HeaderValue::from_static("true"),
        );
        for name in &self.replace {
            h.remove(name);
        }
        for append in [true, false] {
            for (name, value, _) in self.headers.iter().filter(|x| x.2 == append) {
                h.append(name.clone(), value.clone());
            }
        }
        resp
    }
}

/// The buckets of one inbound.
pub(crate) struct InboundLimiter {
    /// What they were built from: a new config with the same limits keeps the buckets.
    pub cfg: InboundRateLimit,
    http: Vec<(CallerMatch, Option<HttpBucket>)>,
    tcp: Option<TokenBucket>,
}

impl InboundLimiter {
    pub fn new(cfg: &InboundRateLimit) -> InboundLimiter {
        InboundLimiter {
            cfg: cfg.clone(),
            http: cfg
                .http
                .iter()
                .map(|r| (r.callers.clone(), r.limit.as_ref().map(HttpBucket::new)))
                .collect(),
            tcp: cfg.tcp.map(TokenBucket::new),
        }
    }

    /// Whether a new connection is within the connection rate.
    pub fn admit_connection(&self) -> bool {
        self.tcp.as_ref().is_none_or(TokenBucket::try_acquire)
    }

    /// The HTTP route a caller's requests use (decided once per connection): the first
    /// whose callers match; `None` = not limited.
    pub fn route_for(&self, caller: &Caller<'_>) -> Option<usize> {
        let i = self.http.iter().position(|(m, _)| m.matches(caller))?;
        self.http.get(i)?.1.as_ref().map(|_| i)
    }

    /// Takes a token from route `i`; the limited answer when there is none.
    pub fn check(&self, i: usize) -> Option<Response<ProxyBody>> {
        let b = self.http.get(i)?.1.as_ref()?;
        (!b.bucket.try_acquire()).then(|| {
            crate::accesslog::note_flag(crate::accesslog::RL);
            b.limited()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshratelimit::{HeaderAction, HttpRoute};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_holds_num_tokens_and_refills_at_each_interval() {
        let b = TokenBucket::new(LimitRate {
            num: 10,
            interval_ms: 1000,
        });
        assert!((0..10).all(|_| b.try_acquire()));
        assert!(!b.try_acquire(), "the 11th within the interval is refused");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!b.try_acquire(), "still the same interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!((0..10).all(|_| b.try_acquire()), "refilled at the boundary");
        assert!(!b.try_acquire());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            (0..10).all(|_| b.try_acquire()),
            "idle periods do not accumulate beyond num"
        );
        assert!(!b.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_shared_by_threads_gives_out_exactly_num_tokens() {
        let b = std::sync::Arc::new(TokenBucket::new(LimitRate {
            num: 1000,
            interval_ms: 60_000,
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..500).filter(|_| b.try_acquire()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(taken, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_request_gets_the_status_body_and_headers() {
        let cfg = InboundRateLimit {
            http: vec![HttpRoute {
                callers: CallerMatch::any(),
                limit: Some(HttpLimit {
                    rate: LimitRate {
                        num: 1,
                        interval_ms: 1000,
                    },
                    status: 503,
                    headers: vec![
                        HeaderAction {
                            name: "x-limited".into(),
                            value: "yes".into(),
                            append: true,
                        },
                        HeaderAction {
                            name: "x-set".into(),
                            value: "a".into(),
                            append: false,
                        },
                        HeaderAction {
                            name: "x-set".into(),
                            value: "b".into(),
                            append: false,
                        },
                    ],
                }),
            }],
            tcp: None,
        };
        let l = InboundLimiter::new(&cfg);
        let route = l.route_for(&Caller::default());
        assert_eq!(route, Some(0));
        assert!(l.check(0).is_none());
        let resp = l
            .check(0)
            .unwrap_or_else(|| panic!("the second is limited"));
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["x-envoy-ratelimited"], "true");
        assert_eq!(resp.headers()["x-limited"], "yes");
        let set: Vec<_> = resp.headers().get_all("x-set").iter().collect();
        assert_eq!(set, ["a", "b"]);
        assert!(l.admit_connection(), "no connection limit");
    }
}
