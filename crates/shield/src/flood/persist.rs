//! The flood defense's files in the data directory, written atomically (temporary file, fsync,
//! rename, fsync of the directory): `flood-baseline.json` (learned baselines and baseline
//! samples, reloaded at start) and `flood-rules.json` (active and recent rules, read by
//! `rampart shield rules`). A file that cannot be parsed is reported and ignored.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::baseline::BaselineBook;
use super::engine::EngineStats;
use super::features::Features;
use super::rules::Rule;

/// The baseline file's name.
pub const BASELINE_FILE: &str = "flood-baseline.json";
/// The rules file's name.
pub const RULES_FILE: &str = "flood-rules.json";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a file was not read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what this build writes (damaged, cut short, another version).
    #[error("{path}: corrupt or unsupported flood state: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// What `flood-baseline.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSnapshot {
    /// [`VERSION`].
    pub version: u32,
    /// Learned levels per route and host.
    pub book: BaselineBook,
    /// Baseline samples per route.
    pub samples: BTreeMap<String, Vec<Features>>,
    /// The next rule number.
    pub next_rule: u64,
}

/// What `flood-rules.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesSnapshot {
    /// [`VERSION`].
    pub version: u32,
    /// Unix milliseconds it was written.
    pub written_ms: u64,
    /// Rules in force.
    pub active: Vec<Rule>,
    /// Rules expired lately.
    pub recent: Vec<Rule>,
    /// Floods for which no safe rule was found.
    pub no_safe_rule: u64,
    /// Rules made since start.
    pub rules_made: u64,
}

impl RulesSnapshot {
    /// From the engine's rules and counters.
    pub fn new(active: Vec<Rule>, recent: Vec<Rule>, stats: EngineStats, written_ms: u64) -> RulesSnapshot {
        RulesSnapshot {
            version: VERSION,
            written_ms,
            active,
            recent,
            no_safe_rule: stats.no_safe_rule,
            rules_made: stats.rules_made,
        }
    }
}

/// Write `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |source| PersistError::Io { path: path.to_owned(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself must reach the disk too.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io)
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Io { path: path.to_owned(), source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PersistError::Corrupt { path: path.to_owned(), message: e.to_string() })
}

fn check_version(path: &Path, version: u32) -> Result<(), PersistError> {
    if version == VERSION {
        Ok(())
    } else {
        Err(PersistError::Corrupt {
            path: path.to_owned(),
            message: format!("version {version}, this build reads {VERSION}"),
        })
    }
}

/// Read the baseline snapshot in `dir`, `None` if there is none.
pub fn read_baseline(dir: &Path) -> Result<Option<BaselineSnapshot>, PersistError> {
    let path = dir.join(BASELINE_FILE);
    let snapshot: Option<BaselineSnapshot> = read(&path)?;
    if let Some(s) = &snapshot {
        check_version(&path, s.version)?;
    }
    Ok(snapshot)
}

/// Write the baseline snapshot into `dir`.
pub fn write_baseline(dir: &Path, snapshot: &BaselineSnapshot) -> Result<(), PersistError> {
    let path = dir.join(BASELINE_FILE);
    let bytes = serde_json::to_vec(snapshot)
        .map_err(|e| PersistError::Corrupt { path: path.clone(), message: e.to_string() })?;
    write_atomic(&path, &bytes)
}

/// Read the rules file in `dir`, `None` if there is none.
pub fn read_rules(dir: &Path) -> Result<Option<RulesSnapshot>, PersistError> {
    let path = dir.join(RULES_FILE);
    let snapshot: Option<RulesSnapshot> = read(&path)?;
    if let Some(s) = &snapshot {
        check_version(&path, s.version)?;
    }
    Ok(snapshot)
}

/// Write the rules file into `dir`.
pub fn write_rules(dir: &Path, snapshot: &RulesSnapshot) -> Result<(), PersistError> {
    let path = dir.join(RULES_FILE);
    let bytes = serde_json::to_vec_pretty(snapshot)
        .map_err(|e| PersistError::Corrupt { path: path.clone(), message: e.to_string() })?;
    write_atomic(&path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_baseline(dir.path()).unwrap().is_none());
        let snapshot = BaselineSnapshot {
            version: VERSION,
            book: BaselineBook::default(),
            samples: BTreeMap::from([("web".to_owned(), vec![Features { values: [3; 12] }])]),
            next_rule: 7,
        };
        write_baseline(dir.path(), &snapshot).unwrap();
        assert_eq!(read_baseline(dir.path()).unwrap(), Some(snapshot));
        std::fs::write(dir.path().join(BASELINE_FILE), b"{\"version\":1,\"bo").unwrap();
        let error = read_baseline(dir.path()).unwrap_err().to_string();
        assert!(error.contains(BASELINE_FILE) && error.contains("corrupt"), "{error}");
        std::fs::write(dir.path().join(RULES_FILE), b"\x00\xff").unwrap();
        assert!(matches!(read_rules(dir.path()), Err(PersistError::Corrupt { .. })));
    }
}
