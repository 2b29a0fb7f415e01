//! A transparent tap on a connection: it copies the first bytes the client sends as they are
//! read (by rustls for the ClientHello, by hyper for the HTTP/2 preface), until a fingerprint
//! can be computed or the bound is reached, then only passes bytes through.
//!
//! Why a tap and not a peek-and-replay: the bytes reach rustls and hyper exactly as before,
//! with no extra wait (a client that opens an HTTP/2 connection and sends its first request
//! later is never held up), and the fingerprint is ready when the handshake completes (TLS) or
//! when the first request is dispatched (HTTP/2, whose HEADERS frame hyper has just read).

use std::io;
use std::sync::{Arc, OnceLock};

use crate::fingerprint::{http2, tls};
use crate::observe::Observer;

/// Which fingerprint a tap computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    /// JA4 from the TLS ClientHello.
    Tls,
    /// Akamai-style from the HTTP/2 preface and first frames.
    Http2,
}

/// The tap's result: set once, `None` when the bytes were not what the tap looks for.
pub type TapResult = Arc<OnceLock<Option<Arc<str>>>>;

/// A tap: the observer (see [`crate::observe`]) that copies what it needs of the first bytes.
#[derive(Debug)]
pub struct Tap {
    kind: TapKind,
    seen: Vec<u8>,
    result: TapResult,
}

impl Tap {
    /// A tap for `kind`.
    pub fn new(kind: TapKind) -> Tap {
        Tap { kind, seen: Vec::new(), result: Arc::new(OnceLock::new()) }
    }

    /// The result cell, readable while the connection runs.
    pub fn result(&self) -> TapResult {
        Arc::clone(&self.result)
    }

    /// The fingerprint, once known.
    pub fn fingerprint(&self) -> Option<Arc<str>> {
        self.result.get().cloned().flatten()
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.result.get().is_some() || bytes.is_empty() {
            return;
        }
        let bound = match self.kind {
            TapKind::Tls => tls::MAX_HELLO + 64,
            TapKind::Http2 => http2::MAX_PREFACE,
        };
        let room = bound.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let outcome: Option<Option<Arc<str>>> = match self.kind {
            TapKind::Tls => match tls::parse(&self.seen) {
                Ok(Some(hello)) => Some(Some(Arc::from(hello.ja4()))),
                Ok(None) if self.seen.len() < bound => None,
                _ => Some(None),
            },
            TapKind::Http2 => match http2::fingerprint(&self.seen) {
                Ok(Some(text)) => Some(Some(Arc::from(text))),
                Ok(None) if self.seen.len() < bound => None,
                _ => Some(None),
            },
        };
        if let Some(outcome) = outcome {
            let _ = self.result.set(outcome);
            self.seen = Vec::new();
        }
    }
}

impl Observer for Tap {
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() && self.result.get().is_none() {
            // The client closed before a fingerprint could be taken.
            let _ = self.result.set(None);
        }
        self.observe(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Observed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn passes_bytes_through_and_fingerprints_them_in_small_reads() {
        let hello = crate::fingerprint::tls::tests::foxio_example();
        let (mut client, server) = tokio::io::duplex(64);
        let mut tap = Observed::new(server, Tap::new(TapKind::Tls));
        let sent = hello.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7) {
                client.write_all(chunk).await.unwrap();
            }
            client.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        let mut buf = [0u8; 13];
        loop {
            let n = tap.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert_eq!(received, hello);
        assert_eq!(tap.observer().fingerprint().as_deref(), Some("t13d1516h2_8daaf6152771_e5627efa2ab1"));
        let (mut client, server) = tokio::io::duplex(64);
        let mut tap = Observed::new(server, Tap::new(TapKind::Http2));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = tap.read(&mut buf).await.unwrap();
        assert_eq!(
            tap.observer().result().get(),
            Some(&None),
            "an HTTP/1 client: no fingerprint, no more copying"
        );
    }
}
