//! The fast path of a reconcile: when only source prefixes changed since the last plan
//! (signatures and SYN guards as they were), the maps get just those changes. A full
//! reconcile walks every rule of the plan; this walks the two plans' prefix lists once, in
//! order, and touches only what differs.

use foldhash::HashSet;
use ipnet::{IpNet, Ipv4Net};
use rampart_contract::EventTime;

use super::{Ipv4Rule, XdpFilter};
use crate::layout::RuleValue;
use crate::plan::{FilterPlan, PrefixRule};
use crate::xdp::ids::RuleKey;
use crate::xdp::maps::{delete_all, update_all};
use crate::xdp::time::boot_deadline;
use crate::xdp::{ReconcileReport, XdpError};

/// Prefix rules gone and prefix rules new or changed, from `old` to `new` (both sorted by
/// source, each source once).
fn diff_rules<'a>(
    old: &'a [PrefixRule],
    new: &'a [PrefixRule],
) -> (Vec<&'a PrefixRule>, Vec<&'a PrefixRule>) {
    let (mut gone, mut fresh) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.source == b.source => {
                if a.rule != b.rule {
                    gone.push(a);
                    fresh.push(b);
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.source < b.source => {
                gone.push(a);
                i += 1;
            }
            (Some(a), None) => {
                gone.push(a);
                i += 1;
            }
            (_, Some(b)) => {
                fresh.push(b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (gone, fresh)
}

/// What [`XdpFilter::source_delta`] did.
pub(super) enum Delta {
    /// The delta is in the maps.
    Applied(ReconcileReport),
    /// More than source prefixes changed, or too many of them: a full reconcile is needed,
    /// as a new generation of the source tables when `large` (at least `swap_min_changes`
    /// changes and a quarter of the larger set: filling new tables then costs less than
    /// changing the live ones in place; lists out of order count as large).
    Full { large: bool },
}

fn sorted_unique(rules: &[PrefixRule]) -> bool {
    rules.windows(2).all(|w| w[0].source < w[1].source)
}

impl XdpFilter {
    /// Applies `plan` as a delta of source prefixes over the last plan written, when that is
    /// all that changed and not too much of it.
    pub(super) fn source_delta(
        &mut self,
        last: &FilterPlan,
        plan: &FilterPlan,
        now: EventTime,
        boot_now_ns: u64,
    ) -> Result<Delta, XdpError> {
        if ![&plan.v4, &plan.v6, &last.v4, &last.v6].iter().all(|l| sorted_unique(l)) {
            return Ok(Delta::Full { large: true });
        }
        let (gone4, new4) = diff_rules(&last.v4, &plan.v4);
        let (gone6, new6) = diff_rules(&last.v6, &plan.v6);
        let large = crate::xdp::swap::large_change(
            gone4.len() + new4.len() + gone6.len() + new6.len(),
            last.v4.len() + last.v6.len(),
            plan.v4.len() + plan.v6.len(),
            self.options.swap_min_changes,
        );
        if large
            || last.signatures != plan.signatures
            || last.syn_guards != plan.syn_guards
            || !self.v4_table_known()
        {
            return Ok(Delta::Full { large });
        }
        let mut report = ReconcileReport {
            rules: plan.rules().count() + plan.syn_guards.len(),
            v4_prefixes: plan.v4.len(),
            v6_prefixes: plan.v6.len(),
            signatures: plan.signatures.len(),
            syn_guards: plan.syn_guards.len(),
            // The guards are as the last full reconcile wrote them.
            syn_cookie_fallback: self.cookie_fallback.clone(),
            ..ReconcileReport::default()
        };

        // 1. Slots: a decision keeps its slot when only its rule changed.
        let new_keys: HashSet<RuleKey> =
            new4.iter().chain(&new6).map(|p| RuleKey::Decision(p.rule.decision)).collect();
        let old_keys: HashSet<RuleKey> =
            gone4.iter().chain(&gone6).map(|p| RuleKey::Decision(p.rule.decision)).collect();
        let mut released_keys: Vec<RuleKey> = old_keys.difference(&new_keys).copied().collect();
        released_keys.sort();
        let mut fresh_keys: Vec<RuleKey> = new_keys.difference(&old_keys).copied().collect();
        fresh_keys.sort();
        let assignment = self
            .rule_ids
            .assign_delta(&released_keys, &fresh_keys)
            .map_err(|e| XdpError::Full { what: "rules", wanted: e.wanted, capacity: e.capacity })?;
        let slot =
            |f: &XdpFilter, p: &PrefixRule| f.rule_ids.get(&RuleKey::Decision(p.rule.decision)).unwrap_or(0);

        // 2. Rules, then counters of reused slots.
        let rules: Vec<(u32, RuleValue)> = new4
            .iter()
            .chain(&new6)
            .map(|p| {
                let deadline = boot_deadline(p.rule.expires, now, boot_now_ns);
                (slot(self, p), RuleValue::new(p.rule.action, p.rule.decision.0, deadline))
            })
            .collect();
        self.commit_rules(rules, &assignment.reused, &mut report)?;

        // 3. IPv4: hosts in their hash, the rest by a delta of the table.
        let v4 = |p: &PrefixRule| match p.source {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        };
        let re_added: HashSet<Ipv4Net> = new4.iter().filter_map(|p| v4(p)).collect();
        let host_upserts: Vec<(Vec<u8>, Vec<u8>)> = new4
            .iter()
            .filter_map(|p| Some((v4(p)?, slot(self, p))))
            .filter(|(n, _)| n.prefix_len() == 32)
            .map(|(n, s)| (n.addr().octets().to_vec(), s.to_ne_bytes().to_vec()))
            .collect();
        let host_deletes: Vec<Vec<u8>> = gone4
            .iter()
            .filter_map(|p| v4(p))
            .filter(|n| n.prefix_len() == 32 && !re_added.contains(n))
            .map(|n| n.addr().octets().to_vec())
            .collect();
        {
            let hosts = self.map_named("v4_hosts")?;
            // Deletes first: room in a nearly full hash (none is a key upserted).
            report.elements_written +=
                delete_all(&hosts, &host_deletes)? + update_all(&hosts, &host_upserts)?;
        }
        for p in &gone4 {
            if let Some(n) = v4(p).filter(|n| n.prefix_len() == 32 && !re_added.contains(n)) {
                self.written.src.v4_hosts.remove(&n.addr().octets());
            }
        }
        for p in &new4 {
            if let Some(n) = v4(p).filter(|n| n.prefix_len() == 32) {
                let s = slot(self, p);
                self.written.src.v4_hosts.insert(n.addr().octets(), s);
            }
        }
        let removed: Vec<Ipv4Net> = gone4
            .iter()
            .filter_map(|p| v4(p))
            .filter(|n| n.prefix_len() < 32 && !re_added.contains(n))
            .collect();
        let added: Vec<(Ipv4Net, u32)> = new4
            .iter()
            .filter_map(|p| Some((v4(p)?, slot(self, p))))
            .filter(|(n, _)| n.prefix_len() < 32)
            .collect();
        self.write_v4_delta(&removed, &added, &mut report)?;

        // 4. IPv6, when it changed: the full pass over its (smaller) tables.
        if !(gone6.is_empty() && new6.is_empty()) {
            self.write_v6(plan, &mut report)?;
        }

        // 5. Released rules match nothing once no table points at them.
        self.release_rules(&assignment.released, &mut report)?;
        Ok(Delta::Applied(report))
    }
}

/// What changed from `old` to `new` (both sorted by prefix, each prefix once): prefixes gone,
/// and prefixes new or with another rule.
pub(super) fn sorted_diff(old: &[Ipv4Rule], new: &[Ipv4Rule]) -> (Vec<Ipv4Net>, Vec<Ipv4Rule>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if a.1 != b.1 {
                    added.push(*b);
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                removed.push(a.0);
                i += 1;
            }
            (Some(a), None) => {
                removed.push(a.0);
                i += 1;
            }
            (_, Some(b)) => {
                added.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (removed, added)
}
