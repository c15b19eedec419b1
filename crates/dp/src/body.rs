//! The response body the proxy serves: either a small local answer (403, 503, ...) or the
//! upstream's streamed body, bare or under the stream's MeshTimeout timers
//! ([`crate::stream::TimedBody`]). An enum rather than a boxed trait object: no allocation
//! per request, and frames (including gRPC trailers) pass through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::{Body, Frame, SizeHint};

use crate::breaker::Held;
use crate::fault::Throttled;
use crate::pool::PooledBody;
use crate::stream::TimedBody;

pin_project_lite::pin_project! {
    #[project = ProxyBodyProj]
    pub(crate) enum ProxyBody {
        Local { data: Option<Bytes> },
        Upstream { body: PooledBody },
        Timed { #[pin] body: TimedBody<PooledBody> },
        /// A body slowed down by MeshFaultInjection's `responseBandwidth` (boxed: rare).
        Throttled { body: Box<Throttled> },
        /// A response under MeshAccessLog or MeshTrace (boxed: only logged and traced
        /// requests pay for it).
        Logged { body: Pin<Box<Logged>> },
    }
}

pin_project_lite::pin_project! {
    /// Counts the bytes of a logged response and queues its line (and ends its span) once
    /// the body ended or was dropped.
    pub(crate) struct Logged {
        #[pin]
        inner: ProxyBody,
        sent: u64,
        pending: Option<crate::accesslog::Pending>,
        span: Option<Box<crate::meshtrace::Span>>,
    }

    impl PinnedDrop for Logged {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let complete = this.inner.is_end_stream();
            if let Some(p) = this.pending.take() {
                p.finish(*this.sent, None, complete);
            }
            if let Some(s) = this.span.take() {
                s.finish(complete);
            }
        }
    }
}

/// Notes the response head on the request's access-log entry and span, whichever it has,
/// with the upstream and Envoy's response flags `accesslog::track` gathered.
pub(crate) fn note_response(
    pending: Option<&mut crate::accesslog::Pending>,
    span: Option<&mut crate::meshtrace::Span>,
    resp: &Response<ProxyBody>,
    upstream: Option<std::net::SocketAddr>,
    flags: u16,
) {
    // Nothing observed (most requests): nothing to read.
    if pending.is_none() && span.is_none() {
        return;
    }
    let status = resp.status().as_u16();
    if let Some(p) = pending {
        p.respond(resp.headers(), status, upstream, flags);
    }
    if let Some(s) = span {
        s.respond(Some(status), flags, upstream);
    }
}

impl ProxyBody {
    /// This response, logged (`pending`) and its span ended (`span`) once it ends.
    pub fn observed(
        self,
        pending: Option<crate::accesslog::Pending>,
        span: Option<Box<crate::meshtrace::Span>>,
    ) -> ProxyBody {
        if pending.is_none() && span.is_none() {
            return self;
        }
        ProxyBody::Logged {
            body: Box::pin(Logged {
                inner: self,
                sent: 0,
                pending,
                span,
            }),
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        let res = this.inner.as_mut().poll_frame(cx);
        let ended = match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    *this.sent += d.len() as u64;
                }
                this.inner.is_end_stream().then_some(true)
            }
            Poll::Ready(None) => Some(true),
            Poll::Ready(Some(Err(_))) => Some(false),
            Poll::Pending => None,
        };
        if let Some(complete) = ended {
            if let Some(p) = this.pending.take() {
                p.finish(*this.sent, None, complete);
            }
            if let Some(s) = this.span.take() {
                s.finish(complete);
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a response body stopped before its end. After the response headers, hyper answers
/// an error by resetting the stream (HTTP/2) or closing the connection (HTTP/1), as Envoy
/// resets a stream whose response already started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    /// MeshTimeout `http.streamIdleTimeout`: nothing either way for that long.
    #[error("stream timeout")]
    StreamIdle,
    /// MeshTimeout `http.maxStreamDuration`: the upstream stream is that old.
    #[error("upstream max stream duration reached")]
    MaxStreamDuration,
}

impl BodyError {
    /// The listener error counter this error goes to (`None`: counted where it arose).
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            BodyError::Upstream(_) => None,
            BodyError::StreamIdle => Some("stream_idle_timeout"),
            BodyError::MaxStreamDuration => Some("upstream_max_stream_duration"),
        }
    }
}

impl ProxyBody {
    /// Keeps the request counted in its cluster's `maxRequests` until this body is dropped
    /// (a local answer holds nothing).
    pub fn hold(&mut self, request: Held) {
        match self {
            ProxyBody::Local { .. } => {}
            ProxyBody::Upstream { body } => body.hold(request),
            ProxyBody::Timed { body } => body.hold(request),
            // Throttling and logging wrap an answer on its way out, after its request was
            // held.
            ProxyBody::Throttled { .. } | ProxyBody::Logged { .. } => drop(request),
        }
    }
}

impl ProxyBody {
    /// Keeps the request counted in flight to its endpoint (least request) until this body
    /// is dropped (a local answer holds nothing).
    pub fn hold_active(&mut self, active: crate::lb::Active) {
        match self {
            ProxyBody::Upstream { body } => body.hold_active(active),
            ProxyBody::Timed { body } => body.hold_active(active),
            ProxyBody::Local { .. } | ProxyBody::Throttled { .. } | ProxyBody::Logged { .. } => {
                drop(active)
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ProxyBodyProj::Local { data } => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            ProxyBodyProj::Upstream { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::Upstream))),
            ProxyBodyProj::Timed { body } => body.poll_frame(cx),
            ProxyBodyProj::Throttled { body } => Pin::new(&mut **body).poll_frame(cx),
            ProxyBodyProj::Logged { body } => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local { data } => data.is_none(),
            ProxyBody::Upstream { body } => body.is_end_stream(),
            ProxyBody::Timed { body } => body.is_end_stream(),
            ProxyBody::Throttled { body } => body.is_end_stream(),
            ProxyBody::Logged { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Upstream { body } => body.size_hint(),
            ProxyBody::Timed { body } => body.size_hint(),
            ProxyBody::Throttled { body } => body.size_hint(),
            ProxyBody::Logged { body } => body.size_hint(),
        }
    }
}

/// A plain-text response generated by the proxy itself.
pub(crate) fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::Local {
        data: Some(Bytes::from_static(text.as_bytes())),
    });
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Envoy's RBAC denial, byte for byte (clients and tests match on it).
pub(crate) fn rbac_denied() -> Response<ProxyBody> {
    local_response(StatusCode::FORBIDDEN, "RBAC: access denied")
}
