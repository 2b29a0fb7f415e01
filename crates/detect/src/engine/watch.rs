//! When a host or a first-level prefix turns "hot" within an open second: from then on its
//! packets are profiled provisionally, in case the second closes over a limit, so the onset
//! event already carries a signature.
//!
//! Each watch level is half the lowest limit the counter could be held to (the configured
//! thresholds of every group scaled by the strongest threat level; a host's learned baseline,
//! looked up once per host and second), so a profile misses at most the first half of a
//! crossing second. Each counter is compared with
//! the limits that apply to it (a host's UDP count with the UDP and amplification limits, a
//! prefix's total with the aggregate limits): comparing everything with the lowest limit of
//! any kind would profile ordinary busy hosts and prefixes every second.

use crate::class::Class;
use crate::config::{DetectConfig, Thresholds};
use crate::threat::ThreatLevel;

/// Watch levels of one host direction.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostWatch {
    /// Packets of each class, by `Class::index`.
    pub(super) class_packets: [u64; Class::COUNT],
    /// All packets, checked only once the packet's own class holds an eighth of the level
    /// (the heaviest class of a mixed flood gets there first).
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) flows: u64,
}

/// Watch levels of a first-level prefix (aggregates use `pps`, `bps` and `new_flows` only).
#[derive(Debug, Clone, Copy)]
pub(super) struct PrefixWatch {
    pub(super) packets: u64,
    pub(super) bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    /// Inbound, outbound.
    pub(super) host: [HostWatch; 2],
    pub(super) prefix: PrefixWatch,
}

/// The per-class limit a class's count is held to: its own limit, its protocol's, the total.
fn class_limits(t: &Thresholds) -> [u64; Class::COUNT] {
    let mut limits = [t.pps; Class::COUNT];
    for class in Class::ALL {
        let own = match class {
            Class::TcpSyn => t.tcp_syn_pps.min(t.tcp_pps),
            Class::TcpAck => t.tcp_ack_pps.min(t.tcp_pps),
            Class::TcpRst => t.tcp_rst_pps.min(t.tcp_pps),
            Class::TcpOther => t.tcp_pps,
            Class::Udp => t.udp_pps.min(t.amplification_pps),
            Class::Icmp => t.icmp_pps,
            Class::Fragment => t.fragment_pps,
            Class::Other => t.pps,
        };
        if let Some(limit) = limits.get_mut(class.index()) {
            *limit = own.min(t.pps);
        }
    }
    limits
}

impl Watch {
    pub(super) fn of(config: &DetectConfig) -> Watch {
        let threat = &config.threat;
        let percent =
            u128::from(threat.percent(ThreatLevel::Elevated).min(threat.percent(ThreatLevel::High)).min(100));
        let half = |v: u64| ((u128::from(v) * percent / 200) as u64).max(1);
        let inbound: Vec<Thresholds> =
            std::iter::once(config.thresholds).chain(config.groups.iter().map(|g| g.thresholds)).collect();
        let outbound: Vec<Thresholds> =
            std::iter::once(config.outbound).chain(config.groups.iter().map(|g| g.outbound)).collect();
        let host_watch = |all: &[Thresholds]| {
            let mut class_packets = [u64::MAX; Class::COUNT];
            let mut packets = u64::MAX;
            let mut bps = u64::MAX;
            let mut flows = u64::MAX;
            for t in all {
                for (min, limit) in class_packets.iter_mut().zip(class_limits(t)) {
                    *min = (*min).min(limit);
                }
                packets = packets.min(t.pps);
                bps = bps.min(t.bps);
                flows = flows.min(t.new_flows);
            }
            let packets = half(packets);
            HostWatch {
                class_packets: class_packets.map(half),
                packets,
                bytes: half(bps / 8),
                flows: half(flows),
            }
        };
        // A group's hosts feed its aggregate, profiled through their prefixes.
        let mut aggregates = vec![config.aggregation.thresholds];
        aggregates.extend(config.groups.iter().filter_map(|g| g.aggregate));
        let prefix = PrefixWatch {
            packets: half(aggregates.iter().map(|t| t.pps.min(t.new_flows)).min().unwrap_or(u64::MAX)),
            bytes: half(aggregates.iter().map(|t| t.bps).min().unwrap_or(u64::MAX) / 8),
        };
        Watch { host: [host_watch(&inbound), host_watch(&outbound)], prefix }
    }
}

impl HostWatch {
    /// Whether a host direction's counters so far this second make it hot; `class_count` is the
    /// count of the class of the packet just added, `learned` the host's own level from its
    /// baseline, `total` the direction's total (computed only when needed).
    #[inline]
    pub(super) fn is_hot(
        &self,
        class: Class,
        class_count: u64,
        bytes: u64,
        flows: u64,
        learned: u32,
        total: impl Fn() -> u64,
    ) -> bool {
        let packets = self.packets.min(u64::from(learned));
        class_count >= self.class_packets.get(class.index()).copied().unwrap_or(u64::MAX)
            || bytes >= self.bytes
            || flows >= self.flows.min(u64::from(learned))
            || (class_count >= (packets / Class::COUNT as u64).max(1) && total() >= packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_watched_against_its_own_limits() {
        let config = DetectConfig::from_toml_str("protected = [\"198.51.100.0/24\"]", "t").unwrap();
        let watch = Watch::of(&config);
        let t = Thresholds::HOST_DEFAULT;
        let elevated = u64::from(
            config.threat.percent(ThreatLevel::Elevated).min(config.threat.percent(ThreatLevel::High)),
        );
        let half = |v: u64| v * elevated / 200;
        let inbound = watch.host[0];
        assert_eq!(inbound.class_packets[Class::Udp.index()], half(t.udp_pps.min(t.amplification_pps)));
        assert_eq!(inbound.class_packets[Class::TcpAck.index()], half(t.tcp_ack_pps));
        assert_eq!(inbound.class_packets[Class::Icmp.index()], half(t.icmp_pps));
        // A busy web server's ACKs below the ACK limit's watch level are not hot, whatever the
        // lower ICMP limit is.
        let acks = half(t.tcp_ack_pps) - 1;
        assert!(acks > half(t.icmp_pps));
        assert!(!inbound.is_hot(Class::TcpAck, acks, 0, 0, u32::MAX, || acks));
        assert!(inbound.is_hot(Class::TcpAck, acks + 1, 0, 0, u32::MAX, || acks + 1));
        // A mixed flood is hot from its total.
        let total = half(t.pps);
        assert!(inbound.is_hot(Class::Udp, total / 8, 0, 0, u32::MAX, || total));
        assert!(!inbound.is_hot(Class::Udp, total / 8, 0, 0, u32::MAX, || total - 1));
        // A host's learned baseline lowers its level.
        assert!(inbound.is_hot(Class::Udp, 100, 0, 0, 400, || 400));
        assert!(!inbound.is_hot(Class::Udp, 100, 0, 0, 400, || 399));
        // Prefixes: the aggregate limits only.
        let agg = config.aggregation.thresholds;
        assert_eq!(watch.prefix.packets, half(agg.pps.min(agg.new_flows)));
    }
}
