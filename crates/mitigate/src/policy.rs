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
//! The signature rungs (rate limit, discard) write one rule on the attack's signature, or one
//! rule per vector: when a guard refuses the whole signature as too wide (it restricts nothing
//! beyond its prefixes, or its collateral is over the limit), or when it leaves the protocol
//! open while several vectors have signatures of their own, each vector whose signature is
//! backed by enough evidence and passes the guards gets its own rule, all enacted together (and
//! withdrawn together with the attack). A vector backed later re-plans the rung in force.
//!
//! Outbound attacks and targets whose policy is `alert` only ever notify; `ignore` does nothing.

use std::collections::HashMap;
use std::time::Duration;

use rampart_contract::{
    Action, Attack, AttackEvent, AttackId, Confidence, Direction, EventKind, EventTime, Policy, Scope,
    Signature, Target, Vector, VectorShare,
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
    /// The vector this rule filters, when the attack gets one rule per vector.
    pub vector: Option<Vector>,
    /// What the audit log records with it.
    pub evidence: Box<Evidence>,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Put every one of `proposals` in force for `attack` (one rule, or one per vector), then
    /// withdraw what the attack had in force before.
    Enact { attack: AttackId, proposals: Vec<Proposal> },
    /// Move the expiry of the attack's decision.
    Extend { attack: AttackId, expires: EventTime, reason: String },
    /// A guard refused a rung (or one vector's rule of it: `evidence.vector`); nothing changes
    /// for it.
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
    /// The backed vectors the signature rung in force was planned with: one more re-plans it.
    planned_vectors: Vec<Vector>,
    /// The vectors of the rules in force (`None`: the whole signature's rule).
    vectors_in_force: Vec<Option<Vector>>,
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
        vector: None,
    }
}

