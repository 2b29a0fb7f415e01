//! Per-second counters: what one host sent and received in one second, and the metrics an
//! evaluated target (a host or an aggregate) is judged on.

use serde::Serialize;

use super::keys::{NO_SLOT, SLOTS};
use crate::baseline::Sample;
use crate::class::{Class, Evidence};
use crate::profile::Profile;

pub(super) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Slots of a [`PortSketch`]: three ports can be certified while the fourth absorbs the churn
/// of the other ports.
const PORT_SLOTS: usize = 4;

/// Space-Saving heavy hitters over UDP source ports with [`PORT_SLOTS`] slots (40 bytes): a
/// port with more than a quarter of the packets is certainly kept, and `count - error` is a
/// lower bound of its packets. Reflection concentrates a target's UDP on a few source ports;
/// a spoofed flood's random ports leave every slot mostly error.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PortSketch {
    ports: [u16; PORT_SLOTS],
    counts: [u32; PORT_SLOTS],
    errors: [u32; PORT_SLOTS],
}

impl PortSketch {
    #[inline]
    pub(super) fn add(&mut self, port: u16, packets: u32) {
        // A slot with count 0 is free (its port is meaningless).
        let mut min = 0;
        for i in 0..PORT_SLOTS {
            if self.counts[i] > 0 && self.ports[i] == port {
                self.counts[i] = self.counts[i].saturating_add(packets);
                return;
            }
            if self.counts[i] < self.counts[min] {
                min = i;
            }
        }
        let floor = self.counts[min];
        (self.ports[min], self.counts[min], self.errors[min]) = (port, floor.saturating_add(packets), floor);
    }

    /// Adds `other` (another host's second); error bounds carry over.
    pub(super) fn merge(&mut self, other: &PortSketch) {
        for i in (0..PORT_SLOTS).filter(|&i| other.counts[i] > 0) {
            let port = other.ports[i];
            let before = self.position(port).map_or(0, |j| self.errors[j]);
            self.add(port, other.counts[i]);
            if let Some(j) = self.position(port) {
                self.errors[j] =
                    self.errors[j].max(before).saturating_add(other.errors[i]).min(self.counts[j]);
            }
        }
    }

    fn position(&self, port: u16) -> Option<usize> {
        (0..PORT_SLOTS).find(|&i| self.counts[i] > 0 && self.ports[i] == port)
    }

    /// Ports with a certain count, heaviest first: (port, packets at least).
    pub(super) fn heavy(&self) -> impl Iterator<Item = (u16, u64)> {
        let mut slots: Vec<(u16, u64)> = (0..PORT_SLOTS)
            .map(|i| (self.ports[i], u64::from(self.counts[i] - self.errors[i].min(self.counts[i]))))
            .filter(|&(_, c)| c > 0)
            .collect();
        slots.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        slots.into_iter()
    }
}

/// One bit per remote address (multiply-shift hash, keyed per process) in a second: 64-bit
/// linear counting, enough to tell "many sources" from a few.
#[inline]
pub(super) fn remote_bit(remote: u128, key: u64) -> u64 {
    let folded = (remote as u64) ^ ((remote >> 64) as u64).rotate_left(29);
    1 << ((folded ^ key).wrapping_mul(key | 1) >> 58)
}

/// Distinct remotes a bitmap of [`remote_bit`]s says there are at least about: linear
/// counting, `-64 ln(zeros / 64)`.
pub(super) fn distinct_remotes(bits: u64) -> u64 {
    let zeros = f64::from(bits.count_zeros().max(1));
    (-64.0 * (zeros / 64.0).ln()).round() as u64
}

/// One direction of one host's traffic in one second. Packet counters are u32 (a host
/// receiving 4 billion packets in a second saturates, still far over any threshold) to keep
/// the per-host state small.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DirCounters {
    pub(super) packets: [u32; Class::COUNT],
    /// UDP from known reflector ports.
    pub(super) amp: u32,
    /// UDP source ports.
    pub(super) ports: PortSketch,
    /// Remote addresses seen ([`remote_bit`]).
    pub(super) remotes: u64,
    /// TCP SYN-ACKs, and TCP with payload to port 80 (see [`Evidence`]).
    pub(super) syn_ack: u32,
    pub(super) probes: u32,
    pub(super) bytes: u64,
    pub(super) flows: u32,
    /// Packets observed before scaling by the sampling rate (see [`Metrics::observed`]).
    pub(super) observed: u32,
}

