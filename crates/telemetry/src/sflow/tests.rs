//! Tests of the parent module.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{
    GENERIC_INTERFACE_LEN, HEADER_ETHERNET, HEADER_IPV4, HEADER_IPV6, interface_compact, interface_expanded,
};
use super::*;
use crate::record::Fragment;

const AGENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const NOW: UnixNanos = UnixNanos(1_700_000_000_123_456_789);

fn be(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// `data_format` + `opaque<>`: a sample or a record.
fn framed(format: u32, body: &[u8]) -> Vec<u8> {
    let mut out = be(&[format, body.len() as u32]);
    out.extend_from_slice(body);
    out
}

fn datagram_with(agent: IpAddr, sub_agent: u32, sequence: u32, uptime: u32, samples: &[Vec<u8>]) -> Vec<u8> {
    let mut out = be(&[5]);
    match agent {
        IpAddr::V4(v4) => {
            out.extend(be(&[1]));
            out.extend(v4.octets());
        }
        IpAddr::V6(v6) => {
            out.extend(be(&[2]));
            out.extend(v6.octets());
        }
    }
    out.extend(be(&[sub_agent, sequence, uptime, samples.len() as u32]));
    samples.iter().for_each(|s| out.extend(s));
    out
}

fn datagram(sequence: u32, samples: &[Vec<u8>]) -> Vec<u8> {
    datagram_with(IpAddr::V4(AGENT), 3, sequence, 60_000, samples)
}

#[allow(clippy::too_many_arguments)]
fn flow_sample(
    sequence: u32,
    source_id: u32,
    rate: u32,
    drops: u32,
    input: u32,
    output: u32,
    records: &[Vec<u8>],
) -> Vec<u8> {
    let mut body = be(&[sequence, source_id, rate, 1_000, drops, input, output, records.len() as u32]);
    records.iter().for_each(|r| body.extend(r));
    framed(SAMPLE_FLOW, &body)
}

fn sampled_ipv4(
    len: u32,
    protocol: u32,
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u32, u32),
    flags: u32,
) -> Vec<u8> {
    let mut body = be(&[len, protocol]);
    body.extend(src);
    body.extend(dst);
    body.extend(be(&[ports.0, ports.1, flags, 0]));
    framed(FLOW_SAMPLED_IPV4, &body)
}

fn tcp_sample(sequence: u32) -> Vec<u8> {
    let record = sampled_ipv4(1500, 6, [10, 0, 0, 1], [10, 0, 0, 2], (443, 51000), 0x12);
    flow_sample(sequence, 7, 1000, 0, 7, 9, &[record])
}

fn decode_one(decoder: &mut SflowDecoder, datagram: &[u8]) -> (Vec<TrafficRecord>, DatagramSummary) {
    let mut out = Vec::new();
    let summary = decoder.decode(FROM, datagram, NOW, &mut out);
    (out, summary)
}

fn agent_stats(decoder: &SflowDecoder) -> ExporterStats {
    let exporter = Exporter { addr: Some(IpAddr::V4(AGENT)), sub_id: 3 };
    decoder.stats().find(|(e, _)| **e == exporter).map(|(_, s)| s.clone()).unwrap_or_default()
}

#[test]
fn flow_sample_with_sampled_ipv4_becomes_one_record() {
    let mut decoder = SflowDecoder::default();
    let (out, summary) = decode_one(&mut decoder, &datagram(1, &[tcp_sample(1)]));
    assert_eq!(summary, DatagramSummary { samples: 1, records: 1, errors: 0, first_error: None });
    let expected = TrafficRecord {
        start: NOW,
        end: NOW,
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        protocol: 6,
        src_port: Some(443),
        dst_port: Some(51000),
        tcp_flags: 0x12,
        icmp: None,
        fragment: Fragment::None,
        packets: 1,
        bytes: 1500,
        sampling_rate: 1000,
        ttl: None,
        packet_len: Some(1500),
        exporter: Exporter { addr: Some(IpAddr::V4(AGENT)), sub_id: 3 },
        input_if: Some(7),
        output_if: Some(9),
        source: RecordSource::Sflow,
    };
    assert_eq!(out, vec![expected]);
    let stats = agent_stats(&decoder);
    assert_eq!((stats.datagrams, stats.records, stats.decode_errors), (1, 1, 0));
}

