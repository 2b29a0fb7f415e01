//! Files the daemon reads whole or keeps private.
//!
//! - [`read_regular_file`] and [`read_to_string`] read a file whole, but only a regular file
//!   and only up to a size cap: `--config /dev/zero` or a FIFO is refused at once instead of
//!   hanging while memory grows, and a file growing while it is read stops at the cap.
//! - [`private_dir`] and [`private_file`] keep the data directory `0700` and its files `0600`:
//!   attack history and learned traffic levels are nobody else's business. Existing looser
//!   permissions are tightened, with a warning for the operator.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be found, opened or read.
    #[error("cannot read {}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        reason: io::Error,
    },
    /// The path is not a regular file (a directory, FIFO, socket or device).
    #[error("cannot read {}: it is {kind}, not a regular file; give the path of a file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead ("a directory", "a FIFO", ...).
        kind: &'static str,
    },
    /// The file is larger than the caller accepts.
    #[error(
        "cannot read {}: it has {} bytes or more, over the {max} bytes accepted; is it the right file?",
        path.display(), len
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this much: a growing file is cut off at the cap).
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The file is not UTF-8 text ([`read_to_string`]).
    #[error("cannot read {}: it is not UTF-8 text ({reason})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        reason: std::str::Utf8Error,
    },
}

/// Reads the regular file at `path` whole, refusing anything else (directories, FIFOs,
/// sockets, devices such as `/dev/zero`) before opening it, and refusing it once it is over
/// `max_bytes`, both by its size on disk and by what reading it yields (a growing file).
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let io_error = |reason| FileError::Io { path: path.to_owned(), reason };
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let metadata = fs::metadata(path).map_err(io_error)?;
    check_regular(path, &metadata, max_bytes)?;
    let file = File::open(path).map_err(io_error)?;
    // The path may have been replaced between the check and the open: check what was opened.
    let metadata = file.metadata().map_err(io_error)?;
    check_regular(path, &metadata, max_bytes)?;
    // The length is a hint (files in /proc say 0), the cap is what holds.
    let hint = usize::try_from(metadata.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(hint);
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io_error)?;
    let len = bytes.len() as u64;
    if len > max_bytes {
        return Err(FileError::TooLarge { path: path.to_owned(), len, max: max_bytes });
    }
    Ok(bytes)
}

/// [`read_regular_file`] for UTF-8 text.
pub fn read_to_string(path: &Path, max_bytes: u64) -> Result<String, FileError> {
    let bytes = read_regular_file(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| FileError::NotUtf8 { path: path.to_owned(), reason: e.utf8_error() })
}

fn check_regular(path: &Path, metadata: &fs::Metadata, max_bytes: u64) -> Result<(), FileError> {
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        return Err(FileError::NotRegular { path: path.to_owned(), kind: kind_of(&file_type) });
    }
    if metadata.len() > max_bytes {
        return Err(FileError::TooLarge { path: path.to_owned(), len: metadata.len(), max: max_bytes });
    }
    Ok(())
}

fn kind_of(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() { "a directory" } else { "not a file" }
}

/// Permissions of the data directory: the owner only.
pub const DIR_MODE: u32 = 0o700;
/// Permissions of the files in the data directory: the owner only.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and its missing parents) readable by its owner only, or tightens an existing
/// directory that others may read. Returns a warning for the operator when it tightened or
/// could not tighten permissions.
pub fn private_dir(dir: &Path) -> io::Result<Option<String>> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    Ok(tighten(dir, "data directory", DIR_MODE))
}

/// Tightens the existing file at `path` to [`FILE_MODE`] if others may read it; returns a
/// warning when it did or could not. A missing file, or anything but a regular file (a link to
/// a device), is left alone.
pub fn private_file(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    tighten(path, "file", FILE_MODE)
}

/// Options that create a file with [`FILE_MODE`] (an existing file keeps its mode: see
/// [`private_file`]).
pub fn private_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

