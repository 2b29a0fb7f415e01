//! Total counters (octetTotalCount / packetTotalCount) turned into per-report deltas.
//!
//! An exporter that reports running totals for a long flow would otherwise be counted again on
//! every report. The last totals of recently seen flows are kept in a two-generation table of
//! bounded size: a flow not reported for a whole generation is forgotten, and its next report
//! counts in full (exactly right for flows reported once).

use std::collections::HashMap;
use std::net::IpAddr;

/// Exporter slot, src, dst, protocol, ports, input interface.
pub(crate) type TotalsKey = (u32, IpAddr, IpAddr, u8, Option<u16>, Option<u16>, u32);

#[derive(Debug, Clone, Copy)]
struct Last {
    packets: u64,
    bytes: u64,
    end_ns: i64,
}

/// What a report adds to the flow's previous reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    pub packets: u64,
    pub bytes: u64,
    /// End of the previous report, if the flow was reported before: the delta's period starts
    /// there.
    pub previous_end: Option<i64>,
}

#[derive(Debug, Default)]
pub(crate) struct Totals {
    current: HashMap<TotalsKey, Last>,
    previous: HashMap<TotalsKey, Last>,
    /// Flows per generation (the table holds at most twice this).
    generation: usize,
}

impl Totals {
    pub(crate) fn new(max_flows: usize) -> Self {
        Totals { current: HashMap::new(), previous: HashMap::new(), generation: max_flows / 2 }
    }

    pub(crate) fn delta(&mut self, key: TotalsKey, packets: u64, bytes: u64, end_ns: i64) -> Delta {
        if self.generation == 0 {
            return Delta { packets, bytes, previous_end: None };
        }
        let last = self.current.get(&key).copied().or_else(|| self.previous.remove(&key));
        let delta = match last {
            // A smaller total is a new flow reusing the key (or a counter reset).
            Some(last) if packets >= last.packets && bytes >= last.bytes => Delta {
                packets: packets - last.packets,
                bytes: bytes - last.bytes,
                previous_end: Some(last.end_ns),
            },
            _ => Delta { packets, bytes, previous_end: None },
        };
        if !self.current.contains_key(&key) && self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, Last { packets, bytes, end_ns });
        delta
    }

    pub(crate) fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(n: u32) -> TotalsKey {
        (0, IpAddr::V4(Ipv4Addr::from(n)), IpAddr::V4(Ipv4Addr::LOCALHOST), 6, Some(1), Some(2), 0)
    }

    #[test]
    fn running_totals_become_deltas() {
        let mut t = Totals::new(100);
        assert_eq!(t.delta(key(1), 10, 1000, 5), Delta { packets: 10, bytes: 1000, previous_end: None });
        assert_eq!(t.delta(key(1), 15, 1600, 9), Delta { packets: 5, bytes: 600, previous_end: Some(5) });
        // Counter went backwards: a new flow.
        assert_eq!(t.delta(key(1), 2, 100, 12), Delta { packets: 2, bytes: 100, previous_end: None });
    }

    #[test]
    fn table_stays_bounded() {
        let mut t = Totals::new(100);
        for n in 0..10_000 {
            t.delta(key(n), 1, 1, 0);
            assert!(t.len() <= 100);
        }
        // Recent flows are still known.
        assert_eq!(t.delta(key(9_999), 3, 3, 1).previous_end, Some(0));
    }
}
