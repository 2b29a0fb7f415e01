//! `rampart analyze` end to end: generated captures in, attacks out.

mod support;

use std::path::PathBuf;
use std::process::Command;

use rampart_trafficgen::{GenParams, Scenario, generate_to_file};
use serde_json::Value;

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");

fn capture(name: &str, scenario: Scenario, params: &GenParams) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-analyze-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    generate_to_file(scenario, params, &path).unwrap();
    path
}

fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(RAMPART).arg("analyze").args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn json_lists_the_attacks_of_a_mixed_capture() {
    let params =
        GenParams { background_pps: 300, attack_pps: 1500, ..GenParams::for_scenario(Scenario::Mixed) };
    let path = capture("mixed.pcap", Scenario::Mixed, &params);
    let (ok, stdout, stderr) = analyze(&[
        path.to_str().unwrap(),
        "--json",
        "--protect",
        "198.51.100.0/24",
        "--protect",
        "2001:db8:100::/48",
        "--threshold-pps",
        "500",
        "--prefix-threshold-pps",
        "1000",
    ]);
    assert!(ok, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    support::assert_valid("analyze", &json);
    let object = json.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["attacks", "schema_version"]);
    let attacks = json["attacks"].as_array().unwrap();
    let targets: Vec<String> = attacks.iter().map(support::target).collect();
    for want in ["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.0/24", "2001:db8:100::10"] {
        assert!(targets.iter().any(|t| t == want), "{want} missing from {targets:?}");
    }
    for a in attacks {
        for field in
            ["target", "vectors", "start", "end", "peak_pps", "peak_bps", "packets", "bytes", "signature"]
        {
            assert!(a.get(field).is_some(), "{field} missing in {a}");
        }
        assert!(a["end"].as_f64().unwrap() >= a["start"].as_f64().unwrap());
        assert!(a["packets"].as_u64().unwrap() > 0);
        assert!(!a["vectors"].as_array().unwrap().is_empty());
    }
    let carpet = attacks.iter().find(|a| support::target(a) == "198.51.100.0/24").unwrap();
    assert!(carpet["vectors"].as_array().unwrap().iter().any(|v| v == "carpet_bombing"));
    let syn = attacks.iter().find(|a| support::target(a) == "198.51.100.10").unwrap();
    assert_eq!(syn["vectors"], serde_json::json!(["syn_flood"]));
    assert_eq!(syn["signature"]["protocol"], 6);

    // The readable report names every attack too.
    let (ok, stdout, _) =
        analyze(&[path.to_str().unwrap(), "--threshold-pps", "500", "--prefix-threshold-pps", "1000"]);
    assert!(ok);
    assert!(stdout.contains("attack 1: 198.51.100.10 (syn_flood)"), "{stdout}");
    assert!(stdout.contains("signature    dst 198.51.100.10/32, proto 6, tcp flags 0x02"), "{stdout}");
}