#[cfg(unix)]
fn tighten(path: &Path, what: &str, mode: u32) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => return Some(format!("cannot check the permissions of {what} {}: {e}", path.display())),
    };
    // Only what this module creates: never a device or anything else a link points to.
    if !(metadata.is_file() || metadata.is_dir()) {
        return None;
    }
    let current = metadata.permissions().mode() & 0o7777;
    // Only group and other bits are taken away; what the owner has stays.
    if current & 0o077 == 0 {
        return None;
    }
    let wanted = current & !0o077 & 0o7777;
    match fs::set_permissions(path, fs::Permissions::from_mode(wanted)) {
        Ok(()) => Some(format!(
            "{what} {} was {current:04o}, readable by other users; tightened to {wanted:04o} (wanted {mode:04o})",
            path.display()
        )),
        Err(e) => Some(format!(
            "{what} {} is {current:04o}, readable by other users, and cannot be tightened ({e}); \
             run `chmod {mode:o} {}`",
            path.display(),
            path.display()
        )),
    }
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _what: &str, _mode: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rampart-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_a_regular_file_up_to_the_cap() {
        let dir = scratch("regular");
        let path = dir.join("a.toml");
        fs::write(&path, b"x = 1\n").unwrap();
        assert_eq!(read_regular_file(&path, 6).unwrap(), b"x = 1\n");
        assert_eq!(read_to_string(&path, 100).unwrap(), "x = 1\n");
        let error = read_regular_file(&path, 5).unwrap_err();
        assert!(matches!(error, FileError::TooLarge { len: 6, max: 5, .. }), "{error}");
        assert!(error.to_string().contains("a.toml"), "{error}");
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_to_string(&path, 100).unwrap_err(), FileError::NotUtf8 { .. }));
        let error = read_regular_file(&dir.join("missing"), 100).unwrap_err();
        assert!(matches!(error, FileError::Io { .. }) && error.to_string().contains("missing"), "{error}");
        let error = read_regular_file(&dir, 100).unwrap_err();
        assert!(matches!(error, FileError::NotRegular { kind: "a directory", .. }), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_at_once() {
        let started = Instant::now();
        let error = read_regular_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(error, FileError::NotRegular { kind: "a character device", .. }), "{error}");
        assert!(error.to_string().contains("/dev/zero"), "{error}");
        let dir = scratch("fifo");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Nobody writes: opening it would block forever.
            let error = read_to_string(&fifo, 1 << 20).unwrap_err();
            assert!(matches!(error, FileError::NotRegular { kind: "a FIFO", .. }), "{error}");
        } else {
            eprintln!("mkfifo unavailable: FIFO case skipped");
        }
        // A symlink to a device is judged by what it points to.
        let link = dir.join("zero-link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(read_regular_file(&link, 1 << 20).unwrap_err(), FileError::NotRegular { .. }));
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = fs::remove_dir_all(&dir);
    }

    /// /proc files say they are empty; the cap still holds while reading.
    #[cfg(target_os = "linux")]
    #[test]
    fn files_larger_than_they_say_stop_at_the_cap() {
        let path = Path::new("/proc/self/maps");
        assert_eq!(fs::metadata(path).unwrap().len(), 0);
        assert!(!read_regular_file(path, 1 << 20).unwrap().is_empty());
        assert!(matches!(
            read_regular_file(path, 16).unwrap_err(),
            FileError::TooLarge { len: 17, max: 16, .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn directories_and_files_become_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let base = scratch("private");
        let dir = base.join("data/nested");
        assert_eq!(private_dir(&dir).unwrap(), None);
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let warning = private_dir(&dir).unwrap().unwrap();
        assert!(warning.contains("0755") && warning.contains("0700"), "{warning}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(private_dir(&dir).unwrap(), None);

        let file = dir.join("f");
        use std::io::Write as _;
        private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&file)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(private_file(&file), None);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let warning = private_file(&file).unwrap();
        assert!(warning.contains("0644") && warning.contains("0600"), "{warning}");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(private_file(&dir.join("absent")), None);
        // A link to a device is not followed into a chmod.
        let link = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let before = mode(Path::new("/dev/zero"));
        assert_eq!(private_file(&link), None);
        assert_eq!(mode(Path::new("/dev/zero")), before);
        let _ = fs::remove_dir_all(&base);
    }
}
