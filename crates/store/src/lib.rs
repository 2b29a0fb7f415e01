//! Rampart attack store: every attack lifecycle event, and the latest state of every attack,
//! in one embedded file (`rampart.redb`) in the data directory.
//!
//! - Crash safety: each call to [`Store::record`] is one write transaction committed with
//!   immediate durability (fsync), so a `kill -9` loses nothing that `record` returned for.
//! - Persistent ids: the detection engine numbers attacks from 1 at every start. The store
//!   keeps a persisted counter and gives each attack a store id, unique across restarts. The
//!   (run, engine id) → store id map of the attacks ongoing in this run lives in the file (table
//!   `live`), not in memory: an entry goes when its attack ends, so it holds at most the attacks
//!   ongoing at once (the engine's `max_attacks`), and never more than [`MAX_LIVE_ATTACKS`].
//!   Every recorded attack has its `id` set to the store id, so what the daemon prints, posts
//!   and stores agree.
//! - Restarts: opening the store for writing starts a new run; attacks still ongoing from an
//!   earlier run (the daemon died without ending them) are marked [`Status::Interrupted`] and
//!   listed by [`Store::interrupted`].
//! - Retention ([`Retention`]): attacks older than `max_age`, and the oldest attacks while the
//!   store holds more than its size cap allows, are deleted with their events, a bounded chunk
//!   per transaction, by [`Store::record`] itself and by [`Store::maintain`] (which also
//!   compacts the file when that frees much of it).
//! - Memory: redb's page cache is capped ([`WRITER_CACHE_BYTES`], [`READER_CACHE_BYTES`]; redb's
//!   default of 1 GiB let the daemon grow with the file), and listings stream from one read
//!   transaction ([`StoreReader::iter`], [`StoreReader::list`]) instead of loading every attack.
//! - One writer process, any number of concurrent readers ([`StoreReader`], e.g. `rampart
//!   attacks list` while the daemon runs).
//! - The data directory is kept `0700` and the store file `0600` ([`files`]).
//!
//! Records are typed: attacks and event kinds are `rampart_contract`'s, the vocabulary every
//! layer shares. Each record carries a [`SchemaVersion`] (JSON: `"schema_version": 1`) as its
//! first field; a record of another version (written by an older Rampart) is refused with
//! [`StoreError::NotVersion1`], which says to move the old store aside. `codec.rs` is the one
//! place that encodes and decodes records. The JSON Schemas of what `rampart attacks list
//! --json` and `show --json` print ([`StoredAttack`], [`AttackDetail`]) are published in
//! `docs/schema/`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod codec;
pub mod files;
mod reader;
pub mod retention;

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rampart_contract::{Attack, AttackId, EventKind, EventTime, SchemaVersion, Target};
use redb::{
    ConcurrencyMode, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use reader::read_iter;
pub use reader::{AttackIter, StoreReader};
pub use retention::{Compaction, Maintenance, Retention, RetentionError};

/// File name of the store inside the data directory.
pub const FILE_NAME: &str = "rampart.redb";

/// Page cache of the writing daemon. Recording touches the newest pages only; without a cap
/// redb caches up to 1 GiB, which is how the daemon's memory followed the file up.
pub const WRITER_CACHE_BYTES: usize = 32 << 20;
/// Page cache of a reader (`rampart attacks`): listings read each page once.
pub const READER_CACHE_BYTES: usize = 16 << 20;

/// Counters: `run`, `attack`, `event` (last value handed out), `bytes` (payload, for
/// retention), `schema`.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Store id → [`StoredAttack`].
const ATTACKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("attacks");
/// Event sequence number → [`StoredEvent`].
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// (store id, event sequence number): the events of one attack, in order.
const ATTACK_EVENTS: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("attack_events");
/// (run, engine id) → store id, for the attacks ongoing in the current run.
const LIVE: TableDefinition<'_, (u64, u64), u64> = TableDefinition::new("live");

/// Layout version: 2 added `live` and the `bytes` counter (a version 1 store is upgraded on
/// its first open for writing).
const SCHEMA: u64 = 2;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or is not writable.
    #[error("cannot use data directory {}: {reason}", dir.display())]
    Directory {
        /// The data directory.
        dir: PathBuf,
        /// What the file system said.
        reason: std::io::Error,
    },
    /// There is no store file in the data directory (nothing was ever recorded there).
    #[error("no attack store in {} (no {FILE_NAME}; has `rampart run` used this data directory?)", dir.display())]
    Missing {
        /// The data directory.
        dir: PathBuf,
    },
    /// The database file could not be opened, read or written.
    #[error("attack store {}: {reason}", path.display())]
    Database {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        reason: redb::Error,
    },
    /// A stored record is a version-1 record this build cannot read (damaged).
    #[error("attack store {}: corrupt record: {reason}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What the JSON parser said.
        reason: serde_json::Error,
    },
    /// A stored record is not a schema version 1 record: an older (or newer) Rampart wrote it.
    #[error(
        "attack store {}: not a version-1 record ({reason}): it was written by another Rampart \
         version; move {} aside (rename it) and `rampart run` starts a new store",
        path.display(),
        path.display()
    )]
    NotVersion1 {
        /// The store file.
        path: PathBuf,
        /// What the JSON parser said about the record's `schema_version`.
        reason: serde_json::Error,
    },
}

