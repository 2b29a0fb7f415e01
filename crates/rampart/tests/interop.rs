//! Interop with programs this project did not write: the same generated capture, exported as
//! NetFlow v5/v9/IPFIX by softflowd and as sFlow v5 by pmacct, must give `rampart collect` the
//! per-destination totals that `rampart inspect` computes from the capture, and `inspect` must
//! agree with tshark; sampled sFlow (pmacct 1:100, 1:1000) scales back to the capture and
//! names the attack in `rampart run`, and softflowd's active timeout keeps NetFlow totals exact.
//!
//! Peers are Debian packages installed by `scripts/test`. With `RAMPART_REQUIRE_PEERS` set (as
//! CI does) a missing peer fails the test; otherwise it is skipped with a message.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rampart_trafficgen::{GenParams, Scenario};
use serde_json::Value;

type PerDestination = BTreeMap<IpAddr, (u64, u64)>;

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");

/// True when `tool` is on PATH; panics instead of skipping when peers are required.
fn peer_available(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("RAMPART_REQUIRE_PEERS").is_some() || std::env::var_os("CI").is_some() {
            panic!("{tool} is required for this interop test but is not installed (run scripts/test)");
        }
        eprintln!("SKIPPED: {tool} not installed (scripts/test installs it)");
    }
    found
}

fn tool_path(tool: &str) -> String {
    let sbin = format!("/usr/sbin/{tool}");
    if Path::new(&sbin).exists() { sbin } else { tool.to_string() }
}

/// A small mixed capture (IPv4 and IPv6, TCP, UDP, ICMP, fragments, amplification, carpet
/// bombing), generated once per test binary.
fn capture() -> &'static Path {
    static CAPTURE: OnceLock<PathBuf> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rampart-interop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mixed.pcap");
        let params = GenParams {
            seed: 42,
            background_pps: 150,
            attack_pps: 600,
            ..GenParams::for_scenario(Scenario::Mixed)
        };
        let padded = dir.join("mixed-padded.pcap");
        let truth = rampart_trafficgen::generate_to_file(Scenario::Mixed, &params, &padded).unwrap();
        assert!(truth.totals.packets > 5_000, "capture too small to be a meaningful check");
        strip_ethernet_padding(&padded, &path);
        path
    })
}

/// Copies a capture, cutting each Ethernet frame to its IP packet's length. softflowd counts a
/// flow's bytes as the link-layer payload, so the padding of minimum-size Ethernet frames (a
/// 40-byte ACK travels in 46 bytes) would add up to 6 bytes a packet to its totals, where
/// Rampart, tshark and the IP header count the IP total length. Without padding the two
/// definitions coincide and the comparison can be exact.
fn strip_ethernet_padding(from: &Path, to: &Path) {
    use rampart_telemetry::{CaptureReader, LinkType, packet};
    let mut reader = CaptureReader::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut writer = rampart_trafficgen::PcapWriter::new(
        std::io::BufWriter::new(std::fs::File::create(to).unwrap()),
        false,
    )
    .unwrap();
    while let Some(frame) = reader.next_frame().unwrap() {
        assert_eq!(frame.link, LinkType::Ethernet);
        let headers = packet::decode(frame.link, frame.data, frame.wire_len).unwrap();
        let cut = (14 + headers.ip_len as usize).min(frame.data.len());
        writer.write_packet(frame.time.0, &frame.data[..cut]).unwrap();
    }
    writer.flush().unwrap();
}

/// Destination of the filler packets appended by [`with_flush_tail`].
const FLUSH_TAIL_DESTINATION: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 254));

