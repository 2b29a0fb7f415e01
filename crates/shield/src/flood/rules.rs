//! A flood rule and its ladder: rate-limit, then challenge, then block while the flood goes on
//! under the current rung; back down one rung per quiet `hold_secs`, and gone after a quiet
//! hold at the bottom. Pure: [`Rule::tick`] takes the second's matched count and `now`.

use serde::{Deserialize, Serialize};

use super::features::Attr;
use super::mine::{RuleKind, Signature};

/// How hard a rule acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// Each matching client (or prefix) gets a small rate; beyond it `429`.
    RateLimit,
    /// Matching requests must show a clearance or earn one.
    Challenge,
    /// Matching requests get `403`.
    Block,
}

impl Rung {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Rung::RateLimit => "rate_limit",
            Rung::Challenge => "challenge",
            Rung::Block => "block",
        }
    }

    fn up(self) -> Rung {
        match self {
            Rung::RateLimit => Rung::Challenge,
            Rung::Challenge | Rung::Block => Rung::Block,
        }
    }

    fn down(self) -> Option<Rung> {
        match self {
            Rung::RateLimit => None,
            Rung::Challenge => Some(Rung::RateLimit),
            Rung::Block => Some(Rung::Challenge),
        }
    }
}

/// Ladder timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LadderConfig {
    /// Seconds a flood must go on under a rung before the next one.
    pub escalate_secs: u64,
    /// Seconds a rate-limit rung may let `persist_rps` or more matched requests through
    /// before the next rung: a flood from more clients than the per-client rate can hold (a
    /// distributed flood, or a few clients each far over it) is not contained by it.
    pub leak_secs: u64,
    /// Quiet seconds before a rule steps down a rung (and, at the bottom, expires).
    pub hold_secs: u64,
    /// The rung a new rule starts at.
    pub start: Rung,
    /// The highest rung a signature rule may reach (prefix rules stay at rate-limit).
    pub max: Rung,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            escalate_secs: 5,
            leak_secs: 1,
            hold_secs: 60,
            start: Rung::RateLimit,
            max: Rung::Block,
        }
    }
}

/// One condition as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownCondition {
    /// The attribute.
    pub attr: Attr,
    /// What it equals (one of, for prefix rules); filled from the first matching request.
    pub values: Vec<String>,
}

/// A rung change, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Up a rung.
    Escalated(Rung),
    /// Down a rung.
    SteppedDown(Rung),
    /// Gone.
    Expired,
}

/// A temporary automatic rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Its number, unique in this shield's data directory.
    pub id: u64,
    /// The route it guards.
    pub route: String,
    /// What it matches.
    pub signature: Signature,
    /// The same, readable (empty until a matching request was seen).
    pub shown: Vec<ShownCondition>,
    /// Signature or per-prefix fallback.
    pub kind: RuleKind,
    /// Unix milliseconds it was made.
    pub created_ms: u64,
    /// Why it was made.
    pub why: String,
    /// Share of the route's baseline sample it may match (the impacted baseline).
    pub impacted_baseline: f64,
    /// Baseline samples it was measured on.
    pub baseline_samples: usize,
    /// Share of the flood it matched when mined.
    pub flood_coverage: f64,
    /// Requests it matched since.
    pub matched: u64,
    /// Requests it matched per rung (rate_limit, challenge, block).
    pub matched_by_rung: [u64; 3],
    /// Requests it refused (429, challenge, 403).
    pub refused: u64,
    /// Its rung now.
    pub rung: Rung,
    /// Since when (Unix ms).
    pub rung_since_ms: u64,
    /// Matched requests per second at or above which the flood counts as going on.
    pub persist_rps: f64,
    /// Since when it is quiet (Unix ms).
    pub quiet_since_ms: Option<u64>,
    /// When it expired (Unix ms).
    pub expired_ms: Option<u64>,
    /// When a restart of the shield last took it over from the data directory (Unix ms).
    #[serde(default)]
    pub restored_ms: Option<u64>,
}

impl Rule {
    /// The highest rung this rule may reach.
    fn ceiling(&self, config: &LadderConfig) -> Rung {
        match self.kind {
            RuleKind::PrefixLimit => Rung::RateLimit,
            RuleKind::Signature => config.max,
        }
    }

