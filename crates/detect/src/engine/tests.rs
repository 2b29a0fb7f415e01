//! Engine behaviour end to end, in simulated time.
use super::*;
use ipnet::IpNet;
use proptest::prelude::*;
use rampart_contract::{Attack, Metric, Policy, Target};
use rampart_telemetry::Fragment;

use crate::class::{TCP_ACK, TCP_SYN};

const T0: u64 = 1_767_225_600;

fn config(text: &str) -> DetectConfig {
    DetectConfig::from_toml_str(text, "t.toml").unwrap()
}

fn explain(attack: &Attack) -> String {
    rampart_contract::text::explanation(attack)
}

fn protected() -> DetectConfig {
    config("protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 200\n")
}

fn packet(ns: u64, src: [u8; 4], dst: [u8; 4], protocol: u8, flags: u8) -> TrafficRecord {
    TrafficRecord {
        start: UnixNanos(ns),
        end: UnixNanos(ns),
        src: IpAddr::from(src),
        dst: IpAddr::from(dst),
        protocol,
        src_port: Some(1234),
        dst_port: Some(80),
        tcp_flags: flags,
        packets: 1,
        bytes: 60,
        packet_len: Some(60),
        ..TrafficRecord::EMPTY
    }
}

/// Feeds `pps` packets per second for `secs` seconds from `first` (unix second) through
/// `make(ns, i)`, then finishes; returns every event.
fn feed(
    engine: &mut Engine,
    first: u64,
    secs: u64,
    pps: u64,
    make: impl Fn(u64, u64) -> TrafficRecord,
) -> Vec<AttackEvent> {
    let mut events = Vec::new();
    for s in first..first + secs {
        for i in 0..pps {
            let ns = s * 1_000_000_000 + i * (1_000_000_000 / pps);
            let r = make(ns, i);
            events.extend(engine.advance(r.start));
            engine.observe(&r);
        }
    }
    events
}

/// The onset of the only attack in `events` names the UDP flood it was fed, from its sources.
fn assert_udp_onset(events: &[AttackEvent]) {
    let onsets: Vec<_> = events.iter().filter(|e| e.kind == EventKind::Onset).map(|e| &e.attack).collect();
    assert_eq!(onsets.len(), 1, "{events:#?}");
    let s = &onsets[0].signature;
    assert_eq!(
        (s.protocol, s.dst_ports.clone()),
        (Some(17), vec![rampart_contract::PortRange::single(80)]),
        "{s:#?}"
    );
    assert!(s.sampled_packets > 0 && onsets[0].distinct_sources > 0, "{:#?}", onsets[0]);
}

#[test]
fn threat_windows_and_manual_level_scale_thresholds() {
    // 70 pps against a 100 pps threshold: quiet at normal, an attack at high (50 %).
    let window = String::from(
        "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 200\n\
         [[threat.window]]\nlevel = \"high\"\nfrom = \"2026-01-01T00:00:10Z\"\n\
         until = \"2026-01-01T00:00:20Z\"\nreason = \"vote on sanctions\"\n",
    );
    let flood = |ns, i: u64| packet(ns, [10, 0, 0, i as u8], [198, 51, 100, 7], 17, 0);
    let mut engine = Engine::new(config(&window));
    assert!(feed(&mut engine, T0, 5, 70, flood).is_empty(), "outside the window: under threshold");
    let mut engine = Engine::new(config(&window));
    let events = feed(&mut engine, T0 + 12, 5, 70, flood);
    assert_eq!(events.first().map(|e| e.kind), Some(EventKind::Onset));
    let explanation = &explain(&events[0].attack);
    assert!(explanation.contains("pps 70 > threshold 50"), "{explanation}");
    assert!(
        explanation.contains("threat level high (vote on sanctions): thresholds at 50 %"),
        "{explanation}"
    );

    let mut engine = Engine::new(protected());
    engine.set_threat_level(crate::threat::ThreatLevel::Elevated);
    let events = feed(&mut engine, T0, 5, 80, flood);
    assert!(explain(&events[0].attack).contains("threshold 70"), "{}", explain(&events[0].attack));
}

