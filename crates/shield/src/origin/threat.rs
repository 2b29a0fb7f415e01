//! The shield-wide threat level (the detection layer's `normal`, `elevated`, `high`) and what
//! it tightens: shorter queue deadlines, a lower concurrency ceiling, stale copies served
//! instead of queueing, and a pressure value the challenge ladder reads.
//!
//! The level in force is the higher of the configured one and the one in the threat file (a
//! file in the data directory that the daemon or an operator writes, one word; re-read every
//! second). A missing file means `normal`; an unreadable or unknown word keeps the last level
//! read, so a half-written file never lowers the guard.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

pub use rampart_contract::ThreatLevel;

/// What a level changes, as factors of the configured values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tightening {
    /// Queue deadlines are multiplied by this.
    pub queue_deadline: f64,
    /// The concurrency ceiling is the hard maximum multiplied by this.
    pub concurrency: f64,
    /// A request that would wait in the queue is answered at once from the stale cache when
    /// a copy is there.
    pub stale_instead_of_queue: bool,
    /// The challenge ladder's pressure: 0 relaxed to 1 hardest.
    pub pressure: f64,
}

/// The tightening at `level`.
pub fn tightening(level: ThreatLevel) -> Tightening {
    match level {
        ThreatLevel::Normal => {
            Tightening { queue_deadline: 1.0, concurrency: 1.0, stale_instead_of_queue: false, pressure: 0.0 }
        }
        ThreatLevel::Elevated => {
            Tightening { queue_deadline: 0.5, concurrency: 0.75, stale_instead_of_queue: true, pressure: 0.5 }
        }
        ThreatLevel::High => {
            Tightening { queue_deadline: 0.25, concurrency: 0.5, stale_instead_of_queue: true, pressure: 1.0 }
        }
    }
}

fn encode(level: ThreatLevel) -> u8 {
    match level {
        ThreatLevel::Normal => 0,
        ThreatLevel::Elevated => 1,
        ThreatLevel::High => 2,
    }
}

fn decode(value: u8) -> ThreatLevel {
    match value {
        0 => ThreatLevel::Normal,
        1 => ThreatLevel::Elevated,
        _ => ThreatLevel::High,
    }
}

/// The level of a threat file's text: one of `normal`, `elevated`, `high` (case and
/// surrounding white space ignored); `None` for anything else.
pub fn parse_level(text: &str) -> Option<ThreatLevel> {
    ThreatLevel::parse(&text.trim().to_ascii_lowercase())
}

/// The shield's threat level, shared by every request.
#[derive(Debug)]
pub struct Threat {
    configured: ThreatLevel,
    from_file: AtomicU8,
    file: Option<PathBuf>,
}

impl Threat {
    /// At `configured`, raised by `file` when given.
    pub fn new(configured: ThreatLevel, file: Option<PathBuf>) -> Threat {
        Threat { configured, from_file: AtomicU8::new(0), file }
    }

    /// The level in force.
    pub fn level(&self) -> ThreatLevel {
        self.configured.max(decode(self.from_file.load(Ordering::Relaxed)))
    }

    /// What the level in force tightens.
    pub fn tightening(&self) -> Tightening {
        tightening(self.level())
    }

    /// The file's level changed to `level`.
    pub fn set_from_file(&self, level: ThreatLevel) {
        self.from_file.store(encode(level), Ordering::Relaxed);
    }

    /// Read the threat file once: missing means normal, unreadable or unknown keeps the last.
    pub fn read_file(&self) {
        let Some(path) = &self.file else { return };
        if let Some(level) = read_level(path) {
            self.set_from_file(level);
        }
    }
}

fn read_level(path: &Path) -> Option<ThreatLevel> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_level(&text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(ThreatLevel::Normal),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_of_configured_and_file_and_a_bad_file_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("threat-level");
        let threat = Threat::new(ThreatLevel::Elevated, Some(path.clone()));
        threat.read_file();
        assert_eq!(threat.level(), ThreatLevel::Elevated, "missing file: the configured level");
        std::fs::write(&path, " HIGH\n").unwrap();
        threat.read_file();
        assert_eq!(threat.level(), ThreatLevel::High);
        std::fs::write(&path, "hi").unwrap();
        threat.read_file();
        assert_eq!(threat.level(), ThreatLevel::High, "a half-written file does not lower it");
        std::fs::write(&path, "normal").unwrap();
        threat.read_file();
        assert_eq!(threat.level(), ThreatLevel::Elevated, "never below the configured level");
        assert_eq!(parse_level("elevated"), Some(ThreatLevel::Elevated));
        assert_eq!(parse_level(""), None);
    }

    #[test]
    fn higher_levels_tighten_more() {
        let [n, e, h] = [ThreatLevel::Normal, ThreatLevel::Elevated, ThreatLevel::High].map(tightening);
        assert!(n.queue_deadline > e.queue_deadline && e.queue_deadline > h.queue_deadline);
        assert!(n.concurrency > e.concurrency && e.concurrency > h.concurrency);
        assert!(n.pressure < e.pressure && e.pressure < h.pressure);
        assert!(!n.stale_instead_of_queue && h.stale_instead_of_queue);
    }
}
