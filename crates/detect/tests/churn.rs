//! Memory under churn: one engine driven through an hour of simulated event time in which
//! hosts, sources, ports and attacks keep changing, while the process's resident memory is
//! sampled. Every table of the engine has a cap; once they are full (the warm-up), memory must
//! stay flat. This is the only test in this file so that the process RSS measures the engine
//! (and the test's own fixed buffers) alone.
//!
//! Each simulated second carries:
//! - background flows to random hosts of a /16 (each address seen now and then, so learned
//!   briefly and evicted as a scan) and to random IPv6 hosts of 2001:db8::/32 (never the same
//!   twice), from random sources and
//!   ports, TCP/UDP/ICMP, some spanning a few seconds (exported at their end, or reaching into
//!   the next seconds);
//! - sessions: hosts that receive (and answer, outbound) traffic every second for 80 to 100
//!   seconds and then go away for good: learned in at least 64 of them (a second whose inbound
//!   ACKs are all answers to the host's own packets is not learned), more than the 60 under
//!   which a key counts as a scan, so within the 14-day expiry only `baseline.max_keys` bounds
//!   them;
//! - floods on random hosts, 2 to 30 seconds of several vectors (candidates, onsets, updates,
//!   ends all the time), one-second spikes (candidates forgotten), outbound floods from
//!   protected hosts, and now and then a carpet bombing of a /24.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use rampart_detect::{DetectConfig, Engine, EventKind, Footprint};
use rampart_telemetry::{Fragment, RecordSource, TrafficRecord, UnixNanos};

/// 2026-01-01 09:00:00 UTC.
const T0: u64 = 1_767_225_600 + 9 * 3600;
const DURATION_SECS: u64 = 3600;
/// Tables fill (baselines, sessions, attacks) before the first measured sample.
const WARMUP_SECS: u64 = 600;
const SAMPLE_EVERY_SECS: u64 = 300;
/// Background records per simulated second (sessions and floods come on top).
const BACKGROUND_PER_SEC: usize = 250;
/// New sessions per simulated second, and how long they last.
const NEW_SESSIONS_PER_SEC: u64 = 8;
const SESSION_SECS: (u64, u64) = (80, 100);
/// Caps scaled down from the defaults (4096 targets, 65 536 baseline keys) so that this churn,
/// limited by the speed of a debug build, fills them within the warm-up; what a full table
/// costs per entry does not depend on the cap.
const MAX_ATTACKS: usize = 64;
const MAX_KEYS: usize = 16_384;

/// Allowed RSS growth from the first sample after warm-up to any sample of the last third:
/// 4 MiB (about a fifth of the ~17 MiB the process holds then). The tables are full by then;
/// what may still move is allocator fragmentation and a vector or hash table of one second
/// doubling once more: 0.0 MiB measured here (0.2 to 1.1 MiB with heavier variants of this
/// churn). Without `max_keys` the sessions alone keep ~29 000 more baseline keys an hour:
/// measured +6.7 MiB by t=2400 and +9.7 MiB by the end; a profile slot never freed, +71 MiB.
const MAX_GROWTH_BYTES: u64 = 4 << 20;

fn config() -> DetectConfig {
    let text = format!(
        "protected = [\"198.51.0.0/16\", \"2001:db8::/32\"]\n\
         [lifecycle]\nonset_secs = 2\nquiet_secs = 10\n\
         [limits]\nmax_attacks = {MAX_ATTACKS}\n\
         [baseline]\nwarmup_secs = 300\nmin_slot_secs = 600\nmax_keys = {MAX_KEYS}\n\
         [[group]]\nname = \"dns\"\nprefixes = [\"198.51.53.0/24\"]\n\
         [group.thresholds]\nudp_pps = 50000\n\
         [group.aggregate]\npps = 200000\n"
    );
    DetectConfig::from_toml_str(&text, "churn.toml").unwrap()
}

