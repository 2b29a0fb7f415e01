//! The mitigator: policy's steps and operators' commands made durable, audited and handed to
//! the actuators. It owns the decision store (the one writer) and is driven by its caller's
//! clock: `on_events` and `tick` take `now`, so tests run it in simulated time too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use rampart_contract::{
    Action, Attack, AttackEvent, AttackId, Decision, DecisionId, EventTime, Origin, Scope,
};

use crate::actuator::{Actuator, Applied};
use crate::audit::{Actor, LeftOut};
use crate::config::MitigationConfig;
use crate::guard::{self, Refusal};
use crate::policy::{Planner, Step};
use crate::store::{Closing, DecisionStore, NewDecision, StoreError, StoredDecision};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct MitigationStats {
    /// Decisions enacted (dry run included), by action name.
    pub enacted: std::sync::Mutex<HashMap<&'static str, u64>>,
    pub withdrawn: AtomicU64,
    pub expired: AtomicU64,
    /// Refusals by guard ([`Refusal::name`]).
    pub refused: std::sync::Mutex<HashMap<&'static str, u64>>,
    /// Decisions in force (dry run included) after the last change.
    pub active: AtomicU64,
    pub dry_run: AtomicU64,
    pub store_errors: AtomicU64,
    pub actuator_errors: AtomicU64,
}

impl MitigationStats {
    fn count(map: &std::sync::Mutex<HashMap<&'static str, u64>>, key: &'static str) {
        if let Ok(mut map) = map.lock() {
            *map.entry(key).or_insert(0) += 1;
        }
    }
}

/// What an operator's command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Enacted(Box<Decision>),
    Withdrawn(Vec<DecisionId>),
    Refused(Refusal),
    NotFound,
}

/// An operator's unban: by id or by scope (every open decision on exactly that address or
/// prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unban {
    Id(DecisionId),
    Prefix(IpNet),
}

impl std::str::FromStr for Unban {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(id) = text.parse::<u64>() {
            return Ok(Unban::Id(DecisionId(id)));
        }
        parse_prefix(text).map(Unban::Prefix).ok_or_else(|| {
            format!("{text:?} is neither a decision id nor an address or prefix (e.g. 203.0.113.7, 203.0.113.0/24)")
        })
    }
}

/// An address (as a /32 or /128) or a prefix, host bits cleared.
pub fn parse_prefix(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Whether `unban PREFIX` takes a decision on `scope`: an address or prefix equal to it, or a
/// signature whose only destination it is (the automatic rules for that victim).
fn unban_matches(scope: &Scope, net: &IpNet) -> bool {
    match scope {
        Scope::Address(ip) => IpNet::from(*ip) == *net,
        Scope::Prefix(prefix) => prefix.trunc() == *net,
        Scope::Signature(signature) => {
            signature.dst_prefixes.len() == 1 && signature.dst_prefixes[0].trunc() == *net
        }
        _ => false,
    }
}

/// The writer of decisions.
pub struct Mitigator {
    store: DecisionStore,
    planner: Planner,
    actuators: Vec<Box<dyn Actuator>>,
    stats: Arc<MitigationStats>,
    /// The latest attack of each tracked attack id, for the notifications' JSON.
    attacks: HashMap<AttackId, Attack>,
    /// Inside a batch: what the actuators will be told once it is on disk.
    deferred: Option<Vec<Pending>>,
}

/// An actuator notification waiting for its batch to reach the disk.
#[derive(Debug)]
enum Pending {
    Apply(StoredDecision),
    Withdraw(StoredDecision),
}

impl std::fmt::Debug for Mitigator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mitigator")
            .field("store", &self.store)
            .field("planner", &self.planner)
            .finish_non_exhaustive()
    }
}

