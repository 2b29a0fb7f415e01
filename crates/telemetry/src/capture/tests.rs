use std::io;

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Builders (checked against hand-written byte vectors below, so a symmetric mistake in a builder
// and the reader cannot go unnoticed).

fn put16(out: &mut Vec<u8>, be: bool, value: u16) {
    out.extend_from_slice(&if be { value.to_be_bytes() } else { value.to_le_bytes() });
}

fn put32(out: &mut Vec<u8>, be: bool, value: u32) {
    out.extend_from_slice(&if be { value.to_be_bytes() } else { value.to_le_bytes() });
}

fn pcap_header(be: bool, nanos: bool, snaplen: u32, network: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, be, if nanos { PCAP_MAGIC_NANOS } else { PCAP_MAGIC_MICROS });
    put16(&mut out, be, 2);
    put16(&mut out, be, 4);
    put32(&mut out, be, 0);
    put32(&mut out, be, 0);
    put32(&mut out, be, snaplen);
    put32(&mut out, be, network);
    out
}

fn pcap_record(out: &mut Vec<u8>, be: bool, sec: u32, frac: u32, data: &[u8], wire_len: u32) {
    put32(out, be, sec);
    put32(out, be, frac);
    put32(out, be, data.len() as u32);
    put32(out, be, wire_len);
    out.extend_from_slice(data);
}

/// A pcapng writer; `be` is the byte order of the current section.
struct Ng {
    be: bool,
    out: Vec<u8>,
    /// End offset of every block written, to check truncation behavior.
    boundaries: Vec<usize>,
}

impl Ng {
    fn new(be: bool) -> Self {
        let mut ng = Ng { be, out: Vec::new(), boundaries: Vec::new() };
        ng.section(be);
        ng
    }

    fn section(&mut self, be: bool) {
        self.be = be;
        let mut body = Vec::new();
        put32(&mut body, be, BYTE_ORDER_MAGIC);
        put16(&mut body, be, 1);
        put16(&mut body, be, 0);
        body.extend_from_slice(&(-1i64).to_le_bytes());
        self.block(BLOCK_SECTION_HEADER, &body);
    }

    fn block(&mut self, block_type: u32, body: &[u8]) {
        let be = self.be;
        let padded = body.len().next_multiple_of(4);
        let len = (12 + padded) as u32;
        put32(&mut self.out, be, block_type);
        put32(&mut self.out, be, len);
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len() + padded - body.len(), 0);
        put32(&mut self.out, be, len);
        self.boundaries.push(self.out.len());
    }

    fn idb(&mut self, link: u16, snaplen: u32, options: &[(u16, Vec<u8>)]) {
        let be = self.be;
        let mut body = Vec::new();
        put16(&mut body, be, link);
        put16(&mut body, be, 0);
        put32(&mut body, be, snaplen);
        for (code, value) in options {
            put16(&mut body, be, *code);
            put16(&mut body, be, value.len() as u16);
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        if !options.is_empty() {
            put32(&mut body, be, 0);
        }
        self.block(BLOCK_INTERFACE_DESCRIPTION, &body);
    }

    fn epb(&mut self, interface: u32, ts: u64, data: &[u8], wire_len: u32) {
        let be = self.be;
        let mut body = Vec::new();
        put32(&mut body, be, interface);
        put32(&mut body, be, (ts >> 32) as u32);
        put32(&mut body, be, ts as u32);
        put32(&mut body, be, data.len() as u32);
        put32(&mut body, be, wire_len);
        body.extend_from_slice(data);
        self.block(BLOCK_ENHANCED_PACKET, &body);
    }

    fn spb(&mut self, wire_len: u32, data: &[u8]) {
        let mut body = Vec::new();
        put32(&mut body, self.be, wire_len);
        body.extend_from_slice(data);
        self.block(BLOCK_SIMPLE_PACKET, &body);
    }

    fn obsolete_packet(&mut self, interface: u16, ts: u64, data: &[u8], wire_len: u32) {
        let be = self.be;
        let mut body = Vec::new();
        put16(&mut body, be, interface);
        put16(&mut body, be, 7); // drops count
        put32(&mut body, be, (ts >> 32) as u32);
        put32(&mut body, be, ts as u32);
        put32(&mut body, be, data.len() as u32);
        put32(&mut body, be, wire_len);
        body.extend_from_slice(data);
        self.block(BLOCK_PACKET_OBSOLETE, &body);
    }
}

