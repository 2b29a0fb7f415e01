//! UDP collectors: one socket per protocol, datagrams decoded as they arrive, record batches
//! handed to the consumer over a bounded channel.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_telemetry::{DatagramDecoder, Exporter, ExporterStats, TrafficRecord, UnixNanos};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// Which protocol a collector speaks (for messages, statistics and default ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorKind {
    Sflow,
    Netflow,
    Ipfix,
}

impl CollectorKind {
    pub fn default_port(self) -> u16 {
        match self {
            CollectorKind::Sflow => 6343,
            CollectorKind::Netflow => 2055,
            CollectorKind::Ipfix => 4739,
        }
    }
}

impl fmt::Display for CollectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CollectorKind::Sflow => "sFlow",
            CollectorKind::Netflow => "NetFlow",
            CollectorKind::Ipfix => "IPFIX",
        })
    }
}

/// Errors opening a collector socket, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process already listens on the address.
    #[error(
        "cannot listen for {kind} on {addr}: the address is already in use (is another collector running? choose another address)"
    )]
    InUse { kind: CollectorKind, addr: SocketAddr },
    /// Ports below 1024 need root or CAP_NET_BIND_SERVICE.
    #[error(
        "cannot listen for {kind} on {addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    )]
    Permission { kind: CollectorKind, addr: SocketAddr },
    /// Any other socket error.
    #[error("cannot listen for {kind} on {addr}: {source}")]
    Other { kind: CollectorKind, addr: SocketAddr, source: io::Error },
}

/// What a collector saw, returned when it stops.
#[derive(Debug, Clone)]
pub struct UdpCollectorReport {
    pub kind: CollectorKind,
    pub local_addr: SocketAddr,
    pub exporters: Vec<(Exporter, ExporterStats)>,
    /// Datagrams not tied to an exporter (unreadable headers, exporter cap reached).
    pub unattributed: ExporterStats,
    /// Datagrams the kernel dropped on this socket because the receive buffer was full
    /// (`/proc/net/udp` drops column), where the OS reports it.
    pub socket_drops: Option<u64>,
    /// Effective receive buffer size in bytes.
    pub receive_buffer: usize,
}

/// A bound UDP collector, ready to run.
pub struct UdpCollector {
    kind: CollectorKind,
    socket: UdpSocket,
    decoder: Box<dyn DatagramDecoder>,
    receive_buffer: usize,
}

impl fmt::Debug for UdpCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpCollector").field("kind", &self.kind).field("socket", &self.socket).finish()
    }
}

/// Receive buffer asked for: bursts of export datagrams (a router flushing its cache) must not
/// overflow while the collector is busy. The kernel caps it at net.core.rmem_max.
pub const DEFAULT_RECEIVE_BUFFER: usize = 32 << 20;

/// Largest UDP payload; every export datagram fits.
const MAX_DATAGRAM: usize = 65_535;

/// Records per batch handed to the consumer. Batches used to grow with the backlog (a full drain
/// of 4096 datagrams: ~120k records, ~15 MB): every batch then touched fresh pages, and page
/// faults took a third of the collector's CPU at 4M records/s. Small batches stay in the cache
/// and in the allocator's reusable heap, and one channel send per 512 records costs nothing.
pub const BATCH_RECORDS: usize = 512;

/// Room for one more datagram's records past [`BATCH_RECORDS`] (a full-size NetFlow v9
/// datagram holds ~30-40 typical records) without growing; stays below glibc's 128 KiB mmap
/// threshold so batches come from the reusable heap.
const BATCH_CAPACITY: usize = BATCH_RECORDS + 256;

/// Datagrams read per readiness wakeup before other tasks get the thread.
const MAX_DATAGRAMS_PER_WAKEUP: usize = 4096;

impl UdpCollector {
    /// Binds `addr` (must be called inside a Tokio runtime).
    pub fn bind(
        kind: CollectorKind,
        addr: SocketAddr,
        decoder: Box<dyn DatagramDecoder>,
        receive_buffer: usize,
    ) -> Result<Self, BindError> {
        let (socket, receive_buffer) = bind_socket(kind, addr, receive_buffer)?;
        Ok(Self::from_socket(kind, socket, decoder, receive_buffer))
    }

