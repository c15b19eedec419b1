//! MeshTimeout's per-stream HTTP timeouts, with Envoy's semantics (Kuma sets them as the
//! route's `idle_timeout` and the cluster's `max_stream_duration`):
//!
//! - `http.streamIdleTimeout`: a stream with no frame either way (request body frames from
//!   downstream, response headers and frames to downstream) for that long ends. Before the
//!   response headers it is answered `504 stream timeout` (`408` while the request is still
//!   arriving: Envoy's `maybeRequestTimeoutCode`); after, it is reset.
//! - `http.maxStreamDuration`: an attempt's upstream stream ends this long after it was sent
//!   (from the moment it had a connection), even while bytes flow: before the response
//!   headers `504`/`408 upstream max stream duration reached` (retried as a reset when
//!   MeshRetry says so), after, a reset.
//!
//! Costs. Before the response headers, the stream idle deadline shares the request
//! timeout's single timer ([`before_headers`]). After, the response body carries one timer
//! ([`TimedBody`]), created only once the body has to wait, and never re-armed per frame: a
//! frame records the time, and the timer, when it fires, checks whether the stream really
//! was idle and otherwise sleeps again until the new deadline. A request without a body
//! needs nothing shared; one with a body (while a stream timeout is on) shares one small
//! [`RxWatch`] between its body, which the upstream connection's task reads, and the
//! response side.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use aerie_core::policies::meshtimeout::Timeouts;
use aerie_core::proxy_config::Protocol;
use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BodyError;
use crate::breaker::Held;
use crate::listener::InFlight;
use crate::pool::PooledBody;

/// A listener's per-stream timeouts (`None`: off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamLimits {
    /// `http.streamIdleTimeout`.
    pub idle: Option<Duration>,
    /// `http.maxStreamDuration`.
    pub max: Option<Duration>,
}

impl StreamLimits {
    /// As Kuma configures Envoy: the stream idle timeout on every HTTP route, the maximum
    /// stream duration on HTTP and HTTP/2 clusters only (Kuma's cluster configurer leaves
    /// gRPC clusters alone).
    pub fn of(t: &Timeouts, protocol: Protocol) -> StreamLimits {
        StreamLimits {
            idle: t.stream_idle(),
            max: match protocol {
                Protocol::Http | Protocol::Http2 => t.max_stream(),
                Protocol::Tcp | Protocol::Grpc => None,
            },
        }
    }

    pub fn any(&self) -> bool {
        self.idle.is_some() || self.max.is_some()
    }
}

/// Envoy's status for a stream that timed out before its response: `504` once the whole
/// request arrived, `408` while it is still arriving.
pub(crate) fn timeout_status(request_done: bool) -> StatusCode {
    if request_done {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::REQUEST_TIMEOUT
    }
}

/// `at + d`, `None` past the clock's range (a deadline that never comes).
fn after(at: Instant, d: Duration) -> Option<Instant> {
    at.checked_add(d)
}

/// What a request body reports to its stream's timers: when its last frame arrived and
/// whether it ended. Shared between the body (read by the upstream connection's task) and
/// the response side.
#[derive(Debug)]
pub(crate) struct RxWatch {
    base: Instant,
    /// Nanoseconds from `base` to the last frame.
    last: AtomicU64,
    done: AtomicBool,
}