fn tsoffset(be: bool, secs: i64) -> (u16, Vec<u8>) {
    (OPT_IF_TSOFFSET, if be { secs.to_be_bytes().to_vec() } else { secs.to_le_bytes().to_vec() })
}

// ---------------------------------------------------------------------------------------------
// Reading helpers.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    time: u64,
    link: LinkType,
    interface: u32,
    data: Vec<u8>,
    wire_len: u32,
}

impl From<Frame<'_>> for Owned {
    fn from(f: Frame<'_>) -> Self {
        Owned {
            time: f.time.0,
            link: f.link,
            interface: f.interface,
            data: f.data.to_vec(),
            wire_len: f.wire_len,
        }
    }
}

#[derive(Debug)]
struct Outcome {
    frames: Vec<Owned>,
    stats: CaptureStats,
    error: Option<String>,
}

fn read_slice(bytes: &[u8]) -> Result<Outcome, CaptureError> {
    let mut reader = CaptureSliceReader::new(bytes)?;
    let mut frames = Vec::new();
    let mut error = None;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => frames.push(frame.into()),
            Ok(None) => break,
            Err(err) => {
                error = Some(err.to_string());
                assert!(matches!(reader.next_frame(), Ok(None)), "stream must stay ended after an error");
                break;
            }
        }
    }
    Ok(Outcome { frames, stats: reader.stats().clone(), error })
}

/// A reader that hands out at most `chunk` bytes per call and interrupts every other call.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
    interrupt: bool,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn read_stream(bytes: &[u8], buffer: usize, chunk: usize) -> Result<Outcome, CaptureError> {
    let trickle = Trickle { data: bytes, chunk: chunk.max(1), interrupt: false };
    let mut reader = CaptureReader::with_buffer_size(trickle, buffer)?;
    let mut frames = Vec::new();
    let mut error = None;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => frames.push(frame.into()),
            Ok(None) => break,
            Err(err) => {
                error = Some(err.to_string());
                break;
            }
        }
    }
    Ok(Outcome { frames, stats: reader.stats().clone(), error })
}

/// Reads with both readers and checks they agree exactly.
fn read_both(bytes: &[u8]) -> Result<Outcome, CaptureError> {
    let slice = read_slice(bytes);
    let stream = read_stream(bytes, 64, 7);
    match (&slice, &stream) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.frames, b.frames);
            assert_eq!(a.stats, b.stats);
            assert_eq!(a.error, b.error);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("readers disagree: {slice:?} vs {stream:?}"),
    }
    slice
}

fn frame(time: u64, link: LinkType, interface: u32, data: &[u8], wire_len: u32) -> Owned {
    Owned { time, link, interface, data: data.to_vec(), wire_len }
}

// ---------------------------------------------------------------------------------------------
// pcap.

#[test]
fn pcap_hand_written_little_endian_micros() {
    #[rustfmt::skip]
    let bytes = [
        0xd4, 0xc3, 0xb2, 0xa1, // magic, little-endian microseconds
        0x02, 0x00, 0x04, 0x00, // version 2.4
        0x00, 0x00, 0x00, 0x00, // thiszone
        0x00, 0x00, 0x00, 0x00, // sigfigs
        0xff, 0xff, 0x00, 0x00, // snaplen 65535
        0x01, 0x00, 0x00, 0x00, // LINKTYPE_ETHERNET
        0x10, 0x32, 0x54, 0x76, // ts_sec 0x76543210
        0x40, 0x42, 0x0f, 0x00, // ts_usec 999_999 + 1 = 1_000_000 (out of range, kept as is)
        0x03, 0x00, 0x00, 0x00, // caplen 3
        0x3c, 0x00, 0x00, 0x00, // orig len 60
        0xaa, 0xbb, 0xcc,
    ];
    let outcome = read_both(&bytes).unwrap();
    let expected_time = 0x7654_3210u64 * 1_000_000_000 + 1_000_000 * 1_000;
    assert_eq!(outcome.frames, vec![frame(expected_time, LinkType::Ethernet, 0, &[0xaa, 0xbb, 0xcc], 60)]);
    assert_eq!(outcome.stats.frames, 1);
    assert_eq!(outcome.stats.bytes_read, bytes.len() as u64);
    assert_eq!(outcome.stats.decode_errors, 0);
    assert!(!outcome.stats.truncated);
    let reader = CaptureSliceReader::new(&bytes).unwrap();
    assert_eq!(
        reader.format(),
        CaptureFormat::Pcap {
            nanos: false,
            big_endian: false,
            version_major: 2,
            version_minor: 4,
            link: LinkType::Ethernet,
            snaplen: 65535
        }
    );
    assert_eq!(reader.interfaces().len(), 1);
}

