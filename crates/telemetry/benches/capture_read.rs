//! Container decode speed: 1M 64-byte Ethernet frames in memory, as pcap and pcapng.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_telemetry::capture::{CaptureReader, CaptureSliceReader};

const FRAMES: u32 = 1_000_000;
const FRAME_LEN: usize = 64;

fn frame(i: u32) -> [u8; FRAME_LEN] {
    let mut frame = [0u8; FRAME_LEN];
    frame[12] = 0x08; // IPv4 ethertype
    frame[14] = 0x45;
    frame[30..34].copy_from_slice(&i.to_be_bytes());
    frame
}

fn pcap() -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + FRAMES as usize * (16 + FRAME_LEN));
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for i in 0..FRAMES {
        for word in [1_700_000_000 + i / 1000, i % 1_000_000, FRAME_LEN as u32, FRAME_LEN as u32] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&frame(i));
    }
    out
}

fn pcapng() -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + FRAMES as usize * (32 + FRAME_LEN));
    let put = |words: &[u32], out: &mut Vec<u8>| {
        for word in words {
            out.extend_from_slice(&word.to_le_bytes());
        }
    };
    put(&[0x0a0d_0d0a, 28, 0x1a2b_3c4d, 1, u32::MAX, u32::MAX, 28], &mut out); // SHB, version 1.0
    put(&[1, 20, 1, 0, 20], &mut out); // IDB: Ethernet, snaplen 0
    for i in 0..FRAMES {
        let ts = (1_700_000_000u64 + u64::from(i / 1000)) * 1_000_000 + u64::from(i);
        let len = 32 + FRAME_LEN as u32;
        put(&[6, len, 0, (ts >> 32) as u32, ts as u32, FRAME_LEN as u32, FRAME_LEN as u32], &mut out);
        out.extend_from_slice(&frame(i));
        put(&[len], &mut out);
    }
    out
}

/// Sums something from every frame so the reads cannot be optimized away.
fn drain_stream(bytes: &[u8]) -> u64 {
    let mut reader = CaptureReader::new(bytes).unwrap();
    let mut sum = 0u64;
    while let Some(frame) = reader.next_frame().unwrap() {
        sum = sum.wrapping_add(frame.time.0 ^ u64::from(frame.wire_len) ^ frame.data.len() as u64);
    }
    assert_eq!(reader.stats().frames, u64::from(FRAMES));
    sum
}

fn drain_slice(bytes: &[u8]) -> u64 {
    let mut reader = CaptureSliceReader::new(bytes).unwrap();
    let mut sum = 0u64;
    while let Some(frame) = reader.next_frame().unwrap() {
        sum = sum.wrapping_add(frame.time.0 ^ u64::from(frame.wire_len) ^ frame.data.len() as u64);
    }
    assert_eq!(reader.stats().frames, u64::from(FRAMES));
    sum
}

fn capture_read(c: &mut Criterion) {
    let pcap = pcap();
    let pcapng = pcapng();
    let mut group = c.benchmark_group("capture_read");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    group.sample_size(20);
    group.bench_function("pcap_stream", |b| b.iter(|| black_box(drain_stream(black_box(&pcap)))));
    group.bench_function("pcap_slice", |b| b.iter(|| black_box(drain_slice(black_box(&pcap)))));
    group.bench_function("pcapng_stream", |b| b.iter(|| black_box(drain_stream(black_box(&pcapng)))));
    group.bench_function("pcapng_slice", |b| b.iter(|| black_box(drain_slice(black_box(&pcapng)))));
    group.finish();
}

criterion_group!(benches, capture_read);
criterion_main!(benches);
