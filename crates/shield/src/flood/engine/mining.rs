//! Signature mining as a job of its own: what [`mine`] reads is copied out of the engine, mined
//! in line or off the request path, and the result taken back in ([`FloodEngine::apply_mined`]).

use super::*;

/// One mining attempt, taken off the request path: a copy of what [`mine`] reads, to be run
/// without the engine ([`MiningJob::run`]) and handed back ([`FloodEngine::apply_mined`]).
#[derive(Debug)]
pub struct MiningJob {
    route: String,
    second: u64,
    now_ms: u64,
    why: String,
    window: Vec<Features>,
    expected: f64,
    baseline: Vec<Features>,
    config: MineConfig,
    /// No room for another rule (on the route, or at all): nothing to mine.
    refused: Option<NoRule>,
}

impl MiningJob {
    /// The route it mines for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Mine: the costly part, which needs no engine.
    pub fn run(self) -> MinedJob {
        let result = match self.refused {
            Some(refused) => Err(refused),
            None => mine(&self.window, self.expected, &self.baseline, &self.config),
        };
        MinedJob { route: self.route, second: self.second, now_ms: self.now_ms, why: self.why, result }
    }
}

/// A mining job's result, for [`FloodEngine::apply_mined`].
#[derive(Debug)]
pub struct MinedJob {
    route: String,
    second: u64,
    now_ms: u64,
    why: String,
    result: Result<Mined, NoRule>,
}

impl FloodEngine {
    /// Hand mining out as jobs ([`FloodEngine::take_mining_jobs`]) instead of running it in
    /// [`FloodEngine::check`], so no request waits for it.
    pub fn set_defer_mining(&mut self, defer: bool) {
        self.defer_mining = defer;
    }

    /// Mining jobs made since the last call (deferred mining only).
    pub fn take_mining_jobs(&mut self) -> Vec<MiningJob> {
        std::mem::take(&mut self.jobs)
    }

    /// A job of `route` was dropped unrun (its queue was full): the route may mine again.
    pub fn mining_dropped(&mut self, route: &str) {
        if let Some(state) = self.routes.get_mut(route) {
            state.mining = false;
        }
    }

    pub(super) fn mine_route(&mut self, route: &str, second: u64, now_ms: u64, why: String) {
        let job = self.mining_job(route, second, now_ms, why);
        if self.defer_mining {
            self.route_state(route, second).mining = true;
            self.jobs.push(job);
        } else {
            let mined = job.run();
            self.apply_mined(mined);
        }
    }

    fn mining_job(&mut self, route: &str, second: u64, now_ms: u64, why: String) -> MiningJob {
        let (_, floor) = self.config.route_limits(route);
        let baseline_rate = self.levels(route, second).map_or(floor / self.config.factor, |l| l.rate);
        let config = self.config.mine.clone();
        let per_route = self.config.max_rules_per_route;
        let full = self.active.len() >= MAX_ACTIVE_RULES;
        let route_full = self.active.iter().filter(|a| a.rule.route == route).count() >= per_route;
        let refused = if route_full {
            Some(NoRule::TooManyRules)
        } else if full {
            Some(NoRule::NoSafeRule)
        } else {
            None
        };
        let full = refused.is_some();
        let state = self.route_state(route, second);
        let window: Vec<Features> =
            if full { Vec::new() } else { state.window.iter().map(|(_, f)| *f).collect() };
        // The time the window covers (less than window_secs when it is capped by max_window).
        let span_secs = state
            .window
            .front()
            .map_or(0.001, |(t, _)| (now_ms.saturating_sub(*t) as f64 / 1000.0).max(0.001));
        let baseline = if full { Vec::new() } else { state.reservoir.samples().to_vec() };
        MiningJob {
            route: route.to_owned(),
            second,
            now_ms,
            why,
            window,
            expected: baseline_rate * span_secs,
            baseline,
            config,
            refused,
        }
    }

