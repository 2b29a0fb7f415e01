//! The emergency static snapshot: a directory of files (a static export of a mostly static
//! site) served for GET and HEAD when the origin is down or overloaded and no stale copy is
//! there, or for every such request while the operator says so (`[snapshot] always`, or the
//! threat level reaching `[snapshot] at_level`). Every answer says so in `X-Rampart-Snapshot`.
//!
//! `/` and paths ending in `/` serve `index.html` there; `/a` serves the file `a`, else
//! `a.html`, else `a/index.html`. Only plain path segments are followed (the proxy already
//! refused dot segments and encoded slashes), and the file found must lie inside the
//! directory once symbolic links are resolved.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

/// Files bigger than this are not served from the snapshot.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The snapshot directory.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: PathBuf,
}

/// A file to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its bytes.
    pub body: Bytes,
    /// Its media type, from its extension.
    pub content_type: &'static str,
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The relative files that may answer `path`, in the order tried; `None` when the path
/// could step outside the directory.
pub fn candidates(path: &str) -> Option<Vec<PathBuf>> {
    let decoded = percent_decode(path)?;
    if decoded.contains(['\\', '\0']) || !decoded.starts_with('/') {
        return None;
    }
    let relative = Path::new(decoded.trim_start_matches('/'));
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    if decoded.ends_with('/') {
        return Some(vec![relative.join("index.html")]);
    }
    let mut html = relative.as_os_str().to_owned();
    html.push(".html");
    Some(vec![relative.to_owned(), PathBuf::from(html), relative.join("index.html")])
}

fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

impl Snapshot {
    /// The snapshot in `root`.
    pub fn new(root: PathBuf) -> Snapshot {
        Snapshot { root }
    }

    /// The file answering `path`, if the snapshot has one (blocking file reads: call it off
    /// the request threads).
    pub fn find(&self, path: &str) -> Option<SnapshotFile> {
        let root = self.root.canonicalize().ok()?;
        for candidate in candidates(path)? {
            let Ok(file) = root.join(&candidate).canonicalize() else { continue };
            if !file.starts_with(&root) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let Ok(body) = std::fs::read(&file) else { continue };
            return Some(SnapshotFile { body: Bytes::from(body), content_type: content_type(&file) });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_files_and_never_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("news")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("news/index.html"), "news").unwrap();
        std::fs::write(root.join("about.html"), "about").unwrap();
        std::fs::write(root.join("style.css"), "css").unwrap();
        std::fs::write(dir.path().join("secret"), "secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let snapshot = Snapshot::new(root);
        let body = |path: &str| snapshot.find(path).map(|f| f.body);
        assert_eq!(body("/"), Some(Bytes::from("home")));
        assert_eq!(body("/news/"), Some(Bytes::from("news")));
        assert_eq!(body("/news"), Some(Bytes::from("news")));
        assert_eq!(body("/about"), Some(Bytes::from("about")));
        assert_eq!(snapshot.find("/style.css").unwrap().content_type, "text/css; charset=utf-8");
        assert_eq!(body("/missing"), None);
        assert_eq!(body("/../secret"), None);
        assert_eq!(body("/%2e%2e/secret"), None);
        assert_eq!(body("/news/..%2fsecret"), None);
        assert_eq!(body("/link"), None, "a symbolic link out of the directory");
        assert_eq!(body("/%zz"), None);
    }

    proptest::proptest! {
        /// Any path: no panic, and every candidate is relative with plain segments only.
        #[test]
        fn candidates_stay_inside(path in "[/a-z.%2-5fF\\\\]{0,40}") {
            for candidate in candidates(&path).unwrap_or_default() {
                proptest::prop_assert!(candidate.components().all(|c| matches!(c, Component::Normal(_))));
            }
        }
    }
}
