//! Whose flows `rampart run` believes, end to end: per-exporter sampling overrides, the forged
//! 72-byte NetFlow v5 datagram (from a stranger and from a configured exporter), and a fuzzed
//! stream with bounded memory. A real daemon on loopback ports; traffic goes to 127.0.0.1 only
//! (from 127.0.0.1..3), every send loop bounded in count and time.
#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const TARGET: [u8; 4] = [198, 51, 100, 10];

const DETECTION: &str = r#"
protected = ["198.51.100.0/24"]

[thresholds]
pps = 4000
udp_pps = 2000

[lifecycle]
onset_secs = 1
quiet_secs = 3
"#;

struct Daemon {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Stderr lines read while starting.
    startup: Vec<String>,
    netflow: SocketAddr,
    metrics: SocketAddr,
}

impl Daemon {
    /// Starts the daemon in a temporary directory, removed when the returned guard drops.
    fn start(name: &str, inputs: &str) -> (Daemon, tempfile::TempDir) {
        let scratch = tempfile::Builder::new().prefix(&format!("rampart-trust-{name}-")).tempdir().unwrap();
        let dir = scratch.path();
        let config = dir.join("rampart.toml");
        std::fs::write(&config, format!("{DETECTION}\n[inputs]\nadvance_ms = 100\n{inputs}")).unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "--netflow", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart run");
        let (stdout, stderr) = support::line_channels(&mut child);
        let (mut netflow, mut metrics) = (None, None);
        let mut startup = Vec::new();
        while netflow.is_none() || metrics.is_none() {
            let line = stderr.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
            if let Some(addr) = line.strip_prefix("listening for NetFlow on ") {
                netflow = addr.parse().ok();
            }
            if let Some(url) = line.strip_prefix("metrics on http://") {
                metrics = url.trim_end_matches("/metrics").parse().ok();
            }
            startup.push(line);
        }
        let daemon =
            Daemon { child, stdout, stderr, startup, netflow: netflow.unwrap(), metrics: metrics.unwrap() };
        (daemon, scratch)
    }

    /// The metrics page.
    fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.metrics).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    }

    /// Events printed within `within`.
    fn events(&self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut events = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            events.push(serde_json::from_str(&line).expect("stdout lines are JSON"));
        }
        events
    }

    /// SIGTERM, wait (at most 20 s), and every stderr line printed since start-up.
    fn stop(mut self) -> Vec<String> {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "daemon did not stop within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut lines = std::mem::take(&mut self.startup);
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        lines
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// A NetFlow v5 datagram exported now: one record per (packets, octets) to TARGET:80, each
/// active in the current instant.
fn netflow_v5(flows: &[(u32, u32)], sequence: u32) -> Vec<u8> {
    let now = now();
    let mut out = Vec::new();
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&(flows.len() as u16).to_be_bytes());
    out.extend_from_slice(&100_000u32.to_be_bytes()); // uptime ms
    out.extend_from_slice(&(now.as_secs() as u32).to_be_bytes());
    out.extend_from_slice(&now.subsec_nanos().to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // engine, sampling interval 0
    for (i, &(packets, octets)) in flows.iter().enumerate() {
        out.extend_from_slice(&[203, 0, 113, 1 + (sequence as usize + i) as u8 % 200]);
        out.extend_from_slice(&TARGET);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&[0, 1, 0, 2]);
        out.extend_from_slice(&packets.to_be_bytes());
        out.extend_from_slice(&octets.to_be_bytes());
        out.extend_from_slice(&100_000u32.to_be_bytes()); // first
        out.extend_from_slice(&100_000u32.to_be_bytes()); // last
        out.extend_from_slice(&40_000u16.to_be_bytes());
        out.extend_from_slice(&80u16.to_be_bytes());
        out.extend_from_slice(&[0, 0, 17, 0]);
        out.extend_from_slice(&[0; 8]);
    }
    out
}

fn sender(from: &str) -> UdpSocket {
    UdpSocket::bind(format!("{from}:0")).expect("bind a loopback sender")
}

