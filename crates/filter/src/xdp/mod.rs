//! The XDP layer: the program's options and errors, and its driver when this build has it
//! (feature `xdp` with clang at build time). Without it every entry point returns
//! [`XdpError::Unavailable`] saying why, and callers fall back to nftables.

use std::path::PathBuf;

use thiserror::Error;

use crate::dir248::Dir248Error;

pub mod ids;
pub mod time;

#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
mod driver;
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
mod maps;
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
mod status;
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
pub mod swap;
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
mod syncookies;
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
pub use driver::{LpmTries, TestRunner, XdpFilter};
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
pub use status::{detach, status};
#[cfg(all(feature = "xdp", not(rampart_no_bpf)))]
pub use swap::map_id_exists;

#[cfg(not(all(feature = "xdp", not(rampart_no_bpf))))]
mod unavailable;
#[cfg(not(all(feature = "xdp", not(rampart_no_bpf))))]
pub use unavailable::{LpmTries, TestRunner, XdpFilter, detach, map_id_exists, status};

/// [`Options::swap_min_changes`]'s default.
pub const SWAP_MIN_CHANGES: usize = 65_536;

/// Where pinned maps and the program live unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/rampart";

/// Why this build has no XDP program, or `None` when it has one.
pub fn unavailable_reason() -> Option<&'static str> {
    if cfg!(not(feature = "xdp")) {
        Some("this rampart was built without the `xdp` feature (cargo build --features xdp)")
    } else if cfg!(rampart_no_bpf) {
        Some("clang was missing when this rampart was built, so it has no XDP program")
    } else {
        None
    }
}

/// Whether `path` (existing or not) lies on a mounted BPF filesystem, per /proc/mounts.
pub fn on_bpffs(path: &std::path::Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, fstype) = (f.next()?, f.next()?, f.next()?);
            Some((point.replace("\\040", " "), fstype == "bpf"))
        })
        .filter(|(point, _)| path.starts_with(point))
        .max_by_key(|(point, _)| point.len())
        .is_some_and(|(_, bpf)| bpf)
}

/// Map sizes, fixed when the program is loaded (and part of a pinned map's identity: a
/// different size cannot reuse it). The source tables exist twice, a live and a standby
/// generation (the `swap` module), each hash holding one whole set: about 2 × 178 MiB of kernel
/// memory at the default sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Rules (prefix, signature and SYN guard) with their counters.
    pub rules: u32,
    /// /24 networks that can hold IPv4 prefixes longer than /24.
    pub v4_groups: u32,
    /// IPv4 /32s (a hash of their own, tried first).
    pub v4_hosts: u32,
    pub v6_prefixes: u32,
    /// Destination prefixes with signatures or a SYN guard.
    pub destinations: u32,
    pub signatures: u32,
    /// Per-source token buckets (least recently used evicted first).
    pub buckets: u32,
    /// Kernel LPM tries of the benchmark's comparison program (1 when unused).
    pub lpm_v4: u32,
    pub lpm_v6: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            rules: 1 << 21,
            v4_groups: 1 << 14,
            v4_hosts: 1 << 20,
            v6_prefixes: 1 << 17,
            destinations: 4096,
            signatures: 4096,
            buckets: 1 << 16,
            lpm_v4: 1,
            lpm_v6: 1,
        }
    }
}

/// How to load the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Pin maps and program here (reusing maps already pinned); `None`: nothing pinned, the
    /// filter lives as long as the process (tests, benchmarks).
    pub pin_dir: Option<PathBuf>,
    pub capacity: Capacity,
    /// Use the kernel's SYN cookie helpers where it has them (probed at load); `false`: SYN
    /// guards in cookie mode use their per-source rate, as on a kernel without them.
    pub syn_cookies: bool,
    /// A change of at least this many source prefixes (and a quarter of the set) is a full
    /// reload: the standby generation of the source tables filled off to the side and flipped
    /// live, instead of in-place writes to the live one.
    pub swap_min_changes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_dir: Some(PathBuf::from(DEFAULT_PIN_DIR)),
            capacity: Capacity::default(),
            syn_cookies: true,
            swap_min_changes: SWAP_MIN_CHANGES,
        }
    }
}

