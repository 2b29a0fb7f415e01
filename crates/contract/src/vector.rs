//! Attack vectors: what kind of traffic an attack is made of.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! vectors {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// An attack vector (snake_case in JSON and text).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Vector {
            $($(#[$doc])* $variant,)*
        }

        impl Vector {
            /// Every vector, in declaration order.
            pub const ALL: &'static [Vector] = &[$(Vector::$variant,)*];

            /// The name used in JSON, metrics labels and text.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Vector::$variant => $name,)*
                }
            }
        }
    };
}

vectors! {
    /// TCP SYNs without ACK.
    SynFlood => "syn_flood",
    /// Bare TCP ACKs not answering the target's own traffic.
    AckFlood => "ack_flood",
    /// TCP RSTs (RST and RST+ACK; the signature's flags say which).
    RstFlood => "rst_flood",
    /// Other TCP (several flag mixes, FIN, SYN-ACK from few sources).
    TcpFlood => "tcp_flood",
    UdpFlood => "udp_flood",
    /// ICMP and ICMPv6.
    IcmpFlood => "icmp_flood",
    /// Non-initial IP fragments.
    IpFragmentFlood => "ip_fragment_flood",
    DnsAmplification => "dns_amplification",
    NtpAmplification => "ntp_amplification",
    SsdpAmplification => "ssdp_amplification",
    MemcachedAmplification => "memcached_amplification",
    CldapAmplification => "cldap_amplification",
    ChargenAmplification => "chargen_amplification",
    SnmpAmplification => "snmp_amplification",
    NetbiosAmplification => "netbios_amplification",
    PortmapAmplification => "portmap_amplification",
    WsDiscoveryAmplification => "ws_discovery_amplification",
    CoapAmplification => "coap_amplification",
    /// Many hosts of a prefix or group each under their own limits, together over the
    /// aggregate's.
    CarpetBombing => "carpet_bombing",
    Other => "other",
    /// BACnet/IP (UDP 47808).
    BacnetAmplification => "bacnet_amplification",
    /// IKE (UDP 500).
    IkeAmplification => "ike_amplification",
    /// IPsec NAT traversal (UDP 4500).
    NatTAmplification => "nat_t_amplification",
    /// Apple Remote Desktop (UDP 3283).
    ArdAmplification => "ard_amplification",
    /// Service Location Protocol (UDP 427).
    SlpAmplification => "slp_amplification",
    /// Dahua/IoT device discovery "DHDiscover" (UDP 37810).
    DhdiscoverAmplification => "dhdiscover_amplification",
    /// Ubiquiti discovery (UDP 10001).
    UbiquitiAmplification => "ubiquiti_amplification",
    /// OpenVPN (UDP 1194).
    OpenvpnAmplification => "openvpn_amplification",
    /// TFTP (UDP 69).
    TftpAmplification => "tftp_amplification",
    /// Multicast DNS (UDP 5353).
    MdnsAmplification => "mdns_amplification",
    /// RIPv1 (UDP 520).
    RipAmplification => "rip_amplification",
    /// Plex Media Server discovery (UDP 32414).
    PlexAmplification => "plex_amplification",
    /// Lantronix discovery (UDP 30718).
    LantronixAmplification => "lantronix_amplification",
    /// Jenkins auto-discovery (UDP 33848).
    JenkinsAmplification => "jenkins_amplification",
    /// MS-SQL resolution service (UDP 1434).
    MssqlAmplification => "mssql_amplification",
    /// Quote of the day (UDP 17).
    QotdAmplification => "qotd_amplification",
    /// SIP (UDP 5060).
    SipAmplification => "sip_amplification",
    /// STUN/TURN (UDP 3478).
    StunAmplification => "stun_amplification",
    /// DTLS on UDP 3391 (Microsoft RD Gateway; the port abused as "Citrix/RDP DTLS").
    DtlsAmplification => "dtls_amplification",
    /// TeamSpeak 3 (UDP 9987).
    TeamspeakAmplification => "teamspeak_amplification",
    /// RDP over UDP (3389).
    RdpAmplification => "rdp_amplification",
    /// NAT-PMP (UDP 5351).
    NatPmpAmplification => "nat_pmp_amplification",
    /// Valve/Steam game server queries (UDP 27015).
    SteamAmplification => "steam_amplification",
    /// IPMI/RMCP (UDP 623).
    IpmiAmplification => "ipmi_amplification",
    /// XDMCP (UDP 177).
    XdmcpAmplification => "xdmcp_amplification",
    /// SafeNet Sentinel license manager (UDP 5093).
    SentinelAmplification => "sentinel_amplification",
    /// UDP from many sources concentrated on one or a few source ports that are not a known
    /// reflector service: reflection on those ports, which the attack's signature
    /// (`src_ports`) and `top_src_ports` carry.
    UdpReflection => "udp_reflection",
    /// Unsolicited TCP SYN-ACKs from many sources (servers answering SYNs spoofed from the
    /// target); the signature carries the flags and, when they dominate, the source ports.
    SynAckReflection => "syn_ack_reflection",
    /// TCP carrying payload to port 80 from many sources without a connection the target
    /// answers (middlebox reflection).
    TcpMiddleboxReflection => "tcp_middlebox_reflection",
}

