//! Attacks of realistic size, typed, with their fingerprints filled as `rampart analyze` fills
//! them: a SYN flood (about 3 kB of JSON) and a UDP flood (about 7 kB). Shared by the soak
//! test and the `fill` example (`#[path]`-included by both).

use std::net::IpAddr;

use rampart_contract::{
    Attack, AttackId, Collateral, Direction, EventTime, LengthRange, Level, Metric, PacketSample, PortRange,
    Share, Signature, Target, TcpFlags, Trigger, Vector,
};

fn share<K>(value: K, packets: u64, total: u64) -> Share<K> {
    Share { value, packets, percent: (packets * 1000 / total.max(1)) as f64 / 10.0 }
}

fn sample(at: EventTime, src: &str, dst: &str, protocol: u8, ports: (u16, u16), length: u32) -> PacketSample {
    PacketSample {
        time: at,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol,
        src_port: Some(ports.0),
        dst_port: Some(ports.1),
        tcp_flags: if protocol == 6 { 0x02 } else { 0 },
        ttl: Some(52),
        length: Some(length),
        fragment: false,
        sampling_rate: 1,
    }
}

/// A SYN flood on a host from many sources, as `rampart analyze` reports it: about 3 kB of JSON.
pub fn syn_flood() -> Attack {
    let since = EventTime::from_unix_secs(1_767_225_601);
    let target: IpAddr = "198.51.100.10".parse().unwrap();
    let trigger = Trigger::new(Level::Host, Metric::Pps, 1487, 500, since);
    let mut a = Attack::new(AttackId(1), Target::Host(target), Direction::Inbound, trigger);
    a.vectors = vec![Vector::SynFlood];
    a.start = EventTime::from_unix_micros(1_767_225_601_000_570);
    a.end = EventTime::from_unix_micros(1_767_225_602_799_798);
    (a.current_pps, a.current_bps, a.peak_pps, a.peak_bps) = (1200, 465_728, 1487, 582_688);
    (a.packets, a.bytes, a.distinct_sources) = (2687, 131_052, 1207);
    let total = 1200;
    a.top_src_prefixes =
        ["51.137.168.0/24", "80.191.103.0/24", "84.223.173.0/24", "111.82.29.0/24", "113.248.63.0/24"]
            .iter()
            .map(|p| share(p.parse().unwrap(), 1, total))
            .collect();
    a.top_src_ports = [2776, 9367, 14281, 16539, 18013].iter().map(|&p| share(p, 1, total)).collect();
    a.top_dst_ports = [(80, 689), (443, 365), (20620, 1), (23714, 1), (24350, 1)]
        .iter()
        .map(|&(p, n)| share(p, n, total))
        .collect();
    a.protocols = vec![share(6, total, total)];
    a.tcp_flags = vec![share(0x02, total, total)];
    a.ttls = [(52, 310), (51, 301), (53, 299), (50, 150), (54, 140)]
        .iter()
        .map(|&(t, n)| share(t, n, total))
        .collect();
    a.packet_lengths = vec![share(32, 200, total), share(48, 1000, total)];
    a.sample_headers = (0..8)
        .map(|n| sample(a.start, &format!("203.0.113.{}", 10 + n), "198.51.100.10", 6, (40_000 + n, 80), 60))
        .collect();
    a.signature = Signature {
        dst_prefixes: vec![target.into()],
        protocol: Some(6),
        tcp_flags: Some(TcpFlags::exact(0x02)),
        packet_len: Some(LengthRange { min: 32, max: 63 }),
        sampled_packets: total,
        ..Signature::default()
    };
    a
}

/// A UDP flood of packets of every length, from a few sources: about 7 kB of JSON (most of it
/// the length histogram).
pub fn udp_flood() -> Attack {
    let since = EventTime::from_unix_secs(1_767_225_606);
    let target: IpAddr = "198.51.100.12".parse().unwrap();
    let trigger = Trigger::new(Level::Host, Metric::Pps, 1399, 500, since);
    let mut a = Attack::new(AttackId(3), Target::Host(target), Direction::Inbound, trigger);
    a.vectors = vec![Vector::UdpFlood];
    a.start = EventTime::from_unix_micros(1_767_225_606_100_271);
    a.end = EventTime::from_unix_micros(1_767_225_607_943_194);
    (a.current_pps, a.current_bps, a.peak_pps, a.peak_bps) = (1412, 13_142_816, 1412, 13_142_816);
    (a.packets, a.bytes, a.distinct_sources) = (2811, 3_170_552, 66);
    let total = 1412;
    a.top_src_prefixes =
        ["192.0.2.0/24", "198.18.4.0/24", "198.18.77.0/24", "203.0.113.0/24", "100.64.9.0/24"]
            .iter()
            .map(|p| share(p.parse().unwrap(), 280, total))
            .collect();
    a.top_src_ports = vec![share(4444, total, total)];
    a.top_dst_ports = [(53, 40), (123, 31), (1900, 22), (11211, 17), (19, 12)]
        .iter()
        .map(|&(p, n)| share(p, n, total))
        .collect();
    a.protocols = vec![share(17, total, total)];
    a.ttls = [(60, 400), (61, 350), (59, 300), (62, 200), (58, 100)]
        .iter()
        .map(|&(t, n)| share(t, n, total))
        .collect();
    a.packet_lengths = (0..92u32).map(|n| share(48 + 16 * n, 15 + u64::from(n % 3), total)).collect();
    a.sample_headers = (0..8)
        .map(|n| {
            sample(
                a.start,
                &format!("192.0.2.{}", 20 + n),
                "198.51.100.12",
                17,
                (4444, 53 + n),
                48 + 180 * u32::from(n),
            )
        })
        .collect();
    a.signature = Signature {
        dst_prefixes: vec![target.into()],
        protocol: Some(17),
        src_ports: vec![PortRange::single(4444)],
        packet_len: Some(LengthRange { min: 48, max: 1503 }),
        sampled_packets: total,
        collateral: Some(Collateral { baseline_pps: 120.0, matching_pps: 3.5, percent: 2.9 }),
        ..Signature::default()
    };
    a
}
