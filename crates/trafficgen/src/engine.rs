//! Scenario planning (scenario + parameters -> sources) and the merge loop that writes them.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use crate::GenError;
use crate::params::{
    DEFAULT_BULK_SERVER, DEFAULT_COMPROMISED_HOST, DEFAULT_DNS_SERVER, DEFAULT_TARGET_V4, DEFAULT_TARGET_V6,
    DNS_ABUSE_VICTIM, GenParams, OUTBOUND_SYN_VICTIM, Window, secs_to_ns,
};
use crate::pcap::{LINKTYPE_ETHERNET, PcapWriter};
use crate::rng::Rand;
use crate::scenario::{AmplificationVector, Scenario};
use crate::source::bulk::{BULK_CLIENT, Bulk};
use crate::source::flood::{Flood, FloodKind, FloodSpec, Targets};
use crate::source::outbound::{Outbound, OutboundKind, OutboundSpec};
use crate::source::web::{CLIENT_PREFIXES, SERVER_PREFIXES, Web};
use crate::source::{NOISE_LEN, Source};
use crate::truth::{
    AttackTruth, AttackVector, BenignSummary, BulkTransferTruth, CaptureTruth, Counters, Direction,
    GroundTruth, Totals, ns_to_secs,
};
use crate::wire::{self, BUF_LEN};

/// Most attack entries a plan may create (pulse waves create one per burst).
const MAX_ATTACK_ENTRIES: u64 = 100_000;
/// Random streams: 0 = payload noise, 1 = web, 2 = bulk, 3 = outbound attack, 16.. = floods.
const STREAM_NOISE: u64 = 0;
const STREAM_WEB: u64 = 1;
const STREAM_BULK: u64 = 2;
const STREAM_OUTBOUND: u64 = 3;
const STREAM_FLOOD: u64 = 16;

#[derive(Debug, Clone)]
struct AttackInfo {
    vector: AttackVector,
    direction: Direction,
    /// The protected side: attacked host or prefix (inbound), sending host (outbound).
    target: String,
    /// The outside victim of an outbound attack.
    victim: Option<String>,
    ip_version: u8,
    ip_protocol: u8,
    source_port: Option<u16>,
    reflectors: Option<u32>,
    spoofed: bool,
}

#[derive(Debug, Clone)]
enum TagInfo {
    Web,
    Bulk { server: u32, client: u32, server_port: u16, client_port: u16 },
    Attack(AttackInfo),
}

