//! Scenario names (CLI-facing, snake_case) and the amplification vectors.

use std::fmt;
use std::str::FromStr;

use crate::truth::AttackVector;

/// UDP reflection/amplification service abused by an amplification scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmplificationVector {
    /// DNS (source port 53), large EDNS0/ANY responses, usually fragmented.
    Dns,
    /// NTP monlist (source port 123), 468-byte responses.
    Ntp,
    /// SSDP (source port 1900), HTTP-like text responses.
    Ssdp,
    /// memcached (source port 11211), very large responses, fragmented.
    Memcached,
    /// CLDAP (source port 389), LDAP searchResEntry responses, usually fragmented.
    Cldap,
    /// chargen (source port 19), character-pattern responses.
    Chargen,
    /// IPsec NAT traversal (source port 4500), IKE messages behind the non-ESP marker.
    NatT,
    /// BACnet/IP (source port 47808), BVLC/NPDU/APDU responses.
    Bacnet,
    /// Dahua-style IoT device discovery "DHDiscover" (source port 37810), "DHIP" replies.
    Dhdiscover,
    /// A service no reflector table names: every response from source port 12345 (the
    /// detector must name it by the evidence alone).
    UnknownPort,
}

impl AmplificationVector {
    /// All vectors.
    pub const ALL: [AmplificationVector; 10] = [
        AmplificationVector::Dns,
        AmplificationVector::Ntp,
        AmplificationVector::Ssdp,
        AmplificationVector::Memcached,
        AmplificationVector::Cldap,
        AmplificationVector::Chargen,
        AmplificationVector::NatT,
        AmplificationVector::Bacnet,
        AmplificationVector::Dhdiscover,
        AmplificationVector::UnknownPort,
    ];

    /// UDP source port of the reflected responses.
    pub const fn source_port(self) -> u16 {
        match self {
            AmplificationVector::Dns => 53,
            AmplificationVector::Ntp => 123,
            AmplificationVector::Ssdp => 1900,
            AmplificationVector::Memcached => 11211,
            AmplificationVector::Cldap => 389,
            AmplificationVector::Chargen => 19,
            AmplificationVector::NatT => 4500,
            AmplificationVector::Bacnet => 47808,
            AmplificationVector::Dhdiscover => 37810,
            AmplificationVector::UnknownPort => 12345,
        }
    }

    /// The ground-truth vector name.
    pub const fn attack_vector(self) -> AttackVector {
        match self {
            AmplificationVector::Dns => AttackVector::DnsAmplification,
            AmplificationVector::Ntp => AttackVector::NtpAmplification,
            AmplificationVector::Ssdp => AttackVector::SsdpAmplification,
            AmplificationVector::Memcached => AttackVector::MemcachedAmplification,
            AmplificationVector::Cldap => AttackVector::CldapAmplification,
            AmplificationVector::Chargen => AttackVector::ChargenAmplification,
            AmplificationVector::NatT => AttackVector::NatTAmplification,
            AmplificationVector::Bacnet => AttackVector::BacnetAmplification,
            AmplificationVector::Dhdiscover => AttackVector::DhdiscoverAmplification,
            AmplificationVector::UnknownPort => AttackVector::UdpReflection,
        }
    }
}

/// A named traffic scenario. Every scenario except `benign_web` and `bulk_outbound` runs on top
/// of benign web background traffic. The attacks of `outbound_syn_flood` and `dns_reflector_abuse`
/// leave the protected networks; every other attack comes at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Benign web traffic only.
    BenignWeb,
    /// TCP SYN flood, spoofed sources, one target.
    SynFlood,
    /// TCP ACK flood, spoofed sources, one target.
    AckFlood,
    /// TCP RST flood, spoofed sources, one target.
    RstFlood,
    /// UDP flood, random destination ports, one target.
    UdpFlood,
    /// ICMP echo-request flood, one target.
    IcmpFlood,
    /// Flood of non-initial IPv4 fragments, one target.
    FragmentFlood,
    /// UDP flood spread over every host of a prefix (low per host, high per prefix).
    CarpetBombing,
    /// Reflection/amplification from a bounded set of reflectors.
    Amplification(AmplificationVector),
    /// BACnet and DHDiscover reflection at once on one target (half the attack rate each).
    BacnetDhdiscover,
    /// TCP SYN-ACK reflection: web servers (ports 80 and 443) answering SYNs spoofed from the
    /// target.
    SynAckReflection,
    /// Spoofed TCP RST+ACK flood at one host (every packet RST and ACK).
    RstAckFlood,
    /// TCP middlebox reflection: SYNs and PSH+ACKs carrying an HTTP request to port 80, from a
    /// bounded set of middleboxes, never answered by the target.
    MiddleboxReflection,
    /// IPv6 SYN flood.
    SynFloodV6,
    /// IPv6 UDP flood.
    UdpFloodV6,
    /// ICMPv6 echo-request flood.
    IcmpFloodV6,
    /// IPv6 carpet bombing over a range of hosts.
    CarpetBombingV6,
    /// Bursts of a UDP flood separated by quiet gaps.
    PulseWave,
    /// A large legitimate outbound transfer (must not be flagged) plus background.
    BulkOutbound,
    /// Outbound TCP SYN flood: a compromised protected host floods one outside victim.
    OutboundSynFlood,
    /// A protected DNS server abused as a reflector: spoofed queries in, large answers out to
    /// the outside victim the queries claim to come from.
    DnsReflectorAbuse,
    /// Several attacks one after another with benign background.
    Mixed,
}