impl RxWatch {
    fn new(base: Instant) -> RxWatch {
        RxWatch {
            base,
            last: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let since = Instant::now()
            .saturating_duration_since(self.base)
            .as_nanos();
        self.last
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// When the last frame arrived (the stream's start before any).
    pub fn last(&self) -> Instant {
        let since = Duration::from_nanos(self.last.load(Ordering::Relaxed));
        after(self.base, since).unwrap_or(self.base)
    }

    /// The whole request body arrived.
    pub fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }
}

/// Whether the whole request arrived, for [`timeout_status`]: a request without a watch
/// had no body left to wait for.
pub(crate) fn request_done(rx: Option<&RxWatch>) -> bool {
    rx.is_none_or(RxWatch::done)
}

/// A downstream request body. Until it ends it keeps the request counted in flight on its
/// connection (an HTTP/1 connection reading it is not between requests), and once watched
/// ([`RxBody::watch`]) it reports its frames to the stream's timers.
pub(crate) struct RxBody {
    body: Incoming,
    open: Option<InFlight>,
    watch: Option<Arc<RxWatch>>,
    /// A copy for MeshHTTPRoute's `RequestMirror`, handed over once the body has ended.
    tap: Option<Box<Tap>>,
    /// MeshAccessLog's count of the body's bytes (`%BYTES_RECEIVED%`).
    counted: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// A request body's copy on its way to a mirror: kept while the body streams (up to
/// [`crate::retry::REPLAY_BUFFER_LIMIT`]), sent once it ended. A body that grows beyond the
/// limit, breaks off or is dropped unfinished drops the sender: the mirror is not sent.
pub(crate) struct Tap {
    copy: crate::retry::Copy,
    done: tokio::sync::oneshot::Sender<crate::retry::ReqBody>,
}

impl Tap {
    fn record(&mut self, frame: &Frame<Bytes>) -> bool {
        self.copy.record(frame);
        !self.copy.too_big()
    }

    fn finish(mut self) {
        self.copy.complete();
        if let Some(body) = self.copy.replay() {
            // The mirror may have given up waiting: nothing to do then.
            let _ = self.done.send(body);
        }
    }
}

impl RxBody {
    /// `open`: the connection's count of this body (`None` for a body that is already over).
    pub fn new(body: Incoming, open: Option<InFlight>) -> RxBody {
        RxBody {
            body,
            open,
            watch: None,
            tap: None,
            counted: None,
        }
    }

    /// Adds the bytes of the body's data frames to `counter` as they arrive.
    pub fn count_into(&mut self, counter: Arc<std::sync::atomic::AtomicU64>) {
        self.counted = Some(counter);
    }

    /// A copy of the body for a mirror, delivered once the body has fully arrived (the
    /// request itself streams on untouched); the sender is dropped when the body is bigger
    /// than [`crate::retry::REPLAY_BUFFER_LIMIT`] or does not end. `None` when the body is
    /// already over (the mirror sends none).
    pub fn tap(&mut self) -> Option<tokio::sync::oneshot::Receiver<crate::retry::ReqBody>> {
        if self.body.is_end_stream() {
            return None;
        }
        let (done, rx) = tokio::sync::oneshot::channel();
        self.tap = Some(Box::new(Tap {
            copy: crate::retry::Copy::default(),
            done,
        }));
        Some(rx)
    }

    /// Starts reporting frames to a new [`RxWatch`] (`start`: the stream's start); `None`
    /// when there is no body left (nothing to watch, nothing allocated).
    pub fn watch(&mut self, start: Instant) -> Option<Arc<RxWatch>> {
        if self.body.is_end_stream() {
            return None;
        }
        let watch = Arc::new(RxWatch::new(start));
        self.watch = Some(watch.clone());
        Some(watch)
    }

    fn ended(&mut self) {
        self.open = None;
        if let Some(w) = &self.watch {
            w.done.store(true, Ordering::Relaxed);
        }
        if let Some(tap) = self.tap.take() {
            tap.finish();
        }
    }
}

impl Drop for RxBody {
    fn drop(&mut self) {
        // Dropped before its end: what the connection reads next may be the rest of it.
        if let Some(open) = self.open.take() {
            open.abandon();
        }
    }
}

impl Body for RxBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.body).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(w) = &this.watch {
                    w.touch();
                }
                if let (Some(c), Some(d)) = (&this.counted, frame.data_ref()) {
                    c.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                if let Some(tap) = &mut this.tap
                    && !tap.record(frame)
                {
                    this.tap = None;
                }
                if this.body.is_end_stream() {
                    this.ended();
                }
            }
            Poll::Ready(None) => this.ended(),
            // A broken body is not mirrored.
            Poll::Ready(Some(Err(_))) => this.tap = None,
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What ended a stream before its response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// `http.requestTimeout`.
    Request,
    /// `http.streamIdleTimeout`.
    StreamIdle,
}

