//! `rampart shield baseline --replay` and `rampart shield rules` as an operator runs them: an
//! access log warms the baselines up, the rules file a shield wrote is listed (text and JSON),
//! and mistakes (no data directory, no rules yet, a corrupt baseline) are short messages with a
//! non-zero exit.

use std::process::{Command, Output};

use rampart_shield::flood::persist::{self, RulesSnapshot};
use rampart_shield::flood::{FloodConfig, FloodEngine, RequestView, features};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart")).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// 40 minutes of a small site's combined-format log, about 5 requests a second.
fn access_log() -> String {
    let mut log = String::new();
    for second in 0..2400u32 {
        for n in 0..5u32 {
            let (minute, sec) = (second / 60, second % 60);
            let path = match (second + n) % 4 {
                0 => "/".to_owned(),
                1 => format!("/news/{}", second % 300),
                2 => "/search?q=vote".to_owned(),
                _ => "/static/app.js".to_owned(),
            };
            log.push_str(&format!(
                "198.51.100.{} - - [01/Dec/2026:10:{:02}:{:02} +0000] \"GET {path} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0\"\n",
                n * 7 + second % 5,
                minute,
                sec
            ));
        }
    }
    log.push_str("this line is not an access log line\n");
    log
}

#[test]
fn replay_warms_the_baseline_up_and_survives_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, access_log()).unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let output = rampart(&["shield", "baseline", "--replay", log.to_str().unwrap(), "--data", data_arg]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("12000 lines learned, 1 skipped"), "{said}");
    assert!(said.contains("route default:"), "{said}");
    let snapshot = persist::read_baseline(&data).unwrap().expect("saved");
    assert!(snapshot.samples["default"].len() >= 1000, "baseline samples kept");

    // Showing without replay works from the saved file.
    let output = rampart(&["shield", "baseline", "--data", data_arg]);
    assert!(output.status.success(), "{}", text(&output));

    // A damaged file: reported, non-zero without --replay; ignored (and rewritten) with it.
    std::fs::write(data.join(persist::BASELINE_FILE), b"{\"version\":1,\"book\":").unwrap();
    let output = rampart(&["shield", "baseline", "--data", data_arg]);
    let said = text(&output);
    assert!(!output.status.success() && said.contains("corrupt"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let output = rampart(&["shield", "baseline", "--replay", log.to_str().unwrap(), "--data", data_arg]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(persist::read_baseline(&data).unwrap().is_some());
}

#[test]
fn rules_lists_what_the_shield_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = rampart(&["shield", "rules"]);
    assert!(!output.status.success() && text(&output).contains("--data"), "{}", text(&output));
    let output = rampart(&["shield", "rules", "--data", data]);
    assert!(!output.status.success() && text(&output).contains("no flood-rules.json"), "{}", text(&output));

    // A real rule, made by the engine from a flood over a learned baseline.
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 10;
    config.mine.min_baseline_samples = 100;
    let mut engine = FloodEngine::new(config);
    let start = 1_796_000_000_000u64;
    let mut headers = http::HeaderMap::new();
    headers.insert("user-agent", "Mozilla/5.0 Firefox/133.0".parse().unwrap());
    let mut bot = http::HeaderMap::new();
    bot.insert("user-agent", "FloodBot/1.0".parse().unwrap());
    let view = |path: &'static str, headers: &'static http::HeaderMap| RequestView {
        method: "GET",
        path,
        query: None,
        headers: Some(headers),
        user_agent: None,
        client: "192.0.2.9".parse().unwrap(),
        fingerprints: None,
    };
    let (legit, flood) = (Box::leak(Box::new(headers)), Box::leak(Box::new(bot)));
    for second in 0..60u64 {
        for n in 0..20u64 {
            let now = start + second * 1000 + n * 50;
            let v = view(if n % 2 == 0 { "/" } else { "/news" }, legit);
            engine.check("web", None, &features::extract(&v), v.client, now);
            if second >= 50 {
                for _ in 0..20 {
                    let v = view("/", flood);
                    let outcome = engine.check("web", None, &features::extract(&v), v.client, now);
                    if let Some((id, true)) = outcome.rule {
                        engine.show(id, &features::labels(&v));
                    }
                }
            }
        }
        engine.tick(start + (second + 1) * 1000);
    }
    let snapshot = RulesSnapshot::new(
        engine.active_rules().cloned().collect(),
        engine.recent_rules().cloned().collect(),
        engine.stats(),
        start + 60_000,
    );
    assert_eq!(snapshot.active.len(), 1, "{snapshot:?}");
    persist::write_rules(dir.path(), &snapshot).unwrap();

    let output = rampart(&["shield", "rules", "--data", data]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("1 active") && said.contains("FloodBot/1.0"), "{said}");
    assert!(said.contains("impacted baseline 0.000 %") && said.contains("why:"), "{said}");
    let output = rampart(&["shield", "rules", "--data", data, "--json"]);
    let parsed: RulesSnapshot = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed, snapshot);

    // A shield restarted 3 s later takes the rule over and says so.
    let mut again = FloodEngine::new(FloodConfig::default());
    again.restore_rules(
        snapshot.active.clone(),
        snapshot.recent.clone(),
        snapshot.written_ms,
        start + 63_000,
    );
    let restored = RulesSnapshot::new(
        again.active_rules().cloned().collect(),
        again.recent_rules().cloned().collect(),
        again.stats(),
        start + 63_000,
    );
    assert_eq!(restored.active.len(), 1);
    persist::write_rules(dir.path(), &restored).unwrap();
    let said = text(&rampart(&["shield", "rules", "--data", data]));
    assert!(said.contains("kept across a restart of the shield") && said.contains("FloodBot/1.0"), "{said}");
}
