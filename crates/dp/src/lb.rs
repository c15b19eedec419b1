//! Round-robin endpoint selection with skip-on-failure.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A lock-free round-robin cursor. `order(n)` yields every index once, starting at the next
/// position, so a caller can fall through to the following endpoints when one refuses.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin(AtomicUsize);

impl RoundRobin {
    pub fn order(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = if n == 0 {
            0
        } else {
            self.0.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| (start + i) % n)
    }

    /// `count` indices from the next position, going round as often as needed.
    pub fn cycle(&self, n: usize, count: usize) -> impl Iterator<Item = usize> {
        let start = if n == 0 {
            0
        } else {
            self.0.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..if n == 0 { 0 } else { count }).map(move |i| (start + i) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_covers_all() {
        let rr = RoundRobin::default();
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rr.order(0).count(), 0);
        assert_eq!(rr.cycle(2, 5).collect::<Vec<_>>(), [1, 0, 1, 0, 1]);
        assert_eq!(rr.cycle(0, 5).count(), 0);
    }
}
