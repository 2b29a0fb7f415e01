//! The XDP program through BPF_PROG_TEST_RUN: every rule type, expiry, counters, reconcile,
//! and pinned maps surviving the loader. Needs root (CI runs as root).
#![cfg(feature = "xdp")]

mod support;

use std::path::PathBuf;

use ipnet::IpNet;
use rampart_contract::{
    Action, Decision, DecisionId, EventTime, FragmentMatch, LengthRange, Origin, PortRange, Scope, Signature,
    TcpFlags,
};
use rampart_filter::plan::{SynGuard, SynMode, plan};
use rampart_filter::xdp::ids::RuleKey;
use rampart_filter::xdp::time::boot_now_ns;
use rampart_filter::xdp::{Capacity, Options, XdpError, XdpFilter};
use support::{ACK, Pkt, SYN, TCP, UDP, checksum};

const DROP: u32 = 1;
const PASS: u32 = 2;
const TX: u32 = 3;

fn small() -> Capacity {
    Capacity {
        rules: 1024,
        v4_groups: 64,
        v4_hosts: 1024,
        v6_prefixes: 1024,
        destinations: 64,
        signatures: 64,
        buckets: 1024,
        lpm_v4: 1,
        lpm_v6: 1,
    }
}

fn open(pin_dir: Option<PathBuf>) -> Option<XdpFilter> {
    open_with(pin_dir, true)
}

fn open_with(pin_dir: Option<PathBuf>, syn_cookies: bool) -> Option<XdpFilter> {
    if !support::is_root() {
        support::skip("BPF_PROG_TEST_RUN needs root");
        return None;
    }
    support::ensure_bpffs();
    match XdpFilter::open(Options { pin_dir, capacity: small(), syn_cookies, ..Options::default() }) {
        Ok(f) => Some(f),
        Err(e @ XdpError::Unavailable(_)) => {
            support::skip(&e.to_string());
            None
        }
        Err(e) => panic!("loading the XDP program: {e}"),
    }
}

fn wall_now() -> EventTime {
    EventTime::from_unix_micros(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64,
    )
}

fn decision(id: u64, scope: Scope, action: Action, now: EventTime, ttl_ms: u64) -> Decision {
    Decision {
        id: DecisionId(id),
        scope,
        action,
        origin: Origin::Operator { name: "test".into() },
        created: EventTime::from_unix_micros(now.unix_micros() - 1_000_000),
        expires: Some(EventTime::from_unix_micros(now.unix_micros() + ttl_ms * 1_000)),
        reason: "test".into(),
    }
}

fn prefix(s: &str) -> Scope {
    Scope::Prefix(s.parse().unwrap())
}

fn apply(f: &mut XdpFilter, decisions: &[Decision], guards: &[SynGuard]) {
    let now = wall_now();
    let p = plan(decisions, guards, now);
    f.reconcile(&p, now, boot_now_ns().unwrap()).unwrap();
}

fn verdict(f: &XdpFilter, p: &Pkt) -> u32 {
    f.test_run(&p.frame(), 1).unwrap().0
}

