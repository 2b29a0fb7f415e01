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
/// sFlow `frame_length`), used only when the IP header does not give the length (IPv4 total
/// length 0 as written by segmentation offload, IPv6 jumbograms).
pub fn decode(link: LinkType, frame: &[u8], wire_len: u32) -> Result<PacketHeaders, PacketError> {
    let (ethertype, offset) = match link {
        LinkType::Ethernet => ethernet_payload(frame)?,
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => (ETHERTYPE_BY_VERSION, 0),
        LinkType::Null => {
            let family = frame.get(..4).ok_or(PacketError::Truncated)?;
            let family = [family[0], family[1], family[2], family[3]];
            // Host byte order of the capturing machine: accept either.
            let little = u32::from_le_bytes(family);
            let big = u32::from_be_bytes(family);
            (bsd_family_ethertype(if little <= 0xffff { little } else { big })?, 4)
        }
        LinkType::Loop => {
            let family = frame.get(..4).ok_or(PacketError::Truncated)?;
            (bsd_family_ethertype(u32::from_be_bytes([family[0], family[1], family[2], family[3]]))?, 4)
        }
        LinkType::LinuxSll => (be16(frame, 14).ok_or(PacketError::Truncated)?, 16),
        LinkType::LinuxSll2 => (be16(frame, 0).ok_or(PacketError::Truncated)?, 20),
        LinkType::Other(value) => return Err(PacketError::UnsupportedLink(value)),
    };
    let ip = frame.get(offset..).ok_or(PacketError::Truncated)?;
    let ip_wire_len = wire_len.saturating_sub(offset as u32);
    match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4(ip, ip_wire_len),
        ETHERTYPE_IPV6 => decode_ipv6(ip, ip_wire_len),
        ETHERTYPE_BY_VERSION => match ip.first().map(|b| b >> 4) {
            Some(4) => decode_ipv4(ip, ip_wire_len),
            Some(6) => decode_ipv6(ip, ip_wire_len),
            Some(_) => Err(PacketError::BadIpHeader),
            None => Err(PacketError::Truncated),
        },
        other => Err(PacketError::NotIp(u32::from(other))),
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// Internal marker: the payload is IPv4 or IPv6, tell by the version nibble.
const ETHERTYPE_BY_VERSION: u16 = 0xffff;

/// VLAN tags and MPLS labels stacked deeper than this are not real traffic; refusing them bounds
/// the work per frame.
const MAX_ENCAPSULATIONS: usize = 8;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_DCCP: u8 = 33;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;
const PROTO_UDPLITE: u8 = 136;

#[inline]
fn be16(data: &[u8], offset: usize) -> Option<u16> {
    match data.get(offset..offset + 2) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// Skips the Ethernet header and any 802.1Q / 802.1ad tags or MPLS labels; returns the payload's
/// ethertype and offset.
fn ethernet_payload(frame: &[u8]) -> Result<(u16, usize), PacketError> {
    let mut ethertype = be16(frame, 12).ok_or(PacketError::Truncated)?;
    let mut offset = 14;
    for _ in 0..MAX_ENCAPSULATIONS {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                ethertype = be16(frame, offset + 2).ok_or(PacketError::Truncated)?;
                offset += 4;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                let label = frame.get(offset..offset + 4).ok_or(PacketError::Truncated)?;
                offset += 4;
                if label[2] & 0x01 != 0 {
                    // Bottom of stack: MPLS does not name its payload; IP says its version.
                    return Ok((ETHERTYPE_BY_VERSION, offset));
                }
            }
            _ => return Ok((ethertype, offset)),
        }
    }
    Err(PacketError::NotIp(u32::from(ethertype)))
}

fn bsd_family_ethertype(family: u32) -> Result<u16, PacketError> {
    match family {
        2 => Ok(ETHERTYPE_IPV4),
        // AF_INET6 differs per BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
        24 | 28 | 30 => Ok(ETHERTYPE_IPV6),
        other => Err(PacketError::NotIp(other)),
    }
}

