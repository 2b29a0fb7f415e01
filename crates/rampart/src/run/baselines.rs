//! Learned baselines on disk: one file in the data directory, replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory) so a crash leaves the previous or the
//! new snapshot, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_detect::Engine;

/// How often the daemon saves its baselines (and once more at shutdown).
pub const SAVE_EVERY: Duration = Duration::from_secs(300);

const FILE_NAME: &str = "baselines.bin";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Restores the engine's baselines from `data_dir`, if a snapshot is there. A snapshot that
/// cannot be used is set aside (renamed `.unusable`) with a warning, and learning starts over:
/// detection with static thresholds must not wait for a human.
pub fn load(engine: &mut Engine, data_dir: &Path) {
    let path = path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            eprintln!(
                "rampart: warning: cannot read baselines {}: {e}; learning from scratch",
                path.display()
            );
            return;
        }
    };
    match engine.restore_baselines(&bytes) {
        Ok(()) => eprintln!(
            "baselines restored from {} ({} hosts and groups)",
            path.display(),
            engine.stats().baseline_keys
        ),
        Err(e) => {
            let aside = path.with_extension("bin.unusable");
            let _ = fs::rename(&path, &aside);
            eprintln!(
                "rampart: warning: baselines {} are unusable ({e}); moved to {}, learning from scratch",
                path.display(),
                aside.display()
            );
        }
    }
}

/// Writes `snapshot` as the data directory's baselines, atomically.
pub fn save(data_dir: &Path, snapshot: &[u8]) -> io::Result<()> {
    let path = path(data_dir);
    let temporary = path.with_extension("bin.tmp");
    {
        let mut file = File::create(&temporary)?;
        file.write_all(snapshot)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, &path)?;
    // The rename itself must reach the disk.
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_detect::DetectConfig;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn save_then_load_round_trips_and_garbage_is_set_aside() {
        let dir = Scratch(std::env::temp_dir().join(format!("rampart-baselines-{}", std::process::id())));
        fs::create_dir_all(dir.path()).unwrap();
        let engine = Engine::new(DetectConfig::default());
        save(dir.path(), &engine.baseline_snapshot()).unwrap();
        assert!(path(dir.path()).exists());
        assert!(!path(dir.path()).with_extension("bin.tmp").exists());
        let mut restored = Engine::new(DetectConfig::default());
        load(&mut restored, dir.path());
        assert_eq!(restored.baseline_snapshot(), engine.baseline_snapshot());

        fs::write(path(dir.path()), b"not a snapshot").unwrap();
        let mut fresh = Engine::new(DetectConfig::default());
        load(&mut fresh, dir.path());
        assert!(!path(dir.path()).exists());
        assert!(path(dir.path()).with_extension("bin.unusable").exists());
        // Nothing there at all: fine.
        load(&mut fresh, dir.path());
    }
}
