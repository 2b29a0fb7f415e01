//! The detection engine: records in, per-second counters per protected host (inbound and
//! outbound), aggregates per prefix, IPv6 wide prefix, protected network and host group,
//! static and learned thresholds, attack lifecycle events out. Time is the records' event
//! time; `advance` closes seconds, nothing here reads a clock.
//!
//! - [`keys`]: addresses and targets in one u128 key space;
//! - [`counters`]: per-second counters of hosts and the metrics of evaluated targets;
//! - [`crossing`]: which counters are over their static or learned limits, and the vectors;
//! - [`levels`]: closing a second, the aggregate ladder and host groups;
//! - [`lifecycle`]: candidate, onset, update and end of one target, as a pure state machine;
//! - [`footprint`]: what the engine holds, against its limits;
//! - [`report`]: the contract's `Attack` built from a target's state and profile.

mod campaign;
mod counters;
mod crossing;
mod footprint;
mod keys;
mod levels;
mod lifecycle;
mod report;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;

use rampart_contract::{AttackEvent, Confidence, Direction, EventKind, EventTime, Trigger, Vector};
use rampart_telemetry::spread::spread_per_second;
use rampart_telemetry::{TrafficRecord, UnixNanos};
use serde::Serialize;

use crate::baseline::{Baseline, BaselineError, BaselineTable};
use crate::class::classify;
use crate::config::DetectConfig;
use crate::flows::NewFlows;
use crate::profile::Profile;
use crate::threat::ThreatLevel;
use counters::{Bucket, FastMap, HostSecond, Metrics, PrefixSecond};
use crossing::Crossing;
use keys::{
    NO_SLOT, SLOT_GROUP, SLOT_HOST, SLOT_OUTBOUND, SLOT_PREFIX, SLOTS, TargetKey, ip_of, key_of, mask,
    net_key,
};
use lifecycle::{Seen, Step, TargetState};
use watch::Watch;

pub use counters::TrafficRates;
pub use footprint::Footprint;

/// Seconds ahead of the oldest open second that flow shares may land in; later shares are
/// counted in the last of them.
const MAX_OPEN_SECS: u64 = 120;
/// Top ports and protocols listed per attack.
const TOP_N: usize = 5;
/// Baseline maintenance (eviction) period, seconds.
const MAINTAIN_EVERY_SECS: u64 = 60;
/// Provisional profiles per open second (about 8.5 KiB each, allocated when first needed):
/// hot hosts and prefixes beyond it are profiled only once they are candidates.
const PROVISIONAL_PER_SECOND: usize = 1024;

/// A target the engine tracks: its lifecycle, its profile and, once reported, its attack's id.
#[derive(Debug)]
struct Tracked {
    state: TargetState,
    attack: Option<AttackSlot>,
    /// Index into `Engine::profiles`: a candidate is profiled from its first second over a
    /// limit, so its onset already carries a signature.
    profile: u32,
    /// Thinly sampled seconds not yet enough to name vectors.
    evidence: Box<crossing::Evidence>,
}

#[derive(Debug, Clone, Copy)]
struct AttackSlot {
    id: u64,
    /// Set when the attack is a later pulse of a campaign.
    campaign: Option<rampart_contract::Campaign>,
}

/// The index of `prefix` in a bucket's prefix table, inserting it; `NO_SLOT` when full.
fn prefix_slot(
    index: &mut FastMap<u128, u32>,
    prefixes: &mut Vec<PrefixSecond>,
    prefix: u128,
    max: usize,
) -> u32 {
    if let Some(&i) = index.get(&prefix) {
        return i;
    }
    if prefixes.len() >= max {
        return NO_SLOT;
    }
    let Ok(i) = u32::try_from(prefixes.len()) else { return NO_SLOT };
    prefixes.push(PrefixSecond { packets: 0, bytes: 0, provisional: NO_SLOT });
    index.insert(prefix, i);
    i
}

