//! The GCRA limiter under 10 million distinct client addresses: memory (fixed by the table's
//! capacity, measured as resident memory too) and nanoseconds per check, on one core.
//!
//! `cargo bench -p rampart-shield --bench limiter`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rampart_shield::gcra::{Key, Limiter, Rate};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn run(capacity: usize, distinct: u32) {
    let before = rss_mib();
    let mut limiter = Limiter::new(Rate { per_second: 100.0, burst: 400 }, capacity);
    let started = Instant::now();
    let mut now = 1_000_000_000u64;
    let mut allowed = 0u64;
    // 10M distinct addresses, each twice (a new key, then a known one), 1 µs apart.
    for round in 0..2 {
        for i in 0..distinct {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i)));
            now += 1_000;
            allowed +=
                u64::from(limiter.check(Key::address(address), now) == rampart_shield::gcra::Verdict::Allow);
        }
        let _ = round;
    }
    let elapsed = started.elapsed();
    let checks = 2 * u64::from(distinct);
    println!(
        "capacity {:>10} keys: table {:>6.1} MiB, resident +{:>6.1} MiB; {} distinct addresses x2: {:.0} ns/check, {:.1} M checks/s/core, {} allowed, {} evicted early",
        limiter.capacity(),
        limiter.memory_bytes() as f64 / (1024.0 * 1024.0),
        rss_mib() - before,
        distinct,
        elapsed.as_nanos() as f64 / checks as f64,
        checks as f64 / elapsed.as_secs_f64() / 1e6,
        allowed,
        limiter.evictions(),
    );
}

fn main() {
    // `cargo test` runs benches with --bench absent: keep it quick there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let distinct = if quick { 100_000 } else { 10_000_000 };
    run(1 << 20, distinct);
    run(10_000_000, distinct);
}
