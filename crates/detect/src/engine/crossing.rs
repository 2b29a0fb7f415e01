//! Threshold crossings: which counters of a second are over their static or learned limits,
//! and which attack vectors they name.

use std::collections::BTreeSet;

use rampart_contract::{Confidence, Metric, Vector};

use super::counters::{Metrics, distinct_remotes};
use crate::baseline::Baseline;
use crate::class::{Class, reflector_vector};
use crate::config::Thresholds;

/// A counter over its limit: (counter, value, threshold, learned baseline). The level is the
/// evaluated target's.
pub(super) type Crossing = (Metric, u64, u64, Option<f64>);

/// Reflection evidence: at least this many distinct sources in the second (about 16 bits of
/// the 64-bit remote bitmap).
pub(super) const MANY_SOURCES: u64 = 18;
/// UDP "concentrated": at least 80 % of the target's UDP packets from at most three source
/// ports (certain counts of the port sketch).
const CONCENTRATED_PERCENT: u64 = 80;
/// A port named among the reflectors carries at least 10 % of the UDP packets.
const NAMED_PORT_PERCENT: u64 = 10;

impl Metrics {
    /// The per-second value of a class counter that names a vector when it crosses.
    fn class_counter(&self, metric: Metric) -> Option<u64> {
        Some(match metric {
            Metric::TcpPps => self.tcp(),
            Metric::TcpSynPps => self.class(Class::TcpSyn),
            Metric::TcpAckPps => self.class(Class::TcpAck),
            Metric::TcpRstPps => self.class(Class::TcpRst),
            Metric::UdpPps => self.class(Class::Udp),
            Metric::IcmpPps => self.class(Class::Icmp),
            Metric::FragmentPps => self.class(Class::Fragment),
            Metric::AmplificationPps => self.amp,
            _ => return None,
        })
    }

    /// Host counters over their thresholds.
    pub(super) fn crossed_host(&self, t: &Thresholds) -> Vec<Crossing> {
        let amp = self.amp;
        [
            (Metric::Pps, self.total, t.pps),
            (Metric::Bps, self.bps(), t.bps),
            (Metric::NewFlows, self.flows, t.new_flows),
            (Metric::TcpPps, self.tcp(), t.tcp_pps),
            (Metric::TcpSynPps, self.class(Class::TcpSyn), t.tcp_syn_pps),
            (Metric::TcpAckPps, self.class(Class::TcpAck), t.tcp_ack_pps),
            (Metric::TcpRstPps, self.class(Class::TcpRst), t.tcp_rst_pps),
            (Metric::UdpPps, self.class(Class::Udp), t.udp_pps),
            (Metric::IcmpPps, self.class(Class::Icmp), t.icmp_pps),
            (Metric::FragmentPps, self.class(Class::Fragment), t.fragment_pps),
            (Metric::AmplificationPps, amp, t.amplification_pps),
        ]
        .into_iter()
        .filter(|&(_, value, threshold)| value > threshold)
        .map(|(counter, value, threshold)| (counter, value, threshold, None))
        .collect()
    }

    /// Whether many hosts share the traffic: no single host carries half of it (else it is
    /// that host's business, not carpet bombing).
    pub(super) fn spread_over_hosts(&self) -> bool {
        self.hosts >= 2 && self.max_host.saturating_mul(2) <= self.total
    }

    /// Aggregate counters over threshold, when the traffic is spread over hosts.
    pub(super) fn crossed_aggregate(&self, t: &Thresholds) -> Vec<Crossing> {
        if !self.spread_over_hosts() {
            return Vec::new();
        }
        [
            (Metric::Pps, self.total, t.pps),
            (Metric::Bps, self.bps(), t.bps),
            (Metric::NewFlows, self.flows, t.new_flows),
        ]
        .into_iter()
        .filter(|&(_, value, threshold)| value > threshold)
        .map(|(counter, value, threshold)| (counter, value, threshold, None))
        .collect()
    }

