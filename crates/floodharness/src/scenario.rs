//! One run: the browsers browse from the start, the flood starts after a warm-up (so a shield
//! can learn what normal looks like) and lasts its plan, the browsers go on for a cool-down; the
//! origin's answers are sampled every second of the flood.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::browser::{BrowserPlan, browse};
use crate::flood::{FloodPlan, run_flood};
use crate::origin::Origin;
use crate::report::Report;
use crate::sources::ensure_loopback;

/// What to run against what.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The proxy in front of the origin (or the origin itself); loopback only.
    pub target: SocketAddr,
    /// Its name in the report.
    pub target_name: String,
    /// The Host header everyone sends (default: the target's address).
    pub host: Option<String>,
    /// The legitimate browsers.
    pub browsers: BrowserPlan,
    /// The flood.
    pub flood: FloodPlan,
    /// Browsing before the flood starts.
    pub warmup: Duration,
    /// Browsing after the flood ends.
    pub cooldown: Duration,
}

/// Runs `scenario` with `origin` behind the target and reports what it measured.
pub async fn run_scenario(scenario: &Scenario, origin: &Origin) -> Result<Report, HarnessError> {
    ensure_loopback(scenario.target)?;
    if scenario.browsers.clients == 0 {
        return Err(HarnessError::Plan("at least one legitimate browser".into()));
    }
    let host = scenario.host.clone().unwrap_or_else(|| scenario.target.to_string());
    let epoch = Instant::now();
    let flood_start = epoch + scenario.warmup;
    let flood_end = flood_start + scenario.flood.duration;
    let browse_deadline = flood_end + scenario.cooldown;
    let records = Arc::new(Mutex::new(Vec::new()));
    let browsers: Vec<_> = (0..scenario.browsers.clients)
        .map(|index| {
            tokio::spawn(browse(
                index,
                scenario.target,
                host.clone(),
                scenario.browsers.clone(),
                epoch,
                browse_deadline,
                Arc::clone(&records),
            ))
        })
        .collect();

    tokio::time::sleep_until(flood_start.into()).await;
    let sampler = {
        let seconds = scenario.flood.duration.as_secs_f64().ceil() as u32;
        let totals = OriginTotals(origin.stats().total());
        sample_origin(origin, totals, flood_start, seconds)
    };
    let (flood_series, origin_series) =
        tokio::join!(run_flood(&scenario.flood, scenario.target, &host, flood_start), sampler);
    let flood_series = flood_series?;
    for browser in browsers {
        let _ = browser.await;
    }
    let legit = records.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Report::new(
        scenario.target_name.clone(),
        scenario.flood.kind,
        scenario.flood.rate,
        scenario.flood.duration.as_secs() as u32,
        &legit,
        (flood_start - epoch, flood_end - epoch),
        flood_series,
        origin_series,
        origin.stats(),
    ))
}

struct OriginTotals(u64);

/// The origin's answers in each second from `start`.
async fn sample_origin(origin: &Origin, mut last: OriginTotals, start: Instant, seconds: u32) -> Vec<u64> {
    let mut series = Vec::with_capacity(seconds as usize);
    for second in 1..=seconds {
        tokio::time::sleep_until((start + Duration::from_secs(u64::from(second))).into()).await;
        let now = origin.stats().total();
        series.push(now.saturating_sub(last.0));
        last.0 = now;
    }
    series
}
