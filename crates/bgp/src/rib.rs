//! The Adj-RIB-Out of one peer: the routes it should hold, bounded by its rule budget, and
//! which of them changed since they were last sent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rampart_contract::DecisionId;

use crate::budget::{WidenGuard, fit};
use crate::route::{Route, RouteKey};

/// Why a route is not in a peer's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The peer's rule budget is full.
    OverBudget,
    /// Another decision already announces the same NLRI.
    Duplicate { holder: DecisionId },
    /// Over budget, the route is covered by a wider one (still inside the guards).
    Aggregated { into: RouteKey },
}

impl Refusal {
    /// A short stable name, the metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::OverBudget => "budget",
            Refusal::Duplicate { .. } => "duplicate",
            Refusal::Aggregated { .. } => "aggregated",
        }
    }

    /// Every name, for metrics that show zeros.
    pub const NAMES: [&'static str; 3] = ["budget", "duplicate", "aggregated"];
}

/// Routes left out, by [`Refusal::name`], counted once each time a route becomes left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    pub budget: u64,
    pub duplicate: u64,
    pub aggregated: u64,
}

impl RefusalCounts {
    fn add(&mut self, why: &Refusal) {
        match why {
            Refusal::OverBudget => self.budget += 1,
            Refusal::Duplicate { .. } => self.duplicate += 1,
            Refusal::Aggregated { .. } => self.aggregated += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.budget + self.duplicate + self.aggregated
    }

    /// The count of [`Refusal::name`] `name`.
    pub fn get(&self, name: &str) -> u64 {
        match name {
            "budget" => self.budget,
            "duplicate" => self.duplicate,
            "aggregated" => self.aggregated,
            _ => 0,
        }
    }
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
    /// The routes the last `set` left out, and why.
    left_out: HashMap<(DecisionId, RouteKey), Refused>,
    counts: RefusalCounts,
}

impl AdjRibOut {
    pub fn new(budget: usize) -> Self {
        AdjRibOut {
            budget,
            active: BTreeMap::new(),
            changed: BTreeSet::new(),
            left_out: HashMap::new(),
            counts: RefusalCounts::default(),
        }
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

    /// Routes refused since creation (over budget, duplicate or aggregated), each counted when
    /// it becomes left out (not again while it stays so).
    pub fn refused_total(&self) -> u64 {
        self.counts.total()
    }

    pub fn refusal_counts(&self) -> RefusalCounts {
        self.counts
    }

    /// The routes the last `set` left out, and why.
    pub fn left_out(&self) -> Vec<Refused> {
        let mut out: Vec<Refused> = self.left_out.values().cloned().collect();
        out.sort_by(|a, b| (a.route.decision, &a.route.key).cmp(&(b.route.decision, &b.route.key)));
        out
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
                let holder = existing.decision;
                let why = Refusal::Duplicate { holder };
                self.counts.add(&why);
                return Err(Refused { route, why });
            }
        } else if self.active.len() >= self.budget {
            self.counts.add(&Refusal::OverBudget);
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

    /// Makes the table exactly `routes` (in priority order: the first ones fit the budget,
    /// aggregated first when `widen` allows), marking only what differs; returns the routes
    /// newly left out (those left out by the previous call too are not repeated).
    pub fn set(&mut self, routes: Vec<Route>, widen: Option<&WidenGuard>) -> Vec<Refused> {
        let fitted = fit(routes, self.budget, widen);
        let next: BTreeMap<RouteKey, Route> = fitted.routes.into_iter().map(|r| (r.key.clone(), r)).collect();
        let mut left_out = HashMap::with_capacity(fitted.left_out.len());
        let mut refused = Vec::new();
        for r in fitted.left_out {
            let id = (r.route.decision, r.route.key.clone());
            if self.left_out.get(&id).is_none_or(|before| before.why != r.why) {
                self.counts.add(&r.why);
                refused.push(r.clone());
            }
            left_out.insert(id, r);
        }
        self.left_out = left_out;
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
            collateral_ppm: None,
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
        rib.set(vec![route(1, "192.0.2.1/32"), route(2, "192.0.2.2/32")], None);
        let (a, w) = rib.take_changes();
        assert_eq!((a.len(), w.len()), (2, 0));
        rib.set(vec![route(2, "192.0.2.2/32"), route(3, "192.0.2.3/32")], None);
        let (a, w) = rib.take_changes();
        assert_eq!(a, vec![route(3, "192.0.2.3/32")]);
        assert_eq!(w, vec![route(1, "192.0.2.1/32").key]);
        let mut small = AdjRibOut::new(1);
        let both = vec![route(1, "192.0.2.1/32"), route(2, "192.0.2.2/32")];
        assert_eq!(small.set(both.clone(), None).len(), 1);
        // Still left out: not reported (nor counted) again, but listed.
        assert!(small.set(both, None).is_empty());
        assert_eq!(small.refusal_counts().budget, 1);
        assert_eq!(small.left_out().len(), 1);
    }
}
