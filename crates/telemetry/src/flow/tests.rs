//! Hand-built datagrams checked against RFC 3954 / RFC 7011 and the NetFlow v5 layout, plus
//! property tests on hostile input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::record::{Fragment, IcmpTypeCode, RecordSource};

const SEC: u64 = 1_000_000_000;
const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const EXPORTER2: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const NOW: UnixNanos = UnixNanos(1_700_000_100 * SEC);

// ---------- builders ----------

pub(crate) fn v5_datagram(count: u16, seq: u32, sampling: u16, records: &[[u8; 48]]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&count.to_be_bytes());
    d.extend_from_slice(&10_000u32.to_be_bytes()); // sysUptime ms
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    d.extend_from_slice(&500_000_000u32.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&[1, 2]); // engine type, id
    d.extend_from_slice(&sampling.to_be_bytes());
    for r in records {
        d.extend_from_slice(r);
    }
    d
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn v5_record(
    src: [u8; 4],
    dst: [u8; 4],
    packets: u32,
    octets: u32,
    first: u32,
    last: u32,
    ports: (u16, u16),
    flags: u8,
    proto: u8,
) -> [u8; 48] {
    let mut r = [0u8; 48];
    r[0..4].copy_from_slice(&src);
    r[4..8].copy_from_slice(&dst);
    r[12..14].copy_from_slice(&3u16.to_be_bytes());
    r[14..16].copy_from_slice(&4u16.to_be_bytes());
    r[16..20].copy_from_slice(&packets.to_be_bytes());
    r[20..24].copy_from_slice(&octets.to_be_bytes());
    r[24..28].copy_from_slice(&first.to_be_bytes());
    r[28..32].copy_from_slice(&last.to_be_bytes());
    r[32..34].copy_from_slice(&ports.0.to_be_bytes());
    r[34..36].copy_from_slice(&ports.1.to_be_bytes());
    r[37] = flags;
    r[38] = proto;
    r
}

/// A set (FlowSet) with its 4-byte header, padded to 4 bytes.
pub(crate) fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
    let mut s = Vec::new();
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&((b.len() + 4) as u16).to_be_bytes());
    s.extend_from_slice(&b);
    s
}

pub(crate) fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for &(f, l) in fields {
        t.extend_from_slice(&f.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
    t
}

pub(crate) fn v9_datagram(uptime: u32, secs: u32, seq: u32, source_id: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&9u16.to_be_bytes());
    d.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    d.extend_from_slice(&uptime.to_be_bytes());
    d.extend_from_slice(&secs.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&source_id.to_be_bytes());
    for s in sets {
        d.extend_from_slice(s);
    }
    d
}

pub(crate) fn ipfix_message(secs: u32, seq: u32, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let len = 16 + sets.iter().map(Vec::len).sum::<usize>();
    let mut d = Vec::new();
    d.extend_from_slice(&10u16.to_be_bytes());
    d.extend_from_slice(&(len as u16).to_be_bytes());
    d.extend_from_slice(&secs.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        d.extend_from_slice(s);
    }
    d
}

/// The typical template: IPv4 5-tuple, counters, uptime times, flags, interfaces.
pub(crate) const TYPICAL: &[(u16, u16)] =
    &[(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (1, 4), (2, 4), (22, 4), (21, 4), (10, 2), (14, 2)];

#[allow(clippy::too_many_arguments)]
pub(crate) fn typical_record(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    flags: u8,
    octets: u32,
    packets: u32,
    first: u32,
    last: u32,
) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&src);
    r.extend_from_slice(&dst);
    r.extend_from_slice(&sport.to_be_bytes());
    r.extend_from_slice(&dport.to_be_bytes());
    r.push(proto);
    r.push(flags);
    r.extend_from_slice(&octets.to_be_bytes());
    r.extend_from_slice(&packets.to_be_bytes());
    r.extend_from_slice(&first.to_be_bytes());
    r.extend_from_slice(&last.to_be_bytes());
    r.extend_from_slice(&7u16.to_be_bytes());
    r.extend_from_slice(&9u16.to_be_bytes());
    r
}

fn decode(d: &mut FlowDecoder, from: IpAddr, datagram: &[u8]) -> (Vec<TrafficRecord>, DecodeOutcome) {
    let mut out = Vec::new();
    let outcome = d.decode(from, datagram, NOW, &mut out);
    (out, outcome)
}

