//! MeshRetry for HTTP and gRPC: which requests may be retried, which outcomes are retried
//! (`retryOn`, `retriableResponseHeaders`), and the back-off between attempts: jittered
//! exponential, or what a retried response asks for in one of `rateLimitedBackOff`'s reset
//! headers (Envoy's route `retry_policy` semantics).
//!
//! The first attempt streams the request body upstream as it arrives (a streaming call is
//! never held back) while keeping a copy of it ([`ReqBody::Tee`]); a retry replays the head
//! and that copy. Only a body that had fully gone out and fits in [`REPLAY_BUFFER_LIMIT`]
//! (Envoy's per-request buffer limit) can be replayed; otherwise the answer of the first
//! attempt stands. A request without a body costs no copy at all.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use aerie_core::policies::meshretry::{HeaderCondition, HttpRetry, ResetFormat, Retry};
use aerie_core::proxy_config::Protocol;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, request::Parts};
use hyper::body::{Body, Frame, SizeHint};

use crate::stream::RxBody;

/// The largest request body kept for replay.
pub(crate) const REPLAY_BUFFER_LIMIT: usize = 64 * 1024;

/// A request body on its way upstream: streamed, streamed while a copy is kept, or
/// replayed from that copy. An enum, not a boxed body: the streamed case costs nothing.
pub(crate) enum ReqBody {
    Stream(RxBody),
    Tee {
        inner: RxBody,
        copy: Arc<Mutex<Copy>>,
    },
    Full {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
}

/// What went upstream of a request body, for replay.
#[derive(Default)]
pub(crate) struct Copy {
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    /// The whole body went out.
    complete: bool,
    /// Bigger than [`REPLAY_BUFFER_LIMIT`]: not kept.
    too_big: bool,
}

impl Copy {
    /// Keeps a frame that went out (dropping everything once over the limit).
    pub fn record(&mut self, frame: &Frame<Bytes>) {
        if self.too_big {
            return;
        }
        if let Some(data) = frame.data_ref() {
            self.len = self.len.saturating_add(data.len());
            if self.len > REPLAY_BUFFER_LIMIT {
                self.too_big = true;
                self.chunks = Vec::new();
                return;
            }
            self.chunks.push(data.clone());
        } else if let Some(t) = frame.trailers_ref() {
            self.trailers = Some(t.clone());
        }
    }

    /// Over [`REPLAY_BUFFER_LIMIT`]: nothing kept.
    pub fn too_big(&self) -> bool {
        self.too_big
    }

