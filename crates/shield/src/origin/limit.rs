//! An adaptive concurrency limit per upstream, after Netflix's concurrency-limits "Gradient2"
//! with a Vegas-like baseline: the limit follows the ratio of the origin's no-load latency to
//! its latency now. When requests queue up inside the origin its latency rises above the
//! baseline, the gradient drops below one and the limit shrinks; when latency falls back, the
//! limit grows by a queue allowance (its square root) each window. Bounded by a configured minimum and a hard maximum that is
//! never exceeded.
//!
//! Pure: samples come in with `now` (time since any fixed origin); nothing here reads a clock.
//! Why our own and not a crate: the Rust ports of concurrency-limits are unmaintained or tied
//! to tower's service stack, and the algorithm is forty lines.

use std::time::Duration;

/// The bounds and tuning of one limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    /// The limit never goes below this.
    pub min: u32,
    /// The hard maximum: the limit never goes above this.
    pub max: u32,
    /// The limit before any sample.
    pub initial: u32,
    /// How much latency may rise over its no-load baseline before the limit shrinks (1.5:
    /// half as much again).
    pub tolerance: f64,
    /// Samples are averaged over windows at least this long (and of at least
    /// [`LimitSettings::min_samples`] samples) before the limit moves.
    pub window: Duration,
    /// Samples a window needs.
    pub min_samples: u32,
    /// Windows over which the no-load latency estimate may double (it follows an origin that
    /// became slower for good, slowly).
    pub long_windows: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            min: 4,
            max: 256,
            initial: 32,
            tolerance: 1.5,
            window: Duration::from_millis(250),
            min_samples: 8,
            long_windows: 100,
        }
    }
}

/// The limit's state.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    settings: LimitSettings,
    /// The current ceiling (the hard maximum, or lower while the threat level tightens it).
    ceiling: u32,
    limit: f64,
    baseline_rtt: Option<f64>,
    window_start: Option<Duration>,
    window_sum: f64,
    window_samples: u32,
    window_max_inflight: u32,
    window_dropped: bool,
}

impl ConcurrencyLimit {
    /// A limit at `settings.initial` (clamped to the bounds).
    pub fn new(settings: LimitSettings) -> ConcurrencyLimit {
        let max = settings.max.max(1);
        let min = settings.min.clamp(1, max);
        let settings = LimitSettings { min, max, ..settings };
        ConcurrencyLimit {
            ceiling: max,
            limit: f64::from(settings.initial.clamp(min, max)),
            settings,
            baseline_rtt: None,
            window_start: None,
            window_sum: 0.0,
            window_samples: 0,
            window_max_inflight: 0,
            window_dropped: false,
        }
    }

    /// How many requests may be at the origin at once now.
    pub fn limit(&self) -> u32 {
        // `limit` stays within [min, ceiling], so the conversion cannot truncate.
        (self.limit.floor() as u32).clamp(self.settings.min.min(self.ceiling), self.ceiling)
    }

