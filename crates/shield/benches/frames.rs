//! Cost of the per-connection HTTP/2 frame meter and of the access log's sampling decision, on
//! one core, with an anchor measured in the same run (copying the same bytes).
//!
//! `cargo bench -p rampart-shield --bench frames`

use std::hint::black_box;
use std::time::{Duration, Instant};

use rampart_shield::Reason;
use rampart_shield::access_log::{Kind, Sampler};
use rampart_shield::h2_frames::{FrameBudgets, FrameMeter, PREFACE};

fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1];
    out.resize(9 + len, 0x61);
    out
}

fn main() {
    // A browser-like mix: HEADERS of 300 bytes, DATA of 16 KiB and of 1 KiB, WINDOW_UPDATE.
    let mut stream = PREFACE.to_vec();
    let mut frames = 0u64;
    while stream.len() < 64 << 20 {
        for f in [frame(1, 0x4, 300), frame(0, 0, 16_384), frame(0, 0x1, 1024), frame(8, 0, 4)] {
            stream.extend_from_slice(&f);
            frames += 1;
        }
    }
    let budgets = FrameBudgets { pings: 100, settings: 50, empty: 100 };
    let mut best_meter = Duration::MAX;
    let mut best_copy = Duration::MAX;
    let mut sink = vec![0u8; 16_384];
    for _ in 0..5 {
        let started = Instant::now();
        let mut meter = FrameMeter::new(budgets);
        let now = Instant::now();
        for chunk in stream.chunks(16_384) {
            black_box(meter.feed(black_box(chunk), now)).unwrap();
        }
        best_meter = best_meter.min(started.elapsed());
        // The anchor: the copy every byte costs anyway on its way from the socket.
        let started = Instant::now();
        for chunk in stream.chunks(16_384) {
            sink[..chunk.len()].copy_from_slice(black_box(chunk));
            black_box(&sink);
        }
        best_copy = best_copy.min(started.elapsed());
    }
    let gib = stream.len() as f64 / (1u64 << 30) as f64;
    println!(
        "frame meter: {:.1} GiB/s, {:.1} ns per frame ({} frames, 16 KiB reads); anchor memcpy of the same reads: {:.1} GiB/s",
        gib / best_meter.as_secs_f64(),
        best_meter.as_nanos() as f64 / frames as f64,
        frames,
        gib / best_copy.as_secs_f64()
    );
    // Small reads: a PING-sized frame per read, the meter's worst case.
    let ping = frame(6, 0, 8);
    let mut meter = FrameMeter::new(FrameBudgets { pings: u32::MAX, settings: 50, empty: 100 });
    let now = Instant::now();
    meter.feed(PREFACE, now).unwrap();
    let started = Instant::now();
    let n = 10_000_000u64;
    for _ in 0..n {
        black_box(meter.feed(black_box(&ping), now)).unwrap();
    }
    println!(
        "frame meter, one 17-byte PING per read: {:.1} ns per read",
        started.elapsed().as_nanos() as f64 / n as f64
    );

    let mut sampler = Sampler::new(100, 100);
    let started = Instant::now();
    let n = 10_000_000u64;
    for i in 0..n {
        let kind = if i % 10 == 0 { Kind::Rejected(Reason::RateAddress) } else { Kind::Success };
        black_box(sampler.decide(kind, 1_000 + i / 1_000_000));
    }
    println!(
        "access log sampling decision: {:.1} ns per request (10 M requests, 1 M a second)",
        started.elapsed().as_nanos() as f64 / n as f64
    );
}
