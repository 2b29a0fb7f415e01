//! Retention: how long and how much attack history the store keeps, and the pruning and
//! compaction that hold it there.
//!
//! Attacks are deleted oldest first (by store id, the order they started in) with their
//! events and index rows, when their latest event is older than `max_age`, or while the
//! store's payload is over its size target. Attacks ongoing in the current run are never
//! deleted. Deleting happens in bounded chunks, each inside a durable transaction: a long
//! attack's events may go over several chunks before its row goes.
//!
//! redb reuses freed pages but does not give them back to the file system by itself (it only
//! trims a trailing free half), and it grows the file by doubling it; the size cap counts what
//! the store holds (keys and values, [`crate::StoreStats::payload_bytes`]) and keeps it to a
//! share of `max_bytes` ([`PAYLOAD_SHARE_PERCENT`]) small enough that redb's overhead and one
//! doubling stay under the cap. [`crate::Store::maintain`] compacts the file when it is much
//! larger than what it holds (after a burst, or a lowered cap).

use std::fmt;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use crate::codec;
use crate::{ID_KEY, INDEX_ROW, Status, Store, StoreError, Tables, db_error, row_bytes};

/// How much history the store keeps (`[store] retention_days` and `max_size_mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Attacks whose latest event is older than this are deleted; `None` keeps them whatever
    /// their age.
    pub max_age: Option<Duration>,
    /// Size the store file is kept under, in bytes; `None`: no cap.
    pub max_bytes: Option<u64>,
}

impl Default for Retention {
    /// 30 days and 512 MiB: weeks of history on a small disk.
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(u64::from(Self::DEFAULT_DAYS) * DAY_SECS)),
            max_bytes: Some(Self::DEFAULT_MAX_SIZE_MB << 20),
        }
    }
}

const DAY_SECS: u64 = 86_400;

/// Why a retention setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// `max_size_mb` is below what a store needs to hold more than a handful of attacks.
    #[error("max_size_mb = {0}: must be 0 (no cap) or at least {min} (MiB)", min = Retention::MIN_MAX_SIZE_MB)]
    TooSmall(u64),
    /// `retention_days` is beyond any plausible need (and would overflow a duration).
    #[error("retention_days = {0}: must be 0 (keep forever) to {max}", max = Retention::MAX_DAYS)]
    TooLong(u64),
}

impl Retention {
    /// Default `retention_days`.
    pub const DEFAULT_DAYS: u32 = 30;
    /// Default `max_size_mb`.
    pub const DEFAULT_MAX_SIZE_MB: u64 = 512;
    /// Smallest `max_size_mb` accepted (other than 0).
    pub const MIN_MAX_SIZE_MB: u64 = 16;
    /// Largest `retention_days` accepted: a century.
    pub const MAX_DAYS: u64 = 36_500;
    /// Keep everything (the behaviour before retention existed).
    pub const UNLIMITED: Retention = Retention { max_age: None, max_bytes: None };

    /// From the configuration keys `[store] retention_days` and `max_size_mb` (MiB); 0 turns
    /// that limit off.
    pub fn from_config(retention_days: u64, max_size_mb: u64) -> Result<Retention, RetentionError> {
        if retention_days > Self::MAX_DAYS {
            return Err(RetentionError::TooLong(retention_days));
        }
        if max_size_mb != 0 && max_size_mb < Self::MIN_MAX_SIZE_MB {
            return Err(RetentionError::TooSmall(max_size_mb));
        }
        Ok(Retention {
            max_age: (retention_days > 0).then(|| Duration::from_secs(retention_days * DAY_SECS)),
            max_bytes: (max_size_mb > 0).then(|| max_size_mb.saturating_mul(1 << 20)),
        })
    }

    /// Payload bytes the store is pruned down to, if it has a size cap.
    pub(crate) fn payload_target(&self) -> Option<u64> {
        self.max_bytes.map(|max| max / 100 * PAYLOAD_SHARE_PERCENT)
    }
}

