//! What deciding costs: the guards over allowlists of 16 and 1,024 prefixes, the planner taking
//! attacks from onset up the ladder, and the store enacting and withdrawing a decision (an
//! audit append and a durable commit each, fsync-bound). No anchor: no other tool guards and
//! audits decisions this way; the figures size the per-decision budget.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::IpNet;
use rampart_contract::{
    Action, Attack, AttackEvent, AttackId, Direction, EventKind, EventTime, Level, Metric, Origin, PortRange,
    Scope, Signature, Target, Trigger, Vector, VectorShare,
};
use rampart_mitigate::audit::Actor;
use rampart_mitigate::guard::{self, GuardConfig};
use rampart_mitigate::policy::Planner;
use rampart_mitigate::store::Closing;
use rampart_mitigate::{DecisionStore, MitigationConfig, NewDecision};

fn signature(host: u8) -> Signature {
    Signature {
        dst_prefixes: vec![format!("198.51.100.{host}/32").parse().unwrap()],
        protocol: Some(17),
        src_ports: vec![PortRange::single(123)],
        ..Signature::default()
    }
    // Backed by evidence: the planner writes no rule from an insufficient signature.
    .with_samples(1_000)
}

fn guards(allowlisted: usize) -> GuardConfig {
    GuardConfig {
        protected: vec!["198.51.100.0/24".parse().unwrap()],
        // Spread over 10.0.0.0/8: none overlaps the decisions, so every entry is checked.
        allowlist: (0..allowlisted)
            .map(|i| IpNet::new(format!("10.{}.{}.0", i / 256, i % 256).parse().unwrap(), 24).unwrap())
            .collect(),
        ..GuardConfig::default()
    }
}

fn bench_guards(c: &mut Criterion) {
    let mut group = c.benchmark_group("guard_check");
    group.throughput(Throughput::Elements(1));
    let scope = Scope::Signature(Box::new(signature(10)));
    for n in [16, 1024] {
        let config = guards(n);
        group.bench_function(format!("signature_discard_allowlist_{n}"), |b| {
            b.iter(|| guard::check(black_box(&scope), &Action::Discard, &config))
        });
    }
    group.finish();
}

fn attack(id: u64) -> AttackEvent {
    let trigger = Trigger::new(Level::Host, Metric::Pps, 500, 100, EventTime::from_unix_secs(1));
    let host = (id % 250) as u8 + 1;
    let mut a = Attack::new(
        AttackId(id),
        Target::Host(format!("198.51.100.{host}").parse().unwrap()),
        Direction::Inbound,
        trigger,
    );
    a.vectors = vec![Vector::UdpFlood];
    a.signature = signature(host);
    AttackEvent { kind: EventKind::Onset, attack: a }
}

/// A SYN flood and NTP reflection on one host: the whole signature leaves the protocol open,
/// so each signature rung writes one rule per vector.
fn two_vector_attack(id: u64) -> AttackEvent {
    let mut event = attack(id);
    let a = &mut event.attack;
    let ntp = a.signature.clone();
    let syn = Signature {
        protocol: Some(6),
        src_ports: Vec::new(),
        dst_ports: vec![PortRange::single(443)],
        ..ntp.clone()
    };
    a.vectors = vec![Vector::SynFlood, Vector::NtpAmplification];
    a.signature =
        Signature { dst_prefixes: ntp.dst_prefixes.clone(), ..Signature::default() }.with_samples(2_000);
    a.vector_shares = vec![
        VectorShare { vector: Vector::SynFlood, packets: 1_000, percent: 50.0, signature: syn },
        VectorShare { vector: Vector::NtpAmplification, packets: 1_000, percent: 50.0, signature: ntp },
    ];
    event
}

fn bench_planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("planner");
    const ATTACKS: u64 = 1_000;
    group.throughput(Throughput::Elements(ATTACKS));
    let one: Vec<AttackEvent> = (1..=ATTACKS).map(attack).collect();
    let two: Vec<AttackEvent> = (1..=ATTACKS).map(two_vector_attack).collect();
    for (name, events) in
        [("onset_and_three_rungs_1000_attacks", one), ("per_vector_1000_two_vector_attacks", two)]
    {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut config = MitigationConfig { guards: guards(16), ..MitigationConfig::default() };
                config.default_policy.step = Duration::from_secs(1);
                let mut planner = Planner::new(config);
                let mut steps = 0;
                for event in &events {
                    steps += planner.on_event(event, EventTime::from_unix_secs(1)).len();
                }
                for s in 2..=4 {
                    steps += planner.tick(EventTime::from_unix_secs(s)).len();
                }
                black_box(steps)
            })
        });
    }
    group.finish();
}

fn bench_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_store");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let mut store = DecisionStore::open(dir.path()).unwrap();
    let now = EventTime::from_unix_secs(1_800_000_000);
    group.bench_function("enact_and_withdraw_durably", |b| {
        b.iter(|| {
            let new = NewDecision {
                scope: Scope::Signature(Box::new(signature(10))),
                action: Action::Discard,
                origin: Origin::Attack { attack: AttackId(1) },
                created: now,
                expires: None,
                reason: "bench".into(),
                dry_run: false,
                evidence: None,
            };
            let (stored, _) = store.enact(new, now).unwrap();
            store.close(stored.decision.id, Closing::Withdrawn, Actor::System, "bench", now).unwrap();
        })
    });
    // An event batch of 100 attacks: 100 enacts and 100 withdrawals, synced once.
    const BATCH: u64 = 100;
    group.throughput(Throughput::Elements(2 * BATCH));
    group.bench_function("enact_and_withdraw_100_in_one_batch", |b| {
        b.iter(|| {
            store.begin_batch().unwrap();
            for host in 1..=BATCH {
                let new = NewDecision {
                    scope: Scope::Signature(Box::new(signature(host as u8))),
                    action: Action::Discard,
                    origin: Origin::Attack { attack: AttackId(host) },
                    created: now,
                    expires: None,
                    reason: "bench".into(),
                    dry_run: false,
                    evidence: None,
                };
                let (stored, _) = store.enact(new, now).unwrap();
                store.close(stored.decision.id, Closing::Withdrawn, Actor::System, "bench", now).unwrap();
            }
            store.end_batch().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench_guards, bench_planner, bench_store);
criterion_main!(benches);
