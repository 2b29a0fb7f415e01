//! The one normalized record every telemetry source produces.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

/// Nanoseconds since the Unix epoch, in the event time of the source (capture timestamp,
/// flow start/end, sFlow collector arrival). Never read from a clock inside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct UnixNanos(pub u64);

impl UnixNanos {
    pub const NANOS_PER_SEC: u64 = 1_000_000_000;

    pub fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(Self::NANOS_PER_SEC))
    }

    pub fn from_micros(micros: u64) -> Self {
        Self(micros.saturating_mul(1_000))
    }

    pub fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// Whole seconds since the epoch (the detection engine's bucket index).
    pub fn secs(self) -> u64 {
        self.0 / Self::NANOS_PER_SEC
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::NANOS_PER_SEC as f64
    }
}

impl fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / Self::NANOS_PER_SEC, self.0 % Self::NANOS_PER_SEC)
    }
}

/// Where a packet sits in a fragmented IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fragment {
    /// Not a fragment (or the source does not say).
    #[default]
    None,
    /// First fragment (offset 0, more-fragments set): carries the transport header.
    Initial,
    /// Later fragment (offset > 0): carries no transport header, hence no ports.
    NonInitial,
}

/// Which decoder produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    Pcap,
    Sflow,
    NetflowV5,
    NetflowV9,
    Ipfix,
}

/// The device that reported a record: its address (sFlow agent or the UDP source of a flow
/// export; `None` for captures) and the sub-identity within it (sFlow sub-agent id, NetFlow v9
/// source id, IPFIX observation domain id; for captures, the pcapng interface index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Exporter {
    pub addr: Option<IpAddr>,
    pub sub_id: u32,
}

impl Exporter {
    /// A local capture file or interface.
    pub const CAPTURE: Exporter = Exporter { addr: None, sub_id: 0 };
}

impl fmt::Display for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{addr}/{}", self.sub_id),
            None => write!(f, "capture/{}", self.sub_id),
        }
    }
}

/// ICMP or ICMPv6 type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct IcmpTypeCode {
    pub kind: u8,
    pub code: u8,
}

/// One observation of traffic, normalized across every telemetry source.
///
/// A record is either one packet (pcap, live capture, an sFlow packet sample) or one flow
/// (NetFlow, IPFIX, an sFlow sampled-IP record with a packet count). Counts are as observed:
/// multiply by [`TrafficRecord::sampling_rate`] (or use the `scaled_*` helpers) to estimate
/// real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrafficRecord {
    /// First packet of the record (for a single packet, its timestamp).
    pub start: UnixNanos,
    /// Last packet of the record; equal to `start` for a single packet. Consumers spread a
    /// flow's counts over `start..=end` (see [`crate::spread`]) instead of dumping them at once.
    pub end: UnixNanos,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (IPv6: the upper-layer protocol after extension headers).
    pub protocol: u8,
    /// Transport ports for TCP, UDP, SCTP, DCCP, UDP-Lite; `None` when the source does not
    /// carry them (non-initial fragments, truncated headers, other protocols).
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// TCP flags (the low 8 bits: FIN SYN RST PSH ACK URG ECE CWR); for a flow, the OR of all
    /// packets' flags. 0 when not TCP or unknown.
    pub tcp_flags: u8,
    pub icmp: Option<IcmpTypeCode>,
    pub fragment: Fragment,
    /// Observed packets (before sampling scale).
    pub packets: u64,
    /// Observed IP-layer bytes: the sum of IP total lengths, whatever the source.
    pub bytes: u64,
    /// 1 in N packets was sampled; 1 means every packet was seen.
    pub sampling_rate: u32,
    /// IPv4 TTL or IPv6 hop limit, where the source carries it.
    pub ttl: Option<u8>,
    /// IP total length of this packet (packet sources only; IPv6: payload length + 40).
    pub packet_len: Option<u32>,
    pub exporter: Exporter,
    pub input_if: Option<u32>,
    pub output_if: Option<u32>,
    pub source: RecordSource,
}

impl TrafficRecord {
    /// A zeroed record, convenient as a base for decoders (`..TrafficRecord::EMPTY`).
    pub const EMPTY: TrafficRecord = TrafficRecord {
        start: UnixNanos(0),
        end: UnixNanos(0),
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        protocol: 0,
        src_port: None,
        dst_port: None,
        tcp_flags: 0,
        icmp: None,
        fragment: Fragment::None,
        packets: 0,
        bytes: 0,
        sampling_rate: 1,
        ttl: None,
        packet_len: None,
        exporter: Exporter::CAPTURE,
        input_if: None,
        output_if: None,
        source: RecordSource::Pcap,
    };

    /// Estimated real packets: observed packets times the sampling rate.
    pub fn scaled_packets(&self) -> u64 {
        self.packets.saturating_mul(u64::from(self.sampling_rate.max(1)))
    }

    /// Estimated real IP bytes: observed bytes times the sampling rate.
    pub fn scaled_bytes(&self) -> u64 {
        self.bytes.saturating_mul(u64::from(self.sampling_rate.max(1)))
    }
}

/// Link-layer framing of a captured frame (pcap LINKTYPE_* values, also used for sFlow raw
/// packet headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte address family in host byte order.
    Null,
    /// LINKTYPE_ETHERNET (1), with any stack of 802.1Q / 802.1ad tags.
    Ethernet,
    /// LINKTYPE_RAW (101, also DLT 12 and 14): a bare IPv4 or IPv6 packet.
    Raw,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// Anything else: frames are counted as undecodable.
    Other(u32),
}

impl LinkType {
    pub fn from_pcap(value: u32) -> Self {
        match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }

    pub fn to_pcap(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Other(other) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_type_round_trips_through_pcap_numbers() {
        for value in [0, 1, 101, 108, 113, 228, 229, 276, 9999] {
            assert_eq!(LinkType::from_pcap(value).to_pcap(), value);
        }
        assert_eq!(LinkType::from_pcap(12), LinkType::Raw);
    }

    #[test]
    fn scaling_multiplies_by_sampling_rate() {
        let record = TrafficRecord { packets: 3, bytes: 300, sampling_rate: 100, ..TrafficRecord::EMPTY };
        assert_eq!(record.scaled_packets(), 300);
        assert_eq!(record.scaled_bytes(), 30_000);
    }
}
