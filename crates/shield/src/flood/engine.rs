//! The pure core of the automatic flood defense: requests, responses and `now` in; verdicts,
//! rules and events out. No clock, no files (see [`super::FloodDefense`] for the driver).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use super::FloodConfig;
use super::baseline::{BaselineBook, Levels, SecondCounts};
use super::features::{Attr, Features};
use super::mine::{MineConfig, Mined, NoRule, RuleKind, mine};
use super::reservoir::Reservoir;
use super::rules::{Change, Rule, Rung, ShownCondition};
use crate::defense::FloodVerdict;
use crate::gcra::{Key, Limiter, Rate, Verdict};

mod mining;
pub use mining::{MinedJob, MiningJob};

/// Per-client limiter slots of a rate-limiting rule (32 bytes each).
const RULE_LIMITER_KEYS: usize = 16_384;
/// Rules in force at once at most; beyond, no new rule is made (and that is counted).
const MAX_ACTIVE_RULES: usize = 32;

/// What a rule did, for the event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleEvent {
    /// `rule_created`, `escalated`, `stepped_down`, `expired`, `no_safe_rule`.
    pub event: &'static str,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// The route.
    pub route: String,
    /// The rule, if any.
    pub rule: Option<u64>,
    /// Its rung after the change.
    pub rung: Option<Rung>,
    /// Why.
    pub why: String,
    /// Its impacted-baseline share.
    pub impacted_baseline: Option<f64>,
    /// Requests it matched so far.
    pub matched: Option<u64>,
}

/// The engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Rules made.
    pub rules_made: u64,
    /// Floods for which no rule was safe (or none could be measured).
    pub no_safe_rule: u64,
    /// Requests matched by a rule, per rung.
    pub matched_by_rung: [u64; 3],
}

/// The engine's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What to do.
    pub verdict: FloodVerdict,
    /// The rule that matched, and whether it still lacks readable values (the driver then
    /// gives this request's labels to [`FloodEngine::show`]).
    pub rule: Option<(u64, bool)>,
}

/// Health of a route's origin, as the flood defense sees it (for the origin protection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteHealth {
    /// The route's request rate is over its limit this second.
    pub overloaded: bool,
    /// Its origin's error share or latency is over its limit.
    pub origin_unhealthy: bool,
}

struct ActiveRule {
    rule: Rule,
    limiter: Limiter,
    second_matched: u64,
    /// Matched requests let through this second (the rate-limit rung's allowance).
    second_passed: u64,
}

impl std::fmt::Debug for ActiveRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rule.fmt(f)
    }
}

#[derive(Debug)]
struct RouteState {
    second: u64,
    counts: SecondCounts,
    unmatched: u64,
    flooded: bool,
    unhealthy_until: u64,
    window: VecDeque<(u64, Features)>,
    reservoir: Reservoir,
    /// This second's candidates for the baseline sample: they join it only if the second
    /// ends calm, so the first requests of a flood (before the trigger) never poison it.
    pending: Vec<Features>,
    /// The last calm second's candidates, held until the second after it ends calm too: a
    /// flood that starts late in a second may stay under the trigger until the next one, and
    /// a single flood request in the sample can rule out every signature (under 1,000
    /// samples, `max_impact` lets a rule match none).
    held: Vec<Features>,
    last_mine_ms: u64,
    /// A mining job of this route is out (deferred mining): no second one until it is back.
    mining: bool,
    last_no_rule_event_ms: u64,
    /// The trigger limit and the second it was computed for.
    limit: Option<(u64, f64)>,
    /// The remainder trigger's limit and its second (see [`super::remainder`]).
    remainder_limit: Option<(u64, f64)>,
    /// The route's baseline levels and the second they were read for (they change when a
    /// second rolls, not per answer).
    levels: Option<(u64, Option<Levels>)>,
}

