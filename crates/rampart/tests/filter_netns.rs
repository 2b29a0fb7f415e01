//! End to end in network namespaces this test creates (a veth pair, names with the process
//! id): `rampart filter apply` drops traffic from a banned source and traffic matching a
//! signature, counts it, lets the rest through; after `kill -9` of the process that loaded the
//! XDP program the pinned rules still drop until they expire; the same decisions through the
//! nftables fallback; and the daemon: a generated flood streamed as sFlow into `rampart run`
//! (`[filter]`) becomes a decision whose rule drops the attack's packets in the namespace, and
//! goes after the hold. Needs root, iproute2 and nft (CI runs as root).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

static SEQ: AtomicU32 = AtomicU32::new(0);

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");
const DST: &str = "192.0.2.1";
const BANNED: &str = "198.51.100.7";
const ALLOWED: &str = "198.51.100.8";

fn required() -> bool {
    std::env::var_os("RAMPART_REQUIRE_PEERS").is_some() || std::env::var_os("CI").is_some()
}

/// Whether the test can run here; else skip (or fail where peers are required).
fn usable() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let tools = ["ip", "nft", "bash"].iter().all(|t| {
        Command::new(t).arg("-V").output().is_ok() || Command::new(t).arg("--version").output().is_ok()
    });
    if root && tools {
        return true;
    }
    assert!(!required(), "network namespace tests need root, ip, nft and bash");
    eprintln!("skipping: needs root, ip, nft and bash");
    false
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair: `src` sends from 198.51.100.7 and .8, `dst` holds
/// 192.0.2.1. Removed (with their interfaces) on drop.
struct Pair {
    src: String,
    dst: String,
    /// A bpffs of the test's own, outside /sys (which `ip netns exec` remounts).
    bpf_mount: PathBuf,
    pin_dir: PathBuf,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let pair = Pair {
            src: format!("rp-{tag}-s-{id}"),
            dst: format!("rp-{tag}-d-{id}"),
            bpf_mount: std::env::temp_dir().join(format!("rampart-e2e-bpf-{tag}-{id}")),
            pin_dir: std::env::temp_dir().join(format!("rampart-e2e-bpf-{tag}-{id}")).join("rampart"),
        };
        std::fs::create_dir_all(&pair.bpf_mount).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", pair.bpf_mount.to_str().unwrap()]);
        sh(&["ip", "netns", "add", &pair.src]);
        sh(&["ip", "netns", "add", &pair.dst]);
        sh(&[
            "ip", "-n", &pair.src, "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-d",
            "netns", &pair.dst,
        ]);
        for (ns, dev) in [(&pair.src, "veth-s"), (&pair.dst, "veth-d")] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        sh(&["ip", "-n", &pair.src, "addr", "add", &format!("{BANNED}/24"), "dev", "veth-s"]);
        sh(&["ip", "-n", &pair.src, "addr", "add", &format!("{ALLOWED}/24"), "dev", "veth-s"]);
        sh(&["ip", "-n", &pair.dst, "addr", "add", &format!("{DST}/24"), "dev", "veth-d"]);
        sh(&["ip", "-n", &pair.src, "route", "add", &format!("{DST}/32"), "dev", "veth-s", "src", ALLOWED]);
        sh(&["ip", "-n", &pair.dst, "route", "add", "198.51.100.0/24", "dev", "veth-d"]);
        // The test's own observer table: counts what got past Rampart (XDP runs before it,
        // Rampart's nftables chain at priority -300 too). Rampart must never touch it.
        let observe = json!({ "nftables": [
            { "add": { "table": { "family": "inet", "name": "observe" } } },
            { "add": { "chain": { "family": "inet", "table": "observe", "name": "in", "type": "filter", "hook": "prerouting", "prio": 0, "policy": "accept" } } },
            { "add": { "rule": { "family": "inet", "table": "observe", "chain": "in", "comment": "banned", "expr": [
                { "match": { "op": "==", "left": { "payload": { "protocol": "ip", "field": "saddr" } }, "right": BANNED } }, { "counter": null } ] } } },
            { "add": { "rule": { "family": "inet", "table": "observe", "chain": "in", "comment": "allowed", "expr": [
                { "match": { "op": "==", "left": { "payload": { "protocol": "ip", "field": "saddr" } }, "right": ALLOWED } }, { "counter": null } ] } } },
        ] });
        pair.nft_stdin(&observe.to_string());
        pair
    }

    fn nft_stdin(&self, body: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.dst, "nft", "-j", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// Packets the observer counted from `source` (its rule comment).
    fn observed(&self, which: &str) -> u64 {
        let out = sh(&["ip", "netns", "exec", &self.dst, "nft", "-j", "list", "table", "inet", "observe"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| r["comment"] == which)
            .flat_map(|r| r["expr"].as_array().unwrap().iter())
            .filter_map(|e| e["counter"]["packets"].as_u64())
            .sum()
    }

    /// Sends `count` UDP datagrams from `source` to DST:`port` (bash's /dev/udp; bounded).
    fn send(&self, source: &str, port: u16, count: u32) {
        sh(&[
            "ip",
            "-n",
            &self.src,
            "route",
            "replace",
            &format!("{DST}/32"),
            "dev",
            "veth-s",
            "src",
            source,
        ]);
        let script = format!("for i in $(seq {count}); do echo rampart > /dev/udp/{DST}/{port}; done");
        sh(&["ip", "netns", "exec", &self.src, "timeout", "10", "bash", "-c", &script]);
        // Generic XDP and nftables count synchronously, but let the veth queue drain.
        std::thread::sleep(Duration::from_millis(100));
    }

    fn rampart_in_dst(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["netns", "exec", &self.dst, RAMPART];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).output().unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.src]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.dst]).status();
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = Command::new("umount").arg(&self.bpf_mount).status();
        let _ = std::fs::remove_dir(&self.bpf_mount);
    }
}