    /// The no-load latency estimate, once there is one.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline_rtt.map(Duration::from_secs_f64)
    }

    /// Lower (or restore) the ceiling below the hard maximum, e.g. while the threat level is
    /// raised; never above the hard maximum, never below the minimum.
    pub fn set_ceiling(&mut self, ceiling: u32) {
        self.ceiling = ceiling.clamp(self.settings.min, self.settings.max);
        self.limit = self.limit.min(f64::from(self.ceiling));
    }

    /// One request answered (its head) after `rtt`, with `inflight` requests at the origin
    /// when it was sent. `dropped`: it failed or timed out (treated as overload).
    pub fn sample(&mut self, now: Duration, rtt: Duration, inflight: u32, dropped: bool) {
        let start = *self.window_start.get_or_insert(now);
        if dropped {
            self.window_dropped = true;
        } else {
            self.window_sum += rtt.as_secs_f64();
            self.window_samples += 1;
        }
        self.window_max_inflight = self.window_max_inflight.max(inflight);
        let complete = now.saturating_sub(start) >= self.settings.window
            && (self.window_samples >= self.settings.min_samples || self.window_dropped);
        if complete {
            self.close_window();
            self.window_start = Some(now);
        }
    }

    fn close_window(&mut self) {
        let samples = self.window_samples;
        let inflight = self.window_max_inflight;
        let dropped = self.window_dropped;
        let sum = self.window_sum;
        self.window_sum = 0.0;
        self.window_samples = 0;
        self.window_max_inflight = 0;
        self.window_dropped = false;
        let ceiling = f64::from(self.ceiling);
        let floor = f64::from(self.settings.min.min(self.ceiling));
        if dropped {
            // Failures and timeouts: back off multiplicatively, as AIMD does.
            self.limit = (self.limit * 0.9).clamp(floor, ceiling);
            return;
        }
        if samples == 0 {
            return;
        }
        let short = sum / f64::from(samples);
        if !short.is_finite() || short <= 0.0 {
            return;
        }
        // The no-load latency: the lowest window average seen, allowed to creep up slowly
        // (doubling in about `long_windows` windows) so an origin that became slower for good
        // is followed, while a flood of minutes cannot teach the limit that slow is normal.
        let creep = 1.0 + std::f64::consts::LN_2 / f64::from(self.settings.long_windows.max(1));
        let baseline = match self.baseline_rtt {
            None => short,
            Some(baseline) => (baseline * creep).min(short),
        };
        self.baseline_rtt = Some(baseline);
        // An origin far from its limit tells nothing about where the limit should be: do not
        // grow a limit that is not used (Gradient2's "app limited" rule).
        if f64::from(inflight) < self.limit / 2.0 {
            return;
        }
        let gradient = (self.settings.tolerance * baseline / short).clamp(0.5, 1.0);
        let queue = self.limit.sqrt().max(1.0);
        let target = self.limit * gradient + queue;
        // Smooth: move a fifth of the way each window.
        self.limit = (self.limit * 0.8 + target * 0.2).clamp(floor, ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drive `limit` for `windows` windows against an origin that takes `base` plus `per`
    /// for each request beyond `capacity` in flight, offered `offered` concurrent requests
    /// (it gets at most the limit).
    fn drive(
        limit: &mut ConcurrencyLimit,
        now: &mut Duration,
        windows: u32,
        offered: u32,
        capacity: u32,
        base: Duration,
        per: Duration,
    ) {
        for _ in 0..windows {
            for _ in 0..10 {
                let inflight = offered.min(limit.limit());
                assert!(inflight <= limit.settings.max);
                let rtt = base + per * inflight.saturating_sub(capacity);
                limit.sample(*now, rtt, inflight, false);
                *now += limit.settings.window / 10 + MS;
            }
        }
    }

    #[test]
    fn rising_latency_lowers_the_limit_and_recovery_raises_it() {
        let settings = LimitSettings { min: 2, max: 200, initial: 100, ..LimitSettings::default() };
        let mut limit = ConcurrencyLimit::new(settings);
        let mut now = Duration::ZERO;
        // Unloaded: 10 ms whatever the concurrency (capacity above the limit).
        drive(&mut limit, &mut now, 40, 1000, 1000, 10 * MS, MS);
        let unloaded = limit.limit();
        assert!(unloaded >= 100, "an origin that stays fast lets the limit grow: {unloaded}");
        // The origin saturates at 20 in flight: each request beyond adds 5 ms.
        drive(&mut limit, &mut now, 200, 1000, 20, 10 * MS, 5 * MS);
        let loaded = limit.limit();
        assert!(loaded < 60, "latency rising under load lowers the limit: {unloaded} -> {loaded}");
        // Capacity comes back.
        drive(&mut limit, &mut now, 200, 1000, 1000, 10 * MS, MS);
        let recovered = limit.limit();
        assert!(recovered > loaded * 2, "recovery raises the limit: {loaded} -> {recovered}");
    }

    #[test]
    fn never_above_the_hard_maximum_nor_below_the_minimum() {
        let settings = LimitSettings { min: 3, max: 50, initial: 500, ..LimitSettings::default() };
        let mut limit = ConcurrencyLimit::new(settings);
        assert_eq!(limit.limit(), 50);
        let mut now = Duration::ZERO;
        drive(&mut limit, &mut now, 500, 10_000, 10_000, MS, MS);
        assert_eq!(limit.limit(), 50);
        // Every request failing: down to the minimum, not below.
        for _ in 0..500 {
            limit.sample(now, Duration::ZERO, 50, true);
            now += settings.window;
        }
        assert_eq!(limit.limit(), 3);
        limit.set_ceiling(1000);
        drive(&mut limit, &mut now, 500, 10_000, 10_000, MS, MS);
        assert_eq!(limit.limit(), 50, "a ceiling above the hard maximum is the hard maximum");
        limit.set_ceiling(10);
        assert_eq!(limit.limit(), 10);
        drive(&mut limit, &mut now, 100, 10_000, 10_000, MS, MS);
        assert_eq!(limit.limit(), 10);
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let settings = LimitSettings { min: 1, max: 1000, initial: 40, ..LimitSettings::default() };
        let mut limit = ConcurrencyLimit::new(settings);
        let mut now = Duration::ZERO;
        drive(&mut limit, &mut now, 200, 5, 1000, 10 * MS, MS);
        assert_eq!(limit.limit(), 40);
    }
}
