//! NetFlow v5 / v9 / IPFIX decode throughput, in flow records per second.
//!
//! v9 and IPFIX use the typical template: IPv4 5-tuple, octets, packets, start/end (v9
//! sysUpTime; IPFIX flowStart/EndMilliseconds), TCP flags, input/output ifIndex. Datagrams hold
//! as many records as fit in 1400 bytes, like real exporters.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_telemetry::flow::{FlowDecoder, FlowLimits};
use rampart_telemetry::{TrafficRecord, UnixNanos};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = id.to_be_bytes().to_vec();
    s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    s.extend_from_slice(body);
    s
}

fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for &(f, l) in fields {
        t.extend_from_slice(&f.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
    t
}

/// Fields: src, dst, sport, dport, proto, flags, octets, packets, start, end, in, out.
fn fields(start: (u16, u16), end: (u16, u16)) -> Vec<(u16, u16)> {
    vec![(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (1, 4), (2, 4), start, end, (10, 4), (14, 4)]
}

fn record(i: u32, start: &[u8], end: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&(0x0a00_0000 | (i & 0xffff)).to_be_bytes());
    r.extend_from_slice(&[203, 0, 113, (i % 250) as u8]);
    r.extend_from_slice(&((1024 + i) as u16).to_be_bytes());
    r.extend_from_slice(&443u16.to_be_bytes());
    r.push(6);
    r.push(0x18);
    r.extend_from_slice(&(1500 * (i % 7 + 1)).to_be_bytes());
    r.extend_from_slice(&(i % 7 + 1).to_be_bytes());
    r.extend_from_slice(start);
    r.extend_from_slice(end);
    r.extend_from_slice(&3u32.to_be_bytes());
    r.extend_from_slice(&4u32.to_be_bytes());
    r
}

/// (datagrams, records in total)
fn v9_datagrams(n: usize) -> (Vec<Vec<u8>>, u64) {
    let rec_len = record(0, &[0; 4], &[0; 4]).len();
    let per = (1400 - 20 - 4) / rec_len;
    let mut out = Vec::new();
    let mut records = 0;
    for d in 0..n {
        let body: Vec<u8> = (0..per as u32)
            .flat_map(|i| record(i + d as u32, &(50_000 + i).to_be_bytes(), &(59_000 + i).to_be_bytes()))
            .collect();
        let mut sets = Vec::new();
        if d == 0 {
            sets.push(set(0, &template(256, &fields((22, 4), (21, 4)))));
        }
        sets.push(set(256, &body));
        let mut dg = Vec::new();
        dg.extend_from_slice(&9u16.to_be_bytes());
        dg.extend_from_slice(&(per as u16).to_be_bytes());
        dg.extend_from_slice(&60_000u32.to_be_bytes());
        dg.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        dg.extend_from_slice(&(d as u32 + 1).to_be_bytes());
        dg.extend_from_slice(&0u32.to_be_bytes());
        sets.iter().for_each(|s| dg.extend_from_slice(s));
        out.push(dg);
        records += per as u64;
    }
    (out, records)
}

fn ipfix_datagrams(n: usize) -> (Vec<Vec<u8>>, u64) {
    let rec_len = record(0, &[0; 8], &[0; 8]).len();
    let per = (1400 - 16 - 4) / rec_len;
    let mut out = Vec::new();
    let mut records = 0u64;
    for d in 0..n {
        let ms = 1_700_000_000_000u64 + d as u64;
        let body: Vec<u8> = (0..per as u32)
            .flat_map(|i| record(i + d as u32, &ms.to_be_bytes(), &(ms + 900).to_be_bytes()))
            .collect();
        let mut sets = Vec::new();
        if d == 0 {
            sets.push(set(2, &template(256, &fields((152, 8), (153, 8)))));
        }
        sets.push(set(256, &body));
        let len = 16 + sets.iter().map(Vec::len).sum::<usize>();
        let mut dg = Vec::new();
        dg.extend_from_slice(&10u16.to_be_bytes());
        dg.extend_from_slice(&(len as u16).to_be_bytes());
        dg.extend_from_slice(&1_700_000_001u32.to_be_bytes());
        dg.extend_from_slice(&(records as u32).to_be_bytes());
        dg.extend_from_slice(&0u32.to_be_bytes());
        sets.iter().for_each(|s| dg.extend_from_slice(s));
        out.push(dg);
        records += per as u64;
    }
    (out, records)
}

fn v5_datagrams(n: usize) -> (Vec<Vec<u8>>, u64) {
    let mut out = Vec::new();
    for d in 0..n {
        let mut dg = Vec::new();
        dg.extend_from_slice(&5u16.to_be_bytes());
        dg.extend_from_slice(&30u16.to_be_bytes());
        dg.extend_from_slice(&60_000u32.to_be_bytes());
        dg.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        dg.extend_from_slice(&0u32.to_be_bytes());
        dg.extend_from_slice(&((d * 30) as u32).to_be_bytes());
        dg.extend_from_slice(&[0, 0, 0, 0]);
        for i in 0..30u32 {
            let mut r = [0u8; 48];
            r[0..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
            r[4..8].copy_from_slice(&[203, 0, 113, i as u8]);
            r[16..20].copy_from_slice(&(i + 1).to_be_bytes());
            r[20..24].copy_from_slice(&(1500 * (i + 1)).to_be_bytes());
            r[24..28].copy_from_slice(&50_000u32.to_be_bytes());
            r[28..32].copy_from_slice(&59_000u32.to_be_bytes());
            r[32..34].copy_from_slice(&(1024 + i as u16).to_be_bytes());
            r[34..36].copy_from_slice(&443u16.to_be_bytes());
            r[37] = 0x18;
            r[38] = 6;
            dg.extend_from_slice(&r);
        }
        out.push(dg);
    }
    (out, 30 * n as u64)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_decode");
    for (name, (datagrams, records)) in
        [("v5", v5_datagrams(64)), ("v9", v9_datagrams(64)), ("ipfix", ipfix_datagrams(64))]
    {
        let mut decoder = FlowDecoder::new(FlowLimits::default());
        let mut out: Vec<TrafficRecord> = Vec::with_capacity(records as usize);
        // Learn the template (sent in the first datagram).
        for d in &datagrams {
            decoder.decode(FROM, d, UnixNanos(0), &mut out);
        }
        assert_eq!(out.len() as u64, records, "{name}");
        group.throughput(Throughput::Elements(records));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for d in &datagrams {
                    decoder.decode(FROM, black_box(d), UnixNanos(0), &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