fn stats_of(d: &FlowDecoder, addr: IpAddr, sub_id: u32) -> ExporterStats {
    d.stats()
        .find(|(e, _)| e.addr == Some(addr) && e.sub_id == sub_id)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no stats for {addr}/{sub_id}"))
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

// ---------- NetFlow v5 ----------

#[test]
fn v5_records_decode_per_layout() {
    let tcp = v5_record([10, 0, 0, 1], [192, 0, 2, 10], 5, 1500, 4_000, 9_000, (40000, 80), 0x1b, 6);
    let icmp = v5_record([10, 0, 0, 2], [192, 0, 2, 11], 2, 168, 9_999, 9_999, (0, 0x0800), 0xff, 1);
    // Mode 01 (deterministic), interval 100.
    let datagram = v5_datagram(2, 77, 0x4000 | 100, &[tcp, icmp]);
    let mut d = FlowDecoder::default();
    let (out, outcome) = decode(&mut d, EXPORTER, &datagram);
    assert_eq!(outcome, DecodeOutcome { records: 2, errors: 0, first_error: None });
    // Export: 1_700_000_000.5 s at uptime 10 s; boot 1_699_999_990.5 s.
    let boot = 1_699_999_990 * SEC + SEC / 2;
    assert_eq!(
        out[0],
        TrafficRecord {
            start: UnixNanos(boot + 4 * SEC),
            end: UnixNanos(boot + 9 * SEC),
            src: ip([10, 0, 0, 1]),
            dst: ip([192, 0, 2, 10]),
            protocol: 6,
            src_port: Some(40000),
            dst_port: Some(80),
            tcp_flags: 0x1b,
            icmp: None,
            fragment: Fragment::None,
            packets: 5,
            bytes: 1500,
            sampling_rate: 100,
            ttl: None,
            packet_len: None,
            exporter: Exporter { addr: Some(EXPORTER), sub_id: 0x0102 },
            input_if: Some(3),
            output_if: Some(4),
            source: RecordSource::NetflowV5,
        }
    );
    assert_eq!(out[1].icmp, Some(IcmpTypeCode { kind: 8, code: 0 }));
    assert_eq!((out[1].src_port, out[1].dst_port, out[1].tcp_flags), (None, None, 0));
    let stats = stats_of(&d, EXPORTER, 0x0102);
    assert_eq!((stats.datagrams, stats.records, stats.decode_errors), (1, 2, 0));
}

#[test]
fn v5_count_is_checked_against_length() {
    let r = v5_record([1, 1, 1, 1], [2, 2, 2, 2], 1, 40, 0, 0, (1, 2), 0, 17);
    let mut d = FlowDecoder::default();
    let (out, outcome) = decode(&mut d, EXPORTER, &v5_datagram(3, 0, 0, &[r, r]));
    assert_eq!(out.len(), 2);
    assert_eq!(outcome.first_error, Some(FlowError::LengthMismatch { announced: 3, available: 2 }));
    let (out, _) = decode(&mut d, EXPORTER, &v5_datagram(1, 3, 0, &[r, r]));
    assert_eq!(out.len(), 1);
    // Truncated mid-record.
    let mut short = v5_datagram(2, 4, 0, &[r, r]);
    short.truncate(24 + 48 + 20);
    let (out, outcome) = decode(&mut d, EXPORTER, &short);
    assert_eq!((out.len(), outcome.errors), (1, 1));
    assert_eq!(stats_of(&d, EXPORTER, 0x0102).decode_errors, 2);
    assert_eq!(out[0].sampling_rate, 1);
}

#[test]
fn v5_sequence_counts_flows() {
    let r = v5_record([1, 1, 1, 1], [2, 2, 2, 2], 1, 40, 0, 0, (1, 2), 0, 17);
    let mut d = FlowDecoder::default();
    decode(&mut d, EXPORTER, &v5_datagram(2, 100, 0, &[r, r]));
    decode(&mut d, EXPORTER, &v5_datagram(2, 102, 0, &[r, r]));
    decode(&mut d, EXPORTER, &v5_datagram(2, 110, 0, &[r, r])); // 6 flows lost
    decode(&mut d, EXPORTER, &v5_datagram(2, 0, 0, &[r, r])); // restart
    decode(&mut d, EXPORTER, &v5_datagram(2, 2, 0, &[r, r]));
    assert_eq!(stats_of(&d, EXPORTER, 0x0102).sequence_gaps, 6);
}

#[test]
fn configured_sampling_wins_and_can_be_cleared() {
    let r = v5_record([1, 1, 1, 1], [2, 2, 2, 2], 1, 40, 0, 0, (1, 2), 0, 17);
    let mut d = FlowDecoder::default();
    d.set_sampling(EXPORTER, 512);
    let (out, _) = decode(&mut d, EXPORTER, &v5_datagram(1, 0, 100, &[r]));
    assert_eq!(out[0].sampling_rate, 512);
    d.set_sampling(EXPORTER, 0);
    let (out, _) = decode(&mut d, EXPORTER, &v5_datagram(1, 1, 100, &[r]));
    assert_eq!(out[0].sampling_rate, 100);
}

// ---------- NetFlow v9 ----------

fn typical_v9(seq: u32, source_id: u32, with_template: bool, records: &[Vec<u8>]) -> Vec<u8> {
    let mut sets = Vec::new();
    if with_template {
        sets.push(set(0, &template(256, TYPICAL)));
    }
    sets.push(set(256, &records.concat()));
    v9_datagram(60_000, 1_700_000_000, seq, source_id, &sets)
}

#[test]
fn v9_template_and_data() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1234, 53, 17, 0xff, 1000, 10, 50_000, 59_000);
    let b = typical_record([10, 0, 0, 2], [192, 0, 2, 2], 4321, 443, 6, 0x12, 60, 1, 59_999, 59_999);
    let mut d = FlowDecoder::default();
    let (out, outcome) = decode(&mut d, EXPORTER, &typical_v9(1, 7, true, &[a, b]));
    assert_eq!((outcome.records, outcome.errors), (2, 0));
    // Export 1_700_000_000 s (+ up to 1 s) at uptime 60 s: boot in [1_699_999_940, +1 s),
    // estimated mid-way.
    let boot = 1_699_999_940 * SEC + 499 * 1_000_000;
    let r = &out[0];
    assert_eq!((r.start, r.end), (UnixNanos(boot + 50 * SEC), UnixNanos(boot + 59 * SEC)));
    assert_eq!((r.src, r.dst, r.protocol), (ip([10, 0, 0, 1]), ip([192, 0, 2, 1]), 17));
    assert_eq!((r.src_port, r.dst_port, r.tcp_flags), (Some(1234), Some(53), 0));
    assert_eq!((r.packets, r.bytes, r.sampling_rate), (10, 1000, 1));
    assert_eq!((r.input_if, r.output_if), (Some(7), Some(9)));
    assert_eq!(r.exporter, Exporter { addr: Some(EXPORTER), sub_id: 7 });
    assert_eq!(r.source, RecordSource::NetflowV9);
    assert_eq!(out[1].tcp_flags, 0x12);
    let stats = stats_of(&d, EXPORTER, 7);
    assert_eq!((stats.templates, stats.records, stats.unknown_template_records), (1, 2, 0));
}

