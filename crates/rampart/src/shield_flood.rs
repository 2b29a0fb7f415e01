//! `rampart shield rules` and `rampart shield baseline`: the automatic flood defense's rules
//! and baselines, read from (and, for `baseline --replay`, written into) its data directory.
//!
//! `rules` reads `flood-rules.json`, which the running shield rewrites atomically when a rule
//! changes (at most every second, and at once when one is made, moves or expires) and reads
//! back at start: it works without a metrics listener, needs no endpoint that anyone could
//! reach, and still shows the rules after the shield stopped.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use rampart_shield::Config;
use rampart_shield::flood::persist::{self, BaselineSnapshot, RulesSnapshot};
use rampart_shield::flood::{FloodEngine, Rule, replay_file, unix_ms};

/// The data directory: `--data`, else the configuration's `[flood] data_dir`.
fn data_dir(data: Option<PathBuf>, config: Option<&Config>) -> Result<PathBuf> {
    data.or_else(|| config.and_then(|c| c.flood.data_dir.clone()))
        .context("give --data DIR (or --config FILE with [flood] data_dir)")
}

fn load_config(path: Option<&Path>) -> Result<Option<Config>> {
    path.map(|p| Config::from_file(p).map_err(anyhow::Error::from)).transpose()
}

fn age(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

fn describe(rule: &Rule) -> String {
    if rule.shown.is_empty() {
        return format!("{} condition(s), not yet seen on a request", rule.signature.conditions.len());
    }
    rule.shown
        .iter()
        .map(|c| format!("{}={:?}", c.attr.name(), c.values.join("|")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_rule(rule: &Rule, now_ms: u64) {
    let state = match rule.expired_ms {
        Some(at) => format!("expired {}", age(now_ms, at)),
        None => format!("{} since {}", rule.rung.name(), age(now_ms, rule.rung_since_ms)),
    };
    println!(
        "#{} route {} [{state}] created {}: matched {} (refused {}), impacted baseline {:.3} % of {} samples",
        rule.id,
        rule.route,
        age(now_ms, rule.created_ms),
        rule.matched,
        rule.refused,
        rule.impacted_baseline * 100.0,
        rule.baseline_samples,
    );
    if let Some(at) = rule.restored_ms {
        println!("    kept across a restart of the shield {}", age(now_ms, at));
    }
    println!("    matches: {}", describe(rule));
    println!("    why: {}", rule.why);
}

/// `rampart shield rules`.
pub fn rules(data: Option<PathBuf>, config: Option<&Path>, json: bool) -> Result<()> {
    let config = load_config(config)?;
    let dir = data_dir(data, config.as_ref())?;
    let snapshot: RulesSnapshot = persist::read_rules(&dir)?.with_context(|| {
        format!(
            "no {} in {}: has the shield run with this data directory?",
            persist::RULES_FILE,
            dir.display()
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshot).context("cannot encode the rules")?);
        return Ok(());
    }
    let now_ms = unix_ms(SystemTime::now());
    println!(
        "{} active, {} recent; {} rules made, {} floods without a safe rule (state written {})",
        snapshot.active.len(),
        snapshot.recent.len(),
        snapshot.rules_made,
        snapshot.no_safe_rule,
        age(now_ms, snapshot.written_ms),
    );
    for rule in snapshot.active.iter().chain(snapshot.recent.iter().rev()) {
        print_rule(rule, now_ms);
    }
    Ok(())
}

/// `rampart shield baseline [--replay FILE]`.
pub fn baseline(data: Option<PathBuf>, config: Option<&Path>, replay: Option<&Path>) -> Result<()> {
    let config = match load_config(config)? {
        Some(config) => config,
        // Without a configuration: one route for everything, as the quick start has.
        None => Config::quick("127.0.0.1:1".parse().context("address")?, "http://127.0.0.1:1")?,
    };
    let dir = data_dir(data, Some(&config))?;
    let mut engine = FloodEngine::new(config.flood.clone());
    match persist::read_baseline(&dir) {
        Ok(Some(s)) => engine.restore(s.book, s.samples, s.next_rule),
        Ok(None) => {}
        Err(error) if replay.is_some() => eprintln!("rampart shield baseline: ignoring {error}"),
        Err(error) => return Err(error.into()),
    }
    if let Some(log) = replay {
        let stats = replay_file(&mut engine, log, &config.routes)
            .with_context(|| format!("cannot replay {}", log.display()))?;
        if stats.learned == 0 {
            bail!(
                "{}: no combined-format line was learned ({} skipped, {} unrouted)",
                log.display(),
                stats.skipped,
                stats.unrouted
            );
        }
        println!(
            "{}: {} lines learned, {} skipped (neither combined format nor JSON), {} matched no route",
            log.display(),
            stats.learned,
            stats.skipped,
            stats.unrouted
        );
        let snapshot = BaselineSnapshot {
            version: persist::VERSION,
            book: engine.book().clone(),
            samples: engine.samples(),
            next_rule: engine.next_id(),
        };
        persist::write_baseline(&dir, &snapshot)?;
        println!("saved {}", dir.join(persist::BASELINE_FILE).display());
    }
    let samples = engine.samples();
    let second = unix_ms(SystemTime::now()) / 1000;
    for route in &config.routes {
        let levels = engine.levels(&route.name, second);
        let count = samples.get(&route.name).map_or(0, Vec::len);
        match levels {
            Some(l) => println!(
                "route {}: {:.1} requests/s, {:.2} % errors, {:.0} ms latency; flood limit {:.0}/s; {count} baseline samples",
                route.name,
                l.rate,
                l.error_share * 100.0,
                l.latency_ms,
                engine.limit(&route.name, second),
            ),
            None => println!(
                "route {}: still warming up (no rate trigger yet); {count} baseline samples",
                route.name
            ),
        }
    }
    Ok(())
}
