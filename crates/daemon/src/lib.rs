//! Rampart's daemon runtime (the linkerd2-proxy `app/` way): everything `rampart run` does,
//! as a library. Collectors (wired by `rampart-ingest`, the same as `collect`'s) feed record
//! batches to one engine task, which advances the detection engine by the wall clock; event
//! batches go to [`sink::EventSink`]s on a thread of their own: the attack store (durably,
//! giving persistent ids), stdout JSON lines, the webhook, the metrics, and next the
//! mitigation layer. The binary only parses arguments and calls [`serve`].
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod baselines;
pub mod config;
pub mod filter;
pub mod http;
pub mod metrics;
pub mod mitigation;
pub mod shield;
pub mod sink;
pub mod threat;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_bgp::driver::Speaker;
use rampart_detect::{AttackEvent, DetectConfig, Engine, ThreatLevel};
use rampart_ingest::{Inputs, InterfaceCapture};
use rampart_store::Store;
use rampart_telemetry::{DatagramDecoder, TrafficRecord, UnixNanos};
use tokio::sync::{mpsc, watch};

pub use config::{DaemonConfig, RunConfigError};
use metrics::{CollectorMetrics, CountingDecoder, Metrics, RateMeter};
use sink::{EventSink, MetricsSink, StdoutSink, StoreSink, WebhookSink};

