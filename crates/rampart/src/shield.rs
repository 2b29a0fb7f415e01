//! `rampart shield`: the hardened HTTP reverse proxy (`rampart-shield`), from a quick start
//! (`--listen ADDR --upstream URL`) or a configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rampart_shield::config::CertificateFiles;
use rampart_shield::{BanTable, Config, Shield};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ShieldArgs {
    #[command(subcommand)]
    pub command: Option<ShieldCommand>,
    /// Listen on ADDR (HOST:PORT) and proxy everything to --upstream, with the default
    /// hardening and rate limits.
    #[arg(long, value_name = "ADDR", requires = "upstream", conflicts_with = "config")]
    pub listen: Option<SocketAddr>,
    /// The origin server: http://HOST:PORT, or https://HOST[:PORT] (verified against the
    /// system's CAs, SNI HOST; a private CA needs --config with `ca_file`).
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
    /// Follow the decisions in this data directory (a `rampart run` data directory, or where
    /// `rampart ban` writes): address and prefix discard decisions in force are refused here
    /// too, re-read every second. Dry-run decisions change nothing.
    #[arg(long, value_name = "DIR")]
    pub decisions: Option<PathBuf>,
    /// Keep the automatic flood defense's baselines and rules in DIR (overrides the file's
    /// `[flood] data_dir`); `rampart shield rules --data DIR` lists the rules.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ShieldCommand {
    /// Probe a public listener the way an attacker looks for the internal face behind it
    /// (other Host headers, absolute-form targets, path traversal and encodings, HTTP/1.0
    /// without Host, HTTP/2 :authority vs Host) and report every internal target that answers.
    /// Exits non-zero when one does.
    Audit {
        /// The public listener: http://HOST:PORT (its host is sent as the public Host).
        url: String,
        /// An internal target to look for, HOST/PATH (repeat for several), e.g.
        /// intranet.example/admin.
        #[arg(long = "target", value_name = "HOST/PATH", required = true)]
        targets: Vec<String>,
        /// Count an answer as reaching the target only if its body contains TEXT.
        #[arg(long, value_name = "TEXT")]
        marker: Option<String>,
    },
    /// List the automatic flood rules in force and the recent ones: what they match, why,
    /// since when, the share of the route's baseline they touch, how many requests they matched.
    Rules {
        /// The shield's data directory.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Or its configuration file (for `[flood] data_dir`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the rules file as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the learned per-route baselines; with --replay, warm them up from an access log
    /// (nginx/Apache "combined" format, or JSON lines as in docs/shield.md) and save them into
    /// the data directory.
    Baseline {
        /// The access log to replay.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
        /// The shield's data directory.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// The shield's configuration (routes; `[flood]`); without it, one route for everything.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub fn run(args: ShieldArgs) -> Result<()> {
    match args.command {
        Some(ShieldCommand::Audit { url, targets, marker }) => {
            return audit(&url, &targets, marker.as_deref());
        }
        Some(ShieldCommand::Rules { data, config, json }) => {
            return crate::shield_flood::rules(data, config.as_deref(), json);
        }
        Some(ShieldCommand::Baseline { replay, data, config }) => {
            return crate::shield_flood::baseline(data, config.as_deref(), replay.as_deref());
        }
        None => {}
    }
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
    if args.data.is_some() {
        config.flood.data_dir = args.data.clone();
    }
    // One core (its CPU affinity allows one): a single-threaded runtime, which saves the
    // work-stealing scheduler's cross-thread bookkeeping on every wake-up; blocking work
    // (files, mining) still goes to the blocking pool.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut runtime = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = runtime.enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Signal handlers first: a SIGTERM right after "listening on" must drain, not kill.
        let shutdown = shutdown_signal()?;
        let bans = Arc::new(BanTable::new());
        if let Some(dir) = args.decisions.clone() {
            // The first read before serving: a ban in force applies from the first request.
            follow_decisions(&dir, &bans, &mut None);
            let bans = bans.clone();
            tokio::spawn(async move {
                let mut last_error = None;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let (dir, table) = (dir.clone(), bans.clone());
                    let error = std::mem::take(&mut last_error);
                    last_error = tokio::task::spawn_blocking(move || {
                        let mut error = error;
                        follow_decisions(&dir, &table, &mut error);
                        error
                    })
                    .await
                    .unwrap_or(None);
                }
            });
        }
        let shield = Shield::bind(config, bans).await?;
        for address in shield.local_addrs() {
            eprintln!("rampart shield: listening on {address}");
        }
        if let Some(address) = shield.metrics_addr() {
            eprintln!("rampart shield: metrics on http://{address}/metrics");
        }
        #[cfg(unix)]
        if let Some(path) = args.config.clone() {
            reload_on_sighup(shield.reloader(), path, args.metrics, args.data.clone())?;
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

/// Puts the address and prefix decisions in force in `dir`'s decision store (not dry run) into
/// `bans`; a store that cannot be read keeps the last bans, and says why once per new error.
fn follow_decisions(dir: &std::path::Path, bans: &BanTable, last_error: &mut Option<String>) {
    let now = rampart_contract::EventTime::from_unix_nanos(rampart_daemon::wall_clock().0);
    let read = rampart_mitigate::DecisionReader::open(dir).and_then(|reader| match reader {
        Some(reader) => reader.all(),
        None => Ok(Vec::new()),
    });
    match read {
        Ok(stored) => {
            let in_force: Vec<rampart_contract::Decision> =
                stored.into_iter().filter(|s| !s.dry_run && s.closed.is_none()).map(|s| s.decision).collect();
            bans.replace(&in_force, now);
            *last_error = None;
        }
        Err(error) => {
            let message = error.to_string();
            if last_error.as_deref() != Some(message.as_str()) {
                eprintln!("rampart shield: decisions in {}: {message}; keeping the last bans", dir.display());
            }
            *last_error = Some(message);
        }
    }
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

fn audit(url: &str, targets: &[String], marker: Option<&str>) -> Result<()> {
    use rampart_shield::audit::{Target, probes, run};
    let uri: http::Uri = url.parse().with_context(|| format!("{url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{url}: the audit speaks plain http:// (HTTP/1.1 and HTTP/2 with prior knowledge)");
    }
    let authority = uri.authority().with_context(|| format!("{url} has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(authority.host(), port))
        .with_context(|| format!("cannot resolve {}", authority.host()))?
        .next()
        .with_context(|| format!("{} has no address", authority.host()))?;
    let mut parsed = Vec::new();
    for target in targets {
        let (host, path) = match target.split_once('/') {
            Some((host, path)) => (host, format!("/{path}")),
            None => (target.as_str(), "/".to_owned()),
        };
        if host.is_empty() {
            bail!("--target {target:?}: give HOST/PATH");
        }
        parsed.push(Target { host: host.to_owned(), path });
    }
    let probes = probes(&parsed, authority.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let findings = runtime.block_on(run(address, &probes, marker));
    println!("{} probes sent to {address}", probes.len());
    for finding in &findings {
        println!(
            "LEAK {}{}: {} answered {}",
            finding.probe.target.host, finding.probe.target.path, finding.probe.name, finding.status
        );
    }
    if findings.is_empty() {
        println!("no internal target answered");
        Ok(())
    } else {
        bail!("{} probes reached an internal target", findings.len())
    }
}

/// Re-read the configuration file on every SIGHUP and apply it; a bad file is reported and
/// the running configuration stays.
#[cfg(unix)]
fn reload_on_sighup(
    reloader: rampart_shield::Reloader,
    path: PathBuf,
    metrics: Option<SocketAddr>,
    data: Option<PathBuf>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let result =
                Config::from_file(&path).map_err(rampart_shield::ReloadError::from).and_then(|mut config| {
                    if metrics.is_some() {
                        config.metrics = metrics;
                    }
                    if data.is_some() {
                        config.flood.data_dir = data.clone();
                    }
                    reloader.reload(config)
                });
            match result {
                Ok(()) => eprintln!("rampart shield: SIGHUP: reloaded {}", path.display()),
                Err(error) => eprintln!("rampart shield: SIGHUP: kept the running configuration: {error}"),
            }
        }
    });
    Ok(())
}
