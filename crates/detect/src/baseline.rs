//! Learned traffic baselines: what is normal for a protected host (or host group) at this time of
//! day, so the engine can alert at `factor` times normal rather than at static thresholds only.
//!
//! Per key there are two components; the baseline of each of pps, bps and new flows/s is the
//! larger of the two:
//! - **Seasonal**: the UTC day is cut into slots of `slot_secs`. While a slot runs, a compact
//!   log-scale histogram per metric collects the per-second values; when the slot ends its
//!   `percentile` (p95) is folded into `seasonal[slot]` with weight `day_weight`. A daily surge at
//!   09:00 is normal for 09:00 after one day; growth over days is followed at that weight.
//! - **Recent**: an exponentially weighted moving average with time constant `recent_secs`, of
//!   the same metrics and of each traffic class. It follows slow ramps within minutes, and its
//!   per-class levels estimate how much legitimate traffic a mitigation would also hit.
//!
//! Seconds without a [`learn`](BaselineTable::learn) call count as zero traffic. Seconds under
//! attack may be passed to [`hold`](BaselineTable::hold) instead: then they are neither learned
//! nor counted as zero, so an attack neither inflates nor deflates the baseline.
//!
//! Memory is bounded by `max_keys`; a key costs about 470 bytes at the default 24 slots (see
//! [`BaselineTable::bytes_per_key`]), a `learn` call about 35 ns (release, 50 000 keys).
//!
//! Pure: time is the `second` argument (Unix seconds, UTC), there is no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::mem::size_of;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::class::Class;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const DAY_SECS: u64 = 86_400;
/// Smallest slot accepted: keeps the seasonal table at most 96 slots (576 bytes per key).
const MIN_SLOT_SECS: u64 = 900;

/// Metrics with a seasonal component, in this order.
const METRICS: usize = 3;
const PPS: usize = 0;
const BPS: usize = 1;
const FLOWS: usize = 2;
/// Recent levels: the metrics, then the classes, then amplification packets.
const RECENT_LEN: usize = METRICS + Class::COUNT + 1;
const RECENT_CLASSES: usize = METRICS;
const RECENT_AMPLIFICATION: usize = METRICS + Class::COUNT;

/// Histogram window: 32 quarter-octave buckets (factor 2^(1/4), ±9 % around the reported
/// midpoint) reaching 2^8 = 256x below the slot's highest value; lower values share the bottom
/// bucket, which only matters when the percentile itself is that far below the maximum.
const BUCKETS: usize = 32;
const BUCKETS_PER_OCTAVE: u32 = 4;
/// 2^31 * 2^(k/4) for k = 1, 2, 3, rounded up: the quarter-octave boundaries of a mantissa
/// normalised to [2^31, 2^32).
const QUARTER_BOUNDS: [u32; 3] = [2_553_802_834, 3_037_000_500, 3_611_622_603];

/// Eviction sweeps run at most this often (event time), whatever the `maintain` call rate.
const SWEEP_EVERY_SECS: u64 = 60;
/// `slot_first` of a key that is not observing a slot (restored, not seen since).
const NOT_OBSERVING: u64 = u64::MAX;

/// Seasonal values are u16 codes: 0 = none yet, 1 = zero, else 2^((code - 2) / 256 - 32), i.e.
/// 256 steps per doubling (±0.14 %) from 2^-32 to 2^224. Codes order like the values.
const CODE_NONE: u16 = 0;
const CODE_ZERO: u16 = 1;
const CODE_STEPS_PER_OCTAVE: f64 = 256.0;
const CODE_MIN_LOG2: f64 = -32.0;

const SNAPSHOT_MAGIC: [u8; 4] = *b"RBSL";
/// Snapshot format version written and read by this build.
pub const SNAPSHOT_VERSION: u16 = 1;
const CHECKSUM_LEN: usize = 8;

/// Baseline settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Learn and answer baselines at all (default true). When false the table stays empty and
    /// [`BaselineTable::baseline`] answers `None`.
    pub enabled: bool,
    /// Alert at this many times the baseline (default 3). Used by the engine, not here.
    pub factor: f64,
    /// Percentile of a slot's per-second values kept as its seasonal level (default 95; 50..=99).
    pub percentile: u8,
    /// Seasonal slot length (default 3600); divides 86400, at least 900.
    pub slot_secs: u64,
    /// Weight of a new day's slot percentile in the seasonal level (default 0.25).
    pub day_weight: f64,
    /// Time constant of the recent moving average (default 900).
    pub recent_secs: u64,
    /// Event time since a key's first learn before its baseline is offered (default 3600),
    /// unless the key already has a seasonal level for the slot.
    pub warmup_secs: u64,
    /// A slot observed for fewer seconds than this is not folded (default 600).
    pub min_slot_secs: u64,
    /// Keys not learned for this long are forgotten (default 14 days).
    pub expire_secs: u64,
    /// Keys tracked at most (default 65 536); further keys are not tracked.
    pub max_keys: usize,
    /// Floors under `factor` x baseline, applied by the engine (defaults 1000 pps, 100 Mbit/s,
    /// 1000 flows/s).
    pub min_pps: u64,
    pub min_bps: u64,
    pub min_flows: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            enabled: true,
            factor: 3.0,
            percentile: 95,
            slot_secs: 3600,
            day_weight: 0.25,
            recent_secs: 900,
            warmup_secs: 3600,
            min_slot_secs: 600,
            expire_secs: 14 * DAY_SECS,
            max_keys: 65_536,
            min_pps: 1_000,
            min_bps: 100_000_000,
            min_flows: 1_000,
        }
    }
}

impl BaselineConfig {
    /// Checks every field; the message starts with the first bad field's name (`"factor: ..."`).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err(format!("factor: must be a finite number above 1, got {}", self.factor));
        }
        if !(50..=99).contains(&self.percentile) {
            return Err(format!("percentile: must be 50..=99, got {}", self.percentile));
        }
        if self.slot_secs < MIN_SLOT_SECS
            || self.slot_secs > DAY_SECS
            || !DAY_SECS.is_multiple_of(self.slot_secs)
        {
            return Err(format!(
                "slot_secs: must divide 86400 and be at least {MIN_SLOT_SECS}, got {}",
                self.slot_secs
            ));
        }
        if !(self.day_weight > 0.0 && self.day_weight <= 1.0) {
            return Err(format!("day_weight: must be in (0, 1], got {}", self.day_weight));
        }
        if self.recent_secs == 0 {
            return Err("recent_secs: must be at least 1".to_string());
        }
        if self.min_slot_secs == 0 || self.min_slot_secs > self.slot_secs {
            return Err(format!(
                "min_slot_secs: must be 1..=slot_secs ({}), got {}",
                self.slot_secs, self.min_slot_secs
            ));
        }
        if self.expire_secs == 0 {
            return Err("expire_secs: must be at least 1".to_string());
        }
        if self.max_keys == 0 || self.max_keys > u32::MAX as usize {
            return Err(format!("max_keys: must be 1..=4294967295, got {}", self.max_keys));
        }
        Ok(())
    }

    fn slots(&self) -> usize {
        (DAY_SECS / self.slot_secs) as usize
    }
}