/// State of a stored attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Onset seen, no end yet, and the run that saw it is (as far as the store knows) alive.
    Ongoing,
    /// End seen.
    Ended,
    /// The daemon stopped without ending it (crash, kill -9); its last state is kept.
    Interrupted,
}

/// One event to record: its kind and the attack as the engine reported it (with the engine's
/// `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub attack: Attack,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredEvent {
    pub schema_version: SchemaVersion,
    /// Sequence number, unique and increasing across runs.
    pub seq: u64,
    /// Store id of the attack.
    pub attack_id: u64,
    pub kind: EventKind,
    /// When it was recorded, Unix nanoseconds (wall clock of the daemon).
    pub recorded: u64,
    /// The attack at that event, its `id` set to the store id.
    pub attack: Attack,
}

/// The latest state of one attack; `rampart attacks list --json` prints an array of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredAttack {
    pub schema_version: SchemaVersion,
    /// Store id, unique across runs.
    pub id: u64,
    /// Daemon run that detected it (1 for the first run of this store).
    pub run: u64,
    /// Id the engine gave it within that run.
    pub engine_id: u64,
    pub status: Status,
    /// Kind of the latest event.
    pub last_event: EventKind,
    /// Events recorded for it.
    pub events: u64,
    /// When its first event was recorded, Unix nanoseconds (wall clock of the daemon).
    pub first_recorded: u64,
    /// When its latest event was recorded, Unix nanoseconds.
    pub last_recorded: u64,
    /// The attack as of the latest event, its `id` set to the store id.
    pub attack: Attack,
}

/// What `rampart attacks show --json` prints: one attack's latest state and all its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttackDetail {
    pub schema_version: SchemaVersion,
    pub attack: StoredAttack,
    /// In the order they were recorded.
    pub events: Vec<StoredEvent>,
}

impl AttackDetail {
    pub fn new(attack: StoredAttack, events: Vec<StoredEvent>) -> Self {
        AttackDetail { schema_version: SchemaVersion, attack, events }
    }
}

/// An attack an earlier run left ongoing, found (and marked [`Status::Interrupted`]) when the
/// store was opened. Displays as the line the daemon logs for it.
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptedAttack {
    /// Store id.
    pub id: u64,
    /// The attack's target (host, prefix or group).
    pub target: Target,
    /// The attack's start.
    pub start: EventTime,
    /// The run that saw it last.
    pub run: u64,
}

impl std::fmt::Display for InterruptedAttack {
    /// `attack 1 on 198.51.100.10 (since 2025-12-01T20:00:00Z) was interrupted by the
    /// previous stop`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attack {} on {} (since {}) was interrupted by the previous stop",
            self.id,
            self.target,
            self.start.to_rfc3339()
        )
    }
}

/// Sizes of the store, cheap to read (no scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Attacks kept.
    pub attacks: u64,
    /// Events kept.
    pub events: u64,
    /// Bytes of keys and values kept: what retention's size cap counts (see [`Retention`]).
    pub payload_bytes: u64,
    /// Size of the file on disk.
    pub file_bytes: u64,
}

/// Direction of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending store ids: the order attacks started in.
    OldestFirst,
    /// Descending store ids.
    NewestFirst,
}

/// One page of [`StoreReader::list`]: attacks newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackPage {
    /// At most `limit` attacks, newest first.
    pub attacks: Vec<StoredAttack>,
    /// Pass as `before` for the next (older) page; `None` when no older attack remains.
    pub next: Option<u64>,
}

