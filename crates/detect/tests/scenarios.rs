//! Every generated scenario through decode and detection, in simulated event time, against the
//! generator's ground truth.

use std::net::IpAddr;

use ipnet::IpNet;
use rampart_contract::{FragmentMatch, PortRange, TcpFlags};
use rampart_detect::{Attack, AttackEvent, DetectConfig, Direction, Engine, EventKind, Target};
use rampart_telemetry::CaptureRecords;
use rampart_trafficgen::{AmplificationVector, GenParams, GroundTruth, Scenario, generate};

fn protected_config() -> DetectConfig {
    let text = "protected = [\"198.51.100.0/24\", \"2001:db8:100::/48\"]\n";
    DetectConfig::from_toml_str(text, "test.toml").unwrap()
}

fn run(scenario: Scenario, params: &GenParams, config: DetectConfig) -> (Vec<AttackEvent>, GroundTruth) {
    let mut capture = Vec::new();
    let truth = generate(scenario, params, &mut capture).unwrap();
    let mut engine = Engine::new(config);
    let mut events = Vec::new();
    for record in CaptureRecords::new(capture.as_slice()).unwrap() {
        let record = record.unwrap();
        events.extend(engine.advance(record.start));
        engine.observe(&record);
    }
    events.extend(engine.finish());
    (events, truth)
}

fn ended(events: &[AttackEvent]) -> Vec<&Attack> {
    events.iter().filter(|e| e.kind == EventKind::End).map(|e| &e.attack).collect()
}

fn target_matches(attack: &Attack, truth_target: &str) -> bool {
    match &attack.target {
        Target::Host(ip) => ip.to_string() == truth_target,
        Target::Prefix(net) => {
            let truth_net: IpNet =
                truth_target.parse().or_else(|_| truth_target.parse::<IpAddr>().map(IpNet::from)).unwrap();
            net.contains(&truth_net)
        }
        _ => false,
    }
}

/// Every truth attack is found with its target, vector and start within 2 s; nothing else is
/// reported.
fn check(scenario: Scenario, params: &GenParams, config: DetectConfig) -> Vec<AttackEvent> {
    let (events, truth) = run(scenario, params, config);
    let attacks = ended(&events);
    assert!(!truth.attacks.is_empty(), "{scenario}");
    for t in &truth.attacks {
        let vector = t.vector.name();
        let direction = match t.direction {
            rampart_trafficgen::Direction::Inbound => Direction::Inbound,
            rampart_trafficgen::Direction::Outbound => Direction::Outbound,
        };
        let found = attacks.iter().find(|a| {
            target_matches(a, &t.target)
                && a.direction == direction
                && a.vectors.iter().any(|v| v.name() == vector)
        });
        let Some(found) = found else {
            panic!("{scenario}: {vector} at {} not found in {attacks:#?}", t.target);
        };
        // Pulse waves list one truth entry per burst: the attack starts with the first.
        let first = truth
            .attacks
            .iter()
            .filter(|o| o.target == t.target && o.vector == t.vector)
            .map(|o| o.start)
            .fold(f64::INFINITY, f64::min);
        let (start, end) = (found.start.as_unix_secs_f64(), found.end.as_unix_secs_f64());
        assert!((start - first).abs() <= 2.0, "{scenario}: start {start} vs {first}");
        assert!(end >= t.start && start <= t.end, "{scenario}: {found:#?} vs {t:#?}");
    }
    for a in &attacks {
        assert!(
            truth.attacks.iter().any(|t| target_matches(a, &t.target)),
            "{scenario}: unexpected attack {a:#?}"
        );
        assert!(a.packets > 0 && a.bytes > 0 && a.peak_pps > 0 && a.peak_bps > 0, "{a:#?}");
        assert!(a.end >= a.start);
    }
    // Every onset is matched by exactly one end.
    let onsets = events.iter().filter(|e| e.kind == EventKind::Onset).count();
    assert_eq!(onsets, attacks.len(), "{scenario}");
    events
}

fn single_attack_scenarios() -> Vec<Scenario> {
    let mut s = vec![
        Scenario::SynFlood,
        Scenario::AckFlood,
        Scenario::RstFlood,
        Scenario::UdpFlood,
        Scenario::IcmpFlood,
        Scenario::FragmentFlood,
        Scenario::SynFloodV6,
        Scenario::UdpFloodV6,
        Scenario::IcmpFloodV6,
        Scenario::BacnetDhdiscover,
        Scenario::SynAckReflection,
    ];
    s.extend(AmplificationVector::ALL.iter().map(|&v| Scenario::Amplification(v)));
    s
}

/// The vectors of the one attack `scenario` raises, by name.
fn vector_names(scenario: Scenario) -> (Vec<&'static str>, Attack) {
    let params = GenParams { background_pps: 0, ..GenParams::for_scenario(scenario) };
    let (events, _) = run(scenario, &params, protected_config());
    let attacks = ended(&events);
    assert_eq!(attacks.len(), 1, "{scenario}: {attacks:#?}");
    let attack = attacks[0].clone();
    (attack.vectors.iter().map(|v| v.name()).collect(), attack)
}

