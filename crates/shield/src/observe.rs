//! One observer around a connection's stream: every layer that watches the bytes (socket
//! activity and the slow-read guard, the fingerprint taps, the HTTP/2 frame meter, the
//! WebSocket tunnel's idleness) is an [`Observer`], and they are composed into one
//! [`Observed`] wrapper, so a read goes through one `poll_read` whatever is watching it.
//!
//! Why hooks and not nested wrappers: each wrapper layer costs a `poll_read` indirection and
//! its own copy of the same pass-through code; a tuple of observers is one wrapper whose hooks
//! run in order, innermost concern first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a watcher of a stream is told. Every hook defaults to doing nothing.
pub trait Observer {
    /// `bytes` were just read (empty: the peer closed its side). An error fails the read, and
    /// none of these bytes reach the reader.
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        let _ = bytes;
        Ok(())
    }

    /// A read found nothing waiting: everything the peer sent so far has been taken in.
    fn on_read_pending(&mut self) {}

    /// `n` bytes were written. An error fails the write (the bytes are written already).
    fn on_written(&mut self, n: usize) -> io::Result<()> {
        let _ = n;
        Ok(())
    }

    /// A write is blocked: the peer takes no more bytes now. The observer may arrange to be
    /// woken through `cx` (a deadline); an error fails the write.
    fn on_write_blocked(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = cx;
        Ok(())
    }
}

/// Two observers, `.0` told first (an error from it stops there).
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.on_read(bytes)?;
        self.1.on_read(bytes)
    }

    fn on_read_pending(&mut self) {
        self.0.on_read_pending();
        self.1.on_read_pending();
    }

    fn on_written(&mut self, n: usize) -> io::Result<()> {
        self.0.on_written(n)?;
        self.1.on_written(n)
    }

    fn on_write_blocked(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.0.on_write_blocked(cx)?;
        self.1.on_write_blocked(cx)
    }
}

/// A stream and what observes it.
#[derive(Debug)]
pub struct Observed<T, O> {
    inner: T,
    observer: O,
}

impl<T, O> Observed<T, O> {
    /// Observe `inner` with `observer`.
    pub fn new(inner: T, observer: O) -> Observed<T, O> {
        Observed { inner, observer }
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<T: AsyncRead + Unpin, O: Observer + Unpin> AsyncRead for Observed<T, O> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                this.observer.on_read_pending();
                Poll::Pending
            }
            Poll::Ready(Ok(())) => match this.observer.on_read(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(error) => {
                    buf.set_filled(before);
                    Poll::Ready(Err(error))
                }
            },
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl<T: AsyncWrite + Unpin, O: Observer + Unpin> AsyncWrite for Observed<T, O> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => Poll::Ready(this.observer.on_written(n).map(|()| n)),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.observer.on_write_blocked(cx) {
                Ok(()) => Poll::Pending,
                Err(error) => Poll::Ready(Err(error)),
            },
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => Poll::Ready(this.observer.on_written(n).map(|()| n)),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.observer.on_write_blocked(cx) {
                Ok(()) => Poll::Pending,
                Err(error) => Poll::Ready(Err(error)),
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Records what it is told; refuses reads containing `!`.
    #[derive(Debug, Default)]
    struct Log {
        events: Vec<String>,
    }

    impl Observer for Log {
        fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.events.push(format!("read {}", String::from_utf8_lossy(bytes)));
            if bytes.contains(&b'!') {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "refused"));
            }
            Ok(())
        }

        fn on_read_pending(&mut self) {
            self.events.push("pending".into());
        }

        fn on_written(&mut self, n: usize) -> io::Result<()> {
            self.events.push(format!("wrote {n}"));
            Ok(())
        }
    }

    #[tokio::test]
    async fn hooks_see_reads_writes_and_refuse_in_order() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut observed = Observed::new(server, (Log::default(), Log::default()));
        client.write_all(b"ab").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(observed.read(&mut buf).await.unwrap(), 2);
        observed.write_all(b"xyz").await.unwrap();
        let mut echo = [0u8; 3];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"xyz");
        // A refused read hands none of its bytes up; the second observer never sees it.
        client.write_all(b"c!").await.unwrap();
        assert!(observed.read(&mut buf).await.is_err());
        drop(client);
        assert_eq!(observed.read(&mut buf).await.unwrap(), 0);
        let (first, second) = &observed.observer();
        assert_eq!(first.events, ["read ab", "wrote 3", "read c!", "read "]);
        assert_eq!(second.events, ["read ab", "wrote 3", "read "]);
        // A read that found nothing is told as such.
        let (_client, server) = tokio::io::duplex(64);
        let mut observed = Observed::new(server, Log::default());
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), observed.read(&mut buf)).await;
        assert!(waited.is_err());
        let events = &observed.observer().events;
        assert!(!events.is_empty() && events.iter().all(|e| e == "pending"), "{events:?}");
    }
}
