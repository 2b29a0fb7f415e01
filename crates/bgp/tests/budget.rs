//! Property tests of the rule budget: random decisions (as mitigation's guards let them through),
//! budgets and allowlists; the widening guard is mitigation's own `guard::check`. Never more
//! routes than the budget, no route covers an allowlisted address or leaves the protected
//! networks, and every decision's route is held, aggregated into a held one, or reported; a
//! widened rule carries the sum of its members' collateral estimates, within the limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use rampart_bgp::budget::{WidenGuard, fit};
use rampart_bgp::flowspec::{Component, FlowPrefix};
use rampart_bgp::rib::{AdjRibOut, Refusal};
use rampart_bgp::route::{Route, RouteKey};
use rampart_contract::{
    Action, Collateral, Decision, DecisionId, EventTime, Origin, PortRange, Scope, Signature,
};
use rampart_mitigate::guard::{self, GuardConfig};

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// Hosts in two protected IPv4 /24s, one protected IPv6 /48 (low bits only, so they cluster),
/// and a few outside.
fn host() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => (0u8..2, any::<u8>()).prop_map(|(n, h)| IpAddr::V4(Ipv4Addr::new(198, 51, 100 + n * 13, h))),
        2 => any::<u8>().prop_map(|h| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(h)))),
        1 => any::<u8>().prop_map(|h| IpAddr::V4(Ipv4Addr::new(192, 0, 2, h))),
    ]
}

fn guards() -> impl Strategy<Value = GuardConfig> {
    (prop::collection::vec(host(), 0..6), 20u8..=30, 40u8..=120, 0.0f64..10.0).prop_map(
        |(allow, v4, v6, collateral)| GuardConfig {
            protected: vec![net("198.51.100.0/24"), net("198.51.113.0/24"), net("2001:db8:1::/48")],
            allowlist: allow.into_iter().map(IpNet::from).collect(),
            min_prefix_v4: v4,
            min_prefix_v6: v6,
            max_collateral_percent: collateral,
        },
    )
}

/// A decision as policy or an operator would propose it: a blackhole of a host, or a
/// FlowSpec discard or rate limit of a UDP signature on a host, with or without a collateral
/// estimate.
fn decision() -> impl Strategy<Value = (IpAddr, u8, u16, Option<f64>)> {
    (host(), 0u8..3, prop_oneof![Just(53u16), Just(123), Just(443)], prop::option::of(0.0f64..4.0))
}

fn to_decision(id: u64, (dst, kind, port, collateral): (IpAddr, u8, u16, Option<f64>)) -> Decision {
    let (scope, action) = match kind {
        0 => (Scope::Address(dst), Action::Blackhole),
        k => (
            Scope::Signature(Box::new(Signature {
                dst_prefixes: vec![IpNet::from(dst)],
                protocol: Some(17),
                src_ports: vec![PortRange::single(port)],
                collateral: collateral.map(|percent| Collateral {
                    baseline_pps: 100.0,
                    matching_pps: percent,
                    percent,
                }),
                ..Signature::default()
            })),
            if k == 1 { Action::Discard } else { Action::RateLimitBytes { bytes_per_sec: 1_000_000 } },
        ),
    };
    Decision {
        id: DecisionId(id),
        scope,
        action,
        origin: Origin::Operator { name: "prop".into() },
        created: EventTime::from_unix_secs(1),
        expires: None,
        reason: "property test".into(),
    }
}

fn dst_of(key: &RouteKey) -> Option<IpNet> {
    match key {
        RouteKey::Blackhole(p) => Some(*p),
        RouteKey::Flow(rule) => rule.components.iter().find_map(|c| match c {
            Component::DstPrefix(FlowPrefix::V4(n)) => Some(IpNet::V4(*n)),
            Component::DstPrefix(FlowPrefix::V6 { prefix, .. }) => Some(IpNet::V6(*prefix)),
            _ => None,
        }),
    }
}