/// Runs `fut` (the exchange up to the response headers) within the request timeout (from
/// `start`) and the stream idle timeout (from `start` or the request body's last frame),
/// on one timer.
///
/// A hand-written future rather than an `async fn`: an `async fn` keeps its argument, its
/// pinned copy and its plain `.await` as three slots of the exchange's size, and the
/// exchange is the largest part of a request's future.
pub(crate) fn before_headers<'a, F: Future>(
    fut: F,
    start: Instant,
    request: Option<Duration>,
    idle: Option<Duration>,
    rx: Option<&'a RxWatch>,
) -> BeforeHeaders<'a, F> {
    let request_at = request.and_then(|d| after(start, d));
    let mut waiting = BeforeHeaders {
        fut,
        timer: None,
        start,
        request_at,
        idle,
        rx,
    };
    let first = match (request_at, waiting.idle_at()) {
        (Some(r), Some(i)) => Some(r.min(i)),
        (Some(d), None) | (None, Some(d)) => Some(d),
        (None, None) => None,
    };
    waiting.timer = first.map(tokio::time::sleep_until);
    waiting
}

pin_project_lite::pin_project! {
    /// See [`before_headers`].
    pub(crate) struct BeforeHeaders<'a, F> {
        #[pin]
        fut: F,
        // `None`: no deadline (left).
        #[pin]
        timer: Option<Sleep>,
        start: Instant,
        request_at: Option<Instant>,
        idle: Option<Duration>,
        rx: Option<&'a RxWatch>,
    }
}

impl<F> BeforeHeaders<'_, F> {
    /// The stream idle deadline as it stands (a request body frame moves it).
    fn idle_at(&self) -> Option<Instant> {
        let last = self.rx.map_or(self.start, |w| w.last().max(self.start));
        self.idle.and_then(|d| after(last, d))
    }
}

impl<F: Future> Future for BeforeHeaders<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.as_mut().project().fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        loop {
            let this = self.as_mut().project();
            let Some(timer) = this.timer.as_pin_mut() else {
                return Poll::Pending;
            };
            if timer.poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let request_at = *this.request_at;
            if request_at.is_some_and(|r| now >= r) {
                return Poll::Ready(Err(Expired::Request));
            }
            // The timer was set for the idle deadline as it stood; a request body frame may
            // have moved it since.
            let next = match self.idle_at() {
                Some(i) if now >= i => return Poll::Ready(Err(Expired::StreamIdle)),
                Some(i) => Some(request_at.map_or(i, |r| r.min(i))),
                None => request_at,
            };
            let mut timer = self.as_mut().project().timer;
            match (next, timer.as_mut().as_pin_mut()) {
                (Some(at), Some(t)) => t.reset(at),
                _ => timer.set(None),
            }
            // Polled again below: a reset timer registers the waker on its next poll.
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream response body under the stream's timers: ends with
    /// [`BodyError::StreamIdle`] once no frame went either way for the idle timeout, and
    /// with [`BodyError::MaxStreamDuration`] at the attempt's maximum duration.
    pub(crate) struct TimedBody<B> {
        body: B,
        idle: Option<Duration>,
        max_at: Option<Instant>,
        // The response headers, then the last response frame.
        last_tx: Instant,
        rx: Option<Arc<RxWatch>>,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<B> TimedBody<B> {
    /// `max_at`: when the attempt's maximum stream duration ends; `rx`: the request body's
    /// watch, if it has one.
    pub fn new(
        body: B,
        idle: Option<Duration>,
        max_at: Option<Instant>,
        rx: Option<Arc<RxWatch>>,
    ) -> TimedBody<B> {
        TimedBody {
            body,
            idle,
            max_at,
            last_tx: Instant::now(),
            rx,
            timer: None,
        }
    }
}

impl TimedBody<PooledBody> {
    pub fn hold(&mut self, request: Held) {
        self.body.hold(request);
    }