#[test]
fn v9_boot_time_narrows_across_datagrams() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 1, 1, 10_000, 10_000);
    let mut d = FlowDecoder::default();
    // True boot: 1_699_999_000.250 s. Export at uptime 1000.100 s -> header 1_700_000_000
    // (true .350), then uptime 1000.700 s -> 1_700_000_000 (true .950).
    let mut sets = vec![set(0, &template(256, TYPICAL)), set(256, &a)];
    decode(&mut d, EXPORTER, &v9_datagram(1_000_100, 1_700_000_000, 1, 0, &sets));
    sets.remove(0);
    let (out, _) = decode(&mut d, EXPORTER, &v9_datagram(1_000_700, 1_700_000_000, 2, 0, &sets));
    // Bounds: [..,.250+...] intersect: boot in [1_699_999_000.000-ish]: low = max(-100 ms, -700 ms
    // ... ) so the estimate is within the true second.
    let start = out[0].start.0 as i64;
    let truth = (1_699_999_000 * SEC + SEC / 4 + 10 * SEC) as i64;
    assert!((start - truth).abs() < 400_000_000, "{start} vs {truth}");
}

#[test]
fn v9_unknown_template_then_template() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 0, 0);
    let mut d = FlowDecoder::default();
    let (out, _) = decode(&mut d, EXPORTER, &typical_v9(1, 0, false, &[a.clone(), a.clone()]));
    assert!(out.is_empty());
    assert_eq!(stats_of(&d, EXPORTER, 0).unknown_template_records, 1);
    let (out, _) = decode(&mut d, EXPORTER, &typical_v9(2, 0, true, std::slice::from_ref(&a)));
    assert_eq!(out.len(), 1);
    // Templates are scoped per source id.
    let (out, _) = decode(&mut d, EXPORTER, &typical_v9(3, 1, false, std::slice::from_ref(&a)));
    assert!(out.is_empty());
    assert_eq!(stats_of(&d, EXPORTER, 1).unknown_template_records, 1);
    // ... and per exporter address.
    let (out, _) = decode(&mut d, EXPORTER2, &typical_v9(3, 0, false, &[a]));
    assert!(out.is_empty());
}

#[test]
fn v9_template_refresh_replaces() {
    let mut d = FlowDecoder::default();
    let first = v9_datagram(0, 1_700_000_000, 1, 0, &[set(0, &template(300, &[(8, 4), (12, 4), (1, 4)]))]);
    decode(&mut d, EXPORTER, &first);
    let refresh = v9_datagram(
        0,
        1_700_000_000,
        2,
        0,
        &[set(0, &template(300, &[(12, 4), (8, 4), (2, 2)])), set(300, &[1, 1, 1, 1, 2, 2, 2, 2, 0, 5])],
    );
    let (out, _) = decode(&mut d, EXPORTER, &refresh);
    assert_eq!(
        (out[0].src, out[0].dst, out[0].packets, out[0].bytes),
        (ip([2, 2, 2, 2]), ip([1, 1, 1, 1]), 5, 0)
    );
    assert_eq!(stats_of(&d, EXPORTER, 0).templates, 1);
    assert_eq!(d.template_fields, 3);
}

#[test]
fn v9_field_variety() {
    // IPv6, OUT_BYTES/OUT_PKTS only, ICMP_TYPE, min TTL, fragment offset, direction, 8-byte
    // counters, 3-byte counter, unknown field, 4-byte ifIndex.
    let fields = [(27, 16), (28, 16), (4, 1), (23, 8), (24, 3), (32, 2), (52, 1), (61, 1), (999, 5), (10, 4)];
    let mut rec = Vec::new();
    rec.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    rec.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
    rec.push(58);
    rec.extend_from_slice(&(1u64 << 40).to_be_bytes());
    rec.extend_from_slice(&[0x01, 0x00, 0x01]);
    rec.extend_from_slice(&[128, 0]);
    rec.push(63);
    rec.push(1);
    rec.extend_from_slice(&[0xAA; 5]);
    rec.extend_from_slice(&100_000u32.to_be_bytes());
    let mut d = FlowDecoder::default();
    let dg = v9_datagram(0, 1_700_000_000, 1, 0, &[set(0, &template(256, &fields)), set(256, &rec)]);
    let (out, outcome) = decode(&mut d, EXPORTER, &dg);
    assert_eq!(outcome.errors, 0);
    let r = &out[0];
    assert_eq!(r.src, IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    assert_eq!((r.bytes, r.packets), (1 << 40, 0x010001));
    assert_eq!(r.icmp, Some(IcmpTypeCode { kind: 128, code: 0 }));
    assert_eq!((r.ttl, r.input_if, r.output_if), (Some(63), Some(100_000), None));
    // No times: the export time for both.
    assert_eq!((r.start, r.end), (UnixNanos(1_700_000_000 * SEC + 499_000_000), r.start));

    let frag = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (88, 2), (1, 4), (2, 4)];
    let mut rec = vec![1, 1, 1, 1, 2, 2, 2, 2, 17, 0, 0, 0, 0];
    rec.extend_from_slice(&185u16.to_be_bytes());
    rec.extend_from_slice(&[0, 0, 5, 220, 0, 0, 0, 1]);
    let dg = v9_datagram(0, 1_700_000_000, 2, 0, &[set(0, &template(257, &frag)), set(257, &rec)]);
    let (out, _) = decode(&mut d, EXPORTER, &dg);
    assert_eq!((out[0].fragment, out[0].src_port, out[0].bytes), (Fragment::NonInitial, None, 1500));
}