#[test]
fn reflection_is_named_by_its_ports_and_flags() {
    // The captures: NAT-T, BACnet plus DHDiscover, SYN-ACK; and a port no table knows.
    let (names, a) = vector_names(Scenario::Amplification(AmplificationVector::NatT));
    assert_eq!(names, ["nat_t_amplification"]);
    assert_eq!(
        (a.signature.protocol, a.signature.src_ports.clone()),
        (Some(17), vec![PortRange::single(4500)])
    );

    let (names, a) = vector_names(Scenario::BacnetDhdiscover);
    assert_eq!(names, ["bacnet_amplification", "dhdiscover_amplification"]);
    let mut ports: Vec<u16> = a.top_src_ports.iter().map(|p| p.value).collect();
    ports.sort_unstable();
    assert_eq!(ports, [37810, 47808]);

    let (names, a) = vector_names(Scenario::Amplification(AmplificationVector::UnknownPort));
    assert_eq!(names, ["udp_reflection"]);
    assert_eq!(a.signature.src_ports, vec![PortRange::single(12345)]);
    assert_eq!(a.top_src_ports[0].value, 12345);

    let (names, a) = vector_names(Scenario::SynAckReflection);
    assert_eq!(names, ["syn_ack_reflection"]);
    assert_eq!((a.signature.protocol, a.signature.tcp_flags), (Some(6), Some(TcpFlags::exact(0x12))));
    let mut ports: Vec<u16> = a.top_src_ports.iter().map(|p| p.value).collect();
    ports.sort_unstable();
    assert_eq!(ports, [80, 443]);
    assert!(a.distinct_sources >= 40, "{}", a.distinct_sources);
}

#[test]
fn floods_from_random_ports_stay_floods() {
    // Spoofed UDP from random source ports is not concentrated; spoofed SYNs are no SYN-ACKs.
    assert_eq!(vector_names(Scenario::UdpFlood).0, ["udp_flood"]);
    assert_eq!(vector_names(Scenario::SynFlood).0, ["syn_flood"]);
    assert_eq!(vector_names(Scenario::AckFlood).0, ["ack_flood"]);
}

#[test]
fn every_single_attack_scenario_is_detected_with_default_thresholds() {
    for scenario in single_attack_scenarios() {
        let params = GenParams::for_scenario(scenario);
        // Without protected networks too, on a few (each run costs seconds in a debug build).
        let unprotected = matches!(
            scenario,
            Scenario::SynFlood | Scenario::UdpFloodV6 | Scenario::Amplification(AmplificationVector::Dns)
        );
        let configs = if unprotected {
            vec![protected_config(), DetectConfig::default()]
        } else {
            vec![protected_config()]
        };
        for config in configs {
            let events = check(scenario, &params, config);
            let attacks = ended(&events);
            assert_eq!(attacks.len(), 1, "{scenario}: {attacks:#?}");
            assert!(matches!(attacks[0].target, Target::Host(_)), "{:?}", attacks[0].target);
        }
    }
}

#[test]
fn signatures_are_narrow() {
    let params = GenParams { background_pps: 0, ..GenParams::for_scenario(Scenario::SynFlood) };
    let (events, _) = run(Scenario::SynFlood, &params, protected_config());
    let attack = &ended(&events)[0];
    let s = &attack.signature;
    assert_eq!(s.dst_prefixes, vec!["198.51.100.10/32".parse::<IpNet>().unwrap()]);
    assert_eq!(
        (s.protocol, s.tcp_flags, s.fragment),
        (Some(6), Some(TcpFlags::exact(0x02)), Some(FragmentMatch::NotNonInitial))
    );
    assert!(attack.distinct_sources > 10_000, "{}", attack.distinct_sources);

    let params = GenParams {
        background_pps: 0,
        ..GenParams::for_scenario(Scenario::Amplification(AmplificationVector::Ntp))
    };
    let (events, _) = run(Scenario::Amplification(AmplificationVector::Ntp), &params, protected_config());
    let attack = &ended(&events)[0];
    assert_eq!(
        (attack.signature.protocol, attack.signature.src_ports.clone()),
        (Some(17), vec![PortRange::single(123)])
    );
    assert_eq!(attack.top_src_ports[0].value, 123);
    let reflectors = attack.distinct_sources as f64;
    assert!((48.0..=80.0).contains(&reflectors), "{reflectors}");
}