#[inline]
pub(super) fn add_u32(counter: &mut u32, n: u64) {
    *counter = counter.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
}

impl DirCounters {
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        class: Class,
        evidence: Evidence,
        remote: u64,
        packets: u64,
        observed: u64,
        bytes: u64,
        flows: u64,
    ) {
        if let Some(c) = self.packets.get_mut(class.index()) {
            add_u32(c, packets);
        }
        add_u32(&mut self.observed, observed);
        self.remotes |= remote;
        if let Some(port) = evidence.udp_src_port {
            self.ports.add(port, u32::try_from(packets).unwrap_or(u32::MAX));
            if evidence.reflector {
                add_u32(&mut self.amp, packets);
            }
        }
        if evidence.syn_ack {
            add_u32(&mut self.syn_ack, packets);
        }
        if evidence.probe {
            add_u32(&mut self.probes, packets);
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
    /// This second's provisional profiles of the host (inbound, outbound): an index into
    /// `Bucket::provisional` once the host is hot, `NO_SLOT` before, `FULL` if none was free.
    pub(super) provisional: [u32; 2],
    /// Index of the host's prefix in `Bucket::prefixes` (`NO_SLOT` when that table is full).
    pub(super) prefix: u32,
    /// Packets (all classes) from which the host is hot by its learned baseline; `u32::MAX`
    /// without one.
    pub(super) learned_watch: u32,
}

/// No provisional profile was free when the host (or prefix) turned hot: do not retry.
pub(super) const FULL: u32 = u32::MAX - 1;

impl HostSecond {
    pub(super) fn new(key: u128) -> Self {
        HostSecond {
            key,
            inbound: DirCounters::default(),
            outbound: DirCounters::default(),
            first_ns: u64::MAX,
            last_ns: 0,
            slots: [NO_SLOT; SLOTS],
            provisional: [NO_SLOT; 2],
            prefix: NO_SLOT,
            learned_watch: u32::MAX,
        }
    }
}

/// Inbound packets and bytes of one first-level prefix (/24, /64) so far in a second, to tell
/// when it turns hot.
#[derive(Debug, Clone, Copy)]
pub(super) struct PrefixSecond {
    pub(super) packets: u64,
    pub(super) bytes: u64,
    /// As [`HostSecond::provisional`].
    pub(super) provisional: u32,
}

/// A cleared provisional profile's index in a bucket's pool, `FULL` when `max` are in use.
pub(super) fn claim(provisional: &mut Vec<Profile>, used: &mut usize, max: usize) -> u32 {
    if *used >= max {
        return FULL;
    }
    if *used == provisional.len() {
        provisional.push(Profile::default());
    }
    *used += 1;
    u32::try_from(*used - 1).unwrap_or(FULL)
}

/// Counters of one open second.
#[derive(Debug, Default)]
pub(super) struct Bucket {
    pub(super) index: FastMap<u128, u32>,
    pub(super) hosts: Vec<HostSecond>,
    /// Hosts beyond `max_hosts`, summed per prefix (inbound only).
    pub(super) overflow: FastMap<u128, HostSecond>,
    /// First-level prefixes of this second's hosts, by prefix key.
    pub(super) prefix_index: FastMap<u128, u32>,
    pub(super) prefixes: Vec<PrefixSecond>,
    /// Provisional profiles of this second's hot hosts and prefixes (the first `used`; the
    /// rest are kept cleared for reuse), so a target's first second over a limit is profiled
    /// although it is known to be over only when the second closes.
    pub(super) provisional: Vec<Profile>,
    pub(super) used: usize,
}

impl Bucket {
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.hosts.clear();
        self.overflow.clear();
        self.prefix_index.clear();
        self.prefixes.clear();
        for p in self.provisional.iter_mut().take(self.used) {
            *p = Profile::default();
        }
        self.used = 0;
    }

    /// The provisional profile at `index`, if one was claimed there.
    pub(super) fn provisional(&self, index: u32) -> Option<&Profile> {
        self.provisional.get(..self.used)?.get(index as usize)
    }

    /// The index of first-level prefix `key` in `prefixes` (its provisional profile, or those
    /// of its hot hosts, make its first second's profile).
    pub(super) fn prefix_slot(&self, key: u128) -> Option<u32> {
        self.prefix_index.get(&key).copied()
    }

    /// The provisional profile of the prefix at `index` in `prefixes`, if it turned hot.
    pub(super) fn prefix_provisional(&self, index: u32) -> Option<&Profile> {
        self.provisional(self.prefixes.get(index as usize)?.provisional)
    }

    /// The hot prefixes at `indices` merged with the hot hosts under them (`hot_hosts`:
    /// prefix index, provisional index): the first second of an aggregate above them.
    pub(super) fn merged_provisional(
        &self,
        indices: Option<&Vec<u32>>,
        hot_hosts: &[(u32, u32)],
    ) -> Option<Profile> {
        let mut indices = indices?.clone();
        indices.sort_unstable();
        indices.dedup();
        let mut merged = Profile::default();
        for &i in &indices {
            if let Some(p) = self.prefix_provisional(i) {
                merged.merge(p);
            }
            for &(_, host) in hot_hosts.iter().filter(|&&(prefix, _)| prefix == i) {
                if let Some(p) = self.provisional(host) {
                    merged.merge(p);
                }
            }
        }
        (merged.packets > 0).then_some(merged)
    }
}

