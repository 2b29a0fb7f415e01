//! Why an attack was declared: which counter crossed which limit, and the threat level then.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::EventTime;

/// The aggregation level a counter was evaluated at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Level {
    /// One protected host.
    Host,
    /// A /24 or /64 of hosts each under their own thresholds.
    Prefix,
    /// An IPv6 wide prefix (/48) of prefixes each under their own thresholds.
    WidePrefix,
    /// A whole protected network.
    Network,
    /// A host group's aggregate.
    Group,
}

impl Level {
    pub const fn name(self) -> &'static str {
        match self {
            Level::Host => "host",
            Level::Prefix => "prefix",
            Level::WidePrefix => "wide_prefix",
            Level::Network => "network",
            Level::Group => "group",
        }
    }
}

/// A per-second counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Metric {
    /// Packets per second (after the ACK exemption).
    Pps,
    /// IP-layer bits per second.
    Bps,
    /// New flows per second.
    NewFlows,
    TcpPps,
    TcpSynPps,
    TcpAckPps,
    TcpRstPps,
    UdpPps,
    IcmpPps,
    FragmentPps,
    /// UDP packets from known reflector source ports.
    AmplificationPps,
}

impl Metric {
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Pps => "pps",
            Metric::Bps => "bps",
            Metric::NewFlows => "new_flows",
            Metric::TcpPps => "tcp_pps",
            Metric::TcpSynPps => "tcp_syn_pps",
            Metric::TcpAckPps => "tcp_ack_pps",
            Metric::TcpRstPps => "tcp_rst_pps",
            Metric::UdpPps => "udp_pps",
            Metric::IcmpPps => "icmp_pps",
            Metric::FragmentPps => "fragment_pps",
            Metric::AmplificationPps => "amplification_pps",
        }
    }
}

/// How likely an attack is right now; a raised level scales every threshold down.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ThreatLevel {
    #[default]
    Normal,
    Elevated,
    High,
}

impl ThreatLevel {
    pub const fn name(self) -> &'static str {
        match self {
            ThreatLevel::Normal => "normal",
            ThreatLevel::Elevated => "elevated",
            ThreatLevel::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ThreatLevel::Normal, ThreatLevel::Elevated, ThreatLevel::High].into_iter().find(|l| l.name() == text)
    }
}

impl fmt::Display for ThreatLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The raised threat level a trigger was evaluated under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ThreatContext {
    pub level: ThreatLevel,
    /// The scheduled window's reason ("vote on sanctions"), if a window set the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Thresholds were at this percentage of their configured values.
    pub percent: u8,
}

/// The counter that first crossed its limit, in the first second over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trigger {
    pub level: Level,
    pub metric: Metric,
    /// Its value in the first second over the limit.
    pub value: u64,
    /// The limit it crossed (static, or `factor` times the learned normal).
    pub threshold: u64,
    /// The learned normal rate, when the limit was learned rather than configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Start of the first second over the limit.
    pub since: EventTime,
    /// Consecutive seconds over a limit that make an attack.
    pub sustained_secs: u32,
    /// Set when a raised threat level scaled the limits down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat: Option<ThreatContext>,
}

impl Trigger {
    /// A static-threshold trigger held for one second, at the normal threat level.
    pub fn new(level: Level, metric: Metric, value: u64, threshold: u64, since: EventTime) -> Self {
        Trigger { level, metric, value, threshold, baseline: None, since, sustained_secs: 1, threat: None }
    }

    /// The counter's name as operators know it: `pps`, `prefix_pps`, `group_new_flows`,
    /// `bps_vs_baseline`.
    pub fn counter_name(&self) -> String {
        let level = match self.level {
            Level::Host => "",
            Level::Prefix => "prefix_",
            Level::WidePrefix => "wide_prefix_",
            Level::Network => "network_",
            Level::Group => "group_",
        };
        let learned = if self.baseline.is_some() { "_vs_baseline" } else { "" };
        format!("{level}{}{learned}", self.metric.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names() {
        let mut t = Trigger {
            level: Level::Host,
            metric: Metric::TcpSynPps,
            value: 2,
            threshold: 1,
            baseline: None,
            since: EventTime::ZERO,
            sustained_secs: 1,
            threat: None,
        };
        assert_eq!(t.counter_name(), "tcp_syn_pps");
        t.level = Level::WidePrefix;
        t.metric = Metric::Pps;
        assert_eq!(t.counter_name(), "wide_prefix_pps");
        t.level = Level::Group;
        t.baseline = Some(10.0);
        assert_eq!(t.counter_name(), "group_pps_vs_baseline");
    }

    #[test]
    fn threat_levels_parse_back() {
        for l in [ThreatLevel::Normal, ThreatLevel::Elevated, ThreatLevel::High] {
            assert_eq!(ThreatLevel::parse(l.name()), Some(l));
        }
        assert_eq!(ThreatLevel::parse("severe"), None);
    }
}