#[derive(Debug, Default)]
struct Plan {
    sources: Vec<Source>,
    tags: Vec<TagInfo>,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> GenError {
    GenError::InvalidParam { name, reason: reason.into() }
}

fn target_v4(p: &GenParams, default: Ipv4Addr) -> u32 {
    match p.target {
        Some(IpAddr::V4(a)) => a.into(),
        _ => default.into(),
    }
}

fn target_v6(p: &GenParams) -> u128 {
    match p.target {
        Some(IpAddr::V6(a)) => a.into(),
        _ => DEFAULT_TARGET_V6.into(),
    }
}

/// One attack phase of a plan.
#[derive(Debug, Clone, Copy)]
struct Phase {
    kind: FloodKind,
    v6: bool,
    /// Address (low 32 bits for IPv4).
    target: u128,
    /// Carpet bombing: prefix length of the target range.
    carpet: Option<u8>,
    start: u64,
    end: u64,
    pulse: Option<(u64, u64)>,
}

impl Plan {
    fn add_attack(&mut self, p: &GenParams, ph: Phase) -> Result<(), GenError> {
        let (targets, target_str) = match ph.carpet {
            Some(len) => {
                let bits = if ph.v6 { 128 - u32::from(len) } else { 32 - u32::from(len) };
                let hosts = 1u64 << bits;
                let base = ph.target & !((1u128 << bits) - 1);
                let s = if ph.v6 {
                    format!("{}/{len}", std::net::Ipv6Addr::from(base))
                } else {
                    format!("{}/{len}", Ipv4Addr::from(base as u32))
                };
                (Targets::Range { base, hosts }, s)
            }
            None => {
                let s = if ph.v6 {
                    std::net::Ipv6Addr::from(ph.target).to_string()
                } else {
                    wire::ip_to_string_v4(ph.target as u32)
                };
                (Targets::One(ph.target), s)
            }
        };
        let icmp = if ph.v6 { wire::PROTO_ICMPV6 } else { wire::PROTO_ICMP };
        let (vector, ip_protocol, source_port, reflectors, spoofed) = match ph.kind {
            FloodKind::Tcp(wire::TCP_SYN) => (AttackVector::SynFlood, wire::PROTO_TCP, None, None, true),
            FloodKind::Tcp(wire::TCP_ACK) => (AttackVector::AckFlood, wire::PROTO_TCP, None, None, true),
            FloodKind::Tcp(flags) if flags & wire::TCP_RST != 0 => {
                (AttackVector::RstFlood, wire::PROTO_TCP, None, None, true)
            }
            FloodKind::Tcp(_) => (AttackVector::TcpFlood, wire::PROTO_TCP, None, None, true),
            FloodKind::Udp if ph.carpet.is_some() => {
                (AttackVector::CarpetBombing, wire::PROTO_UDP, None, None, true)
            }
            FloodKind::Udp => (AttackVector::UdpFlood, wire::PROTO_UDP, None, None, true),
            FloodKind::Icmp => (AttackVector::IcmpFlood, icmp, None, None, true),
            FloodKind::Fragment => (AttackVector::IpFragmentFlood, wire::PROTO_UDP, None, None, true),
            FloodKind::Amplification(v) => {
                (v.attack_vector(), wire::PROTO_UDP, Some(v.source_port()), Some(p.reflectors), false)
            }
            FloodKind::SynAckReflection => {
                (AttackVector::SynAckReflection, wire::PROTO_TCP, None, Some(p.reflectors), false)
            }
            FloodKind::MiddleboxReflection => {
                (AttackVector::TcpMiddleboxReflection, wire::PROTO_TCP, None, Some(p.reflectors), false)
            }
        };
        let info = AttackInfo {
            vector,
            direction: Direction::Inbound,
            target: target_str,
            victim: None,
            ip_version: if ph.v6 { 6 } else { 4 },
            ip_protocol,
            source_port,
            reflectors,
            spoofed,
        };
        let span = ph.end.saturating_sub(ph.start);
        let entries = match ph.pulse {
            Some((_, period)) => span.div_ceil(period.max(1)).max(1),
            None => 1,
        };
        if entries > MAX_ATTACK_ENTRIES {
            return Err(invalid("pulse_on_secs", format!("{entries} bursts exceed {MAX_ATTACK_ENTRIES}")));
        }
        let tag_base = self.tags.len();
        self.tags.extend((0..entries).map(|_| TagInfo::Attack(info.clone())));
        let stream = STREAM_FLOOD + self.sources.len() as u64;
        let spec = FloodSpec {
            kind: ph.kind,
            v6: ph.v6,
            targets,
            start: ph.start,
            end: ph.end,
            pps: p.attack_pps,
            pulse: ph.pulse,
            tag_base,
            tag_count: entries as usize,
            payload: (p.flood_payload_min, p.flood_payload_max),
            reflectors: p.reflectors,
        };
        self.sources.push(Source::Flood(Box::new(Flood::new(p.seed, stream, spec))));
        Ok(())
    }

