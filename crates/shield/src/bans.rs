//! Address and prefix bans the shield enforces: the interface the decision store fills.
//!
//! The daemon (or a test) calls [`BanTable::replace`] with the decisions in force, at least
//! once a second, or follows the mitigator's actuator calls one by one with
//! [`BanTable::apply`], [`BanTable::withdraw`] and [`BanTable::reconcile`] (the shape of
//! `rampart_mitigate::Actuator`: the daemon's adapter only forwards). The shield checks every
//! new connection and every request against the table, so a ban applies to open keep-alive
//! and HTTP/2 connections at their next request.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

use ipnet::IpNet;
use rampart_contract::{Action, Decision, DecisionId, EventTime, Scope};

/// Anything that can say whether a client address is banned.
pub trait BanList: Send + Sync + std::fmt::Debug {
    /// Whether requests from `address` must be refused.
    fn is_banned(&self, address: IpAddr) -> bool;
}

/// A shared table of banned addresses and prefixes.
#[derive(Debug, Default)]
pub struct BanTable {
    prefixes: RwLock<Vec<IpNet>>,
    /// The decisions followed one by one (apply / withdraw / reconcile).
    by_id: Mutex<BTreeMap<DecisionId, IpNet>>,
}

/// The prefix a decision bans at the HTTP layer: address and prefix `Discard` decisions only
/// (signature-scoped and rate-limit decisions are for the network layers).
fn banned_prefix(decision: &Decision) -> Option<IpNet> {
    if decision.action != Action::Discard {
        return None;
    }
    match &decision.scope {
        Scope::Address(address) => Some(IpNet::from(canonical(*address))),
        Scope::Prefix(prefix) => Some(*prefix),
        _ => None,
    }
}

impl BanTable {
    /// An empty table.
    pub fn new() -> BanTable {
        BanTable::default()
    }

    /// Replace the bans with the address and prefix `Discard` decisions in force at `now`
    /// (signature-scoped and rate-limit decisions are for the network layers).
    pub fn replace(&self, decisions: &[Decision], now: EventTime) {
        let prefixes: Vec<IpNet> =
            decisions.iter().filter(|d| d.active_at(now)).filter_map(banned_prefix).collect();
        *self.prefixes.write().unwrap_or_else(|p| p.into_inner()) = prefixes;
    }

    /// Put one decision in force (a dry-run decision changes nothing).
    pub fn apply(&self, decision: &Decision, dry_run: bool) {
        if dry_run {
            return;
        }
        if let Some(prefix) = banned_prefix(decision) {
            let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
            by_id.insert(decision.id, prefix);
            self.publish(&by_id);
        }
    }

    /// Take decision `id` out of force (withdrawn or expired).
    pub fn withdraw(&self, id: DecisionId) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if by_id.remove(&id).is_some() {
            self.publish(&by_id);
        }
    }

    /// Exactly the decisions in `active`, nothing else.
    pub fn reconcile(&self, active: &[Decision]) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        by_id.clear();
        for decision in active {
            if let Some(prefix) = banned_prefix(decision) {
                by_id.insert(decision.id, prefix);
            }
        }
        self.publish(&by_id);
    }

    fn publish(&self, by_id: &BTreeMap<DecisionId, IpNet>) {
        *self.prefixes.write().unwrap_or_else(|p| p.into_inner()) = by_id.values().copied().collect();
    }

    /// Replace the bans with `prefixes` directly.
    pub fn set(&self, prefixes: Vec<IpNet>) {
        *self.prefixes.write().unwrap_or_else(|p| p.into_inner()) = prefixes;
    }
}

impl BanList for BanTable {
    fn is_banned(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.prefixes.read().unwrap_or_else(|p| p.into_inner()).iter().any(|p| p.contains(&address))
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) as IPv4.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{DecisionId, Origin};

    #[test]
    fn bans_from_decisions() {
        let table = BanTable::new();
        let now = EventTime::from_unix_secs(1_000);
        let ban = |scope| Decision {
            id: DecisionId(1),
            scope,
            action: Action::Discard,
            origin: Origin::Operator { name: "test".into() },
            created: EventTime::from_unix_secs(900),
            expires: Some(EventTime::from_unix_secs(2_000)),
            reason: "test".into(),
        };
        table.replace(
            &[
                ban(Scope::Address("192.0.2.7".parse().unwrap())),
                ban(Scope::Prefix("2001:db8:5::/48".parse().unwrap())),
            ],
            now,
        );
        assert!(table.is_banned("192.0.2.7".parse().unwrap()));
        assert!(table.is_banned("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!table.is_banned("192.0.2.8".parse().unwrap()));
        assert!(table.is_banned("2001:db8:5:1::1".parse().unwrap()));
        table.replace(&[], now);
        assert!(!table.is_banned("192.0.2.7".parse().unwrap()));

        // One by one, as the mitigator's actuator calls come.
        let mut second = ban(Scope::Prefix("198.51.100.0/24".parse().unwrap()));
        second.id = DecisionId(2);
        let first = ban(Scope::Address("192.0.2.7".parse().unwrap()));
        table.apply(&first, true);
        assert!(!table.is_banned("192.0.2.7".parse().unwrap()), "dry run changes nothing");
        table.apply(&first, false);
        table.apply(&second, false);
        assert!(table.is_banned("192.0.2.7".parse().unwrap()));
        assert!(table.is_banned("198.51.100.9".parse().unwrap()));
        table.withdraw(DecisionId(1));
        assert!(!table.is_banned("192.0.2.7".parse().unwrap()));
        table.reconcile(std::slice::from_ref(&first));
        assert!(table.is_banned("192.0.2.7".parse().unwrap()));
        assert!(!table.is_banned("198.51.100.9".parse().unwrap()));
        let mut rate = first;
        rate.action = Action::RateLimitPackets { packets_per_sec: 10 };
        table.reconcile(&[rate]);
        assert!(!table.is_banned("192.0.2.7".parse().unwrap()), "only discards ban at the HTTP layer");
    }
}