#[test]
fn flood_onset_and_end_after_quiet() {
    let mut engine = Engine::new(protected());
    let mut events =
        feed(&mut engine, T0, 5, 500, |ns, i| packet(ns, [10, 0, 0, i as u8], [198, 51, 100, 7], 6, 0x02));
    // Still ongoing five seconds after the last packet (quiet is 10 s) ...
    events.extend(engine.advance(UnixNanos::from_secs(T0 + 10)));
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::End).count(), 0);
    // ... and over after ten.
    events.extend(engine.advance(UnixNanos::from_secs(T0 + 16)));
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Onset, EventKind::End]);
    let a = &events[1].attack;
    assert_eq!(
        (a.target.to_string().as_str(), a.vectors.as_slice()),
        ("198.51.100.7", &[Vector::SynFlood][..])
    );
    assert_eq!((a.start, a.packets, a.peak_pps), (EventTime::from_unix_secs(T0), 2500, 500));
    assert!(a.end > EventTime::from_unix_secs(T0 + 4) && a.end < EventTime::from_unix_secs(T0 + 5));
    assert_eq!(a.trigger.counter_name(), "pps");
    assert!(explain(a).contains("pps 500 > threshold 100"), "{}", explain(a));
    // Fingerprint distributions: all SYN, all 60 bytes (the 48..63 bucket), no TTL known.
    assert_eq!(a.tcp_flags.iter().map(|s| (s.value, s.percent)).collect::<Vec<_>>(), [(0x02, 100.0)]);
    assert_eq!(a.packet_lengths.iter().map(|s| (s.value, s.percent)).collect::<Vec<_>>(), [(48, 100.0)]);
    assert!(a.ttls.is_empty());
    assert!(engine.finish().is_empty());
    assert!(engine.targets.is_empty() && engine.profiles.iter().all(Option::is_none));
}

#[test]
fn onset_needs_consecutive_seconds() {
    let mut c = protected();
    c.lifecycle.onset_secs = 3;
    let mut engine = Engine::new(c);
    let make = |ns, _| packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0);
    let mut events = feed(&mut engine, T0, 2, 500, make);
    events.extend(feed(&mut engine, T0 + 3, 2, 500, make));
    events.extend(engine.finish());
    assert!(events.is_empty(), "{events:#?}");
    let mut events = feed(&mut engine, T0 + 10, 3, 500, make);
    events.extend(engine.finish());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].attack.start, EventTime::from_unix_secs(T0 + 10));
}

#[test]
fn outbound_traffic_never_raises_an_attack() {
    let mut engine = Engine::new(protected());
    // A protected server uploads 5000 pps to an outside client ...
    let mut events = feed(&mut engine, T0, 5, 5000, |ns, i| {
        if i % 3 == 2 {
            // ... whose ACKs come back at 1667 pps, over the 100 pps threshold, but answer
            // the upload.
            packet(ns, [203, 0, 113, 9], [198, 51, 100, 20], 6, 0x10)
        } else {
            packet(ns, [198, 51, 100, 20], [203, 0, 113, 9], 6, 0x18)
        }
    });
    events.extend(engine.finish());
    assert!(events.is_empty(), "{events:#?}");
    // Transit traffic is ignored.
    engine.observe(&packet(T0 * 1_000_000_000, [1, 1, 1, 1], [2, 2, 2, 2], 6, 0x02));
    assert_eq!(engine.stats().transit_records, 1);
}

#[test]
fn carpet_bombing_goes_to_the_prefix() {
    let mut engine = Engine::new(protected());
    // 50 pps to each of 200 hosts: every host under 100, the /24 at 10 000.
    let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
        packet(ns, [10, 0, 0, 1], [198, 51, 100, (i % 200) as u8], 17, 0)
    });
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    let a = &ends[0].attack;
    assert_eq!(a.target, Target::Prefix("198.51.100.0/24".parse().unwrap()));
    assert_eq!(a.vectors, [Vector::UdpFlood, Vector::CarpetBombing]);
    assert_eq!(a.signature.dst_prefixes, vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]);
    assert_eq!(a.signature.protocol, Some(17));
}

