//! `[filter]`: the host filter (`rampart-filter`: XDP, nftables where XDP cannot attach) as an
//! actuator of the daemon's decisions.
//!
//! The mitigator's calls only change the set of decisions wanted and wake a thread of the
//! actuator's own, which plans the set ([`rampart_filter::plan::plan`]) and reconciles the
//! maps or the nftables table with it (both write only differences): a reconcile never runs on
//! the mitigator's thread. The same thread reads the rules' counters back every
//! `counters_ms` into [`FilterStats`] (the `/metrics` families `rampart_filter_*`) and into
//! `filter-counters.json` in the data directory, which keeps what each decision's rule dropped
//! after the decision is gone (`rampart decisions list` shows it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rampart_contract::{Decision, DecisionId, EventTime};
use rampart_filter::nft::NftFilter;
use rampart_filter::plan::{SynGuard, plan};
use rampart_filter::xdp::time::boot_now_ns;
use rampart_filter::xdp::{self, AttachMode, Options, XdpFilter};
use rampart_mitigate::{Actuator, ActuatorError, Applied};
use serde::{Deserialize, Serialize};

use crate::wall_clock;

/// The file in the data directory holding what each decision's rule dropped.
pub const COUNTERS_FILE: &str = "filter-counters.json";
/// Decisions whose counters the file keeps after they are gone (the newest ids stay).
const KEPT_COUNTERS: usize = 65_536;

/// Which layer enforces the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Xdp,
    Nftables,
}

/// `[filter]` as the daemon uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSettings {
    /// Interfaces XDP attaches to, each with its mode.
    pub interfaces: Vec<(String, AttachMode)>,
    pub backend: Backend,
    /// When XDP cannot load or attach: nftables instead (else the daemon does not start).
    pub fallback: bool,
    pub pin_dir: PathBuf,
    pub syn_guards: Vec<SynGuard>,
    /// How often the counters are read back.
    pub counters_every: Duration,
}

/// The `[filter]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterToml {
    /// `"eth0"` (in `mode`) or `"eth0=generic"`.
    #[serde(default)]
    interfaces: Vec<String>,
    /// native, generic or auto (native, else generic); default auto.
    mode: Option<String>,
    /// xdp (default) or nftables.
    backend: Option<String>,
    /// nftables when XDP cannot attach (default true).
    fallback: Option<bool>,
    pin_dir: Option<PathBuf>,
    /// `"PREFIX=PPS"`: SYN-flood mode for a protected destination.
    #[serde(default)]
    syn_guards: Vec<String>,
    counters_ms: Option<u64>,
}

/// A rejected `[filter]` value: its key (below `filter.`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTomlError {
    pub key: &'static str,
    pub message: String,
}

impl FilterToml {
    pub fn resolve(self) -> Result<FilterSettings, FilterTomlError> {
        let err = |key, message: String| FilterTomlError { key, message };
        let mode: AttachMode =
            self.mode.as_deref().unwrap_or("auto").parse().map_err(|m: String| err("mode", m))?;
        let backend = match self.backend.as_deref().unwrap_or("xdp") {
            "xdp" => Backend::Xdp,
            "nftables" => Backend::Nftables,
            other => return Err(err("backend", format!("{other:?}: xdp or nftables"))),
        };
        let mut interfaces: Vec<(String, AttachMode)> = Vec::new();
        for entry in &self.interfaces {
            let (name, mode) = match entry.split_once('=') {
                None => (entry.as_str(), mode),
                Some((name, m)) => (name, m.parse().map_err(|m: String| err("interfaces", m))?),
            };
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(err("interfaces", format!("{name:?} is not an interface name")));
            }
            if interfaces.iter().any(|(n, _)| n == name) {
                return Err(err("interfaces", format!("{name} is listed twice")));
            }
            interfaces.push((name.to_owned(), mode));
        }
        if backend == Backend::Xdp && interfaces.is_empty() {
            return Err(err("interfaces", "XDP attaches to interfaces: name at least one".into()));
        }
        let syn_guards = self
            .syn_guards
            .iter()
            .map(|s| parse_syn_guard(s).map_err(|m| err("syn_guards", m)))
            .collect::<Result<Vec<_>, _>>()?;
        let counters_ms = self.counters_ms.unwrap_or(1_000);
        if !(100..=3_600_000).contains(&counters_ms) {
            return Err(err("counters_ms", format!("{counters_ms}: from 100 to 3600000")));
        }
        Ok(FilterSettings {
            interfaces,
            backend,
            fallback: self.fallback.unwrap_or(true),
            pin_dir: self.pin_dir.unwrap_or_else(|| PathBuf::from(xdp::DEFAULT_PIN_DIR)),
            syn_guards,
            counters_every: Duration::from_millis(counters_ms),
        })
    }
}