    /// One second passed in which the rule matched `matched` requests and let `passed` of them
    /// through: move on the ladder.
    pub fn tick(&mut self, matched: u64, passed: u64, now_ms: u64, config: &LadderConfig) -> Option<Change> {
        if self.expired_ms.is_some() {
            return None;
        }
        if matched as f64 >= self.persist_rps {
            self.quiet_since_ms = None;
            let ceiling = self.ceiling(config);
            let under = now_ms.saturating_sub(self.rung_since_ms);
            // Legitimate traffic alone matches less than `persist_rps`: letting that much
            // through means the rate limit is not holding the flood.
            let leaking = self.rung == Rung::RateLimit && passed as f64 >= self.persist_rps;
            let due = under >= config.escalate_secs * 1000 || (leaking && under >= config.leak_secs * 1000);
            if self.rung < ceiling && due {
                self.rung = self.rung.up().min(ceiling);
                self.rung_since_ms = now_ms;
                return Some(Change::Escalated(self.rung));
            }
            return None;
        }
        let quiet_since = *self.quiet_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(quiet_since) < config.hold_secs * 1000 {
            return None;
        }
        match self.rung.down() {
            Some(lower) => {
                self.rung = lower;
                self.rung_since_ms = now_ms;
                self.quiet_since_ms = Some(now_ms);
                Some(Change::SteppedDown(lower))
            }
            None => {
                self.expired_ms = Some(now_ms);
                Some(Change::Expired)
            }
        }
    }

    /// Take the rule over after a restart: the shield was down from `down_ms` (the rules file's
    /// time) to `now_ms`. Nothing is known of that time, so it counts as quiet: the rule steps
    /// down a rung per `hold_secs` of it and expires after a quiet hold at the bottom, as if
    /// the shield had run. A rung above what `config` allows now comes down to it. Returns
    /// whether the rule is still in force.
    pub fn resume(&mut self, down_ms: u64, now_ms: u64, config: &LadderConfig) -> bool {
        if self.expired_ms.is_some() {
            return false;
        }
        self.restored_ms = Some(now_ms);
        self.rung = self.rung.min(self.ceiling(config));
        let hold_ms = config.hold_secs * 1000;
        let mut quiet_since = self.quiet_since_ms.unwrap_or(down_ms).min(now_ms);
        while now_ms.saturating_sub(quiet_since) >= hold_ms {
            let at = quiet_since + hold_ms;
            match self.rung.down() {
                Some(lower) => {
                    self.rung = lower;
                    self.rung_since_ms = at;
                    quiet_since = at;
                }
                None => {
                    self.expired_ms = Some(at);
                    self.quiet_since_ms = Some(quiet_since);
                    return false;
                }
            }
        }
        self.quiet_since_ms = Some(quiet_since);
        true
    }

    /// Count one matched request at the current rung.
    pub fn count(&mut self, refused: bool) {
        self.matched += 1;
        self.matched_by_rung[self.rung as usize] += 1;
        if refused {
            self.refused += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            id: 1,
            route: "web".into(),
            signature: Signature::default(),
            shown: Vec::new(),
            kind: RuleKind::Signature,
            created_ms: 0,
            why: String::new(),
            impacted_baseline: 0.0,
            baseline_samples: 1000,
            flood_coverage: 1.0,
            matched: 0,
            matched_by_rung: [0; 3],
            refused: 0,
            rung: Rung::RateLimit,
            rung_since_ms: 0,
            persist_rps: 10.0,
            quiet_since_ms: None,
            expired_ms: None,
            restored_ms: None,
        }
    }

    #[test]
    fn escalates_while_the_flood_goes_on_then_steps_down_and_expires() {
        let config = LadderConfig { escalate_secs: 5, hold_secs: 10, ..Default::default() };
        let mut rule = rule();
        let mut changes = Vec::new();
        for second in 1..=20 {
            changes.extend(rule.tick(1000, 0, second * 1000, &config));
        }
        assert_eq!(changes, [Change::Escalated(Rung::Challenge), Change::Escalated(Rung::Block)]);
        assert_eq!(rule.rung, Rung::Block);
        changes.clear();
        for second in 21..=60 {
            changes.extend(rule.tick(0, 0, second * 1000, &config));
        }
        assert_eq!(
            changes,
            [Change::SteppedDown(Rung::Challenge), Change::SteppedDown(Rung::RateLimit), Change::Expired]
        );
        assert!(rule.expired_ms.is_some());
        assert_eq!(rule.tick(1000, 0, 61_000, &config), None);
    }