    /// Counters over their learned limits (see [`BaselineLimit`]).
    pub(super) fn crossed_baseline(&self, b: &Baseline, limit: BaselineLimit) -> Vec<Crossing> {
        let [pps, bps, flows] = limit.of(b);
        [
            (Metric::Pps, self.total, pps, b.pps),
            (Metric::Bps, self.bps(), bps, b.bps),
            (Metric::NewFlows, self.flows, flows, b.flows),
        ]
        .into_iter()
        .filter(|&(_, value, threshold, _)| value > threshold)
        .map(|(counter, value, threshold, normal)| (counter, value, threshold, Some(normal)))
        .collect()
    }

    /// Vectors explaining this second: classes whose own counter crossed, and the class(es)
    /// making up the bulk of the traffic; reflector ports turn UDP and fragments into the
    /// amplification vector.
    pub(super) fn vectors(&self, crossed: &[Crossing], into: &mut BTreeSet<Vector>) {
        let mut v = BTreeSet::new();
        let tcp = self.tcp();
        let dominant_tcp = || {
            [Class::TcpSyn, Class::TcpAck, Class::TcpRst]
                .into_iter()
                .find(|&c| self.class(c).saturating_mul(2) >= tcp.max(1))
                .map_or(Vector::TcpFlood, Class::vector)
        };
        for &(metric, _, _, _) in crossed {
            let vector = match metric {
                Metric::TcpPps => dominant_tcp(),
                Metric::TcpSynPps => Vector::SynFlood,
                Metric::TcpAckPps => Vector::AckFlood,
                Metric::TcpRstPps => Vector::RstFlood,
                Metric::UdpPps | Metric::AmplificationPps => Vector::UdpFlood,
                Metric::IcmpPps => Vector::IcmpFlood,
                Metric::FragmentPps => Vector::IpFragmentFlood,
                _ => continue,
            };
            v.insert(vector);
        }
        // Bulk: the class holding at least half of the packets, else TCP as a whole, else the
        // largest class.
        let largest = Class::ALL.into_iter().max_by_key(|&c| (self.class(c), std::cmp::Reverse(c.index())));
        if let Some(c) = largest
            && self.total > 0
        {
            if self.class(c).saturating_mul(2) >= self.total {
                v.insert(c.vector());
            } else if tcp.saturating_mul(2) >= self.total {
                v.insert(dominant_tcp());
            } else if v.is_empty() {
                v.insert(c.vector());
            }
        }
        self.reflection(&mut v);
        into.extend(v);
    }

    fn many_sources(&self) -> bool {
        distinct_remotes(self.remotes) >= MANY_SOURCES
    }

    /// Turns UDP and TCP floods into the reflection they are when the evidence says so.
    ///
    /// UDP (with its fragments) making up half of the traffic is reflection when its packets
    /// come from many sources and 80 % of them from at most three source ports; each of those
    /// ports carrying 10 % is named from the reflector table, else as UDP reflection (the port
    /// is in the signature). Without that evidence, UDP mostly from known reflector ports is
    /// still named after them (a few reflectors, or our own server answering outbound).
    fn reflection(&self, v: &mut BTreeSet<Vector>) {
        let udp = self.class(Class::Udp);
        let udp_like = udp + self.class(Class::Fragment);
        if udp > 0 && udp_like.saturating_mul(2) >= self.total {
            let heavy: Vec<(u16, u64)> = self.ports.heavy().take(3).collect();
            let certain: u64 = heavy.iter().map(|&(_, c)| c).sum();
            // Port 0 is no service: flow exporters write it for fragments (no transport
            // header), whose share counts towards the concentration but names nothing.
            let named = heavy
                .iter()
                .filter(|&&(port, c)| port != 0 && c.saturating_mul(100) >= NAMED_PORT_PERCENT * udp);
            let mut found = BTreeSet::new();
            if certain.saturating_mul(100) >= CONCENTRATED_PERCENT * udp && self.many_sources() {
                found.extend(named.map(|&(port, _)| reflector_vector(port).unwrap_or(Vector::UdpReflection)));
            } else if self.amp > 0 && self.amp.saturating_mul(2) >= udp {
                found.extend(named.filter_map(|&(port, _)| reflector_vector(port)));
                if found.is_empty() {
                    // Many known ports, none heavy on its own: the heaviest of them.
                    found.extend(heavy.iter().find_map(|&(port, _)| reflector_vector(port)));
                }
            }
            if !found.is_empty() {
                v.remove(&Vector::UdpFlood);
                v.remove(&Vector::IpFragmentFlood);
                v.append(&mut found);
            }
        }
        // TCP: unsolicited SYN-ACKs or payload to port 80 making up half of the TCP, from many
        // sources, are reflected, not a flood of the target's own making.
        let tcp = self.tcp();
        let tcp_vectors = [Vector::TcpFlood, Vector::AckFlood, Vector::SynFlood];
        if tcp > 0 && tcp_vectors.iter().any(|t| v.contains(t)) && self.many_sources() {
            let reflected = if self.syn_ack.saturating_mul(2) >= tcp {
                Some(Vector::SynAckReflection)
            } else if self.probes.saturating_mul(2) >= tcp {
                Some(Vector::TcpMiddleboxReflection)
            } else {
                None
            };
            if let Some(reflected) = reflected {
                for t in tcp_vectors {
                    v.remove(&t);
                }
                v.insert(reflected);
            }
        }
    }
}

