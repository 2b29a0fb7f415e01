//! Per-route and per-host baselines of request rate, error share and upstream latency, learned
//! the way detection learns its traffic baselines (crates/detect, `baseline`): the UTC day cut
//! into slots; while a slot runs, a quarter-octave histogram collects each second's value and
//! when the slot ends its percentile is folded into that slot's seasonal level (weight
//! `day_weight`); beside it an exponentially weighted recent level (time constant
//! `recent_secs`). The baseline is the larger of the two, offered after `warmup_secs` of
//! learning or as soon as the slot has a seasonal level.
//!
//! Why not detection's `BaselineTable` itself: it is built around packet metrics (pps, bps,
//! flows, traffic classes) and a binary snapshot; the shield needs three other metrics, of
//! which two (errors, latency) are only defined in seconds that had responses.
//!
//! Seconds flagged as under flood are held: neither learned nor counted as quiet, so a flood
//! neither inflates nor deflates the baseline. Memory: a key costs about 24 slots x 3 metrics
//! x 4 bytes plus three 32-bucket histograms; keys are bounded by `max_keys`.
//!
//! Pure: time is the `second` argument (Unix seconds, UTC).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const DAY_SECS: u64 = 86_400;
const BUCKETS: usize = 48;

/// What is learned, per metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests per second.
    Rate = 0,
    /// Share of 5xx answers and origin failures, in thousandths.
    ErrorPermille = 1,
    /// Mean upstream latency in the second, milliseconds.
    LatencyMs = 2,
}

const METRICS: usize = 3;

/// Learning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnConfig {
    /// Percentile of a slot's per-second values kept as its seasonal level (50..=99).
    pub percentile: u8,
    /// Seasonal slot length in seconds; divides 86400, at least 900.
    pub slot_secs: u64,
    /// Weight of a new day's slot percentile.
    pub day_weight: f64,
    /// Time constant of the recent level, seconds.
    pub recent_secs: u64,
    /// Seconds of learning before a baseline is offered (unless the slot has a seasonal level).
    pub warmup_secs: u64,
    /// A slot observed for fewer seconds than this is not folded.
    pub min_slot_secs: u64,
    /// Keys (routes and hosts) learned at most.
    pub max_keys: usize,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig {
            percentile: 95,
            slot_secs: 3600,
            day_weight: 0.25,
            recent_secs: 900,
            warmup_secs: 1800,
            min_slot_secs: 600,
            max_keys: 4096,
        }
    }
}

impl LearnConfig {
    /// The first bad field, as `"field: message"`.
    pub fn validate(&self) -> Result<(), String> {
        if !(50..=99).contains(&self.percentile) {
            return Err(format!("percentile: must be 50..=99, got {}", self.percentile));
        }
        if self.slot_secs < 900 || !DAY_SECS.is_multiple_of(self.slot_secs) {
            return Err(format!("slot_secs: must divide 86400 and be at least 900, got {}", self.slot_secs));
        }
        if !(self.day_weight > 0.0 && self.day_weight <= 1.0) {
            return Err(format!("day_weight: must be in (0, 1], got {}", self.day_weight));
        }
        if self.recent_secs == 0 {
            return Err("recent_secs: must be at least 1".into());
        }
        if self.min_slot_secs == 0 || self.min_slot_secs > self.slot_secs {
            return Err("min_slot_secs: must be 1..=slot_secs".into());
        }
        if self.max_keys == 0 {
            return Err("max_keys: must be at least 1".into());
        }
        Ok(())
    }

    fn slots(&self) -> usize {
        (DAY_SECS / self.slot_secs) as usize
    }
}

/// Quarter-octave histogram of per-second values of the running slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Histogram {
    counts: Vec<u32>,
}

fn bucket_of(value: f64) -> usize {
    if value < 1.0 { 0 } else { ((4.0 * value.log2()).floor() as usize + 1).min(BUCKETS - 1) }
}

fn bucket_value(bucket: usize) -> f64 {
    if bucket == 0 { 0.0 } else { ((bucket as f64 - 0.5) / 4.0).exp2() }
}

impl Histogram {
    fn record(&mut self, value: f64) {
        if self.counts.len() != BUCKETS {
            self.counts = vec![0; BUCKETS];
        }
        let b = bucket_of(value);
        self.counts[b] = self.counts[b].saturating_add(1);
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    fn percentile(&self, percentile: u8) -> f64 {
        let total = self.total();
        let rank_from_top = (total * u64::from(100 - percentile)).div_ceil(100).max(1);
        let mut seen = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate().rev() {
            seen += u64::from(count);
            if seen >= rank_from_top {
                return bucket_value(bucket);
            }
        }
        0.0
    }
}

/// One metric's learned levels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    /// Per slot of the day: the folded level, `None` until a slot was folded.
    seasonal: Vec<Option<f32>>,
    running: Histogram,
    recent: Option<f64>,
    /// Seconds folded into `recent` (saturating): while fewer than `recent_secs`, the recent
    /// level is their plain mean, so a short warm-up is not just its first second.
    #[serde(default)]
    recent_secs_seen: u64,
}

