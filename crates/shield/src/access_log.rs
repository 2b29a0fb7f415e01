//! The structured access log (`[access_log]`): one JSON line per answered request, to a file or
//! stdout, that samples itself under flood and never blocks a request.
//!
//! Every 5xx is written. Refusals (bans, rate limits, flood rules, bad requests: anything with
//! a rejection reason) are written up to `rejections_per_sec` lines a second; successful lines
//! up to `successes_per_sec`, and past that one in N, where N is last second's count over the
//! budget, each such line carrying `"sample": N` (it stands for N requests), at most twice the
//! budget in all. A second in which
//! anything was left out ends with a summary line: every request and rejection of that second
//! counted by kind and reason, so the totals stay exact whatever the sampling.
//!
//! The request path only decides (a short mutex) and `try_send`s into a bounded queue; a
//! thread of its own formats and writes. A full queue drops the line and counts it
//! (`rampart_shield_access_log_dropped_total`). The fields are those `rampart shield baseline
//! --replay` reads (`time_ms`, `client`, `method`, `path`, `query`, `status`, `user_agent`,
//! `latency_ms`), plus `host`, `bytes`, `route`, `reason` and `sample`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, Reason};

/// The `[access_log]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    /// The file lines are appended to (created 0640 if missing), or `-` for stdout.
    pub path: PathBuf,
    /// Successful lines written a second before sampling starts.
    #[serde(default = "default_per_sec")]
    pub successes_per_sec: u32,
    /// Refusal lines written a second; the rest are in the second's summary.
    #[serde(default = "default_per_sec")]
    pub rejections_per_sec: u32,
    /// Lines waiting for the writer at most; beyond, lines are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_per_sec() -> u32 {
    100
}

fn default_queue() -> usize {
    8192
}

impl AccessLogSettings {
    /// The first out-of-range value: (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path".into(), "give a file, or \"-\" for stdout".into()));
        }
        for (key, value) in [
            ("successes_per_sec", self.successes_per_sec as usize),
            ("rejections_per_sec", self.rejections_per_sec as usize),
            ("queue", self.queue),
        ] {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When the response ended (or was abandoned), Unix milliseconds, as nginx's `$msec`.
    pub time_ms: u64,
    /// The client address (the peer, or from a trusted proxy's forwarded headers).
    pub client: String,
    /// The method.
    pub method: String,
    /// The host asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path.
    pub path: String,
    /// The query string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The status sent.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// From the request head to the end (or abandonment) of the response body.
    pub latency_ms: f64,
    /// The route that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Why the shield refused it (the metrics' rejection reason: `Banned`, `RateAddress`,
    /// `FloodRule`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The User-Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// This line stands for this many requests (sampling); absent means 1.
    #[serde(skip_serializing_if = "is_one")]
    pub sample: u64,
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// What a second's lines left out, and its exact totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The end of the second, Unix milliseconds.
    pub time_ms: u64,
    /// Always true: tells summary lines from request lines.
    pub summary: bool,
    /// The Unix second summed up.
    pub second: u64,
    /// Successful requests in it.
    pub successes: u64,
    /// Of which written as lines.
    pub success_lines: u64,
    /// 5xx answers (all written, unless the queue dropped them).
    pub errors: u64,
    /// Refusals by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Of which written as lines.
    pub rejection_lines: u64,
}

/// What a line is, for sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered, not a 5xx, no rejection reason.
    Success,
    /// A 5xx (with or without a reason).
    Error,
    /// Refused for this reason (not a 5xx).
    Rejected(Reason),
}

/// Whether to write a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it, standing for this many requests.
    Write {
        /// The line's `sample`.
        sample: u64,
    },
    /// Leave it to the summary.
    Skip,
}

/// The sampling policy: a pure core fed each line's kind and the Unix second it ends in.
#[derive(Debug, Clone)]
pub struct Sampler {
    successes_per_sec: u64,
    rejections_per_sec: u64,
    second: u64,
    successes: u64,
    success_lines: u64,
    errors: u64,
    rejected: BTreeMap<Reason, u64>,
    rejection_lines: u64,
    /// One success line in this many, once the budget is spent (from last second's count).
    every: u64,
}

impl Sampler {
    /// A sampler with these budgets a second.
    pub fn new(successes_per_sec: u32, rejections_per_sec: u32) -> Sampler {
        Sampler {
            successes_per_sec: u64::from(successes_per_sec.max(1)),
            rejections_per_sec: u64::from(rejections_per_sec.max(1)),
            second: 0,
            successes: 0,
            success_lines: 0,
            errors: 0,
            rejected: BTreeMap::new(),
            rejection_lines: 0,
            every: 1,
        }
    }

