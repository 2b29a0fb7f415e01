//! Fitting a peer's routes into its rule budget (some upstreams take 10 rules). Pure: routes in
//! priority order, the budget and a widening guard in; the routes to hold and every route left
//! out, with why, out. Nothing is left out silently.
//!
//! Over budget, routes that differ only in their destination prefix (RTBH routes of one
//! family; FlowSpec rules with the same other components and action) are first aggregated
//! into one route on their smallest common supernet, narrowest widenings first, as long as
//! the guard allows the wider destination. The daemon's guard is mitigation's own
//! (`guard::check` on the wider prefix as a destination: inside the protected networks, no
//! allowlisted address, not shorter than the minimum). Without a guard nothing is widened.
//!
//! A wider FlowSpec rule also matches the signature's traffic to the hosts between the
//! attacked ones, so its collateral is re-estimated conservatively: the sum of the merged
//! rules' estimates (each a share of its own target's normal traffic; the sum bounds the
//! share of the merged targets' traffic, and a host in between is covered by no estimate).
//! A merge whose sum would exceed the guard's collateral limit is not made.
//!
//! What still does not fit is dropped from the lowest priority up.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;

use crate::flowspec::{Component, FlowPrefix, FlowRule};
use crate::rib::{Refusal, Refused};
use crate::route::{FlowAction, Route, RouteKey};

/// Whether a route's destination may be widened to a prefix (the guard every decision passed),
/// and how much collateral a widened rule may carry.
#[derive(Clone)]
pub struct WidenGuard {
    allows: Arc<dyn Fn(&IpNet) -> bool + Send + Sync>,
    max_collateral_ppm: Option<u32>,
}

impl WidenGuard {
    /// A guard on destinations only: merged rules' collateral is not limited.
    pub fn new(allows: impl Fn(&IpNet) -> bool + Send + Sync + 'static) -> Self {
        WidenGuard { allows: Arc::new(allows), max_collateral_ppm: None }
    }

    /// Refuses merges whose summed collateral estimate exceeds `percent` of normal traffic
    /// (mitigation's `max_collateral_percent`; NaN allows no merge of estimated rules).
    pub fn with_collateral_limit(self, percent: f64) -> Self {
        let ppm = if percent.is_nan() { 0 } else { (percent * 10_000.0).floor() as u32 };
        WidenGuard { max_collateral_ppm: Some(ppm), ..self }
    }

    pub fn allows(&self, prefix: &IpNet) -> bool {
        (self.allows)(prefix)
    }

    /// Whether a merged rule with this collateral estimate may be held.
    pub fn allows_collateral(&self, collateral_ppm: Option<u32>) -> bool {
        match (collateral_ppm, self.max_collateral_ppm) {
            (Some(c), Some(max)) => c <= max,
            _ => true,
        }
    }
}

impl fmt::Debug for WidenGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WidenGuard")
            .field("max_collateral_ppm", &self.max_collateral_ppm)
            .finish_non_exhaustive()
    }
}

/// The collateral of routes merged into one: the sum of the known estimates (saturating),
/// `None` when none is known.
fn merged_collateral(estimates: impl IntoIterator<Item = Option<u32>>) -> Option<u32> {
    estimates.into_iter().flatten().reduce(|a, b| a.saturating_add(b))
}

/// What fits, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fitted {
    /// At most the budget, distinct NLRI, in priority order.
    pub routes: Vec<Route>,
    /// Every input route not in `routes` as given: aggregated, over budget or duplicate.
    pub left_out: Vec<Refused>,
}

/// Everything of a route but its destination prefix: routes of one shape can be aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    v4: bool,
    action: Option<FlowAction>,
    /// The FlowSpec rule without its destination; `None` for RTBH.
    rest: Option<FlowRule>,
}

