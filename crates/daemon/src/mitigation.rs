//! Mitigation in the daemon: the [`MitigationSink`] feeds attack events (with their store ids)
//! through policy and the guards into decisions; the control socket lets `rampart ban` and
//! `rampart unban` reach the same mitigator; `/metrics` shows decisions and refusals.
//!
//! The mitigator sits behind one mutex, taken by the output thread (events, ticks) and by the
//! control socket's requests; both hold it for one store commit at most. Notification scripts
//! run on their own thread (`rampart_mitigate::script`), so neither a slow script nor a slow
//! disk reaches the detection task.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use rampart_bgp::budget::WidenGuard;
use rampart_bgp::driver::{PeerRefusal, Speaker};
use rampart_bgp::rib::Refusal as BgpRefusal;
use rampart_contract::{Action, Decision, DecisionId, EventTime, Scope};
use rampart_detect::AttackEvent;
use rampart_mitigate::audit::LeftOut;
use rampart_mitigate::control::{self, Access, Handler, Request, Response};
use rampart_mitigate::guard;
use rampart_mitigate::script::{Notice, ScriptActuator, ScriptStats};
use rampart_mitigate::{
    Actuator, ActuatorError, Applied, DecisionStore, MitigationConfig, MitigationStats, Mitigator, Outcome,
    Refusal,
};
use tokio::sync::watch;

use crate::sink::{EventSink, SinkError};
use crate::webhook::WebhookQueue;
use crate::{DaemonError, setup, wall_clock};

/// Decision changes onto the daemon's webhook queue (bounded, never blocking; delivery,
/// timeouts, retries and signatures are the webhook's), as the script's [`Notice`] JSON.
#[derive(Debug)]
pub struct WebhookActuator {
    queue: WebhookQueue,
}

impl WebhookActuator {
    pub fn new(queue: WebhookQueue) -> Self {
        WebhookActuator { queue }
    }

    fn push(&self, notice: &Notice<'_>) -> Result<(), ActuatorError> {
        let body = serde_json::to_string(notice).map_err(|e| ActuatorError(e.to_string()))?;
        self.queue.push(body);
        Ok(())
    }
}

impl Actuator for WebhookActuator {
    fn name(&self) -> &str {
        "webhook"
    }

    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
        self.push(&Notice::enact(applied))
    }

    fn withdraw(&mut self, id: DecisionId, dry_run: bool) -> Result<(), ActuatorError> {
        self.push(&Notice::withdraw(id, dry_run))
    }

    fn reconcile(&mut self, _active: &[Decision]) -> Result<(), ActuatorError> {
        Ok(())
    }

    fn in_dry_run(&self) -> bool {
        true
    }
}

/// The mitigator as the daemon shares it.
pub type Shared = Arc<Mutex<Mitigator>>;

/// What [`start`] set up.
#[derive(Debug)]
pub struct Started {
    pub mitigator: Shared,
    pub stats: Arc<MitigationStats>,
    pub script: Option<Arc<ScriptStats>>,
}

/// Announces decisions as FlowSpec and RTBH routes through the BGP speaker (`[bgp]`). The
/// speaker's own tasks talk to the routers: these calls only change its desired set.
pub struct BgpActuator {
    speaker: Arc<Speaker>,
}

impl std::fmt::Debug for BgpActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgpActuator").finish_non_exhaustive()
    }
}

impl Actuator for BgpActuator {
    fn name(&self) -> &str {
        "bgp"
    }

    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
        self.speaker.announce(applied.decision).map_err(|e| ActuatorError(format!("bgp: {e}")))
    }

    fn withdraw(&mut self, id: DecisionId, _dry_run: bool) -> Result<(), ActuatorError> {
        self.speaker.withdraw(id);
        Ok(())
    }

    fn reconcile(&mut self, active: &[Decision]) -> Result<(), ActuatorError> {
        let refused = self.speaker.set_active(active);
        match refused.first() {
            None => Ok(()),
            Some((id, e)) => Err(ActuatorError(format!(
                "bgp: {} decision(s) not announced, first #{}: {e}",
                refused.len(),
                id.0
            ))),
        }
    }
}

