//! End-to-end checks of generated captures against an independent re-count.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use common::{Pkt, check_against_truth, small};
use rampart_trafficgen::{
    AmplificationVector, AttackVector, DEFAULT_COMPROMISED_HOST, DEFAULT_DNS_SERVER, DEFAULT_TARGET_V4,
    DEFAULT_TARGET_V6, DNS_ABUSE_VICTIM, Direction, GenError, GenParams, GroundTruth, OUTBOUND_SYN_VICTIM,
    Scenario, Totals, generate, generate_to_file, truth_path,
};

fn gen_bytes(s: Scenario, p: &GenParams) -> (Vec<u8>, GroundTruth) {
    let mut out = Vec::new();
    let t = generate(s, p, &mut out).expect("generate");
    (out, t)
}

/// Attack-only capture (no background), so every packet belongs to the attack.
fn attack_only(s: Scenario) -> (Vec<Pkt>, GroundTruth) {
    let p = GenParams { background_pps: 0, ..small(11) };
    let (data, truth) = gen_bytes(s, &p);
    let pkts = check_against_truth(&data, &truth);
    assert!(!pkts.is_empty(), "{s}");
    assert_eq!(truth.attacks.iter().map(|a| a.packets).sum::<u64>(), pkts.len() as u64, "{s}");
    (pkts, truth)
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    for s in [
        Scenario::BenignWeb,
        Scenario::SynFlood,
        Scenario::Amplification(AmplificationVector::Dns),
        Scenario::CarpetBombingV6,
        Scenario::BulkOutbound,
        Scenario::OutboundSynFlood,
        Scenario::DnsReflectorAbuse,
    ] {
        let p = GenParams { duration_secs: 1.0, attack_start_secs: 0.2, ..small(5) };
        let (a, ta) = gen_bytes(s, &p);
        let (b, tb) = gen_bytes(s, &p);
        assert!(a == b, "{s}: same seed must give identical bytes");
        assert_eq!(ta, tb);
        let (c, _) = gen_bytes(s, &GenParams { seed: 6, ..p });
        assert!(a != c, "{s}: different seed must differ");
    }
}

#[test]
fn every_scenario_matches_its_truth() {
    for &s in Scenario::ALL {
        let p = match s {
            Scenario::PulseWave => GenParams {
                duration_secs: 3.0,
                attack_duration_secs: None,
                pulse_on_secs: 0.5,
                pulse_off_secs: 0.5,
                ..small(3)
            },
            Scenario::Mixed => GenParams { duration_secs: 3.0, attack_duration_secs: Some(2.5), ..small(3) },
            _ => small(3),
        };
        let (data, truth) = gen_bytes(s, &p);
        check_against_truth(&data, &truth);
        assert_eq!(truth.scenario, s.name());
        assert!(truth.totals.packets > 1_000, "{s}: {}", truth.totals.packets);
        assert!(!truth.capture.truncated_by_max_packets);
        match s {
            Scenario::BenignWeb | Scenario::BulkOutbound => assert!(truth.attacks.is_empty(), "{s}"),
            _ => assert!(!truth.attacks.is_empty(), "{s}"),
        }
        for a in &truth.attacks {
            assert!(a.start_ns <= a.end_ns && a.packets > 0);
            assert!(a.start >= truth.capture.window_start && a.end < truth.capture.window_end);
            // Outbound attacks name their outside victim and their outbound share; inbound ones
            // carry neither.
            if s.is_outbound() {
                assert_eq!(a.direction, Direction::Outbound, "{s}");
                assert!(a.victim.is_some() && a.outbound.is_some_and(|o| o.packets > 0), "{s}: {a:?}");
            } else {
                assert_eq!(a.direction, Direction::Inbound, "{s}");
                assert!(a.victim.is_none() && a.outbound.is_none(), "{s}: {a:?}");
            }
        }
        // The truth survives a JSON round trip.
        assert_eq!(GroundTruth::from_json(&truth.to_json().unwrap()).unwrap(), truth);
    }
}

