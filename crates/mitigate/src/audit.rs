//! The audit log: every change to what Rampart blocks (and every refusal), append-only and
//! hash-chained, in `audit.jsonl` in the data directory.
//!
//! Each line is `{"hash":"<64 hex>","record":<record JSON>}`: `hash` is the SHA-256 of the
//! record's exact bytes, and every record carries the hash of the one before (`prev`; the
//! first carries 64 zeros) and its sequence number. Changing, removing or reordering a line
//! breaks the chain at that line; [`verify`] says where. The decision store keeps the sequence
//! number and hash of the last record it committed (the anchor), so cutting records off the
//! end is detected too. Whoever can rewrite the whole file and the store can forge a chain:
//! copy the head hash [`verify`] prints somewhere else to be sure of the past.
//!
//! With a size limit ([`AuditLog::rotate_at`]), a record that would take the file past it
//! first moves the file aside as `audit.jsonl.N` (N = 1 for the oldest, then 2, ...) and starts
//! a new `audit.jsonl`; the chain goes on across files (the new file's first record carries the
//! hash of the previous file's last), and [`verify`] reads every rotated file in order, then
//! the current one. Rotated files are never deleted: the chain starts at the first.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rampart_contract::{
    Action, AttackId, Decision, DecisionId, EventTime, Origin, Scope, Signature, Target, Vector,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Rung;
use crate::guard::Refusal;

/// File name of the audit log inside the data directory.
pub const FILE_NAME: &str = "audit.jsonl";

/// The longest line accepted: records carry a signature and a few counters, never this much.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: Hash = [0; 32];

/// Who or what made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// Policy, for this attack.
    Attack { attack: AttackId },
    /// An operator, by hand (the local user name, from the socket's peer credentials).
    Operator { name: String },
    /// A threat-intelligence feed.
    Intel { feed: String },
    /// Rampart itself: expiry, reconciliation at start.
    System,
}

impl From<&Origin> for Actor {
    fn from(origin: &Origin) -> Self {
        match origin {
            Origin::Attack { attack } => Actor::Attack { attack: *attack },
            Origin::Operator { name } => Actor::Operator { name: name.clone() },
            Origin::Intel { feed } => Actor::Intel { feed: feed.clone() },
            _ => Actor::System,
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Attack { attack } => write!(f, "attack {attack}"),
            Actor::Operator { name } => write!(f, "operator {name}"),
            Actor::Intel { feed } => write!(f, "feed {feed}"),
            Actor::System => f.write_str("rampart"),
        }
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A decision was put in force (or, in dry run, would have been).
    Enact { decision: Decision },
    /// A decision was withdrawn before its expiry.
    Withdraw { id: DecisionId },
    /// A decision reached its expiry.
    Expire { id: DecisionId },
    /// A decision's expiry moved (a lease renewed, an attack ended and its hold began).
    Extend { id: DecisionId, expires: Option<EventTime> },
    /// A guard refused a decision; nothing changed.
    Refuse { scope: Scope, action: Action, refusal: Refusal },
    /// A BGP peer's rule budget left one of a decision's routes out: aggregated into a wider
    /// route, dropped (lower priority than the routes held), or a duplicate of another
    /// decision's. The decision stays in force.
    RouteLeftOut {
        /// The peer's name (`[[bgp.peers]] name`).
        peer: String,
        decision: DecisionId,
        /// The route, as text (`blackhole 198.51.100.7/32`, `flow ...`).
        route: String,
        left_out: LeftOut,
    },
}

/// Why a BGP peer does not hold a decision's route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeftOut {
    /// Covered by this wider route, announced instead (still inside every guard).
    Aggregated { into: String },
    /// The peer's budget of this many rules is full of higher-priority routes.
    Budget { budget: u64 },
    /// Another decision already announces the same route.
    Duplicate { holder: DecisionId },
}

impl LeftOut {
    /// The metrics label (`aggregated`, `budget`, `duplicate`).
    pub fn name(&self) -> &'static str {
        match self {
            LeftOut::Aggregated { .. } => "aggregated",
            LeftOut::Budget { .. } => "budget",
            LeftOut::Duplicate { .. } => "duplicate",
        }
    }
}