/// The daemon's widening guard: mitigation's guards on the wider prefix as a destination.
fn widen(config: &GuardConfig) -> WidenGuard {
    let limit = config.max_collateral_percent;
    let config = config.clone();
    WidenGuard::new(move |p| guard::check(&Scope::Prefix(*p), &Action::Blackhole, &config).is_ok())
        .with_collateral_limit(limit)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_budget_is_never_exceeded_and_no_route_covers_an_allowlisted_address(
        config in guards(),
        proposed in prop::collection::vec(decision(), 0..60),
        budget in 0usize..25,
    ) {
        // Only what the guards let through reaches the speaker.
        let decisions: Vec<Decision> = proposed
            .into_iter()
            .enumerate()
            .map(|(i, d)| to_decision(i as u64 + 1, d))
            .filter(|d| guard::check(&d.scope, &d.action, &config).is_ok())
            .collect();
        let routes: Vec<Route> = decisions.iter().flat_map(|d| Route::from_decision(d).unwrap()).collect();
        let guard = widen(&config);
        let fitted = fit(routes.clone(), budget, Some(&guard));
        prop_assert!(fitted.routes.len() <= budget, "{} routes, budget {budget}", fitted.routes.len());
        for route in &fitted.routes {
            let dst = dst_of(&route.key).unwrap();
            for allowed in &config.allowlist {
                prop_assert!(!dst.contains(&allowed.addr()), "{dst} covers the allowlisted {allowed}");
            }
            prop_assert!(config.protected.iter().any(|p| p.contains(&dst)), "{dst} outside protected");
            let min = if dst.addr().is_ipv4() { config.min_prefix_v4 } else { config.min_prefix_v6 };
            prop_assert!(dst.prefix_len() >= min, "{dst} shorter than /{min}");
        }
        // Every input route is held as given, or reported once with why.
        let held: std::collections::HashSet<&RouteKey> = fitted.routes.iter().map(|r| &r.key).collect();
        for route in &routes {
            let reported = fitted.left_out.iter().find(|r| &r.route == route);
            match reported {
                None => prop_assert!(fitted.routes.contains(route), "{route:?} neither held nor reported"),
                Some(r) => {
                    if let Refusal::Aggregated { into } = &r.why {
                        prop_assert!(held.contains(into), "aggregated into a route not held");
                        let (wide, narrow) = (dst_of(into).unwrap(), dst_of(&route.key).unwrap());
                        prop_assert!(wide.contains(&narrow), "{wide} does not cover {narrow}");
                    }
                }
            }
        }
        // A held rule's collateral is the sum of the estimates of the routes it stands for, and a
        // widened one stays within the limit.
        let limit_ppm = (config.max_collateral_percent * 10_000.0).floor() as u32;
        for held in &fitted.routes {
            let aggregated: Vec<&Route> = fitted
                .left_out
                .iter()
                .filter(|r| matches!(&r.why, Refusal::Aggregated { into } if *into == held.key))
                .map(|r| &r.route)
                .collect();
            let members: Vec<&Route> = if aggregated.is_empty() { vec![held] } else { aggregated.clone() };
            let sum = members.iter().filter_map(|r| r.collateral_ppm).reduce(|a, b| a.saturating_add(b));
            prop_assert_eq!(held.collateral_ppm, sum, "{:?} for {:?}", held, members);
            if !aggregated.is_empty() && let Some(c) = held.collateral_ppm {
                prop_assert!(c <= limit_ppm, "widened rule with {c} ppm over {limit_ppm}");
            }
        }
        // Aggregation only when needed, and budgets that fit keep every route as given.
        let distinct: std::collections::HashSet<&RouteKey> = routes.iter().map(|r| &r.key).collect();
        if distinct.len() <= budget {
            prop_assert_eq!(fitted.routes.len(), distinct.len());
            let only_duplicates = fitted.left_out.iter().all(|r| matches!(r.why, Refusal::Duplicate { .. }));
            prop_assert!(only_duplicates, "left out within budget: {:?}", fitted.left_out);
        }
        // The peer's table: the same, and a repeated set reports nothing new.
        let mut rib = AdjRibOut::new(budget);
        let first = rib.set(routes.clone(), Some(&guard));
        prop_assert_eq!(first.len(), fitted.left_out.len());
        prop_assert!(rib.set(routes, Some(&guard)).is_empty());
        prop_assert_eq!(rib.refused_total(), first.len() as u64);
        prop_assert!(rib.len() <= budget);
    }
}

#[test]
fn hosts_of_a_protected_network_share_one_rule_unless_an_allowlisted_address_is_in_the_way() {
    let config = GuardConfig {
        protected: vec![net("198.51.100.0/24")],
        allowlist: vec![net("198.51.100.53/32")],
        ..GuardConfig::default()
    };
    let routes: Vec<Route> = [10u8, 11, 12, 13, 60, 61]
        .iter()
        .enumerate()
        .flat_map(|(i, h)| {
            Route::from_decision(&to_decision(
                i as u64 + 1,
                (IpAddr::V4(Ipv4Addr::new(198, 51, 100, *h)), 1, 53, None),
            ))
            .unwrap()
        })
        .collect();
    let fitted = fit(routes.clone(), 2, Some(&widen(&config)));
    let dsts: Vec<IpNet> = fitted.routes.iter().map(|r| dst_of(&r.key).unwrap()).collect();
    // .10–.13 in a /29, .60 and .61 in a /31.
    assert_eq!(dsts, vec![net("198.51.100.8/29"), net("198.51.100.60/31")]);
    assert!(fitted.left_out.iter().all(|r| matches!(r.why, Refusal::Aggregated { .. })));
    // One rule would be the /26, which covers the allowlisted .53: the lowest priority goes.
    let fitted = fit(routes, 1, Some(&widen(&config)));
    let dsts: Vec<IpNet> = fitted.routes.iter().map(|r| dst_of(&r.key).unwrap()).collect();
    assert_eq!(dsts, vec![net("198.51.100.8/29")]);
    let dropped: Vec<u64> =
        fitted.left_out.iter().filter(|r| r.why == Refusal::OverBudget).map(|r| r.route.decision.0).collect();
    assert_eq!(dropped, vec![5, 6]);
}
