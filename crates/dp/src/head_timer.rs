//! MeshTimeout `http.requestHeadersTimeout` (Envoy's HCM `request_headers_timeout`) on a
//! downstream HTTP/1 connection: from the first byte of a request head to the request
//! reaching the service. When it passes, the client gets `408 request header timeout` and
//! the connection is closed.
//!
//! hyper's own `header_read_timeout` cannot do this: it runs whenever hyper waits for a head,
//! so it would also close every keep-alive connection idle for that long (which is
//! `idleTimeout`'s business), and it closes without an answer. This wrapper of the
//! connection's read side starts the timer at the first byte read between requests and
//! stops it when the connection's service sees the request (the head was complete).
//! HTTP/2 connections (recognised by their preface) are left alone: their heads arrive as
//! frames that hyper reads whole.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::listener::HttpConn;

/// Envoy's local reply, for a connection that is closed right after it.
const REPLY: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 22\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nrequest header timeout";

/// What an HTTP/2 client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// This many bytes of the HTTP/2 preface were read, nothing else yet.
    Sniffing(usize),
    Http1,
    Http2,
}

/// A downstream connection under the request headers timeout (`timeout: None`: reads and
/// writes pass straight through).
pub(crate) struct HeadTimer<I> {
    io: I,
    conn: Arc<HttpConn>,
    timeout: Option<Duration>,
    proto: Proto,
    /// While the timer runs: the connection's request count when it started.
    armed: Option<u64>,
    /// Boxed (the wrapper must stay `Unpin`), created at the first head and reused.
    timer: Option<Pin<Box<Sleep>>>,
    /// Once the timer fired: how much of [`REPLY`] was written.
    replied: Option<usize>,
}

impl<I> HeadTimer<I> {
    pub fn new(io: I, conn: Arc<HttpConn>, timeout: Option<Duration>) -> HeadTimer<I> {
        HeadTimer {
            io,
            conn,
            timeout,
            proto: Proto::Sniffing(0),
            armed: None,
            timer: None,
            replied: None,
        }
    }

    fn sniff(&mut self, read: &[u8]) {
        let Proto::Sniffing(mut matched) = self.proto else {
            return;
        };
        for b in read {
            if H2_PREFACE.get(matched) != Some(b) {
                self.proto = Proto::Http1;
                return;
            }
            matched += 1;
            if matched == H2_PREFACE.len() {
                self.proto = Proto::Http2;
                self.armed = None;
                return;
            }
        }
        self.proto = Proto::Sniffing(matched);
    }

    /// Bytes arrived: stops the timer if a request started since it was armed, starts it
    /// if the connection is between requests.
    fn on_bytes(&mut self, timeout: Duration) {
        let activity = &self.conn.activity;
        let seen = activity.seen.load(Ordering::Relaxed);
        if self.armed.is_some_and(|at| at != seen) {
            self.armed = None;
        }
        if self.armed.is_some()
            || activity.in_flight.load(Ordering::Relaxed) > 0
            || self.conn.abandoned_at.load(Ordering::Relaxed) == seen.wrapping_add(1)
        {
            return;
        }
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return;
        };
        match &mut self.timer {
            Some(t) => t.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = Some(seen);
    }
}

