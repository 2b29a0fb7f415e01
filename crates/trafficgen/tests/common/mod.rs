//! A minimal, independent pcap reader and packet dissector for re-counting generated captures.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rampart_trafficgen::{GenParams, GroundTruth, Totals};

#[derive(Debug, Clone)]
pub struct Record {
    pub ts_ns: u64,
    pub frame: Vec<u8>,
}

/// Parses a classic little-endian pcap; returns (nanosecond, link type, records).
pub fn read_pcap(data: &[u8]) -> (bool, u32, Vec<Record>) {
    assert!(data.len() >= 24, "short file");
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        m => panic!("bad magic {m:x}"),
    };
    assert_eq!(u16::from_le_bytes([data[4], data[5]]), 2);
    assert_eq!(u16::from_le_bytes([data[6], data[7]]), 4);
    let snaplen = u32::from_le_bytes(data[16..20].try_into().unwrap());
    let link = u32::from_le_bytes(data[20..24].try_into().unwrap());
    let mut pos = 24;
    let mut out = Vec::new();
    while pos < data.len() {
        let h = &data[pos..pos + 16];
        let secs = u64::from(u32::from_le_bytes(h[0..4].try_into().unwrap()));
        let frac = u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
        let incl = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
        assert_eq!(incl, orig, "no truncation expected");
        assert!(incl as u32 <= snaplen);
        if nanos {
            assert!(frac < 1_000_000_000);
        } else {
            assert!(frac < 1_000_000);
        }
        let ts_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1_000 };
        pos += 16;
        out.push(Record { ts_ns, frame: data[pos..pos + incl].to_vec() });
        pos += incl;
    }
    assert_eq!(pos, data.len(), "trailing bytes");
    (nanos, link, out)
}

/// Plain 16-bit one's complement sum, written independently of the crate's.
pub fn ones_sum(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        s += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
        i += 2;
    }
    if i < data.len() {
        s += u32::from(data[i]) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

#[derive(Debug, Clone)]
pub struct Pkt {
    pub ts_ns: u64,
    pub frame_len: usize,
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 total length or 40 + IPv6 payload length.
    pub ip_len: usize,
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in bytes.
    pub frag_offset: usize,
    /// Layer-4 bytes (for fragments: the fragment data).
    pub l4: Vec<u8>,
    /// Transport checksum verified (None for non-initial or partial fragments).
    pub l4_checksum_ok: Option<bool>,
}

impl Pkt {
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset > 0
    }
    pub fn ports(&self) -> Option<(u16, u16)> {
        if self.frag_offset > 0 || !(self.proto == 6 || self.proto == 17) || self.l4.len() < 4 {
            return None;
        }
        Some((u16::from_be_bytes([self.l4[0], self.l4[1]]), u16::from_be_bytes([self.l4[2], self.l4[3]])))
    }
    pub fn tcp_flags(&self) -> Option<u8> {
        (self.proto == 6 && self.l4.len() >= 20).then(|| self.l4[13])
    }
}

fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    if src.len() == 4 {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    p
}

/// Verifies an Internet checksum over `pseudo ++ data`.
pub fn verify(pseudo_hdr: &[u8], data: &[u8]) -> bool {
    let mut all = pseudo_hdr.to_vec();
    all.extend_from_slice(data);
    ones_sum(&all) == 0xffff
}

/// Dissects one Ethernet frame, asserting the structural invariants every frame must meet.
pub fn dissect(rec: &Record) -> Pkt {
    let f = &rec.frame;
    assert!(f.len() >= 60, "frame shorter than Ethernet minimum: {}", f.len());
    assert!(f.len() <= 1514, "frame above MTU: {}", f.len());
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    match ethertype {
        0x0800 => {
            let ip = &f[14..];
            assert_eq!(ip[0], 0x45, "version 4, IHL 5");
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(total >= 20 && total <= ip.len(), "total length {total} vs {}", ip.len());
            assert!(f.len() == 14 + total || (f.len() == 60 && total < 46), "padding only up to 60");
            assert_eq!(ones_sum(&ip[..20]), 0xffff, "IPv4 header checksum");
            let flags = u16::from_be_bytes([ip[6], ip[7]]);
            assert_eq!(flags & 0x8000, 0, "reserved bit");
            let frag_offset = usize::from(flags & 0x1fff) * 8;
            let more = flags & 0x2000 != 0;
            let proto = ip[9];
            let l4 = ip[20..total].to_vec();
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            let l4_checksum_ok = if more || frag_offset > 0 {
                None
            } else {
                Some(match proto {
                    1 => ones_sum(&l4) == 0xffff,
                    6 | 17 => verify(&pseudo(&ip[12..16], &ip[16..20], proto, l4.len()), &l4),
                    _ => true,
                })
            };
            if proto == 17 && l4_checksum_ok.is_some() {
                assert_eq!(usize::from(u16::from_be_bytes([l4[4], l4[5]])), l4.len(), "UDP length");
            }
            if proto == 6 && l4_checksum_ok.is_some() {
                let doff = usize::from(l4[12] >> 4) * 4;
                assert!(doff >= 20 && doff <= l4.len(), "TCP data offset");
            }
            Pkt {
                ts_ns: rec.ts_ns,
                frame_len: f.len(),
                v6: false,
                src: src.into(),
                dst: dst.into(),
                ip_len: total,
                proto,
                ttl: ip[8],
                ident: u16::from_be_bytes([ip[4], ip[5]]),
                dont_fragment: flags & 0x4000 != 0,
                more_fragments: more,
                frag_offset,
                l4,
                l4_checksum_ok,
            }
        }
        0x86dd => {
            let ip = &f[14..];
            assert_eq!(ip[0] >> 4, 6);
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            assert_eq!(f.len(), 14 + 40 + plen.max(6), "IPv6 frame length");
            let proto = ip[6];
            let l4 = ip[40..40 + plen].to_vec();
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
            let ok = verify(&pseudo(&ip[8..24], &ip[24..40], proto, plen), &l4);
            Pkt {
                ts_ns: rec.ts_ns,
                frame_len: f.len(),
                v6: true,
                src: src.into(),
                dst: dst.into(),
                ip_len: 40 + plen,
                proto,
                ttl: ip[7],
                ident: 0,
                dont_fragment: false,
                more_fragments: false,
                frag_offset: 0,
                l4,
                l4_checksum_ok: Some(ok),
            }
        }
        t => panic!("unexpected ethertype {t:04x}"),
    }
}

