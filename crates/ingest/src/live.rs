//! Live packet capture from an interface (a mirror / SPAN port) through libpcap.
//!
//! libpcap brings what an operator expects: BPF filters in tcpdump syntax, kernel ring buffers,
//! drop counters. It runs on a blocking thread; each frame goes through the shared
//! `packet::decode`, exactly as captures read from files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pcap::{Capture, Precision};
use rampart_telemetry::packet::{self, PacketError};
use rampart_telemetry::{Exporter, ExporterStats, LinkType, RecordSource, TrafficRecord, UnixNanos};
use tokio::sync::mpsc;

/// What to capture.
#[derive(Debug, Clone)]
pub struct LiveCaptureConfig {
    pub interface: String,
    /// A tcpdump-syntax filter applied in the kernel.
    pub bpf_filter: Option<String>,
    /// Keep 1 packet in N (1 keeps all); kept records carry `sampling_rate = N`.
    pub sample_one_in: u32,
    /// Bytes captured per packet: headers are all we need.
    pub snaplen: i32,
    /// Kernel ring buffer size in bytes.
    pub buffer_size: i32,
}

impl LiveCaptureConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        Self {
            interface: interface.into(),
            bpf_filter: None,
            sample_one_in: 1,
            snaplen: 256,
            buffer_size: 64 << 20,
        }
    }
}

/// Opening or running a live capture failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveCaptureError {
    /// libpcap could not open the interface (missing, down, or missing privilege).
    #[error(
        "cannot capture on interface {interface}: {message} (live capture needs root or CAP_NET_RAW; `ip link` lists interfaces)"
    )]
    Open { interface: String, message: String },
    /// The BPF filter did not compile.
    #[error("invalid capture filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    /// Reading from the interface failed.
    #[error("capture on {interface} failed: {message}")]
    Read { interface: String, message: String },
}

/// What a live capture saw, returned when it stops.
#[derive(Debug, Clone)]
pub struct LiveCaptureReport {
    pub interface: String,
    pub stats: ExporterStats,
    /// Frames that were not IP (ARP, LLDP, ...).
    pub non_ip_frames: u64,
}

/// Opened capture, ready to run on a blocking thread.
pub struct LiveCapture {
    config: LiveCaptureConfig,
    capture: Capture<pcap::Active>,
    link: LinkType,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture").field("config", &self.config).field("link", &self.link).finish()
    }
}

/// Kernel block timeout for batched delivery.
const READ_TIMEOUT_MS: i32 = 100;
/// Pause when the interface is idle.
const IDLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
const BATCH: usize = 1024;

impl LiveCapture {
    /// Opens the interface and installs the filter, so that errors show before anything runs.
    pub fn open(config: LiveCaptureConfig) -> Result<Self, LiveCaptureError> {
        let open_error = |error: pcap::Error| LiveCaptureError::Open {
            interface: config.interface.clone(),
            message: error.to_string(),
        };
        let mut capture = Capture::from_device(config.interface.as_str())
            .map_err(open_error)?
            .promisc(true)
            .snaplen(config.snaplen)
            .buffer_size(config.buffer_size)
            .timeout(READ_TIMEOUT_MS)
            .precision(Precision::Nano)
            .immediate_mode(true)
            .open()
            .map_err(open_error)?
            // libpcap's read timeout does not fire on Linux when no packet arrives at all, so a
            // blocking read could never see `stop`: poll instead, pausing briefly when idle.
            .setnonblock()
            .map_err(open_error)?;
        if let Some(filter) = &config.bpf_filter {
            capture.filter(filter, true).map_err(|error| LiveCaptureError::Filter {
                filter: filter.clone(),
                message: error.to_string(),
            })?;
        }
        let link = LinkType::from_pcap(capture.get_datalink().0 as u32);
        Ok(Self { config, capture, link })
    }

