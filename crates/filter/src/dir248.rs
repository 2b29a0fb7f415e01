//! IPv4 source prefixes laid out as the XDP program's DIR-24-8 table: one slot per /24 holding
//! the rule of the longest prefix of length 24 or less that covers it, or a group of 256 slots
//! (one per address) for the /24s that hold longer prefixes. A lookup is one or two array
//! reads whatever the number of prefixes, where the kernel's LPM trie walks up to 32 nodes.
//!
//! Pure: prefixes in, the table image out, and which parts changed since the previous image
//! (so an update writes only those). A /24's group keeps its index across rebuilds, and new
//! groups take indexes the previous image did not use, so a reader never sees a group index
//! that points at another /24's group while the driver writes groups before the slots.
//!
//! [`Dir248::update`] changes an image in place by a delta (prefixes removed and added): only
//! the /24 ranges of the changed prefixes are recomputed, so the cost follows the change, not
//! the table (a rebuild touches all 16M slots). Groups a delta frees become reusable only in a
//! later delta, once the driver has written the slots that no longer point at them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use ipnet::Ipv4Net;
use thiserror::Error;

/// Slots of the /24 table.
pub const SLOTS24: usize = 1 << 24;
/// Slots per element of the program's `v4_tbl24` array (an array element is at least 8
/// bytes; 16 slots of 4 bytes make one 64-byte element).
pub const SLOTS_PER_BLOCK: usize = 16;
/// Elements of `v4_tbl24`.
pub const BLOCKS: usize = SLOTS24 / SLOTS_PER_BLOCK;
/// A slot value with this bit set names a group.
pub const GROUP_FLAG: u32 = 0x8000_0000;

/// Why a table cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Dir248Error {
    /// More /24s hold prefixes longer than /24 than the group array has room for.
    #[error("{needed} /24 networks hold prefixes longer than /24, the table has room for {max}")]
    TooManyGroups { needed: usize, max: usize },
    /// A rule id must be non-zero and below the group flag bit.
    #[error("rule id {0} is out of range (1..2^31)")]
    BadRuleId(u32),
}

/// The table image.
#[derive(Clone, PartialEq, Eq)]
pub struct Dir248 {
    slots: Vec<u32>,
    /// By group index; only groups in use are allocated.
    groups: Vec<Option<Box<[u32; 256]>>>,
    /// The /24 (address >> 8) each group serves, by group index.
    group_owner: Vec<Option<u32>>,
    group_of: HashMap<u32, u32>,
    /// Prefixes up to /24 and longer ones, by (network, length), for the delta updates.
    short: BTreeMap<(u32, u8), u32>,
    long: BTreeMap<(u32, u8), u32>,
    /// Group indexes no slot points at, those never used (or freed longest ago) first.
    free: VecDeque<u32>,
    /// Freed by the last delta: free from the next one on.
    released: Vec<u32>,
}

/// What a delta changed: the driver writes `groups` first, then `blocks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Group indexes whose content changed (sorted).
    pub groups: Vec<usize>,
    /// `v4_tbl24` elements whose content changed (sorted).
    pub blocks: Vec<usize>,
}

impl std::fmt::Debug for Dir248 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dir248").field("groups_in_use", &self.group_of.len()).finish_non_exhaustive()
    }
}

