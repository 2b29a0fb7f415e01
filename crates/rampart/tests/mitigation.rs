//! End-to-end tests of mitigation: `rampart ban`, `unban`, `decisions list` and `audit verify`
//! on the store alone, and against a running daemon (through its control socket) that turns a
//! generated sFlow UDP flood into escalating decisions, notifies a slow script, and withdraws
//! the decisions after the hold. Loopback only; every flood is bounded in time.
#![cfg(unix)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const TARGET: [u8; 4] = [198, 51, 100, 10];
const SAMPLING: u32 = 100;

fn rampart(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN).args(args).arg("--data-dir").arg(dir).output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every audit record matches the published schema.
fn assert_audit_valid(dir: &Path) {
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    for line in audit.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        support::assert_valid("audit-record", &line["record"]);
    }
}

fn list(dir: &Path, all: bool) -> Vec<Value> {
    let args: &[&str] =
        if all { &["decisions", "list", "--json", "--all"] } else { &["decisions", "list", "--json"] };
    let listed: Value = serde_json::from_str(&ok(&rampart(args, dir))).unwrap();
    let listed = listed.as_array().cloned().unwrap();
    listed.iter().for_each(|d| support::assert_valid("stored-decision", d));
    listed
}

#[test]
fn operators_ban_signatures_as_reports_print_them() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("data");
    let config = scratch.path().join("rampart.toml");
    std::fs::write(&config, "protected = [\"198.51.100.0/24\"]\n").unwrap();
    let config = config.to_str().unwrap();
    let ban = |scope: &str| {
        rampart(
            &[
                "ban",
                scope,
                "--action",
                "discard",
                "--duration",
                "1h",
                "--reason",
                "dns reflection",
                "--config",
                config,
            ],
            &dir,
        )
    };
    let out = ok(&ban("dst 198.51.100.10/32, proto 17, src port 53, length 512-1500"));
    assert!(
        out.starts_with("decision 1: discard dst 198.51.100.10/32, proto 17, src port 53, length 512-1500"),
        "{out}"
    );
    let listed = list(&dir, false);
    let signature = &listed[0]["decision"]["scope"]["signature"];
    assert_eq!(
        (signature["protocol"].as_u64(), signature["src_ports"][0]["first"].as_u64()),
        (Some(17), Some(53))
    );
    // A typo names the field; a signature without a destination, or outside the protected
    // networks, is refused.
    let error = failed(&ban("dst 198.51.100.10/32, proto 17, src prot 53"));
    assert!(error.contains("\"src prot 53\"") && error.contains("not an address or prefix"), "{error}");
    let error = failed(&ban("proto 17, src port 53"));
    assert!(error.contains("needs a destination"), "{error}");
    let error = failed(&ban("dst 192.0.2.0/24, proto 17"));
    assert!(error.contains("not inside the protected networks"), "{error}");
}