#[derive(Debug, Default)]
struct HostState {
    second: u64,
    counts: SecondCounts,
    flooded: bool,
}

/// The flood defense's state.
#[derive(Debug)]
pub struct FloodEngine {
    config: FloodConfig,
    /// By route name; foldhash: the request path looks a route up several times per request,
    /// and SipHash of the name was ~4 % of the proxy's instructions.
    routes: hashbrown::HashMap<String, RouteState, foldhash::fast::RandomState>,
    hosts: hashbrown::HashMap<String, HostState, foldhash::fast::RandomState>,
    book: BaselineBook,
    active: Vec<ActiveRule>,
    recent: VecDeque<Rule>,
    next_id: u64,
    stats: EngineStats,
    events: Vec<RuleEvent>,
    /// Mining is handed out as [`MiningJob`]s instead of run inside [`FloodEngine::check`].
    defer_mining: bool,
    jobs: Vec<MiningJob>,
}

fn route_key(route: &str) -> String {
    format!("route:{route}")
}

fn seed_of(route: &str) -> u64 {
    super::features::stable_hash(route.as_bytes())
}

impl FloodEngine {
    /// An engine with empty baselines.
    pub fn new(config: FloodConfig) -> FloodEngine {
        FloodEngine {
            config,
            routes: hashbrown::HashMap::default(),
            hosts: hashbrown::HashMap::default(),
            book: BaselineBook::default(),
            active: Vec::new(),
            recent: VecDeque::new(),
            next_id: 1,
            stats: EngineStats::default(),
            events: Vec::new(),
            defer_mining: false,
            jobs: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FloodConfig {
        &self.config
    }

    /// Take over learned baselines, baseline samples and the rule counter (from a snapshot).
    pub fn restore(&mut self, book: BaselineBook, samples: BTreeMap<String, Vec<Features>>, next_id: u64) {
        self.book = book;
        self.next_id = self.next_id.max(next_id);
        for (route, samples) in samples {
            let reservoir = Reservoir::restore(self.config.reservoir, seed_of(&route), samples);
            self.route_state(&route, 0).reservoir = reservoir;
        }
    }

    /// Take over the rules a previous run left (`flood-rules.json`, written at `written_ms`):
    /// those still in force after counting the time down as quiet ([`Rule::resume`]) are
    /// enforced again (their per-client limiters start empty), the others join the recent
    /// ones. Rule numbers go on after the highest seen.
    pub fn restore_rules(&mut self, active: Vec<Rule>, recent: Vec<Rule>, written_ms: u64, now_ms: u64) {
        let ladder = self.config.ladder.clone();
        let rate = Rate { per_second: self.config.rule_rate.per_second, burst: self.config.rule_rate.burst };
        for rule in &recent {
            self.next_id = self.next_id.max(rule.id + 1);
        }
        self.recent.extend(recent);
        for mut rule in active {
            self.next_id = self.next_id.max(rule.id + 1);
            if self.active.iter().any(|a| a.rule.id == rule.id) {
                continue;
            }
            if rule.resume(written_ms, now_ms, &ladder) && self.active.len() < MAX_ACTIVE_RULES {
                self.events.push(RuleEvent {
                    event: "restored",
                    time_ms: now_ms,
                    route: rule.route.clone(),
                    rule: Some(rule.id),
                    rung: Some(rule.rung),
                    why: format!(
                        "kept across a restart (the shield was down {} ms)",
                        now_ms.saturating_sub(written_ms)
                    ),
                    impacted_baseline: Some(rule.impacted_baseline),
                    matched: Some(rule.matched),
                });
                self.active.push(ActiveRule {
                    rule,
                    limiter: Limiter::new(rate, RULE_LIMITER_KEYS),
                    second_matched: 0,
                    second_passed: 0,
                });
            } else {
                rule.expired_ms.get_or_insert(now_ms);
                self.recent.push_back(rule);
            }
        }
        self.recent.make_contiguous().sort_by_key(|r| r.expired_ms);
        while self.recent.len() > self.config.recent_rules {
            self.recent.pop_front();
        }
    }

    /// The learned baselines.
    pub fn book(&self) -> &BaselineBook {
        &self.book
    }

    /// Each route's baseline sample.
    pub fn samples(&self) -> BTreeMap<String, Vec<Features>> {
        self.routes.iter().map(|(k, v)| (k.clone(), v.reservoir.samples().to_vec())).collect()
    }

    /// The next rule number.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Rules in force.
    pub fn active_rules(&self) -> impl Iterator<Item = &Rule> {
        self.active.iter().map(|a| &a.rule)
    }

    /// Rules expired lately, newest last.
    pub fn recent_rules(&self) -> impl Iterator<Item = &Rule> {
        self.recent.iter()
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<RuleEvent> {
        std::mem::take(&mut self.events)
    }

    /// The baseline levels of `route` at `second`.
    pub fn levels(&self, route: &str, second: u64) -> Option<Levels> {
        self.book.levels(&route_key(route), second, &self.config.learn)
    }

    fn route_state(&mut self, route: &str, second: u64) -> &mut RouteState {
        // One probe, and the key allocated only when the route is new.
        let capacity = self.config.reservoir;
        self.routes.entry_ref(route).or_insert_with(|| RouteState {
            second,
            counts: SecondCounts::default(),
            unmatched: 0,
            flooded: false,
            unhealthy_until: 0,
            window: VecDeque::new(),
            reservoir: Reservoir::new(capacity, seed_of(route)),
            pending: Vec::new(),
            held: Vec::new(),
            last_mine_ms: 0,
            mining: false,
            last_no_rule_event_ms: 0,
            limit: None,
            remainder_limit: None,
            levels: None,
        })
    }

    /// The route's limit for its current second, computed once a second.
    fn cached_limit(&mut self, route: &str, second: u64) -> f64 {
        if let Some((at, limit)) = self.route_state(route, second).limit
            && at == second
        {
            return limit;
        }
        let limit = self.limit(route, second);
        self.route_state(route, second).limit = Some((second, limit));
        limit
    }

    /// The request rate over which `route` counts as flooded at `second`: infinite while its
    /// baseline warms up (a busy site over the floor would otherwise hold every second as a
    /// flood and never learn; and no rule can be measured without a baseline anyway).
    pub fn limit(&self, route: &str, second: u64) -> f64 {
        let (factor, floor) = self.config.route_limits(route);
        self.levels(route, second).map_or(f64::INFINITY, |l| (l.rate * factor).max(floor))
    }

    /// Let time pass to `now_ms` for every route: learn the seconds that ended, move rules on
    /// their ladder. Call it about once a second even without traffic.
    pub fn tick(&mut self, now_ms: u64) {
        let routes: Vec<String> = self.routes.keys().cloned().collect();
        for route in routes {
            self.roll(&route, now_ms);
        }
        let second = now_ms / 1000;
        let learn = self.config.learn.clone();
        for (host, state) in &mut self.hosts {
            if state.second < second {
                self.book.learn(&format!("host:{host}"), state.second, state.counts, state.flooded, &learn);
                *state = HostState { second, ..HostState::default() };
            }
        }
        self.hosts.retain(|_, s| s.second == second || s.counts.requests > 0);
    }

    fn roll(&mut self, route: &str, now_ms: u64) {
        let second = now_ms / 1000;
        let learn = self.config.learn.clone();
        let state = self.route_state(route, second);
        if state.second >= second {
            return;
        }
        let (old_second, counts, flooded) = (state.second, state.counts, state.flooded);
        // A flood a rule holds leaves the second under the trigger, yet it is no normal
        // second: its requests (the matched ones count in `counts`) and the flood's unmatched
        // remnants must not be learned.
        let attacked = self
            .active
            .iter()
            .any(|a| a.rule.route == route && a.second_matched as f64 >= a.rule.persist_rps);
        let flooded = flooded || attacked;
        let state = self.route_state(route, second);
        state.second = second;
        state.counts = SecondCounts::default();
        state.unmatched = 0;
        state.flooded = false;
        let unhealthy = state.unhealthy_until > old_second;
        let warming_up = self.book.levels(&route_key(route), old_second, &learn).is_none();
        let state = self.routes.get_mut(route).unwrap_or_else(|| unreachable!());
        // While warming up, a slow origin is what normal looks like: learn it.
        let unhealthy = unhealthy && !warming_up;
        let pending = std::mem::take(&mut state.pending);
        if flooded || unhealthy {
            state.held.clear();
        } else {
            for features in std::mem::replace(&mut state.held, pending) {
                state.reservoir.offer(features);
            }
            // The second after it had no request at all: calm as well.
            if second > old_second + 1 {
                for features in std::mem::take(&mut state.held) {
                    state.reservoir.offer(features);
                }
            }
        }
        self.book.learn(&route_key(route), old_second, counts, flooded || unhealthy, &learn);
        let ladder = self.config.ladder.clone();
        let mut index = 0;
        while index < self.active.len() {
            let active = &mut self.active[index];
            if active.rule.route != route {
                index += 1;
                continue;
            }
            let matched = std::mem::take(&mut active.second_matched);
            let passed = std::mem::take(&mut active.second_passed);
            let change = active.rule.tick(matched, passed, now_ms, &ladder);
            if let Some(change) = change {
                let rule = &active.rule;
                let (event, rung) = match change {
                    Change::Escalated(r) => ("escalated", Some(r)),
                    Change::SteppedDown(r) => ("stepped_down", Some(r)),
                    Change::Expired => ("expired", None),
                };
                let why = match change {
                    Change::Escalated(_)
                        if rule.rung == Rung::Challenge && passed as f64 >= rule.persist_rps =>
                    {
                        format!(
                            "the rate limit let {passed} matched requests through in a second (>= {:.0})",
                            rule.persist_rps
                        )
                    }
                    Change::Escalated(_) => format!("flood went on at >= {:.0} matched/s", rule.persist_rps),
                    _ => format!("quiet for {} s", ladder.hold_secs),
                };
                self.events.push(RuleEvent {
                    event,
                    time_ms: now_ms,
                    route: route.to_owned(),
                    rule: Some(rule.id),
                    rung,
                    why,
                    impacted_baseline: Some(rule.impacted_baseline),
                    matched: Some(rule.matched),
                });
            }
            if active.rule.expired_ms.is_some() {
                let done = self.active.swap_remove(index);
                self.recent.push_back(done.rule);
                while self.recent.len() > self.config.recent_rules {
                    self.recent.pop_front();
                }
            } else {
                index += 1;
            }
        }
    }

    /// One request on `route` (and `host`) from `client`: the verdict of the first rule that
    /// matches; unmatched requests feed the window, the baseline sample and the trigger.
    pub fn check(
        &mut self,
        route: &str,
        host: Option<&str>,
        features: &Features,
        client: IpAddr,
        now_ms: u64,
    ) -> Outcome {
        self.roll(route, now_ms);
        let second = now_ms / 1000;
        let route_flooded = self.route_state(route, second).flooded;
        if let Some(host) = host {
            // One probe; a new host is learned only while there is room.
            let state = if self.hosts.len() < self.config.learn.max_keys {
                Some(
                    self.hosts
                        .entry_ref(host)
                        .or_insert_with(|| HostState { second, ..HostState::default() }),
                )
            } else {
                self.hosts.get_mut(host)
            };
            if let Some(state) = state
                && state.second == second
            {
                state.counts.requests += 1;
                state.flooded |= route_flooded;
            }
        }
        let state = self.route_state(route, second);
        state.counts.requests += 1;
        let nanos = now_ms.saturating_mul(1_000_000).max(1);
        for active in &mut self.active {
            if active.rule.route != route || !active.rule.signature.matches(features) {
                continue;
            }
            let verdict = match active.rule.rung {
                Rung::RateLimit => {
                    let key = match active.rule.kind {
                        RuleKind::PrefixLimit => Key::prefix(client, 24, 64),
                        RuleKind::Signature => Key::address(client),
                    };
                    match active.limiter.check(key, nanos) {
                        Verdict::Allow => FloodVerdict::Pass,
                        Verdict::Deny { retry_after_nanos } => FloodVerdict::Throttle {
                            retry_after: std::time::Duration::from_nanos(retry_after_nanos),
                        },
                    }
                }
                Rung::Challenge => FloodVerdict::Challenge,
                Rung::Block => FloodVerdict::Block,
            };
            active.second_matched += 1;
            if verdict == FloodVerdict::Pass {
                active.second_passed += 1;
            }
            active.rule.count(verdict != FloodVerdict::Pass);
            self.stats.matched_by_rung[active.rule.rung as usize] += 1;
            return Outcome { verdict, rule: Some((active.rule.id, active.rule.shown.is_empty())) };
        }
        let window_ms = self.config.window_secs * 1000;
        let max_window = self.config.max_window;
        let state = self.route_state(route, second);
        state.unmatched += 1;
        state.window.push_back((now_ms, *features));
        while state.window.len() > max_window
            || state.window.front().is_some_and(|(t, _)| t + window_ms < now_ms)
        {
            state.window.pop_front();
        }
        let unmatched = state.unmatched;
        let unhealthy = state.unhealthy_until > second;
        let limit = self.cached_limit(route, second);
        let over = unmatched as f64 > limit;
        let remainder = !over && !unhealthy && self.remainder_over(route, second, unmatched, limit);
        if !over && !unhealthy && !remainder {
            let max_pending = self.config.max_window;
            let state = self.route_state(route, second);
            if !route_flooded && state.pending.len() < max_pending {
                state.pending.push(*features);
            }
            return Outcome { verdict: FloodVerdict::Pass, rule: None };
        }
        if self.config.route_enabled(route) {
            let interval = self.config.mine_interval_ms;
            let state = self.route_state(route, second);
            state.flooded = true;
            if now_ms.saturating_sub(state.last_mine_ms) >= interval && !state.mining {
                state.last_mine_ms = now_ms;
                let why = if over {
                    format!("{unmatched} requests in one second, over the limit of {limit:.0}/s")
                } else if remainder {
                    format!(
                        "{unmatched} requests in one second that no rule matched, a flood of their own while the route is over its limit of {limit:.0}/s"
                    )
                } else {
                    "origin errors or latency over their limit".to_owned()
                };
                self.mine_route(route, second, now_ms, why);
            }
        }
        Outcome { verdict: FloodVerdict::Pass, rule: None }
    }

    /// Whether the requests of `route` no rule matched (`unmatched` this second) are a flood of
    /// their own while its rules hold another ([`super::remainder`]).
    fn remainder_over(&mut self, route: &str, second: u64, unmatched: u64, limit: f64) -> bool {
        let requests = self.route_state(route, second).counts.requests;
        // The cheap test first: a route under its limit needs nothing more.
        if requests as f64 <= limit {
            return false;
        }
        let rules = self.active.iter().filter(|a| a.rule.route == route).count();
        if rules == 0 {
            return false;
        }
        if let Some((at, threshold)) = self.route_state(route, second).remainder_limit
            && at == second
        {
            return unmatched as f64 > threshold;
        }
        let Some(levels) = self.levels(route, second) else { return false };
        let input = super::remainder::RemainderInput {
            requests,
            unmatched,
            limit,
            baseline_rate: levels.rate,
            rules,
        };
        let threshold = super::remainder::remainder_limit(
            &input,
            self.config.remainder_factor,
            self.config.mine.min_flood_requests,
        )
        .unwrap_or(f64::INFINITY);
        self.route_state(route, second).remainder_limit = Some((second, threshold));
        unmatched as f64 > threshold
    }

    /// Learn one past request (access-log replay): counted into the baselines and offered to
    /// the baseline sample unless its second is over the limit; no rule is checked or made.
    pub fn learn_request(
        &mut self,
        route: &str,
        features: &Features,
        status: u16,
        latency_ms: Option<f64>,
        now_ms: u64,
    ) {
        self.roll(route, now_ms);
        let second = now_ms / 1000;
        let limit = self.cached_limit(route, second);
        let max_pending = self.config.max_window;
        let state = self.route_state(route, second);
        if state.second != second {
            return; // older than what was learned
        }
        state.counts.requests += 1;
        state.counts.responses += 1;
        if status >= 500 {
            state.counts.errors += 1;
        }
        // Without a logged latency the second's mean is lower than real; the latency trigger's
        // floor (min_latency_ms) keeps that harmless.
        state.counts.latency_ms_sum += latency_ms.unwrap_or(0.0);
        if state.counts.requests as f64 > limit {
            state.flooded = true;
        } else if state.pending.len() < max_pending {
            state.pending.push(*features);
        }
    }

    /// The origin answered a request of `route` (`status` 502 for a failure) after `latency_ms`.
    pub fn observe_response(&mut self, route: &str, status: u16, latency_ms: f64, now_ms: u64) {
        self.roll(route, now_ms);
        let second = now_ms / 1000;
        let levels = match self.route_state(route, second).levels {
            Some((at, levels)) if at == second => levels,
            _ => {
                let levels = self.levels(route, second);
                self.route_state(route, second).levels = Some((second, levels));
                levels
            }
        };
        let config = &self.config;
        let (min_responses, error_factor, min_error, latency_factor, min_latency) = (
            config.min_responses,
            config.error_factor,
            config.min_error_share,
            config.latency_factor,
            config.min_latency_ms,
        );
        let state = self.route_state(route, second);
        state.counts.responses += 1;
        if status >= 500 {
            state.counts.errors += 1;
        }
        state.counts.latency_ms_sum += latency_ms.max(0.0);
        let counts = state.counts;
        if counts.responses < min_responses {
            return;
        }
        let n = counts.responses as f64;
        let error_limit = levels.map_or(0.0, |l| l.error_share * error_factor).max(min_error);
        let latency_limit = levels.map_or(0.0, |l| l.latency_ms * latency_factor).max(min_latency);
        if counts.errors as f64 / n > error_limit || counts.latency_ms_sum / n > latency_limit {
            state.unhealthy_until = second + 2;
        }
    }

    /// What the flood defense knows of `route`'s health at `now_ms`.
    pub fn health(&self, route: &str, now_ms: u64) -> RouteHealth {
        let second = now_ms / 1000;
        match self.routes.get(route) {
            None => RouteHealth::default(),
            Some(state) => RouteHealth {
                overloaded: state.second == second && state.flooded,
                origin_unhealthy: state.unhealthy_until > second,
            },
        }
    }

    /// Give rule `id` the readable values of a request it matched.
    pub fn show(&mut self, id: u64, labels: &[String; Attr::COUNT]) {
        if let Some(active) = self.active.iter_mut().find(|a| a.rule.id == id) {
            let rule = &mut active.rule;
            rule.shown = rule
                .signature
                .conditions
                .iter()
                .map(|c| ShownCondition {
                    attr: c.attr,
                    values: if c.values.len() == 1 {
                        vec![labels[c.attr.index()].clone()]
                    } else {
                        vec![format!("{} values, e.g. {}", c.values.len(), labels[c.attr.index()])]
                    },
                })
                .collect();
        }
    }
}