#[test]
fn tcp_floods_carry_their_flags() {
    let (pkts, truth) = attack_only(Scenario::SynFlood);
    assert_eq!(truth.attacks[0].vector, AttackVector::SynFlood);
    assert_eq!(truth.attacks[0].target, "198.51.100.10");
    let target = IpAddr::V4(DEFAULT_TARGET_V4);
    let (mut ttls, mut srcs, mut sports, mut sizes) =
        (HashSet::new(), HashSet::new(), HashSet::new(), HashSet::new());
    for p in &pkts {
        assert_eq!(p.dst, target);
        assert_eq!(p.tcp_flags(), Some(0x02), "SYN only");
        assert!((40..=60).contains(&p.ip_len), "{}", p.ip_len);
        ttls.insert(p.ttl);
        srcs.insert(p.src);
        sports.insert(p.ports().unwrap().0);
        sizes.insert(p.ip_len);
    }
    assert!(ttls.len() > 100 && srcs.len() > pkts.len() * 9 / 10 && sports.len() > 1_000);
    assert!(sizes.len() >= 4, "varied option lengths");

    let (pkts, _) = attack_only(Scenario::AckFlood);
    assert!(pkts.iter().all(|p| p.tcp_flags() == Some(0x10)));
    let (pkts, _) = attack_only(Scenario::RstFlood);
    assert!(pkts.iter().all(|p| p.tcp_flags().is_some_and(|f| f & 0x04 != 0 && f & 0x02 == 0)));
}

#[test]
fn udp_icmp_and_fragment_floods() {
    let (pkts, truth) = attack_only(Scenario::UdpFlood);
    assert_eq!(truth.attacks[0].vector, AttackVector::UdpFlood);
    let dports: HashSet<u16> = pkts.iter().map(|p| p.ports().unwrap().1).collect();
    assert!(dports.len() > 1_000);
    for p in &pkts {
        assert_eq!(p.proto, 17);
        let payload = p.l4.len() - 8;
        assert!((32..=1200).contains(&payload), "{payload}");
    }
    // Fixed payload size.
    let p = GenParams { background_pps: 0, flood_payload_min: 100, flood_payload_max: 100, ..small(2) };
    let (data, truth) = gen_bytes(Scenario::UdpFlood, &p);
    assert!(check_against_truth(&data, &truth).iter().all(|p| p.ip_len == 128));

    let (pkts, truth) = attack_only(Scenario::IcmpFlood);
    assert_eq!(truth.attacks[0].vector, AttackVector::IcmpFlood);
    assert!(pkts.iter().all(|p| p.proto == 1 && p.l4[0] == 8 && p.l4[1] == 0));

    let (pkts, truth) = attack_only(Scenario::FragmentFlood);
    assert_eq!(truth.attacks[0].vector, AttackVector::IpFragmentFlood);
    for p in &pkts {
        assert!(p.frag_offset > 0, "non-initial fragments only");
        assert!(p.frag_offset + p.l4.len() <= 65_515);
        if p.more_fragments {
            assert_eq!(p.l4.len() % 8, 0);
        }
    }
    assert!(pkts.iter().any(|p| p.more_fragments) && pkts.iter().any(|p| !p.more_fragments));
}

#[test]
fn carpet_bombing_spreads_over_the_prefix() {
    let (pkts, truth) = attack_only(Scenario::CarpetBombing);
    assert_eq!(truth.attacks[0].vector, AttackVector::CarpetBombing);
    assert_eq!(truth.attacks[0].target, "198.51.100.0/24");
    let mut per_host: HashMap<IpAddr, u64> = HashMap::new();
    for p in &pkts {
        match p.dst {
            IpAddr::V4(a) => assert_eq!(&a.octets()[..3], &[198, 51, 100]),
            IpAddr::V6(_) => panic!("v4 expected"),
        }
        *per_host.entry(p.dst).or_default() += 1;
    }
    assert_eq!(per_host.len(), 256, "every host hit");
    let max = per_host.values().max().copied().unwrap_or(0);
    assert!(max * 50 < pkts.len() as u64, "no host gets a large share");

    let (pkts, truth) = attack_only(Scenario::CarpetBombingV6);
    assert_eq!(truth.attacks[0].target, "2001:db8:100::/120");
    let hosts: HashSet<IpAddr> = pkts.iter().map(|p| p.dst).collect();
    assert_eq!(hosts.len(), 256);
    assert!(pkts.iter().all(|p| p.v6 && p.proto == 17));
}

