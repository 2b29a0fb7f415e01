#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rampart_telemetry::UnixNanos;
use rampart_telemetry::sflow::{SflowDecoder, SflowLimits};

// The first byte picks how many times the rest is fed to one decoder (sequence, restart and
// per-agent state paths); the rest is one sFlow datagram.
fuzz_target!(|data: &[u8]| {
    let Some((&rounds, datagram)) = data.split_first() else { return };
    let limits = SflowLimits { max_agents: 4, max_interface_counters: 8, ..SflowLimits::default() };
    let mut decoder = SflowDecoder::new(limits);
    let mut out = Vec::new();
    let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for round in 0..u64::from(rounds % 4) + 1 {
        out.clear();
        let summary = decoder.decode(from, datagram, UnixNanos(round), &mut out);
        assert_eq!(out.len(), summary.records as usize);
        assert!(out.len() <= datagram.len() / 80);
    }
    assert!(decoder.stats().count() <= 4);
    assert!(decoder.interface_counters().count() <= 8);
});
