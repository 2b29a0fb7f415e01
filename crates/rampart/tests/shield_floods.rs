//! Issue 12 §5 on loopback: `rampart shield` with its automatic flood defense and nothing
//! written for the floods, in front of the flood harness's origin, while legitimate browsers
//! (each its own 127.10.x.y, Firefox and Chrome header sets, cookies, assets, logins) browse.
//! For each of the four floods, after a short warm-up: at least 99 % of legitimate requests
//! succeed, at most 0.1 % are challenged or refused, a rule the shield made by itself refuses,
//! challenges or throttles the flood (mitigated within a generous 15 s: the 5 s goal is
//! bench/shield-flood.sh's), and the origin's concurrency stays under its limit.
//!
//! The four floods run one after the other in one test (they would share two cores otherwise),
//! each against a fresh shield; about 25 s each.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rampart_floodharness::browser::BrowserPlan;
use rampart_floodharness::{FloodKind, FloodPlan, Origin, OriginConfig, Report, Scenario, run_scenario};
use rampart_shield::flood::persist;

/// Flood requests a second: well over three times the browsers' rate (the trigger), low
/// enough for two shared cores.
const FLOOD_RATE: u32 = 400;
const FLOOD_SECS: u64 = 12;
const WARMUP_SECS: u64 = 10;
const BROWSERS: u32 = 24;

/// A `rampart shield` child, killed (by its own handle) when dropped.
struct Shield {
    child: Child,
    address: SocketAddr,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
    _data: tempfile::TempDir,
    data_path: std::path::PathBuf,
}

impl Shield {
    /// SIGTERM (the shield saves its baselines), then wait for it to exit (killed after 10 s).
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rampart shield` for `origin` with the automatic defense as
/// bench/shield-flood-auto.toml has it, its warm-up well inside the test's browsing: a flood
/// that starts before the baseline is offered is learned as normal traffic, and a single flood
/// request in a baseline sample this small (under 1,000: no request may match) rules out every
/// signature.
fn start_shield(origin: SocketAddr) -> Shield {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("shield.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[upstream.site]\nservers = [\"http://{origin}\"]\n\n\
             [[route]]\nupstream = \"site\"\n\n[flood]\nmin_rps = 50\ndata_dir = \"{}\"\n\n\
             [flood.learn]\nwarmup_secs = 6\n\n[flood.mine]\nmin_baseline_samples = 150\n",
            data.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["shield", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rampart shield starts");
    let stderr = child.stderr.take().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let (listening, address) = mpsc::channel();
    {
        let events = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.strip_prefix("rampart shield: listening on ") {
                    let _ = listening.send(at.trim().parse::<SocketAddr>().ok());
                } else if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    events.lock().unwrap().push(event);
                } else {
                    eprintln!("shield: {line}");
                }
            }
        });
    }
    let address = address
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("rampart shield says where it listens within 20 s");
    let data_path = data.path().join("state");
    Shield { child, address, events, _data: data, data_path }
}

async fn run(kind: FloodKind) -> (Report, Vec<serde_json::Value>, Option<persist::RulesSnapshot>) {
    let slow = kind == FloodKind::CacheBusting;
    let origin = Origin::start(OriginConfig {
        slow_per_in_flight: slow.then_some(Duration::from_millis(2)),
        ..OriginConfig::default()
    })
    .await
    .unwrap();
    let shield = start_shield(origin.address());
    let scenario = Scenario {
        target: shield.address,
        target_name: "rampart-auto".into(),
        host: None,
        browsers: BrowserPlan { clients: BROWSERS, ..BrowserPlan::default() },
        flood: FloodPlan::new(kind, FLOOD_RATE, Duration::from_secs(FLOOD_SECS)),
        warmup: Duration::from_secs(WARMUP_SECS),
        cooldown: Duration::from_secs(1),
    };
    let report = run_scenario(&scenario, &origin).await.unwrap();
    let rules = persist::read_rules(&shield.data_path).ok().flatten();
    let mut shield = shield;
    shield.stop();
    let events = shield.events.lock().unwrap().clone();
    drop(shield);
    (report, events, rules)
}

/// What is wrong with one flood's run (empty: nothing).
fn judge(kind: FloodKind, report: &Report, events: &[serde_json::Value]) -> Vec<String> {
    let mut wrong = Vec::new();
    let name = kind.name();
    let legit = &report.legit_during_flood;
    if legit.requests < 100 {
        wrong.push(format!("{name}: only {} legitimate requests during the flood", legit.requests));
    }
    if report.legit_all.success_pct() < 99.0 || legit.success_pct() < 99.0 {
        wrong.push(format!(
            "{name}: legitimate success {:.2} % during the flood, {:.2} % in all (need >= 99 %)",
            legit.success_pct(),
            report.legit_all.success_pct()
        ));
    }
    if report.legit_all.hindered_pct() > 0.1 {
        wrong.push(format!(
            "{name}: {:.2} % of legitimate requests challenged or refused (at most 0.1 %)",
            report.legit_all.hindered_pct()
        ));
    }
    let created: Vec<_> = events.iter().filter(|e| e["event"] == "rule_created").collect();
    if created.is_empty() {
        wrong.push(format!("{name}: the shield made no rule; events {events:?}"));
    }
    if created.iter().any(|e| e["impacted_baseline"].as_f64().is_none_or(|i| i > 0.001)) {
        wrong.push(format!("{name}: a rule touches more than 0.1 % of the baseline: {created:?}"));
    }
    match report.mitigation_secs {
        Some(secs) if secs <= 15 => {}
        other => wrong.push(format!("{name}: flood mitigated after {other:?} s (at most 15 s)")),
    }
    let flood = report.flood_total;
    if flood.total() < u64::from(FLOOD_RATE) * FLOOD_SECS / 2 {
        wrong.push(format!("{name}: only {} flood requests sent", flood.total()));
    }
    if report.origin.max_in_flight >= report.origin.concurrency_limit {
        wrong.push(format!(
            "{name}: origin reached {} in flight (limit {})",
            report.origin.max_in_flight, report.origin.concurrency_limit
        ));
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_defense_mitigates_the_four_floods_and_browsers_keep_going() {
    let mut wrong = Vec::new();
    for kind in FloodKind::ALL {
        let (report, events, rules) = run(kind).await;
        println!("{}", report.text());
        for event in &events {
            println!("  event: {event}");
        }
        let rules = rules.expect("the shield writes flood-rules.json into its data directory");
        // The rule is in the shield's rules file, made by the engine (no rule in the config).
        if rules.active.is_empty() && rules.recent.is_empty() {
            wrong.push(format!("{}: flood-rules.json lists no rule", kind.name()));
        }
        if !rules.active.iter().chain(&rules.recent).any(|r| r.refused > 0) {
            wrong.push(format!("{}: no rule refused anything: {rules:?}", kind.name()));
        }
        wrong.extend(judge(kind, &report, &events));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
