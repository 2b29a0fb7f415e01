//! Mitigation settings: the guards, the escalation ladder per host group, holds, repeat
//! offenders, dry run. [`MitigationToml`] is the `[mitigation]` table as written;
//! [`MitigationToml::resolve`] checks it into a [`MitigationConfig`], naming the key at fault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::guard::GuardConfig;

/// One rung of an escalation ladder, mildest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// Tell people (notification actuators), change nothing.
    Notify,
    /// FlowSpec rate limit of the attack's signature.
    RateLimit,
    /// FlowSpec discard of the attack's signature.
    Discard,
    /// RTBH of the victim /32 or /128: only for a host target, and only when the attack
    /// exceeds the configured share of link capacity.
    Blackhole,
}

impl Rung {
    pub const fn name(self) -> &'static str {
        match self {
            Rung::Notify => "notify",
            Rung::RateLimit => "rate_limit",
            Rung::Discard => "discard",
            Rung::Blackhole => "blackhole",
        }
    }
}

/// What may be done for the attacks of one host group (or of none).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPolicy {
    /// Rungs in order of escalation; the first applies at onset.
    pub ladder: Vec<Rung>,
    /// How long an attack lasts at one rung before the next (shortened for repeat offenders).
    pub step: Duration,
    /// How long a decision stays after its attack ended (lengthened for repeat offenders).
    pub hold: Duration,
    /// Bytes per second a rate-limit rung lets through.
    pub rate_limit_bytes_per_sec: u64,
    /// The protected side's link capacity, bits per second; without it no blackhole.
    pub link_capacity_bps: Option<u64>,
    /// A blackhole only when the attack's current rate exceeds this share of the link, percent.
    pub blackhole_share_percent: f64,
    /// When a guard refuses a rung, try the next one at once (else stay where it is).
    pub fallback: bool,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy {
            ladder: vec![Rung::Notify, Rung::RateLimit, Rung::Discard, Rung::Blackhole],
            step: Duration::from_secs(30),
            hold: Duration::from_secs(300),
            rate_limit_bytes_per_sec: 12_500_000,
            link_capacity_bps: None,
            blackhole_share_percent: 50.0,
            fallback: true,
        }
    }
}

/// Repeat offenders: each attack on a target adds one to its score, which halves every
/// `half_life`; a score of `s` divides the step by `1 + s` and multiplies the hold by `1 + s`
/// (up to `max_hold`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatConfig {
    pub half_life: Duration,
    pub max_hold: Duration,
    /// Most targets remembered; the lowest scores go first.
    pub max_targets: usize,
}

impl Default for RepeatConfig {
    fn default() -> Self {
        RepeatConfig {
            half_life: Duration::from_secs(86_400),
            max_hold: Duration::from_secs(86_400),
            max_targets: 65_536,
        }
    }
}

/// An external program run for every decision change (notification actuator).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptConfig {
    pub path: PathBuf,
    /// Killed when it runs longer.
    pub timeout: Duration,
    /// At most this many runs wait; more are dropped (counted).
    pub queue: usize,
}

/// Everything mitigation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MitigationConfig {
    /// Record what would have been done, enact nothing (the default).
    pub dry_run: bool,
    pub guards: GuardConfig,
    /// The policy of attacks whose group has none of its own.
    pub default_policy: GroupPolicy,
    pub groups: BTreeMap<String, GroupPolicy>,
    pub repeat: RepeatConfig,
    /// How long an automatic decision is leased while its attack goes on; renewed at half of it,
    /// so a daemon that dies without a restart leaves nothing in force for longer.
    pub lease: Duration,
    pub script: Option<ScriptConfig>,
    /// Group (name or number) besides root allowed on the control socket.
    pub control_group: Option<String>,
    /// Post every decision change to the daemon's webhook (`[outputs] webhook`) too.
    pub webhook: bool,
    /// Where the control socket is (default `control.sock` in the data directory, which is
    /// 0700: a control group needs a directory of its own it can reach, e.g. /run/rampart).
    pub control_socket: Option<PathBuf>,
    /// The audit log moves aside (`audit.jsonl.N`) before a record would take it past this
    /// many bytes; `None`: one file forever.
    pub audit_rotate_bytes: Option<u64>,
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            dry_run: true,
            guards: GuardConfig::default(),
            default_policy: GroupPolicy::default(),
            groups: BTreeMap::new(),
            repeat: RepeatConfig::default(),
            lease: Duration::from_secs(600),
            script: None,
            control_group: None,
            webhook: false,
            control_socket: None,
            audit_rotate_bytes: None,
        }
    }
}

impl MitigationConfig {
    /// The control socket's path for the data directory `data_dir`.
    pub fn control_socket_in(&self, data_dir: &std::path::Path) -> PathBuf {
        self.control_socket.clone().unwrap_or_else(|| data_dir.join(crate::control::SOCKET_NAME))
    }

