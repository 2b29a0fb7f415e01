//! pcap and pcapng capture files: the container layer.
//!
//! A [`CaptureReader`] streams any [`Read`] (a file of tens of GB, stdin) through one internal
//! buffer and yields [`Frame`]s: link-layer bytes borrowed from that buffer plus their timestamp,
//! link type, interface and original length. It does not look inside the frames; that is
//! [`crate::packet::decode`]. [`CaptureSliceReader`] does the same over a byte slice without
//! copying, and its frames borrow the slice itself.
//!
//! The format is detected from the first bytes, never from a file name:
//! - pcap with microsecond (`0xa1b2c3d4`) or nanosecond (`0xa1b23c4d`) timestamps, either byte
//!   order;
//! - pcapng: any number of sections (each with its own byte order and interfaces), Interface
//!   Description Blocks (link type, snaplen, `if_tsresol`, `if_tsoffset`), Enhanced, Simple and
//!   obsolete Packet Blocks; every other block type is skipped.
//!
//! Hostile input: lengths are checked before use, no allocation is sized by a wire value beyond
//! [`MAX_RECORD_LEN`] (the buffer grows only as data arrives), and a damaged stream ends with an error counted in [`CaptureStats`] after
//! every frame before the damage was delivered. Input that ends inside a record (a file cut
//! short, or still being written) ends the stream cleanly with [`CaptureStats::truncated`] set.

use std::io::{self, Read};

use serde::Serialize;

use crate::record::{LinkType, UnixNanos};

mod source;
use source::{ReadSource, SliceSource, Source};

/// Largest pcapng block or pcap record the reader accepts; anything larger is corrupt framing
/// and is refused rather than buffered.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// A pcap record may exceed the file's snaplen (some writers set it to 0 or too low), but not
/// this floor nor the snaplen, whichever is larger.
pub const MIN_PCAP_CAPLEN_LIMIT: u32 = 256 << 10;

/// Default size of the [`CaptureReader`] buffer; it grows (up to [`MAX_RECORD_LEN`] plus a record
/// header) only for records larger than itself.
pub const DEFAULT_BUFFER_SIZE: usize = 1 << 20;

/// Interfaces kept per pcapng section; further IDBs are counted as errors. Bounds the memory a
/// hostile file can make the reader hold.
pub const MAX_INTERFACES: usize = 65_536;

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const PCAP_FILE_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const BLOCK_SECTION_HEADER: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const BLOCK_INTERFACE_DESCRIPTION: u32 = 1;
const BLOCK_PACKET_OBSOLETE: u32 = 2;
const BLOCK_SIMPLE_PACKET: u32 = 3;
const BLOCK_ENHANCED_PACKET: u32 = 6;
/// Type, total length, trailing total length.
const BLOCK_MIN_LEN: usize = 12;
/// Block header, byte-order magic, major, minor, section length, trailing length.
const SECTION_HEADER_MIN_LEN: usize = 28;
const OPT_END_OF_OPTIONS: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Why a capture could not be opened or read further.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The input does not start with a pcap or pcapng magic number (or is empty).
    #[error("not a pcap or pcapng capture")]
    NotACapture,
    /// The input starts like a capture but ends inside its file header.
    #[error("capture file header is truncated")]
    TruncatedHeader,
    /// A pcapng section declares a major version other than 1 (an incompatible format).
    #[error("unsupported pcapng version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    /// A record or block declares a length above the reader's limit: the framing is corrupt.
    #[error("record at byte {offset} declares {len} bytes, above the {limit}-byte limit")]
    RecordTooLarge { offset: u64, len: u64, limit: u64 },
    /// A pcapng block's total length is below the minimum or not a multiple of 4.
    #[error("pcapng block at byte {offset} has an invalid length {len}")]
    BadBlockLength { offset: u64, len: u32 },
    /// A pcapng block's trailing length differs from its leading one: the framing is lost.
    #[error("pcapng block at byte {offset}: trailing length {trailer} differs from length {len}")]
    BlockLengthMismatch { offset: u64, len: u32, trailer: u32 },
    /// A pcapng section header inside the file has no valid byte-order magic.
    #[error("pcapng section header at byte {offset} has a bad byte-order magic")]
    BadByteOrderMagic { offset: u64 },
    /// Reading the input failed. The reader's state is unchanged, so the call can be retried.
    #[error("reading the capture: {0}")]
    Io(#[from] io::Error),
}