/// A target's profile: `kept` covers its seconds over threshold; `staged` collects the
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
    /// Shares of seconds further ahead of the engine's clock than it keeps open (a flow
    /// record claiming to end minutes or days from now): dropped, never piled into the last
    /// open second.
    pub future_shares: u64,
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
    targets: FastMap<TargetKey, Tracked>,
    /// Recently ended attacks, for pulse-wave campaigns.
    campaigns: campaign::Campaigns,
    /// Profiles of candidates and attacks; `None` = free.
    profiles: Vec<Option<Box<AttackProfile>>>,
    watch: Watch,
    next_id: u64,
    hasher: foldhash::fast::FixedState,
    /// Key of the per-second remote-address bitmaps (`counters::remote_bit`).
    remote_key: u64,
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

impl Engine {
    /// An engine whose hashes of attacker-chosen values are keyed by a random seed.
    ///
    /// # Panics
    /// If `config.baseline` fails [`BaselineConfig::validate`](crate::BaselineConfig::validate)
    /// (configurations read by [`DetectConfig`]'s parsers always pass); use
    /// [`try_new`](Self::try_new) for configurations built by hand.
    pub fn new(config: DetectConfig) -> Self {
        Self::with_seed(config, crate::flows::random_seed())
    }

    /// An engine for `config`, or why its baseline configuration is unusable.
    pub fn try_new(config: DetectConfig) -> Result<Self, BaselineError> {
        Self::try_with_seed(config, crate::flows::random_seed())
    }

    /// An engine whose hashes of attacker-chosen values (new-flow table, source sketches) are
    /// keyed by `seed`: deterministic, for tests and replays.
    ///
    /// # Panics
    /// As [`new`](Self::new); [`try_with_seed`](Self::try_with_seed) returns the error instead.
    pub fn with_seed(config: DetectConfig, seed: u64) -> Self {
        let baselines = BaselineTable::new(config.baseline.clone());
        Self::build(config, seed, baselines)
    }

    /// As [`with_seed`](Self::with_seed), or why the baseline configuration is unusable.
    pub fn try_with_seed(config: DetectConfig, seed: u64) -> Result<Self, BaselineError> {
        let baselines = BaselineTable::try_new(config.baseline.clone())?;
        Ok(Self::build(config, seed, baselines))
    }

