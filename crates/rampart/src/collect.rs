//! `rampart collect`: listen for flow exports (and optionally capture an interface) for a set
//! time, then report what they described.

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rampart_ingest::inputs::{ExporterSnapshot, parse_prefix};
use rampart_ingest::udp::DEFAULT_RECEIVE_BUFFER;
use rampart_ingest::{ExporterConfig, InputConfig, InputSnapshot, Inputs, ListenOn};

use rampart_telemetry::{ExporterStats, ImplausibleCounts, PlausibilityLimits, TrafficSummary};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::report::{TrafficReport, exporter_stats_line, group};

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Listen for sFlow v5 on ADDR (default port 6343 when given without a value). ADDR is
    /// HOST:PORT, [IPV6]:PORT or a bare PORT (on --listen: by default loopback, 127.0.0.1 and
    /// ::1).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "6343")]
    pub sflow: Option<ListenOn>,
    /// Listen for NetFlow v5/v9 on ADDR (default port 2055 when given without a value).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "2055")]
    pub netflow: Option<ListenOn>,
    /// Listen for IPFIX on ADDR (default port 4739 when given without a value).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "4739")]
    pub ipfix: Option<ListenOn>,
    /// Address bare ports listen on, e.g. 0.0.0.0 (default: loopback). Anything but loopback
    /// needs at least one --exporter.
    #[arg(long, value_name = "IP")]
    pub listen: Option<IpAddr>,
    /// Accept flows from this exporter (address or prefix), optionally with its sampling rate
    /// (repeatable). Without any, only loopback sources are accepted.
    #[arg(long = "exporter", value_name = "ADDR|PREFIX[=RATE]")]
    pub exporters: Vec<ExporterConfig>,
    /// Also capture packets on this interface (mirror / SPAN port) through AF_PACKET rings;
    /// needs root or CAP_NET_RAW.
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Capture filter for --interface, in tcpdump syntax (e.g. "not port 22"); captures through
    /// libpcap instead, so it needs a build with `--features live-capture`.
    #[arg(long, value_name = "FILTER", requires = "interface")]
    pub bpf: Option<String>,
    /// Capture threads (AF_PACKET rings in one fanout group) for --interface (default: one per
    /// core, up to 4).
    #[arg(long, value_name = "N", requires = "interface")]
    pub capture_threads: Option<usize>,
    /// Keep one packet in N from --interface; counts are scaled back up by N.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "interface")]
    pub sample: u32,
    /// Sampling rate of a NetFlow/IPFIX exporter that does not announce it, as EXPORTER=RATE
    /// (repeatable). A configured rate wins over what the exporter says. EXPORTER (an address or
    /// prefix) is accepted like an --exporter.
    #[arg(long = "sampling", value_name = "EXPORTER=RATE")]
    pub sampling: Vec<SamplingOverride>,
    /// How long to collect, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: f64,
    /// Socket receive buffer per collector, in bytes (capped by net.core.rmem_max).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RECEIVE_BUFFER)]
    pub receive_buffer: usize,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// Destinations listed in the readable summary.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

/// EXPORTER=RATE.
#[derive(Debug, Clone, Copy)]
pub struct SamplingOverride {
    pub exporter: ipnet::IpNet,
    pub rate: u32,
}

impl FromStr for SamplingOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (exporter, rate) =
            text.split_once('=').ok_or_else(|| format!("{text:?} is not EXPORTER=RATE"))?;
        let exporter = parse_prefix(exporter)?;
        let rate = rate
            .parse()
            .ok()
            .filter(|&r: &u32| r > 0)
            .ok_or_else(|| format!("{rate:?} is not a rate ≥ 1"))?;
        Ok(SamplingOverride { exporter, rate })
    }
}

/// `decode` section of the collect report.
#[derive(Debug, Serialize)]
struct CollectDecode {
    /// Sum over every exporter of every collector.
    total: ExporterStats,
    collectors: Vec<CollectorDecode>,
}

#[derive(Debug, Serialize)]
struct CollectorDecode {
    /// sflow, netflow, ipfix or capture.
    protocol: String,
    listen: String,
    receive_buffer: usize,
    /// Datagrams the kernel dropped because the socket buffer was full.
    socket_drops: Option<u64>,
    unattributed: ExporterStats,
    /// Datagrams dropped before decoding: their source is not a configured exporter.
    unknown_exporter: u64,
    /// Those by source (at most 64, heaviest first), and the rest.
    unknown_sources: Vec<UnknownSource>,
    unknown_other: u64,
    /// Records dropped as implausible, by reason.
    implausible: ImplausibleCounts,
    exporters: Vec<ExporterDecode>,
}