#[test]
fn expanded_flow_sample_with_sampled_ipv6() {
    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut ip = be(&[80, 17]);
    ip.extend(src.octets());
    ip.extend(dst.octets());
    ip.extend(be(&[53, 40000, 0xFF, 0]));
    let record = framed(FLOW_SAMPLED_IPV6, &ip);
    // seq, source type/index, rate, pool, drops, input fmt/value, output fmt/value, records.
    let mut body = be(&[11, 0, 70_000, 0, 100, 0, 0, 70_000, 0, 80_000, 1]);
    body.extend(record);
    let v6_agent: IpAddr = "2001:db8:ffff::9".parse().unwrap();
    let bytes = datagram_with(v6_agent, 0, 1, 1, &[framed(SAMPLE_FLOW_EXPANDED, &body)]);
    let mut decoder = SflowDecoder::default();
    let (out, summary) = decode_one(&mut decoder, &bytes);
    assert_eq!(summary.errors, 0);
    assert_eq!(out.len(), 1);
    let r = out[0];
    assert_eq!((r.src, r.dst), (IpAddr::V6(src), IpAddr::V6(dst)));
    assert_eq!((r.protocol, r.src_port, r.dst_port, r.tcp_flags), (17, Some(53), Some(40000), 0));
    assert_eq!((r.bytes, r.packet_len, r.sampling_rate), (80, Some(80), 1));
    assert_eq!((r.input_if, r.output_if), (Some(70_000), Some(80_000)));
    assert_eq!(r.exporter, Exporter { addr: Some(v6_agent), sub_id: 0 });
}

#[test]
fn unknown_agent_address_type_falls_back_to_udp_source() {
    let mut bytes = be(&[5, 0, 0, 1, 0, 1]);
    bytes.extend(tcp_sample(1));
    let mut decoder = SflowDecoder::default();
    let (out, summary) = decode_one(&mut decoder, &bytes);
    assert_eq!((out.len(), summary.errors), (1, 0));
    assert_eq!(out[0].exporter, Exporter { addr: Some(FROM), sub_id: 0 });
}

#[test]
fn interface_encodings() {
    assert_eq!(interface_compact(5), Some(5));
    assert_eq!(interface_compact(0), None, "unknown");
    assert_eq!(interface_compact(0x3FFF_FFFF), None, "the device itself");
    assert_eq!(interface_compact(1 << 30 | 258), None, "discarded, reason 258");
    assert_eq!(interface_compact(2 << 30 | 4), None, "multiple interfaces");
    assert_eq!(interface_expanded(0, 0x3FFF_FFFF), Some(0x3FFF_FFFF));
    assert_eq!(interface_expanded(0, u32::MAX), None);
    assert_eq!(interface_expanded(1, 5), None);
}

#[test]
fn sampling_rate_zero_means_every_packet() {
    let record = sampled_ipv4(60, 1, [1, 1, 1, 1], [2, 2, 2, 2], (8, 0), 0);
    let bytes = datagram(1, &[flow_sample(1, 1, 0, 0, 1, 2, &[record])]);
    let (out, _) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(out[0].sampling_rate, 1);
    // ICMP: the sampled record's port fields are not ports.
    assert_eq!((out[0].src_port, out[0].dst_port, out[0].icmp), (None, None, None));
}

#[test]
fn several_samples_and_unknown_types_are_skipped_by_length() {
    let skipped = [
        framed(4096 << 12 | 1, &[0; 12]),                    // enterprise 4096 sample
        framed(SAMPLE_FLOW, &be(&[1, 1, 1, 0, 0, 1, 2, 0])), // flow sample, no records
    ];
    let ethernet = framed(2, &[0; 24]);
    let switch = framed(1001, &be(&[1, 0, 2, 0]));
    let flow =
        flow_sample(2, 1, 10, 0, 1, 2, &[ethernet, switch, sampled_ipv4(40, 6, [1; 4], [2; 4], (1, 2), 2)]);
    let bytes = datagram(1, &[skipped[0].clone(), skipped[1].clone(), flow, tcp_sample(3)]);
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!((summary.samples, summary.records, summary.errors), (4, 2, 0));
    assert_eq!(out[0].bytes, 40);
    assert_eq!(out[1].bytes, 1500);
}

/// A raw packet header record (format 1): protocol, frame_length, stripped, header padded to 4.
fn raw_header(protocol: u32, frame_length: u32, stripped: u32, header: &[u8]) -> Vec<u8> {
    let mut body = be(&[protocol, frame_length, stripped, header.len() as u32]);
    body.extend_from_slice(header);
    body.resize(body.len().next_multiple_of(4), 0);
    framed(FLOW_RAW_HEADER, &body)
}

