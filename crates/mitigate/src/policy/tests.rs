//! Tests of the parent module.

use super::*;
use rampart_contract::{Collateral, Level, Metric, PortRange, Trigger};

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
    let mut a = Attack::new(AttackId(id), Target::Host(host.parse().unwrap()), Direction::Inbound, trigger);
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
            Step::Enact { proposals, .. } => {
                let rung = proposals[0].rung.name();
                let vectors: Vec<String> =
                    proposals.iter().filter_map(|p| p.vector.map(|v| v.to_string())).collect();
                if vectors.is_empty() { rung.to_owned() } else { format!("{rung} [{}]", vectors.join(", ")) }
            }
            Step::Extend { .. } => "extend".to_owned(),
            Step::Refuse { refusal, rung, evidence, .. } => match evidence.vector {
                None => format!("refused {} ({})", rung.name(), refusal.name()),
                Some(v) => format!("refused {} of {v} ({})", rung.name(), refusal.name()),
            },
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
    costly.signature.collateral = Some(Collateral { baseline_pps: 100.0, matching_pps: 50.0, percent: 50.0 });
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

/// A SYN flood to 443 and DNS reflection on one host: the whole signature leaves the
/// protocol open; each vector has a backed signature of its own.
fn two_vectors(id: u64, host: &str) -> Attack {
    let mut a = attack(id, host, 1_000_000_000);
    let dst = a.signature.dst_prefixes.clone();
    a.vectors = vec![Vector::SynFlood, Vector::DnsAmplification];
    a.signature = Signature { dst_prefixes: dst.clone(), ..Signature::default() }.with_samples(1_000);
    let syn = Signature {
        dst_prefixes: dst.clone(),
        protocol: Some(6),
        dst_ports: vec![PortRange::single(443)],
        tcp_flags: Some(rampart_contract::TcpFlags { value: 0x02, mask: 0x12 }),
        ..Signature::default()
    }
    .with_samples(600);
    let dns = Signature {
        dst_prefixes: dst,
        protocol: Some(17),
        src_ports: vec![PortRange::single(53)],
        ..Signature::default()
    }
    .with_samples(400);
    a.vector_shares = vec![
        VectorShare { vector: Vector::SynFlood, packets: 600, percent: 60.0, signature: syn },
        VectorShare { vector: Vector::DnsAmplification, packets: 400, percent: 40.0, signature: dns },
    ];
    a
}