#[test]
fn amplification_and_fragments_make_one_vector() {
    let mut engine = Engine::new(protected());
    let mut events = feed(&mut engine, T0, 3, 3000, |ns, i| {
        let mut r = packet(ns, [192, 0, 2, (i % 50) as u8], [198, 51, 100, 9], 17, 0);
        r.src_port = Some(11211);
        if i % 3 != 0 {
            r.fragment = Fragment::NonInitial;
            r.src_port = None;
            r.dst_port = None;
        }
        r
    });
    events.extend(engine.finish());
    let a = &events.last().unwrap().attack;
    assert_eq!(a.vectors, [Vector::MemcachedAmplification]);
    assert!((40..=60).contains(&a.distinct_sources), "{}", a.distinct_sources);
}

/// The vectors of what `make` sends at 198.51.100.9 for 3 s at 3000 pps.
fn vectors_of(make: impl Fn(u64, u64) -> TrafficRecord) -> Vec<Vector> {
    let mut engine = Engine::with_seed(protected(), 7);
    let mut events = feed(&mut engine, T0, 3, 3000, make);
    events.extend(engine.finish());
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::End).count(), 1, "{events:#?}");
    events.last().map(|e| e.attack.vectors.clone()).unwrap_or_default()
}

#[test]
fn reflection_needs_concentrated_ports_and_many_sources() {
    let victim = [198, 51, 100, 9];
    let udp = |ns, i: u64, src: u8, port: u16| TrafficRecord {
        src_port: Some(port),
        ..packet(ns, [192, 0, (i % 7) as u8, src], victim, 17, 0)
    };
    // 200 sources, 90 % from one unknown port: reflection on it.
    let unknown = vectors_of(|ns, i| udp(ns, i, i as u8, if i % 10 == 0 { i as u16 } else { 12345 }));
    assert_eq!(unknown, [Vector::UdpReflection]);
    // Two known ports, a third unknown: each named.
    let mix = vectors_of(|ns, i| udp(ns, i, i as u8, [47808, 37810, 4242][(i % 3) as usize]));
    assert_eq!(mix, [Vector::BacnetAmplification, Vector::DhdiscoverAmplification, Vector::UdpReflection]);
    // DNS answers and, as flow records with port 0, their fragments (softflowd's NetFlow):
    // DNS reflection only, no reflection "on port 0".
    let flows = vectors_of(|ns, i| udp(ns, i, i as u8, if i % 5 < 3 { 53 } else { 0 }));
    assert_eq!(flows, [Vector::DnsAmplification]);
    // Two sources on one port: a stream, not reflection.
    assert_eq!(vectors_of(|ns, i| udp(ns, 0, (i % 2) as u8, 12345)), [Vector::UdpFlood]);
    // Random source ports from many sources: a flood.
    assert_eq!(vectors_of(|ns, i| udp(ns, i, i as u8, (i * 7919) as u16)), [Vector::UdpFlood]);
}

#[test]
fn tcp_reflection_is_named_by_flags_and_payload() {
    let victim = [198, 51, 100, 9];
    let syn_ack = vectors_of(|ns, i| TrafficRecord {
        src_port: Some(if i % 2 == 0 { 80 } else { 443 }),
        dst_port: Some(40_000 + (i % 1000) as u16),
        ..packet(ns, [203, 0, (i % 5) as u8, i as u8], victim, 6, TCP_SYN | TCP_ACK)
    });
    assert_eq!(syn_ack, [Vector::SynAckReflection]);
    // SYN-ACKs answering the host's own SYNs (a crawler) are not reflection.
    let solicited = vectors_of(|ns, i| {
        let server = [203, 0, (i % 5) as u8, (i / 2) as u8];
        if i % 2 == 0 {
            packet(ns, victim, server, 6, TCP_SYN)
        } else {
            packet(ns, server, victim, 6, TCP_SYN | TCP_ACK)
        }
    });
    assert_eq!(solicited, [Vector::TcpFlood]);
    // The same SYN-ACKs from one source stay a TCP flood.
    let one = vectors_of(|ns, _| packet(ns, [203, 0, 113, 1], victim, 6, TCP_SYN | TCP_ACK));
    assert_eq!(one, [Vector::TcpFlood]);
    // SYNs and ACKs carrying an HTTP request to port 80, from many sources, unanswered.
    let middlebox = vectors_of(|ns, i| TrafficRecord {
        packet_len: Some(140),
        bytes: 140,
        ..packet(ns, [203, 0, (i % 5) as u8, i as u8], victim, 6, if i % 2 == 0 { TCP_SYN } else { 0x18 })
    });
    assert_eq!(middlebox, [Vector::TcpMiddleboxReflection]);
    // Bare SYNs are a SYN flood.
    let syn = vectors_of(|ns, i| packet(ns, [203, 0, (i % 5) as u8, i as u8], victim, 6, TCP_SYN));
    assert_eq!(syn, [Vector::SynFlood]);
}

