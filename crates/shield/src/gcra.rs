//! Rate limiting by GCRA (the generic cell rate algorithm) with exact per-key state in a table
//! of fixed size. Pure: every call takes `now` (nanoseconds on any monotonic clock).
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT). A request at `now` is
//! allowed when `TAT - burst_window <= now`; it then moves TAT to `max(TAT, now) + interval`.
//!
//! Why our own table rather than a sketch (count-min, pingora-limits): a sketch's collisions
//! throttle innocent clients that share cells with a heavy hitter. Here each key is stored
//! whole, so a client is only ever limited by its own requests.
//!
//! The table is set-associative: a key hashes (keyed per process, so an attacker cannot aim at
//! one set) to a set of [`WAYS`] slots. A new key takes, in order: an empty slot, a slot whose
//! TAT has passed (such a key is in exactly the state of a key never seen, so forgetting it
//! changes no decision), or else the slot with the smallest TAT, the client closest to being
//! forgiven. Eviction only ever forgets debt, so it can let a client through early but never
//! throttles one that would not have been; heavy hitters hold the largest TATs and are evicted
//! last. Memory is `capacity × 32` bytes, fixed at construction.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

/// Slots per set: 4 slots of 32 bytes, two cache lines per lookup.
pub const WAYS: usize = 4;

/// A rate: `per_second` requests on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed at once from a fresh key (>= 1).
    pub burst: u32,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it; a request would be allowed again after this many nanoseconds.
    Deny {
        /// Nanoseconds until the key may send again.
        retry_after_nanos: u64,
    },
}

/// A limiter key: an address or a prefix, as 16 bytes (IPv4 mapped into IPv6) plus its length,
/// so that the /24 `192.0.2.0` and the address `192.0.2.0` are different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The address bits, host bits cleared.
    pub bits: u128,
    /// Prefix length in the IPv6-mapped space (128 for an address).
    pub len: u8,
}

impl Key {
    /// The key of `address` truncated to `v4_len` (IPv4) or `v6_len` (IPv6) bits.
    pub fn prefix(address: IpAddr, v4_len: u8, v6_len: u8) -> Key {
        let (bits, len) = match address {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 96 + v4_len.min(32)),
            IpAddr::V6(v6) => (u128::from(v6), v6_len.min(128)),
        };
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
        Key { bits: bits & mask, len }
    }

    /// The key of one whole address.
    pub fn address(address: IpAddr) -> Key {
        Key::prefix(address, 32, 128)
    }
}

/// One slot: 16 bytes of key, 8 of TAT, the length; `tat == 0` marks it empty.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    bits: u128,
    tat: u64,
    len: u8,
}

/// GCRA over a fixed-size table of exact keys.
#[derive(Debug)]
pub struct Limiter {
    interval: u64,
    /// `interval × (burst - 1)`: how far TAT may run ahead of `now`.
    tolerance: u64,
    slots: Vec<Slot>,
    sets: usize,
    hasher: foldhash::fast::RandomState,
    evictions: u64,
}

impl Limiter {
    /// A limiter for `rate` holding up to `capacity` keys (rounded up to whole sets).
    pub fn new(rate: Rate, capacity: usize) -> Limiter {
        let per_second =
            if rate.per_second.is_finite() && rate.per_second > 0.0 { rate.per_second } else { 1.0 };
        let interval = ((1e9 / per_second) as u64).max(1);
        let burst = u64::from(rate.burst.max(1));
        let sets = capacity.div_ceil(WAYS).max(1);
        Limiter {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            slots: vec![Slot::default(); sets * WAYS],
            sets,
            hasher: foldhash::fast::RandomState::default(),
            evictions: 0,
        }
    }

