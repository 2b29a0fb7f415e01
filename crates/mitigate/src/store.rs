//! Durable decisions: `decisions.redb` in the data directory, beside the attack store, with
//! the audit log (`audit.jsonl`).
//!
//! A file of its own rather than a table in `rampart.redb`: the attack store is pruned by age
//! and size and compacted, decisions must never be; the CLI must be able to change decisions
//! when no daemon runs without opening (and starting a run of) the attack store; and the lock
//! redb holds on the file is exactly the "one writer at a time" the CLI and the daemon need:
//! whoever has it open for writing is the only writer, `decisions list` and `audit verify`
//! read alongside.
//!
//! Every change is first appended to the audit log (synced), then committed with the log's
//! new head (the anchor) in one durable transaction, so the log never misses a committed
//! change, and a change the writer died before committing shows as a record beyond the anchor.

use std::path::{Path, PathBuf};

use rampart_contract::{Action, Decision, DecisionId, EventTime, Origin, Scope};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor, AuditError, AuditLog, AuditRecord, Change, Evidence, Hash, LeftOut};
use crate::guard::Refusal;

/// File name of the decision store inside the data directory.
pub const FILE_NAME: &str = "decisions.redb";

/// `next_id` (last id handed out), `audit_seq` (the anchor's sequence number).
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// `audit_head`: the anchor's hash.
const ANCHOR: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("anchor");
/// Decision id → [`StoredDecision`] JSON.
const DECISIONS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("decisions");
/// Ids of the decisions not closed yet: what expiry and the active set scan every second,
/// however long the history grows.
const OPEN: TableDefinition<'_, u64, ()> = TableDefinition::new("open");

/// Page cache: the table holds thousands of small records at most.
const CACHE_BYTES: usize = 8 << 20;

/// How a decision stopped being in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Closing {
    Withdrawn,
    Expired,
}

/// When and how a decision was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Closed {
    pub at: EventTime,
    pub how: Closing,
    pub by: Actor,
}

/// A decision as stored: the contract's decision, whether it was only a dry run, and how it
/// ended (what `rampart decisions list --json` prints, one per element).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredDecision {
    pub decision: Decision,
    /// Recorded as what Rampart would have done; never handed to an actuator.
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closed>,
}

impl StoredDecision {
    /// In force (or, in dry run, would be) at `now`.
    pub fn active_at(&self, now: EventTime) -> bool {
        self.closed.is_none() && self.decision.active_at(now)
    }
}

/// A decision to enact: everything but the id, which the store gives.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDecision {
    pub scope: Scope,
    pub action: Action,
    pub origin: Origin,
    pub created: EventTime,
    pub expires: Option<EventTime>,
    pub reason: String,
    pub dry_run: bool,
    pub evidence: Option<Evidence>,
}