#[test]
fn pcap_hand_written_big_endian_nanos() {
    #[rustfmt::skip]
    let bytes = [
        0xa1, 0xb2, 0x3c, 0x4d, // magic, big-endian nanoseconds
        0x00, 0x02, 0x00, 0x04,
        0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0x00, 0x04, 0x00, 0x00, // snaplen 262144
        0x00, 0x00, 0x00, 0x65, // LINKTYPE_RAW (101)
        0x60, 0x00, 0x00, 0x01, // ts_sec 1610612737
        0x3b, 0x9a, 0xc9, 0xff, // ts_nsec 999_999_999
        0x00, 0x00, 0x00, 0x01, // caplen 1
        0x00, 0x00, 0x05, 0xdc, // orig len 1500
        0x45,
    ];
    let outcome = read_both(&bytes).unwrap();
    assert_eq!(outcome.frames, vec![frame(1_610_612_737_999_999_999, LinkType::Raw, 0, &[0x45], 1500)]);
}

#[test]
fn pcap_all_byte_orders_and_resolutions() {
    for be in [false, true] {
        for nanos in [false, true] {
            let mut bytes = pcap_header(be, nanos, 96, 113);
            pcap_record(&mut bytes, be, 1_700_000_000, 123_456, &[1, 2, 3, 4], 4);
            pcap_record(&mut bytes, be, 1_700_000_001, 0, &[], 0);
            pcap_record(&mut bytes, be, 0, 1, &[9; 96], 1514);
            let scale = if nanos { 1 } else { 1_000 };
            let outcome = read_both(&bytes).unwrap();
            assert_eq!(
                outcome.frames,
                vec![
                    frame(
                        1_700_000_000_000_000_000 + 123_456 * scale,
                        LinkType::LinuxSll,
                        0,
                        &[1, 2, 3, 4],
                        4
                    ),
                    frame(1_700_000_001_000_000_000, LinkType::LinuxSll, 0, &[], 0),
                    frame(scale, LinkType::LinuxSll, 0, &[9; 96], 1514),
                ],
                "be={be} nanos={nanos}"
            );
            match CaptureSliceReader::new(&bytes).unwrap().format() {
                CaptureFormat::Pcap { nanos: n, big_endian: b, snaplen: 96, .. } => {
                    assert_eq!((n, b), (nanos, be))
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn pcap_link_type_ignores_fcs_bits() {
    // FCS length 4 (bits 28..31) with the F bit (27): still Ethernet.
    let mut bytes = pcap_header(false, false, 65535, 1 | (4 << 28) | (1 << 27));
    pcap_record(&mut bytes, false, 1, 2, &[0; 14], 14);
    assert_eq!(read_both(&bytes).unwrap().frames[0].link, LinkType::Ethernet);
}

#[test]
fn pcap_record_above_limit_is_a_framing_error_after_earlier_frames() {
    let mut bytes = pcap_header(false, false, 65535, 1);
    pcap_record(&mut bytes, false, 1, 0, &[1; 10], 10);
    put32(&mut bytes, false, 2);
    put32(&mut bytes, false, 0);
    put32(&mut bytes, false, MIN_PCAP_CAPLEN_LIMIT + 1);
    put32(&mut bytes, false, 10);
    bytes.extend_from_slice(&[0; 64]);
    let outcome = read_both(&bytes).unwrap();
    assert_eq!(outcome.frames.len(), 1);
    assert!(outcome.error.unwrap().contains("above the 262144-byte limit"));
    assert_eq!(outcome.stats.decode_errors, 1);

    // A large snaplen raises the limit: a 300 KiB record is fine, even through a small buffer.
    let mut bytes = pcap_header(true, true, 400_000, 1);
    pcap_record(&mut bytes, true, 1, 0, &vec![7; 300_000], 300_000);
    pcap_record(&mut bytes, true, 2, 0, &[1; 10], 10);
    let outcome = read_both(&bytes).unwrap();
    assert_eq!(outcome.frames.len(), 2);
    assert_eq!(outcome.frames[0].data.len(), 300_000);
    assert!(outcome.error.is_none());
}

#[test]
fn pcap_truncated_at_every_offset_keeps_complete_records() {
    let mut bytes = pcap_header(false, true, 65535, 1);
    let mut boundaries = Vec::new();
    for i in 0..4u8 {
        pcap_record(&mut bytes, false, u32::from(i), 0, &vec![i; 20 + usize::from(i)], 60);
        boundaries.push(bytes.len());
    }
    for cut in 0..=bytes.len() {
        let result = read_both(&bytes[..cut]);
        if cut < PCAP_FILE_HEADER_LEN {
            let err = result.unwrap_err();
            if cut == 0 {
                assert!(matches!(err, CaptureError::NotACapture));
            } else {
                assert!(matches!(err, CaptureError::TruncatedHeader), "cut {cut}: {err}");
            }
            continue;
        }
        let outcome = result.unwrap();
        let complete = boundaries.iter().filter(|&&b| b <= cut).count();
        let at_boundary = cut == PCAP_FILE_HEADER_LEN || boundaries.contains(&cut);
        assert_eq!(outcome.frames.len(), complete, "cut {cut}");
        assert_eq!(outcome.stats.truncated, !at_boundary, "cut {cut}");
        assert_eq!(outcome.stats.decode_errors, u64::from(!at_boundary), "cut {cut}");
        assert!(outcome.error.is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// pcapng.

#[test]
fn pcapng_hand_written_big_endian() {
    #[rustfmt::skip]
    let bytes = [
        // Section Header Block, big-endian, version 1.0, section length -1.
        0x0a, 0x0d, 0x0d, 0x0a, 0x00, 0x00, 0x00, 0x1c,
        0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x01, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x00, 0x00, 0x00, 0x1c,
        // Interface Description Block: Ethernet, snaplen 0, if_tsresol = 3 (milliseconds).
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x20,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x09, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x20,
        // Enhanced Packet Block: interface 0, ts 0x1_00000002 ms, caplen 5, orig 64.
        0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x28,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x05,
        0x00, 0x00, 0x00, 0x40, 0x01, 0x02, 0x03, 0x04,
        0x05, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x28,
    ];
    let outcome = read_both(&bytes).unwrap();
    let ms = (1u64 << 32) + 2;
    assert_eq!(outcome.frames, vec![frame(ms * 1_000_000, LinkType::Ethernet, 0, &[1, 2, 3, 4, 5], 64)]);
    assert_eq!(outcome.stats.sections, 1);
    assert_eq!(outcome.stats.bytes_read, bytes.len() as u64);

    // The builder produces the same bytes.
    let mut ng = Ng::new(true);
    ng.idb(1, 0, &[(OPT_IF_TSRESOL, vec![3])]);
    ng.epb(0, ms, &[1, 2, 3, 4, 5], 64);
    assert_eq!(ng.out, bytes);
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_skipped_blocks() {
    let mut ng = Ng::new(false);
    ng.idb(1, 65535, &[]); // 0: Ethernet, microseconds
    ng.block(4, &[1, 0, 4, 0, 10, 0, 0, 1, 0, 0, 0, 0]); // Name Resolution Block
    ng.idb(101, 0, &[(OPT_IF_TSRESOL, vec![9]), (2, b"eth1".to_vec())]); // 1: Raw, nanoseconds
    ng.idb(113, 0, &[(OPT_IF_TSRESOL, vec![0x80 | 10]), tsoffset(false, 1_000)]); // 2: 2^-10 s, +1000 s
    ng.epb(0, 1_500_000_000_123_456, &[0xe0; 14], 60);
    ng.epb(1, 1_500_000_000_123_456_789, &[0x45; 20], 20);
    ng.epb(2, 5 * 1024 + 512, &[0; 16], 16);
    ng.block(5, &[0; 20]); // Interface Statistics Block
    ng.block(0x0000_0bad, &[1, 2, 3]); // custom block
    ng.block(0x4242_4242, &[]); // unknown type
    ng.spb(3, &[0xde, 0xad, 0xbe]); // interface 0, previous frame's time, padding dropped
    ng.epb(3, 0, &[1], 1); // undeclared interface: skipped, counted
    ng.obsolete_packet(1, 42, &[0x60; 40], 40);

    ng.section(true); // big-endian section: interfaces reset
    ng.epb(1, 0, &[1], 1); // interface 1 belonged to the previous section
    ng.idb(228, 4, &[(OPT_IF_TSRESOL, vec![0]), tsoffset(true, -5)]); // 0: IPv4, seconds, -5 s
    ng.epb(0, 1_000, &[0x45, 0, 0, 20], 20);
    ng.spb(20, &[0x45, 0, 0, 20, 1, 2]); // snaplen 4 caps the data

    let outcome = read_both(&ng.out).unwrap();
    assert_eq!(
        outcome.frames,
        vec![
            frame(1_500_000_000_123_456_000, LinkType::Ethernet, 0, &[0xe0; 14], 60),
            frame(1_500_000_000_123_456_789, LinkType::Raw, 1, &[0x45; 20], 20),
            frame(1_005_500_000_000, LinkType::LinuxSll, 2, &[0; 16], 16),
            frame(1_005_500_000_000, LinkType::Ethernet, 0, &[0xde, 0xad, 0xbe], 3),
            frame(42, LinkType::Raw, 1, &[0x60; 40], 40),
            frame(995_000_000_000, LinkType::Ipv4, 0, &[0x45, 0, 0, 20], 20),
            frame(995_000_000_000, LinkType::Ipv4, 0, &[0x45, 0, 0, 20], 20),
        ]
    );
    assert_eq!(
        outcome.stats,
        CaptureStats {
            frames: 7,
            bytes_read: ng.out.len() as u64,
            sections: 2,
            skipped_blocks: 4,
            decode_errors: 2,
            truncated: false,
        }
    );
    assert!(outcome.error.is_none());
    let mut reader = CaptureSliceReader::new(&ng.out).unwrap();
    assert_eq!(reader.format(), CaptureFormat::Pcapng);
    assert_eq!(reader.interfaces().len(), 0);
    reader.by_ref().for_each(drop);
    assert_eq!(reader.interfaces().len(), 1);
    assert_eq!(reader.interfaces()[0].ts_offset_secs, -5);
}

#[test]
fn timestamp_resolutions() {
    let ns = |tsresol: u8, units: u64| CaptureInterface::new(LinkType::Raw, 0, tsresol, 0).timestamp(units).0;
    assert_eq!(ns(6, 1), 1_000);
    assert_eq!(ns(0, 3), 3_000_000_000);
    assert_eq!(ns(9, 123), 123);
    assert_eq!(ns(12, 123_456), 123);
    assert_eq!(ns(19, u64::MAX), u64::MAX / 10_000_000_000);
    assert_eq!(ns(28, u64::MAX), 1);
    assert_eq!(ns(29, u64::MAX), 0);
    assert_eq!(ns(127, u64::MAX), 0);
    assert_eq!(ns(0x80, 2), 2_000_000_000);
    assert_eq!(ns(0x80 | 10, 1024 + 256), 1_250_000_000);
    assert_eq!(ns(0x80 | 30, 1 << 30), 1_000_000_000);
    assert_eq!(ns(0x80 | 127, u64::MAX), 0);
    assert_eq!(ns(0, u64::MAX), u64::MAX); // saturates
    assert_eq!(ns(0x80, u64::MAX), u64::MAX);
    let shifted =
        |offset: i64, units: u64| CaptureInterface::new(LinkType::Raw, 0, 9, offset).timestamp(units).0;
    assert_eq!(shifted(-1, 500), 0);
    assert_eq!(shifted(-1, 1_000_000_500), 500);
    assert_eq!(shifted(i64::MAX, 0), u64::MAX);
    assert_eq!(shifted(i64::MIN, u64::MAX), 0);
}

#[test]
fn pcapng_simple_packet_without_interface_is_counted() {
    let mut ng = Ng::new(false);
    ng.spb(4, &[1, 2, 3, 4]);
    ng.idb(1, 0, &[]);
    ng.spb(10, &[1, 2, 3, 4]); // block holds fewer bytes than the original length
    let outcome = read_both(&ng.out).unwrap();
    assert_eq!(outcome.frames, vec![frame(0, LinkType::Ethernet, 0, &[1, 2, 3, 4], 10)]);
    assert_eq!(outcome.stats.decode_errors, 1);
}

#[test]
fn pcapng_malformed_blocks_inside_valid_framing_are_skipped() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    ng.block(BLOCK_ENHANCED_PACKET, &[0; 12]); // too short for its fixed fields
    let mut body = Vec::new();
    for value in [0u32, 0, 0, 100, 100] {
        put32(&mut body, false, value); // caplen 100 in an 8-byte data area
    }
    body.extend_from_slice(&[0; 8]);
    ng.block(BLOCK_ENHANCED_PACKET, &body);
    ng.block(BLOCK_INTERFACE_DESCRIPTION, &[1, 0]); // too short
    ng.block(BLOCK_SIMPLE_PACKET, &[]); // too short
    // Options run past the block: the interface is kept with defaults, the error counted.
    ng.block(BLOCK_INTERFACE_DESCRIPTION, &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 40, 0]);
    ng.epb(1, 7, &[0x45], 1);
    let outcome = read_both(&ng.out).unwrap();
    assert_eq!(outcome.frames, vec![frame(7_000, LinkType::Raw, 1, &[0x45], 1)]);
    assert_eq!(outcome.stats.decode_errors, 5);
    assert!(outcome.error.is_none());
}

#[test]
fn pcapng_framing_errors_end_the_stream_after_earlier_frames() {
    let base = {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[]);
        ng.epb(0, 1, &[1, 2, 3], 3);
        ng.out
    };
    let check = |tail: &[u8], expected: &str| {
        let mut bytes = base.clone();
        bytes.extend_from_slice(tail);
        let outcome = read_both(&bytes).unwrap();
        assert_eq!(outcome.frames.len(), 1, "{expected}");
        let error = outcome.error.expect(expected);
        assert!(error.contains(expected), "{error} vs {expected}");
        assert_eq!(outcome.stats.decode_errors, 1);
    };
    check(&[6, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "invalid length 13");
    check(&[6, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0], "invalid length 8");
    check(&[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "invalid length 0");
    check(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], "above the 16777216-byte limit");
    check(&[6, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0], "trailing length 20");
    check(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4], "bad byte-order magic");
    let mut section = Ng::new(false);
    section.out[12] = 2; // major version 2
    check(&section.out, "unsupported pcapng version 2.0");
}

#[test]
fn pcapng_truncated_at_every_offset_keeps_complete_blocks() {
    let mut ng = Ng::new(true);
    let header_end = ng.out.len();
    ng.idb(1, 0, &[(OPT_IF_TSRESOL, vec![9])]);
    ng.epb(0, 10, &[1; 33], 60);
    ng.block(5, &[0; 8]);
    ng.epb(0, 20, &[2; 3], 60);
    ng.section(false);
    ng.idb(101, 0, &[]);
    ng.spb(5, &[3; 5]);
    let frame_ends = [ng.boundaries[2], ng.boundaries[4], ng.boundaries[7]];
    for cut in 0..=ng.out.len() {
        let result = read_both(&ng.out[..cut]);
        if cut < header_end {
            let err = result.unwrap_err();
            let expected_not = cut == 0;
            assert_eq!(matches!(err, CaptureError::NotACapture), expected_not, "cut {cut}: {err}");
            continue;
        }
        let outcome = result.unwrap();
        let complete = frame_ends.iter().filter(|&&end| end <= cut).count();
        let at_boundary = ng.boundaries.contains(&cut);
        assert_eq!(outcome.frames.len(), complete, "cut {cut}");
        assert_eq!(outcome.stats.truncated, !at_boundary, "cut {cut}");
        assert_eq!(outcome.stats.decode_errors, u64::from(!at_boundary), "cut {cut}");
        assert!(outcome.error.is_none(), "cut {cut}");
    }
}

#[test]
fn pcapng_interface_count_is_capped() {
    let mut ng = Ng::new(false);
    for _ in 0..=MAX_INTERFACES {
        ng.idb(1, 0, &[]);
    }
    let outcome = read_both(&ng.out).unwrap();
    assert_eq!(outcome.stats.decode_errors, 1);
}

#[test]
fn pcapng_large_block_grows_the_stream_buffer() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, &vec![0x55; 3 << 20], 3 << 20);
    ng.epb(0, 2, &[1; 60], 60);
    let outcome = read_stream(&ng.out, 4096, 1 << 16).unwrap();
    assert_eq!(outcome.frames.len(), 2);

    // A block that only claims to be large does not grow the buffer: input must arrive first.
    let mut ng = Ng::new(false);
    put32(&mut ng.out, false, BLOCK_ENHANCED_PACKET);
    put32(&mut ng.out, false, MAX_RECORD_LEN as u32);
    ng.out.extend_from_slice(&[0; 100]);
    let mut reader = CaptureReader::with_buffer_size(&ng.out[..], 4096).unwrap();
    assert!(reader.next_frame().unwrap().is_none());
    assert!(reader.stats().truncated);
    assert_eq!(reader.src.buffer_len(), 4096);
    assert_eq!(outcome.frames[0].data.len(), 3 << 20);
    assert!(outcome.frames[0].data.iter().all(|&b| b == 0x55));
    assert_eq!(outcome.frames[1].data, vec![1; 60]);
}

// ---------------------------------------------------------------------------------------------
// Detection and I/O.

#[test]
fn detection_is_by_content_only() {
    let not = |bytes: &[u8]| matches!(CaptureSliceReader::new(bytes), Err(CaptureError::NotACapture));
    let truncated =
        |bytes: &[u8]| matches!(CaptureSliceReader::new(bytes), Err(CaptureError::TruncatedHeader));
    assert!(not(b""));
    assert!(not(b"GIF89a........................"));
    assert!(not(b"{\"json\": true}                 "));
    assert!(not(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4])); // SHB type, no byte-order magic
    assert!(truncated(&[0xd4]));
    assert!(truncated(&[0xa1, 0xb2]));
    assert!(truncated(&[0x0a, 0x0d, 0x0d]));
    assert!(not(&[0xd4, 0xc4]));
    assert!(truncated(&pcap_header(false, false, 0, 1)[..23]));
    assert!(truncated(&Ng::new(false).out[..11]));
    assert!(truncated(&Ng::new(false).out[..27]));
    // A header and nothing else: a valid, empty capture.
    let header = pcap_header(false, false, 0, 1);
    let mut empty = CaptureSliceReader::new(&header).unwrap();
    assert!(empty.next_frame().unwrap().is_none());
    assert_eq!(CaptureError::NotACapture.to_string(), "not a pcap or pcapng capture");
}

#[test]
fn io_errors_propagate_and_reading_can_resume() {
    struct Flaky<'a> {
        data: &'a [u8],
        calls: u32,
    }
    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls == 3 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.data.len()).min(30);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let mut bytes = pcap_header(false, false, 65535, 1);
    for i in 0..3 {
        pcap_record(&mut bytes, false, i, 0, &[i as u8; 10], 10);
    }
    let mut reader = CaptureReader::with_buffer_size(Flaky { data: &bytes, calls: 0 }, 64).unwrap();
    let mut seen = Vec::new();
    let mut io_errors = 0;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => seen.push(frame.data[0]),
            Ok(None) => break,
            Err(CaptureError::Io(_)) => io_errors += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(seen, vec![0, 1, 2]);
    assert_eq!(io_errors, 1);
    assert_eq!(reader.stats().decode_errors, 0);
}

/// Cross-check with Wireshark's tools when they are installed: a pcap converted to pcapng by
/// `editcap`, and two pcaps of different link types merged into one multi-interface pcapng by
/// `mergecap`, must yield the frames of the originals.
#[test]
fn wireshark_tools_agree_when_installed() {
    let have =
        |tool: &str| std::process::Command::new(tool).arg("-h").output().is_ok_and(|o| o.status.success());
    if !have("editcap") || !have("mergecap") {
        // CI installs them (with tshark): there a missing tool is a failure, not a skip.
        assert!(
            std::env::var_os("RAMPART_REQUIRE_PEERS").is_none() && std::env::var_os("CI").is_none(),
            "editcap/mergecap are required (run scripts/test)"
        );
        eprintln!("editcap/mergecap not installed: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rampart-capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ether = pcap_header(false, false, 65535, 1);
    for i in 0..50u32 {
        let len = 60 + (i as usize * 7) % 200;
        pcap_record(&mut ether, false, 1_700_000_000 + i, i * 1_111, &vec![i as u8; len], len as u32 + 4);
    }
    let mut raw = pcap_header(true, true, 65535, 101);
    for i in 0..30u32 {
        pcap_record(&mut raw, true, 1_700_000_000 + i, i * 33_333_333 + 500, &[0x45, i as u8, 0, 20], 20);
    }
    let path = |name: &str| dir.join(name);
    std::fs::write(path("ether.pcap"), &ether).unwrap();
    std::fs::write(path("raw.pcap"), &raw).unwrap();
    let run = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    run(std::process::Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(path("ether.pcap"))
        .arg(path("ether.pcapng")));
    run(std::process::Command::new("mergecap")
        .args(["-F", "pcapng", "-w"])
        .arg(path("merged.pcapng"))
        .arg(path("ether.pcap"))
        .arg(path("raw.pcap")));

    let original = read_both(&ether).unwrap().frames;
    let converted = std::fs::read(path("ether.pcapng")).unwrap();
    let mut reader = CaptureReader::new(std::fs::File::open(path("ether.pcapng")).unwrap()).unwrap();
    assert_eq!(reader.format(), CaptureFormat::Pcapng);
    let mut streamed = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        streamed.push(Owned::from(frame));
    }
    assert_eq!(streamed, original);
    assert_eq!(read_both(&converted).unwrap().frames, original);

    let merged = read_both(&std::fs::read(path("merged.pcapng")).unwrap()).unwrap();
    let mut expected: Vec<Owned> = original.clone();
    expected.extend(read_both(&raw).unwrap().frames.into_iter().map(|f| Owned { interface: 1, ..f }));
    let key = |f: &Owned| (f.time, f.interface);
    expected.sort_by_key(key);
    let mut got = merged.frames.clone();
    got.sort_by_key(key);
    assert_eq!(got, expected);
    assert_eq!(merged.stats.decode_errors, 0);
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn valid_pcap(be: bool, nanos: bool, frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = pcap_header(be, nanos, 65535, 1);
    for (ts, data) in frames {
        pcap_record(&mut out, be, *ts, ts.wrapping_mul(7), data, data.len() as u32);
    }
    out
}

fn valid_pcapng(be: bool, frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let interfaces = |ng: &mut Ng| {
        let be = ng.be;
        ng.idb(1, 0, &[]);
        ng.idb(101, 128, &[(OPT_IF_TSRESOL, vec![0x80 | 20]), tsoffset(be, 3)]);
    };
    let mut ng = Ng::new(be);
    interfaces(&mut ng);
    for (i, (ts, data)) in frames.iter().enumerate() {
        match i % 5 {
            0 | 1 => ng.epb(i as u32 % 2, u64::from(*ts) << 8, data, data.len() as u32),
            2 => ng.spb(data.len() as u32, data),
            3 => ng.block(5, data),
            _ => {
                ng.section(!ng.be);
                interfaces(&mut ng);
            }
        }
    }
    ng.out
}

fn arb_frames() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
    proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..12)
}

fn arb_capture() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), any::<bool>(), any::<bool>(), arb_frames()).prop_map(|(ng, be, nanos, frames)| {
        if ng { valid_pcapng(be, &frames) } else { valid_pcap(be, nanos, &frames) }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    SetWord(usize, u32),
    Splice(usize, Vec<u8>),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop_oneof![Just(0u32), Just(u32::MAX), Just(12), Just(0x0a0d_0d0a), any::<u32>()])
            .prop_map(|(at, word)| Mutation::SetWord(at, word)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Mutation::Splice(at, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::FlipBit(at, bit) => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(at) => bytes.truncate(at % bytes.len()),
        Mutation::SetWord(at, word) => {
            let at = (at % bytes.len()) & !3;
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
        }
        Mutation::Splice(at, extra) => {
            let at = at % bytes.len();
            bytes.splice(at..at, extra.iter().copied());
        }
    }
}

/// Reads with both readers (which must agree) and checks the invariants that hold for any input.
fn check_invariants(bytes: &[u8]) {
    let Ok(outcome) = read_both(bytes) else { return };
    // Every frame consumes at least a 16-byte pcap record or pcapng block.
    assert!(outcome.frames.len() <= bytes.len() / 16);
    assert_eq!(outcome.stats.frames, outcome.frames.len() as u64);
    assert!(outcome.stats.bytes_read <= bytes.len() as u64);
    let data: usize = outcome.frames.iter().map(|f| f.data.len()).sum();
    assert!(data <= bytes.len());
    if outcome.error.is_some() || outcome.stats.truncated {
        assert!(outcome.stats.decode_errors >= 1);
    }
    if outcome.error.is_none() && !outcome.stats.truncated {
        assert_eq!(outcome.stats.bytes_read, bytes.len() as u64, "a clean end consumes everything");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(prefix in 0usize..5, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        // Give random bytes a real magic (and for pcapng a byte-order magic) most of the time.
        let mut bytes = match prefix {
            0 => pcap_header(false, false, 65535, 1),
            1 => pcap_header(true, true, 0, 113),
            2 => Ng::new(false).out,
            3 => Ng::new(true).out,
            _ => Vec::new(),
        };
        bytes.extend_from_slice(&body);
        check_invariants(&bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        capture in arb_capture(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = capture;
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_invariants(&bytes);
    }

    #[test]
    fn valid_captures_read_cleanly_and_truncation_is_counted(capture in arb_capture(), cut in any::<usize>()) {
        let full = read_both(&capture).unwrap();
        prop_assert!(full.error.is_none());
        prop_assert_eq!(full.stats.decode_errors, 0);
        prop_assert_eq!(full.stats.bytes_read, capture.len() as u64);
        let cut = cut % (capture.len() + 1);
        if let Ok(part) = read_both(&capture[..cut]) {
            prop_assert!(part.error.is_none());
            prop_assert_eq!(&full.frames[..part.frames.len()], &part.frames[..]);
            prop_assert_eq!(part.stats.truncated, part.stats.bytes_read != cut as u64);
        }
    }
}