#[test]
fn v9_end_before_start_is_clamped() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 5_000, 4_000);
    let mut d = FlowDecoder::default();
    let (out, _) = decode(&mut d, EXPORTER, &typical_v9(1, 0, true, &[a]));
    assert_eq!(out[0].start, out[0].end);
}

#[test]
fn v9_uptime_wrap_between_flow_and_export() {
    // Exporter up ~49.7 days: header uptime wrapped to 500 ms; flow began 1.5 s earlier.
    let first = u32::MAX - 999;
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, first, 200);
    let mut d = FlowDecoder::default();
    let dg = v9_datagram(500, 1_700_000_000, 1, 0, &[set(0, &template(256, TYPICAL)), set(256, &a)]);
    let (out, _) = decode(&mut d, EXPORTER, &dg);
    let export = 1_700_000_000 * SEC + 499_000_000;
    assert_eq!(out[0].start, UnixNanos(export - 1_500_000_000));
    assert_eq!(out[0].end, UnixNanos(export - 300_000_000));
}

fn v9_options_template(id: u16, scope: &[(u16, u16)], options: &[(u16, u16)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&((scope.len() * 4) as u16).to_be_bytes());
    t.extend_from_slice(&((options.len() * 4) as u16).to_be_bytes());
    for &(f, l) in scope.iter().chain(options) {
        t.extend_from_slice(&f.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
    t
}

#[test]
fn v9_sampling_from_options() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 0, 0);
    let mut d = FlowDecoder::default();
    // softflowd's: scope interface (type 2, 4 bytes), SAMPLING_INTERVAL, SAMPLING_ALGORITHM.
    let options = v9_options_template(257, &[(2, 4)], &[(34, 4), (35, 1)]);
    let dg = v9_datagram(
        0,
        1_700_000_000,
        1,
        0,
        &[
            set(0, &template(256, TYPICAL)),
            set(1, &options),
            set(257, &[0, 0, 0, 0, 0, 0, 0, 100, 1]),
            set(256, &a),
        ],
    );
    let (out, outcome) = decode(&mut d, EXPORTER, &dg);
    assert_eq!((out.len(), outcome.errors), (1, 0));
    assert_eq!(out[0].sampling_rate, 100);
    assert_eq!(stats_of(&d, EXPORTER, 0).templates, 2);

    // Per-sampler intervals: FLOW_SAMPLER_ID 48 + FLOW_SAMPLER_RANDOM_INTERVAL 50.
    let options = v9_options_template(258, &[(1, 4)], &[(48, 1), (50, 4)]);
    let mut with_sampler = TYPICAL.to_vec();
    with_sampler.push((48, 1));
    let mut rec = a.clone();
    rec.push(2);
    let dg = v9_datagram(
        0,
        1_700_000_000,
        2,
        0,
        &[
            set(0, &template(259, &with_sampler)),
            set(1, &options),
            set(258, &[0, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 2, 0, 0, 0, 20]),
            set(259, &rec),
        ],
    );
    let (out, _) = decode(&mut d, EXPORTER, &dg);
    assert_eq!(out[0].sampling_rate, 20);
    d.set_sampling(EXPORTER, 7);
    let (out, _) = decode(&mut d, EXPORTER, &dg);
    assert_eq!(out[0].sampling_rate, 7);
}

#[test]
fn v9_sequence_counts_packets() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 0, 0);
    let mut d = FlowDecoder::default();
    for seq in [10, 11, 12, 14, 15, 20, 21] {
        decode(&mut d, EXPORTER, &typical_v9(seq, 0, true, &[a.clone(), a.clone(), a.clone()]));
    }
    assert_eq!(stats_of(&d, EXPORTER, 0).sequence_gaps, 5);
}

#[test]
fn v9_malformed_sets_are_counted_and_salvaged() {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 0, 0);
    let mut d = FlowDecoder::default();
    decode(&mut d, EXPORTER, &typical_v9(1, 0, true, &[]));
    // Data set claiming more than the datagram holds: the records there are kept.
    let mut dg = typical_v9(2, 0, false, &[a.clone(), a.clone()]);
    dg[22..24].copy_from_slice(&500u16.to_be_bytes());
    let (out, outcome) = decode(&mut d, EXPORTER, &dg);
    assert_eq!((out.len(), outcome.errors), (2, 1));
    // Set length below its header.
    let mut dg = typical_v9(3, 0, false, std::slice::from_ref(&a));
    dg[22..24].copy_from_slice(&2u16.to_be_bytes());
    let (out, outcome) = decode(&mut d, EXPORTER, &dg);
    assert_eq!(
        (out.len(), outcome.first_error),
        (0, Some(FlowError::BadSetLength { set_id: 256, length: 2 }))
    );
    // Template with a reserved id; template with a zero-length record.
    let dg = v9_datagram(0, 0, 4, 0, &[set(0, &template(12, TYPICAL)), set(0, &template(300, &[(1, 0)]))]);
    let (_, outcome) = decode(&mut d, EXPORTER, &dg);
    assert_eq!(outcome.errors, 2);
    assert_eq!(stats_of(&d, EXPORTER, 0).decode_errors, 4);
}