/// The evidence of a rule for one vector of `attack`: that vector's signature.
fn vector_evidence(attack: &Attack, rung: Rung, share: &VectorShare) -> Evidence {
    Evidence {
        signature: share.signature.clone(),
        vector: Some(share.vector),
        ..evidence(attack, Some(rung))
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
                // A vector newly backed by evidence: the signature rung in force is planned again,
                // so it gets its own rule, without waiting for the next step.
                let backed: Vec<Vector> = backed_vectors(attack).iter().map(|v| v.vector).collect();
                if let Some(index) = tracked.rung
                    && matches!(tracked.ladder[index], Rung::RateLimit | Rung::Discard)
                    && backed.iter().any(|v| !tracked.planned_vectors.contains(v))
                {
                    // Once per new vector, even when its rule is refused.
                    tracked.planned_vectors = backed;
                    return self.replan(attack.id, index, now);
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
            planned_vectors: Vec::new(),
            vectors_in_force: Vec::new(),
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
        self.climb_from(id, from, now, false)
    }

    /// Plans the signature rung in force again (a vector became backed): its rules are replaced
    /// when they change, and the rung keeps its time (escalation is not delayed).
    fn replan(&mut self, id: AttackId, index: usize, now: EventTime) -> Vec<Step> {
        self.climb_from(id, index, now, true)
    }

    fn climb_from(&mut self, id: AttackId, from: usize, now: EventTime, replanning: bool) -> Vec<Step> {
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
            let plan = if matches!(rung, Rung::RateLimit | Rung::Discard) {
                signature_plan(&tracked.attack, rung, &action, &guards)
            } else {
                let evidence = evidence(&tracked.attack, Some(rung));
                match guard::check(&scope, &action, &guards) {
                    Ok(()) => Plan { rules: vec![(scope, None, evidence)], ..Plan::default() },
                    Err(refusal) => Plan { refused: vec![(scope, refusal, evidence)], ..Plan::default() },
                }
            };
            for (scope, refusal, evidence) in plan.refused {
                steps.push(Step::Refuse {
                    attack: id,
                    scope,
                    action: action.clone(),
                    refusal,
                    rung,
                    evidence: Box::new(evidence),
                });
            }
            if plan.rules.is_empty() {
                if !tracked.policy.fallback {
                    break;
                }
                continue;
            }
            let vectors: Vec<Option<Vector>> = plan.rules.iter().map(|(_, v, _)| *v).collect();
            tracked.planned_vectors = plan.backed;
            if replanning && tracked.rung == Some(index) && vectors == tracked.vectors_in_force {
                // The same rules as in force: nothing to replace.
                return steps;
            }
            let expires = after(now, lease);
            let what = match (tracked.rung, replanning) {
                (_, true) => format!("{} again", rung.name()),
                (None, false) => format!("{} at onset", rung.name()),
                (Some(previous), false) => format!(
                    "{} after {:.0} s at {}",
                    rung.name(),
                    now.secs_since(tracked.since),
                    tracked.ladder[previous].name()
                ),
            };
            let count = plan.rules.len();
            let proposals = plan
                .rules
                .into_iter()
                .enumerate()
                .map(|(i, (scope, vector, evidence))| {
                    let reason = match vector {
                        None => format!("{}: {what}", describe(&tracked.attack)),
                        Some(v) => {
                            format!(
                                "{}: {what}, rule {} of {count}: the {v} vector",
                                describe(&tracked.attack),
                                i + 1
                            )
                        }
                    };
                    Proposal {
                        scope,
                        action: action.clone(),
                        expires,
                        rung,
                        reason,
                        vector,
                        evidence: Box::new(evidence),
                    }
                })
                .collect();
            if !(replanning && tracked.rung == Some(index)) {
                tracked.since = now;
            }
            tracked.rung = Some(index);
            tracked.expires = Some(expires);
            tracked.vectors_in_force = vectors;
            steps.push(Step::Enact { attack: id, proposals });
            return steps;
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

/// What a signature rung can put in force for an attack: the rules that pass the guards (with
/// their vector and evidence), the ones refused, and the backed vectors it was planned with.
#[derive(Debug, Default)]
struct Plan {
    rules: Vec<(Scope, Option<Vector>, Evidence)>,
    refused: Vec<(Scope, Refusal, Evidence)>,
    backed: Vec<Vector>,
}

/// A refusal that says the signature is too wide for a rule of its own, which narrower vector
/// signatures may avoid (the other guards judge prefixes, which the vectors share).
fn too_wide(refusal: &Refusal) -> bool {
    matches!(refusal, Refusal::NotSpecific | Refusal::Collateral { .. })
}

/// The vectors of `attack` whose signatures are backed by enough observed packets and narrower
/// than the whole signature, first of equal signatures only.
fn backed_vectors(attack: &Attack) -> Vec<&VectorShare> {
    let mut backed: Vec<&VectorShare> = Vec::new();
    for share in &attack.vector_shares {
        let narrower = share.packets > 0 && share.signature != attack.signature;
        let fresh = !backed.iter().any(|b| signature_eq(&b.signature, &share.signature));
        if narrower && share.signature.confidence > Confidence::Insufficient && fresh {
            backed.push(share);
        }
    }
    backed
}

/// The same filter (the counts behind two signatures may differ).
fn signature_eq(a: &Signature, b: &Signature) -> bool {
    let filter = |s: &Signature| Signature {
        sampled_packets: 0,
        samples: 0,
        confidence: Confidence::Insufficient,
        collateral: None,
        ..s.clone()
    };
    filter(a) == filter(b)
}

/// The rules of a signature rung: the whole signature's, or one per backed vector when the
/// whole one is too wide (refused as such, or leaving the protocol open over several vectors);
/// the whole one again when no vector's rule passes but it does.
fn signature_plan(attack: &Attack, rung: Rung, action: &Action, guards: &guard::GuardConfig) -> Plan {
    let whole = Scope::Signature(Box::new(attack.signature.clone()));
    let checked = guard::check(&whole, action, guards);
    let vectors = backed_vectors(attack);
    let split = match &checked {
        Ok(()) => attack.signature.protocol.is_none() && vectors.len() >= 2,
        Err(refusal) => too_wide(refusal),
    };
    let mut plan = Plan { backed: vectors.iter().map(|v| v.vector).collect(), ..Plan::default() };
    if let Err(refusal) = &checked {
        plan.refused.push((whole.clone(), refusal.clone(), evidence(attack, Some(rung))));
    }
    if split {
        for share in vectors {
            let scope = Scope::Signature(Box::new(share.signature.clone()));
            let evidence = vector_evidence(attack, rung, share);
            match guard::check(&scope, action, guards) {
                Ok(()) => plan.rules.push((scope, Some(share.vector), evidence)),
                Err(refusal) => plan.refused.push((scope, refusal, evidence)),
            }
        }
    }
    if plan.rules.is_empty() && checked.is_ok() {
        plan.rules.push((whole, None, evidence(attack, Some(rung))));
    }
    plan
}

fn offender_key(target: &Target, direction: Direction) -> String {
    format!("{direction} {target}")
}

#[cfg(test)]
mod tests;
