//! IPv4 source prefixes laid out as the XDP program's DIR-24-8 table: one slot per /24 holding
//! the rule of the longest prefix of length 24 or less that covers it, or a group of 256 slots
//! (one per address) for the /24s that hold longer prefixes. A lookup is one or two array
//! reads whatever the number of prefixes, where the kernel's LPM trie walks up to 32 nodes.
//!
//! Pure: prefixes in, the table image out, and which parts changed since the previous image
//! (so an update writes only those). A /24's group keeps its index across rebuilds, and new
//! groups take indexes the previous image did not use, so a reader never sees a group index
//! that points at another /24's group while the driver writes groups before the slots.

use std::collections::HashMap;

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
        Ok(Dir248 { slots, groups, group_owner, group_of })
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
        // Clustered addresses so prefixes overlap.
        prop::collection::vec((0u32..4, any::<u32>(), 0u8..=32), 0..40).prop_map(|raw| {
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
    }
}