// ---------- IPFIX ----------

fn ipfix_template_with_enterprise() -> Vec<u8> {
    // 8 sourceIPv4Address, 12 destinationIPv4Address, enterprise 29305/1 (reverse octets, 8),
    // enterprise 9/5 (3 bytes, unknown), 4 protocol, 6 tcpControlBits (2 bytes), 152/153
    // milliseconds, 1, 2.
    let mut t = Vec::new();
    t.extend_from_slice(&400u16.to_be_bytes());
    t.extend_from_slice(&10u16.to_be_bytes());
    for (f, l) in [(8u16, 4u16), (12, 4)] {
        t.extend_from_slice(&f.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
    t.extend_from_slice(&(0x8000u16 | 1).to_be_bytes());
    t.extend_from_slice(&8u16.to_be_bytes());
    t.extend_from_slice(&29305u32.to_be_bytes());
    t.extend_from_slice(&(0x8000u16 | 5).to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&9u32.to_be_bytes());
    for (f, l) in [(4u16, 1u16), (6, 2), (152, 8), (153, 8), (1, 8), (2, 8)] {
        t.extend_from_slice(&f.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
    t
}

fn ipfix_record(octets: u64, start_ms: u64, end_ms: u64) -> Vec<u8> {
    let mut r = vec![10, 0, 0, 1, 192, 0, 2, 1];
    r.extend_from_slice(&999u64.to_be_bytes());
    r.extend_from_slice(&[7, 7, 7]);
    r.push(6);
    r.extend_from_slice(&0x0112u16.to_be_bytes());
    r.extend_from_slice(&start_ms.to_be_bytes());
    r.extend_from_slice(&end_ms.to_be_bytes());
    r.extend_from_slice(&octets.to_be_bytes());
    r.extend_from_slice(&3u64.to_be_bytes());
    r
}

#[test]
fn ipfix_template_and_data_with_enterprise_fields() {
    let mut d = FlowDecoder::default();
    let start = 1_700_000_000_250u64;
    let msg = ipfix_message(
        1_700_000_010,
        0,
        42,
        &[set(2, &ipfix_template_with_enterprise()), set(400, &ipfix_record(1200, start, start + 1500))],
    );
    let (out, outcome) = decode(&mut d, EXPORTER, &msg);
    // A biflow (RFC 5103 reverseOctetDeltaCount): both directions.
    assert_eq!((out.len(), outcome.errors), (2, 0));
    let r = &out[0];
    assert_eq!((r.start, r.end), (UnixNanos(start * 1_000_000), UnixNanos((start + 1500) * 1_000_000)));
    assert_eq!((r.bytes, r.packets, r.tcp_flags), (1200, 3, 0x12));
    assert_eq!((r.src_port, r.dst_port), (None, None));
    assert_eq!((r.exporter.sub_id, r.source), (42, RecordSource::Ipfix));
    let reverse = &out[1];
    assert_eq!((reverse.src, reverse.dst), (r.dst, r.src));
    assert_eq!((reverse.bytes, reverse.packets, reverse.tcp_flags, reverse.start), (999, 0, 0, r.start));
}

#[test]
fn ipfix_time_encodings() {
    let export = 1_700_000_010u32;
    let ntp = |unix_ns: u64| {
        let secs = unix_ns / SEC + 2_208_988_800;
        let frac = ((unix_ns % SEC) << 32) / SEC;
        (secs << 32) | frac
    };
    #[allow(clippy::type_complexity)]
    let cases: Vec<(u16, u16, Vec<u8>, Vec<u8>, u64, u64)> = vec![
        (
            150,
            151,
            1_700_000_001u32.to_be_bytes().to_vec(),
            1_700_000_002u32.to_be_bytes().to_vec(),
            1_700_000_001 * SEC,
            1_700_000_002 * SEC,
        ),
        (
            154,
            155,
            ntp(1_700_000_001 * SEC + 500_000).to_be_bytes().to_vec(),
            ntp(1_700_000_003 * SEC).to_be_bytes().to_vec(),
            1_700_000_001 * SEC + 500_000,
            1_700_000_003 * SEC,
        ),
        (
            156,
            157,
            ntp(1_700_000_001 * SEC + 123).to_be_bytes().to_vec(),
            ntp(1_700_000_003 * SEC).to_be_bytes().to_vec(),
            1_700_000_001 * SEC + 123,
            1_700_000_003 * SEC,
        ),
        (
            158,
            159,
            3_000_000u32.to_be_bytes().to_vec(),
            1_000u32.to_be_bytes().to_vec(),
            1_700_000_007 * SEC,
            1_700_000_010 * SEC - 1_000_000,
        ),
    ];
    for (i, (fs, fe, s, e, want_s, want_e)) in cases.into_iter().enumerate() {
        let mut d = FlowDecoder::default();
        let fields = [(8, 4), (12, 4), (2, 4), (fs, s.len() as u16), (fe, e.len() as u16)];
        let mut rec = vec![1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 1];
        rec.extend_from_slice(&s);
        rec.extend_from_slice(&e);
        let msg = ipfix_message(export, 0, 0, &[set(2, &template(256, &fields)), set(256, &rec)]);
        let (out, _) = decode(&mut d, EXPORTER, &msg);
        let (start, end) = (out[0].start.0, out[0].end.0);
        // NTP fractions round down by at most a nanosecond.
        assert!(start.abs_diff(want_s) <= 1 && end.abs_diff(want_e) <= 1, "case {i}: {start} {end}");
    }
}

#[test]
fn ipfix_sysuptime_with_system_init_time_and_packet_sampling() {
    // softflowd: options template (scope meteringProcessId 143) with systemInitTimeMilliseconds,
    // samplingPacketInterval, samplingPacketSpace, selectorAlgorithm.
    let mut options = Vec::new();
    options.extend_from_slice(&256u16.to_be_bytes());
    options.extend_from_slice(&5u16.to_be_bytes());
    options.extend_from_slice(&1u16.to_be_bytes());
    for (f, l) in [(143u16, 4u16), (160, 8), (305, 4), (306, 4), (304, 2)] {
        options.extend_from_slice(&f.to_be_bytes());
        options.extend_from_slice(&l.to_be_bytes());
    }
    let init_ms = 1_699_990_000_123u64;
    let mut option_data = 77u32.to_be_bytes().to_vec();
    option_data.extend_from_slice(&init_ms.to_be_bytes());
    option_data.extend_from_slice(&1u32.to_be_bytes());
    option_data.extend_from_slice(&49u32.to_be_bytes());
    option_data.extend_from_slice(&1u16.to_be_bytes());
    let data_fields = [(8, 4), (12, 4), (22, 4), (21, 4), (1, 4), (2, 4)];
    let mut rec = vec![1, 1, 1, 1, 2, 2, 2, 2];
    rec.extend_from_slice(&5_000u32.to_be_bytes());
    rec.extend_from_slice(&9_000u32.to_be_bytes());
    rec.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 4]);
    let msg = ipfix_message(
        1_700_000_000,
        0,
        0,
        &[set(2, &template(1024, &data_fields)), set(3, &options), set(256, &option_data), set(1024, &rec)],
    );
    let mut d = FlowDecoder::default();
    let (out, outcome) = decode(&mut d, EXPORTER, &msg);
    assert_eq!(outcome.errors, 0);
    assert_eq!(out[0].start, UnixNanos((init_ms + 5_000) * 1_000_000));
    assert_eq!(out[0].end, UnixNanos((init_ms + 9_000) * 1_000_000));
    assert_eq!(out[0].sampling_rate, 50);
}

#[test]
fn ipfix_variable_length_fields() {
    // 8, 12, applicationName (96, variable), 1, 2; records with short and 3-byte-length forms.
    let fields = [(8, 4), (12, 4), (96, 0xFFFF), (1, 4), (2, 4)];
    let mut recs = Vec::new();
    recs.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2, 3, b'd', b'n', b's', 0, 0, 0, 100, 0, 0, 0, 1]);
    recs.extend_from_slice(&[3, 3, 3, 3, 4, 4, 4, 4, 255, 1, 44]);
    recs.extend_from_slice(&[b'x'; 300]);
    recs.extend_from_slice(&[0, 0, 0, 200, 0, 0, 0, 2]);
    recs.extend_from_slice(&[5, 5, 5, 5, 6, 6, 6, 6, 0, 0, 0, 0, 50, 0, 0, 0, 3]);
    let msg = ipfix_message(1_700_000_000, 0, 0, &[set(2, &template(256, &fields)), set(256, &recs)]);
    let mut d = FlowDecoder::default();
    let (out, outcome) = decode(&mut d, EXPORTER, &msg);
    assert_eq!(outcome.errors, 0);
    assert_eq!(out.iter().map(|r| r.bytes).collect::<Vec<_>>(), [100, 200, 50]);
    // A variable-length length that runs past the set.
    let mut bad = recs[..20].to_vec();
    bad.extend_from_slice(&[3, 3, 3, 3, 4, 4, 4, 4, 255, 0xFF, 0xF0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let msg = ipfix_message(1_700_000_000, 0, 0, &[set(256, &bad)]);
    let (out, outcome) = decode(&mut d, EXPORTER, &msg);
    assert_eq!(out.len(), 1);
    assert_eq!(outcome.first_error, Some(FlowError::TruncatedRecord { template_id: 256 }));
}

#[test]
fn ipfix_template_withdrawal() {
    let mut d = FlowDecoder::default();
    let t = |id| template(id, &[(8, 4), (12, 4), (1, 4)]);
    let msg = ipfix_message(0, 0, 0, &[set(2, &[t(256), t(257), t(258)].concat())]);
    decode(&mut d, EXPORTER, &msg);
    assert_eq!(stats_of(&d, EXPORTER, 0).templates, 3);
    decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(2, &[1, 0, 0, 0])]));
    assert_eq!(stats_of(&d, EXPORTER, 0).templates, 2);
    let (out, _) =
        decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(257, &[1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 9])]));
    assert_eq!(out[0].bytes, 9);
    let (out, _) =
        decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(256, &[1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 9])]));
    assert!(out.is_empty());
    decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(2, &[0, 2, 0, 0])]));
    assert_eq!(stats_of(&d, EXPORTER, 0).templates, 0);
    assert_eq!(d.template_fields, 0);
}