impl Series {
    fn learn(&mut self, value: f64, elapsed_secs: u64, config: &LearnConfig) {
        self.running.record(value);
        let elapsed = elapsed_secs.max(1);
        self.recent_secs_seen = self.recent_secs_seen.saturating_add(elapsed);
        // The larger of the time constant's weight and a running mean's: a plain EWMA started
        // from the first second keeps that second (all visitors' first pages and assets at
        // once, or a quiet start) for about `recent_secs`, and the trigger, a multiple of it,
        // was then far off after a short warm-up.
        let alpha = (1.0 - (-(elapsed as f64) / config.recent_secs as f64).exp())
            .max(elapsed as f64 / self.recent_secs_seen as f64);
        self.recent = Some(match self.recent {
            None => value,
            Some(old) => old + alpha * (value - old),
        });
    }

    fn fold(&mut self, slot: usize, config: &LearnConfig) {
        if self.seasonal.len() != config.slots() {
            self.seasonal = vec![None; config.slots()];
        }
        if self.running.total() >= config.min_slot_secs {
            let value = self.running.percentile(config.percentile);
            let folded = match self.seasonal[slot] {
                None => value,
                Some(old) => f64::from(old) * (1.0 - config.day_weight) + value * config.day_weight,
            };
            self.seasonal[slot] = Some(folded as f32);
        }
        self.running = Histogram::default();
    }

    fn seasonal_at(&self, slot: usize) -> Option<f64> {
        self.seasonal.get(slot).copied().flatten().map(f64::from)
    }
}

/// One second's observations for a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondCounts {
    /// Requests.
    pub requests: u64,
    /// Responses observed (status or failure).
    pub responses: u64,
    /// 5xx answers and origin failures.
    pub errors: u64,
    /// Sum of upstream latencies, milliseconds.
    pub latency_ms_sum: f64,
}

/// What is normal for a key now, per metric; `None` while warming up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Levels {
    /// Requests per second.
    pub rate: f64,
    /// Error share (0..1).
    pub error_share: f64,
    /// Mean upstream latency, ms.
    pub latency_ms: f64,
    /// Seconds learned.
    pub learned_secs: u64,
}

/// A key's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyBaseline {
    series: [Series; METRICS],
    first_second: u64,
    last_second: u64,
    /// Absolute slot number (second / slot_secs) the running histograms belong to.
    slot_number: u64,
    learned_secs: u64,
}

impl KeyBaseline {
    /// Learn `counts` for `second` (ignored if not after the last second learned). Quiet seconds
    /// in between count as zero requests; `held` seconds (under flood) are skipped.
    pub fn learn(&mut self, second: u64, counts: SecondCounts, held: bool, config: &LearnConfig) {
        if self.learned_secs > 0 && second <= self.last_second {
            return;
        }
        let slot_secs = config.slot_secs;
        if self.learned_secs == 0 {
            self.first_second = second;
            self.slot_number = second / slot_secs;
        }
        let gap = if self.learned_secs == 0 { 1 } else { second - self.last_second };
        let slot_number = second / slot_secs;
        if slot_number != self.slot_number {
            let slot = (self.slot_number % config.slots() as u64) as usize;
            for series in &mut self.series {
                series.fold(slot, config);
            }
            self.slot_number = slot_number;
        }
        // Quiet seconds: zero requests (bounded: at most one slot's worth is recorded).
        let quiet = (gap - 1).min(slot_secs);
        for _ in 0..quiet {
            self.series[Metric::Rate as usize].running.record(0.0);
        }
        self.last_second = second;
        if held {
            return;
        }
        self.learned_secs += 1;
        let rate = &mut self.series[Metric::Rate as usize];
        rate.learn(counts.requests as f64, gap, config);
        if counts.responses > 0 {
            let n = counts.responses as f64;
            self.series[Metric::ErrorPermille as usize].learn(1000.0 * counts.errors as f64 / n, 1, config);
            self.series[Metric::LatencyMs as usize].learn(counts.latency_ms_sum / n, 1, config);
        }
    }

    /// The baseline at `second`, or `None` while warming up.
    pub fn levels(&self, second: u64, config: &LearnConfig) -> Option<Levels> {
        if self.learned_secs == 0 {
            return None;
        }
        let slot = ((second / config.slot_secs) % config.slots() as u64) as usize;
        let seasonal_seen = self.series[Metric::Rate as usize].seasonal_at(slot).is_some();
        if !seasonal_seen && self.last_second.saturating_sub(self.first_second) < config.warmup_secs {
            return None;
        }
        let level = |metric: Metric| {
            let series = &self.series[metric as usize];
            series.seasonal_at(slot).unwrap_or(0.0).max(series.recent.unwrap_or(0.0))
        };
        Some(Levels {
            rate: level(Metric::Rate),
            error_share: level(Metric::ErrorPermille) / 1000.0,
            latency_ms: level(Metric::LatencyMs),
            learned_secs: self.learned_secs,
        })
    }
}