/// A copy of the capture followed by 200 small UDP packets to [`FLUSH_TAIL_DESTINATION`].
/// pmacctd exits at the end of a savefile without sending its last, partly filled sFlow
/// datagram; the filler makes sure what it drops is not part of the comparison.
fn with_flush_tail(from: &Path) -> PathBuf {
    use rampart_telemetry::CaptureReader;
    let to = from.with_extension("flush-tail.pcap");
    let mut reader = CaptureReader::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut writer = rampart_trafficgen::PcapWriter::new(
        std::io::BufWriter::new(std::fs::File::create(&to).unwrap()),
        false,
    )
    .unwrap();
    let mut last = 0;
    while let Some(frame) = reader.next_frame().unwrap() {
        writer.write_packet(frame.time.0, frame.data).unwrap();
        last = frame.time.0;
    }
    let IpAddr::V4(filler_dst) = FLUSH_TAIL_DESTINATION else { unreachable!() };
    for i in 0..200u64 {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1]);
        frame.extend_from_slice(&filler_dst.octets());
        frame.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0]);
        writer.write_packet(last + (i + 1) * 1_000_000, &frame).unwrap();
    }
    writer.flush().unwrap();
    to
}

fn report_destinations(report: &Value) -> PerDestination {
    report["destinations"]
        .as_array()
        .expect("destinations array")
        .iter()
        .map(|d| {
            let ip: IpAddr = d["ip"].as_str().unwrap().parse().unwrap();
            (ip, (d["packets"].as_u64().unwrap(), d["bytes"].as_u64().unwrap()))
        })
        .collect()
}

