//! Webhook output: each event POSTed as JSON to an operator's `http://` or `https://` URL
//! (reqwest on rustls), from its own task, through a bounded queue that drops the oldest event
//! when full. Retries with exponential backoff, a bounded number of attempts. Detection never
//! waits for it.
//!
//! Each request can carry an `Authorization` header (from the configuration or a file) and an
//! HMAC-SHA256 signature: `X-Rampart-Timestamp: <unix seconds>` and
//! `X-Rampart-Signature: sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`, signed anew
//! on every attempt, so a receiver can check the body is ours and reject old replays.

use crate::setup;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::config::DaemonConfig;

/// Header with the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-rampart-timestamp";
/// Header with `sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "x-rampart-signature";
/// Secret files larger than this are refused: a key or a header is far smaller.
pub const MAX_SECRET_FILE: u64 = 4096;

/// Parses and checks a webhook URL: `http://` or `https://`, a host, no user name or password
/// (credentials go in `webhook_authorization`).
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the text holds a password.
        return Err("the URL has a user name or password in it; put credentials in webhook_authorization_file instead".to_owned());
    }
    Ok(url)
}

/// Bytes that must not be shown: `Debug` prints their length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Reads a secret file (`key` names the configuration key for the messages): a regular file of
/// at most 4 KiB, on unix readable by its owner only. One trailing newline is removed.
pub fn read_secret_file(path: &Path, key: &str) -> Result<Secret, crate::DaemonError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| setup!("`{key}`: cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(setup!("`{key}`: {shown} is not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(setup!(
            "`{key}`: {shown} is {} bytes; a secret file holds at most {MAX_SECRET_FILE} (is it the right file?)",
            meta.len()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(setup!(
                "`{key}`: {shown} is readable by others (mode {mode:03o}); make it private with `chmod 600 {shown}`"
            ));
        }
    }
    let mut bytes = std::fs::read(path).map_err(|e| setup!("`{key}`: cannot read {shown}: {e}"))?;
    // Re-checked on the bytes read: the file may have grown since the metadata.
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(setup!("`{key}`: {shown} holds more than {MAX_SECRET_FILE} bytes"));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(setup!("`{key}`: {shown} is empty"));
    }
    Ok(Secret(bytes))
}

/// `sha256=<hex>`: HMAC-SHA256 under `key` of `<timestamp>.<body>`.
pub fn sign(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    // HMAC takes keys of any length, so this cannot fail.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for byte in mac.finalize().into_bytes() {
            let _ = write!(out, "{byte:02x}");
        }
    }
    out
}

/// A receiver's check (the scheme's executable specification, used by the tests): the signature matches `<timestamp>.<body>` under `key` (compared in
/// constant time) and the timestamp is within `tolerance` of `now`.
#[cfg(test)]
pub fn verify(key: &[u8], timestamp: &str, signature: &str, body: &[u8], now: u64, tolerance: u64) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else { return false };
    if sent.abs_diff(now) > tolerance {
        return false;
    }
    let Some(hex) = signature.strip_prefix("sha256=") else { return false };
    let Some(tag) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return false };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
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

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
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
    /// Attempts that failed (connection or TLS error, timeout, non-2xx).
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
    pub fn new(capacity: usize) -> WebhookQueue {
        WebhookQueue {
            queue: Arc::new(Mutex::new(BoundedQueue::new(capacity))),
            notify: Arc::new(Notify::new()),
            stats: Arc::new(WebhookStats::default()),
        }
    }

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

    pub(crate) fn pop(&self) -> Option<String> {
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
    pub url: url::Url,
    pub capacity: usize,
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Per attempt, connection to answer.
    pub timeout: Duration,
    /// PEM file of the CAs to trust for https; when set, the built-in roots are not used.
    pub ca_file: Option<PathBuf>,
    /// `Authorization` header value.
    pub authorization: Option<Secret>,
    /// HMAC-SHA256 key for the signature header.
    pub secret: Option<Secret>,
}

