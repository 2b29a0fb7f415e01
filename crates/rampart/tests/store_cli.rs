//! `rampart attacks list` paging and streaming, and what `rampart run` says at start about the
//! store it opens: interrupted attacks named, loose permissions tightened. Stores are written
//! with `rampart_store` directly; the daemon listens on 127.0.0.1 only.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use rampart_store::{EventKind, NewEvent, Store};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
/// 2025-12-01 20:00:00 UTC, Unix nanoseconds.
const T0: u64 = 1_764_619_200_000_000_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-store-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn attack(engine_id: u64, target: &str) -> Value {
    json!({"id": engine_id, "target": target, "direction": "inbound", "vectors": ["udp_flood"],
           "start": 1_764_619_200.0, "peak_pps": 5000, "peak_bps": 40_000_000})
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

fn json_ids(dir: &Path, args: &[&str]) -> Vec<u64> {
    let (stdout, _) = list(dir, &[&["--json"], args].concat());
    let array: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    array.iter().map(|a| a["id"].as_u64().unwrap()).collect()
}

#[test]
fn list_pages_limits_and_streams() {
    let dir = temp_dir("list");
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
    // The JSON is the shape it always was: an array of stored attacks, pretty-printed.
    let (stdout, _) = list(&dir, &["--json", "--limit", "2"]);
    let array: Value = serde_json::from_str(&stdout).unwrap();
    assert!(stdout.starts_with("[\n  {\n    \"id\": 119,\n    \"run\": 1,\n"), "{stdout}");
    assert!(stdout.ends_with("\n  }\n]\n"), "{stdout}");
    assert_eq!(array[0]["status"], "ended");
    assert_eq!(array[0]["attack"]["target"], "198.51.100.119");
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_names_interrupted_attacks_and_tightens_permissions() {
    let dir = temp_dir("restart");
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
            == "rampart: attack 1 on 198.51.100.10 (since 2025-12-01 20:00:00 UTC) was interrupted by the previous stop"),
        "{text}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("rampart: warning: data directory") && l.contains("0755")),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let store = dir.join(rampart_store::FILE_NAME);
    assert_eq!(std::fs::metadata(store).unwrap().permissions().mode() & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}
