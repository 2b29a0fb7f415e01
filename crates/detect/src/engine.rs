//! The detection engine: records in, per-second counters per protected host (inbound and
//! outbound), aggregates per prefix, IPv6 wide prefix, protected network and host group,
//! static and learned thresholds, attack lifecycle events out. Time is the records' event
//! time; `advance` closes seconds, nothing here reads a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rampart_telemetry::spread::spread_per_second;
use rampart_telemetry::{TrafficRecord, UnixNanos};
use serde::Serialize;

use crate::attack::{Attack, AttackEvent, AttackId, Direction, EventKind, Level, Metric, Trigger};
use crate::baseline::{Baseline, BaselineError, BaselineTable, Sample};
use crate::class::{
    AMPLIFICATION_PORTS, Class, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Vector, classify,
};
use crate::config::{DetectConfig, Policy, Thresholds};
use crate::flows::NewFlows;
use crate::profile::Profile;
use rampart_contract::{Collateral, FragmentMatch, Signature};
use rampart_contract::{EventTime, Target, ThreatContext};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Seconds ahead of the oldest open second that flow shares may land in; later shares are
/// counted in the last of them.
const MAX_OPEN_SECS: u64 = 120;
const NO_SLOT: u32 = u32::MAX;
const AMP: usize = AMPLIFICATION_PORTS.len();
/// Top ports and protocols listed per attack.
const TOP_N: usize = 5;
/// Baseline maintenance (eviction) period, seconds.
const MAINTAIN_EVERY_SECS: u64 = 60;

/// Profile slots of one host: the attacks its packets feed.
const SLOT_HOST: usize = 0;
const SLOT_PREFIX: usize = 1;
const SLOT_WIDE: usize = 2;
const SLOT_NETWORK: usize = 3;
const SLOT_GROUP: usize = 4;
const SLOT_OUTBOUND: usize = 5;
const SLOTS: usize = 6;

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

/// A network as (address key, mask, length) in the u128 space.
fn net_key(net: &IpNet) -> (u128, u128, u8) {
    match net {
        IpNet::V4(n) => {
            let len = 96 + n.prefix_len();
            let m = mask(u32::from(len));
            (key_of(IpAddr::V4(n.network())) & m, m, len)
        }
        IpNet::V6(n) => {
            let m = mask(u32::from(n.prefix_len()));
            (u128::from(n.network()) & m, m, n.prefix_len())
        }
    }
}

/// One direction of one host's traffic in one second. Packet counters are u32 (a host
/// receiving 4 billion packets in a second saturates, still far over any threshold) to keep
/// the per-host state small.
#[derive(Debug, Clone, Copy, Default)]
struct DirCounters {
    packets: [u32; Class::COUNT],
    amp: [u32; AMP],
    bytes: u64,
    flows: u32,
}

#[inline]
fn add_u32(counter: &mut u32, n: u64) {
    *counter = counter.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
}

impl DirCounters {
    #[inline]
    fn add(&mut self, class: Class, amp: Option<usize>, packets: u64, bytes: u64, flows: u64) {
        if let Some(c) = self.packets.get_mut(class.index()) {
            add_u32(c, packets);
        }
        if let Some(a) = amp.and_then(|a| self.amp.get_mut(a)) {
            add_u32(a, packets);
        }
        self.bytes = self.bytes.saturating_add(bytes);
        add_u32(&mut self.flows, flows);
    }

    fn tcp(&self) -> u64 {
        [Class::TcpSyn, Class::TcpAck, Class::TcpRst, Class::TcpOther]
            .into_iter()
            .map(|c| u64::from(self.packets[c.index()]))
            .sum()
    }

    fn total(&self) -> u64 {
        self.packets.iter().map(|&p| u64::from(p)).sum()
    }
}

/// Counters of one host (or, for overflow, one prefix) during one second.
#[derive(Debug, Clone)]
struct HostSecond {
    key: u128,
    inbound: DirCounters,
    outbound: DirCounters,
    first_ns: u64,
    last_ns: u64,
    /// Attacks profiling this host's packets, by `SLOT_*`.
    slots: [u32; SLOTS],
}

impl HostSecond {
    fn new(key: u128) -> Self {
        HostSecond {
            key,
            inbound: DirCounters::default(),
            outbound: DirCounters::default(),
            first_ns: u64::MAX,
            last_ns: 0,
            slots: [NO_SLOT; SLOTS],
        }
    }
}

/// Counters of one open second.
#[derive(Debug, Default)]
struct Bucket {
    index: FastMap<u128, u32>,
    hosts: Vec<HostSecond>,
    /// Hosts beyond `max_hosts`, summed per prefix (inbound only).
    overflow: FastMap<u128, HostSecond>,
}

impl Bucket {
    fn clear(&mut self) {
        self.index.clear();
        self.hosts.clear();
        self.overflow.clear();
    }
}

/// A counter over its limit: (counter, value, threshold, learned baseline). The level is the
/// evaluated target's.
type Crossing = (Metric, u64, u64, Option<f64>);

/// One second of a target's traffic in one direction, as evaluated.
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    packets: [u64; Class::COUNT],
    amp: [u64; AMP],
    /// Packets and bytes after the ACK exemption.
    total: u64,
    bytes: u64,
    flows: u64,
    first_ns: u64,
    last_ns: u64,
    /// Aggregates: hosts contributing and the busiest one's packets.
    hosts: u64,
    max_host: u64,
}

impl Metrics {
    /// `d`'s counters; ACKs up to `answered_tcp` (the TCP packets the host itself sent the
    /// other way) are the other half of a legitimate transfer, not a flood.
    fn of(d: &DirCounters, answered_tcp: u64, first_ns: u64, last_ns: u64) -> Metrics {
        let mut packets = [0u64; Class::COUNT];
        for (p, &c) in packets.iter_mut().zip(&d.packets) {
            *p = u64::from(c);
        }
        let mut amp = [0u64; AMP];
        for (a, &c) in amp.iter_mut().zip(&d.amp) {
            *a = u64::from(c);
        }
        let exempt = packets[Class::TcpAck.index()].min(answered_tcp);
        packets[Class::TcpAck.index()] -= exempt;
        let total = packets.iter().sum::<u64>();
        Metrics {
            packets,
            amp,
            total,
            bytes: d.bytes,
            flows: u64::from(d.flows),
            first_ns,
            last_ns,
            hosts: 1,
            max_host: total,
        }
    }

    fn inbound(h: &HostSecond) -> Metrics {
        Metrics::of(&h.inbound, h.outbound.tcp(), h.first_ns, h.last_ns)
    }

