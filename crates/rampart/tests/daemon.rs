//! End-to-end tests of `rampart run` and `rampart attacks`: a real daemon on loopback ports,
//! fed a generated sFlow UDP flood; its stdout, its store (across a `kill -9`) and its metrics
//! endpoint are checked. Correctness only: the onset delay is printed, never asserted.
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const TARGET: [u8; 4] = [198, 51, 100, 10];
/// Every sampled packet stands for this many.
const SAMPLING: u32 = 100;

const CONFIG: &str = r#"
protected = ["198.51.100.0/24"]

[thresholds]
pps = 4000
udp_pps = 2000

[lifecycle]
onset_secs = 1
quiet_secs = 3

[inputs]
advance_ms = 100
"#;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

struct Daemon {
    child: Child,
    /// (line, Unix time it was read).
    stdout: Receiver<(String, f64)>,
    sflow: SocketAddr,
    metrics: SocketAddr,
}

impl Daemon {
    fn start(config: &Path, data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart run");
        let (out_tx, stdout) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send((line, unix_now()));
            }
        });
        let (err_tx, stderr) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("daemon: {line}");
                let _ = err_tx.send(line);
            }
        });
        let (mut sflow, mut metrics) = (None, None);
        while sflow.is_none() || metrics.is_none() {
            let line = stderr.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
            if let Some(addr) = line.strip_prefix("listening for sFlow on ") {
                sflow = addr.parse().ok();
            } else if let Some(url) = line.strip_prefix("metrics on http://") {
                metrics = url.trim_end_matches("/metrics").parse().ok();
            }
        }
        Daemon { child, stdout, sflow: sflow.unwrap(), metrics: metrics.unwrap() }
    }

    /// Sends the flood (50 samples a second × SAMPLING = 5000 UDP pps to TARGET) until an event
    /// of `kind` appears on stdout or 15 s pass; returns it, when it was read, and when the
    /// flood started.
    fn flood_until(&self, kind: &str) -> (Value, f64, f64) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Start on a whole second, so the first second of flood is a full one.
        let now = unix_now();
        std::thread::sleep(Duration::from_secs_f64(now.ceil() - now));
        let started = unix_now();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut sequence = 1;
        while Instant::now() < deadline {
            // 5 samples every 100 ms.
            let datagram = sflow_datagram(sequence, 5);
            sequence += 1;
            socket.send_to(&datagram, self.sflow).unwrap();
            let until = Instant::now() + Duration::from_millis(100);
            while let Ok((line, at)) =
                self.stdout.recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                let event: Value = serde_json::from_str(&line).expect("stdout lines are JSON");
                if event["event"] == kind {
                    return (event, at, started);
                }
            }
        }
        panic!("no {kind} event within 15 s");
    }

    /// Waits (without traffic) for an event of `kind`.
    fn wait_for(&self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (line, _) = self
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
        let mut stream = TcpStream::connect(self.metrics).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server keeps connections alive unless asked not to.
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sFlow v5 datagram of `samples` flow samples, each a raw Ethernet/IPv4/UDP header of a
/// 200-byte packet from a varying source to TARGET:80.
fn sflow_datagram(sequence: u32, samples: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
    put(&mut out, 5);
    put(&mut out, 1);
    out.extend_from_slice(&[192, 0, 2, 1]);
    put(&mut out, 0);
    put(&mut out, sequence);
    put(&mut out, sequence * 100); // uptime ms
    put(&mut out, samples);
    for i in 0..samples {
        let sample_sequence = (sequence - 1) * samples + i + 1;
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        let ip_len: u16 = 200;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&ip_len.to_be_bytes());
        frame.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[203, 0, 113, (sample_sequence % 250) as u8 + 1]);
        frame.extend_from_slice(&TARGET);
        frame.extend_from_slice(&(40_000 + (sample_sequence % 1000) as u16).to_be_bytes());
        frame.extend_from_slice(&80u16.to_be_bytes());
        frame.extend_from_slice(&(ip_len - 20).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.resize(64, 0); // captured header, a multiple of 4
        let record_len = 16 + frame.len() as u32;
        put(&mut out, 1); // flow sample
        put(&mut out, 32 + 8 + record_len);
        put(&mut out, sample_sequence);
        put(&mut out, 1); // source id
        put(&mut out, SAMPLING);
        put(&mut out, sample_sequence * SAMPLING); // sample pool
        put(&mut out, 0); // drops
        put(&mut out, 1); // input
        put(&mut out, 2); // output
        put(&mut out, 1); // one record
        put(&mut out, 1); // raw packet header
        put(&mut out, record_len);
        put(&mut out, 1); // Ethernet
        put(&mut out, u32::from(ip_len) + 14 + 4); // frame length with FCS
        put(&mut out, 4); // stripped
        put(&mut out, frame.len() as u32);
        out.extend_from_slice(&frame);
    }
    out
}

/// A local HTTP server that answers 503 to the first `failures` requests, then 200; sends each
/// accepted (200) request body on the channel.
fn webhook_server(failures: usize) -> (String, Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if n < failures { "503 Service Unavailable" } else { "200 OK" };
            let _ = stream.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            if n >= failures {
                let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            }
        }
    });
    (url, rx)
}

/// A fresh directory under a temporary one that is removed when the guard drops
/// (`tempfile`); the directory itself exists.
fn temp_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::Builder::new().prefix("rampart-daemon-").tempdir().unwrap();
    let dir = scratch.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    (scratch, dir)
}

