//! Learned baselines on disk: one file in the data directory, replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory) so a crash leaves the previous or the
//! new snapshot, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_detect::Engine;
use rampart_store::files::{self, FileError};

/// How often the daemon saves its baselines (and once more at shutdown).
pub const SAVE_EVERY: Duration = Duration::from_secs(300);

const FILE_NAME: &str = "baselines.bin";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Largest snapshot read: 256 MiB, or 2 KiB per key the configuration allows if that is more
/// (a key takes at most 686 bytes at 96 slots; the margin covers a `max_keys` lowered since
/// the snapshot was written, whose extra keys the restore drops).
pub fn max_snapshot_bytes(max_keys: usize) -> u64 {
    (256u64 << 20).max((max_keys as u64).saturating_mul(2048))
}

/// Restores the engine's baselines from `data_dir`, if a snapshot is there. A snapshot that
/// cannot be used is set aside (renamed `.unusable`) with a warning, and learning starts over:
/// detection with static thresholds must not wait for a human. Read with a size cap, and only
/// if it is a regular file; a file others may read is made private first (with a warning).
pub fn load(engine: &mut Engine, data_dir: &Path) {
    let path = path(data_dir);
    if let Some(warning) = files::private_file(&path) {
        eprintln!("rampart: warning: {warning}");
    }
    let max = max_snapshot_bytes(engine.config().baseline.max_keys);
    let bytes = match files::read_regular_file(&path, max) {
        Ok(bytes) => bytes,
        Err(FileError::Io { reason, .. }) if reason.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            eprintln!("rampart: warning: {e}; learning baselines from scratch");
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

/// Writes `snapshot` as the data directory's baselines, atomically, readable by the owner
/// only.
pub fn save(data_dir: &Path, snapshot: &[u8]) -> io::Result<()> {
    let path = path(data_dir);
    let temporary = path.with_extension("bin.tmp");
    {
        // A temporary file left by a crash may have another mode: start afresh.
        let _ = fs::remove_file(&temporary);
        let mut file = files::private_options().write(true).create_new(true).open(&temporary)?;
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

    #[test]
    fn save_then_load_round_trips_and_garbage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
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

    #[cfg(unix)]
    #[test]
    fn snapshots_are_private_and_only_regular_files_are_read() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(DetectConfig::default());
        save(dir.path(), &engine.baseline_snapshot()).unwrap();
        assert_eq!(mode(&path(dir.path())), 0o600);
        // Left 0644 by an earlier version: tightened on load, and still restored.
        fs::set_permissions(path(dir.path()), fs::Permissions::from_mode(0o644)).unwrap();
        let mut restored = Engine::new(DetectConfig::default());
        load(&mut restored, dir.path());
        assert_eq!(mode(&path(dir.path())), 0o600);
        assert_eq!(restored.baseline_snapshot(), engine.baseline_snapshot());
        save(dir.path(), &engine.baseline_snapshot()).unwrap();
        assert_eq!(mode(&path(dir.path())), 0o600);
        // A device in its place is refused at once, not read forever.
        fs::remove_file(path(dir.path())).unwrap();
        std::os::unix::fs::symlink("/dev/zero", path(dir.path())).unwrap();
        let started = std::time::Instant::now();
        load(&mut restored, dir.path());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(max_snapshot_bytes(65_536), 256 << 20);
        assert_eq!(max_snapshot_bytes(1 << 20), 2 << 30);
    }
}