#[test]
fn source_prefixes_at_every_length_drop_and_count() {
    let Some(mut f) = open(None) else { return };
    let now = wall_now();
    let ds = vec![
        decision(1, prefix("10.0.0.0/8"), Action::Discard, now, 60_000),
        decision(2, prefix("10.1.0.0/16"), Action::RateLimitPackets { packets_per_sec: 0 }, now, 60_000),
        decision(3, prefix("198.51.100.0/24"), Action::Discard, now, 60_000),
        decision(4, prefix("203.0.113.128/25"), Action::Discard, now, 60_000),
        decision(5, Scope::Address("203.0.113.7".parse().unwrap()), Action::Discard, now, 60_000),
        decision(6, prefix("2001:db8::/32"), Action::Discard, now, 60_000),
        decision(7, prefix("2001:db8:1::/48"), Action::Discard, now, 60_000),
        decision(8, prefix("2001:db9:0:1::/64"), Action::Discard, now, 60_000),
        decision(9, Scope::Address("2001:dba::9".parse().unwrap()), Action::Discard, now, 60_000),
        decision(10, prefix("2001:de0::/28"), Action::Discard, now, 60_000),
    ];
    apply(&mut f, &ds, &[]);
    let dst4 = "192.0.2.1";
    let dst6 = "2001:db8:ffff::1";
    let cases = [
        ("10.200.0.1", dst4, DROP, Some(1)),
        ("10.1.2.3", dst4, DROP, Some(2)),
        ("11.0.0.1", dst4, PASS, None),
        ("198.51.100.255", dst4, DROP, Some(3)),
        ("198.51.101.0", dst4, PASS, None),
        ("203.0.113.200", dst4, DROP, Some(4)),
        ("203.0.113.7", dst4, DROP, Some(5)),
        ("203.0.113.8", dst4, PASS, None),
        ("2001:db8:2::1", dst6, DROP, Some(6)),
        ("2001:db8:1::1", dst6, DROP, Some(7)),
        ("2001:db9:0:1:ffff::1", dst6, DROP, Some(8)),
        ("2001:db9:0:2::1", dst6, PASS, None),
        ("2001:dba::9", dst6, DROP, Some(9)),
        ("2001:dba::a", dst6, PASS, None),
        ("2001:de5::1", dst6, DROP, Some(10)),
        ("2001:df0::1", dst6, PASS, None),
    ];
    let mut expected = std::collections::HashMap::<u64, (u64, u64)>::new();
    for (src, dst, want, rule) in cases {
        let p = Pkt::udp(src, dst, 4000, 53);
        assert_eq!(verdict(&f, &p), want, "{src}");
        if let Some(r) = rule {
            let e = expected.entry(r).or_default();
            e.0 += 1;
            e.1 += p.ip_len();
        }
    }
    for (id, (packets, bytes)) in expected {
        let c = f.decision_counters(DecisionId(id)).unwrap();
        assert_eq!((c.packets, c.bytes), (packets, bytes), "decision {id}");
    }
    // Withdrawn decisions stop matching at once; the others keep their counters.
    apply(&mut f, &ds[2..3], &[]);
    assert_eq!(verdict(&f, &Pkt::udp("10.200.0.1", dst4, 1, 2)), PASS);
    assert_eq!(verdict(&f, &Pkt::udp("2001:db8:1::1", dst6, 1, 2)), PASS);
    assert_eq!(verdict(&f, &Pkt::udp("198.51.100.1", dst4, 1, 2)), DROP);
    assert_eq!(f.decision_counters(DecisionId(3)).unwrap().packets, 2);
    // Non-IP frames pass.
    let mut arp = Pkt::udp("198.51.100.1", dst4, 1, 2).frame();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(f.test_run(&arp, 1).unwrap().0, PASS);
}

