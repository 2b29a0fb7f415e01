//! Reading the store: a read-only handle that may run alongside the writing daemon, and the
//! streaming iterator over attacks that `attacks list` pages with.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use redb::{ReadOnlyDatabase, ReadableDatabase};

use crate::*;

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
        let open = || {
            redb::Builder::new()
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_cache_size(READER_CACHE_BYTES)
                .open_read_only(&path)
        };
        let db = match open() {
            Ok(db) => db,
            // The daemon died (kill -9, power loss) and none runs now: a reader cannot repair
            // the file, so open it once for writing, which does, then read. A writer started
            // meanwhile repairs it itself.
            Err(redb::DatabaseError::RepairAborted) => {
                match redb::Builder::new().set_cache_size(READER_CACHE_BYTES).open(&path) {
                    Ok(repaired) => drop(repaired),
                    Err(redb::DatabaseError::DatabaseAlreadyOpen) => {}
                    Err(e) => return Err(db_error(&path, e)),
                }
                open().map_err(|e| db_error(&path, e))?
            }
            Err(e) => return Err(db_error(&path, e)),
        };
        Ok(StoreReader { db, path })
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every attack, oldest first. Loads them all: prefer [`StoreReader::iter`] or
    /// [`StoreReader::list`].
    pub fn attacks(&self) -> Result<Vec<StoredAttack>, StoreError> {
        self.iter(.., Order::OldestFirst)?.collect()
    }

    /// Streams the attacks whose store ids are in `ids`, in `order`, from one read snapshot:
    /// memory stays bounded whatever the store holds. The snapshot keeps the pages it reads
    /// from being reused by the writer until the iterator is dropped.
    pub fn iter(&self, ids: impl RangeBounds<u64>, order: Order) -> Result<AttackIter, StoreError> {
        read_iter(&self.db, &self.path, ids, order)
    }

    /// One page: up to `limit` attacks with store ids below `before` (all when `None`), newest
    /// first, and the cursor of the next page.
    pub fn list(&self, before: Option<u64>, limit: usize) -> Result<AttackPage, StoreError> {
        let mut iter = self.iter(..before.unwrap_or(u64::MAX), Order::NewestFirst)?;
        let mut attacks = Vec::with_capacity(limit.min(1024));
        for attack in iter.by_ref().take(limit) {
            attacks.push(attack?);
        }
        let next = match attacks.last() {
            Some(last) if iter.has_more() => Some(last.id),
            _ => None,
        };
        Ok(AttackPage { attacks, next })
    }

    /// The store id of the oldest attack first recorded at or after `since` (Unix
    /// nanoseconds), found by scanning back from the newest (store ids follow recording order).
    pub fn first_since(&self, since: u64) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let Some(table) = open_read(&txn, &self.path, ATTACKS)? else { return Ok(None) };
        let mut first = None;
        for entry in table.range::<u64>(..).map_err(|e| db_error(&self.path, e))?.rev() {
            let (id, value) = entry.map_err(|e| db_error(&self.path, e))?;
            match codec::decode_head(value.value()) {
                Some(head) if head.first_recorded < since => break,
                _ => first = Some(id.value()),
            }
        }
        Ok(first)
    }

    /// The store id of the oldest of the `n` newest attacks with ids below `before` (all when
    /// `None`): where a listing of the latest `n` starts, oldest first. Reads keys only.
    pub fn first_of_latest(&self, before: Option<u64>, n: usize) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let Some(table) = open_read(&txn, &self.path, ATTACKS)? else { return Ok(None) };
        let mut first = None;
        let range = table.range::<u64>(..before.unwrap_or(u64::MAX)).map_err(|e| db_error(&self.path, e))?;
        for entry in range.rev().take(n) {
            first = Some(entry.map_err(|e| db_error(&self.path, e))?.0.value());
        }
        Ok(first)
    }

    /// Sizes of the store.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        read_stats(&self.db, &self.path)
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

/// Attacks streamed from one read transaction ([`StoreReader::iter`]).
pub struct AttackIter {
    range: Option<redb::Range<'static, u64, &'static [u8]>>,
    order: Order,
    path: PathBuf,
    /// One row read ahead, for [`AttackIter::has_more`].
    peeked: Option<Result<StoredAttack, StoreError>>,
}

impl std::fmt::Debug for AttackIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttackIter")
            .field("path", &self.path)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl AttackIter {
    /// Whether another attack follows.
    pub fn has_more(&mut self) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.advance();
        }
        self.peeked.is_some()
    }

    fn advance(&mut self) -> Option<Result<StoredAttack, StoreError>> {
        let range = self.range.as_mut()?;
        let entry = match self.order {
            Order::OldestFirst => range.next(),
            Order::NewestFirst => range.next_back(),
        }?;
        Some(match entry {
            Ok((_, value)) => codec::decode_attack(&self.path, value.value()),
            Err(e) => Err(db_error(&self.path, e)),
        })
    }
}

impl Iterator for AttackIter {
    type Item = Result<StoredAttack, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.peeked.take().or_else(|| self.advance())
    }
}

pub(crate) fn read_iter(
    db: &impl ReadableDatabase,
    path: &Path,
    ids: impl RangeBounds<u64>,
    order: Order,
) -> Result<AttackIter, StoreError> {
    let txn = db.begin_read().map_err(|e| db_error(path, e))?;
    let bounds: (Bound<u64>, Bound<u64>) = (ids.start_bound().cloned(), ids.end_bound().cloned());
    // The range holds the transaction open until it is dropped.
    let range = match open_read(&txn, path, ATTACKS)? {
        Some(table) => Some(table.range::<u64>(bounds).map_err(|e| db_error(path, e))?),
        None => None,
    };
    Ok(AttackIter { range, order, path: path.to_owned(), peeked: None })
}
