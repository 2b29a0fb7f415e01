//! Deterministic, rate-paced flow export sender for the live-collector benchmark
//! (`bench/collector.sh`).
//!
//! Encodes NetFlow v9 (a template plus data records of realistic IPv4 flows) or sFlow v5 (flow
//! samples carrying 128-byte raw Ethernet/IPv4 headers) and sends the datagrams to a loopback
//! collector at a target rate of records per second, for a bounded number of records and a
//! bounded time. It prints one JSON object: what it sent, per destination exactly, and the rate
//! it achieved.
//!
//! Record contents come from a seeded generator, so two runs with the same seed, count and
//! datagram sizes send the same records (only the export timestamps differ).
//!
//! `--churn` (for `bench/soak.sh`) sends to random hosts of the whole 198.51.0.0/16 from random
//! IPv4 sources instead, and keeps a few short floods going on random hosts of it, each lasting
//! 5 to 30 seconds of the run, so the receiving daemon sees hosts, sources and attacks change all
//! the time. Its report gives totals only (no per-destination list).
//!
//! Safety rule: it only ever sends to 127.0.0.1 or ::1; anything else is refused.
//!
//! ```text
//! cargo run --release -p rampart --example flow_sender -- \
//!     --protocol netflow9 --target 127.0.0.1:2055 --rate 1000000 --records 5000000 --max-seconds 8
//! ```

#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Protocol {
    /// NetFlow v9: one record per flow.
    Netflow9,
    /// sFlow v5: one record per flow sample.
    Sflow,
}

/// Sends NetFlow v9 or sFlow v5 exports to a loopback collector at a paced rate.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "netflow9")]
    protocol: Protocol,
    /// Collector address: 127.0.0.1:PORT or [::1]:PORT only.
    #[arg(long)]
    target: SocketAddr,
    /// Records (flows or flow samples) per second to offer.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Records to send in all, then stop.
    #[arg(long, default_value_t = 5_000_000)]
    records: u64,
    /// Hard stop after this many seconds, whatever was sent.
    #[arg(long, default_value_t = 10.0)]
    max_seconds: f64,
    /// Seed of the record generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// NetFlow v9 data records per datagram.
    #[arg(long, default_value_t = 30)]
    records_per_datagram: u16,
    /// Re-send the NetFlow v9 template every N datagrams (the first datagram always has it).
    #[arg(long, default_value_t = 20)]
    template_every: u64,
    /// sFlow flow samples per datagram.
    #[arg(long, default_value_t = 8)]
    samples_per_datagram: u16,
    /// sFlow sampling rate announced in every flow sample (1 in N packets).
    #[arg(long, default_value_t = 1000)]
    sampling_rate: u32,
    /// Pacing tick in microseconds: each tick sends what is due, then sleeps to the next.
    #[arg(long, default_value_t = 1000)]
    tick_micros: u64,
    /// Churn: random destinations in 198.51.0.0/16, random sources, rotating short floods.
    #[arg(long)]
    churn: bool,
}

/// What the sender prints.
#[derive(Debug, Serialize)]
struct SendReport {
    protocol: Protocol,
    target: String,
    seed: u64,
    offered_rate: u64,
    records: u64,
    datagrams: u64,
    /// UDP payload bytes sent.
    payload_bytes: u64,
    /// Datagrams the kernel refused (not counted in `records` or the totals).
    send_errors: u64,
    /// True when the hard time limit stopped the run before every record was sent.
    stopped_by_time_limit: bool,
    elapsed_secs: f64,
    achieved_rate: f64,
    /// Totals as a collector should report them: sFlow counts scaled by the sampling rate.
    packets: u64,
    bytes: u64,
    destinations: Vec<DestinationReport>,
}

#[derive(Debug, Serialize)]
struct DestinationReport {
    ip: Ipv4Addr,
    packets: u64,
    bytes: u64,
}

/// The two documentation prefixes the generated traffic targets.
const DESTINATION_PREFIXES: [u32; 2] = [0xC633_6400, 0xCB00_7100]; // 198.51.100.0/24, 203.0.113.0/24
const DESTINATIONS: usize = 512;