fn now() -> EventTime {
    EventTime::from_unix_nanos(wall_clock().0)
}

/// Opens the decision store in `data_dir` (reconciling it), starts the actuators (the script,
/// and the webhook when `[mitigation] webhook = true` and `webhook` is configured; the BGP
/// speaker and the host filter when given).
pub fn start(
    config: &MitigationConfig,
    data_dir: &Path,
    webhook: Option<&WebhookQueue>,
    speaker: Option<Arc<Speaker>>,
    filter: Option<crate::filter::FilterActuator>,
    shield: Option<crate::shield::ShieldActuator>,
) -> Result<Started, DaemonError> {
    let store = DecisionStore::open(data_dir).map_err(|e| setup!("mitigation: {e}"))?;
    for warning in store.warnings() {
        eprintln!("rampart: {warning}");
    }
    let mut actuators: Vec<Box<dyn Actuator>> = Vec::new();
    let mut script = None;
    if let Some(settings) = &config.script {
        let actuator =
            ScriptActuator::start(settings.clone()).map_err(|e| setup!("mitigation script: {e}"))?;
        script = Some(actuator.stats.clone());
        actuators.push(Box::new(actuator));
    }
    if let Some(speaker) = speaker {
        actuators.push(Box::new(BgpActuator { speaker }));
    }
    if let Some(filter) = filter {
        actuators.push(Box::new(filter));
    }
    if let Some(shield) = shield {
        actuators.push(Box::new(shield));
    }
    match (config.webhook, webhook) {
        (true, Some(queue)) => actuators.push(Box::new(WebhookActuator::new(queue.clone()))),
        (true, None) => {
            return Err(setup!("mitigation.webhook = true needs [outputs] webhook (or --webhook)"));
        }
        _ => {}
    }
    let mitigator =
        Mitigator::start(store, config.clone(), actuators, now()).map_err(|e| setup!("mitigation: {e}"))?;
    let stats = mitigator.stats();
    let active = mitigator.store().active(now()).map(|a| a.len()).unwrap_or(0);
    eprintln!(
        "mitigation {} ({} decision(s) in force); decisions in {}",
        if config.dry_run { "in dry run: recording what it would do, enacting nothing" } else { "live" },
        active,
        mitigator.store().path().display()
    );
    Ok(Started { mitigator: Arc::new(Mutex::new(mitigator)), stats, script })
}

/// Binds the control socket in `data_dir` and serves it until `stop`.
pub fn control_socket(
    mitigator: Shared,
    config: &MitigationConfig,
    data_dir: &Path,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let gid = match &config.control_group {
        Some(group) => Some(
            control::resolve_group(group)
                .ok_or_else(|| setup!("mitigation.control_group: no group {group:?} in /etc/group"))?,
        ),
        None => None,
    };
    let path = config.control_socket_in(data_dir);
    let listener = control::bind(&path, gid)
        .map_err(|e| setup!("cannot open the control socket {}: {e}", path.display()))?;
    eprintln!("control socket {}", path.display());
    let handler: Handler = Arc::new(move |request, peer| handle(&mitigator, request, &peer.name()));
    Ok(tokio::spawn(control::serve(listener, Access::daemon(gid), handler, stop)))
}

/// Carries out one authorized request as `operator`.
pub fn handle(mitigator: &Shared, request: Request, operator: &str) -> Response {
    let Ok(mut mitigator) = mitigator.lock() else {
        return Response::Error { message: "the mitigator is unavailable".into() };
    };
    let now = now();
    let outcome = match request {
        Request::Ban { scope, action, duration_secs, reason } => {
            let expires = duration_secs.map(|secs| {
                EventTime::from_unix_micros(now.unix_micros().saturating_add(secs.saturating_mul(1_000_000)))
            });
            mitigator.ban(scope, action, expires, operator, &reason, now)
        }
        Request::Unban { which, reason } => match which.parse() {
            Ok(which) => mitigator.unban(&which, operator, &reason, now),
            Err(message) => return Response::Error { message },
        },
    };
    match outcome {
        Ok(Outcome::Enacted(decision)) => Response::Enacted { decision },
        Ok(Outcome::Withdrawn(ids)) => Response::Withdrawn { ids },
        Ok(Outcome::Refused(refusal)) => Response::Refused { reason: refusal.to_string() },
        Ok(Outcome::NotFound) => Response::NotFound,
        Err(e) => Response::Error { message: e.to_string() },
    }
}

