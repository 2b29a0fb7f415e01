//! Deterministic traffic generator: writes classic pcap captures (Ethernet, µs or ns timestamps)
//! of named benign and attack scenarios, together with their exact ground truth.
//!
//! Nothing is ever sent on a network: the crate only writes files (or any [`std::io::Write`]).
//!
//! A capture is a pure function of `(scenario, GenParams)`: the same seed gives a byte-identical
//! file on every platform (only ChaCha output and integer arithmetic decide packet contents and
//! timestamps). The [`GroundTruth`] is counted from the frames as they are written, so its
//! per-destination, per-protocol and per-attack totals are exact.
//!
//! Address plan (documentation ranges only):
//! - protected networks: 198.51.100.0/24 and 2001:db8:100::/48; web servers are
//!   198.51.100.10-49 and 2001:db8:100::10-37 on ports 80/443, so the default targets
//!   (198.51.100.10, 2001:db8:100::10) also receive benign traffic;
//! - benign clients: 203.0.113.0/24, 192.0.2.0/24 and 2001:db8:200::/48;
//! - spoofed IPv4 attack sources: anywhere in 1.0.0.0-223.255.255.255 except 127/8;
//!   IPv6 attack sources: 2001:db8:ffff::/48; reflectors: a fixed random set per seed;
//! - outbound attacks (sent by a protected host, so `direction: outbound` in the truth):
//!   198.51.100.66 SYN-floods 203.0.113.10:443 (`outbound_syn_flood`); the DNS server
//!   198.51.100.53 answers queries spoofed from 203.0.113.77 (`dns_reflector_abuse`).
//!
//! Frames shorter than 60 bytes are zero-padded as on the wire; byte counts in the truth are
//! always IP-layer bytes (IPv4 total length, or 40 + payload length for IPv6).
//!
//! ```no_run
//! use rampart_trafficgen::{GenParams, Scenario, generate_to_file};
//! let params = GenParams { seed: 7, ..GenParams::for_scenario(Scenario::SynFlood) };
//! let truth = generate_to_file(Scenario::SynFlood, &params, "syn.pcap".as_ref()).unwrap();
//! println!("{} packets, attacks: {:?}", truth.totals.packets, truth.attacks);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod engine;
mod params;
pub mod pcap;
mod rng;
mod scenario;
mod source;
mod truth;
mod wire;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use params::{
    DEFAULT_BULK_SERVER, DEFAULT_COMPROMISED_HOST, DEFAULT_DNS_SERVER, DEFAULT_START_UNIX, DEFAULT_TARGET_V4,
    DEFAULT_TARGET_V6, DNS_ABUSE_VICTIM, GenParams, MAX_DURATION_SECS, MAX_PPS, OUTBOUND_SYN_VICTIM,
};
pub use pcap::PcapWriter;
pub use scenario::{AmplificationVector, Scenario, UnknownScenario};
pub use truth::{
    AttackTruth, AttackVector, BenignSummary, BulkTransferTruth, CaptureTruth, Direction, GroundTruth,
    TRUTH_SCHEMA_VERSION, Totals, protocol_name,
};

/// Why a generation run failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A parameter is out of range or does not fit the scenario (e.g. an IPv4 target for an
    /// IPv6 scenario).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// Field of [`GenParams`] at fault.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the capture or the truth file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Serialising the ground truth failed.
    #[error("ground truth serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes the capture of `scenario` to `out` and returns its ground truth.
///
/// `out` is wrapped in a 1 MiB [`std::io::BufWriter`] internally and flushed before returning.
pub fn generate<W: Write>(scenario: Scenario, params: &GenParams, out: W) -> Result<GroundTruth, GenError> {
    engine::generate(scenario, params, out)
}

/// Writes the capture to `path` and its ground truth as pretty JSON to [`truth_path`]`(path)`.
pub fn generate_to_file(
    scenario: Scenario,
    params: &GenParams,
    path: &Path,
) -> Result<GroundTruth, GenError> {
    let file = File::create(path)?;
    let truth = engine::generate(scenario, params, file)?;
    std::fs::write(truth_path(path), truth.to_json()?)?;
    Ok(truth)
}

/// Where [`generate_to_file`] puts the ground truth: `FILE.truth.json` next to `FILE`.
pub fn truth_path(capture: &Path) -> PathBuf {
    let mut name = capture.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".truth.json");
    capture.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_path_appends_suffix() {
        assert_eq!(truth_path(Path::new("/tmp/a.pcap")), PathBuf::from("/tmp/a.pcap.truth.json"));
        assert_eq!(truth_path(Path::new("x")), PathBuf::from("x.truth.json"));
    }
}
