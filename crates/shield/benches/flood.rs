//! The automatic flood defense's costs on one core: feature extraction and the engine's check
//! per request (calm traffic, and a flood matched by a rule), and one mining run over a full
//! window and baseline sample.
//!
//! `cargo bench -p rampart-shield --bench flood`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rampart_shield::flood::features::{Features, RequestView, extract};
use rampart_shield::flood::mine::{MineConfig, mine};
use rampart_shield::flood::{FloodConfig, FloodEngine};

fn headers(ua: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (name, value) in [
        ("host", "www.example"),
        ("user-agent", ua),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "de-CH,de;q=0.9"),
        ("accept-encoding", "gzip, br"),
        ("cookie", "session=0123456789abcdef"),
    ] {
        h.insert(http::HeaderName::from_static(name), value.parse().unwrap());
    }
    h
}

fn main() {
    let browser = headers("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0");
    let bot = headers("FloodBot/1.0");
    let paths: Vec<String> = (0..1000).map(|i| format!("/news/{i}/comments")).collect();
    let view = |i: usize, h: &'static http::HeaderMap, query: Option<&'static str>| RequestView {
        method: "GET",
        path: "/",
        query,
        headers: Some(h),
        user_agent: None,
        client: IpAddr::V4(Ipv4Addr::from(0xc633_6400 | (i as u32 & 0xff))),
        fingerprints: None,
    };
    let browser: &'static http::HeaderMap = Box::leak(Box::new(browser));
    let bot: &'static http::HeaderMap = Box::leak(Box::new(bot));

    // Extraction alone.
    let n = 1_000_000;
    let started = Instant::now();
    let mut sink = 0u64;
    for i in 0..n {
        let mut v = view(i, browser, Some("q=budget&page=2"));
        v.path = &paths[i % paths.len()];
        sink ^= extract(&v).values[1];
    }
    let extract_ns = started.elapsed().as_nanos() as f64 / n as f64;

    // The engine: calm traffic at 5,000 requests a second for 200 s (learning), then a flood
    // that a rule matches.
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 60;
    let mut engine = FloodEngine::new(config);
    let start = 1_796_000_000_000u64;
    let calm: Vec<Features> = (0..5000)
        .map(|i| {
            let mut v = view(i, browser, None);
            v.path = &paths[i % paths.len()];
            extract(&v)
        })
        .collect();
    let started = Instant::now();
    let mut checks = 0u64;
    for second in 0..200u64 {
        for (i, f) in calm.iter().enumerate() {
            engine.check(
                "web",
                Some("www.example"),
                f,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                start + second * 1000 + i as u64 / 5,
            );
            checks += 1;
        }
        engine.tick(start + (second + 1) * 1000);
    }
    let calm_ns = started.elapsed().as_nanos() as f64 / checks as f64;
    let flood = extract(&view(7, bot, Some("x=83hf72hdk2")));
    let started = Instant::now();
    let mut flood_checks = 0u64;
    for second in 200..210u64 {
        for i in 0..50_000u64 {
            engine.check(
                "web",
                None,
                &flood,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                start + second * 1000 + i / 50,
            );
            flood_checks += 1;
        }
        engine.tick(start + (second + 1) * 1000);
    }
    let flood_ns = started.elapsed().as_nanos() as f64 / flood_checks as f64;
    let rules = engine.active_rules().count();

    // One mining run: 4,096 recent requests (half flood), 4,096 baseline samples.
    let window: Vec<Features> =
        (0..4096).map(|i| if i % 2 == 0 { flood } else { calm[i % calm.len()] }).collect();
    let baseline: Vec<Features> = calm.iter().take(4096).copied().collect();
    let runs = 20;
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..runs {
        found += usize::from(mine(&window, 2048.0, &baseline, &MineConfig::default()).is_ok());
    }
    let mine_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    println!("feature extraction: {extract_ns:.0} ns/request ({:.2} M/s/core)", 1e3 / extract_ns);
    println!(
        "engine check, calm traffic (learning, sampling): {calm_ns:.0} ns/request ({:.2} M/s/core)",
        1e3 / calm_ns
    );
    println!(
        "engine check, flood matched by a rule: {flood_ns:.0} ns/request ({:.2} M/s/core); {rules} rule(s)",
        1e3 / flood_ns
    );
    println!(
        "mining over 4,096 recent requests and 4,096 baseline samples: {mine_ms:.2} ms ({found}/{runs} found a rule)"
    );
    std::hint::black_box(sink);
}