/// The mitigation event sink: after the store (attack ids are persistent by then).
#[derive(Debug)]
pub struct MitigationSink {
    mitigator: Shared,
}

impl MitigationSink {
    pub fn new(mitigator: Shared) -> Self {
        MitigationSink { mitigator }
    }
}

impl EventSink for MitigationSink {
    fn name(&self) -> &'static str {
        "mitigation"
    }

    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
        let mut mitigator =
            self.mitigator.lock().map_err(|_| SinkError("the mitigator is unavailable".into()))?;
        mitigator.on_events(events, now());
        Ok(())
    }

    fn tick(&mut self) {
        if let Ok(mut mitigator) = self.mitigator.lock() {
            mitigator.tick(now());
        }
    }
}

/// The speaker's widening guard: a route's destination may grow (to fit a peer's budget) only
/// to a prefix mitigation's own guards would let a blackhole name: inside the protected
/// networks, clear of every allowlisted address, not shorter than the minimum; and a widened
/// rule's summed collateral estimate stays within `max_collateral_percent`.
pub fn widen_guard(config: &MitigationConfig) -> WidenGuard {
    let guards = config.guards.clone();
    let limit = guards.max_collateral_percent;
    WidenGuard::new(move |prefix| guard::check(&Scope::Prefix(*prefix), &Action::Blackhole, &guards).is_ok())
        .with_collateral_limit(limit)
}

/// What the audit log says of a route left out.
fn left_out(report: &PeerRefusal) -> LeftOut {
    match &report.refused.why {
        BgpRefusal::Aggregated { into } => LeftOut::Aggregated { into: into.to_string() },
        BgpRefusal::OverBudget => LeftOut::Budget { budget: report.budget as u64 },
        BgpRefusal::Duplicate { holder } => LeftOut::Duplicate { holder: *holder },
    }
}

/// Audits every route a BGP peer leaves out (the speaker counts them for `/metrics`), off the
/// runtime's threads (each record is a synced write), until `stop`.
pub fn audit_left_out(
    speaker: &Speaker,
    mitigator: Shared,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut reports = speaker.take_refusals()?;
    Some(tokio::spawn(async move {
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                n = reports.recv_many(&mut batch, 256) => if n == 0 { return },
                _ = stop.changed() => return,
            }
            let mitigator = mitigator.clone();
            let written = tokio::task::spawn_blocking(move || {
                let Ok(mut mitigator) = mitigator.lock() else { return };
                for report in batch {
                    let why = left_out(&report);
                    let route = report.refused.route.key.to_string();
                    mitigator.route_left_out(&report.peer, report.refused.route.decision, route, why, now());
                }
            });
            let _ = written.await;
        }
    }))
}

