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

/// Reflector services by UDP source port. UDP from many sources concentrated on one of these
/// ports is named after the service; on any other port it is [`Vector::UdpReflection`].
pub const AMPLIFICATION_PORTS: [(u16, Vector); 37] = [
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
    (47808, Vector::BacnetAmplification),
    (500, Vector::IkeAmplification),
    (4500, Vector::NatTAmplification),
    (3283, Vector::ArdAmplification),
    (427, Vector::SlpAmplification),
    (37810, Vector::DhdiscoverAmplification),
    (10001, Vector::UbiquitiAmplification),
    (1194, Vector::OpenvpnAmplification),
    (69, Vector::TftpAmplification),
    (5353, Vector::MdnsAmplification),
    (520, Vector::RipAmplification),
    (32414, Vector::PlexAmplification),
    (30718, Vector::LantronixAmplification),
    (33848, Vector::JenkinsAmplification),
    (1434, Vector::MssqlAmplification),
    (17, Vector::QotdAmplification),
    (5060, Vector::SipAmplification),
    (3478, Vector::StunAmplification),
    (3391, Vector::DtlsAmplification),
    (9987, Vector::TeamspeakAmplification),
    (3389, Vector::RdpAmplification),
    (5351, Vector::NatPmpAmplification),
    (27015, Vector::SteamAmplification),
    (623, Vector::IpmiAmplification),
    (177, Vector::XdmcpAmplification),
    (5093, Vector::SentinelAmplification),
];

/// One bit per port of [`AMPLIFICATION_PORTS`]: the per-packet test is one load, not a search.
static REFLECTOR_BITS: [u64; 1024] = {
    let mut bits = [0u64; 1024];
    let mut i = 0;
    while i < AMPLIFICATION_PORTS.len() {
        let port = AMPLIFICATION_PORTS[i].0 as usize;
        bits[port >> 6] |= 1 << (port & 63);
        i += 1;
    }
    bits
};

/// Whether `src_port` is a known reflector service's.
#[inline]
pub fn is_reflector_port(src_port: u16) -> bool {
    let port = usize::from(src_port);
    REFLECTOR_BITS.get(port >> 6).is_some_and(|w| w & (1 << (port & 63)) != 0)
}

/// The amplification vector of a known reflector port.
pub fn reflector_vector(src_port: u16) -> Option<Vector> {
    AMPLIFICATION_PORTS.iter().find(|&&(port, _)| port == src_port).map(|&(_, v)| v)
}

/// Index into [`AMPLIFICATION_PORTS`] of a UDP source port.
pub fn amplification_index(src_port: u16) -> Option<usize> {
    AMPLIFICATION_PORTS.iter().position(|&(port, _)| port == src_port)
}

/// What a packet shows beyond its class, for naming reflection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    /// UDP from a known reflector port.
    pub reflector: bool,
    /// The UDP source port (counted per host-second for concentration).
    pub udp_src_port: Option<u16>,
    /// TCP SYN+ACK (without RST).
    pub syn_ack: bool,
    /// TCP to port 80 with payload (longer than any bare header with options can be).
    pub probe: bool,
}

/// IP header plus the longest TCP header without payload we take as bare: options up to 20
/// bytes (MSS, SACK-permitted, timestamps, window scale) cover handshakes and ACKs.
const BARE_TCP_V4: u32 = 20 + 40;
const BARE_TCP_V6: u32 = 40 + 40;

/// The primary class of `record`, and what it shows for reflection.
#[inline]
pub fn classify(record: &TrafficRecord) -> (Class, Evidence) {
    if record.fragment == Fragment::NonInitial {
        return (Class::Fragment, Evidence::default());
    }
    match record.protocol {
        PROTO_TCP => {
            let flags = record.tcp_flags;
            let class = tcp_class(flags);
            let syn_ack = class == Class::TcpOther && flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK;
            let probe = record.dst_port == Some(80) && {
                // Flows: the mean length.
                let len = record.packet_len.unwrap_or_else(|| {
                    u32::try_from(record.bytes / record.packets.max(1)).unwrap_or(u32::MAX)
                });
                len > if record.src.is_ipv4() { BARE_TCP_V4 } else { BARE_TCP_V6 }
            };
            (class, Evidence { syn_ack, probe, ..Evidence::default() })
        }
        PROTO_UDP => {
            let reflector = record.src_port.is_some_and(is_reflector_port);
            (Class::Udp, Evidence { reflector, udp_src_port: record.src_port, ..Evidence::default() })
        }
        PROTO_ICMP | PROTO_ICMPV6 => (Class::Icmp, Evidence::default()),
        _ => (Class::Other, Evidence::default()),
    }
}

/// The class of a (not non-initial fragment) TCP packet with these flags.
pub fn tcp_class(flags: u8) -> Class {
    if flags & TCP_RST != 0 {
        Class::TcpRst
    } else if flags & TCP_SYN != 0 {
        if flags & TCP_ACK == 0 { Class::TcpSyn } else { Class::TcpOther }
    } else if flags & TCP_ACK != 0 && flags & TCP_FIN == 0 {
        Class::TcpAck
    } else {
        Class::TcpOther
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
        assert!(classify(&tcp(TCP_SYN | TCP_ACK)).1.syn_ack);
        assert!(!classify(&tcp(TCP_SYN | TCP_ACK | TCP_RST)).1.syn_ack);
        let probe = |len| TrafficRecord { dst_port: Some(80), packet_len: Some(len), ..tcp(TCP_ACK) };
        assert!(classify(&probe(120)).1.probe);
        assert!(!classify(&probe(52)).1.probe);
    }

    #[test]
    fn udp_reflector_ports_and_fragments() {
        let dns = TrafficRecord { protocol: PROTO_UDP, src_port: Some(53), ..TrafficRecord::EMPTY };
        let evidence = Evidence { reflector: true, udp_src_port: Some(53), ..Evidence::default() };
        assert_eq!(classify(&dns), (Class::Udp, evidence));
        let frag = TrafficRecord { fragment: Fragment::NonInitial, ..dns };
        assert_eq!(classify(&frag), (Class::Fragment, Evidence::default()));
        let other = TrafficRecord { src_port: Some(12345), ..dns };
        assert!(!classify(&other).1.reflector);
        let icmp6 = TrafficRecord { protocol: PROTO_ICMPV6, ..TrafficRecord::EMPTY };
        assert_eq!(classify(&icmp6).0, Class::Icmp);
        assert_eq!(classify(&TrafficRecord { protocol: 47, ..TrafficRecord::EMPTY }).0, Class::Other);
        let mut vectors = std::collections::BTreeSet::new();
        for (i, &(port, vector)) in AMPLIFICATION_PORTS.iter().enumerate() {
            assert_eq!(amplification_index(port), Some(i), "{port} listed twice");
            assert!(is_reflector_port(port) && reflector_vector(port) == Some(vector));
            assert!(vector.is_amplification(), "{vector}");
            assert!(vectors.insert(vector), "{vector} listed twice");
        }
        // Every amplification vector of the contract has its port here.
        assert_eq!(vectors.len(), Vector::ALL.iter().filter(|v| v.is_amplification()).count());
        let known = (0..=u16::MAX).filter(|&p| is_reflector_port(p)).count();
        assert_eq!(known, AMPLIFICATION_PORTS.len());
    }
}
