//! Stable slot numbers for rules: a rule keeps its slot (and so its counters) across
//! reconciles while it is wanted; a released slot is reused only in a later reconcile, so a
//! table entry written in this one never points at a slot that changed meaning in it.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};

use ipnet::IpNet;
use rampart_contract::DecisionId;

/// What a rule slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKey {
    Decision(DecisionId),
    SynGuard(IpNet),
}

/// Slots 1..=max (0 means "no rule" in the program's tables).
#[derive(Debug, Clone)]
pub struct SlotIds<K> {
    by_key: HashMap<K, u32>,
    /// Released before this reconcile: may be reused now, and may hold stale counters.
    free: BTreeSet<u32>,
    next: u32,
    max: u32,
}

/// The outcome of [`SlotIds::assign`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Slots newly given out that were used before (their counters must be reset).
    pub reused: Vec<u32>,
    /// Slots given up in this reconcile.
    pub released: Vec<u32>,
}

/// Too many slots wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub wanted: usize,
    pub capacity: usize,
}

impl<K: Copy + Eq + std::hash::Hash + Ord> SlotIds<K> {
    pub fn new(max: u32) -> Self {
        SlotIds { by_key: HashMap::default(), free: BTreeSet::new(), next: 1, max }
    }

    /// Restores a slot found in a pinned map (after a restart).
    pub fn restore(&mut self, key: K, slot: u32) {
        if slot == 0 || slot > self.max {
            return;
        }
        self.by_key.insert(key, slot);
        self.free.remove(&slot);
        if slot >= self.next {
            for s in self.next..slot {
                self.free.insert(s);
            }
            self.next = slot + 1;
        }
    }

    /// Marks slots below `next` that no restored key holds as free (call after restoring).
    pub fn finish_restore(&mut self) {
        let held: BTreeSet<u32> = self.by_key.values().copied().collect();
        self.free = (1..self.next).filter(|s| !held.contains(s)).collect();
    }

    pub fn get(&self, key: &K) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Gives every key in `wanted` a slot, keeping the ones it had; releases the rest.
    pub fn assign(&mut self, wanted: &[K]) -> Result<Assignment, Exhausted> {
        let wanted_set: HashSet<K> = wanted.iter().copied().collect();
        if wanted_set.len() > self.max as usize {
            return Err(Exhausted { wanted: wanted_set.len(), capacity: self.max as usize });
        }
        let mut out = Assignment::default();
        let mut released: Vec<(K, u32)> =
            self.by_key.iter().filter(|(k, _)| !wanted_set.contains(k)).map(|(k, s)| (*k, *s)).collect();
        released.sort();
        for (k, _) in &released {
            self.by_key.remove(k);
        }
        let mut fresh: Vec<K> = wanted_set.iter().filter(|k| !self.by_key.contains_key(k)).copied().collect();
        fresh.sort();
        // Slots released in this round are not reusable in it, so room can run short below
        // the capacity while rules are being replaced.
        let available = (self.max + 1 - self.next) as usize + self.free.len();
        if fresh.len() > available {
            // Undo, so a failed reconcile leaves the previous assignment intact.
            self.by_key.extend(released);
            return Err(Exhausted { wanted: wanted_set.len(), capacity: self.max as usize });
        }
        for k in fresh {
            let slot = if let Some(s) = self.free.pop_first() {
                out.reused.push(s);
                s
            } else {
                let s = self.next;
                self.next += 1;
                s
            };
            self.by_key.insert(k, slot);
        }
        out.released = released.into_iter().map(|(_, s)| s).collect();
        self.free.extend(out.released.iter().copied());
        Ok(out)
    }

    /// Like [`assign`](Self::assign), given what changed: `gone` keys give up their slots,
    /// `fresh` ones (not held yet) get one. Both sorted; a key in both keeps its slot.
    pub fn assign_delta(&mut self, gone: &[K], fresh: &[K]) -> Result<Assignment, Exhausted> {
        let fresh: Vec<K> = fresh.iter().filter(|k| !self.by_key.contains_key(k)).copied().collect();
        let leaving =
            gone.iter().filter(|k| self.by_key.contains_key(k) && fresh.binary_search(k).is_err()).count();
        let available = (self.max + 1 - self.next) as usize + self.free.len();
        if fresh.len() > available {
            return Err(Exhausted {
                wanted: self.by_key.len() - leaving + fresh.len(),
                capacity: self.max as usize,
            });
        }
        let mut out = Assignment::default();
        for k in gone {
            if let Some(s) = self.by_key.remove(k) {
                out.released.push(s);
            }
        }
        for k in fresh {
            let slot = if let Some(s) = self.free.pop_first() {
                out.reused.push(s);
                s
            } else {
                let s = self.next;
                self.next += 1;
                s
            };
            self.by_key.insert(k, slot);
        }
        self.free.extend(out.released.iter().copied());
        Ok(out)
    }

    /// One above the highest slot ever given out (slots in use are below it).
    pub fn high_water(&self) -> u32 {
        self.next
    }

    /// Every key and its slot.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u32)> {
        self.by_key.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_released_slots_wait_one_round() {
        let mut ids: SlotIds<u32> = SlotIds::new(3);
        assert_eq!(ids.assign(&[10, 20]).unwrap(), Assignment::default());
        let (a, b) = (ids.get(&10).unwrap(), ids.get(&20).unwrap());
        let out = ids.assign(&[20, 30]).unwrap();
        assert_eq!(ids.get(&20), Some(b));
        assert_ne!(ids.get(&30), Some(a), "a slot released in this round is not reused in it");
        assert_eq!(out.released, vec![a]);
        let out = ids.assign(&[20, 30, 40]).unwrap();
        assert_eq!(ids.get(&40), Some(a));
        assert_eq!(out.reused, vec![a]);
        assert!(ids.assign(&[1, 2, 3, 4]).is_err());
        assert_eq!(ids.get(&40), Some(a), "a failed assignment changes nothing");
    }

    #[test]
    fn a_delta_assignment_is_the_full_one() {
        let mut full: SlotIds<u32> = SlotIds::new(4);
        let mut delta: SlotIds<u32> = SlotIds::new(4);
        full.assign(&[10, 20]).unwrap();
        delta.assign_delta(&[], &[10, 20]).unwrap();
        for (wanted, gone, fresh) in
            [(vec![20, 30], vec![10], vec![30]), (vec![20, 30, 40], vec![], vec![40])]
        {
            assert_eq!(full.assign(&wanted).unwrap(), delta.assign_delta(&gone, &fresh).unwrap());
            for k in &wanted {
                assert_eq!(full.get(k), delta.get(k));
            }
        }
        assert!(delta.assign_delta(&[], &[1, 2]).is_err(), "more than the capacity");
        assert_eq!(delta.get(&40), full.get(&40), "a failed assignment changes nothing");
    }

    #[test]
    fn restored_slots_are_kept() {
        let mut ids: SlotIds<u32> = SlotIds::new(10);
        ids.restore(7, 5);
        ids.finish_restore();
        let out = ids.assign(&[7, 8]).unwrap();
        assert_eq!(ids.get(&7), Some(5));
        assert_eq!(ids.get(&8), Some(1));
        assert_eq!(out.reused, vec![1]);
    }
}
