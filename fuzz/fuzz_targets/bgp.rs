//! Decodes BGP messages from arbitrary bytes (re-encoding whatever decodes), and feeds the
//! same bytes to a session that has just sent its OPEN: nothing may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rampart_bgp::message::Message;
use rampart_bgp::session::{Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    for as4 in [false, true] {
        let mut rest = data;
        while let Ok(Some((message, used))) = Message::decode(rest, as4) {
            assert!(used >= 19 && used <= rest.len());
            let _ = message.encode(as4);
            rest = &rest[used..];
        }
    }
    let mut session = Session::new(SessionConfig {
        local_as: 64512,
        peer_as: 64513,
        router_id: std::net::Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 9,
        families: rampart_bgp::family::Family::ALL.to_vec(),
        graceful_restart: Some(120),
        blackhole_next_hop_v4: None,
        blackhole_next_hop_v6: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        redirect_ip: Default::default(),
        rule_budget: 16,
    });
    let now = Instant::now();
    session.connected(now);
    session.received(data, now);
    while session.poll_transmit().is_some() {}
    while session.poll_event().is_some() {}
});
