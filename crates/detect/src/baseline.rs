//! TEMPORARY STUB: replaced by the baseline branch.
use crate::class::Class;
use serde::Serialize;
use std::marker::PhantomData;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineConfig {
    pub enabled: bool,
    pub factor: f64,
    pub percentile: u8,
    pub slot_secs: u64,
    pub day_weight: f64,
    pub recent_secs: u64,
    pub warmup_secs: u64,
    pub min_slot_secs: u64,
    pub expire_secs: u64,
    pub max_keys: usize,
    pub min_pps: u64,
    pub min_bps: u64,
    pub min_flows: u64,
}
impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig { enabled: true, factor: 3.0, percentile: 95, slot_secs: 3600, day_weight: 0.25, recent_secs: 900, warmup_secs: 3600, min_slot_secs: 600, expire_secs: 14 * 86400, max_keys: 65536, min_pps: 1000, min_bps: 100_000_000, min_flows: 1000 }
    }
}
impl BaselineConfig {
    pub fn validate(&self) -> Result<(), String> { Ok(()) }
}
#[derive(Debug, Clone, Default)]
pub struct Sample { pub pps: u64, pub bps: u64, pub flows: u64, pub classes: [u64; Class::COUNT], pub amplification: u64 }
#[derive(Debug, Clone, Default)]
pub struct Baseline { pub pps: f64, pub bps: f64, pub flows: f64, pub seasonal_pps: f64, pub recent_pps: f64, pub classes: [f64; Class::COUNT], pub amplification: f64, pub learned_secs: u64 }
#[derive(Debug, Clone, Default)]
pub struct BaselineStats { pub keys: usize, pub untracked: u64, pub evicted: u64 }
#[derive(Debug)]
pub struct BaselineError;
#[derive(Debug)]
pub struct BaselineTable<K> { _k: PhantomData<K> }
impl<K> BaselineTable<K> {
    pub fn new(_config: BaselineConfig) -> Self { BaselineTable { _k: PhantomData } }
    pub fn learn(&mut self, _key: K, _second: u64, _sample: &Sample) {}
    pub fn baseline(&self, _key: K, _second: u64) -> Option<Baseline> { None }
    pub fn maintain(&mut self, _second: u64) {}
    pub fn len(&self) -> usize { 0 }
    pub fn is_empty(&self) -> bool { true }
    pub fn stats(&self) -> BaselineStats { BaselineStats::default() }
    pub fn snapshot(&self) -> Vec<u8> { Vec::new() }
    pub fn restore(config: BaselineConfig, _bytes: &[u8]) -> Result<Self, BaselineError> { Ok(Self::new(config)) }
}