    /// Close the current second if `second` is later: its summary, when anything was left out.
    pub fn roll(&mut self, second: u64) -> Option<Summary> {
        if second <= self.second {
            return None;
        }
        let rejected: u64 = self.rejected.values().sum();
        let left_out = self.successes > self.success_lines || rejected > self.rejection_lines;
        let summary = left_out.then(|| Summary {
            time_ms: (self.second + 1) * 1000,
            summary: true,
            second: self.second,
            successes: self.successes,
            success_lines: self.success_lines,
            errors: self.errors,
            rejected: self.rejected.iter().map(|(r, n)| (format!("{r:?}"), *n)).collect(),
            rejection_lines: self.rejection_lines,
        });
        // The next second samples at the rate this one needed (an idle gap resets it).
        self.every = if second == self.second + 1 {
            self.successes.div_ceil(self.successes_per_sec).max(1)
        } else {
            1
        };
        self.second = second;
        self.successes = 0;
        self.success_lines = 0;
        self.errors = 0;
        self.rejected.clear();
        self.rejection_lines = 0;
        summary
    }

    /// Whether to write a line of `kind` in `second`, and the summary of a second it closed.
    pub fn decide(&mut self, kind: Kind, second: u64) -> (Decision, Option<Summary>) {
        let summary = self.roll(second);
        let decision = match kind {
            Kind::Error => {
                self.errors += 1;
                Decision::Write { sample: 1 }
            }
            Kind::Rejected(reason) => {
                *self.rejected.entry(reason).or_insert(0) += 1;
                if self.rejection_lines < self.rejections_per_sec {
                    self.rejection_lines += 1;
                    Decision::Write { sample: 1 }
                } else {
                    Decision::Skip
                }
            }
            Kind::Success => {
                self.successes += 1;
                let past = self.successes.saturating_sub(self.successes_per_sec);
                let sampled = self.success_lines.saturating_sub(self.successes_per_sec);
                if past == 0 {
                    self.success_lines += 1;
                    Decision::Write { sample: 1 }
                } else if sampled >= self.successes_per_sec {
                    // At most twice the budget a second; the summary has the rest.
                    Decision::Skip
                } else if self.every > 1 && past.is_multiple_of(self.every) {
                    self.success_lines += 1;
                    Decision::Write { sample: self.every }
                } else if self.every <= 1 && past.is_power_of_two() {
                    // A flood starting this second: ever sparser until the next second knows
                    // its rate.
                    self.success_lines += 1;
                    Decision::Write { sample: (past / 2).max(1) }
                } else {
                    Decision::Skip
                }
            }
        };
        (decision, summary)
    }
}

enum Line {
    Entry(Box<Entry>),
    Summary(Summary),
}

/// The running log: the sampler, the queue and its writer thread (which ends once every
/// handle is gone and the queue is written).
#[derive(Debug)]
pub struct AccessLog {
    settings: AccessLogSettings,
    sampler: Arc<Mutex<Sampler>>,
    sender: SyncSender<Line>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Line")
    }
}

/// The Unix time now: (milliseconds, second).
fn unix_now() -> (u64, u64) {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    (ms, ms / 1000)
}

impl AccessLog {
    /// Open the file (or stdout) and start the writer.
    pub fn open(settings: &AccessLogSettings, metrics: Arc<Metrics>) -> std::io::Result<Arc<AccessLog>> {
        let out: Box<dyn Write + Send> = if settings.path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            Box::new(options.open(&settings.path)?)
        };
        let sampler =
            Arc::new(Mutex::new(Sampler::new(settings.successes_per_sec, settings.rejections_per_sec)));
        let (sender, receiver) = std::sync::mpsc::sync_channel(settings.queue);
        let thread_sampler = Arc::clone(&sampler);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, out, &thread_sampler))?;
        Ok(Arc::new(AccessLog { settings: settings.clone(), sampler, sender, metrics }))
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &AccessLogSettings {
        &self.settings
    }

    /// Log `entry` (its `time_ms` and `sample` are set here) as `kind`, or leave it to the
    /// summary.
    pub fn submit(&self, mut entry: Entry, kind: Kind) {
        let (time_ms, second) = unix_now();
        entry.time_ms = time_ms;
        let (decision, summary) = self.sampler.lock().unwrap_or_else(|p| p.into_inner()).decide(kind, second);
        if let Some(summary) = summary {
            self.send(Line::Summary(summary));
        }
        if let Decision::Write { sample } = decision {
            entry.sample = sample;
            self.send(Line::Entry(Box::new(entry)));
        }
    }

    fn send(&self, line: Line) {
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.access_log_dropped.inc();
            }
        }
    }
}