/// Why the decision store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("decision store {}: {reason}", path.display())]
    Db {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
    /// Another process (the daemon, or another command) has the store open for writing.
    #[error(
        "decision store {} is open in another process (a running `rampart run`, or another command); \
         while the daemon runs, commands reach it through its control socket",
        path.display()
    )]
    Busy {
        /// The store file.
        path: PathBuf,
    },
    /// The data directory could not be prepared.
    #[error("data directory {}: {reason}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What the file system said.
        reason: std::io::Error,
    },
    /// A record could not be decoded.
    #[error("decision store {}: decision {id} is unreadable: {reason}", path.display())]
    Record {
        /// The store file.
        path: PathBuf,
        /// The decision id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The audit log failed; nothing was committed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

fn db_error(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Db { path: path.to_owned(), reason: reason.to_string() }
}

/// The writer: decisions plus the audit log.
pub struct DecisionStore {
    db: Database,
    path: PathBuf,
    audit: AuditLog,
    warnings: Vec<String>,
    /// Inside a batch: the one write transaction every change of the batch goes into.
    batch: Option<redb::WriteTransaction>,
}

impl std::fmt::Debug for DecisionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionStore")
            .field("path", &self.path)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl DecisionStore {
    /// Opens (creating them private) the store and the audit log in `dir`, for writing.
    pub fn open(dir: &Path) -> Result<DecisionStore, StoreError> {
        let directory = |reason| StoreError::Directory { dir: dir.to_owned(), reason };
        let mut warnings = Vec::new();
        warnings.extend(rampart_store::files::private_dir(dir).map_err(directory)?);
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            rampart_store::files::private_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| db_error(&path, e))?;
        }
        warnings.extend(rampart_store::files::private_file(&path));
        let db = redb::Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Busy { path: path.clone() },
                other => db_error(&path, other),
            })?;
        let (audit, audit_warnings) = AuditLog::open(&dir.join(audit::FILE_NAME))?;
        warnings.extend(audit_warnings);
        let store = DecisionStore { db, path, audit, warnings, batch: None };
        // Tables exist from the first open, so readers never see a missing table.
        let txn = store.db.begin_write().map_err(|e| db_error(&store.path, e))?;
        let anchor = {
            let meta = txn.open_table(META).map_err(|e| db_error(&store.path, e))?;
            let anchor = txn.open_table(ANCHOR).map_err(|e| db_error(&store.path, e))?;
            txn.open_table(DECISIONS).map_err(|e| db_error(&store.path, e))?;
            txn.open_table(OPEN).map_err(|e| db_error(&store.path, e))?;
            let seq = meta.get("audit_seq").map_err(|e| db_error(&store.path, e))?.map_or(0, |v| v.value());
            let hash =
                anchor.get("audit_head").map_err(|e| db_error(&store.path, e))?.map(|v| v.value().to_vec());
            (seq, hash)
        };
        txn.commit().map_err(|e| db_error(&store.path, e))?;
        let mut store = store;
        if anchor.0 > store.audit.head().0 {
            store.warnings.push(format!(
                "audit log {} ends at record {} but the store committed record {}: records were cut off; \
                 `rampart audit verify` reports it",
                store.audit.path().display(),
                store.audit.head().0,
                anchor.0
            ));
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rotates the audit log before a record would take its file past `bytes` (`None`: never).
    pub fn rotate_audit_at(&mut self, bytes: Option<u64>) {
        self.audit.rotate_at(bytes);
    }

    /// Warnings of the open (permissions tightened, a torn audit record cut off).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every decision, closed ones too, by id.
    pub fn all(&self) -> Result<Vec<StoredDecision>, StoreError> {
        let path = &self.path;
        if let Some(txn) = &self.batch {
            return read_all(path, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?);
        }
        let txn = self.db.begin_read().map_err(|e| db_error(path, e))?;
        read_all(path, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?)
    }

    /// The decisions not closed yet (some may be past their expiry until [`Self::expire`]).
    pub fn open_decisions(&self) -> Result<Vec<StoredDecision>, StoreError> {
        let path = &self.path;
        if let Some(txn) = &self.batch {
            let open = txn.open_table(OPEN).map_err(|e| db_error(path, e))?;
            return read_open(path, &open, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?);
        }
        let txn = self.db.begin_read().map_err(|e| db_error(path, e))?;
        let open = txn.open_table(OPEN).map_err(|e| db_error(path, e))?;
        read_open(path, &open, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?)
    }

    /// The decisions in force (or, dry run, that would be) at `now`.
    pub fn active(&self, now: EventTime) -> Result<Vec<StoredDecision>, StoreError> {
        Ok(self.open_decisions()?.into_iter().filter(|d| d.active_at(now)).collect())
    }

    pub fn get(&self, id: DecisionId) -> Result<Option<StoredDecision>, StoreError> {
        let path = &self.path;
        if let Some(txn) = &self.batch {
            return read_one(path, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?, id);
        }
        let txn = self.db.begin_read().map_err(|e| db_error(path, e))?;
        read_one(path, &txn.open_table(DECISIONS).map_err(|e| db_error(path, e))?, id)
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        let path = &self.path;
        let last = match &self.batch {
            Some(txn) => read_next_id(path, &txn.open_table(META).map_err(|e| db_error(path, e))?)?,
            None => {
                let txn = self.db.begin_read().map_err(|e| db_error(path, e))?;
                read_next_id(path, &txn.open_table(META).map_err(|e| db_error(path, e))?)?
            }
        };
        Ok(last + 1)
    }

    /// Audits, then commits, one change; `update` edits the decisions table in the same
    /// transaction as the anchor.
    fn commit<T>(
        &mut self,
        record: AuditRecord,
        update: impl FnOnce(
            &mut redb::Table<'_, u64, &'static [u8]>,
            &mut redb::Table<'_, &'static str, u64>,
            &mut redb::Table<'_, u64, ()>,
        ) -> Result<T, StoreError>,
    ) -> Result<(T, AuditRecord), StoreError> {
        let path = self.path.clone();
        let txn = match self.batch.take() {
            Some(txn) => txn,
            None => self.db.begin_write().map_err(|e| db_error(&path, e))?,
        };
        let batched = self.audit.deferred();
        let written = match self.audit.append(record) {
            Ok(written) => written,
            Err(e) => {
                if batched {
                    self.batch = Some(txn);
                }
                return Err(e.into());
            }
        };
        let (seq, head): (u64, Hash) = self.audit.head();
        let result = {
            let mut decisions = txn.open_table(DECISIONS).map_err(|e| db_error(&path, e))?;
            let mut meta = txn.open_table(META).map_err(|e| db_error(&path, e))?;
            let mut anchor = txn.open_table(ANCHOR).map_err(|e| db_error(&path, e))?;
            let mut open = txn.open_table(OPEN).map_err(|e| db_error(&path, e))?;
            let result = update(&mut decisions, &mut meta, &mut open)?;
            meta.insert("audit_seq", seq).map_err(|e| db_error(&path, e))?;
            anchor.insert("audit_head", &head[..]).map_err(|e| db_error(&path, e))?;
            result
        };
        if batched {
            self.batch = Some(txn);
        } else {
            txn.commit().map_err(|e| db_error(&path, e))?;
        }
        Ok((result, written))
    }

    /// Starts a batch: until [`DecisionStore::end_batch`] every change goes into one write
    /// transaction, visible to this writer at once, and the audit appends are not synced, so a
    /// batch of N changes costs two syncs instead of 2 N. Readers in other processes see the
    /// batch when it ends; a crash inside it loses it whole (audit records beyond the store's
    /// anchor are reported as harmless by `rampart audit verify`), so callers act on a batch's
    /// changes only after `end_batch`.
    pub fn begin_batch(&mut self) -> Result<(), StoreError> {
        if self.batch.is_none() {
            self.batch = Some(self.db.begin_write().map_err(|e| db_error(&self.path, e))?);
            self.audit.defer_sync(true);
        }
        Ok(())
    }

    /// Ends a batch: syncs the audit log, then commits the store, in that order so the store
    /// never anchors a record the log could lose.
    pub fn end_batch(&mut self) -> Result<(), StoreError> {
        let Some(txn) = self.batch.take() else { return Ok(()) };
        self.audit.defer_sync(false);
        self.audit.sync()?;
        txn.commit().map_err(|e| db_error(&self.path, e))
    }

    /// Stores `new` under a fresh id and audits it; returns the decision.
    pub fn enact(
        &mut self,
        new: NewDecision,
        now: EventTime,
    ) -> Result<(StoredDecision, AuditRecord), StoreError> {
        let path = self.path.clone();
        let id = self.next_id()?;
        let decision = Decision {
            id: DecisionId(id),
            scope: new.scope,
            action: new.action,
            origin: new.origin,
            created: new.created,
            expires: new.expires,
            reason: new.reason,
        };
        let stored = StoredDecision { decision: decision.clone(), dry_run: new.dry_run, closed: None };
        let record = AuditRecord {
            seq: 0,
            prev: String::new(),
            time: now,
            actor: Actor::from(&decision.origin),
            change: Change::Enact { decision },
            dry_run: new.dry_run,
            reason: stored.decision.reason.clone(),
            evidence: new.evidence,
        };
        let bytes = encode(&stored);
        let ((), record) = self.commit(record, |decisions, meta, open| {
            decisions.insert(id, &bytes[..]).map_err(|e| db_error(&path, e))?;
            meta.insert("next_id", id).map_err(|e| db_error(&path, e))?;
            open.insert(id, ()).map_err(|e| db_error(&path, e))?;
            Ok(())
        })?;
        Ok((stored, record))
    }

    /// Closes decision `id` (withdrawn by `by`, or expired); `None` when it is unknown or
    /// already closed.
    pub fn close(
        &mut self,
        id: DecisionId,
        how: Closing,
        by: Actor,
        reason: &str,
        now: EventTime,
    ) -> Result<Option<(StoredDecision, AuditRecord)>, StoreError> {
        let Some(mut stored) = self.get(id)? else { return Ok(None) };
        if stored.closed.is_some() {
            return Ok(None);
        }
        stored.closed = Some(Closed { at: now, how, by: by.clone() });
        let change = match how {
            Closing::Withdrawn => Change::Withdraw { id },
            Closing::Expired => Change::Expire { id },
        };
        let record = AuditRecord {
            seq: 0,
            prev: String::new(),
            time: now,
            actor: by,
            change,
            dry_run: stored.dry_run,
            reason: reason.to_owned(),
            evidence: None,
        };
        let bytes = encode(&stored);
        let path = self.path.clone();
        let ((), record) = self.commit(record, |decisions, _, open| {
            decisions.insert(id.0, &bytes[..]).map_err(|e| db_error(&path, e))?;
            open.remove(id.0).map_err(|e| db_error(&path, e))?;
            Ok(())
        })?;
        Ok(Some((stored, record)))
    }

    /// Moves the expiry of an open decision.
    pub fn extend(
        &mut self,
        id: DecisionId,
        expires: Option<EventTime>,
        by: Actor,
        reason: &str,
        now: EventTime,
    ) -> Result<Option<(StoredDecision, AuditRecord)>, StoreError> {
        let Some(mut stored) = self.get(id)? else { return Ok(None) };
        if stored.closed.is_some() || stored.decision.expires == expires {
            return Ok(None);
        }
        stored.decision.expires = expires;
        let record = AuditRecord {
            seq: 0,
            prev: String::new(),
            time: now,
            actor: by,
            change: Change::Extend { id, expires },
            dry_run: stored.dry_run,
            reason: reason.to_owned(),
            evidence: None,
        };
        let bytes = encode(&stored);
        let path = self.path.clone();
        let ((), record) = self.commit(record, |decisions, _, _| {
            decisions.insert(id.0, &bytes[..]).map_err(|e| db_error(&path, e))?;
            Ok(())
        })?;
        Ok(Some((stored, record)))
    }

    /// Audits a refusal (nothing else changes).
    #[allow(clippy::too_many_arguments)]
    pub fn refuse(
        &mut self,
        scope: Scope,
        action: Action,
        refusal: Refusal,
        by: Actor,
        reason: &str,
        dry_run: bool,
        evidence: Option<Evidence>,
        now: EventTime,
    ) -> Result<AuditRecord, StoreError> {
        let record = AuditRecord {
            seq: 0,
            prev: String::new(),
            time: now,
            actor: by,
            change: Change::Refuse { scope, action, refusal },
            dry_run,
            reason: reason.to_owned(),
            evidence,
        };
        Ok(self.commit(record, |_, _, _| Ok(()))?.1)
    }

    /// Audits a route a BGP peer left out (nothing else changes).
    pub fn route_left_out(
        &mut self,
        peer: &str,
        decision: DecisionId,
        route: String,
        left_out: LeftOut,
        reason: &str,
        now: EventTime,
    ) -> Result<AuditRecord, StoreError> {
        let record = AuditRecord {
            seq: 0,
            prev: String::new(),
            time: now,
            actor: Actor::System,
            change: Change::RouteLeftOut { peer: peer.to_owned(), decision, route, left_out },
            dry_run: false,
            reason: reason.to_owned(),
            evidence: None,
        };
        Ok(self.commit(record, |_, _, _| Ok(()))?.1)
    }

    /// Reconciliation (at start, then every second): closes every open decision whose expiry
    /// has passed. Returns the closed ones.
    pub fn expire(&mut self, now: EventTime) -> Result<Vec<StoredDecision>, StoreError> {
        let due: Vec<DecisionId> = self
            .open_decisions()?
            .into_iter()
            .filter(|d| d.closed.is_none() && d.decision.expires.is_some_and(|e| e <= now))
            .map(|d| d.decision.id)
            .collect();
        let mut closed = Vec::new();
        for id in due {
            if let Some((stored, _)) = self.close(id, Closing::Expired, Actor::System, "expired", now)? {
                closed.push(stored);
            }
        }
        Ok(closed)
    }

    /// The anchor: sequence number and hash of the last audit record committed.
    pub fn anchor(&self) -> Result<(u64, Hash), StoreError> {
        read_anchor(&self.path, &self.db)
    }
}