#[test]
fn bans_unbans_and_a_tampered_audit_log_without_a_daemon() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("data");
    let config = scratch.path().join("rampart.toml");
    std::fs::write(
        &config,
        "protected = [\"198.51.100.0/24\"]\n[mitigation]\nallowlist = [\"198.51.100.53\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let ban = |args: &[&str]| {
        let mut all = vec!["ban"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", config]);
        rampart(&all, &dir)
    };
    let out = ok(&ban(&["203.0.113.7", "--action", "discard", "--duration", "1h", "--reason", "scanner"]));
    assert!(out.starts_with("decision 1: discard 203.0.113.7 until "), "{out}");
    ok(&ban(&["198.51.100.10", "--action", "blackhole", "--duration", "10m", "--reason", "last resort"]));
    // The guards hold for operators too: allowlisted, default route, outside the protected
    // networks (a blackhole is of a destination).
    let error =
        failed(&ban(&["198.51.100.53", "--action", "blackhole", "--duration", "1h", "--reason", "x"]));
    assert!(error.contains("allowlisted") && error.contains("audit log"), "{error}");
    let error = failed(&ban(&["0.0.0.0/0", "--action", "discard", "--duration", "1h", "--reason", "x"]));
    assert!(error.contains("default route"), "{error}");
    let error = failed(&ban(&["192.0.2.1", "--action", "blackhole", "--duration", "1h", "--reason", "x"]));
    assert!(error.contains("not inside the protected networks"), "{error}");
    // User mistakes: one line, non-zero exit.
    let error = failed(&ban(&["203.0.113.7", "--action", "nuke", "--duration", "1h", "--reason", "x"]));
    assert!(error.starts_with("rampart: --action \"nuke\""), "{error}");
    let error = failed(&ban(&["203.0.113.7", "--action", "discard", "--duration", "soon", "--reason", "x"]));
    assert!(error.contains("--duration"), "{error}");

    let listed = list(&dir, false);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["decision"]["scope"]["address"], "203.0.113.7");
    assert_eq!(listed[0]["decision"]["origin"]["operator"]["name"], "root");
    assert_eq!(listed[1]["decision"]["action"], "blackhole");
    let table = ok(&rampart(&["decisions", "list"], &dir));
    assert!(table.contains("blackhole") && table.contains("last resort"), "{table}");

    let out = ok(&rampart(&["unban", "198.51.100.10"], &dir));
    assert_eq!(out.trim(), "withdrawn: decision 2");
    failed(&rampart(&["unban", "2"], &dir));
    assert_eq!(list(&dir, false).len(), 1);
    let all = list(&dir, true);
    assert_eq!(all[1]["closed"]["how"], "withdrawn");

    let out = ok(&rampart(&["audit", "verify"], &dir));
    assert!(out.starts_with("audit log intact: 6 records, head "), "{out}");
    assert_audit_valid(&dir);
    // Flip one byte of one record: detected, exit status 1, the line named.
    let path = dir.join("audit.jsonl");
    let original = std::fs::read(&path).unwrap();
    let second_line = original.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut tampered = original.clone();
    let at = second_line + 120;
    tampered[at] = if tampered[at] == b'7' { b'8' } else { b'7' };
    std::fs::write(&path, &tampered).unwrap();
    let error = failed(&rampart(&["audit", "verify"], &dir));
    assert!(error.contains("line 2") && error.contains("not intact"), "{error}");
    // Cutting the last record off is detected by the store's anchor.
    let cut = &original[..original[..original.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1];
    std::fs::write(&path, cut).unwrap();
    let error = failed(&rampart(&["audit", "verify"], &dir));
    assert!(error.contains("cut off"), "{error}");
    std::fs::write(&path, &original).unwrap();
    ok(&rampart(&["audit", "verify"], &dir));
    // Rotated as `audit_rotate_mb` leaves it: the first three records in audit.jsonl.1, the
    // rest chained on in audit.jsonl. Verify reads both, in order; without the first, the chain
    // breaks at the current file's first line.
    let split = original.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).unwrap().0 + 1;
    std::fs::write(dir.join("audit.jsonl.1"), &original[..split]).unwrap();
    std::fs::write(&path, &original[split..]).unwrap();
    let out = ok(&rampart(&["audit", "verify"], &dir));
    assert!(out.starts_with("audit log intact: 6 records, head "), "{out}");
    std::fs::remove_file(dir.join("audit.jsonl.1")).unwrap();
    let error = failed(&rampart(&["audit", "verify"], &dir));
    assert!(error.contains("audit.jsonl line 1: record 4 does not follow record 0"), "{error}");
}

/// One sFlow v5 datagram of `samples` flow samples: 200-byte UDP packets from varying
/// sources to TARGET:80.
/// Samples are numbered from `first`.
fn sflow_datagram(sequence: u32, first: u32, samples: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
    for v in [5, 1] {
        put(&mut out, v);
    }
    out.extend_from_slice(&[192, 0, 2, 1]);
    for v in [0, sequence, sequence * 100, samples] {
        put(&mut out, v);
    }
    for i in 0..samples {
        let n = first + i;
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        let ip_len: u16 = 200;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&ip_len.to_be_bytes());
        frame.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[203, 0, 113, (n % 250) as u8 + 1]);
        frame.extend_from_slice(&TARGET);
        frame.extend_from_slice(&(40_000 + (n % 1000) as u16).to_be_bytes());
        frame.extend_from_slice(&80u16.to_be_bytes());
        frame.extend_from_slice(&(ip_len - 20).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.resize(64, 0);
        let record_len = 16 + frame.len() as u32;
        for v in [1, 32 + 8 + record_len, n, 1, SAMPLING, n * SAMPLING, 0, 1, 2, 1, 1, record_len, 1] {
            put(&mut out, v);
        }
        for v in [u32::from(ip_len) + 18, 4, frame.len() as u32] {
            put(&mut out, v);
        }
        out.extend_from_slice(&frame);
    }
    out
}

