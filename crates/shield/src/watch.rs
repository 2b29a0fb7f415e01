//! The client connection's socket, watched: when bytes last moved (idle timeout), and how fast
//! the client takes the response while the shield has bytes waiting for it (slow read).
//!
//! The read rate is measured over the time writes are blocked, not wall time: a client that
//! reads everything at once and then sits idle is not slow, one that keeps its receive window
//! nearly shut is. Once writes have been blocked for `window` in total, they must have moved
//! `min_rate` bytes a second over it, or the connection fails with `TimedOut`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, Reason};

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

/// A socket under [`SendLimits`] that reports its [`Activity`].
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
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

impl<T> Watched<T> {
    /// Watch `inner`.
    pub fn new(inner: T, activity: Arc<Activity>, limits: SendLimits, metrics: Arc<Metrics>) -> Watched<T> {
        Watched {
            inner,
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

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            self.activity.drains.fetch_add(1, Ordering::Release);
            self.activity.drained.notify_waiters();
        }
        ready!(polled)?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                let now = Instant::now();
                if let Some(since) = this.pending_since.take() {
                    this.blocked += now - since;
                }
                this.bytes += n as u64;
                this.activity.touch();
                this.judge(now)?;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                // At most twice: the timer may fire as soon as it is set.
                for _ in 0..2 {
                    let now = Instant::now();
                    let since = *this.pending_since.get_or_insert(now);
                    this.judge(now)?;
                    let since = this.pending_since.unwrap_or(since);
                    let wake = since + this.limits.window.saturating_sub(this.blocked);
                    if this.timer.deadline() != wake {
                        this.timer.as_mut().reset(wake);
                    }
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Poll::Pending
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
