//! `rampart run`: the detection daemon. Collectors feed record batches to one engine task,
//! which advances the engine by the wall clock; events are stored (durably, with persistent
//! ids), then printed as JSON lines, queued for the webhook and counted in the metrics.

mod baselines;
mod config;
mod http;
mod metrics;
mod webhook;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_contract::{AttackId, EventDocument};
use rampart_detect::{AttackEvent, DetectConfig, Engine};
use rampart_ingest::{Inputs, ListenOn};
use rampart_store::{NewEvent, Store};
use rampart_telemetry::{DatagramDecoder, TrafficRecord, UnixNanos};
use tokio::sync::{mpsc, watch};

use config::DaemonConfig;
use metrics::{AttackTally, CollectorMetrics, CountingDecoder, Metrics, RateMeter};
use webhook::WebhookQueue;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML): detection settings plus the daemon's [inputs], [store] and
    /// [outputs] tables (see config/rampart.example.toml). Without it, the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the attack store lives (default ./rampart-data, or [store] data_dir).
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
    /// Serve Prometheus metrics on http://ADDR/metrics (default 127.0.0.1:9108; `off` to
    /// disable).
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
            let text = std::fs::read_to_string(path)
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
    let store = Store::open(&daemon.data_dir)?;
    store.warnings().iter().for_each(|warning| eprintln!("rampart: warning: {warning}"));
    store.interrupted().iter().for_each(|attack| eprintln!("rampart: {attack}"));
    // Two workers: collectors and HTTP on one, the engine on the other.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(daemon_main(daemon, detect, store))
}

fn wall_clock() -> UnixNanos {
    UnixNanos(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0))
}

async fn daemon_main(daemon: DaemonConfig, detect: DetectConfig, store: Store) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // The webhook stops last: it still has the end events to deliver.
    let (webhook_stop_tx, webhook_stop_rx) = watch::channel(false);
    let mut metrics = Metrics::default();
    let webhook = match webhook::settings(&daemon)? {
        Some(settings) => Some(webhook::start(settings, webhook_stop_rx)?),
        None => None,
    };
    metrics.webhook = webhook.as_ref().map(|(queue, _)| queue.stats.clone());
    let metrics = Arc::new(metrics);

    // Bind everything before announcing anything: a busy port is a clean error. The collectors
    // (exporter allowlist, sampling overrides, plausibility) are wired by rampart-ingest, the
    // same way for `collect`; the daemon's metrics count around them.
    let mut counted = Vec::new();
    let inputs = Inputs::bind_with(&daemon.inputs, &mut |kind, local, decoder| {
        let counters = Arc::new(CollectorMetrics::new(kind, local));
        counted.push(counters.clone());
        Box::new(CountingDecoder::new(decoder, counters)) as Box<dyn DatagramDecoder>
    })?;
    if let Ok(mut all) = metrics.collectors.lock() {
        all.extend(counted);
    }
    let metrics_listener = match daemon.metrics {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };

    let (sink, mut batches) = mpsc::channel::<Vec<TrafficRecord>>(4096);
    eprintln!("{}", inputs_notice(&daemon.inputs));
    for (kind, local) in inputs.listening() {
        eprintln!("listening for {kind} on {local}");
    }
    for (kind, addr, why) in inputs.skipped() {
        eprintln!("not listening for {kind} on {addr}: {why}");
    }
    let inputs = inputs.spawn(sink.clone(), stop_rx.clone());
    let input_stats = inputs.stats().to_vec();
    if let Ok(mut shown) = metrics.inputs.lock() {
        shown.extend(input_stats.iter().cloned());
    }
    drop(sink);
    let http_task = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("metrics on http://{addr}/metrics");
        }
        let shown = metrics.clone();
        let registry = metrics::registry(&metrics);
        let render = move || {
            // Kernel drops per socket, read at scrape time (Linux /proc/net/udp).
            if let Ok(collectors) = shown.collectors.lock() {
                for collector in collectors.iter() {
                    let listen = collector.listen.lock().map(|l| *l);
                    if let Some(drops) = listen.ok().and_then(rampart_ingest::udp::socket_drops) {
                        collector.socket_drops.store(drops, Ordering::Relaxed);
                    }
                }
            }
            metrics::render(&registry)
        };
        let limits = http::Limits::default();
        tokio::spawn(http::serve_metrics(
            listener,
            limits,
            metrics.http.clone(),
            Arc::new(render),
            stop_rx.clone(),
        ))
    });
    eprintln!("attack store {} (run {})", store.path().display(), store.run());

    // Events leave the engine task at once; storing (fsync) happens on a thread of its own.
    let (events_tx, events_rx) = std::sync::mpsc::channel::<Vec<AttackEvent>>();
    let output = {
        let metrics = metrics.clone();
        let queue = webhook.as_ref().map(|(queue, _)| queue.clone());
        let stdout = daemon.stdout;
        std::thread::Builder::new()
            .name("rampart-output".into())
            .spawn(move || output_loop(store, events_rx, &metrics, queue.as_ref(), stdout))
            .context("cannot start the output thread")?
    };

    let protected = detect.protected.clone();
    let mut engine = Engine::new(detect);
    if engine.config().baseline.enabled {
        baselines::load(&mut engine, &daemon.data_dir);
    }
    let mut save_baselines =
        tokio::time::interval_at(tokio::time::Instant::now() + baselines::SAVE_EVERY, baselines::SAVE_EVERY);
    save_baselines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rate = RateMeter::default();
    let mut tick = tokio::time::interval(daemon.advance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut inputs_open = true;
    loop {
        tokio::select! {
            batch = batches.recv(), if inputs_open => match batch {
                Some(batch) => {
                    for record in &batch {
                        engine.observe(record);
                        rate.add(record, &protected);
                    }
                }
                None => inputs_open = false,
            },
            _ = tick.tick() => {
                let now = wall_clock();
                let events = engine.advance(now);
                if !events.is_empty() {
                    let _ = events_tx.send(events);
                }
                if let Some((pps, bps)) = rate.tick(now) {
                    metrics.inbound_pps.store(pps, Ordering::Relaxed);
                    metrics.inbound_bps.store(bps, Ordering::Relaxed);
                }
                if let Ok(mut stats) = metrics.engine.lock() {
                    stats.clone_from(engine.stats());
                }
                if let Ok(mut traffic) = metrics.traffic.lock() {
                    traffic.0 = engine.rates();
                    traffic.1.clear();
                    traffic.1.extend(engine.group_rates().map(|(name, rates)| (name.to_owned(), rates)));
                }
            }
            _ = save_baselines.tick(), if engine.config().baseline.enabled => {
                // Serialized here, written off the engine task.
                let snapshot = engine.baseline_snapshot();
                let dir = daemon.data_dir.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = baselines::save(&dir, &snapshot) {
                        eprintln!("rampart: cannot save baselines in {}: {e}", dir.display());
                    }
                });
            }
            signal = &mut shutdown => {
                eprintln!("{signal}: stopping");
                break;
            }
        }
    }

    // Stop the collectors, take their last batches, end every ongoing attack.
    let _ = stop_tx.send(true);
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(batch)) = tokio::time::timeout_at(drain_until, batches.recv()).await {
        for record in &batch {
            engine.observe(record);
        }
    }
    let last = engine.finish();
    if !last.is_empty() {
        let _ = events_tx.send(last);
    }
    if engine.config().baseline.enabled {
        let snapshot = engine.baseline_snapshot();
        let dir = daemon.data_dir.clone();
        match tokio::task::spawn_blocking(move || baselines::save(&dir, &snapshot)).await {
            Ok(Ok(())) => eprintln!("baselines saved in {}", baselines::path(&daemon.data_dir).display()),
            Ok(Err(e)) => eprintln!("rampart: cannot save baselines in {}: {e}", daemon.data_dir.display()),
            Err(e) => eprintln!("rampart: baseline saver: {e}"),
        }
    }
    drop(events_tx);
    let output = tokio::task::spawn_blocking(move || output.join());
    if !matches!(output.await, Ok(Ok(()))) {
        eprintln!("rampart: the output thread failed");
    }
    // Give the webhook a moment to deliver the end events.
    if let Some((queue, task)) = webhook {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while queue.stats.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = webhook_stop_tx.send(true);
        let _ = task.await;
    }
    for result in inputs.join().await {
        if let Err(error) = result {
            eprintln!("rampart: {error}");
        }
    }
    // One line for operators: what never reached detection, and why.
    eprintln!("{}", rampart_ingest::inputs::drop_summary(&input_stats));
    if let Some(task) = http_task {
        task.abort();
    }
    Ok(())
}