/// The bounded table of keys (`route:NAME`, `host:NAME`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineBook {
    /// Keys and their baselines.
    pub keys: BTreeMap<String, KeyBaseline>,
    /// Keys refused because the table was full.
    pub untracked: u64,
}

impl BaselineBook {
    /// Learn one second of `key`.
    pub fn learn(&mut self, key: &str, second: u64, counts: SecondCounts, held: bool, config: &LearnConfig) {
        if let Some(baseline) = self.keys.get_mut(key) {
            baseline.learn(second, counts, held, config);
        } else if self.keys.len() < config.max_keys {
            let mut baseline = KeyBaseline::default();
            baseline.learn(second, counts, held, config);
            self.keys.insert(key.to_owned(), baseline);
        } else {
            self.untracked += 1;
        }
    }

    /// The levels of `key` at `second`.
    pub fn levels(&self, key: &str, second: u64, config: &LearnConfig) -> Option<Levels> {
        self.keys.get(key)?.levels(second, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64) -> SecondCounts {
        SecondCounts { requests, responses: requests, errors: 0, latency_ms_sum: requests as f64 * 20.0 }
    }

    #[test]
    fn warms_up_then_follows_the_recent_level() {
        let config = LearnConfig { warmup_secs: 100, recent_secs: 60, ..Default::default() };
        let mut key = KeyBaseline::default();
        for s in 0..50 {
            key.learn(1_000_000 + s, counts(40), false, &config);
        }
        assert_eq!(key.levels(1_000_050, &config), None);
        for s in 50..400 {
            key.learn(1_000_000 + s, counts(40), false, &config);
        }
        let levels = key.levels(1_000_400, &config).unwrap();
        assert!((levels.rate - 40.0).abs() < 1.0, "{levels:?}");
        assert!((levels.latency_ms - 20.0).abs() < 0.5);
        assert_eq!(levels.error_share, 0.0);
    }

    #[test]
    fn a_slot_learns_its_percentile_and_held_seconds_change_nothing() {
        let config = LearnConfig { warmup_secs: 10, recent_secs: 30, ..Default::default() };
        let mut key = KeyBaseline::default();
        let day = 20_000 * DAY_SECS;
        // 09:00-10:00: 95 % of seconds at 100, 5 % at 1000.
        for s in 0..3600 {
            let n = if s % 20 == 0 { 1000 } else { 100 };
            key.learn(day + 9 * 3600 + s, counts(n), false, &config);
        }
        // Quiet until 10:30, then a flood that is held.
        key.learn(day + 10 * 3600 + 1800, counts(5), false, &config);
        let before = key.clone();
        for s in 1..100 {
            key.learn(day + 10 * 3600 + 1800 + s, counts(50_000), true, &config);
        }
        assert_eq!(key.series[0].recent, before.series[0].recent);
        // Next day at 09:00 the seasonal level (p95 of the slot) answers.
        let levels = key.levels(day + DAY_SECS + 9 * 3600, &config).unwrap();
        assert!(levels.rate > 80.0 && levels.rate < 1200.0, "{levels:?}");
    }

    #[test]
    fn a_short_warm_up_learns_its_mean_not_its_first_second() {
        let config = LearnConfig { warmup_secs: 8, ..Default::default() };
        let mut key = KeyBaseline::default();
        // A burst as every visitor opens its first page, then the steady browsing rate.
        key.learn(1_000_000, counts(250), false, &config);
        for s in 1..10 {
            key.learn(1_000_000 + s, counts(60), false, &config);
        }
        let levels = key.levels(1_000_010, &config).unwrap();
        assert!((levels.rate - 79.0).abs() < 0.5, "{levels:?}");
        // Past `recent_secs` the time constant rules again: one second moves it little.
        for s in 10..2000 {
            key.learn(1_000_000 + s, counts(60), false, &config);
        }
        key.learn(1_002_000, counts(600), false, &config);
        let levels = key.levels(1_002_001, &config).unwrap();
        assert!(levels.rate < 61.0, "{levels:?}");
    }

    #[test]
    fn the_book_is_bounded() {
        let config = LearnConfig { max_keys: 2, ..Default::default() };
        let mut book = BaselineBook::default();
        for key in ["a", "b", "c"] {
            book.learn(key, 1, counts(1), false, &config);
        }
        assert_eq!(book.keys.len(), 2);
        assert_eq!(book.untracked, 1);
    }
}
