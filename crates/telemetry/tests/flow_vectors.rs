//! Real exporter output: softflowd 1.1.0 run over `data/flow_input.pcap` (see
//! `data/make_flow_vectors.py`), its datagrams stored as pcaps. The decoded totals must equal
//! what the input capture holds (and what Wireshark's dissector reads), with no errors, gaps or
//! unknown templates.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use rampart_telemetry::flow::{FlowDecoder, FlowLimits};
use rampart_telemetry::{RecordSource, TrafficRecord, UnixNanos};

const SOFTFLOWD: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// UDP payloads of a little-endian LINKTYPE_RAW pcap of IPv4/UDP packets.
fn datagrams(name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(data_dir().join(name)).expect("vector file");
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let packet = &bytes[at + 16..at + 16 + caplen];
        out.push(packet[28..].to_vec()); // IPv4 (20) + UDP (8)
        at += 16 + caplen;
    }
    out
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir().join("flow_vectors.json")).expect("flow_vectors.json");
    serde_json::from_str(&text).expect("json")
}

struct Decoded {
    records: Vec<TrafficRecord>,
    decoder: FlowDecoder,
}

fn decode_vector(name: &str) -> Decoded {
    let mut decoder = FlowDecoder::new(FlowLimits::default());
    let mut records = Vec::new();
    for datagram in datagrams(&format!("{name}.pcap")) {
        let outcome = decoder.decode(SOFTFLOWD, &datagram, UnixNanos(0), &mut records);
        assert_eq!(outcome.errors, 0, "{name}: {:?}", outcome.first_error);
    }
    Decoded { records, decoder }
}

/// `tolerance_ns`: how far record times may stray from the capture's (NetFlow v9 headers carry
/// whole seconds only).
fn check(name: &str, source: RecordSource, tolerance_ns: u64) -> Decoded {
    let expected = &expected()[name];
    let decoded = decode_vector(name);
    let records = &decoded.records;
    let total = |f: fn(&TrafficRecord) -> u64| records.iter().map(f).sum::<u64>();
    assert_eq!(records.len() as u64, expected["tshark"]["records"].as_u64().unwrap(), "{name} records");
    assert_eq!(total(|r| r.packets), expected["tshark"]["packets"].as_u64().unwrap(), "{name} packets");
    assert_eq!(total(|r| r.bytes), expected["tshark"]["bytes"].as_u64().unwrap(), "{name} bytes");
    assert!(records.iter().all(|r| r.source == source));

    let first = expected["first_ns"].as_u64().unwrap();
    let last = expected["last_ns"].as_u64().unwrap();
    let min_start = records.iter().map(|r| r.start.0).min().unwrap();
    let max_end = records.iter().map(|r| r.end.0).max().unwrap();
    assert!(min_start.abs_diff(first) <= tolerance_ns, "{name}: first {min_start} vs {first}");
    assert!(max_end.abs_diff(last) <= tolerance_ns, "{name}: last {max_end} vs {last}");
    for r in records {
        assert!(r.start <= r.end);
        assert!(r.start.0 + tolerance_ns >= first && r.end.0 <= last + tolerance_ns, "{name}: {r:?}");
    }

    let stats: Vec<_> = decoded.decoder.stats().map(|(e, s)| (*e, s.clone())).collect();
    assert_eq!(stats.len(), 1, "{name}: one exporter");
    let (exporter, s) = &stats[0];
    assert_eq!(exporter.addr, Some(SOFTFLOWD));
    assert_eq!(s.datagrams, expected["datagrams"].as_u64().unwrap());
    assert_eq!(s.records, records.len() as u64);
    assert_eq!((s.decode_errors, s.sequence_gaps, s.unknown_template_records), (0, 0, 0), "{name}: {s:?}");
    decoded
}

fn the_tcp_flow(records: &[TrafficRecord]) -> &TrafficRecord {
    records
        .iter()
        .find(|r| r.src == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)) && r.protocol == 6)
        .expect("10.0.0.1 -> 192.0.2.10 TCP")
}

#[test]
fn softflowd_v5() {
    let decoded = check("v5", RecordSource::NetflowV5, 0);
    let tcp = the_tcp_flow(&decoded.records);
    assert_eq!((tcp.src_port, tcp.dst_port, tcp.packets, tcp.bytes), (Some(40000), Some(80), 3, 320));
    assert_eq!(tcp.tcp_flags, 0x02 | 0x18 | 0x11);
    assert_eq!(
        (tcp.start, tcp.end),
        (UnixNanos(1_700_000_000_250_000_000), UnixNanos(1_700_000_002_250_000_000))
    );
    let icmp = decoded.records.iter().find(|r| r.protocol == 1).expect("icmp");
    assert_eq!((icmp.packets, icmp.icmp.map(|i| (i.kind, i.code))), (4, Some((8, 0))));
}