/// `rampart run` applies a configured exporter's sampling rate (`run` used to ignore it while
/// `collect` applied it): 50 flows of 5 packets a second, sampled 1 in 100, are a 25 kpps flood.
#[test]
fn run_applies_per_exporter_sampling_overrides() {
    let (daemon, dir) =
        Daemon::start("sampling", "\n[[inputs.exporter]]\naddress = \"127.0.0.1\"\nsampling = 100\n");
    let socket = sender("127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut onset = None;
    let mut sequence = 0;
    // 10 datagrams a second, at most 15 s.
    while onset.is_none() && Instant::now() < deadline {
        socket
            .send_to(
                &netflow_v5(&[(5, 1000), (5, 1000), (5, 1000), (5, 1000), (5, 1000)], sequence),
                daemon.netflow,
            )
            .unwrap();
        sequence += 5;
        onset = daemon.events(Duration::from_millis(100)).into_iter().find(|e| e["event"] == "onset");
    }
    let onset = onset.expect("no onset within 15 s: the sampling override was not applied");
    let attack = &onset["attack"];
    assert_eq!(attack["target"]["host"], "198.51.100.10");
    let peak = attack["peak_pps"].as_u64().unwrap();
    // 25 records × 5 packets × 100 a second (the onset may come within the first second);
    // unscaled it would be 250 pps, under every threshold.
    assert!((4_000..=40_000).contains(&peak), "peak {peak} pps: {attack}");
    assert_eq!(attack["packets"].as_u64().unwrap() % 100, 0, "every record scaled by 100: {attack}");
    let stderr = daemon.stop();
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("accepting flows only from 1 configured exporter(s): 127.0.0.1/32")),
        "{stderr:?}"
    );
    drop(dir);
}

