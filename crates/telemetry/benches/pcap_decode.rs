//! pcap decode into records, end to end: a file of 64-byte Ethernet/IPv4/TCP frames read from the
//! page cache through `CaptureRecords` (container + packet decoder). Target: 20 M packets/s/core.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_telemetry::{CaptureRecords, TrafficSummary};

const FRAMES: u32 = 2_000_000;

/// A 64-byte frame: Ethernet, IPv4 (total length 50), TCP SYN, 10 bytes of padding.
fn frame(i: u32) -> [u8; 64] {
    let mut frame = [0u8; 64];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 6]);
    frame[26..30].copy_from_slice(&i.to_be_bytes());
    frame[30..34].copy_from_slice(&[198, 51, 100, (i % 256) as u8]);
    frame[34..38].copy_from_slice(&[(i >> 8) as u8, i as u8, 0, 80]);
    frame[46..48].copy_from_slice(&[0x50, 0x02]);
    frame
}

fn write_capture() -> PathBuf {
    let path = std::env::temp_dir().join(format!("rampart-bench-64b-{FRAMES}.pcap"));
    if path.exists() {
        return path;
    }
    let mut out = std::io::BufWriter::new(File::create(&path).unwrap());
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    out.write_all(&65_535u32.to_le_bytes()).unwrap();
    out.write_all(&1u32.to_le_bytes()).unwrap();
    for i in 0..FRAMES {
        for word in [1_700_000_000 + i / 100_000, (i % 100_000) * 10, 64, 64] {
            out.write_all(&u32::to_le_bytes(word)).unwrap();
        }
        out.write_all(&frame(i)).unwrap();
    }
    out.flush().unwrap();
    path
}

fn decode(c: &mut Criterion) {
    let path = write_capture();
    let mut group = c.benchmark_group("pcap_decode");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    group.sample_size(10);
    group.bench_function("file_64b_records", |b| {
        b.iter(|| {
            let mut bytes = 0u64;
            for record in CaptureRecords::new(File::open(&path).unwrap()).unwrap() {
                bytes += record.unwrap().bytes;
            }
            black_box(bytes)
        })
    });
    group.bench_function("file_64b_records_summary", |b| {
        b.iter(|| {
            let mut summary = TrafficSummary::new();
            for record in CaptureRecords::new(File::open(&path).unwrap()).unwrap() {
                summary.add(&record.unwrap());
            }
            black_box(summary.total())
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