impl<I: AsyncWrite + Unpin> HeadTimer<I> {
    /// Writes the `408`, shuts the write side down, then fails the read: hyper ends the
    /// connection.
    fn poll_reply(&mut self, cx: &mut Context<'_>, written: usize) -> Poll<io::Result<()>> {
        let mut written = written;
        while let Some(rest) = REPLY.get(written..).filter(|r| !r.is_empty()) {
            match Pin::new(&mut self.io).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => {
                    written += n;
                    self.replied = Some(written);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request header timeout",
        )))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadTimer<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(timeout) = this.timeout.filter(|_| this.proto != Proto::Http2) else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if let Some(written) = this.replied {
            return this.poll_reply(cx, written);
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        match res {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(before..).unwrap_or_default();
                if !read.is_empty() {
                    this.sniff(read);
                    if this.proto != Proto::Http2 {
                        this.on_bytes(timeout);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some(at) = this.armed else {
                    return Poll::Pending;
                };
                if this.conn.activity.seen.load(Ordering::Relaxed) != at {
                    // The head was complete: its request reached the service.
                    this.armed = None;
                    return Poll::Pending;
                }
                let Some(timer) = this.timer.as_mut() else {
                    return Poll::Pending;
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.armed = None;
                this.replied = Some(0);
                this.conn.head_timed_out.store(true, Ordering::Relaxed);
                this.poll_reply(cx, 0)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadTimer<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replied.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replied.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const MS: Duration = Duration::from_millis(1);

    /// A client, and the proxy's side of its connection under a 300 ms headers timeout.
    fn connection() -> (DuplexStream, HeadTimer<DuplexStream>, Arc<HttpConn>) {
        let (client, server) = tokio::io::duplex(4096);
        let conn = HttpConn::for_test();
        let timer = HeadTimer::new(server, conn.clone(), Some(300 * MS));
        (client, timer, conn)
    }

    /// What hyper does while it waits for more of a head: reads, until `limit` passes.
    async fn read_for(
        io: &mut HeadTimer<DuplexStream>,
        limit: Duration,
    ) -> Option<io::Result<usize>> {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(limit, io.read(&mut buf)).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_stops_halfway_gets_408_and_the_connection_closes() {
        let (mut client, mut server, conn) = connection();
        let start = Instant::now();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(29))));
        tokio::time::advance(100 * MS).await;
        let res = read_for(&mut server, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::TimedOut);
        // From the first byte, not from the last.
        assert_eq!(start.elapsed(), 300 * MS);
        assert!(conn.head_timed_out.load(Ordering::Relaxed));
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, REPLY);
        assert!(
            String::from_utf8_lossy(REPLY).ends_with("\r\n\r\nrequest header timeout"),
            "content-length 22 is the body's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_left_alone() {
        let (mut client, mut server, conn) = connection();
        // A whole request: its head reaches the service (`seen`), which answers it.
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(_))));
        conn.activity.seen.fetch_add(1, Ordering::Relaxed);
        // Then nothing for an hour: no timer runs between requests.
        assert!(
            read_for(&mut server, Duration::from_secs(3600))
                .await
                .is_none()
        );
        assert!(!conn.head_timed_out.load(Ordering::Relaxed));
        // The next request's head starts the timer afresh.
        let start = Instant::now();
        client.write_all(b"GET / HT").await.unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(8))));
        let res = read_for(&mut server, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), 300 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_or_its_abandoned_body_is_not_a_head() {
        let (mut client, mut server, conn) = connection();
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 10\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(_))));
        // The service has the request; its body arrives slowly: not a head.
        conn.activity.seen.fetch_add(1, Ordering::Relaxed);
        conn.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        client.write_all(b"12345").await.unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(5))));
        assert!(
            read_for(&mut server, Duration::from_secs(10))
                .await
                .is_none()
        );
        // The body was dropped before its end and the response is done: what is read next
        // may be its rest, so no timer starts until the next request.
        conn.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        conn.abandoned_at.store(2, Ordering::Relaxed);
        client.write_all(b"678").await.unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(3))));
        assert!(
            read_for(&mut server, Duration::from_secs(10))
                .await
                .is_none()
        );
        assert!(!conn.head_timed_out.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_are_not_timed() {
        let (mut client, mut server, conn) = connection();
        client.write_all(H2_PREFACE).await.unwrap();
        client.write_all(b"\0\0\0\x04\0\0\0\0\0").await.unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(33))));
        assert_eq!(server.proto, Proto::Http2);
        assert!(
            read_for(&mut server, Duration::from_secs(10))
                .await
                .is_none()
        );
        assert!(!conn.head_timed_out.load(Ordering::Relaxed));
        // A preface read in pieces too; anything else is HTTP/1.
        let (_, mut server, _) = connection();
        server.sniff(b"PRI * HT");
        assert_eq!(server.proto, Proto::Sniffing(8));
        server.sniff(&H2_PREFACE[8..]);
        assert_eq!(server.proto, Proto::Http2);
        let (_, mut server, _) = connection();
        server.sniff(b"PRI * HTTP/1.1");
        assert_eq!(server.proto, Proto::Http1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_reads_pass_through() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut server = HeadTimer::new(server, HttpConn::for_test(), None);
        client.write_all(b"GET / HT").await.unwrap();
        assert!(matches!(read_for(&mut server, MS).await, Some(Ok(8))));
        assert!(
            read_for(&mut server, Duration::from_secs(3600))
                .await
                .is_none()
        );
        assert!(server.timer.is_none());
    }
}