#[test]
fn amplification_vectors_reflect_from_their_port_and_fragment() {
    for v in AmplificationVector::ALL {
        let s = Scenario::Amplification(v);
        let (pkts, truth) = attack_only(s);
        let a = &truth.attacks[0];
        assert_eq!(a.vector, v.attack_vector());
        assert_eq!(a.source_port, Some(v.source_port()));
        let mut reflectors = HashSet::new();
        // Reassemble per (src, ident) and check each datagram.
        let mut dgrams: BTreeMap<(IpAddr, u16), Vec<&Pkt>> = BTreeMap::new();
        for p in &pkts {
            assert_eq!(p.proto, 17);
            assert_eq!(p.dst, IpAddr::V4(DEFAULT_TARGET_V4));
            reflectors.insert(p.src);
            if p.frag_offset == 0 {
                assert_eq!(p.ports().unwrap().0, v.source_port(), "{s}");
            }
            dgrams.entry((p.src, p.ident)).or_default().push(p);
        }
        assert!(reflectors.len() <= 64 && reflectors.len() > 10, "{s}: {}", reflectors.len());
        let mut fragmented = 0;
        for frags in dgrams.values() {
            if frags.len() == 1 && !frags[0].is_fragment() {
                continue;
            }
            // An ident may repeat across datagrams of one reflector; check each run in order.
            let mut whole = Vec::new();
            for f in frags {
                if !f.is_fragment() {
                    continue;
                }
                if f.frag_offset == 0 {
                    whole.clear();
                }
                assert_eq!(f.frag_offset, whole.len(), "{s}: contiguous fragments");
                whole.extend_from_slice(&f.l4);
                if !f.more_fragments {
                    fragmented += 1;
                    let udp_len = usize::from(u16::from_be_bytes([whole[4], whole[5]]));
                    assert_eq!(udp_len, whole.len(), "{s}: UDP length spans the fragments");
                    let (IpAddr::V4(src), IpAddr::V4(dst)) = (f.src, f.dst) else { unreachable!() };
                    let mut ph = Vec::new();
                    ph.extend_from_slice(&src.octets());
                    ph.extend_from_slice(&dst.octets());
                    ph.extend_from_slice(&[0, 17]);
                    ph.extend_from_slice(&(whole.len() as u16).to_be_bytes());
                    assert!(common::verify(&ph, &whole), "{s}: UDP checksum over the reassembled datagram");
                    assert!(whole.len() > 1_480);
                }
            }
        }
        match v {
            AmplificationVector::Dns | AmplificationVector::Memcached | AmplificationVector::Cldap => {
                assert!(fragmented > 100, "{s}: {fragmented}")
            }
            _ => assert_eq!(fragmented, 0, "{s}"),
        }
        if v == AmplificationVector::Ntp {
            assert!(pkts.iter().all(|p| p.ip_len == 468 && p.l4[8] == 0xd7));
        }
        if v == AmplificationVector::Ssdp {
            assert!(pkts.iter().all(|p| p.l4[8..].starts_with(b"HTTP/1.1 200 OK")));
        }
    }
}

#[test]
fn ipv6_floods() {
    let attacker = |a: &IpAddr| matches!(a, IpAddr::V6(v) if v.segments()[..3] == [0x2001, 0xdb8, 0xffff]);
    let (pkts, truth) = attack_only(Scenario::SynFloodV6);
    assert_eq!((truth.attacks[0].ip_version, truth.attacks[0].vector), (6, AttackVector::SynFlood));
    assert!(pkts.iter().all(|p| p.v6 && p.tcp_flags() == Some(0x02) && attacker(&p.src)));
    assert!(pkts.iter().all(|p| p.dst == IpAddr::V6(DEFAULT_TARGET_V6)));
    let (pkts, _) = attack_only(Scenario::UdpFloodV6);
    assert!(pkts.iter().all(|p| p.v6 && p.proto == 17 && attacker(&p.src)));
    let (pkts, truth) = attack_only(Scenario::IcmpFloodV6);
    assert_eq!(truth.attacks[0].ip_protocol, 58);
    assert!(pkts.iter().all(|p| p.proto == 58 && p.l4[0] == 128));
    // IPv6 scenarios carry IPv6 background too.
    let (data, truth) = gen_bytes(Scenario::SynFloodV6, &small(4));
    let pkts = check_against_truth(&data, &truth);
    assert!(pkts.iter().any(|p| p.v6 && p.proto == 6 && p.tcp_flags() == Some(0x12)), "v6 SYN-ACKs");
}