/// The seconds of one target too thinly sampled to name vectors on their own (fewer than
/// [`Confidence::MIN_SAMPLES`] observed packets: under 1:10,000 sampling, a 100 kpps flood
/// shows ten), summed until they hold enough. A single sampled SYN scaled by 10,000 crosses a
/// SYN threshold by itself; averaged over the seconds it took to gather the evidence, it does
/// not, and shares are measured on enough packets to mean something.
#[derive(Debug, Clone, Default)]
pub(super) struct Evidence {
    metrics: Metrics,
    seconds: u64,
    /// The class crossings of those seconds, once per counter.
    crossed: Vec<Crossing>,
}

impl Evidence {
    /// Adds the vectors second `m` shows to `into`: at once when it holds enough observed
    /// packets (and nothing is pending), else once the seconds gathered so far do, their
    /// class counters averaged over those seconds against the limits they crossed.
    pub(super) fn vectors(&mut self, m: &Metrics, crossed: &[Crossing], into: &mut BTreeSet<Vector>) {
        if self.seconds == 0 && m.observed >= Confidence::MIN_SAMPLES {
            m.vectors(crossed, into);
            return;
        }
        self.metrics.merge(m);
        self.seconds += 1;
        for &c in crossed {
            if m.class_counter(c.0).is_some() && !self.crossed.iter().any(|k| k.0 == c.0) {
                self.crossed.push(c);
            }
        }
        if self.metrics.observed < Confidence::MIN_SAMPLES {
            return;
        }
        let seconds = self.seconds;
        let sum = &self.metrics;
        let averaged: Vec<Crossing> = self
            .crossed
            .iter()
            .filter(|&&(metric, _, threshold, _)| {
                sum.class_counter(metric).is_some_and(|v| v / seconds > threshold)
            })
            .copied()
            .collect();
        sum.vectors(&averaged, into);
        *self = Evidence::default();
    }
}

/// "Alert at `factor` times normal", never below absolute floors (so a host going from 2 to
/// 10 packets per second is not an attack).
#[derive(Debug, Clone, Copy)]
pub(super) struct BaselineLimit {
    pub(super) factor: f64,
    /// pps, bps, new flows per second.
    pub(super) floors: [u64; 3],
}

impl BaselineLimit {
    /// The pps, bps and new-flows limits for baseline `b`.
    pub(super) fn of(self, b: &Baseline) -> [u64; 3] {
        let limit = |normal: f64, floor: u64| {
            (normal * self.factor).ceil().max(floor as f64).min(u64::MAX as f64) as u64
        };
        [limit(b.pps, self.floors[0]), limit(b.bps, self.floors[1]), limit(b.flows, self.floors[2])]
    }
}
