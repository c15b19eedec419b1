//! MeshFaultInjection on an inbound, as Envoy's fault filter does it: per fault set, a
//! delay before the request is forwarded and an abort instead of forwarding (each drawn on
//! its own, the delay first), and a cap on the response body's bandwidth.
//!
//! Which entries apply to a caller is decided once per connection (the caller's identity
//! is fixed); per request the cost is one draw per configured fault. An inbound without
//! faults pays one `Option` check.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use aerie_core::policies::callers::Caller;
use aerie_core::policies::meshfaultinjection::{Combine, InboundFaults};
use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::body::{BodyError, ProxyBody, local_response};
use crate::rng::chance;

/// The entries of `faults` that apply to `caller`, in order.
pub(crate) fn entries_for(faults: &InboundFaults, caller: &Caller<'_>) -> Box<[u32]> {
    let matching = faults
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.callers.matches(caller))
        .filter_map(|(i, _)| u32::try_from(i).ok());
    match faults.combine {
        Combine::First => matching.take(1).collect(),
        Combine::All => matching.collect(),
    }
}

/// What the faults decided for one request.
pub(crate) enum Outcome {
    /// Forward, then cap the response body at this many bytes per second, if any.
    Forward(Option<u64>),
    /// Answer this instead of forwarding (boxed: rare, and a response is large).
    Abort(Box<Response<ProxyBody>>),
}

/// Runs the faults of `entries` (from [`entries_for`]) on one request: waits out the
/// delays drawn, stops at the first abort drawn.
pub(crate) async fn inject(faults: &InboundFaults, entries: &[u32]) -> Outcome {
    let mut bandwidth = None;
    for &i in entries {
        let Some(entry) = faults.entries.get(i as usize) else {
            continue;
        };
        for f in &entry.faults {
            if let Some(d) = f.delay
                && chance(d.per_million)
            {
                crate::accesslog::note_flag(crate::accesslog::DI);
                tokio::time::sleep(Duration::from_millis(d.ms)).await;
            }
            if let Some(a) = f.abort
                && chance(a.per_million)
            {
                crate::accesslog::note_flag(crate::accesslog::FI);
                let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_REQUEST);
                return Outcome::Abort(Box::new(local_response(status, "fault filter abort")));
            }
            if let Some(b) = f.response_bandwidth
                && bandwidth.is_none()
                && chance(b.per_million)
            {
                bandwidth = Some(b.bytes_per_second);
            }
        }
    }
    Outcome::Forward(bandwidth)
}

/// How often a throttled body may send (Envoy's stream rate limiter fills every 50 ms).
const TICK: Duration = Duration::from_millis(50);

/// A response body sent at most `bytes_per_second`: a slice of a tick's worth of bytes
/// every 50 ms. Trailers pass untouched.
pub(crate) struct Throttled {
    /// Boxed: a proxy body may hold timers that must not move.
    inner: Pin<Box<ProxyBody>>,
    per_tick: usize,
    pending: Bytes,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Throttled {
    pub fn new(inner: ProxyBody, bytes_per_second: u64) -> Throttled {
        let per_tick = usize::try_from(bytes_per_second / 20)
            .unwrap_or(usize::MAX)
            .max(1);
        Throttled {
            inner: Box::pin(inner),
            per_tick,
            pending: Bytes::new(),
            wait: None,
        }
    }
}

impl Body for Throttled {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                if let Some(w) = this.wait.as_mut() {
                    ready!(w.as_mut().poll(cx));
                }
                let n = this.per_tick.min(this.pending.len());
                let chunk = this.pending.split_to(n);
                let next = tokio::time::Instant::now() + TICK;
                match this.wait.as_mut() {
                    Some(w) => w.as_mut().reset(next),
                    None => this.wait = Some(Box::pin(tokio::time::sleep_until(next))),
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(pending));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::callers::CallerMatch;
    use aerie_core::policies::meshfaultinjection::{Abort, Delay, Fault, FaultEntry};
    use aerie_core::policies::meshtrafficpermission::PeerIdentity;
    use http_body_util::BodyExt;

    fn entry(callers: CallerMatch, fault: Fault) -> FaultEntry {
        FaultEntry {
            callers,
            faults: vec![fault],
        }
    }

    fn service(s: &str) -> CallerMatch {
        CallerMatch::from_tags(&[("kuma.io/service".to_owned(), s.to_owned())])
    }

    #[test]
    fn legacy_entries_take_the_first_match_rules_take_every_match() {
        let mut faults = InboundFaults {
            combine: Combine::First,
            entries: vec![
                entry(service("web"), Fault::default()),
                entry(CallerMatch::any(), Fault::default()),
            ],
        };
        let web = PeerIdentity::new("default", ["web"]);
        let caller = Caller {
            identity: Some(&web),
            sni: None,
        };
        assert_eq!(&*entries_for(&faults, &caller), [0]);
        assert_eq!(&*entries_for(&faults, &Caller::default()), [1]);
        faults.combine = Combine::All;
        assert_eq!(&*entries_for(&faults, &caller), [0, 1]);
        assert_eq!(&*entries_for(&faults, &Caller::default()), [1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sure_delay_then_a_sure_abort() {
        let faults = InboundFaults {
            combine: Combine::All,
            entries: vec![entry(
                CallerMatch::any(),
                Fault {
                    delay: Some(Delay {
                        ms: 300,
                        per_million: 1_000_000,
                    }),
                    abort: Some(Abort {
                        status: 503,
                        per_million: 1_000_000,
                    }),
                    response_bandwidth: None,
                },
            )],
        };
        let start = tokio::time::Instant::now();
        match inject(&faults, &[0]).await {
            Outcome::Abort(resp) => {
                assert_eq!(resp.status(), 503);
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                assert_eq!(body.ok().as_deref(), Some(&b"fault filter abort"[..]));
            }
            Outcome::Forward(_) => panic!("a 100 % abort aborts"),
        }
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_body_takes_its_size_over_the_rate() {
        // 20 KiB at 10 KiB/s: a 512-byte slice every 50 ms, 40 slices, ~1.95 s.
        let data = Bytes::from(vec![7u8; 20 * 1024]);
        let body = Throttled::new(
            ProxyBody::Local {
                data: Some(data.clone()),
            },
            10 * 1024,
        );
        let start = tokio::time::Instant::now();
        let got = body.collect().await.map(|b| b.to_bytes());
        assert_eq!(got.ok(), Some(data));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2000),
            "{took:?}"
        );
    }
}