fn enacted(steps: &[Step]) -> Vec<&Proposal> {
    steps
        .iter()
        .flat_map(|s| match s {
            Step::Enact { proposals, .. } => proposals.iter().collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_multi_vector_attack_gets_one_rule_per_vector_when_its_signature_is_too_wide() {
    let mut p = Planner::new(config());
    let a = two_vectors(1, "198.51.100.10");
    assert_eq!(names(&p.on_event(&event(EventKind::Onset, &a), at(0))), ["notify"]);
    let steps = p.tick(at(30));
    assert_eq!(
        names(&steps),
        ["refused rate_limit (not_specific)", "rate_limit [syn_flood, dns_amplification]"],
        "the whole signature refused, then one rule per vector"
    );
    let rules = enacted(&steps);
    for (rule, share) in rules.iter().zip(&a.vector_shares) {
        assert_eq!(rule.scope, Scope::Signature(Box::new(share.signature.clone())));
        assert_eq!(rule.vector, Some(share.vector));
        assert_eq!(rule.evidence.vector, Some(share.vector), "audited with its vector");
        assert_eq!(rule.evidence.signature, share.signature);
        assert!(rule.reason.contains(&format!("the {} vector", share.vector)), "{}", rule.reason);
        assert!(matches!(rule.action, Action::RateLimitBytes { .. }));
    }
    assert_eq!(rules[0].expires, rules[1].expires, "one lease for both");
    // The next rung: both vectors again, as discards.
    assert_eq!(
        names(&p.tick(at(60))),
        ["refused discard (not_specific)", "discard [syn_flood, dns_amplification]"]
    );
    // The end holds them together: one Extend for the attack's decisions.
    let end = p.on_event(&event(EventKind::End, &a), at(70));
    assert_eq!(names(&end), ["extend"]);
}

#[test]
fn each_vector_passes_the_guards_on_its_own_and_a_vector_backed_later_is_added() {
    let mut c = config();
    c.default_policy.ladder = vec![Rung::RateLimit, Rung::Discard];
    let mut a = two_vectors(1, "198.51.100.10");
    // The whole signature would match 90 % of the host's normal traffic, DNS answers 20 %:
    // both over the 5 % limit; the SYNs to 443 only 1 %.
    let collateral = |percent: f64| Some(Collateral { baseline_pps: 100.0, matching_pps: percent, percent });
    a.signature.protocol = Some(6);
    a.signature.collateral = collateral(90.0);
    a.vector_shares[0].signature.collateral = collateral(1.0);
    a.vector_shares[1].signature.collateral = collateral(20.0);
    let mut p = Planner::new(c.clone());
    let steps = p.on_event(&event(EventKind::Onset, &a), at(0));
    assert_eq!(
        names(&steps),
        [
            "refused rate_limit (collateral)",
            "refused rate_limit of dns_amplification (collateral)",
            "rate_limit [syn_flood]"
        ]
    );
    let Step::Refuse { evidence, .. } = &steps[1] else { panic!("{steps:?}") };
    assert_eq!(evidence.signature, a.vector_shares[1].signature);

    // DNS seen from too few packets at onset: no rule from noise, not a refusal either.
    let mut thin = two_vectors(2, "198.51.100.11");
    thin.vector_shares[1].signature = thin.vector_shares[1].signature.clone().with_samples(10);
    let mut p = Planner::new(c);
    let steps = p.on_event(&event(EventKind::Onset, &thin), at(0));
    assert_eq!(names(&steps), ["refused rate_limit (not_specific)", "rate_limit [syn_flood]"]);
    // Backed by the next update: the rung is planned again with both, at once, and its
    // step is kept (discard still 30 s after onset).
    thin.vector_shares[1].signature = thin.vector_shares[1].signature.clone().with_samples(200);
    let steps = p.on_event(&event(EventKind::Update, &thin), at(10));
    assert_eq!(
        names(&steps),
        ["refused rate_limit (not_specific)", "rate_limit [syn_flood, dns_amplification]"]
    );
    assert!(enacted(&steps)[0].reason.contains("rate_limit again"), "{steps:?}");
    // The same vectors again: nothing changes.
    assert!(p.on_event(&event(EventKind::Update, &thin), at(11)).is_empty());
    let later: Vec<(u64, String)> = run(&mut p, 12, 40).into_iter().filter(|(_, n)| n != "extend").collect();
    assert_eq!(
        later,
        [
            (30, "refused discard (not_specific)".into()),
            (30, "discard [syn_flood, dns_amplification]".into())
        ]
    );
}

#[test]
fn a_vector_backed_later_but_refused_is_audited_once_and_changes_nothing() {
    let mut c = config();
    c.default_policy.ladder = vec![Rung::RateLimit, Rung::Discard];
    let mut a = two_vectors(1, "198.51.100.10");
    a.vector_shares[1].signature = a.vector_shares[1].signature.clone().with_samples(10);
    let mut p = Planner::new(c);
    let steps = p.on_event(&event(EventKind::Onset, &a), at(0));
    assert_eq!(names(&steps), ["refused rate_limit (not_specific)", "rate_limit [syn_flood]"]);
    a.vector_shares[1].signature = Signature {
        collateral: Some(Collateral { baseline_pps: 100.0, matching_pps: 50.0, percent: 50.0 }),
        ..a.vector_shares[1].signature.clone().with_samples(300)
    };
    let steps = p.on_event(&event(EventKind::Update, &a), at(5));
    assert_eq!(
        names(&steps),
        ["refused rate_limit (not_specific)", "refused rate_limit of dns_amplification (collateral)"],
        "the SYN rule in force stays: no replacement"
    );
    assert!(p.on_event(&event(EventKind::Update, &a), at(6)).is_empty(), "said once");
}

#[test]
fn a_whole_signature_open_in_protocol_is_split_even_when_it_passes() {
    let mut c = config();
    c.default_policy.ladder = vec![Rung::RateLimit];
    let mut a = two_vectors(1, "198.51.100.10");
    // Specific through its length range, so the guards would take it; still, no protocol.
    a.signature.packet_len = Some(rampart_contract::LengthRange { min: 40, max: 1500 });
    let mut p = Planner::new(c.clone());
    let steps = p.on_event(&event(EventKind::Onset, &a), at(0));
    assert_eq!(names(&steps), ["rate_limit [syn_flood, dns_amplification]"], "no refusal: a choice");
    // One vector only: the whole signature's rule, as before.
    a.vector_shares.truncate(1);
    let mut p = Planner::new(c.clone());
    assert_eq!(names(&p.on_event(&event(EventKind::Onset, &a), at(0))), ["rate_limit"]);
    // Every vector refused, the whole allowed: the whole rule.
    let mut a = two_vectors(2, "198.51.100.10");
    a.signature.packet_len = Some(rampart_contract::LengthRange { min: 40, max: 1500 });
    for share in &mut a.vector_shares {
        share.signature.collateral =
            Some(Collateral { baseline_pps: 10.0, matching_pps: 9.0, percent: 90.0 });
    }
    let mut p = Planner::new(c);
    assert_eq!(
        names(&p.on_event(&event(EventKind::Onset, &a), at(0))),
        [
            "refused rate_limit of syn_flood (collateral)",
            "refused rate_limit of dns_amplification (collateral)",
            "rate_limit"
        ]
    );
}

#[test]
fn without_a_backed_vector_the_too_wide_signature_falls_back_as_before() {
    let mut c = config();
    c.default_policy.ladder = vec![Rung::RateLimit, Rung::Discard, Rung::Blackhole];
    let mut a = two_vectors(1, "198.51.100.10");
    a.current_bps = 9_000_000_000;
    for share in &mut a.vector_shares {
        share.signature = share.signature.clone().with_samples(5);
    }
    let mut p = Planner::new(c);
    assert_eq!(
        names(&p.on_event(&event(EventKind::Onset, &a), at(0))),
        ["refused rate_limit (not_specific)", "refused discard (not_specific)", "blackhole"]
    );
}