/// The container format detected from the input's magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CaptureFormat {
    /// Classic libpcap: one link type for the whole file.
    Pcap {
        /// Nanosecond timestamps (magic `0xa1b23c4d`) rather than microseconds.
        nanos: bool,
        /// Written big-endian.
        big_endian: bool,
        version_major: u16,
        version_minor: u16,
        link: LinkType,
        snaplen: u32,
    },
    /// pcapng: byte order, interfaces and link types are per section.
    Pcapng,
}

/// How a pcapng interface's timestamp units convert to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampScale {
    /// Units of 10^-k s with k <= 9.
    Multiply(u64),
    /// Units of 10^-k s with k > 9.
    Divide(u64),
    /// Units of 2^-k s.
    BinaryFraction(u32),
    /// Units too small to amount to a nanosecond even at u64::MAX.
    Zero,
}

impl TimestampScale {
    fn from_tsresol(tsresol: u8) -> Self {
        let exponent = u32::from(tsresol & 0x7f);
        if tsresol & 0x80 != 0 {
            return TimestampScale::BinaryFraction(exponent);
        }
        match 9u32.checked_sub(exponent) {
            Some(up) => TimestampScale::Multiply(10u64.pow(up)),
            None => match 10u64.checked_pow(exponent - 9) {
                Some(divisor) => TimestampScale::Divide(divisor),
                None => TimestampScale::Zero,
            },
        }
    }

    #[inline]
    fn to_nanos(self, units: u64) -> u64 {
        match self {
            TimestampScale::Multiply(factor) => units.saturating_mul(factor),
            TimestampScale::Divide(divisor) => units / divisor,
            TimestampScale::BinaryFraction(exponent) => {
                // exponent <= 127, so the shift is in range; the product fits in u128.
                let nanos = (u128::from(units) * u128::from(NANOS_PER_SEC)) >> exponent;
                u64::try_from(nanos).unwrap_or(u64::MAX)
            }
            TimestampScale::Zero => 0,
        }
    }
}

/// One capture interface: the pcap file itself, or a pcapng Interface Description Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureInterface {
    pub link: LinkType,
    /// Maximum captured bytes per packet; 0 means unlimited.
    pub snaplen: u32,
    /// Raw `if_tsresol`: bit 7 clear means units of 10^-n s, set means 2^-n s (n = low 7 bits).
    pub tsresol: u8,
    /// `if_tsoffset`: seconds added to every timestamp of this interface.
    pub ts_offset_secs: i64,
    scale: TimestampScale,
    offset_nanos: i128,
}

impl CaptureInterface {
    fn new(link: LinkType, snaplen: u32, tsresol: u8, ts_offset_secs: i64) -> Self {
        CaptureInterface {
            link,
            snaplen,
            tsresol,
            ts_offset_secs,
            scale: TimestampScale::from_tsresol(tsresol),
            offset_nanos: i128::from(ts_offset_secs) * i128::from(NANOS_PER_SEC),
        }
    }

    /// Converts a pcapng timestamp in this interface's units to Unix time (saturating at both
    /// ends of `UnixNanos`).
    #[inline]
    fn timestamp(&self, units: u64) -> UnixNanos {
        let nanos = self.scale.to_nanos(units);
        if self.offset_nanos == 0 {
            return UnixNanos(nanos);
        }
        let shifted = (i128::from(nanos) + self.offset_nanos).max(0);
        UnixNanos(u64::try_from(shifted).unwrap_or(u64::MAX))
    }
}

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub time: UnixNanos,
    pub link: LinkType,
    /// pcapng interface index within the current section (0 for pcap).
    pub interface: u32,
    /// The captured bytes, starting at the link-layer header.
    pub data: &'a [u8],
    /// The frame's original length on the wire (at least `data.len()` in well-formed files).
    pub wire_len: u32,
}