#[test]
fn softflowd_v9() {
    let decoded = check("v9", RecordSource::NetflowV9, 1_000_000_000);
    let tcp = the_tcp_flow(&decoded.records);
    assert_eq!((tcp.packets, tcp.bytes, tcp.tcp_flags), (3, 320, 0x1b));
    // Flow duration is exact even though the export time is whole seconds.
    assert_eq!(tcp.end.0 - tcp.start.0, 2_000_000_000);
    assert!(decoded.records.iter().any(|r| r.src.is_ipv6() && r.dst_port == Some(123) && r.packets == 3));
    let icmp = decoded.records.iter().find(|r| r.protocol == 1).expect("icmp");
    assert_eq!(icmp.icmp.map(|i| (i.kind, i.code)), Some((8, 0)));
}

#[test]
fn softflowd_ipfix_sysuptime() {
    let decoded = check("ipfix", RecordSource::Ipfix, 0);
    let tcp = the_tcp_flow(&decoded.records);
    assert_eq!(
        (tcp.start, tcp.end),
        (UnixNanos(1_700_000_000_250_000_000), UnixNanos(1_700_000_002_250_000_000))
    );
    assert!(decoded.records.iter().all(|r| r.sampling_rate == 1));
}

#[test]
fn softflowd_ipfix_milliseconds() {
    let decoded = check("ipfix_ms", RecordSource::Ipfix, 0);
    let tcp = the_tcp_flow(&decoded.records);
    assert_eq!(
        (tcp.start, tcp.end),
        (UnixNanos(1_700_000_000_250_000_000), UnixNanos(1_700_000_002_250_000_000))
    );
}

#[test]
fn softflowd_v9_sampled() {
    let decoded = check("v9_sampled", RecordSource::NetflowV9, 1_000_000_000);
    assert!(decoded.records.iter().all(|r| r.sampling_rate == 5));
}

/// pmacctd's nfprobe: its export headers carry the wall clock of the run, so record times are
/// not checked against the capture (IPFIX flowStart/EndMilliseconds are, see below).
fn check_pmacct(name: &str, source: RecordSource) -> Decoded {
    let expected = &expected()[name];
    let decoded = decode_vector(name);
    let records = &decoded.records;
    assert_eq!(records.len() as u64, expected["tshark"]["records"].as_u64().unwrap(), "{name} records");
    assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), expected["packets"].as_u64().unwrap());
    assert_eq!(records.iter().map(|r| r.bytes).sum::<u64>(), expected["bytes"].as_u64().unwrap());
    assert!(records.iter().all(|r| r.source == source && r.start <= r.end));
    let stats: Vec<_> = decoded.decoder.stats().map(|(_, s)| s.clone()).collect();
    assert_eq!(stats.len(), 1, "{name}: one exporter");
    let s = &stats[0];
    assert_eq!(s.datagrams, expected["datagrams"].as_u64().unwrap());
    assert_eq!((s.decode_errors, s.sequence_gaps, s.unknown_template_records), (0, 0, 0), "{name}: {s:?}");
    let tcp = the_tcp_flow(records);
    assert_eq!((tcp.src_port, tcp.dst_port, tcp.packets, tcp.bytes), (Some(40000), Some(80), 3, 320));
    decoded
}

#[test]
fn pmacct_v9() {
    check_pmacct("pmacct_v9", RecordSource::NetflowV9);
}

#[test]
fn pmacct_ipfix() {
    let decoded = check_pmacct("pmacct_ipfix", RecordSource::Ipfix);
    let tcp = the_tcp_flow(&decoded.records);
    // flowStart/EndMilliseconds come from the capture.
    assert_eq!(
        (tcp.start, tcp.end),
        (UnixNanos(1_700_000_000_250_000_000), UnixNanos(1_700_000_002_250_000_000))
    );
    assert_eq!(tcp.tcp_flags, 0x1b);
}

#[test]
fn softflowd_ipfix_biflows() {
    // `-b`: one record per connection, the reverse direction in RFC 5103 reverse elements
    // (enterprise 29305). Each direction becomes its own record.
    let expected = &expected()["ipfix_bi"];
    let decoded = decode_vector("ipfix_bi");
    let records = &decoded.records;
    assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), expected["packets"].as_u64().unwrap());
    assert_eq!(records.iter().map(|r| r.bytes).sum::<u64>(), expected["bytes"].as_u64().unwrap());
    let s = decoded.decoder.stats().next().unwrap().1.clone();
    assert_eq!((s.decode_errors, s.sequence_gaps, s.unknown_template_records), (0, 0, 0), "{s:?}");
    let tcp = the_tcp_flow(records);
    assert_eq!((tcp.packets, tcp.bytes, tcp.tcp_flags), (3, 320, 0x1b));
    let reply = records
        .iter()
        .find(|r| r.src == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)) && r.protocol == 6)
        .expect("reverse direction");
    assert_eq!(
        (reply.src_port, reply.dst_port, reply.packets, reply.bytes),
        (Some(80), Some(40000), 2, 1080)
    );
    assert_eq!(reply.tcp_flags, 0x12 | 0x18);
}