/// The store, open for writing (one process at a time).
pub struct Store {
    db: Database,
    path: PathBuf,
    run: u64,
    retention: Retention,
    interrupted: Vec<InterruptedAttack>,
    warnings: Vec<String>,
    /// `recorded` time of the last age check made by `record` (0: none yet).
    last_age_check: u64,
    /// When `maintain` last compacted the file.
    last_compaction: Option<Instant>,
    /// Most entries of the (run, engine id) map ([`MAX_LIVE_ATTACKS`]; lowered by tests).
    max_live: u64,
}

/// Most attacks the store tracks as ongoing in one run: far above the engine's `max_attacks`
/// (4,096 by default), a bound on the id map should the engine ever not end an attack.
pub const MAX_LIVE_ATTACKS: u64 = 1 << 16;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("run", &self.run)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The tables of one write transaction.
struct Tables<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    attacks: redb::Table<'txn, u64, &'static [u8]>,
    events: redb::Table<'txn, u64, &'static [u8]>,
    index: redb::Table<'txn, (u64, u64), ()>,
    live: redb::Table<'txn, (u64, u64), u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            attacks: txn.open_table(ATTACKS)?,
            events: txn.open_table(EVENTS)?,
            index: txn.open_table(ATTACK_EVENTS)?,
            live: txn.open_table(LIVE)?,
        })
    }

    fn counter(&self, name: &str) -> Result<u64, redb::Error> {
        Ok(self.meta.get(name)?.map_or(0, |v| v.value()))
    }
}

/// Bytes a row counts for in [`StoreStats::payload_bytes`].
const fn row_bytes(key: usize, value: usize) -> u64 {
    (key + value) as u64
}
const ID_KEY: usize = 8;
const INDEX_ROW: u64 = row_bytes(16, 0);
const LIVE_ROW: u64 = row_bytes(16, 8);