fn read_anchor(path: &Path, db: &impl ReadableDatabase) -> Result<(u64, Hash), StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let meta = txn.open_table(META).map_err(|e| db_error(path, e))?;
    let anchor = txn.open_table(ANCHOR).map_err(|e| db_error(path, e))?;
    let seq = meta.get("audit_seq").map_err(|e| db_error(path, e))?.map_or(0, |v| v.value());
    let hash = anchor
        .get("audit_head")
        .map_err(|e| db_error(path, e))?
        .and_then(|v| <Hash>::try_from(v.value()).ok())
        .unwrap_or(audit::GENESIS);
    Ok((seq, hash))
}

fn encode(stored: &StoredDecision) -> Vec<u8> {
    serde_json::to_vec(stored).unwrap_or_default()
}

fn decode(path: &Path, id: u64, bytes: &[u8]) -> Result<StoredDecision, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Record {
        path: path.to_owned(),
        id,
        reason: e.to_string(),
    })
}

fn read_open(
    path: &Path,
    open: &impl ReadableTable<u64, ()>,
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<StoredDecision>, StoreError> {
    let mut out = Vec::new();
    for entry in open.iter().map_err(|e| db_error(path, e))? {
        let id = entry.map_err(|e| db_error(path, e))?.0.value();
        if let Some(value) = table.get(id).map_err(|e| db_error(path, e))? {
            out.push(decode(path, id, value.value())?);
        }
    }
    Ok(out)
}

fn read_one(
    path: &Path,
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: DecisionId,
) -> Result<Option<StoredDecision>, StoreError> {
    let value = table.get(id.0).map_err(|e| db_error(path, e))?;
    value.map(|v| decode(path, id.0, v.value())).transpose()
}

fn read_next_id(path: &Path, meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta.get("next_id").map_err(|e| db_error(path, e))?.map_or(0, |v| v.value()))
}

