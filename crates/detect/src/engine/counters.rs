//! Per-second counters: what one host sent and received in one second, and the metrics an
//! evaluated target (a host or an aggregate) is judged on.

use serde::Serialize;

use super::keys::{NO_SLOT, SLOTS};
use crate::baseline::Sample;
use crate::class::{AMPLIFICATION_PORTS, Class};

pub(super) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(super) const AMP: usize = AMPLIFICATION_PORTS.len();

/// One direction of one host's traffic in one second. Packet counters are u32 (a host
/// receiving 4 billion packets in a second saturates, still far over any threshold) to keep
/// the per-host state small.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DirCounters {
    pub(super) packets: [u32; Class::COUNT],
    pub(super) amp: [u32; AMP],
    pub(super) bytes: u64,
    pub(super) flows: u32,
}

#[inline]
pub(super) fn add_u32(counter: &mut u32, n: u64) {
    *counter = counter.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
}

impl DirCounters {
    #[inline]
    pub(super) fn add(&mut self, class: Class, amp: Option<usize>, packets: u64, bytes: u64, flows: u64) {
        if let Some(c) = self.packets.get_mut(class.index()) {
            add_u32(c, packets);
        }
        if let Some(a) = amp.and_then(|a| self.amp.get_mut(a)) {
            add_u32(a, packets);
        }
        self.bytes = self.bytes.saturating_add(bytes);
        add_u32(&mut self.flows, flows);
    }

    pub(super) fn tcp(&self) -> u64 {
        [Class::TcpSyn, Class::TcpAck, Class::TcpRst, Class::TcpOther]
            .into_iter()
            .map(|c| u64::from(self.packets[c.index()]))
            .sum()
    }

    pub(super) fn total(&self) -> u64 {
        self.packets.iter().map(|&p| u64::from(p)).sum()
    }
}

/// Counters of one host (or, for overflow, one prefix) during one second.
#[derive(Debug, Clone)]
pub(super) struct HostSecond {
    pub(super) key: u128,
    pub(super) inbound: DirCounters,
    pub(super) outbound: DirCounters,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    /// Attacks profiling this host's packets, by `SLOT_*`.
    pub(super) slots: [u32; SLOTS],
}

impl HostSecond {
    pub(super) fn new(key: u128) -> Self {
        HostSecond {
            key,
            inbound: DirCounters::default(),
            outbound: DirCounters::default(),
            first_ns: u64::MAX,
            last_ns: 0,
            slots: [NO_SLOT; SLOTS],
        }
    }
}

/// Counters of one open second.
#[derive(Debug, Default)]
pub(super) struct Bucket {
    pub(super) index: FastMap<u128, u32>,
    pub(super) hosts: Vec<HostSecond>,
    /// Hosts beyond `max_hosts`, summed per prefix (inbound only).
    pub(super) overflow: FastMap<u128, HostSecond>,
}

impl Bucket {
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.hosts.clear();
        self.overflow.clear();
    }
}

/// One second of a target's traffic in one direction, as evaluated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Metrics {
    pub(super) packets: [u64; Class::COUNT],
    pub(super) amp: [u64; AMP],
    /// Packets and bytes after the ACK exemption.
    pub(super) total: u64,
    pub(super) bytes: u64,
    pub(super) flows: u64,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    /// Aggregates: hosts contributing and the busiest one's packets.
    pub(super) hosts: u64,
    pub(super) max_host: u64,
}

impl Metrics {
    /// `d`'s counters; ACKs up to `answered_tcp` (the TCP packets the host itself sent the
    /// other way) are the other half of a legitimate transfer, not a flood.
    pub(super) fn of(d: &DirCounters, answered_tcp: u64, first_ns: u64, last_ns: u64) -> Metrics {
        let mut packets = [0u64; Class::COUNT];
        for (p, &c) in packets.iter_mut().zip(&d.packets) {
            *p = u64::from(c);
        }
        let mut amp = [0u64; AMP];
        for (a, &c) in amp.iter_mut().zip(&d.amp) {
            *a = u64::from(c);
        }
        let exempt = packets[Class::TcpAck.index()].min(answered_tcp);
        packets[Class::TcpAck.index()] -= exempt;
        let total = packets.iter().sum::<u64>();
        Metrics {
            packets,
            amp,
            total,
            bytes: d.bytes,
            flows: u64::from(d.flows),
            first_ns,
            last_ns,
            hosts: 1,
            max_host: total,
        }
    }

    pub(super) fn inbound(h: &HostSecond) -> Metrics {
        Metrics::of(&h.inbound, h.outbound.tcp(), h.first_ns, h.last_ns)
    }

    pub(super) fn outbound(h: &HostSecond) -> Metrics {
        Metrics::of(&h.outbound, h.inbound.tcp(), h.first_ns, h.last_ns)
    }

    pub(super) fn merge(&mut self, other: &Metrics) {
        for (a, b) in self.packets.iter_mut().zip(other.packets) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.amp.iter_mut().zip(other.amp) {
            *a = a.saturating_add(b);
        }
        self.total = self.total.saturating_add(other.total);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.flows = self.flows.saturating_add(other.flows);
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.hosts = self.hosts.saturating_add(other.hosts);
        self.max_host = self.max_host.max(other.max_host);
    }

    pub(super) fn class(&self, c: Class) -> u64 {
        self.packets[c.index()]
    }

    pub(super) fn tcp(&self) -> u64 {
        self.class(Class::TcpSyn)
            + self.class(Class::TcpAck)
            + self.class(Class::TcpRst)
            + self.class(Class::TcpOther)
    }

    pub(super) fn bps(&self) -> u64 {
        self.bytes.saturating_mul(8)
    }

    pub(super) fn sample(&self) -> Sample {
        Sample {
            pps: self.total,
            bps: self.bps(),
            flows: self.flows,
            classes: self.packets,
            amplification: self.amp.iter().sum(),
        }
    }
}
/// Packets, bits and new flows per second, in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficRates {
    pub inbound_pps: u64,
    pub inbound_bps: u64,
    pub inbound_flows: u64,
    pub outbound_pps: u64,
    pub outbound_bps: u64,
    pub outbound_flows: u64,
}

impl TrafficRates {
    pub(super) fn add(&mut self, h: &HostSecond) {
        self.inbound_pps = self.inbound_pps.saturating_add(h.inbound.total());
        self.inbound_bps = self.inbound_bps.saturating_add(h.inbound.bytes.saturating_mul(8));
        self.inbound_flows = self.inbound_flows.saturating_add(u64::from(h.inbound.flows));
        self.outbound_pps = self.outbound_pps.saturating_add(h.outbound.total());
        self.outbound_bps = self.outbound_bps.saturating_add(h.outbound.bytes.saturating_mul(8));
        self.outbound_flows = self.outbound_flows.saturating_add(u64::from(h.outbound.flows));
    }
}
