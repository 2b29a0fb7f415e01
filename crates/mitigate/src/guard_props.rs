//! Property tests of the safety guards, alone and through the policy: random attacks,
//! configurations and allowlists; no decision that changes traffic ever covers an
//! allowlisted address, names a prefix shorter than the minimum or a default route, or puts a
//! destination outside the protected networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use proptest::prelude::*;
use rampart_contract::{
    Action, Attack, AttackEvent, AttackId, Collateral, Direction, EventKind, EventTime, Level, Metric,
    Policy, PortRange, Scope, Signature, Target, Trigger, Vector, VectorShare,
};

use crate::config::{MitigationConfig, Rung};
use crate::guard::{self, GuardConfig, overlaps, scope_prefixes};
use crate::policy::{Planner, Step};

/// Addresses from a small universe (a few bases, random low bits) so that prefixes, hosts and
/// allowlist entries collide often.
fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0usize..4, any::<u16>()).prop_map(|(base, low)| {
            let bases = [[198, 51, 100, 0], [203, 0, 113, 0], [10, 0, 0, 0], [0, 0, 0, 0]];
            let b = bases[base];
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2] | (low >> 8) as u8 & 0x03, low as u8))
        }),
        (0usize..2, any::<u16>()).prop_map(|(base, low)| {
            let bases = [0x2001_0db8_0001_u128 << 80, 0];
            IpAddr::V6(Ipv6Addr::from(bases[base] | u128::from(low & 0x03ff)))
        }),
    ]
}

fn prefix() -> impl Strategy<Value = IpNet> {
    (address(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        // Lengths spread over the whole range, long ones (hosts, /24s) more often.
        let len = match len % 4 {
            0 => len % (max + 1),
            _ => max - (len % 12).min(max),
        };
        IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
    })
}

fn guards() -> impl Strategy<Value = GuardConfig> {
    (
        prop::collection::vec(prefix(), 0..4),
        prop::collection::vec(prefix(), 0..6),
        0u8..=32,
        0u8..=128,
        prop_oneof![Just(f64::NAN), 0.0f64..100.0],
    )
        .prop_map(|(protected, allowlist, v4, v6, collateral)| GuardConfig {
            protected,
            allowlist,
            min_prefix_v4: v4,
            min_prefix_v6: v6,
            max_collateral_percent: collateral,
        })
}

fn signature() -> impl Strategy<Value = Signature> {
    (
        prop::collection::vec(prefix(), 0..3),
        prop::collection::vec(prefix(), 0..2),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<u16>()),
        prop::option::of(prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -10.0f64..200.0]),
        prop_oneof![Just(0u64), Just(40), Just(1_000)],
    )
        .prop_map(|(dst, src, protocol, port, collateral, samples)| {
            Signature {
                dst_prefixes: dst,
                src_prefixes: src,
                protocol,
                dst_ports: port.map(PortRange::single).into_iter().collect(),
                collateral: collateral.map(|percent| Collateral {
                    baseline_pps: 100.0,
                    matching_pps: percent,
                    percent,
                }),
                ..Signature::default()
            }
            .with_samples(samples)
        })
}

/// Vectors with signatures of their own, as wide or narrow, backed or not, as any.
fn vector_shares() -> impl Strategy<Value = Vec<VectorShare>> {
    let vectors = [Vector::SynFlood, Vector::DnsAmplification, Vector::UdpFlood, Vector::IcmpFlood];
    prop::collection::vec((0usize..4, signature(), 0u64..2_000), 0..4).prop_map(move |shares| {
        shares
            .into_iter()
            .map(|(v, signature, packets)| VectorShare {
                vector: vectors[v],
                packets,
                percent: 25.0,
                signature,
            })
            .collect()
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Discard),
        Just(Action::Blackhole),
        Just(Action::Notify),
        any::<u64>().prop_map(|bytes_per_sec| Action::RateLimitBytes { bytes_per_sec }),
        Just(Action::Mark { dscp: 8 }),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        address().prop_map(Scope::Address),
        prefix().prop_map(Scope::Prefix),
        signature().prop_map(|s| Scope::Signature(Box::new(s))),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => address().prop_map(Target::Host),
        1 => prefix().prop_map(Target::Prefix),
        1 => prop::collection::vec(prefix(), 1..3).prop_map(|prefixes| Target::Group { name: "g".into(), prefixes }),
    ]
}

