//! The request body on its way to the origin, with a whole-body deadline and a minimum
//! average rate (slow POST, "R-U-Dead-Yet").
//!
//! hyper has no body deadline, and nginx's `client_body_timeout` is per read, so a client
//! sending a byte every few seconds keeps a connection and an origin request forever. Here the
//! body must be complete within `timeout`, and after `grace` it must have arrived at
//! `min_rate` bytes a second on average since the head ended.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, Reason};

/// The body limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The whole body within this.
    pub timeout: Duration,
    /// Seconds before the minimum rate applies.
    pub grace: Duration,
    /// Bytes a second on average, after `grace`.
    pub min_rate: u64,
}

impl BodyLimits {
    /// The moment the body is too late, having received `received` bytes since `started`.
    pub fn deadline(&self, started: Instant, received: u64) -> Instant {
        let whole = started + self.timeout;
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        let by_rate = started + earned.max(self.grace);
        whole.min(by_rate)
    }
}

/// Why the body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's body stream failed.
    #[error("request body: {0}")]
    Client(#[from] hyper::Error),
    /// The body came too slowly or not within its deadline.
    #[error("request body too slow")]
    TooSlow,
}

/// A request body under [`BodyLimits`].
#[derive(Debug)]
pub struct GuardedBody {
    inner: Incoming,
    limits: BodyLimits,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    metrics: Arc<Metrics>,
    tripped: Arc<std::sync::atomic::AtomicBool>,
}

impl GuardedBody {
    /// Guard `inner`, its clock starting now. `tripped` is set when the limits cut it.
    pub fn new(
        inner: Incoming,
        limits: BodyLimits,
        metrics: Arc<Metrics>,
        tripped: Arc<std::sync::atomic::AtomicBool>,
    ) -> GuardedBody {
        let started = Instant::now();
        GuardedBody {
            inner,
            limits,
            started,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(limits.deadline(started, 0))),
            metrics,
            tripped,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.tripped.load(std::sync::atomic::Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyError::TooSlow)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let deadline = this.limits.deadline(this.started, this.received);
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        if Instant::now() >= deadline || this.timer.as_mut().poll(cx).is_ready() {
            this.tripped.store(true, std::sync::atomic::Ordering::Relaxed);
            this.metrics.reject(Reason::SlowBody);
            return Poll::Ready(Some(Err(BodyError::TooSlow)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_by_rate_and_whole() {
        let limits =
            BodyLimits { timeout: Duration::from_secs(60), grace: Duration::from_secs(10), min_rate: 100 };
        let start = Instant::now();
        assert_eq!(limits.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(limits.deadline(start, 999), start + Duration::from_secs(10));
        assert_eq!(limits.deadline(start, 2_000), start + Duration::from_secs(20));
        assert_eq!(limits.deadline(start, 1_000_000), start + Duration::from_secs(60));
    }
}
