//! What the engine reports: attacks and their lifecycle events.

use serde::Serialize;

use crate::class::Vector;
use crate::config::Policy;
use crate::profile::{PacketSample, Share, Signature};

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

/// Whether the target is one host, a prefix aggregate or a host group's aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Host,
    Prefix,
    Group,
}

/// The counter that first crossed its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Counter name (`pps`, `bps`, `new_flows`, `tcp_syn_pps`, ...; aggregates prefix theirs
    /// with `prefix_`, `wide_prefix_`, `network_` or `group_`; `_vs_baseline` when the limit
    /// was learned).
    pub counter: &'static str,
    /// Its value in the first second over threshold.
    pub value: u64,
    pub threshold: u64,
    /// The learned normal rate when the threshold is `factor` times it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Unix second it was first over.
    pub since: u64,
}

/// One attack, as known at the time of the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attack {
    /// Sequential, unique within one engine.
    pub id: u64,
    /// Host address, prefix in CIDR notation, or group name. Outbound attacks target the
    /// protected host sending them.
    pub target: String,
    pub target_kind: TargetKind,
    pub direction: Direction,
    /// Host group of the target, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What mitigation may do (the group's policy, else the default).
    pub policy: Policy,
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
    /// seen after onset; 1 for an outbound attack.
    pub distinct_sources: u64,
    /// Outbound attacks: estimated distinct destinations (the victims).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_destinations: Option<u64>,
    /// Heaviest source prefixes (IPv4 /24, IPv6 /48) of an inbound attack.
    pub top_src_prefixes: Vec<Share<String>>,
    /// Heaviest destination prefixes of an outbound attack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_dst_prefixes: Vec<Share<String>>,
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
    /// Headers of the first profiled packets, when the input carried packets (captures,
    /// sFlow), not flows.
    pub sample_headers: Vec<PacketSample>,
    /// Narrowest filter covering at least 99 % of the attack's profiled traffic.
    pub signature: Signature,
}

/// An attack lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackEvent {
    pub kind: EventKind,
    pub attack: Attack,
}
