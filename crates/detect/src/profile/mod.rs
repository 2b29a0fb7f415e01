//! Per-attack traffic profile: bounded sketches of the packets sent to an attack's target
//! while the attack is ongoing (top ports, protocol mix, distinct sources, signature), kept
//! per traffic class so each vector of a multi-vector attack gets its own signature
//! (`vectors`).

mod vectors;

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rampart_contract::{
    EventTime, FragmentMatch, LengthRange, PacketSample, PortRange, Share, Signature, TcpFlags,
};
use rampart_telemetry::{Fragment, RecordSource, TrafficRecord};

use crate::class::Class;

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

/// Space-Saving heavy hitters with `K` slots: every key with more than n/K occurrences is kept,
/// with a count at most n/K too high (`errors` bounds it). Keys and counts live in separate
/// fixed arrays so the scans stay in a few cache lines: a spoofed flood misses on every
/// packet, so the miss path (find, then minimum) is the hot one.
#[derive(Debug, Clone)]
pub struct TopKeys<T = u16> {
    keys: [T; TOP_K],
    counts: [u64; TOP_K],
    errors: [u64; TOP_K],
    len: usize,
    total: u64,
    /// A slot holding the smallest count, when `len == TOP_K`; `None` when it must be searched.
    min: Option<usize>,
}

/// Slots of a [`TopKeys`].
const TOP_K: usize = 16;
// `TopKeys::position` keeps a bit per slot in a `u32`.
const _: () = assert!(TOP_K < 32);

impl<T: Copy + Default> Default for TopKeys<T> {
    fn default() -> Self {
        TopKeys {
            keys: [T::default(); TOP_K],
            counts: [0; TOP_K],
            errors: [0; TOP_K],
            len: 0,
            total: 0,
            min: None,
        }
    }
}

impl<T: Copy + Eq + Ord + Default> TopKeys<T> {
    #[inline]
    fn position(&self, key: T) -> Option<usize> {
        // Branch-free over all slots (the compiler vectorizes it): in a flood of random keys
        // almost every lookup misses, and an early-exit scan costs a branch per slot.
        let hits = self.keys.iter().enumerate().fold(0u32, |m, (i, &k)| m | (u32::from(k == key) << i));
        let live = hits & (1u32 << self.len).wrapping_sub(1);
        (live != 0).then(|| live.trailing_zeros() as usize)
    }

    #[inline]
    pub fn add(&mut self, key: T, weight: u64) {
        self.total = self.total.saturating_add(weight);
        if let Some(i) = self.position(key) {
            self.counts[i] = self.counts[i].saturating_add(weight);
            if self.min == Some(i) {
                self.min = None;
            }
            return;
        }
        if self.len < TOP_K {
            (self.keys[self.len], self.counts[self.len], self.errors[self.len]) = (key, weight, 0);
            self.len += 1;
            return;
        }
        let min = self.min.unwrap_or_else(|| self.argmin());
        let floor = self.counts[min];
        (self.keys[min], self.counts[min], self.errors[min]) = (key, floor.saturating_add(weight), floor);
        // Counts never fall below `floor`: another slot at `floor` is a minimum (in a flood of
        // distinct keys most slots tie), found without a full search.
        self.min = (1..TOP_K).map(|j| (min + j) % TOP_K).find(|&j| self.counts[j] == floor);
    }

