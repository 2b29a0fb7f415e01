//! The collectors, wired once: [`InputConfig`] says which sFlow/NetFlow/IPFIX sockets to bind
//! and which exporters to believe; [`Inputs`] binds them, drops datagrams of unknown exporters
//! before decoding (counted per source, in a bounded table), applies per-exporter sampling
//! overrides, drops implausible records (counted by reason, see
//! [`rampart_telemetry::plausibility`]) and hands record batches to the consumer. Every count is
//! readable while the collectors run through the shared [`InputStats`] handles.
//!
//! Without a configured exporter, inputs listen on loopback only and accept loopback sources
//! only: nothing from the network reaches detection unless the operator names who may speak.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use rampart_telemetry::plausibility::{self, ExporterBudget, is_loopback};
use rampart_telemetry::sflow::{SflowDecoder, SflowLimits};
use rampart_telemetry::{
    DatagramDecoder, Exporter, ExporterStats, FlowDecoder, FlowLimits, ImplausibleCounts, ImplausibleReason,
    PlausibilityLimits, RecordSource, TrafficRecord, UnixNanos,
};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::udp::{self, BindError, CollectorKind, UdpCollector, UdpCollectorReport};

/// Unknown sources listed by name; the rest are summed in `other` (the table is
/// attacker-controlled: spoofed sources are free).
pub const MAX_UNKNOWN_SOURCES: usize = 64;

/// Exporters whose plausibility budget is kept apart; beyond this (a wide prefix, spoofed
/// sources inside it) they share one budget, which only makes the caps stricter.
pub const MAX_TRACKED_EXPORTERS: usize = 4096;

/// Where one input listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenOn {
    /// This port on the inputs' listen address ([`InputConfig::listen`]; by default loopback:
    /// 127.0.0.1 and ::1).
    Port(u16),
    /// Exactly this address.
    Addr(SocketAddr),
}

impl FromStr for ListenOn {
    type Err = String;

    /// A bare PORT, HOST:PORT or [IPV6]:PORT.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(port) = text.parse::<u16>() {
            return Ok(ListenOn::Port(port));
        }
        text.parse::<SocketAddr>()
            .map(ListenOn::Addr)
            .map_err(|_| format!("{text:?} is not HOST:PORT, [IPV6]:PORT or a port number"))
    }
}

impl fmt::Display for ListenOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenOn::Port(port) => write!(f, "{port}"),
            ListenOn::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// One exporter the inputs believe: an address or a prefix of them, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The exporter's address (a /32 or /128) or a prefix of exporters.
    pub prefix: IpNet,
    /// Sampling rate of its NetFlow/IPFIX records, winning over what it announces (sFlow
    /// samples always carry their own).
    pub sampling: Option<u32>,
    /// What its links carry together, bit/s: caps its records' bits (and packets, at minimum
    /// frame size) per second instead of the default caps.
    pub interface_speed: Option<u64>,
}

impl ExporterConfig {
    /// An exporter without settings.
    pub fn new(prefix: IpNet) -> Self {
        ExporterConfig { prefix, sampling: None, interface_speed: None }
    }
}

impl FromStr for ExporterConfig {
    type Err = String;

    /// ADDR or PREFIX, optionally `=RATE` (the sampling rate).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (net, rate) = match text.split_once('=') {
            Some((net, rate)) => (net, Some(rate)),
            None => (text, None),
        };
        let prefix = parse_prefix(net)?;
        let sampling = rate
            .map(|rate| {
                rate.parse::<u32>()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or_else(|| format!("{rate:?} is not a sampling rate ≥ 1"))
            })
            .transpose()?;
        Ok(ExporterConfig { prefix, sampling, interface_speed: None })
    }
}

/// An address (as its /32 or /128) or a prefix.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not an IP address or prefix"))
}

/// A speed in bit/s: a number with an optional SI suffix (`k`, `M`, `G`, `T`, powers of 1000)
/// and an optional `bit/s` / `bps` unit, e.g. `10G`, `2.5G`, `400Gbit/s`, `1000000000`.
pub fn parse_bits_per_second(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a speed in bit/s (e.g. 10G, 2.5G, 100M, 1000000000)");
    let trimmed = text.trim();
    let number_end = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_end);
    let unit = unit.trim();
    let unit = unit.strip_suffix("bit/s").or_else(|| unit.strip_suffix("bps")).unwrap_or(unit);
    let scale: f64 = match unit.trim() {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bits = value * scale;
    // Below 1 bit/s or past 1 Pbit/s is a typo, not a link.
    if !(1.0..=1e15).contains(&bits) {
        return Err(bad());
    }
    Ok(bits.round() as u64)
}