fn attack() -> impl Strategy<Value = Attack> {
    (target(), signature(), vector_shares(), any::<u64>(), any::<bool>(), 0u8..3).prop_map(
        |(target, signature, vector_shares, bps, outbound, policy)| {
            let trigger = Trigger::new(Level::Host, Metric::Bps, bps, 1, EventTime::from_unix_secs(1));
            let direction = if outbound { Direction::Outbound } else { Direction::Inbound };
            let mut attack = Attack::new(AttackId(0), target, direction, trigger);
            attack.signature = signature;
            attack.vector_shares = vector_shares;
            attack.current_bps = bps;
            attack.peak_bps = bps;
            attack.policy = [Policy::Mitigate, Policy::Alert, Policy::Ignore][policy as usize];
            attack
        },
    )
}

/// What every enacted decision that changes traffic must satisfy.
fn assert_safe(scope: &Scope, action: &Action, config: &GuardConfig) -> Result<(), TestCaseError> {
    if matches!(action, Action::Notify) {
        return Ok(());
    }
    let prefixes = scope_prefixes(scope, action);
    prop_assert!(!prefixes.is_empty(), "a decision with no prefix at all: {scope:?}");
    if let Scope::Signature(s) = scope {
        prop_assert!(!s.dst_prefixes.is_empty(), "an unbounded signature");
    }
    for (prefix, destination) in prefixes {
        prop_assert!(prefix.prefix_len() > 0, "default route {prefix}");
        let min = if prefix.addr().is_ipv4() { config.min_prefix_v4 } else { config.min_prefix_v6 };
        prop_assert!(prefix.prefix_len() >= min, "{prefix} shorter than /{min}");
        for allowed in &config.allowlist {
            prop_assert!(!overlaps(allowed, &prefix), "{prefix} covers allowlisted {allowed}");
        }
        if destination {
            prop_assert!(config.protected.iter().any(|p| p.contains(&prefix)), "{prefix} outside protected");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn whatever_the_guards_accept_is_safe(scope in scope(), action in action(), config in guards()) {
        if guard::check(&scope, &action, &config).is_ok() {
            assert_safe(&scope, &action, &config)?;
        }
    }

    #[test]
    fn no_decision_policy_enacts_covers_an_allowlisted_address(
        config in guards(),
        attacks in prop::collection::vec((attack(), prop::collection::vec(any::<u8>(), 0..6)), 1..6),
        capacity in prop::option::of(1u64..100_000_000_000),
        fallback in any::<bool>(),
        ladder in prop::sample::subsequence(vec![Rung::Notify, Rung::RateLimit, Rung::Discard, Rung::Blackhole], 1..=4),
    ) {
        let mut mitigation = MitigationConfig { guards: config.clone(), ..MitigationConfig::default() };
        mitigation.default_policy.ladder = ladder;
        mitigation.default_policy.fallback = fallback;
        mitigation.default_policy.link_capacity_bps = capacity;
        mitigation.default_policy.step = Duration::from_secs(5);
        let mut planner = Planner::new(mitigation);
        let mut now = 1_000u64;
        let mut steps = Vec::new();
        for (i, (mut attack, updates)) in attacks.into_iter().enumerate() {
            attack.id = AttackId(i as u64 + 1);
            steps.extend(planner.on_event(&AttackEvent { kind: EventKind::Onset, attack: attack.clone() }, EventTime::from_unix_secs(now)));
            for byte in updates {
                now += u64::from(byte % 16);
                steps.extend(planner.tick(EventTime::from_unix_secs(now)));
                if byte & 0x80 != 0 {
                    attack.current_bps = attack.current_bps.rotate_left(u32::from(byte));
                    let kind = if byte & 0x40 != 0 { EventKind::End } else { EventKind::Update };
                    steps.extend(planner.on_event(&AttackEvent { kind, attack: attack.clone() }, EventTime::from_unix_secs(now)));
                }
            }
        }
        for _ in 0..30 {
            now += 5;
            steps.extend(planner.tick(EventTime::from_unix_secs(now)));
        }
        for step in &steps {
            if let Step::Enact { proposals, .. } = step {
                for proposal in proposals {
                    assert_safe(&proposal.scope, &proposal.action, &config)?;
                }
            }
        }
    }
}