/// Share of `max_bytes` the payload may take. Measured with attacks of realistic size, redb
/// allocates 1.34 bytes per payload byte, and it grows the file by doubling it (below 4 GiB),
/// so a file can be up to twice what it holds: 2 × 1.34 × 35 % = 94 % of the cap, worst case.
/// See the `churn_levels_off_under_the_cap` soak in `tests/soak.rs`.
pub const PAYLOAD_SHARE_PERCENT: u64 = 35;
/// `record` checks ages once a minute of recorded time.
pub(crate) const AGE_CHECK_EVERY_NANOS: u64 = 60_000_000_000;
/// Events `record` may delete per call, at least (it may delete twice its batch).
pub(crate) const RECORD_PRUNE_EVENTS: usize = 256;
/// Events one `maintain` transaction deletes at most.
pub const MAINTAIN_CHUNK_EVENTS: usize = 4096;
/// Time after which `maintain` stops pruning and returns (`Maintenance::more`).
pub const MAINTAIN_BUDGET: Duration = Duration::from_millis(250);
/// Attack rows one pruning step looks at without deleting any before it gives up (attacks
/// ongoing, or long attacks started before the cutoff but still recent).
const MAX_SKIPPED: usize = 1024;
/// Rows read ahead per batch while pruning.
const HEADS_PER_BATCH: usize = 64;
/// Compaction: only files at least this large...
pub const COMPACT_MIN_FILE_BYTES: u64 = 32 << 20;
/// ...and at least this many times their payload (plus [`COMPACT_SLACK_BYTES`])...
pub const COMPACT_RATIO: u64 = 3;
/// ...or over `max_bytes`.
pub const COMPACT_SLACK_BYTES: u64 = 16 << 20;
/// At most one compaction this often.
pub const COMPACT_EVERY: Duration = Duration::from_secs(600);

/// What one [`crate::Store::maintain`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintenance {
    /// Attacks deleted (with all their events).
    pub pruned_attacks: u64,
    /// Events deleted.
    pub pruned_events: u64,
    /// Pruning stopped at its time budget with more to delete: call again soon.
    pub more: bool,
    /// The compaction run, if one was.
    pub compaction: Option<Compaction>,
    /// A compaction was due but a reader held a read transaction; it is retried next time.
    pub compaction_deferred: bool,
}

/// One compaction of the store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// File size before, bytes.
    pub before: u64,
    /// File size after, bytes.
    pub after: u64,
    /// How long it held the store.
    pub took: Duration,
}

impl Maintenance {
    /// Whether it did anything worth a log line.
    pub fn is_noteworthy(&self) -> bool {
        self.pruned_attacks > 0 || self.compaction.is_some()
    }
}

impl fmt::Display for Maintenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attack store retention: deleted {} attacks ({} events)",
            self.pruned_attacks, self.pruned_events
        )?;
        if self.more {
            write!(f, ", more to delete")?;
        }
        if let Some(c) = &self.compaction {
            write!(
                f,
                "; compacted {:.1} MiB to {:.1} MiB in {:.1} s",
                c.before as f64 / 1048576.0,
                c.after as f64 / 1048576.0,
                c.took.as_secs_f64()
            )?;
        }
        if self.compaction_deferred {
            write!(f, "; compaction deferred (a reader is open)")?;
        }
        Ok(())
    }
}

/// What one pruning step did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Step {
    pub attacks: u64,
    pub events: u64,
    /// Nothing left to delete (as far as this step could see).
    pub done: bool,
}

/// Deletes up to `budget` events of the attacks retention wants gone, oldest first, and the
/// attacks left without events; `bytes` is the payload counter, kept up to date.
pub(crate) fn prune_step(
    t: &mut Tables<'_>,
    bytes: &mut u64,
    retention: &Retention,
    now: u64,
    budget: usize,
) -> Result<Step, redb::Error> {
    let cutoff =
        retention.max_age.map(|age| now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)));
    let target = retention.payload_target();
    let mut step = Step::default();
    let mut skipped = 0;
    let mut from = 0;
    loop {
        let over = target.is_some_and(|target| *bytes > target);
        if !over && cutoff.is_none() {
            step.done = true;
            return Ok(step);
        }
        let mut heads = Vec::with_capacity(HEADS_PER_BATCH);
        for entry in t.attacks.range(from..)?.take(HEADS_PER_BATCH) {
            let (id, value) = entry?;
            heads.push((id.value(), codec::decode_head(value.value()), value.value().len()));
        }
        if heads.is_empty() {
            step.done = true;
            return Ok(step);
        }
        for (id, head, len) in heads {
            from = id + 1;
            let over = target.is_some_and(|target| *bytes > target);
            // A row this version cannot read counts as old: nothing else would ever delete it.
            let old = match (head, cutoff) {
                (Some(head), Some(cutoff)) => head.last_recorded < cutoff,
                (Some(_), None) => false,
                (None, _) => true,
            };
            let ongoing = head.is_some_and(|h| h.status == Status::Ongoing);
            if ongoing || !(over || old) {
                // Later ids started later: once one started after the cutoff, no later one is
                // old, and if size is not the matter either, the step is over.
                let rest_young = match (head, cutoff) {
                    (Some(head), Some(cutoff)) => head.first_recorded >= cutoff,
                    (_, None) => true,
                    (None, Some(_)) => false,
                };
                skipped += 1;
                // Past MAX_SKIPPED the rows ahead cannot go (ongoing): no progress to make.
                if (!over && rest_young) || skipped >= MAX_SKIPPED {
                    step.done = true;
                    return Ok(step);
                }
                continue;
            }
            let room = budget.saturating_sub(step.events as usize);
            let mut keys = Vec::with_capacity(room.min(1024));
            for entry in t.index.range((id, 0)..=(id, u64::MAX))?.take(room) {
                keys.push(entry?.0.value());
            }
            for key in &keys {
                if let Some(value) = t.events.remove(key.1)? {
                    *bytes = bytes.saturating_sub(row_bytes(ID_KEY, value.value().len()));
                }
                t.index.remove(key)?;
                *bytes = bytes.saturating_sub(INDEX_ROW);
            }
            step.events += keys.len() as u64;
            if t.index.range((id, 0)..=(id, u64::MAX))?.next().is_some() {
                // The budget ran out inside this attack; the next step goes on with it.
                return Ok(step);
            }
            t.attacks.remove(id)?;
            *bytes = bytes.saturating_sub(row_bytes(ID_KEY, len));
            step.attacks += 1;
            if step.events as usize >= budget {
                return Ok(step);
            }
        }
    }
}