    fn outbound(h: &HostSecond) -> Metrics {
        Metrics::of(&h.outbound, h.inbound.tcp(), h.first_ns, h.last_ns)
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
        self.flows = self.flows.saturating_add(other.flows);
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

    fn sample(&self) -> Sample {
        Sample {
            pps: self.total,
            bps: self.bps(),
            flows: self.flows,
            classes: self.packets,
            amplification: self.amp.iter().sum(),
        }
    }

    /// Host counters over their thresholds.
    fn crossed_host(&self, t: &Thresholds) -> Vec<Crossing> {
        let amp: u64 = self.amp.iter().sum();
        [
            (Metric::Pps, self.total, t.pps),
            (Metric::Bps, self.bps(), t.bps),
            (Metric::NewFlows, self.flows, t.new_flows),
            (Metric::TcpPps, self.tcp(), t.tcp_pps),
            (Metric::TcpSynPps, self.class(Class::TcpSyn), t.tcp_syn_pps),
            (Metric::TcpAckPps, self.class(Class::TcpAck), t.tcp_ack_pps),
            (Metric::TcpRstPps, self.class(Class::TcpRst), t.tcp_rst_pps),
            (Metric::UdpPps, self.class(Class::Udp), t.udp_pps),
            (Metric::IcmpPps, self.class(Class::Icmp), t.icmp_pps),
            (Metric::FragmentPps, self.class(Class::Fragment), t.fragment_pps),
            (Metric::AmplificationPps, amp, t.amplification_pps),
        ]
        .into_iter()
        .filter(|&(_, value, threshold)| value > threshold)
        .map(|(counter, value, threshold)| (counter, value, threshold, None))
        .collect()
    }

    /// Whether many hosts share the traffic: no single host carries half of it (else it is
    /// that host's business, not carpet bombing).
    fn spread_over_hosts(&self) -> bool {
        self.hosts >= 2 && self.max_host.saturating_mul(2) <= self.total
    }

    /// Aggregate counters over threshold, when the traffic is spread over hosts.
    fn crossed_aggregate(&self, t: &Thresholds) -> Vec<Crossing> {
        if !self.spread_over_hosts() {
            return Vec::new();
        }
        [
            (Metric::Pps, self.total, t.pps),
            (Metric::Bps, self.bps(), t.bps),
            (Metric::NewFlows, self.flows, t.new_flows),
        ]
        .into_iter()
        .filter(|&(_, value, threshold)| value > threshold)
        .map(|(counter, value, threshold)| (counter, value, threshold, None))
        .collect()
    }

    /// Counters over their learned limits (see [`BaselineLimit`]).
    fn crossed_baseline(&self, b: &Baseline, limit: BaselineLimit) -> Vec<Crossing> {
        let [pps, bps, flows] = limit.of(b);
        [
            (Metric::Pps, self.total, pps, b.pps),
            (Metric::Bps, self.bps(), bps, b.bps),
            (Metric::NewFlows, self.flows, flows, b.flows),
        ]
        .into_iter()
        .filter(|&(_, value, threshold, _)| value > threshold)
        .map(|(counter, value, threshold, normal)| (counter, value, threshold, Some(normal)))
        .collect()
    }

    /// Vectors explaining this second: classes whose own counter crossed, and the class(es)
    /// making up the bulk of the traffic; reflector ports turn UDP and fragments into the
    /// amplification vector.
    fn vectors(&self, crossed: &[Crossing], into: &mut BTreeSet<Vector>) {
        let mut v = BTreeSet::new();
        let tcp = self.tcp();
        let dominant_tcp = || {
            [Class::TcpSyn, Class::TcpAck, Class::TcpRst]
                .into_iter()
                .find(|&c| self.class(c).saturating_mul(2) >= tcp.max(1))
                .map_or(Vector::TcpFlood, Class::vector)
        };
        for &(metric, _, _, _) in crossed {
            let vector = match metric {
                Metric::TcpPps => dominant_tcp(),
                Metric::TcpSynPps => Vector::SynFlood,
                Metric::TcpAckPps => Vector::AckFlood,
                Metric::TcpRstPps => Vector::RstFlood,
                Metric::UdpPps | Metric::AmplificationPps => Vector::UdpFlood,
                Metric::IcmpPps => Vector::IcmpFlood,
                Metric::FragmentPps => Vector::IpFragmentFlood,
                _ => continue,
            };
            v.insert(vector);
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

/// "Alert at `factor` times normal", never below absolute floors (so a host going from 2 to
/// 10 packets per second is not an attack).
#[derive(Debug, Clone, Copy)]
struct BaselineLimit {
    factor: f64,
    /// pps, bps, new flows per second.
    floors: [u64; 3],
}

impl BaselineLimit {
    /// The pps, bps and new-flows limits for baseline `b`.
    fn of(self, b: &Baseline) -> [u64; 3] {
        let limit = |normal: f64, floor: u64| {
            (normal * self.factor).ceil().max(floor as f64).min(u64::MAX as f64) as u64
        };
        [limit(b.pps, self.floors[0]), limit(b.bps, self.floors[1]), limit(b.flows, self.floors[2])]
    }
}

/// What an attack is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TargetKey {
    /// Inbound traffic to one host.
    Host(u128),
    /// Inbound traffic to the hosts of a prefix: (network key, length in the u128 space).
    Prefix(u128, u8),
    /// Inbound traffic to a host group (index into the configuration's groups).
    Group(u16),
    /// Outbound traffic from one protected host.
    Outbound(u128),
}

/// A network in the u128 space as an [`IpNet`].
fn net_of(key: u128, len: u8) -> IpNet {
    match ip_of(key) {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, len.saturating_sub(96)).unwrap_or_default()),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, len).unwrap_or_default()),
    }
}

fn host_net(key: u128) -> IpNet {
    net_of(key, 128)
}

impl TargetKey {
    /// The level its counters are evaluated at.
    fn level(self, config: &DetectConfig) -> Level {
        match self.slot(config) {
            SLOT_PREFIX => Level::Prefix,
            SLOT_WIDE => Level::WidePrefix,
            SLOT_NETWORK => Level::Network,
            SLOT_GROUP => Level::Group,
            _ => Level::Host,
        }
    }

    fn direction(self) -> Direction {
        if let TargetKey::Outbound(_) = self { Direction::Outbound } else { Direction::Inbound }
    }

    fn slot(self, config: &DetectConfig) -> usize {
        match self {
            TargetKey::Host(_) => SLOT_HOST,
            TargetKey::Outbound(_) => SLOT_OUTBOUND,
            TargetKey::Group(_) => SLOT_GROUP,
            TargetKey::Prefix(key, len) => {
                let agg = &config.aggregation;
                let first = if is_v4_key(key) { 96 + agg.ipv4_prefix_len } else { agg.ipv6_prefix_len };
                if len == first {
                    SLOT_PREFIX
                } else if !is_v4_key(key) && len == agg.ipv6_wide_prefix_len {
                    SLOT_WIDE
                } else {
                    SLOT_NETWORK
                }
            }
        }
    }
}