    fn argmin(&self) -> usize {
        let mut min = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            if count < self.counts[min] {
                min = i;
            }
        }
        min
    }

    fn slots(&self) -> impl Iterator<Item = (T, u64, u64)> + '_ {
        (0..self.len).map(|i| (self.keys[i], self.counts[i], self.errors[i]))
    }

    /// The `n` heaviest keys, heaviest first, with the counts they certainly have (estimate
    /// minus error bound). Keys with no certain count are left out: in a flood of random keys
    /// every slot is mostly error, and listing them would invent heavy hitters.
    pub fn top(&self, n: usize) -> Vec<(T, u64)> {
        let mut slots: Vec<(T, u64)> =
            self.slots().map(|(k, count, error)| (k, count - error)).filter(|&(_, c)| c > 0).collect();
        slots.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        slots.truncate(n);
        slots
    }

    /// The key holding at least `share` of all weight for certain (lower bound), if any.
    pub fn dominant(&self, share: f64, of: u64) -> Option<T> {
        self.slots().find(|s| of > 0 && (s.1 - s.2) as f64 >= share * of as f64).map(|s| s.0)
    }

    /// The fewest keys (at most `max`) that together hold at least `share` of `of` for
    /// certain, heaviest first; empty when no such set exists.
    pub fn covering(&self, share: f64, of: u64, max: usize) -> Vec<T> {
        let mut sum = 0u64;
        let mut keys = Vec::new();
        for (key, certain) in self.top(max) {
            sum = sum.saturating_add(certain);
            keys.push(key);
            if of > 0 && sum as f64 >= share * of as f64 {
                return keys;
            }
        }
        Vec::new()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s slots (its error bounds carry over).
    pub fn merge(&mut self, other: &TopKeys<T>) {
        for (key, count, error) in other.slots() {
            let before = self.position(key).map_or(0, |i| self.errors[i]);
            self.add(key, count);
            if let Some(i) = self.position(key) {
                self.errors[i] = self.errors[i].max(before).saturating_add(error).min(self.counts[i]);
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
    /// Remote side: sources of inbound traffic, destinations of outbound traffic.
    remotes: DistinctCounter,
    remote_prefixes: TopKeys<RemotePrefix>,
    protocols: [u64; 256],
    tcp_flags: [u64; 256],
    ttls: [u64; 256],
    non_initial_fragments: u64,
    /// Ports and lengths per traffic class (by `Class::index`); the whole profile's are their
    /// sums, so a packet updates one set of sketches, not two.
    classes: [ClassPart; Class::COUNT],
    samples: Vec<PacketSample>,
}

/// The ports and lengths of one traffic class of a profile.
#[derive(Debug, Clone)]
struct ClassPart {
    packets: u64,
    /// Of which observed, before scaling by the sampling rate (the evidence).
    observed: u64,
    src_ports: TopKeys,
    dst_ports: TopKeys,
    lengths: [u64; LEN_BUCKETS],
    packets_with_len: u64,
}

impl Default for ClassPart {
    fn default() -> Self {
        ClassPart {
            packets: 0,
            observed: 0,
            src_ports: TopKeys::default(),
            dst_ports: TopKeys::default(),
            lengths: [0; LEN_BUCKETS],
            packets_with_len: 0,
        }
    }
}

impl ClassPart {
    fn merge(&mut self, other: &ClassPart) {
        self.packets = self.packets.saturating_add(other.packets);
        self.observed = self.observed.saturating_add(other.observed);
        self.src_ports.merge(&other.src_ports);
        self.dst_ports.merge(&other.dst_ports);
        for (a, b) in self.lengths.iter_mut().zip(other.lengths) {
            *a = a.saturating_add(b);
        }
        self.packets_with_len = self.packets_with_len.saturating_add(other.packets_with_len);
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            packets: 0,
            bytes: 0,
            first_ns: 0,
            last_ns: 0,
            remotes: DistinctCounter::default(),
            remote_prefixes: TopKeys::default(),
            protocols: [0; 256],
            tcp_flags: [0; 256],
            ttls: [0; 256],
            non_initial_fragments: 0,
            classes: std::array::from_fn(|_| ClassPart::default()),
            samples: Vec::new(),
        }
    }
}

/// Packet headers kept per attack (from packet sources: captures, sFlow raw headers).
pub const MAX_SAMPLES: usize = 5;

/// A remote address's prefix (IPv4 /24, IPv6 /48) packed in a u64: IPv4 with the top bit set
/// and the /24 in the low bits, IPv6 the /48 in the low 48 bits. Cheap to compare in
/// [`TopKeys`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemotePrefix(u64);

const REMOTE_V4: u64 = 1 << 63;

impl RemotePrefix {
    fn of(ip: IpAddr) -> Self {
        RemotePrefix(match ip {
            IpAddr::V4(a) => REMOTE_V4 | u64::from(u32::from(a) >> 8),
            IpAddr::V6(a) => (u128::from(a) >> 80) as u64,
        })
    }

    fn net(self) -> IpNet {
        if self.0 & REMOTE_V4 != 0 {
            let addr = Ipv4Addr::from(((self.0 & 0xff_ffff) as u32) << 8);
            IpNet::V4(Ipv4Net::new(addr, 24).unwrap_or_default())
        } else {
            let addr = Ipv6Addr::from(u128::from(self.0) << 80);
            IpNet::V6(Ipv6Net::new(addr, 48).unwrap_or_default())
        }
    }
}

/// The headers of `record` as an attack sample.
fn sample_of(record: &TrafficRecord) -> PacketSample {
    PacketSample {
        time: EventTime::from_unix_nanos(record.start.0),
        src: record.src,
        dst: record.dst,
        protocol: record.protocol,
        src_port: record.src_port,
        dst_port: record.dst_port,
        tcp_flags: record.tcp_flags,
        ttl: record.ttl,
        length: record.packet_len,
        fragment: record.fragment == Fragment::NonInitial,
        sampling_rate: record.sampling_rate,
    }
}

/// Share of an attack's traffic a signature field must cover.
pub const SIGNATURE_COVERAGE: f64 = 0.99;

impl Profile {
    /// Adds `packets` (scaled by the sampling rate) and `bytes` of `record`, of which `observed`
    /// were seen before scaling, of traffic class `class`; `outbound` when the protected side is
    /// its source (the remote side is then the destination).
    #[inline]
    pub fn add(
        &mut self,
        record: &TrafficRecord,
        class: Class,
        (packets, observed): (u64, u64),
        bytes: u64,
        outbound: bool,
        hasher: &impl BuildHasher,
    ) {
        if self.packets == 0 {
            self.first_ns = record.start.0;
        }
        self.packets = self.packets.saturating_add(packets);
        self.bytes = self.bytes.saturating_add(bytes);
        self.last_ns = self.last_ns.max(record.end.0);
        let remote = if outbound { record.dst } else { record.src };
        self.remotes.insert_hash(hasher.hash_one(remote));
        self.remote_prefixes.add(RemotePrefix::of(remote), packets);
        if self.samples.len() < MAX_SAMPLES
            && matches!(record.source, RecordSource::Pcap | RecordSource::Sflow)
        {
            self.samples.push(sample_of(record));
        }
        let part = &mut self.classes[class.index() % Class::COUNT];
        part.packets = part.packets.saturating_add(packets);
        part.observed = part.observed.saturating_add(observed);
        if let Some(port) = record.src_port {
            part.src_ports.add(port, packets);
        }
        if let Some(port) = record.dst_port {
            part.dst_ports.add(port, packets);
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
            let part = &mut self.classes[class.index() % Class::COUNT];
            part.lengths[bucket] = part.lengths[bucket].saturating_add(packets);
            part.packets_with_len = part.packets_with_len.saturating_add(packets);
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
        for (a, b) in self.remotes.registers.iter_mut().zip(other.remotes.registers) {
            *a = (*a).max(b);
        }
        self.remote_prefixes.merge(&other.remote_prefixes);
        let room = MAX_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.iter().take(room).cloned());
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            a.merge(b);
        }
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
    }

    /// The classes' ports and lengths together: the whole profile's.
    fn whole(&self) -> ClassPart {
        let mut whole = ClassPart::default();
        for part in &self.classes {
            whole.merge(part);
        }
        whole
    }

    /// Packets observed, before scaling by the sampling rate: how much evidence the profile
    /// holds.
    pub fn observed(&self) -> u64 {
        self.classes.iter().map(|c| c.observed).sum()
    }

    /// Estimated distinct remote addresses (sources inbound, destinations outbound).
    pub fn distinct_remotes(&self) -> u64 {
        self.remotes.estimate()
    }

    /// Heaviest remote prefixes (IPv4 /24, IPv6 /48).
    pub fn top_remote_prefixes(&self, n: usize) -> Vec<Share<IpNet>> {
        self.remote_prefixes.top(n).into_iter().map(|(k, c)| self.share(k.net(), c)).collect()
    }

    /// Headers of the first packets profiled (packet sources only).
    pub fn samples(&self) -> &[PacketSample] {
        &self.samples
    }

    fn share<K>(&self, value: K, packets: u64) -> Share<K> {
        let percent = if self.packets == 0 { 0.0 } else { 100.0 * packets as f64 / self.packets as f64 };
        Share { value, packets, percent: (percent * 10.0).round() / 10.0 }
    }

    pub fn top_src_ports(&self, n: usize) -> Vec<Share<u16>> {
        self.whole().src_ports.top(n).into_iter().map(|(k, c)| self.share(k, c)).collect()
    }

    pub fn top_dst_ports(&self, n: usize) -> Vec<Share<u16>> {
        self.whole().dst_ports.top(n).into_iter().map(|(k, c)| self.share(k, c)).collect()
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
        let lengths = self.whole().lengths;
        (0..LEN_BUCKETS)
            .filter(|&b| lengths[b] > 0)
            .map(|b| self.share(b as u32 * LEN_BUCKET, lengths[b]))
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

    /// The signature of inbound traffic to `target`, or (`outbound`) of traffic from `target`
    /// to whichever remote prefix carries 99 % of it (else anywhere).
    pub fn signature(&self, target: IpNet, outbound: bool) -> Signature {
        let n = self.packets;
        let whole = self.whole();
        let covers = |count: u64| n > 0 && count as f64 >= SIGNATURE_COVERAGE * n as f64;
        let protocol = (0..=255u8).find(|&p| covers(self.protocols[usize::from(p)]));
        let tcp_flags = if protocol == Some(crate::class::PROTO_TCP) {
            tcp_flags_covering(&self.tcp_flags, n, |_| true)
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
        let (src_prefixes, dst_prefixes) = if outbound {
            // The remote prefix receiving 99 % of it, else any destination.
            let victim = self.remote_prefixes.dominant(SIGNATURE_COVERAGE, n);
            (vec![target], victim.map(|v| v.net()).into_iter().collect())
        } else {
            (Vec::new(), vec![target])
        };
        // Reflection answers from one to three service ports (80 and 443, BACnet and DHDiscover).
        let ports =
            |t: &TopKeys| t.covering(SIGNATURE_COVERAGE, n, 3).into_iter().map(PortRange::single).collect();
        Signature {
            src_prefixes,
            dst_prefixes,
            protocol,
            src_ports: ports(&whole.src_ports),
            dst_ports: ports(&whole.dst_ports),
            tcp_flags,
            fragment: fragment
                .map(|only| if only { FragmentMatch::NonInitial } else { FragmentMatch::NotNonInitial }),
            packet_len: length_range(&whole, n),
            sampled_packets: n,
            collateral: None,
            ..Signature::default()
        }
        .with_samples(whole.observed)
    }
}

/// The TCP flags of 99 % of `n` packets, among the flag bytes `admit` lets in: one flags byte,
/// else the bits all of them share (RST with and without ACK) when those include one of FIN,
/// SYN, RST, ACK (else the mix says nothing).
fn tcp_flags_covering(histogram: &[u64; 256], n: u64, admit: impl Fn(u8) -> bool) -> Option<TcpFlags> {
    let count = |f: u8| if admit(f) { histogram[usize::from(f)] } else { 0 };
    let covers = |c: u64| n > 0 && c as f64 >= SIGNATURE_COVERAGE * n as f64;
    (0..=255u8).find(|&f| covers(count(f))).map(TcpFlags::exact).or_else(|| {
        let mut seen = (0..=255u8).filter(|&f| count(f) > 0).peekable();
        seen.peek()?;
        let (all, any) = seen.fold((0xffu8, 0u8), |(all, any), f| (all & f, any | f));
        let flags = TcpFlags { value: all, mask: all | !any };
        (flags.mask & 0x17 != 0).then_some(flags)
    })
}

/// Narrowest bucket range holding at least 99 % of `part`'s packets with a known length, when
/// those are 99 % of its `packets`.
fn length_range(part: &ClassPart, packets: u64) -> Option<LengthRange> {
    let n = part.packets_with_len;
    if n == 0 || (n as f64) < SIGNATURE_COVERAGE * packets as f64 {
        return None;
    }
    let need = (SIGNATURE_COVERAGE * n as f64).ceil() as u64;
    let mut best: Option<(usize, usize)> = None;
    let (mut lo, mut sum) = (0usize, 0u64);
    for hi in 0..LEN_BUCKETS {
        sum += part.lengths[hi];
        while lo < hi && sum - part.lengths[lo] >= need {
            sum -= part.lengths[lo];
            lo += 1;
        }
        if sum >= need && best.is_none_or(|(a, b)| hi - lo < b - a) {
            best = Some((lo, hi));
        }
    }
    best.map(|(lo, hi)| {
        let max = if hi == LEN_BUCKETS - 1 { 65_535 } else { (hi as u32 + 1) * LEN_BUCKET - 1 };
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        LengthRange { min: clamp(lo as u32 * LEN_BUCKET), max: clamp(max) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::classify;
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
        // Distinct keys only: nothing is certainly heavy.
        let mut r = TopKeys::default();
        for i in 0..10_000u32 {
            r.add(i as u16, 1);
        }
        assert!(r.top(5).iter().all(|&(_, c)| c <= 1), "{:?}", r.top(5));
    }

    proptest::proptest! {
        /// The Space-Saving guarantees: a key over 1/K of the weight is kept; its estimate is
        /// never below the truth nor above it by more than its error bound.
        #[test]
        fn top_keys_bounds_hold(stream in proptest::collection::vec((0u16..100, 1u64..5), 0..2000)) {
            let mut t = TopKeys::default();
            let mut exact = std::collections::HashMap::new();
            for &(k, w) in &stream {
                t.add(k, w);
                *exact.entry(k).or_insert(0u64) += w;
            }
            let total: u64 = exact.values().sum();
            proptest::prop_assert_eq!(t.total(), total);
            for (k, count, error) in t.slots() {
                let truth = exact.get(&k).copied().unwrap_or(0);
                proptest::prop_assert!(count >= truth && count - error <= truth, "{k}: {count} {error} {truth}");
            }
            for (k, certain) in t.top(TOP_K) {
                proptest::prop_assert!(certain <= exact[&k], "{k}: listed {certain} > {}", exact[&k]);
            }
            for (&k, &truth) in &exact {
                if truth * TOP_K as u64 > total {
                    proptest::prop_assert!(t.position(k).is_some(), "{k} with {truth} of {total} lost");
                }
            }
        }
    }

    #[test]
    fn remote_prefixes_round_trip() {
        for (ip, net) in [
            ("203.0.113.77", "203.0.113.0/24"),
            ("0.0.0.1", "0.0.0.0/24"),
            ("255.255.255.255", "255.255.255.0/24"),
            ("2001:db8:ffff:1::9", "2001:db8:ffff::/48"),
            ("::1", "::/48"),
        ] {
            assert_eq!(RemotePrefix::of(ip.parse().unwrap()).net().to_string(), net);
        }
        let v4 = RemotePrefix::of("0.0.0.0".parse().unwrap());
        let v6 = RemotePrefix::of("::".parse().unwrap());
        assert_ne!(v4, v6);
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
                a.add(&r, classify(&r).0, (1, 1), 100, false, &h)
            } else {
                b.add(&r, classify(&r).0, (1, 1), 100, false, &h)
            }
            whole.add(&r, classify(&r).0, (1, 1), 100, false, &h);
        }
        a.merge(&b);
        assert_eq!((a.packets, a.bytes), (whole.packets, whole.bytes));
        assert_eq!(a.distinct_remotes(), whole.distinct_remotes());
        let t = "192.0.2.1/32".parse().unwrap();
        assert_eq!(a.signature(t, false), whole.signature(t, false));
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
            p.add(&r, classify(&r).0, (1, 1), 60, false, &h);
        }
        let s = p.signature("198.51.100.10/32".parse().unwrap(), false);
        assert_eq!(
            (s.protocol, s.dst_ports.clone(), s.src_ports.clone(), s.tcp_flags, s.fragment),
            (
                Some(6),
                vec![PortRange::single(80)],
                vec![],
                Some(TcpFlags::exact(2)),
                Some(FragmentMatch::NotNonInitial)
            )
        );
        assert_eq!(s.packet_len, Some(LengthRange { min: 32, max: 63 }));
        assert_eq!(s.dst_prefixes, vec!["198.51.100.10/32".parse::<IpNet>().unwrap()]);
        assert!(s.src_prefixes.is_empty());
        let e = p.distinct_remotes();
        assert!((900..=1100).contains(&e), "{e}");
        assert_eq!(p.protocol_mix()[0].percent, 100.0);
    }

    #[test]
    fn signature_of_reflected_syn_acks_and_of_rst_mixes() {
        let h = hasher();
        let (mut syn_acks, mut rsts) = (Profile::default(), Profile::default());
        for i in 0..1000u32 {
            let r = TrafficRecord {
                src: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                protocol: 6,
                src_port: Some(if i % 3 == 0 { 443 } else { 80 }),
                dst_port: Some(1024 + i as u16),
                tcp_flags: 0x12,
                packets: 1,
                bytes: 60,
                ..TrafficRecord::EMPTY
            };
            syn_acks.add(&r, classify(&r).0, (1, 1), 60, false, &h);
            let rst = TrafficRecord { tcp_flags: if i % 3 == 0 { 0x14 } else { 0x04 }, ..r };
            rsts.add(&rst, classify(&rst).0, (1, 1), 40, false, &h);
        }
        let t = "198.51.100.10/32".parse().unwrap();
        let s = syn_acks.signature(t, false);
        assert_eq!(s.src_ports, vec![PortRange::single(80), PortRange::single(443)]);
        assert_eq!((s.tcp_flags, s.dst_ports.clone()), (Some(TcpFlags::exact(0x12)), vec![]));
        let s = rsts.signature(t, false);
        assert_eq!(s.tcp_flags, Some(TcpFlags { value: 0x04, mask: 0xef }));
        assert!(s.tcp_flags.is_some_and(|f| f.matches(0x14) && f.matches(0x04) && !f.matches(0x10)));
    }
}
