//! A signature: the narrowest filter that matches an attack's traffic, with typed match
//! fields every acting layer can turn into its own rule (a FlowSpec NLRI, an XDP map key, an
//! nftables set element) without parsing text.

use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attack::PacketSample;

/// An inclusive range of ports; a single port is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const fn single(port: u16) -> Self {
        PortRange { first: port, last: port }
    }

    pub const fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// TCP flags that must be set (`value`) among those examined (`mask`): `value & mask`
/// compared with `flags & mask`. The exact flags byte is `mask = 0xff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct TcpFlags {
    pub value: u8,
    pub mask: u8,
}

impl TcpFlags {
    pub const fn exact(flags: u8) -> Self {
        TcpFlags { value: flags, mask: 0xff }
    }

    pub const fn matches(self, flags: u8) -> bool {
        flags & self.mask == self.value & self.mask
    }
}

/// Which packets a signature takes by fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FragmentMatch {
    /// Non-initial fragments only (no transport header).
    NonInitial,
    /// Everything but non-initial fragments.
    NotNonInitial,
}

/// An inclusive range of IP total lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LengthRange {
    pub min: u16,
    pub max: u16,
}

impl LengthRange {
    pub const fn contains(self, len: u32) -> bool {
        self.min as u32 <= len && len <= self.max as u32
    }
}

/// Estimated legitimate traffic a signature would also match: the target's learned per-class
/// levels (recent, outside attacks) in the classes the signature matches. Ports other than
/// reflector source ports are not tracked per host, so this is an upper bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Collateral {
    /// The target's normal inbound packets per second.
    pub baseline_pps: f64,
    /// Of which the signature would match at most.
    pub matching_pps: f64,
    /// `matching_pps` as a percentage of `baseline_pps`.
    pub percent: f64,
}

/// The narrowest filter each of whose fields matches at least 99 % of the attack's profiled
/// packets (each field on its own: their conjunction may cover a little less). An empty list
/// or `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signature {
    /// Source prefixes: the protected host sending an outbound attack; empty (any) inbound.
    #[schemars(with = "Vec<String>")]
    pub src_prefixes: Vec<IpNet>,
    /// Destination prefixes: the host (/32, /128), the attacked prefix or the group's
    /// prefixes; for an outbound attack the remote prefix receiving 99 % of it, else empty.
    #[schemars(with = "Vec<String>")]
    pub dst_prefixes: Vec<IpNet>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    pub src_ports: Vec<PortRange>,
    pub dst_ports: Vec<PortRange>,
    pub tcp_flags: Option<TcpFlags>,
    pub fragment: Option<FragmentMatch>,
    /// IP total length range holding at least 99 % of the packets.
    pub packet_len: Option<LengthRange>,
    /// Packets the signature was computed from, scaled by the sampling rate (the traffic it
    /// describes).
    pub sampled_packets: u64,
    /// Packets actually observed behind it, before scaling: under 1:1000 sampling a thousand
    /// times fewer than `sampled_packets`. The evidence, and what `confidence` is graded on.
    #[serde(default)]
    pub samples: u64,
    /// How far the signature can be trusted, from `samples`.
    #[serde(default)]
    pub confidence: Confidence,
    /// How much of the target's normal traffic it would also match, when a baseline is known.
    pub collateral: Option<Collateral>,
}

/// How much evidence backs a signature (or a vector named from sampled telemetry). Each field
/// of a signature covers 99 % of the observed packets; with `n` observed packets, the share of
/// the whole attack it covers is, at 95 % confidence, at least [`Confidence::coverage_bound`]`(n)`
/// (the Wilson score bound): 87.5 % from 32 packets, 94.5 % from 100, 98 % from 1,000.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Fewer than [`Confidence::MIN_SAMPLES`] observed packets: no vector is named from them
    /// and no signature rule is written from them.
    #[default]
    Insufficient,
    /// 32 to 99 packets: each field covers at least 87.5 % of the attack.
    Low,
    /// 100 to 999: at least 94.5 %.
    Medium,
    /// 1,000 or more: at least 98 %.
    High,
}

impl Confidence {
    /// Observed packets below which shares are too noisy to name a vector: among 32 samples a
    /// class carrying a quarter of the traffic shows up as half of them with probability 0.2 %,
    /// and an 80 % port concentration is measured within ±14 % (two standard errors).
    pub const MIN_SAMPLES: u64 = 32;

    pub const fn of(samples: u64) -> Self {
        match samples {
            0..Self::MIN_SAMPLES => Confidence::Insufficient,
            Self::MIN_SAMPLES..100 => Confidence::Low,
            100..1000 => Confidence::Medium,
            _ => Confidence::High,
        }
    }

