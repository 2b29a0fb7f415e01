//! Address and prefix bans the shield enforces: the interface the decision store fills.
//!
//! The daemon (or a test) calls [`BanTable::replace`] with the decisions in force, at least
//! once a second; the shield checks every new connection and every request against the table,
//! so a ban applies to open keep-alive and HTTP/2 connections at their next request.

use std::net::IpAddr;
use std::sync::RwLock;

use ipnet::IpNet;
use rampart_contract::{Action, Decision, EventTime, Scope};

/// Anything that can say whether a client address is banned.
pub trait BanList: Send + Sync + std::fmt::Debug {
    /// Whether requests from `address` must be refused.
    fn is_banned(&self, address: IpAddr) -> bool;
}

/// A shared table of banned addresses and prefixes.
#[derive(Debug, Default)]
pub struct BanTable {
    prefixes: RwLock<Vec<IpNet>>,
}

impl BanTable {
    /// An empty table.
    pub fn new() -> BanTable {
        BanTable::default()
    }

    /// Replace the bans with the address and prefix `Discard` decisions in force at `now`
    /// (signature-scoped and rate-limit decisions are for the network layers).
    pub fn replace(&self, decisions: &[Decision], now: EventTime) {
        let prefixes: Vec<IpNet> = decisions
            .iter()
            .filter(|d| d.active_at(now) && d.action == Action::Discard)
            .filter_map(|d| match &d.scope {
                Scope::Address(address) => Some(IpNet::from(canonical(*address))),
                Scope::Prefix(prefix) => Some(*prefix),
                _ => None,
            })
            .collect();
        *self.prefixes.write().unwrap_or_else(|p| p.into_inner()) = prefixes;
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
    }
}
