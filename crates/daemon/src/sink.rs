//! Where attack events go: one trait, several sinks, one thread. Each batch of events (one
//! second's onsets, updates and ends) visits the sinks in order; the store comes first and
//! gives each attack its persistent id, so what is printed, posted, counted and later acted on
//! agrees with what is stored. A sink that fails logs and counts it; the others still run.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rampart_contract::EventDocument;
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
        let new: Vec<NewEvent> =
            events.iter().map(|event| NewEvent { kind: event.kind, attack: event.attack.clone() }).collect();
        match self.store.record(&new, wall_clock().0) {
            Ok(stored) => {
                for (event, stored) in events.iter_mut().zip(stored) {
                    event.attack.id = stored.attack.id;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{
        Attack, AttackId, Direction, EventKind, EventTime, Level, Metric, Target, Trigger,
    };
    use std::sync::Mutex;

    /// Remembers the attack ids it saw; fails when told to.
    struct Recorder {
        seen: Arc<Mutex<Vec<u64>>>,
        fail: bool,
    }

    impl EventSink for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        fn deliver(&mut self, events: &mut [AttackEvent]) -> Result<(), SinkError> {
            self.seen.lock().unwrap().extend(events.iter().map(|e| e.attack.id.0));
            if self.fail { Err(SinkError("told to fail".into())) } else { Ok(()) }
        }
    }

    fn event(kind: EventKind, engine_id: u64) -> AttackEvent {
        let trigger = Trigger::new(Level::Host, Metric::Pps, 500, 100, EventTime::from_unix_secs(100));
        let target = Target::Host("198.51.100.10".parse().unwrap());
        AttackEvent { kind, attack: Attack::new(AttackId(engine_id), target, Direction::Inbound, trigger) }
    }

    /// Runs `batches` through a store sink, a failing sink and a recorder; returns the ids the
    /// recorder saw.
    fn run(dir: &std::path::Path, batches: Vec<Vec<AttackEvent>>) -> Vec<u64> {
        let store = Store::open(dir).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sinks: Vec<Box<dyn EventSink>> = vec![
            Box::new(StoreSink::new(store, Arc::new(Metrics::default()))),
            Box::new(Recorder { seen: Arc::new(Mutex::new(Vec::new())), fail: true }),
            Box::new(Recorder { seen: seen.clone(), fail: false }),
        ];
        let (tx, rx) = std::sync::mpsc::channel();
        for batch in batches {
            tx.send(batch).unwrap();
        }
        drop(tx);
        deliver_all(rx, sinks);
        seen.lock().unwrap().clone()
    }

    #[test]
    fn later_sinks_see_the_store_ids_across_restarts_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        // Engine ids restart at 1 every run; store ids do not.
        let first = run(dir.path(), vec![vec![event(EventKind::Onset, 1)], vec![event(EventKind::End, 1)]]);
        assert_eq!(first, [1, 1]);
        let second = run(
            dir.path(),
            vec![
                vec![event(EventKind::Onset, 1), event(EventKind::Onset, 2)],
                vec![event(EventKind::End, 2)],
            ],
        );
        assert_eq!(second, [2, 3, 3]);
        let reader = rampart_store::StoreReader::open(dir.path()).unwrap();
        assert_eq!(reader.attacks().unwrap().len(), 3);
    }
}