/// What the inputs are: sockets, trusted exporters, caps.
#[derive(Debug, Clone, PartialEq)]
pub struct InputConfig {
    pub sflow: Option<ListenOn>,
    pub netflow: Option<ListenOn>,
    pub ipfix: Option<ListenOn>,
    /// Address the inputs given as a bare port listen on; `None`: loopback (127.0.0.1 and ::1).
    /// A non-loopback address needs at least one exporter.
    pub listen: Option<IpAddr>,
    /// Exporters whose datagrams are decoded; none: loopback sources only.
    pub exporters: Vec<ExporterConfig>,
    /// Caps of an exporter without an interface speed.
    pub limits: PlausibilityLimits,
    /// Socket receive buffer per collector, bytes.
    pub receive_buffer: usize,
    /// Decoder limits.
    pub flow_limits: FlowLimits,
    pub sflow_limits: SflowLimits,
}

impl Default for InputConfig {
    /// All three inputs on their standard ports, on loopback, no exporter.
    fn default() -> Self {
        InputConfig {
            sflow: Some(ListenOn::Port(CollectorKind::Sflow.default_port())),
            netflow: Some(ListenOn::Port(CollectorKind::Netflow.default_port())),
            ipfix: Some(ListenOn::Port(CollectorKind::Ipfix.default_port())),
            listen: None,
            exporters: Vec::new(),
            limits: PlausibilityLimits::default(),
            receive_buffer: udp::DEFAULT_RECEIVE_BUFFER,
            flow_limits: FlowLimits::default(),
            sflow_limits: SflowLimits::default(),
        }
    }
}

/// Why the inputs could not start.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Every input is off.
    #[error("no input: every one of sflow, netflow and ipfix is off")]
    NoInput,
    /// A non-loopback listen address without any exporter to accept.
    #[error(
        "{kind} would listen on {addr}, which is not loopback, without any configured exporter: name the exporters to accept (address or prefix), or listen on loopback"
    )]
    NoExporters { kind: CollectorKind, addr: SocketAddr },
    /// An exporter's sampling rate is 0 or above the plausible maximum.
    #[error("exporter {prefix}: sampling rate {rate} is not 1 to {max}")]
    Sampling { prefix: IpNet, rate: u32, max: u32 },
    /// An exporter's interface speed is 0.
    #[error("exporter {prefix}: interface speed must be at least 1 bit/s")]
    InterfaceSpeed { prefix: IpNet },
}

impl InputConfig {
    /// Every socket to bind, in order: (protocol, address).
    pub fn addresses(&self) -> Vec<(CollectorKind, SocketAddr)> {
        let mut out = Vec::new();
        let requested = [
            (CollectorKind::Sflow, self.sflow),
            (CollectorKind::Netflow, self.netflow),
            (CollectorKind::Ipfix, self.ipfix),
        ];
        for (kind, listen) in requested {
            match listen {
                None => {}
                Some(ListenOn::Addr(addr)) => out.push((kind, addr)),
                Some(ListenOn::Port(port)) => match self.listen {
                    Some(ip) => out.push((kind, SocketAddr::new(ip, port))),
                    None => {
                        out.push((kind, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
                        out.push((kind, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)));
                    }
                },
            }
        }
        out
    }

    /// Checks what binding would not: an input open to the network needs exporters; settings
    /// are sane.
    pub fn validate(&self) -> Result<(), InputError> {
        let addresses = self.addresses();
        if addresses.is_empty() {
            return Err(InputError::NoInput);
        }
        if self.exporters.is_empty()
            && let Some(&(kind, addr)) = addresses.iter().find(|(_, addr)| !is_loopback(addr.ip()))
        {
            return Err(InputError::NoExporters { kind, addr });
        }
        for exporter in &self.exporters {
            if let Some(rate) = exporter.sampling
                && !(1..=self.limits.max_sampling_rate).contains(&rate)
            {
                return Err(InputError::Sampling {
                    prefix: exporter.prefix,
                    rate,
                    max: self.limits.max_sampling_rate,
                });
            }
            if exporter.interface_speed == Some(0) {
                return Err(InputError::InterfaceSpeed { prefix: exporter.prefix });
            }
        }
        Ok(())
    }

    /// The line to print at start: who is believed.
    pub fn notice(&self) -> String {
        if self.exporters.is_empty() {
            "no exporter configured: accepting flows from loopback sources only".to_owned()
        } else {
            let names: Vec<String> = self.exporters.iter().take(8).map(|e| e.prefix.to_string()).collect();
            let more = self.exporters.len().saturating_sub(names.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!(
                "accepting flows only from {} configured exporter(s): {}{more}",
                self.exporters.len(),
                names.join(", ")
            )
        }
    }
}

/// The exporters an input believes, most specific prefix first.
#[derive(Debug, Clone)]
pub struct ExporterTable {
    /// (settings, their caps), longest prefix first.
    entries: Vec<(ExporterConfig, PlausibilityLimits)>,
    /// Caps of loopback sources when no exporter is configured.
    loopback: Option<(ExporterConfig, PlausibilityLimits)>,
}

impl ExporterTable {
    pub fn new(exporters: &[ExporterConfig], limits: PlausibilityLimits) -> Self {
        let caps = |e: &ExporterConfig| match e.interface_speed {
            Some(speed) => limits.for_interface_speed(speed),
            None => limits,
        };
        let mut entries: Vec<_> = exporters.iter().map(|e| (*e, caps(e))).collect();
        entries.sort_by_key(|(e, _)| std::cmp::Reverse(e.prefix.prefix_len()));
        let loopback = exporters
            .is_empty()
            .then(|| (ExporterConfig::new(IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))), limits));
        ExporterTable { entries, loopback }
    }