#[derive(Debug, Serialize)]
struct UnknownSource {
    source: IpAddr,
    datagrams: u64,
}

#[derive(Debug, Serialize)]
struct ExporterDecode {
    exporter: String,
    #[serde(flatten)]
    stats: ExporterStats,
    /// Its records dropped as implausible.
    implausible: ImplausibleCounts,
}

impl From<ExporterSnapshot> for ExporterDecode {
    fn from(e: ExporterSnapshot) -> Self {
        ExporterDecode { exporter: e.exporter, stats: e.stats, implausible: e.implausible }
    }
}

/// The inputs `args` ask for.
fn input_config(args: &CollectArgs) -> InputConfig {
    let mut exporters = args.exporters.clone();
    for sampling in &args.sampling {
        match exporters.iter_mut().find(|e| e.prefix == sampling.exporter) {
            Some(exporter) => exporter.sampling = Some(sampling.rate),
            None => exporters.push(ExporterConfig {
                sampling: Some(sampling.rate),
                ..ExporterConfig::new(sampling.exporter)
            }),
        }
    }
    InputConfig {
        sflow: args.sflow,
        netflow: args.netflow,
        ipfix: args.ipfix,
        listen: args.listen,
        exporters,
        limits: PlausibilityLimits::default(),
        receive_buffer: args.receive_buffer,
        ..InputConfig::default()
    }
}

pub fn run(args: CollectArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        bail!("--duration must be a positive number of seconds, not {}", args.duration);
    }
    if args.sflow.is_none() && args.netflow.is_none() && args.ipfix.is_none() && args.interface.is_none() {
        bail!("nothing to collect from: give at least one of --sflow, --netflow, --ipfix or --interface");
    }
    if args.sample == 0 {
        bail!("--sample must be at least 1");
    }
    let inputs = input_config(&args);
    if inputs.addresses().is_empty() {
        // Only --interface: no socket, nothing to trust.
    } else if let Err(error) = inputs.validate() {
        bail!("{error} (--sflow/--netflow/--ipfix/--listen, --exporter)");
    }
    // One thread: the collectors are I/O-bound and one core keeps up with a million records per
    // second; the other cores stay free for what consumes the records.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(collect(args, inputs))
}

