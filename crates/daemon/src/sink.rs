//! Where attack events go: one trait, several sinks, one thread. Each batch of events (one
//! second's onsets, updates and ends) visits the sinks in order; the store comes first and
//! gives each attack its persistent id, so what is printed, posted, counted and later acted on
//! agrees with what is stored. A sink that fails logs and counts it; the others still run.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rampart_contract::{AttackId, EventDocument};
use rampart_detect::AttackEvent;
use rampart_store::{NewEvent, Store};

use crate::metrics::{AttackTally, Metrics};
use crate::wall_clock;
use crate::webhook::WebhookQueue;

/// A consumer of attack events (store, stdout, webhook, metrics; next, mitigation).
pub trait EventSink: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// Takes one batch, in engine order. A sink may rewrite the events for the sinks after it
    /// (the store sets persistent attack ids). It must not block for long: slow work (network,
    /// retries) belongs on a queue of its own.
    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError>;

    /// Called about once a second, events or not (maintenance, expiry).
    fn tick(&mut self) {}
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Hands every batch from `events` to `sinks` in order, until the sender is gone; ticks the
/// sinks about once a second.
pub fn deliver_all(events: Receiver<Vec<AttackEvent>>, mut sinks: Vec<Box<dyn EventSink>>) {
    const TICK: Duration = Duration::from_secs(1);
    let mut next_tick = Instant::now() + TICK;
    loop {
        match events.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(mut batch) => {
                for sink in &mut sinks {
                    if let Err(error) = sink.deliver(&mut batch) {
                        eprintln!("rampart: {}: {error}", sink.name());
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_tick {
            sinks.iter_mut().for_each(|sink| sink.tick());
            next_tick = Instant::now() + TICK;
        }
    }
}

/// The attack store: each batch in one durable transaction, then the events carry their
/// persistent ids. Runs retention maintenance from `tick`.
#[derive(Debug)]
pub struct StoreSink {
    store: Store,
    metrics: Arc<Metrics>,
    next_maintenance: Instant,
}

/// How often the store is maintained (retention, compaction) when there is nothing pending.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);

impl StoreSink {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        StoreSink { store, metrics, next_maintenance: Instant::now() + MAINTAIN_EVERY }
    }
}

impl EventSink for StoreSink {
    fn name(&self) -> &'static str {
        "attack store"
    }

    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
        let new: Vec<NewEvent> = events
            .iter()
            .map(|event| NewEvent {
                kind: match event.kind {
                    rampart_contract::EventKind::End => rampart_store::EventKind::End,
                    rampart_contract::EventKind::Update => rampart_store::EventKind::Update,
                    _ => rampart_store::EventKind::Onset,
                },
                attack: serde_json::to_value(&event.attack).unwrap_or_default(),
            })
            .collect();
        match self.store.record(&new, wall_clock().0) {
            Ok(stored) => {
                for (event, stored) in events.iter_mut().zip(stored) {
                    if let Some(id) = stored.attack.get("id").and_then(serde_json::Value::as_u64) {
                        event.attack.id = AttackId(id);
                    }
                }
                Ok(())
            }
            Err(error) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                Err(SinkError(format!("cannot record {} event(s): {error}", new.len())))
            }
        }
    }

    fn tick(&mut self) {
        if Instant::now() < self.next_maintenance {
            return;
        }
        match self.store.maintain(wall_clock().0) {
            Ok(report) => {
                if report.is_noteworthy() {
                    eprintln!("rampart: attack store: {report}");
                }
                // Work left: come back soon rather than in a minute.
                let wait = if report.more { Duration::from_secs(1) } else { MAINTAIN_EVERY };
                self.next_maintenance = Instant::now() + wait;
            }
            Err(error) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: attack store maintenance: {error}");
                self.next_maintenance = Instant::now() + MAINTAIN_EVERY;
            }
        }
    }
}

/// One JSON line per event on standard output ([`EventDocument`]); a closed stdout (the
/// reader gone) stops printing, never storing or alerting.
#[derive(Debug, Default)]
pub struct StdoutSink {
    broken: bool,
}

impl EventSink for StdoutSink {
    fn name(&self) -> &'static str {
        "standard output"
    }

    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
        if self.broken {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        for event in events.iter() {
            let line = serde_json::to_string(&EventDocument::new(event)).unwrap_or_default();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                self.broken = true;
                return Err(SinkError("standard output is closed; events still go to the store".into()));
            }
        }
        Ok(())
    }
}

/// The webhook: each event's document onto the webhook's bounded queue (never blocking;
/// delivery, retries and drops are the queue's).
#[derive(Debug)]
pub struct WebhookSink {
    queue: WebhookQueue,
}

impl WebhookSink {
    pub fn new(queue: WebhookQueue) -> Self {
        WebhookSink { queue }
    }
}

impl EventSink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
        for event in events.iter() {
            self.queue.push(serde_json::to_string(&EventDocument::new(event)).unwrap_or_default());
        }
        Ok(())
    }
}

/// Event and vector counters for `/metrics`.
#[derive(Debug)]
pub struct MetricsSink {
    metrics: Arc<Metrics>,
    tally: AttackTally,
}

impl MetricsSink {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsSink { metrics, tally: AttackTally::default() }
    }
}

impl EventSink for MetricsSink {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
        for event in events.iter() {
            self.tally.event(&self.metrics, event.kind, event.attack.id.0, &event.attack.vectors);
        }
        Ok(())
    }
}
