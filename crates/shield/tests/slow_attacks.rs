//! Slow attacks from Debian's slowhttptest against the shield on loopback: slowloris (`-H`),
//! slow body (`-B`), slow read (`-X`) and range (`-R`). Each test also times one slow
//! connection of its own to see it cut within the deadline, and a legitimate client (from its
//! own 127.x.y.z) probes all along and must keep getting answers.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_shield::{Config, Reason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Deadlines shortened so the tests run in seconds; the mechanisms are the defaults'.
fn config(origin: &Origin) -> Config {
    let mut config = quick(origin);
    config.hardening.header_timeout_secs = 2.0;
    config.hardening.body_grace_secs = 2.0;
    config.hardening.send_grace_secs = 2.0;
    // slowhttptest comes from one address; the legitimate client from another.
    config.rate_limits.per_address = None;
    config
}

struct Attack {
    _child: ChildGuard,
    started: Instant,
}

fn slowhttptest(mode: &str, url: &str, extra: &[&str], seconds: u64) -> Attack {
    let mut args = vec![mode, "-u", url, "-l"];
    let seconds_text = seconds.to_string();
    args.push(&seconds_text);
    args.extend_from_slice(extra);
    let child = Command::new("slowhttptest")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slowhttptest starts");
    Attack { _child: ChildGuard(child), started: Instant::now() }
}

impl Attack {
    /// Wait (bounded) for the tool to end by itself.
    fn wait(mut self, limit: Duration) {
        while self.started.elapsed() < limit {
            if let Ok(Some(_)) = self._child.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Probe `url` from a legitimate client every 250 ms for `duration`: every status and the
/// slowest answer.
async fn legitimate_client(url: String, duration: Duration) -> (Vec<u16>, Duration) {
    let client = client_from(source_address(7));
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut latencies = Vec::new();
    while started.elapsed() < duration {
        let (status, latency) = probe(&client, &url).await;
        statuses.push(status);
        latencies.push(latency);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();
    eprintln!("legitimate client: {} probes, p50 {p50:?}, max {max:?}", statuses.len());
    (statuses, max)
}

/// Seconds until the shield closes a connection that sends `opening` and then one byte of
/// `trickle` every 500 ms.
async fn time_until_closed(address: SocketAddr, opening: &str, trickle: &str) -> Duration {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    stream.write_all(opening.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    for byte in trickle.bytes().cycle().take(60) {
        tokio::select! {
            read = stream.read(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => return started.elapsed(),
                    Ok(_) => continue,
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(&[byte]).await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
    started.elapsed()
}

fn all_ok(statuses: &[u16]) {
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == 200), "the legitimate client was refused: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_shed_at_the_head_deadline() {
    if !have_peer("slowhttptest") {
        return;
    }
    let origin = origin().await;
    let shield = shield(config(&origin)).await;
    let url = format!("http://{}/", shield.address);
    let attack = slowhttptest("-H", &url, &["-c", "400", "-r", "200", "-i", "1", "-p", "3"], 8);
    let legit = tokio::spawn(legitimate_client(url.clone(), Duration::from_secs(7)));
    let cut = time_until_closed(shield.address, "GET / HTTP/1.1\r\nHost: x\r\n", "X-a: b\r\n").await;
    let (statuses, _) = legit.await.unwrap();
    tokio::task::spawn_blocking(move || attack.wait(Duration::from_secs(30))).await.unwrap();
    eprintln!(
        "slowloris: own connection cut after {cut:?}; head timeouts {}, refused per address {}",
        shield.metrics.rejections(Reason::HeaderTimeout),
        shield.metrics.rejections(Reason::ConnectionsPerAddress)
    );
    assert!(cut >= Duration::from_millis(1500) && cut < Duration::from_secs(4), "{cut:?}");
    assert!(shield.metrics.rejections(Reason::HeaderTimeout) >= 100);
    all_ok(&statuses);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_cut_by_its_minimum_rate() {
    if !have_peer("slowhttptest") {
        return;
    }
    let origin = origin().await;
    let shield = shield(config(&origin)).await;
    let url = format!("http://{}/echo", shield.address);
    let attack = slowhttptest(
        "-B",
        &url,
        &["-c", "200", "-r", "100", "-i", "1", "-s", "8192", "-x", "10", "-p", "3"],
        8,
    );
    let legit =
        tokio::spawn(legitimate_client(format!("http://{}/", shield.address), Duration::from_secs(7)));
    let cut = time_until_closed(
        shield.address,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
        "abcdefgh",
    )
    .await;
    let (statuses, _) = legit.await.unwrap();
    tokio::task::spawn_blocking(move || attack.wait(Duration::from_secs(30))).await.unwrap();
    eprintln!(
        "slow body: own connection cut after {cut:?}; slow bodies {}",
        shield.metrics.rejections(Reason::SlowBody)
    );
    assert!(cut >= Duration::from_millis(1500) && cut < Duration::from_secs(4), "{cut:?}");
    assert!(shield.metrics.rejections(Reason::SlowBody) >= 50);
    all_ok(&statuses);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_read_is_cut_by_the_response_read_rate() {
    if !have_peer("slowhttptest") {
        return;
    }
    let origin = origin().await;
    let shield = shield(config(&origin)).await;
    let url = format!("http://{}/big", shield.address);
    let attack = slowhttptest(
        "-X",
        &url,
        &["-c", "100", "-r", "50", "-w", "1", "-y", "8", "-n", "1", "-z", "8", "-k", "2", "-p", "3"],
        10,
    );
    let legit =
        tokio::spawn(legitimate_client(format!("http://{}/", shield.address), Duration::from_secs(9)));
    let (statuses, _) = legit.await.unwrap();
    tokio::task::spawn_blocking(move || attack.wait(Duration::from_secs(30))).await.unwrap();
    eprintln!("slow read: cut {}", shield.metrics.rejections(Reason::SlowRead));
    assert!(shield.metrics.rejections(Reason::SlowRead) >= 20);
    all_ok(&statuses);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_attack_is_refused() {
    if !have_peer("slowhttptest") {
        return;
    }
    let origin = origin().await;
    let shield = shield(config(&origin)).await;
    let url = format!("http://{}/big", shield.address);
    let attack = slowhttptest("-R", &url, &["-c", "100", "-r", "50", "-a", "10", "-b", "1000", "-p", "3"], 5);
    let legit =
        tokio::spawn(legitimate_client(format!("http://{}/", shield.address), Duration::from_secs(4)));
    let (statuses, _) = legit.await.unwrap();
    tokio::task::spawn_blocking(move || attack.wait(Duration::from_secs(30))).await.unwrap();
    eprintln!("range: refused {}", shield.metrics.rejections(Reason::RangeAbuse));
    assert!(shield.metrics.rejections(Reason::RangeAbuse) >= 50);
    all_ok(&statuses);
    shield.shutdown().await;
}