    /// The settings and caps for datagrams from `source`, or `None` if it is not believed.
    pub fn lookup(&self, source: IpAddr) -> Option<&(ExporterConfig, PlausibilityLimits)> {
        match &self.loopback {
            Some(loopback) => is_loopback(source).then_some(loopback),
            None => self.entries.iter().find(|(e, _)| e.prefix.contains(&source)),
        }
    }
}

/// Datagram counts of unknown sources: at most [`MAX_UNKNOWN_SOURCES`] by name (the heaviest
/// stay: a new source replaces the lightest, whose count moves to `other`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    /// (source, datagrams), in no particular order.
    pub sources: Vec<(IpAddr, u64)>,
    /// Datagrams of sources not (or no longer) listed.
    pub other: u64,
}

impl SourceCounts {
    /// Counts one datagram from `source`.
    pub fn count(&mut self, source: IpAddr) {
        if let Some(entry) = self.sources.iter_mut().find(|(s, _)| *s == source) {
            entry.1 = entry.1.saturating_add(1);
            return;
        }
        if self.sources.len() < MAX_UNKNOWN_SOURCES {
            self.sources.push((source, 1));
            return;
        }
        let lightest = self.sources.iter_mut().min_by_key(|(_, n)| *n);
        if let Some(entry) = lightest {
            self.other = self.other.saturating_add(entry.1);
            *entry = (source, 1);
        }
    }

    /// Every datagram counted.
    pub fn total(&self) -> u64 {
        self.sources.iter().fold(self.other, |sum, (_, n)| sum.saturating_add(*n))
    }

    /// The sources, heaviest first.
    pub fn sorted(&self) -> Vec<(IpAddr, u64)> {
        let mut sources = self.sources.clone();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        sources
    }
}

/// One input's counters (one socket), shared with whoever reports them. Counts are live;
/// the detail tables are refreshed about once a second and when the input stops.
#[derive(Debug)]
pub struct InputStats {
    pub kind: CollectorKind,
    /// The bound address.
    pub listen: SocketAddr,
    /// Datagrams received, from anyone.
    pub datagrams: AtomicU64,
    /// Datagrams dropped before decoding: their source is not a configured exporter.
    pub unknown_exporter: AtomicU64,
    /// Records handed on (plausible ones).
    pub records: AtomicU64,
    /// Records dropped as implausible, by reason ([`ImplausibleReason::ALL`] order).
    pub implausible: [AtomicU64; ImplausibleReason::ALL.len()],
    detail: Mutex<InputDetail>,
}

/// The tables behind [`InputStats`].
#[derive(Debug, Clone, Default)]
struct InputDetail {
    unknown_sources: SourceCounts,
    exporters: Vec<(Exporter, ExporterStats)>,
    unattributed: ExporterStats,
    implausible_by_exporter: Vec<(IpAddr, ImplausibleCounts)>,
}

