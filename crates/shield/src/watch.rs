//! The client connection's socket, watched: when bytes last moved (idle timeout), and how fast
//! the client takes the response while the shield has bytes waiting for it (slow read).
//!
//! The read rate is measured over the time writes are blocked, not wall time: a client that
//! reads everything at once and then sits idle is not slow, one that keeps its receive window
//! nearly shut is. Once writes have been blocked for `window` in total, they must have moved
//! `min_rate` bytes a second over it, or the connection fails with `TimedOut`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, Reason};
use crate::observe::Observer;

/// What one connection is doing, shared between its socket, its requests and its task.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    /// Milliseconds after `base` bytes last moved.
    last_ms: AtomicU64,
    /// Requests being answered now.
    pub inflight: AtomicUsize,
    /// Requests the client abandoned (stream reset, connection closed) before their answer.
    pub cancelled: AtomicU32,
    /// Times a read found the socket empty: everything the client had sent was taken in.
    drains: AtomicU64,
    drained: tokio::sync::Notify,
}

impl Activity {
    /// A connection starting now.
    pub fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            cancelled: AtomicU32::new(0),
            drains: AtomicU64::new(0),
            drained: tokio::sync::Notify::new(),
        }
    }

    /// Wait (at most `limit`) until the connection has read everything the client sent so
    /// far, so that a RST_STREAM already on the wire is seen before a request is forwarded.
    pub async fn until_drained(&self, limit: Duration) {
        let seen = self.drains.load(Ordering::Acquire);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            let notified = self.drained.notified();
            if self.drains.load(Ordering::Acquire) > seen {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = &mut deadline => return,
            }
        }
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long no byte has moved.
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// Minimum response read rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Bytes a second while blocked.
    pub min_rate: u64,
    /// Blocked time over which the rate is judged.
    pub window: Duration,
}

/// The observer of a client socket (see [`crate::observe`]): it reports the socket's
/// [`Activity`] and holds the client to [`SendLimits`].
#[derive(Debug)]
pub struct Watch {
    activity: Arc<Activity>,
    limits: SendLimits,
    metrics: Arc<Metrics>,
    /// Blocked time in the current window, not counting the write pending now.
    blocked: Duration,
    /// Bytes written in the current window.
    bytes: u64,
    /// Since when the current write is pending.
    pending_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl Watch {
    /// Watch a socket for `activity`.
    pub fn new(activity: Arc<Activity>, limits: SendLimits, metrics: Arc<Metrics>) -> Watch {
        Watch {
            activity,
            limits,
            metrics,
            blocked: Duration::ZERO,
            bytes: 0,
            pending_since: None,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        }
    }

    /// Judge the window if it is complete; `Err` when the client is too slow.
    fn judge(&mut self, now: Instant) -> io::Result<()> {
        let blocked = self.blocked + self.pending_since.map_or(Duration::ZERO, |p| now - p);
        if blocked < self.limits.window {
            return Ok(());
        }
        if (self.bytes as f64) < self.limits.min_rate as f64 * blocked.as_secs_f64() {
            self.metrics.reject(Reason::SlowRead);
            return Err(io::Error::new(io::ErrorKind::TimedOut, "client reads the response too slowly"));
        }
        // A new window.
        self.blocked = Duration::ZERO;
        self.bytes = 0;
        if self.pending_since.is_some() {
            self.pending_since = Some(now);
        }
        Ok(())
    }
}

impl Observer for Watch {
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !bytes.is_empty() {
            self.activity.touch();
        }
        Ok(())
    }

    fn on_read_pending(&mut self) {
        self.activity.drains.fetch_add(1, Ordering::Release);
        self.activity.drained.notify_waiters();
    }

    fn on_written(&mut self, n: usize) -> io::Result<()> {
        let now = Instant::now();
        if let Some(since) = self.pending_since.take() {
            self.blocked += now - since;
        }
        self.bytes += n as u64;
        self.activity.touch();
        self.judge(now)
    }

    fn on_write_blocked(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        // At most twice: the timer may fire as soon as it is set.
        for _ in 0..2 {
            let now = Instant::now();
            let since = *self.pending_since.get_or_insert(now);
            self.judge(now)?;
            let since = self.pending_since.unwrap_or(since);
            let wake = since + self.limits.window.saturating_sub(self.blocked);
            if self.timer.deadline() != wake {
                self.timer.as_mut().reset(wake);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
        Ok(())
    }
}
