//! The metrics endpoint under a connection flood: a real daemon on loopback ports, 1,000 idle
//! TCP connections held open to its metrics port (re-opened as the server drops them), and
//! legitimate scrapes that must still succeed; a slowloris client (headers that never end)
//! must be cut after the header timeout. Traffic goes to 127.0.0.1 only; every loop is bounded
//! in count and time. 1,000 sockets fit the default soft limit on file descriptors here
//! (ulimit -n 20000); the test says so and skips the flood below 1,200.
#![cfg(unix)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const IDLE_CONNECTIONS: usize = 1000;
const SCRAPES: usize = 40;

struct Daemon {
    child: Child,
    metrics: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rampart.toml");
        std::fs::write(&config, "protected = [\"198.51.100.0/24\"]\n").unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart run");
        let (tx, rx) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let metrics = loop {
            let line = rx.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
            if let Some(url) = line.strip_prefix("metrics on http://") {
                break url.trim_end_matches("/metrics").parse().unwrap();
            }
        };
        Daemon { child, metrics, _dir: dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape on a fresh connection: Ok(latency) for a complete 200 response with metrics.
fn scrape(addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    scrape_text(addr)?;
    Ok(started.elapsed())
}

/// One scrape on a fresh connection: the response, if a complete 200 with metrics.
fn scrape_text(addr: SocketAddr) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") || !text.contains("rampart_active_attacks") {
        return Err(format!("bad response: {:?}", text.get(..text.len().min(80))));
    }
    Ok(text.into_owned())
}

/// Whether the server has closed `stream` (EOF or reset), without blocking.
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
    }
}

fn idle_connection(addr: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn scrapes_succeed_while_1000_idle_connections_are_held_open() {
    if open_files_limit().is_some_and(|limit| limit < 1200) {
        eprintln!("skipped: the soft limit on open files is under 1200 (raise ulimit -n)");
        return;
    }
    let daemon = Daemon::start();
    let addr = daemon.metrics;
    scrape(addr).expect("a scrape before the flood");

    // The flood: 1,000 connections that never send a byte, re-opened whenever the server
    // closes one, for as long as the scrapes run (at most 90 s, at most 50,000 connects).
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let reopened = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, held, reopened) = (stop.clone(), held.clone(), reopened.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut connects = 0usize;
            let mut streams: Vec<Option<TcpStream>> = (0..IDLE_CONNECTIONS).map(|_| None).collect();
            let mut open = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && connects < 50_000 {
                for slot in streams.iter_mut() {
                    if slot.as_mut().is_some_and(closed) {
                        *slot = None;
                        open -= 1;
                        reopened.fetch_add(1, Ordering::Relaxed);
                    }
                    if slot.is_none() && connects < 50_000 && !stop.load(Ordering::Relaxed) {
                        connects += 1;
                        *slot = idle_connection(addr);
                        open += usize::from(slot.is_some());
                    }
                    held.store(open, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            connects
        })
    };
    // Scrape once the flood holds its connections (or after 20 s of trying).
    let wait_until = Instant::now() + Duration::from_secs(20);
    while held.load(Ordering::Relaxed) < IDLE_CONNECTIONS && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let held_at_start = held.load(Ordering::Relaxed);

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..SCRAPES {
        match scrape(addr) {
            Ok(latency) => latencies.push(latency),
            Err(error) => failures.push(error),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let connects = flood.join().unwrap();

    latencies.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let ratio = latencies.len() as f64 / SCRAPES as f64;
    println!(
        "flood: {held_at_start} idle connections held when scraping began, {connects} connects, \
         {} closed by the server; scrapes: {}/{SCRAPES} succeeded ({:.0} %), latency p50 {:.1} ms, \
         p95 {:.1} ms, max {:.1} ms; failures: {:?}",
        reopened.load(Ordering::Relaxed),
        latencies.len(),
        ratio * 100.0,
        ms(latencies.get(latencies.len() / 2)),
        ms(latencies.get((latencies.len() * 95 / 100).min(latencies.len().saturating_sub(1)))),
        ms(latencies.last()),
        failures.iter().take(3).collect::<Vec<_>>(),
    );
    assert!(ratio >= 0.95, "only {:.0} % of scrapes succeeded under the flood", ratio * 100.0);
    assert!(held_at_start >= IDLE_CONNECTIONS * 9 / 10, "the flood held only {held_at_start} connections");
    // And the daemon is fine afterwards; its counters show how it coped.
    let text = scrape_text(addr).expect("a scrape after the flood");
    let value =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0);
    let (evicted, timed_out) = (
        value("rampart_metrics_connections_evicted_total"),
        value("rampart_metrics_connections_timed_out_total"),
    );
    println!(
        "server: {} accepted, {evicted} evicted, {} shed, {timed_out} timed out",
        value("rampart_metrics_connections_accepted_total"),
        value("rampart_metrics_connections_shed_total"),
    );
    assert!(evicted + timed_out > 0, "the idle connections were neither evicted nor timed out");
}

#[test]
fn slowloris_headers_are_cut_after_the_header_timeout() {
    let daemon = Daemon::start();
    let mut stream = TcpStream::connect_timeout(&daemon.metrics, Duration::from_secs(2)).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    // One header line every 250 ms, never the blank line that ends the head; at most 20 s.
    let mut cut = None;
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(20) {
        n += 1;
        if stream.write_all(format!("X-Slow-{n}: a\r\n").as_bytes()).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut buffer = [0u8; 512];
        match stream.read(&mut buffer) {
            Ok(_) => {
                // EOF, or an error response (408/400) just before the close.
                cut = Some(started.elapsed());
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                cut = Some(started.elapsed());
                break;
            }
        }
    }
    let cut = cut.expect("a slowloris connection was still open after 20 s");
    println!("slowloris connection cut after {:.2} s ({n} header lines sent)", cut.as_secs_f64());
    assert!(cut >= Duration::from_secs(2), "cut after {cut:?}: too early for a header timeout");
    assert!(cut <= Duration::from_secs(8), "cut after {cut:?}: the header timeout is a few seconds");
}
