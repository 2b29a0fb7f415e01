//! Webhook output: each event POSTed as JSON to an operator's `http://` URL, from its own task,
//! through a bounded queue that drops the oldest event when full. Retries with exponential
//! backoff, a bounded number of attempts. Detection never waits for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A parsed `http://HOST[:PORT][/PATH]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl WebhookUrl {
    /// Parses an `http://` URL (no TLS, no user info).
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| format!("{text:?} is not an http:// URL (https is not supported)"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.chars().any(|c| c.is_whitespace()) {
            return Err(format!("{text:?} is not a usable http://HOST[:PORT]/PATH URL"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // A bracketed IPv6 address without a port ends with `]`.
            Some((host, port)) if !port.ends_with(']') => {
                let port = port.parse::<u16>().map_err(|_| format!("{text:?} has a bad port"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        Ok(WebhookUrl { host: host.to_owned(), port, path: path.to_owned() })
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// A FIFO of at most `capacity` items that drops its oldest item to make room.
#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    pub fn new(capacity: usize) -> Self {
        BoundedQueue { items: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Appends `item`; returns the oldest item if it had to be dropped.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = (self.items.len() >= self.capacity).then(|| self.items.pop_front()).flatten();
        self.items.push_back(item);
        dropped
    }

    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// Delay before retry number `retry` (1 = first retry): `base · 2^(retry-1)`, at most `max`.
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// Webhook counters, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events delivered (2xx answer).
    pub delivered: AtomicU64,
    /// Attempts that failed (connection error, timeout, non-2xx).
    pub failed_attempts: AtomicU64,
    /// Events given up after every attempt failed.
    pub abandoned: AtomicU64,
    /// Events dropped from the full queue (oldest first).
    pub dropped: AtomicU64,
    /// Events waiting.
    pub queued: AtomicU64,
    /// Events being delivered (0 or 1).
    pub in_flight: AtomicU64,
}

impl WebhookStats {
    /// Events not yet delivered nor given up.
    pub fn pending(&self) -> u64 {
        self.queued.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed)
    }
}

/// The producer side: cheap, never blocks.
#[derive(Debug, Clone)]
pub struct WebhookQueue {
    queue: Arc<Mutex<BoundedQueue<String>>>,
    notify: Arc<Notify>,
    pub stats: Arc<WebhookStats>,
}

impl WebhookQueue {
    /// Queues one JSON body.
    pub fn push(&self, body: String) {
        let Ok(mut queue) = self.queue.lock() else { return };
        if queue.push(body).is_some() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        drop(queue);
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<String> {
        let mut queue = self.queue.lock().ok()?;
        let body = queue.pop();
        self.stats.in_flight.store(u64::from(body.is_some()), Ordering::Relaxed);
        self.stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        body
    }
}

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: WebhookUrl,
    pub capacity: usize,
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
}

/// Starts the sender task; returns the queue to push to. The task runs until `stop` fires
/// (an event being retried is then abandoned).
pub fn start(
    settings: WebhookSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (WebhookQueue, tokio::task::JoinHandle<()>) {
    let queue = WebhookQueue {
        queue: Arc::new(Mutex::new(BoundedQueue::new(settings.capacity))),
        notify: Arc::new(Notify::new()),
        stats: Arc::new(WebhookStats::default()),
    };
    let worker = queue.clone();
    let task = tokio::spawn(async move {
        loop {
            while let Some(body) = worker.pop() {
                if *stop.borrow() {
                    return;
                }
                deliver(&settings, &body, &worker.stats, &mut stop).await;
                worker.stats.in_flight.store(0, Ordering::Relaxed);
            }
            tokio::select! {
                _ = worker.notify.notified() => {}
                _ = stop.changed() => return,
            }
        }
    });
    (queue, task)
}

async fn deliver(
    settings: &WebhookSettings,
    body: &str,
    stats: &WebhookStats,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    for attempt in 1..=settings.attempts {
        if attempt > 1 {
            let delay = backoff(attempt - 1, settings.backoff_base, settings.backoff_max);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
        match tokio::time::timeout(settings.timeout, post(&settings.url, body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    stats.abandoned.fetch_add(1, Ordering::Relaxed);
}

/// One HTTP/1.1 POST; returns the response status code.
pub async fn post(url: &WebhookUrl, body: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: rampart\r\nConnection: close\r\n\r\n",
        url.path,
        url.port,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    // The status line is all we need; read at most a little.
    let mut response = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !response.contains(&b'\n') && response.len() < 4096 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    parse_status(&response)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// The status code of an `HTTP/1.x NNN ...` status line.
pub fn parse_status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok().filter(|s| (100..600).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_urls() {
        let url = WebhookUrl::parse("http://127.0.0.1:8080/hooks/rampart").unwrap();
        assert_eq!(url, WebhookUrl { host: "127.0.0.1".into(), port: 8080, path: "/hooks/rampart".into() });
        let url = WebhookUrl::parse("http://alerts.example").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        let url = WebhookUrl::parse("http://[::1]:9/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 9));
        assert_eq!(url.to_string(), "http://[::1]:9/x");
        assert_eq!(WebhookUrl::parse("http://[::1]/").unwrap().port, 80);
        for bad in ["https://x/", "ftp://x", "http://", "http://:80/", "http://u@h/", "http://h:99999/"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queue_drops_the_oldest() {
        let mut queue = BoundedQueue::new(2);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.push(2), None);
        assert_eq!(queue.push(3), Some(1));
        assert_eq!((queue.pop(), queue.pop(), queue.pop()), (Some(2), Some(3), None));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (1..=6).map(|r| backoff(r, base, max).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(u32::MAX, base, max), max);
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 500 Oops\r\n"), Some(500));
        assert_eq!(parse_status(b"SSH-2.0-x\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn url_and_status_parsers_never_panic(text in ".{0,64}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = WebhookUrl::parse(&text);
            let _ = WebhookUrl::parse(&format!("http://{text}"));
            let _ = parse_status(&bytes);
        }

        #[test]
        fn queue_never_exceeds_capacity(capacity in 1usize..8, pushes in 0usize..40) {
            let mut queue = BoundedQueue::new(capacity);
            let mut dropped = 0;
            for i in 0..pushes {
                dropped += usize::from(queue.push(i).is_some());
                prop_assert!(queue.len() <= capacity);
            }
            prop_assert_eq!(dropped + queue.len(), pushes);
        }
    }

    /// A local server that answers 503 to the first two requests, then 200; the sender must
    /// retry and deliver both events.
    #[tokio::test]
    async fn retries_until_delivered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            let mut requests = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                requests += 1;
                let request = super::super::http::read_request(&mut stream).await.unwrap_or_default();
                let status = if requests <= 2 { "503 Busy" } else { "200 OK" };
                let body = String::from_utf8_lossy(&request.body).into_owned();
                seen.lock().unwrap().push((status, body));
                let _ = stream
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let settings = WebhookSettings {
            url: WebhookUrl::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap(),
            capacity: 8,
            attempts: 5,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        };
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (queue, _task) = start(settings, stop);
        queue.push(r#"{"event":"onset"}"#.into());
        queue.push(r#"{"event":"end"}"#.into());
        for _ in 0..500 {
            if queue.stats.delivered.load(Ordering::Relaxed) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(queue.stats.delivered.load(Ordering::Relaxed), 2);
        assert_eq!(queue.stats.failed_attempts.load(Ordering::Relaxed), 2);
        assert_eq!(queue.stats.abandoned.load(Ordering::Relaxed), 0);
        let bodies = bodies.lock().unwrap();
        let got: Vec<(&str, &str)> = bodies.iter().map(|(s, b)| (*s, b.as_str())).collect();
        assert_eq!(
            got,
            [
                ("503 Busy", r#"{"event":"onset"}"#),
                ("503 Busy", r#"{"event":"onset"}"#),
                ("200 OK", r#"{"event":"onset"}"#),
                ("200 OK", r#"{"event":"end"}"#)
            ]
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        // Nothing listens on this port once the listener is dropped: every connect fails.
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let settings = WebhookSettings {
            url: WebhookUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            capacity: 1,
            attempts: 3,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            timeout: Duration::from_secs(1),
        };
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (queue, _task) = start(settings, stop);
        queue.push("{}".into());
        for _ in 0..500 {
            if queue.stats.abandoned.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(queue.stats.abandoned.load(Ordering::Relaxed), 1);
        assert_eq!(queue.stats.failed_attempts.load(Ordering::Relaxed), 3);
    }
}
