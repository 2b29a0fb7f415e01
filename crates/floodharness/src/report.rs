//! What a scenario measured, and the arithmetic on it (pure).
//!
//! A flood request ends one of these ways: the origin answered it (the origin marks its
//! answers), the proxy answered it instead (a challenge, 403, 429, or any other answer of its
//! own, such as nginx's 503 of `limit_req`), the connection was refused or closed without an
//! answer, or no answer came within the timeout. "Mitigated" counts the proxy's answers and the
//! refused connections; a timeout is neither served nor mitigated (it usually means the proxy
//! or origin is drowning), so it counts against mitigation.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::flood::FloodKind;
use crate::origin::OriginStats;

/// Share of a second's flood requests that must be mitigated for the second to count.
pub const MITIGATED_SHARE: f64 = 0.9;

/// How one flood request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodOutcome {
    /// The origin answered.
    Origin,
    /// The proxy answered with a challenge (a meta refresh, a redirect, or a page of its own).
    Challenged,
    /// The proxy answered 403.
    Blocked,
    /// The proxy answered 429.
    Throttled,
    /// The proxy answered something else of its own (e.g. 503).
    Refused,
    /// The connection was refused, reset or closed without an answer.
    Dropped,
    /// No answer within the timeout.
    TimedOut,
}

/// The flood requests started in one second, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FloodSecond {
    /// Answered by the origin.
    pub origin: u64,
    /// Challenged by the proxy.
    pub challenged: u64,
    /// Blocked (403) by the proxy.
    pub blocked: u64,
    /// Throttled (429) by the proxy.
    pub throttled: u64,
    /// Other answers of the proxy.
    pub refused: u64,
    /// Connections refused or closed without an answer.
    pub dropped: u64,
    /// No answer in time.
    pub timed_out: u64,
}

impl FloodSecond {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: FloodOutcome) {
        let slot = match outcome {
            FloodOutcome::Origin => &mut self.origin,
            FloodOutcome::Challenged => &mut self.challenged,
            FloodOutcome::Blocked => &mut self.blocked,
            FloodOutcome::Throttled => &mut self.throttled,
            FloodOutcome::Refused => &mut self.refused,
            FloodOutcome::Dropped => &mut self.dropped,
            FloodOutcome::TimedOut => &mut self.timed_out,
        };
        *slot += 1;
    }

    /// Adds another second's counts.
    pub fn merge(&mut self, other: &FloodSecond) {
        self.origin += other.origin;
        self.challenged += other.challenged;
        self.blocked += other.blocked;
        self.throttled += other.throttled;
        self.refused += other.refused;
        self.dropped += other.dropped;
        self.timed_out += other.timed_out;
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.origin + self.mitigated() + self.timed_out
    }

    /// Requests the proxy refused, challenged or dropped.
    pub fn mitigated(&self) -> u64 {
        self.challenged + self.blocked + self.throttled + self.refused + self.dropped
    }

    /// The mitigated share, `None` for a second without requests.
    pub fn mitigated_share(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.mitigated() as f64 / total as f64)
    }
}

/// The first second (from the flood's start) from which every second with flood requests had
/// at least [`MITIGATED_SHARE`] of them mitigated, up to the end; `None` if the last seconds
/// were not mitigated (or there were no requests).
pub fn time_to_mitigation(series: &[FloodSecond]) -> Option<u32> {
    let mut first = None;
    for (second, counts) in series.iter().enumerate() {
        match counts.mitigated_share() {
            None => {}
            Some(share) if share >= MITIGATED_SHARE => {
                first.get_or_insert(second);
            }
            Some(_) => first = None,
        }
    }
    first.and_then(|s| u32::try_from(s).ok())
}

/// How one legitimate request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegitRecord {
    /// When it started, since the scenario's start.
    pub started: Duration,
    /// From the first byte sent to the final answer (challenges followed included).
    pub latency: Duration,
    /// The final status, `None` without an answer.
    pub status: Option<u16>,
    /// Whether a challenge stood in its way (followed or not).
    pub challenged: bool,
    /// Whether the final answer came from the origin.
    pub from_origin: bool,
}

