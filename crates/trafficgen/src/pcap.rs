//! Classic pcap (libpcap 2.4) writer, Ethernet link type.

use std::io::{self, Write};

/// Magic number of a classic pcap file with microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic number of a classic pcap file with nanosecond timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// pcap link type for Ethernet (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length written in the file header; frames longer than this are rejected.
pub const SNAPLEN: u32 = 262_144;
/// Size of the global file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Size of each per-record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// Streams Ethernet frames into a classic pcap file (little-endian, version 2.4).
///
/// The writer does no buffering of its own: wrap files in a [`std::io::BufWriter`].
/// Frames are stored whole (`incl_len == orig_len`) unless a smaller snaplen was asked for.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    nanosecond: bool,
    snaplen: u32,
    packets: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header and returns the writer.
    ///
    /// `nanosecond` selects the nanosecond-resolution magic; otherwise timestamps are stored in
    /// microseconds (truncated).
    pub fn new(out: W, nanosecond: bool) -> io::Result<Self> {
        Self::with_snaplen(out, nanosecond, SNAPLEN)
    }

    /// Like [`PcapWriter::new`], storing at most `snaplen` bytes of each frame (clamped to
    /// 1..=[`SNAPLEN`]); the record header keeps the frame's true length.
    pub fn with_snaplen(mut out: W, nanosecond: bool, snaplen: u32) -> io::Result<Self> {
        let snaplen = snaplen.clamp(1, SNAPLEN);
        let magic = if nanosecond { MAGIC_NANOS } else { MAGIC_MICROS };
        let mut hdr = [0u8; FILE_HEADER_LEN];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&hdr)?;
        Ok(Self { out, nanosecond, snaplen, packets: 0, bytes: FILE_HEADER_LEN as u64 })
    }

    /// True when the file stores nanosecond timestamps.
    pub fn is_nanosecond(&self) -> bool {
        self.nanosecond
    }

    /// The timestamp as it will be stored: `ts_nanos` truncated to the file's resolution.
    pub fn stored_timestamp(&self, ts_nanos: u64) -> u64 {
        if self.nanosecond { ts_nanos } else { ts_nanos - ts_nanos % 1_000 }
    }

    /// Appends one frame captured at `ts_nanos` (nanoseconds since the Unix epoch).
    ///
    /// Fails with `InvalidInput` if the frame is longer than [`SNAPLEN`] or the timestamp does
    /// not fit the format's 32-bit seconds field.
    pub fn write_packet(&mut self, ts_nanos: u64, frame: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(ts_nanos / 1_000_000_000)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timestamp beyond year 2106"))?;
        let sub_ns = (ts_nanos % 1_000_000_000) as u32;
        let frac = if self.nanosecond { sub_ns } else { sub_ns / 1_000 };
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than snaplen"))?;
        let stored = len.min(self.snaplen);
        let mut rec = [0u8; RECORD_HEADER_LEN];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&frac.to_le_bytes());
        rec[8..12].copy_from_slice(&stored.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&frame[..stored as usize])?;
        self.packets += 1;
        self.bytes += (RECORD_HEADER_LEN as u32 + stored) as u64;
        Ok(())
    }

    /// Number of frames written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Number of file bytes written so far (headers included).
    pub fn file_bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new(), false).unwrap();
        w.write_packet(1_767_225_600_123_456_789, &[0xaa; 60]).unwrap();
        let buf = w.into_inner();
        assert_eq!(
            &buf[..24],
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]
        );
        assert_eq!(u32::from_le_bytes(buf[24..28].try_into().unwrap()), 1_767_225_600);
        assert_eq!(u32::from_le_bytes(buf[28..32].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(buf[32..36].try_into().unwrap()), 60);
        assert_eq!(u32::from_le_bytes(buf[36..40].try_into().unwrap()), 60);
        assert_eq!(buf.len(), 24 + 16 + 60);
    }

    #[test]
    fn nanosecond_magic_and_fraction() {
        let mut w = PcapWriter::new(Vec::new(), true).unwrap();
        w.write_packet(5_000_000_007, &[0; 14]).unwrap();
        assert_eq!(w.stored_timestamp(5_000_000_007), 5_000_000_007);
        let buf = w.into_inner();
        assert_eq!(&buf[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(buf[24..28].try_into().unwrap()), 5);
        assert_eq!(u32::from_le_bytes(buf[28..32].try_into().unwrap()), 7);
    }

    #[test]
    fn rejects_out_of_range_inputs() {
        let mut w = PcapWriter::new(Vec::new(), false).unwrap();
        let kind = |r: io::Result<()>| r.err().map(|e| e.kind());
        assert_eq!(kind(w.write_packet(u64::MAX, &[0; 60])), Some(io::ErrorKind::InvalidInput));
        assert_eq!(
            kind(w.write_packet(0, &vec![0; SNAPLEN as usize + 1])),
            Some(io::ErrorKind::InvalidInput)
        );
        assert_eq!(w.packets(), 0);
        assert_eq!(w.stored_timestamp(1_999), 1_000);
    }

    #[test]
    fn snaplen_cuts_frames_but_keeps_their_length() {
        let mut w = PcapWriter::with_snaplen(Vec::new(), false, 64).unwrap();
        w.write_packet(1_000_000_000, &[7; 1514]).unwrap();
        let buf = w.into_inner();
        assert_eq!(u32::from_le_bytes(buf[16..20].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(buf[32..36].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(buf[36..40].try_into().unwrap()), 1514);
        assert_eq!(buf.len(), 24 + 16 + 64);
    }
}