impl Mitigator {
    /// Takes the store, reconciles it at `now` (expired decisions closed) and hands every
    /// actuator the set in force.
    pub fn start(
        mut store: DecisionStore,
        config: MitigationConfig,
        actuators: Vec<Box<dyn Actuator>>,
        now: EventTime,
    ) -> Result<Mitigator, StoreError> {
        store.rotate_audit_at(config.audit_rotate_bytes);
        let mut mitigator = Mitigator {
            store,
            planner: Planner::new(config),
            actuators,
            stats: Arc::new(MitigationStats::default()),
            attacks: HashMap::new(),
            deferred: None,
        };
        let expired = mitigator.store.expire(now)?;
        mitigator.stats.expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
        let active = mitigator.store.active(now)?;
        let live: Vec<Decision> = active.iter().filter(|d| !d.dry_run).map(|d| d.decision.clone()).collect();
        for actuator in &mut mitigator.actuators {
            if let Err(e) = actuator.reconcile(&live) {
                mitigator.stats.actuator_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: mitigation: {}: reconcile: {e}", actuator.name());
            }
        }
        mitigator.refresh_gauges(now);
        Ok(mitigator)
    }

    pub fn stats(&self) -> Arc<MitigationStats> {
        self.stats.clone()
    }

    pub fn config(&self) -> &MitigationConfig {
        self.planner.config()
    }

    pub fn store(&self) -> &DecisionStore {
        &self.store
    }

    fn dry_run(&self) -> bool {
        self.planner.config().dry_run
    }

    fn refresh_gauges(&self, now: EventTime) {
        if let Ok(active) = self.store.active(now) {
            self.stats.active.store(active.len() as u64, Ordering::Relaxed);
            self.stats.dry_run.store(active.iter().filter(|d| d.dry_run).count() as u64, Ordering::Relaxed);
        }
    }

    fn store_failed(&self, error: &StoreError) {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("rampart: mitigation: {error}");
    }

    /// Starts a batch of store changes; actuators hear of them when it ends, once they are
    /// on disk.
    fn begin_batch(&mut self) {
        // Without a batch (the store refused one) every change syncs by itself: slower, not wrong.
        if let Err(e) = self.store.begin_batch() {
            self.store_failed(&e);
        }
        self.deferred.get_or_insert_with(Vec::new);
    }

    fn end_batch(&mut self) {
        if let Err(e) = self.store.end_batch() {
            // Act anyway: the changes are committed, only their sync failed (counted, said).
            self.store_failed(&e);
        }
        for pending in self.deferred.take().unwrap_or_default() {
            match pending {
                Pending::Apply(stored) => self.notify_apply(&stored),
                Pending::Withdraw(stored) => self.notify_withdraw(&stored),
            }
        }
    }

    fn notify_apply(&mut self, stored: &StoredDecision) {
        if let Some(deferred) = &mut self.deferred {
            deferred.push(Pending::Apply(stored.clone()));
            return;
        }
        let attack = match &stored.decision.origin {
            Origin::Attack { attack } => self.attacks.get(attack),
            _ => None,
        };
        let applied = Applied { decision: &stored.decision, attack, dry_run: stored.dry_run };
        for actuator in &mut self.actuators {
            if stored.dry_run && !actuator.in_dry_run() {
                continue;
            }
            if let Err(e) = actuator.apply(&applied) {
                self.stats.actuator_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: mitigation: {}: decision {}: {e}", actuator.name(), stored.decision.id.0);
            }
        }
    }

    fn notify_withdraw(&mut self, stored: &StoredDecision) {
        if let Some(deferred) = &mut self.deferred {
            deferred.push(Pending::Withdraw(stored.clone()));
            return;
        }
        for actuator in &mut self.actuators {
            if stored.dry_run && !actuator.in_dry_run() {
                continue;
            }
            if let Err(e) = actuator.withdraw(stored.decision.id, stored.dry_run) {
                self.stats.actuator_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: mitigation: {}: withdraw {}: {e}", actuator.name(), stored.decision.id.0);
            }
        }
    }