impl InputStats {
    fn new(kind: CollectorKind, listen: SocketAddr) -> Self {
        InputStats {
            kind,
            listen,
            datagrams: AtomicU64::new(0),
            unknown_exporter: AtomicU64::new(0),
            records: AtomicU64::new(0),
            implausible: std::array::from_fn(|_| AtomicU64::new(0)),
            detail: Mutex::new(InputDetail::default()),
        }
    }

    /// Implausible records by reason so far.
    pub fn implausible(&self) -> ImplausibleCounts {
        let mut counts = ImplausibleCounts::default();
        for (reason, counter) in ImplausibleReason::ALL.into_iter().zip(&self.implausible) {
            counts.add_n(reason, counter.load(Ordering::Relaxed));
        }
        counts
    }

    /// Everything, now (kernel drops read from the OS at this moment).
    pub fn snapshot(&self) -> InputSnapshot {
        let detail = self.detail.lock().map(|d| d.clone()).unwrap_or_default();
        let mut decode = detail.unattributed.clone();
        for (_, stats) in &detail.exporters {
            decode.absorb(stats);
        }
        let mut exporters: Vec<ExporterSnapshot> = detail
            .exporters
            .iter()
            .map(|(exporter, stats)| ExporterSnapshot {
                exporter: exporter.to_string(),
                stats: stats.clone(),
                implausible: exporter
                    .addr
                    .and_then(|a| detail.implausible_by_exporter.iter().find(|(b, _)| *b == a))
                    .map(|(_, counts)| *counts)
                    .unwrap_or_default(),
            })
            .collect();
        exporters.sort_by(|a, b| a.exporter.cmp(&b.exporter));
        InputSnapshot {
            protocol: self.kind,
            listen: self.listen,
            datagrams: self.datagrams.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            unknown_exporter: self.unknown_exporter.load(Ordering::Relaxed),
            unknown_sources: detail.unknown_sources.sorted(),
            unknown_other: detail.unknown_sources.other,
            implausible: self.implausible(),
            decode,
            unattributed: detail.unattributed,
            exporters,
            socket_drops: udp::socket_drops(self.listen),
        }
    }
}

/// One input's counters at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct InputSnapshot {
    pub protocol: CollectorKind,
    pub listen: SocketAddr,
    /// Datagrams received, from anyone.
    pub datagrams: u64,
    /// Records handed on.
    pub records: u64,
    /// Datagrams dropped because their source is not a configured exporter.
    pub unknown_exporter: u64,
    /// Those datagrams by source (at most [`MAX_UNKNOWN_SOURCES`], heaviest first)...
    pub unknown_sources: Vec<(IpAddr, u64)>,
    /// ...and the rest.
    pub unknown_other: u64,
    /// Records dropped as implausible, by reason.
    pub implausible: ImplausibleCounts,
    /// Decoder statistics summed over exporters and unattributed datagrams.
    pub decode: ExporterStats,
    /// Datagrams the decoder could not tie to an exporter.
    pub unattributed: ExporterStats,
    pub exporters: Vec<ExporterSnapshot>,
    /// Datagrams the kernel dropped (socket buffer full), where the OS says.
    pub socket_drops: Option<u64>,
}

/// One exporter (address + sub-id) of an input.
#[derive(Debug, Clone, Serialize)]
pub struct ExporterSnapshot {
    pub exporter: String,
    #[serde(flatten)]
    pub stats: ExporterStats,
    /// Its records dropped as implausible (per address, over its sub-ids).
    pub implausible: ImplausibleCounts,
}

/// Per-exporter state of the guard.
#[derive(Debug, Clone, Copy, Default)]
struct Tracked {
    budget: ExporterBudget,
    implausible: ImplausibleCounts,
}

/// The trust layer around a decoder: unknown sources dropped before decoding, sampling
/// overrides applied, implausible records dropped. Sans-IO like the decoders.
pub struct GuardedDecoder {
    inner: Box<dyn DatagramDecoder>,
    table: ExporterTable,
    tracked: HashMap<IpAddr, Tracked>,
    /// Shared state of exporters past [`MAX_TRACKED_EXPORTERS`].
    overflow: Tracked,
    stats: Arc<InputStats>,
    published_second: u64,
    since_publish: u32,
}

