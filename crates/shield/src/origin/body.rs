//! The origin's answer on its way to the client: it streams as it comes and, when the answer
//! may be kept, is copied into the stale cache as it passes, the copy (not the stream) given
//! up once it grows past the entry bound.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::origin::cache::{StaleCache, Stored};

/// A copy being taken for the cache.
#[derive(Debug)]
pub struct Tee {
    /// Where it goes.
    pub cache: Arc<Mutex<StaleCache>>,
    /// The cache's clock origin.
    pub epoch: Instant,
    /// Its key.
    pub key: String,
    /// Status, headers and policy; the body is filled in as it passes.
    pub stored: Stored,
    /// The body so far.
    pub body: BytesMut,
    /// Bodies longer than this are not kept.
    pub max: usize,
}

impl Tee {
    fn finish(self) {
        let mut stored = self.stored;
        stored.body = self.body.freeze();
        let now = self.epoch.elapsed();
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(self.key, stored, now);
    }
}

/// The origin's body and, maybe, a copy being taken.
#[derive(Debug)]
pub struct OriginBody {
    inner: Incoming,
    tee: Option<Tee>,
}

impl OriginBody {
    /// `inner`, copied by `tee` if given.
    pub fn new(inner: Incoming, tee: Option<Tee>) -> OriginBody {
        let mut body = OriginBody { inner, tee };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some(tee) = self.tee.take() {
            tee.finish();
        }
    }
}

impl From<Incoming> for OriginBody {
    fn from(inner: Incoming) -> OriginBody {
        OriginBody::new(inner, None)
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(tee) = &mut this.tee {
                    match frame.data_ref() {
                        Some(data) if tee.body.len() + data.len() <= tee.max => {
                            tee.body.extend_from_slice(data)
                        }
                        // Too big, or trailers: not kept.
                        _ => this.tee = None,
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => this.tee = None,
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
