//! Policy and escalation, pure: attack events and `now` in, [`Step`]s out. No store, no clock.
//!
//! Per attack, the ladder of its host group (or the default): the first rung at onset, the
//! next after the attack has lasted `step` at a rung, RTBH of the victim only for a host target
//! whose current rate exceeds the configured share of link capacity. A rung a guard refuses is
//! reported ([`Step::Refuse`]) and, when the policy allows fallback, the next rung is tried at
//! once. While the attack goes on its decision is leased and renewed; when it ends, the
//! decision's expiry becomes the end plus the hold. A repeat offender (a target attacked again
//! while its score has not decayed) escalates faster and is held longer.
//!
//! Outbound attacks and targets whose policy is `alert` only ever notify; `ignore` does nothing.

use std::collections::HashMap;
use std::time::Duration;

use rampart_contract::{
    Action, Attack, AttackEvent, AttackId, Confidence, Direction, EventKind, EventTime, Policy, Scope, Target,
};

use crate::audit::Evidence;
use crate::config::{GroupPolicy, MitigationConfig, Rung};
use crate::guard::{self, Refusal};

/// A decision policy proposes for an attack.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub scope: Scope,
    pub action: Action,
    pub expires: EventTime,
    pub rung: Rung,
    pub reason: String,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Put `proposal` in force for `attack`, withdrawing what the attack had in force before.
    Enact { attack: AttackId, proposal: Proposal, evidence: Box<Evidence> },
    /// Move the expiry of the attack's decision.
    Extend { attack: AttackId, expires: EventTime, reason: String },
    /// A guard refused a rung; nothing changes for it.
    Refuse {
        attack: AttackId,
        scope: Scope,
        action: Action,
        refusal: Refusal,
        rung: Rung,
        evidence: Box<Evidence>,
    },
}

#[derive(Debug, Clone)]
struct Tracked {
    attack: Attack,
    ladder: Vec<Rung>,
    policy: GroupPolicy,
    /// Index of the rung in force.
    rung: Option<usize>,
    since: EventTime,
    /// `1 + score` of the target at onset.
    factor: f64,
    ended: Option<EventTime>,
    /// Expiry of the decision in force.
    expires: Option<EventTime>,
    /// No rung above the current one can be had until something changes (an update).
    exhausted: bool,
    /// The rung that waits for a signature backed by enough evidence: tried as soon as an
    /// update brings one, not a whole step later.
    awaiting_evidence: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Offender {
    score: f64,
    at: EventTime,
}

/// The escalation state of every attack mitigation knows of.
#[derive(Debug)]
pub struct Planner {
    config: MitigationConfig,
    attacks: HashMap<AttackId, Tracked>,
    offenders: HashMap<String, Offender>,
}

fn after(at: EventTime, wait: Duration) -> EventTime {
    EventTime::from_unix_micros(
        at.unix_micros().saturating_add(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)),
    )
}