/// The issue's forged datagram (72 bytes, one record of 4e9 packets to a protected host) from a
/// stranger and from configured exporters: no event, and the shutdown line says why.
#[test]
fn the_forged_datagram_raises_no_attack() {
    let inputs = "
[[inputs.exporter]]
address = \"127.0.0.2\"

[[inputs.exporter]]
address = \"127.0.0.3\"
sampling = 1000
";
    let (daemon, dir) = Daemon::start("forged", inputs);
    let forged = netflow_v5(&[(4_000_000_000, 4_000_000_000)], 1);
    assert_eq!(forged.len(), 72);
    let (stranger, exporter, sampled) = (sender("127.0.0.1"), sender("127.0.0.2"), sender("127.0.0.3"));
    // 3 s of it, 10 rounds a second: over the 1 s onset if any of it counted.
    for round in 0..30 {
        stranger.send_to(&netflow_v5(&[(4_000_000_000, 4_000_000_000)], round), daemon.netflow).unwrap();
        exporter.send_to(&netflow_v5(&[(4_000_000_000, 4_000_000_000)], round), daemon.netflow).unwrap();
        // Plausible packet sizes; 4e6 × 1000 = 4e9 pps once scaled.
        sampled.send_to(&netflow_v5(&[(4_000_000, 400_000_000)], round), daemon.netflow).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = daemon.events(Duration::from_secs(3));
    assert!(events.is_empty(), "forged datagrams raised events: {events:?}");
    // The metrics say why, per reason and per unknown source.
    let page = daemon.scrape();
    let value = |prefix: &str| {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{page}"))
    };
    assert_eq!(value("rampart_input_unknown_exporter_datagrams_total{collector=\"netflow\""), 30);
    assert_eq!(
        value("rampart_input_unknown_source_datagrams_total{collector=\"netflow\",listen=\"127.0.0.1:"),
        30
    );
    assert!(page.contains("source=\"127.0.0.1\"} 30"), "{page}");
    assert!(page.contains("reason=\"packet_size\"} 30"), "{page}");
    assert!(page.contains("reason=\"record_rate\"} 30"), "{page}");
    assert!(page.contains("rampart_active_attacks 0"), "{page}");
    let stderr = daemon.stop();
    let summary = stderr.iter().find(|l| l.starts_with("inputs: ")).unwrap_or_else(|| panic!("{stderr:?}"));
    assert!(summary.contains("90 datagrams, 0 records accepted"), "{summary}");
    assert!(
        summary.contains("dropped 30 datagrams from unknown exporters (top source 127.0.0.1: 30)"),
        "{summary}"
    );
    assert!(summary.contains("60 implausible records"), "{summary}");
    assert!(summary.contains("packet_size=30") && summary.contains("record_rate=30"), "{summary}");
    drop(dir);
}

/// Without a configured exporter the daemon listens on loopback only and says so.
#[test]
fn without_exporters_the_daemon_says_it_listens_on_loopback_only() {
    let (daemon, _dir) = Daemon::start("loopback", "");
    let stderr = daemon.stop();
    assert!(
        stderr.iter().any(|l| l.contains("no exporter configured") && l.contains("loopback only")),
        "{stderr:?}"
    );
    // Listening on all addresses without exporters is refused, naming the key.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let config = dir.join("open.toml");
    std::fs::write(&config, "[inputs]\nlisten = \"0.0.0.0\"\n").unwrap();
    let output = Command::new(BIN)
        .args(["run", "--metrics", "off", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("open.toml:2:10: `inputs.listen`") && error.contains("[[inputs.exporter]]"),
        "{error}"
    );
}

/// A small deterministic generator (xorshift64*), so the fuzzed stream is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Random datagrams: bytes, NetFlow v5/v9/IPFIX and sFlow headers with random bodies, and
/// valid v5 datagrams with random counts or a few bytes overwritten.
fn fuzzed(rng: &mut Rng, sequence: u32) -> Vec<u8> {
    match rng.below(4) {
        0 => (0..rng.below(1500)).map(|_| rng.next() as u8).collect(),
        1 => {
            let mut d = match rng.below(3) {
                0 => vec![0, 9],
                1 => vec![0, 10],
                _ => vec![0, 0, 0, 5, 0, 0, 0, 1],
            };
            d.extend((0..rng.below(1400)).map(|_| rng.next() as u8));
            d
        }
        2 => {
            let flows: Vec<(u32, u32)> =
                (0..1 + rng.below(30)).map(|_| (rng.next() as u32, rng.next() as u32)).collect();
            netflow_v5(&flows, sequence)
        }
        _ => {
            let mut d = netflow_v5(&[(5, 1000), (7, 2000)], sequence);
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(d.len() as u64) as usize;
                d[at] = rng.next() as u8;
            }
            d
        }
    }
}

/// 4000 fuzzed datagrams from a configured exporter (a 1 Mbit/s link: at most 1,488 pps and
/// 1 Mbit/s a second of arrival may pass): no event, no crash, memory bounded.
#[test]
fn a_fuzzed_stream_raises_nothing_and_memory_stays_bounded() {
    let inputs = "\n[[inputs.exporter]]\naddress = \"127.0.0.2\"\ninterface_speed = \"1M\"\n";
    let (daemon, dir) = Daemon::start("fuzz", inputs);
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = daemon.rss_kib();
    let socket = sender("127.0.0.2");
    let mut rng = Rng(0x5eed_2026_1201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    for sequence in 0..4000u32 {
        if Instant::now() > deadline {
            break;
        }
        socket.send_to(&fuzzed(&mut rng, sequence), daemon.netflow).unwrap();
        sent += 1;
        if sequence % 100 == 99 {
            // About 1000 datagrams a second: the receive buffer never overflows.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(sent, 4000, "the send loop ran out of time");
    let events = daemon.events(Duration::from_secs(3));
    let rss_after = daemon.rss_kib();
    println!("fuzz: RSS {rss_before} KiB before, {rss_after} KiB after 4000 datagrams");
    assert!(events.is_empty(), "{} events, first {:?}", events.len(), events.first());
    // The bound: 64 MiB over what the daemon used before (its fixed tables are allocated at
    // start; decoder state is capped per exporter) and 256 MiB in all for a debug build.
    assert!(
        rss_after < rss_before + 64 * 1024 && rss_after < 256 * 1024,
        "RSS {rss_before} → {rss_after} KiB"
    );
    let stderr = daemon.stop();
    let summary = stderr.iter().find(|l| l.starts_with("inputs: ")).unwrap_or_else(|| panic!("{stderr:?}"));
    println!("fuzz: {summary}");
    assert!(summary.contains("implausible records"), "{summary}");
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "{stderr:?}");
    drop(dir);
}

/// `rampart collect` runs the same inputs: sampling overrides, unknown exporters dropped and
/// counted per source, implausible records counted by reason, all in its JSON report.
#[test]
fn collect_reports_the_same_drops() {
    let mut child = Command::new(BIN)
        .args([
            "collect",
            "--netflow",
            "127.0.0.1:0",
            "--exporter",
            "127.0.0.2",
            "--sampling",
            "127.0.0.2=10",
        ])
        .args(["--duration", "3", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rampart collect");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr =
        line.trim().strip_prefix("listening for NetFlow on ").expect(&line).parse().unwrap();
    let (stranger, exporter) = (sender("127.0.0.1"), sender("127.0.0.2"));
    for round in 0..10 {
        stranger.send_to(&netflow_v5(&[(5, 1000)], round), addr).unwrap();
        exporter.send_to(&netflow_v5(&[(5, 1000)], round), addr).unwrap();
        exporter.send_to(&netflow_v5(&[(4_000_000_000, 4_000_000_000)], round), addr).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["packets"], 10 * 5 * 10, "{report}");
    let netflow = &report["decode"]["collectors"][0];
    assert_eq!(netflow["unknown_exporter"], 10, "{netflow}");
    assert_eq!(netflow["unknown_sources"][0]["source"], "127.0.0.1", "{netflow}");
    assert_eq!(netflow["implausible"]["packet_size"], 10, "{netflow}");
    assert_eq!(netflow["exporters"][0]["implausible"]["packet_size"], 10, "{netflow}");

    // Listening beyond loopback needs exporters.
    let output = Command::new(BIN)
        .args(["collect", "--netflow", "0", "--listen", "0.0.0.0", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("0.0.0.0:0") && error.contains("--exporter"), "{error}");
}
