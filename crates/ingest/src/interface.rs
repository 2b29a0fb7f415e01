//! Packet capture from an interface (a mirror / SPAN port) through AF_PACKET TPACKET_V3 rings
//! (`rampart-filter`), in the default build: no libpcap.
//!
//! One ring per capture thread, all in one fanout group, so the kernel spreads the interface's
//! flows over the threads. Each thread walks the blocks the kernel hands over, decodes every
//! frame with the shared `packet::decode` (as captures read from files) and sends record
//! batches to the same stream as the flow collectors. Counts (frames, records, non-IP frames,
//! undecodable frames, kernel drops) are shared atomics, readable while capture runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_filter::afpacket::{Frame, Ring, RingConfig, RingError};
use rampart_telemetry::packet::{self, PacketError};
use rampart_telemetry::{Exporter, ExporterStats, LinkType, RecordSource, TrafficRecord, UnixNanos};
use tokio::sync::mpsc;

/// ARPHRD_* hardware types whose frames start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Records per batch handed on (a block usually gives fewer).
const BATCH: usize = 1024;
/// How long a thread waits for a block before looking at `stop`.
const POLL: Duration = Duration::from_millis(100);
/// How often the kernel's drop counters are read into the shared stats.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// What to capture on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The interface name (`ip link`).
    pub name: String,
    /// Capture threads (one ring each, one fanout group).
    pub threads: usize,
    /// Ring bytes per thread (rounded down to whole 1 MiB blocks, at least one).
    pub ring_bytes: usize,
    /// Keep 1 frame in N (1 keeps all); kept records carry `sampling_rate = N`.
    pub sample_one_in: u32,
    /// The fanout group id; `None`: one the kernel picks, used by no one else.
    pub fanout_group: Option<u16>,
}

impl InterfaceConfig {
    /// Every frame, 64 MiB of ring in all, threads: one per core up to 4.
    pub fn new(name: impl Into<String>) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        InterfaceConfig {
            name: name.into(),
            threads,
            ring_bytes: (64 << 20) / threads,
            sample_one_in: 1,
            fanout_group: None,
        }
    }

    fn ring(&self) -> RingConfig {
        let mut ring = RingConfig::new(self.name.clone());
        let blocks = (self.ring_bytes / ring.block_size as usize).clamp(1, 4096);
        ring.block_count = blocks as u32;
        ring.fanout_group = self.fanout_group;
        ring
    }
}

/// Opening or reading a capture failed (no such interface, no privilege, ...).
pub use rampart_filter::afpacket::RingError as CaptureError;

/// Whether `name` can be an interface name (1 to 15 bytes, no NUL or slash or space); the
/// message says why not.
pub fn check_name(name: &str) -> Result<(), String> {
    let usable = !name.is_empty()
        && name.len() <= 15
        && !name.bytes().any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace());
    if usable {
        Ok(())
    } else {
        Err(format!("{name:?} is not an interface name (1 to 15 bytes, no '/' or spaces)"))
    }
}

/// One interface's counters, shared while it is captured.
#[derive(Debug, Default)]
pub struct InterfaceStats {
    pub interface: String,
    /// Frames read from the rings.
    pub frames: AtomicU64,
    /// Records handed on (after sampling).
    pub records: AtomicU64,
    /// Frames that were not IP (ARP, LLDP, ...).
    pub non_ip: AtomicU64,
    /// IP frames that did not decode.
    pub decode_errors: AtomicU64,
    /// Frames the kernel dropped because a ring was full (as of the last read, about once a
    /// second).
    pub kernel_drops: AtomicU64,
    /// Blocks whose frame chain was malformed (never expected from the kernel).
    pub bad_blocks: AtomicU64,
}

impl InterfaceStats {
    /// The counts as the decoder statistics `collect` prints: frames as datagrams.
    pub fn exporter_stats(&self) -> ExporterStats {
        ExporterStats {
            datagrams: self.frames.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed)
                + self.bad_blocks.load(Ordering::Relaxed),
            drops: self.kernel_drops.load(Ordering::Relaxed),
            ..ExporterStats::default()
        }
    }
}