    /// Keys the table can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the table occupies (fixed).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// Keys forgotten early to make room (their TAT had not yet passed).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Decide one request from `key` at `now` (nanoseconds, monotonic, > 0).
    pub fn check(&mut self, key: Key, now: u64) -> Verdict {
        let now = now.max(1);
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u128(key.bits);
        hasher.write_u8(key.len);
        // Multiply-shift maps the hash onto any number of sets, no power of two needed.
        let set = ((u128::from(hasher.finish()) * self.sets as u128) >> 64) as usize;
        let base = set * WAYS;
        let ways = &mut self.slots[base..base + WAYS];

        let index = match ways.iter().position(|s| s.tat != 0 && s.bits == key.bits && s.len == key.len) {
            Some(found) => found,
            None => {
                // Empty or expired first (no decision changes), else the smallest TAT.
                let mut victim = 0;
                for (i, slot) in ways.iter().enumerate() {
                    if slot.tat == 0 || slot.tat <= now {
                        victim = i;
                        break;
                    }
                    if slot.tat < ways[victim].tat {
                        victim = i;
                    }
                }
                if ways[victim].tat > now {
                    self.evictions += 1;
                }
                ways[victim] = Slot { bits: key.bits, tat: 0, len: key.len };
                victim
            }
        };
        let slot = &mut ways[index];
        let tat = slot.tat.max(now);
        let allow_at = tat.saturating_sub(self.tolerance);
        if allow_at > now {
            return Verdict::Deny { retry_after_nanos: allow_at - now };
        }
        slot.tat = tat.saturating_add(self.interval);
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SEC: u64 = 1_000_000_000;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn burst_then_rate() {
        let mut limiter = Limiter::new(Rate { per_second: 10.0, burst: 5 }, 64);
        let key = Key::address(v4(192, 0, 2, 1));
        let now = 100 * SEC;
        for _ in 0..5 {
            assert_eq!(limiter.check(key, now), Verdict::Allow);
        }
        let Verdict::Deny { retry_after_nanos } = limiter.check(key, now) else {
            panic!("the sixth request at once must be refused");
        };
        assert_eq!(retry_after_nanos, SEC / 10);
        assert_eq!(limiter.check(key, now + SEC / 10), Verdict::Allow);
        // After a quiet second the whole burst is back... up to its size.
        let later = now + 10 * SEC;
        for _ in 0..5 {
            assert_eq!(limiter.check(key, later), Verdict::Allow);
        }
        assert!(matches!(limiter.check(key, later), Verdict::Deny { .. }));
    }

    #[test]
    fn keys_are_independent_and_prefixes_distinct() {
        let mut limiter = Limiter::new(Rate { per_second: 1.0, burst: 1 }, 64);
        let now = SEC;
        assert_eq!(limiter.check(Key::address(v4(192, 0, 2, 1)), now), Verdict::Allow);
        assert!(matches!(limiter.check(Key::address(v4(192, 0, 2, 1)), now), Verdict::Deny { .. }));
        assert_eq!(limiter.check(Key::address(v4(192, 0, 2, 2)), now), Verdict::Allow);
        assert_eq!(limiter.check(Key::prefix(v4(192, 0, 2, 1), 24, 64), now), Verdict::Allow);
        assert_eq!(Key::prefix(v4(192, 0, 2, 1), 24, 64), Key::prefix(v4(192, 0, 2, 200), 24, 64));
        let a = IpAddr::V6("2001:db8:1:2:3::1".parse::<Ipv6Addr>().unwrap());
        let b = IpAddr::V6("2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Key::prefix(a, 24, 64), Key::prefix(b, 24, 64));
        assert_ne!(Key::prefix(a, 24, 48), Key::prefix(a, 24, 64));
    }

    #[test]
    fn a_flood_of_new_keys_never_throttles_a_fresh_client() {
        // A table of 16 slots, 10,000 distinct attacker keys: every innocent key is allowed
        // its burst, whatever the table went through.
        let mut limiter = Limiter::new(Rate { per_second: 1.0, burst: 2 }, 16);
        let now = SEC;
        for i in 0..10_000u32 {
            let key = Key { bits: u128::from(i) << 8, len: 120 };
            limiter.check(key, now);
        }
        let innocent = Key::address(v4(198, 51, 100, 7));
        assert_eq!(limiter.check(innocent, now), Verdict::Allow);
        assert_eq!(limiter.check(innocent, now), Verdict::Allow);
        assert!(limiter.evictions() > 0);
    }

    proptest! {
        /// Against a model with unbounded exact state: a key whose requests have all been
        /// within its rate is never refused by the bounded table (eviction only forgets debt),
        /// and with room for every key the table decides exactly as the model does.
        #[test]
        fn conforming_keys_never_refused(
            events in proptest::collection::vec((0u8..40, 0u64..3_000_000_000), 1..400),
            capacity in 1usize..64,
        ) {
            let rate = Rate { per_second: 5.0, burst: 3 };
            let mut small = Limiter::new(rate, capacity);
            let mut large = Limiter::new(rate, 4096);
            let mut model: std::collections::HashMap<u8, u64> = Default::default();
            let mut misbehaved = std::collections::HashSet::new();
            let interval = 200_000_000u64;
            let tolerance = interval * 2;
            let mut now = SEC;
            for (who, step) in events {
                now += step / 100;
                let key = Key { bits: u128::from(who), len: 128 };
                let tat = model.get(&who).copied().unwrap_or(0).max(now);
                let model_allows = tat.saturating_sub(tolerance) <= now;
                if model_allows {
                    model.insert(who, tat + interval);
                } else {
                    misbehaved.insert(who);
                }
                let small_allows = small.check(key, now) == Verdict::Allow;
                let large_allows = large.check(key, now) == Verdict::Allow;
                prop_assert_eq!(large_allows, model_allows);
                if !misbehaved.contains(&who) {
                    prop_assert!(small_allows, "a conforming key was refused");
                }
            }
        }

        /// Any keys, any times (also going backwards): no panic, memory fixed.
        #[test]
        fn arbitrary_input_is_safe(
            events in proptest::collection::vec((any::<u128>(), any::<u8>(), any::<u64>()), 1..200),
        ) {
            let mut limiter = Limiter::new(Rate { per_second: 1e9, burst: u32::MAX }, 8);
            let before = limiter.memory_bytes();
            for (bits, len, now) in events {
                limiter.check(Key { bits, len }, now);
            }
            prop_assert_eq!(limiter.memory_bytes(), before);
        }
    }
}
