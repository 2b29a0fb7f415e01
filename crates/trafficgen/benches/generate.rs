//! Generation speed in packets per second, writing into `io::sink()`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_trafficgen::{AmplificationVector, GenParams, Scenario, generate};

fn bench_generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.sample_size(10);
    let cases = [
        Scenario::SynFlood,
        Scenario::UdpFlood,
        Scenario::Amplification(AmplificationVector::Dns),
        Scenario::CarpetBombing,
        Scenario::BenignWeb,
        Scenario::Mixed,
    ];
    for scenario in cases {
        // Attack alone (background 1 kpps) so the figure is about the hot flood path; benign_web
        // at 200 kpps measures the TCP session machinery.
        let params = GenParams {
            duration_secs: 2.0,
            attack_start_secs: 0.0,
            attack_duration_secs: None,
            attack_pps: 1_000_000,
            background_pps: if scenario == Scenario::BenignWeb { 500_000 } else { 1_000 },
            ..GenParams::for_scenario(scenario)
        };
        let packets = generate(scenario, &params, std::io::sink()).expect("generate").totals.packets;
        group.throughput(Throughput::Elements(packets));
        group.bench_function(scenario.name(), |b| {
            b.iter(|| generate(black_box(scenario), &params, std::io::sink()).expect("generate"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_generate);
criterion_main!(benches);
