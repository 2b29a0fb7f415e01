//! The detection engine: records in, per-second per-host and per-prefix counters, threshold
//! checks, attack lifecycle events out. Time is the records' event time; `advance` closes
//! seconds, nothing here reads a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rampart_telemetry::spread::spread_per_second;
use rampart_telemetry::{TrafficRecord, UnixNanos};
use serde::Serialize;

use crate::attack::{Attack, AttackEvent, Direction, EventKind, TargetKind, Trigger};
use crate::class::{AMPLIFICATION_PORTS, Class, Vector, classify};
use crate::config::{DetectConfig, Thresholds};
use crate::profile::Profile;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Seconds ahead of the oldest open second that flow shares may land in; later shares are
/// counted in the last of them.
const MAX_OPEN_SECS: u64 = 120;
const NO_SLOT: u32 = u32::MAX;
const AMP: usize = AMPLIFICATION_PORTS.len();
/// Top ports and protocols listed per attack.
const TOP_N: usize = 5;

/// An address as a u128: IPv6 as is, IPv4 as its IPv4-mapped IPv6 form.
#[inline]
fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[inline]
fn is_v4_key(key: u128) -> bool {
    key >> 32 == 0xffff
}

fn ip_of(key: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Mask of the first `len` bits of a u128.
fn mask(len: u32) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) }
}

/// A network as (address key, mask) in the u128 space.
fn net_key(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => {
            let m = mask(96 + u32::from(n.prefix_len()));
            (key_of(IpAddr::V4(n.network())) & m, m)
        }
        IpNet::V6(n) => {
            let m = mask(u32::from(n.prefix_len()));
            (u128::from(n.network()) & m, m)
        }
    }
}

/// Counters of one host (or, for overflow, one prefix) during one second.
#[derive(Debug, Clone)]
struct HostSecond {
    key: u128,
    packets: [u64; Class::COUNT],
    amp: [u64; AMP],
    bytes: u64,
    out_packets: u64,
    out_tcp: u64,
    first_ns: u64,
    last_ns: u64,
    /// Attack slots profiling this host's inbound packets: host attack, prefix attack.
    slots: [u32; 2],
}

impl HostSecond {
    fn new(key: u128) -> Self {
        HostSecond {
            key,
            packets: [0; Class::COUNT],
            amp: [0; AMP],
            bytes: 0,
            out_packets: 0,
            out_tcp: 0,
            first_ns: u64::MAX,
            last_ns: 0,
            slots: [NO_SLOT; 2],
        }
    }
}

/// Counters of one open second.
#[derive(Debug, Default)]
struct Bucket {
    index: FastMap<u128, u32>,
    hosts: Vec<HostSecond>,
    /// Hosts beyond `max_hosts`, summed per prefix.
    overflow: FastMap<u128, HostSecond>,
}

impl Bucket {
    fn clear(&mut self) {
        self.index.clear();
        self.hosts.clear();
        self.overflow.clear();
    }
}

/// One second of a target's inbound traffic, as evaluated.
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    packets: [u64; Class::COUNT],
    amp: [u64; AMP],
    /// Inbound packets and bytes after the ACK exemption.
    total: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
    /// Prefix aggregates: hosts contributing and the busiest one's packets.
    hosts: u64,
    max_host: u64,
}

impl Metrics {
    fn of_host(h: &HostSecond) -> Metrics {
        let mut packets = h.packets;
        // ACKs answering the host's own outbound TCP (uploads, downloads by clients) are the
        // other half of a legitimate transfer, not a flood.
        let exempt = packets[Class::TcpAck.index()].min(h.out_tcp);
        packets[Class::TcpAck.index()] -= exempt;
        let total = packets.iter().sum::<u64>();
        Metrics {
            packets,
            amp: h.amp,
            total,
            bytes: h.bytes,
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            hosts: 1,
            max_host: total,
        }
    }

    fn merge(&mut self, other: &Metrics) {
        for (a, b) in self.packets.iter_mut().zip(other.packets) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.amp.iter_mut().zip(other.amp) {
            *a = a.saturating_add(b);
        }
        self.total = self.total.saturating_add(other.total);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.hosts = self.hosts.saturating_add(other.hosts);
        self.max_host = self.max_host.max(other.max_host);
    }

    fn class(&self, c: Class) -> u64 {
        self.packets[c.index()]
    }

    fn tcp(&self) -> u64 {
        self.class(Class::TcpSyn)
            + self.class(Class::TcpAck)
            + self.class(Class::TcpRst)
            + self.class(Class::TcpOther)
    }

    fn bps(&self) -> u64 {
        self.bytes.saturating_mul(8)
    }

    /// Host counters over their thresholds: (counter, value, threshold).
    fn crossed_host(&self, t: &Thresholds) -> Vec<(&'static str, u64, u64)> {
        let amp: u64 = self.amp.iter().sum();
        [
            ("pps", self.total, t.pps),
            ("bps", self.bps(), t.bps),
            ("tcp_pps", self.tcp(), t.tcp_pps),
            ("tcp_syn_pps", self.class(Class::TcpSyn), t.tcp_syn_pps),
            ("tcp_ack_pps", self.class(Class::TcpAck), t.tcp_ack_pps),
            ("tcp_rst_pps", self.class(Class::TcpRst), t.tcp_rst_pps),
            ("udp_pps", self.class(Class::Udp), t.udp_pps),
            ("icmp_pps", self.class(Class::Icmp), t.icmp_pps),
            ("fragment_pps", self.class(Class::Fragment), t.fragment_pps),
            ("amplification_pps", amp, t.amplification_pps),
        ]
        .into_iter()
        .filter(|&(_, value, threshold)| value > threshold)
        .collect()
    }

