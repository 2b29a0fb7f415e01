//! The Adj-RIB-Out of one peer: the routes it should hold, bounded by its rule budget, and
//! which of them changed since they were last sent.

use std::collections::{BTreeMap, BTreeSet};

use rampart_contract::DecisionId;

use crate::route::{Route, RouteKey};

/// Why a route is not in a peer's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The peer's rule budget is full.
    OverBudget,
    /// Another decision already announces the same NLRI.
    Duplicate { holder: DecisionId },
}

/// A route left out, and why; the caller audits these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub route: Route,
    pub why: Refusal,
}

/// The routes one peer should hold.
#[derive(Debug, Clone)]
pub struct AdjRibOut {
    budget: usize,
    active: BTreeMap<RouteKey, Route>,
    /// Keys announced or withdrawn since the last `take_changes`.
    changed: BTreeSet<RouteKey>,
    refused_total: u64,
}

impl AdjRibOut {
    pub fn new(budget: usize) -> Self {
        AdjRibOut { budget, active: BTreeMap::new(), changed: BTreeSet::new(), refused_total: 0 }
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Routes refused since creation (over budget or duplicate).
    pub fn refused_total(&self) -> u64 {
        self.refused_total
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.active.values()
    }

    /// Adds one route, unless the budget is full or its NLRI is taken.
    pub fn insert(&mut self, route: Route) -> Result<(), Refused> {
        if let Some(existing) = self.active.get(&route.key) {
            if existing == &route {
                return Ok(());
            }
            if existing.decision != route.decision {
                self.refused_total += 1;
                let holder = existing.decision;
                return Err(Refused { route, why: Refusal::Duplicate { holder } });
            }
        } else if self.active.len() >= self.budget {
            self.refused_total += 1;
            return Err(Refused { route, why: Refusal::OverBudget });
        }
        self.changed.insert(route.key.clone());
        self.active.insert(route.key.clone(), route);
        Ok(())
    }

    /// Removes every route of a decision.
    pub fn remove_decision(&mut self, id: DecisionId) {
        let keys: Vec<RouteKey> =
            self.active.iter().filter(|(_, r)| r.decision == id).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.active.remove(&k);
            self.changed.insert(k);
        }
    }

    /// Makes the table exactly `routes` (in priority order: the first ones fit the budget),
    /// marking only what differs; returns what did not fit.
    pub fn set(&mut self, routes: Vec<Route>) -> Vec<Refused> {
        let mut next: BTreeMap<RouteKey, Route> = BTreeMap::new();
        let mut refused = Vec::new();
        for route in routes {
            match next.get(&route.key) {
                Some(existing) if existing.decision == route.decision && existing == &route => {}
                Some(existing) => {
                    let holder = existing.decision;
                    refused.push(Refused { route, why: Refusal::Duplicate { holder } });
                }
                None if next.len() >= self.budget => {
                    refused.push(Refused { route, why: Refusal::OverBudget })
                }
                None => {
                    next.insert(route.key.clone(), route);
                }
            }
        }
        self.refused_total += refused.len() as u64;
        for (k, r) in &self.active {
            if next.get(k) != Some(r) {
                self.changed.insert(k.clone());
            }
        }
        for (k, r) in &next {
            if self.active.get(k) != Some(r) {
                self.changed.insert(k.clone());
            }
        }
        self.active = next;
        refused
    }

    /// What to announce and what to withdraw since the last call.
    pub fn take_changes(&mut self) -> (Vec<Route>, Vec<RouteKey>) {
        let mut announce = Vec::new();
        let mut withdraw = Vec::new();
        for k in std::mem::take(&mut self.changed) {
            match self.active.get(&k) {
                Some(r) => announce.push(r.clone()),
                None => withdraw.push(k),
            }
        }
        (announce, withdraw)
    }

    /// Forgets pending changes (the session went down: everything is resent when it is up).
    pub fn clear_changes(&mut self) {
        self.changed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn route(id: u64, prefix: &str) -> Route {
        Route {
            decision: DecisionId(id),
            key: RouteKey::Blackhole(prefix.parse::<IpNet>().unwrap()),
            action: None,
        }
    }

    #[test]
    fn budget_refuses_and_counts() {
        let mut rib = AdjRibOut::new(2);
        rib.insert(route(1, "192.0.2.1/32")).unwrap();
        rib.insert(route(2, "192.0.2.2/32")).unwrap();
        let err = rib.insert(route(3, "192.0.2.3/32")).unwrap_err();
        assert_eq!(err.why, Refusal::OverBudget);
        let dup = rib.insert(route(4, "192.0.2.1/32")).unwrap_err();
        assert_eq!(dup.why, Refusal::Duplicate { holder: DecisionId(1) });
        assert_eq!(rib.refused_total(), 2);
        assert_eq!(rib.len(), 2);
    }

    #[test]
    fn set_marks_only_differences() {
        let mut rib = AdjRibOut::new(10);
        rib.set(vec![route(1, "192.0.2.1/32"), route(2, "192.0.2.2/32")]);
        let (a, w) = rib.take_changes();
        assert_eq!((a.len(), w.len()), (2, 0));
        rib.set(vec![route(2, "192.0.2.2/32"), route(3, "192.0.2.3/32")]);
        let (a, w) = rib.take_changes();
        assert_eq!(a, vec![route(3, "192.0.2.3/32")]);
        assert_eq!(w, vec![route(1, "192.0.2.1/32").key]);
        let refused = AdjRibOut::new(1).set(vec![route(1, "192.0.2.1/32"), route(2, "192.0.2.2/32")]);
        assert_eq!(refused.len(), 1);
    }
}