    /// See [`PooledBody::hold_active`](crate::pool::PooledBody::hold_active).
    pub fn hold_active(&mut self, active: crate::lb::Active) {
        self.body.hold_active(active);
    }
}

/// The idle deadline: the idle timeout after the last frame either way.
fn idle_deadline(
    idle: Option<Duration>,
    last_tx: Instant,
    rx: Option<&Arc<RxWatch>>,
) -> Option<Instant> {
    let last = rx.map_or(last_tx, |w| w.last().max(last_tx));
    idle.and_then(|d| after(last, d))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        match Pin::new(&mut *this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.idle.is_some() || this.max_at.is_some() {
                    let now = Instant::now();
                    // A body that is always ready never waits on the timer: its maximum
                    // duration is checked frame by frame.
                    if this.max_at.is_some_and(|m| now >= m) {
                        return Poll::Ready(Some(Err(BodyError::MaxStreamDuration)));
                    }
                    *this.last_tx = now;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(BodyError::Upstream(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        // Waiting on the upstream: the timer runs (created at the first wait).
        if this.timer.is_none() {
            let first = earliest(
                *this.max_at,
                idle_deadline(*this.idle, *this.last_tx, this.rx.as_ref()),
            );
            let Some(first) = first else {
                return Poll::Pending;
            };
            this.timer.set(Some(tokio::time::sleep_until(first)));
        }
        let Some(mut timer) = this.timer.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if this.max_at.is_some_and(|m| now >= m) {
                return Poll::Ready(Some(Err(BodyError::MaxStreamDuration)));
            }
            let idle_at = idle_deadline(*this.idle, *this.last_tx, this.rx.as_ref());
            if idle_at.is_some_and(|i| now >= i) {
                return Poll::Ready(Some(Err(BodyError::StreamIdle)));
            }
            // Frames moved the idle deadline since the timer was set: sleep until the new one.
            let Some(next) = earliest(*this.max_at, idle_at) else {
                return Poll::Pending;
            };
            timer.as_mut().reset(next);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    const MS: Duration = Duration::from_millis(1);

    /// An upstream body fed frame by frame through a channel; ends when the sender goes.
    struct Fed(mpsc::UnboundedReceiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    fn fed() -> (mpsc::UnboundedSender<Bytes>, Fed) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Fed(rx))
    }

    /// Sends a frame every `every` until `count` were sent, then ends the body.
    fn trickle(tx: mpsc::UnboundedSender<Bytes>, count: usize, every: Duration) {
        tokio::spawn(async move {
            for _ in 0..count {
                tokio::time::sleep(every).await;
                if tx.send(Bytes::from_static(b"chunk")).is_err() {
                    return;
                }
            }
        });
    }

    /// Reads `body` to its end or its error: the frames read, and the error.
    async fn drain<B>(body: B) -> (usize, Option<String>)
    where
        B: Body<Data = Bytes, Error = BodyError>,
    {
        let mut body = std::pin::pin!(body);
        let mut frames = 0;
        loop {
            match body.frame().await {
                None => return (frames, None),
                Some(Ok(_)) => frames += 1,
                Some(Err(e)) => return (frames, Some(e.to_string())),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_that_stalls_is_reset_at_the_idle_timeout_after_its_last_frame() {
        let (tx, body) = fed();
        let start = Instant::now();
        trickle(tx.clone(), 3, 100 * MS);
        let body = TimedBody::new(body, Some(300 * MS), None, None);
        let (frames, err) = drain(body).await;
        assert_eq!((frames, err.as_deref()), (3, Some("stream timeout")));
        // The last frame came at 300 ms: idle from there.
        assert_eq!(start.elapsed(), 600 * MS);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn frames_keep_a_slow_response_alive_under_the_idle_timeout() {
        let (tx, body) = fed();
        let start = Instant::now();
        // 20 frames, 200 ms apart (4 s in all), under a 300 ms idle timeout.
        trickle(tx, 20, 200 * MS);
        let (frames, err) = drain(TimedBody::new(body, Some(300 * MS), None, None)).await;
        assert_eq!((frames, err), (20, None));
        assert_eq!(start.elapsed(), 4000 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn request_body_frames_count_as_activity_for_the_response() {
        let (tx, body) = fed();
        let start = Instant::now();
        let rx = Arc::new(RxWatch::new(start));
        // The request body keeps arriving (a frame every 200 ms for 1 s) while the response
        // waits: idle only 300 ms after the last request frame.
        let watch = rx.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(200 * MS).await;
                watch.touch();
            }
        });
        let (frames, err) = drain(TimedBody::new(body, Some(300 * MS), None, Some(rx))).await;
        assert_eq!((frames, err.as_deref()), (0, Some("stream timeout")));
        assert_eq!(start.elapsed(), 1300 * MS);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn the_maximum_duration_ends_a_stream_while_bytes_flow() {
        let (tx, body) = fed();
        let start = Instant::now();
        trickle(tx, 100, 100 * MS);
        let body = TimedBody::new(body, Some(300 * MS), Some(start + 550 * MS), None);
        let (frames, err) = drain(body).await;
        assert_eq!(
            (frames, err.as_deref()),
            (5, Some("upstream max stream duration reached"))
        );
        assert_eq!(start.elapsed(), 550 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_waits_is_still_cut_at_the_maximum_duration() {
        let (tx, body) = fed();
        let start = Instant::now();
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"ready")).unwrap();
        }
        let mut body = std::pin::pin!(TimedBody::new(body, None, Some(start + 500 * MS), None));
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::advance(500 * MS).await;
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::MaxStreamDuration), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timer_a_stalled_body_just_waits() {
        let (tx, body) = fed();
        let body = TimedBody::new(body, None, None, None);
        let waited = tokio::time::timeout(Duration::from_secs(3600), drain(body)).await;
        assert!(waited.is_err(), "{waited:?}");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_headers_the_first_deadline_wins() {
        let start = Instant::now();
        let hung = std::future::pending::<()>;
        // The request timeout before the stream idle timeout...
        let r = before_headers(hung(), start, Some(1000 * MS), Some(2000 * MS), None).await;
        assert_eq!((r, start.elapsed()), (Err(Expired::Request), 1000 * MS));
        // ...the idle timeout before the request timeout, or with none (`requestTimeout: 0s`).
        let start = Instant::now();
        let r = before_headers(hung(), start, Some(15_000 * MS), Some(300 * MS), None).await;
        assert_eq!((r, start.elapsed()), (Err(Expired::StreamIdle), 300 * MS));
        let start = Instant::now();
        let r = before_headers(hung(), start, None, Some(300 * MS), None).await;
        assert_eq!((r, start.elapsed()), (Err(Expired::StreamIdle), 300 * MS));
        // An answer in time passes.
        let start = Instant::now();
        let quick = async {
            tokio::time::sleep(200 * MS).await;
            7
        };
        let r = before_headers(quick, start, Some(1000 * MS), Some(300 * MS), None).await;
        assert_eq!(r, Ok(7));
        // No timer at all: whatever it takes.
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            8
        };
        assert_eq!(
            before_headers(slow, Instant::now(), None, None, None).await,
            Ok(8)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_headers_request_body_frames_defer_the_idle_timeout() {
        let start = Instant::now();
        let rx = Arc::new(RxWatch::new(start));
        let watch = rx.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(200 * MS).await;
                watch.touch();
            }
        });
        let r = before_headers(
            std::future::pending::<()>(),
            start,
            None,
            Some(300 * MS),
            Some(&rx),
        )
        .await;
        // Frames at 200, 400 and 600 ms: idle at 900 ms, the request still arriving.
        assert_eq!((r, start.elapsed()), (Err(Expired::StreamIdle), 900 * MS));
        assert!(!request_done(Some(&rx)));
        assert_eq!(
            timeout_status(request_done(Some(&rx))),
            StatusCode::REQUEST_TIMEOUT
        );
        rx.done.store(true, Ordering::Relaxed);
        assert_eq!(
            timeout_status(request_done(Some(&rx))),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            timeout_status(request_done(None)),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn stream_limits_follow_kumas_placement() {
        let t = Timeouts {
            stream_idle_ms: 300,
            max_stream_ms: 500,
            ..Timeouts::default()
        };
        for (protocol, max) in [
            (Protocol::Http, Some(500 * MS)),
            (Protocol::Http2, Some(500 * MS)),
            // Kuma's cluster configurer skips gRPC clusters.
            (Protocol::Grpc, None),
        ] {
            let l = StreamLimits::of(&t, protocol);
            assert_eq!((l.idle, l.max), (Some(300 * MS), max), "{protocol:?}");
        }
        // Kuma's defaults: a 30 min stream idle timeout, no maximum duration.
        let l = StreamLimits::of(&Timeouts::default(), Protocol::Http);
        assert_eq!(l.idle, Some(Duration::from_secs(1800)));
        assert_eq!(l.max, None);
        let off = Timeouts {
            stream_idle_ms: 0,
            ..Timeouts::default()
        };
        assert!(!StreamLimits::of(&off, Protocol::Http).any());
    }
}