    /// Open decisions of `attack`.
    fn of_attack(&self, attack: AttackId, now: EventTime) -> Result<Vec<StoredDecision>, StoreError> {
        Ok(self
            .store
            .active(now)?
            .into_iter()
            .filter(|d| d.decision.origin == Origin::Attack { attack })
            .collect())
    }

    fn close(&mut self, id: DecisionId, how: Closing, by: Actor, reason: &str, now: EventTime) -> bool {
        match self.store.close(id, how, by, reason, now) {
            Ok(Some((stored, _))) => {
                let counter =
                    if how == Closing::Expired { &self.stats.expired } else { &self.stats.withdrawn };
                counter.fetch_add(1, Ordering::Relaxed);
                self.notify_withdraw(&stored);
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    fn run_steps(&mut self, steps: Vec<Step>, now: EventTime) {
        let dry_run = self.dry_run();
        for step in steps {
            match step {
                Step::Enact { attack, proposals } => {
                    let previous = self.of_attack(attack, now).unwrap_or_default();
                    let mut enacted = Vec::new();
                    for proposal in proposals {
                        let new = NewDecision {
                            scope: proposal.scope,
                            action: proposal.action,
                            origin: Origin::Attack { attack },
                            created: now,
                            expires: Some(proposal.expires),
                            reason: proposal.reason,
                            dry_run,
                            evidence: Some(*proposal.evidence),
                        };
                        match self.store.enact(new, now) {
                            Ok((stored, _)) => {
                                MitigationStats::count(
                                    &self.stats.enacted,
                                    guard::action_name(&stored.decision.action),
                                );
                                self.notify_apply(&stored);
                                enacted.push(stored.decision.id.0.to_string());
                            }
                            Err(e) => self.store_failed(&e),
                        }
                    }
                    if enacted.is_empty() {
                        // Nothing new in force: the old rules stay rather than leave a gap.
                        continue;
                    }
                    // The new rules are in force before the old ones go: no gap.
                    let noun = if enacted.len() == 1 { "decision" } else { "decisions" };
                    let reason = format!("replaced by {noun} {}", enacted.join(", "));
                    for old in previous {
                        self.close(
                            old.decision.id,
                            Closing::Withdrawn,
                            Actor::Attack { attack },
                            &reason,
                            now,
                        );
                    }
                }
                Step::Extend { attack, expires, reason } => {
                    for stored in self.of_attack(attack, now).unwrap_or_default() {
                        if let Err(e) = self.store.extend(
                            stored.decision.id,
                            Some(expires),
                            Actor::Attack { attack },
                            &reason,
                            now,
                        ) {
                            self.store_failed(&e);
                        }
                    }
                }
                Step::Refuse { attack, scope, action, refusal, rung, evidence } => {
                    MitigationStats::count(&self.stats.refused, refusal.name());
                    let reason = format!("{} refused: {refusal}", rung.name());
                    if let Err(e) = self.store.refuse(
                        scope,
                        action,
                        refusal,
                        Actor::Attack { attack },
                        &reason,
                        dry_run,
                        Some(*evidence),
                        now,
                    ) {
                        self.store_failed(&e);
                    }
                }
            }
        }
    }

    /// Takes one batch of attack events (with their store ids).
    pub fn on_events(&mut self, events: &[AttackEvent], now: EventTime) {
        self.begin_batch();
        for event in events {
            self.attacks.insert(event.attack.id, event.attack.clone());
            let steps = self.planner.on_event(event, now);
            self.run_steps(steps, now);
        }
        self.end_batch();
        self.refresh_gauges(now);
    }

    /// Advances time: escalation, lease renewal, expiry.
    pub fn tick(&mut self, now: EventTime) {
        self.begin_batch();
        let steps = self.planner.tick(now);
        self.run_steps(steps, now);
        let expired = self.store.expire(now);
        self.end_batch();
        match expired {
            Ok(expired) => {
                self.stats.expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
                for stored in &expired {
                    self.notify_withdraw(stored);
                }
            }
            Err(e) => self.store_failed(&e),
        }
        // Bounded by what the planner tracks.
        let planner = &self.planner;
        self.attacks.retain(|id, _| planner.is_tracked(*id));
        self.refresh_gauges(now);
    }

    /// Audits a route a BGP peer's budget left out (aggregated, dropped, duplicate); the
    /// speaker counts them.
    pub fn route_left_out(
        &mut self,
        peer: &str,
        decision: DecisionId,
        route: String,
        left_out: LeftOut,
        now: EventTime,
    ) {
        let reason = match &left_out {
            LeftOut::Aggregated { into } => {
                format!("peer {peer}: budget full, {route} aggregated into {into}")
            }
            LeftOut::Budget { budget } => {
                format!(
                    "peer {peer}: budget of {budget} rules full of higher-priority routes, {route} not announced"
                )
            }
            LeftOut::Duplicate { holder } => {
                format!("peer {peer}: {route} already announced for decision {}", holder.0)
            }
        };
        if let Err(e) = self.store.route_left_out(peer, decision, route, left_out, &reason, now) {
            self.store_failed(&e);
        }
    }

    /// An operator's ban: through the same guards as policy, never a dry run. A refusal is
    /// audited and returned.
    pub fn ban(
        &mut self,
        scope: Scope,
        action: Action,
        expires: Option<EventTime>,
        operator: &str,
        reason: &str,
        now: EventTime,
    ) -> Result<Outcome, StoreError> {
        let actor = Actor::Operator { name: operator.to_owned() };
        if let Err(refusal) = guard::check(&scope, &action, &self.planner.config().guards) {
            MitigationStats::count(&self.stats.refused, refusal.name());
            let why = format!("operator ban refused: {refusal} ({reason})");
            self.store.refuse(scope, action, refusal.clone(), actor, &why, false, None, now)?;
            return Ok(Outcome::Refused(refusal));
        }
        let new = NewDecision {
            scope,
            action,
            origin: Origin::Operator { name: operator.to_owned() },
            created: now,
            expires,
            reason: reason.to_owned(),
            dry_run: false,
            evidence: None,
        };
        let (stored, _) = self.store.enact(new, now)?;
        MitigationStats::count(&self.stats.enacted, guard::action_name(&stored.decision.action));
        self.notify_apply(&stored);
        self.refresh_gauges(now);
        Ok(Outcome::Enacted(Box::new(stored.decision)))
    }

    /// An operator's unban, by id or by scope.
    pub fn unban(
        &mut self,
        which: &Unban,
        operator: &str,
        reason: &str,
        now: EventTime,
    ) -> Result<Outcome, StoreError> {
        let ids: Vec<DecisionId> = self
            .store
            .active(now)?
            .into_iter()
            .filter(|d| match which {
                Unban::Id(id) => d.decision.id == *id,
                Unban::Prefix(net) => unban_matches(&d.decision.scope, net),
            })
            .map(|d| d.decision.id)
            .collect();
        if ids.is_empty() {
            return Ok(Outcome::NotFound);
        }
        let actor = Actor::Operator { name: operator.to_owned() };
        let mut done = Vec::new();
        for id in ids {
            if self.close(id, Closing::Withdrawn, actor.clone(), reason, now) {
                done.push(id);
            }
        }
        self.refresh_gauges(now);
        Ok(Outcome::Withdrawn(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuator::ActuatorError;
    use crate::audit;
    use rampart_contract::{
        Direction, EventKind, Level, Metric, PortRange, Signature, Target, Trigger, Vector,
    };
    use std::sync::Mutex;

    /// Records what it was asked to do.
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Actuator for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
            let d = applied.decision;
            self.0.lock().unwrap().push(format!("apply {} {}", d.id.0, guard::action_name(&d.action)));
            Ok(())
        }
        fn withdraw(&mut self, id: DecisionId, _dry_run: bool) -> Result<(), ActuatorError> {
            self.0.lock().unwrap().push(format!("withdraw {}", id.0));
            Ok(())
        }
        fn reconcile(&mut self, active: &[Decision]) -> Result<(), ActuatorError> {
            let ids: Vec<String> = active.iter().map(|d| d.id.0.to_string()).collect();
            self.0.lock().unwrap().push(format!("reconcile [{}]", ids.join(",")));
            Ok(())
        }
    }

    fn t(secs: u64) -> EventTime {
        EventTime::from_unix_secs(1_800_000_000 + secs)
    }

    fn config(dry_run: bool) -> MitigationConfig {
        let mut c = MitigationConfig { dry_run, ..MitigationConfig::default() };
        c.guards.protected = vec!["198.51.100.0/24".parse().unwrap()];
        c.guards.allowlist = vec!["198.51.100.53/32".parse().unwrap()];
        c
    }

    fn attack(id: u64) -> AttackEvent {
        let trigger = Trigger::new(Level::Host, Metric::Pps, 500, 100, t(0));
        let mut a = Attack::new(
            AttackId(id),
            Target::Host("198.51.100.10".parse().unwrap()),
            Direction::Inbound,
            trigger,
        );
        a.vectors = vec![Vector::UdpFlood];
        a.signature = Signature {
            dst_prefixes: vec!["198.51.100.10/32".parse().unwrap()],
            protocol: Some(17),
            dst_ports: vec![PortRange::single(123)],
            ..Signature::default()
        }
        .with_samples(1_000);
        AttackEvent { kind: EventKind::Onset, attack: a }
    }

    fn audit_changes(dir: &std::path::Path) -> Vec<(String, bool)> {
        let text = std::fs::read_to_string(dir.join(audit::FILE_NAME)).unwrap();
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let change = v["record"]["change"].as_object().unwrap().keys().next().unwrap().clone();
                (change, v["record"]["dry_run"].as_bool().unwrap())
            })
            .collect()
    }

    /// One attack from onset to the end of its hold, in simulated time; returns the audit.
    fn lifecycle(dir: &std::path::Path, dry_run: bool, recorder: &Recorder) -> Vec<(String, bool)> {
        let store = DecisionStore::open(dir).unwrap();
        let mut m = Mitigator::start(store, config(dry_run), vec![Box::new(recorder.clone())], t(0)).unwrap();
        let onset = attack(7);
        m.on_events(std::slice::from_ref(&onset), t(0));
        for s in 1..=70 {
            m.tick(t(s));
        }
        let end = AttackEvent { kind: EventKind::End, ..onset };
        m.on_events(&[end], t(70));
        for s in 71..=400 {
            m.tick(t(s));
        }
        assert_eq!(m.store().active(t(400)).unwrap().len(), 0, "withdrawn after the hold");
        audit_changes(dir)
    }

    #[test]
    fn dry_run_writes_the_same_audit_as_live_and_enacts_nothing() {
        let live_dir = tempfile::tempdir().unwrap();
        let dry_dir = tempfile::tempdir().unwrap();
        let live_actuator = Recorder::default();
        let dry_actuator = Recorder::default();
        let live = lifecycle(live_dir.path(), false, &live_actuator);
        let dry = lifecycle(dry_dir.path(), true, &dry_actuator);
        let kinds = |a: &[(String, bool)]| a.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(kinds(&live), kinds(&dry));
        assert!(live.iter().all(|(_, d)| !d) && dry.iter().all(|(_, d)| *d));
        // notify, rate limit (replacing notify), discard (replacing the rate limit), the hold, expiry.
        assert_eq!(
            kinds(&live),
            ["enact", "enact", "withdraw", "enact", "withdraw", "extend", "expire"],
            "{live:?}"
        );
        let calls = live_actuator.0.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                "reconcile []",
                "apply 1 notify",
                "apply 2 rate_limit_bytes",
                "withdraw 1",
                "apply 3 discard",
                "withdraw 2",
                "withdraw 3"
            ]
        );
        assert_eq!(
            dry_actuator.0.lock().unwrap().clone(),
            ["reconcile []"],
            "dry run: actuators see nothing"
        );
        audit::verify(&live_dir.path().join(audit::FILE_NAME), None).unwrap();
    }

