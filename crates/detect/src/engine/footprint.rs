//! What the engine holds right now, in entries and in allocated capacity. Every table is
//! bounded by a limit of the configuration; this lets operators and soak tests check that,
//! under churn, each table sits at or under its cap instead of growing.

use std::mem::size_of;

use serde::Serialize;

use super::counters::HostSecond;
use super::keys::TargetKey;
use super::{AttackProfile, Engine, Tracked};

/// The engine's state, counted (see [`Engine::footprint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Targets tracked now, candidates and attacks (at most `limits.max_attacks`).
    pub targets: usize,
    /// Attacks reported and not yet ended.
    pub active_attacks: usize,
    /// Profile slots allocated, free or in use (at most `limits.max_attacks`: slots are reused).
    pub profile_slots: usize,
    /// Seconds open (at most 120) and cleared ones kept for reuse (at most 4).
    pub open_seconds: usize,
    pub pooled_seconds: usize,
    /// Host entries allocated over open and pooled seconds (each second at most
    /// `limits.max_hosts` in use).
    pub host_capacity: usize,
    /// Overflow prefix entries allocated over open and pooled seconds (each second at most
    /// `limits.max_prefixes` in use).
    pub overflow_capacity: usize,
    /// Keys with a learned baseline (at most `baseline.max_keys`) and rows allocated.
    pub baseline_keys: usize,
    pub baseline_capacity: usize,
    /// Approximate heap bytes of all of the above plus the new-flow table, from allocated
    /// capacities (hash tables counted at one control byte per entry; allocator overhead and
    /// the small per-attack vector sets are not included).
    pub bytes: usize,
}

impl Engine {
    /// Counts the engine's state: O(open seconds + profile slots), no allocation.
    pub fn footprint(&self) -> Footprint {
        let seconds = || self.buckets.iter().chain(self.pool.iter());
        let host_capacity: usize = seconds().map(|b| b.hosts.capacity()).sum();
        let index_capacity: usize = seconds().map(|b| b.index.capacity()).sum();
        let overflow_capacity: usize = seconds().map(|b| b.overflow.capacity()).sum();
        let live_profiles = self.profiles.iter().filter(|p| p.is_some()).count();
        let entry = |key: usize, value: usize| key + value + 1;
        let bytes = self.targets.capacity() * entry(size_of::<TargetKey>(), size_of::<Tracked>())
            + self.profiles.capacity() * size_of::<Option<Box<AttackProfile>>>()
            + live_profiles * size_of::<AttackProfile>()
            + host_capacity * size_of::<HostSecond>()
            + index_capacity * entry(size_of::<u128>(), size_of::<u32>())
            + overflow_capacity * entry(size_of::<u128>(), size_of::<HostSecond>())
            + self.campaigns.heap_bytes()
            + self.baselines.heap_bytes()
            + self.flows.bytes();
        Footprint {
            targets: self.targets.len(),
            active_attacks: self.targets.values().filter(|t| t.attack.is_some()).count(),
            profile_slots: self.profiles.len(),
            open_seconds: self.buckets.len(),
            pooled_seconds: self.pool.len(),
            host_capacity,
            overflow_capacity,
            baseline_keys: self.baselines.len(),
            baseline_capacity: self.baselines.capacity(),
            bytes,
        }
    }
}