    /// Prefix counters over threshold, when no single host carries half the traffic (else it
    /// is that host's business, not carpet bombing).
    fn crossed_prefix(&self, t: &Thresholds) -> Vec<(&'static str, u64, u64)> {
        if self.hosts < 2 || self.max_host.saturating_mul(2) > self.total {
            return Vec::new();
        }
        [("prefix_pps", self.total, t.pps), ("prefix_bps", self.bps(), t.bps)]
            .into_iter()
            .filter(|&(_, value, threshold)| value > threshold)
            .collect()
    }

    /// Vectors explaining this second: classes whose own counter crossed, and the class(es)
    /// making up the bulk of the traffic; reflector ports turn UDP and fragments into the
    /// amplification vector.
    fn vectors(&self, crossed: &[(&'static str, u64, u64)], into: &mut BTreeSet<Vector>) {
        let mut v = BTreeSet::new();
        let tcp = self.tcp();
        let dominant_tcp = || {
            [Class::TcpSyn, Class::TcpAck, Class::TcpRst]
                .into_iter()
                .find(|&c| self.class(c).saturating_mul(2) >= tcp.max(1))
                .map_or(Vector::TcpFlood, Class::vector)
        };
        for &(counter, _, _) in crossed {
            match counter {
                "tcp_pps" => {
                    v.insert(dominant_tcp());
                }
                "tcp_syn_pps" => {
                    v.insert(Vector::SynFlood);
                }
                "tcp_ack_pps" => {
                    v.insert(Vector::AckFlood);
                }
                "tcp_rst_pps" => {
                    v.insert(Vector::RstFlood);
                }
                "udp_pps" | "amplification_pps" => {
                    v.insert(Vector::UdpFlood);
                }
                "icmp_pps" => {
                    v.insert(Vector::IcmpFlood);
                }
                "fragment_pps" => {
                    v.insert(Vector::IpFragmentFlood);
                }
                _ => {}
            }
        }
        // Bulk: the class holding at least half of the packets, else TCP as a whole, else the
        // largest class.
        let largest = Class::ALL.into_iter().max_by_key(|&c| (self.class(c), std::cmp::Reverse(c.index())));
        if let Some(c) = largest
            && self.total > 0
        {
            if self.class(c).saturating_mul(2) >= self.total {
                v.insert(c.vector());
            } else if tcp.saturating_mul(2) >= self.total {
                v.insert(dominant_tcp());
            } else if v.is_empty() {
                v.insert(c.vector());
            }
        }
        let amp: u64 = self.amp.iter().sum();
        let udp = self.class(Class::Udp);
        let udp_like = udp + self.class(Class::Fragment);
        if amp > 0 && amp.saturating_mul(2) >= udp && udp_like.saturating_mul(2) >= self.total {
            let (i, _) = self
                .amp
                .iter()
                .enumerate()
                .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))
                .unwrap_or((0, &0));
            v.remove(&Vector::UdpFlood);
            v.remove(&Vector::IpFragmentFlood);
            if let Some(&(_, vector)) = AMPLIFICATION_PORTS.get(i) {
                v.insert(vector);
            }
        }
        into.extend(v);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Target {
    key: u128,
    /// Prefix length in the u128 space (128 for a host).
    len: u8,
}

impl Target {
    fn kind(self) -> TargetKind {
        if self.len == 128 { TargetKind::Host } else { TargetKind::Prefix }
    }

    fn net(self) -> IpNet {
        match ip_of(self.key) {
            IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, self.len.saturating_sub(96)).unwrap_or_default()),
            IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, self.len).unwrap_or_default()),
        }
    }

    fn name(self) -> String {
        match self.kind() {
            TargetKind::Host => ip_of(self.key).to_string(),
            TargetKind::Prefix => self.net().to_string(),
        }
    }
}

/// A target over threshold (candidate) or under attack.
#[derive(Debug)]
struct TargetState {
    streak: u32,
    first_over: u64,
    first_ns: u64,
    last_over: u64,
    trigger: Trigger,
    /// Traffic of the seconds over threshold so far (candidate) or of the attack.
    packets: u64,
    bytes: u64,
    /// Traffic of seconds under threshold since the last one over: part of the attack only if
    /// another second over threshold follows.
    pending_packets: u64,
    pending_bytes: u64,
    vectors: BTreeSet<Vector>,
    current_pps: u64,
    current_bps: u64,
    peak_pps: u64,
    peak_bps: u64,
    end_ns: u64,
    /// Set once the onset was reported.
    attack: Option<AttackSlot>,
}

#[derive(Debug, Clone, Copy)]
struct AttackSlot {
    id: u64,
    slot: u32,
    reported_peak_pps: u64,
    reported_peak_bps: u64,
    reported_vectors: usize,
}

/// An attack's profile: `kept` covers its seconds over threshold; `staged` collects the
/// current second, kept only if that second turns out over threshold too (so background
/// traffic in the quiet tail does not blur the signature).
#[derive(Debug, Default)]
struct AttackProfile {
    kept: Profile,
    staged: Profile,
}

