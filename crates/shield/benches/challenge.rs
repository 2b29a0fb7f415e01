//! Verifications per second on one core: clearance cookies (the check every request of a
//! challenged route pays) and proof-of-work proofs (the verify step: signature, age, the
//! work's hash, the replay cache), each both at the token level and through the whole
//! `Challenger` call the proxy makes (headers, cookie parsing, the response).
//!
//! `cargo bench -p rampart-shield --bench challenge` (goal: at least 50,000 a second a core;
//! the anchor is Anubis's verifier, which saturated near 11,500 proofs a second in a public
//! test).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{Request, header};
use rampart_shield::Metrics;
use rampart_shield::challenge::{ChallengeSettings, Ladder, NoResolver, VERIFY_PATH, pow};
use rampart_shield::defense::Challenger;

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36";

fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xc633_6400u32.wrapping_add(i % 256))) // 198.51.100.0/24
}

fn rate(what: &str, count: usize, elapsed: Duration) {
    println!(
        "{what:<52} {count:>8} in {:>7.3} s: {:>9.0} /s/core, {:>6.2} µs each",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let count = if quick { 2_000 } else { 200_000 };
    let settings = ChallengeSettings { min_difficulty: 4, max_difficulty: 4, ..ChallengeSettings::default() };
    let ladder =
        Ladder::with_parts(settings, &[[7u8; 32]], Arc::new(NoResolver), Arc::new(Metrics::default()))
            .expect("a ladder");
    let now = SystemTime::now();
    let secs = rampart_shield::challenge::unix_secs(now);

    // Cookies: distinct clearances for distinct clients.
    let requests: Vec<_> = (0..count as u32)
        .map(|i| {
            let parts = Request::get("/page")
                .header(header::USER_AGENT, UA)
                .body(())
                .expect("request")
                .into_parts()
                .0;
            let binding = ladder.binding(&parts, client(i));
            let cookie =
                format!("session=abc; __rampart_clearance={}; theme=dark", ladder.clearance(&binding, secs));
            let parts = Request::get("/page")
                .header(header::USER_AGENT, UA)
                .header(header::COOKIE, cookie)
                .body(())
                .expect("request")
                .into_parts()
                .0;
            (client(i), parts)
        })
        .collect();
    let started = Instant::now();
    let mut passed = 0usize;
    for (address, parts) in &requests {
        let binding = ladder.binding(parts, *address);
        passed += usize::from(ladder.has_clearance(black_box(parts), &binding, secs));
    }
    rate("clearance cookies (binding + HMAC check)", count, started.elapsed());
    assert_eq!(passed, count);
    let started = Instant::now();
    let mut passed = 0usize;
    for (address, parts) in &requests {
        passed += usize::from(ladder.is_cleared(black_box(parts), *address, now));
    }
    rate("clearance cookies (Challenger::is_cleared)", count, started.elapsed());
    assert_eq!(passed, count);
    let started = Instant::now();
    let mut refused = 0usize;
    for (i, (_, parts)) in requests.iter().enumerate() {
        // The same cookies from another /24: every one refused.
        refused += usize::from(!ladder.is_cleared(
            black_box(parts),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8)),
            now,
        ));
    }
    rate("foreign cookies refused (Challenger::is_cleared)", count, started.elapsed());
    assert_eq!(refused, count);

    // Proofs: challenges solved beforehand (the difficulty changes the client's work, not
    // the server's: one SHA-256 of the proof either way).
    let solved: Vec<_> = (0..count as u32)
        .map(|i| {
            let parts =
                Request::get("/").header(header::USER_AGENT, UA).body(()).expect("request").into_parts().0;
            let binding = ladder.binding(&parts, client(i));
            let challenge = ladder.work_challenge(&binding, secs);
            let counter = pow::solve(&challenge, 4);
            (binding, challenge, counter, client(i))
        })
        .collect();
    let split = count / 2;
    let started = Instant::now();
    let mut ok = 0usize;
    for (binding, challenge, counter, _) in &solved[..split] {
        ok += usize::from(ladder.check_proof(binding, black_box(challenge), *counter, secs).is_ok());
    }
    rate("proofs of work (signature, age, hash, replay cache)", split, started.elapsed());
    assert_eq!(ok, split);
    let requests: Vec<_> = solved[split..]
        .iter()
        .map(|(_, challenge, counter, address)| {
            let target = format!("{VERIFY_PATH}?m=pow&r=%2Fpage&c={challenge}&n={counter}");
            let parts =
                Request::get(target).header(header::USER_AGENT, UA).body(()).expect("request").into_parts().0;
            (*address, parts)
        })
        .collect();
    let started = Instant::now();
    let mut redirected = 0usize;
    for (address, parts) in &requests {
        let response = ladder.challenge(black_box(parts), *address, now);
        redirected += usize::from(response.status() == http::StatusCode::SEE_OTHER);
    }
    rate("proofs of work (Challenger::challenge, 303 + cookie)", requests.len(), started.elapsed());
    assert_eq!(redirected, requests.len());
    let started = Instant::now();
    let mut replayed = 0usize;
    for (binding, challenge, counter, _) in &solved[..split] {
        replayed += usize::from(ladder.check_proof(binding, black_box(challenge), *counter, secs).is_err());
    }
    rate("replayed proofs refused", split, started.elapsed());
    assert_eq!(replayed, split);
}