impl LegitRecord {
    /// A request succeeds only with the origin's own answer (not an error page of it).
    pub fn succeeded(&self) -> bool {
        self.from_origin && self.status.is_some_and(|s| s < 400)
    }

    /// Refused with 403 by the proxy.
    pub fn blocked(&self) -> bool {
        !self.from_origin && self.status == Some(403)
    }

    /// Refused with 429 by the proxy.
    pub fn throttled(&self) -> bool {
        !self.from_origin && self.status == Some(429)
    }
}

/// The legitimate browsers' requests, summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LegitSummary {
    /// Requests made.
    pub requests: u64,
    /// Answered by the origin.
    pub succeeded: u64,
    /// Met a challenge (each such request once, whether it then got through or not).
    pub challenged: u64,
    /// Refused with 403.
    pub blocked: u64,
    /// Refused with 429.
    pub throttled: u64,
    /// Anything else: another refusal, an error, no answer.
    pub failed: u64,
    /// Median latency of the successful ones, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency of the successful ones, milliseconds.
    pub p99_ms: f64,
}

impl LegitSummary {
    /// Sums records.
    pub fn of(records: &[LegitRecord]) -> LegitSummary {
        let mut summary = LegitSummary { requests: records.len() as u64, ..LegitSummary::default() };
        let mut latencies = Vec::with_capacity(records.len());
        for record in records {
            if record.challenged {
                summary.challenged += 1;
            }
            if record.succeeded() {
                summary.succeeded += 1;
                latencies.push(record.latency.as_secs_f64() * 1000.0);
            } else if record.blocked() {
                summary.blocked += 1;
            } else if record.throttled() {
                summary.throttled += 1;
            } else {
                summary.failed += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        summary.p50_ms = percentile(&latencies, 0.50);
        summary.p99_ms = percentile(&latencies, 0.99);
        summary
    }

    /// Share that succeeded, in percent (100 with no requests: nothing failed).
    pub fn success_pct(&self) -> f64 {
        pct(self.succeeded, self.requests, 100.0)
    }

    /// Share challenged or blocked (403 or 429), in percent: the ≤ 0.1 % budget.
    pub fn hindered_pct(&self) -> f64 {
        pct(self.challenged + self.blocked + self.throttled, self.requests, 0.0)
    }
}

fn pct(part: u64, whole: u64, empty: f64) -> f64 {
    if whole == 0 { empty } else { part as f64 * 100.0 / whole as f64 }
}

/// Nearest-rank percentile of sorted values; 0 without values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was in front of the origin (a proxy's name, or "origin" for none).
    pub target: String,
    /// The flood.
    pub flood: FloodKind,
    /// The flood's planned rate, requests per second.
    pub flood_rate: u32,
    /// The flood's planned length, seconds.
    pub flood_secs: u32,
    /// Legitimate requests started while the flood ran.
    pub legit_during_flood: LegitSummary,
    /// All legitimate requests (warm-up included).
    pub legit_all: LegitSummary,
    /// Flood requests by outcome, per second from the flood's start.
    pub flood_series: Vec<FloodSecond>,
    /// Flood requests by outcome, in total.
    pub flood_total: FloodSecond,
    /// Requests the origin answered (everyone's), per second from the flood's start.
    pub origin_series: Vec<u64>,
    /// Seconds from the flood's start to its mitigation; `None`: never.
    pub mitigation_secs: Option<u32>,
    /// The origin's counters at the end.
    pub origin: OriginStats,
}

impl Report {
    /// Builds a report, computing the totals and the mitigation time.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: String,
        flood: FloodKind,
        flood_rate: u32,
        flood_secs: u32,
        legit: &[LegitRecord],
        flood_window: (Duration, Duration),
        flood_series: Vec<FloodSecond>,
        origin_series: Vec<u64>,
        origin: OriginStats,
    ) -> Report {
        let during: Vec<LegitRecord> = legit
            .iter()
            .copied()
            .filter(|r| r.started >= flood_window.0 && r.started < flood_window.1)
            .collect();
        let mut flood_total = FloodSecond::default();
        for second in &flood_series {
            flood_total.merge(second);
        }
        Report {
            target,
            flood,
            flood_rate,
            flood_secs,
            legit_during_flood: LegitSummary::of(&during),
            legit_all: LegitSummary::of(legit),
            mitigation_secs: time_to_mitigation(&flood_series),
            flood_series,
            flood_total,
            origin_series,
            origin,
        }
    }

