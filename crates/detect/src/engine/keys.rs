//! Addresses and targets in one key space: IPv6 as is, IPv4 as its IPv4-mapped form, so one
//! u128 and one mask serve both families.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rampart_contract::{Direction, Level};

use crate::config::DetectConfig;

/// No attack profiles this host's packets.
pub(super) const NO_SLOT: u32 = u32::MAX;

/// Profile slots of one host: the attacks its packets feed.
pub(super) const SLOT_HOST: usize = 0;
pub(super) const SLOT_PREFIX: usize = 1;
pub(super) const SLOT_WIDE: usize = 2;
pub(super) const SLOT_NETWORK: usize = 3;
pub(super) const SLOT_GROUP: usize = 4;
pub(super) const SLOT_OUTBOUND: usize = 5;
pub(super) const SLOTS: usize = 6;

/// An address as a u128: IPv6 as is, IPv4 as its IPv4-mapped IPv6 form.
#[inline]
pub(super) fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[inline]
pub(super) fn is_v4_key(key: u128) -> bool {
    key >> 32 == 0xffff
}

pub(super) fn ip_of(key: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Mask of the first `len` bits of a u128.
pub(super) fn mask(len: u32) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) }
}

/// A network as (address key, mask, length) in the u128 space.
pub(super) fn net_key(net: &IpNet) -> (u128, u128, u8) {
    match net {
        IpNet::V4(n) => {
            let len = 96 + n.prefix_len();
            let m = mask(u32::from(len));
            (key_of(IpAddr::V4(n.network())) & m, m, len)
        }
        IpNet::V6(n) => {
            let m = mask(u32::from(n.prefix_len()));
            (u128::from(n.network()) & m, m, n.prefix_len())
        }
    }
}

/// What an attack is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TargetKey {
    /// Inbound traffic to one host.
    Host(u128),
    /// Inbound traffic to the hosts of a prefix: (network key, length in the u128 space).
    Prefix(u128, u8),
    /// Inbound traffic to a host group (index into the configuration's groups).
    Group(u16),
    /// Outbound traffic from one protected host.
    Outbound(u128),
}

/// A network in the u128 space as an [`IpNet`].
pub(super) fn net_of(key: u128, len: u8) -> IpNet {
    match ip_of(key) {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, len.saturating_sub(96)).unwrap_or_default()),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, len).unwrap_or_default()),
    }
}

pub(super) fn host_net(key: u128) -> IpNet {
    net_of(key, 128)
}

impl TargetKey {
    /// The level its counters are evaluated at.
    pub(super) fn level(self, config: &DetectConfig) -> Level {
        match self.slot(config) {
            SLOT_PREFIX => Level::Prefix,
            SLOT_WIDE => Level::WidePrefix,
            SLOT_NETWORK => Level::Network,
            SLOT_GROUP => Level::Group,
            _ => Level::Host,
        }
    }

    pub(super) fn direction(self) -> Direction {
        if let TargetKey::Outbound(_) = self { Direction::Outbound } else { Direction::Inbound }
    }

    pub(super) fn slot(self, config: &DetectConfig) -> usize {
        match self {
            TargetKey::Host(_) => SLOT_HOST,
            TargetKey::Outbound(_) => SLOT_OUTBOUND,
            TargetKey::Group(_) => SLOT_GROUP,
            TargetKey::Prefix(key, len) => {
                let agg = &config.aggregation;
                let first = if is_v4_key(key) { 96 + agg.ipv4_prefix_len } else { agg.ipv6_prefix_len };
                if len == first {
                    SLOT_PREFIX
                } else if !is_v4_key(key) && len == agg.ipv6_wide_prefix_len {
                    SLOT_WIDE
                } else {
                    SLOT_NETWORK
                }
            }
        }
    }
}