#[test]
fn signatures_drop_and_rate_limit_per_destination() {
    let Some(mut f) = open(None) else { return };
    let now = wall_now();
    let dns = Signature {
        dst_prefixes: vec!["192.0.2.10/32".parse().unwrap()],
        protocol: Some(UDP),
        src_ports: vec![PortRange::single(53), PortRange::single(123)],
        packet_len: Some(LengthRange { min: 50, max: 1500 }),
        ..Signature::default()
    };
    let syn = Signature {
        dst_prefixes: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:5::/48".parse().unwrap()],
        protocol: Some(TCP),
        dst_ports: vec![PortRange { first: 80, last: 90 }],
        tcp_flags: Some(TcpFlags { value: SYN, mask: SYN | ACK }),
        ..Signature::default()
    };
    let frags = Signature {
        dst_prefixes: vec!["192.0.2.20/32".parse().unwrap()],
        fragment: Some(FragmentMatch::NonInitial),
        ..Signature::default()
    };
    let ds = vec![
        decision(1, Scope::Signature(Box::new(dns)), Action::Discard, now, 60_000),
        decision(
            2,
            Scope::Signature(Box::new(syn)),
            Action::RateLimitPackets { packets_per_sec: 3 },
            now,
            60_000,
        ),
        decision(3, Scope::Signature(Box::new(frags)), Action::Discard, now, 60_000),
    ];
    apply(&mut f, &ds, &[]);
    let src = "198.51.100.1";
    assert_eq!(verdict(&f, &Pkt::udp(src, "192.0.2.10", 53, 4000)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp(src, "192.0.2.10", 123, 4000)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp(src, "192.0.2.10", 54, 4000)), PASS, "other source port");
    assert_eq!(verdict(&f, &Pkt::udp(src, "192.0.2.11", 53, 4000)), PASS, "other destination");
    assert_eq!(
        verdict(&f, &Pkt { payload: 1, ..Pkt::udp(src, "192.0.2.10", 53, 4000) }),
        PASS,
        "shorter than the range"
    );
    assert_eq!(verdict(&f, &Pkt::tcp(src, "192.0.2.10", 53, 4000, SYN)), PASS, "other protocol");
    // Rate limit: three SYNs a second to the /24 (all sources together), then drops; SYN-ACKs and
    // other ports are not in the signature.
    let syn_to = |dst: &str, port| Pkt::tcp(src, dst, 40_000, port, SYN);
    let verdicts: Vec<u32> = (0..5)
        .map(|i| verdict(&f, &syn_to(if i % 2 == 0 { "192.0.2.77" } else { "192.0.2.78" }, 80 + i)))
        .collect();
    assert_eq!(verdicts, vec![PASS, PASS, PASS, DROP, DROP]);
    assert_eq!(verdict(&f, &Pkt::tcp(src, "192.0.2.77", 40_000, 80, SYN | ACK)), PASS);
    assert_eq!(verdict(&f, &syn_to("192.0.2.77", 91)), PASS);
    // The IPv6 destination of the same signature shares its bucket (one rule).
    assert_eq!(verdict(&f, &Pkt::tcp("2001:db8:9::1", "2001:db8:5::1", 1, 80, SYN)), DROP);
    assert_eq!(verdict(&f, &Pkt::tcp("2001:db8:9::1", "2001:db8:6::1", 1, 80, SYN)), PASS);
    // Fragments.
    let frag = Pkt { frag_offset: 185, ..Pkt::udp(src, "192.0.2.20", 1, 2) };
    assert_eq!(verdict(&f, &frag), DROP);
    assert_eq!(verdict(&f, &Pkt::udp(src, "192.0.2.20", 1, 2)), PASS, "first fragment or whole packet");
    let c = f.decision_counters(DecisionId(2)).unwrap();
    assert_eq!(c.packets, 3);
    assert_eq!(f.decision_counters(DecisionId(1)).unwrap().packets, 2);
    assert_eq!(f.decision_counters(DecisionId(3)).unwrap().packets, 1);
}

