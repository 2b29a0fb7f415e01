//! Detection configuration: protected networks, host groups, thresholds, aggregation and
//! lifecycle, read from TOML (see `config/rampart.example.toml`).

mod document;

pub use document::{Document, Location, line_col};

use crate::baseline::BaselineConfig;
use crate::threat::{ThreatConfig, ThreatLevel, ThreatWindow, parse_utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why a configuration was rejected. Every message starts with `FILE:LINE:COLUMN:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// File name as given by the caller.
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The TOML parsed but a value is unusable (zero threshold, prefix outside the protected
    /// networks, duplicate group...).
    #[error("{file}:{line}:{column}: `{key}`: {message}")]
    Invalid {
        /// File name as given by the caller.
        file: String,
        /// 1-based line of the value (or, for a value that is missing, of its table).
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// Dotted key path, e.g. `group.2.thresholds.pps`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Rate thresholds for one host (or, with only `pps`/`bps` meaningful, one prefix aggregate).
/// A value of `u64::MAX` disables that counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// All inbound packets per second.
    pub pps: u64,
    /// All inbound IP bits per second.
    pub bps: u64,
    /// TCP packets (any flags) per second.
    pub tcp_pps: u64,
    /// TCP SYN without ACK.
    pub tcp_syn_pps: u64,
    /// TCP ACK without SYN/RST/FIN (ACKs answering the host's own outbound TCP are exempt).
    pub tcp_ack_pps: u64,
    /// TCP with RST.
    pub tcp_rst_pps: u64,
    /// UDP (non-fragment).
    pub udp_pps: u64,
    /// ICMP and ICMPv6.
    pub icmp_pps: u64,
    /// Non-initial IP fragments.
    pub fragment_pps: u64,
    /// UDP from a known reflector source port (see [`crate::class::AMPLIFICATION_PORTS`]).
    pub amplification_pps: u64,
    /// New flows per second (TCP: SYNs; other protocols: 5-tuples not seen in the last minute).
    pub new_flows: u64,
}

impl Thresholds {
    /// Per-host defaults: high enough that a busy server's normal day stays under them, low
    /// enough that a flood that hurts a 1 Gbit/s uplink crosses one.
    pub const HOST_DEFAULT: Thresholds = Thresholds {
        pps: 20_000,
        bps: 1_000_000_000,
        tcp_pps: 20_000,
        tcp_syn_pps: 10_000,
        tcp_ack_pps: 10_000,
        tcp_rst_pps: 10_000,
        udp_pps: 10_000,
        icmp_pps: 5_000,
        fragment_pps: 5_000,
        amplification_pps: 5_000,
        new_flows: 20_000,
    };

    /// Per-prefix defaults (`pps`, `bps` and `new_flows` only are used for aggregates).
    pub const PREFIX_DEFAULT: Thresholds =
        Thresholds { pps: 30_000, bps: 3_000_000_000, new_flows: 30_000, ..Thresholds::HOST_DEFAULT };

    /// IPv6 wide-prefix (/48) defaults.
    pub const WIDE_DEFAULT: Thresholds =
        Thresholds { pps: 100_000, bps: 10_000_000_000, new_flows: 100_000, ..Thresholds::HOST_DEFAULT };

    /// Whole protected network defaults.
    pub const NETWORK_DEFAULT: Thresholds =
        Thresholds { pps: 300_000, bps: 30_000_000_000, new_flows: 300_000, ..Thresholds::HOST_DEFAULT };

    /// Per-host outbound defaults: a protected host flooding, or abused as a reflector. TCP
    /// data and ACKs of established connections are normal outbound traffic, so only SYN,
    /// RST, UDP, ICMP, fragments and reflector-port replies have tight limits.
    pub const OUTBOUND_DEFAULT: Thresholds = Thresholds {
        pps: 100_000,
        bps: 10_000_000_000,
        tcp_pps: DISABLED,
        tcp_syn_pps: 5_000,
        tcp_ack_pps: DISABLED,
        tcp_rst_pps: 50_000,
        udp_pps: 20_000,
        icmp_pps: 10_000,
        fragment_pps: 5_000,
        amplification_pps: 2_000,
        new_flows: 20_000,
    };
}

/// A threshold that never triggers.
pub const DISABLED: u64 = u64::MAX;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::HOST_DEFAULT
    }
}

/// Thresholds as written in TOML: every field optional, missing ones inherit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsToml {
    pub pps: Option<u64>,
    pub mbps: Option<u64>,
    pub tcp_pps: Option<u64>,
    pub tcp_syn_pps: Option<u64>,
    pub tcp_ack_pps: Option<u64>,
    pub tcp_rst_pps: Option<u64>,
    pub udp_pps: Option<u64>,
    pub icmp_pps: Option<u64>,
    pub fragment_pps: Option<u64>,
    pub amplification_pps: Option<u64>,
    pub new_flows: Option<u64>,
}

impl ThresholdsToml {
    /// `self` laid over `base`.
    pub fn over(&self, base: Thresholds) -> Thresholds {
        Thresholds {
            pps: self.pps.unwrap_or(base.pps),
            bps: self.mbps.map_or(base.bps, |m| m.saturating_mul(1_000_000)),
            tcp_pps: self.tcp_pps.unwrap_or(base.tcp_pps),
            tcp_syn_pps: self.tcp_syn_pps.unwrap_or(base.tcp_syn_pps),
            tcp_ack_pps: self.tcp_ack_pps.unwrap_or(base.tcp_ack_pps),
            tcp_rst_pps: self.tcp_rst_pps.unwrap_or(base.tcp_rst_pps),
            udp_pps: self.udp_pps.unwrap_or(base.udp_pps),
            icmp_pps: self.icmp_pps.unwrap_or(base.icmp_pps),
            fragment_pps: self.fragment_pps.unwrap_or(base.fragment_pps),
            amplification_pps: self.amplification_pps.unwrap_or(base.amplification_pps),
            new_flows: self.new_flows.unwrap_or(base.new_flows),
        }
    }

    fn named(&self) -> [(&'static str, Option<u64>); 11] {
        [
            ("pps", self.pps),
            ("mbps", self.mbps),
            ("tcp_pps", self.tcp_pps),
            ("tcp_syn_pps", self.tcp_syn_pps),
            ("tcp_ack_pps", self.tcp_ack_pps),
            ("tcp_rst_pps", self.tcp_rst_pps),
            ("udp_pps", self.udp_pps),
            ("icmp_pps", self.icmp_pps),
            ("fragment_pps", self.fragment_pps),
            ("amplification_pps", self.amplification_pps),
            ("new_flows", self.new_flows),
        ]
    }
}

pub use rampart_contract::Policy;

/// A named set of hosts with their own thresholds (e.g. DNS servers that legitimately receive
/// much UDP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostGroup {
    pub name: String,
    pub prefixes: Vec<IpNet>,
    /// Default host thresholds overlaid with the group's own.
    pub thresholds: Thresholds,
    /// Default outbound thresholds overlaid with the group's own.
    pub outbound: Thresholds,
    /// Thresholds on the group's total inbound traffic (hosts under their own thresholds),
    /// when set.
    pub aggregate: Option<Thresholds>,
    pub policy: Policy,
    /// "Alert at N times normal" for the group's hosts and the group itself; `None`: the
    /// `[baseline]` factor.
    pub baseline_factor: Option<f64>,
}

/// Prefix aggregation (carpet-bombing detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Aggregation {
    /// IPv4 aggregate length (default 24).
    pub ipv4_prefix_len: u8,
    /// IPv6 aggregate length (default 64).
    pub ipv6_prefix_len: u8,
    /// Aggregate thresholds (`pps`, `bps`, `new_flows`), on traffic to hosts under their own
    /// thresholds.
    pub thresholds: Thresholds,
    /// Second IPv6 level: the /64 aggregates (under their thresholds) of each /48; 0 = off.
    pub ipv6_wide_prefix_len: u8,
    pub wide_thresholds: Thresholds,
    /// Each protected network as a whole (the aggregates under their thresholds).
    pub network_thresholds: Thresholds,
}

/// Attack lifecycle timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// A threshold must hold this many consecutive seconds before an onset (default 1).
    pub onset_secs: u32,
    /// An attack ends after this many seconds with every threshold held (default 10), so pulse
    /// waves with shorter gaps stay one attack.
    pub quiet_secs: u32,
    /// An attack starting at most this many seconds after an attack on the same target ended,
    /// with a vector in common, is the next pulse of its campaign (default 600; 0 = never).
    pub campaign_gap_secs: u32,
}

/// Memory bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Hosts tracked per second; traffic to further hosts only feeds their prefix aggregate.
    pub max_hosts: usize,
    /// Prefix aggregates per second; further prefixes are not evaluated (counted in stats).
    pub max_prefixes: usize,
    /// Concurrent attacks (and threshold candidates) tracked.
    pub max_attacks: usize,
    /// Entries of the new-flow table (8 bytes each; a power of two). Flows beyond it evict
    /// others, which then count as new again.
    pub flow_table: usize,
}

/// The whole detection configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectConfig {
    /// Networks defended. Empty: every destination is a candidate target (inbound).
    pub protected: Vec<IpNet>,
    pub groups: Vec<HostGroup>,
    /// Per-host thresholds for hosts outside every group.
    pub thresholds: Thresholds,
    /// Per-host outbound thresholds for hosts outside every group.
    pub outbound: Thresholds,
    /// Policy of hosts outside every group and of prefix aggregates.
    pub policy: Policy,
    pub aggregation: Aggregation,
    pub lifecycle: Lifecycle,
    pub limits: Limits,
    /// Threat level: scales every threshold down while attacks are likely.
    pub threat: ThreatConfig,
    /// Learned baselines ("N times normal").
    pub baseline: BaselineConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            protected: Vec::new(),
            groups: Vec::new(),
            thresholds: Thresholds::HOST_DEFAULT,
            outbound: Thresholds::OUTBOUND_DEFAULT,
            policy: Policy::Mitigate,
            aggregation: Aggregation {
                ipv4_prefix_len: 24,
                ipv6_prefix_len: 64,
                thresholds: Thresholds::PREFIX_DEFAULT,
                ipv6_wide_prefix_len: 48,
                wide_thresholds: Thresholds::WIDE_DEFAULT,
                network_thresholds: Thresholds::NETWORK_DEFAULT,
            },
            lifecycle: Lifecycle { onset_secs: 1, quiet_secs: 10, campaign_gap_secs: 600 },
            limits: Limits {
                max_hosts: 262_144,
                max_prefixes: 65_536,
                max_attacks: 4_096,
                flow_table: 1 << 16,
            },
            threat: ThreatConfig::default(),
            baseline: BaselineConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    thresholds: ThresholdsToml,
    #[serde(default)]
    outbound: ThresholdsToml,
    policy: Option<String>,
    #[serde(default)]
    aggregation: AggregationToml,
    #[serde(default)]
    lifecycle: LifecycleToml,
    #[serde(default)]
    limits: LimitsToml,
    #[serde(default)]
    group: Vec<GroupToml>,
    #[serde(default)]
    threat: ThreatToml,
    #[serde(default)]
    baseline: BaselineToml,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineToml {
    enabled: Option<bool>,
    factor: Option<f64>,
    percentile: Option<u8>,
    slot_secs: Option<u64>,
    day_weight: Option<f64>,
    recent_secs: Option<u64>,
    warmup_secs: Option<u64>,
    min_slot_secs: Option<u64>,
    expire_secs: Option<u64>,
    max_keys: Option<usize>,
    min_pps: Option<u64>,
    min_mbps: Option<u64>,
    min_new_flows: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreatToml {
    level: Option<String>,
    elevated_percent: Option<u8>,
    high_percent: Option<u8>,
    #[serde(default)]
    window: Vec<ThreatWindowToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreatWindowToml {
    level: String,
    from: String,
    until: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregationToml {
    ipv4_prefix_len: Option<u8>,
    ipv6_prefix_len: Option<u8>,
    pps: Option<u64>,
    mbps: Option<u64>,
    new_flows: Option<u64>,
    ipv6_wide_prefix_len: Option<u8>,
    wide_pps: Option<u64>,
    wide_mbps: Option<u64>,
    wide_new_flows: Option<u64>,
    network_pps: Option<u64>,
    network_mbps: Option<u64>,
    network_new_flows: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleToml {
    onset_secs: Option<u32>,
    quiet_secs: Option<u32>,
    campaign_gap_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsToml {
    max_hosts: Option<usize>,
    max_prefixes: Option<usize>,
    max_attacks: Option<usize>,
    flow_table: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    name: String,
    prefixes: Vec<String>,
    #[serde(default)]
    thresholds: ThresholdsToml,
    #[serde(default)]
    outbound: ThresholdsToml,
    aggregate: Option<ThresholdsToml>,
    policy: Option<String>,
    baseline_factor: Option<f64>,
}

/// Checks that `net` is within one of `protected` (always true when nothing is protected).
pub(crate) fn within(protected: &[IpNet], net: &IpNet) -> bool {
    protected.is_empty() || protected.iter().any(|p| p.contains(net))
}

/// The `[baseline]` section over the defaults.
fn baseline_section(
    raw: &BaselineToml,
    invalid: &impl Fn(String, String) -> ConfigError,
) -> Result<BaselineConfig, ConfigError> {
    let mut b = BaselineConfig::default();
    b.enabled = raw.enabled.unwrap_or(b.enabled);
    b.factor = raw.factor.unwrap_or(b.factor);
    b.percentile = raw.percentile.unwrap_or(b.percentile);
    b.slot_secs = raw.slot_secs.unwrap_or(b.slot_secs);
    b.day_weight = raw.day_weight.unwrap_or(b.day_weight);
    b.recent_secs = raw.recent_secs.unwrap_or(b.recent_secs);
    b.warmup_secs = raw.warmup_secs.unwrap_or(b.warmup_secs);
    b.min_slot_secs = raw.min_slot_secs.unwrap_or(b.min_slot_secs);
    b.expire_secs = raw.expire_secs.unwrap_or(b.expire_secs);
    b.max_keys = raw.max_keys.unwrap_or(b.max_keys);
    b.min_pps = raw.min_pps.unwrap_or(b.min_pps);
    b.min_bps = raw.min_mbps.map_or(b.min_bps, |m| m.saturating_mul(1_000_000));
    b.min_flows = raw.min_new_flows.unwrap_or(b.min_flows);
    b.validate().map_err(|message| {
        // The validator names the field first ("factor: must be ...").
        let (field, what) = message.split_once(':').unwrap_or(("", message.as_str()));
        let field = if field == "min_bps" { "min_mbps" } else { field.trim() };
        invalid(format!("baseline.{field}"), what.trim().to_owned())
    })?;
    Ok(b)
}

impl DetectConfig {
    /// Parses and validates a TOML configuration; `file_name` only labels error messages.
    pub fn from_toml_str(text: &str, file_name: &str) -> Result<Self, ConfigError> {
        Self::from_document(&Document::parse(text, file_name)?)
    }

    /// Validates the detection settings of a parsed document (see [`Document::without_tables`]
    /// for a file shared with other components).
    pub fn from_document(doc: &Document<'_>) -> Result<Self, ConfigError> {
        let raw: ConfigToml = doc.deserialize()?;
        let invalid = |key: String, message: String| doc.invalid(&key, message);
        let parse_net = |key: String, s: &str| -> Result<IpNet, ConfigError> {
            let net: IpNet = s
                .parse()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(key.clone(), format!("`{s}` is not an IP prefix")))?;
            if net.trunc() != net {
                return Err(invalid(key, format!("`{s}` has host bits set (did you mean {}?)", net.trunc())));
            }
            Ok(net)
        };
        let check_thresholds = |path: &str, t: &ThresholdsToml| -> Result<(), ConfigError> {
            for (name, value) in t.named() {
                if value == Some(0) {
                    return Err(invalid(
                        format!("{path}.{name}"),
                        "must be at least 1 (a zero threshold would flag every packet)".into(),
                    ));
                }
            }
            Ok(())
        };

        let mut config = DetectConfig::default();
        for (i, s) in raw.protected.iter().enumerate() {
            config.protected.push(parse_net(format!("protected.{i}"), s)?);
        }
        check_thresholds("thresholds", &raw.thresholds)?;
        config.thresholds = raw.thresholds.over(Thresholds::HOST_DEFAULT);
        check_thresholds("outbound", &raw.outbound)?;
        config.outbound = raw.outbound.over(Thresholds::OUTBOUND_DEFAULT);
        let policy = |key: String, text: &str| {
            Policy::parse(text)
                .ok_or_else(|| invalid(key, format!("`{text}` is not a policy (mitigate, alert or ignore)")))
        };
        if let Some(text) = &raw.policy {
            config.policy = policy("policy".into(), text)?;
        }

        let agg = &raw.aggregation;
        let levels = [
            ("", (agg.pps, agg.mbps, agg.new_flows), Thresholds::PREFIX_DEFAULT),
            ("wide_", (agg.wide_pps, agg.wide_mbps, agg.wide_new_flows), Thresholds::WIDE_DEFAULT),
            (
                "network_",
                (agg.network_pps, agg.network_mbps, agg.network_new_flows),
                Thresholds::NETWORK_DEFAULT,
            ),
        ];
        let mut level_thresholds = Vec::with_capacity(levels.len());
        for (prefix, (pps, mbps, new_flows), default) in levels {
            for (name, value) in [("pps", pps), ("mbps", mbps), ("new_flows", new_flows)] {
                if value == Some(0) {
                    let key = format!("{prefix}{name}");
                    return Err(invalid(
                        format!("aggregation.{key}"),
                        "must be at least 1 (a zero threshold would flag every packet)".into(),
                    ));
                }
            }
            level_thresholds
                .push(ThresholdsToml { pps, mbps, new_flows, ..ThresholdsToml::default() }.over(default));
        }
        if let [prefix, wide, network] = level_thresholds[..] {
            config.aggregation.thresholds = prefix;
            config.aggregation.wide_thresholds = wide;
            config.aggregation.network_thresholds = network;
        }
        if let Some(len) = agg.ipv4_prefix_len {
            if !(8..=32).contains(&len) {
                return Err(invalid(
                    "aggregation.ipv4_prefix_len".into(),
                    format!("{len} is not within 8..=32"),
                ));
            }
            config.aggregation.ipv4_prefix_len = len;
        }
        if let Some(len) = agg.ipv6_prefix_len {
            if !(16..=128).contains(&len) {
                return Err(invalid(
                    "aggregation.ipv6_prefix_len".into(),
                    format!("{len} is not within 16..=128"),
                ));
            }
            config.aggregation.ipv6_prefix_len = len;
        }
        if let Some(len) = agg.ipv6_wide_prefix_len {
            if len != 0 && !(16..config.aggregation.ipv6_prefix_len).contains(&len) {
                return Err(invalid(
                    "aggregation.ipv6_wide_prefix_len".into(),
                    format!(
                        "{len} must be 0 (off) or within 16..{} (shorter than ipv6_prefix_len)",
                        config.aggregation.ipv6_prefix_len
                    ),
                ));
            }
            config.aggregation.ipv6_wide_prefix_len = len;
        } else if config.aggregation.ipv6_wide_prefix_len >= config.aggregation.ipv6_prefix_len {
            config.aggregation.ipv6_wide_prefix_len = 0;
        }

        let lc = &raw.lifecycle;
        for (name, value) in [("onset_secs", lc.onset_secs), ("quiet_secs", lc.quiet_secs)] {
            if let Some(v) = value
                && !(1..=3600).contains(&v)
            {
                return Err(invalid(
                    format!("lifecycle.{name}"),
                    format!("{v} is not within 1..=3600 seconds"),
                ));
            }
        }
        config.lifecycle.onset_secs = lc.onset_secs.unwrap_or(config.lifecycle.onset_secs);
        config.lifecycle.quiet_secs = lc.quiet_secs.unwrap_or(config.lifecycle.quiet_secs);
        if let Some(gap) = lc.campaign_gap_secs {
            if gap > 86_400 {
                return Err(invalid(
                    "lifecycle.campaign_gap_secs".to_string(),
                    format!("{gap} is not within 0..=86400 seconds"),
                ));
            }
            config.lifecycle.campaign_gap_secs = gap;
        }

        let lim = &raw.limits;
        for (name, value) in [
            ("max_hosts", lim.max_hosts),
            ("max_prefixes", lim.max_prefixes),
            ("max_attacks", lim.max_attacks),
        ] {
            if value == Some(0) {
                return Err(invalid(format!("limits.{name}"), "must be at least 1".into()));
            }
        }
        config.limits.max_hosts = lim.max_hosts.unwrap_or(config.limits.max_hosts);
        config.limits.max_prefixes = lim.max_prefixes.unwrap_or(config.limits.max_prefixes);
        config.limits.max_attacks = lim.max_attacks.unwrap_or(config.limits.max_attacks);
        if let Some(entries) = lim.flow_table {
            if !entries.is_power_of_two() || !(1024..=1 << 28).contains(&entries) {
                return Err(invalid(
                    "limits.flow_table".into(),
                    format!("{entries} must be a power of two within 1024..=268435456"),
                ));
            }
            config.limits.flow_table = entries;
        }

        for (i, g) in raw.group.iter().enumerate() {
            let path = format!("group.{i}");
            if g.name.trim().is_empty() {
                return Err(invalid(format!("{path}.name"), "must not be empty".into()));
            }
            if config.groups.iter().any(|other| other.name == g.name) {
                return Err(invalid(format!("{path}.name"), format!("group `{}` is defined twice", g.name)));
            }
            if g.prefixes.is_empty() {
                return Err(invalid(format!("{path}.prefixes"), "a group needs at least one prefix".into()));
            }
            let mut prefixes = Vec::with_capacity(g.prefixes.len());
            for (j, s) in g.prefixes.iter().enumerate() {
                let net = parse_net(format!("{path}.prefixes.{j}"), s)?;
                if !within(&config.protected, &net) {
                    return Err(invalid(
                        format!("{path}.prefixes.{j}"),
                        format!("{net} is outside every protected network"),
                    ));
                }
                prefixes.push(net);
            }
            check_thresholds(&format!("{path}.thresholds"), &g.thresholds)?;
            check_thresholds(&format!("{path}.outbound"), &g.outbound)?;
            if let Some(aggregate) = &g.aggregate {
                check_thresholds(&format!("{path}.aggregate"), aggregate)?;
            }
            if let Some(factor) = g.baseline_factor
                && !(factor > 1.0 && factor <= 1000.0)
            {
                return Err(invalid(
                    format!("{path}.baseline_factor"),
                    format!("{factor} is not within 1 (exclusive)..=1000"),
                ));
            }
            config.groups.push(HostGroup {
                name: g.name.clone(),
                prefixes,
                thresholds: g.thresholds.over(config.thresholds),
                outbound: g.outbound.over(config.outbound),
                aggregate: g.aggregate.map(|a| a.over(Thresholds::PREFIX_DEFAULT)),
                policy: match &g.policy {
                    Some(text) => policy(format!("{path}.policy"), text)?,
                    None => config.policy,
                },
                baseline_factor: g.baseline_factor,
            });
        }
        if config.groups.len() > usize::from(u16::MAX) {
            return Err(invalid("group".into(), "at most 65535 groups".into()));
        }
        config.baseline = baseline_section(&raw.baseline, &invalid)?;

        let threat = &raw.threat;
        let level = |key: String, text: &str| {
            ThreatLevel::parse(text).ok_or_else(|| {
                invalid(key, format!("`{text}` is not a threat level (normal, elevated or high)"))
            })
        };
        if let Some(text) = &threat.level {
            config.threat.level = level("threat.level".into(), text)?;
        }
        for (name, value) in
            [("elevated_percent", threat.elevated_percent), ("high_percent", threat.high_percent)]
        {
            if let Some(v) = value
                && !(1..=100).contains(&v)
            {
                return Err(invalid(format!("threat.{name}"), format!("{v} is not within 1..=100")));
            }
        }
        config.threat.elevated_percent = threat.elevated_percent.unwrap_or(config.threat.elevated_percent);
        config.threat.high_percent = threat.high_percent.unwrap_or(config.threat.high_percent);
        for (i, w) in threat.window.iter().enumerate() {
            let path = format!("threat.window.{i}");
            let time = |key: &str, text: &str| {
                parse_utc(text).ok_or_else(|| {
                    invalid(
                        format!("{path}.{key}"),
                        format!("`{text}` is not a UTC date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"),
                    )
                })
            };
            let (from, until) = (time("from", &w.from)?, time("until", &w.until)?);
            if until <= from {
                return Err(invalid(format!("{path}.until"), "must be after `from`".into()));
            }
            config.threat.windows.push(ThreatWindow {
                level: level(format!("{path}.level"), &w.level)?,
                from,
                until,
                reason: w.reason.clone(),
            });
        }
        Ok(config)
    }

    /// Index of the group with the most specific prefix holding `host`.
    pub fn group_of(&self, host: std::net::IpAddr) -> Option<usize> {
        let mut best: Option<(u8, usize)> = None;
        for (i, group) in self.groups.iter().enumerate() {
            for net in &group.prefixes {
                if net.contains(&host) && best.is_none_or(|(len, _)| net.prefix_len() > len) {
                    best = Some((net.prefix_len(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Thresholds for `host`: those of the group with the most specific prefix holding it,
    /// else the defaults.
    pub fn host_thresholds(&self, host: std::net::IpAddr) -> &Thresholds {
        self.group_of(host).and_then(|i| self.groups.get(i)).map_or(&self.thresholds, |g| &g.thresholds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_gives_defaults() {
        assert_eq!(DetectConfig::from_toml_str("", "x.toml").unwrap(), DetectConfig::default());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../../config/rampart.example.toml");
        let config = DetectConfig::from_toml_str(text, "rampart.example.toml").unwrap();
        assert_eq!(config.protected.len(), 2);
        assert_eq!(config.groups.len(), 2);
        let dns: std::net::IpAddr = "198.51.100.53".parse().unwrap();
        assert_eq!(config.host_thresholds(dns).udp_pps, 50_000);
        assert_eq!(config.host_thresholds(dns).tcp_syn_pps, config.thresholds.tcp_syn_pps);
        assert_eq!(config.groups[0].outbound.amplification_pps, 20_000);
        assert_eq!(config.groups[0].outbound.tcp_syn_pps, 5_000);
        let web = &config.groups[1];
        assert_eq!((web.policy, web.baseline_factor), (Policy::Alert, Some(4.0)));
        assert_eq!(web.aggregate.map(|a| (a.pps, a.bps)), Some((40_000, 2_000_000_000)));
        assert_eq!(config.aggregation.ipv6_wide_prefix_len, 48);
        assert_eq!(config.aggregation.network_thresholds.pps, 300_000);
        assert_eq!(config.limits.flow_table, 1 << 16);
        assert!(config.baseline.enabled);
        // Every value the example writes is the default (the example documents them).
        let defaults = DetectConfig {
            protected: config.protected.clone(),
            groups: config.groups.clone(),
            threat: config.threat.clone(),
            ..DetectConfig::default()
        };
        assert_eq!(config, defaults);
    }

    #[test]
    fn parse_error_names_file_line_and_key() {
        let err =
            DetectConfig::from_toml_str("protected = []\n[thresholds]\nppss = 5\n", "r.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("r.toml:3:1:"), "{text}");
        assert!(text.contains("ppss"), "{text}");
        let err = DetectConfig::from_toml_str("[thresholds]\npps = \"many\"\n", "r.toml").unwrap_err();
        assert!(err.to_string().starts_with("r.toml:2:"), "{err}");
    }

    #[test]
    fn validation_errors_are_clear() {
        let cases = [
            ("[thresholds]\npps = 0\n", "r.toml:2:7: `thresholds.pps`: must be at least 1"),
            (
                "protected = [\"10.0.0.0/33\"]\n",
                "r.toml:1:14: `protected.0`: `10.0.0.0/33` is not an IP prefix",
            ),
            (
                "protected = [\"10.0.0.1/8\"]\n",
                "r.toml:1:14: `protected.0`: `10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)",
            ),
            (
                "protected = [\"10.0.0.0/8\"]\n[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/24\"]\n",
                "r.toml:4:13: `group.0.prefixes.0`: 192.0.2.0/24 is outside every protected network",
            ),
            (
                "[lifecycle]\nquiet_secs = 0\n",
                "r.toml:2:14: `lifecycle.quiet_secs`: 0 is not within 1..=3600",
            ),
            ("[outbound]\nudp_pps = 0\n", "r.toml:2:11: `outbound.udp_pps`: must be at least 1"),
            ("[baseline]\nslot_secs = 1000\n", "r.toml:2:13: `baseline.slot_secs`: "),
            ("[baseline]\nfactor = 0.5\n", "r.toml:2:10: `baseline.factor`: "),
            ("[baseline]\nwarmup = 5\n", "r.toml:2:1: unknown field `warmup`"),
            (
                "policy = \"drop\"\n",
                "r.toml:1:10: `policy`: `drop` is not a policy (mitigate, alert or ignore)",
            ),
            ("[aggregation]\nwide_pps = 0\n", "r.toml:2:12: `aggregation.wide_pps`: must be at least 1"),
            (
                "[aggregation]\nipv6_wide_prefix_len = 64\n",
                "r.toml:2:24: `aggregation.ipv6_wide_prefix_len`: 64 must be 0 (off)",
            ),
            (
                "[limits]\nflow_table = 1000\n",
                "r.toml:2:14: `limits.flow_table`: 1000 must be a power of two",
            ),
            (
                "[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\npolicy = \"maybe\"\n",
                "r.toml:4:10: `group.0.policy`: `maybe` is not a policy",
            ),
            (
                "[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nbaseline_factor = 0.5\n",
                "r.toml:4:19: `group.0.baseline_factor`: 0.5 is not within",
            ),
            (
                "[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\naggregate = { pps = 0 }\n",
                "r.toml:4:21: `group.0.aggregate.pps`: must be at least 1",
            ),
            ("[aggregation]\nipv4_prefix_len = 40\n", "r.toml:2:19: `aggregation.ipv4_prefix_len`"),
            ("[threat]\nlevel = \"panic\"\n", "r.toml:2:9: `threat.level`: `panic` is not a threat level"),
            ("[threat]\nhigh_percent = 0\n", "r.toml:2:16: `threat.high_percent`: 0 is not within 1..=100"),
            (
                "[[threat.window]]\nlevel = \"high\"\nfrom = \"2026-12-10\"\nuntil = \"next week\"\n",
                "r.toml:4:9: `threat.window.0.until`: `next week` is not a UTC date",
            ),
            (
                "[[threat.window]]\nlevel = \"high\"\nfrom = \"2026-12-10\"\nuntil = \"2026-12-09\"\n",
                "r.toml:4:9: `threat.window.0.until`: must be after `from`",
            ),
        ];
        for (text, want) in cases {
            let err = DetectConfig::from_toml_str(text, "r.toml").unwrap_err().to_string();
            assert!(err.starts_with(want), "{err} does not start with {want}");
        }
    }

    #[test]
    fn most_specific_group_wins() {
        let text = "[[group]]\nname = \"wide\"\nprefixes = [\"10.0.0.0/8\"]\nthresholds = { pps = 5 }\n\
                    [[group]]\nname = \"narrow\"\nprefixes = [\"10.1.0.0/16\"]\nthresholds = { pps = 7 }\n";
        let config = DetectConfig::from_toml_str(text, "g.toml").unwrap();
        assert_eq!(config.host_thresholds("10.1.2.3".parse().unwrap()).pps, 7);
        assert_eq!(config.host_thresholds("10.2.2.3".parse().unwrap()).pps, 5);
        assert_eq!(config.host_thresholds("11.2.2.3".parse().unwrap()).pps, 20_000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Err(error) = DetectConfig::from_toml_str(&text, "p.toml") {
                proptest::prop_assert!(error.to_string().starts_with("p.toml:"), "{error}");
            }
        }

        #[test]
        fn mutated_example_never_panics(cut in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
            let text = include_str!("../../../../config/rampart.example.toml");
            let mut bytes = text.as_bytes().to_vec();
            if let Some(b) = bytes.get_mut(cut) { *b = byte; }
            if let Ok(mutated) = String::from_utf8(bytes)
                && let Err(error) = DetectConfig::from_toml_str(&mutated, "p.toml")
            {
                proptest::prop_assert!(error.to_string().starts_with("p.toml:"), "{error}");
            }
            if let Err(error) = DetectConfig::from_toml_str(text.get(..cut.min(text.len())).unwrap_or(""), "p.toml") {
                proptest::prop_assert!(error.to_string().starts_with("p.toml:"), "{error}");
            }
        }
    }
}