/// The error with what the kernel said (its source), in one line.
fn describe(error: &CaptureError) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// One line for operators: what the capture of one interface saw and lost.
pub fn summary(stats: &InterfaceStats) -> String {
    format!(
        "capture on {}: {} frames, {} records, {} not IP, {} undecodable, {} dropped by the kernel (ring full)",
        stats.interface,
        stats.frames.load(Ordering::Relaxed),
        stats.records.load(Ordering::Relaxed),
        stats.non_ip.load(Ordering::Relaxed),
        stats.decode_errors.load(Ordering::Relaxed) + stats.bad_blocks.load(Ordering::Relaxed),
        stats.kernel_drops.load(Ordering::Relaxed),
    )
}

/// The rings of one interface, open, not yet running.
#[derive(Debug)]
pub struct InterfaceCapture {
    config: InterfaceConfig,
    rings: Vec<Ring>,
    stats: Arc<InterfaceStats>,
}

impl InterfaceCapture {
    /// Opens every ring, so that a missing interface or privilege shows before anything runs.
    pub fn open(config: InterfaceConfig) -> Result<Self, CaptureError> {
        let rings = Ring::open_group(&config.ring(), config.threads.max(1))?;
        let stats = Arc::new(InterfaceStats { interface: config.name.clone(), ..InterfaceStats::default() });
        Ok(InterfaceCapture { config, rings, stats })
    }

    pub fn stats(&self) -> &Arc<InterfaceStats> {
        &self.stats
    }

    /// The fanout group the rings share (none for a single ring).
    pub fn fanout_group(&self) -> Option<u16> {
        self.rings.first().and_then(Ring::fanout_group)
    }

