//! Traffic classes of a record, and the reflector ports that name amplification vectors.

pub use rampart_contract::Vector;
use rampart_telemetry::{Fragment, TrafficRecord};
use serde::Serialize;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Exclusive primary class of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// TCP SYN without ACK.
    TcpSyn,
    /// TCP ACK without SYN, RST or FIN.
    TcpAck,
    /// TCP with RST.
    TcpRst,
    /// Any other TCP (SYN-ACK, FIN, no flags...).
    TcpOther,
    /// UDP (not a non-initial fragment).
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Non-initial IP fragment (no transport header).
    Fragment,
    /// Any other protocol.
    Other,
}

impl Class {
    pub const COUNT: usize = 8;
    pub const ALL: [Class; Class::COUNT] = [
        Class::TcpSyn,
        Class::TcpAck,
        Class::TcpRst,
        Class::TcpOther,
        Class::Udp,
        Class::Icmp,
        Class::Fragment,
        Class::Other,
    ];

    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The flood vector this class is the signature of.
    pub fn vector(self) -> Vector {
        match self {
            Class::TcpSyn => Vector::SynFlood,
            Class::TcpAck => Vector::AckFlood,
            Class::TcpRst => Vector::RstFlood,
            Class::TcpOther => Vector::TcpFlood,
            Class::Udp => Vector::UdpFlood,
            Class::Icmp => Vector::IcmpFlood,
            Class::Fragment => Vector::IpFragmentFlood,
            Class::Other => Vector::Other,
        }
    }
}

/// Reflector services by UDP source port, in table order (the index is the amplification id).
pub const AMPLIFICATION_PORTS: [(u16, Vector); 11] = [
    (53, Vector::DnsAmplification),
    (123, Vector::NtpAmplification),
    (1900, Vector::SsdpAmplification),
    (11211, Vector::MemcachedAmplification),
    (389, Vector::CldapAmplification),
    (19, Vector::ChargenAmplification),
    (161, Vector::SnmpAmplification),
    (137, Vector::NetbiosAmplification),
    (111, Vector::PortmapAmplification),
    (3702, Vector::WsDiscoveryAmplification),
    (5683, Vector::CoapAmplification),
];

/// Index into [`AMPLIFICATION_PORTS`] of a UDP source port.
#[inline]
pub fn amplification_index(src_port: u16) -> Option<usize> {
    AMPLIFICATION_PORTS.iter().position(|&(port, _)| port == src_port)
}

/// The primary class of `record`, and its amplification index when it is UDP from a reflector
/// port.
#[inline]
pub fn classify(record: &TrafficRecord) -> (Class, Option<usize>) {
    if record.fragment == Fragment::NonInitial {
        return (Class::Fragment, None);
    }
    match record.protocol {
        PROTO_TCP => {
            let flags = record.tcp_flags;
            let class = if flags & TCP_RST != 0 {
                Class::TcpRst
            } else if flags & TCP_SYN != 0 {
                if flags & TCP_ACK == 0 { Class::TcpSyn } else { Class::TcpOther }
            } else if flags & TCP_ACK != 0 && flags & TCP_FIN == 0 {
                Class::TcpAck
            } else {
                Class::TcpOther
            };
            (class, None)
        }
        PROTO_UDP => (Class::Udp, record.src_port.and_then(amplification_index)),
        PROTO_ICMP | PROTO_ICMPV6 => (Class::Icmp, None),
        _ => (Class::Other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: u8) -> TrafficRecord {
        TrafficRecord { protocol: PROTO_TCP, tcp_flags: flags, ..TrafficRecord::EMPTY }
    }

    #[test]
    fn tcp_flags_classify() {
        assert_eq!(classify(&tcp(TCP_SYN)).0, Class::TcpSyn);
        assert_eq!(classify(&tcp(TCP_SYN | TCP_ACK)).0, Class::TcpOther);
        assert_eq!(classify(&tcp(TCP_ACK)).0, Class::TcpAck);
        assert_eq!(classify(&tcp(TCP_ACK | 0x08)).0, Class::TcpAck);
        assert_eq!(classify(&tcp(TCP_ACK | TCP_FIN)).0, Class::TcpOther);
        assert_eq!(classify(&tcp(TCP_RST | TCP_ACK)).0, Class::TcpRst);
        assert_eq!(classify(&tcp(0)).0, Class::TcpOther);
    }

    #[test]
    fn udp_reflector_ports_and_fragments() {
        let dns = TrafficRecord { protocol: PROTO_UDP, src_port: Some(53), ..TrafficRecord::EMPTY };
        assert_eq!(classify(&dns), (Class::Udp, Some(0)));
        let frag = TrafficRecord { fragment: Fragment::NonInitial, ..dns };
        assert_eq!(classify(&frag), (Class::Fragment, None));
        let icmp6 = TrafficRecord { protocol: PROTO_ICMPV6, ..TrafficRecord::EMPTY };
        assert_eq!(classify(&icmp6).0, Class::Icmp);
        assert_eq!(classify(&TrafficRecord { protocol: 47, ..TrafficRecord::EMPTY }).0, Class::Other);
        for (i, (port, vector)) in AMPLIFICATION_PORTS.iter().enumerate() {
            assert_eq!(amplification_index(*port), Some(i));
            assert!(vector.name().ends_with("_amplification"));
        }
    }
}