/// Kills the spawned holder on drop (also when an assertion fails).
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A ban on BANNED until `expires`, and a signature: UDP to DST port 5353 dropped.
fn decisions_file(dir: &Path, expires: f64) -> PathBuf {
    let now = now_secs();
    let decisions = json!([
        { "id": 1, "scope": { "address": BANNED }, "action": "discard", "origin": { "operator": { "name": "test" } },
          "created": now - 1.0, "expires": expires, "reason": "banned source" },
        { "id": 2, "scope": { "signature": { "src_prefixes": [], "dst_prefixes": [format!("{DST}/32")], "protocol": 17,
            "src_ports": [], "dst_ports": [{ "first": 5353, "last": 5353 }], "tcp_flags": null, "fragment": null,
            "packet_len": null, "sampled_packets": 100, "collateral": null } },
          "action": "discard", "origin": { "operator": { "name": "test" } }, "created": now - 1.0, "expires": now + 120.0,
          "reason": "mdns flood" },
    ]);
    let path = dir.join("decisions.json");
    std::fs::write(&path, decisions.to_string()).unwrap();
    path
}

fn status(pair: &Pair) -> Value {
    let out =
        pair.rampart_in_dst(&["filter", "status", "--pin-dir", pair.pin_dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn dropped_by(status: &Value, decision: u64) -> u64 {
    status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == decision)
        .map(|r| r["dropped_packets"].as_u64().unwrap())
        .sum()
}

#[test]
fn xdp_drops_in_a_namespace_and_keeps_dropping_after_kill_9() {
    if !usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = Pair::new("xdp");
    let file = decisions_file(tmp.path(), now_secs() + 600.0);
    let holder = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.dst,
            RAMPART,
            "filter",
            "apply",
            "--backend",
            "xdp",
            "--interface",
            "veth-d=generic",
        ])
        .args(["--pin-dir", pair.pin_dir.to_str().unwrap(), "--decisions", file.to_str().unwrap(), "--hold"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut holder = Holder(holder);
    // Bounded wait for the holder to attach and write its rules.
    let start = Instant::now();
    loop {
        let out =
            pair.rampart_in_dst(&["filter", "status", "--pin-dir", pair.pin_dir.to_str().unwrap(), "--json"]);
        if out.status.success() {
            let s: Value = serde_json::from_slice(&out.stdout).unwrap();
            if !s["attached"].as_array().unwrap().is_empty() && s["rules"].as_array().unwrap().len() == 2 {
                assert_eq!(s["attached"][0]["interface"], "veth-d");
                assert_eq!(s["attached"][0]["mode"], "generic");
                break;
            }
        }
        assert!(holder.0.try_wait().unwrap().is_none(), "rampart filter apply exited early");
        assert!(start.elapsed() < Duration::from_secs(30), "the XDP filter never came up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The holder re-reads the file each second: shorten the ban to expire soon, and wait
    // (bounded) until the maps say so.
    let expires = now_secs() + 15.0;
    decisions_file(tmp.path(), expires);
    let start = Instant::now();
    while !status(&pair)["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["decision"] == 1 && r["expires_in_secs"].as_u64().is_some_and(|s| s <= 15))
    {
        assert!(start.elapsed() < Duration::from_secs(5), "the holder did not pick up the new expiry");
        std::thread::sleep(Duration::from_millis(100));
    }
    pair.send(BANNED, 9999, 5);
    pair.send(ALLOWED, 9999, 5);
    pair.send(ALLOWED, 5353, 4);
    let s = status(&pair);
    assert_eq!(dropped_by(&s, 1), 5, "{s}");
    assert_eq!(dropped_by(&s, 2), 4, "{s}");
    assert_eq!(pair.observed("banned"), 0);
    assert_eq!(pair.observed("allowed"), 5, "allowed traffic passes");

    // kill -9 the loader: the program stays attached and the pinned rules keep dropping.
    let pid = holder.0.id().to_string();
    sh(&["kill", "-9", &pid]);
    let _ = holder.0.wait();
    pair.send(BANNED, 9999, 3);
    let s = status(&pair);
    assert_eq!(dropped_by(&s, 1), 8, "{s}");
    assert_eq!(pair.observed("banned"), 0);

    // ...until the ban expires, and no longer, with no process left to remove it.
    let wait = expires - now_secs() + 0.5;
    assert!(wait > 0.0, "the test was too slow to see the rule before expiry");
    std::thread::sleep(Duration::from_secs_f64(wait));
    pair.send(BANNED, 9999, 2);
    assert_eq!(pair.observed("banned"), 2, "expired ban no longer drops");
    pair.send(ALLOWED, 5353, 1);
    assert_eq!(pair.observed("allowed"), 5, "the signature (not expired) still drops");

    let out =
        pair.rampart_in_dst(&["filter", "detach", "--pin-dir", pair.pin_dir.to_str().unwrap(), "--purge"]);
    assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("detached from veth-d (generic)"));
    pair.send(ALLOWED, 5353, 1);
    assert_eq!(pair.observed("allowed"), 6, "detached: everything passes");
}

#[test]
fn nftables_fallback_drops_in_a_namespace_and_leaves_other_tables_alone() {
    if !usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = Pair::new("nft");
    let file = decisions_file(tmp.path(), now_secs() + 120.0);
    let observer_before = sh(&["ip", "netns", "exec", &pair.dst, "nft", "list", "table", "inet", "observe"]);
    let out = pair.rampart_in_dst(&[
        "filter",
        "apply",
        "--backend",
        "nftables",
        "--decisions",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("nftables: 1 IPv4 and 0 IPv6 prefixes, 1 signature rules")
    );
    pair.send(BANNED, 9999, 5);
    pair.send(ALLOWED, 9999, 5);
    pair.send(ALLOWED, 5353, 4);
    assert_eq!(pair.observed("banned"), 0);
    assert_eq!(pair.observed("allowed"), 5);
    let listing = sh(&["ip", "netns", "exec", &pair.dst, "nft", "-j", "list", "table", "inet", "rampart"]);
    let v: Value = serde_json::from_str(&listing).unwrap();
    let counted: u64 = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .flat_map(|r| r["expr"].as_array().unwrap().iter())
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum();
    assert_eq!(counted, 9, "{listing}");
    // The observer's rules are as they were (counters aside).
    let strip = |s: &str| s.lines().filter(|l| !l.contains("counter")).collect::<Vec<_>>().join("\n");
    let observer_after = sh(&["ip", "netns", "exec", &pair.dst, "nft", "list", "table", "inet", "observe"]);
    assert_eq!(strip(&observer_before), strip(&observer_after));
    let out =
        pair.rampart_in_dst(&["filter", "detach", "--pin-dir", pair.pin_dir.to_str().unwrap(), "--nftables"]);
    assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
    pair.send(BANNED, 9999, 1);
    assert_eq!(pair.observed("banned"), 1);
}

/// A pcap of a UDP flood to DST port 80 (`pps` packets per second for `secs` seconds) from
/// 203.0.113.0/24, each datagram the 8 bytes bash's `echo rampart` sends, so the signature the
/// engine derives matches the test's own packets.
fn flood_pcap(path: &Path, pps: u32, secs: u32) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65_535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let dst: std::net::Ipv4Addr = DST.parse().unwrap();
    let start = now_secs() as u32;
    for n in 0..pps * secs {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&[0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[203, 0, 113, (n % 250) as u8 + 1]);
        frame.extend_from_slice(&dst.octets());
        frame.extend_from_slice(&(40_000 + (n % 1000) as u16).to_be_bytes());
        frame.extend_from_slice(&80u16.to_be_bytes());
        frame.extend_from_slice(&16u16.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(b"rampart\n");
        let micros = u64::from(n) * 1_000_000 / u64::from(pps);
        for v in [
            start + (micros / 1_000_000) as u32,
            (micros % 1_000_000) as u32,
            frame.len() as u32,
            frame.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap();
}

/// Stops a spawned process with SIGTERM (so `timeout` ends what it runs), on drop too.
struct Terminated(Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// The daemon's decisions (`rampart decisions list --json`), with `--all` closed ones too.
fn decisions(data: &Path, all: bool) -> Vec<Value> {
    let mut args = vec!["decisions", "list", "--json", "--data-dir", data.to_str().unwrap()];
    if all {
        args.push("--all");
    }
    let out = Command::new(RAMPART).args(&args).output().unwrap();
    assert!(out.status.success(), "decisions list: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().cloned().unwrap()
}

/// End to end through the daemon: a flood streamed as sFlow into `rampart run` (in the
/// destination namespace, with `[filter]` on veth-d) becomes a discard decision for the
/// attack's signature; the host filter drops the attack's packets (counted per decision, in
/// `/metrics`, `filter status` and `decisions list`) while other traffic passes; after the
/// attack ends and the hold passes, the rule goes and the same packets pass again.
#[test]
fn the_daemons_decisions_reach_the_host_filter_and_leave_after_the_hold() {
    if !usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = Pair::new("dmn");
    let data = tmp.path().join("data");
    let config = tmp.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"protected = ["192.0.2.0/24"]

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

[filter]
interfaces = ["veth-d=generic"]
pin_dir = "{}"
counters_ms = 200
"#,
            pair.pin_dir.display()
        ),
    )
    .unwrap();
    // Counts what gets past Rampart to the attacked port and to another one.
    let by_port = |port: u16| {
        json!({ "add": { "rule": { "family": "inet", "table": "observe", "chain": "in", "comment": format!("port{port}"), "expr": [
            { "match": { "op": "==", "left": { "payload": { "protocol": "udp", "field": "dport" } }, "right": port } }, { "counter": null } ] } } })
    };
    pair.nft_stdin(&json!({ "nftables": [by_port(80), by_port(9999)] }).to_string());

    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.dst,
            RAMPART,
            "run",
            "--sflow",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_stdout, stderr) = support::line_channels(&mut child);
    let daemon = Holder(child);
    let (mut sflow, mut metrics, mut backend) = (None, None, None);
    while sflow.is_none() || metrics.is_none() || backend.is_none() {
        let line = stderr.recv_timeout(Duration::from_secs(30)).expect("daemon startup lines");
        if let Some(addr) = line.strip_prefix("listening for sFlow on ") {
            sflow = Some(addr.to_owned());
        } else if let Some(url) = line.strip_prefix("metrics on http://") {
            metrics = Some(url.trim_end_matches("/metrics").to_owned());
        } else if let Some(b) = line.strip_prefix("filter: decisions enforced by ") {
            backend = Some(b.to_owned());
        }
    }
    let (sflow, metrics, backend) = (sflow.unwrap(), metrics.unwrap(), backend.unwrap());
    let xdp = cfg!(feature = "xdp");
    assert_eq!(backend, if xdp { "xdp" } else { "nftables" }, "built with xdp: {xdp}");

    // The attacker: UDP to DST:80 from BANNED, about a packet a millisecond, bounded in count
    // and time.
    sh(&["ip", "-n", &pair.src, "route", "replace", &format!("{DST}/32"), "dev", "veth-s", "src", BANNED]);
    let attacker = Command::new("ip")
        .args(["netns", "exec", &pair.src, "timeout", "40", "bash", "-c"])
        .arg(format!(
            "exec 9<> <(:); for i in $(seq 30000); do echo rampart > /dev/udp/{DST}/80; read -t 0.001 -u 9; done"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let attacker = Terminated(attacker);

    // The telemetry of the flood: 6,000 packets/s for 8 s, sampled 1 in 100, as sFlow.
    let pcap = tmp.path().join("flood.pcap");
    flood_pcap(&pcap, 6_000, 8);
    let replay = Command::new("ip")
        .args(["netns", "exec", &pair.dst, RAMPART, "replay"])
        .arg(&pcap)
        .args(["--sflow", &sflow, "--sample", "100", "--max-seconds", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let replay = Terminated(replay);

    // The decision, and the first packet its rule drops.
    let pin = pair.pin_dir.to_str().unwrap().to_owned();
    let dropped_by_rules = |id: u64| -> u64 {
        if xdp {
            let out = Command::new(RAMPART)
                .args(["filter", "status", "--pin-dir", &pin, "--json"])
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&out.stdout).map_or(0, |s| dropped_by(&s, id))
        } else {
            let out =
                sh(&["ip", "netns", "exec", &pair.dst, "nft", "-j", "list", "table", "inet", "rampart"]);
            let v: Value = serde_json::from_str(&out).unwrap();
            v["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i.get("rule"))
                .flat_map(|r| r["expr"].as_array().unwrap().iter())
                .filter_map(|e| e["counter"]["packets"].as_u64())
                .sum()
        }
    };
    let start = Instant::now();
    let decision = loop {
        if let Some(d) = decisions(&data, false).into_iter().next() {
            break d;
        }
        assert!(start.elapsed() < Duration::from_secs(25), "no decision for the flood");
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = decision["decision"]["id"].as_u64().unwrap();
    let created = decision["decision"]["created"].as_f64().unwrap();
    assert_eq!(decision["decision"]["action"], "discard", "{decision}");
    assert_eq!(
        decision["decision"]["scope"]["signature"]["dst_prefixes"][0],
        format!("{DST}/32"),
        "{decision}"
    );
    let first_drop = loop {
        if dropped_by_rules(id) > 0 {
            break now_secs();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the decision's rule never dropped a packet");
        std::thread::sleep(Duration::from_millis(2));
    };
    println!(
        "decision {id} → first dropped packet seen {:.1} ms after the decision was made ({backend})",
        (first_drop - created) * 1e3
    );

    // While it holds: the attacked port gets nothing, other traffic passes.
    let before = pair.observed("port80");
    pair.send(BANNED, 9999, 5);
    assert_eq!(pair.observed("port9999"), 5, "other traffic passes");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pair.observed("port80"), before, "the attack's packets are dropped");
    if xdp {
        // /metrics (inside the namespace, through bash's /dev/tcp) shows the rule's counters.
        let (host, port) = metrics.rsplit_once(':').unwrap();
        let scrape = sh(&[
            "ip",
            "netns",
            "exec",
            &pair.dst,
            "timeout",
            "10",
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{host}/{port}; printf 'GET /metrics HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3"
            ),
        ]);
        assert!(scrape.contains("rampart_filter_backend{backend=\"xdp\"} 1"), "{scrape}");
        let counted = scrape
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("rampart_filter_rule_dropped_packets_total{{decision=\"{id}\"}} "))
            })
            .and_then(|v| v.parse::<u64>().ok());
        assert!(counted.is_some_and(|n| n > 0), "{scrape}");
    }

    // The flood ends, 2 quiet seconds end the attack, the hold (2 s) ends the decision, and
    // its rule goes: the attacker's packets pass again.
    drop(replay);
    let start = Instant::now();
    while !decisions(&data, false).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "the decision was not withdrawn after the hold");
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    let passing = loop {
        let before = pair.observed("port80");
        std::thread::sleep(Duration::from_millis(200));
        if pair.observed("port80") > before {
            break true;
        }
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
    };
    assert!(passing, "the attack's port still drops after the withdrawal");
    drop(attacker);
    if xdp {
        let s = status(&pair);
        assert!(s["rules"].as_array().unwrap().is_empty(), "{s}");
    }
    // What the rule dropped outlives it, in the decision's record.
    let closed = decisions(&data, true);
    let record = closed.iter().find(|d| d["decision"]["id"] == id).unwrap();
    if xdp {
        assert!(record["dropped_packets"].as_u64().is_some_and(|n| n > 0), "{record}");
    }
    drop(daemon);
}