fn destination(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(DESTINATION_PREFIXES[index / 256] | (index % 256) as u32)
}

/// Churn: the /16 the destinations are drawn from (198.51.0.0/16), and the floods kept going.
const CHURN_PREFIX: u32 = 0xC633_0000;
const CHURN_DESTINATIONS: usize = 1 << 16;
const CHURN_FLOODS: usize = 8;
/// Share of churn records (per mille) that belong to a flood.
const CHURN_FLOOD_PER_MILLE: u64 = 10;

fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback(args.target)?;
    if args.rate == 0 || args.records_per_datagram == 0 || args.samples_per_datagram == 0 {
        bail!("--rate, --records-per-datagram and --samples-per-datagram must be at least 1");
    }
    if !(args.max_seconds > 0.0 && args.max_seconds.is_finite()) {
        bail!("--max-seconds must be a positive number");
    }
    // NetFlow v9: 20 + 4 + template 56 + 4 + 35 per record must fit one datagram.
    if args.records_per_datagram > 1_800 || args.samples_per_datagram > 300 {
        bail!("too many records per datagram for one UDP datagram");
    }
    let local: SocketAddr = match args.target.ip() {
        IpAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let socket = UdpSocket::bind(local).context("bind the sending socket")?;
    // Connected: the kernel checks the route once, and `send` skips the address per call.
    socket.connect(args.target).context("connect the sending socket")?;
    let report = run(&args, &socket)?;
    serde_json::to_writer(io::stdout().lock(), &report)?;
    println!();
    Ok(())
}