impl Dir248 {
    /// Builds the table for `prefixes` (each with its rule id; prefixes must be distinct,
    /// truncated or not), with room for `max_groups` groups, keeping `previous`'s group
    /// indexes.
    pub fn build(
        prefixes: &[(Ipv4Net, u32)],
        max_groups: usize,
        previous: Option<&Dir248>,
    ) -> Result<Self, Dir248Error> {
        let mut sorted: Vec<(Ipv4Net, u32)> = Vec::with_capacity(prefixes.len());
        for &(net, rule) in prefixes {
            if rule == 0 || rule & GROUP_FLAG != 0 {
                return Err(Dir248Error::BadRuleId(rule));
            }
            sorted.push((net.trunc(), rule));
        }
        // Shorter first, so longer prefixes paint over the ones that cover them.
        sorted.sort_by_key(|(net, _)| (net.prefix_len(), u32::from(net.network())));

        let mut slots = vec![0u32; SLOTS24];
        let split = sorted.partition_point(|(net, _)| net.prefix_len() <= 24);
        for &(net, rule) in &sorted[..split] {
            let first = (u32::from(net.network()) >> 8) as usize;
            let count = 1usize << (24 - net.prefix_len());
            slots[first..first + count].fill(rule);
        }

        let mut needed: Vec<u32> =
            sorted[split..].iter().map(|(net, _)| u32::from(net.network()) >> 8).collect();
        // Sorted by length then address, equal /24s are not always adjacent.
        needed.sort_unstable();
        needed.dedup();
        if needed.len() > max_groups {
            return Err(Dir248Error::TooManyGroups { needed: needed.len(), max: max_groups });
        }
        let mut group_of: HashMap<u32, u32> = HashMap::with_capacity(needed.len());
        let mut group_owner: Vec<Option<u32>> = vec![None; max_groups];
        let mut taken_before = vec![false; max_groups];
        if let Some(prev) = previous {
            for (i, owner) in prev.group_owner.iter().enumerate().take(max_groups) {
                taken_before[i] = owner.is_some();
            }
        }
        let mut fresh = Vec::new();
        for &slot in &needed {
            match previous.and_then(|p| p.group_of.get(&slot)).filter(|&&g| (g as usize) < max_groups) {
                Some(&g) => {
                    group_of.insert(slot, g);
                    group_owner[g as usize] = Some(slot);
                }
                None => fresh.push(slot),
            }
        }
        // New groups go to indexes unused before if possible, else to any free one.
        let mut free: Vec<u32> =
            (0..max_groups as u32).filter(|&g| group_owner[g as usize].is_none()).collect();
        free.sort_by_key(|&g| (taken_before[g as usize], g));
        for (slot, g) in fresh.into_iter().zip(free) {
            group_of.insert(slot, g);
            group_owner[g as usize] = Some(slot);
        }

        let mut groups: Vec<Option<Box<[u32; 256]>>> = vec![None; max_groups];
        for &slot in &needed {
            let g = group_of[&slot] as usize;
            groups[g] = Some(Box::new([slots[slot as usize]; 256]));
        }
        for &(net, rule) in &sorted[split..] {
            let addr = u32::from(net.network());
            let g = group_of[&(addr >> 8)] as usize;
            let first = (addr & 0xff) as usize;
            let count = 1usize << (32 - net.prefix_len());
            if let Some(group) = groups[g].as_mut() {
                group[first..first + count].fill(rule);
            }
        }
        for (&slot, &g) in &group_of {
            slots[slot as usize] = GROUP_FLAG | g;
        }
        let (mut short, mut long) = (BTreeMap::new(), BTreeMap::new());
        for &(net, rule) in &sorted {
            let key = (u32::from(net.network()), net.prefix_len());
            if net.prefix_len() <= 24 {
                short.insert(key, rule)
            } else {
                long.insert(key, rule)
            };
        }
        let mut free: Vec<u32> =
            (0..max_groups as u32).filter(|&g| group_owner[g as usize].is_none()).collect();
        free.sort_by_key(|&g| (taken_before[g as usize], g));
        Ok(Dir248 {
            slots,
            groups,
            group_owner,
            group_of,
            short,
            long,
            free: free.into(),
            released: Vec::new(),
        })
    }