#[test]
fn per_source_token_buckets_and_the_syn_guard() {
    let Some(mut f) = open(None) else { return };
    let now = wall_now();
    let ds = vec![
        decision(1, prefix("198.51.100.0/24"), Action::RateLimitPackets { packets_per_sec: 2 }, now, 60_000),
        decision(2, prefix("2001:db8:7::/48"), Action::RateLimitBytes { bytes_per_sec: 200 }, now, 60_000),
    ];
    let guards = [SynGuard {
        destination: "192.0.2.0/24".parse().unwrap(),
        per_source_pps: 2,
        mode: SynMode::RateLimit,
        expires: None,
    }];
    apply(&mut f, &ds, &guards);
    let dst = "192.0.2.1";
    // Each source of the prefix has its own bucket.
    for src in ["198.51.100.1", "198.51.100.2"] {
        let v: Vec<u32> = (0..3).map(|_| verdict(&f, &Pkt::udp(src, dst, 1, 2))).collect();
        assert_eq!(v, vec![PASS, PASS, DROP], "{src}");
    }
    // Bytes: 200 bytes a second, packets of 60 + 40 + 8 = 108 bytes of IP length for UDP with 60 of payload.
    let big = Pkt { payload: 60, ..Pkt::udp("2001:db8:7::1", "2001:db8:ffff::1", 1, 2) };
    assert_eq!(big.ip_len(), 108);
    let v: Vec<u32> = (0..2).map(|_| verdict(&f, &big)).collect();
    assert_eq!(v, vec![PASS, DROP]);
    assert_eq!(
        f.decision_counters(DecisionId(2)).unwrap(),
        rampart_filter::layout::Counters { packets: 1, bytes: 108 }
    );
    // SYN guard: two SYNs per second per source to the guarded /24; ACKs and other sources pass.
    let syn = |src: &str| Pkt::tcp(src, "192.0.2.9", 40_000, 443, SYN);
    let v: Vec<u32> = (0..3).map(|_| verdict(&f, &syn("203.0.113.1"))).collect();
    assert_eq!(v, vec![PASS, PASS, DROP]);
    assert_eq!(verdict(&f, &Pkt::tcp("203.0.113.1", "192.0.2.9", 40_000, 443, ACK)), PASS);
    assert_eq!(verdict(&f, &syn("203.0.113.2")), PASS);
    assert_eq!(
        verdict(&f, &Pkt::tcp("203.0.113.1", "192.0.3.9", 40_000, 443, SYN)),
        PASS,
        "unguarded destination"
    );
    let counters = f.counters().unwrap();
    let guard = counters.iter().find(|(k, _)| matches!(k, RuleKey::SynGuard(_))).unwrap();
    assert_eq!(guard.1.packets, 1);
}

#[test]
fn rules_expire_inside_the_program_without_a_reconcile() {
    let Some(mut f) = open(None) else { return };
    let now = wall_now();
    let ds = vec![
        decision(1, prefix("198.51.100.0/24"), Action::Discard, now, 3_000),
        decision(2, prefix("203.0.113.0/24"), Action::Discard, now, 60_000),
    ];
    apply(&mut f, &ds, &[]);
    let p = Pkt::udp("198.51.100.1", "192.0.2.1", 1, 2);
    // A debug build spends a while building the table: the rule must still be in force.
    let spent = wall_now().unix_micros() - now.unix_micros();
    assert!(spent < 2_500_000, "reconcile took {spent} µs");
    assert_eq!(verdict(&f, &p), DROP);
    std::thread::sleep(std::time::Duration::from_micros(3_300_000 - spent));
    assert_eq!(verdict(&f, &p), PASS, "expired in the program");
    assert_eq!(verdict(&f, &Pkt::udp("203.0.113.1", "192.0.2.1", 1, 2)), DROP);
}

#[test]
fn pinned_maps_keep_rules_and_counters_across_loaders() {
    if !support::is_root() {
        support::skip("pinning needs root");
        return;
    }
    let dir = PathBuf::from(format!("/sys/fs/bpf/rampart-test-{}-pin", std::process::id()));
    let _unpin = support::Unpin(dir.clone());
    let now = wall_now();
    let ds = vec![
        decision(11, prefix("198.51.100.0/24"), Action::Discard, now, 60_000),
        decision(12, prefix("2001:db8:7::/48"), Action::Discard, now, 60_000),
    ];
    let p4 = Pkt::udp("198.51.100.1", "192.0.2.1", 1, 2);
    let p6 = Pkt::udp("2001:db8:7::1", "2001:db8:ffff::1", 1, 2);
    // The first loader goes away (as a daemon that died would), its pins stay.
    {
        let Some(mut first) = open(Some(dir.clone())) else { return };
        apply(&mut first, &ds, &[]);
        assert_eq!(verdict(&first, &p4), DROP);
    }
    // A new loader (a restarted daemon): the pinned rules drop before it reconciles anything.
    let Some(mut second) = open(Some(dir.clone())) else { return };
    assert_eq!(verdict(&second, &p4), DROP);
    assert_eq!(verdict(&second, &p6), DROP);
    let status = rampart_filter::xdp::status(&dir, boot_now_ns().unwrap()).unwrap();
    assert_eq!(status.rules.len(), 2);
    assert_eq!(status.rules.iter().find(|r| r.decision == 11).unwrap().dropped_packets, 2);
    // Reconciling the same decisions keeps slots and counters; a withdrawn one goes.
    apply(&mut second, &ds[..1], &[]);
    assert_eq!(second.decision_counters(DecisionId(11)).unwrap().packets, 2);
    assert_eq!(verdict(&second, &p6), PASS);
    assert_eq!(verdict(&second, &p4), DROP);
    let status = rampart_filter::xdp::status(&dir, boot_now_ns().unwrap()).unwrap();
    assert_eq!(status.rules.len(), 1);
    assert!(status.packets_dropped >= 4);
    let _ = IpNet::V4(Default::default());
}