/// The benchmark only ever talks to this machine.
fn check_loopback(target: SocketAddr) -> Result<()> {
    let allowed = match target.ip() {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    if !allowed || target.port() == 0 {
        bail!("refusing to send to {target}: only 127.0.0.1:PORT or [::1]:PORT are allowed");
    }
    Ok(())
}

fn run(args: &Args, socket: &UdpSocket) -> Result<SendReport> {
    let mut encoder = match args.protocol {
        Protocol::Netflow9 => Encoder::Netflow(NetflowEncoder::new(args)),
        Protocol::Sflow => Encoder::Sflow(SflowEncoder::new(args)),
    };
    let mut generator = Generator::new(args.seed);
    generator.churn = args.churn;
    let mut totals = vec![(0u64, 0u64); if args.churn { CHURN_DESTINATIONS } else { DESTINATIONS }];
    let mut pending: Vec<(usize, u64, u64)> = Vec::with_capacity(512);
    let mut buffer = Vec::with_capacity(65_536);
    let (mut records, mut datagrams, mut payload_bytes, mut send_errors) = (0u64, 0u64, 0u64, 0u64);
    let mut attempted = 0u64;

    let tick = Duration::from_micros(args.tick_micros.max(1));
    let limit = Duration::from_secs_f64(args.max_seconds);
    let start = Instant::now();
    let mut next_tick = start;
    let mut stopped_by_time_limit = false;
    'run: while attempted < args.records {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            stopped_by_time_limit = true;
            break;
        }
        // Records due by the end of this tick, so each tick sends one small burst.
        let due_secs = (elapsed + tick).as_secs_f64();
        let due = ((args.rate as f64 * due_secs) as u64).min(args.records);
        let mut burst = 0u32;
        while attempted < due {
            let count = (args.records - attempted).min(u64::from(encoder.records_per_datagram())) as u16;
            pending.clear();
            buffer.clear();
            generator.now_ms = start.elapsed().as_millis() as u64;
            encoder.encode(&mut generator, count, start.elapsed(), &mut buffer, &mut pending);
            attempted += u64::from(count);
            match socket.send(&buffer) {
                Ok(_) => {
                    records += u64::from(count);
                    datagrams += 1;
                    payload_bytes += buffer.len() as u64;
                    for &(index, packets, bytes) in &pending {
                        totals[index].0 += packets;
                        totals[index].1 += bytes;
                    }
                }
                // No listener (ICMP port unreachable) or a full queue: the datagram is lost.
                Err(_) => send_errors += 1,
            }
            burst += 1;
            // A sender slower than the rate still honours the hard time limit.
            if burst.is_multiple_of(64) && start.elapsed() >= limit {
                stopped_by_time_limit = attempted < args.records;
                break 'run;
            }
        }
        next_tick += tick;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else {
            next_tick = now; // behind: do not try to catch up with a storm of empty ticks
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let destinations: Vec<DestinationReport> = if args.churn {
        Vec::new()
    } else {
        totals
            .iter()
            .enumerate()
            .filter(|(_, (packets, _))| *packets > 0)
            .map(|(index, &(packets, bytes))| DestinationReport { ip: destination(index), packets, bytes })
            .collect()
    };
    Ok(SendReport {
        protocol: args.protocol,
        target: args.target.to_string(),
        seed: args.seed,
        offered_rate: args.rate,
        records,
        datagrams,
        payload_bytes,
        send_errors,
        stopped_by_time_limit,
        elapsed_secs: elapsed,
        achieved_rate: if elapsed > 0.0 { records as f64 / elapsed } else { 0.0 },
        packets: totals.iter().map(|t| t.0).sum(),
        bytes: totals.iter().map(|t| t.1).sum(),
        destinations,
    })
}

/// A churn flood: destination index in the /16, until when (ms of the run), and its vector.
#[derive(Debug, Clone, Copy, Default)]
struct ChurnFlood {
    destination: usize,
    until_ms: u64,
    syn: bool,
}

/// SplitMix64: tiny, fast and deterministic; quality is ample for traffic mixes.
#[derive(Debug)]
struct Generator {
    state: u64,
    churn: bool,
    /// Run time of the datagram being encoded (churn floods start and end by it).
    now_ms: u64,
    floods: [ChurnFlood; CHURN_FLOODS],
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator { state: seed, churn: false, now_ms: 0, floods: [ChurnFlood::default(); CHURN_FLOODS] }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }

    /// A random IPv4 source outside 198.51.0.0/16, 0.0.0.0/8, 127.0.0.0/8 and multicast.
    fn churn_source(&mut self) -> Ipv4Addr {
        // Rejection sampling (accepts about 87 % of draws), bounded all the same.
        for _ in 0..64 {
            let a = Ipv4Addr::from(self.next() as u32);
            let [first, second, ..] = a.octets();
            if first != 0 && first != 127 && first < 224 && !(first == 198 && second == 51) {
                return a;
            }
        }
        Ipv4Addr::new(203, 0, 113, self.below(256) as u8)
    }

    /// Churn mode: a flood record (replacing an expired flood by a new random one first), or
    /// `None` for background.
    fn churn_flood(&mut self) -> Option<Flow> {
        if self.below(1000) >= CHURN_FLOOD_PER_MILLE {
            return None;
        }
        let i = self.below(CHURN_FLOODS as u64) as usize;
        if self.floods[i].until_ms <= self.now_ms {
            self.floods[i] = ChurnFlood {
                destination: self.below(CHURN_DESTINATIONS as u64) as usize,
                until_ms: self.now_ms + 5_000 + self.below(25_000),
                syn: self.below(2) == 0,
            };
        }
        let flood = self.floods[i];
        let (protocol, src_port, dst_port, tcp_flags, size) = if flood.syn {
            (6, 1024 + self.below(64_512) as u16, 443, 0x02, 60)
        } else {
            (17, 53, 1024 + self.below(64_512) as u16, 0, 1_400) // DNS amplification
        };
        Some(Flow {
            src: self.churn_source(),
            destination: flood.destination,
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            size,
            packets: 500 + self.below(1_500),
            input_if: 1,
            output_if: 2,
            age_ms: self.below(1_000) as u32,
            idle_ms: 0,
        })
    }

    /// One generated flow or sampled packet.
    fn flow(&mut self) -> Flow {
        if self.churn
            && let Some(flood) = self.churn_flood()
        {
            return flood;
        }
        let destination = if self.churn {
            self.below(CHURN_DESTINATIONS as u64) as usize
        } else {
            self.below(DESTINATIONS as u64) as usize
        };
        let roll = self.below(100);
        let protocol = match roll {
            0..70 => 6,
            70..95 => 17,
            _ => 1,
        };
        const SERVICES: [u16; 8] = [443, 80, 53, 22, 123, 25, 8080, 3389];
        let (src_port, dst_port) = match protocol {
            6 | 17 => (1024 + self.below(64_512) as u16, SERVICES[self.below(8) as usize]),
            _ => (0, 0x0800), // ICMP echo request as type << 8 | code, Cisco style
        };
        const FLAGS: [u8; 5] = [0x02, 0x10, 0x18, 0x1B, 0x11];
        let tcp_flags = if protocol == 6 { FLAGS[self.below(5) as usize] } else { 0 };
        // Packet sizes: mostly small or full-sized, as on real links.
        let size = match self.below(10) {
            0..4 => 40 + self.below(60),
            4..6 => 100 + self.below(500),
            _ => 1_200 + self.below(301),
        } as u16;
        // Flows of a few packets dominate, with a long tail. Churn spreads its records over a
        // whole /16, so they stay small: every /24 keeps well under the prefix thresholds and
        // only the floods are attacks.
        let packets = match self.below(10) {
            _ if self.churn => 1 + self.below(20),
            0..6 => 1 + self.below(4),
            6..9 => 5 + self.below(95),
            _ => 100 + self.below(9_900),
        };
        let src = if self.churn {
            self.churn_source()
        } else {
            Ipv4Addr::from(0x0A00_0000 | (self.next() as u32 & 0x00FF_FFFF))
        };
        Flow {
            src,
            destination,
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            size,
            packets,
            input_if: 1 + self.below(48) as u16,
            output_if: 1 + self.below(48) as u16,
            age_ms: self.below(10_000) as u32,
            idle_ms: self.below(1_000) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    src: Ipv4Addr,
    /// Index of the destination: into the two /24s, or (churn) into the /16.
    destination: usize,
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    /// IP packet size in bytes.
    size: u16,
    packets: u64,
    input_if: u16,
    output_if: u16,
    /// Flow duration (first to last switched) and time since its last packet.
    age_ms: u32,
    idle_ms: u32,
}

impl Flow {
    fn dst(&self, churn: bool) -> Ipv4Addr {
        if churn {
            Ipv4Addr::from(CHURN_PREFIX | self.destination as u32)
        } else {
            destination(self.destination)
        }
    }
}

#[derive(Debug)]
enum Encoder {
    Netflow(NetflowEncoder),
    Sflow(SflowEncoder),
}

impl Encoder {
    fn records_per_datagram(&self) -> u16 {
        match self {
            Encoder::Netflow(e) => e.records_per_datagram,
            Encoder::Sflow(e) => e.samples_per_datagram,
        }
    }

    /// Appends one datagram of `count` records to `out` and their (destination, packets, bytes)
    /// contributions to `pending`.
    fn encode(
        &mut self,
        generator: &mut Generator,
        count: u16,
        elapsed: Duration,
        out: &mut Vec<u8>,
        pending: &mut Vec<(usize, u64, u64)>,
    ) {
        match self {
            Encoder::Netflow(e) => e.encode(generator, count, elapsed, out, pending),
            Encoder::Sflow(e) => e.encode(generator, count, elapsed, out, pending),
        }
    }
}

/// The exporter pretends to have been up for an hour when the run starts.
const UPTIME_AT_START_MS: u64 = 3_600_000;

fn uptime_ms(elapsed: Duration) -> u32 {
    (UPTIME_AT_START_MS + elapsed.as_millis() as u64) as u32
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn set_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// NetFlow v9 data template: (field type, length), a typical IPv4 router export (35 bytes).
const V9_TEMPLATE: [(u16, u16); 13] = [
    (8, 4),  // IPV4_SRC_ADDR
    (12, 4), // IPV4_DST_ADDR
    (7, 2),  // L4_SRC_PORT
    (11, 2), // L4_DST_PORT
    (4, 1),  // PROTOCOL
    (6, 1),  // TCP_FLAGS
    (5, 1),  // SRC_TOS
    (2, 4),  // IN_PKTS
    (1, 4),  // IN_BYTES
    (22, 4), // FIRST_SWITCHED
    (21, 4), // LAST_SWITCHED
    (10, 2), // INPUT_SNMP
    (14, 2), // OUTPUT_SNMP
];
const V9_TEMPLATE_ID: u16 = 256;

#[derive(Debug)]
struct NetflowEncoder {
    records_per_datagram: u16,
    template_every: u64,
    sequence: u32,
    datagrams: u64,
}

impl NetflowEncoder {
    fn new(args: &Args) -> Self {
        Self {
            records_per_datagram: args.records_per_datagram,
            template_every: args.template_every.max(1),
            sequence: 0,
            datagrams: 0,
        }
    }

    fn encode(
        &mut self,
        generator: &mut Generator,
        count: u16,
        elapsed: Duration,
        out: &mut Vec<u8>,
        pending: &mut Vec<(usize, u64, u64)>,
    ) {
        let uptime = uptime_ms(elapsed);
        let with_template = self.datagrams.is_multiple_of(self.template_every);
        self.datagrams += 1;
        // Header (the count covers template and data records).
        put_u16(out, 9);
        put_u16(out, count + u16::from(with_template));
        put_u32(out, uptime);
        put_u32(out, unix_secs());
        put_u32(out, self.sequence);
        put_u32(out, 0); // source id
        self.sequence = self.sequence.wrapping_add(1);
        if with_template {
            put_u16(out, 0); // template FlowSet
            put_u16(out, 4 + 4 + 4 * V9_TEMPLATE.len() as u16);
            put_u16(out, V9_TEMPLATE_ID);
            put_u16(out, V9_TEMPLATE.len() as u16);
            for (field, len) in V9_TEMPLATE {
                put_u16(out, field);
                put_u16(out, len);
            }
        }
        let set_start = out.len();
        put_u16(out, V9_TEMPLATE_ID);
        put_u16(out, 0); // length, set below
        for _ in 0..count {
            let flow = generator.flow();
            let bytes = flow.packets * u64::from(flow.size);
            let last = uptime.wrapping_sub(flow.idle_ms);
            out.extend_from_slice(&flow.src.octets());
            out.extend_from_slice(&flow.dst(generator.churn).octets());
            put_u16(out, flow.src_port);
            put_u16(out, flow.dst_port);
            out.extend_from_slice(&[flow.protocol, flow.tcp_flags, 0]);
            put_u32(out, flow.packets as u32);
            put_u32(out, bytes as u32);
            put_u32(out, last.wrapping_sub(flow.age_ms));
            put_u32(out, last);
            put_u16(out, flow.input_if);
            put_u16(out, flow.output_if);
            pending.push((flow.destination, flow.packets, bytes));
        }
        // FlowSets are padded to a 4-byte boundary.
        while !(out.len() - set_start).is_multiple_of(4) {
            out.push(0);
        }
        let set_len = (out.len() - set_start) as u16;
        set_u16(out, set_start + 2, set_len);
    }
}

/// Bytes of each sampled packet's header carried in a flow sample (the usual agent default).
const SFLOW_HEADER_BYTES: usize = 128;

#[derive(Debug)]
struct SflowEncoder {
    samples_per_datagram: u16,
    sampling_rate: u32,
    sequence: u32,
    sample_sequence: u32,
    ip_id: u16,
}

impl SflowEncoder {
    fn new(args: &Args) -> Self {
        Self {
            samples_per_datagram: args.samples_per_datagram,
            sampling_rate: args.sampling_rate.max(1),
            sequence: 1,
            sample_sequence: 1,
            ip_id: 1,
        }
    }

    fn encode(
        &mut self,
        generator: &mut Generator,
        count: u16,
        elapsed: Duration,
        out: &mut Vec<u8>,
        pending: &mut Vec<(usize, u64, u64)>,
    ) {
        put_u32(out, 5); // version
        put_u32(out, 1); // agent address type: IPv4
        out.extend_from_slice(&[192, 0, 2, 1]); // agent address (data only, never contacted)
        put_u32(out, 0); // sub-agent id
        put_u32(out, self.sequence);
        put_u32(out, uptime_ms(elapsed));
        put_u32(out, u32::from(count));
        self.sequence = self.sequence.wrapping_add(1);
        let rate = u64::from(self.sampling_rate);
        for _ in 0..count {
            let flow = generator.flow();
            let ip_len = flow.size.max(match flow.protocol {
                6 => 40,
                _ => 28,
            });
            let frame_len = usize::from(ip_len) + 14;
            let captured = frame_len.min(SFLOW_HEADER_BYTES);
            let padded = captured.div_ceil(4) * 4;
            let record_len = 16 + padded;
            let sample_len = 28 + 4 + 8 + record_len; // sampler fields, record count, record frame
            put_u32(out, 1); // flow sample (enterprise 0, format 1)
            put_u32(out, sample_len as u32);
            put_u32(out, self.sample_sequence);
            put_u32(out, u32::from(flow.input_if)); // source id: type 0, ifIndex
            put_u32(out, self.sampling_rate);
            put_u32(out, self.sample_sequence.wrapping_mul(self.sampling_rate)); // sample pool
            put_u32(out, 0); // drops
            put_u32(out, u32::from(flow.input_if));
            put_u32(out, u32::from(flow.output_if));
            put_u32(out, 1); // one flow record
            put_u32(out, 1); // raw packet header
            put_u32(out, record_len as u32);
            put_u32(out, 1); // header protocol: Ethernet
            put_u32(out, frame_len as u32 + 4); // frame length on the wire, FCS included
            put_u32(out, 4); // stripped: the FCS
            put_u32(out, captured as u32);
            let header_start = out.len();
            self.frame(&flow, flow.dst(generator.churn), ip_len, out);
            out.truncate(header_start + captured);
            out.resize(header_start + padded, 0);
            self.sample_sequence = self.sample_sequence.wrapping_add(1);
            pending.push((flow.destination, rate, u64::from(ip_len) * rate));
        }
    }

    /// The first bytes (at least 128) of an Ethernet/IPv4 frame for `flow`.
    fn frame(&mut self, flow: &Flow, dst: Ipv4Addr, ip_len: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
        let ip_start = out.len();
        out.extend_from_slice(&[0x45, 0]);
        put_u16(out, ip_len);
        put_u16(out, self.ip_id);
        self.ip_id = self.ip_id.wrapping_add(1);
        out.extend_from_slice(&[0x40, 0, 64, flow.protocol, 0, 0]); // DF, TTL 64, checksum later
        out.extend_from_slice(&flow.src.octets());
        out.extend_from_slice(&dst.octets());
        let checksum = ip_checksum(&out[ip_start..ip_start + 20]);
        set_u16(out, ip_start + 10, checksum);
        match flow.protocol {
            6 => {
                put_u16(out, flow.src_port);
                put_u16(out, flow.dst_port);
                put_u32(out, 0x1000_0000); // sequence
                put_u32(out, 0); // acknowledgement
                out.extend_from_slice(&[0x50, flow.tcp_flags]);
                put_u16(out, 65_535); // window
                put_u32(out, 0); // checksum, urgent pointer
            }
            17 => {
                put_u16(out, flow.src_port);
                put_u16(out, flow.dst_port);
                put_u16(out, ip_len - 20);
                put_u16(out, 0);
            }
            _ => out.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]), // ICMP echo request
        }
        let len = out.len();
        out.resize(len + SFLOW_HEADER_BYTES, 0); // payload; trimmed to the captured length
    }
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn unix_secs() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_telemetry::sflow::{SflowDecoder, SflowLimits};
    use rampart_telemetry::{
        DatagramDecoder, FlowDecoder, FlowLimits, TrafficRecord, TrafficSummary, UnixNanos,
    };

    #[test]
    fn refuses_non_loopback_targets() {
        assert!(check_loopback("127.0.0.1:2055".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:2055".parse().unwrap()).is_ok());
        for bad in ["127.0.0.2:2055", "10.0.0.1:2055", "0.0.0.0:2055", "[::]:2055", "127.0.0.1:0"] {
            assert!(check_loopback(bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    /// Encodes `datagrams` datagrams and decodes them with rampart's own decoder: every record
    /// must decode without error and the per-destination totals must match what was recorded.
    fn round_trip(protocol: Protocol, mut decoder: Box<dyn DatagramDecoder>, datagrams: usize) {
        let args = Args::parse_from([
            "flow_sender",
            "--target",
            "127.0.0.1:9",
            "--protocol",
            match protocol {
                Protocol::Netflow9 => "netflow9",
                Protocol::Sflow => "sflow",
            },
        ]);
        let mut encoder = match protocol {
            Protocol::Netflow9 => Encoder::Netflow(NetflowEncoder::new(&args)),
            Protocol::Sflow => Encoder::Sflow(SflowEncoder::new(&args)),
        };
        let mut generator = Generator::new(7);
        let mut expected = TrafficSummary::new();
        let mut decoded = TrafficSummary::new();
        let (mut buffer, mut pending, mut records) = (Vec::new(), Vec::new(), Vec::new());
        let mut sent = 0;
        for i in 0..datagrams {
            buffer.clear();
            pending.clear();
            let count = encoder.records_per_datagram();
            encoder.encode(&mut generator, count, Duration::from_millis(i as u64), &mut buffer, &mut pending);
            // Around one Ethernet MTU, like real exporters (8 full sFlow samples slightly exceed it).
            assert!(buffer.len() <= 1_600, "{} bytes", buffer.len());
            sent += u64::from(count);
            for &(index, packets, bytes) in &pending {
                let dst = IpAddr::V4(destination(index));
                expected.add(&TrafficRecord { dst, packets, bytes, ..TrafficRecord::EMPTY });
            }
            records.clear();
            decoder.decode_datagram(IpAddr::V4(Ipv4Addr::LOCALHOST), &buffer, UnixNanos(0), &mut records);
            records.iter().for_each(|record| decoded.add(record));
        }
        let stats = decoder.exporter_stats();
        assert_eq!(stats.len(), 1);
        let stats = &stats[0].1;
        assert_eq!((stats.records, stats.decode_errors, stats.sequence_gaps), (sent, 0, 0), "{stats:?}");
        assert_eq!(stats.unknown_template_records, 0);
        assert_eq!(decoded.total(), expected.total());
        assert_eq!(decoded.destinations_by_bytes(), expected.destinations_by_bytes());
        assert_eq!(decoded.destination_count(), DESTINATIONS);
    }

    #[test]
    fn netflow_v9_round_trips_through_the_decoder() {
        round_trip(Protocol::Netflow9, Box::new(FlowDecoder::new(FlowLimits::default())), 200);
    }

    #[test]
    fn sflow_round_trips_through_the_decoder() {
        round_trip(Protocol::Sflow, Box::new(SflowDecoder::new(SflowLimits::default())), 400);
    }

    #[test]
    fn churn_covers_the_16_and_keeps_short_floods_going() {
        let mut generator = Generator::new(5);
        generator.churn = true;
        let mut packets = std::collections::HashMap::new();
        // 200 000 records over 10 s of run time.
        for i in 0..200_000u64 {
            generator.now_ms = i / 20;
            let flow = generator.flow();
            let dst = flow.dst(true);
            assert_eq!(u32::from(dst) >> 16, 0xC633, "{dst}");
            assert_ne!(u32::from(flow.src) >> 16, 0xC633, "{}", flow.src);
            *packets.entry(dst).or_insert(0u64) += flow.packets;
        }
        assert!(packets.len() > 40_000, "{}", packets.len());
        // Flood targets stand out by far; floods of 5 to 30 s over 10 s: 8 to 16 of them.
        let floods = packets.values().filter(|&&p| p > 100_000).count();
        assert!((CHURN_FLOODS..=2 * CHURN_FLOODS).contains(&floods), "{floods}");
    }

    #[test]
    fn same_seed_same_records() {
        let mut a = Generator::new(3);
        let mut b = Generator::new(3);
        for _ in 0..100 {
            assert_eq!(format!("{:?}", a.flow()), format!("{:?}", b.flow()));
        }
    }
}
