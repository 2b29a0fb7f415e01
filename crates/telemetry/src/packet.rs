//! Packet decoder: a captured frame (any supported link type) to the header fields of a
//! [`TrafficRecord`]. Shared by pcap/pcapng, live capture and sFlow raw packet headers.

use std::net::IpAddr;

use crate::record::{Exporter, Fragment, IcmpTypeCode, LinkType, RecordSource, TrafficRecord, UnixNanos};

/// Header fields decoded from one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeaders {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub tcp_flags: u8,
    pub icmp: Option<IcmpTypeCode>,
    pub fragment: Fragment,
    pub ttl: u8,
    /// True IP length (IPv4 total length, IPv6 payload length + 40), even when the frame was
    /// cut short by the capture's snaplen.
    pub ip_len: u32,
}

/// Why a frame produced no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The frame ends before the link or IP header does.
    #[error("frame truncated before the IP header ends")]
    Truncated,
    /// The frame carries something other than IPv4/IPv6 (ARP, LLDP, ...): not an error in the
    /// capture, but nothing to count.
    #[error("not an IP packet (ethertype/family {0:#06x})")]
    NotIp(u32),
    /// The IP header is malformed (bad version or header length).
    #[error("malformed IP header")]
    BadIpHeader,
    /// The capture's link type is not supported.
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
}

impl PacketHeaders {
    /// A one-packet record at `time`.
    pub fn into_record(self, time: UnixNanos, exporter: Exporter, source: RecordSource) -> TrafficRecord {
        TrafficRecord {
            start: time,
            end: time,
            src: self.src,
            dst: self.dst,
            protocol: self.protocol,
            src_port: self.src_port,
            dst_port: self.dst_port,
            tcp_flags: self.tcp_flags,
            icmp: self.icmp,
            fragment: self.fragment,
            packets: 1,
            bytes: u64::from(self.ip_len),
            sampling_rate: 1,
            ttl: Some(self.ttl),
            packet_len: Some(self.ip_len),
            exporter,
            input_if: None,
            output_if: None,
            source,
        }
    }
}

/// Decodes one frame. `wire_len` is the frame's original length on the wire (pcap `orig_len`,
/// sFlow `frame_length`), used only when the IP header itself was cut off.
pub fn decode(link: LinkType, frame: &[u8], wire_len: u32) -> Result<PacketHeaders, PacketError> {
    let _ = (link, frame, wire_len);
    Err(PacketError::UnsupportedLink(u32::MAX))
}
