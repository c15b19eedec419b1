//! A fast, allocation-free pseudo-random source for the request path (retry back-off
//! jitter, fault-injection draws): one xorshift64 state per thread, seeded from the
//! standard library's random hasher keys. Not for anything secret.

use std::cell::Cell;

/// xorshift64: a few shifts per draw. The state is never 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (`n > 0`; 0 reads as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True for `per_million` draws out of a million (Envoy's `FractionalPercent`).
    pub fn chance(&mut self, per_million: u32) -> bool {
        const MILLION: u32 = 1_000_000;
        per_million >= MILLION
            || (per_million > 0 && self.below(u64::from(MILLION)) < u64::from(per_million))
    }
}

thread_local! {
    static STATE: Cell<XorShift> = Cell::new(XorShift::new({
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        h.finish()
    }));
}

fn with<T>(f: impl FnOnce(&mut XorShift) -> T) -> T {
    STATE.with(|s| {
        let mut r = s.get();
        let out = f(&mut r);
        s.set(r);
        out
    })
}

/// A uniformly distributed number below `n` (`n > 0`).
pub(crate) fn random_below(n: u64) -> u64 {
    with(|r| r.below(n))
}

/// True for `per_million` requests out of a million.
pub(crate) fn chance(per_million: u32) -> bool {
    with(|r| r.chance(per_million))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_draws_the_configured_share() {
        let mut r = XorShift::new(42);
        let n = 200_000;
        for (ppm, lo, hi) in [
            (500_000u32, 0.49, 0.51),
            (125_000, 0.12, 0.13),
            (1_000, 0.0007, 0.0013),
        ] {
            let hits = (0..n).filter(|_| r.chance(ppm)).count();
            let share = hits as f64 / f64::from(n);
            assert!((lo..=hi).contains(&share), "{ppm} ppm drew {share}");
        }
        assert!((0..10_000).all(|_| r.chance(1_000_000)));
        assert!((0..10_000).all(|_| !r.chance(0)));
        assert!(
            (0..10_000).all(|_| r.chance(2_000_000)),
            "above 100 % is 100 %"
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_sequence() {
        let (mut a, mut b) = (XorShift::new(7), XorShift::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert!((0..1000).all(|_| random_below(10) < 10));
    }
}