/// What an automatic change was based on: the attack as known at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    pub attack: AttackId,
    pub target: Target,
    pub vectors: Vec<Vector>,
    pub current_bps: u64,
    pub current_pps: u64,
    pub peak_bps: u64,
    pub peak_pps: u64,
    pub signature: Signature,
    /// The ladder's rung this change is at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<Rung>,
    /// The vector this rule is for, when the attack is filtered one rule per vector
    /// (`signature` is then that vector's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vector>,
}

/// One audit record (the `record` of a line of `audit.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// 1 for the first record of the log.
    pub seq: u64,
    /// Hex SHA-256 of the previous record's bytes.
    pub prev: String,
    pub time: EventTime,
    pub actor: Actor,
    pub change: Change,
    /// Dry run: this is what Rampart would have done.
    pub dry_run: bool,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, read or written.
    #[error("audit log {}: {reason}", path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// What the file system said.
        reason: io::Error,
    },
    /// The last line of the log cannot be read back (at open), so the chain cannot go on.
    #[error("audit log {}: its last record is unreadable ({reason}); run `rampart audit verify`", path.display())]
    Tail {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The hash as 64 lowercase hex digits.
pub fn hash_hex(hash: &Hash) -> String {
    hex(hash)
}

const LINE_HEAD: &[u8] = br#"{"hash":""#;
const LINE_MID: &[u8] = br#"","record":"#;

/// Splits a line (without its newline) into its hash and record bytes.
fn split_line(line: &[u8]) -> Option<(Hash, &[u8])> {
    let rest = line.strip_prefix(LINE_HEAD)?;
    let (digits, rest) = (rest.get(..64)?, rest.get(64..)?);
    let hash = unhex(std::str::from_utf8(digits).ok()?)?;
    let body = rest.strip_prefix(LINE_MID)?.strip_suffix(b"}")?;
    Some((hash, body))
}

/// A parsed, hash-checked line: its record and its hash.
fn read_line(line: &[u8]) -> Result<(AuditRecord, Hash), String> {
    let (hash, body) = split_line(line).ok_or("not an audit line")?;
    let digest: Hash = Sha256::digest(body).into();
    if digest != hash {
        return Err("its hash does not match its contents (the record was changed)".into());
    }
    let record: AuditRecord = serde_json::from_slice(body).map_err(|e| format!("unreadable record: {e}"))?;
    Ok((record, hash))
}

/// `audit.jsonl.N` beside `path`, by N (oldest first): the rotated files of the log.
pub fn rotated_files(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{name}.");
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(number) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        if !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = number.parse::<u64>()
        {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The last line of `file` (complete lines only) and how many bytes follow it, from the last
/// [`MAX_LINE_BYTES`] + 1 bytes.
fn last_line(file: &mut File, len: u64, path: &Path) -> Result<(Option<Vec<u8>>, u64), AuditError> {
    let io_error = |reason| AuditError::Io { path: path.to_owned(), reason };
    let from = len.saturating_sub(MAX_LINE_BYTES as u64 + 1);
    file.seek(SeekFrom::Start(from)).map_err(io_error)?;
    let mut tail = Vec::new();
    file.take(MAX_LINE_BYTES as u64 + 1).read_to_end(&mut tail).map_err(io_error)?;
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(end) => end + 1,
        None if from == 0 => 0,
        None => {
            let reason = "no line end in its last megabyte".to_owned();
            return Err(AuditError::Tail { path: path.to_owned(), reason });
        }
    };
    let torn = (tail.len() - complete) as u64;
    tail.truncate(complete);
    let last = tail[..complete.saturating_sub(1)]
        .rsplit(|&b| b == b'\n')
        .next()
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec);
    Ok((last, torn))
}

/// Sequence number and hash of the last record of the newest rotated file, when there is one.
fn rotated_head(path: &Path) -> Result<Option<(u64, Hash)>, AuditError> {
    let rotated = rotated_files(path).map_err(|reason| AuditError::Io { path: path.to_owned(), reason })?;
    let Some((_, newest)) = rotated.last() else { return Ok(None) };
    let io_error = |reason| AuditError::Io { path: newest.clone(), reason };
    let mut file = File::open(newest).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let (Some(last), _) = last_line(&mut file, len, newest)? else {
        let reason = "a rotated file holds no complete record".to_owned();
        return Err(AuditError::Tail { path: newest.clone(), reason });
    };
    let (record, hash) =
        read_line(&last).map_err(|reason| AuditError::Tail { path: newest.clone(), reason })?;
    Ok(Some((record.seq, hash)))
}

/// The append side of the log. Appends are written and synced before they return.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
    /// Bytes in the current file.
    len: u64,
    /// Rotate before a record would take the file past this many bytes; `None`: never.
    rotate_at: Option<u64>,
    seq: u64,
    head: Hash,
    /// Appends wait for [`AuditLog::sync`] instead of syncing each.
    deferred: bool,
    /// Appended since the last sync.
    unsynced: bool,
}

