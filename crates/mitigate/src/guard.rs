//! Safety guards: the last word before a decision is enacted, whoever proposed it (policy, an
//! operator, a feed). Pure: a scope, an action and the guard settings in, a refusal or `Ok`
//! out. The guards are what "never harm what is protected" means in code:
//!
//! - nothing that covers an allowlisted address (own infrastructure, resolvers, peering links,
//!   the daemon's own addresses) is ever filtered, in either direction;
//! - no prefix shorter than the configured minimum per family, and never `0.0.0.0/0` or `::/0`;
//! - a destination (blackhole, a signature's destination) must lie inside the protected
//!   networks, and a signature must name one (an empty destination matches everything);
//! - a signature whose estimated share of the target's normal traffic (its collateral) is over
//!   the limit is refused.
//!
//! `Notify` changes nothing on the wire and passes every guard.

use ipnet::IpNet;
use rampart_contract::{Action, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the guards hold every decision to.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Networks Rampart protects: every destination must be inside one of them.
    pub protected: Vec<IpNet>,
    /// Never filtered: no decision's scope may overlap any of these.
    pub allowlist: Vec<IpNet>,
    /// Shortest IPv4 prefix a decision may name.
    pub min_prefix_v4: u8,
    /// Shortest IPv6 prefix a decision may name.
    pub min_prefix_v6: u8,
    /// Largest collateral (percent of the target's normal traffic a signature would also match)
    /// a signature rule may have.
    pub max_collateral_percent: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            protected: Vec::new(),
            allowlist: Vec::new(),
            min_prefix_v4: 24,
            min_prefix_v6: 48,
            max_collateral_percent: 5.0,
        }
    }
}

/// Why a guard refused a decision. Each displays as one sentence for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The scope is a default route (`0.0.0.0/0`, `::/0`).
    #[error("{prefix} is a default route: it would cover every address")]
    DefaultRoute {
        /// The prefix.
        #[schemars(with = "String")]
        prefix: IpNet,
    },
    /// The scope overlaps an allowlisted prefix.
    #[error("{prefix} overlaps the allowlisted {allowlisted}")]
    Allowlisted {
        /// The scope's prefix.
        #[schemars(with = "String")]
        prefix: IpNet,
        /// The allowlist entry it overlaps.
        #[schemars(with = "String")]
        allowlisted: IpNet,
    },
    /// A prefix is shorter than the configured minimum.
    #[error("{prefix} is shorter than the minimum /{min}")]
    TooShort {
        /// The prefix.
        #[schemars(with = "String")]
        prefix: IpNet,
        /// The minimum length for its family.
        min: u8,
    },
    /// A destination is not inside the protected networks.
    #[error("{prefix} is not inside the protected networks")]
    OutsideProtected {
        /// The destination prefix.
        #[schemars(with = "String")]
        prefix: IpNet,
    },
    /// A signature names no destination, so it would match traffic to anyone.
    #[error("the signature names no destination prefix: it would match traffic to anyone")]
    Unbounded,
    /// A signature restricts nothing but prefixes: only a blackhole can express it.
    #[error("the signature restricts nothing beyond its prefixes (protocol, ports, flags, length)")]
    NotSpecific,
    /// The signature would also match too much of the target's normal traffic.
    #[error(
        "the signature would also match {percent:.1} % of the target's normal traffic (limit {limit:.1} %)"
    )]
    Collateral {
        /// The estimate.
        percent: f64,
        /// The configured limit.
        limit: f64,
    },
    /// The action cannot be enacted on this scope (e.g. a blackhole of a signature).
    #[error("{action} cannot apply to {scope}")]
    Unsupported {
        /// The action's name.
        action: String,
        /// The scope's kind.
        scope: String,
    },
}

impl Refusal {
    /// A short stable name, the metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::DefaultRoute { .. } => "default_route",
            Refusal::Allowlisted { .. } => "allowlisted",
            Refusal::TooShort { .. } => "too_short",
            Refusal::OutsideProtected { .. } => "outside_protected",
            Refusal::Unbounded => "unbounded",
            Refusal::NotSpecific => "not_specific",
            Refusal::Collateral { .. } => "collateral",
            Refusal::Unsupported { .. } => "unsupported",
        }
    }

    /// Every name, for metrics that show zeros.
    pub const NAMES: [&'static str; 8] = [
        "default_route",
        "allowlisted",
        "too_short",
        "outside_protected",
        "unbounded",
        "not_specific",
        "collateral",
        "unsupported",
    ];
}

