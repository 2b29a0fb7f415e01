//! Pulse waves: an attack that starts soon after another on the same target ended, with a
//! vector in common, is that campaign's next pulse. Ended attacks are remembered for the
//! campaign gap, at most `max_attacks` of them (the oldest forgotten first).

use std::collections::BTreeSet;

use rampart_contract::{AttackId, Campaign, Vector};

use super::counters::FastMap;
use super::keys::TargetKey;

/// The last pulse of a campaign on one target.
#[derive(Debug, Clone)]
struct Ended {
    /// Second of its last second over a limit.
    last_over: u64,
    vectors: BTreeSet<Vector>,
    id: u64,
    /// The campaign's first attack and this pulse's number.
    first: u64,
    pulse: u32,
}

#[derive(Debug, Default)]
pub(super) struct Campaigns {
    ended: FastMap<TargetKey, Ended>,
}

impl Campaigns {
    /// The campaign an attack on `target` starting at `second` with `vectors` continues, if any.
    pub(super) fn continues(
        &self,
        target: TargetKey,
        second: u64,
        vectors: &BTreeSet<Vector>,
        gap_secs: u32,
    ) -> Option<Campaign> {
        let last = self.ended.get(&target)?;
        let within = second.saturating_sub(last.last_over) <= u64::from(gap_secs);
        (within && gap_secs > 0 && !last.vectors.is_disjoint(vectors)).then(|| Campaign {
            first: AttackId(last.first),
            pulse: last.pulse.saturating_add(1),
            previous: AttackId(last.id),
        })
    }

    /// Remembers an attack that ended (`campaign`: its place in one, if it continued one).
    pub(super) fn ended(
        &mut self,
        target: TargetKey,
        id: u64,
        last_over: u64,
        vectors: &BTreeSet<Vector>,
        campaign: Option<Campaign>,
        max: usize,
    ) {
        if max == 0 {
            return;
        }
        if self.ended.len() >= max
            && !self.ended.contains_key(&target)
            && let Some(oldest) = self.ended.iter().min_by_key(|(_, e)| e.last_over).map(|(k, _)| *k)
        {
            self.ended.remove(&oldest);
        }
        let (first, pulse) = campaign.map_or((id, 1), |c| (c.first.0, c.pulse));
        self.ended.insert(target, Ended { last_over, vectors: vectors.clone(), id, first, pulse });
    }

    /// Forgets attacks ended more than `gap_secs` before `second`.
    pub(super) fn expire(&mut self, second: u64, gap_secs: u32) {
        self.ended.retain(|_, e| second.saturating_sub(e.last_over) <= u64::from(gap_secs));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ended.len()
    }

    /// Heap bytes held (the table and each pulse's vector set, estimated).
    pub(super) fn heap_bytes(&self) -> usize {
        self.ended.capacity() * (size_of::<TargetKey>() + size_of::<Ended>() + 1) + self.ended.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulses_within_the_gap_sharing_a_vector_form_a_campaign() {
        let target = TargetKey::Host(1);
        let udp: BTreeSet<Vector> = [Vector::UdpFlood].into();
        let syn: BTreeSet<Vector> = [Vector::SynFlood].into();
        let mut c = Campaigns::default();
        assert_eq!(c.continues(target, 100, &udp, 600), None);
        c.ended(target, 1, 100, &udp, None, 8);
        let second = c.continues(target, 400, &udp, 600).unwrap();
        assert_eq!((second.first, second.pulse, second.previous), (AttackId(1), 2, AttackId(1)));
        assert_eq!(c.continues(target, 400, &syn, 600), None, "no vector in common");
        assert_eq!(c.continues(target, 701, &udp, 600), None, "beyond the gap");
        assert_eq!(c.continues(TargetKey::Host(2), 400, &udp, 600), None, "another target");
        assert_eq!(c.continues(target, 400, &udp, 0), None, "campaigns off");
        c.ended(target, 2, 410, &udp, Some(second), 8);
        let third = c.continues(target, 500, &udp, 600).unwrap();
        assert_eq!((third.first, third.pulse, third.previous), (AttackId(1), 3, AttackId(2)));
        c.expire(1011, 600);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest() {
        let udp: BTreeSet<Vector> = [Vector::UdpFlood].into();
        let mut c = Campaigns::default();
        for i in 0..100u64 {
            c.ended(TargetKey::Host(u128::from(i)), i, i, &udp, None, 10);
        }
        assert_eq!(c.len(), 10);
        assert!(c.continues(TargetKey::Host(99), 100, &udp, 600).is_some());
        assert!(c.continues(TargetKey::Host(0), 100, &udp, 600).is_none());
    }
}