    /// Captures until `stop` is set, sending record batches to `sink`. Blocking: run it on
    /// `tokio::task::spawn_blocking` or a thread.
    pub fn run(
        mut self,
        sink: mpsc::Sender<Vec<TrafficRecord>>,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveCaptureReport, LiveCaptureError> {
        let mut stats = ExporterStats::default();
        let mut non_ip_frames = 0;
        let sample_one_in = u64::from(self.config.sample_one_in.max(1));
        let mut seen: u64 = 0;
        let mut batch = Vec::with_capacity(BATCH);
        while !stop.load(Ordering::Relaxed) {
            match self.capture.next_packet() {
                Ok(frame) => {
                    stats.datagrams += 1;
                    seen += 1;
                    if !seen.is_multiple_of(sample_one_in) {
                        continue;
                    }
                    let ts = frame.header.ts;
                    // Nanosecond precision was requested: tv_usec holds nanoseconds.
                    let time =
                        UnixNanos((ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_usec as u64);
                    match packet::decode(self.link, frame.data, frame.header.len) {
                        Ok(headers) => {
                            let mut record = headers.into_record(time, Exporter::CAPTURE, RecordSource::Pcap);
                            record.sampling_rate = sample_one_in as u32;
                            stats.records += 1;
                            batch.push(record);
                        }
                        Err(PacketError::NotIp(_)) => non_ip_frames += 1,
                        Err(_) => stats.decode_errors += 1,
                    }
                }
                // Quiet link: hand over what we have rather than hold it until the batch fills.
                Err(pcap::Error::TimeoutExpired) => {
                    if !batch.is_empty()
                        && sink
                            .blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                            .is_err()
                    {
                        break;
                    }
                    std::thread::sleep(IDLE_PAUSE);
                }
                Err(error) => {
                    return Err(LiveCaptureError::Read {
                        interface: self.config.interface.clone(),
                        message: error.to_string(),
                    });
                }
            }
            if batch.len() >= BATCH
                && sink.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err()
            {
                break;
            }
        }
        if !batch.is_empty() {
            let _ = sink.blocking_send(batch);
        }
        if let Ok(kernel) = self.capture.stats() {
            stats.drops = u64::from(kernel.dropped) + u64::from(kernel.if_dropped);
        }
        Ok(LiveCaptureReport { interface: self.config.interface, stats, non_ip_frames })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let error = LiveCapture::open(LiveCaptureConfig::new("rampart-no-such-if0")).unwrap_err();
        assert!(error.to_string().contains("rampart-no-such-if0"), "{error}");
    }

    #[test]
    fn bad_filter_is_named() {
        let mut config = LiveCaptureConfig::new("lo");
        config.bpf_filter = Some("udp and and".into());
        let error = LiveCapture::open(config).unwrap_err();
        assert!(matches!(error, LiveCaptureError::Filter { .. }), "{error}");
    }

    /// Captures real datagrams on loopback (needs root or CAP_NET_RAW, as CI has).
    #[test]
    fn captures_loopback_udp_with_filter_and_sampling() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let mut config = LiveCaptureConfig::new("lo");
        config.bpf_filter = Some(format!("udp and dst port {port}"));
        config.sample_one_in = 2;
        let capture = LiveCapture::open(config).expect("live capture on lo (run as root)");
        let (sink, mut batches) = mpsc::channel(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let runner = {
            let stop = stop.clone();
            std::thread::spawn(move || capture.run(sink, stop))
        };
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        for _ in 0..100 {
            sender.send_to(&[0u8; 72], ("127.0.0.1", port)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut records = Vec::new();
        while records.len() < 50 && std::time::Instant::now() < deadline {
            match batches.try_recv() {
                Ok(batch) => records.extend(batch),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let report = runner.join().unwrap().unwrap();
        while let Ok(batch) = batches.try_recv() {
            records.extend(batch);
        }
        assert_eq!(report.stats.datagrams, 100);
        assert_eq!(records.len(), 50);
        for record in &records {
            assert_eq!((record.dst_port, record.bytes, record.sampling_rate), (Some(port), 100, 2));
            assert_eq!(record.scaled_packets(), 2);
        }
    }
}