impl AuditLog {
    /// Opens (creating it private if needed) the log at `path` and finds its last record. A
    /// torn last line (a crash mid-append) is cut off; the warning says so.
    pub fn open(path: &Path) -> Result<(AuditLog, Vec<String>), AuditError> {
        let io_error = |reason| AuditError::Io { path: path.to_owned(), reason };
        let mut file = rampart_store::files::private_options()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        let mut warnings: Vec<String> = rampart_store::files::private_file(path).into_iter().collect();
        let mut len = file.metadata().map_err(io_error)?.len();
        let (last, torn) = last_line(&mut file, len, path)?;
        if torn > 0 {
            len -= torn;
            file.set_len(len).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            warnings.push(format!(
                "audit log {}: cut off {torn} bytes of a record torn by a crash",
                path.display()
            ));
        }
        let (seq, head) = match last {
            Some(last) => {
                let (record, hash) =
                    read_line(&last).map_err(|reason| AuditError::Tail { path: path.to_owned(), reason })?;
                (record.seq, hash)
            }
            // A fresh file after a rotation: the chain goes on from the last rotated file.
            None => rotated_head(path)?.unwrap_or((0, GENESIS)),
        };
        let log = AuditLog {
            file,
            path: path.to_owned(),
            len,
            rotate_at: None,
            seq,
            head,
            deferred: false,
            unsynced: false,
        };
        Ok((log, warnings))
    }

    /// Rotates the file before a record would take it past `bytes` (`None`: never). A record
    /// longer than the limit still goes in, alone in its file.
    pub fn rotate_at(&mut self, bytes: Option<u64>) {
        self.rotate_at = bytes;
    }