/// What a reader has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    /// Frames delivered.
    pub frames: u64,
    /// Input bytes consumed: file header, records and blocks (not a truncated tail).
    pub bytes_read: u64,
    /// pcapng sections (Section Header Blocks) read; 0 for pcap.
    pub sections: u64,
    /// pcapng blocks that carry no frame and were skipped (name resolution, interface statistics,
    /// decryption secrets, custom and unknown types).
    pub skipped_blocks: u64,
    /// Records that could not be used: malformed packet or interface blocks (skipped), packets on
    /// undeclared interfaces (skipped), a truncated tail, or the framing error that ended the
    /// stream.
    pub decode_errors: u64,
    /// The input ended inside a record (a file cut short, or still being written).
    pub truncated: bool,
}

/// Where a frame is, in the source's backing bytes, and what it is.
#[derive(Debug, Clone, Copy)]
struct FrameMeta {
    time: UnixNanos,
    link: LinkType,
    interface: u32,
    start: usize,
    len: usize,
    wire_len: u32,
}

impl FrameMeta {
    #[inline]
    fn frame<'a>(&self, backing: &'a [u8]) -> Frame<'a> {
        let data = backing.get(self.start..self.start.saturating_add(self.len)).unwrap_or_default();
        Frame { time: self.time, link: self.link, interface: self.interface, data, wire_len: self.wire_len }
    }
}

#[inline(always)]
fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> u16 {
    // Callers check lengths first; a short slice reads as 0 instead of panicking.
    let Some(&[a, b]) = bytes.get(at..at.wrapping_add(2)) else { return 0 };
    if big_endian { u16::from_be_bytes([a, b]) } else { u16::from_le_bytes([a, b]) }
}

#[inline(always)]
fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let Some(&[a, b, c, d]) = bytes.get(at..at.wrapping_add(4)) else { return 0 };
    if big_endian { u32::from_be_bytes([a, b, c, d]) } else { u32::from_le_bytes([a, b, c, d]) }
}

fn read_i64(bytes: &[u8], at: usize, big_endian: bool) -> i64 {
    let Some(word) = bytes.get(at..at.wrapping_add(8)).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
        return 0;
    };
    if big_endian { i64::from_be_bytes(word) } else { i64::from_le_bytes(word) }
}

/// pcap LinkType field: the link type proper is in the low bits; bits 26..=31 carry FCS
/// information (draft-ietf-opsawg-pcap) that does not change how frames start.
fn pcap_link(network: u32) -> LinkType {
    LinkType::from_pcap(network & 0x03ff_ffff)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Pcap,
    Pcapng,
}

/// The format-independent state machine both readers drive.
#[derive(Debug)]
struct Parser {
    container: Container,
    format: CaptureFormat,
    /// Current byte order (pcap: the file's; pcapng: the current section's).
    big_endian: bool,
    /// pcap: 1 for nanosecond files, 1000 for microsecond ones.
    pcap_frac_nanos: u64,
    pcap_max_caplen: u32,
    /// pcap: one synthesized entry; pcapng: the current section's IDBs.
    interfaces: Vec<CaptureInterface>,
    /// Simple Packet Blocks carry no timestamp: they inherit the previous frame's.
    last_time: UnixNanos,
    stats: CaptureStats,
    done: bool,
}

/// A pcapng block's total length, checked: at least `min`, a multiple of 4, within the cap.
fn checked_block_len(len32: u32, min: usize, offset: u64) -> Result<usize, CaptureError> {
    let len = len32 as usize;
    if len > MAX_RECORD_LEN {
        return Err(CaptureError::RecordTooLarge {
            offset,
            len: u64::from(len32),
            limit: MAX_RECORD_LEN as u64,
        });
    }
    if len < min || !len.is_multiple_of(4) {
        return Err(CaptureError::BadBlockLength { offset, len: len32 });
    }
    Ok(len)
}