/// One key's inbound traffic in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub pps: u64,
    pub bps: u64,
    /// New flows in the second.
    pub flows: u64,
    /// Packets per class, indexed by [`Class::index`].
    pub classes: [u64; Class::COUNT],
    /// UDP packets from amplification ports.
    pub amplification: u64,
}

impl Sample {
    fn levels(&self) -> [u64; RECENT_LEN] {
        let mut levels = [0; RECENT_LEN];
        levels[PPS] = self.pps;
        levels[BPS] = self.bps;
        levels[FLOWS] = self.flows;
        levels[RECENT_CLASSES..RECENT_AMPLIFICATION].copy_from_slice(&self.classes);
        levels[RECENT_AMPLIFICATION] = self.amplification;
        levels
    }
}

/// What is normal for a key at a second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Baseline {
    /// max(seasonal, recent) for each metric.
    pub pps: f64,
    pub bps: f64,
    pub flows: f64,
    /// Seasonal level of the slot (0 when the slot has none yet).
    pub seasonal_pps: f64,
    pub seasonal_bps: f64,
    pub seasonal_flows: f64,
    /// Recent moving averages.
    pub recent_pps: f64,
    pub recent_bps: f64,
    pub recent_flows: f64,
    /// Recent packets per second per class, indexed by [`Class::index`].
    pub classes: [f64; Class::COUNT],
    /// Recent amplification-port packets per second.
    pub amplification: f64,
    /// Event seconds since the key was first learned.
    pub learned_secs: u64,
}

impl Baseline {
    /// Recent packets per second of `class`.
    pub fn class(&self, class: Class) -> f64 {
        self.classes[class.index()]
    }
}

/// Table counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BaselineStats {
    /// Keys tracked now.
    pub keys: usize,
    /// `learn` calls for new keys refused because the table was full.
    pub untracked: u64,
    /// Keys forgotten: expired, sparse (scans), or beyond `max_keys` on restore.
    pub evicted: u64,
    /// `learn`/`hold` calls for a second not after the key's last one, ignored.
    pub stale: u64,
}

/// Why a snapshot was not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    #[error("invalid baseline configuration: {0}")]
    Config(String),
    #[error("not a baseline snapshot")]
    NotSnapshot,
    #[error("baseline snapshot version {0} is not supported (this build reads {SNAPSHOT_VERSION})")]
    Version(u16),
    #[error("baseline snapshot is truncated or corrupt (checksum mismatch)")]
    Checksum,
    #[error("corrupt baseline snapshot: {0}")]
    Corrupt(String),
}

/// Per-second values of one metric in the running slot, in quarter-octave buckets.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Bucket of `counts[0]`; values below it are counted there too.
    base: u8,
    /// Saturating: with percentile >= 50 at most one bucket can pass 65 535 in a day-long slot,
    /// and the percentile rank is found before or within it, so saturation never moves it.
    counts: [u16; BUCKETS],
}

/// Quarter-octave bucket of `value` (>= 1): floor(4 * log2(value)), integer only.
fn bucket_of(value: u64) -> u8 {
    let zeros = value.leading_zeros();
    let octave = 63 - zeros;
    let mantissa = ((value << zeros) >> 32) as u32;
    let quarter = QUARTER_BOUNDS.iter().filter(|&&bound| mantissa >= bound).count() as u32;
    (octave * BUCKETS_PER_OCTAVE + quarter) as u8
}

/// Geometric midpoint of a bucket.
fn bucket_value(bucket: usize) -> f64 {
    ((bucket as f64 + 0.5) / f64::from(BUCKETS_PER_OCTAVE)).exp2()
}

impl Histogram {
    fn record(&mut self, value: u64) {
        if value == 0 {
            return; // zeros are the seconds observed but not counted here
        }
        let bucket = bucket_of(value);
        let top = usize::from(self.base) + BUCKETS - 1;
        if usize::from(bucket) > top {
            self.shift_up(usize::from(bucket) - top);
        }
        let index = usize::from(bucket.saturating_sub(self.base));
        self.counts[index] = self.counts[index].saturating_add(1);
    }

    /// Moves the window up so a higher maximum fits; buckets falling off merge into the bottom.
    fn shift_up(&mut self, shift: usize) {
        let merged_len = (shift + 1).min(BUCKETS);
        let merged = self.counts[..merged_len].iter().fold(0u16, |sum, &count| sum.saturating_add(count));
        if merged_len < BUCKETS {
            self.counts.copy_within(merged_len.., 1);
        }
        self.counts[1 + BUCKETS - merged_len..].fill(0);
        self.counts[0] = merged;
        self.base += shift as u8;
    }

    /// The value with `rank` values at or above it (1 = maximum); 0 when the rank falls among
    /// the zero seconds.
    fn value_at_rank_from_top(&self, rank: u64) -> f64 {
        let mut seen = 0u64;
        for index in (0..BUCKETS).rev() {
            seen += u64::from(self.counts[index]);
            if seen >= rank {
                return bucket_value(usize::from(self.base) + index);
            }
        }
        0.0
    }
}

#[derive(Debug, Clone)]
struct KeyState {
    first_seen: u64,
    /// Last second learned or held.
    last: u64,
    /// First second observed in the running slot, or [`NOT_OBSERVING`].
    slot_first: u64,
    /// Seconds learned or held since first seen (saturating).
    active_secs: u32,
    /// Seconds held (under attack) in the running slot: neither values nor zeros.
    held_in_slot: u32,
    /// Recent levels ([`RECENT_LEN`] layout), f32: the average forgets, so rounding stays ~1e-7.
    recent: [f32; RECENT_LEN],
    histograms: [Histogram; METRICS],
}

impl KeyState {
    fn new(second: u64) -> Self {
        KeyState {
            first_seen: second,
            last: second,
            slot_first: second,
            active_secs: 0,
            held_in_slot: 0,
            recent: [0.0; RECENT_LEN],
            histograms: Default::default(),
        }
    }
}

fn encode(value: f64) -> u16 {
    if value.is_nan() || value < CODE_MIN_LOG2.exp2() {
        return CODE_ZERO;
    }
    let steps = ((value.log2() - CODE_MIN_LOG2) * CODE_STEPS_PER_OCTAVE).round();
    (steps + 2.0).min(f64::from(u16::MAX)) as u16
}

fn decode(code: u16) -> Option<f64> {
    match code {
        CODE_NONE => None,
        CODE_ZERO => Some(0.0),
        _ => Some((f64::from(code - 2) / CODE_STEPS_PER_OCTAVE + CODE_MIN_LOG2).exp2()),
    }
}

/// Folds one day's slot value into a seasonal code; the first value is taken as is.
fn fold(code: u16, value: f64, weight: f64) -> u16 {
    match decode(code) {
        None => encode(value),
        Some(old) => encode(old * (1.0 - weight) + value * weight),
    }
}

/// Folds `days` silent (zero) days into a seasonal code.
fn fold_zeros(code: u16, days: u64, weight: f64) -> u16 {
    if days == 0 {
        return code;
    }
    match decode(code) {
        None => CODE_ZERO,
        Some(old) => encode(old * (1.0 - weight).powf(days as f64)),
    }
}