/// A [`DaemonError::Setup`] from a format string.
#[macro_export]
#[doc(hidden)]
macro_rules! setup {
    ($($arg:tt)*) => {
        $crate::DaemonError::Setup(format!($($arg)*))
    };
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// An input socket could not be bound or its settings are inconsistent.
    #[error(transparent)]
    Inputs(#[from] rampart_ingest::InputError),
    /// An interface could not be captured (missing, or no privilege).
    #[error(transparent)]
    Capture(#[from] rampart_ingest::CaptureError),
    /// A setting cannot be used; the message names it and what to do.
    #[error("{0}")]
    Setup(String),
    /// A thread could not be started.
    #[error("cannot start {what}: {source}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Now, by the system clock.
pub fn wall_clock() -> UnixNanos {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    UnixNanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Runs the daemon until SIGINT or SIGTERM: binds the inputs and the metrics server, restores
/// baselines, advances the engine by the wall clock and hands every event batch to the sinks
/// (store first, then stdout, webhook and metrics), on a thread of their own so that a slow
/// disk never holds detection up. On a signal it drains the inputs, ends every ongoing attack,
/// saves the baselines and lets the webhook deliver the last events.
pub async fn serve(daemon: DaemonConfig, detect: DetectConfig, store: Store) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // The webhook stops last: it still has the end events to deliver.
    let (webhook_stop_tx, webhook_stop_rx) = watch::channel(false);
    let mut metrics = Metrics::default();
    let webhook = match webhook::settings(&daemon)? {
        Some(settings) => Some(webhook::start(settings, webhook_stop_rx)?),
        None => None,
    };
    metrics.webhook = webhook.as_ref().map(|(queue, _)| queue.stats.clone());
    // Decisions are reconciled (expired ones closed) before anything is detected.
    let speaker = match &daemon.bgp {
        Some(config) => {
            // Over a peer's budget, routes aggregate only as far as mitigation's guards allow.
            let widen = daemon.mitigation.as_ref().map(mitigation::widen_guard);
            let speaker = Speaker::start_with(config.clone(), widen).await.map_err(|e| setup!("bgp: {e}"))?;
            eprintln!(
                "bgp speaker AS {} for {} peer(s): {}",
                config.local_as,
                config.peers.len(),
                config
                    .peers
                    .iter()
                    .map(|p| format!("{} ({}:{})", p.name, p.address, p.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Some(Arc::new(speaker))
        }
        None => None,
    };
    let filter = match &daemon.filter {
        Some(settings) => {
            let (actuator, stats) = filter::FilterActuator::start(settings, &daemon.data_dir)
                .map_err(|e| setup!("filter: {e}"))?;
            let backend = stats.backend.lock().map(|b| *b).unwrap_or("?");
            eprintln!("filter: decisions enforced by {backend}");
            metrics.filter = Some(stats);
            Some(actuator)
        }
        None => None,
    };
    // The shield's bans are one of the mitigator's actuators: a decision reaches it when the
    // decision is on disk, not at the next poll.
    let shield_bans = daemon.shield.as_ref().map(|_| Arc::new(rampart_shield::BanTable::new()));
    let mitigation = match &daemon.mitigation {
        Some(config) => Some(mitigation::start(
            config,
            &daemon.data_dir,
            webhook.as_ref().map(|(queue, _)| queue),
            speaker.clone(),
            filter,
            shield_bans.clone().map(shield::ShieldActuator::new),
        )?),
        None => None,
    };
    if daemon.shield.is_some() && mitigation.is_none() {
        // Not an error (the shield's own limits and flood defense still work), but the operator
        // should know `rampart ban` and attack decisions will not reach it.
        eprintln!(
            "warning: [shield] without [mitigation]: the shield runs without decision-store bans; add a [mitigation] table to apply them"
        );
    }
    if let Some(started) = &mitigation {
        metrics.mitigation = Some(started.stats.clone());
        metrics.script = started.script.clone();
    }
    metrics.bgp = speaker.clone();
    let left_out_task = match (&speaker, &mitigation) {
        (Some(speaker), Some(started)) => {
            mitigation::audit_left_out(speaker, started.mitigator.clone(), stop_rx.clone())
        }
        _ => None,
    };
    let metrics = Arc::new(metrics);

    // Bind everything before announcing anything: a busy port is a clean error. The collectors
    // (exporter allowlist, sampling overrides, plausibility) are wired by rampart-ingest, the
    // same way for `collect`; the daemon's metrics count around them.
    let mut counted = Vec::new();
    // Interfaces alone need no flow socket.
    let inputs = if daemon.inputs.addresses().is_empty() && !daemon.interfaces.is_empty() {
        None
    } else {
        Some(Inputs::bind_with(&daemon.inputs, &mut |kind, local, decoder| {
            let counters = Arc::new(CollectorMetrics::new(kind, local));
            counted.push(counters.clone());
            Box::new(CountingDecoder::new(decoder, counters)) as Box<dyn DatagramDecoder>
        })?)
    };
    if let Ok(mut all) = metrics.collectors.lock() {
        all.extend(counted);
    }
    // Open every ring now: a missing interface or privilege is a clean error at start.
    let captures = daemon
        .interfaces
        .iter()
        .map(|config| InterfaceCapture::open(config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let metrics_listener = match daemon.metrics {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    let shield = match (&daemon.shield, shield_bans) {
        (Some(settings), Some(bans)) => Some(shield::bind(settings, bans, &daemon.data_dir).await?),
        _ => None,
    };
    let shield_reload = shield
        .as_ref()
        .zip(daemon.shield.as_ref())
        .map(|(bound, s)| bound.reload_handle(s, &daemon.data_dir));

    let (sink, mut batches) = mpsc::channel::<Vec<TrafficRecord>>(4096);
    let capture_stop = Arc::new(AtomicBool::new(false));
    let mut running_captures = Vec::new();
    for capture in captures {
        let threads =
            daemon.interfaces.iter().find(|c| c.name == capture.stats().interface).map_or(1, |c| c.threads);
        let group = capture.fanout_group().map(|g| format!(" in fanout group {g}")).unwrap_or_default();
        eprintln!("capturing on {} (AF_PACKET, {threads} ring(s){group})", capture.stats().interface);
        if let Ok(mut shown) = metrics.captures.lock() {
            shown.push(capture.stats().clone());
        }
        let running = capture
            .spawn(sink.clone(), capture_stop.clone())
            .map_err(|source| DaemonError::Start { what: "a capture thread", source })?;
        running_captures.push(running);
    }
    let mut input_stats = Vec::new();
    let inputs = inputs.map(|inputs| {
        eprintln!("{}", inputs_notice(&daemon.inputs));
        for (kind, local) in inputs.listening() {
            eprintln!("listening for {kind} on {local}");
        }
        for (kind, addr, why) in inputs.skipped() {
            eprintln!("not listening for {kind} on {addr}: {why}");
        }
        let inputs = inputs.spawn(sink.clone(), stop_rx.clone());
        input_stats = inputs.stats().to_vec();
        inputs
    });
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
    let shield_drain = shield.as_ref().map(|s| s.drain());
    let shield_task = shield.map(|shield| shield.spawn(stop_rx.clone()));
    eprintln!("attack store {} (run {})", store.path().display(), store.run());
    let control_task = match (&mitigation, &daemon.mitigation) {
        (Some(started), Some(config)) => Some(mitigation::control_socket(
            started.mitigator.clone(),
            config,
            &daemon.data_dir,
            stop_rx.clone(),
        )?),
        _ => None,
    };

    // Events leave the engine task at once; storing (fsync) happens on a thread of its own.
    let (events_tx, events_rx) = std::sync::mpsc::channel::<Vec<AttackEvent>>();
    let output = {
        let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(StoreSink::new(store, metrics.clone()))];
        if daemon.stdout {
            sinks.push(Box::new(StdoutSink::default()));
        }
        if let Some((queue, _)) = &webhook {
            sinks.push(Box::new(WebhookSink::new(queue.clone())));
        }
        sinks.push(Box::new(MetricsSink::new(metrics.clone())));
        if let Some(started) = &mitigation {
            sinks.push(Box::new(mitigation::MitigationSink::new(started.mitigator.clone())));
        }
        std::thread::Builder::new()
            .name("rampart-output".into())
            .spawn(move || sink::deliver_all(events_rx, sinks))
            .map_err(|source| DaemonError::Start { what: "the output thread", source })?
    };

    let protected = detect.protected.clone();
    let mut engine = Engine::try_new(detect).map_err(|e| setup!("detection configuration: {e}"))?;
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
    // Without a handler SIGHUP would end the daemon; with one it re-reads what can change live.
    let mut hangups = Hangups::install()?;
    let mut inputs_open = true;
    let mut threat_published = threat::Published::default();
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
                let (level, _) = engine.config().threat.level_at(now.0 / 1_000_000_000);
                if let Some(level) = threat_published.change(level) {
                    publish_threat_level(&daemon.data_dir, level, &mut threat_published).await;
                }
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
            _ = hangups.next() => {
                eprintln!("SIGHUP: {}", reload_on_hangup(shield_reload.as_ref()).await);
            }
            signal = &mut shutdown => {
                eprintln!("{signal}: stopping");
                break;
            }
        }
    }

    // Stop the collectors, take their last batches, end every ongoing attack.
    let _ = stop_tx.send(true);
    capture_stop.store(true, Ordering::Relaxed);
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(batch)) = tokio::time::timeout_at(drain_until, batches.recv()).await {
        for record in &batch {
            engine.observe(record);
        }
    }
    // Capture threads blocked on a full channel see it closed and stop.
    drop(batches);
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
    if let Some(inputs) = inputs {
        for result in inputs.join().await {
            if let Err(error) = result {
                eprintln!("rampart: {error}");
            }
        }
        // One line for operators: what never reached detection, and why.
        eprintln!("{}", rampart_ingest::inputs::drop_summary(&input_stats));
    }
    for running in running_captures {
        match tokio::task::spawn_blocking(move || running.join()).await {
            Ok(Ok(stats)) => eprintln!("{}", rampart_ingest::interface::summary(&stats)),
            Ok(Err(error)) => eprintln!("rampart: {error}"),
            Err(error) => eprintln!("rampart: capture: {error}"),
        }
    }
    if let Some(task) = http_task {
        task.abort();
    }
    if let (Some(task), Some(drain)) = (shield_task, shield_drain) {
        // It stopped accepting with the inputs; open connections get their drain.
        let _ = tokio::time::timeout(drain + Duration::from_secs(1), task).await;
        eprintln!("shield stopped");
    }
    if let Some(task) = control_task {
        let _ = task.await;
        if let Some(config) = &daemon.mitigation {
            let _ = std::fs::remove_file(config.control_socket_in(&daemon.data_dir));
        }
    }
    if let Some(task) = left_out_task {
        let _ = task.await;
    }
    // Last: the routes are withdrawn (or left to graceful restart) once nothing can add any.
    if let Some(speaker) = speaker {
        speaker.shutdown(Duration::from_secs(2)).await;
        eprintln!("bgp speaker stopped");
    }
    Ok(())
}

/// The start-up line saying whose flows the daemon believes.
pub fn inputs_notice(inputs: &rampart_ingest::InputConfig) -> String {
    if inputs.exporters.is_empty() {
        format!(
            "{}; listening on loopback only. To accept exporters from the network set [inputs] listen (e.g. \"0.0.0.0\") and add [[inputs.exporter]] entries",
            inputs.notice()
        )
    } else {
        inputs.notice()
    }
}

/// Write the threat file off the engine task; a failure is reported and retried next tick.
async fn publish_threat_level(data_dir: &Path, level: ThreatLevel, published: &mut threat::Published) {
    let path = threat::path(data_dir);
    let written = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || threat::write(&path, level)).await
    };
    match written {
        Ok(Ok(())) => eprintln!("threat level {level} (written to {})", path.display()),
        Ok(Err(e)) => {
            eprintln!("rampart: cannot write the threat level to {}: {e}", path.display());
            published.forget();
        }
        Err(e) => {
            eprintln!("rampart: threat level writer: {e}");
            published.forget();
        }
    }
}

/// What a SIGHUP re-reads: the shield's own file (the daemon's file is read once, at start).
async fn reload_on_hangup(shield: Option<&shield::Reload>) -> String {
    let Some(reload) = shield.cloned() else {
        return "nothing to reload: SIGHUP re-reads only the file named by [shield] config; other changes need a restart".into();
    };
    match tokio::task::spawn_blocking(move || reload.apply()).await {
        Ok(Ok(done)) => format!("{done} (other tables of the daemon's file need a restart)"),
        Ok(Err(kept)) => kept,
        Err(e) => format!("shield reload failed: {e}"),
    }
}

/// SIGHUPs as a stream (never ready off Unix).
struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    fn install() -> Result<Hangups, DaemonError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .map_err(|source| DaemonError::Start { what: "the SIGHUP handler", source })?;
            Ok(Hangups { signal })
        }
        #[cfg(not(unix))]
        Ok(Hangups {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            if self.signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}

/// Resolves on SIGINT or SIGTERM, naming it.
pub async fn shutdown_signal() -> &'static str {
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