impl Parser {
    /// Detects the format and consumes the file header (pcap) or first section header (pcapng).
    fn open<S: Source>(src: &mut S) -> Result<Parser, CaptureError> {
        src.fill(PCAP_FILE_HEADER_LEN)?;
        let head = src.buffered();
        let Some(&magic_bytes) = head.first_chunk::<4>() else {
            return Err(if !head.is_empty() && is_magic_prefix(head) {
                CaptureError::TruncatedHeader
            } else {
                CaptureError::NotACapture
            });
        };
        let magic = u32::from_le_bytes(magic_bytes);
        let (nanos, big_endian) = match magic {
            PCAP_MAGIC_MICROS => (false, false),
            PCAP_MAGIC_NANOS => (true, false),
            m if m == PCAP_MAGIC_MICROS.swap_bytes() => (false, true),
            m if m == PCAP_MAGIC_NANOS.swap_bytes() => (true, true),
            BLOCK_SECTION_HEADER => return Self::open_pcapng(src),
            _ => return Err(CaptureError::NotACapture),
        };
        let Some(header) = head.first_chunk::<PCAP_FILE_HEADER_LEN>() else {
            return Err(CaptureError::TruncatedHeader);
        };
        let version_major = read_u16(header, 4, big_endian);
        let version_minor = read_u16(header, 6, big_endian);
        let snaplen = read_u32(header, 16, big_endian);
        // thiszone (offset 8) is 0 in practice and ignored by libpcap; sigfigs (12) is unused.
        let link = pcap_link(read_u32(header, 20, big_endian));
        let tsresol = if nanos { 9 } else { 6 };
        src.consume(PCAP_FILE_HEADER_LEN);
        let max_caplen = snaplen.max(MIN_PCAP_CAPLEN_LIMIT).min(MAX_RECORD_LEN as u32);
        Ok(Parser {
            container: Container::Pcap,
            format: CaptureFormat::Pcap { nanos, big_endian, version_major, version_minor, link, snaplen },
            big_endian,
            pcap_frac_nanos: if nanos { 1 } else { 1_000 },
            pcap_max_caplen: max_caplen,
            interfaces: vec![CaptureInterface::new(link, snaplen, tsresol, 0)],
            last_time: UnixNanos(0),
            stats: CaptureStats { bytes_read: PCAP_FILE_HEADER_LEN as u64, ..CaptureStats::default() },
            done: false,
        })
    }

    fn open_pcapng<S: Source>(src: &mut S) -> Result<Parser, CaptureError> {
        let head = src.buffered();
        let Some(first) = head.first_chunk::<BLOCK_MIN_LEN>() else {
            return Err(CaptureError::TruncatedHeader);
        };
        let bom = read_u32(first, 8, false);
        if bom != BYTE_ORDER_MAGIC && bom != BYTE_ORDER_MAGIC.swap_bytes() {
            return Err(CaptureError::NotACapture);
        }
        let mut parser = Parser {
            container: Container::Pcapng,
            format: CaptureFormat::Pcapng,
            big_endian: false,
            pcap_frac_nanos: 0,
            pcap_max_caplen: 0,
            interfaces: Vec::new(),
            last_time: UnixNanos(0),
            stats: CaptureStats::default(),
            done: false,
        };
        if !parser.section_header(src)? {
            return Err(CaptureError::TruncatedHeader);
        }
        Ok(parser)
    }

    fn next<S: Source>(&mut self, src: &mut S) -> Result<Option<FrameMeta>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let result = match self.container {
            Container::Pcap => self.next_pcap(src),
            Container::Pcapng => self.next_pcapng(src),
        };
        match result {
            Ok(Some(meta)) => {
                self.stats.frames += 1;
                Ok(Some(meta))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(CaptureError::Io(err)) => Err(CaptureError::Io(err)),
            Err(err) => {
                self.done = true;
                self.stats.decode_errors += 1;
                Err(err)
            }
        }
    }

    /// The input ended with `leftover` bytes of an incomplete record.
    #[cold]
    fn end_of_input(&mut self, leftover: usize) -> Option<FrameMeta> {
        if leftover > 0 {
            self.stats.truncated = true;
            self.stats.decode_errors += 1;
        }
        None
    }