    /// A collector on an already bound socket (see [`bind_socket`]).
    pub(crate) fn from_socket(
        kind: CollectorKind,
        socket: UdpSocket,
        decoder: Box<dyn DatagramDecoder>,
        receive_buffer: usize,
    ) -> Self {
        Self { kind, socket, decoder, receive_buffer }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn kind(&self) -> CollectorKind {
        self.kind
    }

    /// Receives and decodes until `stop` turns true, sending batches of records to `sink` (each
    /// about [`BATCH_RECORDS`] long, never empty). If the consumer is gone, the collector stops.
    pub async fn run(
        mut self,
        sink: mpsc::Sender<Vec<TrafficRecord>>,
        mut stop: watch::Receiver<bool>,
    ) -> io::Result<UdpCollectorReport> {
        let local_addr = self.socket.local_addr()?;
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut batch: Vec<TrafficRecord> = Vec::with_capacity(BATCH_CAPACITY);
        'outer: loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                ready = self.socket.readable() => {
                    ready?;
                    // Drain what is queued before waiting again: one wakeup, many datagrams.
                    let mut received = now();
                    for _ in 0..MAX_DATAGRAMS_PER_WAKEUP {
                        match self.socket.try_recv_from(&mut buffer) {
                            Ok((len, from)) => {
                                let from = canonical(from.ip());
                                let datagram = buffer.get(..len).unwrap_or(&buffer);
                                self.decoder.decode_datagram(from, datagram, received, &mut batch);
                                if batch.len() >= BATCH_RECORDS {
                                    if !flush(&sink, &mut batch).await {
                                        break 'outer;
                                    }
                                    received = now();
                                }
                            }
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                            // ICMP errors reported on UDP sockets are not ours to act on.
                            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => continue,
                            Err(error) => return Err(error),
                        }
                    }
                    if !batch.is_empty() && !flush(&sink, &mut batch).await {
                        break 'outer;
                    }
                }
            }
        }
        Ok(UdpCollectorReport {
            kind: self.kind,
            local_addr,
            exporters: self.decoder.exporter_stats(),
            unattributed: self.decoder.unattributed_stats(),
            socket_drops: socket_drops(local_addr),
            receive_buffer: self.receive_buffer,
        })
    }
}

/// Binds a non-blocking UDP socket on `addr` with (up to) `receive_buffer` bytes of receive
/// buffer; returns it and the buffer size the kernel granted. Must be called inside a Tokio
/// runtime.
pub(crate) fn bind_socket(
    kind: CollectorKind,
    addr: SocketAddr,
    receive_buffer: usize,
) -> Result<(UdpSocket, usize), BindError> {
    let other = |source: io::Error| match source.kind() {
        io::ErrorKind::AddrInUse => BindError::InUse { kind, addr },
        io::ErrorKind::PermissionDenied => BindError::Permission { kind, addr },
        _ => BindError::Other { kind, addr, source },
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(other)?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped exporters on an IPv6 wildcard, as operators expect from `[::]`.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works, the report shows what we got.
    let _ = socket.set_recv_buffer_size(receive_buffer);
    socket.set_nonblocking(true).map_err(other)?;
    socket.bind(&addr.into()).map_err(other)?;
    let receive_buffer = socket.recv_buffer_size().unwrap_or(0);
    let socket = UdpSocket::from_std(socket.into()).map_err(other)?;
    Ok((socket, receive_buffer))
}

/// Hands the batch to the consumer and starts a new one; false when the consumer is gone.
async fn flush(sink: &mpsc::Sender<Vec<TrafficRecord>>, batch: &mut Vec<TrafficRecord>) -> bool {
    let full = std::mem::replace(batch, Vec::with_capacity(BATCH_CAPACITY));
    sink.send(full).await.is_ok()
}

fn now() -> UnixNanos {
    UnixNanos(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0))
}