/// Whether two prefixes share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The prefixes a scope touches, and which of them are destinations (must be protected).
/// An address or prefix is a destination for a blackhole, a source ban otherwise.
pub fn scope_prefixes(scope: &Scope, action: &Action) -> Vec<(IpNet, bool)> {
    let blackhole = matches!(action, Action::Blackhole);
    match scope {
        Scope::Address(ip) => vec![(IpNet::from(*ip).trunc(), blackhole)],
        Scope::Prefix(net) => vec![(net.trunc(), blackhole)],
        Scope::Signature(signature) => signature
            .dst_prefixes
            .iter()
            .map(|net| (net.trunc(), true))
            .chain(signature.src_prefixes.iter().map(|net| (net.trunc(), false)))
            .collect(),
        // A scope kind added to the contract later: nothing known, so nothing allowed.
        _ => Vec::new(),
    }
}

/// Checks `action` on `scope` against every guard; the first refusal found.
pub fn check(scope: &Scope, action: &Action, config: &GuardConfig) -> Result<(), Refusal> {
    if matches!(action, Action::Notify) {
        return Ok(());
    }
    let unsupported =
        || Refusal::Unsupported { action: action_name(action).into(), scope: scope_name(scope).into() };
    match (scope, action) {
        (_, Action::Mark { dscp }) if *dscp > 63 => return Err(unsupported()),
        (Scope::Signature(_), Action::Blackhole) => return Err(unsupported()),
        (Scope::Signature(signature), _) => {
            if signature.dst_prefixes.is_empty() {
                return Err(Refusal::Unbounded);
            }
            if !signature.is_specific() {
                return Err(Refusal::NotSpecific);
            }
        }
        (Scope::Address(_) | Scope::Prefix(_), _) => {}
        _ => return Err(unsupported()),
    }
    let prefixes = scope_prefixes(scope, action);
    if prefixes.is_empty() {
        return Err(unsupported());
    }
    for (prefix, destination) in &prefixes {
        if prefix.prefix_len() == 0 {
            return Err(Refusal::DefaultRoute { prefix: *prefix });
        }
        let min = match prefix {
            IpNet::V4(_) => config.min_prefix_v4,
            IpNet::V6(_) => config.min_prefix_v6,
        };
        if prefix.prefix_len() < min {
            return Err(Refusal::TooShort { prefix: *prefix, min });
        }
        if let Some(allowlisted) = config.allowlist.iter().find(|a| overlaps(a, prefix)) {
            return Err(Refusal::Allowlisted { prefix: *prefix, allowlisted: *allowlisted });
        }
        if *destination && !config.protected.iter().any(|p| p.contains(prefix)) {
            return Err(Refusal::OutsideProtected { prefix: *prefix });
        }
    }
    if let Scope::Signature(signature) = scope
        && let Some(collateral) = &signature.collateral
    {
        // NaN or infinite estimates (or a NaN limit) are refused too: no number, no rule.
        let limit = config.max_collateral_percent;
        let within = collateral.percent.partial_cmp(&limit).is_some_and(|o| o.is_le());
        if !collateral.percent.is_finite() || !within {
            return Err(Refusal::Collateral { percent: collateral.percent, limit });
        }
    }
    Ok(())
}

/// `discard`, `rate_limit_bytes`, ... (the contract's JSON names).
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Discard => "discard",
        Action::RateLimitBytes { .. } => "rate_limit_bytes",
        Action::RateLimitPackets { .. } => "rate_limit_packets",
        Action::Blackhole => "blackhole",
        Action::RedirectVrf { .. } => "redirect_vrf",
        Action::RedirectNextHop { .. } => "redirect_next_hop",
        Action::Mark { .. } => "mark",
        Action::Notify => "notify",
        _ => "unknown",
    }
}

