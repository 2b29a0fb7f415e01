//! Automatic HTTP flood defense (issue 12 §1–§2): per-route baselines, per-request features,
//! a trigger when a route's load or its origin's health crosses its limit, a mined signature
//! that covers the flood while touching at most 0.1 % of the route's baseline sample, and a
//! temporary rule on a ladder (rate-limit → challenge → block) that steps down and expires by
//! itself.
//!
//! Layout: [`features`] (what a request looks like), [`baseline`] (rates, errors, latency per
//! route and host, time-of-day percentile plus recent level), [`reservoir`] (the baseline
//! sample), [`mine`] (the signature search), [`rules`] (the ladder), [`engine`] (the pure core
//! tying them together), [`persist`] (the data-directory files), [`replay`] (warm-up from an
//! access log). [`FloodDefense`] is the thin driver the proxy calls: the clock, the lock, the
//! files and the event log (JSON lines on stderr).

pub mod baseline;
pub mod engine;
pub mod features;
pub mod mine;
pub mod persist;
pub mod remainder;
pub mod replay;
pub mod reservoir;
pub mod rules;
#[cfg(test)]
mod scenarios;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use engine::{EngineStats, FloodEngine, MinedJob, MiningJob, Outcome, RouteHealth, RuleEvent};
pub use features::{Attr, Features, RequestView};
pub use rules::{Rule, Rung};

use crate::defense::FloodVerdict;
use crate::metrics::Metrics;

/// The per-client rate of a rate-limiting rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRate {
    /// Requests per second per matching client (or prefix, for prefix rules).
    pub per_second: f64,
    /// Requests at once.
    pub burst: u32,
}

/// Per-route overrides of `[flood]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteOverride {
    /// Make rules for this route (it still learns its baselines when false).
    pub enabled: Option<bool>,
    /// The route's factor over its baseline.
    pub factor: Option<f64>,
    /// The route's floor, requests per second.
    pub min_rps: Option<f64>,
}

/// `[flood]`: the automatic flood defense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodConfig {
    /// On by default: it only acts with a rule measured on the route's own baseline sample.
    pub enabled: bool,
    /// Where baselines and rules are kept (also `rampart shield --data DIR`); none: in memory.
    pub data_dir: Option<PathBuf>,
    /// An access log (combined format or JSON lines) replayed at start when there is no saved
    /// baseline.
    pub replay: Option<PathBuf>,
    /// A route is flooded over `factor` times its learned request rate...
    pub factor: f64,
    /// ...and over this many requests per second.
    pub min_rps: f64,
    /// The origin is unhealthy over `error_factor` times its learned error share...
    pub error_factor: f64,
    /// ...and over this share of 5xx answers and failures.
    pub min_error_share: f64,
    /// The origin is unhealthy over `latency_factor` times its learned latency...
    pub latency_factor: f64,
    /// ...and over this many milliseconds.
    pub min_latency_ms: f64,
    /// Responses in a second needed to judge the origin's health.
    pub min_responses: u64,
    /// Seconds of recent requests the miner looks at.
    pub window_secs: u64,
    /// Recent requests kept per route at most.
    pub max_window: usize,
    /// Baseline samples kept per route.
    pub reservoir: usize,
    /// Milliseconds between two mining attempts on a route.
    pub mine_interval_ms: u64,
    /// Seconds between two saves of the baselines.
    pub save_secs: u64,
    /// Expired rules kept for `rampart shield rules`.
    pub recent_rules: usize,
    /// The rate a rate-limiting rule leaves each matching client.
    pub rule_rate: RuleRate,
    /// Matched requests per second at or above which a rule's flood counts as going on
    /// (escalation; below it the rule steps down after `ladder.hold_secs`).
    pub min_persist_rps: f64,
    /// Rules in force on one route at most (the first for a flood, more for what it left).
    pub max_rules_per_route: usize,
    /// While a route's rules hold a flood and the route is still over its limit, the requests
    /// no rule matched are a flood of their own over this many times the learned rate: a
    /// further rule is mined from them (see [`remainder`]).
    pub remainder_factor: f64,
    /// How baselines are learned.
    pub learn: baseline::LearnConfig,
    /// How signatures are mined.
    pub mine: mine::MineConfig,
    /// How rules escalate and step down.
    pub ladder: rules::LadderConfig,
    /// Per-route overrides, by route name.
    pub routes: BTreeMap<String, RouteOverride>,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            enabled: true,
            data_dir: None,
            replay: None,
            factor: 3.0,
            min_rps: 100.0,
            error_factor: 4.0,
            min_error_share: 0.25,
            latency_factor: 4.0,
            min_latency_ms: 1000.0,
            min_responses: 20,
            window_secs: 3,
            max_window: 4096,
            reservoir: 4096,
            mine_interval_ms: 500,
            save_secs: 60,
            recent_rules: 64,
            rule_rate: RuleRate { per_second: 2.0, burst: 10 },
            min_persist_rps: 5.0,
            max_rules_per_route: 4,
            remainder_factor: 1.5,
            learn: baseline::LearnConfig::default(),
            mine: mine::MineConfig::default(),
            ladder: rules::LadderConfig::default(),
            routes: BTreeMap::new(),
        }
    }
}