    /// All of the body went out.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// The body again, if all of it went out and was kept.
    pub fn replay(&mut self) -> Option<ReqBody> {
        if !self.complete || self.too_big {
            return None;
        }
        if self.chunks.len() > 1 {
            let mut all = BytesMut::with_capacity(self.len);
            for c in &self.chunks {
                all.extend_from_slice(c);
            }
            self.chunks = vec![all.freeze()];
        }
        Some(ReqBody::Full {
            data: self.chunks.first().cloned(),
            trailers: self.trailers.clone(),
        })
    }
}

impl ReqBody {
    /// `body` streamed upstream with a copy kept for replay (none needed when it is empty).
    pub fn tee(body: RxBody) -> (ReqBody, Option<Arc<Mutex<Copy>>>) {
        if body.is_end_stream() {
            return (
                ReqBody::Full {
                    data: None,
                    trailers: None,
                },
                None,
            );
        }
        let copy = Arc::new(Mutex::new(Copy::default()));
        (
            ReqBody::Tee {
                inner: body,
                copy: copy.clone(),
            },
            Some(copy),
        )
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Stream(b) => Pin::new(b).poll_frame(cx),
            ReqBody::Tee { inner, copy } => {
                let res = Pin::new(&mut *inner).poll_frame(cx);
                match &res {
                    Poll::Ready(Some(Ok(frame))) => {
                        let mut c = copy.lock().unwrap_or_else(|e| e.into_inner());
                        c.record(frame);
                        c.complete = inner.is_end_stream();
                    }
                    Poll::Ready(None) => {
                        copy.lock().unwrap_or_else(|e| e.into_inner()).complete = true;
                    }
                    Poll::Ready(Some(Err(_))) | Poll::Pending => {}
                }
                res
            }
            ReqBody::Full { data, trailers } => Poll::Ready(
                data.take()
                    .map(|d| Ok(Frame::data(d)))
                    .or_else(|| trailers.take().map(|t| Ok(Frame::trailers(t)))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b) | ReqBody::Tee { inner: b, .. } => b.is_end_stream(),
            ReqBody::Full { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream(b) | ReqBody::Tee { inner: b, .. } => b.size_hint(),
            ReqBody::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// A request head kept for replay (extensions are not carried over).
pub(crate) struct Head {
    method: Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
}

impl Head {
    pub fn of(parts: &Parts) -> Head {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }

    /// The request again, with `body`.
    pub fn request(&self, body: ReqBody) -> http::Request<ReqBody> {
        let mut req = http::Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// A compiled [`HttpRetry`].
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    base_ms: u64,
    max_ms: u64,
    on: On,
    status_codes: Vec<u16>,
    methods: Vec<Method>,
    request_headers: Vec<HeaderCondition>,
    /// A response matching one of these is retried (`retriableResponseHeaders`).
    response_headers: Vec<HeaderCondition>,
    /// `rateLimitedBackOff`; `None`: the exponential back-off only.
    rate_limited: Option<RateLimited>,
    grpc: bool,
}

/// Envoy's `rate_limited_retry_back_off`, compiled.
#[derive(Debug, Clone)]
struct RateLimited {
    /// The reset headers, in order, and how each reads.
    headers: Vec<(HeaderName, ResetFormat)>,
    max_ms: u64,
}

/// Envoy's `retry_on` conditions, as flags.
#[derive(Debug, Clone, Copy, Default)]
struct On {
    any_5xx: bool,
    gateway_error: bool,
    reset: bool,
    connect_failure: bool,
    retriable_4xx: bool,
    rate_limited: bool,
    /// gRPC status codes (in the response headers) that are retried, as a bit set.
    grpc_codes: u32,
}

/// What one attempt came to, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// No endpoint accepted a connection.
    ConnectFailure,
    /// The exchange broke, or the per-try timeout passed, before response headers.
    Reset,
    /// A response; `grpc` is its `grpc-status` header (a trailers-only gRPC answer).
    Response {
        status: u16,
        grpc: Option<u32>,
        rate_limited: bool,
    },
}

impl RetryPolicy {
    /// `grpc`: the listener speaks gRPC (the gRPC conditions apply).
    /// An outbound's retries, as Kuma's MeshRetry plugin picks them: `http` for HTTP/1.1
    /// outbounds, `grpc` for gRPC; `http2` outbounds get no route retries (and TCP ones
    /// connect attempts).
    pub fn for_protocol(retry: &Retry, protocol: Protocol) -> Option<RetryPolicy> {
        match protocol {
            Protocol::Tcp | Protocol::Http2 => None,
            Protocol::Http => retry.http.as_ref(),
            Protocol::Grpc => retry.grpc.as_ref(),
        }
        .map(|p| RetryPolicy::new(p, protocol == Protocol::Grpc))
    }

    pub fn new(p: &HttpRetry, grpc: bool) -> RetryPolicy {
        let mut on = On::default();
        for c in &p.retry_on {
            match c.as_str() {
                "5xx" => on.any_5xx = true,
                "gateway-error" => on.gateway_error = true,
                "reset" => on.reset = true,
                "connect-failure" => on.connect_failure = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "envoy-ratelimited" => on.rate_limited = true,
                "cancelled" => on.grpc_codes |= 1 << 1,
                "deadline-exceeded" => on.grpc_codes |= 1 << 4,
                "resource-exhausted" => on.grpc_codes |= 1 << 8,
                "internal" => on.grpc_codes |= 1 << 13,
                "unavailable" => on.grpc_codes |= 1 << 14,
                // refused-stream, http3-post-connect-failure: not detected here.
                _ => {}
            }
        }
        RetryPolicy {
            num_retries: p.num_retries,
            per_try_timeout: (p.per_try_timeout_ms > 0)
                .then(|| Duration::from_millis(p.per_try_timeout_ms)),
            base_ms: p.base_interval_ms.max(1),
            max_ms: p.max_interval_ms.max(p.base_interval_ms).max(1),
            on,
            status_codes: p.status_codes.clone(),
            methods: p
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            request_headers: p.request_headers.clone(),
            response_headers: p.response_headers.clone(),
            rate_limited: p.rate_limited.as_ref().and_then(|r| {
                // A name that is no header name never matches (Envoy would refuse it).
                let headers: Vec<(HeaderName, ResetFormat)> = r
                    .reset_headers
                    .iter()
                    .filter_map(|h| {
                        Some((HeaderName::from_bytes(h.name.as_bytes()).ok()?, h.format))
                    })
                    .collect();
                (!headers.is_empty()).then_some(RateLimited {
                    headers,
                    max_ms: r.max_interval_ms,
                })
            }),
            grpc,
        }
    }

    /// Whether this request may be retried at all (its method and headers).
    pub fn eligible(&self, method: &Method, headers: &HeaderMap) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        self.request_headers.is_empty()
            || self
                .request_headers
                .iter()
                .any(|c| header_matches(c, headers))
    }

    /// Whether an attempt that came to `a` is retried; `headers` are the response's (read
    /// only for [`Attempt::Response`], when `retriableResponseHeaders` are configured).
    pub fn retries(&self, a: Attempt, headers: &HeaderMap) -> bool {
        let on = &self.on;
        match a {
            Attempt::ConnectFailure => {
                on.connect_failure || on.reset || on.any_5xx || on.gateway_error
            }
            Attempt::Reset => on.reset || on.any_5xx || on.gateway_error,
            // An upstream Envoy's rate limit is retried only under `envoy-ratelimited`,
            // whatever else matches.
            Attempt::Response {
                rate_limited: true, ..
            } => on.rate_limited,
            Attempt::Response { status, grpc, .. } => {
                (on.any_5xx && (500..600).contains(&status))
                    || (on.gateway_error && (502..=504).contains(&status))
                    || (on.retriable_4xx && status == 409)
                    || self.status_codes.contains(&status)
                    || self
                        .response_headers
                        .iter()
                        .any(|c| header_matches(c, headers))
                    || (self.grpc && grpc.is_some_and(|g| g < 32 && on.grpc_codes & (1 << g) != 0))
            }
        }
    }

    /// The wait a retried response asks for (`rateLimitedBackOff`): the first reset header
    /// whose value reads as a wait of at most `maxInterval`, jittered as Envoy's
    /// lower-bound back-off (uniform in `[wait, 1.5 × wait)`). `None`: no such header, or a
    /// wait of zero; the exponential back-off applies.
    pub fn rate_limited_back_off(&self, headers: &HeaderMap) -> Option<Duration> {
        let rl = self.rate_limited.as_ref()?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let wait = reset_interval_ms(rl, headers, now)?;
        // Envoy's lower-bound strategy wants more than a millisecond.
        (wait > 1).then(|| Duration::from_millis(wait + random_below(wait / 2)))
    }

    /// The wait before retry `n` (1 = the first retry): random below `(2^n - 1) × base`,
    /// never more than the maximum (Envoy's jittered exponential back-off).
    pub fn back_off(&self, n: u32) -> Duration {
        let factor = (1u64 << n.min(62)) - 1;
        let ceiling = self.base_ms.saturating_mul(factor).max(1);
        Duration::from_millis(random_below(ceiling).min(self.max_ms))
    }
}

/// The wait the first usable reset header asks for, in milliseconds (Envoy's
/// `parseResetInterval`): its first value as a whole number of seconds (`Seconds`), or the
/// seconds from `now_unix` to it (`UnixTimestamp`; a time in the past is not usable); a
/// wait above the maximum is not usable either.
fn reset_interval_ms(rl: &RateLimited, headers: &HeaderMap, now_unix: u64) -> Option<u64> {
    rl.headers.iter().find_map(|(name, format)| {
        let seconds = parse_seconds(headers.get(name)?.as_bytes())?;
        let wait = match format {
            ResetFormat::Seconds => seconds,
            ResetFormat::UnixTimestamp => seconds.checked_sub(now_unix)?,
        };
        let ms = wait.checked_mul(1000)?;
        (ms <= rl.max_ms).then_some(ms)
    })
}

/// A whole number as Abseil's `SimpleAtoi` reads one (surrounding whitespace and a `+`
/// allowed).
fn parse_seconds(v: &[u8]) -> Option<u64> {
    let v = std::str::from_utf8(v).ok()?.trim_ascii();
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn header_matches(c: &HeaderCondition, headers: &HeaderMap) -> bool {
    let value = headers.get(c.name.as_str()).and_then(|v| v.to_str().ok());
    match c.match_type.as_str() {
        "Present" => value.is_some(),
        "Absent" => value.is_none(),
        "Prefix" => value.is_some_and(|v| v.starts_with(&c.value)),
        // RegularExpression is not evaluated by kuma-dp: never matches.
        "Exact" => value == Some(c.value.as_str()),
        _ => false,
    }
}

use crate::rng::random_below;

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshretry::HttpRetry;

    fn policy(retry_on: &[&str], codes: &[u16]) -> RetryPolicy {
        RetryPolicy::new(
            &HttpRetry {
                num_retries: 3,
                retry_on: retry_on.iter().map(|s| (*s).to_owned()).collect(),
                status_codes: codes.to_vec(),
                ..HttpRetry::default()
            },
            false,
        )
    }

    fn none() -> HeaderMap {
        HeaderMap::new()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn resp(status: u16) -> Attempt {
        Attempt::Response {
            status,
            grpc: None,
            rate_limited: false,
        }
    }

    #[test]
    fn conditions_follow_envoy() {
        let gw = policy(&["gateway-error", "connect-failure", "refused-stream"], &[]);
        assert!(
            gw.retries(resp(503), &none())
                && gw.retries(resp(502), &none())
                && gw.retries(resp(504), &none())
        );
        assert!(
            !gw.retries(resp(500), &none())
                && !gw.retries(resp(200), &none())
                && !gw.retries(resp(409), &none())
        );
        assert!(
            gw.retries(Attempt::ConnectFailure, &none()) && gw.retries(Attempt::Reset, &none())
        );

        let codes = policy(&["connect-failure"], &[503]);
        assert!(codes.retries(resp(503), &none()) && !codes.retries(resp(502), &none()));
        assert!(!codes.retries(Attempt::Reset, &none()));

        let any = policy(&["5xx", "retriable-4xx"], &[]);
        assert!(
            any.retries(resp(500), &none())
                && any.retries(resp(409), &none())
                && !any.retries(resp(404), &none())
        );

        let grpc = RetryPolicy::new(
            &HttpRetry {
                retry_on: vec!["unavailable".into()],
                ..HttpRetry::default()
            },
            true,
        );
        let grpc_status = |g| Attempt::Response {
            status: 200,
            grpc: Some(g),
            rate_limited: false,
        };
        assert!(grpc.retries(grpc_status(14), &none()));
        assert!(!grpc.retries(grpc_status(0), &none()));
        // An upstream Envoy's rate limit: only under envoy-ratelimited.
        let limited = Attempt::Response {
            status: 503,
            grpc: None,
            rate_limited: true,
        };
        assert!(!gw.retries(limited, &none()));
        assert!(policy(&["envoy-ratelimited"], &[]).retries(limited, &none()));
    }

    #[test]
    fn eligibility_by_method_and_request_headers() {
        let p = RetryPolicy::new(
            &HttpRetry {
                methods: vec!["GET".into()],
                request_headers: vec![HeaderCondition {
                    name: "x-retry".into(),
                    match_type: "Exact".into(),
                    value: "yes".into(),
                }],
                ..HttpRetry::default()
            },
            false,
        );
        let mut h = HeaderMap::new();
        assert!(!p.eligible(&Method::GET, &h));
        h.insert("x-retry", http::HeaderValue::from_static("yes"));
        assert!(p.eligible(&Method::GET, &h));
        assert!(!p.eligible(&Method::POST, &h));
    }

    #[test]
    fn back_off_grows_exponentially_with_jitter_and_is_capped() {
        let p = RetryPolicy::new(
            &HttpRetry {
                base_interval_ms: 25,
                max_interval_ms: 100,
                ..HttpRetry::default()
            },
            false,
        );
        let samples = |n| (0..2000).map(|_| p.back_off(n)).collect::<Vec<_>>();
        let first = samples(1);
        assert!(first.iter().all(|d| *d < Duration::from_millis(25)));
        assert!(
            first.iter().any(|d| *d != first[0]),
            "jittered: {:?}",
            &first[..5]
        );
        let second = samples(2);
        assert!(second.iter().all(|d| *d < Duration::from_millis(75)));
        assert!(second.iter().any(|d| *d >= Duration::from_millis(25)));
        let tenth = samples(10);
        assert!(tenth.iter().all(|d| *d <= Duration::from_millis(100)));
        assert!(tenth.iter().any(|d| *d == Duration::from_millis(100)));
    }

    #[test]
    fn a_response_matching_a_retriable_response_header_is_retried() {
        let p = RetryPolicy::new(
            &HttpRetry {
                retry_on: vec!["connect-failure".into()],
                response_headers: vec![
                    HeaderCondition {
                        name: "x-retry-me".into(),
                        match_type: "Exact".into(),
                        value: "yes".into(),
                    },
                    HeaderCondition {
                        name: "x-overloaded".into(),
                        match_type: "Present".into(),
                        value: String::new(),
                    },
                ],
                ..HttpRetry::default()
            },
            false,
        );
        assert!(p.retries(resp(200), &headers(&[("x-retry-me", "yes")])));
        assert!(p.retries(resp(404), &headers(&[("x-overloaded", "1")])));
        assert!(!p.retries(resp(200), &headers(&[("x-retry-me", "no")])));
        assert!(!p.retries(resp(500), &none()), "nothing else retries a 500");
        // Without the field, headers are not looked at.
        assert!(
            !policy(&["connect-failure"], &[])
                .retries(resp(200), &headers(&[("x-retry-me", "yes")]))
        );
    }

    fn rate_limited(max_ms: u64) -> RetryPolicy {
        use aerie_core::policies::meshretry::{RateLimitedRetry, ResetHeaderConf};
        RetryPolicy::new(
            &HttpRetry {
                rate_limited: Some(RateLimitedRetry {
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
                    max_interval_ms: max_ms,
                }),
                ..HttpRetry::default()
            },
            false,
        )
    }

    #[test]
    fn reset_headers_are_read_in_order_within_the_maximum() {
        let p = rate_limited(10_000);
        let rl = p.rate_limited.as_ref().unwrap();
        let now = 1_700_000_000;
        let wait = |pairs: &[(&'static str, &str)]| reset_interval_ms(rl, &headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "3")]), Some(3_000));
        assert_eq!(
            wait(&[("retry-after", " +2 ")]),
            Some(2_000),
            "as SimpleAtoi"
        );
        assert_eq!(wait(&[("x-ratelimit-reset", "1700000004")]), Some(4_000));
        assert_eq!(
            wait(&[("x-ratelimit-reset", "1699999999")]),
            None,
            "in the past"
        );
        // Over the maximum, or not a whole number: the next header is tried.
        assert_eq!(
            wait(&[("retry-after", "11"), ("x-ratelimit-reset", "1700000005")]),
            Some(5_000)
        );
        assert_eq!(
            wait(&[("retry-after", "1.5"), ("x-ratelimit-reset", "1700000001")]),
            Some(1_000)
        );
        assert_eq!(
            wait(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        // Only the first value of a header counts.
        assert_eq!(wait(&[("retry-after", "x"), ("retry-after", "1")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn rate_limited_back_off_waits_what_the_response_asks_jittered_up() {
        let p = rate_limited(10_000);
        let samples: Vec<Duration> = (0..2000)
            .filter_map(|_| p.rate_limited_back_off(&headers(&[("retry-after", "2")])))
            .collect();
        assert_eq!(samples.len(), 2000);
        assert!(
            samples
                .iter()
                .all(|d| (Duration::from_millis(2_000)..Duration::from_millis(3_000)).contains(d)),
            "{:?}",
            samples.iter().max()
        );
        assert!(
            samples.iter().any(|d| *d >= Duration::from_millis(2_500)),
            "jittered"
        );
        // A wait of zero, a response without the header, or no rateLimitedBackOff at all:
        // the exponential back-off applies.
        assert_eq!(
            p.rate_limited_back_off(&headers(&[("retry-after", "0")])),
            None
        );
        assert_eq!(p.rate_limited_back_off(&none()), None);
        assert_eq!(
            policy(&["5xx"], &[]).rate_limited_back_off(&headers(&[("retry-after", "2")])),
            None
        );
        // The maximum applies to what is asked, before the jitter.
        let tight = rate_limited(2_000);
        assert!(
            tight
                .rate_limited_back_off(&headers(&[("retry-after", "2")]))
                .is_some()
        );
        assert_eq!(
            tight.rate_limited_back_off(&headers(&[("retry-after", "3")])),
            None
        );
    }
}
