//! Graceful shutdown: stop accepting, let in-flight work finish, then force-close.
//!
//! One `watch` channel carries the [`Phase`]; listeners stop accepting on `Draining`, HTTP
//! connections start a graceful shutdown (HTTP/1 closes after the current response, HTTP/2
//! sends GOAWAY), TCP connections keep copying, and everything still open is dropped on
//! `Closed`. Every connection holds a [`ConnGuard`] so [`Drain::wait_idle`] knows when the last
//! one has finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// No new connections; in-flight requests finish.
    Draining,
    /// The drain timeout passed: close whatever is left.
    Closed,
}

pub(crate) struct Drain {
    phase: watch::Sender<Phase>,
    counter: Arc<Counter>,
}

struct Counter {
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a connection task for its lifetime.
pub(crate) struct ConnGuard(Arc<Counter>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            phase: watch::Sender::new(Phase::Running),
            counter: Arc::new(Counter {
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    pub fn set(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let changed = *p < phase;
            if changed {
                *p = phase;
            }
            changed
        });
    }

    pub fn track(&self) -> ConnGuard {
        self.counter.active.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.counter.clone())
    }

    pub fn active(&self) -> usize {
        self.counter.active.load(Ordering::Acquire)
    }

    /// Resolves once no connection is tracked.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.counter.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Resolves when the phase reaches `at_least` (or the proxy is gone).
pub(crate) async fn reached(rx: &mut watch::Receiver<Phase>, at_least: Phase) {
    let _ = rx.wait_for(|p| *p >= at_least).await;
}
