//! `rampart shield`: the hardened HTTP reverse proxy (`rampart-shield`), from a quick start
//! (`--listen ADDR --upstream URL`) or a configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_shield::config::CertificateFiles;
use rampart_shield::{BanTable, Config, Shield};

#[derive(Debug, Args)]
pub struct ShieldArgs {
    /// Listen on ADDR (HOST:PORT) and proxy everything to --upstream, with the default
    /// hardening and rate limits.
    #[arg(long, value_name = "ADDR", requires = "upstream", conflicts_with = "config")]
    pub listen: Option<SocketAddr>,
    /// The origin server: http://HOST:PORT.
    #[arg(long, value_name = "URL", requires = "listen")]
    pub upstream: Option<String>,
    /// Serve TLS on --listen with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "listen"])]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Configuration file (TOML): listeners, upstream pools, routes, [limits], [rate_limit]
    /// (see docs/shield.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics (overrides the file's `metrics`).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Seconds open connections get to finish at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub drain_secs: u64,
}

pub fn run(args: ShieldArgs) -> Result<()> {
    let mut config = match (&args.config, args.listen, &args.upstream) {
        (Some(path), _, _) => Config::from_file(path)?,
        (None, Some(listen), Some(upstream)) => Config::quick(listen, upstream)?,
        _ => bail!("give either --listen ADDR --upstream URL, or --config FILE"),
    };
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.listeners[0].certificates = vec![CertificateFiles { cert, key, names: Vec::new() }];
    }
    if args.metrics.is_some() {
        config.metrics = args.metrics;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Signal handlers first: a SIGTERM right after "listening on" must drain, not kill.
        let shutdown = shutdown_signal()?;
        let bans = Arc::new(BanTable::new());
        let shield = Shield::bind(config, bans).await?;
        for address in shield.local_addrs() {
            eprintln!("rampart shield: listening on {address}");
        }
        if let Some(address) = shield.metrics_addr() {
            eprintln!("rampart shield: metrics on http://{address}/metrics");
        }
        let drain = Duration::from_secs(args.drain_secs);
        shield
            .run(
                async {
                    let signal = shutdown.await;
                    eprintln!("rampart shield: {signal}: draining");
                },
                drain,
            )
            .await;
        Ok(())
    })
}

/// SIGTERM or SIGINT, with the handlers installed now.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    })
}
