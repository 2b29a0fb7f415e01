//! Decode + detection end to end: a generated `mixed` capture (1.44 M packets: benign web
//! background at 50 kpps plus a sequence of floods at 150 kpps, snaplen 96) read from the page
//! cache through `CaptureRecords` into the `Engine`, with `advance` on every record as
//! `rampart analyze` does. Target: 10 M packets/s/core.

use std::fs::File;
use std::hint::black_box;
use std::io::BufReader;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_detect::baseline::{BaselineConfig, BaselineTable, Sample};
use rampart_detect::{DetectConfig, Engine};
use rampart_telemetry::{CaptureRecords, TrafficRecord};
use rampart_trafficgen::{GenParams, Scenario, generate_to_file};

fn params() -> GenParams {
    GenParams {
        seed: 3,
        duration_secs: 10.0,
        background_pps: 50_000,
        attack_pps: 150_000,
        attack_start_secs: 0.5,
        attack_duration_secs: Some(9.0),
        snaplen: Some(96),
        ..GenParams::for_scenario(Scenario::Mixed)
    }
}

fn write_capture() -> (PathBuf, u64) {
    let path = std::env::temp_dir().join("rampart-bench-detect-mixed-v1.pcap");
    let truth = generate_to_file(Scenario::Mixed, &params(), &path).unwrap();
    (path, truth.totals.packets)
}

fn config() -> DetectConfig {
    DetectConfig::from_toml_str("protected = [\"198.51.100.0/24\", \"2001:db8:100::/48\"]", "bench").unwrap()
}

fn run(engine: &mut Engine, records: impl Iterator<Item = TrafficRecord>) -> usize {
    let mut events = 0;
    for record in records {
        events += engine.advance(record.start).len();
        engine.observe(&record);
    }
    events + engine.finish().len()
}

fn analyze(c: &mut Criterion) {
    let (path, packets) = write_capture();
    let records: Vec<TrafficRecord> =
        CaptureRecords::new(File::open(&path).unwrap()).unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, packets);
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(packets));
    group.sample_size(10);
    group.bench_function("mixed_decode_and_detect", |b| {
        b.iter(|| {
            let file = BufReader::with_capacity(1 << 20, File::open(&path).unwrap());
            let mut engine = Engine::new(config());
            let events = run(&mut engine, CaptureRecords::new(file).unwrap().map(Result::unwrap));
            assert!(events > 0);
            black_box(events)
        })
    });
    group.bench_function("mixed_detect_only", |b| {
        b.iter(|| {
            let mut engine = Engine::new(config());
            black_box(run(&mut engine, records.iter().copied()))
        })
    });
    group.finish();
}

/// Learning one host-second: 50 000 hosts for 20 seconds per iteration.
fn baseline_learn(c: &mut Criterion) {
    const HOSTS: u64 = 50_000;
    const SECONDS: u64 = 20;
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(HOSTS * SECONDS));
    group.sample_size(10);
    let mut table = BaselineTable::new(BaselineConfig::default());
    let mut second = 1_767_225_600u64;
    group.bench_function("learn", |b| {
        b.iter(|| {
            for _ in 0..SECONDS {
                second += 1;
                for host in 0..HOSTS {
                    let sample =
                        Sample { pps: 100 + host % 50, bps: 800_000, flows: 10, ..Sample::default() };
                    table.learn(u128::from(host), second, &sample);
                }
            }
            black_box(table.len())
        })
    });
    group.finish();
}

criterion_group!(benches, analyze, baseline_learn);
criterion_main!(benches);
