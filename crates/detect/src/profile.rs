//! Per-attack traffic profile: bounded sketches of the packets sent to an attack's target
//! while the attack is ongoing (top ports, protocol mix, distinct sources, signature).

use std::hash::BuildHasher;

use ipnet::IpNet;
use rampart_telemetry::{Fragment, TrafficRecord};
use serde::Serialize;

/// HyperLogLog with 2^8 registers (about 6.5 % standard error, 256 bytes).
#[derive(Debug, Clone)]
pub struct DistinctCounter {
    registers: [u8; Self::REGISTERS],
}

impl Default for DistinctCounter {
    fn default() -> Self {
        Self { registers: [0; Self::REGISTERS] }
    }
}

impl DistinctCounter {
    const BITS: u32 = 8;
    const REGISTERS: usize = 1 << Self::BITS;

    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        // Finalize (splitmix64): fast hashers leave the high bits of small inputs weak.
        let mut hash = hash ^ (hash >> 30);
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        let index = (hash >> (64 - Self::BITS)) as usize;
        // Remaining bits, with a sentinel so the rank is bounded.
        let rest = (hash << Self::BITS) | (1 << (Self::BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(index)
            && rank > *r
        {
            *r = rank;
        }
    }

    /// Estimated number of distinct inserted values.
    pub fn estimate(&self) -> u64 {
        let m = Self::REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        estimate.round() as u64
    }
}

/// Space-Saving heavy hitters over `u16` keys with `K` slots: every key with more than n/K
/// occurrences is kept, with a count at most n/K too high (`error` bounds it).
#[derive(Debug, Clone, Default)]
pub struct TopKeys {
    slots: Vec<(u16, u64, u64)>,
    total: u64,
}

impl TopKeys {
    const K: usize = 32;

    #[inline]
    pub fn add(&mut self, key: u16, weight: u64) {
        self.total = self.total.saturating_add(weight);
        if let Some(slot) = self.slots.iter_mut().find(|s| s.0 == key) {
            slot.1 = slot.1.saturating_add(weight);
            return;
        }
        if self.slots.len() < Self::K {
            self.slots.push((key, weight, 0));
            return;
        }
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.1) {
            let floor = min.1;
            *min = (key, floor.saturating_add(weight), floor);
        }
    }

    /// The `n` heaviest keys, heaviest first, with their estimated counts.
    pub fn top(&self, n: usize) -> Vec<(u16, u64)> {
        let mut slots = self.slots.clone();
        slots.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        slots.into_iter().take(n).map(|(k, c, _)| (k, c)).collect()
    }

    /// The key holding at least `share` of all weight for certain (lower bound), if any.
    pub fn dominant(&self, share: f64, of: u64) -> Option<u16> {
        self.slots.iter().find(|s| of > 0 && (s.1 - s.2) as f64 >= share * of as f64).map(|s| s.0)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s slots (its error bounds carry over).
    pub fn merge(&mut self, other: &TopKeys) {
        for &(key, count, error) in &other.slots {
            let before = self.slots.iter().find(|s| s.0 == key).map_or(0, |s| s.2);
            self.add(key, count);
            if let Some(slot) = self.slots.iter_mut().find(|s| s.0 == key) {
                slot.2 = slot.2.max(before).saturating_add(error).min(slot.1);
            }
        }
    }
}

/// Packet-length histogram bucket width, bytes.
const LEN_BUCKET: u32 = 16;
/// Lengths from 0 to 2047; longer ones share the last bucket.
const LEN_BUCKETS: usize = 128;

/// What the traffic of one attack looked like.
#[derive(Debug, Clone)]
pub struct Profile {
    pub packets: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    sources: DistinctCounter,
    src_ports: TopKeys,
    dst_ports: TopKeys,
    protocols: [u64; 256],
    tcp_flags: [u64; 256],
    ttls: [u64; 256],
    non_initial_fragments: u64,
    lengths: [u64; LEN_BUCKETS],
    packets_with_len: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            packets: 0,
            bytes: 0,
            first_ns: 0,
            last_ns: 0,
            sources: DistinctCounter::default(),
            src_ports: TopKeys::default(),
            dst_ports: TopKeys::default(),
            protocols: [0; 256],
            tcp_flags: [0; 256],
            ttls: [0; 256],
            non_initial_fragments: 0,
            lengths: [0; LEN_BUCKETS],
            packets_with_len: 0,
        }
    }
}