    #[inline]
    fn next_pcap<S: Source>(&mut self, src: &mut S) -> Result<Option<FrameMeta>, CaptureError> {
        if src.buffered().len() < PCAP_RECORD_HEADER_LEN {
            src.fill(PCAP_RECORD_HEADER_LEN)?;
        }
        let buffered = src.buffered();
        let Some(header) = buffered.first_chunk::<PCAP_RECORD_HEADER_LEN>() else {
            return Ok(self.end_of_input(buffered.len()));
        };
        let be = self.big_endian;
        let ts_sec = read_u32(header, 0, be);
        let ts_frac = read_u32(header, 4, be);
        let caplen = read_u32(header, 8, be);
        let wire_len = read_u32(header, 12, be);
        if caplen > self.pcap_max_caplen {
            return Err(CaptureError::RecordTooLarge {
                offset: self.stats.bytes_read,
                len: u64::from(caplen),
                limit: u64::from(self.pcap_max_caplen),
            });
        }
        // caplen <= MAX_RECORD_LEN, so this cannot overflow and the buffer stays bounded.
        let total = PCAP_RECORD_HEADER_LEN + caplen as usize;
        if buffered.len() < total {
            src.fill(total)?;
            let available = src.buffered().len();
            if available < total {
                return Ok(self.end_of_input(available));
            }
        }
        // Both terms fit: u32 seconds * 1e9 + u32 * 1e3 < 2^63.
        let time = UnixNanos(u64::from(ts_sec) * NANOS_PER_SEC + u64::from(ts_frac) * self.pcap_frac_nanos);
        let start = src.pos() + PCAP_RECORD_HEADER_LEN;
        src.consume(total);
        self.stats.bytes_read += total as u64;
        let link = self.interfaces.first().map_or(LinkType::Other(u32::MAX), |i| i.link);
        Ok(Some(FrameMeta { time, link, interface: 0, start, len: caplen as usize, wire_len }))
    }

    fn next_pcapng<S: Source>(&mut self, src: &mut S) -> Result<Option<FrameMeta>, CaptureError> {
        loop {
            if src.buffered().len() < BLOCK_MIN_LEN {
                src.fill(BLOCK_MIN_LEN)?;
            }
            let buffered = src.buffered();
            let Some(head) = buffered.first_chunk::<BLOCK_MIN_LEN>() else {
                return Ok(self.end_of_input(buffered.len()));
            };
            let be = self.big_endian;
            let block_type = read_u32(head, 0, be);
            if block_type == BLOCK_SECTION_HEADER {
                if !self.section_header(src)? {
                    return Ok(None);
                }
                continue;
            }
            let offset = self.stats.bytes_read;
            let len32 = read_u32(head, 4, be);
            let len = checked_block_len(len32, BLOCK_MIN_LEN, offset)?;
            if buffered.len() < len {
                src.fill(len)?;
            }
            let buffered = src.buffered();
            let Some(block) = buffered.get(..len) else {
                return Ok(self.end_of_input(buffered.len()));
            };
            let trailer = read_u32(block, len - 4, be);
            if trailer != len32 {
                return Err(CaptureError::BlockLengthMismatch { offset, len: len32, trailer });
            }
            let body = block.get(8..len - 4).unwrap_or_default();
            let body_start = src.pos() + 8;
            let frame = match block_type {
                BLOCK_ENHANCED_PACKET => {
                    let interface = read_u32(body, 0, be);
                    self.timestamped_packet(body, 4, body_start, interface)
                }
                BLOCK_SIMPLE_PACKET => self.simple_packet(body, body_start),
                BLOCK_PACKET_OBSOLETE => {
                    // Interface id is 16 bits, followed by a 16-bit drops count.
                    let interface = u32::from(read_u16(body, 0, be));
                    self.timestamped_packet(body, 4, body_start, interface)
                }
                BLOCK_INTERFACE_DESCRIPTION => {
                    self.interface_description(body);
                    None
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                    None
                }
            };
            src.consume(len);
            self.stats.bytes_read += len as u64;
            if frame.is_some() {
                return Ok(frame);
            }
        }
    }