    /// Changes the image in place: `removed` prefixes go (absent ones are ignored), `added`
    /// ones are set (a prefix already held takes the new rule). Only the /24 ranges the changed
    /// prefixes cover are recomputed. On an error nothing changed.
    pub fn update(&mut self, removed: &[Ipv4Net], added: &[(Ipv4Net, u32)]) -> Result<Changes, Dir248Error> {
        if let Some(&(_, rule)) = added.iter().find(|(_, r)| *r == 0 || r & GROUP_FLAG != 0) {
            return Err(Dir248Error::BadRuleId(rule));
        }
        self.free.extend(self.released.drain(..));
        // What was there before each change, to undo them all when the groups do not fit.
        let mut undo: Vec<((u32, u8), Option<u32>)> = Vec::new();
        let mut short_dirty: Vec<(u32, u8)> = Vec::new();
        let mut long_dirty: BTreeSet<u32> = BTreeSet::new();
        let changes =
            removed.iter().map(|n| (n.trunc(), None)).chain(added.iter().map(|&(n, r)| (n.trunc(), Some(r))));
        for (net, rule) in changes {
            let key = (u32::from(net.network()), net.prefix_len());
            let map = if key.1 <= 24 { &mut self.short } else { &mut self.long };
            let before = match rule {
                Some(r) => map.insert(key, r),
                None => map.remove(&key),
            };
            if before == rule {
                continue;
            }
            undo.push((key, before));
            if key.1 <= 24 {
                short_dirty.push(key);
            } else {
                long_dirty.insert(key.0 >> 8);
            }
        }
        // Groups: every /24 left with longer prefixes needs one.
        let max = self.groups.len();
        let gained =
            long_dirty.iter().filter(|&&s| !self.group_of.contains_key(&s) && self.has_long(s)).count();
        let lost =
            long_dirty.iter().filter(|&&s| self.group_of.contains_key(&s) && !self.has_long(s)).count();
        let needed = self.group_of.len() + gained - lost;
        if gained > self.free.len() + lost {
            for (key, before) in undo.into_iter().rev() {
                let map = if key.1 <= 24 { &mut self.short } else { &mut self.long };
                match before {
                    Some(r) => map.insert(key, r),
                    None => map.remove(&key),
                };
            }
            return Err(Dir248Error::TooManyGroups { needed, max });
        }

        let mut out = Changes::default();
        let mut groups_done: BTreeSet<u32> = BTreeSet::new();
        // Groups given up first, so that when no never-used index is left, new ones can take
        // them.
        for &s24 in &long_dirty {
            if !self.has_long(s24) {
                let base = self.short_rule(s24);
                self.recompute_group(s24, base, &mut out);
            }
        }
        // Shortest first, so a range inside one already recomputed is skipped.
        short_dirty.sort_by_key(|&(addr, len)| (len, addr));
        let mut done: BTreeMap<u32, u32> = BTreeMap::new();
        for (addr, len) in short_dirty {
            let first = addr >> 8;
            let last = first + ((1u32 << (24 - len)) - 1);
            if done.range(..=first).next_back().is_some_and(|(_, &end)| end >= last) {
                continue;
            }
            done.insert(first, last);
            self.recompute_range(addr, len, &mut out, &mut groups_done);
        }
        for s24 in long_dirty {
            if groups_done.contains(&s24) {
                continue;
            }
            let base = self.short_rule(s24);
            self.recompute_group(s24, base, &mut out);
        }
        out.groups.sort_unstable();
        out.groups.dedup();
        out.blocks.sort_unstable();
        out.blocks.dedup();
        Ok(out)
    }

    fn has_long(&self, s24: u32) -> bool {
        self.long.range((s24 << 8, 25)..=((s24 << 8) | 0xff, 32)).next().is_some()
    }

    /// The rule of the longest prefix up to /24 covering /24 `s24`.
    fn short_rule(&self, s24: u32) -> u32 {
        self.ancestor_rule(s24 << 8, 24)
    }

    /// The rule of the longest prefix up to /24, of length at most `len`, covering `addr`.
    fn ancestor_rule(&self, addr: u32, len: u8) -> u32 {
        (0..=len)
            .rev()
            .find_map(|l| {
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                self.short.get(&(addr & mask, l)).copied()
            })
            .unwrap_or(0)
    }

    /// Recomputes the /24 slots prefix `addr/len` (up to /24) covers, and their groups.
    fn recompute_range(&mut self, addr: u32, len: u8, out: &mut Changes, groups_done: &mut BTreeSet<u32>) {
        let first = addr >> 8;
        let count = 1usize << (24 - len);
        let base = if len == 0 { 0 } else { self.ancestor_rule(addr, len - 1) };
        let mut values = vec![base; count];
        let last_addr = if len == 0 { u32::MAX } else { addr | (u32::MAX >> len) };
        let mut inner: Vec<(u32, u8, u32)> = self
            .short
            .range((addr, len)..=(last_addr, 24))
            .filter(|((_, l), _)| *l >= len)
            .map(|(&(a, l), &r)| (a, l, r))
            .collect();
        inner.sort_by_key(|&(a, l, _)| (l, a));
        for (a, l, r) in inner {
            let from = ((a >> 8) - first) as usize;
            values[from..from + (1usize << (24 - l))].fill(r);
        }
        for (i, value) in values.into_iter().enumerate() {
            let s24 = first + i as u32;
            // A /24 that just gained longer prefixes gets its group in `update`'s last pass.
            if self.slots[s24 as usize] & GROUP_FLAG != 0 {
                groups_done.insert(s24);
                self.recompute_group(s24, value, out);
            } else if self.slots[s24 as usize] != value {
                self.slots[s24 as usize] = value;
                out.blocks.push(s24 as usize / SLOTS_PER_BLOCK);
            }
        }
    }