/// Everything re-counted from a capture.
#[derive(Debug, Default)]
pub struct Recount {
    pub packets: u64,
    pub bytes: u64,
    pub frame_bytes: u64,
    pub per_dst: BTreeMap<IpAddr, Totals>,
    pub per_proto: BTreeMap<String, Totals>,
    pub first: Option<u64>,
    pub last: u64,
}

pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => format!("ip_proto_{n}"),
    }
}

pub fn recount(pkts: &[Pkt]) -> Recount {
    let mut r = Recount::default();
    let mut last = 0;
    for p in pkts {
        assert!(p.ts_ns >= last, "timestamps must not go backwards");
        last = p.ts_ns;
        r.packets += 1;
        r.bytes += p.ip_len as u64;
        r.frame_bytes += p.frame_len as u64;
        let d = r.per_dst.entry(p.dst).or_default();
        d.packets += 1;
        d.bytes += p.ip_len as u64;
        let q = r.per_proto.entry(proto_name(p.proto)).or_default();
        q.packets += 1;
        q.bytes += p.ip_len as u64;
        r.first.get_or_insert(p.ts_ns);
        r.last = p.ts_ns;
    }
    r
}

/// Reads, dissects and checks `data` against `truth`; returns the packets.
pub fn check_against_truth(data: &[u8], truth: &GroundTruth) -> Vec<Pkt> {
    let (nanos, link, recs) = read_pcap(data);
    assert_eq!(link, 1);
    assert_eq!(nanos, truth.params.nanosecond);
    let pkts: Vec<Pkt> = recs.iter().map(dissect).collect();
    for p in &pkts {
        assert_ne!(p.l4_checksum_ok, Some(false), "bad transport checksum: {p:?}");
    }
    let r = recount(&pkts);
    assert_eq!(r.packets, truth.totals.packets);
    assert_eq!(r.bytes, truth.totals.bytes);
    assert_eq!(r.packets, truth.capture.packets);
    assert_eq!(r.bytes, truth.capture.ip_bytes);
    assert_eq!(r.frame_bytes, truth.capture.frame_bytes);
    assert_eq!(data.len() as u64, truth.capture.file_bytes);
    assert_eq!(r.per_dst, truth.per_destination);
    assert_eq!(r.per_proto, truth.per_protocol);
    let attack_pkts: u64 = truth.attacks.iter().map(|a| a.packets).sum();
    let attack_bytes: u64 = truth.attacks.iter().map(|a| a.bytes).sum();
    assert_eq!(attack_pkts + truth.benign.total.packets, truth.totals.packets);
    assert_eq!(attack_bytes + truth.benign.total.bytes, truth.totals.bytes);
    let dir_sum: u64 = truth.per_direction.values().map(|t| t.packets).sum();
    assert_eq!(dir_sum, truth.totals.packets);
    if let Some(first) = r.first {
        let start = truth.params.start_unix * 1_000_000_000;
        let end = start + (truth.params.duration_secs * 1e9).round() as u64;
        assert!(first >= start && r.last < end, "timestamps inside the window");
    }
    if let Some(cap) = truth.params.max_packets {
        assert!(r.packets <= cap);
    }
    pkts
}

/// Small, quick parameters for tests (the suite runs unoptimised).
pub fn small(seed: u64) -> GenParams {
    GenParams {
        seed,
        duration_secs: 2.0,
        background_pps: 2_000,
        attack_pps: 10_000,
        attack_start_secs: 0.5,
        attack_duration_secs: Some(1.0),
        ..GenParams::default()
    }
}