/// How many slots `m` in `from..to` have `m % slots == index`.
fn count_congruent(from: u64, to: u64, index: u64, slots: u64) -> u64 {
    if from >= to {
        return 0;
    }
    let first = from + (index + slots - from % slots) % slots;
    if first >= to { 0 } else { (to - 1 - first) / slots + 1 }
}

/// `retention^gap`, exact for the common gap of 1.
fn retention_over(retention: f64, gap: u64) -> f64 {
    match gap {
        0 => 1.0,
        1 => retention,
        _ => retention.powf(gap as f64),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// Learned baselines of up to `max_keys` keys (hosts, host groups...).
#[derive(Debug, Clone)]
pub struct BaselineTable<K> {
    config: BaselineConfig,
    slots: usize,
    /// Seasonal codes per key: `slots * METRICS`.
    stride: usize,
    /// Per-second retention of the recent average, e^(-1/recent_secs).
    retention: f64,
    /// Keys learned in fewer seconds than this may be evicted as sparse.
    sparse_limit: u32,
    index: FastMap<K, u32>,
    // Dense columns, one row per key (swap-removed), so the map holds only an index: the map
    // rounds its capacity to a power of two and would otherwise double the big per-key state.
    keys: Vec<K>,
    states: Vec<KeyState>,
    seasonal: Vec<u16>,
    /// Latest second seen by `learn`, `hold` or `maintain`.
    now: u64,
    next_sweep: u64,
    untracked: u64,
    evicted: u64,
    stale: u64,
}

impl<K> BaselineTable<K>
where
    K: Copy + Eq + Hash + Ord + Serialize + DeserializeOwned,
{
    /// # Panics
    /// If `config.validate()` fails (validate configurations when reading them).
    pub fn new(config: BaselineConfig) -> Self {
        if let Err(message) = config.validate() {
            panic!("invalid baseline configuration: {message}");
        }
        let slots = config.slots();
        BaselineTable {
            slots,
            stride: slots * METRICS,
            retention: (-1.0 / config.recent_secs as f64).exp(),
            sparse_limit: u32::try_from((config.min_slot_secs / 10).max(1)).unwrap_or(u32::MAX),
            config,
            index: FastMap::default(),
            keys: Vec::new(),
            states: Vec::new(),
            seasonal: Vec::new(),
            now: 0,
            next_sweep: 0,
            untracked: 0,
            evicted: 0,
            stale: 0,
        }
    }

    pub fn config(&self) -> &BaselineConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn stats(&self) -> BaselineStats {
        BaselineStats {
            keys: self.len(),
            untracked: self.untracked,
            evicted: self.evicted,
            stale: self.stale,
        }
    }

    /// State bytes per tracked key: the key's record, its seasonal codes, the key in the dense
    /// list and its index entry (slot and control byte). Growth slack is not included: vectors
    /// grow by doubling and the index to a power of two, up to about twice this at worst.
    pub fn bytes_per_key(&self) -> usize {
        size_of::<KeyState>() + self.stride * size_of::<u16>() + size_of::<K>() + size_of::<(K, u32)>() + 1
    }

    /// Learns `key`'s traffic in `second`. Seconds not after the key's last learned (or held)
    /// second are ignored and counted as stale. O(1), no allocation except for a new key.
    pub fn learn(&mut self, key: K, second: u64, sample: &Sample) {
        if !self.config.enabled {
            return;
        }
        self.now = self.now.max(second);
        let (entry, gap) = match self.index.get(&key) {
            Some(&entry) => {
                let last = self.states[entry as usize].last;
                if second <= last {
                    self.stale += 1;
                    return;
                }
                (entry as usize, second - last)
            }
            None => match self.insert(key, second) {
                Some(entry) => (entry, 1), // levels start at zero, so any gap gives the same
                None => {
                    self.untracked += 1;
                    return;
                }
            },
        };
        self.enter_slot(entry, second);
        let retention = retention_over(self.retention, gap);
        let weight = 1.0 - self.retention;
        let state = &mut self.states[entry];
        for (level, value) in state.recent.iter_mut().zip(sample.levels()) {
            *level = (f64::from(*level) * retention + weight * value as f64) as f32;
        }
        for (histogram, value) in state.histograms.iter_mut().zip([sample.pps, sample.bps, sample.flows]) {
            histogram.record(value);
        }
        state.last = second;
        state.active_secs = state.active_secs.saturating_add(1);
    }

    /// Marks `second` as not representative for `key` (it is under attack): not learned, not
    /// counted as zero traffic, the recent levels keep their value. Unknown keys are ignored.
    pub fn hold(&mut self, key: K, second: u64) {
        self.hold_with(key, second, None);
    }

    /// Like [`hold`](Self::hold), but the second's traffic capped by the caller at its alert
    /// limit enters the time-of-day histograms: a surge that comes back every day at the same
    /// hour becomes normal for that hour after one day, while a flood can raise its hour's
    /// seasonal level to the limit at most (then decays at `day_weight` a day). The recent
    /// levels hold, so an ongoing attack never teaches itself.
    pub fn hold_capped(&mut self, key: K, second: u64, capped: &Sample) {
        self.hold_with(key, second, Some(capped));
    }

    fn hold_with(&mut self, key: K, second: u64, capped: Option<&Sample>) {
        if !self.config.enabled {
            return;
        }
        self.now = self.now.max(second);
        let Some(&entry) = self.index.get(&key) else { return };
        let entry = entry as usize;
        let last = self.states[entry].last;
        if second <= last {
            self.stale += 1;
            return;
        }
        self.enter_slot(entry, second);
        // The seconds between the last call and this one had no traffic.
        let retention = retention_over(self.retention, second - last - 1);
        let state = &mut self.states[entry];
        if retention < 1.0 {
            for level in &mut state.recent {
                *level = (f64::from(*level) * retention) as f32;
            }
        }
        match capped {
            Some(sample) => {
                for (histogram, value) in
                    state.histograms.iter_mut().zip([sample.pps, sample.bps, sample.flows])
                {
                    histogram.record(value);
                }
            }
            None => state.held_in_slot = state.held_in_slot.saturating_add(1),
        }
        state.last = second;
        state.active_secs = state.active_secs.saturating_add(1);
    }

    /// `key`'s baseline for `second` (learned from the seconds before it), or `None` if the key
    /// is unknown, or learned for less than `warmup_secs` with no seasonal level for the slot.
    pub fn baseline(&self, key: K, second: u64) -> Option<Baseline> {
        if !self.config.enabled {
            return None;
        }
        let entry = *self.index.get(&key)? as usize;
        let state = &self.states[entry];
        let slot = second / self.config.slot_secs;
        let index = (slot % self.slots as u64) as usize;
        let seasonal = [PPS, BPS, FLOWS].map(|metric| decode(self.settled_code(entry, metric, index, slot)));
        let learned_secs = second.saturating_sub(state.first_seen);
        if learned_secs < self.config.warmup_secs && seasonal[PPS].is_none() {
            return None;
        }
        let retention = retention_over(self.retention, second.saturating_sub(state.last).saturating_sub(1));
        let recent = state.recent.map(|level| f64::from(level) * retention);
        let seasonal = seasonal.map(|value| value.unwrap_or(0.0));
        let mut classes = [0.0; Class::COUNT];
        classes.copy_from_slice(&recent[RECENT_CLASSES..RECENT_AMPLIFICATION]);
        Some(Baseline {
            pps: seasonal[PPS].max(recent[PPS]),
            bps: seasonal[BPS].max(recent[BPS]),
            flows: seasonal[FLOWS].max(recent[FLOWS]),
            seasonal_pps: seasonal[PPS],
            seasonal_bps: seasonal[BPS],
            seasonal_flows: seasonal[FLOWS],
            recent_pps: recent[PPS],
            recent_bps: recent[BPS],
            recent_flows: recent[FLOWS],
            classes,
            amplification: recent[RECENT_AMPLIFICATION],
            learned_secs,
        })
    }

    /// Evicts keys not learned for `expire_secs`, and sparse keys: learned (or held) in fewer
    /// than `min_slot_secs / 10` seconds and in fewer than 10 % of the seconds since first seen
    /// (a scan touching each address once). The sweep runs at most once per minute of event
    /// time; other calls return at once.
    pub fn maintain(&mut self, second: u64) {
        self.now = self.now.max(second);
        if second < self.next_sweep {
            return;
        }
        self.next_sweep = second.saturating_add(SWEEP_EVERY_SECS);
        let mut entry = 0;
        while entry < self.states.len() {
            let state = &self.states[entry];
            let expired = second.saturating_sub(state.last) >= self.config.expire_secs;
            let sparse = state.active_secs < self.sparse_limit
                && u64::from(state.active_secs) * 10 < second.saturating_sub(state.first_seen);
            if expired || sparse {
                self.remove(entry);
                self.evicted += 1;
            } else {
                entry += 1;
            }
        }
        if self.states.capacity() > 4 * self.states.len() + 64 {
            self.index.shrink_to_fit();
            self.keys.shrink_to_fit();
            self.states.shrink_to_fit();
            self.seasonal.shrink_to_fit();
        }
    }

    /// Versioned binary snapshot, keys in order, slots closed as of the latest second seen (the
    /// running slot is partial and left out). Layout (little endian): magic `RBSL`, version u16,
    /// slot_secs u32, latest second u64, key count u32; per key: JSON key length u16 and bytes,
    /// first_seen u64, last u64, active seconds u32, recent levels 12 x f32, seasonal codes
    /// slots x 3 x u16; then an FNV-1a 64 checksum of everything before. Keys whose JSON form
    /// fails or exceeds 65 535 bytes are left out.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by_key(|&entry| self.keys[entry]);
        let mut out = Vec::with_capacity(22 + self.len() * (96 + self.stride * 2) + CHECKSUM_LEN);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.config.slot_secs as u32).to_le_bytes());
        out.extend_from_slice(&self.now.to_le_bytes());
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        let target = self.now / self.config.slot_secs;
        let mut count = 0u32;
        for entry in order {
            let Ok(key) = serde_json::to_vec(&self.keys[entry]) else { continue };
            let Ok(key_len) = u16::try_from(key.len()) else { continue };
            let state = &self.states[entry];
            out.extend_from_slice(&key_len.to_le_bytes());
            out.extend_from_slice(&key);
            out.extend_from_slice(&state.first_seen.to_le_bytes());
            out.extend_from_slice(&state.last.to_le_bytes());
            out.extend_from_slice(&state.active_secs.to_le_bytes());
            for level in state.recent {
                out.extend_from_slice(&level.to_le_bytes());
            }
            for index in 0..self.slots {
                for metric in 0..METRICS {
                    out.extend_from_slice(&self.settled_code(entry, metric, index, target).to_le_bytes());
                }
            }
            count += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        let checksum = fnv1a(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Rebuilds a table from [`snapshot`](Self::snapshot) bytes. A different `slot_secs` is
    /// resampled (each new slot takes the highest overlapping old one); beyond `max_keys` the
    /// most recently learned keys are kept. The time between the snapshot and a key's next
    /// `learn` is treated as unknown for the seasonal levels (not as silence); the recent levels
    /// decay over it as over any gap.
    pub fn restore(config: BaselineConfig, bytes: &[u8]) -> Result<Self, BaselineError> {
        config.validate().map_err(BaselineError::Config)?;
        if bytes.len() < SNAPSHOT_MAGIC.len() || bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err(BaselineError::NotSnapshot);
        }
        let mut reader = Reader { bytes, at: SNAPSHOT_MAGIC.len() };
        let version = reader.u16().map_err(|_| BaselineError::Checksum)?;
        if version != SNAPSHOT_VERSION {
            return Err(BaselineError::Version(version));
        }
        let body_len = bytes.len().checked_sub(CHECKSUM_LEN).ok_or(BaselineError::Checksum)?;
        let (body, checksum) = bytes.split_at(body_len);
        if body_len < reader.at || fnv1a(body).to_le_bytes() != checksum {
            return Err(BaselineError::Checksum);
        }
        let mut reader = Reader { bytes: body, at: reader.at };
        let old_slot_secs = u64::from(reader.u32()?);
        if old_slot_secs == 0 || old_slot_secs > DAY_SECS || !DAY_SECS.is_multiple_of(old_slot_secs) {
            return Err(BaselineError::Corrupt(format!("slot_secs {old_slot_secs} does not divide a day")));
        }
        let old_slots = (DAY_SECS / old_slot_secs) as usize;
        let now = reader.u64()?;
        let count = reader.u32()? as usize;
        let mut table = Self::new(config);
        table.now = now;
        let new_slots = table.slots;
        let mut rows: Vec<(K, KeyState, Vec<u16>)> = Vec::with_capacity(count.min(body.len() / 64));
        let mut seen: FastMap<K, ()> = FastMap::default();
        let mut old_codes = vec![0u16; old_slots * METRICS];
        for row in 0..count {
            let key_len = usize::from(reader.u16()?);
            let key: K = serde_json::from_slice(reader.take(key_len)?)
                .map_err(|error| BaselineError::Corrupt(format!("key {row}: {error}")))?;
            if seen.insert(key, ()).is_some() {
                return Err(BaselineError::Corrupt(format!("key {row} appears twice")));
            }
            let mut state = KeyState::new(reader.u64()?);
            state.last = reader.u64()?;
            state.slot_first = NOT_OBSERVING;
            state.active_secs = reader.u32()?;
            if state.first_seen > state.last || state.last > now {
                return Err(BaselineError::Corrupt(format!("key {row}: times out of order")));
            }
            for level in &mut state.recent {
                *level = f32::from_bits(reader.u32()?);
                if !(level.is_finite() && *level >= 0.0) {
                    return Err(BaselineError::Corrupt(format!("key {row}: bad level {level}")));
                }
            }
            for code in &mut old_codes {
                *code = reader.u16()?;
            }
            rows.push((key, state, resample(&old_codes, old_slots, new_slots)));
        }
        if reader.at != body.len() {
            return Err(BaselineError::Corrupt("bytes after the last key".to_string()));
        }
        if rows.len() > table.config.max_keys {
            rows.sort_unstable_by(|a, b| b.1.last.cmp(&a.1.last).then(a.0.cmp(&b.0)));
            table.evicted += (rows.len() - table.config.max_keys) as u64;
            rows.truncate(table.config.max_keys);
        }
        for (key, state, codes) in rows {
            table.index.insert(key, table.states.len() as u32);
            table.keys.push(key);
            table.states.push(state);
            table.seasonal.extend_from_slice(&codes);
        }
        Ok(table)
    }

    fn insert(&mut self, key: K, second: u64) -> Option<usize> {
        if self.states.len() >= self.config.max_keys {
            return None;
        }
        let entry = self.states.len();
        self.index.insert(key, entry as u32);
        self.keys.push(key);
        self.states.push(KeyState::new(second));
        self.seasonal.resize(self.seasonal.len() + self.stride, CODE_NONE);
        Some(entry)
    }

    fn remove(&mut self, entry: usize) {
        let last = self.states.len() - 1;
        self.index.remove(&self.keys[entry]);
        self.keys.swap_remove(entry);
        self.states.swap_remove(entry);
        if entry != last {
            self.seasonal.copy_within(last * self.stride..(last + 1) * self.stride, entry * self.stride);
            self.index.insert(self.keys[entry], entry as u32);
        }
        self.seasonal.truncate(last * self.stride);
    }

    /// Brings the key's slot bookkeeping to `second`'s slot: closes the running slot (and the
    /// silent ones after it) when `second` is in a later one.
    fn enter_slot(&mut self, entry: usize, second: u64) {
        let slot = second / self.config.slot_secs;
        let slot_first = self.states[entry].slot_first;
        if slot_first == NOT_OBSERVING {
            self.states[entry].slot_first = second;
            return;
        }
        if slot_first / self.config.slot_secs >= slot {
            return;
        }
        let row = entry * self.stride;
        for index in 0..self.slots {
            for metric in 0..METRICS {
                self.seasonal[row + index * METRICS + metric] = self.settled_code(entry, metric, index, slot);
            }
        }
        let state = &mut self.states[entry];
        state.slot_first = slot * self.config.slot_secs;
        state.held_in_slot = 0;
        state.histograms = Default::default();
    }

    /// The seasonal code of `metric` at slot `index` once every slot before absolute slot
    /// `target` is closed: the running slot's percentile folds in if it is over and was observed
    /// long enough, and each whole slot the key was silent in after it folds a zero. Learning,
    /// answering and snapshots all go through here, so they agree exactly.
    fn settled_code(&self, entry: usize, metric: usize, index: usize, target: u64) -> u16 {
        let mut code = self.seasonal[entry * self.stride + index * METRICS + metric];
        let state = &self.states[entry];
        if state.slot_first == NOT_OBSERVING {
            return code;
        }
        let slot_secs = self.config.slot_secs;
        let running = state.slot_first / slot_secs;
        if running >= target {
            return code;
        }
        let slots = self.slots as u64;
        if running % slots == index as u64 {
            let observed = ((running + 1).saturating_mul(slot_secs) - state.slot_first)
                .saturating_sub(u64::from(state.held_in_slot));
            if observed >= self.config.min_slot_secs {
                let percentile = u64::from(self.config.percentile);
                let rank = observed - (percentile * observed).div_ceil(100) + 1;
                let value = state.histograms[metric].value_at_rank_from_top(rank);
                code = fold(code, value, self.config.day_weight);
            }
        }
        let silent_days = count_congruent(running + 1, target, index as u64, slots);
        fold_zeros(code, silent_days, self.config.day_weight)
    }
}

/// Seasonal codes from `old_slots` to `new_slots` per day: each new slot takes the highest
/// code of the old slots it overlaps (codes order like the values, "none" lowest).
fn resample(old: &[u16], old_slots: usize, new_slots: usize) -> Vec<u16> {
    if old_slots == new_slots {
        return old.to_vec();
    }
    let old_secs = DAY_SECS as usize / old_slots;
    let new_secs = DAY_SECS as usize / new_slots;
    let mut new = vec![CODE_NONE; new_slots * METRICS];
    for slot in 0..new_slots {
        let first = slot * new_secs / old_secs;
        let last = ((slot + 1) * new_secs - 1) / old_secs;
        for metric in 0..METRICS {
            new[slot * METRICS + metric] =
                (first..=last).map(|old_slot| old[old_slot * METRICS + metric]).max().unwrap_or(CODE_NONE);
        }
    }
    new
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BaselineError> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| BaselineError::Corrupt("ends inside a key".to_string()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BaselineError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u16(&mut self) -> Result<u16, BaselineError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, BaselineError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, BaselineError> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// 2024-01-01 00:00:00 UTC.
    const DAY0: u64 = 1_704_067_200;
    const HOUR: u64 = 3600;

    fn host(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn scan_host(index: u128) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + index))
    }

    /// `pps` packets of 1000 bytes, one new flow per 10 packets, half UDP, half TCP ACK.
    fn sample(pps: u64) -> Sample {
        let mut classes = [0; Class::COUNT];
        classes[Class::Udp.index()] = pps / 2;
        classes[Class::TcpAck.index()] = pps - pps / 2;
        Sample { pps, bps: pps * 8000, flows: pps / 10, classes, amplification: pps / 100 }
    }

    fn table(config: BaselineConfig) -> BaselineTable<IpAddr> {
        BaselineTable::new(config)
    }

    fn within(value: f64, expected: f64, tolerance: f64) -> bool {
        (value - expected).abs() <= expected * tolerance
    }

    #[test]
    fn buckets_are_quarter_octaves() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 4);
        assert_eq!(bucket_of(3), 6); // 4 * log2(3) = 6.34
        assert_eq!(bucket_of(u64::MAX), 255);
        let mut value = 1u64;
        while value < u64::MAX / 3 {
            let exact = 4.0 * (value as f64).log2();
            if (exact - exact.round()).abs() > 1e-6 {
                assert_eq!(u32::from(bucket_of(value)), exact.floor() as u32, "value {value}");
            }
            value = value * 3 / 2 + 1;
        }
        assert!(within(bucket_value(usize::from(bucket_of(400))), 400.0, 0.09));
    }

    #[test]
    fn codes_keep_values_within_a_quarter_percent_and_order() {
        assert_eq!(decode(CODE_NONE), None);
        assert_eq!(decode(encode(0.0)), Some(0.0));
        let mut previous = CODE_ZERO;
        for value in [1e-6, 0.5, 1.0, 99.0, 100.0, 12_345.0, 1e9, 4e12] {
            let code = encode(value);
            assert!(within(decode(code).unwrap(), value, 0.0025), "{value}");
            assert!(code > previous);
            previous = code;
        }
        assert_eq!(fold(CODE_NONE, 80.0, 0.25), encode(80.0));
        assert!(within(decode(fold(encode(100.0), 200.0, 0.25)).unwrap(), 125.0, 0.003));
        assert_eq!(fold_zeros(CODE_NONE, 3, 0.25), CODE_ZERO);
        assert!(within(decode(fold_zeros(encode(64.0), 2, 0.5)).unwrap(), 16.0, 0.003));
    }

    #[test]
    fn histogram_percentile_counts_zeros_and_follows_a_rising_maximum() {
        let mut histogram = Histogram::default();
        for value in 1..=100 {
            histogram.record(value);
        }
        // 100 seconds observed: p95 has 6 values at or above it (95..=100).
        assert!(within(histogram.value_at_rank_from_top(6), 95.0, 0.1));
        // In 1000 observed seconds (900 zeros) p95 has 51 values above it: 50. In 2000 seconds
        // it has 101, more than the 100 non-zero ones: it falls among the zeros.
        assert!(within(histogram.value_at_rank_from_top(51), 50.0, 0.1));
        assert_eq!(histogram.value_at_rank_from_top(101), 0.0);
        // A maximum 2^20 x higher moves the window; the top stays exact, the rest merges low.
        histogram.record(100 << 20);
        assert!(within(histogram.value_at_rank_from_top(1), (100 << 20) as f64, 0.1));
        assert_eq!(histogram.counts.iter().map(|&c| u32::from(c)).sum::<u32>(), 101);
    }

    #[test]
    fn validate_names_the_bad_field() {
        assert_eq!(BaselineConfig::default().validate(), Ok(()));
        let cases: [(&str, BaselineConfig); 9] = [
            ("factor", BaselineConfig { factor: 1.0, ..Default::default() }),
            ("percentile", BaselineConfig { percentile: 100, ..Default::default() }),
            ("slot_secs", BaselineConfig { slot_secs: 7000, ..Default::default() }),
            ("slot_secs", BaselineConfig { slot_secs: 600, ..Default::default() }),
            ("day_weight", BaselineConfig { day_weight: f64::NAN, ..Default::default() }),
            ("recent_secs", BaselineConfig { recent_secs: 0, ..Default::default() }),
            ("min_slot_secs", BaselineConfig { min_slot_secs: 3601, ..Default::default() }),
            ("expire_secs", BaselineConfig { expire_secs: 0, ..Default::default() }),
            ("max_keys", BaselineConfig { max_keys: 0, ..Default::default() }),
        ];
        for (field, config) in cases {
            let message = config.validate().unwrap_err();
            assert!(message.starts_with(&format!("{field}: ")), "{field}: {message}");
        }
        let restored =
            BaselineTable::<IpAddr>::restore(BaselineConfig { percentile: 10, ..Default::default() }, &[]);
        assert!(matches!(restored, Err(BaselineError::Config(m)) if m.contains("percentile")));
    }

    /// 100 pps all day, 400 pps from 09:00 to 10:00 UTC.
    fn daily_surge(second: u64) -> u64 {
        if (second % DAY_SECS) / HOUR == 9 { 400 } else { 100 }
    }

    fn four_days_of_surges() -> BaselineTable<IpAddr> {
        let mut baselines = table(BaselineConfig::default());
        for second in DAY0..DAY0 + 4 * DAY_SECS {
            baselines.learn(host(1), second, &sample(daily_surge(second)));
        }
        baselines
    }

    #[test]
    fn a_daily_surge_becomes_normal_for_its_hour() {
        let mut baselines = four_days_of_surges();
        let day5 = DAY0 + 4 * DAY_SECS;
        let factor = baselines.config().factor;
        for second in day5..day5 + DAY_SECS {
            let pps = daily_surge(second);
            let baseline = baselines.baseline(host(1), second).expect("warmed up");
            assert!(pps as f64 <= factor * baseline.pps, "alert at {second}: {pps} vs {baseline:?}");
            let offset = second - day5;
            if offset == 9 * HOUR || offset == 9 * HOUR + 1800 {
                // The first second of the surge is already normal: the recent level is still 100.
                assert!(baseline.pps >= 360.0, "{offset}: {baseline:?}");
                assert!(within(baseline.seasonal_pps, 400.0, 0.1), "{offset}: {baseline:?}");
                assert!(within(baseline.seasonal_bps, 400.0 * 8000.0, 0.1), "{offset}: {baseline:?}");
                assert!(within(baseline.seasonal_flows, 40.0, 0.1), "{offset}: {baseline:?}");
            }
            if offset == 15 * HOUR {
                assert!(within(baseline.pps, 100.0, 0.1), "{baseline:?}");
                assert!(within(baseline.seasonal_pps, 100.0, 0.1), "{baseline:?}");
                assert!(within(baseline.class(Class::Udp), 50.0, 0.01), "{baseline:?}");
                assert!(within(baseline.amplification, 1.0, 0.01), "{baseline:?}");
            }
            baselines.learn(host(1), second, &sample(pps));
        }
    }

    #[test]
    fn a_slow_ramp_never_alerts_but_a_step_does() {
        let config = BaselineConfig::default();
        let factor = config.factor;
        let mut baselines = table(config.clone());
        let start = DAY0 + 1800;
        for offset in 0..4 * HOUR {
            let second = start + offset;
            // +1 % per minute: 100 pps to about 1090 pps in four hours.
            let pps = (100.0 * 1.01f64.powf(offset as f64 / 60.0)) as u64;
            let now = sample(pps);
            if offset >= config.warmup_secs {
                let baseline = baselines.baseline(host(2), second).expect("warmed up");
                assert!(now.pps as f64 <= factor * baseline.pps, "{offset}: {pps} vs {baseline:?}");
                assert!(now.bps as f64 <= factor * baseline.bps, "{offset}: {baseline:?}");
                assert!(now.flows as f64 <= factor * baseline.flows, "{offset}: {baseline:?}");
            } else {
                assert_eq!(baselines.baseline(host(2), second), None);
            }
            baselines.learn(host(2), second, &now);
        }

        let mut baselines = table(config);
        for second in start..start + 2 * HOUR {
            baselines.learn(host(3), second, &sample(100));
        }
        let baseline = baselines.baseline(host(3), start + 2 * HOUR).unwrap();
        assert!(1000.0 > factor * baseline.pps, "{baseline:?}");
    }

    #[test]
    fn silent_seconds_decay_the_recent_level_and_held_seconds_do_not() {
        let mut baselines = table(BaselineConfig { min_slot_secs: 60, ..Default::default() });
        for second in DAY0..DAY0 + 2 * HOUR {
            baselines.learn(host(4), second, &sample(100));
            baselines.learn(host(5), second, &sample(100));
        }
        // One time constant of silence: e^-1 of the level.
        let after_silence = DAY0 + 2 * HOUR + 900;
        let silent = baselines.baseline(host(4), after_silence).unwrap();
        assert!(within(silent.recent_pps, 100.0 / std::f64::consts::E, 0.01), "{silent:?}");
        assert_eq!(silent.pps, silent.recent_pps);
        // host 5 is under attack 02:00-02:57: held, not learned.
        for second in DAY0 + 2 * HOUR..DAY0 + 2 * HOUR + 57 * 60 {
            baselines.hold(host(5), second);
        }
        let resumed = DAY0 + 2 * HOUR + 57 * 60;
        assert!(within(baselines.baseline(host(5), resumed).unwrap().recent_pps, 100.0, 0.01));
        assert!(baselines.baseline(host(4), resumed).unwrap().recent_pps < 3.0);
        for second in resumed..DAY0 + 4 * HOUR {
            baselines.learn(host(4), second, &sample(100));
            baselines.learn(host(5), second, &sample(100));
        }
        // Tomorrow 02:30: the held hour kept its last three minutes at 100 pps; the silent one
        // had 57 minutes of zeros, so its p95 is zero.
        let tomorrow = DAY0 + DAY_SECS + 2 * HOUR + 1800;
        assert!(within(baselines.baseline(host(5), tomorrow).unwrap().seasonal_pps, 100.0, 0.1));
        assert_eq!(baselines.baseline(host(4), tomorrow).unwrap().seasonal_pps, 0.0);
        // Repeated and older seconds are ignored and counted.
        let level = baselines.baseline(host(4), DAY0 + 4 * HOUR).unwrap();
        baselines.learn(host(4), DAY0 + 4 * HOUR - 1, &sample(1_000_000));
        baselines.learn(host(4), DAY0 + 3 * HOUR, &sample(1_000_000));
        baselines.hold(host(4), DAY0 + 3 * HOUR);
        assert_eq!(baselines.stats().stale, 3);
        assert_eq!(baselines.baseline(host(4), DAY0 + 4 * HOUR), Some(level));
    }

    #[test]
    fn silent_slots_fold_zero_and_short_slots_fold_nothing() {
        let mut baselines = table(BaselineConfig::default());
        for second in DAY0..DAY0 + DAY_SECS + 12 * HOUR {
            baselines.learn(host(20), second, &sample(100));
        }
        // Silent from 12:00 on day 2: on day 3 the 15:00 level has folded one zero day.
        let day3 = DAY0 + 2 * DAY_SECS;
        let lazily = baselines.baseline(host(20), day3 + 15 * HOUR).unwrap();
        assert!(within(lazily.seasonal_pps, 75.0, 0.1), "{lazily:?}");
        baselines.learn(host(20), day3 + HOUR, &sample(100));
        assert_eq!(baselines.baseline(host(20), day3 + 15 * HOUR).unwrap().seasonal_pps, lazily.seasonal_pps);

        // First seen 9 minutes before the end of a slot: too short to fold; 11 minutes: folded.
        for (key, first) in [(21, DAY0 + 51 * 60), (22, DAY0 + 49 * 60)] {
            for second in first..=DAY0 + 2 * HOUR {
                baselines.learn(host(key), second, &sample(100));
            }
        }
        let tomorrow = DAY0 + DAY_SECS + 1800;
        assert_eq!(baselines.baseline(host(21), tomorrow).unwrap().seasonal_pps, 0.0);
        assert!(within(baselines.baseline(host(22), tomorrow).unwrap().seasonal_pps, 100.0, 0.1));
    }

    #[test]
    fn warm_up_is_event_time_since_first_learn() {
        let mut baselines = table(BaselineConfig::default());
        let first = DAY0 + 1800;
        // One learn every ten seconds: warm-up counts seconds, not calls.
        for second in (first..first + HOUR).step_by(10) {
            baselines.learn(host(6), second, &sample(100));
        }
        assert_eq!(baselines.baseline(host(6), first + HOUR - 1), None);
        assert_eq!(baselines.baseline(host(6), first + HOUR).map(|b| b.learned_secs), Some(HOUR));
        assert_eq!(baselines.baseline(host(7), first + HOUR), None);

        let mut disabled = table(BaselineConfig { enabled: false, ..Default::default() });
        disabled.learn(host(6), first, &sample(100));
        assert!(disabled.is_empty());
        assert_eq!(disabled.baseline(host(6), first + 2 * HOUR), None);
    }

    #[test]
    fn a_scan_neither_overflows_the_table_nor_stays_in_it() {
        let mut baselines = table(BaselineConfig { max_keys: 1000, ..Default::default() });
        let steady = host(8);
        let mut scanned = 0u128;
        for second in DAY0..DAY0 + 2 * HOUR {
            baselines.learn(steady, second, &sample(100));
            if (DAY0 + HOUR..DAY0 + HOUR + 100).contains(&second) {
                for _ in 0..1000 {
                    baselines.learn(scan_host(scanned), second, &sample(1));
                    scanned += 1;
                }
                assert!(baselines.len() <= 1000);
            }
        }
        assert_eq!(scanned, 100_000);
        assert_eq!(
            baselines.stats(),
            BaselineStats { keys: 1000, untracked: 100_000 - 999, evicted: 0, stale: 0 }
        );
        baselines.maintain(DAY0 + 2 * HOUR);
        assert_eq!(baselines.stats().keys, 1);
        assert_eq!(baselines.stats().evicted, 999);
        assert_eq!(baselines.baseline(scan_host(0), DAY0 + 2 * HOUR), None);
        assert!(baselines.baseline(steady, DAY0 + 2 * HOUR).is_some());

        // A new key learned every second survives maintain on every second.
        for second in DAY0 + 2 * HOUR..DAY0 + 2 * HOUR + 300 {
            baselines.learn(host(9), second, &sample(10));
            baselines.maintain(second);
        }
        assert_eq!(baselines.len(), 2);

        // Keys not learned for expire_secs go.
        let expire = baselines.config().expire_secs;
        let steady_last = DAY0 + 2 * HOUR - 1;
        baselines.maintain(steady_last + expire - 1);
        assert_eq!(baselines.len(), 2);
        baselines.maintain(steady_last + expire + 60);
        assert_eq!(baselines.len(), 1);
        assert!(baselines.baseline(host(9), steady_last + expire + 60).is_some());
        baselines.maintain(steady_last + expire + 400);
        assert!(baselines.is_empty());
    }

    #[test]
    fn state_per_key_stays_under_600_bytes() {
        let hosts = BaselineTable::<IpAddr>::new(BaselineConfig::default());
        let wide = BaselineTable::<u128>::new(BaselineConfig::default());
        println!("bytes per key: IpAddr {}, u128 {}", hosts.bytes_per_key(), wide.bytes_per_key());
        assert!(hosts.bytes_per_key() < 600, "{}", hosts.bytes_per_key());
        assert!(wide.bytes_per_key() < 600, "{}", wide.bytes_per_key());
    }

    /// Several keys over two days: surge, steady, young, and one silent since yesterday.
    fn varied_table() -> BaselineTable<IpAddr> {
        let mut baselines = table(BaselineConfig::default());
        let end = DAY0 + 2 * DAY_SECS + 9 * HOUR + 1234;
        for second in DAY0..end {
            baselines.learn(host(10), second, &sample(daily_surge(second)));
            if second % 7 != 0 {
                baselines.learn(host(11), second, &sample(2000 + second % 500));
            }
            if second >= end - 2 * HOUR {
                baselines.learn(host(12), second, &sample(50));
            }
            if second < DAY0 + DAY_SECS + 5 * HOUR {
                baselines.learn(host(13), second, &sample(300));
            }
        }
        baselines
    }

    fn snapshot_bytes() -> &'static [u8] {
        static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
        BYTES.get_or_init(|| varied_table().snapshot())
    }

    #[test]
    fn a_restored_table_answers_like_the_original() {
        let original = varied_table();
        let bytes = original.snapshot();
        let restored = BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &bytes).unwrap();
        assert_eq!(restored.len(), 4);
        assert_eq!(restored.snapshot(), bytes);
        let now = original.now;
        let mut answered = 0;
        for second in (now..now + 22 * HOUR).step_by(997) {
            for key in [10, 11, 12, 13, 14] {
                let answer = original.baseline(host(key), second);
                assert_eq!(answer, restored.baseline(host(key), second), "host {key} at {second}");
                answered += usize::from(answer.is_some());
            }
        }
        assert!(answered > 200, "{answered}");
    }

    #[test]
    fn wide_integer_keys_round_trip() {
        // The engine keys hosts by u128 (IPv4 mapped into IPv6): beyond u64 in JSON too.
        let mut baselines = BaselineTable::<u128>::new(BaselineConfig::default());
        let keys = [0u128, 0xffff_c000_0201, 0x2001_0db8_0000_0000_0000_0000_0000_0001, u128::MAX];
        for second in DAY0..DAY0 + 2 * HOUR {
            for key in keys {
                baselines.learn(key, second, &sample(100));
            }
        }
        let restored =
            BaselineTable::<u128>::restore(BaselineConfig::default(), &baselines.snapshot()).unwrap();
        for key in keys {
            let expected = baselines.baseline(key, DAY0 + 2 * HOUR);
            assert!(expected.is_some());
            assert_eq!(restored.baseline(key, DAY0 + 2 * HOUR), expected);
        }
    }

    #[test]
    fn a_restored_key_with_a_seasonal_level_is_available_at_once() {
        let config = BaselineConfig { warmup_secs: 3 * DAY_SECS, ..Default::default() };
        let mut baselines = table(config.clone());
        for second in DAY0..=DAY0 + 6 * HOUR {
            baselines.learn(host(15), second, &sample(100));
        }
        let restored = BaselineTable::<IpAddr>::restore(config, &baselines.snapshot()).unwrap();
        let next_day = DAY0 + DAY_SECS;
        let early =
            restored.baseline(host(15), next_day + 3 * HOUR + 1800).expect("seasonal level for 03:00");
        assert!(within(early.seasonal_pps, 100.0, 0.1));
        assert!(early.learned_secs < 3 * DAY_SECS);
        assert_eq!(restored.baseline(host(15), next_day + 12 * HOUR), None);
    }

    #[test]
    fn restore_resamples_slots_and_keeps_the_latest_keys() {
        let bytes = four_days_of_surges().snapshot();
        let day5 = DAY0 + 4 * DAY_SECS;
        let halves = BaselineConfig { slot_secs: 1800, min_slot_secs: 600, ..Default::default() };
        let restored = BaselineTable::<IpAddr>::restore(halves, &bytes).unwrap();
        assert!(within(restored.baseline(host(1), day5 + 9 * HOUR + 900).unwrap().seasonal_pps, 400.0, 0.1));
        assert!(within(restored.baseline(host(1), day5 + 8 * HOUR + 2700).unwrap().seasonal_pps, 100.0, 0.1));
        let doubles = BaselineConfig { slot_secs: 7200, ..Default::default() };
        let restored = BaselineTable::<IpAddr>::restore(doubles, &bytes).unwrap();
        assert!(within(restored.baseline(host(1), day5 + 8 * HOUR).unwrap().seasonal_pps, 400.0, 0.1));

        let mut baselines = table(BaselineConfig::default());
        for key in 0..5u8 {
            baselines.learn(host(key), DAY0 + u64::from(key), &sample(100));
        }
        let two = BaselineConfig { max_keys: 2, ..Default::default() };
        let restored = BaselineTable::<IpAddr>::restore(two, &baselines.snapshot()).unwrap();
        assert_eq!(restored.len(), 2);
        assert_eq!(restored.stats().evicted, 3);
        assert!(restored.index.contains_key(&host(4)) && restored.index.contains_key(&host(3)));
    }

    #[test]
    fn restore_rejects_foreign_and_damaged_input() {
        let bytes = snapshot_bytes();
        let config = BaselineConfig::default;
        assert_eq!(BaselineTable::<IpAddr>::restore(config(), b"").unwrap_err(), BaselineError::NotSnapshot);
        assert_eq!(
            BaselineTable::<IpAddr>::restore(config(), b"{}").unwrap_err(),
            BaselineError::NotSnapshot
        );
        let mut future = bytes.to_vec();
        future[4] = 2;
        assert_eq!(
            BaselineTable::<IpAddr>::restore(config(), &future).unwrap_err(),
            BaselineError::Version(2)
        );
        let truncated = &bytes[..bytes.len() - 1];
        assert_eq!(
            BaselineTable::<IpAddr>::restore(config(), truncated).unwrap_err(),
            BaselineError::Checksum
        );
        // Keys of another type do not parse.
        assert!(matches!(BaselineTable::<u32>::restore(config(), bytes), Err(BaselineError::Corrupt(_))));
    }

    /// Replaces the checksum so that damage reaches the parser.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.len() >= CHECKSUM_LEN {
            let body = bytes.len() - CHECKSUM_LEN;
            let checksum = fnv1a(&bytes[..body]);
            bytes[body..].copy_from_slice(&checksum.to_le_bytes());
        }
        bytes
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), prefixed: bool) {
            let mut input = if prefixed { snapshot_bytes()[..6].to_vec() } else { Vec::new() };
            input.extend_from_slice(&bytes);
            let _ = BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &input);
            let _ = BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &reseal(input));
        }

        #[test]
        fn any_changed_byte_is_rejected(at in any::<prop::sample::Index>(), flip in 1..=255u8) {
            let mut bytes = snapshot_bytes().to_vec();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            prop_assert!(BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &bytes).is_err());
        }

        #[test]
        fn truncated_or_extended_input_is_rejected(
            cut in any::<prop::sample::Index>(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let bytes = snapshot_bytes();
            let cut = cut.index(bytes.len());
            prop_assert!(BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &bytes[..cut]).is_err());
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(&extra);
            prop_assert!(BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &longer).is_err());
        }

        /// Damage behind a valid checksum (a bug, or a crafted file) reaches the parser: it
        /// must answer Err or a usable table, never panic.
        #[test]
        fn resealed_damage_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = snapshot_bytes().to_vec();
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let cut = CHECKSUM_LEN + cut.index(bytes.len() - CHECKSUM_LEN);
            for input in [reseal(bytes.clone()), reseal(bytes[..cut].to_vec())] {
                if let Ok(restored) = BaselineTable::<IpAddr>::restore(BaselineConfig::default(), &input) {
                    let _ = restored.baseline(host(10), restored.now.saturating_add(1));
                    let _ = restored.snapshot();
                }
            }
        }
    }
}