/// Why SYN guards in cookie mode cannot answer with cookies on this host (`None`: they can),
/// given whether the loaded program has the kernel's cookie helpers. The stack accepts the
/// ACK of a cookie it did not send itself only on a listener that sent cookies of its own in
/// the last two minutes or so: the program lets one SYN a second per destination port through,
/// which the stack answers with a cookie only at net.ipv4.tcp_syncookies=2 (read from /proc
/// in the caller's network namespace).
pub fn syn_cookie_problem(helpers: Result<(), &'static str>) -> Option<String> {
    if let Err(why) = helpers {
        return Some(format!("SYN cookies unavailable ({why}): cookie guards limit SYNs per source instead"));
    }
    let path = "/proc/sys/net/ipv4/tcp_syncookies";
    match std::fs::read_to_string(path).map(|s| s.trim().to_owned()) {
        Ok(v) if v == "2" => None,
        Ok(v) => Some(format!(
            "net.ipv4.tcp_syncookies is {v}, not 2: the stack would reset the handshakes the XDP \
             filter answers with cookies (it accepts a cookie only on a listener that sends cookies \
             itself); set it with sysctl -w net.ipv4.tcp_syncookies=2. Until then cookie guards \
             limit SYNs per source instead"
        )),
        Err(e) => Some(format!(
            "{path}: {e} (no SYN cookie support in this kernel?): cookie guards limit SYNs per source instead"
        )),
    }
}

/// How to attach to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fastest); fails where the driver has no XDP support.
    Native,
    /// In the kernel's generic path, after the socket buffer is built (works everywhere).
    Generic,
    /// Native, else generic.
    Auto,
}

impl std::str::FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(AttachMode::Native),
            "generic" => Ok(AttachMode::Generic),
            "auto" => Ok(AttachMode::Auto),
            _ => Err(format!("unknown XDP mode {s:?}: native, generic or auto")),
        }
    }
}

/// What one reconcile wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub rules: usize,
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
    pub signatures: usize,
    pub syn_guards: usize,
    /// Map elements written or deleted.
    pub elements_written: usize,
    /// Rules released (no longer wanted).
    pub released: usize,
    /// Why SYN guards in cookie mode limit SYNs per source instead (`None`: none asked for
    /// cookies, or they answer with them).
    pub syn_cookie_fallback: Option<String>,
    /// The source tables were replaced by the standby generation (a full reload), with how
    /// long its steps took; `None`: changed in place.
    pub swap: Option<SwapTimes>,
}

/// How long a full reload's steps took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapTimes {
    /// Bringing the standby generation to the new set: read back when its content was
    /// unknown, what it held and the new set lacks deleted, the rest written.
    pub fill: std::time::Duration,
    /// Flipping `source_gen` (packets move to the new set at that one update).
    pub flip: std::time::Duration,
    /// Waiting until no program reads the old generation any more (one grace period), which
    /// then becomes the standby; nothing is freed.
    pub release: std::time::Duration,
}

/// What `rampart filter status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub pin_dir: PathBuf,
    /// Interfaces (in this network namespace) running this program, with the mode.
    pub attached: Vec<Attachment>,
    /// Rules in force (not expired), with what each dropped.
    pub rules: Vec<RuleStatus>,
    pub packets_seen: u64,
    pub packets_passed: u64,
    pub packets_dropped: u64,
}

/// An interface running the program.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    /// "native" or "generic".
    pub mode: &'static str,
    pub program_id: u32,
}

/// One rule in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleStatus {
    pub rule: u32,
    /// The decision id (0 for a SYN guard from the configuration).
    pub decision: u64,
    /// "drop", "rate_packets", "rate_bytes".
    pub action: &'static str,
    pub rate: u32,
    /// Seconds left; `None`: no expiry.
    pub expires_in_secs: Option<u64>,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

/// What can go wrong in the XDP layer.
#[derive(Debug, Error)]
pub enum XdpError {
    /// This build has no XDP program.
    #[error("XDP filter unavailable: {0}")]
    Unavailable(&'static str),
    /// libbpf refused an operation (load, verify, pin, attach, map update).
    #[error("{what}")]
    Bpf {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file under the pin directory or /sys could not be read or written.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pin directory is not on a BPF filesystem.
    #[error("{} is not on a BPF filesystem (mount one: mount -t bpf bpf /sys/fs/bpf; note that `ip netns exec` mounts a fresh /sys without it)", .0.display())]
    NotBpffs(PathBuf),
    /// No such network interface.
    #[error("no network interface {0:?} in this network namespace")]
    NoInterface(String),
    /// Nothing is pinned there: no filter was loaded with this pin directory.
    #[error("no Rampart XDP filter pinned at {0} (load one first)")]
    NotPinned(PathBuf),
    /// More rules than the maps hold.
    #[error("{what}: {wanted} wanted, room for {capacity}")]
    Full { what: &'static str, wanted: usize, capacity: usize },
    /// The IPv4 table cannot be built.
    #[error(transparent)]
    Table(#[from] Dir248Error),
}