    /// The policy for an attack of `group`.
    pub fn policy_for(&self, group: Option<&str>) -> &GroupPolicy {
        group.and_then(|g| self.groups.get(g)).unwrap_or(&self.default_policy)
    }
}

/// A `[mitigation]` value that cannot be used: the key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`mitigation.{key}`: {message}")]
pub struct ConfigError {
    /// The key under `mitigation`, dotted.
    pub key: String,
    /// What is wrong and what would do.
    pub message: String,
}

/// The `[mitigation]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationToml {
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub protected: Option<Vec<String>>,
    pub allowlist: Option<Vec<String>>,
    pub min_prefix_v4: Option<u8>,
    pub min_prefix_v6: Option<u8>,
    pub max_collateral_percent: Option<f64>,
    pub repeat_half_life_secs: Option<u64>,
    pub max_hold_secs: Option<u64>,
    pub lease_secs: Option<u64>,
    pub script: Option<PathBuf>,
    pub script_timeout_ms: Option<u64>,
    pub script_queue: Option<usize>,
    pub control_group: Option<String>,
    pub webhook: Option<bool>,
    pub control_socket: Option<PathBuf>,
    pub audit_rotate_mb: Option<u64>,
    pub default: Option<GroupToml>,
    pub group: Option<BTreeMap<String, GroupToml>>,
}

/// One group's policy as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupToml {
    pub ladder: Option<Vec<Rung>>,
    pub step_secs: Option<u64>,
    pub hold_secs: Option<u64>,
    pub rate_limit_bytes_per_sec: Option<u64>,
    pub link_capacity_bps: Option<u64>,
    pub blackhole_share_percent: Option<f64>,
    pub fallback: Option<bool>,
}

fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), message: message.into() }
}

fn prefixes(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    error(key, format!("{text:?} is not an address or prefix (e.g. \"192.0.2.0/24\")"))
                })
        })
        .collect()
}

impl GroupToml {
    fn resolve(&self, key: &str, base: &GroupPolicy) -> Result<GroupPolicy, ConfigError> {
        let mut policy = base.clone();
        if let Some(ladder) = &self.ladder {
            if ladder.is_empty() {
                return Err(error(format!("{key}.ladder"), "give at least one rung (e.g. [\"notify\"])"));
            }
            if ladder.windows(2).any(|w| w[0] >= w[1]) {
                return Err(error(
                    format!("{key}.ladder"),
                    "rungs go mildest first, each once: notify, rate_limit, discard, blackhole",
                ));
            }
            policy.ladder = ladder.clone();
        }
        if let Some(secs) = self.step_secs {
            if secs == 0 {
                return Err(error(format!("{key}.step_secs"), "must be at least 1"));
            }
            policy.step = Duration::from_secs(secs);
        }
        if let Some(secs) = self.hold_secs {
            policy.hold = Duration::from_secs(secs);
        }
        if let Some(rate) = self.rate_limit_bytes_per_sec {
            policy.rate_limit_bytes_per_sec = rate;
        }
        if let Some(bps) = self.link_capacity_bps {
            if bps == 0 {
                return Err(error(format!("{key}.link_capacity_bps"), "must be at least 1 bit/s"));
            }
            policy.link_capacity_bps = Some(bps);
        }
        if let Some(share) = self.blackhole_share_percent {
            if !(share.is_finite() && share > 0.0 && share <= 100.0) {
                return Err(error(
                    format!("{key}.blackhole_share_percent"),
                    format!("{share} is not above 0 and at most 100"),
                ));
            }
            policy.blackhole_share_percent = share;
        }
        if let Some(fallback) = self.fallback {
            policy.fallback = fallback;
        }
        Ok(policy)
    }
}

