//! Frame construction: Ethernet II + IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6 with correct checksums.
//!
//! Every builder writes into a caller-owned fixed buffer; nothing here allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest frame we build: 14-byte Ethernet header + 1500-byte IP packet.
pub(crate) const BUF_LEN: usize = 1536;
pub(crate) type FrameBuf = [u8; BUF_LEN];
/// IP MTU of the simulated links.
pub(crate) const MTU: usize = 1500;
pub(crate) const ETH_HDR: usize = 14;
/// Minimum Ethernet frame without FCS; shorter frames are zero-padded as on the wire.
pub(crate) const MIN_FRAME: usize = 60;
pub(crate) const V4_HDR: usize = 20;
pub(crate) const V6_HDR: usize = 40;
pub(crate) const UDP_HDR: usize = 8;
/// Largest IPv4 fragment payload that fits the MTU (a multiple of 8).
pub(crate) const V4_FRAG_DATA: usize = MTU - V4_HDR;

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_RST: u8 = 0x04;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const TCP_ACK: u8 = 0x10;

/// MAC of the upstream (internet-side) router.
pub(crate) const MAC_UPSTREAM: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// MAC of the protected network's edge router.
pub(crate) const MAC_EDGE: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x02];

/// 198.51.100.0/24, the protected IPv4 network.
pub(crate) const PROTECTED_V4: u32 = 0xc633_6400;
/// 2001:db8:100::/48, the protected IPv6 network.
pub(crate) const PROTECTED_V6: u128 = 0x2001_0db8_0100_0000_0000_0000_0000_0000;

/// Source and destination of one packet; the two always share a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addrs {
    V4 { src: u32, dst: u32 },
    V6 { src: u128, dst: u128 },
}

impl Addrs {
    pub(crate) fn is_v6(self) -> bool {
        matches!(self, Addrs::V6 { .. })
    }

    /// Destination as a map key: IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
    pub(crate) fn dst_key(self) -> u128 {
        match self {
            Addrs::V4 { dst, .. } => v4_key(dst),
            Addrs::V6 { dst, .. } => dst,
        }
    }

    pub(crate) fn direction(self) -> Dir {
        let (src_in, dst_in) = match self {
            Addrs::V4 { src, dst } => (is_protected_v4(src), is_protected_v4(dst)),
            Addrs::V6 { src, dst } => (is_protected_v6(src), is_protected_v6(dst)),
        };
        match (src_in, dst_in) {
            (_, true) => Dir::Inbound,
            (true, false) => Dir::Outbound,
            (false, false) => Dir::Other,
        }
    }
}

/// Direction relative to the protected networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Inbound,
    Outbound,
    Other,
}

pub(crate) fn v4_key(addr: u32) -> u128 {
    0xffff_0000_0000 | u128::from(addr)
}

pub(crate) fn key_to_ip(key: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub(crate) fn ip_to_string_v4(addr: u32) -> String {
    Ipv4Addr::from(addr).to_string()
}

pub(crate) fn is_protected_v4(addr: u32) -> bool {
    addr & 0xffff_ff00 == PROTECTED_V4
}

pub(crate) fn is_protected_v6(addr: u128) -> bool {
    addr >> 80 == PROTECTED_V6 >> 80
}

/// IP-layer header fields that vary per packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpHdr {
    pub(crate) addrs: Addrs,
    /// TTL (IPv4) or hop limit (IPv6).
    pub(crate) ttl: u8,
    /// IPv4 identification; low 16 bits of the flow label for IPv6.
    pub(crate) ident: u16,
    /// IPv4 Don't Fragment bit (ignored for IPv6).
    pub(crate) dont_fragment: bool,
}

/// What the accounting needs to know about a built frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) dst_key: u128,
    /// IPv4 total length, or 40 + payload length for IPv6.
    pub(crate) ip_len: u16,
    /// IPv4 protocol / IPv6 next header.
    pub(crate) proto: u8,
    pub(crate) dir: Dir,
}

/// Offset of the layer-4 header inside the frame.
pub(crate) const fn l4_offset(v6: bool) -> usize {
    if v6 { ETH_HDR + V6_HDR } else { ETH_HDR + V4_HDR }
}

/// Largest layer-4 length (header + payload) that fits the MTU.
pub(crate) const fn l4_max(v6: bool) -> usize {
    if v6 { MTU - V6_HDR } else { MTU - V4_HDR }
}

