//! Rampart attack store: every attack lifecycle event, and the latest state of every attack,
//! in one embedded file (`rampart.redb`) in the data directory.
//!
//! - Crash safety: each call to [`Store::record`] is one write transaction committed with
//!   immediate durability (fsync), so a `kill -9` loses nothing that `record` returned for.
//! - Persistent ids: the detection engine numbers attacks from 1 at every start. The store
//!   keeps a persisted counter and gives each attack a store id, unique across restarts; the
//!   (run, engine id) → store id map only lives in memory for the current run, since engine ids
//!   mean nothing across runs. Every recorded attack has its `id` field rewritten to the store
//!   id, so what the daemon prints, posts and stores agree.
//! - Restarts: opening the store for writing starts a new run; attacks still ongoing from an
//!   earlier run (the daemon died without ending them) are marked [`Status::Interrupted`].
//! - One writer process, any number of concurrent readers ([`StoreReader`], e.g. `rampart
//!   attacks list` while the daemon runs).
//!
//! Attacks are stored as JSON (`serde_json::Value`), so the store does not depend on the
//! detection crate's types.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition, TableError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// File name of the store inside the data directory.
pub const FILE_NAME: &str = "rampart.redb";

/// Counters: `run`, `attack`, `event` (last value handed out).
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Store id → [`StoredAttack`] as JSON.
const ATTACKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("attacks");
/// Event sequence number → [`StoredEvent`] as JSON.
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// (store id, event sequence number): the events of one attack, in order.
const ATTACK_EVENTS: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("attack_events");

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
    /// A stored record is not the JSON this version writes.
    #[error("attack store {}: corrupt record: {reason}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What the JSON parser said.
        reason: serde_json::Error,
    },
    /// An event's attack has no unsigned integer `id` field.
    #[error("attack has no numeric `id` field")]
    NoAttackId,
}

/// Lifecycle step of a recorded event (mirrors the engine's event kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The attack started.
    Onset,
    /// The attack changed (new vector, higher peak).
    Update,
    /// The attack ended.
    End,
}

/// State of a stored attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub attack: Value,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Sequence number, unique and increasing across runs.
    pub seq: u64,
    /// Store id of the attack.
    pub attack_id: u64,
    pub kind: EventKind,
    /// When it was recorded, Unix nanoseconds (wall clock of the daemon).
    pub recorded: u64,
    /// The attack at that event, its `id` set to the store id.
    pub attack: Value,
}

/// The latest state of one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAttack {
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
    /// Unix nanoseconds of the first and latest event.
    pub first_recorded: u64,
    pub last_recorded: u64,
    /// The attack as of the latest event, its `id` set to the store id.
    pub attack: Value,
}