fn read_all(
    path: &Path,
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<StoredDecision>, StoreError> {
    let mut out = Vec::new();
    for entry in table.iter().map_err(|e| db_error(path, e))? {
        let (id, value) = entry.map_err(|e| db_error(path, e))?;
        out.push(decode(path, id.value(), value.value())?);
    }
    Ok(out)
}

/// The store, read-only: may run alongside the writer (`decisions list`, `audit verify`).
pub struct DecisionReader {
    db: redb::ReadOnlyDatabase,
    path: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for DecisionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionReader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl DecisionReader {
    /// Opens the store in `dir`; `Ok(None)` when there is none yet.
    pub fn open(dir: &Path) -> Result<Option<DecisionReader>, StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let open = || {
            redb::Builder::new()
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_cache_size(CACHE_BYTES)
                .open_read_only(&path)
        };
        let db = match open() {
            Ok(db) => db,
            // The last writer died (kill -9, power loss) and none runs now: a reader cannot
            // repair the file, so open it once for writing, which does, then read.
            Err(redb::DatabaseError::RepairAborted) => {
                match DecisionStore::open(dir) {
                    Ok(store) => drop(store),
                    // A writer started meanwhile: it repairs.
                    Err(StoreError::Busy { .. }) => {}
                    Err(e) => return Err(e),
                }
                open().map_err(|e| db_error(&path, e))?
            }
            Err(e) => return Err(db_error(&path, e)),
        };
        Ok(Some(DecisionReader { db, path, dir: dir.to_owned() }))
    }

    pub fn all(&self) -> Result<Vec<StoredDecision>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        match txn.open_table(DECISIONS) {
            Ok(table) => read_all(&self.path, &table),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(db_error(&self.path, e)),
        }
    }

    pub fn anchor(&self) -> Result<(u64, Hash), StoreError> {
        read_anchor(&self.path, &self.db)
    }

    /// Checks the audit log against the chain and this store's anchor.
    pub fn verify_audit(&self) -> Result<Result<audit::Verified, audit::Broken>, StoreError> {
        let anchor = self.anchor()?;
        Ok(audit::verify(&self.dir.join(audit::FILE_NAME), Some(anchor)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(address: &str, secs: Option<u64>) -> NewDecision {
        NewDecision {
            scope: Scope::Address(address.parse().unwrap()),
            action: Action::Discard,
            origin: Origin::Operator { name: "root".into() },
            created: EventTime::from_unix_secs(100),
            expires: secs.map(|s| EventTime::from_unix_secs(100 + s)),
            reason: "test".into(),
            dry_run: false,
            evidence: None,
        }
    }

    #[test]
    fn a_batch_is_visible_at_once_and_durable_after_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let t = EventTime::from_unix_secs;
        {
            let mut store = DecisionStore::open(dir.path()).unwrap();
            store.begin_batch().unwrap();
            for i in 1..=20 {
                let (d, _) = store.enact(ban(&format!("203.0.113.{i}"), Some(60)), t(100)).unwrap();
                if i % 2 == 0 {
                    store.close(d.decision.id, Closing::Withdrawn, Actor::System, "test", t(101)).unwrap();
                }
            }
            // The writer sees its own batch before it is synced.
            assert_eq!(store.open_decisions().unwrap().len(), 10);
            store.end_batch().unwrap();
            // Outside a batch, ending one is harmless.
            store.end_batch().unwrap();
        }
        let store = DecisionStore::open(dir.path()).unwrap();
        assert_eq!((store.all().unwrap().len(), store.open_decisions().unwrap().len()), (20, 10));
        let verified =
            audit::verify(&dir.path().join(audit::FILE_NAME), Some(store.anchor().unwrap())).unwrap();
        assert_eq!((verified.records, verified.beyond_anchor), (30, 0));
    }

    #[test]
    fn decisions_survive_reopening_expire_and_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let t = EventTime::from_unix_secs;
        {
            let mut store = DecisionStore::open(dir.path()).unwrap();
            let (a, _) = store.enact(ban("203.0.113.1", Some(60)), t(100)).unwrap();
            let (b, _) = store.enact(ban("203.0.113.2", None), t(100)).unwrap();
            assert_eq!((a.decision.id, b.decision.id), (DecisionId(1), DecisionId(2)));
            // A second writer is refused while this one is open.
            assert!(matches!(DecisionStore::open(dir.path()), Err(StoreError::Busy { .. })));
            // Readers run alongside.
            let reader = DecisionReader::open(dir.path()).unwrap().unwrap();
            assert_eq!(reader.all().unwrap().len(), 2);
        }
        // Reconciliation at start: the expired one is closed, the other stays.
        let mut store = DecisionStore::open(dir.path()).unwrap();
        let closed = store.expire(t(200)).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].decision.id, DecisionId(1));
        assert_eq!(store.active(t(200)).unwrap().len(), 1);
        let withdrawn =
            store.close(DecisionId(2), Closing::Withdrawn, Actor::System, "done", t(201)).unwrap();
        assert!(withdrawn.is_some());
        assert!(
            store.close(DecisionId(2), Closing::Withdrawn, Actor::System, "again", t(202)).unwrap().is_none()
        );
        let (c, _) = store.enact(ban("203.0.113.3", None), t(203)).unwrap();
        assert_eq!(c.decision.id, DecisionId(3), "ids are never reused");
        drop(store);
        let reader = DecisionReader::open(dir.path()).unwrap().unwrap();
        let verified = reader.verify_audit().unwrap().unwrap();
        assert_eq!(verified.records, 5);
        assert_eq!(verified.beyond_anchor, 0);
    }
}
