//! Seeded randomness with integer-only helpers.
//!
//! Only ChaCha output and integer arithmetic are used (no `ln`/`exp`), so a capture is a pure
//! function of the seed on every platform.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One independent random stream per traffic source, so adding a source never perturbs another.
#[derive(Debug, Clone)]
pub(crate) struct Rand(ChaCha8Rng);

impl Rand {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> u16 {
        (self.0.next_u32() >> 16) as u16
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 and irrelevant here).
    #[inline]
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.u32()) * u64::from(n)) >> 32) as u32
    }

    /// Uniform in `0..n` for 64-bit bounds.
    #[inline]
    pub(crate) fn below_u64(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (callers guarantee `lo <= hi`).
    #[inline]
    pub(crate) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + ((u64::from(self.u32()) * span) >> 32) as u32
    }

    /// True with probability `percent`/100.
    #[inline]
    pub(crate) fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }

    /// An inter-packet gap with mean `interval`: uniform in `[interval/2, 3*interval/2)`.
    #[inline]
    pub(crate) fn jitter(&mut self, interval: u64) -> u64 {
        (interval / 2 + self.below_u64(interval)).max(1)
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: Vec<u32> = (0..8)
            .map({
                let mut r = Rand::new(7, 1);
                move |_| r.u32()
            })
            .collect();
        let b: Vec<u32> = (0..8)
            .map({
                let mut r = Rand::new(7, 1);
                move |_| r.u32()
            })
            .collect();
        let c: Vec<u32> = (0..8)
            .map({
                let mut r = Rand::new(7, 2);
                move |_| r.u32()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rand::new(1, 0);
        for _ in 0..10_000 {
            let v = r.range(10, 20);
            assert!((10..=20).contains(&v));
            assert!(r.below(3) < 3);
            let j = r.jitter(100);
            assert!((50..150).contains(&j));
        }
        assert_eq!(r.range(5, 5), 5);
        let full = r.range(0, u32::MAX);
        let _ = full;
        assert_eq!(r.jitter(0), 1);
    }
}
