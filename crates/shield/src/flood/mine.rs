//! Mining a flood's signature: the narrowest conjunction of attribute values that covers most of
//! the flood while matching almost none of the route's baseline sample.
//!
//! Input: the route's recent requests (the flood plus the legitimate traffic of those seconds),
//! how many of them were expected anyway (the baseline rate times the window), and the baseline
//! sample. The flood is the excess; the rule must match `coverage` (90 %) of it.
//!
//! Greedy, over heavy hitters:
//! 1. Among the requests the rule matches so far (at first, all of them), find each unused
//!    attribute's most frequent values with a space-saving summary (`top_k` counters per
//!    attribute, so random values such as cache-busting queries cost bounded memory).
//! 2. Of the values still matching at least the target, add the one whose conjunction matches
//!    the fewest baseline samples (ties: the one matching more of the flood).
//! 3. Repeat while some value still covers the target, up to `max_conditions`: every added
//!    condition keeps the flood covered and makes the rule narrower, so legitimate requests that
//!    only share one trait with the flood are spared.
//!
//! The rule qualifies when it matches at most `max_impact` (0.1 %) of the baseline sample, the
//! "impacted baseline" reported with it. Baseline samples where an attribute was not seen (an
//! access-log line has no header order) count as matching it: impact is never underestimated.
//! If no conjunction qualifies, the top client prefixes covering the target (at most
//! `max_prefixes`) are tried as one per-prefix rule, again only under `max_impact`; else there
//! is no safe rule. Cost: O(window x attributes x conditions + candidates x baseline); with the
//! defaults (4096, 12, 6, 12 x 8, 4096) a few milliseconds at most, once per `mine_interval`.

use serde::{Deserialize, Serialize};

use super::features::{Attr, Features, UNKNOWN};

/// Mining settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MineConfig {
    /// Share of the flood a rule must match.
    pub coverage: f64,
    /// Largest share of the baseline sample a rule may match.
    pub max_impact: f64,
    /// Baseline samples needed before any rule is made (too few cannot measure the impact).
    pub min_baseline_samples: usize,
    /// Flood requests (the excess over the baseline) needed to mine at all.
    pub min_flood_requests: usize,
    /// Conditions in a rule at most.
    pub max_conditions: usize,
    /// Heavy-hitter counters per attribute.
    pub top_k: usize,
    /// Prefixes in a per-prefix fallback rule at most.
    pub max_prefixes: usize,
}

impl Default for MineConfig {
    fn default() -> Self {
        MineConfig {
            coverage: 0.9,
            max_impact: 0.001,
            min_baseline_samples: 1000,
            min_flood_requests: 20,
            max_conditions: 6,
            top_k: 8,
            max_prefixes: 16,
        }
    }
}

impl MineConfig {
    /// The first bad field, as `"field: message"`.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.coverage > 0.0 && self.coverage <= 1.0) {
            return Err(format!("coverage: must be in (0, 1], got {}", self.coverage));
        }
        if !(self.max_impact >= 0.0 && self.max_impact < 0.5) {
            return Err(format!("max_impact: must be in [0, 0.5), got {}", self.max_impact));
        }
        if self.max_conditions == 0 || self.top_k == 0 || self.max_prefixes == 0 {
            return Err("max_conditions: max_conditions, top_k and max_prefixes must be at least 1".into());
        }
        if self.min_flood_requests == 0 {
            return Err("min_flood_requests: must be at least 1".into());
        }
        Ok(())
    }
}

/// One condition: the attribute has one of `values` (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The attribute.
    pub attr: Attr,
    /// Its accepted values (hashes), sorted.
    pub values: Vec<u64>,
}

/// A conjunction of conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// All must hold.
    pub conditions: Vec<Condition>,
}

impl Signature {
    /// Whether a live request matches.
    pub fn matches(&self, features: &Features) -> bool {
        self.conditions.iter().all(|c| c.values.binary_search(&features.get(c.attr)).is_ok())
    }

    /// Whether a baseline sample may match: an unseen attribute matches anything.
    pub fn may_match(&self, features: &Features) -> bool {
        self.conditions.iter().all(|c| {
            let v = features.get(c.attr);
            v == UNKNOWN || c.values.binary_search(&v).is_ok()
        })
    }

    /// How many of `sample` may match.
    pub fn impact(&self, sample: &[Features]) -> usize {
        sample.iter().filter(|f| self.may_match(f)).count()
    }
}

