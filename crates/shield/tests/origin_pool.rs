//! The shield's own pool of origin connections: kept-alive connections are reused, one the
//! origin closed is never used again, concurrent requests each get a connection.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{client_from, probe, shield, source_address};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw origin on loopback: answers `ok` to each request head, keeping the connection
/// (`close_after`: false) or closing it right after the answer without saying so first.
/// Counts the connections it accepted.
async fn raw_origin(
    close_after: bool,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if close_after {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, accepted, task)
}

/// The quick start in front of `origin`, without the per-address rate limit (the tests send
/// faster than a browser).
fn config_for(origin: std::net::SocketAddr) -> rampart_shield::Config {
    let mut config =
        rampart_shield::Config::quick("127.0.0.1:0".parse().unwrap(), &format!("http://{origin}")).unwrap();
    config.rate_limits = rampart_shield::config::RateLimits {
        per_address: None,
        per_prefix: None,
        per_v6_48: None,
        ..config.rate_limits
    };
    config
}

#[tokio::test]
async fn kept_alive_connections_are_reused() {
    let (origin, accepted, task) = raw_origin(false).await;
    let running = shield(config_for(origin)).await;
    let client = client_from(source_address(1));
    let url = format!("http://{}/", running.address);
    for i in 0..40 {
        let (status, _) = probe(&client, &url).await;
        assert_eq!(status, 200, "request {i}");
    }
    // One connection carried them all (a second may open while the first is given back).
    let opened = accepted.load(Ordering::Relaxed);
    assert!(opened <= 2, "{opened} origin connections for 40 sequential requests");
    running.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn a_connection_the_origin_closed_is_not_used_again() {
    let (origin, accepted, task) = raw_origin(true).await;
    let running = shield(config_for(origin)).await;
    let client = client_from(source_address(2));
    let url = format!("http://{}/", running.address);
    for i in 0..20 {
        let (status, _) = probe(&client, &url).await;
        assert_eq!(status, 200, "request {i}: a closed connection was reused");
        // Time for the close to reach the shield's side of the connection.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 20, "one connection per answer");
    running.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn concurrent_requests_each_get_a_connection() {
    let (origin, accepted, task) = raw_origin(false).await;
    let running = shield(config_for(origin)).await;
    let url = format!("http://{}/", running.address);
    let mut tasks = Vec::new();
    for n in 0..16u8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = client_from(source_address(10 + n));
            let mut ok = 0;
            for _ in 0..25 {
                if probe(&client, &url).await.0 == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, 16 * 25);
    let opened = accepted.load(Ordering::Relaxed);
    assert!((1..=32).contains(&opened), "{opened} origin connections for 16 concurrent clients");
    running.shutdown().await;
    task.abort();
}