/// Sum of the big-endian 16-bit words of `data` (odd tail padded with zero), unfolded.
///
/// Accumulating 32-bit words is equivalent modulo 0xffff and lets the compiler vectorise.
#[inline]
pub(crate) fn sum_words(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    match *chunks.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// Folds a word sum into 16 bits (one's complement addition).
#[inline]
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Internet checksum of `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data))
}

/// Pseudo-header sum for TCP/UDP/ICMPv6 checksums.
#[inline]
fn pseudo_sum(addrs: Addrs, proto: u8, l4_len: usize) -> u64 {
    match addrs {
        Addrs::V4 { src, dst } => {
            u64::from(src >> 16)
                + u64::from(src & 0xffff)
                + u64::from(dst >> 16)
                + u64::from(dst & 0xffff)
                + u64::from(proto)
                + l4_len as u64
        }
        Addrs::V6 { src, dst } => {
            sum_words(&src.to_be_bytes()) + sum_words(&dst.to_be_bytes()) + u64::from(proto) + l4_len as u64
        }
    }
}

/// Checksum of a whole UDP datagram (`udp` = header with zero checksum field + payload).
pub(crate) fn udp_checksum(addrs: Addrs, udp: &[u8]) -> u16 {
    let c = !fold(pseudo_sum(addrs, PROTO_UDP, udp.len()) + sum_words(udp));
    if c == 0 { 0xffff } else { c }
}

/// Offset of the checksum field inside the layer-4 header, and whether a pseudo header is summed.
fn l4_checksum_field(proto: u8) -> Option<(usize, bool)> {
    match proto {
        PROTO_TCP => Some((16, true)),
        PROTO_UDP => Some((6, true)),
        PROTO_ICMP => Some((2, false)),
        PROTO_ICMPV6 => Some((2, true)),
        _ => None,
    }
}

fn write_eth(buf: &mut FrameBuf, dir: Dir, v6: bool) {
    let (dst_mac, src_mac) = match dir {
        Dir::Inbound | Dir::Other => (MAC_EDGE, MAC_UPSTREAM),
        Dir::Outbound => (MAC_UPSTREAM, MAC_EDGE),
    };
    buf[0..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes the IP header for a packet whose layer-4 bytes (`l4_len` of them) are already in place.
/// `frag` is the IPv4 flags/fragment-offset field without DF.
fn write_ip(buf: &mut FrameBuf, h: &IpHdr, proto: u8, l4_len: usize, frag: u16) -> u16 {
    match h.addrs {
        Addrs::V4 { src, dst } => {
            let total = (V4_HDR + l4_len) as u16;
            let ip = &mut buf[ETH_HDR..ETH_HDR + V4_HDR];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[4..6].copy_from_slice(&h.ident.to_be_bytes());
            let flags = frag | if h.dont_fragment { 0x4000 } else { 0 };
            ip[6..8].copy_from_slice(&flags.to_be_bytes());
            ip[8] = h.ttl;
            ip[9] = proto;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&src.to_be_bytes());
            ip[16..20].copy_from_slice(&dst.to_be_bytes());
            let c = checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            total
        }
        Addrs::V6 { src, dst } => {
            let ip = &mut buf[ETH_HDR..ETH_HDR + V6_HDR];
            let flow = 0x6000_0000u32 | u32::from(h.ident);
            ip[0..4].copy_from_slice(&flow.to_be_bytes());
            ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = h.ttl;
            ip[8..24].copy_from_slice(&src.to_be_bytes());
            ip[24..40].copy_from_slice(&dst.to_be_bytes());
            (V6_HDR + l4_len) as u16
        }
    }
}

/// Pads short frames to the Ethernet minimum with zeros and returns the frame length.
fn pad(buf: &mut FrameBuf, ip_len: usize) -> usize {
    let len = ETH_HDR + ip_len;
    if len < MIN_FRAME {
        buf[len..MIN_FRAME].fill(0);
        MIN_FRAME
    } else {
        len
    }
}

/// A finished frame: `buf[..len]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Built {
    pub(crate) len: usize,
    pub(crate) meta: Meta,
}

/// Completes a packet whose layer-4 header and payload (`l4_len` bytes, checksum field
/// ignored) are at [`l4_offset`]: computes the layer-4 checksum, writes IP and Ethernet headers.
pub(crate) fn finish(buf: &mut FrameBuf, h: &IpHdr, proto: u8, l4_len: usize) -> Built {
    let v6 = h.addrs.is_v6();
    let l4_len = l4_len.min(l4_max(v6));
    let off = l4_offset(v6);
    if let Some((field, pseudo)) = l4_checksum_field(proto) {
        buf[off + field] = 0;
        buf[off + field + 1] = 0;
        let mut acc = sum_words(&buf[off..off + l4_len]);
        if pseudo {
            acc += pseudo_sum(h.addrs, proto, l4_len);
        }
        let mut c = !fold(acc);
        if c == 0 && proto == PROTO_UDP {
            c = 0xffff;
        }
        buf[off + field..off + field + 2].copy_from_slice(&c.to_be_bytes());
    }
    let ip_len = write_ip(buf, h, proto, l4_len, 0);
    let dir = h.addrs.direction();
    write_eth(buf, dir, v6);
    let len = pad(buf, usize::from(ip_len));
    Built { len, meta: Meta { dst_key: h.addrs.dst_key(), ip_len, proto, dir } }
}

/// Completes an IPv4 fragment whose `data_len` bytes are already at [`l4_offset`]; no layer-4
/// checksum is touched. `offset_units` is in 8-byte units.
pub(crate) fn finish_v4_fragment(
    buf: &mut FrameBuf,
    h: &IpHdr,
    proto: u8,
    data_len: usize,
    offset_units: u16,
    more_fragments: bool,
) -> Built {
    let data_len = data_len.min(l4_max(false));
    let frag = (offset_units & 0x1fff) | if more_fragments { 0x2000 } else { 0 };
    let ip_len = write_ip(buf, h, proto, data_len, frag);
    let dir = h.addrs.direction();
    write_eth(buf, dir, false);
    let len = pad(buf, usize::from(ip_len));
    Built { len, meta: Meta { dst_key: h.addrs.dst_key(), ip_len, proto, dir } }
}

/// Fields of a TCP header (the checksum is filled by [`finish`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tcp {
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
}

