//! Runs the BGP speaker from a TOML configuration with the decisions of a JSON file (an
//! array of contract `Decision`s): a small process the interop tests and `bench/bgp.sh` kill
//! and restart. SIGHUP re-reads the decisions file; SIGTERM or Ctrl-C shuts down cleanly.
//!
//! `cargo run -p rampart-bgp --example speaker -- speaker.toml decisions.json`

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rampart_bgp::config::SpeakerConfig;
use rampart_bgp::driver::Speaker;
use rampart_contract::Decision;
use tokio::signal::unix::{SignalKind, signal};

fn read_decisions(path: &Path) -> Result<Vec<Decision>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing decisions in {}", path.display()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config_path, decisions_path] = args.as_slice() else {
        bail!("usage: speaker CONFIG.toml DECISIONS.json");
    };
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {config_path}"))?;
    let config: SpeakerConfig = toml::from_str(&text).with_context(|| format!("parsing {config_path}"))?;
    let speaker = Speaker::start(config).await.context("starting the speaker")?;
    let load = |speaker: &Speaker| -> Result<()> {
        let decisions = read_decisions(Path::new(decisions_path))?;
        for (id, error) in speaker.set_active(&decisions) {
            eprintln!("decision {}: no route: {error}", id.0);
        }
        eprintln!("active: {} decisions", decisions.len());
        Ok(())
    };
    load(&speaker)?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut last = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = load(&speaker) {
                    eprintln!("{e:#}");
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let now: Vec<String> = speaker
                    .status()
                    .iter()
                    .map(|s| format!("{} {:?} routes={} refused={} error={:?}", s.name, s.state, s.routes, s.refused_total, s.last_error))
                    .collect();
                if now != last {
                    for line in &now {
                        eprintln!("peer {line}");
                    }
                    last = now;
                }
            }
        }
    }
    speaker.shutdown(Duration::from_secs(5)).await;
    eprintln!("stopped");
    Ok(())
}