pub(crate) fn maintain(store: &mut Store, now: u64) -> Result<Maintenance, StoreError> {
    let started = Instant::now();
    let mut report = Maintenance::default();
    loop {
        let path = store.path.as_path();
        let txn = store.db.begin_write().map_err(|e| db_error(path, e))?;
        let step = {
            let mut t = Tables::open(&txn).map_err(|e| db_error(path, e))?;
            let mut bytes = t.counter("bytes").map_err(|e| db_error(path, e))?;
            let step = prune_step(&mut t, &mut bytes, &store.retention, now, MAINTAIN_CHUNK_EVENTS)
                .map_err(|e| db_error(path, e))?;
            t.meta.insert("bytes", bytes).map_err(|e| db_error(path, e))?;
            step
        };
        if step.events > 0 || step.attacks > 0 {
            txn.commit().map_err(|e| db_error(path, e))?;
        } else {
            txn.abort().map_err(|e| db_error(path, e))?;
        }
        report.pruned_attacks += step.attacks;
        report.pruned_events += step.events;
        if step.done {
            break;
        }
        if started.elapsed() >= MAINTAIN_BUDGET {
            report.more = true;
            return Ok(report);
        }
    }
    store.last_age_check = now;
    if store.last_compaction.is_some_and(|at| at.elapsed() < COMPACT_EVERY) {
        return Ok(report);
    }
    let stats = store.stats()?;
    if !compaction_useful(stats.file_bytes, stats.payload_bytes, &store.retention) {
        return Ok(report);
    }
    let begun = Instant::now();
    match store.db.compact() {
        Ok(_) => {
            store.last_compaction = Some(Instant::now());
            let after = std::fs::metadata(&store.path).map_err(|e| db_error(&store.path, e))?.len();
            report.compaction = Some(Compaction { before: stats.file_bytes, after, took: begun.elapsed() });
        }
        // A reader (`rampart attacks`) holds a snapshot: compacting would move its pages.
        Err(redb::CompactionError::TransactionInProgress) => report.compaction_deferred = true,
        Err(e) => return Err(db_error(&store.path, e)),
    }
    Ok(report)
}

/// Whether rewriting the file would give back a good part of it.
fn compaction_useful(file: u64, payload: u64, retention: &Retention) -> bool {
    if file < COMPACT_MIN_FILE_BYTES {
        return false;
    }
    let bloated = file > payload.saturating_mul(COMPACT_RATIO).saturating_add(COMPACT_SLACK_BYTES);
    let over_cap = retention.max_bytes.is_some_and(|max| file > max)
        && file > payload.saturating_add(payload / 2).saturating_add(COMPACT_SLACK_BYTES);
    bloated || over_cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_keys() {
        assert_eq!(Retention::from_config(0, 0).unwrap(), Retention::UNLIMITED);
        let r = Retention::from_config(7, 64).unwrap();
        assert_eq!(r.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(r.max_bytes, Some(64 << 20));
        assert_eq!(Retention::from_config(30, 512).unwrap(), Retention::default());
        assert_eq!(Retention::from_config(1, 15), Err(RetentionError::TooSmall(15)));
        assert!(Retention::from_config(u64::MAX, 0).unwrap_err().to_string().contains("retention_days"));
    }

    #[test]
    fn compaction_only_when_it_pays() {
        let r = Retention::default();
        assert!(!compaction_useful(20 << 20, 0, &r));
        assert!(compaction_useful(400 << 20, 50 << 20, &r));
        assert!(!compaction_useful(400 << 20, 200 << 20, &r));
        assert!(compaction_useful(600 << 20, 250 << 20, &r));
        assert!(!compaction_useful(600 << 20, 500 << 20, &r));
    }
}