fn write_lines(receiver: Receiver<Line>, out: Box<dyn Write + Send>, sampler: &Mutex<Sampler>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let write = |out: &mut std::io::BufWriter<Box<dyn Write + Send>>, line: Line| {
        let text = match line {
            Line::Entry(entry) => serde_json::to_string(&entry),
            Line::Summary(summary) => serde_json::to_string(&summary),
        };
        if let Ok(text) = text {
            // A full disk loses lines, never requests.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.write_all(b"\n"));
        }
    };
    loop {
        match receiver.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                write(&mut out, line);
                while let Ok(line) = receiver.try_recv() {
                    write(&mut out, line);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
        // A quiet second still gets its summary.
        let (_, second) = unix_now();
        let summary = sampler.lock().unwrap_or_else(|p| p.into_inner()).roll(second);
        if let Some(summary) = summary {
            write(&mut out, Line::Summary(summary));
        }
        let _ = out.flush();
    }
}

/// The rejection reason of a refused request, on its response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub Reason);

/// The route that answered, on its response's extensions (only while logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteName(pub String);

/// A request being answered, its line waiting for the end of the response body.
#[derive(Debug)]
pub struct Pending {
    log: Arc<AccessLog>,
    entry: Entry,
    started: std::time::Instant,
}

impl Pending {
    /// The line of `request` from `client`, started now.
    pub fn start<B>(log: Arc<AccessLog>, request: &http::Request<B>, client: std::net::IpAddr) -> Pending {
        let uri = request.uri();
        let host = uri
            .authority()
            .map(|a| a.host().to_owned())
            .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok().map(str::to_owned));
        let user_agent =
            request.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let entry = Entry {
            time_ms: 0,
            client: client.to_string(),
            method: request.method().as_str().to_owned(),
            host,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            status: 0,
            bytes: 0,
            latency_ms: 0.0,
            route: None,
            reason: None,
            user_agent,
            sample: 1,
        };
        Pending { log, entry, started: std::time::Instant::now() }
    }

    /// The response's status, route and reason; the line is written when its body ends.
    pub fn finish<B>(mut self, response: http::Response<B>) -> http::Response<LoggedBody<B>> {
        let status = response.status().as_u16();
        let reason = response.extensions().get::<Rejected>().map(|r| r.0);
        self.entry.status = status;
        self.entry.route = response.extensions().get::<RouteName>().map(|r| r.0.clone());
        self.entry.reason = reason.map(|r| format!("{r:?}"));
        let kind = match reason {
            _ if status >= 500 => Kind::Error,
            Some(reason) => Kind::Rejected(reason),
            None => Kind::Success,
        };
        response.map(|inner| LoggedBody { inner, bytes: 0, pending: Some((self, kind)) })
    }
}

/// A response body that counts its bytes and writes its request's line when it ends or is
/// dropped (the client gone).
#[derive(Debug)]
pub struct LoggedBody<B> {
    inner: B,
    bytes: u64,
    pending: Option<(Pending, Kind)>,
}

impl<B> LoggedBody<B> {
    /// A body nobody logs.
    pub fn unlogged(inner: B) -> LoggedBody<B> {
        LoggedBody { inner, bytes: 0, pending: None }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if let Some((pending, kind)) = self.pending.take() {
            let Pending { log, mut entry, started } = pending;
            entry.bytes = self.bytes;
            entry.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            log.submit(entry, kind);
        }
    }
}