impl fmt::Debug for GuardedDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedDecoder").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl GuardedDecoder {
    /// Guards `inner` with `table`, counting into `stats`.
    pub fn new(inner: Box<dyn DatagramDecoder>, table: ExporterTable, stats: Arc<InputStats>) -> Self {
        GuardedDecoder {
            inner,
            table,
            tracked: HashMap::new(),
            overflow: Tracked::default(),
            stats,
            published_second: 0,
            since_publish: 0,
        }
    }

    /// Copies the decoder's and the guard's tables into the shared statistics.
    fn publish(&self) {
        let exporters = self.inner.exporter_stats();
        let unattributed = self.inner.unattributed_stats();
        let implausible: Vec<(IpAddr, ImplausibleCounts)> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.implausible.total() > 0)
            .map(|(addr, t)| (*addr, t.implausible))
            .collect();
        if let Ok(mut detail) = self.stats.detail.lock() {
            detail.exporters = exporters;
            detail.unattributed = unattributed;
            detail.implausible_by_exporter = implausible;
        }
    }

    fn maybe_publish(&mut self, received: UnixNanos) {
        self.since_publish += 1;
        // The tables allocate: once a second (or every 4096 datagrams), not per datagram.
        if received.secs() != self.published_second || self.since_publish >= 4096 {
            self.published_second = received.secs();
            self.since_publish = 0;
            self.publish();
        }
    }
}