#[test]
fn ipfix_sequence_counts_records() {
    let mut d = FlowDecoder::default();
    let rec = [1u8, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 9];
    let t = set(2, &template(256, &[(8, 4), (12, 4), (1, 4)]));
    let data = |n: usize| set(256, &rec.repeat(n));
    decode(&mut d, EXPORTER, &ipfix_message(0, 100, 0, &[t.clone(), data(3)]));
    decode(&mut d, EXPORTER, &ipfix_message(0, 103, 0, &[data(2)]));
    decode(&mut d, EXPORTER, &ipfix_message(0, 105, 0, &[data(4)]));
    decode(&mut d, EXPORTER, &ipfix_message(0, 119, 0, &[data(1)])); // 10 records lost
    decode(&mut d, EXPORTER, &ipfix_message(0, 120, 0, &[data(1)]));
    assert_eq!(stats_of(&d, EXPORTER, 0).sequence_gaps, 10);
}

#[test]
fn ipfix_total_counters_become_deltas() {
    let mut d = FlowDecoder::default();
    let fields = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (85, 8), (86, 8), (151, 4)];
    let rec = |octets: u64, packets: u64, end: u32| {
        let mut r = vec![1, 1, 1, 1, 2, 2, 2, 2, 6, 0, 1, 0, 2];
        r.extend_from_slice(&octets.to_be_bytes());
        r.extend_from_slice(&packets.to_be_bytes());
        r.extend_from_slice(&end.to_be_bytes());
        r
    };
    let t = set(2, &template(256, &fields));
    let (out, _) =
        decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[t, set(256, &rec(1000, 10, 1_700_000_000))]));
    assert_eq!((out[0].bytes, out[0].packets), (1000, 10));
    let (out, _) =
        decode(&mut d, EXPORTER, &ipfix_message(0, 1, 0, &[set(256, &rec(1500, 14, 1_700_000_060))]));
    assert_eq!((out[0].bytes, out[0].packets), (500, 4));
    assert_eq!((out[0].start, out[0].end), (UnixNanos(1_700_000_000 * SEC), UnixNanos(1_700_000_060 * SEC)));
}