/// Engine counters, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub records: u64,
    /// Records neither to nor from a protected network.
    pub transit_records: u64,
    /// Records whose second was already closed when they arrived (counted in the oldest open
    /// second).
    pub late_shares: u64,
    /// Hosts beyond `max_hosts` in a second (counted in their prefix only).
    pub overflow_hosts: u64,
    /// Shares lost because the prefix overflow table was full too.
    pub dropped_shares: u64,
    /// Candidates not tracked because `max_attacks` targets were already tracked.
    pub dropped_candidates: u64,
    /// Most hosts tracked in one second.
    pub peak_hosts: u64,
    pub attacks: u64,
}

/// Detection engine. See the crate documentation.
#[derive(Debug)]
pub struct Engine {
    config: DetectConfig,
    protected: Vec<(u128, u128)>,
    v4_prefix_mask: u128,
    v6_prefix_mask: u128,
    /// First second not yet closed (`None` before any input).
    open: Option<u64>,
    /// `buckets[i]` holds second `open + i`.
    buckets: VecDeque<Bucket>,
    pool: Vec<Bucket>,
    targets: FastMap<Target, TargetState>,
    /// Profiles of reported attacks; `None` = free.
    profiles: Vec<Option<Box<AttackProfile>>>,
    active_attacks: usize,
    next_id: u64,
    hasher: foldhash::fast::FixedState,
    /// Fast path: the last (bucket, host key, index) touched.
    last: Option<(usize, u128, u32)>,
    stats: EngineStats,
}

/// "; threat level high (vote on sanctions): thresholds at 50 %" when the level was raised.
fn threat_note(threat: &crate::threat::ThreatConfig, second: u64) -> String {
    let (level, window) = threat.level_at(second);
    if level == crate::threat::ThreatLevel::Normal {
        return String::new();
    }
    let reason =
        window.filter(|w| !w.reason.is_empty()).map(|w| format!(" ({})", w.reason)).unwrap_or_default();
    format!("; threat level {}{reason}: thresholds at {} %", level.name(), threat.percent(level))
}

impl Engine {
    /// Sets the threat level outside scheduled windows (an operator raising sensitivity by
    /// hand); it applies from the next second closed.
    pub fn set_threat_level(&mut self, level: crate::threat::ThreatLevel) {
        self.config.threat.level = level;
    }

