//! `rampart generate`: deterministic scenario captures with ground truth.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rampart_trafficgen::{GenParams, Scenario};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Scenario name (see `--list`).
    #[arg(required_unless_present = "list")]
    pub scenario: Option<Scenario>,
    /// Output capture; the ground truth goes to OUT.truth.json.
    #[arg(long, short, default_value = "scenario.pcap")]
    pub out: PathBuf,
    /// Random seed: the same seed gives a byte-identical file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of the scenario in seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write nanosecond timestamps (default: microsecond pcap).
    #[arg(long)]
    pub nanosecond: bool,
    /// Background (benign) packets per second.
    #[arg(long)]
    pub background_pps: Option<u64>,
    /// Attack packets per second.
    #[arg(long)]
    pub attack_pps: Option<u64>,
    /// Store at most N bytes of each frame, like `tcpdump -s N` (true lengths are kept).
    #[arg(long, value_name = "N")]
    pub snaplen: Option<u32>,
    /// When the attack starts, in seconds from the beginning of the capture.
    #[arg(long, value_name = "SECONDS")]
    pub attack_start: Option<f64>,
    /// How long the attack lasts, in seconds (default: the scenario's).
    #[arg(long, value_name = "SECONDS")]
    pub attack_duration: Option<f64>,
    /// Stop after this many packets.
    #[arg(long)]
    pub max_packets: Option<u64>,
    /// Attack target (or bulk-transfer server) [default: 198.51.100.10, 2001:db8:100::10 for
    /// IPv6 scenarios].
    #[arg(long, value_name = "ADDRESS")]
    pub target: Option<std::net::IpAddr>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.list {
        for scenario in Scenario::ALL {
            println!("{scenario}");
        }
        return Ok(());
    }
    let scenario = args.scenario.expect("clap requires a scenario unless --list");
    let mut params =
        GenParams { seed: args.seed, nanosecond: args.nanosecond, ..GenParams::for_scenario(scenario) };
    if let Some(duration) = args.duration {
        params.duration_secs = duration;
    }
    if let Some(pps) = args.background_pps {
        params.background_pps = pps;
    }
    if let Some(pps) = args.attack_pps {
        params.attack_pps = pps;
    }
    if let Some(start) = args.attack_start {
        params.attack_start_secs = start;
    }
    if args.attack_duration.is_some() {
        params.attack_duration_secs = args.attack_duration;
    }
    params.max_packets = args.max_packets;
    if args.target.is_some() {
        params.target = args.target;
    }
    params.snaplen = args.snaplen;
    let truth = rampart_trafficgen::generate_to_file(scenario, &params, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} and {} ({} packets)",
        args.out.display(),
        rampart_trafficgen::truth_path(&args.out).display(),
        truth.totals.packets
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf, target: Option<&str>) -> GenerateArgs {
        GenerateArgs {
            scenario: Some(Scenario::UdpFlood),
            out,
            seed: 3,
            duration: Some(1.0),
            nanosecond: false,
            background_pps: Some(100),
            attack_pps: Some(1000),
            snaplen: None,
            attack_start: Some(0.2),
            attack_duration: Some(0.5),
            max_packets: None,
            target: target.map(|t| t.parse().unwrap()),
            list: false,
        }
    }

    fn truth_target(out: &std::path::Path) -> serde_json::Value {
        let text = std::fs::read_to_string(rampart_trafficgen::truth_path(out)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["attacks"][0]["target"].clone()
    }

    #[test]
    fn the_target_moves_the_attack_and_a_wrong_family_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.pcap");
        run(args(out.clone(), Some("198.51.100.77"))).unwrap();
        assert_eq!(truth_target(&out), "198.51.100.77");
        run(args(out.clone(), None)).unwrap();
        assert_eq!(truth_target(&out), "198.51.100.10");
        let error = run(args(out, Some("2001:db8:100::7"))).unwrap_err();
        assert!(format!("{error:#}").contains("target"), "{error:#}");
    }
}