/// IPv4 header (total length `total_len`, TTL 61) + TCP header (51000 -> 80, SYN|ACK).
fn ipv4_tcp(total_len: u16) -> Vec<u8> {
    let [hi, lo] = total_len.to_be_bytes();
    let mut ip = vec![0x45, 0, hi, lo, 0x12, 0x34, 0x40, 0, 61, 6, 0, 0, 203, 0, 113, 5, 192, 0, 2, 80];
    ip.extend([0xc7, 0x38, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
    ip
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb];
    frame.extend(ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn raw_ethernet_header_uses_the_ip_length_not_the_frame_length() {
    // A 1518-byte frame (FCS included, stripped 4) truncated to 64 bytes of header.
    let mut frame = ethernet(0x0800, &ipv4_tcp(1500));
    frame.resize(64, 0xab);
    let raw = raw_header(HEADER_ETHERNET, 1518, 4, &frame);
    let bytes = datagram(1, &[flow_sample(1, 7, 2048, 0, 7, 9, &[raw])]);
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(summary.errors, 0);
    let expected = TrafficRecord {
        start: NOW,
        end: NOW,
        src: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80)),
        protocol: 6,
        src_port: Some(51000),
        dst_port: Some(80),
        tcp_flags: 0x12,
        icmp: None,
        fragment: Fragment::None,
        packets: 1,
        bytes: 1500,
        sampling_rate: 2048,
        ttl: Some(61),
        packet_len: Some(1500),
        exporter: Exporter { addr: Some(IpAddr::V4(AGENT)), sub_id: 3 },
        input_if: Some(7),
        output_if: Some(9),
        source: RecordSource::Sflow,
    };
    assert_eq!(out, vec![expected]);
}

#[test]
fn raw_ethernet_header_with_vlan_tag() {
    let mut tagged = vec![0x00, 0x64, 0x08, 0x00]; // VLAN 100, then IPv4
    tagged.extend(ipv4_tcp(40));
    let raw = raw_header(HEADER_ETHERNET, 62, 4, &ethernet(0x8100, &tagged));
    let bytes = datagram(1, &[flow_sample(1, 7, 1, 0, 7, 9, &[raw])]);
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(summary.errors, 0);
    assert_eq!((out[0].bytes, out[0].dst_port), (40, Some(80)));
}

#[test]
fn raw_ipv4_and_ipv6_headers() {
    let raw_v4 = raw_header(HEADER_IPV4, 576, 0, &ipv4_tcp(576)[..34]);
    // IPv6, payload length 1000, UDP 5353 -> 53, hop limit 7.
    let mut v6 = vec![0x60, 0, 0, 0, 0x03, 0xe8, 17, 7];
    v6.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    v6.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    v6.extend([0x14, 0xe9, 0, 53, 0x03, 0xe8, 0, 0]);
    let raw_v6 = raw_header(HEADER_IPV6, 1040, 0, &v6);
    let samples = [flow_sample(1, 7, 1, 0, 7, 9, &[raw_v4]), flow_sample(2, 7, 1, 0, 7, 9, &[raw_v6])];
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &datagram(1, &samples));
    assert_eq!(summary.errors, 0);
    assert_eq!((out[0].bytes, out[0].src_port, out[0].ttl), (576, Some(51000), Some(61)));
    assert_eq!((out[1].protocol, out[1].bytes, out[1].dst_port, out[1].ttl), (17, 1040, Some(53), Some(7)));
    assert_eq!(out[1].src, IpAddr::V6("2001:db8::1".parse().unwrap()));
}

#[test]
fn raw_header_is_preferred_over_sampled_ip_and_padding_keeps_framing() {
    // 54-byte header (padded to 56) before and after a sampled IPv4 record.
    let frame = ethernet(0x0800, &ipv4_tcp(900));
    assert_eq!(frame.len() % 4, 2);
    let ip = sampled_ipv4(64, 17, [1; 4], [2; 4], (1, 2), 0);
    let switch = framed(1001, &be(&[1, 0, 2, 0]));
    let samples = [
        flow_sample(1, 1, 1, 0, 1, 2, &[raw_header(1, 918, 4, &frame), ip.clone(), switch.clone()]),
        flow_sample(2, 1, 1, 0, 1, 2, &[ip, switch, raw_header(1, 918, 4, &frame)]),
    ];
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &datagram(1, &samples));
    assert_eq!(summary.errors, 0);
    assert_eq!(out.iter().map(|r| (r.bytes, r.protocol)).collect::<Vec<_>>(), [(900, 6), (900, 6)]);
}