#[test]
fn pulse_wave_has_bursts_and_gaps() {
    let p = GenParams {
        duration_secs: 6.0,
        attack_start_secs: 0.5,
        attack_duration_secs: None,
        pulse_on_secs: 1.0,
        pulse_off_secs: 1.5,
        background_pps: 0,
        ..small(9)
    };
    let (data, truth) = gen_bytes(Scenario::PulseWave, &p);
    let pkts = check_against_truth(&data, &truth);
    assert_eq!(truth.attacks.len(), 3, "bursts at 0.5, 3.0, 5.5");
    for w in truth.attacks.windows(2) {
        let gap = w[1].start - w[0].end;
        assert!(gap > 1.4 && gap < 1.6, "{gap}");
    }
    for (i, a) in truth.attacks.iter().enumerate() {
        let len = a.end - a.start;
        // The last burst is cut by the end of the capture at 6.0 s.
        let want = if i == 2 { 0.5 } else { 1.0 };
        assert!(len < want && len > want - 0.01, "{len}");
        assert_eq!(a.vector, AttackVector::UdpFlood);
    }
    let mut gaps = pkts.windows(2).map(|w| w[1].ts_ns - w[0].ts_ns).collect::<Vec<_>>();
    gaps.sort_unstable();
    assert!(gaps[gaps.len() - 1] > 1_400_000_000);
}

#[test]
fn bulk_outbound_is_benign_and_large() {
    let (data, truth) = gen_bytes(Scenario::BulkOutbound, &small(1));
    check_against_truth(&data, &truth);
    assert!(truth.attacks.is_empty());
    let b = &truth.benign.bulk_transfers[0];
    assert_eq!(b.server.to_string(), "198.51.100.20");
    assert!(b.outbound.bytes > 10 * b.inbound.bytes);
    assert!(b.outbound.packets > 5_000);
    assert!(truth.per_direction["outbound"].bytes > truth.per_direction["inbound"].bytes);
}

#[test]
fn outbound_syn_flood_leaves_the_compromised_host() {
    let (pkts, truth) = attack_only(Scenario::OutboundSynFlood);
    let a = &truth.attacks[0];
    assert_eq!((a.vector, a.direction), (AttackVector::SynFlood, Direction::Outbound));
    assert_eq!(a.target, "198.51.100.66");
    assert_eq!(a.victim.as_deref(), Some("203.0.113.10"));
    assert_eq!((a.ip_version, a.ip_protocol, a.source_port, a.reflectors), (4, 6, None, None));
    assert!(!a.spoofed_sources);
    assert_eq!(a.outbound, Some(Totals { packets: a.packets, bytes: a.bytes }), "all of it outbound");
    let (host, victim) = (IpAddr::V4(DEFAULT_COMPROMISED_HOST), IpAddr::V4(OUTBOUND_SYN_VICTIM));
    let mut sports = HashSet::new();
    for p in &pkts {
        assert_eq!((p.src, p.dst), (host, victim));
        assert_eq!(p.tcp_flags(), Some(0x02), "SYN only");
        assert_eq!(p.ports().unwrap().1, 443);
        assert!((40..=60).contains(&p.ip_len), "{}", p.ip_len);
        assert_eq!(p.ttl, 64, "one sender, one hop count");
        sports.insert(p.ports().unwrap().0);
    }
    assert!(sports.len() > 1_000, "random source ports: {}", sports.len());
    // 10 kpps for 1 s.
    assert!((9_000..=11_000).contains(&pkts.len()), "{}", pkts.len());
    assert_eq!(truth.per_direction.keys().collect::<Vec<_>>(), ["outbound"]);
    assert_eq!(truth.per_destination.keys().collect::<Vec<_>>(), [&victim]);

    // On the background, the host sends nothing but the flood.
    let (data, truth) = gen_bytes(Scenario::OutboundSynFlood, &small(12));
    let pkts = check_against_truth(&data, &truth);
    let from_host = pkts.iter().filter(|p| p.src == host).count() as u64;
    assert_eq!(from_host, truth.attacks[0].packets);
    assert!(truth.benign.web.packets > 1_000);
}