fn shape(route: &Route) -> Option<(Shape, IpNet)> {
    match &route.key {
        RouteKey::Blackhole(p) => Some((Shape { v4: p.addr().is_ipv4(), action: None, rest: None }, *p)),
        RouteKey::Flow(rule) => {
            let dst = rule.components.iter().find_map(|c| match c {
                Component::DstPrefix(FlowPrefix::V4(n)) => Some(IpNet::V4(*n)),
                // An offset prefix matches bits inside the address: not widened.
                Component::DstPrefix(FlowPrefix::V6 { prefix, offset: 0 }) => Some(IpNet::V6(*prefix)),
                _ => None,
            })?;
            let rest = FlowRule {
                afi: rule.afi,
                components: rule
                    .components
                    .iter()
                    .filter(|c| !matches!(c, Component::DstPrefix(_)))
                    .cloned()
                    .collect(),
            };
            Some((Shape { v4: dst.addr().is_ipv4(), action: route.action, rest: Some(rest) }, dst))
        }
    }
}

/// `route` with its destination replaced by `dst`.
fn widened(route: &Route, dst: IpNet) -> Route {
    let key = match &route.key {
        RouteKey::Blackhole(_) => RouteKey::Blackhole(dst),
        RouteKey::Flow(rule) => RouteKey::Flow(FlowRule {
            afi: rule.afi,
            components: rule
                .components
                .iter()
                .map(|c| match c {
                    Component::DstPrefix(_) => Component::DstPrefix(FlowPrefix::new(dst)),
                    other => other.clone(),
                })
                .collect(),
        }),
    };
    Route { decision: route.decision, key, action: route.action, collateral_ppm: route.collateral_ppm }
}

/// A route to hold, with its priority and the input routes it stands for.
#[derive(Debug)]
struct Slot {
    rank: usize,
    route: Route,
    members: Vec<Route>,
    alive: bool,
}

/// Fits `routes` (priority order: the first ones matter most) into `budget`.
pub fn fit(routes: Vec<Route>, budget: usize, widen: Option<&WidenGuard>) -> Fitted {
    let mut left_out = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_key: HashMap<RouteKey, usize> = HashMap::new();
    for route in routes {
        match by_key.get(&route.key) {
            Some(&i) if slots[i].route == route => {}
            Some(&i) => {
                let holder = slots[i].route.decision;
                left_out.push(Refused { route, why: Refusal::Duplicate { holder } });
            }
            None => {
                by_key.insert(route.key.clone(), slots.len());
                slots.push(Slot {
                    rank: slots.len(),
                    route: route.clone(),
                    members: vec![route],
                    alive: true,
                });
            }
        }
    }
    let mut alive = slots.len();
    if alive > budget
        && let Some(guard) = widen
    {
        aggregate(&mut slots, &mut by_key, &mut alive, budget, guard);
    }
    let mut kept: Vec<&Slot> = slots.iter().filter(|s| s.alive).collect();
    kept.sort_by_key(|s| s.rank);
    let mut fitted = Vec::with_capacity(kept.len().min(budget));
    for (i, slot) in kept.into_iter().enumerate() {
        if i < budget {
            for member in &slot.members {
                if member.key != slot.route.key {
                    let into = slot.route.key.clone();
                    left_out.push(Refused { route: member.clone(), why: Refusal::Aggregated { into } });
                }
            }
            fitted.push(slot.route.clone());
        } else {
            let why = Refusal::OverBudget;
            left_out.extend(slot.members.iter().map(|m| Refused { route: m.clone(), why: why.clone() }));
        }
    }
    Fitted { routes: fitted, left_out }
}