/// One second of a target's traffic in one direction, as evaluated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Metrics {
    pub(super) packets: [u64; Class::COUNT],
    /// UDP from known reflector ports.
    pub(super) amp: u64,
    pub(super) ports: PortSketch,
    /// Remote addresses seen; 0 outbound (reflection needs many sources).
    pub(super) remotes: u64,
    pub(super) syn_ack: u64,
    pub(super) probes: u64,
    /// Packets and bytes after the ACK exemption.
    pub(super) total: u64,
    pub(super) bytes: u64,
    pub(super) flows: u64,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    /// Aggregates: hosts contributing and the busiest one's packets.
    pub(super) hosts: u64,
    pub(super) max_host: u64,
    /// Packets observed before scaling by the sampling rate: under 1:1000 sampling a thousand
    /// times fewer than `total`, and what the shares naming vectors are measured on.
    pub(super) observed: u64,
}

impl Metrics {
    /// `d`'s counters; ACKs up to `answered_tcp` (the TCP packets the host itself sent the
    /// other way) are the other half of a legitimate transfer, not a flood.
    pub(super) fn of(d: &DirCounters, answered_tcp: u64, first_ns: u64, last_ns: u64) -> Metrics {
        let mut packets = [0u64; Class::COUNT];
        for (p, &c) in packets.iter_mut().zip(&d.packets) {
            *p = u64::from(c);
        }
        let exempt = packets[Class::TcpAck.index()].min(answered_tcp);
        packets[Class::TcpAck.index()] -= exempt;
        let total = packets.iter().sum::<u64>();
        Metrics {
            packets,
            amp: u64::from(d.amp),
            ports: d.ports,
            remotes: d.remotes,
            syn_ack: u64::from(d.syn_ack),
            probes: u64::from(d.probes),
            total,
            bytes: d.bytes,
            flows: u64::from(d.flows),
            first_ns,
            last_ns,
            hosts: 1,
            max_host: total,
            observed: u64::from(d.observed),
        }
    }

    pub(super) fn inbound(h: &HostSecond) -> Metrics {
        let mut m = Metrics::of(&h.inbound, h.outbound.tcp(), h.first_ns, h.last_ns);
        // SYN-ACKs answering the host's own SYNs are solicited: no evidence of reflection.
        m.syn_ack = m.syn_ack.saturating_sub(u64::from(h.outbound.packets[Class::TcpSyn.index()]));
        m
    }

    pub(super) fn outbound(h: &HostSecond) -> Metrics {
        // The remotes of outbound traffic are its destinations: no evidence of reflection
        // towards us (a protected reflector is still named by its known port).
        Metrics { remotes: 0, ..Metrics::of(&h.outbound, h.inbound.tcp(), h.first_ns, h.last_ns) }
    }

    pub(super) fn merge(&mut self, other: &Metrics) {
        for (a, b) in self.packets.iter_mut().zip(other.packets) {
            *a = a.saturating_add(b);
        }
        self.amp = self.amp.saturating_add(other.amp);
        self.ports.merge(&other.ports);
        self.remotes |= other.remotes;
        self.syn_ack = self.syn_ack.saturating_add(other.syn_ack);
        self.probes = self.probes.saturating_add(other.probes);
        self.total = self.total.saturating_add(other.total);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.flows = self.flows.saturating_add(other.flows);
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.hosts = self.hosts.saturating_add(other.hosts);
        self.max_host = self.max_host.max(other.max_host);
        self.observed = self.observed.saturating_add(other.observed);
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
            amplification: self.amp,
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
