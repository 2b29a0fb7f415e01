//! The flood a first rule leaves (issue 12 §2): a rule must cover 90 % of a flood, so up to a
//! tenth of it (a second bot family, a tool with another header order) can stay unmatched and
//! still reach the origin. The ordinary trigger counts only unmatched requests against the
//! route's limit, so a remainder smaller than the limit never trips it. This is the second
//! trigger: while a route has a rule in force and is still over its limit counting every
//! request, the unmatched ones are a flood of their own when they pass `remainder_factor` times
//! the learned rate (and by at least the miner's `min_flood_requests`). A further rule is then
//! mined from the requests no rule matches, under the same 0.1 % bound on the baseline sample,
//! up to `max_rules_per_route` rules. Legitimate traffic alone stays under it (it is what the
//! baseline learned), and if it does not, the miner still finds no rule it could touch.

/// What the remainder trigger looks at, for one route and one second so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemainderInput {
    /// Every request of the route this second, those rules matched included.
    pub requests: u64,
    /// Those no rule matched.
    pub unmatched: u64,
    /// The route's limit (requests per second).
    pub limit: f64,
    /// Its learned request rate.
    pub baseline_rate: f64,
    /// Rules in force on the route.
    pub rules: usize,
}

/// The unmatched requests' count this second over which they are a flood of their own, while
/// the route is over its limit; `None` when the trigger cannot apply (no rule yet, or the route
/// is under its limit).
pub fn remainder_limit(input: &RemainderInput, factor: f64, min_excess: usize) -> Option<f64> {
    if input.rules == 0 || input.requests as f64 <= input.limit {
        return None;
    }
    let rate = input.baseline_rate.max(0.0);
    Some((rate * factor).max(rate + min_excess as f64))
}

/// Whether the unmatched requests are a flood of their own.
pub fn is_flood(input: &RemainderInput, factor: f64, min_excess: usize) -> bool {
    remainder_limit(input, factor, min_excess).is_some_and(|limit| input.unmatched as f64 > limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_over_the_limit_with_a_rule_and_a_remainder_well_over_normal() {
        let held =
            RemainderInput { requests: 1000, unmatched: 45, limit: 135.0, baseline_rate: 45.0, rules: 1 };
        assert!(!is_flood(&held, 1.5, 20), "the rule holds the flood, the rest is normal");
        let leftover = RemainderInput { unmatched: 115, ..held };
        assert!(is_flood(&leftover, 1.5, 20));
        assert!(
            !is_flood(&RemainderInput { rules: 0, ..leftover }, 1.5, 20),
            "no rule: the ordinary trigger's case"
        );
        assert!(!is_flood(&RemainderInput { requests: 130, ..leftover }, 1.5, 20), "route under its limit");
        // A small route: the absolute excess decides (3 x 2 = 6 requests is no flood).
        let small =
            RemainderInput { requests: 400, unmatched: 15, limit: 100.0, baseline_rate: 2.0, rules: 1 };
        assert!(!is_flood(&small, 1.5, 20));
        assert!(is_flood(&RemainderInput { unmatched: 23, ..small }, 1.5, 20));
    }
}