#[test]
fn non_ip_raw_header_is_no_record_and_no_error() {
    let arp = raw_header(HEADER_ETHERNET, 64, 4, &ethernet(0x0806, &[0; 28]));
    let ip = sampled_ipv4(64, 17, [1; 4], [2; 4], (1, 2), 0);
    let samples = [
        flow_sample(1, 1, 1, 0, 1, 2, std::slice::from_ref(&arp)),
        flow_sample(2, 1, 1, 0, 1, 2, &[arp, ip]),
    ];
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &datagram(1, &samples));
    assert_eq!(summary.errors, 0);
    assert_eq!(out.len(), 1, "the second sample falls back to its sampled IPv4 record");
    assert_eq!(out[0].bytes, 64);
}

#[test]
fn malformed_raw_header_is_an_error_with_fallback() {
    let mut bad = ipv4_tcp(100);
    bad[0] = 0x35; // IP version 3
    let raw = raw_header(HEADER_IPV4, 100, 0, &bad);
    let ip = sampled_ipv4(64, 17, [1; 4], [2; 4], (1, 2), 0);
    let samples = [
        flow_sample(1, 1, 1, 0, 1, 2, std::slice::from_ref(&raw)),
        flow_sample(2, 1, 1, 0, 1, 2, &[raw, ip]),
    ];
    let mut decoder = SflowDecoder::default();
    let (out, summary) = decode_one(&mut decoder, &datagram(1, &samples));
    assert_eq!(out.len(), 1);
    assert_eq!(summary.errors, 2);
    assert!(matches!(summary.first_error, Some(SflowError::Packet(_))));
    assert_eq!(agent_stats(&decoder).decode_errors, 2);
}

#[test]
fn raw_header_with_unsupported_protocol_falls_back_to_sampled_ipv4() {
    // header_protocol 7 (PPP) is not decoded.
    let mut raw = be(&[7, 64, 0, 4]);
    raw.extend([0xff, 0x03, 0x00, 0x21]);
    let raw = framed(FLOW_RAW_HEADER, &raw);
    let ip = sampled_ipv4(64, 17, [1; 4], [2; 4], (1, 2), 0);
    let bytes = datagram(1, &[flow_sample(1, 1, 1, 0, 1, 2, &[raw, ip])]);
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes, 64);
    assert_eq!(summary.first_error, Some(SflowError::UnsupportedHeaderProtocol(7)));
}

#[test]
fn raw_header_length_overrun_is_an_error() {
    let raw = framed(FLOW_RAW_HEADER, &be(&[1, 64, 4, 100]));
    let bytes = datagram(1, &[flow_sample(1, 1, 1, 0, 1, 2, &[raw])]);
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert!(out.is_empty());
    assert_eq!(summary.first_error, Some(SflowError::HeaderOverrun(100)));
}

#[test]
fn bad_headers_are_counted_as_unattributed() {
    let mut decoder = SflowDecoder::default();
    let cases: [(Vec<u8>, SflowError); 4] = [
        (vec![], SflowError::TruncatedHeader),
        (be(&[4, 1, 0]), SflowError::UnsupportedVersion(4)),
        (be(&[5, 9, 0, 0]), SflowError::UnknownAddressType(9)),
        (be(&[5, 1, 0x0a00_0001, 0, 1]), SflowError::TruncatedHeader),
    ];
    for (bytes, error) in cases {
        let (out, summary) = decode_one(&mut decoder, &bytes);
        assert!(out.is_empty());
        assert_eq!(summary.first_error, Some(error));
    }
    assert_eq!(decoder.unattributed_stats().datagrams, 4);
    assert_eq!(decoder.unattributed_stats().decode_errors, 4);
    assert_eq!(decoder.stats().count(), 0);
}

#[test]
fn sequence_gaps_count_lost_datagrams() {
    let mut decoder = SflowDecoder::default();
    for sequence in [1, 2, 5, 6] {
        decode_one(&mut decoder, &datagram(sequence, &[]));
    }
    assert_eq!(agent_stats(&decoder).sequence_gaps, 2);
    // Late (reordered) and duplicate datagrams lose nothing.
    decode_one(&mut decoder, &datagram(4, &[]));
    decode_one(&mut decoder, &datagram(6, &[]));
    decode_one(&mut decoder, &datagram(7, &[]));
    assert_eq!(agent_stats(&decoder).sequence_gaps, 2);
    assert_eq!(agent_stats(&decoder).datagrams, 7);
}

#[test]
fn sequence_wraps_around_without_a_gap() {
    let mut decoder = SflowDecoder::default();
    for sequence in [u32::MAX - 1, u32::MAX, 0, 1, 3] {
        decode_one(&mut decoder, &datagram(sequence, &[]));
    }
    assert_eq!(agent_stats(&decoder).sequence_gaps, 1);
}