impl MitigationToml {
    /// Whether the table asks for mitigation at all (`enabled`, default true once the table
    /// is there).
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Checks every value; `protected` defaults to the detection's protected networks.
    pub fn resolve(&self, detection_protected: &[IpNet]) -> Result<MitigationConfig, ConfigError> {
        let mut config = MitigationConfig::default();
        if let Some(dry_run) = self.dry_run {
            config.dry_run = dry_run;
        }
        config.guards.protected = match &self.protected {
            Some(list) => prefixes("protected", list)?,
            None => detection_protected.to_vec(),
        };
        if let Some(list) = &self.allowlist {
            config.guards.allowlist = prefixes("allowlist", list)?;
        }
        if let Some(len) = self.min_prefix_v4 {
            if !(8..=32).contains(&len) {
                return Err(error("min_prefix_v4", format!("{len} is not 8 to 32")));
            }
            config.guards.min_prefix_v4 = len;
        }
        if let Some(len) = self.min_prefix_v6 {
            if !(16..=128).contains(&len) {
                return Err(error("min_prefix_v6", format!("{len} is not 16 to 128")));
            }
            config.guards.min_prefix_v6 = len;
        }
        if let Some(percent) = self.max_collateral_percent {
            if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
                return Err(error("max_collateral_percent", format!("{percent} is not 0 to 100")));
            }
            config.guards.max_collateral_percent = percent;
        }
        if let Some(secs) = self.repeat_half_life_secs {
            if secs == 0 {
                return Err(error("repeat_half_life_secs", "must be at least 1"));
            }
            config.repeat.half_life = Duration::from_secs(secs);
        }
        if let Some(secs) = self.max_hold_secs {
            config.repeat.max_hold = Duration::from_secs(secs);
        }
        if let Some(secs) = self.lease_secs {
            if secs < 10 {
                return Err(error("lease_secs", "must be at least 10"));
            }
            config.lease = Duration::from_secs(secs);
        }
        if let Some(path) = &self.script {
            let timeout = Duration::from_millis(self.script_timeout_ms.unwrap_or(5_000));
            if timeout.is_zero() || timeout > Duration::from_secs(300) {
                return Err(error("script_timeout_ms", "must be 1 to 300000"));
            }
            let queue = self.script_queue.unwrap_or(256);
            if queue == 0 {
                return Err(error("script_queue", "must be at least 1"));
            }
            config.script = Some(ScriptConfig { path: path.clone(), timeout, queue });
        } else if self.script_timeout_ms.is_some() || self.script_queue.is_some() {
            return Err(error("script", "script_timeout_ms and script_queue need a script"));
        }
        config.control_group = self.control_group.clone();
        config.webhook = self.webhook.unwrap_or(false);
        if let Some(mb) = self.audit_rotate_mb {
            if !(1..=1_048_576).contains(&mb) {
                return Err(error(
                    "audit_rotate_mb",
                    format!("{mb} is not 1 to 1048576 (MiB per audit file)"),
                ));
            }
            config.audit_rotate_bytes = Some(mb << 20);
        }
        config.control_socket = self.control_socket.clone();
        if let Some(default) = &self.default {
            config.default_policy = default.resolve("default", &GroupPolicy::default())?;
        }
        for (name, group) in self.group.iter().flatten() {
            let policy = group.resolve(&format!("group.{name}"), &config.default_policy)?;
            config.groups.insert(name.clone(), policy);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MitigationConfig, ConfigError> {
        let table: MitigationToml = toml_like(text);
        table.resolve(&["198.51.100.0/24".parse().unwrap()])
    }

    /// The tests write the table as JSON: the crate does not parse TOML itself.
    fn toml_like(json: &str) -> MitigationToml {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_dry_run_with_the_full_ladder() {
        let c = parse("{}").unwrap();
        assert!(c.dry_run);
        assert_eq!(c.guards.protected.len(), 1);
        assert_eq!(c.default_policy.ladder.len(), 4);
        assert_eq!(c.policy_for(Some("nope")), &c.default_policy);
    }

    #[test]
    fn groups_inherit_the_default_and_bad_values_name_their_key() {
        let c = parse(
            r#"{"dry_run": false, "allowlist": ["198.51.100.53", "2001:db8::/64"],
                "default": {"hold_secs": 60},
                "group": {"dns": {"ladder": ["notify", "rate_limit"], "fallback": false}}}"#,
        )
        .unwrap();
        assert!(!c.dry_run);
        assert_eq!(c.guards.allowlist[0].to_string(), "198.51.100.53/32");
        let dns = c.policy_for(Some("dns"));
        assert_eq!(dns.ladder, [Rung::Notify, Rung::RateLimit]);
        assert_eq!(dns.hold, Duration::from_secs(60));
        assert!(!dns.fallback);
        let e = |text: &str| parse(text).unwrap_err().to_string();
        assert!(e(r#"{"allowlist": ["nope"]}"#).starts_with("`mitigation.allowlist`"));
        assert!(
            e(r#"{"group": {"x": {"ladder": ["discard", "notify"]}}}"#)
                .starts_with("`mitigation.group.x.ladder`")
        );
        assert!(e(r#"{"group": {"x": {"ladder": []}}}"#).contains("at least one"));
        assert!(e(r#"{"min_prefix_v4": 0}"#).starts_with("`mitigation.min_prefix_v4`"));
        assert!(e(r#"{"max_collateral_percent": 200}"#).contains("0 to 100"));
        assert!(e(r#"{"script_timeout_ms": 10}"#).starts_with("`mitigation.script`"));
        assert!(serde_json::from_str::<MitigationToml>(r#"{"bogus": 1}"#).is_err());
        assert_eq!(parse(r#"{"audit_rotate_mb": 64}"#).unwrap().audit_rotate_bytes, Some(64 << 20));
        assert_eq!(parse("{}").unwrap().audit_rotate_bytes, None);
        assert!(e(r#"{"audit_rotate_mb": 0}"#).starts_with("`mitigation.audit_rotate_mb`"));
    }
}
