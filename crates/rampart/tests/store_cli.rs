//! `rampart attacks list` paging and streaming, and what `rampart run` says at start about the
//! store it opens: interrupted attacks named, loose permissions tightened. Stores are written
//! with `rampart_store` directly; the daemon listens on 127.0.0.1 only. Every JSON document
//! printed is validated against its published schema (`docs/schema/`).
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use rampart_contract::{
    Attack, AttackId, Direction, EventKind, EventTime, Level, Metric, Signature, Target, Trigger, Vector,
};
use rampart_store::{NewEvent, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
/// 2025-12-01 20:00:00 UTC, Unix nanoseconds.
const T0: u64 = 1_764_619_200_000_000_000;

/// A fresh directory under a temporary one that is removed when the guard drops
/// (`tempfile`); the directory itself does not exist yet.
fn temp_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::Builder::new().prefix("rampart-store-cli-").tempdir().unwrap();
    let dir = scratch.path().join(name);
    (scratch, dir)
}

/// A UDP flood on host `target` that started at T0.
fn attack(engine_id: u64, target: &str) -> Attack {
    let host: IpAddr = target.parse().unwrap();
    let trigger = Trigger::new(Level::Host, Metric::Pps, 5000, 1000, EventTime::from_unix_nanos(T0));
    let mut a = Attack::new(AttackId(engine_id), Target::Host(host), Direction::Inbound, trigger);
    a.vectors = vec![Vector::UdpFlood];
    (a.peak_pps, a.peak_bps) = (5000, 40_000_000);
    a.signature = Signature { dst_prefixes: vec![host.into()], protocol: Some(17), ..Signature::default() };
    a
}

/// `count` attacks, one a second from T0, each an onset and an end.
fn fill(dir: &Path, count: u64) {
    let mut store = Store::open(dir).unwrap();
    for n in 1..=count {
        let a = attack(n, &format!("198.51.100.{}", n % 250));
        store
            .record(
                &[
                    NewEvent { kind: EventKind::Onset, attack: a.clone() },
                    NewEvent { kind: EventKind::End, attack: a },
                ],
                T0 + n * 1_000_000_000,
            )
            .unwrap();
    }
}