    /// Recomputes the group of /24 `s24` over `base` (its rule up to /24): created, changed or
    /// released as its longer prefixes say.
    fn recompute_group(&mut self, s24: u32, base: u32, out: &mut Changes) {
        let lo = s24 << 8;
        let mut inner: Vec<(u32, u8, u32)> =
            self.long.range((lo, 25)..=(lo | 0xff, 32)).map(|(&(a, l), &r)| (a, l, r)).collect();
        let held = self.group_of.get(&s24).copied();
        if inner.is_empty() {
            if let Some(g) = held {
                self.groups[g as usize] = None;
                self.group_owner[g as usize] = None;
                self.group_of.remove(&s24);
                self.released.push(g);
            }
            if self.slots[s24 as usize] != base {
                self.slots[s24 as usize] = base;
                out.blocks.push(s24 as usize / SLOTS_PER_BLOCK);
            }
            return;
        }
        inner.sort_by_key(|&(a, l, _)| (l, a));
        let mut content = Box::new([base; 256]);
        for (a, l, r) in inner {
            let from = (a & 0xff) as usize;
            content[from..from + (1usize << (32 - l))].fill(r);
        }
        let g = match held {
            Some(g) => g,
            None => {
                // `update` checked there is room: a never-used (or long freed) index, else one
                // just released.
                let Some(g) = self.free.pop_front().or_else(|| self.released.pop()) else { return };
                self.group_of.insert(s24, g);
                self.group_owner[g as usize] = Some(s24);
                g
            }
        };
        if self.groups[g as usize].as_deref() != Some(&*content) {
            self.groups[g as usize] = Some(content);
            out.groups.push(g as usize);
        }
        if self.slots[s24 as usize] != GROUP_FLAG | g {
            self.slots[s24 as usize] = GROUP_FLAG | g;
            out.blocks.push(s24 as usize / SLOTS_PER_BLOCK);
        }
    }

    /// The rule for `addr` (0: none), as the program finds it.
    pub fn lookup(&self, addr: std::net::Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        let v = self.slots[(a >> 8) as usize];
        if v & GROUP_FLAG != 0 {
            self.groups[(v & !GROUP_FLAG) as usize].as_ref().map_or(0, |g| g[(a & 0xff) as usize])
        } else {
            v
        }
    }

    /// The 16 slots of `v4_tbl24` element `block`.
    pub fn block(&self, block: usize) -> &[u32] {
        &self.slots[block * SLOTS_PER_BLOCK..(block + 1) * SLOTS_PER_BLOCK]
    }

    /// Group `g`'s 256 slots (all 0 for a group not in use).
    pub fn group(&self, g: usize) -> &[u32; 256] {
        const EMPTY: [u32; 256] = [0; 256];
        self.groups.get(g).and_then(Option::as_deref).unwrap_or(&EMPTY)
    }

    /// Groups in use.
    pub fn groups_in_use(&self) -> usize {
        self.group_of.len()
    }

    /// Group indexes whose content differs from `previous` (all in use when there is none).
    pub fn changed_groups(&self, previous: Option<&Dir248>) -> Vec<usize> {
        // Only groups in use now matter: one no longer in use has no slot pointing at it.
        (0..self.groups.len())
            .filter(|&g| self.groups[g].is_some())
            .filter(|&g| previous.is_none_or(|p| p.group(g) != self.group(g)))
            .collect()
    }