/// The IPv4 table changed by deltas (no rebuild, and no walk over the unchanged rules: only
/// sources change) through a sequence of reconciles, one full reconcile among them: after each,
/// every probe gets the verdict of a naive longest-prefix search over the decisions in force,
/// in the program itself (groups created, changed, given up and reused, covering prefixes
/// added under and over longer ones).
#[test]
fn ipv4_deltas_keep_the_program_equal_to_a_longest_prefix_search() {
    let Some(mut f) = open(None) else { return };
    let now = wall_now();
    let all: Vec<(&str, u64)> = vec![
        ("10.0.0.0/8", 1),
        ("10.1.0.0/16", 2),
        ("10.1.2.0/24", 3),
        ("10.1.2.128/25", 4),
        ("10.1.2.200/32", 5),
        ("10.1.3.0/28", 6),
        ("192.0.2.0/23", 7),
        ("192.0.2.64/26", 8),
        ("203.0.113.9/32", 9),
        ("0.0.0.0/1", 10),
    ];
    // Which decisions are in force at each step (bit i: decision i + 1).
    let steps: [u32; 8] = [
        0b00_0000_0011,
        0b00_0011_1111,
        0b00_1111_0101,
        0b01_1010_1010,
        0b11_0101_0110,
        0b10_0000_0001,
        0,
        0b11_1111_1111,
    ];
    let probes = [
        "10.9.9.9",
        "10.1.9.9",
        "10.1.2.3",
        "10.1.2.129",
        "10.1.2.200",
        "10.1.3.5",
        "10.1.3.99",
        "192.0.2.1",
        "192.0.3.1",
        "192.0.2.70",
        "203.0.113.9",
        "203.0.113.10",
        "100.64.0.1",
        "198.51.100.1",
    ];
    for (n, step) in steps.iter().enumerate() {
        let held: Vec<(ipnet::Ipv4Net, u64)> = all
            .iter()
            .filter(|(_, id)| step & (1 << (id - 1)) != 0)
            .map(|(net, id)| (net.parse().unwrap(), *id))
            .collect();
        let ds: Vec<Decision> = held
            .iter()
            .map(|(net, id)| decision(*id, prefix(&net.to_string()), Action::Discard, now, 60_000))
            .collect();
        let mut ds = ds;
        if n == 4 {
            // A signature changes more than sources: this step is a full reconcile, between
            // deltas.
            let sig = Signature { protocol: Some(6), ..Signature::default() };
            ds.push(decision(99, Scope::Signature(Box::new(sig)), Action::Discard, now, 60_000));
        }
        apply(&mut f, &ds, &[]);
        for probe in probes {
            let addr: std::net::Ipv4Addr = probe.parse().unwrap();
            let want = if held.iter().any(|(net, _)| net.contains(&addr)) { DROP } else { PASS };
            assert_eq!(verdict(&f, &Pkt::udp(probe, "192.0.2.250", 1, 2)), want, "step {n}: {probe}");
        }
        // Which rule matched: the longest prefix's decision counts the packet.
        let longest = held
            .iter()
            .filter(|(net, _)| net.contains(&"10.1.2.200".parse::<std::net::Ipv4Addr>().unwrap()))
            .max_by_key(|(net, _)| net.prefix_len());
        if let Some((_, id)) = longest {
            let before = f.decision_counters(DecisionId(*id)).unwrap().packets;
            verdict(&f, &Pkt::udp("10.1.2.200", "192.0.2.250", 1, 2));
            assert_eq!(f.decision_counters(DecisionId(*id)).unwrap().packets, before + 1, "step {n}");
        }
    }
}