/// IPv4 exporters arriving on a dual-stack socket show up as `::ffff:a.b.c.d`; name them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Kernel drops for the UDP socket bound to `local`, from /proc/net/udp{,6} (Linux only).
pub fn socket_drops(local: SocketAddr) -> Option<u64> {
    let files: &[&str] = if local.is_ipv4() { &["/proc/net/udp"] } else { &["/proc/net/udp6"] };
    let port = format!("{:04X}", local.port());
    let mut found = None;
    for file in files {
        let Ok(table) = std::fs::read_to_string(file) else { continue };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            let (Some(local_field), Some(drops)) = (fields.get(1), fields.get(12)) else { continue };
            if local_field.rsplit(':').next() == Some(port.as_str())
                && let Ok(drops) = drops.parse::<u64>()
            {
                *found.get_or_insert(0) += drops;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_telemetry::DatagramDecoder;

    /// Counts datagrams and echoes one record per datagram whose first byte is the packet count.
    struct EchoDecoder {
        stats: ExporterStats,
    }

    impl DatagramDecoder for EchoDecoder {
        fn decode_datagram(
            &mut self,
            from: IpAddr,
            datagram: &[u8],
            received: UnixNanos,
            out: &mut Vec<TrafficRecord>,
        ) {
            // First byte: the packet count; second byte (if any): how many records to emit.
            let copies = datagram.get(1).map_or(1, |&n| u64::from(n));
            self.stats.datagrams += 1;
            self.stats.records += copies;
            for _ in 0..copies {
                out.push(TrafficRecord {
                    start: received,
                    end: received,
                    src: from,
                    packets: u64::from(datagram.first().copied().unwrap_or(0)),
                    ..TrafficRecord::EMPTY
                });
            }
        }

        fn exporter_stats(&self) -> Vec<(Exporter, ExporterStats)> {
            vec![(Exporter::CAPTURE, self.stats.clone())]
        }

        fn unattributed_stats(&self) -> ExporterStats {
            ExporterStats::default()
        }
    }

    #[tokio::test]
    async fn receives_decodes_and_reports() {
        let decoder = Box::new(EchoDecoder { stats: ExporterStats::default() });
        let collector =
            UdpCollector::bind(CollectorKind::Netflow, "127.0.0.1:0".parse().unwrap(), decoder, 1 << 20)
                .unwrap();
        let addr = collector.local_addr().unwrap();
        let (sink, mut records) = mpsc::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(collector.run(sink, stop_rx));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for count in 1..=10u8 {
            sender.send_to(&[count], addr).unwrap();
        }
        let mut packets = 0;
        while packets < 55 {
            for record in records.recv().await.unwrap() {
                assert_eq!(record.src, IpAddr::from([127, 0, 0, 1]));
                packets += record.packets;
            }
        }
        stop_tx.send(true).unwrap();
        let report = task.await.unwrap().unwrap();
        assert_eq!(report.exporters[0].1.datagrams, 10);
        assert_eq!(report.socket_drops, Some(0));
        assert!(report.receive_buffer > 0);
    }

    #[test]
    fn batches_stay_below_the_mmap_threshold() {
        assert!(BATCH_CAPACITY * std::mem::size_of::<TrafficRecord>() < 128 * 1024);
    }

    #[tokio::test]
    async fn a_backlog_is_handed_over_in_bounded_batches() {
        let decoder = Box::new(EchoDecoder { stats: ExporterStats::default() });
        let collector =
            UdpCollector::bind(CollectorKind::Netflow, "127.0.0.1:0".parse().unwrap(), decoder, 1 << 20)
                .unwrap();
        let addr = collector.local_addr().unwrap();
        // Queue the backlog before the collector runs, so one wakeup finds all of it.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..100 {
            sender.send_to(&[1, 30], addr).unwrap();
        }
        let (sink, mut batches) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(collector.run(sink, stop_rx));
        let mut records = 0;
        let mut sizes = Vec::new();
        while records < 3000 {
            let batch = batches.recv().await.unwrap();
            assert!(!batch.is_empty());
            assert!(batch.len() < BATCH_RECORDS + 30, "batch of {}", batch.len());
            assert!(batch.capacity() <= BATCH_CAPACITY, "capacity {}", batch.capacity());
            records += batch.len();
            sizes.push(batch.len());
        }
        assert_eq!(records, 3000);
        assert!(sizes.len() >= 3000 / (BATCH_RECORDS + 30), "{sizes:?}");
        stop_tx.send(true).unwrap();
        let report = task.await.unwrap().unwrap();
        assert_eq!(report.exporters[0].1.records, 3000);
        assert_eq!(report.socket_drops, Some(0));
    }

    #[tokio::test]
    async fn busy_port_is_named() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let decoder = Box::new(EchoDecoder { stats: ExporterStats::default() });
        let error = UdpCollector::bind(CollectorKind::Sflow, addr, decoder, 1 << 20).unwrap_err();
        assert!(matches!(error, BindError::InUse { .. }));
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