impl FloodConfig {
    /// The first bad key, as (`key`, message), keys relative to `[flood]`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        let above_one = |x: f64| x.is_finite() && x > 1.0;
        if !above_one(self.factor) || !above_one(self.error_factor) || !above_one(self.latency_factor) {
            return bad("factor", "factor, error_factor and latency_factor must be finite and above 1");
        }
        if !(self.min_rps.is_finite() && self.min_rps >= 1.0) {
            return bad("min_rps", "must be at least 1");
        }
        if !(self.min_error_share > 0.0 && self.min_error_share <= 1.0) {
            return bad("min_error_share", "must be in (0, 1]");
        }
        if !(self.min_latency_ms.is_finite() && self.min_latency_ms > 0.0) {
            return bad("min_latency_ms", "must be positive");
        }
        if self.window_secs == 0 || self.max_window == 0 || self.reservoir == 0 || self.save_secs == 0 {
            return bad("window_secs", "window_secs, max_window, reservoir and save_secs must be at least 1");
        }
        if !(self.rule_rate.per_second.is_finite() && self.rule_rate.per_second > 0.0)
            || self.rule_rate.burst == 0
        {
            return bad("rule_rate", "per_second must be positive and burst at least 1");
        }
        if !(self.min_persist_rps.is_finite() && self.min_persist_rps > 0.0) {
            return bad("min_persist_rps", "must be positive");
        }
        if self.max_rules_per_route == 0 {
            return bad("max_rules_per_route", "must be at least 1");
        }
        if !(self.remainder_factor.is_finite() && self.remainder_factor > 1.0) {
            return bad("remainder_factor", "must be finite and above 1");
        }
        if self.ladder.hold_secs == 0 {
            return bad("ladder.hold_secs", "must be at least 1");
        }
        self.learn.validate().map_err(|m| split(&format!("learn.{m}")))?;
        self.mine.validate().map_err(|m| split(&format!("mine.{m}")))?;
        for (name, route) in &self.routes {
            if route.factor.is_some_and(|f| !above_one(f))
                || route.min_rps.is_some_and(|r| r.is_nan() || r < 1.0)
            {
                return bad(&format!("routes.{name}"), "factor must be above 1 and min_rps at least 1");
            }
        }
        Ok(())
    }

    /// The factor and floor of `route`.
    pub fn route_limits(&self, route: &str) -> (f64, f64) {
        let o = self.routes.get(route);
        (o.and_then(|o| o.factor).unwrap_or(self.factor), o.and_then(|o| o.min_rps).unwrap_or(self.min_rps))
    }

    /// Whether rules are made for `route`.
    pub fn route_enabled(&self, route: &str) -> bool {
        self.enabled && self.routes.get(route).and_then(|o| o.enabled).unwrap_or(true)
    }
}