/// SplitMix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }

    fn range(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A host of 198.51.0.0/16.
    fn v4_host(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC633_0000 | self.below(1 << 16) as u32))
    }

    /// A random host of 2001:db8::/32.
    fn v6_host(&mut self) -> IpAddr {
        let low = (u128::from(self.next()) << 32 | u128::from(self.next() as u32)) & ((1 << 96) - 1);
        IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | low))
    }

    fn protected_host(&mut self) -> IpAddr {
        if self.chance(70) { self.v4_host() } else { self.v6_host() }
    }

    /// A random remote address of the same family as `like` (never protected).
    fn remote(&mut self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => loop {
                let a = Ipv4Addr::from(self.next() as u32);
                if a.octets()[0] != 198 && a.octets()[0] != 0 && a.octets()[0] < 224 {
                    break IpAddr::V4(a);
                }
            },
            IpAddr::V6(_) => {
                let low = u128::from(self.next()) << 64 | u128::from(self.next());
                IpAddr::V6(Ipv6Addr::from((0x2a00u128 << 112) | (low >> 16)))
            }
        }
    }
}

const SERVICES: [u16; 8] = [443, 80, 53, 22, 123, 25, 8080, 3389];

/// A flow from `src` to `dst` in `start..=end` (seconds).
#[allow(clippy::too_many_arguments)]
fn flow(
    src: IpAddr,
    dst: IpAddr,
    start: u64,
    end: u64,
    protocol: u8,
    ports: (u16, u16),
    tcp_flags: u8,
    packets: u64,
    size: u64,
    source: RecordSource,
) -> TrafficRecord {
    let ports = match protocol {
        6 | 17 => (Some(ports.0), Some(ports.1)),
        _ => (None, None),
    };
    TrafficRecord {
        start: UnixNanos::from_secs(start),
        end: UnixNanos(UnixNanos::from_secs(end).0 + 900_000_000),
        src,
        dst,
        protocol,
        src_port: ports.0,
        dst_port: ports.1,
        tcp_flags,
        packets,
        bytes: packets * size,
        ttl: (source == RecordSource::Sflow).then_some(57),
        packet_len: (source == RecordSource::Sflow).then_some(size as u32),
        source,
        ..TrafficRecord::EMPTY
    }
}

/// One background flow (to a random protected host, or now and then from one).
fn background(rng: &mut Rng, s: u64, out: &mut Vec<TrafficRecord>) {
    let host = if rng.chance(75) { rng.v4_host() } else { rng.v6_host() };
    let remote = rng.remote(host);
    let (protocol, flags) = match rng.below(100) {
        0..65 => (6, [0x02, 0x10, 0x18, 0x1B, 0x11][rng.below(5) as usize]),
        65..95 => (17, 0),
        _ => (if host.is_ipv4() { 1 } else { 58 }, 0),
    };
    let ports = (1024 + rng.below(64_512) as u16, SERVICES[rng.below(8) as usize]);
    let packets = match rng.below(10) {
        0..7 => 1 + rng.below(4),
        _ => 5 + rng.below(60),
    };
    let size = 40 + rng.below(1_460);
    // Flows exported at their end (started up to 4 s earlier), or reaching 2 s ahead.
    let (start, end) = match rng.below(10) {
        0..6 => (s, s),
        6..9 => (s - rng.below(5), s),
        _ => (s, s + rng.below(3)),
    };
    let source = if rng.chance(20) { RecordSource::Sflow } else { RecordSource::NetflowV9 };
    let (src, dst) = if rng.chance(8) { (host, remote) } else { (remote, host) };
    out.push(flow(src, dst, start, end, protocol, (ports.0, ports.1), flags, packets, size, source));
}

/// A host that exchanges web traffic every second until `until`.
struct Session {
    host: IpAddr,
    peer: IpAddr,
    port: u16,
    pps: u64,
    until: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Udp,
    Dns,
    Ntp,
    Syn,
    Ack,
    Icmp,
    Fragments,
    /// A protected host flooding out (SYN).
    Outbound,
    /// A /24 (its first three octets), each host under its own limits.
    Carpet(u32),
}

struct Flood {
    target: IpAddr,
    kind: Kind,
    pps: u64,
    until: u64,
}

impl Flood {
    fn random(rng: &mut Rng, s: u64) -> Flood {
        let kind = match rng.below(20) {
            0..4 => Kind::Udp,
            4..7 => Kind::Dns,
            7..9 => Kind::Ntp,
            9..13 => Kind::Syn,
            13..15 => Kind::Ack,
            15..17 => Kind::Icmp,
            17..18 => Kind::Fragments,
            _ => Kind::Outbound,
        };
        // Some floods hit the DNS group's /24.
        let target = if rng.chance(5) {
            IpAddr::V4(Ipv4Addr::new(198, 51, 53, rng.below(256) as u8))
        } else {
            rng.protected_host()
        };
        Flood { target, kind, pps: rng.range((25_000, 200_000)), until: s + rng.range((2, 30)) }
    }

