//! `rampart run`: arguments and configuration for the daemon runtime (`rampart-daemon`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_daemon::{DaemonConfig, config, webhook};
use rampart_detect::DetectConfig;
use rampart_ingest::ListenOn;
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
    /// address, loopback by default). Giving any of --sflow/--netflow/--ipfix listens on exactly
    /// those; otherwise the configured inputs (default: all three on their standard ports, on
    /// loopback). A non-loopback address needs [[inputs.exporter]] entries.
    #[arg(long, value_name = "ADDR")]
    pub sflow: Option<ListenOn>,
    /// Listen for NetFlow v5/v9 on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub netflow: Option<ListenOn>,
    /// Listen for IPFIX on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub ipfix: Option<ListenOn>,
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
    if args.sflow.is_some() || args.netflow.is_some() || args.ipfix.is_some() {
        daemon.inputs.sflow = args.sflow;
        daemon.inputs.netflow = args.netflow;
        daemon.inputs.ipfix = args.ipfix;
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
    if let Err(error) = daemon.inputs.validate() {
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
