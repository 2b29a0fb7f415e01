//! Traffic sources. Each one yields its packets in timestamp order; the engine merges them.

pub(crate) mod bulk;
pub(crate) mod flood;
pub(crate) mod outbound;
pub(crate) mod web;

use crate::wire::{Built, FrameBuf};

/// Size of the shared random payload block; payload copies start below `NOISE_SPAN`.
pub(crate) const NOISE_LEN: usize = 1 << 17;
pub(crate) const NOISE_SPAN: u32 = 1 << 16;

/// Printable filler for plain-HTTP payloads.
pub(crate) static TEXT_BLOCK: [u8; 4096] = {
    let pat = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.</p>\n";
    let mut b = [0u8; 4096];
    let mut i = 0;
    while i < b.len() {
        b[i] = pat[i % pat.len()];
        i += 1;
    }
    b
};

/// A packet produced by a source: `buf[..built.len]` stamped `ts`, accounted to `tag`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) ts: u64,
    pub(crate) built: Built,
    pub(crate) tag: usize,
}

/// Static dispatch over the source kinds (no trait objects on the hot path).
#[derive(Debug)]
pub(crate) enum Source {
    Web(Box<web::Web>),
    Flood(Box<flood::Flood>),
    Bulk(Box<bulk::Bulk>),
    Outbound(Box<outbound::Outbound>),
}

impl Source {
    /// Timestamp of the next packet, if any.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u64> {
        match self {
            Source::Web(s) => s.peek(),
            Source::Flood(s) => s.peek(),
            Source::Bulk(s) => s.peek(),
            Source::Outbound(s) => s.peek(),
        }
    }

    /// Produces the packet announced by [`Source::peek`]; `None` when the event turned out to
    /// produce nothing (a session refused by the concurrency cap).
    #[inline]
    pub(crate) fn next(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> Option<Out> {
        match self {
            Source::Web(s) => s.next(buf, noise),
            Source::Flood(s) => Some(s.next(buf, noise)),
            Source::Bulk(s) => Some(s.next(buf, noise)),
            Source::Outbound(s) => s.next(buf),
        }
    }
}