/// What kind of rule was mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A conjunction of request attributes.
    Signature,
    /// Per-prefix limits for the top client prefixes (the fallback).
    PrefixLimit,
}

/// A mined rule, before it is put in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    /// What it matches.
    pub signature: Signature,
    /// Signature or prefix fallback.
    pub kind: RuleKind,
    /// Recent requests it matches.
    pub window_matched: usize,
    /// The excess (flood) it was asked to cover.
    pub flood_size: usize,
    /// Baseline samples it may match.
    pub baseline_matched: usize,
    /// Baseline samples measured.
    pub baseline_size: usize,
}

impl Mined {
    /// The impacted-baseline share.
    pub fn impact_share(&self) -> f64 {
        if self.baseline_size == 0 { 1.0 } else { self.baseline_matched as f64 / self.baseline_size as f64 }
    }
}

/// Why no rule was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoRule {
    /// Too few baseline samples to measure the impact.
    BaselineTooSmall,
    /// Not enough excess traffic to tell the flood apart.
    NoExcess,
    /// Every candidate matched too much of the baseline.
    NoSafeRule,
    /// The route has `max_rules_per_route` rules in force already.
    TooManyRules,
}

/// A space-saving heavy-hitter summary (Metwally et al.): `k` counters; a new value takes the
/// smallest counter's place and inherits its count, so counts overestimate by at most that.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    counters: Vec<(u64, usize)>,
    k: usize,
}

impl SpaceSaving {
    /// An empty summary of `k` counters.
    pub fn new(k: usize) -> SpaceSaving {
        SpaceSaving { counters: Vec::with_capacity(k.max(1)), k: k.max(1) }
    }

    /// Count one occurrence of `value`.
    pub fn add(&mut self, value: u64) {
        if let Some(c) = self.counters.iter_mut().find(|c| c.0 == value) {
            c.1 += 1;
        } else if self.counters.len() < self.k {
            self.counters.push((value, 1));
        } else if let Some(min) = self.counters.iter_mut().min_by_key(|c| c.1) {
            *min = (value, min.1 + 1);
        }
    }

    /// The values and their (over)estimated counts, highest first.
    pub fn top(&self) -> Vec<(u64, usize)> {
        let mut top = self.counters.clone();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top
    }
}

/// Mine a rule for `window` given `expected_legit` of its requests were expected anyway.
pub fn mine(
    window: &[Features],
    expected_legit: f64,
    baseline: &[Features],
    config: &MineConfig,
) -> Result<Mined, NoRule> {
    if baseline.len() < config.min_baseline_samples.max(1) {
        return Err(NoRule::BaselineTooSmall);
    }
    let excess = (window.len() as f64 - expected_legit.max(0.0)).floor();
    if excess < config.min_flood_requests as f64 {
        return Err(NoRule::NoExcess);
    }
    let flood_size = excess as usize;
    let target = ((config.coverage * excess).ceil() as usize).max(1);
    let allowed = (config.max_impact * baseline.len() as f64).floor() as usize;

    let mut signature = Signature::default();
    let mut current: Vec<&Features> = window.iter().collect();
    let mut baseline_left: Vec<&Features> = baseline.iter().collect();
    while signature.conditions.len() < config.max_conditions {
        let mut best: Option<(Attr, u64, usize, usize)> = None;
        for attr in Attr::ALL {
            if signature.conditions.iter().any(|c| c.attr == attr) {
                continue;
            }
            let mut summary = SpaceSaving::new(config.top_k);
            for f in &current {
                summary.add(f.get(attr));
            }
            for (value, estimate) in summary.top() {
                if estimate < target || value == UNKNOWN {
                    continue;
                }
                // Exact count: the summary may overestimate.
                let covered = current.iter().filter(|f| f.get(attr) == value).count();
                if covered < target {
                    continue;
                }
                let hit =
                    baseline_left.iter().filter(|f| f.get(attr) == value || f.get(attr) == UNKNOWN).count();
                let better = match best {
                    None => true,
                    Some((_, _, best_covered, best_hit)) => {
                        hit < best_hit || (hit == best_hit && covered > best_covered)
                    }
                };
                if better {
                    best = Some((attr, value, covered, hit));
                }
            }
        }
        let Some((attr, value, _, _)) = best else { break };
        signature.conditions.push(Condition { attr, values: vec![value] });
        current.retain(|f| f.get(attr) == value);
        baseline_left.retain(|f| f.get(attr) == value || f.get(attr) == UNKNOWN);
    }
    if !signature.conditions.is_empty() && baseline_left.len() <= allowed {
        signature.conditions.sort_by_key(|c| c.attr);
        return Ok(Mined {
            window_matched: current.len(),
            flood_size,
            baseline_matched: baseline_left.len(),
            baseline_size: baseline.len(),
            signature,
            kind: RuleKind::Signature,
        });
    }
    prefix_fallback(window, baseline, flood_size, target, allowed, config)
}