/// `PREFIX=PPS` or `PREFIX=PPS,cookies` (an address is its own /32 or /128).
pub fn parse_syn_guard(s: &str) -> Result<SynGuard, String> {
    SynGuard::parse(s)
}

/// What one decision's rule dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub packets: u64,
    pub bytes: u64,
}

/// `filter-counters.json`: the last counters read for each decision (also after it is gone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountersFile {
    pub backend: String,
    /// Unix seconds of the reading.
    pub updated: f64,
    pub decisions: BTreeMap<u64, Dropped>,
}

impl CountersFile {
    /// The file in `data_dir`, or `None` when there is none (no filter ran there).
    pub fn read(data_dir: &Path) -> Result<Option<CountersFile>, String> {
        let path = data_dir.join(COUNTERS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Takes a reading in: rules in force now replace what was known of their decision
    /// (a counter never goes back: a rule's slot keeps its counters while it lives).
    fn merge(&mut self, reading: &[(u64, Dropped)]) {
        for (decision, dropped) in reading {
            let held = self.decisions.entry(*decision).or_default();
            held.packets = held.packets.max(dropped.packets);
            held.bytes = held.bytes.max(dropped.bytes);
        }
        while self.decisions.len() > KEPT_COUNTERS {
            self.decisions.pop_first();
        }
    }
}

/// What the filter publishes for `/metrics`.
#[derive(Debug, Default)]
pub struct FilterStats {
    /// "xdp" or "nftables" (set once at start).
    pub backend: Mutex<&'static str>,
    pub reconciles: AtomicU64,
    pub errors: AtomicU64,
    /// Duration of the last reconcile, microseconds.
    pub last_reconcile_micros: AtomicU64,
    /// Rules in force with what each dropped, by decision id (from the last reading).
    pub rules: Mutex<Vec<(u64, Dropped)>>,
    /// Whole-program totals (XDP): seen, passed, dropped.
    pub packets: Mutex<Option<[u64; 3]>>,
    /// Packets Rampart's nftables rules dropped.
    pub nft_dropped: AtomicU64,
}

/// The decisions the filter is asked to enforce. Pure: the actuator's calls change it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Wanted {
    decisions: BTreeMap<DecisionId, Decision>,
}

impl Wanted {
    pub fn apply(&mut self, decision: &Decision) {
        self.decisions.insert(decision.id, decision.clone());
    }

    pub fn withdraw(&mut self, id: DecisionId) {
        self.decisions.remove(&id);
    }

    pub fn replace(&mut self, active: &[Decision]) {
        self.decisions = active.iter().map(|d| (d.id, d.clone())).collect();
    }

    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions.values().cloned().collect()
    }
}

enum Enforcer {
    Xdp(Box<XdpFilter>),
    Nft(NftFilter),
}

#[derive(Debug, Default)]
struct State {
    wanted: Wanted,
    /// A reconcile is due (the set changed, or the last one failed).
    due: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The host filter as an actuator.
pub struct FilterActuator {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FilterActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterActuator").finish_non_exhaustive()
    }
}