fn split(message: &str) -> (String, String) {
    match message.split_once(": ") {
        Some((key, rest)) => (key.to_owned(), rest.to_owned()),
        None => (String::new(), message.to_owned()),
    }
}

/// Unix milliseconds of `time` (0 before 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What replaying an access log did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Lines learned.
    pub learned: u64,
    /// Lines that did not parse.
    pub skipped: u64,
    /// Lines that no route matched.
    pub unrouted: u64,
}

/// Mining jobs waiting for the miner at most; a flood that makes more loses the extra ones
/// (its route mines again at its next interval).
const MINING_QUEUE: usize = 8;

/// The driver: one engine behind a lock, the wall clock, the data directory, the event log and
/// the metrics. Shared by every configuration the shield reloads to (state is keyed by route
/// name). Mining runs off the request path: requests hand jobs to [`FloodDefense::run`]'s
/// miner through a bounded queue, and only the result is applied under the lock.
#[derive(Debug)]
pub struct FloodDefense {
    engine: Mutex<FloodEngine>,
    jobs: tokio::sync::mpsc::Sender<MiningJob>,
    miner: Mutex<Option<tokio::sync::mpsc::Receiver<MiningJob>>>,
    data_dir: Option<PathBuf>,
    metrics: std::sync::OnceLock<Arc<Metrics>>,
    no_safe_counted: std::sync::atomic::AtomicU64,
    /// The rules file as last written (its time zeroed): it is written again only on change.
    rules_written: Mutex<Option<persist::RulesSnapshot>>,
    /// A rule changed (made, moved, expired): write the rules file now, not at the next tick,
    /// so a restart right after keeps it.
    rules_changed: tokio::sync::Notify,
}

impl FloodDefense {
    /// A defense for `config`, its baselines reloaded from the data directory (a corrupt file
    /// is reported on stderr and ignored), or else warmed up from `config.replay`; the rules
    /// a previous run left there are enforced again unless they expired meanwhile.
    pub fn new(config: FloodConfig, routes: &[crate::config::Route]) -> FloodDefense {
        FloodDefense::new_at(config, routes, SystemTime::now())
    }