/// The start-up line saying whose flows the daemon believes.
fn inputs_notice(inputs: &rampart_ingest::InputConfig) -> String {
    if inputs.exporters.is_empty() {
        format!(
            "{}; listening on loopback only. To accept exporters from the network set [inputs] listen (e.g. \"0.0.0.0\") and add [[inputs.exporter]] entries",
            inputs.notice()
        )
    } else {
        inputs.notice()
    }
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupt"
    }
}

/// Stores each batch of events in one durable transaction, then prints, queues and counts
/// them (with their persistent ids). A failing store does not stop the others.
fn output_loop(
    mut store: Store,
    events: std::sync::mpsc::Receiver<Vec<AttackEvent>>,
    metrics: &Metrics,
    webhook: Option<&WebhookQueue>,
    stdout: bool,
) {
    let mut tally = AttackTally::default();
    let mut stdout_broken = false;
    while let Ok(batch) = events.recv() {
        let new: Vec<NewEvent> =
            batch.iter().map(|event| NewEvent { kind: event.kind, attack: event.attack.clone() }).collect();
        let ids: Vec<AttackId> = match store.record(&new, wall_clock().0) {
            Ok(stored) => stored.into_iter().map(|e| e.attack.id).collect(),
            Err(error) => {
                metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: cannot record {} event(s): {error}", new.len());
                batch.iter().map(|e| e.attack.id).collect()
            }
        };
        for (event, id) in batch.iter().zip(ids) {
            tally.event(metrics, event.kind, id.0, &event.attack.vectors);
            // What was printed, posted and stored carries the store's id.
            let mut document = EventDocument::new(event);
            document.attack.id = id;
            let line = serde_json::to_string(&document).unwrap_or_default();
            // A closed stdout (reader gone) must not stop storing and alerting.
            if stdout && !stdout_broken {
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    stdout_broken = true;
                    eprintln!("rampart: standard output is closed; events still go to the store");
                }
            }
            if let Some(queue) = webhook {
                queue.push(line);
            }
        }
    }
}