struct Daemon {
    child: Child,
    stdout: Receiver<String>,
    sflow: SocketAddr,
    metrics: SocketAddr,
}

impl Daemon {
    fn start(config: &Path, data_dir: &Path) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = support::line_channels(&mut child);
        let (mut sflow, mut metrics, mut control) = (None, None, false);
        while sflow.is_none() || metrics.is_none() || !control {
            let line = stderr.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
            if let Some(addr) = line.strip_prefix("listening for sFlow on ") {
                sflow = addr.parse().ok();
            } else if let Some(url) = line.strip_prefix("metrics on http://") {
                metrics = url.trim_end_matches("/metrics").parse().ok();
            } else if line.starts_with("control socket ") {
                control = true;
            }
        }
        Daemon { child, stdout, sflow: sflow.unwrap(), metrics: metrics.unwrap() }
    }

    /// Floods TARGET (5,000 UDP packets/s, rising) from a thread of its own until `stop` is
    /// set or 30 s pass.
    fn flood(&self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
        let target = self.sflow;
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let until = Instant::now() + Duration::from_secs(30);
            let started = Instant::now();
            let (mut sequence, mut first) = (1, 1);
            while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Rising by a fifth every second (capped): the engine sends updates (peak up
                // 10 %) with the attack's refined signature.
                let samples = (5.0 * 1.2f64.powi(started.elapsed().as_secs() as i32)).min(40.0) as u32;
                socket.send_to(&sflow_datagram(sequence, first, samples), target).unwrap();
                first += samples;
                sequence += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    fn wait_for(&self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let line = self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {kind} event"));
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == kind {
                return event;
            }
        }
    }

    fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.metrics).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `rampart decisions list` until `done` holds (at most `timeout`).