    /// This second's records: four sources share the flood.
    fn emit(&self, rng: &mut Rng, s: u64, out: &mut Vec<TrafficRecord>) {
        if let Kind::Carpet(net) = self.kind {
            for last in 0..=255u32 {
                let dst = IpAddr::V4(Ipv4Addr::from((net << 8) | last));
                let src = rng.remote(dst);
                let ports = (rng.below(65_536) as u16, rng.below(65_536) as u16);
                out.push(flow(src, dst, s, s, 17, ports, 0, self.pps / 256, 512, RecordSource::NetflowV9));
            }
            return;
        }
        const SOURCES: u64 = 4;
        for _ in 0..SOURCES {
            let remote = rng.remote(self.target);
            let packets = self.pps / SOURCES;
            let random = (1024 + rng.below(64_512) as u16, rng.below(65_536) as u16);
            let source = if rng.chance(50) { RecordSource::Sflow } else { RecordSource::NetflowV9 };
            let (src, dst, protocol, ports, flags, size) = match self.kind {
                Kind::Udp => (remote, self.target, 17, random, 0, 512),
                Kind::Dns => (remote, self.target, 17, (53, random.0), 0, 1400),
                Kind::Ntp => (remote, self.target, 17, (123, random.0), 0, 468),
                Kind::Syn => (remote, self.target, 6, (random.0, 443), 0x02, 60),
                Kind::Ack => (remote, self.target, 6, random, 0x10, 60),
                Kind::Icmp => {
                    (remote, self.target, if self.target.is_ipv4() { 1 } else { 58 }, (0, 0), 0, 84)
                }
                Kind::Fragments => (remote, self.target, 17, random, 0, 1480),
                Kind::Outbound => (self.target, remote, 6, (random.0, 80), 0x02, 60),
                Kind::Carpet(_) => continue,
            };
            let mut record = flow(src, dst, s, s, protocol, ports, flags, packets, size, source);
            if matches!(self.kind, Kind::Fragments) {
                record.fragment = Fragment::NonInitial;
                (record.src_port, record.dst_port) = (None, None);
            }
            out.push(record);
        }
    }
}