async fn collect(args: CollectArgs, config: InputConfig) -> Result<()> {
    // The same collectors as `rampart run`: allowlist, sampling overrides, plausibility.
    let inputs = if config.addresses().is_empty() { None } else { Some(Inputs::bind(&config)?) };
    let (sink, mut batches) = mpsc::channel::<Vec<rampart_telemetry::TrafficRecord>>(4096);
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = start_live_capture(&args, sink.clone())?;
    let running = inputs.map(|inputs| {
        // Always on stderr (never mixed into --json output): scripts wait for the first line.
        for (kind, addr) in inputs.listening() {
            note(format_args!("listening for {kind} on {addr}"));
        }
        for (kind, addr, why) in inputs.skipped() {
            note(format_args!("not listening for {kind} on {addr}: {why}"));
        }
        if config.exporters.is_empty() {
            note(format_args!(
                "{}; listening on loopback only (give --listen 0.0.0.0 and --exporter ADDR|PREFIX to accept exporters from the network)",
                config.notice()
            ));
        } else {
            note(format_args!("{}", config.notice()));
        }
        inputs.spawn(sink.clone(), stop_rx.clone())
    });
    drop(sink);

    let progress = (!args.json && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut summary = TrafficSummary::new();
    let mut records: u64 = 0;
    let deadline = tokio::time::sleep(Duration::from_secs_f64(args.duration));
    tokio::pin!(deadline);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            batch = batches.recv() => match batch {
                Some(batch) => {
                    records += batch.len() as u64;
                    for record in &batch {
                        summary.add(record);
                    }
                    if let Some(bar) = &progress {
                        bar.set_message(format!("{} records, {} packets", group(records), group(summary.total().packets)));
                    }
                }
                None => break,
            },
            _ = &mut deadline => break,
            _ = &mut interrupted => break,
        }
    }
    let _ = stop_tx.send(true);
    if let Some(live) = &live {
        live.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // Collectors hand over their last batches as they stop; take those too.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(100), batches.recv()).await {
        for record in &batch {
            summary.add(record);
        }
        if Instant::now() > drain_until {
            break;
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let mut reports = Vec::new();
    if let Some(running) = running {
        let stats = running.stats().to_vec();
        for (result, stats) in running.join().await.into_iter().zip(stats) {
            let report = result.map_err(anyhow::Error::msg)?;
            let mut snapshot = stats.snapshot();
            // Read while the socket was still open.
            snapshot.socket_drops = report.socket_drops;
            reports.push((snapshot, report.receive_buffer));
        }
    }
    let live_report = match live {
        Some(live) => Some(live.finish().await?),
        None => None,
    };
    let decode = decode_section(reports, live_report);
    let report = TrafficReport::new(&summary, decode);
    if args.json {
        report.print_json().context("cannot write to standard output")?;
    } else {
        print_human(&mut io::stdout().lock(), &report, args.top)
            .context("cannot write to standard output")?;
    }
    Ok(())
}

/// One line on stderr, never panicking: a reader that took the first line and left (scripts
/// wait for `listening for ...`) must not kill the collection.
fn note(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{line}");
}

fn decode_section(reports: Vec<(InputSnapshot, usize)>, live: Option<LiveSummary>) -> CollectDecode {
    let mut total = ExporterStats::default();
    let mut collectors = Vec::new();
    for (snapshot, receive_buffer) in reports {
        total.absorb(&snapshot.decode);
        total.drops += snapshot.socket_drops.unwrap_or(0);
        collectors.push(CollectorDecode {
            protocol: format!("{:?}", snapshot.protocol).to_lowercase(),
            listen: snapshot.listen.to_string(),
            receive_buffer,
            socket_drops: snapshot.socket_drops,
            unattributed: snapshot.unattributed,
            unknown_exporter: snapshot.unknown_exporter,
            unknown_sources: snapshot
                .unknown_sources
                .into_iter()
                .map(|(source, datagrams)| UnknownSource { source, datagrams })
                .collect(),
            unknown_other: snapshot.unknown_other,
            implausible: snapshot.implausible,
            exporters: snapshot.exporters.into_iter().map(ExporterDecode::from).collect(),
        });
    }
    if let Some(live) = live {
        total.absorb(&live.stats);
        collectors.push(CollectorDecode {
            protocol: "capture".into(),
            listen: format!("interface {}", live.interface),
            receive_buffer: 0,
            socket_drops: Some(live.stats.drops),
            unattributed: ExporterStats::default(),
            unknown_exporter: 0,
            unknown_sources: Vec::new(),
            unknown_other: 0,
            implausible: ImplausibleCounts::default(),
            exporters: vec![ExporterDecode {
                exporter: format!("interface {}", live.interface),
                stats: live.stats,
                implausible: ImplausibleCounts::default(),
            }],
        });
    }
    CollectDecode { total, collectors }
}

fn print_human(out: &mut impl Write, report: &TrafficReport<CollectDecode>, top: usize) -> io::Result<()> {
    report.print_human(out, top)?;
    writeln!(out)?;
    writeln!(out, "decode       {}", exporter_stats_line(&report.decode.total))?;
    for collector in &report.decode.collectors {
        let drops = collector.socket_drops.map(group).unwrap_or_else(|| "unknown".into());
        writeln!(out, "  {} on {} (socket drops {drops})", collector.protocol, collector.listen)?;
        for exporter in &collector.exporters {
            writeln!(out, "    {:<28} {}", exporter.exporter, exporter_stats_line(&exporter.stats))?;
        }
        if collector.unattributed.datagrams > 0 {
            writeln!(out, "    {:<28} {}", "unattributed", exporter_stats_line(&collector.unattributed))?;
        }
        if collector.unknown_exporter > 0 {
            let top: Vec<String> = collector
                .unknown_sources
                .iter()
                .take(5)
                .map(|s| format!("{} {}", s.source, group(s.datagrams)))
                .collect();
            writeln!(
                out,
                "    {:<28} {} datagrams dropped (not a configured exporter): {}",
                "unknown exporters",
                group(collector.unknown_exporter),
                top.join(", ")
            )?;
        }
        if collector.implausible.total() > 0 {
            let reasons: Vec<String> = collector
                .implausible
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(reason, n)| format!("{} {}", reason.name(), group(n)))
                .collect();
            writeln!(
                out,
                "    {:<28} {} records dropped: {}",
                "implausible",
                group(collector.implausible.total()),
                reasons.join(", ")
            )?;
        }
    }
    Ok(())
}

