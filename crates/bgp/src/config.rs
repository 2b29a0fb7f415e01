//! The speaker's configuration: the local AS and router id, an optional listening address
//! for passive peers, and each peer's address, ASN, families, communities, next hops, rule
//! budget and redirect-to-IP encoding. Deserializes from the daemon's TOML.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

use crate::community::{Community, LargeCommunity, RedirectIpEncoding};
use crate::family::Family;
use crate::session::SessionConfig;

/// Who opens the TCP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMode {
    /// Rampart connects (and also accepts the peer's connection while not connected).
    #[default]
    Active,
    /// Rampart only accepts the peer's connection on `listen`.
    Passive,
}

/// The whole speaker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Where passive peers connect (usually port 179); none: active peers only.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    pub peers: Vec<PeerConfig>,
}

fn default_port() -> u16 {
    179
}
fn default_hold() -> u16 {
    90
}
fn default_families() -> Vec<Family> {
    Family::ALL.to_vec()
}
fn default_budget() -> usize {
    10_000
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A name for status and logs.
    pub name: String,
    pub address: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    pub peer_as: u32,
    /// Source address for active connections.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    #[serde(default)]
    pub mode: ConnectMode,
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    #[serde(default = "default_families")]
    pub families: Vec<Family>,
    /// Restart time to advertise; with it, a clean shutdown leaves routes to the peer's
    /// graceful-restart timer instead of withdrawing them.
    #[serde(default)]
    pub graceful_restart: Option<u16>,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    #[serde(default)]
    pub blackhole_next_hop_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub blackhole_next_hop_v6: Option<Ipv6Addr>,
    #[serde(default = "default_budget")]
    pub rule_budget: usize,
    #[serde(default)]
    pub redirect_ip: RedirectIpEncoding,
}

impl PeerConfig {
    pub fn session(&self, speaker: &SpeakerConfig) -> SessionConfig {
        SessionConfig {
            local_as: speaker.local_as,
            peer_as: self.peer_as,
            router_id: speaker.router_id,
            hold_time: self.hold_time,
            families: self.families.clone(),
            graceful_restart: self.graceful_restart,
            blackhole_next_hop_v4: self.blackhole_next_hop_v4,
            blackhole_next_hop_v6: self.blackhole_next_hop_v6,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            redirect_ip: self.redirect_ip,
            rule_budget: self.rule_budget,
        }
    }

    /// A mistake worth refusing at load: hold times of 1 and 2 are invalid (RFC 4271).
    pub fn check(&self) -> Result<(), String> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(format!("peer {}: hold_time must be 0 or at least 3", self.name));
        }
        if self.families.is_empty() {
            return Err(format!("peer {}: no families", self.name));
        }
        Ok(())
    }
}
