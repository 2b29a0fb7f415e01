//! Attacks and their lifecycle events.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::signature::Signature;
use crate::target::{Direction, Policy, Target};
use crate::time::EventTime;
use crate::trigger::Trigger;
use crate::vector::Vector;

/// An attack's id: sequential within one engine; the store renumbers attacks with ids unique
/// across restarts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct AttackId(pub u64);

impl fmt::Display for AttackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Lifecycle step of an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A limit held for the trigger's `sustained_secs` consecutive seconds.
    Onset,
    /// Ongoing: a vector was added or the peak rose by 10 % or more.
    Update,
    /// Quiet for long enough (or the end of the input).
    End,
}

impl EventKind {
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Onset => "onset",
            EventKind::Update => "update",
            EventKind::End => "end",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key and its share of the attack's profiled packets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Share<K> {
    pub value: K,
    pub packets: u64,
    pub percent: f64,
}

/// The decoded headers of one attack packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PacketSample {
    pub time: EventTime,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// TCP flags byte (0 when not TCP).
    pub tcp_flags: u8,
    pub ttl: Option<u8>,
    /// IP total length.
    pub length: Option<u32>,
    /// Non-initial fragment.
    pub fragment: bool,
    /// 1 in N sampling of the source.
    pub sampling_rate: u32,
}

impl fmt::Display for PacketSample {
    /// `203.0.113.5:1234 > 198.51.100.7:80 proto 6 flags 0x02 ttl 52 len 60`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |ip: IpAddr, port: Option<u16>| match (ip, port) {
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        write!(
            f,
            "{} > {} proto {}",
            end(self.src, self.src_port),
            end(self.dst, self.dst_port),
            self.protocol
        )?;
        if self.protocol == 6 {
            write!(f, " flags {:#04x}", self.tcp_flags)?;
        }
        if let Some(ttl) = self.ttl {
            write!(f, " ttl {ttl}")?;
        }
        if let Some(len) = self.length {
            write!(f, " len {len}")?;
        }
        if self.fragment {
            f.write_str(" fragment")?;
        }
        Ok(())
    }
}

/// One attack, as known at the time of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attack {
    pub id: AttackId,
    pub target: Target,
    pub direction: Direction,
    /// Host group of the target, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What mitigation may do (the group's policy, else the default).
    pub policy: Policy,
    /// Sorted, no duplicates.
    pub vectors: Vec<Vector>,
    /// First packet of the first second over a limit.
    pub start: EventTime,
    /// Last packet of the last second over a limit so far.
    pub end: EventTime,
    /// Rates in the latest second over a limit.
    pub current_pps: u64,
    pub current_bps: u64,
    pub peak_pps: u64,
    pub peak_bps: u64,
    /// All packets and IP bytes to (outbound: from) the target from `start` to `end`,
    /// sampling-scaled.
    pub packets: u64,
    pub bytes: u64,
    pub trigger: Trigger,
    /// Estimated distinct source addresses (HyperLogLog, about 6.5 % error); 1 for an
    /// outbound attack.
    pub distinct_sources: u64,
    /// Outbound attacks: estimated distinct destinations (the victims).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_destinations: Option<u64>,
    /// Heaviest source prefixes (IPv4 /24, IPv6 /48) of an inbound attack.
    #[schemars(with = "Vec<Share<String>>")]
    pub top_src_prefixes: Vec<Share<IpNet>>,
    /// Heaviest destination prefixes of an outbound attack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<Share<String>>")]
    pub top_dst_prefixes: Vec<Share<IpNet>>,
    pub top_src_ports: Vec<Share<u16>>,
    pub top_dst_ports: Vec<Share<u16>>,
    /// IP protocols, heaviest first.
    pub protocols: Vec<Share<u8>>,
    /// TCP flag combinations (flags byte), heaviest first.
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
    /// Each of `vectors` with the share of the profiled packets it accounts for and a
    /// signature of its own (99 % of that vector's packets), so a multi-vector attack can be
    /// filtered one precise rule per vector. Shares need not add up to 100 %: traffic no vector
    /// names (background, fragments of reflected answers) is in none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vector_shares: Vec<VectorShare>,
    /// Pulse waves: set when this attack followed an earlier one on the same target, with a
    /// vector in common, within the campaign gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
}

/// One vector of an attack: how much of it, and the filter for that part alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VectorShare {
    pub vector: Vector,
    /// Profiled packets of this vector.
    pub packets: u64,
    /// Its percentage of the attack's profiled packets.
    pub percent: f64,
    /// Narrowest filter covering at least 99 % of this vector's profiled packets.
    pub signature: Signature,
}

/// An attack's place in a campaign of pulses on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Campaign {
    /// The campaign's first attack.
    pub first: AttackId,
    /// This attack's pulse number: 2 for the one after the first.
    pub pulse: u32,
    /// The previous pulse.
    pub previous: AttackId,
}

impl Attack {
    /// An attack with the given identity and trigger, no traffic counted yet and an empty
    /// fingerprint and signature; the engine fills the rest.
    pub fn new(id: AttackId, target: Target, direction: Direction, trigger: Trigger) -> Self {
        Attack {
            id,
            target,
            direction,
            group: None,
            policy: Policy::default(),
            vectors: Vec::new(),
            start: trigger.since,
            end: trigger.since,
            current_pps: 0,
            current_bps: 0,
            peak_pps: 0,
            peak_bps: 0,
            packets: 0,
            bytes: 0,
            trigger,
            distinct_sources: 0,
            distinct_destinations: None,
            top_src_prefixes: Vec::new(),
            top_dst_prefixes: Vec::new(),
            top_src_ports: Vec::new(),
            top_dst_ports: Vec::new(),
            protocols: Vec::new(),
            tcp_flags: Vec::new(),
            ttls: Vec::new(),
            packet_lengths: Vec::new(),
            sample_headers: Vec::new(),
            signature: Signature::default(),
            vector_shares: Vec::new(),
            campaign: None,
        }
    }

    /// How long it has lasted so far, in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.end.secs_since(self.start).max(0.0)
    }
}

/// An attack lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttackEvent {
    pub kind: EventKind,
    pub attack: Attack,
}