    #[test]
    fn a_leaking_rate_limit_escalates_after_leak_secs_a_holding_one_after_escalate_secs() {
        let config = LadderConfig { escalate_secs: 5, leak_secs: 1, hold_secs: 10, ..Default::default() };
        // 1,000 matched a second of which 600 passed: 300 clients at the per-client rate.
        let mut leaking = rule();
        assert_eq!(leaking.tick(1000, 600, 500, &config), None, "not a full second under the rung yet");
        assert_eq!(leaking.tick(1000, 600, 1000, &config), Some(Change::Escalated(Rung::Challenge)));
        // Above rate-limit, passing is not a leak (challenged requests are not passed anyway).
        assert_eq!(leaking.tick(1000, 600, 2000, &config), None);
        assert_eq!(leaking.tick(1000, 600, 6000, &config), Some(Change::Escalated(Rung::Block)));
        // A rate limit that lets through less than legitimate traffic would keeps its rung.
        let mut holding = rule();
        for second in 1..5 {
            assert_eq!(holding.tick(1000, 9, second * 1000, &config), None);
        }
        assert_eq!(holding.tick(1000, 9, 5000, &config), Some(Change::Escalated(Rung::Challenge)));
    }

    #[test]
    fn a_restart_counts_as_quiet_time() {
        let config = LadderConfig { hold_secs: 10, ..Default::default() };
        let blocking = Rule { rung: Rung::Block, rung_since_ms: 5_000, ..rule() };
        // Down for 3 s mid-flood: the same rung, its hold counted from the file's time.
        let mut short = blocking.clone();
        assert!(short.resume(20_000, 23_000, &config));
        assert_eq!(
            (short.rung, short.quiet_since_ms, short.restored_ms),
            (Rung::Block, Some(20_000), Some(23_000))
        );
        // 10 s later without a match it steps down as if the shield had run all along.
        assert_eq!(short.tick(0, 0, 30_000, &config), Some(Change::SteppedDown(Rung::Challenge)));
        // Down for 25 s: two holds, two rungs down.
        let mut long = blocking.clone();
        assert!(long.resume(20_000, 45_000, &config));
        assert_eq!(
            (long.rung, long.rung_since_ms, long.quiet_since_ms),
            (Rung::RateLimit, 40_000, Some(40_000))
        );
        // Down for longer than three holds: expired when the last one ended.
        let mut gone = blocking.clone();
        assert!(!gone.resume(20_000, 90_000, &config));
        assert_eq!(gone.expired_ms, Some(50_000));
        // A quiet spell that began before the restart counts too.
        let mut quiet = Rule { quiet_since_ms: Some(15_000), ..blocking.clone() };
        assert!(quiet.resume(20_000, 26_000, &config));
        assert_eq!(quiet.rung, Rung::Challenge);
        // A ceiling lowered meanwhile brings the rung down to it.
        let mut capped = blocking;
        assert!(capped.resume(20_000, 21_000, &LadderConfig { max: Rung::Challenge, ..config }));
        assert_eq!(capped.rung, Rung::Challenge);
    }

    #[test]
    fn a_prefix_rule_stays_a_rate_limit() {
        let config = LadderConfig::default();
        let mut rule = Rule { kind: RuleKind::PrefixLimit, ..rule() };
        for second in 1..=30 {
            assert_eq!(rule.tick(1000, 1000, second * 1000, &config), None);
        }
        assert_eq!(rule.rung, Rung::RateLimit);
    }

    #[test]
    fn a_flood_returning_during_the_hold_keeps_the_rung() {
        let config =
            LadderConfig { escalate_secs: 1, hold_secs: 10, max: Rung::Challenge, ..Default::default() };
        let mut rule = rule();
        rule.tick(100, 0, 2000, &config);
        assert_eq!(rule.rung, Rung::Challenge);
        for second in 3..30 {
            // Bursts every 5 s: never 10 quiet seconds.
            let matched = if second % 5 == 0 { 100 } else { 0 };
            rule.tick(matched, 0, second * 1000, &config);
        }
        assert_eq!(rule.rung, Rung::Challenge);
    }
}