    /// Enhanced Packet Block or obsolete Packet Block: `body[fixed..]` holds timestamp (high,
    /// low), captured length, original length, then the data.
    #[inline]
    fn timestamped_packet(
        &mut self,
        body: &[u8],
        fixed: usize,
        body_start: usize,
        interface: u32,
    ) -> Option<FrameMeta> {
        let be = self.big_endian;
        let data_at = fixed + 16;
        let Some(room) = body.len().checked_sub(data_at) else { return self.block_error() };
        let ts_high = read_u32(body, fixed, be);
        let ts_low = read_u32(body, fixed + 4, be);
        let caplen = read_u32(body, fixed + 8, be) as usize;
        let wire_len = read_u32(body, fixed + 12, be);
        if caplen > room {
            return self.block_error();
        }
        let Some(iface) = self.interfaces.get(interface as usize) else { return self.block_error() };
        let time = iface.timestamp((u64::from(ts_high) << 32) | u64::from(ts_low));
        let link = iface.link;
        self.last_time = time;
        Some(FrameMeta { time, link, interface, start: body_start + data_at, len: caplen, wire_len })
    }

    /// Simple Packet Block: interface 0, no timestamp, captured length implied by the block.
    fn simple_packet(&mut self, body: &[u8], body_start: usize) -> Option<FrameMeta> {
        let Some(room) = body.len().checked_sub(4) else { return self.block_error() };
        let wire_len = read_u32(body, 0, self.big_endian);
        let Some(iface) = self.interfaces.first() else { return self.block_error() };
        // The block is padded to 32 bits: the original length tells how much of it is data.
        let mut len = room.min(wire_len as usize);
        if iface.snaplen != 0 {
            len = len.min(iface.snaplen as usize);
        }
        Some(FrameMeta {
            time: self.last_time,
            link: iface.link,
            interface: 0,
            start: body_start + 4,
            len,
            wire_len,
        })
    }

    fn interface_description(&mut self, body: &[u8]) {
        let be = self.big_endian;
        if body.len() < 8 || self.interfaces.len() >= MAX_INTERFACES {
            self.block_error();
            return;
        }
        let link = LinkType::from_pcap(u32::from(read_u16(body, 0, be)));
        let snaplen = read_u32(body, 4, be);
        let mut tsresol = 6;
        let mut ts_offset_secs = 0;
        let mut options = body.get(8..).unwrap_or_default();
        while let Some(option) = options.first_chunk::<4>() {
            let code = read_u16(option, 0, be);
            let len = usize::from(read_u16(option, 2, be));
            if code == OPT_END_OF_OPTIONS {
                break;
            }
            let Some(value) = options.get(4..4 + len) else {
                // Keep the interface with what was read: its packets are still usable.
                self.stats.decode_errors += 1;
                break;
            };
            match (code, value) {
                (OPT_IF_TSRESOL, &[resolution]) => tsresol = resolution,
                (OPT_IF_TSOFFSET, _) if len == 8 => ts_offset_secs = read_i64(value, 0, be),
                _ => {}
            }
            // Values are padded to 32 bits; each option advances at least 4 bytes.
            options = options.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
        }
        self.interfaces.push(CaptureInterface::new(link, snaplen, tsresol, ts_offset_secs));
    }

    #[cold]
    fn block_error(&mut self) -> Option<FrameMeta> {
        self.stats.decode_errors += 1;
        None
    }

    /// Consumes a Section Header Block at the start of `src` (at least 12 bytes buffered).
    /// Returns false when the input ends inside it.
    fn section_header<S: Source>(&mut self, src: &mut S) -> Result<bool, CaptureError> {
        let offset = self.stats.bytes_read;
        let head = src.buffered();
        let big_endian = match read_u32(head, 8, false) {
            BYTE_ORDER_MAGIC => false,
            bom if bom == BYTE_ORDER_MAGIC.swap_bytes() => true,
            _ => return Err(CaptureError::BadByteOrderMagic { offset }),
        };
        let len32 = read_u32(head, 4, big_endian);
        let len = checked_block_len(len32, SECTION_HEADER_MIN_LEN, offset)?;
        src.fill(len)?;
        let buffered = src.buffered();
        let Some(block) = buffered.get(..len) else {
            self.end_of_input(buffered.len());
            return Ok(false);
        };
        let trailer = read_u32(block, len - 4, big_endian);
        if trailer != len32 {
            return Err(CaptureError::BlockLengthMismatch { offset, len: len32, trailer });
        }
        let major = read_u16(block, 12, big_endian);
        let minor = read_u16(block, 14, big_endian);
        if major != 1 {
            return Err(CaptureError::UnsupportedVersion { major, minor });
        }
        src.consume(len);
        self.stats.bytes_read += len as u64;
        self.stats.sections += 1;
        self.big_endian = big_endian;
        self.interfaces.clear();
        Ok(true)
    }
}