    /// [`FloodDefense::new`] starting at `now`.
    pub fn new_at(config: FloodConfig, routes: &[crate::config::Route], now: SystemTime) -> FloodDefense {
        let data_dir = config.data_dir.clone();
        let replay = config.replay.clone();
        let mut engine = FloodEngine::new(config);
        let mut restored = false;
        if let Some(dir) = &data_dir {
            match persist::read_baseline(dir) {
                Ok(Some(snapshot)) => {
                    engine.restore(snapshot.book, snapshot.samples, snapshot.next_rule);
                    restored = true;
                }
                Ok(None) => {}
                Err(error) => eprintln!("rampart shield: flood baseline ignored: {error}"),
            }
        }
        if !restored && let Some(log) = replay {
            match replay_file(&mut engine, &log, routes) {
                Ok(stats) => eprintln!(
                    "rampart shield: flood baseline warmed up from {}: {} lines learned, {} skipped",
                    log.display(),
                    stats.learned,
                    stats.skipped
                ),
                Err(error) => eprintln!("rampart shield: cannot replay {}: {error}", log.display()),
            }
        }
        if let Some(dir) = &data_dir {
            match persist::read_rules(dir) {
                Ok(Some(rules)) => {
                    engine.restore_rules(rules.active, rules.recent, rules.written_ms, unix_ms(now))
                }
                Ok(None) => {}
                Err(error) => eprintln!("rampart shield: flood rules ignored: {error}"),
            }
        }
        let events = engine.take_events();
        engine.set_defer_mining(true);
        let (jobs, miner) = tokio::sync::mpsc::channel(MINING_QUEUE);
        let defense = FloodDefense {
            engine: Mutex::new(engine),
            jobs,
            miner: Mutex::new(Some(miner)),
            data_dir,
            metrics: std::sync::OnceLock::new(),
            no_safe_counted: std::sync::atomic::AtomicU64::new(0),
            rules_written: Mutex::new(None),
            rules_changed: tokio::sync::Notify::new(),
        };
        defense.emit(events);
        defense
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FloodEngine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count rule activity into `metrics` from now on (the first call wins: one shield, one
    /// set of metrics).
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The verdict for one request on `route` at `now`.
    pub fn check(
        &self,
        route: &str,
        host: Option<&str>,
        view: &RequestView<'_>,
        now: SystemTime,
    ) -> FloodVerdict {
        let features = features::extract(view);
        let now_ms = unix_ms(now);
        let (outcome, events, jobs) = {
            let mut engine = self.lock();
            let outcome = engine.check(route, host, &features, view.client, now_ms);
            if let Some((id, true)) = outcome.rule {
                engine.show(id, &features::labels(view));
            }
            (outcome, engine.take_events(), engine.take_mining_jobs())
        };
        self.emit(events);
        for job in jobs {
            if let Err(error) = self.jobs.try_send(job) {
                let job = match error {
                    tokio::sync::mpsc::error::TrySendError::Full(job)
                    | tokio::sync::mpsc::error::TrySendError::Closed(job) => job,
                };
                self.lock().mining_dropped(job.route());
            }
        }
        if let Some(metrics) = self.metrics.get()
            && outcome.rule.is_some()
        {
            let rung = match outcome.verdict {
                FloodVerdict::Pass | FloodVerdict::Throttle { .. } => "rate_limit",
                FloodVerdict::Challenge => "challenge",
                FloodVerdict::Block => "block",
            };
            metrics.flood_matched(rung);
        }
        outcome.verdict
    }

    /// The origin answered a request of `route` with `status` (502 for a failure) after
    /// `latency`.
    pub fn observe_response(&self, route: &str, status: u16, latency: Duration, now: SystemTime) {
        self.lock().observe_response(route, status, latency.as_secs_f64() * 1000.0, unix_ms(now));
    }

    /// Whether `route` is overloaded or its origin unhealthy now (for the origin protection).
    pub fn route_health(&self, route: &str, now: SystemTime) -> RouteHealth {
        self.lock().health(route, unix_ms(now))
    }

    /// Rules in force and recent ones, and the counters.
    pub fn rules(&self, now: SystemTime) -> persist::RulesSnapshot {
        let engine = self.lock();
        persist::RulesSnapshot::new(
            engine.active_rules().cloned().collect(),
            engine.recent_rules().cloned().collect(),
            engine.stats(),
            unix_ms(now),
        )
    }

    fn emit(&self, events: Vec<RuleEvent>) {
        if !events.is_empty() {
            self.rules_changed.notify_one();
        }
        for event in events {
            if let Ok(line) = serde_json::to_string(&event) {
                eprintln!("{line}");
            }
        }
    }

    /// Write the rules file if the rules changed since it was last written.
    pub fn write_rules(&self, now: SystemTime) {
        if self.data_dir.is_some() {
            let snapshot = self.rules(now);
            self.write_rules_snapshot(&snapshot);
        }
    }

    fn write_rules_snapshot(&self, snapshot: &persist::RulesSnapshot) {
        let Some(dir) = &self.data_dir else { return };
        let unchanged = persist::RulesSnapshot { written_ms: 0, ..snapshot.clone() };
        let mut written = self.rules_written.lock().unwrap_or_else(|p| p.into_inner());
        if written.as_ref() == Some(&unchanged) {
            return;
        }
        match persist::write_rules(dir, snapshot) {
            Ok(()) => *written = Some(unchanged),
            Err(error) => eprintln!("rampart shield: {error}"),
        }
    }

    /// Let time pass: ladders move, seconds are learned; metrics and the rules file follow.
    pub fn tick(&self, now: SystemTime) {
        let (events, snapshot) = {
            let mut engine = self.lock();
            engine.tick(unix_ms(now));
            let snapshot = persist::RulesSnapshot::new(
                engine.active_rules().cloned().collect(),
                engine.recent_rules().cloned().collect(),
                engine.stats(),
                unix_ms(now),
            );
            (engine.take_events(), snapshot)
        };
        self.emit(events);
        if let Some(metrics) = self.metrics.get() {
            metrics.flood_rules_active.set(snapshot.active.len() as i64);
            let before =
                self.no_safe_counted.swap(snapshot.no_safe_rule, std::sync::atomic::Ordering::Relaxed);
            metrics.flood_no_safe_rule.inc_by(snapshot.no_safe_rule.saturating_sub(before));
        }
        self.write_rules_snapshot(&snapshot);
    }

    /// Save the baselines into the data directory (if any).
    pub fn save(&self) -> Result<(), persist::PersistError> {
        let Some(dir) = &self.data_dir else { return Ok(()) };
        let snapshot = {
            let engine = self.lock();
            persist::BaselineSnapshot {
                version: persist::VERSION,
                book: engine.book().clone(),
                samples: engine.samples(),
                next_rule: engine.next_id(),
            }
        };
        persist::write_baseline(dir, &snapshot)
    }

    /// Mine the queued jobs now, on this thread, while no [`FloodDefense::run`] took the queue
    /// (tests drive the defense in simulated time without a runtime).
    #[cfg(test)]
    pub(crate) fn mine_queued(&self) {
        let mut miner = self.miner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(jobs) = miner.as_mut() else { return };
        while let Ok(job) = jobs.try_recv() {
            let mined = job.run();
            let events = {
                let mut engine = self.lock();
                engine.apply_mined(mined);
                engine.take_events()
            };
            self.emit(events);
        }
    }

    /// Run the mining jobs requests hand out, one at a time on a blocking thread, applying each
    /// result under the lock.
    async fn mine_jobs(self: Arc<Self>, mut jobs: tokio::sync::mpsc::Receiver<MiningJob>) {
        while let Some(job) = jobs.recv().await {
            let this = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || {
                let mined = job.run();
                let events = {
                    let mut engine = this.lock();
                    engine.apply_mined(mined);
                    engine.take_events()
                };
                this.emit(events);
            })
            .await;
        }
    }

    /// Tick every second and save every `save_secs` until `stop` turns true; save at the end.
    /// A rule change writes the rules file at once. It also runs the miner (the first call only).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let miner = self.miner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let miner = miner.map(|jobs| tokio::spawn(Arc::clone(&self).mine_jobs(jobs)));
        let save_every = self.lock().config().save_secs;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut since_save = 0;
        loop {
            let ticked = tokio::select! {
                _ = tick.tick() => true,
                _ = self.rules_changed.notified() => false,
                _ = stop.changed() => break,
            };
            let this = Arc::clone(&self);
            if !ticked {
                let _ = tokio::task::spawn_blocking(move || this.write_rules(SystemTime::now())).await;
                continue;
            }
            since_save += 1;
            let save = since_save >= save_every;
            if save {
                since_save = 0;
            }
            let _ = tokio::task::spawn_blocking(move || {
                this.tick(SystemTime::now());
                if save && let Err(error) = this.save() {
                    eprintln!("rampart shield: {error}");
                }
            })
            .await;
        }
        if let Some(miner) = miner {
            miner.abort();
        }
        let this = Arc::clone(&self);
        let _ = tokio::task::spawn_blocking(move || {
            this.write_rules(SystemTime::now());
            if let Err(error) = this.save() {
                eprintln!("rampart shield: {error}");
            }
        })
        .await;
    }
}