/// Share of an attack's traffic a signature field must cover.
pub const SIGNATURE_COVERAGE: f64 = 0.99;

/// The narrowest filter whose every field matches at least 99 % of the attack's profiled
/// packets (each field on its own: their conjunction may cover a little less). A `None` field
/// matches anything. Profiled packets are those to the target in the seconds over threshold
/// after the onset was reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    /// Destination: the host (/32, /128) or the attacked prefix.
    pub dst_prefix: String,
    pub protocol: Option<u8>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// Exact TCP flags byte when one value dominates.
    pub tcp_flags: Option<u8>,
    /// `true`: non-initial fragments only; `false`: no non-initial fragments; `None`: both.
    pub fragment: Option<bool>,
    /// IP total length range holding at least 99 % of packets (16-byte resolution).
    pub packet_len: Option<(u32, u32)>,
    /// Packets the signature was computed from.
    pub sampled_packets: u64,
}

/// A key and its share of the attack's profiled packets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share<K> {
    pub value: K,
    pub packets: u64,
    pub percent: f64,
}

impl Profile {
    #[inline]
    pub fn add(&mut self, record: &TrafficRecord, packets: u64, bytes: u64, hasher: &impl BuildHasher) {
        if self.packets == 0 {
            self.first_ns = record.start.0;
        }
        self.packets = self.packets.saturating_add(packets);
        self.bytes = self.bytes.saturating_add(bytes);
        self.last_ns = self.last_ns.max(record.end.0);
        self.sources.insert_hash(hasher.hash_one(record.src));
        if let Some(port) = record.src_port {
            self.src_ports.add(port, packets);
        }
        if let Some(port) = record.dst_port {
            self.dst_ports.add(port, packets);
        }
        let p = &mut self.protocols[usize::from(record.protocol)];
        *p = p.saturating_add(packets);
        if record.protocol == crate::class::PROTO_TCP {
            let f = &mut self.tcp_flags[usize::from(record.tcp_flags)];
            *f = f.saturating_add(packets);
        }
        if let Some(ttl) = record.ttl {
            let t = &mut self.ttls[usize::from(ttl)];
            *t = t.saturating_add(packets);
        }
        if record.fragment == Fragment::NonInitial {
            self.non_initial_fragments = self.non_initial_fragments.saturating_add(packets);
        }
        let len = record.packet_len.or_else(|| {
            // Flows: the mean length.
            (record.packets > 0).then(|| u32::try_from(record.bytes / record.packets).unwrap_or(u32::MAX))
        });
        if let Some(len) = len {
            let bucket = ((len / LEN_BUCKET) as usize).min(LEN_BUCKETS - 1);
            self.lengths[bucket] = self.lengths[bucket].saturating_add(packets);
            self.packets_with_len = self.packets_with_len.saturating_add(packets);
        }
    }

    /// Adds `other` (a later stretch of the same attack) into `self`.
    pub fn merge(&mut self, other: &Profile) {
        if other.packets == 0 {
            return;
        }
        if self.packets == 0 {
            self.first_ns = other.first_ns;
        }
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.last_ns = self.last_ns.max(other.last_ns);
        for (a, b) in self.sources.registers.iter_mut().zip(other.sources.registers) {
            *a = (*a).max(b);
        }
        self.src_ports.merge(&other.src_ports);
        self.dst_ports.merge(&other.dst_ports);
        for (a, b) in self.protocols.iter_mut().zip(other.protocols) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.tcp_flags.iter_mut().zip(other.tcp_flags) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.ttls.iter_mut().zip(other.ttls) {
            *a = a.saturating_add(b);
        }
        self.non_initial_fragments = self.non_initial_fragments.saturating_add(other.non_initial_fragments);
        for (a, b) in self.lengths.iter_mut().zip(other.lengths) {
            *a = a.saturating_add(b);
        }
        self.packets_with_len = self.packets_with_len.saturating_add(other.packets_with_len);
    }