/// The store, open for writing (one process at a time).
pub struct Store {
    db: Database,
    path: PathBuf,
    run: u64,
    /// Engine id → store id, for the current run.
    ids: HashMap<u64, u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("run", &self.run).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating it and the directory if needed) the store in `dir` and starts a new run:
    /// attacks left ongoing by earlier runs become [`Status::Interrupted`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|reason| StoreError::Directory { dir: dir.to_owned(), reason })?;
        let path = dir.join(FILE_NAME);
        // Fail early, with the directory in the message, when it is not writable.
        let probe = dir.join(".rampart-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|reason| StoreError::Directory { dir: dir.to_owned(), reason })?;
        let db = redb::Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .create(&path)
            .map_err(|e| db_error(&path, e))?;
        let mut store = Store { db, path, run: 0, ids: HashMap::new() };
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

    fn start_run(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: redb::Error| StoreError::Database { path: path.clone(), reason: e };
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let run;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            run = meta.get("run").map_err(|e| err(e.into()))?.map_or(0, |v| v.value()) + 1;
            meta.insert("run", run).map_err(|e| err(e.into()))?;
            // Create every table, so readers of a store that has recorded nothing see it empty.
            txn.open_table(EVENTS).map_err(|e| err(e.into()))?;
            txn.open_table(ATTACK_EVENTS).map_err(|e| err(e.into()))?;
            let mut attacks = txn.open_table(ATTACKS).map_err(|e| err(e.into()))?;
            let mut interrupted = Vec::new();
            for entry in attacks.iter().map_err(|e| err(e.into()))? {
                let (_, bytes) = entry.map_err(|e| err(e.into()))?;
                let mut attack: StoredAttack = decode(&self.path, bytes.value())?;
                if attack.status == Status::Ongoing {
                    attack.status = Status::Interrupted;
                    interrupted.push(attack);
                }
            }
            for attack in interrupted {
                attacks.insert(attack.id, encode(&attack).as_slice()).map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        self.run = run;
        Ok(())
    }

    /// Records `events` (in order) in one durable transaction, at `recorded` Unix nanoseconds.
    /// Returns them as stored: each attack's `id` rewritten to its persistent store id.
    pub fn record(&mut self, events: &[NewEvent], recorded: u64) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let err = |e: redb::Error| StoreError::Database { path: path.clone(), reason: e };
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let mut stored = Vec::with_capacity(events.len());
        let mut new_ids = Vec::new();
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let mut attacks = txn.open_table(ATTACKS).map_err(|e| err(e.into()))?;
            let mut log = txn.open_table(EVENTS).map_err(|e| err(e.into()))?;
            let mut index = txn.open_table(ATTACK_EVENTS).map_err(|e| err(e.into()))?;
            let mut next_attack = meta.get("attack").map_err(|e| err(e.into()))?.map_or(0, |v| v.value());
            let mut next_event = meta.get("event").map_err(|e| err(e.into()))?.map_or(0, |v| v.value());
            for event in events {
                let engine_id =
                    event.attack.get("id").and_then(Value::as_u64).ok_or(StoreError::NoAttackId)?;
                let known = self
                    .ids
                    .get(&engine_id)
                    .copied()
                    .or_else(|| new_ids.iter().find(|&&(e, _)| e == engine_id).map(|&(_, s)| s));
                let id = match known {
                    Some(id) => id,
                    None => {
                        next_attack += 1;
                        new_ids.push((engine_id, next_attack));
                        next_attack
                    }
                };
                next_event += 1;
                let mut attack = event.attack.clone();
                if let Some(object) = attack.as_object_mut() {
                    object.insert("id".into(), Value::from(id));
                }
                let previous: Option<StoredAttack> = match attacks.get(id).map_err(|e| err(e.into()))? {
                    Some(bytes) => Some(decode(&self.path, bytes.value())?),
                    None => None,
                };
                let status = match event.kind {
                    EventKind::End => Status::Ended,
                    EventKind::Onset | EventKind::Update => Status::Ongoing,
                };
                let latest = StoredAttack {
                    id,
                    run: self.run,
                    engine_id,
                    status,
                    last_event: event.kind,
                    events: previous.as_ref().map_or(0, |p| p.events) + 1,
                    first_recorded: previous.as_ref().map_or(recorded, |p| p.first_recorded),
                    last_recorded: recorded,
                    attack: attack.clone(),
                };
                attacks.insert(id, encode(&latest).as_slice()).map_err(|e| err(e.into()))?;
                let record =
                    StoredEvent { seq: next_event, attack_id: id, kind: event.kind, recorded, attack };
                log.insert(next_event, encode(&record).as_slice()).map_err(|e| err(e.into()))?;
                index.insert((id, next_event), ()).map_err(|e| err(e.into()))?;
                stored.push(record);
            }
            meta.insert("attack", next_attack).map_err(|e| err(e.into()))?;
            meta.insert("event", next_event).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;
        // Only once committed: a failed commit leaves the map as the file is.
        self.ids.extend(new_ids);
        Ok(stored)
    }

    /// Every attack, oldest first.
    pub fn attacks(&self) -> Result<Vec<StoredAttack>, StoreError> {
        read_attacks(&self.db, &self.path)
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

/// The store, open read-only; may run alongside the writing daemon.
pub struct StoreReader {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl StoreReader {
    /// Opens the store in `dir` read-only.
    pub fn open(dir: &Path) -> Result<StoreReader, StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Err(StoreError::Missing { dir: dir.to_owned() });
        }
        let db = redb::Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open_read_only(&path)
            .map_err(|e| db_error(&path, e))?;
        Ok(StoreReader { db, path })
    }

    /// Every attack, oldest first.
    pub fn attacks(&self) -> Result<Vec<StoredAttack>, StoreError> {
        read_attacks(&self.db, &self.path)
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

fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database { path: path.to_owned(), reason: e.into() }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to JSON cannot fail (string keys, no non-finite floats
    // that serde_json rejects: it writes them as null).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|reason| StoreError::Corrupt { path: path.to_owned(), reason })
}

/// Opens a table for reading; a table that does not exist yet reads as empty (`None`).
fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
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

fn read_attacks(db: &impl ReadableDatabase, path: &Path) -> Result<Vec<StoredAttack>, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let Some(table) = open_read(&txn, path, ATTACKS)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in table.iter().map_err(|e| db_error(path, e))? {
        let (_, bytes) = entry.map_err(|e| db_error(path, e))?;
        out.push(decode(path, bytes.value())?);
    }
    Ok(out)
}

fn read_attack(db: &impl ReadableDatabase, path: &Path, id: u64) -> Result<Option<StoredAttack>, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let Some(table) = open_read(&txn, path, ATTACKS)? else { return Ok(None) };
    match table.get(id).map_err(|e| db_error(path, e))? {
        Some(bytes) => Ok(Some(decode(path, bytes.value())?)),
        None => Ok(None),
    }
}

fn read_events(db: &impl ReadableDatabase, path: &Path, id: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let Some(index) = open_read(&txn, path, ATTACK_EVENTS)? else { return Ok(Vec::new()) };
    let Some(log) = open_read(&txn, path, EVENTS)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in index.range((id, 0)..=(id, u64::MAX)).map_err(|e| db_error(path, e))? {
        let (key, ()) = entry.map(|(k, v)| (k.value(), v.value())).map_err(|e| db_error(path, e))?;
        if let Some(bytes) = log.get(key.1).map_err(|e| db_error(path, e))? {
            out.push(decode(path, bytes.value())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
