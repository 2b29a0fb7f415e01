//! The challenge key file: one key a line (64 hex digits), oldest first, newest last (it
//! signs); `#` comments. Generated with mode 0600 at first start when absent. To rotate,
//! append a new key, reload every shield, then remove the oldest once clearances signed with
//! it have expired.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::token::KEY_BYTES;

/// The file name in the data directory.
pub const KEY_FILE: &str = "challenge-keys";

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating or writing it failed.
    #[error("challenge key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not 64 hex digits (the line's number, never its text: it may be a key).
    #[error("challenge key file {path}: line {line} is not a key of 64 hex digits")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// It holds no key.
    #[error("challenge key file {path} holds no key")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Others than its owner may read it.
    #[error("challenge key file {path} is readable by group or others (chmod 600 it)")]
    Permissions {
        /// The file.
        path: PathBuf,
    },
}

/// Parse the key file's text.
pub fn parse(text: &str, path: &Path) -> Result<Vec<[u8; KEY_BYTES]>, KeyFileError> {
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || KeyFileError::BadLine { path: path.to_owned(), line: number + 1 };
        if line.len() != KEY_BYTES * 2 || !line.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; KEY_BYTES];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty { path: path.to_owned() });
    }
    Ok(keys)
}

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random key from the operating system's generator.
pub fn random_key() -> [u8; KEY_BYTES] {
    use rand::RngCore;
    let mut key = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// The keys in `dir`'s key file, creating the directory (0700) and the file (0600, one new
/// key) when absent.
pub fn load_or_create(dir: &Path) -> Result<Vec<[u8; KEY_BYTES]>, KeyFileError> {
    let path = dir.join(KEY_FILE);
    let io = |source| KeyFileError::Io { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_permissions(&path)?;
            parse(&text, &path)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_dir(dir).map_err(io)?;
            let key = random_key();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut file) => {
                    let text = format!(
                        "# Rampart shield challenge keys: newest last signs, any verifies. Keep secret.\n{}\n",
                        hex(&key)
                    );
                    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
                    Ok(vec![key])
                }
                // Another shield sharing the directory created it first: use its key.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).map_err(io)?;
                    parse(&text, &path)
                }
                Err(error) => Err(io(error)),
            }
        }
        Err(error) => Err(io(error)),
    }
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata =
        std::fs::metadata(path).map_err(|source| KeyFileError::Io { path: path.to_owned(), source })?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: path.to_owned() });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_0600_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create(&data).unwrap();
        let again = load_or_create(&data).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(data.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(load_or_create(&data), Err(KeyFileError::Permissions { .. })));
        }
    }

    #[test]
    fn parse_rotation_and_errors_without_the_key() {
        let path = Path::new("k");
        let a = "ab".repeat(32);
        let b = "0f".repeat(32);
        let keys = parse(&format!("# c\n{a}\n\n{b}\n"), path).unwrap();
        assert_eq!(keys, vec![[0xab; 32], [0x0f; 32]]);
        let secret = format!("{}zz", "ab".repeat(31));
        let error = parse(&format!("{a}\n{secret}\n"), path).unwrap_err().to_string();
        assert!(error.contains("line 2") && !error.contains(&secret), "{error}");
        assert!(matches!(parse("# nothing\n", path), Err(KeyFileError::Empty { .. })));
        assert!(parse("é".repeat(32).as_str(), path).is_err());
    }
}