impl Store {
    /// Opens (creating it and the directory if needed) the store in `dir` with the default
    /// [`Retention`] and starts a new run: attacks left ongoing by earlier runs become
    /// [`Status::Interrupted`] (see [`Store::interrupted`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, Retention::default())
    }

    /// [`Store::open`] with the given retention.
    pub fn open_with(dir: &Path, retention: Retention) -> Result<Store, StoreError> {
        let directory = |reason| StoreError::Directory { dir: dir.to_owned(), reason };
        let mut warnings = Vec::new();
        warnings.extend(files::private_dir(dir).map_err(directory)?);
        let path = dir.join(FILE_NAME);
        // Fail early, with the directory in the message, when it is not writable.
        let probe = dir.join(".rampart-write-test");
        std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)).map_err(directory)?;
        // Created here, private from the start (redb would create it with the umask's mode);
        // redb initializes an empty file as a new database.
        if !path.exists() {
            files::private_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| db_error(&path, e))?;
        }
        warnings.extend(files::private_file(&path));
        let db = redb::Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .set_cache_size(WRITER_CACHE_BYTES)
            .create(&path)
            .map_err(|e| db_error(&path, e))?;
        let mut store = Store {
            db,
            path,
            run: 0,
            retention,
            interrupted: Vec::new(),
            warnings,
            last_age_check: 0,
            last_compaction: None,
            max_live: MAX_LIVE_ATTACKS,
        };
        store.start_run()?;
        Ok(store)
    }

    /// This run's number (1 for the first run of this store).
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The retention in force.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Changes the retention; it applies from the next [`record`](Self::record) or
    /// [`maintain`](Self::maintain).
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// The attacks earlier runs left ongoing, marked [`Status::Interrupted`] by this open,
    /// oldest first. Each displays as one log line.
    pub fn interrupted(&self) -> &[InterruptedAttack] {
        &self.interrupted
    }

    /// Warnings of the open for the operator: permissions of the data directory or the store
    /// file that were too loose (and tightened, or could not be).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn start_run(&mut self) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let txn = self.db.begin_write().map_err(|e| db_error(path, e))?;
        let mut interrupted = Vec::new();
        let run;
        {
            let mut t = Tables::open(&txn).map_err(|e| db_error(path, e))?;
            run = t.counter("run").map_err(|e| db_error(path, e))? + 1;
            t.meta.insert("run", run).map_err(|e| db_error(path, e))?;
            let mut bytes = t.counter("bytes").map_err(|e| db_error(path, e))?;
            let ids = if t.counter("schema").map_err(|e| db_error(path, e))? < SCHEMA {
                // Version 1 (or new): no live table and no byte count yet; one scan.
                bytes = upgrade_scan(&t).map_err(|e| db_error(path, e))?;
                let mut ongoing = Vec::new();
                for entry in t.attacks.iter().map_err(|e| db_error(path, e))? {
                    let (id, value) = entry.map_err(|e| db_error(path, e))?;
                    if codec::decode_head(value.value()).is_some_and(|h| h.status == Status::Ongoing) {
                        ongoing.push(id.value());
                    }
                }
                t.meta.insert("schema", SCHEMA).map_err(|e| db_error(path, e))?;
                ongoing
            } else {
                let mut ongoing = Vec::new();
                for entry in t.live.iter().map_err(|e| db_error(path, e))? {
                    let (_, id) = entry.map_err(|e| db_error(path, e))?;
                    ongoing.push(id.value());
                }
                ongoing.sort_unstable();
                ongoing
            };
            // Entries of earlier runs: those attacks are over for the engine.
            let stale = t.live.len().map_err(|e| db_error(path, e))?;
            t.live.retain(|_, _| false).map_err(|e| db_error(path, e))?;
            bytes = bytes.saturating_sub(stale * LIVE_ROW);
            for id in ids {
                match mark_interrupted(&mut t, path, id, &mut bytes) {
                    Ok(marked) => interrupted.extend(marked),
                    // Recording goes on: detection matters more than an old record.
                    Err(StoreError::NotVersion1 { reason, .. }) => self.warnings.push(format!(
                        "attack {id} in {} is not a version-1 record ({reason}): an older Rampart \
                         wrote it; `rampart attacks` cannot read it until retention deletes it \
                         (move the file aside to start a new store)",
                        path.display()
                    )),
                    Err(e) => return Err(e),
                }
            }
            t.meta.insert("bytes", bytes).map_err(|e| db_error(path, e))?;
        }
        txn.commit().map_err(|e| db_error(path, e))?;
        self.run = run;
        self.interrupted = interrupted;
        Ok(())
    }

    /// Records `events` (in order) in one durable transaction, at `recorded` Unix nanoseconds.
    /// Returns them as stored: each attack's `id` rewritten to its persistent store id.
    ///
    /// The same transaction applies retention a bounded step at a time: when the store is over
    /// its size target, or once a minute (of `recorded` time) for age, it deletes at most
    /// `max(256, 2 × events.len())` old events (and their attacks once they have none left),
    /// so pruning keeps up with recording and never holds it up for long.
    pub fn record(&mut self, events: &[NewEvent], recorded: u64) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.as_path();
        let run = self.run;
        let txn = self.db.begin_write().map_err(|e| db_error(path, e))?;
        let mut stored = Vec::with_capacity(events.len());
        let mut age_checked = false;
        {
            let mut t = Tables::open(&txn).map_err(|e| db_error(path, e))?;
            let mut next_attack = t.counter("attack").map_err(|e| db_error(path, e))?;
            let mut next_event = t.counter("event").map_err(|e| db_error(path, e))?;
            let mut bytes = t.counter("bytes").map_err(|e| db_error(path, e))?;
            for event in events {
                let engine_id = event.attack.id.0;
                let known = t.live.get((run, engine_id)).map_err(|e| db_error(path, e))?.map(|v| v.value());
                let id = match known {
                    Some(id) => id,
                    None => {
                        // The engine ends every attack it starts and tracks at most its
                        // `max_attacks`; should that ever fail, the oldest entry gives way
                        // (its attack marked interrupted) rather than the map growing.
                        if t.live.len().map_err(|e| db_error(path, e))? >= self.max_live {
                            let oldest =
                                t.live.pop_first().map_err(|e| db_error(path, e))?.map(|(_, v)| v.value());
                            if let Some(oldest) = oldest {
                                bytes = bytes.saturating_sub(LIVE_ROW);
                                mark_interrupted(&mut t, path, oldest, &mut bytes)?;
                            }
                        }
                        next_attack += 1;
                        t.live.insert((run, engine_id), next_attack).map_err(|e| db_error(path, e))?;
                        bytes += LIVE_ROW;
                        next_attack
                    }
                };
                let status = match event.kind {
                    EventKind::End => {
                        // The engine never reuses an id within a run: the entry is done.
                        if t.live.remove((run, engine_id)).map_err(|e| db_error(path, e))?.is_some() {
                            bytes = bytes.saturating_sub(LIVE_ROW);
                        }
                        Status::Ended
                    }
                    EventKind::Onset | EventKind::Update => Status::Ongoing,
                };
                next_event += 1;
                let mut attack = event.attack.clone();
                attack.id = AttackId(id);
                let previous = match t.attacks.get(id).map_err(|e| db_error(path, e))? {
                    // The head only: the previous attack itself is replaced whole.
                    Some(row) => Some((codec::decode_head_checked(path, row.value())?, row.value().len())),
                    None => None,
                };
                let latest = StoredAttack {
                    schema_version: SchemaVersion,
                    id,
                    run,
                    engine_id,
                    status,
                    last_event: event.kind,
                    events: previous.as_ref().map_or(0, |(p, _)| p.events) + 1,
                    first_recorded: previous.as_ref().map_or(recorded, |(p, _)| p.first_recorded),
                    last_recorded: recorded,
                    attack: attack.clone(),
                };
                let row = codec::encode_attack(&latest);
                t.attacks.insert(id, row.as_slice()).map_err(|e| db_error(path, e))?;
                bytes = (bytes + row_bytes(ID_KEY, row.len()))
                    .saturating_sub(previous.map_or(0, |(_, len)| row_bytes(ID_KEY, len)));
                let record = StoredEvent {
                    schema_version: SchemaVersion,
                    seq: next_event,
                    attack_id: id,
                    kind: event.kind,
                    recorded,
                    attack,
                };
                let row = codec::encode_event(&record);
                t.events.insert(next_event, row.as_slice()).map_err(|e| db_error(path, e))?;
                t.index.insert((id, next_event), ()).map_err(|e| db_error(path, e))?;
                bytes += row_bytes(ID_KEY, row.len()) + INDEX_ROW;
                stored.push(record);
            }
            let over = self.retention.payload_target().is_some_and(|target| bytes > target);
            let age_due = self.retention.max_age.is_some()
                && recorded.saturating_sub(self.last_age_check) >= retention::AGE_CHECK_EVERY_NANOS;
            if over || age_due {
                let budget = retention::RECORD_PRUNE_EVENTS.max(2 * events.len());
                let step = retention::prune_step(&mut t, &mut bytes, &self.retention, recorded, budget)
                    .map_err(|e| db_error(path, e))?;
                // Old attacks left over (a chunk was not enough): look again at the next record.
                age_checked = age_due && step.done;
            }
            t.meta.insert("attack", next_attack).map_err(|e| db_error(path, e))?;
            t.meta.insert("event", next_event).map_err(|e| db_error(path, e))?;
            t.meta.insert("bytes", bytes).map_err(|e| db_error(path, e))?;
        }
        txn.commit().map_err(|e| db_error(path, e))?;
        if age_checked {
            self.last_age_check = recorded;
        }
        Ok(stored)
    }

    /// Applies retention fully and compacts the file when that is worth it; meant to be called
    /// by the daemon now and then (say every minute, from the thread that records, when no
    /// events wait) with the wall clock in Unix nanoseconds.
    ///
    /// Deletes in chunks of at most [`retention::MAINTAIN_CHUNK_EVENTS`] events, one durable
    /// transaction each, and returns after about [`retention::MAINTAIN_BUDGET`] with
    /// [`Maintenance::more`] set if more remains, so recording waits at most that long. Then, if
    /// nothing remains, compacts the file when it is much larger than what it holds (at most
    /// every [`retention::COMPACT_EVERY`]; skipped while a reader has the file open in a read
    /// transaction). Compacting rewrites the file and holds recording up for its duration
    /// (reported in [`Maintenance::compaction`]).
    pub fn maintain(&mut self, now: u64) -> Result<Maintenance, StoreError> {
        retention::maintain(self, now)
    }

    /// Sizes of the store.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        read_stats(&self.db, &self.path)
    }

    /// Every attack, oldest first. Loads them all: prefer [`Store::iter`] for listings.
    pub fn attacks(&self) -> Result<Vec<StoredAttack>, StoreError> {
        self.iter(.., Order::OldestFirst)?.collect()
    }

    /// Streams the attacks whose store ids are in `ids`, in `order` (see [`StoreReader::iter`]).
    pub fn iter(&self, ids: impl RangeBounds<u64>, order: Order) -> Result<AttackIter, StoreError> {
        read_iter(&self.db, &self.path, ids, order)
    }

    /// One attack by store id.
    pub fn attack(&self, id: u64) -> Result<Option<StoredAttack>, StoreError> {
        read_attack(&self.db, &self.path, id)
    }

    /// The events of one attack, in order.
    pub fn events(&self, id: u64) -> Result<Vec<StoredEvent>, StoreError> {
        read_events(&self.db, &self.path, id)
    }
}