/// Merges slots of one shape under common supernets, longest supernets first, until `alive`
/// fits the budget or nothing more may be widened.
fn aggregate(
    slots: &mut [Slot],
    by_key: &mut HashMap<RouteKey, usize>,
    alive: &mut usize,
    budget: usize,
    guard: &WidenGuard,
) {
    let shaped: Vec<Option<(Shape, IpNet)>> = slots.iter().map(|s| shape(&s.route)).collect();
    let mut dst: Vec<Option<IpNet>> = shaped.iter().map(|s| s.as_ref().map(|(_, p)| *p)).collect();
    let mut refused_supernets: HashSet<IpNet> = HashSet::new();
    for len in (1..128u8).rev() {
        // Slots of one shape whose destination lies in one supernet of length `len`.
        let mut groups: HashMap<(&Shape, IpNet), Vec<usize>> = HashMap::new();
        for (i, slot) in slots.iter().enumerate() {
            let (Some((shape, _)), Some(prefix)) = (&shaped[i], dst[i]) else { continue };
            if !slot.alive || prefix.prefix_len() < len || prefix.max_prefix_len() <= len {
                continue;
            }
            let Ok(supernet) = IpNet::new(prefix.addr(), len).map(|n| n.trunc()) else { continue };
            groups.entry((shape, supernet)).or_default().push(i);
        }
        let mut candidates: Vec<(IpNet, Vec<usize>)> =
            groups.into_iter().filter(|(_, m)| m.len() > 1).map(|((_, net), m)| (net, m)).collect();
        // The biggest saving first; among equals, the most important routes first.
        candidates
            .sort_by_key(|(net, m)| (usize::MAX - m.len(), m.iter().map(|&i| slots[i].rank).min(), *net));
        for (supernet, members) in candidates {
            if *alive <= budget {
                return;
            }
            if refused_supernets.contains(&supernet) {
                continue;
            }
            let best = members.iter().copied().min_by_key(|&i| slots[i].rank).unwrap_or(members[0]);
            let mut merged = widened(&slots[best].route, supernet);
            // Each slot's route already carries the sum of what it absorbed.
            merged.collateral_ppm = merged_collateral(members.iter().map(|&i| slots[i].route.collateral_ppm));
            if !guard.allows_collateral(merged.collateral_ppm) {
                // Too much of the targets' normal traffic for one rule: these stay apart, and
                // what does not fit is dropped by priority.
                continue;
            }
            // The wider NLRI already held by a route of another shape: leave both as they are.
            if by_key.get(&merged.key).is_some_and(|i| !members.contains(i)) {
                continue;
            }
            if !guard.allows(&supernet) {
                refused_supernets.insert(supernet);
                continue;
            }
            let mut absorbed = Vec::new();
            for &i in &members {
                by_key.remove(&slots[i].route.key);
                if i != best {
                    slots[i].alive = false;
                    absorbed.append(&mut slots[i].members);
                }
            }
            let rank = slots[best].rank;
            slots[best].members.append(&mut absorbed);
            slots[best].route = merged;
            slots[best].rank = rank;
            dst[best] = Some(supernet);
            by_key.insert(slots[best].route.key.clone(), best);
            *alive -= members.len() - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::DecisionId;

    fn bh(id: u64, prefix: &str) -> Route {
        Route {
            decision: DecisionId(id),
            key: RouteKey::Blackhole(prefix.parse().unwrap()),
            action: None,
            collateral_ppm: None,
        }
    }

    fn inside(net: &'static str) -> WidenGuard {
        let net: IpNet = net.parse().unwrap();
        WidenGuard::new(move |p| net.contains(p) && p.prefix_len() >= 24)
    }

    #[test]
    fn hosts_of_one_network_become_one_route_when_over_budget() {
        let routes = vec![bh(1, "198.51.100.1/32"), bh(2, "198.51.100.2/32"), bh(3, "198.51.100.3/32")];
        let fitted = fit(routes.clone(), 1, Some(&inside("198.51.100.0/24")));
        assert_eq!(fitted.routes, vec![bh(1, "198.51.100.0/30")]);
        assert_eq!(fitted.left_out.len(), 3, "{fitted:?}");
        assert!(fitted.left_out.iter().all(|r| matches!(r.why, Refusal::Aggregated { .. })));
        // Within budget nothing is widened.
        assert_eq!(fit(routes.clone(), 3, Some(&inside("198.51.100.0/24"))).routes, routes);
        // Only as far as needed: two routes fit, .2 and .3 share a /31.
        let two = fit(routes.clone(), 2, Some(&inside("198.51.100.0/24")));
        assert_eq!(two.routes, vec![bh(1, "198.51.100.1/32"), bh(2, "198.51.100.2/31")]);
    }

    #[test]
    fn what_the_guard_refuses_is_dropped_by_priority() {
        let routes = vec![bh(1, "198.51.100.1/32"), bh(2, "198.51.100.2/32"), bh(3, "192.0.2.3/32")];
        // The guard allows nothing beyond a /31 inside the protected network.
        let guard = WidenGuard::new(|p: &IpNet| p.prefix_len() >= 31);
        let fitted = fit(routes.clone(), 1, Some(&guard));
        assert_eq!(fitted.routes, vec![bh(1, "198.51.100.1/32")]);
        let dropped: Vec<u64> = fitted
            .left_out
            .iter()
            .filter(|r| r.why == Refusal::OverBudget)
            .map(|r| r.route.decision.0)
            .collect();
        assert_eq!(dropped, vec![2, 3]);
        // Without a guard: never widened.
        assert_eq!(fit(routes, 2, None).routes, vec![bh(1, "198.51.100.1/32"), bh(2, "198.51.100.2/32")]);
    }

    /// A FlowSpec discard of UDP from port 53 to `host`, with a collateral estimate.
    fn dns_rule(id: u64, host: &str, percent: f64) -> Route {
        let signature = rampart_contract::Signature {
            dst_prefixes: vec![format!("{host}/32").parse().unwrap()],
            protocol: Some(17),
            src_ports: vec![rampart_contract::PortRange::single(53)],
            collateral: Some(rampart_contract::Collateral {
                baseline_pps: 100.0,
                matching_pps: percent,
                percent,
            }),
            ..rampart_contract::Signature::default()
        };
        let decision = rampart_contract::Decision {
            id: DecisionId(id),
            scope: rampart_contract::Scope::Signature(Box::new(signature)),
            action: rampart_contract::Action::Discard,
            origin: rampart_contract::Origin::Operator { name: "t".into() },
            created: rampart_contract::EventTime::from_unix_secs(1),
            expires: None,
            reason: "test".into(),
        };
        Route::from_decision(&decision).unwrap().remove(0)
    }

    fn dst(route: &Route) -> IpNet {
        shape(route).unwrap().1
    }

    #[test]
    fn a_widened_rule_carries_the_sum_of_the_collateral_and_stays_within_the_limit() {
        let routes = vec![
            dns_rule(1, "198.51.100.1", 2.0),
            dns_rule(2, "198.51.100.2", 2.0),
            dns_rule(3, "198.51.100.3", 2.5),
        ];
        assert_eq!(routes[0].collateral_ppm, Some(20_000));
        let guard = inside("198.51.100.0/24");
        // Without a limit: one /30 rule carrying all three estimates.
        let fitted = fit(routes.clone(), 1, Some(&guard));
        assert_eq!(fitted.routes.len(), 1);
        assert_eq!(dst(&fitted.routes[0]), "198.51.100.0/30".parse::<IpNet>().unwrap());
        assert_eq!(fitted.routes[0].collateral_ppm, Some(65_000));
        // Limit 5 %: .2 and .3 (4.5 %) share a /31; adding .1 would make 6.5 %: refused, so
        // the lowest priority (the /31 holding 2 and 3) is dropped from a budget of one.
        let limited = guard.clone().with_collateral_limit(5.0);
        let fitted = fit(routes.clone(), 1, Some(&limited));
        assert_eq!(fitted.routes, vec![routes[0].clone()]);
        let dropped: Vec<u64> = fitted
            .left_out
            .iter()
            .filter(|r| r.why == Refusal::OverBudget)
            .map(|r| r.route.decision.0)
            .collect();
        assert_eq!(dropped, vec![2, 3]);
        let two = fit(routes.clone(), 2, Some(&limited));
        assert_eq!(two.routes[0], routes[0]);
        assert_eq!(dst(&two.routes[1]), "198.51.100.2/31".parse::<IpNet>().unwrap());
        assert_eq!(two.routes[1].collateral_ppm, Some(45_000));
        // Unknown estimates add nothing; a NaN limit merges no estimated rule.
        let mut unknown = routes.clone();
        unknown[0].collateral_ppm = None;
        assert_eq!(fit(unknown, 1, Some(&guard)).routes[0].collateral_ppm, Some(45_000));
        let nan = guard.with_collateral_limit(f64::NAN);
        assert_eq!(fit(routes.clone(), 1, Some(&nan)).routes, vec![routes[0].clone()]);
        assert_eq!(crate::route::collateral_ppm(f64::NAN), u32::MAX);
        assert_eq!(crate::route::collateral_ppm(-1.0), 0);
    }

    #[test]
    fn duplicates_are_reported_with_their_holder() {
        let fitted = fit(vec![bh(1, "198.51.100.1/32"), bh(2, "198.51.100.1/32")], 5, None);
        assert_eq!(fitted.routes.len(), 1);
        assert_eq!(fitted.left_out[0].why, Refusal::Duplicate { holder: DecisionId(1) });
    }
}