    pub fn distinct_sources(&self) -> u64 {
        self.sources.estimate()
    }

    fn share<K>(&self, value: K, packets: u64) -> Share<K> {
        let percent = if self.packets == 0 { 0.0 } else { 100.0 * packets as f64 / self.packets as f64 };
        Share { value, packets, percent: (percent * 10.0).round() / 10.0 }
    }

    pub fn top_src_ports(&self, n: usize) -> Vec<Share<u16>> {
        self.src_ports.top(n).into_iter().map(|(k, c)| self.share(k, c)).collect()
    }

    pub fn top_dst_ports(&self, n: usize) -> Vec<Share<u16>> {
        self.dst_ports.top(n).into_iter().map(|(k, c)| self.share(k, c)).collect()
    }

    /// Protocols by packets, descending.
    pub fn protocol_mix(&self) -> Vec<Share<u8>> {
        self.heaviest(&self.protocols, usize::MAX)
    }

    /// TCP flag combinations (the whole flags byte) of TCP packets, by packets, descending.
    pub fn tcp_flag_mix(&self, n: usize) -> Vec<Share<u8>> {
        self.heaviest(&self.tcp_flags, n)
    }

    /// The most frequent TTL / hop-limit values (spoofed floods spread them; a reflector or a
    /// botnet behind one path concentrates them).
    pub fn ttl_distribution(&self, n: usize) -> Vec<Share<u8>> {
        self.heaviest(&self.ttls, n)
    }

    /// Packet lengths in 16-byte buckets (value = first length of the bucket), ascending.
    pub fn length_distribution(&self) -> Vec<Share<u32>> {
        (0..LEN_BUCKETS)
            .filter(|&b| self.lengths[b] > 0)
            .map(|b| self.share(b as u32 * LEN_BUCKET, self.lengths[b]))
            .collect()
    }

    /// The `n` heaviest byte values of a histogram, by packets descending (ties: by value).
    fn heaviest(&self, histogram: &[u64; 256], n: usize) -> Vec<Share<u8>> {
        let mut mix: Vec<(u8, u64)> = (0..=255u8)
            .filter(|&v| histogram[usize::from(v)] > 0)
            .map(|v| (v, histogram[usize::from(v)]))
            .collect();
        mix.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        mix.truncate(n);
        mix.into_iter().map(|(v, c)| self.share(v, c)).collect()
    }

    pub fn signature(&self, target: IpNet) -> Signature {
        let n = self.packets;
        let covers = |count: u64| n > 0 && count as f64 >= SIGNATURE_COVERAGE * n as f64;
        let protocol = (0..=255u8).find(|&p| covers(self.protocols[usize::from(p)]));
        let tcp_flags = if protocol == Some(crate::class::PROTO_TCP) {
            (0..=255u8).find(|&f| covers(self.tcp_flags[usize::from(f)]))
        } else {
            None
        };
        let fragment = if covers(self.non_initial_fragments) {
            Some(true)
        } else if covers(n - self.non_initial_fragments.min(n)) {
            Some(false)
        } else {
            None
        };
        Signature {
            dst_prefix: target.to_string(),
            protocol,
            src_port: self.src_ports.dominant(SIGNATURE_COVERAGE, n),
            dst_port: self.dst_ports.dominant(SIGNATURE_COVERAGE, n),
            tcp_flags,
            fragment,
            packet_len: self.length_range(),
            sampled_packets: n,
        }
    }

