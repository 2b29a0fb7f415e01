//! New-flow counting in fixed memory.
//!
//! TCP needs no state: a SYN without ACK opens a connection (for flow records, whose flags are
//! the OR of every packet's, a SYN bit means the flow began inside the record). Other protocols
//! have no handshake, so a 5-tuple is new when it was not seen in the last
//! [`FLOW_IDLE_SECS`]. The table is set-associative: a hash picks one 64-byte set (one cache
//! line, so one memory access per lookup) of [`WAYS`] 8-byte slots, each a 32-bit fingerprint
//! and the second last seen; a new flow takes an empty or expired slot, else the set's oldest.
//! An evicted flow counts as new once more when it comes back: memory stays fixed under a
//! flood of millions of spoofed tuples, and such a flood is all new flows anyway.
//!
//! The tuples are chosen by whoever sends the packets, so the set index is a keyed hash: with a
//! public seed an attacker could search tuples that all land in one set and keep evicting the
//! legitimate flows there (each then counting as new on every return). [`NewFlows::new`] draws
//! the key at random per table; [`NewFlows::with_seed`] takes it for deterministic tests.

use std::hash::{BuildHasher, Hasher};

use rampart_telemetry::{Fragment, RecordSource, TrafficRecord};

use crate::class::{PROTO_TCP, TCP_ACK, TCP_SYN};

/// A non-TCP 5-tuple idle for longer than this starts a new flow.
pub const FLOW_IDLE_SECS: u32 = 60;

/// Slots per set: one cache line.
pub const WAYS: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Set([u64; WAYS]);

/// The table of recently seen non-TCP flows.
#[derive(Debug)]
pub struct NewFlows {
    sets: Vec<Set>,
    mask: usize,
    hasher: foldhash::fast::FixedState,
}

impl NewFlows {
    /// A table of `entries` slots (rounded up to a power of two, at least one set), its hash
    /// keyed by a [`random_seed`].
    pub fn new(entries: usize) -> Self {
        Self::with_seed(entries, random_seed())
    }

    /// A table of `entries` slots whose set index is keyed by `seed`: the same seed maps the
    /// same tuples to the same sets, for tests and reproducible replays.
    pub fn with_seed(entries: usize, seed: u64) -> Self {
        let sets = (entries / WAYS).max(1).next_power_of_two();
        NewFlows {
            sets: vec![Set::default(); sets],
            mask: sets - 1,
            hasher: foldhash::fast::FixedState::with_seed(seed),
        }
    }

    /// Sets of the table (a power of two).
    pub fn sets(&self) -> usize {
        self.sets.len()
    }

    /// The set `record`'s 5-tuple maps to (whether or not the record is one the table keeps:
    /// TCP is counted without it). For tests and diagnostics of the hash spread.
    pub fn set_of(&self, record: &TrafficRecord) -> usize {
        (self.tuple_hash(record) as usize) & self.mask
    }

    #[inline]
    fn tuple_hash(&self, record: &TrafficRecord) -> u64 {
        self.hasher.hash_one((record.src, record.dst, record.protocol, record.src_port, record.dst_port))
    }

    /// Bytes of the table.
    pub fn bytes(&self) -> usize {
        self.sets.len() * std::mem::size_of::<Set>()
    }

    /// New flows `record` starts at `second`, scaled by its sampling rate (a sampled new flow
    /// stands for `rate` of them).
    #[inline]
    pub fn count(&mut self, record: &TrafficRecord, second: u64) -> u64 {
        let rate = u64::from(record.sampling_rate.max(1));
        let is_flow =
            matches!(record.source, RecordSource::NetflowV5 | RecordSource::NetflowV9 | RecordSource::Ipfix);
        if record.protocol == PROTO_TCP && record.fragment != Fragment::NonInitial {
            let syn = record.tcp_flags & TCP_SYN != 0;
            return if is_flow {
                if syn { rate } else { 0 }
            } else if syn && record.tcp_flags & TCP_ACK == 0 {
                record.packets.saturating_mul(rate)
            } else {
                0
            };
        }
        let hash = self.tuple_hash(record);
        // Fingerprint from the bits the set index does not use; never 0, so an empty slot never
        // matches.
        let fingerprint = ((hash >> 32) as u32) | 1;
        let now = second as u32;
        let Some(set) = self.sets.get_mut((hash as usize) & self.mask) else { return 0 };
        // Seconds since a slot was seen; records a little out of order may have stamped it
        // later than `now`, which counts as just seen.
        let age = |slot: u64| {
            let age = now.wrapping_sub(slot as u32);
            if age > u32::MAX / 2 { 0 } else { age }
        };
        let known = |slot: u64| (slot >> 32) as u32 == fingerprint && age(slot) <= FLOW_IDLE_SECS;
        if let Some(slot) = set.0.iter_mut().find(|s| known(**s)) {
            if age(*slot) > 0 {
                *slot = (u64::from(fingerprint) << 32) | u64::from(now);
            }
            return 0;
        }
        // An empty slot, else the least recently seen (expired ones first).
        let victim = set.0.iter_mut().max_by_key(|s| if **s == 0 { u32::MAX } else { age(**s) });
        if let Some(slot) = victim {
            *slot = (u64::from(fingerprint) << 32) | u64::from(now);
        }
        rate
    }
}

