//! The structured access log on a running shield: the fields of each line, sampling under a
//! flood with exact totals in the summaries, and a writer that cannot keep up costing dropped
//! lines, never a request.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_shield::access_log::AccessLogSettings;
use rampart_shield::config::RateLimits;
use support::*;

fn keep_alive_client(n: u8) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(source_address(n)));
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> u16 {
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

fn settings(path: &Path, successes: u32, rejections: u32, queue: usize) -> AccessLogSettings {
    AccessLogSettings {
        path: path.to_owned(),
        successes_per_sec: successes,
        rejections_per_sec: rejections,
        queue,
    }
}

/// The file's lines once at least `count` are there (the writer flushes within half a second).
async fn lines(path: &Path, count: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
        if lines.len() >= count || started.elapsed() > Duration::from_secs(5) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_a_line_with_its_route_status_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let origin = origin().await;
    let mut config = quick(&origin);
    config.access_log = Some(settings(&path, 1000, 1000, 1024));
    let shield = shield(config).await;
    let client = keep_alive_client(1);
    for i in 0..5 {
        assert_eq!(get(&client, &format!("http://{}/page?q={i}", shield.address)).await, 200);
    }
    assert_eq!(get(&client, &format!("http://{}/big", shield.address)).await, 200);
    for _ in 0..3 {
        assert_eq!(get(&client, &format!("http://{}/a/%2e%2e/b", shield.address)).await, 400);
    }
    // An upstream that is not there: a 502, an error line.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config =
        rampart_shield::Config::quick("127.0.0.1:0".parse().unwrap(), &format!("http://{dead}")).unwrap();
    config.access_log = Some(settings(&dir.path().join("errors.log"), 1000, 1000, 1024));
    let broken = support::shield(config).await;
    assert_eq!(get(&client, &format!("http://{}/x", broken.address)).await, 502);

    let lines = lines(&path, 9).await;
    assert_eq!(lines.len(), 9, "{lines:?}");
    let client_ip = source_address(1).to_string();
    for (i, line) in lines[..5].iter().enumerate() {
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/page");
        assert_eq!(line["query"], format!("q={i}"));
        assert_eq!(line["status"], 200);
        assert_eq!(line["bytes"], 2, "the origin's \"ok\"");
        assert_eq!(line["route"], "default");
        assert_eq!(line["client"], client_ip.as_str());
        assert!(line["host"].as_str().unwrap().starts_with("127.0.0.1"));
        assert!(line["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(line.get("reason").is_none() && line.get("sample").is_none());
    }
    assert_eq!(lines[5]["bytes"], 1 << 20, "the whole streamed body");
    for line in &lines[6..] {
        assert_eq!(line["status"], 400);
        assert_eq!(line["reason"], "SuspiciousPath");
    }
    let errors = lines_of(&dir.path().join("errors.log"), 1).await;
    assert_eq!(errors[0]["status"], 502);
    assert_eq!(errors[0]["reason"], "UpstreamUnavailable");
    shield.shutdown().await;
    broken.shutdown().await;
}

async fn lines_of(path: &Path, count: usize) -> Vec<serde_json::Value> {
    lines(path, count).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_sampled_and_the_summaries_keep_the_exact_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let origin = origin().await;
    let mut config = quick(&origin);
    config.rate_limits =
        RateLimits { per_address: None, per_prefix: None, per_v6_48: None, ..config.rate_limits };
    config.access_log = Some(settings(&path, 20, 5, 4096));
    let shield = shield(config).await;
    let client = keep_alive_client(2);
    // Bounded: 1,500 requests, one in ten refused (a dot segment).
    let (mut ok, mut refused) = (0u64, 0u64);
    for i in 0..1500 {
        if i % 10 == 9 {
            assert_eq!(get(&client, &format!("http://{}/a/%2e%2e/{i}", shield.address)).await, 400);
            refused += 1;
        } else {
            assert_eq!(get(&client, &format!("http://{}/p{i}", shield.address)).await, 200);
            ok += 1;
        }
    }
    // The last second's summary comes once that second is over.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    shield.shutdown().await;
    let lines = lines(&path, 1).await;
    let mut per_second: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut summaries = BTreeMap::new();
    for line in &lines {
        if line.get("summary").is_some() {
            summaries.insert(line["second"].as_u64().unwrap(), line.clone());
            continue;
        }
        let second = line["time_ms"].as_u64().unwrap() / 1000;
        let entry = per_second.entry(second).or_default();
        if line.get("reason").is_some() { entry.1 += 1 } else { entry.0 += 1 }
    }
    let (mut total_ok, mut total_refused) = (0, 0);
    for (second, (ok_lines, refused_lines)) in &per_second {
        assert!(*ok_lines <= 40, "{ok_lines} success lines in second {second}");
        assert!(*refused_lines <= 5, "{refused_lines} rejection lines in second {second}");
        match summaries.get(second) {
            Some(summary) => {
                assert_eq!(summary["success_lines"].as_u64().unwrap(), *ok_lines);
                assert_eq!(summary["rejection_lines"].as_u64().unwrap(), *refused_lines);
                total_ok += summary["successes"].as_u64().unwrap();
                total_refused += summary["rejected"]["SuspiciousPath"].as_u64().unwrap_or(0);
            }
            None => {
                total_ok += ok_lines;
                total_refused += refused_lines;
            }
        }
    }
    eprintln!("{} lines for {} requests, {} summaries", lines.len(), ok + refused, summaries.len());
    assert!(!summaries.is_empty(), "1,500 requests at 20 lines a second must be sampled");
    assert_eq!((total_ok, total_refused), (ok, refused), "the summaries account for every request");
    assert!(lines.iter().any(|l| l["sample"].as_u64().is_some_and(|n| n > 1)), "sampled lines say so");
}

/// A writer stuck on a pipe nobody reads: the queue fills, lines are dropped and counted, and
/// every request is still answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_writer_drops_lines_and_never_blocks_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stuck");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // The reading end, held open and never read (opening it waits for the writer).
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::File::open(reader_path).unwrap());
    let origin = origin().await;
    let mut config = quick(&origin);
    config.rate_limits =
        RateLimits { per_address: None, per_prefix: None, per_v6_48: None, ..config.rate_limits };
    config.access_log = Some(settings(&fifo, 1_000_000, 1_000_000, 16));
    let shield = shield(config).await;
    let _reader = reader.join().unwrap();
    let client = keep_alive_client(3);
    let started = Instant::now();
    // Bounded: 2,000 requests (a pipe holds 64 KiB, about 400 lines).
    for i in 0..2000 {
        assert_eq!(get(&client, &format!("http://{}/p{i}", shield.address)).await, 200);
    }
    let dropped = shield.metrics.access_log_dropped.get();
    eprintln!("2,000 requests in {:?} with a stuck log writer; {dropped} lines dropped", started.elapsed());
    assert!(dropped >= 1000, "{dropped} dropped");
    assert!(started.elapsed() < Duration::from_secs(60));
    shield.shutdown().await;
}
