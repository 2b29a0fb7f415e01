//! A bounded sample of a route's baseline traffic: reservoir sampling (Vitter's algorithm R)
//! whose stream length is capped at `16 x capacity`, so the sample keeps renewing itself and
//! describes the last stretch of normal traffic rather than all of history.
//!
//! The random numbers come from a seeded xorshift generator: pure and reproducible in tests.

use super::features::Features;

/// How much longer than the capacity the counted stream may grow (renewal rate).
const RENEWAL: u64 = 16;

/// The baseline sample of one route.
#[derive(Debug, Clone)]
pub struct Reservoir {
    samples: Vec<Features>,
    capacity: usize,
    seen: u64,
    state: u64,
}

impl Reservoir {
    /// An empty reservoir of `capacity` samples, its randomness seeded by `seed`.
    pub fn new(capacity: usize, seed: u64) -> Reservoir {
        Reservoir { samples: Vec::new(), capacity: capacity.max(1), seen: 0, state: seed | 1 }
    }

    /// A reservoir holding `samples` (restored from disk; extra ones dropped).
    pub fn restore(capacity: usize, seed: u64, mut samples: Vec<Features>) -> Reservoir {
        let mut reservoir = Reservoir::new(capacity, seed);
        samples.truncate(reservoir.capacity);
        reservoir.seen = samples.len() as u64;
        reservoir.samples = samples;
        reservoir
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// Offer one request's features.
    pub fn offer(&mut self, features: Features) {
        self.seen = (self.seen + 1).min(self.capacity as u64 * RENEWAL);
        if self.samples.len() < self.capacity {
            self.samples.push(features);
            return;
        }
        let pick = self.next() % self.seen;
        if let Some(slot) = self.samples.get_mut(pick as usize) {
            *slot = features;
        }
    }

    /// The samples.
    pub fn samples(&self) -> &[Features] {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: u64) -> Features {
        Features { values: [v; super::super::features::Attr::COUNT] }
    }

    #[test]
    fn bounded_and_renewing() {
        let mut r = Reservoir::new(100, 7);
        for i in 0..10_000 {
            r.offer(f(1 + i % 3));
        }
        assert_eq!(r.samples().len(), 100);
        // After a long stretch of new traffic, most of the sample is new.
        for _ in 0..20_000 {
            r.offer(f(99));
        }
        let new = r.samples().iter().filter(|s| s.values[0] == 99).count();
        assert!(new > 90, "{new}");
        let restored = Reservoir::restore(10, 1, r.samples().to_vec());
        assert_eq!(restored.samples().len(), 10);
    }
}