#[test]
fn benign_capture_has_no_attacks_and_errors_are_one_line() {
    let path = capture("benign.pcap", Scenario::BenignWeb, &GenParams::default());
    let (ok, stdout, stderr) = analyze(&[path.to_str().unwrap(), "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), r#"{"schema_version":1,"attacks":[]}"#);

    let (ok, _, stderr) = analyze(&["/nonexistent/x.pcap"]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot open capture /nonexistent/x.pcap"), "{stderr}");

    let bad = path.with_file_name("bad.toml");
    std::fs::write(&bad, "[thresholds]\npps = 0\n").unwrap();
    let (ok, _, stderr) = analyze(&[path.to_str().unwrap(), "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("bad.toml:2:7: `thresholds.pps`: must be at least 1"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (ok, _, stderr) = analyze(&[path.to_str().unwrap(), "--protect", "10.0.0.0/99"]);
    assert!(!ok);
    assert!(stderr.contains("--protect 10.0.0.0/99"), "{stderr}");
}

#[test]
fn example_config_runs() {
    let path = capture("syn.pcap", Scenario::SynFlood, &GenParams::default());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/rampart.example.toml");
    let (ok, stdout, stderr) = analyze(&[path.to_str().unwrap(), "--config", config, "--json"]);
    assert!(ok, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let attacks = json["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 1, "{json}");
    assert_eq!(support::target(&attacks[0]), "198.51.100.10");
    assert_eq!(attacks[0]["vectors"], serde_json::json!(["syn_flood"]));
}

#[test]
fn html_report_has_a_chart_and_signature_per_attack() {
    let params = GenParams { background_pps: 300, attack_pps: 3000, ..GenParams::default() };
    let path = capture("syn-html.pcap", Scenario::SynFlood, &params);
    let report = path.with_extension("html");
    let (ok, _, stderr) =
        analyze(&[path.to_str().unwrap(), "--threshold-pps", "1000", "--html", report.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("Attack 1 on 198.51.100.10: syn_flood"), "{html}");
    assert_eq!(html.matches("<svg").count(), 2, "a pps and a Mbps chart for the one attack");
    assert!(html.contains("Mitigation signature"));
    // Self-contained: nothing fetched from anywhere.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));

    let (ok, _, stderr) = analyze(&["-", "--html", report.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--html"), "{stderr}");
}

#[test]
fn learned_baselines_from_the_daemon_judge_a_capture() {
    use rampart_detect::{DetectConfig, Engine};
    use rampart_telemetry::{TrafficRecord, UnixNanos};

    // A SYN flood at 3 kpps: far under the default static thresholds (20 kpps, 10 kpps SYN).
    let params =
        GenParams { background_pps: 300, attack_pps: 3000, ..GenParams::for_scenario(Scenario::SynFlood) };
    let path = capture("syn-baseline.pcap", Scenario::SynFlood, &params);
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(path.with_extension("pcap.truth.json")).unwrap())
            .unwrap();
    support::assert_valid("truth", &truth);
    let first = truth["capture"]["first_packet"].as_f64().unwrap() as u64;
    let target = truth["attacks"][0]["target"].as_str().unwrap().to_owned();
    let args = [path.to_str().unwrap(), "--json", "--protect", "198.51.100.0/24"];
    let (ok, stdout, stderr) = analyze(&args);
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["attacks"], serde_json::json!([]));

    // What the daemon would have learned: the target normally gets 200 pps, for two hours.
    let config = DetectConfig::from_toml_str("protected = [\"198.51.100.0/24\"]", "t.toml").unwrap();
    let mut engine = Engine::new(config);
    for s in first - 7200..first - 1 {
        let record = TrafficRecord {
            start: UnixNanos::from_secs(s),
            end: UnixNanos::from_secs(s),
            src: "203.0.113.9".parse().unwrap(),
            dst: target.parse().unwrap(),
            protocol: 6,
            tcp_flags: 0x18,
            packets: 200,
            bytes: 200 * 800,
            ..TrafficRecord::EMPTY
        };
        engine.advance(record.start);
        engine.observe(&record);
    }
    engine.advance(UnixNanos::from_secs(first - 1));
    let baselines = path.with_extension("baselines.bin");
    std::fs::write(&baselines, engine.baseline_snapshot()).unwrap();

    let mut with_baseline = args.to_vec();
    with_baseline.extend(["--baseline", baselines.to_str().unwrap()]);
    let (ok, stdout, stderr) = analyze(&with_baseline);
    assert!(ok, "{stderr}");
    let attacks = serde_json::from_str::<Value>(&stdout).unwrap()["attacks"].as_array().unwrap().clone();
    assert_eq!(attacks.len(), 1, "{attacks:#?}");
    assert_eq!(support::target(&attacks[0]), target);
    assert_eq!(attacks[0]["vectors"], serde_json::json!(["syn_flood"]));
    assert_eq!(
        (&attacks[0]["trigger"]["level"], &attacks[0]["trigger"]["metric"]),
        (&"host".into(), &"pps".into())
    );
    let normal = attacks[0]["trigger"]["baseline"].as_f64().unwrap();
    assert!((150.0..250.0).contains(&normal), "{normal}");

    // A file that is not a snapshot: one clear line, non-zero exit.
    std::fs::write(&baselines, b"garbage").unwrap();
    let (ok, _, stderr) = analyze(&with_baseline);
    assert!(!ok);
    assert!(stderr.contains("not a usable baseline snapshot"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn devices_and_fifos_are_refused_where_a_file_is_expected() {
    let path = capture(
        "refuse.pcap",
        Scenario::BenignWeb,
        &GenParams { duration_secs: 1.0, ..GenParams::default() },
    );
    let fifo = path.with_file_name("refuse.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (flag, file) in
        [("--config", "/dev/zero"), ("--baseline", "/dev/zero"), ("--config", fifo.to_str().unwrap())]
    {
        let started = std::time::Instant::now();
        let (ok, _, stderr) = analyze(&[path.to_str().unwrap(), flag, file]);
        assert!(!ok, "{flag} {file}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{flag} {file} took {:?}",
            started.elapsed()
        );
        assert!(stderr.contains("not a regular file") && stderr.contains(file), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let _ = std::fs::remove_file(&fifo);
}