/// Writes a TCP header with `options` (length a multiple of 4, at most 40) at `off`; returns the
/// header length.
pub(crate) fn write_tcp(buf: &mut FrameBuf, off: usize, t: &Tcp, options: &[u8]) -> usize {
    let opt_len = options.len().min(40) & !3;
    let hlen = 20 + opt_len;
    let h = &mut buf[off..off + hlen];
    h[0..2].copy_from_slice(&t.sport.to_be_bytes());
    h[2..4].copy_from_slice(&t.dport.to_be_bytes());
    h[4..8].copy_from_slice(&t.seq.to_be_bytes());
    h[8..12].copy_from_slice(&t.ack.to_be_bytes());
    h[12] = ((hlen / 4) as u8) << 4;
    h[13] = t.flags;
    h[14..16].copy_from_slice(&t.window.to_be_bytes());
    h[16..20].fill(0);
    h[20..hlen].copy_from_slice(&options[..opt_len]);
    hlen
}

/// Writes a UDP header at `off` for `payload_len` bytes of payload (checksum left zero).
pub(crate) fn write_udp(buf: &mut [u8], off: usize, sport: u16, dport: u16, payload_len: usize) {
    let len = (UDP_HDR + payload_len) as u16;
    let h = &mut buf[off..off + UDP_HDR];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&len.to_be_bytes());
    h[6..8].fill(0);
}

/// Writes an ICMP/ICMPv6 echo header (checksum left zero).
pub(crate) fn write_echo(buf: &mut FrameBuf, off: usize, icmp_type: u8, id: u16, seq: u16) {
    let h = &mut buf[off..off + 8];
    h[0] = icmp_type;
    h[1] = 0;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&seq.to_be_bytes());
}