#[test]
fn flows_are_spread_over_their_duration() {
    let mut engine = Engine::new(protected());
    // One flow record: 1000 packets over 10 s is 100 pps, at the threshold, not over.
    let flow = TrafficRecord {
        start: UnixNanos::from_secs(T0),
        end: UnixNanos::from_secs(T0 + 10),
        packets: 1000,
        bytes: 60_000,
        ..packet(0, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0)
    };
    engine.observe(&flow);
    assert!(engine.finish().is_empty());
    // The same packets in one second are a flood.
    let mut engine = Engine::new(protected());
    engine.observe(&TrafficRecord { end: flow.start, ..flow });
    assert_eq!(engine.finish().len(), 2);
}

#[test]
fn host_cap_sends_excess_hosts_to_their_prefix() {
    let mut c = protected();
    c.limits.max_hosts = 10;
    let mut engine = Engine::new(c);
    let mut events = feed(&mut engine, T0, 2, 10_000, |ns, i| {
        packet(ns, [10, 0, 0, 1], [198, 51, 100, (i % 250) as u8], 17, 0)
    });
    events.extend(engine.finish());
    assert!(engine.stats().peak_hosts <= 10);
    assert!(engine.stats().overflow_hosts > 0);
    assert!(events.iter().any(|e| e.attack.target.to_string() == "198.51.100.0/24"), "{events:#?}");
}

#[test]
fn pulses_with_short_gaps_are_one_attack() {
    let mut engine = Engine::new(protected());
    let mut events = Vec::new();
    for burst in 0..4 {
        let first = T0 + burst * 8;
        events.extend(feed(&mut engine, first, 3, 1000, |ns, _| {
            packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0)
        }));
    }
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].attack.packets, 12_000);
}

#[test]
fn flow_shares_beyond_the_open_window_are_dropped_not_piled_up() {
    // A (forged) flow record claiming 200 million packets spread over the next 23 days: the
    // shares of seconds the engine does not keep open are dropped, not added to its last
    // open second, which would otherwise hold a flood.
    let mut engine = Engine::new(protected());
    let start = T0 * 1_000_000_000;
    let mut events = engine.advance(UnixNanos(start));
    let record = TrafficRecord {
        end: UnixNanos(start + 23 * 86_400 * 1_000_000_000),
        packets: 200_000_000,
        bytes: 200_000_000 * 60,
        packet_len: None,
        ..packet(start, [203, 0, 113, 9], [198, 51, 100, 7], 17, 0)
    };
    engine.observe(&record);
    for s in 1..=200 {
        events.extend(engine.advance(UnixNanos(start + s * 1_000_000_000)));
    }
    events.extend(engine.finish());
    assert!(events.is_empty(), "{events:#?}");
    assert!(engine.stats().future_shares > 0);
}

#[test]
fn pulses_with_long_gaps_are_linked_into_one_campaign() {
    // The holdout pulse wave: four 3-second bursts 15 s apart (gaps over quiet_secs), then a
    // SYN flood on the same host (no vector in common) and a UDP burst after the gap.
    let mut engine = Engine::new(protected());
    let mut events = Vec::new();
    let udp = |ns, _| packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 17, 0);
    for burst in 0..4 {
        events.extend(feed(&mut engine, T0 + burst * 15, 3, 12_000, udp));
    }
    events.extend(feed(&mut engine, T0 + 70, 3, 12_000, |ns, _| {
        packet(ns, [10, 0, 0, 1], [198, 51, 100, 7], 6, 0x02)
    }));
    events.extend(feed(&mut engine, T0 + 90 + 600 + 20, 3, 12_000, udp));
    events.extend(engine.finish());
    let onsets: Vec<&Attack> =
        events.iter().filter(|e| e.kind == EventKind::Onset).map(|e| &e.attack).collect();
    assert_eq!(onsets.len(), 6, "{onsets:#?}");
    let first = onsets[0].id;
    assert_eq!(onsets[0].campaign, None);
    for (n, a) in onsets[1..4].iter().enumerate() {
        let c = a.campaign.unwrap_or_else(|| panic!("pulse {} unlinked", n + 2));
        assert_eq!((c.first, c.pulse, c.previous), (first, n as u32 + 2, onsets[n].id));
        assert!(explain(a).contains(&format!("pulse {} of the campaign", n + 2)), "{}", explain(a));
    }
    assert_eq!(onsets[4].vectors, [Vector::SynFlood]);
    assert_eq!(onsets[4].campaign, None, "no vector in common");
    assert_eq!(onsets[5].campaign, None, "beyond the gap");
    let ends: Vec<&Attack> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends[3].campaign.map(|c| c.pulse), Some(4));
}