// ---------- limits and bad input ----------

#[test]
fn template_flood_is_capped() {
    let limits = FlowLimits { max_templates_per_exporter: 16, ..FlowLimits::default() };
    let mut d = FlowDecoder::new(limits);
    for chunk in (256u16..4256).collect::<Vec<_>>().chunks(40) {
        let body: Vec<u8> = chunk.iter().flat_map(|&id| template(id, &[(8, 4), (1, 4)])).collect();
        decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(2, &body)]));
        decode(&mut d, EXPORTER, &v9_datagram(0, 0, 0, 0, &[set(0, &body)]));
    }
    let stats = stats_of(&d, EXPORTER, 0);
    assert_eq!(stats.templates, 16);
    assert_eq!(stats.templates_rejected, 8000 - 16);
    // Refreshing a cached template still works at the cap.
    decode(&mut d, EXPORTER, &ipfix_message(0, 0, 0, &[set(2, &template(256, &[(12, 4), (2, 4)]))]));
    assert_eq!(stats_of(&d, EXPORTER, 0).templates_rejected, 8000 - 16);
}

#[test]
fn template_field_limits() {
    let limits =
        FlowLimits { max_template_fields: 4, max_total_template_fields: 10, ..FlowLimits::default() };
    let mut d = FlowDecoder::new(limits);
    let five = [(8, 4), (12, 4), (1, 4), (2, 4), (4, 1)];
    let (_, outcome) = decode(&mut d, EXPORTER, &v9_datagram(0, 0, 0, 0, &[set(0, &template(256, &five))]));
    assert_eq!(outcome.errors, 0);
    assert_eq!(stats_of(&d, EXPORTER, 0).templates_rejected, 1);
    for id in 257..262 {
        decode(&mut d, EXPORTER2, &ipfix_message(0, 0, 0, &[set(2, &template(id, &five[..4]))]));
    }
    // 10 fields in total: two templates of four.
    assert_eq!(stats_of(&d, EXPORTER2, 0).templates, 2);
    assert!(d.template_fields <= 10);
}

#[test]
fn exporter_cap_counts_unattributed() {
    // v5 (engine 0x0102) and v9 (source 0) of one address are two exporters.
    let limits = FlowLimits { max_exporters: 4, ..FlowLimits::default() };
    let mut d = FlowDecoder::new(limits);
    let r = v5_record([1, 1, 1, 1], [2, 2, 2, 2], 1, 40, 0, 0, (1, 2), 0, 17);
    for i in 0..5u8 {
        let from = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
        let (out, _) = decode(&mut d, from, &v5_datagram(1, 0, 0, &[r]));
        // v5 needs no state: still decoded, attributed to the real exporter.
        assert_eq!(out[0].exporter.addr, Some(from));
        decode(&mut d, from, &typical_v9(1, 0, true, &[]));
    }
    assert_eq!(d.stats().count(), 4);
    let un = d.unattributed_stats();
    assert_eq!((un.datagrams, un.records, un.templates_rejected, un.templates), (6, 3, 3, 0));
    assert_eq!(d.forget_idle(NOW), 0);
    assert_eq!(d.forget_idle(UnixNanos(NOW.0 + 1)), 4);
    assert_eq!(d.stats().count(), 0);
    assert_eq!(d.template_fields, 0);
}

