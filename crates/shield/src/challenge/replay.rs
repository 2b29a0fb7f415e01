//! A bounded set of the proof-of-work nonces already redeemed, each kept until its challenge
//! expires (after that the challenge itself no longer verifies, so forgetting it is safe).

use std::collections::{BTreeSet, HashMap};

/// A nonce of a proof-of-work challenge.
pub type Nonce = [u8; 16];

/// Nonces seen, with their expiry (Unix seconds).
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    expiry_of: HashMap<Nonce, u64, foldhash::fast::RandomState>,
    by_expiry: BTreeSet<(u64, Nonce)>,
}

impl ReplayCache {
    /// A cache holding at most `capacity` nonces (about 100 bytes each).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache { capacity: capacity.max(1), expiry_of: HashMap::default(), by_expiry: BTreeSet::new() }
    }

    /// Record `nonce` (valid until `expiry`) at `now`: `false` when it was already redeemed.
    ///
    /// When full of unexpired nonces, the one expiring first is forgotten: replaying it then
    /// needs `capacity` fresh proofs solved in between, which costs more than solving it anew.
    pub fn redeem(&mut self, nonce: Nonce, expiry: u64, now: u64) -> bool {
        while let Some(&(first, old)) = self.by_expiry.first() {
            if first > now && self.by_expiry.len() < self.capacity {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_of.remove(&old);
        }
        if self.expiry_of.contains_key(&nonce) {
            return false;
        }
        self.expiry_of.insert(nonce, expiry);
        self.by_expiry.insert((expiry, nonce));
        true
    }

    /// Nonces held now.
    pub fn len(&self) -> usize {
        self.expiry_of.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.expiry_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_nonce_redeems_once_until_it_expires() {
        let mut cache = ReplayCache::new(10);
        assert!(cache.redeem([1; 16], 100, 0));
        assert!(!cache.redeem([1; 16], 100, 50));
        assert!(cache.redeem([2; 16], 100, 50));
        // Past its expiry it is forgotten (its challenge no longer verifies anyway).
        assert!(cache.redeem([1; 16], 300, 150));
        assert_eq!(cache.len(), 1);
    }

    proptest! {
        #[test]
        fn bounded_and_consistent(ops in proptest::collection::vec((0u8..50, 0u64..1000, 0u64..100), 0..500)) {
            let mut cache = ReplayCache::new(16);
            let mut now = 0;
            for (id, life, step) in ops {
                now += step;
                cache.redeem([id; 16], now + life, now);
                prop_assert!(cache.len() <= 16);
                prop_assert_eq!(cache.len(), cache.by_expiry.len());
            }
        }
    }
}
