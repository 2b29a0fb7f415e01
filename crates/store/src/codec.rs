//! How records are laid out in the file: the one place that turns [`StoredAttack`] and
//! [`StoredEvent`] into bytes and back. Rows are the records' JSON, `schema_version` first;
//! switching to another encoding touches this module only.

use std::path::Path;

use rampart_contract::SchemaVersion;
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
/// the attack (serde skips it).
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct AttackHead {
    /// Checked: a row of another version has no head this version can trust.
    #[serde(rename = "schema_version")]
    _version: SchemaVersion,
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

/// Only the version of a row.
#[derive(Deserialize)]
struct Version {
    #[serde(rename = "schema_version")]
    _version: SchemaVersion,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to JSON cannot fail (string keys, and serde_json writes
    // non-finite floats as null rather than failing).
    serde_json::to_vec(value).unwrap_or_default()
}

/// A row that does not decode is [`StoreError::NotVersion1`] when its `schema_version` is
/// missing or another (an older or newer Rampart wrote it), else [`StoreError::Corrupt`].
fn decode<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|reason| match serde_json::from_slice::<Version>(bytes) {
        Err(version) if !version.is_syntax() && !version.is_eof() => {
            StoreError::NotVersion1 { path: path.to_owned(), reason: version }
        }
        _ => StoreError::Corrupt { path: path.to_owned(), reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_are_told_apart_from_damage() {
        let path = Path::new("rampart.redb");
        let old = br#"{"id":1,"run":1,"engine_id":1,"status":"ended","attack":{"target":"192.0.2.1"}}"#;
        let error = decode_attack(path, old).unwrap_err();
        assert!(matches!(error, StoreError::NotVersion1 { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("not a version-1 record") && text.contains("move rampart.redb aside"),
            "{text}"
        );
        let newer = br#"{"schema_version":2,"id":1}"#;
        let text = decode_attack(path, newer).unwrap_err().to_string();
        assert!(text.contains("schema version 2, but this Rampart reads version 1"), "{text}");
        let damaged = br#"{"schema_version":1,"id":"x"}"#;
        assert!(matches!(decode_attack(path, damaged).unwrap_err(), StoreError::Corrupt { .. }));
        assert!(matches!(decode_event(path, b"{\"sche").unwrap_err(), StoreError::Corrupt { .. }));
        assert!(decode_head(old).is_none(), "retention deletes old rows");
    }
}