fn wait_decisions(dir: &Path, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let listed = list(dir, false);
        if done(&listed) || Instant::now() > deadline {
            return listed;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn attack_actions(listed: &[Value]) -> Vec<String> {
    listed
        .iter()
        .filter(|d| d["decision"]["origin"]["attack"].is_object())
        .map(|d| d["decision"]["action"].to_string())
        .collect()
}

#[test]
fn the_daemon_escalates_an_attack_takes_bans_over_its_socket_and_withdraws_after_the_hold() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let notices = scratch.path().join("notices");
    std::fs::create_dir_all(&notices).unwrap();
    // Writes what it is given, then hangs: killed at the timeout every time, and detection must
    // not notice.
    let script = scratch.path().join("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat > {}/$$.json\nsleep 30\n", notices.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = scratch.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"protected = ["198.51.100.0/24"]

[thresholds]
pps = 4000
udp_pps = 2000

[lifecycle]
onset_secs = 1
quiet_secs = 2

[inputs]
advance_ms = 100

[mitigation]
dry_run = false
allowlist = ["198.51.100.53"]
script = "{}"
script_timeout_ms = 300

[mitigation.default]
ladder = ["notify", "rate_limit", "discard"]
step_secs = 1
hold_secs = 2
"#,
            script.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &data);

    // While the daemon runs, its socket takes the ban (the store is the daemon's: a direct
    // write would be refused as busy).
    let out = ok(&rampart(
        &["ban", "203.0.113.9", "--action", "rate-limit:1000", "--duration", "1h", "--reason", "probe"],
        &data,
    ));
    assert!(out.starts_with("decision 1: rate-limit 1000 B/s 203.0.113.9"), "{out}");
    let error = failed(&rampart(
        &["ban", "198.51.100.53", "--action", "discard", "--duration", "1h", "--reason", "x"],
        &data,
    ));
    assert!(error.contains("allowlisted"), "{error}");

    // Flood until the ladder reaches discard (notify, then rate limit, then discard, a
    // second apart), then stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = daemon.flood(stop.clone());
    // The new rung is enacted before the old one is withdrawn (no gap), two commits apart: wait
    // for the state after both.
    let listed = wait_decisions(&data, Duration::from_secs(25), |l| attack_actions(l) == ["\"discard\""]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap_or_default();
    assert_eq!(
        attack_actions(&listed),
        ["\"discard\""],
        "one decision per attack, the latest rung: {listed:?}\n{audit}"
    );
    let discard = listed.iter().find(|d| d["decision"]["action"] == "discard").unwrap();
    assert_eq!(discard["dry_run"], false);
    assert_eq!(discard["decision"]["scope"]["signature"]["dst_prefixes"][0], "198.51.100.10/32");
    assert_eq!(discard["decision"]["scope"]["signature"]["protocol"], 17);

    // The end comes on time although every script run hangs until killed.
    daemon.wait_for("end", Duration::from_secs(10));
    // The hold (2 s) passes: the attack's decision goes, the operator's stays.
    let listed = wait_decisions(&data, Duration::from_secs(8), |l| attack_actions(l).is_empty());
    assert!(attack_actions(&listed).is_empty(), "{listed:?}");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["decision"]["origin"]["operator"]["name"], "root");

    // Expiry is carried out by the next tick (about a second).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut metrics = daemon.scrape();
    while !metrics.contains("rampart_mitigation_expired_total 1") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        metrics = daemon.scrape();
    }
    for expected in [
        "rampart_mitigation_expired_total 1",
        "rampart_mitigation_withdrawn_total 2",
        "rampart_mitigation_decisions_total{action=\"discard\"} 1",
        "rampart_mitigation_decisions_total{action=\"notify\"} 1",
        "rampart_mitigation_refusals_total{guard=\"allowlisted\"} 1",
        "rampart_mitigation_active 1",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    let timeouts = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rampart_script_timeouts_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(timeouts >= 1, "{metrics}");

    // The script saw the attack and its decisions as JSON.
    let notices: Vec<Value> = std::fs::read_dir(&notices)
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    let enacted_discard =
        notices.iter().find(|n| n["change"] == "enact" && n["decision"]["action"] == "discard");
    let notice = enacted_discard.unwrap_or_else(|| panic!("{notices:?}"));
    notices.iter().for_each(|n| support::assert_valid("notice", n));
    assert_eq!(notice["attack"]["target"]["host"], "198.51.100.10");
    assert_eq!(notice["dry_run"], false);

    let mut daemon = daemon;
    let _ = Command::new("kill").arg("-TERM").arg(daemon.child.id().to_string()).status();
    assert!(daemon.child.wait().unwrap().success());
    assert!(!data.join("control.sock").exists(), "the socket is removed at shutdown");
    let out = ok(&rampart(&["audit", "verify"], &data));
    assert!(out.starts_with("audit log intact"), "{out}");
    assert_audit_valid(&data);
    // Without the daemon, the CLI acts on the store directly.
    ok(&rampart(&["unban", "1"], &data));
    assert!(list(&data, false).is_empty());
}

#[test]
fn a_dry_run_records_what_it_would_do_and_enacts_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let config = scratch.path().join("rampart.toml");
    // No dry_run key: a dry run is the default.
    std::fs::write(
        &config,
        "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 4000\nudp_pps = 2000\n\
         [lifecycle]\nonset_secs = 1\nquiet_secs = 2\n[mitigation]\n[mitigation.default]\n\
         ladder = [\"notify\", \"discard\"]\nstep_secs = 1\n",
    )
    .unwrap();
    let daemon = Daemon::start(&config, &data);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = daemon.flood(stop.clone());
    // The new rung is enacted before the old one is withdrawn (no gap), two commits apart: wait
    // for the state after both.
    let listed = wait_decisions(&data, Duration::from_secs(25), |l| attack_actions(l) == ["\"discard\""]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert_eq!(attack_actions(&listed), ["\"discard\""], "{listed:?}");
    assert!(listed.iter().all(|d| d["dry_run"] == true), "{listed:?}");
    let table = ok(&rampart(&["decisions", "list"], &data));
    assert!(table.contains("dry-run") && table.contains("discard"), "{table}");
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.len() >= 3, "{audit}");
    assert!(records.iter().all(|r| r["record"]["dry_run"] == true), "{audit}");
    let metrics = daemon.scrape();
    assert!(metrics.contains("rampart_mitigation_dry_run 1"), "{metrics}");

    // kill -9 and a restart: the decision is still there (its lease runs), the stale socket
    // is replaced, and commands reach the new daemon.
    drop(daemon);
    assert!(data.join("control.sock").exists(), "a killed daemon leaves its socket");
    let daemon = Daemon::start(&config, &data);
    let listed = list(&data, false);
    assert_eq!(attack_actions(&listed), ["\"discard\""], "{listed:?}");
    let id = listed[0]["decision"]["id"].to_string();
    let out = ok(&rampart(&["unban", &id, "--reason", "restarted"], &data));
    assert_eq!(out.trim(), format!("withdrawn: decision {id}"));
    assert!(list(&data, false).is_empty());
    drop(daemon);
    ok(&rampart(&["audit", "verify"], &data));
}