/// What a finished live capture reports.
struct LiveSummary {
    interface: String,
    stats: ExporterStats,
}

/// A live capture running on threads of its own: AF_PACKET rings (the default), or libpcap
/// when a tcpdump-syntax filter is asked for (builds with `live-capture`).
struct LiveHandle {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    running: Running,
}

enum Running {
    Rings(rampart_ingest::RunningCapture),
    #[cfg(feature = "live-capture")]
    Pcap(
        tokio::task::JoinHandle<
            Result<rampart_ingest::live::LiveCaptureReport, rampart_ingest::live::LiveCaptureError>,
        >,
    ),
}

impl LiveHandle {
    async fn finish(self) -> Result<LiveSummary> {
        match self.running {
            Running::Rings(running) => {
                let stats = tokio::task::spawn_blocking(move || running.join())
                    .await
                    .context("capture threads")?
                    .map_err(anyhow::Error::msg)?;
                Ok(LiveSummary { interface: stats.interface.clone(), stats: stats.exporter_stats() })
            }
            #[cfg(feature = "live-capture")]
            Running::Pcap(thread) => {
                let report = thread.await.context("capture thread")??;
                Ok(LiveSummary { interface: report.interface, stats: report.stats })
            }
        }
    }
}

fn start_live_capture(
    args: &CollectArgs,
    sink: mpsc::Sender<Vec<rampart_telemetry::TrafficRecord>>,
) -> Result<Option<LiveHandle>> {
    use rampart_ingest::{InterfaceCapture, InterfaceConfig};
    let Some(interface) = &args.interface else { return Ok(None) };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.bpf.is_some() {
        return start_pcap_capture(args, interface, sink, stop);
    }
    rampart_ingest::interface::check_name(interface).map_err(|e| anyhow::anyhow!("--interface: {e}"))?;
    let mut config = InterfaceConfig::new(interface.clone());
    config.sample_one_in = args.sample;
    if let Some(threads) = args.capture_threads {
        if !(1..=64).contains(&threads) {
            bail!("--capture-threads {threads} is not 1 to 64");
        }
        config.threads = threads;
        config.ring_bytes = (64 << 20) / threads;
    }
    let capture = InterfaceCapture::open(config)?;
    eprintln!("capturing on {interface} (AF_PACKET)");
    let running = capture.spawn(sink, stop.clone()).context("cannot start the capture threads")?;
    Ok(Some(LiveHandle { stop, running: Running::Rings(running) }))
}

/// libpcap, for its tcpdump-syntax filters (`--bpf`).
#[cfg(feature = "live-capture")]
fn start_pcap_capture(
    args: &CollectArgs,
    interface: &str,
    sink: mpsc::Sender<Vec<rampart_telemetry::TrafficRecord>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<LiveHandle>> {
    use rampart_ingest::live::{LiveCapture, LiveCaptureConfig};
    let mut config = LiveCaptureConfig::new(interface.to_owned());
    config.bpf_filter = args.bpf.clone();
    config.sample_one_in = args.sample;
    let capture = LiveCapture::open(config)?;
    eprintln!("capturing on {interface} (libpcap, filter {:?})", args.bpf.as_deref().unwrap_or_default());
    let thread = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || capture.run(sink, stop))
    };
    Ok(Some(LiveHandle { stop, running: Running::Pcap(thread) }))
}

#[cfg(not(feature = "live-capture"))]
fn start_pcap_capture(
    _args: &CollectArgs,
    interface: &str,
    _sink: mpsc::Sender<Vec<rampart_telemetry::TrafficRecord>>,
    _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<LiveHandle>> {
    bail!(
        "cannot filter the capture on {interface}: --bpf (tcpdump syntax) needs libpcap; rebuild with `cargo build --release --features live-capture` (needs libpcap-dev), or capture without --bpf"
    )
}
