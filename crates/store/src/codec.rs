//! How records are laid out in the file: the one place that turns [`StoredAttack`] and
//! [`StoredEvent`] into bytes and back. Switching the store to typed records (or to another
//! encoding) touches this module only.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Status, StoreError, StoredAttack, StoredEvent};

/// Bytes of an attack row.
pub(crate) fn encode_attack(attack: &StoredAttack) -> Vec<u8> {
    encode(attack)
}

/// Bytes of an event row.
pub(crate) fn encode_event(event: &StoredEvent) -> Vec<u8> {
    encode(event)
}

pub(crate) fn decode_attack(path: &Path, bytes: &[u8]) -> Result<StoredAttack, StoreError> {
    decode(path, bytes)
}

pub(crate) fn decode_event(path: &Path, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    decode(path, bytes)
}

/// The fields of an attack row that retention and listing filters need, read without building
/// the attack's JSON tree (serde skips it).
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct AttackHead {
    pub status: Status,
    pub events: u64,
    pub first_recorded: u64,
    pub last_recorded: u64,
}

/// The head of an attack row; `None` for a row this version cannot read (retention deletes
/// those like any other).
pub(crate) fn decode_head(bytes: &[u8]) -> Option<AttackHead> {
    serde_json::from_slice(bytes).ok()
}

/// The head of an attack row, or why it cannot be read.
pub(crate) fn decode_head_checked(path: &Path, bytes: &[u8]) -> Result<AttackHead, StoreError> {
    decode(path, bytes)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to JSON cannot fail (string keys, and serde_json writes
    // non-finite floats as null rather than failing).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|reason| StoreError::Corrupt { path: path.to_owned(), reason })
}
