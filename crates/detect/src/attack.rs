//! What the engine reports: attacks and their lifecycle events.

use serde::Serialize;

use crate::class::Vector;
use crate::profile::{Share, Signature};

/// Lifecycle step of an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A threshold held `onset_secs` consecutive seconds.
    Onset,
    /// Ongoing: a vector was added or the peak rose by 10 % or more.
    Update,
    /// `quiet_secs` seconds under every threshold (or the end of the input).
    End,
}

/// Traffic direction relative to the protected networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Whether the target is one host or a prefix aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Host,
    Prefix,
}

/// The counter that first crossed its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Counter name (`pps`, `bps`, `tcp_syn_pps`, ..., `prefix_pps`, `prefix_bps`).
    pub counter: &'static str,
    /// Its value in the first second over threshold.
    pub value: u64,
    pub threshold: u64,
    /// Unix second it was first over.
    pub since: u64,
}

/// One attack, as known at the time of the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attack {
    /// Sequential, unique within one engine.
    pub id: u64,
    /// Host address, or prefix in CIDR notation.
    pub target: String,
    pub target_kind: TargetKind,
    pub direction: Direction,
    /// Sorted, no duplicates.
    pub vectors: Vec<Vector>,
    /// First packet of the first second over threshold, Unix seconds.
    pub start: f64,
    /// Last packet of the last second over threshold so far, Unix seconds.
    pub end: f64,
    /// Packets per second in the latest second over threshold.
    pub current_pps: u64,
    pub current_bps: u64,
    pub peak_pps: u64,
    pub peak_bps: u64,
    /// All inbound packets and IP bytes to the target from `start` to `end` (sampling-scaled).
    pub packets: u64,
    pub bytes: u64,
    /// Human explanation: counter, value, threshold, since when.
    pub explanation: String,
    pub trigger: Trigger,
    /// Estimated distinct source addresses (HyperLogLog, about 6.5 % error), from the packets
    /// seen after onset.
    pub distinct_sources: u64,
    /// Heaviest source ports, destination ports and IP protocols after onset.
    pub top_src_ports: Vec<Share<u16>>,
    pub top_dst_ports: Vec<Share<u16>>,
    pub protocols: Vec<Share<u8>>,
    /// TCP flag combinations of the attack's TCP packets (flags byte), heaviest first.
    pub tcp_flags: Vec<Share<u8>>,
    /// Most frequent TTL / hop-limit values, heaviest first.
    pub ttls: Vec<Share<u8>>,
    /// Packet lengths (IP total length) in 16-byte buckets, `value` = the bucket's first length.
    pub packet_lengths: Vec<Share<u32>>,
    /// Narrowest filter covering at least 99 % of the attack's profiled traffic.
    pub signature: Signature,
}

/// An attack lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackEvent {
    pub kind: EventKind,
    pub attack: Attack,
}