#[test]
fn unreadable_headers_are_unattributed_errors() {
    let mut d = FlowDecoder::default();
    for bad in
        [&[][..], &[0, 5], &[0, 9, 0, 0, 0], &[0, 7, 0, 0], &[0, 10, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    {
        let (out, outcome) = decode(&mut d, EXPORTER, bad);
        assert!(out.is_empty());
        assert_eq!(outcome.errors, 1);
    }
    assert_eq!(d.unattributed_stats().decode_errors, 5);
    // IPFIX length field below the header.
    let (_, outcome) = decode(&mut d, EXPORTER, &[0, 10, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(outcome.first_error, Some(FlowError::LengthMismatch { announced: 4, available: 16 }));
}

// ---------- property tests ----------

fn valid_corpus() -> Vec<Vec<u8>> {
    let a = typical_record([10, 0, 0, 1], [192, 0, 2, 1], 1, 2, 17, 0, 100, 1, 0, 0);
    let v5 = v5_datagram(2, 0, 0, &[v5_record([1, 1, 1, 1], [2, 2, 2, 2], 1, 40, 0, 0, (1, 2), 0, 17); 2]);
    let options = v9_options_template(257, &[(2, 4)], &[(34, 4), (35, 1)]);
    let v9 = v9_datagram(
        0,
        1_700_000_000,
        1,
        0,
        &[
            set(0, &template(256, TYPICAL)),
            set(1, &options),
            set(257, &[0, 0, 0, 0, 0, 0, 0, 100, 1]),
            set(256, &[a.clone(), a.clone(), a].concat()),
        ],
    );
    let ipfix = ipfix_message(
        1_700_000_010,
        0,
        42,
        &[
            set(2, &ipfix_template_with_enterprise()),
            set(2, &template(300, &[(8, 4), (12, 4), (96, 0xFFFF), (1, 4)])),
            set(300, &[1, 1, 1, 1, 2, 2, 2, 2, 2, b'a', b'b', 0, 0, 0, 5]),
            set(400, &ipfix_record(1, 2, 3)),
        ],
    );
    vec![v5, v9, ipfix]
}

/// Every record consumes at least one byte of its datagram.
fn check_bounded(d: &FlowDecoder, datagram: &[u8], produced: usize) {
    assert!(produced <= datagram.len(), "{produced} records from {} bytes", datagram.len());
    for (_, s) in d.stats() {
        assert!(s.templates as usize <= d.limits().max_templates_per_exporter);
    }
    assert!(d.template_fields <= d.limits().max_total_template_fields);
}

fn total_errors(d: &FlowDecoder) -> u64 {
    d.stats().map(|(_, s)| s.decode_errors).sum::<u64>() + d.unattributed_stats().decode_errors
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(version in prop_oneof![Just(5u16), Just(9), Just(10), any::<u16>()],
                                mut bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&version.to_be_bytes());
        }
        let mut d = FlowDecoder::default();
        let mut out = Vec::new();
        let outcome = d.decode(EXPORTER, &bytes, NOW, &mut out);
        prop_assert_eq!(outcome.records, out.len());
        check_bounded(&d, &bytes, out.len());
        prop_assert_eq!(total_errors(&d), u64::from(outcome.errors));
        prop_assert_eq!(outcome.errors > 0, outcome.first_error.is_some());
    }

    #[test]
    fn mutated_valid_datagrams_never_panic(which in 0usize..3,
                                           flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
                                           len_patches in proptest::collection::vec((any::<usize>(), prop_oneof![Just(0u16), Just(1), Just(4), Just(0xFFFF), any::<u16>()]), 0..3),
                                           truncate in any::<Option<usize>>()) {
        let mut bytes = valid_corpus().swap_remove(which);
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        for (at, v) in len_patches {
            let i = (at % (bytes.len() / 2)) * 2;
            bytes[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        if let Some(t) = truncate {
            bytes.truncate(t % (bytes.len() + 1));
        }
        let mut d = FlowDecoder::default();
        let mut out = Vec::new();
        // Twice: the second pass runs against whatever templates the first one cached.
        let mut errors = 0;
        for _ in 0..2 {
            out.clear();
            errors += u64::from(d.decode(EXPORTER, &bytes, NOW, &mut out).errors);
            check_bounded(&d, &bytes, out.len());
        }
        prop_assert_eq!(total_errors(&d), errors);
        for r in &out {
            prop_assert!(r.start <= r.end);
            prop_assert!(r.sampling_rate >= 1);
        }
    }

    #[test]
    fn hostile_templates_are_bounded(ids in proptest::collection::vec(any::<u16>(), 1..300),
                                     lens in proptest::collection::vec(prop_oneof![Just(0u16), Just(1), Just(0xFFFF), Just(0xFFFE), any::<u16>()], 1..6),
                                     ipfix in any::<bool>(),
                                     data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let limits = FlowLimits { max_templates_per_exporter: 32, max_total_template_fields: 100, ..FlowLimits::default() };
        let mut d = FlowDecoder::new(limits);
        let fields: Vec<(u16, u16)> = lens.iter().enumerate().map(|(i, &l)| ([1u16, 2, 8, 12, 27, 152, 96][i % 7], l)).collect();
        let body: Vec<u8> = ids.iter().flat_map(|&id| template(id, &fields)).collect();
        let mut out = Vec::new();
        for id in ids.iter().take(20) {
            let dg = if ipfix {
                ipfix_message(0, 0, 0, &[set(2, &body), set(*id, &data)])
            } else {
                v9_datagram(0, 0, 0, 0, &[set(0, &body), set(*id, &data)])
            };
            out.clear();
            d.decode(EXPORTER, &dg, NOW, &mut out);
            check_bounded(&d, &dg, out.len());
        }
    }

    #[test]
    fn huge_counts_are_salvaged_not_trusted(count in any::<u16>(), records in 0usize..4) {
        let r = v5_record([1, 1, 1, 1], [2, 2, 2, 2], u32::MAX, u32::MAX, u32::MAX, 0, (1, 2), 0xff, 6);
        let dg = v5_datagram(count, u32::MAX, 0xFFFF, &vec![r; records]);
        let mut d = FlowDecoder::default();
        let mut out = Vec::new();
        let outcome = d.decode(EXPORTER, &dg, NOW, &mut out);
        prop_assert_eq!(out.len(), records.min(usize::from(count)));
        prop_assert_eq!(outcome.errors, u32::from(usize::from(count) > records));
    }
}
