//! sFlow v5 decoding throughput, in samples per second: datagrams of 8 flow samples, each with
//! a 128-byte raw Ethernet/IPv4/TCP header (the common router export) or a sampled IPv4 record,
//! plus an extended switch record.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_telemetry::UnixNanos;
use rampart_telemetry::sflow::SflowDecoder;

const SAMPLES_PER_DATAGRAM: u32 = 8;
const SEQUENCE_OFFSET: usize = 16;

/// Builds the flow record of the i-th sample.
type RecordBuilder = fn(u32) -> Vec<u8>;

fn be(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn framed(format: u32, body: &[u8]) -> Vec<u8> {
    let mut out = be(&[format, body.len() as u32]);
    out.extend_from_slice(body);
    out
}

fn raw_header_record(i: u32) -> Vec<u8> {
    let mut frame = vec![0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00];
    // IPv4, total length 1500, TTL 64, TCP; source varies per sample.
    frame.extend([
        0x45,
        0,
        0x05,
        0xdc,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
        10,
        0,
        (i >> 8) as u8,
        i as u8,
        192,
        0,
        2,
        1,
    ]);
    // TCP 40000 -> 443, ACK.
    frame.extend([0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    frame.resize(128, 0xab);
    let mut body = be(&[1, 1518, 4, frame.len() as u32]);
    body.extend(frame);
    framed(1, &body)
}

fn sampled_ipv4_record(i: u32) -> Vec<u8> {
    let mut body = be(&[1500, 6]);
    body.extend([10, 0, (i >> 8) as u8, i as u8, 192, 0, 2, 1]);
    body.extend(be(&[40000, 443, 0x10, 0]));
    framed(3, &body)
}

fn datagram(record: RecordBuilder) -> Vec<u8> {
    let mut out = be(&[5, 1, 0xc000_0201, 0, 1, 60_000, SAMPLES_PER_DATAGRAM]);
    for i in 0..SAMPLES_PER_DATAGRAM {
        let switch = framed(1001, &be(&[10, 0, 20, 0]));
        let mut body = be(&[i, 3, 1000, 1000 * i, 0, 3, 4, 2]);
        body.extend(record(i));
        body.extend(switch);
        out.extend(framed(1, &body));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sflow_decode");
    group.throughput(Throughput::Elements(u64::from(SAMPLES_PER_DATAGRAM)));
    let cases: [(&str, RecordBuilder); 2] =
        [("raw_header", raw_header_record), ("sampled_ipv4", sampled_ipv4_record)];
    for (name, record) in cases {
        let mut bytes = datagram(record);
        let mut decoder = SflowDecoder::default();
        let mut out = Vec::with_capacity(64);
        let mut sequence = 0u32;
        let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
        group.bench_function(name, |b| {
            b.iter(|| {
                sequence = sequence.wrapping_add(1);
                bytes[SEQUENCE_OFFSET..SEQUENCE_OFFSET + 4].copy_from_slice(&sequence.to_be_bytes());
                out.clear();
                decoder.decode(from, black_box(&bytes), UnixNanos(1), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