fn decode_ipv4(ip: &[u8], wire_len: u32) -> Result<PacketHeaders, PacketError> {
    let header: &[u8; 20] = ip.get(..20).and_then(|h| h.try_into().ok()).ok_or(PacketError::Truncated)?;
    if header[0] >> 4 != 4 {
        return Err(PacketError::BadIpHeader);
    }
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header_len < 20 {
        return Err(PacketError::BadIpHeader);
    }
    let total_len = u16::from_be_bytes([header[2], header[3]]);
    // Segmentation offload writes 0 here on captures taken at the sending host.
    let ip_len = if total_len == 0 { wire_len } else { u32::from(total_len) };
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    let more_fragments = flags_offset & 0x2000 != 0;
    let fragment_offset = flags_offset & 0x1fff;
    let fragment = match (fragment_offset, more_fragments) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::Initial,
        _ => Fragment::NonInitial,
    };
    let protocol = header[9];
    let src = IpAddr::from([header[12], header[13], header[14], header[15]]);
    let dst = IpAddr::from([header[16], header[17], header[18], header[19]]);
    let mut headers = PacketHeaders {
        src,
        dst,
        protocol,
        src_port: None,
        dst_port: None,
        tcp_flags: 0,
        icmp: None,
        fragment,
        ttl: header[8],
        ip_len,
    };
    if fragment != Fragment::NonInitial
        && let Some(transport) = ip.get(header_len..)
    {
        decode_transport(&mut headers, transport, PROTO_ICMP);
    }
    Ok(headers)
}

fn decode_ipv6(ip: &[u8], wire_len: u32) -> Result<PacketHeaders, PacketError> {
    let header: &[u8; 40] = ip.get(..40).and_then(|h| h.try_into().ok()).ok_or(PacketError::Truncated)?;
    if header[0] >> 4 != 6 {
        return Err(PacketError::BadIpHeader);
    }
    let payload_len = u16::from_be_bytes([header[4], header[5]]);
    // Payload length 0 means a jumbogram (or offload): the wire knows better.
    let ip_len = if payload_len == 0 { wire_len } else { u32::from(payload_len) + 40 };
    let src: [u8; 16] = header[8..24].try_into().map_err(|_| PacketError::Truncated)?;
    let dst: [u8; 16] = header[24..40].try_into().map_err(|_| PacketError::Truncated)?;
    let mut headers = PacketHeaders {
        src: IpAddr::from(src),
        dst: IpAddr::from(dst),
        protocol: header[6],
        src_port: None,
        dst_port: None,
        tcp_flags: 0,
        icmp: None,
        fragment: Fragment::None,
        ttl: header[7],
        ip_len,
    };
    // Walk the extension header chain. Each step advances by at least 8 bytes, so the walk ends
    // with the data; the step cap bounds it further against crafted chains.
    let mut next = header[6];
    let mut offset = 40;
    for _ in 0..MAX_IPV6_EXTENSION_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Some(&[following, len]) = ip.get(offset..offset + 2) else {
                    headers.protocol = next;
                    return Ok(headers);
                };
                next = following;
                offset += (usize::from(len) + 1) * 8;
            }
            44 => {
                let Some(&[following, _, off_hi, off_lo]) = ip.get(offset..offset + 4) else {
                    headers.protocol = next;
                    return Ok(headers);
                };
                let fragment_offset = u16::from_be_bytes([off_hi, off_lo]) >> 3;
                let more_fragments = off_lo & 0x01 != 0;
                headers.fragment = match (fragment_offset, more_fragments) {
                    (0, false) => Fragment::None,
                    (0, true) => Fragment::Initial,
                    _ => Fragment::NonInitial,
                };
                next = following;
                offset += 8;
                if headers.fragment == Fragment::NonInitial {
                    headers.protocol = next;
                    return Ok(headers);
                }
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let Some(&[following, len]) = ip.get(offset..offset + 2) else {
                    headers.protocol = next;
                    return Ok(headers);
                };
                next = following;
                offset += (usize::from(len) + 2) * 4;
            }
            _ => break,
        }
    }
    headers.protocol = next;
    if let Some(transport) = ip.get(offset..) {
        decode_transport(&mut headers, transport, PROTO_ICMPV6);
    }
    Ok(headers)
}

const MAX_IPV6_EXTENSION_HEADERS: usize = 16;