/// Marks an ongoing attack [`Status::Interrupted`]; returns it, or `None` if it is gone or not
/// ongoing.
fn mark_interrupted(
    t: &mut Tables<'_>,
    path: &Path,
    id: u64,
    bytes: &mut u64,
) -> Result<Option<InterruptedAttack>, StoreError> {
    let Some(old) = t.attacks.get(id).map_err(|e| db_error(path, e))?.map(|v| v.value().to_vec()) else {
        return Ok(None);
    };
    let mut attack = codec::decode_attack(path, &old)?;
    if attack.status != Status::Ongoing {
        return Ok(None);
    }
    attack.status = Status::Interrupted;
    let new = codec::encode_attack(&attack);
    t.attacks.insert(id, new.as_slice()).map_err(|e| db_error(path, e))?;
    *bytes = (*bytes + new.len() as u64).saturating_sub(old.len() as u64);
    Ok(Some(InterruptedAttack {
        id,
        target: attack.attack.target,
        start: attack.attack.start,
        run: attack.run,
    }))
}

/// Payload bytes of a version 1 store, counted once when it is upgraded.
fn upgrade_scan(t: &Tables<'_>) -> Result<u64, redb::Error> {
    let mut bytes = 0;
    for entry in t.attacks.iter()? {
        bytes += row_bytes(ID_KEY, entry?.1.value().len());
    }
    for entry in t.events.iter()? {
        bytes += row_bytes(ID_KEY, entry?.1.value().len());
    }
    Ok(bytes + t.index.len()? * INDEX_ROW)
}