#[test]
fn dns_reflector_abuse_answers_spoofed_queries_with_large_responses() {
    let (pkts, truth) = attack_only(Scenario::DnsReflectorAbuse);
    let a = &truth.attacks[0];
    assert_eq!((a.vector, a.direction), (AttackVector::DnsAmplification, Direction::Outbound));
    assert_eq!(a.target, "198.51.100.53");
    assert_eq!(a.victim.as_deref(), Some("203.0.113.77"));
    assert_eq!((a.ip_version, a.ip_protocol, a.source_port, a.reflectors), (4, 17, Some(53), Some(1)));
    assert!(!a.spoofed_sources);
    let (server, victim) = (IpAddr::V4(DEFAULT_DNS_SERVER), IpAddr::V4(DNS_ABUSE_VICTIM));
    let (mut queries, mut answers) = (Totals::default(), Totals::default());
    // (victim port, transaction ID) of queries not answered yet.
    let mut owed: HashMap<(u16, [u8; 2]), u64> = HashMap::new();
    for p in &pkts {
        assert_eq!(p.proto, 17);
        assert!(!p.is_fragment());
        let (sport, dport) = p.ports().unwrap();
        let id = [p.l4[8], p.l4[9]];
        if p.src == victim {
            assert_eq!((p.dst, dport), (server, 53));
            assert!((60..=80).contains(&p.ip_len), "small query: {}", p.ip_len);
            assert_eq!(p.l4[10] & 0x80, 0, "QR clear");
            *owed.entry((sport, id)).or_default() += 1;
            queries.packets += 1;
            queries.bytes += p.ip_len as u64;
        } else {
            assert_eq!((p.src, p.dst, sport), (server, victim, 53));
            assert!((1_200..=1_400).contains(&p.ip_len), "large answer: {}", p.ip_len);
            assert_eq!(p.l4[10] & 0x80, 0x80, "QR set");
            let n = owed.get_mut(&(dport, id)).expect("an answer follows its query");
            *n -= 1;
            if *n == 0 {
                owed.remove(&(dport, id));
            }
            answers.packets += 1;
            answers.bytes += p.ip_len as u64;
        }
    }
    // The attack window closes 0.5 s before the capture: every query got its answer.
    assert!(owed.is_empty(), "{} unanswered", owed.len());
    assert_eq!(queries.packets, answers.packets, "one answer per query");
    assert!((9_000..=11_000).contains(&queries.packets), "10 kpps for 1 s: {}", queries.packets);
    assert!(answers.bytes >= 10 * queries.bytes, "{answers:?} vs {queries:?}");
    assert_eq!(a.outbound, Some(answers));
    assert_eq!(Totals { packets: a.packets, bytes: a.bytes }, {
        Totals { packets: queries.packets + answers.packets, bytes: queries.bytes + answers.bytes }
    });
    assert_eq!(truth.per_direction["outbound"], answers);
    assert_eq!(truth.per_direction["inbound"], queries);
}

#[test]
fn outbound_attacks_honour_the_window_rate_and_target() {
    for s in [Scenario::OutboundSynFlood, Scenario::DnsReflectorAbuse] {
        let host: IpAddr = "198.51.100.99".parse().unwrap();
        let p = GenParams {
            attack_pps: 4_000,
            attack_start_secs: 0.25,
            attack_duration_secs: Some(0.5),
            target: Some(host),
            ..small(21)
        };
        let (data, truth) = gen_bytes(s, &p);
        let pkts = check_against_truth(&data, &truth);
        let a = &truth.attacks[0];
        assert_eq!(a.target, "198.51.100.99", "{s}");
        let start = truth.capture.window_start + 0.25;
        assert!(a.start >= start && a.start < start + 0.01, "{s}: {}", a.start);
        // Answers trail their queries by at most 250 us.
        assert!(a.end < start + 0.5 + 0.000_3 && a.end > start + 0.49, "{s}: {}", a.end);
        let sent = pkts.iter().filter(|q| q.src == host).count();
        assert!((1_800..=2_200).contains(&sent), "{s}: 4 kpps for 0.5 s: {sent}");
        assert_eq!(sent as u64, a.outbound.unwrap().packets);
        // No rate, no attack.
        let (_, truth) = gen_bytes(s, &GenParams { attack_pps: 0, ..p.clone() });
        assert!(truth.attacks.is_empty(), "{s}");
        // The sender must be protected, or the truth's "outbound" would be wrong.
        let outside = GenParams { target: Some(IpAddr::V4(OUTBOUND_SYN_VICTIM)), ..p };
        let err = generate(s, &outside, Vec::new()).unwrap_err();
        assert!(matches!(err, GenError::InvalidParam { name: "target", .. }), "{s}: {err}");
    }
}

