//! Where the capture parser's bytes come from: a [`Read`] through a buffer that grows only as
//! data arrives, or a whole slice without copying.

use std::io::{self, Read};

/// Bytes the parser reads from: a buffer refilled from a [`Read`], or a whole slice.
pub(super) trait Source {
    /// Bytes not consumed yet.
    fn buffered(&self) -> &[u8];
    /// Index of `buffered()[0]` within `backing()`.
    fn pos(&self) -> usize;
    /// The storage frames borrow from; stays valid until the next `fill`.
    fn backing(&self) -> &[u8];
    /// Tries to make at least `need` bytes buffered; fewer only at the end of the input.
    fn fill(&mut self, need: usize) -> io::Result<()>;
    /// Drops the first `n` buffered bytes.
    fn consume(&mut self, n: usize);
}

#[derive(Debug)]
pub(super) struct ReadSource<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl<R> ReadSource<R> {
    /// A source reading `reader` through a buffer of `size` bytes to start with.
    pub(super) fn new(reader: R, size: usize) -> Self {
        Self { reader, buf: vec![0; size], pos: 0, end: 0, eof: false }
    }

    pub(super) fn into_inner(self) -> R {
        self.reader
    }

    /// The buffer's current size (tests check it grows only as data arrives).
    #[cfg(test)]
    pub(super) fn buffer_len(&self) -> usize {
        self.buf.len()
    }
}

impl<R: Read> Source for ReadSource<R> {
    #[inline]
    fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn backing(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.end - self.pos >= need || self.eof {
            return Ok(());
        }
        if self.pos > 0 && self.pos.saturating_add(need) > self.buf.len() {
            // Move the partial record to the front; frames handed out earlier are dead by now
            // (they borrow the reader, which this call borrows mutably).
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < need {
            if self.end == self.buf.len() {
                // Grow only as data actually arrives, so a length field alone cannot make the
                // reader allocate. Callers cap `need` at a record header plus
                // MAX_RECORD_LEN.
                let target = self.pos.saturating_add(need);
                let grown = self.buf.len().saturating_mul(2).min(target).max(self.buf.len() + 1);
                self.buf.resize(grown, 0);
            }
            let Some(space) = self.buf.get_mut(self.end..) else { break };
            let room = space.len();
            match self.reader.read(space) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                // min(): a misbehaving reader must not move `end` past the buffer.
                Ok(read) => self.end += read.min(room),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.end);
    }
}

#[derive(Debug)]
pub(super) struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The whole slice, with its own lifetime: frames borrow it, not the reader.
    pub(super) fn data(&self) -> &'a [u8] {
        self.data
    }
}

impl Source for SliceSource<'_> {
    #[inline]
    fn buffered(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn backing(&self) -> &[u8] {
        self.data
    }

    #[inline]
    fn fill(&mut self, _need: usize) -> io::Result<()> {
        Ok(())
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.data.len());
    }
}