pub(crate) fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database { path: path.to_owned(), reason: e.into() }
}

/// Opens a table for reading; a table that does not exist yet reads as empty (`None`).
pub(crate) fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    path: &Path,
    table: TableDefinition<'_, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_error(path, e)),
    }
}

pub(crate) fn read_stats(db: &impl ReadableDatabase, path: &Path) -> Result<StoreStats, StoreError> {
    let file_bytes = std::fs::metadata(path).map_err(|e| db_error(path, e))?.len();
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let mut stats = StoreStats { file_bytes, ..StoreStats::default() };
    if let Some(table) = open_read(&txn, path, ATTACKS)? {
        stats.attacks = table.len().map_err(|e| db_error(path, e))?;
    }
    if let Some(table) = open_read(&txn, path, EVENTS)? {
        stats.events = table.len().map_err(|e| db_error(path, e))?;
    }
    if let Some(table) = open_read(&txn, path, META)? {
        stats.payload_bytes = table.get("bytes").map_err(|e| db_error(path, e))?.map_or(0, |v| v.value());
    }
    Ok(stats)
}

pub(crate) fn read_attack(
    db: &impl ReadableDatabase,
    path: &Path,
    id: u64,
) -> Result<Option<StoredAttack>, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let Some(table) = open_read(&txn, path, ATTACKS)? else { return Ok(None) };
    match table.get(id).map_err(|e| db_error(path, e))? {
        Some(bytes) => Ok(Some(codec::decode_attack(path, bytes.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn read_events(
    db: &impl ReadableDatabase,
    path: &Path,
    id: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let Some(index) = open_read(&txn, path, ATTACK_EVENTS)? else { return Ok(Vec::new()) };
    let Some(log) = open_read(&txn, path, EVENTS)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in index.range((id, 0)..=(id, u64::MAX)).map_err(|e| db_error(path, e))? {
        let (key, ()) = entry.map(|(k, v)| (k.value(), v.value())).map_err(|e| db_error(path, e))?;
        if let Some(bytes) = log.get(key.1).map_err(|e| db_error(path, e))? {
            out.push(codec::decode_event(path, bytes.value())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
