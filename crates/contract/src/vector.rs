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
    /// TCP RSTs.
    RstFlood => "rst_flood",
    /// Other TCP (several flag mixes, SYN-ACK, FIN).
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
}

impl Vector {
    /// Reflection/amplification from a known reflector service.
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
        }
    }
}