#[test]
fn a_protected_host_flooding_out_is_an_outbound_attack() {
    let mut engine = Engine::new(protected());
    let mut events = feed(&mut engine, T0, 3, 8000, |ns, i| {
        let mut r = packet(ns, [198, 51, 100, 66], [203, 0, 113, 10], 6, 0x02);
        r.src_port = Some((1024 + i) as u16);
        r.dst_port = Some(443);
        r
    });
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    let a = ends[0];
    assert_eq!((a.target.to_string().as_str(), a.direction), ("198.51.100.66", Direction::Outbound));
    assert_eq!(a.vectors, [Vector::SynFlood]);
    assert!(explain(a).starts_with("outbound tcp_syn_pps 8000 > threshold 5000"), "{}", explain(a));
    assert_eq!(a.signature.src_prefixes, vec!["198.51.100.66/32".parse::<IpNet>().unwrap()]);
    assert_eq!(a.signature.dst_prefixes, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    assert_eq!(
        (a.signature.dst_ports.clone(), a.signature.tcp_flags),
        (vec![rampart_contract::PortRange::single(443)], Some(rampart_contract::TcpFlags::exact(0x02)))
    );
    assert_eq!((a.distinct_sources, a.distinct_destinations), (1, Some(1)));
    assert_eq!(a.top_dst_prefixes[0].value.to_string(), "203.0.113.0/24");
    assert!(a.top_src_prefixes.is_empty());
}

#[test]
fn a_protected_dns_server_abused_as_reflector_is_outbound_amplification() {
    // Default thresholds: 3000 queries/s in are normal for a DNS server, 3000 large
    // replies/s from port 53 out are over the outbound amplification limit (2000).
    let mut engine = Engine::new(config("protected = [\"198.51.100.0/24\"]\n"));
    let mut events = feed(&mut engine, T0, 3, 6000, |ns, i| {
        if i % 2 == 0 {
            let mut q = packet(ns, [203, 0, 113, 77], [198, 51, 100, 53], 17, 0);
            q.dst_port = Some(53);
            q
        } else {
            let mut r = packet(ns, [198, 51, 100, 53], [203, 0, 113, 77], 17, 0);
            (r.src_port, r.dst_port, r.bytes, r.packet_len) = (Some(53), Some(4444), 1400, Some(1400));
            r
        }
    });
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    let a = ends[0];
    assert_eq!((a.target.to_string().as_str(), a.direction), ("198.51.100.53", Direction::Outbound));
    assert_eq!(a.vectors, [Vector::DnsAmplification]);
    assert_eq!(a.trigger.counter_name(), "amplification_pps");
    assert_eq!(a.signature.src_ports, vec![rampart_contract::PortRange::single(53)]);
}

#[test]
fn new_flows_per_second_have_their_own_threshold() {
    let mut c = config(
        "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100000\nudp_pps = 100000\nnew_flows = 300\n",
    );
    c.lifecycle.onset_secs = 2;
    let mut engine = Engine::new(c.clone());
    // 500 UDP packets per second, each from a new source port: 500 new flows per second.
    let mut events = feed(&mut engine, T0, 4, 500, |ns, i| {
        let mut r = packet(ns, [203, 0, 113, 1], [198, 51, 100, 9], 17, 0);
        r.src_port = Some((ns / 1_000_000_000 * 1000 + i) as u16);
        r
    });
    events.extend(engine.finish());
    assert_eq!(events.first().map(|e| e.attack.trigger.metric), Some(Metric::NewFlows), "{events:#?}");
    assert!(explain(&events[0].attack).contains("new_flows 500 > threshold 300"));
    // The same packets in one long-lived flow: no new flows after the first.
    let mut engine = Engine::new(c);
    let mut events =
        feed(&mut engine, T0, 4, 500, |ns, _| packet(ns, [203, 0, 113, 1], [198, 51, 100, 9], 17, 0));
    events.extend(engine.finish());
    assert!(events.is_empty(), "{events:#?}");
}

/// Three seconds of 10 000 UDP pps spread over one host in each of 100 /64s of
/// 2001:db8:100::/56; every event.
fn ipv6_carpet(c: DetectConfig) -> Vec<AttackEvent> {
    let mut engine = Engine::new(c);
    let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
        let dst: IpAddr = format!("2001:db8:100:{:x}::1", i % 100).parse().unwrap();
        TrafficRecord { dst, src: "2001:db8:ffff::1".parse().unwrap(), ..packet(ns, [0; 4], [0; 4], 17, 0) }
    });
    events.extend(engine.finish());
    events
}