impl FilterActuator {
    /// Loads and attaches XDP (or, as configured, falls back to nftables) on this thread, so a
    /// broken setup fails the start; then starts the filter's thread. Counters go to
    /// [`COUNTERS_FILE`] in `data_dir`.
    pub fn start(settings: &FilterSettings, data_dir: &Path) -> Result<(Self, Arc<FilterStats>), String> {
        let enforcer = match settings.backend {
            Backend::Nftables => nft_enforcer()?,
            Backend::Xdp => match load_xdp(settings) {
                Ok(filter) => Enforcer::Xdp(Box::new(filter)),
                Err(e) if settings.fallback => {
                    eprintln!("rampart: filter: XDP unavailable, using nftables: {e}");
                    nft_enforcer()?
                }
                Err(e) => return Err(e),
            },
        };
        let stats = Arc::new(FilterStats::default());
        if let Ok(mut backend) = stats.backend.lock() {
            *backend = match enforcer {
                Enforcer::Xdp(_) => "xdp",
                Enforcer::Nft(_) => "nftables",
            };
        }
        let shared = Arc::new(Shared::default());
        let counters = match CountersFile::read(data_dir) {
            Ok(file) => file.unwrap_or_default(),
            Err(e) => {
                eprintln!("rampart: filter: starting a new counters file: {e}");
                CountersFile::default()
            }
        };
        let worker = Worker {
            enforcer,
            shared: shared.clone(),
            stats: stats.clone(),
            syn_guards: settings.syn_guards.clone(),
            pin_dir: settings.pin_dir.clone(),
            counters_every: settings.counters_every,
            counters_path: data_dir.join(COUNTERS_FILE),
            counters,
            written: None,
            cookie_fallback: None,
        };
        let worker = std::thread::Builder::new()
            .name("rampart-filter".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("starting the filter thread: {e}"))?;
        Ok((FilterActuator { shared, worker: Some(worker) }, stats))
    }

    fn change(&self, f: impl FnOnce(&mut Wanted)) -> Result<(), ActuatorError> {
        let mut state =
            self.shared.state.lock().map_err(|_| ActuatorError("filter: state poisoned".into()))?;
        f(&mut state.wanted);
        state.due = true;
        self.shared.wake.notify_all();
        Ok(())
    }
}

impl Actuator for FilterActuator {
    fn name(&self) -> &str {
        "filter"
    }

    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
        self.change(|w| w.apply(applied.decision))
    }

    fn withdraw(&mut self, id: DecisionId, _dry_run: bool) -> Result<(), ActuatorError> {
        self.change(|w| w.withdraw(id))
    }

    fn reconcile(&mut self, active: &[Decision]) -> Result<(), ActuatorError> {
        self.change(|w| w.replace(active))
    }
}

impl Drop for FilterActuator {
    /// Stops the thread. The XDP program stays attached and its pinned rules keep dropping
    /// until they expire (a restarted daemon reconciles them).
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn nft_enforcer() -> Result<Enforcer, String> {
    let version = std::process::Command::new("nft").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => Ok(Enforcer::Nft(NftFilter::new(vec!["nft".into()]))),
        _ => Err("the nftables fallback needs the `nft` program (Debian package nftables)".into()),
    }
}

