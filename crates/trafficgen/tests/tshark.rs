//! Cross-checks against tshark, when it is installed (skipped otherwise).

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::small;
use rampart_trafficgen::{AmplificationVector, GenParams, GroundTruth, Scenario, Totals, generate_to_file};

/// True when tshark runs; panics instead of skipping when peers are required (CI).
fn tshark_available() -> bool {
    let available = Command::new("tshark").arg("-v").output().is_ok_and(|o| o.status.success());
    if !available && (std::env::var_os("RAMPART_REQUIRE_PEERS").is_some() || std::env::var_os("CI").is_some())
    {
        panic!("tshark is required for this test but is not installed (run scripts/test)");
    }
    available
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rampart-trafficgen-tshark-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tshark(args: &[&str], config_dir: Option<&Path>) -> String {
    let mut cmd = Command::new("tshark");
    cmd.args(args);
    if let Some(dir) = config_dir {
        cmd.env("WIRESHARK_CONFIG_DIR", dir);
    }
    let out = cmd.output().expect("run tshark");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A Wireshark profile with every protocol above the transport layer disabled, so random flood
/// payloads are not dissected as whatever protocol their random port suggests.
fn transport_only_profile(dir: &Path) -> PathBuf {
    let cfg = dir.join("wireshark");
    std::fs::create_dir_all(&cfg).unwrap();
    let keep = ["frame", "eth", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6"];
    let all = tshark(&["-G", "protocols"], None);
    let disabled: Vec<&str> = all
        .lines()
        .filter_map(|l| l.split('\t').nth(2))
        .filter(|name| !keep.contains(name) && !name.starts_with("_ws"))
        .collect();
    std::fs::write(cfg.join("disabled_protos"), disabled.join("\n")).unwrap();
    cfg
}

fn generate(dir: &Path, s: Scenario, p: &GenParams) -> (PathBuf, GroundTruth) {
    let path = dir.join(format!("{}.pcap", s.name()));
    let truth = generate_to_file(s, p, &path).unwrap();
    (path, truth)
}

#[test]
fn tshark_counts_match_the_truth() {
    if !tshark_available() {
        eprintln!("tshark not installed: skipped");
        return;
    }
    let dir = TempDir::new("counts");
    let p = GenParams {
        duration_secs: 3.0,
        attack_start_secs: 0.2,
        attack_duration_secs: Some(2.6),
        ..small(21)
    };
    let (path, truth) = generate(&dir.0, Scenario::Mixed, &p);
    let file = path.to_str().unwrap();
    let out = tshark(
        &[
            "-r",
            file,
            "-o",
            "ip.defragment:FALSE",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ip.dst",
            "-e",
            "ip.len",
            "-e",
            "ipv6.dst",
            "-e",
            "ipv6.plen",
        ],
        None,
    );
    let mut per_dst: BTreeMap<IpAddr, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for line in out.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let (dst, len) = match f.as_slice() {
            [d, l, "", ""] => (d.parse::<IpAddr>().unwrap(), l.parse::<u64>().unwrap()),
            ["", "", d, l] => (d.parse::<IpAddr>().unwrap(), 40 + l.parse::<u64>().unwrap()),
            _ => panic!("unexpected tshark line {line:?}"),
        };
        let t = per_dst.entry(dst).or_default();
        t.packets += 1;
        t.bytes += len;
        total.packets += 1;
        total.bytes += len;
    }
    assert_eq!(total, truth.totals);
    assert_eq!(per_dst, truth.per_destination);

    // io,stat agrees on the frame count and frame bytes.
    let stat = tshark(&["-r", file, "-q", "-z", "io,stat,0"], None);
    let row = stat.lines().find(|l| l.contains("<>")).expect("io,stat row");
    let nums: Vec<u64> = row.split('|').filter_map(|c| c.trim().parse().ok()).collect();
    assert_eq!(nums, [truth.capture.packets, truth.capture.frame_bytes], "{row}");
}

#[test]
fn tshark_sees_no_errors_or_warnings() {
    if !tshark_available() {
        eprintln!("tshark not installed: skipped");
        return;
    }
    let dir = TempDir::new("expert");
    let profile = transport_only_profile(&dir.0);
    let p = GenParams {
        duration_secs: 3.0,
        attack_start_secs: 0.2,
        attack_duration_secs: Some(2.6),
        ..small(22)
    };
    for s in [
        Scenario::Mixed,
        Scenario::BenignWeb,
        Scenario::BulkOutbound,
        Scenario::UdpFloodV6,
        Scenario::IcmpFloodV6,
        Scenario::CarpetBombingV6,
        Scenario::Amplification(AmplificationVector::Memcached),
        Scenario::Amplification(AmplificationVector::Cldap),
        Scenario::OutboundSynFlood,
        Scenario::DnsReflectorAbuse,
    ] {
        let (path, truth) = generate(&dir.0, s, &p);
        assert!(truth.totals.packets > 1_000);
        let expert = tshark(
            &[
                "-r",
                path.to_str().unwrap(),
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-q",
                "-z",
                "expert",
            ],
            Some(&profile),
        );
        assert!(!expert.contains("Errors (") && !expert.contains("Warns ("), "{s}: {expert}");
        assert!(expert.contains("Chats ("), "{s}: tshark saw the handshakes: {expert}");
    }
}

#[test]
fn tshark_dissects_the_reflected_dns() {
    if !tshark_available() {
        eprintln!("tshark not installed: skipped");
        return;
    }
    let dir = TempDir::new("dns");
    let p = GenParams { background_pps: 0, ..small(23) };
    let (path, truth) = generate(&dir.0, Scenario::DnsReflectorAbuse, &p);
    let file = path.to_str().unwrap();
    // Full dissection this time (DNS included): nothing malformed or suspicious.
    let expert = tshark(&["-r", file, "-o", "udp.check_checksum:TRUE", "-q", "-z", "expert"], None);
    assert!(!expert.contains("Errors (") && !expert.contains("Warns ("), "{expert}");
    let fields = ["-T", "fields", "-e", "dns.qry.type", "-e", "dns.count.answers", "-e", "dns.response_to"];
    let queries = tshark(&[&["-r", file, "-Y", "dns.flags.response == 0"][..], &fields[..]].concat(), None);
    let answers = tshark(&[&["-r", file, "-Y", "dns.flags.response == 1"][..], &fields[..]].concat(), None);
    let a = &truth.attacks[0];
    let outbound = a.outbound.unwrap().packets;
    assert_eq!(answers.lines().count() as u64, outbound);
    assert_eq!(queries.lines().count() as u64, a.packets - outbound);
    // ANY queries; every answer is matched to its query and carries several records.
    assert!(queries.lines().all(|l| l.starts_with("255\t")), "{}", queries.lines().next().unwrap_or(""));
    for line in answers.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert!(
            matches!(f.as_slice(), ["255", n, to] if n.parse::<u32>().unwrap() >= 4 && !to.is_empty()),
            "{line}"
        );
    }
}
