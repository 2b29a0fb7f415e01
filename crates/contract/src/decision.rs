//! Decisions: what an acting layer is asked to do, to what, by whom, until when.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attack::AttackId;
use crate::signature::Signature;
use crate::time::EventTime;

/// A decision's id, unique in the store.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct DecisionId(pub u64);

/// What traffic a decision applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Traffic from (ban) or to (blackhole) one address, as the action says.
    Address(IpAddr),
    /// Traffic from or to a prefix.
    Prefix(#[schemars(with = "String")] IpNet),
    /// Traffic matching an attack's signature.
    Signature(Box<Signature>),
}

/// A BGP route target (extended community), as in RFC 4360: `ASN:VALUE` or `IP:VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// Two-octet AS, four-octet value.
    As2 { asn: u16, value: u32 },
    /// IPv4 address, two-octet value.
    Ipv4 { address: Ipv4Addr, value: u16 },
    /// Four-octet AS (RFC 5668), two-octet value.
    As4 { asn: u32, value: u16 },
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::As2 { asn, value } => write!(f, "{asn}:{value}"),
            RouteTarget::Ipv4 { address, value } => write!(f, "{address}:{value}"),
            RouteTarget::As4 { asn, value } => write!(f, "{asn}:{value}"),
        }
    }
}

/// What to do with the traffic in scope. Rates are integers, so a NaN, negative or infinite
/// rate cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Drop it (FlowSpec traffic-rate 0, an XDP drop, a proxy ban).
    Discard,
    /// Let through at most this many bytes per second.
    RateLimitBytes { bytes_per_sec: u64 },
    /// Let through at most this many packets per second.
    RateLimitPackets { packets_per_sec: u64 },
    /// Remote-triggered blackhole of the destination (RFC 7999 BLACKHOLE community).
    Blackhole,
    /// FlowSpec redirect into a VRF.
    RedirectVrf { route_target: RouteTarget },
    /// FlowSpec redirect to a next hop.
    RedirectNextHop { next_hop: IpAddr },
    /// Set the DSCP value.
    Mark { dscp: u8 },
    /// Tell people, change nothing.
    Notify,
}

/// Who or what made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// The detection engine, for this attack.
    Attack { attack: AttackId },
    /// An operator (user name or token name), by hand.
    Operator { name: String },
    /// A threat-intelligence feed.
    Intel { feed: String },
}

/// A decision: scope, action, origin, lifetime and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub id: DecisionId,
    pub scope: Scope,
    pub action: Action,
    pub origin: Origin,
    pub created: EventTime,
    /// `None`: until withdrawn by hand.
    pub expires: Option<EventTime>,
    pub reason: String,
}

impl Decision {
    /// Whether it is in force at `now`.
    pub fn active_at(&self, now: EventTime) -> bool {
        self.created <= now && self.expires.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_and_expire() {
        let d = Decision {
            id: DecisionId(7),
            scope: Scope::Prefix("203.0.113.0/24".parse().unwrap()),
            action: Action::RateLimitBytes { bytes_per_sec: 1_000_000 },
            origin: Origin::Attack { attack: AttackId(3) },
            created: EventTime::from_unix_secs(100),
            expires: Some(EventTime::from_unix_secs(160)),
            reason: "syn flood".into(),
        };
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""scope":{"prefix":"203.0.113.0/24"}"#), "{json}");
        assert!(json.contains(r#""action":{"rate_limit_bytes":{"bytes_per_sec":1000000}}"#), "{json}");
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
        assert!(d.active_at(EventTime::from_unix_secs(159)));
        assert!(!d.active_at(EventTime::from_unix_secs(160)));
        assert!(!d.active_at(EventTime::from_unix_secs(99)));
        assert!(serde_json::from_str::<Action>(r#"{"rate_limit_bytes":{"bytes_per_sec":-1}}"#).is_err());
        let rt = RouteTarget::Ipv4 { address: Ipv4Addr::new(192, 0, 2, 1), value: 100 };
        assert_eq!(rt.to_string(), "192.0.2.1:100");
    }
}