    /// The attack of `outbound_syn_flood` or `dns_reflector_abuse`, sent from `p.target` (or the
    /// scenario's default protected host) over the attack window.
    fn add_outbound(&mut self, p: &GenParams, w: Window, kind: OutboundKind) {
        let (default_host, victim, vector, ip_protocol, source_port, reflectors) = match kind {
            OutboundKind::SynFlood => (
                DEFAULT_COMPROMISED_HOST,
                OUTBOUND_SYN_VICTIM,
                AttackVector::SynFlood,
                wire::PROTO_TCP,
                None,
                None,
            ),
            // The abused server is the one reflector, answering from port 53.
            OutboundKind::DnsReflector => (
                DEFAULT_DNS_SERVER,
                DNS_ABUSE_VICTIM,
                AttackVector::DnsAmplification,
                wire::PROTO_UDP,
                Some(53),
                Some(1),
            ),
        };
        let host = target_v4(p, default_host);
        let tag = self.tags.len();
        self.tags.push(TagInfo::Attack(AttackInfo {
            vector,
            direction: Direction::Outbound,
            target: wire::ip_to_string_v4(host),
            victim: Some(victim.to_string()),
            ip_version: 4,
            ip_protocol,
            source_port,
            reflectors,
            spoofed: false,
        }));
        let spec = OutboundSpec {
            kind,
            host,
            victim: victim.into(),
            start: w.attack_start,
            end: w.attack_end,
            pps: p.attack_pps,
            tag,
        };
        self.sources.push(Source::Outbound(Box::new(Outbound::new(p.seed, STREAM_OUTBOUND, spec))));
    }
}

/// The flood shape of a single-attack scenario.
fn single_attack(scenario: Scenario) -> Option<(FloodKind, bool, bool)> {
    // (kind, ipv6, carpet)
    Some(match scenario {
        Scenario::SynFlood => (FloodKind::Tcp(wire::TCP_SYN), false, false),
        Scenario::AckFlood => (FloodKind::Tcp(wire::TCP_ACK), false, false),
        Scenario::RstFlood => (FloodKind::Tcp(wire::TCP_RST), false, false),
        Scenario::UdpFlood | Scenario::PulseWave => (FloodKind::Udp, false, false),
        Scenario::IcmpFlood => (FloodKind::Icmp, false, false),
        Scenario::FragmentFlood => (FloodKind::Fragment, false, false),
        Scenario::CarpetBombing => (FloodKind::Udp, false, true),
        Scenario::Amplification(v) => (FloodKind::Amplification(v), false, false),
        Scenario::SynAckReflection => (FloodKind::SynAckReflection, false, false),
        Scenario::RstAckFlood => (FloodKind::Tcp(wire::TCP_RST | wire::TCP_ACK), false, false),
        Scenario::MiddleboxReflection => (FloodKind::MiddleboxReflection, false, false),
        Scenario::SynFloodV6 => (FloodKind::Tcp(wire::TCP_SYN), true, false),
        Scenario::UdpFloodV6 => (FloodKind::Udp, true, false),
        Scenario::IcmpFloodV6 => (FloodKind::Icmp, true, false),
        Scenario::CarpetBombingV6 => (FloodKind::Udp, true, true),
        Scenario::BenignWeb
        | Scenario::BulkOutbound
        | Scenario::OutboundSynFlood
        | Scenario::DnsReflectorAbuse
        | Scenario::BacnetDhdiscover
        | Scenario::Mixed => return None,
    })
}

fn build_plan(scenario: Scenario, p: &GenParams, w: Window) -> Result<Plan, GenError> {
    let mut plan = Plan::default();
    if p.background_pps > 0 {
        let default_v6 = if scenario.is_ipv6() || scenario == Scenario::Mixed { 50 } else { 0 };
        let v6_percent = p.ipv6_background_percent.map_or(default_v6, u32::from);
        let tag = plan.tags.len();
        plan.tags.push(TagInfo::Web);
        let web =
            Web::new(p.seed, STREAM_WEB, p.background_pps, w.capture_start, w.capture_end, v6_percent, tag);
        plan.sources.push(Source::Web(Box::new(web)));
    }
    let carpet_len = |v6: bool| p.carpet_prefix_len.unwrap_or(if v6 { 120 } else { 24 });
    match scenario {
        Scenario::BenignWeb => {}
        Scenario::BulkOutbound => {
            if p.attack_pps > 0 {
                let server = target_v4(p, DEFAULT_BULK_SERVER);
                let tag = plan.tags.len();
                let bulk =
                    Bulk::new(p.seed, STREAM_BULK, server, w.attack_start, w.attack_end, p.attack_pps, tag);
                plan.tags.push(TagInfo::Bulk {
                    server,
                    client: BULK_CLIENT,
                    server_port: bulk.conn.sport,
                    client_port: bulk.conn.cport,
                });
                plan.sources.push(Source::Bulk(Box::new(bulk)));
            }
        }
        Scenario::OutboundSynFlood => plan.add_outbound(p, w, OutboundKind::SynFlood),
        Scenario::DnsReflectorAbuse => plan.add_outbound(p, w, OutboundKind::DnsReflector),
        Scenario::BacnetDhdiscover => {
            // Two reflector services at once, half the attack rate each.
            let half = GenParams { attack_pps: p.attack_pps.div_ceil(2), ..p.clone() };
            let target = u128::from(target_v4(p, DEFAULT_TARGET_V4));
            for v in [AmplificationVector::Bacnet, AmplificationVector::Dhdiscover] {
                let kind = FloodKind::Amplification(v);
                let (start, end) = (w.attack_start, w.attack_end);
                plan.add_attack(
                    &half,
                    Phase { kind, v6: false, target, carpet: None, start, end, pulse: None },
                )?;
            }
        }
        Scenario::Mixed => {
            let base = target_v4(p, DEFAULT_TARGET_V4);
            let host = |i: u32| u128::from((base & !0xff) | (base.wrapping_add(i) & 0xff));
            let v6 = u128::from(DEFAULT_TARGET_V6);
            let phases: [(FloodKind, bool, u128, Option<u8>); 7] = [
                (FloodKind::Tcp(wire::TCP_SYN), false, host(0), None),
                (FloodKind::Udp, false, host(1), None),
                (FloodKind::Amplification(AmplificationVector::Dns), false, host(2), None),
                (FloodKind::Udp, false, host(0), Some(carpet_len(false))),
                (FloodKind::Tcp(wire::TCP_SYN), true, v6, None),
                (FloodKind::Fragment, false, host(3), None),
                (FloodKind::Icmp, false, host(4), None),
            ];
            let slot = (w.attack_end - w.attack_start) / phases.len() as u64;
            for (i, &(kind, is_v6, target, carpet)) in phases.iter().enumerate() {
                let start = w.attack_start + slot * i as u64;
                // Each attack fills 70% of its slot; the rest is a quiet gap before the next.
                plan.add_attack(
                    p,
                    Phase { kind, v6: is_v6, target, carpet, start, end: start + slot * 7 / 10, pulse: None },
                )?;
            }
        }
        s => {
            let Some((kind, v6, carpet)) = single_attack(s) else {
                return Ok(plan);
            };
            let target = if v6 { target_v6(p) } else { u128::from(target_v4(p, DEFAULT_TARGET_V4)) };
            let pulse = if s == Scenario::PulseWave {
                let on = secs_to_ns("pulse_on_secs", p.pulse_on_secs)?;
                let off = secs_to_ns("pulse_off_secs", p.pulse_off_secs)?;
                Some((on, on + off))
            } else {
                None
            };
            let carpet = carpet.then(|| carpet_len(v6));
            plan.add_attack(
                p,
                Phase { kind, v6, target, carpet, start: w.attack_start, end: w.attack_end, pulse },
            )?;
        }
    }
    Ok(plan)
}

/// Merges the sources in timestamp order into `pcap` until the window ends or the cap is hit.
/// Returns true when the cap cut the capture short.
fn run<W: Write>(
    sources: &mut [Source],
    pcap: &mut PcapWriter<W>,
    counters: &mut Counters,
    end: u64,
    cap: u64,
    noise: &[u8],
) -> io::Result<bool> {
    let mut buf = [0u8; BUF_LEN];
    loop {
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in sources.iter().enumerate() {
            if let Some(t) = s.peek()
                && best.is_none_or(|(bt, _)| t < bt)
            {
                best = Some((t, i));
            }
        }
        let Some((t, i)) = best else { return Ok(false) };
        if t >= end {
            return Ok(false);
        }
        if counters.total.packets >= cap {
            return Ok(true);
        }
        let Some(source) = sources.get_mut(i) else { return Ok(false) };
        let Some(out) = source.next(&mut buf, noise) else { continue };
        let frame = buf.get(..out.built.len).unwrap_or(&buf[..]);
        let ts = pcap.stored_timestamp(out.ts);
        pcap.write_packet(ts, frame)?;
        counters.record(ts, frame.len(), &out.built.meta, out.tag);
    }
}

/// Generates `scenario` into `out` (buffered internally) and returns the exact ground truth.
pub(crate) fn generate<W: Write>(scenario: Scenario, p: &GenParams, out: W) -> Result<GroundTruth, GenError> {
    let w = p.validate(scenario)?;
    let mut plan = build_plan(scenario, p, w)?;
    let mut noise = vec![0u8; NOISE_LEN];
    Rand::new(p.seed, STREAM_NOISE).fill(&mut noise);
    let mut counters = Counters::new(plan.tags.len());
    let mut pcap = PcapWriter::with_snaplen(
        io::BufWriter::with_capacity(1 << 20, out),
        p.nanosecond,
        p.snaplen.unwrap_or(crate::pcap::SNAPLEN),
    )?;
    let cap = p.max_packets.unwrap_or(u64::MAX);
    let truncated = run(&mut plan.sources, &mut pcap, &mut counters, w.capture_end, cap, &noise)?;
    pcap.flush()?;
    let file_bytes = pcap.file_bytes();
    Ok(assemble(scenario, p, w, &plan, &mut counters, truncated, file_bytes))
}

fn assemble(
    scenario: Scenario,
    p: &GenParams,
    w: Window,
    plan: &Plan,
    c: &mut Counters,
    truncated: bool,
    file_bytes: u64,
) -> GroundTruth {
    let mut attacks = Vec::new();
    let mut bulk_transfers = Vec::new();
    let mut web_totals = Totals::default();
    let mut benign_total = Totals::default();
    for (info, tc) in plan.tags.iter().zip(&c.tags) {
        match info {
            TagInfo::Attack(a) if tc.totals.packets > 0 => attacks.push(AttackTruth {
                vector: a.vector,
                direction: a.direction,
                target: a.target.clone(),
                victim: a.victim.clone(),
                ip_version: a.ip_version,
                ip_protocol: a.ip_protocol,
                source_port: a.source_port,
                reflectors: a.reflectors,
                spoofed_sources: a.spoofed,
                start: ns_to_secs(tc.first_ns),
                end: ns_to_secs(tc.last_ns),
                start_ns: tc.first_ns,
                end_ns: tc.last_ns,
                packets: tc.totals.packets,
                bytes: tc.totals.bytes,
                outbound: (a.direction == Direction::Outbound).then_some(tc.outbound),
            }),
            TagInfo::Attack(_) => {}
            TagInfo::Web => {
                web_totals = tc.totals;
                benign_total.packets += tc.totals.packets;
                benign_total.bytes += tc.totals.bytes;
            }
            &TagInfo::Bulk { server, client, server_port, client_port } => {
                benign_total.packets += tc.totals.packets;
                benign_total.bytes += tc.totals.bytes;
                if tc.totals.packets > 0 {
                    bulk_transfers.push(BulkTransferTruth {
                        server: IpAddr::V4(server.into()),
                        client: IpAddr::V4(client.into()),
                        server_port,
                        client_port,
                        direction: Direction::Outbound,
                        start: ns_to_secs(tc.first_ns),
                        end: ns_to_secs(tc.last_ns),
                        packets: tc.totals.packets,
                        bytes: tc.totals.bytes,
                        outbound: tc.outbound,
                        inbound: tc.inbound,
                    });
                }
            }
        }
    }
    attacks.sort_by_key(|a| a.start_ns);
    let web = plan.sources.iter().find_map(|s| match s {
        Source::Web(w) => Some(w),
        _ => None,
    });
    let benign = BenignSummary {
        client_prefixes: CLIENT_PREFIXES.iter().map(|s| (*s).to_owned()).collect(),
        server_prefixes: SERVER_PREFIXES.iter().map(|s| (*s).to_owned()).collect(),
        server_ports: vec![80, 443],
        web_sessions: web.map_or(0, |w| w.started),
        web_sessions_completed: web.map_or(0, |w| w.completed),
        web_clients: web.map_or(0, |w| w.distinct_clients()),
        web_servers: web.map_or(0, |w| w.distinct_servers()),
        web: web_totals,
        bulk_transfers,
        total: benign_total,
    };
    let capture = CaptureTruth {
        link_type: LINKTYPE_ETHERNET,
        timestamp_precision: if p.nanosecond { "nanosecond" } else { "microsecond" }.to_owned(),
        window_start: ns_to_secs(w.capture_start),
        window_end: ns_to_secs(w.capture_end),
        first_packet: c.first_ns.map_or(0.0, ns_to_secs),
        last_packet: if c.first_ns.is_some() { ns_to_secs(c.last_ns) } else { 0.0 },
        packets: c.total.packets,
        ip_bytes: c.total.bytes,
        frame_bytes: c.frame_bytes,
        file_bytes,
        truncated_by_max_packets: truncated,
    };
    GroundTruth {
        schema_version: crate::truth::TRUTH_SCHEMA_VERSION,
        generator: "rampart-trafficgen".to_owned(),
        scenario: scenario.name().to_owned(),
        seed: p.seed,
        params: p.clone(),
        capture,
        attacks,
        benign,
        per_destination: c.per_destination(),
        per_protocol: c.per_protocol(),
        per_direction: c.per_direction(),
        totals: c.total,
    }
}