/// A seed no one outside this process can predict, for keying hashes of attacker-chosen
/// values. std's `RandomState` keys SipHash with OS randomness (drawn once per thread, then
/// stepped per instance), so the keyed hash of nothing is such a seed, without another
/// dependency or any `unsafe`.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn udp(src: [u8; 4], port: u16) -> TrafficRecord {
        TrafficRecord {
            src: IpAddr::from(src),
            dst: IpAddr::from([198, 51, 100, 1]),
            protocol: 17,
            src_port: Some(port),
            dst_port: Some(53),
            packets: 1,
            bytes: 80,
            ..TrafficRecord::EMPTY
        }
    }

    #[test]
    fn udp_tuples_are_new_once_per_idle_period() {
        let mut t = NewFlows::with_seed(1 << 16, 1);
        let r = udp([203, 0, 113, 1], 5000);
        assert_eq!(t.count(&r, 100), 1);
        assert_eq!(t.count(&r, 100), 0);
        assert_eq!(t.count(&r, 150), 0);
        // Seen at 150: still known at 210, new again after a minute of silence.
        assert_eq!(t.count(&r, 210), 0);
        assert_eq!(t.count(&r, 271), 1);
        assert_eq!(t.count(&udp([203, 0, 113, 1], 5001), 271), 1);
        assert_eq!(t.count(&TrafficRecord { sampling_rate: 100, ..udp([203, 0, 113, 2], 1) }, 271), 100);
    }

    #[test]
    fn a_full_set_evicts_its_least_recently_seen_flow() {
        // One set: eight flows fit.
        let mut t = NewFlows::with_seed(WAYS, 1);
        for port in 0..8 {
            assert_eq!(t.count(&udp([203, 0, 113, 1], port), 100 + u64::from(port)), 1);
        }
        assert_eq!(t.count(&udp([203, 0, 113, 1], 0), 110), 0, "refreshes flow 0");
        assert_eq!(t.count(&udp([203, 0, 113, 1], 99), 111), 1, "evicts flow 1, the oldest");
        assert_eq!(t.count(&udp([203, 0, 113, 1], 0), 112), 0);
        assert_eq!(t.count(&udp([203, 0, 113, 1], 2), 112), 0);
        assert_eq!(t.count(&udp([203, 0, 113, 1], 1), 112), 1, "flow 1 was evicted");
        // A record a second older than the slot's time is still the same flow.
        assert_eq!(t.count(&udp([203, 0, 113, 1], 1), 111), 0);
    }

    #[test]
    fn tcp_counts_syns_without_state() {
        let mut t = NewFlows::with_seed(1024, 1);
        let syn = TrafficRecord { protocol: 6, tcp_flags: 0x02, ..udp([203, 0, 113, 1], 1) };
        assert_eq!(t.count(&syn, 1), 1);
        assert_eq!(t.count(&syn, 1), 1, "every SYN opens a connection attempt");
        assert_eq!(t.count(&TrafficRecord { tcp_flags: 0x12, ..syn }, 1), 0, "SYN-ACK answers one");
        assert_eq!(t.count(&TrafficRecord { tcp_flags: 0x10, ..syn }, 1), 0);
        // A flow record whose OR-ed flags hold SYN began inside the record.
        let flow = TrafficRecord { tcp_flags: 0x1b, packets: 40, source: RecordSource::Ipfix, ..syn };
        assert_eq!(t.count(&flow, 1), 1);
        assert_eq!(t.count(&TrafficRecord { tcp_flags: 0x18, ..flow }, 1), 0);
    }

    #[test]
    fn a_spoofed_flood_keeps_memory_fixed() {
        let mut t = NewFlows::with_seed(4096, 1);
        let bytes = t.bytes();
        assert_eq!(bytes, 4096 * 8);
        let mut new = 0;
        for i in 0..1_000_000u32 {
            new += t.count(&udp(i.to_be_bytes(), (i % 65_536) as u16), 7);
        }
        assert_eq!(t.bytes(), bytes);
        assert!(new >= 999_000, "{new}");
    }

    proptest! {
        #[test]
        fn never_more_than_the_scaled_packets(
            records in prop::collection::vec((any::<[u8; 4]>(), any::<u16>(), any::<u8>(), any::<u8>(), 0u64..5, 1u32..1000, 0u64..400), 0..300)
        ) {
            let mut t = NewFlows::with_seed(64, 1);
            for (src, port, protocol, flags, packets, rate, second) in records {
                let r = TrafficRecord { protocol, tcp_flags: flags, packets, sampling_rate: rate, ..udp(src, port) };
                let n = t.count(&r, second);
                prop_assert!(n <= packets.max(1) * u64::from(rate));
            }
        }
    }
}