/// Fills ports, TCP flags or ICMP type/code from the transport header, as far as it was captured.
#[inline]
fn decode_transport(headers: &mut PacketHeaders, transport: &[u8], icmp_protocol: u8) {
    match headers.protocol {
        PROTO_TCP => {
            if let Some(&[sp0, sp1, dp0, dp1]) = transport.get(..4) {
                headers.src_port = Some(u16::from_be_bytes([sp0, sp1]));
                headers.dst_port = Some(u16::from_be_bytes([dp0, dp1]));
            }
            if let Some(&flags) = transport.get(13) {
                headers.tcp_flags = flags;
            }
        }
        PROTO_UDP | PROTO_SCTP | PROTO_DCCP | PROTO_UDPLITE => {
            if let Some(&[sp0, sp1, dp0, dp1]) = transport.get(..4) {
                headers.src_port = Some(u16::from_be_bytes([sp0, sp1]));
                headers.dst_port = Some(u16::from_be_bytes([dp0, dp1]));
            }
        }
        protocol if protocol == icmp_protocol => {
            if let Some(&[kind, code]) = transport.get(..2) {
                headers.icmp = Some(IcmpTypeCode { kind, code });
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], flags: u8, payload: usize) -> Vec<u8> {
        let total = 20 + 20 + payload;
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, PROTO_TCP, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[
            0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        ip.resize(total, 0xab);
        ip
    }

    fn ethernet(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for &tpid in tags {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&[0x00, 0x64]);
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn ipv6(next: u8, extensions: &[u8], transport: &[u8]) -> Vec<u8> {
        let payload = extensions.len() + transport.len();
        let mut ip = vec![0x60, 0, 0, 0, (payload >> 8) as u8, payload as u8, next, 55];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(extensions);
        ip.extend_from_slice(transport);
        ip
    }

    #[test]
    fn ethernet_ipv4_tcp_syn() {
        let frame = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x02, 0));
        let headers = decode(LinkType::Ethernet, &frame, frame.len() as u32).unwrap();
        assert_eq!(headers.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(headers.dst, "198.51.100.20".parse::<IpAddr>().unwrap());
        assert_eq!((headers.protocol, headers.src_port, headers.dst_port), (6, Some(12345), Some(80)));
        assert_eq!((headers.tcp_flags, headers.ttl, headers.ip_len), (0x02, 64, 40));
        assert_eq!(headers.fragment, Fragment::None);
    }

    #[test]
    fn vlan_stacks_are_skipped() {
        let ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x10, 100);
        for tags in [&[ETHERTYPE_VLAN][..], &[ETHERTYPE_QINQ, ETHERTYPE_VLAN], &[ETHERTYPE_QINQ_OLD; 3]] {
            let frame = ethernet(ETHERTYPE_IPV4, tags, &ip);
            let headers = decode(LinkType::Ethernet, &frame, frame.len() as u32).unwrap();
            assert_eq!((headers.ip_len, headers.dst_port), (140, Some(80)));
        }
        let too_deep = ethernet(ETHERTYPE_IPV4, &[ETHERTYPE_VLAN; 9], &ip);
        assert!(matches!(decode(LinkType::Ethernet, &too_deep, 0), Err(PacketError::NotIp(_))));
    }

    #[test]
    fn mpls_bottom_of_stack_carries_ip() {
        let ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x10, 0);
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&ETHERTYPE_MPLS.to_be_bytes());
        frame.extend_from_slice(&[0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64]);
        frame.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::Ethernet, &frame, 0).unwrap().dst_port, Some(80));
    }

    #[test]
    fn snaplen_truncation_keeps_true_ip_length() {
        let frame = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x18, 1400));
        let cut = &frame[..14 + 20 + 4];
        let headers = decode(LinkType::Ethernet, cut, frame.len() as u32).unwrap();
        assert_eq!((headers.ip_len, headers.dst_port, headers.tcp_flags), (1440, Some(80), 0));
        assert_eq!(decode(LinkType::Ethernet, &frame[..14 + 19], 0), Err(PacketError::Truncated));
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let mut ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x02, 0);
        // Insert 8 bytes of options: IHL 7.
        ip.splice(20..20, [1, 1, 1, 1, 1, 1, 1, 0]);
        ip[0] = 0x47;
        ip[3] = 48;
        let headers = decode(LinkType::Raw, &ip, 0).unwrap();
        assert_eq!((headers.ip_len, headers.dst_port, headers.tcp_flags), (48, Some(80), 0x02));

        ip[6] = 0x20; // more fragments, offset 0
        assert_eq!(decode(LinkType::Raw, &ip, 0).unwrap().fragment, Fragment::Initial);
        ip[6] = 0x00;
        ip[7] = 185; // offset 1480 bytes, last fragment
        let later = decode(LinkType::Raw, &ip, 0).unwrap();
        assert_eq!(
            (later.fragment, later.src_port, later.dst_port, later.tcp_flags),
            (Fragment::NonInitial, None, None, 0)
        );
    }

    #[test]
    fn ipv4_total_length_zero_uses_wire_length() {
        let mut ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x10, 10);
        ip[2] = 0;
        ip[3] = 0;
        let frame = ethernet(ETHERTYPE_IPV4, &[], &ip);
        assert_eq!(decode(LinkType::Ethernet, &frame, 9014).unwrap().ip_len, 9000);
    }

    #[test]
    fn ipv6_udp_through_extension_headers() {
        let udp = [0x00, 53, 0x1f, 0x90, 0, 8, 0, 0];
        let hop_by_hop = [60, 0, 1, 4, 0, 0, 0, 0];
        let dest_opts = [PROTO_UDP, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let ip = ipv6(0, &[&hop_by_hop[..], &dest_opts[..]].concat(), &udp);
        let headers = decode(LinkType::Ipv6, &ip, 0).unwrap();
        assert_eq!((headers.protocol, headers.src_port, headers.dst_port), (17, Some(53), Some(8080)));
        assert_eq!((headers.ip_len, headers.ttl), (40 + 24 + 8, 55));
        assert_eq!(headers.dst, "2001:db8:100::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_fragments() {
        let udp = [0x00, 53, 0x1f, 0x90, 0, 8, 0, 0];
        let first = ipv6(44, &[PROTO_UDP, 0, 0x00, 0x01, 0, 0, 0, 7], &udp);
        let headers = decode(LinkType::Raw, &first, 0).unwrap();
        assert_eq!(
            (headers.fragment, headers.protocol, headers.dst_port),
            (Fragment::Initial, 17, Some(8080))
        );
        let later = ipv6(44, &[PROTO_UDP, 0, 0x05, 0xc8, 0, 0, 0, 7], &udp);
        let headers = decode(LinkType::Raw, &later, 0).unwrap();
        assert_eq!((headers.fragment, headers.protocol, headers.dst_port), (Fragment::NonInitial, 17, None));
    }

    #[test]
    fn icmp_and_icmpv6_type_code() {
        let mut ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0, 0);
        ip[9] = PROTO_ICMP;
        ip[20] = 8;
        ip[21] = 0;
        assert_eq!(decode(LinkType::Ipv4, &ip, 0).unwrap().icmp, Some(IcmpTypeCode { kind: 8, code: 0 }));
        let ip6 = ipv6(PROTO_ICMPV6, &[], &[128, 0, 0, 0, 0, 0, 0, 0]);
        let headers = decode(LinkType::Raw, &ip6, 0).unwrap();
        assert_eq!((headers.protocol, headers.icmp), (58, Some(IcmpTypeCode { kind: 128, code: 0 })));
    }

    #[test]
    fn cooked_and_loopback_link_types() {
        let ip = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x02, 0);
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll, &sll, 0).unwrap().dst_port, Some(80));
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll2, &sll2, 0).unwrap().dst_port, Some(80));
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let null = [&family[..], &ip].concat();
            assert_eq!(decode(LinkType::Null, &null, 0).unwrap().dst_port, Some(80));
        }
        let ip6 = ipv6(PROTO_UDP, &[], &[0, 1, 0, 2, 0, 8, 0, 0]);
        let loop_frame = [&30u32.to_be_bytes()[..], &ip6].concat();
        assert_eq!(decode(LinkType::Loop, &loop_frame, 0).unwrap().dst_port, Some(2));
        assert_eq!(decode(LinkType::Other(147), &ip, 0), Err(PacketError::UnsupportedLink(147)));
    }

    #[test]
    fn non_ip_frames_are_named() {
        let arp = ethernet(0x0806, &[], &[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, &arp, 0), Err(PacketError::NotIp(0x0806)));
        assert_eq!(decode(LinkType::Raw, &[0x50; 40], 0), Err(PacketError::BadIpHeader));
        assert_eq!(decode(LinkType::Raw, &[], 0), Err(PacketError::Truncated));
    }

    fn valid_frames() -> Vec<(LinkType, Vec<u8>)> {
        let tcp = ipv4_tcp([192, 0, 2, 1], [198, 51, 100, 20], 0x12, 30);
        let udp6 = ipv6(44, &[PROTO_UDP, 0, 0, 1, 0, 0, 0, 1], &[0, 53, 0, 80, 0, 8, 0, 0]);
        vec![
            (LinkType::Ethernet, ethernet(ETHERTYPE_IPV4, &[ETHERTYPE_QINQ, ETHERTYPE_VLAN], &tcp)),
            (LinkType::Ethernet, ethernet(ETHERTYPE_IPV6, &[], &udp6)),
            (LinkType::Raw, tcp.clone()),
            (LinkType::Null, [&2u32.to_le_bytes()[..], &udp6].concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_frames_never_panic(link in 0u32..300, frame in proptest::collection::vec(any::<u8>(), 0..200), wire_len: u32) {
            let link = LinkType::from_pcap(link);
            if let Ok(headers) = decode(link, &frame, wire_len) {
                // Ports only where a transport header was actually present.
                prop_assert!(headers.fragment != Fragment::NonInitial || headers.src_port.is_none());
            }
        }

        #[test]
        fn mutated_frames_never_panic(which in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let (link, mut frame) = valid_frames().swap_remove(which);
            for (position, value) in flips {
                let len = frame.len();
                frame[position % len] = value;
            }
            let cut = cut % (frame.len() + 1);
            if let Ok(headers) = decode(link, &frame[..cut], cut as u32) {
                prop_assert!(headers.fragment != Fragment::NonInitial || headers.src_port.is_none());
            }
        }
    }
}
