//! What an attack is about, which way it flows, and what may be done about it.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The attacked (inbound) or attacking (outbound) protected side.
///
/// JSON: `{"host": "198.51.100.10"}`, `{"prefix": "198.51.100.0/24"}`,
/// `{"group": {"name": "web", "prefixes": ["198.51.100.0/28"]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// One protected host. Outbound attacks target the protected host sending them.
    Host(IpAddr),
    /// The hosts of a prefix (/24, /64, an IPv6 /48 or a whole protected network), each under
    /// its own limits but together over the prefix's: carpet bombing.
    Prefix(#[schemars(with = "String")] IpNet),
    /// A host group's aggregate.
    Group {
        name: String,
        /// The group's prefixes, as configured.
        #[schemars(with = "Vec<String>")]
        prefixes: Vec<IpNet>,
    },
}

impl Target {
    /// The protected prefixes this target covers: the host as a /32 or /128, the prefix, the
    /// group's prefixes.
    pub fn prefixes(&self) -> Vec<IpNet> {
        match self {
            Target::Host(ip) => vec![IpNet::from(*ip)],
            Target::Prefix(net) => vec![*net],
            Target::Group { prefixes, .. } => prefixes.clone(),
        }
    }

    /// The host address, for a host target.
    pub fn host(&self) -> Option<IpAddr> {
        match self {
            Target::Host(ip) => Some(*ip),
            _ => None,
        }
    }

    /// `host`, `prefix` or `group`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Target::Host(_) => "host",
            Target::Prefix(_) => "prefix",
            Target::Group { .. } => "group",
        }
    }
}

impl fmt::Display for Target {
    /// `198.51.100.10`, `198.51.100.0/24`, `group web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(ip) => write!(f, "{ip}"),
            Target::Prefix(net) => write!(f, "{net}"),
            Target::Group { name, .. } => write!(f, "group {name}"),
        }
    }
}

/// Traffic direction relative to the protected networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards a protected network.
    Inbound,
    /// From a protected host (a compromised host, an abused reflector).
    Outbound,
}

impl Direction {
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What Rampart may do about an attack on a host or group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Policy {
    /// Report and hand the signature to mitigation (the default).
    #[default]
    Mitigate,
    /// Report only: never mitigate automatically (e.g. hosts whose traffic must never be
    /// filtered by a machine).
    Alert,
    /// Do not detect at all (e.g. a honeypot or a scrubbing range); the traffic still counts
    /// in group rates.
    Ignore,
}

impl Policy {
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Mitigate => "mitigate",
            Policy::Alert => "alert",
            Policy::Ignore => "ignore",
        }
    }

    pub fn parse(text: &str) -> Option<Policy> {
        [Policy::Mitigate, Policy::Alert, Policy::Ignore].into_iter().find(|p| p.name() == text)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_json_is_tagged_and_typed() {
        let host = Target::Host("198.51.100.10".parse().unwrap());
        assert_eq!(serde_json::to_string(&host).unwrap(), r#"{"host":"198.51.100.10"}"#);
        let group = Target::Group { name: "web".into(), prefixes: vec!["198.51.100.0/28".parse().unwrap()] };
        let json = serde_json::to_string(&group).unwrap();
        assert_eq!(json, r#"{"group":{"name":"web","prefixes":["198.51.100.0/28"]}}"#);
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), group);
        assert_eq!(group.prefixes().len(), 1);
        assert_eq!(host.prefixes(), vec!["198.51.100.10/32".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn policy_names_parse_back() {
        for p in [Policy::Mitigate, Policy::Alert, Policy::Ignore] {
            assert_eq!(Policy::parse(p.name()), Some(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(Policy::parse("block"), None);
    }
}