    /// Moves the current file aside as the next `audit.jsonl.N` (synced first) and starts an
    /// empty one.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let io_error = |reason| AuditError::Io { path: self.path.clone(), reason };
        self.file.sync_data().map_err(io_error)?;
        self.unsynced = false;
        let next = rotated_files(&self.path).map_err(io_error)?.last().map_or(1, |(n, _)| n + 1);
        let mut aside = self.path.clone().into_os_string();
        aside.push(format!(".{next}"));
        std::fs::rename(&self.path, &aside).map_err(io_error)?;
        self.file = rampart_store::files::private_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io_error)?;
        // The rename and the new file reach the disk before records go into it.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)?;
        }
        self.len = 0;
        Ok(())
    }

    /// Sequence number and hash of the last record (0 and [`GENESIS`] when empty).
    pub fn head(&self) -> (u64, Hash) {
        (self.seq, self.head)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether appends sync at once (`false`) or wait for [`AuditLog::sync`] (`true`).
    pub fn defer_sync(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    /// Whether appends wait for [`AuditLog::sync`].
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// Syncs what was appended since the last sync.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if self.unsynced {
            self.file.sync_data().map_err(|reason| AuditError::Io { path: self.path.clone(), reason })?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Appends `record` (its `seq` and `prev` set here), synced to disk unless syncs are
    /// deferred; returns it as written.
    pub fn append(&mut self, mut record: AuditRecord) -> Result<AuditRecord, AuditError> {
        record.seq = self.seq + 1;
        record.prev = hex(&self.head);
        let body = serde_json::to_vec(&record)
            .map_err(|e| AuditError::Io { path: self.path.clone(), reason: io::Error::other(e) })?;
        let hash: Hash = Sha256::digest(&body).into();
        let mut line = Vec::with_capacity(body.len() + 96);
        line.extend_from_slice(LINE_HEAD);
        line.extend_from_slice(hex(&hash).as_bytes());
        line.extend_from_slice(LINE_MID);
        line.extend_from_slice(&body);
        line.extend_from_slice(b"}\n");
        if let Some(limit) = self.rotate_at
            && self.len > 0
            && self.len + line.len() as u64 > limit
        {
            self.rotate()?;
        }
        let io_error = |reason| AuditError::Io { path: self.path.clone(), reason };
        self.file.write_all(&line).map_err(io_error)?;
        self.len += line.len() as u64;
        if self.deferred {
            self.unsynced = true;
        } else {
            self.file.sync_data().map_err(io_error)?;
        }
        self.seq = record.seq;
        self.head = hash;
        Ok(record)
    }
}

/// What [`verify`] found in a sound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// Hash of the last record.
    pub head: Hash,
    /// Records after the store's anchor: appended by a writer that died before committing the
    /// change they describe (harmless, but said).
    pub beyond_anchor: u64,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A line is malformed or its hash does not match its contents.
    #[error("{file} line {line}: {reason}")]
    Line {
        /// The file's name (`audit.jsonl`, or a rotated `audit.jsonl.N`).
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record does not follow the one before (removed, inserted or reordered lines).
    #[error(
        "{file} line {line}: record {seq} does not follow record {previous} (a record was removed, inserted or moved)"
    )]
    Chain {
        /// The file's name.
        file: String,
        /// 1-based line number.
        line: u64,
        /// Its sequence number.
        seq: u64,
        /// The previous record's sequence number.
        previous: u64,
    },
    /// The log ends before the store's anchor, or its record there differs: records were cut
    /// off the end or the log was replaced.
    #[error("the decision store committed record {seq}, but {found}")]
    Anchor {
        /// The anchored sequence number.
        seq: u64,
        /// What the log has instead.
        found: String,
    },
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
}

/// Reads the whole log at `path` (its rotated files first, oldest first), checking every hash
/// and link, across files too, and the store's `anchor` (sequence number and hash of the last
/// committed record) when given. Reads line by line, each at most [`MAX_LINE_BYTES`].
pub fn verify(path: &Path, anchor: Option<(u64, Hash)>) -> Result<Verified, Broken> {
    let rotated = rotated_files(path)
        .map_err(|e| Broken::Io(format!("cannot list the rotated files of {}: {e}", path.display())))?;
    let mut chain = Chain { seq: 0, head: GENESIS, anchor, anchored: anchor.is_none_or(|(s, _)| s == 0) };
    for (_, file) in &rotated {
        chain.read(file)?;
    }
    // A writer that died between moving the file aside and creating the next leaves none.
    if rotated.is_empty() || path.exists() {
        chain.read(path)?;
    }
    let Chain { seq, head, anchored, .. } = chain;
    if !anchored {
        let anchor_seq = anchor.map_or(0, |(s, _)| s);
        return Err(Broken::Anchor {
            seq: anchor_seq,
            found: format!("the log ends at record {seq} (records were cut off)"),
        });
    }
    let beyond_anchor = anchor.map_or(0, |(s, _)| seq - s.min(seq));
    Ok(Verified { records: seq, head, beyond_anchor })
}

/// Where [`verify`] is in the chain.
struct Chain {
    seq: u64,
    head: Hash,
    anchor: Option<(u64, Hash)>,
    anchored: bool,
}