    /// `v4_tbl24` elements whose content differs from `previous` (all non-empty ones when
    /// there is none: a fresh map is zeroed).
    pub fn changed_blocks(&self, previous: Option<&Dir248>) -> Vec<usize> {
        (0..BLOCKS)
            .filter(|&b| match previous {
                Some(p) => p.block(b) != self.block(b),
                None => self.block(b).iter().any(|&s| s != 0),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn naive(prefixes: &[(Ipv4Net, u32)], addr: Ipv4Addr) -> u32 {
        prefixes
            .iter()
            .filter(|(n, _)| n.contains(&addr))
            .max_by_key(|(n, _)| n.prefix_len())
            .map_or(0, |&(_, r)| r)
    }

    #[test]
    fn longest_prefix_wins_at_every_length() {
        let p = |s: &str, r| (s.parse::<Ipv4Net>().unwrap(), r);
        let prefixes = vec![
            p("10.0.0.0/8", 1),
            p("10.1.0.0/16", 2),
            p("10.1.2.0/24", 3),
            p("10.1.2.128/25", 4),
            p("10.1.2.200/32", 5),
            p("0.0.0.0/0", 6),
        ];
        let t = Dir248::build(&prefixes, 4, None).unwrap();
        for (addr, want) in [
            ("10.9.9.9", 1),
            ("10.1.9.9", 2),
            ("10.1.2.3", 3),
            ("10.1.2.129", 4),
            ("10.1.2.200", 5),
            ("192.0.2.1", 6),
        ] {
            assert_eq!(t.lookup(addr.parse().unwrap()), want, "{addr}");
        }
        assert_eq!(t.groups_in_use(), 1);
        assert_eq!(Dir248::build(&prefixes, 0, None), Err(Dir248Error::TooManyGroups { needed: 1, max: 0 }));
        assert_eq!(Dir248::build(&[p("10.0.0.0/8", 0)], 0, None), Err(Dir248Error::BadRuleId(0)));
    }

    #[test]
    fn rebuilds_keep_group_indexes_and_diff_only_what_changed() {
        let p = |s: &str, r| (s.parse::<Ipv4Net>().unwrap(), r);
        let first = Dir248::build(&[p("192.0.2.1/32", 1), p("198.51.100.0/28", 2)], 8, None).unwrap();
        let second =
            Dir248::build(&[p("198.51.100.0/28", 2), p("203.0.113.9/32", 3)], 8, Some(&first)).unwrap();
        assert_eq!(
            second.group_of[&(u32::from(Ipv4Addr::new(198, 51, 100, 0)) >> 8)],
            first.group_of[&(u32::from(Ipv4Addr::new(198, 51, 100, 0)) >> 8)]
        );
        // The new /24 does not take the group 192.0.2.0/24 just gave up.
        let old = first.group_of[&(u32::from(Ipv4Addr::new(192, 0, 2, 0)) >> 8)];
        assert_ne!(second.group_of[&(u32::from(Ipv4Addr::new(203, 0, 113, 0)) >> 8)], old);
        assert_eq!(second.changed_blocks(Some(&first)).len(), 2);
        assert_eq!(
            second.changed_groups(Some(&first)).len(),
            1,
            "only the new group; the freed one has no slot pointing at it"
        );
        assert!(second.changed_blocks(Some(&second)).is_empty());
    }

    fn arb_prefixes() -> impl Strategy<Value = Vec<(Ipv4Net, u32)>> {
        arb_prefixes_from(0)
    }

    /// From /`shortest` on (a delta recomputes the whole range of a short prefix: a /0 is 16M
    /// slots, slow in a debug build; the unit test below covers /0).
    fn arb_prefixes_from(shortest: u8) -> impl Strategy<Value = Vec<(Ipv4Net, u32)>> {
        // Clustered addresses so prefixes overlap.
        prop::collection::vec((0u32..4, any::<u32>(), shortest..=32), 0..40).prop_map(|raw| {
            let mut seen = std::collections::HashSet::new();
            raw.into_iter()
                .enumerate()
                .filter_map(|(i, (hi, lo, len))| {
                    let addr = (hi << 30) | (0x0a0b_0000 | (lo & 0x3ff));
                    let net = Ipv4Net::new(Ipv4Addr::from(addr), len).ok()?.trunc();
                    seen.insert(net).then_some((net, i as u32 + 1))
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn matches_a_naive_longest_prefix_search(prefixes in arb_prefixes(), probes in prop::collection::vec(any::<u32>(), 64)) {
            let t = Dir248::build(&prefixes, 64, None).unwrap();
            let mut addrs: Vec<Ipv4Addr> = prefixes.iter().flat_map(|(n, _)| [n.network(), n.broadcast()]).collect();
            addrs.extend(probes.iter().map(|&r| Ipv4Addr::from((r & 0xc000_0000) | 0x0a0b_0000 | (r & 0x3ff))));
            for a in addrs {
                prop_assert_eq!(t.lookup(a), naive(&prefixes, a), "{}", a);
            }
        }

        #[test]
        fn delta_updates_match_a_naive_search_and_report_every_change(
            a in arb_prefixes_from(6),
            b in arb_prefixes_from(6),
            probes in prop::collection::vec(any::<u32>(), 64),
        ) {
            let mut t = Dir248::build(&a, 64, None).unwrap();
            let mut addrs: Vec<Ipv4Addr> =
                a.iter().chain(&b).flat_map(|(n, _)| [n.network(), n.broadcast()]).collect();
            addrs.extend(probes.iter().map(|&r| Ipv4Addr::from((r & 0xc000_0000) | 0x0a0b_0000 | (r & 0x3ff))));
            // There and back again: groups freed by the first delta are reused by the second.
            for (from, to) in [(&a, &b), (&b, &a), (&a, &b)] {
                let before = t.clone();
                let removed: Vec<Ipv4Net> =
                    from.iter().map(|(n, _)| *n).filter(|n| !to.iter().any(|(m, _)| m == n)).collect();
                let added: Vec<(Ipv4Net, u32)> =
                    to.iter().filter(|p| !from.contains(p)).copied().collect();
                let changes = t.update(&removed, &added).unwrap();
                for &addr in &addrs {
                    prop_assert_eq!(t.lookup(addr), naive(to, addr), "{}", addr);
                }
                // Whole chunks compared at once (a memcmp), the blocks of those that differ.
                const CHUNK: usize = 4096 * SLOTS_PER_BLOCK;
                for (c, (x, y)) in before.slots.chunks_exact(CHUNK).zip(t.slots.chunks_exact(CHUNK)).enumerate() {
                    if x == y {
                        continue;
                    }
                    for b in c * 4096..(c + 1) * 4096 {
                        if before.block(b) != t.block(b) {
                            prop_assert!(changes.blocks.binary_search(&b).is_ok(), "block {} changed unreported", b);
                        }
                    }
                }
                for (s24, &g) in &t.group_of {
                    let g = g as usize;
                    prop_assert_eq!(t.slots[*s24 as usize], GROUP_FLAG | g as u32);
                    prop_assert_eq!(t.group_owner[g], Some(*s24));
                    if before.group(g) != t.group(g) {
                        prop_assert!(changes.groups.binary_search(&g).is_ok(), "group {} changed unreported", g);
                    }
                    // A reader never follows a slot into another /24's group.
                    prop_assert!(before.group_owner[g].is_none_or(|o| o == *s24), "group {} reused at once", g);
                }
            }
        }
    }

    #[test]
    fn a_delta_that_needs_too_many_groups_changes_nothing() {
        let p = |s: &str, r| (s.parse::<Ipv4Net>().unwrap(), r);
        let mut t = Dir248::build(&[p("192.0.2.1/32", 1)], 1, None).unwrap();
        let before = t.clone();
        let error = t.update(&[], &[p("198.51.100.1/32", 2), p("10.0.0.0/8", 3)]).unwrap_err();
        assert_eq!(error, Dir248Error::TooManyGroups { needed: 2, max: 1 });
        assert!(t == before);
        assert_eq!(t.update(&[], &[p("10.0.0.0/8", 0)]), Err(Dir248Error::BadRuleId(0)));
        // Giving up the only group makes room for another /24 in the same delta.
        let changes = t.update(&["192.0.2.1/32".parse().unwrap()], &[p("198.51.100.1/32", 2)]).unwrap();
        assert_eq!(t.lookup("198.51.100.1".parse().unwrap()), 2);
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), 0);
        assert_eq!(changes.groups, vec![0]);
        // The default route, under and over the rest.
        t.update(&[], &[p("0.0.0.0/0", 4), p("198.51.0.0/16", 5)]).unwrap();
        for (addr, want) in [("192.0.2.1", 4), ("198.51.100.1", 2), ("198.51.100.2", 5), ("198.52.0.1", 4)] {
            assert_eq!(t.lookup(addr.parse().unwrap()), want, "{addr}");
        }
        t.update(&["0.0.0.0/0".parse().unwrap()], &[]).unwrap();
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), 0);
        assert_eq!(t.lookup("198.51.100.2".parse().unwrap()), 5);
    }
}