fn load_xdp(settings: &FilterSettings) -> Result<XdpFilter, String> {
    let options = Options { pin_dir: Some(settings.pin_dir.clone()), ..Options::default() };
    let filter = XdpFilter::open(options)
        .map_err(|e| format!("loading XDP (pinned at {}): {}", settings.pin_dir.display(), chain(&e)))?;
    for (name, mode) in &settings.interfaces {
        let used =
            filter.attach(name, *mode).map_err(|e| format!("attaching XDP to {name}: {}", chain(&e)))?;
        eprintln!("filter: xdp attached to {name} ({used}), maps pinned at {}", settings.pin_dir.display());
    }
    Ok(filter)
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn wall_now() -> EventTime {
    EventTime::from_unix_nanos(wall_clock().0)
}

struct Worker {
    enforcer: Enforcer,
    shared: Arc<Shared>,
    stats: Arc<FilterStats>,
    syn_guards: Vec<SynGuard>,
    pin_dir: PathBuf,
    counters_every: Duration,
    counters_path: PathBuf,
    counters: CountersFile,
    /// The counts last written to the file.
    written: Option<BTreeMap<u64, Dropped>>,
    /// Why cookie SYN guards fall back to a per-source rate, as last reported (said once).
    cookie_fallback: Option<String>,
}

impl Worker {
    fn run(mut self) {
        let mut next_reading = Instant::now();
        // The last reconcile failed: retried at the next reading, not at once (a table that
        // keeps failing must not spin).
        let mut failed = false;
        loop {
            let wanted = {
                let Ok(state) = self.shared.state.lock() else { return };
                let timeout = next_reading.saturating_duration_since(Instant::now());
                let Ok((mut state, _)) =
                    self.shared.wake.wait_timeout_while(state, timeout, |s| !s.due && !s.stop)
                else {
                    return;
                };
                if state.stop {
                    return;
                }
                std::mem::take(&mut state.due).then(|| state.wanted.decisions())
            };
            if let Some(decisions) = wanted {
                // What the rules of withdrawn decisions dropped, before their slots go.
                self.read_counters();
                failed = false;
                if let Err(e) = self.reconcile(&decisions) {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("rampart: filter: {e}");
                    failed = true;
                }
            }
            if Instant::now() >= next_reading {
                self.read_counters();
                next_reading = Instant::now() + self.counters_every;
                if std::mem::take(&mut failed)
                    && let Ok(mut state) = self.shared.state.lock()
                {
                    state.due = true;
                }
            }
        }
    }

    fn reconcile(&mut self, decisions: &[Decision]) -> Result<(), String> {
        let started = Instant::now();
        let now = wall_now();
        let p = plan(decisions, &self.syn_guards, now);
        match &mut self.enforcer {
            Enforcer::Xdp(filter) => {
                let boot = boot_now_ns().map_err(|e| format!("reading /proc/uptime: {e}"))?;
                let report = filter
                    .reconcile(&p, now, boot)
                    .map_err(|e| format!("updating the XDP maps: {}", chain(&e)))?;
                // A delta reconcile (sources only) leaves the guards as they were: no news.
                if report.syn_guards > 0 && report.syn_cookie_fallback != self.cookie_fallback {
                    if let Some(why) = &report.syn_cookie_fallback {
                        eprintln!("rampart: filter: {why}");
                    }
                    self.cookie_fallback = report.syn_cookie_fallback;
                }
            }
            Enforcer::Nft(nft) => {
                nft.apply(&p, now)
                    .map_err(|e| format!("updating nftables table inet rampart: {}", chain(&e)))?;
            }
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.last_reconcile_micros.store(micros, Ordering::Relaxed);
        self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counters of the rules in force into the stats and the counters file.
    fn read_counters(&mut self) {
        let backend = match &self.enforcer {
            Enforcer::Xdp(_) => {
                let reading = boot_now_ns()
                    .map_err(|e| e.to_string())
                    .and_then(|boot| xdp::status(&self.pin_dir, boot).map_err(|e| chain(&e)));
                match reading {
                    Ok(status) => {
                        let rules: Vec<(u64, Dropped)> = status
                            .rules
                            .iter()
                            .filter(|r| r.decision != 0)
                            .map(|r| {
                                (r.decision, Dropped { packets: r.dropped_packets, bytes: r.dropped_bytes })
                            })
                            .collect();
                        self.counters.merge(&rules);
                        if let Ok(mut held) = self.stats.rules.lock() {
                            *held = rules;
                        }
                        if let Ok(mut packets) = self.stats.packets.lock() {
                            *packets =
                                Some([status.packets_seen, status.packets_passed, status.packets_dropped]);
                        }
                    }
                    Err(e) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("rampart: filter: reading counters: {e}");
                        return;
                    }
                }
                "xdp"
            }
            Enforcer::Nft(nft) => {
                if let Ok(n) = nft.dropped_packets() {
                    self.stats.nft_dropped.store(n, Ordering::Relaxed);
                }
                "nftables"
            }
        };
        // Written when something changed: an idle filter does not write every second.
        if self.written.as_ref() == Some(&self.counters.decisions) && self.counters.backend == backend {
            return;
        }
        self.counters.backend = backend.to_owned();
        self.counters.updated = wall_now().unix_micros() as f64 / 1e6;
        match write_atomically(&self.counters_path, &self.counters) {
            Ok(()) => self.written = Some(self.counters.decisions.clone()),
            Err(e) => eprintln!("rampart: filter: {e}"),
        }
    }
}

fn write_atomically(path: &Path, file: &CountersFile) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(file).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&tmp, body).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The filter part of `/metrics`.
pub fn encode_metrics(stats: &FilterStats, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    let backend = stats.backend.lock().map(|b| *b).unwrap_or("");
    {
        let mut family = encoder.encode_descriptor(
            "filter_backend",
            "The layer enforcing decisions on this host (1 for the one in use).",
            None,
            MetricType::Gauge,
        )?;
        for name in ["xdp", "nftables"] {
            ConstGauge::new(u64::from(name == backend))
                .encode(family.encode_family(&[("backend", name)])?)?;
        }
    }
    let rules = stats.rules.lock().map(|r| r.clone()).unwrap_or_default();
    for (name, help, get) in [
        (
            "filter_rule_dropped_packets",
            "Packets each decision's rule dropped.",
            (|d: &Dropped| d.packets) as fn(&Dropped) -> u64,
        ),
        ("filter_rule_dropped_bytes", "Bytes each decision's rule dropped.", |d: &Dropped| d.bytes),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (decision, dropped) in &rules {
            let id = decision.to_string();
            ConstCounter::new(get(dropped)).encode(family.encode_family(&[("decision", id.as_str())])?)?;
        }
    }
    if let Some([seen, passed, dropped]) = stats.packets.lock().ok().and_then(|p| *p) {
        let mut family = encoder.encode_descriptor(
            "filter_packets",
            "Packets the XDP program saw, by verdict.",
            None,
            MetricType::Counter,
        )?;
        for (verdict, n) in [("seen", seen), ("passed", passed), ("dropped", dropped)] {
            ConstCounter::new(n).encode(family.encode_family(&[("verdict", verdict)])?)?;
        }
    }
    let counters = [
        ("filter_reconciles", "Reconciles of the filter with the decisions in force.", &stats.reconciles),
        ("filter_errors", "Filter reconciles or counter readings that failed.", &stats.errors),
        ("filter_nftables_dropped", "Packets Rampart's nftables rules dropped.", &stats.nft_dropped),
    ];
    for (name, help, value) in counters {
        let metric = ConstCounter::new(value.load(Ordering::Relaxed));
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    let metric = ConstGauge::new(stats.last_reconcile_micros.load(Ordering::Relaxed));
    metric.encode(encoder.encode_descriptor(
        "filter_last_reconcile_microseconds",
        "How long the last reconcile took.",
        None,
        metric.metric_type(),
    )?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{Action, Origin, Scope};

    fn toml(text: &str) -> Result<FilterSettings, FilterTomlError> {
        toml::from_str::<FilterToml>(text).unwrap().resolve()
    }

    #[test]
    fn the_table_names_interfaces_modes_and_the_fallback() {
        let s = toml("interfaces = [\"eth0\", \"veth1=generic\"]\nmode = \"native\"\nfallback = false\nsyn_guards = [\"198.51.100.0/24=100\"]\n").unwrap();
        assert_eq!(
            s.interfaces,
            vec![("eth0".into(), AttachMode::Native), ("veth1".into(), AttachMode::Generic)]
        );
        assert_eq!(s.backend, Backend::Xdp);
        assert!(!s.fallback);
        assert_eq!(s.pin_dir, PathBuf::from(xdp::DEFAULT_PIN_DIR));
        assert_eq!(s.syn_guards[0].per_source_pps, 100);
        assert_eq!(toml("backend = \"nftables\"").unwrap().backend, Backend::Nftables);
        for (text, key) in [
            ("", "interfaces"),
            ("interfaces = [\"eth0=fast\"]", "interfaces"),
            ("interfaces = [\"eth0\", \"eth0\"]", "interfaces"),
            ("interfaces = [\"a/b\"]", "interfaces"),
            ("interfaces = [\"eth0\"]\nmode = \"x\"", "mode"),
            ("backend = \"iptables\"", "backend"),
            ("backend = \"nftables\"\nsyn_guards = [\"x=1\"]", "syn_guards"),
            ("backend = \"nftables\"\ncounters_ms = 1", "counters_ms"),
        ] {
            assert_eq!(toml(text).unwrap_err().key, key, "{text}");
        }
        assert!(toml::from_str::<FilterToml>("interface = [\"eth0\"]").is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_wanted_set_follows_apply_withdraw_and_reconcile() {
        let decision = |id| Decision {
            id: DecisionId(id),
            scope: Scope::Address("203.0.113.7".parse().unwrap()),
            action: Action::Discard,
            origin: Origin::Operator { name: "root".into() },
            created: EventTime::from_unix_secs(1),
            expires: None,
            reason: "test".into(),
        };
        let mut wanted = Wanted::default();
        wanted.apply(&decision(2));
        wanted.apply(&decision(1));
        wanted.apply(&decision(2));
        assert_eq!(wanted.decisions().iter().map(|d| d.id.0).collect::<Vec<_>>(), [1, 2]);
        wanted.withdraw(DecisionId(1));
        wanted.withdraw(DecisionId(9));
        assert_eq!(wanted.decisions().len(), 1);
        wanted.replace(&[decision(5)]);
        assert_eq!(wanted.decisions()[0].id, DecisionId(5));
    }

    #[test]
    fn counters_outlive_their_rules_and_never_go_back() {
        let mut file = CountersFile::default();
        file.merge(&[(1, Dropped { packets: 5, bytes: 500 }), (2, Dropped { packets: 1, bytes: 60 })]);
        file.merge(&[(2, Dropped { packets: 3, bytes: 180 })]);
        assert_eq!(file.decisions[&1], Dropped { packets: 5, bytes: 500 });
        assert_eq!(file.decisions[&2], Dropped { packets: 3, bytes: 180 });
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CountersFile::read(dir.path()).unwrap(), None);
        write_atomically(&dir.path().join(COUNTERS_FILE), &file).unwrap();
        assert_eq!(CountersFile::read(dir.path()).unwrap(), Some(file));
        std::fs::write(dir.path().join(COUNTERS_FILE), "{").unwrap();
        assert!(CountersFile::read(dir.path()).unwrap_err().contains(COUNTERS_FILE));
    }

    #[test]
    fn metrics_show_the_backend_and_each_rules_counters() {
        let stats = FilterStats::default();
        *stats.backend.lock().unwrap() = "xdp";
        *stats.rules.lock().unwrap() = vec![(7, Dropped { packets: 4, bytes: 144 })];
        *stats.packets.lock().unwrap() = Some([10, 6, 4]);
        stats.reconciles.store(2, Ordering::Relaxed);
        struct Only<'a>(&'a FilterStats);
        impl std::fmt::Debug for Only<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Only")
            }
        }
        impl prometheus_client::collector::Collector for Only<'static> {
            fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
                encode_metrics(self.0, &mut encoder)
            }
        }
        let stats: &'static FilterStats = Box::leak(Box::new(stats));
        let mut registry = prometheus_client::registry::Registry::with_prefix("rampart");
        registry.register_collector(Box::new(Only(stats)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "rampart_filter_backend{backend=\"xdp\"} 1",
            "rampart_filter_backend{backend=\"nftables\"} 0",
            "rampart_filter_rule_dropped_packets_total{decision=\"7\"} 4",
            "rampart_filter_rule_dropped_bytes_total{decision=\"7\"} 144",
            "rampart_filter_packets_total{verdict=\"dropped\"} 4",
            "rampart_filter_reconciles_total 2",
        ] {
            assert!(text.contains(expected), "{expected} missing:\n{text}");
        }
    }
}