#[test]
fn ipv6_carpet_bombing_over_many_64s_goes_to_the_48() {
    let c = config(
        "protected = [\"2001:db8:100::/48\"]\n[thresholds]\npps = 100\n\
         [aggregation]\npps = 200\nwide_pps = 1000\n",
    );
    // 100 pps to each of 100 /64s (one host each): every /64 under 200, the /48 at 10 000.
    let events = ipv6_carpet(c);
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    assert_eq!(ends[0].target, Target::Prefix("2001:db8:100::/48".parse().unwrap()));
    assert_eq!(ends[0].trigger.counter_name(), "wide_prefix_pps");
    assert!(ends[0].vectors.contains(&Vector::CarpetBombing));
    assert_udp_onset(&events);
}

#[test]
fn a_protected_network_narrower_than_the_wide_prefix_is_its_own_top_level() {
    let c = config(
        "protected = [\"2001:db8:100::/56\"]\n[thresholds]\npps = 100\n\
         [aggregation]\npps = 200\nwide_pps = 1000\nnetwork_pps = 5000\n",
    );
    let events = ipv6_carpet(c);
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    assert_eq!(
        (ends[0].target.to_string(), ends[0].trigger.counter_name()),
        ("2001:db8:100::/56".to_owned(), "network_pps".to_owned())
    );
    assert_udp_onset(&events);
}

#[test]
fn carpet_bombing_over_many_24s_goes_to_the_protected_network() {
    let c = config(
        "protected = [\"198.51.0.0/16\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 1000\nnetwork_pps = 5000\n",
    );
    let mut engine = Engine::new(c);
    // 50 pps to each of 200 hosts spread over 20 /24s: each /24 at 500, the /16 at 10 000.
    let mut events = feed(&mut engine, T0, 3, 10_000, |ns, i| {
        packet(ns, [203, 0, 113, 1], [198, 51, (i % 20) as u8, (i % 200 / 20) as u8 + 1], 17, 0)
    });
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    assert_eq!(ends[0].target.to_string(), "198.51.0.0/16");
    assert_eq!(ends[0].trigger.counter_name(), "network_pps");
    assert!(explain(ends[0]).contains("for protected network"), "{}", explain(ends[0]));
    assert_udp_onset(&events);
}