impl<B: hyper::body::Body<Data = bytes::Bytes> + Unpin> hyper::body::Body for LoggedBody<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn under_budget_everything_is_written_and_no_summary() {
        let mut s = Sampler::new(10, 5);
        for _ in 0..10 {
            assert_eq!(s.decide(Kind::Success, 100).0, Decision::Write { sample: 1 });
        }
        for _ in 0..5 {
            assert_eq!(s.decide(Kind::Rejected(Reason::Banned), 100).0, Decision::Write { sample: 1 });
        }
        assert_eq!(s.roll(101), None);
    }

    #[test]
    fn errors_are_always_written() {
        let mut s = Sampler::new(1, 1);
        for _ in 0..1000 {
            assert_eq!(s.decide(Kind::Error, 7).0, Decision::Write { sample: 1 });
        }
    }

    #[test]
    fn a_steady_flood_is_sampled_at_last_seconds_rate() {
        let mut s = Sampler::new(100, 10);
        for _ in 0..10_000 {
            s.decide(Kind::Success, 1);
        }
        let summary = s.decide(Kind::Success, 2).1.expect("a summary for second 1");
        assert_eq!(summary.second, 1);
        assert_eq!(summary.successes, 10_000);
        assert!(summary.success_lines < 130, "{}", summary.success_lines);
        let mut lines = 1;
        let mut stood_for = 1;
        for _ in 1..10_000 {
            if let (Decision::Write { sample }, _) = s.decide(Kind::Success, 2) {
                lines += 1;
                stood_for += sample;
            }
        }
        // 100 lines, then one in 100 of the remaining 9,900.
        assert_eq!(lines, 199);
        assert_eq!(stood_for, 100 + 99 * 100);
    }

    #[test]
    fn rejections_past_the_budget_go_to_the_summary_by_reason() {
        let mut s = Sampler::new(100, 3);
        let mut written = 0;
        for i in 0..50 {
            let reason = if i % 2 == 0 { Reason::RateAddress } else { Reason::Banned };
            if s.decide(Kind::Rejected(reason), 9).0 != Decision::Skip {
                written += 1;
            }
        }
        assert_eq!(written, 3);
        let summary = s.roll(10).unwrap();
        assert_eq!(summary.rejected.get("RateAddress"), Some(&25));
        assert_eq!(summary.rejected.get("Banned"), Some(&25));
        assert_eq!(summary.rejection_lines, 3);
        let line = serde_json::to_string(&summary).unwrap();
        assert!(line.contains(r#""summary":true"#), "{line}");
    }

    #[test]
    fn entries_have_the_replay_fields() {
        let entry = Entry {
            time_ms: 1_700_000_000_123,
            client: "192.0.2.7".into(),
            method: "GET".into(),
            host: Some("www.example".into()),
            path: "/a".into(),
            query: Some("b=1".into()),
            status: 200,
            bytes: 2,
            latency_ms: 1.5,
            route: Some("web".into()),
            reason: None,
            user_agent: None,
            sample: 1,
        };
        let line: serde_json::Value = serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        for key in ["time_ms", "client", "method", "path", "query", "status", "latency_ms", "bytes", "route"]
        {
            assert!(line.get(key).is_some(), "{key} in {line}");
        }
        assert!(line.get("sample").is_none() && line.get("reason").is_none());
    }

    #[test]
    fn the_table_is_read_and_checked() {
        let base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[upstream.web]\nservers = [\"http://127.0.0.1:9000\"]\n[[route]]\nupstream = \"web\"\n";
        let config =
            crate::Config::from_toml(&format!("{base}[access_log]\npath = \"-\"\nsuccesses_per_sec = 5\n"))
                .unwrap();
        let log = config.access_log.unwrap();
        assert_eq!((log.successes_per_sec, log.rejections_per_sec, log.queue), (5, 100, 8192));
        let error =
            crate::Config::from_toml(&format!("{base}[access_log]\npath = \"-\"\nqueue = 0\n")).unwrap_err();
        assert!(error.to_string().contains("access_log.queue"), "{error}");
        assert!(crate::Config::from_toml(base).unwrap().access_log.is_none());
    }

    proptest! {
        /// Whatever the traffic, the summaries and written lines account for every request,
        /// and lines a second stay within twice the success budget and the rejection budget
        /// (errors are all written).
        #[test]
        fn totals_are_exact_and_lines_bounded(
            traffic in prop::collection::vec((0u64..6, 0u8..4), 1..3000),
        ) {
            let (budget_ok, budget_rej) = (20u64, 5u64);
            let mut s = Sampler::new(budget_ok as u32, budget_rej as u32);
            let mut second = 1;
            let mut summaries = Vec::new();
            let mut lines: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            let mut sent: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
            for (step, kind) in traffic {
                // Mostly the same second, sometimes the next, rarely a gap.
                if step == 5 { second += 1 + step % 3; }
                let kind = match kind {
                    0 | 1 => Kind::Success,
                    2 => Kind::Rejected(Reason::RateAddress),
                    _ => Kind::Error,
                };
                let t = sent.entry(second).or_default();
                match kind { Kind::Success => t.0 += 1, Kind::Rejected(_) => t.1 += 1, Kind::Error => t.2 += 1 }
                let (decision, summary) = s.decide(kind, second);
                summaries.extend(summary);
                if decision != Decision::Skip {
                    let l = lines.entry(second).or_default();
                    if kind == Kind::Success { l.0 += 1 } else if kind != Kind::Error { l.1 += 1 }
                }
            }
            summaries.extend(s.roll(second + 1));
            for summary in &summaries {
                let (ok, rej, err) = sent[&summary.second];
                prop_assert_eq!(summary.successes, ok);
                prop_assert_eq!(summary.rejected.values().sum::<u64>(), rej);
                prop_assert_eq!(summary.errors, err);
                let (ok_lines, rej_lines) = lines.get(&summary.second).copied().unwrap_or_default();
                prop_assert_eq!(summary.success_lines, ok_lines);
                prop_assert_eq!(summary.rejection_lines, rej_lines);
            }
            for (second, (ok_lines, rej_lines)) in lines {
                let (ok, rej, _) = sent[&second];
                let in_summary = summaries.iter().any(|s| s.second == second);
                // A second without a summary wrote everything.
                prop_assert!(in_summary || (ok_lines == ok && rej_lines == rej));
                prop_assert!(rej_lines <= budget_rej);
                prop_assert!(ok_lines <= 2 * budget_ok, "{} lines", ok_lines);
            }
        }
    }
}
