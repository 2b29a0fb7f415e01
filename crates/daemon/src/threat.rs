//! The detection layer's threat level, published for the shield: `<data dir>/threat-level`
//! holds one word (`normal`, `elevated`, `high`), rewritten (temporary file, then rename) when
//! the level in force changes and once at start, so a shield (inside this daemon, or a
//! standalone `rampart shield` whose `[origin] threat_file` names it) tightens within the
//! second it re-reads the file. A half-written file is never seen, and a file left by an
//! earlier run at `high` is corrected at start.

use std::path::{Path, PathBuf};

use rampart_contract::ThreatLevel;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "threat-level";

/// The threat file of a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Which level the file says, and whether a change must be written.
#[derive(Debug, Default)]
pub struct Published {
    written: Option<ThreatLevel>,
}

impl Published {
    /// The level to write when `level` is not what the file holds (always the first time).
    pub fn change(&mut self, level: ThreatLevel) -> Option<ThreatLevel> {
        (self.written != Some(level)).then(|| {
            self.written = Some(level);
            level
        })
    }

    /// The write failed: try again at the next change check.
    pub fn forget(&mut self) {
        self.written = None;
    }
}

/// Write `level` to `path` atomically.
pub fn write(path: &Path, level: ThreatLevel) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{}\n", level.name()))?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_written_once_and_the_file_reads_back() {
        let mut published = Published::default();
        assert_eq!(published.change(ThreatLevel::Normal), Some(ThreatLevel::Normal), "always at start");
        assert_eq!(published.change(ThreatLevel::Normal), None);
        assert_eq!(published.change(ThreatLevel::High), Some(ThreatLevel::High));
        published.forget();
        assert_eq!(published.change(ThreatLevel::High), Some(ThreatLevel::High), "again after a failure");

        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        write(&file, ThreatLevel::Elevated).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(rampart_shield::origin::threat::parse_level(&text), Some(ThreatLevel::Elevated));
        write(&file, ThreatLevel::Normal).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "normal\n");
        assert!(!file.with_extension("tmp").exists());
    }
}