fn list(dir: &Path, args: &[&str]) -> (String, String) {
    let output =
        Command::new(BIN).args(["attacks", "list", "--data-dir"]).arg(dir).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// The ids `attacks list --json` prints; every element validated against its schema.
fn json_ids(dir: &Path, args: &[&str]) -> Vec<u64> {
    let (stdout, _) = list(dir, &[&["--json"], args].concat());
    let array: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    array.iter().for_each(|a| support::assert_valid("stored-attack", a));
    array.iter().map(|a| a["id"].as_u64().unwrap()).collect()
}

fn show(dir: &Path, args: &[&str]) -> String {
    let output =
        Command::new(BIN).args(["attacks", "show"]).args(args).arg("--data-dir").arg(dir).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn list_pages_limits_and_streams() {
    let (_scratch, dir) = temp_dir("list");
    fill(&dir, 120);
    // Default: the latest 50, oldest first, and a hint for the rest on stderr.
    let (stdout, stderr) = list(&dir, &[]);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 51, "{stdout}");
    assert!(rows[0].contains("status") && rows[1].trim_start().starts_with("71 "), "{stdout}");
    assert!(rows[50].trim_start().starts_with("120 "), "{stdout}");
    assert!(stderr.contains("--before 71"), "{stderr}");
    assert_eq!(json_ids(&dir, &[]), (71..=120).collect::<Vec<_>>());
    assert_eq!(json_ids(&dir, &["--limit", "3"]), [118, 119, 120]);
    assert_eq!(json_ids(&dir, &["--limit", "3", "--before", "118"]), [115, 116, 117]);
    assert_eq!(json_ids(&dir, &["--all"]), (1..=120).collect::<Vec<_>>());
    assert_eq!(json_ids(&dir, &["--all", "--before", "3"]), [1, 2]);
    // Attack n was first recorded at T0 + n s.
    assert_eq!(json_ids(&dir, &["--since", "2025-12-01T20:01:50"]), (110..=120).collect::<Vec<_>>());
    assert_eq!(json_ids(&dir, &["--since", "1764619310", "--limit", "2"]), [119, 120]);
    assert_eq!(json_ids(&dir, &["--since", "1h"]), Vec::<u64>::new());
    assert_eq!(list(&dir, &["--json", "--since", "1h"]).0, "[]\n");
    let (stdout, _) = list(&dir, &["--since", "1h"]);
    assert!(stdout.contains("none of the 120 attacks"), "{stdout}");
    // An array of stored attacks, pretty-printed, each with its schema version first.
    let (stdout, _) = list(&dir, &["--json", "--limit", "2"]);
    let array: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        stdout.starts_with("[\n  {\n    \"schema_version\": 1,\n    \"id\": 119,\n    \"run\": 1,\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("\n  }\n]\n"), "{stdout}");
    assert_eq!(array[0]["status"], "ended");
    assert_eq!(array[0]["attack"]["target"]["host"], "198.51.100.119");
    assert_eq!(array[0]["attack"]["start"], 1_764_619_200.0, "JSON keeps machine time");
    assert_eq!(array[0]["first_recorded"], T0 + 119 * 1_000_000_000);
    // The table: typed values, UTC dates.
    let (stdout, _) = list(&dir, &["--limit", "1"]);
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["120", "ended", "198.51.100.120", "udp_flood", "2025-12-01T20:00:00Z", "5000", "40000000"],
        "{stdout}"
    );
    let error =
        Command::new(BIN).args(["attacks", "list", "--all", "--limit", "3", "--data-dir"]).arg(&dir).output();
    assert!(!error.unwrap().status.success(), "--all and --limit conflict");
    // A reader that stops early is not an error.
    let mut child = Command::new(BIN)
        .args(["attacks", "list", "--all", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn show_prints_explanation_signature_and_utc_event_times() {
    let (_scratch, dir) = temp_dir("show");
    fill(&dir, 3);
    let text = show(&dir, &["2"]);
    assert!(
        text.contains("\ninbound pps 5000 > threshold 1000 for host since 2025-12-01T20:00:00Z (1 consecutive second needed)\n"),
        "{text}"
    );
    assert!(text.contains("\nsignature: dst 198.51.100.2/32, proto 17\n"), "{text}");
    let events: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| *l != "events:")
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        events,
        [
            ["#3", "onset", "2025-12-01T20:00:02Z", "peak", "5000", "pps"],
            ["#4", "end", "2025-12-01T20:00:02Z", "peak", "5000", "pps"]
        ],
        "{text}"
    );
    let json: Value = serde_json::from_str(&show(&dir, &["2", "--json"])).unwrap();
    support::assert_valid("attack-detail", &json);
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["attack"]["id"], 2);
    assert_eq!(json["attack"]["attack"]["id"], 2, "the store id, not the engine's");
    let kinds: Vec<&Value> = json["events"].as_array().unwrap().iter().map(|e| &e["kind"]).collect();
    assert_eq!(kinds, ["onset", "end"]);
    assert_eq!(json["events"][0]["recorded"], T0 + 2_000_000_000);
}

#[test]
fn run_names_interrupted_attacks_and_tightens_permissions() {
    let (_scratch, dir) = temp_dir("restart");
    {
        let mut store = Store::open(&dir).unwrap();
        let a = attack(1, "198.51.100.10");
        store.record(&[NewEvent { kind: EventKind::Onset, attack: a }], T0).unwrap();
        // Dropped ongoing: as if the daemon was killed.
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "off", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("listening for")) && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        seen.iter().any(|l| l
            == "rampart: attack 1 on 198.51.100.10 (since 2025-12-01T20:00:00Z) was interrupted by the previous stop"),
        "{text}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("rampart: warning: data directory") && l.contains("0755")),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let store = dir.join(rampart_store::FILE_NAME);
    assert_eq!(std::fs::metadata(store).unwrap().permissions().mode() & 0o777, 0o600);
}
