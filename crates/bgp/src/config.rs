//! The speaker's configuration: the local AS and router id, an optional listening address
//! for passive peers, and each peer's address, ASN, families, communities, next hops, rule
//! budget, redirect-to-IP encoding and TCP-MD5 password. Deserializes from the daemon's TOML.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::community::{Community, LargeCommunity, RedirectIpEncoding};
use crate::family::Family;
use crate::session::SessionConfig;

/// Who opens the TCP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMode {
    /// Rampart connects (and also accepts the peer's connection while not connected).
    #[default]
    Active,
    /// Rampart only accepts the peer's connection on `listen`.
    Passive,
}

/// The whole speaker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Where passive peers connect (usually port 179); none: active peers only.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    pub peers: Vec<PeerConfig>,
}

fn default_port() -> u16 {
    179
}
fn default_hold() -> u16 {
    90
}
fn default_families() -> Vec<Family> {
    Family::ALL.to_vec()
}
fn default_budget() -> usize {
    10_000
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A name for status and logs.
    pub name: String,
    pub address: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    pub peer_as: u32,
    /// Source address for active connections.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    #[serde(default)]
    pub mode: ConnectMode,
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    #[serde(default = "default_families")]
    pub families: Vec<Family>,
    /// Restart time to advertise; with it, a clean shutdown leaves routes to the peer's
    /// graceful-restart timer instead of withdrawing them.
    #[serde(default)]
    pub graceful_restart: Option<u16>,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    #[serde(default)]
    pub blackhole_next_hop_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub blackhole_next_hop_v6: Option<Ipv6Addr>,
    #[serde(default = "default_budget")]
    pub rule_budget: usize,
    #[serde(default)]
    pub redirect_ip: RedirectIpEncoding,
    /// TCP-MD5 (RFC 2385) password, written in the configuration itself; `password_file` is
    /// the better form (a file only root can read). Never logged: `Debug` shows its length.
    #[serde(default)]
    pub password: Option<Md5Key>,
    /// A file holding the TCP-MD5 password (one trailing newline removed), readable by its
    /// owner only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// A TCP-MD5 key: 1 to 80 bytes (`TCP_MD5SIG_MAXKEYLEN`). Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Md5Key(Vec<u8>);

impl From<String> for Md5Key {
    fn from(text: String) -> Self {
        Md5Key(text.into_bytes())
    }
}

impl Md5Key {
    /// The longest key the kernel takes.
    pub const MAX_LEN: usize = 80;

    pub fn new(bytes: Vec<u8>) -> Self {
        Md5Key(bytes)
    }

    /// The key itself, for the socket option only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Key(redacted, {} bytes)", self.0.len())
    }
}

/// The most a password file may hold: a key is at most 80 bytes, so anything much larger is
/// the wrong file.
const MAX_PASSWORD_FILE: u64 = 1024;

/// Reads a password file: a regular file, readable by its owner only, of at most 1 KiB.
fn read_password_file(peer: &str, path: &Path) -> Result<Md5Key, String> {
    let shown = path.display();
    let key = |what: String| format!("peer {peer}: `password_file` {shown}: {what}");
    let meta = std::fs::metadata(path).map_err(|e| key(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(key("not a regular file".into()));
    }
    if meta.len() > MAX_PASSWORD_FILE {
        return Err(key(format!("{} bytes; a password file holds at most {MAX_PASSWORD_FILE}", meta.len())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key(format!(
                "readable by others (mode {mode:03o}); make it private with `chmod 600 {shown}`"
            )));
        }
    }
    let mut bytes = std::fs::read(path).map_err(|e| key(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE {
        return Err(key(format!("holds more than {MAX_PASSWORD_FILE} bytes")));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Md5Key(bytes))
}

impl PeerConfig {
    pub fn session(&self, speaker: &SpeakerConfig) -> SessionConfig {
        SessionConfig {
            local_as: speaker.local_as,
            peer_as: self.peer_as,
            router_id: speaker.router_id,
            hold_time: self.hold_time,
            families: self.families.clone(),
            graceful_restart: self.graceful_restart,
            blackhole_next_hop_v4: self.blackhole_next_hop_v4,
            blackhole_next_hop_v6: self.blackhole_next_hop_v6,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            redirect_ip: self.redirect_ip,
            rule_budget: self.rule_budget,
        }
    }

    /// A mistake worth refusing at load: hold times of 1 and 2 are invalid (RFC 4271).
    pub fn check(&self) -> Result<(), String> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(format!("peer {}: hold_time must be 0 or at least 3", self.name));
        }
        if self.families.is_empty() {
            return Err(format!("peer {}: no families", self.name));
        }
        self.md5_key().map(|_| ())
    }

    /// The TCP-MD5 key, from `password` or `password_file` (read now); `None` without either.
    /// Both at once, an empty key or one over 80 bytes are refused, naming the peer and key.
    pub fn md5_key(&self) -> Result<Option<Md5Key>, String> {
        let (key, name) = match (&self.password, &self.password_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "peer {}: `password` and `password_file` both given: keep one (the file is better)",
                    self.name
                ));
            }
            (Some(key), None) => (key.clone(), "password"),
            (None, Some(path)) => (read_password_file(&self.name, path)?, "password_file"),
        };
        if key.is_empty() {
            return Err(format!("peer {}: `{name}` is empty", self.name));
        }
        if key.len() > Md5Key::MAX_LEN {
            return Err(format!(
                "peer {}: `{name}` is {} bytes; TCP-MD5 keys hold at most {} (TCP_MD5SIG_MAXKEYLEN)",
                self.name,
                key.len(),
                Md5Key::MAX_LEN
            ));
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(extra: &str) -> PeerConfig {
        let text = format!("name = \"edge1\"\naddress = \"192.0.2.9\"\npeer_as = 64500\n{extra}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let p = peer("password = \"hunter2-secret\"");
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Md5Key(redacted, 14 bytes)"), "{shown}");
        assert_eq!(p.md5_key().unwrap().unwrap().expose(), b"hunter2-secret");
        assert_eq!(peer("").md5_key().unwrap(), None);
    }

    #[test]
    fn bad_passwords_are_refused_naming_the_peer_and_key() {
        let long = "k".repeat(81);
        let e = peer(&format!("password = \"{long}\"")).check().unwrap_err();
        assert!(e.contains("peer edge1") && e.contains("`password`") && e.contains("81 bytes"), "{e}");
        assert!(peer(&format!("password = \"{}\"", "k".repeat(80))).check().is_ok());
        let e = peer("password = \"\"").check().unwrap_err();
        assert!(e.contains("`password` is empty"), "{e}");
        let e = peer("password = \"a\"\npassword_file = \"/nonexistent\"").check().unwrap_err();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn a_password_file_must_be_private_and_short() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("md5");
        std::fs::write(&path, "from a file\n").unwrap();
        let with_file = peer(&format!("password_file = \"{}\"", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = with_file.md5_key().unwrap_err();
        assert!(e.contains("peer edge1") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(with_file.md5_key().unwrap().unwrap().expose(), b"from a file");
        std::fs::write(&path, "k".repeat(90)).unwrap();
        let e = with_file.md5_key().unwrap_err();
        assert!(e.contains("`password_file`") && e.contains("90 bytes"), "{e}");
        let e = peer("password_file = \"/nonexistent/md5\"").md5_key().unwrap_err();
        assert!(e.contains("/nonexistent/md5"), "{e}");
    }
}
