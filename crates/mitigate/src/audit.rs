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

/// The append side of the log. Appends are written and synced before they return.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
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
        let len = file.metadata().map_err(io_error)?.len();
        // The last line is within the last MAX_LINE_BYTES + 1 bytes.
        let from = len.saturating_sub(MAX_LINE_BYTES as u64 + 1);
        file.seek(SeekFrom::Start(from)).map_err(io_error)?;
        let mut tail = Vec::new();
        (&mut file).take(MAX_LINE_BYTES as u64 + 1).read_to_end(&mut tail).map_err(io_error)?;
        let complete = match tail.iter().rposition(|&b| b == b'\n') {
            Some(end) => end + 1,
            None if from == 0 => 0,
            None => {
                let reason = "no line end in its last megabyte".to_owned();
                return Err(AuditError::Tail { path: path.to_owned(), reason });
            }
        };
        if complete < tail.len() {
            let keep = from + complete as u64;
            file.set_len(keep).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            warnings.push(format!(
                "audit log {}: cut off {} bytes of a record torn by a crash",
                path.display(),
                tail.len() - complete
            ));
            tail.truncate(complete);
        }
        let (seq, head) = match tail[..complete.saturating_sub(1)].rsplit(|&b| b == b'\n').next() {
            Some(last) if !last.is_empty() => {
                let (record, hash) =
                    read_line(last).map_err(|reason| AuditError::Tail { path: path.to_owned(), reason })?;
                (record.seq, hash)
            }
            _ => (0, GENESIS),
        };
        Ok((AuditLog { file, path: path.to_owned(), seq, head, deferred: false, unsynced: false }, warnings))
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
        let io_error = |reason| AuditError::Io { path: self.path.clone(), reason };
        record.seq = self.seq + 1;
        record.prev = hex(&self.head);
        let body = serde_json::to_vec(&record).map_err(|e| io_error(io::Error::other(e)))?;
        let hash: Hash = Sha256::digest(&body).into();
        let mut line = Vec::with_capacity(body.len() + 96);
        line.extend_from_slice(LINE_HEAD);
        line.extend_from_slice(hex(&hash).as_bytes());
        line.extend_from_slice(LINE_MID);
        line.extend_from_slice(&body);
        line.extend_from_slice(b"}\n");
        self.file.write_all(&line).map_err(io_error)?;
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
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record does not follow the one before (removed, inserted or reordered lines).
    #[error(
        "line {line}: record {seq} does not follow record {previous} (a record was removed, inserted or moved)"
    )]
    Chain {
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

/// Reads the whole log at `path`, checking every hash and link, and the store's `anchor`
/// (sequence number and hash of the last committed record) when given. Reads line by line,
/// each at most [`MAX_LINE_BYTES`].
pub fn verify(path: &Path, anchor: Option<(u64, Hash)>) -> Result<Verified, Broken> {
    let file = File::open(path).map_err(|e| Broken::Io(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let (mut seq, mut head) = (0u64, GENESIS);
    let mut anchored = anchor.is_none_or(|(s, _)| s == 0);
    let mut line_no = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Broken::Io(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let Some(text) = line.strip_suffix(b"\n") else {
            let reason = if line.len() > MAX_LINE_BYTES { "longer than 1 MiB" } else { "no line end (torn)" };
            return Err(Broken::Line { line: line_no, reason: reason.into() });
        };
        let (record, hash) = read_line(text).map_err(|reason| Broken::Line { line: line_no, reason })?;
        if record.seq != seq + 1 || unhex(&record.prev) != Some(head) {
            return Err(Broken::Chain { line: line_no, seq: record.seq, previous: seq });
        }
        seq = record.seq;
        head = hash;
        if let Some((anchor_seq, anchor_hash)) = anchor
            && anchor_seq == seq
        {
            if anchor_hash != hash {
                let found = format!("the log's record {seq} has another hash (the log was replaced)");
                return Err(Broken::Anchor { seq: anchor_seq, found });
            }
            anchored = true;
        }
    }
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