impl Chain {
    /// Follows the chain through one file.
    fn read(&mut self, path: &Path) -> Result<(), Broken> {
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let file =
            File::open(path).map_err(|e| Broken::Io(format!("cannot read {}: {e}", path.display())))?;
        let mut reader = BufReader::new(file);
        let mut line_no = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Broken::Io(format!("cannot read {}: {e}", path.display())))?;
            if read == 0 {
                return Ok(());
            }
            line_no += 1;
            let Some(text) = line.strip_suffix(b"\n") else {
                let reason =
                    if line.len() > MAX_LINE_BYTES { "longer than 1 MiB" } else { "no line end (torn)" };
                return Err(Broken::Line { file: name, line: line_no, reason: reason.into() });
            };
            let (record, hash) = read_line(text).map_err(|reason| Broken::Line {
                file: name.clone(),
                line: line_no,
                reason,
            })?;
            if record.seq != self.seq + 1 || unhex(&record.prev) != Some(self.head) {
                return Err(Broken::Chain { file: name, line: line_no, seq: record.seq, previous: self.seq });
            }
            self.seq = record.seq;
            self.head = hash;
            if let Some((anchor_seq, anchor_hash)) = self.anchor
                && anchor_seq == self.seq
            {
                if anchor_hash != hash {
                    let found =
                        format!("the log's record {} has another hash (the log was replaced)", self.seq);
                    return Err(Broken::Anchor { seq: anchor_seq, found });
                }
                self.anchored = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reason: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            prev: String::new(),
            time: EventTime::from_unix_secs(1_000),
            actor: Actor::Operator { name: "root".into() },
            change: Change::Withdraw { id: DecisionId(1) },
            dry_run: false,
            reason: reason.into(),
            evidence: None,
        }
    }

    fn write(path: &Path, n: usize) -> (u64, Hash) {
        let (mut log, _) = AuditLog::open(path).unwrap();
        for i in 0..n {
            log.append(record(&format!("change {i}"))).unwrap();
        }
        log.head()
    }

    #[test]
    fn a_chain_verifies_and_reopening_continues_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let three = write(&path, 3);
        let head = write(&path, 2);
        assert_eq!(head.0, 5);
        let verified = verify(&path, Some(head)).unwrap();
        assert_eq!((verified.records, verified.head, verified.beyond_anchor), (5, head.1, 0));
        // Records the store never committed (a writer died between log and commit): said, not
        // an error.
        assert_eq!(verify(&path, Some(three)).unwrap().beyond_anchor, 2);
        let replaced = verify(&path, Some((3, GENESIS))).unwrap_err();
        assert!(replaced.to_string().contains("another hash"), "{replaced}");
    }

    #[test]
    fn flipping_any_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let head = write(&path, 4);
        let original = std::fs::read(&path).unwrap();
        for at in (0..original.len()).step_by(7) {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                verify(&path, Some(head)).is_err(),
                "flip at byte {at} of {} went unnoticed",
                bytes.len()
            );
        }
        // Removing a line in the middle, or the last one.
        let text = String::from_utf8(original.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let without_second = [lines[0], lines[2], lines[3]].map(|l| format!("{l}\n")).concat();
        std::fs::write(&path, without_second).unwrap();
        assert!(matches!(verify(&path, Some(head)), Err(Broken::Chain { line: 2, .. })));
        let without_last = lines[..3].iter().map(|l| format!("{l}\n")).collect::<String>();
        std::fs::write(&path, without_last).unwrap();
        assert!(matches!(verify(&path, Some(head)), Err(Broken::Anchor { .. })));
        std::fs::write(&path, &original).unwrap();
        verify(&path, Some(head)).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Random bytes, and a real log with random bytes changed, inserted or cut: reading never
        /// panics, and a log that was changed is never reported intact with the old head.
        #[test]
        fn hostile_logs_never_panic_and_changes_never_verify(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8),
            cut in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            std::fs::write(&path, &junk).unwrap();
            let _ = verify(&path, None);
            let _ = AuditLog::open(&path);
            std::fs::remove_file(&path).unwrap();
            let head = write(&path, 3);
            let original = std::fs::read(&path).unwrap();
            let mut bytes = original.clone();
            for (at, byte) in edits {
                let at = at % bytes.len();
                if cut { bytes.truncate(at.max(1)); } else { bytes[at] = byte; }
            }
            std::fs::write(&path, &bytes).unwrap();
            let result = verify(&path, Some(head));
            if bytes != original {
                proptest::prop_assert!(result.is_err(), "a changed log verified: {result:?}");
            }
            let _ = AuditLog::open(&path);
        }
    }

    #[test]
    fn rotated_files_chain_on_and_verify_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let limit = 700;
        let append = |n: usize, from: usize| {
            let (mut log, _) = AuditLog::open(&path).unwrap();
            log.rotate_at(Some(limit));
            for i in from..from + n {
                log.append(record(&format!("change {i}"))).unwrap();
            }
            log.head()
        };
        append(6, 0);
        // Reopened (a restart): the chain goes on, rotation too.
        let head = append(6, 6);
        assert_eq!(head.0, 12);
        let rotated = rotated_files(&path).unwrap();
        assert!(rotated.len() >= 3, "{rotated:?}");
        assert_eq!(
            rotated.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            (1..=rotated.len() as u64).collect::<Vec<_>>()
        );
        for (_, file) in &rotated {
            let len = std::fs::metadata(file).unwrap().len();
            assert!(len <= limit, "{} is {len} bytes", file.display());
        }
        let verified = verify(&path, Some(head)).unwrap();
        assert_eq!((verified.records, verified.head), (12, head.1));
        // The first record of each file chains to the last of the one before.
        let second = std::fs::read_to_string(&rotated[1].1).unwrap();
        let (first_of_second, _) = read_line(second.lines().next().unwrap().as_bytes()).unwrap();
        let first = std::fs::read_to_string(&rotated[0].1).unwrap();
        let (_, last_hash) = read_line(first.lines().last().unwrap().as_bytes()).unwrap();
        assert_eq!(first_of_second.prev, hex(&last_hash));

        // A writer killed between moving the file aside and creating the next one.
        let next = rotated.len() + 1;
        std::fs::rename(&path, dir.path().join(format!("{FILE_NAME}.{next}"))).unwrap();
        assert_eq!(verify(&path, Some(head)).unwrap().records, 12);
        let head = append(1, 12);
        assert_eq!(head.0, 13);
        verify(&path, Some(head)).unwrap();

        // A rotated file removed, or two swapped: the chain breaks at the file after the gap.
        let kept = std::fs::read(&rotated[1].1).unwrap();
        std::fs::remove_file(&rotated[1].1).unwrap();
        let broken = verify(&path, Some(head)).unwrap_err();
        assert!(
            matches!(&broken, Broken::Chain { file, line: 1, .. } if file == &format!("{FILE_NAME}.3")),
            "{broken}"
        );
        std::fs::write(&rotated[1].1, &kept).unwrap();
        let first_bytes = std::fs::read(&rotated[0].1).unwrap();
        std::fs::write(&rotated[0].1, &kept).unwrap();
        std::fs::write(&rotated[1].1, &first_bytes).unwrap();
        assert!(verify(&path, Some(head)).is_err());
        std::fs::write(&rotated[0].1, &first_bytes).unwrap();
        std::fs::write(&rotated[1].1, &kept).unwrap();
        // A byte changed in a rotated file.
        let mut changed = first_bytes.clone();
        changed[100] ^= 1;
        std::fs::write(&rotated[0].1, &changed).unwrap();
        let broken = verify(&path, Some(head)).unwrap_err();
        assert!(broken.to_string().starts_with(&format!("{FILE_NAME}.1 line ")), "{broken}");
        std::fs::write(&rotated[0].1, &first_bytes).unwrap();
        verify(&path, Some(head)).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(&path, 2);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"hash":"00"#).unwrap();
        drop(file);
        let (log, warnings) = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 2);
        assert!(warnings.iter().any(|w| w.contains("torn")), "{warnings:?}");
        drop(log);
        verify(&path, None).unwrap();
    }
}