fn prefix_fallback(
    window: &[Features],
    baseline: &[Features],
    flood_size: usize,
    target: usize,
    allowed: usize,
    config: &MineConfig,
) -> Result<Mined, NoRule> {
    let mut summary = SpaceSaving::new(config.max_prefixes * 2);
    for f in window {
        summary.add(f.get(Attr::ClientPrefix));
    }
    let mut values = Vec::new();
    let mut covered = 0;
    for (value, _) in summary.top().into_iter().take(config.max_prefixes) {
        if value == UNKNOWN {
            continue;
        }
        values.push(value);
        covered += window.iter().filter(|f| f.get(Attr::ClientPrefix) == value).count();
        if covered >= target {
            break;
        }
    }
    if covered < target {
        return Err(NoRule::NoSafeRule);
    }
    values.sort_unstable();
    let signature = Signature { conditions: vec![Condition { attr: Attr::ClientPrefix, values }] };
    let baseline_matched = signature.impact(baseline);
    if baseline_matched > allowed {
        return Err(NoRule::NoSafeRule);
    }
    Ok(Mined {
        window_matched: covered,
        flood_size,
        baseline_matched,
        baseline_size: baseline.len(),
        signature,
        kind: RuleKind::PrefixLimit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn features(seed: &[u64; Attr::COUNT]) -> Features {
        Features { values: seed.map(|v| v.max(1)) }
    }

    #[test]
    fn space_saving_keeps_the_heavy_hitter() {
        let mut s = SpaceSaving::new(4);
        for i in 0..1000u64 {
            s.add(if i % 2 == 0 { 7 } else { 100 + i });
        }
        assert_eq!(s.top()[0].0, 7);
        assert!(s.top()[0].1 >= 500);
    }

    #[test]
    fn too_small_a_baseline_makes_no_rule() {
        let window = vec![features(&[1; Attr::COUNT]); 100];
        let baseline = vec![features(&[2; Attr::COUNT]); 10];
        assert_eq!(mine(&window, 0.0, &baseline, &MineConfig::default()), Err(NoRule::BaselineTooSmall));
    }

    #[test]
    fn unseen_attributes_count_against_a_rule() {
        // The flood differs from the baseline only by header order, which the baseline (from an
        // access log) never saw: no rule may claim zero impact.
        let mut flood = [5u64; Attr::COUNT];
        flood[Attr::HeaderOrder.index()] = 9;
        let window = vec![features(&flood); 500];
        let mut legit = [5u64; Attr::COUNT];
        legit[Attr::HeaderOrder.index()] = UNKNOWN;
        let baseline = vec![Features { values: legit }; 2000];
        assert_eq!(mine(&window, 0.0, &baseline, &MineConfig::default()), Err(NoRule::NoSafeRule));
    }

    fn arb_features(card: u64) -> impl Strategy<Value = Features> {
        proptest::array::uniform12(0..card).prop_map(|values| Features { values })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_traffic_never_yields_a_rule_above_the_impact_limit(
            window in proptest::collection::vec(arb_features(4), 0..400),
            baseline in proptest::collection::vec(arb_features(4), 1000..1400),
            expected in 0.0f64..200.0,
        ) {
            let config = MineConfig::default();
            if let Ok(mined) = mine(&window, expected, &baseline, &config) {
                let measured = mined.signature.impact(&baseline) as f64 / baseline.len() as f64;
                prop_assert!(measured <= config.max_impact, "{mined:?}");
                prop_assert_eq!(mined.signature.impact(&baseline), mined.baseline_matched);
                let covered = window.iter().filter(|f| mined.signature.matches(f)).count();
                prop_assert!(covered as f64 >= config.coverage * mined.flood_size as f64);
            }
        }
    }
}
