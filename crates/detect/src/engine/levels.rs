//! Closing a second: hosts against their limits, then the aggregate ladder (/24 or /64, the
//! IPv6 wide prefix, the protected network) and host groups, each fed only what the level
//! below did not flag; baselines learn from what was normal.

use std::collections::BTreeSet;

use rampart_contract::AttackEvent;

use super::counters::{FastMap, Metrics, TrafficRates};
use super::crossing::BaselineLimit;
use super::keys::{SLOT_PREFIX, SLOT_WIDE, TargetKey, ip_of, is_v4_key};
use super::{Engine, HostSecond, MAINTAIN_EVERY_SECS};
use crate::baseline::{Baseline, Sample};
use crate::config::{Policy, Thresholds};

impl Engine {
    /// The first aggregate level of a host: its /24 or /64.
    #[inline]
    pub(super) fn prefix_of(&self, key: u128) -> TargetKey {
        if is_v4_key(key) {
            TargetKey::Prefix(key & self.v4_prefix_mask, 96 + self.config.aggregation.ipv4_prefix_len)
        } else {
            TargetKey::Prefix(key & self.v6_prefix_mask, self.config.aggregation.ipv6_prefix_len)
        }
    }

    /// The aggregate above a prefix of length `len`: the IPv6 wide prefix, else the protected
    /// network holding it (when that is wider).
    pub(super) fn parent_of(&self, key: u128, len: u8) -> Option<TargetKey> {
        // The narrowest protected network wider than `len`.
        let network = self
            .protected
            .iter()
            .filter(|&&(net, m, net_len)| key & m == net && net_len < len)
            .max_by_key(|&&(_, _, net_len)| net_len)
            .map(|&(net, _, net_len)| TargetKey::Prefix(net, net_len));
        let wide = self.config.aggregation.ipv6_wide_prefix_len;
        // The wide level sits between the prefix and the network, never beyond the network.
        let wide_fits = match network {
            Some(TargetKey::Prefix(_, net_len)) => net_len < wide,
            _ => self.protected.is_empty(),
        };
        if !is_v4_key(key) && wide > 0 && wide < len && wide_fits {
            return Some(TargetKey::Prefix(key & self.v6_wide_mask, wide));
        }
        network
    }

    /// `Some(true)` under attack, `Some(false)` a candidate, `None` untracked.
    pub(super) fn tracked(&self, target: TargetKey) -> Option<bool> {
        self.targets.get(&target).map(|s| s.attack.is_some())
    }

    /// The "N times normal" limit for a group (or the default), scaled by the threat level: at
    /// 50 % a factor of 3 becomes 2, the floors halve.
    pub(super) fn baseline_limit(&self, group: Option<usize>, percent: u8) -> BaselineLimit {
        let b = &self.config.baseline;
        let factor =
            group.and_then(|g| self.config.groups.get(g)).and_then(|g| g.baseline_factor).unwrap_or(b.factor);
        let scale = |v: u64| (u128::from(v) * u128::from(percent) / 100) as u64;
        BaselineLimit {
            factor: 1.0 + (factor - 1.0) * f64::from(percent) / 100.0,
            floors: [scale(b.min_pps), scale(b.min_bps), scale(b.min_flows)],
        }
    }