impl DatagramDecoder for GuardedDecoder {
    fn decode_datagram(
        &mut self,
        from: IpAddr,
        datagram: &[u8],
        received: UnixNanos,
        out: &mut Vec<TrafficRecord>,
    ) {
        self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
        let Some(&(settings, limits)) = self.table.lookup(from) else {
            self.stats.unknown_exporter.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut detail) = self.stats.detail.lock() {
                detail.unknown_sources.count(from);
            }
            return;
        };
        let before = out.len();
        self.inner.decode_datagram(from, datagram, received, out);
        let tracked_len = self.tracked.len();
        let tracked = match self.tracked.get_mut(&from) {
            Some(tracked) => tracked,
            None if tracked_len < MAX_TRACKED_EXPORTERS => self.tracked.entry(from).or_default(),
            None => &mut self.overflow,
        };
        let mut kept = before;
        for index in before..out.len() {
            let Some(mut record) = out.get(index).copied() else { break };
            if let Some(rate) = settings.sampling
                && matches!(
                    record.source,
                    RecordSource::NetflowV5 | RecordSource::NetflowV9 | RecordSource::Ipfix
                )
            {
                record.sampling_rate = rate;
            }
            match plausibility::admit(&record, received, &limits, &mut tracked.budget) {
                Ok(()) => {
                    if let Some(slot) = out.get_mut(kept) {
                        *slot = record;
                    }
                    kept += 1;
                }
                Err(reason) => {
                    tracked.implausible.add(reason);
                    if let Some(counter) = self.stats.implausible.get(reason as usize) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        out.truncate(kept);
        self.stats.records.fetch_add((kept - before) as u64, Ordering::Relaxed);
        self.maybe_publish(received);
    }

    /// Also publishes the final tables: the collector asks for these when it stops.
    fn exporter_stats(&self) -> Vec<(Exporter, ExporterStats)> {
        self.publish();
        self.inner.exporter_stats()
    }

    fn unattributed_stats(&self) -> ExporterStats {
        self.inner.unattributed_stats()
    }
}

/// The bound inputs, not yet running.
pub struct Inputs {
    collectors: Vec<UdpCollector>,
    stats: Vec<Arc<InputStats>>,
    skipped: Vec<(CollectorKind, SocketAddr, String)>,
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs").field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Wraps each input's guarded decoder (e.g. in the daemon's metrics counter): called with the
/// protocol and bound address of each socket.
pub type DecoderLayer<'a> =
    dyn FnMut(CollectorKind, SocketAddr, Box<dyn DatagramDecoder>) -> Box<dyn DatagramDecoder> + 'a;

impl Inputs {
    /// Validates `config` and binds every socket (inside a Tokio runtime).
    pub fn bind(config: &InputConfig) -> Result<Inputs, InputError> {
        Self::bind_with(config, &mut |_, _, decoder| decoder)
    }

    /// [`Inputs::bind`], with each input's (guarded) decoder passed through `layer`.
    pub fn bind_with(config: &InputConfig, layer: &mut DecoderLayer<'_>) -> Result<Inputs, InputError> {
        config.validate()?;
        let table = ExporterTable::new(&config.exporters, config.limits);
        let mut inputs = Inputs { collectors: Vec::new(), stats: Vec::new(), skipped: Vec::new() };
        for (kind, addr) in config.addresses() {
            let (socket, receive_buffer) = match udp::bind_socket(kind, addr, config.receive_buffer) {
                Ok(bound) => bound,
                // The default ::1 on a host without IPv6: listen on 127.0.0.1 alone.
                Err(BindError::Other { source, .. })
                    if config.listen.is_none()
                        && addr.ip() == IpAddr::V6(Ipv6Addr::LOCALHOST)
                        && (matches!(
                            source.kind(),
                            io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                        ) || source.raw_os_error() == Some(97)) =>
                {
                    inputs.skipped.push((kind, addr, source.to_string()));
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let local = socket.local_addr().map_err(|source| BindError::Other { kind, addr, source })?;
            let stats = Arc::new(InputStats::new(kind, local));
            let decoder: Box<dyn DatagramDecoder> = match kind {
                CollectorKind::Sflow => Box::new(SflowDecoder::new(config.sflow_limits.clone())),
                CollectorKind::Netflow | CollectorKind::Ipfix => {
                    Box::new(FlowDecoder::new(config.flow_limits.clone()))
                }
            };
            let guarded = Box::new(GuardedDecoder::new(decoder, table.clone(), stats.clone()));
            let decoder = layer(kind, local, guarded);
            inputs.collectors.push(UdpCollector::from_socket(kind, socket, decoder, receive_buffer));
            inputs.stats.push(stats);
        }
        Ok(inputs)
    }

    /// Each socket's shared counters, in binding order.
    pub fn stats(&self) -> &[Arc<InputStats>] {
        &self.stats
    }

    /// (protocol, bound address) of each socket.
    pub fn listening(&self) -> Vec<(CollectorKind, SocketAddr)> {
        self.stats.iter().map(|s| (s.kind, s.listen)).collect()
    }

    /// Default addresses that could not be bound and were left out (::1 without IPv6), with why.
    pub fn skipped(&self) -> &[(CollectorKind, SocketAddr, String)] {
        &self.skipped
    }

    /// Starts every collector on the current runtime; batches go to `sink` until `stop`.
    pub fn spawn(self, sink: mpsc::Sender<Vec<TrafficRecord>>, stop: watch::Receiver<bool>) -> RunningInputs {
        let tasks =
            self.collectors.into_iter().map(|c| tokio::spawn(c.run(sink.clone(), stop.clone()))).collect();
        RunningInputs { tasks, stats: self.stats }
    }
}

/// Running collectors.
#[derive(Debug)]
pub struct RunningInputs {
    tasks: Vec<JoinHandle<io::Result<UdpCollectorReport>>>,
    stats: Vec<Arc<InputStats>>,
}

impl RunningInputs {
    pub fn stats(&self) -> &[Arc<InputStats>] {
        &self.stats
    }

    /// Waits for every collector to stop (after `stop` turned true); each one's report or error.
    pub async fn join(self) -> Vec<Result<UdpCollectorReport, String>> {
        let mut out = Vec::new();
        for task in self.tasks {
            out.push(match task.await {
                Ok(Ok(report)) => Ok(report),
                Ok(Err(error)) => Err(format!("collector failed: {error}")),
                Err(error) => Err(format!("collector task: {error}")),
            });
        }
        out
    }
}

/// One line summing what every input dropped, for operators (e.g. at shutdown).
pub fn drop_summary(stats: &[Arc<InputStats>]) -> String {
    let mut unknown = 0u64;
    let mut implausible = ImplausibleCounts::default();
    let mut datagrams = 0u64;
    let mut records = 0u64;
    for input in stats {
        datagrams = datagrams.saturating_add(input.datagrams.load(Ordering::Relaxed));
        records = records.saturating_add(input.records.load(Ordering::Relaxed));
        unknown = unknown.saturating_add(input.unknown_exporter.load(Ordering::Relaxed));
        implausible.absorb(&input.implausible());
    }
    let reasons: Vec<String> =
        implausible.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{}={n}", r.name())).collect();
    let top = stats
        .iter()
        .filter_map(|s| s.detail.lock().ok().map(|d| d.unknown_sources.sorted()))
        .flatten()
        .max_by_key(|(_, n)| *n)
        .map(|(source, n)| format!(" (top source {source}: {n})"))
        .unwrap_or_default();
    format!(
        "inputs: {datagrams} datagrams, {records} records accepted; dropped {unknown} datagrams from unknown exporters{top}, {} implausible records{}",
        implausible.total(),
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
    )
}

#[cfg(test)]
mod tests;