#[test]
fn agent_restart_is_not_a_huge_gap() {
    let mut decoder = SflowDecoder::default();
    let at = |sequence, uptime| datagram_with(IpAddr::V4(AGENT), 3, sequence, uptime, &[]);
    decode_one(&mut decoder, &at(1_000_000, 86_400_000));
    // Restart: uptime and sequence both start over.
    decode_one(&mut decoder, &at(1, 2_000));
    decode_one(&mut decoder, &at(3, 3_000));
    assert_eq!(agent_stats(&decoder).sequence_gaps, 1);
    // Restart with an agent that always reports uptime 0: sequence far behind.
    decode_one(&mut decoder, &at(50_000, 0));
    decode_one(&mut decoder, &at(1, 0));
    decode_one(&mut decoder, &at(2, 0));
    // Uptime wraps around after 49.7 days while the sequence continues.
    decode_one(&mut decoder, &at(3, u32::MAX - 5));
    decode_one(&mut decoder, &at(4, 100));
    // An implausible forward jump resynchronises.
    decode_one(&mut decoder, &at(2_000_000_000, 200));
    decode_one(&mut decoder, &at(2_000_000_001, 300));
    // Only 2..=49_999 lost between 3 and 50_000 add up, besides the first gap.
    assert_eq!(agent_stats(&decoder).sequence_gaps, 1 + 49_996);
}

#[test]
fn sampler_drops_accumulate_as_deltas_per_source() {
    let mut decoder = SflowDecoder::default();
    let sample = |sequence, source, drops| {
        let record = sampled_ipv4(40, 6, [1; 4], [2; 4], (1, 2), 0);
        flow_sample(sequence, source, 10, drops, 1, 2, &[record])
    };
    // First sight is a baseline; then deltas; per source.
    decode_one(&mut decoder, &datagram(1, &[sample(1, 1, 100), sample(1, 2, 7)]));
    decode_one(&mut decoder, &datagram(2, &[sample(2, 1, 105), sample(2, 2, 7)]));
    decode_one(&mut decoder, &datagram(3, &[sample(3, 1, 105), sample(3, 2, 10)]));
    assert_eq!(agent_stats(&decoder).drops, 8);
    // A late sample is ignored; a counter reset counts from zero.
    decode_one(&mut decoder, &datagram(4, &[sample(1, 1, 50), sample(4, 2, 4)]));
    assert_eq!(agent_stats(&decoder).drops, 12);
    // After an agent restart, known counters count from zero again; new ones start a baseline.
    let restart = datagram_with(IpAddr::V4(AGENT), 3, 1, 1_000, &[sample(1, 1, 3), sample(1, 9, 2)]);
    decode_one(&mut decoder, &restart);
    assert_eq!(agent_stats(&decoder).drops, 15);
}

fn generic_counters(if_index: u32, in_octets: u64) -> Vec<u8> {
    let mut body = be(&[if_index, 6]);
    body.extend(10_000_000_000u64.to_be_bytes());
    body.extend(be(&[1, 3]));
    body.extend(in_octets.to_be_bytes());
    body.extend(be(&[10, 11, 12, 13, 14, 15]));
    body.extend(2_000u64.to_be_bytes());
    body.extend(be(&[20, 21, 22, 23, 24, 0]));
    assert_eq!(body.len(), GENERIC_INTERFACE_LEN);
    framed(COUNTERS_GENERIC_INTERFACE, &body)
}

fn counter_sample(sequence: u32, records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = be(&[sequence, 5, records.len() as u32]);
    records.iter().for_each(|r| body.extend(r));
    framed(SAMPLE_COUNTERS, &body)
}

#[test]
fn counter_samples_keep_the_latest_interface_counters() {
    let mut decoder = SflowDecoder::default();
    let ethernet_counters = framed(2, &[0; 52]);
    let first = counter_sample(1, &[generic_counters(5, 1_000), ethernet_counters]);
    let mut expanded_body = be(&[1, 0, 6, 1]);
    expanded_body.extend(generic_counters(6, 7));
    let expanded = framed(SAMPLE_COUNTERS_EXPANDED, &expanded_body);
    decode_one(&mut decoder, &datagram(1, &[first, expanded, tcp_sample(1)]));
    let (out, summary) =
        decode_one(&mut decoder, &datagram(2, &[counter_sample(2, &[generic_counters(5, 9_000)])]));
    assert!(out.is_empty());
    assert_eq!(summary.errors, 0);
    let mut counters: Vec<_> = decoder.interface_counters().map(|(e, c)| (*e, *c)).collect();
    counters.sort_by_key(|(_, c)| c.if_index);
    assert_eq!(counters.len(), 2);
    let (exporter, c) = counters[0];
    assert_eq!(exporter, Exporter { addr: Some(IpAddr::V4(AGENT)), sub_id: 3 });
    let expected = InterfaceCounters {
        if_index: 5,
        if_type: 6,
        if_speed: 10_000_000_000,
        if_direction: 1,
        if_status: 3,
        in_octets: 9_000,
        in_ucast_pkts: 10,
        in_multicast_pkts: 11,
        in_broadcast_pkts: 12,
        in_discards: 13,
        in_errors: 14,
        in_unknown_protos: 15,
        out_octets: 2_000,
        out_ucast_pkts: 20,
        out_multicast_pkts: 21,
        out_broadcast_pkts: 22,
        out_discards: 23,
        out_errors: 24,
        promiscuous_mode: 0,
        sample_sequence: 2,
        agent_uptime_ms: 60_000,
        received: NOW,
    };
    assert_eq!(c, expected);
    assert_eq!(counters[1].1.in_octets, 7);
}

