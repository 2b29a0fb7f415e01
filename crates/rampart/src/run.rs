//! `rampart run`: arguments and configuration for the daemon runtime (`rampart-daemon`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_daemon::{DaemonConfig, config, webhook};
use rampart_detect::DetectConfig;
use rampart_ingest::{InterfaceConfig, ListenOn};
use rampart_store::Store;

/// Configuration files are read whole; anything larger is not a configuration.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML): detection settings plus the daemon's [inputs], [store] and
    /// [outputs] tables (see config/rampart.example.toml). Without it, the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the attack store lives (default ./rampart-data, or [store] data_dir; created 0700).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen for sFlow v5 on ADDR (HOST:PORT, [IPV6]:PORT, or a PORT on the configured listen
    /// address, loopback by default). Giving any of --sflow/--netflow/--ipfix/--interface
    /// listens on exactly those; otherwise the configured inputs (default: all three on their
    /// standard ports, on loopback). A non-loopback address needs [[inputs.exporter]] entries.
    #[arg(long, value_name = "ADDR")]
    pub sflow: Option<ListenOn>,
    /// Listen for NetFlow v5/v9 on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub netflow: Option<ListenOn>,
    /// Listen for IPFIX on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub ipfix: Option<ListenOn>,
    /// Capture every packet on this interface (a mirror / SPAN port, or the protected host's
    /// own) through AF_PACKET rings, one per capture thread in a fanout group (repeatable;
    /// replaces the configured [inputs] interfaces). Needs root or CAP_NET_RAW.
    #[arg(long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Capture threads (rings) per --interface (default: one per core, up to 4).
    #[arg(long, value_name = "N", requires = "interfaces")]
    pub capture_threads: Option<usize>,
    /// Serve Prometheus metrics on http://ADDR/metrics (default 127.0.0.1:9108; a bare PORT
    /// listens on 127.0.0.1; `off` to disable).
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<String>,
    /// POST every event as JSON to this http:// or https:// URL (authorization, CA and
    /// signing key: [outputs] in the configuration).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let (mut daemon, detect) = match &args.config {
        Some(path) => {
            let text = rampart_store::files::read_to_string(path, MAX_CONFIG_BYTES)
                .with_context(|| format!("cannot read configuration {}", path.display()))?;
            config::parse(&text, &path.display().to_string())?
        }
        None => (DaemonConfig::default(), DetectConfig::default()),
    };
    let sockets_given = args.sflow.is_some() || args.netflow.is_some() || args.ipfix.is_some();
    if sockets_given || !args.interfaces.is_empty() {
        daemon.inputs.sflow = args.sflow;
        daemon.inputs.netflow = args.netflow;
        daemon.inputs.ipfix = args.ipfix;
    }
    if !args.interfaces.is_empty() {
        daemon.interfaces.clear();
        for name in &args.interfaces {
            rampart_ingest::interface::check_name(name).map_err(|e| anyhow::anyhow!("--interface: {e}"))?;
            if daemon.interfaces.iter().any(|c| &c.name == name) {
                bail!("--interface {name} is given twice");
            }
            let mut interface = InterfaceConfig::new(name.clone());
            if let Some(threads) = args.capture_threads {
                if !(1..=config::MAX_CAPTURE_THREADS).contains(&threads) {
                    bail!("--capture-threads {threads} is not 1 to {}", config::MAX_CAPTURE_THREADS);
                }
                interface.threads = threads;
                interface.ring_bytes = (64 << 20) / threads;
            }
            daemon.interfaces.push(interface);
        }
    }
    if let Some(dir) = args.data_dir {
        daemon.data_dir = dir;
    }
    if let Some(metrics) = &args.metrics {
        daemon.metrics =
            config::parse_optional_addr(metrics).map_err(|e| anyhow::anyhow!("--metrics: {e}"))?;
    }
    if let Some(url) = &args.webhook {
        daemon.webhook = Some(webhook::parse_url(url).map_err(|e| anyhow::anyhow!("--webhook: {e}"))?);
    }
    let interfaces_only = daemon.inputs.addresses().is_empty() && !daemon.interfaces.is_empty();
    if !interfaces_only && let Err(error) = daemon.inputs.validate() {
        bail!("{error}; see [inputs] in config/daemon.example.toml");
    }
    let store = Store::open_with(&daemon.data_dir, daemon.retention)?;
    store.warnings().iter().for_each(|warning| eprintln!("rampart: warning: {warning}"));
    store.interrupted().iter().for_each(|attack| eprintln!("rampart: {attack}"));
    // Two workers: collectors and HTTP on one, the engine on the other.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    Ok(runtime.block_on(rampart_daemon::serve(daemon, detect, store))?)
}