fn cookie_guards(pps: u32) -> [SynGuard; 2] {
    ["192.0.2.0/24", "2001:db8:5::/48"].map(|d| SynGuard {
        destination: d.parse().unwrap(),
        per_source_pps: pps,
        mode: SynMode::Cookies,
        expires: None,
    })
}

fn reconcile_guards(f: &mut XdpFilter, guards: &[SynGuard]) -> Option<String> {
    let now = wall_now();
    f.reconcile(&plan(&[], guards, now), now, boot_now_ns().unwrap()).unwrap().syn_cookie_fallback
}

/// A SYN to a cookie-guarded destination comes back as a SYN-ACK built in place (addresses,
/// ports and MACs swapped, checksums right, the cookie as its sequence number), every time,
/// whatever the per-source rate; the ACK carrying the cookie back passes, forged ones (another
/// number, another port) are dropped, for both families.
#[test]
fn syn_cookies_answer_syns_from_xdp_and_only_a_valid_cookie_ack_passes() {
    // A network namespace of this test's thread, where net.ipv4.tcp_syncookies can be 2
    // without touching the host's.
    support::own_netns_with_syncookies(2);
    let Some(mut f) = open(None) else { return };
    if let Err(why) = f.syn_cookies() {
        support::skip(why);
        return;
    }
    assert_eq!(reconcile_guards(&mut f, &cookie_guards(1)), None);
    let mut answered = 0;
    for (client, server) in [("203.0.113.1", "192.0.2.9"), ("2001:db8:9::1", "2001:db8:5::9")] {
        let v4 = client.contains('.');
        let syn = Pkt { seq: 0x1234_5678, ..Pkt::tcp(client, server, 40_000, 443, SYN) };
        let frame = syn.frame();
        // The first SYN a second to a port goes to the stack (which answers it with a cookie of
        // its own at tcp_syncookies=2, and so accepts the filter's).
        assert_eq!(verdict(&f, &syn), PASS, "{client}: the stack's SYN");
        let mut cookies = Vec::new();
        for _ in 0..3 {
            let (verdict, out) = f.test_run_output(&frame).unwrap();
            assert_eq!(verdict, TX, "{client}: the SYN is answered, not passed");
            answered += 1;
            let l4 = if v4 { 34 } else { 54 };
            assert_eq!(out.len(), l4 + 24, "{client}: IP + TCP with the MSS option");
            assert_eq!((&out[..6], &out[6..12]), (&frame[6..12], &frame[..6]), "MACs swapped");
            let ip = &out[14..l4];
            let tcp = &out[l4..];
            let mut pseudo = Vec::new();
            if v4 {
                assert_eq!(ip[0], 0x45);
                assert_eq!(checksum(ip), 0, "IPv4 header checksum");
                assert_eq!((&ip[12..16], &ip[16..20]), (&frame[30..34], &frame[26..30]), "addresses swapped");
                assert_eq!(ip[9], TCP);
                pseudo.extend_from_slice(&ip[12..20]);
                pseudo.extend_from_slice(&[0, TCP, 0, 24]);
            } else {
                assert_eq!((ip[0] >> 4, ip[6], &ip[4..6]), (6, TCP, &[0u8, 24][..]));
                assert_eq!((&ip[8..24], &ip[24..40]), (&frame[38..54], &frame[22..38]), "addresses swapped");
                pseudo.extend_from_slice(&ip[8..40]);
                pseudo.extend_from_slice(&[0, 0, 0, 24, 0, 0, 0, TCP]);
            }
            pseudo.extend_from_slice(tcp);
            assert_eq!(checksum(&pseudo), 0, "TCP checksum");
            let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
            assert_eq!(
                (u16::from_be_bytes([tcp[0], tcp[1]]), u16::from_be_bytes([tcp[2], tcp[3]])),
                (443, 40_000)
            );
            assert_eq!(be(&tcp[8..12]), 0x1234_5679, "acknowledges the SYN");
            assert_eq!((tcp[12], tcp[13]), (0x60, SYN | ACK));
            assert_eq!(&tcp[20..22], &[2, 4], "MSS option");
            cookies.push(be(&tcp[4..8]));
        }
        let cookie = cookies[0];
        let ack =
            |ack: u32, port: u16| Pkt { seq: 0x1234_5679, ack, ..Pkt::tcp(client, server, port, 443, ACK) };
        assert_eq!(verdict(&f, &ack(cookie.wrapping_add(1), 40_000)), PASS, "{client}: the cookie's ACK");
        // (The cookie's lowest bits are the MSS index, so a neighbouring number can still be
        // valid; a change in the hashed bits is not.)
        assert_eq!(
            verdict(&f, &ack(cookie.wrapping_add(1 + (1 << 20)), 40_000)),
            DROP,
            "{client}: another number"
        );
        assert_eq!(verdict(&f, &ack(0xdead_beef, 40_000)), DROP, "{client}: a forged ACK");
        assert_eq!(verdict(&f, &ack(cookie.wrapping_add(1), 40_001)), DROP, "{client}: another port");
        // Unguarded destinations are not touched.
        let other = if v4 { "192.0.3.9" } else { "2001:db8:6::9" };
        assert_eq!(verdict(&f, &Pkt::tcp(client, other, 40_000, 443, SYN)), PASS);
        assert_eq!(verdict(&f, &Pkt::tcp(client, other, 40_000, 443, ACK)), PASS);
    }
    // The guard's counters: SYNs kept from the stack and forged ACKs (one rule per guard).
    let counters = f.counters().unwrap();
    let kept: u64 =
        counters.iter().filter(|(k, _)| matches!(k, RuleKey::SynGuard(_))).map(|(_, c)| c.packets).sum();
    assert_eq!(kept, answered + 6);
}

