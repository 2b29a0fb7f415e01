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

//!
//! Layout: [`histogram`] collects a running slot's values, [`seasonal`] keeps the folded levels
//! per slot of the day, [`table`] is the bounded table (learn, hold, evict) and [`snapshot`] its
//! versioned, checksummed persistence.

use serde::{Deserialize, Serialize};

use crate::class::Class;

mod histogram;
mod seasonal;
pub mod snapshot;
mod table;
#[cfg(test)]
mod testing;

pub use snapshot::SNAPSHOT_VERSION;
pub use table::BaselineTable;

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

/// Why a snapshot was not restored (or a table not built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// The configuration fails [`BaselineConfig::validate`]; the message names the field.
    #[error("invalid baseline configuration: {0}")]
    Config(String),
    /// The bytes do not start with the snapshot magic.
    #[error("not a baseline snapshot")]
    NotSnapshot,
    /// A snapshot of a format version this build does not read (written by a newer build).
    #[error(
        "baseline snapshot version {0} is not supported (this build reads {oldest} to {SNAPSHOT_VERSION})",
        oldest = snapshot::OLDEST_READABLE_VERSION
    )]
    Version(u16),
    /// The checksum does not match: the file was cut short or damaged.
    #[error("baseline snapshot is truncated or corrupt (checksum mismatch)")]
    Checksum,
    /// The checksum matches but the content is inconsistent (a bug, or a crafted file).
    #[error("corrupt baseline snapshot: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let restored = BaselineTable::restore(BaselineConfig { percentile: 10, ..Default::default() }, &[]);
        assert!(matches!(restored, Err(BaselineError::Config(m)) if m.contains("percentile")));
    }
}