/// `address`, `prefix` or `signature`.
pub fn scope_name(scope: &Scope) -> &'static str {
    match scope {
        Scope::Address(_) => "address",
        Scope::Prefix(_) => "prefix",
        Scope::Signature(_) => "signature",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{Collateral, PortRange, Signature};

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn config() -> GuardConfig {
        GuardConfig {
            protected: vec![net("198.51.100.0/24"), net("2001:db8:1::/48")],
            allowlist: vec![net("198.51.100.53/32"), net("2001:db8:1::1/128")],
            ..GuardConfig::default()
        }
    }

    fn udp_to(dst: &str) -> Signature {
        Signature {
            dst_prefixes: vec![net(dst)],
            protocol: Some(17),
            src_ports: vec![PortRange::single(53)],
            ..Signature::default()
        }
    }

    #[test]
    fn each_guard_refuses_what_it_names() {
        let c = config();
        let sig = |s: Signature| Scope::Signature(Box::new(s));
        assert_eq!(check(&sig(udp_to("198.51.100.10/32")), &Action::Discard, &c), Ok(()));
        assert_eq!(check(&Scope::Address("198.51.100.10".parse().unwrap()), &Action::Blackhole, &c), Ok(()));
        // An attacker's source address may be banned; it is not protected.
        assert_eq!(check(&Scope::Address("203.0.113.9".parse().unwrap()), &Action::Discard, &c), Ok(()));
        let refused = |scope: Scope, action: Action| check(&scope, &action, &c).unwrap_err().name();
        assert_eq!(
            refused(Scope::Address("198.51.100.53".parse().unwrap()), Action::Blackhole),
            "allowlisted"
        );
        assert_eq!(refused(Scope::Address("198.51.100.53".parse().unwrap()), Action::Discard), "allowlisted");
        assert_eq!(refused(Scope::Prefix(net("198.51.100.0/24")), Action::Blackhole), "allowlisted");
        assert_eq!(refused(Scope::Prefix(net("0.0.0.0/0")), Action::Discard), "default_route");
        assert_eq!(refused(Scope::Prefix(net("::/0")), Action::Discard), "default_route");
        assert_eq!(refused(Scope::Prefix(net("203.0.112.0/23")), Action::Discard), "too_short");
        assert_eq!(
            refused(Scope::Address("192.0.2.1".parse().unwrap()), Action::Blackhole),
            "outside_protected"
        );
        assert_eq!(refused(sig(udp_to("192.0.2.1/32")), Action::Discard), "outside_protected");
        assert_eq!(refused(sig(udp_to("198.51.100.53/32")), Action::Discard), "allowlisted");
        assert_eq!(
            refused(sig(Signature { protocol: Some(17), ..Signature::default() }), Action::Discard),
            "unbounded"
        );
        let bare = Signature { dst_prefixes: vec![net("198.51.100.10/32")], ..Signature::default() };
        assert_eq!(refused(sig(bare), Action::Discard), "not_specific");
        assert_eq!(refused(sig(udp_to("198.51.100.10/32")), Action::Blackhole), "unsupported");
        let costly = Signature {
            collateral: Some(Collateral { baseline_pps: 100.0, matching_pps: 30.0, percent: 30.0 }),
            ..udp_to("198.51.100.10/32")
        };
        assert_eq!(
            refused(sig(costly.clone()), Action::RateLimitBytes { bytes_per_sec: 1000 }),
            "collateral"
        );
        let nan = Signature {
            collateral: Some(Collateral { baseline_pps: 0.0, matching_pps: 0.0, percent: f64::NAN }),
            ..udp_to("198.51.100.10/32")
        };
        assert_eq!(refused(sig(nan), Action::Discard), "collateral");
        // Notify changes nothing: always allowed.
        assert_eq!(check(&sig(costly), &Action::Notify, &c), Ok(()));
        // Host bits of a prefix do not hide it from the allowlist.
        assert_eq!(refused(Scope::Prefix(net("198.51.100.53/24")), Action::Blackhole), "allowlisted");
        assert_eq!(Refusal::NAMES.len(), 8);
    }
}
