//! The bounded table of learned baselines: learn, hold, answer and evict, keyed by `u128`
//! (hosts as IPv6 or IPv4-mapped addresses, groups by a hash of their name).

use std::collections::HashMap;
use std::mem::size_of;

use super::histogram::Histogram;
use super::seasonal::{CODE_NONE, count_congruent, decode, fold, fold_zeros};
use super::{
    BPS, Baseline, BaselineConfig, BaselineError, BaselineStats, FLOWS, METRICS, PPS, RECENT_AMPLIFICATION,
    RECENT_CLASSES, RECENT_LEN, Sample,
};
use crate::class::Class;

/// Keys are addresses an attacker can choose, so the index is keyed by a seed from OS
/// randomness (foldhash's own `RandomState` seeds from addresses and the clock only).
type KeyIndex = HashMap<u128, u32, foldhash::fast::FixedState>;

fn key_index() -> KeyIndex {
    KeyIndex::with_hasher(foldhash::fast::FixedState::with_seed(crate::flows::random_seed()))
}

/// Eviction sweeps run at most this often (event time), whatever the `maintain` call rate.
const SWEEP_EVERY_SECS: u64 = 60;
/// `slot_first` of a key that is not observing a slot (restored, not seen since).
pub(super) const NOT_OBSERVING: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub(super) struct KeyState {
    pub(super) first_seen: u64,
    /// Last second learned or held.
    pub(super) last: u64,
    /// First second observed in the running slot, or [`NOT_OBSERVING`].
    pub(super) slot_first: u64,
    /// Seconds learned or held since first seen (saturating).
    pub(super) active_secs: u32,
    /// Seconds held (under attack) in the running slot: neither values nor zeros.
    pub(super) held_in_slot: u32,
    /// Recent levels ([`RECENT_LEN`] layout), f32: the average forgets, so rounding stays ~1e-7.
    pub(super) recent: [f32; RECENT_LEN],
    pub(super) histograms: [Histogram; METRICS],
}

impl KeyState {
    pub(super) fn new(second: u64) -> Self {
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

/// `retention^gap`, exact for the common gap of 1.
pub(super) fn retention_over(retention: f64, gap: u64) -> f64 {
    match gap {
        0 => 1.0,
        1 => retention,
        _ => retention.powf(gap as f64),
    }
}

/// Learned baselines of up to `max_keys` keys (hosts, host groups...).
#[derive(Debug, Clone)]
pub struct BaselineTable {
    pub(super) config: BaselineConfig,
    pub(super) slots: usize,
    /// Seasonal codes per key: `slots * METRICS`.
    pub(super) stride: usize,
    /// Per-second retention of the recent average, e^(-1/recent_secs).
    pub(super) retention: f64,
    /// Keys learned in fewer seconds than this may be evicted as sparse.
    pub(super) sparse_limit: u32,
    pub(super) index: KeyIndex,
    // Dense columns, one row per key (swap-removed), so the map holds only an index: the map
    // rounds its capacity to a power of two and would otherwise double the big per-key state.
    pub(super) keys: Vec<u128>,
    pub(super) states: Vec<KeyState>,
    pub(super) seasonal: Vec<u16>,
    /// Latest second seen by `learn`, `hold` or `maintain`.
    pub(super) now: u64,
    pub(super) next_sweep: u64,
    pub(super) untracked: u64,
    pub(super) evicted: u64,
    pub(super) stale: u64,
}

impl BaselineTable {
    /// A table for a configuration that passes [`BaselineConfig::validate`].
    ///
    /// # Panics
    /// If `config.validate()` fails (validate configurations when reading them, as
    /// [`DetectConfig`](crate::DetectConfig) does; or use [`try_new`](Self::try_new)).
    // why: the one panic left in the library, the documented contract of `new` (and of
    // `Engine::new`, which rampart's daemon calls with configurations its parsers validated);
    // callers holding unvalidated configurations use `try_new` / `Engine::try_new`.
    #[allow(clippy::panic)]
    pub fn new(config: BaselineConfig) -> Self {
        match Self::try_new(config) {
            Ok(table) => table,
            Err(error) => panic!("{error}"),
        }
    }

    /// A table for `config`, or why the configuration is unusable.
    pub fn try_new(config: BaselineConfig) -> Result<Self, BaselineError> {
        config.validate().map_err(BaselineError::Config)?;
        let slots = config.slots();
        Ok(BaselineTable {
            slots,
            stride: slots * METRICS,
            retention: (-1.0 / config.recent_secs as f64).exp(),
            sparse_limit: u32::try_from((config.min_slot_secs / 10).max(1)).unwrap_or(u32::MAX),
            config,
            index: key_index(),
            keys: Vec::new(),
            states: Vec::new(),
            seasonal: Vec::new(),
            now: 0,
            next_sweep: 0,
            untracked: 0,
            evicted: 0,
            stale: 0,
        })
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
        size_of::<KeyState>()
            + self.stride * size_of::<u16>()
            + size_of::<u128>()
            + size_of::<(u128, u32)>()
            + 1
    }

    /// Key rows allocated (at least [`len`](Self::len); `maintain` gives back slack beyond 4x).
    pub fn capacity(&self) -> usize {
        self.states.capacity()
    }

    /// Heap bytes held, from allocated capacities (the index at one control byte per entry).
    pub fn heap_bytes(&self) -> usize {
        self.states.capacity() * size_of::<KeyState>()
            + self.seasonal.capacity() * size_of::<u16>()
            + self.keys.capacity() * size_of::<u128>()
            + self.index.capacity() * (size_of::<(u128, u32)>() + 1)
    }

    /// Learns `key`'s traffic in `second`. Seconds not after the key's last learned (or held)
    /// second are ignored and counted as stale. O(1), no allocation except for a new key.
    pub fn learn(&mut self, key: u128, second: u64, sample: &Sample) {
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
    pub fn hold(&mut self, key: u128, second: u64) {
        self.hold_with(key, second, None);
    }

    /// Like [`hold`](Self::hold), but the second's traffic capped by the caller at its alert
    /// limit enters the time-of-day histograms: a surge that comes back every day at the same
    /// hour becomes normal for that hour after one day, while a flood can raise its hour's
    /// seasonal level to the limit at most (then decays at `day_weight` a day). The recent
    /// levels hold, so an ongoing attack never teaches itself.
    pub fn hold_capped(&mut self, key: u128, second: u64, capped: &Sample) {
        self.hold_with(key, second, Some(capped));
    }

    fn hold_with(&mut self, key: u128, second: u64, capped: Option<&Sample>) {
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
    pub fn baseline(&self, key: u128, second: u64) -> Option<Baseline> {
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

    pub(super) fn insert(&mut self, key: u128, second: u64) -> Option<usize> {
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
    pub(super) fn settled_code(&self, entry: usize, metric: usize, index: usize, target: u64) -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::DAY_SECS;
    use crate::baseline::testing::*;

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
        let table = BaselineTable::new(BaselineConfig::default());
        println!("bytes per key: {}", table.bytes_per_key());
        assert!(table.bytes_per_key() < 600, "{}", table.bytes_per_key());
        // The smallest slots accepted (96 a day: 576 bytes of seasonal codes) stay under 1000.
        let fine =
            BaselineTable::new(BaselineConfig { slot_secs: 900, min_slot_secs: 600, ..Default::default() });
        assert!(fine.bytes_per_key() < 1000, "{}", fine.bytes_per_key());
    }
}