    #[test]
    fn a_rotated_audit_log_verifies_across_its_files_and_a_restart_continues_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(false);
        c.audit_rotate_bytes = Some(2_048);
        let store = DecisionStore::open(dir.path()).unwrap();
        let mut m = Mitigator::start(store, c.clone(), Vec::new(), t(0)).unwrap();
        for i in 0..12 {
            let scope = Scope::Address(format!("203.0.113.{}", i + 1).parse().unwrap());
            m.ban(scope, Action::Discard, Some(t(600)), "alice", "scanner", t(i)).unwrap();
        }
        drop(m);
        let rotated = audit::rotated_files(&dir.path().join(audit::FILE_NAME)).unwrap();
        assert!(rotated.len() >= 2, "{rotated:?}");
        let store = DecisionStore::open(dir.path()).unwrap();
        let mut m = Mitigator::start(store, c, Vec::new(), t(20)).unwrap();
        m.unban(&Unban::Id(DecisionId(1)), "bob", "done", t(21)).unwrap();
        drop(m);
        let reader = crate::store::DecisionReader::open(dir.path()).unwrap().unwrap();
        let verified = reader.verify_audit().unwrap().unwrap();
        assert_eq!(verified.records, 13);
        assert_eq!(verified.beyond_anchor, 0);
    }

    #[test]
    fn unbanning_a_victim_lifts_its_automatic_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = DecisionStore::open(dir.path()).unwrap();
        let mut m = Mitigator::start(store, config(false), Vec::new(), t(0)).unwrap();
        m.on_events(&[attack(1)], t(0));
        let outcome = m.unban(&"198.51.100.10".parse().unwrap(), "alice", "false positive", t(1)).unwrap();
        assert_eq!(outcome, Outcome::Withdrawn(vec![DecisionId(1)]));
        let bad_mark = m.ban(
            Scope::Address("203.0.113.1".parse().unwrap()),
            Action::Mark { dscp: 64 },
            None,
            "a",
            "x",
            t(2),
        );
        assert!(matches!(bad_mark.unwrap(), Outcome::Refused(Refusal::Unsupported { .. })));
    }

    #[test]
    fn operators_pass_the_guards_and_restarts_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        {
            let store = DecisionStore::open(dir.path()).unwrap();
            let mut m =
                Mitigator::start(store, config(false), vec![Box::new(recorder.clone())], t(0)).unwrap();
            let resolver = Scope::Address("198.51.100.53".parse().unwrap());
            let outcome = m.ban(resolver, Action::Blackhole, None, "alice", "test", t(1)).unwrap();
            assert!(matches!(outcome, Outcome::Refused(Refusal::Allowlisted { .. })), "{outcome:?}");
            let attacker = Scope::Address("203.0.113.9".parse().unwrap());
            let outcome =
                m.ban(attacker.clone(), Action::Discard, Some(t(60)), "alice", "scanner", t(1)).unwrap();
            assert!(matches!(outcome, Outcome::Enacted(_)));
            let victim = Scope::Prefix("198.51.100.10/32".parse().unwrap());
            m.ban(victim, Action::Blackhole, None, "alice", "last resort", t(2)).unwrap();
            let unbanned = m.unban(&"198.51.100.10".parse().unwrap(), "bob", "over", t(3)).unwrap();
            assert_eq!(unbanned, Outcome::Withdrawn(vec![DecisionId(2)]));
            assert_eq!(m.unban(&Unban::Id(DecisionId(99)), "bob", "?", t(3)).unwrap(), Outcome::NotFound);
            assert_eq!(m.stats().refused.lock().unwrap().get("allowlisted"), Some(&1));
        }
        // Restarted after the ban's expiry: closed at start, actuators get the empty set.
        let store = DecisionStore::open(dir.path()).unwrap();
        let m = Mitigator::start(store, config(false), vec![Box::new(recorder.clone())], t(100)).unwrap();
        assert_eq!(m.store().active(t(100)).unwrap().len(), 0);
        assert_eq!(recorder.0.lock().unwrap().last().unwrap(), "reconcile []");
        let records = audit_changes(dir.path());
        let kinds: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["refuse", "enact", "enact", "withdraw", "expire"]);
        // The refusal explains itself.
        let text = std::fs::read_to_string(dir.path().join(audit::FILE_NAME)).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first["record"]["reason"].as_str().unwrap().contains("allowlisted"), "{first}");
    }

    #[test]
    fn per_vector_rules_are_enacted_audited_and_withdrawn_together() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let store = DecisionStore::open(dir.path()).unwrap();
        let mut m = Mitigator::start(store, config(false), vec![Box::new(recorder.clone())], t(0)).unwrap();
        let mut onset = attack(7);
        let whole = onset.attack.signature.clone();
        let dst = whole.dst_prefixes.clone();
        onset.attack.vectors = vec![Vector::SynFlood, Vector::DnsAmplification];
        onset.attack.signature =
            Signature { dst_prefixes: dst.clone(), ..Signature::default() }.with_samples(900);
        let share = |vector, signature: Signature| rampart_contract::VectorShare {
            vector,
            packets: signature.samples,
            percent: 50.0,
            signature,
        };
        let syn = Signature {
            dst_prefixes: dst.clone(),
            protocol: Some(6),
            dst_ports: vec![PortRange::single(443)],
            ..Signature::default()
        }
        .with_samples(500);
        let dns = Signature {
            dst_prefixes: dst,
            protocol: Some(17),
            src_ports: vec![PortRange::single(53)],
            ..Signature::default()
        }
        .with_samples(400);
        onset.attack.vector_shares =
            vec![share(Vector::SynFlood, syn.clone()), share(Vector::DnsAmplification, dns.clone())];
        m.on_events(std::slice::from_ref(&onset), t(0));
        for s in 1..=40 {
            m.tick(t(s));
        }
        let active = m.store().active(t(40)).unwrap();
        let scopes: Vec<&Scope> = active.iter().map(|d| &d.decision.scope).collect();
        assert_eq!(scopes, [&Scope::Signature(Box::new(syn)), &Scope::Signature(Box::new(dns))]);
        let end = AttackEvent { kind: EventKind::End, ..onset };
        m.on_events(&[end], t(40));
        for s in 41..=400 {
            m.tick(t(s));
        }
        assert!(m.store().active(t(400)).unwrap().is_empty());
        assert_eq!(
            recorder.0.lock().unwrap().clone(),
            [
                "reconcile []",
                "apply 1 notify",
                "apply 2 rate_limit_bytes",
                "apply 3 rate_limit_bytes",
                "withdraw 1",
                "withdraw 2",
                "withdraw 3"
            ]
        );
        let kinds: Vec<String> = audit_changes(dir.path()).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            ["enact", "refuse", "enact", "enact", "withdraw", "extend", "extend", "expire", "expire"]
        );
        // Each rule is audited with its vector and that vector's signature.
        let text = std::fs::read_to_string(dir.path().join(audit::FILE_NAME)).unwrap();
        let vectors: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["record"]["change"]["enact"].is_object())
            .map(|v| v["record"]["evidence"]["vector"].as_str().unwrap_or("-").to_owned())
            .collect();
        assert_eq!(vectors, ["-", "syn_flood", "dns_amplification"]);
        audit::verify(&dir.path().join(audit::FILE_NAME), None).unwrap();
    }
}