/// Resident set of this process, bytes (Linux `/proc/self/status`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[test]
fn memory_stays_flat_through_an_hour_of_churn() {
    let started = Instant::now();
    let config = config();
    let max_hosts = config.limits.max_hosts;
    let mut engine = Engine::with_seed(config, 0x50a6);
    let mut rng = Rng(7);
    let mut records: Vec<TrafficRecord> = Vec::with_capacity(8_192);
    let mut sessions: Vec<Session> = Vec::with_capacity(8_192);
    let mut floods: Vec<Flood> = Vec::with_capacity(1_024);
    let (mut onsets, mut updates, mut ends, mut observed) = (0u64, 0u64, 0u64, 0u64);
    // (simulated second, RSS, footprint)
    let mut samples: Vec<(u64, u64, Footprint)> = Vec::new();

    for s in T0..T0 + DURATION_SECS {
        for event in engine.advance(UnixNanos::from_secs(s)) {
            match event.kind {
                EventKind::Onset => onsets += 1,
                EventKind::Update => updates += 1,
                EventKind::End => ends += 1,
            }
        }
        let elapsed = s - T0;
        if elapsed >= WARMUP_SECS && elapsed.is_multiple_of(SAMPLE_EVERY_SECS) {
            samples.push((elapsed, rss_bytes(), engine.footprint()));
        }

        records.clear();
        for _ in 0..BACKGROUND_PER_SEC {
            background(&mut rng, s, &mut records);
        }
        for _ in 0..NEW_SESSIONS_PER_SEC {
            let host = rng.protected_host();
            let peer = rng.remote(host);
            let port = 1024 + rng.below(64_512) as u16;
            let (pps, until) = (rng.range((5, 50)), s + rng.range(SESSION_SECS));
            sessions.push(Session { host, peer, port, pps, until });
        }
        sessions.retain(|x| x.until > s);
        for x in &sessions {
            let source = RecordSource::NetflowV9;
            records.push(flow(x.peer, x.host, s, s, 6, (x.port, 443), 0x18, x.pps, 900, source));
            // Its answers, exported every few seconds as one outbound flow.
            if (s + u64::from(x.port)).is_multiple_of(5) {
                let answers = (x.pps / 2 + 1) * 5;
                records.push(flow(x.host, x.peer, s - 4, s, 6, (443, x.port), 0x10, answers, 60, source));
            }
        }
        // About two new floods a second, a one-second spike, a carpet bombing every ~5 minutes.
        floods.retain(|f| f.until > s);
        for _ in 0..rng.range((1, 3)) {
            floods.push(Flood::random(&mut rng, s));
        }
        if rng.chance(70) {
            let spike = Flood { until: s + 1, ..Flood::random(&mut rng, s) };
            floods.push(spike);
        }
        if rng.below(300) == 0 {
            let net = 0xC6_3300 | rng.below(256) as u32;
            floods.push(Flood {
                target: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                kind: Kind::Carpet(net),
                pps: 60_000,
                until: s + 20,
            });
        }
        for f in &floods {
            f.emit(&mut rng, s, &mut records);
        }

        for record in &records {
            engine.observe(record);
        }
        observed += records.len() as u64;
    }
    let end = T0 + DURATION_SECS;
    for event in engine.advance(UnixNanos::from_secs(end)) {
        match event.kind {
            EventKind::Onset => onsets += 1,
            EventKind::Update => updates += 1,
            EventKind::End => ends += 1,
        }
    }
    samples.push((DURATION_SECS, rss_bytes(), engine.footprint()));

    let stats = engine.stats().clone();
    let runtime = started.elapsed();
    eprintln!(
        "churn: {observed} records over {DURATION_SECS} simulated s in {:.1} s ({:.0} records/s); \
         onsets {onsets}, updates {updates}, ends {ends}",
        runtime.as_secs_f64(),
        observed as f64 / runtime.as_secs_f64()
    );
    eprintln!("churn: {stats:?}");
    eprintln!(
        "churn: t(s)  RSS(MiB)  engine(MiB)  targets  attacks  profiles  open  hosts_cap  baseline_keys"
    );
    for (t, rss, f) in &samples {
        eprintln!(
            "churn: {t:>5}  {:>8.1}  {:>11.1}  {:>7}  {:>7}  {:>8}  {:>4}  {:>9}  {:>13}",
            mib(*rss),
            mib(f.bytes as u64),
            f.targets,
            f.active_attacks,
            f.profile_slots,
            f.open_seconds,
            f.host_capacity,
            f.baseline_keys
        );
    }

    // Flat: every sample of the last third against the first sample after warm-up.
    let (_, first_rss, first) = samples[0];
    let last_third: Vec<_> = samples.iter().filter(|(t, _, _)| *t >= DURATION_SECS * 2 / 3).collect();
    assert!(last_third.len() >= 3, "{}", last_third.len());
    for (t, rss, f) in last_third {
        let growth = rss.saturating_sub(first_rss);
        assert!(
            growth < MAX_GROWTH_BYTES,
            "RSS grew {:.1} MiB from {:.1} MiB (t={WARMUP_SECS}) to {:.1} MiB at t={t}",
            mib(growth),
            mib(first_rss),
            mib(*rss)
        );
        // The engine's own accounting (allocated capacities), independent of the allocator.
        let engine_growth = (f.bytes as u64).saturating_sub(first.bytes as u64);
        assert!(
            engine_growth < MAX_GROWTH_BYTES / 2,
            "engine state grew {:.1} MiB by t={t}: {first:?} -> {f:?}",
            mib(engine_growth)
        );
    }

    // Flat because full: every table at or under its cap at every sample, and the caps were
    // reached (so the churn really was more than they hold).
    for (t, _, f) in &samples {
        assert!(f.targets <= MAX_ATTACKS && f.active_attacks <= f.targets, "{t}: {f:?}");
        assert!(f.profile_slots <= MAX_ATTACKS, "{t}: {f:?}");
        assert!(f.baseline_keys <= MAX_KEYS, "{t}: {f:?}");
        assert!(f.open_seconds <= 120 && f.pooled_seconds <= 4, "{t}: {f:?}");
    }
    assert!(stats.dropped_candidates > 0, "max_attacks never reached: {stats:?}");
    assert!(stats.baseline_untracked > 0, "baseline max_keys never reached: {stats:?}");
    assert!(stats.peak_hosts as usize <= max_hosts, "{stats:?}");
    // Attacks started and ended all the time.
    assert!(onsets > 1_000 && ends + MAX_ATTACKS as u64 >= onsets, "onsets {onsets}, ends {ends}");
}