    /// The share (0–1) of an attack a field covering 99 % of `samples` observed packets
    /// covers at least, at 95 % confidence (Wilson score lower bound); 0 without samples.
    pub fn coverage_bound(samples: u64) -> f64 {
        if samples == 0 {
            return 0.0;
        }
        let (n, p, z2) = (samples as f64, 0.99, 1.96f64 * 1.96);
        let centre = p + z2 / (2.0 * n);
        let spread = (z2 * (p * (1.0 - p) / n + z2 / (4.0 * n * n))).sqrt();
        ((centre - spread) / (1.0 + z2 / n)).max(0.0)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Confidence::Insufficient => "insufficient",
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Signature {
    /// Sets `samples` and the `confidence` graded on them.
    pub fn with_samples(self, samples: u64) -> Self {
        Signature { samples, confidence: Confidence::of(samples), ..self }
    }

    /// Whether the signature restricts anything beyond the destination (a signature of only
    /// prefixes can only blackhole).
    pub fn is_specific(&self) -> bool {
        self.protocol.is_some()
            || !self.src_ports.is_empty()
            || !self.dst_ports.is_empty()
            || self.tcp_flags.is_some()
            || self.fragment.is_some()
            || self.packet_len.is_some()
    }

    /// Whether a packet with these headers matches every field.
    pub fn matches(&self, packet: &PacketSample) -> bool {
        let in_prefixes =
            |prefixes: &[IpNet], ip: IpAddr| prefixes.is_empty() || prefixes.iter().any(|n| n.contains(&ip));
        let in_ports = |ranges: &[PortRange], port: Option<u16>| {
            ranges.is_empty() || port.is_some_and(|p| ranges.iter().any(|r| r.contains(p)))
        };
        in_prefixes(&self.src_prefixes, packet.src)
            && in_prefixes(&self.dst_prefixes, packet.dst)
            && self.protocol.is_none_or(|p| p == packet.protocol)
            && in_ports(&self.src_ports, packet.src_port)
            && in_ports(&self.dst_ports, packet.dst_port)
            && self.tcp_flags.is_none_or(|f| f.matches(packet.tcp_flags))
            && match self.fragment {
                None => true,
                Some(FragmentMatch::NonInitial) => packet.fragment,
                Some(FragmentMatch::NotNonInitial) => !packet.fragment,
            }
            && self.packet_len.is_none_or(|r| packet.length.is_some_and(|l| r.contains(l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::EventTime;

    fn syn(dst: &str, port: u16) -> PacketSample {
        PacketSample {
            time: EventTime::ZERO,
            src: "203.0.113.5".parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: 6,
            src_port: Some(40_000),
            dst_port: Some(port),
            tcp_flags: 0x02,
            ttl: Some(52),
            length: Some(60),
            fragment: false,
            sampling_rate: 1,
        }
    }

    #[test]
    fn matches_field_by_field() {
        let s = Signature {
            dst_prefixes: vec!["198.51.100.10/32".parse().unwrap()],
            protocol: Some(6),
            dst_ports: vec![PortRange::single(80), PortRange { first: 8000, last: 8080 }],
            tcp_flags: Some(TcpFlags { value: 0x02, mask: 0x12 }),
            fragment: Some(FragmentMatch::NotNonInitial),
            packet_len: Some(LengthRange { min: 40, max: 64 }),
            ..Signature::default()
        };
        assert!(s.is_specific());
        assert!(s.matches(&syn("198.51.100.10", 80)));
        assert!(s.matches(&syn("198.51.100.10", 8042)));
        assert!(!s.matches(&syn("198.51.100.11", 80)));
        assert!(!s.matches(&syn("198.51.100.10", 443)));
        assert!(!s.matches(&PacketSample { tcp_flags: 0x12, ..syn("198.51.100.10", 80) }));
        assert!(!s.matches(&PacketSample { length: Some(1500), ..syn("198.51.100.10", 80) }));
        assert!(!s.matches(&PacketSample { fragment: true, ..syn("198.51.100.10", 80) }));
        assert!(Signature::default().matches(&syn("192.0.2.1", 1)));
        assert!(!Signature::default().is_specific());
    }

    #[test]
    fn confidence_follows_the_samples() {
        assert_eq!(Confidence::of(0), Confidence::Insufficient);
        assert_eq!(Confidence::of(31), Confidence::Insufficient);
        assert_eq!(Confidence::of(32), Confidence::Low);
        assert_eq!(Confidence::of(100), Confidence::Medium);
        assert_eq!(Confidence::of(5_000), Confidence::High);
        let bound = |n| (Confidence::coverage_bound(n) * 1000.0).round() / 10.0;
        assert_eq!((bound(0), bound(32), bound(100), bound(1000)), (0.0, 87.6, 94.6, 98.2));
        assert!(Confidence::coverage_bound(u64::MAX) <= 0.99 + 1e-9);
        let s = Signature::default().with_samples(40);
        assert_eq!((s.samples, s.confidence), (40, Confidence::Low));
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["confidence"], "low");
        // Documents written before the field read as no evidence.
        let mut old = v.clone();
        old.as_object_mut().unwrap().retain(|k, _| k != "samples" && k != "confidence");
        assert_eq!(serde_json::from_value::<Signature>(old).unwrap().confidence, Confidence::Insufficient);
    }

    #[test]
    fn json_fields_are_typed() {
        let s = Signature {
            dst_prefixes: vec!["198.51.100.0/28".parse().unwrap(), "198.51.100.64/28".parse().unwrap()],
            src_ports: vec![PortRange::single(53)],
            ..Signature::default()
        };
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["dst_prefixes"], serde_json::json!(["198.51.100.0/28", "198.51.100.64/28"]));
        assert_eq!(v["src_ports"], serde_json::json!([{"first": 53, "last": 53}]));
        assert_eq!(serde_json::from_value::<Signature>(v).unwrap(), s);
    }
}