fn inspect(path: &Path) -> Value {
    let output = Command::new(RAMPART).arg("inspect").arg(path).arg("--json").output().unwrap();
    assert!(output.status.success(), "inspect failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    support::assert_valid("traffic", &report);
    report
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `rampart collect` and returns once it is listening.
fn start_collect(flag: &str, port: u16, seconds: u32) -> Child {
    let mut child = Command::new(RAMPART)
        .args(["collect", flag, &format!("127.0.0.1:{port}"), "--duration", &seconds.to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening for"), "collect did not start: {line}");
    child
}

fn finish_collect(child: Child) -> Value {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "collect failed");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    support::assert_valid("traffic", &report);
    report
}

/// Runs a peer to completion, bounded in time; kills it (by its PID) if it overstays.
fn run_bounded(command: Command, limit: Duration) {
    let shown = format!("{command:?}");
    let status = run_bounded_status(command, limit);
    assert!(status.success(), "{shown} failed: {status}");
}

/// Runs `command` to its end (at most `limit`) and returns how it exited.
fn run_bounded_status(mut command: Command, limit: Duration) -> std::process::ExitStatus {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_same_destinations(what: &str, collected: &PerDestination, expected: &PerDestination) {
    let mut mismatches = Vec::new();
    for (ip, want) in expected {
        let got = collected.get(ip).copied().unwrap_or_default();
        if got != *want {
            mismatches.push(format!("{ip}: collected {got:?}, capture {want:?}"));
        }
    }
    for ip in collected.keys().filter(|ip| !expected.contains_key(ip)) {
        mismatches.push(format!("{ip}: collected but absent from the capture"));
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} destinations differ:\n{}",
        mismatches.len(),
        expected.len(),
        mismatches.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn softflowd_round_trip(version: &str, flag: &str, ipv4_only: bool) {
    if !peer_available("softflowd") {
        return;
    }
    let path = capture();
    let mut expected = report_destinations(&inspect(path));
    if ipv4_only {
        expected.retain(|ip, _| ip.is_ipv4());
    }
    let port = free_udp_port();
    let collector = start_collect(flag, port, 12);
    let mut softflowd = Command::new(tool_path("softflowd"));
    // -a: flow times follow the capture; -d: stay in the foreground and exit when done.
    softflowd.arg("-r").arg(path).args(["-n", &format!("127.0.0.1:{port}"), "-v", version, "-d", "-a"]);
    run_bounded(softflowd, Duration::from_secs(60));
    let report = finish_collect(collector);
    let total = &report["decode"]["total"];
    assert_eq!(total["decode_errors"], 0, "decode errors: {report:#}");
    assert_eq!(total["unknown_template_records"], 0);
    assert_eq!(total["sequence_gaps"], 0);
    assert_same_destinations(&format!("softflowd -v {version}"), &report_destinations(&report), &expected);
}

#[test]
fn softflowd_netflow_v5_matches_inspect() {
    // NetFlow v5 carries IPv4 only.
    softflowd_round_trip("5", "--netflow", true);
}

#[test]
fn softflowd_netflow_v9_matches_inspect() {
    softflowd_round_trip("9", "--netflow", false);
}

#[test]
fn softflowd_ipfix_matches_inspect() {
    softflowd_round_trip("10", "--ipfix", false);
}

#[test]
fn pmacct_sflow_matches_inspect() {
    if !peer_available("pmacctd") {
        return;
    }
    let path = capture();
    let expected = report_destinations(&inspect(path));
    let port = free_udp_port();
    let collector = start_collect("--sflow", port, 15);
    let path = &with_flush_tail(path);
    let config = path.with_extension(format!("sfprobe-{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "daemonize: false\npcap_savefile: {}\nplugins: sfprobe\nsfprobe_receiver: 127.0.0.1:{port}\nsfprobe_agentip: 127.0.0.1\nsampling_rate: 1\nsnaplen: 128\n",
            path.display()
        ),
    )
    .unwrap();
    let mut pmacctd = Command::new(tool_path("pmacctd"));
    pmacctd.arg("-f").arg(&config);
    // Debian's pmacctd often exits 1 at the end of a savefile ("connection lost to
    // 'default_sfprobe-sfprobe'") after its plugin has sent everything: its status says nothing
    // about the export. What the collector received, compared exactly below, does.
    let status = run_bounded_status(pmacctd, Duration::from_secs(60));
    if !status.success() {
        eprintln!("pmacctd exited with {status}; judging by what was collected");
    }
    let report = finish_collect(collector);
    assert_eq!(report["decode"]["total"]["decode_errors"], 0, "decode errors: {report:#}");
    let mut collected = report_destinations(&report);
    collected.remove(&FLUSH_TAIL_DESTINATION);
    assert_same_destinations("pmacct sfprobe", &collected, &expected);
}

#[test]
fn inspect_agrees_with_tshark() {
    if !peer_available("tshark") {
        return;
    }
    let path = capture();
    let expected = report_destinations(&inspect(path));
    // One line per frame: IPv4 destination and total length, or IPv6 destination and payload
    // length. Reassembly off, so each fragment counts as the frame it is.
    let output = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-n",
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-T",
            "fields",
            "-E",
            "separator=,",
        ])
        .args(["-e", "ip.dst", "-e", "ip.len", "-e", "ipv6.dst", "-e", "ipv6.plen"])
        .output()
        .unwrap();
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut tshark = PerDestination::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let fields: Vec<&str> = line.split(',').collect();
        let (ip, len) = match fields.as_slice() {
            [v4, len, "", ""] if !v4.is_empty() => {
                (v4.parse::<IpAddr>().unwrap(), len.parse::<u64>().unwrap())
            }
            ["", "", v6, plen] if !v6.is_empty() => {
                (v6.parse::<IpAddr>().unwrap(), plen.parse::<u64>().unwrap() + 40)
            }
            other => panic!("unexpected tshark line {other:?}"),
        };
        let entry = tshark.entry(ip).or_default();
        entry.0 += 1;
        entry.1 += len;
    }
    assert_same_destinations("tshark", &expected, &tshark);
}

#[test]
fn inspect_reads_standard_input() {
    let path = capture();
    let from_file = inspect(path);
    let output = Command::new(RAMPART)
        .args(["inspect", "-", "--json"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(output.status.success());
    let from_stdin: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(from_stdin["packets"], from_file["packets"]);
    assert_eq!(report_destinations(&from_stdin), report_destinations(&from_file));
}

#[test]
fn replay_as_sflow_matches_inspect() {
    let path = capture();
    let expected = report_destinations(&inspect(path));
    let port = free_udp_port();
    let collector = start_collect("--sflow", port, 8);
    let output = Command::new(RAMPART)
        .arg("replay")
        .arg(path)
        .args(["--sflow", &format!("127.0.0.1:{port}"), "--speed", "0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let report = finish_collect(collector);
    let total = &report["decode"]["total"];
    assert_eq!(
        (total["decode_errors"].as_u64(), total["sequence_gaps"].as_u64()),
        (Some(0), Some(0)),
        "{report:#}"
    );
    assert_same_destinations("rampart replay", &report_destinations(&report), &expected);
}

/// A generated UDP flood on 198.51.100.10 (4 s at 40 kpps over a light web background),
/// padding stripped, followed by the flush tail; generated once per test binary.
fn flood_capture() -> &'static Path {
    static CAPTURE: OnceLock<PathBuf> = OnceLock::new();
    CAPTURE.get_or_init(|| udp_flood_capture("udp-flood", 40_000))
}

/// The same flood at 100 kpps (400,000 packets): 40 samples at 1:10,000, enough to name it.
fn heavy_flood_capture() -> &'static Path {
    static CAPTURE: OnceLock<PathBuf> = OnceLock::new();
    CAPTURE.get_or_init(|| udp_flood_capture("udp-flood-heavy", 100_000))
}

fn udp_flood_capture(name: &str, attack_pps: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-interop-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let params = GenParams {
        seed: 7,
        duration_secs: 5.0,
        background_pps: 500,
        attack_pps,
        attack_start_secs: 0.5,
        attack_duration_secs: Some(4.0),
        ..GenParams::for_scenario(Scenario::UdpFlood)
    };
    let padded = dir.join(format!("{name}-padded.pcap"));
    rampart_trafficgen::generate_to_file(Scenario::UdpFlood, &params, &padded).unwrap();
    let path = dir.join(format!("{name}.pcap"));
    strip_ethernet_padding(&padded, &path);
    with_flush_tail(&path)
}

const FLOOD_TARGET: &str = "198.51.100.10";

/// pmacctd's sFlow probe over `capture` to 127.0.0.1:`port`, sampling one packet in
/// `sampling` (announced in the samples, so collectors scale back up).
fn pmacct_sflow(capture: &Path, port: u16, sampling: u32) {
    let config = capture.with_extension(format!("sfprobe-{port}-{sampling}.conf"));
    std::fs::write(
        &config,
        format!(
            "daemonize: false\npcap_savefile: {}\nplugins: sfprobe\nsfprobe_receiver: 127.0.0.1:{port}\nsfprobe_agentip: 127.0.0.1\nsampling_rate: {sampling}\nsnaplen: 128\n",
            capture.display()
        ),
    )
    .unwrap();
    let mut pmacctd = Command::new(tool_path("pmacctd"));
    pmacctd.arg("-f").arg(&config);
    // See `pmacct_sflow_matches_inspect` on pmacctd's exit status.
    let status = run_bounded_status(pmacctd, Duration::from_secs(60));
    if !status.success() {
        eprintln!("pmacctd exited with {status}; judging by what was collected");
    }
}

/// Sampled 1:100 by a real exporter, the flood's packets scale back to the capture's within
/// 10 % and its bytes within 15 % (about 1,600 samples: one standard deviation is 2.5 % of the
/// packets and about 3 % of the bytes, whose sizes vary; the bounds are 4 and 5 of them).
#[test]
fn pmacct_sampled_sflow_scales_back_to_the_capture() {
    if !peer_available("pmacctd") {
        return;
    }
    let capture = flood_capture();
    let target: IpAddr = FLOOD_TARGET.parse().unwrap();
    let (want_packets, want_bytes) = report_destinations(&inspect(capture))[&target];
    let port = free_udp_port();
    let collector = start_collect("--sflow", port, 15);
    pmacct_sflow(capture, port, 100);
    let report = finish_collect(collector);
    assert_eq!(report["decode"]["total"]["decode_errors"], 0, "decode errors: {report:#}");
    let (packets, bytes) = report_destinations(&report).get(&target).copied().unwrap_or_default();
    let error = |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64;
    println!(
        "pmacct 1:100: {packets} packets ({:.1} % off {want_packets}), {bytes} bytes ({:.1} % off {want_bytes})",
        100.0 * error(packets, want_packets),
        100.0 * error(bytes, want_bytes)
    );
    assert!(error(packets, want_packets) < 0.10, "{packets} scaled packets vs {want_packets} in the capture");
    assert!(error(bytes, want_bytes) < 0.15, "{bytes} scaled bytes vs {want_bytes} in the capture");
}

/// `rampart run` fed pmacct's sFlow sampled 1:100, 1:1000 and 1:10,000 names the flood's
/// target and, once 32 packets were observed (at the onset or in the update that follows),
/// its vector; the onset signature names the protocol.
#[test]
fn pmacct_sampled_sflow_into_the_daemon_names_target_and_vector() {
    if !peer_available("pmacctd") {
        return;
    }
    for sampling in [100, 1000, 10_000] {
        let capture = if sampling == 10_000 { heavy_flood_capture() } else { flood_capture() };
        let dir = tempfile::Builder::new().prefix("rampart-sampled-").tempdir().unwrap();
        let config = dir.path().join("rampart.toml");
        // pmacctd reads the savefile as fast as it can: the scaled rate is far above these.
        std::fs::write(
            &config,
            "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 4000\nudp_pps = 2000\n\
             [lifecycle]\nonset_secs = 1\nquiet_secs = 3\n[inputs]\nadvance_ms = 100\n",
        )
        .unwrap();
        let port = free_udp_port();
        let mut daemon = Command::new(RAMPART)
            .args(["run", "--sflow", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = support::line_channels(&mut daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("daemon startup lines")
            .starts_with("listening for sFlow on ")
        {}
        pmacct_sflow(capture, port, sampling);
        let (mut onset, mut named) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(15);
        while named.is_none() && Instant::now() < deadline {
            let Ok(line) = stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                break;
            };
            let event: Value = serde_json::from_str(&line).unwrap();
            support::assert_valid("event", &event);
            if event["event"] == "onset" {
                onset = Some(event.clone());
            }
            if !event["attack"]["vectors"].as_array().unwrap().is_empty() {
                named = Some(event);
            }
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
        let onset = onset.unwrap_or_else(|| panic!("no onset from pmacct's sFlow sampled 1:{sampling}"));
        assert_eq!(support::target(&onset["attack"]), FLOOD_TARGET, "1:{sampling}: {onset}");
        assert_eq!(onset["attack"]["signature"]["protocol"], 17, "1:{sampling}: {onset}");
        let named = named.unwrap_or_else(|| panic!("1:{sampling}: the vector was never named after {onset}"));
        let attack = &named["attack"];
        assert_eq!(attack["vectors"], serde_json::json!(["udp_flood"]), "1:{sampling}: {named}");
        let samples = attack["signature"]["samples"].as_u64().unwrap();
        assert!(
            samples >= 32 && attack["signature"]["confidence"] != "insufficient",
            "1:{sampling}: {named}"
        );
        // Scaled: each observed packet stands for `sampling` of them.
        let scaled = attack["signature"]["sampled_packets"].as_u64().unwrap();
        assert_eq!(scaled, samples * u64::from(sampling), "1:{sampling}: {named}");
        println!(
            "1:{sampling}: {} at {samples} samples ({})",
            named["event"], attack["signature"]["confidence"]
        );
    }
}

/// softflowd with a 5 s active timeout splits every long flow into several records over the
/// capture's 5 s; NetFlow v9 and IPFIX totals still match the capture exactly.
#[test]
fn softflowd_active_timeout_keeps_totals_exact() {
    if !peer_available("softflowd") {
        return;
    }
    let capture = flood_capture();
    let expected = report_destinations(&inspect(capture));
    for (version, flag) in [("9", "--netflow"), ("10", "--ipfix")] {
        let port = free_udp_port();
        let collector = start_collect(flag, port, 10);
        let mut softflowd = Command::new(tool_path("softflowd"));
        softflowd.arg("-r").arg(capture).args([
            "-n",
            &format!("127.0.0.1:{port}"),
            "-v",
            version,
            "-d",
            "-t",
            "maxlife=5",
        ]);
        run_bounded(softflowd, Duration::from_secs(60));
        let report = finish_collect(collector);
        assert_same_destinations(
            &format!("softflowd -v {version} -t maxlife=5"),
            &report_destinations(&report),
            &expected,
        );
    }
}