    /// Starts one thread per ring; batches go to `sink` until `stop` is set.
    pub fn spawn(
        self,
        sink: mpsc::Sender<Vec<TrafficRecord>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<RunningCapture> {
        let mut threads = Vec::new();
        let drops = Arc::new((0..self.rings.len()).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
        for (index, ring) in self.rings.into_iter().enumerate() {
            let worker = Worker {
                ring,
                index,
                sink: sink.clone(),
                stop: stop.clone(),
                stats: self.stats.clone(),
                drops: drops.clone(),
                sample_one_in: u64::from(self.config.sample_one_in.max(1)),
            };
            let thread = std::thread::Builder::new()
                .name(format!("capture-{}-{index}", self.config.name))
                .spawn(move || worker.run())?;
            threads.push(thread);
        }
        Ok(RunningCapture { interface: self.config.name, threads, stats: self.stats })
    }
}

/// Capture threads of one interface.
#[derive(Debug)]
pub struct RunningCapture {
    interface: String,
    threads: Vec<JoinHandle<Result<(), RingError>>>,
    stats: Arc<InterfaceStats>,
}

impl RunningCapture {
    pub fn stats(&self) -> &Arc<InterfaceStats> {
        &self.stats
    }

    /// Waits for the threads (after `stop` was set); the first error, if one failed.
    pub fn join(self) -> Result<Arc<InterfaceStats>, String> {
        let mut failure = None;
        for thread in self.threads {
            let outcome = match thread.join() {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => describe(&error),
                Err(_) => format!("a capture thread on {} panicked", self.interface),
            };
            failure.get_or_insert(outcome);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(self.stats),
        }
    }
}

/// How to decode a frame: by the device's hardware type, else as the bare IP packet after
/// whatever link header the device has.
fn decode_frame(frame: &Frame<'_>) -> Result<packet::PacketHeaders, PacketError> {
    match frame.hatype {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => packet::decode(LinkType::Ethernet, frame.data, frame.wire_len),
        _ if matches!(frame.protocol, ETHERTYPE_IPV4 | ETHERTYPE_IPV6) => {
            let ip = frame.data.get(frame.network_offset..).unwrap_or_default();
            let wire = frame.wire_len.saturating_sub(frame.network_offset as u32);
            packet::decode(LinkType::Raw, ip, wire)
        }
        _ => Err(PacketError::NotIp(u32::from(frame.protocol))),
    }
}

/// 1-in-N sampling over every frame seen.
#[derive(Debug, Clone)]
pub struct Sampler {
    one_in: u64,
    seen: u64,
}

impl Sampler {
    pub fn new(one_in: u32) -> Self {
        Sampler { one_in: u64::from(one_in.max(1)), seen: 0 }
    }

    fn keep(&mut self) -> bool {
        self.seen += 1;
        self.seen.is_multiple_of(self.one_in)
    }
}

/// Turns the frames of one block into records, counting as it goes.
fn records_from<'a>(
    frames: impl Iterator<Item = Frame<'a>>,
    stats: &InterfaceStats,
    sample: &mut Sampler,
    out: &mut Vec<TrafficRecord>,
) {
    let (mut frames_seen, mut records, mut non_ip, mut errors) = (0u64, 0u64, 0u64, 0u64);
    for frame in frames {
        frames_seen += 1;
        if !sample.keep() {
            continue;
        }
        match decode_frame(&frame) {
            Ok(headers) => {
                let time = UnixNanos(u64::from(frame.sec) * 1_000_000_000 + u64::from(frame.nsec));
                let mut record = headers.into_record(time, Exporter::CAPTURE, RecordSource::Pcap);
                record.sampling_rate = sample.one_in as u32;
                out.push(record);
                records += 1;
            }
            Err(PacketError::NotIp(_)) => non_ip += 1,
            Err(_) => errors += 1,
        }
    }
    stats.frames.fetch_add(frames_seen, Ordering::Relaxed);
    stats.records.fetch_add(records, Ordering::Relaxed);
    stats.non_ip.fetch_add(non_ip, Ordering::Relaxed);
    stats.decode_errors.fetch_add(errors, Ordering::Relaxed);
}

/// One capture thread.
struct Worker {
    ring: Ring,
    index: usize,
    sink: mpsc::Sender<Vec<TrafficRecord>>,
    stop: Arc<AtomicBool>,
    stats: Arc<InterfaceStats>,
    /// Each thread's kernel drops, summed into `stats.kernel_drops`.
    drops: Arc<Vec<AtomicU64>>,
    sample_one_in: u64,
}

impl Worker {
    fn run(mut self) -> Result<(), RingError> {
        let mut sampler = Sampler::new(self.sample_one_in as u32);
        let mut batch = Vec::with_capacity(BATCH);
        let mut stats_due = Instant::now() + STATS_EVERY;
        let mut last_error: Option<String> = None;
        while !self.stop.load(Ordering::Relaxed) {
            match self.ring.next_block(POLL) {
                Ok(Some(block)) => match block.frames() {
                    Ok(mut frames) => {
                        records_from(frames.by_ref(), &self.stats, &mut sampler, &mut batch);
                        if frames.error().is_some() {
                            self.stats.bad_blocks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        self.stats.bad_blocks.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Ok(None) => {}
                // The interface went down or similar: say so once, keep waiting for it.
                Err(error) => {
                    let text = describe(&error);
                    if last_error.as_deref() != Some(text.as_str()) {
                        eprintln!("rampart: {text}");
                        last_error = Some(text);
                    }
                    std::thread::sleep(POLL);
                }
            }
            // A block is handed over when full or after its timeout (10 ms): pass its records on
            // now rather than wait for a full batch.
            if !batch.is_empty()
                && self.sink.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err()
            {
                break;
            }
            if Instant::now() >= stats_due {
                stats_due = Instant::now() + STATS_EVERY;
                self.publish_drops()?;
            }
        }
        if !batch.is_empty() {
            let _ = self.sink.blocking_send(batch);
        }
        self.publish_drops()
    }

    fn publish_drops(&mut self) -> Result<(), RingError> {
        let totals = self.ring.stats()?;
        if let Some(mine) = self.drops.get(self.index) {
            mine.store(totals.drops, Ordering::Relaxed);
        }
        let sum = self.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum();
        self.stats.kernel_drops.store(sum, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_filter::afpacket::block::frames;
    use rampart_filter::afpacket::block::synthetic::{SyntheticFrame, block};

    fn udp_frame(dst_port: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + 8 + 10];
        frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut frame[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&38u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 51, 100, 7]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 1]);
        ip[20..22].copy_from_slice(&40000u16.to_be_bytes());
        ip[22..24].copy_from_slice(&dst_port.to_be_bytes());
        ip[24..26].copy_from_slice(&18u16.to_be_bytes());
        frame
    }

    fn synthetic(data: Vec<u8>, hatype: u16, protocol: u16, network_offset: u16) -> SyntheticFrame {
        SyntheticFrame {
            sec: 1_767_225_600,
            nsec: 5,
            wire_len: data.len() as u32,
            data,
            hatype,
            protocol,
            network_offset,
        }
    }

    #[test]
    fn ethernet_raw_ip_and_non_ip_frames() {
        let ethernet = udp_frame(53);
        let raw_ip = ethernet[14..].to_vec();
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let bytes = block(
            &[
                synthetic(ethernet, ARPHRD_ETHER, ETHERTYPE_IPV4, 14),
                // A tun device (ARPHRD_NONE): the frame is the IP packet.
                synthetic(raw_ip, 65534, ETHERTYPE_IPV4, 0),
                synthetic(arp, ARPHRD_ETHER, 0x0806, 14),
            ],
            0,
        );
        let stats = InterfaceStats::default();
        let mut out = Vec::new();
        records_from(frames(&bytes).unwrap(), &stats, &mut Sampler::new(1), &mut out);
        assert_eq!(out.len(), 2);
        for record in &out {
            assert_eq!((record.dst_port, record.protocol, record.bytes), (Some(53), 17, 38));
            assert_eq!(record.start.0, 1_767_225_600_000_000_005);
            assert_eq!(record.sampling_rate, 1);
        }
        assert_eq!(stats.frames.load(Ordering::Relaxed), 3);
        assert_eq!(stats.non_ip.load(Ordering::Relaxed), 1);
        assert_eq!(stats.records.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn sampling_keeps_one_in_n_and_scales() {
        let frames_in: Vec<_> =
            (0..10).map(|i| synthetic(udp_frame(1000 + i), ARPHRD_ETHER, ETHERTYPE_IPV4, 14)).collect();
        let bytes = block(&frames_in, 0);
        let stats = InterfaceStats::default();
        let mut out = Vec::new();
        records_from(frames(&bytes).unwrap(), &stats, &mut Sampler::new(5), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.scaled_packets() == 5));
        assert_eq!(stats.exporter_stats().datagrams, 10);
    }

    #[test]
    fn missing_interface_is_named() {
        let error = InterfaceCapture::open(InterfaceConfig::new("rampart-nope0")).unwrap_err();
        assert!(error.to_string().contains("no interface named rampart-nope0"), "{error}");
    }

    /// Real datagrams on loopback, through two capture threads (needs root or CAP_NET_RAW, as
    /// CI has): every one arrives as a record, once leaving and once arriving.
    #[test]
    fn captures_loopback_through_threads() {
        let mut config = InterfaceConfig::new("lo");
        config.threads = 2;
        config.ring_bytes = 4 << 20;
        let capture = match InterfaceCapture::open(config) {
            Err(RingError::Permission { .. })
                if std::env::var_os("RAMPART_REQUIRE_PEERS").is_none()
                    && std::env::var_os("CI").is_none() =>
            {
                eprintln!("skipped: AF_PACKET needs root or CAP_NET_RAW");
                return;
            }
            other => other.expect("capture on lo"),
        };
        let stats = capture.stats().clone();
        let (sink, mut batches) = mpsc::channel(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let running = capture.spawn(sink, stop.clone()).unwrap();
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = sender.local_addr().unwrap().port();
        for _ in 0..100 {
            sender.send_to(&[0u8; 72], ("127.0.0.1", port)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut mine = 0;
        while mine < 200 && Instant::now() < deadline {
            match batches.try_recv() {
                Ok(batch) => {
                    // Other processes use lo too: only UDP from our sender to our port.
                    mine += batch
                        .iter()
                        .filter(|r| r.protocol == 17 && r.dst_port == Some(port) && r.src_port == Some(from))
                        .inspect(|r| assert_eq!(r.bytes, 100))
                        .count()
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        running.join().unwrap();
        // lo is shared with every process on the host: what a full ring lost is counted.
        let drops = stats.kernel_drops.load(Ordering::Relaxed);
        assert!(mine <= 200 && mine as u64 + drops >= 200, "{mine} records, {drops} dropped");
        if drops == 0 {
            assert_eq!(mine, 200);
        }
        assert!(stats.frames.load(Ordering::Relaxed) >= mine as u64);
    }
}