/// The sender's settings from the daemon configuration, its secret files read; `None` without
/// a webhook URL.
pub fn settings(config: &DaemonConfig) -> Result<Option<WebhookSettings>, crate::DaemonError> {
    let Some(url) = config.webhook.clone() else { return Ok(None) };
    let authorization = match (&config.webhook_authorization, &config.webhook_authorization_file) {
        (Some(inline), _) => Some(inline.clone()),
        (None, Some(path)) => Some(read_secret_file(path, "outputs.webhook_authorization_file")?),
        (None, None) => None,
    };
    let secret = match &config.webhook_secret_file {
        Some(path) => Some(read_secret_file(path, "outputs.webhook_secret_file")?),
        None => None,
    };
    Ok(Some(WebhookSettings {
        url,
        capacity: config.webhook_queue,
        attempts: config.webhook_attempts,
        backoff_base: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        ca_file: config.webhook_ca_file.clone(),
        authorization,
        secret,
    }))
}

/// The ready sender: client and headers built once.
#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    url: url::Url,
    authorization: Option<HeaderValue>,
    secret: Option<Secret>,
}

impl Sender {
    fn new(settings: &WebhookSettings) -> Result<Sender, crate::DaemonError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect would resend the Authorization header somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            // Only the configured URL, never a proxy from the environment.
            .no_proxy()
            .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| setup!("`outputs.webhook_ca_file`: cannot read {}: {e}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                setup!("`outputs.webhook_ca_file`: {} is not a PEM certificate bundle: {e}", path.display())
            })?;
            if certificates.is_empty() {
                return Err(setup!("`outputs.webhook_ca_file`: {} holds no certificate", path.display()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| setup!("cannot set up the webhook client: {e}"))?;
        let authorization = match &settings.authorization {
            Some(secret) => {
                let mut value = HeaderValue::from_bytes(secret.expose()).map_err(|_| {
                    setup!(
                        "`outputs.webhook_authorization`: not a valid header value (one line of visible ASCII, e.g. `Bearer TOKEN`)"
                    )
                })?;
                // Kept out of any debug output of the request.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Sender { client, url: settings.url.clone(), authorization, secret: settings.secret.clone() })
    }

    /// One POST; the response status, or why there is none.
    async fn post(&self, body: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp)
            .body(body.to_owned());
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(key) = &self.secret {
            request = request.header(SIGNATURE_HEADER, sign(key.expose(), timestamp, body.as_bytes()));
        }
        Ok(request.send().await?.status())
    }
}

/// Starts the sender task; returns the queue to push to. The task runs until `stop` fires
/// (an event being retried is then abandoned). Fails on an unusable CA file or header.
pub fn start(
    settings: WebhookSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(WebhookQueue, tokio::task::JoinHandle<()>), crate::DaemonError> {
    let sender = Sender::new(&settings)?;
    let queue = WebhookQueue::new(settings.capacity);
    let worker = queue.clone();
    let task = tokio::spawn(async move {
        loop {
            while let Some(body) = worker.pop() {
                if *stop.borrow() {
                    return;
                }
                deliver(&sender, &settings, &body, &worker.stats, &mut stop).await;
                worker.stats.in_flight.store(0, Ordering::Relaxed);
            }
            tokio::select! {
                _ = worker.notify.notified() => {}
                _ = stop.changed() => return,
            }
        }
    });
    Ok((queue, task))
}

async fn deliver(
    sender: &Sender,
    settings: &WebhookSettings,
    body: &str,
    stats: &WebhookStats,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut last_error = String::new();
    for attempt in 1..=settings.attempts {
        if attempt > 1 {
            let delay = backoff(attempt - 1, settings.backoff_base, settings.backoff_max);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
        match sender.post(body).await {
            Ok(status) if status.is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(status) => {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                last_error = format!("answered {status}");
            }
            Err(error) => {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                last_error = error_chain(&error.without_url());
            }
        }
    }
    stats.abandoned.fetch_add(1, Ordering::Relaxed);
    // The origin only: a URL's path or query may hold a token.
    eprintln!(
        "rampart: webhook {}: gave up on an event after {} attempt(s): {last_error}",
        settings.url.origin().ascii_serialization(),
        settings.attempts
    );
}

/// An error and its causes on one line (reqwest's own message is only the outermost one).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short, but a cycle must not hang the sender.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