#[test]
fn outbound_attacks_are_reported_on_the_protected_host_sending_them() {
    let params = GenParams::for_scenario(Scenario::OutboundSynFlood);
    let events = check(Scenario::OutboundSynFlood, &params, protected_config());
    let attacks = ended(&events);
    assert_eq!(attacks.len(), 1, "{attacks:#?}");
    let a = attacks[0];
    assert_eq!((a.target.to_string(), a.direction), ("198.51.100.66".to_owned(), Direction::Outbound));
    assert_eq!(a.signature.src_prefixes, vec!["198.51.100.66/32".parse::<IpNet>().unwrap()]);
    assert_eq!(a.signature.dst_prefixes, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    assert_eq!(
        (a.signature.dst_ports.clone(), a.signature.tcp_flags),
        (vec![PortRange::single(443)], Some(TcpFlags::exact(0x02)))
    );

    // Our DNS server answering spoofed queries: outbound DNS amplification. Its 50 kpps of
    // inbound queries cross the default per-host UDP threshold too (an inbound attack of its
    // own); with DNS-server limits only the outbound one remains.
    let params = GenParams::for_scenario(Scenario::DnsReflectorAbuse);
    let mut config = protected_config();
    config.thresholds.udp_pps = 100_000;
    config.thresholds.pps = 100_000;
    // Every DNS query is a new UDP flow.
    config.thresholds.new_flows = 100_000;
    let events = check(Scenario::DnsReflectorAbuse, &params, config);
    let attacks = ended(&events);
    assert_eq!(attacks.len(), 1, "{attacks:#?}");
    let a = attacks[0];
    assert_eq!((a.target.to_string(), a.direction), ("198.51.100.53".to_owned(), Direction::Outbound));
    assert_eq!(a.vectors.iter().map(|v| v.name()).collect::<Vec<_>>(), ["dns_amplification"]);
    assert_eq!(a.signature.src_ports, vec![PortRange::single(53)]);
    assert_eq!(a.distinct_destinations, Some(1));
    // With the default limits both are reported, on the same host.
    let events = check(Scenario::DnsReflectorAbuse, &params, protected_config());
    let mut directions: Vec<_> = ended(&events).iter().map(|a| (a.target.to_string(), a.direction)).collect();
    directions.sort_by_key(|(_, d)| *d == Direction::Outbound);
    assert_eq!(
        directions,
        [("198.51.100.53".to_owned(), Direction::Inbound), ("198.51.100.53".to_owned(), Direction::Outbound)]
    );
}

#[test]
fn carpet_bombing_is_reported_per_prefix_while_no_host_crosses() {
    for scenario in [Scenario::CarpetBombing, Scenario::CarpetBombingV6] {
        let params = GenParams::for_scenario(scenario);
        let events = check(scenario, &params, protected_config());
        let attacks = ended(&events);
        assert_eq!(attacks.len(), 1, "{attacks:#?}");
        let expected =
            if scenario == Scenario::CarpetBombing { "198.51.100.0/24" } else { "2001:db8:100::/64" };
        assert_eq!(attacks[0].target, Target::Prefix(expected.parse().unwrap()));
        assert!(attacks[0].vectors.iter().any(|v| v.name() == "udp_flood"), "{:?}", attacks[0].vectors);
    }
}

#[test]
fn pulse_wave_is_one_attack() {
    let params = GenParams::for_scenario(Scenario::PulseWave);
    let events = check(Scenario::PulseWave, &params, protected_config());
    let attacks = ended(&events);
    assert_eq!(attacks.len(), 1, "{attacks:#?}");
    let (_, truth) = run(Scenario::PulseWave, &params, protected_config());
    assert!(truth.attacks.len() >= 2);
    let last = truth.attacks.last().unwrap();
    let end = attacks[0].end.as_unix_secs_f64();
    assert!((end - last.end).abs() < 1.0, "{end} vs {}", last.end);
    // With a quiet period shorter than the gaps, every burst is its own attack.
    let mut short = protected_config();
    short.lifecycle.quiet_secs = 3;
    let (events, _) = run(Scenario::PulseWave, &params, short);
    assert_eq!(ended(&events).len(), truth.attacks.len());
}

#[test]
fn mixed_scenario_finds_every_attack() {
    // `mixed` runs each attack at 20 kpps for under 2 s: the carpet-bombing phase puts about
    // 20 kpps on the /24, under the 30 kpps default; lower the prefix threshold.
    let params = GenParams::for_scenario(Scenario::Mixed);
    let mut config = protected_config();
    config.aggregation.thresholds.pps = 10_000;
    check(Scenario::Mixed, &params, config);
}

#[test]
fn benign_traffic_raises_nothing() {
    for scenario in [Scenario::BenignWeb, Scenario::BulkOutbound] {
        let params = GenParams::for_scenario(scenario);
        let (events, _) = run(scenario, &params, protected_config());
        assert!(events.is_empty(), "{scenario}: {events:#?}");
    }
    // Without protected networks the bulk transfer's server still does not look attacked.
    let (events, _) = run(Scenario::BenignWeb, &GenParams::default(), DetectConfig::default());
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn readme_sample_rates_with_lowered_thresholds() {
    // samples/mixed.pcap: background 300 pps, attack 1500 pps, snaplen 96.
    let params = GenParams {
        seed: 7,
        background_pps: 300,
        attack_pps: 1500,
        snaplen: Some(96),
        ..GenParams::for_scenario(Scenario::Mixed)
    };
    let mut config = protected_config();
    config.thresholds.pps = 500;
    config.aggregation.thresholds.pps = 1000;
    check(Scenario::Mixed, &params, config);
}

#[test]
fn engine_state_per_host_is_small() {
    let bytes = Engine::bytes_per_tracked_host();
    eprintln!("bytes per tracked host-second: {bytes}");
    assert!(bytes <= 320, "{bytes}");
}
