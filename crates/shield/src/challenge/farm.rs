//! Who is farming the cookie check: cookie-check clearances per client prefix in a fixed
//! window. A bot that keeps cookies passes the check for free; one prefix earning many
//! clearances (or more prefixes than the table holds) moves to the proof of work.

use std::collections::HashMap;

use super::token::Prefix;

/// Counts per prefix in the current window; pure (takes `now`, Unix seconds).
#[derive(Debug)]
pub struct FarmCounter {
    limit: u32,
    window: u64,
    capacity: usize,
    window_start: u64,
    counts: HashMap<Prefix, u32, foldhash::fast::RandomState>,
}

impl FarmCounter {
    /// `limit` clearances per prefix per `window` seconds, at most `capacity` prefixes.
    pub fn new(limit: u32, window: u64, capacity: usize) -> FarmCounter {
        FarmCounter {
            limit,
            window: window.max(1),
            capacity: capacity.max(1),
            window_start: 0,
            counts: HashMap::default(),
        }
    }

    fn roll(&mut self, now: u64) {
        if now >= self.window_start.saturating_add(self.window) || now < self.window_start {
            self.window_start = now;
            self.counts.clear();
        }
    }

    /// Count one cookie-check clearance for `prefix`.
    pub fn note(&mut self, prefix: Prefix, now: u64) {
        self.roll(now);
        if self.counts.len() < self.capacity || self.counts.contains_key(&prefix) {
            let count = self.counts.entry(prefix).or_insert(0);
            *count = count.saturating_add(1);
        }
    }

    /// Whether `prefix` should get the proof of work instead.
    pub fn farmed(&mut self, prefix: Prefix, now: u64) -> bool {
        self.roll(now);
        match self.counts.get(&prefix) {
            Some(count) => *count >= self.limit,
            None => self.counts.len() >= self.capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_farmed_prefix_moves_to_work_until_the_window_ends() {
        let mut farm = FarmCounter::new(3, 600, 2);
        let (a, b, c) = ([1u8; 18], [2u8; 18], [3u8; 18]);
        for _ in 0..3 {
            assert!(!farm.farmed(a, 10));
            farm.note(a, 10);
        }
        assert!(farm.farmed(a, 11));
        assert!(!farm.farmed(b, 11));
        farm.note(b, 12);
        assert!(farm.farmed(c, 12), "a full table counts as farmed");
        assert!(!farm.farmed(a, 700), "a new window forgets");
    }
}