#[test]
fn groups_have_aggregates_policies_and_rates() {
    let text = "protected = [\"198.51.100.0/24\"]\n[thresholds]\npps = 100\n[aggregation]\npps = 100000\n\
                [[group]]\nname = \"web\"\nprefixes = [\"198.51.100.0/28\"]\npolicy = \"alert\"\n\
                aggregate = { pps = 500 }\n\
                [[group]]\nname = \"honeypot\"\nprefixes = [\"198.51.100.128/25\"]\npolicy = \"ignore\"\n";
    let mut engine = Engine::new(config(text));
    // 80 pps to each of the 16 web hosts (group total 1280), and 5000 pps at one honeypot.
    let mut events = feed(&mut engine, T0, 3, 6280, |ns, i| {
        let dst = if i < 1280 { [198, 51, 100, (i % 16) as u8] } else { [198, 51, 100, 200] };
        packet(ns, [203, 0, 113, 1], dst, 17, 0)
    });
    let rates: Vec<_> = engine.group_rates().map(|(n, r)| (n.to_owned(), r.inbound_pps)).collect();
    assert_eq!(rates, [("web".to_owned(), 1280), ("honeypot".to_owned(), 5000)]);
    assert_eq!(engine.rates().inbound_pps, 6280);
    // Silence: the rates fall to zero, they do not stay at the last busy second.
    let mut quiet = Engine::new(config(text));
    feed(&mut quiet, T0, 1, 100, |ns, _| packet(ns, [203, 0, 113, 1], [198, 51, 100, 1], 17, 0));
    quiet.advance(UnixNanos::from_secs(T0 + 1));
    assert_eq!(quiet.rates().inbound_pps, 100);
    quiet.advance(UnixNanos::from_secs(T0 + 5));
    assert_eq!(quiet.rates(), TrafficRates::default());
    events.extend(engine.finish());
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    let a = ends[0];
    assert!(matches!(&a.target, Target::Group { name, .. } if name == "web"), "{:?}", a.target);
    assert_eq!(a.policy, Policy::Alert);
    assert_eq!(a.group.as_deref(), Some("web"));
    assert_eq!(a.trigger.counter_name(), "group_pps");
    assert_eq!(a.signature.dst_prefixes, vec!["198.51.100.0/28".parse::<IpNet>().unwrap()]);
    assert!(a.vectors.contains(&Vector::CarpetBombing));
    assert_udp_onset(&events);
}

/// 1:20,000 sampling: a UDP flood shows 12 samples a second and one background SYN, scaled to
/// 20,000 pps, crosses the SYN threshold by itself. No vector is named until 32 packets were
/// observed; then the SYN's rate averaged over those seconds is under its limit, and the flood
/// is named for what it is. The signature carries its evidence.
#[test]
fn vectors_are_named_only_from_enough_samples() {
    let mut engine = Engine::new(protected());
    let mut events = Vec::new();
    for s in 0..6u64 {
        for i in 0..13u64 {
            let ns = (T0 + s) * 1_000_000_000 + i * 70_000_000;
            let src = [203, 0, 113, (s * 13 + i) as u8];
            let r = match i {
                12 if s == 1 => packet(ns, src, [198, 51, 100, 7], 6, 0x02),
                12 => continue,
                _ => TrafficRecord {
                    src_port: Some(1024 + (s * 13 + i) as u16 * 97),
                    ..packet(ns, src, [198, 51, 100, 7], 17, 0)
                },
            };
            let r = TrafficRecord { sampling_rate: 20_000, ..r };
            events.extend(engine.advance(r.start));
            engine.observe(&r);
        }
    }
    events.extend(engine.finish());
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Onset, EventKind::Update, EventKind::End], "{events:#?}");
    let (onset, update, end) = (&events[0].attack, &events[1].attack, &events[2].attack);
    assert!(onset.vectors.is_empty(), "{onset:#?}");
    assert_eq!(onset.signature.confidence, Confidence::Insufficient);
    assert_eq!(onset.signature.samples, 12);
    assert_eq!(onset.signature.sampled_packets, 12 * 20_000);
    // Named in the third second, from 37 samples; never as a SYN flood.
    assert_eq!(update.vectors, [Vector::UdpFlood], "{update:#?}");
    assert_eq!((update.signature.confidence, update.signature.samples), (Confidence::Low, 37));
    assert_eq!(end.vectors, [Vector::UdpFlood]);
    assert_eq!(end.signature.samples, 73);

    // The same traffic unsampled, at 20,000 times the packets' weight each: one record is one
    // packet, evidence enough from the first second (and the SYN is the 1/13 it is).
    let mut engine = Engine::new(protected());
    let events = feed(&mut engine, T0, 2, 12_000, |ns, i| TrafficRecord {
        src_port: Some(1024 + (i % 60_000) as u16),
        ..packet(ns, [203, 0, (i >> 8) as u8, i as u8], [198, 51, 100, 7], 17, 0)
    });
    assert_eq!(events[0].attack.vectors, [Vector::UdpFlood]);
    assert_eq!(events[0].attack.signature.confidence, Confidence::High);
}