    /// Take in a mining job's result: a new rule on the route's ladder, or a `no_safe_rule`
    /// event.
    pub fn apply_mined(&mut self, mined: MinedJob) {
        let MinedJob { route, second, now_ms, why, result } = mined;
        let route = route.as_str();
        let (_, floor) = self.config.route_limits(route);
        let baseline_rate = self.levels(route, second).map_or(floor / self.config.factor, |l| l.rate);
        self.route_state(route, second).mining = false;
        // Rules made while the job was out may have filled the table or the route's share.
        let on_route = self.active.iter().filter(|a| a.rule.route == route).count();
        let result = if on_route >= self.config.max_rules_per_route {
            Err(NoRule::TooManyRules)
        } else if self.active.len() >= MAX_ACTIVE_RULES {
            Err(NoRule::NoSafeRule)
        } else {
            result
        };
        match result {
            Ok(mined) => {
                let state = self.route_state(route, second);
                state.window.retain(|(_, f)| !mined.signature.matches(f));
                // What the new rule matched no longer counts against the route this second.
                state.unmatched = 0;
                let id = self.next_id;
                self.next_id += 1;
                let coverage = mined.window_matched as f64 / mined.flood_size.max(1) as f64;
                let start = match mined.kind {
                    RuleKind::PrefixLimit => Rung::RateLimit,
                    RuleKind::Signature => self.config.ladder.start.min(self.config.ladder.max),
                };
                let rule = Rule {
                    id,
                    route: route.to_owned(),
                    shown: Vec::new(),
                    kind: mined.kind,
                    created_ms: now_ms,
                    why: why.clone(),
                    impacted_baseline: mined.impact_share(),
                    baseline_samples: mined.baseline_size,
                    flood_coverage: coverage.min(1.0),
                    matched: 0,
                    matched_by_rung: [0; 3],
                    refused: 0,
                    rung: start,
                    rung_since_ms: now_ms,
                    // Legitimate traffic alone would match about rate x impact: clearly more
                    // means the flood goes on.
                    persist_rps: (baseline_rate * mined.impact_share() * self.config.factor)
                        .max(self.config.min_persist_rps),
                    quiet_since_ms: None,
                    expired_ms: None,
                    restored_ms: None,
                    signature: mined.signature,
                };
                let rate =
                    Rate { per_second: self.config.rule_rate.per_second, burst: self.config.rule_rate.burst };
                self.events.push(RuleEvent {
                    event: "rule_created",
                    time_ms: now_ms,
                    route: route.to_owned(),
                    rule: Some(id),
                    rung: Some(start),
                    why,
                    impacted_baseline: Some(rule.impacted_baseline),
                    matched: Some(0),
                });
                self.stats.rules_made += 1;
                self.active.push(ActiveRule {
                    rule,
                    limiter: Limiter::new(rate, RULE_LIMITER_KEYS),
                    second_matched: 0,
                    second_passed: 0,
                });
            }
            Err(reason) => {
                self.stats.no_safe_rule += 1;
                let state = self.route_state(route, second);
                if now_ms.saturating_sub(state.last_no_rule_event_ms) >= 10_000 {
                    state.last_no_rule_event_ms = now_ms;
                    let reason = match reason {
                        NoRule::BaselineTooSmall => {
                            "the baseline sample is too small to measure a rule's impact"
                        }
                        NoRule::NoExcess => "too little excess traffic to tell the flood apart",
                        NoRule::NoSafeRule => "every candidate rule would touch too much of the baseline",
                        NoRule::TooManyRules => "the route has max_rules_per_route rules in force already",
                    };
                    self.events.push(RuleEvent {
                        event: "no_safe_rule",
                        time_ms: now_ms,
                        route: route.to_owned(),
                        rule: None,
                        rung: None,
                        why: format!("{why}; {reason}"),
                        impacted_baseline: None,
                        matched: None,
                    });
                }
            }
        }
    }
}
