//! Thread-per-core serving: the proxy's connections run on a fixed set of worker threads,
//! each with its own single-threaded Tokio runtime.
//!
//! A connection is handed to one worker when it is accepted and stays there: its TLS
//! session, its HTTP codec, the upstream connection it borrows from the pool (pools keep one
//! idle stack per worker, see [`slot`]) and that upstream's connection task all live on the
//! same thread. A request therefore never wakes another thread, which is what a
//! work-stealing runtime does whenever the downstream and upstream halves of an exchange
//! land on different workers (measured with `bench/dataplane.sh`; see bench/README.md).
//!
//! Connections are dealt round-robin, so a handful of long-lived keep-alive connections
//! still spread evenly (SO_REUSEPORT's hashing does not promise that).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker this thread is, `usize::MAX` on any other thread.
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The slot, among `slots`, for per-worker state used from the calling thread: the
/// worker's index, or the last slot for any other thread (a caller outside the workers,
/// such as a test driving the proxy from its own runtime).
pub(crate) fn slot(slots: usize) -> usize {
    let last = slots.saturating_sub(1);
    INDEX.get().min(last)
}

/// The worker threads. Dropping this stops them; their runtimes drop every task still
/// running, which closes the connections those tasks hold.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> io::Result<Workers> {
        let count = count.max(1);
        let mut handles = Vec::with_capacity(count);
        let mut stop = Vec::with_capacity(count);
        for index in 0..count {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = oneshot::channel::<()>();
            handles.push(rt.handle().clone());
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("kuma-dp-worker-{index}"))
                .spawn(move || {
                    INDEX.set(index);
                    // Runs the worker's tasks until the proxy is dropped.
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    /// How many workers there are; per-worker state has one more slot (see [`slot`]).
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs a connection's task on the next worker, round-robin.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn tasks_are_dealt_round_robin_and_see_their_worker_slot() {
        let workers = Workers::start(3).unwrap();
        assert_eq!(workers.count(), 3);
        let (tx, rx) = mpsc::channel();
        for _ in 0..6 {
            let tx = tx.clone();
            workers.spawn(async move {
                tx.send((slot(4), std::thread::current().name().map(str::to_owned)))
                    .unwrap();
            });
        }
        let mut seen: Vec<(usize, Option<String>)> = (0..6)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort();
        let slots: Vec<usize> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, [0, 0, 1, 1, 2, 2]);
        for (s, name) in seen {
            assert_eq!(name, Some(format!("kuma-dp-worker-{s}")));
        }
        // Any other thread gets the last slot.
        assert_eq!(slot(4), 3);
        assert_eq!(slot(1), 0);
    }

    #[test]
    fn dropping_the_workers_stops_their_tasks() {
        let workers = Workers::start(1).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        workers.spawn(async move {
            let _tx = tx; // dropped when the task is
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