/// Whether `head` (shorter than a magic number) could be the start of one.
fn is_magic_prefix(head: &[u8]) -> bool {
    [PCAP_MAGIC_MICROS, PCAP_MAGIC_NANOS, BLOCK_SECTION_HEADER]
        .iter()
        .flat_map(|magic| [magic.to_le_bytes(), magic.to_be_bytes()])
        .any(|bytes| bytes.starts_with(head))
}

/// Streams frames out of a pcap or pcapng capture read from any [`Read`].
///
/// ```
/// # use rampart_telemetry::capture::{CaptureReader, CaptureError};
/// # fn count(file: std::fs::File) -> Result<u64, CaptureError> {
/// let mut reader = CaptureReader::new(file)?;
/// let mut bytes = 0u64;
/// while let Some(frame) = reader.next_frame()? {
///     bytes += frame.data.len() as u64;
/// }
/// # Ok(reader.stats().frames) }
/// ```
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: ReadSource<R>,
    parser: Parser,
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the file header. No need to wrap `reader` in a `BufReader`.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        Self::with_buffer_size(reader, DEFAULT_BUFFER_SIZE)
    }

    /// Like [`CaptureReader::new`] with a given initial buffer size (clamped to 64 bytes ..
    /// [`MAX_RECORD_LEN`]); the buffer still grows for a larger record.
    pub fn with_buffer_size(reader: R, size: usize) -> Result<Self, CaptureError> {
        let size = size.clamp(64, MAX_RECORD_LEN);
        let mut src = ReadSource::new(reader, size);
        let parser = Parser::open(&mut src)?;
        Ok(CaptureReader { src, parser })
    }

    pub fn format(&self) -> CaptureFormat {
        self.parser.format
    }

    /// The interfaces of the current pcapng section (for pcap, the file's single link type).
    pub fn interfaces(&self) -> &[CaptureInterface] {
        &self.parser.interfaces
    }

    /// The next frame, `Ok(None)` at the end of the input (or after a truncated tail, see
    /// [`CaptureStats::truncated`]). An `Err` other than [`CaptureError::Io`] means the framing
    /// is lost; every later call returns `Ok(None)`.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.parser.next(&mut self.src)? {
            Some(meta) => Ok(Some(meta.frame(self.src.backing()))),
            None => Ok(None),
        }
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.parser.stats
    }

    /// Gives the underlying reader back (buffered, unread bytes are lost).
    pub fn into_inner(self) -> R {
        self.src.into_inner()
    }
}

/// Frames out of a capture held in memory, without copying: frames borrow the slice, so they
/// outlive the reader's borrow. Also an [`Iterator`] of `Result<Frame, CaptureError>`.
#[derive(Debug)]
pub struct CaptureSliceReader<'a> {
    src: SliceSource<'a>,
    parser: Parser,
}

impl<'a> CaptureSliceReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, CaptureError> {
        let mut src = SliceSource::new(bytes);
        let parser = Parser::open(&mut src)?;
        Ok(CaptureSliceReader { src, parser })
    }

    pub fn format(&self) -> CaptureFormat {
        self.parser.format
    }

    /// The interfaces of the current pcapng section (for pcap, the file's single link type).
    pub fn interfaces(&self) -> &[CaptureInterface] {
        &self.parser.interfaces
    }

    /// Same contract as [`CaptureReader::next_frame`].
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'a>>, CaptureError> {
        match self.parser.next(&mut self.src)? {
            Some(meta) => Ok(Some(meta.frame(self.src.data()))),
            None => Ok(None),
        }
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.parser.stats
    }
}

impl<'a> Iterator for CaptureSliceReader<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

#[cfg(test)]
mod tests;
