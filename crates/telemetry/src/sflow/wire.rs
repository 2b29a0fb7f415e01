//! The sFlow v5 wire format: constants, the checked XDR reader, and the fixed structures
//! (datagram and flow-sample headers, sampled IP and raw-header records, generic interface
//! counters). Decoding only; the per-agent state lives in the parent module.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{self, PacketError};
use crate::record::{Exporter, Fragment, LinkType, RecordSource, TrafficRecord, UnixNanos};

use super::{InterfaceCounters, SflowError};

/// The only datagram version this decoder accepts.
const SFLOW_VERSION: u32 = 5;

/// Sample and record formats (`data_format` = enterprise << 12 | format; enterprise 0 only).
pub(super) const SAMPLE_FLOW: u32 = 1;
pub(super) const SAMPLE_COUNTERS: u32 = 2;
pub(super) const SAMPLE_FLOW_EXPANDED: u32 = 3;
pub(super) const SAMPLE_COUNTERS_EXPANDED: u32 = 4;
pub(super) const FLOW_RAW_HEADER: u32 = 1;
pub(super) const FLOW_SAMPLED_IPV4: u32 = 3;
pub(super) const FLOW_SAMPLED_IPV6: u32 = 4;
pub(super) const COUNTERS_GENERIC_INTERFACE: u32 = 1;

/// Raw packet header protocols (`header_protocol`) that map onto a [`LinkType`].
pub(super) const HEADER_ETHERNET: u32 = 1;
pub(super) const HEADER_IPV4: u32 = 11;
pub(super) const HEADER_IPV6: u32 = 12;

/// Fixed sizes of the structures decoded here, in bytes.
const SAMPLED_IPV4_LEN: usize = 32;
const SAMPLED_IPV6_LEN: usize = 56;
pub(super) const GENERIC_INTERFACE_LEN: usize = 88;

/// Compact interface encoding: the top 2 bits are the format, the low 30 bits the value.
const COMPACT_FORMAT_SHIFT: u32 = 30;
const COMPACT_VALUE_MASK: u32 = 0x3FFF_FFFF;
/// The interface value meaning "the device itself" (compact and expanded encodings).
const COMPACT_INTERNAL: u32 = 0x3FFF_FFFF;
const EXPANDED_INTERNAL: u32 = u32::MAX;

/// Big-endian XDR reader over a byte slice; every read is checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_first_chunk::<N>()?;
        self.buf = rest;
        Some(*head)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    pub(super) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(head)
    }

    /// One XDR `data_format` + `opaque<>` element (sample or record): its format and body.
    pub(super) fn framed(&mut self) -> Result<(u32, &'a [u8]), SflowError> {
        let (Some(format), Some(len)) = (self.u32(), self.u32()) else {
            return Err(SflowError::TruncatedFraming);
        };
        if len % 4 != 0 {
            return Err(SflowError::MisalignedLength(len));
        }
        let body = usize::try_from(len).ok().and_then(|len| self.take(len));
        body.map(|body| (format, body)).ok_or(SflowError::LengthOverrun(len))
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DatagramHeader {
    pub(super) agent: IpAddr,
    pub(super) sub_agent_id: u32,
    pub(super) sequence: u32,
    pub(super) uptime_ms: u32,
    pub(super) sample_count: u32,
}

impl DatagramHeader {
    /// The fixed datagram header, and the bytes holding the samples.
    pub(super) fn parse(datagram: &[u8], from: IpAddr) -> Result<(Self, &[u8]), SflowError> {
        let mut r = Reader::new(datagram);
        let version = r.u32().ok_or(SflowError::TruncatedHeader)?;
        if version != SFLOW_VERSION {
            return Err(SflowError::UnsupportedVersion(version));
        }
        let agent = match r.u32().ok_or(SflowError::TruncatedHeader)? {
            0 => from,
            1 => IpAddr::V4(Ipv4Addr::from(r.array::<4>().ok_or(SflowError::TruncatedHeader)?)),
            2 => IpAddr::V6(Ipv6Addr::from(r.array::<16>().ok_or(SflowError::TruncatedHeader)?)),
            other => return Err(SflowError::UnknownAddressType(other)),
        };
        let (Some(sub_agent_id), Some(sequence), Some(uptime_ms), Some(sample_count)) =
            (r.u32(), r.u32(), r.u32(), r.u32())
        else {
            return Err(SflowError::TruncatedHeader);
        };
        Ok((Self { agent, sub_agent_id, sequence, uptime_ms, sample_count }, r.buf))
    }
}

/// Sampler fields shared by compact and expanded flow samples.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlowSampleHeader {
    pub(super) sequence: u32,
    /// Source id type << 32 | source id index.
    pub(super) source: u64,
    pub(super) sampling_rate: u32,
    pub(super) drops: u32,
    pub(super) input_if: Option<u32>,
    pub(super) output_if: Option<u32>,
}

impl FlowSampleHeader {
    pub(super) fn parse(r: &mut Reader<'_>, expanded: bool) -> Option<Self> {
        let sequence = r.u32()?;
        let source = if expanded {
            let (kind, index) = (r.u32()?, r.u32()?);
            u64::from(kind) << 32 | u64::from(index)
        } else {
            let id = r.u32()?;
            u64::from(id >> 24) << 32 | u64::from(id & 0x00FF_FFFF)
        };
        let sampling_rate = r.u32()?;
        let _sample_pool = r.u32()?;
        let drops = r.u32()?;
        let (input_if, output_if) = if expanded {
            let input = interface_expanded(r.u32()?, r.u32()?);
            (input, interface_expanded(r.u32()?, r.u32()?))
        } else {
            let input = interface_compact(r.u32()?);
            (input, interface_compact(r.u32()?))
        };
        Some(Self { sequence, source, sampling_rate, drops, input_if, output_if })
    }
}

