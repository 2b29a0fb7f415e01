//! Traffic totals per destination and per protocol: what `rampart inspect` and `rampart collect`
//! report, and what interop tests compare across sources.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::record::TrafficRecord;

/// Packets and IP-layer bytes, scaled by sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, packets: u64, bytes: u64) {
        self.packets = self.packets.saturating_add(packets);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// One destination's totals, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationTotals {
    pub ip: IpAddr,
    pub packets: u64,
    pub bytes: u64,
}

/// Accumulates sampling-scaled totals: overall, per destination address and per IP protocol.
///
/// Memory grows with the number of distinct destinations (about 50 bytes each); this is the
/// offline/inspection view. The detection engine keeps its own bounded state.
#[derive(Debug, Clone)]
pub struct TrafficSummary {
    total: Totals,
    destinations: HashMap<IpAddr, Totals, foldhash::fast::RandomState>,
    protocols: [Totals; 256],
}

impl TrafficSummary {
    pub fn new() -> Self {
        Self {
            total: Totals::default(),
            destinations: HashMap::default(),
            protocols: [Totals::default(); 256],
        }
    }

    #[inline]
    pub fn add(&mut self, record: &TrafficRecord) {
        let packets = record.scaled_packets();
        let bytes = record.scaled_bytes();
        self.total.add(packets, bytes);
        self.destinations.entry(record.dst).or_default().add(packets, bytes);
        self.protocols[usize::from(record.protocol)].add(packets, bytes);
    }

    pub fn total(&self) -> Totals {
        self.total
    }

    pub fn destination(&self, ip: IpAddr) -> Option<Totals> {
        self.destinations.get(&ip).copied()
    }

    pub fn destination_count(&self) -> usize {
        self.destinations.len()
    }

    /// Every destination, by bytes descending (ties: by packets descending, then address, so
    /// the order is stable across runs).
    pub fn destinations_by_bytes(&self) -> Vec<DestinationTotals> {
        let mut list: Vec<DestinationTotals> = self
            .destinations
            .iter()
            .map(|(&ip, totals)| DestinationTotals { ip, packets: totals.packets, bytes: totals.bytes })
            .collect();
        list.sort_unstable_by(|a, b| {
            b.bytes.cmp(&a.bytes).then(b.packets.cmp(&a.packets)).then(a.ip.cmp(&b.ip))
        });
        list
    }

    /// Protocols that carried traffic, keyed by IP protocol number.
    pub fn protocols(&self) -> BTreeMap<u8, Totals> {
        (0..=255u8)
            .filter(|&p| self.protocols[usize::from(p)].packets > 0)
            .map(|p| (p, self.protocols[usize::from(p)]))
            .collect()
    }
}

/// A well-known name for an IP protocol number, for human output.
pub fn protocol_name(protocol: u8) -> Option<&'static str> {
    Some(match protocol {
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPIP",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        89 => "OSPF",
        103 => "PIM",
        112 => "VRRP",
        132 => "SCTP",
        _ => return None,
    })
}

impl Default for TrafficSummary {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_scaled_and_sorted_by_bytes() {
        let mut summary = TrafficSummary::new();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        summary.add(&TrafficRecord { dst: a, protocol: 6, packets: 1, bytes: 40, ..TrafficRecord::EMPTY });
        summary.add(&TrafficRecord {
            dst: b,
            protocol: 17,
            packets: 2,
            bytes: 100,
            sampling_rate: 10,
            ..TrafficRecord::EMPTY
        });
        summary.add(&TrafficRecord { dst: a, protocol: 6, packets: 1, bytes: 1500, ..TrafficRecord::EMPTY });
        assert_eq!(summary.total(), Totals { packets: 22, bytes: 2540 });
        let list = summary.destinations_by_bytes();
        assert_eq!(list[0], DestinationTotals { ip: a, packets: 2, bytes: 1540 });
        assert_eq!(list[1], DestinationTotals { ip: b, packets: 20, bytes: 1000 });
        assert_eq!(summary.protocols()[&17], Totals { packets: 20, bytes: 1000 });
        assert_eq!(summary.protocols().len(), 2);
    }
}
