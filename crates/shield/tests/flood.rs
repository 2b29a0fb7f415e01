//! The automatic flood defense through the real shield on loopback: a legitimate client warms
//! up the baseline, then a bounded GET flood (random query strings, one bot User-Agent, each
//! connection from its own 127.x address) starts. An automatic rule must refuse the flood within
//! a generous bound (the 5 s goal is the benchmark's), the legitimate client must keep getting
//! 200, and the rules file must show the rule.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_shield::Config;
use rampart_shield::flood::persist;
use support::*;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

fn keep_alive_client(source: std::net::IpAddr) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(source));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, url: String, user_agent: &str) -> u16 {
    let request = Request::get(url)
        .header("user-agent", user_agent)
        .header("accept", "text/html")
        .header("accept-language", "de-CH")
        .body(Empty::new())
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        _ => 0,
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    other: AtomicU64,
}

/// Browse other paths than the flood, at about 40 requests a second, until `stop`.
async fn browse(base: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let client = keep_alive_client(source_address(1));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = match n % 4 {
            0 => "/".to_owned(),
            1 => format!("/news/{}", n % 97),
            2 => "/static/app.js".to_owned(),
            _ => format!("/members/{}", n % 13),
        };
        let status = get(&client, format!("{base}{path}"), BROWSER).await;
        let counter = if status == 200 { &tally.ok } else { &tally.other };
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_rule_stops_a_get_flood_and_real_users_keep_going() {
    let origin = origin().await;
    let data = tempfile::tempdir().unwrap();
    let config = Config::from_toml(&format!(
        r#"
        [[listener]]
        address = "127.0.0.1:0"
        [upstream.web]
        servers = ["http://{origin}"]
        [[route]]
        name = "web"
        upstream = "web"
        [rate_limit]
        disabled = true
        [flood]
        data_dir = "{data}"
        min_rps = 50
        [flood.learn]
        warmup_secs = 5
        [flood.mine]
        min_baseline_samples = 150
        [flood.ladder]
        escalate_secs = 3
        "#,
        origin = origin.address,
        data = data.path().display(),
    ))
    .unwrap();
    let shield = shield(config).await;
    let base = format!("http://{}", shield.address);

    // Warm-up: the baseline learns the legitimate client's rate and requests.
    let legit = Arc::new(Tally::default());
    let stop_legit = Arc::new(AtomicBool::new(false));
    let browser = tokio::spawn(browse(base.clone(), Arc::clone(&legit), Arc::clone(&stop_legit)));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let warm_ok = legit.ok.load(Ordering::Relaxed);
    assert!(warm_ok >= 150, "warm-up too slow: {warm_ok} requests");
    let (ok_before, other_before) = (warm_ok, legit.other.load(Ordering::Relaxed));

    // The flood: 8 connections, each from its own loopback address, at most 15 s or 40 000
    // requests in all.
    let flood_start = Instant::now();
    let refused_at = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for n in 0..8u8 {
        let (base, refused_at, sent) = (base.clone(), Arc::clone(&refused_at), Arc::clone(&sent));
        flooders.push(tokio::spawn(async move {
            let client = keep_alive_client(source_address(10 + n));
            let mut seed = 0x9e37_79b9_u64 ^ u64::from(n);
            while flood_start.elapsed() < Duration::from_secs(15)
                && sent.fetch_add(1, Ordering::Relaxed) < 40_000
            {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let url = format!("{base}/search?k{:x}={:016x}", seed % 4096, seed);
                let status = get(&client, url, "FloodBot/1.0").await;
                if matches!(status, 403 | 429) && refused_at.load(Ordering::Relaxed) == 0 {
                    let _ = refused_at.compare_exchange(
                        0,
                        flood_start.elapsed().as_millis().max(1) as u64,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                if refused_at.load(Ordering::Relaxed) > 0 && flood_start.elapsed() > Duration::from_secs(8) {
                    break;
                }
            }
        }));
    }
    for flooder in flooders {
        flooder.await.unwrap();
    }
    // Let the rules file be written (once a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_legit.store(true, Ordering::Relaxed);
    browser.await.unwrap();

    let mitigated_ms = refused_at.load(Ordering::Relaxed);
    let (ok, other) =
        (legit.ok.load(Ordering::Relaxed) - ok_before, legit.other.load(Ordering::Relaxed) - other_before);
    let rules = persist::read_rules(data.path()).unwrap().expect("the shield writes its rules file");
    eprintln!(
        "flood: {} requests sent, first refused {mitigated_ms} ms after flood start; legitimate during the flood: {ok} ok, {other} not; rules: {}",
        sent.load(Ordering::Relaxed).min(40_000),
        serde_json_summary(&rules)
    );
    assert!(mitigated_ms > 0, "the flood was never refused");
    assert!(mitigated_ms <= 15_000, "mitigation took {mitigated_ms} ms");
    assert!(ok > 0 && other * 100 <= ok + other, "legitimate client: {ok} ok, {other} refused or failed");
    let rule = rules.active.first().expect("an active rule");
    assert!(rule.impacted_baseline <= 0.001, "{rule:?}");
    assert!(rule.matched > 0 && rule.refused > 0, "{rule:?}");
    assert!(
        rule.shown.iter().any(|c| c.values.iter().any(|v| v.contains("FloodBot"))),
        "the rule should name the bot: {:?}",
        rule.shown
    );
    assert!(shield.metrics.flood_rules_active.get() >= 1);
    assert!(shield.metrics.rejections(rampart_shield::Reason::FloodRule) > 0);
    shield.shutdown().await;
    assert!(persist::read_baseline(data.path()).unwrap().is_some(), "baselines saved at shutdown");
}

fn serde_json_summary(rules: &persist::RulesSnapshot) -> String {
    rules
        .active
        .iter()
        .map(|r| {
            format!(
                "#{} {:?} matched {} refused {} impact {:.3}% [{}]",
                r.id,
                r.rung,
                r.matched,
                r.refused,
                r.impacted_baseline * 100.0,
                r.shown
                    .iter()
                    .map(|c| format!("{}={}", c.attr.name(), c.values.join("|")))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