impl Scenario {
    /// Every scenario, in a stable order.
    pub const ALL: &'static [Scenario] = &[
        Scenario::BenignWeb,
        Scenario::SynFlood,
        Scenario::AckFlood,
        Scenario::RstFlood,
        Scenario::UdpFlood,
        Scenario::IcmpFlood,
        Scenario::FragmentFlood,
        Scenario::CarpetBombing,
        Scenario::Amplification(AmplificationVector::Dns),
        Scenario::Amplification(AmplificationVector::Ntp),
        Scenario::Amplification(AmplificationVector::Ssdp),
        Scenario::Amplification(AmplificationVector::Memcached),
        Scenario::Amplification(AmplificationVector::Cldap),
        Scenario::Amplification(AmplificationVector::Chargen),
        Scenario::Amplification(AmplificationVector::NatT),
        Scenario::Amplification(AmplificationVector::Bacnet),
        Scenario::Amplification(AmplificationVector::Dhdiscover),
        Scenario::Amplification(AmplificationVector::UnknownPort),
        Scenario::BacnetDhdiscover,
        Scenario::SynAckReflection,
        Scenario::RstAckFlood,
        Scenario::MiddleboxReflection,
        Scenario::SynFloodV6,
        Scenario::UdpFloodV6,
        Scenario::IcmpFloodV6,
        Scenario::CarpetBombingV6,
        Scenario::PulseWave,
        Scenario::BulkOutbound,
        Scenario::OutboundSynFlood,
        Scenario::DnsReflectorAbuse,
        Scenario::Mixed,
    ];

    /// The CLI-facing name.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::BenignWeb => "benign_web",
            Scenario::SynFlood => "syn_flood",
            Scenario::AckFlood => "ack_flood",
            Scenario::RstFlood => "rst_flood",
            Scenario::UdpFlood => "udp_flood",
            Scenario::IcmpFlood => "icmp_flood",
            Scenario::FragmentFlood => "fragment_flood",
            Scenario::CarpetBombing => "carpet_bombing",
            Scenario::Amplification(v) => match v {
                AmplificationVector::Dns => "dns_amplification",
                AmplificationVector::Ntp => "ntp_amplification",
                AmplificationVector::Ssdp => "ssdp_amplification",
                AmplificationVector::Memcached => "memcached_amplification",
                AmplificationVector::Cldap => "cldap_amplification",
                AmplificationVector::Chargen => "chargen_amplification",
                AmplificationVector::NatT => "nat_t_amplification",
                AmplificationVector::Bacnet => "bacnet_amplification",
                AmplificationVector::Dhdiscover => "dhdiscover_amplification",
                AmplificationVector::UnknownPort => "udp_reflection",
            },
            Scenario::BacnetDhdiscover => "bacnet_dhdiscover",
            Scenario::SynAckReflection => "syn_ack_reflection",
            Scenario::RstAckFlood => "rst_ack_flood",
            Scenario::MiddleboxReflection => "middlebox_reflection",
            Scenario::SynFloodV6 => "syn_flood_v6",
            Scenario::UdpFloodV6 => "udp_flood_v6",
            Scenario::IcmpFloodV6 => "icmp_flood_v6",
            Scenario::CarpetBombingV6 => "carpet_bombing_v6",
            Scenario::PulseWave => "pulse_wave",
            Scenario::BulkOutbound => "bulk_outbound",
            Scenario::OutboundSynFlood => "outbound_syn_flood",
            Scenario::DnsReflectorAbuse => "dns_reflector_abuse",
            Scenario::Mixed => "mixed",
        }
    }

    /// One-line description for `--help`-style listings.
    pub const fn description(self) -> &'static str {
        match self {
            Scenario::BenignWeb => {
                "web clients (203.0.113.0/24, 192.0.2.0/24) <-> servers in 198.51.100.0/24"
            }
            Scenario::SynFlood => {
                "spoofed TCP SYN flood at one host, 40-60 byte packets, on benign background"
            }
            Scenario::AckFlood => "spoofed TCP ACK flood at one host on benign background",
            Scenario::RstFlood => "spoofed TCP RST flood at one host on benign background",
            Scenario::UdpFlood => "UDP flood at one host, random destination ports, on benign background",
            Scenario::IcmpFlood => "ICMP echo-request flood at one host on benign background",
            Scenario::FragmentFlood => "non-initial IPv4 fragments at one host on benign background",
            Scenario::CarpetBombing => "UDP flood over every host of a prefix on benign background",
            Scenario::Amplification(AmplificationVector::Dns) => "DNS reflection (src port 53), fragmented",
            Scenario::Amplification(AmplificationVector::Ntp) => "NTP monlist reflection (src port 123)",
            Scenario::Amplification(AmplificationVector::Ssdp) => "SSDP reflection (src port 1900)",
            Scenario::Amplification(AmplificationVector::Memcached) => {
                "memcached reflection (src port 11211), fragmented"
            }
            Scenario::Amplification(AmplificationVector::Cldap) => {
                "CLDAP reflection (src port 389), fragmented"
            }
            Scenario::Amplification(AmplificationVector::Chargen) => "chargen reflection (src port 19)",
            Scenario::Amplification(AmplificationVector::NatT) => "IPsec NAT-T reflection (src port 4500)",
            Scenario::Amplification(AmplificationVector::Bacnet) => "BACnet reflection (src port 47808)",
            Scenario::Amplification(AmplificationVector::Dhdiscover) => {
                "DHDiscover IoT discovery reflection (src port 37810)"
            }
            Scenario::Amplification(AmplificationVector::UnknownPort) => {
                "reflection from a port no table knows (src port 12345)"
            }
            Scenario::BacnetDhdiscover => "BACnet (47808) and DHDiscover (37810) reflection at one host",
            Scenario::SynAckReflection => {
                "TCP SYN-ACK reflection: web servers' ports 80/443 answer SYNs spoofed from one host"
            }
            Scenario::RstAckFlood => "spoofed TCP RST+ACK flood at one host on benign background",
            Scenario::MiddleboxReflection => {
                "TCP middlebox reflection: SYN and PSH+ACK with an HTTP GET to port 80 from many middleboxes"
            }
            Scenario::SynFloodV6 => "IPv6 SYN flood from 2001:db8:ffff::/48 at one host",
            Scenario::UdpFloodV6 => "IPv6 UDP flood from 2001:db8:ffff::/48 at one host",
            Scenario::IcmpFloodV6 => "ICMPv6 echo-request flood at one host",
            Scenario::CarpetBombingV6 => "IPv6 UDP carpet bombing over a range of hosts (default /120)",
            Scenario::PulseWave => "UDP flood bursts (default 3 s on / 5 s off) on benign background",
            Scenario::BulkOutbound => {
                "large legitimate outbound TCP transfer from a protected server (not an attack)"
            }
            Scenario::OutboundSynFlood => {
                "compromised protected host 198.51.100.66 SYN-floods 203.0.113.10:443, on benign background"
            }
            Scenario::DnsReflectorAbuse => {
                "protected DNS server 198.51.100.53 answers ANY queries spoofed from 203.0.113.77 with 1.2-1.4 kB"
            }
            Scenario::Mixed => "several attacks one after another on benign background",
        }
    }

    /// True when the scenario's attack traffic is IPv6.
    pub const fn is_ipv6(self) -> bool {
        matches!(
            self,
            Scenario::SynFloodV6 | Scenario::UdpFloodV6 | Scenario::IcmpFloodV6 | Scenario::CarpetBombingV6
        )
    }

    /// True when the scenario's attack leaves the protected networks (a protected host is the
    /// source, an outside host the victim).
    pub const fn is_outbound(self) -> bool {
        matches!(self, Scenario::OutboundSynFlood | Scenario::DnsReflectorAbuse)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Returned by [`Scenario::from_str`] for an unknown name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario `{name}` (known: {known})")]
pub struct UnknownScenario {
    /// The name that was not recognised.
    pub name: String,
    /// Comma-separated list of the valid names.
    pub known: String,
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Scenario::ALL.iter().copied().find(|sc| sc.name().eq_ignore_ascii_case(wanted)).ok_or_else(|| {
            UnknownScenario {
                name: s.to_owned(),
                known: Scenario::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &s in Scenario::ALL {
            assert!(seen.insert(s.name()), "duplicate {}", s.name());
            assert_eq!(s.to_string().parse::<Scenario>().unwrap(), s);
            assert!(s.name().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        assert_eq!("SYN_FLOOD".parse::<Scenario>().unwrap(), Scenario::SynFlood);
        let err = "nope".parse::<Scenario>().unwrap_err();
        assert!(err.to_string().contains("syn_flood"));
    }

    #[test]
    fn outbound_scenarios_are_named_and_ipv4() {
        let outbound: Vec<&str> =
            Scenario::ALL.iter().filter(|s| s.is_outbound()).map(|s| s.name()).collect();
        assert_eq!(outbound, ["outbound_syn_flood", "dns_reflector_abuse"]);
        assert!(Scenario::ALL.iter().all(|s| !(s.is_outbound() && s.is_ipv6())));
    }

    #[test]
    fn every_amplification_vector_is_listed() {
        for v in AmplificationVector::ALL {
            assert!(Scenario::ALL.contains(&Scenario::Amplification(v)));
            assert_eq!(Scenario::Amplification(v).name(), v.attack_vector().name());
        }
    }
}