/// BIRD 2 of its own (directory, config, control socket, a free port on 127.0.0.1), waiting
/// for Rampart's speaker; killed by PID on drop.
struct Bird {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Bird {
    fn start() -> Option<Bird> {
        let found = Command::new("sh").args(["-c", "command -v bird && command -v birdc"]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            if std::env::var_os("RAMPART_REQUIRE_PEERS").is_some() || std::env::var_os("CI").is_some() {
                panic!("bird2 is required for this test but is not installed (run scripts/test)");
            }
            eprintln!("SKIPPED: bird2 not installed (scripts/test installs it)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("rampart-bird-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("bird.conf");
        std::fs::write(
            &config,
            format!(
                r#"router id 192.0.2.254;
log "{}" all;
protocol device {{}}
flow4 table flowtab4;
protocol bgp rampart {{
  local 127.0.0.1 port {port} as 64513;
  strict bind on;
  neighbor 127.0.0.1 as 64512;
  multihop;
  passive on;
  hold time 9;
  error wait time 1, 5;
  flow4 {{ table flowtab4; import all; export none; }};
}}
"#,
                dir.path().join("bird.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("bird")
            .arg("-c")
            .arg(&config)
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bird = Bird { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while bird.flow_routes().is_none() {
            assert!(Instant::now() < deadline, "birdc does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(bird)
    }

    /// `birdc show route table flowtab4 all`, or `None` while BIRD does not answer.
    fn flow_routes(&self) -> Option<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(["show", "route", "table", "flowtab4", "all"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.contains("Unable to connect")).then_some(text)
    }

    fn wait_routes(&self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let routes = self.flow_routes().unwrap_or_default();
            if done(&routes) {
                return routes;
            }
            assert!(Instant::now() < deadline, "{what}; BIRD holds:\n{routes}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// End to end: a flood streamed as sFlow into `rampart run` becomes a decision that the
/// daemon's BGP speaker announces to BIRD as a FlowSpec rule matching the attack's signature
/// (destination, protocol, port); after the attack ends and the hold passes, BIRD holds none.
#[test]
fn an_attack_becomes_a_flowspec_rule_in_bird_and_goes_after_the_hold() {
    let Some(bird) = Bird::start() else { return };
    let dir = tempfile::Builder::new().prefix("rampart-bgp-e2e-").tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"protected = ["198.51.100.0/24"]

[thresholds]
pps = 4000
udp_pps = 2000

[lifecycle]
onset_secs = 1
quiet_secs = 2

[inputs]
advance_ms = 100

[mitigation]
dry_run = false

[mitigation.default]
ladder = ["discard"]
hold_secs = 2

[bgp]
local_as = 64512
router_id = "192.0.2.1"

[[bgp.peers]]
name = "bird"
address = "127.0.0.1"
port = {}
peer_as = 64513
"#,
            bird.port
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &data);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = daemon.flood(stop.clone());
    let onset_seen = Instant::now();
    let routes = bird.wait_routes(Duration::from_secs(20), "no FlowSpec rule for the flood", |r| {
        r.contains("198.51.100.10/32")
    });
    println!(
        "FlowSpec rule in BIRD {:.2} s after the flood began:\n{routes}",
        onset_seen.elapsed().as_secs_f64()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    // The rule is the signature: destination, UDP, port 80, discarded (traffic-rate 0).
    assert!(routes.contains("flow4 { dst 198.51.100.10/32; proto 17; dport 80;"), "{routes}");
    // Traffic-rate (extended community type 0x8006) of 0 bytes/s: discard.
    assert!(routes.contains("(generic, 0x80060000, 0x0)"), "{routes}");
    // The attack ends after 2 quiet seconds, the decision 2 s later: BIRD holds nothing.
    bird.wait_routes(Duration::from_secs(20), "the rule was not withdrawn after the hold", |r| {
        !r.contains("198.51.100.10/32")
    });
    let listed = list(&data, true);
    assert!(!listed.is_empty(), "no decision recorded");
    drop(daemon);
}

/// A peer's rule budget in the running daemon: over it, operators' FlowSpec bans on hosts of
/// the protected /24 are aggregated into wider rules BIRD holds, never across the allowlisted
/// address; what cannot be aggregated is the lowest priority and is dropped. Every route left
/// out is in the audit log and in `/metrics` by peer and reason, as is a guard's refusal.
#[test]
fn over_a_peers_budget_rules_aggregate_safely_and_every_refusal_is_audited_and_counted() {
    let Some(bird) = Bird::start() else { return };
    let dir = tempfile::Builder::new().prefix("rampart-bgp-budget-").tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("rampart.toml");
    let toml = format!(
        "protected = [\"198.51.100.0/24\"]\n\n[mitigation]\ndry_run = false\nallowlist = [\"198.51.100.53\"]\n\n\
         [bgp]\nlocal_as = 64512\nrouter_id = \"192.0.2.1\"\n\n[[bgp.peers]]\nname = \"bird\"\n\
         address = \"127.0.0.1\"\nport = {}\npeer_as = 64513\nrule_budget = 2\n",
        bird.port
    );
    std::fs::write(&config, toml).unwrap();
    let daemon = Daemon::start(&config, &data);
    let ban = |host: &str| {
        let scope = format!("dst 198.51.100.{host}/32, proto 17, src port 53");
        rampart(&["ban", &scope, "--action", "discard", "--duration", "1h", "--reason", "budget test"], &data)
    };
    for host in ["10", "11", "12"] {
        ok(&ban(host));
    }
    // Three rules, a budget of two: .10 and .11 become their /31.
    bird.wait_routes(Duration::from_secs(20), "no aggregate of .10 and .11", |r| {
        r.contains("dst 198.51.100.10/31;") && r.contains("dst 198.51.100.12/32;")
    });
    ok(&ban("60"));
    // .10/31 and .12 become .8/29; .40 can only join them in a /26, which holds .53: dropped.
    ok(&ban("40"));
    let routes = bird.wait_routes(Duration::from_secs(20), "no .8/29 and .60 rules", |r| {
        r.contains("dst 198.51.100.8/29;") && r.contains("dst 198.51.100.60/32;")
    });
    assert!(!routes.contains("198.51.100.40") && !routes.contains("/26"), "{routes}");
    let error = failed(&ban("53"));
    assert!(error.contains("allowlisted"), "{error}");
    // Five decisions in force: a route left out is no decision withdrawn.
    assert_eq!(list(&data, false).len(), 5);

    let count = |metrics: &str, series: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = daemon.scrape();
        let budget = "rampart_bgp_refusals_total{peer=\"bird\",reason=\"budget\"}";
        if count(&metrics, budget) == 1 || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        count(&metrics, "rampart_bgp_refusals_total{peer=\"bird\",reason=\"budget\"}"),
        1,
        "{metrics}"
    );
    // .10 and .11 into the /31, then with .12 into the /29.
    assert!(
        count(&metrics, "rampart_bgp_refusals_total{peer=\"bird\",reason=\"aggregated\"}") >= 3,
        "{metrics}"
    );
    assert_eq!(count(&metrics, "rampart_bgp_refusals_total{peer=\"bird\",reason=\"duplicate\"}"), 0);
    assert_eq!(count(&metrics, "rampart_bgp_routes{peer=\"bird\"}"), 2, "{metrics}");
    assert_eq!(count(&metrics, "rampart_mitigation_refusals_total{guard=\"allowlisted\"}"), 1, "{metrics}");

    // The audit log says which route went where, and why; the chain holds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
        if audit.contains("\"budget\":{\"budget\":2}") || Instant::now() > deadline {
            break audit;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let left_out: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .filter(|r| r["change"]["route_left_out"].is_object())
        .map(|r| r["change"]["route_left_out"].clone())
        .collect();
    let dropped: Vec<&Value> = left_out.iter().filter(|c| c["left_out"]["budget"].is_object()).collect();
    assert_eq!(dropped.len(), 1, "{left_out:?}");
    assert_eq!(dropped[0]["peer"], "bird");
    assert_eq!(dropped[0]["route"], "flowspec dst 198.51.100.40/32 protocol =17 srcport =53");
    assert!(
        left_out.iter().any(|c| c["left_out"]["aggregated"]["into"]
            == "flowspec dst 198.51.100.8/29 protocol =17 srcport =53"),
        "{left_out:?}"
    );
    assert_audit_valid(&data);
    drop(daemon);
    ok(&rampart(&["audit", "verify"], &data));
}