    pub fn new(config: DetectConfig) -> Self {
        let protected = config.protected.iter().map(net_key).collect();
        let v4_prefix_mask = mask(96 + u32::from(config.aggregation.ipv4_prefix_len));
        let v6_prefix_mask = mask(u32::from(config.aggregation.ipv6_prefix_len));
        Engine {
            config,
            protected,
            v4_prefix_mask,
            v6_prefix_mask,
            open: None,
            buckets: VecDeque::new(),
            pool: Vec::new(),
            targets: FastMap::default(),
            profiles: Vec::new(),
            active_attacks: 0,
            next_id: 1,
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
            last: None,
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Approximate bytes of state per host tracked in one second (counters plus index entry).
    pub const fn bytes_per_tracked_host() -> usize {
        std::mem::size_of::<HostSecond>() + std::mem::size_of::<(u128, u32)>() + 1
    }

    #[inline]
    fn is_protected(&self, key: u128) -> bool {
        self.protected.iter().any(|&(net, m)| key & m == net)
    }

    #[inline]
    fn prefix_of(&self, key: u128) -> Target {
        if is_v4_key(key) {
            Target { key: key & self.v4_prefix_mask, len: 96 + self.config.aggregation.ipv4_prefix_len }
        } else {
            Target { key: key & self.v6_prefix_mask, len: self.config.aggregation.ipv6_prefix_len }
        }
    }

    /// Counts one record. Inbound when its destination is protected (or nothing is), outbound
    /// when only its source is; transit records are ignored.
    pub fn observe(&mut self, record: &TrafficRecord) {
        self.stats.records += 1;
        let dst = key_of(record.dst);
        let (host, direction) = if self.protected.is_empty() || self.is_protected(dst) {
            (dst, Direction::Inbound)
        } else {
            let src = key_of(record.src);
            if self.is_protected(src) {
                (src, Direction::Outbound)
            } else {
                self.stats.transit_records += 1;
                return;
            }
        };
        let rate = u64::from(record.sampling_rate.max(1));
        let first = record.start.secs();
        if record.end.secs() <= first {
            self.add(first, host, direction, record, record.scaled_packets(), record.scaled_bytes());
        } else {
            for share in spread_per_second(record) {
                if share.packets > 0 || share.bytes > 0 {
                    let (p, b) = (share.packets.saturating_mul(rate), share.bytes.saturating_mul(rate));
                    self.add(share.second, host, direction, record, p, b);
                }
            }
        }
    }

    #[inline]
    fn add(
        &mut self,
        second: u64,
        host: u128,
        direction: Direction,
        record: &TrafficRecord,
        packets: u64,
        bytes: u64,
    ) {
        let open = *self.open.get_or_insert(second);
        let offset = if second < open {
            self.stats.late_shares += 1;
            0
        } else {
            (second - open).min(MAX_OPEN_SECS - 1) as usize
        };
        while self.buckets.len() <= offset {
            let bucket = self.pool.pop().unwrap_or_default();
            self.buckets.push_back(bucket);
        }
        let index = match self.last {
            Some((b, k, i)) if b == offset && k == host => Some(i),
            _ => self.host_index(offset, host),
        };
        // Times as seen in the bucket's own second (late and spread records are clamped).
        let bucket_start = (open + offset as u64).saturating_mul(UnixNanos::NANOS_PER_SEC);
        let bucket_end = bucket_start.saturating_add(UnixNanos::NANOS_PER_SEC - 1);
        let first_ns = record.start.0.clamp(bucket_start, bucket_end);
        let last_ns = record.end.0.clamp(bucket_start, bucket_end);
        let (class, amp) = classify(record);
        let entry = match index {
            Some(i) => {
                self.last = Some((offset, host, i));
                match self.buckets.get_mut(offset).and_then(|b| b.hosts.get_mut(i as usize)) {
                    Some(e) => e,
                    None => return,
                }
            }
            None => {
                let prefix = self.prefix_of(host).key;
                let max_prefixes = self.config.limits.max_prefixes;
                let Some(bucket) = self.buckets.get_mut(offset) else { return };
                if bucket.overflow.len() >= max_prefixes && !bucket.overflow.contains_key(&prefix) {
                    self.stats.dropped_shares += 1;
                    return;
                }
                bucket.overflow.entry(prefix).or_insert_with(|| HostSecond::new(prefix))
            }
        };
        entry.first_ns = entry.first_ns.min(first_ns);
        entry.last_ns = entry.last_ns.max(last_ns);
        match direction {
            Direction::Inbound => {
                let c = &mut entry.packets[class.index()];
                *c = c.saturating_add(packets);
                entry.bytes = entry.bytes.saturating_add(bytes);
                if let Some(a) = amp {
                    entry.amp[a] = entry.amp[a].saturating_add(packets);
                }
                let slots = entry.slots;
                for slot in slots {
                    if slot != NO_SLOT
                        && let Some(Some(profile)) = self.profiles.get_mut(slot as usize)
                    {
                        profile.staged.add(record, packets, bytes, &self.hasher);
                    }
                }
            }
            Direction::Outbound => {
                entry.out_packets = entry.out_packets.saturating_add(packets);
                if record.protocol == crate::class::PROTO_TCP {
                    entry.out_tcp = entry.out_tcp.saturating_add(packets);
                }
            }
        }
    }

    /// Index of `host` in bucket `offset`, inserting it; `None` when the bucket is full.
    fn host_index(&mut self, offset: usize, host: u128) -> Option<u32> {
        let max_hosts = self.config.limits.max_hosts;
        let bucket = self.buckets.get(offset)?;
        if let Some(&i) = bucket.index.get(&host) {
            return Some(i);
        }
        if bucket.hosts.len() >= max_hosts {
            self.stats.overflow_hosts += 1;
            return None;
        }
        let mut entry = HostSecond::new(host);
        if self.active_attacks > 0 {
            let slot_of = |t: Target| self.targets.get(&t).and_then(|s| s.attack).map_or(NO_SLOT, |a| a.slot);
            entry.slots = [slot_of(Target { key: host, len: 128 }), slot_of(self.prefix_of(host))];
        }
        let bucket = self.buckets.get_mut(offset)?;
        let i = u32::try_from(bucket.hosts.len()).ok()?;
        bucket.hosts.push(entry);
        bucket.index.insert(host, i);
        self.stats.peak_hosts = self.stats.peak_hosts.max(bucket.hosts.len() as u64);
        Some(i)
    }

    /// Closes every whole second before `now` and returns the events they produced.
    pub fn advance(&mut self, now: UnixNanos) -> Vec<AttackEvent> {
        let mut events = Vec::new();
        let until = now.secs();
        let Some(mut open) = self.open else {
            self.open = Some(until);
            return events;
        };
        while open < until {
            if self.buckets.is_empty() && self.targets.is_empty() {
                open = until;
                break;
            }
            self.close_second(open, &mut events);
            open += 1;
            self.open = Some(open);
        }
        self.open = Some(open);
        events
    }

    /// Closes every open second and ends every attack (end of the input).
    pub fn finish(&mut self) -> Vec<AttackEvent> {
        let mut events = Vec::new();
        if let Some(mut open) = self.open {
            while !self.buckets.is_empty() {
                self.close_second(open, &mut events);
                open += 1;
            }
            self.open = Some(open);
        }
        let mut targets: Vec<Target> = self.targets.keys().copied().collect();
        targets.sort();
        for target in targets {
            if let Some(state) = self.targets.remove(&target)
                && state.attack.is_some()
            {
                events.push(self.end_event(target, state));
            }
        }
        events
    }

    fn close_second(&mut self, second: u64, events: &mut Vec<AttackEvent>) {
        self.last = None;
        let bucket = self.buckets.pop_front().unwrap_or_default();
        let mut evaluated: BTreeSet<Target> = BTreeSet::new();
        let mut prefixes: Vec<(Target, Metrics)> = Vec::new();
        let mut prefix_index: FastMap<Target, usize> = FastMap::default();
        let mut add_prefix = |this: &Self, target: Target, m: &Metrics| {
            if let Some(&i) = prefix_index.get(&target) {
                if let Some((_, agg)) = prefixes.get_mut(i) {
                    agg.merge(m);
                }
            } else if prefixes.len() < this.config.limits.max_prefixes {
                prefix_index.insert(target, prefixes.len());
                prefixes.push((target, *m));
            }
        };
        // A raised threat level scales every threshold down for this second.
        let percent = self.config.threat.percent(self.config.threat.level_at(second).0);
        for host in &bucket.hosts {
            let m = Metrics::of_host(host);
            if m.total == 0 {
                continue;
            }
            let target = Target { key: host.key, len: 128 };
            let thresholds = if self.config.groups.is_empty() {
                &self.config.thresholds
            } else {
                self.config.host_thresholds(ip_of(host.key))
            };
            let scaled;
            let thresholds = if percent == 100 {
                thresholds
            } else {
                scaled = thresholds.scaled(percent);
                &scaled
            };
            let crossed = m.crossed_host(thresholds);
            let host_attack = self.targets.get(&target).is_some_and(|s| s.attack.is_some());
            if crossed.is_empty() && !host_attack {
                add_prefix(self, self.prefix_of(host.key), &m);
            }
            if !crossed.is_empty() || self.targets.contains_key(&target) {
                evaluated.insert(target);
                self.evaluate(target, second, &m, &crossed, events);
            }
        }
        // Sorted so that event order and attack ids never depend on hash order.
        let mut overflow: Vec<(&u128, &HostSecond)> = bucket.overflow.iter().collect();
        overflow.sort_unstable_by_key(|(k, _)| **k);
        for (&prefix_key, agg) in overflow {
            let mut m = Metrics::of_host(agg);
            // Unknown spread over hosts: assume many.
            m.hosts = u64::MAX / 2;
            m.max_host = 0;
            add_prefix(self, self.prefix_of(prefix_key), &m);
        }
        let prefix_thresholds = self.config.aggregation.thresholds.scaled(percent);
        for (target, m) in &prefixes {
            let crossed = m.crossed_prefix(&prefix_thresholds);
            if !crossed.is_empty() || self.targets.contains_key(target) {
                evaluated.insert(*target);
                self.evaluate(*target, second, m, &crossed, events);
            }
        }
        let mut silent: Vec<Target> =
            self.targets.keys().filter(|t| !evaluated.contains(t)).copied().collect();
        silent.sort();
        for target in silent {
            self.evaluate(target, second, &Metrics::default(), &[], events);
        }
        let mut bucket = bucket;
        bucket.clear();
        if self.pool.len() < 4 {
            self.pool.push(bucket);
        }
    }

    fn evaluate(
        &mut self,
        target: Target,
        second: u64,
        m: &Metrics,
        crossed: &[(&'static str, u64, u64)],
        events: &mut Vec<AttackEvent>,
    ) {
        let lifecycle = self.config.lifecycle;
        if crossed.is_empty() {
            let Some(state) = self.targets.get_mut(&target) else { return };
            if state.attack.is_none() {
                self.targets.remove(&target);
                return;
            }
            if let Some(a) = state.attack
                && let Some(Some(p)) = self.profiles.get_mut(a.slot as usize)
            {
                p.staged = Profile::default();
            }
            state.pending_packets = state.pending_packets.saturating_add(m.total);
            state.pending_bytes = state.pending_bytes.saturating_add(m.bytes);
            if second.saturating_sub(state.last_over) >= u64::from(lifecycle.quiet_secs)
                && let Some(state) = self.targets.remove(&target)
            {
                events.push(self.end_event(target, state));
            }
            return;
        }
        if !self.targets.contains_key(&target) && self.targets.len() >= self.config.limits.max_attacks {
            self.stats.dropped_candidates += 1;
            return;
        }
        let (counter, value, threshold) = crossed[0];
        let state = self.targets.entry(target).or_insert_with(|| TargetState {
            streak: 0,
            first_over: second,
            first_ns: m.first_ns,
            last_over: second,
            trigger: Trigger { counter, value, threshold, since: second },
            packets: 0,
            bytes: 0,
            pending_packets: 0,
            pending_bytes: 0,
            vectors: BTreeSet::new(),
            current_pps: 0,
            current_bps: 0,
            peak_pps: 0,
            peak_bps: 0,
            end_ns: m.last_ns,
            attack: None,
        });
        if state.attack.is_none() && (state.streak == 0 || state.last_over + 1 != second) {
            // A new run of seconds over threshold.
            state.streak = 0;
            state.first_over = second;
            state.first_ns = m.first_ns;
            state.trigger = Trigger { counter, value, threshold, since: second };
            state.packets = 0;
            state.bytes = 0;
            state.vectors.clear();
            state.peak_pps = 0;
            state.peak_bps = 0;
        }
        if let Some(a) = state.attack
            && let Some(Some(p)) = self.profiles.get_mut(a.slot as usize)
        {
            let staged = std::mem::take(&mut p.staged);
            p.kept.merge(&staged);
        }
        state.streak += 1;
        state.last_over = second;
        state.end_ns = m.last_ns;
        state.packets = state.packets.saturating_add(state.pending_packets).saturating_add(m.total);
        state.bytes = state.bytes.saturating_add(state.pending_bytes).saturating_add(m.bytes);
        state.pending_packets = 0;
        state.pending_bytes = 0;
        state.current_pps = m.total;
        state.current_bps = m.bps();
        state.peak_pps = state.peak_pps.max(m.total);
        state.peak_bps = state.peak_bps.max(m.bps());
        if target.kind() == TargetKind::Prefix {
            state.vectors.insert(Vector::CarpetBombing);
        }
        m.vectors(crossed, &mut state.vectors);
        match state.attack {
            None if state.streak >= lifecycle.onset_secs => {
                let slot = match self.profiles.iter().position(Option::is_none) {
                    Some(free) => free,
                    None => {
                        self.profiles.push(None);
                        self.profiles.len() - 1
                    }
                };
                if let Some(p) = self.profiles.get_mut(slot) {
                    *p = Some(Box::default());
                }
                let id = self.next_id;
                self.next_id += 1;
                self.active_attacks += 1;
                self.stats.attacks += 1;
                let attack = AttackSlot {
                    id,
                    slot: slot as u32,
                    reported_peak_pps: state.peak_pps,
                    reported_peak_bps: state.peak_bps,
                    reported_vectors: state.vectors.len(),
                };
                state.attack = Some(attack);
                let event = self.event(EventKind::Onset, target);
                events.extend(event);
            }
            Some(mut a) => {
                let grew = |now: u64, before: u64| now as f64 >= before as f64 * 1.1 && now > before;
                if state.vectors.len() != a.reported_vectors
                    || grew(state.peak_pps, a.reported_peak_pps)
                    || grew(state.peak_bps, a.reported_peak_bps)
                {
                    a.reported_vectors = state.vectors.len();
                    a.reported_peak_pps = state.peak_pps;
                    a.reported_peak_bps = state.peak_bps;
                    state.attack = Some(a);
                    let event = self.event(EventKind::Update, target);
                    events.extend(event);
                }
            }
            None => {}
        }
    }

    fn event(&self, kind: EventKind, target: Target) -> Option<AttackEvent> {
        let state = self.targets.get(&target)?;
        Some(AttackEvent { kind, attack: self.snapshot(target, state) })
    }

    fn end_event(&mut self, target: Target, state: TargetState) -> AttackEvent {
        let event = AttackEvent { kind: EventKind::End, attack: self.snapshot(target, &state) };
        if let Some(a) = state.attack
            && let Some(p) = self.profiles.get_mut(a.slot as usize)
        {
            *p = None;
            self.active_attacks = self.active_attacks.saturating_sub(1);
        }
        event
    }

    fn snapshot(&self, target: Target, state: &TargetState) -> Attack {
        let empty = Profile::default();
        let profile = state
            .attack
            .and_then(|a| self.profiles.get(a.slot as usize))
            .and_then(|p| p.as_deref())
            .map_or(&empty, |p| &p.kept);
        let t = &state.trigger;
        let scope = match target.kind() {
            TargetKind::Host => "host",
            TargetKind::Prefix => "prefix (hosts each under their own thresholds)",
        };
        let explanation = format!(
            "inbound {} {} > threshold {} for {} since unix second {} ({} consecutive second{} needed)",
            t.counter,
            t.value,
            t.threshold,
            scope,
            t.since,
            self.config.lifecycle.onset_secs,
            if self.config.lifecycle.onset_secs == 1 { "" } else { "s" }
        ) + &threat_note(&self.config.threat, t.since);
        Attack {
            id: state.attack.map_or(0, |a| a.id),
            target: target.name(),
            target_kind: target.kind(),
            direction: Direction::Inbound,
            vectors: state.vectors.iter().copied().collect(),
            start: UnixNanos(state.first_ns.max(state.first_over.saturating_mul(UnixNanos::NANOS_PER_SEC)))
                .as_secs_f64(),
            end: UnixNanos(state.end_ns).as_secs_f64(),
            current_pps: state.current_pps,
            current_bps: state.current_bps,
            peak_pps: state.peak_pps,
            peak_bps: state.peak_bps,
            packets: state.packets,
            bytes: state.bytes,
            explanation,
            trigger: state.trigger.clone(),
            distinct_sources: profile.distinct_sources(),
            top_src_ports: profile.top_src_ports(TOP_N),
            top_dst_ports: profile.top_dst_ports(TOP_N),
            protocols: profile.protocol_mix(),
            tcp_flags: profile.tcp_flag_mix(TOP_N),
            ttls: profile.ttl_distribution(TOP_N),
            packet_lengths: profile.length_distribution(),
            signature: profile.signature(target.net()),
        }
    }
}

/// The hasher used for source addresses, exposed for tests of determinism.
#[doc(hidden)]
pub fn source_hash(ip: IpAddr) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rampart_telemetry::Fragment;

    const T0: u64 = 1_767_225_600;

    fn config(text: &str) -> DetectConfig {
        DetectConfig::from_toml_str(text, "t.toml").unwrap()
    }

    fn protected() -> DetectConfig {
        config("protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 200\n")
    }

    fn packet(ns: u64, src: [u8; 4], dst: [u8; 4], protocol: u8, flags: u8) -> TrafficRecord {
        TrafficRecord {
            start: UnixNanos(ns),
            end: UnixNanos(ns),
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            protocol,
            src_port: Some(1234),
            dst_port: Some(80),
            tcp_flags: flags,
            packets: 1,
            bytes: 60,
            packet_len: Some(60),
            ..TrafficRecord::EMPTY
        }
    }

    /// Feeds `pps` packets per second for `secs` seconds from `first` (unix second) through
    /// `make(ns, i)`, then finishes; returns every event.
    fn feed(
        engine: &mut Engine,
        first: u64,
        secs: u64,
        pps: u64,
        make: impl Fn(u64, u64) -> TrafficRecord,
    ) -> Vec<AttackEvent> {
        let mut events = Vec::new();
        for s in first..first + secs {
            for i in 0..pps {
                let ns = s * 1_000_000_000 + i * (1_000_000_000 / pps);
                let r = make(ns, i);
                events.extend(engine.advance(r.start));
                engine.observe(&r);
            }
        }
        events
    }

    #[test]
    fn threat_windows_and_manual_level_scale_thresholds() {
        // 70 pps against a 100 pps threshold: quiet at normal, an attack at high (50 %).
        let window = String::from(
            "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 200\n\
             [[threat.window]]\nlevel = \"high\"\nfrom = \"2026-01-01T00:00:10Z\"\n\
             until = \"2026-01-01T00:00:20Z\"\nreason = \"vote on sanctions\"\n",
        );
        let flood = |ns, i: u64| packet(ns, [10, 0, 0, i as u8], [198, 51, 100, 7], 17, 0);
        let mut engine = Engine::new(config(&window));
        assert!(feed(&mut engine, T0, 5, 70, flood).is_empty(), "outside the window: under threshold");
        let mut engine = Engine::new(config(&window));
        let events = feed(&mut engine, T0 + 12, 5, 70, flood);
        assert_eq!(events.first().map(|e| e.kind), Some(EventKind::Onset));
        let explanation = &events[0].attack.explanation;
        assert!(explanation.contains("pps 70 > threshold 50"), "{explanation}");
        assert!(
            explanation.contains("threat level high (vote on sanctions): thresholds at 50 %"),
            "{explanation}"
        );

        let mut engine = Engine::new(protected());
        engine.set_threat_level(crate::threat::ThreatLevel::Elevated);
        let events = feed(&mut engine, T0, 5, 80, flood);
        assert!(events[0].attack.explanation.contains("threshold 70"), "{}", events[0].attack.explanation);
    }

    #[test]
    fn flood_onset_and_end_after_quiet() {
        let mut engine = Engine::new(protected());
        let mut events = feed(&mut engine, T0, 5, 500, |ns, i| {
            packet(ns, [10, 0, 0, i as u8], [198, 51, 100, 7], 6, 0x02)
        });
        // Still ongoing five seconds after the last packet (quiet is 10 s) ...
        events.extend(engine.advance(UnixNanos::from_secs(T0 + 10)));
        assert_eq!(events.iter().filter(|e| e.kind == EventKind::End).count(), 0);
        // ... and over after ten.
        events.extend(engine.advance(UnixNanos::from_secs(T0 + 16)));
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Onset, EventKind::End]);
        let a = &events[1].attack;
        assert_eq!((a.target.as_str(), a.vectors.as_slice()), ("198.51.100.7", &[Vector::SynFlood][..]));
        assert_eq!((a.start, a.packets, a.peak_pps), (T0 as f64, 2500, 500));
        assert!(a.end > (T0 + 4) as f64 && a.end < (T0 + 5) as f64);
        assert_eq!(a.trigger.counter, "pps");
        assert!(a.explanation.contains("pps 500 > threshold 100"), "{}", a.explanation);
        // Fingerprint distributions: all SYN, all 60 bytes (the 48..63 bucket), no TTL known.
        assert_eq!(a.tcp_flags.iter().map(|s| (s.value, s.percent)).collect::<Vec<_>>(), [(0x02, 100.0)]);
        assert_eq!(a.packet_lengths.iter().map(|s| (s.value, s.percent)).collect::<Vec<_>>(), [(48, 100.0)]);
        assert!(a.ttls.is_empty());
        assert!(engine.finish().is_empty());
        assert!(engine.targets.is_empty() && engine.active_attacks == 0);
    }

    #[test]
    fn onset_needs_consecutive_seconds() {
        let mut c = protected();
        c.lifecycle.onset_secs = 3;
        let mut engine = Engine::new(c);
        let make = |ns, _| packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0);
        let mut events = feed(&mut engine, T0, 2, 500, make);
        events.extend(feed(&mut engine, T0 + 3, 2, 500, make));
        events.extend(engine.finish());
        assert!(events.is_empty(), "{events:#?}");
        let mut events = feed(&mut engine, T0 + 10, 3, 500, make);
        events.extend(engine.finish());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].attack.start, (T0 + 10) as f64);
    }

    #[test]
    fn outbound_traffic_never_raises_an_attack() {
        let mut engine = Engine::new(protected());
        // A protected server uploads 5000 pps to an outside client ...
        let mut events = feed(&mut engine, T0, 5, 5000, |ns, i| {
            if i % 3 == 2 {
                // ... whose ACKs come back at 1667 pps, over the 100 pps threshold, but answer
                // the upload.
                packet(ns, [203, 0, 113, 9], [198, 51, 100, 20], 6, 0x10)
            } else {
                packet(ns, [198, 51, 100, 20], [203, 0, 113, 9], 6, 0x18)
            }
        });
        events.extend(engine.finish());
        assert!(events.is_empty(), "{events:#?}");
        // Transit traffic is ignored.
        engine.observe(&packet(T0 * 1_000_000_000, [1, 1, 1, 1], [2, 2, 2, 2], 6, 0x02));
        assert_eq!(engine.stats().transit_records, 1);
    }

    #[test]
    fn carpet_bombing_goes_to_the_prefix() {
        let mut engine = Engine::new(protected());
        // 50 pps to each of 200 hosts: every host under 100, the /24 at 10 000.
        let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
            packet(ns, [10, 0, 0, 1], [198, 51, 100, (i % 200) as u8], 17, 0)
        });
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        let a = &ends[0].attack;
        assert_eq!((a.target.as_str(), a.target_kind), ("198.51.100.0/24", TargetKind::Prefix));
        assert_eq!(a.vectors, [Vector::UdpFlood, Vector::CarpetBombing]);
        assert_eq!(a.signature.dst_prefix, "198.51.100.0/24");
        assert_eq!(a.signature.protocol, Some(17));
    }

    #[test]
    fn amplification_and_fragments_make_one_vector() {
        let mut engine = Engine::new(protected());
        let mut events = feed(&mut engine, T0, 3, 3000, |ns, i| {
            let mut r = packet(ns, [192, 0, 2, (i % 50) as u8], [198, 51, 100, 9], 17, 0);
            r.src_port = Some(11211);
            if i % 3 != 0 {
                r.fragment = Fragment::NonInitial;
                r.src_port = None;
                r.dst_port = None;
            }
            r
        });
        events.extend(engine.finish());
        let a = &events.last().unwrap().attack;
        assert_eq!(a.vectors, [Vector::MemcachedAmplification]);
        assert!((40..=60).contains(&a.distinct_sources), "{}", a.distinct_sources);
    }

    #[test]
    fn flows_are_spread_over_their_duration() {
        let mut engine = Engine::new(protected());
        // One flow record: 1000 packets over 10 s is 100 pps, at the threshold, not over.
        let flow = TrafficRecord {
            start: UnixNanos::from_secs(T0),
            end: UnixNanos::from_secs(T0 + 10),
            packets: 1000,
            bytes: 60_000,
            ..packet(0, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0)
        };
        engine.observe(&flow);
        assert!(engine.finish().is_empty());
        // The same packets in one second are a flood.
        let mut engine = Engine::new(protected());
        engine.observe(&TrafficRecord { end: flow.start, ..flow });
        assert_eq!(engine.finish().len(), 2);
    }

    #[test]
    fn host_cap_sends_excess_hosts_to_their_prefix() {
        let mut c = protected();
        c.limits.max_hosts = 10;
        let mut engine = Engine::new(c);
        let mut events = feed(&mut engine, T0, 2, 10_000, |ns, i| {
            packet(ns, [10, 0, 0, 1], [198, 51, 100, (i % 250) as u8], 17, 0)
        });
        events.extend(engine.finish());
        assert!(engine.stats().peak_hosts <= 10);
        assert!(engine.stats().overflow_hosts > 0);
        assert!(events.iter().any(|e| e.attack.target == "198.51.100.0/24"), "{events:#?}");
    }

    #[test]
    fn pulses_with_short_gaps_are_one_attack() {
        let mut engine = Engine::new(protected());
        let mut events = Vec::new();
        for burst in 0..4 {
            let first = T0 + burst * 8;
            events.extend(feed(&mut engine, first, 3, 1000, |ns, _| {
                packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0)
            }));
        }
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).collect();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].attack.packets, 12_000);
    }

    fn arb_record() -> impl Strategy<Value = TrafficRecord> {
        (
            0u64..40,
            0u64..3_000_000_000,
            any::<[u8; 4]>(),
            any::<u8>(),
            prop_oneof![Just(6u8), Just(17), Just(1), Just(58), any::<u8>()],
            any::<u8>(),
            any::<Option<u16>>(),
            0u64..1000,
            any::<u64>(),
            prop_oneof![Just(1u32), any::<u32>()],
            any::<bool>(),
        )
            .prop_map(|(s, dur, src, dst_low, protocol, flags, port, packets, bytes, rate, frag)| {
                let start = UnixNanos((T0 + s) * 1_000_000_000);
                TrafficRecord {
                    start,
                    end: UnixNanos(start.0 + dur),
                    src: IpAddr::from(src),
                    dst: IpAddr::from([198, 51, 100, dst_low]),
                    protocol,
                    src_port: port,
                    dst_port: port.map(|p| p.wrapping_add(1)),
                    tcp_flags: flags,
                    fragment: if frag { Fragment::NonInitial } else { Fragment::None },
                    packets,
                    bytes,
                    sampling_rate: rate,
                    packet_len: u32::try_from(bytes).ok(),
                    ..TrafficRecord::EMPTY
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any records, in any order, with any counts: no panic, every onset ends, state is
        /// released and the host cap holds.
        #[test]
        fn arbitrary_records_never_panic(records in prop::collection::vec(arb_record(), 0..200), cap in 1usize..20) {
            let mut c = protected();
            c.limits.max_hosts = cap;
            c.limits.max_prefixes = 2;
            c.limits.max_attacks = 3;
            let mut engine = Engine::new(c);
            let mut events = Vec::new();
            for r in &records {
                events.extend(engine.advance(r.start));
                engine.observe(r);
            }
            events.extend(engine.finish());
            let onsets = events.iter().filter(|e| e.kind == EventKind::Onset).count();
            let ends = events.iter().filter(|e| e.kind == EventKind::End).count();
            prop_assert_eq!(onsets, ends);
            prop_assert!(engine.stats().peak_hosts <= cap as u64);
            prop_assert!(engine.targets.is_empty());
            prop_assert_eq!(engine.active_attacks, 0);
            for e in &events {
                prop_assert!(e.attack.end >= e.attack.start - 1.0);
                prop_assert!(serde_json::to_string(&e.attack).is_ok());
            }
        }
    }
}