/// Packets, bits and new flows per second, in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficRates {
    pub inbound_pps: u64,
    pub inbound_bps: u64,
    pub inbound_flows: u64,
    pub outbound_pps: u64,
    pub outbound_bps: u64,
    pub outbound_flows: u64,
}

impl TrafficRates {
    fn add(&mut self, h: &HostSecond) {
        self.inbound_pps = self.inbound_pps.saturating_add(h.inbound.total());
        self.inbound_bps = self.inbound_bps.saturating_add(h.inbound.bytes.saturating_mul(8));
        self.inbound_flows = self.inbound_flows.saturating_add(u64::from(h.inbound.flows));
        self.outbound_pps = self.outbound_pps.saturating_add(h.outbound.total());
        self.outbound_bps = self.outbound_bps.saturating_add(h.outbound.bytes.saturating_mul(8));
        self.outbound_flows = self.outbound_flows.saturating_add(u64::from(h.outbound.flows));
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
    /// Hosts and groups with a learned baseline.
    pub baseline_keys: u64,
    /// Hosts not baselined because the baseline table was full.
    pub baseline_untracked: u64,
}

/// The baseline key of a group: a hash of its name in 100::/64 (RFC 6666, discard-only, never
/// a protected host), so a restored baseline follows the group even if the configuration
/// reorders groups.
fn group_baseline_key(name: &str) -> u128 {
    (0x0100u128 << 112) | u128::from(foldhash::fast::FixedState::with_seed(0x9e0).hash_one(name))
}

/// Detection engine. See the crate documentation.
#[derive(Debug)]
pub struct Engine {
    config: DetectConfig,
    /// Protected networks: (key, mask, length).
    protected: Vec<(u128, u128, u8)>,
    v4_prefix_mask: u128,
    v6_prefix_mask: u128,
    v6_wide_mask: u128,
    /// First second not yet closed (`None` before any input).
    open: Option<u64>,
    /// `buckets[i]` holds second `open + i`.
    buckets: VecDeque<Bucket>,
    pool: Vec<Bucket>,
    targets: FastMap<TargetKey, TargetState>,
    /// Profiles of reported attacks; `None` = free.
    profiles: Vec<Option<Box<AttackProfile>>>,
    active_attacks: usize,
    next_id: u64,
    hasher: foldhash::fast::FixedState,
    /// Fast path: the last (bucket, host key, index) touched.
    last: Option<(usize, u128, u32)>,
    flows: NewFlows,
    baselines: BaselineTable,
    group_keys: Vec<u128>,
    /// Rates of the last closed second: every protected host, and per group.
    total_rates: TrafficRates,
    group_rates: Vec<TrafficRates>,
    stats: EngineStats,
}

/// The raised threat level at `second`, if it is raised.
fn threat_context(threat: &crate::threat::ThreatConfig, second: u64) -> Option<ThreatContext> {
    let (level, window) = threat.level_at(second);
    (level != crate::threat::ThreatLevel::Normal).then(|| ThreatContext {
        level,
        reason: window.filter(|w| !w.reason.is_empty()).map(|w| w.reason.clone()),
        percent: threat.percent(level),
    })
}

impl Engine {
    /// An engine whose hashes of attacker-chosen values are keyed by a random seed.
    pub fn new(config: DetectConfig) -> Self {
        Self::with_seed(config, crate::flows::random_seed())
    }

    /// An engine whose hashes of attacker-chosen values (new-flow table, source sketches) are
    /// keyed by `seed`: deterministic, for tests and replays.
    pub fn with_seed(config: DetectConfig, seed: u64) -> Self {
        let protected = config.protected.iter().map(net_key).collect();
        let agg = &config.aggregation;
        let v4_prefix_mask = mask(96 + u32::from(agg.ipv4_prefix_len));
        let v6_prefix_mask = mask(u32::from(agg.ipv6_prefix_len));
        let v6_wide_mask = mask(u32::from(agg.ipv6_wide_prefix_len));
        let group_keys = config.groups.iter().map(|g| group_baseline_key(&g.name)).collect();
        Engine {
            protected,
            v4_prefix_mask,
            v6_prefix_mask,
            v6_wide_mask,
            open: None,
            buckets: VecDeque::new(),
            pool: Vec::new(),
            targets: FastMap::default(),
            profiles: Vec::new(),
            active_attacks: 0,
            next_id: 1,
            hasher: foldhash::fast::FixedState::with_seed(seed),
            last: None,
            // Its own key, so one table's layout tells nothing about the other's.
            flows: NewFlows::with_seed(config.limits.flow_table, seed.rotate_left(32) ^ 0xf10e),
            baselines: BaselineTable::new(config.baseline.clone()),
            group_keys,
            total_rates: TrafficRates::default(),
            group_rates: vec![TrafficRates::default(); config.groups.len()],
            stats: EngineStats::default(),
            config,
        }
    }