fn attacks_list(data_dir: &Path) -> Vec<Value> {
    let output =
        Command::new(BIN).args(["attacks", "list", "--json", "--data-dir"]).arg(data_dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().cloned().unwrap();
    listed.iter().for_each(|attack| support::assert_valid("stored-attack", attack));
    listed
}

fn assert_udp_flood_onset(event: &Value) {
    assert_eq!(event["event"], "onset");
    assert_eq!(event["attack"]["target"]["host"], "198.51.100.10");
    support::assert_valid("event", event);
    let vectors = event["attack"]["vectors"].as_array().unwrap();
    assert!(vectors.iter().any(|v| v == "udp_flood"), "{event}");
    // The onset already says what to filter: the flood's protocol and destination port, from
    // its first second over the threshold.
    let signature = &event["attack"]["signature"];
    assert_eq!(signature["protocol"], 17, "{event}");
    assert_eq!(signature["dst_ports"], serde_json::json!([{"first": 80, "last": 80}]), "{event}");
    assert!(signature["sampled_packets"].as_u64().unwrap() > 0, "{event}");
    assert!(event["attack"]["distinct_sources"].as_u64().unwrap() > 0, "{event}");
}

#[test]
fn detects_stores_survives_kill_9_and_shuts_down_cleanly() {
    let (_scratch, dir) = temp_dir("e2e");
    let config = dir.join("rampart.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.join("data");

    // Run 1: onset on stdout, in the store, in the metrics, at the webhook; then kill -9.
    let (webhook_url, webhook_bodies) = webhook_server(1);
    let daemon = Daemon::start(&config, &data, &["--webhook", &webhook_url]);
    let (onset, seen_at, started) = daemon.flood_until("onset");
    assert_udp_flood_onset(&onset);
    assert_eq!(onset["attack"]["id"], 1);
    // The flood starts on a whole second: that second is the first full second over threshold.
    let first_full_second_end = started.floor() + 1.0;
    let since = onset["attack"]["trigger"]["since"].as_f64().unwrap();
    println!(
        "onset delay: {:.3} s after the end of the first full second over threshold \
         (flood started {started:.3}, trigger.since {since}, onset line read {seen_at:.3})",
        seen_at - first_full_second_end,
    );
    let listed = attacks_list(&data);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], 1);
    assert_eq!(listed[0]["status"], "ongoing");
    assert_eq!(listed[0]["attack"]["target"]["host"], "198.51.100.10");
    let metrics = daemon.scrape();
    assert!(metrics.contains("\nrampart_active_attacks 1\n"), "{metrics}");
    assert!(metrics.contains("\nrampart_attacks_total{vector=\"udp_flood\"} 1\n"), "{metrics}");
    assert!(metrics.contains("rampart_collector_datagrams_total{collector=\"sflow\""), "{metrics}");
    assert!(
        metrics.contains("rampart_traffic_packets_per_second{scope=\"all\",direction=\"inbound\"}"),
        "{metrics}"
    );
    // The webhook answered 503 once: the onset arrives on the retry, with the store id.
    let posted: Value =
        serde_json::from_str(&webhook_bodies.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(posted["event"], "onset");
    assert_eq!(posted["attack"]["id"], 1);
    drop(daemon); // SIGKILL

    // Run 2: the attack is still there (interrupted); a new attack gets a new id; SIGTERM ends
    // it cleanly and the end is stored.
    let (webhook_url, webhook_bodies) = webhook_server(0);
    let daemon = Daemon::start(&config, &data, &["--webhook", &webhook_url]);
    let listed = attacks_list(&data);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "interrupted");
    let (onset, _, _) = daemon.flood_until("onset");
    assert_udp_flood_onset(&onset);
    assert_eq!(onset["attack"]["id"], 2, "store ids stay unique across restarts");
    daemon.signal("TERM");
    let end = daemon.wait_for("end", Duration::from_secs(10));
    assert_eq!(end["attack"]["id"], 2);
    let mut daemon = daemon;
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // The learned baselines were saved for the next start (a SIGKILL keeps the last periodic save).
    let baselines = std::fs::read(data.join("baselines.bin")).unwrap();
    assert!(baselines.starts_with(b"RBSL"), "{:?}", &baselines[..baselines.len().min(8)]);
    // The end event was delivered to the webhook before the daemon exited.
    let posted: Vec<Value> = webhook_bodies.try_iter().map(|b| serde_json::from_str(&b).unwrap()).collect();
    assert_eq!(
        posted.last().map(|p| (p["event"].clone(), p["attack"]["id"].clone())),
        Some(("end".into(), 2.into()))
    );
    let listed = attacks_list(&data);
    assert_eq!(
        listed.iter().map(|a| a["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["interrupted", "ended"]
    );
    let show =
        Command::new(BIN).args(["attacks", "show", "2", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(show.status.success());
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    support::assert_valid("attack-detail", &show);
    let kinds: Vec<&str> =
        show["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"onset"));
    assert_eq!(kinds.last(), Some(&"end"));
}

fn run_fails(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn startup_errors_are_one_clear_line() {
    let (_scratch, dir) = temp_dir("errors");
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[thresholds]\nudp_pps = 1\n\n[outputs]\nwebhok = \"x\"\n").unwrap();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let error = run_fails(&["run", "--config", config.to_str().unwrap(), "--data-dir", data]);
    assert!(error.contains("bad.toml:5:") && error.contains("webhok"), "{error}");

    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let error = run_fails(&["run", "--sflow", &port, "--metrics", "off", "--data-dir", data]);
    assert!(error.contains("already in use"), "{error}");

    let error = run_fails(&["run", "--sflow", "127.0.0.1:0", "--data-dir", "/proc/rampart"]);
    assert!(error.contains("cannot use data directory /proc/rampart"), "{error}");

    let error = run_fails(&["attacks", "list", "--data-dir", dir.join("none").to_str().unwrap()]);
    assert!(error.contains("no attack store"), "{error}");
}
