//! The driver of one upstream's concurrency limit and admission queue: requests take a
//! [`Permit`] before they go to the origin and give it back when the origin's answer is done
//! (its body streamed or dropped). Waiting requests sleep on a channel until a permit is
//! handed to them or their deadline passes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::origin::limit::{ConcurrencyLimit, LimitSettings};
use crate::origin::queue::{Admission, Entry, Granted, Priority};

/// Why a request was not let through to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue was full (or a better client took its place).
    QueueFull,
    /// It waited past its deadline.
    Deadline,
}

#[derive(Debug)]
struct State {
    limit: ConcurrencyLimit,
    admission: Admission<oneshot::Sender<Permit>>,
}

/// The limit and queue of one upstream.
#[derive(Debug)]
pub struct OriginGuard {
    state: Mutex<State>,
    epoch: Instant,
    max: u32,
    /// The ceiling last applied, so that an unchanged threat level costs no lock.
    ceiling: std::sync::atomic::AtomicU32,
}

impl OriginGuard {
    /// A guard with `settings` and room for `queue_size` waiters.
    pub fn new(settings: LimitSettings, queue_size: usize) -> Arc<OriginGuard> {
        Arc::new(OriginGuard {
            state: Mutex::new(State {
                limit: ConcurrencyLimit::new(settings),
                admission: Admission::new(queue_size),
            }),
            epoch: Instant::now(),
            max: settings.max,
            ceiling: std::sync::atomic::AtomicU32::new(settings.max),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The limit now.
    pub fn limit(&self) -> u32 {
        self.lock().limit.limit()
    }

    /// The limit, the requests at the origin and those waiting, now.
    pub fn load(&self) -> (u32, u32, usize) {
        let state = self.lock();
        (state.limit.limit(), state.admission.inflight(), state.admission.queued())
    }

    /// Scale the ceiling to `factor` of the hard maximum (the threat level).
    pub fn tighten(&self, factor: f64) {
        let ceiling = (f64::from(self.max) * factor.clamp(0.0, 1.0)).round() as u32;
        if self.ceiling.swap(ceiling, std::sync::atomic::Ordering::Relaxed) == ceiling {
            return;
        }
        let mut state = self.lock();
        state.limit.set_ceiling(ceiling);
    }

    /// Whether a request would have to wait now.
    pub fn would_wait(&self) -> bool {
        let state = self.lock();
        state.admission.inflight() >= state.limit.limit() || state.admission.queued() > 0
    }

    /// Wait for a permit, at most `deadline`.
    pub async fn acquire(
        self: &Arc<Self>,
        priority: Priority,
        deadline: Duration,
    ) -> Result<Permit, Refusal> {
        let (sender, receiver) = oneshot::channel();
        let ticket = {
            let mut state = self.lock();
            let limit = state.limit.limit();
            let inflight = state.admission.inflight();
            match state.admission.enter(limit, priority, self.now() + deadline, sender) {
                Entry::Admitted(_) => return Ok(Permit::new(self, inflight + 1)),
                Entry::Full(_) => return Err(Refusal::QueueFull),
                // The bumped waiter's channel closes as it drops here: it is refused.
                Entry::Queued { ticket, bumped: _ } => ticket,
            }
        };
        let mut waiting = Waiting { guard: self, ticket: Some(ticket) };
        let result = tokio::time::timeout(deadline, receiver).await;
        match result {
            Ok(Ok(permit)) => {
                waiting.ticket = None;
                Ok(permit)
            }
            Ok(Err(_)) => {
                waiting.ticket = None;
                Err(Refusal::QueueFull)
            }
            Err(_) => Err(Refusal::Deadline),
        }
    }

    /// One request done: hand its place on, to as many waiters as the limit allows.
    fn release(self: &Arc<Self>) {
        let granted = {
            let mut state = self.lock();
            let limit = state.limit.limit();
            state.admission.leave(limit, self.now())
        };
        self.hand_out(granted);
    }

    /// Give permits to granted waiters; a waiter gone meanwhile gives its place on at once.
    fn hand_out(self: &Arc<Self>, mut granted: Granted<oneshot::Sender<Permit>>) {
        // A loop, not recursion through `Permit::drop`: a long run of departed waiters must
        // not grow the stack.
        loop {
            let mut lost = 0;
            for sender in granted.admitted {
                let inflight = self.lock().admission.inflight();
                if let Err(mut permit) = sender.send(Permit::new(self, inflight)) {
                    permit.released = true;
                    lost += 1;
                }
            }
            if lost == 0 {
                return;
            }
            let mut state = self.lock();
            let limit = state.limit.limit();
            let now = self.now();
            let mut next = Granted { admitted: Vec::new(), expired: Vec::new() };
            for _ in 0..lost {
                let more = state.admission.leave(limit, now);
                next.admitted.extend(more.admitted);
            }
            drop(state);
            granted = next;
        }
    }

    fn sample(self: &Arc<Self>, rtt: Duration, inflight: u32, dropped: bool) {
        let granted = {
            let mut state = self.lock();
            let now = self.now();
            state.limit.sample(now, rtt, inflight, dropped);
            let limit = state.limit.limit();
            state.admission.grant(limit, now)
        };
        self.hand_out(granted);
    }
}

/// A waiter's place in the queue, given up if the request goes away while waiting.
struct Waiting<'a> {
    guard: &'a Arc<OriginGuard>,
    ticket: Option<u64>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            let removed = self.guard.lock().admission.remove(ticket);
            drop(removed);
        }
    }
}

/// The right to have one request at the origin; given back on drop.
#[derive(Debug)]
pub struct Permit {
    guard: Arc<OriginGuard>,
    inflight: u32,
    released: bool,
    sent: Option<Instant>,
}

impl Permit {
    fn new(guard: &Arc<OriginGuard>, inflight: u32) -> Permit {
        Permit { guard: Arc::clone(guard), inflight, released: false, sent: None }
    }

    /// The request is leaving for the origin now (not called: its answer teaches the limit
    /// nothing).
    pub fn sent(&mut self) {
        self.sent = Some(Instant::now());
    }

    /// The origin's answer head arrived (`dropped`: it failed, timed out or said it is
    /// overloaded): teach the limit its latency.
    pub fn answered(&mut self, dropped: bool) {
        if let Some(sent) = self.sent.take() {
            self.guard.sample(sent.elapsed(), self.inflight, dropped);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.released {
            self.released = true;
            self.guard.release();
        }
    }
}