/// A single ifIndex from a compact interface field; `None` when unknown (0), the device itself,
/// a discard reason (format 1) or several interfaces (format 2).
pub(super) fn interface_compact(raw: u32) -> Option<u32> {
    let value = raw & COMPACT_VALUE_MASK;
    (raw >> COMPACT_FORMAT_SHIFT == 0 && value != 0 && value != COMPACT_INTERNAL).then_some(value)
}

/// A single ifIndex from an expanded interface field (same rules as the compact one).
pub(super) fn interface_expanded(format: u32, value: u32) -> Option<u32> {
    (format == 0 && value != 0 && value != EXPANDED_INTERNAL).then_some(value)
}

/// A raw packet header record through the shared packet decoder. `Ok(None)`: not an IP packet
/// (ARP, LLDP, ...), a valid sample with nothing to report.
pub(super) fn decode_raw_header(body: &[u8]) -> Result<Option<packet::PacketHeaders>, SflowError> {
    let mut r = Reader::new(body);
    let (Some(protocol), Some(frame_length), Some(stripped), Some(header_length)) =
        (r.u32(), r.u32(), r.u32(), r.u32())
    else {
        return Err(SflowError::TruncatedRecord);
    };
    let link = match protocol {
        HEADER_ETHERNET => LinkType::Ethernet,
        HEADER_IPV4 => LinkType::Ipv4,
        HEADER_IPV6 => LinkType::Ipv6,
        other => return Err(SflowError::UnsupportedHeaderProtocol(other)),
    };
    // The header bytes are XDR-padded to 4; the record length already covers the padding.
    let frame = usize::try_from(header_length)
        .ok()
        .and_then(|len| r.take(len))
        .ok_or(SflowError::HeaderOverrun(header_length))?;
    // frame_length counts the bytes `stripped` off before the header was taken (FCS, outer
    // encapsulations); the header starts after them.
    let wire_len = frame_length.saturating_sub(stripped);
    match packet::decode(link, frame, wire_len) {
        Ok(headers) => Ok(Some(headers)),
        Err(PacketError::NotIp(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Protocols whose sampled IP records carry meaningful ports.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

/// A sampled IPv4 (format 3) or IPv6 (format 4) record: the packet's IP length, protocol,
/// addresses, ports and TCP flags, without a TTL or fragment information.
pub(super) fn decode_sampled_ip(
    format: u32,
    body: &[u8],
    received: UnixNanos,
    exporter: Exporter,
) -> Result<TrafficRecord, SflowError> {
    let ipv6 = format == FLOW_SAMPLED_IPV6;
    let min_len = if ipv6 { SAMPLED_IPV6_LEN } else { SAMPLED_IPV4_LEN };
    if body.len() < min_len {
        return Err(SflowError::TruncatedRecord);
    }
    let mut r = Reader::new(body);
    let truncated = SflowError::TruncatedRecord;
    let length = r.u32().ok_or(truncated)?;
    let protocol_raw = r.u32().ok_or(truncated)?;
    let protocol = u8::try_from(protocol_raw).map_err(|_| SflowError::BadIpProtocol(protocol_raw))?;
    let (src, dst) = if ipv6 {
        let src = Ipv6Addr::from(r.array::<16>().ok_or(truncated)?);
        (IpAddr::V6(src), IpAddr::V6(Ipv6Addr::from(r.array::<16>().ok_or(truncated)?)))
    } else {
        let src = Ipv4Addr::from(r.array::<4>().ok_or(truncated)?);
        (IpAddr::V4(src), IpAddr::V4(Ipv4Addr::from(r.array::<4>().ok_or(truncated)?)))
    };
    let (src_port, dst_port, tcp_flags) = (r.u32().ok_or(truncated)?, r.u32().ok_or(truncated)?, r.u32());
    let port = |value: u32| if has_ports(protocol) { u16::try_from(value).ok() } else { None };
    Ok(TrafficRecord {
        start: received,
        end: received,
        src,
        dst,
        protocol,
        src_port: port(src_port),
        dst_port: port(dst_port),
        tcp_flags: if protocol == 6 { tcp_flags.unwrap_or(0) as u8 } else { 0 },
        icmp: None,
        fragment: Fragment::None,
        packets: 1,
        bytes: u64::from(length),
        sampling_rate: 1,
        ttl: None,
        packet_len: Some(length),
        exporter,
        input_if: None,
        output_if: None,
        source: RecordSource::Sflow,
    })
}

/// A generic interface counters record (format 1, 88 bytes).
pub(super) fn parse_generic_interface(
    body: &[u8],
    sample_sequence: u32,
    agent_uptime_ms: u32,
    received: UnixNanos,
) -> Option<InterfaceCounters> {
    if body.len() < GENERIC_INTERFACE_LEN {
        return None;
    }
    let mut r = Reader::new(body);
    Some(InterfaceCounters {
        if_index: r.u32()?,
        if_type: r.u32()?,
        if_speed: r.u64()?,
        if_direction: r.u32()?,
        if_status: r.u32()?,
        in_octets: r.u64()?,
        in_ucast_pkts: r.u32()?,
        in_multicast_pkts: r.u32()?,
        in_broadcast_pkts: r.u32()?,
        in_discards: r.u32()?,
        in_errors: r.u32()?,
        in_unknown_protos: r.u32()?,
        out_octets: r.u64()?,
        out_ucast_pkts: r.u32()?,
        out_multicast_pkts: r.u32()?,
        out_broadcast_pkts: r.u32()?,
        out_discards: r.u32()?,
        out_errors: r.u32()?,
        promiscuous_mode: r.u32()?,
        sample_sequence,
        agent_uptime_ms,
        received,
    })
}