/// At net.ipv4.tcp_syncookies 1 the stack would reset the handshakes: the guard falls back to
/// the per-source rate and says why.
#[test]
fn a_cookie_guard_needs_tcp_syncookies_2() {
    support::own_netns_with_syncookies(1);
    let Some(mut f) = open(None) else { return };
    if f.syn_cookies().is_err() {
        support::skip("no SYN cookie helpers in this kernel");
        return;
    }
    let why = reconcile_guards(&mut f, &cookie_guards(1)).expect("the fallback is reported");
    assert!(why.contains("net.ipv4.tcp_syncookies is 1, not 2"), "{why}");
    let v: Vec<u32> =
        (0..2).map(|_| verdict(&f, &Pkt::tcp("203.0.113.1", "192.0.2.9", 1, 443, SYN))).collect();
    assert_eq!(v, vec![PASS, DROP]);
}

/// Without the helpers (turned off here as on a kernel that lacks them), a cookie guard falls
/// back to its per-source SYN rate, and says so.
#[test]
fn without_cookie_helpers_a_cookie_guard_limits_syns_per_source() {
    let Some(mut f) = open_with(None, false) else { return };
    assert!(f.syn_cookies().is_err());
    let why = reconcile_guards(&mut f, &cookie_guards(2)).expect("the fallback is reported");
    assert!(why.contains("limit SYNs per source"), "{why}");
    for src in ["203.0.113.1", "203.0.113.2"] {
        let v: Vec<u32> =
            (0..3).map(|_| verdict(&f, &Pkt::tcp(src, "192.0.2.9", 40_000, 443, SYN))).collect();
        assert_eq!(v, vec![PASS, PASS, DROP], "{src}");
    }
    let v: Vec<u32> =
        (0..3).map(|_| verdict(&f, &Pkt::tcp("2001:db8:9::1", "2001:db8:5::9", 1, 443, SYN))).collect();
    assert_eq!(v, vec![PASS, PASS, DROP]);
    assert_eq!(verdict(&f, &Pkt { ack: 7, ..Pkt::tcp("203.0.113.1", "192.0.2.9", 40_000, 443, ACK) }), PASS);
}