/// Copies `len` bytes of `src` starting at `src_off` into `dst` at `dst_off`, truncated to what
/// both slices hold (the callers size everything, this only keeps a slip from panicking).
#[inline]
pub(crate) fn copy_payload(dst: &mut [u8], dst_off: usize, src: &[u8], src_off: usize, len: usize) -> usize {
    let len = len.min(dst.len().saturating_sub(dst_off)).min(src.len().saturating_sub(src_off));
    if len > 0 {
        dst[dst_off..dst_off + len].copy_from_slice(&src[src_off..src_off + len]);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd lengths pad the tail byte as the high half of a word.
        assert_eq!(fold(sum_words(&[0x12])), 0x1200);
        assert_eq!(fold(sum_words(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // Classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01,
            0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
    }

    fn verify_l4(frame: &[u8], v6: bool) -> bool {
        let off = l4_offset(v6);
        if v6 {
            let plen = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
            let nh = frame[20];
            let mut acc = sum_words(&frame[22..54]) + u64::from(nh) + plen as u64;
            acc += sum_words(&frame[off..off + plen]);
            fold(acc) == 0xffff
        } else {
            let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            let proto = frame[23];
            let l4 = &frame[off..ETH_HDR + total];
            let mut acc = sum_words(l4);
            if proto != PROTO_ICMP {
                acc += sum_words(&frame[26..34]) + u64::from(proto) + l4.len() as u64;
            }
            fold(acc) == 0xffff
        }
    }

    #[test]
    fn tcp_syn_v4_is_valid_and_padded() {
        let mut buf = [0xeeu8; BUF_LEN];
        let h = IpHdr {
            addrs: Addrs::V4 { src: 0x0a00_0001, dst: PROTECTED_V4 | 10 },
            ttl: 64,
            ident: 0x1234,
            dont_fragment: true,
        };
        let t = Tcp { sport: 40000, dport: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1024 };
        let hl = write_tcp(&mut buf, l4_offset(false), &t, &[]);
        let b = finish(&mut buf, &h, PROTO_TCP, hl);
        assert_eq!(b.len, 60);
        assert_eq!(b.meta.ip_len, 40);
        assert_eq!(b.meta.dir, Dir::Inbound);
        assert_eq!(&buf[54..60], &[0; 6]);
        assert_eq!(checksum(&buf[14..34]), 0);
        assert_eq!(buf[14], 0x45);
        assert_eq!(buf[20] & 0x40, 0x40, "DF set");
        assert!(verify_l4(&buf[..b.len], false));
    }

    #[test]
    fn udp_and_icmpv6_checksums_verify() {
        let mut buf = [0u8; BUF_LEN];
        let h = IpHdr {
            addrs: Addrs::V6 { src: 0x2001_0db8_ffff << 80 | 5, dst: PROTECTED_V6 | 0x10 },
            ttl: 55,
            ident: 7,
            dont_fragment: false,
        };
        let off = l4_offset(true);
        write_echo(&mut buf, off, 128, 1, 2);
        buf[off + 8..off + 8 + 13].copy_from_slice(b"hello, world!");
        let b = finish(&mut buf, &h, PROTO_ICMPV6, 8 + 13);
        assert_eq!(b.meta.ip_len, 40 + 21);
        assert!(verify_l4(&buf[..b.len], true));

        let h4 = IpHdr {
            addrs: Addrs::V4 { src: 0x0102_0304, dst: PROTECTED_V4 | 1 },
            ttl: 9,
            ident: 1,
            dont_fragment: false,
        };
        let off = l4_offset(false);
        write_udp(&mut buf, off, 53, 999, 3);
        buf[off + 8..off + 11].copy_from_slice(&[1, 2, 3]);
        let b = finish(&mut buf, &h4, PROTO_UDP, 11);
        assert!(verify_l4(&buf[..b.len], false));
        // Same datagram through the standalone helper.
        let mut dgram = buf[off..off + 11].to_vec();
        dgram[6..8].fill(0);
        let c = udp_checksum(h4.addrs, &dgram);
        assert_eq!(c.to_be_bytes(), [buf[off + 6], buf[off + 7]]);
    }

    #[test]
    fn fragment_fields() {
        let mut buf = [0u8; BUF_LEN];
        let h = IpHdr {
            addrs: Addrs::V4 { src: 0x0102_0304, dst: PROTECTED_V4 | 1 },
            ttl: 9,
            ident: 77,
            dont_fragment: false,
        };
        let b = finish_v4_fragment(&mut buf, &h, PROTO_UDP, 1480, 185, true);
        assert_eq!(b.len, 14 + 1500);
        assert_eq!(u16::from_be_bytes([buf[20], buf[21]]), 0x2000 | 185);
        assert_eq!(checksum(&buf[14..34]), 0);
    }

    #[test]
    fn direction_and_keys() {
        assert_eq!(Addrs::V4 { src: PROTECTED_V4 | 3, dst: 1 }.direction(), Dir::Outbound);
        assert_eq!(Addrs::V4 { src: 1, dst: 2 }.direction(), Dir::Other);
        assert_eq!(key_to_ip(v4_key(PROTECTED_V4 | 10)).to_string(), "198.51.100.10");
        assert_eq!(key_to_ip(PROTECTED_V6 | 0x10).to_string(), "2001:db8:100::10");
        assert!(is_protected_v6(PROTECTED_V6 | (1 << 79)));
        assert!(!is_protected_v6(PROTECTED_V6 | (1 << 80)));
    }
}