#[test]
fn packet_sources_carry_sample_headers_and_flows_do_not() {
    let mut engine = Engine::new(protected());
    let mut events = feed(&mut engine, T0, 3, 500, |ns, _| TrafficRecord {
        ttl: Some(52),
        ..packet(ns, [203, 0, 113, 5], [198, 51, 100, 7], 6, 0x02)
    });
    events.extend(engine.finish());
    let a = &events.last().unwrap().attack;
    assert_eq!(a.sample_headers.len(), crate::profile::MAX_SAMPLES);
    assert_eq!(
        a.sample_headers[0].to_string(),
        "203.0.113.5:1234 > 198.51.100.7:80 proto 6 flags 0x02 ttl 52 len 60"
    );
    let mut engine = Engine::new(protected());
    let mut events = feed(&mut engine, T0, 3, 500, |ns, _| TrafficRecord {
        source: rampart_telemetry::RecordSource::Ipfix,
        ..packet(ns, [203, 0, 113, 5], [198, 51, 100, 7], 6, 0x02)
    });
    events.extend(engine.finish());
    assert!(events.last().unwrap().attack.sample_headers.is_empty());
}

fn arb_record() -> impl Strategy<Value = TrafficRecord> {
    (
        0u64..40,
        0u64..3_000_000_000,
        any::<[u8; 4]>(),
        any::<u8>(),
        prop_oneof![Just(6u8), Just(17), Just(1), Just(58), any::<u8>()],
        any::<u8>(),
        any::<Option<u16>>(),
        0u64..1000,
        any::<u64>(),
        prop_oneof![Just(1u32), any::<u32>()],
        any::<bool>(),
    )
        .prop_map(|(s, dur, src, dst_low, protocol, flags, port, packets, bytes, rate, frag)| {
            let start = UnixNanos((T0 + s) * 1_000_000_000);
            TrafficRecord {
                start,
                end: UnixNanos(start.0 + dur),
                src: IpAddr::from(src),
                dst: IpAddr::from([198, 51, 100, dst_low]),
                protocol,
                src_port: port,
                dst_port: port.map(|p| p.wrapping_add(1)),
                tcp_flags: flags,
                fragment: if frag { Fragment::NonInitial } else { Fragment::None },
                packets,
                bytes,
                sampling_rate: rate,
                packet_len: u32::try_from(bytes).ok(),
                ..TrafficRecord::EMPTY
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any records, in any order, with any counts: no panic, every onset ends, state is
    /// released and the host cap holds.
    #[test]
    fn arbitrary_records_never_panic(records in prop::collection::vec(arb_record(), 0..200), cap in 1usize..20) {
        let mut c = protected();
        c.limits.max_hosts = cap;
        c.limits.max_prefixes = 2;
        c.limits.max_attacks = 3;
        let mut engine = Engine::new(c);
        let mut events = Vec::new();
        for r in &records {
            events.extend(engine.advance(r.start));
            engine.observe(r);
        }
        events.extend(engine.finish());
        let onsets = events.iter().filter(|e| e.kind == EventKind::Onset).count();
        let ends = events.iter().filter(|e| e.kind == EventKind::End).count();
        prop_assert_eq!(onsets, ends);
        prop_assert!(engine.stats().peak_hosts <= cap as u64);
        prop_assert!(engine.targets.is_empty());
        prop_assert!(engine.profiles.iter().all(Option::is_none));
        for e in &events {
            prop_assert!(e.attack.end >= e.attack.start, "{:?}", e.attack);
            // What consumers read back is the attack that was reported.
            let json = serde_json::to_string(&e.attack).unwrap();
            let back: Attack = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(
                (back.id, &back.target, &back.vectors, back.start, back.end, back.packets, back.bytes),
                (e.attack.id, &e.attack.target, &e.attack.vectors, e.attack.start, e.attack.end, e.attack.packets, e.attack.bytes)
            );
        }
    }
}

#[test]
fn try_new_names_an_unusable_baseline_configuration() {
    let mut bad = DetectConfig::default();
    bad.baseline.slot_secs = 7000;
    let error = Engine::try_with_seed(bad, 1).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("slot_secs"), "{error}");
    let engine = Engine::try_new(protected()).unwrap();
    assert_eq!(engine.config().thresholds.pps, 100);
}