    /// Sets the threat level outside scheduled windows (an operator raising sensitivity by
    /// hand); it applies from the next second closed.
    pub fn set_threat_level(&mut self, level: crate::threat::ThreatLevel) {
        self.config.threat.level = level;
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Rates of the last closed second over every protected host.
    pub fn rates(&self) -> TrafficRates {
        self.total_rates
    }

    /// Rates of the last closed second per host group, in configuration order.
    pub fn group_rates(&self) -> impl Iterator<Item = (&str, TrafficRates)> {
        self.config.groups.iter().map(|g| g.name.as_str()).zip(self.group_rates.iter().copied())
    }

    /// The learned baselines, serialized for persistence across restarts.
    pub fn baseline_snapshot(&self) -> Vec<u8> {
        self.baselines.snapshot()
    }

    /// Replaces the learned baselines with a snapshot from [`Engine::baseline_snapshot`].
    pub fn restore_baselines(&mut self, bytes: &[u8]) -> Result<(), BaselineError> {
        self.baselines = BaselineTable::restore(self.config.baseline.clone(), bytes)?;
        self.stats.baseline_keys = self.baselines.len() as u64;
        Ok(())
    }

    /// The learned normal traffic of `host` at unix second `second`, once warmed up.
    pub fn baseline_of(&self, host: IpAddr, second: u64) -> Option<Baseline> {
        self.baselines.baseline(key_of(host), second)
    }

    /// Approximate bytes of state per host tracked in one second (counters plus index entry).
    pub const fn bytes_per_tracked_host() -> usize {
        std::mem::size_of::<HostSecond>() + std::mem::size_of::<(u128, u32)>() + 1
    }

    #[inline]
    fn is_protected(&self, key: u128) -> bool {
        self.protected.iter().any(|&(net, m, _)| key & m == net)
    }

    /// The first aggregate level of a host: its /24 or /64.
    #[inline]
    fn prefix_of(&self, key: u128) -> TargetKey {
        if is_v4_key(key) {
            TargetKey::Prefix(key & self.v4_prefix_mask, 96 + self.config.aggregation.ipv4_prefix_len)
        } else {
            TargetKey::Prefix(key & self.v6_prefix_mask, self.config.aggregation.ipv6_prefix_len)
        }
    }

    /// The aggregate above a prefix of length `len`: the IPv6 wide prefix, else the protected
    /// network holding it (when that is wider).
    fn parent_of(&self, key: u128, len: u8) -> Option<TargetKey> {
        // The narrowest protected network wider than `len`.
        let network = self
            .protected
            .iter()
            .filter(|&&(net, m, net_len)| key & m == net && net_len < len)
            .max_by_key(|&&(_, _, net_len)| net_len)
            .map(|&(net, _, net_len)| TargetKey::Prefix(net, net_len));
        let wide = self.config.aggregation.ipv6_wide_prefix_len;
        // The wide level sits between the prefix and the network, never beyond the network.
        let wide_fits = match network {
            Some(TargetKey::Prefix(_, net_len)) => net_len < wide,
            _ => self.protected.is_empty(),
        };
        if !is_v4_key(key) && wide > 0 && wide < len && wide_fits {
            return Some(TargetKey::Prefix(key & self.v6_wide_mask, wide));
        }
        network
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
        let new_flows = self.flows.count(record, first);
        if record.end.secs() <= first {
            let (p, b) = (record.scaled_packets(), record.scaled_bytes());
            self.add(first, host, direction, record, p, b, new_flows);
        } else {
            let mut flows = new_flows;
            for share in spread_per_second(record) {
                if share.packets > 0 || share.bytes > 0 {
                    let (p, b) = (share.packets.saturating_mul(rate), share.bytes.saturating_mul(rate));
                    // A flow is new once, in its first second.
                    self.add(share.second, host, direction, record, p, b, std::mem::take(&mut flows));
                }
            }
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        second: u64,
        host: u128,
        direction: Direction,
        record: &TrafficRecord,
        packets: u64,
        bytes: u64,
        flows: u64,
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
                // Overflow hosts only feed their prefix's inbound aggregate.
                if direction == Direction::Outbound {
                    self.stats.dropped_shares += 1;
                    return;
                }
                let TargetKey::Prefix(prefix, _) = self.prefix_of(host) else { return };
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
        let outbound = direction == Direction::Outbound;
        let counters = if outbound { &mut entry.outbound } else { &mut entry.inbound };
        counters.add(class, amp, packets, bytes, flows);
        let slots = entry.slots;
        let profiled = if outbound { &slots[SLOT_OUTBOUND..] } else { &slots[..SLOT_OUTBOUND] };
        for &slot in profiled {
            if slot != NO_SLOT
                && let Some(Some(profile)) = self.profiles.get_mut(slot as usize)
            {
                profile.staged.add(record, packets, bytes, outbound, &self.hasher);
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
            entry.slots = self.profile_slots(host);
        }
        let bucket = self.buckets.get_mut(offset)?;
        let i = u32::try_from(bucket.hosts.len()).ok()?;
        bucket.hosts.push(entry);
        bucket.index.insert(host, i);
        self.stats.peak_hosts = self.stats.peak_hosts.max(bucket.hosts.len() as u64);
        Some(i)
    }

    /// The attacks a host's packets feed, by `SLOT_*`.
    fn profile_slots(&self, host: u128) -> [u32; SLOTS] {
        let slot_of = |t: TargetKey| self.targets.get(&t).and_then(|s| s.attack).map_or(NO_SLOT, |a| a.slot);
        let mut slots = [NO_SLOT; SLOTS];
        slots[SLOT_HOST] = slot_of(TargetKey::Host(host));
        slots[SLOT_OUTBOUND] = slot_of(TargetKey::Outbound(host));
        let mut level = Some(self.prefix_of(host));
        while let Some(target @ TargetKey::Prefix(key, len)) = level {
            slots[target.slot(&self.config)] = slot_of(target);
            level = self.parent_of(key, len);
        }
        if !self.config.groups.is_empty()
            && let Some(g) = self.config.group_of(ip_of(host))
        {
            slots[SLOT_GROUP] = slot_of(TargetKey::Group(g as u16));
        }
        slots
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
                // Nothing to close: the seconds skipped had no traffic.
                self.total_rates = TrafficRates::default();
                self.group_rates.fill(TrafficRates::default());
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
        let mut targets: Vec<TargetKey> = self.targets.keys().copied().collect();
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

    /// `Some(true)` under attack, `Some(false)` a candidate, `None` untracked.
    fn tracked(&self, target: TargetKey) -> Option<bool> {
        self.targets.get(&target).map(|s| s.attack.is_some())
    }

    /// The "N times normal" limit for a group (or the default), scaled by the threat level: at
    /// 50 % a factor of 3 becomes 2, the floors halve.
    fn baseline_limit(&self, group: Option<usize>, percent: u8) -> BaselineLimit {
        let b = &self.config.baseline;
        let factor =
            group.and_then(|g| self.config.groups.get(g)).and_then(|g| g.baseline_factor).unwrap_or(b.factor);
        let scale = |v: u64| (u128::from(v) * u128::from(percent) / 100) as u64;
        BaselineLimit {
            factor: 1.0 + (factor - 1.0) * f64::from(percent) / 100.0,
            floors: [scale(b.min_pps), scale(b.min_bps), scale(b.min_flows)],
        }
    }

    fn close_second(&mut self, second: u64, events: &mut Vec<AttackEvent>) {
        self.last = None;
        let bucket = self.buckets.pop_front().unwrap_or_default();
        // A raised threat level scales every threshold (and baseline factor) down.
        let percent = self.config.threat.percent(self.config.threat.level_at(second).0);
        let scale = |t: &Thresholds| if percent == 100 { *t } else { t.scaled(percent) };
        let default_in = scale(&self.config.thresholds);
        let default_out = scale(&self.config.outbound);
        let group_limits: Vec<(Thresholds, Thresholds, Policy, BaselineLimit)> = self
            .config
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (scale(&g.thresholds), scale(&g.outbound), g.policy, self.baseline_limit(Some(i), percent))
            })
            .collect();
        let default_limit = self.baseline_limit(None, percent);
        let baselines_on = self.config.baseline.enabled;

        let mut evaluated: BTreeSet<TargetKey> = BTreeSet::new();
        let mut level: Vec<(TargetKey, Metrics)> = Vec::new();
        let mut level_index: FastMap<TargetKey, usize> = FastMap::default();
        let max_prefixes = self.config.limits.max_prefixes;
        let add_to = |level: &mut Vec<(TargetKey, Metrics)>,
                      index: &mut FastMap<TargetKey, usize>,
                      target: TargetKey,
                      m: &Metrics| {
            if let Some(&i) = index.get(&target) {
                if let Some((_, agg)) = level.get_mut(i) {
                    agg.merge(m);
                }
            } else if level.len() < max_prefixes {
                index.insert(target, level.len());
                level.push((target, *m));
            }
        };
        let mut group_totals: Vec<Option<Metrics>> = vec![None; self.config.groups.len()];
        let mut total_rates = TrafficRates::default();
        let mut group_rates = vec![TrafficRates::default(); self.config.groups.len()];

        for host in &bucket.hosts {
            total_rates.add(host);
            let group =
                if self.config.groups.is_empty() { None } else { self.config.group_of(ip_of(host.key)) };
            let (thresholds_in, thresholds_out, policy, limit) = match group.and_then(|g| group_limits.get(g))
            {
                Some(&(t_in, t_out, policy, limit)) => (t_in, t_out, policy, limit),
                None => (default_in, default_out, self.config.policy, default_limit),
            };
            if let Some(rates) = group.and_then(|g| group_rates.get_mut(g)) {
                rates.add(host);
            }
            if policy == Policy::Ignore {
                continue;
            }
            let inbound = Metrics::inbound(host);
            let target = TargetKey::Host(host.key);
            let tracked = self.tracked(target);
            if inbound.total > 0 {
                let mut crossed = inbound.crossed_host(&thresholds_in);
                let learned = if baselines_on { self.baselines.baseline(host.key, second) } else { None };
                if let Some(b) = &learned {
                    crossed.extend(inbound.crossed_baseline(b, limit));
                }
                // Under its thresholds and not under attack: feeds the aggregates.
                if crossed.is_empty() && tracked != Some(true) {
                    add_to(&mut level, &mut level_index, self.prefix_of(host.key), &inbound);
                    if let Some(total) = group.and_then(|g| group_totals.get_mut(g)) {
                        total.get_or_insert_with(Metrics::default).merge(&inbound);
                    }
                }
                if baselines_on {
                    let normal = crossed.is_empty() && tracked.is_none();
                    self.learn(host.key, second, &inbound, normal, learned.as_ref(), limit);
                }
                if !crossed.is_empty() || tracked.is_some() {
                    evaluated.insert(target);
                    self.evaluate(target, second, &inbound, &crossed, events);
                }
            }
            if host.outbound.total() > 0 {
                let outbound = Metrics::outbound(host);
                let target = TargetKey::Outbound(host.key);
                let crossed = outbound.crossed_host(&thresholds_out);
                if !crossed.is_empty() || self.targets.contains_key(&target) {
                    evaluated.insert(target);
                    self.evaluate(target, second, &outbound, &crossed, events);
                }
            }
        }
        self.total_rates = total_rates;
        self.group_rates = group_rates;

        // Sorted so that event order and attack ids never depend on hash order.
        let mut overflow: Vec<(&u128, &HostSecond)> = bucket.overflow.iter().collect();
        overflow.sort_unstable_by_key(|(k, _)| **k);
        for (&prefix_key, agg) in overflow {
            let mut m = Metrics::inbound(agg);
            // Unknown spread over hosts: assume many.
            m.hosts = u64::MAX / 2;
            m.max_host = 0;
            add_to(&mut level, &mut level_index, self.prefix_of(prefix_key), &m);
        }

        // Aggregate levels: /24 or /64, then the IPv6 wide prefix, then the protected network.
        // Each level gets only the traffic of the level below that is under its thresholds and
        // not under attack, so one carpet bombing is reported once, at the narrowest level
        // that sees it.
        let agg = self.config.aggregation;
        let level_limits =
            [scale(&agg.thresholds), scale(&agg.wide_thresholds), scale(&agg.network_thresholds)];
        while !level.is_empty() {
            let mut next: Vec<(TargetKey, Metrics)> = Vec::new();
            let mut next_index: FastMap<TargetKey, usize> = FastMap::default();
            for (target, m) in std::mem::take(&mut level) {
                let slot = target.slot(&self.config);
                let limits = match slot {
                    SLOT_PREFIX => &level_limits[0],
                    SLOT_WIDE => &level_limits[1],
                    _ => &level_limits[2],
                };
                let crossed = m.crossed_aggregate(limits);
                let tracked = self.tracked(target);
                if !crossed.is_empty() || tracked.is_some() {
                    evaluated.insert(target);
                    self.evaluate(target, second, &m, &crossed, events);
                }
                if crossed.is_empty()
                    && tracked != Some(true)
                    && let TargetKey::Prefix(key, len) = target
                    && let Some(parent) = self.parent_of(key, len)
                {
                    add_to(&mut next, &mut next_index, parent, &m);
                }
            }
            level = next;
        }

        for (g, total) in group_totals.into_iter().enumerate() {
            let Some(m) = total else { continue };
            let target = TargetKey::Group(g as u16);
            let Some(group) = self.config.groups.get(g) else { continue };
            let mut crossed = match &group.aggregate {
                Some(limits) => m.crossed_aggregate(&scale(limits)),
                None => Vec::new(),
            };
            let key = self.group_keys.get(g).copied().unwrap_or_default();
            if baselines_on {
                let limit = group_limits.get(g).map_or(default_limit, |l| l.3);
                let learned = self.baselines.baseline(key, second);
                if let Some(b) = &learned {
                    crossed.extend(m.crossed_baseline(b, limit));
                }
                let normal = crossed.is_empty() && !self.targets.contains_key(&target);
                self.learn(key, second, &m, normal, learned.as_ref(), limit);
            }
            if !crossed.is_empty() || self.targets.contains_key(&target) {
                evaluated.insert(target);
                self.evaluate(target, second, &m, &crossed, events);
            }
        }

        let mut silent: Vec<TargetKey> =
            self.targets.keys().filter(|t| !evaluated.contains(t)).copied().collect();
        silent.sort();
        for target in silent {
            self.evaluate(target, second, &Metrics::default(), &[], events);
        }
        if baselines_on && second.is_multiple_of(MAINTAIN_EVERY_SECS) {
            self.baselines.maintain(second);
            let stats = self.baselines.stats();
            self.stats.baseline_keys = stats.keys as u64;
            self.stats.baseline_untracked = stats.untracked;
        }
        let mut bucket = bucket;
        bucket.clear();
        if self.pool.len() < 4 {
            self.pool.push(bucket);
        }
    }

    /// Learns a second of `key`'s traffic: as is when `normal`; otherwise (over a limit, a
    /// candidate or under attack) capped at the baseline's alert limit for the time-of-day
    /// histograms only, so a surge recurring daily becomes normal for its hour while a flood
    /// teaches at most `factor` times normal and never the recent level.
    fn learn(
        &mut self,
        key: u128,
        second: u64,
        m: &Metrics,
        normal: bool,
        learned: Option<&Baseline>,
        limit: BaselineLimit,
    ) {
        let sample = m.sample();
        if normal {
            self.baselines.learn(key, second, &sample);
            return;
        }
        let Some(b) = learned else {
            self.baselines.hold(key, second);
            return;
        };
        let [pps, bps, flows] = limit.of(b);
        let capped = Sample {
            pps: sample.pps.min(pps),
            bps: sample.bps.min(bps),
            flows: sample.flows.min(flows),
            ..sample
        };
        self.baselines.hold_capped(key, second, &capped);
    }

    fn evaluate(
        &mut self,
        target: TargetKey,
        second: u64,
        m: &Metrics,
        crossed: &[Crossing],
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
        let (metric, value, threshold, baseline) = crossed[0];
        let trigger = Trigger {
            level: target.level(&self.config),
            metric,
            value,
            threshold,
            baseline,
            since: EventTime::from_unix_secs(second),
            sustained_secs: lifecycle.onset_secs,
            threat: threat_context(&self.config.threat, second),
        };
        let state = self.targets.entry(target).or_insert_with(|| TargetState {
            streak: 0,
            first_over: second,
            first_ns: m.first_ns,
            last_over: second,
            trigger: trigger.clone(),
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
            state.trigger = trigger;
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
        if matches!(target, TargetKey::Prefix(..) | TargetKey::Group(_)) && m.spread_over_hosts() {
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

    fn event(&self, kind: EventKind, target: TargetKey) -> Option<AttackEvent> {
        let state = self.targets.get(&target)?;
        Some(AttackEvent { kind, attack: self.snapshot(target, state) })
    }

    fn end_event(&mut self, target: TargetKey, state: TargetState) -> AttackEvent {
        let event = AttackEvent { kind: EventKind::End, attack: self.snapshot(target, &state) };
        if let Some(a) = state.attack
            && let Some(p) = self.profiles.get_mut(a.slot as usize)
        {
            *p = None;
            self.active_attacks = self.active_attacks.saturating_sub(1);
        }
        event
    }

    /// The contract's view of a target.
    fn target_of(&self, target: TargetKey) -> Target {
        match target {
            TargetKey::Host(key) | TargetKey::Outbound(key) => Target::Host(ip_of(key)),
            TargetKey::Prefix(key, len) => Target::Prefix(net_of(key, len)),
            TargetKey::Group(g) => {
                let group = self.config.groups.get(usize::from(g));
                Target::Group {
                    name: group.map_or_else(String::new, |g| g.name.clone()),
                    prefixes: group.map_or_else(Vec::new, |g| g.prefixes.clone()),
                }
            }
        }
    }

    fn snapshot(&self, target: TargetKey, state: &TargetState) -> Attack {
        let empty = Profile::default();
        let profile = state
            .attack
            .and_then(|a| self.profiles.get(a.slot as usize))
            .and_then(|p| p.as_deref())
            .map_or(&empty, |p| &p.kept);
        let group = match target {
            TargetKey::Group(g) => Some(usize::from(g)),
            TargetKey::Host(key) | TargetKey::Outbound(key) => self.config.group_of(ip_of(key)),
            TargetKey::Prefix(..) => None,
        };
        let group = group.and_then(|g| self.config.groups.get(g));
        let outbound = target.direction() == Direction::Outbound;
        let mut signature = match (target, group) {
            (TargetKey::Group(_), Some(g)) => {
                let first = g.prefixes.first().copied().unwrap_or_default();
                let mut s = profile.signature(first, false);
                s.dst_prefixes.clone_from(&g.prefixes);
                s
            }
            (TargetKey::Host(key) | TargetKey::Outbound(key), _) => {
                profile.signature(host_net(key), outbound)
            }
            (TargetKey::Prefix(key, len), _) => profile.signature(net_of(key, len), false),
            (TargetKey::Group(_), None) => profile.signature(IpNet::default(), false),
        };
        let baseline_key = match target {
            TargetKey::Host(key) => Some(key),
            TargetKey::Group(g) => self.group_keys.get(usize::from(g)).copied(),
            _ => None,
        };
        signature.collateral = baseline_key
            .filter(|_| self.config.baseline.enabled)
            .and_then(|key| self.baselines.baseline(key, state.first_over))
            .map(|b| collateral(&signature, &b));
        let start_ns = state.first_ns.max(state.first_over.saturating_mul(UnixNanos::NANOS_PER_SEC));
        Attack {
            id: AttackId(state.attack.map_or(0, |a| a.id)),
            target: self.target_of(target),
            direction: target.direction(),
            group: group.map(|g| g.name.clone()),
            policy: group.map_or(self.config.policy, |g| g.policy),
            vectors: state.vectors.iter().copied().collect(),
            start: EventTime::from_unix_nanos(start_ns),
            end: EventTime::from_unix_nanos(state.end_ns),
            current_pps: state.current_pps,
            current_bps: state.current_bps,
            peak_pps: state.peak_pps,
            peak_bps: state.peak_bps,
            packets: state.packets,
            bytes: state.bytes,
            trigger: state.trigger.clone(),
            distinct_sources: if outbound { 1 } else { profile.distinct_remotes() },
            distinct_destinations: outbound.then(|| profile.distinct_remotes()),
            top_src_prefixes: if outbound { Vec::new() } else { profile.top_remote_prefixes(TOP_N) },
            top_dst_prefixes: if outbound { profile.top_remote_prefixes(TOP_N) } else { Vec::new() },
            top_src_ports: profile.top_src_ports(TOP_N),
            top_dst_ports: profile.top_dst_ports(TOP_N),
            protocols: profile.protocol_mix(),
            tcp_flags: profile.tcp_flag_mix(TOP_N),
            ttls: profile.ttl_distribution(TOP_N),
            packet_lengths: profile.length_distribution(),
            sample_headers: profile.samples().to_vec(),
            signature,
        }
    }
}

/// How much of a target's normal traffic `signature` would also match: its learned per-class
/// levels in the classes the signature's protocol, TCP flags and fragment fields admit (and,
/// for a reflector source port, the normal reflector-port traffic). Destination ports are not
/// learned per host, so this is an upper bound.
fn collateral(signature: &Signature, b: &Baseline) -> Collateral {
    let admits = |c: Class| -> bool {
        let protocol_ok = match (c, signature.protocol) {
            (_, None) | (Class::Fragment, _) => true,
            (Class::TcpSyn | Class::TcpAck | Class::TcpRst | Class::TcpOther, Some(p)) => p == PROTO_TCP,
            (Class::Udp, Some(p)) => p == PROTO_UDP,
            (Class::Icmp, Some(p)) => p == PROTO_ICMP || p == PROTO_ICMPV6,
            (Class::Other, Some(p)) => ![PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6].contains(&p),
        };
        let fragment_ok = match signature.fragment {
            Some(FragmentMatch::NonInitial) => c == Class::Fragment,
            Some(FragmentMatch::NotNonInitial) => c != Class::Fragment,
            None => true,
        };
        let flags_ok = match signature.tcp_flags {
            Some(flags) if matches!(c, Class::TcpSyn | Class::TcpAck | Class::TcpRst | Class::TcpOther) => {
                let record =
                    TrafficRecord { protocol: PROTO_TCP, tcp_flags: flags.value, ..TrafficRecord::EMPTY };
                classify(&record).0 == c
            }
            _ => true,
        };
        protocol_ok && fragment_ok && flags_ok
    };
    let normal: f64 = b.classes.iter().sum();
    let mut matching: f64 = Class::ALL.into_iter().filter(|&c| admits(c)).map(|c| b.classes[c.index()]).sum();
    let reflector_port = |r: &rampart_contract::PortRange| {
        r.first == r.last && crate::class::amplification_index(r.first).is_some()
    };
    if !signature.src_ports.is_empty() && signature.src_ports.iter().all(reflector_port) {
        matching = matching.min(b.amplification);
    }
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let percent = if normal > 0.0 { 100.0 * matching / normal } else { 0.0 };
    Collateral { baseline_pps: round(normal), matching_pps: round(matching), percent: round(percent) }
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

    fn explain(attack: &Attack) -> String {
        rampart_contract::text::explanation(attack)
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
        let explanation = &explain(&events[0].attack);
        assert!(explanation.contains("pps 70 > threshold 50"), "{explanation}");
        assert!(
            explanation.contains("threat level high (vote on sanctions): thresholds at 50 %"),
            "{explanation}"
        );

        let mut engine = Engine::new(protected());
        engine.set_threat_level(crate::threat::ThreatLevel::Elevated);
        let events = feed(&mut engine, T0, 5, 80, flood);
        assert!(explain(&events[0].attack).contains("threshold 70"), "{}", explain(&events[0].attack));
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
        assert_eq!(
            (a.target.to_string().as_str(), a.vectors.as_slice()),
            ("198.51.100.7", &[Vector::SynFlood][..])
        );
        assert_eq!((a.start, a.packets, a.peak_pps), (EventTime::from_unix_secs(T0), 2500, 500));
        assert!(a.end > EventTime::from_unix_secs(T0 + 4) && a.end < EventTime::from_unix_secs(T0 + 5));
        assert_eq!(a.trigger.counter_name(), "pps");
        assert!(explain(a).contains("pps 500 > threshold 100"), "{}", explain(a));
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
        assert_eq!(events[0].attack.start, EventTime::from_unix_secs(T0 + 10));
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
        assert_eq!(a.target, Target::Prefix("198.51.100.0/24".parse().unwrap()));
        assert_eq!(a.vectors, [Vector::UdpFlood, Vector::CarpetBombing]);
        assert_eq!(a.signature.dst_prefixes, vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]);
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
        assert!(events.iter().any(|e| e.attack.target.to_string() == "198.51.100.0/24"), "{events:#?}");
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

    #[test]
    fn a_protected_host_flooding_out_is_an_outbound_attack() {
        let mut engine = Engine::new(protected());
        let mut events = feed(&mut engine, T0, 3, 8000, |ns, i| {
            let mut r = packet(ns, [198, 51, 100, 66], [203, 0, 113, 10], 6, 0x02);
            r.src_port = Some((1024 + i) as u16);
            r.dst_port = Some(443);
            r
        });
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        let a = ends[0];
        assert_eq!((a.target.to_string().as_str(), a.direction), ("198.51.100.66", Direction::Outbound));
        assert_eq!(a.vectors, [Vector::SynFlood]);
        assert!(explain(a).starts_with("outbound tcp_syn_pps 8000 > threshold 5000"), "{}", explain(a));
        assert_eq!(a.signature.src_prefixes, vec!["198.51.100.66/32".parse::<IpNet>().unwrap()]);
        assert_eq!(a.signature.dst_prefixes, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            (a.signature.dst_ports.clone(), a.signature.tcp_flags),
            (vec![rampart_contract::PortRange::single(443)], Some(rampart_contract::TcpFlags::exact(0x02)))
        );
        assert_eq!((a.distinct_sources, a.distinct_destinations), (1, Some(1)));
        assert_eq!(a.top_dst_prefixes[0].value.to_string(), "203.0.113.0/24");
        assert!(a.top_src_prefixes.is_empty());
    }

    #[test]
    fn a_protected_dns_server_abused_as_reflector_is_outbound_amplification() {
        // Default thresholds: 3000 queries/s in are normal for a DNS server, 3000 large
        // replies/s from port 53 out are over the outbound amplification limit (2000).
        let mut engine = Engine::new(config("protected = [\"198.51.100.0/24\"]\n"));
        let mut events = feed(&mut engine, T0, 3, 6000, |ns, i| {
            if i % 2 == 0 {
                let mut q = packet(ns, [203, 0, 113, 77], [198, 51, 100, 53], 17, 0);
                q.dst_port = Some(53);
                q
            } else {
                let mut r = packet(ns, [198, 51, 100, 53], [203, 0, 113, 77], 17, 0);
                (r.src_port, r.dst_port, r.bytes, r.packet_len) = (Some(53), Some(4444), 1400, Some(1400));
                r
            }
        });
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        let a = ends[0];
        assert_eq!((a.target.to_string().as_str(), a.direction), ("198.51.100.53", Direction::Outbound));
        assert_eq!(a.vectors, [Vector::DnsAmplification]);
        assert_eq!(a.trigger.counter_name(), "amplification_pps");
        assert_eq!(a.signature.src_ports, vec![rampart_contract::PortRange::single(53)]);
    }

    #[test]
    fn new_flows_per_second_have_their_own_threshold() {
        let mut c = config(
            "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100000\nudp_pps = 100000\nnew_flows = 300\n",
        );
        c.lifecycle.onset_secs = 2;
        let mut engine = Engine::new(c.clone());
        // 500 UDP packets per second, each from a new source port: 500 new flows per second.
        let mut events = feed(&mut engine, T0, 4, 500, |ns, i| {
            let mut r = packet(ns, [203, 0, 113, 1], [198, 51, 100, 9], 17, 0);
            r.src_port = Some((ns / 1_000_000_000 * 1000 + i) as u16);
            r
        });
        events.extend(engine.finish());
        assert_eq!(events.first().map(|e| e.attack.trigger.metric), Some(Metric::NewFlows), "{events:#?}");
        assert!(explain(&events[0].attack).contains("new_flows 500 > threshold 300"));
        // The same packets in one long-lived flow: no new flows after the first.
        let mut engine = Engine::new(c);
        let mut events =
            feed(&mut engine, T0, 4, 500, |ns, _| packet(ns, [203, 0, 113, 1], [198, 51, 100, 9], 17, 0));
        events.extend(engine.finish());
        assert!(events.is_empty(), "{events:#?}");
    }

    /// Three seconds of 10 000 UDP pps spread over one host in each of 100 /64s of
    /// 2001:db8:100::/56; every event.
    fn ipv6_carpet(c: DetectConfig) -> Vec<AttackEvent> {
        let mut engine = Engine::new(c);
        let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
            let dst: IpAddr = format!("2001:db8:100:{:x}::1", i % 100).parse().unwrap();
            TrafficRecord {
                dst,
                src: "2001:db8:ffff::1".parse().unwrap(),
                ..packet(ns, [0; 4], [0; 4], 17, 0)
            }
        });
        events.extend(engine.finish());
        events
    }

    #[test]
    fn ipv6_carpet_bombing_over_many_64s_goes_to_the_48() {
        let c = config(
            "protected = [\"2001:db8:100::/48\"]\n[thresholds]\npps = 100\n\
             [aggregation]\npps = 200\nwide_pps = 1000\n",
        );
        // 100 pps to each of 100 /64s (one host each): every /64 under 200, the /48 at 10 000.
        let events = ipv6_carpet(c);
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        assert_eq!(ends[0].target, Target::Prefix("2001:db8:100::/48".parse().unwrap()));
        assert_eq!(ends[0].trigger.counter_name(), "wide_prefix_pps");
        assert!(ends[0].vectors.contains(&Vector::CarpetBombing));
    }

    #[test]
    fn a_protected_network_narrower_than_the_wide_prefix_is_its_own_top_level() {
        let c = config(
            "protected = [\"2001:db8:100::/56\"]\n[thresholds]\npps = 100\n\
             [aggregation]\npps = 200\nwide_pps = 1000\nnetwork_pps = 5000\n",
        );
        let events = ipv6_carpet(c);
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        assert_eq!(
            (ends[0].target.to_string(), ends[0].trigger.counter_name()),
            ("2001:db8:100::/56".to_owned(), "network_pps".to_owned())
        );
    }

    #[test]
    fn carpet_bombing_over_many_24s_goes_to_the_protected_network() {
        let c = config(
            "protected = [\"198.51.0.0/16\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 1000\nnetwork_pps = 5000\n",
        );
        let mut engine = Engine::new(c);
        // 50 pps to each of 200 hosts spread over 20 /24s: each /24 at 500, the /16 at 10 000.
        let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
            packet(ns, [203, 0, 113, 1], [198, 51, (i % 20) as u8, (i % 200 / 20) as u8 + 1], 17, 0)
        });
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        assert_eq!(ends[0].target.to_string(), "198.51.0.0/16");
        assert_eq!(ends[0].trigger.counter_name(), "network_pps");
        assert!(explain(ends[0]).contains("for protected network"), "{}", explain(ends[0]));
    }

    #[test]
    fn groups_have_aggregates_policies_and_rates() {
        let text = "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 100000\n\
                    [[group]]\nname = \"web\"\nprefixes = [\"198.51.100.0/28\"]\npolicy = \"alert\"\n\
                    aggregate = { pps = 500 }\n\
                    [[group]]\nname = \"honeypot\"\nprefixes = [\"198.51.100.128/25\"]\npolicy = \"ignore\"\n";
        let mut engine = Engine::new(config(text));
        // 80 pps to each of the 16 web hosts (group total 1280), and 5000 pps at one honeypot.
        let mut events = feed(&mut engine, T0, 3, 6280, |ns, i| {
            let dst = if i < 1280 { [198, 51, 100, (i % 16) as u8] } else { [198, 51, 100, 200] };
            packet(ns, [203, 0, 113, 1], dst, 17, 0)
        });
        let rates: Vec<_> = engine.group_rates().map(|(n, r)| (n.to_owned(), r.inbound_pps)).collect();
        assert_eq!(rates, [("web".to_owned(), 1280), ("honeypot".to_owned(), 5000)]);
        assert_eq!(engine.rates().inbound_pps, 6280);
        // Silence: the rates fall to zero, they do not stay at the last busy second.
        let mut quiet = Engine::new(config(text));
        feed(&mut quiet, T0, 1, 100, |ns, _| packet(ns, [203, 0, 113, 1], [198, 51, 100, 1], 17, 0));
        quiet.advance(UnixNanos::from_secs(T0 + 1));
        assert_eq!(quiet.rates().inbound_pps, 100);
        quiet.advance(UnixNanos::from_secs(T0 + 5));
        assert_eq!(quiet.rates(), TrafficRates::default());
        events.extend(engine.finish());
        let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
        assert_eq!(ends.len(), 1, "{events:#?}");
        let a = ends[0];
        assert!(matches!(&a.target, Target::Group { name, .. } if name == "web"), "{:?}", a.target);
        assert_eq!(a.policy, Policy::Alert);
        assert_eq!(a.group.as_deref(), Some("web"));
        assert_eq!(a.trigger.counter_name(), "group_pps");
        assert_eq!(a.signature.dst_prefixes, vec!["198.51.100.0/28".parse::<IpNet>().unwrap()]);
        assert!(a.vectors.contains(&Vector::CarpetBombing));
    }

    #[test]
    fn packet_sources_carry_sample_headers_and_flows_do_not() {
        let mut engine = Engine::new(protected());
        let mut events = feed(&mut engine, T0, 3, 500, |ns, _| TrafficRecord {
            ttl: Some(52),
            ..packet(ns, [203, 0, 113, 5], [198, 51, 100, 7], 6, 0x02)
        });
        events.extend(engine.finish());
        let a = &events.last().unwrap().attack;
        assert_eq!(a.sample_headers.len(), crate::profile::MAX_SAMPLES);
        assert_eq!(
            a.sample_headers[0].to_string(),
            "203.0.113.5:1234 > 198.51.100.7:80 proto 6 flags 0x02 ttl 52 len 60"
        );
        let mut engine = Engine::new(protected());
        let mut events = feed(&mut engine, T0, 3, 500, |ns, _| TrafficRecord {
            source: rampart_telemetry::RecordSource::Ipfix,
            ..packet(ns, [203, 0, 113, 5], [198, 51, 100, 7], 6, 0x02)
        });
        events.extend(engine.finish());
        assert!(events.last().unwrap().attack.sample_headers.is_empty());
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
                prop_assert!(e.attack.end >= e.attack.start, "{:?}", e.attack);
                prop_assert!(serde_json::to_string(&e.attack).is_ok());
            }
        }
    }
}