    pub(super) fn close_second(&mut self, second: u64, events: &mut Vec<AttackEvent>) {
        self.last = None;
        let bucket = self.buckets.pop_front().unwrap_or_default();
        // A raised threat level scales every threshold (and baseline factor) down.
        let percent = self.config.threat.percent(self.config.threat.level_at(second).0);
        let scale = |t: &Thresholds| if percent == 100 { *t } else { t.scaled(percent) };
        let default_in = scale(&self.config.thresholds);
        let default_out = scale(&self.config.outbound);
        let group_limits: Vec<(Thresholds, Thresholds, Policy, BaselineLimit)> = self
            .config
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (scale(&g.thresholds), scale(&g.outbound), g.policy, self.baseline_limit(Some(i), percent))
            })
            .collect();
        let default_limit = self.baseline_limit(None, percent);
        let baselines_on = self.config.baseline.enabled;

        let mut evaluated: BTreeSet<TargetKey> = BTreeSet::new();
        let mut level: Vec<(TargetKey, Metrics)> = Vec::new();
        let mut level_index: FastMap<TargetKey, usize> = FastMap::default();
        let max_prefixes = self.config.limits.max_prefixes;
        let add_to = |level: &mut Vec<(TargetKey, Metrics)>,
                      index: &mut FastMap<TargetKey, usize>,
                      target: TargetKey,
                      m: &Metrics| {
            if let Some(&i) = index.get(&target) {
                if let Some((_, agg)) = level.get_mut(i) {
                    agg.merge(m);
                }
            } else if level.len() < max_prefixes {
                index.insert(target, level.len());
                level.push((target, *m));
            }
        };
        let mut group_totals: Vec<Option<Metrics>> = vec![None; self.config.groups.len()];
        // Hot prefixes (indices into `bucket.prefixes`) under each aggregate and group, whose
        // provisional profiles make its first second's profile.
        let mut hot_children: FastMap<TargetKey, Vec<u32>> = FastMap::default();
        let mut group_hot: Vec<Vec<u32>> = vec![Vec::new(); self.config.groups.len()];
        // Hot hosts feeding the aggregates: (prefix index, provisional profile index). Their
        // packets are in their own provisional profiles, not their prefix's.
        let mut hot_hosts: Vec<(u32, u32)> = Vec::new();
        let mut total_rates = TrafficRates::default();
        let mut group_rates = vec![TrafficRates::default(); self.config.groups.len()];

        for host in &bucket.hosts {
            total_rates.add(host);
            let group =
                if self.config.groups.is_empty() { None } else { self.config.group_of(ip_of(host.key)) };
            let (thresholds_in, thresholds_out, policy, limit) = match group.and_then(|g| group_limits.get(g))
            {
                Some(&(t_in, t_out, policy, limit)) => (t_in, t_out, policy, limit),
                None => (default_in, default_out, self.config.policy, default_limit),
            };
            if let Some(rates) = group.and_then(|g| group_rates.get_mut(g)) {
                rates.add(host);
            }
            if policy == Policy::Ignore {
                continue;
            }
            let inbound = Metrics::inbound(host);
            let target = TargetKey::Host(host.key);
            let tracked = self.tracked(target);
            if inbound.total > 0 {
                let mut crossed = inbound.crossed_host(&thresholds_in);
                let learned = if baselines_on { self.baselines.baseline(host.key, second) } else { None };
                if let Some(b) = &learned {
                    crossed.extend(inbound.crossed_baseline(b, limit));
                }
                // Under its thresholds and not under attack: feeds the aggregates.
                if crossed.is_empty() && tracked != Some(true) {
                    add_to(&mut level, &mut level_index, self.prefix_of(host.key), &inbound);
                    let host_hot = bucket.provisional(host.provisional[0]).is_some();
                    if host_hot {
                        hot_hosts.push((host.prefix, host.provisional[0]));
                    }
                    if let Some(total) = group.and_then(|g| group_totals.get_mut(g)) {
                        total.get_or_insert_with(Metrics::default).merge(&inbound);
                        if let Some(hot) = group.and_then(|g| group_hot.get_mut(g))
                            && (host_hot || bucket.prefix_provisional(host.prefix).is_some())
                        {
                            hot.push(host.prefix);
                        }
                    }
                }
                if baselines_on {
                    let normal = crossed.is_empty() && tracked.is_none();
                    self.learn(host.key, second, &inbound, normal, learned.as_ref(), limit);
                }
                if !crossed.is_empty() || tracked.is_some() {
                    evaluated.insert(target);
                    let first = bucket.provisional(host.provisional[0]);
                    self.evaluate(target, second, &inbound, &crossed, first, events);
                }
            }
            if host.outbound.total() > 0 {
                let outbound = Metrics::outbound(host);
                let target = TargetKey::Outbound(host.key);
                let crossed = outbound.crossed_host(&thresholds_out);
                if !crossed.is_empty() || self.targets.contains_key(&target) {
                    evaluated.insert(target);
                    let first = bucket.provisional(host.provisional[1]);
                    self.evaluate(target, second, &outbound, &crossed, first, events);
                }
            }
        }
        self.total_rates = total_rates;
        self.group_rates = group_rates;

        // Sorted so that event order and attack ids never depend on hash order.
        let mut overflow: Vec<(&u128, &HostSecond)> = bucket.overflow.iter().collect();
        overflow.sort_unstable_by_key(|(k, _)| **k);
        for (&prefix_key, agg) in overflow {
            let mut m = Metrics::inbound(agg);
            // Unknown spread over hosts: assume many.
            m.hosts = u64::MAX / 2;
            m.max_host = 0;
            add_to(&mut level, &mut level_index, self.prefix_of(prefix_key), &m);
        }

        // Aggregate levels: /24 or /64, then the IPv6 wide prefix, then the protected network.
        // Each level gets only the traffic of the level below that is under its thresholds and
        // not under attack, so one carpet bombing is reported once, at the narrowest level
        // that sees it.
        let agg = self.config.aggregation;
        let level_limits =
            [scale(&agg.thresholds), scale(&agg.wide_thresholds), scale(&agg.network_thresholds)];
        while !level.is_empty() {
            let mut next: Vec<(TargetKey, Metrics)> = Vec::new();
            let mut next_index: FastMap<TargetKey, usize> = FastMap::default();
            for (target, m) in std::mem::take(&mut level) {
                let slot = target.slot(&self.config);
                let limits = match slot {
                    SLOT_PREFIX => &level_limits[0],
                    SLOT_WIDE => &level_limits[1],
                    _ => &level_limits[2],
                };
                let crossed = m.crossed_aggregate(limits);
                let tracked = self.tracked(target);
                let hot: Vec<u32> = match target {
                    TargetKey::Prefix(key, _) if slot == SLOT_PREFIX => {
                        bucket.prefix_slot(key).into_iter().collect()
                    }
                    _ => hot_children.remove(&target).unwrap_or_default(),
                };
                if !crossed.is_empty() || tracked.is_some() {
                    evaluated.insert(target);
                    let merged = if crossed.is_empty() {
                        None
                    } else {
                        bucket.merged_provisional(Some(&hot), &hot_hosts)
                    };
                    self.evaluate(target, second, &m, &crossed, merged.as_ref(), events);
                }
                if crossed.is_empty()
                    && tracked != Some(true)
                    && let TargetKey::Prefix(key, len) = target
                    && let Some(parent) = self.parent_of(key, len)
                {
                    add_to(&mut next, &mut next_index, parent, &m);
                    if !hot.is_empty() {
                        hot_children.entry(parent).or_default().extend(hot);
                    }
                }
            }
            level = next;
        }

        for (g, total) in group_totals.into_iter().enumerate() {
            let Some(m) = total else { continue };
            let target = TargetKey::Group(g as u16);
            let Some(group) = self.config.groups.get(g) else { continue };
            let mut crossed = match &group.aggregate {
                Some(limits) => m.crossed_aggregate(&scale(limits)),
                None => Vec::new(),
            };
            let key = self.group_keys.get(g).copied().unwrap_or_default();
            if baselines_on {
                let limit = group_limits.get(g).map_or(default_limit, |l| l.3);
                let learned = self.baselines.baseline(key, second);
                if let Some(b) = &learned {
                    crossed.extend(m.crossed_baseline(b, limit));
                }
                let normal = crossed.is_empty() && !self.targets.contains_key(&target);
                self.learn(key, second, &m, normal, learned.as_ref(), limit);
            }
            if !crossed.is_empty() || self.targets.contains_key(&target) {
                evaluated.insert(target);
                let merged = if crossed.is_empty() {
                    None
                } else {
                    bucket.merged_provisional(group_hot.get(g), &hot_hosts)
                };
                self.evaluate(target, second, &m, &crossed, merged.as_ref(), events);
            }
        }

        let mut silent: Vec<TargetKey> =
            self.targets.keys().filter(|t| !evaluated.contains(t)).copied().collect();
        silent.sort();
        for target in silent {
            self.evaluate(target, second, &Metrics::default(), &[], None, events);
        }
        if second.is_multiple_of(MAINTAIN_EVERY_SECS) {
            self.campaigns.expire(second, self.config.lifecycle.campaign_gap_secs);
        }
        if baselines_on && second.is_multiple_of(MAINTAIN_EVERY_SECS) {
            self.baselines.maintain(second);
            let stats = self.baselines.stats();
            self.stats.baseline_keys = stats.keys as u64;
            self.stats.baseline_untracked = stats.untracked;
        }
        let mut bucket = bucket;
        bucket.clear();
        if self.pool.len() < 4 {
            self.pool.push(bucket);
        }
    }

    /// Learns a second of `key`'s traffic: as is when `normal`; otherwise (over a limit, a
    /// candidate or under attack) capped at the baseline's alert limit for the time-of-day
    /// histograms only, so a surge recurring daily becomes normal for its hour while a flood
    /// teaches at most `factor` times normal and never the recent level.
    pub(super) fn learn(
        &mut self,
        key: u128,
        second: u64,
        m: &Metrics,
        normal: bool,
        learned: Option<&Baseline>,
        limit: BaselineLimit,
    ) {
        let sample = m.sample();
        if normal {
            self.baselines.learn(key, second, &sample);
            return;
        }
        let Some(b) = learned else {
            self.baselines.hold(key, second);
            return;
        };
        let [pps, bps, flows] = limit.of(b);
        let capped = Sample {
            pps: sample.pps.min(pps),
            bps: sample.bps.min(bps),
            flows: sample.flows.min(flows),
            ..sample
        };
        self.baselines.hold_capped(key, second, &capped);
    }
}