#[test]
fn interface_counters_are_bounded() {
    let limits = SflowLimits { max_interface_counters: 2, ..SflowLimits::default() };
    let mut decoder = SflowDecoder::new(limits);
    let records: Vec<_> = (1..=4).map(|i| generic_counters(i, 1)).collect();
    decode_one(&mut decoder, &datagram(1, &[counter_sample(1, &records)]));
    decode_one(&mut decoder, &datagram(2, &[counter_sample(2, &records[..1])]));
    assert_eq!(decoder.interface_counters().count(), 2);
    assert_eq!(decoder.rejections().interface_counters, 2);
    let exporter = Exporter { addr: Some(IpAddr::V4(AGENT)), sub_id: 3 };
    assert!(decoder.forget(&exporter).is_some());
    decode_one(&mut decoder, &datagram(1, &[counter_sample(1, &records)]));
    assert_eq!(decoder.interface_counters().count(), 2);
}

#[test]
fn short_counter_record_is_an_error() {
    let bytes = datagram(1, &[counter_sample(1, &[framed(1, &[0; 84])])]);
    let (_, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(summary.first_error, Some(SflowError::TruncatedRecord));
}

#[test]
fn lying_sample_count_salvages_what_is_there() {
    let mut bytes = datagram(1, &[tcp_sample(1), tcp_sample(2)]);
    bytes[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut decoder = SflowDecoder::default();
    let (out, summary) = decode_one(&mut decoder, &bytes);
    assert_eq!(out.len(), 2);
    // The data runs out long before the sample limit.
    assert_eq!(summary.first_error, Some(SflowError::MissingSamples { claimed: u32::MAX, found: 2 }));

    bytes[24..28].copy_from_slice(&1000u32.to_be_bytes());
    let (out, summary) = decode_one(&mut decoder, &bytes);
    assert_eq!(out.len(), 2);
    assert_eq!(summary.first_error, Some(SflowError::MissingSamples { claimed: 1000, found: 2 }));

    bytes[24..28].copy_from_slice(&1u32.to_be_bytes());
    let (out, summary) = decode_one(&mut decoder, &bytes);
    assert_eq!(out.len(), 1);
    assert!(matches!(summary.first_error, Some(SflowError::TrailingBytes(_))));
    assert_eq!(agent_stats(&decoder).decode_errors, 3);
}

#[test]
fn corrupt_later_sample_keeps_earlier_ones() {
    let good = tcp_sample(1);
    let offset = 28 + good.len();
    let base = datagram(1, &[good, tcp_sample(2)]);
    let cases = [
        (0xFFFF_FFFCu32, SflowError::LengthOverrun(0xFFFF_FFFC)),
        (1_000, SflowError::LengthOverrun(1_000)),
        (6, SflowError::MisalignedLength(6)),
        (0, SflowError::TruncatedSample),
    ];
    for (len, error) in cases {
        let mut bytes = base.clone();
        bytes[offset + 4..offset + 8].copy_from_slice(&len.to_be_bytes());
        let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
        assert_eq!(out.len(), 1, "length {len}");
        assert_eq!(summary.first_error, Some(error));
    }
    // Cut inside the second sample's framing.
    let (out, summary) = decode_one(&mut SflowDecoder::default(), &base[..offset + 6]);
    assert_eq!(out.len(), 1);
    assert_eq!(summary.first_error, Some(SflowError::TruncatedFraming));
}

#[test]
fn lying_record_counts_and_lengths() {
    let record = sampled_ipv4(40, 6, [1; 4], [2; 4], (1, 2), 0);
    let sample = flow_sample(1, 1, 1, 0, 1, 2, std::slice::from_ref(&record));
    // The record count is the last word before the record (offset 8 + 28 in the sample).
    let count_at = 28 + 8 + 28;
    let mut bytes = datagram(1, &[sample]);
    for (count, error) in [
        (u32::MAX, SflowError::MissingRecords { claimed: u32::MAX, found: 1 }),
        (2, SflowError::MissingRecords { claimed: 2, found: 1 }),
    ] {
        bytes[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
        assert_eq!(out.len(), 1, "the framed record is salvaged");
        assert_eq!(summary.first_error, Some(error));
    }
    // A record length of 0 for a sampled IPv4 record, and a record shorter than its fields.
    for len in [0u32, 28] {
        let mut short = be(&[FLOW_SAMPLED_IPV4, len]);
        short.extend(&record[8..8 + len as usize]);
        let bytes = datagram(1, &[flow_sample(1, 1, 1, 0, 1, 2, &[short])]);
        let (out, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
        assert!(out.is_empty());
        assert_eq!(summary.first_error, Some(SflowError::TruncatedRecord));
    }
    // A protocol number above 255.
    let bad = sampled_ipv4(40, 300, [1; 4], [2; 4], (1, 2), 0);
    let bytes = datagram(1, &[flow_sample(1, 1, 1, 0, 1, 2, &[bad])]);
    let (_, summary) = decode_one(&mut SflowDecoder::default(), &bytes);
    assert_eq!(summary.first_error, Some(SflowError::BadIpProtocol(300)));
}

#[test]
fn sample_and_record_limits_apply() {
    let limits =
        SflowLimits { max_samples_per_datagram: 2, max_records_per_sample: 1, ..SflowLimits::default() };
    let mut decoder = SflowDecoder::new(limits);
    let (out, summary) =
        decode_one(&mut decoder, &datagram(1, &[tcp_sample(1), tcp_sample(2), tcp_sample(3)]));
    assert_eq!(out.len(), 2);
    assert_eq!(summary.first_error, Some(SflowError::TooManySamples(3)));
    let records = [framed(1001, &[0; 16]), sampled_ipv4(40, 6, [1; 4], [2; 4], (1, 2), 0)];
    let (out, summary) = decode_one(&mut decoder, &datagram(2, &[flow_sample(1, 1, 1, 0, 1, 2, &records)]));
    assert!(out.is_empty());
    assert_eq!(summary.first_error, Some(SflowError::TooManyRecords(2)));
}

#[test]
fn agents_beyond_the_cap_are_decoded_but_not_tracked() {
    let limits = SflowLimits { max_agents: 2, ..SflowLimits::default() };
    let mut decoder = SflowDecoder::new(limits);
    for sub_agent in 0..5 {
        let bytes = datagram_with(IpAddr::V4(AGENT), sub_agent, 1, 1, &[tcp_sample(1)]);
        let (out, _) = decode_one(&mut decoder, &bytes);
        assert_eq!(out[0].exporter.sub_id, sub_agent);
    }
    assert_eq!(decoder.stats().count(), 2);
    assert_eq!(decoder.rejections().agent_datagrams, 3);
    assert_eq!(decoder.unattributed_stats().datagrams, 3);
    assert_eq!(decoder.unattributed_stats().records, 3);
}

#[test]
fn data_sources_are_bounded() {
    let limits = SflowLimits { max_sources_per_agent: 1, ..SflowLimits::default() };
    let mut decoder = SflowDecoder::new(limits);
    let (out, _) =
        decode_one(&mut decoder, &datagram(1, &[flow_sample(1, 1, 1, 5, 1, 2, &[]), tcp_sample(1)]));
    assert_eq!(out.len(), 1);
    assert_eq!(decoder.rejections().source_samples, 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn valid_datagram() -> Vec<u8> {
        let mut raw = be(&[HEADER_IPV4, 64, 0, 20]);
        raw.extend([0x45, 0, 0, 64, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let raw = framed(FLOW_RAW_HEADER, &raw);
        let ip = sampled_ipv4(64, 17, [1; 4], [2; 4], (1, 2), 0);
        datagram(
            9,
            &[
                tcp_sample(1),
                counter_sample(1, &[generic_counters(1, 2)]),
                flow_sample(2, 1, 1, 0, 1, 2, &[raw, ip]),
                tcp_sample(3),
            ],
        )
    }

    #[test]
    fn valid_datagram_is_clean() {
        let mut decoder = SflowDecoder::default();
        let (out, summary) = decode_one(&mut decoder, &valid_datagram());
        assert_eq!((out.len(), summary.samples, summary.errors), (3, 4, 0));
        assert_eq!(decoder.interface_counters().count(), 1);
    }

    /// Offsets of every count and length field in `valid_datagram`.
    fn framing_offsets(bytes: &[u8]) -> Vec<usize> {
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut offsets = vec![24];
        let mut at = 28;
        while at < bytes.len() {
            let (format, len) = (word(at), word(at + 4));
            offsets.push(at + 4);
            let count_at = at + 8 + if format == SAMPLE_FLOW as usize { 28 } else { 8 };
            offsets.push(count_at);
            let mut record = count_at + 4;
            for _ in 0..word(count_at) {
                offsets.push(record + 4);
                record += 8 + word(record + 4);
            }
            at += 8 + len;
        }
        offsets
    }

    /// A record needs at least a sample frame (8), a flow sample header (32), a record frame
    /// (8) and a sampled IPv4 record (32) or an IPv4 raw header (16 + 20).
    fn check_bounds(datagram: &[u8], out: &[TrafficRecord], summary: &DatagramSummary) {
        assert!(out.len() <= datagram.len() / 80);
        assert_eq!(out.len(), summary.records as usize);
        assert!(summary.samples <= SflowLimits::default().max_samples_per_datagram);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut decoder = SflowDecoder::default();
            let mut out = Vec::new();
            let summary = decoder.decode(FROM, &bytes, NOW, &mut out);
            check_bounds(&bytes, &out, &summary);
        }

        #[test]
        fn random_bytes_behind_a_valid_header_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            count in any::<u32>(),
        ) {
            let mut bytes = be(&[5, 1, 0x0a00_0001, 0, 1, 1, count]);
            bytes.extend(body);
            let mut decoder = SflowDecoder::default();
            let mut out = Vec::new();
            let summary = decoder.decode(FROM, &bytes, NOW, &mut out);
            check_bounds(&bytes, &out, &summary);
        }

        #[test]
        fn truncation_is_counted(cut in 0usize..1000) {
            let full = valid_datagram();
            let cut = cut % full.len();
            let mut decoder = SflowDecoder::default();
            let mut out = Vec::new();
            let summary = decoder.decode(FROM, &full[..cut], NOW, &mut out);
            check_bounds(&full[..cut], &out, &summary);
            prop_assert!(summary.errors >= 1);
            let errors: u64 = decoder.stats().map(|(_, s)| s.decode_errors).sum::<u64>()
                + decoder.unattributed_stats().decode_errors;
            prop_assert_eq!(errors, u64::from(summary.errors));
        }

        #[test]
        fn bit_flips_never_panic(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..8)) {
            let mut bytes = valid_datagram();
            let len = bytes.len();
            for (at, bit) in flips {
                bytes[at % len] ^= 1 << bit;
            }
            let mut decoder = SflowDecoder::default();
            let mut out = Vec::new();
            let summary = decoder.decode(FROM, &bytes, NOW, &mut out);
            check_bounds(&bytes, &out, &summary);
            prop_assert!(out.len() <= 4);
        }

        #[test]
        fn framing_fields_set_to_extremes_are_counted(
            field in any::<prop::sample::Index>(),
            value in prop_oneof![Just(0u32), Just(3), Just(0x8000_0000), Just(u32::MAX)],
        ) {
            let mut bytes = valid_datagram();
            let offsets = framing_offsets(&bytes);
            let at = offsets[field.index(offsets.len())];
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
            let mut decoder = SflowDecoder::default();
            let mut out = Vec::new();
            let summary = decoder.decode(FROM, &bytes, NOW, &mut out);
            check_bounds(&bytes, &out, &summary);
            prop_assert!(out.len() <= 4);
            prop_assert!(summary.errors >= 1, "value {value:#x} at {at}");
            prop_assert_eq!(agent_stats(&decoder).decode_errors, u64::from(summary.errors));
        }

        #[test]
        fn state_stays_bounded_under_many_agents(subs in proptest::collection::vec(any::<u32>(), 1..64)) {
            let limits = SflowLimits { max_agents: 8, max_interface_counters: 4, ..SflowLimits::default() };
            let mut decoder = SflowDecoder::new(limits);
            for (i, sub) in subs.iter().enumerate() {
                let bytes = datagram_with(
                    IpAddr::V4(AGENT), *sub, i as u32, 1,
                    &[counter_sample(1, &[generic_counters(*sub, 1)]), tcp_sample(i as u32)],
                );
                decoder.decode(FROM, &bytes, NOW, &mut Vec::new());
            }
            prop_assert!(decoder.stats().count() <= 8);
            prop_assert!(decoder.interface_counters().count() <= 4);
            let datagrams: u64 = decoder.stats().map(|(_, s)| s.datagrams).sum::<u64>()
                + decoder.unattributed_stats().datagrams;
            prop_assert_eq!(datagrams, subs.len() as u64);
        }
    }
}
