//! NetFlow v5 / v9 / IPFIX decoding of hostile datagrams: one long-lived decoder (templates and
//! sequence state persist across datagrams, as in a collector), the input split into up to
//! four datagrams from two exporter addresses, under tight limits so caps are exercised too.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rampart_telemetry::flow::{FlowDecoder, FlowLimits};
use rampart_telemetry::UnixNanos;

fuzz_target!(|data: &[u8]| {
    let limits = FlowLimits {
        max_exporters: 3,
        max_templates_per_exporter: 8,
        max_template_fields: 32,
        max_total_template_fields: 128,
        max_samplers_per_exporter: 4,
        max_total_counter_flows: 64,
    };
    let mut decoder = FlowDecoder::new(limits);
    let exporters = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        decoder.set_sampling(exporters[1], 100);
    }
    let mut out = Vec::new();
    // First byte: where to split (four datagrams at most), the rest: the datagrams.
    let (split, rest) = match data.split_first() {
        Some((&b, rest)) => (usize::from(b & 0x7f).max(1) * 8, rest),
        None => return,
    };
    for (i, datagram) in rest.chunks(split).take(4).enumerate() {
        out.clear();
        let outcome = decoder.decode(exporters[i % 2], datagram, UnixNanos(i as u64), &mut out);
        assert_eq!(outcome.records, out.len());
        assert!(out.len() <= datagram.len());
        for record in &out {
            assert!(record.start <= record.end);
            assert!(record.sampling_rate >= 1);
        }
    }
    // The whole input as one datagram too.
    out.clear();
    decoder.decode(exporters[0], rest, UnixNanos(9), &mut out);
    assert!(out.len() <= rest.len());
    for (_, stats) in decoder.stats() {
        assert!(stats.templates <= 8);
    }
});