impl Vector {
    /// Reflection/amplification from a known reflector service (named by its UDP port).
    pub const fn is_amplification(self) -> bool {
        matches!(
            self,
            Vector::DnsAmplification
                | Vector::NtpAmplification
                | Vector::SsdpAmplification
                | Vector::MemcachedAmplification
                | Vector::CldapAmplification
                | Vector::ChargenAmplification
                | Vector::SnmpAmplification
                | Vector::NetbiosAmplification
                | Vector::PortmapAmplification
                | Vector::WsDiscoveryAmplification
                | Vector::CoapAmplification
                | Vector::BacnetAmplification
                | Vector::IkeAmplification
                | Vector::NatTAmplification
                | Vector::ArdAmplification
                | Vector::SlpAmplification
                | Vector::DhdiscoverAmplification
                | Vector::UbiquitiAmplification
                | Vector::OpenvpnAmplification
                | Vector::TftpAmplification
                | Vector::MdnsAmplification
                | Vector::RipAmplification
                | Vector::PlexAmplification
                | Vector::LantronixAmplification
                | Vector::JenkinsAmplification
                | Vector::MssqlAmplification
                | Vector::QotdAmplification
                | Vector::SipAmplification
                | Vector::StunAmplification
                | Vector::DtlsAmplification
                | Vector::TeamspeakAmplification
                | Vector::RdpAmplification
                | Vector::NatPmpAmplification
                | Vector::SteamAmplification
                | Vector::IpmiAmplification
                | Vector::XdmcpAmplification
                | Vector::SentinelAmplification
        )
    }

    /// Reflected traffic: a known amplifier, UDP reflection on an unknown port, or TCP
    /// reflection (SYN-ACK, middlebox).
    pub const fn is_reflection(self) -> bool {
        self.is_amplification()
            || matches!(
                self,
                Vector::UdpReflection | Vector::SynAckReflection | Vector::TcpMiddleboxReflection
            )
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name `{}`", self.0)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Vector {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Vector::ALL.iter().copied().find(|v| v.name() == name).ok_or_else(|| UnknownName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for &v in Vector::ALL {
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{}\"", v.name()));
            assert_eq!(v.name().parse::<Vector>(), Ok(v));
        }
        assert_eq!("syn flood".parse::<Vector>(), Err(UnknownName("syn flood".into())));
    }

    #[test]
    fn amplification_vectors_are_named_so() {
        for &v in Vector::ALL {
            assert_eq!(v.is_amplification(), v.name().ends_with("_amplification"), "{v}");
            assert!(!v.is_amplification() || v.is_reflection(), "{v}");
        }
    }
}