    fn build(config: DetectConfig, seed: u64, baselines: BaselineTable) -> Self {
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
            campaigns: campaign::Campaigns::default(),
            profiles: Vec::new(),
            watch: Watch::of(&config),
            next_id: 1,
            hasher: foldhash::fast::FixedState::with_seed(seed),
            remote_key: foldhash::fast::FixedState::with_seed(seed).hash_one(0x07e3_07e5_u64),
            last: None,
            // Its own key, so one table's layout tells nothing about the other's.
            flows: NewFlows::with_seed(config.limits.flow_table, seed.rotate_left(32) ^ 0xf10e),
            baselines,
            group_keys,
            total_rates: TrafficRates::default(),
            group_rates: vec![TrafficRates::default(); config.groups.len()],
            stats: EngineStats::default(),
            config,
        }
    }

    /// Sets the threat level outside scheduled windows (an operator raising sensitivity by
    /// hand); it applies from the next second closed.
    pub fn set_threat_level(&mut self, level: ThreatLevel) {
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
            self.add(first, host, direction, record, (p, record.packets), b, new_flows);
        } else {
            let mut flows = new_flows;
            for share in spread_per_second(record) {
                if share.packets > 0 || share.bytes > 0 {
                    let (p, b) = (share.packets.saturating_mul(rate), share.bytes.saturating_mul(rate));
                    // A flow is new once, in its first second.
                    let packets = (p, share.packets);
                    self.add(share.second, host, direction, record, packets, b, std::mem::take(&mut flows));
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
        (packets, observed): (u64, u64),
        bytes: u64,
        flows: u64,
    ) {
        let open = *self.open.get_or_insert(second);
        let offset = if second < open {
            self.stats.late_shares += 1;
            0
        } else if second - open >= MAX_OPEN_SECS {
            self.stats.future_shares += 1;
            return;
        } else {
            (second - open) as usize
        };
        while self.buckets.len() <= offset {
            let bucket = self.pool.pop().unwrap_or_default();
            self.buckets.push_back(bucket);
        }
        let index = match self.last {
            Some((b, k, i)) if b == offset && k == host => Some(i),
            _ => self.host_index(offset, open + offset as u64, host),
        };
        // Times as seen in the bucket's own second (late and spread records are clamped).
        let bucket_start = (open + offset as u64).saturating_mul(UnixNanos::NANOS_PER_SEC);
        let bucket_end = bucket_start.saturating_add(UnixNanos::NANOS_PER_SEC - 1);
        let first_ns = record.start.0.clamp(bucket_start, bucket_end);
        let last_ns = record.end.0.clamp(bucket_start, bucket_end);
        let (class, evidence) = classify(record);
        let outbound = direction == Direction::Outbound;
        let remote =
            counters::remote_bit(key_of(if outbound { record.dst } else { record.src }), self.remote_key);
        let overflow_prefix = match index {
            Some(_) => None,
            // Overflow hosts only feed their prefix's inbound aggregate.
            None if outbound => {
                self.stats.dropped_shares += 1;
                return;
            }
            None => match self.prefix_of(host) {
                TargetKey::Prefix(prefix, _) => Some(prefix),
                _ => return,
            },
        };
        let max_prefixes = self.config.limits.max_prefixes;
        let watch = &self.watch;
        let Some(bucket) = self.buckets.get_mut(offset) else { return };
        let entry = match (index, overflow_prefix) {
            (Some(i), _) => {
                self.last = Some((offset, host, i));
                match bucket.hosts.get_mut(i as usize) {
                    Some(e) => e,
                    None => return,
                }
            }
            (None, Some(prefix)) => {
                if bucket.overflow.len() >= max_prefixes && !bucket.overflow.contains_key(&prefix) {
                    self.stats.dropped_shares += 1;
                    return;
                }
                let slot = prefix_slot(&mut bucket.prefix_index, &mut bucket.prefixes, prefix, max_prefixes);
                bucket
                    .overflow
                    .entry(prefix)
                    .or_insert_with(|| HostSecond { prefix: slot, ..HostSecond::new(prefix) })
            }
            (None, None) => return,
        };
        entry.first_ns = entry.first_ns.min(first_ns);
        entry.last_ns = entry.last_ns.max(last_ns);
        let counters = if outbound { &mut entry.outbound } else { &mut entry.inbound };
        counters.add(class, evidence, remote, packets, observed, bytes, flows);
        let d = usize::from(outbound);
        let slots = entry.slots;
        // Provisional profile of the host: claimed once this second's traffic makes it hot,
        // unless a candidate or attack on it profiles its packets already. Per packet: a few
        // comparisons until hot (or the pool is full), then one profile update.
        let unprofiled = slots[if outbound { SLOT_OUTBOUND } else { SLOT_HOST }] == NO_SLOT;
        if unprofiled
            && index.is_some()
            && entry.provisional[d] == NO_SLOT
            && watch.host[d].is_hot(
                class,
                u64::from(counters.packets.get(class.index()).copied().unwrap_or(0)),
                counters.bytes,
                u64::from(counters.flows),
                entry.learned_watch,
                || counters.total(),
            )
        {
            entry.provisional[d] =
                counters::claim(&mut bucket.provisional, &mut bucket.used, PROVISIONAL_PER_SECOND);
        }
        let used = bucket.used;
        let host_profiled = unprofiled
            && match bucket.provisional.get_mut(..used).and_then(|v| v.get_mut(entry.provisional[d] as usize))
            {
                Some(p) => {
                    p.add(record, class, (packets, observed), bytes, outbound, &self.hasher);
                    true
                }
                None => false,
            };
        // Provisional profile of the host's /24 or /64 (carpet bombing): one more counter per
        // inbound packet, a profile update once the prefix is hot, unless the host's own
        // provisional profile took the packet (the prefix's first second merges its hot hosts'
        // profiles: every packet is profiled once). Not for a host that is a candidate or under
        // attack: its traffic does not feed the aggregate.
        if !outbound
            && slots[SLOT_PREFIX] == NO_SLOT
            && slots[SLOT_HOST] == NO_SLOT
            && let Some(ps) = bucket.prefixes.get_mut(entry.prefix as usize)
        {
            ps.packets = ps.packets.saturating_add(packets);
            ps.bytes = ps.bytes.saturating_add(bytes);
            if ps.provisional == NO_SLOT
                && (ps.packets >= watch.prefix.packets || ps.bytes >= watch.prefix.bytes)
            {
                ps.provisional =
                    counters::claim(&mut bucket.provisional, &mut bucket.used, PROVISIONAL_PER_SECOND);
            }
            let used = bucket.used;
            if !host_profiled
                && let Some(p) =
                    bucket.provisional.get_mut(..used).and_then(|v| v.get_mut(ps.provisional as usize))
            {
                p.add(record, class, (packets, observed), bytes, outbound, &self.hasher);
            }
        }
        let profiled = if outbound { &slots[SLOT_OUTBOUND..] } else { &slots[..SLOT_OUTBOUND] };
        for &slot in profiled {
            if slot != NO_SLOT
                && let Some(Some(profile)) = self.profiles.get_mut(slot as usize)
            {
                profile.staged.add(record, class, (packets, observed), bytes, outbound, &self.hasher);
            }
        }
    }

    /// Index of `host` in bucket `offset`, inserting it; `None` when the bucket is full.
    fn host_index(&mut self, offset: usize, second: u64, host: u128) -> Option<u32> {
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
        if !self.targets.is_empty() {
            entry.slots = self.profile_slots(host);
        }
        // A host with a learned baseline can cross it far below the thresholds: watched at
        // half its own learned limit (once per host and second, not per packet).
        if self.config.baseline.enabled
            && let Some(learned) = self.baselines.baseline(host, second)
        {
            let group = if self.config.groups.is_empty() { None } else { self.config.group_of(ip_of(host)) };
            let threat = &self.config.threat;
            let percent =
                threat.percent(ThreatLevel::Elevated).min(threat.percent(ThreatLevel::High)).min(100);
            let [pps, _, flows] = self.baseline_limit(group, percent).of(&learned);
            entry.learned_watch = u32::try_from((pps.min(flows) / 2).max(1)).unwrap_or(u32::MAX);
        }
        let prefix = match self.prefix_of(host) {
            TargetKey::Prefix(prefix, _) => prefix,
            _ => host,
        };
        let max_prefixes = self.config.limits.max_prefixes;
        let bucket = self.buckets.get_mut(offset)?;
        entry.prefix = prefix_slot(&mut bucket.prefix_index, &mut bucket.prefixes, prefix, max_prefixes);
        let i = u32::try_from(bucket.hosts.len()).ok()?;
        bucket.hosts.push(entry);
        bucket.index.insert(host, i);
        self.stats.peak_hosts = self.stats.peak_hosts.max(bucket.hosts.len() as u64);
        Some(i)
    }

    /// The attacks a host's packets feed, by `SLOT_*`.
    fn profile_slots(&self, host: u128) -> [u32; SLOTS] {
        let slot_of = |t: TargetKey| self.targets.get(&t).map_or(NO_SLOT, |s| s.profile);
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
            if let Some(tracked) = self.targets.remove(&target) {
                if tracked.attack.is_some() {
                    events.push(self.end_event(target, tracked));
                } else {
                    self.release(&tracked);
                }
            }
        }
        events
    }

    /// Frees a forgotten target's profile.
    fn release(&mut self, tracked: &Tracked) {
        if let Some(p) = self.profiles.get_mut(tracked.profile as usize) {
            *p = None;
        }
    }

    /// One closed second of `target`: `provisional` is the profile of its traffic in that
    /// second taken before it was known to be over a limit (a hot host or prefix), if any.
    fn evaluate(
        &mut self,
        target: TargetKey,
        second: u64,
        m: &Metrics,
        crossed: &[Crossing],
        provisional: Option<&Profile>,
        events: &mut Vec<AttackEvent>,
    ) {
        let lifecycle = self.config.lifecycle;
        let mut seen = Seen {
            first_ns: m.first_ns,
            last_ns: m.last_ns,
            packets: m.total,
            bytes: m.bytes,
            confidence: Confidence::Insufficient,
        };
        let Some(&(metric, value, threshold, baseline)) = crossed.first() else {
            let Some(tracked) = self.targets.get_mut(&target) else { return };
            // The second is under every limit: its traffic does not describe the attack.
            if let Some(Some(p)) = self.profiles.get_mut(tracked.profile as usize) {
                p.staged = Profile::default();
            }
            match tracked.state.under(second, seen, lifecycle.quiet_secs) {
                Step::Forget => {
                    if let Some(tracked) = self.targets.remove(&target) {
                        self.release(&tracked);
                    }
                }
                Step::End => {
                    if let Some(tracked) = self.targets.remove(&target) {
                        events.push(self.end_event(target, tracked));
                    }
                }
                Step::Quiet | Step::Onset | Step::Update => {}
            }
            return;
        };
        if !self.targets.contains_key(&target) && self.targets.len() >= self.config.limits.max_attacks {
            self.stats.dropped_candidates += 1;
            return;
        }
        let trigger = Trigger {
            level: target.level(&self.config),
            metric,
            value,
            threshold,
            baseline,
            since: EventTime::from_unix_secs(second),
            sustained_secs: lifecycle.onset_secs,
            threat: report::threat_context(&self.config.threat, second),
        };
        if !self.targets.contains_key(&target) {
            let profile = self.free_profile_slot();
            let state = TargetState::new(second, seen, trigger.clone());
            self.targets.insert(target, Tracked { state, attack: None, profile, evidence: Box::default() });
        }
        // A host's or prefix's packets reach its staged profile or its provisional one, never
        // both: a host-second is attributed to the target's profile when the target was tracked
        // at the host's first packet of the second, else profiled provisionally once hot. Above
        // the prefixes, a hot prefix's profile may hold packets the staged one has too: taken
        // only when nothing was staged (the target's first second over a limit).
        let disjoint = matches!(target.slot(&self.config), SLOT_HOST | SLOT_OUTBOUND | SLOT_PREFIX);
        let Some(tracked) = self.targets.get_mut(&target) else { return };
        if let Some(Some(p)) = self.profiles.get_mut(tracked.profile as usize) {
            let staged = std::mem::take(&mut p.staged);
            if let Some(first) = provisional
                && (disjoint || staged.packets == 0)
            {
                p.kept.merge(first);
            }
            p.kept.merge(&staged);
            seen.confidence = Confidence::of(p.kept.observed());
        }
        let carpet = matches!(target, TargetKey::Prefix(..) | TargetKey::Group(_)) && m.spread_over_hosts();
        let evidence = &mut tracked.evidence;
        let step = tracked.state.over(second, seen, trigger, lifecycle.onset_secs, |vectors| {
            if carpet {
                vectors.insert(Vector::CarpetBombing);
            }
            evidence.vectors(m, crossed, vectors);
        });
        match step {
            Step::Onset => {
                let id = self.next_id;
                self.next_id += 1;
                self.stats.attacks += 1;
                let gap = lifecycle.campaign_gap_secs;
                if let Some(tracked) = self.targets.get_mut(&target) {
                    let campaign = self.campaigns.continues(target, second, &tracked.state.vectors, gap);
                    tracked.attack = Some(AttackSlot { id, campaign });
                }
                events.extend(self.event(EventKind::Onset, target));
            }
            Step::Update => events.extend(self.event(EventKind::Update, target)),
            Step::Quiet | Step::End | Step::Forget => {}
        }
    }

    /// A free profile slot, holding a fresh profile.
    fn free_profile_slot(&mut self) -> u32 {
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
        // At most `max_attacks` profiles exist at once, far below u32::MAX.
        u32::try_from(slot).unwrap_or(u32::MAX)
    }
}