#[test]
fn snaplen_shortens_stored_frames_only() {
    let p = small(2);
    let (whole, truth) = gen_bytes(Scenario::DnsReflectorAbuse, &p);
    let (cut, cut_truth) = gen_bytes(Scenario::DnsReflectorAbuse, &GenParams { snaplen: Some(96), ..p });
    assert_eq!(cut_truth.attacks, truth.attacks);
    assert_eq!(cut_truth.totals, truth.totals);
    assert_eq!(u32::from_le_bytes(cut[16..20].try_into().unwrap()), 96);
    assert!((cut.len() as u64) * 4 < whole.len() as u64, "{} vs {}", cut.len(), whole.len());
    assert_eq!(cut_truth.capture.file_bytes, cut.len() as u64);
}

#[test]
fn sample_truth_still_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/mixed.pcap.truth.json");
    let json = std::fs::read_to_string(path).unwrap();
    let truth = GroundTruth::from_json(&json).unwrap();
    assert_eq!(truth.attacks.len(), 7);
    assert!(truth.attacks.iter().all(|a| a.direction == Direction::Inbound && a.victim.is_none()));
    // Inbound attacks are written as before: no `victim` or `outbound` keys.
    assert_eq!(truth.to_json().unwrap().trim_end(), json.trim_end());
}

#[test]
fn mixed_runs_attacks_one_after_another() {
    let p =
        GenParams { duration_secs: 8.0, attack_start_secs: 0.5, attack_duration_secs: Some(7.0), ..small(8) };
    let (data, truth) = gen_bytes(Scenario::Mixed, &p);
    check_against_truth(&data, &truth);
    let vectors: Vec<AttackVector> = truth.attacks.iter().map(|a| a.vector).collect();
    assert_eq!(
        vectors,
        [
            AttackVector::SynFlood,
            AttackVector::UdpFlood,
            AttackVector::DnsAmplification,
            AttackVector::CarpetBombing,
            AttackVector::SynFlood,
            AttackVector::IpFragmentFlood,
            AttackVector::IcmpFlood
        ]
    );
    for w in truth.attacks.windows(2) {
        assert!(w[0].end < w[1].start, "no overlap");
    }
    assert!(truth.benign.web.packets > 5_000);
}

#[test]
fn benign_web_sessions_are_complete() {
    let p = GenParams { duration_secs: 3.0, ..small(4) };
    let (data, truth) = gen_bytes(Scenario::BenignWeb, &p);
    let pkts = check_against_truth(&data, &truth);
    let b = &truth.benign;
    assert!(b.web_sessions > 50 && b.web_sessions_completed > b.web_sessions / 2);
    assert!(b.web_clients > 40 && b.web_servers > 20);
    let rate = truth.totals.packets as f64 / 3.0;
    assert!(rate > 1_500.0 && rate < 2_600.0, "steady rate near 2000 pps: {rate}");
    // Both directions, ports 80 and 443 only on the server side, DF set.
    let mut ports = HashSet::new();
    for p in &pkts {
        let (sp, dp) = p.ports().unwrap();
        ports.insert(if sp == 80 || sp == 443 { sp } else { dp });
        assert!(p.dont_fragment);
    }
    assert_eq!(ports, HashSet::from([80, 443]));
    assert!(truth.per_direction["inbound"].packets > 0 && truth.per_direction["outbound"].packets > 0);
}

#[test]
fn max_packets_cap_is_respected() {
    for s in [
        Scenario::SynFlood,
        Scenario::Amplification(AmplificationVector::Memcached),
        Scenario::DnsReflectorAbuse,
        Scenario::Mixed,
    ] {
        let p = GenParams { max_packets: Some(1_234), ..small(1) };
        let (data, truth) = gen_bytes(s, &p);
        let pkts = check_against_truth(&data, &truth);
        assert_eq!(pkts.len(), 1_234);
        assert!(truth.capture.truncated_by_max_packets);
    }
    let p = GenParams { max_packets: Some(0), ..small(1) };
    let (data, truth) = gen_bytes(Scenario::SynFlood, &p);
    assert_eq!(data.len(), 24);
    assert_eq!(truth.totals.packets, 0);
    assert!(truth.attacks.is_empty());
}