/// The BGP part of `/metrics`: each peer's session, routes and routes left out by why.
pub fn encode_bgp_metrics(speaker: &Speaker, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    let peers = speaker.status();
    {
        let mut family = encoder.encode_descriptor(
            "bgp_refusals",
            "Decisions' routes a BGP peer does not hold, by peer and reason: budget (dropped, lower \
             priority), aggregated (covered by a wider route), duplicate (the same route of another decision).",
            None,
            MetricType::Counter,
        )?;
        for peer in &peers {
            for reason in BgpRefusal::NAMES {
                let n = peer.refusals.get(reason);
                ConstCounter::new(n)
                    .encode(family.encode_family(&[("peer", peer.name.as_str()), ("reason", reason)])?)?;
            }
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "bgp_routes",
            "Routes each BGP peer holds.",
            None,
            MetricType::Gauge,
        )?;
        for peer in &peers {
            ConstGauge::new(peer.routes as i64)
                .encode(family.encode_family(&[("peer", peer.name.as_str())])?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "bgp_established",
            "1 while the session with the peer is established.",
            None,
            MetricType::Gauge,
        )?;
        for peer in &peers {
            let up = i64::from(peer.state == rampart_bgp::session::State::Established);
            ConstGauge::new(up).encode(family.encode_family(&[("peer", peer.name.as_str())])?)?;
        }
    }
    let dropped = ConstCounter::new(speaker.reports_dropped());
    dropped.encode(encoder.encode_descriptor(
        "bgp_refusal_reports_dropped",
        "Routes left out whose audit record was dropped: the audit writer fell behind.",
        None,
        dropped.metric_type(),
    )?)?;
    Ok(())
}

/// The mitigation part of `/metrics`.
pub fn encode_metrics(
    stats: &MitigationStats,
    script: Option<&ScriptStats>,
    encoder: &mut DescriptorEncoder<'_>,
) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    {
        let mut family = encoder.encode_descriptor(
            "mitigation_decisions",
            "Decisions enacted (dry run included), by action.",
            None,
            MetricType::Counter,
        )?;
        let enacted = stats.enacted.lock().map(|m| m.clone()).unwrap_or_default();
        let mut actions: Vec<_> = enacted.into_iter().collect();
        actions.sort_unstable();
        for (action, n) in actions {
            ConstCounter::new(n).encode(family.encode_family(&[("action", action)])?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "mitigation_refusals",
            "Decisions the safety guards refused, by guard.",
            None,
            MetricType::Counter,
        )?;
        let refused = stats.refused.lock().map(|m| m.clone()).unwrap_or_default();
        for name in Refusal::NAMES {
            let n = refused.get(name).copied().unwrap_or(0);
            ConstCounter::new(n).encode(family.encode_family(&[("guard", name)])?)?;
        }
    }
    let counters = [
        ("mitigation_withdrawn", "Decisions withdrawn before their expiry.", &stats.withdrawn),
        ("mitigation_expired", "Decisions that reached their expiry.", &stats.expired),
        ("mitigation_store_errors", "Decision store operations that failed.", &stats.store_errors),
        ("mitigation_actuator_errors", "Actuator calls that failed.", &stats.actuator_errors),
    ];
    for (name, help, value) in counters {
        let metric = ConstCounter::new(value.load(Ordering::Relaxed));
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    let gauges = [
        ("mitigation_active", "Decisions in force (dry run included).", &stats.active),
        ("mitigation_dry_run", "Of which dry run (recorded, not enacted).", &stats.dry_run),
    ];
    for (name, help, value) in gauges {
        let metric = ConstGauge::new(value.load(Ordering::Relaxed));
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    if let Some(script) = script {
        let counters = [
            ("script_runs", "Notification script runs.", &script.runs),
            ("script_failures", "Script runs that exited non-zero or crashed.", &script.failures),
            ("script_timeouts", "Script runs killed at the timeout.", &script.timeouts),
            ("script_dropped", "Notifications dropped: the script queue was full.", &script.dropped),
            ("script_spawn_errors", "Script runs that could not start.", &script.spawn_errors),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value.load(Ordering::Relaxed));
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::Origin;

    #[test]
    fn the_webhook_gets_each_change_as_json_without_waiting() {
        let queue = WebhookQueue::new(2);
        let mut actuator = WebhookActuator::new(queue.clone());
        let decision = Decision {
            id: DecisionId(3),
            scope: Scope::Address("203.0.113.7".parse().unwrap()),
            action: Action::Discard,
            origin: Origin::Operator { name: "root".into() },
            created: EventTime::from_unix_secs(1),
            expires: None,
            reason: "test".into(),
        };
        actuator.apply(&Applied { decision: &decision, attack: None, dry_run: true }).unwrap();
        actuator.withdraw(DecisionId(3), true).unwrap();
        // A full queue drops the oldest (counted by the webhook), never blocks.
        actuator.withdraw(DecisionId(4), true).unwrap();
        assert_eq!(queue.stats.dropped.load(Ordering::Relaxed), 1);
        let first: serde_json::Value = serde_json::from_str(&queue.pop().unwrap()).unwrap();
        assert_eq!(first["change"], "withdraw");
        assert_eq!(first["decision_id"], 3);
        assert_eq!(first["schema_version"], 1);
        let second: serde_json::Value = serde_json::from_str(&queue.pop().unwrap()).unwrap();
        assert_eq!(second["decision_id"], 4);
    }
}