    /// Narrowest bucket range holding at least 99 % of the packets with a known length.
    fn length_range(&self) -> Option<(u32, u32)> {
        let n = self.packets_with_len;
        if n == 0 || (n as f64) < SIGNATURE_COVERAGE * self.packets as f64 {
            return None;
        }
        let need = (SIGNATURE_COVERAGE * n as f64).ceil() as u64;
        let mut best: Option<(usize, usize)> = None;
        let (mut lo, mut sum) = (0usize, 0u64);
        for hi in 0..LEN_BUCKETS {
            sum += self.lengths[hi];
            while lo < hi && sum - self.lengths[lo] >= need {
                sum -= self.lengths[lo];
                lo += 1;
            }
            if sum >= need && best.is_none_or(|(a, b)| hi - lo < b - a) {
                best = Some((lo, hi));
            }
        }
        best.map(|(lo, hi)| {
            let max = if hi == LEN_BUCKETS - 1 { 65_535 } else { (hi as u32 + 1) * LEN_BUCKET - 1 };
            (lo as u32 * LEN_BUCKET, max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_telemetry::UnixNanos;
    use std::net::IpAddr;

    fn hasher() -> foldhash::fast::FixedState {
        foldhash::fast::FixedState::with_seed(1)
    }

    #[test]
    fn distinct_counter_is_close() {
        let h = hasher();
        for n in [0u64, 1, 10, 1000, 100_000] {
            let mut c = DistinctCounter::default();
            for i in 0..n {
                c.insert_hash(h.hash_one(i));
                c.insert_hash(h.hash_one(i));
            }
            let e = c.estimate() as f64;
            assert!((e - n as f64).abs() <= 0.2 * n as f64 + 1.0, "{n}: {e}");
        }
    }

    #[test]
    fn top_keys_keep_heavy_hitters() {
        let mut t = TopKeys::default();
        for i in 0..10_000u32 {
            t.add(if i % 2 == 0 { 53 } else { (i % 5000) as u16 }, 1);
        }
        assert_eq!(t.top(1)[0].0, 53);
        assert_eq!(t.dominant(0.99, t.total()), None);
        let mut d = TopKeys::default();
        for i in 0..10_000u32 {
            d.add(if i % 1000 == 0 { i as u16 } else { 123 }, 1);
        }
        assert_eq!(d.dominant(0.99, 10_000), Some(123));
    }

    #[test]
    fn merged_profiles_add_up() {
        let h = hasher();
        let (mut a, mut b, mut whole) = (Profile::default(), Profile::default(), Profile::default());
        for i in 0..2000u32 {
            let r = TrafficRecord {
                src: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                protocol: 17,
                src_port: Some(123),
                dst_port: Some((i % 7) as u16),
                packets: 1,
                bytes: 100,
                packet_len: Some(100),
                ..TrafficRecord::EMPTY
            };
            if i % 2 == 0 {
                a.add(&r, 1, 100, &h)
            } else {
                b.add(&r, 1, 100, &h)
            }
            whole.add(&r, 1, 100, &h);
        }
        a.merge(&b);
        assert_eq!((a.packets, a.bytes), (whole.packets, whole.bytes));
        assert_eq!(a.distinct_sources(), whole.distinct_sources());
        let t = "192.0.2.1/32".parse().unwrap();
        assert_eq!(a.signature(t), whole.signature(t));
        assert_eq!(a.top_src_ports(1), whole.top_src_ports(1));
    }

    #[test]
    fn signature_of_a_syn_flood() {
        let h = hasher();
        let mut p = Profile::default();
        for i in 0..1000u32 {
            let r = TrafficRecord {
                start: UnixNanos(u64::from(i)),
                end: UnixNanos(u64::from(i)),
                src: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                protocol: 6,
                src_port: Some(i as u16),
                dst_port: Some(80),
                tcp_flags: 0x02,
                packets: 1,
                bytes: 60,
                packet_len: Some(40 + i % 20),
                ..TrafficRecord::EMPTY
            };
            p.add(&r, 1, 60, &h);
        }
        let s = p.signature("198.51.100.10/32".parse().unwrap());
        assert_eq!(
            (s.protocol, s.dst_port, s.src_port, s.tcp_flags, s.fragment),
            (Some(6), Some(80), None, Some(2), Some(false))
        );
        assert_eq!(s.packet_len, Some((32, 63)));
        let e = p.distinct_sources();
        assert!((900..=1100).contains(&e), "{e}");
        assert_eq!(p.protocol_mix()[0].percent, 100.0);
    }
}
