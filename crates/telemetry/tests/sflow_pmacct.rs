//! A real sFlow v5 datagram exported by pmacct 1.7.7 (`pmacctd`, `sfprobe` plugin, sampling rate
//! 1, agent 127.0.0.1 sub-agent 1) replaying a six-packet capture: two TCP/IPv4 packets, a
//! UDP/IPv4 DNS query, an ICMP echo request, a UDP/IPv6 packet and an 802.1Q (VLAN 100)
//! TCP/IPv4 packet. Each sample holds an extended switch record and a raw Ethernet header
//! (truncated to 128 bytes, frame_length including a 4-byte FCS, stripped 4).

use std::net::{IpAddr, Ipv4Addr};

use rampart_telemetry::sflow::SflowDecoder;
use rampart_telemetry::{Exporter, IcmpTypeCode, RecordSource, UnixNanos};

const DATAGRAM: &[u8] = include_bytes!("data/sflow_pmacct_sfprobe.bin");

#[test]
fn pmacct_sfprobe_datagram_decodes_to_six_records() {
    let mut decoder = SflowDecoder::default();
    let mut out = Vec::new();
    let received = UnixNanos::from_secs(1_700_000_000);
    let summary = decoder.decode(IpAddr::V4(Ipv4Addr::LOCALHOST), DATAGRAM, received, &mut out);
    assert_eq!((summary.samples, summary.records, summary.errors), (6, 6, 0));

    let exporter = Exporter { addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), sub_id: 1 };
    for record in &out {
        assert_eq!(record.exporter, exporter);
        assert_eq!(record.source, RecordSource::Sflow);
        assert_eq!((record.start, record.end), (received, received));
        assert_eq!((record.packets, record.sampling_rate), (1, 1));
        // pmacct reports 0x3FFFFFFF (no interface) for both directions.
        assert_eq!((record.input_if, record.output_if), (None, None));
    }
    let summary: Vec<_> = out
        .iter()
        .map(|r| (r.src.to_string(), r.dst.to_string(), r.protocol, r.src_port, r.dst_port, r.bytes))
        .collect();
    assert_eq!(
        summary,
        [
            ("203.0.113.5".into(), "192.0.2.80".into(), 6, Some(51000), Some(80), 40),
            ("203.0.113.5".into(), "192.0.2.80".into(), 6, Some(51000), Some(80), 1440),
            ("198.51.100.9".into(), "192.0.2.53".into(), 17, Some(5353), Some(53), 128),
            ("198.51.100.9".into(), "192.0.2.1".into(), 1, None, None, 84),
            ("2001:db8::1".into(), "2001:db8::2".into(), 17, Some(40000), Some(443), 248),
            ("10.1.1.1".into(), "10.2.2.2".into(), 6, Some(1234), Some(22), 340),
        ]
    );
    assert_eq!(out[0].tcp_flags, 0x02);
    assert_eq!(out[3].icmp, Some(IcmpTypeCode { kind: 8, code: 0 }));
    assert_eq!(out[4].ttl, Some(9));

    let (_, stats) = decoder.stats().next().expect("the agent is tracked");
    assert_eq!((stats.datagrams, stats.records, stats.decode_errors, stats.sequence_gaps), (1, 6, 0, 0));
}