/// Replay an access log (combined format or JSON lines, see [`replay`]) into `engine`'s baselines (learning only: no rule is
/// made from the past). Lines are routed as the shield would route them (without a host).
pub fn replay_file(
    engine: &mut FloodEngine,
    path: &Path,
    routes: &[crate::config::Route],
) -> std::io::Result<ReplayStats> {
    let file = std::fs::File::open(path)?;
    replay_lines(engine, std::io::BufReader::new(file), routes)
}

/// Replay access-log lines from `reader` (see [`replay_file`]).
pub fn replay_lines(
    engine: &mut FloodEngine,
    reader: impl BufRead,
    routes: &[crate::config::Route],
) -> std::io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let mut last_ms = 0;
    for line in reader.lines() {
        let line = line?;
        let Ok(parsed) = replay::parse_line(&line) else {
            stats.skipped += 1;
            continue;
        };
        let Some((_, route)) = crate::routing::find_route(routes, None, &parsed.path) else {
            stats.unrouted += 1;
            continue;
        };
        let view = RequestView {
            method: &parsed.method,
            path: &parsed.path,
            query: parsed.query.as_deref(),
            headers: None,
            user_agent: parsed.user_agent.as_deref(),
            client: parsed.client,
            fingerprints: None,
        };
        engine.learn_request(
            &route.name,
            &features::extract(&view),
            parsed.status,
            parsed.latency_ms,
            parsed.time_ms,
        );
        last_ms = last_ms.max(parsed.time_ms);
        stats.learned += 1;
    }
    engine.tick(last_ms + 1000);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_config_errors_name_the_key() {
        let base = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.web]\nservers = [\"127.0.0.1:2\"]\n[[route]]\nname = \"web\"\nupstream = \"web\"\n";
        let cases = [
            ("[flood]\nfactor = 1\n", "flood.factor"),
            ("[flood.mine]\nmax_impact = 0.9\n", "flood.mine.max_impact"),
            ("[flood.learn]\nslot_secs = 7\n", "flood.learn.slot_secs"),
            ("[flood.routes.nope]\nmin_rps = 5\n", "flood.routes.nope"),
            ("[flood.routes.web]\nmin_rps = 0.5\n", "flood.routes.web"),
            ("[flood]\nbogus = 1\n", "bogus"),
        ];
        for (text, key) in cases {
            let message = crate::Config::from_toml(&format!("{base}{text}")).unwrap_err().to_string();
            assert!(message.contains(key), "{message} should name {key}");
        }
        let config = crate::Config::from_toml(&format!(
            "{base}[flood]\ndata_dir = \"/tmp/x\"\n[flood.ladder]\nstart = \"challenge\"\n[flood.routes.web]\nenabled = false\n"
        ))
        .unwrap();
        assert_eq!(config.flood.ladder.start, Rung::Challenge);
        assert!(!config.flood.route_enabled("web"));
        assert!(config.flood.route_enabled("other"));
    }

    #[test]
    fn a_corrupt_baseline_is_ignored_and_a_saved_one_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(persist::BASELINE_FILE), b"not json").unwrap();
        let config = FloodConfig { data_dir: Some(dir.path().to_owned()), ..FloodConfig::default() };
        let defense = FloodDefense::new(config.clone(), &[]);
        let headers = http::HeaderMap::new();
        let view = RequestView {
            method: "GET",
            path: "/",
            query: None,
            headers: Some(&headers),
            user_agent: None,
            client: "192.0.2.1".parse().unwrap(),
            fingerprints: None,
        };
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        for second in 0..3 {
            for _ in 0..10 {
                assert_eq!(
                    defense.check("web", None, &view, start + Duration::from_secs(second)),
                    FloodVerdict::Pass
                );
            }
        }
        defense.tick(start + Duration::from_secs(4));
        defense.save().unwrap();
        assert!(persist::read_rules(dir.path()).unwrap().is_some());
        let saved = persist::read_baseline(dir.path()).unwrap().unwrap();
        assert_eq!(saved.samples["web"].len(), 30);
        let again = FloodDefense::new(config, &[]);
        assert_eq!(again.lock().samples()["web"].len(), 30, "samples reloaded at start");
    }
}