fn scaled(wait: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// The evidence of a change for `attack`.
pub fn evidence(attack: &Attack, rung: Option<Rung>) -> Evidence {
    Evidence {
        attack: attack.id,
        target: attack.target.clone(),
        vectors: attack.vectors.clone(),
        current_bps: attack.current_bps,
        current_pps: attack.current_pps,
        peak_bps: attack.peak_bps,
        peak_pps: attack.peak_pps,
        signature: attack.signature.clone(),
        rung,
    }
}

fn describe(attack: &Attack) -> String {
    let vectors = attack.vectors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let vectors = if vectors.is_empty() { "attack".to_owned() } else { vectors };
    format!("{vectors} on {} ({} bit/s, {} packets/s)", attack.target, attack.current_bps, attack.current_pps)
}

impl Planner {
    pub fn new(config: MitigationConfig) -> Self {
        Planner { config, attacks: HashMap::new(), offenders: HashMap::new() }
    }

    pub fn config(&self) -> &MitigationConfig {
        &self.config
    }

    /// Attacks being tracked (ongoing, or ended and within their hold).
    pub fn tracked(&self) -> usize {
        self.attacks.len()
    }

    /// Whether attack `id` is tracked.
    pub fn is_tracked(&self, id: AttackId) -> bool {
        self.attacks.contains_key(&id)
    }

    /// A target's repeat-offender score at `now` (0 for a newcomer).
    pub fn score(&self, target: &Target, direction: Direction, now: EventTime) -> f64 {
        self.offenders.get(&offender_key(target, direction)).map_or(0.0, |o| self.decayed(*o, now))
    }

    fn decayed(&self, offender: Offender, now: EventTime) -> f64 {
        let elapsed = now.secs_since(offender.at).max(0.0);
        offender.score * 0.5f64.powf(elapsed / self.config.repeat.half_life.as_secs_f64().max(1.0))
    }

    /// Takes one attack event.
    pub fn on_event(&mut self, event: &AttackEvent, now: EventTime) -> Vec<Step> {
        let attack = &event.attack;
        match event.kind {
            EventKind::Onset => self.onset(attack, now),
            EventKind::Update => {
                let Some(tracked) = self.attacks.get_mut(&attack.id) else {
                    // Not seen at onset (a restart in between): start from here.
                    return self.onset(attack, now);
                };
                tracked.attack = attack.clone();
                // The rate or the signature changed: higher rungs may be possible now.
                tracked.exhausted = false;
                if attack.signature.confidence > Confidence::Insufficient
                    && let Some(rung) = tracked.awaiting_evidence.take()
                {
                    return self.climb(attack.id, rung, now);
                }
                Vec::new()
            }
            EventKind::End => {
                let Some(tracked) = self.attacks.get_mut(&attack.id) else { return Vec::new() };
                tracked.attack = attack.clone();
                tracked.ended = Some(now);
                let hold = scaled(tracked.policy.hold, tracked.factor)
                    .min(self.config.repeat.max_hold.max(tracked.policy.hold));
                let expires = after(now, hold);
                if tracked.rung.is_none() {
                    return Vec::new();
                }
                tracked.expires = Some(expires);
                let reason = format!("attack ended; held {} s", hold.as_secs());
                vec![Step::Extend { attack: attack.id, expires, reason }]
            }
        }
    }

    fn onset(&mut self, attack: &Attack, now: EventTime) -> Vec<Step> {
        let ladder = match (attack.policy, attack.direction) {
            (Policy::Ignore, _) => return Vec::new(),
            (Policy::Alert, _) | (_, Direction::Outbound) => vec![Rung::Notify],
            _ => self.config.policy_for(attack.group.as_deref()).ladder.clone(),
        };
        let policy = self.config.policy_for(attack.group.as_deref()).clone();
        let key = offender_key(&attack.target, attack.direction);
        let score = self.offenders.get(&key).map_or(0.0, |o| self.decayed(*o, now));
        self.remember_offender(key, Offender { score: score + 1.0, at: now });
        let tracked = Tracked {
            attack: attack.clone(),
            ladder,
            policy,
            rung: None,
            since: now,
            factor: 1.0 + score,
            ended: None,
            expires: None,
            exhausted: false,
            awaiting_evidence: None,
        };
        self.attacks.insert(attack.id, tracked);
        self.climb(attack.id, 0, now)
    }

    fn remember_offender(&mut self, key: String, offender: Offender) {
        if !self.offenders.contains_key(&key) && self.offenders.len() >= self.config.repeat.max_targets.max(1)
        {
            // Full: forget the one with the lowest score (decay is the same for all: by raw score
            // and age together, the decayed score).
            let now = offender.at;
            let lowest = self
                .offenders
                .iter()
                .map(|(k, o)| (k.clone(), self.decayed(*o, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k);
            if let Some(lowest) = lowest {
                self.offenders.remove(&lowest);
            }
        }
        self.offenders.insert(key, offender);
    }

    /// Tries the rungs from `from` up for `id`; the first the guards accept is enacted.
    fn climb(&mut self, id: AttackId, from: usize, now: EventTime) -> Vec<Step> {
        let lease = self.config.lease;
        let guards = self.config.guards.clone();
        let Some(tracked) = self.attacks.get_mut(&id) else { return Vec::new() };
        let mut steps = Vec::new();
        for index in from..tracked.ladder.len() {
            let rung = tracked.ladder[index];
            if matches!(rung, Rung::RateLimit | Rung::Discard)
                && tracked.attack.signature.confidence == Confidence::Insufficient
            {
                // Too few packets observed behind the signature (an onset before any packet
                // was profiled, or thinly sampled telemetry): wait for the update that brings
                // enough rather than write a rule from noise, or refuse.
                tracked.awaiting_evidence = Some(index);
                return steps;
            }
            let Some((scope, action)) = rung_decision(rung, &tracked.attack, &tracked.policy) else {
                // Not applicable (no host to blackhole, under the link share): not a refusal.
                continue;
            };
            match guard::check(&scope, &action, &guards) {
                Ok(()) => {
                    let expires = after(now, lease);
                    let reason = match tracked.rung {
                        None => format!("{}: {} at onset", describe(&tracked.attack), rung.name()),
                        Some(previous) => format!(
                            "{}: {} after {:.0} s at {}",
                            describe(&tracked.attack),
                            rung.name(),
                            now.secs_since(tracked.since),
                            tracked.ladder[previous].name()
                        ),
                    };
                    tracked.rung = Some(index);
                    tracked.since = now;
                    tracked.expires = Some(expires);
                    let proposal = Proposal { scope, action, expires, rung, reason };
                    steps.push(Step::Enact {
                        attack: id,
                        proposal,
                        evidence: Box::new(evidence(&tracked.attack, Some(rung))),
                    });
                    return steps;
                }
                Err(refusal) => {
                    steps.push(Step::Refuse {
                        attack: id,
                        scope,
                        action,
                        refusal,
                        rung,
                        evidence: Box::new(evidence(&tracked.attack, Some(rung))),
                    });
                    if !tracked.policy.fallback {
                        break;
                    }
                }
            }
        }
        tracked.exhausted = true;
        steps
    }

    /// Advances time: escalates attacks that lasted a step at their rung, renews leases,
    /// forgets attacks whose hold is over.
    pub fn tick(&mut self, now: EventTime) -> Vec<Step> {
        let mut steps = Vec::new();
        let lease = self.config.lease;
        let mut climbing = Vec::new();
        self.attacks.retain(|_, t| t.ended.is_none() || t.expires.is_some_and(|e| now < e));
        for (id, tracked) in &mut self.attacks {
            if tracked.ended.is_some() {
                continue;
            }
            let step = scaled(tracked.policy.step, 1.0 / tracked.factor).max(Duration::from_secs(1));
            let next = tracked.rung.map_or(0, |r| r + 1);
            if !tracked.exhausted && next < tracked.ladder.len() && now >= after(tracked.since, step) {
                climbing.push((*id, next));
                continue;
            }
            if let Some(expires) = tracked.expires
                && expires.secs_since(now) < lease.as_secs_f64() / 2.0
            {
                let renewed = after(now, lease);
                tracked.expires = Some(renewed);
                steps.push(Step::Extend {
                    attack: *id,
                    expires: renewed,
                    reason: "attack ongoing: lease renewed".into(),
                });
            }
        }
        climbing.sort_unstable();
        for (id, next) in climbing {
            steps.extend(self.climb(id, next, now));
        }
        steps
    }
}

/// What a rung means for an attack: `None` when it does not apply.
fn rung_decision(rung: Rung, attack: &Attack, policy: &GroupPolicy) -> Option<(Scope, Action)> {
    let signature = || Scope::Signature(Box::new(attack.signature.clone()));
    match rung {
        Rung::Notify => Some((signature(), Action::Notify)),
        Rung::RateLimit => {
            Some((signature(), Action::RateLimitBytes { bytes_per_sec: policy.rate_limit_bytes_per_sec }))
        }
        Rung::Discard => Some((signature(), Action::Discard)),
        Rung::Blackhole => {
            let host = attack.target.host()?;
            let capacity = policy.link_capacity_bps? as f64;
            let rate = attack.current_bps as f64;
            (rate * 100.0 >= capacity * policy.blackhole_share_percent)
                .then_some((Scope::Address(host), Action::Blackhole))
        }
    }
}

fn offender_key(target: &Target, direction: Direction) -> String {
    format!("{direction} {target}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{Collateral, Level, Metric, PortRange, Signature, Trigger, Vector};

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> EventTime {
        EventTime::from_unix_secs(T0 + secs)
    }

    fn config() -> MitigationConfig {
        let mut c = MitigationConfig::default();
        c.guards.protected = vec!["198.51.100.0/24".parse().unwrap()];
        c.guards.allowlist = vec!["198.51.100.53/32".parse().unwrap()];
        c.default_policy.link_capacity_bps = Some(10_000_000_000);
        c.default_policy.step = Duration::from_secs(30);
        c.default_policy.hold = Duration::from_secs(300);
        c
    }

    fn attack(id: u64, host: &str, bps: u64) -> Attack {
        let trigger = Trigger::new(Level::Host, Metric::Pps, 500, 100, at(0));
        let mut a =
            Attack::new(AttackId(id), Target::Host(host.parse().unwrap()), Direction::Inbound, trigger);
        a.vectors = vec![Vector::UdpFlood];
        a.current_bps = bps;
        a.peak_bps = bps;
        a.signature = Signature {
            dst_prefixes: vec![format!("{host}/32").parse().unwrap()],
            protocol: Some(17),
            dst_ports: vec![PortRange::single(53)],
            ..Signature::default()
        }
        .with_samples(1_000);
        a
    }

    fn event(kind: EventKind, attack: &Attack) -> AttackEvent {
        AttackEvent { kind, attack: attack.clone() }
    }

    /// The rung of each enacted step, the refusal of each refused one.
    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Enact { proposal, .. } => proposal.rung.name().to_owned(),
                Step::Extend { .. } => "extend".to_owned(),
                Step::Refuse { refusal, rung, .. } => format!("refused {} ({})", rung.name(), refusal.name()),
            })
            .collect()
    }

    /// Ticks once a second from `from` to `to` inclusive, collecting every step.
    fn run(planner: &mut Planner, from: u64, to: u64) -> Vec<(u64, String)> {
        (from..=to).flat_map(|s| names(&planner.tick(at(s))).into_iter().map(move |n| (s, n))).collect()
    }

    #[test]
    fn the_ladder_climbs_a_step_at_a_time_and_blackholes_only_over_the_link_share() {
        let mut p = Planner::new(config());
        // 6 Gbit/s on a 10 Gbit/s link: over the 50 % share.
        let big = attack(1, "198.51.100.10", 6_000_000_000);
        assert_eq!(names(&p.on_event(&event(EventKind::Onset, &big), at(0))), ["notify"]);
        let steps = run(&mut p, 1, 100);
        assert_eq!(
            steps,
            [(30, "rate_limit".into()), (60, "discard".into()), (90, "blackhole".into())],
            "one rung per 30 s step"
        );
        // 1 Gbit/s: the ladder stops at discard.
        let small = attack(2, "198.51.100.11", 1_000_000_000);
        p.on_event(&event(EventKind::Onset, &small), at(100));
        let steps: Vec<String> = run(&mut p, 101, 300).into_iter().map(|(_, n)| n).collect();
        assert!(!steps.iter().any(|n| n == "blackhole"), "{steps:?}");
        assert!(steps.iter().any(|n| n == "discard"), "{steps:?}");
    }

    #[test]
    fn the_hold_starts_at_the_end_and_repeat_offenders_escalate_faster_and_stay_longer() {
        let mut p = Planner::new(config());
        let a = attack(1, "198.51.100.10", 1_000);
        p.on_event(&event(EventKind::Onset, &a), at(0));
        let end = p.on_event(&event(EventKind::End, &a), at(10));
        let Step::Extend { expires, .. } = &end[0] else { panic!("{end:?}") };
        assert_eq!(*expires, at(310), "the hold (300 s) from the end");
        assert_eq!(p.tracked(), 1);
        p.tick(at(311));
        assert_eq!(p.tracked(), 0, "forgotten once the hold is over");
        // The same host again soon: score just under 1 (decayed for 400 s), so steps of just
        // over 15 s and a hold of nearly 600 s.
        let again = attack(2, "198.51.100.10", 1_000);
        p.on_event(&event(EventKind::Onset, &again), at(400));
        let steps = run(&mut p, 401, 420);
        assert_eq!(steps.first().map(|(s, _)| *s), Some(416), "{steps:?}");
        let end = p.on_event(&event(EventKind::End, &again), at(430));
        let Step::Extend { expires, .. } = &end[0] else { panic!("{end:?}") };
        assert!(expires.secs_since(at(430)) > 590.0, "{}", expires.secs_since(at(430)));
        // The score decays: a day later it has halved.
        let score_then = p.score(&again.target, Direction::Inbound, at(430));
        let score_later = p.score(&again.target, Direction::Inbound, at(430 + 86_400));
        assert!((score_later - score_then / 2.0).abs() < 1e-9);
    }

    #[test]
    fn refusals_fall_back_only_when_the_policy_allows() {
        let mut c = config();
        c.default_policy.ladder = vec![Rung::RateLimit, Rung::Discard, Rung::Blackhole];
        let mut costly = attack(1, "198.51.100.10", 9_000_000_000);
        costly.signature.collateral =
            Some(Collateral { baseline_pps: 100.0, matching_pps: 50.0, percent: 50.0 });
        let mut p = Planner::new(c.clone());
        let steps = names(&p.on_event(&event(EventKind::Onset, &costly), at(0)));
        assert_eq!(steps, ["refused rate_limit (collateral)", "refused discard (collateral)", "blackhole"]);
        c.default_policy.fallback = false;
        let mut p = Planner::new(c);
        let steps = names(&p.on_event(&event(EventKind::Onset, &costly), at(0)));
        assert_eq!(steps, ["refused rate_limit (collateral)"]);
        // Exhausted: no refusal spam on every tick.
        assert!(run(&mut p, 1, 120).is_empty());
    }

    #[test]
    fn allowlisted_alert_outbound_and_ignored_targets() {
        let mut p = Planner::new(config());
        let resolver = attack(1, "198.51.100.53", 9_000_000_000);
        let steps = names(&p.on_event(&event(EventKind::Onset, &resolver), at(0)));
        assert_eq!(steps, ["notify"]);
        let steps: Vec<String> = run(&mut p, 1, 200).into_iter().map(|(_, n)| n).collect();
        assert_eq!(
            steps,
            [
                "refused rate_limit (allowlisted)",
                "refused discard (allowlisted)",
                "refused blackhole (allowlisted)"
            ]
        );
        let mut alert = attack(2, "198.51.100.10", 9_000_000_000);
        alert.policy = Policy::Alert;
        assert_eq!(names(&p.on_event(&event(EventKind::Onset, &alert), at(0))), ["notify"]);
        let mut outbound = attack(3, "198.51.100.12", 9_000_000_000);
        outbound.direction = Direction::Outbound;
        assert_eq!(names(&p.on_event(&event(EventKind::Onset, &outbound), at(0))), ["notify"]);
        let mut ignored = attack(4, "198.51.100.13", 9_000_000_000);
        ignored.policy = Policy::Ignore;
        assert!(p.on_event(&event(EventKind::Onset, &ignored), at(0)).is_empty());
        let steps: Vec<String> = run(&mut p, 201, 400).into_iter().map(|(_, n)| n).collect();
        assert!(steps.iter().all(|n| n == "extend"), "alert and outbound stay at notify: {steps:?}");
    }

    #[test]
    fn a_signature_without_evidence_waits_for_an_update() {
        let mut p = Planner::new(config());
        let mut a = attack(1, "198.51.100.10", 1_000);
        let full = a.signature.clone();
        a.signature = Signature { dst_prefixes: full.dst_prefixes.clone(), ..Signature::default() };
        p.on_event(&event(EventKind::Onset, &a), at(0));
        assert!(run(&mut p, 1, 60).is_empty(), "neither a refusal nor a rung without evidence");
        // Specific, but from 20 observed packets (1:10,000 sampling): still waiting.
        a.signature = Signature { sampled_packets: 200_000, ..full.clone() }.with_samples(20);
        p.on_event(&event(EventKind::Update, &a), at(61));
        assert!(run(&mut p, 62, 90).is_empty(), "no rule from 20 packets");
        // Enough: the rung is tried with the update, not a step later.
        a.signature = Signature { sampled_packets: 400_000, ..full }.with_samples(40);
        assert_eq!(names(&p.on_event(&event(EventKind::Update, &a), at(91))), ["rate_limit"]);
    }

    #[test]
    fn leases_are_renewed_while_the_attack_lasts() {
        let mut c = config();
        c.default_policy.ladder = vec![Rung::Notify];
        c.lease = Duration::from_secs(60);
        let mut p = Planner::new(c);
        p.on_event(&event(EventKind::Onset, &attack(1, "198.51.100.10", 1)), at(0));
        let steps = run(&mut p, 1, 120);
        assert_eq!(steps, [(31, "extend".into()), (62, "extend".into()), (93, "extend".into())]);
    }
}