    /// The header of [`Report::row`]'s table (Markdown).
    pub fn table_header() -> &'static str {
        "| target | flood | legit ok % | legit challenged/blocked % | legit p99 ms | flood sent | flood reached origin | flood mitigated % | time to mitigation | origin max in flight (limit) |\n|---|---|---:|---:|---:|---:|---:|---:|---|---:|"
    }

    /// One Markdown table row.
    pub fn row(&self) -> String {
        let legit = &self.legit_during_flood;
        let mitigated =
            self.flood_total.mitigated_share().map_or("-".to_owned(), |s| format!("{:.1}", s * 100.0));
        let mitigation = self.mitigation_secs.map_or("never".to_owned(), |s| format!("{s} s"));
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} ({}) |",
            self.target,
            self.flood.name(),
            legit.success_pct(),
            legit.hindered_pct(),
            legit.p99_ms,
            self.flood_total.total(),
            self.flood_total.origin,
            mitigated,
            mitigation,
            self.origin.max_in_flight,
            self.origin.concurrency_limit,
        )
    }

    /// A human summary: the row, the legitimate counts and the per-second series.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let l = &self.legit_during_flood;
        let _ = writeln!(
            out,
            "{} against {}: {} req/s for {} s",
            self.flood.name(),
            self.target,
            self.flood_rate,
            self.flood_secs
        );
        let _ = writeln!(
            out,
            "  legitimate during the flood: {} requests, {} ok ({:.2} %), {} challenged, {} blocked, {} throttled, {} failed; p50 {:.1} ms, p99 {:.1} ms",
            l.requests,
            l.succeeded,
            l.success_pct(),
            l.challenged,
            l.blocked,
            l.throttled,
            l.failed,
            l.p50_ms,
            l.p99_ms
        );
        let _ = writeln!(
            out,
            "  second: flood sent / reached origin / challenged / 403 / 429 / other refusal / dropped / timed out | origin answers"
        );
        for (second, counts) in self.flood_series.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {second:>3}: {} / {} / {} / {} / {} / {} / {} / {} | {}",
                counts.total(),
                counts.origin,
                counts.challenged,
                counts.blocked,
                counts.throttled,
                counts.refused,
                counts.dropped,
                counts.timed_out,
                self.origin_series.get(second).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "  mitigation: {}; origin max in flight {} (limit {})",
            self.mitigation_secs.map_or("never".to_owned(), |s| format!("{s} s after the flood's start")),
            self.origin.max_in_flight,
            self.origin.concurrency_limit
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(origin: u64, mitigated: u64, timed_out: u64) -> FloodSecond {
        FloodSecond { origin, throttled: mitigated, timed_out, ..FloodSecond::default() }
    }

    #[test]
    fn mitigation_is_the_start_of_the_mitigated_tail() {
        assert_eq!(time_to_mitigation(&[]), None);
        assert_eq!(time_to_mitigation(&[second(100, 0, 0); 5]), None);
        assert_eq!(time_to_mitigation(&[second(0, 100, 0); 5]), Some(0));
        let series =
            [second(100, 0, 0), second(50, 50, 0), second(5, 95, 0), second(10, 90, 0), second(1, 99, 0)];
        assert_eq!(time_to_mitigation(&series), Some(2));
        // A relapse restarts the clock; empty seconds neither break nor make the tail.
        let series = [
            second(0, 100, 0),
            second(20, 80, 0),
            FloodSecond::default(),
            second(0, 10, 0),
            FloodSecond::default(),
        ];
        assert_eq!(time_to_mitigation(&series), Some(3));
        // Timeouts are not mitigation.
        assert_eq!(time_to_mitigation(&[second(0, 50, 50)]), None);
        // Ends unmitigated: never.
        assert_eq!(time_to_mitigation(&[second(0, 100, 0), second(100, 0, 0)]), None);
    }

    #[test]
    fn every_refusal_counts_as_mitigated() {
        let mut s = FloodSecond::default();
        for outcome in [
            FloodOutcome::Origin,
            FloodOutcome::Challenged,
            FloodOutcome::Blocked,
            FloodOutcome::Throttled,
            FloodOutcome::Refused,
            FloodOutcome::Dropped,
            FloodOutcome::TimedOut,
        ] {
            s.add(outcome);
        }
        assert_eq!((s.total(), s.mitigated()), (7, 5));
        let mut sum = FloodSecond::default();
        sum.merge(&s);
        sum.merge(&s);
        assert_eq!(sum.total(), 14);
    }

    fn legit(status: Option<u16>, challenged: bool, from_origin: bool, latency_ms: u64) -> LegitRecord {
        LegitRecord {
            started: Duration::from_secs(1),
            latency: Duration::from_millis(latency_ms),
            status,
            challenged,
            from_origin,
        }
    }

    #[test]
    fn legit_shares() {
        let mut records = vec![legit(Some(200), false, true, 1); 996];
        records.push(legit(Some(200), true, true, 5)); // challenged, then through
        records.push(legit(Some(403), false, false, 1));
        records.push(legit(Some(429), false, false, 1));
        records.push(legit(None, false, false, 5000));
        let summary = LegitSummary::of(&records);
        assert_eq!((summary.requests, summary.succeeded), (1000, 997));
        assert_eq!((summary.challenged, summary.blocked, summary.throttled, summary.failed), (1, 1, 1, 1));
        assert!((summary.success_pct() - 99.7).abs() < 1e-9);
        assert!((summary.hindered_pct() - 0.3).abs() < 1e-9);
        assert_eq!(summary.p50_ms, 1.0);
        assert_eq!(summary.p99_ms, 1.0);
        // An origin 404 or a proxy 502 is not a success.
        assert!(!legit(Some(404), false, true, 1).succeeded());
        assert!(!legit(Some(200), false, false, 1).succeeded());
        assert_eq!(LegitSummary::of(&[]).success_pct(), 100.0);
    }

    #[test]
    fn percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn report_window_and_row() {
        let mut records = vec![legit(Some(200), false, true, 1); 10];
        records[0].started = Duration::from_millis(500); // warm-up
        records[1] = LegitRecord { started: Duration::from_secs(2), ..legit(Some(429), false, false, 1) };
        let report = Report::new(
            "nginx".into(),
            FloodKind::GetFlood,
            100,
            3,
            &records,
            (Duration::from_secs(1), Duration::from_secs(4)),
            vec![second(100, 0, 0), second(0, 100, 0), second(0, 100, 0)],
            vec![110, 10, 10],
            OriginStats::default(),
        );
        assert_eq!(report.legit_all.requests, 10);
        assert_eq!(report.legit_during_flood.requests, 9);
        assert_eq!(report.legit_during_flood.throttled, 1);
        assert_eq!(report.mitigation_secs, Some(1));
        assert_eq!(report.flood_total.total(), 300);
        let row = report.row();
        assert!(row.contains("| nginx | get_flood | 88.89 | 11.11 |"), "{row}");
        assert!(row.contains("| 1 s |"), "{row}");
        assert!(report.text().contains("  2: 100 / 0 / 0 / 0 / 100"), "{}", report.text());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mitigation_secs"], 1);
        assert_eq!(json["flood"], "get_flood");
    }
}