#[test]
fn nanosecond_timestamps() {
    let p = GenParams { nanosecond: true, ..small(1) };
    let (data, truth) = gen_bytes(Scenario::UdpFlood, &p);
    let pkts = check_against_truth(&data, &truth);
    assert!(pkts.iter().any(|p| p.ts_ns % 1_000 != 0));
    let (data, _) = gen_bytes(Scenario::UdpFlood, &GenParams { nanosecond: false, ..p });
    assert!(common::read_pcap(&data).2.iter().all(|r| r.ts_ns % 1_000 == 0));
}

#[test]
fn generate_to_file_writes_capture_and_truth() {
    let dir = std::env::temp_dir().join(format!("rampart-trafficgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("syn.pcap");
    let truth = generate_to_file(Scenario::SynFlood, &small(1), &path).unwrap();
    let data = std::fs::read(&path).unwrap();
    check_against_truth(&data, &truth);
    let json = std::fs::read_to_string(truth_path(&path)).unwrap();
    assert_eq!(GroundTruth::from_json(&json).unwrap(), truth);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_params_are_reported() {
    let p = GenParams { duration_secs: -1.0, ..GenParams::default() };
    let err = generate(Scenario::SynFlood, &p, Vec::new()).unwrap_err();
    assert!(matches!(err, GenError::InvalidParam { name: "duration_secs", .. }), "{err}");
    let p = GenParams { pulse_on_secs: 1e-9, pulse_off_secs: 0.0, ..GenParams::default() };
    let err = generate(Scenario::PulseWave, &p, Vec::new()).unwrap_err();
    assert!(matches!(err, GenError::InvalidParam { name: "pulse_on_secs", .. }), "{err}");
}

#[test]
fn custom_target_is_used() {
    let target: IpAddr = "198.51.100.77".parse().unwrap();
    let p = GenParams { target: Some(target), background_pps: 0, ..small(1) };
    let (data, truth) = gen_bytes(Scenario::SynFlood, &p);
    check_against_truth(&data, &truth);
    assert_eq!(truth.attacks[0].target, "198.51.100.77");
    assert_eq!(truth.per_destination.keys().collect::<Vec<_>>(), [&target]);
}

#[test]
fn syn_ack_reflection_comes_from_web_servers() {
    let (pkts, truth) = attack_only(Scenario::SynAckReflection);
    let a = &truth.attacks[0];
    assert_eq!((a.vector, a.ip_protocol, a.spoofed_sources), (AttackVector::SynAckReflection, 6, false));
    let mut servers = HashSet::new();
    for p in &pkts {
        assert_eq!((p.dst, p.tcp_flags()), (IpAddr::V4(DEFAULT_TARGET_V4), Some(0x12)));
        let (sport, dport) = p.ports().unwrap();
        assert!(matches!(sport, 80 | 443) && dport >= 1024, "{sport} {dport}");
        servers.insert(p.src);
    }
    assert!(servers.len() <= 64 && servers.len() > 10, "{}", servers.len());
}

#[test]
fn bacnet_dhdiscover_is_two_reflections_at_one_host() {
    let (pkts, truth) = attack_only(Scenario::BacnetDhdiscover);
    let vectors: Vec<AttackVector> = truth.attacks.iter().map(|a| a.vector).collect();
    assert_eq!(vectors, [AttackVector::BacnetAmplification, AttackVector::DhdiscoverAmplification]);
    assert!(truth.attacks.iter().all(|a| a.target == DEFAULT_TARGET_V4.to_string()));
    let from = |port: u16| pkts.iter().filter(|p| p.ports().map(|p| p.0) == Some(port)).count() as u64;
    assert_eq!((from(47808), from(37810)), (truth.attacks[0].packets, truth.attacks[1].packets));
    assert!(pkts.iter().filter(|p| p.ports().map(|p| p.0) == Some(37810)).all(|p| p.l4[12..16] == *b"DHIP"));
}
