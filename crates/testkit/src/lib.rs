//! Test helpers shared by every suite of the workspace (a dev-dependency only): addresses and
//! ports that parallel tests do not fight over, and polling with a deadline instead of fixed
//! sleeps.

// Test support: a failed bind or a missed deadline is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A fresh loopback address per call (127.0.0.2 .. 127.0.0.249), so tests running in
/// parallel do not share an interface.
pub fn loopback_ip() -> String {
    static NEXT: AtomicU8 = AtomicU8::new(2);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("127.0.0.{}", 2 + (n as u32 * 7 + std::process::id()) % 248)
}

/// A port free on `ip` right now, below the kernel's ephemeral range (32768+): a port the
/// kernel hands out for `:0` could become the source port of some outgoing connection before
/// the process we give it to binds it. Each port is handed out once per test process, and
/// processes start at different offsets.
pub fn free_port(ip: &str) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 60) * 200;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (start + n) % 12_000;
        if TcpListener::bind((ip, port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port on {ip}")
}

/// `127.0.0.1` with a [`free_port`].
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")))
}

/// Polls `f` every 50 ms until it returns `Some`; fails the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The async [`wait_for`]: polls every 20 ms of tokio time (so it follows a paused clock).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_handed_out_once() {
        let a = free_port("127.0.0.1");
        let b = free_port("127.0.0.1");
        assert_ne!(a, b);
        assert!((20_000..32_000).contains(&a));
        let _held = TcpListener::bind(("127.0.0.1", a)).unwrap();
        assert_ne!(free_addr().port(), a);
    }

    #[test]
    fn loopback_addresses_are_loopback() {
        for _ in 0..300 {
            let ip: std::net::Ipv4Addr = loopback_ip().parse().unwrap();
            assert!(ip.is_loopback() && ip.octets()[3] >= 2, "{ip}");
        }
    }

    #[test]
    fn waiting_returns_the_value_or_fails_at_the_deadline() {
        let mut n = 0;
        assert_eq!(
            wait_for("three calls", Duration::from_secs(5), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            3
        );
        let missed = std::panic::catch_unwind(|| {
            wait_for("never", Duration::from_millis(120), || None::<()>)
        });
        assert!(missed.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_follows_tokio_time() {
        let start = tokio::time::Instant::now();
        let mut n = 0;
        let got = eventually("five polls", Duration::from_secs(60), || {
            n += 1;
            let v = (n == 5).then_some(n);
            async move { v }
        })
        .await;
        assert_eq!(got, 5);
        assert_eq!(start.elapsed(), Duration::from_millis(80));
    }
}
